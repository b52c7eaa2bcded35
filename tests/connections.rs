//! Many clients at once: 1,000 open connections, each with its own key, all served.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{encode, Server};

const CLIENTS: usize = 1000;

/// Raises this process's open-file soft limit (the server inherits it) to fit the clients,
/// the server's side of them and some slack. Fails loudly if the hard limit is too low.
fn raise_nofile(need: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) },
        0,
        "getrlimit"
    );
    if lim.rlim_cur >= need {
        return;
    }
    assert!(
        lim.rlim_max >= need,
        "RLIMIT_NOFILE hard limit is {} but this test needs {need} open files \
         (1,000 client sockets in the test and 1,000 in the server); raise it (ulimit -Hn) to run it",
        lim.rlim_max
    );
    lim.rlim_cur = need;
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) },
        0,
        "setrlimit"
    );
}

#[test]
fn thousand_concurrent_connections() {
    raise_nofile(2 * CLIENTS as u64 + 256);
    let server = Server::start(2, &[]);
    // Open them all first, so they are connected at the same time.
    let mut socks: Vec<std::net::TcpStream> = (0..CLIENTS)
        .map(|_| {
            let s = server.raw().stream;
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s
        })
        .collect();
    // Every client sends SET and GET of its own key in one write; then all replies are read.
    for (i, s) in socks.iter_mut().enumerate() {
        let key = format!("client:{i}");
        let val = format!("value-{i}");
        let mut req = encode(&[b"SET", key.as_bytes(), val.as_bytes()]);
        req.extend(encode(&[b"GET", key.as_bytes()]));
        s.write_all(&req).expect("write");
    }
    for (i, s) in socks.iter_mut().enumerate() {
        let val = format!("value-{i}");
        let mut expected = b"+OK\r\n".to_vec();
        expected.extend(common::bulk(val.as_bytes()));
        let mut got = vec![0u8; expected.len()];
        s.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(common::show(&got), common::show(&expected), "client {i}");
    }
    // Still all connected: each reads its key once more.
    for (i, s) in socks.iter_mut().enumerate() {
        s.write_all(&encode(&[b"EXISTS", format!("client:{i}").as_bytes()]))
            .unwrap();
    }
    for (i, s) in socks.iter_mut().enumerate() {
        let mut got = [0u8; 4];
        s.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(&got, b":1\r\n", "client {i}");
    }
    let mut con = server.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n as usize, CLIENTS);
}

/// `client-output-buffer-limit normal` with a hard limit: a reply that reaches it closes the
/// client without the reply (stock logs and does the same); smaller replies pass and other
/// clients are not touched. Compared with stock redis-server on the same steps.
#[test]
fn normal_output_buffer_limit_closes_the_client_like_stock() {
    let ours = Server::start(2, &[]);
    let stock = common::StockRedis::start(&[]);
    for (who, port) in [("redcell", ours.port), ("stock", stock.port)] {
        let mut admin = common::Raw::connect(port);
        let set: [&[u8]; 4] = [
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 100kb 0 0",
        ];
        assert_eq!(admin.call(&set), b"+OK\r\n", "{who}");
        let item = vec![b'x'; 1000];
        for _ in 0..1000 {
            admin.call(&[b"RPUSH", b"big", &item]);
        }
        let mut reader = common::Raw::connect(port);
        let small = reader.call(&[b"LRANGE", b"big", b"0", b"9"]);
        assert!(small.starts_with(b"*10\r\n"), "{who}");
        reader.send_cmd(&[b"LRANGE", b"big", b"0", b"-1"]);
        reader.expect_closed();
        assert_eq!(admin.call(&[b"PING"]), b"+PONG\r\n", "{who}");
        // With the limit lifted the same reply goes out whole.
        let lift: [&[u8]; 4] = [
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 0 0 0",
        ];
        assert_eq!(admin.call(&lift), b"+OK\r\n", "{who}");
        let whole = common::Raw::connect(port).call(&[b"LRANGE", b"big", b"0", b"-1"]);
        assert!(
            whole.starts_with(b"*1000\r\n") && whole.len() > 1_000_000,
            "{who}"
        );
    }
    assert!(
        ours.stderr()
            .contains("scheduled to be closed ASAP for overcoming of output buffer limits"),
        "{}",
        ours.stderr()
    );
}

/// The soft limit of `normal` ("normal 0 1mb 1"): a client that keeps sending requests
/// without reading its replies is closed once over the limit for longer than its second, on
/// both servers (stock checks when it appends the next reply; we give the bytes over the
/// limit that long to drain); a client that reads gets its large replies whole.
#[test]
fn normal_soft_limit_closes_a_client_that_stops_reading_like_stock() {
    let ours = Server::start(2, &[]);
    let stock = common::StockRedis::start(&[]);
    for (who, port) in [("redcell", ours.port), ("stock", stock.port)] {
        let mut admin = common::Raw::connect(port);
        let items: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("{i:01000}").into_bytes())
            .collect();
        for _ in 0..4 {
            let mut args: Vec<&[u8]> = vec![b"RPUSH", b"big"];
            args.extend(items.iter().map(|i| &i[..]));
            assert!(admin.call(&args).starts_with(b":"), "{who}");
        }
        let set: [&[u8]; 4] = [
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 0 1mb 1",
        ];
        assert_eq!(admin.call(&set), b"+OK\r\n", "{who}");
        // A reader gets 4 MB replies whole, twice.
        let mut reader = common::Raw::connect(port);
        for _ in 0..2 {
            let whole = reader.call(&[b"LRANGE", b"big", b"0", b"-1"]);
            assert!(
                whole.starts_with(b"*4000\r\n") && whole.len() > 4_000_000,
                "{who}"
            );
        }
        // A client that never reads, sending a request every 300 ms.
        let mut lazy = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let request = encode(&[b"LRANGE", b"big", b"0", b"-1"]);
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            if lazy.write_all(&request).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        lazy.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let closed = loop {
            match lazy.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(
            closed,
            "{who}: a client that stopped reading is still connected"
        );
        assert_eq!(admin.call(&[b"PING"]), b"+PONG\r\n", "{who}");
    }
}
