//! `call()`: the one place every command on the keyspace runs through, wherever it came from
//! (a client on the keys' core, a request forwarded from another core, a coordinator holding
//! several shards, a queued MULTI command, a served blocked client). It owns, once: command
//! stats and error stats, the panic guard, the MIGRATE in-flight check, the change count
//! (Redis's `server.dirty`), WATCH signals and the propagation of the command's effect into
//! the execution unit (`shard::journal`), as Redis 7.0's `call()` and `propagateNow` do.
//!
//! A handler reports what it changed with `Ctx::dirty` and, when Redis propagates something
//! other than the command as received (SET EX becomes SET PXAT, SPOP becomes SREM ...),
//! says so with `Ctx::propagate`. A command that changed nothing propagates nothing.

use std::rc::Rc;

use super::{table, KeyedFn};
use crate::config::keyspace_events;
use crate::db::{Db, Keyspace, Parts};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::shard::journal::{Op, Unit};
use crate::shard::observe;
use crate::shard::tracking::{self, Reader, Track};
use crate::shard::tx::ShardSet;
use crate::shard::{ClientIdent, Shard, ShardStats};
use crate::types::Limits;
use crate::util::time::{elapsed_ns, ticks};

/// Everything a command on the keyspace may touch.
pub struct Ctx<'a> {
    /// The executor running the command: not necessarily the owner of its keys (a
    /// coordinator holds other shards' data), so use it for settings and shared state only.
    pub shard: &'a Rc<Shard>,
    /// The selected database across the shards the command holds.
    pub db: Db<'a>,
    pub out: &'a mut Reply,
    /// The command's time (Unix ms), fixed for the whole command.
    pub now: i64,
    effects: Effects,
}

/// What a command did, for `call()` to settle afterwards.
#[derive(Default)]
struct Effects {
    dirty: u64,
    /// Propagate the command even if it changed nothing (PUBLISH, FUNCTION ...).
    force: bool,
    /// The command said what to propagate instead of itself (`ops`, maybe nothing).
    rewritten: bool,
    /// The command touched databases besides the selected one (MOVE, COPY DB, SWAPDB,
    /// FLUSHALL): `call()` settles all of them.
    all_dbs: bool,
    /// The keys looked up for writing count as modified for WATCH even without a change
    /// (Redis's handlers that call `signalModifiedKey` unconditionally, as LTRIM).
    signal: bool,
    recording: bool,
    ops: Vec<Op>,
    /// The last lazily expired key (its place in this thread's order of expiries) whose
    /// `expired` notification went out: those come before the event that met them.
    expired_notified: u64,
}

impl<'a> Ctx<'a> {
    /// Counts `n` changes to the dataset. A command that counts none propagates nothing and
    /// touches no WATCHed key.
    #[inline]
    pub fn dirty(&mut self, n: u64) {
        self.effects.dirty += n;
    }

    /// The changes counted so far.
    pub fn dirtied(&self) -> u64 {
        self.effects.dirty
    }

    /// Propagates `argv` (in the selected database) instead of the command as received; called
    /// several times, the ops go out in order. Propagating nothing: see `propagate_nothing`.
    pub fn propagate(&mut self, argv: &[&[u8]]) {
        let db = self.db.index();
        self.propagate_in(db, argv);
    }

    /// `propagate` in database `db`.
    pub fn propagate_in(&mut self, db: usize, argv: &[&[u8]]) {
        self.effects.rewritten = true;
        if self.effects.recording {
            let mut unit = Unit::default();
            unit.push(db, argv);
            self.effects.ops.append(&mut unit.ops);
        }
    }

    /// The command's change is not propagated (a read that refreshed a cache, say).
    pub fn propagate_nothing(&mut self) {
        self.effects.rewritten = true;
    }

    /// Propagates the command as received even though it changed no key.
    pub fn force_propagate(&mut self) {
        self.effects.force = true;
    }

    /// Whether propagated ops are being recorded (handlers may skip building them).
    pub fn recording(&self) -> bool {
        self.effects.recording
    }

    /// The keys this command looked up for writing are signalled to their watchers even if
    /// it counted no change, as Redis does for a few commands (LTRIM).
    pub fn signal_watchers(&mut self) {
        self.effects.signal = true;
    }

    /// Marks that the command changed databases other than the selected one.
    pub fn touches_all_dbs(&mut self) {
        self.effects.all_dbs = true;
    }

