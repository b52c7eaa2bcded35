//! Seeded differential test: one random command sequence over every type, sent to a 3-shard
//! redcell and to a stock redis-server 7, every reply compared (a RESP2 pass and a RESP3 pass).
//! Transactions and databases join in as a family of their own: MULTI/EXEC/DISCARD around
//! whatever the other families generate meanwhile, WATCH/UNWATCH, SELECT, MOVE, SWAPDB, COPY DB.
//!
//! Each data type contributes one generator (`FAMILIES`); adding a type is writing a
//! `fn(&mut Gen) -> Cmd` and one table line. Keys come from a small shared pool spread over the
//! shards, so types collide and WRONGTYPE paths run. Replies are compared byte for byte, except
//! where Redis itself leaves the order arbitrary (hashtable-encoded SMEMBERS, HGETALL, ...), which
//! a command marks with its `Order`.
//!
//! Reproduce or extend a run with `REDCELL_DIFF_SEED=<n>` and `REDCELL_DIFF_COMMANDS=<n>`.

mod common;

use common::{parse, shard_of, show, Node, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;
const KEYS: usize = 20;
const DEFAULT_SEED: u64 = 0x5EED_2026;
const DEFAULT_COMMANDS: usize = 3000;

/// One type's share of the random sequence.
struct Family {
    name: &'static str,
    /// Relative frequency among the families.
    weight: u64,
    generate: fn(&mut Gen) -> Cmd,
}

/// The families in the sequence. To add a type: write `fn lists(g: &mut Gen) -> Cmd` next to
/// the others (a `match g.below(N)` over its commands; keys from `g.key()`/`g.keys(n)`, which
/// favour the family's own keys; values from `g.member()`, `g.int(..)`, `g.float()`, `g.ttl()`;
/// malformed forms through `one_of`), mark replies whose order Redis leaves arbitrary with
/// `.order(..)`, and add a line here. Keep out what depends on chance or the clock (random
/// picks, TTL/IDLETIME readings, stream IDs from `*`: give XADD explicit IDs) and blocking
/// commands (one connection per server).
const FAMILIES: &[Family] = &[
    Family {
        name: "strings+keys",
        weight: 4,
        generate: strings_and_keys,
    },
    Family {
        name: "hashes",
        weight: 3,
        generate: hashes,
    },
    Family {
        name: "sets",
        weight: 3,
        generate: sets,
    },
    Family {
        name: "hyperloglog",
        weight: 2,
        generate: hyperloglog,
    },
    Family {
        name: "lists",
        weight: 3,
        generate: lists,
    },
    Family {
        name: "sorted sets",
        weight: 3,
        generate: zsets,
    },
    Family {
        name: "streams",
        weight: 2,
        generate: streams,
    },
    Family {
        name: "transactions+dbs",
        weight: 3,
        generate: transactions,
    },
];

/// The databases the sequence uses (SELECT, MOVE, SWAPDB, COPY DB pick among them).
const DBS: u64 = 4;

// ---- commands and how their replies compare ----

/// How a reply's order may differ from stock's.
#[derive(Clone, Debug)]
enum Order {
    /// Byte for byte.
    Exact,
    /// A flat aggregate whose elements may come in any order (set algebra results).
    Elements,
    /// As `Elements` if stock reports `key` as `hashtable`-encoded after the command, else exact.
    ElementsIfHashtable(String),
    /// Field/value pairs (RESP3 map or RESP2 flat array) in any pair order, if `key` is a
    /// `hashtable` on stock; else exact.
    PairsIfHashtable(String),
    /// EXEC: each element compares under the order of the command queued for it (order-free
    /// ones as elements or pairs, whatever the encoding).
    Exec(Vec<Order>),
}

struct Cmd {
    args: Vec<String>,
    order: Order,
}

impl Cmd {
    fn new<S: AsRef<str>>(args: &[S]) -> Cmd {
        Cmd {
            args: args.iter().map(|s| s.as_ref().to_string()).collect(),
            order: Order::Exact,
        }
    }

    fn order(mut self, order: Order) -> Cmd {
        self.order = order;
        self
    }
}

/// The random source generators draw from, with helpers for the shared key and value pools.
struct Gen {
    rng: Rng,
    keys: Vec<String>,
    /// The generating family's index: it picks mostly keys `i` with `i % FAMILIES.len() ==
    /// family`, so each type keeps some keys of its own while collisions still happen.
    family: usize,
    /// Commands generated so far (see `ttl`).
    seq: u64,
    /// Inside MULTI: the orders of the commands queued so far (EXEC compares with them).
    queued: Option<Vec<Order>>,
    /// The last command generated was MULTI, EXEC, DISCARD or WATCH: run, not queued.
    not_queued: bool,
}

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    /// True with probability `pct`%.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A TTL in seconds for EXPIRE, SET EX and friends that makes replies independent of the
    /// clock: one of three bases far apart (so GT/LT between them are decided by the base)
    /// plus the command's sequence number (so a later TTL on the same base is always greater,
    /// whatever time passed in between). Never near expiry within a run.
    fn ttl(&mut self) -> u64 {
        100_000 * (1 + self.below(3)) + self.seq
    }

    /// A key, mostly one of the family's own (see `family`).
    fn key(&mut self) -> String {
        let n = self.keys.len();
        let mut i = self.below(n as u64) as usize;
        if self.chance(95) {
            let f = FAMILIES.len();
            i = (i - i % f + self.family) % n;
        }
        self.keys[i].clone()
    }

    /// Any key of the pool, whatever type it holds (for the generic key commands).
    fn any_key(&mut self) -> String {
        let i = self.below(self.keys.len() as u64) as usize;
        self.keys[i].clone()
    }

    fn any_keys(&mut self, max: u64) -> Vec<String> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.any_key()).collect()
    }

    /// 1..=max keys (repeats allowed, as clients may send them).
    fn keys(&mut self, max: u64) -> Vec<String> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.key()).collect()
    }

    /// A member, field or value: mostly small integers and short words (so intsets, listpacks
    /// and collisions happen), sometimes a long string that forces a hashtable encoding.
    fn member(&mut self) -> String {
        match self.below(20) {
            0..=8 => self.below(16).to_string(),
            9..=17 => self
                .pick(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])
                .into(),
            18 => "x".repeat(65 + self.below(10) as usize),
            _ => self.pick(&["", "-1", "3.5", "a b", "ñ"]).into(),
        }
    }

    fn members(&mut self, max: u64) -> Vec<String> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.member()).collect()
    }

    /// An integer argument, occasionally malformed or out of range.
    fn int(&mut self, lo: i64, hi: i64) -> String {
        match self.below(30) {
            0 => self.pick(&["x", "1.5", "", "9223372036854775808"]).into(),
            _ => (lo + self.below((hi - lo + 1) as u64) as i64).to_string(),
        }
    }

    fn float(&mut self) -> String {
        match self.below(20) {
            0 => self.pick(&["nan", "x", "inf"]).into(),
            _ => self
                .pick(&["1", "0.5", "-2.25", "10", "1e3", "-0.1"])
                .into(),
        }
    }
}

