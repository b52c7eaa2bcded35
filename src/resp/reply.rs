//! Reply encoder for RESP2 and RESP3: one output buffer, written by handlers in order.

use crate::error::Error;
use crate::util::num::format_double;

/// An output buffer plus the protocol the client speaks.
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
}

impl Reply {
    pub fn new(resp3: bool) -> Reply {
        Reply {
            buf: Vec::with_capacity(16 * 1024),
            resp3,
        }
    }

    #[inline]
    fn header(&mut self, prefix: u8, n: i64) {
        let mut num = itoa::Buffer::new();
        self.buf.push(prefix);
        self.buf.extend_from_slice(num.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn error(&mut self, e: &Error) {
        self.error_line(&e.render());
    }

    /// `-<line>\r\n`; the line carries its code (`ERR ...`).
    pub fn error_line(&mut self, line: &str) {
        self.buf.push(b'-');
        self.buf.extend_from_slice(line.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    #[inline]
    pub fn int(&mut self, v: i64) {
        self.header(b':', v);
    }

    #[inline]
    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (e.g. GET of an int-encoded value).
    pub fn bulk_int(&mut self, v: i64) {
        let mut num = itoa::Buffer::new();
        self.bulk(num.format(v).as_bytes());
    }

    /// Null bulk (RESP2 `$-1`) / null (RESP3 `_`).
    #[inline]
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// Null array (RESP2 `*-1`) / null (RESP3 `_`).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs (RESP2: a flat array of 2n).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set of `n` elements (RESP2: an array).
    pub fn set(&mut self, n: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A push message of `n` elements (RESP2: an array).
    pub fn push(&mut self, n: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A double (RESP2: a bulk string with Redis 7.0's formatting).
    pub fn double(&mut self, v: f64) {
        let mut text = Vec::with_capacity(24);
        format_double(v, &mut text);
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(&text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(&text);
        }
    }

    /// A boolean (RESP2: `:1` / `:0`).
    pub fn boolean(&mut self, v: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if v { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(v as i64);
        }
    }

    /// A verbatim text (RESP3 `=<len>\r\ntxt:...`; RESP2 a bulk string).
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Appends already-encoded reply bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn resp2_and_resp3_forms() {
        let mut r2 = Reply::new(false);
        let mut r3 = Reply::new(true);
        for r in [&mut r2, &mut r3] {
            r.null();
            r.map(1);
            r.bulk(b"k");
            r.double(1.5);
            r.boolean(true);
            r.set(0);
            r.verbatim(b"hi");
        }
        assert_eq!(
            r2.buf,
            b"$-1\r\n*2\r\n$1\r\nk\r\n$3\r\n1.5\r\n:1\r\n*0\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            r3.buf,
            b"_\r\n%1\r\n$1\r\nk\r\n,1.5\r\n#t\r\n~0\r\n=6\r\ntxt:hi\r\n"
        );
    }
}
