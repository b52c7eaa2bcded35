//! Per-core state: the shard's keyspace and counters, its side of the call mesh, and holds.
//!
//! A *hold* makes a multi-shard write atomic (MSET, MSETNX): the coordinator holds every
//! shard involved, in ascending shard order so two coordinators can never deadlock, then
//! writes and releases. While a shard is held, commands of other clients on it wait: local
//! ones before executing, remote jobs in the `deferred` queue. Single-shard commands pay one
//! `Cell` read for this.

pub mod blocking;
pub mod mesh;
pub mod multi;
pub mod pause;
pub mod pubsub;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use glommio::channels::shared_channel::ConnectedReceiver;

use crate::cmd::CommandStats;
use crate::config::Config;
use crate::db::Keyspace;
use mesh::{Job, Mesh, Request, Response};

/// Server-wide state shared by all executors. Nothing here is touched per command.
pub struct Shared {
    pub nshards: usize,
    pub config: Mutex<Config>,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    pub started_unix: i64,
    pub run_id: String,
    pub tcp_port: u16,
    pub executable: String,
    pub config_file: String,
    /// Set once the control executor is up (in cluster mode: the member has loaded its
    /// state); shards accept clients only then.
    pub control_ready: std::sync::atomic::AtomicBool,
    /// Cluster mode: the newest slot map the control core built, and its version. The control
    /// core stores the map, then the version; a shard compares versions (one atomic load per
    /// keyed command, of a line written only on cluster changes) and copies the map only when
    /// it changed. So a change is visible to every shard as soon as it is published, without
    /// a message to each.
    pub slot_map: Mutex<Option<Arc<crate::cluster::slotmap::SlotMap>>>,
    pub slot_map_version: AtomicU64,
    /// Each core's Pub/Sub subscription counts, so PUBLISH skips cores nobody listens on.
    pub pubsub_counts: pubsub::Counts,
    /// Per shard: how many keys MIGRATE has in flight there (see `multi::Holds::acquire`).
    pub in_flight_counts: Vec<AtomicU64>,
    /// Clients paused on every shard (manual failover): see `pause`.
    pub pause: pause::Pause,
}

impl Shared {
    /// Shared state for `nshards` data shards, started now; the identity fields (run id, port,
    /// paths) get neutral values for the caller to override (`Shared { run_id, ..Shared::new(..) }`).
    pub fn new(nshards: usize, config: Config) -> Shared {
        Shared {
            nshards,
            config: Mutex::new(config),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_unix: crate::util::time::now_ms() / 1000,
            run_id: "0".repeat(40),
            tcp_port: 0,
            executable: String::new(),
            config_file: String::new(),
            control_ready: std::sync::atomic::AtomicBool::new(false),
            slot_map: Mutex::new(None),
            slot_map_version: AtomicU64::new(0),
            pubsub_counts: pubsub::Counts::new(nshards + 1),
            in_flight_counts: (0..=nshards).map(|_| AtomicU64::new(0)).collect(),
            pause: Default::default(),
        }
    }

    /// Whether a MIGRATE has keys in flight on shard `id`.
    pub fn migrating_on(&self, id: usize) -> bool {
        self.in_flight_counts
            .get(id)
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Acquire) > 0)
    }

    /// Publishes a newer slot map to every shard (see `Shard::refresh_slot_map`).
    pub fn publish_slot_map(&self, map: Arc<crate::cluster::slotmap::SlotMap>) {
        let version = map.version;
        *self.slot_map.lock().unwrap_or_else(|e| e.into_inner()) = Some(map);
        self.slot_map_version
            .store(version, std::sync::atomic::Ordering::Release);
    }

    /// Locks the shared configuration. A poisoned lock (a panic elsewhere while it was held)
    /// is used as is: the server keeps serving rather than failing every later command.
    pub fn config(&self) -> MutexGuard<'_, Config> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-executor copies of the configuration values the command path reads.
