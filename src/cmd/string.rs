//! String commands (Redis's t_string.c): GET/SET and friends, counters, ranges and bit operations.

use crate::acl;
use crate::cmd::{flag::*, CommandSpec, Ctx};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::types::{StrValue, Value};
use crate::util::num::{arg_i64, incr_by_float};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("get", 2, READONLY | FAST, get)
        .acl(&["@string"])
        .doc("string", "1.0.0", "Get the value of a key"),
    CommandSpec::keyed("set", -3, WRITE | DENYOOM, set)
        .acl(&["@string"])
        .doc("string", "1.0.0", "Set the string value of a key"),
    CommandSpec::keyed("setnx", 3, WRITE | DENYOOM | FAST, setnx)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Set the value of a key, only if the key does not exist",
        ),
    CommandSpec::keyed("setex", 4, WRITE | DENYOOM, setex)
        .acl(&["@string"])
        .doc("string", "2.0.0", "Set the value and expiration of a key"),
    CommandSpec::keyed("psetex", 4, WRITE | DENYOOM, psetex)
        .acl(&["@string"])
        .doc(
            "string",
            "2.6.0",
            "Set the value and expiration in milliseconds of a key",
        ),
    CommandSpec::keyed("getset", 3, WRITE | DENYOOM | FAST, getset)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Set the string value of a key and return its old value",
        ),
    CommandSpec::keyed("getdel", 2, WRITE | FAST, getdel)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "6.2.0",
            "Get the value of a key and delete the key",
        ),
    CommandSpec::keyed("getex", -2, WRITE | FAST, getex)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "6.2.0",
            "Get the value of a key and optionally set its expiration",
        ),
    CommandSpec::keyed("mget", -2, READONLY | FAST, mget)
        .keys(1, -1, 1)
        .acl(&["@string"])
        .doc("string", "1.0.0", "Get the values of all the given keys"),
    CommandSpec::keyed("mset", -3, WRITE | DENYOOM, mset)
        .keys(1, -1, 2)
        .acl(&["@string"])
        .doc("string", "1.0.1", "Set multiple keys to multiple values"),
    CommandSpec::keyed("msetnx", -3, WRITE | DENYOOM, msetnx)
        .keys(1, -1, 2)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.1",
            "Set multiple keys to multiple values, only if none of the keys exist",
        ),
    CommandSpec::keyed("append", 3, WRITE | DENYOOM | FAST, append)
        .acl(&["@string"])
        .doc("string", "2.0.0", "Append a value to a key"),
    CommandSpec::keyed("strlen", 2, READONLY | FAST, strlen)
        .access(acl::NONE, acl::NONE)
        .acl(&["@string"])
        .doc(
            "string",
            "2.2.0",
            "Get the length of the value stored in a key",
        ),
    CommandSpec::keyed("incr", 2, WRITE | DENYOOM | FAST, incr)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Increment the integer value of a key by one",
        ),
    CommandSpec::keyed("decr", 2, WRITE | DENYOOM | FAST, decr)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Decrement the integer value of a key by one",
        ),
    CommandSpec::keyed("incrby", 3, WRITE | DENYOOM | FAST, incrby)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Increment the integer value of a key by the given amount",
        ),
    CommandSpec::keyed("decrby", 3, WRITE | DENYOOM | FAST, decrby)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Decrement the integer value of a key by the given number",
        ),
    CommandSpec::keyed("incrbyfloat", 3, WRITE | DENYOOM | FAST, incrbyfloat)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@string"])
        .doc(
            "string",
            "2.6.0",
            "Increment the float value of a key by the given amount",
        ),
    CommandSpec::keyed("getrange", 4, READONLY, getrange)
        .acl(&["@string"])
        .doc(
            "string",
            "2.4.0",
            "Get a substring of the string stored at a key",
        ),
    CommandSpec::keyed("substr", 4, READONLY, getrange)
        .acl(&["@string"])
        .doc(
            "string",
            "1.0.0",
            "Get a substring of the string stored at a key",
        ),
    CommandSpec::keyed("lcs", -3, READONLY, lcs)
        .keys(1, 2, 1)
        .acl(&["@string"])
        .doc("string", "7.0.0", "Find longest common substring"),
    CommandSpec::keyed("setrange", 4, WRITE | DENYOOM, setrange)
        .acl(&["@string"])
        .doc(
            "string",
            "2.2.0",
            "Overwrite part of a string at key starting at the specified offset",
        ),
];

