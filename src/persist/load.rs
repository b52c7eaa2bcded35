//! Loading `dump.rdb` at start-up: a reader thread parses the file while each shard inserts
//! the keys of its own slots, batch by batch, so the shards fill in parallel with the
//! parsing. Clients that connect meanwhile get `-LOADING` (see `Shard::loading`); INFO
//! persistence shows the progress.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, TryRecvError};

use crate::config::Config;
use crate::db::ShardData;
use std::future::Future;
use std::pin::Pin;

use crate::aof::{AofError, AofLoadOptions, AofManifest, AofSink};
use crate::rdb::file_reader::{read_rdb, RdbEntry, RdbEvent, RdbLoadError, RdbReadOptions};
use crate::shard::{LoadProgress, Settings, Shard, Shared};
use crate::types::Value;
use crate::util::time::now_ms;

/// Keys per shard the reader gathers before handing a batch over.
const BATCH_KEYS: usize = 512;

/// Batches in flight between the reader and the shards: bounds the memory a fast reader
/// can run ahead by.
const BATCHES_IN_FLIGHT: usize = 8;

/// The loading fields of INFO persistence, as Redis computes them.
pub fn progress(shared: &Shared) -> super::Info {
    let p = &shared.load_progress;
    if !p.loading.load(Ordering::Relaxed) {
        return super::Info::default();
    }
    let start = p.start_unix.load(Ordering::Relaxed);
    let total = p.total_bytes.load(Ordering::Relaxed);
    let loaded = p.loaded_bytes.load(Ordering::Relaxed);
    let elapsed = (now_ms() / 1000 - start).max(0);
    let perc = if total > 0 {
        loaded as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    // Redis's estimate: a fake second before anything is known.
    let remaining = if total > 0 {
        total.saturating_sub(loaded)
    } else {
        1
    };
    let eta = if elapsed == 0 {
        1
    } else {
        (elapsed as u64 * remaining / (loaded + 1)) as i64
    };
    super::Info {
        loading: true,
        loading_start_time: start,
        loading_total_bytes: total,
        loading_loaded_bytes: loaded,
        loading_loaded_perc: perc,
        loading_eta_seconds: eta,
        ..Default::default()
    }
}

/// What a load found.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub keys: u64,
    pub expired: u64,
    /// The file's replication aux fields (a replica resumes from them).
    pub repl: ReplAux,
}

/// The aux fields `repl-stream-db`, `repl-id` and `repl-offset`, when a file has them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplAux {
    pub stream_db: Option<i64>,
    pub id: Option<String>,
    pub offset: Option<i64>,
}

impl ReplAux {
    fn take(&mut self, key: &[u8], value: &[u8]) {
        let text = String::from_utf8_lossy(value);
        match key {
            b"repl-stream-db" => self.stream_db = text.parse().ok(),
            b"repl-id" if value.len() == 40 => self.id = Some(text.into_owned()),
            b"repl-offset" => self.offset = text.parse().ok(),
            _ => {}
        }
    }
}

/// A key on its way to its shard.
pub struct Item {
    db: usize,
    key: Vec<u8>,
    value: Value,
    expire_ms: Option<i64>,
}

/// Counts the bytes the parser consumes, for the progress fields.
struct Counted<'p, R> {
    inner: R,
    progress: &'p LoadProgress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress
            .loaded_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn read_options(shared: &Shared) -> RdbReadOptions {
    let config = shared.config();
    RdbReadOptions {
        limits: Settings::from_config(&config).limits,
        databases: shared.databases as u64,
        verify_checksum: config.get_bool("rdbchecksum"),
        ..Default::default()
    }
}

/// Whether start-up has a file to load: the AOF's manifest with `appendonly yes`, else
/// `dbfilename` (both relative to the working directory).
pub fn has_data_to_load(config: &Config) -> bool {
    if config.get_bool("appendonly") {
        let names = super::aof::Names::from_config(config);
        return names
            .dir
            .join(crate::aof::manifest::manifest_file_name(&names.filename))
            .is_file();
    }
    rdb_path(config).is_some()
}

/// Whether there is a file to load: `dbfilename` in the working directory.
pub fn rdb_path(config: &Config) -> Option<PathBuf> {
    let path = PathBuf::from(config.get("dbfilename"));
    path.is_file().then_some(path)
}

