//! INFO: Redis 7.0's sections and field names, from a snapshot gathered over every shard.
//!
//! Every field of Redis 7.0's sections is present. Those about machinery redcell does not
//! have (replication buffers, active defrag, I/O threads, eviction) are 0; `used_memory` is
//! the bytes allocated, the allocator fields come from mimalloc, and the `*_main_thread` CPU
//! fields are those of the executor thread answering INFO (there is no main thread).

use crate::cmd::call::each_shard_data;
use crate::cmd::{table, BoxFuture, CommandStats};
use crate::db::KeyspaceStats;
use crate::error::CmdResult;
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::ShardStats;
use crate::util::time::now_us;

/// What one shard contributes to INFO.
#[derive(Clone, Default)]
pub struct ShardSnapshot {
    pub stats: ShardStats,
    /// Per database: keys and keys with a TTL.
    pub dbs: Vec<(usize, usize)>,
    pub keyspace: KeyspaceStats,
    /// Client-side caching: keys in the shard's tracking table, and reader entries.
    pub tracking: [usize; 2],
    pub max_qbuf: usize,
    /// Query buffer bytes of this core's clients (INFO `mem_clients_normal`).
    pub client_buffers: usize,
    pub blocked_clients: usize,
    /// Bytes held by this core's idle Lua interpreters (EVAL, functions).
    pub lua_vm: [usize; 2],
}

/// Everything INFO reports, gathered before rendering.
#[derive(Default)]
pub struct Snapshot {
    pub pid: u32,
    pub os: String,
    pub run_id: String,
    pub repl: crate::repl::master::Summary,
    /// The replica side (a replica renders its own INFO replication).
    pub replica: crate::repl::Info,
    pub tcp_port: u16,
    pub now_us: i64,
    pub uptime_s: i64,
    pub hz: i64,
    pub lru_clock: u32,
    pub executable: String,
    pub config_file: String,
    pub connected_clients: usize,
    /// Client connections each shard serves.
    pub clients_per_shard: Vec<usize>,
    /// Clients with CLIENT TRACKING on, and BCAST prefixes registered.
    pub tracking_clients: usize,
    pub tracking_prefixes: usize,
    /// Errors the AOF-loading or master client got.
    pub unexpected_error_replies: u64,
    pub cluster_enabled: bool,
    pub maxclients: i64,
    /// Bytes allocated (`util::mem`), or the resident set where nothing counts them.
    pub used: u64,
    pub rss: u64,
    pub peak_rss: u64,
    pub total_system_memory: u64,
    pub maxmemory: i64,
    pub maxmemory_policy: String,
    pub persist: crate::persist::Info,
    /// (seconds, microseconds) of system, user, children's system, children's user CPU.
    pub cpu: [(i64, i64); 4],
    pub shards: Vec<ShardSnapshot>,
    /// The control executor's counters: the commands a replica's master client ran.
    pub control: ShardSnapshot,
    /// Bytes allocated once start-up was done.
    pub startup: u64,
    /// mimalloc's view: committed and resident bytes.
    pub allocator: crate::util::mem::ProcessInfo,
    /// (cached scripts, bytes of their bodies); (libraries, functions, bytes of their code).
    pub scripts: (usize, usize),
    pub functions: (usize, usize, usize),
    /// System and user CPU of the executor thread answering INFO.
    pub thread_cpu: [(i64, i64); 2],
    /// `latency-tracking-info-percentiles`, and each command's merged latency histogram.
    pub percentiles: Vec<f64>,
    pub histograms: Vec<Option<crate::shard::observe::Histogram>>,
    /// Distinct channels, patterns and shard channels subscribed over all cores.
    pub pubsub: [usize; 3],
}

/// Which sections a request asks for (Redis's `genInfoSectionDict`).
pub struct Sections {
    all: bool,
    names: Vec<String>,
}

/// The sections INFO shows without arguments (and for `default`).
const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "module_list",
    "errorstats",
    "cluster",
    "keyspace",
    "redcell",
];

impl Sections {
    pub fn parse<'a>(args: impl Iterator<Item = &'a [u8]>) -> Sections {
        let mut s = Sections {
            all: false,
            names: Vec::new(),
        };
        let mut any = false;
        for arg in args {
            any = true;
            let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
            match name.as_str() {
                "all" | "everything" => s.all = true,
                "default" => s
                    .names
                    .extend(DEFAULT_SECTIONS.iter().map(|n| n.to_string())),
                _ => s.names.push(name),
            }
        }
        if !any {
            s.names
                .extend(DEFAULT_SECTIONS.iter().map(|n| n.to_string()));
        }
        s
    }

    fn wants(&self, name: &str) -> bool {
        self.all || self.names.iter().any(|n| n == name)
    }
}