fn get(c: &mut Ctx, a: &Args) -> CmdResult {
    match c.db.read_as::<StrValue>(a.get(1), c.now)? {
        Some(StrValue::Int(v)) => c.out.bulk_int(*v),
        Some(s) => s.with_bytes(|b| c.out.bulk(b)),
        None => c.out.null(),
    }
    Ok(())
}

/// When a key should expire, from SET/GETEX-style options.
#[derive(Clone, Copy, PartialEq)]
pub enum Expiry {
    Keep,
    Clear,
    At(i64),
}

/// Converts an expire argument to absolute ms; `unit_ms` is 1000 for seconds. `absolute`
/// for EXAT/PXAT. Errors with `invalid expire time in '<cmd>' command`, as Redis's
/// `getExpireMillisecondsOrReply` does (non-positive, or overflowing once converted).
pub fn expire_at(
    arg: &[u8],
    unit_ms: i64,
    absolute: bool,
    now: i64,
    cmd: &'static str,
) -> Result<i64, Error> {
    let v = arg_i64(arg)?;
    if v <= 0 {
        return Err(Error::ExpireTime(cmd));
    }
    let ms = v.checked_mul(unit_ms).ok_or(Error::ExpireTime(cmd))?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(now).ok_or(Error::ExpireTime(cmd))
    }
}

/// The TTL option of SET/GETEX: unit in ms and whether the time is absolute.
#[derive(Clone, Copy, PartialEq)]
struct TtlKind {
    unit_ms: i64,
    absolute: bool,
}

/// The options of SET (NX, XX, GET, KEEPTTL, EX/PX/EXAT/PXAT) or GETEX (PERSIST and the
/// timed ones), as Redis's `parseExtendedStringArgumentsOrReply` accepts them: repeating an
/// option is allowed, conflicting ones are a syntax error, and only the last expire value
/// is kept (it is parsed later, by the caller).
#[derive(Default)]
struct StrOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    ttl: Option<(TtlKind, &'a [u8])>,
}

