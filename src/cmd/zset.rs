//! Sorted set commands (Redis 7.0's t_zset.c): ZADD and reads, the ZRANGE family and its
//! STORE form, range removals, pops, ZRANDMEMBER, the union / intersection / difference
//! family (sets count as score 1) across shards, ZINTERCARD, ZMPOP and ZSCAN.

use crate::acl;
use crate::config::keyspace_events as class;
use std::collections::HashMap;
use std::ffi::CString;

use crate::cmd::blocking::{self, BlockingOp, WaitState};
use crate::cmd::hash::arg_count;
use crate::cmd::scan::{empty_scan, parse_cursor, parse_scan_opts};
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::slot::key_slot;
use crate::types::set::{distinct_positions, Rng};
use crate::types::zset::{
    AddFlags, AddOutcome, LexBound, LexRange, ScoreBound, ScoreRange, ZSet, ZsetLimits,
};
use crate::types::{Set, Value};
use crate::util::num::{arg_i64, format_g17};

/// Owned (member, score) pairs, as pops and computed results carry them.
type Pairs = Vec<(Vec<u8>, f64)>;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("zadd", -4, WRITE | DENYOOM | FAST, zadd)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists"),
    CommandSpec::keyed("zincrby", 4, WRITE | DENYOOM | FAST, zincrby)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Increment the score of a member in a sorted set"),
    CommandSpec::keyed("zrem", -3, WRITE | FAST, zrem)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Remove one or more members from a sorted set"),
    CommandSpec::keyed("zcard", 2, READONLY | FAST, zcard)
        .access(acl::NONE, acl::NONE)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Get the number of members in a sorted set"),
    CommandSpec::keyed("zscore", 3, READONLY | FAST, zscore)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Get the score associated with the given member in a sorted set"),
    CommandSpec::keyed("zmscore", -3, READONLY | FAST, zmscore)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Get the score associated with the given members in a sorted set"),
    CommandSpec::keyed("zrank", 3, READONLY | FAST, zrank)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Determine the index of a member in a sorted set"),
    CommandSpec::keyed("zrevrank", 3, READONLY | FAST, zrevrank)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low"),
    CommandSpec::keyed("zcount", 4, READONLY | FAST, zcount)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Count the members in a sorted set with scores within the given values"),
    CommandSpec::keyed("zlexcount", 4, READONLY | FAST, zlexcount)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.8.9", "Count the number of members in a sorted set between a given lexicographical range"),
    CommandSpec::keyed("zrange", -4, READONLY, zrange)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Return a range of members in a sorted set"),
    CommandSpec::keyed("zrevrange", -4, READONLY, zrevrange)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low"),
    CommandSpec::keyed("zrangebyscore", -4, READONLY, zrangebyscore)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.0.5", "Return a range of members in a sorted set, by score"),
    CommandSpec::keyed("zrevrangebyscore", -4, READONLY, zrevrangebyscore)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low"),
    CommandSpec::keyed("zrangebylex", -4, READONLY, zrangebylex)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range"),
    CommandSpec::keyed("zrevrangebylex", -4, READONLY, zrevrangebylex)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings."),
    CommandSpec::keyed("zrangestore", -5, WRITE | DENYOOM, zrangestore)
        .access(acl::WRITE, acl::READ)
        .keys(1, 2, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Store a range of members from sorted set into another key"),
    CommandSpec::keyed("zremrangebyrank", 4, WRITE, zremrangebyrank)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Remove all members in a sorted set within the given indexes"),
    CommandSpec::keyed("zremrangebyscore", 4, WRITE, zremrangebyscore)
        .acl(&["@sortedset"])
        .doc("sorted-set", "1.2.0", "Remove all members in a sorted set within the given scores"),
    CommandSpec::keyed("zremrangebylex", 4, WRITE, zremrangebylex)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.8.9", "Remove all members in a sorted set between the given lexicographical range"),
    CommandSpec::keyed("zpopmin", -2, WRITE | FAST, zpopmin)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@sortedset"])
        .doc("sorted-set", "5.0.0", "Remove and return members with the lowest scores in a sorted set"),
    CommandSpec::keyed("zpopmax", -2, WRITE | FAST, zpopmax)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@sortedset"])
        .doc("sorted-set", "5.0.0", "Remove and return members with the highest scores in a sorted set"),
    CommandSpec::new("zmpop", -4, WRITE | MOVABLE_KEYS, Handler::Keyed(zmpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "7.0.0", "Remove and return members with scores in a sorted set"),
    CommandSpec::keyed("zrandmember", -2, READONLY, zrandmember)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Get one or multiple random elements from a sorted set"),
    CommandSpec::new("zunion", -3, READONLY | MOVABLE_KEYS, Handler::Keyed(zunion))
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Add multiple sorted sets"),
    CommandSpec::new("zinter", -3, READONLY | MOVABLE_KEYS, Handler::Keyed(zinter))
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Intersect multiple sorted sets"),
    CommandSpec::new("zdiff", -3, READONLY | MOVABLE_KEYS, Handler::Keyed(zdiff))
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Subtract multiple sorted sets"),
    CommandSpec::new("zunionstore", -4, WRITE | DENYOOM | MOVABLE_KEYS, Handler::Keyed(zunionstore))
        .access(acl::WRITE, acl::READ)
        .key_finder(crate::cmd::keys_at::dest_numkeys_2)
        .keys(1, 1, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key"),
    CommandSpec::new("zinterstore", -4, WRITE | DENYOOM | MOVABLE_KEYS, Handler::Keyed(zinterstore))
        .access(acl::WRITE, acl::READ)
        .key_finder(crate::cmd::keys_at::dest_numkeys_2)
        .keys(1, 1, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key"),
    CommandSpec::new("zdiffstore", -4, WRITE | DENYOOM | MOVABLE_KEYS, Handler::Keyed(zdiffstore))
        .access(acl::WRITE, acl::READ)
        .key_finder(crate::cmd::keys_at::dest_numkeys_2)
        .keys(1, 1, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key"),
    CommandSpec::new("zintercard", -3, READONLY | MOVABLE_KEYS, Handler::Keyed(zintercard))
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result"),
    CommandSpec::new("bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, Handler::Async(bzpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .blocking(&BZPOPMIN)
        .keys(1, -2, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available"),
    CommandSpec::new("bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, Handler::Async(bzpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .blocking(&BZPOPMAX)
        .keys(1, -2, 1)
        .acl(&["@sortedset"])
        .doc("sorted-set", "5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available"),
    CommandSpec::new("bzmpop", -5, WRITE | BLOCKING | MOVABLE_KEYS, Handler::Async(bzmpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .blocking(&BZMPOP)
        .key_finder(crate::cmd::keys_at::numkeys_2)
        .acl(&["@sortedset"])
        .doc("sorted-set", "7.0.0", "Remove and return members with scores in a sorted set or block until one is available"),
    CommandSpec::keyed("zscan", -3, READONLY, zscan)
        .acl(&["@sortedset"])
        .doc("sorted-set", "2.8.0", "Incrementally iterate sorted sets elements and associated scores"),
];

// ---- lookups, parsing, replies ----

fn limits(c: &Ctx) -> ZsetLimits {
    c.limits().zset
}

/// Stores a computed sorted set under `dst` (replacing any value and TTL), or deletes `dst`
/// when it is empty, as Redis's *STORE commands do. Returns the stored cardinality. One
/// change, unless an empty result met no `dst` to delete (then nothing propagates).
fn store_result(c: &mut Ctx, dst: &[u8], z: ZSet, event: &'static str) -> i64 {
    if z.is_empty() {
        let deleted = c.db.delete(dst, c.now);
        c.dirty(deleted as u64);
        if deleted {
            c.notify(class::GENERIC, "del", dst);
        }
        return 0;
    }
    let n = z.len() as i64;
    c.db.set(dst, Value::ZSet(z), NO_EXPIRE, c.now);
    c.dirty(1);
    c.notify(class::ZSET, event, dst);
    n
}

/// `zpopmin`/`zpopmax` for `key`, then `del` if the pop emptied it.
fn notify_zpop(c: &mut Ctx, key: &[u8], max: bool) {
    if c.notifies(class::ZSET | class::GENERIC) {
        c.notify(class::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        if c.db.peek(key, c.now).is_none() {
            c.notify(class::GENERIC, "del", key);
        }
    }
}

/// Counts `n` members popped from `key` and propagates them as `ZPOPMIN key [n]` (or
/// ZPOPMAX): what BZPOPMIN/BZPOPMAX (no count), ZMPOP and BZMPOP (the count actually popped)
/// amount to.
fn propagate_zpop(c: &mut Ctx, key: &[u8], max: bool, n: usize, with_count: bool) {
    c.dirty(n as u64);
    let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
    if !with_count {
        c.propagate(&[name, key]);
    } else if c.recording() {
        let n = itoa::Buffer::new().format(n).to_owned();
        c.propagate(&[name, key, n.as_bytes()]);
    }
}

/// C's `strtod` over `arg` read as a C string (up to its first NUL): the value and whether
/// the text was consumed up to that NUL, and whether it overflowed / underflowed (ERANGE).
fn c_strtod(arg: &[u8]) -> (f64, usize, bool, usize) {
    let text = arg.split(|&b| b == 0).next().unwrap_or_default();
    let Ok(cs) = CString::new(text) else {
        return (0.0, 0, false, text.len());
    };
    let mut end: *mut libc::c_char = std::ptr::null_mut();
    // SAFETY: `cs` is NUL-terminated and outlives the call; errno is thread-local.
    let (v, erange) = unsafe {
        *libc::__errno_location() = 0;
        let v = libc::strtod(cs.as_ptr(), &mut end);
        (v, *libc::__errno_location() == libc::ERANGE)
    };
    let used = if end.is_null() {
        0
    } else {
        end as usize - cs.as_ptr() as usize
    };
    (v, used, erange, text.len())
}

/// A score argument as Redis's `getDoubleFromObject` reads it: all of it a number for
/// strtod (hex and `inf` included), no leading space, no overflow, no NaN.
pub(crate) fn parse_score(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || arg[0].is_ascii_whitespace() || arg[0] == 0x0b || arg[0] == 0x0c {
        return None;
    }
    let (v, used, erange, _) = c_strtod(arg);
    if used != arg.len() || v.is_nan() {
        return None;
    }
    if erange && (v.is_infinite() || v == 0.0) {
        return None;
    }
    Some(v)
}

fn arg_score(arg: &[u8]) -> Result<f64, Error> {
    parse_score(arg).ok_or(Error::NotFloat)
}

/// One end of a score range (`zslParseRange`): `(` makes it exclusive; strtod up to the C
/// string's end (so an empty text is 0), not NaN.
fn parse_score_bound(arg: &[u8]) -> Option<ScoreBound> {
    let (exclusive, text) = match arg.first() {
        Some(b'(') => (true, &arg[1..]),
        _ => (false, arg),
    };
    let (v, used, _, len) = c_strtod(text);
    (used == len && !v.is_nan()).then_some(ScoreBound {
        value: v,
        exclusive,
    })
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Error> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err(Error::msg("min or max is not a float")),
    }
}

fn parse_lex_bound(arg: &[u8]) -> Option<LexBound> {
    match arg.first()? {
        b'+' if arg.len() == 1 => Some(LexBound::PosInf),
        b'-' if arg.len() == 1 => Some(LexBound::NegInf),
        b'(' => Some(LexBound::Excl(arg[1..].to_vec())),
        b'[' => Some(LexBound::Incl(arg[1..].to_vec())),
        _ => None,
    }
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, Error> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(Error::msg("min or max not valid string range item")),
    }
}

/// A positive count with Redis's `getPositiveLongFromObjectOrReply` error.
fn positive_count(arg: &[u8]) -> Result<i64, Error> {
    arg_i64(arg)
        .ok()
        .filter(|&n| n >= 0)
        .ok_or_else(|| Error::msg("value is out of range, must be positive"))
}

/// Redis's `d2string`: integers (within 2^62) as integers, others `%.17g`.
fn d2string(v: f64, out: &mut Vec<u8>) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
    } else if v.abs() <= (i64::MAX / 2) as f64 && v == v.trunc() {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else {
        format_g17(v, out);
    }
}

/// Redis's `ld2string(..., LD_STR_AUTO)` of a double: `%.17Lg`, which for a double's exact
/// value prints what `%.17g` does.
fn ld_auto(v: f64, out: &mut Vec<u8>) {
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else {
        format_g17(v, out);
    }
}

/// Replies with members, with scores if asked: a flat array in RESP2, pairs in RESP3.
fn reply_pairs<'a>(
    out: &mut Reply,
    pairs: impl ExactSizeIterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let n = pairs.len();
    out.array(if withscores && !out.resp3 { n * 2 } else { n });
    for (m, s) in pairs {
        if withscores && out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    }
}

// ---- ZADD / ZINCRBY / ZREM ----

pub(crate) fn zadd_generic(c: &mut Ctx, a: &Args, mut f: AddFlags) -> CmdResult {
    let mut ch = false;
    let mut idx = 2;
    while idx < a.len() {
        if a.is(idx, "NX") {
            f.nx = true;
        } else if a.is(idx, "XX") {
            f.xx = true;
        } else if a.is(idx, "CH") {
            ch = true;
        } else if a.is(idx, "INCR") {
            f.incr = true;
        } else if a.is(idx, "GT") {
            f.gt = true;
        } else if a.is(idx, "LT") {
            f.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let elements = a.len() - idx;
    if elements % 2 == 1 || elements == 0 {
        return Err(Error::Syntax);
    }
    if f.nx && f.xx {
        return Err(Error::msg(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(Error::msg(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && elements > 2 {
        return Err(Error::msg(
            "INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything changes: the command applies fully or not.
    let scores = (idx..a.len())
        .step_by(2)
        .map(|i| arg_score(a.get(i)))
        .collect::<Result<Vec<f64>, Error>>()?;
    let lim = limits(c);
    let key = a.get(1);
    let (mut added, mut updated, mut processed, mut last) = (0i64, 0i64, 0, 0.0);
    let mut nan = false;
    let mut apply = |z: &mut ZSet| {
        for (j, &score) in scores.iter().enumerate() {
            match z.add(a.get(idx + 1 + 2 * j), score, f, lim) {
                AddOutcome::NaN => {
                    nan = true;
                    return;
                }
                AddOutcome::Nop => continue,
                AddOutcome::Added(s) => {
                    added += 1;
                    last = s;
                }
                AddOutcome::Updated(s) => {
                    updated += 1;
                    last = s;
                }
                AddOutcome::Same(s) => last = s,
            }
            processed += 1;
        }
    };
    match c.db.write_as::<ZSet>(key, c.now)? {
        Some(z) => apply(z),
        None if f.xx => {}
        None => {
            let mut z = ZSet::for_first_member(a.get(idx + 1).len(), lim);
            apply(&mut z);
            if !z.is_empty() {
                c.db.set(key, Value::ZSet(z), NO_EXPIRE, c.now);
            }
        }
    }
    if nan {
        return Err(Error::msg("resulting score is not a number (NaN)"));
    }
    // Members added or whose score changed: a ZADD or ZINCRBY that left every score as it
    // was (same score, NX/XX/GT/LT refused, INCR by 0) propagates nothing.
    c.dirty((added + updated) as u64);
    if added + updated > 0 {
        c.notify(class::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if f.incr {
        if processed > 0 {
            c.out.double(last);
        } else {
            c.out.null();
        }
    } else {
        c.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

fn zadd(c: &mut Ctx, a: &Args) -> CmdResult {
    zadd_generic(c, a, AddFlags::default())
}

fn zincrby(c: &mut Ctx, a: &Args) -> CmdResult {
    zadd_generic(
        c,
        a,
        AddFlags {
            incr: true,
            ..AddFlags::default()
        },
    )
}

fn zrem(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let Some(z) = c.db.write_as::<ZSet>(key, c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for m in a.rest(2) {
        removed += z.remove(m) as i64;
        if z.is_empty() {
            break;
        }
    }
    let emptied = z.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(removed as u64);
    if removed > 0 {
        c.notify(class::ZSET, "zrem", key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.int(removed);
    Ok(())
}

// ---- reads ----

fn zcard(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = c.db.read_as::<ZSet>(a.get(1), c.now)?.map_or(0, ZSet::len);
    c.out.int(n as i64);
    Ok(())
}

fn zscore(c: &mut Ctx, a: &Args) -> CmdResult {
    match c
        .db
        .read_as::<ZSet>(a.get(1), c.now)?
        .and_then(|z| z.score(a.get(2)))
    {
        Some(s) => c.out.double(s),
        None => c.out.null(),
    }
    Ok(())
}

fn zmscore(c: &mut Ctx, a: &Args) -> CmdResult {
    let z = c.db.read_as::<ZSet>(a.get(1), c.now)?;
    c.out.array(a.len() - 2);
    for m in a.rest(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => c.out.double(s),
            None => c.out.null(),
        }
    }
    Ok(())
}

fn rank_generic(c: &mut Ctx, a: &Args, rev: bool) -> CmdResult {
    let z = c.db.read_as::<ZSet>(a.get(1), c.now)?;
    match z.and_then(|z| z.rank(a.get(2)).map(|r| (r, z.len()))) {
        Some((r, n)) => c.out.int(if rev { n - 1 - r } else { r } as i64),
        None => c.out.null(),
    }
    Ok(())
}

fn zrank(c: &mut Ctx, a: &Args) -> CmdResult {
    rank_generic(c, a, false)
}

fn zrevrank(c: &mut Ctx, a: &Args) -> CmdResult {
    rank_generic(c, a, true)
}

fn zcount(c: &mut Ctx, a: &Args) -> CmdResult {
    let r = parse_score_range(a.get(2), a.get(3))?;
    let n = c.db.read_as::<ZSet>(a.get(1), c.now)?.map_or(0, |z| {
        let (lo, hi) = z.score_ranks(&r);
        hi - lo
    });
    c.out.int(n as i64);
    Ok(())
}

fn zlexcount(c: &mut Ctx, a: &Args) -> CmdResult {
    let r = parse_lex_range(a.get(2), a.get(3))?;
    let n =
        c.db.read_as::<ZSet>(a.get(1), c.now)?
            .map_or(0, |z| lex_count(z, &r));
    c.out.int(n);
    Ok(())
}

/// ZLEXCOUNT as Redis counts: a packed set walks up from the first member in range while
/// members are not above max; a skiplist subtracts the ranks of the first and last members
/// in range (which can disagree with a walk when scores differ).
fn lex_count(z: &ZSet, r: &LexRange) -> i64 {
    let Some(first) = z.lex_first(r) else {
        return 0;
    };
    match z {
        ZSet::Packed(_) => {
            let mut n = 0;
            z.walk(first, false, |m, _| {
                let inside = r.lte_max(m);
                n += inside as i64;
                inside
            });
            n
        }
        ZSet::Skip(_) => match z.lex_last(r) {
            Some(last) => last as i64 - first as i64 + 1,
            None => (z.len() - first) as i64,
        },
    }
}

/// The members a lex range selects, as Redis walks them (`genericZrangebylexCommand`): from
/// the first (or, reversed, the last) member in range, `offset` members are skipped
/// unchecked, then members are taken while not above max (not below min) up to `limit`.
fn lex_select<'a>(z: &'a ZSet, r: &LexRange, spec: &RangeSpec) -> Vec<(&'a [u8], f64)> {
    let start = if spec.rev {
        z.lex_last(r)
    } else {
        z.lex_first(r)
    };
    let Some(start) = start else {
        return Vec::new();
    };
    // A negative offset walks off the end, as Redis's `while (offset--)` does.
    if spec.offset < 0 {
        return Vec::new();
    }
    let at = if spec.rev {
        match start.checked_sub(spec.offset as usize) {
            Some(at) => at,
            None => return Vec::new(),
        }
    } else {
        match start
            .checked_add(spec.offset as usize)
            .filter(|&at| at < z.len())
        {
            Some(at) => at,
            None => return Vec::new(),
        }
    };
    if spec.limit == 0 {
        return Vec::new();
    }
    let limit = usize::try_from(spec.limit).unwrap_or(usize::MAX);
    let mut n = 0;
    z.walk(at, spec.rev, |m, _| {
        let inside = if spec.rev { r.gte_min(m) } else { r.lte_max(m) };
        n += inside as usize;
        inside && n < limit
    });
    let first = if spec.rev { at + 1 - n } else { at };
    z.range(first, first + n, spec.rev)
}

// ---- the ZRANGE family ----

#[derive(Clone, Copy, PartialEq, Debug)]
enum RangeType {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request (`zrangeGenericCommand`'s steps 1 and 2).
#[derive(Clone, Debug)]
enum Selector {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

#[derive(Clone, Debug)]
struct RangeSpec {
    sel: Selector,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

/// Parses `<key> <min> <max> [options]` from argument `start` (the key), with the
/// range type and direction fixed by the command name or left to BYSCORE / BYLEX / REV.
fn parse_range(
    a: &Args,
    start: usize,
    store: bool,
    fixed_type: Option<RangeType>,
    fixed_rev: Option<bool>,
) -> Result<RangeSpec, Error> {
    let (mut ty, mut rev) = (fixed_type, fixed_rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = start + 3;
    while j < a.len() {
        let left = a.len() - j - 1;
        if !store && a.is(j, "WITHSCORES") {
            withscores = true;
        } else if a.is(j, "LIMIT") && left >= 2 {
            offset = arg_i64(a.get(j + 1))?;
            limit = arg_i64(a.get(j + 2))?;
            j += 2;
        } else if rev.is_none() && a.is(j, "REV") {
            rev = Some(true);
        } else if ty.is_none() && a.is(j, "BYLEX") {
            ty = Some(RangeType::Lex);
        } else if ty.is_none() && a.is(j, "BYSCORE") {
            ty = Some(RangeType::Score);
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    let ty = ty.unwrap_or(RangeType::Rank);
    if limit != -1 && ty == RangeType::Rank {
        return Err(Error::msg(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && ty == RangeType::Lex {
        return Err(Error::msg(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut lo, mut hi) = (a.get(start + 1), a.get(start + 2));
    if rev && ty != RangeType::Rank {
        // Reversed score and lex ranges are written max first.
        std::mem::swap(&mut lo, &mut hi);
    }
    let sel = match ty {
        RangeType::Rank => Selector::Rank(arg_i64(lo)?, arg_i64(hi)?),
        RangeType::Score => Selector::Score(parse_score_range(lo, hi)?),
        RangeType::Lex => Selector::Lex(parse_lex_range(lo, hi)?),
    };
    Ok(RangeSpec {
        sel,
        rev,
        withscores,
        offset,
        limit,
    })
}

/// The elements a parsed range selects, in reply order.
fn select<'a>(z: &'a ZSet, spec: &RangeSpec) -> Vec<(&'a [u8], f64)> {
    let len = z.len() as i64;
    let (lo, hi) = match &spec.sel {
        Selector::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                return Vec::new();
            }
            end = end.min(len - 1);
            let (start, end) = (start as usize, end as usize);
            return if spec.rev {
                let n = len as usize;
                z.range(n - 1 - end, n - start, true)
            } else {
                z.range(start, end + 1, false)
            };
        }
        Selector::Score(r) => z.score_ranks(r),
        Selector::Lex(r) => return lex_select(z, r, spec),
    };
    // Redis steps over `offset` elements one by one: a negative one walks off the end.
    if spec.offset < 0 || spec.offset as u64 >= (hi - lo) as u64 {
        return Vec::new();
    }
    let avail = hi - lo - spec.offset as usize;
    let take = if spec.limit < 0 {
        avail
    } else {
        avail.min(spec.limit as usize)
    };
    if spec.rev {
        let top = hi - spec.offset as usize;
        z.range(top - take, top, true)
    } else {
        let first = lo + spec.offset as usize;
        z.range(first, first + take, false)
    }
}

fn range_reply(c: &mut Ctx, a: &Args, ty: Option<RangeType>, rev: Option<bool>) -> CmdResult {
    let spec = parse_range(a, 1, false, ty, rev)?;
    let Some(z) = c.db.read_as::<ZSet>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    let items = select(z, &spec);
    reply_pairs(c.out, items.into_iter(), spec.withscores);
    Ok(())
}

fn zrange(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, None, None)
}

fn zrevrange(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, Some(RangeType::Rank), Some(true))
}

fn zrangebyscore(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, Some(RangeType::Score), Some(false))
}

fn zrevrangebyscore(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, Some(RangeType::Score), Some(true))
}

fn zrangebylex(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, Some(RangeType::Lex), Some(false))
}

fn zrevrangebylex(c: &mut Ctx, a: &Args) -> CmdResult {
    range_reply(c, a, Some(RangeType::Lex), Some(true))
}

/// ZRANGESTORE's source side: the selected pairs (None: no such key).
fn range_for_store(
    db: &mut Db,
    src: &[u8],
    spec: &RangeSpec,
    now: i64,
) -> Result<Vec<(Vec<u8>, f64)>, Error> {
    Ok(match db.read_as::<ZSet>(src, now)? {
        None => Vec::new(),
        Some(z) => select(z, spec)
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect(),
    })
}

fn zrangestore(c: &mut Ctx, a: &Args) -> CmdResult {
    let spec = parse_range(a, 2, true, None, None)?;
    let pairs = range_for_store(&mut c.db, a.get(2), &spec, c.now)?;
    let z = ZSet::from_pairs(pairs, limits(c));
    let n = store_result(c, a.get(1), z, "zrangestore");
    c.out.int(n);
    Ok(())
}

// ---- range removal ----

fn zremrange(c: &mut Ctx, a: &Args, ty: RangeType) -> CmdResult {
    let sel = match ty {
        RangeType::Rank => Selector::Rank(arg_i64(a.get(2))?, arg_i64(a.get(3))?),
        RangeType::Score => Selector::Score(parse_score_range(a.get(2), a.get(3))?),
        RangeType::Lex => Selector::Lex(parse_lex_range(a.get(2), a.get(3))?),
    };
    let key = a.get(1);
    let Some(z) = c.db.write_as::<ZSet>(key, c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let len = z.len() as i64;
    let (lo, hi) = match &sel {
        Selector::Rank(start, end) => {
            let (mut start, mut end) = (*start, *end);
            if start < 0 {
                start += len;
            }
            if end < 0 {
                end += len;
            }
            start = start.max(0);
            if start > end || start >= len {
                c.out.int(0);
                return Ok(());
            }
            end = end.min(len - 1);
            (start as usize, end as usize + 1)
        }
        Selector::Score(r) => z.score_ranks(r),
        // Redis deletes upwards from the first member not below min while members are not
        // above max (a packed set checks the whole range can match first).
        Selector::Lex(r) => {
            let start = match z {
                ZSet::Packed(_) => z.lex_first(r),
                ZSet::Skip(_) => Some(z.lex_seek_min(r)),
            };
            match start {
                Some(lo) => {
                    let mut n = 0;
                    z.walk(lo, false, |m, _| {
                        let inside = r.lte_max(m);
                        n += inside as usize;
                        inside
                    });
                    (lo, lo + n)
                }
                None => (0, 0),
            }
        }
    };
    let n = z.remove_ranks(lo, hi);
    let emptied = z.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(n as u64);
    if n > 0 {
        let event = match ty {
            RangeType::Rank => "zremrangebyrank",
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
        };
        c.notify(class::ZSET, event, key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.int(n as i64);
    Ok(())
}

fn zremrangebyrank(c: &mut Ctx, a: &Args) -> CmdResult {
    zremrange(c, a, RangeType::Rank)
}

fn zremrangebyscore(c: &mut Ctx, a: &Args) -> CmdResult {
    zremrange(c, a, RangeType::Score)
}

fn zremrangebylex(c: &mut Ctx, a: &Args) -> CmdResult {
    zremrange(c, a, RangeType::Lex)
}

// ---- pops ----

/// Pops up to `count` elements from the low (or `max`) end; deletes the emptied key.
pub(crate) fn pop_from(db: &mut Db, key: &[u8], count: usize, max: bool, now: i64) -> Pairs {
    let Ok(Some(z)) = db.write_as::<ZSet>(key, now) else {
        return Vec::new();
    };
    let n = count.min(z.len());
    let len = z.len();
    let out: Vec<(Vec<u8>, f64)> = if max {
        z.range(len - n, len, true)
    } else {
        z.range(0, n, false)
    }
    .into_iter()
    .map(|(m, s)| (m.to_vec(), s))
    .collect();
    if max {
        z.remove_ranks(len - n, len);
    } else {
        z.remove_ranks(0, n);
    }
    if z.is_empty() {
        db.remove(key);
    }
    out
}

fn zpop(c: &mut Ctx, a: &Args, max: bool) -> CmdResult {
    if a.len() > 3 {
        return Err(Error::Syntax);
    }
    let count = if a.len() == 3 {
        Some(positive_count(a.get(2))?)
    } else {
        None
    };
    let key = a.get(1);
    if c.db.write_as::<ZSet>(key, c.now)?.is_none() || count == Some(0) {
        c.out.array(0);
        return Ok(());
    }
    let popped = pop_from(&mut c.db, key, count.unwrap_or(1) as usize, max, c.now);
    // Propagated as sent.
    c.dirty(popped.len() as u64);
    if !popped.is_empty() {
        notify_zpop(c, key, max);
    }
    // RESP3 nests pairs when a count was given; a plain pop stays flat.
    let nested = c.out.resp3 && count.is_some();
    c.out.array(if nested {
        popped.len()
    } else {
        popped.len() * 2
    });
    for (m, s) in &popped {
        if nested {
            c.out.array(2);
        }
        c.out.bulk(m);
        c.out.double(*s);
    }
    Ok(())
}

fn zpopmin(c: &mut Ctx, a: &Args) -> CmdResult {
    zpop(c, a, false)
}

fn zpopmax(c: &mut Ctx, a: &Args) -> CmdResult {
    zpop(c, a, true)
}

/// Replies `[key, [[member, score] ...]]` (ZMPOP / BZMPOP).
fn reply_keyed_pairs(out: &mut Reply, key: &[u8], pairs: &[(Vec<u8>, f64)]) {
    out.array(2);
    out.bulk(key);
    out.array(pairs.len());
    for (m, s) in pairs {
        out.array(2);
        out.bulk(m);
        out.double(*s);
    }
}

/// ZMPOP's keys, direction and count, validated as Redis 7.0's `zmpopGenericCommand`.
fn parse_zmpop(a: &Args, numkeys_idx: usize) -> Result<(Vec<Vec<u8>>, bool, usize), Error> {
    let numkeys_err = || Error::msg("numkeys should be greater than 0");
    let numkeys = arg_i64(a.get(numkeys_idx))
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(numkeys_err)?;
    let where_idx = (numkeys_idx as i64)
        .saturating_add(numkeys)
        .saturating_add(1);
    if where_idx >= a.len() as i64 {
        return Err(Error::Syntax);
    }
    let where_idx = where_idx as usize;
    let max = if a.is(where_idx, "MIN") {
        false
    } else if a.is(where_idx, "MAX") {
        true
    } else {
        return Err(Error::Syntax);
    };
    let mut count = None;
    let mut j = where_idx + 1;
    while j < a.len() {
        if count.is_none() && a.is(j, "COUNT") && j + 1 < a.len() {
            j += 1;
            count = Some(
                arg_i64(a.get(j))
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| Error::msg("count should be greater than 0"))?,
            );
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let keys = (numkeys_idx + 1..where_idx)
        .map(|i| a.get(i).to_vec())
        .collect();
    Ok((keys, max, count.unwrap_or(1) as usize))
}

/// What popping from the first existing key found: None if that key is missing.
fn zmpop_one(
    db: &mut Db,
    key: &[u8],
    count: usize,
    max: bool,
    now: i64,
) -> Result<Option<Pairs>, Error> {
    if db.write_as::<ZSet>(key, now)?.is_none() {
        return Ok(None);
    }
    Ok(Some(pop_from(db, key, count, max, now)))
}

fn zmpop(c: &mut Ctx, a: &Args) -> CmdResult {
    let (keys, max, count) = parse_zmpop(a, 1)?;
    // The first key that exists is popped from, as Redis looks them up in order.
    for key in &keys {
        if let Some(pairs) = zmpop_one(&mut c.db, key, count, max, c.now)? {
            propagate_zpop(c, key, max, pairs.len(), true);
            notify_zpop(c, key, max);
            reply_keyed_pairs(c.out, key, &pairs);
            return Ok(());
        }
    }
    c.out.null_array();
    Ok(())
}

// ---- blocking pops ----

/// Pops from the key at `pos` if it holds elements: a write lookup, WRONGTYPE for another
/// type, nothing done for a missing key (empty sorted sets are never stored).
fn serve_pop(c: &mut Ctx, key: &[u8], count: usize, max: bool) -> Result<Option<Pairs>, Error> {
    zmpop_one(&mut c.db, key, count, max, c.now)
}

/// BZPOPMIN / BZPOPMAX: a flat `[key, member, score]` in both protocols.
fn serve_bzpop(c: &mut Ctx, a: &Args, pos: usize, max: bool) -> Result<bool, Error> {
    let key = a.get(pos);
    let Some(popped) = serve_pop(c, key, 1, max)? else {
        return Ok(false);
    };
    propagate_zpop(c, key, max, popped.len(), false);
    notify_zpop(c, key, max);
    c.out.array(1 + 2 * popped.len());
    c.out.bulk(key);
    for (m, s) in &popped {
        c.out.bulk(m);
        c.out.double(*s);
    }
    Ok(true)
}

static BZPOPMIN: BlockingOp = BlockingOp {
    serve: |c, a, pos, _| serve_bzpop(c, a, pos, false),
    serves_all_keys: false,
    timeout_reply: Reply::null_array,
};

static BZPOPMAX: BlockingOp = BlockingOp {
    serve: |c, a, pos, _| serve_bzpop(c, a, pos, true),
    serves_all_keys: false,
    timeout_reply: Reply::null_array,
};

/// BZPOPMIN and BZPOPMAX (their table entries say which end they serve).
fn bzpop<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let timeout = blocking::parse_timeout_secs(a.get(a.len() - 1))?;
        let keys: Vec<usize> = (1..a.len() - 1).collect();
        blocking::run(conn, &a, &keys, timeout).await
    })
}

/// BZMPOP: `[key, [[member, score] ...]]`, direction and count parsed again from the args.
fn serve_bzmpop(c: &mut Ctx, a: &Args, pos: usize, _: &mut WaitState) -> Result<bool, Error> {
    let (_, max, count) = parse_zmpop(a, 2)?;
    let key = a.get(pos);
    let Some(popped) = serve_pop(c, key, count, max)? else {
        return Ok(false);
    };
    propagate_zpop(c, key, max, popped.len(), true);
    notify_zpop(c, key, max);
    reply_keyed_pairs(c.out, key, &popped);
    Ok(true)
}

static BZMPOP: BlockingOp = BlockingOp {
    serve: serve_bzmpop,
    serves_all_keys: false,
    timeout_reply: Reply::null_array,
};

fn bzmpop<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        // Redis checks numkeys, direction and COUNT before the timeout.
        let (keys, _, _) = parse_zmpop(&a, 2)?;
        let timeout = blocking::parse_timeout_secs(a.get(1))?;
        let positions: Vec<usize> = (3..3 + keys.len()).collect();
        blocking::run(conn, &a, &positions, timeout).await
    })
}

// ---- ZRANDMEMBER ----

fn zrandmember(c: &mut Ctx, a: &Args) -> CmdResult {
    if a.len() == 2 {
        let r = c.db.random_u64();
        match c.db.read_as::<ZSet>(a.get(1), c.now)? {
            Some(z) => {
                let pick = crate::types::set::below(r, z.len());
                match z.get(pick) {
                    Some((m, _)) => c.out.bulk(m),
                    None => c.out.null(),
                }
            }
            None => c.out.null(),
        }
        return Ok(());
    }
    let l = arg_count(a.get(2))?;
    if a.len() > 4 || (a.len() == 4 && !a.is(3, "WITHSCORES")) {
        return Err(Error::Syntax);
    }
    let withscores = a.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(Error::msg("value is out of range"));
    }
    let mut rng = Rng::new(c.db.random_u64());
    let Some(z) = c.db.read_as::<ZSet>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    let (size, count) = (z.len(), l.unsigned_abs() as usize);
    if count == 0 {
        c.out.array(0);
        return Ok(());
    }
    let resp3 = c.out.resp3;
    let emit = |out: &mut Reply, (m, s): (&[u8], f64)| {
        if withscores && resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    };
    // A listpack is walked once into a table, so each pick is O(1) there too.
    let packed: Option<Vec<(&[u8], f64)>> =
        matches!(z, ZSet::Packed(_)).then(|| z.iter().collect());
    let get = |pos: usize| match &packed {
        Some(t) => t.get(pos).copied(),
        None => z.get(pos),
    };
    let n = if l < 0 || count == 1 {
        count
    } else {
        count.min(size)
    };
    c.out.array(if withscores && !resp3 { n * 2 } else { n });
    if l < 0 || count == 1 {
        // Drawn with repetition, streamed: a huge count must not be gathered first.
        for _ in 0..count {
            if let Some(p) = get(rng.below(size)) {
                emit(c.out, p);
            }
        }
    } else if count >= size {
        // Redis walks sorted sets from the highest element down here (its `zuiNext`).
        for p in z.range(0, size, true) {
            emit(c.out, p);
        }
    } else {
        for pos in distinct_positions(size, count, &mut || rng.next()) {
            if let Some(p) = get(pos) {
                emit(c.out, p);
            }
        }
    }
    Ok(())
}

// ---- union / intersection / difference ----

/// An input of the algebra: a sorted set, or a set whose members all score 1.
#[derive(Clone, Copy)]
enum Input<'a> {
    Z(&'a ZSet),
    S(&'a Set),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Z(z) => z.len(),
            Input::S(s) => s.len(),
        }
    }

    fn pairs(&self) -> Vec<(Vec<u8>, f64)> {
        match self {
            Input::Z(z) => z.iter().map(|(m, s)| (m.to_vec(), s)).collect(),
            Input::S(s) => s.iter().map(|m| (m.to_vec(), 1.0)).collect(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Input::Z(z) => z.score(m),
            Input::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn same(&self, o: &Input) -> bool {
        match (self, o) {
            (Input::Z(a), Input::Z(b)) => std::ptr::eq(*a, *b),
            (Input::S(a), Input::S(b)) => std::ptr::eq(*a, *b),
            _ => false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += v;
            // inf + -inf: Redis makes it 0 rather than store NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => *target = target.min(v),
        Aggregate::Max => *target = target.max(v),
    }
}

/// The options after the keys.
#[derive(Clone, Debug)]
struct AlgebraOpts {
    weights: Vec<f64>,
    agg: Aggregate,
    withscores: bool,
    limit: usize,
}

/// What a command of the family is.
#[derive(Clone, Copy, PartialEq)]
struct Kind {
    op: Op,
    store: bool,
    card_only: bool,
    name: &'static str,
}

/// `numkeys` and the keys (`zunionInterDiffGenericCommand`'s first checks).
fn parse_numkeys(a: &Args, idx: usize, name: &str) -> Result<Vec<Vec<u8>>, Error> {
    let n = arg_i64(a.get(idx))?;
    if n < 1 {
        return Err(Error::msg(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    if n > (a.len() - idx - 1) as i64 {
        return Err(Error::Syntax);
    }
    Ok((idx + 1..idx + 1 + n as usize)
        .map(|i| a.get(i).to_vec())
        .collect())
}

/// The options after the keys; Redis reports their errors only after the key lookups.
fn parse_algebra_opts(a: &Args, mut j: usize, n: usize, k: Kind) -> Result<AlgebraOpts, Error> {
    let mut o = AlgebraOpts {
        weights: vec![1.0; n],
        agg: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    while j < a.len() {
        let remaining = a.len() - j;
        if k.op != Op::Diff && !k.card_only && remaining > n && a.is(j, "WEIGHTS") {
            j += 1;
            for w in o.weights.iter_mut() {
                *w = parse_score(a.get(j))
                    .ok_or_else(|| Error::msg("weight value is not a float"))?;
                j += 1;
            }
        } else if k.op != Op::Diff && !k.card_only && remaining >= 2 && a.is(j, "AGGREGATE") {
            o.agg = if a.is(j + 1, "SUM") {
                Aggregate::Sum
            } else if a.is(j + 1, "MIN") {
                Aggregate::Min
            } else if a.is(j + 1, "MAX") {
                Aggregate::Max
            } else {
                return Err(Error::Syntax);
            };
            j += 2;
        } else if !k.store && !k.card_only && a.is(j, "WITHSCORES") {
            o.withscores = true;
            j += 1;
        } else if k.card_only && remaining >= 2 && a.is(j, "LIMIT") {
            let l = arg_i64(a.get(j + 1))
                .ok()
                .filter(|&l| l >= 0)
                .ok_or_else(|| Error::msg("LIMIT can't be negative"))?;
            o.limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    Ok(o)
}

/// What the algebra produced.
enum Computed {
    Pairs(Vec<(Vec<u8>, f64)>),
    Count(usize),
}

/// Redis's algorithms (the inputs' order and the NaN rules matter for the scores).
fn compute(inputs: &[Option<Input>], o: &AlgebraOpts, k: Kind) -> Computed {
    let mut src: Vec<(Option<Input>, f64)> = inputs
        .iter()
        .copied()
        .zip(o.weights.iter().copied())
        .collect();
    let len = |s: &Option<Input>| s.as_ref().map_or(0, Input::len);
    if k.op != Op::Diff {
        // Smallest first, as Redis sorts its inputs by cardinality.
        src.sort_by_key(|s| len(&s.0));
    }
    let mut out: Vec<(Vec<u8>, f64)> = Vec::new();
    match k.op {
        Op::Inter => {
            let mut count = 0usize;
            if let Some((Some(first), w0)) = src.first().copied().filter(|s| len(&s.0) > 0) {
                'each: for (m, s) in first.pairs() {
                    let mut score = w0 * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    for (other, w) in &src[1..] {
                        let Some(other) = other else { continue 'each };
                        let v = if other.same(&first) {
                            Some(s)
                        } else {
                            other.score(&m)
                        };
                        match v {
                            Some(v) => aggregate(&mut score, v * w, o.agg),
                            None => continue 'each,
                        }
                    }
                    if k.card_only {
                        count += 1;
                        if o.limit != 0 && count >= o.limit {
                            break;
                        }
                    } else {
                        out.push((m, score));
                    }
                }
            }
            if k.card_only {
                return Computed::Count(count);
            }
        }
        Op::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            for (s, w) in &src {
                let Some(s) = s else { continue };
                for (m, sc) in s.pairs() {
                    let mut v = w * sc;
                    if v.is_nan() {
                        v = 0.0;
                    }
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(t, v, o.agg),
                        None => {
                            acc.insert(m, v);
                        }
                    }
                }
            }
            out = acc.into_iter().collect();
        }
        Op::Diff => {
            if let Some((Some(first), _)) = src.first().copied() {
                for (m, s) in first.pairs() {
                    let found = src[1..]
                        .iter()
                        .any(|(o, _)| o.is_some_and(|o| o.score(&m).is_some()));
                    if !found {
                        out.push((m, s));
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| crate::types::zset::cmp_pair(a.1, &a.0, b.1, &b.0));
    Computed::Pairs(out)
}

/// The input at `key`: WRONGTYPE for anything but a set or sorted set.
fn load_input<'a>(db: &'a Db<'_>, key: &[u8]) -> Option<Input<'a>> {
    let e = db.slot_table(key_slot(key))?.get(key)?;
    match &e.value {
        Value::ZSet(z) => Some(Input::Z(z)),
        Value::Set(s) => Some(Input::S(s)),
        _ => None,
    }
}

/// Looks every key up as a read (expiry, hit/miss), WRONGTYPE at the first bad one.
fn check_inputs(db: &mut Db, keys: &[Vec<u8>], now: i64) -> Result<(), Error> {
    for k in keys {
        if let Some(e) = db.read(k, now) {
            if !matches!(e.value, Value::ZSet(_) | Value::Set(_)) {
                return Err(Error::WrongType);
            }
        }
    }
    Ok(())
}

/// Runs a command of the family over the data of every key's shard.
fn algebra(c: &mut Ctx, a: &Args, k: Kind) -> CmdResult {
    let idx = if k.store { 2 } else { 1 };
    let keys = parse_numkeys(a, idx, k.name)?;
    let opts = parse_algebra_opts(a, idx + 1 + keys.len(), keys.len(), k);
    let withscores = opts.as_ref().is_ok_and(|o| o.withscores);
    check_inputs(&mut c.db, &keys, c.now)?;
    let opts = opts?;
    let lim = limits(c);
    let computed = {
        let db = &c.db;
        let inputs: Vec<Option<Input>> = keys.iter().map(|key| load_input(db, key)).collect();
        compute(&inputs, &opts, k)
    };
    match computed {
        Computed::Count(n) => c.out.int(n as i64),
        Computed::Pairs(p) if k.store => {
            let n = store_result(c, a.get(1), ZSet::from_pairs(p, lim), k.name);
            c.out.int(n);
        }
        Computed::Pairs(p) => reply_pairs(c.out, p.iter().map(|(m, s)| (&m[..], *s)), withscores),
    }
    Ok(())
}

fn zunion(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Union,
            store: false,
            card_only: false,
            name: "zunion",
        },
    )
}

fn zinter(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Inter,
            store: false,
            card_only: false,
            name: "zinter",
        },
    )
}

fn zdiff(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Diff,
            store: false,
            card_only: false,
            name: "zdiff",
        },
    )
}

fn zunionstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Union,
            store: true,
            card_only: false,
            name: "zunionstore",
        },
    )
}

fn zinterstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Inter,
            store: true,
            card_only: false,
            name: "zinterstore",
        },
    )
}

fn zdiffstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Diff,
            store: true,
            card_only: false,
            name: "zdiffstore",
        },
    )
}

fn zintercard(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(
        c,
        a,
        Kind {
            op: Op::Inter,
            store: false,
            card_only: true,
            name: "zintercard",
        },
    )
}

// ---- ZSCAN ----

fn zscan(c: &mut Ctx, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    let Some(z) = c.db.read_as::<ZSet>(a.get(1), c.now)? else {
        empty_scan(c.out);
        return Ok(());
    };
    let opts = parse_scan_opts(a, 3, false)?;
    let packed = matches!(z, ZSet::Packed(_));
    let (items, next) = z.scan(cursor, opts.count);
    let kept: Vec<(&[u8], f64)> = items.into_iter().filter(|(m, _)| opts.keeps(m)).collect();
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    c.out.array(kept.len() * 2);
    let mut text = Vec::with_capacity(32);
    for (m, s) in kept {
        c.out.bulk(m);
        // Redis sends the score as text: a listpack's stored form, or `%.17Lg`.
        text.clear();
        if packed {
            d2string(s, &mut text);
        } else {
            ld_auto(s, &mut text);
        }
        c.out.bulk(&text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b" 1"), None);
        assert_eq!(parse_score(b"1 "), None);
        assert_eq!(parse_score(b""), None);
        assert_eq!(parse_score(b"1e400"), None);
        assert_eq!(parse_score(b"1\x002"), None);
        let b = parse_score_bound(b"(1.5").unwrap();
        assert!(b.exclusive && b.value == 1.5);
        assert_eq!(parse_score_bound(b"").map(|b| b.value), Some(0.0));
        assert_eq!(parse_score_bound(b"(").map(|b| b.value), Some(0.0));
        assert!(parse_score_bound(b"(nan").is_none());
        assert!(parse_score_bound(b"x").is_none());
        assert_eq!(parse_lex_bound(b"-"), Some(LexBound::NegInf));
        assert_eq!(parse_lex_bound(b"+x"), None);
        assert_eq!(parse_lex_bound(b"a"), None);
        assert_eq!(parse_lex_bound(b"["), Some(LexBound::Incl(Vec::new())));
    }

    #[test]
    fn score_texts() {
        let f = |v: f64, g: fn(f64, &mut Vec<u8>)| {
            let mut o = Vec::new();
            g(v, &mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(f(1e17, d2string), "100000000000000000");
        assert_eq!(f(1e19, d2string), "1e+19");
        assert_eq!(f(0.1, d2string), "0.10000000000000001");
        assert_eq!(f(-0.0, d2string), "-0");
        assert_eq!(f(0.1, ld_auto), "0.10000000000000001");
        assert_eq!(f(1e-5, ld_auto), "1.0000000000000001e-05");
        assert_eq!(f(1e17, ld_auto), "1e+17");
        assert_eq!(f(f64::NEG_INFINITY, ld_auto), "-inf");
        assert_eq!(f(3.0, ld_auto), "3");
    }
}