    /// Publishes keyspace notification `event` of `class` (`config::keyspace_events`) for
    /// `key` in the selected database, as Redis's `notifyKeyspaceEvent`: call it where the
    /// change happens. Off (the usual case), it costs one load and one test.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        if self.shard.pubsub.keyspace_events.get() & class != 0 {
            let db = self.db.index();
            self.notify_now(db, event, key);
        }
    }

    /// Whether notifications of `class` are on: guards work done only to notify.
    #[inline]
    pub fn notifies(&self, class: u32) -> bool {
        self.shard.pubsub.keyspace_events.get() & class != 0
    }

    /// `notify` for a key of database `db` (MOVE, COPY ... DB).
    #[inline]
    pub fn notify_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        if self.shard.pubsub.keyspace_events.get() & class != 0 {
            self.notify_now(db, event, key);
        }
    }

    #[cold]
    fn notify_now(&mut self, db: usize, event: &'static str, key: &[u8]) {
        // Keys the command found expired on the way were deleted (and announced, in Redis)
        // before this change, and keys created or missed announced as it happened.
        let flags = self.shard.pubsub.keyspace_events.get();
        if flags & (keyspace_events::EXPIRED | keyspace_events::NEW | keyspace_events::KEY_MISS)
            != 0
        {
            let seen = self.effects.expired_notified;
            let mut expired: Vec<(u64, usize, Box<[u8]>)> = Vec::new();
            let mut announced = Vec::new();
            for data in self.db.parts().each() {
                for (i, ks) in data.dbs().iter_mut().enumerate() {
                    if flags & keyspace_events::EXPIRED != 0 {
                        expired.extend(
                            ks.expired()
                                .iter()
                                .filter(|(seq, _)| *seq > seen)
                                .map(|(seq, k)| (*seq, i, k.clone())),
                        );
                    }
                    take_announced(ks, i, &mut announced);
                }
            }
            expired.sort_unstable_by_key(|(seq, _, _)| *seq);
            self.effects.expired_notified = notify_pending(self.shard, &expired, seen, announced);
        }
        keyspace_event(self.shard, db, event, key);
    }

    /// The encoding thresholds values are built with.
    pub fn limits(&self) -> Limits {
        self.shard.settings.borrow().limits
    }
}

/// Where and how one command runs: the executor, the data it holds, the client's database
/// and reply buffer, and the execution unit collecting what it propagates.
pub struct Exec<'a> {
    pub shard: &'a Rc<Shard>,
    pub parts: Parts<'a>,
    pub db: usize,
    pub out: &'a mut Reply,
    pub now: i64,
    pub unit: &'a mut Unit,
    /// Who sent the command, when a client did (slow log entries, MONITOR lines).
    pub client: Option<&'a ClientIdent>,
    /// Client-side caching: whose reads are remembered, whose changes these are.
    pub track: Track,
}

/// Runs keyed handler `f` of command `idx` (a keyed command: every key on a shard `x` holds).
pub fn call(x: &mut Exec<'_>, idx: usize, f: KeyedFn, args: &Args<'_>) {
    if touches_in_flight(&mut x.parts, idx, args) {
        reject(x.shard, idx, x.out, &crate::cluster::slotmap::try_again());
        return;
    }
    let started = ticks();
    let mark = x.out.buf.len();
    let (result, dirty) = run_body(x, args, true, |c| f(c, args));
    if x.track.reader != 0 {
        remember_reads(x, idx, args);
    }
    if result.is_err() {
        // A handler that failed (or panicked) part-way must not leave a partial reply.
        x.out.buf.truncate(mark);
    }
    let ns = elapsed_ns(started);
    let mut stats = x.shard.stats.borrow_mut();
    stats.dirty += dirty;
    count_call(x.shard, &mut stats, idx, ns, result.as_ref().err());
    drop(stats);
    if let Err(e) = result {
        x.out.error(&e);
    }
    observe(x.shard, idx, ns, args, x.db, x.client);
}

/// A tracking client's command ran: if it is read-only, its keys are remembered on their
/// owners' tables for that client (Redis's `trackingRememberKeys`, after the command ran,
/// whatever its result). Shard channels are not keys to remember.
#[inline(never)]
fn remember_reads(x: &mut Exec<'_>, idx: usize, args: &Args<'_>) {
    let spec = table().specs[idx];
    if !spec.has(super::flag::READONLY) || spec.has(super::flag::PUBSUB) {
        return;
    }
    let reader = Reader {
        id: x.track.reader,
        home: x.track.home,
    };
    for p in spec.all_key_positions(args) {
        let key = args.get(p);
        tracking::remember(x.shard, x.parts.owner_of(key), key, reader);
    }
}

/// Counts one call of command `idx` that took `ns` (INFO commandstats, latencystats).
#[inline]
fn count_call(shard: &Shard, stats: &mut ShardStats, idx: usize, ns: u64, err: Option<&Error>) {
    stats.commands += 1;
    let s = &mut stats.cmd[idx];
    s.calls += 1;
    s.nsec += ns;
    if let Some(e) = err {
        s.failed += 1;
        stats.count_error(e);
    }
    if shard.settings.borrow().latency_tracking {
        if let Some(h) = stats.hist.get_mut(idx) {
            h.get_or_insert_with(Default::default).record(ns);
        }
    }
}

