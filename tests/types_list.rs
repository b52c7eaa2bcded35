//! Lists against stock Redis 7.0: the same commands (RESP2 and RESP3) must give the same
//! bytes; LMOVE / RPOPLPUSH / LMPOP across shards stay atomic; blocking pops are woken by
//! pushes from other connections, in FIFO order, and time out as Redis's do.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{key_on_shard, pair, show, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

/// Sends every command to both and asserts byte-identical replies.
fn run_script(a: &mut Raw, b: &mut Raw, script: &[Vec<String>], tag: &str) {
    for cmd in script {
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let (want, got) = (b.call(&args), a.call(&args));
        assert_eq!(show(&got), show(&want), "{tag} {cmd:?}");
    }
}

fn script(k: &[String]) -> Vec<Vec<String>> {
    let mut s: Vec<Vec<String>> = Vec::new();
    let mut e = |words: &[&str]| s.push(words.iter().map(|w| w.to_string()).collect());
    let (l1, l2, l3, st) = (&k[0][..], &k[1][..], &k[2][..], &k[3][..]);
    let big = "B".repeat(9000);
    e(&["SET", st, "string"]);
    // Pushes.
    e(&["RPUSH", l1, "a", "b", "c", "d", "e", "a"]);
    e(&["LPUSH", l1, "z", "y"]);
    e(&["LPUSHX", "missing", "x"]);
    e(&["RPUSHX", "missing", "x", "y"]);
    e(&["RPUSHX", l1, "f"]);
    e(&["LPUSH", st, "x"]);
    e(&["RPUSHX", st, "x"]);
    e(&["EXISTS", "missing"]);
    e(&["LRANGE", l1, "0", "-1"]);
    e(&["LLEN", l1]);
    e(&["LLEN", "missing"]);
    e(&["LLEN", st]);
    e(&["TYPE", l1]);
    e(&["OBJECT", "ENCODING", l1]);
    // LINDEX / LSET.
    for i in [
        "0",
        "-1",
        "3",
        "-9",
        "8",
        "100",
        "-100",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        e(&["LINDEX", l1, i]);
    }
    e(&["LINDEX", l1, "x"]);
    e(&["LINDEX", "missing", "x"]);
    e(&["LINDEX", st, "0"]);
    e(&["LSET", l1, "0", "Y"]);
    e(&["LSET", l1, "-1", "F"]);
    e(&["LSET", l1, "9", "nope"]);
    e(&["LSET", l1, "-10", "nope"]);
    e(&["LSET", l1, "x", "nope"]);
    e(&["LSET", "missing", "0", "v"]);
    e(&["LSET", "missing", "x", "v"]);
    e(&["LSET", st, "0", "v"]);
    e(&["LSET", l1, "2", &big]);
    e(&["LINDEX", l1, "2"]);
    e(&["LSET", l1, "2", "a"]);
    // LRANGE.
    for (s0, s1) in [
        ("0", "0"),
        ("-3", "-1"),
        ("2", "1"),
        ("-100", "100"),
        ("5", "-5"),
        ("9", "20"),
        ("-1", "-2"),
    ] {
        e(&["LRANGE", l1, s0, s1]);
    }
    e(&["LRANGE", l1, "x", "1"]);
    e(&["LRANGE", "missing", "0", "-1"]);
    e(&["LRANGE", st, "0", "-1"]);
    // LPOS.
    e(&["LPOS", l1, "a"]);
    e(&["LPOS", l1, "a", "RANK", "2"]);
    e(&["LPOS", l1, "a", "RANK", "-1"]);
    e(&["LPOS", l1, "a", "RANK", "-2", "COUNT", "0"]);
    e(&["LPOS", l1, "a", "COUNT", "0"]);
    e(&["LPOS", l1, "a", "COUNT", "1"]);
    e(&["LPOS", l1, "a", "COUNT", "2", "RANK", "2"]);
    e(&["LPOS", l1, "a", "MAXLEN", "3"]);
    e(&["LPOS", l1, "a", "MAXLEN", "3", "COUNT", "0"]);
    e(&["LPOS", l1, "a", "RANK", "-1", "MAXLEN", "2"]);
    e(&["LPOS", l1, "nope"]);
    e(&["LPOS", l1, "nope", "COUNT", "5"]);
    e(&["LPOS", l1, "a", "RANK", "0"]);
    e(&["LPOS", l1, "a", "RANK", "x"]);
    e(&["LPOS", l1, "a", "RANK", "9223372036854775807"]);
    e(&["LPOS", l1, "a", "RANK", "-9223372036854775808"]);
    e(&[
        "LPOS",
        l1,
        "a",
        "RANK",
        "-9223372036854775808",
        "COUNT",
        "1",
    ]);
    e(&["LPOS", l1, "a", "COUNT", "-1"]);
    e(&["LPOS", l1, "a", "COUNT", "x"]);
    e(&["LPOS", l1, "a", "MAXLEN", "-1"]);
    e(&["LPOS", l1, "a", "FOO"]);
    e(&["LPOS", l1, "a", "RANK"]);
    e(&["LPOS", "missing", "a"]);
    e(&["LPOS", "missing", "a", "COUNT", "0"]);
    e(&["LPOS", "missing", "a", "RANK", "0"]);
    e(&["LPOS", st, "a"]);
    // LINSERT.
    e(&["LINSERT", l1, "BEFORE", "a", "ins1"]);
    e(&["LINSERT", l1, "after", "a", "ins2"]);
    e(&["LINSERT", l1, "AFTER", "nope", "x"]);
    e(&["LINSERT", l1, "MIDDLE", "a", "x"]);
    e(&["LINSERT", "missing", "BEFORE", "a", "x"]);
    e(&["LINSERT", "missing", "MIDDLE", "a", "x"]);
    e(&["LINSERT", st, "BEFORE", "a", "x"]);
    e(&["LRANGE", l1, "0", "-1"]);
    // LREM.
    e(&["RPUSH", l2, "x", "y", "x", "z", "x", "y", "x"]);
    e(&["LREM", l2, "1", "x"]);
    e(&["LREM", l2, "-1", "x"]);
    e(&["LRANGE", l2, "0", "-1"]);
    e(&["LREM", l2, "0", "y"]);
    e(&["LREM", l2, "x", "y"]);
    e(&["LREM", "missing", "0", "y"]);
    e(&["LREM", st, "0", "y"]);
    e(&["LREM", l2, "-9223372036854775808", "x"]);
    e(&["LRANGE", l2, "0", "-1"]);
    e(&["LREM", l2, "0", "z"]);
    e(&["EXISTS", l2]);
    // LTRIM.
    e(&["RPUSH", l2, "1", "2", "3", "4", "5", "6"]);
    e(&["EXPIRE", l2, "1000"]);
    e(&["LTRIM", l2, "1", "-2"]);
    e(&["LRANGE", l2, "0", "-1"]);
    e(&["TTL", l2]);
    e(&["LTRIM", l2, "-100", "100"]);
    e(&["LTRIM", l2, "x", "1"]);
    e(&["LTRIM", "missing", "0", "1"]);
    e(&["LTRIM", st, "0", "1"]);
    e(&["LTRIM", l2, "2", "1"]);
    e(&["EXISTS", l2]);
    // Pops.
    e(&["RPUSH", l2, "1", "2", "3", "4", "5"]);
    e(&["LPOP", l2]);
    e(&["RPOP", l2]);
    e(&["LPOP", l2, "0"]);
    e(&["LPOP", l2, "2"]);
    e(&["RPOP", l2, "1"]);
    e(&["RPOP", l2, "-1"]);
    e(&["RPOP", l2, "x"]);
    e(&["LPOP", l2, "1", "2"]);
    e(&["RPOP", l2, "10"]);
    e(&["EXISTS", l2]);
    e(&["LPOP", "missing"]);
    e(&["LPOP", "missing", "0"]);
    e(&["RPOP", "missing", "3"]);
    e(&["LPOP", st]);
    e(&["RPOP", st, "1"]);
    // LMOVE / RPOPLPUSH, across shards (l1, l2, l3 live on different shards).
    e(&["RPUSH", l2, "p", "q", "r"]);
    e(&["LMOVE", l2, l3, "LEFT", "RIGHT"]);
    e(&["LMOVE", l2, l3, "right", "left"]);
    e(&["RPOPLPUSH", l2, l3]);
    e(&["EXISTS", l2]);
    e(&["LRANGE", l3, "0", "-1"]);
    e(&["RPOPLPUSH", "missing", l3]);
    e(&["RPOPLPUSH", "missing", st]);
    e(&["RPOPLPUSH", l3, st]);
    e(&["RPOPLPUSH", st, l3]);
    e(&["LMOVE", l3, l3, "LEFT", "RIGHT"]);
    e(&["LMOVE", l3, l2, "LEFT", "MIDDLE"]);
    e(&["LMOVE", l3, l2, "UP", "LEFT"]);
    e(&["LRANGE", l3, "0", "-1"]);
    e(&["RPUSH", l2, "solo"]);
    e(&["EXPIRE", l2, "500"]);
    e(&["RPOPLPUSH", l2, l2]);
    e(&["TTL", l2]);
    e(&["LMOVE", l2, l2, "RIGHT", "LEFT"]);
    e(&["LRANGE", l2, "0", "-1"]);
    // LMPOP, keys on several shards.
    e(&["LMPOP", "3", "missing", l2, l3, "LEFT"]);
    e(&["LMPOP", "2", "missing", l3, "RIGHT", "COUNT", "2"]);
    e(&["LMPOP", "2", "missing", l3, "RIGHT", "COUNT", "100"]);
    e(&["LMPOP", "2", "missing", l3, "RIGHT"]);
    e(&["LMPOP", "2", "missing", st, "LEFT"]);
    e(&["LMPOP", "2", st, l1, "LEFT"]);
    e(&["LMPOP", "1", "missing", "LEFT"]);
    e(&["LMPOP", "0", l1, "LEFT"]);
    e(&["LMPOP", "-1", l1, "LEFT"]);
    e(&["LMPOP", "x", l1, "LEFT"]);
    e(&["LMPOP", "2", l1, "LEFT"]);
    e(&["LMPOP", "1", l1, "MIDDLE"]);
    e(&["LMPOP", "1", l1, "LEFT", "COUNT", "0"]);
    e(&["LMPOP", "1", l1, "LEFT", "COUNT", "-1"]);
    e(&["LMPOP", "1", l1, "LEFT", "COUNT"]);
    e(&["LMPOP", "1", l1, "LEFT", "COUNT", "1", "COUNT", "1"]);
    e(&["LMPOP", "1", l1, "LEFT", "FOO"]);
    e(&["LMPOP", "9223372036854775807", l1, "LEFT"]);
    e(&["LMPOP", "1", l1]);
    // Arity.
    e(&["LPUSH", l1]);
    e(&["LLEN"]);
    e(&["LINSERT", l1, "BEFORE", "a"]);
    e(&["LRANGE", l1, "0", "-1"]);
    s
}

