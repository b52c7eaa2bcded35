//! Live resharding with stock tools in a mixed cluster: `redis-cli --cluster reshard` moves
//! slots from a stock node to a redcell node and from a redcell node to a stock node (MIGRATE
//! carrying DUMP payloads both ways), `rebalance` evens the slots, while a client keeps
//! writing. Afterwards every key is present exactly once with its value and TTL, and no
//! acknowledged write is lost.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{check_from_all, create, Node};
use common::{run_bounded, Rng};
use redcell::slot::key_slot;

/// Keys of every type written before the moves.
const KEYS: usize = 100_000;
/// Every this many keys, one big value (non-packed encodings, multi-node lists).
const BIG_EVERY: usize = 4_999;
/// Counters the concurrent writer increments.
const COUNTERS: usize = 300;
const TTL_MS: i64 = 3_600_000;

fn key(i: usize) -> String {
    format!("rk:{i}")
}

/// How many elements key `i` holds: a big value now and then (non-packed encodings,
/// multi-node lists).
fn size(i: usize) -> usize {
    if i % BIG_EVERY == 0 {
        300
    } else {
        4
    }
}

/// Key `i`'s string value when `i % 7 == 1`.
fn text(i: usize) -> String {
    format!("value {i} ").repeat(if size(i) > 4 { 200 } else { 3 })
}

/// Key `i`'s list items when `i % 7 == 2`.
fn list_items(i: usize) -> Vec<String> {
    (0..size(i)).map(|j| format!("e{i}.{j}")).collect()
}

/// Key `i`'s set members when `i % 7 == 3`: integers (an intset) unless big or every other
/// key (strings).
fn set_members(i: usize) -> Vec<String> {
    (0..size(i))
        .map(|j| {
            if i % 2 == 0 {
                (i * 10 + j).to_string()
            } else {
                format!("m{j}")
            }
        })
        .collect()
}

/// Key `i`'s sorted-set (member, score) pairs when `i % 7 == 4`, in score order.
fn zset_pairs(i: usize) -> Vec<(String, String)> {
    (0..size(i))
        .map(|j| (format!("z{j}"), format!("{}.5", j as i64 - 2)))
        .collect()
}

/// Key `i`'s hash (field, value) pairs when `i % 7 == 5`.
fn hash_pairs(i: usize) -> Vec<(String, String)> {
    (0..size(i))
        .map(|j| (format!("f{j}"), format!("v{i}.{j}")))
        .collect()
}

/// Key `i`'s stream entries (id, field, value, field, value) when `i % 7 == 6`.
fn stream_entries(i: usize) -> Vec<[String; 5]> {
    (0..size(i).min(50))
        .map(|j| {
            [
                format!("{}-{j}", i + 1),
                "f".into(),
                j.to_string(),
                "g".into(),
                i.to_string(),
            ]
        })
        .collect()
}

/// The commands that create key `i`: a type chosen by `i % 7`, big now and then, a TTL on
/// every tenth key.
fn write_cmds(i: usize, pipe: &mut redis::Pipeline) {
    let k = key(i);
    match i % 7 {
        0 => {
            pipe.cmd("SET").arg(&k).arg(i).ignore();
        }
        1 => {
            pipe.cmd("SET").arg(&k).arg(text(i)).ignore();
        }
        2 => {
            pipe.cmd("RPUSH").arg(&k).arg(list_items(i)).ignore();
        }
        3 => {
            pipe.cmd("SADD").arg(&k).arg(set_members(i)).ignore();
        }
        4 => {
            let mut c = redis::cmd("ZADD");
            c.arg(&k);
            for (member, score) in zset_pairs(i) {
                c.arg(score).arg(member);
            }
            pipe.add_command(c).ignore();
        }
        5 => {
            let mut c = redis::cmd("HSET");
            c.arg(&k);
            for (field, value) in hash_pairs(i) {
                c.arg(field).arg(value);
            }
            pipe.add_command(c).ignore();
        }
        _ => {
            for [id, f1, v1, f2, v2] in stream_entries(i) {
                pipe.cmd("XADD")
                    .arg(&k)
                    .arg(id)
                    .arg(f1)
                    .arg(v1)
                    .arg(f2)
                    .arg(v2)
                    .ignore();
            }
        }
    }
    if i % 10 == 3 {
        pipe.cmd("PEXPIRE").arg(&k).arg(TTL_MS).ignore();
    }
}

