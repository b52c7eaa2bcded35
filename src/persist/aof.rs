//! The append-only file (`appendonly yes`), Redis 7.0's multi-part layout: the control core
//! drains every core's journal, merges the entries in stamp order up to the lowest
//! watermark the cores report, and appends them to the current incr file with the SELECTs
//! Redis writes; `appendfsync` says when it is synced. A rewrite (BGREWRITEAOF, the
//! automatic one, or turning the AOF on) takes a snapshot cut: entries stamped before it go
//! to the old incr file, later ones to a new one, and the snapshot becomes the new base.
//!
//! Why the merged order is one clients could have seen: a core's entries carry increasing
//! stamps, and a unit that used data another unit wrote is stamped after it (the Lamport
//! clock in `shard::journal`). A core's watermark is its clock read after its journal was
//! drained, so every entry it records later is stamped above it; writing only entries at
//! or below the lowest watermark never writes an entry before one stamped lower.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aof::manifest::{self, AofManifest};
use crate::config::Config;
use crate::shard::journal::{self, Entry};
use crate::shard::Shard;
use crate::util::time::now_ms;

/// How often the writer drains the journals.
const DRAIN_INTERVAL: Duration = Duration::from_micros(500);

/// A failing AOF write is retried every pass but logged only this often.
const WRITE_ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