/// `[cmd, k1, k2, ...]` followed by `tail`.
fn with_keys(cmd: &str, keys: &[String], tail: &[String]) -> Vec<String> {
    let mut v = vec![cmd.to_string()];
    v.extend(keys.iter().cloned());
    v.extend(tail.iter().cloned());
    v
}

/// One of `forms`, with every `K` replaced by `key`: for malformed and edge-case commands
/// (arity, syntax and range errors) whose exact error text must match.
fn one_of(g: &mut Gen, key: &str, forms: &[&[&str]]) -> Cmd {
    let form = forms[g.below(forms.len() as u64) as usize];
    let args: Vec<&str> = form
        .iter()
        .map(|a| if *a == "K" { key } else { a })
        .collect();
    Cmd::new(&args)
}

// ---- generators, one per family ----

fn strings_and_keys(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(39) {
        0..=3 => {
            let mut a = vec!["SET".to_string(), k, g.member()];
            if g.chance(20) {
                a.push(g.pick(&["NX", "XX"]).into());
            }
            if g.chance(15) {
                a.push("GET".into());
            }
            if g.chance(10) {
                a.extend(["EX".to_string(), g.ttl().to_string()]);
            } else if g.chance(10) {
                a.push("KEEPTTL".into());
            }
            Cmd::new(&a)
        }
        4 | 5 => Cmd::new(&["GET", &k]),
        6 => Cmd::new(&["APPEND", &k, &g.member()]),
        7 => Cmd::new(&["STRLEN", &k]),
        8 => Cmd::new(&[g.pick(&["INCR", "DECR"]), &k]),
        9 => Cmd::new(&[g.pick(&["INCRBY", "DECRBY"]), &k, &g.int(-10, 10)]),
        10 => Cmd::new(&["INCRBYFLOAT", &k, &g.float()]),
        11 => Cmd::new(&["SETRANGE", &k, &g.int(0, 12), &g.member()]),
        12 => Cmd::new(&["GETRANGE", &k, &g.int(-5, 10), &g.int(-5, 10)]),
        13 => {
            let op = g.pick(&["GETDEL", "GETSET", "SETNX"]);
            let mut a = vec![op.to_string(), k];
            if op != "GETDEL" {
                a.push(g.member());
            }
            Cmd::new(&a)
        }
        14 => {
            let n = 1 + g.below(3);
            let mut a = vec![g.pick(&["MSET", "MSETNX"]).to_string()];
            for _ in 0..n {
                a.push(g.key());
                a.push(g.member());
            }
            Cmd::new(&a)
        }
        15 => Cmd::new(&with_keys("MGET", &g.any_keys(4), &[])),
        16 => Cmd::new(&with_keys(g.pick(&["DEL", "UNLINK"]), &g.any_keys(2), &[])),
        17 => Cmd::new(&with_keys("EXISTS", &g.any_keys(4), &[])),
        18 => Cmd::new(&["TYPE", &g.any_key()]),
        19 => Cmd::new(&[g.pick(&["RENAME", "RENAMENX"]), &g.any_key(), &g.any_key()]),
        20 => {
            let mut a = vec!["COPY".to_string(), g.any_key(), g.any_key()];
            if g.chance(50) {
                a.push("REPLACE".into());
            }
            Cmd::new(&a)
        }
        21 => {
            let mut a = vec![
                "EXPIRE".to_string(),
                g.any_key(),
                if g.chance(10) {
                    "0".into()
                } else {
                    g.ttl().to_string()
                },
            ];
            if g.chance(30) {
                a.push(g.pick(&["NX", "XX", "GT", "LT"]).into());
            }
            Cmd::new(&a)
        }
        22 => Cmd::new(&["PERSIST", &g.any_key()]),
        23 => Cmd::new(&["OBJECT", "ENCODING", &g.any_key()]),
        24 => Cmd::new(&["SETBIT", &k, &g.int(0, 70), g.pick(&["0", "1"])]),
        25 => Cmd::new(&["GETBIT", &k, &g.int(0, 70)]),
        26 => Cmd::new(&["BITCOUNT", &k]),
        27 => {
            let mut a = vec!["LCS".to_string(), k, g.key()];
            if g.chance(50) {
                a.push("LEN".into());
            }
            Cmd::new(&a)
        }
        28 => match g.pick(&["PERSIST", "EX", "PX"]) {
            "PERSIST" => Cmd::new(&["GETEX", &k, "PERSIST"]),
            "EX" => Cmd::new(&["GETEX", &k, "EX", &g.ttl().to_string()]),
            _ => Cmd::new(&["GETEX", &k, "PX", &(g.ttl() * 1000).to_string()]),
        },
        29 => one_of(
            g,
            &k,
            &[
                &["SET", "K", "v", "NX", "XX"],
                &["SET", "K", "v", "EX", "0"],
                &["SET", "K", "v", "KEEPTTL", "EX", "5"],
                &["SET", "K"],
                &["GETRANGE", "K", "0"],
                &["INCRBY", "K", "1", "2"],
                &["MSET", "K"],
                &["MSET", "K", "v", "K"],
                &["SETRANGE", "K", "-1", "x"],
                &["GETEX", "K", "EX", "0"],
                &["EXPIRE", "K", "10", "NX", "XX"],
                &["COPY", "K", "K"],
                &["RENAME", "K", "K"],
            ],
        ),
        30 => Cmd::new(&["KEYS", g.pick(&["*", "k1*", "k?"])]).order(Order::Elements),
        31 => Cmd::new(&with_keys("TOUCH", &g.any_keys(3), &[])),
        32 => {
            let (op, ttl) = match g.below(5) {
                0 => ("SETEX", g.pick(&["0", "-1", "x"]).to_string()),
                1 | 2 => ("SETEX", g.ttl().to_string()),
                _ => ("PSETEX", (g.ttl() * 1000).to_string()),
            };
            Cmd::new(&[op, &k, &ttl, &g.member()])
        }
        33 => Cmd::new(&["SUBSTR", &k, &g.int(-3, 5), &g.int(-3, 5)]),
        34 => {
            let mut a = vec!["LCS".to_string(), k, g.key(), "IDX".to_string()];
            if g.chance(50) {
                a.extend(["MINMATCHLEN".to_string(), g.int(0, 3)]);
            }
            if g.chance(50) {
                a.push("WITHMATCHLEN".into());
            }
            Cmd::new(&a)
        }
        35 => Cmd::new(&[
            "BITPOS",
            &k,
            g.pick(&["0", "1"]),
            &g.int(-3, 3),
            &g.int(-3, 3),
        ]),
        36 => {
            let op = g.pick(&["AND", "OR", "XOR", "NOT"]);
            let srcs = if op == "NOT" {
                vec![g.key()]
            } else {
                g.keys(3)
            };
            Cmd::new(&with_keys("BITOP", &[op.to_string(), k], &srcs))
        }
        37 => {
            let ty = g.pick(&["u8", "i5", "u1", "i16"]);
            let off = g.int(0, 40);
            match g.below(3) {
                0 => Cmd::new(&["BITFIELD", &k, "GET", ty, &off]),
                1 => Cmd::new(&["BITFIELD", &k, "SET", ty, &off, &g.int(-40, 300)]),
                _ => Cmd::new(&[
                    "BITFIELD",
                    &k,
                    "OVERFLOW",
                    g.pick(&["WRAP", "SAT", "FAIL"]),
                    "INCRBY",
                    ty,
                    &off,
                    &g.int(-100, 100),
                ]),
            }
        }
        // 38
        _ => Cmd::new(&["DBSIZE"]),
    }
}

