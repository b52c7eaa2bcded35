//! The replication backlog: the last `repl-backlog-size` bytes of the replication stream
//! and the offset of its last byte, from which a returning replica resumes (`+CONTINUE`).

use std::collections::VecDeque;

pub struct Backlog {
    /// The newest bytes of the stream, at most `size` of them.
    buf: VecDeque<u8>,
    size: usize,
    /// Offset of the stream's last byte (Redis's `master_repl_offset`).
    offset: i64,
}

impl Backlog {
    /// A backlog continuing a stream whose last byte has offset `offset`.
    pub fn new(size: usize, offset: i64) -> Backlog {
        Backlog {
            buf: VecDeque::new(),
            size: size.max(1),
            offset,
        }
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Bytes held (`repl_backlog_histlen`).
    pub fn histlen(&self) -> i64 {
        self.buf.len() as i64
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Offset of the oldest byte held (`repl_backlog_first_byte_offset`).
    pub fn first_byte_offset(&self) -> i64 {
        self.offset - self.histlen() + 1
    }

    pub fn append(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as i64;
        if bytes.len() >= self.size {
            self.buf.clear();
            self.buf.extend(&bytes[bytes.len() - self.size..]);
            return;
        }
        let over = (self.buf.len() + bytes.len()).saturating_sub(self.size);
        self.buf.drain(..over);
        self.buf.extend(bytes);
    }

    /// `repl-backlog-size` changed: keeps the newest bytes that fit.
    pub fn resize(&mut self, size: usize) {
        self.size = size.max(1);
        let over = self.buf.len().saturating_sub(self.size);
        self.buf.drain(..over);
    }

    /// The stream from offset `from` (the first byte a replica lacks) to the end, if the
    /// backlog still holds it (Redis's `masterTryPartialResynchronization` bounds).
    pub fn since(&self, from: i64) -> Option<Vec<u8>> {
        if from < self.first_byte_offset() || from > self.offset + 1 {
            return None;
        }
        let skip = (from - self.first_byte_offset()) as usize;
        Some(self.buf.iter().skip(skip).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes_and_answers_what_it_holds() {
        let mut b = Backlog::new(8, 100);
        // Empty (a promoted replica's): a replica at its end continues with nothing to send.
        assert_eq!(b.since(101).as_deref(), Some(&b""[..]));
        assert_eq!(b.since(100), None);
        b.append(b"abcdef");
        assert_eq!(
            (b.offset(), b.first_byte_offset(), b.histlen()),
            (106, 101, 6)
        );
        assert_eq!(b.since(103).as_deref(), Some(&b"cdef"[..]));
        assert_eq!(b.since(107).as_deref(), Some(&b""[..]));
        assert_eq!(b.since(108), None);
        b.append(b"ghij");
        assert_eq!((b.offset(), b.first_byte_offset()), (110, 103));
        assert_eq!(b.since(102), None);
        assert_eq!(b.since(103).as_deref(), Some(&b"cdefghij"[..]));
        b.append(b"0123456789");
        assert_eq!(b.since(113).as_deref(), Some(&b"23456789"[..]));
        b.resize(4);
        assert_eq!(b.since(117).as_deref(), Some(&b"6789"[..]));
    }
}
