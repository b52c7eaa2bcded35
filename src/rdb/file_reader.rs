//! Reads a whole RDB file (`dump.rdb`, an AOF base, a replication payload) as Redis 7.0's
//! `rdbLoadRioWithLoadingCtx` does, handing each aux field, function library, database
//! switch and key to a caller's sink, and checking the CRC-64 trailer.
//!
//! The stream is read exactly up to the end of the checksum, so an RDB-preamble AOF can go
//! on reading its command tail from the same reader. Corrupt or truncated input ends in an
//! error carrying Redis's wording, never a panic, and nothing is allocated from a length in
//! the file before the bytes it announces have arrived (see `frame`).

use std::fmt;
use std::io::{self, BufRead};
use std::path::Path;

use super::frame::{PullError, Source};
use super::{opcodes, read_object, types, Limits, Reader, RDB_VERSION_MAX_LOAD};
use crate::types::Value;

/// One thing found in the file, in file order.
#[derive(Debug)]
pub enum RdbEvent {
    /// An `AUX` field (`redis-ver`, `ctime`, `repl-id`, ...; unknown ones too).
    Aux { key: Vec<u8>, value: Vec<u8> },
    /// A function library's source code (`FUNCTION2`; 7.0-rc libraries are converted to it).
    Function { code: Vec<u8> },
    /// `SELECTDB`: the keys that follow belong to `db`.
    SelectDb { db: u64 },
    /// `RESIZEDB`: a size hint for the current database.
    ResizeDb { db_size: u64, expires_size: u64 },
    /// A key with its value and what the opcodes before it said.
    Entry(RdbEntry),
}

/// A key as loaded. An expired key is reported too: a master drops it, a replica or an AOF
/// base keeps it (Redis decides by its role, so the caller does).
#[derive(Debug)]
pub struct RdbEntry {
    pub db: u64,
    pub key: Vec<u8>,
    pub value: Value,
    /// Absolute Unix time in ms (`EXPIRETIME_MS`, or `EXPIRETIME` seconds × 1000).
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (`IDLE`, written under an LRU maxmemory-policy).
    pub lru_idle: Option<u64>,
    /// LFU counter (`FREQ`, written under an LFU maxmemory-policy).
    pub lfu_freq: Option<u8>,
}

/// Receives the file's events; an error stops loading and is returned as is.
pub trait RdbSink {
    fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError>;
}

impl<F: FnMut(RdbEvent) -> Result<(), RdbLoadError>> RdbSink for F {
    fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError> {
        self(ev)
    }
}

/// How to read.
#[derive(Clone, Copy, Debug)]
pub struct RdbReadOptions {
    /// Encoding thresholds loaded values are converted with (the receiver's).
    pub limits: Limits,
    /// `databases`: a `SELECTDB` at or above it is fatal.
    pub databases: u64,
    /// `rdbchecksum` (and not `skip_checksum_validation`): check the trailer.
    pub verify_checksum: bool,
    /// Newest file version accepted. Stock 7.0 stops at 10; the default is the newest the
    /// object codec reads (12), as RESTORE accepts.
    pub max_version: u16,
}

impl Default for RdbReadOptions {
    fn default() -> RdbReadOptions {
        RdbReadOptions {
            limits: Limits::default(),
            databases: 16,
            verify_checksum: true,
            max_version: RDB_VERSION_MAX_LOAD,
        }
    }
}

/// What happened to the checksum trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumCheck {
    /// Present and equal to the file's CRC-64.
    Verified,
    /// Zero: the file was written with `rdbchecksum no` (Redis logs that and goes on).
    Disabled,
    /// Not compared (`verify_checksum` off).
    Skipped,
    /// Versions before 5 have no trailer.
    Absent,
}

/// What a successful read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdbSummary {
    pub version: u16,
    pub checksum: ChecksumCheck,
    /// Bytes read: the whole file, trailer included.
    pub bytes: u64,
    /// Keys handed to the sink.
    pub keys: u64,
    /// Empty aggregates Redis skips with a warning instead of failing (old bug #8453).
    pub empty_keys_skipped: u64,
}

