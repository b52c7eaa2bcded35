//! Protocol errors and limits, byte-exact: the error, then the close, while other clients are served.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Raw, Server};

/// A client that keeps PINGing on its own connection while a test runs; `stop` checks that
/// every PING was answered.
struct Bystander {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Bystander {
    fn start(server: &Server) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let mut raw = server.raw();
        let (s, c) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            // At least a few round trips, however quickly the test finishes.
            while !s.load(Ordering::Relaxed) || c.load(Ordering::Relaxed) < 3 {
                raw.send(b"*2\r\n$4\r\nECHO\r\n$5\r\nalive\r\n");
                raw.expect(b"$5\r\nalive\r\n");
                c.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Bystander {
            stop,
            served,
            thread,
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the bystander client was not served");
        assert!(self.served.load(Ordering::Relaxed) > 0);
    }
}

/// Sends `input` on a new connection; expects exactly `reply` and then the close.
fn expect_error_then_close(server: &Server, input: &[u8], reply: &[u8]) {
    let mut raw = server.raw();
    raw.send(input);
    raw.expect(reply);
    raw.expect_closed();
    // The server is fine afterwards.
    let mut other = server.raw();
    other.send(b"PING\r\n");
    other.expect(b"+PONG\r\n");
}

#[test]
fn protocol_errors_are_exact_and_close() {
    let server = Server::start(2, &[]);
    let bystander = Bystander::start(&server);
    let cases: &[(&[u8], &str)] = &[
        (b"*z\r\n", "invalid multibulk length"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
        (b"PING \"a\r\n", "unbalanced quotes in request"),
        (b"PING \"a\"b\r\n", "unbalanced quotes in request"),
        (b"*1\r\n$600000000\r\n", "invalid bulk length"),
    ];
    for (input, why) in cases {
        let reply = format!("-ERR Protocol error: {why}\r\n");
        expect_error_then_close(&server, input, reply.as_bytes());
    }
    bystander.stop();
}

/// Sends `head` then filler bytes in 16 KiB writes until the line is one byte over 64 KiB:
/// exactly what makes the server give up, so it has read everything we sent when it closes
/// (unread data would turn the close into a reset).
fn send_overlong_line(raw: &mut Raw, head: &[u8], fill: u8, line_start: usize) {
    const INLINE_MAX: usize = 64 * 1024;
    raw.send(head);
    let mut left = INLINE_MAX + 1 - (head.len() - line_start);
    while left > 0 {
        let n = left.min(16 * 1024);
        raw.send(&vec![fill; n]);
        left -= n;
    }
}

#[test]
fn too_big_inline_request() {
    let server = Server::start(2, &[]);
    let bystander = Bystander::start(&server);
    // More than 64 KiB without a newline, in several writes.
    let mut raw = server.raw();
    send_overlong_line(&mut raw, b"a", b'a', 0);
    raw.expect(b"-ERR Protocol error: too big inline request\r\n");
    raw.expect_closed();
    // Same for a multibulk count line that never ends.
    let mut raw = server.raw();
    send_overlong_line(&mut raw, b"*", b'1', 0);
    raw.expect(b"-ERR Protocol error: too big mbulk count string\r\n");
    raw.expect_closed();
    // And a bulk length line that never ends (counted from its `$`).
    let mut raw = server.raw();
    send_overlong_line(&mut raw, b"*1\r\n$", b'1', 4);
    raw.expect(b"-ERR Protocol error: too big bulk count string\r\n");
    raw.expect_closed();
    bystander.stop();
}

#[test]
fn replies_before_the_bad_request_come_first() {
    let n = 3;
    let server = Server::start(n, &[]);
    // Keys on every shard, so some of the good requests are forwarded and some run locally.
    let keys: Vec<String> = (0..n).map(|s| common::key_on_shard("p:", s, n)).collect();
    let mut setup = server.raw();
    for k in &keys {
        setup.send_cmd(&[b"SET", k.as_bytes(), k.as_bytes()]);
        setup.expect(b"+OK\r\n");
    }
    for bad in [&b"*z\r\n"[..], b"*1\r\n+PING\r\n", b"PING \"a\r\n"] {
        let mut input = b"PING\r\n".to_vec();
        let mut reply = b"+PONG\r\n".to_vec();
        for k in &keys {
            input.extend(common::encode(&[b"GET", k.as_bytes()]));
            reply.extend(common::bulk(k.as_bytes()));
        }
        input.extend(bad);
        // Nothing after the bad request may run.
        input.extend(common::encode(&[b"SET", keys[0].as_bytes(), b"after"]));
        let mut raw = server.raw();
        raw.send(&input);
        raw.expect(&reply);
        let err = raw.read_reply();
        assert!(
            err.starts_with(b"-ERR Protocol error: "),
            "{}",
            common::show(&err)
        );
        raw.expect_closed();
        let mut check = server.raw();
        assert_eq!(
            check.call(&[b"GET", keys[0].as_bytes()]),
            common::bulk(keys[0].as_bytes()),
            "a request after the protocol error was executed"
        );
    }
}

#[test]
fn http_post_closes_without_reply() {
    let server = Server::start(2, &[]);
    for input in [
        &b"POST / HTTP/1.1\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    ] {
        // As Redis: no reply at all (even the earlier line's arity error is dropped), then close.
        let mut raw = server.raw();
        raw.send(input);
        raw.expect_closed();
    }
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
}

#[test]
fn empty_requests_get_no_reply() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    raw.send(b"*0\r\n");
    raw.send(b"\r\n");
    raw.send(b"\n");
    raw.send(b"   \r\n");
    raw.send(b"*-1\r\n");
    raw.expect_silence(Duration::from_millis(100));
    raw.send(b"*0\r\n\r\n*1\r\n$4\r\nPING\r\n\r\n*0\r\n");
    raw.expect(b"+PONG\r\n");
    raw.expect_silence(Duration::from_millis(50));
}

#[test]
fn requests_split_byte_by_byte() {
    let server = Server::start(2, &[]);
    let mut raw = server.raw();
    let req = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nGET key\r\n";
    for b in req.iter() {
        raw.send(&[*b]);
    }
    raw.expect(b"+OK\r\n$5\r\nvalue\r\n");
}

#[test]
fn proto_max_bulk_len_rejects_larger_bulk() {
    let server = Server::start(2, &["--proto-max-bulk-len", "1mb"]);
    let bystander = Bystander::start(&server);
    // Just under the limit is fine.
    let mut con = server.conn();
    let ok_value = vec![b'x'; 1_000_000];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&ok_value)
        .query(&mut con)
        .unwrap();
    let len: i64 = redis::cmd("STRLEN").arg("big").query(&mut con).unwrap();
    assert_eq!(len, 1_000_000);
    // 2 MB is refused as soon as its length line arrives.
    let mut raw = server.raw();
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n");
    raw.expect(b"-ERR Protocol error: invalid bulk length\r\n");
    raw.expect_closed();
    bystander.stop();
}

#[test]
fn query_buffer_limit_drops_client() {
    // The bulk (2 MB) is under proto-max-bulk-len (512 MB) but over the query buffer limit.
    let server = Server::start(2, &["--client-query-buffer-limit", "1mb"]);
    let bystander = Bystander::start(&server);
    let mut raw: Raw = server.raw();
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    // Send 1.5 MB of the 2 MB; the server may close while we write.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..24 {
        use std::io::Write;
        if raw.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    raw.expect_closed();
    bystander.stop();
    let mut con = server.conn();
    let exists: i64 = redis::cmd("EXISTS").arg("k").query(&mut con).unwrap();
    assert_eq!(exists, 0);
}