#[test]
fn replies_match_stock_redis_resp2_and_resp3() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let k: Vec<String> = (0..4)
        .map(|i| key_on_shard(&format!("t{i}:"), i % SHARDS, SHARDS))
        .collect();
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        a.call(&[b"FLUSHALL"]);
        b.call(&[b"FLUSHALL"]);
        run_script(
            &mut a,
            &mut b,
            &script(&k),
            if resp3 { "RESP3" } else { "RESP2" },
        );
    }
}

#[test]
fn command_info_matches_stock_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.conn(), stock.conn());
    for name in [
        "lpush",
        "rpush",
        "lpushx",
        "rpushx",
        "lpop",
        "rpop",
        "llen",
        "lindex",
        "lset",
        "lrange",
        "ltrim",
        "lrem",
        "linsert",
        "lpos",
        "lmove",
        "rpoplpush",
        "lmpop",
        "blpop",
        "brpop",
        "blmove",
        "brpoplpush",
        "blmpop",
    ] {
        let info = |con: &mut redis::Connection| -> String {
            let v: redis::Value = redis::cmd("COMMAND")
                .arg("INFO")
                .arg(name)
                .query(con)
                .unwrap();
            // Name, arity, flags, first/last/step and ACL categories: the first seven fields.
            match v {
                redis::Value::Array(mut outer) => match outer.pop() {
                    Some(redis::Value::Array(fields)) => format!("{:?}", &fields[..7]),
                    other => panic!("COMMAND INFO {name}: {other:?}"),
                },
                other => panic!("COMMAND INFO {name}: {other:?}"),
            }
        };
        assert_eq!(info(&mut a), info(&mut b), "COMMAND INFO {name}");
        let docs = |con: &mut redis::Connection| -> String {
            let v: redis::Value = redis::cmd("COMMAND")
                .arg("DOCS")
                .arg(name)
                .query(con)
                .unwrap();
            // summary, since and group come first in both (stock adds complexity, arguments...).
            match v {
                redis::Value::Array(outer) => match outer.get(1) {
                    Some(redis::Value::Array(fields)) => format!("{:?}", &fields[..6]),
                    other => panic!("COMMAND DOCS {name}: {other:?}"),
                },
                other => panic!("COMMAND DOCS {name}: {other:?}"),
            }
        };
        assert_eq!(docs(&mut a), docs(&mut b), "COMMAND DOCS {name}");
    }
}

