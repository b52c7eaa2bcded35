//! DUMP / RESTORE / RESTORE-ASKING against stock Redis 7.0: payloads cross both ways for
//! every type and encoding, our DUMP bytes equal Redis's where its output is deterministic,
//! RESTORE's options and errors answer the same, and corrupt payloads get the same error
//! class from both (stock runs with `sanitize-dump-payload yes`, its deep validation)
//! without ever creating a key or stopping the server.

mod common;

use common::{crc64, key_on_shard, parse, show, Node, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

fn node(bytes: &[u8]) -> Node {
    parse(bytes, &mut 0)
}

fn bulk(reply: &[u8]) -> Option<Vec<u8>> {
    match node(reply) {
        Node::Bulk(_, b) => b,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

/// The reply with its elements sorted (for hashtable-ordered replies).
fn sorted(n: Node) -> Node {
    match n {
        Node::Agg(t, Some(mut items)) => {
            items.sort();
            Node::Agg(t, Some(items))
        }
        other => other,
    }
}

fn call(c: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    c.call(args)
}

/// Everything a key holds, in a form comparable across servers whatever the encoding.
fn contents(c: &mut Raw, key: &[u8]) -> (Vec<u8>, Node) {
    contents_in(c, key, true)
}

/// `contents`, with sorted-set pairs in any order when `zset_order` is false: Redis keeps a
/// corrupt listpack's order as loaded, we sort it.
fn contents_in(c: &mut Raw, key: &[u8], zset_order: bool) -> (Vec<u8>, Node) {
    let t = call(c, &[b"TYPE", key]);
    let body = match &t[..] {
        b"+string\r\n" => node(&call(c, &[b"GET", key])),
        b"+list\r\n" => node(&call(c, &[b"LRANGE", key, b"0", b"-1"])),
        b"+set\r\n" => sorted(node(&call(c, &[b"SMEMBERS", key]))),
        b"+zset\r\n" => {
            let n = node(&call(c, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]));
            match n {
                Node::Agg(t, Some(items)) if !zset_order => {
                    let mut pairs: Vec<Vec<Node>> = items.chunks(2).map(<[Node]>::to_vec).collect();
                    pairs.sort();
                    Node::Agg(t, Some(pairs.concat()))
                }
                other => other,
            }
        }
        b"+hash\r\n" => {
            let Node::Agg(t, Some(items)) = node(&call(c, &[b"HGETALL", key])) else {
                panic!("HGETALL")
            };
            let mut pairs: Vec<Vec<Node>> = items.chunks(2).map(<[Node]>::to_vec).collect();
            pairs.sort();
            Node::Agg(t, Some(pairs.concat()))
        }
        _ => Node::Line(b'+', b"none".to_vec()),
    };
    (t, body)
}

struct Case {
    name: &'static str,
    /// Commands building the value at `K`.
    setup: Vec<Vec<Vec<u8>>>,
    /// Whether Redis 7.0's DUMP is deterministic for it (no hashtable order).
    exact: bool,
}

fn cmd(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x5eed_d00d);
    let noise: Vec<u8> = rng.bytes(300);
    let many = |prefix: &str, n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect()
    };
    let with = |head: &[&[u8]], rest: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        let mut v = cmd(head);
        v.extend(rest);
        v
    };
    let zpairs = |n: usize, long: bool| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push(format!("{}", i as f64 / 7.0 - 3.0).into_bytes());
            let m = if long {
                format!("{}-{i}", "m".repeat(70))
            } else {
                format!("m{i}")
            };
            v.push(m.into_bytes());
        }
        v
    };
    let hpairs = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .flat_map(|i| {
                [
                    format!("f{i}").into_bytes(),
                    format!("v{}", i * 3).into_bytes(),
                ]
            })
            .collect()
    };
    let big_list: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("item-{i}-{}", "z".repeat(i % 40)).into_bytes())
        .collect();
    vec![
        Case {
            name: "int",
            setup: vec![cmd(&[b"SET", b"K", b"12345"])],
            exact: true,
        },
        Case {
            name: "negint",
            setup: vec![cmd(&[b"SET", b"K", b"-1"])],
            exact: true,
        },
        Case {
            name: "bigint",
            setup: vec![cmd(&[b"SET", b"K", b"4294967296"])],
            exact: true,
        },
        Case {
            name: "int64",
            setup: vec![cmd(&[b"SET", b"K", b"-9223372036854775808"])],
            exact: true,
        },
        Case {
            name: "short",
            setup: vec![cmd(&[b"SET", b"K", b"hello"])],
            exact: true,
        },
        Case {
            name: "empty",
            setup: vec![cmd(&[b"SET", b"K", b""])],
            exact: true,
        },
        Case {
            name: "lzf",
            setup: vec![cmd(&[b"SET", b"K", &b"abcdefgh".repeat(50)])],
            exact: true,
        },
        Case {
            name: "noise",
            setup: vec![cmd(&[b"SET", b"K", &noise])],
            exact: true,
        },
        Case {
            name: "appended",
            setup: vec![cmd(&[b"SET", b"K", b"12"]), cmd(&[b"APPEND", b"K", b"34"])],
            exact: true,
        },
        Case {
            name: "list-small",
            setup: vec![cmd(&[
                b"RPUSH", b"K", b"a", b"1", b"foo", b"-200", b"5000000",
            ])],
            exact: true,
        },
        Case {
            name: "list-compressed",
            setup: vec![cmd(&[b"RPUSH", b"K", &[b'x'; 30]])],
            exact: true,
        },
        Case {
            name: "list-big-element",
            setup: vec![cmd(&[
                b"RPUSH",
                b"K",
                b"a",
                &noise.repeat(40),
                b"b",
                &[b'q'; 9000],
            ])],
            exact: true,
        },
        Case {
            name: "list-large",
            setup: vec![with(&[b"RPUSH", b"K"], big_list)],
            exact: true,
        },
        Case {
            name: "intset",
            setup: vec![cmd(&[b"SADD", b"K", b"1", b"2", b"3", b"-5", b"70000"])],
            exact: true,
        },
        Case {
            name: "intset-kept-wide",
            setup: vec![
                cmd(&[b"SADD", b"K", b"1", b"70000", b"2"]),
                cmd(&[b"SREM", b"K", b"70000"]),
            ],
            exact: true,
        },
        Case {
            name: "intset64",
            setup: vec![cmd(&[
                b"SADD",
                b"K",
                b"1",
                b"9223372036854775807",
                b"-9223372036854775808",
            ])],
            exact: true,
        },
        Case {
            name: "set-table",
            setup: vec![cmd(&[b"SADD", b"K", b"a", b"b", b"c", b"12"])],
            exact: false,
        },
        Case {
            name: "set-large-ints",
            setup: vec![with(&[b"SADD", b"K"], many("", 600))],
            exact: false,
        },
        Case {
            name: "set-large",
            setup: vec![with(&[b"SADD", b"K"], many("member:", 300))],
            exact: false,
        },
        Case {
            name: "zset-listpack",
            setup: vec![cmd(&[
                b"ZADD",
                b"K",
                b"1.5",
                b"a",
                b"2",
                b"b",
                b"-inf",
                b"c",
                b"inf",
                b"d",
                b"0.1",
                b"e",
                b"1e100",
                b"f",
                b"-4503599627370496",
                b"g",
                b"123456789012",
                b"h",
            ])],
            exact: true,
        },
        Case {
            name: "zset-skiplist",
            setup: vec![
                with(&[b"ZADD", b"K"], zpairs(300, false)),
                cmd(&[b"ZADD", b"K", b"inf", b"top", b"-inf", b"bottom"]),
            ],
            exact: true,
        },
        Case {
            name: "zset-long-member",
            setup: vec![with(&[b"ZADD", b"K"], zpairs(3, true))],
            exact: true,
        },
        Case {
            name: "hash-listpack",
            setup: vec![cmd(&[
                b"HSET", b"K", b"f", b"v", b"n", b"1", b"neg", b"-70000",
            ])],
            exact: true,
        },
        Case {
            name: "hash-updated",
            setup: vec![
                with(&[b"HSET", b"K"], hpairs(20)),
                cmd(&[b"HSET", b"K", b"f3", b"changed"]),
            ],
            exact: true,
        },
        Case {
            name: "hash-table",
            setup: vec![with(&[b"HSET", b"K"], hpairs(300))],
            exact: false,
        },
        Case {
            name: "hash-long-value",
            setup: vec![cmd(&[b"HSET", b"K", b"f", &[b'v'; 100]])],
            exact: false,
        },
    ]
}

