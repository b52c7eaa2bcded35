//! Writing one snapshot as `dump.rdb`: the cut over every shard, the pull of each shard's
//! serialized chunks, and the file itself (temporary name, fsync, rename, directory fsync),
//! so a crash at any point leaves either the old file or the whole new one.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::config::Config;
use crate::db::{ShardData, SnapshotFormat};
use crate::rdb::file_writer::{AuxFields, RdbFileWriter, RdbWriteOptions};
use crate::rdb::snapshot::{self, Chunk, DbCounts};
use crate::shard::tx::{Held, ShardSet};
use crate::shard::Shard;

/// Bytes a shard serializes per pull: small enough that a client waits for one no longer
/// than for a large MGET (about 0.1 ms).
const CHUNK_BYTES: usize = 16 << 10;

/// After each chunk, the writer waits this many times as long as the shard spent on it, so
/// a save takes at most a quarter of a shard's time and its clients keep the rest (a save
/// that pulled chunks back to back cut client throughput by 5x on one core).
const PACE: u32 = 3;

/// The writer's buffer before a `write` to the file.
const FILE_BUFFER: usize = 1 << 20;

/// The settings a save reads once, when it starts.
#[derive(Clone, Debug)]
pub struct FileConfig {
    /// `dbfilename`, relative to the working directory (`dir`).
    pub path: PathBuf,
    pub options: RdbWriteOptions,
    pub format_eviction: crate::db::EvictionInfo,
    /// `rdb-key-save-delay`: microseconds to sleep per key written (Redis's testing knob,
    /// which slows a save down so tests can act while it runs).
    pub key_save_delay_us: u64,
}

impl FileConfig {
    pub fn from_config(config: &Config) -> FileConfig {
        FileConfig {
            path: PathBuf::from(config.get("dbfilename")),
            options: RdbWriteOptions {
                compression: config.get_bool("rdbcompression"),
                checksum: config.get_bool("rdbchecksum"),
            },
            format_eviction: super::eviction_info(config.get("maxmemory-policy")),
            key_save_delay_us: config.get_i64("rdb-key-save-delay").max(0) as u64,
        }
    }
}

/// What the cut found: the instant every shard's snapshot began.
pub struct Cut {
    /// Journal stamps up to this one were taken before the cut, later ones after it (an
    /// AOF rewrite switches incr files there).
    pub stamp: u64,
    /// Changes summed over the shards up to the cut: what the file will cover.
    pub dirty: u64,
    /// Unix seconds of the cut (the file's `ctime`).
    pub ctime: i64,
    /// Keys and expires of each database on each shard at the cut, `[shard][db]`.
    pub counts: Vec<Vec<DbCounts>>,
    /// The function libraries' code at the cut.
    pub functions: Vec<Vec<u8>>,
    /// The replication position the data is at (`repl-stream-db`, `repl-id`,
    /// `repl-offset`), when there is one to keep.
    pub repl: Option<crate::repl::SavedPosition>,
}

/// Starts a snapshot on every shard at one instant: borrows every shard's data at once (no
/// command runs anywhere meanwhile), starts each database's snapshot and gives the data
/// back.
pub async fn cut(
    shard: &Rc<Shard>,
    format: SnapshotFormat,
    libraries: fn() -> Vec<Vec<u8>>,
) -> Cut {
    // A replica's applier stands still meanwhile, so the data is exactly its offset.
    let quiet = crate::repl::Quiet::begin(shard).await;
    let mut held = Held::acquire(shard, &ShardSet::all(shard.nshards)).await;
    // Every later write is stamped after the cut, whichever shard it runs on.
    let clock = held.clock();
    held.set_clock(clock);
    let stamp = crate::shard::journal::now_stamp().max(clock);
    let dirty = shard
        .call_all(|s| s.stats.borrow().dirty)
        .await
        .into_iter()
        .sum();
    let counts = (0..shard.nshards)
        .map(|id| {
            let data = held.data_of(id).expect("every shard is held");
            snapshot::begin(data, format)
        })
        .collect();
    let functions = libraries();
    let repl = quiet.position();
    held.release();
    drop(quiet);
    Cut {
        repl,
        functions,
        stamp,
        dirty,
        ctime: format.now_ms / 1000,
        counts,
    }
}

