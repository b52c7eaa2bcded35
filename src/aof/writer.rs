//! Builds what is appended to the current incr file, as Redis 7.0's `feedAppendOnlyFile`
//! does: each command as a RESP array of bulk strings, preceded by `SELECT <db>` whenever
//! the database differs from the last command's (and always first after a reset), and by a
//! `#TS:<unix seconds>` annotation when `aof-timestamp-enabled` asks for one.

/// Commands waiting to be written to the incr file.
#[derive(Debug, Default, Clone)]
pub struct IncrBuffer {
    buf: Vec<u8>,
    /// The database of the last command appended; `None` forces a SELECT (server start, a
    /// new incr file for a rewrite).
    selected_db: Option<u64>,
    /// The last annotated second.
    last_timestamp: i64,
}

impl IncrBuffer {
    pub fn new() -> IncrBuffer {
        IncrBuffer::default()
    }

    /// Appends `argv`, run in database `db`.
    pub fn append(&mut self, db: u64, argv: &[&[u8]]) {
        if self.selected_db != Some(db) {
            let db_text = db.to_string();
            encode_command(&mut self.buf, &[b"SELECT", db_text.as_bytes()]);
            self.selected_db = Some(db);
        }
        encode_command(&mut self.buf, argv);
    }

    /// With `aof-timestamp-enabled`: before the next command, `#TS:<now>` if the second
    /// changed since the last annotation (`genAofTimestampAnnotationIfNeeded`).
    pub fn annotate_time(&mut self, now_unix_secs: i64) {
        if self.last_timestamp < now_unix_secs {
            self.last_timestamp = now_unix_secs;
            self.buf
                .extend_from_slice(format!("#TS:{now_unix_secs}\r\n").as_bytes());
        }
    }

    /// The next command gets a SELECT whatever its database (Redis sets
    /// `aof_selected_db = -1` at start and when a rewrite opens a new incr file).
    pub fn reset_selected_db(&mut self) {
        self.selected_db = None;
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the pending bytes (to write them), keeping the SELECT state.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// `catAppendOnlyGenericCommand`: `*<argc>\r\n` then `$<len>\r\n<arg>\r\n` per argument.
pub fn encode_command(out: &mut Vec<u8>, argv: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(argv.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in argv {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_verified_incr_bytes() {
        // aof.md §4: SET k1 v1; SET k2 v2 EX 1000 in db 1 (propagated as PXAT); INCR ctr.
        let mut b = IncrBuffer::new();
        b.append(0, &[b"SET", b"k1", b"v1"]);
        b.append(1, &[b"SET", b"k2", b"v2", b"PXAT", b"1796306009492"]);
        b.append(0, &[b"INCR", b"ctr"]);
        let want: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n\
            *2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*5\r\n$3\r\nSET\r\n$2\r\nk2\r\n$2\r\nv2\r\n$4\r\nPXAT\r\n\
            $13\r\n1796306009492\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
        assert_eq!(b.bytes(), want);
        assert_eq!(want.len(), 180);
        let taken = b.take();
        assert!(b.is_empty() && taken.len() == 180);
        // Same database: no SELECT, until a reset.
        b.append(0, &[b"PING"]);
        assert_eq!(b.bytes(), b"*1\r\n$4\r\nPING\r\n");
        b.reset_selected_db();
        b.append(0, &[b"PING"]);
        assert!(b
            .bytes()
            .ends_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*1\r\n$4\r\nPING\r\n"));
    }

    #[test]
    fn timestamp_annotations_once_per_second() {
        let mut b = IncrBuffer::new();
        b.annotate_time(1_796_304_837);
        b.append(0, &[b"SET", b"a", b"1"]);
        b.annotate_time(1_796_304_837);
        b.append(0, &[b"SET", b"b", b"2"]);
        b.annotate_time(1_796_304_838);
        assert!(b
            .bytes()
            .starts_with(b"#TS:1796304837\r\n*2\r\n$6\r\nSELECT"));
        assert!(b.bytes().ends_with(b"$1\r\n2\r\n#TS:1796304838\r\n"));
        assert_eq!(b.bytes().windows(4).filter(|w| w == b"#TS:").count(), 2);
    }
}