fn run_setup(c: &mut Raw, case: &Case, key: &[u8]) {
    for words in &case.setup {
        let args: Vec<&[u8]> = words
            .iter()
            .map(|w| if w == b"K" { key } else { &w[..] })
            .collect();
        let r = call(c, &args);
        assert!(
            !r.starts_with(b"-"),
            "{}: setup failed: {}",
            case.name,
            show(&r)
        );
    }
}

#[test]
fn payloads_cross_both_ways_and_match_stock_bytes() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    for (i, case) in cases().iter().enumerate() {
        // Source keys and targets on different shards of ours.
        let src = key_on_shard(&format!("src:{}:", case.name), i % SHARDS, SHARDS);
        let dst = key_on_shard(&format!("dst:{}:", case.name), (i + 1) % SHARDS, SHARDS);
        let (src, dst) = (src.as_bytes(), dst.as_bytes());
        run_setup(&mut a, case, src);
        run_setup(&mut b, case, src);
        let ours_dump = bulk(&call(&mut a, &[b"DUMP", src])).expect("our DUMP");
        let stock_dump = bulk(&call(&mut b, &[b"DUMP", src])).expect("stock DUMP");
        if case.exact {
            assert_eq!(
                show(&ours_dump),
                show(&stock_dump),
                "{}: DUMP bytes differ from Redis 7.0's",
                case.name
            );
        }
        // Ours → stock and stock → ours.
        assert_eq!(
            call(&mut b, &[b"RESTORE", dst, b"0", &ours_dump]),
            b"+OK\r\n",
            "{}",
            case.name
        );
        assert_eq!(
            call(&mut a, &[b"RESTORE", dst, b"0", &stock_dump]),
            b"+OK\r\n",
            "{}",
            case.name
        );
        let want = contents(&mut b, src);
        assert_ne!(want.1, Node::Line(b'+', b"none".to_vec()));
        assert_eq!(
            contents(&mut b, dst),
            want,
            "{}: stock restored ours differently",
            case.name
        );
        assert_eq!(
            contents(&mut a, dst),
            want,
            "{}: we restored stock's differently",
            case.name
        );
        assert_eq!(contents(&mut a, src), want, "{}: source differs", case.name);
        // Both pick the same encoding for what they loaded.
        assert_eq!(
            call(&mut a, &[b"OBJECT", b"ENCODING", dst]),
            call(&mut b, &[b"OBJECT", b"ENCODING", dst]),
            "{}: encoding after RESTORE",
            case.name
        );
        // And our restored copy dumps back to what we dumped from the source.
        if case.exact {
            let again = bulk(&call(&mut a, &[b"DUMP", dst])).expect("DUMP");
            assert_eq!(show(&again), show(&ours_dump), "{}: re-DUMP", case.name);
        }
    }
    assert_eq!(call(&mut a, &[b"DUMP", b"nosuchkey"]), b"$-1\r\n");
    assert_eq!(call(&mut b, &[b"DUMP", b"nosuchkey"]), b"$-1\r\n");
}

