//! SLOWLOG and LATENCY against stock redis-server 7.0: entry shapes (argument trimming,
//! client address and name), merging across the cores of a multi-shard server in time
//! order, latency events and their replies, LATENCY HISTOGRAM, errors and HELP texts.

mod common;

use common::{key_on_shard, show, Raw, Server, StockRedis};
use redis::Value;

/// A reply as text, with the parts that differ between two servers by nature (ids, times,
/// durations, client ports) replaced by what `mask` says.
fn text(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(i) => i.to_string(),
        Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => format!("+{s}"),
        Value::Okay => "+OK".into(),
        Value::Array(items) | Value::Set(items) => format!(
            "[{}]",
            items.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}: {}", text(k), text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::VerbatimString { text, .. } => format!("{text:?}"),
        Value::ServerError(e) => format!("-{}", e.details().unwrap_or_default()),
        other => format!("{other:?}"),
    }
}

/// SLOWLOG GET's entries with id, time, duration and the client's port masked; checks the
/// masked fields are sane (ids descending, times now, durations non-negative).
fn slow_entries(c: &mut redis::Connection, count: i64) -> Vec<String> {
    let v: Value = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(count)
        .query(c)
        .expect("SLOWLOG GET");
    let Value::Array(entries) = v else {
        panic!("SLOWLOG GET: {v:?}")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut last_id = i64::MAX;
    entries
        .iter()
        .map(|e| {
            let Value::Array(f) = e else {
                panic!("entry {e:?}")
            };
            assert_eq!(f.len(), 6, "{e:?}");
            let (Value::Int(id), Value::Int(time), Value::Int(dur)) = (&f[0], &f[1], &f[2]) else {
                panic!("entry {e:?}")
            };
            assert!(*id < last_id, "ids descend: {e:?}");
            last_id = *id;
            assert!((now - time).abs() < 30, "time {time} vs now {now}");
            assert!(*dur >= 0);
            let addr = match &f[4] {
                Value::BulkString(b) => {
                    let a = String::from_utf8_lossy(b).into_owned();
                    assert!(a.starts_with("127.0.0.1:"), "{a}");
                    "127.0.0.1:*".to_string()
                }
                other => text(other),
            };
            format!("{} {} {}", text(&f[3]), addr, text(&f[5]))
        })
        .collect()
}

fn query(c: &mut redis::Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| match e.kind() {
        redis::ErrorKind::ExtensionError | redis::ErrorKind::ResponseError => {
            Value::SimpleString(format!("ERR {e}"))
        }
        _ => panic!("{args:?}: {e}"),
    })
}

/// Runs the same commands on both servers, each on its own connection.
fn both(a: &mut redis::Connection, b: &mut redis::Connection, args: &[&str]) {
    query(a, args);
    query(b, args);
}

