//! Sorted sets against stock Redis 7.0: scripted edge cases and a seeded random sequence give
//! the same bytes in RESP2 and RESP3 on a 3-shard redcell (multi-key commands crossing
//! shards); encodings follow the thresholds; blocking pops wake across shards, in FIFO order,
//! time out, and leave no trace when their client goes away.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{key_on_shard, pair, show, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

/// Words of a script line; a word starting with `K` names a key, placed on shard
/// (n-th distinct key) % SHARDS so that multi-key commands cross shards.
fn words(line: &str, keys: &mut HashMap<String, String>) -> Vec<String> {
    line.split_whitespace()
        .map(|w| {
            if w.starts_with('K') {
                let n = keys.len();
                keys.entry(w.to_string())
                    .or_insert_with(|| key_on_shard(&format!("{w}:"), n % SHARDS, SHARDS))
                    .clone()
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// Runs every line on both servers and asserts byte-identical replies.
fn run_script(a: &mut Raw, b: &mut Raw, script: &str, tag: &str) {
    let mut keys = HashMap::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let cmd = words(line, &mut keys);
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let (want, got) = (b.call(&args), a.call(&args));
        assert_eq!(show(&got), show(&want), "{tag} {line}");
    }
}

const BASICS: &str = "
    FLUSHALL
    ZADD Kz 1 a 2 b 3 c
    ZADD Kz nx xx 1 a
    ZADD Kz gt lt 1 a
    ZADD Kz gt nx 1 a
    ZADD Kz incr 1 a 2 b
    ZADD Kz 1 a 2
    ZADD Kz
    ZADD Kz x a
    ZADD Kz nan a
    ZADD Kz 1e400 a
    ZADD Kz incr inf a
    ZADD Kz incr -inf a
    ZADD Kz 0x10 hex 1e3 e3 -0 negz 0.1 tenth
    ZSCORE Kz hex
    ZSCORE Kz negz
    ZSCORE Kz tenth
    ZADD Kz ch gt 5 a 0 b 7 new
    ZADD Kz ch lt xx 5 a 0 b 7 nothere
    ZADD Kz xx incr 1 nope
    ZADD Kz nx incr 1 a
    ZINCRBY Kz 1.5 a
    ZINCRBY Kz nx a
    ZINCRBY Kz abc a
    ZRANGE Kz 0 -1 WITHSCORES
    ZRANGE Kz 0 -1 REV WITHSCORES
    ZRANGE Kz (1 5 BYSCORE WITHSCORES
    ZRANGE Kz 5 (1 BYSCORE REV WITHSCORES LIMIT 1 2
    ZRANGE Kz 0 -1 LIMIT 0 1
    ZRANGE Kz - + BYLEX WITHSCORES
    ZRANGE Kz 0 -1 BYSCORE BYLEX
    ZRANGE Kz 0 -1 REV REV
    ZRANGE Kz a b BYSCORE
    ZRANGE Kz 0 1 LIMIT 0
    ZRANGE Kz 0 -1 LIMIT x 1 BYSCORE
    ZRANGEBYSCORE Kz -inf +inf WITHSCORES LIMIT 1 -1
    ZRANGEBYSCORE Kz -inf +inf LIMIT -1 1
    ZRANGEBYSCORE Kz -inf +inf LIMIT 100 1
    ZRANGEBYSCORE Kz -inf +inf REV
    ZRANGEBYSCORE Kz (-inf (inf
    ZRANGEBYSCORE Kz ( (10
    ZREVRANGEBYSCORE Kz +inf -inf WITHSCORES
    ZREVRANGEBYSCORE Kz 5 1
    ZRANGEBYLEX Kz - + WITHSCORES
    ZREVRANGEBYLEX Kz + - LIMIT 0 2
    ZRANGEBYLEX Kz a b
    ZRANGEBYLEX Kz +a -
    ZREVRANGE Kz 0 1 WITHSCORES
    ZREVRANGE Kz -100 100
    ZRANGE Kz 5 1
    ZRANGE Kz x 1
    ZRANGE Kz -1 -2
    ZCOUNT Kz -inf +inf
    ZCOUNT Kz (1 (3
    ZCOUNT Kz a b
    ZLEXCOUNT Kz - +
    ZLEXCOUNT Kz a c
    ZRANK Kz a
    ZRANK Kz nope
    ZREVRANK Kz a
    ZRANK Kz a WITHSCORE
    ZRANK Kmissing a
    ZCARD Kz
    ZCARD Kmissing
    ZMSCORE Kz a nope b
    ZMSCORE Kmissing a
    ZSCORE Kmissing a
    SET Kstr str
    ZADD Kstr 1 a
    ZRANGE Kstr 0 -1
    ZCARD Kstr
    ZSCORE Kstr a
    ZRANGEBYSCORE Kstr x 1
    ZCOUNT Kstr 0 1
    ZREM Kz a nope
    ZREM Kz b c e3 hex negz new tenth
    EXISTS Kz
    ZADD Kz2 1 a 2 b 3 c 4 d 5 e
    ZREMRANGEBYRANK Kz2 1 2
    ZRANGE Kz2 0 -1
    ZREMRANGEBYSCORE Kz2 (1 4
    ZREMRANGEBYLEX Kz2 - +
    EXISTS Kz2
    ZADD Kz3 0 a 0 b 0 c 0 d
    ZREMRANGEBYLEX Kz3 [b (d
    ZRANGE Kz3 0 -1
    ZREMRANGEBYRANK Kz3 x 1
    ZREMRANGEBYRANK Kz3 5 10
    ZREMRANGEBYSCORE Kz3 a 1
    ZREMRANGEBYLEX Kz3 a 1
    ZREMRANGEBYLEX Kstr - +
    ZPOPMIN Kz3
    ZPOPMAX Kz3 5
    ZPOPMIN Kz3 -1
    ZPOPMIN Kz3 1 2
    ZPOPMIN Kmissing
    ZPOPMIN Kmissing 0
    ZPOPMIN Kstr
    ZADD Kz4 1 a 2 b 3 c
    ZPOPMIN Kz4 0
    ZPOPMAX Kz4 2
    OBJECT ENCODING Kz4
    TYPE Kz4
    ZRANDMEMBER Kmissing
    ZRANDMEMBER Kmissing 5
    ZRANDMEMBER Kz4 -9223372036854775808
    ZRANDMEMBER Kz4 9223372036854775807 WITHSCORES
    ZRANDMEMBER Kz4 5 WITHSCORES
    ZADD Kz5 1 a 2 b 3 c
    ZRANDMEMBER Kz5 100 WITHSCORES
    ZRANDMEMBER Kz5 3
    ZRANDMEMBER Kz4 1 foo
    ZRANDMEMBER Kz4 1 WITHSCORES x
    ZRANDMEMBER Kz4 0
    ZRANDMEMBER Kz4 -3 WITHSCORES
    ZRANDMEMBER Kstr
    EXPIRE Kz4 100
    ZADD Kz4 9 q
    ZINCRBY Kz4 1 q
    ZREM Kz4 q
    TTL Kz4
    ZRANGESTORE Kz4 Kz4 0 -1
    TTL Kz4
    ZSCAN Kz4 0
    ZSCAN Kz4 x
    ZSCAN Kz4 0 COUNT 0
    ZSCAN Kz4 0 MATCH b*
    ZSCAN Kmissing 0
    ZSCAN Kstr 0
";

const ALGEBRA: &str = "
    FLUSHALL
    ZADD Ka 1 x 2 y 3 z
    ZADD Kb 10 y 20 z 30 w
    SADD Ks y w q
    ZADD Kc inf x -inf y
    ZUNION 2 Ka Kb WITHSCORES
    ZUNION 3 Ka Kb Ks WITHSCORES
    ZUNION 3 Ka Kb Ks WEIGHTS 1 2 3 WITHSCORES
    ZUNION 3 Ka Kb Ks WEIGHTS 1 2 WITHSCORES
    ZUNION 3 Ka Kb Ks WEIGHTS 1 2 x WITHSCORES
    ZUNION 3 Ka Kb Ks AGGREGATE min WITHSCORES
    ZUNION 3 Ka Kb Ks AGGREGATE MAX WITHSCORES
    ZUNION 3 Ka Kb Ks AGGREGATE foo
    ZUNION 2 Ka Kc WEIGHTS 0 1 WITHSCORES
    ZUNION 2 Kc Kc WITHSCORES
    ZINTER 2 Kc Kc WITHSCORES
    ZINTER 2 Ka Kb WITHSCORES
    ZINTER 3 Ka Kb Ks WITHSCORES
    ZINTER 2 Ka Kmissing WITHSCORES
    ZINTER 2 Ka Kb AGGREGATE max WEIGHTS 2 0.5 WITHSCORES
    ZDIFF 2 Ka Kb WITHSCORES
    ZDIFF 2 Ka Kb WEIGHTS 1 1
    ZDIFF 1 Ka WITHSCORES
    ZDIFF 2 Kmissing Ka
    ZDIFF 2 Ks Ka WITHSCORES
    ZUNION 0 Ka
    ZUNION -1 Ka
    ZUNION x Ka
    ZUNION 3 Ka Kb
    ZINTER 1 Ka WITHSCORES WITHSCORES
    ZINTERCARD 2 Ka Kb
    ZINTERCARD 2 Ka Kb LIMIT 1
    ZINTERCARD 2 Ka Kb LIMIT -1
    ZINTERCARD 2 Ka Kb LIMIT x
    ZINTERCARD 0 Ka
    ZINTERCARD 2 Ka Kb WITHSCORES
    ZUNIONSTORE Kd 3 Ka Kb Ks
    ZRANGE Kd 0 -1 WITHSCORES
    OBJECT ENCODING Kd
    ZINTERSTORE Kd 2 Ka Kmissing
    EXISTS Kd
    ZDIFFSTORE Kd 2 Ka Kb
    ZRANGE Kd 0 -1 WITHSCORES
    ZUNIONSTORE Kd 2 Ka Kb WITHSCORES
    ZUNIONSTORE Kd 0 Ka
    SET Kstr x
    ZUNION 2 Ka Kstr
    ZUNION 2 Kstr Ka foo
    ZUNIONSTORE Kstr 1 Ka
    TYPE Kstr
    ZINTERSTORE Kd2 2 Ka Kb WEIGHTS 1
    ZRANGESTORE Kdst Ka 0 -1
    ZRANGE Kdst 0 -1 WITHSCORES
    ZRANGESTORE Kdst Ka 0 -1 WITHSCORES
    ZRANGESTORE Kdst Ka (1 +inf BYSCORE LIMIT 0 1
    ZRANGE Kdst 0 -1 WITHSCORES
    ZRANGESTORE Kdst Kmissing 0 -1
    EXISTS Kdst
    ZRANGESTORE Kdst Ka [x [y BYLEX
    ZRANGESTORE Kdst Ka 0 -1 REV
    ZRANGE Kdst 0 -1 WITHSCORES
    ZRANGESTORE Kdst Kstr 0 -1
    ZMPOP 2 Kmissing Ka MIN
    ZMPOP 2 Kmissing Ka MAX COUNT 5
    ZMPOP 2 Kmissing Kb MIN COUNT 0
    ZMPOP 0 Ka MIN
    ZMPOP x Ka MIN
    ZMPOP 1 Ka
    ZMPOP 1 Ka foo
    ZMPOP 1 Kb MIN COUNT 1 COUNT 1
    ZMPOP 1 Kmissing MIN
    ZMPOP 2 Kstr Kb MIN
    ZMPOP 2 Kb Kstr MIN
    EXISTS Ka
";

const BLOCKING_IMMEDIATE: &str = "
    FLUSHALL
    ZADD Ka 1 x 2 y 3 z
    SET Kstr v
    BZPOPMIN Ka 0
    BZPOPMAX Kmissing Ka 0
    BZPOPMIN Kmissing 0.01
    BZPOPMIN Ka x
    BZPOPMIN Ka -1
    BZPOPMIN Kstr Ka 0
    BZPOPMIN Kmissing Kstr 0
    BZMPOP 0 1 Ka MIN
    ZADD Ka 5 p 6 q
    BZMPOP 0 1 Ka MAX COUNT 5
    ZADD Ka 7 r 8 s
    BZMPOP 0.01 2 Kmissing Ka MIN
    BZMPOP x 1 Ka MIN
    BZMPOP 0 0 Ka MIN
    BZMPOP x 0 Ka MIN
    BZMPOP 0 1 Ka foo
    BZMPOP 0 1 Kstr MIN
    BZMPOP 0.01 1 Kmissing MIN COUNT 0
    BZMPOP 0.01 1 Kmissing MIN
    EXISTS Ka
";

#[test]
fn replies_match_stock_redis_resp2_and_resp3() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        let tag = if resp3 { "RESP3" } else { "RESP2" };
        run_script(&mut a, &mut b, BASICS, tag);
        run_script(&mut a, &mut b, ALGEBRA, tag);
        run_script(&mut a, &mut b, BLOCKING_IMMEDIATE, tag);
    }
}

#[test]
fn encodings_follow_thresholds_like_redis() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut s = String::from("FLUSHALL\n");
    for i in 0..130 {
        s += &format!("ZADD Kbig {} m{i}\n", i % 7);
        if i >= 126 {
            s += "OBJECT ENCODING Kbig\n";
        }
    }
    let x64 = "x".repeat(64);
    let x65 = "x".repeat(65);
    s += &format!(
        "ZADD Klong 1 {x64}\nOBJECT ENCODING Klong\nZADD Klong2 1 {x65}\nOBJECT ENCODING Klong2\n"
    );
    s += &format!("ZADD Klong3 1 a 2 {x65}\nOBJECT ENCODING Klong3\n");
    s += "
        ZRANGE Kbig 0 -1 WITHSCORES
        ZRANDMEMBER Kbig 500 WITHSCORES
        ZRANK Kbig m77
        ZREVRANK Kbig m77
        ZRANGEBYSCORE Kbig (2 4 WITHSCORES LIMIT 3 10
        ZREVRANGEBYSCORE Kbig 4 (2 WITHSCORES LIMIT 3 10
        ZCOUNT Kbig 1 (3
        ZRANGESTORE Ksmall Kbig 0 9
        OBJECT ENCODING Ksmall
        ZRANGESTORE Ksmall Kbig 0 200
        OBJECT ENCODING Ksmall
        ZRANGESTORE Ksmall Kbig 0 (3 BYSCORE
        OBJECT ENCODING Ksmall
        ZUNIONSTORE Ku 1 Kbig
        OBJECT ENCODING Ku
        ZINTERSTORE Ku2 2 Kbig Ksmall
        OBJECT ENCODING Ku2
        ZREMRANGEBYRANK Kbig 0 120
        OBJECT ENCODING Kbig
        ZRANGE Kbig 0 -1 WITHSCORES
        ZPOPMIN Kbig 3
        ZPOPMAX Kbig 3
        ZADD Kf 0.1 a 1e20 b 1e17 c -0 d 3.5 e 1e-5 f inf g
        ZSCAN Kf 0
        ZRANGE Kf 0 -1 WITHSCORES
        CONFIG SET zset-max-listpack-entries 2
        ZADD Kt 1 a 2 b
        OBJECT ENCODING Kt
        ZADD Kt 3 c
        OBJECT ENCODING Kt
        ZREM Kt a b
        OBJECT ENCODING Kt
        CONFIG SET zset-max-listpack-entries 0
        ZADD Kt0 1 a
        OBJECT ENCODING Kt0
        CONFIG SET zset-max-listpack-entries 128
        CONFIG SET zset-max-listpack-value 1
        ZADD Kt1 1 ab
        OBJECT ENCODING Kt1
        ZADD Kt2 1 a 2 bb
        OBJECT ENCODING Kt2
        CONFIG SET zset-max-listpack-value 64
        ZADD Klx 0 a 0 b 0 c 0 d 0 e 0 f
        ZRANGEBYLEX Klx (b [e
        ZREVRANGEBYLEX Klx [e (b LIMIT 1 2
        ZLEXCOUNT Klx (a +
        ZRANGEBYLEX Klx + -
        ZRANGEBYLEX Klx [c [a
        ZRANGE Klx [e (b BYLEX REV
        ZADD Kneg 1 long-member-long-member-long-member-long-member-long-member-long-mem
        ZADD Kneg -0 z
        ZSCORE Kneg z
        ZADD Kneg2 -0 z
        ZSCORE Kneg2 z
    ";
    run_script(&mut a, &mut b, &s, "thresholds");
    // A skiplist's ZSCAN order is its hashtable's: compare the pairs as a map.
    let mut keys = HashMap::new();
    let cmd = words("ZADD Kbig2 1 m1", &mut keys);
    let big = &cmd[1];
    for i in 0..300 {
        let m = format!("m{i}");
        let sc = format!("{}", i as f64 / 3.0);
        let args: [&[u8]; 4] = [b"ZADD", big.as_bytes(), sc.as_bytes(), m.as_bytes()];
        assert_eq!(a.call(&args), b.call(&args));
    }
    let scan_all = |c: &mut Raw| {
        let mut got: Vec<(String, String)> = Vec::new();
        let mut cursor = "0".to_string();
        loop {
            let r = c.call(&[b"ZSCAN", big.as_bytes(), cursor.as_bytes(), b"COUNT", b"7"]);
            let text = String::from_utf8(r).unwrap();
            let lines: Vec<&str> = text.split("\r\n").collect();
            // *2 $n cursor *m then ($len value) pairs
            cursor = lines[2].to_string();
            let vals: Vec<&str> = lines[4..].iter().skip(1).step_by(2).copied().collect();
            for p in vals.chunks(2).filter(|p| p.len() == 2) {
                got.push((p[0].to_string(), p[1].to_string()));
            }
            if cursor == "0" {
                break;
            }
        }
        got.sort();
        got.dedup();
        got
    };
    let (ours_scan, stock_scan) = (scan_all(&mut a), scan_all(&mut b));
    assert_eq!(ours_scan.len(), 300);
    assert_eq!(ours_scan, stock_scan);
}

/// A seeded random command over keys on every shard. `lex` only ever holds score 0, so the
/// lex commands (whose result Redis leaves unspecified for mixed scores) run on it alone.
fn random_command(rng: &mut Rng, keys: &[String], lex: &str) -> Vec<String> {
    let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    let key = |rng: &mut Rng| keys[pick(rng, keys.len())].clone();
    let member = |rng: &mut Rng| match rng.below(20) {
        0 => "L".repeat(60 + rng.below(10) as usize),
        1..=4 => (rng.below(20) as i64 - 5).to_string(),
        _ => format!("m{}", rng.below(160)),
    };
    let score = |rng: &mut Rng| {
        [
            "0", "1", "-1", "2.5", "0.1", "1e3", "-3.25", "inf", "-inf", "7", "(2", "3",
        ][pick(rng, 11)]
        .to_string()
    };
    let bound = |rng: &mut Rng| {
        [
            "-inf", "+inf", "0", "(0", "1", "(2.5", "3", "-1", "(inf", "5",
        ][pick(rng, 10)]
        .to_string()
    };
    let lexb = |rng: &mut Rng| {
        ["-", "+", "[m1", "(m1", "[m5", "(m9", "[1", "[", "(L"][pick(rng, 9)].to_string()
    };
    let idx = |rng: &mut Rng| (rng.below(30) as i64 - 15).to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let k = key(rng);
    let mut v: Vec<String> = match rng.below(34) {
        0..=4 => {
            let mut v = vec!["ZADD".to_string(), k];
            for opt in ["NX", "XX", "GT", "LT", "CH"] {
                if rng.below(8) == 0 {
                    v.push(opt.into());
                }
            }
            let n = if rng.below(10) == 0 {
                40
            } else {
                1 + pick(rng, 4)
            };
            for _ in 0..n {
                v.push(score(rng).trim_start_matches('(').to_string());
                v.push(member(rng));
            }
            v
        }
        5 => vec![
            "ZINCRBY".into(),
            k,
            score(rng).replace('(', ""),
            member(rng),
        ],
        6 => vec![
            "ZADD".into(),
            k,
            "INCR".into(),
            score(rng).replace('(', ""),
            member(rng),
        ],
        7 => vec!["ZREM".into(), k, member(rng), member(rng), member(rng)],
        8 => vec!["ZRANGE".into(), k, idx(rng), idx(rng), "WITHSCORES".into()],
        9 => vec!["ZRANGE".into(), k, idx(rng), idx(rng), "REV".into()],
        10 => {
            let mut v = vec![
                "ZRANGEBYSCORE".into(),
                k,
                bound(rng),
                bound(rng),
                "WITHSCORES".into(),
            ];
            if rng.below(2) == 0 {
                v.extend(["LIMIT".into(), idx(rng), idx(rng)]);
            }
            v
        }
        11 => vec![
            "ZREVRANGEBYSCORE".into(),
            k,
            bound(rng),
            bound(rng),
            "LIMIT".into(),
            "1".into(),
            "3".into(),
        ],
        12 => vec!["ZCOUNT".into(), k, bound(rng), bound(rng)],
        13 => vec!["ZRANK".into(), k, member(rng)],
        14 => vec!["ZREVRANK".into(), k, member(rng)],
        15 => vec!["ZSCORE".into(), k, member(rng)],
        16 => vec!["ZMSCORE".into(), k, member(rng), member(rng)],
        17 => vec!["ZREMRANGEBYRANK".into(), k, idx(rng), idx(rng)],
        18 => vec!["ZREMRANGEBYSCORE".into(), k, bound(rng), bound(rng)],
        19 => vec![
            if rng.below(2) == 0 {
                "ZPOPMIN"
            } else {
                "ZPOPMAX"
            }
            .into(),
            k,
            pick(rng, 4).to_string(),
        ],
        20 => {
            let op = ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"][pick(rng, 3)];
            let mut v = vec![op.to_string(), k, "2".into(), key(rng), key(rng)];
            if op != "ZDIFFSTORE" && rng.below(2) == 0 {
                v.extend(s(&["WEIGHTS", "2", "-0.5"]));
            }
            if op != "ZDIFFSTORE" && rng.below(2) == 0 {
                v.extend([
                    "AGGREGATE".into(),
                    ["SUM", "MIN", "MAX"][pick(rng, 3)].into(),
                ]);
            }
            v
        }
        21 => {
            let op = ["ZUNION", "ZINTER", "ZDIFF"][pick(rng, 3)];
            vec![
                op.into(),
                "3".into(),
                key(rng),
                key(rng),
                key(rng),
                "WITHSCORES".into(),
            ]
        }
        22 => vec![
            "ZRANGESTORE".into(),
            k,
            key(rng),
            bound(rng),
            bound(rng),
            "BYSCORE".into(),
        ],
        23 => vec![
            "ZINTERCARD".into(),
            "2".into(),
            key(rng),
            k,
            "LIMIT".into(),
            pick(rng, 3).to_string(),
        ],
        24 => vec![
            "ZMPOP".into(),
            "2".into(),
            k,
            key(rng),
            "MAX".into(),
            "COUNT".into(),
            (1 + pick(rng, 3)).to_string(),
        ],
        25 => vec!["ZCARD".into(), k],
        26 => vec!["OBJECT".into(), "ENCODING".into(), k],
        27 => vec![
            "ZADD".into(),
            lex.into(),
            "0".into(),
            member(rng),
            "0".into(),
            member(rng),
        ],
        28 => vec!["ZRANGEBYLEX".into(), lex.into(), lexb(rng), lexb(rng)],
        29 => vec![
            "ZREVRANGEBYLEX".into(),
            lex.into(),
            lexb(rng),
            lexb(rng),
            "LIMIT".into(),
            "0".into(),
            "4".into(),
        ],
        30 => vec!["ZLEXCOUNT".into(), lex.into(), lexb(rng), lexb(rng)],
        31 => vec!["ZREMRANGEBYLEX".into(), lex.into(), lexb(rng), lexb(rng)],
        32 => vec![
            "ZRANGE".into(),
            lex.into(),
            lexb(rng),
            lexb(rng),
            "BYLEX".into(),
        ],
        _ => vec![
            "ZRANGE".into(),
            k,
            "0".into(),
            "-1".into(),
            "WITHSCORES".into(),
        ],
    };
    if rng.below(25) == 0 {
        // Now and then a burst of members, so keys grow past the listpack.
        v = vec!["ZADD".into(), key(rng)];
        for _ in 0..60 {
            v.push(score(rng).replace('(', ""));
            v.push(member(rng));
        }
    }
    if rng.below(80) == 0 {
        v = vec!["SADD".into(), keys[0].clone(), member(rng)];
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
    let lex = key_on_shard("lex:", 1, SHARDS);
    for (seed, resp3) in [(11u64, false), (12, true)] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        a.call(&[b"FLUSHALL"]);
        b.call(&[b"FLUSHALL"]);
        let mut rng = Rng(seed);
        let (mut errors, mut nulls, mut skiplists) = (0, 0, 0);
        for i in 0..4000 {
            let cmd = random_command(&mut rng, &keys, &lex);
            let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
            let (want, got) = (b.call(&args), a.call(&args));
            assert_eq!(
                show(&got),
                show(&want),
                "seed {seed} #{i} {:?}",
                cmd.iter()
                    .map(|s| &s[..s.len().min(20)])
                    .collect::<Vec<_>>()
            );
            errors += (want.first() == Some(&b'-')) as usize;
            nulls += (want == b"$-1\r\n" || want == b"_\r\n") as usize;
            skiplists += (want == b"$8\r\nskiplist\r\n") as usize;
        }
        // The sequence must reach the error paths, the misses and the big encoding.
        assert!(errors > 10 && nulls > 10, "errors {errors}, nulls {nulls}");
        for k in keys.iter().chain([&lex]) {
            for c in [&b"OBJECT"[..], b"ZRANGE"] {
                let args: Vec<&[u8]> = if c == b"OBJECT" {
                    vec![c, b"ENCODING", k.as_bytes()]
                } else {
                    vec![c, k.as_bytes(), b"0", b"-1", b"WITHSCORES"]
                };
                let (got, want) = (a.call(&args), b.call(&args));
                assert_eq!(show(&got), show(&want), "final {k}");
            }
        }
        assert!(
            skiplists > 5,
            "keys seldom grew past the listpack: {skiplists}"
        );
    }
}

#[test]
fn zrandmember_picks_members() {
    let server = Server::start(SHARDS, &[]);
    let mut c = server.raw();
    let members: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    for (key, n) in [("small", 20usize), ("large", 200)] {
        for (i, m) in members.iter().take(n).enumerate() {
            let s = i.to_string();
            c.call(&[b"ZADD", key.as_bytes(), s.as_bytes(), m.as_bytes()]);
        }
        let enc = c.call(&[b"OBJECT", b"ENCODING", key.as_bytes()]);
        let want_enc: &[u8] = if n > 128 {
            b"$8\r\nskiplist\r\n"
        } else {
            b"$8\r\nlistpack\r\n"
        };
        assert_eq!(enc, want_enc);
        for count in ["5", "-30", "1000", "15"] {
            let r = c.call(&[
                b"ZRANDMEMBER",
                key.as_bytes(),
                count.as_bytes(),
                b"WITHSCORES",
            ]);
            let text = String::from_utf8(r).unwrap();
            let lines: Vec<&str> = text.split("\r\n").collect();
            let len: usize = lines[0][1..].parse().unwrap();
            let c_num: i64 = count.parse().unwrap();
            let want = if c_num < 0 {
                c_num.unsigned_abs() as usize
            } else {
                (c_num as usize).min(n)
            };
            assert_eq!(len, want * 2, "{key} {count}");
            let vals: Vec<&str> = lines[1..].iter().skip(1).step_by(2).copied().collect();
            let mut seen = std::collections::HashSet::new();
            for p in vals.chunks(2).filter(|p| p.len() == 2) {
                let i: usize = p[0][1..].parse().unwrap();
                assert!(i < n, "{key}: {} is not a member", p[0]);
                assert_eq!(p[1], i.to_string(), "score of {}", p[0]);
                if c_num > 0 {
                    assert!(
                        seen.insert(p[0].to_string()),
                        "{key} {count}: repeated {}",
                        p[0]
                    );
                }
            }
        }
    }
}

// ---- blocking pops ----

fn arr_key_member_score(key: &str, m: &str, s: &str) -> Vec<u8> {
    format!(
        "*3\r\n${}\r\n{key}\r\n${}\r\n{m}\r\n${}\r\n{s}\r\n",
        key.len(),
        m.len(),
        s.len()
    )
    .into_bytes()
}

#[test]
fn blocking_pops_wake_across_shards_in_fifo_order() {
    let server = Server::start(SHARDS, &[]);
    let k0 = key_on_shard("bz0:", 0, SHARDS);
    let k1 = key_on_shard("bz1:", 1, SHARDS);
    let k2 = key_on_shard("bz2:", 2, SHARDS);
    let mut first = server.raw();
    let mut second = server.raw();
    let mut pusher = server.raw();
    first.send_cmd(&[b"BZPOPMIN", k0.as_bytes(), k1.as_bytes(), b"0"]);
    first.expect_silence(Duration::from_millis(100));
    second.send_cmd(&[b"BZPOPMAX", k1.as_bytes(), k2.as_bytes(), b"0"]);
    second.expect_silence(Duration::from_millis(100));
    // One element on k1: the client blocked first gets it, the other keeps waiting.
    assert_eq!(
        pusher.call(&[b"ZADD", k1.as_bytes(), b"1.5", b"a"]),
        b":1\r\n"
    );
    first.expect(&arr_key_member_score(&k1, "a", "1.5"));
    second.expect_silence(Duration::from_millis(100));
    assert_eq!(pusher.call(&[b"EXISTS", k1.as_bytes()]), b":0\r\n");
    // A write of two members on k2 (another shard) wakes the second with the highest.
    assert_eq!(
        pusher.call(&[b"ZADD", k2.as_bytes(), b"1", b"x", b"2", b"y"]),
        b":2\r\n"
    );
    second.expect(&arr_key_member_score(&k2, "y", "2"));
    assert_eq!(pusher.call(&[b"ZCARD", k2.as_bytes()]), b":1\r\n");
    // BZMPOP woken from another shard, with a count.
    let mut third = server.raw();
    third.send_cmd(&[
        b"BZMPOP",
        b"0",
        b"2",
        k0.as_bytes(),
        k1.as_bytes(),
        b"MIN",
        b"COUNT",
        b"5",
    ]);
    third.expect_silence(Duration::from_millis(100));
    pusher.call(&[b"ZADD", k1.as_bytes(), b"3", b"c", b"1", b"b"]);
    let want = format!(
        "*2\r\n${}\r\n{k1}\r\n*2\r\n*2\r\n$1\r\nb\r\n$1\r\n1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n",
        k1.len()
    );
    third.expect(want.as_bytes());
    // RESP3: the pair's score is a double.
    let mut r3 = server.raw();
    r3.call(&[b"HELLO", b"3"]);
    r3.send_cmd(&[b"BZPOPMIN", k0.as_bytes(), b"0"]);
    r3.expect_silence(Duration::from_millis(50));
    pusher.call(&[b"ZADD", k0.as_bytes(), b"0.5", b"h"]);
    r3.expect(format!("*3\r\n${}\r\n{k0}\r\n$1\r\nh\r\n,0.5\r\n", k0.len()).as_bytes());
    // A wrong type pushed on a watched key: the client keeps waiting.
    r3.send_cmd(&[b"BZPOPMIN", k0.as_bytes(), b"0"]);
    r3.expect_silence(Duration::from_millis(50));
    pusher.call(&[b"SET", k0.as_bytes(), b"str"]);
    r3.expect_silence(Duration::from_millis(100));
    pusher.call(&[b"DEL", k0.as_bytes()]);
    pusher.call(&[b"ZADD", k0.as_bytes(), b"4", b"q"]);
    r3.expect(format!("*3\r\n${}\r\n{k0}\r\n$1\r\nq\r\n,4\r\n", k0.len()).as_bytes());
}

#[test]
fn blocking_pops_time_out_and_vanish_with_their_client() {
    let server = Server::start(SHARDS, &[]);
    let k0 = key_on_shard("bt0:", 0, SHARDS);
    let k2 = key_on_shard("bt2:", 2, SHARDS);
    let mut c = server.raw();
    let started = Instant::now();
    assert_eq!(
        c.call(&[b"BZPOPMIN", k0.as_bytes(), k2.as_bytes(), b"0.2"]),
        b"*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(
        c.call(&[b"BZMPOP", b"0.1", b"1", k2.as_bytes(), b"MAX"]),
        b"*-1\r\n"
    );
    c.call(&[b"HELLO", b"3"]);
    assert_eq!(c.call(&[b"BZPOPMAX", k0.as_bytes(), b"0.05"]), b"_\r\n");
    // A client that goes away while blocked takes nothing with it.
    let mut gone = server.raw();
    gone.send_cmd(&[b"BZPOPMIN", k2.as_bytes(), b"0"]);
    gone.expect_silence(Duration::from_millis(100));
    drop(gone);
    std::thread::sleep(Duration::from_millis(100));
    let mut p = server.raw();
    assert_eq!(p.call(&[b"ZADD", k2.as_bytes(), b"1", b"kept"]), b":1\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.call(&[b"ZCARD", k2.as_bytes()]), b":1\r\n");
    assert_eq!(
        p.call(&[b"ZPOPMIN", k2.as_bytes()]),
        b"*2\r\n$4\r\nkept\r\n$1\r\n1\r\n"
    );
}

/// Lex ranges over sets with mixed scores: Redis walks a listpack in score order comparing
/// members, with results clients rely on; ours must be the same bytes. Big sets (skiplist)
/// are compared with equal scores only: there Redis's answer on mixed scores depends on its
/// nodes' random levels.
#[test]
fn lex_ranges_on_mixed_scores_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut rng = Rng(0x1E7_2026);
    let same = |a: &mut Raw, b: &mut Raw, args: &[String]| {
        let argv: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let (got, want) = (a.call(&argv), b.call(&argv));
        assert_eq!(show(&got), show(&want), "{args:?}");
        want
    };
    let bound = |rng: &mut Rng| -> String {
        match rng.below(8) {
            0 => "-".into(),
            1 => "+".into(),
            2..=4 => format!("[{}", (b'a' + rng.below(12) as u8) as char),
            _ => format!("({}", (b'a' + rng.below(12) as u8) as char),
        }
    };
    let mut nonempty = 0;
    for round in 0..1500 {
        let big = round % 5 == 4;
        let key = key_on_shard(&format!("lexmix{}:", round % 5), round % SHARDS, SHARDS);
        if round % 50 < 5 {
            same(&mut a, &mut b, &["DEL".into(), key.clone()]);
            let n = if big { 300 } else { 1 + rng.below(60) as usize };
            let mut args = vec!["ZADD".to_string(), key.clone()];
            for i in 0..n {
                let score = if big { 0 } else { rng.below(4) as i64 };
                let len = 1 + rng.below(3) as usize;
                let m: String = (0..len)
                    .map(|_| (b'a' + rng.below(12) as u8) as char)
                    .collect();
                args.extend([
                    score.to_string(),
                    format!("{m}{}", if big { i.to_string() } else { String::new() }),
                ]);
            }
            same(&mut a, &mut b, &args);
            let enc = same(
                &mut a,
                &mut b,
                &["OBJECT".into(), "ENCODING".into(), key.clone()],
            );
            assert_eq!(enc.ends_with(b"skiplist\r\n"), big);
        }
        let (lo, hi) = (bound(&mut rng), bound(&mut rng));
        let mut args: Vec<String> = match rng.below(7) {
            0 => vec!["ZRANGEBYLEX".into(), key.clone(), lo, hi],
            1 => vec!["ZREVRANGEBYLEX".into(), key.clone(), hi, lo],
            2 => vec!["ZRANGE".into(), key.clone(), lo, hi, "BYLEX".into()],
            3 => vec![
                "ZRANGE".into(),
                key.clone(),
                hi,
                lo,
                "BYLEX".into(),
                "REV".into(),
            ],
            4 => vec!["ZLEXCOUNT".into(), key.clone(), lo, hi],
            5 => vec![
                "ZRANGESTORE".into(),
                format!("{key}dst"),
                key.clone(),
                lo,
                hi,
                "BYLEX".into(),
            ],
            _ => vec!["ZREMRANGEBYLEX".into(), key.clone(), lo, hi],
        };
        let ranged = !matches!(args[0].as_str(), "ZLEXCOUNT" | "ZREMRANGEBYLEX");
        if ranged && rng.below(2) == 0 {
            let offset = rng.below(8) as i64 - 1;
            let count = rng.below(8) as i64 - 2;
            args.extend(["LIMIT".into(), offset.to_string(), count.to_string()]);
        }
        let reply = same(&mut a, &mut b, &args);
        if !(reply.starts_with(b"*0\r\n") || reply.starts_with(b":0\r\n")) {
            nonempty += 1;
        }
        if args[0] == "ZRANGESTORE" {
            same(
                &mut a,
                &mut b,
                &[
                    "ZRANGE".into(),
                    format!("{key}dst"),
                    "0".into(),
                    "-1".into(),
                    "WITHSCORES".into(),
                ],
            );
        }
    }
    assert!(nonempty > 300, "only {nonempty} non-empty replies");
}
