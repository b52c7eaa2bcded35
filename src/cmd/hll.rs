//! HyperLogLog commands (Redis 7.0's hyperloglog.c): PFADD, PFCOUNT and PFMERGE (across
//! shards too), PFDEBUG and PFSELFTEST. Values are plain strings in Redis's HLL byte layout.

use crate::acl;
use crate::cmd::{flag::*, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::types::hll::{self, Corrupt, REGISTERS};
use crate::types::{StrValue, Value};
use crate::util::time::now_ms;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("pfadd", -2, WRITE | DENYOOM | FAST, pfadd)
        .acl(&["@hyperloglog"])
        .doc(
            "hyperloglog",
            "2.8.9",
            "Adds the specified elements to the specified HyperLogLog.",
        ),
    CommandSpec::keyed("pfcount", -2, READONLY, pfcount)
        .keys(1, -1, 1)
        .acl(&["@hyperloglog"])
        .doc(
            "hyperloglog",
            "2.8.9",
            "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).",
        ),
    CommandSpec::keyed("pfmerge", -2, WRITE | DENYOOM, pfmerge)
        .access(acl::READ_WRITE, acl::READ)
        .keys(1, -1, 1)
        .acl(&["@hyperloglog"])
        .doc(
            "hyperloglog",
            "2.8.9",
            "Merge N different HyperLogLogs into a single one.",
        ),
    CommandSpec::keyed("pfdebug", 3, WRITE | DENYOOM | ADMIN, pfdebug)
        .access(acl::READ, acl::READ)
        .keys(2, 2, 1)
        .acl(&["@hyperloglog"])
        .doc(
            "hyperloglog",
            "2.8.9",
            "Internal commands for debugging HyperLogLog values",
        ),
    CommandSpec::new("pfselftest", 1, ADMIN, Handler::Sync(pfselftest))
        .acl(&["@hyperloglog"])
        .doc(
            "hyperloglog",
            "2.8.9",
            "An internal command for testing HyperLogLog values",
        ),
];

impl From<Corrupt> for Error {
    fn from(_: Corrupt) -> Error {
        Error::CorruptHll
    }
}

fn sparse_max(c: &Ctx) -> usize {
    c.limits().hll_sparse_max_bytes
}

/// How `hll_mut` looks a key up.
#[derive(Clone, Copy, PartialEq)]
enum Lookup {
    /// Redis's `lookupKeyRead`: counts a keyspace hit or miss.
    Read,
    /// `lookupKeyWrite` of a key the command signals as modified when it changes anything.
    Write,
    /// `lookupKeyWrite` of a key the command never signals (PFDEBUG): the access time is
    /// updated, but WATCH is not told.
    Unsignalled,
}

/// The HLL at `key` for modification, as raw bytes (Redis unshares the string first, so an
/// `embstr` becomes `raw`). None if absent; WRONGTYPE for other types and for strings that
/// fail the HLL checks.
fn hll_mut<'a>(
    db: &'a mut Db<'_>,
    key: &[u8],
    now: i64,
    how: Lookup,
) -> Result<Option<&'a mut Vec<u8>>, Error> {
    let entry = match how {
        Lookup::Read => db.read(key, now),
        Lookup::Write => db.get(key, now),
        Lookup::Unsignalled => {
            let mut e = db.peek(key, now);
            if let Some(e) = e.as_mut() {
                e.lru = crate::db::evict::touched(e.lru, now);
            }
            e
        }
    };
    let Some(e) = entry else { return Ok(None) };
    let Value::Str(s) = &mut e.value else {
        return Err(Error::WrongType);
    };
    // Integer-encoded strings are never HLLs (Redis requires an sds-encoded string).
    if matches!(s, StrValue::Int(_)) || !s.with_bytes(hll::is_valid) {
        return Err(Error::NotHll);
    }
    Ok(Some(s.make_raw()))
}

/// What one key contributes to a union: its registers unpacked one per byte (None if the key
/// is absent) and whether it was dense. Read on the key's own shard; errors in Redis's words.
type Registers = Option<(Vec<u8>, bool)>;

fn registers_of(db: &mut Db, key: &[u8], now: i64) -> Result<Registers, Error> {
    let Some(e) = db.read(key, now) else {
        return Ok(None);
    };
    let Value::Str(s) = &e.value else {
        return Err(Error::WrongType);
    };
    if matches!(s, StrValue::Int(_)) {
        return Err(Error::NotHll);
    }
    s.with_bytes(|b| {
        if !hll::is_valid(b) {
            return Err(Error::NotHll);
        }
        let mut regs = vec![0u8; REGISTERS];
        hll::merge_into(&mut regs, b)?;
        Ok(Some((regs, hll::encoding(b) == hll::DENSE)))
    })
}

/// Folds per-key registers (in argument order, so the first bad key's error wins, as in
/// Redis) into their maximum; also says whether any input was dense.
fn union(
    parts: impl IntoIterator<Item = Result<Registers, Error>>,
) -> Result<(Vec<u8>, bool), Error> {
    let mut max = vec![0u8; REGISTERS];
    let mut any_dense = false;
    for part in parts {
        if let Some((regs, dense)) = part? {
            any_dense |= dense;
            for (m, r) in max.iter_mut().zip(regs) {
                *m = (*m).max(r);
            }
        }
    }
    Ok((max, any_dense))
}

