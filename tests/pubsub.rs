//! Pub/Sub: reply sequences byte for byte against stock redis-server (RESP2 and RESP3),
//! delivery across the cores of a multi-shard server, publish order, patterns, the
//! subscribed context, cleanup on disconnect, the slow-subscriber limit, PUBSUB, and
//! PUBLISH / SPUBLISH across a mixed cluster of stock and redcell nodes.

mod common;

use std::time::Duration;

use common::cluster::{check_from_all, create, Node};
use common::{encode, pair, show, wait_until, Raw, Server, StockRedis};

/// Sends one command and reads `replies` frames (a SUBSCRIBE of n channels answers n times).
fn exchange(c: &mut Raw, args: &[&[u8]], replies: usize) -> Vec<u8> {
    c.send_cmd(args);
    (0..replies).flat_map(|_| c.read_reply()).collect()
}

/// The same command on both servers must produce the same bytes.
fn same(a: &mut Raw, b: &mut Raw, args: &[&[u8]], replies: usize) {
    let (x, y) = (exchange(a, args, replies), exchange(b, args, replies));
    assert_eq!(show(&x), show(&y), "{:?}", show(&encode(args)));
}

fn int_reply(c: &mut Raw, args: &[&[u8]]) -> i64 {
    let r = c.call(args);
    let text = String::from_utf8_lossy(&r);
    text.trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or_else(|_| panic!("not an integer: {}", show(&r)))
}

/// RESP2 byte form of a `message` push.
fn message(channel: &str, msg: &str) -> Vec<u8> {
    encode(&[b"message", channel.as_bytes(), msg.as_bytes()])
}

