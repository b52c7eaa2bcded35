//! RDB persistence of the running server, as a user meets it: files moved between redcell
//! and stock Redis 7.0 both ways, a BGSAVE that holds exactly the dataset of the instant it
//! began while clients keep writing, crashes (SIGKILL) that keep the last completed save and
//! nothing else, save points, SHUTDOWN and SIGTERM, a failed save that stops writes
//! (MISCONF), loading with `-LOADING` answers, corrupt files refused at start-up, FLUSHALL
//! and DEBUG RELOAD.

mod common;
mod persist_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{die_with_parent, free_port, ChildGuard, Raw, Server, TempDir, BIN};
use persist_common::*;
use redcell::rdb::file_reader::{read_rdb_file, RdbEvent, RdbReadOptions};
use redcell::types::Value;

const LIBRARY: &str =
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)";

const MISCONF: &str = "-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.\r\n";

/// Starts redcell with its data files in `dir`, and waits (bounded) until it has loaded
/// them: PING, which start-up waits for, is answered while loading, other commands get
/// `-LOADING`.
fn redcell_on(dir: &Path, shards: usize, extra: &[&str]) -> Server {
    let mut args = vec!["--dir", dir.to_str().expect("utf-8 dir")];
    args.extend_from_slice(extra);
    let server = Server::start(shards, &args);
    let mut c = server.raw();
    let loaded = common::wait_until(Duration::from_secs(20), || {
        text(&c.call(&[b"INFO", b"persistence"])).contains("loading:0\r\n")
    });
    assert!(loaded, "still loading after 20 s");
    server
}

fn text(r: &[u8]) -> String {
    String::from_utf8_lossy(r).into_owned()
}

/// One field of INFO persistence.
fn info_field(c: &mut Raw, field: &str) -> String {
    let info = text(&cmd(c, &["INFO", "persistence"]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO has no {field}: {info}"))
        .trim()
        .to_string()
}

fn wait_bgsave_done(c: &mut Raw) {
    assert!(
        common::wait_until(Duration::from_secs(60), || info_field(
            c,
            "rdb_bgsave_in_progress"
        ) == "0"),
        "BGSAVE did not end within a minute"
    );
}

/// Every string key of a file: (db, key) -> (value, expire ms).
/// (db, key) -> (value, expire ms), for string keys.
type FileStrings = BTreeMap<(u64, Vec<u8>), (Vec<u8>, Option<i64>)>;

fn file_strings(path: &Path) -> FileStrings {
    let mut out = BTreeMap::new();
    let mut sink = |ev: RdbEvent| {
        if let RdbEvent::Entry(e) = ev {
            if let Value::Str(s) = &e.value {
                out.insert((e.db, e.key.clone()), (s.to_vec(), e.expire_ms));
            }
        }
        Ok(())
    };
    read_rdb_file(path, &RdbReadOptions::default(), &mut sink)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    out
}

#[test]
fn files_move_between_redcell_and_stock_both_ways() {
    let dir = TempDir::new("persist-move");
    // Stock writes a file with every type and encoding in every database.
    let stock = stock_on(&dir.path, &[]);
    let mut s = Raw::connect(stock.port);
    for db in 0..DATABASES {
        fill(&mut s, db);
    }
    cmd(&mut s, &["FUNCTION", "LOAD", LIBRARY]);
    cmd(&mut s, &["SAVE"]);
    let want = snapshot(&mut s);
    drop(s);
    drop(stock);

    // redcell (two shards) loads it at start-up.
    let ours = redcell_on(&dir.path, 2, &[]);
    let mut c = ours.raw();
    assert_same_keyspace(&snapshot(&mut c), &want);
    assert_eq!(
        info_field(&mut c, "rdb_last_load_keys_loaded"),
        want.len().to_string()
    );
    assert!(ours.stderr().contains("Done loading RDB, keys loaded:"));
    // The file's function library came along.
    assert_eq!(text(&cmd(&mut c, &["FCALL", "myfunc", "0"])), ":1\r\n");

    // SAVE, then BGSAVE without compression: stock loads each to the same keyspace.
    for (how, compression) in [("SAVE", "yes"), ("BGSAVE", "no")] {
        cmd(&mut c, &["CONFIG", "SET", "rdbcompression", compression]);
        let before = std::fs::metadata(dir.file("dump.rdb"))
            .expect("stat")
            .modified()
            .ok();
        let reply = text(&cmd(&mut c, &[how]));
        if how == "SAVE" {
            assert_eq!(reply, "+OK\r\n");
        } else {
            assert_eq!(reply, "+Background saving started\r\n");
            wait_bgsave_done(&mut c);
        }
        assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
        assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
        assert_ne!(
            std::fs::metadata(dir.file("dump.rdb"))
                .expect("stat")
                .modified()
                .ok(),
            before
        );
        let check = common::run_bounded(
            Command::new("redis-check-rdb").arg(dir.file("dump.rdb")),
            Duration::from_secs(30),
        );
        assert!(
            text(&check.stdout).contains("RDB looks OK"),
            "{how}: redis-check-rdb says {}",
            text(&check.stdout)
        );
        let copy = TempDir::new("persist-move-copy");
        std::fs::copy(dir.file("dump.rdb"), copy.file("dump.rdb")).expect("copy");
        let stock = stock_on(&copy.path, &[]);
        let mut s = Raw::connect(stock.port);
        assert_same_keyspace(&snapshot(&mut s), &want);
        assert_eq!(text(&cmd(&mut s, &["FCALL", "myfunc", "0"])), ":1\r\n");
    }
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.path)
        .expect("list dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_bgsave_holds_the_dataset_of_the_instant_it_began() {
    let dir = TempDir::new("persist-cut");
    // 1 ms per key: the save of 3,000 keys lasts seconds while the writes below run.
    let ours = redcell_on(
        &dir.path,
        2,
        &["--save", "", "--rdb-key-save-delay", "1000"],
    );
    let mut c = ours.raw();
    let mut want = BTreeMap::new();
    for i in 0..3000u64 {
        let db = i % 2;
        cmd(&mut c, &["SELECT", &db.to_string()]);
        let (k, v) = (format!("k{i}"), format!("old{i}"));
        cmd(&mut c, &["SET", &k, &v]);
        let mut at = None;
        if i % 7 == 0 {
            let t = 4_000_000_000_000 + i as i64;
            cmd(&mut c, &["PEXPIREAT", &k, &t.to_string()]);
            at = Some(t);
        }
        want.insert((db, k.into_bytes()), (v.into_bytes(), at));
    }
    assert_eq!(
        text(&cmd(&mut c, &["BGSAVE"])),
        "+Background saving started\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"BGSAVE"])),
        "-ERR Background save already in progress\r\n"
    );
    // Every key changes, a third go, new ones come, db 0 and 1 swap, while the save runs.
    for i in 0..3000u64 {
        cmd(&mut c, &["SELECT", &(i % 2).to_string()]);
        let k = format!("k{i}");
        match i % 3 {
            0 => cmd(&mut c, &["DEL", &k]),
            1 => cmd(&mut c, &["SET", &k, "new"]),
            _ => cmd(&mut c, &["APPEND", &k, "-more"]),
        };
        cmd(&mut c, &["SET", &format!("added{i}"), "x"]);
    }
    cmd(&mut c, &["SWAPDB", "0", "1"]);
    assert_eq!(
        info_field(&mut c, "rdb_bgsave_in_progress"),
        "1",
        "the writes must overlap the save for this test to mean anything"
    );
    wait_bgsave_done(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert_eq!(file_strings(&dir.file("dump.rdb")), want);
    // The writes themselves took effect (k1 was in db 1, swapped into db 0).
    cmd(&mut c, &["SELECT", "0"]);
    assert_eq!(text(&cmd(&mut c, &["GET", "k1"])), "$3\r\nnew\r\n");
    // Stock reads the same instant from the file.
    let stock = stock_on(&dir.path, &[]);
    let mut s = Raw::connect(stock.port);
    assert_eq!(text(&cmd(&mut s, &["GET", "k0"])), "$4\r\nold0\r\n");
    assert_eq!(text(&cmd(&mut s, &["DBSIZE"])), ":1500\r\n");
}

#[test]
fn sigkill_keeps_the_last_completed_save_and_nothing_after_it() {
    let dir = TempDir::new("persist-kill");
    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    let mut c = ours.raw();
    // A counting writer: every SET acknowledged before SAVE's OK must survive.
    let mut acked = 0u64;
    for i in 0..500u64 {
        cmd(&mut c, &["SET", &format!("k{i}"), &i.to_string()]);
        acked += 1;
    }
    assert_eq!(text(&cmd(&mut c, &["SAVE"])), "+OK\r\n");
    let saved = std::fs::read(dir.file("dump.rdb")).expect("dump.rdb after SAVE");
    for i in 500..1000u64 {
        cmd(&mut c, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    // A slow BGSAVE is running when the process dies: its half-written temporary file must
    // not replace the last good one.
    cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "20000"]);
    cmd(&mut c, &["BGSAVE"]);
    assert!(common::wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(&dir.path)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().starts_with("temp-"))
            })
            .unwrap_or(false)
    }));
    drop(c);
    drop(ours); // SIGKILL
    assert_eq!(
        std::fs::read(dir.file("dump.rdb")).expect("dump.rdb"),
        saved
    );

    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), acked as i64);
    for i in 0..1000u64 {
        let got = text(&cmd(&mut c, &["GET", &format!("k{i}")]));
        if i < acked {
            assert_eq!(got, format!("${}\r\n{i}\r\n", i.to_string().len()));
        } else {
            assert_eq!(got, "$-1\r\n", "k{i} was written after the save");
        }
    }
}