#[test]
fn node_size_setting_applies_and_big_lists_match() {
    let ours = Server::start(SHARDS, &["--list-max-listpack-size", "3"]);
    let stock = StockRedis::start(&["--list-max-listpack-size", "3"]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut s: Vec<Vec<String>> = Vec::new();
    let w = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    s.push(w(&["CONFIG", "GET", "list-max-listpack-size"]));
    s.push(w(&["CONFIG", "GET", "list-max-ziplist-size"]));
    for i in 0..200 {
        let v = i.to_string();
        s.push(w(&["RPUSH", "big", &v, &format!("x{i}")]));
        if i % 7 == 0 {
            s.push(w(&["LINSERT", "big", "BEFORE", &v, &"i".repeat(i)]));
        }
        if i % 11 == 0 {
            s.push(w(&["LREM", "big", "2", &format!("x{}", i / 2)]));
            s.push(w(&["LINDEX", "big", &(i as i64 - 100).to_string()]));
        }
    }
    s.push(w(&["LRANGE", "big", "0", "-1"]));
    s.push(w(&["LTRIM", "big", "17", "-23"]));
    s.push(w(&["CONFIG", "SET", "list-max-ziplist-size", "-1"]));
    s.push(w(&["CONFIG", "GET", "list-max-listpack-size"]));
    s.push(w(&["CONFIG", "SET", "list-compress-depth", "1"]));
    for i in 0..100 {
        s.push(w(&["LPUSH", "big", &"y".repeat(i * 50)]));
    }
    s.push(w(&["LRANGE", "big", "0", "-1"]));
    s.push(w(&["LRANGE", "big", "-150", "-120"]));
    s.push(w(&["OBJECT", "ENCODING", "big"]));
    run_script(&mut a, &mut b, &s, "fill");
}

/// A seeded random command over a few keys (on every shard) and a small element pool.
fn random_command(rng: &mut Rng, keys: &[String]) -> Vec<String> {
    let key = |rng: &mut Rng| keys[rng.below(keys.len() as u64) as usize].clone();
    let elem = |rng: &mut Rng| match rng.below(12) {
        0 => "L".repeat(100 + rng.below(3000) as usize),
        1..=3 => (rng.below(20) as i64 - 5).to_string(),
        _ => format!("e{}", rng.below(8)),
    };
    let idx = |rng: &mut Rng| (rng.below(30) as i64 - 15).to_string();
    let side = |rng: &mut Rng| if rng.below(2) == 0 { "LEFT" } else { "RIGHT" }.to_string();
    let k = key(rng);
    let mut v: Vec<String> = match rng.below(24) {
        0..=2 => {
            let mut v = vec!["RPUSH".into(), k];
            (0..1 + rng.below(5)).for_each(|_| v.push(elem(rng)));
            v
        }
        3 | 4 => {
            let mut v = vec!["LPUSH".into(), k];
            (0..1 + rng.below(5)).for_each(|_| v.push(elem(rng)));
            v
        }
        5 => vec!["LPUSHX".into(), k, elem(rng)],
        6 => vec!["RPUSHX".into(), k, elem(rng)],
        7 => vec!["LPOP".into(), k],
        8 => vec!["RPOP".into(), k, rng.below(4).to_string()],
        9 => vec!["LRANGE".into(), k, idx(rng), idx(rng)],
        10 => vec!["LINDEX".into(), k, idx(rng)],
        11 => vec!["LSET".into(), k, idx(rng), elem(rng)],
        12 => vec!["LTRIM".into(), k, idx(rng), idx(rng)],
        13 => vec![
            "LREM".into(),
            k,
            (rng.below(5) as i64 - 2).to_string(),
            elem(rng),
        ],
        14 => vec![
            "LINSERT".into(),
            k,
            if rng.below(2) == 0 { "BEFORE" } else { "AFTER" }.into(),
            elem(rng),
            elem(rng),
        ],
        15 => {
            let mut v = vec!["LPOS".into(), k, elem(rng)];
            if rng.below(2) == 0 {
                v.extend(["RANK".into(), (rng.below(5) as i64 - 2).to_string()]);
            }
            if rng.below(2) == 0 {
                v.extend(["COUNT".into(), rng.below(3).to_string()]);
            }
            if rng.below(3) == 0 {
                v.extend(["MAXLEN".into(), rng.below(6).to_string()]);
            }
            v
        }
        16 | 17 => vec!["LMOVE".into(), k, key(rng), side(rng), side(rng)],
        18 => vec!["RPOPLPUSH".into(), k, key(rng)],
        19 => {
            let n = 1 + rng.below(3);
            let mut v = vec!["LMPOP".into(), n.to_string()];
            (0..n).for_each(|_| v.push(key(rng)));
            v.push(side(rng));
            if rng.below(2) == 0 {
                v.extend(["COUNT".into(), (1 + rng.below(4)).to_string()]);
            }
            v
        }
        20 => vec!["LLEN".into(), k],
        21 => vec!["LRANGE".into(), k, "0".into(), "-1".into()],
        22 => vec!["EXISTS".into(), k],
        _ => vec!["TYPE".into(), k],
    };
    if rng.below(80) == 0 {
        v = vec!["SET".into(), keys[0].clone(), "str".into()];
    }
    v
}

#[test]
fn random_sequences_match_stock_redis() {
    // A small node size on both sides, so splits and merges happen all the time.
    for fill in ["-2", "2"] {
        let ours = Server::start(SHARDS, &["--list-max-listpack-size", fill]);
        let stock = StockRedis::start(&["--list-max-listpack-size", fill]);
        let keys: Vec<String> = (0..5)
            .map(|i| key_on_shard(&format!("r{i}:"), i % SHARDS, SHARDS))
            .collect();
        for (seed, resp3) in [(1u64, false), (2, true)] {
            let (mut a, mut b) = pair(&ours, &stock, resp3);
            a.call(&[b"FLUSHALL"]);
            b.call(&[b"FLUSHALL"]);
            let mut rng = Rng(seed);
            for i in 0..2500 {
                let cmd = random_command(&mut rng, &keys);
                let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
                let (want, got) = (b.call(&args), a.call(&args));
                assert!(
                    want == got,
                    "fill {fill} seed {seed} #{i} {cmd:?}: ours {} redis {}",
                    show(&got),
                    show(&want)
                );
            }
            for k in &keys {
                let args: [&[u8]; 4] = [b"LRANGE", k.as_bytes(), b"0", b"-1"];
                assert_eq!(show(&a.call(&args)), show(&b.call(&args)), "final {k}");
            }
        }
    }
}

#[test]
fn moves_across_shards_are_atomic() {
    let server = Server::start(SHARDS, &[]);
    let keys: Vec<String> = (0..SHARDS).map(|s| key_on_shard("mv", s, SHARDS)).collect();
    let elems: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let mut con = server.conn();
    let _: i64 = redis::cmd("RPUSH")
        .arg(&keys[0])
        .arg(&elems)
        .query(&mut con)
        .unwrap();
    let workers: Vec<_> = (0..6u64)
        .map(|seed| {
            let mut con = server.conn();
            let keys = keys.clone();
            thread::spawn(move || {
                let mut rng = Rng(seed + 10);
                let mut moved = 0;
                for _ in 0..1000 {
                    let from = rng.below(SHARDS as u64) as usize;
                    let to = (from + 1 + rng.below(SHARDS as u64 - 1) as usize) % SHARDS;
                    let kind = rng.below(3);
                    let mut cmd = match kind {
                        0 => redis::cmd("RPOPLPUSH"),
                        1 => redis::cmd("LMOVE"),
                        _ => {
                            // LMPOP over all keys, pushing what it got to another key.
                            let r: Option<(String, Vec<String>)> = redis::cmd("LMPOP")
                                .arg(3)
                                .arg(&keys[from])
                                .arg(&keys[to])
                                .arg(&keys[(to + 1) % SHARDS])
                                .arg("RIGHT")
                                .query(&mut con)
                                .unwrap();
                            if let Some((_, v)) = r {
                                let _: i64 = redis::cmd("LPUSH")
                                    .arg(&keys[to])
                                    .arg(&v)
                                    .query(&mut con)
                                    .unwrap();
                                moved += 1;
                            }
                            continue;
                        }
                    };
                    cmd.arg(&keys[from]).arg(&keys[to]);
                    if kind == 1 {
                        cmd.arg("LEFT").arg("RIGHT");
                    }
                    let r: Option<String> = cmd.query(&mut con).unwrap();
                    moved += r.is_some() as i64;
                }
                moved
            })
        })
        .collect();
    let moved: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(moved > 0, "nothing moved");
    // Every element is in exactly one list: none lost, none duplicated.
    let mut all: Vec<String> = Vec::new();
    for k in &keys {
        let part: Vec<String> = redis::cmd("LRANGE")
            .arg(k)
            .arg(0)
            .arg(-1)
            .query(&mut con)
            .unwrap();
        all.extend(part);
    }
    all.sort();
    let mut want = elems.clone();
    want.sort();
    assert_eq!(all, want);
}

// ---- blocking commands ----

fn cmd(raw: &mut Raw, words: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    raw.call(&args)
}

fn send(raw: &mut Raw, words: &[&str]) {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    raw.send_cmd(&args);
}

/// Time for a sent blocking command to reach the server and block.
const SETTLE: Duration = Duration::from_millis(150);

#[test]
fn blocking_replies_without_waiting_match_stock_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let k: Vec<String> = (0..4)
        .map(|i| key_on_shard(&format!("b{i}:"), i % SHARDS, SHARDS))
        .collect();
    let (l0, l1, l2, st) = (&k[0][..], &k[1][..], &k[2][..], &k[3][..]);
    let w = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let mut s: Vec<Vec<String>> = vec![
        w(&["SET", st, "x"]),
        w(&["RPUSH", l1, "a", "b", "c", "d"]),
        w(&["BLPOP", "missing", l1, "0"]),
        w(&["BRPOP", "missing", l1, l2, "1"]),
        w(&["BLPOP", "missing", st, l1, "0"]),
        w(&["BLPOP", l1, st, "0"]),
        w(&["BLPOP", "missing", "0.01"]),
        w(&["BRPOP", "missing", "0.0001"]),
        w(&["BLMPOP", "0", "2", "missing", l1, "RIGHT", "COUNT", "5"]),
        w(&["EXISTS", l1]),
        w(&["RPUSH", l0, "1", "2", "3"]),
        w(&["BLMPOP", "0", "3", "missing", l2, l0, "LEFT"]),
        w(&["BLMPOP", "0", "2", st, l0, "LEFT"]),
        w(&["BLMPOP", "0.01", "1", "missing", "LEFT"]),
        w(&["BLMOVE", l0, l2, "RIGHT", "LEFT", "0"]),
        w(&["BLMOVE", l0, st, "RIGHT", "LEFT", "0"]),
        w(&["BLMOVE", st, l2, "RIGHT", "LEFT", "0"]),
        w(&["BRPOPLPUSH", l0, l2, "0"]),
        w(&["BRPOPLPUSH", l2, l2, "0"]),
        w(&["LRANGE", l2, "0", "-1"]),
        w(&["EXISTS", l0]),
        w(&["BLMOVE", "missing", l2, "LEFT", "LEFT", "0.01"]),
        w(&["BRPOPLPUSH", "missing", st, "0.01"]),
        // Inside MULTI nothing blocks: BLMOVE and BRPOPLPUSH answer a null bulk there,
        // the pops a null array.
        w(&["MULTI"]),
        w(&["BLMOVE", "missing", l2, "LEFT", "LEFT", "0"]),
        w(&["BRPOPLPUSH", "missing", l2, "0"]),
        w(&["BLPOP", "missing", "0"]),
        w(&["BLMPOP", "0", "1", "missing", "LEFT"]),
        w(&["BLMOVE", l2, l1, "LEFT", "LEFT", "0"]),
        w(&["BRPOPLPUSH", st, l1, "0"]),
        w(&["EXEC"]),
    ];
    // Argument errors, in Redis's order of checks.
    for t in [
        "x",
        "-1",
        "-0.5",
        "inf",
        "-inf",
        "nan",
        "1e16",
        " 1",
        "1 ",
        "",
        "1e",
        "9223372036854775.808",
    ] {
        s.push(w(&["BLPOP", l1, t]));
        s.push(w(&["BRPOPLPUSH", l1, l2, t]));
        s.push(w(&["BLMOVE", l1, l2, "LEFT", "RIGHT", t]));
        s.push(w(&["BLMPOP", t, "1", l1, "LEFT"]));
    }
    for t in ["-0.0001", "0x1p-20", "1e-400"] {
        // Waits that end at once (or never): only the ones that return are sent.
        if t != "-0.0001" {
            s.push(w(&["BLPOP", "missing", t]));
        }
    }
    s.extend([
        w(&["BLMOVE", l1, l2, "LEFT", "MIDDLE", "x"]),
        w(&["BLMOVE", l1, l2, "UP", "LEFT", "0"]),
        w(&["BLMPOP", "x", "0", l1, "LEFT"]),
        w(&["BLMPOP", "0", "0", l1, "LEFT"]),
        w(&["BLMPOP", "0", "2", l1, "LEFT"]),
        w(&["BLMPOP", "0", "1", l1, "LEFT", "COUNT", "0"]),
        w(&["BLMPOP", "0", "1", l1, "MIDDLE"]),
        w(&["BLPOP", l1]),
        w(&["BLMPOP", "0", "1", l1]),
    ]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        a.call(&[b"FLUSHALL"]);
        b.call(&[b"FLUSHALL"]);
        run_script(&mut a, &mut b, &s, if resp3 { "RESP3" } else { "RESP2" });
    }
}

