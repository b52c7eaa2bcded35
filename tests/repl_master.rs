//! redcell as a master of stock `redis-server` 7.0 replicas: a full sync under continuous
//! writes of every kind, the stream after it, a partial resync after the link breaks, and
//! WAIT. Every check compares the replica's whole keyspace with the master's.

mod common;
mod persist_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{wait_until, Raw, Server, StockRedis};
use persist_common::{assert_same_keyspace, cmd, fill, snapshot, stock_on};

fn text(r: &[u8]) -> String {
    String::from_utf8_lossy(r).into_owned()
}

/// One field of INFO `section`, if present.
fn info_field(c: &mut Raw, section: &str, field: &str) -> Option<String> {
    let info = text(&c.call(&[b"INFO", section.as_bytes()]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Writers of every kind on their own connections until `stop`: strings, counters, lists
/// (with a blocked BLPOP served), hashes, sets, sorted sets, streams, expiring keys,
/// cross-shard MSET, MULTI/EXEC, deletes, in databases 0 and 3. Returns the number of
/// replies each got.
fn writers(port: u16, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..3u64)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut n = 0u64;
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let db = if i % 5 == 0 { "3" } else { "0" };
                    let (a, b) = (format!("w{w}:k{}", i % 500), format!("w{w}:m{}", i % 77));
                    let v = i.to_string();
                    let batch: Vec<Vec<&str>> = match i % 8 {
                        0 => vec![vec!["SELECT", db], vec!["SET", &a, &v], vec!["INCR", "ctr"]],
                        1 => vec![
                            vec!["LPUSH", "list", &v],
                            vec!["RPOP", "list"],
                            vec!["LPUSH", "list", &v],
                        ],
                        2 => vec![
                            vec!["HSET", "hash", &b, &v],
                            vec!["SADD", "set", &b],
                            vec!["ZADD", "zs", &v, &b],
                        ],
                        3 => vec![
                            vec!["MSET", &a, &v, &b, &v],
                            vec!["SET", &b, &v, "EX", "1000"],
                        ],
                        4 => vec![
                            vec!["MULTI"],
                            vec!["INCRBY", &b, "3"],
                            vec!["DEL", &a],
                            vec!["EXEC"],
                        ],
                        5 => vec![
                            vec!["XADD", "stream", "*", "f", &v],
                            vec!["XTRIM", "stream", "MAXLEN", "50"],
                        ],
                        6 => vec![
                            vec!["SET", &a, &v, "PX", "30"],
                            vec!["EXPIRE", &b, "500"],
                            vec!["SPOP", "set"],
                        ],
                        _ => vec![
                            vec!["SELECT", "0"],
                            vec!["ZINCRBY", "zs", "1", &b],
                            vec!["HINCRBY", "hash", "n", "1"],
                        ],
                    };
                    for argv in &batch {
                        let args: Vec<&[u8]> = argv.iter().map(|s| s.as_bytes()).collect();
                        let r = c.call(&args);
                        assert!(!r.starts_with(b"-"), "{argv:?}: {}", text(&r));
                        n += 1;
                    }
                }
                n
            })
        })
        .chain(std::iter::once({
            // A blocked BLPOP, served by a push from another connection.
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut p = Raw::connect(port);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    c.send_cmd(&[b"BLPOP", b"queue", b"5"]);
                    std::thread::sleep(Duration::from_millis(2));
                    p.call(&[b"RPUSH", b"queue", b"job"]);
                    let r = c.read_reply();
                    assert!(r.starts_with(b"*2"), "BLPOP: {}", text(&r));
                    n += 2;
                }
                n
            })
        }))
        .collect()
}

/// Waits until the replica's link is up and it has applied the master's whole stream.
fn wait_caught_up(master: &mut Raw, replica: &mut Raw) {
    let ok = wait_until(Duration::from_secs(30), || {
        let up = info_field(replica, "replication", "master_link_status").as_deref() == Some("up");
        let ours = info_field(master, "replication", "master_repl_offset");
        let theirs = info_field(replica, "replication", "slave_repl_offset");
        // The master learns the replica's offset from its next REPLCONF ACK (once a second).
        let acked = info_field(master, "replication", "slave0").unwrap_or_default();
        let acked_all = ours
            .as_ref()
            .is_some_and(|o| acked.contains(&format!("offset={o},")));
        up && ours.is_some() && ours == theirs && acked_all
    });
    assert!(
        ok,
        "replica did not catch up: master {}\nreplica {}",
        text(&master.call(&[b"INFO", b"replication"])),
        text(&replica.call(&[b"INFO", b"replication"]))
    );
}

/// Deletes the master's keys whose time has passed (SCAN deletes what it meets expired and
/// propagates the DELs): a replica keeps an expired key until its master's DEL arrives.
fn expire_due_keys(m: &mut Raw) {
    std::thread::sleep(Duration::from_millis(100));
    for db in 0..16 {
        cmd(m, &["SELECT", &db.to_string()]);
        let mut cursor = "0".to_string();
        loop {
            let r = text(&m.call(&[b"SCAN", cursor.as_bytes(), b"COUNT", b"1000"]));
            // *2\r\n$<n>\r\n<cursor>\r\n...
            cursor = r.split("\r\n").nth(2).unwrap_or("0").to_string();
            if cursor == "0" {
                break;
            }
        }
    }
    cmd(m, &["SELECT", "0"]);
}

fn stop_writers(stop: &Arc<AtomicBool>, handles: Vec<JoinHandle<u64>>) -> u64 {
    stop.store(true, Ordering::Relaxed);
    handles.into_iter().map(|h| h.join().expect("writer")).sum()
}

/// The stock replica's log.
fn stock_log(stock: &StockRedis) -> String {
    std::fs::read_to_string(stock.dir().join("log")).unwrap_or_default()
}