/// A command reading key `i` back, and whether its reply is an unordered collection.
fn read_cmd(i: usize) -> (redis::Cmd, bool) {
    let k = key(i);
    match i % 7 {
        0 | 1 => (redis::cmd("GET").arg(&k).clone(), false),
        2 => (redis::cmd("LRANGE").arg(&k).arg(0).arg(-1).clone(), false),
        3 => (redis::cmd("SMEMBERS").arg(&k).clone(), true),
        4 => (
            redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .clone(),
            false,
        ),
        5 => (redis::cmd("HGETALL").arg(&k).clone(), true),
        _ => (
            redis::cmd("XRANGE").arg(&k).arg("-").arg("+").clone(),
            false,
        ),
    }
}

/// A reply as a flat list of strings; sorted for sets (and hashes, as field/value pairs).
fn flat(v: &redis::Value, unordered: bool) -> Vec<String> {
    fn walk(v: &redis::Value, out: &mut Vec<String>) {
        match v {
            redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
            redis::Value::SimpleString(s) => out.push(s.clone()),
            redis::Value::Int(i) => out.push(i.to_string()),
            redis::Value::Nil => out.push("(nil)".into()),
            redis::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            other => out.push(format!("{other:?}")),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    if unordered {
        if out.len() % 2 == 0 && out.first().is_some_and(|f| f.starts_with('f')) {
            let mut pairs: Vec<(String, String)> = out
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            pairs.sort();
            out = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
        } else {
            out.sort();
        }
    }
    out
}

/// Slot → port of its owner, from a node's CLUSTER SLOTS.
fn slot_owners(port: u16) -> Vec<u16> {
    let mut con = connect(port);
    let slots: redis::Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut con)
        .expect("slots");
    let mut owners = vec![0u16; 16384];
    let redis::Value::Array(ranges) = slots else {
        panic!("CLUSTER SLOTS: {slots:?}")
    };
    for r in ranges {
        let redis::Value::Array(parts) = r else {
            continue;
        };
        let (redis::Value::Int(a), redis::Value::Int(b), redis::Value::Array(master)) =
            (&parts[0], &parts[1], &parts[2])
        else {
            panic!("CLUSTER SLOTS entry: {parts:?}")
        };
        let redis::Value::Int(p) = master[1] else {
            panic!("master: {master:?}")
        };
        for s in *a..=*b {
            owners[s as usize] = p as u16;
        }
    }
    assert!(owners.iter().all(|&p| p != 0), "every slot has an owner");
    owners
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    con.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    con
}

/// Runs `f(port, indexes)` once per owner node, with the keys it owns.
fn per_owner(owners: &[u16], n: usize, mut f: impl FnMut(u16, &[usize])) {
    let mut by_port: HashMap<u16, Vec<usize>> = HashMap::new();
    for i in 0..n {
        by_port
            .entry(owners[key_slot(key(i).as_bytes()) as usize])
            .or_default()
            .push(i);
    }
    for (port, idx) in by_port {
        for chunk in idx.chunks(2_000) {
            f(port, chunk);
        }
    }
}

fn fill(owners: &[u16]) {
    per_owner(owners, KEYS, |port, idx| {
        let mut con = connect(port);
        let mut pipe = redis::pipe();
        for &i in idx {
            write_cmds(i, &mut pipe);
        }
        pipe.query::<()>(&mut con)
            .unwrap_or_else(|e| panic!("fill via {port}: {e}"));
    });
}

/// Reads every key from its owner and compares it with what was written.
fn verify(owners: &[u16]) {
    per_owner(owners, KEYS, |port, idx| {
        let mut con = connect(port);
        let mut pipe = redis::pipe();
        for &i in idx {
            pipe.add_command(read_cmd(i).0);
            pipe.cmd("PTTL").arg(key(i));
        }
        let replies: Vec<redis::Value> = pipe
            .query(&mut con)
            .unwrap_or_else(|e| panic!("read via {port}: {e}"));
        for (n, &i) in idx.iter().enumerate() {
            let unordered = read_cmd(i).1;
            let got = flat(&replies[2 * n], unordered);
            let want = expected_value(i);
            assert_eq!(got, want, "key {} on port {port}", key(i));
            let redis::Value::Int(pttl) = replies[2 * n + 1] else {
                panic!("PTTL of {}: {:?}", key(i), replies[2 * n + 1]);
            };
            if i % 10 == 3 {
                assert!(
                    pttl > 0 && pttl <= TTL_MS,
                    "TTL of {} kept (got {pttl})",
                    key(i)
                );
            } else {
                assert_eq!(pttl, -1, "{} has no TTL", key(i));
            }
        }
    });
}

/// The reply `read_cmd(i)` must give for what `write_cmds(i)` wrote, normalised like `flat`.
fn expected_value(i: usize) -> Vec<String> {
    let flatten = |pairs: Vec<(String, String)>| pairs.into_iter().flat_map(|(a, b)| [a, b]);
    match i % 7 {
        0 => vec![i.to_string()],
        1 => vec![text(i)],
        2 => list_items(i),
        3 => {
            let mut m = set_members(i);
            m.sort();
            m
        }
        // ZRANGE order: by score (distinct here), member then score.
        4 => flatten(zset_pairs(i)).collect(),
        5 => {
            let mut pairs = hash_pairs(i);
            pairs.sort();
            flatten(pairs).collect()
        }
        _ => stream_entries(i).into_iter().flatten().collect(),
    }
}

fn counter(c: usize) -> String {
    format!("ctr:{c}")
}

/// What the concurrent writer saw: acknowledged increments per counter, and any error that is
/// not a redirection or TRYAGAIN.
struct WriterReport {
    acked: Vec<i64>,
    redirects: usize,
    try_again: usize,
    unexpected: Vec<String>,
}

/// Increments counters through plain connections, following MOVED and ASK and retrying on
/// TRYAGAIN, as a cluster client does, until `stop`.
fn writer(start_owners: Vec<u16>, stop: Arc<AtomicBool>) -> WriterReport {
    let mut owners = start_owners;
    let mut cons: HashMap<u16, redis::Connection> = HashMap::new();
    let mut rng = Rng(0xC0FFEE);
    let mut report = WriterReport {
        acked: vec![0; COUNTERS],
        redirects: 0,
        try_again: 0,
        unexpected: Vec::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        let c = rng.below(COUNTERS as u64) as usize;
        let k = counter(c);
        let slot = key_slot(k.as_bytes()) as usize;
        let mut port = owners[slot];
        let mut asking = false;
        for attempt in 0.. {
            if attempt == 50 {
                report
                    .unexpected
                    .push(format!("{k}: still redirected after 50 attempts"));
                break;
            }
            let con = cons.entry(port).or_insert_with(|| connect(port));
            let result: redis::RedisResult<i64> = if asking {
                redis::pipe()
                    .cmd("ASKING")
                    .ignore()
                    .cmd("INCR")
                    .arg(&k)
                    .query::<(i64,)>(con)
                    .map(|(v,)| v)
            } else {
                redis::cmd("INCR").arg(&k).query(con)
            };
            asking = false;
            match result {
                Ok(_) => {
                    report.acked[c] += 1;
                    break;
                }
                Err(e) if e.kind() == redis::ErrorKind::Moved => {
                    report.redirects += 1;
                    port = redirect_port(&e);
                    owners[slot] = port;
                }
                Err(e) if e.kind() == redis::ErrorKind::Ask => {
                    report.redirects += 1;
                    port = redirect_port(&e);
                    asking = true;
                }
                Err(e) if e.kind() == redis::ErrorKind::TryAgain => {
                    report.try_again += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    report.unexpected.push(format!("{k} via {port}: {e}"));
                    break;
                }
            }
        }
    }
    report
}

fn redirect_port(e: &redis::RedisError) -> u16 {
    let (addr, _slot) = e.redirect_node().expect("redirect has a node");
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("redirect address {addr}"))
}