/// Stops the snapshot on every shard (after a failed or cancelled save).
pub async fn abort(shard: &Rc<Shard>) {
    for id in 0..shard.nshards {
        shard
            .call_data(id, |_, d: &mut ShardData| snapshot::abort(d))
            .await;
    }
}

/// Why a save did not produce a file.
#[derive(Debug)]
pub enum SaveError {
    /// The temporary file could not be created.
    Open { tmp: String, cause: io::Error },
    /// Writing, syncing or renaming failed.
    Write(io::Error),
    /// The snapshot was stopped under the save (FLUSHALL).
    Cancelled,
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Open { tmp, cause } => {
                let cwd = std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "unknown".into());
                write!(
                    f,
                    "Failed opening the temp RDB file {tmp} (in server root dir {cwd}) for saving: {cause}"
                )
            }
            SaveError::Write(e) => write!(f, "Write error saving DB on disk: {e}"),
            SaveError::Cancelled => write!(f, "Background saving was stopped (FLUSHALL)"),
        }
    }
}

type FileWriter = RdbFileWriter<BufWriter<File>>;

/// Runs blocking file work off the executor and gives the writer back with the outcome.
async fn off_executor<T: Send + 'static>(
    w: FileWriter,
    f: impl FnOnce(&mut FileWriter) -> io::Result<T> + Send + 'static,
) -> (FileWriter, io::Result<T>) {
    glommio::executor()
        .spawn_blocking(move || {
            let mut w = w;
            let r = f(&mut w);
            (w, r)
        })
        .await
}

/// Where a snapshot goes: written as `tmp`, renamed to `path` once whole.
pub struct Target {
    pub tmp: PathBuf,
    pub path: PathBuf,
    /// The file is an AOF base (aux field `aof-base` 1).
    pub aof_base: bool,
}

impl Target {
    /// `dbfilename`, through `temp-<pid>.rdb` as Redis names it.
    pub fn dump(cfg: &FileConfig) -> Target {
        Target {
            tmp: PathBuf::from(format!("temp-{}.rdb", std::process::id())),
            path: cfg.path.clone(),
            aof_base: false,
        }
    }
}

