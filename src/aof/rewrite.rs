//! The command form of an AOF base (`aof-use-rdb-preamble no`), as Redis 7.0's
//! `rewriteAppendOnlyFileRio` writes it: an optional `#TS:` annotation, `FUNCTION LOAD` for
//! each library, then for every non-empty database a `SELECT` and, per key, the commands
//! that rebuild it (`SET`; `RPUSH`/`SADD`/`ZADD`/`HMSET` in batches of
//! `AOF_REWRITE_ITEMS_PER_CMD`; `XADD`, `XSETID`, `XGROUP CREATE`, `XCLAIM` and
//! `XGROUP CREATECONSUMER` for a stream) followed by `PEXPIREAT` when it has a TTL.
//!
//! The server snapshots as an RDB (its save path serializes the shards in chunks); the
//! command base is made from that file by reading it back, so both bases hold exactly the
//! dataset of the same cut.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::rdb::file_reader::{read_rdb_file, RdbEvent, RdbLoadError, RdbReadOptions};
use crate::types::stream::{Stream, StreamId};
use crate::types::{StrValue, Value};

use super::writer::encode_command;

/// Elements per RPUSH/SADD/ZADD/HMSET (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
pub const ITEMS_PER_CMD: usize = 64;

/// Writes the commands that rebuild `key` (with its TTL, if any) to `out`.
pub fn key_commands(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_ms: Option<i64>) {
    match value {
        Value::Str(StrValue::Int(n)) => {
            let text = itoa::Buffer::new().format(*n).as_bytes().to_vec();
            encode_command(out, &[b"SET", key, &text]);
        }
        Value::Str(s) => s.with_bytes(|b| encode_command(out, &[b"SET", key, b])),
        Value::List(l) => {
            let items: Vec<&[u8]> = l.iter().collect();
            batches(out, b"RPUSH", key, &items, 1);
        }
        Value::Set(s) => {
            let owned: Vec<Vec<u8>> = s.iter().map(|m| m.with_bytes(<[u8]>::to_vec)).collect();
            let items: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            batches(out, b"SADD", key, &items, 1);
        }
        Value::ZSet(z) => {
            let pairs = z.range(0, z.len(), false);
            let scores: Vec<Vec<u8>> = pairs.iter().map(|&(_, s)| bulk_double(s)).collect();
            let mut items: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2);
            for ((m, _), s) in pairs.iter().zip(&scores) {
                items.push(s);
                items.push(m);
            }
            batches(out, b"ZADD", key, &items, 2);
        }
        Value::Hash(h) => {
            let mut items: Vec<&[u8]> = Vec::with_capacity(h.len() * 2);
            for (f, v) in h.iter() {
                items.push(f);
                items.push(v);
            }
            batches(out, b"HMSET", key, &items, 2);
        }
        Value::Stream(s) => stream_commands(out, key, s),
    }
    if let Some(at) = expire_ms {
        let text = itoa::Buffer::new().format(at).as_bytes().to_vec();
        encode_command(out, &[b"PEXPIREAT", key, &text]);
    }
}

/// `name key item...` with at most `ITEMS_PER_CMD` elements (of `per` arguments each) per
/// command.
fn batches(out: &mut Vec<u8>, name: &[u8], key: &[u8], items: &[&[u8]], per: usize) {
    for chunk in items.chunks(ITEMS_PER_CMD * per) {
        let mut argv: Vec<&[u8]> = Vec::with_capacity(chunk.len() + 2);
        argv.push(name);
        argv.push(key);
        argv.extend_from_slice(chunk);
        encode_command(out, &argv);
    }
}

/// A score as `rioWriteBulkDouble` prints it: `%.17g` (`inf`, `-inf` for infinities).
fn bulk_double(s: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    crate::util::num::format_g17(s, &mut out);
    out
}

fn id_text(id: StreamId) -> Vec<u8> {
    format!("{}-{}", id.ms, id.seq).into_bytes()
}