#[test]
fn save_points_shutdown_and_sigterm() {
    let dir = TempDir::new("persist-points");
    // A save point met after one second with one change.
    let mut ours = redcell_on(&dir.path, 2, &["--save", "1 1"]);
    let mut c = ours.raw();
    assert_eq!(
        text(&cmd(&mut c, &["CONFIG", "GET", "save"])),
        "*2\r\n$4\r\nsave\r\n$3\r\n1 1\r\n"
    );
    let started = int_reply(&cmd(&mut c, &["LASTSAVE"]));
    cmd(&mut c, &["SET", "by-save-point", "1"]);
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            int_reply(&cmd(&mut c, &["LASTSAVE"])) > started && dir.file("dump.rdb").exists()
        }),
        "no save within 10 s of a met save point"
    );
    assert!(ours.stderr().contains("changes in 1 seconds. Saving..."));
    // SIGTERM saves (there are save points) and exits with 0.
    cmd(&mut c, &["SET", "by-sigterm", "1"]);
    ours.signal(libc::SIGTERM);
    assert!(ours.wait_exit(Duration::from_secs(20)).success());
    assert!(ours
        .stderr()
        .contains("Received SIGTERM scheduling shutdown..."));
    drop(ours);

    let ours = redcell_on(&dir.path, 1, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(text(&cmd(&mut c, &["GET", "by-save-point"])), "$1\r\n1\r\n");
    assert_eq!(text(&cmd(&mut c, &["GET", "by-sigterm"])), "$1\r\n1\r\n");
    // SHUTDOWN NOSAVE loses what came after the last save; SHUTDOWN SAVE saves even
    // without save points.
    cmd(&mut c, &["SET", "lost", "1"]);
    c.send_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    c.expect_closed();
    drop(ours);
    let ours = redcell_on(&dir.path, 1, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(text(&cmd(&mut c, &["GET", "lost"])), "$-1\r\n");
    cmd(&mut c, &["SET", "kept", "1"]);
    c.send_cmd(&[b"SHUTDOWN", b"SAVE"]);
    c.expect_closed();
    drop(ours);
    // Without save points, SIGTERM exits without saving.
    let mut ours = redcell_on(&dir.path, 1, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(text(&cmd(&mut c, &["GET", "kept"])), "$1\r\n1\r\n");
    cmd(&mut c, &["SET", "not-saved", "1"]);
    ours.signal(libc::SIGTERM);
    assert!(ours.wait_exit(Duration::from_secs(20)).success());
    drop(ours);
    let ours = redcell_on(&dir.path, 1, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(text(&cmd(&mut c, &["GET", "not-saved"])), "$-1\r\n");
}

#[test]
fn a_failed_background_save_stops_writes_until_a_save_succeeds() {
    let root = TempDir::new("persist-misconf");
    let gone = root.path.join("gone");
    std::fs::create_dir(&gone).expect("mkdir");
    let ours = redcell_on(
        &gone,
        2,
        &["--save", "3600 1", "--enable-protected-configs", "yes"],
    );
    let mut c = ours.raw();
    cmd(&mut c, &["SET", "k", "v"]);
    // The working directory disappears: the temporary file cannot be created.
    std::fs::remove_dir(&gone).expect("rmdir");
    assert_eq!(c.call(&[b"SAVE"]), b"-ERR\r\n");
    assert_eq!(
        info_field(&mut c, "rdb_last_bgsave_status"),
        "ok",
        "SAVE does not count"
    );
    assert_eq!(
        text(&cmd(&mut c, &["BGSAVE"])),
        "+Background saving started\r\n"
    );
    wait_bgsave_done(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    assert!(ours
        .stderr()
        .contains("Failed opening the temp RDB file temp-"));
    let refused = |c: &mut Raw, args: &[&[u8]]| {
        common::wait_until(Duration::from_secs(5), || text(&c.call(args)) == MISCONF)
    };
    assert!(refused(&mut c, &[b"SET", b"k", b"w"]), "writes refused");
    assert_eq!(text(&c.call(&[b"PING"])), MISCONF);
    assert_eq!(text(&cmd(&mut c, &["GET", "k"])), "$1\r\nv\r\n");
    cmd(&mut c, &["MULTI"]);
    assert_eq!(text(&c.call(&[b"INCR", b"n"])), MISCONF);
    assert_eq!(
        text(&c.call(&[b"EXEC"])),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    // Turning the check off lets writes through; on again, they stop again.
    cmd(
        &mut c,
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"],
    );
    assert!(common::wait_until(Duration::from_secs(5), || c
        .call(&[b"SET", b"k", b"w"])
        == b"+OK\r\n"));
    cmd(
        &mut c,
        &["CONFIG", "SET", "stop-writes-on-bgsave-error", "yes"],
    );
    assert!(refused(&mut c, &[b"SET", b"k", b"x"]));
    // A directory that exists again: the next save succeeds and writes come back.
    let back = root.path.join("back");
    std::fs::create_dir(&back).expect("mkdir");
    cmd(
        &mut c,
        &["CONFIG", "SET", "dir", back.to_str().expect("utf-8")],
    );
    assert_eq!(
        text(&cmd(&mut c, &["BGSAVE"])),
        "+Background saving started\r\n"
    );
    wait_bgsave_done(&mut c);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert!(common::wait_until(Duration::from_secs(5), || c
        .call(&[b"SET", b"k", b"y"])
        == b"+OK\r\n"));
    assert!(back.join("dump.rdb").exists());
}

/// Starts redcell on `dir` without waiting for it to serve (loading may hold PING back).
fn spawn_loading(dir: &TempDir, port: u16, extra: &[&str]) -> ChildGuard {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--shards",
        "2",
    ])
    .args(["--save", "", "--dir", dir.path.to_str().expect("utf-8")])
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.file("stderr")).expect("stderr file"));
    die_with_parent(&mut cmd);
    ChildGuard {
        child: cmd.spawn().expect("spawn redcell-server"),
    }
}

#[test]
fn clients_get_loading_while_the_file_loads() {
    let dir = TempDir::new("persist-loading");
    {
        let ours = redcell_on(
            &dir.path,
            2,
            &["--save", "", "--enable-debug-command", "yes"],
        );
        let mut c = ours.raw();
        for i in 0..3000 {
            cmd(&mut c, &["SET", &format!("k{i}"), "v"]);
        }
        cmd(&mut c, &["SET", "gone", "v", "PX", "1"]);
        cmd(&mut c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
        std::thread::sleep(Duration::from_millis(5));
        cmd(&mut c, &["SAVE"]);
    }
    // One millisecond per key: about three seconds of loading.
    let port = free_port();
    let mut guard = spawn_loading(&dir, port, &["--key-load-delay", "1000"]);
    let mut c = None;
    assert!(common::wait_until(Duration::from_secs(10), || {
        c = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| Raw::connect(port));
        c.is_some()
    }));
    let mut c = c.expect("connected");
    assert_eq!(
        text(&c.call(&[b"GET", b"k1"])),
        "-LOADING Redis is loading the dataset in memory\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"PING"])),
        "-LOADING Redis is loading the dataset in memory\r\n"
    );
    let info = text(&cmd(&mut c, &["INFO", "persistence"]));
    assert!(info.contains("loading:1\r\n"), "{info}");
    assert!(info.contains("loading_total_bytes:"), "{info}");
    assert!(info.contains("loading_eta_seconds:"), "{info}");
    assert!(
        int_reply(&cmd(&mut c, &["LASTSAVE"])) > 0,
        "LASTSAVE is allowed while loading"
    );
    assert!(common::wait_until(Duration::from_secs(30), || {
        c.call(&[b"GET", b"k1"]) == b"$1\r\nv\r\n"
    }));
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 3000);
    assert_eq!(info_field(&mut c, "loading"), "0");
    assert_eq!(info_field(&mut c, "rdb_last_load_keys_loaded"), "3000");
    assert_eq!(info_field(&mut c, "rdb_last_load_keys_expired"), "1");
    assert!(guard.exited().is_none());
}