/// Loads `path` into the shards (from the control executor). Every shard answers
/// `-LOADING` until this returns. An unreadable or corrupt file is an error naming it and
/// what is wrong, in Redis's words. Keys already expired are dropped when `drop_expired`
/// (a master; a replica keeps them for its master's DELs, as Redis's `iAmMaster` check).
/// A key already present (twice in the file, or in the data before a DEBUG RELOAD NOFLUSH)
/// replaces the old one when `allow_dup` (Redis's `RDBFLAGS_ALLOW_DUP`, DEBUG RELOAD MERGE
/// only); otherwise loading stops there with Redis's "Duplicated key found in RDB file".
pub async fn load_rdb(
    shard: &Rc<Shard>,
    path: &Path,
    replay: Replay,
    drop_expired: bool,
    allow_dup: bool,
) -> Result<Loaded, String> {
    let shared = shard.shared.clone();
    let started = Instant::now();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let p = &shared.load_progress;
    p.start_unix.store(now_ms() / 1000, Ordering::Relaxed);
    p.total_bytes.store(size, Ordering::Relaxed);
    p.loaded_bytes.store(0, Ordering::Relaxed);
    let opts = read_options(&shared);
    let key_delay = shared.config().get_i64("key-load-delay");
    let (tx, rx) = bounded::<LoadMsg>(BATCHES_IN_FLIGHT);
    let router = KeyRouter::new(
        tx,
        shard.nshards,
        drop_expired,
        key_delay,
        replay.load_library,
    );
    let reader = {
        let (path, shared) = (path.to_path_buf(), shared.clone());
        std::thread::Builder::new()
            .name("redcell-load".into())
            .spawn(move || read_file(&path, &opts, &shared.load_progress, router))
            .map_err(|e| format!("cannot start the loading thread: {e}"))?
    };
    let (keys, dup) = consume(shard, rx, None, allow_dup).await;
    let read = reader
        .join()
        .map_err(|_| "the loading thread panicked".to_string())?;
    // A duplicate stopped the shards first: the reader's error is only its consequence.
    if let Some(dup) = dup {
        return Err(dup.render(path));
    }
    let (expired, repl) = read.map_err(|e| load_error(path, &e))?;
    let loaded = Loaded {
        keys,
        expired,
        repl,
    };
    eprintln!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        loaded.keys, loaded.expired
    );
    eprintln!(
        "DB loaded from disk: {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    Ok(loaded)
}

/// Loads the AOF that `manifest` in `names.dir` lists: the base's keys go straight to their
/// shards (expired ones kept: the commands after them were logged against them), then its
/// commands run through `replay` in order. A truncated last file is cut back to its last
/// whole command when `aof-load-truncated` allows. Returns the keys of the base and the
/// commands run.
pub async fn load_aof(
    shard: &Rc<Shard>,
    names: &super::aof::Names,
    manifest: &AofManifest,
    replay: Replay,
) -> Result<(u64, u64), String> {
    let shared = shard.shared.clone();
    let started = Instant::now();
    let load_truncated = shared.config().get_bool("aof-load-truncated");
    let opts = AofLoadOptions {
        load_truncated,
        aof_filename: names.filename.clone(),
        rdb: read_options(&shared),
    };
    let p = &shared.load_progress;
    p.start_unix.store(now_ms() / 1000, Ordering::Relaxed);
    let total: u64 = manifest
        .load_order()
        .map(|f| std::fs::metadata(f.path_in(&names.dir)).map_or(0, |m| m.len()))
        .sum();
    p.total_bytes.store(total, Ordering::Relaxed);
    let key_delay = shared.config().get_i64("key-load-delay");
    let (tx, rx) = bounded::<LoadMsg>(BATCHES_IN_FLIGHT);
    let router = KeyRouter::new(tx, shard.nshards, false, key_delay, replay.load_library);
    let reader = {
        let (dir, manifest) = (names.dir.clone(), manifest.clone());
        std::thread::Builder::new()
            .name("redcell-load".into())
            .spawn(move || {
                let is_command = replay.is_command;
                let mut sink = AofLoadSink {
                    router,
                    commands: Vec::new(),
                    is_command: &is_command,
                };
                let r = crate::aof::load_aof(&dir, &manifest, &opts, &mut sink);
                let flushed = sink
                    .router
                    .flush()
                    .map_err(|e| AofError::Sink(e.to_string()));
                let flushed = flushed.and_then(|()| sink.flush_commands());
                r.and_then(|outcome| flushed.map(|()| outcome))
            })
            .map_err(|e| format!("cannot start the loading thread: {e}"))?
    };
    let (keys, dup) = consume(shard, rx, Some((replay.client)(shard.clone())), false).await;
    let read = reader
        .join()
        .map_err(|_| "the loading thread panicked".to_string())?;
    if let Some(dup) = dup {
        let base = manifest
            .base
            .as_ref()
            .map_or_else(|| names.dir.clone(), |b| b.path_in(&names.dir));
        return Err(dup.render(&base));
    }
    let outcome = read.map_err(|e| e.to_string())?;
    if let Some(t) = &outcome.truncated {
        let name = t.file.display_name();
        eprintln!("!!! Warning: short read while loading the AOF file {name}!!!");
        eprintln!("!!! Truncating the AOF {name} at offset {} !!!", t.offset);
        crate::aof::truncate_file(&t.file.path_in(&names.dir), t.offset)
            .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
        eprintln!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    }
    if outcome.status != crate::aof::AofLoadStatus::NotExist {
        eprintln!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
    }
    Ok((keys, outcome.commands))
}