fn hashes(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(20) {
        0..=3 => {
            let n = 1 + g.below(4);
            let mut a = vec![g.pick(&["HSET", "HSET", "HMSET"]).to_string(), k];
            for _ in 0..n {
                a.push(g.member());
                a.push(g.member());
            }
            Cmd::new(&a)
        }
        4 => Cmd::new(&["HSETNX", &k, &g.member(), &g.member()]),
        5 => Cmd::new(&["HGET", &k, &g.member()]),
        6 => Cmd::new(&with_keys("HMGET", &[k], &g.members(4))),
        7 => Cmd::new(&with_keys("HDEL", &[k], &g.members(3))),
        8 => Cmd::new(&["HLEN", &k]),
        9 => Cmd::new(&["HEXISTS", &k, &g.member()]),
        10 => Cmd::new(&["HINCRBY", &k, &g.member(), &g.int(-5, 5)]),
        11 => Cmd::new(&["HINCRBYFLOAT", &k, &g.member(), &g.float()]),
        12 => Cmd::new(&["HSTRLEN", &k, &g.member()]),
        13 => Cmd::new(&["HKEYS", &k]).order(Order::ElementsIfHashtable(k)),
        14 => Cmd::new(&["HVALS", &k]).order(Order::ElementsIfHashtable(k)),
        15 => Cmd::new(&["HGETALL", &k]).order(Order::PairsIfHashtable(k)),
        // Another type written over one of our keys stays there: recycle it now and then.
        16 => Cmd::new(&["DEL", &k]),
        // With a count beyond the size, HRANDFIELD returns the whole hash: not random.
        17 => Cmd::new(&["HRANDFIELD", &k, "1000"]).order(Order::ElementsIfHashtable(k)),
        18 => Cmd::new(&["HRANDFIELD", &k, "1000", "WITHVALUES"]).order(Order::PairsIfHashtable(k)),
        _ => one_of(
            g,
            &k,
            &[
                &["HSET", "K", "f"],
                &["HSET", "K"],
                &["HMSET", "K", "f", "v", "g"],
                &["HMGET", "K"],
                &["HINCRBY", "K", "f", "1.5"],
                &["HINCRBYFLOAT", "K", "f", "abc"],
                &["HGETALL", "K", "extra"],
            ],
        ),
    }
}

