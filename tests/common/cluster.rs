//! Cluster test helpers: redcell and stock redis-server cluster nodes that can be killed and
//! restarted with their files, `redis-cli --cluster` wrappers, and slot/key helpers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{die_with_parent, free_port, run_bounded, ChildGuard, Raw, TempDir, BIN};

/// Short, so failure detection fits in a test: PFAIL after 2 s, FAIL undone 4 s after.
pub const NODE_TIMEOUT_MS: &str = "2000";

/// One cluster node, redcell or stock, that can be killed and restarted with its files.
pub struct Node {
    pub port: u16,
    pub cport: u16,
    pub stock: bool,
    pub dir: TempDir,
    pub child: Option<ChildGuard>,
}

impl Node {
    pub fn redcell() -> Node {
        Node::start(false)
    }

    pub fn stock() -> Node {
        Node::start(true)
    }

    pub fn start(stock: bool) -> Node {
        let mut node = Node {
            port: free_port(),
            cport: free_port(),
            stock,
            dir: TempDir::new(if stock {
                "cluster-stock"
            } else {
                "cluster-redcell"
            }),
            child: None,
        };
        node.spawn();
        node
    }

    pub fn spawn(&mut self) {
        let (port, cport) = (self.port.to_string(), self.cport.to_string());
        let common_args = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &cport,
            "--cluster-node-timeout",
            NODE_TIMEOUT_MS,
        ];
        let mut cmd = if self.stock {
            let mut c = Command::new("redis-server");
            c.args(common_args)
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
            c
        } else {
            let mut c = Command::new(BIN);
            c.args(common_args).args(["--shards", "2"]);
            c
        };
        cmd.current_dir(&self.dir.path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.file("log")).expect("log"))
            .stderr(std::fs::File::create(self.dir.file("err")).expect("err"));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} (the README's test command installs redis-server): {e}",
                if self.stock { "redis-server" } else { BIN }
            )
        });
        self.child = Some(ChildGuard { child });
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.try_cmd(&["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "node {} did not start: {}",
                self.port,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        self.child = None;
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.file(f)).unwrap_or_default();
        format!("{}{}", read("log"), read("err"))
    }

    /// `redis-cli -p PORT args...`, its stdout; None if the node did not answer.
    pub fn try_cmd(&self, args: &[&str]) -> Option<String> {
        let out = cli(&[&["-p", &self.port.to_string()], args].concat());
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.contains("Could not connect")).then_some(text)
    }

    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|| panic!("node {} did not answer {args:?}", self.port))
    }

    pub fn myid(&self) -> String {
        self.cmd(&["CLUSTER", "MYID"])
    }

    pub fn state_ok(&self) -> bool {
        self.try_cmd(&["CLUSTER", "INFO"])
            .is_some_and(|i| i.contains("cluster_state:ok"))
    }

    /// The flags column of `id` in this node's CLUSTER NODES.
    pub fn flags_of(&self, id: &str) -> Option<String> {
        self.cmd(&["CLUSTER", "NODES"])
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split(' ').nth(2))
            .map(str::to_string)
    }
}

pub fn cli(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("redis-cli");
    cmd.args(args);
    if let Err(e) = Command::new("redis-cli").arg("--version").output() {
        panic!("redis-cli is needed (the README's test command installs redis-tools): {e}");
    }
    run_bounded(&mut cmd, Duration::from_secs(90))
}

/// One command on a raw connection; the reply bytes as text.
pub fn rcall(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.call(&args)).into_owned()
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `redis-cli --cluster create` over `nodes`, all masters.
pub fn create(nodes: &[&Node]) {
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.push("--cluster-yes");
    let out = cli(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[OK] All 16384 slots covered."),
        "create failed:\n{text}"
    );
}

/// `redis-cli --cluster check` from every node: one configuration, all slots covered.
pub fn check_from_all(nodes: &[&Node]) {
    for n in nodes {
        wait_for("the cluster to agree", Duration::from_secs(20), || {
            let out = cli(&["--cluster", "check", &n.addr()]);
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains("[OK] All nodes agree about slots configuration.")
                && text.contains("[OK] All 16384 slots covered.")
        });
    }
    for n in nodes {
        wait_for("cluster_state:ok", Duration::from_secs(20), || n.state_ok());
    }
}

/// Whether a CLUSTER NODES line lists `slot` among its ranges.
pub fn owner_of(line: &str, slot: u16) -> bool {
    line.split(' ').skip(8).any(|r| match r.split_once('-') {
        _ if r.starts_with('[') => false,
        Some((a, b)) => (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot),
        None => r.parse() == Ok(slot),
    })
}

/// A key that hashes to `slot`.
pub fn key_for_slot(slot: u16) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| redcell::slot::key_slot(k.as_bytes()) == slot)
        .expect("some key hashes to the slot")
}
