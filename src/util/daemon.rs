//! `daemonize`, `pidfile` and `supervised` as Redis 7.0 does them (server.c `daemonize`,
//! `createPidFile`, `redisIsSupervised`, `redisSupervisedSystemd`, `redisSupervisedUpstart`,
//! `redisCommunicateSystemd`, and the pid file's removal in `finishShutdown`).
//!
//! The order is Redis's `main()`: once the configuration is loaded, `supervise` looks for a
//! supervisor; then, if `daemonize yes` and no supervisor was found, `daemonize` forks (before
//! any thread starts); once the listeners are up, `listening` writes the pid file; once the
//! data is loaded, `ready` logs "Ready to accept connections" and tells systemd READY=1.
//! A shutdown tells systemd STOPPING=1 as it starts and removes the pid file as it exits.
//!
//! systemd's notifications are sent as libsystemd's `sd_notify(0, ...)` sends them (Redis as
//! Debian builds it links libsystemd): one datagram to the unix socket `$NOTIFY_SOCKET`
//! names, in the abstract namespace when the name starts with `@`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

/// Redis's `CONFIG_DEFAULT_PID_FILE`: the pid file of a daemon with no `pidfile` set.
pub const DEFAULT_PID_FILE: &str = "/var/run/redis.pid";

/// `supervised`'s modes (Redis's `SUPERVISED_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    No = 0,
    Auto = 1,
    Systemd = 2,
    Upstart = 3,
}

impl Mode {
    /// From the directive's value.
    pub fn parse(value: &str) -> Mode {
        match value {
            "systemd" => Mode::Systemd,
            "upstart" => Mode::Upstart,
            "auto" => Mode::Auto,
            _ => Mode::No,
        }
    }

    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Auto,
            2 => Mode::Systemd,
            3 => Mode::Upstart,
            _ => Mode::No,
        }
    }
}

/// Redis's `server.supervised_mode`: the configured mode, or the one `auto` detected.
static MODE: AtomicU8 = AtomicU8::new(Mode::No as u8);
/// Redis's `server.supervised`: whether a supervisor was found (then `daemonize` is ignored).
static SUPERVISED: AtomicBool = AtomicBool::new(false);
/// `daemonize` as configured (finishShutdown logs the pid file's removal when it is set).
static DAEMONIZE: AtomicBool = AtomicBool::new(false);
/// The pid file this process writes and removes, if any.
static PID_FILE: Mutex<Option<String>> = Mutex::new(None);
/// Set once every listener is up (the control executor's `ready` waits for it).
static LISTENING: AtomicBool = AtomicBool::new(false);

fn mode() -> Mode {
    Mode::from_u8(MODE.load(Ordering::Relaxed))
}

/// `redisIsSupervised`: with `auto`, upstart when `$UPSTART_JOB` is set, else systemd when
/// `$NOTIFY_SOCKET` is; then sets up that supervision. Returns whether the process is
/// supervised. Call before any thread starts (upstart's readiness stops the process, and the
/// variable is removed from the environment).
pub fn supervise(configured: Mode) -> bool {
    let mut mode = configured;
    if mode == Mode::Auto {
        // Redis logs these two at its `verbose` level, which its default `notice` hides.
        if std::env::var_os("UPSTART_JOB").is_some() {
            mode = Mode::Upstart;
        } else if std::env::var_os("NOTIFY_SOCKET").is_some() {
            mode = Mode::Systemd;
        }
    }
    // As Redis: a mode asked for stays the mode even when its supervisor is missing (then
    // every later systemd notification logs that NOTIFY_SOCKET was not found).
    MODE.store(configured as u8, Ordering::Relaxed);
    let supervised = match mode {
        Mode::Upstart => supervised_upstart(),
        Mode::Systemd => supervised_systemd(),
        Mode::No | Mode::Auto => false,
    };
    if supervised {
        MODE.store(mode as u8, Ordering::Relaxed);
    }
    SUPERVISED.store(supervised, Ordering::Relaxed);
    supervised
}

/// `redisSupervisedUpstart`: upstart's `expect stop` waits for the job to stop itself.
fn supervised_upstart() -> bool {
    if std::env::var_os("UPSTART_JOB").is_none() {
        eprintln!("upstart supervision requested, but UPSTART_JOB not found!");
        return false;
    }
    eprintln!("supervised by upstart, will stop to signal readiness.");
    // SAFETY: raise(2) with a valid signal number; upstart resumes us with SIGCONT.
    unsafe { libc::raise(libc::SIGSTOP) };
    // No other thread exists yet (see `supervise`).
    std::env::remove_var("UPSTART_JOB");
    true
}

/// `redisSupervisedSystemd`.
fn supervised_systemd() -> bool {
    if communicate_systemd("STATUS=Redis is loading...\n") <= 0 {
        return false;
    }
    eprintln!(
        "Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec and TimeoutStopSec in your service unit."
    );
    true
}

/// INFO's `process_supervised`.
pub fn supervised_name() -> &'static str {
    if !SUPERVISED.load(Ordering::Relaxed) {
        return "no";
    }
    match mode() {
        Mode::Upstart => "upstart",
        Mode::Systemd => "systemd",
        _ => "unknown",
    }
}

/// Sends `msg` to systemd when supervised by it (Redis's `supervised_mode ==
/// SUPERVISED_SYSTEMD` followed by `redisCommunicateSystemd`); nothing otherwise.
pub fn notify_systemd(msg: &str) {
    if mode() == Mode::Systemd {
        communicate_systemd(msg);
    }
}