fn sets(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(19) {
        0..=3 => Cmd::new(&with_keys("SADD", &[k], &g.members(5))),
        4 => Cmd::new(&with_keys("SREM", &[k], &g.members(3))),
        5 => Cmd::new(&["SISMEMBER", &k, &g.member()]),
        6 => Cmd::new(&with_keys("SMISMEMBER", &[k], &g.members(3))),
        7 => Cmd::new(&["SCARD", &k]),
        8 | 9 => Cmd::new(&["SMEMBERS", &k]).order(Order::ElementsIfHashtable(k)),
        10 => Cmd::new(&["SMOVE", &k, &g.key(), &g.member()]),
        11 | 12 => {
            // The result set is built in a temporary hashtable (or walks the smallest input),
            // so its order is Redis's dict order: compare as sets.
            let op = g.pick(&["SINTER", "SUNION", "SDIFF"]);
            Cmd::new(&with_keys(op, &g.keys(3), &[])).order(Order::Elements)
        }
        13 | 14 => {
            let op = g.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]);
            Cmd::new(&with_keys(op, &[k], &g.keys(3)))
        }
        15 => {
            let keys = g.keys(3);
            let mut a = vec!["SINTERCARD".to_string(), keys.len().to_string()];
            a.extend(keys);
            if g.chance(40) {
                a.extend(["LIMIT".to_string(), g.int(0, 3)]);
            }
            Cmd::new(&a)
        }
        // Another type written over one of our keys stays there: recycle it now and then.
        16 => Cmd::new(&["DEL", &k]),
        // With a count beyond the size, SRANDMEMBER returns the whole set: not random.
        17 => Cmd::new(&["SRANDMEMBER", &k, "1000"]).order(Order::ElementsIfHashtable(k)),
        _ => one_of(
            g,
            &k,
            &[
                &["SADD", "K"],
                &["SINTERCARD", "0", "K"],
                &["SINTERCARD", "5", "K"],
                &["SINTERCARD", "x", "K"],
                &["SINTERCARD", "1", "K", "LIMIT", "-1"],
                &["SINTERCARD", "1", "K", "FOO", "1"],
                &["SMOVE", "K", "K"],
                &["SMISMEMBER", "K"],
            ],
        ),
    }
}

fn hyperloglog(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(9) {
        0..=3 => {
            // Elements from a wider pool than `member`, so counts keep growing.
            let n = g.below(6);
            let elements: Vec<String> = (0..n).map(|_| format!("e{}", g.below(400))).collect();
            Cmd::new(&with_keys("PFADD", &[k], &elements))
        }
        4 | 5 => Cmd::new(&with_keys("PFCOUNT", &g.keys(3), &[])),
        6 => Cmd::new(&with_keys("PFMERGE", &[k], &g.keys(3))),
        // A string written over one of our keys stays there (PFADD cannot repair it): recycle.
        7 => Cmd::new(&["DEL", &k]),
        _ => one_of(
            g,
            &k,
            &[
                &["PFADD"],
                &["PFCOUNT"],
                &["PFMERGE"],
                &["PFDEBUG", "ENCODING", "K"],
                &["PFDEBUG", "DECODE", "K"],
                &["PFDEBUG", "NOSUCH", "K"],
                &["PFDEBUG", "GETREG"],
            ],
        ),
    }
}

fn lists(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(22) {
        0..=3 => {
            let op = g.pick(&["LPUSH", "RPUSH", "RPUSH", "LPUSHX", "RPUSHX"]);
            Cmd::new(&with_keys(op, &[k], &g.members(4)))
        }
        4 => Cmd::new(&[g.pick(&["LPOP", "RPOP"]), &k]),
        5 => Cmd::new(&[g.pick(&["LPOP", "RPOP"]), &k, &g.int(0, 4)]),
        6 => Cmd::new(&["LLEN", &k]),
        7 => Cmd::new(&["LINDEX", &k, &g.int(-6, 6)]),
        8 => Cmd::new(&["LSET", &k, &g.int(-4, 4), &g.member()]),
        9 | 10 => Cmd::new(&["LRANGE", &k, &g.int(-8, 8), &g.int(-8, 8)]),
        11 => Cmd::new(&["LTRIM", &k, &g.int(-3, 3), &g.int(-3, 8)]),
        12 => Cmd::new(&["LREM", &k, &g.int(-2, 2), &g.member()]),
        13 => {
            let pos = g.pick(&["BEFORE", "AFTER"]);
            Cmd::new(&["LINSERT", &k, pos, &g.member(), &g.member()])
        }
        14 => {
            let mut a = vec!["LPOS".to_string(), k, g.member()];
            if g.chance(50) {
                a.extend(["RANK".to_string(), g.int(-2, 2)]);
            }
            if g.chance(50) {
                a.extend(["COUNT".to_string(), g.int(0, 3)]);
            }
            if g.chance(30) {
                a.extend(["MAXLEN".to_string(), g.int(0, 5)]);
            }
            Cmd::new(&a)
        }
        15 => {
            let (from, to) = (g.pick(&["LEFT", "RIGHT"]), g.pick(&["LEFT", "RIGHT"]));
            Cmd::new(&["LMOVE", &k, &g.key(), from, to])
        }
        16 => Cmd::new(&["RPOPLPUSH", &k, &g.key()]),
        17 => {
            let keys = g.keys(3);
            let mut a = vec!["LMPOP".to_string(), keys.len().to_string()];
            a.extend(keys);
            a.push(g.pick(&["LEFT", "RIGHT"]).into());
            if g.chance(50) {
                a.extend(["COUNT".to_string(), g.int(1, 3)]);
            }
            Cmd::new(&a)
        }
        18 => Cmd::new(&["DEL", &k]),
        _ => one_of(
            g,
            &k,
            &[
                &["LPUSH", "K"],
                &["LRANGE", "K", "0"],
                &["LINSERT", "K", "MIDDLE", "a", "b"],
                &["LPOS", "K", "a", "RANK", "0"],
                &["LPOS", "K", "a", "COUNT", "-1"],
                &["LMOVE", "K", "K", "UP", "LEFT"],
                &["LMPOP", "0", "K", "LEFT"],
                &["LMPOP", "1", "K", "SIDEWAYS"],
                &["LPOP", "K", "-1"],
                &["LSET", "K", "x", "v"],
            ],
        ),
    }
}

