//! SHUTDOWN and SIGTERM/SIGINT waiting for lagging replicas, as Redis 7.0: a redcell master
//! with a stock `redis-server` replica held with SIGSTOP. SHUTDOWN blocks (and writes are
//! held) until the replica acknowledged everything, `shutdown-timeout` bounds the wait, NOW
//! skips it, SHUTDOWN ABORT cancels it; the signals use `shutdown-on-sigterm`/`-sigint`,
//! whose CONFIG replies match stock's byte for byte.

mod common;

use std::time::{Duration, Instant};

use common::{wait_until, Raw, Server, StockRedis};

const N: usize = 2000;
const SHUTDOWN_ERR: &[u8] = b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n";

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

/// A master (extra settings `extra`) and a stock replica of it that acknowledged the
/// master's whole stream.
fn master_and_replica(extra: &[&str]) -> (Server, StockRedis) {
    let mut args = vec!["--save", "", "--repl-diskless-sync-delay", "0"];
    args.extend_from_slice(extra);
    let master = Server::start(2, &args);
    let port = master.port.to_string();
    let replica = StockRedis::start(&["--replicaof", "127.0.0.1", &port]);
    let mut m = master.raw();
    let mut r = Raw::connect(replica.port);
    let ok = wait_until(Duration::from_secs(30), || {
        let up = info_field(&mut r, "replication", "master_link_status").as_deref() == Some("up");
        let ours = info_field(&mut m, "replication", "master_repl_offset").unwrap_or_default();
        let acked = info_field(&mut m, "replication", "slave0").unwrap_or_default();
        up && acked.contains(&format!("offset={ours},"))
    });
    assert!(ok, "the replica did not catch up");
    (master, replica)
}

/// N acknowledged writes, pipelined.
fn counted_writes(m: &mut Raw) {
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        for i in chunk {
            let (k, v) = (format!("k:{i}"), i.to_string());
            m.send_cmd(&[b"SET", k.as_bytes(), v.as_bytes()]);
        }
        for _ in chunk {
            assert_eq!(m.read_reply(), b"+OK\r\n");
        }
    }
}

/// Whether stock `replica` holds every counted write and nothing else.
fn assert_has_every_write(replica: &StockRedis) {
    let mut r = Raw::connect(replica.port);
    assert_eq!(text(&r.call(&[b"DBSIZE"])), format!(":{N}\r\n"));
    for i in 0..N {
        let k = format!("k:{i}");
        let v = i.to_string();
        assert_eq!(
            text(&r.call(&[b"GET", k.as_bytes()])),
            format!("${}\r\n{v}\r\n", v.len()),
            "{k} on the replica"
        );
    }
}

/// SHUTDOWN waits for a replica that is behind (stopped): the client is not answered, a
/// write from another client is held, INFO counts the time left; once the replica runs
/// again and acknowledged everything, the master exits and the replica has every write the
/// master acknowledged (not the held one).
#[test]
fn shutdown_waits_for_a_lagging_replica_and_loses_nothing() {
    let (mut master, replica) = master_and_replica(&[]);
    let mut m = master.raw();
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    let mut s = master.raw();
    s.send_cmd(&[b"SHUTDOWN"]);
    s.expect_silence(Duration::from_millis(300));
    let mut w = master.raw();
    w.send_cmd(&[b"SET", b"held", b"1"]);
    w.expect_silence(Duration::from_millis(300));
    let left: i64 = info_field(&mut m, "server", "shutdown_in_milliseconds")
        .expect("INFO server shows shutdown_in_milliseconds while waiting")
        .parse()
        .expect("a number");
    assert!(
        (1..=10_000).contains(&left),
        "shutdown_in_milliseconds:{left}"
    );
    assert!(master.alive());
    replica.signal(libc::SIGCONT);
    s.expect_closed();
    assert!(master.wait_exit(Duration::from_secs(10)).success());
    let log = master.stderr();
    assert!(
        log.contains("Waiting for replicas before shutting down.")
            && log.contains("1 of 1 replicas are in sync when shutting down."),
        "{log}"
    );
    assert_has_every_write(&replica);
}

