//! Helpers the persistence tests share (`rdb_file.rs`, `aof_file.rs`): a stock server's
//! whole keyspace as DUMP + PEXPIRETIME per key, values in a form comparable across servers,
//! and stock started on (or refusing) a data directory.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{free_port, parse, run_bounded, Node, Raw, StockRedis};
use redcell::rdb::{object_type, restore_payload, write_object, Limits, Writer};
use redcell::types::Value;

/// `databases` of stock and of the files written here.
pub const DATABASES: u64 = 16;

/// Sends a command that must not fail; returns the reply.
pub fn call(c: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    let r = c.call(args);
    assert!(
        !r.starts_with(b"-"),
        "{:?} failed: {}",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&r)
    );
    r
}

/// `call` with text arguments.
pub fn cmd(c: &mut Raw, args: &[&str]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    call(c, &a)
}

/// An integer reply's value.
pub fn int_reply(r: &[u8]) -> i64 {
    match parse(r, &mut 0) {
        Node::Line(b':', t) => String::from_utf8_lossy(&t).parse().expect("integer"),
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// What stock holds for one key: its DUMP and PEXPIRETIME.
#[derive(Debug, Clone, PartialEq)]
pub struct StockKey {
    pub dump: Vec<u8>,
    pub pexpiretime: i64,
}

/// Every key of every database of a running stock server.
pub fn snapshot(c: &mut Raw) -> BTreeMap<(u64, Vec<u8>), StockKey> {
    let mut out = BTreeMap::new();
    for db in 0..DATABASES {
        cmd(c, &["SELECT", &db.to_string()]);
        let keys = match parse(&call(c, &[b"KEYS", b"*"]), &mut 0) {
            Node::Agg(_, Some(items)) => items,
            other => panic!("KEYS: {other:?}"),
        };
        assert_eq!(int_reply(&cmd(c, &["DBSIZE"])), keys.len() as i64);
        for key in keys {
            let Node::Bulk(_, Some(key)) = key else {
                panic!("key {key:?}")
            };
            let dump = match parse(&call(c, &[b"DUMP", &key]), &mut 0) {
                Node::Bulk(_, Some(d)) => d,
                other => panic!("DUMP: {other:?}"),
            };
            let pexpiretime = int_reply(&call(c, &[b"PEXPIRETIME", &key]));
            out.insert((db, key), StockKey { dump, pexpiretime });
        }
    }
    out
}

/// A value in a form that compares across servers: the serialized bytes (without the DUMP
/// trailer), except for hashtable sets and hashes, whose member order is each server's own
/// table order: those compare as sorted members.
pub fn comparable(v: &Value, compress: bool) -> (u8, Vec<Vec<u8>>) {
    let t = object_type(v);
    match v {
        Value::Set(s) if t == 2 => {
            let mut m: Vec<Vec<u8>> = s.iter().map(|m| m.with_bytes(<[u8]>::to_vec)).collect();
            m.sort();
            (t, m)
        }
        Value::Hash(h) if t == 4 => {
            let mut m: Vec<Vec<u8>> = h.iter().map(|(f, v)| [f, b"=", v].concat()).collect();
            m.sort();
            (t, m)
        }
        _ => {
            // DUMP follows `rdbcompression` as a file does.
            let mut w = Writer::with_compression(compress);
            w.u8(t);
            write_object(&mut w, v);
            (t, vec![w.buf])
        }
    }
}

pub fn comparable_dump(dump: &[u8], compress: bool) -> (u8, Vec<Vec<u8>>) {
    let v = restore_payload(dump, &Limits::default()).expect("stock DUMP loads");
    let c = comparable(&v, compress);
    if c.0 != 2 && c.0 != 4 {
        // Deterministic encodings: our bytes are stock's bytes.
        assert!(
            c.1[0] == dump[..dump.len() - 10],
            "re-serialized DUMP differs: ours {} bytes, stock's {}",
            c.1[0].len(),
            dump.len() - 10
        );
    }
    c
}

/// Asserts two snapshots hold the same keys, values and TTLs.
pub fn assert_same_keyspace(
    got: &BTreeMap<(u64, Vec<u8>), StockKey>,
    want: &BTreeMap<(u64, Vec<u8>), StockKey>,
) {
    assert_same_keyspace_with(got, want, |v| v);
}

/// `assert_same_keyspace`, comparing values after `normalize` (e.g. `without_seen_times`).
pub fn assert_same_keyspace_with(
    got: &BTreeMap<(u64, Vec<u8>), StockKey>,
    want: &BTreeMap<(u64, Vec<u8>), StockKey>,
    normalize: impl Fn(Value) -> Value,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let norm = |dump: &[u8]| {
        comparable_dump(dump, true);
        let v = restore_payload(dump, &Limits::default()).expect("stock DUMP loads");
        comparable(&normalize(v), true)
    };
    for (k, g) in got {
        assert!(norm(&g.dump) == norm(&want[k].dump), "value of {k:?}");
        assert_eq!(g.pexpiretime, want[k].pexpiretime, "TTL of {k:?}");
    }
}

/// A stream with every consumer's seen time zeroed: replaying XCLAIM (from an AOF) stamps
/// the time of the replay, so only the rest can compare.
pub fn without_seen_times(v: Value) -> Value {
    match v {
        Value::Stream(mut s) => {
            for g in s.groups.values_mut() {
                for c in g.consumers.values_mut() {
                    c.seen_time = 0;
                }
            }
            Value::Stream(s)
        }
        other => other,
    }
}

/// Starts stock on `dir/dump.rdb` with `extra` settings.
pub fn stock_on(dir: &Path, extra: &[&str]) -> StockRedis {
    let dir = dir.to_str().expect("utf-8 temp dir");
    let mut args = vec!["--dir", dir, "--dbfilename", "dump.rdb"];
    args.extend_from_slice(extra);
    StockRedis::start(&args)
}

/// Runs stock in `dir` (on `dump.rdb`, plus `extra` settings) where it must refuse to start;
/// returns its log.
pub fn stock_refuses(dir: &Path, extra: &[&str]) -> String {
    let port = free_port().to_string();
    let dir_s = dir.to_str().expect("utf-8 dir");
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ])
    .args(["--dir", dir_s, "--dbfilename", "dump.rdb", "--logfile", ""])
    .args(extra);
    let out = run_bounded(&mut cmd, Duration::from_secs(20));
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "stock started on a corrupt file:\n{log}"
    );
    log
}