/// A score: mostly small integers and halves (ties happen), sometimes infinities or junk.
fn score(g: &mut Gen) -> String {
    match g.below(20) {
        0 => g.pick(&["inf", "-inf", "+inf"]).into(),
        1 => g.pick(&["nan", "x", ""]).into(),
        2..=5 => format!("{}.5", g.below(6)),
        _ => (g.below(10) as i64 - 3).to_string(),
    }
}

/// A ZRANGEBYSCORE-style bound.
fn score_bound(g: &mut Gen) -> String {
    match g.below(8) {
        0 => g.pick(&["-inf", "+inf", "(", "x"]).into(),
        1 | 2 => format!("({}", g.below(8) as i64 - 3),
        _ => (g.below(8) as i64 - 3).to_string(),
    }
}

fn zsets(g: &mut Gen) -> Cmd {
    let k = g.key();
    match g.below(24) {
        0..=3 => {
            let mut a = vec!["ZADD".to_string(), k];
            for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                if g.chance(8) {
                    a.push(opt.into());
                }
            }
            for _ in 0..1 + g.below(3) {
                a.push(score(g));
                a.push(g.member());
            }
            Cmd::new(&a)
        }
        4 => Cmd::new(&["ZINCRBY", &k, &score(g), &g.member()]),
        5 => Cmd::new(&with_keys("ZREM", &[k], &g.members(3))),
        6 => Cmd::new(&["ZCARD", &k]),
        7 => Cmd::new(&["ZSCORE", &k, &g.member()]),
        8 => Cmd::new(&with_keys("ZMSCORE", &[k], &g.members(3))),
        9 => Cmd::new(&[g.pick(&["ZRANK", "ZREVRANK"]), &k, &g.member()]),
        10 => Cmd::new(&["ZCOUNT", &k, &score_bound(g), &score_bound(g)]),
        11 | 12 => {
            let mut a = vec!["ZRANGE".to_string(), k];
            let by_score = g.chance(40);
            if by_score {
                a.extend([score_bound(g), score_bound(g), "BYSCORE".into()]);
            } else {
                a.extend([g.int(-5, 5), g.int(-5, 5)]);
            }
            if g.chance(30) {
                a.push("REV".into());
            }
            if by_score && g.chance(40) {
                a.extend(["LIMIT".into(), g.int(0, 2), g.int(-1, 3)]);
            }
            if g.chance(50) {
                a.push("WITHSCORES".into());
            }
            Cmd::new(&a)
        }
        13 => {
            let op = g.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
            Cmd::new(&[op, &k, &score_bound(g), &score_bound(g), "WITHSCORES"])
        }
        14 => Cmd::new(&[g.pick(&["ZPOPMIN", "ZPOPMAX"]), &k, &g.int(0, 3)]),
        15 => Cmd::new(&["ZREMRANGEBYRANK", &k, &g.int(-3, 3), &g.int(-3, 3)]),
        16 => Cmd::new(&["ZREMRANGEBYSCORE", &k, &score_bound(g), &score_bound(g)]),
        17 | 18 => {
            let keys = g.keys(3);
            let store = g.chance(50);
            let op = if store {
                g.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
            } else {
                g.pick(&["ZUNION", "ZINTER", "ZDIFF"])
            };
            let mut a = vec![op.to_string()];
            if store {
                a.push(k);
            }
            a.push(keys.len().to_string());
            a.extend(keys.iter().cloned());
            if !op.starts_with("ZDIFF") && g.chance(40) {
                a.push("WEIGHTS".into());
                a.extend((0..keys.len()).map(|_| g.pick(&["1", "2", "-1", "0.5"]).to_string()));
            }
            if !op.starts_with("ZDIFF") && g.chance(40) {
                a.extend(["AGGREGATE".into(), g.pick(&["SUM", "MIN", "MAX"]).into()]);
            }
            if !store && g.chance(50) {
                a.push("WITHSCORES".into());
            }
            Cmd::new(&a)
        }
        19 => {
            let keys = g.keys(3);
            let mut a = vec!["ZINTERCARD".to_string(), keys.len().to_string()];
            a.extend(keys);
            Cmd::new(&a)
        }
        20 => {
            let keys = g.keys(2);
            let mut a = vec!["ZMPOP".to_string(), keys.len().to_string()];
            a.extend(keys);
            a.push(g.pick(&["MIN", "MAX"]).into());
            if g.chance(50) {
                a.extend(["COUNT".to_string(), g.int(1, 3)]);
            }
            Cmd::new(&a)
        }
        21 => Cmd::new(&["DEL", &k]),
        _ => one_of(
            g,
            &k,
            &[
                &["ZADD", "K", "NX", "XX", "1", "a"],
                &["ZADD", "K", "GT", "LT", "1", "a"],
                &["ZADD", "K", "INCR", "1", "a", "2", "b"],
                &["ZADD", "K", "1"],
                &["ZRANGE", "K", "0", "1", "LIMIT", "0", "1"],
                &["ZRANGE", "K", "(1", "2", "BYSCORE", "BYSCORE"],
                &["ZUNIONSTORE", "K", "0", "K"],
                &["ZINTER", "1", "K", "WEIGHTS", "x"],
                &["ZINTER", "1", "K", "AGGREGATE", "AVG"],
                &["ZCOUNT", "K", "a", "b"],
                &["ZINCRBY", "K", "nan", "m"],
            ],
        ),
    }
}