/// Runs the same blocking scenario on a server and returns every reply, in order.
type Scenario = fn(port: u16, keys: &[String]) -> Vec<Vec<u8>>;

fn compare_scenario(name: &str, f: Scenario) {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let keys: Vec<String> = (0..SHARDS)
        .map(|s| key_on_shard(&format!("{name}{s}:"), s, SHARDS))
        .collect();
    let want = f(stock.port, &keys);
    let got = f(ours.port, &keys);
    let shown = |v: &[Vec<u8>]| v.iter().map(|r| show(r)).collect::<Vec<_>>();
    assert_eq!(shown(&got), shown(&want), "scenario {name}");
}

#[test]
fn blpop_woken_by_a_push_from_another_connection_on_any_shard() {
    compare_scenario("wake", |port, keys| {
        let mut out = Vec::new();
        let mut pusher = Raw::connect(port);
        for (i, k) in keys.iter().enumerate() {
            // One waiter per key, each on all three keys' shards at once for the last one.
            let mut waiter = Raw::connect(port);
            if i == keys.len() - 1 {
                send(
                    &mut waiter,
                    &["BRPOP", "nothing", &keys[0], &keys[1], k, "0"],
                );
            } else {
                send(&mut waiter, &["BLPOP", "nothing", k, "0"]);
            }
            thread::sleep(SETTLE);
            waiter.expect_silence(Duration::from_millis(50));
            out.push(cmd(&mut pusher, &["RPUSH", k, "v1", "v2"]));
            out.push(waiter.read_reply());
            out.push(cmd(&mut pusher, &["LRANGE", k, "0", "-1"]));
            out.push(cmd(&mut pusher, &["DEL", k]));
        }
        // RESP3 waiter, BLMPOP with COUNT.
        let mut waiter = Raw::connect(port);
        waiter.call(&[b"HELLO", b"3"]);
        send(
            &mut waiter,
            &["BLMPOP", "0", "2", "none", &keys[1], "RIGHT", "COUNT", "5"],
        );
        thread::sleep(SETTLE);
        out.push(cmd(&mut pusher, &["LPUSH", &keys[1], "x", "y"]));
        out.push(waiter.read_reply());
        out.push(cmd(&mut pusher, &["EXISTS", &keys[1]]));
        out
    });
}

