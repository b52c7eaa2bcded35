//! The master side of replication, on the control executor: the backlog fed from the
//! merged journal stream (`persist::aof`'s drain feeds it), and one task per replica that
//! took over its connection at SYNC/PSYNC: a partial resync from the backlog, or a full
//! sync (`+FULLRESYNC`, the RDB of a snapshot cut, then the stream from the cut's offset),
//! then the live stream; REPLCONF ACKs come back on the same socket.
//!
//! Full syncs are grouped as Redis's `replicationCron` groups them: a replica that needs
//! one waits (`wait_bgsave`) until one snapshot starts for every replica waiting. With
//! `repl-diskless-sync` and replicas that all announced `capa eof`, the snapshot is
//! streamed to their sockets (`$EOF:<mark>` framing, `persist::save_to_sockets`) after
//! `repl-diskless-sync-delay` seconds or once `repl-diskless-sync-max-replicas` wait;
//! otherwise it is saved to `dbfilename` and sent as `$<len>`.
//!
//! On a replica (chained replication, Redis's `replicationFeedStreamFromMasterStream`) the
//! same backlog and replicas carry its master's stream instead of its journal: the link
//! hands over each chunk once applied (`relay`), byte for byte, so the ids and offsets are
//! the top master's; a full sync's offset is the applied offset at the cut, and its stream
//! continues in the master's database without a SELECT.
//!
//! Why the stream a replica gets after a full sync continues the RDB exactly: the cut's
//! stamp splits the merged stream (entries at or below it are in the snapshot, later ones
//! are not), and `feed` fixes the replica's offset at that split, so the `+FULLRESYNC`
//! offset is the stream up to the cut.

use std::cell::{Cell, RefCell};
use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::TcpStream;
use rustls::ServerConnection;

use super::backlog::Backlog;
use crate::resp::{Args, Decoded, Decoder};
use crate::shard::client::RdbFilter;
use crate::shard::journal::{self, Entry};
use crate::shard::pubsub::Limit;
use crate::shard::Shard;
use crate::tls::{MaybeTls, TlsStream};

/// `write_all`, then `flush`: a TLS link (`tls-replication`) holds records until flushed.
trait WriteFlush: futures_lite::AsyncWrite + Unpin {
    async fn write_flush(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.write_all(buf).await?;
        self.flush().await
    }
}

impl<W: futures_lite::AsyncWrite + Unpin + ?Sized> WriteFlush for W {}

/// A streamed transfer waits while any of its replicas has this many RDB bytes not yet
/// written to its socket (Redis's pipe waits for every replica's write): a slow replica
/// slows the snapshot, it does not pile it up in memory.
const BULK_WINDOW: usize = 1 << 20;

/// How a replica asked to sync.
#[derive(Debug)]
pub struct SyncRequest {
    /// `PSYNC <replid> <offset>`; None for SYNC and `PSYNC ? -1`.
    pub psync: Option<(String, i64)>,
    /// SYNC (old protocol: no `+FULLRESYNC` line, no partial resync).
    pub old_sync: bool,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// REPLCONF rdb-only 1: the snapshot alone; the connection is closed after it.
    pub rdb_only: bool,
    /// REPLCONF rdb-filter-only: a full sync sends an RDB without keys.
    pub rdb_filter: Option<RdbFilter>,
    /// REPLCONF listening-port (0: not sent).
    pub listening_port: u16,
    /// REPLCONF ip-address, else the peer's address.
    pub ip: String,
    pub client_id: u64,
    /// Its CLIENT LIST line when it asked (for the log lines Redis writes about a client).
    pub client_line: String,
}

