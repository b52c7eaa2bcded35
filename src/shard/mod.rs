//! Per-core state: the shard's data and counters, its side of the call mesh, and the home of
//! its data while a coordinator on another core borrows it.
//!
//! A command whose keys span shards borrows each involved shard's data (`tx::Held`), in
//! ascending shard order so two coordinators can never wait for each other. While the data
//! is away, this shard's own commands wait for it to come home, and jobs from other cores
//! that need it wait in `deferred`; jobs that do not (Pub/Sub, settings, client lists) run
//! as usual. Single-shard commands pay one `Option` check for this. When the data comes
//! back and both local tasks and remote jobs wait for it, they take turns (`local_turn`):
//! served remote-first only, a core's own cross-shard commands starved for seconds behind
//! its neighbours' steady stream of borrows.

pub mod blocking;
pub mod client;
pub mod journal;
pub mod mesh;
pub mod observe;
pub mod pause;
pub mod pubsub;
pub mod scripts;
pub mod tracking;
pub mod tx;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::config::Config;
use crate::db::ShardData;
use crate::error::Error;
use mesh::{Inbox, Job, Mesh, Request, Response, ResultSlot};

/// Server-wide state shared by all executors. Nothing here is touched per command.
pub struct Shared {
    pub nshards: usize,
    pub config: Mutex<Config>,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    pub started_unix: i64,
    pub run_id: String,
    pub tcp_port: u16,
    /// `tls-port` (0: no TLS listener).
    pub tls_port: u16,
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
    /// The `databases` directive: how many databases every shard has.
    pub databases: usize,
    /// Connected clients across all executors (checked against maxclients on accept).
    pub connected_clients: std::sync::atomic::AtomicUsize,
    /// Client connections each shard serves: a shard that accepts a connection hands it to
    /// the one with the fewest when it has more (`server::balanced_target`).
    pub clients_per_shard: Box<[AtomicUsize]>,
    /// Active expiry runs (DEBUG SET-ACTIVE-EXPIRE 0 stops it, for tests).
    pub active_expire: std::sync::atomic::AtomicBool,
    /// DEBUG JOURNAL READ's stream database (the last SELECT it wrote).
    pub journal_view_db: Mutex<Option<u32>>,
    /// Clients paused on every shard (manual failover): see `pause`.
    pub pause: pause::Pause,
    /// What the command layer, above this one, gives it at start-up.
    pub upcalls: Upcalls,
    /// Start-up loading's progress (INFO persistence).
    pub load_progress: LoadProgress,
    /// SIGTERM or SIGINT received (0: none), Redis's `shutdown_asap` and `last_sig_received`:
    /// the control core's persistence cron starts a shutdown with it, and it stays set until
    /// that shutdown (or the one it found under way) is cancelled or aborted.
    pub shutdown_signal: std::sync::atomic::AtomicI32,
    /// Journal stamps up to this one are in the AOF and synced (`appendfsync always`).
    pub aof_durable: AtomicU64,
    /// ACL users and log; locked only by ACL commands, AUTH and configuration.
    pub acl: Mutex<crate::acl::Acl>,
    /// Bumped (with the lock held) at every change of `acl`: connections compare it before
    /// each command and refresh their user snapshot when it moved.
    pub acl_version: AtomicU64,
    /// Scripts running on each executor: the BUSY gate and SCRIPT/FUNCTION KILL.
    pub scripts: scripts::Scripts,
    /// Per data shard: false once an eviction round there found nothing the policy may evict
    /// (set again when one finds something). The gate lets a write bound for a shard with
    /// candidates go on (that shard evicts before running it) and looks further otherwise.
    pub evictable: Vec<std::sync::atomic::AtomicBool>,
    /// Per data shard: how good its best eviction candidate was when it last looked (the
    /// pool's best score, or for the random policies its number of candidates), so that a
    /// shard over the limit lets the shard with the better candidate evict (`cmd::evict`).
    pub evict_score: Vec<AtomicU64>,
    /// Per data shard: another shard has asked it to evict and it has not run yet.
    pub evict_asked: Vec<std::sync::atomic::AtomicBool>,
    /// MONITOR clients per core (see `observe`).
    pub monitors: observe::MonitorCounts,
    /// The next slow log entry's id (ids order entries across executors).
    pub slowlog_ids: AtomicU64,
    /// Bytes allocated once start-up was done (INFO `used_memory_startup`).
    pub startup_memory: AtomicU64,
    /// Clients with CLIENT TRACKING on, on every core (INFO `tracking_clients`; a flush
    /// sends nothing while 0).
    pub tracking_clients: std::sync::atomic::AtomicUsize,
    /// Per data shard: the keys its tracking table holds (`tracking-table-max-keys` counts
    /// them all).
    pub tracking_keys: Vec<std::sync::atomic::AtomicUsize>,
    /// A shard is evicting keys from its tracking table to bring the total under the limit
    /// (one at a time, or two shards would both evict what only one needed to).
    pub tracking_enforcing: std::sync::atomic::AtomicBool,
    /// Errors the AOF-loading client or the master client got (INFO
    /// `unexpected_error_replies`): commands that worked where they were first run.
    pub unexpected_error_replies: AtomicU64,
}

/// How far loading the data file at start-up has come, readable from any core.
#[derive(Default)]
pub struct LoadProgress {
    pub loading: std::sync::atomic::AtomicBool,
    pub start_unix: std::sync::atomic::AtomicI64,
    pub total_bytes: AtomicU64,
    pub loaded_bytes: AtomicU64,
}