/// Sends `args` to both servers and asserts the same reply bytes.
fn same(a: &mut Raw, b: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    let want = call(b, args);
    let got = call(a, args);
    assert_eq!(
        show(&got),
        show(&want),
        "reply to {:?}",
        args.iter().map(|x| show(x)).collect::<Vec<_>>()
    );
    got
}

#[test]
fn restore_options_and_errors_match_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    call(&mut b, &[b"SET", b"src", b"value"]);
    let p = bulk(&call(&mut b, &[b"DUMP", b"src"])).unwrap();
    let p = &p[..];
    for k in 0..SHARDS {
        let key = key_on_shard("opt:", k, SHARDS);
        let key = key.as_bytes();
        same(&mut a, &mut b, &[b"RESTORE", key, b"0", p]);
        same(&mut a, &mut b, &[b"RESTORE", key, b"0", p]); // BUSYKEY
        same(&mut a, &mut b, &[b"RESTORE", key, b"0", p, b"REPLACE"]);
        same(&mut a, &mut b, &[b"RESTORE-ASKING", key, b"0", p]); // BUSYKEY too
        same(
            &mut a,
            &mut b,
            &[b"RESTORE-ASKING", key, b"0", p, b"replace"],
        );
        same(&mut a, &mut b, &[b"GET", key]);
        // Errors, in Redis's order of checks.
        for args in [
            &[b"RESTORE", key, b"0", p, b"NOSUCH"][..],
            &[b"RESTORE", key, b"0", p, b"IDLETIME"],
            &[b"RESTORE", key, b"0", p, b"IDLETIME", b"x"],
            &[b"RESTORE", key, b"0", p, b"IDLETIME", b"-1"],
            &[b"RESTORE", key, b"0", p, b"FREQ", b"256"],
            &[b"RESTORE", key, b"0", p, b"FREQ", b"-1"],
            &[b"RESTORE", key, b"0", p, b"IDLETIME", b"1", b"FREQ", b"1"],
            &[b"RESTORE", key, b"0", p, b"FREQ", b"1", b"IDLETIME", b"1"],
            &[b"RESTORE", key, b"x", p], // BUSYKEY comes before the TTL check
            &[b"RESTORE", key, b"-1", p, b"REPLACE"],
            &[b"RESTORE", key, b"x", p, b"REPLACE"],
            &[b"RESTORE", key, b"0", b"short", b"REPLACE"],
            &[b"RESTORE", key, b"0", &p[..p.len() - 1], b"REPLACE"],
            &[b"RESTORE", key, b"0"],
            &[b"RESTORE-ASKING", key],
            &[b"DUMP"],
            &[b"DUMP", key, key],
        ] {
            same(&mut a, &mut b, args);
        }
        // Still there after the failed attempts.
        same(&mut a, &mut b, &[b"GET", key]);
        // TTLs: relative, absolute, already past (reply OK, key gone).
        same(&mut a, &mut b, &[b"RESTORE", key, b"100000", p, b"REPLACE"]);
        for c in [&mut a, &mut b] {
            let pttl = String::from_utf8_lossy(&call(c, &[b"PTTL", key])).into_owned();
            let v: i64 = pttl.trim_start_matches(':').trim().parse().unwrap();
            assert!((98_000..=100_000).contains(&v), "PTTL {v}");
        }
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", key, b"4102444800000", p, b"REPLACE", b"ABSTTL"],
        );
        same(&mut a, &mut b, &[b"PEXPIRETIME", key]);
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", key, b"1000", p, b"REPLACE", b"ABSTTL"],
        );
        same(&mut a, &mut b, &[b"EXISTS", key]);
        same(&mut a, &mut b, &[b"RESTORE", key, b"1", p, b"ABSTTL"]);
        same(&mut a, &mut b, &[b"EXISTS", key]);
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", key, b"9223372036854775807", p],
        );
        same(&mut a, &mut b, &[b"EXISTS", key]);
        // IDLETIME shows in OBJECT IDLETIME; FREQ is accepted (and ignored) without LFU.
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", key, b"0", p, b"IDLETIME", b"1000"],
        );
        for c in [&mut a, &mut b] {
            let r = String::from_utf8_lossy(&call(c, &[b"OBJECT", b"IDLETIME", key])).into_owned();
            let v: i64 = r.trim_start_matches(':').trim().parse().unwrap();
            assert!((1000..=1002).contains(&v), "IDLETIME {v}");
        }
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", key, b"0", p, b"REPLACE", b"FREQ", b"100"],
        );
        same(&mut a, &mut b, &[b"OBJECT", b"FREQ", key]);
        same(&mut a, &mut b, &[b"DEL", key]);
    }
    // COMMAND INFO agrees (flags include `asking` for RESTORE-ASKING).
    for name in [&b"dump"[..], b"restore", b"restore-asking"] {
        let want = node(&call(&mut b, &[b"COMMAND", b"INFO", name]));
        let got = node(&call(&mut a, &[b"COMMAND", b"INFO", name]));
        let head = |n: Node| match n {
            Node::Agg(_, Some(mut v)) => match v.remove(0) {
                Node::Agg(_, Some(mut info)) => {
                    info.truncate(7);
                    info
                }
                other => vec![other],
            },
            other => vec![other],
        };
        assert_eq!(head(got), head(want), "COMMAND INFO {}", show(name));
    }
}

