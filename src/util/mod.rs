//! Small shared helpers: number parsing and formatting, glob matching, time, CRC-64.

pub mod crc64;
pub mod daemon;
pub mod glob;
pub mod listen;
pub mod mem;
pub mod num;
pub mod pqsort;
pub mod process;
pub mod repr;
pub mod split;
pub mod time;

/// The C library's text for `errno`, as Redis's `strerror` shows it in replies and logs.
pub fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string that stays valid until
    // the next call on this thread; it is copied at once.
    unsafe {
        let p = libc::strerror(errno);
        if p.is_null() {
            return format!("Unknown error {errno}");
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The `strerror` text of an I/O error, without Rust's "(os error N)" suffix.
pub fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
