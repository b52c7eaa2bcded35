//! Writes a whole RDB file as Redis 7.0's `rdbSaveRio` does (`REDIS0010`, aux fields,
//! functions, per database `SELECTDB` + `RESIZEDB` and its keys, `EOF`, CRC-64), piece by
//! piece into any `io::Write`, so a snapshot can be fed one key at a time.
//!
//! Order of calls: `new` (header), `write_aux_fields`, `write_function` per library, then
//! per non-empty database `write_db_header` and its keys, then `finish`. Keys can also be
//! encoded elsewhere with `encode_entry` (e.g. on the shard owning them) and pushed with
//! `write_encoded`. Pass a buffered writer: each call writes its piece at once.

use std::io::{self, Write};

use super::{object_type, opcodes, write_object, Writer, RDB_VERSION};
use crate::types::Value;
use crate::util::crc64::Crc64;

/// After serializing a value bigger than this, the piece buffer is given back.
const PIECE_KEEP_CAPACITY: usize = 1 << 20;

/// `rdbcompression` and `rdbchecksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdbWriteOptions {
    /// LZF-compress strings longer than 20 bytes when that saves at least 4 bytes.
    pub compression: bool,
    /// Write the CRC-64 trailer; without it, 8 zero bytes (loaders then skip the check).
    pub checksum: bool,
}

impl Default for RdbWriteOptions {
    fn default() -> RdbWriteOptions {
        RdbWriteOptions {
            compression: true,
            checksum: true,
        }
    }
}

/// The aux fields 7.0 writes, in its order (`rdbSaveInfoAuxFields`).
#[derive(Clone, Copy, Debug)]
pub struct AuxFields<'a> {
    /// `redis-ver`: the version we speak for (`crate::REDIS_VERSION`).
    pub redis_ver: &'a str,
    /// `redis-bits`: pointer width, 64.
    pub redis_bits: u32,
    /// `ctime`: Unix seconds when the save started.
    pub ctime: i64,
    /// `used-mem`: bytes in use (INFO's `used_memory`).
    pub used_mem: u64,
    /// The replication fields, present when there is replication state to keep (a master
    /// with a backlog, a replica, replication full syncs).
    pub repl: Option<ReplAux<'a>>,
    /// `aof-base`: the file is the base of a multi-part AOF.
    pub aof_base: bool,
}

impl<'a> AuxFields<'a> {
    /// Fields for a plain save: this version, 64 bits, no replication info, not an AOF base.
    pub fn new(ctime: i64, used_mem: u64) -> AuxFields<'a> {
        AuxFields {
            redis_ver: crate::REDIS_VERSION,
            redis_bits: 64,
            ctime,
            used_mem,
            repl: None,
            aof_base: false,
        }
    }
}

/// `repl-stream-db`, `repl-id`, `repl-offset`.
#[derive(Clone, Copy, Debug)]
pub struct ReplAux<'a> {
    pub stream_db: i64,
    /// The 40-character replication id.
    pub repl_id: &'a str,
    pub offset: i64,
}

/// What the eviction policy keeps per key, written before it (`rdbSaveKeyValuePair`): an
/// LRU policy writes the idle time, an LFU policy the counter, others nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Eviction {
    #[default]
    None,
    /// `IDLE`: seconds since last access.
    LruIdle(u64),
    /// `FREQ`: the logarithmic access counter.
    LfuFreq(u8),
}

/// Which per-key opcode a `maxmemory-policy` makes Redis write before each key: the LRU
/// policies (`MAXMEMORY_FLAG_LRU`) write `IDLE`, the LFU ones `FREQ`, the others nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionOpcode {
    None,
    Idle,
    Freq,
}

impl EvictionOpcode {
    /// For a policy name as CONFIG takes it (case-insensitive).
    pub fn for_policy(policy: &str) -> EvictionOpcode {
        match policy.to_ascii_lowercase().as_str() {
            "volatile-lru" | "allkeys-lru" => EvictionOpcode::Idle,
            "volatile-lfu" | "allkeys-lfu" => EvictionOpcode::Freq,
            _ => EvictionOpcode::None,
        }
    }
}

/// Serializes one key as it appears in the file: the expire, idle or freq opcode, then
/// type, key and value. `w`'s compression setting must be the file's.
pub fn encode_entry(
    w: &mut Writer,
    key: &[u8],
    value: &Value,
    expire_ms: Option<i64>,
    evict: Eviction,
) {
    if let Some(ms) = expire_ms {
        w.u8(opcodes::EXPIRETIME_MS);
        w.ms(ms);
    }
    match evict {
        Eviction::None => {}
        Eviction::LruIdle(secs) => {
            w.u8(opcodes::IDLE);
            w.len(secs);
        }
        Eviction::LfuFreq(f) => {
            w.u8(opcodes::FREQ);
            w.u8(f);
        }
    }
    w.u8(object_type(value));
    w.string(key);
    write_object(w, value);
}

