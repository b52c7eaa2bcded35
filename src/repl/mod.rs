//! Replication, on the control executor. The master side (`master`: the backlog fed from
//! the merged journal stream, serving SYNC/PSYNC replicas) over its `backlog`; the replica
//! side: the role (master, or replica of `master`), the replica's ids, offsets and link
//! state and their renderings for INFO replication and ROLE (here), the link itself
//! (`replica`).
//!
//! Shards learn what they need of it through their gate (`DiskGate::read_only_replica`,
//! `master_down`, `loading`) and their expiry rule (`db::expiry`): a replica hides expired
//! keys without deleting them and runs no active expiry.

pub mod backlog;
pub mod failover;
pub mod master;
pub mod replica;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::persist::load::{ReplAux, Replay, Replayer};
use crate::shard::{DiskGate, Shard};
use crate::util::time::now_ms;

/// The id Redis shows when there is none (`master_replid2` of a fresh node).
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

/// Where a replica's link to its master stands (Redis's `repl_state`, named as ROLE does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not a replica.
    None,
    /// Must connect (after a failure: at the next retry).
    Connect,
    Connecting,
    /// Connected, running PING/AUTH/REPLCONF/PSYNC.
    Handshake,
    /// Receiving the master's RDB (and loading it).
    Transfer,
    Connected,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::None => "none",
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// The master a replica follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterAddr {
    pub host: String,
    pub port: u16,
}

/// The replica's side of a master link (Redis's `server.master`, or `cached_master` once
/// the link is gone): where in the master's history the applied data is.
#[derive(Clone, Debug)]
pub struct MasterClient {
    /// The master's replication id.
    pub replid: String,
    /// Offset of the last byte of the last command applied (Redis's `reploff`).
    pub reploff: i64,
    /// Offset of the last byte read from the link (`read_reploff`).
    pub read_reploff: i64,
    /// The database the master's stream is in (its last SELECT).
    pub db: i64,
    /// Last time anything came from the master.
    pub last_io: Instant,
    /// The master did not know PSYNC and was synced with SYNC (Redis's `CLIENT_PRE_PSYNC`):
    /// its offsets mean nothing to it, and it gets no ACKs.
    pub pre_psync: bool,
}

/// A full sync's transfer, for INFO.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// Bytes announced (`$<len>`): -1 before the header, 0 for an `EOF:` transfer.
    pub size: i64,
    pub read: u64,
    pub last_io: Instant,
}

/// The position a data file records (`repl-stream-db`, `repl-id`, `repl-offset`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedPosition {
    pub stream_db: i64,
    pub replid: String,
    pub offset: i64,
}

pub struct State {
    pub replid: String,
    pub replid2: String,
    /// Last offset (+1) up to which `replid2` is valid; -1 without one.
    pub second_replid_offset: i64,
    pub master_repl_offset: i64,
    pub master: Option<MasterAddr>,
    pub link: LinkState,
    /// Bumped whenever the master changes: a link task of an older generation ends.
    pub generation: u64,
    /// The link's socket, shut down to cut the link at once (REPLICAOF).
    pub link_fd: Option<i32>,
    pub master_client: Option<MasterClient>,
    pub cached_master: Option<MasterClient>,
    /// When the link last went down (None: never connected since becoming a replica).
    pub down_since: Option<i64>,
    pub transfer: Option<Transfer>,
    /// A FAILOVER under way (`failover`).
    pub failover: Option<failover::Failover>,
}

/// What the shards were last told (see `Repl::publish_gates`).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Published {
    replica: bool,
    read_only: bool,
    master_down: bool,
}

/// What replication needs from the layers above, given at start-up: loading a data file
/// and the client that applies the master's stream.
#[derive(Clone, Copy)]
pub struct Upcalls {
    pub replay: Replay,
    pub master_client: fn(Rc<Shard>) -> Box<dyn Replayer>,
}

