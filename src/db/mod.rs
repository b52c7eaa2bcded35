//! One shard's keyspace: a hash table per owned slot, plus an index of keys with a TTL.
//!
//! Slot `s` is owned by shard `s % nshards` and lives at `tables[s / nshards]`, so counting or
//! listing the keys of a slot touches only that slot's table. Keys with a TTL are also listed
//! in `volatile`, with their expiry (the entry keeps only its position there), so that the
//! active expire cycle can sample them uniformly, as Redis samples its `expires` dict.

mod data;
pub mod evict;
pub mod expiry;
pub mod snapshot;
mod table;
pub mod tracking;
mod view;
pub mod watch;

pub use data::ShardData;
pub use evict::{EvictionPool, Policy};
pub use snapshot::{EncodeFn, EvictionInfo, KeyspaceSnapshot, SnapshotFormat};
pub use table::SlotTable;
pub use view::{Db, Parts};
pub use watch::{Watcher, Watches};

use crate::slot::{key_slot, SLOTS};
use crate::types::Value;
use crate::util::glob::glob_match;

/// `expire_at` value meaning "no TTL".
pub const NO_EXPIRE: i64 = 0;
/// `Entry::meta`'s top bit: a running snapshot serialized the key ahead of its walk.
const AHEAD: u32 = 1 << 31;
/// `Entry::meta`'s index part for a key without TTL.
const NOT_VOLATILE: u32 = !AHEAD;

/// A key's value and metadata: 32 bytes, because every key pays for it. The expiry lives in
/// `Keyspace::volatile` (only keys with a TTL pay for one), found through `vidx()`.
pub struct Entry {
    pub value: Value,
    /// Position in `Keyspace::volatile` (or `NOT_VOLATILE`), and the `AHEAD` bit.
    meta: u32,
    /// Last access (24 bits, as Redis's object header): seconds of the LRU clock, or under
    /// an LFU policy minutes and a logarithmic counter (see `evict`).
    pub lru: u32,
}

impl Entry {
    /// Whether the key has a TTL.
    pub fn is_volatile(&self) -> bool {
        self.vidx() != NOT_VOLATILE
    }

    /// Position in `Keyspace::volatile`, or `NOT_VOLATILE`.
    #[inline]
    fn vidx(&self) -> u32 {
        self.meta & !AHEAD
    }

    #[inline]
    fn set_vidx(&mut self, vidx: u32) {
        self.meta = (self.meta & AHEAD) | vidx;
    }

    /// Whether the running snapshot already holds this key (serialized before a change, or
    /// created after the snapshot began), though its walk has not reached its table.
    #[inline]
    fn ahead(&self) -> bool {
        self.meta & AHEAD != 0
    }

    #[inline]
    fn set_ahead(&mut self, on: bool) {
        self.meta = (self.meta & !AHEAD) | if on { AHEAD } else { 0 };
    }

    /// A new entry without TTL, last accessed at LRU clock `lru`.
    pub fn new(value: Value, lru: u32) -> Entry {
        Entry {
            value,
            meta: NOT_VOLATILE,
            lru,
        }
    }

    /// A handle to read this entry's expiry with `Keyspace::expire_at_of` once the entry's
    /// borrow has ended.
    #[inline]
    pub fn ttl(&self) -> Ttl {
        Ttl(self.vidx())
    }
}

/// See `Entry::ttl`; valid until the keyspace next changes.
#[derive(Clone, Copy, Debug)]
pub struct Ttl(u32);

/// A key with a TTL, listed for active expiry.
struct Volatile {
    slot: u16,
    key: Box<[u8]>,
    /// Absolute expiry in Unix milliseconds.
    expire_at: i64,
}

/// The expiry of the entry whose `vidx` this is (`NO_EXPIRE` for none).
#[inline]
fn expire_of(volatile: &[Volatile], vidx: u32) -> i64 {
    match vidx {
        NOT_VOLATILE => NO_EXPIRE,
        i => volatile.get(i as usize).map_or(NO_EXPIRE, |v| v.expire_at),
    }
}

/// The entry's expiry, if it has one.
#[inline]
fn expiry(volatile: &[Volatile], e: &Entry) -> Option<i64> {
    let at = expire_of(volatile, e.vidx());
    (at != NO_EXPIRE).then_some(at)
}

/// Whether the entry's time has passed; never while this thread applies its master's
/// stream (`expiry::Rule::Keep`).
#[inline]
fn is_expired(volatile: &[Volatile], e: &Entry, now: i64) -> bool {
    let at = expire_of(volatile, e.vidx());
    at != NO_EXPIRE && at <= now && expiry::rule() != expiry::Rule::Keep
}

/// Whether an expired key found now may be deleted (a master's), or only hidden (a
/// replica's: the master's DEL deletes it).
#[inline]
fn may_delete_expired() -> bool {
    expiry::rule() == expiry::Rule::Delete
}

#[derive(Default, Clone, Copy, Debug)]
pub struct KeyspaceStats {
    pub expired_keys: u64,
    pub evicted_keys: u64,
    pub hits: u64,
    pub misses: u64,
}

/// One database's keys on one shard.
pub struct Keyspace {
    nshards: usize,
    /// How many slots this shard owns; `tables` is allocated (one per owned slot) on the
    /// first write, so the databases nobody uses cost nothing.
    owned: usize,
    tables: Vec<SlotTable>,
    volatile: Vec<Volatile>,
    len: usize,
    rng: u64,
    pub stats: KeyspaceStats,
    /// Keys that blocked clients wait on (see `shard::blocking`), and those of them touched
    /// since the shard last served its waiters. Empty unless someone is blocked, so the hot
    /// path pays one length check.
    blocked: hashbrown::HashSet<Box<[u8]>>,
    ready: Vec<Box<[u8]>>,
    /// WATCHed keys of this database on this shard.
    pub watches: Watches,
    /// Client-side caching wants this shard's changed keys (`ShardData::sync_tracked`).
    pub tracked: bool,
    /// Keys looked up for writing while some key is watched or changes are tracked, since
    /// the command started: the command's `call()` touches their watchers (and reports them
    /// to client-side caching) if it changed the dataset.
    touched: Vec<Box<[u8]>>,
    /// Keys a command changed while `tracked`, until `call()` sends their invalidations.
    changed: Vec<Box<[u8]>>,
    /// Keys deleted because they had expired, since `call()` last took them, each with its
    /// place in this thread's order of expiries: each is propagated as a DEL before the
    /// command's own effect, in the order the command met them across the shards it holds.
    expired: Vec<(u64, Box<[u8]>)>,
    /// `new` and `keymiss` notifications this database owes (recorded only while `announces`
    /// them), in the same order as `expired`, until the command's `call()` publishes them.
    announced: Vec<(u64, &'static str, Box<[u8]>)>,
    /// The snapshot being taken of this database, if any: a lookup in a slot table it has
    /// not serialized yet serializes that table first (see `snapshot`).
    snap: Option<Box<KeyspaceSnapshot>>,
}

/// Largest value of the LRU clock (24 bits, as Redis's `LRU_CLOCK_MAX`).
const LRU_CLOCK_MAX: u32 = 0x00ff_ffff;

/// The LRU clock: seconds, wrapping at 24 bits as Redis's does.
pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / 1000) as u32) & LRU_CLOCK_MAX
}