/// Redis's wording for a file that cannot be loaded, with the file named.
fn load_error(path: &Path, e: &RdbLoadError) -> String {
    match e {
        RdbLoadError::Io(io) => format!(
            "Fatal error loading the DB ({}): {io}. Exiting.",
            path.display()
        ),
        other => format!("Fatal error loading the DB ({}): {other}", path.display()),
    }
}

/// What the reader thread hands to the control executor, in file order.
pub enum LoadMsg {
    /// Keys for each shard (index = shard).
    Keys(Vec<Vec<Item>>),
    /// Whole commands (RESP) of an AOF, to run as a client would.
    Commands(Vec<u8>),
}

/// Gathers parsed keys into per-shard batches and sends them on.
struct KeyRouter {
    tx: crossbeam_channel::Sender<LoadMsg>,
    batch: Vec<Vec<Item>>,
    pending: usize,
    now: i64,
    /// Drop keys already expired (a master loading dump.rdb; not an AOF base).
    drop_expired: bool,
    expired: u64,
    read: u64,
    key_delay: i64,
    /// Where the file's function libraries go.
    load_library: fn(&[u8]) -> Result<(), String>,
    repl: ReplAux,
}

impl KeyRouter {
    fn new(
        tx: crossbeam_channel::Sender<LoadMsg>,
        nshards: usize,
        drop_expired: bool,
        key_delay: i64,
        load_library: fn(&[u8]) -> Result<(), String>,
    ) -> KeyRouter {
        KeyRouter {
            load_library,
            tx,
            batch: (0..nshards).map(|_| Vec::new()).collect(),
            pending: 0,
            now: now_ms(),
            drop_expired,
            expired: 0,
            read: 0,
            key_delay,
            repl: ReplAux::default(),
        }
    }

    fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError> {
        match ev {
            RdbEvent::Aux { key, value } => {
                log_aux(&key, &value);
                self.repl.take(&key, &value);
            }
            RdbEvent::Entry(RdbEntry {
                db,
                key,
                value,
                expire_ms,
                ..
            }) => {
                self.read += 1;
                delay_key(self.key_delay, self.read);
                if self.drop_expired && expire_ms.is_some_and(|at| at < self.now) {
                    self.expired += 1;
                    return Ok(());
                }
                let owner = crate::slot::key_slot(&key) as usize % self.batch.len();
                self.batch[owner].push(Item {
                    db: db as usize,
                    key,
                    value,
                    expire_ms,
                });
                self.pending += 1;
                if self.pending >= BATCH_KEYS * self.batch.len() {
                    self.flush()?;
                }
            }
            RdbEvent::Function { code } => {
                (self.load_library)(&code)
                    .map_err(|e| RdbLoadError::Sink(format!("Failed loading library, {e}")))?;
            }
            RdbEvent::SelectDb { .. } | RdbEvent::ResizeDb { .. } => {}
        }
        Ok(())
    }