fn streams(g: &mut Gen) -> Cmd {
    let k = g.key();
    // Explicit IDs that mostly grow with the sequence (so XADD mostly succeeds), sometimes not.
    let id = |g: &mut Gen| match g.below(10) {
        0 => "0-1".to_string(),
        1 => format!("{}-*", g.seq),
        _ => {
            let seq = g.seq;
            format!("{seq}-{}", g.below(3))
        }
    };
    let range_id = |g: &mut Gen| match g.below(6) {
        0 => "-".to_string(),
        1 => "+".to_string(),
        2 => format!("({}", g.seq / 2),
        _ => {
            let seq = g.seq;
            seq.saturating_sub(g.below(400)).to_string()
        }
    };
    match g.below(26) {
        0..=8 => {
            let mut a = vec!["XADD".to_string(), k];
            if g.chance(10) {
                a.push("NOMKSTREAM".into());
            }
            if g.chance(20) {
                a.extend(["MAXLEN".into(), g.pick(&["=", "~"]).into(), g.int(0, 8)]);
            }
            a.push(id(g));
            for _ in 0..1 + g.below(2) {
                a.push(g.member());
                a.push(g.member());
            }
            Cmd::new(&a)
        }
        9 => Cmd::new(&["XLEN", &k]),
        10 | 11 => {
            let (op, count) = (g.pick(&["XRANGE", "XREVRANGE"]), g.int(0, 4));
            let (a, b) = (range_id(g), range_id(g));
            if g.chance(50) {
                Cmd::new(&[op, &k, &a, &b, "COUNT", &count])
            } else {
                Cmd::new(&[op, &k, &a, &b])
            }
        }
        12 => Cmd::new(&[
            "XDEL",
            &k,
            &format!("{}-0", g.seq.saturating_sub(g.below(300))),
        ]),
        13 => Cmd::new(&["XTRIM", &k, "MAXLEN", &g.int(0, 6)]),
        14 => Cmd::new(&[
            "XTRIM",
            &k,
            "MINID",
            &g.seq.saturating_sub(g.below(300)).to_string(),
        ]),
        15 => {
            let keys = g.keys(2);
            let mut a = vec![
                "XREAD".to_string(),
                "COUNT".into(),
                g.int(1, 3),
                "STREAMS".into(),
            ];
            a.extend(keys.iter().cloned());
            a.extend(keys.iter().map(|_| "0".to_string()));
            Cmd::new(&a)
        }
        16 => Cmd::new(&[
            "XGROUP",
            "CREATE",
            &k,
            g.pick(&["g1", "g2"]),
            "0",
            "MKSTREAM",
        ]),
        17 | 18 => Cmd::new(&[
            "XREADGROUP",
            "GROUP",
            g.pick(&["g1", "g2"]),
            g.pick(&["alice", "bob"]),
            "COUNT",
            "2",
            "STREAMS",
            &k,
            g.pick(&[">", ">", "0"]),
        ]),
        19 => Cmd::new(&[
            "XACK",
            &k,
            g.pick(&["g1", "g2"]),
            &format!("{}-0", g.seq.saturating_sub(g.below(200))),
        ]),
        20 => Cmd::new(&["XPENDING", &k, g.pick(&["g1", "g2"])]),
        // Other families overwrite stream keys often: recycle them more than the others do.
        21..=23 => Cmd::new(&["DEL", &k]),
        _ => one_of(
            g,
            &k,
            &[
                &["XADD", "K", "0-0", "f", "v"],
                &["XADD", "K", "*", "f"],
                &["XADD", "K", "MAXLEN", "-1", "*", "f", "v"],
                &["XRANGE", "K", "x", "+"],
                &["XREAD", "STREAMS", "K"],
                &["XGROUP", "CREATE", "K", "g1", "$"],
                &["XREADGROUP", "GROUP", "nosuch", "c", "STREAMS", "K", ">"],
                &["XTRIM", "K", "LENGTH", "1"],
            ],
        ),
    }
}

// ---- replies ----

/// The reply with its top-level elements (or pairs) sorted. Pairs are flat (a RESP2 array or
/// a RESP3 map) unless they already come as two-element arrays (RESP3 HRANDFIELD WITHVALUES),
/// which sort as elements.
fn sorted(reply: &[u8], pairs: bool) -> Node {
    sorted_node(parse(reply, &mut 0), pairs)
}

/// `node` with its top-level elements (or pairs) sorted.
fn sorted_node(node: Node, pairs: bool) -> Node {
    match node {
        Node::Agg(t, Some(items)) => {
            let nested = items.iter().all(|n| matches!(n, Node::Agg(..)));
            let items = if t == b'%' || (pairs && !nested) {
                let mut p: Vec<Vec<Node>> = items.chunks(2).map(<[Node]>::to_vec).collect();
                p.sort();
                p.concat()
            } else {
                let mut items = items;
                items.sort();
                items
            };
            Node::Agg(t, Some(items))
        }
        other => other,
    }
}

/// EXEC's replies: an array whose elements agree one by one under their commands' orders,
/// or the same non-array reply (null on a failed WATCH, EXECABORT).
fn exec_agrees(orders: &[Order], want: &[u8], got: &[u8]) -> bool {
    match (parse(want, &mut 0), parse(got, &mut 0)) {
        (Node::Agg(b'*', Some(w)), Node::Agg(b'*', Some(g))) if w.len() == g.len() => {
            w.into_iter().zip(g).enumerate().all(|(i, (w, g))| {
                w == g
                    || match orders.get(i) {
                        Some(Order::Exact) | None => false,
                        Some(o) => {
                            let pairs = matches!(o, Order::PairsIfHashtable(_));
                            sorted_node(w, pairs) == sorted_node(g, pairs)
                        }
                    }
            })
        }
        _ => false,
    }
}

fn encoding_on(stock: &mut Raw, key: &str) -> Vec<u8> {
    stock.call(&[b"OBJECT", b"ENCODING", key.as_bytes()])
}

