//! String commands (Redis's t_string.c): GET/SET and friends, counters, ranges and bit operations.

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::db::{Keyspace, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::server::conn::Conn;
use crate::shard::multi;
use crate::types::{StrValue, Value};
use crate::util::num::{arg_i64, incr_by_float};

const READ: &[&str] = &["@read", "@string", "@fast"];
const WRITE_FAST: &[&str] = &["@write", "@string", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@string", "@slow"];

const fn keyed(name: &'static str, arity: i32, flags: u32, f: crate::cmd::KeyedFn) -> CommandSpec {
    CommandSpec::new(name, arity, flags, Handler::Keyed(f)).keys(1, 1, 1)
}

pub static COMMANDS: &[CommandSpec] = &[
    keyed("get", 2, READONLY | FAST, get).acl(READ).doc("string", "1.0.0", "Returns the string value of a key."),
    keyed("set", -3, WRITE | DENYOOM, set).acl(&["@write", "@string", "@slow"]).doc(
        "string",
        "1.0.0",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    ),
    keyed("setnx", 3, WRITE | DENYOOM | FAST, setnx).acl(WRITE_FAST).doc("string", "1.0.0", "Set the string value of a key only when the key doesn't exist."),
    keyed("setex", 4, WRITE | DENYOOM, setex).acl(WRITE_SLOW).doc("string", "2.0.0", "Sets the string value and expiration time of a key."),
    keyed("psetex", 4, WRITE | DENYOOM, psetex).acl(WRITE_SLOW).doc("string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key."),
    keyed("getset", 3, WRITE | DENYOOM | FAST, getset).acl(WRITE_FAST).doc("string", "1.0.0", "Returns the previous string value of a key after setting it to a new value."),
    keyed("getdel", 2, WRITE | FAST, getdel).acl(WRITE_FAST).doc("string", "6.2.0", "Returns the string value of a key after deleting the key."),
    keyed("getex", -2, WRITE | FAST, getex).acl(WRITE_FAST).doc("string", "6.2.0", "Returns the string value of a key after setting its expiration time."),
    keyed("mget", -2, READONLY | FAST, mget)
        .keys(1, -1, 1)
        .multi(mget_multi)
        .acl(READ)
        .doc("string", "1.0.0", "Atomically returns the string values of one or more keys."),
    keyed("mset", -3, WRITE | DENYOOM, mset)
        .keys(1, -1, 2)
        .multi(mset_multi)
        .acl(WRITE_SLOW)
        .doc("string", "1.0.1", "Atomically creates or modifies the string values of one or more keys."),
    keyed("msetnx", -3, WRITE | DENYOOM, msetnx)
        .keys(1, -1, 2)
        .multi(msetnx_multi)
        .acl(WRITE_SLOW)
        .doc("string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    keyed("append", 3, WRITE | DENYOOM | FAST, append).acl(WRITE_FAST).doc("string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    keyed("strlen", 2, READONLY | FAST, strlen).acl(READ).doc("string", "2.2.0", "Returns the length of a string value."),
    keyed("incr", 2, WRITE | DENYOOM | FAST, incr).acl(WRITE_FAST).doc("string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    keyed("decr", 2, WRITE | DENYOOM | FAST, decr).acl(WRITE_FAST).doc("string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    keyed("incrby", 3, WRITE | DENYOOM | FAST, incrby).acl(WRITE_FAST).doc("string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    keyed("decrby", 3, WRITE | DENYOOM | FAST, decrby).acl(WRITE_FAST).doc("string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    keyed("incrbyfloat", 3, WRITE | DENYOOM | FAST, incrbyfloat).acl(WRITE_FAST).doc("string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    keyed("getrange", 4, READONLY, getrange).acl(&["@read", "@string", "@slow"]).doc("string", "2.4.0", "Returns a substring of the string stored at a key."),
    keyed("substr", 4, READONLY, getrange).acl(&["@read", "@string", "@slow"]).doc("string", "1.0.0", "Returns a substring from a string value."),
    keyed("setrange", 4, WRITE | DENYOOM, setrange).acl(WRITE_SLOW).doc("string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
];

/// The string at `key`: `Ok(None)` if absent, `WRONGTYPE` if another type.
pub fn read_str<'a>(
    db: &'a mut Keyspace,
    key: &[u8],
    now: i64,
) -> Result<Option<&'a mut StrValue>, Error> {
    match db.read(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Str(s) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// Like `read_str` without counting a keyspace hit or miss (for writes).
pub fn write_str<'a>(
    db: &'a mut Keyspace,
    key: &[u8],
    now: i64,
) -> Result<Option<&'a mut StrValue>, Error> {
    match db.get(key, now) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Str(s) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

fn get(c: &mut Ctx, a: &Args) -> CmdResult {
    match read_str(c.db, a.get(1), c.now)? {
        Some(s) => match s {
            StrValue::Int(v) => c.out.bulk_int(*v),
            StrValue::Emb(b) => c.out.bulk(b),
            StrValue::Raw(b) => c.out.bulk(b),
        },
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
/// for EXAT/PXAT. Errors with `invalid expire time in '<cmd>' command`.
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

/// Stores a string, honouring an expiry that may already be in the past (then the key is deleted).
fn store(db: &mut Keyspace, key: &[u8], val: &[u8], exp: Expiry, now: i64) {
    let value = Value::Str(StrValue::from_bytes(val));
    match exp {
        Expiry::Keep => db.set_keep_ttl(key, value, now),
        Expiry::Clear => db.set(key, value, NO_EXPIRE, now),
        Expiry::At(at) if at <= now => {
            db.remove(key);
        }
        Expiry::At(at) => db.set(key, value, at, now),
    }
}

fn set(c: &mut Ctx, a: &Args) -> CmdResult {
    let (mut nx, mut xx, mut want_get) = (false, false, false);
    let mut exp = Expiry::Clear;
    let mut i = 3;
    while i < a.len() {
        let next = (i + 1 < a.len()).then(|| a.get(i + 1));
        let opt = a.get(i);
        let timed = |unit: i64, abs: bool, exp: Expiry| -> Result<Expiry, Error> {
            match (next, exp) {
                (Some(v), Expiry::Clear) => Ok(Expiry::At(expire_at(v, unit, abs, c.now, "set")?)),
                _ => Err(Error::Syntax),
            }
        };
        if opt.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            want_get = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && exp == Expiry::Clear {
            exp = Expiry::Keep;
        } else if opt.eq_ignore_ascii_case(b"EX") {
            exp = timed(1000, false, exp)?;
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"PX") {
            exp = timed(1, false, exp)?;
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"EXAT") {
            exp = timed(1000, true, exp)?;
            i += 1;
        } else if opt.eq_ignore_ascii_case(b"PXAT") {
            exp = timed(1, true, exp)?;
            i += 1;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    let key = a.get(1);
    let old = if want_get {
        Some(write_str(c.db, key, c.now)?.map(|s| s.to_vec()))
    } else {
        None
    };
    let exists = match &old {
        Some(o) => o.is_some(),
        None if nx || xx => c.db.exists(key, c.now),
        None => false,
    };
    let blocked = (nx && exists) || (xx && !exists);
    if !blocked {
        store(c.db, key, a.get(2), exp, c.now);
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
        store(c.db, a.get(1), a.get(2), Expiry::Clear, c.now);
    }
    c.out.int(!exists as i64);
    Ok(())
}

fn setex_with(c: &mut Ctx, a: &Args, unit: i64, cmd: &'static str) -> CmdResult {
    let at = expire_at(a.get(2), unit, false, c.now, cmd)?;
    store(c.db, a.get(1), a.get(3), Expiry::At(at), c.now);
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
    let old = write_str(c.db, a.get(1), c.now)?.map(|s| s.to_vec());
    store(c.db, a.get(1), a.get(2), Expiry::Clear, c.now);
    match old {
        Some(v) => c.out.bulk(&v),
        None => c.out.null(),
    }
    Ok(())
}

fn getdel(c: &mut Ctx, a: &Args) -> CmdResult {
    let old = read_str(c.db, a.get(1), c.now)?.map(|s| s.to_vec());
    match old {
        Some(v) => {
            c.db.remove(a.get(1));
            c.out.bulk(&v);
        }
        None => c.out.null(),
    }
    Ok(())
}

fn getex(c: &mut Ctx, a: &Args) -> CmdResult {
    let mut exp = Expiry::Keep;
    let mut i = 2;
    while i < a.len() {
        let next = (i + 1 < a.len()).then(|| a.get(i + 1));
        let (unit, abs) = if a.is(i, "EX") {
            (1000, false)
        } else if a.is(i, "PX") {
            (1, false)
        } else if a.is(i, "EXAT") {
            (1000, true)
        } else if a.is(i, "PXAT") {
            (1, true)
        } else if a.is(i, "PERSIST") && exp == Expiry::Keep {
            exp = Expiry::Clear;
            i += 1;
            continue;
        } else {
            return Err(Error::Syntax);
        };
        match (next, exp) {
            (Some(v), Expiry::Keep) => exp = Expiry::At(expire_at(v, unit, abs, c.now, "getex")?),
            _ => return Err(Error::Syntax),
        }
        i += 2;
    }
    let key = a.get(1);
    let Some(val) = read_str(c.db, key, c.now)?.map(|s| s.to_vec()) else {
        c.out.null();
        return Ok(());
    };
    match exp {
        Expiry::Keep => {}
        Expiry::Clear => {
            c.db.set_expire(key, NO_EXPIRE);
        }
        Expiry::At(at) if at <= c.now => {
            c.db.remove(key);
        }
        Expiry::At(at) => {
            c.db.set_expire(key, at);
        }
    }
    c.out.bulk(&val);
    Ok(())
}

/// MGET on one shard: a missing key or a non-string gives nil.
fn mget(c: &mut Ctx, a: &Args) -> CmdResult {
    c.out.array(a.len() - 1);
    for key in a.rest(1) {
        match read_str(c.db, key, c.now) {
            Ok(Some(s)) => s.with_bytes(|b| c.out.bulk(b)),
            _ => c.out.null(),
        }
    }
    Ok(())
}

fn mget_multi<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let keys: Vec<Vec<u8>> = a.rest(1).map(<[u8]>::to_vec).collect();
        let values = multi::map_keys(&conn.shard, keys, |db, key, now| {
            match read_str(db, key, now) {
                Ok(Some(s)) => Some(s.to_vec()),
                _ => None,
            }
        })
        .await;
        conn.out.array(values.len());
        for v in values {
            match v {
                Some(v) => conn.out.bulk(&v),
                None => conn.out.null(),
            }
        }
        Ok(())
    })
}

fn check_pairs(a: &Args, name: &'static str) -> CmdResult {
    if a.len() % 2 == 0 {
        return Err(Error::WrongArity(name.into()));
    }
    Ok(())
}

fn mset(c: &mut Ctx, a: &Args) -> CmdResult {
    check_pairs(a, "mset")?;
    for i in (1..a.len()).step_by(2) {
        store(c.db, a.get(i), a.get(i + 1), Expiry::Clear, c.now);
    }
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
        store(c.db, a.get(i), a.get(i + 1), Expiry::Clear, c.now);
    }
    c.out.int(1);
    Ok(())
}

fn pairs(a: &Args) -> Vec<(Vec<u8>, Vec<u8>)> {
    (1..a.len())
        .step_by(2)
        .map(|i| (a.get(i).to_vec(), a.get(i + 1).to_vec()))
        .collect()
}

fn mset_multi<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        check_pairs(&a, "mset")?;
        multi::atomic_write(&conn.shard, conn.meta.id, pairs(&a), false).await;
        conn.out.ok();
        Ok(())
    })
}

fn msetnx_multi<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        check_pairs(&a, "msetnx")?;
        let written = multi::atomic_write(&conn.shard, conn.meta.id, pairs(&a), true).await;
        conn.out.int(written as i64);
        Ok(())
    })
}

