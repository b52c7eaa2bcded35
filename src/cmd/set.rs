//! Set commands (Redis 7.0's t_set.c): membership, random picks, SMOVE, the set algebra and
//! its STORE forms (across shards too), SINTERCARD and SSCAN.

use crate::acl;
use crate::cmd::hash::arg_count;
use crate::cmd::scan::{empty_scan, parse_cursor, parse_scan_opts};
use crate::cmd::{flag::*, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::slot::key_slot;
use crate::types::set::{self, distinct_positions, Member, Rng, Set, SetLimits};
use crate::types::Value;
use crate::util::num::parse_i64_strict;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("sadd", -3, WRITE | DENYOOM | FAST, sadd)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Add one or more members to a set"),
    CommandSpec::keyed("srem", -3, WRITE | FAST, srem)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Remove one or more members from a set"),
    CommandSpec::keyed("sismember", 3, READONLY | FAST, sismember)
        .access(acl::NONE, acl::NONE)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Determine if a given value is a member of a set",
        ),
    CommandSpec::keyed("smismember", -3, READONLY | FAST, smismember)
        .acl(&["@set"])
        .doc(
            "set",
            "6.2.0",
            "Returns the membership associated with the given elements for a set",
        ),
    CommandSpec::keyed("smembers", 2, READONLY, smembers)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Get all the members in a set"),
    CommandSpec::keyed("scard", 2, READONLY | FAST, scard)
        .access(acl::NONE, acl::NONE)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Get the number of members in a set"),
    CommandSpec::keyed("spop", -2, WRITE | FAST, spop)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Remove and return one or multiple random members from a set",
        ),
    CommandSpec::keyed("srandmember", -2, READONLY, srandmember)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Get one or multiple random members from a set",
        ),
    CommandSpec::keyed("smove", 4, WRITE | FAST, smove)
        .access(acl::READ_WRITE, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Move a member from one set to another"),
    CommandSpec::keyed("sinter", -2, READONLY, sinter)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Intersect multiple sets"),
    CommandSpec::new(
        "sintercard",
        -3,
        READONLY | MOVABLE_KEYS,
        Handler::Keyed(sintercard),
    )
    .key_finder(crate::cmd::keys_at::numkeys_1)
    .acl(&["@set"])
    .doc(
        "set",
        "7.0.0",
        "Intersect multiple sets and return the cardinality of the result",
    ),
    CommandSpec::keyed("sunion", -2, READONLY, sunion)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Add multiple sets"),
    CommandSpec::keyed("sdiff", -2, READONLY, sdiff)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc("set", "1.0.0", "Subtract multiple sets"),
    CommandSpec::keyed("sinterstore", -3, WRITE | DENYOOM, sinterstore)
        .access(acl::WRITE, acl::READ)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Intersect multiple sets and store the resulting set in a key",
        ),
    CommandSpec::keyed("sunionstore", -3, WRITE | DENYOOM, sunionstore)
        .access(acl::WRITE, acl::READ)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Add multiple sets and store the resulting set in a key",
        ),
    CommandSpec::keyed("sdiffstore", -3, WRITE | DENYOOM, sdiffstore)
        .access(acl::WRITE, acl::READ)
        .keys(1, -1, 1)
        .acl(&["@set"])
        .doc(
            "set",
            "1.0.0",
            "Subtract multiple sets and store the resulting set in a key",
        ),
    CommandSpec::keyed("sscan", -3, READONLY, sscan)
        .acl(&["@set"])
        .doc("set", "2.8.0", "Incrementally iterate Set elements"),
];

// ---- lookups and replies ----

fn limits(c: &Ctx) -> SetLimits {
    c.limits().set
}

/// The sets named by `keys` as Redis's set algebra reads them (`lookupKeyRead` each, in
/// order): None for a missing key, WRONGTYPE at the first key of another type.
fn load_sets<'a>(
    db: &'a mut Db<'_>,
    keys: &[&[u8]],
    now: i64,
) -> Result<Vec<Option<&'a Set>>, Error> {
    // First pass: expiry, hit/miss counting and type checks need the keyspace mutably.
    for k in keys {
        db.read_as::<Set>(k, now)?;
    }
    // Second pass: every key left is live and a set; borrow them all at once.
    let db: &'a Db<'_> = db;
    Ok(keys
        .iter()
        .map(|k| {
            let e = db.slot_table(key_slot(k))?.get(k)?;
            match &e.value {
                Value::Set(s) => Some(s),
                _ => None,
            }
        })
        .collect())
}