/// Redis's `bytesToHuman`.
pub fn bytes_to_human(n: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("K", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5)];
    if n < 1024 {
        return format!("{n}B");
    }
    for (unit, power) in UNITS {
        if (n as u128) < 1024u128.pow(power + 1) {
            return format!("{:.2}{unit}", n as f64 / 1024f64.powi(power as i32));
        }
    }
    format!("{n}B")
}

impl Snapshot {
    fn sum(&self, f: impl Fn(&ShardSnapshot) -> u64) -> u64 {
        self.executors().map(f).sum()
    }

    /// The data shards and the control executor (whose counters are the master client's).
    fn executors(&self) -> impl Iterator<Item = &ShardSnapshot> {
        self.shards.iter().chain(std::iter::once(&self.control))
    }

    /// Error replies by code, summed over the executors, in name order.
    fn errors(&self) -> std::collections::BTreeMap<String, u64> {
        let mut total = std::collections::BTreeMap::new();
        for shard in self.executors() {
            for (code, n) in &shard.stats.errors {
                *total.entry(code.clone()).or_insert(0) += n;
            }
        }
        total
    }

    /// Per-command stats summed over the executors, by table index.
    fn command_stats(&self) -> Vec<CommandStats> {
        let mut total = vec![CommandStats::default(); table().len()];
        for shard in self.executors() {
            for (t, s) in total.iter_mut().zip(&shard.stats.cmd) {
                t.calls += s.calls;
                t.nsec += s.nsec;
                t.failed += s.failed;
                t.rejected += s.rejected;
            }
        }
        total
    }
}

/// Appends one section to the text.
type Section = fn(&Snapshot, &mut String);