#[test]
fn subscribe_sequences_match_stock() {
    let ours = Server::start(3, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        // Before any subscription: bare and named unsubscribes still confirm, with count 0.
        same(&mut a, &mut b, &[b"UNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"PUNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"SUNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"UNSUBSCRIBE", b"x", b"y"], 2);
        same(&mut a, &mut b, &[b"SUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"SUBSCRIBE", b"a", b"b", b"a"], 3);
        same(&mut a, &mut b, &[b"PSUBSCRIBE", b"p*", b"q?", b"p*"], 3);
        same(&mut a, &mut b, &[b"SSUBSCRIBE", b"s1", b"s2"], 2);
        same(&mut a, &mut b, &[b"PING"], 1);
        same(&mut a, &mut b, &[b"PING", b"hi"], 1);
        // RESP2 refuses other commands while subscribed; RESP3 allows them.
        same(&mut a, &mut b, &[b"GET", b"k"], 1);
        same(&mut a, &mut b, &[b"CLIENT", b"ID", b"x"], 1);
        same(&mut a, &mut b, &[b"UNSUBSCRIBE", b"a", b"nosuch"], 2);
        same(&mut a, &mut b, &[b"PUNSUBSCRIBE"], 2);
        same(&mut a, &mut b, &[b"PUNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"SUNSUBSCRIBE", b"s2"], 1);
        same(&mut a, &mut b, &[b"SUNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"UNSUBSCRIBE"], 1);
        // Out of subscribed mode.
        same(&mut a, &mut b, &[b"UNSUBSCRIBE"], 1);
        same(&mut a, &mut b, &[b"PING"], 1);
        same(&mut a, &mut b, &[b"GET", b"k"], 1);
        // RESET leaves subscribed mode.
        same(&mut a, &mut b, &[b"SUBSCRIBE", b"r"], 1);
        same(&mut a, &mut b, &[b"RESET"], 1);
        same(&mut a, &mut b, &[b"GET", b"k"], 1);
        same(&mut a, &mut b, &[b"PUBSUB", b"NUMSUB", b"r"], 1);
    }
}

#[test]
fn messages_match_stock_in_both_protocols() {
    let ours = Server::start(3, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        let (mut pa, mut pb) = pair(&ours, &stock, false);
        same(&mut a, &mut b, &[b"SUBSCRIBE", b"news"], 1);
        same(&mut a, &mut b, &[b"PSUBSCRIBE", b"n*"], 1);
        same(&mut a, &mut b, &[b"SSUBSCRIBE", b"shardch"], 1);
        same(&mut pa, &mut pb, &[b"PUBLISH", b"news", b"hello"], 1);
        same(&mut pa, &mut pb, &[b"SPUBLISH", b"shardch", b"x"], 1);
        // message, then pmessage, then smessage.
        for _ in 0..3 {
            assert_eq!(show(&a.read_reply()), show(&b.read_reply()));
        }
        if resp3 {
            // Any command is allowed; publishing to oneself shows the push before the count.
            same(&mut a, &mut b, &[b"GET", b"k"], 1);
            same(&mut a, &mut b, &[b"PUBLISH", b"news", b"me"], 3);
        }
        same(&mut a, &mut b, &[b"RESET"], 1);
    }
}

#[test]
fn publish_reaches_every_core_and_counts_receivers() {
    let ours = Server::start(3, &[]);
    // Enough connections that the kernel spreads them over the three cores.
    let mut subs: Vec<Raw> = (0..12).map(|_| ours.raw()).collect();
    let mut psubs: Vec<Raw> = (0..6).map(|_| ours.raw()).collect();
    for s in &mut subs {
        exchange(s, &[b"SUBSCRIBE", b"news", b"other"], 2);
    }
    for s in &mut psubs {
        exchange(s, &[b"PSUBSCRIBE", b"ne*", b"zz*"], 2);
    }
    let mut p = ours.raw();
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"news", b"m1"]), 18);
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"nexus", b"m2"]), 6);
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"nobody", b"m3"]), 0);
    for s in &mut subs {
        s.expect(&message("news", "m1"));
    }
    for s in &mut psubs {
        s.expect(&encode(&[b"pmessage", b"ne*", b"news", b"m1"]));
        s.expect(&encode(&[b"pmessage", b"ne*", b"nexus", b"m2"]));
    }
    for s in subs.iter_mut().chain(psubs.iter_mut()) {
        s.expect_silence(Duration::from_millis(50));
    }
    assert_eq!(
        show(&p.call(&[b"PUBSUB", b"NUMSUB", b"news", b"other", b"ne*", b"x"])),
        show(b"*8\r\n$4\r\nnews\r\n:12\r\n$5\r\nother\r\n:12\r\n$3\r\nne*\r\n:0\r\n$1\r\nx\r\n:0\r\n")
    );
    assert_eq!(show(&p.call(&[b"PUBSUB", b"NUMSUB"])), show(b"*0\r\n"));
    assert_eq!(int_reply(&mut p, &[b"PUBSUB", b"NUMPAT"]), 2);
    let mut chans = p.call(&[b"PUBSUB", b"CHANNELS"]);
    let mut pos = 0;
    let parsed = common::parse(&chans, &mut pos);
    let common::Node::Agg(b'*', Some(mut items)) = parsed else {
        panic!("{}", show(&chans))
    };
    items.sort();
    assert_eq!(
        items,
        vec![
            common::Node::Bulk(b'$', Some(b"news".to_vec())),
            common::Node::Bulk(b'$', Some(b"other".to_vec())),
        ]
    );
    chans = p.call(&[b"PUBSUB", b"CHANNELS", b"n*"]);
    assert_eq!(show(&chans), show(b"*1\r\n$4\r\nnews\r\n"));
    let info = String::from_utf8_lossy(&p.call(&[b"INFO", b"stats"])).into_owned();
    assert!(info.contains("pubsub_channels:2\r\n"), "{info}");
    assert!(info.contains("pubsub_patterns:2\r\n"), "{info}");
    assert!(info.contains("pubsubshard_channels:0\r\n"), "{info}");
    let list = String::from_utf8_lossy(&p.call(&[b"CLIENT", b"LIST"])).into_owned();
    assert_eq!(
        list.matches(" flags=P db=0 sub=2 psub=0 ssub=0 ").count(),
        12,
        "{list}"
    );
    assert_eq!(
        list.matches(" flags=P db=0 sub=0 psub=2 ssub=0 ").count(),
        6,
        "{list}"
    );
    assert_eq!(list.matches(" flags=N ").count(), 1, "{list}");
    let typed =
        String::from_utf8_lossy(&p.call(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"])).into_owned();
    assert_eq!(typed.matches(" flags=P ").count(), 18, "{typed}");
    assert!(!typed.contains(" flags=N "), "{typed}");
}

#[test]
fn a_burst_arrives_in_publish_order() {
    const N: usize = 10_000;
    let ours = Server::start(3, &[]);
    let mut subs: Vec<Raw> = (0..6).map(|_| ours.raw()).collect();
    for s in &mut subs {
        exchange(s, &[b"SUBSCRIBE", b"burst"], 1);
    }
    let mut p = ours.raw();
    let mut pipeline = Vec::new();
    for i in 0..N {
        pipeline.extend(encode(&[b"PUBLISH", b"burst", i.to_string().as_bytes()]));
    }
    p.send(&pipeline);
    // Subscribers are read while the publisher's replies pile up (they are small).
    for (k, s) in subs.iter_mut().enumerate() {
        for i in 0..N {
            let got = s.read_reply();
            assert_eq!(
                show(&got),
                show(&message("burst", &i.to_string())),
                "subscriber {k}, message {i}"
            );
        }
    }
    for _ in 0..N {
        assert_eq!(show(&p.read_reply()), show(b":6\r\n"));
    }
}

#[test]
fn disconnected_subscribers_are_removed_everywhere() {
    let ours = Server::start(3, &[]);
    let mut p = ours.raw();
    {
        let mut subs: Vec<Raw> = (0..9).map(|_| ours.raw()).collect();
        for s in &mut subs {
            exchange(s, &[b"SUBSCRIBE", b"gone"], 1);
            exchange(s, &[b"PSUBSCRIBE", b"g*"], 1);
            exchange(s, &[b"SSUBSCRIBE", b"sgone"], 1);
        }
        assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"gone", b"x"]), 18);
        assert_eq!(int_reply(&mut p, &[b"SPUBLISH", b"sgone", b"x"]), 9);
    }
    let cleaned = wait_until(Duration::from_secs(5), || {
        p.call(&[b"PUBSUB", b"NUMSUB", b"gone"]) == b"*2\r\n$4\r\ngone\r\n:0\r\n"
    });
    assert!(cleaned, "subscribers still counted after disconnecting");
    assert_eq!(int_reply(&mut p, &[b"PUBSUB", b"NUMPAT"]), 0);
    assert_eq!(
        show(&p.call(&[b"PUBSUB", b"SHARDNUMSUB", b"sgone"])),
        show(b"*2\r\n$5\r\nsgone\r\n:0\r\n")
    );
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"gone", b"x"]), 0);
    assert_eq!(int_reply(&mut p, &[b"SPUBLISH", b"sgone", b"x"]), 0);
    // CLIENT KILL TYPE pubsub closes idle subscribers on every core, and only them.
    let mut subs: Vec<Raw> = (0..6).map(|_| ours.raw()).collect();
    for s in &mut subs {
        exchange(s, &[b"PSUBSCRIBE", b"k*"], 1);
    }
    assert_eq!(
        int_reply(&mut p, &[b"CLIENT", b"KILL", b"TYPE", b"pubsub"]),
        6
    );
    // Gone as soon as CLIENT KILL has answered, as in Redis (it frees them before replying).
    assert_eq!(int_reply(&mut p, &[b"PUBSUB", b"NUMPAT"]), 0);
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"kx", b"x"]), 0);
    for s in &mut subs {
        s.expect_closed();
    }
}

