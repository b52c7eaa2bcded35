//! Small shared helpers: number parsing and formatting, glob matching, time.

pub mod glob;
pub mod num;
pub mod time;