/// The stock replica `stock` (connection `r`) was fully synced once and has since resumed
/// with one partial resync (both sides say so), and holds the master's keyspace.
fn assert_resumed_once(m: &mut Raw, r: &mut Raw, stock: &StockRedis) {
    assert_eq!(
        info_field(m, "stats", "sync_partial_ok").as_deref(),
        Some("1")
    );
    assert_eq!(info_field(m, "stats", "sync_full").as_deref(), Some("1"));
    let log = stock_log(stock);
    assert!(
        log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    assert_same_keyspace(&snapshot(r), &snapshot(m));
}

/// A redcell master (`shards`, `args`) followed by a new stock replica whose link is up;
/// with a connection to each.
fn master_with_stock_replica(shards: usize, args: &[&str]) -> (Server, StockRedis, Raw, Raw) {
    let master = Server::start(shards, args);
    let port = master.port.to_string();
    let stock = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = Raw::connect(stock.port);
    wait_link_up(&mut r, &stock);
    let m = master.raw();
    (master, stock, m, r)
}

/// Waits until the stock replica's link with its master is up.
fn wait_link_up(r: &mut Raw, stock: &StockRedis) {
    assert!(
        wait_until(Duration::from_secs(30), || info_field(
            r,
            "replication",
            "master_link_status"
        )
        .as_deref()
            == Some("up")),
        "the stock replica never synced: {}",
        stock_log(stock)
    );
}

#[test]
fn stock_replica_full_syncs_under_writes_and_stays_in_step() {
    // Diskless (the default) without the delay: the sync starts while the writers run.
    let master = Server::start(2, &["--save", "", "--repl-diskless-sync-delay", "0"]);
    let mut m = master.raw();
    for db in [0, 3, 7] {
        fill(&mut m, db);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handles = writers(master.port, &stop);
    std::thread::sleep(Duration::from_millis(300));
    let port = master.port.to_string();
    let stock = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = Raw::connect(stock.port);
    wait_link_up(&mut r, &stock);
    // The RDB came streamed, framed by an EOF mark, with no file on our side.
    let log = stock_log(&stock);
    assert!(
        log.contains("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF"),
        "{log}"
    );
    let ours = master.stderr();
    assert!(
        ours.contains("Starting BGSAVE for SYNC with target: replicas sockets"),
        "{ours}"
    );
    assert!(
        ours.contains("Streamed RDB transfer with replica"),
        "{ours}"
    );
    assert!(!master.dir().join("dump.rdb").exists());
    // The stream after the sync, under the same writers.
    std::thread::sleep(Duration::from_millis(1500));
    let replies = stop_writers(&stop, handles);
    assert!(replies > 1000, "the writers got only {replies} replies");
    expire_due_keys(&mut m);
    wait_caught_up(&mut m, &mut r);
    assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("1")
    );
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").as_deref(),
        Some("1")
    );
    let slave0 = info_field(&mut m, "replication", "slave0").unwrap_or_default();
    assert!(slave0.contains("state=online"), "{slave0}");
    let role = text(&m.call(&[b"ROLE"]));
    let offset = info_field(&mut m, "replication", "master_repl_offset").unwrap_or_default();
    let stock_port = stock.port.to_string();
    assert_eq!(
        role,
        format!(
            "*3\r\n$6\r\nmaster\r\n:{offset}\r\n*1\r\n*3\r\n$9\r\n127.0.0.1\r\n${}\r\n{stock_port}\r\n${}\r\n{offset}\r\n",
            stock_port.len(),
            offset.len()
        )
    );
    // WAIT: the one replica acknowledges a write made just before.
    cmd(&mut m, &["SET", "waited", "1"]);
    assert_eq!(text(&m.call(&[b"WAIT", b"1", b"2000"])), ":1\r\n");
    assert_eq!(text(&m.call(&[b"WAIT", b"2", b"100"])), ":1\r\n");
}

#[test]
fn a_broken_link_resumes_with_a_partial_resync() {
    let master = Server::start(3, &["--save", "", "--enable-debug-command", "yes"]);
    let mut m = master.raw();
    fill(&mut m, 0);
    let port = master.port.to_string();
    let stock = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = Raw::connect(stock.port);
    wait_caught_up(&mut m, &mut r);
    let stop = Arc::new(AtomicBool::new(false));
    let handles = writers(master.port, &stop);
    for i in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        // One side drops the link; the replica reconnects with PSYNC <replid> <offset>.
        if i % 2 == 0 {
            assert_eq!(
                text(&r.call(&[b"CLIENT", b"KILL", b"TYPE", b"master"])),
                ":1\r\n"
            );
        } else {
            wait_until(Duration::from_secs(5), || {
                info_field(&mut m, "replication", "slave0").is_some_and(|l| l.contains("online"))
            });
            assert_eq!(
                text(&m.call(&[b"CLIENT", b"KILL", b"TYPE", b"replica"])),
                ":1\r\n"
            );
        }
    }
    std::thread::sleep(Duration::from_millis(400));
    stop_writers(&stop, handles);
    expire_due_keys(&mut m);
    wait_caught_up(&mut m, &mut r);
    assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
    let partial: u64 = info_field(&mut m, "stats", "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(partial >= 1, "no partial resync was accepted");
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("1")
    );
    let log = std::fs::read_to_string(stock.dir().join("log")).unwrap_or_default();
    assert!(
        log.contains("Successful partial resynchronization with master"),
        "{log}"
    );
    // DEBUG CHANGE-REPL-ID: a new id and no secondary one, so the next link is a full sync.
    let old_id = info_field(&mut m, "replication", "master_replid");
    assert_eq!(text(&m.call(&[b"DEBUG", b"CHANGE-REPL-ID"])), "+OK\r\n");
    assert_ne!(info_field(&mut m, "replication", "master_replid"), old_id);
    assert_eq!(
        info_field(&mut m, "replication", "master_replid2").as_deref(),
        Some("0000000000000000000000000000000000000000")
    );
    assert_eq!(
        text(&m.call(&[b"CLIENT", b"KILL", b"TYPE", b"replica"])),
        ":1\r\n"
    );
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut m,
        "stats",
        "sync_full"
    )
    .as_deref()
        == Some("2")));
    wait_caught_up(&mut m, &mut r);
}