impl<'a> StrOpts<'a> {
    fn parse(a: &Args<'a>, from: usize, for_set: bool) -> Result<StrOpts<'a>, Error> {
        let mut o = StrOpts::default();
        let mut i = from;
        while i < a.len() {
            let opt = a.get(i);
            let has_next = i + 1 < a.len();
            let timed = |word: &str| opt.eq_ignore_ascii_case(word.as_bytes());
            let kind = if timed("EX") {
                Some(TtlKind {
                    unit_ms: 1000,
                    absolute: false,
                })
            } else if timed("PX") {
                Some(TtlKind {
                    unit_ms: 1,
                    absolute: false,
                })
            } else if timed("EXAT") {
                Some(TtlKind {
                    unit_ms: 1000,
                    absolute: true,
                })
            } else if timed("PXAT") {
                Some(TtlKind {
                    unit_ms: 1,
                    absolute: true,
                })
            } else {
                None
            };
            let other_ttl = |k: TtlKind| o.ttl.is_some_and(|(t, _)| t != k);
            if for_set && a.is(i, "NX") && !o.xx {
                o.nx = true;
            } else if for_set && a.is(i, "XX") && !o.nx {
                o.xx = true;
            } else if for_set && a.is(i, "GET") {
                o.get = true;
            } else if for_set && a.is(i, "KEEPTTL") && o.ttl.is_none() {
                o.keepttl = true;
            } else if !for_set && a.is(i, "PERSIST") && o.ttl.is_none() {
                o.persist = true;
            } else if let Some(k) =
                kind.filter(|&k| !o.keepttl && !o.persist && !other_ttl(k) && has_next)
            {
                o.ttl = Some((k, a.get(i + 1)));
                i += 1;
            } else {
                return Err(Error::Syntax);
            }
            i += 1;
        }
        Ok(o)
    }

    /// The absolute expiry the TTL option asks for, if any.
    fn expire_at(&self, now: i64, cmd: &'static str) -> Result<Option<i64>, Error> {
        match self.ttl {
            Some((k, arg)) => expire_at(arg, k.unit_ms, k.absolute, now, cmd).map(Some),
            None => Ok(None),
        }
    }
}

/// Stores a string. An expiry already past is stored as it is, so the key is expired (and
/// deleted, as a propagated DEL) by the next lookup or the active cycle, as Redis does.
fn store(db: &mut Db, key: &[u8], val: &[u8], exp: Expiry, now: i64) {
    let value = Value::Str(StrValue::from_bytes(val));
    match exp {
        Expiry::Keep => db.set_keep_ttl(key, value, now),
        Expiry::Clear => db.set(key, value, NO_EXPIRE, now),
        Expiry::At(at) => db.set(key, value, at, now),
    }
}

/// Propagates a SET with an absolute expiry: `SET key value PXAT ms`, as Redis rewrites
/// every SET (and SETEX, PSETEX) that carries a TTL.
fn propagate_set_pxat(c: &mut Ctx, key: &[u8], val: &[u8], at: i64) {
    if c.recording() {
        let ms = itoa::Buffer::new().format(at).to_owned();
        c.propagate(&[b"SET", key, val, b"PXAT", ms.as_bytes()]);
    }
}

fn set(c: &mut Ctx, a: &Args) -> CmdResult {
    let opts = StrOpts::parse(a, 3, true)?;
    let exp = match opts.expire_at(c.now, "set")? {
        Some(at) => Expiry::At(at),
        None if opts.keepttl => Expiry::Keep,
        None => Expiry::Clear,
    };
    let key = a.get(1);
    // SET ... GET reads the old value as GET does (a keyspace hit or miss).
    let old = if opts.get {
        Some(c.db.read_as::<StrValue>(key, c.now)?.map(|s| s.to_vec()))
    } else {
        None
    };
    let exists = match &old {
        Some(o) => o.is_some(),
        None if opts.nx || opts.xx => c.db.exists(key, c.now),
        None => false,
    };
    let blocked = (opts.nx && exists) || (opts.xx && !exists);
    if !blocked {
        store(&mut c.db, key, a.get(2), exp, c.now);
        c.dirty(1);
        c.notify(class::STRING, "set", key);
        if let Expiry::At(at) = exp {
            c.notify(class::GENERIC, "expire", key);
            propagate_set_pxat(c, key, a.get(2), at);
        } else if opts.get && c.recording() {
            // Without a TTL, every GET after the value is dropped.
            let kept: Vec<&[u8]> = a
                .iter()
                .enumerate()
                .filter(|&(i, w)| i < 3 || !w.eq_ignore_ascii_case(b"GET"))
                .map(|(_, w)| w)
                .collect();
            c.propagate(&kept);
        }
    }
    match old {
        Some(Some(v)) => c.out.bulk(&v),
        Some(None) => c.out.null(),
        None if blocked => c.out.null(),
        None => c.out.ok(),
    }
    Ok(())
}

fn setnx(c: &mut Ctx, a: &Args) -> CmdResult {
    let exists = c.db.exists(a.get(1), c.now);
    if !exists {
        store(&mut c.db, a.get(1), a.get(2), Expiry::Clear, c.now);
        c.dirty(1);
        c.notify(class::STRING, "set", a.get(1));
    }
    c.out.int(!exists as i64);
    Ok(())
}

fn setex_with(c: &mut Ctx, a: &Args, unit: i64, cmd: &'static str) -> CmdResult {
    let at = expire_at(a.get(2), unit, false, c.now, cmd)?;
    store(&mut c.db, a.get(1), a.get(3), Expiry::At(at), c.now);
    c.dirty(1);
    c.notify(class::STRING, "set", a.get(1));
    c.notify(class::GENERIC, "expire", a.get(1));
    propagate_set_pxat(c, a.get(1), a.get(3), at);
    c.out.ok();
    Ok(())
}

fn setex(c: &mut Ctx, a: &Args) -> CmdResult {
    setex_with(c, a, 1000, "setex")
}

fn psetex(c: &mut Ctx, a: &Args) -> CmdResult {
    setex_with(c, a, 1, "psetex")
}

fn getset(c: &mut Ctx, a: &Args) -> CmdResult {
    let old =
        c.db.read_as::<StrValue>(a.get(1), c.now)?
            .map(|s| s.to_vec());
    store(&mut c.db, a.get(1), a.get(2), Expiry::Clear, c.now);
    c.dirty(1);
    c.notify(class::STRING, "set", a.get(1));
    c.propagate(&[b"SET", a.get(1), a.get(2)]);
    match old {
        Some(v) => c.out.bulk(&v),
        None => c.out.null(),
    }
    Ok(())
}

fn getdel(c: &mut Ctx, a: &Args) -> CmdResult {
    let old =
        c.db.read_as::<StrValue>(a.get(1), c.now)?
            .map(|s| s.to_vec());
    match old {
        Some(v) => {
            c.db.remove(a.get(1));
            c.dirty(1);
            c.notify(class::GENERIC, "del", a.get(1));
            c.propagate(&[b"DEL", a.get(1)]);
            c.out.bulk(&v);
        }
        None => c.out.null(),
    }
    Ok(())
}

fn getex(c: &mut Ctx, a: &Args) -> CmdResult {
    let opts = StrOpts::parse(a, 2, false)?;
    let key = a.get(1);
    // Redis looks the key up before validating the expire time: a missing key is nil
    // whatever the time says.
    let Some(val) = c.db.read_as::<StrValue>(key, c.now)?.map(|s| s.to_vec()) else {
        c.out.null();
        return Ok(());
    };
    // Never propagated as sent: as PEXPIREAT, DEL or PERSIST, or not at all.
    c.propagate_nothing();
    match opts.expire_at(c.now, "getex")? {
        Some(at) if at <= c.now => {
            c.db.remove(key);
            c.dirty(1);
            c.notify(class::GENERIC, "del", key);
            c.propagate(&[b"DEL", key]);
        }
        Some(at) => {
            c.db.set_expire(key, at);
            c.dirty(1);
            c.notify(class::GENERIC, "expire", key);
            let ms = itoa::Buffer::new().format(at).to_owned();
            c.propagate(&[b"PEXPIREAT", key, ms.as_bytes()]);
        }
        None if opts.persist && c.db.persist(key, c.now) => {
            c.dirty(1);
            c.notify(class::GENERIC, "persist", key);
            c.propagate(&[b"PERSIST", key]);
        }
        None => {}
    }
    c.out.bulk(&val);
    Ok(())
}

/// MGET on one shard: a missing key or a non-string gives nil.
fn mget(c: &mut Ctx, a: &Args) -> CmdResult {
    c.out.array(a.len() - 1);
    for key in a.rest(1) {
        match c.db.read_as::<StrValue>(key, c.now) {
            Ok(Some(s)) => s.with_bytes(|b| c.out.bulk(b)),
            _ => c.out.null(),
        }
    }
    Ok(())
}

fn check_pairs(a: &Args, name: &'static str) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(Error::WrongArity(name.into()));
    }
    Ok(())
}