/// What a command leaves for the operator once it ran, as Redis's `call()`: a latency
/// sample (`command`, `fast-command`) and a slow log entry when it was slow, and a line for
/// the MONITOR clients. Costs two compares and an atomic load unless one applies.
#[inline]
pub fn observe(
    shard: &Rc<Shard>,
    idx: usize,
    ns: u64,
    args: &Args<'_>,
    db: usize,
    client: Option<&ClientIdent>,
) {
    let us = ns / 1000;
    let (slower, latency_ms) = {
        let s = shard.settings.borrow();
        (s.slowlog_slower_than, s.latency_threshold_ms)
    };
    if (slower >= 0 && us >= slower as u64) || (latency_ms > 0 && us / 1000 >= latency_ms) {
        slow(shard, idx, us, args, client);
    }
    if shard.shared.monitors.any() {
        monitor(shard, idx, args, db, client);
    }
}

#[cold]
fn slow(shard: &Rc<Shard>, idx: usize, us: u64, args: &Args<'_>, client: Option<&ClientIdent>) {
    let spec = table().specs[idx];
    let (slower, max_len, latency_ms) = {
        let s = shard.settings.borrow();
        (
            s.slowlog_slower_than,
            s.slowlog_max_len,
            s.latency_threshold_ms,
        )
    };
    if latency_ms > 0 && us / 1000 >= latency_ms {
        let event = if spec.has(super::flag::FAST) {
            "fast-command"
        } else {
            "command"
        };
        let now_s = crate::util::time::now_ms() / 1000;
        shard.observe.add_latency(event, now_s, us / 1000);
    }
    if slower >= 0 && us >= slower as u64 && !spec.has(super::flag::SKIP_SLOWLOG) {
        let shown = shown_args(idx, args);
        let entry = observe::slow_entry(shard, client, shown.into_iter(), us);
        shard.observe.push_slow(entry, max_len);
    }
}

#[cold]
fn monitor(
    shard: &Rc<Shard>,
    idx: usize,
    args: &Args<'_>,
    db: usize,
    client: Option<&ClientIdent>,
) {
    use super::flag::{ADMIN, SKIP_MONITOR};
    // Administrative commands are not shown, as in Redis.
    if table().specs[idx].has(ADMIN | SKIP_MONITOR) {
        return;
    }
    monitor_now(shard, idx, args, db, client);
}

/// Shows a command to the MONITOR clients whatever its flags: EVAL, EVALSHA and FCALL show
/// themselves before the commands their script runs (Redis's explicit feed in
/// `evalCommand`/`fcallCommand`).
pub fn monitor_before(conn: &Conn, name: &str, args: &Args<'_>) {
    if conn.shard.shared.monitors.any() {
        if let Some(idx) = table().lookup(name.as_bytes()) {
            monitor_now(&conn.shard, idx, args, conn.db, Some(&conn.meta.ident));
        }
    }
}

#[cold]
fn monitor_now(
    shard: &Rc<Shard>,
    idx: usize,
    args: &Args<'_>,
    db: usize,
    client: Option<&ClientIdent>,
) {
    let mut line = Vec::with_capacity(64);
    // Lua's client shows as `lua`, as Redis's `CLIENT_LUA` does, and one on the Unix socket
    // as `unix:` and the socket's path (its `addr` is the path and `:0`).
    let unix_addr;
    let addr = match client {
        None => "",
        Some(c) if c.script => "lua",
        Some(c) if c.unix => {
            let path = c.addr.strip_suffix(":0").unwrap_or(&c.addr);
            unix_addr = format!("unix:{path}");
            &unix_addr
        }
        Some(c) => c.addr.as_str(),
    };
    observe::monitor_line(db, addr, shown_args(idx, args).into_iter(), &mut line);
    observe::feed_monitors(shard, &line);
}

/// The arguments the slow log and MONITOR show: passwords replaced by `(redacted)`, as
/// Redis's `redactClientCommandArgument` does for AUTH, HELLO ... AUTH and MIGRATE AUTH/AUTH2.
fn shown_args<'a>(idx: usize, args: &Args<'a>) -> Vec<&'a [u8]> {
    let mut shown: Vec<&[u8]> = args.iter().collect();
    let name = table().full_names[idx].as_str();
    let mut redact = |from: usize, n: usize| {
        for a in shown.iter_mut().skip(from).take(n) {
            *a = b"(redacted)";
        }
    };
    match name {
        "auth" => redact(1, usize::MAX),
        "hello" | "migrate" => {
            let mut i = if name == "hello" { 2 } else { 6 };
            while i < args.len() {
                if args.is(i, "AUTH") {
                    let n = if name == "hello" { 2 } else { 1 };
                    redact(i + 1, n);
                    i += n;
                } else if args.is(i, "AUTH2") {
                    redact(i + 1, 2);
                    i += 2;
                }
                i += 1;
            }
        }
        _ => {}
    }
    shown
}

