//! Chained replication against stock Redis 7.0: a redcell replica relays its master's stream
//! to a replica of its own (stock → redcell → stock), and a redcell replica follows a stock
//! replica of a redcell master (redcell → stock → redcell). Under a counting writer on the
//! top master, all three converge: the same keys with the same DUMP payloads and expiry
//! times, the same `master_repl_offset`; the middle ↔ bottom link, cut, comes back with a
//! partial resync from the middle's backlog.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{wait_until, Server, StockRedis};

/// Bounded waits: a full sync and catching up take well under a second here; the rest is
/// slack for a loaded 2-core machine.
const SYNC_WITHIN: Duration = Duration::from_secs(30);

fn q(c: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn info(c: &mut redis::Connection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query(c)
        .unwrap_or_else(|e| panic!("INFO {section}: {e}"))
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn info_i64(c: &mut redis::Connection, section: &str, name: &str) -> i64 {
    let text = info(c, section);
    field(&text, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO {section} has no number {name}:\n{text}"))
}

fn link_up(c: &mut redis::Connection) -> bool {
    field(&info(c, "replication"), "master_link_status").as_deref() == Some("up")
}

/// Writers on the top master: INCRs and RPUSHes (some keys with a TTL), each counted once
/// acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    incrs: Arc<AtomicU64>,
    pushes: Arc<AtomicU64>,
    /// INCRs of the writer in database 5 (the stream SELECTs back and forth).
    incrs_db5: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(port: u16, clients: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let incrs = Arc::new(AtomicU64::new(0));
        let pushes = Arc::new(AtomicU64::new(0));
        let incrs_db5 = Arc::new(AtomicU64::new(0));
        let mut threads: Vec<JoinHandle<()>> = (0..clients)
            .map(|id| {
                let (stop, incrs, pushes) = (stop.clone(), incrs.clone(), pushes.clone());
                std::thread::spawn(move || {
                    let mut c = common::connect_redis(port);
                    let mut n: u64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let k = n % 40;
                        match n % 5 {
                            0 | 1 => {
                                q(&mut c, &["INCR", &format!("cnt:{id}:{k}")]);
                                incrs.fetch_add(1, Ordering::Relaxed);
                            }
                            2 | 3 => {
                                q(
                                    &mut c,
                                    &["RPUSH", &format!("list:{id}:{k}"), &format!("v{n}")],
                                );
                                pushes.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                // Expiry times travel as absolute ones (PXAT, PEXPIREAT).
                                q(
                                    &mut c,
                                    &[
                                        "SET",
                                        &format!("ttl:{id}:{k}"),
                                        &format!("{n}"),
                                        "EX",
                                        "1000",
                                    ],
                                );
                                q(&mut c, &["PEXPIRE", &format!("cnt:{id}:{k}"), "5000000"]);
                            }
                        }
                        n += 1;
                        if n.is_multiple_of(20) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        {
            let (stop, done) = (stop.clone(), incrs_db5.clone());
            threads.push(std::thread::spawn(move || {
                let mut c = common::connect_redis(port);
                q(&mut c, &["SELECT", "5"]);
                let mut n: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    q(&mut c, &["INCR", &format!("db5:{}", n % 40)]);
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                    if n.is_multiple_of(10) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }));
        }
        Writers {
            stop,
            incrs,
            pushes,
            incrs_db5,
            threads,
        }
    }

    /// Stops the writers: (INCRs, RPUSHes, INCRs in database 5) acknowledged.
    fn stop(self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("writer thread");
        }
        (
            self.incrs.load(Ordering::Relaxed),
            self.pushes.load(Ordering::Relaxed),
            self.incrs_db5.load(Ordering::Relaxed),
        )
    }
}

/// Waits until the three nodes show the same `master_repl_offset` twice in a row, a little
/// apart (nothing in flight); returns it.
fn wait_same_offset(nodes: &mut [&mut redis::Connection; 3]) -> i64 {
    let mut last = None;
    let mut seen = Vec::new();
    let ok = wait_until(SYNC_WITHIN, || {
        seen = nodes
            .iter_mut()
            .map(|c| info_i64(c, "replication", "master_repl_offset"))
            .collect::<Vec<_>>();
        let same = seen.iter().all(|&o| o == seen[0]);
        let stable = same && last == Some(seen[0]);
        last = same.then_some(seen[0]);
        if !stable {
            std::thread::sleep(Duration::from_millis(100));
        }
        stable
    });
    assert!(ok, "offsets did not converge: {seen:?}");
    seen[0]
}

/// Every key of `nodes` (all databases are 0 here): same keys, DUMP payloads and absolute
/// expiry times; and the counts of acknowledged writes are all there.
fn assert_converged(nodes: &mut [&mut redis::Connection; 3], incrs: u64, pushes: u64) {
    let mut keys: Vec<String> = match q(nodes[0], &["KEYS", "*"]) {
        redis::Value::Array(v) => v
            .into_iter()
            .map(|k| redis::from_redis_value(&k).expect("key"))
            .collect(),
        other => panic!("KEYS: {other:?}"),
    };
    keys.sort();
    assert!(!keys.is_empty());
    for (i, c) in nodes.iter_mut().enumerate().skip(1) {
        let size: i64 = redis::cmd("DBSIZE").query(*c).expect("DBSIZE");
        assert_eq!(
            size as usize,
            keys.len(),
            "node {i} holds another number of keys"
        );
    }
    let (mut incr_sum, mut push_sum) = (0u64, 0u64);
    for k in &keys {
        let dump = |c: &mut redis::Connection| -> (Option<Vec<u8>>, i64) {
            let d: Option<Vec<u8>> = redis::cmd("DUMP").arg(k).query(c).expect("DUMP");
            let t: i64 = redis::cmd("PEXPIRETIME")
                .arg(k)
                .query(c)
                .expect("PEXPIRETIME");
            (d, t)
        };
        let want = dump(nodes[0]);
        assert!(want.0.is_some(), "{k} vanished from the top master");
        for (i, c) in nodes.iter_mut().enumerate().skip(1) {
            assert_eq!(dump(c), want, "key {k} differs on node {i}");
        }
        if k.starts_with("cnt:") {
            let v: u64 = redis::cmd("GET").arg(k).query(nodes[2]).expect("GET");
            incr_sum += v;
        } else if k.starts_with("list:") {
            let n: u64 = redis::cmd("LLEN").arg(k).query(nodes[2]).expect("LLEN");
            push_sum += n;
        }
    }
    assert_eq!(incr_sum, incrs, "acknowledged INCRs missing at the bottom");
    assert_eq!(
        push_sum, pushes,
        "acknowledged RPUSHes missing at the bottom"
    );
}

/// Database 5 of the three nodes on `ports`: the same counters, holding every acknowledged
/// INCR (a relayed stream continues in its master's database: a snapshot taken by the
/// middle must record that database, no SELECT follows it).
fn assert_db5_converged(ports: [u16; 3], incrs: u64) {
    let mut sums = Vec::new();
    for port in ports {
        let mut c = common::connect_redis(port);
        q(&mut c, &["SELECT", "5"]);
        let mut sum = 0u64;
        for k in 0..40 {
            let v: Option<u64> = redis::cmd("GET")
                .arg(format!("db5:{k}"))
                .query(&mut c)
                .expect("GET");
            sum += v.unwrap_or(0);
        }
        let size: u64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
        sums.push((sum, size));
    }
    assert_eq!(sums[0].0, incrs, "database 5 of the top");
    assert!(sums.iter().all(|s| *s == sums[0]), "database 5: {sums:?}");
}

/// Cuts the middle ↔ bottom link on the middle and checks that the bottom comes back with
/// a partial resync (the middle's `sync_partial_ok` goes up, no new full sync).
fn cut_and_resync(middle: &mut redis::Connection, bottom: &mut redis::Connection) {
    let ok_before = info_i64(middle, "stats", "sync_partial_ok");
    let full_before = info_i64(middle, "stats", "sync_full");
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"][..])
        .query(middle)
        .expect("CLIENT KILL");
    assert_eq!(killed, 1, "the middle had one replica to drop");
    let back = wait_until(SYNC_WITHIN, || {
        let resynced = info_i64(middle, "stats", "sync_partial_ok") > ok_before;
        if !resynced {
            std::thread::sleep(Duration::from_millis(50));
        }
        resynced && link_up(bottom)
    });
    assert!(
        back,
        "the bottom did not resync partially:\n{}\n{}",
        info(middle, "stats"),
        info(bottom, "replication")
    );
    assert_eq!(
        info_i64(middle, "stats", "sync_full"),
        full_before,
        "the bottom needed a full sync"
    );
}

fn wait_link(c: &mut redis::Connection, who: &str) {
    assert!(
        wait_until(SYNC_WITHIN, || {
            let up = link_up(c);
            if !up {
                std::thread::sleep(Duration::from_millis(50));
            }
            up
        }),
        "{who}'s link did not come up:\n{}",
        info(c, "replication")
    );
}

#[test]
fn stock_to_redcell_to_stock() {
    let top = StockRedis::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "yes",
    ]);
    let top_port = top.port.to_string();
    let middle = Server::start(
        2,
        &[
            "--replicaof",
            "127.0.0.1",
            &top_port,
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut t = top.conn();
    let mut m = middle.conn();
    wait_link(&mut m, "the middle");
    let writers = Writers::start(top.port, 2);
    std::thread::sleep(Duration::from_millis(500));
    // The bottom's full sync comes from the middle's own snapshot, under the writes.
    let middle_port = middle.port.to_string();
    let bottom = StockRedis::start(&["--replicaof", "127.0.0.1", &middle_port]);
    let mut b = bottom.conn();
    wait_link(&mut b, "the bottom");
    let repl = info(&mut m, "replication");
    assert_eq!(
        field(&repl, "connected_slaves").as_deref(),
        Some("1"),
        "{repl}"
    );
    let slave0 = field(&repl, "slave0").unwrap_or_default();
    assert!(
        slave0.starts_with(&format!("ip=127.0.0.1,port={},state=", bottom.port)),
        "{repl}"
    );
    assert_eq!(
        field(&repl, "repl_backlog_active").as_deref(),
        Some("1"),
        "{repl}"
    );
    // Same history as the top master: its id.
    let top_id = field(&info(&mut t, "replication"), "master_replid");
    assert_eq!(field(&repl, "master_replid"), top_id);
    assert_eq!(field(&info(&mut b, "replication"), "master_replid"), top_id);
    std::thread::sleep(Duration::from_millis(500));
    cut_and_resync(&mut m, &mut b);
    std::thread::sleep(Duration::from_millis(500));
    let (incrs, pushes, incrs5) = writers.stop();
    assert!(incrs > 0 && pushes > 0);
    // A PING from the top (every 10 s) must reach the bottom through the middle too.
    q(&mut t, &["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut nodes = [&mut t, &mut m, &mut b];
    let offset = wait_same_offset(&mut nodes);
    assert!(offset > 0);
    assert_converged(&mut nodes, incrs, pushes);
    assert_db5_converged([top.port, middle.port, bottom.port], incrs5);
    let repl = info(&mut m, "replication");
    assert!(
        field(&repl, "slave0").is_some_and(|s| s.contains("state=online")),
        "{repl}"
    );
    eprintln!("stock -> redcell -> stock: {incrs} INCRs, {pushes} RPUSHes, offset {offset}");

    // A full sync of the middle from the top (its id changed) drops the bottom, which then
    // syncs fully from the middle's new history.
    let full_before = info_i64(&mut m, "stats", "sync_full");
    q(&mut t, &["DEBUG", "CHANGE-REPL-ID"]);
    q(&mut t, &["CLIENT", "KILL", "TYPE", "replica"]);
    q(&mut t, &["INCR", "after:resync"]);
    let new_id = field(&info(&mut t, "replication"), "master_replid");
    let resynced = wait_until(SYNC_WITHIN, || {
        let done = field(&info(&mut b, "replication"), "master_replid") == new_id
            && link_up(&mut b)
            && info_i64(&mut m, "stats", "sync_full") > full_before;
        if !done {
            std::thread::sleep(Duration::from_millis(50));
        }
        done
    });
    assert!(
        resynced,
        "the bottom did not follow the middle's full sync:\n{}\n{}",
        info(&mut m, "replication"),
        info(&mut b, "replication")
    );
    wait_same_offset(&mut [&mut t, &mut m, &mut b]);
    let v: Option<i64> = redis::cmd("GET")
        .arg("after:resync")
        .query(&mut b)
        .expect("GET");
    assert_eq!(v, Some(1));

    // The middle promoted: the bottom continues with it partially (its old id is the
    // middle's replid2) and gets its writes.
    let ok_before = info_i64(&mut m, "stats", "sync_partial_ok");
    q(&mut m, &["REPLICAOF", "NO", "ONE"]);
    let promoted = wait_until(SYNC_WITHIN, || {
        let done = info_i64(&mut m, "stats", "sync_partial_ok") > ok_before && link_up(&mut b);
        if !done {
            std::thread::sleep(Duration::from_millis(50));
        }
        done
    });
    assert!(
        promoted,
        "the bottom did not resync partially with the promoted middle:\n{}\n{}",
        info(&mut m, "replication"),
        info(&mut b, "replication")
    );
    q(&mut m, &["SET", "after:promotion", "x"]);
    assert!(wait_until(SYNC_WITHIN, || {
        let v: Option<String> = redis::cmd("GET")
            .arg("after:promotion")
            .query(&mut b)
            .expect("GET");
        v.as_deref() == Some("x")
    }));
    let m_repl = info(&mut m, "replication");
    let b_repl = info(&mut b, "replication");
    assert_eq!(
        field(&m_repl, "master_replid"),
        field(&b_repl, "master_replid")
    );
    assert_eq!(field(&m_repl, "master_replid2"), new_id, "{m_repl}");
    let same = wait_until(SYNC_WITHIN, || {
        info_i64(&mut m, "replication", "master_repl_offset")
            == info_i64(&mut b, "replication", "master_repl_offset")
    });
    assert!(
        same,
        "{}\n{}",
        info(&mut m, "replication"),
        info(&mut b, "replication")
    );
}

#[test]
fn redcell_to_stock_to_redcell() {
    let top = Server::start(2, &["--repl-diskless-sync-delay", "0"]);
    let top_port = top.port.to_string();
    let middle = StockRedis::start(&[
        "--replicaof",
        "127.0.0.1",
        &top_port,
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let mut t = top.conn();
    let mut m = middle.conn();
    wait_link(&mut m, "the middle");
    let writers = Writers::start(top.port, 2);
    std::thread::sleep(Duration::from_millis(500));
    let middle_port = middle.port.to_string();
    let bottom = Server::start(2, &["--replicaof", "127.0.0.1", &middle_port]);
    let mut b = bottom.conn();
    wait_link(&mut b, "the bottom");
    std::thread::sleep(Duration::from_millis(500));
    cut_and_resync(&mut m, &mut b);
    std::thread::sleep(Duration::from_millis(500));
    let (incrs, pushes, incrs5) = writers.stop();
    assert!(incrs > 0 && pushes > 0);
    q(&mut t, &["CONFIG", "SET", "repl-ping-replica-period", "1"]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut nodes = [&mut t, &mut m, &mut b];
    let offset = wait_same_offset(&mut nodes);
    assert!(offset > 0);
    assert_converged(&mut nodes, incrs, pushes);
    assert_db5_converged([top.port, middle.port, bottom.port], incrs5);
    eprintln!("redcell -> stock -> redcell: {incrs} INCRs, {pushes} RPUSHes, offset {offset}");
}

/// stock → redcell → redcell with disk-based full syncs from the middle (`$<len>` framing,
/// the file saved from the middle's cut), the bottom syncing under the writes.
#[test]
fn disk_sync_from_a_redcell_replica() {
    let top = StockRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let top_port = top.port.to_string();
    let middle = Server::start(
        2,
        &[
            "--replicaof",
            "127.0.0.1",
            &top_port,
            "--repl-diskless-sync",
            "no",
        ],
    );
    let mut t = top.conn();
    let mut m = middle.conn();
    wait_link(&mut m, "the middle");
    let writers = Writers::start(top.port, 2);
    std::thread::sleep(Duration::from_millis(500));
    let middle_port = middle.port.to_string();
    let bottom = Server::start(2, &["--replicaof", "127.0.0.1", &middle_port]);
    let mut b = bottom.conn();
    wait_link(&mut b, "the bottom");
    std::thread::sleep(Duration::from_millis(500));
    let (incrs, pushes, incrs5) = writers.stop();
    let mut nodes = [&mut t, &mut m, &mut b];
    wait_same_offset(&mut nodes);
    assert_converged(&mut nodes, incrs, pushes);
    assert_db5_converged([top.port, middle.port, bottom.port], incrs5);
    assert!(
        middle
            .stderr()
            .contains("Starting BGSAVE for SYNC with target: disk"),
        "{}",
        middle.stderr()
    );
}

/// A sub-replica's full sync from a redcell replica whose master's stream is in database 5:
/// the stream after the snapshot goes on without a SELECT, so the snapshot must say 5
/// (`repl-stream-db`), for a stock and for a redcell sub-replica.
#[test]
fn sub_replica_continues_in_the_streams_database() {
    let top = StockRedis::start(&["--repl-diskless-sync-delay", "0"]);
    let top_port = top.port.to_string();
    let middle = Server::start(
        2,
        &[
            "--replicaof",
            "127.0.0.1",
            &top_port,
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut m = middle.conn();
    wait_link(&mut m, "the middle");
    let mut t = top.conn();
    q(&mut t, &["SELECT", "5"]);
    q(&mut t, &["SET", "before", "1"]);
    let middle_port = middle.port.to_string();
    let stock_bottom = StockRedis::start(&["--replicaof", "127.0.0.1", &middle_port]);
    let our_bottom = Server::start(2, &["--replicaof", "127.0.0.1", &middle_port]);
    for port in [stock_bottom.port, our_bottom.port] {
        let mut b = common::connect_redis(port);
        wait_link(&mut b, "a bottom");
    }
    q(&mut t, &["SET", "after", "2"]);
    for port in [stock_bottom.port, our_bottom.port] {
        let mut b = common::connect_redis(port);
        q(&mut b, &["SELECT", "5"]);
        let arrived = wait_until(SYNC_WITHIN, || {
            let v: Option<String> = redis::cmd("GET").arg("after").query(&mut b).expect("GET");
            v.is_some()
        });
        assert!(
            arrived,
            "port {port}: the write after the sync is not in database 5"
        );
        let size: i64 = redis::cmd("DBSIZE").query(&mut b).expect("DBSIZE");
        assert_eq!(size, 2);
        q(&mut b, &["SELECT", "0"]);
        let size: i64 = redis::cmd("DBSIZE").query(&mut b).expect("DBSIZE");
        assert_eq!(size, 0, "port {port}: database 0 got a key");
    }
}

/// What a client blocked in `command` on `port` gets when that node becomes a replica of
/// `master_port`; checks the connection is closed after it.
fn blocked_client_on_replicaof(port: u16, master_port: u16, command: &[&str]) -> Vec<u8> {
    let mut blocked = common::Raw::connect(port);
    let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    blocked.send_cmd(&args);
    let mut admin = common::connect_redis(port);
    let shown = format!("cmd={}", command[0].to_lowercase());
    let mut list = String::new();
    assert!(
        wait_until(SYNC_WITHIN, || {
            list = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut admin)
                .expect("CLIENT LIST");
            list.contains(&shown)
        }),
        "the client did not block: {list}"
    );
    q(
        &mut admin,
        &["REPLICAOF", "127.0.0.1", &master_port.to_string()],
    );
    let reply = blocked.read_reply();
    blocked.expect_closed();
    q(&mut admin, &["REPLICAOF", "NO", "ONE"]);
    reply
}

/// REPLICAOF on a master unblocks its blocked clients with Redis's UNBLOCKED error and
/// closes them (Redis's `disconnectAllBlockedClients`), as stock does.
#[test]
fn replicaof_unblocks_blocked_clients() {
    let master = StockRedis::start(&[]);
    let stock = StockRedis::start(&[]);
    let ours = Server::start(2, &[]);
    for command in [&["BLPOP", "chain:q", "0"][..], &["WAIT", "1", "0"]] {
        let want = blocked_client_on_replicaof(stock.port, master.port, command);
        assert_eq!(
            String::from_utf8_lossy(&want),
            "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
        );
        let got = blocked_client_on_replicaof(ours.port, master.port, command);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{command:?}"
        );
    }
}