fn mset(c: &mut Ctx, a: &Args) -> CmdResult {
    check_pairs(a, "mset")?;
    for i in (1..a.len()).step_by(2) {
        store(&mut c.db, a.get(i), a.get(i + 1), Expiry::Clear, c.now);
        c.notify(class::STRING, "set", a.get(i));
    }
    c.dirty(a.len() as u64 / 2);
    c.out.ok();
    Ok(())
}

fn msetnx(c: &mut Ctx, a: &Args) -> CmdResult {
    check_pairs(a, "msetnx")?;
    if (1..a.len())
        .step_by(2)
        .any(|i| c.db.exists(a.get(i), c.now))
    {
        c.out.int(0);
        return Ok(());
    }
    for i in (1..a.len()).step_by(2) {
        store(&mut c.db, a.get(i), a.get(i + 1), Expiry::Clear, c.now);
        c.notify(class::STRING, "set", a.get(i));
    }
    c.dirty(a.len() as u64 / 2);
    c.out.int(1);
    Ok(())
}

fn append(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let tail = a.get(2);
    let max = max_bulk_len(c);
    let len = match c.db.write_as::<StrValue>(key, c.now)? {
        Some(s) => {
            check_size(s.len() as i64, tail.len() as i64, max)?;
            // Appending (even nothing) leaves the value `raw`, as Redis unshares it.
            let raw = s.make_raw();
            raw.extend_from_slice(tail);
            raw.len()
        }
        None => {
            // A new key takes the argument as SET would, so it may be `int` or `embstr`.
            store(&mut c.db, key, tail, Expiry::Clear, c.now);
            tail.len()
        }
    };
    c.dirty(1);
    c.notify(class::STRING, "append", key);
    c.out.int(len as i64);
    Ok(())
}

