//! `rename-command` in the configuration file, beside stock redis-server 7.0 with the same
//! file: a renamed command answers under its new name only, "" removes one, and the same
//! start-up errors for a command that does not exist or a name already taken.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run_bounded, show, Raw, Server, TempDir, BIN};

const RENAMES: &str =
    "rename-command get MyGet\nrename-command flushall \"\"\nrename-command config cfg\n";

#[test]
fn renamed_and_removed_commands_as_stock() {
    let dir = TempDir::new("rename");
    let conf = dir.file("redis.conf");
    std::fs::write(&conf, RENAMES).expect("write conf");
    let conf = conf.to_str().expect("utf-8").to_string();
    let ours = Server::start_cmd(2, &[], |mut argv| {
        argv.insert(1, conf.clone());
        argv
    });
    let stock = common::StockRedis::start_with_conf(&conf, &[]);
    let (mut a, mut b) = (ours.raw(), Raw::connect(stock.port));
    let script: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"v"],
        &[b"GET", b"k"],
        &[b"myget", b"k"],
        &[b"MYGET", b"k"],
        &[b"FLUSHALL"],
        &[b"CONFIG", b"GET", b"maxmemory"],
        &[b"CFG", b"GET", b"maxmemory"],
        &[b"cfg", b"nosuch"],
        &[b"DBSIZE"],
    ];
    for cmd in script {
        let (x, y) = (a.call(cmd), b.call(cmd));
        assert_eq!(
            show(&x),
            show(&y),
            "{:?}",
            cmd.iter().map(|w| show(w)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn bad_renames_refuse_to_start_as_stock() {
    for (line, why) in [
        (
            "rename-command nosuch x",
            "No such command in rename-command",
        ),
        (
            "rename-command get set",
            "Target command name already exists",
        ),
    ] {
        let dir = TempDir::new("rename-bad");
        let conf = dir.file("redis.conf");
        std::fs::write(&conf, format!("port 0\n{line}\n")).expect("write conf");
        let ours = run_bounded(Command::new(BIN).arg(&conf), Duration::from_secs(10));
        let stock = run_bounded(
            Command::new("redis-server").arg(&conf),
            Duration::from_secs(10),
        );
        for (who, out) in [("redcell", &ours), ("stock", &stock)] {
            assert_eq!(out.status.code(), Some(1), "{who}: {out:?}");
            let err = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(err.contains(why), "{who}: {err}");
            assert!(err.contains("at line 2"), "{who}: {err}");
            assert!(err.contains(&format!(">>> '{line}'")), "{who}: {err}");
        }
    }
}