/// Runs `body` as a command over the data `x` holds, then settles what it did: WATCH
/// signals, and its effect on the unit (lazily expired keys' DELs first, then the command
/// itself (`verbatim`) or what it asked to propagate instead). Returns the body's result and
/// the changes it counted.
pub fn run_body<R>(
    x: &mut Exec<'_>,
    args: &Args<'_>,
    verbatim: bool,
    body: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
) -> (Result<R, Error>, u64) {
    let recording = x.shard.recording.get();
    let mut ctx = Ctx {
        shard: x.shard,
        db: Db::new(x.parts.reborrow(), x.db),
        out: &mut *x.out,
        now: x.now,
        effects: Effects {
            recording,
            rewritten: !verbatim,
            ..Effects::default()
        },
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut ctx)))
        .unwrap_or_else(|_| Err(Error::msg(PANIC_REPLY)));
    let effects = ctx.effects;
    settle(x, &effects, args);
    (result, effects.dirty)
}

/// After a command: WATCH signals, and its effect on the unit. The usual command (one
/// shard, no key expired or watched on the way, nothing recorded) leaves at once.
#[inline]
fn settle(x: &mut Exec<'_>, effects: &Effects, args: &Args<'_>) {
    if let Parts::One(data) = &mut x.parts {
        let ks = data.db(x.db);
        if !effects.recording
            && !effects.all_dbs
            && !ks.has_expired()
            && !ks.has_touched()
            && !ks.has_announced()
        {
            return;
        }
    }
    settle_all(x, effects, args)
}

#[cold]
fn settle_all(x: &mut Exec<'_>, effects: &Effects, args: &Args<'_>) {
    let changed = effects.dirty > 0;
    let signal = changed || effects.signal;
    let db = x.db;
    // Keys expired on the way, over every database and shard touched, in the order the
    // command met them: their DELs come first (rule R5).
    let mut expired: Vec<(u64, usize, Box<[u8]>)> = Vec::new();
    // `new` and `keymiss` notifications, recorded only while they are on, in any database.
    let announcing = x.shard.pubsub.keyspace_events.get()
        & (keyspace_events::NEW | keyspace_events::KEY_MISS)
        != 0;
    let mut announced = Vec::new();
    let (shard, origin) = (x.shard, x.track.origin);
    let waiter = x.client.map(|c| &c.invalidations);
    let mut settle_data = |data: &mut crate::db::ShardData| {
        if announcing {
            for (i, ks) in data.dbs().iter_mut().enumerate() {
                take_announced(ks, i, &mut announced);
            }
        }
        let first_expired = expired.len();
        if effects.all_dbs {
            for (i, ks) in data.dbs().iter_mut().enumerate() {
                take_expired(ks, i, &mut expired);
                ks.settle_touched(signal);
            }
        } else {
            let ks = data.db(db);
            take_expired(ks, db, &mut expired);
            ks.settle_touched(signal);
        }
        if data.tracking.wants_changes() || data.has_changed() {
            invalidate_changes(shard, data, &expired[first_expired..], origin, waiter);
        }
    };
    // One shard's data, the usual case, without the iterator over held shards.
    match &mut x.parts {
        Parts::One(data) => settle_data(data),
        parts => parts.each().for_each(settle_data),
    }
    expired.sort_unstable_by_key(|(seq, _, _)| *seq);
    notify_pending(x.shard, &expired, effects.expired_notified, announced);
    if !effects.recording {
        return;
    }
    let unit = &mut *x.unit;
    push_dels(unit, expired);
    if !(changed || effects.force) {
        return;
    }
    if effects.rewritten {
        unit.ops.extend(effects.ops.iter().cloned());
    } else {
        let argv: Vec<&[u8]> = args.iter().collect();
        unit.push(db, &argv);
    }
}

/// Client-side caching: the keys of `data` that expired (changed by nobody, as Redis
/// signals them) and those the command changed (by `origin`) are invalidated; the messages
/// hold back the replies of the client whose counter is `waiter`.
#[cold]
fn invalidate_changes(
    shard: &Rc<Shard>,
    data: &mut crate::db::ShardData,
    expired: &[(u64, usize, Box<[u8]>)],
    origin: u64,
    waiter: Option<&std::sync::Arc<std::sync::atomic::AtomicUsize>>,
) {
    let changed = data.take_changed();
    if !data.tracking.wants_changes() {
        return;
    }
    if !expired.is_empty() {
        let keys: Vec<Box<[u8]>> = expired.iter().map(|(_, _, k)| k.clone()).collect();
        tracking::invalidate(shard, data, &keys, 0, waiter);
    }
    if !changed.is_empty() {
        tracking::invalidate(shard, data, &changed, origin, waiter);
    }
}