impl Fsync {
    pub fn from_config(config: &Config) -> Fsync {
        match config.get("appendfsync") {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// The AOF's names: `appenddirname` (in `dir`) and `appendfilename`.
#[derive(Clone, Debug)]
pub struct Names {
    pub dir: PathBuf,
    pub filename: String,
}

impl Names {
    pub fn from_config(config: &Config) -> Names {
        Names {
            dir: PathBuf::from(config.get("appenddirname")),
            filename: config.get("appendfilename").to_string(),
        }
    }

    fn path(&self, name: &[u8]) -> PathBuf {
        self.dir.join(String::from_utf8_lossy(name).as_ref())
    }
}

/// The open AOF: where entries go now.
pub struct Writer {
    pub names: Names,
    pub manifest: AofManifest,
    incr: Arc<File>,
    /// The stream's database in the incr file (None: the next entry gets a SELECT).
    stream_db: Option<u32>,
    /// A rewrite's cut: entries stamped after it go to a new incr file.
    switch_at: Option<u64>,
    last_fsync: Instant,
    /// An `everysec` sync runs off the executor; appends go on meanwhile.
    sync_running: Rc<std::cell::Cell<bool>>,
    /// Bytes in the incr files and the base (INFO `aof_current_size`, `aof_base_size`).
    pub current_size: u64,
    pub base_size: u64,
    /// The size when the last rewrite ended (auto-aof-rewrite-percentage's reference).
    pub rewrite_base_size: u64,
    last_ts: i64,
    /// Entries up to this stamp are in the file (and synced, with `always`).
    pub durable: u64,
    /// The stream a failed write could not append, written before anything newer.
    retry: Vec<u8>,
    /// Entries after a rewrite's cut whose switch to the new incr file failed.
    held: Vec<Entry>,
    /// The errno of the last write if it failed (0: it succeeded): writes are refused
    /// with MISCONF meanwhile.
    pub last_errno: i32,
}

/// Why the AOF could not be written.
pub type AofIoError = String;

fn io_err(what: &str, path: &Path, e: std::io::Error) -> AofIoError {
    format!("{what} {}: {e}", path.display())
}

impl Writer {
    /// Opens the AOF in `names.dir` as `manifest` describes it (creating the directory and
    /// a new incr file when there is none), and writes the manifest.
    pub fn open(names: Names, mut manifest: AofManifest) -> Result<Writer, AofIoError> {
        std::fs::create_dir_all(&names.dir)
            .map_err(|e| io_err("Can't open or create append-only dir", &names.dir, e))?;
        let incr_name = manifest.last_incr_file(&names.filename);
        let path = names.path(&incr_name);
        let incr = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_err("Can't open the append-only file", &path, e))?;
        manifest::write_manifest(&names.dir, &names.filename, &manifest)
            .map_err(|e| io_err("Can't persist the AOF manifest in", &names.dir, e))?;
        let size_of = |name: &[u8]| std::fs::metadata(names.path(name)).map_or(0, |m| m.len());
        let base_size = manifest.base.as_ref().map_or(0, |b| size_of(&b.name));
        let current_size = base_size + manifest.incr.iter().map(|i| size_of(&i.name)).sum::<u64>();
        Ok(Writer {
            names,
            manifest,
            incr: Arc::new(incr),
            stream_db: None,
            switch_at: None,
            last_fsync: Instant::now(),
            sync_running: Rc::new(std::cell::Cell::new(false)),
            current_size,
            base_size,
            rewrite_base_size: current_size,
            last_ts: 0,
            durable: 0,
            retry: Vec::new(),
            held: Vec::new(),
            last_errno: 0,
        })
    }

    /// Entries after `stamp` go to a new incr file (a rewrite's cut).
    pub fn switch_after(&mut self, stamp: u64) {
        self.switch_at = Some(stamp);
    }

    /// Writes `batch`, the merged entries up to `watermark`, switching incr files at a
    /// pending cut, and syncs as `fsync` says. Runs the file I/O off the executor.
    pub async fn append(
        &mut self,
        mut batch: Vec<Entry>,
        watermark: u64,
        fsync: Fsync,
        timestamps: bool,
    ) -> Result<(), AofIoError> {
        if !self.held.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.append(&mut batch);
            batch = held;
        }
        if let Some(cut) = self.switch_at {
            if watermark >= cut {
                let after = batch.partition_point(|e| e.stamp <= cut);
                let later = batch.split_off(after);
                let switched = match self.write(&batch, Fsync::Always, timestamps).await {
                    Ok(()) => self.open_next_incr(),
                    Err(e) => Err(e),
                };
                if let Err(e) = switched {
                    // The entries after the cut wait for the next incr file.
                    self.held = later;
                    return Err(e);
                }
                batch = later;
            }
        }
        self.write(&batch, fsync, timestamps).await?;
        self.durable = self.durable.max(watermark);
        Ok(())
    }

    async fn write(
        &mut self,
        batch: &[Entry],
        fsync: Fsync,
        timestamps: bool,
    ) -> Result<(), AofIoError> {
        // What a failed write left, first: the file must hold the stream in order.
        let mut buf = std::mem::take(&mut self.retry);
        if !batch.is_empty() {
            let now = now_ms() / 1000;
            if timestamps && now > self.last_ts {
                self.last_ts = now;
                buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
            }
            journal::render(batch, &mut self.stream_db, &mut buf);
        }
        let sync = fsync == Fsync::Always && !buf.is_empty();
        if fsync == Fsync::EverySec
            && self.last_fsync.elapsed() >= Duration::from_secs(1)
            && !self.sync_running.get()
        {
            // As Redis's background fsync: the appends do not wait for it.
            self.last_fsync = Instant::now();
            self.sync_running.set(true);
            let (file, running) = (self.incr.clone(), self.sync_running.clone());
            glommio::spawn_local(async move {
                let r = glommio::executor()
                    .spawn_blocking(move || file.sync_data())
                    .await;
                if let Err(e) = r {
                    eprintln!("Error syncing the AOF file: {e}");
                }
                running.set(false);
            })
            .detach();
        }
        if buf.is_empty() {
            return Ok(());
        }
        let file = self.incr.clone();
        let len = buf.len() as u64;
        let (buf, r) = glommio::executor()
            .spawn_blocking(move || {
                let before = file.metadata().map(|m| m.len());
                let r = (&*file).write_all(&buf).and_then(|()| {
                    if sync {
                        file.sync_data()?;
                    }
                    Ok(())
                });
                if r.is_err() {
                    // A short write is cut off again, as Redis does, so the whole buffer
                    // can be written later without a torn command in between.
                    if let Ok(before) = before {
                        if let Err(e) = file.set_len(before) {
                            eprintln!("Could not remove short write from the append-only file. Redis may refuse to load the AOF the next time it starts. ftruncate: {e}");
                        }
                    }
                }
                (buf, r)
            })
            .await;
        if let Err(e) = r {
            self.last_errno = e.raw_os_error().unwrap_or(libc::EIO);
            self.retry = buf;
            return Err(format!("Error writing to the AOF file: {e}"));
        }
        if self.last_errno != 0 {
            eprintln!("AOF write error looks solved, Redis can write again.");
            self.last_errno = 0;
        }
        if sync {
            self.last_fsync = Instant::now();
        }
        self.current_size += len;
        Ok(())
    }

    /// Starts a new incr file (a rewrite began) and records it in the manifest.
    fn open_next_incr(&mut self) -> Result<(), AofIoError> {
        self.switch_at = None;
        let name = self.manifest.new_incr_file(&self.names.filename);
        let path = self.names.path(&name);
        let incr = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_err("Can't open the append-only file", &path, e))?;
        manifest::write_manifest(&self.names.dir, &self.names.filename, &self.manifest)
            .map_err(|e| io_err("Can't persist the AOF manifest in", &self.names.dir, e))?;
        self.incr = Arc::new(incr);
        self.stream_db = None;
        Ok(())
    }

