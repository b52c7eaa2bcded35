//! Small shared helpers: number parsing and formatting, glob matching, time, CRC-64.

pub mod crc64;
pub mod glob;
pub mod listen;
pub mod mem;
pub mod num;
pub mod repr;
pub mod split;
pub mod time;
