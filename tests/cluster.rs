//! Cluster membership with stock tools: redcell nodes and Debian's redis-server 7 nodes in
//! one cluster, built and checked by `redis-cli --cluster`, used through a cluster client,
//! grown and shrunk with add-node / del-node, a killed master failed and rejoined, and a
//! bus port fed garbage.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{check_from_all, cli, create, key_for_slot, owner_of, rcall, wait_for, Node};
use common::{free_port, run_bounded, Raw, TempDir, BIN};
use redis::Commands;

#[test]
fn create_three_redcell_masters() {
    let nodes = [Node::redcell(), Node::redcell(), Node::redcell()];
    let refs: Vec<&Node> = nodes.iter().collect();
    create(&refs);
    check_from_all(&refs);
    // Every node knows the other two, connected, and its slots survive in nodes.conf.
    for n in &nodes {
        let text = n.cmd(&["CLUSTER", "NODES"]);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().all(|l| l.contains(" connected")), "{text}");
        let conf = std::fs::read_to_string(n.dir.file("nodes.conf")).expect("nodes.conf");
        assert!(
            conf.contains(&n.myid()) && conf.contains("vars currentEpoch"),
            "{conf}"
        );
    }
    // Redirections, byte for byte.
    let a = &nodes[0];
    let nodes_text = a.cmd(&["CLUSTER", "NODES"]);
    let mine = nodes_text
        .lines()
        .find(|l| l.contains("myself"))
        .expect("myself line");
    let slot_elsewhere = (0..16384u16)
        .find(|s| !owner_of(mine, *s))
        .expect("a slot of another node");
    let key = key_for_slot(slot_elsewhere);
    let mut raw = Raw::connect(a.port);
    let reply = rcall(&mut raw, &["GET", &key]);
    assert!(
        reply.starts_with(&format!("-MOVED {slot_elsewhere} 127.0.0.1:")),
        "{reply}"
    );
    let crossslot = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    assert_eq!(
        rcall(&mut raw, &["MSET", "{a}1", "x", "{b}1", "y"]),
        crossslot
    );
    // Commands whose keys move with their arguments are routed by their real keys too.
    assert_eq!(
        rcall(&mut raw, &["SINTERCARD", "2", "{a}1", "{b}1"]),
        crossslot
    );
    assert_eq!(
        rcall(&mut raw, &["XREAD", "STREAMS", "{a}1", "{b}1", "0", "0"]),
        crossslot
    );
    assert_eq!(
        rcall(&mut raw, &["ZUNIONSTORE", "{a}d", "2", "{a}1", "{b}1"]),
        crossslot
    );
    assert_eq!(
        rcall(&mut raw, &["SELECT", "1"]),
        "-ERR SELECT is not allowed in cluster mode\r\n"
    );
    let reply = rcall(&mut raw, &["LMPOP", "1", &key, "LEFT"]);
    assert!(
        reply.starts_with(&format!("-MOVED {slot_elsewhere} ")),
        "{reply}"
    );
}

#[test]
fn mixed_cluster_serves_every_key_from_every_node() {
    let nodes = [
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
    ];
    let refs: Vec<&Node> = nodes.iter().collect();
    create(&refs);
    check_from_all(&refs);
    // No warnings from the stock nodes about our messages.
    for n in nodes.iter().filter(|n| n.stock) {
        let log = n.logs();
        assert!(
            !log.contains("unknown") && !log.contains("Unknown"),
            "stock log:\n{log}"
        );
    }
    // A cluster client writes 10,000 keys over all slots through the cluster.
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://{}/", n.addr()))
        .collect();
    let client = redis::cluster::ClusterClientBuilder::new(urls)
        .connection_timeout(Duration::from_secs(10))
        .response_timeout(Duration::from_secs(10))
        .build()
        .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    for i in 0..10_000 {
        let _: () = con
            .set(format!("key:{i}"), i)
            .expect("SET through the cluster");
    }
    for i in (0..10_000).step_by(7) {
        let v: i64 = con
            .get(format!("key:{i}"))
            .expect("GET through the cluster");
        assert_eq!(v, i);
    }
    // Every key is readable from every entry node by following MOVED.
    for n in &nodes {
        let mut entry = Raw::connect(n.port);
        for i in (0..10_000).step_by(13) {
            let key = format!("key:{i}");
            let mut reply = rcall(&mut entry, &["GET", &key]);
            if let Some(rest) = reply.strip_prefix("-MOVED ") {
                let addr = rest
                    .trim()
                    .split(' ')
                    .nth(1)
                    .expect("MOVED target")
                    .to_string();
                let port: u16 = addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port");
                reply = rcall(&mut Raw::connect(port), &["GET", &key]);
            }
            assert_eq!(
                reply,
                format!("${}\r\n{i}\r\n", i.to_string().len()),
                "{key} via {}",
                n.port
            );
        }
    }
}

