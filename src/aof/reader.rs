//! Reads one AOF file as Redis 7.0's `loadSingleAppendOnlyFile` does: an RDB part first when
//! the file starts with `REDIS` (a `.base.rdb`, or a legacy RDB-preamble AOF), then RESP
//! commands one by one, handed to a sink in file order.
//!
//! Lines are read the way Redis reads them (`fgets` with a 1024-byte buffer, `atoi`/`strtol`
//! on the counts, the two bytes after an argument skipped unchecked), so the same files
//! load, fail or are found truncated at the same offsets. Commands between `MULTI` and `EXEC`
//! are held back and handed over when `EXEC` arrives: Redis queues them and runs nothing
//! before `EXEC`, and a transaction cut off by the end of the file is dropped (reverted).

use std::fmt;
use std::io::{self, BufRead, Read};

use crate::rdb::file_reader::{read_rdb, RdbLoadError, RdbReadOptions, RdbSink, RdbSummary};

/// `AOF_ANNOTATION_LINE_MAX_LEN`: the `fgets` buffer (a line is read at most 1023 bytes at a
/// time).
const LINE_BUF: usize = 1024;
/// Arguments are read in pieces of this size, so a lying `$<len>` allocates nothing ahead.
const READ_CHUNK: usize = 64 << 10;

/// Receives what an AOF holds: the RDB part's events, then the commands.
pub trait AofSink: RdbSink {
    /// One command (argv) to run, in file order. Commands of a transaction arrive together
    /// when its `EXEC` is read (`MULTI` first).
    fn command(&mut self, file: &str, argv: Vec<Vec<u8>>) -> Result<(), AofError>;

    /// Whether `name` is a command (Redis fails the load on an unknown one, even inside a
    /// transaction). Checked for every command as soon as it is read.
    fn is_command(&mut self, _name: &[u8]) -> bool {
        true
    }
}

/// Why an AOF could not be loaded. `Display` gives the line Redis logs before exiting.
#[derive(Debug)]
pub enum AofError {
    BadFormat {
        file: String,
    },
    /// The file ends early and `aof-load-truncated` is off.
    UnexpectedEof {
        file: String,
    },
    /// A file other than the last one ends early (Redis has truncated it at `offset` by
    /// then when `aof-load-truncated` is on).
    TruncatedNotLast {
        file: String,
        offset: u64,
    },
    UnknownCommand {
        file: String,
        name: Vec<u8>,
    },
    /// The RDB part failed; `legacy` for an old single-file AOF with an RDB preamble.
    Rdb {
        file: String,
        legacy: bool,
        source: RdbLoadError,
    },
    Io {
        file: String,
        err: io::Error,
    },
    Open {
        file: String,
        err: io::Error,
    },
    Stat {
        file: String,
        err: io::Error,
    },
    /// Raised by the sink.
    Sink(String),
}

/// An `io::Error` as `strerror` words it (without Rust's " (os error N)").
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for AofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AofError::BadFormat { file } => write!(
                f,
                "Bad file format reading the append only file {file}: make a backup of your \
                 AOF file, then use ./redis-check-aof --fix <filename.manifest>"
            ),
            AofError::UnexpectedEof { file } => write!(
                f,
                "Unexpected end of file reading the append only file {file}. You can: 1) Make \
                 a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. \
                 2) Alternatively you can set the 'aof-load-truncated' configuration option to \
                 yes and restart the server."
            ),
            AofError::TruncatedNotLast { .. } => {
                write!(f, "Fatal error: the truncated file is not the last file")
            }
            AofError::UnknownCommand { file, name } => write!(
                f,
                "Unknown command '{}' reading the append only file {file}",
                String::from_utf8_lossy(name)
            ),
            AofError::Rdb { file, legacy, .. } => {
                if *legacy {
                    write!(
                        f,
                        "Error reading the RDB preamble of the AOF file {file}, AOF loading \
                         aborted"
                    )
                } else {
                    write!(
                        f,
                        "Error reading the RDB base file {file}, AOF loading aborted"
                    )
                }
            }
            AofError::Io { file, err } => write!(
                f,
                "Unrecoverable error reading the append only file {file}: {}",
                strerror(err)
            ),
            AofError::Open { file, err } => write!(
                f,
                "Fatal error: can't open the append log file {file} for reading: {}",
                strerror(err)
            ),
            AofError::Stat { file, err } => write!(
                f,
                "Unable to obtain the AOF file {file} length. stat: {}",
                strerror(err)
            ),
            AofError::Sink(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for AofError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AofError::Rdb { source, .. } => Some(source),
            AofError::Io { err, .. } | AofError::Open { err, .. } | AofError::Stat { err, .. } => {
                Some(err)
            }
            _ => None,
        }
    }
}

