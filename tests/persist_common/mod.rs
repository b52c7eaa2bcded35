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
            "re-serialized DUMP of type {} differs: ours {} bytes, stock's {}",
            c.0,
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
    // Values compare, not bytes: a list's node boundaries follow its history (an LPUSH onto
    // a full head node starts a new one), so a replica's list can hold the same elements
    // in other nodes than its master's.
    let norm = |dump: &[u8]| {
        let v = restore_payload(dump, &Limits::default()).expect("stock DUMP loads");
        comparable(&normalize(v), true)
    };
    for (k, g) in got {
        let (a, b) = (norm(&g.dump), norm(&want[k].dump));
        if a != b {
            let got = restore_payload(&g.dump, &Limits::default());
            let want = restore_payload(&want[k].dump, &Limits::default());
            panic!("value of {k:?}: {got:?}\nwanted {want:?}");
        }
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

/// Fills db `db` with every type and encoding; the big values only in a few databases.
pub fn fill(c: &mut Raw, db: u64) {
    cmd(c, &["SELECT", &db.to_string()]);
    let p = format!("d{db}:");
    let k = |name: &str| format!("{p}{name}");
    cmd(c, &["SET", &k("s:int"), "12345"]);
    cmd(c, &["SET", &k("s:neg"), "-42"]);
    cmd(c, &["SET", &k("s:big"), "4294967296"]);
    cmd(c, &["SET", &k("s:emb"), "hello world"]);
    let noise: String = (0..60u32)
        .map(|i| (b'!' + ((i * 37) % 90) as u8) as char)
        .collect();
    cmd(c, &["SET", &k("s:raw"), &noise]);
    cmd(c, &["SET", &k("s:empty"), ""]);
    let bin: Vec<u8> = (0..=255u8).collect();
    call(c, &[b"SET", k("s:bin").as_bytes(), &bin]);
    call(
        c,
        &[b"SET", b"\x00\xff bin\r\nkey", format!("{db}").as_bytes()],
    );
    cmd(
        c,
        &["RPUSH", &k("l:small"), "a", "1", "foo", "-200", "5000000"],
    );
    cmd(c, &["SADD", &k("set:int"), "1", "2", "3", "-5"]);
    cmd(c, &["SADD", &k("set:str"), "a", "b", "c"]);
    cmd(
        c,
        &[
            "ZADD",
            &k("z:small"),
            "1.5",
            "a",
            "2",
            "b",
            "1.1",
            "c",
            "inf",
            "d",
            "-inf",
            "e",
        ],
    );
    cmd(c, &["HSET", &k("h:small"), "f", "v", "n", "1"]);
    cmd(c, &["PFADD", &k("hll"), "a", "b", "c"]);
    cmd(c, &["SET", &k("ttl:s"), "v", "PX", "100000000"]);
    cmd(c, &["HSET", &k("ttl:h"), "f", "v"]);
    cmd(c, &["PEXPIREAT", &k("ttl:h"), "1893456000123"]);
    if !db.is_multiple_of(7) {
        return;
    }
    cmd(c, &["SET", &k("s:lzf"), &"compressible text ".repeat(1500)]);
    for chunk in (0..2000).collect::<Vec<_>>().chunks(500) {
        let mut a = vec!["RPUSH".to_string(), k("l:big")];
        a.extend(chunk.iter().map(|i| format!("element-{i}")));
        cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    cmd(c, &["RPUSH", &k("l:fat"), "x", &"y".repeat(9000), "z"]);
    let mut a = vec!["SADD".to_string(), k("set:bigint")];
    a.extend((0..600).map(|i| (i * 7 - 1000).to_string()));
    cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut a = vec!["SADD".to_string(), k("set:big")];
    a.extend((0..300).map(|i| format!("member-{i}")));
    cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let mut a = vec!["ZADD".to_string(), k("z:big")];
    for i in 0..200 {
        a.push(format!("{}", i as f64 / 3.0));
        a.push(format!("m{i}"));
    }
    cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    cmd(
        c,
        &["ZADD", &k("z:long"), "1", &"m".repeat(100), "2", "short"],
    );
    let mut a = vec!["HSET".to_string(), k("h:big")];
    for i in 0..200 {
        a.push(format!("field-{i}"));
        a.push(format!("value-{i}"));
    }
    cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    cmd(c, &["HSET", &k("h:long"), "f", &"v".repeat(100)]);
    cmd(c, &["RPUSH", &k("ttl:l"), "a", "b"]);
    cmd(c, &["EXPIRE", &k("ttl:l"), "100000"]);
    let x = k("x:stream");
    for i in 1..=120 {
        let id = format!("{i}-1");
        if i % 3 == 0 {
            cmd(c, &["XADD", &x, &id, "f", "v", "n", &i.to_string()]);
        } else {
            cmd(c, &["XADD", &x, &id, "other", &i.to_string()]);
        }
    }
    cmd(c, &["XDEL", &x, "5-1", "6-1"]);
    cmd(c, &["XGROUP", "CREATE", &x, "g", "0"]);
    cmd(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c1",
            "COUNT",
            "3",
            "STREAMS",
            &x,
            ">",
        ],
    );
    cmd(
        c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "COUNT",
            "2",
            "STREAMS",
            &x,
            ">",
        ],
    );
    cmd(c, &["XACK", &x, "g", "1-1"]);
    cmd(c, &["XGROUP", "CREATECONSUMER", &x, "g", "idle"]);
    cmd(c, &["XGROUP", "CREATE", &x, "g2", "$"]);
    let e = k("x:empty");
    cmd(c, &["XADD", &e, "7-7", "f", "v"]);
    cmd(c, &["XTRIM", &e, "MAXLEN", "0"]);
}