#[test]
fn nodes_join_and_leave_with_add_node_and_del_node() {
    for (cluster_stock, newcomer_stock) in [(true, false), (false, true)] {
        let make = |stock: bool| {
            if stock {
                Node::stock()
            } else {
                Node::redcell()
            }
        };
        let nodes = [
            make(cluster_stock),
            make(cluster_stock),
            make(cluster_stock),
        ];
        let refs: Vec<&Node> = nodes.iter().collect();
        create(&refs);
        check_from_all(&refs);
        let newcomer = make(newcomer_stock);
        let out = cli(&["--cluster", "add-node", &newcomer.addr(), &nodes[0].addr()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("[OK] New node added correctly."),
            "add-node:\n{text}"
        );
        let mut all = refs.clone();
        all.push(&newcomer);
        wait_for(
            "the newcomer to be known everywhere",
            Duration::from_secs(20),
            || {
                all.iter()
                    .all(|n| n.cmd(&["CLUSTER", "NODES"]).lines().count() == 4)
            },
        );
        check_from_all(&all);
        let id = newcomer.myid();
        let out = cli(&["--cluster", "del-node", &nodes[0].addr(), &id]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Sending CLUSTER FORGET messages"),
            "del-node:\n{text}"
        );
        for n in &nodes {
            assert!(
                !n.cmd(&["CLUSTER", "NODES"]).contains(&id),
                "{} still lists {id}",
                n.port
            );
        }
        check_from_all(&refs);
    }
}

#[test]
fn killed_master_fails_and_rejoins_with_its_identity() {
    let mut nodes = [
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
    ];
    {
        let refs: Vec<&Node> = nodes.iter().collect();
        create(&refs);
        check_from_all(&refs);
    }
    let victim_id = nodes[0].myid();
    nodes[0].kill();
    let started = Instant::now();
    wait_for(
        "every survivor to mark the master FAIL",
        Duration::from_secs(20),
        || {
            nodes[1..].iter().all(|n| {
                n.flags_of(&victim_id)
                    .is_some_and(|f| f.split(',').any(|x| x == "fail"))
            })
        },
    );
    eprintln!("FAIL everywhere {:?} after the kill", started.elapsed());
    wait_for(
        "cluster_state:fail everywhere",
        Duration::from_secs(10),
        || nodes[1..].iter().all(|n| !n.state_ok()),
    );
    nodes[0].spawn();
    assert_eq!(
        nodes[0].myid(),
        victim_id,
        "the restarted node kept its name"
    );
    wait_for("the cluster to recover", Duration::from_secs(30), || {
        nodes.iter().all(|n| n.state_ok())
    });
    for n in &nodes[1..] {
        let flags = n.flags_of(&victim_id).expect("still known");
        assert_eq!(flags, "master", "seen from {}", n.port);
    }
}

#[test]
fn bus_garbage_never_takes_the_node_down() {
    use redcell::cluster::bus::{self, Header, Message, NodeName, Payload, Ping};
    let node = Node::redcell();
    node.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    wait_for("cluster_state:ok", Duration::from_secs(5), || {
        node.state_ok()
    });
    let valid = bus::encode(&Message::new(
        Header {
            sender: NodeName([b'f'; 40]),
            port: 1,
            cport: 2,
            ..Header::default()
        },
        Payload::Ping(Ping::default()),
    ));
    let mut seed: u64 = 0x5eed_0f_c1u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3000 {
        let mut msg = valid.clone();
        match round % 4 {
            0 => {
                // Random bytes over a valid message.
                for _ in 0..(next() % 16 + 1) {
                    let at = (next() % msg.len() as u64) as usize;
                    msg[at] = next() as u8;
                }
            }
            1 => msg.truncate((next() % msg.len() as u64) as usize),
            2 => msg = (0..(next() % 3000)).map(|_| next() as u8).collect(),
            _ => {
                // A length claiming more than is sent.
                msg[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            }
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", node.cport)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = s.write_all(&msg);
            let mut sink = [0u8; 4096];
            if round % 100 == 0 {
                let _ = s.read(&mut sink);
            }
        }
    }
    assert_eq!(node.cmd(&["PING"]), "PONG");
    assert!(node.state_ok());
    assert_eq!(
        node.cmd(&["CLUSTER", "NODES"]).lines().count(),
        1,
        "garbage added no node"
    );
    // Meeting itself: the handshake answers in our own name and is dropped, myself intact.
    let (port, cport) = (node.port.to_string(), node.cport.to_string());
    assert_eq!(
        node.cmd(&["CLUSTER", "MEET", "127.0.0.1", &port, &cport]),
        "OK"
    );
    wait_for("the self-handshake to go", Duration::from_secs(5), || {
        node.cmd(&["CLUSTER", "NODES"]).lines().count() == 1
    });
    let me = node.cmd(&["CLUSTER", "NODES"]);
    assert!(
        me.contains("myself,master") && me.contains("0-16383"),
        "{me}"
    );
}

#[test]
fn corrupt_nodes_conf_refuses_to_start() {
    let dir = TempDir::new("bad-nodes-conf");
    std::fs::write(dir.file("nodes.conf"), "this is not a nodes.conf line\n").expect("write");
    let port = free_port().to_string();
    let out = run_bounded(
        Command::new(BIN)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
            ])
            .current_dir(&dir.path),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with a corrupt nodes.conf");
    assert!(
        err.contains("Unrecoverable error: corrupted cluster config file"),
        "{err}"
    );
}

/// nodes.conf is written off the control core for changes that need no fsync; a SHUTDOWN
/// right after such a change still leaves it in the file.
#[test]
fn a_change_answered_before_shutdown_is_in_nodes_conf() {
    let node = Node::redcell();
    let mut raw = Raw::connect(node.port);
    raw.send_cmd(&[b"CLUSTER", b"ADDSLOTSRANGE", b"0", b"99"]);
    assert_eq!(String::from_utf8_lossy(&raw.read_reply()), "+OK\r\n");
    // Sent at once (a pipelined reply might not be written before the exit, as in Redis).
    raw.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    wait_for("the node to exit", Duration::from_secs(10), || {
        node.try_cmd(&["PING"]).is_none()
    });
    let conf = std::fs::read_to_string(node.dir.file("nodes.conf")).expect("nodes.conf");
    let mine = conf.lines().find(|l| l.contains("myself")).expect("myself");
    assert!(mine.ends_with(" connected 0-99"), "{conf}");
}
