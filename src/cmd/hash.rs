//! Hash commands (Redis 7.0's t_hash.c): HSET and friends, counters, HRANDFIELD and HSCAN.

use crate::acl;
use crate::cmd::scan::{empty_scan, parse_cursor, parse_scan_opts};
use crate::cmd::{flag::*, CommandSpec, Ctx};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::types::hash::{Hash, HashLimits};
use crate::types::set::{below, distinct_positions, Rng};
use crate::types::Value;
use crate::util::num::{arg_i64, incr_by_float, parse_i64_strict};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("hset", -4, WRITE | DENYOOM | FAST, hset)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Set the string value of a hash field"),
    CommandSpec::keyed("hsetnx", 4, WRITE | DENYOOM | FAST, hsetnx)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.0.0",
            "Set the value of a hash field, only if the field does not exist",
        ),
    CommandSpec::keyed("hget", 3, READONLY | FAST, hget)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Get the value of a hash field"),
    CommandSpec::keyed("hmget", -3, READONLY | FAST, hmget)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.0.0",
            "Get the values of all the given hash fields",
        ),
    CommandSpec::keyed("hmset", -4, WRITE | DENYOOM | FAST, hmset)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.0.0",
            "Set multiple hash fields to multiple values",
        ),
    CommandSpec::keyed("hdel", -3, WRITE | FAST, hdel)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Delete one or more hash fields"),
    CommandSpec::keyed("hlen", 2, READONLY | FAST, hlen)
        .access(acl::NONE, acl::NONE)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Get the number of fields in a hash"),
    CommandSpec::keyed("hstrlen", 3, READONLY | FAST, hstrlen)
        .access(acl::NONE, acl::NONE)
        .acl(&["@hash"])
        .doc(
            "hash",
            "3.2.0",
            "Get the length of the value of a hash field",
        ),
    CommandSpec::keyed("hexists", 3, READONLY | FAST, hexists)
        .access(acl::NONE, acl::NONE)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Determine if a hash field exists"),
    CommandSpec::keyed("hkeys", 2, READONLY, hkeys)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Get all the fields in a hash"),
    CommandSpec::keyed("hvals", 2, READONLY, hvals)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Get all the values in a hash"),
    CommandSpec::keyed("hgetall", 2, READONLY, hgetall)
        .acl(&["@hash"])
        .doc("hash", "2.0.0", "Get all the fields and values in a hash"),
    CommandSpec::keyed("hincrby", 4, WRITE | DENYOOM | FAST, hincrby)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.0.0",
            "Increment the integer value of a hash field by the given number",
        ),
    CommandSpec::keyed("hincrbyfloat", 4, WRITE | DENYOOM | FAST, hincrbyfloat)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.6.0",
            "Increment the float value of a hash field by the given amount",
        ),
    CommandSpec::keyed("hrandfield", -2, READONLY, hrandfield)
        .acl(&["@hash"])
        .doc(
            "hash",
            "6.2.0",
            "Get one or multiple random fields from a hash",
        ),
    CommandSpec::keyed("hscan", -3, READONLY, hscan)
        .acl(&["@hash"])
        .doc(
            "hash",
            "2.8.0",
            "Incrementally iterate hash fields and associated values",
        ),
];

// ---- lookups ----

fn limits(c: &Ctx) -> HashLimits {
    c.limits().hash
}

/// Runs `f` on the hash at `key`, creating an empty one if absent (stored only if `f` leaves
/// it non-empty) and deleting the key if `f` empties it.
fn write_hash<R>(
    db: &mut Db,
    key: &[u8],
    now: i64,
    f: impl FnOnce(&mut Hash) -> Result<R, Error>,
) -> Result<R, Error> {
    let (result, emptied) = match db.get(key, now) {
        Some(e) => {
            let Value::Hash(h) = &mut e.value else {
                return Err(Error::WrongType);
            };
            let r = f(h);
            (r, h.is_empty())
        }
        None => {
            let mut h = Hash::new();
            let r = f(&mut h);
            if !h.is_empty() {
                db.set(key, Value::Hash(h), NO_EXPIRE, now);
            }
            return r;
        }
    };
    if emptied {
        db.remove(key);
    }
    result
}

