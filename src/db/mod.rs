//! One shard's keyspace: a hash table per owned slot, plus an index of keys with a TTL.
//!
//! Slot `s` is owned by shard `s % nshards` and lives at `tables[s / nshards]`, so counting or
//! listing the keys of a slot touches only that slot's table. Keys with a TTL are also listed
//! in `volatile` (with their position kept in the entry) so that the active expire cycle can
//! sample them uniformly, as Redis samples its `expires` dict.

use hashbrown::HashMap;

use crate::slot::{key_slot, SLOTS};
use crate::types::Value;

/// `expire_at` value meaning "no TTL".
pub const NO_EXPIRE: i64 = 0;
const NOT_VOLATILE: u32 = u32::MAX;

pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix milliseconds, or `NO_EXPIRE`.
    expire_at: i64,
    /// Position in `Keyspace::volatile`, or `NOT_VOLATILE`.
    vidx: u32,
    /// Last access, in seconds of the LRU clock (for OBJECT IDLETIME).
    pub lru: u32,
}

impl Entry {
    #[inline]
    pub fn expire_at(&self) -> i64 {
        self.expire_at
    }

    #[inline]
    fn expired(&self, now: i64) -> bool {
        self.expire_at != NO_EXPIRE && self.expire_at <= now
    }
}

pub type SlotTable = HashMap<Box<[u8]>, Entry>;

#[derive(Default, Clone, Copy, Debug)]
pub struct KeyspaceStats {
    pub expired_keys: u64,
    pub hits: u64,
    pub misses: u64,
}

pub struct Keyspace {
    nshards: usize,
    tables: Vec<SlotTable>,
    volatile: Vec<(u16, Box<[u8]>)>,
    len: usize,
    rng: u64,
    pub stats: KeyspaceStats,
}

/// The LRU clock: seconds, wrapping at 24 bits as Redis's does.
pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / 1000) as u32) & 0x00ff_ffff
}

impl Keyspace {
    /// The keyspace of shard `shard` of `nshards` (`nshards == 0` gives an empty one for the control core).
    pub fn new(shard: usize, nshards: usize) -> Keyspace {
        let owned = if nshards == 0 {
            0
        } else {
            (SLOTS - shard).div_ceil(nshards)
        };
        Keyspace {
            nshards: nshards.max(1),
            tables: (0..owned).map(|_| SlotTable::new()).collect(),
            volatile: Vec::new(),
            len: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (shard as u64 + 1),
            stats: KeyspaceStats::default(),
        }
    }

    #[inline]
    fn table_index(&self, slot: u16) -> usize {
        slot as usize / self.nshards
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

    /// The live entry for `key`, deleting it first if it has expired.
    #[inline]
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let (_, t) = self.table(key);
        let entry: *mut Entry = self.tables.get_mut(t)?.get_mut(key)?;
        // SAFETY: `entry` points into `self.tables[t]`, which nothing else borrows; returning
        // it here only works around the borrow checker's conditional-return limitation.
        if unsafe { !(*entry).expired(now) } {
            let e = unsafe { &mut *entry };
            e.lru = lru_clock(now);
            return Some(e);
        }
        self.remove(key);
        self.stats.expired_keys += 1;
        None
    }

    /// Like `get`, but counts keyspace hits and misses (for read commands).
    #[inline]
    pub fn read(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        let entry: *mut Entry = match self.get(key, now) {
            Some(e) => e,
            None => {
                self.stats.misses += 1;
                return None;
            }
        };
        self.stats.hits += 1;
        // SAFETY: as in `get`; `stats` is a different field from the tables `entry` points into.
        Some(unsafe { &mut *entry })
    }

    pub fn exists(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some()
    }

