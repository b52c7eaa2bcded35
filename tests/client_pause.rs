//! CLIENT PAUSE / UNPAUSE: replies and errors against stock, and on a multi-shard server
//! writes from clients on every core wait while reads go on, until UNPAUSE releases them.

mod common;

use std::time::{Duration, Instant};

use common::{show, Raw, Server, StockRedis};

#[test]
fn pause_replies_match_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    for cmd in [
        &[&b"CLIENT"[..], b"PAUSE", b"abc"][..],
        &[b"CLIENT", b"PAUSE", b"-1"],
        &[b"CLIENT", b"PAUSE", b"10", b"READ"],
        &[b"CLIENT", b"PAUSE", b"x", b"READ"],
        &[b"CLIENT", b"PAUSE", b"10", b"WRITE", b"x"],
        &[b"CLIENT", b"PAUSE"],
        &[b"CLIENT", b"UNPAUSE", b"x"],
        &[b"CLIENT", b"PAUSE", b"0", b"all"],
        &[b"SET", b"k", b"v"],
        &[b"CLIENT", b"UNPAUSE"],
    ] {
        let (p, q) = (a.call(cmd), b.call(cmd));
        assert_eq!(show(&p), show(&q), "{:?}", show(&common::encode(cmd)));
    }
    // CLIENT HELP is stock's line for line, but for the four lines of CLIENT SETINFO (Redis
    // 7.2's, which redcell also has) after SETNAME's.
    let lines = |reply: Vec<u8>| -> Vec<String> {
        let text = String::from_utf8(reply).expect("help text");
        // The array header, then one simple string per line.
        text.split("\r\n").skip(1).map(str::to_string).collect()
    };
    let ours_help = lines(a.call(&[b"CLIENT", b"HELP"]));
    let mut want = lines(b.call(&[b"CLIENT", b"HELP"]));
    let at = want
        .iter()
        .position(|l| l.contains("Assign the name <name>"))
        .expect("SETNAME's help line");
    for (i, l) in [
        "+SETINFO <option> <value>",
        "+    Set client meta attr. Options are:",
        "+    * LIB-NAME: the client lib name.",
        "+    * LIB-VER: the client lib version.",
    ]
    .iter()
    .enumerate()
    {
        want.insert(at + 1 + i, l.to_string());
    }
    assert!(want.len() > 40, "{want:?}");
    assert_eq!(ours_help, want);
}

#[test]
fn pause_write_holds_writes_on_every_core_until_unpause() {
    let ours = Server::start(3, &[]);
    let mut admin = ours.raw();
    // Clients spread over the cores (connections are accepted round the shards).
    let mut writers: Vec<Raw> = (0..6).map(|_| ours.raw()).collect();
    let mut reader = ours.raw();
    assert_eq!(admin.call(&[b"SET", b"seen", b"0"]), b"+OK\r\n");
    assert_eq!(
        admin.call(&[b"CLIENT", b"PAUSE", b"100000", b"WRITE"]),
        b"+OK\r\n"
    );
    for (i, w) in writers.iter_mut().enumerate() {
        w.send_cmd(&[b"INCR", format!("w{i}").as_bytes()]);
    }
    // Reads run while the writes wait.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(reader.call(&[b"GET", b"seen"]), b"$1\r\n0\r\n");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    for w in &mut writers {
        w.expect_silence(Duration::from_millis(100));
    }
    // No write slipped through: every counter is still missing.
    for i in 0..6 {
        assert_eq!(
            reader.call(&[b"EXISTS", format!("w{i}").as_bytes()]),
            b":0\r\n"
        );
    }
    assert_eq!(admin.call(&[b"CLIENT", b"UNPAUSE"]), b"+OK\r\n");
    for w in &mut writers {
        assert_eq!(w.read_reply(), b":1\r\n");
    }
    // PAUSE ALL holds reads too; it ends by itself after its timeout.
    assert_eq!(admin.call(&[b"CLIENT", b"PAUSE", b"300"]), b"+OK\r\n");
    let t = Instant::now();
    assert_eq!(reader.call(&[b"GET", b"seen"]), b"$1\r\n0\r\n");
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