/// Whether the two replies agree under the command's `Order`.
fn agree(cmd: &Cmd, want: &[u8], got: &[u8], stock: &mut Raw) -> bool {
    if want == got {
        return true;
    }
    let pairs = match &cmd.order {
        Order::Exact => return false,
        Order::Exec(orders) => return exec_agrees(orders, want, got),
        Order::Elements => false,
        Order::ElementsIfHashtable(k) | Order::PairsIfHashtable(k) => {
            if encoding_on(stock, k) != b"$9\r\nhashtable\r\n" {
                return false;
            }
            matches!(cmd.order, Order::PairsIfHashtable(_))
        }
    };
    sorted(want, pairs) == sorted(got, pairs)
}

// ---- the run ----

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Picks a family by weight and lets it generate a command. Inside MULTI, a command that is
/// queued answers QUEUED (exact) and its own order waits for the EXEC.
fn next_command(g: &mut Gen) -> (usize, Cmd) {
    let total: u64 = FAMILIES.iter().map(|f| f.weight).sum();
    let mut r = g.below(total);
    for (i, f) in FAMILIES.iter().enumerate() {
        if r < f.weight {
            g.family = i;
            g.seq += 1;
            g.not_queued = false;
            let was_in_multi = g.queued.is_some();
            let mut cmd = (f.generate)(g);
            if was_in_multi && !g.not_queued {
                if let Some(q) = g.queued.as_mut() {
                    q.push(std::mem::replace(&mut cmd.order, Order::Exact));
                }
            }
            return (i, cmd);
        }
        r -= f.weight;
    }
    unreachable!("weights cover the range")
}

/// Transactions and databases. Transactions stay short: inside MULTI this family mostly
/// closes it.
fn transactions(g: &mut Gen) -> Cmd {
    let db = |g: &mut Gen| -> String {
        match g.below(25) {
            0 => g.pick(&["16", "-1", "x", "99999999999"]).into(),
            _ => g.below(DBS).to_string(),
        }
    };
    if let Some(queued) = g.queued.clone() {
        g.not_queued = true;
        return match g.below(10) {
            0..=5 => {
                g.queued = None;
                Cmd::new(&["EXEC"]).order(Order::Exec(queued))
            }
            6 => {
                g.queued = None;
                Cmd::new(&["DISCARD"])
            }
            7 => Cmd::new(&["MULTI"]),
            8 => {
                let k = g.any_key();
                Cmd::new(&["WATCH", &k])
            }
            _ => {
                // Queued after all: SELECT inside the transaction.
                g.not_queued = false;
                let d = db(g);
                Cmd::new(&["SELECT", &d])
            }
        };
    }
    match g.below(24) {
        0..=4 => {
            g.queued = Some(Vec::new());
            g.not_queued = true;
            Cmd::new(&["MULTI"])
        }
        5..=7 => {
            let keys = g.any_keys(3);
            g.not_queued = true;
            Cmd::new(&with_keys("WATCH", &keys, &[]))
        }
        8 => Cmd::new(&["UNWATCH"]),
        9..=11 => {
            let d = db(g);
            Cmd::new(&["SELECT", &d])
        }
        12..=13 => {
            let (k, d) = (g.any_key(), db(g));
            Cmd::new(&["MOVE", &k, &d])
        }
        14..=15 => {
            let (a, b) = (db(g), db(g));
            Cmd::new(&["SWAPDB", &a, &b])
        }
        16..=17 => {
            let (k, k2, d) = (g.any_key(), g.any_key(), db(g));
            let mut args = vec!["COPY".to_string(), k, k2, "DB".into(), d];
            if g.chance(50) {
                args.push("REPLACE".into());
            }
            Cmd::new(&args)
        }
        18 => Cmd::new(&["DBSIZE"]),
        19 => {
            g.not_queued = true;
            Cmd::new(&[g.pick(&["EXEC", "DISCARD"])])
        }
        20 => Cmd::new(&["KEYS", "*"]).order(Order::Elements),
        21 if g.chance(30) => Cmd::new(&["FLUSHDB"]),
        _ => {
            let k = g.any_key();
            Cmd::new(&["EXISTS", &k])
        }
    }
}

/// One run of the sequence: the protocol and the configuration both servers get first.
struct Pass {
    name: &'static str,
    resp3: bool,
    config: &'static [(&'static str, &'static str)],
}

