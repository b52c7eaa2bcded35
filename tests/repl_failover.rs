//! FAILOVER (Redis 6.2+'s coordinated failover, not the cluster's) between redcell and stock
//! `redis-server` 7.0 in both directions: a master hands its role to its replica while a
//! counting writer runs, every acknowledged write is on both afterwards, and the old master
//! continues as a replica with a partial resync. Errors are compared with stock's.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{show, wait_until, Raw, Server, StockRedis};

fn text(r: &[u8]) -> String {
    String::from_utf8_lossy(r).into_owned()
}

fn call(c: &mut Raw, words: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    c.call(&args)
}

/// One field of INFO `section`, if present.
fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let info = text(&Raw::connect(port).call(&[b"INFO", section.as_bytes()]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// `replica` follows `master` with its link up.
fn follows(replica: u16, master: u16) -> bool {
    info_field(replica, "replication", "master_port").as_deref() == Some(&master.to_string())
        && info_field(replica, "replication", "master_link_status").as_deref() == Some("up")
}

fn is_master(port: u16) -> bool {
    info_field(port, "replication", "role").as_deref() == Some("master")
}

fn attach(replica: u16, master: u16) {
    let mut c = Raw::connect(replica);
    assert_eq!(
        call(&mut c, &["REPLICAOF", "127.0.0.1", &master.to_string()]),
        b"+OK\r\n"
    );
    let online = format!("port={replica},state=online");
    assert!(
        wait_until(Duration::from_secs(20), || follows(replica, master)
            && text(&call(&mut Raw::connect(master), &["INFO", "replication"]))
                .contains(&online)),
        "{replica} never followed {master}"
    );
}

/// INCRs `counter` on whichever of `ports` is the master now, one at a time, until `stop`:
/// a write refused (READONLY while the roles change) is retried on the other node. Returns
/// how many INCRs were acknowledged; each reply must be the count so far.
fn counting_writer(
    ports: [u16; 2],
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conns = [Raw::connect(ports[0]), Raw::connect(ports[1])];
        let mut at = 0;
        while !stop.load(Ordering::Relaxed) {
            let reply = conns[at].call(&[b"INCR", b"counter"]);
            if reply.starts_with(b":") {
                let n = acked.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(text(&reply), format!(":{n}\r\n"), "INCR reply");
            } else {
                assert!(
                    reply.starts_with(b"-READONLY"),
                    "unexpected reply: {}",
                    show(&reply)
                );
                at = 1 - at;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    })
}

/// A function sending a signal (`-STOP`, `-CONT`) to the redis-server on `port` (its pid is
/// read now, while it still answers).
fn signaller(port: u16) -> impl Fn(&str) {
    let pid = info_field(port, "server", "process_id").expect("process_id");
    move |sig| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// Runs a FAILOVER from `master` to its only replica `replica` under a counting writer and
/// checks the outcome from both sides.
fn fail_over_under_writes(master: u16, replica: u16) {
    attach(replica, master);
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = counting_writer([master, replica], stop.clone(), acked.clone());
    assert!(wait_until(Duration::from_secs(5), || acked
        .load(Ordering::SeqCst)
        > 200));
    let partial_before: u64 = info_field(replica, "stats", "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(call(&mut Raw::connect(master), &["FAILOVER"]), b"+OK\r\n");
    assert!(
        wait_until(Duration::from_secs(15), || is_master(replica)
            && follows(master, replica)),
        "roles did not switch: old master {:?}, old replica {:?}",
        info_field(master, "replication", "role"),
        info_field(replica, "replication", "role"),
    );
    assert_eq!(
        info_field(master, "replication", "master_failover_state").as_deref(),
        Some("no-failover")
    );
    // The old master continued its history: a partial resync with the new one.
    let partial_after: u64 = info_field(replica, "stats", "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        partial_after > partial_before,
        "the old master did not resync partially ({partial_before} -> {partial_after})"
    );
    let before_stop = acked.load(Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(5), || acked
        .load(Ordering::SeqCst)
        > before_stop + 200));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acked = acked.load(Ordering::SeqCst);
    // Every acknowledged INCR is in the new master, and reached the old one.
    let want = format!("${}\r\n{acked}\r\n", acked.to_string().len());
    assert_eq!(
        text(&call(&mut Raw::connect(replica), &["GET", "counter"])),
        want
    );
    assert!(
        wait_until(Duration::from_secs(10), || text(&call(
            &mut Raw::connect(master),
            &["GET", "counter"]
        )) == want),
        "the old master did not get every write"
    );
    // Writes on the old master are refused now.
    let refused = call(&mut Raw::connect(master), &["SET", "x", "1"]);
    assert!(refused.starts_with(b"-READONLY"), "{}", show(&refused));
}

#[test]
fn redcell_master_fails_over_to_a_stock_replica() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    fail_over_under_writes(ours.port, stock.port);
}

#[test]
fn stock_master_fails_over_to_a_redcell_replica() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    fail_over_under_writes(stock.port, ours.port);
    assert!(ours
        .stderr()
        .contains("MASTER MODE enabled (failover request from"));
}

/// The argument and state errors, on both servers alike: without replicas, with one, and
/// on the replica (FAILOVER, PSYNC FAILOVER, WAIT).
#[test]
fn failover_errors_match_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let (ours_replica, stock_replica) = (StockRedis::start(&[]), StockRedis::start(&[]));
    let both = |words: &[&str], on: [u16; 2]| {
        let want = call(&mut Raw::connect(on[1]), words);
        let got = call(&mut Raw::connect(on[0]), words);
        assert_eq!(show(&got), show(&want), "{words:?}");
        assert!(want.starts_with(b"-"), "{words:?}: {}", show(&want));
    };
    let masters = [ours.port, stock.port];
    for words in [
        &["FAILOVER"][..],
        &["FAILOVER", "ABORT"],
        &["FAILOVER", "TIMEOUT", "0"],
        &["FAILOVER", "TIMEOUT", "-5"],
        &["FAILOVER", "TIMEOUT", "x"],
        &["FAILOVER", "TIMEOUT", "10", "TIMEOUT", "10"],
        &["FAILOVER", "TO", "127.0.0.1"],
        &["FAILOVER", "TO", "127.0.0.1", "x"],
        &["FAILOVER", "FORCE", "FORCE"],
        &["FAILOVER", "ABORT", "TIMEOUT", "10"],
        &["FAILOVER", "NOW"],
        &["PSYNC", "abc", "1", "FAILOVER"],
    ] {
        both(words, masters);
    }
    attach(ours_replica.port, ours.port);
    attach(stock_replica.port, stock.port);
    for words in [
        &["FAILOVER", "FORCE"][..],
        &["FAILOVER", "TO", "127.0.0.1", "1", "FORCE"],
        &["FAILOVER", "TO", "127.0.0.1", "1"],
        &["FAILOVER", "TO", "127.0.0.1", "99999"],
        &["FAILOVER", "ABORT"],
    ] {
        both(words, masters);
    }
    // On a replica (redcell following a stock master, against stock following stock).
    let replicas = [ours.port, stock_replica.port];
    attach(ours.port, stock.port);
    for words in [
        &["FAILOVER"][..],
        &[
            "PSYNC",
            "0123456789012345678901234567890123456789",
            "1",
            "FAILOVER",
        ],
        &["WAIT", "0", "0"],
        &["WAIT", "x", "0"],
    ] {
        both(words, replicas);
    }
}