    /// Sends the keys gathered so far.
    fn flush(&mut self) -> Result<(), RdbLoadError> {
        if self.pending == 0 {
            return Ok(());
        }
        let n = self.batch.len();
        let full = std::mem::replace(&mut self.batch, (0..n).map(|_| Vec::new()).collect());
        self.pending = 0;
        self.tx
            .send(LoadMsg::Keys(full))
            .map_err(|_| RdbLoadError::Sink("the shards stopped loading".into()))
    }
}

/// The reader thread for dump.rdb. Returns the expired keys dropped and the replication
/// aux fields.
fn read_file(
    path: &Path,
    opts: &RdbReadOptions,
    progress: &LoadProgress,
    mut router: KeyRouter,
) -> Result<(u64, ReplAux), RdbLoadError> {
    let file = std::fs::File::open(path).map_err(RdbLoadError::Io)?;
    let counted = Counted {
        inner: file,
        progress,
    };
    let mut sink = |ev: RdbEvent| router.event(ev);
    read_rdb(BufReader::with_capacity(1 << 20, counted), opts, &mut sink)?;
    router.flush()?;
    Ok((router.expired, router.repl))
}

/// Reads the whole of `path` as a loader would, keeping nothing (off the executor): a file a
/// replica received is checked before its old dataset is dropped for it.
pub async fn check_rdb(shared: &Shared, path: &Path) -> Result<(), String> {
    let opts = read_options(shared);
    let owned = path.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || {
            let file = std::fs::File::open(&owned).map_err(RdbLoadError::Io)?;
            let mut sink = |_ev: RdbEvent| Ok(());
            read_rdb(BufReader::with_capacity(1 << 20, file), &opts, &mut sink).map(|_| ())
        })
        .await
        .map_err(|e| load_error(path, &e))
}

/// Empties every database of every data shard (a replica about to load its master's data),
/// touching watchers and invalidating client-side caches as FLUSHALL does.
pub async fn flush_all(shard: &Rc<Shard>) {
    let now = now_ms();
    for id in 0..shard.nshards {
        shard
            .call_data(id, move |s, d: &mut ShardData| {
                for ks in d.dbs() {
                    ks.touch_all_watched(None, now);
                    ks.flush();
                }
                crate::shard::tracking::forget_all(s, d);
            })
            .await;
    }
    // Client-side caching: as after FLUSHALL (Redis's `emptyData` signals a flush).
    crate::shard::tracking::announce_flush(shard);
}

/// Commands gathered before they are sent: about this many bytes at a time.
const COMMAND_CHUNK: usize = 64 << 10;

/// The AOF reader's sink: the base's keys through the router, the commands in chunks.
struct AofLoadSink<'a> {
    router: KeyRouter,
    commands: Vec<u8>,
    is_command: &'a dyn Fn(&[u8]) -> bool,
}

impl AofLoadSink<'_> {
    fn flush_commands(&mut self) -> Result<(), AofError> {
        if self.commands.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.commands);
        self.router
            .tx
            .send(LoadMsg::Commands(chunk))
            .map_err(|_| AofError::Sink("the shards stopped loading".into()))
    }
}

impl crate::rdb::file_reader::RdbSink for AofLoadSink<'_> {
    fn event(&mut self, ev: RdbEvent) -> Result<(), RdbLoadError> {
        self.router.event(ev)
    }
}

impl AofSink for AofLoadSink<'_> {
    fn command(&mut self, _file: &str, argv: Vec<Vec<u8>>) -> Result<(), AofError> {
        self.router
            .flush()
            .map_err(|e| AofError::Sink(e.to_string()))?;
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        crate::aof::encode_command(&mut self.commands, &args);
        if self.commands.len() >= COMMAND_CHUNK {
            self.flush_commands()?;
        }
        Ok(())
    }

    fn is_command(&mut self, name: &[u8]) -> bool {
        (self.is_command)(name)
    }
}

/// `key-load-delay`, Redis's testing knob: microseconds to sleep per key loaded; a negative
/// value sleeps one microsecond once in that many keys.
fn delay_key(delay: i64, nth: u64) {
    let us = match delay {
        0 => return,
        d if d > 0 => d as u64,
        d if nth.is_multiple_of(d.unsigned_abs()) => 1,
        _ => return,
    };
    std::thread::sleep(Duration::from_micros(us));
}

