//! Start-up: configuration errors, --version, running unprivileged under an 8 MiB memlock
//! limit, and redis-cli against a running server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run_bounded, Server, TempDir, BIN};

fn run_server(args: &[&str]) -> std::process::Output {
    run_bounded(Command::new(BIN).args(args), Duration::from_secs(10))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unknown_directive_on_command_line() {
    let port = common::free_port().to_string();
    let out = run_server(&["--port", &port, "--nosuchdirective", "x"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("Bad directive"), "{err}");
    assert!(err.contains("nosuchdirective"), "{err}");
    assert!(err.contains("at line"), "{err}");
}

#[test]
fn unknown_directive_in_config_file_names_the_line() {
    let dir = TempDir::new("conf");
    let conf = dir.file("redcell.conf");
    let port = common::free_port();
    std::fs::write(
        &conf,
        format!("# comment\nport {port}\n\nbogus-directive yes\nbind 127.0.0.1\n"),
    )
    .unwrap();
    let out = run_server(&[conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("at line 4"), "{err}");
    assert!(err.contains("bogus-directive yes"), "{err}");
    assert!(err.contains("Bad directive"), "{err}");
    // A missing file is fatal too.
    let out = run_server(&[dir.file("nope.conf").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn config_file_then_overrides() {
    let dir = TempDir::new("conf");
    let conf = dir.file("redcell.conf");
    std::fs::write(&conf, "hz 20\nbind 127.0.0.1\n").unwrap();
    // Port from the command line, after the file; the server starts. A free port can be taken
    // by a concurrently starting test's server; then ours exits ("Address already in use") and
    // we try another port.
    let mut started = None;
    for _ in 0..5 {
        let port = common::free_port();
        let mut child = common::ChildGuard {
            child: Command::new(BIN)
                .arg(&conf)
                .args(["--port", &port.to_string(), "--shards", "1"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        };
        let mut exited = false;
        // Listening is not serving yet: connections are accepted while the data loads.
        let served = common::wait_until(Duration::from_secs(10), || {
            exited = child.exited().is_some();
            exited || common::ping_once(port)
        });
        if served && !exited {
            started = Some((child, port));
            break;
        }
    }
    let (_child, port) = started.expect("no listener on the port given after the config file");
    let mut raw = common::Raw::connect(port);
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
}

#[test]
fn port_in_use_is_refused() {
    let server = Server::start(1, &[]);
    let port = server.port.to_string();
    let out = run_server(&["--port", port.as_str(), "--shards", "1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("Address already in use"),
        "{}",
        text(&out.stderr)
    );
    // The first server is untouched.
    let mut raw = server.raw();
    raw.send(b"PING\r\n");
    raw.expect(b"+PONG\r\n");
}

#[test]
fn a_redis_conf_with_persistence_directives_starts() {
    let dir = TempDir::new("startup-persist");
    let conf = dir.file("redis.conf");
    std::fs::write(
        &conf,
        "save 900 1\nsave 300 10\nappendonly yes\nappendfsync everysec\ndbfilename my.rdb\n",
    )
    .expect("write redis.conf");
    let data = TempDir::new("startup-persist-data");
    let server = Server::start_cmd(
        1,
        &["--dir", data.path.to_str().expect("utf-8")],
        |mut argv| {
            // The config file must come first.
            argv.insert(1, conf.to_str().expect("utf-8").to_string());
            argv
        },
    );
    let mut raw = server.raw();
    let save = raw.call(&[b"CONFIG", b"GET", b"save"]);
    assert_eq!(save, b"*2\r\n$4\r\nsave\r\n$12\r\n900 1 300 10\r\n");
    let info = String::from_utf8_lossy(&raw.call(&[b"INFO", b"persistence"])).into_owned();
    assert!(info.contains("aof_enabled:1\r\n"), "{info}");
    assert!(data
        .path
        .join("appendonlydir")
        .join("appendonly.aof.manifest")
        .exists());
}

#[test]
fn version_flag() {
    for flag in ["--version", "-v"] {
        let out = run_server(&[flag]);
        assert!(out.status.success(), "{out:?}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains(env!("CARGO_PKG_VERSION")), "{all}");
    }
}

#[test]
fn bad_flag_values() {
    let out = run_server(&["--shards", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = run_server(&["--port", "70000"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("port"), "{err}");
}

/// As an unprivileged user with an 8 MiB locked-memory limit (a common default), the server's
/// io_uring executors still start and serve.
#[test]
fn unprivileged_with_8mib_memlock() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED unprivileged_with_8mib_memlock: needs root to switch to uid 65534 with setpriv"
        );
        return;
    }
    for tool in ["setpriv", "prlimit"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} (util-linux) is needed for this test"
        );
    }
    // The binary must be reachable by uid 65534: copy it into a world-readable directory.
    let dir = TempDir::new("nobody");
    let bin = dir.file("redcell-server");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin.to_str().unwrap().to_string();
    let server = Server::start_cmd(2, &[], move |argv| {
        let mut wrapped: Vec<String> = [
            "prlimit",
            "--memlock=8388608:8388608",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        wrapped.push(bin.clone());
        wrapped.extend(argv.into_iter().skip(1));
        wrapped
    });
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
    // It really runs as uid 65534 (the server is the last exec in the chain, same pid).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains("65534"), "{uid_line}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let memlock = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .unwrap();
    assert!(memlock.contains("8388608"), "{memlock}");
}

#[test]
fn redis_cli_set_get() {
    let server = Server::start(2, &[]);
    let out = server.cli(&["set", "k", "v"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "OK");
    let out = server.cli(&["get", "k"]);
    assert_eq!(text(&out.stdout).trim(), "v");
    let out = server.cli(&["get", "missing"]);
    assert_eq!(text(&out.stdout).trim(), "");
    let out = server.cli(&["ping"]);
    assert_eq!(text(&out.stdout).trim(), "PONG");
    let out = server.cli(&["incr", "n"]);
    assert_eq!(text(&out.stdout).trim(), "1");
    let out = server.cli(&["dbsize"]);
    assert_eq!(text(&out.stdout).trim(), "2");
}