/// Moves the keys `ks` (database `db`) deleted on expiry into `into`.
#[inline]
fn take_expired(ks: &mut Keyspace, db: usize, into: &mut Vec<(u64, usize, Box<[u8]>)>) {
    if ks.has_expired() {
        into.extend(ks.take_expired().into_iter().map(|(seq, k)| (seq, db, k)));
    }
}

/// A pending `new` or `keymiss` notification: its place in the order of expiries, database,
/// event and key.
type Announced = (u64, usize, &'static str, Box<[u8]>);

/// Moves the notifications `ks` (database `db`) recorded into `into`.
#[inline]
fn take_announced(ks: &mut Keyspace, db: usize, into: &mut Vec<Announced>) {
    if ks.has_announced() {
        into.extend(
            ks.take_announced()
                .into_iter()
                .map(|(seq, event, k)| (seq, db, event, k)),
        );
    }
}

/// Publishes, in the order they happened, the `expired` notifications of `expired` (sorted)
/// past `seen` and the `announced` ones; returns the last expiry announced.
fn notify_pending(
    shard: &Rc<Shard>,
    expired: &[(u64, usize, Box<[u8]>)],
    seen: u64,
    mut announced: Vec<Announced>,
) -> u64 {
    if announced.is_empty() {
        return notify_expired(shard, expired, seen);
    }
    let mut last = seen;
    announced.sort_unstable_by_key(|a| a.0);
    let mut expired = expired.iter().filter(|e| e.0 > seen).peekable();
    let announce_expired = shard.pubsub.keyspace_events.get() & keyspace_events::EXPIRED != 0;
    for (seq, db, event, key) in &announced {
        while let Some((s, d, k)) = expired.next_if(|e| e.0 < *seq) {
            if announce_expired {
                keyspace_event(shard, *d, "expired", k);
                last = last.max(*s);
            }
        }
        keyspace_event(shard, *db, event, key);
    }
    if announce_expired {
        for (s, d, k) in expired {
            keyspace_event(shard, *d, "expired", k);
            last = last.max(*s);
        }
    }
    last
}

/// Propagates expired keys (sorted by expiry order) as DELs.
fn push_dels(unit: &mut Unit, expired: Vec<(u64, usize, Box<[u8]>)>) {
    for (_, db, key) in &expired {
        unit.push(*db, &[b"DEL", key]);
    }
}

/// A keyspace event waiting to be published: database, event name, key.
type HeldEvent = (usize, Box<str>, Box<[u8]>);

thread_local! {
    /// The keyspace events of a script run that may still have to start again holding every
    /// shard (`cmd::scripting`): its reads' `keymiss` events must not be announced twice.
    static HELD_EVENTS: std::cell::RefCell<Option<Vec<HeldEvent>>> =
        const { std::cell::RefCell::new(None) };
}

/// From now on this thread's keyspace events wait (a script run that may restart).
pub fn hold_events() {
    HELD_EVENTS.with(|h| *h.borrow_mut() = Some(Vec::new()));
}

/// Publishes the events held since `hold_events`, in order, and stops holding them; with
/// `restarting`, the `keymiss` ones are dropped: the run starting again reads those keys
/// again. (Expiries and everything else happened for good.) Nothing when none are held.
pub fn release_events(shard: &Rc<Shard>, restarting: bool) {
    let Some(held) = HELD_EVENTS.with(|h| h.borrow_mut().take()) else {
        return;
    };
    for (db, event, key) in held {
        if !(restarting && &*event == "keymiss") {
            keyspace_event(shard, db, &event, &key);
        }
    }
}

#[cold]
fn hold_event(db: usize, event: &str, key: &[u8]) {
    HELD_EVENTS.with(|h| {
        if let Some(held) = h.borrow_mut().as_mut() {
            held.push((db, event.into(), key.into()));
        }
    });
}

/// Publishes one keyspace notification to `__keyspace@<db>__:<key>` and/or
/// `__keyevent@<db>__:<event>` as `notify-keyspace-events` asks (the class was checked).
pub fn keyspace_event(shard: &Rc<Shard>, db: usize, event: &str, key: &[u8]) {
    use std::io::Write;
    if HELD_EVENTS.with(|h| h.borrow().is_some()) {
        return hold_event(db, event, key);
    }
    let flags = shard.pubsub.keyspace_events.get();
    let mut channel = Vec::with_capacity(24 + key.len().max(event.len()));
    if flags & keyspace_events::KEYSPACE != 0 {
        let _ = write!(channel, "__keyspace@{db}__:");
        channel.extend_from_slice(key);
        crate::shard::pubsub::publish_nowait(shard, &channel, event.as_bytes());
    }
    if flags & keyspace_events::KEYEVENT != 0 {
        channel.clear();
        let _ = write!(channel, "__keyevent@{db}__:{event}");
        crate::shard::pubsub::publish_nowait(shard, &channel, key);
    }
}

/// `expired` notifications for the keys of `expired` (in expiry order) past `seen`;
/// returns the last one announced.
fn notify_expired(shard: &Rc<Shard>, expired: &[(u64, usize, Box<[u8]>)], seen: u64) -> u64 {
    let mut last = seen;
    if shard.pubsub.keyspace_events.get() & keyspace_events::EXPIRED == 0 {
        return last;
    }
    for (seq, db, key) in expired {
        if *seq > seen {
            keyspace_event(shard, *db, "expired", key);
            last = last.max(*seq);
        }
    }
    last
}

/// Records a command refused before it ran (Redis's `rejected_calls`) and answers `e`.
pub fn reject(shard: &Shard, idx: usize, out: &mut Reply, e: &Error) {
    let mut stats = shard.stats.borrow_mut();
    stats.cmd[idx].rejected += 1;
    stats.count_error(e);
    drop(stats);
    out.error(e);
}

/// Whether a command names a key that a MIGRATE is moving right now.
#[inline]
fn touches_in_flight(parts: &mut Parts<'_>, idx: usize, args: &Args<'_>) -> bool {
    let none = match &*parts {
        Parts::One(d) => d.in_flight.is_empty(),
        many => many.each_ref().all(|d| d.in_flight.is_empty()),
    };
    !none && in_flight_key(parts, idx, args)
}

#[cold]
fn in_flight_key(parts: &mut Parts<'_>, idx: usize, args: &Args<'_>) -> bool {
    table().specs[idx]
        .all_key_positions(args)
        .into_iter()
        .any(|p| {
            let key = args.get(p);
            parts.owner_of(key).in_flight.contains(key)
        })
}

/// Ends an execution unit that ran on `shard` holding data last stamped `clock`: stamps the
/// unit and appends it to the journal. Returns the stamp (0 when nothing was recorded), for
/// the caller to set as the held data's new clock.
pub fn end_unit(shard: &Shard, unit: &mut Unit, clock: u64) -> u64 {
    if unit.is_empty() {
        return 0;
    }
    let mut journal = shard.journal.borrow_mut();
    let stamp = journal.next_stamp(clock);
    journal.append(unit, stamp);
    stamp
}

/// The reply for a handler that panicked: the bug is logged (by the panic hook) and the
/// client gets an error, while the executor and every other client carry on.
pub const PANIC_REPLY: &str = "internal error while executing the command (see the server log)";

/// Runs a handler, turning a panic into an error reply instead of losing the executor.
#[inline]
pub fn guarded(f: impl FnOnce() -> CmdResult) -> CmdResult {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::msg(PANIC_REPLY)))
}

