//! SCAN across shards: every key present for the whole scan is returned, even while the
//! keyspace changes (and slot tables resize) between calls. KEYS agrees with DBSIZE.

mod common;

use std::collections::HashSet;

use common::{Rng, Server};
use redis::Connection;

fn scan_step(con: &mut Connection, cursor: &str, extra: &[&str]) -> (String, Vec<Vec<u8>>) {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor);
    for a in extra {
        cmd.arg(*a);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("SCAN {cursor}: {e}"))
}

/// Inserts keys with pipelines of 1,000.
fn insert(con: &mut Connection, keys: &[Vec<u8>]) {
    for chunk in keys.chunks(1000) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("SET").arg(k).arg("v").ignore();
        }
        let _: () = p.query(con).unwrap();
    }
}

#[test]
fn scan_returns_every_stable_key_under_churn() {
    let server = Server::start(3, &[]);
    let mut con = server.conn();
    let mut churn = server.conn();
    let mut rng = Rng(42);
    // 4,500 keys spread over all slots, plus 500 in one slot whose table the churn makes grow
    // (and rehash) while the scan walks it.
    let mut stable: Vec<Vec<u8>> = (0..4500)
        .map(|i| format!("stable:{i}:{}", rng.next_u64()).into_bytes())
        .collect();
    stable.extend((0..500).map(|i| format!("{{hot}}stable:{i}").into_bytes()));
    insert(&mut con, &stable);
    let stable_set: HashSet<Vec<u8>> = stable.iter().cloned().collect();

    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    let mut next_churn = 0u64;
    loop {
        let (next, keys) = scan_step(&mut con, &cursor, &["COUNT", "10"]);
        calls += 1;
        assert!(calls < 100_000, "SCAN did not finish after {calls} calls");
        for k in keys {
            assert!(
                stable_set.contains(&k)
                    || k.starts_with(b"churn:")
                    || k.starts_with(b"{hot}churn:"),
                "SCAN returned a key that never existed: {}",
                common::show(&k)
            );
            seen.insert(k);
        }
        // Between calls: add keys (half in the hot slot) and delete older ones.
        let mut p = redis::pipe();
        for _ in 0..6 {
            let k = if next_churn.is_multiple_of(2) {
                format!("{{hot}}churn:{next_churn}")
            } else {
                format!("churn:{next_churn}")
            };
            p.cmd("SET").arg(k).arg("x").ignore();
            if next_churn >= 40 && next_churn.is_multiple_of(3) {
                let old = next_churn - 40;
                let k = if old.is_multiple_of(2) {
                    format!("{{hot}}churn:{old}")
                } else {
                    format!("churn:{old}")
                };
                p.cmd("DEL").arg(k).ignore();
            }
            next_churn += 1;
        }
        let _: () = p.query(&mut churn).unwrap();
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    let missing: Vec<String> = stable_set
        .difference(&seen)
        .take(10)
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(
        missing.is_empty(),
        "{} stable keys never returned by SCAN (first: {missing:?}); {calls} calls",
        stable_set.difference(&seen).count()
    );
    eprintln!(
        "SCAN COUNT 10: {calls} calls, {} churn keys written meanwhile",
        next_churn
    );
}

#[test]
fn scan_match_and_keys_agree_with_dbsize() {
    let server = Server::start(3, &[]);
    let mut con = server.conn();
    let a: Vec<Vec<u8>> = (0..2000).map(|i| format!("a:{i}").into_bytes()).collect();
    let b: Vec<Vec<u8>> = (0..1000).map(|i| format!("b:{i}").into_bytes()).collect();
    insert(&mut con, &a);
    insert(&mut con, &b);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 3000);
    let all: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(all.len() as i64, dbsize);
    let distinct: HashSet<&Vec<u8>> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "KEYS returned duplicates");
    let only_b: Vec<Vec<u8>> = redis::cmd("KEYS").arg("b:*").query(&mut con).unwrap();
    assert_eq!(
        only_b.iter().collect::<HashSet<_>>(),
        b.iter().collect::<HashSet<_>>()
    );
    // SCAN with MATCH, larger COUNT: exactly the matching keys (nothing changes meanwhile).
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    for calls in 0.. {
        assert!(calls < 10_000, "SCAN did not finish");
        let (next, keys) = scan_step(&mut con, &cursor, &["MATCH", "a:*", "COUNT", "100"]);
        for k in keys {
            assert!(k.starts_with(b"a:"), "{}", common::show(&k));
            seen.insert(k);
        }
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen, a.into_iter().collect::<HashSet<_>>());
    // An empty keyspace: no keys, and the walk ends within a call per shard. (Redis answers
    // cursor 0 at once; our cursors are shard-major, so an empty shard may still take a call.)
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let mut cursor = "0".to_string();
    for calls in 1.. {
        let (next, keys) = scan_step(&mut con, &cursor, &[]);
        assert!(keys.is_empty(), "{keys:?}");
        cursor = next;
        if cursor == "0" {
            break;
        }
        assert!(
            calls < 3,
            "SCAN of an empty keyspace took more than 3 calls"
        );
    }
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(keys.is_empty());
}

#[test]
fn scan_errors() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.send(b"SCAN abc\r\n");
    raw.expect(b"-ERR invalid cursor\r\n");
    raw.send(b"SCAN 0 COUNT 0\r\n");
    raw.expect(b"-ERR syntax error\r\n");
    raw.send(b"SCAN 0 COUNT x\r\n");
    raw.expect(b"-ERR value is not an integer or out of range\r\n");
    raw.send(b"SCAN 0 FOO bar\r\n");
    raw.expect(b"-ERR syntax error\r\n");
}
