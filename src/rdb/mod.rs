//! Redis RDB object serialization: the value formats of `dump.rdb`, replication payloads and
//! DUMP/RESTORE, written as Redis 7.0 writes them (RDB version 10) and read up to version 12.
//!
//! - `wire`: lengths, strings (int/LZF/raw), doubles, times.
//! - `listpack`, `intset`, `lzf`: the blob formats inside values.
//! - this file: per-type object encoding/decoding and the DUMP payload envelope.
//! - `file_writer`, `file_reader`: whole `dump.rdb` files (header, aux fields, functions,
//!   databases, EOF and checksum), streamed; `frame` finds one object's bytes in a stream.
//!
//! Decoding trusts nothing: every length is checked against the bytes left before anything
//! is allocated, blobs are validated whole (Redis's deep sanitization), and duplicates,
//! empty collections and NaN scores are refused, so a bad payload is an error, never a
//! panic or a half-built value.

pub mod file_reader;
pub mod file_writer;
pub mod frame;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod snapshot;
pub mod stream;
pub mod wire;
pub mod ziplist;

use std::borrow::Cow;

use crate::types::hash::HashLimits;
use crate::types::list::End;
use crate::types::set::Member;
use crate::types::zset::ZsetLimits;
use crate::types::{Hash, List, Set, StrValue, Value, ZSet};
use crate::util::crc64::crc64;

use listpack::{LpEntry, LpWriter};
pub use wire::{Reader, Writer};

/// The RDB version Redis 7.0 writes (DUMP trailers, `REDIS0010`).
pub const RDB_VERSION: u16 = 10;
/// Newest payload version we load (Redis 7.4's); its object types we know load fine.
pub const RDB_VERSION_MAX_LOAD: u16 = 12;

/// Value type bytes (`RDB_TYPE_*`).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Module values (pre-GA and current); loading them needs the module.
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
}

/// Whole-file opcodes (`RDB_OPCODE_*`): the bytes that are not value types.
pub mod opcodes {
    /// 7.4 cluster mode: a resize hint per slot (files of version 12 and later only).
    pub const SLOT_INFO: u8 = 244;
    pub const FUNCTION2: u8 = 245;
    /// The function format of 7.0-rc1 and rc2 (name, engine, description, code).
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Quicklist node containers (`QUICKLIST_NODE_CONTAINER_*`).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;
/// Quicklist node budget of the default fill (-2: 8 KB; quicklist.c's `optimization_level`).
const QL_NODE_BUDGET: usize = 8192;
/// `SIZE_ESTIMATE_OVERHEAD`: quicklist.c's per-entry over-estimate when deciding a push.
const QL_ENTRY_OVERHEAD: usize = 8;

/// Why a payload was refused; each maps to one Redis error line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RdbError {
    /// Too short, newer RDB version, or CRC mismatch:
    /// `ERR DUMP payload version or checksum are wrong`.
    Checksum,
    /// Anything else: `ERR Bad data format`.
    BadFormat,
}

impl From<RdbError> for crate::error::Error {
    fn from(e: RdbError) -> crate::error::Error {
        match e {
            RdbError::Checksum => {
                crate::error::Error::msg("DUMP payload version or checksum are wrong")
            }
            RdbError::BadFormat => crate::error::Error::msg("Bad data format"),
        }
    }
}

/// The encoding thresholds values are loaded with (re-exported: the RDB codec's callers pass them).
pub use crate::types::Limits;

/// Whether `v` can be serialized: every type can, streams included.
pub fn can_dump(_v: &Value) -> bool {
    true
}

/// The DUMP payload of `v`: type byte, object, RDB version (LE u16), CRC-64 (LE u64).
pub fn dump_payload(v: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(object_type(v));
    write_object(&mut w, v);
    w.raw_bytes(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&w.buf);
    w.raw_bytes(&crc.to_le_bytes());
    w.buf
}

/// Checks a DUMP payload's envelope (length, version ≤ 12, CRC) and decodes its value with
/// the receiver's thresholds. As in Redis, bytes between the object and the trailer are
/// not looked at.
pub fn restore_payload(payload: &[u8], limits: &Limits) -> Result<Value, RdbError> {
    if payload.len() < 10 {
        return Err(RdbError::Checksum);
    }
    let body = payload.len() - 10;
    let version = u16::from_le_bytes([payload[body], payload[body + 1]]);
    if version > RDB_VERSION_MAX_LOAD {
        return Err(RdbError::Checksum);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&payload[body + 2..]);
    if crc64(&payload[..body + 2]) != u64::from_le_bytes(crc) {
        return Err(RdbError::Checksum);
    }
    // Redis reads from the whole buffer (trailer included), so an object cut short may
    // read into the trailer; we read from the same span for the same verdicts.
    let mut r = Reader::new(payload);
    let t = r.u8()?;
    read_object(&mut r, t, limits)
}

