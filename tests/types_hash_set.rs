//! Hashes and sets against stock Redis 7.0: the same commands (RESP2 and RESP3) must give the
//! same bytes, or the same elements where Redis's hashtable order is arbitrary; SMOVE across
//! shards stays atomic under concurrency.

mod common;

use std::thread;

use common::{key_on_shard, pair, parse, show, Node, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

/// The reply with every aggregate's elements sorted (map pairs kept together).
fn unordered(n: Node) -> Node {
    match n {
        Node::Agg(t, Some(items)) => {
            let mut items: Vec<Node> = items.into_iter().map(unordered).collect();
            if t == b'%' {
                let mut pairs: Vec<Vec<Node>> = items.chunks(2).map(<[Node]>::to_vec).collect();
                pairs.sort();
                items = pairs.concat();
            } else {
                items.sort();
            }
            Node::Agg(t, Some(items))
        }
        other => other,
    }
}

fn node(bytes: &[u8]) -> Node {
    parse(bytes, &mut 0)
}

/// `=`: same bytes; `~`: same elements in any order.
fn run_script(a: &mut Raw, b: &mut Raw, script: &[(char, Vec<String>)], tag: &str) {
    for (mode, cmd) in script {
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let (want, got) = (b.call(&args), a.call(&args));
        if *mode == '=' {
            assert_eq!(show(&got), show(&want), "{tag} {cmd:?}");
        } else {
            assert_eq!(
                unordered(node(&got)),
                unordered(node(&want)),
                "{tag} {cmd:?}"
            );
        }
    }
}

fn script(k: &[String]) -> Vec<(char, Vec<String>)> {
    let mut s: Vec<(char, Vec<String>)> = Vec::new();
    let mut e =
        |mode: char, words: &[&str]| s.push((mode, words.iter().map(|w| w.to_string()).collect()));
    let (h, h2, s1, s2, s3, d) = (
        &k[0][..],
        &k[1][..],
        &k[2][..],
        &k[3][..],
        &k[4][..],
        &k[5][..],
    );
    let long = "x".repeat(65);
    // Hashes: replies, errors, listpack order, conversion.
    e('=', &["HSET", h, "f1", "v1", "f2", "v2", "n", "10"]);
    e('=', &["HSET", h, "f1"]);
    e('=', &["HMSET", h, "a", "1", "b"]);
    e('=', &["HGETALL", h]);
    e('=', &["HMGET", h, "f1", "nope", "n"]);
    e('=', &["HINCRBY", h, "n", "5"]);
    e('=', &["HINCRBY", h, "f1", "1"]);
    e('=', &["HINCRBY", h, "n", "9223372036854775807"]);
    e('=', &["HINCRBYFLOAT", h, "n", "0.1"]);
    e('=', &["HINCRBYFLOAT", h, "f1", "1"]);
    e('=', &["HINCRBYFLOAT", h, "n", "inf"]);
    e('=', &["HINCRBYFLOAT", h, "n", "x"]);
    e('=', &["HSTRLEN", h, "n"]);
    e('=', &["HSETNX", h, "f1", "z"]);
    e('=', &["HDEL", h, "f1", "nope"]);
    e('=', &["HKEYS", h]);
    e('=', &["HVALS", h]);
    e('=', &["HGETALL", "missing"]);
    e('=', &["HRANDFIELD", h, "-9223372036854775808"]);
    e('=', &["HRANDFIELD", h, "4611686018427387904", "WITHVALUES"]);
    e('=', &["HRANDFIELD", h, "1", "nope"]);
    e('~', &["HRANDFIELD", h, "10", "WITHVALUES"]);
    e('=', &["HRANDFIELD", "missing", "3"]);
    e('=', &["HSCAN", h, "0", "MATCH", "f*"]);
    e('=', &["HSCAN", h, "x"]);
    e('=', &["HSCAN", h, "0", "COUNT", "0"]);
    e('=', &["OBJECT", "ENCODING", h]);
    e('=', &["HSET", h2, "f", &long]);
    e('=', &["OBJECT", "ENCODING", h2]);
    e('=', &["GET", h]);
    e('=', &["HDEL", h2, "f"]);
    e('=', &["EXISTS", h2]);
    // Sets: intset order, conversion, errors, algebra across shards.
    e('=', &["SADD", s1, "3", "1", "-2", "70000", "1"]);
    e('=', &["SMEMBERS", s1]);
    e('=', &["OBJECT", "ENCODING", s1]);
    e('=', &["SADD", s2, "1", "a", "3"]);
    e('=', &["OBJECT", "ENCODING", s2]);
    e('=', &["SMISMEMBER", s2, "a", "b", "1"]);
    e('~', &["SINTER", s1, s2]);
    e('=', &["SUNION", s1, s1]);
    e('~', &["SUNION", s1, s2]);
    e('=', &["SDIFF", s1, s2, "missing"]);
    e('=', &["SINTERCARD", "2", s1, s2, "LIMIT", "1"]);
    e('=', &["SINTERCARD", "3", s1, s2]);
    e('=', &["SINTERCARD", "0", s1]);
    e('=', &["SINTERSTORE", d, s1, s2]);
    e('=', &["SMEMBERS", d]);
    e('=', &["OBJECT", "ENCODING", d]);
    e('=', &["SDIFFSTORE", d, s1, s1]);
    e('=', &["EXISTS", d]);
    e('=', &["SUNIONSTORE", d, s1, h]);
    e('=', &["SMOVE", s1, s3, "70000"]);
    e('=', &["SMOVE", s1, h, "1"]);
    e('=', &["SMOVE", "missing", h, "1"]);
    e('=', &["SMEMBERS", s3]);
    e('=', &["OBJECT", "ENCODING", s3]);
    e('=', &["SPOP", s1, "-1"]);
    e('=', &["SPOP", s3, "5"]);
    e('=', &["EXISTS", s3]);
    e('=', &["SRANDMEMBER", s1, "1", "2"]);
    e('=', &["SRANDMEMBER", s1, "100"]);
    e('=', &["SSCAN", s1, "0"]);
    e('=', &["TYPE", s1]);
    e('=', &["TYPE", h]);
    s
}

#[test]
fn replies_match_stock_redis_resp2_and_resp3() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    // Six keys spread over the three shards, so the multi-key commands cross them.
    let k: Vec<String> = (0..6)
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
fn encodings_follow_thresholds_like_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut s: Vec<(char, Vec<String>)> = Vec::new();
    let w = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    for i in 0..513 {
        s.push(('=', w(&["SADD", "ints", &i.to_string()])));
        s.push(('=', w(&["HSET", "big", &format!("f{i}"), "v"])));
        if i % 64 == 0 || i >= 510 {
            s.push(('=', w(&["OBJECT", "ENCODING", "ints"])));
            s.push(('=', w(&["OBJECT", "ENCODING", "big"])));
        }
    }
    s.push(('=', w(&["CONFIG", "SET", "hash-max-listpack-entries", "2"])));
    s.push(('=', w(&["HSET", "small", "a", "1", "b", "2"])));
    s.push(('=', w(&["OBJECT", "ENCODING", "small"])));
    s.push(('=', w(&["HSET", "small", "c", "3"])));
    s.push(('=', w(&["OBJECT", "ENCODING", "small"])));
    s.push(('~', w(&["HGETALL", "big"])));
    run_script(&mut a, &mut b, &s, "thresholds");
}