/// The control executor's replication.
pub struct Repl {
    pub shard: Rc<Shard>,
    pub state: RefCell<State>,
    upcalls: Upcalls,
    published: Cell<Option<Published>>,
    /// The applier is running a chunk of the master's stream on the shards.
    applying: Cell<bool>,
    /// Snapshot cuts waiting for the applier to stand still (`Quiet`).
    cutting: Cell<u32>,
    /// A `follow_for_cluster` change is being carried out.
    cluster_wish_pending: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Repl>>> = const { RefCell::new(None) };
}

impl Repl {
    /// Sets up replication on the control executor `shard` (the master side starts with the
    /// same `replid`); with `replicaof` in the
    /// configuration this node starts as a replica (its link starts in `begin`, once the
    /// data file is loaded).
    pub fn start(shard: Rc<Shard>, upcalls: Upcalls, replid: String) -> Rc<Repl> {
        let master = shard
            .shared
            .config()
            .replicaof
            .clone()
            .map(|(host, port)| MasterAddr { host, port });
        let link = if master.is_some() {
            LinkState::Connect
        } else {
            LinkState::None
        };
        crate::db::expiry::set_replica(master.is_some());
        let repl = Rc::new(Repl {
            shard,
            state: RefCell::new(State {
                replid,
                replid2: NO_REPLID.to_string(),
                second_replid_offset: -1,
                master_repl_offset: 0,
                master,
                link,
                generation: 0,
                link_fd: None,
                master_client: None,
                cached_master: None,
                down_since: None,
                transfer: None,
                failover: None,
            }),
            upcalls,
            published: Cell::new(None),
            applying: Cell::new(false),
            cutting: Cell::new(0),
            cluster_wish_pending: Cell::new(false),
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(repl.clone()));
        repl
    }

    /// After start-up loading: a replica takes the position its data file recorded (so it
    /// can resync partially, as Redis's `loadDataFromDisk` does) and starts its link.
    pub async fn begin(self: &Rc<Self>, loaded: ReplAux) {
        {
            let mut st = self.state.borrow_mut();
            if st.master.is_some() {
                if let (Some(id), Some(offset), Some(db)) =
                    (loaded.id, loaded.offset, loaded.stream_db)
                {
                    if offset >= 0 && db >= 0 {
                        st.replid = id.clone();
                        st.master_repl_offset = offset;
                        st.cached_master = Some(MasterClient {
                            replid: id,
                            reploff: offset,
                            read_reploff: offset,
                            db,
                            last_io: Instant::now(),
                            pre_psync: false,
                        });
                    }
                }
            }
        }
        self.publish_gates().await;
        glommio::spawn_local(self.clone().cron()).detach();
        if self.state.borrow().master.is_some() {
            if let Some(m) = master::Master::current() {
                m.start_relaying();
            }
            self.spawn_link();
        }
    }

    fn current() -> Option<Rc<Repl>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Starts the link task for the current master.
    fn spawn_link(self: &Rc<Self>) {
        let generation = self.state.borrow().generation;
        glommio::spawn_local(replica::run(self.clone(), generation)).detach();
    }

    /// Tells every shard what the gate and the expiry rule need, when that changed.
    async fn publish_gates(&self) {
        let now = {
            let st = self.state.borrow();
            let config = self.shard.shared.config();
            let replica = st.master.is_some();
            Published {
                replica,
                read_only: replica && config.get_bool("replica-read-only"),
                master_down: replica
                    && st.link != LinkState::Connected
                    && !config.get_bool("replica-serve-stale-data"),
            }
        };
        if self.published.get() == Some(now) {
            return;
        }
        self.published.set(Some(now));
        crate::db::expiry::set_replica(now.replica);
        self.shard
            .call_all(move |s| {
                let gate = s.disk_gate.get();
                s.disk_gate.set(DiskGate {
                    read_only_replica: now.read_only,
                    master_down: now.master_down,
                    ..gate
                });
                crate::db::expiry::set_replica(now.replica);
            })
            .await;
    }

    /// Once a second: configuration changes reach the shards' gates.
    async fn cron(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            self.publish_gates().await;
        }
    }

    /// Sets the link's state (and the gates that depend on it).
    async fn set_link(&self, link: LinkState) {
        {
            let mut st = self.state.borrow_mut();
            if link == LinkState::Connected {
                st.down_since = None;
            } else if st.link == LinkState::Connected {
                st.down_since = Some(now_ms() / 1000);
            }
            st.link = link;
        }
        self.publish_gates().await;
    }