    /// `aof-disable-auto-gc` was turned off: the history files kept meanwhile go now.
    pub fn del_history_files(&mut self) -> Result<(), AofIoError> {
        del_history_files(&self.names, &mut self.manifest)
    }

    /// Whether a rewrite's switch to a new incr file is still to come.
    pub fn switch_pending(&self) -> bool {
        self.switch_at.is_some()
    }

    /// A rewrite's base is written as `written` (an RDB, or commands when `!preamble`): it
    /// becomes the base, the incr files before the cut become history and are deleted
    /// unless `keep_history` (`backgroundRewriteDoneHandler`).
    pub fn install_base(
        &mut self,
        written: &Path,
        size: u64,
        preamble: bool,
        keep_history: bool,
    ) -> Result<(), AofIoError> {
        install_base(
            &self.names,
            &mut self.manifest,
            written,
            preamble,
            true,
            keep_history,
        )?;
        let incr = self
            .manifest
            .incr
            .iter()
            .map(|i| std::fs::metadata(self.names.path(&i.name)).map_or(0, |m| m.len()))
            .sum::<u64>();
        self.base_size = size;
        self.current_size = size + incr;
        self.rewrite_base_size = self.current_size;
        Ok(())
    }
}

/// Makes `written` the base `manifest` lists (`backgroundRewriteDoneHandler`): a new base
/// name, the old base and the incr files written before the cut (all of them when the AOF
/// is off: `aof_open` false) become history, the manifest is persisted, and the history
/// files are deleted with their lines, unless `keep_history` (`aof-disable-auto-gc yes`:
/// they stay, listed as history, until a rewrite with it off).
fn install_base(
    names: &Names,
    manifest: &mut AofManifest,
    written: &Path,
    preamble: bool,
    aof_open: bool,
    keep_history: bool,
) -> Result<(), AofIoError> {
    let name = manifest.new_base_file(&names.filename, preamble);
    let path = names.path(&name);
    std::fs::rename(written, &path).map_err(|e| {
        io_err(
            "Error trying to rename the temporary AOF base file to",
            &path,
            e,
        )
    })?;
    eprintln!(
        "Successfully renamed the temporary AOF base file {} into {}",
        written.file_name().map_or_else(
            || written.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        String::from_utf8_lossy(&name)
    );
    manifest.mark_rewritten_incr_as_history(aof_open);
    manifest::write_manifest(&names.dir, &names.filename, manifest)
        .map_err(|e| io_err("Can't persist the AOF manifest in", &names.dir, e))?;
    if keep_history {
        return Ok(());
    }
    del_history_files(names, manifest)
}

/// Deletes the history files and persists the manifest without them (`aofDelHistoryFiles`).
fn del_history_files(names: &Names, manifest: &mut AofManifest) -> Result<(), AofIoError> {
    if manifest.history.is_empty() {
        return Ok(());
    }
    for old in manifest.take_history() {
        eprintln!(
            "Removing the history file {} in the background",
            String::from_utf8_lossy(&old.name)
        );
        let _ = std::fs::remove_file(old.path_in(&names.dir));
    }
    manifest::write_manifest(&names.dir, &names.filename, manifest)
        .map_err(|e| io_err("Can't persist the AOF manifest in", &names.dir, e))
}

/// Drains every executor's journal; the entries and the lowest watermark.
pub async fn drain(shard: &Rc<Shard>) -> (Vec<Entry>, u64) {
    let parts = shard
        .call_all(|s| {
            let entries = s.journal.borrow_mut().drain();
            (entries, journal::now_stamp())
        })
        .await;
    let mut entries = shard.journal.borrow_mut().drain();
    let mut watermark = journal::now_stamp();
    for (mut e, w) in parts {
        entries.append(&mut e);
        watermark = watermark.min(w);
    }
    (entries, watermark)
}

/// Tells every executor whether writes are refused after a failed AOF write (its errno).
async fn set_aof_errno(shard: &Rc<Shard>, errno: i32) {
    for to in 0..=shard.nshards {
        shard
            .call(to, move |s| {
                let gate = s.disk_gate.get();
                s.disk_gate.set(crate::shard::DiskGate {
                    aof_errno: errno,
                    ..gate
                });
            })
            .await;
    }
}

/// Turns journal recording on at every executor, leaving the AOF's gate as it is: a stream
/// that starts (a first replica's full sync, a promoted replica) must not miss the writes
/// that run before this loop's next pass sees it.
pub async fn start_recording(shard: &Rc<Shard>) {
    for to in 0..=shard.nshards {
        shard.call(to, |s| s.recording.set(true)).await;
    }
}

/// Turns journal recording on or off on every executor; tells the shards whether replies
/// to writes wait for the AOF (`appendfsync always`).
pub async fn set_recording(shard: &Rc<Shard>, on: bool, always: bool) {
    for to in 0..=shard.nshards {
        // A stream that started while this turns recording off keeps it on (`start_recording`).
        let on = on || crate::repl::master::wants_stream();
        shard
            .call(to, move |s| {
                s.recording.set(on);
                let gate = s.disk_gate.get();
                s.disk_gate.set(crate::shard::DiskGate {
                    aof_always: on && always,
                    ..gate
                });
            })
            .await;
    }
    if !on {
        shard.shared.aof_durable.store(u64::MAX, Ordering::Release);
    }
}

/// What INFO shows of the AOF, kept current by the writer task.
#[derive(Clone, Copy, Debug, Default)]
pub struct AofInfo {
    pub enabled: bool,
    pub current_size: u64,
    pub base_size: u64,
    pub rewrite_in_progress: bool,
    pub rewrite_scheduled: bool,
    pub last_rewrite_ok: bool,
    pub last_rewrite_time_sec: i64,
    pub current_rewrite_time_sec: i64,
    pub rewrites: u64,
    pub last_write_ok: bool,
}

/// Requests from rewrites (and the switch's outcome) to the writer task, which alone owns
/// the open `Writer`.
#[derive(Default)]
pub struct WriterMailbox {
    /// A rewrite's cut: switch incr files after this stamp.
    pub cut: std::cell::Cell<Option<u64>>,
    /// The switch for the last cut happened.
    pub switched: std::cell::Cell<bool>,
    /// A rewrite's base is written (where, its size, whether an RDB): install it.
    pub base_ready: std::cell::RefCell<Option<(PathBuf, u64, bool)>>,
    /// The outcome of installing it.
    pub installed: std::cell::RefCell<Option<Result<(), AofIoError>>>,
    pub info: std::cell::Cell<AofInfo>,
    /// Sync the next append whatever `appendfsync` says (shutdown).
    pub final_sync: std::cell::Cell<bool>,
    /// Entries up to this stamp were appended (and synced, if `final_sync` was set).
    pub written: std::cell::Cell<u64>,
    /// CONFIG SET turned `aof-disable-auto-gc` off: delete the history files.
    pub collect_history: std::cell::Cell<bool>,
}

/// Writes an empty base (`aof-base` 1, no keys; with `aof-use-rdb-preamble no` an empty
/// `.base.aof`) where `writer` will look for one: the AOF's start on an empty dataset, as
/// Redis makes it at start-up.
pub fn write_empty_base(
    names: &Names,
    manifest: &mut AofManifest,
    preamble: bool,
) -> Result<(), AofIoError> {
    use crate::rdb::file_writer::{AuxFields, RdbFileWriter, RdbWriteOptions};
    std::fs::create_dir_all(&names.dir)
        .map_err(|e| io_err("Can't open or create append-only dir", &names.dir, e))?;
    let name = manifest.new_base_file(&names.filename, preamble);
    let path = names.path(&name);
    let write = || -> std::io::Result<()> {
        if !preamble {
            return File::create(&path)?.sync_all();
        }
        let mut w = RdbFileWriter::new(File::create(&path)?, RdbWriteOptions::default())?;
        w.write_aux_fields(&AuxFields {
            aof_base: true,
            ..AuxFields::new(now_ms() / 1000, crate::util::mem::rss_bytes())
        })?;
        w.finish()?.sync_all()
    };
    write().map_err(|e| io_err("Can't write the AOF base", &path, e))?;
    eprintln!(
        "Creating AOF base file {} on server start",
        String::from_utf8_lossy(&name)
    );
    Ok(())
}

/// Exits the process: with `appendfsync always` a reply may already promise what failed.
fn fatal_write_error(e: &str) -> ! {
    eprintln!("{e}");
    eprintln!(
        "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
    );
    std::process::exit(1)
}

impl super::Persist {
    /// The writer task. It owns the open AOF (`writer`) while `appendonly` is yes, opens it
    /// when CONFIG SET turns it on (with a rewrite, as Redis's `startAppendOnly`), closes it
    /// when turned off, and serves rewrites through `aof_mail`.
    pub(super) async fn aof_task(
        self: Rc<Self>,
        mut writer: Option<Writer>,
        mut told_always: Option<bool>,
    ) {
        // One merge feeds both readers of the stream: the AOF and the replication backlog.
        let mut merger = journal::Merger::default();
        // Recording for replication alone (the AOF off).
        let mut told_repl = false;
        // The failed write the shards refuse writes for (`DiskGate::aof_errno`).
        let mut told_errno = 0;
        let mut last_error_log = None;
        loop {
            glommio::timer::sleep(DRAIN_INTERVAL).await;
            let (enabled, fsync, timestamps) = {
                let c = self.shard.shared.config();
                (
                    c.get_bool("appendonly"),
                    Fsync::from_config(&c),
                    c.get_bool("aof-timestamp-enabled"),
                )
            };
            let repl = crate::repl::master::wants_stream();
            if enabled
                && writer.is_none()
                && !self
                    .shard
                    .shared
                    .load_progress
                    .loading
                    .load(Ordering::Relaxed)
            {
                writer = self.aof_turn_on().await;
                told_always = None;
            }
            if !enabled {
                if let Some(mut w) = writer.take() {
                    let (entries, watermark) = drain(&self.shard).await;
                    let batch = merger.ready(entries, watermark);
                    crate::repl::master::feed(&batch, watermark);
                    if let Err(e) = w.append(batch, watermark, Fsync::Always, timestamps).await {
                        eprintln!("{e}");
                    }
                    set_recording(&self.shard, repl, false).await;
                    told_repl = repl;
                    if told_errno != 0 {
                        told_errno = 0;
                        set_aof_errno(&self.shard, 0).await;
                    }
                    self.set_aof_info(|i| i.enabled = false);
                }
                if repl != told_repl {
                    set_recording(&self.shard, repl, false).await;
                    told_repl = repl;
                }
                if repl {
                    let (entries, watermark) = drain(&self.shard).await;
                    crate::repl::master::feed(&merger.ready(entries, watermark), watermark);
                }
                continue;
            }
            let Some(w) = writer.as_mut() else { continue };
            let always = fsync == Fsync::Always;
            if told_always != Some(always) {
                set_recording(&self.shard, true, always).await;
                let durable = if always { w.durable } else { u64::MAX };
                self.shard
                    .shared
                    .aof_durable
                    .store(durable, Ordering::Release);
                told_always = Some(always);
            }
            if let Some(cut) = self.aof_mail.cut.take() {
                w.switch_after(cut);
            }
            let switching = w.switch_pending();
            let final_sync = self.aof_mail.final_sync.take();
            let sync = if final_sync { Fsync::Always } else { fsync };
            let (entries, watermark) = drain(&self.shard).await;
            let batch = merger.ready(entries, watermark);
            crate::repl::master::feed(&batch, watermark);
            let ok = match w.append(batch, watermark, sync, timestamps).await {
                Ok(()) => true,
                Err(e) if always => fatal_write_error(&e),
                Err(e) => {
                    // Retried every pass; logged at most every 30 s, as Redis does.
                    if last_error_log.is_none_or(|t: Instant| t.elapsed() > WRITE_ERROR_LOG_EVERY) {
                        eprintln!("{e}");
                        last_error_log = Some(Instant::now());
                    }
                    false
                }
            };
            if w.last_errno != told_errno {
                told_errno = w.last_errno;
                set_aof_errno(&self.shard, told_errno).await;
            }
            if always {
                self.shard
                    .shared
                    .aof_durable
                    .store(w.durable, Ordering::Release);
            }
            self.aof_mail.written.set(w.durable);
            if switching && !w.switch_pending() {
                self.aof_mail.switched.set(true);
            }
            if self.aof_mail.collect_history.take() {
                if let Err(e) = w.del_history_files() {
                    eprintln!("{e}");
                }
            }
            let ready = self.aof_mail.base_ready.borrow_mut().take();
            if let Some((path, size, preamble)) = ready {
                let keep = self.shard.shared.config().get_bool("aof-disable-auto-gc");
                *self.aof_mail.installed.borrow_mut() =
                    Some(w.install_base(&path, size, preamble, keep));
            }
            let (current, base) = (w.current_size, w.base_size);
            self.set_aof_info(|i| {
                i.enabled = true;
                i.last_write_ok = ok;
                i.current_size = current;
                i.base_size = base;
            });
            self.maybe_auto_rewrite(w);
        }
    }

    pub(super) fn set_aof_info(&self, f: impl FnOnce(&mut AofInfo)) {
        let mut info = self.aof_mail.info.get();
        f(&mut info);
        self.aof_mail.info.set(info);
    }

    /// CONFIG SET appendonly yes: a fresh incr file, recording on, and a rewrite whose
    /// snapshot becomes the base.
    async fn aof_turn_on(self: &Rc<Self>) -> Option<Writer> {
        let names = Names::from_config(&self.shard.shared.config());
        let mut manifest = manifest::read_manifest(&names.dir, &names.filename)
            .ok()
            .flatten()
            .unwrap_or_default();
        manifest.new_incr_file(&names.filename);
        set_recording(&self.shard, true, false).await;
        match Writer::open(names, manifest) {
            Ok(w) => {
                self.set_aof_info(|i| i.enabled = true);
                if self.snapshot_busy() {
                    self.set_aof_info(|i| i.rewrite_scheduled = true);
                } else {
                    self.start_rewrite();
                }
                Some(w)
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!("Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. Check the above logs for more info about the error.");
                set_recording(&self.shard, crate::repl::master::wants_stream(), false).await;
                let _ = self
                    .shard
                    .shared
                    .config()
                    .set("appendonly", &["no".into()], true);
                None
            }
        }
    }

    /// `auto-aof-rewrite-percentage` / `-min-size`: a rewrite once the AOF has grown enough
    /// since the last one.
    fn maybe_auto_rewrite(self: &Rc<Self>, w: &Writer) {
        let (percent, min) = {
            let c = self.shard.shared.config();
            (
                c.get_i64("auto-aof-rewrite-percentage").max(0) as u64,
                c.get_i64("auto-aof-rewrite-min-size").max(0) as u64,
            )
        };
        if percent == 0 || w.current_size <= min || self.snapshot_busy() {
            return;
        }
        let base = w.rewrite_base_size.max(1);
        let growth = (w.current_size.saturating_sub(base)) * 100 / base;
        if growth >= percent {
            eprintln!("Starting automatic rewriting of AOF on {growth}% growth");
            self.start_rewrite();
        }
    }

    /// Starts a rewrite in a task of its own (the caller checked nothing else snapshots).
    pub(super) fn start_rewrite(self: &Rc<Self>) {
        let started = Instant::now();
        self.set_aof_info(|i| {
            i.rewrite_in_progress = true;
            i.rewrite_scheduled = false;
        });
        *self.rewrite_started.borrow_mut() = Some(started);
        eprintln!("Background append only file rewriting started");
        let me = self.clone();
        glommio::spawn_local(async move {
            let r = me.rewrite_aof().await;
            let secs = started.elapsed().as_secs() as i64;
            *me.rewrite_started.borrow_mut() = None;
            match &r {
                Ok(()) => eprintln!("Background AOF rewrite finished successfully"),
                Err(e) => eprintln!("Background AOF rewrite failed: {e}"),
            }
            me.set_aof_info(|i| {
                i.rewrite_in_progress = false;
                i.last_rewrite_ok = r.is_ok();
                i.last_rewrite_time_sec = secs;
                i.rewrites += u64::from(r.is_ok());
            });
        })
        .detach();
    }

    /// A rewrite: a snapshot cut, written as the new base (an RDB, or its commands with
    /// `aof-use-rdb-preamble no`). With the AOF on, the writer switches incr files at the
    /// cut and installs the base; with it off (Redis rewrites then too) the base is
    /// installed here, alone in the manifest.
    async fn rewrite_aof(&self) -> Result<(), String> {
        let (cfg, names, preamble, timestamps, keep_history) = {
            let c = self.shard.shared.config();
            (
                super::rdb_file::FileConfig::from_config(&c),
                Names::from_config(&c),
                c.get_bool("aof-use-rdb-preamble"),
                c.get_bool("aof-timestamp-enabled"),
                c.get_bool("aof-disable-auto-gc"),
            )
        };
        let aof_on = self.aof_mail.info.get().enabled;
        if !aof_on {
            std::fs::create_dir_all(&names.dir)
                .map_err(|e| io_err("Can't open or create append-only dir", &names.dir, e))?;
        }
        let format = crate::db::SnapshotFormat {
            compression: cfg.options.compression,
            eviction: cfg.format_eviction,
            now_ms: now_ms(),
        };
        let cut = super::rdb_file::cut(&self.shard, format, self.replay.libraries).await;
        self.cuts.set(self.cuts.get() + 1);
        if aof_on {
            self.aof_mail.switched.set(false);
            self.aof_mail.cut.set(Some(cut.stamp));
        }
        let pid = std::process::id();
        let bg = names.dir.join(format!("temp-rewriteaof-bg-{pid}.aof"));
        let target = super::rdb_file::Target {
            tmp: names.dir.join(format!("temp-rewriteaof-{pid}.aof")),
            path: if preamble {
                bg.clone()
            } else {
                names.dir.join(format!("temp-rewriteaof-rdb-{pid}.aof"))
            },
            aof_base: true,
        };
        let mut size = super::rdb_file::write(&self.shard, &cut, &cfg, &target, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if !preamble {
            let (rdb, out) = (target.path.clone(), bg.clone());
            let opts = crate::rdb::file_reader::RdbReadOptions {
                databases: self.shard.shared.databases as u64,
                verify_checksum: false,
                ..Default::default()
            };
            let ts = timestamps.then(|| now_ms() / 1000);
            let r = glommio::executor()
                .spawn_blocking(move || {
                    let r = crate::aof::rewrite::rdb_to_commands(&rdb, &out, &opts, ts);
                    let _ = std::fs::remove_file(&rdb);
                    if r.is_err() {
                        let _ = std::fs::remove_file(&out);
                    }
                    r
                })
                .await;
            size = r.map_err(|e| format!("Error writing the AOF base: {e}"))?;
        }
        eprintln!("Successfully created the temporary AOF base file temp-rewriteaof-bg-{pid}.aof");
        if !aof_on {
            let mut manifest = manifest::read_manifest(&names.dir, &names.filename)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            return install_base(&names, &mut manifest, &bg, preamble, false, keep_history);
        }
        let target = super::rdb_file::Target { path: bg, ..target };
        // The writer switches incr files once every entry before the cut is written.
        while !self.aof_mail.switched.get() {
            if !self.aof_mail.info.get().enabled {
                let _ = std::fs::remove_file(&target.path);
                return Err("the AOF was turned off".into());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        *self.aof_mail.base_ready.borrow_mut() = Some((target.path.clone(), size, preamble));
        loop {
            if let Some(r) = self.aof_mail.installed.borrow_mut().take() {
                return r;
            }
            if !self.aof_mail.info.get().enabled {
                let _ = std::fs::remove_file(&target.path);
                return Err("the AOF was turned off".into());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
}