/// Why a file could not be read. `Display` gives Redis's log text where it has one.
#[derive(Debug)]
pub enum RdbLoadError {
    Io(io::Error),
    /// The file ended early (or, in Redis's words, a short read).
    UnexpectedEof {
        offset: u64,
    },
    WrongSignature,
    UnsupportedVersion(i64),
    /// Bytes no encoding allows; `reason` is Redis's text where it has one.
    Corrupt {
        offset: u64,
        reason: String,
    },
    Checksum {
        expected: u64,
        found: u64,
    },
    TooManyDatabases {
        databases: u64,
    },
    /// `MODULE_AUX` data: redcell has no modules.
    ModuleAux {
        module: String,
    },
    /// A module value: redcell has no modules.
    ModuleValue {
        module: String,
    },
    /// Raised by the sink.
    Sink(String),
}

impl fmt::Display for RdbLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbLoadError::Io(e) => write!(f, "Error reading the RDB file: {e}"),
            RdbLoadError::UnexpectedEof { .. } => write!(
                f,
                "Short read or OOM loading DB. Unrecoverable error, aborting now."
            ),
            RdbLoadError::WrongSignature => {
                write!(f, "Wrong signature trying to load DB from file")
            }
            RdbLoadError::UnsupportedVersion(v) => {
                write!(f, "Can't handle RDB format version {v}")
            }
            RdbLoadError::Corrupt { offset, reason } => {
                write!(
                    f,
                    "Internal error in RDB reading offset {offset} -> {reason}"
                )
            }
            RdbLoadError::Checksum { expected, found } => write!(
                f,
                "Wrong RDB checksum expected: ({expected:x}) but got ({found:x}). Aborting now."
            ),
            RdbLoadError::TooManyDatabases { databases } => write!(
                f,
                "FATAL: Data file was created with a Redis server configured to handle more \
                 than {databases} databases. Exiting"
            ),
            RdbLoadError::ModuleAux { module } => write!(
                f,
                "The RDB file contains AUX module data I can't load: no matching module \
                 '{module}'"
            ),
            RdbLoadError::ModuleValue { module } => write!(
                f,
                "The RDB file contains module data I can't load: no matching module type \
                 '{module}'"
            ),
            RdbLoadError::Sink(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for RdbLoadError {}

/// Reads a whole RDB file from disk (see `read_rdb`).
pub fn read_rdb_file(
    path: &Path,
    opts: &RdbReadOptions,
    sink: &mut dyn RdbSink,
) -> Result<RdbSummary, RdbLoadError> {
    let f = std::fs::File::open(path).map_err(RdbLoadError::Io)?;
    read_rdb(io::BufReader::with_capacity(64 << 10, f), opts, sink)
}

/// Reads one RDB file from `src`, stopping right after its checksum (or `EOF` opcode for
/// versions before 5). Pass `&mut reader` to keep reading what follows.
pub fn read_rdb<R: BufRead>(
    src: R,
    opts: &RdbReadOptions,
    sink: &mut dyn RdbSink,
) -> Result<RdbSummary, RdbLoadError> {
    let mut l = Loader {
        src: Source::new(src),
        opts,
    };
    l.run(sink)
}

struct Loader<'o, R> {
    src: Source<R>,
    opts: &'o RdbReadOptions,
}

