//! What the SCAN family (SCAN, HSCAN, SSCAN) shares: cursor parsing, COUNT/MATCH/TYPE options, the empty reply.

use crate::error::Error;
use crate::resp::{Args, Reply};
use crate::util::glob::glob_match;
use crate::util::num::arg_i64;

/// A SCAN-family cursor, parsed as Redis's `parseScanCursorOrReply` (`strtoul`): an optional
/// sign (a negative number wraps), decimal digits, nothing after; empty is cursor 0.
pub fn parse_cursor(arg: &[u8]) -> Result<u64, Error> {
    // Redis reads the argument as a C string: it ends at the first NUL.
    let s = arg.split(|&c| c == 0).next().unwrap_or_default();
    if s.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::InvalidCursor);
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0') as u64))
            .ok_or(Error::InvalidCursor)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// A SCAN-family command's validated options.
#[derive(Debug, PartialEq)]
pub struct ScanOpts<'a> {
    pub count: usize,
    /// None when absent or a lone `*`.
    pub pattern: Option<&'a [u8]>,
    /// SCAN's TYPE; None when absent.
    pub type_name: Option<&'a [u8]>,
}

impl ScanOpts<'_> {
    /// Whether `s` passes MATCH.
    pub fn keeps(&self, s: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, s))
    }
}

/// Parses COUNT / MATCH (and TYPE if `allow_type`, as only SCAN takes it) from argument
/// `from` on, with the errors of Redis 7.0's `scanGenericCommand`.
pub fn parse_scan_opts<'a>(
    a: &Args<'a>,
    from: usize,
    allow_type: bool,
) -> Result<ScanOpts<'a>, Error> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
        type_name: None,
    };
    let mut i = from;
    while i < a.len() {
        let has_value = i + 1 < a.len();
        if a.is(i, "COUNT") && has_value {
            let n = arg_i64(a.get(i + 1))?;
            if n < 1 {
                return Err(Error::Syntax);
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if a.is(i, "MATCH") && has_value {
            let p = a.get(i + 1);
            o.pattern = (p != b"*").then_some(p);
        } else if allow_type && a.is(i, "TYPE") && has_value {
            o.type_name = Some(a.get(i + 1));
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    Ok(o)
}

/// The reply for a missing key: cursor 0, no elements.
pub fn empty_scan(out: &mut Reply) {
    out.array(2);
    out.bulk(b"0");
    out.array(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    #[test]
    fn cursor_parses_like_strtoul() {
        let invalid = Err(Error::InvalidCursor);
        assert_eq!(parse_cursor(b"0"), Ok(0));
        assert_eq!(parse_cursor(b""), Ok(0));
        assert_eq!(parse_cursor(b"+12"), Ok(12));
        assert_eq!(parse_cursor(b"007"), Ok(7));
        assert_eq!(parse_cursor(b"-1"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), invalid);
        assert_eq!(parse_cursor(b"99999999999999999999"), invalid);
        assert_eq!(parse_cursor(b" 1"), invalid);
        assert_eq!(parse_cursor(b"1 "), invalid);
        assert_eq!(parse_cursor(b"1x"), invalid);
        assert_eq!(parse_cursor(b"abc"), invalid);
        assert_eq!(parse_cursor(b"-"), invalid);
        assert_eq!(parse_cursor(b"0x1"), invalid);
        assert_eq!(
            Error::InvalidCursor.render(),
            Error::msg("invalid cursor").render()
        );
    }

    #[test]
    fn options_validate_like_redis() {
        let scan = |w: &[&str]| {
            with_args(w, |a| {
                parse_scan_opts(a, 2, true).map(|o| {
                    (
                        o.count,
                        o.pattern.map(<[u8]>::to_vec),
                        o.type_name.map(<[u8]>::to_vec),
                    )
                })
            })
        };
        assert_eq!(
            scan(&["scan", "0", "MATCH", "*", "count", "3", "TYPE", "string"]),
            Ok((3, None, Some(b"string".to_vec())))
        );
        assert_eq!(
            scan(&["scan", "0", "match", "a*"]),
            Ok((10, Some(b"a*".to_vec()), None))
        );
        assert_eq!(scan(&["scan", "0", "count", "0"]), Err(Error::Syntax));
        assert_eq!(scan(&["scan", "0", "count", "x"]), Err(Error::NotInteger));
        assert_eq!(scan(&["scan", "0", "count"]), Err(Error::Syntax));
        assert_eq!(scan(&["scan", "0", "foo", "bar"]), Err(Error::Syntax));
        // TYPE is SCAN's alone: HSCAN / SSCAN reject it.
        let hscan = |w: &[&str]| with_args(w, |a| parse_scan_opts(a, 3, false).map(|o| o.count));
        assert_eq!(hscan(&["hscan", "k", "0", "COUNT", "5"]), Ok(5));
        assert_eq!(
            hscan(&["hscan", "k", "0", "TYPE", "string"]),
            Err(Error::Syntax)
        );
    }
}
