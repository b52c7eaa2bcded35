//! MONITOR against stock redis-server 7.0: the lines (Redis's format, quoting, database,
//! address, `lua` for script calls, redaction of AUTH/HELLO, admin commands left out,
//! commands inside MULTI), commands from clients on every core of a multi-shard server,
//! RESET ending it, and a monitor that stops reading being disconnected by its output limit.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{show, Raw, Server, StockRedis};

/// Reads MONITOR lines until `n` arrived; each with its timestamp and client port masked.
fn lines(m: &mut Raw, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let r = m.read_reply();
            let l = String::from_utf8_lossy(&r).into_owned();
            assert!(l.starts_with('+') && l.ends_with("\r\n"), "{}", show(&r));
            let (ts, rest) = l[1..].split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let (secs, usecs) = ts.split_once('.').unwrap_or_else(|| panic!("{l:?}"));
            assert!(secs.parse::<u64>().is_ok() && usecs.len() == 6, "{l:?}");
            let masked = match rest.find("127.0.0.1:") {
                Some(at) => {
                    let end = rest[at + 10..]
                        .find(']')
                        .map_or(rest.len(), |e| at + 10 + e);
                    format!("{}127.0.0.1:P{}", &rest[..at], &rest[end..])
                }
                None => rest.to_string(),
            };
            masked.trim_end().to_string()
        })
        .collect()
}

/// Runs the commands on `c` (each reply read) and returns the lines a monitor saw.
fn session(port: u16, cmds: &[&[&[u8]]], shown: usize) -> Vec<String> {
    let mut m = Raw::connect(port);
    m.send_cmd(&[b"MONITOR"]);
    m.expect(b"+OK\r\n");
    let mut c = Raw::connect(port);
    for cmd in cmds {
        c.call(cmd);
    }
    let got = lines(&mut m, shown);
    m.expect_silence(Duration::from_millis(200));
    got
}

#[test]
fn monitor_lines_match_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let cmds: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"v"],
        &[b"GET", b"k"],
        &[b"SET", b"a b", b"x\"y\n\x01\xff\\"],
        &[b"SELECT", b"2"],
        &[b"INCR", b"counter"],
        &[b"MULTI"],
        &[b"SET", b"in", b"multi"],
        &[b"INCR", b"counter"],
        &[b"EXEC"],
        &[
            b"EVAL",
            b"redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])",
            b"1",
            b"sk",
            b"sv",
        ],
        &[b"AUTH", b"nosuch", b"password"],
        &[b"AUTH", b"password"],
        &[b"HELLO", b"2", b"AUTH", b"default", b"wrong"],
        &[b"CONFIG", b"GET", b"maxmemory"], // admin: not shown
        &[b"DEBUG", b"HELP"],               // admin: not shown
        // EXEC refused before it runs: the aborted EXEC is shown, its commands are not.
        &[b"MULTI"],
        &[b"SET", b"in", b"aborted"],
        &[b"EXEC", b"extra"],
        &[b"LPUSH", b"k2", b"1"],
        &[b"GET", b"k2"],
        &[b"PING"],
        &[b"SELECT", b"0"],
        &[b"DEL", b"k", b"a b"],
    ];
    let want = session(stock.port, cmds, 22);
    let got = session(ours.port, cmds, 22);
    assert_eq!(got, want, "\n ours: {got:#?}\nstock: {want:#?}");
    // Spot checks on the shape, beyond agreeing with stock.
    assert_eq!(want[0], "[0 127.0.0.1:P] \"SET\" \"k\" \"v\"");
    assert!(want.contains(&"[2 127.0.0.1:P] \"EXEC\" \"extra\"".to_string()));
    assert!(want
        .iter()
        .any(|l| l.starts_with("[2 lua] \"set\" \"sk\" \"sv\"")));
    assert!(
        want.iter()
            .any(|l| l == "[2 127.0.0.1:P] \"AUTH\" \"(redacted)\" \"(redacted)\""),
        "{want:#?}"
    );
    assert!(
        want.iter()
            .any(|l| l.contains("\"HELLO\" \"2\" \"AUTH\" \"(redacted)\" \"(redacted)\"")),
        "{want:#?}"
    );
    assert!(
        !want
            .iter()
            .any(|l| l.contains("CONFIG") || l.contains("DEBUG")),
        "{want:#?}"
    );
}

/// Commands from clients on every core reach a monitor on any core, each client's in order.
#[test]
fn monitor_sees_every_core() {
    let ours = Server::start(3, &[]);
    let mut monitors: Vec<Raw> = (0..3).map(|_| ours.raw()).collect();
    for m in &mut monitors {
        m.send_cmd(&[b"MONITOR"]);
        m.expect(b"+OK\r\n");
    }
    let mut clients: Vec<Raw> = (0..6).map(|_| ours.raw()).collect();
    for round in 0..5 {
        for (i, c) in clients.iter_mut().enumerate() {
            let key = format!("c{i}");
            let val = round.to_string();
            c.call(&[b"SET", key.as_bytes(), val.as_bytes()]);
        }
    }
    for m in &mut monitors {
        let got = lines(m, 30);
        for i in 0..6 {
            let mine: Vec<&String> = got
                .iter()
                .filter(|l| l.contains(&format!("\"c{i}\"")))
                .collect();
            let want: Vec<String> = (0..5)
                .map(|r| format!("[0 127.0.0.1:P] \"SET\" \"c{i}\" \"{r}\""))
                .collect();
            assert_eq!(mine, want.iter().collect::<Vec<_>>());
        }
    }
    // RESET ends monitoring.
    let m = &mut monitors[0];
    m.send_cmd(&[b"RESET"]);
    m.expect(b"+RESET\r\n");
    clients[0].call(&[b"PING"]);
    let m = &mut monitors[1];
    assert_eq!(
        lines(m, 2),
        ["[0 127.0.0.1:P] \"RESET\"", "[0 127.0.0.1:P] \"PING\""]
    );
    monitors[0].expect_silence(Duration::from_millis(300));
}

/// A monitor that stops reading is disconnected once its output passes the limit
/// (`client-output-buffer-limit normal`), and the server keeps serving.
#[test]
fn monitor_that_stops_reading_is_disconnected() {
    let ours = Server::start(2, &["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut m = ours.raw();
    m.send_cmd(&[b"MONITOR"]);
    m.expect(b"+OK\r\n");
    let mut c = ours.raw();
    let big = vec![b'x'; 100_000];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    // Enough to fill the socket buffers and then the megabyte of output buffer.
    while sent < 400 {
        c.call(&[b"SET", b"big", &big]);
        sent += 1;
        assert!(Instant::now() < deadline);
    }
    // The monitor's socket ends (after whatever the kernel had buffered).
    m.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        match m.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("monitor still open after {total} bytes: {e}"),
        }
    }
    assert!(
        total < 400 * 100_000,
        "{total} bytes: the monitor was never cut off"
    );
    assert_eq!(c.call(&[b"PING"]), b"+PONG\r\n");
}