#[test]
fn slowlog_entries_match_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.conn(), stock.conn());
    for c in [&mut a, &mut b] {
        query(c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        query(c, &["SLOWLOG", "RESET"]);
    }
    // Keys on both shards of ours, in an order the merged log must keep.
    let k0 = key_on_shard("k", 0, 2);
    let k1 = key_on_shard("k", 1, 2);
    let long = "x".repeat(200);
    let many: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let mut sadd: Vec<&str> = vec!["SADD", &k1];
    sadd.extend(many.iter().map(String::as_str));
    let script: &[&[&str]] = &[
        &["SET", &k0, "v"],
        &["SET", &k1, &long],
        &["CLIENT", "SETNAME", "watcher"],
        &["GET", &k0],
        &sadd,
        &["AUTH", "nosuchuser", "secret"],
        &["MULTI"],
        &["INCR", &k0],
        &["GET", &k1],
        &["EXEC"],
        &["CLIENT", "SETNAME", "other"],
        &["MGET", &k0, &k1],
    ];
    for cmd in script {
        both(&mut a, &mut b, cmd);
    }
    let (x, y) = (slow_entries(&mut a, -1), slow_entries(&mut b, -1));
    assert_eq!(x, y, "\n ours: {x:#?}\nstock: {y:#?}");
    assert!(x.len() >= 10, "{x:#?}");
    // The names entries carry are the client's name when the command ran.
    assert!(x.iter().any(|e| e.contains("\"watcher\"")));
    assert!(x[0].ends_with("\"other\""));

    // GET count, LEN, slowlog-max-len, RESET, errors and HELP, byte for byte.
    let (mut ra, mut rb) = (ours.raw(), Raw::connect(stock.port));
    for cmd in [
        &[&b"SLOWLOG"[..], b"GET", b"2"][..],
        &[b"CONFIG", b"SET", b"slowlog-log-slower-than", b"-1"],
        &[b"SLOWLOG", b"RESET"],
        &[b"SLOWLOG", b"LEN"],
        &[b"SLOWLOG", b"GET"],
        &[b"SLOWLOG", b"GET", b"-2"],
        &[b"SLOWLOG", b"GET", b"x"],
        &[b"SLOWLOG", b"GET", b"1", b"2"],
        &[b"SLOWLOG", b"LEN", b"1"],
        &[b"SLOWLOG", b"NOSUCH"],
        &[b"SLOWLOG"],
        &[b"SLOWLOG", b"HELP"],
        &[b"CONFIG", b"SET", b"slowlog-log-slower-than", b"0"],
        &[b"CONFIG", b"SET", b"slowlog-max-len", b"3"],
        &[b"SET", b"a", b"1"],
        &[b"SET", b"b", b"1"],
        &[b"SET", b"c", b"1"],
        &[b"SET", b"d", b"1"],
        &[b"SLOWLOG", b"LEN"],
    ] {
        let (p, q) = (ra.call(cmd), rb.call(cmd));
        if cmd.len() == 3 && cmd[1] == b"GET" && cmd[2] == b"2" {
            continue; // ids and times differ; the shapes were compared above
        }
        assert_eq!(show(&p), show(&q), "{:?}", show(&common::encode(cmd)));
    }
}

#[test]
fn slowlog_threshold_and_merge_across_shards() {
    let ours = Server::start(
        3,
        &["--slowlog-log-slower-than", "0", "--slowlog-max-len", "5"],
    );
    let mut c = ours.conn();
    query(&mut c, &["SLOWLOG", "RESET"]);
    for i in 0..9 {
        let k = key_on_shard("key", i % 3, 3);
        query(&mut c, &["SET", &k, &i.to_string()]);
    }
    let e = slow_entries(&mut c, -1);
    // The newest five over all shards, newest first: SLOWLOG RESET is not among them.
    assert_eq!(e.len(), 5, "{e:#?}");
    for (n, i) in (4..9).rev().enumerate() {
        assert!(e[n].contains(&format!("\"{i}\"]")), "{e:#?}");
    }
    assert_eq!(query(&mut c, &["SLOWLOG", "LEN"]), Value::Int(5));
    // A threshold no command reaches records nothing.
    query(
        &mut c,
        &["CONFIG", "SET", "slowlog-log-slower-than", "10000000"],
    );
    query(&mut c, &["SLOWLOG", "RESET"]);
    for i in 0..6 {
        query(&mut c, &["SET", &key_on_shard("x", i % 3, 3), "v"]);
    }
    assert_eq!(query(&mut c, &["SLOWLOG", "LEN"]), Value::Int(0));
}

