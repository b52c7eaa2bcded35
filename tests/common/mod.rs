//! Test harness: starts the real `redcell-server` (or a stock `redis-server`) on a free loopback port and stops it on drop.
//!
//! Every wait is bounded, every child process is killed and reaped in `Drop` (which also runs
//! while a failing test unwinds), and nothing listens anywhere but 127.0.0.1.
#![allow(dead_code)]

pub mod cluster;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_redcell-server");

/// How long a server may take to answer its first PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound for any single read a test waits for.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("redcell-test-{}-{}-{}", tag, std::process::id(), n));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago. The kernel picks it (bind to port 0); ports
/// already handed out in this process are skipped so two servers of one test binary never
/// share one (glommio listeners use SO_REUSEPORT, so a second bind would not fail).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found in 100 tries");
}

/// Makes the child die with the thread that spawned it if the test process is killed before
/// `Drop` runs (e.g. a harness timeout). Tests spawn and drop servers on their own thread.
pub fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Kills and reaps a child process on drop.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    /// Waits (bounded) for the process to exit on its own; kills it if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "process {} did not exit within {timeout:?}",
                    self.child.id()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion with a bounded wait; returns its output.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let dir = TempDir::new("run");
    let (out_path, err_path) = (dir.file("stdout"), dir.file("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    die_with_parent(cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut guard = ChildGuard { child };
    let status = guard.wait_exit(timeout);
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// A running `redcell-server`, killed on drop.
pub struct Server {
    pub port: u16,
    guard: ChildGuard,
    dir: TempDir,
}

impl Server {
    /// Starts `redcell-server --shards N` plus `extra` args; panics if it does not serve PING.
    pub fn start(shards: usize, extra: &[&str]) -> Server {
        Server::start_cmd(shards, extra, |c| c)
    }

    /// Like `start`, with a hook that rewrites the argv (binary first) before it is spawned,
    /// e.g. to run the server through `prlimit`/`setpriv`.
    pub fn start_cmd(
        shards: usize,
        extra: &[&str],
        wrap: impl Fn(Vec<String>) -> Vec<String>,
    ) -> Server {
        let mut last_err = String::new();
        // A port picked free can be taken before the server binds it: retry with another.
        for _ in 0..5 {
            let port = free_port();
            let dir = TempDir::new("server");
            let mut argv = vec![
                BIN.to_string(),
                "--port".into(),
                port.to_string(),
                "--shards".into(),
                shards.to_string(),
            ];
            if !extra.contains(&"--bind") {
                argv.extend(["--bind".into(), "127.0.0.1".into()]);
            }
            argv.extend(extra.iter().map(|s| s.to_string()));
            // REDCELL_TEST_IO=glommio|epoll runs the suite on that client socket path.
            if let Ok(io) = std::env::var("REDCELL_TEST_IO") {
                if !extra.contains(&"--io") {
                    argv.extend(["--io".into(), io]);
                }
            }
            let argv = wrap(argv);
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.file("stdout")).expect("stdout file"))
                .stderr(std::fs::File::create(dir.file("stderr")).expect("stderr file"));
            die_with_parent(&mut cmd);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
            let mut server = Server {
                port,
                guard: ChildGuard { child },
                dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => {
                    let stderr = server.stderr();
                    let port_taken = stderr.contains("Could not create server TCP listening")
                        || stderr.contains("in use");
                    last_err = format!("{e}\nargv: {argv:?}\nstderr:\n{stderr}");
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!("redcell-server did not start: {last_err}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.guard.exited() {
                return Err(format!("server exited during start-up with {status}"));
            }
            if ping_once(self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no PONG within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    pub fn pid(&self) -> u32 {
        self.guard.child.id()
    }

    /// What the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.file("stderr")).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// Waits (bounded; panics past `timeout`) for the process to exit; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.guard.wait_exit(timeout)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.guard.exited().is_none()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis` crate connection with bounded timeouts.
    pub fn conn(&self) -> redis::Connection {
        connect_redis(self.port)
    }

    /// A raw socket for byte-exact checks.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Runs `redis-cli -p PORT args...` (fails loudly if redis-cli is missing).
    pub fn cli(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        redis_cli(&all)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- redcell-server (port {}) stderr ---\n{}",
                self.port,
                self.stderr()
            );
        }
    }
}

/// One PING round trip with short timeouts; true on `+PONG` (or `-NOAUTH`: serving, with a
/// password), false while nothing listens or the server answers `-LOADING`.
pub fn ping_once(port: u16) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut got = [0u8; 7];
    s.read_exact(&mut got).is_ok() && (&got == b"+PONG\r\n" || &got == b"-NOAUTH")
}

/// A `redis` crate connection to 127.0.0.1:`port` with bounded timeouts.
pub fn connect_redis(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url");
    let con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    con.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con
}

/// Runs redcell in `dir` (plus `extra` settings) where it must refuse to start.
pub fn redcell_refuses_in(dir: &TempDir, extra: &[&str]) -> (Option<i32>, String) {
    let port = free_port().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
        .args(extra)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.file("stderr")).expect("stderr file"));
    die_with_parent(&mut cmd);
    let mut guard = ChildGuard {
        child: cmd.spawn().expect("start redcell"),
    };
    let status = guard.wait_exit(Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.file("stderr")).unwrap_or_default();
    (status.code(), log)
}

