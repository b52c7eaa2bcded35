//! Writing one snapshot as `dump.rdb`: the cut over every shard, the pull of each shard's
//! serialized chunks, and the file itself (temporary name, fsync, rename, directory fsync),
//! so a crash at any point leaves either the old file or the whole new one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::config::Config;
use crate::db::{ShardData, SnapshotFormat};
use crate::rdb::file_writer::{AuxFields, RdbFileWriter, RdbWriteOptions};
use crate::rdb::snapshot::{self, Chunk, DbCounts};
use crate::shard::tx::{Held, ShardSet};
use crate::shard::Shard;

/// What a shard serializes per pull of a paced save: this much time (whole slot tables, so
/// a little more) or `CHUNK_BYTES`, whichever comes first. A client whose request arrives
/// meanwhile waits that long; under load a pull also waits its turn behind the shard's
/// clients (about a millisecond with 50 busy connections), so the pull size, not the pace,
/// bounds a loaded save's speed: 4 KiB pulls made a 1M-key transfer take 6.7 s, 16 KiB
/// 2.7 to 4 s.
const CHUNK_TIME: Duration = Duration::from_micros(150);

/// Bytes per pull; a save a client waits for pulls this much each time, with no time limit
/// (SAVE of 1M keys: 1.04 s with 4 KiB pulls, 0.71 s with 16 KiB, 0.65 s with 64 KiB).
const CHUNK_BYTES: usize = 64 << 10;

/// After each chunk of a paced save, the next is pulled no sooner than this many times the
/// shard's time on it (counting the wait for the pull's reply), so a background save takes
/// at most a quarter of a shard's time and its clients keep the rest (a save that pulled
/// chunks back to back cut client throughput by 5x on one core).
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
    /// Leave the shards three quarters of their time (`PACE`): true for background saves
    /// and syncs; a save a client waits for (SAVE, SHUTDOWN, DEBUG RELOAD, FLUSHALL) goes
    /// at full speed, where Redis would block every client instead.
    pub paced: bool,
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
            paced: true,
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
    let dirty = shard.sum_stats(|s| s.dirty).await;
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

/// Runs blocking writer work off the executor and gives the writer back with the outcome.
async fn off_executor<W: Write + Send + 'static, T: Send + 'static>(
    w: RdbFileWriter<W>,
    f: impl FnOnce(&mut RdbFileWriter<W>) -> io::Result<T> + Send + 'static,
) -> (RdbFileWriter<W>, io::Result<T>) {
    glommio::executor()
        .spawn_blocking(move || {
            let mut w = w;
            let r = f(&mut w);
            (w, r)
        })
        .await
}

/// Where a snapshot streamed to replicas goes (a diskless full sync), on the control
/// executor.
pub trait StreamSink {
    /// The cut was just taken (called at once, before any stream entry after it is fed):
    /// the receivers' stream starts at `stamp`.
    fn cut_taken(&mut self, stamp: u64);
    /// Before the first byte: the replication position the snapshot is at, for its aux
    /// fields; None when no receiver is left (the snapshot is then dropped).
    fn begin(&mut self) -> impl std::future::Future<Output = Option<crate::repl::SavedPosition>>;
    /// Sends the next bytes of the file; an error when no receiver is left.
    fn send(&mut self, bytes: Vec<u8>) -> impl std::future::Future<Output = io::Result<()>>;
}

/// What is done with the written bytes after each step: nothing for a file (they are in its
/// buffer), handed to the sink for a stream.
trait Outlet<W: Write> {
    async fn after_step(&mut self, w: &mut RdbFileWriter<W>) -> Result<(), SaveError>;
}

struct ToFile;

impl Outlet<BufWriter<File>> for ToFile {
    async fn after_step(&mut self, _w: &mut FileWriter) -> Result<(), SaveError> {
        Ok(())
    }
}

struct ToSink<'a, S>(&'a mut S);

impl<S: StreamSink> Outlet<Vec<u8>> for ToSink<'_, S> {
    async fn after_step(&mut self, w: &mut RdbFileWriter<Vec<u8>>) -> Result<(), SaveError> {
        let bytes = std::mem::take(w.output_mut());
        if bytes.is_empty() {
            return Ok(());
        }
        self.0.send(bytes).await.map_err(SaveError::Write)
    }
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

/// Streams the snapshot `cut` started to `sink`, written as `write` writes a file (the aux
/// fields carry `repl`, the replication position the sink gave). Returns the bytes sent.
pub async fn stream(
    shard: &Rc<Shard>,
    cut: &Cut,
    cfg: &FileConfig,
    repl: crate::repl::SavedPosition,
    sink: &mut impl StreamSink,
    mut progress: impl FnMut(u64),
) -> Result<u64, SaveError> {
    let result = async {
        let w = RdbFileWriter::new(Vec::with_capacity(CHUNK_BYTES * 2), cfg.options)
            .map_err(SaveError::Write)?;
        let mut outlet = ToSink(sink);
        let w = write_body(
            shard,
            cut,
            cfg,
            false,
            Some(repl),
            w,
            &mut outlet,
            &mut progress,
        )
        .await?;
        let size = w.bytes_written() + 9;
        let rest = w.finish().map_err(SaveError::Write)?;
        outlet.0.send(rest).await.map_err(SaveError::Write)?;
        Ok(size)
    }
    .await;
    if result.is_err() {
        abort(shard).await;
    }
    result
}