#[test]
fn blocked_clients_are_served_first_come_first_served() {
    compare_scenario("fifo", |port, keys| {
        let mut out = Vec::new();
        let mut pusher = Raw::connect(port);
        let k = &keys[2];
        let mut waiters: Vec<Raw> = Vec::new();
        for i in 0..4 {
            let mut w = Raw::connect(port);
            // The second waiter also waits on another shard's key, where nothing arrives.
            if i == 1 {
                send(&mut w, &["BLPOP", &keys[0], k, "0"]);
            } else {
                send(&mut w, &["BLPOP", k, "0"]);
            }
            thread::sleep(SETTLE);
            waiters.push(w);
        }
        out.push(cmd(&mut pusher, &["RPUSH", k, "a", "b", "c"]));
        for w in waiters.iter_mut().take(3) {
            out.push(w.read_reply());
        }
        waiters[3].expect_silence(Duration::from_millis(100));
        out.push(cmd(&mut pusher, &["EXISTS", k]));
        out.push(cmd(&mut pusher, &["LPUSH", k, "d"]));
        out.push(waiters[3].read_reply());
        out
    });
}

#[test]
fn blmove_woken_moves_across_shards() {
    compare_scenario("mv", |port, keys| {
        let mut out = Vec::new();
        let mut pusher = Raw::connect(port);
        let (src, dst, other) = (&keys[0], &keys[1], &keys[2]);
        let mut w1 = Raw::connect(port);
        send(&mut w1, &["BLMOVE", src, dst, "LEFT", "RIGHT", "0"]);
        let mut w2 = Raw::connect(port);
        send(&mut w2, &["BRPOPLPUSH", src, other, "0"]);
        thread::sleep(SETTLE);
        out.push(cmd(&mut pusher, &["RPUSH", src, "a", "b", "c"]));
        out.push(w1.read_reply());
        out.push(w2.read_reply());
        for k in [src, dst, other] {
            out.push(cmd(&mut pusher, &["LRANGE", k, "0", "-1"]));
        }
        // Woken with a destination (same shard) of another type: the waiter gets WRONGTYPE
        // and the source keeps its element.
        let mut tag = 0;
        let dst_same = loop {
            let cand = format!("{{{src}}}d{tag}");
            tag += 1;
            if common::shard_of(cand.as_bytes(), SHARDS) == common::shard_of(src.as_bytes(), SHARDS)
            {
                break cand;
            }
        };
        out.push(cmd(&mut pusher, &["DEL", src]));
        send(&mut w1, &["BLMOVE", src, &dst_same, "RIGHT", "LEFT", "0"]);
        thread::sleep(SETTLE);
        out.push(cmd(&mut pusher, &["SET", &dst_same, "string"]));
        out.push(cmd(&mut pusher, &["RPUSH", src, "z"]));
        out.push(w1.read_reply());
        out.push(cmd(&mut pusher, &["LRANGE", src, "0", "-1"]));
        out
    });
}