#[test]
fn restore_freq_under_lfu() {
    let lfu = ["--maxmemory-policy", "allkeys-lfu"];
    let ours = Server::start(SHARDS, &lfu);
    let stock = StockRedis::start(&lfu);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    call(&mut b, &[b"SET", b"src", b"v"]);
    let p = bulk(&call(&mut b, &[b"DUMP", b"src"])).unwrap();
    for f in [&b"0"[..], b"3", b"5"] {
        same(
            &mut a,
            &mut b,
            &[b"RESTORE", b"k", b"0", &p, b"REPLACE", b"FREQ", f],
        );
        same(&mut a, &mut b, &[b"OBJECT", b"FREQ", b"k"]);
    }
    // IDLETIME is accepted and has no effect under LFU.
    same(
        &mut a,
        &mut b,
        &[b"RESTORE", b"k", b"0", &p, b"REPLACE", b"IDLETIME", b"50"],
    );
    same(&mut a, &mut b, &[b"OBJECT", b"IDLETIME", b"k"]);
}

/// Re-seals a payload body (type byte + object) with a version and a correct CRC.
fn seal(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// RESTOREs `payload` on both under a fresh key and checks they agree: the same error line,
/// or both OK with the same contents. A failed RESTORE must leave no key behind.
fn compare_restore(a: &mut Raw, b: &mut Raw, key: &[u8], payload: &[u8], what: &str) -> bool {
    let want = call(b, &[b"RESTORE", key, b"0", payload]);
    let got = call(a, &[b"RESTORE", key, b"0", payload]);
    assert_eq!(show(&got), show(&want), "{what}: payload {}", show(payload));
    if got == b"+OK\r\n" {
        assert_eq!(
            contents_in(a, key, false),
            contents_in(b, key, false),
            "{what}: loaded value differs"
        );
        call(a, &[b"DEL", key]);
        call(b, &[b"DEL", key]);
        true
    } else {
        assert_eq!(
            call(a, &[b"EXISTS", key]),
            b":0\r\n",
            "{what}: key created on error"
        );
        false
    }
}

#[test]
fn corrupt_payloads_get_stock_errors() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&["--sanitize-dump-payload", "yes"]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    // Base payloads from stock, one per type and encoding.
    let mut bases = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        if case.name == "list-large"
            || case.name.ends_with("-large")
            || case.name == "set-large-ints"
        {
            continue; // keep the flip loop short: the small encodings carry the same paths
        }
        let key = format!("base{i}");
        run_setup(&mut b, case, key.as_bytes());
        let p = bulk(&call(&mut b, &[b"DUMP", key.as_bytes()])).unwrap();
        bases.push((case.name, p));
    }
    let mut rng = Rng(0xc0ff_ee00);
    let mut loaded = 0;
    let mut n = 0usize;
    for (name, p) in &bases {
        let body = &p[..p.len() - 10];
        let key_for = |n: usize| key_on_shard(&format!("c{n}:"), n % SHARDS, SHARDS);
        // Wrong CRC, wrong (newer) version, every truncation as sent.
        let mut bad_crc = p.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x40;
        compare_restore(&mut a, &mut b, key_for(n).as_bytes(), &bad_crc, name);
        compare_restore(&mut a, &mut b, key_for(n).as_bytes(), &seal(body, 13), name);
        for len in 0..p.len() {
            n += 1;
            compare_restore(&mut a, &mut b, key_for(n).as_bytes(), &p[..len], name);
        }
        // Every truncation of the object, re-sealed so that only the object is wrong.
        for len in 1..body.len() {
            n += 1;
            compare_restore(
                &mut a,
                &mut b,
                key_for(n).as_bytes(),
                &seal(&body[..len], 10),
                name,
            );
        }
        // Random bit flips in the object (not the type byte: see the next test), re-sealed.
        for _ in 0..150 {
            n += 1;
            let mut c = body.to_vec();
            for _ in 0..1 + rng.below(3) {
                let bit = 8 + rng.below((c.len() as u64 - 1) * 8) as usize;
                c[bit / 8] ^= 1 << (bit % 8);
            }
            if matches!(c[0], 2 | 4 | 5) && matches!(c[1], 0x80 | 0x81) {
                continue; // a huge count: see the lying lengths below
            }
            if compare_restore(&mut a, &mut b, key_for(n).as_bytes(), &seal(&c, 10), name) {
                loaded += 1;
            }
        }
        // Lying lengths: the first length byte set to every value but the 32/64-bit forms
        // (0x80..=0xBF), with which stock preallocates a dict of billions of buckets and
        // then walks it to free it (tens of GB, minutes); ours refuses such a count at once
        // (unit tests cover that).
        for v in (0..=255u8).filter(|v| !(0x80..=0xBF).contains(v)) {
            if body.len() < 2 {
                break;
            }
            n += 1;
            let mut c = body.to_vec();
            c[1] = v;
            compare_restore(&mut a, &mut b, key_for(n).as_bytes(), &seal(&c, 10), name);
        }
    }
    assert!(n > 3000, "only {n} corrupt payloads tried");
    assert!(
        loaded > 0,
        "no flip ever loaded: the comparison of loaded values never ran"
    );
    assert_eq!(call(&mut a, &[b"PING"]), b"+PONG\r\n");
}

