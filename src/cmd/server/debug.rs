//! DEBUG HELP/SLEEP/OBJECT/SET-ACTIVE-EXPIRE/JOURNAL/RELOAD, gated by `enable-debug-command` as in
//! Redis 7.
//!
//! DEBUG SLEEP suspends only the calling connection (a timer on its executor): Redis blocks
//! the whole server, but here other connections, on this shard and the others, go on.
//! DEBUG JOURNAL (ours) shows what the server propagates: ON starts recording every
//! executor's journal, READ returns what was recorded since, merged in stamp order and
//! written as the replication stream carries it, OFF stops.

use std::time::Duration;

use crate::cmd::call::on_shard_data;
use crate::cmd::keys::refcount;
use crate::cmd::BoxFuture;
use crate::db::{lru_clock, Entry};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::slot::key_slot;
use crate::types::Value;
use crate::util::num::parse_i64_strict;
use crate::util::time::now_ms;

use super::{help_reply, is_local};

/// The longest DEBUG SLEEP honoured (about 100 years), so the timer's deadline cannot overflow.
const MAX_SLEEP_SECS: f64 = 3.0e9;

pub fn debug<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        allowed(c)?;
        let sub = a.get(1);
        if a.len() == 2 && sub.eq_ignore_ascii_case(b"help") {
            help(c, &a);
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"sleep") {
            let secs = strtod_prefix(a.get(2));
            if secs > 0.0 {
                glommio::timer::sleep(Duration::from_secs_f64(secs.min(MAX_SLEEP_SECS))).await;
            }
            c.out.ok();
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"object") {
            let line = object(c, a.get(2).to_vec()).await?;
            c.out.simple(&line);
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"set-active-expire") {
            let on = parse_i64_strict(a.get(2)).ok_or(Error::NotInteger)? != 0;
            c.shard
                .shared
                .active_expire
                .store(on, std::sync::atomic::Ordering::Relaxed);
            c.out.ok();
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"journal") {
            journal(c, a.get(2)).await?;
        } else if sub.eq_ignore_ascii_case(b"reload") {
            let (mut save, mut flush) = (true, true);
            for opt in a.rest(2) {
                if opt.eq_ignore_ascii_case(b"nosave") {
                    save = false;
                } else if opt.eq_ignore_ascii_case(b"noflush") {
                    flush = false;
                } else if !opt.eq_ignore_ascii_case(b"merge") {
                    return Err(Error::msg(
                        "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                    ));
                }
            }
            if c.held.is_some() {
                // The transaction holds the data the save and the load need.
                return Err(Error::msg(
                    "DEBUG RELOAD cannot run inside MULTI in redcell",
                ));
            }
            crate::persist::debug_reload(&c.shard, save, flush).await?;
            c.out.ok();
        } else {
            return Err(Error::subcommand_syntax(sub, "DEBUG"));
        }
        Ok(())
    })
}

/// DEBUG JOURNAL ON|OFF|READ (see the module doc).
async fn journal(c: &mut Conn, what: &[u8]) -> CmdResult {
    let shared = c.shard.shared.clone();
    // The AOF writer drains the same journals.
    if shared.config().get_bool("appendonly") {
        return Err(Error::msg(
            "DEBUG JOURNAL is not available while appendonly is yes",
        ));
    }
    let n = c.shard.nshards;
    let replicating = c
        .shard
        .call(n, |_| crate::repl::master::wants_stream())
        .await;
    if replicating {
        return Err(Error::msg(
            "DEBUG JOURNAL is not available while the replication backlog exists",
        ));
    }
    if what.eq_ignore_ascii_case(b"on") || what.eq_ignore_ascii_case(b"off") {
        let on = what.eq_ignore_ascii_case(b"on");
        for to in 0..=c.shard.nshards {
            c.shard
                .call(to, move |s| {
                    let mut j = s.journal.borrow_mut();
                    s.recording.set(on);
                    j.clear();
                })
                .await;
        }
        *shared
            .journal_view_db
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        c.out.ok();
        return Ok(());
    }
    if !what.eq_ignore_ascii_case(b"read") {
        return Err(Error::Syntax);
    }
    let mut entries = Vec::new();
    for to in 0..=c.shard.nshards {
        entries.extend(c.shard.call(to, |s| s.journal.borrow_mut().drain()).await);
    }
    entries.sort_by_key(|e| e.stamp);
    let mut out = Vec::new();
    let mut db = shared
        .journal_view_db
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    crate::shard::journal::render(&entries, &mut db, &mut out);
    drop(db);
    c.out.bulk(&out);
    Ok(())
}