/// Renders the requested sections, `\r\n`-terminated lines, sections separated by a blank line.
pub fn render(s: &Snapshot, sections: &Sections) -> String {
    let mut out = String::with_capacity(4096);
    // Each section with the names that ask for it (`module_list` is the modules section).
    let parts: [(&[&str], Section); 14] = [
        (&["server"], server),
        (&["clients"], clients),
        (&["memory"], memory),
        (&["persistence"], persistence),
        (&["stats"], stats),
        (&["replication"], replication),
        (&["cpu"], cpu),
        (&["modules", "module_list"], modules),
        (&["commandstats"], commandstats),
        (&["errorstats"], errorstats),
        (&["latencystats"], latencystats),
        (&["cluster"], cluster),
        (&["keyspace"], keyspace),
        (&["redcell"], redcell),
    ];
    for (names, section) in parts {
        if !names.iter().any(|n| sections.wants(n)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        section(s, &mut out);
    }
    out
}

macro_rules! lines {
    ($out:expr, $($fmt:literal $(, $arg:expr)*);+ $(;)?) => {{
        use std::fmt::Write;
        $( let _ = write!($out, concat!($fmt, "\r\n") $(, $arg)*); )+
    }};
}

fn server(s: &Snapshot, out: &mut String) {
    lines!(out,
        "# Server";
        "redis_version:{}", crate::REDIS_VERSION;
        "redis_git_sha1:00000000";
        "redis_git_dirty:0";
        "redis_build_id:{}", build_id();
        "redis_mode:standalone";
        "os:{}", s.os;
        "arch_bits:{}", usize::BITS;
        "monotonic_clock:POSIX clock_gettime";
        "multiplexing_api:io_uring";
        "atomicvar_api:c11-builtin";
        "gcc_version:0.0.0";
        "process_id:{}", s.pid;
        "process_supervised:{}", crate::util::daemon::supervised_name();
        "run_id:{}", s.run_id;
        "tcp_port:{}", s.tcp_port;
        "server_time_usec:{}", s.now_us;
        "uptime_in_seconds:{}", s.uptime_s;
        "uptime_in_days:{}", s.uptime_s / 86400;
        "hz:{}", s.hz;
        "configured_hz:{}", s.hz;
        "lru_clock:{}", s.lru_clock;
        "executable:{}", s.executable;
        "config_file:{}", s.config_file;
        "io_threads_active:0";
    );
    if let Some(ms) = s.persist.shutdown_in_milliseconds {
        lines!(out, "shutdown_in_milliseconds:{}", ms);
    }
}

fn clients(s: &Snapshot, out: &mut String) {
    let max_qbuf = s.shards.iter().map(|sh| sh.max_qbuf).max().unwrap_or(0);
    let blocked: usize = s.shards.iter().map(|sh| sh.blocked_clients).sum();
    lines!(out,
        "# Clients";
        "connected_clients:{}", s.connected_clients;
        "cluster_connections:0";
        "maxclients:{}", s.maxclients;
        "client_recent_max_input_buffer:{}", max_qbuf;
        "client_recent_max_output_buffer:0";
        "blocked_clients:{}", blocked;
        "tracking_clients:{}", s.tracking_clients;
        "clients_in_timeout_table:0";
    );
}

/// `used_memory` is the bytes allocated (what `maxmemory` is compared with; the server
/// counts its allocator, `util::mem`), `used_memory_rss` the resident set (/proc/self/statm),
/// `used_memory_peak` the peak resident set (VmHWM). The overhead is start-up memory plus
/// clients' buffers, the dataset the rest (Redis also counts its dict tables as overhead,
/// which redcell does not measure). The `allocator_*` fields are mimalloc's: allocated
/// bytes, committed bytes (its "active" pages), resident set.
/// The memory figures INFO memory and MEMORY STATS / DOCTOR derive from a snapshot.
pub(crate) struct MemoryFigures {
    pub used: u64,
    pub peak: u64,
    pub startup: u64,
    pub clients: u64,
    pub overhead: u64,
    pub dataset: u64,
    pub dataset_perc: f64,
    pub peak_perc: f64,
    /// mimalloc's committed bytes and the resident set it accounts for.
    pub active: u64,
    pub resident: u64,
    pub rss: u64,
    pub scripts: u64,
    pub functions: u64,
    pub keys: u64,
}

impl MemoryFigures {
    pub fn of(s: &Snapshot) -> MemoryFigures {
        let peak_perc = if s.peak_rss == 0 {
            0.0
        } else {
            s.used as f64 * 100.0 / s.peak_rss as f64
        };
        let clients: u64 = s.shards.iter().map(|sh| sh.client_buffers as u64).sum();
        let overhead = (s.startup + clients).min(s.used);
        let dataset = s.used - overhead;
        let net = s.used.saturating_sub(s.startup);
        let dataset_perc = if net == 0 {
            0.0
        } else {
            dataset as f64 * 100.0 / net as f64
        };
        let active = s.allocator.committed.max(s.used);
        let keys = s
            .shards
            .iter()
            .flat_map(|sh| sh.dbs.iter().map(|d| d.0 as u64))
            .sum();
        MemoryFigures {
            used: s.used,
            peak: s.peak_rss,
            startup: s.startup,
            clients,
            overhead,
            dataset,
            dataset_perc,
            peak_perc,
            active,
            resident: s.allocator.rss.max(active),
            rss: s.rss,
            scripts: s.scripts.1 as u64,
            functions: s.functions.2 as u64,
            keys,
        }
    }
}

/// `a / b`, 0 when `b` is 0.
pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn memory(s: &Snapshot, out: &mut String) {
    let MemoryFigures {
        peak_perc,
        clients,
        overhead,
        dataset,
        dataset_perc,
        active,
        resident,
        ..
    } = MemoryFigures::of(s);
    let vm_eval: u64 = s.shards.iter().map(|sh| sh.lua_vm[0] as u64).sum();
    let vm_functions: u64 = s.shards.iter().map(|sh| sh.lua_vm[1] as u64).sum();
    let scripts_mem = s.scripts.1 as u64 + s.functions.2 as u64;
    lines!(out,
        "# Memory";
        "used_memory:{}", s.used;
        "used_memory_human:{}", bytes_to_human(s.used);
        "used_memory_rss:{}", s.rss;
        "used_memory_rss_human:{}", bytes_to_human(s.rss);
        "used_memory_peak:{}", s.peak_rss;
        "used_memory_peak_human:{}", bytes_to_human(s.peak_rss);
        "used_memory_peak_perc:{:.2}%", peak_perc;
        "used_memory_overhead:{}", overhead;
        "used_memory_startup:{}", s.startup;
        "used_memory_dataset:{}", dataset;
        "used_memory_dataset_perc:{:.2}%", dataset_perc;
        "allocator_allocated:{}", s.used;
        "allocator_active:{}", active;
        "allocator_resident:{}", resident;
        "total_system_memory:{}", s.total_system_memory;
        "total_system_memory_human:{}", bytes_to_human(s.total_system_memory);
        "used_memory_lua:{}", vm_eval;
        "used_memory_vm_eval:{}", vm_eval;
        "used_memory_lua_human:{}", bytes_to_human(vm_eval);
        "used_memory_scripts_eval:{}", s.scripts.1;
        "number_of_cached_scripts:{}", s.scripts.0;
        "number_of_functions:{}", s.functions.1;
        "number_of_libraries:{}", s.functions.0;
        "used_memory_vm_functions:{}", vm_functions;
        "used_memory_vm_total:{}", vm_eval + vm_functions;
        "used_memory_vm_total_human:{}", bytes_to_human(vm_eval + vm_functions);
        "used_memory_functions:{}", s.functions.2;
        "used_memory_scripts:{}", scripts_mem;
        "used_memory_scripts_human:{}", bytes_to_human(scripts_mem);
        "maxmemory:{}", s.maxmemory;
        "maxmemory_human:{}", bytes_to_human(s.maxmemory.max(0) as u64);
        "maxmemory_policy:{}", s.maxmemory_policy;
        "allocator_frag_ratio:{:.2}", ratio(active, s.used);
        "allocator_frag_bytes:{}", active - s.used;
        "allocator_rss_ratio:{:.2}", ratio(resident, active);
        "allocator_rss_bytes:{}", resident - active;
        "rss_overhead_ratio:{:.2}", ratio(s.rss, resident);
        "rss_overhead_bytes:{}", s.rss as i64 - resident as i64;
        "mem_fragmentation_ratio:{:.2}", ratio(s.rss, s.used);
        "mem_fragmentation_bytes:{}", s.rss as i64 - s.used as i64;
        "mem_not_counted_for_evict:0";
        "mem_replication_backlog:0";
        "mem_total_replication_buffers:0";
        "mem_clients_slaves:0";
        "mem_clients_normal:{}", clients;
        "mem_cluster_links:0";
        "mem_aof_buffer:0";
        "mem_allocator:mimalloc";
        "active_defrag_running:0";
        "lazyfree_pending_objects:0";
        "lazyfreed_objects:0";
    );
}

/// redcell has no persistence: nothing is ever loaded or saved.
fn persistence(s: &Snapshot, out: &mut String) {
    let p = &s.persist;
    lines!(out,
        "# Persistence";
        "loading:{}", u8::from(p.loading);
        "async_loading:0";
        "current_cow_peak:0";
        "current_cow_size:0";
        "current_cow_size_age:0";
        "current_fork_perc:0.00";
        "current_save_keys_processed:{}", p.snapshot_keys;
        "current_save_keys_total:{}", p.snapshot_keys_total;
        "rdb_changes_since_last_save:{}", p.changes_since_last_save;
        "rdb_bgsave_in_progress:{}", u8::from(p.bgsave_in_progress);
        "rdb_last_save_time:{}", p.last_save_time;
        "rdb_last_bgsave_status:{}", if p.last_bgsave_ok { "ok" } else { "err" };
        "rdb_last_bgsave_time_sec:{}", p.last_bgsave_time_sec;
        "rdb_current_bgsave_time_sec:{}", p.current_bgsave_time_sec;
        "rdb_saves:{}", p.saves;
        "rdb_last_cow_size:0";
        "rdb_last_load_keys_expired:{}", p.last_load_keys_expired;
        "rdb_last_load_keys_loaded:{}", p.last_load_keys_loaded;
        "aof_enabled:{}", u8::from(p.aof.enabled);
        "aof_rewrite_in_progress:{}", u8::from(p.aof.rewrite_in_progress);
        "aof_rewrite_scheduled:{}", u8::from(p.aof.rewrite_scheduled);
        "aof_last_rewrite_time_sec:{}", p.aof.last_rewrite_time_sec;
        "aof_current_rewrite_time_sec:{}", p.aof.current_rewrite_time_sec;
        "aof_last_bgrewrite_status:{}", if p.aof.last_rewrite_ok { "ok" } else { "err" };
        "aof_rewrites:{}", p.aof.rewrites;
        "aof_rewrites_consecutive_failures:0";
        "aof_last_write_status:{}", if p.aof.last_write_ok { "ok" } else { "err" };
        "aof_last_cow_size:0";
        "module_fork_in_progress:0";
        "module_fork_last_cow_size:0";
    );
    if p.aof.enabled {
        lines!(out,
            "aof_current_size:{}", p.aof.current_size;
            "aof_base_size:{}", p.aof.base_size;
            "aof_pending_rewrite:{}", u8::from(p.aof.rewrite_scheduled);
            "aof_buffer_length:0";
            "aof_pending_bio_fsync:0";
            "aof_delayed_fsync:0";
        );
    }
    if p.loading {
        lines!(out,
            "loading_start_time:{}", p.loading_start_time;
            "loading_total_bytes:{}", p.loading_total_bytes;
            "loading_rdb_used_mem:0";
            "loading_loaded_bytes:{}", p.loading_loaded_bytes;
            "loading_loaded_perc:{:.2}", p.loading_loaded_perc;
            "loading_eta_seconds:{}", p.loading_eta_seconds;
        );
    }
}

/// Counters summed over shards. `instantaneous_*` are 0: redcell does not sample rates.
/// `expired_stale_perc` is the mean of the shards' running estimates.
fn stats(s: &Snapshot, out: &mut String) {
    let stale_perc = if s.shards.is_empty() {
        0.0
    } else {
        s.shards
            .iter()
            .map(|sh| sh.stats.expired_stale_perc)
            .sum::<f64>()
            / s.shards.len() as f64
    };
    lines!(out,
        "# Stats";
        "total_connections_received:{}", s.sum(|sh| sh.stats.connections_received);
        "total_commands_processed:{}", s.sum(|sh| sh.stats.commands);
        "instantaneous_ops_per_sec:0";
        "total_net_input_bytes:{}", s.sum(|sh| sh.stats.net_input_bytes);
        "total_net_output_bytes:{}", s.sum(|sh| sh.stats.net_output_bytes);
        "total_net_repl_input_bytes:0";
        "total_net_repl_output_bytes:0";
        "instantaneous_input_kbps:0.00";
        "instantaneous_output_kbps:0.00";
        "instantaneous_input_repl_kbps:0.00";
        "instantaneous_output_repl_kbps:0.00";
        "rejected_connections:{}", s.sum(|sh| sh.stats.rejected_connections);
        "sync_full:{}", s.repl.sync_full;
        "sync_partial_ok:{}", s.repl.sync_partial_ok;
        "sync_partial_err:{}", s.repl.sync_partial_err;
        "expired_keys:{}", s.sum(|sh| sh.keyspace.expired_keys);
        "expired_stale_perc:{:.2}", stale_perc * 100.0;
        "expired_time_cap_reached_count:{}", s.sum(|sh| sh.stats.expired_time_cap_reached);
        "expire_cycle_cpu_milliseconds:{}", s.sum(|sh| sh.stats.expire_cycle_us) / 1000;
        "evicted_keys:{}", s.sum(|sh| sh.keyspace.evicted_keys);
        "evicted_clients:0";
        "total_eviction_exceeded_time:0";
        "current_eviction_exceeded_time:0";
        "keyspace_hits:{}", s.sum(|sh| sh.keyspace.hits);
        "keyspace_misses:{}", s.sum(|sh| sh.keyspace.misses);
        "pubsub_channels:{}", s.pubsub[0];
        "pubsub_patterns:{}", s.pubsub[1];
        "pubsubshard_channels:{}", s.pubsub[2];
        "latest_fork_usec:0";
        "total_forks:0";
        "migrate_cached_sockets:0";
        "slave_expires_tracked_keys:0";
        "active_defrag_hits:0";
        "active_defrag_misses:0";
        "active_defrag_key_hits:0";
        "active_defrag_key_misses:0";
        "total_active_defrag_time:0";
        "current_active_defrag_time:0";
        "tracking_total_keys:{}", s.sum(|sh| sh.tracking[0] as u64);
        "tracking_total_items:{}", s.sum(|sh| sh.tracking[1] as u64);
        "tracking_total_prefixes:{}", s.tracking_prefixes;
        "unexpected_error_replies:{}", s.unexpected_error_replies;
        "total_error_replies:{}", s.errors().values().sum::<u64>();
        "dump_payload_sanitizations:{}", s.sum(|sh| sh.stats.dump_payload_sanitizations);
        "total_reads_processed:{}", s.sum(|sh| sh.stats.reads_processed);
        "total_writes_processed:{}", s.sum(|sh| sh.stats.writes_processed);
        "io_threaded_reads_processed:0";
        "io_threaded_writes_processed:0";
        "reply_buffer_shrinks:0";
        "reply_buffer_expands:0";
    );
}

/// One line per error code replied so far, in name order (Redis keeps them in a rax).
fn errorstats(s: &Snapshot, out: &mut String) {
    out.push_str("# Errorstats\r\n");
    for (code, count) in s.errors() {
        lines!(out, "errorstat_{}:count={}", code, count);
    }
}

fn replication(s: &Snapshot, out: &mut String) {
    if s.replica.master.is_some() {
        crate::repl::render_info(&s.replica, &s.repl, out);
        return;
    }
    let r = &s.repl;
    lines!(out,
        "# Replication";
        "role:master";
        "connected_slaves:{}", r.replicas.len();
    );
    for (i, (ip, port, state, offset, lag)) in r.replicas.iter().enumerate() {
        lines!(out,
            "slave{}:ip={},port={},state={},offset={},lag={}", i, ip, port, state, offset, lag;
        );
    }
    lines!(out,
        "master_failover_state:{}", s.replica.failover_state;
        "master_replid:{}", r.replid;
        "master_replid2:{}", r.replid2;
        "master_repl_offset:{}", r.offset;
        "second_repl_offset:{}", r.second_offset;
        "repl_backlog_active:{}", u8::from(r.backlog_active);
        "repl_backlog_size:{}", r.backlog_size;
        "repl_backlog_first_byte_offset:{}", r.first_byte_offset;
        "repl_backlog_histlen:{}", r.histlen;
    );
}

fn cpu(s: &Snapshot, out: &mut String) {
    let [sys, user, sys_children, user_children] = s.cpu;
    lines!(out,
        "# CPU";
        "used_cpu_sys:{}.{:06}", sys.0, sys.1;
        "used_cpu_user:{}.{:06}", user.0, user.1;
        "used_cpu_sys_children:{}.{:06}", sys_children.0, sys_children.1;
        "used_cpu_user_children:{}.{:06}", user_children.0, user_children.1;
        "used_cpu_sys_main_thread:{}.{:06}", s.thread_cpu[0].0, s.thread_cpu[0].1;
        "used_cpu_user_main_thread:{}.{:06}", s.thread_cpu[1].0, s.thread_cpu[1].1;
    );
}

/// Per command with samples, the latency at each `latency-tracking-info-percentiles`
/// percentile, in µs with three decimals.
fn latencystats(s: &Snapshot, out: &mut String) {
    use std::fmt::Write;
    out.push_str("# Latencystats\r\n");
    let t = table();
    for (i, h) in s.histograms.iter().enumerate() {
        let Some(h) = h.as_ref().filter(|h| h.total > 0) else {
            continue;
        };
        let _ = write!(out, "latency_percentiles_usec_{}:", t.full_names[i]);
        for (n, p) in s.percentiles.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "p{}={:.3}",
                crate::util::num::format_f64_trimmed(*p),
                h.value_at(*p) as f64 / 1000.0
            );
        }
        out.push_str("\r\n");
    }
}