/// `proto-max-bulk-len`, the largest string a command may build.
pub fn max_bulk_len(c: &Ctx) -> i64 {
    c.shard.settings.borrow().proto_max_bulk_len
}

/// Redis's `checkStringLength`: `size + append` must fit `proto-max-bulk-len` (and not overflow).
pub fn check_size(size: i64, append: i64, max: i64) -> CmdResult {
    match size.checked_add(append) {
        Some(total) if total <= max => Ok(()),
        _ => Err(Error::msg(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        )),
    }
}

fn strlen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n =
        c.db.read_as::<StrValue>(a.get(1), c.now)?
            .map_or(0, |s| s.len());
    c.out.int(n as i64);
    Ok(())
}

fn incr_by(c: &mut Ctx, key: &[u8], by: i64) -> CmdResult {
    let result = match c.db.write_as::<StrValue>(key, c.now)? {
        Some(s) => {
            let cur = s.as_i64().ok_or(Error::NotInteger)?;
            let new = cur.checked_add(by).ok_or(Error::Overflow)?;
            *s = StrValue::Int(new);
            new
        }
        None => {
            c.db.set(key, Value::Str(StrValue::Int(by)), NO_EXPIRE, c.now);
            by
        }
    };
    c.dirty(1);
    c.notify(class::STRING, "incrby", key);
    c.out.int(result);
    Ok(())
}

fn incr(c: &mut Ctx, a: &Args) -> CmdResult {
    incr_by(c, a.get(1), 1)
}

fn decr(c: &mut Ctx, a: &Args) -> CmdResult {
    incr_by(c, a.get(1), -1)
}

fn incrby(c: &mut Ctx, a: &Args) -> CmdResult {
    incr_by(c, a.get(1), arg_i64(a.get(2))?)
}

fn decrby(c: &mut Ctx, a: &Args) -> CmdResult {
    let by = arg_i64(a.get(2))?;
    // Negating i64::MIN overflows; Redis words this case on its own.
    let neg = by
        .checked_neg()
        .ok_or(Error::msg("decrement would overflow"))?;
    incr_by(c, a.get(1), neg)
}

fn incrbyfloat(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let cur = c.db.write_as::<StrValue>(key, c.now)?.map(|s| s.to_vec());
    let new = incr_by_float(cur.as_deref(), a.get(2))?;
    // Redis stores the formatted result as a plain string object (never `int`).
    let value = StrValue::from_bytes_no_int(&new);
    c.db.set_keep_ttl(key, Value::Str(value), c.now);
    c.dirty(1);
    c.notify(class::STRING, "incrbyfloat", key);
    // The result, not the increment: replicas must not redo float arithmetic.
    c.propagate(&[b"SET", key, &new, b"KEEPTTL"]);
    c.out.bulk(&new);
    Ok(())
}

/// Redis's start/end handling for GETRANGE, BITCOUNT and BITPOS: negative indexes count from
/// the end of `len` units; the result is clamped to `[0, len - 1]`; `None` if empty
/// (`start > end` after clamping, which includes `len == 0`).
pub fn clamp_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s += len;
    }
    if e < 0 {
        e += len;
    }
    s = s.max(0);
    e = e.max(0);
    if e >= len {
        e = len - 1;
    }
    (s <= e).then_some((s as usize, e as usize))
}