/// A whole RDB file being written to `out`.
pub struct RdbFileWriter<W: Write> {
    out: W,
    /// `None` with `rdbchecksum no`: Redis then keeps no checksum and writes zero.
    crc: Option<Crc64>,
    /// The piece being serialized, reused between calls.
    piece: Writer,
    written: u64,
}

impl<W: Write> RdbFileWriter<W> {
    /// Starts a file: writes the `REDIS0010` magic.
    pub fn new(out: W, opts: RdbWriteOptions) -> io::Result<RdbFileWriter<W>> {
        let mut w = RdbFileWriter {
            out,
            crc: opts.checksum.then(Crc64::new),
            piece: Writer::with_compression(opts.compression),
            written: 0,
        };
        w.piece
            .raw_bytes(format!("REDIS{RDB_VERSION:04}").as_bytes());
        w.flush_piece()?;
        Ok(w)
    }

    /// A fresh serializer with this file's compression setting, for `encode_entry`.
    pub fn entry_encoder(&self) -> Writer {
        Writer::with_compression(self.piece.compression())
    }

    /// The output, for taking out what was written so far (a stream sink's buffer).
    pub fn output_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes the serialized piece and empties it (keeping a modest buffer for the next).
    fn flush_piece(&mut self) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.piece.buf);
        let r = self.push(&buf);
        buf.clear();
        if buf.capacity() > PIECE_KEEP_CAPACITY {
            buf = Vec::new();
        }
        self.piece.buf = buf;
        r
    }

    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(crc) = &mut self.crc {
            crc.update(bytes);
        }
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// One `AUX` field.
    pub fn write_aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.piece.u8(opcodes::AUX);
        self.piece.string(key);
        self.piece.string(value);
        self.flush_piece()
    }

    /// The aux fields 7.0 writes, in its order; numbers as decimal text (which the string
    /// writer stores int-encoded when they fit in 32 bits, as Redis does).
    pub fn write_aux_fields(&mut self, aux: &AuxFields<'_>) -> io::Result<()> {
        let num = |v: i128| v.to_string();
        self.write_aux(b"redis-ver", aux.redis_ver.as_bytes())?;
        self.write_aux(b"redis-bits", num(aux.redis_bits.into()).as_bytes())?;
        self.write_aux(b"ctime", num(aux.ctime.into()).as_bytes())?;
        self.write_aux(b"used-mem", num(aux.used_mem.into()).as_bytes())?;
        if let Some(r) = aux.repl {
            self.write_aux(b"repl-stream-db", num(r.stream_db.into()).as_bytes())?;
            self.write_aux(b"repl-id", r.repl_id.as_bytes())?;
            self.write_aux(b"repl-offset", num(r.offset.into()).as_bytes())?;
        }
        self.write_aux(b"aof-base", if aux.aof_base { b"1" } else { b"0" })
    }

    /// One function library (`FUNCTION2` + its source code).
    pub fn write_function(&mut self, code: &[u8]) -> io::Result<()> {
        self.piece.u8(opcodes::FUNCTION2);
        self.piece.string(code);
        self.flush_piece()
    }

    /// `SELECTDB db` and `RESIZEDB` with the database's key and expire counts. Redis
    /// writes these only for a database with keys.
    pub fn write_db_header(&mut self, db: u64, db_size: u64, expires_size: u64) -> io::Result<()> {
        self.piece.u8(opcodes::SELECTDB);
        self.piece.len(db);
        self.piece.u8(opcodes::RESIZEDB);
        self.piece.len(db_size);
        self.piece.len(expires_size);
        self.flush_piece()
    }

    /// One key of the current database.
    pub fn write_entry(
        &mut self,
        key: &[u8],
        value: &Value,
        expire_ms: Option<i64>,
        evict: Eviction,
    ) -> io::Result<()> {
        encode_entry(&mut self.piece, key, value, expire_ms, evict);
        self.flush_piece()
    }

    /// Bytes made by `encode_entry` (with this file's compression setting).
    pub fn write_encoded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.push(bytes)
    }

    /// Ends the file: `EOF`, then the CRC-64 of everything before it (little-endian), or
    /// zero without checksums. Returns the output (not flushed or synced).
    pub fn finish(mut self) -> io::Result<W> {
        self.push(&[opcodes::EOF])?;
        let crc = self.crc.as_ref().map_or(0, Crc64::value);
        self.push(&crc.to_le_bytes())?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_pick_the_opcode_redis_writes() {
        for (p, want) in [
            ("allkeys-lru", EvictionOpcode::Idle),
            ("VOLATILE-LRU", EvictionOpcode::Idle),
            ("allkeys-lfu", EvictionOpcode::Freq),
            ("volatile-lfu", EvictionOpcode::Freq),
            ("volatile-ttl", EvictionOpcode::None),
            ("allkeys-random", EvictionOpcode::None),
            ("noeviction", EvictionOpcode::None),
        ] {
            assert_eq!(EvictionOpcode::for_policy(p), want, "{p}");
        }
    }
}
