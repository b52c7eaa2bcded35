//! Resumable RESP request decoder: multibulk and inline requests, arguments as spans into the read buffer.
//!
//! The decoder never copies multibulk arguments and never allocates once its span vector has
//! grown to the widest request seen. A request cut by a read boundary is resumed where it
//! stopped, so a command with a million arguments is not rescanned on every read.

use memchr::memchr;

use crate::util::num::parse_i64_strict;

/// Longest inline request, multibulk count line or bulk length line (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Largest argument count before authentication.
const UNAUTH_MAX_ARGC: i64 = 10;
/// Largest bulk before authentication.
const UNAUTH_MAX_BULK: i64 = 16384;

/// A protocol error; its text is Redis's, and the connection closes after replying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    TooBigInline,
    UnbalancedQuotes,
    TooBigMbulkCount,
    InvalidMultibulkLength,
    UnauthMultibulkLength,
    TooBigBulkCount,
    ExpectedDollar(u8),
    InvalidBulkLength,
    UnauthBulkLength,
}

impl ProtocolError {
    /// The full error line, without `-` and CRLF.
    pub fn text(&self) -> String {
        let reason = match self {
            ProtocolError::TooBigInline => "too big inline request".to_string(),
            ProtocolError::UnbalancedQuotes => "unbalanced quotes in request".to_string(),
            ProtocolError::TooBigMbulkCount => "too big mbulk count string".to_string(),
            ProtocolError::InvalidMultibulkLength => "invalid multibulk length".to_string(),
            ProtocolError::UnauthMultibulkLength => "unauthenticated multibulk length".to_string(),
            ProtocolError::TooBigBulkCount => "too big bulk count string".to_string(),
            ProtocolError::ExpectedDollar(c) => format!("expected '$', got '{}'", *c as char),
            ProtocolError::InvalidBulkLength => "invalid bulk length".to_string(),
            ProtocolError::UnauthBulkLength => "unauthenticated bulk length".to_string(),
        };
        format!("ERR Protocol error: {reason}")
    }
}

use crate::util::split::split_inline;
pub use crate::util::split::Span;

/// Result of one decode step.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// More bytes are needed; at least `need` bytes from the request start in total.
    Incomplete {
        need: usize,
    },
    /// A complete request of `len` bytes; its arguments are in `Decoder::spans`.
    Request {
        len: usize,
        inline: bool,
    },
    /// `len` bytes that form no request (`*0`, `*-1`, an empty inline line): consumed silently.
    Nothing {
        len: usize,
    },
    Error(ProtocolError),
}

/// Progress through a multibulk request cut by a read boundary.
#[derive(Debug, Clone, Copy)]
struct Multibulk {
    argc: usize,
    /// Offset (from the request start) of the next `$` line.
    pos: usize,
}

pub struct Decoder {
    /// `proto-max-bulk-len`.
    pub max_bulk: i64,
    spans: Vec<Span>,
    scratch: Vec<u8>,
    partial: Option<Multibulk>,
}