/// Records a connection-level command's stats (`started` is a `ticks()` value) and what it
/// leaves for the operator (see `observe`). A blocking command's time includes its wait, so
/// it is counted but not taken as slow.
pub fn record(conn: &Conn, idx: usize, args: &Args<'_>, started: u64, result: &CmdResult) {
    record_as(conn, idx, args, started, result, &conn.meta.ident)
}

/// `record` for a command a script ran on `conn`'s behalf as `client`.
pub fn record_as(
    conn: &Conn,
    idx: usize,
    args: &Args<'_>,
    started: u64,
    result: &CmdResult,
    client: &ClientIdent,
) {
    let ns = elapsed_ns(started);
    let mut stats = conn.shard.stats.borrow_mut();
    count_call(&conn.shard, &mut stats, idx, ns, result.as_ref().err());
    drop(stats);
    let ns = if table().specs[idx].has(super::flag::BLOCKING) {
        0
    } else {
        ns
    };
    observe(&conn.shard, idx, ns, args, conn.db, Some(client));
}

/// Runs a connection-level command (a `Sync` or `Async` handler) with its stats and guard.
pub async fn call_conn(conn: &mut Conn, idx: usize, args: &Args<'_>) {
    match table().specs[idx].handler {
        super::Handler::Sync(f) => {
            let started = ticks();
            let mark = conn.out.buf.len();
            let result = guarded(|| f(conn, args));
            record(conn, idx, args, started, &result);
            if let Err(e) = result {
                conn.out.buf.truncate(mark);
                conn.out.error(&e);
            }
        }
        super::Handler::Async(f) => call_async(conn, idx, f, *args).await,
        super::Handler::Keyed(_) | super::Handler::Container => {}
    }
}