/// How one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AofFileStatus {
    /// Read to its end.
    Complete,
    /// The file ends inside a command, or inside `MULTI` without `EXEC`
    /// (`reverted_multi`, "Revert incomplete MULTI/EXEC transaction in AOF file ..."). With
    /// `aof-load-truncated yes` Redis truncates the file to `valid_up_to` and goes on; the
    /// commands after that offset were not handed to the sink.
    Truncated {
        valid_up_to: u64,
        reverted_multi: bool,
    },
}

/// What reading one file found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AofFileSummary {
    pub status: AofFileStatus,
    /// Bytes read.
    pub bytes: u64,
    /// Commands handed to the sink.
    pub commands: u64,
    /// The RDB part, when the file starts with one.
    pub rdb: Option<RdbSummary>,
}

/// Reads one AOF file from `src`. `file` names it in errors and for the sink; `legacy` marks
/// an old single-file AOF (only the error text differs). Keys of an RDB part are reported
/// expired or not: Redis keeps expired keys of an AOF base, since the commands after it
/// were logged against that exact keyspace.
pub fn read_aof<R: BufRead, S: AofSink>(
    src: R,
    file: &str,
    legacy: bool,
    rdb_opts: &RdbReadOptions,
    sink: &mut S,
) -> Result<AofFileSummary, AofError> {
    let mut src = src;
    // The first 5 bytes say which format the file is in; they are read again afterwards.
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match src.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(AofError::Io {
                    file: file.into(),
                    err,
                })
            }
        }
    }
    let mut r = CommandReader {
        src: (&head[..got]).chain(src),
        offset: 0,
        file,
    };
    let mut rdb = None;
    if &head[..got] == b"REDIS" {
        let summary = read_rdb(&mut r.src, rdb_opts, sink).map_err(|source| AofError::Rdb {
            file: file.into(),
            legacy,
            source,
        })?;
        r.offset = summary.bytes;
        rdb = Some(summary);
    }
    let (status, commands) = r.commands(sink)?;
    Ok(AofFileSummary {
        status,
        bytes: r.offset,
        commands,
        rdb,
    })
}

/// Why reading a command stopped early.
enum Stop {
    /// The file ended inside a command.
    Short,
    Fail(AofError),
}

struct CommandReader<'f, R> {
    src: R,
    offset: u64,
    file: &'f str,
}

