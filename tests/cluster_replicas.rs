//! Cluster replicas beside stock nodes: CLUSTER REPLICATE (through `redis-cli --cluster
//! add-node --cluster-slave` and `create --cluster-replicas 1`) in both directions, a redcell
//! replica of a stock master and a stock replica of a redcell master; replicas show as
//! `slave <master-id>` everywhere, acknowledge writes (WAIT), serve READONLY reads of their
//! master's slots and redirect everything else; CLUSTER REPLICATE's refusals as stock words
//! them; a redcell replica follows the sibling that won its dead master's slots. Failovers
//! (kill -9 both ways, CLUSTER FAILOVER [FORCE|TAKEOVER], rank by offset) under a counting
//! writer, and replica migration to orphaned and new masters.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{check_from_all, cli, create, wait_for, Node};
use common::Raw;

/// These tests start five to six nodes each and time elections: run one at a time, so that
/// two cores are not shared by thirty servers.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns replica migration off on `nodes` (CONFIG SET cluster-allow-replica-migration no):
/// with two replicas on one master and masters with none, Redis moves one replica away
/// (stock flags every master that gains a slot while others have replicas as a migration
/// target), which tests about something else must not see.
fn no_migration(nodes: &[&Node]) {
    for n in nodes {
        assert_eq!(
            n.cmd(&["CONFIG", "SET", "cluster-allow-replica-migration", "no"]),
            "OK"
        );
    }
}

/// Waits until each of `nodes` knows all of them, linked, with the cluster ok, and each of
/// `replicas` is in sync with its master.
fn wait_joined(nodes: &[&Node], replicas: &[&Node]) {
    wait_for(
        "every node linked, the replicas in sync",
        Duration::from_secs(40),
        || {
            nodes.iter().all(|n| {
                n.try_cmd(&["CLUSTER", "NODES"]).is_some_and(|t| {
                    t.lines().count() == nodes.len() && t.lines().all(|l| l.contains(" connected"))
                }) && n.state_ok()
            }) && replicas.iter().all(|r| replica_synced(r))
        },
    );
}

/// Sends one command; the reply as text.
fn call(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.call(&args)).into_owned()
}