/// The type byte `write_object` uses for `v` (what Redis 7.0 picks for its encoding).
pub fn object_type(v: &Value) -> u8 {
    match v {
        Value::Str(_) => types::STRING,
        Value::List(_) => types::LIST_QUICKLIST_2,
        Value::Set(s) if s.is_intset() && !s.is_empty() => types::SET_INTSET,
        Value::Set(_) => types::SET,
        Value::ZSet(ZSet::Packed(_)) => types::ZSET_LISTPACK,
        Value::ZSet(_) => types::ZSET_2,
        Value::Hash(Hash::Packed(_)) => types::HASH_LISTPACK,
        Value::Hash(_) => types::HASH,
        Value::Stream(_) => types::STREAM_LISTPACKS_2,
    }
}

/// Writes `v`'s serialization (without its type byte; see `object_type`).
pub fn write_object(w: &mut Writer, v: &Value) {
    match v {
        Value::Str(StrValue::Int(n)) => w.int_string(*n),
        Value::Str(s) => s.with_bytes(|b| w.string(b)),
        Value::List(l) => write_list(w, l),
        Value::Set(s) if s.is_intset() && !s.is_empty() => {
            let ints: Vec<i64> = s
                .iter()
                .filter_map(|m| match m {
                    Member::Int(v) => Some(v),
                    Member::Bytes(_) => None,
                })
                .collect();
            let width = s.intset_width().unwrap_or(2);
            w.string(&intset::encode_with_width(&ints, width));
        }
        Value::Set(s) => {
            w.len(s.len() as u64);
            for m in s.iter() {
                m.with_bytes(|b| w.string(b));
            }
        }
        Value::ZSet(z @ ZSet::Packed(_)) => {
            let mut lp = LpWriter::new();
            let mut score = Vec::with_capacity(32);
            for (m, s) in z.range(0, z.len(), false) {
                lp.push_bytes(m);
                score.clear();
                format_score(s, &mut score);
                lp.push_bytes(&score);
            }
            w.string(&lp.finish());
        }
        Value::ZSet(z) => {
            // Highest score first, as Redis walks its skiplist from the tail.
            w.len(z.len() as u64);
            for (m, s) in z.range(0, z.len(), true) {
                w.string(m);
                w.binary_double(s);
            }
        }
        Value::Hash(h @ Hash::Packed(_)) => {
            let mut lp = LpWriter::new();
            for (f, v) in h.iter() {
                lp.push_bytes(f);
                lp.push_bytes(v);
            }
            w.string(&lp.finish());
        }
        Value::Hash(h) => {
            w.len(h.len() as u64);
            for (f, v) in h.iter() {
                w.string(f);
                w.string(v);
            }
        }
        Value::Stream(s) => stream::write_stream(w, s),
    }
}

/// A list as LIST_QUICKLIST_2, split into nodes as Redis 7.0's `quicklistPushTail` would
/// split the same elements pushed one by one (default `list-max-listpack-size` -2), so a
/// list built by RPUSH dumps to Redis's exact bytes.
fn write_list(w: &mut Writer, l: &List) {
    enum Node {
        Packed(LpWriter),
        Plain(Vec<u8>),
    }
    let budget = QL_NODE_BUDGET;
    let mut nodes: Vec<Node> = Vec::new();
    for e in l.iter() {
        if crate::types::list::is_large(e.len()) {
            nodes.push(Node::Plain(e.to_vec()));
            continue;
        }
        match nodes.last_mut() {
            Some(Node::Packed(lp)) if lp.byte_len() + e.len() + QL_ENTRY_OVERHEAD <= budget => {
                lp.push_bytes(e)
            }
            _ => {
                let mut lp = LpWriter::new();
                lp.push_bytes(e);
                nodes.push(Node::Packed(lp));
            }
        }
    }
    w.len(nodes.len() as u64);
    for n in nodes {
        match n {
            Node::Packed(lp) => {
                w.len(CONTAINER_PACKED);
                w.string(&lp.finish());
            }
            Node::Plain(b) => {
                w.len(CONTAINER_PLAIN);
                w.string(&b);
            }
        }
    }
}