/// A seeded random command over a few keys (on every shard) and small member pools.
fn random_command(rng: &mut Rng, keys: &[String]) -> Vec<String> {
    let key = |rng: &mut Rng| keys[rng.below(keys.len() as u64) as usize].clone();
    let member = |rng: &mut Rng| match rng.below(10) {
        0..=3 => (rng.below(40) as i64 - 20).to_string(),
        4..=8 => format!("m{}", rng.below(30)),
        _ => "L".repeat(60 + rng.below(10) as usize),
    };
    let k = key(rng);
    let mut v: Vec<String> = match rng.below(16) {
        0 | 1 => vec![
            "HSET".into(),
            k,
            member(rng),
            member(rng),
            member(rng),
            member(rng),
        ],
        2 => vec!["HDEL".into(), k, member(rng), member(rng)],
        3 => vec!["HINCRBY".into(), k, member(rng), "3".into()],
        4 => vec!["HGETALL".into(), k],
        5 => vec!["HMGET".into(), k, member(rng), member(rng)],
        6 | 7 => vec!["SADD".into(), k, member(rng), member(rng), member(rng)],
        8 => vec!["SREM".into(), k, member(rng), member(rng)],
        9 => vec!["SMEMBERS".into(), k],
        10 => vec!["SMOVE".into(), k, key(rng), member(rng)],
        11 => vec!["SINTERSTORE".into(), k, key(rng), key(rng)],
        12 => vec!["SUNIONSTORE".into(), k, key(rng), key(rng)],
        13 => vec!["SDIFF".into(), k, key(rng)],
        14 => vec!["SPOP".into(), k, "1000".into()],
        _ => vec!["OBJECT".into(), "ENCODING".into(), k],
    };
    if rng.below(50) == 0 {
        v = vec!["SET".into(), keys[0].clone(), "str".into()];
    }
    v
}