#[test]
fn corrupt_or_truncated_files_are_refused_at_start_up() {
    let dir = TempDir::new("persist-corrupt");
    {
        let ours = redcell_on(&dir.path, 2, &["--save", ""]);
        let mut c = ours.raw();
        for i in 0..200 {
            cmd(
                &mut c,
                &["RPUSH", &format!("l{i}"), "a", "b", &i.to_string()],
            );
        }
        cmd(&mut c, &["SAVE"]);
    }
    let good = std::fs::read(dir.file("dump.rdb")).expect("dump.rdb");
    let refused = |bytes: &[u8]| -> String {
        std::fs::write(dir.file("dump.rdb"), bytes).expect("write");
        let mut guard = spawn_loading(&dir, free_port(), &[]);
        let status = guard.wait_exit(Duration::from_secs(20));
        let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
        assert_eq!(status.code(), Some(1), "{log}");
        log
    };
    for cut in [
        5,
        9,
        30,
        good.len() / 3,
        good.len() / 2,
        good.len() - 9,
        good.len() - 1,
    ] {
        let log = refused(&good[..cut]);
        assert!(
            log.contains("Fatal error loading the DB (dump.rdb)"),
            "cut {cut}: {log}"
        );
        assert!(
            log.contains("Short read") || log.contains("Wrong signature"),
            "cut {cut}: {log}"
        );
    }
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    let log = refused(&flipped);
    assert!(
        log.contains("Fatal error loading the DB (dump.rdb)"),
        "{log}"
    );
    let mut bad_sum = good.clone();
    let last = bad_sum.len() - 1;
    bad_sum[last] ^= 1;
    assert!(refused(&bad_sum).contains("Wrong RDB checksum"));
    // The good file still loads.
    std::fs::write(dir.file("dump.rdb"), &good).expect("write");
    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    assert_eq!(int_reply(&cmd(&mut ours.raw(), &["DBSIZE"])), 200);
}