/// Seconds since an entry's `lru` stamp (OBJECT IDLETIME), allowing for the clock's wrap as
/// Redis's `estimateObjectIdleTime` does.
pub fn idle_seconds(lru: u32, now_ms: i64) -> u64 {
    let clock = lru_clock(now_ms);
    if clock >= lru {
        (clock - lru) as u64
    } else {
        clock as u64 + (LRU_CLOCK_MAX - lru) as u64
    }
}

/// How many slots shard `shard` of `nshards` owns (slots `shard`, `shard + nshards`, ...).
pub fn slots_owned(shard: usize, nshards: usize) -> usize {
    if nshards == 0 || shard >= nshards {
        0
    } else {
        (SLOTS - shard).div_ceil(nshards)
    }
}

/// EXPIRE's NX / XX / GT / LT conditions (Redis 7.0 `expireGenericCommand`).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ExpireFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
}

impl ExpireFlags {
    /// Whether a key whose current expiry is `current` (None: no TTL) may get expiry `when`.
    /// No TTL counts as an infinite one: GT never passes, LT always does.
    pub fn allows(&self, current: Option<i64>, when: i64) -> bool {
        if self.nx && current.is_some() {
            return false;
        }
        if self.xx && current.is_none() {
            return false;
        }
        if self.gt && current.is_none_or(|c| when <= c) {
            return false;
        }
        !(self.lt && current.is_some_and(|c| when >= c))
    }
}

/// What `Keyspace::expire_with` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// No such (live) key.
    Missing,
    /// An NX / XX / GT / LT condition failed; nothing changed.
    Rejected,
    /// The expiry was set.
    Set,
    /// The time was already past, so the key was deleted.
    Deleted,
}

/// What SCAN keeps of the keys it walks.
#[derive(Clone, Copy, Default)]
pub struct ScanFilter<'a> {
    /// Glob pattern; None keeps every key (callers map a lone `*` to None).
    pub pattern: Option<&'a [u8]>,
    /// Type name as TYPE reports it, compared ignoring case; None keeps every type.
    pub type_name: Option<&'a [u8]>,
}

/// Sets an entry's expiry and lists it in `volatile` when it gains a TTL. Returns the
/// `volatile` position to unlist when it loses one (done by the caller, which may then
/// borrow the tables again).
fn apply_expiry(
    e: &mut Entry,
    volatile: &mut Vec<Volatile>,
    slot: u16,
    key: &[u8],
    expire_at: i64,
) -> Option<usize> {
    match (e.vidx() == NOT_VOLATILE, expire_at == NO_EXPIRE) {
        (true, false) => {
            e.set_vidx(volatile.len() as u32);
            volatile.push(Volatile {
                slot,
                key: key.into(),
                expire_at,
            });
            None
        }
        (false, false) => {
            if let Some(v) = volatile.get_mut(e.vidx() as usize) {
                v.expire_at = expire_at;
            }
            None
        }
        (false, true) => {
            let old = e.vidx();
            e.set_vidx(NOT_VOLATILE);
            Some(old as usize)
        }
        (true, true) => None,
    }
}

/// A lookup or write reached `key`: if a blocked client waits on it, its shard re-checks
/// after the command (whether the access could serve it is the waiting command's business).
/// Takes the two fields rather than `&mut Keyspace` so callers may hold an entry pointer.
#[cold]
fn note_ready(blocked: &hashbrown::HashSet<Box<[u8]>>, ready: &mut Vec<Box<[u8]>>, key: &[u8]) {
    if blocked.contains(key) && !ready.iter().any(|k| &**k == key) {
        ready.push(key.into());
    }
}

/// Where slot `slot` lives among its shard's tables. A division costs tens of cycles on
/// every lookup; with one shard (a common setup) there is nothing to divide.
#[inline]
fn table_of(slot: u16, nshards: usize) -> usize {
    if nshards == 1 {
        slot as usize
    } else {
        slot as usize / nshards
    }
}

/// Whether the slot tables hold `key`.
fn table_has(tables: &[SlotTable], nshards: usize, key: &[u8]) -> bool {
    let t = table_of(key_slot(key), nshards);
    tables.get(t).is_some_and(|t| t.contains_key(key))
}

