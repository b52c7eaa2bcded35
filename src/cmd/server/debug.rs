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

/// DEBUG STRINGMATCH-TEST: ten million random patterns against random strings (bytes below
/// 128, shorter than 32) through the glob matcher, which must not panic (Redis's
/// `stringmatchlen_fuzz_test`, same sizes and counts).
fn stringmatch_fuzz() {
    let mut rng = crate::types::set::Rng::new(crate::util::time::now_us() as u64);
    let text = |rng: &mut crate::types::set::Rng| -> Vec<u8> {
        let len = rng.below(32);
        (0..len).map(|_| rng.below(128) as u8).collect()
    };
    let mut matched = 0u64;
    for _ in 0..10_000_000 {
        let (pattern, s) = (text(&mut rng), text(&mut rng));
        matched += crate::util::glob::glob_match(&pattern, &s) as u64;
    }
    std::hint::black_box(matched);
}

/// DEBUG LISTPACK's printout: the value's entries, one per line.
fn listpack_repr(value: &Value) -> String {
    let mut lines = vec![format!(
        "{{value type {}, listpack encoded}}",
        value.type_name()
    )];
    let mut entry = |parts: &[&[u8]]| {
        let shown: Vec<String> = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        lines.push(format!("  {}", shown.join(" ")));
    };
    match value {
        Value::Hash(h) => h.iter().for_each(|(f, v)| entry(&[f, v])),
        Value::ZSet(z) => z
            .iter()
            .for_each(|(m, s)| entry(&[m, s.to_string().as_bytes()])),
        Value::Set(s) => s.iter().for_each(|m| m.with_bytes(|b| entry(&[b]))),
        _ => {}
    }
    lines.join("\n")
}

// ---- DEBUG DIGEST / DIGEST-VALUE: Redis's dataset digest (debug.c), the same bytes ----

type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `xorDigest`: order-free accumulation.
fn xor_digest(d: &mut Digest, data: &[u8]) {
    for (x, h) in d.iter_mut().zip(sha1(data)) {
        *x ^= h;
    }
}

/// `mixDigest`: ordered accumulation, `d = SHA1(d xor SHA1(data))`.
fn mix_digest(d: &mut Digest, data: &[u8]) {
    xor_digest(d, data);
    *d = sha1(&d[..]);
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `xorObjectDigest`: a value (with its type, and whether it has a TTL) into `d`.
fn value_digest(d: &mut Digest, value: &Value, volatile: bool) {
    let type_code: u32 = match value {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    };
    mix_digest(d, &type_code.to_be_bytes());
    match value {
        Value::Str(s) => s.with_bytes(|b| mix_digest(d, b)),
        Value::List(l) => l.iter().for_each(|e| mix_digest(d, e)),
        Value::Set(s) => s.iter().for_each(|m| m.with_bytes(|b| xor_digest(d, b))),
        Value::ZSet(z) => {
            for (m, score) in z.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, m);
                let mut text = Vec::with_capacity(24);
                crate::util::num::format_g17(score, &mut text);
                mix_digest(&mut e, &text);
                xor_digest(d, &e);
            }
        }
        Value::Hash(h) => {
            for (f, v) in h.iter() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, f);
                mix_digest(&mut e, v);
                xor_digest(d, &e);
            }
        }
        Value::Stream(st) => {
            use crate::types::stream::StreamId;
            st.range(StreamId::MIN, StreamId::MAX, false, |id, fields| {
                mix_digest(d, format!("{}.{}", id.ms, id.seq).as_bytes());
                for f in fields {
                    mix_digest(d, f);
                }
                true
            });
        }
    }
    if volatile {
        xor_digest(d, b"!!expire!!");
    }
}

/// DEBUG DIGEST: per database (in order, non-empty ones) the id mixed in, then the SHA1 of
/// every key's digest xored in; the shards' parts of one database combine by xor.
async fn dataset_digest(c: &mut Conn) -> Digest {
    let now = c.now;
    let parts: Vec<Vec<Option<Digest>>> = crate::cmd::call::each_shard_data(c, move |data| {
        data.dbs()
            .iter()
            .map(|ks| {
                let mut acc: Option<Digest> = None;
                ks.for_each_key(now, |k, e| {
                    let mut d = [0u8; 20];
                    mix_digest(&mut d, k);
                    value_digest(&mut d, &e.value, e.is_volatile());
                    xor_digest(acc.get_or_insert([0u8; 20]), &d);
                });
                acc
            })
            .collect()
    })
    .await;
    let dbs = parts.iter().map(Vec::len).max().unwrap_or(0);
    let mut total = [0u8; 20];
    for j in 0..dbs {
        let of_db: Vec<&Digest> = parts.iter().filter_map(|p| p.get(j)?.as_ref()).collect();
        if of_db.is_empty() {
            continue;
        }
        mix_digest(&mut total, &(j as u32).to_be_bytes());
        for d in of_db {
            for (x, y) in total.iter_mut().zip(d) {
                *x ^= y;
            }
        }
    }
    total
}

