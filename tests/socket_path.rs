//! The client socket paths (`--io epoll`, the default, and `--io glommio`): requests split
//! into single bytes, replies larger than the socket buffers, a blocked client with requests
//! queued behind it, 10,000 connections opened and closed, many connections ready at once
//! (their replies go out together, after all of them have read), idle shards woken by
//! cross-shard calls, connections spread evenly over the shards.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{bulk, encode, Server};

const PATHS: [&str; 2] = ["epoll", "glommio"];

/// A pipeline of SET, GET and a cross-shard MSET written one byte per send (each its own
/// segment: no-delay and a pause between bytes) is answered whole and in order.
#[test]
fn requests_arriving_one_byte_at_a_time() {
    for io in PATHS {
        let server = Server::start(2, &["--io", io]);
        let mut raw = server.raw();
        let mut req = encode(&[b"SET", b"k", b"value"]);
        req.extend(encode(&[b"GET", b"k"]));
        req.extend(encode(&[b"MSET", b"a", b"1", b"b", b"2"]));
        req.extend(b"PING\r\n");
        for byte in &req {
            raw.send(std::slice::from_ref(byte));
            std::thread::sleep(Duration::from_micros(300));
        }
        let mut expected = b"+OK\r\n".to_vec();
        expected.extend(bulk(b"value"));
        expected.extend(b"+OK\r\n+PONG\r\n");
        raw.expect(&expected);
        assert_eq!(
            raw.call(&[b"MGET", b"a", b"b"]),
            b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n",
            "{io}"
        );
    }
}

/// Twenty pipelined GETs of a 1 MB value (20 MB of replies, far over the socket buffers) read
/// slowly in small pieces: every byte arrives, in order, while another client is served.
#[test]
fn replies_larger_than_the_socket_buffers_are_written_in_parts() {
    for io in PATHS {
        let server = Server::start(2, &["--io", io]);
        let value: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut admin = server.raw();
        assert_eq!(admin.call(&[b"SET", b"big", &value]), b"+OK\r\n");
        let mut reader = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = Vec::new();
        for _ in 0..20 {
            req.extend(encode(&[b"GET", b"big"]));
        }
        reader.write_all(&req).unwrap();
        let one = bulk(&value);
        let mut got = Vec::with_capacity(one.len() * 20);
        let mut chunk = vec![0u8; 16 * 1024];
        let mut reads = 0;
        while got.len() < one.len() * 20 {
            let n = reader.read(&mut chunk).expect("read");
            assert!(n > 0, "{io}: closed after {} bytes", got.len());
            got.extend_from_slice(&chunk[..n]);
            reads += 1;
            if reads % 64 == 0 {
                // The slow reader leaves the server with a full socket; others still pass.
                std::thread::sleep(Duration::from_millis(5));
                assert_eq!(admin.call(&[b"PING"]), b"+PONG\r\n", "{io}");
            }
        }
        for (i, reply) in got.chunks(one.len()).enumerate() {
            assert!(reply == &one[..], "{io}: reply {i} differs");
        }
    }
}