/// A sorted-set score as Redis 7.0 stores it in a listpack (`d2string`): integral values
/// within ±2^52 as integers, the rest `%.17g`, and `inf`/`-inf`.
fn format_score(s: f64, out: &mut Vec<u8>) {
    if s == 0.0 {
        out.extend_from_slice(if s.is_sign_negative() { b"-0" } else { b"0" });
    } else if s.is_finite() && s.fract() == 0.0 && s.abs() < 4_503_599_627_370_496.0 {
        out.extend_from_slice(itoa::Buffer::new().format(s as i64).as_bytes());
    } else {
        crate::util::num::format_double(s, out);
    }
}

/// Parses a score's text as C's `strtod` does (the longest valid prefix; `None` if there is
/// none), which is how Redis reads listpack scores and legacy string doubles.
pub fn parse_score(text: &[u8]) -> Option<f64> {
    // Redis copies at most 127 bytes into a NUL-terminated buffer before calling strtod.
    let n = text.len().min(127);
    let mut buf = [0u8; 128];
    buf[..n].copy_from_slice(&text[..n]);
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `buf` is NUL-terminated and outlives the call; `end` points into it.
    let v = unsafe { libc::strtod(buf.as_ptr() as *const libc::c_char, &mut end) };
    if end as *const u8 == buf.as_ptr() {
        None
    } else {
        Some(v)
    }
}

/// A listpack entry as a score: integers directly, strings through `strtod`. Redis does not
/// check the text (garbage reads as 0); a NaN would break the order, so it is refused.
fn entry_score(e: &LpEntry<'_>) -> Result<f64, RdbError> {
    let s = match e {
        LpEntry::Int(v) => *v as f64,
        LpEntry::Bytes(b) => parse_score(b).unwrap_or(0.0),
    };
    if s.is_nan() {
        return Err(RdbError::BadFormat);
    }
    Ok(s)
}