// ---- HSET / HSETNX / HMSET ----

fn set_pairs(c: &mut Ctx, a: &Args, name: &'static str) -> Result<i64, Error> {
    if a.len() % 2 == 1 {
        return Err(Error::WrongArity(name.into()));
    }
    let lim = limits(c);
    write_hash(&mut c.db, a.get(1), c.now, |h| {
        h.convert_for(a.rest(2).map(<[u8]>::len), lim);
        let mut created = 0;
        for i in (2..a.len()).step_by(2) {
            created += h.set(a.get(i), a.get(i + 1), lim) as i64;
        }
        Ok(created)
    })
}

/// HSET and HMSET count every pair as a change, even one that rewrote the same value, so
/// both always propagate.
fn hset(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = set_pairs(c, a, "hset")?;
    c.dirty(a.len() as u64 / 2 - 1);
    c.notify(class::HASH, "hset", a.get(1));
    c.out.int(n);
    Ok(())
}

fn hmset(c: &mut Ctx, a: &Args) -> CmdResult {
    set_pairs(c, a, "hmset")?;
    c.dirty(a.len() as u64 / 2 - 1);
    c.notify(class::HASH, "hset", a.get(1));
    c.out.ok();
    Ok(())
}

fn hsetnx(c: &mut Ctx, a: &Args) -> CmdResult {
    let lim = limits(c);
    let (f, v) = (a.get(2), a.get(3));
    let set = write_hash(&mut c.db, a.get(1), c.now, |h| {
        if h.contains(f) {
            return Ok(false);
        }
        h.convert_for([f.len(), v.len()].into_iter(), lim);
        h.set(f, v, lim);
        Ok(true)
    })?;
    c.dirty(set as u64);
    if set {
        c.notify(class::HASH, "hset", a.get(1));
    }
    c.out.int(set as i64);
    Ok(())
}

// ---- reads ----

fn hget(c: &mut Ctx, a: &Args) -> CmdResult {
    match c
        .db
        .read_as::<Hash>(a.get(1), c.now)?
        .and_then(|h| h.get(a.get(2)))
    {
        Some(v) => c.out.bulk(v),
        None => c.out.null(),
    }
    Ok(())
}

fn hmget(c: &mut Ctx, a: &Args) -> CmdResult {
    let h = c.db.read_as::<Hash>(a.get(1), c.now)?;
    c.out.array(a.len() - 2);
    for f in a.rest(2) {
        match h.and_then(|h| h.get(f)) {
            Some(v) => c.out.bulk(v),
            None => c.out.null(),
        }
    }
    Ok(())
}

fn hlen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = c.db.read_as::<Hash>(a.get(1), c.now)?.map_or(0, Hash::len);
    c.out.int(n as i64);
    Ok(())
}

fn hstrlen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n =
        c.db.read_as::<Hash>(a.get(1), c.now)?
            .and_then(|h| h.get(a.get(2)))
            .map_or(0, <[u8]>::len);
    c.out.int(n as i64);
    Ok(())
}

fn hexists(c: &mut Ctx, a: &Args) -> CmdResult {
    let found =
        c.db.read_as::<Hash>(a.get(1), c.now)?
            .is_some_and(|h| h.contains(a.get(2)));
    c.out.int(found as i64);
    Ok(())
}

fn hkeys(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(h) = c.db.read_as::<Hash>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    c.out.array(h.len());
    for (f, _) in h.iter() {
        c.out.bulk(f);
    }
    Ok(())
}

fn hvals(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(h) = c.db.read_as::<Hash>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    c.out.array(h.len());
    for (_, v) in h.iter() {
        c.out.bulk(v);
    }
    Ok(())
}

fn hgetall(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(h) = c.db.read_as::<Hash>(a.get(1), c.now)? else {
        c.out.map(0);
        return Ok(());
    };
    c.out.map(h.len());
    for (f, v) in h.iter() {
        c.out.bulk(f);
        c.out.bulk(v);
    }
    Ok(())
}