/// What a full sync sends a replica before its stream, in order.
enum Bulk {
    /// `+FULLRESYNC` (and the `$EOF:<mark>` line of a streamed transfer, after which no
    /// keep-alive may be sent).
    Begin { preamble: Vec<u8>, streamed: bool },
    /// Bytes of a streamed RDB (the end mark last).
    Chunk(Rc<[u8]>),
    /// The saved RDB file, to send as `$<len>`.
    File(std::path::PathBuf),
    /// The streamed transfer is complete.
    End,
    /// The snapshot could not start.
    Refused,
    /// The link is being dropped.
    Abort,
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
    /// Its CLIENT LIST line when it asked to sync.
    client_line: String,
    capa_eof: bool,
    /// Wants the snapshot alone: never fed the stream, closed once the RDB is sent.
    rdb_only: bool,
    /// Wants an RDB without keys (REPLCONF rdb-filter-only).
    rdb_filter: Option<RdbFilter>,
    /// Came with SYNC: no `+FULLRESYNC`, no ACKs expected.
    old_sync: bool,
    /// When it asked for its full sync (the diskless delay counts from there).
    asked: Instant,
    /// A snapshot for it started (it no longer waits for one).
    in_snapshot: Cell<bool>,
    state: Cell<ReplicaState>,
    /// The snapshot cut its full sync waits for (stamp), until `feed` fixes its offset.
    cut: Cell<Option<u64>>,
    /// Offset of the last stream byte before its stream starts (the `+FULLRESYNC` offset).
    start: Cell<Option<i64>>,
    /// Stream bytes on their way to it.
    tx: LocalSender<Rc<[u8]>>,
    /// Bytes queued and not yet written (counted against its output buffer limit).
    queued: Rc<Cell<usize>>,
    /// When `queued` went over the soft limit (None: it is under).
    soft_since: Cell<Option<Instant>>,
    /// The full sync's bytes on their way to it, and how many of them are not written yet.
    bulk: LocalSender<Bulk>,
    bulk_queued: Cell<usize>,
    /// A streamed RDB is being written to it, and when its socket last took some.
    streaming_rdb: Cell<bool>,
    last_bulk_write: Cell<Instant>,
    /// It sent a REPLCONF ACK (after a streamed transfer, its stream starts then).
    acked: Cell<bool>,
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
    /// The stream's offset while no backlog holds it (freed by `repl-backlog-ttl`): Redis's
    /// `master_repl_offset` stays, and a new backlog continues from it.
    offset_without_backlog: Cell<i64>,
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
    /// Whether writes must be refused now (`min-replicas-to-write`): each shard's update
    /// reads it as it runs, so updates that overlap (the cron's, CONFIG SET's) leave every
    /// shard with the newest.
    want_refuse: Arc<AtomicBool>,
    /// A snapshot for replicas is being produced (one at a time, as Redis's child).
    sync_running: Cell<bool>,
    /// The disk-based sync being saved, which later replicas may join (`attach_to_disk_sync`).
    disk_sync: RefCell<Option<DiskSync>>,
    /// A disk-based sync wrote `dbfilename` under `rdb-del-sync-files yes`: the cron removes
    /// it once no replica needs it, when the node is otherwise without persistence.
    rdb_from_sync: Cell<bool>,
    /// This node is a replica: its stream is its master's, relayed byte for byte (`relay`),
    /// and its ids are the replica side's (`Repl::state`); the journal does not feed it.
    relaying: Cell<bool>,
    /// Journal entries stamped at or below this were applied while this node was a replica
    /// (its master's stream, already relayed): they are not part of its own stream.
    skip_through: Cell<u64>,
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
            offset_without_backlog: Cell::new(0),
            stream_db: Cell::new(None),
            fed_watermark: Cell::new(0),
            replicas: RefCell::new(Vec::new()),
            alone_since: Cell::new(None),
            sync_full: Cell::new(0),
            sync_partial_ok: Cell::new(0),
            sync_partial_err: Cell::new(0),
            want_refuse: Arc::new(AtomicBool::new(refusing)),
            sync_running: Cell::new(false),
            disk_sync: RefCell::new(None),
            rdb_from_sync: Cell::new(false),
            relaying: Cell::new(false),
            skip_through: Cell::new(0),
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

    /// The ids a PSYNC is answered with, `(replid, replid2, second_replid_offset)`: this
    /// master's own, or while relaying the replica side's (its master's history).
    fn ids(&self) -> (String, String, i64) {
        if self.relaying.get() {
            if let Some(ids) = super::replica_ids() {
                return ids;
            }
        }
        let (id2, offset2) = self.replid2.borrow().clone();
        (self.replid.borrow().clone(), id2, offset2)
    }

