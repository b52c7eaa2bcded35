//! Failovers with redcell masters: a stock replica is elected with redcell's votes in a mixed
//! cluster; votes follow Redis 7.0's rules (one per epoch, kept across a restart; forged
//! requests change nothing); MFSTART from our replica pauses writes on every core.
//!
//! Besides real nodes, these tests use *fake nodes*: a bus listener and link in this process
//! that meets the node under test with hand-built messages (`redcell::cluster::bus`), answers
//! its PINGs, and records everything it is sent, so a vote (FAILOVER_AUTH_ACK) or a PAUSED
//! flag is seen on the wire.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{cli, create, wait_for, Node};
use common::Raw;
use redcell::cluster::bus::{
    self, mflag, node_flag, Frame, Header, Message, NodeName, Payload, Ping, SlotBitmap,
};

// ---------------------------------------------------------------------------------------
// Fake nodes

/// What a fake node says about itself in its headers.
#[derive(Clone)]
struct Role {
    flags: u16,
    replicaof: NodeName,
    myslots: SlotBitmap,
    config_epoch: u64,
    current_epoch: u64,
}

struct FakeShared {
    name: NodeName,
    cport: u16,
    role: Mutex<Role>,
    /// Answer PINGs/MEETs with PONGs (off: we look dead).
    answer: AtomicBool,
    stop: AtomicBool,
    /// Every message received, with whether it came on a link the node under test opened
    /// to us (our listener) rather than on ours.
    inbox: Mutex<Vec<(bool, Message)>>,
    conns: Mutex<Vec<TcpStream>>,
}

impl FakeShared {
    fn header(&self) -> Header {
        let r = self.role.lock().unwrap().clone();
        Header {
            port: 1,
            cport: self.cport,
            sender: self.name,
            flags: r.flags,
            replicaof: r.replicaof,
            myslots: r.myslots,
            config_epoch: r.config_epoch,
            current_epoch: r.current_epoch,
            ..Header::default()
        }
    }

    fn message(&self, payload: Payload, tweak: impl FnOnce(&mut Header)) -> Vec<u8> {
        let mut h = self.header();
        tweak(&mut h);
        bus::encode(&Message::new(h, payload))
    }

    /// Reads messages from `s` until it closes or the fake stops; answers pings.
    fn serve(self: Arc<Self>, mut s: TcpStream, theirs: bool) {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        if let Ok(c) = s.try_clone() {
            self.conns.lock().unwrap().push(c);
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        while !self.stop.load(Ordering::Relaxed) {
            match s.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            }
            while let Frame::Complete(len) = bus::frame(&buf, bus::DEFAULT_MAX_MSG_LEN) {
                let msg = bus::decode(&buf[..len]);
                buf.drain(..len);
                let Ok(msg) = msg else { continue };
                let ping = matches!(msg.payload, Payload::Ping(_) | Payload::Meet(_));
                self.inbox.lock().unwrap().push((theirs, msg));
                if ping && self.answer.load(Ordering::Relaxed) {
                    let pong = self.message(Payload::Pong(Ping::default()), |_| {});
                    let _ = s.write_all(&pong);
                }
            }
        }
    }
}

struct Fake {
    s: Arc<FakeShared>,
    /// Our link to the node under test.
    link: Option<TcpStream>,
}