    /// Stores `value` under `key` with the given expiry, replacing any previous value and TTL.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64, now: i64) {
        let (slot, t) = self.table(key);
        let lru = lru_clock(now);
        match self.tables[t].get_mut(key) {
            Some(e) => {
                e.value = value;
                e.lru = lru;
            }
            None => {
                self.tables[t].insert(
                    key.into(),
                    Entry {
                        value,
                        expire_at: NO_EXPIRE,
                        vidx: NOT_VOLATILE,
                        lru,
                    },
                );
                self.len += 1;
            }
        }
        self.set_expire_in(slot, t, key, expire_at);
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
        if !self.tables[t].contains_key(key) {
            return false;
        }
        self.set_expire_in(slot, t, key, expire_at);
        true
    }

    fn set_expire_in(&mut self, slot: u16, t: usize, key: &[u8], expire_at: i64) {
        let Some(e) = self.tables[t].get_mut(key) else {
            return;
        };
        e.expire_at = expire_at;
        let vidx = e.vidx;
        match (vidx == NOT_VOLATILE, expire_at == NO_EXPIRE) {
            (true, false) => {
                e.vidx = self.volatile.len() as u32;
                self.volatile.push((slot, key.into()));
            }
            (false, true) => {
                e.vidx = NOT_VOLATILE;
                self.unlist_volatile(vidx as usize);
            }
            _ => {}
        }
    }

    /// Removes `key` (expired or not) and returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let (_, t) = self.table(key);
        let entry = self.tables[t].remove(key)?;
        self.len -= 1;
        if entry.vidx != NOT_VOLATILE {
            self.unlist_volatile(entry.vidx as usize);
        }
        Some(entry)
    }

    /// Removes a live key; returns whether it existed.
    pub fn delete(&mut self, key: &[u8], now: i64) -> bool {
        self.get(key, now).is_some() && self.remove(key).is_some()
    }

    fn unlist_volatile(&mut self, idx: usize) {
        self.volatile.swap_remove(idx);
        if let Some((slot, moved)) = self.volatile.get(idx) {
            let t = self.table_index(*slot);
            if let Some(e) = self.tables[t].get_mut(&moved[..]) {
                e.vidx = idx as u32;
            }
        }
    }

    /// Number of keys in `slot` (which this shard must own).
    pub fn count_in_slot(&self, slot: u16) -> usize {
        self.tables
            .get(self.table_index(slot))
            .map_or(0, |t| t.len())
    }

    /// The table of `slot`, for walking its keys (expired ones included; callers filter).
    pub fn slot_table(&self, slot: u16) -> Option<&SlotTable> {
        self.tables.get(self.table_index(slot))
    }

    /// Calls `f` for every live key.
    pub fn for_each_key(&self, now: i64, mut f: impl FnMut(&[u8], &Entry)) {
        for t in &self.tables {
            for (k, e) in t {
                if !e.expired(now) {
                    f(k, e);
                }
            }
        }
    }

    pub fn flush(&mut self) {
        for t in &mut self.tables {
            *t = SlotTable::new();
        }
        self.volatile = Vec::new();
        self.len = 0;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for sampling.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random live key, if any.
    pub fn random_key(&mut self, now: i64) -> Option<Vec<u8>> {
        for _ in 0..100 {
            if self.len == 0 {
                return None;
            }
            let n = self.tables.len();
            let start = (self.next_random() % n as u64) as usize;
            let Some(t) = (0..n)
                .map(|i| (start + i) % n)
                .find(|&t| !self.tables[t].is_empty())
            else {
                return None;
            };
            let pick = (self.next_random() % self.tables[t].len() as u64) as usize;
            let (key, expired) = match self.tables[t].iter().nth(pick) {
                Some((k, e)) => (k.to_vec(), e.expired(now)),
                None => continue,
            };
            if !expired {
                return Some(key);
            }
            self.remove(&key);
            self.stats.expired_keys += 1;
        }
        None
    }

    /// One round of active expiry, as Redis's `activeExpireCycle`: sample up to 20 keys with a
    /// TTL, delete the expired ones, and repeat while more than a quarter of a sample had
    /// expired, for at most `max_rounds` rounds. Returns how many keys were deleted.
    pub fn active_expire(&mut self, now: i64, max_rounds: usize) -> usize {
        const SAMPLE: usize = 20;
        let mut deleted = 0;
        for _ in 0..max_rounds {
            if self.volatile.is_empty() {
                break;
            }
            let mut expired_in_sample = 0;
            let sample = SAMPLE.min(self.volatile.len());
            for _ in 0..sample {
                if self.volatile.is_empty() {
                    break;
                }
                let i = (self.next_random() % self.volatile.len() as u64) as usize;
                let (slot, key) = &self.volatile[i];
                let t = self.table_index(*slot);
                let is_expired = self.tables[t].get(&key[..]).is_some_and(|e| e.expired(now));
                if is_expired {
                    let key = key.clone();
                    self.remove(&key);
                    self.stats.expired_keys += 1;
                    expired_in_sample += 1;
                }
            }
            deleted += expired_in_sample;
            if expired_in_sample * 4 <= sample {
                break;
            }
        }
        deleted
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
            ks.active_expire(200, 16);
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
}
