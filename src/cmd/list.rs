//! List commands (Redis 7.0's t_list.c): pushes and pops at both ends, indexed access,
//! LRANGE / LTRIM / LREM / LINSERT / LPOS, LMOVE and RPOPLPUSH (across shards too), LMPOP,
//! and the blocking BLPOP / BRPOP / BLMOVE / BRPOPLPUSH / BLMPOP (via `shard::blocking`).

use crate::acl;
use crate::cmd::blocking::{self, BlockingOp, WaitState};
use crate::cmd::call::with_keys;
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::types::list::{End, Fill, List};
use crate::types::Value;
use crate::util::num::{arg_i64, parse_i64_strict};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("lpush", -3, WRITE | DENYOOM | FAST, lpush)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Prepend one or multiple elements to a list"),
    CommandSpec::keyed("rpush", -3, WRITE | DENYOOM | FAST, rpush)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Append one or multiple elements to a list"),
    CommandSpec::keyed("lpushx", -3, WRITE | DENYOOM | FAST, lpushx)
        .acl(&["@list"])
        .doc(
            "list",
            "2.2.0",
            "Prepend an element to a list, only if the list exists",
        ),
    CommandSpec::keyed("rpushx", -3, WRITE | DENYOOM | FAST, rpushx)
        .acl(&["@list"])
        .doc(
            "list",
            "2.2.0",
            "Append an element to a list, only if the list exists",
        ),
    CommandSpec::keyed("lpop", -2, WRITE | FAST, lpop)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Remove and get the first elements in a list"),
    CommandSpec::keyed("rpop", -2, WRITE | FAST, rpop)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Remove and get the last elements in a list"),
    CommandSpec::keyed("llen", 2, READONLY | FAST, llen)
        .access(acl::NONE, acl::NONE)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Get the length of a list"),
    CommandSpec::keyed("lindex", 3, READONLY, lindex)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Get an element from a list by its index"),
    CommandSpec::keyed("lset", 4, WRITE | DENYOOM, lset)
        .acl(&["@list"])
        .doc(
            "list",
            "1.0.0",
            "Set the value of an element in a list by its index",
        ),
    CommandSpec::keyed("lrange", 4, READONLY, lrange)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Get a range of elements from a list"),
    CommandSpec::keyed("ltrim", 4, WRITE, ltrim)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Trim a list to the specified range"),
    CommandSpec::keyed("lrem", 4, WRITE, lrem)
        .acl(&["@list"])
        .doc("list", "1.0.0", "Remove elements from a list"),
    CommandSpec::keyed("linsert", 5, WRITE | DENYOOM, linsert)
        .acl(&["@list"])
        .doc(
            "list",
            "2.2.0",
            "Insert an element before or after another element in a list",
        ),
    CommandSpec::keyed("lpos", -3, READONLY, lpos)
        .acl(&["@list"])
        .doc(
            "list",
            "6.0.6",
            "Return the index of matching elements on a list",
        ),
    CommandSpec::keyed("lmove", 5, WRITE | DENYOOM, lmove)
        .access(acl::READ_WRITE, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@list"])
        .doc(
            "list",
            "6.2.0",
            "Pop an element from a list, push it to another list and return it",
        ),
    CommandSpec::keyed("rpoplpush", 3, WRITE | DENYOOM, rpoplpush)
        .access(acl::READ_WRITE, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@list"])
        .doc(
            "list",
            "1.2.0",
            "Remove the last element in a list, prepend it to another list and return it",
        ),
    CommandSpec::new("lmpop", -4, WRITE | MOVABLE_KEYS, Handler::Keyed(lmpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .key_finder(crate::cmd::keys_at::numkeys_1)
        .acl(&["@list"])
        .doc("list", "7.0.0", "Pop elements from a list"),
    CommandSpec::new("blpop", -3, WRITE | NOSCRIPT | BLOCKING, Handler::Async(bpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .blocking(&BLPOP_OP)
        .keys(1, -2, 1)
        .acl(&["@list"])
        .doc(
            "list",
            "2.0.0",
            "Remove and get the first element in a list, or block until one is available",
        ),
    CommandSpec::new("brpop", -3, WRITE | NOSCRIPT | BLOCKING, Handler::Async(bpop))
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .blocking(&BRPOP_OP)
        .keys(1, -2, 1)
        .acl(&["@list"])
        .doc(
            "list",
            "2.0.0",
            "Remove and get the last element in a list, or block until one is available",
        ),
    CommandSpec::new(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        Handler::Async(blmove),
    )
        .access(acl::READ_WRITE, acl::WRITE)
    .blocking(&BLMOVE_OP)
    .keys(1, 2, 1)
    .acl(&["@list"])
    .doc(
        "list",
        "6.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
    ),
    CommandSpec::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        Handler::Async(brpoplpush),
    )
        .access(acl::READ_WRITE, acl::WRITE)
    .blocking(&BLMOVE_OP)
    .keys(1, 2, 1)
    .acl(&["@list"])
    .doc(
        "list",
        "2.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
    ),
    CommandSpec::new(
        "blmpop",
        -5,
        WRITE | BLOCKING | MOVABLE_KEYS,
        Handler::Async(blmpop),
    )
        .access(acl::READ_WRITE, acl::READ_WRITE)
    .blocking(&BLMPOP_OP)
        .key_finder(crate::cmd::keys_at::numkeys_2)
    .acl(&["@list"])
    .doc(
        "list",
        "7.0.0",
        "Pop elements from a list, or block until one is available",
    ),
];

// ---- lookups ----

pub(crate) fn fill_of(c: &Ctx) -> Fill {
    c.limits().list_fill
}

/// WRONGTYPE if `key` holds something other than a list (a missing key is fine).
pub(crate) fn check_list(db: &mut Db, key: &[u8], now: i64) -> Result<(), Error> {
    db.write_as::<List>(key, now).map(|_| ())
}

/// `LEFT` / `RIGHT`, or a syntax error.
fn parse_end(arg: &[u8]) -> Result<End, Error> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Ok(End::Head)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Ok(End::Tail)
    } else {
        Err(Error::Syntax)
    }
}

/// Pushes `values` at `end` of the list at `key`, creating it if absent (the caller checked
/// the type). Returns the new length.
pub(crate) fn push_values<'v>(
    db: &mut Db,
    key: &[u8],
    end: End,
    values: impl Iterator<Item = &'v [u8]>,
    fill: Fill,
    now: i64,
) -> usize {
    match db.write_as::<List>(key, now) {
        Ok(Some(l)) => {
            values.for_each(|v| l.push(end, v, fill));
            l.len()
        }
        _ => {
            let mut l = List::new();
            values.for_each(|v| l.push(end, v, fill));
            let n = l.len();
            if n > 0 {
                db.set(key, Value::List(l), NO_EXPIRE, now);
            }
            n
        }
    }
}

/// Pops up to `count` elements from `end` of the list at `key` into `f`, deleting the key
/// if emptied. Returns how many were popped (0 if the key is missing or not a list).
pub(crate) fn pop_values(
    db: &mut Db,
    key: &[u8],
    end: End,
    count: usize,
    now: i64,
    mut f: impl FnMut(&[u8]),
) -> usize {
    let Ok(Some(l)) = db.write_as::<List>(key, now) else {
        return 0;
    };
    let n = count.min(l.len());
    for _ in 0..n {
        l.pop_with(end, &mut f);
    }
    if l.is_empty() {
        db.remove(key);
    }
    n
}

/// `[start, end]` (Redis's inclusive, negative-from-the-tail indexes) clamped to a list of
/// `len` elements, or None if the range is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let llen = len as i64;
    let mut s = if start < 0 { llen + start } else { start };
    let mut e = if end < 0 { llen + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= llen {
        return None;
    }
    if e >= llen {
        e = llen - 1;
    }
    Some((s as usize, e as usize))
}

/// A non-negative index from Redis's signed one (negative counts from the tail).
fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

// ---- pushes ----

fn push_generic(c: &mut Ctx, a: &Args, end: End, only_existing: bool) -> CmdResult {
    let key = a.get(1);
    let fill = fill_of(c);
    let exists = c.db.write_as::<List>(key, c.now)?.is_some();
    let len = if only_existing && !exists {
        0
    } else {
        // One change per element pushed, as Redis counts them.
        c.dirty(a.len() as u64 - 2);
        let len = push_values(&mut c.db, key, end, a.rest(2), fill, c.now);
        c.notify(class::LIST, push_event(end), key);
        len
    };
    c.out.int(len as i64);
    Ok(())
}

fn lpush(c: &mut Ctx, a: &Args) -> CmdResult {
    push_generic(c, a, End::Head, false)
}

fn rpush(c: &mut Ctx, a: &Args) -> CmdResult {
    push_generic(c, a, End::Tail, false)
}

fn lpushx(c: &mut Ctx, a: &Args) -> CmdResult {
    push_generic(c, a, End::Head, true)
}

fn rpushx(c: &mut Ctx, a: &Args) -> CmdResult {
    push_generic(c, a, End::Tail, true)
}

// ---- pops ----

/// A count that must be >= 0, with Redis's one message for both bad forms.
fn positive_count(arg: &[u8]) -> Result<usize, Error> {
    parse_i64_strict(arg)
        .filter(|&n| n >= 0)
        .map(|n| n as usize)
        .ok_or_else(|| Error::msg("value is out of range, must be positive"))
}

fn pop_generic(c: &mut Ctx, a: &Args, end: End, name: &'static str) -> CmdResult {
    if a.len() > 3 {
        return Err(Error::WrongArity(name.into()));
    }
    let count = if a.len() == 3 {
        Some(positive_count(a.get(2))?)
    } else {
        None
    };
    let key = a.get(1);
    let Some(l) = c.db.write_as::<List>(key, c.now)? else {
        // No key: a null, of the shape the count form would have answered with.
        match count {
            Some(_) => c.out.null_array(),
            None => c.out.null(),
        }
        return Ok(());
    };
    let out = &mut *c.out;
    // Propagated as sent (the count too): it pops the same elements on a replica.
    let popped = match count {
        None => {
            l.pop_with(end, |e| out.bulk(e));
            1
        }
        Some(0) => {
            out.array(0);
            return Ok(());
        }
        Some(n) => {
            let n = n.min(l.len());
            out.array(n);
            for _ in 0..n {
                l.pop_with(end, |e| out.bulk(e));
            }
            n
        }
    };
    let emptied = l.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(popped as u64);
    c.notify(class::LIST, pop_event(end), key);
    if emptied {
        c.notify(class::GENERIC, "del", key);
    }
    Ok(())
}

fn lpop(c: &mut Ctx, a: &Args) -> CmdResult {
    pop_generic(c, a, End::Head, "lpop")
}

fn rpop(c: &mut Ctx, a: &Args) -> CmdResult {
    pop_generic(c, a, End::Tail, "rpop")
}

// ---- reads ----

fn llen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = c.db.read_as::<List>(a.get(1), c.now)?.map_or(0, List::len);
    c.out.int(n as i64);
    Ok(())
}