/// DEBUG DIGEST-VALUE key...: each value's digest without its key (zeros for a missing key;
/// a logically expired key still counts, as Redis reads its dictionary directly).
async fn value_digests(c: &mut Conn, a: &Args<'_>) {
    let keys: Vec<Vec<u8>> = a.rest(2).map(<[u8]>::to_vec).collect();
    c.out.array(keys.len());
    let db = c.db;
    for key in keys {
        let owner = c.shard.owner_of_key(&key);
        let d = on_shard_data(c, owner, move |_, data, _| {
            let mut d = [0u8; 20];
            if let Some(e) = data.db(db).peek_raw(&key) {
                value_digest(&mut d, &e.value, e.is_volatile());
            }
            d
        })
        .await;
        c.out.simple(&hex(&d));
    }
}

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
        } else if a.len() == 2 && sub.eq_ignore_ascii_case(b"change-repl-id") {
            crate::repl::master::change_replid(&c.shard).await;
            c.out.ok();
        } else if a.len() == 2 && sub.eq_ignore_ascii_case(b"stringmatch-test") {
            stringmatch_fuzz();
            c.out.simple("Apparently Redis did not crash: test passed");
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"listpack") {
            let key = a.get(2).to_vec();
            let owner = c.shard.owner_of_key(&key);
            let db = c.db;
            let now = c.now;
            let text = on_shard_data(c, owner, move |_, data, _| {
                let ks = data.db_ref(db);
                let e = ks.peek_raw(&key)?;
                if e.is_volatile() && ks.peek_expire(&key).is_some_and(|t| t <= now) {
                    return None;
                }
                Some((e.value.encoding() == "listpack").then(|| listpack_repr(&e.value)))
            })
            .await;
            match text {
                None => return Err(Error::msg("no such key")),
                Some(None) => return Err(Error::msg("Not a listpack encoded object.")),
                Some(Some(text)) => {
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stdout(), "{text}");
                    c.out.simple("Listpack structure printed on stdout");
                }
            }
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"quicklist-packed-threshold") {
            let size = std::str::from_utf8(a.get(2))
                .ok()
                .and_then(crate::config::parse_memory);
            match size {
                Some(size) if crate::types::list::set_packed_threshold(size as u64) => c.out.ok(),
                _ => {
                    return Err(Error::msg(
                        "argument must be a memory value bigger than 1 and smaller than 4gb",
                    ))
                }
            }
        } else if a.len() == 2 && sub.eq_ignore_ascii_case(b"digest") {
            let d = dataset_digest(c).await;
            c.out.simple(&hex(&d));
        } else if sub.eq_ignore_ascii_case(b"digest-value") {
            value_digests(c, &a).await;
        } else if a.len() == 3 && sub.eq_ignore_ascii_case(b"journal") {
            journal(c, a.get(2)).await?;
        } else if sub.eq_ignore_ascii_case(b"reload") {
            let (mut save, mut flush, mut merge) = (true, true, false);
            for opt in a.rest(2) {
                if opt.eq_ignore_ascii_case(b"nosave") {
                    save = false;
                } else if opt.eq_ignore_ascii_case(b"noflush") {
                    flush = false;
                } else if opt.eq_ignore_ascii_case(b"merge") {
                    merge = true;
                } else {
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
            crate::persist::debug_reload(&c.shard, save, flush, merge).await?;
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
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "LISTPACK <key>",
            "    Show low level info about the listpack encoding of <key>.",
            "QUICKLIST-PACKED-THRESHOLD <size>",
            "    Sets the threshold for elements to be inserted as plain vs packed nodes",
            "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
            "CHANGE-REPL-ID",
            "    Change the replication IDs of the instance.",
            "    Dangerous: should be used only for testing the replication subsystem.",
            "STRINGMATCH-TEST",
            "    Run a fuzz tester against the stringmatchlen() function.",
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