#[derive(Clone, Debug)]
pub struct Settings {
    pub requirepass: Option<Vec<u8>>,
    pub proto_max_bulk_len: i64,
    pub query_buffer_limit: usize,
    pub maxclients: usize,
    pub hz: u64,
    pub protected_mode: bool,
    /// Hash and set encoding thresholds (types::hash / types::set).
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub set_max_listpack_entries: usize,
    /// List node bound (`list-max-listpack-size`; `list-compress-depth` is accepted and ignored).
    pub list_fill: crate::types::list::Fill,
    /// Largest sparse HyperLogLog before it turns dense (types::hll).
    pub hll_sparse_max_bytes: usize,
    /// Stream node limits (types::stream).
    pub stream_node_max_bytes: usize,
    pub stream_node_max_entries: usize,
    /// Sorted set encoding thresholds (types::zset).
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// Whether `maxmemory-policy` is an LFU one (OBJECT FREQ works, OBJECT IDLETIME does not).
    pub lfu_policy: bool,
    /// `client-output-buffer-limit pubsub`.
    pub pubsub_limit: pubsub::Limit,
    /// `cluster-allow-pubsubshard-when-down`: shard channels keep working while the cluster is down.
    pub pubsubshard_when_down: bool,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        let pass = c.get("requirepass");
        Settings {
            requirepass: (!pass.is_empty()).then(|| pass.as_bytes().to_vec()),
            proto_max_bulk_len: c.get_i64("proto-max-bulk-len"),
            query_buffer_limit: c.get_i64("client-query-buffer-limit") as usize,
            maxclients: c.get_i64("maxclients") as usize,
            hz: c.get_i64("hz") as u64,
            protected_mode: c.get_bool("protected-mode"),
            hash_max_listpack_entries: c.get_i64("hash-max-listpack-entries") as usize,
            hash_max_listpack_value: c.get_i64("hash-max-listpack-value") as usize,
            set_max_intset_entries: c.get_i64("set-max-intset-entries") as usize,
            set_max_listpack_entries: c.get_i64("set-max-listpack-entries") as usize,
            list_fill: crate::types::list::Fill::new(c.get_i64("list-max-listpack-size")),
            hll_sparse_max_bytes: c.get_i64("hll-sparse-max-bytes") as usize,
            stream_node_max_bytes: c.get_i64("stream-node-max-bytes") as usize,
            stream_node_max_entries: c.get_i64("stream-node-max-entries") as usize,
            zset_max_listpack_entries: c.get_i64("zset-max-listpack-entries") as usize,
            zset_max_listpack_value: c.get_i64("zset-max-listpack-value") as usize,
            lfu_policy: c.get("maxmemory-policy").ends_with("-lfu"),
            pubsubshard_when_down: c.get_bool("cluster-allow-pubsubshard-when-down"),
            pubsub_limit: {
                let [hard, soft, secs] =
                    crate::config::output_limits(c.get("client-output-buffer-limit"))[2];
                pubsub::Limit {
                    hard: hard as usize,
                    soft: soft as usize,
                    soft_secs: secs,
                }
            },
        }
    }
}

/// What CLIENT LIST / CLIENT KILL need to know of a connection; the connection task updates it.
pub struct ClientMeta {
    pub id: u64,
    pub fd: i32,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    pub name: RefCell<Vec<u8>>,
    pub lib_name: RefCell<Vec<u8>>,
    pub lib_ver: RefCell<Vec<u8>>,
    pub last_cmd: Cell<&'static str>,
    pub last_interaction_ms: Cell<i64>,
    pub resp: Cell<u8>,
    pub qbuf: Cell<usize>,
    pub killed: Cell<bool>,
    /// CLIENT NO-EVICT (shown as flag `e`; there is no client eviction yet).
    pub no_evict: Cell<bool>,
    /// Pub/Sub subscriptions: channels, patterns, shard channels (CLIENT LIST `sub=` ...).
    pub sub: Cell<usize>,
    pub psub: Cell<usize>,
    pub ssub: Cell<usize>,
}

impl ClientMeta {
    /// Redis's CLIENT_PUBSUB: subscribed to anything (flag `P`; RESP2 subscribed context).
    #[inline]
    pub fn in_pubsub(&self) -> bool {
        self.sub.get() + self.psub.get() + self.ssub.get() > 0
    }
}

/// Per-shard counters for INFO stats.
#[derive(Default, Clone, Debug)]
pub struct ShardStats {
    pub commands: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub cmd: Vec<CommandStats>,
}

