//! Key → hash slot mapping (CRC16/XMODEM of the key or its `{hash tag}`), as Redis Cluster does.

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The slot of `key`: if the key contains `{...}` with at least one byte between the first
/// `{` and the next `}`, only those bytes are hashed.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match memchr::memchr(b'{', key) {
        Some(open) => match memchr::memchr(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS as u16 - 1)
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0, most significant bit first), eight
/// bytes per step: `TABLES[k][b]` is what byte `b` followed by `k` zero bytes adds, so a
/// step's eight table reads do not wait on each other as a byte-at-a-time loop's do. Routing
/// hashes every key of every command once there is more than one shard.
pub fn crc16(data: &[u8]) -> u16 {
    let t = &TABLES;
    let mut crc: u16 = 0;
    let mut steps = data.chunks_exact(8);
    for c in &mut steps {
        let [hi, lo] = crc.to_be_bytes();
        crc = t[7][(c[0] ^ hi) as usize]
            ^ t[6][(c[1] ^ lo) as usize]
            ^ t[5][c[2] as usize]
            ^ t[4][c[3] as usize]
            ^ t[3][c[4] as usize]
            ^ t[2][c[5] as usize]
            ^ t[1][c[6] as usize]
            ^ t[0][c[7] as usize];
    }
    for &b in steps.remainder() {
        crc = (crc << 8) ^ t[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

static TABLES: [[u16; 256]; 8] = crc16_tables();

const fn crc16_tables() -> [[u16; 256]; 8] {
    let mut t = [[0u16; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::{crc16, key_slot};

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, which the cluster specification quotes.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..200 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert_eq!(
                crc16(&data),
                crc16::State::<crc16::XMODEM>::calculate(&data),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn known_slots() {
        // Values from stock redis-server's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // Empty tag: the whole key is hashed.
        assert_eq!(
            key_slot(b"a{}b"),
            crc16::State::<crc16::XMODEM>::calculate(b"a{}b") & 16383
        );
        // `{{a}}`: the tag is `{a` (from the first `{` to the first `}`).
        assert_eq!(key_slot(b"{{a}}"), key_slot(b"{a"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") & 16383
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }
}