/// Runs a connection handler that may wait (calls other shards), with its stats and guard.
pub async fn call_async<'a>(conn: &'a mut Conn, idx: usize, f: super::AsyncFn, args: Args<'a>) {
    let started = ticks();
    let mark = conn.out.buf.len();
    let result = guarded_async(f(conn, args)).await;
    record(conn, idx, &args, started, &result);
    if let Err(e) = result {
        conn.out.buf.truncate(mark);
        conn.out.error(&e);
    }
}

/// `cmd::guarded` for connection handlers that await.
async fn guarded_async(fut: super::BoxFuture<'_>) -> crate::error::CmdResult {
    use futures_lite::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Error::msg(PANIC_REPLY)))
}

/// The shards a keyed command needs: the owners of its keys, the one its arguments name, or
/// every shard for a command without keys.
pub fn shards_of(shard: &Shard, spec: &super::CommandSpec, args: &Args<'_>) -> ShardSet {
    if spec.reaches.is_some_and(|reaches| reaches(args)) {
        return ShardSet::all(shard.nshards);
    }
    if let Some(find) = spec.key_finder {
        let mut set = ShardSet::new();
        for p in find(args).unwrap_or_default() {
            set.insert(shard.owner_of_key(args.get(p)));
        }
        if set.is_empty() {
            // Malformed arguments: the handler reports them, on this shard.
            set.insert(shard.id.min(shard.nshards.saturating_sub(1)));
        }
        return set;
    }
    // One key (most commands): no iterator.
    if spec.first_key > 0
        && spec.first_key == spec.last_key
        && (spec.first_key as usize) < args.len()
    {
        return ShardSet::one(shard.owner_of_key(args.get(spec.first_key as usize)));
    }
    let mut positions = spec.key_positions(args.len());
    let Some(first) = positions.next() else {
        return match spec.shard_of {
            Some(pick) => ShardSet::one(pick(args, shard.nshards)),
            None => ShardSet::all(shard.nshards),
        };
    };
    let mut set = ShardSet::one(shard.owner_of_key(args.get(first)));
    for p in positions {
        set.insert(shard.owner_of_key(args.get(p)));
    }
    set
}

/// Runs `body` as command `idx` over the data of the shards its keys live on, here, as one
/// execution unit: for connection handlers that wait but also work on keys (a blocking
/// command's first attempt). It uses the data a running EXEC holds; otherwise this shard's
/// own (when every key is here) or data borrowed for the call. Nothing is propagated but
/// what `body` asks for. Errors are the body's; the caller's handler reports them.
pub async fn with_keys<R>(
    conn: &mut Conn,
    idx: usize,
    args: &Args<'_>,
    body: impl FnOnce(&mut Ctx<'_>) -> Result<R, Error>,
) -> Result<R, Error> {
    let shard = conn.shard.clone();
    let (db, now) = (conn.db, conn.now);
    let mut unit = Unit::default();
    let ident = conn.meta.ident.clone();
    let track = conn.track();
    let run = |parts: Parts<'_>, out: &mut Reply, unit: &mut Unit| {
        let mut x = Exec {
            shard: &shard,
            parts,
            db,
            out,
            now,
            unit,
            client: Some(&ident),
            track,
        };
        let result = run_body(&mut x, args, false, body).0;
        if track.reader != 0 {
            remember_reads(&mut x, idx, args);
        }
        result
    };
    if let Some(held) = conn.held.as_mut() {
        // Inside EXEC: the EXEC's unit collects what the queued commands propagate, so this
        // body's ops join it through the caller (see `multi::run_queued`).
        let result = run(held.parts(), &mut conn.out, &mut unit);
        conn.exec_ops.append(&mut unit.ops);
        return result;
    }
    let shards = shards_of(&shard, table().specs[idx], args);
    if shards.single() == Some(shard.id) {
        shard.data_home().await;
        let mut guard = shard.data.borrow_mut();
        let data = guard.as_deref_mut().expect("data is home after data_home");
        let result = run(Parts::One(&mut *data), &mut conn.out, &mut unit);
        if !unit.is_empty() {
            data.clock = end_unit(&shard, &mut unit, data.clock);
        }
        drop(guard);
        crate::cmd::blocking::serve_ready(&shard);
        return result;
    }
    let mut held = crate::shard::tx::Held::acquire(&shard, &shards).await;
    let result = run(held.parts(), &mut conn.out, &mut unit);
    if !unit.is_empty() {
        let stamp = end_unit(&shard, &mut unit, held.clock());
        held.set_clock(stamp);
    }
    held.release();
    result
}