/// Writes the snapshot `cut` started to `target`, pulling each shard's chunks in file
/// order (database by database, shard by shard). `progress(keys)` is told after each
/// chunk. Returns the file's size.
pub async fn write(
    shard: &Rc<Shard>,
    cut: &Cut,
    cfg: &FileConfig,
    target: &Target,
    mut progress: impl FnMut(u64),
) -> Result<u64, SaveError> {
    let tmp = &target.tmp;
    let result = write_tmp(shard, cut, cfg, target, &mut progress).await;
    let result = match result {
        Ok(size) => {
            let (tmp, path) = (tmp.clone(), target.path.clone());
            glommio::executor()
                .spawn_blocking(move || publish(&tmp, &path).map(|()| size))
                .await
                .map_err(SaveError::Write)
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        abort(shard).await;
        let _ = std::fs::remove_file(tmp);
    }
    result
}

async fn write_tmp(
    shard: &Rc<Shard>,
    cut: &Cut,
    cfg: &FileConfig,
    target: &Target,
    progress: &mut impl FnMut(u64),
) -> Result<u64, SaveError> {
    let tmp = &target.tmp;
    let opened = {
        let (tmp, options) = (tmp.clone(), cfg.options);
        glommio::executor()
            .spawn_blocking(move || {
                let file = File::create(&tmp)?;
                RdbFileWriter::new(BufWriter::with_capacity(FILE_BUFFER, file), options)
            })
            .await
    };
    let mut w = opened.map_err(|cause| SaveError::Open {
        tmp: tmp.display().to_string(),
        cause,
    })?;
    let (aof_base, ctime, repl) = (target.aof_base, cut.ctime, cut.repl.clone());
    let used_mem = crate::util::mem::rss_bytes();
    let functions = cut.functions.clone();
    let (back, r) = off_executor(w, move |w| {
        let aux = AuxFields {
            aof_base,
            repl: repl.as_ref().map(|r| crate::rdb::file_writer::ReplAux {
                stream_db: r.stream_db,
                repl_id: &r.replid,
                offset: r.offset,
            }),
            ..AuxFields::new(ctime, used_mem)
        };
        w.write_aux_fields(&aux)?;
        functions.iter().try_for_each(|code| w.write_function(code))
    })
    .await;
    w = back;
    r.map_err(SaveError::Write)?;
    let databases = cut.counts.first().map_or(0, Vec::len);
    for db in 0..databases {
        let total = cut
            .counts
            .iter()
            .fold(DbCounts::default(), |t, c| DbCounts {
                keys: t.keys + c[db].keys,
                expires: t.expires + c[db].expires,
            });
        if total.keys == 0 {
            continue;
        }
        let (back, r) = off_executor(w, move |w| {
            w.write_db_header(db as u64, total.keys, total.expires)
        })
        .await;
        w = back;
        r.map_err(SaveError::Write)?;
        for (id, counts) in cut.counts.iter().enumerate() {
            if counts[db].keys == 0 {
                continue;
            }
            w = write_shard_db(shard, w, id, db, cfg, progress).await?;
        }
    }
    let (w, r) = off_executor(w, |w| Ok(w.bytes_written())).await;
    let size = r.map_err(SaveError::Write)?;
    glommio::executor()
        .spawn_blocking(move || -> io::Result<()> {
            let file = w.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        })
        .await
        .map_err(SaveError::Write)?;
    Ok(size + 9)
}

/// Pulls database `db`'s chunks from shard `id` into the file. The next chunk is pulled
/// while the last one is written.
async fn write_shard_db(
    shard: &Rc<Shard>,
    mut w: FileWriter,
    id: usize,
    db: usize,
    cfg: &FileConfig,
    progress: &mut impl FnMut(u64),
) -> Result<FileWriter, SaveError> {
    let max = if cfg.key_save_delay_us > 0 {
        1
    } else {
        CHUNK_BYTES
    };
    let pull = move || {
        shard.call_data(id, move |_, d: &mut ShardData| {
            let started = std::time::Instant::now();
            let chunk = snapshot::next_chunk(d, db, max);
            (chunk, started.elapsed())
        })
    };
    let mut next = pull().await;
    loop {
        let (Some(Chunk { bytes, keys, last }), spent) = next else {
            return Err(SaveError::Cancelled);
        };
        glommio::timer::sleep(spent * PACE).await;
        progress(keys);
        if cfg.key_save_delay_us > 0 {
            glommio::timer::sleep(Duration::from_micros(cfg.key_save_delay_us * keys)).await;
        }
        let written = off_executor(w, move |w| w.write_encoded(&bytes));
        if last {
            let (back, r) = written.await;
            r.map_err(SaveError::Write)?;
            return Ok(back);
        }
        let ((back, r), pulled) = futures_lite::future::zip(written, pull()).await;
        r.map_err(SaveError::Write)?;
        w = back;
        next = pulled;
    }
}

/// Moves the finished temporary file over `path` and syncs the directory, so the rename
/// itself survives a crash.
fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    std::fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn publish_replaces_the_old_file_whole() {
        let dir = std::env::temp_dir().join(format!("redcell-publish-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, tmp) = (dir.join("dump.rdb"), dir.join("temp.rdb"));
        std::fs::write(&path, b"old").unwrap();
        File::create(&tmp)
            .unwrap()
            .write_all(b"new contents")
            .unwrap();
        publish(&tmp, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new contents");
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