/// Redis 7.0's defaults, then tiny encoding thresholds so that conversions (listpack →
/// hashtable, intset → hashtable, sparse → dense) happen all the time. Types joining the test
/// add their thresholds to the last pass (both servers must accept them).
const DEFAULTS: &[(&str, &str)] = &[
    ("hash-max-listpack-entries", "512"),
    ("hash-max-listpack-value", "64"),
    ("set-max-intset-entries", "512"),
    ("hll-sparse-max-bytes", "3000"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("list-max-listpack-size", "-2"),
    ("stream-node-max-entries", "100"),
];
const PASSES: &[Pass] = &[
    Pass {
        name: "RESP2, default thresholds",
        resp3: false,
        config: DEFAULTS,
    },
    Pass {
        name: "RESP3, default thresholds",
        resp3: true,
        config: DEFAULTS,
    },
    Pass {
        name: "RESP2, tiny thresholds",
        resp3: false,
        config: &[
            ("hash-max-listpack-entries", "3"),
            ("hash-max-listpack-value", "4"),
            ("set-max-intset-entries", "3"),
            ("hll-sparse-max-bytes", "60"),
            ("zset-max-listpack-entries", "3"),
            ("zset-max-listpack-value", "4"),
            ("list-max-listpack-size", "2"),
            ("stream-node-max-entries", "3"),
        ],
    },
];

/// Runs `n` commands from `seed` against both servers and panics at the first disagreement,
/// showing the recent history and how to rerun.
fn run_pass(ours: &Server, stock: &StockRedis, seed: u64, n: usize, pass: &Pass) {
    let resp3 = pass.resp3;
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    for c in [&mut a, &mut b] {
        c.call(&[b"FLUSHALL"]);
        for (name, value) in pass.config {
            let reply = c.call(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()]);
            assert_eq!(show(&reply), show(b"+OK\r\n"), "CONFIG SET {name} {value}");
        }
        if resp3 {
            c.call(&[b"HELLO", b"3"]);
        }
    }
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for s in 0..SHARDS {
        let here = keys
            .iter()
            .filter(|k| shard_of(k.as_bytes(), SHARDS) == s)
            .count();
        assert!(here >= 3, "the key pool must reach every shard");
    }
    let mut g = Gen {
        rng: Rng(seed),
        keys,
        family: 0,
        seq: 0,
        queued: None,
        not_queued: false,
    };
    let mut history: Vec<String> = Vec::new();
    // Per family: (commands, error replies, WRONGTYPE replies), to show what the run covered.
    let mut tally = vec![(0usize, 0usize, 0usize); FAMILIES.len()];
    // EXEC outcomes: ran, failed on a changed WATCHed key, aborted by a queueing error.
    let mut execs = [0usize; 3];
    for i in 0..n {
        let (fi, cmd) = next_command(&mut g);
        let family = FAMILIES[fi].name;
        let args: Vec<&[u8]> = cmd.args.iter().map(|s| s.as_bytes()).collect();
        let want = b.call(&args);
        let got = a.call(&args);
        history.push(format!("{i}: {:?}", cmd.args));
        if !agree(&cmd, &want, &got, &mut b) {
            let recent = history[history.len().saturating_sub(40)..].join("\n  ");
            panic!(
                "redcell differs from stock Redis ({}, seed {seed}, command {i}, family {family})\n\
                 command:  {:?}\n expected: {}\n      got: {}\n recent commands:\n  {recent}\n\
                 rerun: REDCELL_DIFF_SEED={seed} REDCELL_DIFF_COMMANDS={n} \
                 cargo test --test differential",
                pass.name,
                cmd.args,
                show(&want),
                show(&got),
            );
        }
        if cmd.args[0] == "EXEC" {
            match want.first() {
                Some(b'*') if want.starts_with(b"*-1") => execs[1] += 1,
                Some(b'_') => execs[1] += 1,
                Some(b'*') => execs[0] += 1,
                Some(b'-') if want.starts_with(b"-EXECABORT") => execs[2] += 1,
                _ => {}
            }
        }
        let t = &mut tally[fi];
        t.0 += 1;
        t.1 += (want.first() == Some(&b'-')) as usize;
        t.2 += want.starts_with(b"-WRONGTYPE") as usize;
    }
    for (f, (cmds, errs, wrongtype)) in FAMILIES.iter().zip(&tally) {
        eprintln!(
            "  {:<14} {cmds:>5} commands, {errs:>4} errors ({wrongtype} WRONGTYPE)",
            f.name
        );
        // A family whose commands mostly fail compares little: keep the generators honest.
        assert!(*cmds == 0 || errs * 2 < *cmds, "{}: mostly errors", f.name);
    }
    let wrongtype: usize = tally.iter().map(|t| t.2).sum();
    assert!(n < 500 || wrongtype > 0, "types never collided");
    eprintln!(
        "  EXEC: {} ran, {} failed on a WATCHed key, {} aborted",
        execs[0], execs[1], execs[2]
    );
    assert!(
        n < 2000 || execs.iter().all(|&e| e > 0),
        "every EXEC outcome occurs: {execs:?}"
    );
    // The final states agree too, in every database: every key's type and whole value.
    for c in [&mut a, &mut b] {
        c.call(&[b"DISCARD"]);
    }
    for db in 0..DBS {
        let select = [b"SELECT".as_slice(), db.to_string().as_bytes()].map(<[u8]>::to_vec);
        let select: Vec<&[u8]> = select.iter().map(Vec::as_slice).collect();
        assert_eq!(show(&a.call(&select)), show(&b.call(&select)));
        final_state(&mut a, &mut b, &g.keys, seed, db);
    }
}

/// Compares every key's type and value, and DBSIZE, in the selected database.
fn final_state(a: &mut Raw, b: &mut Raw, keys: &[String], seed: u64, db: u64) {
    for k in keys {
        let ty = b.call(&[b"TYPE", k.as_bytes()]);
        let probe = match ty.as_slice() {
            b"+hash\r\n" => Cmd::new(&["HGETALL", k]).order(Order::PairsIfHashtable(k.clone())),
            b"+set\r\n" => Cmd::new(&["SMEMBERS", k]).order(Order::ElementsIfHashtable(k.clone())),
            _ => Cmd::new(&["GET", k]),
        };
        let args: Vec<&[u8]> = probe.args.iter().map(|s| s.as_bytes()).collect();
        let (want, got) = (b.call(&args), a.call(&args));
        assert!(
            agree(&probe, &want, &got, b),
            "final state of {k} in db {db} (seed {seed}): expected {}, got {}",
            show(&want),
            show(&got)
        );
    }
    assert_eq!(
        show(&a.call(&[b"DBSIZE"])),
        show(&b.call(&[b"DBSIZE"])),
        "final DBSIZE of db {db}"
    );
}

#[test]
fn random_commands_match_stock_redis() {
    let seed = env_u64("REDCELL_DIFF_SEED", DEFAULT_SEED);
    let n = env_u64("REDCELL_DIFF_COMMANDS", DEFAULT_COMMANDS as u64) as usize;
    eprintln!("differential: seed {seed}, {n} commands per pass (REDCELL_DIFF_SEED / REDCELL_DIFF_COMMANDS)");
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for pass in PASSES {
        eprintln!("pass: {}", pass.name);
        run_pass(&ours, &stock, seed, n, pass);
    }
}