/// Reads an object of type `t` (its type byte already read), converting it to the
/// encodings `limits` call for.
pub fn read_object(r: &mut Reader<'_>, t: u8, limits: &Limits) -> Result<Value, RdbError> {
    let bad = RdbError::BadFormat;
    let v = match t {
        // Re-encoded as Redis's `tryObjectEncoding` does after loading: int, embstr or raw.
        types::STRING => Value::Str(StrValue::from_bytes(&r.string()?)),
        types::LIST => {
            let n = r.count()?;
            if n == 0 {
                return Err(bad);
            }
            let mut l = List::new();
            for _ in 0..n {
                l.push(End::Tail, &r.string()?, limits.list_fill);
            }
            Value::List(l)
        }
        types::LIST_QUICKLIST_2 | types::LIST_QUICKLIST => {
            Value::List(read_quicklist(r, t, limits)?)
        }
        types::LIST_ZIPLIST => {
            let blob = r.string()?;
            let mut l = List::new();
            for e in ziplist::entries(&blob)? {
                e.with_bytes(|b| l.push(End::Tail, b, limits.list_fill));
            }
            if l.is_empty() {
                return Err(bad);
            }
            Value::List(l)
        }
        types::SET => {
            let n = r.count()?;
            if n == 0 {
                return Err(bad);
            }
            let mut s = Set::new();
            for _ in 0..n {
                if !s.add(&r.string()?, limits.set) {
                    return Err(bad);
                }
            }
            Value::Set(s)
        }
        types::SET_INTSET => {
            let blob = r.string()?;
            let (width, ints) = intset::decode_with_width(&blob)?;
            if ints.len() <= limits.set.max_intset {
                // Kept as loaded, width included, as Redis keeps the blob.
                Value::Set(Set::intset_from_sorted(&ints, width))
            } else {
                let mut s = Set::new();
                for v in ints {
                    s.add_member(Member::Int(v), limits.set);
                }
                Value::Set(s)
            }
        }
        types::SET_LISTPACK => {
            let blob = r.string()?;
            let entries = listpack::entries(&blob)?;
            if entries.is_empty() {
                return Err(bad);
            }
            let mut s = Set::new();
            for e in &entries {
                if !e.with_bytes(|b| s.add(b, limits.set)) {
                    return Err(bad);
                }
            }
            Value::Set(s)
        }
        types::ZSET | types::ZSET_2 => {
            let n = r.count()?;
            if n == 0 {
                return Err(bad);
            }
            let mut seen = hashbrown::HashSet::with_capacity(n.min(1024));
            let mut pairs = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let m = r.string()?.into_owned();
                let s = if t == types::ZSET_2 {
                    r.binary_double()?
                } else {
                    r.string_double()?
                };
                if s.is_nan() || !seen.insert(m.clone()) {
                    return Err(bad);
                }
                pairs.push((m, s));
            }
            Value::ZSet(ZSet::from_pairs(pairs, limits.zset))
        }
        types::ZSET_LISTPACK | types::ZSET_ZIPLIST => {
            let blob = r.string()?;
            let entries = if t == types::ZSET_ZIPLIST {
                ziplist::entries(&blob)?
            } else {
                listpack::entries(&blob)?
            };
            if entries.is_empty() || entries.len() % 2 != 0 {
                return Err(bad);
            }
            let mut seen = hashbrown::HashSet::with_capacity(entries.len() / 2);
            let mut pairs = Vec::with_capacity(entries.len() / 2);
            for pair in entries.chunks_exact(2) {
                let m = pair[0].to_vec();
                let s = entry_score(&pair[1])?;
                if !seen.insert(m.clone()) {
                    return Err(bad);
                }
                pairs.push((m, s));
            }
            Value::ZSet(ZSet::from_pairs(pairs, by_count(limits.zset)))
        }
        types::HASH => {
            let n = r.count()?;
            if n == 0 {
                return Err(bad);
            }
            let mut h = Hash::new();
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                if !h.set(&f, &v, limits.hash) {
                    return Err(bad);
                }
            }
            Value::Hash(h)
        }
        types::HASH_LISTPACK | types::HASH_ZIPLIST => {
            let blob = r.string()?;
            let entries = if t == types::HASH_ZIPLIST {
                ziplist::entries(&blob)?
            } else {
                listpack::entries(&blob)?
            };
            if entries.is_empty() || entries.len() % 2 != 0 {
                return Err(bad);
            }
            let mut h = Hash::new();
            for pair in entries.chunks_exact(2) {
                let f = pair[0].to_vec();
                // Like Redis, a loaded listpack converts by its count only.
                let lim = HashLimits {
                    max_value: usize::MAX,
                    ..limits.hash
                };
                let new = pair[1].with_bytes(|v| h.set(&f, v, lim));
                if !new {
                    return Err(bad);
                }
            }
            Value::Hash(h)
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(stream::read_stream(r, t)?))
        }
        _ => return Err(bad),
    };
    Ok(v)
}

/// Sorted-set limits for a loaded listpack: Redis converts it by its count only (only
/// members added later are held to the length limit).
fn by_count(z: ZsetLimits) -> ZsetLimits {
    ZsetLimits {
        max_value: usize::MAX,
        ..z
    }
}

/// LIST_QUICKLIST_2 (nodes with a container kind, listpacks) or the older LIST_QUICKLIST
/// (ziplist nodes only).
fn read_quicklist(r: &mut Reader<'_>, t: u8, limits: &Limits) -> Result<List, RdbError> {
    let bad = RdbError::BadFormat;
    let nodes = r.count()?;
    if nodes == 0 {
        return Err(bad);
    }
    let mut l = List::new();
    for _ in 0..nodes {
        let container = if t == types::LIST_QUICKLIST_2 {
            r.len()?
        } else {
            CONTAINER_PACKED
        };
        if container != CONTAINER_PACKED && container != CONTAINER_PLAIN {
            return Err(bad);
        }
        let data: Cow<'_, [u8]> = r.string()?;
        if data.is_empty() {
            return Err(bad);
        }
        if container == CONTAINER_PLAIN {
            l.push(End::Tail, &data, limits.list_fill);
            continue;
        }
        // Empty listpacks are skipped, as Redis does; an all-empty list is refused below.
        let entries = if t == types::LIST_QUICKLIST_2 {
            listpack::entries(&data)?
        } else {
            ziplist::entries(&data)?
        };
        for e in entries {
            e.with_bytes(|b| l.push(End::Tail, b, limits.list_fill));
        }
    }
    if l.is_empty() {
        return Err(bad);
    }
    Ok(l)
}

#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod tests;

/// Test helper: the bytes of hex text (whitespace ignored), for verified payloads.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