#[test]
fn latency_events_match_stock() {
    let ours = Server::start(2, &["--enable-debug-command", "yes"]);
    let stock = StockRedis::start(&["--enable-debug-command", "yes"]);
    let (mut a, mut b) = (ours.conn(), stock.conn());
    let (mut ra, mut rb) = (ours.raw(), Raw::connect(stock.port));
    // Before anything is recorded.
    for cmd in [
        &[&b"LATENCY"[..], b"LATEST"][..],
        &[b"LATENCY", b"HISTORY", b"command"],
        &[b"LATENCY", b"GRAPH", b"command"],
        &[b"LATENCY", b"DOCTOR"],
        &[b"LATENCY", b"RESET"],
        &[b"LATENCY", b"HELP"],
        &[b"LATENCY", b"NOSUCH"],
        &[b"LATENCY", b"HISTORY"],
        &[b"LATENCY", b"LATEST", b"x"],
    ] {
        let (p, q) = (ra.call(cmd), rb.call(cmd));
        assert_eq!(show(&p), show(&q), "{:?}", show(&common::encode(cmd)));
    }
    for c in [&mut a, &mut b] {
        // Well above what a loaded machine adds to a quick command.
        query(c, &["CONFIG", "SET", "latency-monitor-threshold", "40"]);
        query(c, &["DEBUG", "SLEEP", "0.1"]);
        query(c, &["DEBUG", "SLEEP", "0"]);
    }
    let latest = |c: &mut redis::Connection| -> Vec<(String, i64, i64)> {
        let Value::Array(events) = query(c, &["LATENCY", "LATEST"]) else {
            panic!()
        };
        events
            .iter()
            .map(|e| {
                let Value::Array(f) = e else { panic!("{e:?}") };
                let (Value::BulkString(n), Value::Int(_t), Value::Int(ms), Value::Int(max)) =
                    (&f[0], &f[1], &f[2], &f[3])
                else {
                    panic!("{e:?}")
                };
                (String::from_utf8_lossy(n).into_owned(), *ms, *max)
            })
            .collect()
    };
    let (x, y) = (latest(&mut a), latest(&mut b));
    assert_eq!(x.len(), 1, "{x:?}");
    assert_eq!(
        x.iter().map(|e| &e.0).collect::<Vec<_>>(),
        y.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    assert_eq!(x[0].0, "command");
    assert!((100..1000).contains(&x[0].1) && x[0].1 == x[0].2, "{x:?}");
    // HISTORY: one sample per second at most, as [time, ms].
    let hist = text(&query(&mut a, &["LATENCY", "HISTORY", "command"]));
    assert!(
        hist.starts_with("[[") && hist.matches('[').count() == 2,
        "{hist}"
    );
    // GRAPH and DOCTOR are text in the same layout as stock's.
    let graph = |c: &mut redis::Connection| text(&query(c, &["LATENCY", "GRAPH", "command"]));
    let (ga, gb) = (graph(&mut a), graph(&mut b));
    let shape = |g: &str| g.replace(|c: char| c.is_ascii_digit(), "9");
    assert!(ga.starts_with("\"command - high "), "{ga}");
    assert_eq!(
        shape(&ga).lines().count(),
        shape(&gb).lines().count(),
        "{ga}\n{gb}"
    );
    let doctor = text(&query(&mut a, &["LATENCY", "DOCTOR"]));
    assert!(
        doctor.contains("1. command: 1 latency spikes (average "),
        "{doctor}"
    );
    // RESET of one event and of all.
    assert_eq!(
        query(&mut a, &["LATENCY", "RESET", "nosuch"]),
        Value::Int(0)
    );
    assert_eq!(
        query(&mut a, &["LATENCY", "RESET", "command", "COMMAND"]),
        Value::Int(1)
    );
    assert_eq!(
        query(&mut b, &["LATENCY", "RESET", "command", "COMMAND"]),
        Value::Int(1)
    );
    let left = latest(&mut a);
    assert!(left.iter().all(|e| e.1 < 100), "{left:?}");
}

/// LATENCY HISTOGRAM: the same commands with the same call counts as stock, and
/// cumulative buckets at powers of two.
#[test]
fn latency_histogram_matches_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.conn(), stock.conn());
    for c in [&mut a, &mut b] {
        query(c, &["CONFIG", "RESETSTAT"]);
        for i in 0..20 {
            query(c, &["SET", &format!("k{i}"), "v"]);
        }
        query(c, &["GET", "k1"]);
        query(c, &["CLIENT", "ID"]);
    }
    // RESP2: a flat array of name, [calls, n, histogram_usec, [us, count ...]].
    let calls = |c: &mut redis::Connection, args: &[&str]| -> Vec<(String, i64)> {
        let Value::Array(items) = query(c, args) else {
            panic!()
        };
        items
            .chunks(2)
            .map(|kv| {
                let Value::BulkString(n) = &kv[0] else {
                    panic!("{kv:?}")
                };
                let Value::Array(f) = &kv[1] else {
                    panic!("{kv:?}")
                };
                assert_eq!(text(&f[0]), "\"calls\"");
                assert_eq!(text(&f[2]), "\"histogram_usec\"");
                let Value::Int(calls) = f[1] else {
                    panic!("{kv:?}")
                };
                let Value::Array(h) = &f[3] else {
                    panic!("{kv:?}")
                };
                // Buckets at powers of two µs; cumulative counts grow and end at the calls.
                let pairs: Vec<(i64, i64)> = h
                    .chunks(2)
                    .map(|p| match (&p[0], &p[1]) {
                        (Value::Int(us), Value::Int(n)) => (*us, *n),
                        _ => panic!("{p:?}"),
                    })
                    .collect();
                assert!(
                    pairs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
                    "{pairs:?}"
                );
                assert_eq!(pairs.last().map(|p| p.1), Some(calls));
                for (us, _) in &pairs {
                    // 1024 ns << k, at its highest equivalent value: 1, 2, 4, 8 ... 16, 32, 65 ...
                    assert!(*us >= 1, "{pairs:?}");
                }
                (String::from_utf8_lossy(n).into_owned(), calls)
            })
            .collect()
    };
    let mut x = calls(
        &mut a,
        &["LATENCY", "HISTOGRAM", "set", "get", "client", "nosuch"],
    );
    let mut y = calls(
        &mut b,
        &["LATENCY", "HISTOGRAM", "set", "get", "client", "nosuch"],
    );
    x.sort();
    y.sort();
    assert_eq!(x, y);
    assert_eq!(
        x,
        [
            ("client|id".into(), 1),
            ("get".into(), 1),
            ("set".into(), 20)
        ]
    );
    // Every command with calls, without arguments (the redis crate's HELLO/CLIENT SETINFO
    // and the like may differ between the servers before RESETSTAT; after it both ran the
    // same commands).
    let mut x = calls(&mut a, &["LATENCY", "HISTOGRAM"]);
    let mut y = calls(&mut b, &["LATENCY", "HISTOGRAM"]);
    x.sort();
    y.sort();
    assert_eq!(x, y);
}