#[test]
fn type_bytes_and_newer_versions() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&["--sanitize-dump-payload", "yes"]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    call(&mut b, &[b"HSET", b"h", b"f", b"v"]);
    let p = bulk(&call(&mut b, &[b"DUMP", b"h"])).unwrap();
    let body = &p[..p.len() - 10];
    // Every type byte under a hash-listpack body: the same verdict as 7.0, except 20
    // (7.2's SET_LISTPACK), which we load and 7.0 does not know.
    for t in 0..=255u8 {
        let mut c = body.to_vec();
        c[0] = t;
        let payload = seal(&c, 10);
        let key = key_on_shard(&format!("t{t}:"), t as usize % SHARDS, SHARDS);
        if t == 20 {
            assert_eq!(
                call(&mut a, &[b"RESTORE", key.as_bytes(), b"0", &payload]),
                b"+OK\r\n"
            );
            assert_eq!(call(&mut a, &[b"TYPE", key.as_bytes()]), b"+set\r\n");
            assert_eq!(call(&mut a, &[b"SCARD", key.as_bytes()]), b":2\r\n");
            continue;
        }
        compare_restore(
            &mut a,
            &mut b,
            key.as_bytes(),
            &payload,
            &format!("type {t}"),
        );
    }
    // 7.2's SADD set2 a b (SET_LISTPACK, version 11) loads here; 7.0 refuses the version.
    let v11: Vec<u8> = [
        0x14, 0x0d, 0x0d, 0, 0, 0, 0x02, 0, 0x81, 0x61, 0x02, 0x81, 0x62, 0x02, 0xff, 0x0b, 0x00,
        0x0a, 0xec, 0x0a, 0xb4, 0x49, 0xa3, 0xd6, 0x54,
    ]
    .to_vec();
    assert_eq!(call(&mut a, &[b"RESTORE", b"s72", b"0", &v11]), b"+OK\r\n");
    assert_eq!(
        call(&mut b, &[b"RESTORE", b"s72", b"0", &v11]),
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
    assert!(matches!(contents(&mut a, b"s72").1, Node::Agg(_, Some(ref v)) if v.len() == 2));
    // Version 12 of a plain string loads; 13 does not.
    call(&mut b, &[b"SET", b"s", b"hello"]);
    let p = bulk(&call(&mut b, &[b"DUMP", b"s"])).unwrap();
    let body = &p[..p.len() - 10];
    assert_eq!(
        call(&mut a, &[b"RESTORE", b"s12", b"0", &seal(body, 12)]),
        b"+OK\r\n"
    );
    assert_eq!(
        call(&mut a, &[b"RESTORE", b"s13", b"0", &seal(body, 13)]),
        b"-ERR DUMP payload version or checksum are wrong\r\n"
    );
}

