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
