//! `daemonize`, `pidfile` and `supervised` as Redis 7.0: a daemon forks away from the
//! launched process (which exits 0), writes its pid file and log where told and removes the
//! pid file at SHUTDOWN; under `supervised systemd` (or `auto` with `$NOTIFY_SOCKET`) the
//! server tells systemd READY=1 once it serves and STOPPING=1 when a shutdown starts, and
//! ignores `daemonize yes`; Debian's own /etc/redis/redis.conf (daemonize yes) starts it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    die_with_parent, free_port, ping_once, wait_until, ChildGuard, Raw, Server, TempDir, BIN,
    START_TIMEOUT,
};

/// Kills (by pid, SIGKILL) the daemon a test started if it is still running when the test
/// ends: it is not our child, so nothing else would. The pid comes from the pid file.
struct DaemonGuard {
    pidfile: PathBuf,
    pid: Option<i32>,
}

impl DaemonGuard {
    fn kill(&mut self) {
        let pid = self.pid.or_else(|| read_pid(&self.pidfile));
        if let Some(pid) = pid {
            // Only a redcell-server still running under that pid (not a reused pid).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if alive(pid) && String::from_utf8_lossy(&cmdline).contains("redcell-server") {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        self.kill();
        // The daemon was re-parented to this process (see `launch_daemon`): reap it.
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            // SAFETY: waitpid(2) on one pid, without a status pointer.
            while unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process (a zombie waiting for init to reap it is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// SHUTDOWN NOSAVE, reading until the server closes the connection (bounded).
fn shutdown_nosave(port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
        .expect("send SHUTDOWN");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "SHUTDOWN answered {rest:?}");
}

/// Runs `args` (with no supervisor in the environment), expects the launched process to exit
/// 0 quickly (the daemon forked away), and returns the guard of the daemon its pid file names
/// once it answers PING on `port`.
fn launch_daemon(args: &[String], pidfile: &Path, port: u16, dir: &TempDir) -> DaemonGuard {
    // The daemon's parent exits at once: this process adopts it (instead of init, which may
    // not reap it in a container) so its guard can reap it.
    // SAFETY: prctl with plain integers, on this process's own flags.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut guard = DaemonGuard {
        pidfile: pidfile.to_path_buf(),
        pid: None,
    };
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("UPSTART_JOB")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.file("launch.out")).expect("stdout file"))
        .stderr(std::fs::File::create(dir.file("launch.err")).expect("stderr file"));
    die_with_parent(&mut cmd);
    let mut launched = ChildGuard {
        child: cmd.spawn().expect("spawn redcell-server"),
    };
    let launched_pid = launched.child.id() as i32;
    let status = launched.wait_exit(Duration::from_secs(5));
    let err = std::fs::read_to_string(dir.file("launch.err")).unwrap_or_default();
    assert!(
        status.success(),
        "launched process exited with {status}; stderr:\n{err}"
    );
    assert!(
        err.is_empty(),
        "the launched process wrote on its stderr:\n{err}"
    );
    assert!(
        wait_until(START_TIMEOUT, || ping_once(port)),
        "the daemon never answered PING on port {port}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(pidfile).is_some()),
        "no pid file at {}",
        pidfile.display()
    );
    let text = std::fs::read_to_string(pidfile).expect("read pid file");
    assert!(text.ends_with('\n'), "pid file {text:?}");
    let pid = read_pid(pidfile).expect("pid");
    guard.pid = Some(pid);
    assert_ne!(pid, launched_pid, "the pid file names the launched process");
    assert!(alive(pid), "pid file names {pid}, which is not running");
    guard
}

/// The log file's text once it has the start-up's last line (bounded wait).
fn log_once_ready(log: &Path) -> String {
    wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains("Ready to accept connections"))
    });
    std::fs::read_to_string(log).expect("read log file")
}

/// SHUTDOWN NOSAVE ends the daemon and removes its pid file.
fn stop_daemon(guard: &mut DaemonGuard, port: u16) {
    let pid = guard.pid.expect("daemon pid");
    shutdown_nosave(port);
    assert!(
        wait_until(Duration::from_secs(10), || !guard.pidfile.exists()),
        "SHUTDOWN left the pid file"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !alive(pid)),
        "the daemon {pid} still runs after SHUTDOWN"
    );
}

