//! Expiry: active expiry of untouched keys, lazy expiry on access, TTL/PTTL and friends.

mod common;

use std::time::{Duration, Instant};

use common::{key_on_shard, Server};
use redis::{Connection, Value};

fn dbsize(con: &mut Connection) -> i64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

fn q(con: &mut Connection, args: &[&str]) -> Value {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn q_int(con: &mut Connection, args: &[&str]) -> i64 {
    match q(con, args) {
        Value::Int(n) => n,
        other => panic!("{args:?}: expected an integer, got {other:?}"),
    }
}

#[test]
fn untouched_keys_expire_actively() {
    let n = 3;
    let server = Server::start(n, &[]);
    let mut con = server.conn();
    assert_eq!(q(&mut con, &["SET", "k", "v", "PX", "100"]), Value::Okay);
    // Keys with a TTL on every shard, never touched again.
    for s in 0..n {
        for i in 0..10 {
            let k = key_on_shard(&format!("e{i}:"), s, n);
            q(&mut con, &["SET", &k, "v", "PX", "100"]);
        }
    }
    q(&mut con, &["SET", "keep", "v"]);
    assert_eq!(dbsize(&mut con), 2 + 10 * n as i64);
    let started = Instant::now();
    let gone = common::wait_until(Duration::from_secs(1), || dbsize(&mut con) == 1);
    assert!(
        gone,
        "expired keys still counted by DBSIZE after {:?}: {}",
        started.elapsed(),
        dbsize(&mut con)
    );
    assert_eq!(q(&mut con, &["EXISTS", "keep"]), Value::Int(1));
}

#[test]
fn lazy_expiry_on_access() {
    // hz 1: the active cycle runs once a second, so the reads below usually find the key first.
    let n = 2;
    let server = Server::start(n, &["--hz", "1"]);
    let mut con = server.conn();
    for s in 0..n {
        let k = key_on_shard("lazy:", s, n);
        q(&mut con, &["SET", &k, "v", "PX", "50"]);
        assert_eq!(q(&mut con, &["GET", &k]), Value::BulkString(b"v".to_vec()));
    }
    std::thread::sleep(Duration::from_millis(80));
    for s in 0..n {
        let k = key_on_shard("lazy:", s, n);
        assert_eq!(q(&mut con, &["GET", &k]), Value::Nil, "{k} after expiry");
        assert_eq!(q_int(&mut con, &["EXISTS", &k]), 0);
        assert_eq!(q_int(&mut con, &["TTL", &k]), -2);
    }
    assert_eq!(dbsize(&mut con), 0);
    // SET ... EX with a past time given through PXAT: gone at once.
    q(&mut con, &["SET", "past", "v", "PXAT", "1000"]);
    assert_eq!(q(&mut con, &["GET", "past"]), Value::Nil);
}

#[test]
fn ttl_and_pttl() {
    let n = 2;
    let server = Server::start(n, &[]);
    let mut con = server.conn();
    for s in 0..n {
        let k = key_on_shard("ttl:", s, n);
        let k = k.as_str();
        assert_eq!(q_int(&mut con, &["TTL", k]), -2, "missing key");
        assert_eq!(q_int(&mut con, &["PTTL", k]), -2, "missing key");
        q(&mut con, &["SET", k, "v"]);
        assert_eq!(q_int(&mut con, &["TTL", k]), -1, "no TTL");
        assert_eq!(q_int(&mut con, &["PTTL", k]), -1, "no TTL");

        q(&mut con, &["SET", k, "v", "EX", "100"]);
        let ttl = q_int(&mut con, &["TTL", k]);
        assert!((99..=100).contains(&ttl), "TTL {ttl}");
        let pttl = q_int(&mut con, &["PTTL", k]);
        assert!((99_000..=100_000).contains(&pttl), "PTTL {pttl}");

        // KEEPTTL keeps it, a plain SET clears it.
        q(&mut con, &["SET", k, "w", "KEEPTTL"]);
        assert!(q_int(&mut con, &["TTL", k]) > 0);
        q(&mut con, &["SET", k, "w"]);
        assert_eq!(q_int(&mut con, &["TTL", k]), -1);

        assert_eq!(q_int(&mut con, &["EXPIRE", k, "10"]), 1);
        let ttl = q_int(&mut con, &["TTL", k]);
        assert!((9..=10).contains(&ttl), "TTL {ttl}");
        assert_eq!(q_int(&mut con, &["PEXPIRE", k, "1700"]), 1);
        let pttl = q_int(&mut con, &["PTTL", k]);
        assert!((1200..=1700).contains(&pttl), "PTTL {pttl}");
        // TTL rounds to the nearest second, as Redis does.
        assert_eq!(q_int(&mut con, &["TTL", k]), 2);

        let at = q_int(&mut con, &["EXPIRETIME", k]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        // Under 1.7 s ahead, rounded to the nearest second; `now` is rounded down.
        assert!(
            (now + 1..=now + 3).contains(&at),
            "EXPIRETIME {at}, now {now}"
        );

        assert_eq!(q_int(&mut con, &["PERSIST", k]), 1);
        assert_eq!(q_int(&mut con, &["PERSIST", k]), 0);
        assert_eq!(q_int(&mut con, &["TTL", k]), -1);
        assert_eq!(q_int(&mut con, &["EXPIRETIME", k]), -1);

        // A TTL in the past deletes the key.
        assert_eq!(q_int(&mut con, &["EXPIRE", k, "-1"]), 1);
        assert_eq!(q_int(&mut con, &["EXISTS", k]), 0);
        assert_eq!(q_int(&mut con, &["EXPIRE", k, "10"]), 0, "missing key");

        // GETEX sets and clears TTLs.
        q(&mut con, &["SET", k, "v"]);
        assert_eq!(
            q(&mut con, &["GETEX", k, "PX", "5000"]),
            Value::BulkString(b"v".to_vec())
        );
        assert!(q_int(&mut con, &["PTTL", k]) > 4000);
        q(&mut con, &["GETEX", k, "PERSIST"]);
        assert_eq!(q_int(&mut con, &["PTTL", k]), -1);
    }
}

#[test]
fn expire_errors() {
    let server = Server::start(1, &[]);
    let mut raw = server.raw();
    raw.send(b"SET k v\r\nEXPIRE k abc\r\nSET k v EX 0\r\nSET k v EX -5\r\nSET k v PX abc\r\n");
    raw.expect(b"+OK\r\n-ERR value is not an integer or out of range\r\n");
    raw.expect(b"-ERR invalid expire time in 'set' command\r\n");
    raw.expect(b"-ERR invalid expire time in 'set' command\r\n");
    raw.expect(b"-ERR value is not an integer or out of range\r\n");
    raw.send(b"EXPIRE k 10 NX\r\nEXPIRE k 20 NX\r\nEXPIRE k 5 GT\r\nEXPIRE k 30 GT\r\nEXPIRE k 10 NX XX\r\n");
    raw.expect(b":1\r\n:0\r\n:0\r\n:1\r\n");
    raw.expect(b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
}
