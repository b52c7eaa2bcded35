//! The master side of replication, on the control executor: the backlog fed from the
//! merged journal stream (`persist::aof`'s drain feeds it), and one task per replica that
//! took over its connection at SYNC/PSYNC: a partial resync from the backlog, or a full
//! sync (`+FULLRESYNC`, the RDB of a snapshot cut, then the stream from the cut's offset),
//! then the live stream; REPLCONF ACKs come back on the same socket.
//!
//! Why the stream a replica gets after a full sync continues the RDB exactly: the cut's
//! stamp splits the merged stream (entries at or below it are in the snapshot, later ones
//! are not), and `feed` fixes the replica's offset at that split, so the `+FULLRESYNC`
//! offset is the stream up to the cut.

use std::cell::{Cell, RefCell};
use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;

use super::backlog::Backlog;
use crate::resp::{Args, Decoded, Decoder};
use crate::shard::journal::{self, Entry};
use crate::shard::Shard;

/// How a replica asked to sync.
#[derive(Debug)]
pub struct SyncRequest {
    /// `PSYNC <replid> <offset>`; None for SYNC and `PSYNC ? -1`.
    pub psync: Option<(String, i64)>,
    /// SYNC (old protocol: no `+FULLRESYNC` line, no partial resync).
    pub old_sync: bool,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// REPLCONF listening-port (0: not sent).
    pub listening_port: u16,
    /// REPLCONF ip-address, else the peer's address.
    pub ip: String,
    pub client_id: u64,
}

/// Where a replica stands (Redis's `replstate`, named as INFO shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplicaState {
    /// Waiting for its snapshot's cut and offset.
    WaitBgsave,
    /// Receiving the RDB; the stream after it waits in its queue.
    SendBulk,
    Online,
}