fn getrange(c: &mut Ctx, a: &Args) -> CmdResult {
    let (start, end) = (arg_i64(a.get(2))?, arg_i64(a.get(3))?);
    let Some(s) = c.db.read_as::<StrValue>(a.get(1), c.now)? else {
        c.out.bulk(b"");
        return Ok(());
    };
    s.with_bytes(|b| {
        // Redis: both indexes negative with start > end gives "".
        if start < 0 && end < 0 && start > end {
            return c.out.bulk(b"");
        }
        match clamp_range(start, end, b.len() as i64) {
            Some((s, e)) => c.out.bulk(&b[s..=e]),
            None => c.out.bulk(b""),
        }
    });
    Ok(())
}

fn setrange(c: &mut Ctx, a: &Args) -> CmdResult {
    let offset = arg_i64(a.get(2))?;
    if offset < 0 {
        return Err(Error::OutOfRangeOffset);
    }
    let key = a.get(1);
    let val = a.get(3);
    let max = max_bulk_len(c);
    match c.db.write_as::<StrValue>(key, c.now)? {
        Some(s) => {
            // Setting nothing reports the current length and leaves the value untouched.
            if val.is_empty() {
                c.out.int(s.len() as i64);
                return Ok(());
            }
            check_size(offset, val.len() as i64, max)?;
            let raw = s.make_raw();
            let end = offset as usize + val.len();
            if raw.len() < end {
                raw.resize(end, 0);
            }
            raw[offset as usize..end].copy_from_slice(val);
            c.out.int(raw.len() as i64);
            c.dirty(1);
            c.notify(class::STRING, "setrange", key);
        }
        None => {
            if val.is_empty() {
                c.out.int(0);
                return Ok(());
            }
            check_size(offset, val.len() as i64, max)?;
            let mut raw = vec![0u8; offset as usize + val.len()];
            raw[offset as usize..].copy_from_slice(val);
            let len = raw.len();
            c.db.set(key, Value::Str(StrValue::raw(raw)), NO_EXPIRE, c.now);
            c.dirty(1);
            c.notify(class::STRING, "setrange", key);
            c.out.int(len as i64);
        }
    }
    Ok(())
}

/// LCS on one shard: both keys are read (hits/misses counted) before anything is checked.
fn lcs(c: &mut Ctx, a: &Args) -> CmdResult {
    let x =
        c.db.read_as::<StrValue>(a.get(1), c.now)
            .map(|v| v.map(|s| s.to_vec()));
    let y =
        c.db.read_as::<StrValue>(a.get(2), c.now)
            .map(|v| v.map(|s| s.to_vec()));
    let max = max_bulk_len(c);
    lcs_reply(c.out, x, y, a, max)
}

type Fetched = Result<Option<Vec<u8>>, Error>;