impl Fake {
    fn new(c: u8, role: Role) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake bus listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let s = Arc::new(FakeShared {
            name: NodeName([c; 40]),
            cport: listener.local_addr().unwrap().port(),
            role: Mutex::new(role),
            answer: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            inbox: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
        });
        let acc = s.clone();
        std::thread::spawn(move || {
            while !acc.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let me = acc.clone();
                        std::thread::spawn(move || me.serve(conn, true));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Fake { s, link: None }
    }

    fn master(c: u8, slots: std::ops::Range<u16>, config_epoch: u64, current_epoch: u64) -> Fake {
        Fake::new(
            c,
            Role {
                flags: node_flag::MASTER | node_flag::MYSELF,
                replicaof: NodeName::NULL,
                myslots: bitmap(slots),
                config_epoch,
                current_epoch,
            },
        )
    }

    /// A replica of `master` (whose slots and config epoch its header carries).
    fn replica(c: u8, master: NodeName, role_of_master: &Role) -> Fake {
        Fake::new(
            c,
            Role {
                flags: node_flag::SLAVE | node_flag::MYSELF,
                replicaof: master,
                ..role_of_master.clone()
            },
        )
    }

    fn name(&self) -> NodeName {
        self.s.name
    }

    fn id(&self) -> String {
        self.s.name.to_string()
    }

    fn role(&self) -> Role {
        self.s.role.lock().unwrap().clone()
    }

    /// Opens our link to `node`'s bus port (closing an older one).
    fn connect(&mut self, node: &Node) {
        let s = TcpStream::connect(("127.0.0.1", node.cport)).expect("bus port");
        let r = s.try_clone().unwrap();
        let me = self.s.clone();
        std::thread::spawn(move || me.serve(r, false));
        if let Some(old) = self.link.replace(s) {
            let _ = old.shutdown(Shutdown::Both);
        }
    }

    /// MEETs `node` and waits until it knows us by our name, linked both ways.
    fn join(&mut self, node: &Node) {
        self.connect(node);
        self.send(Payload::Meet(Ping::default()), |_| {});
        let id = self.id();
        wait_for("the node to know the fake", Duration::from_secs(10), || {
            node.cmd(&["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.starts_with(&id) && l.contains(" connected"))
        });
    }

    fn send(&mut self, payload: Payload, tweak: impl FnOnce(&mut Header)) {
        let bytes = self.s.message(payload, tweak);
        self.link
            .as_mut()
            .expect("connected")
            .write_all(&bytes)
            .expect("send on the bus");
    }

    /// A FAILOVER_AUTH_REQUEST as `clusterRequestFailoverAuth` builds it, at `epoch`.
    fn request_vote(&mut self, epoch: u64, tweak: impl FnOnce(&mut Header)) {
        self.send(Payload::FailoverAuthRequest, |h| {
            h.current_epoch = epoch;
            tweak(h);
        });
    }

    fn received(&self) -> usize {
        self.s.inbox.lock().unwrap().len()
    }

    /// The first message after the first `from` that satisfies `f`, waiting up to `limit`.
    fn wait_msg(
        &self,
        from: usize,
        limit: Duration,
        f: impl Fn(bool, &Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.s.inbox.lock().unwrap()[from..]
                .iter()
                .find(|(theirs, m)| f(*theirs, m))
                .map(|(_, m)| m.clone());
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every FAILOVER_AUTH_ACK received after the first `from` messages.
    fn acks(&self, from: usize) -> Vec<Message> {
        self.s.inbox.lock().unwrap()[from..]
            .iter()
            .filter(|(_, m)| m.payload == Payload::FailoverAuthAck)
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.s.stop.store(true, Ordering::Relaxed);
        for c in self.s.conns.lock().unwrap().iter() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn bitmap(slots: std::ops::Range<u16>) -> SlotBitmap {
    let mut b = SlotBitmap::EMPTY;
    for s in slots {
        b.set(s, true);
    }
    b
}

/// `vars currentEpoch N lastVoteEpoch M` of the node's nodes.conf.
fn conf_vars(node: &Node) -> (u64, u64) {
    let conf = std::fs::read_to_string(node.dir.file("nodes.conf")).expect("nodes.conf");
    let vars = conf
        .lines()
        .find(|l| l.starts_with("vars "))
        .unwrap_or_else(|| panic!("no vars line:\n{conf}"));
    let f: Vec<&str> = vars.split(' ').collect();
    (f[2].parse().unwrap(), f[4].parse().unwrap())
}

fn info_field(node: &Node, field: &str) -> String {
    node.cmd(&["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_default()
}

/// Waits until the node's log has a line containing `text`; panics with the log if not.
fn wait_log(node: &Node, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.logs().contains(text) {
        assert!(
            Instant::now() < deadline,
            "no log line {text:?}:\n{}",
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A redcell master `x` (config epoch 5, slots 0-8191), a fake master `m` (epoch 3, slots
/// 8192-16383) and a fake replica `r` of `m`, all known to each other.
fn voting_cluster() -> (Node, Fake, Fake) {
    let x = Node::redcell();
    x.cmd(&["CLUSTER", "SET-CONFIG-EPOCH", "5"]);
    x.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    let mut m = Fake::master(b'm', 8192..16384, 3, 5);
    let mut r = Fake::replica(b'r', m.name(), &m.role());
    m.join(&x);
    r.join(&x);
    let (mid, rid) = (m.id(), r.id());
    wait_for("x to see m and r", Duration::from_secs(10), || {
        let nodes = x.cmd(&["CLUSTER", "NODES"]);
        nodes
            .lines()
            .any(|l| l.starts_with(&mid) && l.contains(" master ") && l.ends_with("8192-16383"))
            && nodes
                .lines()
                .any(|l| l.starts_with(&rid) && l.contains(&format!(" slave {mid} ")))
    });
    assert_eq!(info_field(&x, "cluster_current_epoch"), "5");
    (x, m, r)
}

/// `m` stops answering and `r` tells `x` it failed (FAIL): `x` marks it FAIL at once.
fn fail_master(x: &Node, m: &Fake, r: &mut Fake) {
    m.s.answer.store(false, Ordering::Relaxed);
    r.send(Payload::Fail(m.name()), |_| {});
    let mid = m.id();
    wait_for("x to mark m FAIL", Duration::from_secs(5), || {
        x.flags_of(&mid)
            .is_some_and(|f| f.split(',').any(|f| f == "fail"))
    });
}

const QUIET: Duration = Duration::from_millis(600);

// ---------------------------------------------------------------------------------------
// (a) The acceptance test

/// 3 stock masters with a stock replica each plus 3 redcell masters, slots over all 6 (so a
/// replica needs 4 votes and only 2 stock masters are left to give them): a stock master is
/// killed, its replica is elected, and every node agrees on the new master, its config epoch
/// and its slots.
#[test]
fn stock_replica_is_elected_with_redcell_votes() {
    let mut masters = vec![
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
    ];
    {
        let refs: Vec<&Node> = masters.iter().collect();
        create(&refs);
    }
    let replicas: Vec<Node> = (0..3).map(|_| Node::stock()).collect();
    let stock_masters: Vec<usize> = (0..6).filter(|&i| masters[i].stock).collect();
    for (rep, &mi) in replicas.iter().zip(&stock_masters) {
        let master_id = masters[mi].myid();
        let out = cli(&[
            "--cluster",
            "add-node",
            &rep.addr(),
            &masters[mi].addr(),
            "--cluster-slave",
            "--cluster-master-id",
            &master_id,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("[OK] New node added correctly."), "{text}");
    }
    let everyone = |masters: &[Node]| -> Vec<String> {
        masters
            .iter()
            .chain(&replicas)
            .filter(|n| n.child.is_some())
            .map(|n| n.myid())
            .collect()
    };
    let ids = everyone(&masters);
    wait_for(
        "9 nodes known and linked everywhere, replicas in sync",
        Duration::from_secs(30),
        || {
            masters.iter().chain(&replicas).all(|n| {
                let nodes = n.cmd(&["CLUSTER", "NODES"]);
                nodes.lines().count() == 9
                    && ids.iter().all(|id| nodes.contains(id.as_str()))
                    && nodes.lines().all(|l| l.contains(" connected"))
                    && n.state_ok()
            }) && replicas.iter().all(|r| {
                r.cmd(&["INFO", "replication"])
                    .contains("master_link_status:up")
            })
        },
    );
    let victim = stock_masters[0];
    let (victim_id, heir) = (masters[victim].myid(), &replicas[0]);
    let heir_id = heir.myid();
    let victim_line = masters[victim]
        .cmd(&["CLUSTER", "NODES"])
        .lines()
        .find(|l| l.contains("myself"))
        .expect("myself line")
        .to_string();
    let victim_slots: Vec<String> = victim_line.split(' ').skip(8).map(String::from).collect();
    assert!(!victim_slots.is_empty(), "{victim_line}");

    masters[victim].kill();
    let killed = Instant::now();
    // The heir's own view: master, with the victim's slots, at some new config epoch.
    let line_of = |n: &Node, id: &str| -> Option<Vec<String>> {
        n.try_cmd(&["CLUSTER", "NODES"])?
            .lines()
            .find(|l| l.starts_with(id))
            .map(|l| l.split(' ').map(String::from).collect())
    };
    let mut epoch = String::new();
    wait_for(
        "every live node to agree on the new master, its epoch and slots",
        Duration::from_secs(40),
        || {
            let Some(own) = line_of(heir, &heir_id) else {
                return false;
            };
            if !own[2].contains("master") || own[8..] != victim_slots[..] {
                return false;
            }
            epoch = own[6].clone();
            masters
                .iter()
                .chain(&replicas)
                .filter(|n| n.child.is_some())
                .all(|n| {
                    line_of(n, &heir_id).is_some_and(|l| {
                        l[2].split(',').any(|f| f == "master")
                            && l[3] == "-"
                            && l[6] == epoch
                            && l[8..] == victim_slots[..]
                    }) && line_of(n, &victim_id)
                        .is_some_and(|l| l[2].split(',').any(|f| f == "fail") && l.len() == 8)
                })
        },
    );
    eprintln!(
        "all 8 live nodes agree {:?} after the kill: {heir_id} master at config epoch {epoch}",
        killed.elapsed()
    );
    let heir_log = heir.logs();
    assert!(
        heir_log.contains("Failover election won: I'm the new master.")
            && heir_log.contains(&format!(
                "configEpoch set to {epoch} after successful failover"
            )),
        "heir's log:\n{heir_log}"
    );
    // The election could not be won without redcell votes: which masters voted?
    let granted = format!("Failover auth granted to {heir_id} for epoch {epoch}");
    let redcell_votes = masters
        .iter()
        .filter(|n| !n.stock && n.logs().contains(&granted))
        .count();
    let stock_votes = masters
        .iter()
        .filter(|n| n.stock && n.child.is_some() && n.logs().contains(&granted))
        .count();
    eprintln!("votes: {redcell_votes} redcell, {stock_votes} stock");
    assert!(
        redcell_votes >= 2 && redcell_votes + stock_votes >= 4,
        "{redcell_votes} redcell and {stock_votes} stock votes"
    );
    // Every live node serves: the cluster is whole again.
    wait_for(
        "cluster_state:ok everywhere",
        Duration::from_secs(20),
        || {
            masters
                .iter()
                .chain(&replicas)
                .filter(|n| n.child.is_some())
                .all(|n| n.state_ok())
        },
    );
    // A key of the failed-over slots is written through the new master.
    let slot: u16 = victim_slots[0]
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a slot");
    let key = common::cluster::key_for_slot(slot);
    assert_eq!(heir.cmd(&["SET", &key, "after"]), "OK");
    for n in masters.iter().filter(|n| !n.stock) {
        let reply = common::cluster::rcall(&mut Raw::connect(n.port), &["GET", &key]);
        assert_eq!(
            reply,
            format!("-MOVED {slot} {}\r\n", heir.addr()),
            "{}",
            n.port
        );
    }
}

// ---------------------------------------------------------------------------------------
// (b) One vote per epoch, across a restart

#[test]
fn votes_once_per_epoch_even_across_a_restart() {
    let (mut x, m, mut r) = voting_cluster();
    let mut r2 = Fake::replica(b's', m.name(), &m.role());
    r2.join(&x);
    fail_master(&x, &m, &mut r);
    let (rid, r2id) = (r.id(), r2.id());

    // Epoch 6: granted, on disk before the ACK arrives.
    let from = r.received();
    r.request_vote(6, |_| {});
    let ack = r
        .wait_msg(from, Duration::from_secs(5), |theirs, m| {
            theirs && m.payload == Payload::FailoverAuthAck
        })
        .unwrap_or_else(|| panic!("no vote:\n{}", x.logs()));
    assert_eq!(
        conf_vars(&x),
        (6, 6),
        "lastVoteEpoch fsynced before the ACK"
    );
    assert_eq!(ack.header.current_epoch, 6);
    assert_eq!(ack.header.sender.to_string(), x.myid());
    wait_log(&x, &format!("Failover auth granted to {rid} for epoch 6"));

    // The same epoch again, from the same replica or another one: no second vote.
    let (from, from2) = (r.received(), r2.received());
    r.request_vote(6, |_| {});
    r2.request_vote(6, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {r2id}: already voted for epoch 6"),
    );
    wait_log(
        &x,
        &format!("Failover auth denied to {rid}: already voted for epoch 6"),
    );
    std::thread::sleep(QUIET);
    assert!(r.acks(from).is_empty() && r2.acks(from2).is_empty());

    // kill -9 and restart: lastVoteEpoch comes back from nodes.conf (voted_time does not).
    x.kill();
    x.spawn();
    assert_eq!(conf_vars(&x), (6, 6));
    let from = r.received();
    r.connect(&x);
    r2.connect(&x);
    r.send(Payload::Ping(Ping::default()), |_| {});
    // The restarted node links to us again (its PING on its own link).
    r.wait_msg(from, Duration::from_secs(10), |theirs, m| {
        theirs && matches!(m.payload, Payload::Ping(_))
    })
    .unwrap_or_else(|| panic!("x never linked back to r:\n{}", x.logs()));
    assert!(x.flags_of(&m.id()).is_some_and(|f| f.contains("fail")));
    let from = r.received();
    r.request_vote(6, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {rid}: already voted for epoch 6"),
    );
    std::thread::sleep(QUIET);
    assert!(r.acks(from).is_empty(), "voted twice in epoch 6");
    assert_eq!(conf_vars(&x), (6, 6));

    // A new epoch gets a vote (the restart forgot when we last voted for m's replicas, as
    // Redis does), and then the 2 x node timeout rule holds for the next one.
    let from = r.received();
    r.request_vote(7, |_| {});
    r.wait_msg(from, Duration::from_secs(5), |theirs, m| {
        theirs && m.payload == Payload::FailoverAuthAck && m.header.current_epoch == 7
    })
    .unwrap_or_else(|| panic!("no vote in epoch 7:\n{}", x.logs()));
    assert_eq!(conf_vars(&x), (7, 7));
    let from = r2.received();
    r2.request_vote(8, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {r2id}: can't vote about this master before"),
    );
    std::thread::sleep(QUIET);
    assert!(r2.acks(from).is_empty());
    assert_eq!(conf_vars(&x), (8, 7));
}

// ---------------------------------------------------------------------------------------
// (c) Forged requests change nothing

#[test]
fn forged_auth_requests_change_nothing() {
    let (x, mut m, mut r) = voting_cluster();
    let mut orphan = Fake::replica(b'o', NodeName([b'q'; 40]), &m.role());
    orphan.join(&x);
    let (mid, rid, oid) = (m.id(), r.id(), orphan.id());
    let marks = |fakes: &[&Fake]| fakes.iter().map(|f| f.received()).collect::<Vec<_>>();
    let no_acks = |fakes: &[&Fake], marks: &[usize]| {
        std::thread::sleep(QUIET);
        for (f, &from) in fakes.iter().zip(marks) {
            assert!(f.acks(from).is_empty(), "{} got a vote", f.id());
        }
    };

    // Its master is up (and not even PFAIL), no FORCEACK. A newer epoch from a known node
    // still raises ours, as Redis does on any message.
    let start = marks(&[&r, &m, &orphan]);
    r.request_vote(6, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {rid}: its master is up"),
    );
    // A master asks.
    m.request_vote(6, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {mid}: it is a master node"),
    );
    // A replica of a master nobody knows.
    orphan.request_vote(6, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {oid}: I don't know its master"),
    );
    // An unknown sender, on a link of its own: ignored entirely, its epoch too.
    let mut stranger = Fake::replica(b'u', m.name(), &m.role());
    stranger.connect(&x);
    stranger.request_vote(50, |h| h.mflags[0] |= mflag::FORCEACK);
    no_acks(
        &[&r, &m, &orphan, &stranger],
        &[start[0], start[1], start[2], 0],
    );
    assert!(!x.logs().contains(&stranger.id()), "{}", x.logs());
    assert_eq!(info_field(&x, "cluster_current_epoch"), "6");
    assert_eq!(conf_vars(&x), (6, 0));

    fail_master(&x, &m, &mut r);
    let start = marks(&[&r]);
    // An old epoch.
    r.request_vote(5, |_| {});
    wait_log(
        &x,
        &format!("Failover auth denied to {rid}: reqEpoch (5) < curEpoch(6)"),
    );
    // Slots served at a newer config epoch than the request's: one of x's (epoch 5), in a
    // request at config epoch 3.
    r.request_vote(6, |h| h.myslots.set(100, true));
    wait_log(
        &x,
        &format!("Failover auth denied to {rid}: slot 100 epoch (5) > reqEpoch (3)"),
    );
    no_acks(&[&r], &start);
    assert_eq!(conf_vars(&x).1, 0, "lastVoteEpoch moved");
    assert_eq!(info_field(&x, "cluster_current_epoch"), "6");
    assert_eq!(
        info_field(&x, "cluster_stats_messages_auth-ack_sent"),
        "",
        "an ACK was sent"
    );

    // The same replica asking properly gets the vote: the refusals were the rules'.
    let from = r.received();
    r.request_vote(6, |_| {});
    r.wait_msg(from, Duration::from_secs(5), |theirs, m| {
        theirs && m.payload == Payload::FailoverAuthAck
    })
    .unwrap_or_else(|| panic!("no vote:\n{}", x.logs()));
    assert_eq!(conf_vars(&x), (6, 6));
    assert_eq!(info_field(&x, "cluster_stats_messages_auth-ack_sent"), "1");
}

/// A redcell replica counts a FAILOVER_AUTH_ACK only in an election it started, from a master
/// serving slots, at the election's epoch or later, once per master: forged ACKs (with no
/// election, from a replica, a master without slots, an unknown sender, at an older epoch, a
/// repeat) never promote it; the genuine second vote of three masters does.
#[test]
fn forged_auth_acks_change_nothing() {
    let r = Node::redcell();
    assert_eq!(
        r.cmd(&["CONFIG", "SET", "cluster-replica-validity-factor", "0"]),
        "OK",
        "its fake master never sends data: no data-age limit"
    );
    let mut m = Fake::master(b'm', 0..5461, 1, 3);
    let mut v = Fake::master(b'v', 5461..10923, 2, 3);
    let mut w = Fake::master(b'w', 10923..16384, 3, 3);
    let mut empty = Fake::master(b'e', 0..0, 0, 3);
    let mut replica = Fake::replica(b's', v.name(), &v.role());
    for f in [&mut m, &mut v, &mut w, &mut empty, &mut replica] {
        f.join(&r);
    }
    let (rid, mid) = (r.myid(), m.id());
    assert_eq!(r.cmd(&["CLUSTER", "REPLICATE", &mid]), "OK");
    let is_master = || {
        r.flags_of(&rid)
            .is_some_and(|f| f.split(',').any(|f| f == "master"))
    };
    wait_for("r to be m's replica", Duration::from_secs(10), || {
        r.flags_of(&rid)
            .is_some_and(|f| f.split(',').any(|f| f == "slave"))
    });
    let ack = |f: &mut Fake, epoch: u64| {
        f.send(Payload::FailoverAuthAck, |h| h.current_epoch = epoch);
    };

    // No election: votes from every master change nothing.
    for f in [&mut m, &mut v, &mut w] {
        ack(f, 4);
    }
    std::thread::sleep(QUIET);
    assert!(!is_master(), "{}", r.logs());

    // m fails; r starts an election, asking everyone.
    let from = v.received();
    m.s.answer.store(false, Ordering::Relaxed);
    v.send(Payload::Fail(m.name()), |_| {});
    let request = v
        .wait_msg(from, Duration::from_secs(5), |_, msg| {
            msg.payload == Payload::FailoverAuthRequest
        })
        .unwrap_or_else(|| panic!("no election:\n{}", r.logs()));
    let epoch = request.header.current_epoch;
    // Forged: an older epoch, a replica, a master without slots, a node r does not know; then
    // v's genuine vote twice. One vote of the two needed.
    ack(&mut v, epoch - 1);
    ack(&mut replica, epoch);
    ack(&mut empty, epoch);
    let mut stranger = Fake::master(b'u', 0..16384, 9, epoch);
    stranger.connect(&r);
    ack(&mut stranger, epoch);
    ack(&mut v, epoch);
    ack(&mut v, epoch);
    std::thread::sleep(QUIET);
    assert!(!is_master(), "won on forged votes:\n{}", r.logs());
    assert!(!r.logs().contains("Failover election won"), "{}", r.logs());

    // The second master's vote, in the same election, wins it.
    ack(&mut w, epoch);
    wait_for("r elected", Duration::from_secs(5), is_master);
    wait_log(&r, "Failover election won: I'm the new master.");
    assert_eq!(info_field(&r, "cluster_my_epoch"), epoch.to_string());
}

/// A master we hear turned replica serves nothing any more: its slots are unassigned at once
/// (`clusterDelNodeSlots`), until their new owner claims them at a newer config epoch.
#[test]
fn a_master_turned_replica_loses_its_slots_at_once() {
    let (x, mut m, mut r) = voting_cluster();
    let (mid, rid) = (m.id(), r.id());
    assert_eq!(info_field(&x, "cluster_slots_assigned"), "16384");
    // m says it is r's replica (r won a failover x has not heard of yet).
    {
        let mut role = m.s.role.lock().unwrap();
        role.flags = node_flag::SLAVE | node_flag::MYSELF;
        role.replicaof = r.name();
    }
    m.send(Payload::Ping(Ping::default()), |_| {});
    wait_for("x to see m as r's replica", Duration::from_secs(5), || {
        x.cmd(&["CLUSTER", "NODES"])
            .lines()
            .any(|l| l.starts_with(&mid) && l.contains(&format!(" slave {rid} ")))
    });
    assert_eq!(info_field(&x, "cluster_slots_assigned"), "8192");
    assert!(
        !x.cmd(&["CLUSTER", "NODES"])
            .lines()
            .any(|l| l.contains("8192-16383")),
        "nobody serves m's slots yet"
    );
    // r claims them at a newer config epoch.
    {
        let mut role = r.s.role.lock().unwrap();
        role.flags = node_flag::MASTER | node_flag::MYSELF;
        role.replicaof = NodeName::NULL;
        role.config_epoch = 6;
        role.current_epoch = 6;
    }
    r.send(Payload::Ping(Ping::default()), |_| {});
    wait_for("r to own m's old slots", Duration::from_secs(5), || {
        x.cmd(&["CLUSTER", "NODES"])
            .lines()
            .any(|l| l.starts_with(&rid) && l.contains(" master ") && l.ends_with("8192-16383"))
    });
    assert_eq!(info_field(&x, "cluster_slots_assigned"), "16384");
}

// ---------------------------------------------------------------------------------------
// (d) MFSTART

#[test]
fn mfstart_from_our_replica_pauses_writes_on_every_core() {
    let x = Node::redcell();
    x.cmd(&["CLUSTER", "SET-CONFIG-EPOCH", "1"]);
    x.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    wait_for("cluster_state:ok", Duration::from_secs(10), || x.state_ok());
    let xname = NodeName::from_bytes(x.myid().as_bytes()).expect("id");
    let x_role = Role {
        flags: node_flag::MASTER,
        replicaof: NodeName::NULL,
        myslots: bitmap(0..16384),
        config_epoch: 1,
        current_epoch: 1,
    };
    let mut ours = Fake::replica(b'r', xname, &x_role);
    let mut other = Fake::master(b'o', 0..0, 0, 1);
    let mut theirs = Fake::replica(b't', other.name(), &other.role());
    ours.join(&x);
    other.join(&x);
    theirs.join(&x);
    let (rid, xid) = (ours.id(), x.myid());
    wait_for(
        "x to know r as its replica",
        Duration::from_secs(10),
        || {
            x.cmd(&["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.starts_with(&rid) && l.contains(&format!(" slave {xid} ")))
        },
    );
    let clients = |n: usize| (0..n).map(|_| Raw::connect(x.port)).collect::<Vec<_>>();
    // Keys on both shards; enough connections that the kernel spreads them over both cores.
    let keys: Vec<String> = (0..2)
        .map(|shard| common::key_on_shard("k", shard, 2))
        .collect();

    // MFSTART from a master, and from another master's replica: ignored.
    for (i, f) in [&mut other, &mut theirs].into_iter().enumerate() {
        let from = f.received();
        f.send(Payload::MfStart, |_| {});
        let mut w = Raw::connect(x.port);
        assert_eq!(
            common::cluster::rcall(&mut w, &["SET", &keys[i], "v"]),
            "+OK\r\n"
        );
        assert!(
            f.wait_msg(from, QUIET, |_, m| m.header.mflags[0] & mflag::PAUSED != 0)
                .is_none(),
            "PAUSED after an MFSTART from {}",
            f.id()
        );
    }
    assert!(
        !x.logs().contains("Manual failover requested"),
        "{}",
        x.logs()
    );

    // From our replica: a PING back on the same link at once, PAUSED, our offset (0).
    let from = ours.received();
    ours.send(Payload::MfStart, |_| {});
    let started = Instant::now();
    let ping = ours
        .wait_msg(from, Duration::from_secs(2), |theirs, m| {
            !theirs && matches!(m.payload, Payload::Ping(_))
        })
        .unwrap_or_else(|| panic!("no PING on the MFSTART's link:\n{}", x.logs()));
    assert_ne!(
        ping.header.mflags[0] & mflag::PAUSED,
        0,
        "{:?}",
        ping.header
    );
    assert_eq!(ping.header.offset, 0);
    wait_log(&x, &format!("Manual failover requested by replica {rid}."));

    // Writes wait on every core; reads, and writes the gate refuses anyway, answer at once.
    let mut writers = clients(8);
    for (i, w) in writers.iter_mut().enumerate() {
        let key = keys[i % 2].as_bytes();
        w.send_cmd(&[b"SET", key, b"paused"]);
    }
    let mut readers = clients(8);
    for (i, rd) in readers.iter_mut().enumerate() {
        let t = Instant::now();
        let reply = rd.call(&[b"GET", keys[i % 2].as_bytes()]);
        assert_eq!(reply, b"$1\r\nv\r\n".to_vec());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(rd.call(&[b"PING"]), b"+PONG\r\n".to_vec());
        let crossslot = rd.call(&[b"MSET", b"{a}1", b"x", b"{b}1", b"y"]);
        assert!(crossslot.starts_with(b"-CROSSSLOT"), "{crossslot:?}");
    }
    for w in writers.iter_mut() {
        w.expect_silence(Duration::from_millis(200));
    }
    // Our headers carry PAUSED meanwhile: the cron pings the replica on our own link, and
    // answers to other nodes are flagged too.
    let cron_ping = ours.wait_msg(from, Duration::from_secs(2), |theirs, m| {
        theirs && matches!(m.payload, Payload::Ping(_)) && m.header.mflags[0] & mflag::PAUSED != 0
    });
    assert!(cron_ping.is_some(), "no PAUSED ping on x's own link");
    let from_other = other.received();
    other.send(Payload::Ping(Ping::default()), |_| {});
    let pong = other
        .wait_msg(from_other, Duration::from_secs(2), |theirs, m| {
            !theirs && matches!(m.payload, Payload::Pong(_))
        })
        .expect("a PONG");
    assert_ne!(pong.header.mflags[0] & mflag::PAUSED, 0);

    // The pause ends by itself: Redis gives the failover up at mf_end (5 s) and unpauses,
    // though the pause was asked for 10 s.
    for w in writers.iter_mut() {
        assert_eq!(w.read_reply(), b"+OK\r\n".to_vec());
    }
    let waited = started.elapsed();
    eprintln!("writes held {waited:?} after MFSTART");
    assert!(
        waited >= Duration::from_millis(4500) && waited < Duration::from_millis(8000),
        "{waited:?}"
    );
    wait_log(&x, "Manual failover timed out.");
    for key in &keys {
        assert_eq!(x.cmd(&["GET", key]), "paused", "the held write ran");
    }
    let mut w = Raw::connect(x.port);
    let t = Instant::now();
    assert_eq!(
        common::cluster::rcall(&mut w, &["SET", &keys[1], "w"]),
        "+OK\r\n"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    let from_other = other.received();
    other.send(Payload::Ping(Ping::default()), |_| {});
    let pong = other
        .wait_msg(from_other, Duration::from_secs(2), |theirs, m| {
            !theirs && matches!(m.payload, Payload::Pong(_))
        })
        .expect("a PONG");
    assert_eq!(pong.header.mflags[0] & mflag::PAUSED, 0);
    assert_eq!(
        info_field(&x, "cluster_stats_messages_mfstart_received"),
        "3"
    );
}

/// The end of a manual failover as the old master sees it: while writes are held, the
/// replica announces itself master of our slots at a newer config epoch. The pause ends at
/// once and the held write is routed afresh: MOVED to the new master, as Redis re-runs a
/// paused client's command.
#[test]
fn held_write_is_redirected_when_the_replica_takes_over() {
    let x = Node::redcell();
    x.cmd(&["CLUSTER", "SET-CONFIG-EPOCH", "1"]);
    x.cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    wait_for("cluster_state:ok", Duration::from_secs(10), || x.state_ok());
    let xname = NodeName::from_bytes(x.myid().as_bytes()).expect("id");
    let x_role = Role {
        flags: node_flag::MASTER,
        replicaof: NodeName::NULL,
        myslots: bitmap(0..16384),
        config_epoch: 1,
        current_epoch: 1,
    };
    let mut r = Fake::replica(b'r', xname, &x_role);
    r.join(&x);
    let (rid, xid) = (r.id(), x.myid());
    wait_for(
        "x to know r as its replica",
        Duration::from_secs(10),
        || {
            x.cmd(&["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.starts_with(&rid) && l.contains(&format!(" slave {xid} ")))
        },
    );
    r.send(Payload::MfStart, |_| {});
    wait_log(&x, &format!("Manual failover requested by replica {rid}."));
    let key = common::key_on_shard("k", 1, 2);
    let slot = redcell::slot::key_slot(key.as_bytes());
    let mut w = Raw::connect(x.port);
    w.send_cmd(&[b"SET", key.as_bytes(), b"v"]);
    w.expect_silence(Duration::from_millis(300));
    // The replica won (epoch 2): it now claims our slots as a master.
    {
        let mut role = r.s.role.lock().unwrap();
        role.flags = node_flag::MASTER | node_flag::MYSELF;
        role.replicaof = NodeName::NULL;
        role.config_epoch = 2;
        role.current_epoch = 2;
    }
    let held = Instant::now();
    r.send(Payload::Pong(Ping::default()), |_| {});
    let reply = String::from_utf8_lossy(&w.read_reply()).into_owned();
    assert_eq!(reply, format!("-MOVED {slot} 127.0.0.1:1\r\n"));
    assert!(
        held.elapsed() < Duration::from_secs(2),
        "{:?}",
        held.elapsed()
    );
    let line = x
        .cmd(&["CLUSTER", "NODES"])
        .lines()
        .find(|l| l.starts_with(&rid))
        .map(String::from)
        .expect("r");
    assert!(
        line.contains(" master - ") && line.ends_with(" 2 connected 0-16383"),
        "{line}"
    );
    // Nothing is paused any more: no PAUSED flag on our answer to a ping.
    let from = r.received();
    r.send(Payload::Ping(Ping::default()), |_| {});
    let pong = r
        .wait_msg(from, Duration::from_secs(2), |theirs, m| {
            !theirs && matches!(m.payload, Payload::Pong(_))
        })
        .expect("a PONG");
    assert_eq!(pong.header.mflags[0] & mflag::PAUSED, 0);
}
