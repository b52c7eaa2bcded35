//! MEMORY USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE and HELP, with Redis 7.0's reply shapes
//! (object.c's `memoryCommand`). The figures are redcell's own: bytes counted by the
//! allocator wrapper (`util::mem`), mimalloc's committed and resident bytes, and estimates of
//! what keys and values take in redcell's structures (see `usage`).

use std::mem::size_of;

use super::help_reply;
use super::info::{ratio, snapshot, MemoryFigures, Sections, Snapshot};
use crate::cmd::{BoxFuture, Ctx};
use crate::db::Entry;
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::types::Value;
use crate::util::num::parse_i64_strict;

/// What one key costs beside its bytes and value: the node holding (key, entry) and the slot
/// table's pointer to it.
const KEY_OVERHEAD: usize = size_of::<Entry>() + 2 * size_of::<usize>();
/// One TTL record in a keyspace's index of volatile keys.
const VOLATILE_RECORD: usize = 2 * size_of::<usize>();
/// Per element, beside its bytes: a packed (listpack, intset) entry's header and a table
/// or skiplist node with its pointers.
const PACKED_ELEMENT: usize = 2;
const TABLE_ELEMENT: usize = 4 * size_of::<usize>();
const SKIPLIST_ELEMENT: usize = size_of::<[usize; 8]>();
/// Elements looked at when MEMORY USAGE gives no SAMPLES (Redis's default).
const DEFAULT_SAMPLES: usize = 5;

/// MEMORY USAGE key [SAMPLES count]: the key's estimated bytes, or nil. The key is found as
/// stored, expired or not (Redis's `dictFind`), and not marked accessed.
pub fn usage(c: &mut Ctx, a: &Args) -> CmdResult {
    let mut samples = DEFAULT_SAMPLES;
    let mut j = 3;
    while j < a.len() {
        if a.is(j, "SAMPLES") && j + 1 < a.len() {
            let n = parse_i64_strict(a.get(j + 1)).ok_or(Error::NotInteger)?;
            if n < 0 {
                return Err(Error::Syntax);
            }
            samples = if n == 0 { usize::MAX } else { n as usize };
            j += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let key = a.get(2);
    match c.db.peek(key, c.now) {
        Some(e) => {
            let n = key.len() + KEY_OVERHEAD + value_bytes(&e.value, samples);
            c.out.int(n as i64)
        }
        None => c.out.null(),
    }
    Ok(())
}

/// The bytes a value takes: exact for strings and streams' nodes; for collections, the
/// average of the first `samples` elements times their number, plus the encoding's
/// per-element overhead (Redis's `objectComputeSize` samples the same way).
fn value_bytes(v: &Value, samples: usize) -> usize {
    let sampled = |sizes: &mut dyn Iterator<Item = usize>, len: usize, per: usize| -> usize {
        let (mut n, mut sum) = (0usize, 0usize);
        for s in sizes.take(samples) {
            n += 1;
            sum += s;
        }
        let avg = if n == 0 { 0.0 } else { sum as f64 / n as f64 };
        (avg * len as f64) as usize + per * len
    };
    let per = |packed: bool, big: usize| if packed { PACKED_ELEMENT } else { big };
    let head = size_of::<Value>();
    head + match v {
        Value::Str(s) => s.heap_bytes(),
        Value::Hash(h) => sampled(
            &mut h.iter().map(|(f, v)| f.len() + v.len()),
            h.len(),
            per(h.encoding() == "listpack", 2 * TABLE_ELEMENT),
        ),
        Value::Set(s) => {
            if s.encoding() == "intset" {
                s.len() * size_of::<i64>()
            } else {
                sampled(
                    &mut s.iter().map(|m| m.with_bytes(<[u8]>::len)),
                    s.len(),
                    per(s.encoding() == "listpack", TABLE_ELEMENT),
                )
            }
        }
        Value::List(l) => sampled(&mut l.iter().map(<[u8]>::len), l.len(), PACKED_ELEMENT),
        Value::ZSet(z) => sampled(
            &mut z.iter().map(|(m, _)| m.len() + size_of::<f64>()),
            z.len(),
            per(z.encoding() == "listpack", SKIPLIST_ELEMENT + TABLE_ELEMENT),
        ),
        Value::Stream(s) => s.bytes(),
    }
}

/// The figures MEMORY STATS and DOCTOR need, from the same snapshot INFO memory uses.
async fn figures(c: &mut Conn) -> (Snapshot, MemoryFigures) {
    let sections = Sections::parse([&b"memory"[..], b"keyspace", b"clients"].into_iter());
    let snap = snapshot(c, &sections).await;
    let figures = MemoryFigures::of(&snap);
    (snap, figures)
}

/// MEMORY STATS: Redis's map of 27 fields plus one per database holding keys.
pub fn stats<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let (snap, f) = figures(c).await;
        // Keys and keys with a TTL of each database, over every shard.
        let mut dbs: Vec<(usize, usize)> = Vec::new();
        for sh in &snap.shards {
            for (i, &(keys, volatile)) in sh.dbs.iter().enumerate() {
                if dbs.len() <= i {
                    dbs.resize(i + 1, (0, 0));
                }
                dbs[i].0 += keys;
                dbs[i].1 += volatile;
            }
        }
        let used: Vec<(usize, (usize, usize))> = dbs
            .into_iter()
            .enumerate()
            .filter(|(_, (keys, _))| *keys > 0)
            .collect();
        let out = &mut c.out;
        out.map(27 + used.len());
        let int = |out: &mut crate::resp::Reply, name: &str, v: i64| {
            out.bulk(name.as_bytes());
            out.int(v);
        };
        let double = |out: &mut crate::resp::Reply, name: &str, v: f64| {
            out.bulk(name.as_bytes());
            out.double(v);
        };
        int(out, "peak.allocated", f.peak as i64);
        int(out, "total.allocated", f.used as i64);
        int(out, "startup.allocated", f.startup as i64);
        int(out, "replication.backlog", 0);
        int(out, "clients.slaves", 0);
        int(out, "clients.normal", f.clients as i64);
        int(out, "cluster.links", 0);
        int(out, "aof.buffer", 0);
        int(out, "lua.caches", f.scripts as i64);
        int(out, "functions.caches", f.functions as i64);
        for (i, (keys, volatile)) in used {
            out.bulk(format!("db.{i}").as_bytes());
            out.map(3);
            int(out, "overhead.hashtable.main", (keys * KEY_OVERHEAD) as i64);
            int(
                out,
                "overhead.hashtable.expires",
                (volatile * VOLATILE_RECORD) as i64,
            );
            int(out, "overhead.hashtable.slot-to-keys", 0);
        }
        int(out, "overhead.total", f.overhead as i64);
        int(out, "keys.count", f.keys as i64);
        let per_key = f
            .used
            .saturating_sub(f.startup)
            .checked_div(f.keys)
            .unwrap_or(0);
        int(out, "keys.bytes-per-key", per_key as i64);
        int(out, "dataset.bytes", f.dataset as i64);
        double(out, "dataset.percentage", f.dataset_perc);
        double(out, "peak.percentage", f.peak_perc);
        int(out, "allocator.allocated", f.used as i64);
        int(out, "allocator.active", f.active as i64);
        int(out, "allocator.resident", f.resident as i64);
        double(
            out,
            "allocator-fragmentation.ratio",
            ratio(f.active, f.used),
        );
        int(
            out,
            "allocator-fragmentation.bytes",
            (f.active - f.used) as i64,
        );
        double(out, "allocator-rss.ratio", ratio(f.resident, f.active));
        int(out, "allocator-rss.bytes", (f.resident - f.active) as i64);
        double(out, "rss-overhead.ratio", ratio(f.rss, f.resident));
        int(out, "rss-overhead.bytes", f.rss as i64 - f.resident as i64);
        double(out, "fragmentation", ratio(f.rss, f.used));
        int(out, "fragmentation.bytes", f.rss as i64 - f.used as i64);
        Ok(())
    })
}