/// A client blocked in BLPOP sends more requests: they wait unread in its socket (no reply
/// early), run once it is served, and meanwhile the server stays idle: a socket with unread
/// data must not keep the shard busy (the epoll set is edge-triggered for that).
#[test]
fn blocked_client_with_requests_queued_behind_it() {
    for io in PATHS {
        let server = Server::start(1, &["--io", io]);
        let mut blocked = server.raw();
        blocked.send_cmd(&[b"BLPOP", b"q", b"0"]);
        let mut admin = server.raw();
        // Wait (bounded) until the BLPOP is blocked.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = admin.call(&[b"INFO", b"clients"]);
            if String::from_utf8_lossy(&info).contains("blocked_clients:1") {
                break;
            }
            assert!(Instant::now() < deadline, "{io}: BLPOP never blocked");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut more = encode(&[b"SET", b"after", b"1"]);
        more.extend(b"PING\r\n");
        blocked.send(&more);
        std::thread::sleep(Duration::from_millis(100));
        let cpu_before = cpu_ms(server.pid());
        blocked.expect_silence(Duration::from_secs(1));
        let spent = cpu_ms(server.pid()) - cpu_before;
        assert!(spent < 400, "{io}: {spent} ms of CPU in 1 s while idle");
        assert_eq!(admin.call(&[b"GET", b"after"]), b"$-1\r\n", "{io}");
        assert_eq!(admin.call(&[b"LPUSH", b"q", b"x"]), b":1\r\n", "{io}");
        blocked.expect(b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n+OK\r\n+PONG\r\n");
        assert_eq!(admin.call(&[b"GET", b"after"]), b"$1\r\n1\r\n", "{io}");
    }
}

/// 10,000 connections, 200 open at a time, each sending a command and closing (half without
/// reading the reply): all served, every one accounted for, none left behind.
#[test]
fn ten_thousand_connections_opened_and_closed() {
    for io in PATHS {
        let server = Server::start(2, &["--io", io]);
        for wave in 0..50 {
            let mut socks: Vec<std::net::TcpStream> = (0..200)
                .map(|_| {
                    let s =
                        std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    s
                })
                .collect();
            for (i, s) in socks.iter_mut().enumerate() {
                let key = format!("k:{wave}:{i}");
                s.write_all(&encode(&[b"INCR", key.as_bytes()])).unwrap();
            }
            for s in socks.iter_mut().step_by(2) {
                let mut got = [0u8; 4];
                s.read_exact(&mut got).expect("reply");
                assert_eq!(&got, b":1\r\n", "{io}");
            }
        }
        let mut admin = server.raw();
        // Closed sockets are noticed asynchronously: wait (bounded) for the count to settle.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = String::from_utf8_lossy(&admin.call(&[b"INFO", b"clients"])).to_string();
            if info.contains("connected_clients:1\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "{io}: clients left: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(admin.call(&[b"DBSIZE"]), b":10000\r\n", "{io}");
        let stats = String::from_utf8_lossy(&admin.call(&[b"INFO", b"stats"])).to_string();
        let received: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{io}: {stats}"));
        assert!(received > 10_000, "{io}: {received} connections received");
    }
}

/// Sixty connections send their pipelines at the same moment, round after round, so the
/// shard finds many readable in one pass and holds each one's replies until the others have
/// read; a third of them close right after sending, without reading (woken, perhaps never
/// reading). Every connection that reads gets exactly its own replies, in order.
#[test]
fn many_connections_ready_at_once_each_get_their_replies() {
    const CONNS: usize = 60;
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 50;
    for io in PATHS {
        let server = Server::start(1, &["--io", io]);
        let port = server.port;
        let start = std::sync::Arc::new(std::sync::Barrier::new(CONNS));
        let clients: Vec<_> = (0..CONNS)
            .map(|c| {
                let start = start.clone();
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let key = format!("c{c}");
                        let mut req = Vec::new();
                        let mut expected = Vec::new();
                        for i in 0..PER_ROUND {
                            let n = round * PER_ROUND + i + 1;
                            req.extend(encode(&[b"INCR", key.as_bytes()]));
                            expected.extend(format!(":{n}\r\n").into_bytes());
                        }
                        req.extend(encode(&[b"GET", key.as_bytes()]));
                        expected
                            .extend(bulk((round * PER_ROUND + PER_ROUND).to_string().as_bytes()));
                        start.wait();
                        s.write_all(&req).unwrap();
                        let mut got = vec![0u8; expected.len()];
                        s.read_exact(&mut got)
                            .unwrap_or_else(|e| panic!("{io}: client {c} round {round}: {e}"));
                        assert_eq!(got, expected, "{io}: client {c} round {round}");
                        if c % 3 == 0 {
                            // Another connection that sends and goes without reading its reply.
                            let mut lost =
                                std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                            lost.write_all(&encode(&[b"INCR", b"lost"])).unwrap();
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        let mut admin = server.raw();
        assert_eq!(
            admin.call(&[b"GET", b"c1"]),
            bulk((ROUNDS * PER_ROUND).to_string().as_bytes()),
            "{io}"
        );
    }
}

/// Commands whose keys live on the other shard, sent after pauses of 0 to 3 ms (shorter and
/// longer than the 200 us an idle shard naps in its epoll set), from connections on both
/// shards: every call is answered, on every way a shard can wait for the cross-core mesh
/// (napping, sleeping in glommio at once with `--nap-us 0`, a doorbell watcher with `--io
/// glommio`). A shard that missed a message would leave its caller waiting past the read
/// timeout.
#[test]
fn idle_shards_wake_for_cross_shard_calls() {
    for args in [
        ["--io", "epoll", "--nap-us", "200"],
        ["--io", "epoll", "--nap-us", "0"],
        ["--io", "glommio", "--nap-us", "200"],
    ] {
        let server = Server::start(2, &args);
        // Four connections: SO_REUSEPORT puts them on either shard.
        let mut conns: Vec<_> = (0..4).map(|_| server.raw()).collect();
        for i in 0..40u32 {
            std::thread::sleep(Duration::from_micros(750 * u64::from(i % 5)));
            let conn = &mut conns[i as usize % 4];
            let (a, b) = (format!("{i}"), format!("{}", i * 7));
            // "a" and "b" hash to slots of different parity: one is foreign to any shard.
            assert_eq!(
                conn.call(&[b"MSET", b"a", a.as_bytes(), b"b", b.as_bytes()]),
                b"+OK\r\n",
                "{args:?}"
            );
            assert_eq!(conn.call(&[b"GET", b"a"]), bulk(a.as_bytes()), "{args:?}");
            assert_eq!(conn.call(&[b"GET", b"b"]), bulk(b.as_bytes()), "{args:?}");
        }
    }
}

/// CPU time (user + system) the process has used, in milliseconds.
fn cpu_ms(pid: u32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: i64 = fields[11].parse::<i64>().unwrap() + fields[12].parse::<i64>().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks * 1000 / hz
}

/// Each shard's connection count, from INFO redcell's `shard_clients`.
fn shard_clients(admin: &mut common::Raw) -> Vec<usize> {
    let info = String::from_utf8_lossy(&admin.call(&[b"INFO", b"redcell"])).to_string();
    info.lines()
        .find_map(|l| l.strip_prefix("shard_clients:"))
        .unwrap_or_else(|| panic!("no shard_clients: {info}"))
        .trim()
        .split(',')
        .map(|n| n.parse().expect("a count"))
        .collect()
}

/// Connections land on the shards evenly whatever the kernel's SO_REUSEPORT hash picks (a
/// shard with more than another hands a new one over), also after many have closed, and
/// every connection is served where it lands.
#[test]
fn connections_are_spread_evenly_over_the_shards() {
    for io in PATHS {
        let server = Server::start(3, &["--io", io]);
        let mut admin = server.raw();
        let open = |n: usize| -> Vec<common::Raw> {
            (0..n)
                .map(|i| {
                    let mut c = server.raw();
                    let key = format!("c{i}");
                    assert_eq!(c.call(&[b"INCR", key.as_bytes()])[0], b':', "{io}");
                    c
                })
                .collect()
        };
        let balanced = |counts: &[usize], total: usize| {
            counts.iter().sum::<usize>() == total
                && counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1
        };
        let mut conns = open(30);
        let counts = shard_clients(&mut admin);
        assert!(balanced(&counts, 31), "{io}: {counts:?}");
        // Close a run of them (whatever shards they were on), then open as many again.
        conns.drain(..18);
        let settled = common::wait_until(Duration::from_secs(10), || {
            shard_clients(&mut admin).iter().sum::<usize>() == 13
        });
        assert!(settled, "{io}: {:?}", shard_clients(&mut admin));
        conns.extend(open(18));
        let counts = shard_clients(&mut admin);
        assert!(balanced(&counts, 31), "{io}: {counts:?}");
        for c in conns.iter_mut() {
            assert_eq!(c.call(&[b"PING"]), b"+PONG\r\n", "{io}");
        }
    }
}
