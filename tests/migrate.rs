//! MIGRATE between redcell and stock redis-server in both directions: single keys and the
//! KEYS form, COPY, REPLACE, AUTH/AUTH2, databases, TTLs, the target's errors and I/O errors
//! worded as Redis words them, and keys in flight protected from writes.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{Raw, Server, StockRedis};

fn call(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.call(&args)).into_owned()
}

/// Runs the same script against a redcell source and a stock source, each migrating to its
/// own fresh stock target, and asserts the replies match line for line.
#[test]
fn migrate_replies_match_stock() {
    let ours = Server::start(3, &[]);
    let stock_src = StockRedis::start(&[]);
    let (target_a, target_b) = (
        StockRedis::start(&["--requirepass", "pw"]),
        StockRedis::start(&["--requirepass", "pw"]),
    );
    let script = |src: &mut Raw, target: u16| -> Vec<String> {
        let t = target.to_string();
        let mut got = Vec::new();
        let mut run = |args: &[&str]| got.push(call(src, args));
        run(&["SET", "a", "1"]);
        run(&["RPUSH", "l", "x", "y", "z"]);
        run(&["HSET", "h", "f", "v"]);
        run(&["SET", "ttl", "v", "PX", "100000"]);
        run(&[
            "MIGRATE",
            "127.0.0.1",
            &t,
            "nokey",
            "0",
            "5000",
            "AUTH",
            "pw",
        ]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000", "AUTH", "bad"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000", "AUTH", "pw"]);
        run(&["EXISTS", "a"]);
        run(&["SET", "a", "2"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000", "AUTH", "pw"]);
        run(&[
            "MIGRATE",
            "127.0.0.1",
            &t,
            "a",
            "0",
            "5000",
            "AUTH",
            "pw",
            "COPY",
            "REPLACE",
        ]);
        run(&["EXISTS", "a"]);
        run(&[
            "MIGRATE",
            "127.0.0.1",
            &t,
            "",
            "1",
            "5000",
            "AUTH2",
            "default",
            "pw",
            "KEYS",
            "l",
            "h",
            "ttl",
            "missing",
        ]);
        run(&["EXISTS", "l", "h", "ttl"]);
        run(&["MIGRATE", "127.0.0.1", &t, "x", "0", "5000", "KEYS", "a"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000", "AUTH"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "zero", "5000"]);
        run(&["MIGRATE", "127.0.0.1", &t, "a", "0", "5000", "BOGUS"]);
        got
    };
    let mut ours_raw = ours.raw();
    let mut stock_raw = Raw::connect(stock_src.port);
    let got = script(&mut ours_raw, target_a.port);
    let want = script(&mut stock_raw, target_b.port);
    assert_eq!(got, want);
    assert!(
        got.iter()
            .any(|r| r.starts_with("-ERR Target instance replied with error: BUSYKEY")),
        "the script reaches BUSYKEY: {got:?}"
    );

    // What arrived on our target equals what arrived on stock's.
    for (target, label) in [(&target_a, "from redcell"), (&target_b, "from stock")] {
        let mut t = Raw::connect(target.port);
        assert_eq!(call(&mut t, &["AUTH", "pw"]), "+OK\r\n");
        assert_eq!(call(&mut t, &["GET", "a"]), "$1\r\n2\r\n", "{label}");
        assert_eq!(call(&mut t, &["SELECT", "1"]), "+OK\r\n");
        assert_eq!(
            call(&mut t, &["LRANGE", "l", "0", "-1"]),
            "*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n",
            "{label}"
        );
        assert_eq!(call(&mut t, &["HGET", "h", "f"]), "$1\r\nv\r\n", "{label}");
        let pttl: i64 = call(&mut t, &["PTTL", "ttl"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .expect("PTTL");
        assert!(pttl > 90_000 && pttl <= 100_000, "TTL kept {label}: {pttl}");
    }
}

#[test]
fn stock_migrates_into_redcell() {
    let ours = Server::start(3, &["--requirepass", "pw"]);
    let stock = StockRedis::start(&[]);
    let mut s = Raw::connect(stock.port);
    let port = ours.port.to_string();
    for i in 0..50 {
        call(&mut s, &["SADD", &format!("s{i}"), "1", "2", "three"]);
    }
    call(&mut s, &["ZADD", "z", "1.5", "a", "-inf", "b"]);
    let mut keys: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    keys.push("z".into());
    let mut args = vec![
        "MIGRATE",
        "127.0.0.1",
        &port,
        "",
        "0",
        "5000",
        "AUTH",
        "pw",
        "KEYS",
    ];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(call(&mut s, &args), "+OK\r\n");
    assert_eq!(call(&mut s, &["DBSIZE"]), ":0\r\n");
    let mut r = ours.raw();
    assert_eq!(call(&mut r, &["AUTH", "pw"]), "+OK\r\n");
    assert_eq!(call(&mut r, &["DBSIZE"]), ":51\r\n");
    assert_eq!(call(&mut r, &["SCARD", "s7"]), ":3\r\n");
    assert_eq!(
        call(&mut r, &["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        "*4\r\n$1\r\nb\r\n$4\r\n-inf\r\n$1\r\na\r\n$3\r\n1.5\r\n"
    );
}

#[test]
fn unreachable_targets_give_ioerr_and_keep_the_key() {
    let ours = Server::start(2, &[]);
    let mut r = ours.raw();
    assert_eq!(call(&mut r, &["SET", "k", "v"]), "+OK\r\n");
    // Nothing listens on a port we bound and closed.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    assert_eq!(
        call(
            &mut r,
            &[
                "MIGRATE",
                "127.0.0.1",
                &closed.to_string(),
                "k",
                "0",
                "1000"
            ]
        ),
        "-IOERR error or timeout connecting to the client\r\n"
    );

    // A target that accepts and never answers: the key is in flight until the timeout, and a
    // write to it meanwhile is told to retry instead of landing on a copy being moved.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port().to_string();
    let mut mover = ours.raw();
    mover.send_cmd(&[
        b"MIGRATE",
        b"127.0.0.1",
        silent_port.as_bytes(),
        b"k",
        b"0",
        b"1500",
    ]);
    let (_accepted, _) = silent.accept().expect("MIGRATE connects");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        call(&mut r, &["SET", "k", "other"]),
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    );
    assert_eq!(call(&mut r, &["SET", "unrelated", "x"]), "+OK\r\n");
    // An atomic write across shards that includes the key waits for the move to end.
    let other = common::key_on_shard("o", 1 - common::shard_of(b"k", 2), 2);
    let mut writer = ours.raw();
    writer.send_cmd(&[b"MSET", b"k", b"new", other.as_bytes(), b"x"]);
    writer.expect_silence(Duration::from_millis(300));
    assert_eq!(
        String::from_utf8_lossy(&mover.read_reply()),
        "-IOERR error or timeout reading to target instance\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&writer.read_reply()), "+OK\r\n");
    assert_eq!(call(&mut r, &["GET", "k"]), "$3\r\nnew\r\n");
    assert_eq!(
        call(&mut r, &["SET", "k", "w"]),
        "+OK\r\n",
        "and is writable again"
    );
}

/// Reads from `s` until `needle` has been seen `times` times (or the peer goes quiet).
fn read_until(s: &mut std::net::TcpStream, needle: &[u8], times: usize) -> Vec<u8> {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(needle.len()).filter(|w| *w == needle).count() < times {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn a_connection_that_lost_replies_is_not_reused() {
    use std::io::Write;
    let ours = Server::start(1, &[]);
    let mut r = ours.raw();
    call(&mut r, &["SET", "a", "1"]);
    call(&mut r, &["SET", "b", "2"]);
    // A scripted target: on its first connection it answers SELECT and the first RESTORE,
    // then goes silent; a second connection is served normally.
    let target = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = target.local_addr().expect("addr").port().to_string();
    let script = std::thread::spawn(move || {
        let (mut first, _) = target.accept().expect("first connection");
        read_until(&mut first, b"RESTORE", 2);
        first.write_all(b"+OK\r\n+OK\r\n").expect("write");
        target.set_nonblocking(false).expect("blocking");
        let (mut second, _) = target.accept().expect("a second connection");
        let got = read_until(&mut second, b"RESTORE", 1);
        second.write_all(b"+OK\r\n+OK\r\n").expect("write");
        (first, String::from_utf8_lossy(&got).into_owned())
    });
    assert_eq!(
        call(
            &mut r,
            &[
                "MIGRATE",
                "127.0.0.1",
                &port,
                "",
                "0",
                "500",
                "KEYS",
                "a",
                "b"
            ]
        ),
        "-IOERR error or timeout reading to target instance\r\n"
    );
    // The target stored `a` (it answered), so it left; `b` stays.
    assert_eq!(call(&mut r, &["EXISTS", "a"]), ":0\r\n");
    assert_eq!(call(&mut r, &["EXISTS", "b"]), ":1\r\n");
    // The next MIGRATE opens a new connection (SELECT again) instead of reading the first
    // one's late replies as its own.
    assert_eq!(
        call(&mut r, &["MIGRATE", "127.0.0.1", &port, "b", "0", "2000"]),
        "+OK\r\n"
    );
    let (_first, second_saw) = script.join().expect("script");
    assert!(
        second_saw.contains("SELECT"),
        "fresh connection: {second_saw}"
    );
    assert_eq!(call(&mut r, &["EXISTS", "b"]), ":0\r\n");
}

/// Sends `MIGRATE ... key` from a new connection to a scripted target that reads the RESTORE
/// and acknowledges it only when the returned sender says so. Returns the MIGRATE connection,
/// that sender, and the script, which yields its connection and what it received.
fn migrate_to_target_acking_on_cue(
    ours: &Server,
    key: &str,
) -> (
    Raw,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<(std::net::TcpStream, Vec<u8>)>,
) {
    use std::io::Write;
    let target = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = target.local_addr().expect("addr").port().to_string();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
    let script = std::thread::spawn(move || {
        let (mut conn, _) = target.accept().expect("connection");
        let got = read_until(&mut conn, b"RESTORE", 1);
        ack_rx.recv().expect("go");
        conn.write_all(b"+OK\r\n+OK\r\n").expect("write");
        (conn, got)
    });
    let mut mover = ours.raw();
    mover.send_cmd(&[
        b"MIGRATE",
        b"127.0.0.1",
        port.as_bytes(),
        key.as_bytes(),
        b"0",
        b"5000",
    ]);
    (mover, ack_tx, script)
}

#[test]
fn a_blocked_move_into_a_key_in_flight_waits_for_the_move() {
    let ours = Server::start(1, &[]);
    let mut r = ours.raw();
    assert_eq!(call(&mut r, &["RPUSH", "dst", "old"]), ":1\r\n");
    let mut blocked = ours.raw();
    blocked.send_cmd(&[b"BLMOVE", b"src", b"dst", b"LEFT", b"RIGHT", b"0"]);
    blocked.expect_silence(Duration::from_millis(100));
    // A target that stores `dst` only when told to.
    let (mut mover, ack, script) = migrate_to_target_acking_on_cue(&ours, "dst");
    std::thread::sleep(Duration::from_millis(200));
    // The push readies the blocked client, but its destination's copy is on the wire.
    assert_eq!(call(&mut r, &["LPUSH", "src", "x"]), ":1\r\n");
    blocked.expect_silence(Duration::from_millis(200));
    ack.send(()).expect("ack");
    assert_eq!(String::from_utf8_lossy(&mover.read_reply()), "+OK\r\n");
    // Served once the move ended: the element is in a new local `dst`, not lost with the
    // old one that left.
    assert_eq!(
        String::from_utf8_lossy(&blocked.read_reply()),
        "$1\r\nx\r\n"
    );
    assert_eq!(
        call(&mut r, &["LRANGE", "dst", "0", "-1"]),
        "*1\r\n$1\r\nx\r\n"
    );
    let (_conn, sent) = script.join().expect("script");
    assert!(
        String::from_utf8_lossy(&sent).contains("RESTORE"),
        "the old list went to the target"
    );
}

/// A DEL whose keys span shards cannot answer TRYAGAIN for one key after deleting others, so
/// it waits for a key in flight: deleting it early would let it live on at the target.
#[test]
fn a_delete_across_shards_waits_for_a_key_in_flight() {
    let ours = Server::start(2, &[]);
    let mut r = ours.raw();
    let other = common::key_on_shard("o", 1 - common::shard_of(b"k", 2), 2);
    assert_eq!(call(&mut r, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(call(&mut r, &["SET", &other, "x"]), "+OK\r\n");
    // A target that stores `k` only when told to.
    let (mut mover, ack, script) = migrate_to_target_acking_on_cue(&ours, "k");
    std::thread::sleep(Duration::from_millis(200));
    let mut deleter = ours.raw();
    deleter.send_cmd(&[b"DEL", b"k", other.as_bytes()]);
    deleter.expect_silence(Duration::from_millis(200));
    ack.send(()).expect("ack");
    assert_eq!(String::from_utf8_lossy(&mover.read_reply()), "+OK\r\n");
    // `k` had left by the time the DEL ran, so only the other key counts.
    assert_eq!(String::from_utf8_lossy(&deleter.read_reply()), ":1\r\n");
    assert_eq!(call(&mut r, &["EXISTS", "k", &other]), ":0\r\n");
    let (_conn, sent) = script.join().expect("script");
    assert!(String::from_utf8_lossy(&sent).contains("RESTORE"));
}

/// A cached connection to a target is closed after 10 s idle without another MIGRATE, as
/// Redis's cron closes its cached migration sockets.
#[test]
fn idle_target_connections_are_closed_after_ten_seconds() {
    let ours = Server::start(1, &[]);
    let stock = StockRedis::start(&[]);
    let mut r = ours.raw();
    let mut target = Raw::connect(stock.port);
    let clients = |t: &mut Raw| call(t, &["CLIENT", "LIST"]).matches("id=").count();
    assert_eq!(clients(&mut target), 1, "only our probe at first");
    assert_eq!(call(&mut r, &["SET", "k", "v"]), "+OK\r\n");
    let port = stock.port.to_string();
    let reply = call(&mut r, &["MIGRATE", "127.0.0.1", &port, "k", "0", "5000"]);
    assert_eq!(reply, "+OK\r\n");
    assert_eq!(clients(&mut target), 2, "the MIGRATE connection is kept");
    let start = std::time::Instant::now();
    while clients(&mut target) == 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the idle connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed_after = start.elapsed();
    assert!(
        closed_after >= Duration::from_secs(8),
        "closed after {closed_after:?}, before it was idle for 10 s"
    );
}
