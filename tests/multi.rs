//! Transactions through the real binary: MULTI/EXEC/DISCARD/WATCH/UNWATCH scripts compared
//! byte for byte with a stock redis-server 7 (RESP2 and RESP3), a transaction over three
//! shards never seen half-applied by a concurrent reader, WATCH across cores, and clients
//! that go away inside a transaction.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{key_on_shard, parse, show, Node, Raw, Server, StockRedis};

/// One step: `CMD args` sent by client 0, which reads the reply; `N> CMD` sent by client N
/// without reading; `N<` reads client N's reply; `N: CMD` sent by client N, reply read;
/// `~MS` sleeps. The replies read, in order, are the script's outcome.
fn run_script(port: u16, resp3: bool, steps: &[&str]) -> Vec<String> {
    let mut clients: Vec<Raw> = Vec::new();
    let mut replies = Vec::new();
    let client = |clients: &mut Vec<Raw>, n: usize| {
        while clients.len() <= n {
            let mut c = Raw::connect(port);
            if resp3 {
                c.call(&[b"HELLO", b"3"]);
            }
            clients.push(c);
        }
    };
    for step in steps {
        if let Some(ms) = step.strip_prefix('~') {
            thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            continue;
        }
        let (who, rest, read) = if let Some((n, rest)) = step.split_once("> ") {
            (n.parse::<usize>().unwrap_or(0), rest, false)
        } else if let Some((n, rest)) = step.split_once(": ") {
            (n.parse::<usize>().unwrap_or(0), rest, true)
        } else if let Some(n) = step.strip_suffix('<') {
            (n.parse::<usize>().unwrap_or(0), "", true)
        } else {
            (0, *step, true)
        };
        client(&mut clients, who);
        if !rest.is_empty() {
            let words: Vec<&[u8]> = rest.split(' ').map(str::as_bytes).collect();
            clients[who].send_cmd(&words);
        }
        if read {
            replies.push(format!("{who}: {}", show(&clients[who].read_reply())));
        }
    }
    replies
}