/// `redis-cli --cluster add-node NEW EXISTING --cluster-slave --cluster-master-id ID`.
fn add_replica(replica: &Node, master: &Node) {
    let master_id = master.myid();
    let out = cli(&[
        "--cluster",
        "add-node",
        &replica.addr(),
        &master.addr(),
        "--cluster-slave",
        "--cluster-master-id",
        &master_id,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[OK] New node added correctly."), "{text}");
}

/// The master column of `id`'s line in `node`'s CLUSTER NODES, with its flags.
fn role_in(node: &Node, id: &str) -> Option<(String, String)> {
    let nodes = node.try_cmd(&["CLUSTER", "NODES"])?;
    let line = nodes.lines().find(|l| l.starts_with(id))?;
    let cols: Vec<&str> = line.split(' ').collect();
    Some((cols.get(2)?.to_string(), cols.get(3)?.to_string()))
}

/// Whether `node`'s replication follows `master` with its link up.
fn follows(node: &Node, master: &Node) -> bool {
    node.try_cmd(&["INFO", "replication"]).is_some_and(|i| {
        i.contains(&format!("master_port:{}", master.port)) && i.contains("master_link_status:up")
    })
}

/// A replica is in sync when its link is up and it has applied something.
fn replica_synced(n: &Node) -> bool {
    n.try_cmd(&["INFO", "replication"])
        .is_some_and(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
}

/// A minimal cluster writer: SET through one node, following MOVED to the owner, then WAIT
/// for one replica there. Returns the owner's port and the WAIT count.
struct Writer {
    conns: HashMap<u16, Raw>,
    entry: u16,
}

impl Writer {
    fn conn(&mut self, port: u16) -> &mut Raw {
        self.conns.entry(port).or_insert_with(|| Raw::connect(port))
    }

    fn set_and_wait(&mut self, key: &str, value: &str) -> (u16, i64) {
        let mut port = self.entry;
        for _ in 0..3 {
            let reply = call(self.conn(port), &["SET", key, value]);
            if let Some(rest) = reply.strip_prefix("-MOVED ") {
                let addr = rest.trim().split(' ').nth(1).expect("MOVED address");
                port = addr.rsplit(':').next().unwrap().parse().expect("port");
                continue;
            }
            assert_eq!(reply, "+OK\r\n", "SET {key}");
            let waited = call(self.conn(port), &["WAIT", "1", "2000"]);
            let n = waited
                .trim_start_matches(':')
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("WAIT: {waited}"));
            return (port, n);
        }
        panic!("{key}: too many redirections");
    }
}

/// Stock master with a redcell replica, redcell master with a stock replica, redcell master
/// with a redcell replica.
#[test]
fn mixed_replicas_sync_serve_readonly_reads_and_redirect_writes() {
    let _serial = one_at_a_time();
    let masters = [Node::stock(), Node::redcell(), Node::redcell()];
    create(&masters.iter().collect::<Vec<_>>());
    let replicas = [Node::redcell(), Node::stock(), Node::redcell()];
    for (r, m) in replicas.iter().zip(&masters) {
        add_replica(r, m);
    }
    let all: Vec<&Node> = masters.iter().chain(&replicas).collect();
    let ids: Vec<String> = all.iter().map(|n| n.myid()).collect();
    wait_joined(&all, &replicas.iter().collect::<Vec<_>>());
    // Every node sees each replica as `slave <its master>`.
    for n in &all {
        for (r, m) in replicas.iter().zip(&masters) {
            let (flags, master) = role_in(n, &r.myid()).expect("replica listed");
            assert!(flags.contains("slave"), "{flags} on {}", n.port);
            assert_eq!(master, m.myid(), "master of {} on {}", r.port, n.port);
        }
    }
    check_from_all(&all);

    // Writes acknowledged by the replica of their master.
    let mut w = Writer {
        conns: HashMap::new(),
        entry: masters[0].port,
    };
    let mut written: Vec<(String, String, u16)> = Vec::new();
    for i in 0..300 {
        let (key, value) = (format!("key:{i}"), format!("v{i}"));
        let (port, acked) = w.set_and_wait(&key, &value);
        assert_eq!(acked, 1, "WAIT after SET {key} on {port}");
        written.push((key, value, port));
    }
    for (m, r) in masters.iter().zip(&replicas) {
        assert!(
            written.iter().any(|(_, _, p)| *p == m.port),
            "no key on {}",
            m.port
        );
        let mut plain = Raw::connect(r.port);
        let mut ro = Raw::connect(r.port);
        assert_eq!(call(&mut ro, &["READONLY"]), "+OK\r\n");
        for (key, value, _) in written.iter().filter(|(_, _, p)| *p == m.port) {
            // READONLY reads are served from the replica's own data.
            assert_eq!(
                call(&mut ro, &["GET", key]),
                format!("${}\r\n{value}\r\n", value.len()),
                "READONLY GET {key} on replica {}",
                r.port
            );
            // Without READONLY, and for writes even with it: to the master.
            let moved = call(&mut plain, &["GET", key]);
            assert!(
                moved.starts_with("-MOVED ") && moved.trim_end().ends_with(&m.addr()),
                "{moved}"
            );
            let write = call(&mut ro, &["SET", key, "x"]);
            assert!(write.starts_with("-MOVED "), "{write}");
        }
        // READWRITE ends it.
        assert_eq!(call(&mut ro, &["READWRITE"]), "+OK\r\n");
        let (key, _, _) = written.iter().find(|(_, _, p)| *p == m.port).unwrap();
        assert!(call(&mut ro, &["GET", key]).starts_with("-MOVED "));
    }
    // Our replica's replication and cluster views.
    let ours = &replicas[0];
    let info = ours.cmd(&["INFO", "replication"]);
    assert!(
        info.contains(&format!("master_port:{}", masters[0].port)),
        "{info}"
    );
    let shards = ours.cmd(&["CLUSTER", "SHARDS"]);
    assert!(
        shards.contains(&ours.myid()) && shards.contains("replica"),
        "{shards}"
    );
    let listed = masters[1].cmd(&["CLUSTER", "REPLICAS", &masters[1].myid()]);
    assert!(
        listed.contains(&replicas[1].myid()) && listed.contains("slave"),
        "{listed}"
    );
    // CLUSTER SLOTS lists the synced replicas.
    let slots = ours.cmd(&["CLUSTER", "SLOTS"]);
    for id in &ids {
        assert!(
            slots.contains(id.as_str()),
            "{id} missing from CLUSTER SLOTS:\n{slots}"
        );
    }
}

/// `redis-cli --cluster create --cluster-replicas 1` over redcell nodes only.
#[test]
fn cluster_create_with_replicas_over_redcell_nodes() {
    let _serial = one_at_a_time();
    let nodes: Vec<Node> = (0..6).map(|_| Node::redcell()).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
    let out = cli(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
    let all: Vec<&Node> = nodes.iter().collect();
    wait_for("three replicas in sync", Duration::from_secs(40), || {
        nodes.iter().filter(|n| replica_synced(n)).count() == 3
    });
    check_from_all(&all);
    let masters = nodes[0].cmd(&["CLUSTER", "NODES"]);
    assert_eq!(masters.lines().filter(|l| l.contains("master")).count(), 3);
    assert_eq!(masters.lines().filter(|l| l.contains("slave")).count(), 3);
}

/// CLUSTER REPLICATE's refusals, byte-compared with a stock node in the same position.
#[test]
fn cluster_replicate_refusals_match_stock() {
    let _serial = one_at_a_time();
    let (stock, ours, third) = (Node::stock(), Node::redcell(), Node::stock());
    create(&[&stock, &ours, &third]);
    let replica = Node::redcell();
    no_migration(&[&replica]);
    add_replica(&replica, &ours);
    wait_for("the replica in sync", Duration::from_secs(30), || {
        replica_synced(&replica)
    });
    let (sid, oid, rid) = (stock.myid(), ours.myid(), replica.myid());
    let mut s = Raw::connect(stock.port);
    let mut o = Raw::connect(ours.port);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        // Each side names the other, itself, the replica, an unknown node.
        (
            vec!["CLUSTER", "REPLICATE", &oid],
            vec!["CLUSTER", "REPLICATE", &sid],
        ),
        (
            vec!["CLUSTER", "REPLICATE", &sid],
            vec!["CLUSTER", "REPLICATE", &oid],
        ),
        (
            vec!["CLUSTER", "REPLICATE", &rid],
            vec!["CLUSTER", "REPLICATE", &rid],
        ),
        (
            vec![
                "CLUSTER",
                "REPLICATE",
                "0123456789012345678901234567890123456789",
            ],
            vec![
                "CLUSTER",
                "REPLICATE",
                "0123456789012345678901234567890123456789",
            ],
        ),
        (
            vec!["CLUSTER", "REPLICATE", "x"],
            vec!["CLUSTER", "REPLICATE", "x"],
        ),
        (vec!["CLUSTER", "REPLICATE"], vec!["CLUSTER", "REPLICATE"]),
        (
            vec!["REPLICAOF", "127.0.0.1", "1"],
            vec!["REPLICAOF", "127.0.0.1", "1"],
        ),
    ];
    for (on_stock, on_ours) in cases {
        let want = call(&mut s, &on_stock);
        let got = call(&mut o, &on_ours);
        assert!(want.starts_with('-'), "{on_stock:?}: {want}");
        assert_eq!(got, want, "{on_ours:?}");
    }
    // A master without slots or keys is accepted, and a replica may switch masters.
    let spare = Node::redcell();
    no_migration(&[&spare]);
    let out = cli(&["--cluster", "add-node", &spare.addr(), &ours.addr()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[OK] New node added correctly."));
    wait_for("the spare known to it", Duration::from_secs(20), || {
        spare
            .try_cmd(&["CLUSTER", "NODES"])
            .is_some_and(|t| t.contains(&sid) && t.contains(&oid))
    });
    let mut sp = Raw::connect(spare.port);
    assert_eq!(call(&mut sp, &["CLUSTER", "REPLICATE", &sid]), "+OK\r\n");
    wait_for(
        "the spare follows the stock master",
        Duration::from_secs(30),
        || {
            replica_synced(&spare)
                && spare
                    .try_cmd(&["INFO", "replication"])
                    .is_some_and(|i| i.contains(&format!("master_port:{}", stock.port)))
        },
    );
    assert_eq!(call(&mut sp, &["CLUSTER", "REPLICATE", &oid]), "+OK\r\n");
    wait_for(
        "the spare follows our master",
        Duration::from_secs(30),
        || {
            spare.try_cmd(&["INFO", "replication"]).is_some_and(|i| {
                i.contains(&format!("master_port:{}", ours.port))
                    && i.contains("master_link_status:up")
            })
        },
    );
    wait_for(
        "the stock node sees the switch",
        Duration::from_secs(20),
        || role_in(&stock, &spare.myid()).is_some_and(|(f, m)| f.contains("slave") && m == oid),
    );
}

/// A stock master with a stock and a redcell replica dies: the stock replica wins the
/// election (ours stands aside: `cluster-replica-no-failover yes`, which flags it NOFAILOVER
/// for the others too), our replica sees its master's slots go to it, follows it with a
/// partial resync, and every write both replicas acknowledged (WAIT 2) is there on both.
#[test]
fn our_replica_follows_the_sibling_that_replaced_its_master() {
    let _serial = one_at_a_time();
    let mut masters = [Node::stock(), Node::stock(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let (heir, ours) = (Node::stock(), Node::redcell());
    no_migration(&[&heir, &ours]);
    add_replica(&heir, &masters[0]);
    add_replica(&ours, &masters[0]);
    ours.cmd(&["CONFIG", "SET", "cluster-replica-no-failover", "yes"]);
    let ours_id = ours.myid();
    wait_for(
        "our replica flagged nofailover",
        Duration::from_secs(20),
        || role_in(&heir, &ours_id).is_some_and(|(f, _)| f.contains("nofailover")),
    );
    wait_joined(
        &masters.iter().chain([&heir, &ours]).collect::<Vec<_>>(),
        &[&heir, &ours],
    );
    let victim_port = masters[0].port;
    let mut master = Raw::connect(victim_port);
    let mut acked = Vec::new();
    let keys = keys_served_by(&masters[0], 200);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(call(&mut master, &["SET", key, &i.to_string()]), "+OK\r\n");
        let waited = call(&mut master, &["WAIT", "2", "2000"]);
        if waited == ":2\r\n" {
            acked.push((key.clone(), i.to_string()));
        }
    }
    assert_eq!(
        acked.len(),
        keys.len(),
        "both replicas acknowledge every write"
    );
    drop(master);
    let heir_id = heir.myid();
    masters[0].kill();
    wait_for(
        "the stock replica promoted",
        Duration::from_secs(30),
        || role_in(&heir, &heir_id).is_some_and(|(f, _)| f.contains("master")),
    );
    wait_for(
        "our replica following the new master",
        Duration::from_secs(30),
        || {
            ours.try_cmd(&["INFO", "replication"]).is_some_and(|i| {
                i.contains(&format!("master_port:{}", heir.port))
                    && i.contains("master_link_status:up")
            }) && role_in(&ours, &ours.myid()).is_some_and(|(_, m)| m == heir_id)
        },
    );
    let log = ours.logs();
    assert!(
        log.contains(&format!(
            "Configuration change detected. Reconfiguring myself as a replica of {heir_id}"
        )),
        "{log}"
    );
    assert!(
        log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    let mut h = Raw::connect(heir.port);
    let mut o = Raw::connect(ours.port);
    assert_eq!(call(&mut o, &["READONLY"]), "+OK\r\n");
    for (key, value) in &acked {
        let want = format!("${}\r\n{value}\r\n", value.len());
        assert_eq!(call(&mut h, &["GET", key]), want, "{key} on the new master");
        assert_eq!(call(&mut o, &["GET", key]), want, "{key} on our replica");
    }
    // The stock nodes see our replica under its new master.
    for n in masters[1..].iter().chain([&heir]) {
        wait_for(
            "our replica listed under the new master",
            Duration::from_secs(20),
            || role_in(n, &ours.myid()).is_some_and(|(f, m)| f.contains("slave") && m == heir_id),
        );
    }
}

/// The epoch column of `id`'s line in `node`'s CLUSTER NODES.
fn epoch_in(node: &Node, id: &str) -> Option<u64> {
    let nodes = node.try_cmd(&["CLUSTER", "NODES"])?;
    let line = nodes.lines().find(|l| l.starts_with(id))?;
    line.split(' ').nth(6)?.parse().ok()
}

/// Three stock masters, a redcell replica of the first, a counting writer (INCR and RPUSH,
/// WAIT 1 after each): kill -9 that master and ours is elected with the stock masters' votes,
/// takes its slots at a new config epoch every node agrees on, takes writes, and the old
/// master comes back as its replica (a full sync: a restarted Redis 7.0 master keeps no cached
/// master to continue from); every write a replica acknowledged is on both.
#[test]
fn our_replica_wins_the_election_when_its_stock_master_dies() {
    let _serial = one_at_a_time();
    let mut masters = [Node::stock(), Node::stock(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let ours = Node::redcell();
    add_replica(&ours, &masters[0]);
    wait_joined(&masters.iter().chain([&ours]).collect::<Vec<_>>(), &[&ours]);
    let nodes = masters[0].cmd(&["CLUSTER", "NODES"]);
    let mine = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .expect("myself line");
    let (keys, late_key) = writer_keys(&masters[0]);
    let entry = masters.iter().chain([&ours]).map(|n| n.port).collect();
    let writer = counting_writer(entry, keys, true);
    writer.wait_for_more("writes acknowledged before the kill", 100);
    let (ours_id, victim_id) = (ours.myid(), masters[0].myid());
    masters[0].kill();
    let killed = std::time::Instant::now();
    wait_for("our replica promoted", Duration::from_secs(30), || {
        role_in(&ours, &ours_id).is_some_and(|(f, _)| f.contains("master"))
    });
    let promoted = killed.elapsed();
    let epoch = epoch_in(&ours, &ours_id).expect("our epoch");
    let log = ours.logs();
    for line in [
        "Start of election delayed for",
        "Starting a failover election for epoch",
        "Failover election won: I'm the new master.",
    ] {
        assert!(log.contains(line), "{line}:\n{log}");
    }
    // Both stock masters voted for us, and agree on our epoch and on the slots we took.
    let node_timeout: u64 = common::cluster::NODE_TIMEOUT_MS.parse().unwrap();
    for m in &masters[1..] {
        wait_for(
            "a stock master agreeing on the new master",
            Duration::from_millis(node_timeout + 2000),
            || {
                role_in(m, &ours_id).is_some_and(|(f, _)| f.contains("master"))
                    && epoch_in(m, &ours_id) == Some(epoch)
                    && m.try_cmd(&["CLUSTER", "NODES"]).is_some_and(|t| {
                        let line = t.lines().find(|l| l.starts_with(&ours_id)).unwrap_or("");
                        line.split(' ').skip(8).collect::<Vec<_>>()
                            == mine.split(' ').skip(8).collect::<Vec<_>>()
                    })
            },
        );
        let log = m.logs();
        assert!(
            log.contains(&format!(
                "Failover auth granted to {ours_id} for epoch {epoch}"
            )),
            "{log}"
        );
    }
    eprintln!("promoted {promoted:?} after the kill");
    // New writes are taken.
    let mut o = Raw::connect(ours.port);
    assert_eq!(call(&mut o, &["SET", &late_key, "after"]), "+OK\r\n");
    // The old master comes back, learns it lost its slots and follows us.
    masters[0].spawn();
    wait_for(
        "the old master following us",
        Duration::from_secs(30),
        || follows(&masters[0], &ours),
    );
    wait_for(
        "everyone sees it as our replica",
        Duration::from_secs(20),
        || {
            masters.iter().chain([&ours]).all(|n| {
                role_in(n, &victim_id).is_some_and(|(f, m)| f.contains("slave") && m == ours_id)
            })
        },
    );
    check_acked_writes(writer, &ours, &masters[0], &late_key);
    check_from_all(&masters.iter().chain([&ours]).collect::<Vec<_>>());
}

/// The reverse, under the same writer: a redcell master with a stock replica is killed -9; the
/// stock replica is elected (a redcell and a stock master vote), keeps every write it
/// acknowledged, and our old master comes back as its replica, in sync.
#[test]
fn our_dead_master_is_replaced_by_its_stock_replica_and_rejoins_as_its_replica() {
    let _serial = one_at_a_time();
    let mut masters = [Node::redcell(), Node::stock(), Node::redcell()];
    create(&masters.iter().collect::<Vec<_>>());
    let heir = Node::stock();
    add_replica(&heir, &masters[0]);
    wait_joined(&masters.iter().chain([&heir]).collect::<Vec<_>>(), &[&heir]);
    let (keys, late_key) = writer_keys(&masters[0]);
    let entry = masters.iter().chain([&heir]).map(|n| n.port).collect();
    let writer = counting_writer(entry, keys, true);
    writer.wait_for_more("writes acknowledged before the kill", 100);
    let (heir_id, old_id) = (heir.myid(), masters[0].myid());
    masters[0].kill();
    wait_for(
        "the stock replica promoted",
        Duration::from_secs(30),
        || role_in(&heir, &heir_id).is_some_and(|(f, _)| f.contains("master")),
    );
    let mut h = Raw::connect(heir.port);
    assert_eq!(call(&mut h, &["SET", &late_key, "after"]), "+OK\r\n");
    masters[0].spawn();
    wait_for(
        "our old master following the new one",
        Duration::from_secs(40),
        || follows(&masters[0], &heir),
    );
    let log = masters[0].logs();
    assert!(
        log.contains(&format!(
            "Configuration change detected. Reconfiguring myself as a replica of {heir_id}"
        )),
        "{log}"
    );
    wait_for(
        "everyone sees it as the new master's replica",
        Duration::from_secs(20),
        || {
            masters.iter().chain([&heir]).all(|n| {
                role_in(n, &old_id).is_some_and(|(f, m)| f.contains("slave") && m == heir_id)
            })
        },
    );
    check_acked_writes(writer, &heir, &masters[0], &late_key);
    check_from_all(&masters.iter().chain([&heir]).collect::<Vec<_>>());
}

/// What a counting writer had acknowledged: how many INCRs per counter key and which sequence
/// numbers RPUSHed per list key, in order.
#[derive(Default)]
struct Acked {
    incrs: HashMap<String, u64>,
    pushes: HashMap<String, Vec<u64>>,
}

impl Acked {
    /// Checks that `port` holds every acknowledged write: each counter at least its count of
    /// acknowledged INCRs and each list holding the acknowledged numbers in order (a write
    /// whose reply was lost to a failover may be there too). `exact`: nothing else is.
    fn check(&self, port: u16, readonly: bool, exact: bool) -> Result<(), String> {
        let mut con = connection(port).map_err(|e| e.to_string())?;
        if readonly {
            redis::cmd("READONLY")
                .query::<()>(&mut con)
                .map_err(|e| e.to_string())?;
        }
        for (key, &n) in &self.incrs {
            let got: Option<u64> = redis::cmd("GET")
                .arg(key)
                .query(&mut con)
                .map_err(|e| e.to_string())?;
            let got = got.unwrap_or(0);
            if got < n || (exact && got != n) {
                return Err(format!("{key} on {port}: {got}, {n} acknowledged"));
            }
        }
        for (key, acked) in &self.pushes {
            let got: Vec<u64> = redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query(&mut con)
                .map_err(|e| e.to_string())?;
            let mut rest = got.iter();
            if exact && got != *acked || !acked.iter().all(|a| rest.any(|g| g == a)) {
                return Err(format!("{key} on {port}: {got:?}, acknowledged {acked:?}"));
            }
        }
        Ok(())
    }
}

fn connection(port: u16) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
        .get_connection_with_timeout(Duration::from_secs(2))
}

/// The acceptance scenarios' writer: through a node of `entry` (following MOVED, moving to
/// another entry node when one is down, waiting out CLUSTERDOWN while a failover runs) it
/// alternates INCR of a counter and RPUSH of a sequence number onto a list over `keys`,
/// until `stop`. With `wait`, each write is followed by `WAIT 1 2000` and counts as
/// acknowledged only when a replica confirmed it; otherwise its OK is the acknowledgement.
fn counting_writer(entry: Vec<u16>, keys: Vec<String>, wait: bool) -> CountingWriter {
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let (stop_flag, count) = (stop.clone(), progress.clone());
    let thread = std::thread::spawn(move || {
        let mut acked = Acked::default();
        let (mut port, mut next_entry) = (entry[0], 1);
        let mut con: Option<redis::Connection> = None;
        let mut i = 0usize;
        while !stop_flag.load(Ordering::Relaxed) {
            let key = &keys[i % keys.len()];
            // Even keys are counters, odd ones lists.
            let counter = (i % keys.len()).is_multiple_of(2);
            if con.is_none() {
                con = connection(port).ok();
                if con.is_none() {
                    port = entry[next_entry % entry.len()];
                    next_entry += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            let c = con.as_mut().expect("connected");
            let write = if counter {
                redis::cmd("INCR").arg(key).query::<i64>(c).map(|_| ())
            } else {
                redis::cmd("RPUSH")
                    .arg(key)
                    .arg(i)
                    .query::<i64>(c)
                    .map(|_| ())
            };
            let confirmed = write.and_then(|()| {
                if !wait {
                    return Ok(true);
                }
                match redis::cmd("WAIT").arg(1).arg(2000).query::<i64>(c) {
                    Ok(n) => Ok(n >= 1),
                    // Demoted between the write and its WAIT: not confirmed (Redis answers
                    // the same on a replica).
                    Err(e) if e.to_string().contains("WAIT cannot be used with replica") => {
                        Ok(false)
                    }
                    Err(e) => Err(e),
                }
            });
            match confirmed {
                Ok(ok) => {
                    if ok {
                        if counter {
                            *acked.incrs.entry(key.clone()).or_default() += 1;
                        } else {
                            acked.pushes.entry(key.clone()).or_default().push(i as u64);
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
                Err(e) if e.kind() == redis::ErrorKind::Moved => {
                    let addr = e.redirect_node().map(|(addr, _)| addr.to_string());
                    port = addr
                        .and_then(|a| a.rsplit(':').next()?.parse().ok())
                        .expect("MOVED address");
                    con = None;
                }
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    con = None;
                    port = entry[next_entry % entry.len()];
                    next_entry += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                // A failover under way: try again shortly.
                Err(e)
                    if matches!(
                        e.kind(),
                        redis::ErrorKind::ClusterDown
                            | redis::ErrorKind::TryAgain
                            | redis::ErrorKind::BusyLoadingError
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("write {i} to {key} on {port}: {e}"),
            }
        }
        acked
    });
    CountingWriter {
        stop,
        progress,
        thread,
    }
}

struct CountingWriter {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Acked>,
}

impl CountingWriter {
    /// Writes acknowledged so far.
    fn acknowledged(&self) -> usize {
        self.progress.load(Ordering::Relaxed)
    }

    /// Waits until `n` more writes are acknowledged (the writer goes on after a failover).
    fn wait_for_more(&self, what: &str, n: usize) {
        let from = self.acknowledged();
        wait_for(what, Duration::from_secs(30), || {
            self.acknowledged() >= from + n
        });
    }

    fn finish(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("writer")
    }
}

/// 40 keys `node` serves for a counting writer, and one more for a write of the test's own.
fn writer_keys(node: &Node) -> (Vec<String>, String) {
    let mut keys = keys_served_by(node, 41);
    let late = keys.pop().expect("41 keys");
    (keys, late)
}

/// After a kill -9 failover under a counting writer whose old master came back as
/// `new_master`'s replica: the writer is acknowledged again (so WAIT reaches the returned
/// node), and every write a replica acknowledged is on the new master and on the old one,
/// as is the test's own `late_key` write.
fn check_acked_writes(
    writer: CountingWriter,
    new_master: &Node,
    old_master: &Node,
    late_key: &str,
) {
    writer.wait_for_more("writes acknowledged by the returned node", 5);
    let acked = writer.finish();
    if let Err(e) = acked.check(new_master.port, false, false) {
        panic!("new master: {e}");
    }
    wait_for("the old master caught up", Duration::from_secs(20), || {
        acked.check(old_master.port, true, false).is_ok()
    });
    let mut back = Raw::connect(old_master.port);
    assert_eq!(call(&mut back, &["READONLY"]), "+OK\r\n");
    assert_eq!(call(&mut back, &["GET", late_key]), "$5\r\nafter\r\n");
}

/// The keys among k0..k2999 whose slots `node` serves.
fn keys_served_by(node: &Node, n: usize) -> Vec<String> {
    let nodes = node.cmd(&["CLUSTER", "NODES"]);
    let mine = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .expect("myself line")
        .to_string();
    (0..3000)
        .map(|i| format!("k{i}"))
        .filter(|k| common::cluster::owner_of(&mine, redcell::slot::key_slot(k.as_bytes())))
        .take(n)
        .collect()
}

/// CLUSTER FAILOVER under a counting writer in both directions: our replica of a stock master,
/// then a stock replica of our master. The master pauses, the replica catches up to the
/// paused offset and is elected; the last value acknowledged for every key is on the new
/// master and on the old one, which is now its replica and takes no writes. FORCE and
/// TAKEOVER need no master; the refusals are stock's words.
#[test]
fn manual_failover_both_ways_keeps_every_acknowledged_write() {
    let _serial = one_at_a_time();
    let masters = [Node::stock(), Node::redcell(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let (ours, theirs) = (Node::redcell(), Node::stock());
    add_replica(&ours, &masters[0]);
    add_replica(&theirs, &masters[1]);
    let all: Vec<&Node> = masters.iter().chain([&ours, &theirs]).collect();
    wait_joined(&all, &[&ours, &theirs]);
    // Refusals, as stock words them.
    for n in [&masters[1], &masters[0]] {
        assert_eq!(
            n.cmd(&["CLUSTER", "FAILOVER"]),
            "ERR You should send CLUSTER FAILOVER to a replica"
        );
    }
    for n in [&ours, &theirs] {
        assert_eq!(n.cmd(&["CLUSTER", "FAILOVER", "SOON"]), "ERR syntax error");
    }
    for (replica, master) in [(&ours, &masters[0]), (&theirs, &masters[1])] {
        let keys = keys_served_by(master, 50);
        let writer = counting_writer(vec![master.port], keys.clone(), false);
        writer.wait_for_more("writes before the failover", 50);
        assert_eq!(replica.cmd(&["CLUSTER", "FAILOVER"]), "OK");
        let id = replica.myid();
        wait_for("the replica took over", Duration::from_secs(20), || {
            role_in(replica, &id).is_some_and(|(f, _)| f.contains("master"))
                && role_in(master, &id).is_some_and(|(f, _)| f.contains("master"))
        });
        writer.wait_for_more("writes on the new master", 50);
        let acked = writer.finish();
        wait_for(
            "the old master following the new one",
            Duration::from_secs(30),
            || {
                replica_synced(master)
                    && master
                        .try_cmd(&["INFO", "replication"])
                        .is_some_and(|i| i.contains(&format!("master_port:{}", replica.port)))
            },
        );
        // A manual failover loses nothing and duplicates nothing: exactly what was
        // acknowledged, on the new master and (once caught up) on the old one.
        if let Err(e) = acked.check(replica.port, false, true) {
            panic!("new master: {e}");
        }
        wait_for("the old master caught up", Duration::from_secs(10), || {
            acked.check(master.port, true, true).is_ok()
        });
        // The old master takes no write now.
        let mut old_master = Raw::connect(master.port);
        assert!(call(&mut old_master, &["SET", &keys[0], "late"]).starts_with("-MOVED "));
    }
    // FORCE and TAKEOVER: the former replicas are masters now; the old ones, replicas. A
    // master votes only for a node its bus view has as a replica (it learns roles from
    // pings), so every node must see the demotions before FORCE asks for votes.
    let (id0, ours_id, theirs_id) = (masters[0].myid(), ours.myid(), theirs.myid());
    wait_for(
        "every node sees the demotions",
        Duration::from_secs(20),
        || {
            all.iter().all(|n| {
                role_in(n, &id0).is_some_and(|(f, m)| f.contains("slave") && m == ours_id)
                    && role_in(n, &masters[1].myid())
                        .is_some_and(|(f, m)| f.contains("slave") && m == theirs_id)
            })
        },
    );
    assert_eq!(masters[0].cmd(&["CLUSTER", "FAILOVER", "FORCE"]), "OK");
    wait_for(
        "FORCE elected the stock node again",
        Duration::from_secs(20),
        || {
            role_in(&masters[0], &id0).is_some_and(|(f, _)| f.contains("master"))
                && role_in(&ours, &ours_id).is_some_and(|(f, _)| f.contains("slave"))
        },
    );
    assert_eq!(masters[1].cmd(&["CLUSTER", "FAILOVER", "TAKEOVER"]), "OK");
    let id1 = masters[1].myid();
    wait_for(
        "TAKEOVER made ours a master again",
        Duration::from_secs(20),
        || {
            [&masters[0], &masters[2], &theirs]
                .iter()
                .all(|n| role_in(n, &id1).is_some_and(|(f, _)| f.contains("master")))
        },
    );
    // On failure the four nodes' replication, views and logs are printed.
    if !common::wait_until(Duration::from_secs(60), || {
        replica_synced(&ours) && replica_synced(&theirs)
    }) {
        for n in [&ours, &theirs, &masters[0], &masters[1]] {
            eprintln!(
                "--- {} {:?}\n{}\n{}",
                n.port,
                n.try_cmd(&["INFO", "replication"]),
                n.try_cmd(&["CLUSTER", "NODES"]).unwrap_or_default(),
                n.logs()
            );
        }
        panic!("the former masters do not follow");
    }
    check_from_all(&all);
}

/// Replica migration: a master whose only replica dies is orphaned; after Redis's delay, one
/// of our two replicas of the master with the most replicas (the one with the smaller id)
/// moves to it and syncs.
#[test]
fn an_orphaned_master_gets_one_of_our_spare_replicas() {
    let _serial = one_at_a_time();
    let masters = [Node::stock(), Node::redcell(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let spares = [Node::redcell(), Node::redcell()];
    let (mut lonely, guard) = (Node::stock(), Node::stock());
    // masters[2] gets a replica first: a spare joining later may count it a migration target
    // (its first slot, in that spare's table, came while a master had replicas).
    add_replica(&guard, &masters[2]);
    for r in &spares {
        add_replica(r, &masters[0]);
    }
    add_replica(&lonely, &masters[1]);
    wait_joined(
        &masters
            .iter()
            .chain(&spares)
            .chain([&lonely, &guard])
            .collect::<Vec<_>>(),
        &[&spares[0], &spares[1], &lonely, &guard],
    );
    let orphan_id = masters[1].myid();
    lonely.kill();
    let (moved, stayed) = wait_spare_migrated(&spares, &masters[1]);
    assert!(!stayed.logs().contains("Migrating to orphaned master"));
    let moved_id = moved.myid();
    wait_for("everyone sees the move", Duration::from_secs(20), || {
        masters.iter().chain([stayed]).all(|n| {
            role_in(n, &moved_id).is_some_and(|(f, m)| f.contains("slave") && m == orphan_id)
        })
    });
}

/// Waits until one of two spare replicas of the same master moved to `target` and synced;
/// checks it is the one with the smaller id (Redis's candidate) and logged the move as Redis
/// does. Returns (moved, stayed).
fn wait_spare_migrated<'a>(spares: &'a [Node; 2], target: &Node) -> (&'a Node, &'a Node) {
    wait_for(
        "a spare replica migrated to the orphaned master",
        Duration::from_secs(40),
        || {
            spares.iter().any(|r| {
                replica_synced(r)
                    && r.try_cmd(&["INFO", "replication"])
                        .is_some_and(|i| i.contains(&format!("master_port:{}", target.port)))
            })
        },
    );
    let (moved, stayed) = if spares[0].logs().contains("Migrating to orphaned master") {
        (&spares[0], &spares[1])
    } else {
        (&spares[1], &spares[0])
    };
    let line = format!("Migrating to orphaned master {}", target.myid());
    assert!(moved.logs().contains(&line), "{}", moved.logs());
    assert!(moved.myid() < stayed.myid(), "the smaller id moves");
    (moved, stayed)
}

/// Redis's rule for new masters (redis#3043): a master given its first slot while other
/// masters have replicas is a migration target though it never had a replica. A stock master
/// added empty gets one slot by `redis-cli --cluster reshard`; after the orphan delay one of
/// our two spare replicas (the smaller id) moves to it.
#[test]
fn a_new_master_given_its_first_slot_gets_one_of_our_spare_replicas() {
    let _serial = one_at_a_time();
    let masters = [Node::redcell(), Node::stock(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let newcomer = Node::stock();
    let out = cli(&[
        "--cluster",
        "add-node",
        &newcomer.addr(),
        &masters[0].addr(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[OK] New node added correctly."), "{text}");
    // Replicas for the stock masters first, so that only the newcomer can be orphaned.
    let guards = [Node::stock(), Node::stock()];
    add_replica(&guards[0], &masters[1]);
    add_replica(&guards[1], &masters[2]);
    let spares = [Node::redcell(), Node::redcell()];
    for r in &spares {
        add_replica(r, &masters[0]);
    }
    let all: Vec<&Node> = masters
        .iter()
        .chain([&newcomer])
        .chain(&guards)
        .chain(&spares)
        .collect();
    wait_joined(&all, &[&guards[0], &guards[1], &spares[0], &spares[1]]);
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        spares
            .iter()
            .all(|r| !r.logs().contains("Migrating to orphaned master")),
        "a master without slots is no target"
    );
    let newcomer_id = newcomer.myid();
    let out = cli(&[
        "--cluster",
        "reshard",
        &masters[1].addr(),
        "--cluster-from",
        &masters[1].myid(),
        "--cluster-to",
        &newcomer_id,
        "--cluster-slots",
        "1",
        "--cluster-yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (moved, _) = wait_spare_migrated(&spares, &newcomer);
    let moved_id = moved.myid();
    wait_for("everyone sees the move", Duration::from_secs(20), || {
        all.iter().all(|n| {
            role_in(n, &moved_id).is_some_and(|(f, m)| f.contains("slave") && m == newcomer_id)
        })
    });
    check_from_all(&all);
}

/// Sends `signal` (STOP or CONT) to a node's process.
fn signal(node: &Node, signal: &str) {
    let pid = node.child.as_ref().expect("running").child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// Two stock and two redcell masters; a stock master with a stock and a redcell replica, the
/// stock one stopped (SIGSTOP) while writes go on, so it falls behind: when the master is
/// killed the more up-to-date replica (ours) ranks first and wins, the stock one waits its
/// rank's extra second (its log shows rank #1) and then follows ours.
#[test]
fn the_more_up_to_date_replica_wins() {
    let _serial = one_at_a_time();
    let mut masters = [
        Node::stock(),
        Node::redcell(),
        Node::stock(),
        Node::redcell(),
    ];
    create(&masters.iter().collect::<Vec<_>>());
    let (ours, theirs) = (Node::redcell(), Node::stock());
    no_migration(&[&ours, &theirs]);
    add_replica(&ours, &masters[0]);
    add_replica(&theirs, &masters[0]);
    wait_joined(
        &masters.iter().chain([&ours, &theirs]).collect::<Vec<_>>(),
        &[&ours, &theirs],
    );
    // 30 MB while the stock replica is stopped: more than the socket buffers hold, so the
    // rest is still in its master's output buffer when the master dies.
    let keys = keys_served_by(&masters[0], 300);
    let big = "x".repeat(100_000);
    signal(&theirs, "STOP");
    let mut master = Raw::connect(masters[0].port);
    for (i, key) in keys.iter().enumerate() {
        let value = format!("{i}{big}");
        assert_eq!(call(&mut master, &["SET", key, &value]), "+OK\r\n");
        assert_eq!(call(&mut master, &["WAIT", "1", "2000"]), ":1\r\n", "{key}");
    }
    drop(master);
    masters[0].kill();
    signal(&theirs, "CONT");
    let ours_id = ours.myid();
    wait_for("our replica promoted", Duration::from_secs(30), || {
        role_in(&ours, &ours_id).is_some_and(|(f, _)| f.contains("master"))
    });
    let log = ours.logs();
    assert!(log.contains("(rank #0,"), "{log}");
    let following = common::wait_until(Duration::from_secs(60), || follows(&theirs, &ours));
    assert!(
        following,
        "the stock replica does not follow ours:\n{}\n{}\nours:\n{}",
        theirs.logs(),
        theirs.cmd(&["INFO", "replication"]),
        ours.logs()
    );
    let stock_log = theirs.logs();
    assert!(stock_log.contains("(rank #1,"), "{stock_log}");
    let mut o = Raw::connect(ours.port);
    for (i, key) in keys.iter().enumerate() {
        let v = format!("{i}{big}");
        let got = call(&mut o, &["GET", key]);
        assert!(got == format!("${}\r\n{v}\r\n", v.len()), "{key} on ours");
    }
}

/// A stock master stopped (SIGSTOP, as a partition would cut it off) long enough for our
/// replica to replace it: when it runs again it learns it lost its slots, becomes our replica
/// and resyncs partially (+CONTINUE) from the history our promotion kept.
#[test]
fn a_stopped_stock_master_returns_as_our_replica_with_a_partial_resync() {
    let _serial = one_at_a_time();
    let masters = [Node::stock(), Node::stock(), Node::stock()];
    create(&masters.iter().collect::<Vec<_>>());
    let ours = Node::redcell();
    add_replica(&ours, &masters[0]);
    wait_joined(&masters.iter().chain([&ours]).collect::<Vec<_>>(), &[&ours]);
    let keys = keys_served_by(&masters[0], 100);
    let mut master = Raw::connect(masters[0].port);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(call(&mut master, &["SET", key, &i.to_string()]), "+OK\r\n");
        assert_eq!(call(&mut master, &["WAIT", "1", "2000"]), ":1\r\n");
    }
    drop(master);
    let (ours_id, old_id) = (ours.myid(), masters[0].myid());
    signal(&masters[0], "STOP");
    wait_for("our replica promoted", Duration::from_secs(30), || {
        role_in(&ours, &ours_id).is_some_and(|(f, _)| f.contains("master"))
    });
    let mut o = Raw::connect(ours.port);
    assert_eq!(call(&mut o, &["SET", &keys[0], "after"]), "+OK\r\n");
    signal(&masters[0], "CONT");
    wait_for(
        "the old master following us",
        Duration::from_secs(30),
        || {
            follows(&masters[0], &ours)
                && role_in(&ours, &old_id).is_some_and(|(f, _)| f.contains("slave"))
        },
    );
    let log = masters[0].logs();
    assert!(
        log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    assert!(
        ours.logs()
            .contains("Partial resynchronization request from"),
        "{}",
        ours.logs()
    );
    let mut back = Raw::connect(masters[0].port);
    assert_eq!(call(&mut back, &["READONLY"]), "+OK\r\n");
    assert_eq!(call(&mut back, &["GET", &keys[0]]), "$5\r\nafter\r\n");
}