/// Writes every pair on the shard it belongs to (used by MSET/MSETNX across shards).
pub fn store_pairs(db: &mut Keyspace, pairs: &[(Vec<u8>, Vec<u8>)], now: i64) {
    for (k, v) in pairs {
        store(db, k, v, Expiry::Clear, now);
    }
}

fn append(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let len = match write_str(c.db, key, c.now)? {
        Some(s) => {
            let raw = s.make_raw();
            check_size(raw.len() as i64 + a.get(2).len() as i64)?;
            raw.extend_from_slice(a.get(2));
            raw.len()
        }
        None => {
            c.db.set(
                key,
                Value::Str(StrValue::Raw(a.get(2).to_vec())),
                NO_EXPIRE,
                c.now,
            );
            a.get(2).len()
        }
    };
    c.out.int(len as i64);
    Ok(())
}

/// Strings are limited to 512 MB, as in Redis (`checkStringLength`).
fn check_size(len: i64) -> CmdResult {
    if len > 512 * 1024 * 1024 {
        return Err(Error::msg(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

fn strlen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = read_str(c.db, a.get(1), c.now)?.map_or(0, |s| s.len());
    c.out.int(n as i64);
    Ok(())
}

fn incr_by(c: &mut Ctx, key: &[u8], by: i64) -> CmdResult {
    let result = match write_str(c.db, key, c.now)? {
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
    incr_by(c, a.get(1), by.checked_neg().ok_or(Error::Overflow)?)
}

fn incrbyfloat(c: &mut Ctx, a: &Args) -> CmdResult {
    let key = a.get(1);
    let cur = write_str(c.db, key, c.now)?.map(|s| s.to_vec());
    let new = incr_by_float(cur.as_deref(), a.get(2))?;
    c.db.set_keep_ttl(key, Value::Str(StrValue::from_bytes(&new)), c.now);
    c.out.bulk(&new);
    Ok(())
}

/// Clamps Redis-style start/end indexes (negative from the end) to `[0, len)`; `None` if empty.
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
    if s > e || len == 0 {
        return None;
    }
    Some((s as usize, e as usize))
}

fn getrange(c: &mut Ctx, a: &Args) -> CmdResult {
    let (start, end) = (arg_i64(a.get(2))?, arg_i64(a.get(3))?);
    let Some(s) = read_str(c.db, a.get(1), c.now)? else {
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
    match write_str(c.db, key, c.now)? {
        Some(s) => {
            if val.is_empty() {
                c.out.int(s.len() as i64);
                return Ok(());
            }
            check_size(offset + val.len() as i64)?;
            let raw = s.make_raw();
            let end = offset as usize + val.len();
            if raw.len() < end {
                raw.resize(end, 0);
            }
            raw[offset as usize..end].copy_from_slice(val);
            c.out.int(raw.len() as i64);
        }
        None => {
            if val.is_empty() {
                c.out.int(0);
                return Ok(());
            }
            check_size(offset + val.len() as i64)?;
            let mut raw = vec![0u8; offset as usize];
            raw.extend_from_slice(val);
            let len = raw.len();
            c.db.set(key, Value::Str(StrValue::Raw(raw)), NO_EXPIRE, c.now);
            c.out.int(len as i64);
        }
    }
    Ok(())
}