/// A ziplist (RDB 6.2 and older) of strings and small integers, encoded as Redis did.
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let (mut prev, mut tail) = (0usize, 10usize);
    for it in items {
        let start = body.len();
        tail = 10 + start;
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(254);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match std::str::from_utf8(it)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(v) if (0..=12).contains(&v) && it.len() <= 2 => body.push(0xF1 + v as u8),
            Some(v) if i16::try_from(v).is_ok() && v.to_string().as_bytes() == *it => {
                body.push(0xC0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            _ if it.len() < 64 => {
                body.push(it.len() as u8);
                body.extend_from_slice(it);
            }
            _ => {
                body.push(0x40 | (it.len() >> 8) as u8);
                body.push(it.len() as u8);
                body.extend_from_slice(it);
            }
        }
        prev = body.len() - start;
    }
    let total = 10 + body.len() + 1;
    let mut out = (total as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(tail as u32).to_le_bytes());
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xFF);
    out
}

/// A length-prefixed raw string (no LZF, so flips land in the blob itself).
fn raw_string(b: &[u8]) -> Vec<u8> {
    assert!(b.len() < 16384);
    let mut out = if b.len() < 64 {
        vec![b.len() as u8]
    } else {
        vec![0x40 | (b.len() >> 8) as u8, b.len() as u8]
    };
    out.extend_from_slice(b);
    out
}