impl<R: BufRead> Loader<'_, R> {
    /// Turns a pull failure into the error Redis reports for it here.
    fn err(&self, e: PullError) -> RdbLoadError {
        match e {
            PullError::Eof => RdbLoadError::UnexpectedEof {
                offset: self.src.offset(),
            },
            PullError::Io(e) => RdbLoadError::Io(e),
            PullError::Corrupt(reason) => self.corrupt(reason),
        }
    }

    fn corrupt(&self, reason: String) -> RdbLoadError {
        RdbLoadError::Corrupt {
            offset: self.src.offset(),
            reason,
        }
    }

    /// Pulls one string and decodes it.
    fn string(&mut self) -> Result<Vec<u8>, RdbLoadError> {
        self.src.start_item();
        self.src.string().map_err(|e| self.err(e))?;
        match Reader::new(&self.src.item).string() {
            Ok(s) => Ok(s.into_owned()),
            Err(_) => Err(self.corrupt("Invalid LZF compressed string".into())),
        }
    }

    fn len(&mut self) -> Result<u64, RdbLoadError> {
        self.src.start_item();
        self.src.length().map_err(|e| self.err(e))
    }

    fn u8(&mut self) -> Result<u8, RdbLoadError> {
        self.src.start_item();
        self.src.u8().map_err(|e| self.err(e))
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], RdbLoadError> {
        self.src.start_item();
        self.src.bytes().map_err(|e| self.err(e))
    }

    fn run(&mut self, sink: &mut dyn RdbSink) -> Result<RdbSummary, RdbLoadError> {
        let magic: [u8; 9] = self.bytes()?;
        if &magic[..5] != b"REDIS" {
            return Err(RdbLoadError::WrongSignature);
        }
        let version = c_atoi(&magic[5..]);
        if version < 1 || version > self.opts.max_version as i64 {
            return Err(RdbLoadError::UnsupportedVersion(version));
        }
        let version = version as u16;
        let mut summary = RdbSummary {
            version,
            checksum: ChecksumCheck::Absent,
            bytes: 0,
            keys: 0,
            empty_keys_skipped: 0,
        };
        let mut db = 0u64;
        // Set by the opcodes before a key, cleared after it.
        let (mut expire_ms, mut lru_idle, mut lfu_freq) = (None, None, None);
        loop {
            let t = self.u8()?;
            match t {
                opcodes::EXPIRETIME => {
                    // Seconds, in host order (little-endian on every host we run on).
                    let secs = i32::from_le_bytes(self.bytes()?);
                    expire_ms = Some(secs as i64 * 1000);
                }
                opcodes::EXPIRETIME_MS => expire_ms = Some(i64::from_le_bytes(self.bytes()?)),
                opcodes::FREQ => lfu_freq = Some(self.u8()?),
                opcodes::IDLE => lru_idle = Some(self.len()?),
                opcodes::EOF => break,
                opcodes::SELECTDB => {
                    db = self.len()?;
                    if db >= self.opts.databases {
                        return Err(RdbLoadError::TooManyDatabases {
                            databases: self.opts.databases,
                        });
                    }
                    sink.event(RdbEvent::SelectDb { db })?;
                }
                opcodes::RESIZEDB => {
                    let db_size = self.len()?;
                    let expires_size = self.len()?;
                    sink.event(RdbEvent::ResizeDb {
                        db_size,
                        expires_size,
                    })?;
                }
                opcodes::AUX => {
                    let key = self.string()?;
                    let value = self.string()?;
                    sink.event(RdbEvent::Aux { key, value })?;
                }
                opcodes::MODULE_AUX => {
                    let module_id = self.len()?;
                    let when_opcode = self.len()?;
                    self.len()?;
                    // RDB_MODULE_OPCODE_UINT precedes `when`.
                    if when_opcode != 2 {
                        return Err(self.corrupt("bad when_opcode".into()));
                    }
                    return Err(RdbLoadError::ModuleAux {
                        module: module_type_name(module_id),
                    });
                }
                opcodes::FUNCTION2 => {
                    let code = self.string()?;
                    sink.event(RdbEvent::Function { code })?;
                }
                opcodes::FUNCTION_PRE_GA => {
                    let code = self.pre_ga_function()?;
                    sink.event(RdbEvent::Function { code })?;
                }
                // 7.4's per-slot resize hint (cluster mode); only a hint, so skipped.
                opcodes::SLOT_INFO if version >= 12 => {
                    for _ in 0..3 {
                        self.len()?;
                    }
                }
                _ => {
                    let key = self.string()?;
                    match self.value(t, &key)? {
                        Some(value) => {
                            summary.keys += 1;
                            sink.event(RdbEvent::Entry(RdbEntry {
                                db,
                                key,
                                value,
                                expire_ms,
                                lru_idle,
                                lfu_freq,
                            }))?;
                        }
                        None => summary.empty_keys_skipped += 1,
                    }
                    (expire_ms, lru_idle, lfu_freq) = (None, None, None);
                }
            }
        }
        if version >= 5 {
            let expected = self.src.crc();
            let found = u64::from_le_bytes(self.bytes()?);
            summary.checksum = if !self.opts.verify_checksum {
                ChecksumCheck::Skipped
            } else if found == 0 {
                ChecksumCheck::Disabled
            } else if found != expected {
                return Err(RdbLoadError::Checksum { expected, found });
            } else {
                ChecksumCheck::Verified
            };
        }
        summary.bytes = self.src.offset();
        Ok(summary)
    }

    /// The value of type `t` after its key; `None` for an empty aggregate Redis skips.
    fn value(&mut self, t: u8, key: &[u8]) -> Result<Option<Value>, RdbLoadError> {
        if t == types::MODULE || t == types::MODULE_2 {
            let id = self.len()?;
            return Err(RdbLoadError::ModuleValue {
                module: module_type_name(id),
            });
        }
        self.src.start_item();
        let known = self.src.object(t).map_err(|e| self.err(e))?;
        if !known {
            return Err(self.corrupt(format!("Unknown RDB encoding type {t}")));
        }
        let mut r = Reader::new(&self.src.item);
        match read_object(&mut r, t, &self.opts.limits) {
            Ok(v) if r.is_empty() => Ok(Some(v)),
            _ if is_empty_aggregate(t, &self.src.item) => Ok(None),
            _ => Err(self.corrupt(format!(
                "Bad data format in the value of key '{}' (RDB type {t})",
                String::from_utf8_lossy(key)
            ))),
        }
    }

    /// A 7.0-rc function (`RDB_OPCODE_FUNCTION`): name, engine, optional description and
    /// code, turned into the `#!<engine> name=<name>` source 7.0 GA keeps, as Redis does.
    fn pre_ga_function(&mut self) -> Result<Vec<u8>, RdbLoadError> {
        let name = self.string()?;
        let engine = self.string()?;
        if self.len()? != 0 {
            self.string()?;
        }
        let blob = self.string()?;
        let mut code = b"#!".to_vec();
        code.extend_from_slice(&engine);
        code.extend_from_slice(b" name=");
        code.extend_from_slice(&name);
        code.push(b'\n');
        code.extend_from_slice(&blob);
        Ok(code)
    }
}

