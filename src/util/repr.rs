//! Redis's `sdscatrepr` quoting, for MONITOR lines and the AOF manifest.

/// C `isprint` in the "C" locale.
pub fn is_print(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
}

/// `sdsneedsrepr`: quoting is needed for a backslash, a quote, a space, a control or a
/// non-printable byte.
pub fn needs_repr(s: &[u8]) -> bool {
    s.iter().any(|&b| {
        b == b'\\'
            || b == b'"'
            || !is_print(b)
            || matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    })
}

/// `sdscatrepr`: double quotes, C escapes for `\\ " \n \r \t \a \b`, `\xHH` for other
/// non-printable bytes.
pub fn write_repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            _ if is_print(b) => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}