#[test]
fn old_ziplist_payloads_load_like_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&["--sanitize-dump-payload", "yes"]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    let long = vec![b'w'; 300];
    let items: Vec<&[u8]> = vec![b"m1", b"1", b"m2", b"2.5", b"m3", b"300", &long, b"-7"];
    let zl = ziplist(&items);
    let mut quicklist = vec![2u8];
    quicklist.extend(raw_string(&zl));
    quicklist.extend(raw_string(&ziplist(&[b"tail", b"12"])));
    let bodies: Vec<(u8, Vec<u8>)> = vec![
        (10, raw_string(&zl)),
        (
            12,
            raw_string(&ziplist(&[b"a", b"1", b"b", b"2.5", b"c", b"300"])),
        ),
        (13, raw_string(&zl)),
        (14, quicklist),
    ];
    let mut rng = Rng(0x21_9155);
    let mut n = 0;
    for (t, body) in bodies {
        let mut full = vec![t];
        full.extend_from_slice(&body);
        let key = key_on_shard(&format!("zl{t}:"), t as usize % SHARDS, SHARDS);
        assert!(
            compare_restore(&mut a, &mut b, key.as_bytes(), &seal(&full, 9), "ziplist"),
            "type {t} did not load"
        );
        for _ in 0..300 {
            n += 1;
            let mut c = full.clone();
            let bit = 8 + rng.below((c.len() as u64 - 1) * 8) as usize;
            c[bit / 8] ^= 1 << (bit % 8);
            let key = key_on_shard(&format!("zlf{n}:"), n % SHARDS, SHARDS);
            compare_restore(
                &mut a,
                &mut b,
                key.as_bytes(),
                &seal(&c, 9),
                &format!("ziplist {t}"),
            );
        }
    }
    assert_eq!(call(&mut a, &[b"PING"]), b"+PONG\r\n");
}