impl<R: BufRead> CommandReader<'_, R> {
    fn io(&self, err: io::Error) -> Stop {
        Stop::Fail(AofError::Io {
            file: self.file.into(),
            err,
        })
    }

    fn bad_format(&self) -> Stop {
        Stop::Fail(AofError::BadFormat {
            file: self.file.into(),
        })
    }

    /// `fgets(buf, 1024, fp)`: through the next `\n`, at most 1023 bytes; `None` at the end
    /// of the file when nothing is left.
    fn line(&mut self) -> Result<Option<Vec<u8>>, Stop> {
        let mut line = Vec::new();
        while line.len() < LINE_BUF - 1 {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
            };
            if avail.is_empty() {
                break;
            }
            let room = (LINE_BUF - 1 - line.len()).min(avail.len());
            let (n, done) = match avail[..room].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (room, false),
            };
            line.extend_from_slice(&avail[..n]);
            self.src.consume(n);
            self.offset += n as u64;
            if done {
                break;
            }
        }
        Ok((!line.is_empty()).then_some(line))
    }

    /// Exactly `n` bytes appended to `out` (read in pieces as they arrive).
    fn exact(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), Stop> {
        let mut left = n;
        while left > 0 {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io(e)),
            };
            if avail.is_empty() {
                return Err(Stop::Short);
            }
            let k = avail
                .len()
                .min(READ_CHUNK)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            out.extend_from_slice(&avail[..k]);
            self.src.consume(k);
            self.offset += k as u64;
            left -= k as u64;
        }
        Ok(())
    }

    /// One command's argv; `None` at a clean end of file. Annotations (`#...`) are skipped.
    fn command(&mut self) -> Result<Option<Vec<Vec<u8>>>, Stop> {
        let line = loop {
            match self.line()? {
                None => return Ok(None),
                Some(l) if l[0] == b'#' => continue,
                Some(l) => break l,
            }
        };
        if line[0] != b'*' {
            return Err(self.bad_format());
        }
        // Redis reads "*" alone at the end of the file as a short read; a NUL there is a
        // read error in Redis (fatal too), a format error here.
        match line.get(1) {
            None => return Err(Stop::Short),
            Some(0) => return Err(self.bad_format()),
            Some(_) => {}
        }
        // atoi: strtol's value cut to an int.
        let argc = c_strtol(&line[1..]) as i32;
        if argc < 1 {
            return Err(self.bad_format());
        }
        // Grown as arguments arrive: the count is not trusted for an allocation.
        let mut argv = Vec::new();
        for _ in 0..argc {
            let line = self.line()?.ok_or(Stop::Short)?;
            if line[0] != b'$' {
                return Err(self.bad_format());
            }
            let len = c_strtol(&line[1..]);
            // Redis takes a negative length as a huge unsigned one and dies allocating it.
            let len = u64::try_from(len).map_err(|_| self.bad_format())?;
            let mut arg = Vec::new();
            self.exact(len, &mut arg)?;
            // The CRLF after the argument: two bytes, not checked.
            let mut crlf = Vec::with_capacity(2);
            self.exact(2, &mut crlf)?;
            argv.push(arg);
        }
        Ok(Some(argv))
    }

    /// Reads commands to the end of the file, handing them to `sink`.
    fn commands<S: AofSink>(&mut self, sink: &mut S) -> Result<(AofFileStatus, u64), AofError> {
        // Offsets just after the last whole command, and before the open MULTI. Redis starts
        // `valid_up_to` at 0 even after an RDB part, and would then truncate a whole base
        // away for a bad command right after it; we start at the end of the RDB part.
        let mut valid_up_to = self.offset;
        let mut valid_before_multi = self.offset;
        let mut queued: Option<Vec<Vec<Vec<u8>>>> = None;
        let mut delivered = 0u64;
        loop {
            let argv = match self.command() {
                Ok(Some(argv)) => argv,
                Ok(None) => break,
                Err(Stop::Short) => {
                    // Queued commands of an open transaction never ran in Redis either.
                    return Ok((
                        AofFileStatus::Truncated {
                            valid_up_to,
                            reverted_multi: false,
                        },
                        delivered,
                    ));
                }
                Err(Stop::Fail(e)) => return Err(e),
            };
            let name = &argv[0];
            if !sink.is_command(name) {
                return Err(AofError::UnknownCommand {
                    file: self.file.into(),
                    name: name.clone(),
                });
            }
            let is_multi = name.eq_ignore_ascii_case(b"multi");
            let is_exec = name.eq_ignore_ascii_case(b"exec");
            if is_multi {
                valid_before_multi = valid_up_to;
            }
            match &mut queued {
                Some(q) if !is_exec => q.push(argv),
                Some(_) => {
                    let mut q = queued.take().unwrap_or_default();
                    q.push(argv);
                    for argv in q {
                        sink.command(self.file, argv)?;
                        delivered += 1;
                    }
                }
                None if is_multi => queued = Some(vec![argv]),
                None => {
                    sink.command(self.file, argv)?;
                    delivered += 1;
                }
            }
            valid_up_to = self.offset;
        }
        if queued.is_some() {
            return Ok((
                AofFileStatus::Truncated {
                    valid_up_to: valid_before_multi,
                    reverted_multi: true,
                },
                delivered,
            ));
        }
        Ok((AofFileStatus::Complete, delivered))
    }
}

