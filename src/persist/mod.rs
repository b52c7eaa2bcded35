//! Persistence, run by the control executor: point-in-time snapshots of every shard written
//! as `dump.rdb` (SAVE, BGSAVE, save points, SHUTDOWN, FLUSHALL), loading at start-up
//! (`load`), and the state INFO persistence reports.
//!
//! A snapshot starts with one cut over all shards: the control core borrows every shard's
//! data at once (`shard::tx`), so no command runs anywhere for that instant, starts a
//! snapshot on each database (`db::snapshot`) and gives the data back. Each shard then
//! serializes its slot tables in chunks the control core pulls, one at a time per shard, so
//! the serializing is spread between client work and paced by the disk (`rdb_file`).

mod aof;
pub use aof::AofInfo;
pub mod load;
mod rdb_file;
pub use rdb_file::StreamSink;
mod shutdown;
pub use shutdown::{abort as abort_shutdown, shutdown, Flags as ShutdownFlags};

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::db::{EvictionInfo, SnapshotFormat};
use crate::error::Error;
use crate::shard::{DiskGate, Shard};
use crate::util::time::now_ms;

/// Redis's `CONFIG_BGSAVE_RETRY_DELAY`: after a failed save, a save point waits this long.
const BGSAVE_RETRY_DELAY_S: i64 = 5;

/// Why a save was started (for the log and the reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveKind {
    /// SAVE, SHUTDOWN, FLUSHALL, DEBUG RELOAD: the caller waits for it.
    Foreground,
    /// BGSAVE or a save point: runs on its own.
    Background,
}

/// What INFO persistence shows.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub loading: bool,
    pub loading_start_time: i64,
    pub loading_total_bytes: u64,
    pub loading_loaded_bytes: u64,
    pub loading_loaded_perc: f64,
    pub loading_eta_seconds: i64,
    pub changes_since_last_save: u64,
    pub bgsave_in_progress: bool,
    pub last_save_time: i64,
    pub last_bgsave_ok: bool,
    pub last_bgsave_time_sec: i64,
    pub current_bgsave_time_sec: i64,
    pub saves: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    pub aof: aof::AofInfo,
    /// Keys serialized by the running snapshot, of how many.
    pub snapshot_keys: u64,
    pub snapshot_keys_total: u64,
    /// Milliseconds left of a shutdown's wait for replicas (INFO server).
    pub shutdown_in_milliseconds: Option<i64>,
}

/// The control core's persistence state.
pub struct Persist {
    shard: Rc<Shard>,
    rdb: RefCell<RdbState>,
    /// What the shards were last told about failed saves (`DiskGate::save_failed`).
    told_save_failed: Cell<bool>,
    /// BGSAVE SCHEDULE (or a BGSAVE refused by a running rewrite) waits for its turn.
    bgsave_scheduled: Cell<bool>,
    /// Between a rewrite's task and the AOF writer task.
    aof_mail: aof::WriterMailbox,
    rewrite_started: RefCell<Option<Instant>>,
    replay: load::Replay,
    /// Snapshot cuts taken so far: BGSAVE and BGREWRITEAOF answer once theirs is taken, so
    /// every write the client sends after the reply is after the snapshot, as after a fork.
    cuts: Cell<u64>,
    /// Told the stamp of the next save's cut the moment it is taken, before any later write
    /// reaches the replication stream (a disk-based full sync's replicas start there).
    on_next_cut: RefCell<Option<CutHook>>,
    /// The shutdown under way (`shutdown`), if any.
    shutdown: RefCell<Option<Rc<shutdown::Running>>>,
}

/// Told a cut's stamp (`save_for_sync`).
pub type CutHook = Box<dyn FnOnce(u64)>;

#[derive(Default)]
struct RdbState {
    in_progress: bool,
    started: Option<Instant>,
    /// Unix seconds of the last successful save (start time before any).
    last_save_unix: i64,
    last_ok: bool,
    last_time_sec: i64,
    /// Unix seconds of the last attempt, for the retry delay after a failure.
    last_try_unix: i64,
    /// The dirty count (summed over shards) the last successful save included.
    dirty_at_last_save: u64,
    saves: u64,
    keys_loaded: u64,
    keys_expired: u64,
    snapshot_keys: u64,
    snapshot_keys_total: u64,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Persist>>> = const { RefCell::new(None) };
}