/// Why the shards refuse commands for a while, as persistence decides (the gate reads it
/// once per command and looks closer only when something is set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskGate {
    /// Start-up loading runs: commands without the `loading` flag get `-LOADING`.
    pub loading: bool,
    /// A background save failed under `stop-writes-on-bgsave-error`: writes get `-MISCONF`.
    pub save_failed: bool,
    /// `appendfsync always`: a reply to a write waits until the AOF has it on disk
    /// (`Shared::aof_durable`).
    pub aof_always: bool,
    /// Fewer good replicas than `min-replicas-to-write`: writes get `-NOREPLICAS`.
    pub no_good_replicas: bool,
    /// The last AOF write failed with this errno (0: none): writes get `-MISCONF`.
    pub aof_errno: i32,
    /// A replica with `replica-read-only yes`: clients' writes get `-READONLY` (the
    /// replication layer sets this and the next one).
    pub read_only_replica: bool,
    /// A replica whose link to its master is not up, with `replica-serve-stale-data no`:
    /// commands without the `stale` flag get `-MASTERDOWN`.
    pub master_down: bool,
}

/// What a command does, for the gate (`DiskGate::refusal`).
#[derive(Clone, Copy, Debug)]
pub struct GateAsk {
    /// It writes (or is an EXEC with queued writes, or a script that may write).
    pub writes: bool,
    /// It is PING, which a failed save or AOF write refuses too.
    pub ping: bool,
    /// It may run on stale data (the `stale` flag, a script's `allow-stale`).
    pub stale_ok: bool,
    /// It may run while a data file loads (the `loading` flag).
    pub loading_ok: bool,
}

impl DiskGate {
    /// What persistence and replication refuse a command for, in `processCommand`'s order:
    /// writes (and PING) after a failed background save or AOF write; writes without enough
    /// good replicas (`min-replicas-to-write`); writes on a read-only replica;
    /// commands not allowed on stale data while the master link is down and stale data
    /// must not be served; commands not allowed while a data file loads.
    pub fn refusal(self, ask: GateAsk) -> Option<Error> {
        if self.save_failed && (ask.writes || ask.ping) {
            return Some(Error::BgsaveFailed);
        }
        if self.aof_errno != 0 && (ask.writes || ask.ping) {
            return Some(Error::AofWriteFailed(self.aof_errno));
        }
        if self.no_good_replicas && ask.writes {
            return Some(Error::NoReplicas);
        }
        if self.read_only_replica && ask.writes {
            return Some(Error::ReadOnlyReplica);
        }
        if self.master_down && !ask.stale_ok {
            return Some(Error::MasterDown);
        }
        if self.loading && !ask.loading_ok {
            return Some(Error::Loading);
        }
        None
    }

    /// What refuses one write of a script that runs without flags, before its first write
    /// (Redis's `scriptVerifyWriteCommandAllow`, whose order differs from the gate's).
    pub fn script_write_refusal(self, obeyed: bool) -> Option<Error> {
        if self.read_only_replica && !obeyed {
            return Some(Error::ReadOnlyReplica);
        }
        if self.save_failed {
            return Some(Error::BgsaveFailed);
        }
        if self.aof_errno != 0 {
            return Some(Error::AofWriteFailed(self.aof_errno));
        }
        self.no_good_replicas.then_some(Error::NoReplicas)
    }
}

/// Calls from the shard layer up into the command layer, installed at start-up
/// (`cmd::upcalls()`), so that `shard` never imports `cmd`.
#[derive(Clone, Copy)]
pub struct Upcalls {
    /// How many commands the table has (the size of the per-command stats).
    pub commands: usize,
    /// Serves the blocked clients whose keys became ready on a shard (after an execution
    /// unit, or when its data comes home).
    pub serve_ready: fn(&Rc<Shard>),
}

impl Default for Upcalls {
    /// No commands: for shards that never run one (tests of the shard layer).
    fn default() -> Upcalls {
        Upcalls {
            commands: 0,
            serve_ready: |_| {},
        }
    }
}

impl Shared {
    /// Shared state for `nshards` data shards, started now; the identity fields (run id, port,
    /// paths) get neutral values for the caller to override (`Shared { run_id, ..Shared::new(..) }`).
    pub fn new(nshards: usize, config: Config) -> Shared {
        Shared {
            nshards,
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_unix: crate::util::time::now_ms() / 1000,
            run_id: "0".repeat(40),
            tcp_port: 0,
            tls_port: 0,
            executable: String::new(),
            config_file: String::new(),
            control_ready: std::sync::atomic::AtomicBool::new(false),
            slot_map: Mutex::new(None),
            slot_map_version: AtomicU64::new(0),
            pubsub_counts: pubsub::Counts::new(nshards + 1),
            databases: (config.get_i64("databases").max(1)) as usize,
            connected_clients: Default::default(),
            clients_per_shard: (0..nshards).map(|_| AtomicUsize::new(0)).collect(),
            active_expire: std::sync::atomic::AtomicBool::new(true),
            journal_view_db: Mutex::new(None),
            config: Mutex::new(config),
            pause: Default::default(),
            upcalls: Upcalls::default(),
            load_progress: Default::default(),
            shutdown_signal: Default::default(),
            aof_durable: AtomicU64::new(u64::MAX),
            unexpected_error_replies: AtomicU64::new(0),
            acl: Mutex::new(crate::acl::Acl::new(&crate::acl::Catalog::new(
                Vec::new(),
                &[],
            ))),
            acl_version: AtomicU64::new(1),
            evictable: (0..nshards)
                .map(|_| std::sync::atomic::AtomicBool::new(true))
                .collect(),
            evict_score: (0..nshards).map(|_| AtomicU64::new(0)).collect(),
            evict_asked: (0..nshards)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
            scripts: scripts::Scripts::new(nshards + 1),
            monitors: observe::MonitorCounts::new(nshards + 1),
            slowlog_ids: AtomicU64::new(0),
            startup_memory: AtomicU64::new(0),
            tracking_clients: Default::default(),
            tracking_keys: (0..nshards).map(|_| Default::default()).collect(),
            tracking_enforcing: Default::default(),
        }
    }

