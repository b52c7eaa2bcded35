//! `unixsocket` and `unixsocketperm`: clients over a Unix stream socket, served as TCP ones,
//! checked against a stock `redis-server` started the same way (addresses in CLIENT LIST,
//! CONFIG GET, MONITOR, CLIENT KILL ADDR, start-up errors), with `port 0` (the socket
//! alone), `maxclients`, SHUTDOWN removing the socket file, a stale file replaced, and a
//! SYNC (`redis-cli --rdb`) over the socket.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    die_with_parent, run_bounded, ChildGuard, Raw, Server, StockRedis, TempDir, BIN, IO_TIMEOUT,
    START_TIMEOUT,
};

/// A `redis` crate connection over the Unix socket at `path` (a `redis+unix://` URL).
fn unix_conn(path: &Path) -> redis::Connection {
    let url = format!("redis+unix://{}", path.display());
    let client = redis::Client::open(url.as_str()).expect("redis+unix url");
    let con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    con.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con
}

fn query<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// A raw Unix socket client with bounded reads.
fn unix_raw(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// What the peer sends until it closes (or the read timeout).
fn read_until_closed(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Runs `redis-cli -s path args...`.
fn cli_unix(path: &Path, args: &[&str]) -> String {
    let p = path.to_str().expect("utf-8 path");
    let mut all = vec!["-s", p];
    all.extend_from_slice(args);
    let out = common::redis_cli(&all);
    assert!(out.status.success(), "redis-cli {all:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A CLIENT LIST/INFO line's fields.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The fields of a connection that say where it came from, the socket's path written as
/// `<sock>` so two servers' sockets compare.
fn origin(line: &str, sock: &Path) -> Vec<(String, String)> {
    let f = fields(line);
    let sock = sock.to_str().expect("utf-8 path");
    ["addr", "laddr", "flags"]
        .iter()
        .map(|k| {
            let v = f.get(*k).unwrap_or_else(|| panic!("no {k}= in {line}"));
            (k.to_string(), v.replace(sock, "<sock>"))
        })
        .collect()
}

/// The line of MONITOR that SET over the Unix socket makes, the path written as `<sock>`.
fn monitor_line(tcp_port: u16, sock: &Path) -> String {
    // Connected first: what the crate sends on connecting is not part of the comparison.
    let mut con = unix_conn(sock);
    let _: String = query(&mut con, &["PING"]);
    let mut monitor = Raw::connect(tcp_port);
    monitor.send_cmd(&[b"MONITOR"]);
    monitor.expect(b"+OK\r\n");
    let _: () = query(&mut con, &["SET", "seen", "1"]);
    let line = String::from_utf8_lossy(&monitor.read_reply()).into_owned();
    // "+<time> [0 unix:<path>] "SET" "seen" "1"": the time differs between servers.
    let after_time = line.split_once(' ').map_or(&line[..], |(_, rest)| rest);
    after_time.replace(sock.to_str().expect("utf-8 path"), "<sock>")
}

/// CLIENT KILL ADDR <path>:0 from a TCP client with two more Unix clients connected (three in
/// all): how many it killed, and whether those two are gone.
fn kill_by_addr(tcp: &mut redis::Connection, sock: &Path) -> (i64, bool) {
    let mut a = unix_conn(sock);
    let mut b = unix_conn(sock);
    let _: String = query(&mut a, &["PING"]);
    let _: String = query(&mut b, &["PING"]);
    let addr = format!("{}:0", sock.display());
    // Clients that closed before (redis-cli, the BLPOP thread's, MONITOR's) are gone first.
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let list: String = query(tcp, &["CLIENT", "LIST"]);
        let unix = list
            .lines()
            .filter(|l| l.contains(&format!(" addr={addr} ")))
            .count();
        if unix == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unix} Unix clients, not 3:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed: i64 = query(tcp, &["CLIENT", "KILL", "ADDR", &addr]);
    let gone = redis::cmd("PING").query::<String>(&mut a).is_err()
        && redis::cmd("PING").query::<String>(&mut b).is_err();
    (killed, gone)
}

fn file_mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path:?}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

/// A redcell and a stock redis-server with the same Unix socket settings serve the socket
/// alike: SET/GET, pipelining across shards, MULTI/EXEC, a BLPOP served by a TCP client's
/// LPUSH, redis-cli -s; the socket's mode; CLIENT INFO/LIST, CONFIG GET, CONFIG SET's refusal,
/// MONITOR, CLIENT KILL ADDR and `enable-debug-command local` as stock shows them.
#[test]
fn unix_clients_are_served_as_redis_serves_them() {
    let ours_dir = TempDir::new("unix-ours");
    let stock_dir = TempDir::new("unix-stock");
    let ours_sock = ours_dir.file("r.sock");
    let stock_sock = stock_dir.file("r.sock");
    let args = |sock: &PathBuf| -> Vec<String> {
        [
            "--unixsocket",
            sock.to_str().expect("utf-8 path"),
            "--unixsocketperm",
            "700",
            "--enable-debug-command",
            "local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let ours_args = args(&ours_sock);
    let stock_args = args(&stock_sock);
    let server = Server::start(2, &ours_args.iter().map(String::as_str).collect::<Vec<_>>());
    let stock = StockRedis::start(&stock_args.iter().map(String::as_str).collect::<Vec<_>>());

    // unixsocketperm 700, as chmod'ed by stock.
    assert_eq!(file_mode(&ours_sock), 0o700);
    assert_eq!(file_mode(&ours_sock), file_mode(&stock_sock));
    assert!(std::fs::metadata(&ours_sock)
        .expect("stat")
        .file_type()
        .is_socket());

    // Plain commands, and a pipeline whose keys land on both shards.
    let mut con = unix_conn(&ours_sock);
    let _: () = query(&mut con, &["SET", "k", "v"]);
    assert_eq!(query::<String>(&mut con, &["GET", "k"]), "v");
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i);
    }
    for i in 0..200 {
        pipe.cmd("GET").arg(format!("key:{i}"));
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 400);
    for (i, r) in replies[200..].iter().enumerate() {
        assert_eq!(
            r,
            &redis::Value::BulkString(i.to_string().into_bytes()),
            "GET key:{i}"
        );
    }
    // The TCP port sees what the Unix socket wrote.
    let mut tcp = server.conn();
    assert_eq!(query::<String>(&mut tcp, &["GET", "key:150"]), "150");

    // MULTI/EXEC over the socket.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("counter")
        .cmd("INCRBY")
        .arg("counter")
        .arg(10)
        .query(&mut con)
        .expect("MULTI/EXEC");
    assert_eq!((a, b), (1, 11));

    // A BLPOP on the socket, served by an LPUSH over TCP once it blocks.
    let sock = ours_sock.clone();
    let blocked = std::thread::spawn(move || {
        let mut con = unix_conn(&sock);
        query::<Option<(String, String)>>(&mut con, &["BLPOP", "queue", "10"])
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let info: String = query(&mut tcp, &["INFO", "clients"]);
        if info.contains("blocked_clients:1") {
            break;
        }
        assert!(Instant::now() < deadline, "BLPOP never blocked:\n{info}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _: i64 = query(&mut tcp, &["LPUSH", "queue", "job"]);
    assert_eq!(
        blocked.join().expect("BLPOP thread"),
        Some(("queue".to_string(), "job".to_string()))
    );

    // redis-cli -s.
    assert_eq!(cli_unix(&ours_sock, &["SET", "cli", "yes"]), "OK");
    assert_eq!(cli_unix(&ours_sock, &["GET", "cli"]), "yes");

    // CLIENT INFO over the socket: addr and laddr are the path and `:0`, flag U, as stock.
    let mut stock_con = unix_conn(&stock_sock);
    let ours_info: String = query(&mut con, &["CLIENT", "INFO"]);
    let stock_info: String = query(&mut stock_con, &["CLIENT", "INFO"]);
    assert_eq!(
        origin(&ours_info, &ours_sock),
        origin(&stock_info, &stock_sock)
    );
    assert_eq!(
        origin(&ours_info, &ours_sock),
        [
            ("addr".to_string(), "<sock>:0".to_string()),
            ("laddr".to_string(), "<sock>:0".to_string()),
            ("flags".to_string(), "U".to_string()),
        ]
    );
    // CLIENT LIST from a TCP client shows the Unix client the same way.
    let ours_id: i64 = query(&mut con, &["CLIENT", "ID"]);
    let list: String = query(&mut tcp, &["CLIENT", "LIST", "ID", &ours_id.to_string()]);
    assert_eq!(origin(&list, &ours_sock), origin(&ours_info, &ours_sock));
    // The TCP client itself is unchanged (no U).
    let tcp_info: String = query(&mut tcp, &["CLIENT", "INFO"]);
    assert_eq!(fields(&tcp_info)["flags"], "N");
    assert!(
        fields(&tcp_info)["addr"].starts_with("127.0.0.1:"),
        "{tcp_info}"
    );

    // CONFIG GET as stock; CONFIG SET refused as stock (immutable).
    for name in ["unixsocket", "unixsocketperm"] {
        let ours: Vec<String> = query(&mut tcp, &["CONFIG", "GET", name]);
        let theirs: Vec<String> = query(&mut stock.conn(), &["CONFIG", "GET", name]);
        let norm = |v: Vec<String>, sock: &Path| -> Vec<String> {
            v.into_iter()
                .map(|s| s.replace(sock.to_str().expect("utf-8 path"), "<sock>"))
                .collect()
        };
        assert_eq!(norm(ours, &ours_sock), norm(theirs, &stock_sock), "{name}");
    }
    let ours: Vec<String> = query(&mut tcp, &["CONFIG", "GET", "unixsocketperm"]);
    assert_eq!(ours, ["unixsocketperm", "700"]);
    for (name, value) in [("unixsocket", "/tmp/other.sock"), ("unixsocketperm", "777")] {
        let ours = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut tcp)
            .expect_err("immutable")
            .to_string();
        let theirs = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(&mut stock.conn())
            .expect_err("immutable")
            .to_string();
        assert_eq!(ours, theirs, "{name}");
    }

    // DEBUG with `enable-debug-command local`: a Unix socket client is local.
    let ours: String = query(&mut con, &["DEBUG", "SLEEP", "0"]);
    let theirs: String = query(&mut stock_con, &["DEBUG", "SLEEP", "0"]);
    assert_eq!((ours.as_str(), theirs.as_str()), ("OK", "OK"));

    // MONITOR shows a Unix socket client as `unix:<path>`.
    let ours = monitor_line(server.port, &ours_sock);
    assert_eq!(ours, monitor_line(stock.port, &stock_sock));
    assert!(ours.starts_with("[0 unix:<sock>] \"SET\""), "{ours}");

    // CLIENT KILL ADDR <path>:0 kills the Unix clients (the two it opens and `con`).
    let ours = kill_by_addr(&mut tcp, &ours_sock);
    let theirs = kill_by_addr(&mut stock.conn(), &stock_sock);
    assert_eq!(ours, theirs);
    assert_eq!(ours, (3, true));
    drop((con, stock_con));
}

/// Starts redcell with `args` and waits until its Unix socket `sock` answers PING.
fn start_unix_only(args: &[&str], sock: &Path, dir: &TempDir) -> ChildGuard {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.file("stderr")).expect("stderr file"));
    die_with_parent(&mut cmd);
    let mut guard = ChildGuard {
        child: cmd.spawn().expect("start redcell-server"),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = guard.exited() {
            panic!(
                "redcell-server exited at start-up with {status}:\n{}",
                std::fs::read_to_string(dir.file("stderr")).unwrap_or_default()
            );
        }
        if let Ok(mut s) = UnixStream::connect(sock) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let mut got = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut got).is_ok()
                && &got == b"+PONG\r\n"
            {
                return guard;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no PONG on {sock:?} within {START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `port 0` with a `unixsocket`: the socket alone is served, by every shard (the connections
/// its shard hands over included), on both socket paths; `maxclients` counts its clients and
/// refuses the one too many with Redis's error; SHUTDOWN removes the socket file.
#[test]
fn port_zero_serves_the_unix_socket_alone() {
    for io in ["epoll", "glommio"] {
        let dir = TempDir::new("unix-port0");
        let sock = dir.file("r.sock");
        let sock_arg = sock.to_str().expect("utf-8 path");
        let mut server = start_unix_only(
            &[
                "--port",
                "0",
                "--unixsocket",
                sock_arg,
                "--shards",
                "2",
                "--io",
                io,
                "--maxclients",
                "4",
                "--save",
                "",
            ],
            &sock,
            &dir,
        );
        // Four clients (spread over both shards), each with keys on both shards.
        let mut cons: Vec<redis::Connection> = (0..4).map(|_| unix_conn(&sock)).collect();
        for (c, con) in cons.iter_mut().enumerate() {
            for i in 0..8 {
                let key = format!("c{c}:{i}");
                let _: () = query(con, &["SET", &key, &key]);
                assert_eq!(query::<String>(con, &["GET", &key]), key, "{io}");
            }
        }
        let info: String = query(&mut cons[0], &["INFO", "clients"]);
        assert!(info.contains("connected_clients:4"), "{io}: {info}");
        let server_info: String = query(&mut cons[0], &["INFO", "server"]);
        assert!(server_info.contains("tcp_port:0"), "{io}: {server_info}");
        // The fifth is one too many.
        let mut fifth = unix_raw(&sock);
        assert_eq!(
            read_until_closed(&mut fifth),
            b"-ERR max number of clients reached\r\n",
            "{io}"
        );
        // Once one leaves, a new one gets in.
        drop(cons.pop());
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            // Refused while the server has not seen the other leave: the write may fail.
            let mut s = unix_raw(&sock);
            let mut got = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut got).is_ok()
                && &got == b"+PONG\r\n"
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{io}: no room after a client left"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SHUTDOWN over the socket removes the socket file.
        let _ = redis::cmd("SHUTDOWN").query::<()>(&mut cons[0]);
        let status = server.wait_exit(IO_TIMEOUT);
        assert!(status.success(), "{io}: {status}");
        assert!(!sock.exists(), "{io}: the socket file is still there");
        let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
        assert!(
            log.contains("Removing the unix socket file."),
            "{io}: {log}"
        );
        assert!(
            log.contains(&format!(
                "The server is now ready to accept connections at {sock_arg}"
            )),
            "{io}: {log}"
        );
    }
}

/// A file left at the path (a dead server's socket, or anything) is replaced, as Redis
/// unlinks it first; the socket takes the umask's mode without `unixsocketperm`.
#[test]
fn a_stale_file_at_the_path_is_replaced() {
    let dir = TempDir::new("unix-stale");
    let sock = dir.file("r.sock");
    std::fs::write(&sock, b"left over").expect("write stale file");
    let server = Server::start(1, &["--unixsocket", sock.to_str().expect("utf-8 path")]);
    assert!(std::fs::metadata(&sock)
        .expect("stat")
        .file_type()
        .is_socket());
    let mut con = unix_conn(&sock);
    assert_eq!(query::<String>(&mut con, &["PING"]), "PONG");
    drop(server);
}

/// The replication master serves a SYNC over the socket: `redis-cli -s ... --rdb` gets the
/// snapshot, which a stock server then loads, and the master names the replica as Redis
/// does (`/unixsocket`).
#[test]
fn redis_cli_rdb_over_the_socket_gets_the_snapshot() {
    let dir = TempDir::new("unix-rdb");
    let sock = dir.file("r.sock");
    let server = Server::start(
        2,
        &[
            "--unixsocket",
            sock.to_str().expect("utf-8 path"),
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut con = unix_conn(&sock);
    for i in 0..100 {
        let _: () = query(&mut con, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    let rdb = dir.file("out.rdb");
    cli_unix(&sock, &["--rdb", rdb.to_str().expect("utf-8 path")]);
    assert!(
        common::wait_until(IO_TIMEOUT, || server
            .stderr()
            .contains("Replica /unixsocket:0 asks for synchronization")),
        "{}",
        server.stderr()
    );
    let stock = StockRedis::start(&[
        "--dir",
        dir.path.to_str().expect("utf-8 dir"),
        "--dbfilename",
        "out.rdb",
    ]);
    let mut c = Raw::connect(stock.port);
    assert_eq!(c.call(&[b"DBSIZE"]), b":100\r\n");
    assert_eq!(c.call(&[b"GET", b"k42"]), b"$2\r\n42\r\n");
}

/// The start-up error and exit status of a server given `unixsocket path` with `port 0`.
fn start_up_error(program: &str, path: &str, wrap: &[&str]) -> (Option<i32>, String) {
    let mut argv: Vec<&str> = wrap.to_vec();
    argv.extend([program, "--port", "0", "--unixsocket", path, "--save", ""]);
    let dir = TempDir::new("unix-err");
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).current_dir(&dir.path);
    let out = run_bounded(&mut cmd, START_TIMEOUT);
    // redis-server logs to stdout, redcell to stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| {
            l.find("Failed opening Unix socket")
                .map(|at| l[at..].to_string())
        })
        .unwrap_or_else(|| panic!("{program} {path}: no start-up error in:\n{text}"));
    (out.status.code(), line)
}

/// A path too long for `sun_path`, a directory that does not exist, and one the user may not
/// write to: refused at start-up with stock's words, exit status 1 and no panic.
#[test]
fn bad_socket_paths_are_refused_as_redis_refuses_them() {
    let dir = TempDir::new("unix-bad");
    let long = format!("{}/{}.sock", dir.path.display(), "a".repeat(120));
    let missing = format!("{}/no/such/dir/r.sock", dir.path.display());
    let cases = [
        (
            long.clone(),
            format!(
                "Failed opening Unix socket: unix socket path too long ({}), must be under 108",
                long.len()
            ),
        ),
        (
            missing.clone(),
            "Failed opening Unix socket: bind: No such file or directory".to_string(),
        ),
    ];
    // Permission denied: a directory without write permission. Root may write anywhere, so
    // as root both servers run as uid 65534 (from a copy of our binary it can reach).
    let ro = dir.file("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut ours_bin = BIN.to_string();
    let mut wrap: Vec<&str> = Vec::new();
    if root {
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = dir.file("redcell-server");
        std::fs::copy(BIN, &copy).expect("copy binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ours_bin = copy.to_str().expect("utf-8 path").to_string();
        wrap = vec![
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ];
    }
    let denied = format!("{}/r.sock", ro.display());
    for (path, expected) in &cases {
        let ours = start_up_error(BIN, path, &[]);
        let theirs = start_up_error("redis-server", path, &[]);
        assert_eq!(ours, (Some(1), expected.clone()), "{path}");
        assert_eq!(ours, theirs, "{path}");
    }
    let ours = start_up_error(&ours_bin, &denied, &wrap);
    let theirs = start_up_error("redis-server", &denied, &wrap);
    assert_eq!(
        ours,
        (
            Some(1),
            "Failed opening Unix socket: bind: Permission denied".to_string()
        )
    );
    assert_eq!(ours, theirs);
}