impl Persist {
    /// Sets up persistence on the control executor `shard` and starts the save-point cron.
    /// `replay` runs an AOF's commands at start-up.
    pub fn start(shard: Rc<Shard>, replay: load::Replay) -> Rc<Persist> {
        let p = Rc::new(Persist {
            rdb: RefCell::new(RdbState {
                last_save_unix: shard.shared.started_unix,
                last_ok: true,
                last_time_sec: -1,
                ..Default::default()
            }),
            shard,
            told_save_failed: Cell::new(false),
            bgsave_scheduled: Cell::new(false),
            aof_mail: Default::default(),
            rewrite_started: RefCell::new(None),
            replay,
            cuts: Cell::new(0),
            on_next_cut: RefCell::new(None),
            shutdown: RefCell::new(None),
        });
        p.set_aof_info(|i| {
            i.last_rewrite_ok = true;
            i.last_write_ok = true;
            i.last_rewrite_time_sec = -1;
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(p.clone()));
        glommio::spawn_local(p.clone().cron()).detach();
        p
    }

    /// Loads the data (the AOF when `appendonly` is yes, else `dbfilename` if it exists;
    /// the shards answer `-LOADING` meanwhile), opens the AOF, then opens the shards to
    /// commands. A file that cannot be loaded ends the process, as in Redis.
    pub async fn load_at_start(self: &Rc<Self>) -> load::ReplAux {
        let mut repl = load::ReplAux::default();
        let (appendonly, names) = {
            let c = self.shard.shared.config();
            (c.get_bool("appendonly"), aof::Names::from_config(&c))
        };
        let rdb_path = load::rdb_path(&self.shard.shared.config());
        let mut writer = None;
        if appendonly {
            writer = Some(self.load_aof_at_start(names).await);
        } else if let Some(path) = rdb_path {
            let drop_expired = !crate::repl::is_replica();
            match load::load_rdb(&self.shard, &path, self.replay, drop_expired, false).await {
                Ok(l) => {
                    let mut r = self.rdb.borrow_mut();
                    r.keys_loaded = l.keys;
                    r.keys_expired = l.expired;
                    repl = l.repl;
                }
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            }
        }
        // Recording starts before any client can write: a write the AOF never saw would be
        // lost at the next restart.
        let mut told_always = None;
        if writer.is_some() {
            let always = aof::Fsync::from_config(&self.shard.shared.config()) == aof::Fsync::Always;
            aof::set_recording(&self.shard, true, always).await;
            let durable = if always { 0 } else { u64::MAX };
            self.shard
                .shared
                .aof_durable
                .store(durable, Ordering::Release);
            told_always = Some(always);
        }
        glommio::spawn_local(self.clone().aof_task(writer, told_always)).detach();
        for to in 0..=self.shard.nshards {
            self.shard
                .call(to, |s| {
                    let gate = s.disk_gate.get();
                    s.disk_gate.set(DiskGate {
                        loading: false,
                        ..gate
                    });
                })
                .await;
        }
        self.shard
            .shared
            .load_progress
            .loading
            .store(false, Ordering::Relaxed);
        repl
    }

    /// `appendonly yes` at start-up: loads what the manifest lists (nothing without one:
    /// Redis then starts empty, whatever dump.rdb holds), makes a base if there is none,
    /// and opens the AOF for writing. Any failure ends the process.
    async fn load_aof_at_start(&self, names: aof::Names) -> aof::Writer {
        let fail = |e: String| -> ! {
            eprintln!("{e}");
            std::process::exit(1)
        };
        let mut manifest = match crate::aof::manifest::read_manifest(&names.dir, &names.filename) {
            Ok(m) => m.unwrap_or_default(),
            Err(e) => fail(e.to_string()),
        };
        if !manifest.is_empty() {
            // The control executor runs the replayed commands: let it.
            let gate = self.shard.disk_gate.get();
            self.shard.disk_gate.set(DiskGate {
                loading: false,
                ..gate
            });
            match load::load_aof(&self.shard, &names, &manifest, self.replay).await {
                Ok((keys, _commands)) => self.rdb.borrow_mut().keys_loaded = keys,
                Err(e) => fail(e),
            }
        }
        if manifest.base.is_none() && manifest.incr.is_empty() {
            let preamble = self.shard.shared.config().get_bool("aof-use-rdb-preamble");
            if let Err(e) = aof::write_empty_base(&names, &mut manifest, preamble) {
                fail(e);
            }
        }
        aof::Writer::open(names, manifest).unwrap_or_else(|e| fail(e))
    }

    /// The AOF's INFO fields as of now (the running rewrite's age).
    fn aof_info_now(&self) -> aof::AofInfo {
        let mut info = self.aof_mail.info.get();
        info.current_rewrite_time_sec = self
            .rewrite_started
            .borrow()
            .map_or(-1, |t| t.elapsed().as_secs() as i64);
        info
    }

    /// Has the AOF writer append and sync everything recorded so far (before an exit).
    async fn flush_aof(&self) {
        if !self.aof_mail.info.get().enabled {
            return;
        }
        let upto = crate::shard::journal::now_stamp();
        self.aof_mail.final_sync.set(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.aof_mail.written.get() < upto && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until a snapshot cut after `before` cuts was taken, or nothing snapshots any
    /// more (the job failed first).
    async fn wait_for_cut(&self, before: u64) {
        while self.cuts.get() == before && self.snapshot_busy() {
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    /// Whether a snapshot runs (a save or an AOF rewrite: one at a time).
    fn snapshot_busy(&self) -> bool {
        self.rdb.borrow().in_progress || self.aof_mail.info.get().rewrite_in_progress
    }

    /// Tells the shards whether writes must be refused after a failed background save
    /// (Redis's `writeCommandsDeniedByDiskError`), when that changed.
    async fn update_save_gate(&self) {
        let failed = {
            let config = self.shard.shared.config();
            config.get_bool("stop-writes-on-bgsave-error")
                && !save_points(config.get("save")).is_empty()
                && !self.rdb.borrow().last_ok
        };
        if failed == self.told_save_failed.get() {
            return;
        }
        self.told_save_failed.set(failed);
        // The control executor too: a replica's applier checks it there.
        for to in 0..=self.shard.nshards {
            self.shard
                .call(to, move |s| {
                    let gate = s.disk_gate.get();
                    s.disk_gate.set(DiskGate {
                        save_failed: failed,
                        ..gate
                    });
                })
                .await;
        }
    }

    /// The control executor's persistence (only there).
    fn current() -> Option<Rc<Persist>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Changes summed over every shard since the process started.
    async fn dirty_total(&self) -> u64 {
        self.shard.sum_stats(|s| s.dirty).await
    }

    /// Save points, ten times a second as Redis's `serverCron`: a background save once any
    /// `save <seconds> <changes>` pair is met.
    async fn cron(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            self.on_signal();
            self.update_save_gate().await;
            let points = save_points(self.shard.shared.config().get("save"));
            let loading = self
                .shard
                .shared
                .load_progress
                .loading
                .load(Ordering::Relaxed);
            if loading || self.snapshot_busy() {
                continue;
            }
            let info = self.aof_mail.info.get();
            if info.rewrite_scheduled {
                self.start_rewrite();
                continue;
            }
            if self.bgsave_scheduled.take() {
                let _ = self.clone().start_save(SaveKind::Background);
                continue;
            }
            if points.is_empty() {
                continue;
            }
            let dirty = self.dirty_total().await;
            let (changes, since_save, retry_ok) = {
                let r = self.rdb.borrow();
                let now = now_ms() / 1000;
                (
                    dirty.saturating_sub(r.dirty_at_last_save),
                    now - r.last_save_unix,
                    r.last_ok || now - r.last_try_unix > BGSAVE_RETRY_DELAY_S,
                )
            };
            let due = points
                .iter()
                .find(|&&(secs, n)| changes >= n && since_save > secs);
            if let (Some(&(secs, _)), true) = (due, retry_ok) {
                eprintln!("{changes} changes in {secs} seconds. Saving...");
                let _ = self.clone().start_save(SaveKind::Background);
            }
        }
    }

    /// Starts a save in a task of its own; `Err` if one is running already. The returned
    /// handle ends with the save's outcome.
    fn start_save(
        self: Rc<Self>,
        kind: SaveKind,
    ) -> Result<glommio::task::JoinHandle<Result<(), String>>, Error> {
        if self.aof_mail.info.get().rewrite_in_progress {
            return Err(Error::msg("Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."));
        }
        {
            let mut r = self.rdb.borrow_mut();
            if r.in_progress {
                return Err(Error::msg("Background save already in progress"));
            }
            r.in_progress = true;
            r.started = Some(Instant::now());
            r.last_try_unix = now_ms() / 1000;
            // Redis counts BGSAVEs and SAVE commands, not the saves of SHUTDOWN, FLUSHALL
            // or DEBUG RELOAD.
            if kind == SaveKind::Background {
                r.saves += 1;
            }
            r.snapshot_keys = 0;
            r.snapshot_keys_total = 0;
        }
        if kind == SaveKind::Background {
            eprintln!("Background saving started");
        }
        let task = glommio::spawn_local(async move {
            let result = self.save_rdb(kind).await;
            self.finish_save(kind, &result);
            self.update_save_gate().await;
            result.map(|_| ()).map_err(|e| e.to_string())
        })
        .detach();
        Ok(task)
    }

    /// A save the caller waits for (SAVE, SHUTDOWN, FLUSHALL, DEBUG RELOAD). A running AOF
    /// rewrite holds the snapshot: the save waits for it to end.
    async fn save_now(self: &Rc<Self>) -> Result<(), Error> {
        while self.aof_mail.info.get().rewrite_in_progress {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let task = self.clone().start_save(SaveKind::Foreground)?;
        match task.await {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::SaveFailed),
        }
    }

    /// Stops the running save, if any, and waits until it has ended (its file is removed).
    async fn stop_running_save(&self) {
        if !self.rdb.borrow().in_progress {
            return;
        }
        rdb_file::abort(&self.shard).await;
        while self.rdb.borrow().in_progress {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Writes a snapshot of every shard to `dbfilename` in the working directory.
    async fn save_rdb(&self, kind: SaveKind) -> Result<SaveOutcome, rdb_file::SaveError> {
        let mut cfg = rdb_file::FileConfig::from_config(&self.shard.shared.config());
        cfg.paced = kind == SaveKind::Background;
        let format = SnapshotFormat {
            compression: cfg.options.compression,
            eviction: cfg.format_eviction,
            now_ms: now_ms(),
        };
        let cut = rdb_file::cut(&self.shard, format, self.replay.libraries).await;
        if let Some(told) = self.on_next_cut.take() {
            told(cut.stamp);
        }
        self.cuts.set(self.cuts.get() + 1);
        self.rdb.borrow_mut().snapshot_keys_total =
            cut.counts.iter().flatten().map(|c| c.keys).sum();
        let target = rdb_file::Target::dump(&cfg);
        rdb_file::write(&self.shard, &cut, &cfg, &target, |keys| {
            let mut r = self.rdb.borrow_mut();
            r.snapshot_keys += keys;
        })
        .await?;
        Ok(SaveOutcome { dirty: cut.dirty })
    }

    fn finish_save(&self, kind: SaveKind, result: &Result<SaveOutcome, rdb_file::SaveError>) {
        let mut r = self.rdb.borrow_mut();
        r.in_progress = false;
        r.last_time_sec = r
            .started
            .take()
            .map_or(-1, |t| t.elapsed().as_secs() as i64);
        match result {
            Ok(outcome) => {
                r.last_ok = true;
                r.last_save_unix = now_ms() / 1000;
                r.dirty_at_last_save = outcome.dirty;
                match kind {
                    SaveKind::Foreground => eprintln!("DB saved on disk"),
                    SaveKind::Background => {
                        eprintln!("Background saving terminated with success")
                    }
                }
            }
            Err(rdb_file::SaveError::Cancelled) => {
                // Redis kills the child with SIGUSR1, which does not count as a failure.
                eprintln!("Background saving terminated by signal 10");
            }
            Err(e) => {
                eprintln!("{e}");
                // As Redis: only a failed background save makes writes stop.
                if kind == SaveKind::Background {
                    r.last_ok = false;
                    eprintln!("Background saving error");
                }
            }
        }
    }

    fn info(&self, dirty: u64) -> Info {
        let r = self.rdb.borrow();
        let loading = load::progress(&self.shard.shared);
        Info {
            changes_since_last_save: dirty.saturating_sub(r.dirty_at_last_save),
            bgsave_in_progress: r.in_progress,
            last_save_time: r.last_save_unix,
            last_bgsave_ok: r.last_ok,
            last_bgsave_time_sec: r.last_time_sec,
            current_bgsave_time_sec: r.started.map_or(-1, |t| t.elapsed().as_secs() as i64),
            saves: r.saves,
            last_load_keys_loaded: r.keys_loaded,
            last_load_keys_expired: r.keys_expired,
            aof: self.aof_info_now(),
            snapshot_keys: r.snapshot_keys,
            snapshot_keys_total: r.snapshot_keys_total,
            shutdown_in_milliseconds: self.shutdown_in_ms(),
            ..loading
        }
    }
}

struct SaveOutcome {
    /// The dirty count at the cut: what a successful save covers.
    dirty: u64,
}

/// Parses `save` ("3600 1 300 100"): (seconds, changes) pairs.
pub fn save_points(value: &str) -> Vec<(i64, u64)> {
    let nums: Vec<i64> = value
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    nums.chunks_exact(2)
        .map(|p| (p[0], p[1].max(0) as u64))
        .collect()
}

/// Which eviction information a policy makes the file carry per key.
pub fn eviction_info(policy: &str) -> EvictionInfo {
    match policy {
        "volatile-lru" | "allkeys-lru" => EvictionInfo::LruIdle,
        "volatile-lfu" | "allkeys-lfu" => EvictionInfo::LfuFreq,
        _ => EvictionInfo::None,
    }
}

/// Journal recording on at every executor, before a replication stream starts: every write
/// after this returns reaches the stream (see `aof::start_recording`).
pub async fn start_recording(shard: &Rc<Shard>) {
    aof::start_recording(shard).await
}

/// CONFIG SET `aof-disable-auto-gc no`: as Redis's `updateAofAutoGCEnabled`, the history
/// files an open AOF kept meanwhile are deleted (by the writer task, on its next pass).
pub async fn collect_aof_history(shard: &Rc<Shard>) {
    on_control(
        shard,
        |p| async move { p.aof_mail.collect_history.set(true) },
    )
    .await
}

/// Runs `f` with the control executor's persistence, from any executor.
async fn on_control<R, F, Fut>(shard: &Rc<Shard>, f: F) -> R
where
    R: Send + 'static,
    F: FnOnce(Rc<Persist>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    shard
        .call_async(shard.nshards, move |_| async move {
            let p = Persist::current().expect("persistence runs on the control executor");
            f(p).await
        })
        .await
}

/// A disk-based full sync's snapshot, on the control executor: a background save to
/// `dbfilename`, as Redis's (after a running save or rewrite ends). `on_cut` is told the
/// stamp of its cut the moment it is taken. Returns once the cut is taken, with a handle
/// that ends with the file's path; None if it cannot start.
pub async fn save_for_sync(
    shard: &Rc<Shard>,
    on_cut: CutHook,
) -> Option<glommio::task::JoinHandle<Result<PathBuf, String>>> {
    let p = Persist::current()?;
    while p.snapshot_busy() {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let before = p.cuts.get();
    *p.on_next_cut.borrow_mut() = Some(on_cut);
    let task = match p.clone().start_save(SaveKind::Background) {
        Ok(task) => task,
        Err(_) => {
            p.on_next_cut.take();
            return None;
        }
    };
    p.wait_for_cut(before).await;
    if p.cuts.get() == before {
        return None;
    }
    let path = PathBuf::from(shard.shared.config().get("dbfilename"));
    let done = glommio::spawn_local(async move {
        match task.await {
            Some(Ok(())) => Ok(path),
            Some(Err(e)) => Err(e),
            None => Err("the save was cancelled".into()),
        }
    })
    .detach();
    Some(done)
}

/// Whether a save or an AOF rewrite runs (Redis's `hasActiveChildProcess`), on the control
/// executor.
pub fn snapshot_busy() -> bool {
    Persist::current().is_some_and(|p| p.snapshot_busy())
}

/// A diskless full sync's snapshot, on the control executor: a cut, then the RDB streamed
/// to `sink` as it is serialized, no file. It counts as the running save (BGSAVE and SAVE
/// are refused meanwhile, FLUSHALL and SHUTDOWN stop it) but, as Redis's socket saves, it
/// changes neither the last save's time nor its status. Returns the bytes sent.
pub async fn save_to_sockets(
    shard: &Rc<Shard>,
    sink: &mut impl rdb_file::StreamSink,
) -> Result<u64, String> {
    let p = Persist::current().ok_or("no persistence on this executor")?;
    while p.snapshot_busy() {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    {
        let mut r = p.rdb.borrow_mut();
        r.in_progress = true;
        r.started = Some(Instant::now());
        r.snapshot_keys = 0;
        r.snapshot_keys_total = 0;
    }
    eprintln!("Background RDB transfer started");
    let result = async {
        let cfg = rdb_file::FileConfig::from_config(&shard.shared.config());
        let format = SnapshotFormat {
            compression: cfg.options.compression,
            eviction: cfg.format_eviction,
            now_ms: now_ms(),
        };
        let cut = rdb_file::cut(shard, format, p.replay.libraries).await;
        sink.cut_taken(cut.stamp);
        p.rdb.borrow_mut().snapshot_keys_total = cut.counts.iter().flatten().map(|c| c.keys).sum();
        let Some(repl) = sink.begin().await else {
            rdb_file::abort(shard).await;
            return Err(rdb_file::SaveError::Cancelled);
        };
        rdb_file::stream(shard, &cut, &cfg, repl, sink, |keys| {
            p.rdb.borrow_mut().snapshot_keys += keys;
        })
        .await
    }
    .await;
    let mut r = p.rdb.borrow_mut();
    r.in_progress = false;
    r.last_time_sec = r
        .started
        .take()
        .map_or(-1, |t| t.elapsed().as_secs() as i64);
    match result {
        Ok(size) => {
            eprintln!("Background RDB transfer terminated with success");
            Ok(size)
        }
        Err(e) => {
            eprintln!("Background transfer error");
            Err(e.to_string())
        }
    }
}

/// A full sync's RDB for a replica that filtered out the keys (REPLCONF rdb-filter-only),
/// with the function libraries when it keeps them; on the control executor.
pub fn filtered_rdb(
    shard: &Rc<Shard>,
    position: &crate::repl::SavedPosition,
    functions: bool,
) -> std::io::Result<Vec<u8>> {
    let cfg = rdb_file::FileConfig::from_config(&shard.shared.config());
    let libraries = match Persist::current() {
        Some(p) if functions => (p.replay.libraries)(),
        _ => Vec::new(),
    };
    rdb_file::filtered(&cfg, position, &libraries)
}

/// What BGSAVE and BGREWRITEAOF did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    Now,
    Scheduled,
}

/// BGSAVE [SCHEDULE]: starts a background save, or schedules it (with SCHEDULE) while an
/// AOF rewrite holds the snapshot.
pub async fn bgsave(shard: &Rc<Shard>, schedule: bool) -> Result<Started, Error> {
    on_control(shard, move |p| async move {
        let rewriting = p.aof_mail.info.get().rewrite_in_progress;
        if schedule && rewriting && !p.rdb.borrow().in_progress {
            p.bgsave_scheduled.set(true);
            return Ok(Started::Scheduled);
        }
        let before = p.cuts.get();
        p.clone().start_save(SaveKind::Background)?;
        p.wait_for_cut(before).await;
        Ok(Started::Now)
    })
    .await
}

/// BGSAVE or BGREWRITEAOF inside EXEC: the transaction holds the shards' data a cut needs,
/// so the job is scheduled for after it, as Redis schedules them while `in_exec`.
pub async fn schedule(shard: &Rc<Shard>, rewrite: bool) -> Result<(), Error> {
    on_control(shard, move |p| async move {
        if rewrite {
            if p.aof_mail.info.get().rewrite_in_progress {
                return Err(Error::msg(
                    "Background append only file rewriting already in progress",
                ));
            }
            p.set_aof_info(|i| i.rewrite_scheduled = true);
        } else {
            if p.rdb.borrow().in_progress {
                return Err(Error::msg("Background save already in progress"));
            }
            p.bgsave_scheduled.set(true);
        }
        Ok(())
    })
    .await
}

/// BGREWRITEAOF: starts a rewrite, or schedules it while a save runs.
pub async fn bgrewriteaof(shard: &Rc<Shard>) -> Result<Started, Error> {
    on_control(shard, |p| async move {
        let info = p.aof_mail.info.get();
        if info.rewrite_in_progress {
            return Err(Error::msg(
                "Background append only file rewriting already in progress",
            ));
        }
        if p.rdb.borrow().in_progress {
            p.set_aof_info(|i| i.rewrite_scheduled = true);
            return Ok(Started::Scheduled);
        }
        let before = p.cuts.get();
        p.start_rewrite();
        p.wait_for_cut(before).await;
        Ok(Started::Now)
    })
    .await
}

/// SAVE: a save, waited for. A failure is Redis's bare `-ERR` (the reason is in the log).
pub async fn save(shard: &Rc<Shard>) -> Result<(), Error> {
    on_control(shard, |p| async move {
        if !p.rdb.borrow().in_progress {
            p.rdb.borrow_mut().saves += 1;
        }
        p.save_now().await
    })
    .await
}

/// FLUSHALL's save, as Redis's `flushAllDataAndResetRDB`: a running save is stopped (it
/// would write the data just flushed), then, when save points are configured, the empty
/// dataset is saved at once.
pub async fn save_after_flushall(shard: &Rc<Shard>) {
    on_control(shard, |p| async move {
        p.stop_running_save().await;
        if !save_points(p.shard.shared.config().get("save")).is_empty() {
            let _ = p.save_now().await;
        }
    })
    .await
}

/// DEBUG RELOAD [MERGE] [NOSAVE] [NOFLUSH]: saves, empties every database and loads the file
/// again. A key already present replaces the old one only with MERGE; otherwise it stops
/// the load with an error (Redis panics).
pub async fn debug_reload(
    shard: &Rc<Shard>,
    save: bool,
    flush: bool,
    merge: bool,
) -> Result<(), Error> {
    on_control(shard, move |p| async move {
        if save {
            p.save_now().await?;
        }
        if flush {
            for id in 0..p.shard.nshards {
                p.shard
                    .call_data(id, |_, d: &mut crate::db::ShardData| {
                        for ks in d.dbs() {
                            ks.flush();
                        }
                    })
                    .await;
            }
        }
        let path = std::path::PathBuf::from(p.shard.shared.config().get("dbfilename"));
        let drop_expired = !crate::repl::is_replica();
        match load::load_rdb(&p.shard, &path, p.replay, drop_expired, merge).await {
            Ok(_) => {
                eprintln!("DB reloaded by DEBUG RELOAD");
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                Err(Error::msg("Error trying to load the RDB dump"))
            }
        }
    })
    .await
}

/// LASTSAVE.
pub async fn last_save(shard: &Rc<Shard>) -> i64 {
    on_control(shard, |p| async move { p.rdb.borrow().last_save_unix }).await
}

/// INFO persistence.
pub async fn info(shard: &Rc<Shard>) -> Info {
    on_control(shard, |p| async move {
        let dirty = p.dirty_total().await;
        p.info(dirty)
    })
    .await
}

/// Routes SIGTERM and SIGINT to the persistence cron (`Shared::shutdown_signal`), which
/// shuts down as Redis does (`shutdown`). Call before any other thread starts: the signals
/// are blocked in every thread and taken by one that waits for them. A second SIGINT while
/// a signal's shutdown is pending or waiting for replicas exits at once, as Redis does.
pub fn catch_shutdown_signals(shared: std::sync::Arc<crate::shard::Shared>) {
    // SAFETY: plain signal-set manipulation on a local set; no other thread runs yet.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let spawned = std::thread::Builder::new()
        .name("redcell-signals".into())
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: `set` is a valid, initialized signal set; `signal` is a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                continue;
            }
            let pending = shared.shutdown_signal.swap(signal, Ordering::Relaxed);
            if pending != 0 && signal == libc::SIGINT {
                eprintln!("You insist... exiting now.");
                std::process::exit(1);
            }
            let loading = shared.load_progress.loading.load(Ordering::Relaxed);
            eprintln!(
                "{}",
                match signal {
                    _ if loading => "Received shutdown signal during loading, scheduling shutdown.",
                    libc::SIGINT => "Received SIGINT scheduling shutdown...",
                    _ => "Received SIGTERM scheduling shutdown...",
                }
            );
        });
    if let Err(e) = spawned {
        // Without the thread the signals must reach the process again (default: exit).
        // SAFETY: `set` is the initialized set blocked above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        eprintln!("cannot start the signal thread ({e}): SIGTERM will not save");
    }
}
