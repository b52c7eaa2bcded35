//! Number parsing and formatting with Redis's exact rules.

use crate::error::Error;

/// Parses a signed 64-bit integer like Redis's `string2ll`: optional `-`, no `+`, no leading
/// zeros, no spaces, at most 20 characters.
#[inline]
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

/// An integer argument, or `ERR value is not an integer or out of range`.
#[inline]
pub fn arg_i64(s: &[u8]) -> Result<i64, Error> {
    parse_i64_strict(s).ok_or(Error::NotInteger)
}

/// Parses a double like Redis's `string2d`/`getDoubleFromObject`: no leading space, no NaN.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s[0].is_ascii_whitespace() || s.len() > 5000 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let v: f64 = match text {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            let lower = text.as_bytes();
            // Rust accepts "nan"/"NaN" and "infinity" spellings strtod also accepts; reject NaN.
            if lower
                .iter()
                .any(|c| c.is_ascii_alphabetic() && !matches!(c, b'e' | b'E'))
            {
                let t = text.to_ascii_lowercase();
                match t.trim_start_matches(['+', '-']) {
                    "inf" | "infinity" => {
                        if t.starts_with('-') {
                            f64::NEG_INFINITY
                        } else {
                            f64::INFINITY
                        }
                    }
                    _ => return None,
                }
            } else {
                text.parse().ok()?
            }
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// A float argument, or `ERR value is not a valid float`.
pub fn arg_f64(s: &[u8]) -> Result<f64, Error> {
    parse_f64(s).ok_or(Error::NotFloat)
}

/// Formats a double as Redis 7.0 does in replies: integral values as integers, others `%.17g`.
pub fn format_double(v: f64, out: &mut Vec<u8>) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v == v.trunc() && v.abs() < 1e17 {
        // Redis: "%.17g" of an integral value below 2^53-ish prints no exponent and no dot.
        let mut b = itoa::Buffer::new();
        if v == 0.0 && v.is_sign_negative() {
            out.extend_from_slice(b"-0");
        } else {
            out.extend_from_slice(b.format(v as i64).as_bytes());
        }
    } else {
        format_g17(v, out);
    }
}

/// C's `%f` with trailing zeros (and a trailing dot) removed, as Redis's `trimDoubleString`.
pub fn format_f64_trimmed(v: f64) -> String {
    let mut s = format!("{v:.6}");
    if s.contains('.') {
        let keep = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(keep);
    }
    s
}

/// C's `%.17g`.
pub fn format_g17(v: f64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for any %.17g rendering and snprintf NUL-terminates it.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%.17g".as_ptr(),
            v,
        )
    };
    if n > 0 {
        out.extend_from_slice(&buf[..(n as usize).min(buf.len() - 1)]);
    }
}

/// C's `snprintf(fmt, v)` for a format taking one double (`%f`, `%.17f` ...).
fn c_format(fmt: &std::ffi::CStr, v: f64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 400];
    // SAFETY: snprintf writes at most buf.len() bytes, NUL included; `fmt` takes one double.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            fmt.as_ptr(),
            v,
        )
    };
    if n > 0 {
        out.extend_from_slice(&buf[..(n as usize).min(buf.len() - 1)]);
    }
}

/// C's `%f` (six decimals), as Redis's error texts print coordinates.
pub fn format_f6(v: f64, out: &mut Vec<u8>) {
    c_format(c"%f", v, out)
}

/// Redis's "human" long double of a double (`ld2string(.., LD_STR_HUMAN)`): `%.17f` with the
/// trailing zeros (and a bare dot) removed, and `-0` as `0`.
pub fn format_human(v: f64, out: &mut Vec<u8>) {
    let start = out.len();
    c_format(c"%.17f", v, out);
    if out[start..].contains(&b'.') {
        while out.last() == Some(&b'0') {
            out.pop();
        }
        if out.last() == Some(&b'.') {
            out.pop();
        }
    }
    if &out[start..] == b"-0" {
        out.truncate(start);
        out.push(b'0');
    }
}

/// Redis's `fixedpoint_d2string(v, 4)`: rounded to four decimals (ties to even, as `llrint`),
/// always printed with all four (GEODIST, WITHDIST).
pub fn format_fixed4(v: f64, out: &mut Vec<u8>) {
    if v == 0.0 {
        out.extend_from_slice(b"0.0000");
        return;
    }
    let scaled = (v * 10000.0).round_ties_even();
    // llrint of a value beyond i64 is LLONG_MIN on x86.
    let s = if scaled.is_finite() && scaled.abs() < 9.2e18 {
        scaled as i64
    } else {
        i64::MIN
    };
    if s < 0 {
        out.push(b'-');
    }
    let u = s.unsigned_abs();
    out.extend_from_slice(itoa::Buffer::new().format(u / 10000).as_bytes());
    out.push(b'.');
    let frac = u % 10000;
    let digits = itoa::Buffer::new().format(frac).to_owned();
    out.extend(std::iter::repeat_n(b'0', 4 - digits.len()));
    out.extend_from_slice(digits.as_bytes());
}