    /// Cuts the link to the master, if any (its task sees the socket fail).
    fn cut_link(st: &mut State) {
        if let Some(fd) = st.link_fd.take() {
            // SAFETY: shutdown(2) on a descriptor the link task owns and has not closed
            // (it clears `link_fd` before closing).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// Waits until the applier has finished its chunk, and holds the next one back until
    /// the returned guard is dropped.
    async fn quiet_applier(self: &Rc<Self>) {
        self.cutting.set(self.cutting.get() + 1);
        while self.applying.get() {
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// The applier's turn to run a chunk (after any cut waiting for it).
    async fn begin_apply(&self) {
        while self.cutting.get() > 0 {
            glommio::timer::sleep(Duration::from_micros(100)).await;
        }
        self.applying.set(true);
    }

    fn end_apply(&self) {
        self.applying.set(false);
    }
}

/// A snapshot cut in progress (`persist::rdb_file::cut`): a replica's applier stands still
/// meanwhile, so the data is exactly at the offset recorded.
pub struct Quiet {
    repl: Option<Rc<Repl>>,
}

impl Quiet {
    pub async fn begin(_shard: &Rc<Shard>) -> Quiet {
        let repl = Repl::current();
        if let Some(r) = &repl {
            r.quiet_applier().await;
        }
        Quiet { repl }
    }

    /// The position to record in the file: a replica's (Redis's `rdbPopulateSaveInfo` with
    /// a master or a cached master); None otherwise.
    pub fn position(&self) -> Option<SavedPosition> {
        let repl = self.repl.as_ref()?;
        let st = repl.state.borrow();
        st.master.as_ref()?;
        let client = st.master_client.as_ref().or(st.cached_master.as_ref())?;
        Some(SavedPosition {
            stream_db: client.db,
            replid: st.replid.clone(),
            offset: st.master_repl_offset,
        })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        if let Some(r) = &self.repl {
            r.cutting.set(r.cutting.get().saturating_sub(1));
        }
    }
}

/// Whether this node is a replica (on the control executor, where the state lives).
pub fn is_replica() -> bool {
    Repl::current().is_some_and(|r| r.state.borrow().master.is_some())
}

/// `is_replica`, from any executor.
pub async fn is_replica_now(shard: &Rc<Shard>) -> bool {
    on_control(shard, |r| async move { r.state.borrow().master.is_some() }).await
}

/// On a replica, whether its link to its master is up; None on a master (on the control
/// executor).
fn replica_link_up() -> Option<bool> {
    let r = Repl::current()?;
    let st = r.state.borrow();
    st.master.as_ref()?;
    Some(st.link == LinkState::Connected)
}

/// CONFIG SET changed `min-replicas-to-write` or `-max-lag`: the shards' gate follows at
/// once, as Redis applies them (`updateGoodSlaves`), not at the next cron tick.
pub async fn refresh_write_gate(shard: &Rc<Shard>) {
    shard
        .call_async(shard.nshards, |_| async {
            if let Some(m) = master::Master::current() {
                m.update_write_gate(true).await;
            }
        })
        .await;
}

/// CONFIG SET of `replica-read-only` or `replica-serve-stale-data`: the shards' gates follow
/// at once, as in Redis (the cron would take up to a second).
pub async fn refresh_replica_gates(shard: &Rc<Shard>) {
    shard
        .call_async(shard.nshards, |_| async {
            if let Some(r) = Repl::current() {
                r.publish_gates().await;
            }
        })
        .await;
}

/// CLIENT KILL TYPE master: cuts an established link to the master, which is then cached
/// and reconnects a second later asking to continue (Redis frees the master client, and
/// `replicationCacheMaster` keeps its position). Returns how many links were cut (0 or 1).
pub async fn kill_master_link(shard: &Rc<Shard>) -> usize {
    shard
        .call_async(shard.nshards, |_| async {
            let Some(r) = Repl::current() else { return 0 };
            let mut st = r.state.borrow_mut();
            if st.link != LinkState::Connected || st.link_fd.is_none() {
                return 0;
            }
            Repl::cut_link(&mut st);
            1
        })
        .await
}

/// On a replica, a new id of its own and no secondary one (DEBUG CHANGE-REPL-ID; see
/// `master::change_replid`). The cached master keeps its id.
fn change_own_replid() {
    let Some(r) = Repl::current() else { return };
    let mut st = r.state.borrow_mut();
    if st.master.is_some() {
        st.replid = master::random_replid();
        st.replid2 = NO_REPLID.to_string();
        st.second_replid_offset = -1;
    }
}

/// On a replica, its ids as the master side answers PSYNC with them: `(replid, replid2,
/// second_replid_offset)` (on the control executor).
fn replica_ids() -> Option<(String, String, i64)> {
    let r = Repl::current()?;
    let st = r.state.borrow();
    st.master.as_ref()?;
    Some((
        st.replid.clone(),
        st.replid2.clone(),
        st.second_replid_offset,
    ))
}

/// On a replica, the offset its data is at (`master_repl_offset`).
fn replica_ids_offset() -> Option<i64> {
    let r = Repl::current()?;
    let st = r.state.borrow();
    st.master.as_ref()?;
    Some(st.master_repl_offset)
}

/// On a replica, the database its master's stream is in (a snapshot's `repl-stream-db`).
fn replica_stream_db() -> i64 {
    Repl::current().map_or(0, |r| {
        let st = r.state.borrow();
        let client = st.master_client.as_ref().or(st.cached_master.as_ref());
        client.map_or(0, |c| c.db)
    })
}

/// Runs `f` with the control executor's replication, from any executor.
async fn on_control<R, F, Fut>(shard: &Rc<Shard>, f: F) -> R
where
    R: Send + 'static,
    F: FnOnce(Rc<Repl>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    shard
        .call_async(shard.nshards, move |_| async move {
            let r = Repl::current().expect("replication runs on the control executor");
            f(r).await
        })
        .await
}

/// What REPLICAOF did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaOf {
    Done,
    /// `+OK Already connected to specified master`.
    AlreadyConnected,
}

/// REPLICAOF host port / NO ONE (`None`), as Redis 7.0's `replicaofCommand`; `client` is
/// the CLIENT LIST line of the caller, for the log.
pub async fn replicaof(
    shard: &Rc<Shard>,
    to: Option<MasterAddr>,
    client: String,
) -> Result<ReplicaOf, Error> {
    on_control(shard, move |r| async move {
        if r.state.borrow().failover.is_some() {
            return Err(Error::msg("REPLICAOF not allowed while failing over."));
        }
        // A chunk of the old master's stream being applied finishes first, counted.
        let _quiet = Quiet::begin(&r.shard).await;
        match to {
            None => {
                if r.state.borrow().master.is_some() {
                    unset_master(&r).await;
                    eprintln!("MASTER MODE enabled (user request from '{client}')");
                }
                Ok(ReplicaOf::Done)
            }
            Some(addr) => {
                let same = r.state.borrow().master.as_ref().is_some_and(|m| {
                    m.host.eq_ignore_ascii_case(&addr.host) && m.port == addr.port
                });
                if same {
                    eprintln!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
                    return Ok(ReplicaOf::AlreadyConnected);
                }
                let (host, port) = (addr.host.clone(), addr.port);
                set_master(&r, addr).await;
                eprintln!("REPLICAOF {host}:{port} enabled (user request from '{client}')");
                Ok(ReplicaOf::Done)
            }
        }
    })
    .await
}

/// The replication offset a cluster node's bus header carries (Redis's
/// `clusterBuildMessageHdr`): a replica's applied offset (its cached master's while the link
/// is down), a master's stream offset. On the control executor.
pub fn bus_offset() -> i64 {
    let Some(r) = Repl::current() else { return 0 };
    let st = r.state.borrow();
    if st.master.is_some() {
        let client = st.master_client.as_ref().or(st.cached_master.as_ref());
        return client.map_or(0, |c| c.reploff);
    }
    drop(st);
    master::Master::current().map_or(0, |m| m.offset())
}

/// How old a replica's data is, in ms, as Redis's failover judges it: since the master last
/// spoke while the link is up, else since the link went down (very old when it never came
/// up). On the control executor.
pub fn master_data_age_ms() -> i64 {
    const NEVER: i64 = i64::MAX / 4;
    let Some(r) = Repl::current() else {
        return NEVER;
    };
    let st = r.state.borrow();
    match (&st.master_client, st.link, st.down_since) {
        (Some(c), LinkState::Connected, _) => c.last_io.elapsed().as_secs() as i64 * 1000,
        (_, _, Some(t)) => (now_ms() / 1000 - t) * 1000,
        _ => NEVER,
    }
}

/// A master's stream offset once every write stamped until now is in it (WAIT's target), for
/// a manual failover's paused offset. On the control executor.
pub fn settled_offset() -> std::pin::Pin<Box<dyn std::future::Future<Output = i64>>> {
    Box::pin(async {
        match master::Master::current() {
            Some(m) => m.offset_after_now().await,
            None => 0,
        }
    })
}

/// The cluster's wish for this node (Redis's `clusterSetMaster` and the cron rule that
/// follows a master once its address is known): follow `to`, or be a master (None). Does
/// nothing while the data file loads or when it is already so; on the control executor.
pub fn follow_for_cluster(to: Option<(String, u16)>) {
    let Some(r) = Repl::current() else { return };
    if r.shard
        .shared
        .load_progress
        .loading
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let current = r.state.borrow().master.clone();
    let wanted = to.map(|(host, port)| MasterAddr { host, port });
    if current == wanted || r.cluster_wish_pending.replace(true) {
        return;
    }
    glommio::spawn_local(async move {
        let _quiet = Quiet::begin(&r.shard).await;
        // Checked again: another wish may have been carried out meanwhile.
        if r.state.borrow().master == wanted {
            r.cluster_wish_pending.set(false);
            return;
        }
        match wanted {
            Some(addr) => set_master(&r, addr).await,
            None => unset_master(&r).await,
        }
        r.cluster_wish_pending.set(false);
    })
    .detach();
}

/// Whether replication is a master's in full: no cluster role switch under way, the write
/// gates open. A promoted replica routes writes to itself only then (its slot map waits), so
/// that a client following MOVED to it is never told it is a read-only replica.
pub fn master_role_settled() -> bool {
    Repl::current()
        .is_none_or(|r| !r.cluster_wish_pending.get() && r.state.borrow().master.is_none())
}

/// Follows `addr` from now on (Redis's `replicationSetMaster`): the old link is cut; a node
/// that was a master keeps its own id and offset as the cached master, so it can resync
/// partially with a master that continues its history.
async fn set_master(r: &Rc<Repl>, addr: MasterAddr) {
    if r.state.borrow().master.is_none() && master::wants_stream() {
        // The writes already answered are in the stream the cached master continues.
        if let Some(m) = master::Master::current() {
            m.offset_after_now().await;
        }
    }
    {
        let mut st = r.state.borrow_mut();
        let was_master = st.master.is_none();
        Repl::cut_link(&mut st);
        st.generation += 1;
        if let Some(client) = st.master_client.take() {
            st.cached_master = Some(client);
        }
        if was_master {
            eprintln!("Before turning into a replica, using my own master parameters to synthesize a cached master: I may be able to synchronize with the new master with just a partial transfer.");
            // The history is the master side's (its stream and id), which stops here.
            if let Some(m) = master::Master::current() {
                (st.replid, st.master_repl_offset) = m.demote();
            }
            st.cached_master = Some(MasterClient {
                replid: st.replid.clone(),
                reploff: st.master_repl_offset,
                read_reploff: st.master_repl_offset,
                db: 0,
                last_io: Instant::now(),
                pre_psync: false,
            });
        }
        st.master = Some(addr);
        st.link = LinkState::Connect;
        st.transfer = None;
    }
    // Clients blocked on the master's data are not served by a replica's: Redis's
    // `disconnectAllBlockedClients`.
    r.shard.call_all(|s| s.force_unblock_clients()).await;
    r.publish_gates().await;
    r.shard.shared.config().apply_oom_score_adj(true);
    r.spawn_link();
}

/// Becomes a master (Redis's `replicationUnsetMaster`): the link is cut, the cached master
/// dropped, and the history continues under a new id, the old one kept as `replid2` up to
/// this offset so that the former siblings can resync partially.
async fn unset_master(r: &Rc<Repl>) {
    {
        let mut st = r.state.borrow_mut();
        eprintln!("Connection with master lost.");
        Repl::cut_link(&mut st);
        st.generation += 1;
        st.master = None;
        st.master_client = None;
        st.cached_master = None;
        st.transfer = None;
        st.link = LinkState::None;
        st.down_since = None;
        // shiftReplicationId
        st.replid2 = std::mem::replace(&mut st.replid, master::random_replid());
        st.second_replid_offset = st.master_repl_offset + 1;
        eprintln!(
            "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
            st.replid2, st.second_replid_offset, st.replid
        );
        if let Some(m) = master::Master::current() {
            m.promote(st.replid.clone(), st.replid2.clone(), st.master_repl_offset);
        }
    }
    r.shard.shared.config().apply_oom_score_adj(false);
    // The first write the open gate lets in is already part of the new history's stream.
    crate::persist::start_recording(&r.shard).await;
    r.publish_gates().await;
}

/// Everything INFO replication and ROLE show, gathered on the control executor.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub master: Option<(String, u16)>,
    pub link: Option<&'static str>,
    pub link_up: bool,
    /// Seconds since the master last sent something; -1 without a link.
    pub last_io_ago: i64,
    pub sync_in_progress: bool,
    pub read_reploff: i64,
    pub reploff: i64,
    /// ROLE's offset: the live link's, -1 without one.
    pub role_offset: i64,
    pub transfer: Option<(i64, u64, i64)>,
    pub down_since_ago: i64,
    pub priority: i64,
    pub read_only: bool,
    pub announced: bool,
    pub replid: String,
    pub replid2: String,
    pub master_repl_offset: i64,
    pub second_replid_offset: i64,
    pub backlog_size: i64,
    /// INFO's `master_failover_state`.
    pub failover_state: &'static str,
}

/// INFO replication's and ROLE's facts as of now.
pub async fn info(shard: &Rc<Shard>) -> Info {
    on_control(shard, |r| async move {
        let st = r.state.borrow();
        let config = r.shard.shared.config();
        let now_s = now_ms() / 1000;
        let secs = |t: Instant| t.elapsed().as_secs() as i64;
        let live = st.master_client.as_ref();
        let any = live.or(st.cached_master.as_ref());
        // Redis shows the configured size.
        let backlog_size = match config.get_i64("repl-backlog-size") {
            0 => 1 << 20,
            n => n,
        };
        Info {
            master: st.master.as_ref().map(|m| (m.host.clone(), m.port)),
            link: st.master.as_ref().map(|_| st.link.name()),
            link_up: st.link == LinkState::Connected,
            last_io_ago: live.map_or(-1, |c| secs(c.last_io)),
            sync_in_progress: st.link == LinkState::Transfer,
            read_reploff: any.map_or(1, |c| c.read_reploff),
            reploff: any.map_or(1, |c| c.reploff),
            role_offset: live.map_or(-1, |c| c.reploff),
            transfer: st
                .transfer
                .filter(|_| st.link == LinkState::Transfer)
                .map(|t| (t.size, t.read, secs(t.last_io))),
            down_since_ago: st.down_since.map_or(-1, |t| now_s - t),
            priority: config.get_i64("replica-priority"),
            read_only: config.get_bool("replica-read-only"),
            announced: config.get_bool("replica-announced"),
            replid: st.replid.clone(),
            replid2: st.replid2.clone(),
            master_repl_offset: st.master_repl_offset,
            second_replid_offset: st.second_replid_offset,
            backlog_size,
            failover_state: failover::state_name(st.failover.as_ref()),
        }
    })
    .await
}

/// The `# Replication` section of INFO of a replica, as Redis 7.0 writes it: the link's
/// fields, then its own replicas and backlog (`m`, the master side relaying its stream).
pub fn render_info(i: &Info, m: &master::Summary, out: &mut String) {
    use std::fmt::Write;
    let role = if i.master.is_some() {
        "slave"
    } else {
        "master"
    };
    let _ = write!(out, "# Replication\r\nrole:{role}\r\n");
    if let Some((host, port)) = &i.master {
        let _ = write!(
            out,
            "master_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\n\
             master_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\n\
             slave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
            if i.link_up { "up" } else { "down" },
            i.last_io_ago,
            i.sync_in_progress as u8,
            i.read_reploff,
            i.reploff,
        );
        if let Some((size, read, last_io)) = i.transfer {
            let perc = if size > 0 {
                read as f64 / size as f64 * 100.0
            } else {
                0.0
            };
            let _ = write!(
                out,
                "master_sync_total_bytes:{size}\r\nmaster_sync_read_bytes:{read}\r\n\
                 master_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\n\
                 master_sync_last_io_seconds_ago:{last_io}\r\n",
                size - read as i64,
            );
        }
        if !i.link_up {
            let _ = write!(
                out,
                "master_link_down_since_seconds:{}\r\n",
                i.down_since_ago
            );
        }
        let _ = write!(
            out,
            "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
            i.priority, i.read_only as u8, i.announced as u8
        );
    }
    let _ = write!(out, "connected_slaves:{}\r\n", m.replicas.len());
    for (n, (ip, port, state, offset, lag)) in m.replicas.iter().enumerate() {
        let _ = write!(
            out,
            "slave{n}:ip={ip},port={port},state={state},offset={offset},lag={lag}\r\n"
        );
    }
    let _ = write!(
        out,
        "master_failover_state:{}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\n\
         master_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\n\
         repl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        i.failover_state,
        i.replid,
        i.replid2,
        i.master_repl_offset,
        i.second_replid_offset,
        u8::from(m.backlog_active),
        i.backlog_size,
        m.first_byte_offset,
        m.histlen,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_info_has_redis_fields_in_order() {
        let info = Info {
            master: Some(("127.0.0.1".into(), 6379)),
            link: Some("connected"),
            link_up: true,
            last_io_ago: 0,
            read_reploff: 120,
            reploff: 100,
            priority: 100,
            read_only: true,
            announced: true,
            replid: "a".repeat(40),
            replid2: NO_REPLID.into(),
            master_repl_offset: 100,
            second_replid_offset: -1,
            backlog_size: 1048576,
            ..Default::default()
        };
        let mut out = String::new();
        render_info(&info, &master::Summary::default(), &mut out);
        let keys: Vec<&str> = out
            .split("\r\n")
            .filter_map(|l| l.split(':').next())
            .filter(|k| !k.is_empty())
            .collect();
        assert_eq!(
            keys,
            [
                "# Replication",
                "role",
                "master_host",
                "master_port",
                "master_link_status",
                "master_last_io_seconds_ago",
                "master_sync_in_progress",
                "slave_read_repl_offset",
                "slave_repl_offset",
                "slave_priority",
                "slave_read_only",
                "replica_announced",
                "connected_slaves",
                "master_failover_state",
                "master_replid",
                "master_replid2",
                "master_repl_offset",
                "second_repl_offset",
                "repl_backlog_active",
                "repl_backlog_size",
                "repl_backlog_first_byte_offset",
                "repl_backlog_histlen",
            ]
        );
        assert!(out.contains("master_link_status:up\r\n"));
        assert!(out.contains("slave_repl_offset:100\r\n"));
    }

    #[test]
    fn link_down_shows_since_when() {
        let info = Info {
            master: Some(("h".into(), 1)),
            down_since_ago: -1,
            last_io_ago: -1,
            ..Default::default()
        };
        let mut out = String::new();
        render_info(&info, &master::Summary::default(), &mut out);
        assert!(out.contains("master_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\n"));
        assert!(out.contains("master_link_down_since_seconds:-1\r\n"));
    }
}