/// SHUTDOWN NOW does not wait for a stopped replica, and reports it lagging.
#[test]
fn shutdown_now_does_not_wait() {
    let (mut master, replica) = master_and_replica(&[]);
    let mut m = master.raw();
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    let started = Instant::now();
    m.send_cmd(&[b"SHUTDOWN", b"NOW"]);
    m.expect_closed();
    assert!(master.wait_exit(Duration::from_secs(10)).success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let log = master.stderr();
    assert!(
        log.contains(&format!(
            "Lagging replica 127.0.0.1:{} reported offset ",
            replica.port
        )) && log.contains("0 of 1 replicas are in sync when shutting down."),
        "{log}"
    );
    assert!(!log.contains("Waiting for replicas"), "{log}");
    replica.signal(libc::SIGCONT);
}

/// SHUTDOWN ABORT during the wait: +OK, both waiting SHUTDOWN clients get the error, the
/// held write runs, writes are served again; a second ABORT finds nothing to abort.
#[test]
fn shutdown_abort_cancels_the_wait() {
    let (mut master, replica) = master_and_replica(&[]);
    let mut m = master.raw();
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    let mut s1 = master.raw();
    s1.send_cmd(&[b"SHUTDOWN"]);
    s1.expect_silence(Duration::from_millis(200));
    let mut s2 = master.raw();
    s2.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    let mut w = master.raw();
    w.send_cmd(&[b"SET", b"held", b"1"]);
    s2.expect_silence(Duration::from_millis(200));
    w.expect_silence(Duration::from_millis(10));
    assert_eq!(m.call(&[b"SHUTDOWN", b"ABORT"]), b"+OK\r\n");
    assert_eq!(s1.read_reply(), SHUTDOWN_ERR);
    assert_eq!(s2.read_reply(), SHUTDOWN_ERR);
    assert_eq!(w.read_reply(), b"+OK\r\n");
    assert_eq!(m.call(&[b"SET", b"after", b"2"]), b"+OK\r\n");
    assert_eq!(m.call(&[b"GET", b"held"]), b"$1\r\n1\r\n");
    assert_eq!(
        info_field(&mut m, "server", "shutdown_in_milliseconds"),
        None
    );
    assert_eq!(
        m.call(&[b"SHUTDOWN", b"ABORT"]),
        b"-ERR No shutdown in progress.\r\n"
    );
    assert!(master.alive());
    assert!(master.stderr().contains("Shutdown manually aborted."));
    replica.signal(libc::SIGCONT);
}

/// `shutdown-timeout` bounds the wait: with the replica kept stopped the master exits
/// after about that long anyway.
#[test]
fn shutdown_timeout_bounds_the_wait() {
    let (mut master, replica) = master_and_replica(&["--shutdown-timeout", "1"]);
    let mut m = master.raw();
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    let started = Instant::now();
    m.send_cmd(&[b"SHUTDOWN"]);
    m.expect_closed();
    let took = started.elapsed();
    assert!(master.wait_exit(Duration::from_secs(10)).success());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let log = master.stderr();
    assert!(
        log.contains("0 of 1 replicas are in sync when shutting down."),
        "{log}"
    );
    replica.signal(libc::SIGCONT);
}

/// A final save that fails after the wait (without FORCE) cancels the shutdown: the waiting
/// client gets the error, the held write runs and the server goes on serving.
#[test]
fn a_failed_final_save_cancels_the_shutdown() {
    let (mut master, replica) = master_and_replica(&[
        "--shutdown-timeout",
        "1",
        "--enable-protected-configs",
        "yes",
    ]);
    let mut m = master.raw();
    let gone = common::TempDir::new("shutdown-gone");
    let gone_s = gone.path.to_str().expect("utf-8 dir");
    assert_eq!(
        m.call(&[b"CONFIG", b"SET", b"dir", gone_s.as_bytes()]),
        b"+OK\r\n"
    );
    std::fs::remove_dir(&gone.path).expect("rmdir");
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    let mut s = master.raw();
    s.send_cmd(&[b"SHUTDOWN", b"SAVE"]);
    s.expect_silence(Duration::from_millis(200));
    let mut w = master.raw();
    w.send_cmd(&[b"SET", b"held", b"1"]);
    w.expect_silence(Duration::from_millis(200));
    assert_eq!(s.read_reply(), SHUTDOWN_ERR);
    assert_eq!(w.read_reply(), b"+OK\r\n");
    assert_eq!(m.call(&[b"SET", b"after", b"2"]), b"+OK\r\n");
    assert!(master.alive());
    let log = master.stderr();
    assert!(
        log.contains("Error trying to save the DB, can't exit."),
        "{log}"
    );
    replica.signal(libc::SIGCONT);
}

/// SIGTERM waits for the lagging replica as SHUTDOWN does (SHUTDOWN ABORT cancels it and
/// the server keeps serving); SIGINT too, and a second SIGINT meanwhile exits at once.
#[test]
fn signals_wait_for_replicas_and_a_second_sigint_insists() {
    let (mut master, replica) = master_and_replica(&[]);
    let mut m = master.raw();
    replica.signal(libc::SIGSTOP);
    counted_writes(&mut m);
    master.signal(libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(5), || {
            info_field(&mut m, "server", "shutdown_in_milliseconds").is_some()
        }),
        "SIGTERM did not start a wait"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(master.alive());
    assert_eq!(m.call(&[b"SHUTDOWN", b"ABORT"]), b"+OK\r\n");
    assert_eq!(m.call(&[b"SET", b"after", b"1"]), b"+OK\r\n");
    master.signal(libc::SIGINT);
    assert!(
        wait_until(Duration::from_secs(5), || {
            info_field(&mut m, "server", "shutdown_in_milliseconds").is_some()
        }),
        "SIGINT did not start a wait"
    );
    assert!(master.alive());
    master.signal(libc::SIGINT);
    let status = master.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(1));
    assert!(master.stderr().contains("You insist... exiting now."));
    replica.signal(libc::SIGCONT);
}

