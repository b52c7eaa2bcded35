//! DUMP, RESTORE and RESTORE-ASKING: values as Redis 7.0 DUMP payloads (see `crate::rdb`).

use crate::cmd::{flag::*, CommandSpec, Ctx};
use crate::config::keyspace_events as class;
use crate::db::{self, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::rdb::{self};
use crate::resp::Args;
use crate::util::num::arg_i64;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("dump", 2, READONLY, dump)
        .acl(&["@keyspace"])
        .doc(
            "generic",
            "2.6.0",
            "Return a serialized version of the value stored at the specified key.",
        ),
    CommandSpec::keyed("restore", -4, WRITE | DENYOOM, restore)
        .acl(&["@keyspace", "@dangerous"])
        .doc(
            "generic",
            "2.6.0",
            "Create a key using the provided serialized value, previously obtained using DUMP.",
        ),
    // MIGRATE's target side in cluster mode: the ASKING flag lets it write to a slot this
    // node is importing.
    CommandSpec::keyed("restore-asking", -4, WRITE | DENYOOM | ASKING, restore)
        .acl(&["@keyspace", "@dangerous"])
        .doc(
            "server",
            "3.0.0",
            "An internal command for migrating keys in a cluster",
        ),
];

fn dump(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(e) = c.db.read(a.get(1), c.now) else {
        c.out.null();
        return Ok(());
    };
    if !rdb::can_dump(&e.value) {
        return Err(Error::msg("DUMP of this type is not supported yet"));
    }
    let payload = rdb::dump_payload(&e.value);
    c.out.bulk(&payload);
    Ok(())
}

/// RESTORE's options, from argument 4 on.
#[derive(Debug, Default, PartialEq)]
struct RestoreOpts {
    replace: bool,
    absttl: bool,
    idle: Option<i64>,
    freq: Option<i64>,
}

