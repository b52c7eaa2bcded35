//! nodes.conf in Redis 7.0's format: render and parse `ClusterState`, and save it atomically.
//!
//! The file is the CLUSTER NODES lines of every node but those still in handshake, then
//! `vars currentEpoch <n> lastVoteEpoch <n>`. A file that does not parse is an error naming
//! the line: a node must never start with a fresh identity because its file was damaged.

use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::bus::{node_flag, NodeName};
use super::state::{ClusterState, Node};
use crate::slot::SLOTS;
use crate::util::split::split_args;

/// The file's contents for `state`.
pub fn render(state: &ClusterState) -> String {
    let mut out = String::new();
    let ranges = state.slot_ranges();
    for node in state.nodes.values() {
        if node.has(node_flag::HANDSHAKE) {
            continue;
        }
        out.push_str(&state.node_line_with(node, &ranges));
        out.push('\n');
    }
    out.push_str(&format!(
        "vars currentEpoch {} lastVoteEpoch {}\n",
        state.current_epoch, state.last_vote_epoch
    ));
    out
}

/// Parses a nodes.conf. Ping and pong times that were set become `now`, as Redis does.
pub fn parse(text: &str, now: i64) -> Result<ClusterState, String> {
    let mut state: Option<ClusterState> = None;
    let mut pending: Vec<Node> = Vec::new();
    let mut epochs = (0u64, 0u64);
    let mut open: Vec<(u16, bool, NodeName)> = Vec::new();
    let mut slots: Vec<(u16, NodeName)> = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        let bad = |why: &str| {
            format!(
                "corrupted cluster config file, line {}: {why}: \"{line}\"",
                lineno + 1
            )
        };
        let tokens = split_args(line.as_bytes()).map_err(|_| bad("unbalanced quotes"))?;
        let tokens: Vec<String> = tokens
            .into_iter()
            .map(|t| String::from_utf8(t).map_err(|_| bad("not UTF-8")))
            .collect::<Result<_, _>>()?;
        if tokens.is_empty() {
            continue;
        }
        if tokens[0].eq_ignore_ascii_case("vars") {
            if tokens.len().is_multiple_of(2) {
                return Err(bad("odd vars line"));
            }
            for pair in tokens[1..].chunks(2) {
                let v: u64 = pair[1].parse().map_err(|_| bad("bad epoch"))?;
                if pair[0].eq_ignore_ascii_case("currentEpoch") {
                    epochs.0 = v;
                } else if pair[0].eq_ignore_ascii_case("lastVoteEpoch") {
                    epochs.1 = v;
                }
            }
            continue;
        }
        if tokens.len() < 8 {
            return Err(bad("fewer than 8 fields"));
        }
        let name = parse_name(&tokens[0]).ok_or_else(|| bad("bad node id"))?;
        let mut node = Node::new(name, 0);
        parse_address(&tokens[1], &mut node).ok_or_else(|| bad("bad address"))?;
        for flag in tokens[2].split(',') {
            node.flags |= match flag.to_ascii_lowercase().as_str() {
                "noflags" => 0,
                other => node_flag::NAMES
                    .iter()
                    .find(|(_, n)| *n == other)
                    .map(|(bit, _)| *bit)
                    .ok_or_else(|| bad("unknown flag"))?,
            };
        }
        if node.has(node_flag::FAIL) {
            node.fail_time = now;
        }
        if tokens[3] != "-" {
            node.master = Some(parse_name(&tokens[3]).ok_or_else(|| bad("bad master id"))?);
        }
        let time = |t: &str| t.parse::<i64>().map(|v| if v != 0 { now } else { 0 });
        node.ping_sent = time(&tokens[4]).map_err(|_| bad("bad ping time"))?;
        node.pong_received = time(&tokens[5]).map_err(|_| bad("bad pong time"))?;
        node.config_epoch = tokens[6].parse().map_err(|_| bad("bad config epoch"))?;
        if node.master.is_some() {
            // A replica's line shows its master's epoch; its own is 0.
            node.config_epoch = 0;
        }
        for tok in &tokens[8..] {
            if let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                let (slot, rest) = inner.split_once('-').ok_or_else(|| bad("bad open slot"))?;
                let slot = parse_slot(slot).ok_or_else(|| bad("bad open slot"))?;
                let (migrating, peer) = match (rest.strip_prefix(">-"), rest.strip_prefix("<-")) {
                    (Some(p), _) => (true, p),
                    (_, Some(p)) => (false, p),
                    _ => return Err(bad("bad open slot")),
                };
                let peer = parse_name(peer).ok_or_else(|| bad("bad open slot node"))?;
                open.push((slot, migrating, peer));
                continue;
            }
            let (a, b) = match tok.split_once('-') {
                Some((a, b)) => (parse_slot(a), parse_slot(b)),
                None => (parse_slot(tok), parse_slot(tok)),
            };
            let (Some(a), Some(b)) = (a, b) else {
                return Err(bad("bad slot"));
            };
            slots.extend((a..=b).map(|s| (s, name)));
        }
        if node.has(node_flag::MYSELF) {
            if state.is_some() {
                return Err(bad("a second myself"));
            }
            let mut st = ClusterState::new(name, &node.ip, node.port, node.cport);
            node.link_connected = true;
            st.nodes.insert(name, node);
            state = Some(st);
        } else {
            pending.push(node);
        }
    }
    let mut st = state.ok_or("corrupted cluster config file: no line for myself")?;
    for node in pending {
        st.nodes.insert(node.name, node);
    }
    // Nodes named only as a master or an open slot's peer exist, address unknown.
    let referenced: Vec<NodeName> = st
        .nodes
        .values()
        .filter_map(|n| n.master)
        .chain(open.iter().map(|o| o.2))
        .collect();
    let masters: Vec<NodeName> = st.nodes.values().filter_map(|n| n.master).collect();
    for name in referenced {
        st.nodes
            .entry(name)
            .or_insert_with(|| Node::new(name, node_flag::MASTER | node_flag::NOADDR));
    }
    // A master with a replica line is one that has replicas (Redis's clusterNodeAddSlave).
    for name in masters {
        if let Some(m) = st.nodes.get_mut(&name) {
            m.flags |= node_flag::MIGRATE_TO;
        }
    }
    for (slot, owner) in slots {
        st.slots[slot as usize] = Some(owner);
    }
    for (slot, migrating, peer) in open {
        if migrating {
            st.migrating.insert(slot, peer);
        } else {
            st.importing.insert(slot, peer);
        }
    }
    let max_epoch = st.nodes.values().map(|n| n.config_epoch).max().unwrap_or(0);
    st.current_epoch = epochs.0.max(max_epoch);
    st.last_vote_epoch = epochs.1;
    Ok(st)
}