/// A replica that never catches up: without FORCE the failover gives up at its timeout and
/// writes go on on the master; FAILOVER ABORT ends a waiting failover at once; REPLICAOF
/// and replicas' syncs are refused meanwhile.
#[test]
fn failover_that_cannot_finish_is_aborted_and_writes_resume() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    attach(stock.port, ours.port);
    let signal = signaller(stock.port);
    signal("-STOP");
    let mut admin = Raw::connect(ours.port);
    // A write after the stop leaves the replica behind for good.
    assert_eq!(call(&mut admin, &["SET", "behind", "1"]), b"+OK\r\n");
    assert_eq!(
        call(&mut admin, &["FAILOVER", "TIMEOUT", "500"]),
        b"+OK\r\n"
    );
    assert_eq!(
        info_field(ours.port, "replication", "master_failover_state").as_deref(),
        Some("waiting-for-sync")
    );
    assert_eq!(
        text(&call(&mut admin, &["FAILOVER"])),
        "-ERR FAILOVER already in progress.\r\n"
    );
    assert_eq!(
        text(&call(&mut admin, &["REPLICAOF", "NO", "ONE"])),
        "-ERR REPLICAOF not allowed while failing over.\r\n"
    );
    assert_eq!(
        text(&call(&mut admin, &["PSYNC", "?", "-1"])),
        "-NOMASTERLINK Can't SYNC while failing over\r\n"
    );
    // Writes wait (reads do not) until the failover gives up.
    let mut writer = Raw::connect(ours.port);
    writer.send_cmd(&[b"SET", b"held", b"1"]);
    writer.expect_silence(Duration::from_millis(100));
    assert_eq!(call(&mut admin, &["GET", "behind"]), b"$1\r\n1\r\n");
    assert_eq!(
        writer.read_reply_within(Duration::from_secs(5)),
        b"+OK\r\n",
        "the held write did not go on after the timeout"
    );
    assert!(is_master(ours.port));
    assert!(ours
        .stderr()
        .contains("aborted: Replica never caught up before timeout"));
    // FAILOVER ABORT ends a failover that would wait forever.
    assert_eq!(call(&mut admin, &["FAILOVER"]), b"+OK\r\n");
    assert_eq!(call(&mut admin, &["FAILOVER", "ABORT"]), b"+OK\r\n");
    assert_eq!(call(&mut admin, &["SET", "after-abort", "1"]), b"+OK\r\n");
    assert_eq!(
        info_field(ours.port, "replication", "master_failover_state").as_deref(),
        Some("no-failover")
    );
    signal("-CONT");
    assert!(wait_until(Duration::from_secs(10), || {
        text(&call(
            &mut Raw::connect(stock.port),
            &["GET", "after-abort"],
        )) == "$1\r\n1\r\n"
    }));
}