/// MEMORY DOCTOR: Redis's report, from redcell's figures.
pub fn doctor<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let (snap, f) = figures(c).await;
        let text = doctor_report(&f, snap.connected_clients, snap.scripts.0);
        c.out.verbatim(text.as_bytes());
        Ok(())
    })
}

fn doctor_report(f: &MemoryFigures, clients: usize, scripts: usize) -> String {
    const MB10: u64 = 10 << 20;
    if f.used < 5 * 1024 * 1024 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues \
                detector can't be used in these conditions. Please, leave for your mission on \
                Earth and fill it with some data. The new Sam and I will be back to our \
                programming as soon as I finished rebooting.\n"
            .into();
    }
    let frag = ratio(f.rss, f.used);
    let mut issues: Vec<&str> = Vec::new();
    if ratio(f.peak, f.used) > 1.5 {
        issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
    }
    if frag > 1.4 && f.rss.saturating_sub(f.used) > MB10 {
        issues.push(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"mimalloc\".\n\n");
    }
    if ratio(f.active, f.used) > 1.1 && f.active - f.used > MB10 {
        issues.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n");
    }
    if ratio(f.resident, f.active) > 1.1 && f.resident - f.active > MB10 {
        issues.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n");
    }
    if ratio(f.rss, f.resident) > 1.1 && f.rss.saturating_sub(f.resident) > MB10 {
        issues.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n");
    }
    if clients > 0 && f.clients / clients as u64 > 200 * 1024 {
        issues.push(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n");
    }
    if scripts > 1000 {
        issues.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
    }
    if issues.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account \
                for what occurs on this base.\n"
            .into();
    }
    let mut s =
        String::from("Sam, I detected a few issues in this Redis instance memory implants:\n\n");
    for i in issues {
        s.push_str(i);
    }
    s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    s
}

/// MEMORY MALLOC-STATS: mimalloc's statistics report.
pub fn malloc_stats(c: &mut Conn, _a: &Args) -> CmdResult {
    let text = crate::util::mem::allocator_stats();
    c.out.verbatim(text.as_bytes());
    Ok(())
}

/// MEMORY PURGE: every executor returns the free pages of its heap to the OS.
pub fn purge<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        c.shard.call_all(|_| crate::util::mem::purge_thread()).await;
        c.out.ok();
        Ok(())
    })
}

pub fn help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}