impl Decoder {
    pub fn new(max_bulk: i64) -> Decoder {
        Decoder {
            max_bulk,
            spans: Vec::with_capacity(8),
            scratch: Vec::new(),
            partial: None,
        }
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Decodes the request starting at `buf[0]`. `unauth` applies the limits for connections
    /// that must still authenticate. After `Incomplete`, call again with the same start and
    /// more bytes; the work already done is kept.
    pub fn decode(&mut self, buf: &[u8], unauth: bool) -> Decoded {
        if buf.is_empty() {
            return Decoded::Incomplete { need: 1 };
        }
        if buf[0] == b'*' {
            self.decode_multibulk(buf, unauth)
        } else {
            self.decode_inline(buf)
        }
    }

    fn decode_multibulk(&mut self, buf: &[u8], unauth: bool) -> Decoded {
        let mut state = match self.partial {
            Some(state) => state,
            None => {
                self.spans.clear();
                let Some(cr) = find_line_end(buf, 1) else {
                    if buf.len() > INLINE_MAX {
                        return Decoded::Error(ProtocolError::TooBigMbulkCount);
                    }
                    return Decoded::Incomplete {
                        need: buf.len() + 1,
                    };
                };
                let count = match parse_i64_strict(&buf[1..cr]) {
                    Some(n) if n <= i32::MAX as i64 => n,
                    _ => return Decoded::Error(ProtocolError::InvalidMultibulkLength),
                };
                if unauth && count > UNAUTH_MAX_ARGC {
                    return Decoded::Error(ProtocolError::UnauthMultibulkLength);
                }
                if count <= 0 {
                    return Decoded::Nothing { len: cr + 2 };
                }
                Multibulk {
                    argc: count as usize,
                    pos: cr + 2,
                }
            }
        };
        while self.spans.len() < state.argc {
            let pos = state.pos;
            if pos >= buf.len() {
                self.partial = Some(state);
                return Decoded::Incomplete { need: pos + 1 };
            }
            if buf[pos] != b'$' {
                self.reset();
                return Decoded::Error(ProtocolError::ExpectedDollar(buf[pos]));
            }
            let Some(cr) = find_line_end(buf, pos + 1) else {
                if buf.len() - pos > INLINE_MAX {
                    self.reset();
                    return Decoded::Error(ProtocolError::TooBigBulkCount);
                }
                self.partial = Some(state);
                return Decoded::Incomplete {
                    need: buf.len() + 1,
                };
            };
            let len = match parse_i64_strict(&buf[pos + 1..cr]) {
                Some(n) if n >= 0 && n <= self.max_bulk => n,
                _ => {
                    self.reset();
                    return Decoded::Error(ProtocolError::InvalidBulkLength);
                }
            };
            if unauth && len > UNAUTH_MAX_BULK {
                self.reset();
                return Decoded::Error(ProtocolError::UnauthBulkLength);
            }
            let start = cr + 2;
            let end = start + len as usize;
            // Redis skips the two bytes after the data without checking them.
            if end + 2 > buf.len() {
                self.partial = Some(state);
                return Decoded::Incomplete { need: end + 2 };
            }
            self.spans.push(Span {
                start,
                end,
                in_scratch: false,
            });
            state.pos = end + 2;
        }
        self.partial = None;
        Decoded::Request {
            len: state.pos,
            inline: false,
        }
    }

    fn decode_inline(&mut self, buf: &[u8]) -> Decoded {
        self.spans.clear();
        self.scratch.clear();
        let newline = match memchr(b'\n', buf) {
            // Redis searches with strchr: a NUL before the newline hides it.
            Some(nl) if memchr(0, &buf[..nl]).is_none() => nl,
            _ => {
                if buf.len() > INLINE_MAX {
                    return Decoded::Error(ProtocolError::TooBigInline);
                }
                return Decoded::Incomplete {
                    need: buf.len() + 1,
                };
            }
        };
        let mut line_end = newline;
        if line_end > 0 && buf[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        if split_inline(&buf[..line_end], &mut self.spans, &mut self.scratch).is_err() {
            return Decoded::Error(ProtocolError::UnbalancedQuotes);
        }
        if self.spans.is_empty() {
            return Decoded::Nothing { len: newline + 1 };
        }
        Decoded::Request {
            len: newline + 1,
            inline: true,
        }
    }

    fn reset(&mut self) {
        self.partial = None;
        self.spans.clear();
    }
}

/// Position of the `\r` ending the line that starts at `from`, if the byte after it has arrived too.
#[inline]
fn find_line_end(buf: &[u8], from: usize) -> Option<usize> {
    let cr = from + memchr(b'\r', buf.get(from..)?)?;
    (cr + 1 < buf.len()).then_some(cr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(d: &Decoder, buf: &[u8]) -> Vec<Vec<u8>> {
        d.spans()
            .iter()
            .map(|s| {
                if s.in_scratch {
                    d.scratch()[s.start..s.end].to_vec()
                } else {
                    buf[s.start..s.end].to_vec()
                }
            })
            .collect()
    }

    #[test]
    fn multibulk_whole_and_resumed() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        let mut d = Decoder::new(512 << 20);
        assert_eq!(
            d.decode(req, false),
            Decoded::Request {
                len: req.len(),
                inline: false
            }
        );
        assert_eq!(
            args(&d, req),
            vec![b"SET".to_vec(), b"k".to_vec(), b"value".to_vec()]
        );
        for cut in 1..req.len() {
            let mut d = Decoder::new(512 << 20);
            assert!(
                matches!(d.decode(&req[..cut], false), Decoded::Incomplete { .. }),
                "cut {cut}"
            );
            assert_eq!(
                d.decode(req, false),
                Decoded::Request {
                    len: req.len(),
                    inline: false
                }
            );
            assert_eq!(args(&d, req).len(), 3);
        }
    }

    #[test]
    fn protocol_errors() {
        let mut d = Decoder::new(512 << 20);
        assert_eq!(
            d.decode(b"*z\r\n", false),
            Decoded::Error(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            d.decode(b"*+1\r\n", false),
            Decoded::Error(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            d.decode(b"*1\r\n+PING\r\n", false),
            Decoded::Error(ProtocolError::ExpectedDollar(b'+'))
        );
        assert_eq!(
            d.decode(b"*1\r\n$-1\r\n", false),
            Decoded::Error(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            d.decode(b"*1\r\n$600000000\r\n", false),
            Decoded::Error(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            d.decode(b"*11\r\n", true),
            Decoded::Error(ProtocolError::UnauthMultibulkLength)
        );
        assert_eq!(
            d.decode(b"*1\r\n$16385\r\n", true),
            Decoded::Error(ProtocolError::UnauthBulkLength)
        );
        assert_eq!(d.decode(b"*0\r\n", false), Decoded::Nothing { len: 4 });
        assert_eq!(d.decode(b"*-1\r\n", false), Decoded::Nothing { len: 5 });
        let long = vec![b'1'; INLINE_MAX + 2];
        let mut big = b"*".to_vec();
        big.extend_from_slice(&long);
        assert_eq!(
            d.decode(&big, false),
            Decoded::Error(ProtocolError::TooBigMbulkCount)
        );
        assert_eq!(
            d.decode(&long, false),
            Decoded::Error(ProtocolError::TooBigInline)
        );
        assert_eq!(
            ProtocolError::ExpectedDollar(b'+').text(),
            "ERR Protocol error: expected '$', got '+'"
        );
    }

    #[test]
    fn inline_splitting() {
        let mut d = Decoder::new(512 << 20);
        let buf = b"set  k \"a\\x41\\n b\" 'it\\'s'\r\n";
        assert_eq!(
            d.decode(buf, false),
            Decoded::Request {
                len: buf.len(),
                inline: true
            }
        );
        assert_eq!(
            args(&d, buf),
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"aA\n b".to_vec(),
                b"it's".to_vec()
            ]
        );
        let buf = b"ab\"c d\"\n";
        assert_eq!(
            d.decode(buf, false),
            Decoded::Request {
                len: buf.len(),
                inline: true
            }
        );
        assert_eq!(args(&d, buf), vec![b"abc d".to_vec()]);
        assert_eq!(
            d.decode(b"PING \"a\"b\r\n", false),
            Decoded::Error(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            d.decode(b"PING \"a\r\n", false),
            Decoded::Error(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(d.decode(b"\r\n", false), Decoded::Nothing { len: 2 });
        assert!(matches!(
            d.decode(b"PING\0\n", false),
            Decoded::Incomplete { .. }
        ));
    }
}