/// Runs `f` on shard `to`'s data: on that shard's core once the data is home, or here with
/// the data a running EXEC holds (the flag tells `f` which). A typed hop for connection
/// handlers that need one shard's data (MIGRATE); its writes go through `run_body`.
pub async fn on_shard_data<R, F>(conn: &mut Conn, to: usize, f: F) -> R
where
    R: Send + 'static,
    F: FnOnce(&Rc<Shard>, &mut crate::db::ShardData, bool) -> R + Send + 'static,
{
    if let Some(held) = conn.held.as_mut() {
        if let Some(data) = held.data_of(to) {
            return f(&conn.shard, data, true);
        }
    }
    conn.shard
        .call_data(to, move |s, data| f(s, data, false))
        .await
}

/// Runs `f` on every data shard's data (in parallel, each on its own core; or here on the
/// data a running EXEC holds) and returns the results in shard order: for connection
/// handlers that read across the keyspace (CLUSTER RESET's emptiness check, INFO keyspace).
pub async fn each_shard_data<R, F>(conn: &mut Conn, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&mut crate::db::ShardData) -> R + Send + Sync + Clone + 'static,
{
    let n = conn.shard.nshards;
    if let Some(held) = conn.held.as_mut() {
        if held.shards().len() == n {
            return (0..n).filter_map(|i| held.data_of(i).map(&f)).collect();
        }
    }
    let mut out = Vec::with_capacity(n);
    for to in 0..n {
        let f = f.clone();
        out.push(conn.shard.call_data(to, move |_, d| f(d)).await);
    }
    out
}

/// One round of active expiry on `shard` (if its data is home), as Redis's
/// `activeExpireCycle`: each expired key is propagated as a DEL of its own (rule R4).
pub fn active_expire(shard: &Rc<Shard>, now: i64) {
    // A replica leaves expired keys to its master's DELs (Redis runs no active expiry there).
    if crate::db::expiry::is_replica() {
        return;
    }
    let mut guard = shard.data.borrow_mut();
    let Some(data) = guard.as_deref_mut() else {
        return;
    };
    let recording = shard.recording.get();
    let effort = shard.settings.borrow().active_expire_effort;
    let mut unit = Unit {
        loose: true,
        ..Unit::default()
    };
    let mut expired = Vec::new();
    let started = ticks();
    let (mut deleted, mut sampled, mut capped) = (0, 0, false);
    for (i, ks) in data.dbs().iter_mut().enumerate() {
        if ks.volatile_len() == 0 {
            continue;
        }
        let (d, s, c) = ks.active_expire(now, 16, effort);
        (deleted, sampled, capped) = (deleted + d, sampled + s, capped || c);
        take_expired(ks, i, &mut expired);
    }
    if sampled > 0 {
        let us = elapsed_ns(started) / 1000;
        let mut stats = shard.stats.borrow_mut();
        stats.expire_cycle_us += us;
        stats.expired_time_cap_reached += u64::from(capped);
        // Redis's running estimate of the share of stale keys among keys with a TTL.
        let perc = deleted as f64 / sampled as f64;
        stats.expired_stale_perc = perc * 0.05 + stats.expired_stale_perc * 0.95;
        drop(stats);
        let threshold = shard.settings.borrow().latency_threshold_ms;
        if threshold > 0 && us / 1000 >= threshold {
            let now_s = crate::util::time::now_ms() / 1000;
            shard.observe.add_latency("expire-cycle", now_s, us / 1000);
        }
    }
    expired.sort_unstable_by_key(|(seq, _, _)| *seq);
    notify_expired(shard, &expired, 0);
    if data.tracking.wants_changes() {
        invalidate_changes(shard, data, &expired, 0, None);
        // A lowered `tracking-table-max-keys` takes effect even while nobody reads.
        tracking::enforce_limit(shard, data);
    }
    if recording {
        push_dels(&mut unit, expired);
    }
    if !unit.is_empty() {
        data.clock = end_unit(shard, &mut unit, data.clock);
    }
    drop(guard);
    crate::cmd::blocking::serve_ready(shard);
}

/// Deletes the keys of `slots` that `shard` holds (slots this node lost), each propagated as
/// a DEL of its own, as Redis's `delKeysInSlot`. Runs as a job that needs the data.
pub fn delete_slots(shard: &Rc<Shard>, slots: &[u16]) {
    let mut data = shard.data.borrow_mut();
    let Some(data) = data.as_deref_mut() else {
        return;
    };
    let recording = shard.recording.get();
    let mut unit = Unit {
        loose: true,
        ..Unit::default()
    };
    let ks = data.db(0);
    for &slot in slots {
        if shard.owner_of(slot) != shard.id {
            continue;
        }
        for key in ks.clear_slot(slot) {
            if recording {
                unit.push(0, &[b"DEL", &key]);
            }
        }
        ks.settle_touched(true);
    }
    if data.tracking.wants_changes() || data.has_changed() {
        invalidate_changes(shard, data, &[], 0, None);
    }
    if !unit.is_empty() {
        data.clock = end_unit(shard, &mut unit, data.clock);
    }
}