    /// Locks the ACL state (a poisoned lock is used as is, as `config`).
    pub fn acl(&self) -> MutexGuard<'_, crate::acl::Acl> {
        self.acl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a change made to the ACL state `acl` (whose lock the caller holds).
    pub fn acl_changed(&self, _acl: &mut crate::acl::Acl) {
        self.acl_version.fetch_add(1, Ordering::Release);
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
    pub proto_max_bulk_len: i64,
    pub query_buffer_limit: usize,
    pub maxclients: usize,
    pub hz: u64,
    pub protected_mode: bool,
    /// Every type's encoding thresholds.
    pub limits: crate::types::Limits,
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: usize,
    /// Whether `maxmemory-policy` is an LFU one (OBJECT FREQ works, OBJECT IDLETIME does not).
    pub lfu_policy: bool,
    /// `maxmemory-policy`, and how eviction samples (`maxmemory-samples`), how long one
    /// round may run (`maxmemory-eviction-tenacity`, as microseconds) and whether evictions
    /// propagate as UNLINK (`lazyfree-lazy-eviction`).
    pub eviction: EvictionSettings,
    /// `client-output-buffer-limit pubsub`.
    pub pubsub_limit: pubsub::Limit,
    /// `client-output-buffer-limit replica`, a hard limit below `repl-backlog-size` raised to
    /// it, as Redis's `checkClientOutputBufferLimits` does (a partial resync would otherwise
    /// overflow it at once).
    pub replica_limit: pubsub::Limit,
    /// `client-output-buffer-limit normal`, for the replies of every other client (see
    /// `server::conn::write_out`).
    pub normal_limit: pubsub::Limit,
    /// MONITOR clients' output limit: `client-output-buffer-limit normal` (MONITOR clients
    /// are normal clients to Redis), or `MONITOR_HARD_LIMIT` where that sets none.
    pub monitor_limit: pubsub::Limit,
    /// `cluster-allow-pubsubshard-when-down`: shard channels keep working while the cluster is down.
    pub pubsubshard_when_down: bool,
    /// `busy-reply-threshold` (`lua-time-limit`), ms: a script running longer makes other
    /// clients get -BUSY.
    pub busy_reply_threshold_ms: u64,
    /// `slowlog-log-slower-than` (µs; negative: off) and `slowlog-max-len`.
    pub slowlog_slower_than: i64,
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` (ms; 0: off).
    pub latency_threshold_ms: u64,
    /// `latency-tracking`: per-command latency histograms.
    pub latency_tracking: bool,
    /// `timeout`: seconds a client may stay idle (0: forever).
    pub idle_timeout_s: u64,
    /// `tcp-keepalive`: seconds of TCP keepalive on accepted connections (0: off).
    pub tcp_keepalive_s: u32,
    /// `notify-keyspace-events` as flags (mirrored in `PubSub::keyspace_events`).
    pub keyspace_events: u32,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_max_keys: usize,
    /// `active-expire-effort` (1..=10): how hard each active expiry round works.
    pub active_expire_effort: usize,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        // `client-output-buffer-limit` by class: normal, replica, pubsub.
        let limits = crate::config::output_limits(c.get("client-output-buffer-limit")).map(
            |[hard, soft, secs]| pubsub::Limit {
                hard: hard as usize,
                soft: soft as usize,
                soft_secs: secs,
            },
        );
        Settings {
            proto_max_bulk_len: c.get_i64("proto-max-bulk-len"),
            query_buffer_limit: c.get_i64("client-query-buffer-limit") as usize,
            maxclients: c.get_i64("maxclients") as usize,
            hz: c.get_i64("hz") as u64,
            protected_mode: c.get_bool("protected-mode"),
            limits: crate::types::Limits {
                hash: crate::types::hash::HashLimits {
                    max_entries: c.get_i64("hash-max-listpack-entries") as usize,
                    max_value: c.get_i64("hash-max-listpack-value") as usize,
                },
                set: crate::types::set::SetLimits {
                    max_intset: c.get_i64("set-max-intset-entries") as usize,
                    max_listpack: c.get_i64("set-max-listpack-entries") as usize,
                    max_value: crate::types::set::MAX_PACKED_MEMBER,
                },
                zset: crate::types::zset::ZsetLimits {
                    max_entries: c.get_i64("zset-max-listpack-entries") as usize,
                    max_value: c.get_i64("zset-max-listpack-value") as usize,
                },
                list_fill: crate::types::list::Fill::new(c.get_i64("list-max-listpack-size")),
                stream: crate::types::stream::StreamLimits {
                    max_bytes: c.get_i64("stream-node-max-bytes") as usize,
                    max_entries: c.get_i64("stream-node-max-entries") as usize,
                },
                hll_sparse_max_bytes: c.get_i64("hll-sparse-max-bytes") as usize,
            },
            lfu_policy: c.get("maxmemory-policy").ends_with("-lfu"),
            eviction: EvictionSettings {
                policy: crate::db::Policy::parse(c.get("maxmemory-policy")),
                samples: c.get_i64("maxmemory-samples").max(1) as usize,
                time_limit_us: eviction_time_limit_us(c.get_i64("maxmemory-eviction-tenacity")),
                lazy: c.get_bool("lazyfree-lazy-eviction"),
                lfu_log_factor: c.get_i64("lfu-log-factor").clamp(0, u32::MAX as i64) as u32,
                lfu_decay_time: c.get_i64("lfu-decay-time").clamp(0, u32::MAX as i64) as u32,
                replica_ignores_limit: c.get_bool("replica-ignore-maxmemory"),
            },
            maxmemory: c.get_i64("maxmemory").max(0) as usize,
            pubsubshard_when_down: c.get_bool("cluster-allow-pubsubshard-when-down"),
            busy_reply_threshold_ms: c.get_i64("busy-reply-threshold").max(0) as u64,
            slowlog_slower_than: c.get_i64("slowlog-log-slower-than"),
            slowlog_max_len: c.get_i64("slowlog-max-len").max(0) as usize,
            latency_threshold_ms: c.get_i64("latency-monitor-threshold").max(0) as u64,
            latency_tracking: c.get_bool("latency-tracking"),
            idle_timeout_s: c.get_i64("timeout").max(0) as u64,
            tcp_keepalive_s: c.get_i64("tcp-keepalive").clamp(0, i32::MAX as i64) as u32,
            tracking_max_keys: c.get_i64("tracking-table-max-keys").max(0) as usize,
            active_expire_effort: c.get_i64("active-expire-effort").clamp(1, 10) as usize,
            keyspace_events: crate::config::keyspace_events::parse(
                c.get("notify-keyspace-events").as_bytes(),
            )
            .unwrap_or(0),
            pubsub_limit: limits[2],
            replica_limit: pubsub::Limit {
                hard: match limits[1].hard {
                    0 => 0,
                    hard => hard.max(c.get_i64("repl-backlog-size").max(0) as usize),
                },
                ..limits[1]
            },
            normal_limit: limits[0],
            monitor_limit: if limits[0].hard == 0 && limits[0].soft == 0 {
                pubsub::Limit {
                    hard: observe::MONITOR_HARD_LIMIT,
                    soft: 0,
                    soft_secs: 0,
                }
            } else {
                limits[0]
            },
        }
    }
}

/// How `maxmemory` evicts (see `Settings::eviction`).
#[derive(Clone, Copy, Debug)]
pub struct EvictionSettings {
    pub policy: crate::db::Policy,
    pub samples: usize,
    pub time_limit_us: u64,
    pub lazy: bool,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
    /// `replica-ignore-maxmemory`: a replica neither evicts nor refuses writes for memory.
    pub replica_ignores_limit: bool,
}

impl EvictionSettings {
    /// Makes lookups stamp keys as this policy reads them (process-wide, as the policy is).
    pub fn publish_access_policy(&self) {
        crate::db::evict::set_access_policy(
            self.policy.is_lfu(),
            self.lfu_log_factor,
            self.lfu_decay_time,
        );
    }
}

/// `maxmemory-eviction-tenacity` (0..100) as the time one eviction round may take, as Redis's
/// `evictionTimeLimitUs`: linear to 500 us at 10, then 15% more per step, unlimited at 100.
pub fn eviction_time_limit_us(tenacity: i64) -> u64 {
    match tenacity {
        ..=10 => 50 * tenacity.max(0) as u64,
        11..=99 => (500.0 * 1.15f64.powi(tenacity as i32 - 10)) as u64,
        _ => u64::MAX,
    }
}

/// `ClientMeta::unblock` when the node turned into a replica (REPLICAOF).
pub const FORCE_UNBLOCK: u8 = 3;
/// What a client blocked then gets (Redis's `disconnectAllBlockedClients`).
pub const FORCE_UNBLOCKED: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

/// What CLIENT LIST / CLIENT KILL need to know of a connection; the connection task updates it.
pub struct ClientMeta {
    pub id: u64,
    pub fd: i32,
    pub addr: String,
    pub laddr: String,
    pub created_ms: i64,
    /// Id, address and name, shared with the cores its commands run on.
    pub ident: Arc<ClientIdent>,
    pub lib_name: RefCell<Vec<u8>>,
    pub lib_ver: RefCell<Vec<u8>>,
    pub last_cmd: Cell<&'static str>,
    /// The ACL user the connection is authenticated as (CLIENT LIST `user=`).
    pub user: RefCell<Vec<u8>>,
    pub last_interaction_ms: Cell<i64>,
    pub resp: Cell<u8>,
    pub qbuf: Cell<usize>,
    pub killed: Cell<bool>,
    /// CLIENT NO-EVICT (shown as flag `e`; there is no client eviction yet).
    pub no_evict: Cell<bool>,
    /// Waiting in a blocking command, or a MONITOR client: the idle `timeout` spares both.
    pub blocked: Cell<bool>,
    pub monitor: Cell<bool>,
    /// CLIENT UNBLOCK asked this blocked client to stop waiting: 1 as if timed out, 2 with
    /// the UNBLOCKED error; 3 (`FORCE_UNBLOCK`): the node became a replica, it
    /// gets that error and is closed (0: not asked).
    pub unblock: Cell<u8>,
    /// Pub/Sub subscriptions: channels, patterns, shard channels (CLIENT LIST `sub=` ...).
    pub sub: Cell<usize>,
    pub psub: Cell<usize>,
    pub ssub: Cell<usize>,
    /// CLIENT TRACKING flags (`tracking::ON` ...; 0: off), the client invalidations are
    /// redirected to (0: none) and the core it lives on, and the BCAST prefixes in order.
    pub tracking: Cell<u32>,
    pub redirect: Cell<u64>,
    pub redirect_core: Cell<u32>,
    pub prefixes: RefCell<Vec<Box<[u8]>>>,
    /// The connection's push buffer, once it has one (Pub/Sub, MONITOR, RESP3): where
    /// invalidations for it are appended.
    pub pushes: RefCell<std::rc::Weak<pubsub::Subscriber>>,
}

/// Who sent a command, for what outlives the command (SLOWLOG entries, MONITOR lines,
/// client-side caching): shared with the cores the connection's commands are forwarded to.
#[derive(Debug, Default)]
pub struct ClientIdent {
    pub id: u64,
    pub addr: String,
    /// The client scripts run commands as (MONITOR shows `lua` for its address).
    pub script: bool,
    /// Connected over the `unixsocket` (Redis's `CLIENT_UNIX_SOCKET`): `addr` is then the
    /// socket's path and `:0`, flag `U`, local for protected mode, `unix:path` in MONITOR.
    pub unix: bool,
    /// CLIENT SETNAME's name (locked only to set it and to copy it into a slow log entry).
    name: Mutex<Vec<u8>>,
    /// Invalidations this client's commands caused that have not reached their clients yet
    /// (`tracking::Ticket`): its replies wait for none, as Redis sends them first.
    pub invalidations: Arc<AtomicUsize>,
}

impl ClientIdent {
    pub fn new(id: u64, addr: String, unix: bool) -> ClientIdent {
        ClientIdent {
            id,
            addr,
            script: false,
            unix,
            name: Mutex::new(Vec::new()),
            invalidations: Arc::default(),
        }
    }

    /// The client Lua's `redis.call` runs commands as (Redis's fake Lua client: no address).
    pub fn script() -> &'static ClientIdent {
        static SCRIPT: std::sync::LazyLock<ClientIdent> =
            std::sync::LazyLock::new(|| ClientIdent {
                id: 0,
                addr: "?:0".into(),
                script: true,
                unix: false,
                name: Mutex::new(Vec::new()),
                invalidations: Arc::default(),
            });
        &SCRIPT
    }

    pub fn name(&self) -> Vec<u8> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ClientMeta {
    /// A new client's record: no name, RESP2, the default user, created now. `unix`: it came
    /// over the `unixsocket` (see `ClientIdent::unix`).
    pub fn new(id: u64, fd: i32, addr: String, laddr: String, unix: bool) -> ClientMeta {
        let now = crate::util::time::now_ms();
        ClientMeta {
            ident: Arc::new(ClientIdent::new(id, addr.clone(), unix)),
            id,
            fd,
            addr,
            laddr,
            created_ms: now,
            lib_name: Default::default(),
            lib_ver: Default::default(),
            last_cmd: Cell::new("NULL"),
            user: RefCell::new(b"default".to_vec()),
            last_interaction_ms: Cell::new(now),
            resp: Cell::new(2),
            qbuf: Cell::new(0),
            killed: Cell::new(false),
            no_evict: Cell::new(false),
            blocked: Cell::new(false),
            monitor: Cell::new(false),
            unblock: Cell::new(0),
            sub: Default::default(),
            psub: Default::default(),
            ssub: Default::default(),
            tracking: Cell::new(0),
            redirect: Cell::new(0),
            redirect_core: Cell::new(0),
            prefixes: Default::default(),
            pushes: Default::default(),
        }
    }

    /// The connection's name (empty: none).
    pub fn name(&self) -> Vec<u8> {
        self.ident.name()
    }

    pub fn set_name(&self, name: &[u8]) {
        *self.ident.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_vec();
    }

    /// Connected over the `unixsocket` (Redis's `CLIENT_UNIX_SOCKET`).
    #[inline]
    pub fn unix(&self) -> bool {
        self.ident.unix
    }

    /// Redis's CLIENT_PUBSUB: subscribed to anything (flag `P`; RESP2 subscribed context).
    #[inline]
    pub fn in_pubsub(&self) -> bool {
        self.sub.get() + self.psub.get() + self.ssub.get() > 0
    }
}

/// Per-command counters for INFO commandstats.
#[derive(Default, Clone, Copy, Debug)]
pub struct CommandStats {
    pub calls: u64,
    /// Time spent in the handler, in nanoseconds (INFO shows microseconds).
    pub nsec: u64,
    pub failed: u64,
    pub rejected: u64,
}

/// Per-shard counters for INFO stats.
#[derive(Default, Clone, Debug)]
pub struct ShardStats {
    pub commands: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    /// Changes to the dataset (Redis's `server.dirty`), summed over commands.
    pub dirty: u64,
    pub cmd: Vec<CommandStats>,
    /// Per-command latency histograms (INFO latencystats, LATENCY HISTOGRAM), made at a
    /// command's first call while `latency-tracking` is on.
    pub hist: Vec<Option<Box<observe::Histogram>>>,
    /// Reads and writes on client sockets (INFO `total_reads_processed` ...).
    pub reads_processed: u64,
    pub writes_processed: u64,
    /// RESTORE payloads validated deeply (all of them: INFO `dump_payload_sanitizations`).
    pub dump_payload_sanitizations: u64,
    /// Active expiry: time spent (µs), cycles that hit their time limit, and the running
    /// estimate of the share of stale keys among keys with a TTL (Redis's weighting).
    pub expire_cycle_us: u64,
    pub expired_time_cap_reached: u64,
    pub expired_stale_perc: f64,
    /// Error replies by error code (the first word: `ERR`, `WRONGTYPE` ...), INFO errorstats.
    pub errors: hashbrown::HashMap<String, u64>,
}

impl ShardStats {
    /// Counts an error reply under its code.
    pub fn count_error(&mut self, e: &crate::error::Error) {
        let text = e.render();
        let code = text.split(' ').next().unwrap_or("ERR");
        *self.errors.entry_ref(code).or_default() += 1;
    }

    /// A copy of the counters without the latency histograms (which are large: INFO reads
    /// them only for latencystats, through LATENCY's merge).
    pub fn counters(&self) -> ShardStats {
        ShardStats {
            cmd: self.cmd.clone(),
            hist: Vec::new(),
            errors: self.errors.clone(),
            ..*self
        }
    }

    /// CONFIG RESETSTAT: zeroes every counter, keeping the per-command table's size.
    pub fn reset(&mut self) {
        let cmd = std::mem::take(&mut self.cmd);
        let n = self.hist.len();
        *self = ShardStats {
            cmd,
            ..Default::default()
        };
        self.cmd.fill(CommandStats::default());
        self.hist.resize(n, None);
    }
}

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    /// The control executor: no keyspace, owns server-wide duties.
    pub is_control: bool,
    /// This shard's databases; `None` while a coordinator on another core has borrowed them
    /// (see the module doc). Use `data_home` / `with_data` rather than borrowing directly.
    pub data: RefCell<Option<Box<ShardData>>>,
    /// What this executor's commands propagate (see `journal`).
    pub journal: RefCell<journal::Journal>,
    /// Whether the journal records (read per command, so kept apart from it).
    pub recording: Cell<bool>,
    pub stats: RefCell<ShardStats>,
    pub clients: RefCell<hashbrown::HashMap<u64, Rc<ClientMeta>>>,
    pub settings: RefCell<Settings>,
    /// Refusals persistence has set on this shard (`DiskGate`).
    pub disk_gate: Cell<DiskGate>,
    /// A FLUSHALL ran here: the connection saves the emptied dataset after it.
    pub save_after_flushall: Cell<bool>,
    pub shared: Arc<Shared>,
    pub mesh: Mesh,
    pub blocking: blocking::Blocking,
    pub pubsub: pubsub::PubSub,
    /// Client-side caching: BCAST prefixes, and invalidations on their way to other cores.
    pub tracking: tracking::Tracking,
    /// Slow log, latency events, MONITOR clients of this core.
    pub observe: observe::Observe,
    /// This shard's routing view of the cluster (a disabled map outside cluster mode).
    pub slot_map: RefCell<Arc<crate::cluster::slotmap::SlotMap>>,
    /// Jobs from other cores that need `data` while it is away, in arrival order.
    deferred: RefCell<VecDeque<(usize, Request)>>,
    /// Local tasks waiting for `data` to come home.
    data_waiters: RefCell<Vec<Waker>>,
    /// The data is home but kept for the local tasks just woken: remote jobs queue meanwhile.
    local_turn: Cell<bool>,
    /// Local tasks waiting to borrow the data (`tx::Held`), not to use it in place: only
    /// they get a turn (the others never waited long, and holding remote jobs for them
    /// changed which shard evicts first).
    lenders_waiting: Cell<usize>,
    /// Numbers the local turns, so that the timer of an ended turn cannot end a later one.
    local_turns: Cell<u64>,
    /// The last time both waited, the local tasks went first (the next turn is remote).
    last_turn_local: Cell<bool>,
    /// Local tasks waiting for work they started on another executor (`call_async`), by token.
    async_calls: RefCell<hashbrown::HashMap<u64, AsyncCall>>,
    next_async_call: Cell<u64>,
}

/// A `call_async` whose remote work has not finished: who waits for it.
#[derive(Default)]
struct AsyncCall {
    waker: Option<Waker>,
}

thread_local! {
    /// The executor running on this thread, for work that must find its way home from a
    /// destructor (a borrowed shard's data dropped on the wrong core).
    static CURRENT: RefCell<Option<Rc<Shard>>> = const { RefCell::new(None) };
}

impl Shard {
    /// Every client of this executor waiting in a blocking command stops with the UNBLOCKED
    /// error and is closed (REPLICAOF, as Redis's `disconnectAllBlockedClients`).
    pub fn force_unblock_clients(&self) {
        for m in self.clients.borrow().values() {
            if m.blocked.get() && m.unblock.get() == 0 {
                m.unblock.set(FORCE_UNBLOCK);
            }
        }
    }

    pub fn new(
        id: usize,
        nshards: usize,
        is_control: bool,
        shared: Arc<Shared>,
        mesh: Mesh,
    ) -> Shard {
        let settings = Settings::from_config(&shared.config());
        settings.eviction.publish_access_policy();
        let keyspace_events = settings.keyspace_events;
        let refuse_writes = shared.config().refuses_writes_without_replicas();
        let slot_map = if shared.config().get_bool("cluster-enabled") {
            crate::cluster::slotmap::SlotMap::pending()
        } else {
            crate::cluster::slotmap::SlotMap::disabled()
        };
        let data = if is_control {
            ShardData::new(0, 0, shared.databases)
        } else {
            ShardData::new(id, nshards, shared.databases)
        };
        Shard {
            id,
            nshards,
            is_control,
            data: RefCell::new(Some(Box::new(data))),
            journal: RefCell::new(journal::Journal::default()),
            recording: Cell::new(false),
            stats: RefCell::new(ShardStats {
                cmd: vec![CommandStats::default(); shared.upcalls.commands],
                hist: vec![None; shared.upcalls.commands],
                ..Default::default()
            }),
            clients: RefCell::new(Default::default()),
            settings: RefCell::new(settings),
            disk_gate: Cell::new(DiskGate {
                loading: shared
                    .load_progress
                    .loading
                    .load(std::sync::atomic::Ordering::Relaxed),
                save_failed: false,
                aof_always: false,
                // A master starts without replicas: `min-replicas-to-write` refuses writes
                // from the first command on, as in Redis.
                no_good_replicas: refuse_writes,
                aof_errno: 0,
                read_only_replica: false,
                master_down: false,
            }),
            save_after_flushall: Cell::new(false),
            shared,
            mesh,
            blocking: Default::default(),
            pubsub: pubsub::PubSub::with_keyspace_events(keyspace_events),
            tracking: Default::default(),
            observe: Default::default(),
            slot_map: RefCell::new(Arc::new(slot_map)),
            deferred: RefCell::new(VecDeque::new()),
            data_waiters: RefCell::new(Vec::new()),
            local_turn: Cell::new(false),
            lenders_waiting: Cell::new(0),
            local_turns: Cell::new(0),
            last_turn_local: Cell::new(false),
            async_calls: RefCell::new(Default::default()),
            next_async_call: Cell::new(1),
        }
    }

    /// Makes `shard` the executor of this thread (see `CURRENT`).
    pub fn set_current(shard: &Rc<Shard>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(shard.clone()));
    }

    /// The executor running on this thread, if any.
    pub fn current() -> Option<Rc<Shard>> {
        CURRENT.with(|c| c.borrow().clone())
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

    /// The shard owning `key`. With one shard there is no need to hash the key (the
    /// keyspace hashes it again to find its table).
    #[inline]
    pub fn owner_of_key(&self, key: &[u8]) -> usize {
        if self.nshards == 1 {
            return 0;
        }
        self.owner_of(crate::slot::key_slot(key))
    }

    /// Whether this shard's data is here and nobody is queued for it.
    #[inline]
    pub fn data_is_home(&self) -> bool {
        // While the data is here nothing waits for it: `data_returned` runs the queue before
        // anything else can, and jobs are queued only while it is away.
        self.data.borrow().is_some()
    }

    /// Waits until this shard's data is home (it may be lent to a coordinator).
    pub async fn data_home(&self) {
        while !self.data_is_home() {
            DataWait {
                shard: self,
                registered: false,
            }
            .await;
        }
    }

    /// `data_home` for a task that will borrow the data (`tx::Held`): it may get a turn
    /// before remote borrowers (see `data_returned`).
    pub async fn data_home_to_lend(&self) {
        /// Counts the wait out even when the waiting task is dropped.
        struct Waiting<'a>(&'a Cell<usize>);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.lenders_waiting.set(self.lenders_waiting.get() + 1);
        let _waiting = Waiting(&self.lenders_waiting);
        self.data_home().await;
    }

    /// Runs `f` on this shard's data, which must be home (`data_home`); `None` otherwise.
    #[inline]
    pub fn with_data<R>(&self, f: impl FnOnce(&mut ShardData) -> R) -> Option<R> {
        let mut data = self.data.borrow_mut();
        data.as_deref_mut().map(f)
    }

    /// Runs `f` on executor `to` (this one included) and returns its result. `f` must not
    /// need the shard's data: it runs even while the data is lent (settings, Pub/Sub,
    /// client lists). For the data, see `call_data` and `tx::Held`.
    pub async fn call<R, F>(self: &Rc<Self>, to: usize, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
    {
        if to == self.id {
            return f(self);
        }
        self.remote(to, false, f).await
    }

    /// Runs `f` on executor `to` once its data is home, and returns its result.
    pub async fn call_data<R, F>(self: &Rc<Self>, to: usize, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>, &mut ShardData) -> R + Send + 'static,
    {
        if to == self.id {
            self.data_home().await;
            let r = self
                .with_data(|d| f(self, d))
                .expect("data is home after data_home");
            (self.shared.upcalls.serve_ready)(self);
            return r;
        }
        self.remote(to, true, move |s: &Rc<Shard>| {
            let r = s
                .with_data(|d| f(s, d))
                .expect("data jobs run only while the data is home");
            (s.shared.upcalls.serve_ready)(s);
            r
        })
        .await
    }

    async fn remote<R, F>(self: &Rc<Self>, to: usize, needs_data: bool, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
    {
        let slot = ResultSlot::new();
        let theirs = slot.clone();
        let job: Job = Box::new(move |s| theirs.put(f(s)));
        self.mesh.send(to, needs_data, job).await.await;
        match slot.take() {
            Some(r) => r,
            // The job panicked on its shard (see `run_job`): fail this command the same way.
            None => panic!("a cross-shard job panicked on shard {to}"),
        }
    }

    /// Runs the future `f` makes on executor `to` (as a task there, so it may wait: a save on
    /// the control core) and returns its output here.
    pub async fn call_async<R, F, Fut>(self: &Rc<Self>, to: usize, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if to == self.id {
            return f(self.clone()).await;
        }
        let token = self.next_async_call.get();
        self.next_async_call.set(token + 1);
        self.async_calls
            .borrow_mut()
            .insert(token, AsyncCall::default());
        let slot = ResultSlot::new();
        let theirs = slot.clone();
        let home = self.id;
        self.post(to, false, move |s: &Rc<Shard>| {
            let there = s.clone();
            glommio::spawn_local(async move {
                theirs.put(f(there.clone()).await);
                there
                    .post(home, false, move |h: &Rc<Shard>| h.async_call_done(token))
                    .await;
            })
            .detach();
        })
        .await;
        std::future::poll_fn(|cx| {
            let mut calls = self.async_calls.borrow_mut();
            match calls.get_mut(&token) {
                Some(c) => {
                    c.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                None => Poll::Ready(()),
            }
        })
        .await;
        slot.take()
            .unwrap_or_else(|| panic!("work started on executor {to} did not finish"))
    }

    /// The work of `call_async` `token` has finished (its waiter may be gone already).
    fn async_call_done(&self, token: u64) {
        let call = self.async_calls.borrow_mut().remove(&token);
        if let Some(w) = call.and_then(|c| c.waker) {
            w.wake();
        }
    }

    /// Runs `f` on executor `to` without waiting for it (it still runs if nobody waits).
    pub async fn post<F>(self: &Rc<Self>, to: usize, needs_data: bool, f: F)
    where
        F: FnOnce(&Rc<Shard>) + Send + 'static,
    {
        if to == self.id && (!needs_data || self.data_is_home()) {
            run_job(Box::new(f), self);
            return;
        }
        if to == self.id {
            self.data_home().await;
            run_job(Box::new(f), self);
            return;
        }
        self.mesh.post(to, needs_data, Box::new(f)).await;
    }

    /// A counter summed over every executor's stats, the control executor's included: the
    /// commands counted there are the master client's (a replica's applied writes), which
    /// INFO, the save points and CONFIG RESETSTAT must see as Redis's `call()` counts them.
    pub async fn sum_stats(self: &Rc<Self>, f: fn(&ShardStats) -> u64) -> u64 {
        let data: u64 = self
            .call_all(move |s| f(&s.stats.borrow()))
            .await
            .into_iter()
            .sum();
        data + self.call(self.nshards, move |s| f(&s.stats.borrow())).await
    }

    /// Runs `f` on every data shard (not the control core) and collects the results in shard
    /// order. Like `call`, `f` must not need the data.
    pub async fn call_all<R, F>(self: &Rc<Self>, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&Rc<Shard>) -> R + Send + Sync + Clone + 'static,
    {
        let mut slots = Vec::with_capacity(self.nshards);
        let mut tickets = Vec::with_capacity(self.nshards);
        for to in 0..self.nshards {
            let slot = ResultSlot::new();
            if to != self.id {
                let (f, theirs) = (f.clone(), slot.clone());
                let job: Job = Box::new(move |s| theirs.put(f(s)));
                tickets.push((to, self.mesh.send(to, false, job).await));
            }
            slots.push(slot);
        }
        if self.id < self.nshards {
            slots[self.id].put(f(self));
        }
        for (_to, t) in tickets {
            t.await;
        }
        slots
            .iter()
            .enumerate()
            .map(|(to, s)| {
                s.take()
                    .unwrap_or_else(|| panic!("a cross-shard job panicked on shard {to}"))
            })
            .collect()
    }

    /// Puts back data that was lent, then runs what waited for it: remote jobs in order (one
    /// may borrow it again, leaving the rest queued), then local tasks, then blocked clients
    /// its writes made ready.
    pub fn data_returned(self: &Rc<Self>, data: Box<ShardData>) {
        debug_assert!(self.data.borrow().is_none());
        *self.data.borrow_mut() = Some(data);
        let both_wait = self.lenders_waiting.get() > 0 && !self.deferred.borrow().is_empty();
        if both_wait && !self.last_turn_local.get() {
            // The local borrowers' turn: the data waits for them (the first to borrow it ends
            // the turn, `tx::lend_here`); should none do so soon, the remote jobs go on.
            self.last_turn_local.set(true);
            self.local_turn.set(true);
            let turn = self.local_turns.get() + 1;
            self.local_turns.set(turn);
            let me = self.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
                if me.local_turns.get() != turn || !me.local_turn.get() {
                    return;
                }
                me.end_local_turn();
                if me.run_deferred() {
                    (me.shared.upcalls.serve_ready)(&me);
                }
            })
            .detach();
        } else {
            if both_wait {
                self.last_turn_local.set(false);
            }
            if !self.run_deferred() {
                return;
            }
        }
        for w in self.data_waiters.borrow_mut().drain(..) {
            w.wake();
        }
        (self.shared.upcalls.serve_ready)(self);
    }

    fn end_local_turn(&self) {
        self.local_turn.set(false);
    }

    /// Runs the queued remote jobs in order while the data is home (one may borrow it
    /// again, leaving the rest queued); returns whether the data is still home.
    fn run_deferred(self: &Rc<Self>) -> bool {
        while self.data.borrow().is_some() {
            let next = self.deferred.borrow_mut().pop_front();
            let Some((from, req)) = next else { return true };
            self.run_request(from, req);
        }
        false
    }

    /// Runs one request from executor `from` and answers it.
    fn run_request(self: &Rc<Self>, from: usize, req: Request) {
        run_job(req.job, self);
        if req.token != 0 {
            self.mesh.respond(from, Response { token: req.token });
        }
    }

    /// Serves this executor's inbox for its life: responses complete their calls, requests
    /// run in the order each executor sent them (or wait for the data, see `shard::tx`).
    pub async fn serve_inbox(self: Rc<Self>, inbox: Inbox) {
        loop {
            while let Ok(resp) = inbox.responses.try_recv() {
                self.mesh.note_received();
                self.mesh.complete(resp);
            }
            while let Ok((from, req)) = inbox.requests.try_recv() {
                self.mesh.note_received();
                if req.needs_data && (!self.data_is_home() || self.local_turn.get()) {
                    self.deferred.borrow_mut().push_back((from, req));
                } else {
                    self.run_request(from, req);
                }
            }
            self.mesh.mail().await;
            glommio::yield_if_needed().await;
        }
    }
}

/// Runs a job so that a bug in it costs one command, not the executor: a job that panicked
/// leaves its result slot empty, and its caller fails its own command.
fn run_job(job: Job, shard: &Rc<Shard>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(shard)));
}

struct DataWait<'a> {
    shard: &'a Shard,
    registered: bool,
}

impl Future for DataWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered || self.shard.data_is_home() {
            return Poll::Ready(());
        }
        self.shard
            .data_waiters
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
