//! Reading replies back: the extent of one RESP2/RESP3 reply and the errors inside it, for
//! clients whose replies nobody reads (AOF loading, a replica's master client) but whose
//! errors Redis logs.

use memchr::memchr;

/// The length of the first whole reply in `buf`, or None when `buf` does not start with one.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line = line_len(buf)?;
    let head = &buf[1..line - 2];
    match buf[0] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(line),
        b'$' | b'!' | b'=' => {
            let n = parse_len(head)?;
            if n < 0 {
                return Some(line);
            }
            let end = line.checked_add(n as usize)?.checked_add(2)?;
            (buf.len() >= end && &buf[end - 2..end] == b"\r\n").then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_len(head)?;
            // A map's and an attribute's count is of pairs; an attribute precedes its reply.
            let children = match buf[0] {
                b'%' => n.max(0).checked_mul(2)?,
                b'|' => n.max(0).checked_mul(2)?.checked_add(1)?,
                _ => n.max(0),
            };
            let mut at = line;
            for _ in 0..children {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// The elements of an array (or set or push) reply; empty for any other reply.
pub fn elements(reply: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    if !matches!(reply.first(), Some(b'*' | b'~' | b'>')) {
        return out;
    }
    let Some(line) = line_len(reply) else {
        return out;
    };
    let mut at = line;
    while let Some(len) = reply.get(at..).and_then(reply_len) {
        out.push(&reply[at..at + len]);
        at += len;
    }
    out
}

/// The text of every error in `reply`, nested ones included, without the `-` and the CRLF
/// (a blob error's body).
pub fn errors(reply: &[u8], out: &mut Vec<Vec<u8>>) {
    let Some(line) = line_len(reply) else {
        return;
    };
    match reply[0] {
        b'-' => out.push(reply[1..line - 2].to_vec()),
        b'!' => out.push(
            reply
                .get(line..reply.len() - 2)
                .unwrap_or_default()
                .to_vec(),
        ),
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let mut at = line;
            while let Some(len) = reply.get(at..).and_then(reply_len) {
                errors(&reply[at..at + len], out);
                at += len;
            }
        }
        _ => {}
    }
}

/// The first line's length, CRLF included.
fn line_len(buf: &[u8]) -> Option<usize> {
    let nl = memchr(b'\n', buf)?;
    (nl >= 2 && buf[nl - 1] == b'\r').then_some(nl + 1)
}

fn parse_len(digits: &[u8]) -> Option<i64> {
    crate::util::num::parse_i64_strict(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_each_kind() {
        assert_eq!(reply_len(b"+OK\r\nrest"), Some(5));
        assert_eq!(reply_len(b"$3\r\nabc\r\n:1\r\n"), Some(9));
        assert_eq!(reply_len(b"$-1\r\n"), Some(5));
        assert_eq!(reply_len(b"*2\r\n:1\r\n$1\r\nx\r\n"), Some(15));
        assert_eq!(reply_len(b"*-1\r\n"), Some(5));
        assert_eq!(reply_len(b"%1\r\n+a\r\n:1\r\n"), Some(12));
        assert_eq!(reply_len(b"*2\r\n:1\r\n"), None);
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"$3\r\nabcd\r\n"), None);
        assert_eq!(reply_len(b"?x\r\n"), None);
        assert_eq!(reply_len(b"$99999999999999999999\r\n"), None);
    }

    #[test]
    fn errors_nested_and_elements() {
        let exec = b"*3\r\n+OK\r\n-WRONGTYPE no\r\n*1\r\n-ERR deep\r\n";
        let mut out = Vec::new();
        errors(exec, &mut out);
        assert_eq!(out, vec![b"WRONGTYPE no".to_vec(), b"ERR deep".to_vec()]);
        let parts = elements(exec);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], b"-WRONGTYPE no\r\n");
        assert!(elements(b"+OK\r\n").is_empty());
        out.clear();
        errors(b"!5\r\nERR x\r\n", &mut out);
        assert_eq!(out, vec![b"ERR x".to_vec()]);
    }
}