#[test]
fn timeouts_fractional_and_in_resp3() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for port in [ours.port, stock.port] {
        for (resp3, want) in [(false, &b"*-1\r\n"[..]), (true, &b"_\r\n"[..])] {
            for words in [
                &["BLPOP", "none1", "none2", "0.3"][..],
                &["BRPOP", "none1", "0.3"],
                &["BLMOVE", "none1", "dst", "LEFT", "LEFT", "0.3"],
                &["BRPOPLPUSH", "none1", "dst", "0.3"],
                &["BLMPOP", "0.3", "2", "none1", "none2", "LEFT", "COUNT", "2"],
            ] {
                let mut c = Raw::connect(port);
                if resp3 {
                    c.call(&[b"HELLO", b"3"]);
                }
                let started = Instant::now();
                let got = cmd(&mut c, words);
                let took = started.elapsed();
                assert_eq!(show(&got), show(want), "port {port} {words:?}");
                assert!(
                    took >= Duration::from_millis(290) && took < Duration::from_secs(2),
                    "port {port} {words:?} took {took:?}"
                );
            }
        }
        // A timeout that rounds up to 1 ms ends at once; the connection stays usable.
        let mut c = Raw::connect(port);
        let started = Instant::now();
        assert_eq!(cmd(&mut c, &["BLPOP", "none", "0.0001"]), b"*-1\r\n");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(cmd(&mut c, &["PING"]), b"+PONG\r\n");
        // -0.0001 rounds up to 0: no timeout at all.
        send(&mut c, &["BLPOP", "never", "-0.0001"]);
        c.expect_silence(Duration::from_millis(400));
    }
}