fn modules(_s: &Snapshot, out: &mut String) {
    out.push_str("# Modules\r\n");
}

fn commandstats(s: &Snapshot, out: &mut String) {
    out.push_str("# Commandstats\r\n");
    let t = table();
    for (i, c) in s.command_stats().iter().enumerate() {
        if c.calls == 0 && c.failed == 0 && c.rejected == 0 {
            continue;
        }
        let per_call = if c.calls == 0 {
            0.0
        } else {
            c.nsec as f64 / 1000.0 / c.calls as f64
        };
        lines!(out,
            "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}",
            t.full_names[i], c.calls, c.nsec / 1000, per_call, c.rejected, c.failed;
        );
    }
}

fn cluster(s: &Snapshot, out: &mut String) {
    lines!(out, "# Cluster"; "cluster_enabled:{}", u8::from(s.cluster_enabled));
}

/// One line per database holding keys. `avg_ttl` is 0: redcell does not estimate it (Redis
/// does, while expiring keys).
fn keyspace(s: &Snapshot, out: &mut String) {
    out.push_str("# Keyspace\r\n");
    let databases = s.shards.iter().map(|sh| sh.dbs.len()).max().unwrap_or(0);
    for db in 0..databases {
        let at = |sh: &ShardSnapshot| sh.dbs.get(db).copied().unwrap_or_default();
        let keys = s.sum(|sh| at(sh).0 as u64);
        if keys > 0 {
            lines!(
                out,
                "db{}:keys={},expires={},avg_ttl=0",
                db,
                keys,
                s.sum(|sh| at(sh).1 as u64)
            );
        }
    }
}