#[test]
fn pubsub_subcommands_and_errors_match_stock() {
    let ours = Server::start(3, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        let (mut sa, mut sb) = pair(&ours, &stock, false);
        same(&mut sa, &mut sb, &[b"SSUBSCRIBE", b"{t}a"], 1);
        same(&mut sa, &mut sb, &[b"PSUBSCRIBE", b"x*"], 1);
        for cmd in [
            &[&b"PUBSUB"[..], b"HELP"][..],
            &[b"PUBSUB", b"help", b"x"],
            &[b"PUBSUB"],
            &[b"PUBSUB", b"NOSUCH"],
            &[b"PUBSUB", b"CHANNELS", b"a", b"b"],
            &[b"PUBSUB", b"NUMPAT", b"x"],
            &[b"PUBSUB", b"NUMPAT"],
            &[b"PUBSUB", b"SHARDCHANNELS"],
            &[b"PUBSUB", b"SHARDCHANNELS", b"{t}*"],
            &[b"PUBSUB", b"SHARDCHANNELS", b"zz"],
            &[b"PUBSUB", b"SHARDNUMSUB", b"{t}a", b"b"],
            &[b"PUBSUB", b"CHANNELS"],
            &[b"PUBLISH", b"a"],
            &[b"SPUBLISH", b"a", b"b", b"c"],
            &[b"PSUBSCRIBE"],
            &[b"SSUBSCRIBE"],
        ] {
            same(&mut a, &mut b, cmd, 1);
        }
        same(&mut sa, &mut sb, &[b"RESET"], 1);
    }
    // The limit directive: CONFIG SET merges classes; errors as Redis.
    let (mut a, mut b) = pair(&ours, &stock, false);
    let key = &b"client-output-buffer-limit"[..];
    for value in [
        &b"pubsub 64mb 16mb 120 replica 1k 2kb 3"[..],
        b"normal 1 2",
        b"master 1 2 3",
        b"normal x 2 3",
        b"pubsub 1 2 -3",
        b"",
    ] {
        same(&mut a, &mut b, &[b"CONFIG", b"SET", key, value], 1);
        same(&mut a, &mut b, &[b"CONFIG", b"GET", key], 1);
    }
    // COMMAND INFO: name, arity, flags, key positions and ACL categories as stock.
    let (mut a, mut b) = pair(&ours, &stock, false);
    for name in [
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "publish",
        "spublish",
        "pubsub",
        "reset",
    ] {
        let info = |c: &mut Raw| {
            let r = c.call(&[b"COMMAND", b"INFO", name.as_bytes()]);
            let mut pos = 0;
            let common::Node::Agg(_, Some(mut outer)) = common::parse(&r, &mut pos) else {
                panic!("{}", show(&r))
            };
            let common::Node::Agg(_, Some(entry)) = outer.remove(0) else {
                panic!("{}", show(&r))
            };
            // Subcommands (the 10th field) in any order; key specs are not compared.
            let mut head: Vec<common::Node> = entry.iter().take(7).cloned().collect();
            if let Some(common::Node::Agg(t, Some(subs))) = entry.get(9) {
                let mut subs: Vec<common::Node> = subs
                    .iter()
                    .map(|s| match s {
                        common::Node::Agg(t, Some(f)) => {
                            common::Node::Agg(*t, Some(f.iter().take(7).cloned().collect()))
                        }
                        other => other.clone(),
                    })
                    .collect();
                subs.sort();
                head.push(common::Node::Agg(*t, Some(subs)));
            }
            head
        };
        assert_eq!(info(&mut a), info(&mut b), "COMMAND INFO {name}");
    }
}