#[test]
fn flushall_saves_the_empty_dataset_only_with_save_points() {
    let dir = TempDir::new("persist-flushall");
    let ours = redcell_on(&dir.path, 2, &["--save", "3600 1"]);
    let mut c = ours.raw();
    cmd(&mut c, &["SET", "a", "1"]);
    cmd(&mut c, &["SAVE"]);
    // A slow BGSAVE is stopped by FLUSHALL, which is not a failed save.
    cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "1000000"]);
    cmd(&mut c, &["BGSAVE"]);
    cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    assert_eq!(text(&cmd(&mut c, &["FLUSHALL"])), "+OK\r\n");
    assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    drop(c);
    drop(ours); // SIGKILL right after FLUSHALL: its save is on disk already
    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    let mut c = ours.raw();
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 0);
    // Without save points FLUSHALL writes nothing: the last save survives a crash.
    cmd(&mut c, &["SET", "b", "1"]);
    cmd(&mut c, &["SAVE"]);
    cmd(&mut c, &["FLUSHALL"]);
    drop(c);
    drop(ours);
    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    assert_eq!(text(&cmd(&mut ours.raw(), &["GET", "b"])), "$1\r\n1\r\n");
}

#[test]
fn debug_reload_and_command_errors_as_redis() {
    let dir = TempDir::new("persist-cmds");
    let ours = redcell_on(
        &dir.path,
        2,
        &[
            "--enable-debug-command",
            "yes",
            "--enable-protected-configs",
            "yes",
        ],
    );
    let mut c = ours.raw();
    assert_eq!(
        text(&cmd(&mut c, &["CONFIG", "GET", "save"])),
        "*2\r\n$4\r\nsave\r\n$23\r\n3600 1 300 100 60 10000\r\n"
    );
    cmd(&mut c, &["SET", "a", "1", "PX", "100000000"]);
    cmd(&mut c, &["HSET", "h", "f", "v"]);
    cmd(&mut c, &["SELECT", "5"]);
    cmd(&mut c, &["SET", "five", "5"]);
    assert_eq!(text(&cmd(&mut c, &["DEBUG", "RELOAD"])), "+OK\r\n");
    assert_eq!(text(&cmd(&mut c, &["GET", "five"])), "$1\r\n5\r\n");
    cmd(&mut c, &["SELECT", "0"]);
    assert!(int_reply(&cmd(&mut c, &["PTTL", "a"])) > 99_000_000);
    assert_eq!(text(&cmd(&mut c, &["HGET", "h", "f"])), "$1\r\nv\r\n");
    assert_eq!(
        text(&c.call(&[b"DEBUG", b"RELOAD", b"BOGUS"])),
        "-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n"
    );
    assert_eq!(text(&c.call(&[b"BGSAVE", b"NOW"])), "-ERR syntax error\r\n");
    cmd(&mut c, &["MULTI"]);
    assert_eq!(
        text(&c.call(&[b"SAVE"])),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    cmd(&mut c, &["DISCARD"]);
    for bad in ["1", "0 1", "10 -1", "x 1"] {
        assert_eq!(
            text(&c.call(&[b"CONFIG", b"SET", b"save", bad.as_bytes()])),
            "-ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters\r\n"
        );
    }
    assert_eq!(
        text(&c.call(&[b"CONFIG", b"SET", b"dbfilename", b"a/b.rdb"])),
        "-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - dbfilename can't be a path, just a filename\r\n"
    );
    assert_eq!(
        text(&cmd(&mut c, &["BGSAVE", "SCHEDULE"])),
        "+Background saving started\r\n"
    );
    wait_bgsave_done(&mut c);
    // DEBUG RELOAD's save is not counted, as in Redis.
    assert_eq!(info_field(&mut c, "rdb_saves"), "1");
}

/// A writer that counts what the server acknowledged: `SET k<i> <i>` then `INCR counter`,
/// one at a time, until the connection breaks (the server was killed) or `stop` is set.
/// Returns the highest `i` whose INCR was acknowledged (+1), and when each was.
fn counting_writer(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<std::time::Instant>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return acked;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut w = std::io::BufWriter::new(stream.try_clone().expect("clone"));
        let mut r = std::io::BufReader::new(stream);
        let mut line = String::new();
        for i in 0u64.. {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            use std::io::{BufRead, Write};
            let k = format!("k{i}");
            let v = i.to_string();
            let req = format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n",
                k.len(),
                v.len()
            );
            if w.write_all(req.as_bytes())
                .and_then(|()| w.flush())
                .is_err()
            {
                break;
            }
            line.clear();
            if r.read_line(&mut line).map_or(true, |n| n == 0) || line != "+OK\r\n" {
                break;
            }
            line.clear();
            if r.read_line(&mut line).map_or(true, |n| n == 0) || !line.starts_with(':') {
                break;
            }
            acked.push(std::time::Instant::now());
        }
        acked
    })
}

/// Runs the counting writer for `run`, kills the server with SIGKILL under it, restarts on
/// the same directory and returns (acknowledged, counter after restart, ack times, kill time).
fn kill_under_counting_writer(
    dir: &TempDir,
    extra: &[&str],
    run: Duration,
) -> (u64, i64, Vec<std::time::Instant>, std::time::Instant) {
    let ours = redcell_on(&dir.path, 2, extra);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = counting_writer(ours.port, stop.clone());
    std::thread::sleep(run);
    let killed_at = std::time::Instant::now();
    drop(ours); // SIGKILL while the writer writes
    let acks = writer.join().expect("writer");
    let acked = acks.len() as u64;
    assert!(acked > 100, "the writer got only {acked} replies");
    let ours = redcell_on(&dir.path, 2, extra);
    let mut c = ours.raw();
    let counter = parse_opt_int(&cmd(&mut c, &["GET", "counter"])).unwrap_or_default();
    // Every key up to the counter is there, with its value: nothing in between was lost.
    for i in 0..counter as u64 {
        let got = text(&cmd(&mut c, &["GET", &format!("k{i}")]));
        assert_eq!(got, format!("${}\r\n{i}\r\n", i.to_string().len()), "k{i}");
    }
    (acked, counter, acks, killed_at)
}