fn redcell(s: &Snapshot, out: &mut String) {
    lines!(out,
        "# Redcell";
        "redcell_version:{}", crate::REDCELL_VERSION;
        "shards:{}", s.shards.len();
        "shard_clients:{}", s.clients_per_shard.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    );
}

/// `redis_build_id`: a hash of the version, so that it changes between builds of releases.
fn build_id() -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in crate::REDCELL_VERSION.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:x}")
}

fn total_system_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    (pages.max(0) as u64) * crate::util::mem::page_size()
}

/// `sysname release machine`, as Redis's `os` field.
fn os_name() -> String {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return String::new();
        }
        let field = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        format!(
            "{} {} {}",
            field(&u.sysname),
            field(&u.release),
            field(&u.machine)
        )
    }
}

/// System and user CPU time of the process and of its waited-for children.
fn cpu_times() -> [(i64, i64); 4] {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut r) };
        r
    };
    let (me, children) = (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN));
    let t = |tv: libc::timeval| (tv.tv_sec, tv.tv_usec);
    [
        t(me.ru_stime),
        t(me.ru_utime),
        t(children.ru_stime),
        t(children.ru_utime),
    ]
}

/// System and user CPU time of the calling thread.
fn thread_cpu_times() -> [(i64, i64); 2] {
    // SAFETY: getrusage fills the zeroed struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    [
        (r.ru_stime.tv_sec, r.ru_stime.tv_usec),
        (r.ru_utime.tv_sec, r.ru_utime.tv_usec),
    ]
}