#[test]
fn stuck_subscriber_is_disconnected_at_the_output_limit() {
    let ours = Server::start(2, &[]);
    let mut stuck = ours.raw();
    exchange(&mut stuck, &[b"SUBSCRIBE", b"flood"], 1);
    let mut p = ours.raw();
    let big = vec![b'x'; 1 << 20];
    // 64 MiB published while the subscriber reads nothing: past the 32 MiB hard limit.
    for _ in 0..64 {
        int_reply(&mut p, &[b"PUBLISH", b"flood", &big]);
    }
    let dropped = wait_until(Duration::from_secs(10), || {
        p.call(&[b"PUBSUB", b"NUMSUB", b"flood"]) == b"*2\r\n$5\r\nflood\r\n:0\r\n"
    });
    assert!(dropped, "the stuck subscriber is still subscribed");
    assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"flood", b"x"]), 0);
    // Its connection was closed: reading drains what the kernel held, then end of file.
    stuck
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = [0u8; 1 << 16];
    let mut total = 0usize;
    loop {
        use std::io::Read;
        match stuck.stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(total < 40 << 20, "received more than the limit allows");
    }
    // A subscriber that keeps reading is never cut off, however much flows.
    let mut reader = ours.raw();
    exchange(&mut reader, &[b"SUBSCRIBE", b"flow"], 1);
    let expected = message("flow", std::str::from_utf8(&big).expect("ascii"));
    for _ in 0..48 {
        assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"flow", &big]), 1);
        let got = reader.read_n(expected.len(), Duration::from_secs(10));
        assert!(got == expected, "message corrupted");
    }
}

#[test]
fn soft_limit_disconnects_only_after_its_seconds() {
    let ours = Server::start(2, &["--client-output-buffer-limit", "pubsub 0 256kb 1"]);
    let mut stuck = ours.raw();
    exchange(&mut stuck, &[b"SUBSCRIBE", b"soft"], 1);
    let mut p = ours.raw();
    let big = vec![b'y'; 1 << 20];
    // Far more than the kernel buffers hold: the rest waits in the output buffer.
    for _ in 0..16 {
        assert_eq!(int_reply(&mut p, &[b"PUBLISH", b"soft", &big]), 1);
    }
    // Over the soft limit, but not yet for a whole second.
    assert_eq!(
        show(&p.call(&[b"PUBSUB", b"NUMSUB", b"soft"])),
        show(b"*2\r\n$4\r\nsoft\r\n:1\r\n")
    );
    // Still over it more than a second later: the next delivery closes the client.
    let dropped = wait_until(Duration::from_secs(5), || {
        int_reply(&mut p, &[b"PUBLISH", b"soft", b"tick"]);
        std::thread::sleep(Duration::from_millis(100));
        p.call(&[b"PUBSUB", b"NUMSUB", b"soft"]) == b"*2\r\n$4\r\nsoft\r\n:0\r\n"
    });
    assert!(
        dropped,
        "the subscriber over the soft limit is still subscribed"
    );
}