/// LCS's options and reply, given the two values (a missing key is an empty string).
fn lcs_reply(out: &mut Reply, x: Fetched, y: Fetched, a: &Args, max: i64) -> CmdResult {
    let (Ok(x), Ok(y)) = (x, y) else {
        return Err(Error::msg("The specified keys must contain string values"));
    };
    let (x, y) = (x.unwrap_or_default(), y.unwrap_or_default());
    let (mut idx, mut len, mut withlen, mut minlen) = (false, false, false, 0u64);
    let mut i = 3;
    while i < a.len() {
        if a.is(i, "IDX") {
            idx = true;
        } else if a.is(i, "LEN") {
            len = true;
        } else if a.is(i, "WITHMATCHLEN") {
            withlen = true;
        } else if a.is(i, "MINMATCHLEN") && i + 1 < a.len() {
            minlen = arg_i64(a.get(i + 1))?.max(0) as u64;
            i += 1;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    if idx && len {
        return Err(Error::msg(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    if x.len() as u64 >= u32::MAX as u64 - 1 || y.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(Error::msg("String too long for LCS"));
    }
    // Redis refuses when its table of u32 cells would exceed proto-max-bulk-len; we keep
    // the same limit (so the same inputs fail) though our table takes one bit per cell.
    let cells = (x.len() as u64 + 1) * (y.len() as u64 + 1);
    if cells.saturating_mul(4) > max.max(0) as u64 {
        return Err(Error::msg(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    if len {
        out.int(lcs_len(&x, &y) as i64);
        return Ok(());
    }
    let found = lcs_find(&x, &y);
    if !idx {
        out.bulk(&found.text);
        return Ok(());
    }
    let shown: Vec<&LcsMatch> = found
        .matches
        .iter()
        .filter(|m| minlen == 0 || m.len() >= minlen)
        .collect();
    out.map(2);
    out.bulk(b"matches");
    out.array(shown.len());
    for m in shown {
        out.array(2 + withlen as usize);
        out.array(2);
        out.int(m.a.0 as i64);
        out.int(m.a.1 as i64);
        out.array(2);
        out.int(m.b.0 as i64);
        out.int(m.b.1 as i64);
        if withlen {
            out.int(m.len() as i64);
        }
    }
    out.bulk(b"len");
    out.int(found.text.len() as i64);
    Ok(())
}

/// One common run: inclusive ranges in each string.
#[derive(Debug, PartialEq)]
struct LcsMatch {
    a: (u32, u32),
    b: (u32, u32),
}

impl LcsMatch {
    fn len(&self) -> u64 {
        (self.a.1 - self.a.0 + 1) as u64
    }
}

#[derive(Debug)]
struct LcsFound {
    text: Vec<u8>,
    /// From the end of the strings backwards, as Redis lists them.
    matches: Vec<LcsMatch>,
}

/// The LCS length alone, with two rows of the DP table.
fn lcs_len(x: &[u8], y: &[u8]) -> u32 {
    let mut prev = vec![0u32; y.len() + 1];
    let mut cur = vec![0u32; y.len() + 1];
    for &cx in x {
        for (j, &cy) in y.iter().enumerate() {
            cur[j + 1] = if cx == cy {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[y.len()]
}

/// The LCS string and its runs, chosen exactly as Redis's backtrack chooses them. Instead of
/// Redis's full table of lengths we keep two rows plus one bit per cell: whether, at a
/// mismatch, the cell above holds a longer LCS than the cell to the left, which is the only
/// thing the backtrack asks of the table.
fn lcs_find(x: &[u8], y: &[u8]) -> LcsFound {
    let (n, m) = (x.len(), y.len());
    let mut up = vec![0u64; (n * m).div_ceil(64)];
    let mut prev = vec![0u32; m + 1];
    let mut cur = vec![0u32; m + 1];
    for (i, &cx) in x.iter().enumerate() {
        for (j, &cy) in y.iter().enumerate() {
            cur[j + 1] = if cx == cy {
                prev[j] + 1
            } else {
                let (above, left) = (prev[j + 1], cur[j]);
                if above > left {
                    let bit = i * m + j;
                    up[bit / 64] |= 1 << (bit % 64);
                }
                above.max(left)
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let total = prev[m] as usize;
    let mut text = vec![0u8; total];
    let mut matches = Vec::new();
    let mut left = total;
    // The run being tracked, `None` when there is none (Redis's `arange_start == alen`).
    let mut run: Option<LcsMatch> = None;
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        let mut emit = false;
        if x[i - 1] == y[j - 1] {
            left -= 1;
            text[left] = x[i - 1];
            let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
            match &mut run {
                None => {
                    run = Some(LcsMatch {
                        a: (ai, ai),
                        b: (bj, bj),
                    })
                }
                Some(r) if r.a.0 == ai + 1 && r.b.0 == bj + 1 => {
                    r.a.0 = ai;
                    r.b.0 = bj;
                }
                Some(_) => emit = true,
            }
            if run.as_ref().is_some_and(|r| r.a.0 == 0 || r.b.0 == 0) {
                emit = true;
            }
            i -= 1;
            j -= 1;
        } else {
            let bit = (i - 1) * m + (j - 1);
            if up[bit / 64] >> (bit % 64) & 1 == 1 {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit {
            matches.extend(run.take());
        }
    }
    LcsFound { text, matches }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(-3, -1, 2), Some((0, 1)));
        assert_eq!(clamp_range(5, 10, 2), None);
        assert_eq!(clamp_range(0, -1, 0), None);
        assert_eq!(clamp_range(0, 0, 0), None);
        assert_eq!(clamp_range(1, 100, 5), Some((1, 4)));
        assert_eq!(clamp_range(-100, 2, 5), Some((0, 2)));
        assert_eq!(clamp_range(3, 1, 5), None);
    }

    type Runs = Vec<((u32, u32), (u32, u32))>;

    /// Redis's algorithm as written (full table of lengths), to check ours against.
    fn reference(x: &[u8], y: &[u8]) -> (Vec<u8>, Runs) {
        let (n, m) = (x.len(), y.len());
        let mut t = vec![vec![0u32; m + 1]; n + 1];
        for i in 1..=n {
            for j in 1..=m {
                t[i][j] = if x[i - 1] == y[j - 1] {
                    t[i - 1][j - 1] + 1
                } else {
                    t[i - 1][j].max(t[i][j - 1])
                };
            }
        }
        let mut text = Vec::new();
        let mut out = Vec::new();
        let (mut i, mut j) = (n, m);
        let mut cur: Option<((u32, u32), (u32, u32))> = None;
        while i > 0 && j > 0 {
            let mut emit = false;
            if x[i - 1] == y[j - 1] {
                text.push(x[i - 1]);
                let (ai, bj) = ((i - 1) as u32, (j - 1) as u32);
                cur = match cur {
                    None => Some(((ai, ai), (bj, bj))),
                    Some(((s, e), (bs, be))) if s == ai + 1 && bs == bj + 1 => {
                        Some(((ai, e), (bj, be)))
                    }
                    other => {
                        emit = true;
                        other
                    }
                };
                if let Some(((s, _), (bs, _))) = cur {
                    emit |= s == 0 || bs == 0;
                }
                i -= 1;
                j -= 1;
            } else {
                if t[i - 1][j] > t[i][j - 1] {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = cur.is_some();
            }
            if emit {
                out.extend(cur.take());
            }
        }
        text.reverse();
        (text, out)
    }

    fn check(x: &[u8], y: &[u8]) {
        let f = lcs_find(x, y);
        let (text, runs) = reference(x, y);
        assert_eq!(f.text, text, "{x:?} {y:?}");
        let got: Vec<_> = f.matches.iter().map(|m| (m.a, m.b)).collect();
        assert_eq!(got, runs, "{x:?} {y:?}");
        assert_eq!(lcs_len(x, y) as usize, text.len());
    }

    #[test]
    fn lcs_matches_redis_examples() {
        // From Redis's LCS documentation.
        let f = lcs_find(b"ohmytext", b"mynewtext");
        assert_eq!(f.text, b"mytext");
        let runs: Vec<_> = f.matches.iter().map(|m| (m.a, m.b, m.len())).collect();
        assert_eq!(runs, vec![((4, 7), (5, 8), 4), ((2, 3), (0, 1), 2)]);
        assert_eq!(lcs_len(b"ohmytext", b"mynewtext"), 6);
        assert_eq!(lcs_find(b"", b"abc").text, b"");
        assert!(lcs_find(b"abc", b"").matches.is_empty());
        assert_eq!(lcs_len(b"abc", b"xyz"), 0);
    }

    #[test]
    fn lcs_agrees_with_full_table() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let (n, m) = ((next() % 40) as usize, (next() % 40) as usize);
            let alpha = 2 + next() % 4;
            let x: Vec<u8> = (0..n).map(|_| b'a' + (next() % alpha) as u8).collect();
            let y: Vec<u8> = (0..m).map(|_| b'a' + (next() % alpha) as u8).collect();
            check(&x, &y);
        }
    }

    #[test]
    fn size_check_matches_redis() {
        let max = 512 * 1024 * 1024;
        assert!(check_size(max - 1, 1, max).is_ok());
        assert!(check_size(max, 1, max).is_err());
        assert!(check_size(i64::MAX, 1, max).is_err());
    }
}