#[test]
fn restore_wakes_blocked_clients_and_large_values_cross() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    // A client blocked on a list is served by RESTORE creating it, on whichever shard.
    call(&mut b, &[b"RPUSH", b"l", b"x", b"y"]);
    let p = bulk(&call(&mut b, &[b"DUMP", b"l"])).unwrap();
    for k in 0..SHARDS {
        let key = key_on_shard("blocked:", k, SHARDS);
        let mut waiter = ours.raw();
        waiter.send_cmd(&[b"BLPOP", key.as_bytes(), b"5"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(
            call(&mut a, &[b"RESTORE", key.as_bytes(), b"0", &p]),
            b"+OK\r\n"
        );
        let got = waiter.read_reply();
        assert_eq!(
            node(&got),
            node(&common::encode(&[key.as_bytes(), b"x"])),
            "BLPOP woken by RESTORE"
        );
        assert_eq!(call(&mut a, &[b"LLEN", key.as_bytes()]), b":1\r\n");
    }
    // Large values of every aggregate type cross both ways intact.
    let n = 50_000;
    let mut zadd: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"z".to_vec()];
    let mut hset: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"h".to_vec()];
    let mut sadd: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"s".to_vec()];
    let mut rpush: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"l2".to_vec()];
    for i in 0..n {
        zadd.push(format!("{}", (i * 7919) % n).into_bytes());
        zadd.push(format!("member-{i}").into_bytes());
        hset.push(format!("field-{i}").into_bytes());
        hset.push(format!("{}", i * 3).into_bytes());
        sadd.push(format!("{}", i * 11).into_bytes());
        rpush.push(format!("element-{i}").into_bytes());
    }
    for cmd in [&zadd, &hset, &sadd, &rpush] {
        let args: Vec<&[u8]> = cmd.iter().map(|v| &v[..]).collect();
        call(&mut b, &args);
        call(&mut a, &args);
    }
    for key in [&b"z"[..], b"h", b"s", b"l2"] {
        let from_stock = bulk(&call(&mut b, &[b"DUMP", key])).unwrap();
        let from_ours = bulk(&call(&mut a, &[b"DUMP", key])).unwrap();
        let dst = [b"copy-", key].concat();
        let started = std::time::Instant::now();
        assert_eq!(
            call(&mut a, &[b"RESTORE", &dst, b"0", &from_stock]),
            b"+OK\r\n"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "slow RESTORE"
        );
        assert_eq!(
            call(&mut b, &[b"RESTORE", &dst, b"0", &from_ours]),
            b"+OK\r\n"
        );
        let want = contents(&mut b, key);
        assert_eq!(contents(&mut a, &dst), want, "{}", show(key));
        assert_eq!(contents(&mut b, &dst), want, "{}", show(key));
        assert_eq!(
            call(&mut a, &[b"OBJECT", b"ENCODING", &dst]),
            call(&mut b, &[b"OBJECT", b"ENCODING", &dst])
        );
    }
}

#[test]
fn loaded_listpacks_convert_by_count_like_stock() {
    // A source configured for long listpack values dumps listpacks that the default
    // thresholds would not build; both receivers keep them as listpacks.
    let wide = StockRedis::start(&[
        "--hash-max-listpack-value",
        "1000",
        "--zset-max-listpack-value",
        "1000",
    ]);
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    let mut w = Raw::connect(wide.port);
    let long = vec![b'v'; 300];
    call(&mut w, &[b"HSET", b"h", b"f", &long]);
    call(&mut w, &[b"ZADD", b"z", b"1", &long]);
    for key in [&b"h"[..], b"z"] {
        let p = bulk(&call(&mut w, &[b"DUMP", key])).unwrap();
        same(&mut a, &mut b, &[b"RESTORE", key, b"0", &p]);
        same(&mut a, &mut b, &[b"OBJECT", b"ENCODING", key]);
        assert_eq!(contents(&mut a, key), contents(&mut b, key));
    }
}
