//! SORT and SORT_RO byte-compared with a stock redis-server 7: lists, sets and sorted sets,
//! numeric and ALPHA, BY weights (strings and hash fields, on other shards), BY constants,
//! GET patterns, LIMIT edges, STORE, errors; a seeded random run; COMMAND INFO/GETKEYS; the
//! cluster-mode refusals.

mod common;

use common::cluster::{rcall, Node};
use common::{pair, show, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

fn same(a: &mut Raw, b: &mut Raw, args: &[&str]) -> Vec<u8> {
    let argv: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    let (ra, rb) = (a.call(&argv), b.call(&argv));
    assert_eq!(show(&ra), show(&rb), "{args:?}");
    rb
}

#[test]
fn fixed_cases_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        let (a, b) = (&mut a, &mut b);
        same(a, b, &["FLUSHALL"]);
        let cases: &[&[&str]] = &[
            &[
                "RPUSH", "nums", "3", "1", "2", "10", "-5", "2.5", "1e2", "0x10", "1",
            ],
            &[
                "RPUSH", "words", "pear", "apple", "fig", "Apple", "banana", "fig", "10", "9",
            ],
            &["SADD", "ints", "5", "3", "9", "1", "7"],
            &["SADD", "strs", "d", "b", "a", "c"],
            &[
                "ZADD", "z", "1", "c", "2", "a", "3", "b", "4", "10", "5", "2",
            ],
            &[
                "MSET", "w_3", "30", "w_1", "10", "w_2", "5", "w_10", "-1", "w_-5", "7",
            ],
            &[
                "MSET", "n_3", "three", "n_1", "one", "n_2", "two", "n_10", "ten",
            ],
            &["HSET", "h_3", "f", "1", "g", "x"],
            &["HSET", "h_1", "f", "3"],
            &["HSET", "h_2", "f", "2", "g", "y"],
            &["SORT", "nums"],
            &["SORT", "nums", "DESC"],
            &["SORT", "nums", "ASC", "DESC"],
            &["SORT", "nums", "LIMIT", "1", "3"],
            &["SORT", "nums", "LIMIT", "-1", "3"],
            &["SORT", "nums", "LIMIT", "2", "-1"],
            &["SORT", "nums", "LIMIT", "20", "3"],
            &["SORT", "nums", "LIMIT", "0", "0"],
            &["SORT", "nums", "LIMIT", "8", "100"],
            &["SORT", "nums", "LIMIT", "x", "1"],
            &["SORT", "nums", "LIMIT", "1"],
            &["SORT", "words"],
            &["SORT", "words", "ALPHA"],
            &["SORT", "words", "ALPHA", "DESC", "LIMIT", "1", "4"],
            &["SORT", "ints"],
            &["SORT", "ints", "DESC", "LIMIT", "1", "2"],
            &["SORT", "strs", "ALPHA"],
            &["SORT", "strs"],
            &["SORT", "z"],
            &["SORT", "z", "ALPHA"],
            &["OBJECT", "ENCODING", "z"],
            &["SORT", "z", "BY", "nosort"],
            &["SORT", "z", "BY", "nosort", "DESC"],
            &["SORT", "z", "BY", "nosort", "LIMIT", "1", "2"],
            &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "2"],
            &["SORT", "z", "BY", "nosort", "DESC", "LIMIT", "7", "2"],
            &["SORT", "nums", "BY", "nosort"],
            &["SORT", "nums", "BY", "nosort", "DESC"],
            &["SORT", "nums", "BY", "nosort", "LIMIT", "2", "3"],
            &["SORT", "nums", "BY", "nosort", "DESC", "LIMIT", "2", "3"],
            &["SORT", "nums", "BY", "nosort", "DESC", "LIMIT", "20", "3"],
            &["SORT", "ints", "BY", "w_*"],
            &["SORT", "ints", "BY", "w_*", "DESC"],
            &["SORT", "ints", "BY", "w_*", "LIMIT", "1", "2"],
            &[
                "SORT", "ints", "BY", "w_*", "GET", "#", "GET", "n_*", "GET", "w_*",
            ],
            &["SORT", "ints", "BY", "n_*", "ALPHA"],
            &["SORT", "ints", "BY", "n_*"],
            &["SORT", "ints", "BY", "h_*->f"],
            &[
                "SORT", "ints", "BY", "h_*->f", "GET", "h_*->g", "GET", "h_*->", "GET", "h_*",
            ],
            &["SORT", "ints", "BY", "h_*->g", "ALPHA", "GET", "#"],
            &["SORT", "ints", "GET", "nopattern"],
            &["SORT", "ints", "GET", "#", "GET", "#"],
            &["SORT", "ints", "GET"],
            &["SORT", "ints", "BY"],
            &["SORT", "nums", "STORE", "dst"],
            &["LRANGE", "dst", "0", "-1"],
            &["SORT", "ints", "BY", "w_*", "GET", "n_*", "STORE", "dst"],
            &["LRANGE", "dst", "0", "-1"],
            &["SORT", "strs", "BY", "nosort", "STORE", "dst"],
            &["LRANGE", "dst", "0", "-1"],
            &["SORT", "words", "ALPHA", "STORE", "dst", "STORE", "dst2"],
            &["LRANGE", "dst2", "0", "-1"],
            &["EXISTS", "dst"],
            &["SORT", "nokey", "STORE", "dst2"],
            &["EXISTS", "dst2"],
            &["SORT", "nokey"],
            &["SORT", "nokey", "GET", "#"],
            &["SORT", "words"],
            &["SORT", "words", "BY", "w_*"],
            &["SORT", "words", "STORE", "dst"],
            &["EXISTS", "dst"],
            &["SET", "s", "x"],
            &["SORT", "s"],
            &["SORT", "s", "BOGUS"],
            &["SORT", "nums", "BOGUS"],
            &["SORT_RO", "nums", "DESC", "LIMIT", "0", "3"],
            &["SORT_RO", "nums", "STORE", "dst"],
            &["SORT_RO", "ints", "BY", "w_*", "GET", "#", "GET", "n_*"],
            // Before the ERANGE case below: Redis reads errno after strtod without clearing
            // it first, so a stale ERANGE fails later SORTs until some call resets errno.
            &["RPUSH", "sp", " 3", "", "1"],
            &["SORT", "sp"],
            &["RPUSH", "bad", "1", "nan", "2"],
            &["SORT", "bad"],
            &["RPUSH", "big", "1e400"],
            &["SORT", "big"],
        ];
        for args in cases {
            same(a, b, args);
        }
        // Ties under BY with a LIMIT: Redis's partial quicksort decides their order.
        let mut rpush = vec!["RPUSH".to_string(), "tied".into()];
        for i in 0..60 {
            rpush.push(format!("e{i}"));
            same(a, b, &["SET", &format!("tw_e{i}"), &format!("v{}", i % 4)]);
        }
        let refs: Vec<&str> = rpush.iter().map(String::as_str).collect();
        same(a, b, &refs);
        for (start, count) in [
            ("0", "5"),
            ("3", "10"),
            ("20", "30"),
            ("55", "10"),
            ("0", "59"),
        ] {
            for by in ["tw_*", "nosuch_*"] {
                for order in ["ASC", "DESC"] {
                    same(
                        a,
                        b,
                        &[
                            "SORT", "tied", "BY", by, "ALPHA", order, "LIMIT", start, count,
                        ],
                    );
                }
            }
        }
    }
}

