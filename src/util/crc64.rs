//! CRC-64/Jones as Redis computes it (`crc64.c`): the checksum closing DUMP payloads.

const JONES: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

pub fn crc64(bytes: &[u8]) -> u64 {
    JONES.checksum(bytes)
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
}
