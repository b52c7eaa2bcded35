//! Configuration as a Redis user brings it: Debian's own redis.conf read by redcell and by
//! stock Redis 7.0 gives the same CONFIG GET answers; every directive stock lists, redcell
//! lists, with stock's defaults and CONFIG SET replies; the process-wide directives do what
//! they say (`logfile`, `oom-score-adj`, `socket-mark-id`); and a log reader that goes
//! away does not stop the server.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, ping_once, wait_until, ChildGuard, Raw, Server, StockRedis, TempDir, BIN};

/// What the server answered, as text.
fn text(r: &[u8]) -> String {
    String::from_utf8_lossy(r).into_owned()
}

fn call(c: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    text(&c.call(&args))
}

/// CONFIG GET * as a name -> value map (RESP2 array of bulk strings).
fn config_all(c: &mut Raw) -> BTreeMap<String, String> {
    let reply = c.call(&[b"CONFIG", b"GET", b"*"]);
    let mut words = Vec::new();
    let mut rest = &reply[..];
    // *N\r\n then $len\r\nbytes\r\n ...
    let header = rest.iter().position(|&b| b == b'\n').expect("array header");
    rest = &rest[header + 1..];
    while !rest.is_empty() {
        let line = rest.iter().position(|&b| b == b'\n').expect("bulk header");
        let len: usize = std::str::from_utf8(&rest[1..line - 1])
            .expect("utf-8 length")
            .parse()
            .expect("bulk length");
        words.push(text(&rest[line + 1..line + 1 + len]));
        rest = &rest[line + 1 + len + 2..];
    }
    words
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// Directives whose value depends on the process (its port, directory, files), not on
/// the configuration's meaning.
const PER_PROCESS: &[&str] = &["port", "dir", "logfile", "pidfile"];

/// Directives redcell has and Redis 7.0 does not: Redis 7.2's set encoding threshold.
const OURS_ONLY: &[&str] = &["set-max-listpack-entries"];

/// A stock server reading `conf` then `args` as given (not `StockRedis`, which adds its own
/// `--save ""` and more), on a free port; its port and the guard that stops it.
fn stock_with_conf(conf: &str, args: &[&str]) -> (u16, ChildGuard) {
    let port = free_port();
    let mut stock = Command::new("redis-server");
    stock
        .arg(conf)
        .args(["--port", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::die_with_parent(&mut stock);
    let guard = ChildGuard {
        child: stock.spawn().expect("redis-server"),
    };
    assert!(
        wait_until(Duration::from_secs(10), || ping_once(port)),
        "stock did not start from {conf}"
    );
    (port, guard)
}

#[test]
fn config_get_lists_what_stock_lists_with_stock_defaults() {
    let stock = StockRedis::start(&[]);
    let ours = Server::start(1, &["--save", "", "--appendonly", "no"]);
    let theirs = config_all(&mut Raw::connect(stock.port));
    let mut mine = config_all(&mut ours.raw());
    for name in OURS_ONLY {
        assert!(mine.remove(*name).is_some(), "{name}");
    }
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&mine), names(&theirs));
    for (name, value) in &theirs {
        if PER_PROCESS.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(&mine[name], value, "CONFIG GET {name}");
    }
}

#[test]
fn config_set_and_get_reply_as_stock() {
    let stock = StockRedis::start(&[]);
    let ours = Server::start(1, &["--save", ""]);
    let (mut s, mut o) = (Raw::connect(stock.port), ours.raw());
    let cases: &[&[&str]] = &[
        &["CONFIG", "SET", "activedefrag", "yes"],
        &["CONFIG", "SET", "activedefrag", "no"],
        &["CONFIG", "SET", "active-defrag-cycle-max", "100"],
        &["CONFIG", "SET", "active-expire-effort", "11"],
        &["CONFIG", "SET", "active-expire-effort", "4"],
        &["CONFIG", "SET", "oom-score-adj-values", "1 2"],
        &["CONFIG", "SET", "oom-score-adj-values", "0 200 9000"],
        &["CONFIG", "SET", "oom-score-adj-values", "0 2x0 800"],
        &["CONFIG", "SET", "oom-score-adj", "sometimes"],
        &["CONFIG", "SET", "oom-score-adj", "relative"],
        &["CONFIG", "GET", "oom-score-adj"],
        &["CONFIG", "SET", "oom-score-adj", "no"],
        &["CONFIG", "SET", "proc-title-template", "{title} {nope}"],
        &["CONFIG", "SET", "proc-title-template", "{title}"],
        &["CONFIG", "SET", "proc-title-template", "{title"],
        &["CONFIG", "SET", "proc-title-template", "{{ {title} {port}"],
        &["CONFIG", "GET", "proc-title-template"],
        &["CONFIG", "SET", "sanitize-dump-payload", "clients"],
        &["CONFIG", "SET", "replica-ignore-maxmemory", "no"],
        &["CONFIG", "GET", "slave-ignore-maxmemory"],
        &["CONFIG", "SET", "slave-lazy-flush", "yes"],
        &["CONFIG", "GET", "replica-lazy-flush"],
        &["CONFIG", "SET", "unixsocketperm", "700"],
        &["CONFIG", "SET", "socket-mark-id", "1"],
        &["CONFIG", "SET", "disable-thp", "no"],
        &["CONFIG", "SET", "replicaof", "127.0.0.1 1"],
        &["CONFIG", "GET", "replicaof"],
        &["CONFIG", "GET", "slaveof"],
        &["CONFIG", "GET", "*cpulist"],
        &["CONFIG", "GET", "syslog*"],
        &["CONFIG", "GET", "*delay*"],
        &["CONFIG", "SET", "shutdown-timeout", "-1"],
        &["CONFIG", "SET", "rdb-del-sync-files", "maybe"],
    ];
    for case in cases {
        let (mine, theirs) = (call(&mut o, case), call(&mut s, case));
        if case[2].contains('*') {
            // A pattern's matches come in each server's table order: compare them as sets.
            let sorted = |reply: &str| {
                let mut lines: Vec<String> = reply.split("\r\n").map(str::to_string).collect();
                lines.sort();
                lines
            };
            assert_eq!(sorted(&mine), sorted(&theirs), "{case:?}");
        } else {
            assert_eq!(mine, theirs, "{case:?}");
        }
    }
    // Following a master, `replicaof` shows it.
    let master = StockRedis::start(&[]);
    let port = master.port.to_string();
    for c in [&mut s, &mut o] {
        call(c, &["REPLICAOF", "127.0.0.1", &port]);
    }
    let get = ["CONFIG", "GET", "replicaof"];
    assert_eq!(
        call(&mut o, &get),
        format!(
            "*2\r\n$9\r\nreplicaof\r\n${}\r\n127.0.0.1 {port}\r\n",
            10 + port.len()
        )
    );
    assert_eq!(call(&mut o, &get), call(&mut s, &get));
}

/// Debian's /etc/redis/redis.conf (with its own port, directory and files) read by both
/// servers means the same configuration.
#[test]
fn debian_redis_conf_configures_redcell_as_it_configures_stock() {
    let stock_dir = TempDir::new("debian-stock");
    let stock_conf = common::debian_conf(&stock_dir, 0, false);
    let (stock_port, _stock) = stock_with_conf(&stock_conf.display().to_string(), &[]);

    let dir = TempDir::new("debian-ours");
    let conf = common::debian_conf(&dir, 0, false).display().to_string();
    // The harness gives the port (and bind) after the file, as redis-server's argv allows.
    let ours = Server::start_cmd(1, &[], |mut argv| {
        argv.insert(1, conf.clone());
        argv
    });
    let log = std::fs::read_to_string(dir.file("redis.log")).unwrap_or_default();
    assert!(
        log.contains("redcell"),
        "the start-up line is not in logfile: {log:?}"
    );

    let theirs = config_all(&mut Raw::connect(stock_port));
    let mine = config_all(&mut ours.raw());
    for (name, value) in &theirs {
        if PER_PROCESS.contains(&name.as_str()) {
            continue;
        }
        assert_eq!(mine.get(name), Some(value), "CONFIG GET {name}");
    }
}

/// `include` as Redis 7.0 reads it: a file, or every file a glob matches in name order (dot
/// files and directories add nothing, no match is fine), read where the line stands, `save`
/// lines counted as stock counts them; a file that cannot be opened stops start-up in
/// stock's words.
#[test]
fn include_reads_files_and_globs_as_stock_does() {
    let dir = TempDir::new("include");
    let d = dir.path.display().to_string();
    let confd = dir.path.join("conf.d");
    std::fs::create_dir_all(confd.join("30-dir.conf")).expect("mkdir");
    std::fs::write(
        confd.join("10-a.conf"),
        "hz 15\nsave 60 100\nlist-max-listpack-size 64\n",
    )
    .expect("write");
    std::fs::write(confd.join("20-b.conf"), "list-max-listpack-size 32\n").expect("write");
    std::fs::write(confd.join(".hidden.conf"), "hz 99\n").expect("write");
    std::fs::write(dir.file("single.conf"), "maxmemory-samples 7\n").expect("write");
    let main = dir.file("main.conf");
    std::fs::write(
        &main,
        format!(
            "maxmemory-policy allkeys-lru\ninclude {d}/conf.d/*.conf\nsave 900 1\nhz 20\n\
             include {d}/single.conf\ninclude {d}/none.d/*.conf\n"
        ),
    )
    .expect("write");
    let main_s = main.display().to_string();
    let (stock_port, _stock) = stock_with_conf(&main_s, &["--dir", &d]);
    let ours = Server::start_cmd(1, &[], |mut argv| {
        argv.insert(1, main_s.clone());
        argv
    });
    let want = [
        ("hz", "20"),
        // Not "60 100 900 1": in Redis 7.0 the end of an included file ends the "reading
        // the file" state (`reading_config_file`), so each later `save` line replaces.
        ("save", "900 1"),
        ("list-max-listpack-size", "32"),
        ("maxmemory-samples", "7"),
        ("maxmemory-policy", "allkeys-lru"),
    ];
    for port in [stock_port, ours.port] {
        let all = config_all(&mut Raw::connect(port));
        for (name, value) in want {
            assert_eq!(all.get(name).map(String::as_str), Some(value), "{name}");
        }
    }

    // A file that is not there.
    let broken = dir.file("broken.conf");
    std::fs::write(&broken, format!("include {d}/missing.conf\n")).expect("write");
    let words = format!(
        "Fatal error, can't open config file '{d}/missing.conf': No such file or directory"
    );
    for bin in ["redis-server", BIN] {
        let out = common::run_bounded(
            Command::new(bin)
                .arg(&broken)
                .args(["--port", &free_port().to_string()]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(1), "{bin}");
        let err = text(&out.stdout) + &text(&out.stderr);
        assert!(err.contains(&words), "{bin}: {err}");
    }

    // A file that includes itself stops with an error (stock would exhaust its stack).
    let looped = dir.file("loop.conf");
    std::fs::write(&looped, format!("include {}\n", looped.display())).expect("write");
    let out = common::run_bounded(
        Command::new(BIN)
            .arg(&looped)
            .args(["--port", &free_port().to_string()]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("include nested deeper than 16 files"));
}

/// Command-line options are read as stock reads them: appended to the file's text after a
/// newline, each value quoted (so an error names the same line, shown the same way), `save`
/// lines adding to the file's, and a bare `--save` meaning `--save ""`.
#[test]
fn command_line_options_follow_the_file_as_in_stock() {
    let dir = TempDir::new("cmdline");
    let conf = dir.file("redis.conf");
    std::fs::write(&conf, "hz 12\nsave 900 1\n").expect("write");
    let conf = conf.display().to_string();
    // The error block after its first line (which names the server and its version).
    let fatal = |bin: &str, args: &[&str]| {
        let out = common::run_bounded(Command::new(bin).args(args), Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(1), "{bin} {args:?}");
        let err = text(&out.stdout) + &text(&out.stderr);
        let at = err
            .find("Reading the configuration file")
            .unwrap_or_else(|| panic!("{bin}: {err}"));
        err[at..].trim_end().to_string()
    };
    for args in [
        &["--port", "0", "--nosuch", "x y"][..],
        &[
            conf.as_str(),
            "--port",
            "0",
            "--hz",
            "0",
            "--maxmemory",
            "lots",
        ],
    ] {
        let theirs = fatal("redis-server", args);
        assert_eq!(fatal(BIN, args), theirs);
    }

    let ask_save = |port: u16| {
        let reply = call(&mut Raw::connect(port), &["CONFIG", "GET", "save"]);
        reply.lines().nth(4).unwrap_or_default().to_string()
    };
    for (args, want) in [
        (&["--save", "60", "10"][..], "900 1 60 10"),
        (&["--save", "--hz", "11"], ""),
    ] {
        let dir_s = dir.path.to_str().expect("dir");
        let (stock_port, _stock) = stock_with_conf(&conf, &[&["--dir", dir_s][..], args].concat());
        let ours = Server::start_cmd(1, args, |mut argv| {
            argv.insert(1, conf.clone());
            argv
        });
        assert_eq!(ask_save(stock_port), want, "{args:?}");
        assert_eq!(ask_save(ours.port), want, "{args:?}");
    }
}

/// `logfile` takes the log; one that cannot be opened stops start-up in Redis's words.
#[test]
fn logfile_takes_the_log_or_refuses_to_start() {
    let dir = TempDir::new("logfile");
    let log = dir.file("server.log");
    let ours = Server::start(
        1,
        &["--save", "", "--logfile", log.to_str().expect("utf-8")],
    );
    let mut c = ours.raw();
    call(&mut c, &["BGSAVE"]);
    let logged = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Background saving terminated with success")
    });
    assert!(logged, "{:?}", std::fs::read_to_string(&log));
    assert!(!ours.stderr().contains("Background saving"));

    let out = common::run_bounded(
        Command::new(BIN).args([
            "--port",
            &free_port().to_string(),
            "--logfile",
            "/nonexistent/dir/server.log",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stdout) + &text(&out.stderr);
    assert!(
        err.contains("*** FATAL CONFIG FILE ERROR")
            && err.contains("Can't open the log file: No such file or directory"),
        "{err}"
    );
}

/// `oom-score-adj` sets the process's OOM score from `oom-score-adj-values` by role, on
/// CONFIG SET and when the role changes, and `no` puts the original back (Redis's
/// `setOOMScoreAdj`).
#[test]
fn oom_score_adj_follows_the_configuration_and_the_role() {
    let base: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .expect("oom_score_adj")
        .trim()
        .parse()
        .expect("a number");
    let ours = Server::start(
        1,
        &[
            "--save",
            "",
            "--oom-score-adj",
            "relative",
            "--oom-score-adj-values",
            "10 200 800",
        ],
    );
    let score = || -> i64 {
        std::fs::read_to_string(format!("/proc/{}/oom_score_adj", ours.pid()))
            .expect("oom_score_adj")
            .trim()
            .parse()
            .expect("a number")
    };
    assert_eq!(score(), base + 10);
    let mut c = ours.raw();
    call(
        &mut c,
        &["CONFIG", "SET", "oom-score-adj-values", "30 250 800"],
    );
    assert_eq!(score(), base + 30);
    let master = StockRedis::start(&[]);
    call(
        &mut c,
        &["REPLICAOF", "127.0.0.1", &master.port.to_string()],
    );
    assert_eq!(score(), base + 250);
    call(&mut c, &["CONFIG", "SET", "oom-score-adj", "absolute"]);
    assert_eq!(score(), 250);
    call(&mut c, &["REPLICAOF", "NO", "ONE"]);
    assert_eq!(score(), 30);
    call(&mut c, &["CONFIG", "SET", "oom-score-adj", "no"]);
    assert_eq!(score(), base);
}

/// `socket-mark-id`: the client listeners carry it as SO_MARK (`ss -e` shows fwmark).
#[test]
fn socket_mark_id_marks_the_listeners() {
    let ours = Server::start(1, &["--save", "", "--socket-mark-id", "42"]);
    let out = common::run_bounded(
        Command::new("ss").args(["-tlneH", &format!("sport = :{}", ours.port)]),
        Duration::from_secs(10),
    );
    let listing = text(&out.stdout);
    assert!(!listing.trim().is_empty(), "ss lists nothing: {out:?}");
    assert!(
        listing.lines().all(|l| l.contains("fwmark:0x2a")),
        "{listing}"
    );
}

/// A log reader that goes away (stderr a pipe whose reading end is closed) costs the log
/// lines, not the server: saves still run and report, as Redis ignores a failed log write.
#[test]
fn a_log_reader_that_goes_away_does_not_stop_the_server() {
    let dir = TempDir::new("closed-log");
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["--port", &port.to_string(), "--shards", "2", "--save", ""])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::die_with_parent(&mut cmd);
    let mut guard = ChildGuard {
        child: cmd.spawn().expect("redcell-server"),
    };
    // Close the reading ends at once: every log line from now on meets EPIPE.
    drop(guard.child.stdout.take());
    drop(guard.child.stderr.take());
    assert!(
        wait_until(Duration::from_secs(10), || ping_once(port)),
        "did not start"
    );
    let mut c = Raw::connect(port);
    assert_eq!(call(&mut c, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(call(&mut c, &["BGSAVE"]), "+Background saving started\r\n");
    let saved = wait_until(Duration::from_secs(10), || {
        let info = call(&mut Raw::connect(port), &["INFO", "persistence"]);
        info.contains("rdb_bgsave_in_progress:0") && info.contains("rdb_last_bgsave_status:ok")
    });
    assert!(saved, "the save did not finish");
    assert!(dir.file("dump.rdb").exists());
    assert!(guard.exited().is_none(), "the server died");
}