/// `shutdown-on-sigterm save` saves at SIGTERM without save points; `nosave` does not
/// save at SIGTERM although save points are configured.
#[test]
fn shutdown_on_sigterm_chooses_whether_to_save() {
    let mut saving = Server::start(2, &["--save", ""]);
    let mut c = saving.raw();
    assert_eq!(
        c.call(&[b"CONFIG", b"SET", b"shutdown-on-sigterm", b"save"]),
        b"+OK\r\n"
    );
    assert_eq!(c.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    saving.signal(libc::SIGTERM);
    assert!(saving.wait_exit(Duration::from_secs(10)).success());
    assert!(
        saving.dir().join("dump.rdb").exists(),
        "{}",
        saving.stderr()
    );

    let mut skipping = Server::start(2, &["--save", "3600 1", "--shutdown-on-sigterm", "nosave"]);
    let mut c = skipping.raw();
    assert_eq!(c.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    skipping.signal(libc::SIGTERM);
    assert!(skipping.wait_exit(Duration::from_secs(10)).success());
    assert!(
        !skipping.dir().join("dump.rdb").exists(),
        "{}",
        skipping.stderr()
    );
}

/// CONFIG SET/GET of the three directives answer as stock does, byte for byte.
#[test]
fn shutdown_directives_match_stock() {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&[]);
    let steps: &[&[&str]] = &[
        &["CONFIG", "GET", "shutdown-timeout"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["CONFIG", "GET", "shutdown-on-sigterm"],
        &["CONFIG", "SET", "shutdown-timeout", "3"],
        &["CONFIG", "SET", "shutdown-timeout", "-1"],
        &["CONFIG", "SET", "shutdown-timeout", "2147483648"],
        &["CONFIG", "GET", "shutdown-timeout"],
        &["CONFIG", "SET", "shutdown-on-sigint", "save now"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["CONFIG", "SET", "shutdown-on-sigint", "FORCE now default"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["CONFIG", "SET", "shutdown-on-sigint", "save nosave"],
        &["CONFIG", "SET", "shutdown-on-sigint", "nosave save now"],
        &["CONFIG", "GET", "shutdown-on-sigint"],
        &["CONFIG", "SET", "shutdown-on-sigterm", "bogus"],
        &["CONFIG", "SET", "shutdown-on-sigterm", ""],
        &["CONFIG", "SET", "shutdown-on-sigterm", "save bogus"],
        &["CONFIG", "SET", "shutdown-on-sigterm", "nosave force now"],
        &["CONFIG", "GET", "shutdown-on-sigterm"],
        &["CONFIG", "SET", "shutdown-on-sigterm", "default"],
        &["CONFIG", "GET", "shutdown-on-sigterm"],
        &["SHUTDOWN", "ABORT"],
        &["SHUTDOWN", "ABORT", "NOW"],
        &["SHUTDOWN", "SAVE", "NOSAVE"],
    ];
    let mut o = ours.raw();
    let mut s = Raw::connect(stock.port);
    for step in steps {
        let args: Vec<&[u8]> = step.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(text(&o.call(&args)), text(&s.call(&args)), "{step:?}");
    }
}