#[inline]
fn reply_member(out: &mut Reply, m: Member<'_>) {
    match m {
        Member::Int(v) => out.bulk_int(v),
        Member::Bytes(b) => out.bulk(b),
    }
}

/// Stores a computed set under `dst` (replacing any value and TTL), or deletes `dst` if the
/// set is empty, as Redis's *STORE commands do, counting one change when it stored or
/// deleted something. Returns the stored cardinality.
fn store_result(c: &mut Ctx, dst: &[u8], result: Set, event: &'static str) -> i64 {
    if result.is_empty() {
        // Redis's `dbDelete`: no expiry check, so a key whose time has passed but is still
        // stored is removed here and counted (the command, not a DEL, is propagated).
        if c.db.remove(dst).is_some() {
            c.dirty(1);
            c.notify(class::GENERIC, "del", dst);
        }
        return 0;
    }
    let n = result.len() as i64;
    c.db.set(dst, Value::Set(result), NO_EXPIRE, c.now);
    c.dirty(1);
    c.notify(class::SET, event, dst);
    n
}

// ---- SADD / SREM / membership ----

fn sadd(c: &mut Ctx, a: &Args) -> CmdResult {
    let lim = limits(c);
    let key = a.get(1);
    let added = match c.db.write_as::<Set>(key, c.now)? {
        Some(s) => a.rest(2).filter(|m| s.add(m, lim)).count(),
        None => {
            let mut s = Set::new();
            let n = a.rest(2).filter(|m| s.add(m, lim)).count();
            c.db.set(key, Value::Set(s), NO_EXPIRE, c.now);
            n
        }
    };
    c.dirty(added as u64);
    if added > 0 {
        c.notify(class::SET, "sadd", key);
    }
    c.out.int(added as i64);
    Ok(())
}