// ---- writes ----

fn hdel(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let Some(e) = c.db.get(key, c.now) else {
        c.out.int(0);
        return Ok(());
    };
    let Value::Hash(h) = &mut e.value else {
        return Err(Error::WrongType);
    };
    let mut deleted = 0;
    for f in a.rest(2) {
        if h.remove(f) {
            deleted += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let emptied = h.is_empty();
    if emptied {
        c.db.remove(key);
    }
    c.dirty(deleted as u64);
    if deleted > 0 {
        c.notify(class::HASH, "hdel", key);
        if emptied {
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.out.int(deleted);
    Ok(())
}

fn hincrby(c: &mut Ctx, a: &Args) -> CmdResult {
    let incr = arg_i64(a.get(3))?;
    let lim = limits(c);
    let f = a.get(2);
    let v = write_hash(&mut c.db, a.get(1), c.now, |h| {
        let cur = match h.get(f) {
            Some(v) => {
                parse_i64_strict(v).ok_or_else(|| Error::msg("hash value is not an integer"))?
            }
            None => 0,
        };
        let v = cur.checked_add(incr).ok_or(Error::Overflow)?;
        h.set(f, itoa::Buffer::new().format(v).as_bytes(), lim);
        Ok(v)
    })?;
    c.dirty(1);
    c.notify(class::HASH, "hincrby", a.get(1));
    c.out.int(v);
    Ok(())
}

fn hincrbyfloat(c: &mut Ctx, a: &Args) -> CmdResult {
    let incr = a.get(3);
    // The increment is checked before the key is looked up, as Redis does.
    match incr_by_float(None, incr) {
        Err(Error::IncrNanOrInf) => return Err(Error::msg("value is NaN or Infinity")),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let lim = limits(c);
    let f = a.get(2);
    let text = write_hash(&mut c.db, a.get(1), c.now, |h| {
        let text = match incr_by_float(h.get(f), incr) {
            Err(Error::NotFloat) => return Err(Error::msg("hash value is not a float")),
            other => other?,
        };
        h.set(f, &text, lim);
        Ok(text)
    })?;
    c.dirty(1);
    c.notify(class::HASH, "hincrbyfloat", a.get(1));
    // Redis always propagates the result, `HSET key field <value>`, so that float precision
    // and formatting cannot make replicas or a reloaded AOF differ.
    c.propagate(&[b"HSET", a.get(1), f, &text]);
    c.out.bulk(&text);
    Ok(())
}

// ---- HRANDFIELD ----

/// HRANDFIELD's count: Redis reads it as a long in [-LONG_MAX, LONG_MAX].
pub(crate) fn arg_count(arg: &[u8]) -> Result<i64, Error> {
    let l = arg_i64(arg)?;
    if l == i64::MIN {
        return Err(Error::OutOfRange {
            min: -i64::MAX,
            max: i64::MAX,
        });
    }
    Ok(l)
}

fn hrandfield(c: &mut Ctx, a: &Args) -> CmdResult {
    if a.len() == 2 {
        return hrandfield_one(c, a);
    }
    let l = arg_count(a.get(2))?;
    if a.len() > 4 || (a.len() == 4 && !a.is(3, "WITHVALUES")) {
        return Err(Error::Syntax);
    }
    let withvalues = a.len() == 4;
    if withvalues && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(Error::msg("value is out of range"));
    }
    // `h` borrows the keyspace, so the draws come from a generator seeded from its own.
    let mut rng = Rng::new(c.db.random_u64());
    // Empty hashes are never stored; the filter only keeps random picks in bounds.
    let Some(h) =
        c.db.read_as::<Hash>(a.get(1), c.now)?
            .filter(|h| !h.is_empty())
    else {
        c.out.array(0);
        return Ok(());
    };
    let mut next = || rng.next();
    let picks = hrandfield_picks(h, l, &mut next);
    reply_pairs(c.out, h, &picks, withvalues, &mut next);
    Ok(())
}

fn hrandfield_one(c: &mut Ctx, a: &Args) -> CmdResult {
    let r = c.db.random_u64();
    match c.db.read_as::<Hash>(a.get(1), c.now)? {
        Some(h) => match h.nth(below(r, h.len())) {
            Some((f, _)) => c.out.bulk(f),
            None => c.out.null(),
        },
        None => c.out.null(),
    }
    Ok(())
}

/// Which pairs HRANDFIELD returns: positions, in reply order (None = every pair in order).
enum Picks {
    All,
    Some(Vec<usize>),
    /// `n` independent draws (repeats allowed), made while replying so that a huge negative
    /// count costs output as it is written, not a pick list allocated up front.
    Draws(usize),
}

fn hrandfield_picks(h: &Hash, l: i64, next: &mut impl FnMut() -> u64) -> Picks {
    let size = h.len();
    let count = l.unsigned_abs() as usize;
    if count == 0 {
        return Picks::Some(Vec::new());
    }
    if l < 0 || count == 1 {
        // Repeats allowed (or a single pick): `count` independent draws.
        return Picks::Draws(count);
    }
    if count >= size {
        return Picks::All;
    }
    Picks::Some(distinct_positions(size, count, next))
}

fn reply_pairs(
    out: &mut Reply,
    h: &Hash,
    picks: &Picks,
    withvalues: bool,
    next: &mut impl FnMut() -> u64,
) {
    let n = match picks {
        Picks::All => h.len(),
        Picks::Some(p) => p.len(),
        Picks::Draws(n) => *n,
    };
    out.array(if withvalues && !out.resp3 { n * 2 } else { n });
    let one = |out: &mut Reply, f: &[u8], v: &[u8]| {
        if withvalues && out.resp3 {
            out.array(2);
        }
        out.bulk(f);
        if withvalues {
            out.bulk(v);
        }
    };
    match picks {
        Picks::All => h.iter().for_each(|(f, v)| one(out, f, v)),
        Picks::Some(p) => {
            let pos = h.positions();
            for &i in p {
                let (f, v) = pos.get(i);
                one(out, f, v);
            }
        }
        Picks::Draws(n) => {
            let pos = h.positions();
            for _ in 0..*n {
                let (f, v) = pos.get(below(next(), h.len()));
                one(out, f, v);
            }
        }
    }
}

// ---- HSCAN ----

fn hscan(c: &mut Ctx, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(2))?;
    let Some(h) = c.db.read_as::<Hash>(a.get(1), c.now)? else {
        empty_scan(c.out);
        return Ok(());
    };
    let opts = parse_scan_opts(a, 3, false)?;
    let (pairs, next) = h.scan(cursor, opts.count);
    let kept = pairs.iter().filter(|(f, _)| opts.keeps(f)).count();
    c.out.array(2);
    c.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    c.out.array(kept * 2);
    for (f, v) in pairs.iter().filter(|(f, _)| opts.keeps(f)) {
        c.out.bulk(f);
        c.out.bulk(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_range_matches_redis() {
        assert_eq!(arg_count(b"-9223372036854775807"), Ok(-i64::MAX));
        assert_eq!(
            arg_count(b"-9223372036854775808").map_err(|e| e.render()),
            Err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into())
        );
        assert_eq!(arg_count(b"x"), Err(Error::NotInteger));
    }

    #[test]
    fn picks_follow_redis_cases() {
        let lim = HashLimits {
            max_entries: 128,
            max_value: 64,
        };
        let mut h = Hash::new();
        for i in 0..10 {
            h.set(format!("f{i}").as_bytes(), b"v", lim);
        }
        let mut x = 1u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            x
        };
        assert!(matches!(hrandfield_picks(&h, 10, &mut next), Picks::All));
        assert!(matches!(hrandfield_picks(&h, 20, &mut next), Picks::All));
        assert!(matches!(
            hrandfield_picks(&h, -25, &mut next),
            Picks::Draws(25)
        ));
        let Picks::Some(p) = hrandfield_picks(&h, 7, &mut next) else {
            panic!("count below size picks")
        };
        let uniq: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!(uniq.len(), 7);
    }
}