thread_local! {
    /// Orders the expiries one thread performs (see `Keyspace::expired`).
    static EXPIRY_SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// The `ANNOUNCE_*` notifications this thread's lookups record (`n` and `m` of
    /// `notify-keyspace-events`): 0, the usual case, costs a lookup this one test.
    static ANNOUNCE: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Record a `new` notification when a key is created (Redis's `dbAdd`).
pub const ANNOUNCE_NEW: u8 = 1;
/// Record a `keymiss` notification when a read lookup misses (Redis's `lookupKey`).
pub const ANNOUNCE_MISS: u8 = 2;

/// Sets which `ANNOUNCE_*` notifications this thread records.
pub fn set_announced(bits: u8) {
    ANNOUNCE.with(|a| a.set(bits));
}

#[inline]
fn announces(bit: u8) -> bool {
    ANNOUNCE.with(|a| a.get() & bit != 0)
}

fn next_expiry_seq() -> u64 {
    EXPIRY_SEQ.with(|c| {
        let n = c.get() + 1;
        c.set(n);
        n
    })
}

/// A write lookup reached `key` while keys are watched or changes are tracked (client-side
/// caching): remembered until the command ends.
#[cold]
fn note_write(watches: &Watches, tracked: bool, touched: &mut Vec<Box<[u8]>>, key: &[u8]) {
    if (tracked || watches.contains(key)) && !touched.iter().any(|k| &**k == key) {
        touched.push(key.into());
    }
}

impl Keyspace {
    /// The keyspace of shard `shard` of `nshards` (`nshards == 0` gives an empty one for the control core).
    pub fn new(shard: usize, nshards: usize) -> Keyspace {
        Keyspace {
            nshards: nshards.max(1),
            owned: slots_owned(shard, nshards),
            tables: Vec::new(),
            volatile: Vec::new(),
            len: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (shard as u64 + 1),
            stats: KeyspaceStats::default(),
            blocked: Default::default(),
            ready: Vec::new(),
            watches: Watches::default(),
            tracked: false,
            touched: Vec::new(),
            changed: Vec::new(),
            expired: Vec::new(),
            announced: Vec::new(),
            snap: None,
        }
    }

    /// Before anything reads or changes `key` in slot table `t`: a running snapshot that
    /// has not written the key yet writes it now, as it was.
    #[inline]
    fn snapshot_guard(&mut self, t: usize, key: &[u8]) {
        if self.ahead_of_walk(t) {
            self.snapshot_key(t, key);
        }
    }

    #[cold]
    fn snapshot_key(&mut self, t: usize, key: &[u8]) {
        let (Some(snap), Some(e)) = (
            self.snap.as_deref_mut(),
            self.tables.get_mut(t).and_then(|table| table.get_mut(key)),
        ) else {
            return;
        };
        if e.ahead() {
            return;
        }
        snap.serialize(key, e, expiry(&self.volatile, e));
        e.set_ahead(true);
    }

    /// Whether a running snapshot's walk has not reached table `t` yet: a key there is
    /// serialized before it changes, and one created now is marked for the walk to skip.
    #[inline]
    fn ahead_of_walk(&self, t: usize) -> bool {
        self.snap.as_ref().is_some_and(|s| !s.is_done(t))
    }

    /// The walk's step: serializes table `t`'s keys but those already written ahead of it,
    /// whose marks it clears.
    #[cold]
    fn snapshot_table(&mut self, t: usize) {
        let Some(snap) = self.snap.as_deref_mut() else {
            return;
        };
        if snap.is_done(t) {
            return;
        }
        snap.table_done(t);
        let volatile = &self.volatile;
        if let Some(table) = self.tables.get_mut(t) {
            for (key, e) in table.iter_mut() {
                if e.ahead() {
                    e.set_ahead(false);
                    continue;
                }
                snap.serialize(key, e, expiry(volatile, e));
            }
        }
    }

    /// Starts a snapshot of this database as it is now. An empty database has nothing to
    /// write and gets none. Returns whether one started.
    pub fn begin_snapshot(&mut self, encode: EncodeFn, format: SnapshotFormat) -> bool {
        self.abort_snapshot();
        if self.len == 0 {
            return false;
        }
        self.snap = Some(Box::new(KeyspaceSnapshot::new(
            self.tables.len(),
            encode,
            format,
        )));
        true
    }

    /// Whether a snapshot of this database is running.
    pub fn snapshotting(&self) -> bool {
        self.snap.is_some()
    }

    /// The next serialized keys of the running snapshot, and how many: at least
    /// `max_bytes`, or what `max_time` of serializing made (whole slot tables, at least
    /// one key), unless the snapshot ends with them (then `true`, and the snapshot is
    /// over). `None` without one.
    pub fn snapshot_chunk(
        &mut self,
        max_bytes: usize,
        max_time: std::time::Duration,
    ) -> Option<(Vec<u8>, u64, bool)> {
        let started = std::time::Instant::now();
        loop {
            let snap = self.snap.as_deref_mut()?;
            if snap.pending_bytes() >= max_bytes
                || (snap.pending_bytes() > 0 && started.elapsed() >= max_time)
            {
                let (out, keys) = snap.take_out();
                return Some((out, keys, false));
            }
            match snap.next_pending() {
                Some(t) => self.snapshot_table(t),
                None => {
                    let (out, keys) = snap.take_out();
                    self.snap = None;
                    return Some((out, keys, true));
                }
            }
        }
    }

    /// Serializes every table the running snapshot has not reached (before a change to the
    /// whole database: FLUSHDB, SWAPDB).
    fn snapshot_everything(&mut self) {
        while let Some(t) = self
            .snap
            .as_deref_mut()
            .and_then(KeyspaceSnapshot::next_pending)
        {
            self.snapshot_table(t);
        }
    }

    /// Ends the running snapshot without writing the rest (a failed or cancelled save).
    pub fn abort_snapshot(&mut self) {
        let Some(snap) = self.snap.take() else {
            return;
        };
        // The tables the walk did not reach may hold marked keys: a later snapshot would
        // skip them. One pass over them, no serializing (aborts are rare: FLUSHALL during
        // a save, a failed disk).
        for (t, table) in self.tables.iter_mut().enumerate() {
            if !snap.is_done(t) {
                for (_, e) in table.iter_mut() {
                    e.set_ahead(false);
                }
            }
        }
    }

    /// The slot tables, allocated on the first write.
    #[inline]
    fn tables_for_write(&mut self) -> &mut Vec<SlotTable> {
        if self.tables.is_empty() && self.owned > 0 {
            self.tables = (0..self.owned).map(|_| SlotTable::new()).collect();
        }
        &mut self.tables
    }

    #[inline]
    fn table_index(&self, slot: u16) -> usize {
        table_of(slot, self.nshards)
    }

    #[inline]
    fn table(&mut self, key: &[u8]) -> (u16, usize) {
        let slot = key_slot(key);
        (slot, self.table_index(slot))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// The live entry for `key`, deleting it first if it has expired: a lookup for writing
    /// (Redis's `lookupKeyWrite`), so a WATCHed key found here is touched if the command
    /// changes anything.
    #[inline]
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let entry: *mut Entry = self.live(key, now, true)?;
        if self.notes_writes() {
            note_write(&self.watches, self.tracked, &mut self.touched, key);
        }
        // SAFETY: `entry` points into `self.tables`; `note_write` touches only `watches` and
        // `touched`, so the entry is still there and nothing else borrows it.
        Some(unsafe { &mut *entry })
    }

    /// The entry for `key` as stored, expired or not, with no side effect (DEBUG
    /// DIGEST-VALUE reads Redis's dictionary directly).
    pub fn peek_raw(&self, key: &[u8]) -> Option<&Entry> {
        self.tables.get(self.table_index(key_slot(key)))?.get(key)
    }

    /// Like `get`, but leaves the access time alone (Redis's `LOOKUP_NOTOUCH`, for TYPE, TTL,
    /// OBJECT) and counts no hits or misses.
    #[inline]
    pub fn peek(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.live(key, now, false)
    }

    /// `peek` that counts keyspace hits and misses, as Redis's read lookups with `LOOKUP_NOTOUCH`.
    #[inline]
    pub fn read_untouched(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.counted(key, now, false, true)
    }

    /// `read_untouched` that announces no miss (OBJECT's lookup, `LOOKUP_NONOTIFY`).
    #[inline]
    pub fn read_quietly(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.counted(key, now, false, false)
    }

    /// The live entry for `key` (expired ones are deleted), optionally marking it accessed.
    #[inline]
    fn live(&mut self, key: &[u8], now: i64, touch: bool) -> Option<&mut Entry> {
        let (_, t) = self.table(key);
        self.snapshot_guard(t, key);
        let entry: *mut Entry = self.tables.get_mut(t)?.get_mut(key)?;
        // SAFETY: `entry` points into `self.tables[t]`, which nothing else borrows; returning
        // it here only works around the borrow checker's conditional-return limitation.
        if unsafe { !is_expired(&self.volatile, &*entry, now) } {
            if !self.blocked.is_empty() {
                note_ready(&self.blocked, &mut self.ready, key);
            }
            let e = unsafe { &mut *entry };
            if touch {
                e.lru = evict::touched(e.lru, now);
            }
            return Some(e);
        }
        if may_delete_expired() {
            self.expire_now(key);
        }
        None
    }

    /// Deletes `key`, which has expired: counted, remembered for propagation (a DEL), and a
    /// change for whoever watches it, as Redis's `deleteExpiredKeyAndPropagate`.
    pub fn expire_now(&mut self, key: &[u8]) {
        if self.remove_entry(key).is_none() {
            return;
        }
        self.stats.expired_keys += 1;
        self.expired.push((next_expiry_seq(), key.into()));
        if !self.watches.is_empty() {
            self.watches.touch(key, false);
        }
    }

    /// The keys deleted on expiry since the last call, oldest first, with their places in
    /// this thread's order of expiries.
    pub fn take_expired(&mut self) -> Vec<(u64, Box<[u8]>)> {
        std::mem::take(&mut self.expired)
    }

    /// The keys deleted on expiry since the last `take_expired`, with their places in this
    /// thread's order of expiries (keyspace notifications read them before the take).
    pub fn expired(&self) -> &[(u64, Box<[u8]>)] {
        &self.expired
    }

    /// Records notification `event` for `key`, in order with the expiries.
    #[cold]
    fn announce(&mut self, event: &'static str, key: &[u8]) {
        self.announced.push((next_expiry_seq(), event, key.into()));
    }

    /// Whether `new` or `keymiss` notifications wait to be published.
    #[inline]
    pub fn has_announced(&self) -> bool {
        !self.announced.is_empty()
    }

    /// The `new` and `keymiss` notifications recorded since the last call, with their places
    /// in this thread's order of expiries.
    pub fn take_announced(&mut self) -> Vec<(u64, &'static str, Box<[u8]>)> {
        std::mem::take(&mut self.announced)
    }

    #[inline]
    pub fn has_expired(&self) -> bool {
        !self.expired.is_empty()
    }

    /// Whether a WATCHed key was looked up for writing since the last `settle_touched`.
    #[inline]
    pub fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Ends a command for WATCH: if it changed the dataset, the watched keys it looked up for
    /// writing are touched (`signalModifiedKey`); either way the list is cleared.
    pub fn settle_touched(&mut self, changed: bool) {
        if self.touched.is_empty() {
            return;
        }
        for key in std::mem::take(&mut self.touched) {
            if changed {
                if !self.watches.is_empty() {
                    let exists = self.contains(&key);
                    self.watches.touch(&key, exists);
                }
                if self.tracked {
                    self.changed.push(key);
                }
            }
        }
    }

    /// Whether write lookups must note the keys they reach (WATCH, client-side caching).
    #[inline]
    fn notes_writes(&self) -> bool {
        self.tracked || !self.watches.is_empty()
    }

    /// Whether keys changed for client-side caching wait to be taken.
    #[inline]
    pub fn has_changed(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The keys changed (for client-side caching) since the last call.
    pub fn take_changed(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.changed)
    }

    /// Whether `key` is in the keyspace, expired or not (Redis's `dictFind`).
    pub fn contains(&self, key: &[u8]) -> bool {
        table_has(&self.tables, self.nshards, key)
    }

    /// This database is about to be emptied (FLUSHDB, FLUSHALL) or to take the keys of
    /// `replacement` (SWAPDB): its watchers are touched as Redis's `touchAllWatchedKeysInDb`.
    pub fn touch_all_watched(&mut self, replacement: Option<&Keyspace>, now: i64) {
        if self.watches.is_empty() {
            return;
        }
        let (tables, nshards) = (&self.tables, self.nshards);
        self.watches.touch_all(
            |k| table_has(tables, nshards, k),
            |k| {
                replacement
                    .filter(|r| r.contains(k))
                    .map(|r| r.is_expired_at(k, now))
            },
        );
    }

    /// The stored expiry of `key` (`NO_EXPIRE` for none), if present, expired or not.
    pub fn peek_expire(&self, key: &[u8]) -> Option<i64> {
        let t = self.table_index(key_slot(key));
        let e = self.tables.get(t)?.get(key)?;
        Some(expire_of(&self.volatile, e.vidx()))
    }

    /// Whether `key` is in the keyspace with an expiry not after `now` (`keyIsExpired`).
    pub fn is_expired_at(&self, key: &[u8], now: i64) -> bool {
        let t = self.table_index(key_slot(key));
        self.tables
            .get(t)
            .and_then(|t| t.get(key))
            .is_some_and(|e| is_expired(&self.volatile, e, now))
    }

    /// Like `get`, but counts keyspace hits and misses (for read commands).
    #[inline]
    pub fn read(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.counted(key, now, true, true)
    }

    /// `live` (one lookup) that also counts a keyspace hit or miss, and announces the miss
    /// if `notify`.
    #[inline]
    fn counted(&mut self, key: &[u8], now: i64, touch: bool, notify: bool) -> Option<&mut Entry> {
        let entry: *mut Entry = match self.live(key, now, touch) {
            Some(e) => e,
            None => {
                self.stats.misses += 1;
                if notify && announces(ANNOUNCE_MISS) {
                    self.announce("keymiss", key);
                }
                return None;
            }
        };
        self.stats.hits += 1;
        // SAFETY: as in `live`; `stats` is a different field from the tables `entry` points into.
        Some(unsafe { &mut *entry })
    }

    /// Starts or stops (`on`) reporting accesses to `key` for blocked clients; returns
    /// whether that changed anything. (Through `ShardData::track_blocked`, which counts.)
    fn track_blocked(&mut self, key: &[u8], on: bool) -> bool {
        if on {
            !self.blocked.contains(key) && self.blocked.insert(key.into())
        } else {
            self.blocked.remove(key)
        }
    }

    /// Marks every key blocked clients wait on that now exists as ready (after SWAPDB or a
    /// load put new data under them).
    pub fn mark_blocked_ready(&mut self) {
        let keys: Vec<Box<[u8]>> = self.blocked.iter().cloned().collect();
        for k in keys {
            if self.contains(&k) && !self.ready.contains(&k) {
                self.ready.push(k);
            }
        }
    }

    /// Whether a watched key was accessed since the last `take_ready`.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Marks `key` ready, so its waiters are tried after the current unit.
    pub fn mark_ready(&mut self, key: &[u8]) {
        if !self.ready.iter().any(|k| &**k == key) {
            self.ready.push(key.into());
        }
    }

    /// Forgets that `key` was accessed (its waiters have just been tried).
    pub fn unmark_ready(&mut self, key: &[u8]) {
        self.ready.retain(|k| &**k != key);
    }

    /// The watched keys accessed since the last call, in the order first touched.
    pub fn take_ready(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.ready)
    }

    pub fn exists(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some()
    }

    /// Stores `value` under `key` with the given expiry, replacing any previous value and TTL.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64, now: i64) {
        if self.store(key, value, expire_at, now) && announces(ANNOUNCE_NEW) {
            self.announce("new", key);
        }
    }

    /// `set` for a key loaded from a snapshot, which announces nothing (`dbAddRDBLoad`).
    /// Returns false if the key was already there (its value is replaced).
    pub fn load(&mut self, key: &[u8], value: Value, expire_at: i64) -> bool {
        self.store(key, value, expire_at, 0)
    }

    /// `set`; returns whether the key was created (absent, or expired and deleted first).
    fn store(&mut self, key: &[u8], value: Value, expire_at: i64, now: i64) -> bool {
        if !self.blocked.is_empty() {
            note_ready(&self.blocked, &mut self.ready, key);
        }
        if self.notes_writes() {
            note_write(&self.watches, self.tracked, &mut self.touched, key);
        }
        let (slot, t) = self.table(key);
        self.snapshot_guard(t, key);
        let ahead = self.ahead_of_walk(t);
        // One lookup whether the key is new or not.
        self.tables_for_write();
        let (e, inserted) = self.tables[t].upsert(key, value, evict::new_stamp(now));
        if inserted && ahead {
            e.set_ahead(true);
        }
        if !inserted {
            // Redis looked the key up for writing first (touching it), and an LFU counter
            // survives the overwrite.
            e.lru = evict::touched(e.lru, now);
        }
        // Overwriting a key whose time had passed expires it first, as Redis's lookup for
        // writing does: counted, and propagated as a DEL before this write.
        let expired = !inserted && is_expired(&self.volatile, e, now) && may_delete_expired();
        if inserted {
            self.len += 1;
        }
        if let Some(old) = apply_expiry(e, &mut self.volatile, slot, key, expire_at) {
            self.unlist_volatile(old);
        }
        if expired {
            self.stats.expired_keys += 1;
            self.expired.push((next_expiry_seq(), key.into()));
            if !self.watches.is_empty() {
                self.watches.touch(key, false);
            }
        }
        inserted || expired
    }

    /// Stores `value` keeping the key's current TTL (if the key is live).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, now: i64) {
        match self.get(key, now) {
            Some(e) => e.value = value,
            None => self.set(key, value, NO_EXPIRE, now),
        }
    }

    /// Sets or clears (`NO_EXPIRE`) the TTL of an existing key. Returns false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: i64) -> bool {
        let (slot, t) = self.table(key);
        self.snapshot_guard(t, key);
        let Some(e) = self.tables.get_mut(t).and_then(|t| t.get_mut(key)) else {
            return false;
        };
        if let Some(old) = apply_expiry(e, &mut self.volatile, slot, key, expire_at) {
            self.unlist_volatile(old);
        }
        if self.notes_writes() {
            note_write(&self.watches, self.tracked, &mut self.touched, key);
        }
        true
    }

    /// Removes `key` (expired or not) and returns its entry: a write.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.remove_entry(key)?;
        if self.notes_writes() {
            note_write(&self.watches, self.tracked, &mut self.touched, key);
        }
        Some(entry)
    }

    fn remove_entry(&mut self, key: &[u8]) -> Option<Entry> {
        let (_, t) = self.table(key);
        self.snapshot_guard(t, key);
        let entry = self.tables.get_mut(t)?.remove(key)?;
        self.len -= 1;
        if entry.vidx() != NOT_VOLATILE {
            self.unlist_volatile(entry.vidx() as usize);
        }
        Some(entry)
    }

    /// Removes a live key and returns its value and expiry (`NO_EXPIRE` for none).
    pub fn take(&mut self, key: &[u8], now: i64) -> Option<(Value, i64)> {
        let ttl = self.get(key, now)?.ttl();
        let expire_at = self.expire_at_of(ttl);
        self.remove(key).map(|e| (e.value, expire_at))
    }

    /// The expiry an entry's `ttl()` handle refers to (`NO_EXPIRE` for none).
    #[inline]
    pub fn expire_at_of(&self, ttl: Ttl) -> i64 {
        expire_of(&self.volatile, ttl.0)
    }

    /// Sets the expiry of a live key to `when` (Unix ms) if `flags` allow it, deleting the key
    /// instead when `when` is not in the future (EXPIRE and friends).
    pub fn expire_with(
        &mut self,
        key: &[u8],
        when: i64,
        flags: ExpireFlags,
        now: i64,
    ) -> ExpireOutcome {
        let Some(ttl) = self.get(key, now).map(|e| e.ttl()) else {
            return ExpireOutcome::Missing;
        };
        let at = self.expire_at_of(ttl);
        let current = (at != NO_EXPIRE).then_some(at);
        if !flags.allows(current, when) {
            return ExpireOutcome::Rejected;
        }
        if when <= now {
            self.remove(key);
            return ExpireOutcome::Deleted;
        }
        self.set_expire(key, when);
        ExpireOutcome::Set
    }

    /// Removes the TTL of a live key; returns whether it had one (PERSIST).
    pub fn persist(&mut self, key: &[u8], now: i64) -> bool {
        match self.get(key, now) {
            Some(e) if e.vidx() != NOT_VOLATILE => self.set_expire(key, NO_EXPIRE),
            _ => false,
        }
    }

    /// Removes a live key; returns whether it existed.
    pub fn delete(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some() && self.remove(key).is_some()
    }

    fn unlist_volatile(&mut self, idx: usize) {
        self.volatile.swap_remove(idx);
        if let Some(moved) = self.volatile.get(idx) {
            let t = self.table_index(moved.slot);
            if let Some(e) = self.tables.get_mut(t).and_then(|t| t.get_mut(&moved.key)) {
                e.set_vidx(idx as u32);
            }
        }
    }

    /// Number of keys in `slot` (which this shard must own).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.tables
            .get(self.table_index(slot))
            .map_or(0, |t| t.len())
    }

    /// Deletes every key of `slot` (a slot this node lost to another); returns them.
    pub fn clear_slot(&mut self, slot: u16) -> Vec<Box<[u8]>> {
        let keys: Vec<Box<[u8]>> = match self.tables.get(self.table_index(slot)) {
            Some(t) => t.iter().map(|(k, _)| k.into()).collect(),
            None => return Vec::new(),
        };
        for k in &keys {
            self.remove(k);
        }
        keys
    }

    /// The table of `slot`, for walking its keys (expired ones included; callers filter).
    pub fn slot_table(&self, slot: u16) -> Option<&SlotTable> {
        self.tables.get(self.table_index(slot))
    }

    /// Calls `f` for every live key.
    pub fn for_each_key(&self, now: i64, mut f: impl FnMut(&[u8], &Entry)) {
        for t in &self.tables {
            for (k, e) in t {
                if !is_expired(&self.volatile, e, now) {
                    f(k, e);
                }
            }
        }
    }

    /// Live keys matching `pattern` (a lone `*` matches every key, the empty one included).
    pub fn keys_matching(&self, pattern: &[u8], now: i64) -> Vec<Vec<u8>> {
        let all = pattern == b"*";
        let mut out = Vec::new();
        self.for_each_key(now, |k, _| {
            if all || glob_match(pattern, k) {
                out.push(k.to_vec());
            }
        });
        out
    }

    /// One SCAN step: from table index `start` (this shard's `start`-th slot), takes the keys
    /// of whole slots until at least `count` keys were seen or the shard's slots end. Returns
    /// those passing `filter`, and the table index to resume at (None when the slots are
    /// done). A slot is never split across steps, so a key that exists for the whole walk is
    /// returned exactly once. Expired keys met on the way are deleted, as Redis's SCAN does.
    pub fn scan_slots(
        &mut self,
        start: usize,
        count: usize,
        filter: ScanFilter<'_>,
        now: i64,
    ) -> (Vec<Vec<u8>>, Option<usize>) {
        let mut out = Vec::new();
        let mut expired: Vec<Box<[u8]>> = Vec::new();
        let mut seen = 0usize;
        let mut t = start;
        while t < self.tables.len() && seen < count {
            for (k, e) in &self.tables[t] {
                // COUNT bounds the keys walked, before filtering, as in Redis.
                seen += 1;
                if filter.pattern.is_some_and(|p| !glob_match(p, k)) {
                    continue;
                }
                let is_expired = is_expired(&self.volatile, e, now);
                if let Some(ty) = filter.type_name {
                    // Redis looks each key up to learn its type: a hit or a miss.
                    if is_expired {
                        self.stats.misses += 1;
                        // That lookup already deleted the key, so Redis 7.0's expiry check
                        // passes and an expired key is listed under `TYPE none`.
                        if ty.eq_ignore_ascii_case(b"none") {
                            out.push(k.to_vec());
                        }
                        expired.push(k.into());
                        continue;
                    }
                    self.stats.hits += 1;
                    if !ty.eq_ignore_ascii_case(e.value.type_name().as_bytes()) {
                        continue;
                    }
                }
                if is_expired {
                    expired.push(k.into());
                    continue;
                }
                out.push(k.to_vec());
            }
            t += 1;
        }
        if may_delete_expired() {
            for k in expired {
                self.expire_now(&k);
            }
        }
        (out, (t < self.tables.len()).then_some(t))
    }

    /// Deletes every key (FLUSHDB). Watchers and blocked clients stay registered; the
    /// caller touches the watchers first (`Watches::touch_all`).
    pub fn flush(&mut self) {
        self.snapshot_everything();
        self.tables = Vec::new();
        self.volatile = Vec::new();
        self.len = 0;
    }

    /// Exchanges the keys (and their expiries) of two databases, leaving each its watchers
    /// and blocked clients, which belong to the database number (SWAPDB).
    pub fn swap_keys(&mut self, other: &mut Keyspace) {
        self.snapshot_everything();
        other.snapshot_everything();
        std::mem::swap(&mut self.tables, &mut other.tables);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.len, &mut other.len);
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for sampling.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A pseudo-random number from this keyspace's generator (for coordinators' choices).
    pub fn random_u64(&mut self) -> u64 {
        self.next_random()
    }

    /// A random live key, if any, every key equally likely (RANDOMKEY). Expired keys drawn
    /// are deleted and another is drawn, up to 100 times.
    pub fn random_key(&mut self, now: i64) -> Option<Vec<u8>> {
        for _ in 0..100 {
            if self.len == 0 {
                return None;
            }
            // Draw a position among all keys, then find the slot table holding it.
            let mut pick = (self.next_random() % self.len as u64) as usize;
            let t = self.tables.iter().position(|t| {
                if pick < t.len() {
                    true
                } else {
                    pick -= t.len();
                    false
                }
            })?;
            let (key, is_expired) = match self.tables[t].iter().nth(pick) {
                Some((k, e)) => (k.to_vec(), is_expired(&self.volatile, e, now)),
                None => return None,
            };
            if !is_expired {
                return Some(key);
            }
            if may_delete_expired() {
                self.expire_now(&key);
            }
        }
        None
    }

    /// One round of active expiry, as Redis's `activeExpireCycle` with `active-expire-effort`
    /// `effort` (1..=10): sample up to 20 keys with a TTL (5 more per effort step), delete the
    /// expired ones, and repeat while more than 10% of a sample had expired (1% less per
    /// step), for at most `max_rounds` rounds. Returns how many keys were deleted, how many
    /// were sampled, and whether the rounds ran out while keys kept expiring.
    pub fn active_expire(
        &mut self,
        now: i64,
        max_rounds: usize,
        effort: usize,
    ) -> (usize, usize, bool) {
        let step = effort.clamp(1, 10) - 1;
        let (sample_size, stale_percent) = (20 + 5 * step, 10 - step);
        let (mut deleted, mut sampled) = (0, 0);
        for round in 0..max_rounds {
            if self.volatile.is_empty() {
                break;
            }
            let mut expired_in_sample = 0;
            let sample = sample_size.min(self.volatile.len());
            for _ in 0..sample {
                if self.volatile.is_empty() {
                    break;
                }
                let i = (self.next_random() % self.volatile.len() as u64) as usize;
                let v = &self.volatile[i];
                if v.expire_at <= now {
                    let key = v.key.clone();
                    self.expire_now(&key);
                    expired_in_sample += 1;
                }
            }
            deleted += expired_in_sample;
            sampled += sample;
            if expired_in_sample * 100 <= sample * stale_percent {
                break;
            }
            if round + 1 == max_rounds {
                return (deleted, sampled, true);
            }
        }
        (deleted, sampled, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{StrValue, Value};

    fn v(s: &str) -> Value {
        Value::Str(StrValue::from_bytes(s.as_bytes()))
    }

    #[test]
    fn set_get_expire_and_volatile_index() {
        let mut ks = Keyspace::new(0, 1);
        ks.set(b"a", v("1"), NO_EXPIRE, 1000);
        ks.set(b"b", v("2"), 2000, 1000);
        ks.set(b"c", v("3"), 3000, 1000);
        assert_eq!(ks.len(), 3);
        assert_eq!(ks.volatile_len(), 2);
        assert!(ks.get(b"b", 1500).is_some());
        assert!(ks.get(b"b", 2000).is_none());
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.volatile_len(), 1);
        assert!(ks.set_expire(b"c", NO_EXPIRE));
        assert_eq!(ks.volatile_len(), 0);
        assert!(ks.get(b"c", 10_000).is_some());
    }

    #[test]
    fn active_expire_removes_untouched_keys() {
        let mut ks = Keyspace::new(0, 1);
        for i in 0..1000 {
            ks.set(format!("k{i}").as_bytes(), v("x"), 100, 0);
        }
        ks.set(b"keep", v("x"), NO_EXPIRE, 0);
        let mut rounds = 0;
        while ks.volatile_len() > 0 && rounds < 1000 {
            ks.active_expire(200, 16, 1);
            rounds += 1;
        }
        assert_eq!(ks.len(), 1);
        assert!(ks.get(b"keep", 200).is_some());
    }

    #[test]
    fn slot_tables_are_per_slot() {
        let mut ks = Keyspace::new(0, 2);
        // foo → slot 12182, even: owned by shard 0 of 2.
        ks.set(b"foo", v("1"), NO_EXPIRE, 0);
        ks.set(b"{foo}.x", v("1"), NO_EXPIRE, 0);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(ks.count_in_slot(12182), 2);
        assert_eq!(ks.count_in_slot(12184), 0);
        assert_eq!(ks.slot_table(12182).map(|t| t.len()), Some(2));
    }

    /// A keyspace split over `n` shards, as the server has it.
    fn shards(n: usize) -> Vec<Keyspace> {
        (0..n).map(|i| Keyspace::new(i, n)).collect()
    }

    fn owner(key: &[u8], n: usize) -> usize {
        key_slot(key) as usize % n
    }

    /// Walks the shard-major slot enumeration as SCAN's coordinator does, with `between` run
    /// after every step; returns every key each step yielded.
    fn scan_walk(
        ks: &mut [Keyspace],
        count: usize,
        mut between: impl FnMut(&mut [Keyspace], usize),
    ) -> Vec<Vec<u8>> {
        let n = ks.len();
        let mut out = Vec::new();
        let (mut shard, mut start, mut step) = (0, 0, 0);
        while shard < n {
            let (keys, next) = ks[shard].scan_slots(start, count, ScanFilter::default(), 0);
            out.extend(keys);
            match next {
                Some(t) => start = t,
                None => (shard, start) = (shard + 1, 0),
            }
            between(ks, step);
            step += 1;
        }
        out
    }

    #[test]
    fn scan_returns_every_stable_key_exactly_once_despite_churn() {
        let n = 3;
        let mut ks = shards(n);
        let stable: Vec<Vec<u8>> = (0..3000).map(|i| format!("s:{i}").into_bytes()).collect();
        for k in &stable {
            ks[owner(k, n)].set(k, v("x"), NO_EXPIRE, 0);
        }
        for i in 0..500 {
            let k = format!("churn:{i}").into_bytes();
            ks[owner(&k, n)].set(&k, v("x"), NO_EXPIRE, 0);
        }
        // Between steps, delete old churn keys and add new ones, all over the keyspace.
        let seen = scan_walk(&mut ks, 7, |ks, step| {
            let old = format!("churn:{step}").into_bytes();
            ks[owner(&old, n)].delete(&old, 0);
            for j in 0..3 {
                let new = format!("new:{step}:{j}").into_bytes();
                ks[owner(&new, n)].set(&new, v("y"), NO_EXPIRE, 0);
            }
        });
        let mut counts: hashbrown::HashMap<Vec<u8>, usize> = Default::default();
        for k in seen {
            *counts.entry(k).or_default() += 1;
        }
        for k in &stable {
            assert_eq!(counts.get(k), Some(&1), "{}", String::from_utf8_lossy(k));
        }
        assert!(counts.values().all(|&c| c == 1), "no key is returned twice");
    }

    #[test]
    fn scan_steps_take_whole_slots_and_at_least_count_keys() {
        let mut ks = Keyspace::new(0, 1);
        // 50 keys in one slot (hash tag), 1 key elsewhere.
        for i in 0..50 {
            ks.set(format!("{{tag}}{i}").as_bytes(), v("x"), NO_EXPIRE, 0);
        }
        ks.set(b"other", v("x"), NO_EXPIRE, 0);
        let tag_slot = key_slot(b"tag") as usize;
        let (keys, next) = ks.scan_slots(tag_slot, 5, ScanFilter::default(), 0);
        assert_eq!(keys.len(), 50, "the slot is not split");
        assert_eq!(next, Some(tag_slot + 1));
        // From the start with a large count: everything, then done.
        let (keys, next) = ks.scan_slots(0, 1000, ScanFilter::default(), 0);
        assert_eq!(keys.len(), 51);
        assert_eq!(next, None);
        // Past the end: nothing.
        assert_eq!(
            ks.scan_slots(SLOTS, 10, ScanFilter::default(), 0),
            (vec![], None)
        );
    }

    #[test]
    fn scan_filters_pattern_type_and_expired() {
        let mut ks = Keyspace::new(0, 1);
        ks.set(b"a1", v("x"), NO_EXPIRE, 0);
        ks.set(b"a2", v("x"), 50, 0);
        ks.set(b"b1", v("x"), NO_EXPIRE, 0);
        let all = |ks: &mut Keyspace, f: ScanFilter| {
            let mut k = ks.scan_slots(0, usize::MAX, f, 100).0;
            k.sort();
            k
        };
        let f = ScanFilter {
            pattern: Some(b"a*"),
            type_name: None,
        };
        assert_eq!(all(&mut ks, f), vec![b"a1".to_vec()]);
        assert_eq!(ks.len(), 2, "the expired key met was deleted");
        let f = ScanFilter {
            pattern: None,
            type_name: Some(b"STRING"),
        };
        assert_eq!(all(&mut ks, f), vec![b"a1".to_vec(), b"b1".to_vec()]);
        let f = ScanFilter {
            pattern: None,
            type_name: Some(b"hash"),
        };
        assert!(all(&mut ks, f).is_empty());
    }

    #[test]
    fn keys_matching_and_empty_key() {
        let mut ks = Keyspace::new(0, 1);
        ks.set(b"", v("x"), NO_EXPIRE, 0);
        ks.set(b"foo", v("x"), NO_EXPIRE, 0);
        ks.set(b"fox", v("x"), 10, 0);
        let mut all = ks.keys_matching(b"*", 0);
        all.sort();
        assert_eq!(all, vec![b"".to_vec(), b"foo".to_vec(), b"fox".to_vec()]);
        assert_eq!(ks.keys_matching(b"fo?", 20), vec![b"foo".to_vec()]);
        assert!(ks.keys_matching(b"bar*", 0).is_empty());
    }

    #[test]
    fn expire_flags_follow_redis_rules() {
        let f = |nx, xx, gt, lt| ExpireFlags { nx, xx, gt, lt };
        let none = f(false, false, false, false);
        assert!(none.allows(None, 5) && none.allows(Some(10), 5));
        // NX: only without a TTL.
        assert!(f(true, false, false, false).allows(None, 5));
        assert!(!f(true, false, false, false).allows(Some(10), 5));
        // XX: only with a TTL.
        assert!(!f(false, true, false, false).allows(None, 5));
        assert!(f(false, true, false, false).allows(Some(10), 5));
        // GT: no TTL is infinite, so never greater; equal is not greater.
        let gt = f(false, false, true, false);
        assert!(!gt.allows(None, i64::MAX));
        assert!(!gt.allows(Some(10), 10));
        assert!(gt.allows(Some(10), 11));
        // LT: no TTL is infinite, so always less; equal is not less.
        let lt = f(false, false, false, true);
        assert!(lt.allows(None, 5));
        assert!(!lt.allows(Some(10), 10));
        assert!(lt.allows(Some(10), 9));
        // XX + GT needs both.
        assert!(!f(false, true, true, false).allows(None, 5));
        assert!(f(false, true, true, false).allows(Some(10), 20));
    }

    #[test]
    fn expire_with_sets_rejects_and_deletes() {
        let mut ks = Keyspace::new(0, 1);
        let now = 1000;
        let no = ExpireFlags::default();
        let gt = ExpireFlags {
            gt: true,
            ..ExpireFlags::default()
        };
        assert_eq!(ks.expire_with(b"k", 5000, no, now), ExpireOutcome::Missing);
        ks.set(b"k", v("x"), NO_EXPIRE, now);
        assert_eq!(ks.expire_with(b"k", 5000, gt, now), ExpireOutcome::Rejected);
        assert_eq!(ks.expire_with(b"k", 5000, no, now), ExpireOutcome::Set);
        let ttl = ks.peek(b"k", now).map(|e| e.ttl());
        assert_eq!(ttl.map(|t| ks.expire_at_of(t)), Some(5000));
        assert_eq!(ks.volatile_len(), 1);
        assert_eq!(ks.expire_with(b"k", 4000, gt, now), ExpireOutcome::Rejected);
        assert_eq!(ks.expire_with(b"k", 6000, gt, now), ExpireOutcome::Set);
        assert!(ks.persist(b"k", now));
        assert!(!ks.persist(b"k", now));
        assert_eq!(ks.volatile_len(), 0);
        // A time not in the future deletes the key.
        assert_eq!(ks.expire_with(b"k", now, no, now), ExpireOutcome::Deleted);
        assert!(ks.is_empty());
        assert_eq!(
            ks.stats.expired_keys, 0,
            "an explicit delete, not an expiry"
        );
    }

    #[test]
    fn peek_and_read_untouched_leave_access_time() {
        let mut ks = Keyspace::new(0, 1);
        ks.set(b"k", v("x"), NO_EXPIRE, 1_000);
        assert_eq!(ks.peek(b"k", 50_000).map(|e| e.lru), Some(lru_clock(1_000)));
        assert!(ks.read_untouched(b"k", 60_000).is_some());
        assert!(ks.read_untouched(b"nope", 60_000).is_none());
        assert_eq!((ks.stats.hits, ks.stats.misses), (1, 1));
        assert_eq!(
            idle_seconds(ks.get(b"k", 1_000).map_or(0, |e| e.lru), 61_000),
            60
        );
        assert_eq!(ks.peek(b"k", 0).map(|e| e.lru), Some(lru_clock(1_000)));
        // get touches.
        ks.get(b"k", 70_000);
        assert_eq!(ks.peek(b"k", 0).map(|e| e.lru), Some(lru_clock(70_000)));
    }

    #[test]
    fn idle_time_survives_clock_wrap() {
        let wrap_ms = (LRU_CLOCK_MAX as i64 + 1) * 1000;
        let lru = lru_clock(wrap_ms - 10_000);
        assert_eq!(idle_seconds(lru, wrap_ms + 5_000), 14);
    }

    #[test]
    fn take_moves_value_and_ttl() {
        let mut ks = Keyspace::new(0, 1);
        ks.set(b"k", v("x"), 9_000, 0);
        assert_eq!(ks.take(b"k", 0), Some((v("x"), 9_000)));
        assert!(ks.is_empty() && ks.volatile_len() == 0);
        ks.set(b"e", v("x"), 10, 0);
        assert_eq!(ks.take(b"e", 10), None, "expired keys are not taken");
    }

    #[test]
    fn random_key_reaches_every_key_and_skips_expired() {
        let mut ks = Keyspace::new(0, 1);
        assert_eq!(ks.random_key(0), None);
        for i in 0..20 {
            ks.set(format!("k{i}").as_bytes(), v("x"), NO_EXPIRE, 0);
        }
        for i in 0..20 {
            ks.set(format!("gone{i}").as_bytes(), v("x"), 5, 0);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let k = ks.random_key(10).expect("live keys exist");
            assert!(k.starts_with(b"k"));
            seen.insert(k);
        }
        assert_eq!(seen.len(), 20);
        assert_eq!(ks.len(), 20, "expired keys drawn were deleted");
    }

    #[test]
    fn slots_owned_sums_to_all_slots() {
        for n in [1, 2, 3, 7, 64] {
            let total: usize = (0..n).map(|s| slots_owned(s, n)).sum();
            assert_eq!(total, SLOTS);
            let mut ks = Keyspace::new(0, n);
            assert!(ks.tables.is_empty(), "no tables before the first write");
            assert_eq!(slots_owned(0, n), ks.tables_for_write().len());
        }
    }
}