/// Parses the options as `restoreCommand` does: left to right, IDLETIME and FREQ exclusive
/// (the second one is a syntax error), each value checked as soon as it is read.
fn parse_opts(a: &Args) -> Result<RestoreOpts, Error> {
    let mut o = RestoreOpts::default();
    let mut j = 4;
    while j < a.len() {
        let more = j + 1 < a.len();
        if a.is(j, "REPLACE") {
            o.replace = true;
        } else if a.is(j, "ABSTTL") {
            o.absttl = true;
        } else if a.is(j, "IDLETIME") && more && o.freq.is_none() {
            let v = arg_i64(a.get(j + 1))?;
            if v < 0 {
                return Err(Error::msg("Invalid IDLETIME value, must be >= 0"));
            }
            o.idle = Some(v);
            j += 1;
        } else if a.is(j, "FREQ") && more && o.idle.is_none() {
            let v = arg_i64(a.get(j + 1))?;
            if !(0..=255).contains(&v) {
                return Err(Error::msg("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            o.freq = Some(v);
            j += 1;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

fn restore(c: &mut Ctx, a: &Args) -> CmdResult {
    let opts = parse_opts(a)?;
    let key = a.get(1);
    if !opts.replace && c.db.get(key, c.now).is_some() {
        return Err(Error::Coded(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let ttl = arg_i64(a.get(2))?;
    if ttl < 0 {
        return Err(Error::msg("Invalid TTL value, must be >= 0"));
    }
    let limits = c.limits();
    // Decoded whole before the keyspace changes: a bad payload leaves everything as it was.
    let value = rdb::restore_payload(a.get(3), &limits)?;
    let deleted = opts.replace && c.db.delete(key, c.now);
    // Redis adds in 64-bit arithmetic that wraps on x86; a wrapped time is in the past.
    let expire_at = match ttl {
        0 => NO_EXPIRE,
        t if opts.absttl => t,
        t => t.wrapping_add(c.now),
    };
    if expire_at != NO_EXPIRE && expire_at <= c.now {
        // Already expired: not created (an old value was deleted above, which propagates
        // as a DEL), still OK.
        if deleted {
            c.dirty(1);
            c.notify(class::GENERIC, "del", key);
            c.propagate(&[b"DEL", key]);
        } else {
            c.propagate_nothing();
        }
        c.out.ok();
        return Ok(());
    }
    c.db.set(key, value, expire_at, c.now);
    c.dirty(1);
    c.notify(class::GENERIC, "restore", key);
    if expire_at != NO_EXPIRE && !opts.absttl && c.recording() {
        // The TTL goes out as an absolute time, with ABSTTL added at the end.
        let ms = itoa::Buffer::new().format(expire_at).to_owned();
        let mut argv: Vec<&[u8]> = a.iter().collect();
        argv[2] = ms.as_bytes();
        argv.push(b"ABSTTL");
        c.propagate(&argv);
    }
    let lfu = c.shard.settings.borrow().lfu_policy;
    if let Some(e) = c.db.peek(key, c.now) {
        if let Some(lru) = access_stamp(&opts, lfu, c.now) {
            e.lru = lru;
        }
    }
    c.out.ok();
    Ok(())
}

/// The `lru` stamp IDLETIME or FREQ asks for (`objectSetLRUOrLFU`), if any applies under the
/// current policy. IDLETIME counts back from the LRU clock, wrapping as Redis's 24-bit field
/// does; FREQ sets the LFU counter.
fn access_stamp(o: &RestoreOpts, lfu_policy: bool, now: i64) -> Option<u32> {
    let clock = db::lru_clock(now) as i64;
    const CLOCK_MAX: i64 = 0x00ff_ffff;
    if lfu_policy {
        return Some(db::evict::lfu_stamp(o.freq? as u8, now));
    }
    let idle = o.idle?;
    let mut abs = clock.wrapping_sub(idle);
    if abs < 0 {
        abs = abs.wrapping_add(CLOCK_MAX);
    }
    Some(abs as u32 & CLOCK_MAX as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    #[test]
    fn options_parse_as_redis() {
        let parse = |w: &[&str]| with_args(w, parse_opts).map_err(|e| e.render().into_owned());
        let base = ["restore", "k", "0", "p"];
        let with = |extra: &[&'static str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            parse(&v)
        };
        assert_eq!(with(&[]), Ok(RestoreOpts::default()));
        assert_eq!(
            with(&["replace", "ABSTTL", "idletime", "10"]),
            Ok(RestoreOpts {
                replace: true,
                absttl: true,
                idle: Some(10),
                freq: None
            })
        );
        assert_eq!(with(&["freq", "255"]).map(|o| o.freq), Ok(Some(255)));
        let syntax = Err("ERR syntax error".to_string());
        assert_eq!(with(&["idletime"]), syntax);
        assert_eq!(with(&["idletime", "1", "freq", "1"]), syntax);
        assert_eq!(with(&["freq", "1", "idletime", "1"]), syntax);
        assert_eq!(with(&["nosuch"]), syntax);
        assert_eq!(
            with(&["idletime", "-1"]),
            Err("ERR Invalid IDLETIME value, must be >= 0".to_string())
        );
        assert_eq!(
            with(&["freq", "256"]),
            Err("ERR Invalid FREQ value, must be >= 0 and <= 255".to_string())
        );
        assert_eq!(
            with(&["freq", "x"]),
            Err("ERR value is not an integer or out of range".to_string())
        );
    }

    #[test]
    fn access_stamps() {
        let now = 1_000_000_000;
        let clock = db::lru_clock(now);
        let idle = |n| RestoreOpts {
            idle: Some(n),
            ..Default::default()
        };
        assert_eq!(access_stamp(&idle(0), false, now), Some(clock));
        let s = access_stamp(&idle(100), false, now).unwrap();
        assert_eq!(db::idle_seconds(s, now), 100);
        assert_eq!(access_stamp(&idle(100), true, now), None);
        let freq = RestoreOpts {
            freq: Some(3),
            ..Default::default()
        };
        let s = access_stamp(&freq, true, now).unwrap();
        assert_eq!(db::evict::lfu_counter(s, now), 3);
        assert_eq!(access_stamp(&freq, false, now), None);
    }
}