fn parse_name(s: &str) -> Option<NodeName> {
    NodeName::from_bytes(s.as_bytes()).filter(NodeName::is_valid)
}

fn parse_slot(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&v| (v as usize) < SLOTS)
}

/// `ip:port@cport[,hostname]`; the ip is everything before the last `:` (IPv6 works).
fn parse_address(field: &str, node: &mut Node) -> Option<()> {
    let (addr, hostname) = match field.split_once(',') {
        Some((a, h)) => (a, h),
        None => (field, ""),
    };
    let (ip, ports) = addr.rsplit_once(':')?;
    let (port, cport) = match ports.split_once('@') {
        Some((p, c)) => (p.parse().ok()?, c.parse().ok()?),
        None => {
            let p: u16 = ports.parse().ok()?;
            (p, p.checked_add(10000)?)
        }
    };
    node.ip = ip.to_string();
    node.port = port;
    node.cport = cport;
    node.hostname = hostname.to_string();
    Some(())
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsynced,
/// renamed over the old one, then the directory fsynced, so a crash leaves the old file or
/// the new one, never a mix.
pub fn save(path: &Path, text: &str, durable: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nodes.conf".into());
    let tmp = dir.join(format!(
        "{file_name}.tmp-{}-{}",
        std::process::id(),
        crate::util::time::now_ms()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves nodes.conf in order of the changes that asked for it: durable saves right away (the
/// caller waits), others on a writer thread of their own, so a change that needs no fsync (a
/// SETSLOT during a slot move) does not wait for the file system. On ext4 a rename over the
/// old file costs ~0.2 ms, more than the rest of a SETSLOT. The newest text always wins:
/// every save carries a sequence number, and an older one never overwrites a newer one.
pub struct Writer {
    path: PathBuf,
    progress: Arc<Progress>,
    queue: mpsc::Sender<(u64, String)>,
    next_seq: Cell<u64>,
}

/// How far saving has got, shared with the writer thread and `flush`.
struct Progress {
    /// The newest sequence number written (or given up on after an error, which is logged).
    written: Mutex<u64>,
    /// The newest sequence number asked for.
    requested: AtomicU64,
}

/// The process's writer, for `flush` at shutdown (one cluster member per process).
static PROGRESS: OnceLock<Arc<Progress>> = OnceLock::new();

impl Writer {
    pub fn new(path: PathBuf) -> std::io::Result<Writer> {
        let progress = Arc::new(Progress {
            written: Mutex::new(0),
            requested: AtomicU64::new(0),
        });
        let (queue, jobs) = mpsc::channel::<(u64, String)>();
        let (thread_path, thread_progress) = (path.clone(), progress.clone());
        std::thread::Builder::new()
            .name("redcell-nodes-conf".into())
            .spawn(move || {
                while let Ok(mut job) = jobs.recv() {
                    // Only the newest of the texts queued meanwhile is worth writing.
                    while let Ok(newer) = jobs.try_recv() {
                        job = newer;
                    }
                    let mut written = lock(&thread_progress.written);
                    if job.0 > *written {
                        if let Err(e) = save(&thread_path, &job.1, false) {
                            eprintln!("Could not save the cluster configuration: {e}");
                        }
                        *written = job.0;
                    }
                }
            })?;
        let _ = PROGRESS.set(progress.clone());
        Ok(Writer {
            path,
            progress,
            queue,
            next_seq: Cell::new(1),
        })
    }

    fn take_seq(&self) -> u64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        self.progress.requested.store(seq, Ordering::Release);
        seq
    }

    /// Writes `text` now (fsynced when `durable`), after any save queued before it.
    pub fn save(&self, text: &str, durable: bool) -> std::io::Result<()> {
        let seq = self.take_seq();
        let mut written = lock(&self.progress.written);
        let result = save(&self.path, text, durable);
        *written = seq;
        result
    }

    #[cfg(test)]
    fn flush(&self) {
        self.progress.wait(Duration::from_secs(5));
    }

    /// Queues `text` for the writer thread.
    pub fn save_soon(&self, text: String) {
        let seq = self.take_seq();
        if let Err(mpsc::SendError((_, text))) = self.queue.send((seq, text)) {
            // The thread is gone (it cannot panic, but be safe): write it here.
            if let Err(e) = self.save(&text, false) {
                eprintln!("Could not save the cluster configuration: {e}");
            }
        }
    }
}

fn lock(m: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Progress {
    /// Waits (at most `limit`) until every save asked for so far is done.
    fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while *lock(&self.written) < self.requested.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Waits (at most `limit`) until every nodes.conf save asked for so far is done; for
/// shutdown, so an exit right after a change still leaves that change in the file.
pub fn flush(limit: Duration) {
    if let Some(progress) = PROGRESS.get() {
        progress.wait(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
f3a7356b2c07ee37179d6bac92a780c6259d0cdc 127.0.0.1:7000@17000 master - 0 1795316218851 1 connected 0-5460
94fba6ed91504901cbfcc74fa154e1ced4ebe35a 127.0.0.1:7003@17003 myself,slave f3a7356b2c07ee37179d6bac92a780c6259d0cdc 0 1795316218000 1 connected
vars currentEpoch 5 lastVoteEpoch 0
";

    #[test]
    fn parses_a_stock_file() {
        let st = parse(SAMPLE, 42).unwrap();
        assert_eq!(
            st.myself.to_string(),
            "94fba6ed91504901cbfcc74fa154e1ced4ebe35a"
        );
        assert_eq!(st.current_epoch, 5);
        let master = parse_name("f3a7356b2c07ee37179d6bac92a780c6259d0cdc").unwrap();
        assert_eq!(st.slots_of(&master), 5461);
        let me = st.me();
        assert_eq!(me.master, Some(master));
        assert_eq!((me.port, me.cport, me.pong_received), (7003, 17003, 42));
        assert!(me.has(node_flag::SLAVE) && me.has(node_flag::MYSELF));
    }

    #[test]
    fn round_trips() {
        let text = "\
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:7000@17000,h.example myself,master - 0 0 3 connected 0-99 200 [5->-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb] [300-<-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb]
bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb ::1:7001@17001 master,fail - 0 0 2 disconnected 300
vars currentEpoch 7 lastVoteEpoch 6
";
        let st = parse(text, 0).unwrap();
        let b = parse_name(&"b".repeat(40)).unwrap();
        assert_eq!(st.nodes[&b].ip, "::1");
        assert_eq!(render(&st), text);
    }

    #[test]
    fn corrupt_files_are_errors() {
        let me = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:7000@17000 myself,master - 0 0 0 connected";
        for bad in [
            "",
            "vars currentEpoch 1 lastVoteEpoch 0\n",
            &format!("{me} 0-16384\n"),
            &format!("{me} x\n"),
            "aaaa 127.0.0.1:7000@17000 myself,master - 0 0 0 connected\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1 myself,master - 0 0 0 connected\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:7000@17000 myself,boss - 0 0 0 connected\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 127.0.0.1:7000@17000 myself,master - 0 0\n",
            &format!("{me}\n{me}\n"),
            &format!("{me}\nvars currentEpoch\n"),
        ] {
            assert!(parse(bad, 0).is_err(), "accepted {bad:?}");
        }
        // Blank lines (7.0 may leave them when it shrinks the file in place) are fine.
        assert!(parse(&format!("{me}\n\n\n"), 0).is_ok());
    }

    #[test]
    fn saves_atomically() {
        let dir = std::env::temp_dir().join(format!("redcell-nodes-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.conf");
        save(&path, "one\n", true).unwrap();
        save(&path, "two\n", false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_newest_text_wins_whoever_writes_it() {
        let dir = std::env::temp_dir().join(format!("redcell-conf-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes.conf");
        let w = Writer::new(path.clone()).unwrap();
        for i in 0..200 {
            w.save_soon(format!("queued {i}\n"));
        }
        w.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "queued 199\n");
        // A save made now follows every queued one: none of them may land after it.
        for i in 0..200 {
            w.save_soon(format!("again {i}\n"));
        }
        w.save("now\n", true).unwrap();
        w.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "now\n");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files are left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
