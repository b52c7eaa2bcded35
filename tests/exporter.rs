//! `prometheus-redis-exporter` (Debian's package) scrapes stock redis-server 7.0 and redcell
//! after the same workload: every metric family it shows for stock must appear for redcell.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server, StockRedis};

const EXPORTER: &str = "prometheus-redis-exporter";

/// Kills the exporter when the test ends, however it ends.
struct Exporter(std::process::Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The metric families (`# TYPE name kind`) the exporter shows for the server on `port`.
fn families(port: u16) -> Vec<String> {
    let listen = free_port();
    let mut cmd = Command::new(EXPORTER);
    cmd.args([
        "-redis.addr",
        &format!("redis://127.0.0.1:{port}"),
        "-web.listen-address",
        &format!("127.0.0.1:{listen}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    common::die_with_parent(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{EXPORTER} is not installed. This test compares what it scrapes from stock \
             redis-server and from redcell; the README's test command (bash scripts/test.sh) \
             installs it (apt-get install prometheus-redis-exporter)."
        ),
        Err(e) => panic!("cannot start {EXPORTER}: {e}"),
    };
    let _guard = Exporter(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = http_get(listen, "/metrics") {
            if body.contains("redis_up 1") {
                let mut names: Vec<String> = body
                    .lines()
                    .filter_map(|l| l.strip_prefix("# TYPE "))
                    .filter_map(|l| l.split(' ').next())
                    .map(str::to_string)
                    .collect();
                names.sort();
                names.dedup();
                return names;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{EXPORTER} did not scrape 127.0.0.1:{port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run(c: &mut redis::Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: Result<redis::Value, _> = cmd.query(c);
}

#[test]
fn exporter_shows_every_family_it_shows_for_stock() {
    let ours = Server::start(2, &["--enable-debug-command", "yes"]);
    let stock = StockRedis::start(&["--enable-debug-command", "yes"]);
    for mut c in [ours.conn(), stock.conn()] {
        let c = &mut c;
        run(c, &["CONFIG", "SET", "latency-monitor-threshold", "40"]);
        run(c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
        run(c, &["SET", "k", "v"]);
        run(c, &["GET", "k"]);
        run(c, &["LPUSH", "k", "x"]); // WRONGTYPE: errorstats
        run(c, &["SET", "ttl", "v", "EX", "100"]);
        run(c, &["EVAL", "return 1", "0"]);
        run(c, &["DEBUG", "SLEEP", "0.1"]); // a latency spike
        run(c, &["SUBSCRIBE"]);
    }
    let (want, got) = (families(stock.port), families(ours.port));
    let missing: Vec<&String> = want.iter().filter(|f| !got.contains(f)).collect();
    assert!(
        want.len() > 100,
        "the exporter showed only {} families for stock: {want:?}",
        want.len()
    );
    assert!(
        missing.is_empty(),
        "families shown for stock but not for redcell: {missing:?}"
    );
}