    pub fn summary(&self) -> Summary {
        let backlog = self.backlog.borrow();
        let now = Instant::now();
        let (replid, replid2, second_offset) = self.ids();
        Summary {
            replid,
            replid2,
            second_offset,
            offset: self.offset(),
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
        if bytes.is_empty() || self.replicas.borrow().is_empty() {
            return;
        }
        let chunk: Rc<[u8]> = Rc::from(bytes);
        let limit = self.replica_limit();
        for r in self.replicas.borrow().iter() {
            if r.start.get().is_some() {
                r.push(chunk.clone());
                if r.over_limit(limit) {
                    eprintln!(
                        "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                        r.client_line
                    );
                    r.drop_link();
                }
            }
        }
    }

    /// `client-output-buffer-limit replica` (as CONFIG SET left it before its reply).
    fn replica_limit(&self) -> Limit {
        self.shard.settings.borrow().replica_limit
    }

    /// Takes the merged entries up to `watermark` into the stream.
    fn feed(&self, batch: &[Entry], watermark: u64) {
        if self.backlog.borrow().is_none() || self.relaying.get() {
            return;
        }
        let mut out = Vec::new();
        let mut db = self.stream_db.get();
        let skip = self.skip_through.get();
        for e in batch.iter().filter(|e| e.stamp > skip) {
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
        let offset = self.offset();
        for r in waiting {
            r.cut.set(None);
            r.start.set(Some(offset));
        }
        *db = None;
    }

    /// Raw bytes into the stream outside any database (PING, REPLCONF GETACK).
    fn feed_raw(&self, argv: &[&[u8]]) {
        if self.backlog.borrow().is_none()
            || self.replicas.borrow().is_empty()
            || self.relaying.get()
        {
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
        if self.relaying.get() {
            // A replica's history is its master's: the backlog continues it, same ids.
            let offset = super::replica_ids_offset().unwrap_or(0);
            *self.backlog.borrow_mut() = Some(Backlog::new(size, offset));
            return;
        }
        let offset = self.offset_without_backlog.get();
        *self.replid.borrow_mut() = random_replid();
        *self.replid2.borrow_mut() = (super::NO_REPLID.to_string(), -1);
        *self.backlog.borrow_mut() = Some(Backlog::new(size, offset));
        self.stream_db.set(None);
    }

    /// A replica becomes this master (REPLICAOF NO ONE, Redis's `shiftReplicationId`): the
    /// history it followed (`old_replid` up to `offset`) continues under `new_replid`, the
    /// old id kept valid up to `offset + 1`, so that former siblings at that offset resync
    /// partially. The relayed backlog is kept (it continues at `offset`); the sub-replicas
    /// are dropped so that they learn the new id (they resync partially), as Redis's
    /// `replicationUnsetMaster` does. Journal entries of the stream applied so far are not
    /// this master's to send.
    pub fn promote(&self, new_replid: String, old_replid: String, offset: i64) {
        *self.replid.borrow_mut() = new_replid;
        *self.replid2.borrow_mut() = (old_replid, offset + 1);
        self.relaying.set(false);
        self.skip_through.set(journal::now_stamp());
        self.drop_replicas(|_| true);
        let size = self.config_usize("repl-backlog-size");
        let mut backlog = self.backlog.borrow_mut();
        if backlog.as_ref().is_none_or(|b| b.offset() != offset) {
            *backlog = Some(Backlog::new(size, offset));
        }
        self.stream_db.set(None);
        self.alone_since.set(None);
    }

    /// This node becomes a replica: its own history stops here. Returns its id and offset
    /// (the cached master a partial resync with the new master may continue from). From now
    /// on the backlog and the replicas get the new master's stream, relayed (`relay`); as
    /// Redis's `replicationSetMaster`, the online replicas stay attached (the sync with the
    /// new master decides whether they must resync), those still in a full sync go.
    pub fn demote(&self) -> (String, i64) {
        self.relaying.set(true);
        self.drop_replicas(|r| r.state.get() != ReplicaState::Online);
        (self.replid.borrow().clone(), self.offset())
    }

    /// A node that is a replica from start-up relays its master's stream.
    pub fn start_relaying(&self) {
        self.relaying.set(true);
    }

    /// The replica side received a new dataset from its master (Redis's
    /// `replicationAttachToNewMaster`): the sub-replicas must resync and the backlog, of
    /// the old history, goes.
    pub fn attach_to_new_master(&self) {
        self.drop_replicas(|_| true);
        *self.backlog.borrow_mut() = None;
        self.offset_without_backlog.set(0);
    }

    /// The replica side is in sync with its master at `offset` (after a full sync or a
    /// partial resync): a backlog relays the stream from there. When the master's id
    /// changed (`+CONTINUE <new id>`) the sub-replicas are dropped to learn it.
    pub fn relay_from(&self, offset: i64, id_changed: bool) {
        if id_changed {
            self.drop_replicas(|_| true);
        }
        let size = self.config_usize("repl-backlog-size");
        let mut backlog = self.backlog.borrow_mut();
        if backlog.as_ref().is_none_or(|b| b.offset() != offset) {
            if backlog.is_some() {
                // The backlog does not end where the data is: what it holds cannot serve a
                // sub-replica any more, nor can their streams continue.
                self.drop_replicas(|_| true);
            }
            *backlog = Some(Backlog::new(size, offset));
        }
    }

    /// Bytes of the master's stream, applied by the replica side: into the backlog and to
    /// every sub-replica, verbatim (Redis's `replicationFeedStreamFromMasterStream`).
    pub fn relay(&self, bytes: &[u8]) {
        if self.relaying.get() {
            self.append_stream(bytes);
        }
    }

    fn drop_replicas(&self, which: impl Fn(&Replica) -> bool) {
        for r in self.replicas.borrow().iter().filter(|r| which(r)) {
            r.drop_link();
        }
    }

    /// The stream's offset once every write stamped up to now is in it (WAIT's target).
    pub async fn offset_after_now(&self) -> i64 {
        let now = journal::now_stamp();
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.fed_watermark.get() < now && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
        self.offset()
    }

    /// The stream's offset (Redis's `master_repl_offset`).
    pub fn offset(&self) -> i64 {
        self.backlog
            .borrow()
            .as_ref()
            .map_or(self.offset_without_backlog.get(), |b| b.offset())
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
            // A replica's sub-replicas get its master's PINGs, relayed (`feed_raw` skips).
            if last_ping.elapsed() >= Duration::from_secs(period) {
                last_ping = Instant::now();
                self.feed_raw(&[b"PING"]);
            }
            let limit = self.replica_limit();
            let timeout = Duration::from_secs(timeout);
            for r in self.replicas.borrow().iter() {
                if r.dropped.get() {
                    continue;
                }
                let silent = r.ack_time.get().elapsed() > timeout;
                if r.state.get() == ReplicaState::Online && silent && !r.old_sync {
                    eprintln!(
                        "Disconnecting timedout replica (streaming sync): {}:{}",
                        r.ip, r.port
                    );
                    r.drop_link();
                } else if r.streaming_rdb.get() && r.last_bulk_write.get().elapsed() > timeout {
                    eprintln!(
                        "Disconnecting timedout replica (full sync): {}:{}",
                        r.ip, r.port
                    );
                    r.drop_link();
                } else if r.over_limit(limit) {
                    // The soft limit's seconds can pass without a write (Redis's clientsCron).
                    eprintln!(
                        "Client {} closed for overcoming of output buffer limits.",
                        r.client_line
                    );
                    r.drop_link();
                }
            }
            self.start_pending_sync();
            self.remove_rdb_used_to_sync();
            self.update_write_gate(false).await;
            let alone = self.replicas.borrow().is_empty();
            match (alone, self.alone_since.get()) {
                (true, None) => self.alone_since.set(Some(Instant::now())),
                (false, Some(_)) => self.alone_since.set(None),
                // Replicas never free their backlog. Freeing it starts a new history, as
                // Redis's `replicationCron` does: a later PSYNC cannot continue the old one.
                (true, Some(t))
                    if ttl > 0
                        && !self.relaying.get()
                        && t.elapsed() > Duration::from_secs(ttl)
                        && self.backlog.borrow().is_some() =>
                {
                    self.offset_without_backlog.set(self.offset());
                    *self.backlog.borrow_mut() = None;
                    *self.replid.borrow_mut() = random_replid();
                    *self.replid2.borrow_mut() = (super::NO_REPLID.to_string(), -1);
                    eprintln!(
                        "Replication backlog freed after {ttl} seconds without connected replicas."
                    );
                }
                _ => {}
            }
        }
    }

    /// `min-replicas-to-write`: tells every shard whether writes must be refused, when that
    /// changed (or always, with `force`: CONFIG SET replies once every shard knows). A good
    /// replica is online and acknowledged within `min-replicas-max-lag` seconds (Redis's
    /// `refreshGoodSlavesCount`); a replica never refuses (`checkGoodReplicasStatus`).
    pub(super) async fn update_write_gate(&self, force: bool) {
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
        let refuse = asked && !self.relaying.get() && good < min;
        if self.want_refuse.swap(refuse, Ordering::SeqCst) == refuse && !force {
            return;
        }
        for to in 0..=self.shard.nshards {
            let want = self.want_refuse.clone();
            self.shard
                .call(to, move |s| {
                    let gate = s.disk_gate.get();
                    s.disk_gate.set(crate::shard::DiskGate {
                        no_good_replicas: want.load(Ordering::SeqCst),
                        ..gate
                    });
                })
                .await;
        }
    }

    fn remove(&self, id: u64) {
        self.replicas.borrow_mut().retain(|r| r.id != id);
    }

    /// Serves one replica on its connection `fd` (taken over from a client connection), with
    /// the connection's TLS session if it came on the TLS port.
    pub async fn serve(self: Rc<Self>, fd: i32, tls: Option<ServerConnection>, req: SyncRequest) {
        // SAFETY: `fd` is a connected socket duplicated for this task alone.
        let socket = unsafe { TcpStream::from_raw_fd(fd) };
        let stream = match tls {
            None => MaybeTls::Plain(socket),
            Some(session) => MaybeTls::Server(Box::new(TlsStream::new(socket, session))),
        };
        let name = format!("{}:{}", req.ip, req.listening_port);
        eprintln!("Replica {name} asks for synchronization");
        if super::replica_link_up() == Some(false) {
            let refusal = b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n";
            let (_, mut writer) = futures_lite::io::split(stream);
            let _ = writer.write_flush(refusal).await;
            let _ = writer.close().await;
            return;
        }
        self.ensure_backlog();
        let (tx, rx) = local_channel::new_unbounded();
        let (bulk, bulk_rx) = local_channel::new_unbounded();
        let now = Instant::now();
        let r = Rc::new(Replica {
            id: req.client_id,
            ip: req.ip.clone(),
            port: req.listening_port,
            // Flag S first, as Redis's order has it (before U, a replica on the Unix socket).
            client_line: req
                .client_line
                .replacen(" flags=N ", " flags=S ", 1)
                .replacen(" flags=U ", " flags=SU ", 1),
            capa_eof: req.capa_eof,
            rdb_only: req.rdb_only,
            rdb_filter: req.rdb_filter,
            old_sync: req.old_sync,
            asked: now,
            in_snapshot: Cell::new(false),
            state: Cell::new(ReplicaState::WaitBgsave),
            cut: Cell::new(None),
            start: Cell::new(None),
            tx,
            queued: Rc::new(Cell::new(0)),
            soft_since: Cell::new(None),
            bulk,
            bulk_queued: Cell::new(0),
            streaming_rdb: Cell::new(false),
            last_bulk_write: Cell::new(now),
            acked: Cell::new(false),
            ack_offset: Cell::new(0),
            ack_time: Cell::new(now),
            dropped: Cell::new(false),
        });
        let (reader, mut writer) = futures_lite::io::split(stream);
        let partial = if req.rdb_only {
            None
        } else {
            self.try_partial(&req, &r)
        };
        self.replicas.borrow_mut().push(r.clone());
        let mut wait_for_ack = false;
        let ok = match partial {
            Some(greeting) => {
                self.sync_partial_ok.set(self.sync_partial_ok.get() + 1);
                eprintln!("Partial resynchronization request from {name} accepted.");
                writer.write_flush(greeting.as_bytes()).await.is_ok()
            }
            None => {
                // Redis counts a refused PSYNC (not `PSYNC ? -1`, not SYNC) as an error.
                match &req.psync {
                    Some((id, _)) if id != "?" => {
                        self.sync_partial_err.set(self.sync_partial_err.get() + 1)
                    }
                    Some(_) => eprintln!("Full resync requested by replica {name}"),
                    None => {}
                }
                self.sync_full.set(self.sync_full.get() + 1);
                if self
                    .shard
                    .shared
                    .config()
                    .get_bool("repl-disable-tcp-nodelay")
                {
                    // Fewer, larger packets to this replica from now on (Redis's syncCommand).
                    let off: libc::c_int = 0;
                    // SAFETY: `fd` is this replica's open socket; the option value is a c_int.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&off as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        )
                    };
                }
                match self.full_sync(&r, bulk_rx, &mut writer, &name).await {
                    Some(ack_first) => {
                        wait_for_ack = ack_first;
                        true
                    }
                    None => false,
                }
            }
        };
        if ok && r.rdb_only {
            eprintln!(
                "RDB transfer completed, rdb only replica ({name}) should be disconnected asap"
            );
        } else if ok {
            r.state.set(ReplicaState::Online);
            r.ack_time.set(Instant::now());
            eprintln!("Synchronization with replica {name} succeeded");
            let acks = glommio::spawn_local(read_acks(reader, r.clone(), name.clone())).detach();
            // After a streamed RDB the replica detects its end mark more easily when nothing
            // follows it: its stream starts with its first ACK, as in Redis.
            while wait_for_ack && !r.acked.get() && !r.dropped.get() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            let queued = r.queued.clone();
            while let Some(chunk) = rx.recv().await {
                if r.dropped.get() {
                    break;
                }
                let failed = writer.write_flush(&chunk).await.is_err();
                queued.set(queued.get().saturating_sub(chunk.len()));
                if failed {
                    break;
                }
            }
            acks.cancel();
        }
        eprintln!("Connection with replica {name} lost.");
        r.dropped.set(true);
        self.remove(r.id);
        let _ = writer.close().await;
    }

    /// The `+CONTINUE` line and the backlog after the replica's offset, when the backlog
    /// covers it; the replica is then attached (no await between: nothing is missed).
    fn try_partial(&self, req: &SyncRequest, r: &Rc<Replica>) -> Option<String> {
        let (replid, from) = req.psync.as_ref()?;
        let (ours, id2, id2_end) = self.ids();
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
        r.in_snapshot.set(true);
        if !bytes.is_empty() {
            r.push(Rc::from(bytes));
        }
        Some(if req.capa_psync2 {
            format!("+CONTINUE {ours}\r\n")
        } else {
            "+CONTINUE\r\n".to_string()
        })
    }

    /// A full sync, on the replica's own task: waits for a snapshot to take it (writing a
    /// `\n` keep-alive every second meanwhile, and while a disk snapshot is saved), then
    /// writes what the snapshot's task hands it (`Bulk`). Some(whether its stream must wait
    /// for its first ACK) once the RDB is sent; None if the sync failed.
    async fn full_sync<W: futures_lite::AsyncWrite + Unpin>(
        self: &Rc<Self>,
        r: &Rc<Replica>,
        bulk: local_channel::LocalReceiver<Bulk>,
        writer: &mut W,
        name: &str,
    ) -> Option<bool> {
        if let Some(filter) = r.rdb_filter {
            // As `run_sync`: writes after the replica's start must be in the journal, even
            // for the first replica (before the AOF loop's next pass turns recording on).
            if !self.relaying.get() {
                crate::persist::start_recording(&self.shard).await;
            }
            self.filtered_sync(r, filter);
        } else {
            if self.sync_running.get() {
                self.attach_to_disk_sync(r);
            }
            self.start_pending_sync();
        }
        let mut streamed = false;
        let mut keepalive_due = Instant::now() + Duration::from_secs(1);
        loop {
            let next = if streamed {
                bulk.recv().await
            } else {
                let wait = keepalive_due.saturating_duration_since(Instant::now());
                let timer = async {
                    glommio::timer::sleep(wait).await;
                    None
                };
                match futures_lite::future::or(async { Some(bulk.recv().await) }, timer).await {
                    Some(next) => next,
                    None => {
                        if r.dropped.get() {
                            return None;
                        }
                        writer.write_flush(b"\n").await.ok()?;
                        keepalive_due = Instant::now() + Duration::from_secs(1);
                        continue;
                    }
                }
            };
            match next? {
                Bulk::Begin {
                    preamble,
                    streamed: s,
                } => {
                    streamed = s;
                    writer.write_flush(&preamble).await.ok()?;
                }
                Bulk::Chunk(bytes) => {
                    let written = writer.write_flush(&bytes).await;
                    r.bulk_queued
                        .set(r.bulk_queued.get().saturating_sub(bytes.len()));
                    r.last_bulk_write.set(Instant::now());
                    if let Err(e) = written {
                        eprintln!("Diskless rdb transfer, write error sending DB to replica: {e}");
                        return None;
                    }
                }
                Bulk::File(path) => {
                    r.state.set(ReplicaState::SendBulk);
                    return send_file(&path, writer).await.then_some(false);
                }
                Bulk::End => {
                    r.streaming_rdb.set(false);
                    eprintln!(
                        "Streamed RDB transfer with replica {name} succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming"
                    );
                    return Some(!r.old_sync);
                }
                Bulk::Refused => {
                    let _ = writer
                        .write_flush(b"-ERR BGSAVE failed, replication can't continue\r\n")
                        .await;
                    return None;
                }
                Bulk::Abort => return None,
            }
        }
    }

    /// Starts a snapshot for the replicas waiting for one, when none runs and Redis's
    /// `shouldStartChildReplication` would: at once for a disk-based sync (or a replica
    /// without `capa eof`), else once the first waited `repl-diskless-sync-delay` seconds
    /// or `repl-diskless-sync-max-replicas` wait.
    fn start_pending_sync(self: &Rc<Self>) {
        if self.sync_running.get() || crate::persist::snapshot_busy() {
            return;
        }
        let waiting: Vec<Rc<Replica>> = self
            .replicas
            .borrow()
            .iter()
            .filter(|r| !r.in_snapshot.get() && !r.dropped.get())
            .cloned()
            .collect();
        if waiting.is_empty() {
            return;
        }
        let (diskless, delay, max) = {
            let c = self.shard.shared.config();
            (
                c.get_bool("repl-diskless-sync"),
                c.get_i64("repl-diskless-sync-delay").max(0) as u64,
                c.get_i64("repl-diskless-sync-max-replicas").max(0) as usize,
            )
        };
        let all_eof = waiting.iter().all(|r| r.capa_eof);
        let idle = waiting
            .iter()
            .map(|r| r.asked.elapsed().as_secs())
            .max()
            .unwrap_or(0);
        let now = !diskless
            || !all_eof
            || delay == 0
            || (max > 0 && waiting.len() >= max)
            || idle >= delay;
        if !now {
            return;
        }
        for r in &waiting {
            r.in_snapshot.set(true);
        }
        self.sync_running.set(true);
        let socket = diskless && all_eof;
        glommio::spawn_local(self.clone().run_sync(waiting, socket)).detach();
    }

    /// A full sync without keys (REPLCONF rdb-filter-only): with no data to cut, the
    /// replica's stream starts where the stream ends now, and its small RDB (the aux fields,
    /// the function libraries if it keeps them) is queued at once, streamed with an end
    /// mark as Redis always sends a filtered RDB.
    fn filtered_sync(&self, r: &Rc<Replica>, filter: RdbFilter) {
        r.in_snapshot.set(true);
        let offset = self.offset();
        let stream_db = if self.relaying.get() {
            super::replica_stream_db()
        } else {
            // The stream goes on with a SELECT, as after any full sync's cut.
            self.stream_db.set(None);
            0
        };
        // No await from reading the offset to here: nothing appended is missed.
        r.start.set(Some(offset));
        r.ack_offset.set(offset);
        let position = super::SavedPosition {
            stream_db,
            replid: self.ids().0,
            offset,
        };
        let rdb = match crate::persist::filtered_rdb(&self.shard, &position, filter.functions) {
            Ok(rdb) => rdb,
            Err(e) => {
                eprintln!("Can't make a filtered RDB for a replica: {e}");
                r.send_bulk(Bulk::Refused);
                return;
            }
        };
        let mark = random_replid();
        let mut preamble = self.fullresync_line(r, offset);
        preamble.extend_from_slice(format!("$EOF:{mark}\r\n").as_bytes());
        r.streaming_rdb.set(true);
        r.last_bulk_write.set(Instant::now());
        r.send_bulk(Bulk::Begin {
            preamble,
            streamed: true,
        });
        r.send_bulk(Bulk::Chunk(Rc::from(rdb)));
        r.send_bulk(Bulk::Chunk(Rc::from(mark.as_bytes())));
        r.send_bulk(Bulk::End);
    }

    /// A replica asking for a full sync while a disk-based one is saved joins it, as Redis
    /// 7.0's `syncCommand` attaches a replica to a BGSAVE whose replicas it can take the file
    /// of (same `rdb-only`, and it understands every capability theirs use): its stream
    /// starts at that sync's offset, with what the backlog holds since. One that cannot (a
    /// streamed sync runs, or the backlog lost the start) waits for the next snapshot.
    fn attach_to_disk_sync(&self, r: &Rc<Replica>) {
        let disk_sync = self.disk_sync.borrow();
        let model = disk_sync
            .as_ref()
            .and_then(|ds| ds.group.borrow().first().cloned());
        let compatible =
            model.is_some_and(|m| m.rdb_only == r.rdb_only && (r.capa_eof || !m.capa_eof));
        let joined = disk_sync.as_ref().filter(|_| compatible).and_then(|ds| {
            let bytes = self.backlog.borrow().as_ref()?.since(ds.offset + 1)?;
            Some((ds, bytes))
        });
        let Some((ds, bytes)) = joined else {
            eprintln!(
                "Can't attach the replica to the current BGSAVE. Waiting for next BGSAVE for SYNC"
            );
            return;
        };
        // No await from reading the backlog to here: nothing appended is missed.
        r.start.set(Some(ds.offset));
        r.ack_offset.set(ds.offset);
        r.in_snapshot.set(true);
        if !bytes.is_empty() {
            r.push(Rc::from(bytes));
        }
        r.send_bulk(Bulk::Begin {
            preamble: self.fullresync_line(r, ds.offset),
            streamed: false,
        });
        ds.group.borrow_mut().push(r.clone());
        eprintln!("Waiting for end of BGSAVE for SYNC");
    }

    /// One snapshot for `group`, streamed to their sockets or saved to disk.
    async fn run_sync(self: Rc<Self>, group: Vec<Rc<Replica>>, socket: bool) {
        let target = if socket { "replicas sockets" } else { "disk" };
        eprintln!("Starting BGSAVE for SYNC with target: {target}");
        // Writes after the cut must be in the journal (the first replica's sync can start
        // before the AOF loop's next pass turns recording on). A replica's sub-replicas get
        // its master's stream instead.
        if !self.relaying.get() {
            crate::persist::start_recording(&self.shard).await;
        }
        if socket {
            self.sync_to_sockets(group).await;
        } else {
            self.sync_to_disk(group).await;
        }
        self.sync_running.set(false);
        self.start_pending_sync();
    }

    /// A snapshot's cut for `group` was just taken, with no applier step since: as a master
    /// their stream starts where `feed` meets the cut's stamp; relaying, at the relayed
    /// stream's end now, which is where the replica side's data is.
    fn cut_taken(&self, group: &[Rc<Replica>], stamp: u64) {
        let relay_offset = self.relaying.get().then(|| self.offset());
        for r in group {
            match relay_offset {
                Some(offset) => r.start.set(Some(offset)),
                None => r.cut.set(Some(stamp)),
            }
        }
    }

    /// Waits until `feed` fixed the stream offset of every replica of `group` at its cut;
    /// returns those still there, with that offset.
    async fn wait_for_starts(&self, mut group: Vec<Rc<Replica>>) -> (Vec<Rc<Replica>>, i64) {
        loop {
            group.retain(|r| !r.dropped.get());
            if group.iter().all(|r| r.start.get().is_some()) {
                let offset = group.first().and_then(|r| r.start.get()).unwrap_or(0);
                for r in &group {
                    r.ack_offset.set(offset);
                }
                return (group, offset);
            }
            glommio::timer::sleep(Duration::from_micros(200)).await;
        }
    }

    /// `+FULLRESYNC <replid> <offset>` (nothing for SYNC, the old protocol).
    fn fullresync_line(&self, r: &Replica, offset: i64) -> Vec<u8> {
        if r.old_sync {
            return Vec::new();
        }
        format!("+FULLRESYNC {} {}\r\n", self.ids().0, offset).into_bytes()
    }

    /// A disk-based full sync: a background save to `dbfilename`, then the file as `$<len>`.
    async fn sync_to_disk(&self, group: Vec<Rc<Replica>>) {
        let cut_for = group.clone();
        let on_cut = Box::new(move |stamp| {
            if let Some(m) = Master::current() {
                m.cut_taken(&cut_for, stamp);
            }
        });
        let Some(save) = crate::persist::save_for_sync(&self.shard, on_cut).await else {
            eprintln!("BGSAVE for replication failed");
            for r in &group {
                r.send_bulk(Bulk::Refused);
            }
            return;
        };
        // Only when asked for now: turned on later, the option must not delete a file no
        // sync wrote (Redis's `RDBGeneratedByReplication`).
        if self.shard.shared.config().get_bool("rdb-del-sync-files") {
            self.rdb_from_sync.set(true);
        }
        let (group, offset) = self.wait_for_starts(group).await;
        for r in &group {
            let preamble = self.fullresync_line(r, offset);
            r.send_bulk(Bulk::Begin {
                preamble,
                streamed: false,
            });
        }
        // From here replicas arriving may take the same file.
        let group = Rc::new(RefCell::new(group));
        *self.disk_sync.borrow_mut() = Some(DiskSync {
            group: group.clone(),
            offset,
        });
        let saved = save.await;
        *self.disk_sync.borrow_mut() = None;
        match saved {
            Some(Ok(path)) => {
                for r in group.borrow().iter() {
                    r.send_bulk(Bulk::File(path.clone()));
                }
            }
            _ => {
                eprintln!("SYNC failed. BGSAVE child returned an error");
                for r in group.borrow().iter() {
                    r.drop_link();
                }
            }
        }
    }

    /// `rdb-del-sync-files yes` on a node without persistence (no `save` points, no AOF):
    /// the RDB a disk-based sync wrote is removed once no replica waits for or reads it, as
    /// Redis's `removeRDBUsedToSyncReplicas`, so the data does not linger on disk.
    fn remove_rdb_used_to_sync(&self) {
        let (enabled, persistence, dbfilename) = {
            let c = self.shard.shared.config();
            (
                c.get_bool("rdb-del-sync-files"),
                !c.get("save").is_empty() || c.get_bool("appendonly"),
                c.get("dbfilename").to_string(),
            )
        };
        if !enabled {
            self.rdb_from_sync.set(false);
            return;
        }
        if persistence || !self.rdb_from_sync.get() || self.sync_running.get() {
            return;
        }
        let busy = self.replicas.borrow().iter().any(|r| {
            !r.dropped.get()
                && matches!(
                    r.state.get(),
                    ReplicaState::WaitBgsave | ReplicaState::SendBulk
                )
        });
        if busy || std::fs::symlink_metadata(&dbfilename).is_err() {
            return;
        }
        self.rdb_from_sync.set(false);
        eprintln!("Removing the RDB file used to feed replicas in a persistence-less instance");
        if let Err(e) = std::fs::remove_file(&dbfilename) {
            eprintln!("Failed removing {dbfilename}: {e}");
        }
    }

    /// A diskless full sync: the RDB streamed to every replica of `group` at once, framed
    /// by `$EOF:<mark>` and the same 40 random characters after its last byte.
    async fn sync_to_sockets(self: &Rc<Self>, group: Vec<Rc<Replica>>) {
        let mut sink = ReplicaSockets {
            master: self.clone(),
            group,
            mark: random_replid(),
            stream_db: 0,
        };
        match crate::persist::save_to_sockets(&self.shard, &mut sink).await {
            Ok(_) => {
                let mark: Rc<[u8]> = Rc::from(sink.mark.as_bytes());
                for r in &sink.group {
                    r.send_bulk(Bulk::Chunk(mark.clone()));
                    r.send_bulk(Bulk::End);
                }
            }
            Err(_) => {
                for r in &sink.group {
                    r.drop_link();
                }
            }
        }
    }
}

/// A disk-based full sync being saved: its replicas (joined by later ones) and the stream
/// offset their streams start at.
struct DiskSync {
    group: Rc<RefCell<Vec<Rc<Replica>>>>,
    offset: i64,
}

/// The replicas a streamed snapshot goes to (`persist::save_to_sockets`'s sink).
struct ReplicaSockets {
    master: Rc<Master>,
    group: Vec<Rc<Replica>>,
    /// The 40 random characters after `$EOF:` and after the RDB.
    mark: String,
    /// The database the stream after the snapshot is in: a relayed stream goes on in its
    /// master's (no SELECT follows), a master's starts with a SELECT.
    stream_db: i64,
}

impl crate::persist::StreamSink for ReplicaSockets {
    fn cut_taken(&mut self, stamp: u64) {
        self.master.cut_taken(&self.group, stamp);
        if self.master.relaying.get() {
            self.stream_db = super::replica_stream_db();
        }
    }