/// Gathers the process-wide values and every shard's counters.
pub(crate) async fn snapshot(c: &mut Conn, sections: &Sections) -> Snapshot {
    // Read before this command allocates its own figures (the shards' answers, histograms,
    // strings: tens of KiB), which `maxmemory` eviction never sees: INFO would report a
    // server that has evicted down to its limit as above it.
    let used = match crate::util::mem::used() {
        0 => crate::util::mem::rss_bytes(),
        n => n as u64,
    };
    let data = each_shard_data(c, |d| {
        let mut keyspace = KeyspaceStats::default();
        for ks in d.dbs_ref() {
            keyspace.expired_keys += ks.stats.expired_keys;
            keyspace.evicted_keys += ks.stats.evicted_keys;
            keyspace.hits += ks.stats.hits;
            keyspace.misses += ks.stats.misses;
        }
        let dbs = d
            .dbs_ref()
            .iter()
            .map(|ks| (ks.len(), ks.volatile_len()))
            .collect::<Vec<_>>();
        let tracking = [d.tracking.len(), d.tracking.items()];
        (dbs, keyspace, tracking)
    })
    .await;
    let mut shards = c
        .shard
        .call_all(|s| ShardSnapshot {
            stats: s.stats.borrow().counters(),
            max_qbuf: s
                .clients
                .borrow()
                .values()
                .map(|m| m.qbuf.get())
                .max()
                .unwrap_or(0),
            client_buffers: s.clients.borrow().values().map(|m| m.qbuf.get()).sum(),
            blocked_clients: s.blocking.clients.get(),
            lua_vm: crate::cmd::lua::vm_memory(),
            ..Default::default()
        })
        .await;
    for (shard, (dbs, keyspace, tracking)) in shards.iter_mut().zip(data) {
        shard.dbs = dbs;
        shard.keyspace = keyspace;
        shard.tracking = tracking;
    }
    let control = ShardSnapshot {
        stats: c
            .shard
            .call(c.shard.nshards, |s| s.stats.borrow().counters())
            .await,
        ..Default::default()
    };
    let persist = crate::persist::info(&c.shard).await;
    let repl = crate::repl::master::summary(&c.shard).await;
    let replica = crate::repl::info(&c.shard).await;
    // Merging every command's histogram allocates: only when latencystats is shown (INFO
    // memory must not count its own scratch).
    let histograms = if sections.wants("latencystats") {
        super::observe::merged_histograms(c).await
    } else {
        Vec::new()
    };
    let shared = &c.shard.shared;
    // Only walked when some core has subscriptions.
    let pubsub = if shared.pubsub_counts.any(false) || shared.pubsub_counts.any(true) {
        crate::cmd::pubsub::info_counts(&c.shard).await
    } else {
        [0; 3]
    };
    let (maxclients, maxmemory, policy, hz) = {
        let config = shared.config();
        (
            config.get_i64("maxclients"),
            config.get_i64("maxmemory"),
            config.get("maxmemory-policy").to_string(),
            config.get_i64("hz"),
        )
    };
    let percentiles = shared.config().percentiles();
    let now = now_us();
    Snapshot {
        startup: shared
            .startup_memory
            .load(std::sync::atomic::Ordering::Relaxed),
        allocator: crate::util::mem::process_info(),
        scripts: crate::cmd::scripting::cache_stats(),
        functions: crate::cmd::function::library_stats(),
        thread_cpu: thread_cpu_times(),
        percentiles,
        histograms,
        pid: std::process::id(),
        os: os_name(),
        run_id: shared.run_id.clone(),
        repl,
        replica,
        control,
        // As Redis: the TLS port when there is no plain one.
        tcp_port: if shared.tcp_port != 0 {
            shared.tcp_port
        } else {
            shared.tls_port
        },
        now_us: now,
        uptime_s: shared.started.elapsed().as_secs() as i64,
        hz,
        lru_clock: crate::db::lru_clock(now / 1000),
        executable: shared.executable.clone(),
        config_file: shared.config_file.clone(),
        unexpected_error_replies: shared
            .unexpected_error_replies
            .load(std::sync::atomic::Ordering::Relaxed),
        connected_clients: shared
            .connected_clients
            .load(std::sync::atomic::Ordering::Relaxed),
        clients_per_shard: shared
            .clients_per_shard
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
            .collect(),
        tracking_clients: shared
            .tracking_clients
            .load(std::sync::atomic::Ordering::Relaxed),
        tracking_prefixes: c.shard.tracking.prefix_count(),
        cluster_enabled: c.shard.slot_map.borrow().enabled,
        maxclients,
        used,
        rss: crate::util::mem::rss_bytes(),
        peak_rss: crate::util::mem::peak_rss_bytes(),
        total_system_memory: total_system_memory(),
        maxmemory,
        maxmemory_policy: policy,
        persist,
        cpu: cpu_times(),
        shards,
        pubsub,
    }
}

