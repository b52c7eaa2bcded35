//! Restart after a crash: a server killed with SIGKILL while clients and cluster peers were
//! connected starts again at once on the same client and bus ports (Redis sets SO_REUSEADDR;
//! the killed connections linger in TIME_WAIT for a minute), while a port another live
//! process listens on is still refused with a clear error.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::{wait_for, Node};
use common::{die_with_parent, free_port, run_bounded, ChildGuard, Raw, StockRedis, TempDir, BIN};

/// Sockets on local `port` that are neither listening nor established: what a killed process's
/// connections leave behind (FIN_WAIT1/2, CLOSING, TIME_WAIT, LAST_ACK), from /proc/net/tcp.
fn lingering(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let lport = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 04 FIN_WAIT1, 05 FIN_WAIT2, 06 TIME_WAIT, 09 LAST_ACK, 0B CLOSING.
            if lport == Some(port) && matches!(*state, "04" | "05" | "06" | "09" | "0B") {
                n += 1;
            }
        }
    }
    n
}

/// Starts `redcell-server args` in `dir`; the guard, or the stderr of a server that exited.
fn start(dir: &TempDir, port: u16, args: &[&str]) -> Result<ChildGuard, String> {
    let err = dir.file("stderr");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    die_with_parent(&mut cmd);
    let mut guard = ChildGuard {
        child: cmd.spawn().expect("spawn redcell-server"),
    };
    let mut exited = false;
    let up = common::wait_until(common::START_TIMEOUT, || {
        exited = guard.exited().is_some();
        exited || ping(port)
    });
    if up && !exited {
        return Ok(guard);
    }
    Err(std::fs::read_to_string(&err).unwrap_or_default())
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut got = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok()
        && std::io::Read::read_exact(&mut s, &mut got).is_ok()
        && &got == b"+PONG\r\n"
}

/// Client port: a subscriber is connected when the server is killed; the restart on the same
/// port succeeds at once (it used to fail with "Address already in use" for a minute).
#[test]
fn client_port_rebinds_at_once_after_kill_9() {
    let dir = TempDir::new("restart-client");
    let port = free_port();
    let p = port.to_string();
    let args = ["--port", &p, "--bind", "127.0.0.1", "--shards", "2"];
    let mut first = start(&dir, port, &args).expect("first start");
    // A subscriber (as `redis-cli subscribe x`) and a plain client on every core.
    let mut sub = Raw::connect(port);
    sub.send_cmd(&[b"SUBSCRIBE", b"x"]);
    sub.read_reply();
    let others: Vec<Raw> = (0..4).map(|_| Raw::connect(port)).collect();
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reap");
    // The clients go away too, as redis-cli does when its server dies.
    drop(sub);
    drop(others);
    wait_for(
        "the killed connections to linger",
        Duration::from_secs(5),
        || lingering(port) > 0,
    );
    let mut second =
        start(&dir, port, &args).unwrap_or_else(|e| panic!("restart on port {port} failed:\n{e}"));
    assert!(lingering(port) > 0, "the test did not exercise TIME_WAIT");
    let mut raw = Raw::connect(port);
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
    assert!(second.exited().is_none());
}

/// Cluster bus port: a node killed while another node's links were up restarts at once with
/// both of its ports, keeps its identity, and the cluster heals.
#[test]
fn bus_port_rebinds_at_once_after_kill_9() {
    let mut a = Node::redcell();
    let b = Node::redcell();
    a.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    b.cmd(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    let (bport, bcport) = (b.port.to_string(), b.cport.to_string());
    a.cmd(&["CLUSTER", "MEET", "127.0.0.1", &bport, &bcport]);
    wait_for("the two nodes to agree", Duration::from_secs(20), || {
        a.state_ok() && b.state_ok()
    });
    let id = a.myid();
    let mut sub = Raw::connect(a.port);
    sub.send_cmd(&[b"SUBSCRIBE", b"x"]);
    sub.read_reply();
    a.kill();
    drop(sub);
    wait_for(
        "the killed bus links to linger",
        Duration::from_secs(5),
        || lingering(a.cport) > 0,
    );
    // `spawn` panics with the node's log unless it serves PING within 10 s.
    a.spawn();
    assert!(
        lingering(a.cport) > 0 || lingering(a.port) > 0,
        "the test did not exercise TIME_WAIT"
    );
    assert_eq!(a.myid(), id);
    wait_for("the cluster to heal", Duration::from_secs(20), || {
        a.state_ok()
            && b.state_ok()
            && b.flags_of(&id).as_deref() == Some("master")
            && a.cmd(&["CLUSTER", "NODES"]).contains(&b.myid())
    });
}

/// A client port or a bus port that another live process listens on is refused, with Redis's
/// words, whoever holds it (redcell or stock Redis); the holder keeps working.
#[test]
fn a_port_a_live_process_listens_on_is_refused() {
    let holder = Node::redcell();
    let stock = StockRedis::start(&[]);
    let refused = |port: u16, cport: u16, what: &str| {
        let dir = TempDir::new("restart-refused");
        let (p, c) = (port.to_string(), cport.to_string());
        let out = run_bounded(
            Command::new(BIN)
                .args(["--port", &p, "--bind", "127.0.0.1", "--shards", "1"])
                .args(["--cluster-enabled", "yes", "--cluster-port", &c])
                .current_dir(&dir.path),
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        err
    };
    // The client port of a live redcell node, and of a live stock Redis.
    for (port, who) in [(holder.port, "redcell"), (stock.port, "redis-server")] {
        let err = refused(port, free_port(), who);
        assert!(
            err.contains(&format!(
                "Could not create server TCP listening socket 127.0.0.1:{port}: bind: Address already in use"
            )) && err.contains(&format!("Failed listening on port {port} (TCP), aborting.")),
            "{who}: {err}"
        );
    }
    // The bus port of a live redcell node (SO_REUSEPORT used to share it silently), and a
    // stock Redis's client port used as our bus port.
    for (cport, who) in [(holder.cport, "redcell bus"), (stock.port, "redis-server")] {
        let err = refused(free_port(), cport, who);
        assert!(
            err.contains(&format!(
                "Could not create server TCP listening socket 127.0.0.1:{cport}: bind: Address already in use"
            )) && err.contains(&format!("Failed listening on port {cport} (cluster), aborting.")),
            "{who}: {err}"
        );
    }
    // The holders are untouched: the node's bus still answers a MEET with a PONG.
    assert_eq!(holder.cmd(&["PING"]), "PONG");
    let mut s = TcpStream::connect(("127.0.0.1", holder.cport)).expect("bus port");
    use redcell::cluster::bus::{self, Header, Message, NodeName, Payload, Ping};
    let meet = Message::new(
        Header {
            sender: NodeName([b'e'; 40]),
            port: 1,
            cport: 2,
            flags: 1,
            ..Header::default()
        },
        Payload::Meet(Ping::default()),
    );
    s.write_all(&bus::encode(&meet)).expect("send MEET");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 8];
    std::io::Read::read_exact(&mut s, &mut head).expect("a reply on the bus");
    assert_eq!(&head[..4], b"RCmb");
    let mut con = stock.conn();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