/// FORCE: the named replica takes over at the timeout though it never acknowledged the last
/// write: the master follows it, and once the replica runs again its PSYNC FAILOVER makes it
/// the master.
#[test]
fn forced_failover_goes_to_a_lagging_replica_at_the_timeout() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    attach(stock.port, ours.port);
    let signal = signaller(stock.port);
    let mut admin = Raw::connect(ours.port);
    assert_eq!(call(&mut admin, &["SET", "synced", "1"]), b"+OK\r\n");
    assert!(wait_until(Duration::from_secs(5), || text(&call(
        &mut Raw::connect(stock.port),
        &["GET", "synced"]
    )) == "$1\r\n1\r\n"));
    signal("-STOP");
    assert_eq!(call(&mut admin, &["SET", "lost", "1"]), b"+OK\r\n");
    let port = stock.port.to_string();
    assert_eq!(
        call(
            &mut admin,
            &[
                "FAILOVER",
                "TO",
                "127.0.0.1",
                &port,
                "FORCE",
                "TIMEOUT",
                "300"
            ]
        ),
        b"+OK\r\n"
    );
    assert!(wait_until(Duration::from_secs(5), || info_field(
        ours.port,
        "replication",
        "master_failover_state"
    )
    .as_deref()
        == Some("failover-in-progress")));
    assert!(ours.stderr().contains(&format!(
        "FAILOVER to 127.0.0.1:{port} time out exceeded, failing over."
    )));
    signal("-CONT");
    assert!(
        wait_until(Duration::from_secs(15), || is_master(stock.port)
            && follows(ours.port, stock.port)),
        "roles did not switch"
    );
    assert_eq!(
        info_field(ours.port, "replication", "master_failover_state").as_deref(),
        Some("no-failover")
    );
    // The stopped replica still had the write in its socket's buffer, so here it is not
    // lost; either way the two agree.
    let on_stock = call(&mut Raw::connect(stock.port), &["GET", "lost"]);
    assert!(wait_until(Duration::from_secs(5), || call(
        &mut Raw::connect(ours.port),
        &["GET", "lost"]
    ) == on_stock));
    assert_eq!(
        call(&mut Raw::connect(ours.port), &["GET", "synced"]),
        b"$1\r\n1\r\n"
    );
}

/// FAILOVER TO host port picks that replica among several: it becomes the master, the old
/// master follows it and resyncs partially, and the other replica, reconnecting to the old
/// master (now a replica in the chain), gets every acknowledged write too.
#[test]
fn failover_to_a_named_replica_among_two() {
    let ours = Server::start(2, &[]);
    let (other, target) = (StockRedis::start(&[]), StockRedis::start(&[]));
    attach(other.port, ours.port);
    attach(target.port, ours.port);
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = counting_writer([ours.port, target.port], stop.clone(), acked.clone());
    assert!(wait_until(Duration::from_secs(5), || acked
        .load(Ordering::SeqCst)
        > 200));
    let to = target.port.to_string();
    assert_eq!(
        call(
            &mut Raw::connect(ours.port),
            &["FAILOVER", "TO", "127.0.0.1", &to]
        ),
        b"+OK\r\n"
    );
    assert!(
        wait_until(Duration::from_secs(15), || is_master(target.port)
            && follows(ours.port, target.port)),
        "roles did not switch: ours {:?}, target {:?}",
        info_field(ours.port, "replication", "role"),
        info_field(target.port, "replication", "role"),
    );
    assert!(!is_master(other.port));
    let partial: u64 = info_field(target.port, "stats", "sync_partial_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(partial >= 1, "the old master did not resync partially");
    let before_stop = acked.load(Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(5), || acked
        .load(Ordering::SeqCst)
        > before_stop + 200));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acked = acked.load(Ordering::SeqCst);
    let want = format!("${}\r\n{acked}\r\n", acked.to_string().len());
    for port in [target.port, ours.port, other.port] {
        assert!(
            wait_until(Duration::from_secs(10), || text(&call(
                &mut Raw::connect(port),
                &["GET", "counter"]
            )) == want),
            "{port} did not get every acknowledged write ({acked})"
        );
    }
    assert!(follows(other.port, ours.port) || follows(other.port, target.port));
}