/// Seeded random SORTs over lists, sets and sorted sets with weights spread over the shards.
#[test]
fn random_sorts_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let mut rng = Rng(std::env::var("REDCELL_SORT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5027_2026u64));
    let (mut a, mut b) = pair(&ours, &stock, false);
    let (a, b) = (&mut a, &mut b);
    // Elements 0..300 as numbers; unique weights (so ALPHA BY orders have no ties) and names.
    for i in 0..300 {
        let w = (i * 7919) % 300;
        same(
            a,
            b,
            &["SET", &format!("w{i}"), &format!("{}.5", w as i64 - 150)],
        );
        same(a, b, &["SET", &format!("name{i}"), &format!("n{w:03}")]);
        if i % 3 == 0 {
            same(
                a,
                b,
                &[
                    "HSET",
                    &format!("obj{i}"),
                    "rank",
                    &w.to_string(),
                    "tag",
                    &format!("t{}", i % 7),
                ],
            );
        }
    }
    for round in 0..300 {
        let key = format!("src{}", round % 6);
        if round % 30 == 0 || round < 6 {
            same(a, b, &["DEL", &key]);
            let n = 1 + rng.below(if round % 2 == 0 { 20 } else { 200 }) as usize;
            let mut args = vec![
                match round % 3 {
                    0 => "RPUSH",
                    1 => "SADD",
                    _ => "ZADD",
                }
                .to_string(),
                key.clone(),
            ];
            for _ in 0..n {
                let e = rng.below(300).to_string();
                if args[0] == "ZADD" {
                    args.push((rng.below(50) as i64 - 25).to_string());
                }
                args.push(e);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            same(a, b, &refs);
        }
        let mut args = vec!["SORT".to_string(), key.clone()];
        let by = rng.below(5);
        match by {
            0 => args.extend(["BY".into(), "w*".into()]),
            1 => args.extend(["BY".into(), "name*".into(), "ALPHA".into()]),
            2 => args.extend(["BY".into(), "obj*->rank".into()]),
            3 if round % 3 != 1 => args.extend(["BY".into(), "nosort".into()]),
            _ => {}
        }
        if rng.below(2) == 0 {
            args.push("DESC".into());
        }
        if rng.below(2) == 0 {
            let start = rng.below(30) as i64 - 5;
            let count = rng.below(30) as i64 - 5;
            args.extend(["LIMIT".into(), start.to_string(), count.to_string()]);
        }
        for _ in 0..rng.below(3) {
            args.extend([
                "GET".into(),
                ["#", "name*", "obj*->tag", "w*", "obj*"][rng.below(5) as usize].into(),
            ]);
        }
        // A set read in storage order with nothing sorted is not comparable.
        let unordered = round % 3 == 1 && by == 3;
        if unordered {
            continue;
        }
        if rng.below(4) == 0 {
            args.extend(["STORE".into(), "dst".into()]);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            same(a, b, &refs);
            same(a, b, &["LRANGE", "dst", "0", "-1"]);
        } else {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            same(a, b, &refs);
        }
    }
}

#[test]
fn command_info_matches_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    for name in ["sort", "sort_ro"] {
        let info = |c: &mut Raw| {
            let r = c.call(&[b"COMMAND", b"INFO", name.as_bytes()]);
            let mut pos = 0;
            let common::Node::Agg(_, Some(mut outer)) = common::parse(&r, &mut pos) else {
                panic!("{}", show(&r))
            };
            let common::Node::Agg(_, Some(mut entry)) = outer.remove(0) else {
                panic!("{}", show(&r))
            };
            entry.truncate(7);
            entry
        };
        assert_eq!(info(&mut a), info(&mut b), "COMMAND INFO {name}");
    }
    for args in [
        &[
            "COMMAND", "GETKEYS", "SORT", "k", "BY", "x", "GET", "y", "STORE", "d", "STORE", "e",
        ][..],
        &[
            "COMMAND", "GETKEYS", "SORT", "k", "LIMIT", "STORE", "1", "STORE", "e",
        ],
        &["COMMAND", "GETKEYS", "SORT_RO", "k", "GET", "#"],
    ] {
        same(&mut a, &mut b, args);
    }
}

/// Redis 7.0 refuses GET, and BY with a pattern, in cluster mode; STORE must share the slot.
#[test]
fn cluster_mode_rules() {
    let ours = Node::redcell();
    let stock = Node::stock();
    for n in [&ours, &stock] {
        n.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        common::cluster::wait_for(
            "cluster_state:ok",
            std::time::Duration::from_secs(20),
            || n.state_ok(),
        );
    }
    let (mut a, mut b) = (Raw::connect(ours.port), Raw::connect(stock.port));
    for args in [
        &["RPUSH", "{a}l", "3", "1", "2"][..],
        &["SORT", "{a}l"],
        &["SORT", "{a}l", "BY", "{a}w_*"],
        &["SORT", "{a}l", "BY", "nosort", "DESC"],
        &["SORT", "{a}l", "GET", "#"],
        &["SORT_RO", "{a}l", "GET", "{a}x"],
        &["SORT", "{a}l", "STORE", "{b}d"],
        &["SORT", "{a}l", "STORE", "{a}d"],
        &["LRANGE", "{a}d", "0", "-1"],
    ] {
        assert_eq!(rcall(&mut a, args), rcall(&mut b, args), "{args:?}");
    }
}