/// `redisCommunicateSystemd`: `sd_notify`'s return (positive once sent, 0 without
/// `$NOTIFY_SOCKET`, a negative errno on failure), with Redis's log lines.
fn communicate_systemd(msg: &str) -> i32 {
    let ret = sd_notify(msg);
    if ret == 0 {
        eprintln!("systemd supervision error: NOTIFY_SOCKET not found!");
    } else if ret < 0 {
        eprintln!("systemd supervision error: sd_notify: {ret}");
    }
    ret
}

/// libsystemd's `sd_notify(0, msg)`.
fn sd_notify(msg: &str) -> i32 {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return 0;
    };
    let target = target.to_string_lossy().into_owned();
    let errno = |e: io::Error| -e.raw_os_error().unwrap_or(libc::EIO);
    let socket = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return errno(e),
    };
    let sent = if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
            Ok(addr) => socket.send_to_addr(msg.as_bytes(), &addr),
            Err(e) => return errno(e),
        }
    } else if target.starts_with('/') {
        socket.send_to(msg.as_bytes(), &target)
    } else {
        return -libc::EINVAL;
    };
    match sent {
        Ok(_) => 1,
        Err(e) => errno(e),
    }
}

/// Redis's `daemonize`: forks; the parent exits 0; the child starts a session of its own and
/// points stdin, stdout and stderr at /dev/null (`logfile`, if set, then takes the last two
/// back). Call before any thread starts: only the calling thread survives a fork.
pub fn daemonize() -> Result<(), String> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    if threads > 1 {
        eprintln!("# daemonize: {threads} threads before the fork; only this one goes on");
    }
    // SAFETY: fork(2) in a process with a single thread; the child goes on running Rust code
    // with every lock free.
    match unsafe { libc::fork() } {
        -1 => {
            return Err(format!(
                "Can't daemonize: fork failed: {}",
                super::strerror(io::Error::last_os_error().raw_os_error().unwrap_or(0))
            ))
        }
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain system calls on descriptors this process owns; a NUL-terminated path.
    unsafe {
        libc::setsid();
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0);
        if fd != -1 {
            libc::dup2(fd, libc::STDIN_FILENO);
            libc::dup2(fd, libc::STDOUT_FILENO);
            libc::dup2(fd, libc::STDERR_FILENO);
            if fd > libc::STDERR_FILENO {
                libc::close(fd);
            }
        }
    }
    Ok(())
}

/// Decides the pid file as Redis's `main()`: `pidfile` when set, else `DEFAULT_PID_FILE`
/// when running in the background, else none. `daemonize` is the configured value (which
/// `finishShutdown` looks at); `background` whether the process did daemonize.
pub fn plan_pid_file(daemonize: bool, background: bool, pidfile: &str) {
    DAEMONIZE.store(daemonize, Ordering::Relaxed);
    let path = if !pidfile.is_empty() {
        Some(pidfile.to_string())
    } else if background {
        Some(DEFAULT_PID_FILE.to_string())
    } else {
        None
    };
    *PID_FILE.lock().unwrap_or_else(|e| e.into_inner()) = path;
}

/// Every listener is up (Redis's `initServer` is done): writes the pid file (`createPidFile`,
/// best effort) and lets `ready` go on.
pub fn listening() {
    let path = PID_FILE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(path) = path {
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = std::fs::write(&path, pid) {
            // Redis 7.0 fails silently; 7.2 logs this line.
            eprintln!(
                "Failed to write PID file: {}",
                e.raw_os_error()
                    .map_or_else(|| e.to_string(), super::strerror)
            );
        }
    }
    LISTENING.store(true, Ordering::Release);
}

/// Whether `listening` ran.
pub fn is_listening() -> bool {
    LISTENING.load(Ordering::Acquire)
}

/// The data is loaded and the listeners are up: Redis's start-up end in `main()`, which says
/// so for its TCP (or TLS) port when it has one and for its `unixsocket` when it has one.
pub fn ready(replica: bool, tcp: bool, unix_socket: &str) {
    if tcp {
        eprintln!("Ready to accept connections");
    }
    if !unix_socket.is_empty() {
        eprintln!("The server is now ready to accept connections at {unix_socket}");
    }
    if replica {
        notify_systemd(
            "STATUS=Ready to accept connections in read-only mode. Waiting for MASTER <-> REPLICA sync\n",
        );
    } else {
        notify_systemd("STATUS=Ready to accept connections\n");
    }
    notify_systemd("READY=1\n");
}

/// Redis's `closeListeningSockets(1)` at shutdown, for the `unixsocket` file (`path`, empty
/// for none): removes it, with Redis's log lines. The listeners go with the process.
pub fn remove_unix_socket(path: &str) {
    if path.is_empty() {
        return;
    }
    eprintln!("Removing the unix socket file.");
    if let Err(e) = std::fs::remove_file(path) {
        eprintln!(
            "Error removing the unix socket file: {}",
            crate::util::os_error_text(&e)
        );
    }
}

/// `finishShutdown`'s "Removing the pid file.": with `daemonize yes` or a pid file.
pub fn remove_pid_file() {
    let path = PID_FILE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if DAEMONIZE.load(Ordering::Relaxed) || path.is_some() {
        eprintln!("Removing the pid file.");
        if let Some(path) = path {
            let _ = std::fs::remove_file(path);
        }
    }
}