impl ShardStats {
    /// CONFIG RESETSTAT: zeroes every counter, keeping the per-command table's size.
    pub fn reset(&mut self) {
        let cmd = std::mem::take(&mut self.cmd);
        *self = ShardStats {
            cmd,
            ..Default::default()
        };
        self.cmd.fill(CommandStats::default());
    }
}

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    /// The control executor: no keyspace, owns server-wide duties.
    pub is_control: bool,
    pub db: RefCell<Keyspace>,
    pub stats: RefCell<ShardStats>,
    pub clients: RefCell<hashbrown::HashMap<u64, Rc<ClientMeta>>>,
    pub settings: RefCell<Settings>,
    pub shared: Arc<Shared>,
    pub mesh: Mesh,
    pub blocking: blocking::Blocking,
    pub pubsub: pubsub::PubSub,
    /// This shard's routing view of the cluster (a disabled map outside cluster mode).
    pub slot_map: RefCell<Arc<crate::cluster::slotmap::SlotMap>>,
    /// On the control executor in cluster mode: the cluster member.
    pub cluster: RefCell<Option<Rc<crate::cluster::member::Member>>>,
    /// Keys a MIGRATE has serialized and not yet deleted: commands touching them get
    /// TRYAGAIN until the target has answered (see `cmd::migrate`).
    pub in_flight: RefCell<hashbrown::HashSet<Box<[u8]>>>,
    held_by: Cell<u64>,
    /// Source of hold tokens unique to this executor (see `new_hold_token`).
    hold_tokens: Cell<u64>,
    deferred: RefCell<VecDeque<(usize, Request)>>,
    unhold_waiters: RefCell<Vec<Waker>>,
}

impl Shard {
    pub fn new(
        id: usize,
        nshards: usize,
        is_control: bool,
        shared: Arc<Shared>,
        mesh: Mesh,
    ) -> Shard {
        let settings = Settings::from_config(&shared.config());
        let slot_map = if shared.config().get_bool("cluster-enabled") {
            crate::cluster::slotmap::SlotMap::pending()
        } else {
            crate::cluster::slotmap::SlotMap::disabled()
        };
        let db = if is_control {
            Keyspace::new(0, 0)
        } else {
            Keyspace::new(id, nshards)
        };
        Shard {
            id,
            nshards,
            is_control,
            db: RefCell::new(db),
            stats: RefCell::new(ShardStats {
                cmd: vec![CommandStats::default(); crate::cmd::table().len()],
                ..Default::default()
            }),
            clients: RefCell::new(Default::default()),
            settings: RefCell::new(settings),
            shared,
            mesh,
            blocking: Default::default(),
            pubsub: Default::default(),
            slot_map: RefCell::new(Arc::new(slot_map)),
            cluster: RefCell::new(None),
            in_flight: RefCell::new(Default::default()),
            held_by: Cell::new(0),
            hold_tokens: Cell::new(0),
            deferred: RefCell::new(VecDeque::new()),
            unhold_waiters: RefCell::new(Vec::new()),
        }
    }

    /// Takes the newest slot map the control core published, if ours is older.
    #[inline]
    pub fn refresh_slot_map(&self) {
        let published = self
            .shared
            .slot_map_version
            .load(std::sync::atomic::Ordering::Acquire);
        if published != self.slot_map.borrow().version {
            self.take_published_map();
        }
    }

    #[cold]
    fn take_published_map(&self) {
        let map = self
            .shared
            .slot_map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(map) = map else { return };
        let mut current = self.slot_map.borrow_mut();
        if map.version > current.version {
            let old = std::mem::replace(&mut *current, map);
            drop(current);
            // Shard channels of slots we no longer serve are unsubscribed, as Redis does.
            if self.shared.pubsub_counts.has(self.id, true) {
                let new = self.slot_map.borrow().clone();
                pubsub::drop_slots(self, |s| old.serves(s) && !new.serves(s));
            }
        }
    }

    /// The shard owning `slot`.
    #[inline]
    pub fn owner_of(&self, slot: u16) -> usize {
        slot as usize % self.nshards
    }