/// Whether a value that failed to decode is one of the empty aggregates Redis's
/// `rdbLoadObject` skips (`goto emptykey`): a zero count, or a list/zset/hash blob with no
/// entries. (An empty intset or a quicklist of only empty nodes stays an error there too.)
fn is_empty_aggregate(t: u8, obj: &[u8]) -> bool {
    let mut r = Reader::new(obj);
    match t {
        types::LIST
        | types::SET
        | types::ZSET
        | types::ZSET_2
        | types::HASH
        | types::LIST_QUICKLIST
        | types::LIST_QUICKLIST_2 => r.len() == Ok(0),
        types::LIST_ZIPLIST | types::ZSET_ZIPLIST | types::HASH_ZIPLIST => r
            .string()
            .is_ok_and(|b| super::ziplist::entries(&b).is_ok_and(|e| e.is_empty())),
        types::ZSET_LISTPACK | types::HASH_LISTPACK => r
            .string()
            .is_ok_and(|b| super::listpack::entries(&b).is_ok_and(|e| e.is_empty())),
        _ => false,
    }
}

/// A module type's 9-character name from its 64-bit id (`moduleTypeNameByID`).
fn module_type_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [0u8; 9];
    for c in name.iter_mut().rev() {
        *c = CHARSET[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}

/// C's `atoi` on the version digits: optional blanks and sign, then digits up to the first
/// other byte (so `0010` is 10 and `00a1` is 0, which no version matches).
fn c_atoi(text: &[u8]) -> i64 {
    let mut it = text
        .iter()
        .copied()
        .skip_while(|c| c.is_ascii_whitespace() || *c == 0x0b)
        .peekable();
    let neg = match it.peek() {
        Some(b'-') => {
            it.next();
            true
        }
        Some(b'+') => {
            it.next();
            false
        }
        _ => false,
    };
    let mut v = 0i64;
    for c in it.take_while(u8::is_ascii_digit) {
        v = v * 10 + (c - b'0') as i64;
    }
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_and_module_names() {
        assert_eq!(c_atoi(b"0010"), 10);
        assert_eq!(c_atoi(b"00a1"), 0);
        assert_eq!(c_atoi(b"-001"), -1);
        assert_eq!(c_atoi(b" 12x"), 12);
        // "ABCDEFGHI" is characters 0..8 of the set, 6 bits each, above a 10-bit version.
        let mut id = 0u64;
        for i in 0..9u64 {
            id = (id << 6) | i;
        }
        assert_eq!(module_type_name((id << 10) | 3), "ABCDEFGHI");
    }
}