/// `rewriteStreamObject`: the entries (or the `XADD MAXLEN 0` trick for an empty stream),
/// the ids and counters, then every group with its consumers and pending entries.
fn stream_commands(out: &mut Vec<u8>, key: &[u8], s: &Stream) {
    if s.is_empty() {
        encode_command(out, &[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    } else {
        for node in s.nodes() {
            for e in node.entries().filter(|e| !e.deleted) {
                let id = id_text(e.id);
                let mut argv: Vec<&[u8]> = vec![b"XADD", key, &id];
                argv.extend(e.fields);
                encode_command(out, &argv);
            }
        }
    }
    let added = s.entries_added.to_string();
    encode_command(
        out,
        &[
            b"XSETID",
            key,
            &id_text(s.last_id),
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            &id_text(s.max_deleted),
        ],
    );
    for (name, g) in &s.groups {
        let read = g.entries_read.to_string();
        encode_command(
            out,
            &[
                b"XGROUP",
                b"CREATE",
                key,
                name,
                &id_text(g.last_id),
                b"ENTRIESREAD",
                read.as_bytes(),
            ],
        );
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                encode_command(out, &[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
                continue;
            }
            for id in &c.pel {
                let Some(nack) = g.pel.get(id) else { continue };
                let time = nack.delivery_time.to_string();
                let count = nack.delivery_count.to_string();
                encode_command(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name,
                        cname,
                        b"0",
                        &id_text(*id),
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

/// Why a command base could not be made.
#[derive(Debug)]
pub enum RewriteError {
    Read(RdbLoadError),
    Write(io::Error),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Read(e) => write!(f, "cannot read the snapshot back: {e}"),
            RewriteError::Write(e) => write!(f, "{e}"),
        }
    }
}

/// Writes the command form of the RDB `rdb` to `out` (created, synced), with a `#TS:`
/// annotation first when `timestamp` is given. Returns the bytes written.
pub fn rdb_to_commands(
    rdb: &Path,
    out: &Path,
    opts: &RdbReadOptions,
    timestamp: Option<i64>,
) -> Result<u64, RewriteError> {
    let file = std::fs::File::create(out).map_err(RewriteError::Write)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut written = 0u64;
    if let Some(ts) = timestamp {
        buf.extend_from_slice(format!("#TS:{ts}\r\n").as_bytes());
    }
    // The database of the last SELECT written: SELECT only before a database's first key.
    let mut selected: Option<u64> = None;
    let mut io_error: Option<io::Error> = None;
    let mut sink = |ev: RdbEvent| -> Result<(), RdbLoadError> {
        match ev {
            RdbEvent::Function { code } => {
                encode_command(&mut buf, &[b"FUNCTION", b"LOAD", &code]);
            }
            RdbEvent::Entry(e) => {
                if selected != Some(e.db) {
                    let db = e.db.to_string();
                    encode_command(&mut buf, &[b"SELECT", db.as_bytes()]);
                    selected = Some(e.db);
                }
                key_commands(&mut buf, &e.key, &e.value, e.expire_ms);
            }
            RdbEvent::Aux { .. } | RdbEvent::SelectDb { .. } | RdbEvent::ResizeDb { .. } => {}
        }
        if buf.len() >= 64 << 10 {
            written += buf.len() as u64;
            if let Err(e) = w.write_all(&buf) {
                io_error = Some(e);
                return Err(RdbLoadError::Sink("write failed".into()));
            }
            buf.clear();
        }
        Ok(())
    };
    let read = read_rdb_file(rdb, opts, &mut sink);
    if let Some(e) = io_error {
        return Err(RewriteError::Write(e));
    }
    read.map_err(RewriteError::Read)?;
    written += buf.len() as u64;
    w.write_all(&buf).map_err(RewriteError::Write)?;
    let file = w
        .into_inner()
        .map_err(|e| RewriteError::Write(e.into_error()))?;
    file.sync_all().map_err(RewriteError::Write)?;
    Ok(written)
}