impl ReplicaState {
    fn name(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// One attached replica.
struct Replica {
    id: u64,
    ip: String,
    port: u16,
    state: Cell<ReplicaState>,
    /// The snapshot cut its full sync waits for (stamp), until `feed` fixes its offset.
    cut: Cell<Option<u64>>,
    /// Offset of the last stream byte before its stream starts (the `+FULLRESYNC` offset).
    start: Cell<Option<i64>>,
    /// Stream bytes on their way to it.
    tx: LocalSender<Rc<[u8]>>,
    /// Bytes queued and not yet written (counted against its output buffer limit).
    queued: Rc<Cell<usize>>,
    ack_offset: Cell<i64>,
    ack_time: Cell<Instant>,
    /// Set when it must be dropped (output buffer limit, or the link failed).
    dropped: Cell<bool>,
}

/// What INFO replication shows of the master side.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub replid: String,
    pub replid2: String,
    /// `second_repl_offset`: the last offset + 1 `replid2` is valid for; -1 without one.
    pub second_offset: i64,
    pub offset: i64,
    pub backlog_active: bool,
    pub backlog_size: usize,
    pub first_byte_offset: i64,
    pub histlen: i64,
    /// (ip, port, state, ack offset, seconds since its last ack).
    pub replicas: Vec<(String, u16, &'static str, i64, u64)>,
    /// Full syncs served, partial resyncs accepted and refused (INFO stats).
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
}

pub struct Master {
    shard: Rc<Shard>,
    replid: RefCell<String>,
    /// The replication id before the last change, and Redis's `second_replid_offset`
    /// (the highest offset a PSYNC with it may ask for).
    replid2: RefCell<(String, i64)>,
    backlog: RefCell<Option<Backlog>>,
    /// The stream's database after its last SELECT (None: the next entry SELECTs).
    stream_db: Cell<Option<u32>>,
    /// The watermark of the last feed: every entry stamped at or below it is in the stream.
    fed_watermark: Cell<u64>,
    replicas: RefCell<Vec<Rc<Replica>>>,
    /// When the last replica went away (for `repl-backlog-ttl`).
    alone_since: Cell<Option<Instant>>,
    sync_full: Cell<u64>,
    sync_partial_ok: Cell<u64>,
    sync_partial_err: Cell<u64>,
    /// What the shards were last told about `min-replicas-to-write`.
    told_refuse: Cell<bool>,
}

thread_local! {
    static MASTER: RefCell<Option<Rc<Master>>> = const { RefCell::new(None) };
}

/// A random 40-hex-digit replication id.
pub fn random_replid() -> String {
    let mut bytes = [0u8; 20];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Master {
    /// Sets up the master side on the control executor.
    pub fn start(shard: Rc<Shard>, replid: String) -> Rc<Master> {
        // What the shards start with (`Shard::new`).
        let refusing = shard.shared.config().refuses_writes_without_replicas();
        let m = Rc::new(Master {
            shard,
            replid: RefCell::new(replid),
            replid2: RefCell::new((super::NO_REPLID.to_string(), -1)),
            backlog: RefCell::new(None),
            stream_db: Cell::new(None),
            fed_watermark: Cell::new(0),
            replicas: RefCell::new(Vec::new()),
            alone_since: Cell::new(None),
            sync_full: Cell::new(0),
            sync_partial_ok: Cell::new(0),
            sync_partial_err: Cell::new(0),
            told_refuse: Cell::new(refusing),
        });
        MASTER.with(|c| *c.borrow_mut() = Some(m.clone()));
        glommio::spawn_local(m.clone().cron()).detach();
        m
    }

    /// The control executor's master side (only there).
    pub fn current() -> Option<Rc<Master>> {
        MASTER.with(|c| c.borrow().clone())
    }

    fn config_usize(&self, name: &str) -> usize {
        self.shard.shared.config().get_i64(name).max(0) as usize
    }

    pub fn summary(&self) -> Summary {
        let backlog = self.backlog.borrow();
        let now = Instant::now();
        let (replid2, second_offset) = self.replid2.borrow().clone();
        Summary {
            replid: self.replid.borrow().clone(),
            replid2,
            second_offset,
            offset: backlog.as_ref().map_or(0, |b| b.offset()),
            backlog_active: backlog.is_some(),
            backlog_size: self.config_usize("repl-backlog-size"),
            first_byte_offset: backlog.as_ref().map_or(0, |b| b.first_byte_offset()),
            histlen: backlog.as_ref().map_or(0, |b| b.histlen()),
            replicas: self
                .replicas
                .borrow()
                .iter()
                .map(|r| {
                    (
                        r.ip.clone(),
                        r.port,
                        r.state.get().name(),
                        r.ack_offset.get(),
                        now.duration_since(r.ack_time.get()).as_secs(),
                    )
                })
                .collect(),
            sync_full: self.sync_full.get(),
            sync_partial_ok: self.sync_partial_ok.get(),
            sync_partial_err: self.sync_partial_err.get(),
        }
    }

    /// Appends rendered stream bytes to the backlog and every replica already attached.
    fn append_stream(&self, bytes: &[u8]) {
        match self.backlog.borrow_mut().as_mut() {
            Some(b) => b.append(bytes),
            None => return,
        }
        if bytes.is_empty() {
            return;
        }
        let chunk: Rc<[u8]> = Rc::from(bytes);
        let limit = self.replica_buffer_limit();
        for r in self.replicas.borrow().iter() {
            if r.start.get().is_some() {
                r.push(chunk.clone(), limit);
            }
        }
    }

    /// `client-output-buffer-limit replica`'s hard limit (Redis's default: 256 MB).
    fn replica_buffer_limit(&self) -> usize {
        256 << 20
    }

    /// Takes the merged entries up to `watermark` into the stream.
    fn feed(&self, batch: &[Entry], watermark: u64) {
        if self.backlog.borrow().is_none() {
            return;
        }
        let mut out = Vec::new();
        let mut db = self.stream_db.get();
        for e in batch {
            self.fix_cuts_before(e.stamp, &mut out, &mut db);
            journal::render(std::slice::from_ref(e), &mut db, &mut out);
        }
        self.fix_cuts_before(watermark.saturating_add(1), &mut out, &mut db);
        self.stream_db.set(db);
        self.append_stream(&out);
        self.fed_watermark.set(watermark);
    }

    /// Replicas waiting for a cut stamped below `stamp` start their stream at the end of
    /// what is rendered so far (`out`, not yet appended): flushes `out` to the stream and
    /// fixes their offsets there. The next entry SELECTs its database, as Redis makes the
    /// stream do after a full sync starts.
    fn fix_cuts_before(&self, stamp: u64, out: &mut Vec<u8>, db: &mut Option<u32>) {
        let waiting: Vec<Rc<Replica>> = self
            .replicas
            .borrow()
            .iter()
            .filter(|r| r.cut.get().is_some_and(|c| c < stamp))
            .cloned()
            .collect();
        if waiting.is_empty() {
            return;
        }
        self.append_stream(out);
        out.clear();
        let offset = self.backlog.borrow().as_ref().map_or(0, |b| b.offset());
        for r in waiting {
            r.cut.set(None);
            r.start.set(Some(offset));
        }
        *db = None;
    }

    /// Raw bytes into the stream outside any database (PING, REPLCONF GETACK).
    fn feed_raw(&self, argv: &[&[u8]]) {
        if self.backlog.borrow().is_none() || self.replicas.borrow().is_empty() {
            return;
        }
        let mut out = Vec::new();
        crate::resp::args::encode_command(argv.iter().copied(), argv.len(), &mut out);
        self.append_stream(&out);
    }

    /// The first replica ever (or after the backlog expired): a new history starts, with a
    /// new id, as Redis's `syncCommand` does when it creates the backlog.
    fn ensure_backlog(&self) {
        if self.backlog.borrow().is_some() {
            return;
        }
        let size = self.config_usize("repl-backlog-size");
        let offset = self.offset_hint();
        *self.replid.borrow_mut() = random_replid();
        *self.replid2.borrow_mut() = (super::NO_REPLID.to_string(), -1);
        *self.backlog.borrow_mut() = Some(Backlog::new(size, offset));
        self.stream_db.set(None);
    }

    /// The offset the stream continues from when a backlog is created.
    fn offset_hint(&self) -> i64 {
        0
    }

    /// A replica becomes this master (REPLICAOF NO ONE, Redis's `shiftReplicationId`): the
    /// history it followed (`old_replid` up to `offset`) continues under `new_replid`, the
    /// old id kept valid up to `offset + 1`, so that former siblings at that offset resync
    /// partially. The backlog starts at `offset`.
    pub fn promote(&self, new_replid: String, old_replid: String, offset: i64) {
        *self.replid.borrow_mut() = new_replid;
        *self.replid2.borrow_mut() = (old_replid, offset + 1);
        let size = self.config_usize("repl-backlog-size");
        *self.backlog.borrow_mut() = Some(Backlog::new(size, offset));
        self.stream_db.set(None);
        self.alone_since.set(None);
    }

    /// This node becomes a replica: its own history stops here. Returns its id and offset
    /// (the cached master a partial resync with the new master may continue from). Attached
    /// replicas are dropped and the backlog freed: redcell does not relay its master's
    /// stream to replicas of its own (chained replication).
    pub fn demote(&self) -> (String, i64) {
        let offset = self.backlog.borrow().as_ref().map_or(0, |b| b.offset());
        for r in self.replicas.borrow().iter() {
            r.drop_link();
        }
        *self.backlog.borrow_mut() = None;
        (self.replid.borrow().clone(), offset)
    }

    /// The stream's offset once every write stamped up to now is in it (WAIT's target).
    pub async fn offset_after_now(&self) -> i64 {
        let now = journal::now_stamp();
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.fed_watermark.get() < now && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        self.backlog.borrow().as_ref().map_or(0, |b| b.offset())
    }

    /// Replicas whose acknowledged offset reached `offset`.
    pub fn acked(&self, offset: i64) -> usize {
        self.replicas
            .borrow()
            .iter()
            .filter(|r| r.state.get() == ReplicaState::Online && r.ack_offset.get() >= offset)
            .count()
    }

    /// Asks every replica for its offset now (WAIT), as Redis does before sleeping.
    pub fn request_acks(&self) {
        self.feed_raw(&[b"REPLCONF", b"GETACK", b"*"]);
    }

    /// Pings replicas every `repl-ping-replica-period`; drops the backlog after
    /// `repl-backlog-ttl` without replicas; drops replicas silent for `repl-timeout`.
    async fn cron(self: Rc<Self>) {
        let mut last_ping = Instant::now();
        loop {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            let (period, ttl, timeout, size) = {
                let c = self.shard.shared.config();
                (
                    c.get_i64("repl-ping-replica-period").max(1) as u64,
                    c.get_i64("repl-backlog-ttl").max(0) as u64,
                    c.get_i64("repl-timeout").max(1) as u64,
                    c.get_i64("repl-backlog-size").max(1) as usize,
                )
            };
            if let Some(b) = self.backlog.borrow_mut().as_mut() {
                if b.size() != size {
                    b.resize(size);
                }
            }
            if last_ping.elapsed() >= Duration::from_secs(period) {
                last_ping = Instant::now();
                self.feed_raw(&[b"PING"]);
            }
            for r in self.replicas.borrow().iter() {
                let silent = r.ack_time.get().elapsed() > Duration::from_secs(timeout);
                if r.state.get() == ReplicaState::Online && silent && !r.dropped.get() {
                    eprintln!(
                        "Disconnecting timedout replica (streaming sync): {}:{}",
                        r.ip, r.port
                    );
                    r.drop_link();
                }
            }
            self.update_write_gate().await;
            let alone = self.replicas.borrow().is_empty();
            match (alone, self.alone_since.get()) {
                (true, None) => self.alone_since.set(Some(Instant::now())),
                (false, Some(_)) => self.alone_since.set(None),
                (true, Some(t))
                    if ttl > 0
                        && t.elapsed() > Duration::from_secs(ttl)
                        && self.backlog.borrow_mut().take().is_some() =>
                {
                    eprintln!(
                        "Replication backlog freed after {ttl} seconds without connected replicas."
                    );
                }
                _ => {}
            }
        }
    }

    /// `min-replicas-to-write`: tells every shard whether writes must be refused, when that
    /// changed. A good replica is online and acknowledged within `min-replicas-max-lag`
    /// seconds (Redis's `refreshGoodSlavesCount`).
    async fn update_write_gate(&self) {
        let (min, max_lag, asked) = {
            let c = self.shard.shared.config();
            (
                c.get_i64("min-replicas-to-write"),
                c.get_i64("min-replicas-max-lag"),
                c.refuses_writes_without_replicas(),
            )
        };
        let good = self
            .replicas
            .borrow()
            .iter()
            .filter(|r| {
                r.state.get() == ReplicaState::Online
                    && r.ack_time.get().elapsed().as_secs() as i64 <= max_lag
            })
            .count() as i64;
        let refuse = asked && good < min;
        if refuse == self.told_refuse.get() {
            return;
        }
        self.told_refuse.set(refuse);
        for to in 0..=self.shard.nshards {
            self.shard
                .call(to, move |s| {
                    let gate = s.disk_gate.get();
                    s.disk_gate.set(crate::shard::DiskGate {
                        no_good_replicas: refuse,
                        ..gate
                    });
                })
                .await;
        }
    }

    fn remove(&self, id: u64) {
        self.replicas.borrow_mut().retain(|r| r.id != id);
    }

    /// Serves one replica on its connection `fd` (taken over from a client connection).
    pub async fn serve(self: Rc<Self>, fd: i32, req: SyncRequest) {
        // SAFETY: `fd` is a connected socket duplicated for this task alone.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let name = format!("{}:{}", req.ip, req.listening_port);
        eprintln!("Replica {name} asks for synchronization");
        if let Some(link_up) = super::replica_link_up() {
            // Redis's words when its own link is down; a replica of a replica is not built.
            let refusal: &[u8] = if link_up {
                b"-ERR redcell does not serve replicas while it is a replica itself\r\n"
            } else {
                b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
            };
            let (_, mut writer) = futures_lite::io::split(stream);
            let _ = writer.write_all(refusal).await;
            let _ = writer.close().await;
            return;
        }
        self.ensure_backlog();
        let (tx, rx) = local_channel::new_unbounded();
        let r = Rc::new(Replica {
            id: req.client_id,
            ip: req.ip.clone(),
            port: req.listening_port,
            state: Cell::new(ReplicaState::WaitBgsave),
            cut: Cell::new(None),
            start: Cell::new(None),
            tx,
            queued: Rc::new(Cell::new(0)),
            ack_offset: Cell::new(0),
            ack_time: Cell::new(Instant::now()),
            dropped: Cell::new(false),
        });
        let (reader, mut writer) = futures_lite::io::split(stream);
        let partial = self.try_partial(&req, &r);
        self.replicas.borrow_mut().push(r.clone());
        let ok;
        match partial {
            Some(greeting) => {
                self.sync_partial_ok.set(self.sync_partial_ok.get() + 1);
                ok = writer.write_all(greeting.as_bytes()).await.is_ok();
                eprintln!("Partial resynchronization request from {name} accepted.");
            }
            None => {
                // Redis counts a refused PSYNC (not `PSYNC ? -1`, not SYNC) as an error.
                if req.psync.as_ref().is_some_and(|(id, _)| id != "?") {
                    self.sync_partial_err.set(self.sync_partial_err.get() + 1);
                }
                self.sync_full.set(self.sync_full.get() + 1);
                ok = self.full_sync(&r, &req, &mut writer, &name).await;
            }
        }
        if ok {
            r.state.set(ReplicaState::Online);
            r.ack_time.set(Instant::now());
            eprintln!("Synchronization with replica {name} succeeded");
            let acks = glommio::spawn_local(read_acks(reader, r.clone())).detach();
            let queued = r.queued.clone();
            while let Some(chunk) = rx.recv().await {
                if r.dropped.get() {
                    break;
                }
                let failed = writer.write_all(&chunk).await.is_err();
                queued.set(queued.get().saturating_sub(chunk.len()));
                if failed {
                    break;
                }
            }
            acks.cancel();
        }
        eprintln!("Connection with replica {name} lost.");
        self.remove(r.id);
        let _ = writer.close().await;
    }

    /// The `+CONTINUE` line and the backlog after the replica's offset, when the backlog
    /// covers it; the replica is then attached (no await between: nothing is missed).
    fn try_partial(&self, req: &SyncRequest, r: &Rc<Replica>) -> Option<String> {
        let (replid, from) = req.psync.as_ref()?;
        let ours = self.replid.borrow().clone();
        let (id2, id2_end) = self.replid2.borrow().clone();
        let known = *replid == ours || (*replid == id2 && *from <= id2_end);
        if !known {
            if replid != "?" {
                eprintln!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{replid}', my replication IDs are '{ours}' and '{id2}')"
                );
            }
            return None;
        }
        let backlog = self.backlog.borrow();
        let b = backlog.as_ref()?;
        let Some(bytes) = b.since(*from) else {
            eprintln!(
                "Unable to partial resync with replica: lack of backlog (Replica request was: {from})."
            );
            return None;
        };
        r.start.set(Some(from - 1));
        r.ack_offset.set(from - 1);
        if !bytes.is_empty() {
            r.push(Rc::from(bytes), usize::MAX);
        }
        Some(if req.capa_psync2 {
            format!("+CONTINUE {ours}\r\n")
        } else {
            "+CONTINUE\r\n".to_string()
        })
    }

    /// A full sync: a snapshot cut, `+FULLRESYNC <replid> <offset>`, the RDB file as a bulk
    /// (`$<len>`), then the replica goes online and its queued stream follows.
    async fn full_sync<W: futures_lite::AsyncWrite + Unpin>(
        &self,
        r: &Rc<Replica>,
        req: &SyncRequest,
        writer: &mut W,
        name: &str,
    ) -> bool {
        eprintln!("Starting BGSAVE for SYNC with target: disk");
        let Some((stamp, save)) = crate::persist::save_for_sync(&self.shard).await else {
            eprintln!("BGSAVE for replication failed");
            return false;
        };
        r.cut.set(Some(stamp));
        while r.start.get().is_none() {
            if r.dropped.get() {
                return false;
            }
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        let offset = r.start.get().unwrap_or(0);
        r.ack_offset.set(offset);
        if !req.old_sync {
            let line = format!("+FULLRESYNC {} {}\r\n", self.replid.borrow(), offset);
            eprintln!("Full resync requested by replica {name}");
            if writer.write_all(line.as_bytes()).await.is_err() {
                return false;
            }
        }
        let path = match save.await {
            Some(Ok(path)) => path,
            _ => {
                eprintln!("BGSAVE for replication failed");
                return false;
            }
        };
        r.state.set(ReplicaState::SendBulk);
        eprintln!("Synchronization with replica {name}: sending the RDB");
        send_file(&path, writer).await
    }
}

impl Replica {
    /// Ends the link: its writer stops at the next chunk, which this sends (empty).
    fn drop_link(&self) {
        self.dropped.set(true);
        let _ = self.tx.try_send(Rc::from(&[][..]));
    }

    /// Queues stream bytes; past `limit` queued bytes the replica is dropped, as Redis drops
    /// a replica over its output buffer's hard limit.
    fn push(&self, chunk: Rc<[u8]>, limit: usize) {
        if self.dropped.get() {
            return;
        }
        let queued = self.queued.get() + chunk.len();
        if queued > limit {
            eprintln!(
                "Client id={} addr={}:{} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.id, self.ip, self.port
            );
            self.drop_link();
            return;
        }
        self.queued.set(queued);
        if self.tx.try_send(chunk).is_err() {
            self.dropped.set(true);
        }
    }
}

/// Sends the RDB file at `path` as `$<len>\r\n<bytes>` (no trailing CRLF, as Redis).
async fn send_file<W: futures_lite::AsyncWrite + Unpin>(
    path: &std::path::Path,
    writer: &mut W,
) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if writer
        .write_all(format!("${len}\r\n").as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let mut left = len;
    let mut buf = vec![0u8; 256 << 10];
    while left > 0 {
        use std::io::Read;
        let want = buf.len().min(left as usize);
        let n = match file.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if writer.write_all(&buf[..n]).await.is_err() {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// Reads what a replica sends after its sync: `REPLCONF ACK <offset> [FACK <offset>]`.
async fn read_acks<R: futures_lite::AsyncRead + Unpin>(mut reader: R, r: Rc<Replica>) {
    let mut buf = vec![0u8; 4096];
    let (mut start, mut end) = (0, 0);
    let mut dec = Decoder::new(1 << 20);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                break; // a request larger than any REPLCONF: garbage
            }
        }
        let n = match reader.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        end += n;
        loop {
            match dec.decode(&buf[start..end], false) {
                Decoded::Incomplete { .. } => break,
                Decoded::Nothing { len } => start += len,
                Decoded::Error(_) => {
                    r.drop_link();
                    return;
                }
                Decoded::Request { len, .. } => {
                    let args = Args::new(&buf[start..end], dec.scratch(), dec.spans());
                    if args.len() >= 3 && args.is(0, "REPLCONF") && args.is(1, "ACK") {
                        if let Some(off) = std::str::from_utf8(args.get(2))
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                        {
                            r.ack_offset.set(off);
                        }
                    }
                    r.ack_time.set(Instant::now());
                    start += len;
                }
            }
        }
        if start == end {
            start = 0;
            end = 0;
        }
    }
    r.drop_link();
}

/// INFO replication's master fields, from any executor.
pub async fn summary(shard: &Rc<Shard>) -> Summary {
    shard
        .call_async(shard.nshards, |_| async {
            Master::current().map(|m| m.summary()).unwrap_or_default()
        })
        .await
}

/// DEBUG CHANGE-REPL-ID: a new replication id and no secondary one (Redis's
/// `changeReplicationId` and `clearReplicationId2`): replicas must resync fully.
pub async fn change_replid(shard: &Rc<Shard>) {
    shard
        .call_async(shard.nshards, |_| async {
            if let Some(m) = Master::current() {
                *m.replid.borrow_mut() = random_replid();
                *m.replid2.borrow_mut() = (super::NO_REPLID.to_string(), -1);
                eprintln!("Changing replication IDs after receiving DEBUG change-repl-id");
            }
        })
        .await
}

/// CLIENT KILL TYPE replica / ID: drops the replica links matching `id` (all: None);
/// returns how many.
pub async fn kill_replicas(shard: &Rc<Shard>, id: Option<u64>) -> usize {
    shard
        .call_async(shard.nshards, move |_| async move {
            let Some(m) = Master::current() else { return 0 };
            let replicas = m.replicas.borrow();
            let victims: Vec<_> = replicas
                .iter()
                .filter(|r| !r.dropped.get() && id.is_none_or(|id| id == r.id))
                .collect();
            for r in &victims {
                r.drop_link();
            }
            victims.len()
        })
        .await
}

/// Whether the merged stream is wanted for replication (a backlog exists).
pub fn wants_stream() -> bool {
    Master::current().is_some_and(|m| m.backlog.borrow().is_some())
}

/// Feeds merged entries (from `persist::aof`'s drain) to the backlog and the replicas.
pub fn feed(batch: &[Entry], watermark: u64) {
    if let Some(m) = Master::current() {
        m.feed(batch, watermark);
    }
}