#[test]
fn a_replica_beyond_the_backlog_full_syncs_again() {
    // Disk-based: the RDB is saved, then sent as `$<len>`.
    let master = Server::start(
        2,
        &[
            "--save",
            "",
            "--repl-backlog-size",
            "16384",
            "--repl-diskless-sync",
            "no",
        ],
    );
    let mut m = master.raw();
    let port = master.port.to_string();
    let stock = StockRedis::start(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--enable-debug-command",
        "yes",
    ]);
    let mut r = Raw::connect(stock.port);
    wait_caught_up(&mut m, &mut r);
    // Break the link and keep the replica asleep (both in one read, so it cannot reconnect
    // in between) while more than the backlog holds is written.
    let mut req = common::encode(&[b"CLIENT", b"KILL", b"TYPE", b"master"]);
    req.extend(common::encode(&[b"DEBUG", b"SLEEP", b"1"]));
    r.send(&req);
    let big = "x".repeat(1000);
    for i in 0..100 {
        cmd(&mut m, &["SET", &format!("big{i}"), &big]);
    }
    assert_eq!(text(&r.read_reply()), ":1\r\n");
    assert_eq!(text(&r.read_reply()), "+OK\r\n");
    wait_caught_up(&mut m, &mut r);
    assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("2")
    );
    assert_eq!(
        info_field(&mut m, "stats", "sync_partial_err").as_deref(),
        Some("1")
    );
    let log = stock_log(&stock);
    assert_eq!(
        log.matches("MASTER <-> REPLICA sync: receiving ").count(),
        2,
        "{log}"
    );
    assert!(!log.contains("streamed RDB"), "{log}");
    let ours = master.stderr();
    assert_eq!(
        ours.matches("Starting BGSAVE for SYNC with target: disk")
            .count(),
        2,
        "{ours}"
    );
}

#[test]
fn replicas_arriving_within_the_delay_share_one_streamed_snapshot() {
    let master = Server::start(2, &["--save", "", "--repl-diskless-sync-delay", "3"]);
    let mut m = master.raw();
    for db in [0, 3] {
        fill(&mut m, db);
    }
    let port = master.port.to_string();
    let a = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let b = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let (mut ra, mut rb) = (Raw::connect(a.port), Raw::connect(b.port));
    // Both wait for the snapshot meanwhile.
    let waiting = wait_until(Duration::from_secs(2), || {
        let info = text(&m.call(&[b"INFO", b"replication"]));
        info.matches("state=wait_bgsave").count() == 2
    });
    assert!(waiting, "{}", text(&m.call(&[b"INFO", b"replication"])));
    wait_link_up(&mut ra, &a);
    wait_link_up(&mut rb, &b);
    cmd(&mut m, &["SET", "after", "sync"]);
    assert_eq!(text(&m.call(&[b"WAIT", b"2", b"5000"])), ":2\r\n");
    let want = snapshot(&mut m);
    assert_same_keyspace(&snapshot(&mut ra), &want);
    assert_same_keyspace(&snapshot(&mut rb), &want);
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("2")
    );
    let ours = master.stderr();
    assert_eq!(
        ours.matches("Starting BGSAVE for SYNC").count(),
        1,
        "{ours}"
    );
    assert_eq!(
        ours.matches("Streamed RDB transfer with replica").count(),
        2,
        "{ours}"
    );
    for stock in [&a, &b] {
        let log = stock_log(stock);
        assert!(
            log.contains("receiving streamed RDB from master with EOF"),
            "{log}"
        );
    }
}