#[test]
fn disconnect_while_blocked_leaves_the_pushed_element() {
    let server = Server::start(SHARDS, &[]);
    let keys: Vec<String> = (0..SHARDS).map(|s| key_on_shard("dc", s, SHARDS)).collect();
    let mut pusher = server.raw();
    for k in &keys {
        let mut w = server.raw();
        send(&mut w, &["BLPOP", "none", k, "0"]);
        let mut w2 = server.raw();
        send(
            &mut w2,
            &[
                "BLMOVE",
                k,
                &keys[(1 + keys.iter().position(|x| x == k).unwrap_or(0)) % SHARDS],
                "LEFT",
                "LEFT",
                "0",
            ],
        );
        thread::sleep(SETTLE);
        drop(w);
        drop(w2);
        // Give the server time to notice both clients left.
        thread::sleep(Duration::from_millis(200));
        assert_eq!(cmd(&mut pusher, &["RPUSH", k, "kept"]), b":1\r\n");
        thread::sleep(Duration::from_millis(50));
        assert_eq!(
            show(&cmd(&mut pusher, &["LRANGE", k, "0", "-1"])),
            show(b"*1\r\n$4\r\nkept\r\n"),
            "{k}"
        );
        assert_eq!(cmd(&mut pusher, &["DEL", k]), b":1\r\n");
    }
    let info = cmd(&mut pusher, &["INFO", "clients"]);
    assert!(
        String::from_utf8_lossy(&info).contains("blocked_clients:0"),
        "{}",
        show(&info)
    );
}