/// Redis logs what the file says about itself.
fn log_aux(key: &[u8], value: &[u8]) {
    let text = String::from_utf8_lossy(value);
    match key {
        b"redis-ver" => eprintln!("Loading RDB produced by version {text}"),
        b"ctime" => {
            if let Ok(t) = text.parse::<i64>() {
                eprintln!("RDB age {} seconds", (now_ms() / 1000 - t).max(0));
            }
        }
        b"used-mem" => {
            if let Ok(m) = text.parse::<u64>() {
                eprintln!(
                    "RDB memory usage when created {:.2} Mb",
                    m as f64 / 1048576.0
                );
            }
        }
        _ => {}
    }
}

/// Runs commands read from an AOF, in order, as a client would (given by the layer that
/// runs commands, at start-up).
pub trait Replayer {
    fn run<'a>(&'a mut self, commands: &'a [u8]) -> Pin<Box<dyn Future<Output = ()> + 'a>>;
}

/// What persistence needs from the command layer, given at start-up: the replaying client,
/// command names, and the function libraries a file carries.
#[derive(Clone, Copy)]
pub struct Replay {
    pub client: fn(Rc<Shard>) -> Box<dyn Replayer>,
    pub is_command: fn(&[u8]) -> bool,
    /// Every library's code, to save.
    pub libraries: fn() -> Vec<Vec<u8>>,
    /// Loads a library read from a file.
    pub load_library: fn(&[u8]) -> Result<(), String>,
}

/// A key the file holds twice (or that was there before the load), as Redis reports it.
pub struct Duplicate {
    db: usize,
    key: Vec<u8>,
}

impl Duplicate {
    /// Redis's two lines (`rdbLoadRioWithLoadingCtx`'s warning, then its panic message),
    /// with the file named.
    fn render(&self, path: &Path) -> String {
        format!(
            "RDB has duplicated key '{}' in DB {}\nFatal error loading the DB ({}): Duplicated key found in RDB file",
            String::from_utf8_lossy(&self.key),
            self.db,
            path.display()
        )
    }
}

/// Takes the reader's messages in order: keys go to their shards (all shards at once),
/// commands run through `replayer`. Returns the keys inserted and, unless `allow_dup`, the
/// first key found already present: loading stops there (the reader sees the channel
/// closed and stops too).
async fn consume(
    shard: &Rc<Shard>,
    rx: Receiver<LoadMsg>,
    mut replayer: Option<Box<dyn Replayer>>,
    allow_dup: bool,
) -> (u64, Option<Duplicate>) {
    let mut keys = 0;
    loop {
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => {
                // Only during start-up, with no clients to serve: a short poll is fine.
                glommio::timer::sleep(Duration::from_micros(200)).await;
                continue;
            }
            Err(TryRecvError::Disconnected) => return (keys, None),
        };
        match msg {
            LoadMsg::Keys(batch) => {
                let mut calls = Vec::new();
                for (id, items) in batch.into_iter().enumerate() {
                    if items.is_empty() {
                        continue;
                    }
                    keys += items.len() as u64;
                    let shard = shard.clone();
                    calls.push(glommio::spawn_local(async move {
                        shard
                            .call_data(id, move |_, d: &mut ShardData| insert(d, items, allow_dup))
                            .await
                    }));
                }
                let mut dup = None;
                for c in calls {
                    dup = dup.or(c.await);
                }
                if dup.is_some() {
                    return (keys, dup);
                }
            }
            LoadMsg::Commands(bytes) => {
                if let Some(r) = replayer.as_mut() {
                    r.run(&bytes).await;
                }
            }
        }
    }
}

/// Puts loaded keys in place. A key already present is replaced when `allow_dup`;
/// otherwise the first one stops the batch and is returned.
fn insert(data: &mut ShardData, items: Vec<Item>, allow_dup: bool) -> Option<Duplicate> {
    for it in items {
        let at = it.expire_ms.unwrap_or(crate::db::NO_EXPIRE);
        // One lookup: a duplicate has replaced the old value, but loading stops anyway.
        if !data.db(it.db).load(&it.key, it.value, at) && !allow_dup {
            return Some(Duplicate {
                db: it.db,
                key: it.key,
            });
        }
    }
    None
}