fn srem(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let Some(s) = c.db.write_as::<Set>(key, c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let mut removed = 0;
    for m in a.rest(2) {
        if s.remove(m) {
            removed += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    let emptied = s.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(removed as u64);
    if removed > 0 {
        c.notify(class::SET, "srem", key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.int(removed);
    Ok(())
}

fn sismember(c: &mut Ctx, a: &Args) -> CmdResult {
    let found =
        c.db.read_as::<Set>(a.get(1), c.now)?
            .is_some_and(|s| s.contains(a.get(2)));
    c.out.int(found as i64);
    Ok(())
}

fn smismember(c: &mut Ctx, a: &Args) -> CmdResult {
    let s = c.db.read_as::<Set>(a.get(1), c.now)?;
    c.out.array(a.len() - 2);
    for m in a.rest(2) {
        c.out.int(s.is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

fn scard(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = c.db.read_as::<Set>(a.get(1), c.now)?.map_or(0, Set::len);
    c.out.int(n as i64);
    Ok(())
}

fn smembers(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(s) = c.db.read_as::<Set>(a.get(1), c.now)? else {
        c.out.set(0);
        return Ok(());
    };
    c.out.set(s.len());
    for m in s.iter() {
        reply_member(c.out, m);
    }
    Ok(())
}

// ---- SPOP / SRANDMEMBER ----

/// Redis pops by "create a new set" once what remains is this small next to what is popped.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

fn spop(c: &mut Ctx, a: &Args) -> CmdResult {
    match a.len() {
        3 => return spop_count(c, a),
        n if n > 3 => return Err(Error::Syntax),
        _ => {}
    }
    let key = a.get(1);
    let r = c.db.random_u64();
    let recording = c.recording();
    // Empty sets are never stored; the filter only keeps a random pick in bounds.
    let Some(s) = c.db.write_as::<Set>(key, c.now)?.filter(|s| !s.is_empty()) else {
        c.out.null();
        return Ok(());
    };
    let out = &mut *c.out;
    let mut popped = Vec::new();
    s.pop_at(set::below(r, s.len()), |m| {
        reply_member(out, m);
        if recording {
            popped = m.to_vec();
        }
    });
    let emptied = s.is_empty();
    if emptied {
        c.db.remove(key);
    }
    // Redis rewrites the command as `SREM key member`.
    c.dirty(1);
    c.notify(class::SET, "spop", key);
    if emptied {
        c.notify(class::GENERIC, "del", key);
    }
    c.propagate(&[b"SREM", key, &popped]);
    Ok(())
}

/// Propagates what SPOP with a count removed: one `SREM key member` per member, in the
/// order they were popped (several ops are wrapped in MULTI/EXEC), as Redis 7.0 does.
fn propagate_srems(c: &mut Ctx, key: &[u8], popped: &[Vec<u8>]) {
    c.propagate_nothing();
    for m in popped {
        c.propagate(&[b"SREM", key, m]);
    }
}

fn spop_count(c: &mut Ctx, a: &Args) -> CmdResult {
    let positive = || Error::msg("value is out of range, must be positive");
    let count = parse_i64_strict(a.get(2)).ok_or_else(positive)?;
    let count = usize::try_from(count).map_err(|_| positive())?;
    let key = a.get(1);
    let lim = limits(c);
    let recording = c.recording();
    let mut rng = Rng::new(c.db.random_u64());
    let Some(s) = c.db.write_as::<Set>(key, c.now)? else {
        c.out.set(0);
        return Ok(());
    };
    if count == 0 {
        c.out.set(0);
        return Ok(());
    }
    let size = s.len();
    if count >= size {
        c.out.set(size);
        for m in s.iter() {
            reply_member(c.out, m);
        }
        c.db.remove(key);
        // The whole set goes: Redis propagates `DEL key` (never UNLINK).
        c.dirty(size as u64);
        c.notify(class::SET, "spop", key);
        c.notify(class::GENERIC, "del", key);
        c.propagate(&[b"DEL", key]);
        return Ok(());
    }
    c.out.set(count);
    let mut popped: Vec<Vec<u8>> = Vec::with_capacity(if recording { count } else { 0 });
    let remaining = size - count;
    if remaining * SPOP_MOVE_STRATEGY_MUL > count {
        for _ in 0..count {
            let out = &mut *c.out;
            s.pop_at(rng.below(s.len()), |m| {
                reply_member(out, m);
                if recording {
                    popped.push(m.to_vec());
                }
            });
        }
    } else {
        // Popping most of the set: pick what stays, build it anew (from an empty intset, as
        // Redis does), and reply with everything else.
        let keep = distinct_positions(size, remaining, &mut || rng.next());
        let mut kept = vec![false; size];
        let rest = {
            let pos = s.positions();
            let mut rest = Set::new();
            for &p in &keep {
                kept[p] = true;
                rest.add_member(pos.get(p), lim);
            }
            rest
        };
        for (i, m) in s.iter().enumerate() {
            if !kept[i] {
                reply_member(c.out, m);
                if recording {
                    popped.push(m.to_vec());
                }
            }
        }
        *s = rest;
    }
    c.dirty(count as u64);
    c.notify(class::SET, "spop", key);
    propagate_srems(c, key, &popped);
    Ok(())
}

fn srandmember(c: &mut Ctx, a: &Args) -> CmdResult {
    match a.len() {
        3 => return srandmember_count(c, a),
        n if n > 3 => return Err(Error::Syntax),
        _ => {}
    }
    let r = c.db.random_u64();
    match c
        .db
        .read_as::<Set>(a.get(1), c.now)?
        .filter(|s| !s.is_empty())
    {
        Some(s) => reply_member(c.out, s.positions().get(set::below(r, s.len()))),
        None => c.out.null(),
    }
    Ok(())
}

fn srandmember_count(c: &mut Ctx, a: &Args) -> CmdResult {
    let l = arg_count(a.get(2))?;
    let mut rng = Rng::new(c.db.random_u64());
    let Some(s) =
        c.db.read_as::<Set>(a.get(1), c.now)?
            .filter(|s| !s.is_empty())
    else {
        c.out.array(0);
        return Ok(());
    };
    let (size, count) = (s.len(), l.unsigned_abs() as usize);
    if count == 0 {
        c.out.array(0);
        return Ok(());
    }
    if l < 0 || count == 1 {
        let pos = s.positions();
        c.out.array(count);
        for _ in 0..count {
            reply_member(c.out, pos.get(rng.below(size)));
        }
        return Ok(());
    }
    if count >= size {
        c.out.array(size);
        for m in s.iter() {
            reply_member(c.out, m);
        }
        return Ok(());
    }
    let pos = s.positions();
    c.out.array(count);
    for p in distinct_positions(size, count, &mut || rng.next()) {
        reply_member(c.out, pos.get(p));
    }
    Ok(())
}

// ---- SMOVE ----

/// What a key holds, for SMOVE's checks.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Missing,
    Set,
    Other,
}

/// Both are Redis's `lookupKeyWrite`; `signalled`: the key is signalled to WATCH if the
/// command changes anything. Otherwise only its access time is updated (SMOVE signals the
/// destination only if it gains the member: `put_member` looks it up for writing then).
fn kind_of(db: &mut Db, key: &[u8], now: i64, signalled: bool) -> Kind {
    let entry = if signalled {
        db.get(key, now)
    } else {
        let mut e = db.peek(key, now);
        if let Some(e) = e.as_mut() {
            e.lru = crate::db::evict::touched(e.lru, now);
        }
        e
    };
    match entry {
        None => Kind::Missing,
        Some(e) if matches!(e.value, Value::Set(_)) => Kind::Set,
        Some(_) => Kind::Other,
    }
}

/// Removes `m` from the set at `key` (deleting the key if emptied); whether it was there.
fn take_member(db: &mut Db, key: &[u8], m: &[u8], now: i64) -> bool {
    let Ok(Some(s)) = db.write_as::<Set>(key, now) else {
        return false;
    };
    let removed = s.remove(m);
    if s.is_empty() {
        db.remove(key);
    }
    removed
}

/// Adds `m` to the set at `key`, creating it if absent (the caller checked the type);
/// whether it was added. A set that already holds `m` is not looked up for writing, so it is
/// not signalled as modified (Redis signals the destination only when it adds).
fn put_member(db: &mut Db, key: &[u8], m: &[u8], lim: SetLimits, now: i64) -> bool {
    let present = match db.peek(key, now) {
        Some(e) => matches!(&e.value, Value::Set(s) if s.contains(m)),
        None => false,
    };
    if present {
        return false;
    }
    match db.write_as::<Set>(key, now) {
        Ok(Some(s)) => s.add(m, lim),
        Ok(None) => {
            let mut s = Set::new();
            s.add(m, lim);
            db.set(key, Value::Set(s), NO_EXPIRE, now);
            true
        }
        Err(_) => false,
    }
}

fn smove(c: &mut Ctx, a: &Args) -> CmdResult {
    let (src, dst, m) = (a.get(1), a.get(2), a.get(3));
    // Redis looks both keys up before checking either.
    let src_kind = kind_of(&mut c.db, src, c.now, true);
    let dst_kind = kind_of(&mut c.db, dst, c.now, false);
    if src_kind == Kind::Missing {
        c.out.int(0);
        return Ok(());
    }
    if src_kind == Kind::Other || dst_kind == Kind::Other {
        return Err(Error::WrongType);
    }
    if src == dst {
        let found =
            c.db.write_as::<Set>(src, c.now)?
                .is_some_and(|s| s.contains(m));
        c.out.int(found as i64);
        return Ok(());
    }
    if !take_member(&mut c.db, src, m, c.now) {
        c.out.int(0);
        return Ok(());
    }
    // One change for the source, one more if the destination gained the member.
    c.dirty(1);
    c.notify(class::SET, "srem", src);
    if c.notifies(class::GENERIC) && c.db.peek(src, c.now).is_none() {
        c.notify(class::GENERIC, "del", src);
    }
    let lim = limits(c);
    if put_member(&mut c.db, dst, m, lim, c.now) {
        c.dirty(1);
        c.notify(class::SET, "sadd", dst);
    }
    c.out.int(1);
    Ok(())
}

// ---- SINTER / SUNION / SDIFF and their STORE forms ----

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// A computed result: SINTER streams members of its smallest input; the others build a set.
enum Computed<'a> {
    Members(Vec<Member<'a>>),
    Set(Set),
}

fn compute<'a>(op: Op, sets: &[Option<&'a Set>], lim: SetLimits) -> Computed<'a> {
    match op {
        Op::Inter => Computed::Members(set::inter(sets, 0)),
        Op::Union => Computed::Set(set::union(sets, lim)),
        Op::Diff => Computed::Set(set::diff(sets, lim)),
    }
}

fn reply_computed(out: &mut Reply, r: &Computed<'_>) {
    match r {
        Computed::Members(ms) => {
            out.set(ms.len());
            for &m in ms {
                reply_member(out, m);
            }
        }
        Computed::Set(s) => {
            out.set(s.len());
            for m in s.iter() {
                reply_member(out, m);
            }
        }
    }
}

fn into_set(r: Computed<'_>, lim: SetLimits) -> Set {
    match r {
        Computed::Members(ms) => set::collect(&ms, lim),
        Computed::Set(s) => s,
    }
}

/// The algebra on one shard. `store`: argument 1 is the destination.
fn algebra(c: &mut Ctx, a: &Args, op: Op, store: bool) -> CmdResult {
    let keys: Vec<&[u8]> = a.rest(if store { 2 } else { 1 }).collect();
    let lim = limits(c);
    let sets = load_sets(&mut c.db, &keys, c.now)?;
    let r = compute(op, &sets, lim);
    if !store {
        reply_computed(c.out, &r);
        return Ok(());
    }
    let result = into_set(r, lim);
    let event = match op {
        Op::Inter => "sinterstore",
        Op::Union => "sunionstore",
        Op::Diff => "sdiffstore",
    };
    let n = store_result(c, a.get(1), result, event);
    c.out.int(n);
    Ok(())
}

fn sinter(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Inter, false)
}

fn sunion(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Union, false)
}

fn sdiff(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Diff, false)
}

fn sinterstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Inter, true)
}