    async fn begin(&mut self) -> Option<super::SavedPosition> {
        let (group, offset) = self
            .master
            .wait_for_starts(std::mem::take(&mut self.group))
            .await;
        self.group = group;
        if self.group.is_empty() {
            return None;
        }
        for r in &self.group {
            let mut preamble = self.master.fullresync_line(r, offset);
            preamble.extend_from_slice(format!("$EOF:{}\r\n", self.mark).as_bytes());
            r.streaming_rdb.set(true);
            r.last_bulk_write.set(Instant::now());
            r.send_bulk(Bulk::Begin {
                preamble,
                streamed: true,
            });
        }
        Some(super::SavedPosition {
            stream_db: self.stream_db,
            replid: self.master.ids().0,
            offset,
        })
    }

    async fn send(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let chunk: Rc<[u8]> = Rc::from(bytes);
        for r in &self.group {
            r.bulk_queued.set(r.bulk_queued.get() + chunk.len());
            r.send_bulk(Bulk::Chunk(chunk.clone()));
        }
        loop {
            self.group.retain(|r| !r.dropped.get());
            if self.group.is_empty() {
                eprintln!("Diskless rdb transfer, last replica dropped, killing fork child.");
                return Err(std::io::Error::other("no replica left"));
            }
            if self
                .group
                .iter()
                .all(|r| r.bulk_queued.get() <= BULK_WINDOW)
            {
                return Ok(());
            }
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
    }
}

impl Replica {
    /// Ends the link: its task stops at the next chunk or bulk step, which this sends.
    fn drop_link(&self) {
        self.dropped.set(true);
        self.streaming_rdb.set(false);
        let _ = self.tx.try_send(Rc::from(&[][..]));
        let _ = self.bulk.try_send(Bulk::Abort);
    }