#[test]
fn losing_a_slot_unsubscribes_its_shard_channels_as_stock() {
    let mut got = Vec::new();
    for node in [Node::stock(), Node::redcell()] {
        node.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        common::cluster::wait_for("cluster_state:ok", Duration::from_secs(20), || {
            node.state_ok()
        });
        // One channel of the slot per client, so the pushes' counts do not depend on the
        // order the server walks its channels in.
        let mut sub = Raw::connect(node.port);
        exchange(&mut sub, &[b"SSUBSCRIBE", b"{a}1"], 1);
        exchange(&mut sub, &[b"SSUBSCRIBE", b"{b}1"], 1);
        exchange(&mut sub, &[b"SUBSCRIBE", b"plain"], 1);
        let mut sub2 = Raw::connect(node.port);
        exchange(&mut sub2, &[b"SSUBSCRIBE", b"{a}1", b"{a}2"], 2);
        let mut sub3 = Raw::connect(node.port);
        exchange(&mut sub3, &[b"SSUBSCRIBE", b"{a}2"], 1);
        let slot = redcell::slot::key_slot(b"{a}").to_string();
        node.cmd(&["CLUSTER", "DELSLOTS", &slot]);
        let mut pushes = vec![sub.read_reply(), sub3.read_reply()];
        // Two for sub2, counting down to 0 in either order.
        let mut two = [sub2.read_reply(), sub2.read_reply()];
        two.sort();
        pushes.extend(two.iter().map(|r| {
            let text = String::from_utf8_lossy(r);
            text.rsplit_once(":")
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
                .into_bytes()
        }));
        for s in [&mut sub, &mut sub2, &mut sub3] {
            s.expect_silence(Duration::from_millis(100));
        }
        let mut p = Raw::connect(node.port);
        pushes.push(p.call(&[b"PUBSUB", b"SHARDNUMSUB", b"{a}1", b"{a}2", b"{b}1"]));
        pushes.push(p.call(&[b"PUBLISH", b"plain", b"still"]));
        pushes.push(sub.read_reply());
        // The cluster is down now (a slot is unassigned): shard channels keep working unless
        // `cluster-allow-pubsubshard-when-down` is off; the unassigned slot is not served.
        common::cluster::wait_for("cluster_state:fail", Duration::from_secs(20), || {
            !node.state_ok()
        });
        let mut c = Raw::connect(node.port);
        pushes.push(c.call(&[b"SSUBSCRIBE", b"{a}9"]));
        pushes.push(c.call(&[b"SSUBSCRIBE", b"{b}2"]));
        pushes.push(p.call(&[b"SPUBLISH", b"{b}2", b"down"]));
        pushes.push(c.read_reply());
        pushes.push(p.call(&[
            b"CONFIG",
            b"SET",
            b"cluster-allow-pubsubshard-when-down",
            b"no",
        ]));
        pushes.push(p.call(&[b"SPUBLISH", b"{b}2", b"x"]));
        pushes.push(p.call(&[b"SUNSUBSCRIBE", b"{b}2"]));
        got.push(pushes.iter().map(|r| show(r)).collect::<Vec<_>>());
    }
    assert_eq!(got[0], got[1]);
    assert!(got[1][0].contains("sunsubscribe"), "{:?}", got[1]);
    let last = &got[1][got[1].len() - 2..];
    assert_eq!(
        last,
        [
            show(b"-CLUSTERDOWN The cluster is down\r\n"),
            show(b"-CLUSTERDOWN The cluster is down\r\n")
        ],
        "{:?}",
        got[1]
    );
    assert!(
        got[1].contains(&show(b"-CLUSTERDOWN Hash slot not served\r\n")),
        "{:?}",
        got[1]
    );
}