    /// Runs `f` on executor `to` (this one included) and returns its result. `hold` is the
    /// hold the call belongs to (0 for none): a held shard runs only its holder's calls.
    pub async fn call<R, F>(self: &Rc<Self>, to: usize, hold: u64, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
    {
        if to == self.id {
            self.wait_unheld(hold).await;
            let r = f(self);
            blocking::serve_ready(self);
            return r;
        }
        let job: Job = Box::new(move |s| Box::new(f(s)) as Box<dyn Any + Send>);
        let ticket = self.mesh.send(to, hold, job).await;
        let result = ticket.await;
        match result.downcast::<R>() {
            Ok(r) => *r,
            // The job panicked on its shard (see `run_job`): fail this command the same way.
            Err(_) => panic!("a cross-shard job panicked on shard {to}"),
        }
    }

    /// Runs `f` on every data shard (not the control core) and collects the results in shard order.
    pub async fn call_all<R, F>(self: &Rc<Self>, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&Rc<Shard>) -> R + Send + Sync + Clone + 'static,
    {
        let mut tickets = Vec::with_capacity(self.nshards);
        let mut local = None;
        for to in 0..self.nshards {
            if to == self.id {
                continue;
            }
            let f = f.clone();
            let job: Job = Box::new(move |s| Box::new(f(s)) as Box<dyn Any + Send>);
            tickets.push((to, self.mesh.send(to, 0, job).await));
        }
        if self.id < self.nshards {
            self.wait_unheld(0).await;
            local = Some(f(self));
        }
        let mut out: Vec<Option<R>> = (0..self.nshards).map(|_| None).collect();
        if let Some(r) = local {
            out[self.id] = Some(r);
        }
        for (to, t) in tickets {
            match t.await.downcast::<R>() {
                Ok(r) => out[to] = Some(*r),
                Err(_) => panic!("a cross-shard job panicked on shard {to}"),
            }
        }
        out.into_iter().flatten().collect()
    }

    /// Whether a command not belonging to hold `hold` must wait.
    #[inline]
    pub fn blocked_for(&self, hold: u64) -> bool {
        let h = self.held_by.get();
        h != 0 && h != hold
    }

    /// Waits until this shard is free for hold `hold` (0: any client).
    pub async fn wait_unheld(&self, hold: u64) {
        while self.blocked_for(hold) {
            UnholdWait {
                shard: self,
                registered: false,
            }
            .await;
        }
    }

    /// Takes this shard for `token`. Must be called only when not blocked for it.
    pub fn hold(&self, token: u64) {
        debug_assert!(!self.blocked_for(token));
        self.held_by.set(token);
    }

    /// Releases the hold and runs what waited for it.
    /// A token for one hold: never 0, never reused, unique across executors (the executor id
    /// is in the top bits), so a late release of an old hold cannot free a newer one.
    pub fn new_hold_token(&self) -> u64 {
        let n = self.hold_tokens.get() + 1;
        self.hold_tokens.set(n);
        ((self.id as u64 + 1) << 48) | (n & ((1 << 48) - 1))
    }

    /// Releases hold `token` and runs what waited for it; a stale token is ignored.
    pub fn release(self: &Rc<Self>, token: u64) {
        if self.held_by.get() != token {
            return;
        }
        self.held_by.set(0);
        for w in self.unhold_waiters.borrow_mut().drain(..) {
            w.wake();
        }
        loop {
            let next = {
                let mut q = self.deferred.borrow_mut();
                match q.front() {
                    Some((_, req)) if self.blocked_for(req.hold) => None,
                    Some(_) => q.pop_front(),
                    None => None,
                }
            };
            let Some((from, req)) = next else { break };
            let resp = Response {
                token: req.token,
                result: run_job(req.job, self),
            };
            let me = self.clone();
            glommio::spawn_local(async move { me.mesh.respond(from, resp).await }).detach();
        }
    }

    /// Serves the jobs executor `from` sends us, in order.
    pub async fn serve_requests(self: Rc<Self>, from: usize, rx: ConnectedReceiver<Request>) {
        while let Some(req) = rx.recv().await {
            if self.blocked_for(req.hold)
                || (!self.deferred.borrow().is_empty() && self.held_by.get() != req.hold)
            {
                self.deferred.borrow_mut().push_back((from, req));
                continue;
            }
            let resp = Response {
                token: req.token,
                result: run_job(req.job, &self),
            };
            self.mesh.respond(from, resp).await;
        }
    }

    /// Hands executor `from`'s responses to the calls waiting for them.
    pub async fn serve_responses(self: Rc<Self>, rx: ConnectedReceiver<Response>) {
        while let Some(resp) = rx.recv().await {
            self.mesh.complete(resp);
        }
    }
}

/// A job's result when the job panicked; the caller's downcast fails and it panics in turn,
/// inside its own command guard, so only that command fails.
struct JobPanicked;

/// Runs a job so that a bug in it costs one command, not the executor.
fn run_job(job: Job, shard: &Rc<Shard>) -> Box<dyn Any + Send> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(shard)))
        .unwrap_or_else(|_| Box::new(JobPanicked));
    blocking::serve_ready(shard);
    result
}

struct UnholdWait<'a> {
    shard: &'a Shard,
    registered: bool,
}

impl Future for UnholdWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered || self.shard.held_by.get() == 0 {
            return Poll::Ready(());
        }
        self.shard
            .unhold_waiters
            .borrow_mut()
            .push(cx.waker().clone());
        self.registered = true;
        Poll::Pending
    }
}

/// Allocates a new client id (the control core's job in Redis terms; an atomic counter here).
pub fn next_client_id(shared: &Shared) -> u64 {
    shared.next_client_id.fetch_add(1, Ordering::Relaxed)
}