/// DEBUG OBJECT's quicklist fields: with a count-based node size, lists built by pushes and
/// split by an insert have the nodes stock Redis has.
#[test]
fn debug_object_shows_quicklist_nodes_like_redis() {
    let ours = Server::start(
        SHARDS,
        &[
            "--list-max-listpack-size",
            "3",
            "--enable-debug-command",
            "yes",
        ],
    );
    let stock = StockRedis::start(&[
        "--list-max-listpack-size",
        "3",
        "--enable-debug-command",
        "yes",
    ]);
    let nodes = |port: u16| -> Vec<String> {
        let mut c = Raw::connect(port);
        let mut out = Vec::new();
        let mut grab = |c: &mut Raw| {
            let r = String::from_utf8_lossy(&cmd(c, &["DEBUG", "OBJECT", "dl"])).into_owned();
            let fields: Vec<&str> = r
                .split_whitespace()
                .filter(|f| {
                    f.starts_with("encoding:")
                        || f.starts_with("ql_nodes:")
                        || f.starts_with("ql_avg_node:")
                        || f.starts_with("ql_listpack_max:")
                        || f.starts_with("ql_compressed:")
                })
                .collect();
            out.push(fields.join(" "));
        };
        let ten: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        let mut push = vec!["RPUSH", "dl"];
        push.extend(ten.iter().map(String::as_str));
        cmd(&mut c, &push);
        grab(&mut c);
        cmd(&mut c, &["LINSERT", "dl", "BEFORE", "2", "x"]);
        grab(&mut c);
        cmd(&mut c, &["LPUSH", "dl", "a", "b", "c", "d"]);
        grab(&mut c);
        cmd(&mut c, &["RPOP", "dl", "4"]);
        grab(&mut c);
        out
    };
    let want = nodes(stock.port);
    assert_eq!(
        want[0],
        "encoding:quicklist ql_nodes:4 ql_avg_node:2.50 ql_listpack_max:3 ql_compressed:0"
    );
    assert_eq!(nodes(ours.port), want);
}

/// DEBUG QUICKLIST-PACKED-THRESHOLD: elements at least that long live alone in plain nodes.
/// With a 100-byte threshold on both servers, the same pushes, inserts and replacements give
/// the node counts stock Redis has, DUMP of a pushed list is stock's byte for byte, each
/// server restores the other's DUMP, and the argument errors are Redis's.
#[test]
fn packed_threshold_puts_large_elements_in_plain_nodes_like_redis() {
    let args = ["--enable-debug-command", "yes"];
    let ours = Server::start(SHARDS, &args);
    let stock = StockRedis::start(&args);
    let (mut a, mut b) = (Raw::connect(ours.port), Raw::connect(stock.port));
    let both = |a: &mut Raw, b: &mut Raw, words: &[&str]| -> Vec<u8> {
        let want = cmd(b, words);
        let got = cmd(a, words);
        assert_eq!(show(&got), show(&want), "{words:?}");
        got
    };
    for bad in ["5gb", "abc", "-1", "4294967296"] {
        let r = both(
            &mut a,
            &mut b,
            &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", bad],
        );
        assert_eq!(
            show(&r),
            show(b"-ERR argument must be a memory value bigger than 1 and smaller than 4gb\r\n")
        );
    }
    assert_eq!(
        both(
            &mut a,
            &mut b,
            &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100b"]
        ),
        b"+OK\r\n"
    );
    let nodes = |c: &mut Raw| -> String {
        let r = String::from_utf8_lossy(&cmd(c, &["DEBUG", "OBJECT", "pl"])).into_owned();
        r.split_whitespace()
            .filter(|f| f.starts_with("ql_nodes:") || f.starts_with("ql_avg_node:"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (big1, big2, big3) = ("x".repeat(200), "y".repeat(100), "z".repeat(150));
    both(&mut a, &mut b, &["RPUSH", "pl", "a", "b", &big1, "c", "d"]);
    assert_eq!(nodes(&mut b), "ql_nodes:3 ql_avg_node:1.67");
    assert_eq!(nodes(&mut a), nodes(&mut b), "after RPUSH");
    let dump = both(&mut a, &mut b, &["DUMP", "pl"]);
    assert!(dump.starts_with(b"$"), "{}", show(&dump));
    let steps: Vec<Vec<&str>> = vec![
        vec!["LINSERT", "pl", "BEFORE", "d", &big2],
        vec!["LINSERT", "pl", "AFTER", "a", "a2"],
        vec!["LINSERT", "pl", "AFTER", &big1, "after-big"],
        vec!["LSET", "pl", "1", &big3],
        vec!["LSET", "pl", "1", "small-again"],
        vec!["LPUSH", "pl", &big1],
        vec!["RPUSH", "pl", "e", &big2, "f"],
        vec!["LPOP", "pl"],
    ];
    for step in &steps {
        both(&mut a, &mut b, step);
        both(&mut a, &mut b, &["LRANGE", "pl", "0", "-1"]);
        assert_eq!(nodes(&mut a), nodes(&mut b), "after {:?}", &step[..3]);
    }
    // Deleting from the middle: redcell merges the neighbours that fit together again (Redis
    // leaves them apart), so only the elements are compared.
    both(&mut a, &mut b, &["LREM", "pl", "0", &big2]);
    both(&mut a, &mut b, &["LRANGE", "pl", "0", "-1"]);
    // Each restores the other's serialization of the list as it is now.
    for ours_to_stock in [true, false] {
        let (from, to) = if ours_to_stock {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let payload = match from.call(&[b"DUMP", b"pl"]) {
            r if r.starts_with(b"$") => {
                let start = r.iter().position(|&c| c == b'\n').expect("bulk header") + 1;
                r[start..r.len() - 2].to_vec()
            }
            r => panic!("DUMP: {}", show(&r)),
        };
        assert_eq!(
            to.call(&[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]),
            b"+OK\r\n"
        );
        assert_eq!(
            to.call(&[b"LRANGE", b"copy", b"0", b"-1"]),
            to.call(&[b"LRANGE", b"pl", b"0", b"-1"])
        );
    }
    assert_eq!(
        both(
            &mut a,
            &mut b,
            &["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0"]
        ),
        b"+OK\r\n"
    );
}