/// CLIENT REPLY ON|OFF|SKIP, pipelined, byte for byte against stock (RESP2 and RESP3),
/// with commands on both shards of ours.
#[test]
fn client_reply_matches_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let k1 = common::key_on_shard("k", 1, 2);
    for resp3 in [false, true] {
        let (mut a, mut b) = common::pair(&ours, &stock, resp3);
        let cmds: Vec<Vec<&[u8]>> = vec![
            vec![b"SET", b"k", b"v"],
            vec![b"CLIENT", b"REPLY", b"OFF"],
            vec![b"SET", k1.as_bytes(), b"x"],
            vec![b"GET", b"k"],
            vec![b"NOSUCHCOMMAND"],
            vec![b"CLIENT", b"REPLY", b"SKIP"],
            vec![b"CLIENT", b"REPLY", b"ON"],
            vec![b"GET", k1.as_bytes()],
            vec![b"CLIENT", b"REPLY", b"SKIP"],
            vec![b"GET", b"k"],
            vec![b"GET", k1.as_bytes()],
            vec![b"CLIENT", b"REPLY", b"SKIP"],
            vec![b"CLIENT", b"REPLY", b"SKIP"],
            vec![b"PING"],
            vec![b"ECHO", b"after"],
            vec![b"CLIENT", b"REPLY", b"MAYBE"],
            vec![b"CLIENT", b"REPLY"],
            vec![b"PING"],
        ];
        let mut pipeline = Vec::new();
        for c in &cmds {
            pipeline.extend(common::encode(c));
        }
        a.send(&pipeline);
        b.send(&pipeline);
        // Stock answers 8 of the 18 commands; ours must send the same bytes and no more.
        let want: Vec<u8> = (0..8).flat_map(|_| b.read_reply()).collect();
        b.expect_silence(Duration::from_millis(200));
        assert!(want.ends_with(b"+PONG\r\n"), "{}", show(&want));
        let got = a.read_n(want.len(), Duration::from_secs(10));
        assert_eq!(show(&got), show(&want), "resp3={resp3}");
        a.expect_silence(Duration::from_millis(200));
    }
}

/// `timeout`: an idle client is closed; blocked, subscribed and MONITOR clients and busy
/// ones are not (as Redis's `clientsCronHandleTimeout`).
#[test]
fn idle_timeout_closes_only_idle_clients() {
    let ours = Server::start(2, &["--timeout", "1"]);
    let mut idle = ours.raw();
    assert_eq!(idle.call(&[b"PING"]), b"+PONG\r\n");
    let mut sub = ours.raw();
    sub.call(&[b"SUBSCRIBE", b"ch"]);
    let mut blocked = ours.raw();
    blocked.send_cmd(&[b"BLPOP", b"list", b"0"]);
    let mut monitor = ours.raw();
    assert_eq!(monitor.call(&[b"MONITOR"]), b"+OK\r\n");
    let mut busy = ours.raw();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        assert_eq!(busy.call(&[b"ECHO", b"x"]), b"$1\r\nx\r\n");
        std::thread::sleep(Duration::from_millis(250));
    }
    idle.expect_closed();
    // The others are still there.
    assert_eq!(busy.call(&[b"RPUSH", b"list", b"v"]), b":1\r\n");
    assert_eq!(blocked.read_reply(), common::encode(&[b"list", b"v"]));
    assert_eq!(busy.call(&[b"PUBLISH", b"ch", b"m"]), b":1\r\n");
    assert_eq!(sub.read_reply(), common::encode(&[b"message", b"ch", b"m"]));
    let seen = monitor.read_reply();
    assert!(show(&seen).contains("ECHO"), "{}", show(&seen));
    // CONFIG SET timeout 0 turns it off; the value reads back as stock's does.
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    for cmd in [
        &[&b"CONFIG"[..], b"SET", b"timeout", b"-1"][..],
        &[b"CONFIG", b"SET", b"timeout", b"0"],
        &[b"CONFIG", b"GET", b"timeout"],
        &[b"CONFIG", b"SET", b"tcp-keepalive", b"60"],
        &[b"CONFIG", b"GET", b"tcp-keepalive"],
    ] {
        let (p, q) = (a.call(cmd), b.call(cmd));
        assert_eq!(show(&p), show(&q), "{:?}", show(&common::encode(cmd)));
    }
    // CLIENT HELP is stock's line for line, but for the four lines of CLIENT SETINFO (Redis
    // 7.2's, which redcell also has).
    let (ours_help, stock_help) = (
        show(&a.call(&[b"CLIENT", b"HELP"])),
        show(&b.call(&[b"CLIENT", b"HELP"])),
    );
    let lines = |s: &str| -> Vec<String> { s.split("\\r\\n").map(str::to_string).collect() };
    let mut want = lines(&stock_help);
    let at = want
        .iter()
        .position(|l| l.contains("Assign the name <name>"))
        .expect("SETNAME's help line");
    let setinfo = [
        "+SETINFO <option> <value>",
        "+    Set client meta attr. Options are:",
        "+    * LIB-NAME: the client lib name.",
        "+    * LIB-VER: the client lib version.",
    ];
    for (i, l) in setinfo.iter().enumerate() {
        want.insert(at + 1 + i, l.to_string());
    }
    want[0] = want[0].replace(
        &format!("*{}", (want.len() - 5) - 1),
        &format!("*{}", want.len() - 2),
    );
    assert_eq!(lines(&ours_help), want);
}