fn parse_opt_int(r: &[u8]) -> Option<i64> {
    let t = text(r);
    let t = t.strip_prefix('$')?;
    let (_, rest) = t.split_once("\r\n")?;
    rest.trim_end().parse().ok()
}

#[test]
fn aof_always_loses_nothing_acknowledged_under_sigkill() {
    let dir = TempDir::new("aof-always");
    let extra = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let (acked, counter, _, _) =
        kill_under_counting_writer(&dir, &extra, Duration::from_millis(1500));
    // The last command may have reached the file without its reply reaching the writer.
    assert!(
        counter as u64 == acked || counter as u64 == acked + 1,
        "acknowledged {acked}, found {counter}"
    );
    eprintln!("appendfsync always: {acked} acknowledged before SIGKILL, {counter} after restart");
}

#[test]
fn aof_everysec_loses_at_most_the_last_moments_under_sigkill() {
    let dir = TempDir::new("aof-everysec");
    let extra = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ];
    let (acked, counter, acks, killed_at) =
        kill_under_counting_writer(&dir, &extra, Duration::from_millis(2500));
    // A SIGKILL keeps what reached the kernel; only what the writer had not drained yet
    // may be missing: it drains every 0.5 ms, but on a loaded machine (CI runs tests in
    // parallel on 2 cores) its thread can wait much longer for a CPU. everysec's promise
    // is at most a second of writes; an OS crash could lose up to that too.
    let lost = acked.saturating_sub(counter as u64);
    let older = acks
        .iter()
        .filter(|t| killed_at.duration_since(**t) > Duration::from_secs(1))
        .count() as u64;
    assert!(
        counter as u64 >= older,
        "lost a write acknowledged a second before the kill"
    );
    assert!(counter as u64 <= acked + 1);
    eprintln!("appendfsync everysec: {acked} acknowledged, {counter} after restart, {lost} lost");
}

#[test]
fn aof_rewrite_then_restart_has_the_same_data_and_stock_reads_it() {
    let dir = TempDir::new("aof-rewrite");
    let extra = ["--save", "", "--appendonly", "yes"];
    let ours = redcell_on(&dir.path, 2, &extra);
    let mut c = ours.raw();
    for db in [0u64, 3] {
        fill(&mut c, db);
    }
    cmd(&mut c, &["SELECT", "0"]);
    // Writes overlap a slow rewrite: those before its cut are in the base, later ones in
    // the new incr file.
    cmd(&mut c, &["CONFIG", "SET", "rdb-key-save-delay", "300"]);
    assert_eq!(
        text(&cmd(&mut c, &["BGREWRITEAOF"])),
        "+Background append only file rewriting started\r\n"
    );
    assert_eq!(
        text(&c.call(&[b"BGREWRITEAOF"])),
        "-ERR Background append only file rewriting already in progress\r\n"
    );
    assert!(text(&c.call(&[b"BGSAVE"])).starts_with("-ERR Another child process is active (AOF?)"));
    for i in 0..200 {
        cmd(&mut c, &["SET", &format!("during{i}"), "x"]);
        cmd(&mut c, &["INCR", "d0:s:int"]);
    }
    assert!(common::wait_until(Duration::from_secs(60), || {
        info_field(&mut c, "aof_rewrite_in_progress") == "0"
    }));
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    assert_eq!(info_field(&mut c, "aof_rewrites"), "1");
    cmd(&mut c, &["SET", "after", "1"]);
    let want = snapshot(&mut c);
    let aof_dir = dir.path.join("appendonlydir");
    let manifest =
        std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).expect("manifest");
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(
        !aof_dir.join("appendonly.aof.1.incr.aof").exists(),
        "history deleted"
    );
    drop(c);
    drop(ours); // SIGKILL
    let ours = redcell_on(&dir.path, 2, &extra);
    assert_same_keyspace(&snapshot(&mut ours.raw()), &want);
    drop(ours);
    let stock = stock_on(&dir.path, &["--appendonly", "yes"]);
    assert_same_keyspace(&snapshot(&mut Raw::connect(stock.port)), &want);
}

#[test]
fn redcell_loads_the_aof_stock_writes() {
    let dir = TempDir::new("aof-stock");
    let want = {
        let stock = stock_on(
            &dir.path,
            &["--appendonly", "yes", "--appendfsync", "always"],
        );
        let mut s = Raw::connect(stock.port);
        for db in [0u64, 5] {
            fill(&mut s, db);
        }
        cmd(&mut s, &["SELECT", "5"]);
        cmd(&mut s, &["MULTI"]);
        cmd(&mut s, &["INCR", "tx"]);
        cmd(&mut s, &["EXPIRE", "d5:s:int", "10000"]);
        cmd(&mut s, &["EXEC"]);
        snapshot(&mut s)
    }; // stock is killed: its AOF is all there is
    let ours = redcell_on(&dir.path, 2, &["--save", "", "--appendonly", "yes"]);
    // Replayed XCLAIMs stamp consumers with the time of the replay, as in stock.
    assert_same_keyspace_with(&snapshot(&mut ours.raw()), &want, without_seen_times);
}

#[test]
fn a_truncated_aof_tail_loads_only_when_allowed() {
    let dir = TempDir::new("aof-truncated");
    {
        let ours = redcell_on(
            &dir.path,
            2,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        );
        let mut c = ours.raw();
        for i in 0..50 {
            cmd(&mut c, &["SET", &format!("k{i}"), "v"]);
        }
    }
    let incr = dir
        .path
        .join("appendonlydir")
        .join("appendonly.aof.1.incr.aof");
    let bytes = std::fs::read(&incr).expect("incr file");
    std::fs::write(&incr, &bytes[..bytes.len() - 5]).expect("truncate");
    // Refused with aof-load-truncated no, in Redis's words.
    let mut guard = spawn_loading(
        &dir,
        free_port(),
        &["--appendonly", "yes", "--aof-load-truncated", "no"],
    );
    assert_eq!(guard.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
    assert!(
        log.contains("Unexpected end of file reading the append only file"),
        "{log}"
    );
    // Loaded up to the last whole command by default, and the file is cut there.
    let ours = redcell_on(&dir.path, 2, &["--save", "", "--appendonly", "yes"]);
    let mut c = ours.raw();
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 49);
    assert!(ours
        .stderr()
        .contains("loaded anyway because aof-load-truncated is enabled"));
    assert!(std::fs::metadata(&incr).expect("stat").len() < bytes.len() as u64 - 5);
}

