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
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub keys: u64,
    pub expired: u64,
}

/// A key on its way to its shard.
struct Item {
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

/// Whether there is a file to load: `dbfilename` in the working directory.
pub fn rdb_path(config: &Config) -> Option<PathBuf> {
    let path = PathBuf::from(config.get("dbfilename"));
    path.is_file().then_some(path)
}

/// Loads `path` into the shards (from the control executor). Every shard answers
/// `-LOADING` until this returns. An unreadable or corrupt file is an error naming it and
/// what is wrong, in Redis's words.
pub async fn load_rdb(shard: &Rc<Shard>, path: &Path) -> Result<Loaded, String> {
    let shared = shard.shared.clone();
    let started = Instant::now();
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let p = &shared.load_progress;
    p.start_unix.store(now_ms() / 1000, Ordering::Relaxed);
    p.total_bytes.store(size, Ordering::Relaxed);
    p.loaded_bytes.store(0, Ordering::Relaxed);
    let opts = {
        let config = shared.config();
        RdbReadOptions {
            limits: Settings::from_config(&config).limits,
            databases: shared.databases as u64,
            verify_checksum: config.get_bool("rdbchecksum"),
            ..Default::default()
        }
    };
    let key_delay = shared.config().get_i64("key-load-delay");
    let nshards = shard.nshards;
    let (tx, rx) = bounded::<Vec<Vec<Item>>>(BATCHES_IN_FLIGHT);
    let reader = {
        let (path, shared) = (path.to_path_buf(), shared.clone());
        std::thread::Builder::new()
            .name("redcell-load".into())
            .spawn(move || read_file(&path, &opts, &shared, nshards, key_delay, tx))
            .map_err(|e| format!("cannot start the loading thread: {e}"))?
    };
    let inserted = insert_batches(shard, rx).await;
    let summary = reader
        .join()
        .map_err(|_| "the loading thread panicked".to_string())?;
    let summary = summary.map_err(|e| load_error(path, &e))?;
    let loaded = Loaded {
        keys: inserted.keys,
        expired: summary.expired,
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

struct ReadSummary {
    expired: u64,
}

/// The reader thread: parses the file and sends each key to its shard in batches. Expired
/// keys are dropped, as a master does.
fn read_file(
    path: &Path,
    opts: &RdbReadOptions,
    shared: &Shared,
    nshards: usize,
    key_delay: i64,
    tx: crossbeam_channel::Sender<Vec<Vec<Item>>>,
) -> Result<ReadSummary, RdbLoadError> {
    let file = std::fs::File::open(path).map_err(RdbLoadError::Io)?;
    let counted = Counted {
        inner: file,
        progress: &shared.load_progress,
    };
    let now = now_ms();
    let mut expired = 0u64;
    let mut batch: Vec<Vec<Item>> = (0..nshards).map(|_| Vec::new()).collect();
    let mut pending = 0usize;
    let mut read_keys = 0u64;
    let mut sink = |ev: RdbEvent| -> Result<(), RdbLoadError> {
        match ev {
            RdbEvent::Aux { key, value } => log_aux(&key, &value),
            RdbEvent::Entry(RdbEntry {
                db,
                key,
                value,
                expire_ms,
                ..
            }) => {
                read_keys += 1;
                delay_key(key_delay, read_keys);
                if expire_ms.is_some_and(|at| at < now) {
                    expired += 1;
                    return Ok(());
                }
                let owner = crate::slot::key_slot(&key) as usize % nshards;
                batch[owner].push(Item {
                    db: db as usize,
                    key,
                    value,
                    expire_ms,
                });
                pending += 1;
                if pending >= BATCH_KEYS * nshards {
                    let full =
                        std::mem::replace(&mut batch, (0..nshards).map(|_| Vec::new()).collect());
                    pending = 0;
                    tx.send(full)
                        .map_err(|_| RdbLoadError::Sink("the shards stopped loading".into()))?;
                }
            }
            RdbEvent::Function { .. } => {
                // Function libraries need the scripting engine; a file with them loads its
                // keys and reports the libraries as skipped.
                eprintln!("The RDB file holds a function library; redcell has no FUNCTION support yet: skipped.");
            }
            RdbEvent::SelectDb { .. } | RdbEvent::ResizeDb { .. } => {}
        }
        Ok(())
    };
    let r = read_rdb(BufReader::with_capacity(1 << 20, counted), opts, &mut sink);
    if r.is_ok() && pending > 0 {
        let _ = tx.send(batch);
    }
    r.map(|_| ReadSummary { expired })
}

/// `key-load-delay`, Redis's testing knob: microseconds to sleep per key loaded; a negative
/// value sleeps one microsecond once in that many keys.
fn delay_key(delay: i64, nth: u64) {
    let us = match delay {
        0 => return,
        d if d > 0 => d as u64,
        d if nth % d.unsigned_abs() == 0 => 1,
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

#[derive(Default)]
struct Inserted {
    keys: u64,
}

/// Receives the reader's batches and has each shard insert its part (all shards at once).
async fn insert_batches(shard: &Rc<Shard>, rx: Receiver<Vec<Vec<Item>>>) -> Inserted {
    let mut inserted = Inserted::default();
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                // Only during start-up, with no clients to serve: a short poll is fine.
                glommio::timer::sleep(Duration::from_micros(200)).await;
                continue;
            }
            Err(TryRecvError::Disconnected) => return inserted,
        };
        let mut calls = Vec::new();
        for (id, items) in batch.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            inserted.keys += items.len() as u64;
            let shard = shard.clone();
            calls.push(glommio::spawn_local(async move {
                shard
                    .call_data(id, move |_, d: &mut ShardData| insert(d, items))
                    .await
            }));
        }
        for c in calls {
            c.await;
        }
    }
}

/// Puts loaded keys in place. A key the file holds twice keeps its last value, as a later
/// `RESTORE ... REPLACE` would.
fn insert(data: &mut ShardData, items: Vec<Item>) {
    for it in items {
        let at = it.expire_ms.unwrap_or(crate::db::NO_EXPIRE);
        data.db(it.db).set(&it.key, it.value, at, 0);
    }
}