/// C's `strtol(text, NULL, 10)`: optional blanks and sign, digits up to the first other
/// byte (or NUL), saturating.
fn c_strtol(text: &[u8]) -> i64 {
    crate::aof::manifest::c_atoll(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::file_reader::{RdbEvent, RdbLoadError};

    /// Records everything; refuses `NOSUCHCMD`.
    #[derive(Default)]
    struct Record {
        keys: Vec<Vec<u8>>,
        commands: Vec<Vec<Vec<u8>>>,
    }

    impl RdbSink for Record {
        fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError> {
            if let RdbEvent::Entry(e) = ev {
                self.keys.push(e.key);
            }
            Ok(())
        }
    }

    impl AofSink for Record {
        fn command(&mut self, _file: &str, argv: Vec<Vec<u8>>) -> Result<(), AofError> {
            self.commands.push(argv);
            Ok(())
        }

        fn is_command(&mut self, name: &[u8]) -> bool {
            name != b"NOSUCHCMD"
        }
    }

    fn read(bytes: &[u8]) -> (Result<AofFileSummary, AofError>, Record) {
        let mut rec = Record::default();
        let r = read_aof(bytes, "f.aof", false, &RdbReadOptions::default(), &mut rec);
        (r, rec)
    }

    fn names(rec: &Record) -> Vec<String> {
        rec.commands
            .iter()
            .map(|a| String::from_utf8_lossy(&a[0]).into_owned())
            .collect()
    }

    const SET_A: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";

    #[test]
    fn reads_commands_and_skips_annotations() {
        let file = [
            b"#TS:1796304837\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
            SET_A,
            b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*1\r\n$4\r\nEXEC\r\n",
        ]
        .concat();
        let (r, rec) = read(&file);
        let s = r.unwrap();
        assert_eq!(s.status, AofFileStatus::Complete);
        assert_eq!((s.bytes, s.commands), (file.len() as u64, 5));
        assert_eq!(names(&rec), ["SELECT", "SET", "MULTI", "INCR", "EXEC"]);
        assert_eq!(rec.commands[1], [&b"SET"[..], b"a", b"1"]);
        // Binary arguments, CRLF inside, an empty argument.
        let (r, rec) = read(b"*3\r\n$3\r\nSET\r\n$4\r\n\r\n\x00\xff\r\n$0\r\n\r\n");
        assert!(r.is_ok());
        assert_eq!(rec.commands[0], [&b"SET"[..], b"\r\n\x00\xff", b""]);
    }

    #[test]
    fn every_cut_is_truncated_at_the_last_whole_command() {
        let file = [SET_A, SET_A].concat();
        for cut in 0..file.len() {
            let (r, rec) = read(&file[..cut]);
            let s = r.unwrap();
            let whole = if cut < SET_A.len() { 0 } else { SET_A.len() };
            let want = if cut == 0 || cut == SET_A.len() {
                AofFileStatus::Complete
            } else {
                AofFileStatus::Truncated {
                    valid_up_to: whole as u64,
                    reverted_multi: false,
                }
            };
            assert_eq!(s.status, want, "cut {cut}");
            assert_eq!(rec.commands.len(), whole / SET_A.len());
        }
    }

    #[test]
    fn an_open_multi_is_reverted_to_before_it() {
        let file = [SET_A, b"*1\r\n$5\r\nMULTI\r\n", SET_A].concat();
        let (r, rec) = read(&file);
        assert_eq!(
            r.unwrap().status,
            AofFileStatus::Truncated {
                valid_up_to: SET_A.len() as u64,
                reverted_multi: true
            }
        );
        assert_eq!(names(&rec), ["SET"]);
        // Cut inside the transaction: the offset after the last whole (queued) command, as
        // Redis's valid_up_to; nothing of the transaction ran.
        let cut = &file[..file.len() - 3];
        let (r, rec) = read(cut);
        assert_eq!(
            r.unwrap().status,
            AofFileStatus::Truncated {
                valid_up_to: SET_A.len() as u64 + 15,
                reverted_multi: false
            }
        );
        assert_eq!(names(&rec), ["SET"]);
    }

    #[test]
    fn bad_formats_as_redis_reads_them() {
        for bad in [
            &b"!3\r\n"[..],
            b"SET a 1\r\n",
            b"*0\r\n",
            b"*-1\r\n",
            b"*x\r\n",
            b"*\r\n",
            b"*1\r\n+OK\r\n",
            b"*1\r\n$-5\r\n",
            b"*4294967296\r\n",
        ] {
            let (r, _) = read(bad);
            let e = r.unwrap_err();
            assert!(matches!(e, AofError::BadFormat { .. }), "{bad:?}: {e:?}");
        }
        assert_eq!(
            read(b"x").0.unwrap_err().to_string(),
            "Bad file format reading the append only file f.aof: make a backup of your AOF \
             file, then use ./redis-check-aof --fix <filename.manifest>"
        );
        // atoi/strtol stop at the first non-digit, and the CRLF after an argument is not
        // checked: Redis loads these.
        let (r, rec) = read(b"*1abc\r\n$4xyz\r\nPINGzz");
        assert_eq!(r.unwrap().status, AofFileStatus::Complete);
        assert_eq!(rec.commands, [[b"PING".to_vec()]]);
        // 2^32 + 1 arguments cut to an int is 1.
        let (r, _) = read(b"*4294967297\r\n$4\r\nPING\r\n");
        assert_eq!(r.unwrap().status, AofFileStatus::Complete);
    }

    #[test]
    fn unknown_commands_fail_even_inside_multi() {
        let (r, _) = read(b"*1\r\n$5\r\nMULTI\r\n*1\r\n$9\r\nNOSUCHCMD\r\n");
        assert_eq!(
            r.unwrap_err().to_string(),
            "Unknown command 'NOSUCHCMD' reading the append only file f.aof"
        );
    }

    #[test]
    fn a_huge_length_is_a_short_read() {
        let (r, _) = read(b"*1\r\n$9223372036854775807\r\nabc");
        assert!(matches!(
            r.unwrap().status,
            AofFileStatus::Truncated { valid_up_to: 0, .. }
        ));
        let (r, _) = read(b"*2147483647\r\n$1\r\na\r\n");
        assert!(matches!(r.unwrap().status, AofFileStatus::Truncated { .. }));
    }

    #[test]
    fn long_lines_are_read_in_fgets_pieces() {
        // An annotation longer than the buffer: its tail is read as a line of its own, which
        // is not a command (Redis: bad format).
        let mut file = b"#".to_vec();
        file.extend_from_slice(&[b'x'; 1500]);
        file.extend_from_slice(b"\r\n");
        assert!(matches!(read(&file).0, Err(AofError::BadFormat { .. })));
    }

    #[test]
    fn random_damage_never_panics() {
        let good = [
            &b"#TS:1\r\n"[..],
            SET_A,
            b"*1\r\n$5\r\nMULTI\r\n",
            SET_A,
            b"*1\r\n$4\r\nEXEC\r\n",
            SET_A,
        ]
        .concat();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"*$\r\n#0123456789-MULTIEXEC";
        for _ in 0..5000 {
            let mut bad = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bad.len();
                bad[at] = alphabet[(next() as usize) % alphabet.len()];
            }
            bad.truncate((next() as usize) % (bad.len() + 1));
            // Any verdict will do; offsets stay within the file.
            if let (Ok(s), _) = read(&bad) {
                if let AofFileStatus::Truncated { valid_up_to, .. } = s.status {
                    assert!(valid_up_to <= bad.len() as u64);
                }
                assert_eq!(s.bytes, bad.len() as u64);
            }
        }
    }

    #[test]
    fn rdb_preamble_then_tail() {
        use crate::rdb::file_writer::{AuxFields, Eviction, RdbFileWriter, RdbWriteOptions};
        use crate::types::{StrValue, Value};
        let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
        let mut aux = AuxFields::new(1, 1);
        aux.aof_base = true;
        w.write_aux_fields(&aux).unwrap();
        w.write_db_header(0, 1, 1).unwrap();
        // Long expired: an AOF base still reports it.
        w.write_entry(
            b"k",
            &Value::Str(StrValue::from_bytes(b"v")),
            Some(1),
            Eviction::None,
        )
        .unwrap();
        let rdb = w.finish().unwrap();
        let file = [&rdb[..], SET_A, b"*3\r\n$3\r\nSET"].concat();
        let (r, rec) = read(&file);
        let s = r.unwrap();
        assert_eq!(rec.keys, [b"k".to_vec()]);
        assert_eq!(names(&rec), ["SET"]);
        assert_eq!(s.rdb.unwrap().bytes, rdb.len() as u64);
        assert_eq!(
            s.status,
            AofFileStatus::Truncated {
                valid_up_to: (rdb.len() + SET_A.len()) as u64,
                reverted_multi: false
            }
        );
        // A bad command right after the RDB part: truncate at its end, not at 0.
        let (r, _) = read(&[&rdb[..], b"*1\r\n$4\r\nPI"].concat());
        assert_eq!(
            r.unwrap().status,
            AofFileStatus::Truncated {
                valid_up_to: rdb.len() as u64,
                reverted_multi: false
            }
        );
        // A broken RDB part.
        let e = read(&rdb[..rdb.len() - 3]).0.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error reading the RDB base file f.aof, AOF loading aborted"
        );
        assert!(matches!(
            e,
            AofError::Rdb {
                source: RdbLoadError::UnexpectedEof { .. },
                ..
            }
        ));
        // Short files are RESP: "REDI" is just a bad format.
        assert!(matches!(read(b"REDI").0, Err(AofError::BadFormat { .. })));
    }
}