#[test]
fn config_set_appendonly_yes_makes_an_aof_of_the_current_data() {
    let dir = TempDir::new("aof-runtime");
    let ours = redcell_on(&dir.path, 2, &["--save", ""]);
    let mut c = ours.raw();
    for i in 0..300 {
        cmd(&mut c, &["SET", &format!("before{i}"), "v"]);
    }
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    cmd(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
    assert!(common::wait_until(Duration::from_secs(30), || {
        info_field(&mut c, "aof_enabled") == "1" && info_field(&mut c, "aof_rewrites") == "1"
    }));
    for i in 0..300 {
        cmd(&mut c, &["SET", &format!("after{i}"), "v"]);
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(c);
    drop(ours); // SIGKILL
    let ours = redcell_on(&dir.path, 2, &["--save", "", "--appendonly", "yes"]);
    assert_eq!(int_reply(&cmd(&mut ours.raw(), &["DBSIZE"])), 600);
}

/// Several writers, each `SET k<j>:<i>`, `RPUSH l<j> <i>`, `INCR c<j>` one at a time, counting
/// acknowledged INCRs, until the server dies. They start from the counters the server has.
fn several_writers(port: u16, writers: usize, start: &[i64]) -> Vec<std::thread::JoinHandle<i64>> {
    (0..writers)
        .map(|j| {
            let from = start[j];
            std::thread::spawn(move || {
                use std::io::{BufRead, Write};
                let mut acked = from;
                let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return acked;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut w = std::io::BufWriter::new(stream.try_clone().expect("clone"));
                let mut r = std::io::BufReader::new(stream);
                let mut line = String::new();
                for i in from.. {
                    let cmds = [
                        common::encode(&[b"SET", format!("k{j}:{i}").as_bytes(), b"v"]),
                        common::encode(&[
                            b"RPUSH",
                            format!("l{j}").as_bytes(),
                            i.to_string().as_bytes(),
                        ]),
                        common::encode(&[b"INCR", format!("c{j}").as_bytes()]),
                    ];
                    for c in &cmds {
                        if w.write_all(c).and_then(|()| w.flush()).is_err() {
                            return acked;
                        }
                        line.clear();
                        if r.read_line(&mut line).map_or(true, |n| n == 0) || line.starts_with('-')
                        {
                            return acked;
                        }
                    }
                    acked = i + 1;
                }
                acked
            })
        })
        .collect()
}

#[test]
fn aof_always_keeps_every_acknowledged_write_over_repeated_sigkills() {
    let dir = TempDir::new("aof-always-cycles");
    let extra = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let writers = 3;
    let mut acked = vec![0i64; writers];
    for cycle in 0..3 {
        let ours = redcell_on(&dir.path, 2, &extra);
        let handles = several_writers(ours.port, writers, &acked);
        std::thread::sleep(Duration::from_millis(700));
        drop(ours); // SIGKILL under the writers
        acked = handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect();
        let ours = redcell_on(&dir.path, 2, &extra);
        let mut c = ours.raw();
        for (j, slot) in acked.iter_mut().enumerate() {
            let a = *slot;
            let got = parse_opt_int(&cmd(&mut c, &["GET", &format!("c{j}")])).unwrap_or(0);
            // The INCR in flight at the kill may be on disk without its reply.
            assert!(
                got == a || got == a + 1,
                "cycle {cycle} writer {j}: acknowledged {a}, found {got}"
            );
            // Each kill may leave one RPUSH whose INCR did not follow; the writer goes on from
            // the counter, so such pushes add up over the cycles.
            let len = int_reply(&cmd(&mut c, &["LLEN", &format!("l{j}")]));
            assert!(
                (got..=got + cycle as i64 + 1).contains(&len),
                "cycle {cycle} writer {j}: list {len}, counter {got}"
            );
            for i in (0..got).step_by(7) {
                assert_eq!(
                    int_reply(&cmd(&mut c, &["EXISTS", &format!("k{j}:{i}")])),
                    1
                );
            }
            *slot = got;
        }
        assert!(
            acked.iter().all(|&a| a > 20 * (cycle + 1) as i64),
            "too few writes: {acked:?}"
        );
    }
    eprintln!("appendfsync always, 3 SIGKILL cycles, 3 writers: {acked:?} writes, none lost");
}

#[test]
fn an_aof_cut_at_every_offset_of_its_last_command() {
    let dir = TempDir::new("aof-every-offset");
    {
        let ours = redcell_on(
            &dir.path,
            2,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        );
        let mut c = ours.raw();
        for i in 0..20 {
            cmd(&mut c, &["SET", &format!("key{i}"), &format!("value{i}")]);
        }
    }
    let incr = dir
        .path
        .join("appendonlydir")
        .join("appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).expect("incr file");
    let last = whole
        .windows(4)
        .rposition(|w| w == b"*3\r\n")
        .expect("a last command");
    for cut in last..whole.len() {
        std::fs::write(&incr, &whole[..cut]).expect("cut");
        if cut % 4 == 0 && cut > last {
            let mut guard = spawn_loading(
                &dir,
                free_port(),
                &["--appendonly", "yes", "--aof-load-truncated", "no"],
            );
            assert_eq!(
                guard.wait_exit(Duration::from_secs(20)).code(),
                Some(1),
                "cut at {cut}"
            );
        }
        let ours = redcell_on(&dir.path, 2, &["--save", "", "--appendonly", "yes"]);
        let mut c = ours.raw();
        assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 19, "cut at {cut}");
        assert_eq!(text(&cmd(&mut c, &["GET", "key18"])), "$7\r\nvalue18\r\n");
        // The file was cut back to its last whole command.
        assert_eq!(
            std::fs::metadata(&incr).expect("stat").len(),
            last as u64,
            "cut at {cut}"
        );
    }
}

#[test]
fn wrong_versions_and_corrupt_aofs_are_refused_with_the_file_named() {
    let dir = TempDir::new("persist-versions");
    std::fs::write(dir.file("dump.rdb"), b"REDIS0099\xff\0\0\0\0\0\0\0\0").expect("write");
    let mut guard = spawn_loading(&dir, free_port(), &[]);
    assert_eq!(guard.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
    assert!(
        log.contains("Fatal error loading the DB (dump.rdb): Can't handle RDB format version 99"),
        "{log}"
    );
    std::fs::remove_file(dir.file("dump.rdb")).expect("rm");
    {
        let ours = redcell_on(
            &dir.path,
            2,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        );
        let mut c = ours.raw();
        for i in 0..20 {
            cmd(&mut c, &["SET", &format!("key{i}"), "v"]);
        }
    }
    let incr = dir
        .path
        .join("appendonlydir")
        .join("appendonly.aof.1.incr.aof");
    let mut bytes = std::fs::read(&incr).expect("incr");
    let mid = bytes.len() / 2;
    let star = mid
        + bytes[mid..]
            .iter()
            .position(|&b| b == b'*')
            .expect("a command");
    bytes[star] = b'?';
    std::fs::write(&incr, &bytes).expect("write");
    let mut guard = spawn_loading(&dir, free_port(), &["--appendonly", "yes"]);
    assert_eq!(guard.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
    assert!(
        log.contains("Bad file format reading the append only file appendonly.aof.1.incr.aof"),
        "{log}"
    );
}

#[test]
fn config_set_dir_to_a_missing_directory_is_refused_as_redis() {
    let stock = common::StockRedis::start(&["--enable-protected-configs", "yes"]);
    let ours = Server::start(1, &["--enable-protected-configs", "yes"]);
    let args: [&[u8]; 4] = [b"CONFIG", b"SET", b"dir", b"/nonexistent/redcell"];
    assert_eq!(
        text(&ours.raw().call(&args)),
        text(&Raw::connect(stock.port).call(&args))
    );
}

/// Sets the running server's file-size limit (`prlimit`, util-linux, as tests/startup.rs).
fn set_fsize_limit(pid: u32, limit: &str) {
    let out = common::run_bounded(
        Command::new("prlimit").args(["--pid", &pid.to_string(), &format!("--fsize={limit}")]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "prlimit: {out:?}");
}

/// An AOF write that fails (here: EFBIG under a file-size limit) refuses writes and PING
/// with Redis's MISCONF text, keeps what it could not write, and writes it once the disk
/// takes it again: after a SIGKILL every acknowledged write is there.
#[test]
fn a_failed_aof_write_refuses_writes_until_it_succeeds_again() {
    let dir = TempDir::new("aof-efbig");
    let extra = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ];
    let ours = redcell_on(&dir.path, 2, &extra);
    let mut c = ours.raw();
    set_fsize_limit(ours.pid(), "65536:");
    let value = "v".repeat(1000);
    let mut acked = 0;
    let misconf = "-MISCONF Errors writing to the AOF file: File too large\r\n";
    let refused = common::wait_until(Duration::from_secs(20), || {
        let r = text(&c.call(&[b"SET", format!("k{acked}").as_bytes(), value.as_bytes()]));
        if r == "+OK\r\n" {
            acked += 1;
            return false;
        }
        assert_eq!(r, misconf);
        true
    });
    assert!(refused, "writes were never refused ({acked} acknowledged)");
    assert!(acked > 10, "only {acked} writes before the limit");
    assert_eq!(text(&c.call(&[b"PING"])), misconf);
    assert_eq!(
        text(&c.call(&[b"GET", b"k0"])),
        format!("$1000\r\n{value}\r\n")
    );
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "err");
    set_fsize_limit(ours.pid(), "unlimited:");
    assert!(common::wait_until(Duration::from_secs(10), || {
        text(&c.call(&[b"SET", b"after", b"1"])) == "+OK\r\n"
    }));
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "ok");
    // Everything reached the kernel within a drain pass; then SIGKILL and restart.
    std::thread::sleep(Duration::from_millis(200));
    drop(c);
    drop(ours);
    let ours = redcell_on(&dir.path, 2, &extra);
    let mut c = ours.raw();
    for i in 0..acked {
        assert_eq!(
            text(&c.call(&[b"STRLEN", format!("k{i}").as_bytes()])),
            ":1000\r\n",
            "k{i} of {acked}"
        );
    }
    assert_eq!(text(&c.call(&[b"GET", b"after"])), "$1\r\n1\r\n");
}

/// Waits (bounded) for the running AOF rewrite to end and for `n` rewrites in all.
fn wait_rewrites(c: &mut Raw, n: u64) {
    assert!(
        common::wait_until(Duration::from_secs(60), || {
            info_field(c, "aof_rewrite_in_progress") == "0"
                && info_field(c, "aof_rewrites") == n.to_string()
        }),
        "rewrite {n} did not end within a minute"
    );
    assert_eq!(info_field(c, "aof_last_bgrewrite_status"), "ok");
}

/// The names in an AOF directory (sorted) and its manifest's bytes.
fn aof_dir_layout(dir: &Path) -> (Vec<String>, String) {
    let aof_dir = dir.join("appendonlydir");
    let mut names: Vec<String> = std::fs::read_dir(&aof_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", aof_dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let manifest =
        std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).expect("manifest");
    (names, manifest)
}

#[test]
fn bgrewriteaof_with_appendonly_no_leaves_what_stock_leaves() {
    let (ours_dir, stock_dir) = (TempDir::new("aofoff-ours"), TempDir::new("aofoff-stock"));
    // An AOF from an earlier `appendonly yes` run (base 1, incr 1) in both directories.
    {
        let ours = redcell_on(
            &ours_dir.path,
            2,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        );
        let mut c = ours.raw();
        cmd(&mut c, &["SET", "old", "1"]);
        cmd(&mut c, &["SET", "gone", "1"]);
    }
    copy_dir(
        &ours_dir.path.join("appendonlydir"),
        &stock_dir.path.join("appendonlydir"),
    );
    let mut layouts = Vec::new();
    for (dir, is_stock) in [(&ours_dir, false), (&stock_dir, true)] {
        let extra = ["--save", "", "--appendonly", "no"];
        let (_ours, _stock, port);
        if is_stock {
            let s = stock_on(&dir.path, &extra);
            port = s.port;
            _stock = Some(s);
            _ours = None;
        } else {
            let s = redcell_on(&dir.path, 2, &extra);
            port = s.port;
            _ours = Some(s);
            _stock = None;
        }
        let mut c = Raw::connect(port);
        cmd(&mut c, &["SET", "a", "1"]);
        cmd(&mut c, &["DEL", "gone"]);
        assert_eq!(
            int_reply(&cmd(&mut c, &["DBSIZE"])),
            1,
            "the AOF is not loaded"
        );
        for n in 1..=2 {
            assert_eq!(
                text(&cmd(&mut c, &["BGREWRITEAOF"])),
                "+Background append only file rewriting started\r\n"
            );
            wait_rewrites(&mut c, n);
            layouts.push(aof_dir_layout(&dir.path));
        }
        assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    }
    // Stock numbers its new bases from the manifest it found at start-up, as we do.
    assert_eq!(layouts[0], layouts[2], "after the first rewrite");
    assert_eq!(layouts[1], layouts[3], "after the second rewrite");
    assert_eq!(
        layouts[1],
        (
            vec![
                "appendonly.aof.3.base.rdb".to_string(),
                "appendonly.aof.manifest".to_string()
            ],
            "file appendonly.aof.3.base.rdb seq 3 type b\n".to_string()
        )
    );
    // The directory is a whole AOF of the data at the rewrite (the old AOF was not
    // loaded): each server starts from its own.
    let want: Vec<&[u8]> = vec![b"$1\r\n1\r\n", b"$-1\r\n", b"$-1\r\n"];
    let get = |port: u16| -> Vec<Vec<u8>> {
        let mut c = Raw::connect(port);
        ["a", "gone", "old"]
            .iter()
            .map(|k| cmd(&mut c, &["GET", k]))
            .collect()
    };
    let extra = ["--save", "", "--appendonly", "yes"];
    assert_eq!(get(redcell_on(&ours_dir.path, 2, &extra).port), want);
    assert_eq!(get(stock_on(&stock_dir.path, &extra[2..]).port), want);
    // And stock reads ours.
    assert_eq!(get(stock_on(&ours_dir.path, &extra[2..]).port), want);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// A stream as its commands can rebuild it (replayed from a command base, it has the same
/// entries, ids, counters and groups, but no tombstones, so other node bounds, and
/// consumers seen at the replay): rendered as text; other values as they are.
fn logical_stream(v: Value) -> Value {
    let Value::Stream(st) = v else { return v };
    let mut out = format!(
        "len {} last {:?} first {:?} maxdel {:?} added {}\n",
        st.len(),
        st.last_id,
        st.first_id,
        st.max_deleted,
        st.entries_added
    );
    for node in st.nodes() {
        for e in node.entries().filter(|e| !e.deleted) {
            out.push_str(&format!("{:?} {:?}\n", e.id, e.fields.collect::<Vec<_>>()));
        }
    }
    for (name, g) in &st.groups {
        out.push_str(&format!(
            "group {name:?} {:?} {} {:?}\n",
            g.last_id,
            g.entries_read,
            g.pel
                .iter()
                .map(|(id, n)| (id, n.consumer.clone(), n.delivery_time, n.delivery_count))
                .collect::<Vec<_>>()
        ));
        for (c, cons) in &g.consumers {
            out.push_str(&format!("consumer {c:?} {:?}\n", cons.pel));
        }
    }
    Value::Str(redcell::types::StrValue::from_bytes(out.as_bytes()))
}

/// Fills a server for the command-base tests: every type (streams with groups in db 0),
/// TTLs, a function library.
fn fill_for_resp_base(c: &mut Raw) {
    for db in [0u64, 3] {
        fill(c, db);
    }
    cmd(c, &["SELECT", "0"]);
    // More than 64 elements: several RPUSH/SADD/ZADD/HMSET per key.
    let mut a = vec!["RPUSH".to_string(), "l:130".into()];
    a.extend((0..130).map(|i| format!("e{i}")));
    cmd(c, &a.iter().map(String::as_str).collect::<Vec<_>>());
    cmd(c, &["ZADD", "z:odd", "1.1", "a", "-0.5", "b", "1e300", "c"]);
    cmd(c, &["FUNCTION", "LOAD", LIBRARY]);
}

#[test]
fn a_command_base_loads_into_stock_and_stock_s_into_redcell() {
    let dir = TempDir::new("resp-base");
    let extra = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
        "--appendfsync",
        "always",
    ];
    let want = {
        let ours = redcell_on(&dir.path, 2, &extra);
        // The start-up base on an empty dataset: an empty `.base.aof`, as stock makes it.
        let first = dir.path.join("appendonlydir/appendonly.aof.1.base.aof");
        assert_eq!(std::fs::metadata(&first).expect("empty base").len(), 0);
        let mut c = ours.raw();
        fill_for_resp_base(&mut c);
        cmd(&mut c, &["BGREWRITEAOF"]);
        wait_rewrites(&mut c, 1);
        cmd(&mut c, &["SET", "after", "1"]);
        snapshot(&mut c)
    };
    let (names, manifest) = aof_dir_layout(&dir.path);
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(names.contains(&"appendonly.aof.2.base.aof".to_string()));
    let base =
        std::fs::read(dir.path.join("appendonlydir/appendonly.aof.2.base.aof")).expect("base");
    assert!(
        base.starts_with(b"*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"),
        "{}",
        text(&base[..base.len().min(200)])
    );
    // 130 elements: 64 + 64 + 2.
    assert_eq!(
        base.windows(b"$5\r\nRPUSH\r\n$5\r\nl:130\r\n".len())
            .filter(|w| w == b"$5\r\nRPUSH\r\n$5\r\nl:130\r\n")
            .count(),
        3
    );
    let check = |port: u16, what: &str, want: &BTreeMap<(u64, Vec<u8>), StockKey>| {
        let mut c = Raw::connect(port);
        assert_same_keyspace_with(&snapshot(&mut c), want, logical_stream);
        assert_eq!(
            cmd(&mut c, &["FCALL", "myfunc", "0"]),
            b":1\r\n",
            "{what}: the library"
        );
    };
    {
        let ours = redcell_on(&dir.path, 2, &extra);
        check(ours.port, "redcell", &want);
    }
    {
        let stock = stock_on(&dir.path, &extra);
        check(stock.port, "stock", &want);
    }
    // Stock writes a command base; we load it.
    let dir = TempDir::new("resp-base-stock");
    let want = {
        let stock = stock_on(&dir.path, &extra);
        let mut c = Raw::connect(stock.port);
        fill_for_resp_base(&mut c);
        cmd(&mut c, &["BGREWRITEAOF"]);
        wait_rewrites(&mut c, 1);
        cmd(&mut c, &["SET", "after", "1"]);
        snapshot(&mut c)
    };
    assert!(aof_dir_layout(&dir.path)
        .0
        .contains(&"appendonly.aof.2.base.aof".to_string()));
    let ours = redcell_on(&dir.path, 2, &extra);
    check(ours.port, "redcell on stock's", &want);
}