#[test]
fn latency_tracking_info_percentiles() {
    let ours = Server::start(1, &[]);
    let stock = StockRedis::start(&[]);
    let (mut ra, mut rb) = (ours.raw(), Raw::connect(stock.port));
    for cmd in [
        &[
            &b"CONFIG"[..],
            b"SET",
            b"latency-tracking-info-percentiles",
            b"50 99.99 100",
        ][..],
        &[b"CONFIG", b"GET", b"latency-tracking-info-percentiles"],
        &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"101",
        ],
        &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"abc",
        ],
        &[b"CONFIG", b"SET", b"latency-tracking-info-percentiles", b""],
        &[b"CONFIG", b"GET", b"latency-tracking-info-percentiles"],
        &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"0.5 1.25",
        ],
        &[b"CONFIG", b"GET", b"latency-tracking-info-percentiles"],
        &[b"CONFIG", b"GET", b"latency-monitor-threshold"],
    ] {
        let (p, q) = (ra.call(cmd), rb.call(cmd));
        assert_eq!(show(&p), show(&q), "{:?}", show(&common::encode(cmd)));
    }
}

/// A RESP frame's shape: types in place of values, map keys (and the names in a RESP2
/// MEMORY STATS flat array) kept.
fn shape(frame: &[u8], pairs: bool) -> String {
    fn line(buf: &[u8], at: usize) -> (String, usize) {
        let end = at
            + buf[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("CRLF");
        (
            String::from_utf8_lossy(&buf[at + 1..end]).into_owned(),
            end + 2,
        )
    }
    /// (shape, literal text for bulk/simple strings, next position).
    fn walk(buf: &[u8], at: usize, pairs: bool) -> (String, String, usize) {
        let (head, next) = line(buf, at);
        match buf[at] {
            b':' => ("int".into(), head, next),
            b',' => ("double".into(), head, next),
            b'_' => ("null".into(), String::new(), next),
            b'+' => ("simple".into(), head, next),
            b'-' => (format!("error {head}"), head, next),
            b'$' | b'=' => {
                let n: i64 = head.parse().unwrap();
                if n < 0 {
                    return ("null".into(), String::new(), next);
                }
                let body = String::from_utf8_lossy(&buf[next..next + n as usize]).into_owned();
                let kind = if buf[at] == b'=' { "verbatim" } else { "bulk" };
                (kind.into(), body, next + n as usize + 2)
            }
            b'*' | b'%' => {
                let n: usize = head.parse().unwrap();
                let map = buf[at] == b'%';
                let items = if map { 2 * n } else { n };
                let mut pos = next;
                let mut parts = Vec::new();
                for i in 0..items {
                    let (s, lit, p) = walk(buf, pos, false);
                    pos = p;
                    let key = (map || pairs) && i % 2 == 0;
                    parts.push(if key { lit } else { s });
                }
                (format!("[{}]", parts.join(" ")), String::new(), pos)
            }
            other => panic!("unexpected frame type {}", other as char),
        }
    }
    walk(frame, 0, pairs).0
}

#[test]
fn memory_replies_match_stock_in_shape() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let mut a = Raw::connect(ours.port);
        let mut b = Raw::connect(stock.port);
        if resp3 {
            a.call(&[b"HELLO", b"3"]);
            b.call(&[b"HELLO", b"3"]);
        }
        for c in [&mut a, &mut b] {
            for k in ["k0", "k1", "k2", "k3"] {
                c.call(&[b"SET", k.as_bytes(), b"v", b"EX", b"100"]);
            }
            c.call(&[b"SELECT", b"3"]);
            c.call(&[b"HSET", b"h", b"f", b"v"]);
            c.call(&[b"SELECT", b"0"]);
        }
        let stats: &[&[u8]] = &[b"MEMORY", b"STATS"];
        let (x, y) = (a.call(stats), b.call(stats));
        assert_eq!(shape(&x, !resp3), shape(&y, !resp3), "MEMORY STATS");
        assert!(shape(&x, !resp3).contains("db.3"), "{}", show(&x));
        for args in [
            &[&b"MEMORY"[..], b"DOCTOR"][..],
            &[b"MEMORY", b"MALLOC-STATS"],
            &[b"MEMORY", b"USAGE", b"k0"],
            &[b"MEMORY", b"USAGE", b"k0", b"SAMPLES", b"0"],
        ] {
            let (x, y) = (a.call(args), b.call(args));
            assert_eq!(
                shape(&x, false),
                shape(&y, false),
                "{}",
                show(&args.concat())
            );
        }
        // Byte for byte: HELP, PURGE, misses and every error.
        for args in [
            &[&b"MEMORY"[..], b"HELP"][..],
            &[b"MEMORY", b"help"],
            &[b"MEMORY", b"PURGE"],
            &[b"MEMORY", b"USAGE", b"nosuch"],
            &[b"MEMORY", b"USAGE", b"k0", b"SAMPLES"],
            &[b"MEMORY", b"USAGE", b"k0", b"SAMPLES", b"-1"],
            &[b"MEMORY", b"USAGE", b"k0", b"SAMPLES", b"x"],
            &[b"MEMORY", b"USAGE", b"k0", b"FOO"],
            &[b"MEMORY", b"USAGE"],
            &[b"MEMORY", b"STATS", b"x"],
            &[b"MEMORY", b"HELP", b"x"],
            &[b"MEMORY", b"FOO"],
            &[b"MEMORY"],
        ] {
            let (x, y) = (a.call(args), b.call(args));
            assert_eq!(show(&x), show(&y), "{}", show(&args.concat()));
        }
    }
}

/// MEMORY USAGE follows what a key holds: a value's bytes, and collections' element counts.
#[test]
fn memory_usage_tracks_values() {
    let ours = Server::start(2, &[]);
    let mut c = Raw::connect(ours.port);
    let int = |r: Vec<u8>| -> i64 {
        String::from_utf8_lossy(&r[1..r.len() - 2])
            .parse()
            .unwrap_or_else(|_| panic!("{}", show(&r)))
    };
    let big = vec![b'x'; 1000];
    c.call(&[b"SET", b"s", &big]);
    let s = int(c.call(&[b"MEMORY", b"USAGE", b"s"]));
    assert!((1000..1300).contains(&s), "{s}");
    for n in 0..100 {
        let f = format!("field{n}");
        c.call(&[b"HSET", b"h", f.as_bytes(), b"value"]);
        if n == 9 {
            let small = int(c.call(&[b"MEMORY", b"USAGE", b"h"]));
            assert!(small > 100, "{small}");
        }
    }
    let h = int(c.call(&[b"MEMORY", b"USAGE", b"h", b"SAMPLES", b"0"]));
    assert!(h > 100 * 12, "{h}");
}
