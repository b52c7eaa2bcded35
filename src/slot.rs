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
    crc16::State::<crc16::XMODEM>::calculate(hashed) & (SLOTS as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::key_slot;

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