/// An RDB without keys (for a replica's REPLCONF rdb-filter-only): the aux fields with the
/// replication position, `functions`' libraries, the end. Small, so made at once.
pub fn filtered(
    cfg: &FileConfig,
    position: &crate::repl::SavedPosition,
    functions: &[Vec<u8>],
) -> std::io::Result<Vec<u8>> {
    let mut w = RdbFileWriter::new(Vec::new(), cfg.options)?;
    let aux = AuxFields {
        repl: Some(crate::rdb::file_writer::ReplAux {
            stream_db: position.stream_db,
            repl_id: &position.replid,
            offset: position.offset,
        }),
        ..AuxFields::new(
            crate::util::time::now_ms() / 1000,
            crate::util::mem::rss_bytes(),
        )
    };
    w.write_aux_fields(&aux)?;
    for code in functions {
        w.write_function(code)?;
    }
    w.finish()
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
    let w = opened.map_err(|cause| SaveError::Open {
        tmp: tmp.display().to_string(),
        cause,
    })?;
    let repl = cut.repl.clone();
    let w = write_body(
        shard,
        cut,
        cfg,
        target.aof_base,
        repl,
        w,
        &mut ToFile,
        progress,
    )
    .await?;
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

/// Everything between the header and the `EOF` opcode: aux fields, functions, then each
/// database's keys.
#[allow(clippy::too_many_arguments)]
async fn write_body<W: Write + Send + 'static>(
    shard: &Rc<Shard>,
    cut: &Cut,
    cfg: &FileConfig,
    aof_base: bool,
    repl: Option<crate::repl::SavedPosition>,
    mut w: RdbFileWriter<W>,
    outlet: &mut impl Outlet<W>,
    progress: &mut impl FnMut(u64),
) -> Result<RdbFileWriter<W>, SaveError> {
    let ctime = cut.ctime;
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
    outlet.after_step(&mut w).await?;
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
        outlet.after_step(&mut w).await?;
        for (id, counts) in cut.counts.iter().enumerate() {
            if counts[db].keys == 0 {
                continue;
            }
            w = write_shard_db(shard, w, id, db, cfg, outlet, progress).await?;
        }
    }
    Ok(w)
}

/// Pulls database `db`'s chunks from shard `id` into the writer. The next chunk is pulled
/// while the last one is written.
async fn write_shard_db<W: Write + Send + 'static>(
    shard: &Rc<Shard>,
    mut w: RdbFileWriter<W>,
    id: usize,
    db: usize,
    cfg: &FileConfig,
    outlet: &mut impl Outlet<W>,
    progress: &mut impl FnMut(u64),
) -> Result<RdbFileWriter<W>, SaveError> {
    let (max, max_time) = if cfg.key_save_delay_us > 0 {
        (1, Duration::MAX)
    } else if cfg.paced {
        (CHUNK_BYTES, CHUNK_TIME)
    } else {
        (CHUNK_BYTES, Duration::MAX)
    };
    // Returns the chunk, the shard's time on it and the pull's whole round trip.
    let pull = move || async move {
        let asked = std::time::Instant::now();
        let (chunk, spent) = shard
            .call_data(id, move |_, d: &mut ShardData| {
                let started = std::time::Instant::now();
                let chunk = snapshot::next_chunk(d, db, max, max_time);
                (chunk, started.elapsed())
            })
            .await;
        (chunk, spent, asked.elapsed())
    };
    let mut next = pull().await;
    loop {
        let (Some(Chunk { bytes, keys, last }), spent, round_trip) = next else {
            return Err(SaveError::Cancelled);
        };
        if cfg.paced {
            let queued = round_trip.saturating_sub(spent);
            glommio::timer::sleep((spent * PACE).saturating_sub(queued)).await;
        }
        progress(keys);
        if cfg.key_save_delay_us > 0 {
            glommio::timer::sleep(Duration::from_micros(cfg.key_save_delay_us * keys)).await;
        }
        let written = async {
            let (mut back, r) = off_executor(w, move |w| w.write_encoded(&bytes)).await;
            r.map_err(SaveError::Write)?;
            outlet.after_step(&mut back).await?;
            Ok::<_, SaveError>(back)
        };
        if last {
            return written.await;
        }
        let (back, pulled) = futures_lite::future::zip(written, pull()).await;
        w = back?;
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