fn sunionstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Union, true)
}

fn sdiffstore(c: &mut Ctx, a: &Args) -> CmdResult {
    algebra(c, a, Op::Diff, true)
}

// ---- SINTERCARD ----

/// SINTERCARD's keys and LIMIT (0 = none), validated as Redis 7.0 does.
fn parse_sintercard(a: &Args) -> Result<(Vec<Vec<u8>>, usize), Error> {
    let numkeys = parse_i64_strict(a.get(1))
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::msg("numkeys should be greater than 0"))?;
    if numkeys > a.len() as i64 - 2 {
        return Err(Error::msg(
            "Number of keys can't be greater than number of args",
        ));
    }
    let numkeys = numkeys as usize;
    let mut limit = 0;
    let mut j = 2 + numkeys;
    while j < a.len() {
        if a.is(j, "LIMIT") && j + 1 < a.len() {
            j += 1;
            let l = parse_i64_strict(a.get(j))
                .filter(|&l| l >= 0)
                .ok_or_else(|| Error::msg("LIMIT can't be negative"))?;
            limit = usize::try_from(l).unwrap_or(usize::MAX);
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let keys = (2..2 + numkeys).map(|i| a.get(i).to_vec()).collect();
    Ok((keys, limit))
}

fn sintercard(c: &mut Ctx, a: &Args) -> CmdResult {
    let (keys, limit) = parse_sintercard(a)?;
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let sets = load_sets(&mut c.db, &refs, c.now)?;
    c.out.int(set::inter(&sets, limit).len() as i64);
    Ok(())
}

// ---- SSCAN ----

fn sscan(c: &mut Ctx, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    let Some(s) = c.db.read_as::<Set>(a.get(1), c.now)? else {
        empty_scan(c.out);
        return Ok(());
    };
    let opts = parse_scan_opts(a, 3, false)?;
    let (members, next) = s.scan(cursor, opts.count);
    let kept: Vec<Member> = members
        .into_iter()
        .filter(|m| m.with_bytes(|b| opts.keeps(b)))
        .collect();
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    c.out.array(kept.len());
    for m in kept {
        reply_member(c.out, m);
    }
    Ok(())
}