/// `redis-cli --cluster ARGS...`, asserting success; its output.
fn cluster_cli(args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("redis-cli");
    cmd.arg("--cluster").args(args);
    let out = run_bounded(&mut cmd, Duration::from_secs(600));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("[ERR]"),
        "redis-cli --cluster {args:?} failed:\n{}",
        tail(&text)
    );
    text
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn slot_count(node: &Node, of: &Node) -> usize {
    let id = of.myid();
    node.cmd(&["CLUSTER", "NODES"])
        .lines()
        .find(|l| l.starts_with(&id))
        .map(|l| {
            l.split(' ')
                .skip(8)
                .filter(|r| !r.starts_with('['))
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => {
                        b.parse::<usize>().unwrap_or(0) - a.parse::<usize>().unwrap_or(0) + 1
                    }
                    None => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn reshard_and_rebalance_between_stock_and_redcell_nodes() {
    let nodes = [
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
    ];
    let refs: Vec<&Node> = nodes.iter().collect();
    create(&refs);
    check_from_all(&refs);
    let owners = slot_owners(nodes[1].port);
    fill(&owners);

    let stop = Arc::new(AtomicBool::new(false));
    let writer_thread = {
        let (owners, stop) = (owners.clone(), stop.clone());
        std::thread::spawn(move || writer(owners, stop))
    };
    let started = Instant::now();
    let (stock_a, redcell_a, stock_b, redcell_b) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let before = slot_count(stock_a, redcell_a);
    // stock → redcell, then redcell → stock.
    for (from, to) in [(stock_a, redcell_a), (redcell_b, stock_b)] {
        cluster_cli(&[
            "reshard",
            &from.addr(),
            "--cluster-from",
            &from.myid(),
            "--cluster-to",
            &to.myid(),
            "--cluster-slots",
            "1000",
            "--cluster-yes",
        ]);
        check_from_all(&refs);
    }
    assert_eq!(
        slot_count(stock_b, redcell_a),
        before + 1000,
        "the stock nodes see the redcell node's new slots"
    );
    cluster_cli(&["rebalance", &redcell_a.addr(), "--cluster-yes"]);
    check_from_all(&refs);
    let moves = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let report = writer_thread.join().expect("writer thread");

    for n in &refs {
        let count = slot_count(stock_a, n);
        assert!(
            (4096 - 82..=4096 + 82).contains(&count),
            "rebalanced: node {} has {count} slots",
            n.port
        );
    }
    assert!(
        report.unexpected.is_empty(),
        "the writer saw errors other than MOVED/ASK/TRYAGAIN: {:?}",
        &report.unexpected[..report.unexpected.len().min(10)]
    );
    let owners = slot_owners(nodes[3].port);
    verify(&owners);
    // Every acknowledged increment is there, on the counter's owner.
    let mut present_counters = 0;
    for (c, &acked) in report.acked.iter().enumerate() {
        let k = counter(c);
        let mut con = connect(owners[key_slot(k.as_bytes()) as usize]);
        let v: Option<i64> = redis::cmd("GET").arg(&k).query(&mut con).expect("GET");
        assert_eq!(v.unwrap_or(0), acked, "counter {k}");
        present_counters += usize::from(v.is_some());
    }
    // Present exactly once: every key was found on its owner, and no node holds extras.
    let total: i64 = refs
        .iter()
        .map(|n| n.cmd(&["DBSIZE"]).parse::<i64>().expect("DBSIZE"))
        .sum();
    assert_eq!(
        total as usize,
        KEYS + present_counters,
        "keys across the cluster"
    );
    let acked: i64 = report.acked.iter().sum();
    assert!(acked > 100, "the writer made progress ({acked} increments)");
    eprintln!(
        "moves took {moves:?}; writer: {acked} increments, {} redirects, {} TRYAGAIN",
        report.redirects, report.try_again
    );
}

/// A hash tag whose slot `node` owns (per its own CLUSTER NODES).
fn tag_owned_by(node: &Node) -> String {
    let id = node.myid();
    let nodes = node.cmd(&["CLUSTER", "NODES"]);
    let line = nodes
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("own line")
        .to_string();
    (0..)
        .map(|i| format!("t{i}"))
        .find(|t| common::cluster::owner_of(&line, key_slot(t.as_bytes())))
        .expect("some tag")
}

fn raw_call(port: u16, cmds: &[&[&str]]) -> Vec<String> {
    let mut raw = common::Raw::connect(port);
    cmds.iter()
        .map(|c| common::cluster::rcall(&mut raw, c))
        .collect()
}

#[test]
fn open_slots_answer_ask_and_tryagain_like_redis() {
    // redis-cli creates clusters of three masters at least.
    let (ours, stock, third) = (Node::redcell(), Node::stock(), Node::redcell());
    create(&[&ours, &stock, &third]);
    check_from_all(&[&ours, &stock, &third]);
    let (ours_id, stock_id) = (ours.myid(), stock.myid());

    // Migrating out of redcell: present keys are served, absent ones ASK, a mix TRYAGAIN.
    let tag = tag_owned_by(&ours);
    let slot = key_slot(tag.as_bytes()).to_string();
    let (here, gone) = (format!("{{{tag}}}here"), format!("{{{tag}}}gone"));
    assert_eq!(ours.cmd(&["SET", &here, "v"]), "OK");
    assert_eq!(
        stock.cmd(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &ours_id]),
        "OK"
    );
    assert_eq!(
        ours.cmd(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &stock_id]),
        "OK"
    );
    let replies = raw_call(
        ours.port,
        &[
            &["GET", &here],
            &["GET", &gone],
            &["MGET", &here, &gone],
            &["MGET", &here, &here],
            &["SET", &gone, "x"],
        ],
    );
    let ask = format!("-ASK {slot} 127.0.0.1:{}\r\n", stock.port);
    assert_eq!(replies[0], "$1\r\nv\r\n");
    assert_eq!(replies[1], ask);
    assert_eq!(
        replies[2],
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    );
    assert_eq!(replies[3], "*2\r\n$1\r\nv\r\n$1\r\nv\r\n");
    assert_eq!(
        replies[4], ask,
        "a write to an absent key goes to the target too"
    );
    // The same answers from the stock node in the same role, for comparison.
    let stock_tag = tag_owned_by(&stock);
    let stock_slot = key_slot(stock_tag.as_bytes()).to_string();
    let (s_here, s_gone) = (
        format!("{{{stock_tag}}}here"),
        format!("{{{stock_tag}}}gone"),
    );
    stock.cmd(&["SET", &s_here, "v"]);
    ours.cmd(&["CLUSTER", "SETSLOT", &stock_slot, "IMPORTING", &stock_id]);
    stock.cmd(&["CLUSTER", "SETSLOT", &stock_slot, "MIGRATING", &ours_id]);
    let stock_replies = raw_call(
        stock.port,
        &[&["GET", &s_gone], &["MGET", &s_here, &s_gone]],
    );
    assert_eq!(
        stock_replies,
        vec![
            format!("-ASK {stock_slot} 127.0.0.1:{}\r\n", ours.port),
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n".to_string()
        ]
    );

    // Importing into redcell: MOVED without ASKING; with it, served unless a multi-key
    // command misses keys.
    let s_gone2 = format!("{{{stock_tag}}}gone2");
    let replies = raw_call(
        ours.port,
        &[
            &["GET", &s_gone],
            &["ASKING"],
            &["SET", &s_gone, "new"],
            &["ASKING"],
            &["MGET", &s_gone, &s_gone2],
            &["ASKING"],
            &["GET", &s_gone],
            &["GET", &s_gone],
        ],
    );
    assert_eq!(
        replies[0],
        format!("-MOVED {stock_slot} 127.0.0.1:{}\r\n", stock.port)
    );
    assert_eq!(replies[2], "+OK\r\n");
    assert_eq!(
        replies[4],
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    );
    assert_eq!(replies[6], "$3\r\nnew\r\n");
    assert_eq!(
        replies[7],
        format!("-MOVED {stock_slot} 127.0.0.1:{}\r\n", stock.port),
        "ASKING lasts one command"
    );

    // Cluster directives set at runtime reach the member: the announced hostname is gossiped
    // to the stock node, and redirections follow the endpoint type.
    assert_eq!(
        ours.cmd(&["CONFIG", "SET", "cluster-announce-hostname", "ours.example"]),
        "OK"
    );
    common::cluster::wait_for(
        "the hostname to reach the stock node",
        Duration::from_secs(10),
        || {
            stock
                .cmd(&["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.starts_with(&ours_id) && l.contains(",ours.example "))
        },
    );
    ours.cmd(&[
        "CONFIG",
        "SET",
        "cluster-preferred-endpoint-type",
        "hostname",
    ]);
    let third_tag = tag_owned_by(&third);
    let third_slot = key_slot(third_tag.as_bytes());
    assert_eq!(
        raw_call(ours.port, &[&["GET", &third_tag]]),
        vec![format!("-MOVED {third_slot} ?:{}\r\n", third.port)]
    );
}