extern "C" {
    fn redcell_ld_add(
        cur: *const u8,
        cur_len: usize,
        incr: *const u8,
        incr_len: usize,
        out: *mut u8,
        out_len: usize,
    ) -> libc::c_int;
    fn redcell_timeout_ms(s: *const u8, len: usize, out: *mut libc::c_longlong) -> libc::c_int;
}

/// A blocking command's timeout in seconds (BLPOP's last argument) as milliseconds, 0 meaning
/// forever, read exactly as Redis 7.0 does: in long double, rounded up to a whole millisecond
/// (0.0001 waits 1 ms; -0.0001 rounds to 0, forever), and a value too large for a 64-bit
/// millisecond count (inf included) is "negative", as x86's conversion makes it in Redis.
pub fn timeout_secs_ms(arg: &[u8]) -> Result<u64, Error> {
    let mut ms: libc::c_longlong = 0;
    // SAFETY: pointer and length describe a live slice; the shim writes one long long.
    let ok = unsafe { redcell_timeout_ms(arg.as_ptr(), arg.len(), &mut ms) };
    if ok != 1 {
        return Err(Error::msg("timeout is not a float or out of range"));
    }
    if ms < 0 {
        return Err(Error::msg("timeout is negative"));
    }
    Ok(ms as u64)
}

/// `cur + incr` in long double, formatted as Redis's INCRBYFLOAT reply.
/// `cur` is `None` for a missing key. The error says which operand was bad.
pub fn incr_by_float(cur: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = [0u8; 5200];
    let (cp, cl) = match cur {
        Some(c) => (c.as_ptr(), c.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: pointers and lengths describe live slices; the shim writes at most out.len() bytes.
    let n = unsafe {
        redcell_ld_add(
            cp,
            cl,
            incr.as_ptr(),
            incr.len(),
            out.as_mut_ptr(),
            out.len(),
        )
    };
    match n {
        -1 => Err(Error::NotFloat),
        -3 => Err(Error::NotFloat),
        -2 => Err(Error::IncrNanOrInf),
        n if n > 0 => Ok(out[..n as usize].to_vec()),
        _ => Err(Error::IncrNanOrInf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-1"), Some(-1));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"9223372036854775808"[..],
            b"+1",
            b" 1",
            b"01",
            b"-0",
            b"",
            b"-",
            b"1a",
            b"1.0",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn doubles() {
        let f = |v: f64| {
            let mut o = Vec::new();
            format_double(v, &mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(1.1), "1.1000000000000001");
        assert_eq!(f(3.0), "3");
        assert_eq!(f(f64::INFINITY), "inf");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
    }

    #[test]
    fn timeouts_read_like_redis_7_0() {
        let t = |s: &str| timeout_secs_ms(s.as_bytes()).map_err(|e| e.render().into_owned());
        assert_eq!(t("0"), Ok(0));
        assert_eq!(t("1.5"), Ok(1500));
        assert_eq!(t("0.0001"), Ok(1), "rounded up");
        assert_eq!(t("1e-400"), Ok(1), "long double keeps it above zero");
        assert_eq!(t("-0.0001"), Ok(0), "rounds up to zero: forever");
        assert_eq!(t("-0.001"), Ok(0), "in long double, just above -1 ms");
        assert_eq!(t("0x10"), Ok(16_000));
        assert_eq!(t("9223372036854775.807"), Ok(i64::MAX as u64));
        let negative = Err("ERR timeout is negative".to_string());
        for s in ["-1", "-0.5", "inf", "-inf", "1e16", "9223372036854775.808"] {
            assert_eq!(t(s), negative, "{s}");
        }
        let not_float = Err("ERR timeout is not a float or out of range".to_string());
        for s in ["", "x", " 1", "1 ", "nan", "1e", "1e5000"] {
            assert_eq!(t(s), not_float, "{s:?}");
        }
    }

    #[test]
    fn long_double_incr() {
        assert_eq!(incr_by_float(Some(b"10.5"), b"0.1").unwrap(), b"10.6");
        assert_eq!(incr_by_float(Some(b"0.1"), b"0.2").unwrap(), b"0.3");
        assert_eq!(incr_by_float(None, b"5.0e3").unwrap(), b"5000");
        assert_eq!(incr_by_float(Some(b"abc"), b"1"), Err(Error::NotFloat));
        assert_eq!(incr_by_float(Some(b"1"), b"inf"), Err(Error::IncrNanOrInf));
    }
}