    fn send_bulk(&self, b: Bulk) {
        if self.bulk.try_send(b).is_err() {
            self.dropped.set(true);
        }
    }

    /// Queues stream bytes (counted against its output buffer limit until written).
    fn push(&self, chunk: Rc<[u8]>) {
        if self.dropped.get() || self.rdb_only {
            return;
        }
        self.queued.set(self.queued.get() + chunk.len());
        if self.tx.try_send(chunk).is_err() {
            self.dropped.set(true);
        }
    }

    /// Whether its queued stream is over the hard limit, or has been over the soft limit
    /// for longer than its seconds (Redis's `checkClientOutputBufferLimits`).
    fn over_limit(&self, limit: Limit) -> bool {
        let used = self.queued.get();
        let hard = limit.hard > 0 && used >= limit.hard;
        if limit.soft == 0 || used < limit.soft {
            self.soft_since.set(None);
            return hard;
        }
        match self.soft_since.get() {
            None => {
                self.soft_since.set(Some(Instant::now()));
                hard
            }
            Some(t) => hard || t.elapsed().as_secs() > limit.soft_secs,
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
        .write_flush(format!("${len}\r\n").as_bytes())
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
        if writer.write_flush(&buf[..n]).await.is_err() {
            return false;
        }
        left -= n as u64;
    }
    true
}

/// Reads what a replica sends after its sync: `REPLCONF ACK <offset> [FACK <offset>]`.
/// Anything else a replica sends is ignored (as Redis drops its replies to a replica);
/// protocol garbage drops the link.
async fn read_acks<R: futures_lite::AsyncRead + Unpin>(
    mut reader: R,
    r: Rc<Replica>,
    name: String,
) {
    let mut buf = vec![0u8; 4096];
    let (mut start, mut end) = (0, 0);
    let mut dec = Decoder::new(1 << 20);
    loop {
        if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                eprintln!("Replica {name} sent a request over 4 KB: dropping the link");
                break;
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
                Decoded::Error(e) => {
                    let why = e.text();
                    let why = why.strip_prefix("ERR ").unwrap_or(&why);
                    eprintln!("Replica {name} sent garbage ({why}): dropping the link");
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
                            r.acked.set(true);
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
/// `changeReplicationId` and `clearReplicationId2`): replicas must resync fully. On a
/// replica it is the node's own id that changes (INFO's `master_replid`, the id its
/// sub-replicas and its RDB see), not the one it knows its master by: a broken link still
/// resumes partially, but after a restart from that RDB the master sees a stranger's id
/// and syncs fully, as Redis (`server.replid` against `cached_master->replid`).
pub async fn change_replid(shard: &Rc<Shard>) {
    shard
        .call_async(shard.nshards, |_| async {
            if let Some(m) = Master::current() {
                *m.replid.borrow_mut() = random_replid();
                *m.replid2.borrow_mut() = (super::NO_REPLID.to_string(), -1);
            }
            super::change_own_replid();
            eprintln!("Changing replication IDs after receiving DEBUG change-repl-id");
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

/// Whether the merged stream is wanted for replication (a master's backlog exists; a
/// replica relays its master's stream instead).
pub fn wants_stream() -> bool {
    Master::current().is_some_and(|m| m.backlog.borrow().is_some() && !m.relaying.get())
}

/// Feeds merged entries (from `persist::aof`'s drain) to the backlog and the replicas.
pub fn feed(batch: &[Entry], watermark: u64) {
    if let Some(m) = Master::current() {
        m.feed(batch, watermark);
    }
}