#[test]
fn daemonize_writes_pid_file_and_log_and_shutdown_removes_it() {
    let dir = TempDir::new("daemon");
    let port = free_port();
    let (pidfile, log) = (dir.file("r.pid"), dir.file("r.log"));
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        dir.path.to_str().expect("utf-8 temp dir"),
        "--daemonize",
        "yes",
        "--pidfile",
        pidfile.to_str().expect("utf-8 temp dir"),
        "--logfile",
        log.to_str().expect("utf-8 temp dir"),
        "--shards",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut guard = launch_daemon(&args, &pidfile, port, &dir);
    let pid = guard.pid.expect("pid");
    let text = log_once_ready(&log);
    assert!(
        text.contains(&format!("pid {pid} port {port}")),
        "no start-up line naming the daemon's pid in the log:\n{text}"
    );
    assert!(text.contains("Ready to accept connections"), "log:\n{text}");
    assert!(!text.contains("threads before the fork"), "log:\n{text}");
    let mut c = Raw::connect(port);
    let info = String::from_utf8_lossy(&c.call(&[b"INFO", b"server"])).into_owned();
    assert!(info.contains(&format!("process_id:{pid}\r\n")), "{info}");
    assert!(info.contains("process_supervised:no\r\n"), "{info}");
    let daemonize = c.call(&[b"CONFIG", b"GET", b"daemonize"]);
    assert_eq!(daemonize, b"*2\r\n$9\r\ndaemonize\r\n$3\r\nyes\r\n");
    drop(c);
    stop_daemon(&mut guard, port);
    let text = std::fs::read_to_string(&log).expect("read log file");
    assert!(text.contains("Removing the pid file."), "log:\n{text}");
}

/// Datagrams received on `sock` until one equals `last` (bounded), in order.
fn notifications_until(sock: &UnixDatagram, last: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg == last;
            got.push(msg);
            if done {
                return got;
            }
        }
    }
    panic!("no {last:?} within {timeout:?}; got {got:?}");
}

/// `supervised` (with `daemonize yes`, which supervision overrides) and a NOTIFY_SOCKET;
/// READY=1 once it serves, STOPPING=1 at SHUTDOWN.
fn systemd_notifications(supervised: &str, sock: &UnixDatagram, notify_socket: &str) {
    let env = format!("NOTIFY_SOCKET={notify_socket}");
    let mut server = Server::start_cmd(
        2,
        &[
            "--supervised",
            supervised,
            "--daemonize",
            "yes",
            "--save",
            "",
        ],
        |argv| {
            let mut all = vec![
                "env".to_string(),
                "-u".into(),
                "UPSTART_JOB".into(),
                env.clone(),
            ];
            all.extend(argv);
            all
        },
    );
    // Start-up is over (PING answered): READY=1 must come, after the loading status.
    let got = notifications_until(sock, "READY=1\n", Duration::from_secs(10));
    assert_eq!(
        got,
        [
            "STATUS=Redis is loading...\n",
            "STATUS=Ready to accept connections\n",
            "READY=1\n"
        ],
        "stderr:\n{}",
        server.stderr()
    );
    assert!(server.alive(), "daemonize yes forked away under systemd");
    let stderr = server.stderr();
    assert!(
        stderr.contains("Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec and TimeoutStopSec in your service unit."),
        "{stderr}"
    );
    let mut c = server.raw();
    let info = String::from_utf8_lossy(&c.call(&[b"INFO", b"server"])).into_owned();
    assert!(info.contains("process_supervised:systemd\r\n"), "{info}");
    assert!(
        info.contains(&format!("process_id:{}\r\n", server.pid())),
        "{info}"
    );
    drop(c);
    shutdown_nosave(server.port);
    let got = notifications_until(sock, "STOPPING=1\n", Duration::from_secs(10));
    assert_eq!(got, ["STOPPING=1\n"]);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn supervised_systemd_notifies_ready_and_stopping() {
    let dir = TempDir::new("notify");
    let path = dir.file("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
    systemd_notifications("systemd", &sock, path.to_str().expect("utf-8 temp dir"));
}

#[test]
fn supervised_auto_detects_an_abstract_notify_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("redcell-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("abstract address");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
    systemd_notifications("auto", &sock, &format!("@{name}"));
}

#[test]
fn supervised_systemd_without_notify_socket_warns() {
    let server = Server::start_cmd(2, &["--supervised", "systemd", "--save", ""], |argv| {
        let mut all = vec!["env".to_string(), "-u".into(), "NOTIFY_SOCKET".into()];
        all.extend(argv);
        all
    });
    assert!(
        wait_until(Duration::from_secs(5), || server
            .stderr()
            .contains("Ready to accept connections")),
        "{}",
        server.stderr()
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("systemd supervision error: NOTIFY_SOCKET not found!"),
        "{stderr}"
    );
    assert!(!stderr.contains("Supervised by systemd."), "{stderr}");
}

#[test]
fn debian_redis_conf_with_daemonize_yes_starts() {
    let dir = TempDir::new("debian-daemon");
    let port = free_port();
    let conf_path = common::debian_conf(&dir, port, true);
    let (pidfile, log) = (dir.file("redis.pid"), dir.file("redis.log"));
    let args = vec![
        conf_path.to_str().expect("utf-8 temp dir").to_string(),
        "--shards".to_string(),
        "2".to_string(),
    ];
    let mut guard = launch_daemon(&args, &pidfile, port, &dir);
    let pid = guard.pid.expect("pid");
    let text = log_once_ready(&log);
    assert!(
        text.contains(&format!("pid {pid} port {port}")) && text.contains("Ready to accept"),
        "log:\n{text}"
    );
    let mut c = Raw::connect(port);
    assert_eq!(c.call(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(c.call(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    drop(c);
    stop_daemon(&mut guard, port);
}
