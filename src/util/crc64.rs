//! CRC-64/Jones as Redis computes it (`crc64.c`): the checksum closing DUMP payloads and RDB files.

/// A `static` (not a `const`) so running digests can borrow it for `'static`.
static JONES: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

pub fn crc64(bytes: &[u8]) -> u64 {
    JONES.checksum(bytes)
}

/// A running CRC-64 over bytes fed in pieces, as Redis's rio keeps one while a whole RDB
/// file streams through it; `value` can be read at any point without ending the digest.
#[derive(Clone)]
pub struct Crc64 {
    digest: crc::Digest<'static, u64>,
}

impl Crc64 {
    pub fn new() -> Crc64 {
        Crc64 {
            digest: JONES.digest(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The checksum of every byte fed so far.
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Crc64 {
        Crc64::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_redis() {
        // Redis's own self-test value (crc64.c) and the checksum of an empty FUNCTION DUMP.
        assert_eq!(super::crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(
            super::crc64(b"\n\0").to_le_bytes(),
            [0x5d, 0x9b, 0x5c, 0x40, 0x0f, 0x7f, 0xa2, 0xda]
        );
    }

    #[test]
    fn running_digest_equals_one_shot() {
        let mut d = super::Crc64::new();
        assert_eq!(d.value(), 0);
        for piece in [&b"1234"[..], b"", b"5", b"6789"] {
            d.update(piece);
        }
        assert_eq!(d.value(), 0xe9c6_d914_c4b8_d9ca);
        d.update(b"x");
        assert_eq!(d.value(), super::crc64(b"123456789x"));
    }
}