/// A replica asking for a full sync while a disk-based one is saved joins it (Redis's
/// "Waiting for end of BGSAVE for SYNC"): one save serves both, the second gets the writes
/// made since the first's cut, and both end equal to the master.
#[test]
fn a_replica_arriving_during_a_disk_sync_joins_it() {
    // 2000 keys at 1 ms each: a save of about 2 s.
    let master = Server::start(
        2,
        &[
            "--save",
            "",
            "--repl-diskless-sync",
            "no",
            "--rdb-key-save-delay",
            "1000",
        ],
    );
    let mut m = master.raw();
    for i in 0..2000 {
        cmd(&mut m, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    let port = master.port.to_string();
    let a = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    assert!(wait_until(Duration::from_secs(10), || master
        .stderr()
        .contains("Starting BGSAVE for SYNC with target: disk")));
    // Written after the first replica's cut: the joiner must get them from the stream.
    for i in 0..50 {
        cmd(&mut m, &["SET", &format!("during{i}"), &i.to_string()]);
    }
    let b = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    assert!(
        wait_until(Duration::from_secs(10), || master
            .stderr()
            .contains("Waiting for end of BGSAVE for SYNC")),
        "{}",
        master.stderr()
    );
    let (mut ra, mut rb) = (Raw::connect(a.port), Raw::connect(b.port));
    wait_link_up(&mut ra, &a);
    wait_link_up(&mut rb, &b);
    cmd(&mut m, &["SET", "after", "sync"]);
    assert_eq!(text(&m.call(&[b"WAIT", b"2", b"5000"])), ":2\r\n");
    assert_both_served_by_one_snapshot(&master, &mut m, [(&mut ra, &a), (&mut rb, &b)]);
    assert_eq!(
        info_field(&mut m, "stats", "sync_full").as_deref(),
        Some("2")
    );
}

/// `rdb-del-sync-files yes` on a master without persistence, beside a stock master set up
/// the same: the RDB its disk-based sync wrote is removed once the replica has it (with the
/// same log line); with a `save` point it stays.
#[test]
fn rdb_del_sync_files_removes_the_sync_rdb_of_a_persistence_less_master() {
    let removed = "Removing the RDB file used to feed replicas in a persistence-less instance";
    for save in ["", "3600 1"] {
        let args = [
            "--save",
            save,
            "--repl-diskless-sync",
            "no",
            "--rdb-del-sync-files",
            "yes",
        ];
        let stock_master = StockRedis::start(&args);
        let (ours, _replica, mut m, _r) = master_with_stock_replica(2, &args);
        let stock_port = stock_master.port.to_string();
        let stock_replica = StockRedis::start(&["--replicaof", "127.0.0.1", &stock_port]);
        wait_link_up(&mut Raw::connect(stock_replica.port), &stock_replica);
        cmd(&mut m, &["SET", "k", "v"]);
        let rdbs = [
            ours.dir().join("dump.rdb"),
            stock_master.dir().join("dump.rdb"),
        ];
        if save.is_empty() {
            assert!(
                wait_until(Duration::from_secs(5), || rdbs.iter().all(|p| !p.exists())),
                "{}",
                ours.stderr()
            );
            assert!(ours.stderr().contains(removed));
            assert!(stock_log(&stock_master).contains(removed));
        } else {
            // Stock's cron would have removed it within a second.
            std::thread::sleep(Duration::from_millis(1500));
            assert!(rdbs.iter().all(|p| p.exists()));
            assert!(!ours.stderr().contains(removed));
        }
    }
}

#[test]
fn diskless_sync_starts_once_max_replicas_wait() {
    // A delay longer than the test: only the replica count can start the snapshot.
    let master = Server::start(
        1,
        &[
            "--save",
            "",
            "--repl-diskless-sync-delay",
            "60",
            "--repl-diskless-sync-max-replicas",
            "2",
        ],
    );
    let mut m = master.raw();
    fill(&mut m, 0);
    let port = master.port.to_string();
    let a = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut ra = Raw::connect(a.port);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        info_field(&mut ra, "replication", "master_link_status").as_deref(),
        Some("down")
    );
    // Keep-alives reached it meanwhile (it did not time out; the line it waits for is late).
    let b = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut rb = Raw::connect(b.port);
    assert_both_served_by_one_snapshot(&master, &mut m, [(&mut ra, &a), (&mut rb, &b)]);
}

/// Both stock replicas are up and hold the master's keyspace, and the master made one
/// snapshot for them.
fn assert_both_served_by_one_snapshot(
    master: &Server,
    m: &mut Raw,
    replicas: [(&mut Raw, &StockRedis); 2],
) {
    let want = snapshot(m);
    for (r, stock) in replicas {
        wait_link_up(r, stock);
        assert_same_keyspace(&snapshot(r), &want);
    }
    let ours = master.stderr();
    assert_eq!(
        ours.matches("Starting BGSAVE for SYNC").count(),
        1,
        "{ours}"
    );
}

/// A master with `client-output-buffer-limit` `limit` whose snapshot of `keys` keys takes
/// 2 ms per key, a stock replica in its full sync, and 3 MB written meanwhile: (master,
/// replica, a master connection, a replica connection).
fn burst_during_slow_sync(limit: &str, keys: usize) -> (Server, StockRedis, Raw, Raw) {
    let master = Server::start(
        2,
        &[
            "--save",
            "",
            "--repl-diskless-sync-delay",
            "0",
            "--rdb-key-save-delay",
            "2000",
        ],
    );
    let mut m = master.raw();
    assert_eq!(
        text(&m.call(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            limit.as_bytes()
        ])),
        "+OK\r\n"
    );
    for i in 0..keys {
        cmd(&mut m, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    let port = master.port.to_string();
    let stock = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let r = Raw::connect(stock.port);
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut m, "replication", "slave0").is_some_and(|l| l.contains("wait_bgsave"))
            && master.stderr().contains("Background RDB transfer started")
    }));
    let big = "x".repeat(100_000);
    for i in 0..30 {
        cmd(&mut m, &["SET", &format!("big{i}"), &big]);
    }
    (master, stock, m, r)
}

#[test]
fn a_replica_over_its_output_buffer_limit_is_dropped_and_syncs_again() {
    let (master, _stock, mut m, mut r) = burst_during_slow_sync("replica 1mb 0 0", 300);
    assert!(
        wait_until(Duration::from_secs(10), || master
            .stderr()
            .contains("for overcoming of output buffer limits.")),
        "{}",
        master.stderr()
    );
    // It comes back with a new full sync once the writes stop.
    assert_eq!(
        text(&m.call(&[b"CONFIG", b"SET", b"rdb-key-save-delay", b"0"])),
        "+OK\r\n"
    );
    wait_caught_up(&mut m, &mut r);
    assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
    let full: u64 = info_field(&mut m, "stats", "sync_full")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(full >= 2, "sync_full {full}");
    let ours = master.stderr();
    let line = ours
        .lines()
        .find(|l| l.contains("overcoming of output buffer limits"))
        .unwrap_or_default();
    assert!(line.starts_with("Client id="), "{line}");
    assert!(line.contains(" flags=S "), "{line}");
}

/// `client-output-buffer-limit replica 0 1mb <secs>`: a replica whose pending stream stays
/// over the soft limit longer than its seconds is dropped (and syncs again); one under a
/// soft limit with more seconds than the burst lasts is kept.
#[test]
fn a_replica_over_its_soft_limit_for_its_seconds_is_dropped() {
    for (secs, dropped) in [("1", true), ("60", false)] {
        // A snapshot of 1500 keys at 2 ms each (3 s) while the burst waits for it.
        let limit = format!("replica 0 1mb {secs}");
        let (master, _stock, mut m, mut r) = burst_during_slow_sync(&limit, 1500);
        let over = "for overcoming of output buffer limits.";
        if dropped {
            assert!(
                wait_until(Duration::from_secs(10), || master.stderr().contains(over)),
                "{}",
                master.stderr()
            );
        }
        assert_eq!(
            text(&m.call(&[b"CONFIG", b"SET", b"rdb-key-save-delay", b"0"])),
            "+OK\r\n"
        );
        wait_caught_up(&mut m, &mut r);
        assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
        let full: u64 = info_field(&mut m, "stats", "sync_full")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if dropped {
            assert!(full >= 2, "sync_full {full}");
        } else {
            assert_eq!(full, 1, "{}", master.stderr());
            assert!(!master.stderr().contains(over), "{}", master.stderr());
        }
    }
}