fn pfadd(c: &mut Ctx, a: &Args) -> CmdResult {
    let max_bytes = sparse_max(c);
    let key = a.get(1);
    let mut created = None;
    let existing = hll_mut(&mut c.db, key, c.now, Lookup::Write)?;
    // Creating the key counts as an update even with no elements; so does every element
    // that changed a register (Redis's `server.dirty += updated`).
    let mut updated = existing.is_none() as u64;
    let s = match existing {
        Some(s) => s,
        None => created.insert(hll::new_sparse()),
    };
    for ele in a.rest(2) {
        // A corrupt value keeps the registers changed before the bad step, as in Redis, but
        // the command fails without counting them.
        updated += hll::add(s, ele, max_bytes)? as u64;
    }
    if updated > 0 {
        hll::invalidate(s);
    }
    if let Some(v) = created {
        c.db.set(key, Value::Str(StrValue::raw(v)), NO_EXPIRE, c.now);
    }
    c.dirty(updated);
    if updated > 0 {
        c.notify(class::STRING, "pfadd", key);
    }
    c.out.int((updated > 0) as i64);
    Ok(())
}

fn pfcount(c: &mut Ctx, a: &Args) -> CmdResult {
    if a.len() > 2 {
        let keys: Vec<&[u8]> = a.rest(1).collect();
        let (max, _) = union(keys.iter().map(|k| registers_of(&mut c.db, k, c.now)))?;
        c.out.int(hll::count_registers(&max) as i64);
        return Ok(());
    }
    // One key: the cached cardinality, refreshed in the value when stale. A refresh changes
    // the string, so Redis counts it as a change (and propagates this PFCOUNT).
    let key = a.get(1);
    let (card, refreshed) = match hll_mut(&mut c.db, key, c.now, Lookup::Read)? {
        None => (0, false),
        Some(s) => {
            let stale = hll::cached(s).is_none();
            (hll::count_cached(s)?, stale)
        }
    };
    if refreshed {
        // Redis signals the key as modified: look it up for writing so WATCH hears of it.
        c.db.get(key, c.now);
        c.dirty(1);
    }
    c.out.int(card as i64);
    Ok(())
}

/// Writes a PFMERGE result into `dst` (created sparse if absent, TTL kept otherwise), turning
/// it dense first when any input was dense, as Redis does.
fn store_merged(
    db: &mut Db,
    dst: &[u8],
    max: &[u8],
    any_dense: bool,
    max_bytes: usize,
    now: i64,
) -> CmdResult {
    let mut created = None;
    let s = match hll_mut(db, dst, now, Lookup::Write)? {
        Some(s) => s,
        None => created.insert(hll::new_sparse()),
    };
    if any_dense {
        hll::to_dense(s)?;
    }
    hll::write_registers(s, max, max_bytes);
    if let Some(v) = created {
        db.set(dst, Value::Str(StrValue::raw(v)), NO_EXPIRE, now);
    }
    Ok(())
}

fn pfmerge(c: &mut Ctx, a: &Args) -> CmdResult {
    let max_bytes = sparse_max(c);
    // The destination is a source too (argument 1 onwards).
    let keys: Vec<&[u8]> = a.rest(1).collect();
    let (max, any_dense) = union(keys.iter().map(|k| registers_of(&mut c.db, k, c.now)))?;
    store_merged(&mut c.db, a.get(1), &max, any_dense, max_bytes, c.now)?;
    // Counted as a change even when the destination's registers did not move.
    c.dirty(1);
    // Redis announces a merge as a PFADD.
    c.notify(class::STRING, "pfadd", a.get(1));
    c.out.ok();
    Ok(())
}

fn pfdebug(c: &mut Ctx, a: &Args) -> CmdResult {
    let sub = a.get(1);
    // Redis's PFDEBUG never signals the key, though a conversion counts as a change.
    let Some(s) = hll_mut(&mut c.db, a.get(2), c.now, Lookup::Unsignalled)? else {
        return Err(Error::msg("The specified key does not exist"));
    };
    // GETREG and TODENSE turn a sparse value dense: "force propagation on encoding change",
    // as Redis puts it, by counting a change.
    let mut converted = false;
    if sub.eq_ignore_ascii_case(b"getreg") {
        converted = hll::encoding(s) == hll::SPARSE;
        hll::to_dense(s)?;
        c.out.array(REGISTERS);
        let regs = &s[hll::HDR_SIZE..];
        for i in 0..REGISTERS {
            c.out.int(hll::dense_get(regs, i) as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if hll::encoding(s) != hll::SPARSE {
            return Err(Error::msg("HLL encoding is not sparse"));
        }
        c.out.bulk(hll::decode(s).as_bytes());
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        c.out.simple(if hll::encoding(s) == hll::DENSE {
            "dense"
        } else {
            "sparse"
        });
    } else if sub.eq_ignore_ascii_case(b"todense") {
        converted = hll::encoding(s) == hll::SPARSE;
        hll::to_dense(s)?;
        c.out.int(converted as i64);
    } else {
        return Err(Error::msg(format!(
            "Unknown PFDEBUG subcommand '{}'",
            String::from_utf8_lossy(sub)
        )));
    }
    c.dirty(converted as u64);
    Ok(())
}

fn pfselftest(c: &mut Conn, _a: &Args) -> CmdResult {
    let max_bytes = c.shard.settings.borrow().limits.hll_sparse_max_bytes;
    // xorshift64*, seeded from the clock: the test must pass for any element sequence.
    let mut state = (now_ms() as u64) | 1;
    let rand = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as u32
    };
    match hll::selftest(max_bytes, rand) {
        Ok(()) => c.out.ok(),
        Err(text) => return Err(Error::Coded(text.into())),
    }
    Ok(())
}