#[test]
fn mixed_cluster_carries_publish_both_ways_and_routes_shard_channels() {
    let stock = Node::stock();
    let (r1, r2) = (Node::redcell(), Node::redcell());
    create(&[&stock, &r1, &r2]);
    check_from_all(&[&stock, &r1, &r2]);

    // Bus PUBLISH both ways: subscribers on every node receive a PUBLISH sent to any node.
    let mut on_stock = Raw::connect(stock.port);
    exchange(&mut on_stock, &[b"SUBSCRIBE", b"bus"], 1);
    let mut on_r1: Vec<Raw> = (0..4).map(|_| Raw::connect(r1.port)).collect();
    for s in &mut on_r1 {
        exchange(s, &[b"PSUBSCRIBE", b"b*"], 1);
    }
    let mut p2 = Raw::connect(r2.port);
    assert_eq!(
        int_reply(&mut p2, &[b"PUBLISH", b"bus", b"from-redcell"]),
        0
    );
    on_stock.expect(&message("bus", "from-redcell"));
    for s in &mut on_r1 {
        s.expect(&encode(&[b"pmessage", b"b*", b"bus", b"from-redcell"]));
    }
    let mut ps = Raw::connect(stock.port);
    // The stock node counts only its own subscriber.
    assert_eq!(int_reply(&mut ps, &[b"PUBLISH", b"bus", b"from-stock"]), 1);
    on_stock.expect(&message("bus", "from-stock"));
    for s in &mut on_r1 {
        s.expect(&encode(&[b"pmessage", b"b*", b"bus", b"from-stock"]));
    }
    // A PUBLISH received from the bus is not sent on: each subscriber gets it exactly once.
    on_stock.expect_silence(Duration::from_millis(300));
    for s in &mut on_r1 {
        s.expect_silence(Duration::from_millis(50));
    }

    // Shard channels: served by the slot's owner, MOVED elsewhere, CROSSSLOT across slots.
    let slot_owner = |slot: u16| -> u16 {
        let text = r1.cmd(&["CLUSTER", "NODES"]);
        let line = text
            .lines()
            .find(|l| common::cluster::owner_of(l, slot))
            .expect("an owner");
        let addr = line.split(' ').nth(1).expect("address");
        addr.split(['@', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("port")
    };
    let channel = (0..)
        .map(|i| format!("sch{i}"))
        .find(|c| slot_owner(redcell::slot::key_slot(c.as_bytes())) == r1.port)
        .expect("a channel on r1");
    let slot = redcell::slot::key_slot(channel.as_bytes());
    let mut owner_sub = Raw::connect(r1.port);
    let ch = channel.as_bytes();
    assert_eq!(
        show(&exchange(&mut owner_sub, &[b"SSUBSCRIBE", ch], 1)),
        show(&encode(&[b"ssubscribe", ch, b"1"]).replace_last_int())
    );
    let moved = format!("-MOVED {slot} 127.0.0.1:{}\r\n", r1.port);
    for port in [stock.port, r2.port] {
        let mut c = Raw::connect(port);
        assert_eq!(show(&c.call(&[b"SSUBSCRIBE", ch])), show(moved.as_bytes()));
        assert_eq!(
            show(&c.call(&[b"SPUBLISH", ch, b"x"])),
            show(moved.as_bytes())
        );
    }
    let other = (0..)
        .map(|i| format!("o{i}"))
        .find(|c| {
            let s = redcell::slot::key_slot(c.as_bytes());
            s != slot && slot_owner(s) == r1.port
        })
        .expect("another channel on r1");
    let crossslot = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    let mut c = Raw::connect(r1.port);
    assert_eq!(
        show(&c.call(&[b"SSUBSCRIBE", ch, other.as_bytes()])),
        show(crossslot)
    );
    let mut c = Raw::connect(stock.port);
    assert_eq!(
        show(&c.call(&[b"SSUBSCRIBE", ch, other.as_bytes()])),
        show(crossslot)
    );
    let mut p1 = Raw::connect(r1.port);
    assert_eq!(int_reply(&mut p1, &[b"SPUBLISH", ch, b"sharded"]), 1);
    owner_sub.expect(&encode(&[b"smessage", ch, b"sharded"]));
}

/// `encode` writes every element as a bulk; subscription confirmations end in an integer.
trait LastInt {
    fn replace_last_int(self) -> Vec<u8>;
}

impl LastInt for Vec<u8> {
    fn replace_last_int(self) -> Vec<u8> {
        let text = String::from_utf8(self).expect("ascii");
        let cut = text.trim_end().rfind("\r\n$").expect("a last bulk");
        let (head, tail) = text.split_at(cut);
        let value = tail.trim().rsplit("\r\n").next().expect("value");
        format!("{head}\r\n:{value}\r\n").into_bytes()
    }
}