/// Redis's check for protected commands: allowed when `enable-debug-command` is `yes`, or
/// `local` and the client is on loopback.
fn allowed(c: &Conn) -> CmdResult {
    let ok = c
        .shard
        .shared
        .config()
        .allows_protected("enable-debug-command", is_local(c));
    if ok {
        return Ok(());
    }
    Err(Error::msg(
        "DEBUG command not allowed. If the enable-debug-command option is set to \"local\", \
         you can run it from a local connection, otherwise you need to set this option in the \
         configuration file, and then restart the server.",
    ))
}

fn help(c: &mut Conn, a: &Args) {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "OBJECT <key>",
            "    Show low level info about the `key` and associated value.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not accessed.",
            "RELOAD [option ...]",
            "    Save the RDB on disk and reload it back to memory. Options: NOSAVE (load the",
            "    existing file), NOFLUSH (load into the dataset as it is), MERGE (accepted).",
            "JOURNAL <ON|OFF|READ>",
            "    Record what commands propagate; READ returns it as the replication stream would.",
        ],
    );
}

/// The number `strtod` reads from the start of `arg` (0 when there is none), as DEBUG SLEEP
/// parses its argument; NaN counts as 0.
pub fn strtod_prefix(arg: &[u8]) -> f64 {
    // A longer prefix cannot change a sleep capped at MAX_SLEEP_SECS; bounding it keeps the
    // prefix search cheap for huge arguments.
    let text = String::from_utf8_lossy(&arg[..arg.len().min(400)]);
    let text = text.trim_start();
    let mut best = 0.0;
    for end in (1..=text.len()).rev() {
        if !text.is_char_boundary(end) {
            continue;
        }
        if let Ok(v) = text[..end].parse::<f64>() {
            best = v;
            break;
        }
    }
    if best.is_nan() {
        0.0
    } else {
        best
    }
}

/// DEBUG OBJECT key, run on the key's shard. Like Redis it looks the key up without expiring
/// it or touching its LRU. `serializedlength` is the RDB size without LZF compression
/// (Redis compresses strings over 20 bytes, so it may report less for those).
async fn object(c: &mut Conn, key: Vec<u8>) -> Result<String, Error> {
    let owner = c.shard.owner_of(key_slot(&key));
    let db = c.db;
    on_shard_data(c, owner, move |s, data, _| {
        let entry = data
            .db(db)
            .slot_table(key_slot(&key))
            .and_then(|t| t.get(key.as_slice()))
            .ok_or(Error::NoSuchKey)?;
        Ok(describe(
            entry,
            now_ms(),
            s.settings.borrow().limits.list_fill.value(),
        ))
    })
    .await
}

fn describe(entry: &Entry, now: i64, list_fill: i32) -> String {
    let idle = (lru_clock(now).wrapping_sub(entry.lru)) & 0x00ff_ffff;
    let mut text = format!(
        "Value at:{:p} refcount:{} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
        &entry.value,
        refcount(&entry.value),
        entry.value.encoding(),
        serialized_len(&entry.value),
        entry.lru,
        idle
    );
    if let Value::List(l) = &entry.value {
        // Redis 7.0's quicklist details. Our lists keep no per-list fill, so the current
        // setting is shown; nodes are never compressed (list-compress-depth is ignored); the
        // size is our packed bytes, whose entry encoding differs from a listpack's.
        let nodes = l.node_count().max(1);
        text.push_str(&format!(
            " ql_nodes:{} ql_avg_node:{:.2} ql_listpack_max:{} ql_compressed:0 ql_uncompressed_size:{}",
            l.node_count(),
            l.len() as f64 / nodes as f64,
            list_fill,
            l.packed_bytes()
        ));
    }
    text
}

/// RDB length header size for `len`.
fn rdb_len_size(len: usize) -> usize {
    match len {
        0..=63 => 1,
        64..=16383 => 2,
        _ if len <= u32::MAX as usize => 5,
        _ => 9,
    }
}