/// `tcp-keepalive`: accepted connections carry TCP keepalive with the configured idle time
/// (seen with `ss -o`, which shows the socket's keepalive timer).
#[test]
fn tcp_keepalive_on_accepted_connections() {
    for (secs, want) in [("7", true), ("0", false)] {
        let ours = Server::start(1, &["--tcp-keepalive", secs]);
        let mut c = ours.raw();
        assert_eq!(c.call(&[b"PING"]), b"+PONG\r\n");
        let out = std::process::Command::new("ss")
            .args([
                "-tnoH",
                "state",
                "established",
                "sport",
                "=",
                &format!(":{}", ours.port),
            ])
            .output()
            .expect("ss (iproute2) is needed for this test");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.trim().is_empty(), "no socket listed: {text}");
        assert_eq!(
            text.contains("timer:(keepalive"),
            want,
            "tcp-keepalive {secs}: {text}"
        );
    }
}

/// `maxclients`: the connection past the limit gets Redis's error and is closed, as stock.
#[test]
fn maxclients_refuses_with_redis_error() {
    let ours = Server::start(2, &["--maxclients", "3"]);
    let stock = StockRedis::start(&["--maxclients", "3"]);
    for port in [ours.port, stock.port] {
        let mut held: Vec<Raw> = (0..3).map(|_| Raw::connect(port)).collect();
        for c in &mut held {
            assert_eq!(c.call(&[b"PING"]), b"+PONG\r\n");
        }
        let mut extra = Raw::connect(port);
        extra.expect(b"-ERR max number of clients reached\r\n");
        extra.expect_closed();
        let info = held[0].call(&[b"INFO", b"stats"]);
        assert!(
            show(&info).contains("rejected_connections:1"),
            "{}",
            show(&info)
        );
        drop(held.pop());
        // A slot is free again once a client left.
        let ok = common::wait_until(Duration::from_secs(5), || {
            let mut c = Raw::connect(port);
            c.send_cmd(&[b"PING"]);
            c.read_reply() == b"+PONG\r\n"
        });
        assert!(ok, "port {port}: no connection accepted after one left");
    }
}

/// CLIENT UNBLOCK [TIMEOUT|ERROR] of a client blocked on another core, byte for byte
/// against stock (the blocked client's reply and the caller's), and its errors.
#[test]
fn client_unblock_matches_stock() {
    let ours = Server::start(3, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for port in [ours.port, stock.port] {
            let mut out = Vec::new();
            let mut admin = Raw::connect(port);
            let mut blocked = Raw::connect(port);
            if resp3 {
                blocked.call(&[b"HELLO", b"3"]);
            }
            let id = String::from_utf8_lossy(&blocked.call(&[b"CLIENT", b"ID"]))
                .trim_start_matches(':')
                .trim()
                .to_string();
            for (cmd, mode) in [
                (&[&b"BLPOP"[..], b"l1", b"l2", b"0"][..], None),
                (&[b"BZPOPMIN", b"z", b"0"], Some(&b"TIMEOUT"[..])),
                (
                    &[b"BLMOVE", b"a", b"b", b"LEFT", b"RIGHT", b"0"],
                    Some(&b"ERROR"[..]),
                ),
                (
                    &[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"],
                    Some(&b"error"[..]),
                ),
            ] {
                blocked.send_cmd(cmd);
                // Wait until the server shows it blocked.
                let ok = common::wait_until(Duration::from_secs(5), || {
                    show(&admin.call(&[b"CLIENT", b"LIST"])).contains("cmd=") && {
                        let info = admin.call(&[b"INFO", b"clients"]);
                        show(&info).contains("blocked_clients:1")
                    }
                });
                assert!(ok, "port {port}: {cmd:?} did not block");
                let mut args: Vec<&[u8]> = vec![b"CLIENT", b"UNBLOCK", id.as_bytes()];
                args.extend(mode);
                out.extend(admin.call(&args));
                out.extend(blocked.read_reply());
            }
            // Nobody blocked now; errors.
            for args in [
                &[&b"CLIENT"[..], b"UNBLOCK", id.as_bytes()][..],
                &[b"CLIENT", b"UNBLOCK", b"999999"],
                &[b"CLIENT", b"UNBLOCK", b"x"],
                &[b"CLIENT", b"UNBLOCK", b"x", b"maybe"],
                &[b"CLIENT", b"UNBLOCK", id.as_bytes(), b"ERROR", b"x"],
            ] {
                out.extend(admin.call(args));
            }
            // The next blocking command is not cut short by the earlier UNBLOCK.
            blocked.send_cmd(&[b"BLPOP", b"l9", b"0.3"]);
            out.extend(blocked.read_reply());
            seen.push(out);
        }
        assert_eq!(show(&seen[0]), show(&seen[1]), "resp3={resp3}");
    }
}