/// Scripts whose every reply must match stock's. Each uses keys of its own.
const SCRIPTS: &[(&str, &[&str])] = &[
    (
        "queue and exec",
        &[
            "MULTI",
            "SET q:a 1",
            "INCR q:a",
            "GET q:a",
            "MGET q:a q:b q:c",
            "EXEC",
            "GET q:a",
        ],
    ),
    ("empty exec", &["MULTI", "EXEC"]),
    ("exec without multi", &["EXEC", "DISCARD"]),
    (
        // Refused before it runs, EXEC discards the transaction and its WATCHes at once.
        "exec refused at the gate",
        &[
            "EXEC extra",
            "MULTI",
            "SET er:a 1",
            "EXEC extra",
            "EXEC",
            "GET er:a",
            "WATCH er:w",
            "1: SET er:w x",
            "MULTI",
            "EXEC extra",
            "MULTI",
            "SET er:b 1",
            "EXEC",
            "SUBSCRIBE er:ch",
            "EXEC",
            "UNSUBSCRIBE er:ch",
        ],
    ),
    (
        "nested multi",
        &["MULTI", "MULTI", "SET n:a 1", "EXEC", "GET n:a"],
    ),
    (
        "watch inside multi",
        &["MULTI", "WATCH w:a", "SET w:a 1", "EXEC"],
    ),
    (
        "unknown command aborts",
        &[
            "MULTI",
            "SET u:a 1",
            "NOSUCH x",
            "SET u:b 1",
            "EXEC",
            "MGET u:a u:b",
        ],
    ),
    (
        "arity error aborts",
        &["MULTI", "SET u:c", "EXEC", "EXISTS u:c"],
    ),
    (
        "runtime errors in place",
        &[
            "SET r:s str",
            "MULTI",
            "SET r:a 1",
            "LPUSH r:s x",
            "INCR r:s",
            "SET r:b 2",
            "EXEC",
            "MGET r:a r:b r:s",
        ],
    ),
    (
        "discard",
        &["MULTI", "SET d:a 1", "DISCARD", "GET d:a", "DISCARD"],
    ),
    (
        "blocking inside multi",
        &[
            "MULTI",
            "BLPOP b:none 0",
            "BRPOPLPUSH b:x b:y 0",
            "BZPOPMIN b:z 0",
            "XREAD BLOCK 0 STREAMS b:s $",
            "EXEC",
        ],
    ),
    (
        "not allowed inside multi",
        &["MULTI", "SET na:a 1", "SHUTDOWN", "EXEC", "EXISTS na:a"],
    ),
    (
        "select inside multi",
        &[
            "MULTI",
            "SET s:a 0",
            "SELECT 3",
            "SET s:a 3",
            "GET s:a",
            "EXEC",
            "GET s:a",
            "SELECT 0",
            "GET s:a",
        ],
    ),
    (
        "watch untouched",
        &[
            "SET wu:a 1",
            "WATCH wu:a",
            "1: GET wu:a",
            "MULTI",
            "INCR wu:a",
            "EXEC",
        ],
    ),
    (
        "watch touched by another client",
        &[
            "WATCH wt:a wt:b",
            "1: SET wt:b 1",
            "MULTI",
            "SET wt:a 1",
            "EXEC",
            "EXISTS wt:a",
        ],
    ),
    (
        "watch touched by the same client",
        &[
            "WATCH ws:a",
            "SET ws:a 1",
            "MULTI",
            "INCR ws:a",
            "EXEC",
            "GET ws:a",
        ],
    ),
    (
        "watch then no-op writes",
        &[
            "SET wn:a 1",
            "SADD wn:s x",
            "WATCH wn:a wn:s wn:missing",
            "1: SET wn:a 1 NX",
            "1: SADD wn:s x",
            "1: DEL wn:missing",
            "1: EXPIRE wn:missing 10",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "unwatch",
        &[
            "WATCH uw:a",
            "1: SET uw:a 1",
            "UNWATCH",
            "MULTI",
            "GET uw:a",
            "EXEC",
        ],
    ),
    (
        "discard unwatches",
        &[
            "WATCH dw:a",
            "1: SET dw:a 1",
            "MULTI",
            "DISCARD",
            "MULTI",
            "GET dw:a",
            "EXEC",
        ],
    ),
    (
        "exec unwatches",
        &[
            "WATCH ew:a",
            "MULTI",
            "EXEC",
            "1: SET ew:a 1",
            "MULTI",
            "GET ew:a",
            "EXEC",
        ],
    ),
    (
        "watch expiry",
        &[
            "SET we:a 1 PX 50",
            "WATCH we:a",
            "~120",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "watch already expired key",
        &[
            "DEBUG SET-ACTIVE-EXPIRE 0",
            "SET wx:a 1 PX 10",
            "~50",
            "WATCH wx:a",
            "MULTI",
            "PING",
            "EXEC",
            "DEBUG SET-ACTIVE-EXPIRE 1",
        ],
    ),
    (
        "watch flushall",
        &[
            "SET wf:a 1",
            "WATCH wf:a",
            "1: FLUSHALL",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "watch flushdb of another db",
        &[
            "SET wg:a 1",
            "WATCH wg:a",
            "1: SELECT 1",
            "1: FLUSHDB",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "watch missing key, flushall",
        &["WATCH wm:a", "1: FLUSHALL", "MULTI", "PING", "EXEC"],
    ),
    (
        "watch swapdb",
        &[
            "SET wp:a 1",
            "WATCH wp:a",
            "1: SWAPDB 0 1",
            "MULTI",
            "PING",
            "EXEC",
            "1: SWAPDB 0 1",
        ],
    ),
    (
        "watch swapdb, key in neither",
        &[
            "WATCH wq:a",
            "1: SWAPDB 0 1",
            "MULTI",
            "PING",
            "EXEC",
            "1: SWAPDB 0 1",
        ],
    ),
    (
        "watch other database",
        &[
            "SELECT 2",
            "WATCH wd:a",
            "1: SET wd:a 1",
            "MULTI",
            "PING",
            "EXEC",
            "SELECT 0",
        ],
    ),
    (
        "watch move",
        &[
            "SET wv:a 1",
            "WATCH wv:a",
            "1: MOVE wv:a 5",
            "MULTI",
            "PING",
            "EXEC",
            "SELECT 5",
            "DEL wv:a",
            "SELECT 0",
        ],
    ),
    (
        "watch rename",
        &[
            "SET wr:a 1",
            "WATCH wr:b",
            "1: RENAME wr:a wr:b",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "watch after dirty is ok",
        &[
            "WATCH wy:a",
            "1: SET wy:a 1",
            "WATCH wy:b",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "multi reset",
        &["MULTI", "SET mr:a 1", "RESET", "EXEC", "GET mr:a"],
    ),
    (
        "moves and copies",
        &[
            "SET mc:a 1",
            "MOVE mc:a 1",
            "MOVE mc:a 1",
            "SELECT 1",
            "COPY mc:a mc:b DB 0",
            "COPY mc:a mc:a",
            "COPY mc:a mc:a DB 1",
            "MOVE mc:a 1",
            "MOVE mc:a 16",
            "SELECT 0",
            "GET mc:b",
            "SWAPDB 0 16",
            "SWAPDB x 1",
            "SWAPDB 1 y",
            "SELECT 16",
        ],
    ),
];

#[test]
fn scripts_match_stock_redis() {
    let stock = StockRedis::start(&["--enable-debug-command", "yes"]);
    let ours = Server::start(3, &["--enable-debug-command", "yes"]);
    let mut failures = Vec::new();
    for resp3 in [false, true] {
        for (name, steps) in SCRIPTS {
            let want = run_script(stock.port, resp3, steps);
            let got = run_script(ours.port, resp3, steps);
            if want != got {
                failures.push(format!(
                    "{name} (RESP{}):\n  stock: {want:#?}\n  ours:  {got:#?}",
                    if resp3 { 3 } else { 2 }
                ));
            }
        }
        for port in [stock.port, ours.port] {
            let mut c = Raw::connect(port);
            c.call(&[b"FLUSHALL"]);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A transaction over keys on three shards is never seen half-applied: a reader looping
/// MGET on the same keys always sees them equal.
#[test]
fn transaction_across_three_shards_is_atomic() {
    let ours = Server::start(3, &[]);
    let keys: Vec<String> = (0..3).map(|s| key_on_shard("atomic", s, 3)).collect();
    let port = ours.port;
    let writer = {
        let keys = keys.clone();
        thread::spawn(move || {
            let mut c = Raw::connect(port);
            for _ in 0..2000 {
                c.call(&[b"MULTI"]);
                for k in &keys {
                    c.call(&[b"INCR", k.as_bytes()]);
                }
                let reply = c.call(&[b"EXEC"]);
                assert!(reply.starts_with(b"*3\r\n"), "{}", show(&reply));
            }
        })
    };
    let mut reader = Raw::connect(port);
    let mut reads = 0;
    let mut last = 0i64;
    let args: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(keys.iter().map(|k| k.as_bytes()))
        .collect();
    while !writer.is_finished() || reads < 3000 {
        let reply = reader.call(&args);
        let Node::Agg(_, Some(items)) = parse(&reply, &mut 0) else {
            panic!("MGET: {}", show(&reply));
        };
        let values: Vec<Option<i64>> = items
            .iter()
            .map(|n| match n {
                Node::Bulk(_, Some(v)) => std::str::from_utf8(v).ok()?.parse().ok(),
                _ => None,
            })
            .collect();
        assert!(
            values.iter().all(|v| *v == values[0]),
            "a transaction was seen half-applied: {}",
            show(&reply)
        );
        let v = values[0].unwrap_or(0);
        assert!(v >= last, "values went back: {}", show(&reply));
        last = v;
        reads += 1;
    }
    writer.join().expect("writer");
    assert!(reads >= 3000);
    // The loop may end between its last MGET and the writer's last EXEC: read once more.
    let end = reader.call(&args);
    assert_eq!(
        show(&end),
        show(b"*3\r\n$4\r\n2000\r\n$4\r\n2000\r\n$4\r\n2000\r\n"),
        "the final state (the loop's last read saw {last})"
    );
}

/// WATCH on keys owned by every core, invalidated by a write from a third connection; the
/// same writes after UNWATCH, or to other keys, leave the transaction alone.
#[test]
fn watch_across_cores() {
    let ours = Server::start(3, &[]);
    for s in 0..3 {
        let key = key_on_shard("watched", s, 3);
        let other = key_on_shard("other", s, 3);
        let mut watcher = Raw::connect(ours.port);
        let mut writer = Raw::connect(ours.port);
        watcher.call(&[b"WATCH", key.as_bytes()]);
        writer.call(&[b"SET", other.as_bytes(), b"x"]);
        watcher.call(&[b"MULTI"]);
        watcher.call(&[b"SET", b"result", b"1"]);
        assert_eq!(show(&watcher.call(&[b"EXEC"])), show(b"*1\r\n+OK\r\n"));
        watcher.call(&[b"WATCH", key.as_bytes()]);
        writer.call(&[b"SET", key.as_bytes(), b"x"]);
        watcher.call(&[b"MULTI"]);
        watcher.call(&[b"SET", b"result", b"2"]);
        assert_eq!(
            show(&watcher.call(&[b"EXEC"])),
            show(b"*-1\r\n"),
            "a write to {key} (shard {s}) from another connection fails the EXEC"
        );
    }
}

/// A client that goes away inside MULTI, or with keys watched, leaves nothing behind: its
/// queued commands never run and every shard keeps serving.
#[test]
fn disconnect_inside_multi_leaves_nothing_applied_or_held() {
    let ours = Server::start(3, &[]);
    let keys: Vec<String> = (0..3).map(|s| key_on_shard("gone", s, 3)).collect();
    for round in 0..20 {
        let mut c = Raw::connect(ours.port);
        c.call(&[b"WATCH", keys[round % 3].as_bytes()]);
        c.call(&[b"MULTI"]);
        for k in &keys {
            c.call(&[b"SET", k.as_bytes(), b"x"]);
        }
        drop(c);
    }
    let mut check = Raw::connect(ours.port);
    let start = Instant::now();
    for k in &keys {
        assert_eq!(
            show(&check.call(&[b"EXISTS", k.as_bytes()])),
            show(b":0\r\n")
        );
        assert_eq!(
            show(&check.call(&[b"SET", k.as_bytes(), b"y"])),
            show(b"+OK\r\n")
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "shards answer at once"
    );
    // A pipelined transaction cut off before EXEC.
    let mut c = Raw::connect(ours.port);
    let mut bytes = Vec::new();
    bytes.extend(common::encode(&[b"MULTI"]));
    for k in &keys {
        bytes.extend(common::encode(&[b"DEL", k.as_bytes()]));
    }
    c.send(&bytes);
    drop(c);
    thread::sleep(Duration::from_millis(100));
    let args: Vec<&[u8]> = std::iter::once(&b"EXISTS"[..])
        .chain(keys.iter().map(|k| k.as_bytes()))
        .collect();
    assert_eq!(show(&check.call(&args)), show(b":3\r\n"));
}

/// EXEC replies in RESP3 and a large transaction spanning every shard, with MSET and MGET.
#[test]
fn large_transaction_over_every_shard() {
    let ours = Server::start(3, &[]);
    let mut c = Raw::connect(ours.port);
    c.call(&[b"HELLO", b"3"]);
    c.call(&[b"MULTI"]);
    let keys: Vec<String> = (0..300).map(|i| format!("big:{i}")).collect();
    for k in &keys {
        assert_eq!(
            show(&c.call(&[b"SET", k.as_bytes(), k.as_bytes()])),
            show(b"+QUEUED\r\n")
        );
    }
    let args: Vec<&[u8]> = std::iter::once(&b"MGET"[..])
        .chain(keys.iter().map(|k| k.as_bytes()))
        .collect();
    c.call(&args);
    c.call(&[b"DBSIZE"]);
    let reply = c.call(&[b"EXEC"]);
    let text = show(&reply);
    assert!(text.starts_with("\"*302\\r\\n+OK"), "{text}");
    assert!(text.ends_with(":300\\r\\n\""), "{text}");
    assert!(text.contains("big:299"));
}

/// A client that sends EXEC and hangs up at once: the transaction is applied whole (never in
/// part), and the shards it held serve others right after.
#[test]
fn hang_up_right_after_exec_applies_all_or_nothing() {
    let ours = Server::start(3, &[]);
    let keys: Vec<String> = (0..600).map(|i| format!("hang:{i}")).collect();
    let mut bytes = common::encode(&[b"MULTI"]);
    for k in &keys {
        bytes.extend(common::encode(&[b"SET", k.as_bytes(), b"v"]));
    }
    bytes.extend(common::encode(&[b"EXEC"]));
    let mut c = Raw::connect(ours.port);
    c.send(&bytes);
    drop(c);
    let mut check = Raw::connect(ours.port);
    let args: Vec<&[u8]> = std::iter::once(&b"EXISTS"[..])
        .chain(keys.iter().map(|k| k.as_bytes()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = show(&check.call(&args));
        if reply == show(b":600\r\n") {
            break;
        }
        // Before the EXEC runs nothing is there; never a part.
        assert_eq!(reply, show(b":0\r\n"), "a transaction applied in part");
        assert!(Instant::now() < deadline, "the EXEC never ran");
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        show(&check.call(&[b"SET", b"after", b"1"])),
        show(b"+OK\r\n")
    );
}