/// RDB encoding of an integer-looking string: 1 type byte plus 1, 2 or 4 bytes.
fn rdb_int_size(v: i64) -> Option<usize> {
    if i8::try_from(v).is_ok() {
        Some(2)
    } else if i16::try_from(v).is_ok() {
        Some(3)
    } else if i32::try_from(v).is_ok() {
        Some(5)
    } else {
        None
    }
}

/// RDB size of a string: the integer encoding when Redis would use it (it tries strings of up
/// to 11 bytes), else a length header and the bytes.
fn rdb_string_size(b: &[u8]) -> usize {
    if b.len() <= 11 {
        if let Some(size) = parse_i64_strict(b).and_then(rdb_int_size) {
            return size;
        }
    }
    rdb_len_size(b.len()) + b.len()
}

/// The RDB-serialised size of a value. Exact for strings; for hashes, sets and lists an estimate: the
/// size of their hashtable encoding (an element count, then every field, value or member as an
/// RDB string, i.e. its bytes plus a 1-9 byte header): what Redis reports for hashtable ones.
/// Redis writes listpack and intset ones as one blob of their in-memory bytes, so it reports
/// more for those (29 rather than 17 for a three-pair listpack hash).
pub fn serialized_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.with_bytes(rdb_string_size),
        Value::Hash(h) => {
            rdb_len_size(h.len())
                + h.iter()
                    .map(|(f, v)| rdb_string_size(f) + rdb_string_size(v))
                    .sum::<usize>()
        }
        Value::Set(s) => {
            rdb_len_size(s.len())
                + s.iter()
                    .map(|m| m.with_bytes(rdb_string_size))
                    .sum::<usize>()
        }
        Value::List(l) => rdb_len_size(l.len()) + l.iter().map(rdb_string_size).sum::<usize>(),
        // An estimate: the packed nodes' bytes plus the stream's counters.
        Value::Stream(s) => s.bytes(),
        // RDB_TYPE_ZSET_2: each member as a string, each score as 8 binary bytes.
        Value::ZSet(z) => {
            rdb_len_size(z.len()) + z.iter().map(|(m, _)| rdb_string_size(m) + 8).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::hash::HashLimits;
    use crate::types::set::SetLimits;
    use crate::types::{Hash, Set, StrValue};

    #[test]
    fn sleep_argument_parses_like_strtod() {
        assert_eq!(strtod_prefix(b"0.5"), 0.5);
        assert_eq!(strtod_prefix(b"2"), 2.0);
        assert_eq!(strtod_prefix(b"1.5abc"), 1.5);
        assert_eq!(strtod_prefix(b"abc"), 0.0);
        assert_eq!(strtod_prefix(b""), 0.0);
        assert_eq!(strtod_prefix(b"nan"), 0.0);
        assert_eq!(strtod_prefix(b"-3"), -3.0);
    }

    #[test]
    fn serialized_lengths_follow_rdb() {
        let s = |b: &[u8]| serialized_len(&Value::Str(StrValue::from_bytes(b)));
        assert_eq!(s(b"5"), 2);
        assert_eq!(s(b"1000"), 3);
        assert_eq!(s(b"100000"), 5);
        assert_eq!(s(b"10000000000"), 12);
        assert_eq!(s(b"bar"), 4);
        assert_eq!(s(&[b'x'; 100]), 102);
        assert_eq!(s(b"-2147483648"), 5);
        assert_eq!(s(b"007"), 4);
    }

    #[test]
    fn hash_and_set_lengths_are_estimated() {
        let lim = HashLimits {
            max_entries: 128,
            max_value: 64,
        };
        let mut h = Hash::new();
        h.set(b"field", b"value", lim);
        h.set(b"n", b"12", lim);
        // Count header, then "field" (1+5), "value" (1+5), "n" (1+1), 12 as an int (2).
        assert_eq!(serialized_len(&Value::Hash(h)), 1 + 6 + 6 + 2 + 2);
        let lim = SetLimits {
            max_intset: 512,
            max_listpack: 128,
            max_value: 64,
        };
        let mut s = Set::new();
        s.add(b"7", lim);
        s.add(b"100000", lim);
        assert_eq!(serialized_len(&Value::Set(s.clone())), 1 + 2 + 5);
        s.add(b"member", lim);
        assert_eq!(serialized_len(&Value::Set(s)), 1 + 2 + 5 + 7);
    }
}