#[test]
fn output_buffer_limit_config_matches_stock() {
    let master = Server::start(1, &[]);
    let stock = StockRedis::start(&[]);
    let (mut ours, mut theirs) = (master.raw(), Raw::connect(stock.port));
    let steps: &[&[&[u8]]] = &[
        &[b"CONFIG", b"GET", b"client-output-buffer-limit"],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"replica 1mb 512kb 30",
        ],
        &[b"CONFIG", b"GET", b"client-output-buffer-limit"],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"slave 0 0 0 pubsub 1gb 2g 5",
        ],
        &[b"CONFIG", b"GET", b"client-output-buffer-limit"],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"normal 1 2 3 replica 4 5 6",
        ],
        &[b"CONFIG", b"GET", b"client-output-buffer-limit"],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"replica 1mb 0",
        ],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"master 1 2 3",
        ],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"replica x 0 0",
        ],
        &[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"replica 1 0 -1",
        ],
        &[b"CONFIG", b"GET", b"client-output-buffer-limit"],
        &[b"CONFIG", b"GET", b"repl-diskless-sync"],
        &[b"CONFIG", b"GET", b"repl-diskless-sync-delay"],
        &[b"CONFIG", b"SET", b"repl-diskless-sync-max-replicas", b"-1"],
        &[b"CONFIG", b"SET", b"repl-diskless-sync-max-replicas", b"3"],
        &[b"CONFIG", b"GET", b"repl-diskless-sync-max-replicas"],
    ];
    for args in steps {
        assert_eq!(
            text(&ours.call(args)),
            text(&theirs.call(args)),
            "{:?}",
            args.iter().map(|a| text(a)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn replconf_and_sync_errors_are_redis_words() {
    let master = Server::start(1, &[]);
    let mut c = master.raw();
    assert_eq!(
        text(&c.call(&[b"REPLCONF", b"bogus", b"1"])),
        "-ERR Unrecognized REPLCONF option: bogus\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"REPLCONF", b"listening-port"])),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"REPLCONF", b"listening-port", b"6380", b"capa", b"eof"])),
        "+OK\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"WAIT", b"x", b"0"])),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"WAIT", b"0", b"-1"])),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(text(&c.call(&[b"WAIT", b"0", b"0"])), ":0\r\n");
}

#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    let master = Server::start(
        2,
        &[
            "--save",
            "",
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "2",
        ],
    );
    let mut m = master.raw();
    let refused = |m: &mut Raw| {
        text(&m.call(&[b"SET", b"k", b"v"])) == "-NOREPLICAS Not enough good replicas to write.\r\n"
    };
    assert!(wait_until(Duration::from_secs(5), || refused(&mut m)));
    // Reads pass.
    assert_eq!(text(&m.call(&[b"GET", b"k"])), "$-1\r\n");
    let port = master.port.to_string();
    let stock = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = Raw::connect(stock.port);
    assert!(wait_until(Duration::from_secs(20), || !refused(&mut m)));
    wait_caught_up(&mut m, &mut r);
    assert_eq!(text(&r.call(&[b"GET", b"k"])), "$1\r\nv\r\n");
    drop(r);
    drop(stock);
    assert!(wait_until(Duration::from_secs(10), || refused(&mut m)));
    // Inside MULTI the write is refused as it is queued, which aborts the transaction.
    assert_eq!(text(&m.call(&[b"MULTI"])), "+OK\r\n");
    assert!(refused(&mut m));
    assert_eq!(
        text(&m.call(&[b"EXEC"])),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
}

/// Runs `redis-cli <option> <file>` (`--rdb`, `--functions-rdb`) against `port` and starts a
/// stock server on the file it wrote (with the directory holding it).
fn cli_file_loaded_by_stock(port: u16, option: &str) -> (StockRedis, common::TempDir) {
    let dir = common::TempDir::new("cli-rdb");
    let file = dir.file("cli.rdb");
    let out = common::redis_cli(&["-p", &port.to_string(), option, &file.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let loaded = StockRedis::start(&[
        "--dir",
        &dir.path.display().to_string(),
        "--dbfilename",
        "cli.rdb",
    ]);
    (loaded, dir)
}

/// `redis-cli --rdb` (REPLCONF rdb-only 1, then SYNC) gets the snapshot alone: the master
/// sends the RDB and closes the link instead of streaming to it, as Redis 7.0, and the file
/// loads into stock redis-server with every key. REPLCONF rdb-only's errors are stock's.
#[test]
fn redis_cli_rdb_gets_the_snapshot_alone_and_stock_loads_it() {
    let master = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    for arg in ["2", "-1", "x", "1", "0"] {
        let words: [&[u8]; 3] = [b"REPLCONF", b"rdb-only", arg.as_bytes()];
        assert_eq!(
            text(&master.raw().call(&words)),
            text(&Raw::connect(stock.port).call(&words)),
            "REPLCONF rdb-only {arg}"
        );
    }
    let mut c = master.raw();
    for i in 0..100 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        assert_eq!(
            text(&c.call(&[b"SET", k.as_bytes(), v.as_bytes()])),
            "+OK\r\n"
        );
    }
    // On the wire: the RDB, then the master closes the connection, though writes go on.
    let mut link = std::net::TcpStream::connect(("127.0.0.1", master.port)).expect("connect");
    link.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    // One at a time, as redis-cli does: SYNC behind an unsent reply is refused (by both).
    std::io::Write::write_all(
        &mut link,
        b"*3\r\n$8\r\nREPLCONF\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n",
    )
    .expect("send");
    let mut ok = [0u8; 5];
    std::io::Read::read_exact(&mut link, &mut ok).expect("REPLCONF reply");
    assert_eq!(&ok, b"+OK\r\n");
    std::io::Write::write_all(&mut link, b"*1\r\n$4\r\nSYNC\r\n").expect("send");
    let mut got = Vec::new();
    let closed = loop {
        assert_eq!(text(&c.call(&[b"INCR", b"counter"])).as_bytes()[0], b':');
        let mut buf = [0u8; 65536];
        match std::io::Read::read(&mut link, &mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    assert!(closed, "the link stayed open after {} bytes", got.len());
    // Keep-alive newlines, `$<len>\r\n`, the RDB, and nothing after it.
    let dollar = got.iter().position(|&b| b != b'\n').expect("a bulk header");
    let header_end = dollar + got[dollar..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let len: usize = text(&got[dollar + 1..header_end - 2])
        .parse()
        .expect("RDB length");
    assert_eq!(&got[header_end..header_end + 5], b"REDIS");
    assert_eq!(got.len(), header_end + len, "no stream after the RDB");
    assert!(
        master.stderr().contains("rdb only replica"),
        "{}",
        master.stderr()
    );

    // The user's way: redis-cli --rdb, loaded by stock.
    let (loaded, _dir) = cli_file_loaded_by_stock(master.port, "--rdb");
    let mut s = Raw::connect(loaded.port);
    assert_eq!(text(&s.call(&[b"DBSIZE"])), ":101\r\n");
    assert_eq!(text(&s.call(&[b"GET", b"k42"])), "$3\r\nv42\r\n");
    drop(stock);
}

/// A stock replica stopped (SIGSTOP) while the link stays open: once it has not acknowledged
/// for `min-replicas-max-lag` seconds it no longer counts as good (NOREPLICAS while it is
/// still connected); past `repl-timeout` the master drops it with Redis's log line; woken
/// (SIGCONT), it reconnects and resumes with a partial resync, missing nothing written
/// meanwhile.
#[test]
fn a_stopped_replica_lags_then_times_out_and_resumes_partially() {
    let (master, stock, mut m, mut r) = master_with_stock_replica(
        2,
        &[
            "--save",
            "",
            "--repl-timeout",
            "3",
            "--min-replicas-max-lag",
            "1",
        ],
    );
    for i in 0..200 {
        cmd(&mut m, &["SET", &format!("before:{i}"), &i.to_string()]);
    }
    wait_caught_up(&mut m, &mut r);
    cmd(&mut m, &["CONFIG", "SET", "min-replicas-to-write", "1"]);
    assert_eq!(text(&m.call(&[b"SET", b"gated", b"1"])), "+OK\r\n");

    stock.signal(libc::SIGSTOP);
    let refused = |m: &mut Raw| {
        text(&m.call(&[b"SET", b"gated", b"2"]))
            == "-NOREPLICAS Not enough good replicas to write.\r\n"
    };
    assert!(
        wait_until(Duration::from_secs(5), || refused(&mut m)),
        "writes were never refused with the replica stopped"
    );
    // Lagging, not gone: the link is still there, so the lag alone refused the write.
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").as_deref(),
        Some("1")
    );
    cmd(&mut m, &["CONFIG", "SET", "min-replicas-to-write", "0"]);
    for i in 0..200 {
        cmd(&mut m, &["SET", &format!("stopped:{i}"), &i.to_string()]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || info_field(
            &mut m,
            "replication",
            "connected_slaves"
        )
        .as_deref()
            == Some("0")),
        "the silent replica was never dropped: {}",
        master.stderr()
    );
    assert!(
        master
            .stderr()
            .contains("Disconnecting timedout replica (streaming sync): 127.0.0.1:"),
        "{}",
        master.stderr()
    );
    for i in 0..200 {
        cmd(&mut m, &["INCR", &format!("dropped:{}", i % 7)]);
    }

    stock.signal(libc::SIGCONT);
    wait_caught_up(&mut m, &mut r);
    assert_resumed_once(&mut m, &mut r, &stock);
}

/// Reads a full sync's preamble and disk-based RDB from a hand-made replica link: the
/// `+FULLRESYNC` line, keep-alive newlines, `$<len>` and the file.
fn read_full_sync(link: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = link.read(&mut buf).expect("the full sync");
        assert!(n > 0, "the master closed the link during the sync");
        got.extend_from_slice(&buf[..n]);
        let Some(line_end) = got.windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        assert!(got.starts_with(b"+FULLRESYNC "), "{}", text(&got));
        let body = &got[line_end + 2..];
        let Some(dollar) = body.iter().position(|&b| b != b'\n') else {
            continue;
        };
        let Some(header) = body[dollar..].windows(2).position(|w| w == b"\r\n") else {
            continue;
        };
        let len: usize = text(&body[dollar + 1..dollar + header])
            .parse()
            .expect("RDB length");
        if body.len() >= dollar + header + 2 + len {
            return;
        }
    }
}

/// A replica that sends protocol garbage after its sync (or a request longer than any
/// REPLCONF) loses its link, with a log line saying why; the master goes on serving its
/// clients and its other replica, which stays in step.
#[test]
fn garbage_from_a_replica_drops_its_link_and_the_master_serves_on() {
    let (master, _stock, mut m, mut r) = master_with_stock_replica(
        2,
        &[
            "--save",
            "",
            "--repl-diskless-sync",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let garbage: [&[u8]; 2] = [b"*1\r\n$x\r\n", &[b'a'; 5000]];
    for (n, bytes) in garbage.iter().enumerate() {
        use std::io::Write;
        let listening = (7000 + n).to_string();
        let mut fake = Raw::connect(master.port);
        assert_eq!(
            text(&fake.call(&[b"REPLCONF", b"listening-port", listening.as_bytes()])),
            "+OK\r\n"
        );
        // Nothing else is pending on it: read the sync by hand from here.
        let mut link = fake.stream.try_clone().expect("clone");
        link.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        link.write_all(b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n")
            .expect("PSYNC");
        read_full_sync(&mut link);
        link.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$1\r\n0\r\n")
            .expect("ACK");
        cmd(&mut m, &["SET", "during", &n.to_string()]);
        link.write_all(bytes).expect("garbage");
        // The master closes the link: reads drain what was streamed, then end.
        let closed = wait_until(Duration::from_secs(10), || {
            let mut buf = [0u8; 4096];
            matches!(std::io::Read::read(&mut link, &mut buf), Ok(0) | Err(_))
        });
        assert!(closed, "the link with garbage stayed open");
        let why = if n == 0 {
            format!(
                "Replica 127.0.0.1:{listening} sent garbage (Protocol error: invalid bulk length)"
            )
        } else {
            format!("Replica 127.0.0.1:{listening} sent a request over 4 KB")
        };
        assert!(master.stderr().contains(&why), "{}", master.stderr());
    }
    assert_eq!(text(&m.call(&[b"PING"])), "+PONG\r\n");
    for i in 0..100 {
        cmd(&mut m, &["RPUSH", "after", &i.to_string()]);
    }
    wait_caught_up(&mut m, &mut r);
    assert_same_keyspace(&snapshot(&mut r), &snapshot(&mut m));
    assert_eq!(
        info_field(&mut m, "replication", "connected_slaves").as_deref(),
        Some("1")
    );
}

/// `redis-cli --replica` (the old SYNC, an empty RDB asked for with REPLCONF
/// rdb-filter-only, then the stream printed as it comes) shows the same commands from our
/// master as from a stock one.
#[test]
fn redis_cli_replica_prints_the_stream_as_from_stock() {
    let ours = Server::start(2, &["--save", "", "--repl-diskless-sync-delay", "0"]);
    let stock = StockRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let printed = |port: u16| {
        let dir = common::TempDir::new("cli-replica");
        let out = dir.file("out");
        // Its progress lines go to stderr, the commands to stdout: one file, one offset.
        let file = std::fs::File::create(&out).expect("out file");
        let mut child = common::ChildGuard {
            child: std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "--replica"])
                .stdout(file.try_clone().expect("out file"))
                .stderr(file)
                .spawn()
                .expect("redis-cli (apt-get install redis-tools)"),
        };
        let read = || std::fs::read_to_string(&out).unwrap_or_default();
        assert!(
            wait_until(Duration::from_secs(10), || read()
                .contains("Logging commands")),
            "{}",
            read()
        );
        let mut c = Raw::connect(port);
        cmd(&mut c, &["SET", "foo", "bar"]);
        cmd(&mut c, &["INCR", "x"]);
        cmd(&mut c, &["SELECT", "3"]);
        cmd(&mut c, &["LPUSH", "l", "a b", "c,\"d"]);
        cmd(&mut c, &["MSET", "k1", "1", "k2", "2"]);
        assert!(
            wait_until(Duration::from_secs(10), || read().contains("\"MSET\"")),
            "{}",
            read()
        );
        let _ = child.child.kill();
        let text = read();
        let stream: Vec<String> = text
            .lines()
            .skip_while(|l| !l.starts_with("SYNC done"))
            .filter(|l| l.starts_with('"') && !l.starts_with("\"PING\""))
            .map(str::to_string)
            .collect();
        stream
    };
    let from_stock = printed(stock.port);
    assert_eq!(from_stock.len(), 5, "{from_stock:?}");
    assert_eq!(printed(ours.port), from_stock);
}

/// `repl-backlog-ttl`: with no replica for that long the master frees its backlog and, as
/// Redis, starts a new history (a new replication id, the offset kept), so the next replica
/// cannot continue the old one.
#[test]
fn the_backlog_is_freed_after_its_ttl_and_a_new_history_starts() {
    let (master, stock, mut m, mut r) = master_with_stock_replica(
        1,
        &[
            "--save",
            "",
            "--repl-backlog-ttl",
            "1",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    for i in 0..50 {
        cmd(&mut m, &["SET", &format!("k{i}"), "v"]);
    }
    wait_caught_up(&mut m, &mut r);
    let field = |m: &mut Raw, f: &str| info_field(m, "replication", f).unwrap_or_default();
    let (old_id, offset) = (
        field(&mut m, "master_replid"),
        field(&mut m, "master_repl_offset"),
    );
    assert_eq!(field(&mut m, "repl_backlog_active"), "1");
    drop(r);
    drop(stock);
    assert!(
        wait_until(Duration::from_secs(10), || field(
            &mut m,
            "repl_backlog_active"
        ) == "0"),
        "{}",
        master.stderr()
    );
    assert!(master
        .stderr()
        .contains("Replication backlog freed after 1 seconds without connected replicas."));
    let new_id = field(&mut m, "master_replid");
    assert_ne!(new_id, old_id);
    assert_eq!(field(&mut m, "master_repl_offset"), offset);
    assert_eq!(field(&mut m, "master_replid2"), "0".repeat(40));
    // A replica asking to continue the old history gets a full sync at the kept offset.
    let mut link = Raw::connect(master.port);
    let reply = text(&link.call(&[b"PSYNC", old_id.as_bytes(), b"10"]));
    assert!(reply.starts_with("+FULLRESYNC "), "{reply}");
    let off: i64 = offset.parse().expect("offset");
    let fresh: i64 = reply
        .split_whitespace()
        .nth(2)
        .and_then(|o| o.parse().ok())
        .expect("offset");
    assert!(fresh >= off, "{reply} after {offset}");
}

/// Scripts on a master without enough good replicas (`min-replicas-to-write`) get the
/// replies stock gives: a script without flags is refused its first write, one with flags
/// is refused as a write command unless it says `no-writes`.
#[test]
fn scripts_without_good_replicas_are_refused_as_by_stock() {
    let gate = [
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ];
    let ours = Server::start(2, &gate);
    let stock = StockRedis::start(&gate);
    let (mut o, mut s) = (ours.raw(), Raw::connect(stock.port));
    for c in [&mut o, &mut s] {
        assert!(wait_until(Duration::from_secs(5), || text(
            &c.call(&[b"SET", b"k", b"v"])
        )
        .starts_with("-NOREPLICAS")));
    }
    for script in [
        "return redis.call('set','x','1')",
        "redis.call('get','k') return redis.pcall('incr','y')",
        "return redis.call('get','k')",
        "#!lua\nreturn redis.call('set','x','1')",
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn redis.call('get','x')",
    ] {
        let args: [&[u8]; 3] = [b"EVAL", script.as_bytes(), b"0"];
        assert_eq!(text(&o.call(&args)), text(&s.call(&args)), "{script}");
        // Queued: a script refused at queueing aborts the EXEC, as in Redis.
        for step in [&[&b"MULTI"[..]][..], &args, &[b"EXEC"]] {
            assert_eq!(
                text(&o.call(step)),
                text(&s.call(step)),
                "in MULTI: {script}"
            );
        }
    }
}

/// A stock replica shut down with a save and restarted from its RDB (which keeps the
/// replication id and offset in its aux fields) continues with a partial resync, getting
/// what was written while it was down.
#[test]
fn a_stock_replica_restarted_from_its_rdb_resyncs_partially() {
    let master = Server::start(2, &["--save", "", "--repl-diskless-sync-delay", "0"]);
    let mut m = master.raw();
    fill(&mut m, 0);
    let dir = common::TempDir::new("stock-replica");
    let port = master.port.to_string();
    let follow = ["--replicaof", "127.0.0.1", &port];
    let first = stock_on(&dir.path, &follow);
    let mut r = Raw::connect(first.port);
    wait_caught_up(&mut m, &mut r);
    r.send_cmd(&[b"SHUTDOWN", b"SAVE"]);
    r.expect_closed();
    drop(first);
    assert!(dir.path.join("dump.rdb").exists());
    for i in 0..300 {
        cmd(&mut m, &["SET", &format!("while-down:{i}"), &i.to_string()]);
    }
    let second = stock_on(&dir.path, &follow);
    let mut r = Raw::connect(second.port);
    wait_caught_up(&mut m, &mut r);
    assert_resumed_once(&mut m, &mut r, &second);
}

/// REPLCONF rdb-filter-only: `redis-cli --functions-rdb` gets an RDB with the function
/// libraries and no keys, which stock loads; the option's errors, and SYNC from a filtered
/// replica without `capa eof`, are answered as stock answers them.
#[test]
fn redis_cli_functions_rdb_gets_the_libraries_alone() {
    let ours = Server::start(2, &["--save", "", "--repl-diskless-sync-delay", "0"]);
    let stock = StockRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let library = "#!lua name=mylib\nredis.register_function('f1', function() return 1 end)";
    for port in [ours.port, stock.port] {
        let mut c = Raw::connect(port);
        assert_eq!(
            text(&c.call(&[b"FUNCTION", b"LOAD", library.as_bytes()])),
            "$5\r\nmylib\r\n"
        );
        cmd(&mut c, &["SET", "k", "v"]);
    }
    let requests: [&[&[u8]]; 5] = [
        &[b"REPLCONF", b"rdb-filter-only", b"functions"],
        &[b"REPLCONF", b"rdb-filter-only", b""],
        &[b"REPLCONF", b"rdb-filter-only", b"functions bogus"],
        &[b"REPLCONF", b"rdb-filter-only", b"\"functions"],
        &[b"SYNC"],
    ];
    let (mut o, mut s) = (Raw::connect(ours.port), Raw::connect(stock.port));
    for words in requests {
        assert_eq!(text(&o.call(words)), text(&s.call(words)), "{words:?}");
    }
    let (loaded, _dir) = cli_file_loaded_by_stock(ours.port, "--functions-rdb");
    let mut l = Raw::connect(loaded.port);
    assert_eq!(text(&l.call(&[b"DBSIZE"])), ":0\r\n");
    assert_eq!(text(&l.call(&[b"FCALL", b"f1", b"0"])), ":1\r\n");
}

/// An AOF written before `min-replicas-to-write` was set loads whole with it set: the
/// loading client is not refused (Redis loads without its command checks).
#[test]
fn an_aof_loads_whole_with_min_replicas_to_write_set() {
    let dir = common::TempDir::new("aof-min-replicas");
    let d = dir.path.display().to_string();
    // `always`: every acknowledged write is in the file before the kill.
    let mut first = Server::start(
        2,
        &[
            "--dir",
            &d,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    );
    let mut c = first.raw();
    for i in 0..100 {
        cmd(&mut c, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    cmd(&mut c, &["RPUSH", "list", "a", "b"]);
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10));
    let second = Server::start(
        2,
        &[
            "--dir",
            &d,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--min-replicas-to-write",
            "1",
        ],
    );
    let mut c = second.raw();
    assert_eq!(
        text(&c.call(&[b"DBSIZE"])),
        ":101\r\n",
        "{}",
        second.stderr()
    );
    assert_eq!(text(&c.call(&[b"GET", b"k42"])), "$2\r\n42\r\n");
    assert_eq!(
        text(&c.call(&[b"SET", b"x", b"1"])),
        "-NOREPLICAS Not enough good replicas to write.\r\n"
    );
}
