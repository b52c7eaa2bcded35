//! Generic key commands (Redis's db.c / expire.c / object.c): DEL, EXISTS, TYPE, TTLs, RENAME, COPY, SCAN, OBJECT ...

use crate::acl;
use crate::cmd::scan::{parse_cursor, parse_scan_opts};
use crate::cmd::{flag::*, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{self, ExpireFlags, ExpireOutcome, ScanFilter, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::types::{StrValue, Value};
use crate::util::num::arg_i64;

/// OBJECT's subcommands; the key is argument 2.
static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("encoding", 3, READONLY, Handler::Keyed(object_encoding))
        .access(acl::NONE, acl::NONE)
        .keys(2, 2, 1)
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "2.2.3",
            "Returns the internal encoding of a Redis object.",
        ),
    CommandSpec::new("freq", 3, READONLY, Handler::Keyed(object_freq))
        .access(acl::NONE, acl::NONE)
        .keys(2, 2, 1)
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "4.0.0",
            "Returns the logarithmic access frequency counter of a Redis object.",
        ),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(object_help))
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "6.2.0",
            "Returns helpful text about the different subcommands.",
        ),
    CommandSpec::new("idletime", 3, READONLY, Handler::Keyed(object_idletime))
        .access(acl::NONE, acl::NONE)
        .keys(2, 2, 1)
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "2.2.3",
            "Returns the time since the last access to a Redis object.",
        ),
    CommandSpec::new("refcount", 3, READONLY, Handler::Keyed(object_refcount))
        .access(acl::NONE, acl::NONE)
        .keys(2, 2, 1)
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "2.2.3",
            "Returns the reference count of a value of a key.",
        ),
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("del", -2, WRITE, del)
        .keys(1, -1, 1)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Deletes one or more keys."),
    CommandSpec::keyed("unlink", -2, WRITE | FAST, del)
        .keys(1, -1, 1)
        .acl(&["@keyspace"])
        .doc("generic", "4.0.0", "Asynchronously deletes one or more keys."),
    CommandSpec::keyed("exists", -2, READONLY | FAST, exists)
        .access(acl::NONE, acl::NONE)
        .keys(1, -1, 1)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Determines whether one or more keys exist."),
    CommandSpec::keyed("touch", -2, READONLY | FAST, touch)
        .access(acl::NONE, acl::NONE)
        .keys(1, -1, 1)
        .acl(&["@keyspace"])
        .doc("generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    CommandSpec::keyed("type", 2, READONLY | FAST, type_cmd)
        .access(acl::NONE, acl::NONE)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Determines the type of value stored at a key."),
    CommandSpec::keyed("expire", -3, WRITE | FAST, expire)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Sets the expiration time of a key in seconds."),
    CommandSpec::keyed("pexpire", -3, WRITE | FAST, pexpire)
        .acl(&["@keyspace"])
        .doc("generic", "2.6.0", "Sets the expiration time of a key in milliseconds."),
    CommandSpec::keyed("expireat", -3, WRITE | FAST, expireat)
        .acl(&["@keyspace"])
        .doc("generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."),
    CommandSpec::keyed("pexpireat", -3, WRITE | FAST, pexpireat)
        .acl(&["@keyspace"])
        .doc("generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    CommandSpec::keyed("ttl", 2, READONLY | FAST, ttl)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Returns the expiration time in seconds of a key."),
    CommandSpec::keyed("pttl", 2, READONLY | FAST, pttl)
        .acl(&["@keyspace"])
        .doc("generic", "2.6.0", "Returns the expiration time in milliseconds of a key."),
    CommandSpec::keyed("expiretime", 2, READONLY | FAST, expiretime)
        .acl(&["@keyspace"])
        .doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp."),
    CommandSpec::keyed("pexpiretime", 2, READONLY | FAST, pexpiretime)
        .acl(&["@keyspace"])
        .doc("generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    CommandSpec::keyed("persist", 2, WRITE | FAST, persist)
        .acl(&["@keyspace"])
        .doc("generic", "2.2.0", "Removes the expiration time of a key."),
    CommandSpec::keyed("rename", 3, WRITE, rename)
        .access(acl::READ_WRITE, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Renames a key and overwrites the destination."),
    CommandSpec::keyed("renamenx", 3, WRITE | FAST, renamenx)
        .access(acl::READ_WRITE, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Renames a key only when the target key name doesn't exist."),
    CommandSpec::keyed("copy", -3, WRITE | DENYOOM, copy)
        .access(acl::READ, acl::WRITE)
        .keys(1, 2, 1)
        .acl(&["@keyspace"])
        .doc("generic", "6.2.0", "Copies the value of a key to a new key."),
    CommandSpec::whole("randomkey", 1, READONLY | TOUCHES_ARBITRARY_KEYS, randomkey)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Returns a random key name from the database."),
    CommandSpec::whole("keys", 2, READONLY, keys)
        .acl(&["@keyspace", "@dangerous"])
        .doc("generic", "1.0.0", "Returns all key names that match a pattern."),
    CommandSpec::whole("scan", -2, READONLY | TOUCHES_ARBITRARY_KEYS, scan)
        .shard_of(scan_shard)
        .acl(&["@keyspace"])
        .doc("generic", "2.8.0", "Iterates over the key names in the database."),
    CommandSpec::keyed("move", 3, WRITE | FAST, move_cmd)
        .access(acl::READ_WRITE, acl::READ_WRITE)
        .acl(&["@keyspace"])
        .doc("generic", "1.0.0", "Move a key to another database"),
    CommandSpec::whole("swapdb", 3, WRITE | FAST, swapdb)
        .acl(&["@keyspace", "@dangerous"])
        .doc("server", "4.0.0", "Swaps two Redis databases"),
    CommandSpec::new("object", -2, 0, Handler::Container)
        .subs(OBJECT_SUBCOMMANDS)
        .doc("generic", "2.2.3", "A container for object introspection commands."),
];

// ---- DEL / UNLINK / EXISTS / TOUCH ----

fn del(c: &mut Ctx, a: &Args) -> CmdResult {
    let mut n = 0;
    for key in a.rest(1) {
        if c.db.delete(key, c.now) {
            n += 1;
            c.notify(class::GENERIC, "del", key);
        }
    }
    c.dirty(n as u64);
    c.out.int(n as i64);
    Ok(())
}

/// EXISTS reads without marking keys accessed; TOUCH marks them. Both count hits and misses.
fn exists(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = a
        .rest(1)
        .filter(|k| c.db.read_untouched(k, c.now).is_some())
        .count();
    c.out.int(n as i64);
    Ok(())
}

fn touch(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = a.rest(1).filter(|k| c.db.read(k, c.now).is_some()).count();
    c.out.int(n as i64);
    Ok(())
}

// ---- TYPE ----

fn type_cmd(c: &mut Ctx, a: &Args) -> CmdResult {
    let name =
        c.db.read_untouched(a.get(1), c.now)
            .map_or("none", |e| e.value.type_name());
    c.out.simple(name);
    Ok(())
}

// ---- EXPIRE family ----

/// Parses EXPIRE's options from argument 3 on, with Redis 7.0's errors.
fn parse_expire_flags(a: &Args) -> Result<ExpireFlags, Error> {
    let mut f = ExpireFlags::default();
    for opt in a.rest(3) {
        if opt.eq_ignore_ascii_case(b"NX") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"GT") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"LT") {
            f.lt = true;
        } else {
            return Err(Error::msg(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Error::msg(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Error::msg(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// The absolute expiry (Unix ms) an EXPIRE-family argument asks for, or Redis's overflow error.
fn expire_when(arg: &[u8], seconds: bool, base: i64, name: &'static str) -> Result<i64, Error> {
    let mut when = arg_i64(arg)?;
    if seconds {
        when = when.checked_mul(1000).ok_or(Error::ExpireTime(name))?;
    }
    // Only overflow is an error: negative times are allowed (and delete the key). `base` is
    // 0 or the current time, never negative.
    if when > i64::MAX - base {
        return Err(Error::ExpireTime(name));
    }
    Ok(when + base)
}

fn expire_generic(
    c: &mut Ctx,
    a: &Args,
    seconds: bool,
    relative: bool,
    name: &'static str,
) -> CmdResult {
    let flags = parse_expire_flags(a)?;
    let base = if relative { c.now } else { 0 };
    let when = expire_when(a.get(2), seconds, base, name)?;
    let key = a.get(1);
    let done = match c.db.expire_with(key, when, flags, c.now) {
        ExpireOutcome::Missing | ExpireOutcome::Rejected => 0,
        ExpireOutcome::Deleted => {
            c.notify(class::GENERIC, "del", key);
            c.propagate(&[b"DEL", key]);
            1
        }
        ExpireOutcome::Set => {
            c.notify(class::GENERIC, "expire", key);
            // As PEXPIREAT with the absolute time, the NX/XX/GT/LT flags as sent; a
            // PEXPIREAT keeps its own name's casing.
            if c.recording() {
                let ms = itoa::Buffer::new().format(when).to_owned();
                let name: &[u8] = if name == "pexpireat" {
                    a.get(0)
                } else {
                    b"PEXPIREAT"
                };
                let mut argv: Vec<&[u8]> = vec![name, key, ms.as_bytes()];
                argv.extend(a.rest(3));
                c.propagate(&argv);
            }
            1
        }
    };
    c.dirty(done as u64);
    c.out.int(done);
    Ok(())
}

fn expire(c: &mut Ctx, a: &Args) -> CmdResult {
    expire_generic(c, a, true, true, "expire")
}

fn pexpire(c: &mut Ctx, a: &Args) -> CmdResult {
    expire_generic(c, a, false, true, "pexpire")
}

fn expireat(c: &mut Ctx, a: &Args) -> CmdResult {
    expire_generic(c, a, true, false, "expireat")
}

fn pexpireat(c: &mut Ctx, a: &Args) -> CmdResult {
    expire_generic(c, a, false, false, "pexpireat")
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME: -2 for no key, -1 for no TTL.
fn ttl_generic(c: &mut Ctx, a: &Args, ms: bool, absolute: bool) -> CmdResult {
    if c.db.read_untouched(a.get(1), c.now).is_none() {
        c.out.int(-2);
        return Ok(());
    }
    let expire_at = c.db.expire_at(a.get(1));
    if expire_at == NO_EXPIRE {
        c.out.int(-1);
        return Ok(());
    }
    let t = if absolute {
        expire_at
    } else {
        expire_at - c.now
    }
    .max(0);
    // Seconds round to nearest; Redis's arithmetic does not wrap for expiries near i64::MAX.
    c.out.int(if ms {
        t
    } else {
        ((t as i128 + 500) / 1000) as i64
    });
    Ok(())
}

fn ttl(c: &mut Ctx, a: &Args) -> CmdResult {
    ttl_generic(c, a, false, false)
}

fn pttl(c: &mut Ctx, a: &Args) -> CmdResult {
    ttl_generic(c, a, true, false)
}

fn expiretime(c: &mut Ctx, a: &Args) -> CmdResult {
    ttl_generic(c, a, false, true)
}

fn pexpiretime(c: &mut Ctx, a: &Args) -> CmdResult {
    ttl_generic(c, a, true, true)
}

fn persist(c: &mut Ctx, a: &Args) -> CmdResult {
    let done = c.db.persist(a.get(1), c.now);
    if done {
        c.notify(class::GENERIC, "persist", a.get(1));
    }
    c.dirty(done as u64);
    c.out.int(done as i64);
    Ok(())
}

// ---- RENAME / RENAMENX / COPY ----

/// RENAME and RENAMENX when both keys are on this shard.
fn rename_generic(c: &mut Ctx, a: &Args, nx: bool) -> CmdResult {
    let (src, dst) = (a.get(1), a.get(2));
    if c.db.get(src, c.now).is_none() {
        return Err(Error::NoSuchKey);
    }
    if src == dst {
        // Nothing to do: RENAME says OK, RENAMENX that it renamed nothing.
        reply_renamed(c.out, nx, false);
        return Ok(());
    }
    // Looked up as a write even when replacing, so an expired target counts as expired.
    if c.db.get(dst, c.now).is_some() && nx {
        c.out.int(0);
        return Ok(());
    }
    if let Some((value, expire_at)) = c.db.take(src, c.now) {
        // A replaced target is deleted, and the key created anew (a `new` notification).
        c.db.remove(dst);
        c.db.set(dst, value, expire_at, c.now);
    }
    c.dirty(1);
    c.notify(class::GENERIC, "rename_from", src);
    c.notify(class::GENERIC, "rename_to", dst);
    reply_renamed(c.out, nx, true);
    Ok(())
}

/// RENAME answers OK; RENAMENX 1 if it renamed, 0 if not.
fn reply_renamed(out: &mut crate::resp::Reply, nx: bool, renamed: bool) {
    if nx {
        out.int(renamed as i64);
    } else {
        out.ok();
    }
}

fn rename(c: &mut Ctx, a: &Args) -> CmdResult {
    rename_generic(c, a, false)
}

fn renamenx(c: &mut Ctx, a: &Args) -> CmdResult {
    rename_generic(c, a, true)
}

/// A database number argument (`getIntFromObjectOrReply`, then `selectDb`'s range check);
/// `range_error` is the text for a number outside `int`, when Redis words it specially.
pub(crate) fn parse_db(
    databases: usize,
    arg: &[u8],
    range_error: Option<&'static str>,
) -> Result<usize, Error> {
    let n = arg_i64(arg).map_err(|e| match range_error {
        Some(text) => Error::msg(text),
        None => e,
    })?;
    if i32::try_from(n).is_err() {
        return Err(match range_error {
            Some(text) => Error::msg(text),
            None => Error::OutOfRange {
                min: i32::MIN as i64,
                max: i32::MAX as i64,
            },
        });
    }
    usize::try_from(n)
        .ok()
        .filter(|&db| db < databases)
        .ok_or(Error::DbIndexOutOfRange)
}

fn cluster_enabled(c: &Ctx) -> bool {
    c.shard.slot_map.borrow().enabled
}

/// COPY's options from argument 3 on: REPLACE, and the target database (`db`, the selected
/// one, unless given; below `databases`).
fn parse_copy_options(a: &Args, db: usize, databases: usize) -> Result<(bool, usize), Error> {
    let mut replace = false;
    let mut db = db;
    let mut j = 3;
    while j < a.len() {
        if a.is(j, "REPLACE") {
            replace = true;
        } else if a.is(j, "DB") && j + 1 < a.len() {
            db = parse_db(databases, a.get(j + 1), None)?;
            j += 1;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    Ok((replace, db))
}

fn copy(c: &mut Ctx, a: &Args) -> CmdResult {
    let (replace, to_db) = parse_copy_options(a, c.db.index(), c.db.databases())?;
    if cluster_enabled(c) && (c.db.index() != 0 || to_db != 0) {
        return Err(Error::msg(
            "Copying to another database is not allowed in cluster mode",
        ));
    }
    let (src, dst) = (a.get(1), a.get(2));
    if src == dst && to_db == c.db.index() {
        return Err(Error::SameObject);
    }
    let Some(e) = c.db.read(src, c.now) else {
        c.out.int(0);
        return Ok(());
    };
    let value = e.value.clone();
    // Read now: the lookup of `dst` below may expire keys and move TTL records.
    let expire_at = c.db.expire_at(src);
    let now = c.now;
    let mut target = c.db.at(to_db);
    if target.get(dst, now).is_some() && !replace {
        c.out.int(0);
        return Ok(());
    }
    // A replaced target is deleted, and the key created anew (a `new` notification).
    target.remove(dst);
    target.set(dst, value, expire_at, now);
    if to_db != c.db.index() {
        c.touches_all_dbs();
    }
    c.dirty(1);
    c.notify_in(to_db, class::GENERIC, "copy_to", dst);
    c.out.int(1);
    Ok(())
}

fn move_cmd(c: &mut Ctx, a: &Args) -> CmdResult {
    if cluster_enabled(c) {
        return Err(Error::msg("MOVE is not allowed in cluster mode"));
    }
    let to_db = parse_db(c.db.databases(), a.get(2), None)?;
    if to_db == c.db.index() {
        return Err(Error::SameObject);
    }
    let key = a.get(1);
    let now = c.now;
    if c.db.get(key, now).is_none() {
        c.out.int(0);
        return Ok(());
    }
    c.touches_all_dbs();
    if c.db.at(to_db).get(key, now).is_some() {
        c.out.int(0);
        return Ok(());
    }
    let Some((value, expire_at)) = c.db.take(key, now) else {
        c.out.int(0);
        return Ok(());
    };
    c.db.at(to_db).set(key, value, expire_at, now);
    c.dirty(1);
    c.notify(class::GENERIC, "move_from", key);
    c.notify_in(to_db, class::GENERIC, "move_to", key);
    c.out.int(1);
    Ok(())
}

fn swapdb(c: &mut Ctx, a: &Args) -> CmdResult {
    if cluster_enabled(c) {
        return Err(Error::msg("SWAPDB is not allowed in cluster mode"));
    }
    let databases = c.db.databases();
    let first = parse_db(databases, a.get(1), Some("invalid first DB index"))?;
    let second = parse_db(databases, a.get(2), Some("invalid second DB index"))?;
    if first != second {
        let now = c.now;
        for data in c.db.parts().each() {
            let (x, y) = data.two_dbs(first, second);
            // Watchers of each database see it emptied and replaced by the other, then the
            // keys change places; watchers and blocked clients stay with the numbers.
            x.touch_all_watched(Some(y), now);
            y.touch_all_watched(Some(x), now);
            x.swap_keys(y);
            x.mark_blocked_ready();
            y.mark_blocked_ready();
        }
    }
    c.touches_all_dbs();
    c.dirty(1);
    c.out.ok();
    Ok(())
}

// ---- RANDOMKEY / KEYS / SCAN ----

/// Where cursor `pos` points in the shard-major slot enumeration (all of shard 0's slots in
/// increasing order, then shard 1's, ...): (shard, its table index, the shard's first position).
fn locate(pos: u64, nshards: usize) -> Option<(usize, usize, u64)> {
    let mut base = 0u64;
    for shard in 0..nshards {
        let owned = db::slots_owned(shard, nshards) as u64;
        if pos < base + owned {
            return Some((shard, (pos - base) as usize, base));
        }
        base += owned;
    }
    None
}

/// The shard a SCAN cursor points into (a malformed or finished cursor: the first; the
/// handler answers it).
fn scan_shard(a: &Args, nshards: usize) -> usize {
    parse_cursor(a.get(1))
        .ok()
        .and_then(|c| locate(c, nshards))
        .map_or(0, |(shard, _, _)| shard)
}

/// RANDOMKEY: a shard drawn in proportion to its size, then a uniform key of it, so every key
/// is equally likely. A draw fails only if the keys drawn had all expired (and are now
/// deleted), so retrying makes progress.
fn randomkey(c: &mut Ctx, _a: &Args) -> CmdResult {
    let now = c.now;
    for _ in 0..1000 {
        let total = c.db.len();
        if total == 0 {
            break;
        }
        let mut pick = (c.db.random_u64() % total as u64) as usize;
        let Some(ks) = c.db.each().find(|ks| {
            if pick < ks.len() {
                true
            } else {
                pick -= ks.len();
                false
            }
        }) else {
            break;
        };
        if let Some(key) = ks.random_key(now) {
            c.out.bulk(&key);
            return Ok(());
        }
    }
    c.out.null();
    Ok(())
}

fn keys(c: &mut Ctx, a: &Args) -> CmdResult {
    let pattern = a.get(1);
    let now = c.now;
    let parts: Vec<Vec<Vec<u8>>> =
        c.db.each_ref()
            .map(|ks| ks.keys_matching(pattern, now))
            .collect();
    c.out.array(parts.iter().map(Vec::len).sum());
    for k in parts.iter().flatten() {
        c.out.bulk(k);
    }
    Ok(())
}

fn scan(c: &mut Ctx, a: &Args) -> CmdResult {
    let cursor = parse_cursor(a.get(1))?;
    let opts = parse_scan_opts(a, 2, true)?;
    let nshards = c.shard.nshards;
    let (keys, next) = match locate(cursor, nshards) {
        None => (Vec::new(), 0),
        Some((shard, start, base)) => {
            let filter = ScanFilter {
                pattern: opts.pattern,
                type_name: opts.type_name,
            };
            let now = c.now;
            let ks =
                c.db.on_shard(shard)
                    .expect("SCAN runs on the shard its cursor names");
            let (keys, resume) = ks.scan_slots(start, opts.count, filter, now);
            let next = match resume {
                Some(t) => base + t as u64,
                None if shard + 1 < nshards => base + db::slots_owned(shard, nshards) as u64,
                None => 0,
            };
            (keys, next)
        }
    };
    c.out.array(2);
    c.out.bulk_int(next as i64);
    c.out.array(keys.len());
    for k in &keys {
        c.out.bulk(k);
    }
    Ok(())
}

// ---- OBJECT ----

/// Whether an LFU `maxmemory-policy` is configured (then FREQ works and IDLETIME does not).
fn lfu_policy(c: &Ctx) -> bool {
    c.shard.settings.borrow().lfu_policy
}

fn object_encoding(c: &mut Ctx, a: &Args) -> CmdResult {
    match c.db.read_quietly(a.get(2), c.now) {
        Some(e) => c.out.bulk(e.value.encoding().as_bytes()),
        None => c.out.null(),
    }
    Ok(())
}

/// Redis shares the objects of the integers 0..9999 (`OBJ_SHARED_INTEGERS`) and reports their
/// refcount as `INT_MAX`; every other value has one reference.
pub(crate) fn refcount(v: &Value) -> i64 {
    match v {
        Value::Str(StrValue::Int(n)) if (0..10_000).contains(n) => i32::MAX as i64,
        _ => 1,
    }
}

fn object_refcount(c: &mut Ctx, a: &Args) -> CmdResult {
    match c.db.read_quietly(a.get(2), c.now) {
        Some(e) => c.out.int(refcount(&e.value)),
        None => c.out.null(),
    }
    Ok(())
}

fn object_idletime(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(lru) = c.db.read_quietly(a.get(2), c.now).map(|e| e.lru) else {
        c.out.null();
        return Ok(());
    };
    if lfu_policy(c) {
        return Err(Error::msg("An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    c.out.int(db::idle_seconds(lru, c.now) as i64);
    Ok(())
}

fn object_freq(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(lru) = c.db.read_quietly(a.get(2), c.now).map(|e| e.lru) else {
        c.out.null();
        return Ok(());
    };
    if !lfu_policy(c) {
        return Err(Error::msg("An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    c.out.int(db::evict::lfu_counter(lru, c.now) as i64);
    Ok(())
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object_help(conn: &mut Conn, _a: &Args) -> CmdResult {
    conn.out.array(OBJECT_HELP.len());
    for line in OBJECT_HELP {
        conn.out.simple(line);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    fn flags(words: &[&str]) -> Result<ExpireFlags, String> {
        with_args(words, parse_expire_flags).map_err(|e| e.render().into_owned())
    }

    #[test]
    fn expire_options_errors_match_redis() {
        let f = flags(&["expire", "k", "10", "xx", "GT"]).unwrap_or_default();
        assert!(f.xx && f.gt && !f.nx && !f.lt);
        assert_eq!(
            flags(&["expire", "k", "10", "nx", "xx"]),
            Err("ERR NX and XX, GT or LT options at the same time are not compatible".into())
        );
        assert_eq!(
            flags(&["expire", "k", "10", "nx", "lt"]),
            Err("ERR NX and XX, GT or LT options at the same time are not compatible".into())
        );
        assert_eq!(
            flags(&["expire", "k", "10", "gt", "lt"]),
            Err("ERR GT and LT options at the same time are not compatible".into())
        );
        // An unknown option is reported before any conflict.
        assert_eq!(
            flags(&["expire", "k", "10", "nx", "xx", "foo"]),
            Err("ERR Unsupported option foo".into())
        );
    }

    #[test]
    fn expire_time_overflow() {
        let err = Err(Error::ExpireTime("expire"));
        assert_eq!(expire_when(b"10", true, 1000, "expire"), Ok(11_000));
        assert_eq!(expire_when(b"-10", true, 1000, "expire"), Ok(-9_000));
        assert_eq!(expire_when(b"9223372036854776", true, 0, "expire"), err);
        assert_eq!(
            expire_when(b"9223372036854775", true, 0, "expire"),
            Ok(9_223_372_036_854_775_000)
        );
        assert_eq!(expire_when(b"-9223372036854776", true, 0, "expire"), err);
        assert_eq!(expire_when(b"9223372036854775807", false, 1, "expire"), err);
        assert_eq!(
            expire_when(b"-9223372036854775808", false, 5, "expire"),
            Ok(i64::MIN + 5)
        );
        assert_eq!(
            expire_when(b"1x", false, 0, "expire"),
            Err(Error::NotInteger)
        );
    }

    #[test]
    fn copy_options() {
        let parse = |w: &[&str]| with_args(w, |a| parse_copy_options(a, 3, 16));
        assert_eq!(parse(&["copy", "a", "b"]), Ok((false, 3)));
        assert_eq!(
            parse(&["copy", "a", "b", "db", "0", "REPLACE"]),
            Ok((true, 0))
        );
        assert_eq!(parse(&["copy", "a", "b", "db", "15"]), Ok((false, 15)));
        assert_eq!(
            parse(&["copy", "a", "b", "db", "16"]),
            Err(Error::DbIndexOutOfRange)
        );
        assert_eq!(
            parse(&["copy", "a", "b", "db", "-1"]),
            Err(Error::DbIndexOutOfRange)
        );
        assert_eq!(
            parse(&["copy", "a", "b", "db", "4294967296"]).map_err(|e| e.render()),
            Err("ERR value is out of range, value must between -2147483648 and 2147483647".into())
        );
        assert_eq!(
            parse(&["copy", "a", "b", "db", "x"]),
            Err(Error::NotInteger)
        );
        assert_eq!(parse(&["copy", "a", "b", "db"]), Err(Error::Syntax));
        assert_eq!(parse(&["copy", "a", "b", "foo"]), Err(Error::Syntax));
    }

    #[test]
    fn cursor_positions_are_shard_major() {
        assert_eq!(locate(0, 1), Some((0, 0, 0)));
        assert_eq!(locate(16383, 1), Some((0, 16383, 0)));
        assert_eq!(locate(16384, 1), None);
        // 3 shards own 5462, 5461, 5461 slots.
        assert_eq!(locate(5461, 3), Some((0, 5461, 0)));
        assert_eq!(locate(5462, 3), Some((1, 0, 5462)));
        assert_eq!(locate(16383, 3), Some((2, 5460, 10923)));
        assert_eq!(locate(u64::MAX, 3), None);
    }

    #[test]
    fn refcount_of_shared_integers() {
        assert_eq!(refcount(&Value::Str(StrValue::Int(100))), 2_147_483_647);
        assert_eq!(refcount(&Value::Str(StrValue::Int(10_000))), 1);
        assert_eq!(refcount(&Value::Str(StrValue::Int(-1))), 1);
        assert_eq!(refcount(&Value::Str(StrValue::from_bytes(b"abc"))), 1);
    }
}