/// A log's `== CRITICAL ==` lines (errors a replica or an AOF load got), without stock's pid,
/// role and time prefix.
pub fn critical_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.find("== CRITICAL ==").map(|at| l[at..].to_string()))
        .collect()
}

/// A stock `redis-server` (the reference implementation), killed on drop.
pub struct StockRedis {
    pub port: u16,
    guard: ChildGuard,
    dir: TempDir,
}

impl StockRedis {
    /// Starts `redis-server` with persistence off, in a temp dir, plus `extra` args.
    pub fn start(extra: &[&str]) -> StockRedis {
        StockRedis::start_with_conf_opt(None, extra)
    }

    /// `start` with the configuration file `conf` (read first, as redis-server's argv has it).
    pub fn start_with_conf(conf: &str, extra: &[&str]) -> StockRedis {
        StockRedis::start_with_conf_opt(Some(conf), extra)
    }

    fn start_with_conf_opt(conf: Option<&str>, extra: &[&str]) -> StockRedis {
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = TempDir::new("stock");
            let mut cmd = Command::new("redis-server");
            cmd.args(conf)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir.path)
                .args(extra)
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(dir.file("log")).expect("log file"))
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                    "redis-server is not installed. It is the reference these tests compare \
                     against; the README's test command (bash scripts/test.sh) installs it \
                     (apt-get install redis-server redis-tools)."
                ),
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            let mut stock = StockRedis {
                port,
                guard: ChildGuard { child },
                dir,
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if stock.guard.exited().is_some() {
                    last_err = std::fs::read_to_string(stock.dir.file("log")).unwrap_or_default();
                    break;
                }
                if ping_once(port) {
                    return stock;
                }
                if Instant::now() > deadline {
                    panic!("redis-server did not answer PING within {START_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start: {last_err}");
    }

    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    pub fn conn(&self) -> redis::Connection {
        connect_redis(self.port)
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.guard.child.id() as i32, signal);
        }
    }

    /// Waits (bounded; panics past `timeout`) for the process to exit; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.guard.wait_exit(timeout)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.file("log")).unwrap_or_default()
    }
}

/// Runs `redis-cli` with `args`. Panics loudly if it is not installed.
pub fn redis_cli(args: &[&str]) -> Output {
    let mut cmd = Command::new("redis-cli");
    cmd.args(args);
    match Command::new("redis-cli").arg("--version").output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "redis-cli is not installed, and these tests need it: the README's test command \
             (bash scripts/test.sh) installs it (apt-get install redis-tools)."
        ),
        Err(e) => panic!("cannot run redis-cli: {e}"),
    }
    run_bounded(&mut cmd, Duration::from_secs(10))
}