fn lindex(c: &mut Ctx, a: &Args) -> CmdResult {
    // The key is looked up before the index is parsed, as Redis does.
    let Some(l) = c.db.read_as::<List>(a.get(1), c.now)? else {
        c.out.null();
        return Ok(());
    };
    let index = arg_i64(a.get(2))?;
    match resolve_index(index, l.len()).and_then(|i| l.get(i)) {
        Some(e) => c.out.bulk(e),
        None => c.out.null(),
    }
    Ok(())
}

fn lrange(c: &mut Ctx, a: &Args) -> CmdResult {
    let (start, end) = (arg_i64(a.get(2))?, arg_i64(a.get(3))?);
    let Some(l) = c.db.read_as::<List>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    let Some((s, e)) = clamp_range(start, end, l.len()) else {
        c.out.array(0);
        return Ok(());
    };
    let n = e - s + 1;
    c.out.array(n);
    for v in l.iter_from(s).take(n) {
        c.out.bulk(v);
    }
    Ok(())
}

/// LPOS's options: RANK (never 0), COUNT (None: not given) and MAXLEN (0: no limit).
struct LposOpts {
    rank: i64,
    count: Option<i64>,
    maxlen: i64,
}

fn parse_lpos(a: &Args) -> Result<LposOpts, Error> {
    let mut o = LposOpts {
        rank: 1,
        count: None,
        maxlen: 0,
    };
    let non_negative = |arg: &[u8], msg: &'static str| {
        parse_i64_strict(arg)
            .filter(|&n| n >= 0)
            .ok_or(Error::msg(msg))
    };
    let mut j = 3;
    while j < a.len() {
        let more = j + 1 < a.len();
        if a.is(j, "RANK") && more {
            j += 1;
            // Redis 7.0 takes any long here; LONG_MIN's negation wraps (see `lpos`).
            o.rank = arg_i64(a.get(j))?;
            if o.rank == 0 {
                return Err(Error::msg(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if a.is(j, "COUNT") && more {
            j += 1;
            o.count = Some(non_negative(a.get(j), "COUNT can't be negative")?);
        } else if a.is(j, "MAXLEN") && more {
            j += 1;
            o.maxlen = non_negative(a.get(j), "MAXLEN can't be negative")?;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn lpos(c: &mut Ctx, a: &Args) -> CmdResult {
    let o = parse_lpos(a)?;
    let Some(l) = c.db.read_as::<List>(a.get(1), c.now)? else {
        match o.count {
            Some(_) => c.out.array(0),
            None => c.out.null(),
        }
        return Ok(());
    };
    let elem = a.get(2);
    // A negative rank scans from the tail. Redis negates in C `long`, so LONG_MIN stays
    // negative and then matches from the first hit on; wrapping arithmetic reproduces that.
    let from_tail = o.rank < 0;
    let rank = if from_tail {
        o.rank.wrapping_neg()
    } else {
        o.rank
    };
    let len = l.len();
    let scan: Box<dyn Iterator<Item = &[u8]>> = if from_tail {
        Box::new(l.iter_rev())
    } else {
        Box::new(l.iter())
    };
    let mut found: Vec<i64> = Vec::new();
    let mut matches: i64 = 0;
    for (index, e) in scan.enumerate() {
        if o.maxlen != 0 && index as i64 >= o.maxlen {
            break;
        }
        if e != elem {
            continue;
        }
        matches += 1;
        if matches < rank {
            continue;
        }
        found.push(if from_tail {
            (len - index - 1) as i64
        } else {
            index as i64
        });
        match o.count {
            None => break,
            Some(count) => {
                if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                    break;
                }
            }
        }
    }
    match o.count {
        Some(_) => {
            c.out.array(found.len());
            for i in found {
                c.out.int(i);
            }
        }
        None => match found.first() {
            Some(&i) => c.out.int(i),
            None => c.out.null(),
        },
    }
    Ok(())
}

// ---- in-place writes ----

fn lset(c: &mut Ctx, a: &Args) -> CmdResult {
    let fill = fill_of(c);
    let Some(l) = c.db.write_as::<List>(a.get(1), c.now)? else {
        return Err(Error::NoSuchKey);
    };
    let index = arg_i64(a.get(2))?;
    let ok = resolve_index(index, l.len()).is_some_and(|i| l.set(i, a.get(3), fill));
    if !ok {
        return Err(Error::msg("index out of range"));
    }
    c.dirty(1);
    c.notify(class::LIST, "lset", a.get(1));
    c.out.ok();
    Ok(())
}

fn ltrim(c: &mut Ctx, a: &Args) -> CmdResult {
    let (start, end) = (arg_i64(a.get(2))?, arg_i64(a.get(3))?);
    let fill = fill_of(c);
    let key = a.get(1);
    if let Some(l) = c.db.write_as::<List>(key, c.now)? {
        let len = l.len();
        match clamp_range(start, end, len) {
            // Out of range or start past end: nothing is kept.
            None => l.remove_range(0, len, fill),
            Some((s, e)) => {
                l.remove_range(e + 1, len - e - 1, fill);
                l.remove_range(0, s, fill);
            }
        }
        // One change per element removed: a trim that keeps everything propagates nothing,
        // but its key is signalled to watchers all the same, as Redis does.
        let removed = len - l.len();
        let emptied = l.is_empty();
        if emptied {
            c.db.remove(key);
        }
        c.dirty(removed as u64);
        c.signal_watchers();
        c.notify(class::LIST, "ltrim", key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.ok();
    Ok(())
}

fn lrem(c: &mut Ctx, a: &Args) -> CmdResult {
    let count = arg_i64(a.get(2))?;
    let fill = fill_of(c);
    let key = a.get(1);
    let Some(l) = c.db.write_as::<List>(key, c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    // A negative count removes from the tail; |LONG_MIN| never runs out, as in Redis.
    let removed = l.remove_matching(a.get(3), count.unsigned_abs(), count < 0, fill);
    let emptied = l.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(removed as u64);
    if removed > 0 {
        c.notify(class::LIST, "lrem", key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.int(removed as i64);
    Ok(())
}

fn linsert(c: &mut Ctx, a: &Args) -> CmdResult {
    let after = if a.is(2, "AFTER") {
        true
    } else if a.is(2, "BEFORE") {
        false
    } else {
        return Err(Error::Syntax);
    };
    let fill = fill_of(c);
    let Some(l) = c.db.write_as::<List>(a.get(1), c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let n = match l.position(a.get(3)) {
        Some(p) => {
            l.insert(p + after as usize, a.get(4), fill);
            l.len() as i64
        }
        None => -1,
    };
    c.dirty((n > 0) as u64);
    if n > 0 {
        c.notify(class::LIST, "linsert", a.get(1));
    }
    c.out.int(n);
    Ok(())
}

// ---- LMOVE / RPOPLPUSH ----

/// LMOVE on one shard: None if the source is missing.
pub(crate) fn move_one(
    db: &mut Db,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    fill: Fill,
    now: i64,
) -> Result<Option<Vec<u8>>, Error> {
    // Source first: a missing source answers nil whatever the destination holds.
    if db.write_as::<List>(src, now)?.is_none() {
        return Ok(None);
    }
    if src == dst {
        // Rotation in place, so a one-element list (and its TTL) survives.
        let Some(l) = db.write_as::<List>(src, now)? else {
            return Ok(None);
        };
        let v = l.pop(from);
        if let Some(v) = &v {
            l.push(to, v, fill);
        }
        return Ok(v);
    }
    check_list(db, dst, now)?;
    let mut v = None;
    pop_values(db, src, from, 1, now, |e| v = Some(e.to_vec()));
    if let Some(v) = &v {
        push_values(db, dst, to, std::iter::once(&v[..]), fill, now);
    }
    Ok(v)
}

/// LMOVE's notifications, in Redis's order: the push on `dst`, the pop from `src`, and its
/// `del` when the pop emptied it.
fn notify_moved(c: &mut Ctx, src: &[u8], dst: &[u8], from: End, to: End) {
    if c.notifies(class::LIST | class::GENERIC) {
        c.notify(class::LIST, push_event(to), dst);
        notify_popped(c, from, src);
    }
}

/// `lpop`/`rpop` for `key`, then `del` if the pop emptied it (Redis's
/// `listElementsRemoved`).
fn notify_popped(c: &mut Ctx, end: End, key: &[u8]) {
    if c.notifies(class::LIST | class::GENERIC) {
        c.notify(class::LIST, pop_event(end), key);
        if c.db.peek(key, c.now).is_none() {
            c.notify(class::GENERIC, "del", key);
        }
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Head => "lpush",
        End::Tail => "rpush",
    }
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Head => "lpop",
        End::Tail => "rpop",
    }
}

fn reply_moved(out: &mut Reply, v: Option<Vec<u8>>) {
    match v {
        Some(v) => out.bulk(&v),
        None => out.null(),
    }
}

fn lmove(c: &mut Ctx, a: &Args) -> CmdResult {
    let (from, to) = (parse_end(a.get(3))?, parse_end(a.get(4))?);
    let fill = fill_of(c);
    let v = move_one(&mut c.db, a.get(1), a.get(2), from, to, fill, c.now)?;
    c.dirty(v.is_some() as u64);
    if v.is_some() {
        notify_moved(c, a.get(1), a.get(2), from, to);
    }
    reply_moved(c.out, v);
    Ok(())
}

fn rpoplpush(c: &mut Ctx, a: &Args) -> CmdResult {
    let fill = fill_of(c);
    let v = move_one(
        &mut c.db,
        a.get(1),
        a.get(2),
        End::Tail,
        End::Head,
        fill,
        c.now,
    )?;
    c.dirty(v.is_some() as u64);
    if v.is_some() {
        notify_moved(c, a.get(1), a.get(2), End::Tail, End::Head);
    }
    reply_moved(c.out, v);
    Ok(())
}

// ---- LMPOP ----

/// The keys, end and count of LMPOP / BLMPOP, parsed as Redis 7.0 does; `numkeys_at` is
/// the index of numkeys.
pub(crate) struct MpopArgs {
    pub keys: Vec<Vec<u8>>,
    pub end: End,
    pub count: usize,
}

pub(crate) fn parse_mpop(a: &Args, numkeys_at: usize) -> Result<MpopArgs, Error> {
    let numkeys = parse_i64_strict(a.get(numkeys_at))
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::msg("numkeys should be greater than 0"))?;
    // The direction must follow the keys.
    let end_at = (numkeys as u64).saturating_add(numkeys_at as u64 + 1);
    if end_at >= a.len() as u64 {
        return Err(Error::Syntax);
    }
    let end_at = end_at as usize;
    let end = parse_end(a.get(end_at))?;
    let mut count = None;
    let mut j = end_at + 1;
    while j < a.len() {
        if count.is_none() && a.is(j, "COUNT") && j + 1 < a.len() {
            j += 1;
            let n = parse_i64_strict(a.get(j))
                .filter(|&n| n >= 1)
                .ok_or_else(|| Error::msg("count should be greater than 0"))?;
            count = Some(n as usize);
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let keys = (numkeys_at + 1..end_at)
        .map(|i| a.get(i).to_vec())
        .collect();
    Ok(MpopArgs {
        keys,
        end,
        count: count.unwrap_or(1),
    })
}

/// LMPOP's step on one key: the popped elements (None: missing key, try the next one).
pub(crate) fn mpop_key(
    db: &mut Db,
    key: &[u8],
    end: End,
    count: usize,
    now: i64,
) -> Result<Option<Vec<Vec<u8>>>, Error> {
    if db.write_as::<List>(key, now)?.is_none() {
        return Ok(None);
    }
    let mut out = Vec::new();
    pop_values(db, key, end, count, now, |e| out.push(e.to_vec()));
    Ok(Some(out))
}

/// Elements popped from the key at an index of LMPOP's keys.
pub(crate) type Popped = (usize, Vec<Vec<u8>>);

/// Tries the keys in order and pops from the first list found: (key index, elements).
pub(crate) fn mpop_first(
    db: &mut Db,
    keys: &[Vec<u8>],
    end: End,
    count: usize,
    now: i64,
) -> Result<Option<Popped>, Error> {
    for (i, k) in keys.iter().enumerate() {
        if let Some(v) = mpop_key(db, k, end, count, now)? {
            return Ok(Some((i, v)));
        }
    }
    Ok(None)
}

fn lmpop(c: &mut Ctx, a: &Args) -> CmdResult {
    let p = parse_mpop(a, 1)?;
    match mpop_first(&mut c.db, &p.keys, p.end, p.count, c.now)? {
        Some((i, elems)) => {
            propagate_pop_count(c, p.end, &p.keys[i], elems.len());
            notify_popped(c, p.end, &p.keys[i]);
            reply_key_elements(c.out, &p.keys[i], &elems);
        }
        None => c.out.null_array(),
    }
    Ok(())
}

/// Counts `n` elements popped from `end` of `key` and propagates them as `LPOP key n` (or
/// RPOP): what LMPOP and BLMPOP amount to, the count being what was actually popped.
fn propagate_pop_count(c: &mut Ctx, end: End, key: &[u8], n: usize) {
    c.dirty(n as u64);
    if c.recording() {
        let n = itoa::Buffer::new().format(n).to_owned();
        c.propagate(&[pop_name(end), key, n.as_bytes()]);
    }
}

/// The plain pop from `end`, as blocking and multi-key pops propagate.
fn pop_name(end: End) -> &'static [u8] {
    match end {
        End::Head => b"LPOP",
        End::Tail => b"RPOP",
    }
}

/// `[key, [elements...]]`.
pub(crate) fn reply_key_elements(out: &mut Reply, key: &[u8], elems: &[Vec<u8>]) {
    out.array(2);
    out.bulk(key);
    out.array(elems.len());
    for e in elems {
        out.bulk(e);
    }
}

// ---- blocking pops ----

/// What every blocking list command answers when its time runs out (RESP2 `*-1`, even for
/// BLMOVE and BRPOPLPUSH, as Redis 7.0 does).
fn timeout_null_array(out: &mut Reply) {
    out.null_array()
}

static BLPOP_OP: BlockingOp = BlockingOp {
    serve: serve_blpop,
    serves_all_keys: false,
    timeout_reply: timeout_null_array,
};
static BRPOP_OP: BlockingOp = BlockingOp {
    serve: serve_brpop,
    serves_all_keys: false,
    timeout_reply: timeout_null_array,
};
static BLMPOP_OP: BlockingOp = BlockingOp {
    serve: serve_blmpop,
    serves_all_keys: false,
    timeout_reply: timeout_null_array,
};
static BLMOVE_OP: BlockingOp = BlockingOp {
    serve: serve_blmove,
    serves_all_keys: true,
    timeout_reply: timeout_null_array,
};

/// BLPOP / BRPOP from the key at `pos`: `[key, element]`, or not yet if there is no list.
fn serve_pop_one(c: &mut Ctx, a: &Args, pos: usize, end: End) -> Result<bool, Error> {
    let key = a.get(pos);
    if c.db.write_as::<List>(key, c.now)?.is_none() {
        return Ok(false);
    }
    let out = &mut *c.out;
    out.array(2);
    out.bulk(key);
    pop_values(&mut c.db, key, end, 1, c.now, |e| out.bulk(e));
    // Served at once or when woken, it is the plain pop: `LPOP key` / `RPOP key`.
    c.dirty(1);
    notify_popped(c, end, key);
    c.propagate(&[pop_name(end), key]);
    Ok(true)
}

fn serve_blpop(c: &mut Ctx, a: &Args, pos: usize, _: &mut WaitState) -> Result<bool, Error> {
    serve_pop_one(c, a, pos, End::Head)
}

fn serve_brpop(c: &mut Ctx, a: &Args, pos: usize, _: &mut WaitState) -> Result<bool, Error> {
    serve_pop_one(c, a, pos, End::Tail)
}

async fn bpop_generic(conn: &mut Conn, a: Args<'_>) -> CmdResult {
    // The timeout is checked before any key, as Redis does.
    let timeout = blocking::parse_timeout_secs(a.get(a.len() - 1))?;
    let keys: Vec<usize> = (1..a.len() - 1).collect();
    blocking::run(conn, &a, &keys, timeout).await
}

/// BLPOP and BRPOP (their table entries say which end they serve).
fn bpop<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(bpop_generic(conn, a))
}

/// BLMPOP from the key at `pos`: `[key, [elements...]]`.
fn serve_blmpop(c: &mut Ctx, a: &Args, pos: usize, _: &mut WaitState) -> Result<bool, Error> {
    let p = parse_mpop(a, 2)?;
    let key = a.get(pos);
    let Some(elems) = mpop_key(&mut c.db, key, p.end, p.count, c.now)? else {
        return Ok(false);
    };
    propagate_pop_count(c, p.end, key, elems.len());
    notify_popped(c, p.end, key);
    reply_key_elements(c.out, key, &elems);
    Ok(true)
}

fn blmpop<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        // BLMPOP checks numkeys, direction and COUNT before the timeout.
        let p = parse_mpop(&a, 2)?;
        let timeout = blocking::parse_timeout_secs(a.get(1))?;
        let keys: Vec<usize> = (3..3 + p.keys.len()).collect();
        blocking::run(conn, &a, &keys, timeout).await
    })
}

/// BLMOVE's or BRPOPLPUSH's ends, from the arguments.
fn move_ends(a: &Args) -> Result<(End, End), Error> {
    if a.len() == 6 {
        Ok((parse_end(a.get(3))?, parse_end(a.get(4))?))
    } else {
        Ok((End::Tail, End::Head))
    }
}

/// A BLMOVE / BRPOPLPUSH attempt: LMOVE, with the data of both keys' shards at hand.
fn serve_blmove(c: &mut Ctx, a: &Args, _: usize, state: &mut WaitState) -> Result<bool, Error> {
    let (src, dst) = (a.get(1), a.get(2));
    let (from, to) = move_ends(a)?;
    if c.db.write_as::<List>(src, c.now)?.is_none() {
        return Ok(false);
    }
    let fill = fill_of(c);
    match move_one(&mut c.db, src, dst, from, to, fill, c.now) {
        Ok(Some(v)) => {
            c.dirty(1);
            notify_moved(c, src, dst, from, to);
            propagate_move(c, a, state.first);
            c.out.bulk(&v);
            Ok(true)
        }
        Ok(None) => Ok(false),
        // A destination of another type: the waiter gets the error and the source is left
        // alone, as Redis does.
        Err(e) => {
            c.out.error(&e);
            Ok(true)
        }
    }
}

/// What a served BLMOVE / BRPOPLPUSH propagates: `RPOPLPUSH src dst`, or `LMOVE src dst
/// <from> <to>` with the directions as sent when served at once (Redis renames the command
/// it received) and as lowercase `left`/`right` when served on a wake-up (Redis builds that
/// command afresh).
fn propagate_move(c: &mut Ctx, a: &Args, first: bool) {
    let (src, dst) = (a.get(1), a.get(2));
    if a.len() != 6 {
        c.propagate(&[b"RPOPLPUSH", src, dst]);
    } else if first {
        c.propagate(&[b"LMOVE", src, dst, a.get(3), a.get(4)]);
    } else {
        let word = |w: &[u8]| -> &'static [u8] {
            if w.eq_ignore_ascii_case(b"LEFT") {
                b"left"
            } else {
                b"right"
            }
        };
        c.propagate(&[b"LMOVE", src, dst, word(a.get(3)), word(a.get(4))]);
    }
}

async fn blmove_generic(conn: &mut Conn, a: Args<'_>) -> CmdResult {
    // Ends first, then the timeout, as Redis checks them.
    move_ends(&a)?;
    let timeout = blocking::parse_timeout_secs(a.get(a.len() - 1))?;
    if conn.held.is_some() {
        // Inside EXEC it never blocks, and with no source it answers what LMOVE would (a
        // null bulk), not the timeout's null array, as Redis 7.0's `blmoveGenericCommand`.
        let idx = crate::cmd::table().lookup(a.get(0)).unwrap_or(0);
        let served = with_keys(conn, idx, &a, |c| {
            let mut state = WaitState {
                first: true,
                ..WaitState::default()
            };
            serve_blmove(c, &a, 1, &mut state)
        })
        .await?;
        if !served {
            conn.out.null();
        }
        return Ok(());
    }
    blocking::run(conn, &a, &[1], timeout).await
}

fn blmove<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(blmove_generic(conn, a))
}

fn brpoplpush<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(blmove_generic(conn, a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(clamp_range(3, 1, 5), None);
        assert_eq!(clamp_range(5, 10, 5), None);
        assert_eq!(clamp_range(-2, -1, 5), Some((3, 4)));
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 5), Some((0, 4)));
        assert_eq!(clamp_range(0, -1, 0), None);
        assert_eq!(resolve_index(-1, 3), Some(2));
        assert_eq!(resolve_index(-4, 3), None);
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(i64::MIN, 3), None);
    }

    #[test]
    fn mpop_arguments() {
        let p = with_args(&["lmpop", "2", "a", "b", "right", "count", "3"], |a| {
            parse_mpop(a, 1)
        });
        let p = p.unwrap_or_else(|e| panic!("valid arguments refused: {}", e.render()));
        assert_eq!(p.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!((p.end, p.count), (End::Tail, 3));
        let err = |w: &[&str]| with_args(w, |a| parse_mpop(a, 1).err().map(|e| e.render()));
        assert_eq!(
            err(&["lmpop", "0", "a", "left"]).as_deref(),
            Some("ERR numkeys should be greater than 0")
        );
        assert_eq!(
            err(&["lmpop", "9223372036854775807", "a", "left"]).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            err(&["lmpop", "1", "a", "left", "count", "0"]).as_deref(),
            Some("ERR count should be greater than 0")
        );
        assert_eq!(
            err(&["lmpop", "1", "a", "left", "count", "1", "count", "2"]).as_deref(),
            Some("ERR syntax error")
        );
    }
}