/// INFO [section ...]: a verbatim string in RESP3, a bulk string in RESP2.
pub fn info<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let sections = Sections::parse(a.rest(1));
        let snap = snapshot(c, &sections).await;
        let text = render(&snap, &sections);
        c.out.verbatim(text.as_bytes());
        let result: CmdResult = Ok(());
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut shard = ShardSnapshot {
            dbs: vec![(3, 1), (0, 0), (2, 0)],
            ..Default::default()
        };
        shard.stats.commands = 5;
        shard.stats.cmd = vec![CommandStats::default(); table().len()];
        let get = table().lookup(b"get").unwrap();
        shard.stats.cmd[get] = CommandStats {
            calls: 2,
            nsec: 5_000,
            failed: 0,
            rejected: 1,
        };
        shard.keyspace.hits = 4;
        shard.stats.errors.insert("WRONGTYPE".into(), 1);
        shard.stats.errors.insert("ERR".into(), 2);
        shard.stats.dirty = 7;
        Snapshot {
            hz: 10,
            tcp_port: 6379,
            shards: vec![shard.clone(), shard],
            persist: crate::persist::Info {
                changes_since_last_save: 14,
                last_bgsave_ok: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn parse(words: &[&str]) -> Sections {
        Sections::parse(words.iter().map(|w| w.as_bytes()))
    }

    #[test]
    fn default_sections_in_redis_order() {
        let text = render(&sample(), &parse(&[]));
        let headers: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
        assert_eq!(
            headers,
            [
                "# Server",
                "# Clients",
                "# Memory",
                "# Persistence",
                "# Stats",
                "# Replication",
                "# CPU",
                "# Modules",
                "# Errorstats",
                "# Cluster",
                "# Keyspace",
                "# Redcell"
            ]
        );
        assert!(text.contains("\r\n\r\n# Clients\r\n"));
        assert!(text.ends_with("\r\n"));
        assert!(text.contains("redis_version:7.0.15\r\n"));
        assert!(text.contains("total_commands_processed:10\r\n"));
        assert!(text.contains("keyspace_hits:8\r\n"));
        assert!(text.contains("total_error_replies:6\r\n"));
        assert!(text.contains("rdb_changes_since_last_save:14\r\n"));
        assert!(text
            .contains("# Errorstats\r\nerrorstat_ERR:count=4\r\nerrorstat_WRONGTYPE:count=2\r\n"));
        assert!(text.contains("db0:keys=6,expires=2,avg_ttl=0\r\n"));
        assert!(!text.contains("db1:"), "empty databases are not listed");
        assert!(text.contains("db2:keys=4,expires=0,avg_ttl=0\r\n"));
    }

    #[test]
    fn chosen_sections_only() {
        let text = render(&sample(), &parse(&["CommandStats", "cluster"]));
        assert_eq!(
            text,
            "# Commandstats\r\ncmdstat_get:calls=4,usec=10,usec_per_call=2.50,rejected_calls=2,failed_calls=0\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n"
        );
        assert_eq!(render(&sample(), &parse(&["nosuch"])), "");
        let all = render(&sample(), &parse(&["all"]));
        assert!(all.contains("# Commandstats\r\n"));
        assert_eq!(all.matches("# Modules").count(), 1);
        let both = render(&sample(), &parse(&["modules", "module_list"]));
        assert_eq!(both, "# Modules\r\n");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(bytes_to_human(1023), "1023B");
        assert_eq!(bytes_to_human(1024), "1.00K");
        assert_eq!(bytes_to_human(1212792), "1.16M");
        assert_eq!(bytes_to_human(25276502016), "23.54G");
        assert_eq!(bytes_to_human(0), "0B");
    }
}