/// A raw client socket with bounded reads, for byte-exact protocol checks.
pub struct Raw {
    pub stream: TcpStream,
    /// Bytes read but not yet consumed.
    pending: Vec<u8>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Raw {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write failed: {e}"));
    }

    /// Sends one multibulk command.
    pub fn send_cmd(&mut self, args: &[&[u8]]) {
        self.send(&encode(args));
    }

    /// Reads more bytes into `pending`, waiting at most `timeout`. Returns the count (0 at EOF),
    /// or `None` on timeout. A connection reset counts as EOF.
    fn fill(&mut self, timeout: Duration) -> Option<usize> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("timeout");
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) if e.kind() == ErrorKind::Interrupted => Some(1),
            Err(_) => Some(0),
        }
    }

    /// Reads exactly `n` bytes within `timeout` (panics showing what did arrive otherwise).
    pub fn read_n(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fill(left) {
                Some(0) => panic!(
                    "connection closed after {} of {n} bytes: {}",
                    self.pending.len(),
                    show(&self.pending)
                ),
                Some(_) => {}
                None => panic!(
                    "timed out after {timeout:?} with {} of {n} bytes: {}",
                    self.pending.len(),
                    show(&self.pending[..self.pending.len().min(300)])
                ),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len(), IO_TIMEOUT);
        assert!(
            got == expected,
            "reply mismatch\n expected: {}\n      got: {}",
            show(expected),
            show(&got)
        );
    }

    /// Reads one complete RESP2/RESP3 reply and returns its bytes.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.read_reply_within(IO_TIMEOUT)
    }

    /// `read_reply` for a reply that may take up to `timeout`.
    pub fn read_reply_within(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = frame_len(&self.pending) {
                return self.pending.drain(..n).collect();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fill(left) {
                Some(0) => panic!("connection closed mid-reply: {}", show(&self.pending)),
                Some(_) => {}
                None => panic!("timed out waiting for a reply: {}", show(&self.pending)),
            }
        }
    }

    /// Sends a command and returns its reply's bytes.
    pub fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// Asserts the server closes the connection within `IO_TIMEOUT` without sending anything more.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fill(left) {
                Some(0) => break,
                Some(_) => {}
                None => panic!(
                    "connection still open after {IO_TIMEOUT:?}; unread: {}",
                    show(&self.pending)
                ),
            }
        }
        assert!(
            self.pending.is_empty(),
            "unexpected bytes before close: {}",
            show(&self.pending)
        );
    }

    /// Asserts nothing arrives for `dur` (and the connection stays open).
    pub fn expect_silence(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.fill(left) {
                None => break,
                Some(0) => panic!("connection closed; unread: {}", show(&self.pending)),
                Some(_) => {}
            }
        }
        assert!(
            self.pending.is_empty(),
            "unexpected bytes: {}",
            show(&self.pending)
        );
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Encodes a multibulk request.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RESP bulk string bytes.
pub fn bulk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// RESP integer bytes.
pub fn int(v: i64) -> Vec<u8> {
    format!(":{v}\r\n").into_bytes()
}

/// The length of the complete RESP2/RESP3 frame at the start of `buf`, if it has fully arrived.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let line_end = |from: usize| -> Option<usize> {
        buf.get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let first = *buf.first()?;
    let eol = line_end(1)?;
    let head = std::str::from_utf8(&buf[1..eol]).ok()?;
    let after = eol + 2;
    let nested = |count: usize| -> Option<usize> {
        let mut pos = after;
        for _ in 0..count {
            pos += frame_len(&buf[pos..])?;
        }
        Some(pos)
    };
    match first {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(after),
        b'$' | b'=' | b'!' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            nested(n as usize)
        }
        b'%' | b'|' => {
            let n: usize = head.parse().ok()?;
            nested(2 * n)
        }
        other => panic!(
            "not a RESP frame (starts with {:?}): {}",
            other as char,
            show(&buf[..buf.len().min(200)])
        ),
    }
}