#[test]
fn random_sequences_match_stock_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let keys: Vec<String> = (0..6)
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
            if want != got {
                // Only the order of a hashtable's elements may differ.
                assert_eq!(
                    unordered(node(&got)),
                    unordered(node(&want)),
                    "seed {seed} #{i} {cmd:?}: ours {} redis {}",
                    show(&got),
                    show(&want)
                );
            }
        }
        for k in &keys {
            let args: [&[u8]; 3] = [b"OBJECT", b"ENCODING", k.as_bytes()];
            assert_eq!(
                show(&a.call(&args)),
                show(&b.call(&args)),
                "final encoding of {k}"
            );
        }
    }
}

#[test]
fn smove_across_shards_is_atomic() {
    let server = Server::start(SHARDS, &[]);
    let keys: Vec<String> = (0..SHARDS).map(|s| key_on_shard("mv", s, SHARDS)).collect();
    let members: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let mut con = server.conn();
    let _: i64 = redis::cmd("SADD")
        .arg(&keys[0])
        .arg(&members)
        .query(&mut con)
        .unwrap();
    let workers: Vec<_> = (0..6u64)
        .map(|seed| {
            let mut con = server.conn();
            let (keys, members) = (keys.clone(), members.clone());
            thread::spawn(move || {
                let mut rng = Rng(seed + 10);
                let mut moved = 0;
                for _ in 0..1500 {
                    let from = rng.below(SHARDS as u64) as usize;
                    let to = (from + 1 + rng.below(SHARDS as u64 - 1) as usize) % SHARDS;
                    let m = &members[rng.below(members.len() as u64) as usize];
                    let r: i64 = redis::cmd("SMOVE")
                        .arg(&keys[from])
                        .arg(&keys[to])
                        .arg(m)
                        .query(&mut con)
                        .unwrap();
                    moved += r;
                }
                moved
            })
        })
        .collect();
    let moved: i64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(moved > 0, "no SMOVE succeeded");
    // Every member is in exactly one set: none lost, none duplicated.
    let mut all: Vec<String> = Vec::new();
    for k in &keys {
        let part: Vec<String> = redis::cmd("SMEMBERS").arg(k).query(&mut con).unwrap();
        all.extend(part);
    }
    all.sort();
    let mut want = members.clone();
    want.sort();
    assert_eq!(all, want);
}