/// Printable form of protocol bytes (CR/LF and non-ASCII escaped).
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// A key `prefix<n>` whose slot is owned by `shard` of `nshards` (slot % nshards == shard).
pub fn key_on_shard(prefix: &str, shard: usize, nshards: usize) -> String {
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| redcell::slot::key_slot(k.as_bytes()) as usize % nshards == shard)
        .expect("some key lands on every shard")
}

/// The shard owning `key` among `nshards`.
pub fn shard_of(key: &[u8], nshards: usize) -> usize {
    redcell::slot::key_slot(key) as usize % nshards
}

/// Polls `f` until it returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SplitMix64: a tiny seeded generator, so failures reproduce without an extra dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Connections to redcell (`ours`) and to stock Redis, both speaking RESP3 if asked.
pub fn pair(ours: &Server, stock: &StockRedis, resp3: bool) -> (Raw, Raw) {
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    if resp3 {
        a.call(&[b"HELLO", b"3"]);
        b.call(&[b"HELLO", b"3"]);
    }
    (a, b)
}

/// A parsed reply, with enough structure to compare aggregates regardless of their order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Node {
    Line(u8, Vec<u8>),
    Bulk(u8, Option<Vec<u8>>),
    Agg(u8, Option<Vec<Node>>),
}

pub fn parse(buf: &[u8], pos: &mut usize) -> Node {
    let end = *pos
        + buf[*pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("CRLF");
    let (t, text) = (buf[*pos], buf[*pos + 1..end].to_vec());
    *pos = end + 2;
    let n = || -> i64 { String::from_utf8_lossy(&text).parse().expect("length") };
    match t {
        b'$' | b'=' | b'!' if n() < 0 => Node::Bulk(t, None),
        b'$' | b'=' | b'!' => {
            let len = n() as usize;
            let data = buf[*pos..*pos + len].to_vec();
            *pos += len + 2;
            Node::Bulk(t, Some(data))
        }
        b'*' | b'~' | b'%' | b'>' if n() < 0 => Node::Agg(t, None),
        b'*' | b'~' | b'%' | b'>' => {
            let count = n() as usize * if t == b'%' { 2 } else { 1 };
            Node::Agg(t, Some((0..count).map(|_| parse(buf, pos)).collect()))
        }
        _ => Node::Line(t, text),
    }
}

/// Redis's CRC-64 (Jones, reflected), bit by bit: independent of the server's table-driven
/// code, for tests that seal or re-seal DUMP payloads themselves.
pub fn crc64(data: &[u8]) -> u64 {
    let mut crc = 0u64;
    for &byte in data {
        crc ^= byte as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x95AC_9329_AC4B_C9B5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Debian's own `/etc/redis/redis.conf` (the README's test command installs redis-server,
/// which ships it) written to `dir`/redis.conf for one server: its `port`, `dir`, `logfile`
/// (`redis.log` in `dir`) and `pidfile` (`redis.pid`) replaced, bound to 127.0.0.1, and
/// `daemonize yes` as shipped or turned to `no`. Returns the file's path.
pub fn debian_conf(dir: &TempDir, port: u16, daemonize: bool) -> PathBuf {
    let shipped = "/etc/redis/redis.conf";
    let text = std::fs::read_to_string(shipped).unwrap_or_else(|e| {
        panic!(
            "{shipped} is missing ({e}): the README's test command (bash scripts/test.sh) \
             installs Debian's redis-server, which ships it"
        )
    });
    assert!(
        text.lines().any(|l| l.trim() == "daemonize yes"),
        "{shipped} no longer has `daemonize yes`"
    );
    let mut conf = String::new();
    for line in text.lines() {
        let line = match line.split_whitespace().next().unwrap_or("") {
            "port" => format!("port {port}"),
            "dir" => format!("dir {}", dir.path.display()),
            "logfile" => format!("logfile {}", dir.file("redis.log").display()),
            "pidfile" => format!("pidfile {}", dir.file("redis.pid").display()),
            "bind" => "bind 127.0.0.1".to_string(),
            "daemonize" if !daemonize => "daemonize no".to_string(),
            _ => line.to_string(),
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    let path = dir.file("redis.conf");
    std::fs::write(&path, conf).expect("write redis.conf");
    path
}
