//! What `maxmemory` eviction needs from a keyspace, as Redis 7.0's `evict.c`: the policies,
//! each key's access stamp (24 bits of `Entry::lru`: the LRU clock, or under an LFU policy
//! 16 bits of minutes and an 8-bit logarithmic counter, so LFU costs no memory per key), and
//! the eviction pool that sampled candidates compete for.
//!
//! The stamp's meaning follows the policy, which is process-wide (as Redis's `server`
//! fields): `set_access_policy` publishes it, and every lookup reads one relaxed atomic.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};

use super::{lru_clock, Entry, Keyspace, NOT_VOLATILE};

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl Policy {
    /// The policy a `maxmemory-policy` value names (the configuration has validated it).
    pub fn parse(name: &str) -> Policy {
        match name {
            "allkeys-lru" => Policy::AllkeysLru,
            "allkeys-lfu" => Policy::AllkeysLfu,
            "allkeys-random" => Policy::AllkeysRandom,
            "volatile-lru" => Policy::VolatileLru,
            "volatile-lfu" => Policy::VolatileLfu,
            "volatile-random" => Policy::VolatileRandom,
            "volatile-ttl" => Policy::VolatileTtl,
            _ => Policy::NoEviction,
        }
    }

    /// Whether every key is a candidate (otherwise only keys with a TTL).
    pub fn allkeys(self) -> bool {
        matches!(
            self,
            Policy::AllkeysLru | Policy::AllkeysLfu | Policy::AllkeysRandom
        )
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllkeysLfu | Policy::VolatileLfu)
    }

    /// Whether candidates are ranked through the pool (the random policies take any key).
    pub fn uses_pool(self) -> bool {
        !matches!(
            self,
            Policy::NoEviction | Policy::AllkeysRandom | Policy::VolatileRandom
        )
    }
}

/// LFU counter of a new key (Redis's `LFU_INIT_VAL`).
pub const LFU_INIT_VAL: u8 = 5;

static LFU: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Publishes how lookups stamp keys: the LFU counter (`lfu`, with `lfu-log-factor` and
/// `lfu-decay-time`) or the LRU clock.
pub fn set_access_policy(lfu: bool, log_factor: u32, decay_time: u32) {
    LFU_LOG_FACTOR.store(log_factor, Relaxed);
    LFU_DECAY_TIME.store(decay_time, Relaxed);
    LFU.store(lfu, Relaxed);
}

/// Whether keys carry LFU counters (an LFU policy is configured).
#[inline]
pub fn lfu_mode() -> bool {
    LFU.load(Relaxed)
}

/// Minutes, 16 bits (`LFUGetTimeInMinutes`).
fn lfu_minutes(now_ms: i64) -> u32 {
    ((now_ms / 1000 / 60) as u32) & 0xffff
}

/// The stamp of a key created at `now_ms` (`createObject`).
#[inline]
pub fn new_stamp(now_ms: i64) -> u32 {
    if lfu_mode() {
        (lfu_minutes(now_ms) << 8) | LFU_INIT_VAL as u32
    } else {
        lru_clock(now_ms)
    }
}

/// The stamp after an access at `now_ms` (`lookupKey`: `updateLFU` or the LRU clock).
#[inline]
pub fn touched(stamp: u32, now_ms: i64) -> u32 {
    if lfu_mode() {
        lfu_touched(stamp, now_ms)
    } else {
        lru_clock(now_ms)
    }
}

#[cold]
fn lfu_touched(stamp: u32, now_ms: i64) -> u32 {
    let counter = lfu_log_incr(lfu_counter(stamp, now_ms));
    (lfu_minutes(now_ms) << 8) | counter as u32
}

/// The LFU counter of `stamp`, decayed by one per `lfu-decay-time` minutes since it was
/// last decremented (`LFUDecrAndReturn`): what OBJECT FREQ answers.
pub fn lfu_counter(stamp: u32, now_ms: i64) -> u8 {
    let ldt = (stamp >> 8) & 0xffff;
    let counter = stamp & 0xff;
    let now = lfu_minutes(now_ms);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let decay = LFU_DECAY_TIME.load(Relaxed);
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods) as u8
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0x2545_F491_4F6C_DD1D) };
}

/// A uniform number in [0, 1) from this thread's generator.
fn random_unit() -> f64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// One logarithmic increment (`LFULogIncr`): the higher the counter, the less likely.
fn lfu_log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = (counter as f64 - LFU_INIT_VAL as f64).max(0.0);
    let p = 1.0 / (base * LFU_LOG_FACTOR.load(Relaxed) as f64 + 1.0);
    if random_unit() < p {
        counter + 1
    } else {
        counter
    }
}

/// The stamp RESTORE ... FREQ gives (`objectSetLRUOrLFU`).
pub fn lfu_stamp(freq: u8, now_ms: i64) -> u32 {
    (lfu_minutes(now_ms) << 8) | freq as u32
}

/// Candidates the pool keeps (`EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// The best candidates seen so far, worst first: a higher score is a better candidate (idle
/// time, 255 minus the LFU counter, or the inverted expiry).
#[derive(Default)]
pub struct EvictionPool {
    entries: Vec<Candidate>,
}

struct Candidate {
    score: u64,
    db: usize,
    key: Box<[u8]>,
}

impl EvictionPool {
    /// Offers a candidate: kept if the pool has room or it beats the worst one held.
    fn offer(&mut self, score: u64, db: usize, key: &[u8]) {
        // A key sampled again takes one place only (Redis may hold it twice, wasting one).
        if let Some(i) = self
            .entries
            .iter()
            .position(|c| c.db == db && *c.key == *key)
        {
            self.entries.remove(i);
        }
        let at = self.entries.partition_point(|c| c.score < score);
        if self.entries.len() == POOL_SIZE {
            if at == 0 {
                return;
            }
            // Full: the worst (first) entry makes room.
            self.entries.remove(0);
            self.entries.insert(
                at - 1,
                Candidate {
                    score,
                    db,
                    key: key.into(),
                },
            );
        } else {
            self.entries.insert(
                at,
                Candidate {
                    score,
                    db,
                    key: key.into(),
                },
            );
        }
    }

    /// The best candidate ranked again at `score`, its score now (it was read since it was
    /// sampled): it keeps its place only if that still beats the others.
    pub fn rerank_best(&mut self, score: u64) {
        if let Some(c) = self.entries.pop() {
            self.offer(score, c.db, &c.key);
        }
    }

    /// Takes the best candidate (it may be gone from the keyspace since: the caller checks).
    pub fn pop_best(&mut self) -> Option<(usize, Box<[u8]>)> {
        self.entries.pop().map(|c| (c.db, c.key))
    }

    /// The best candidate, left in place: its score, database and key.
    pub fn best(&self) -> Option<(u64, usize, &[u8])> {
        self.entries.last().map(|c| (c.score, c.db, &*c.key))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every candidate (the policy changed, or the data was replaced).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The score of a sampled entry under `policy`: higher evicts first (`evictionPoolPopulate`).
fn score(policy: Policy, e: &Entry, expire_at: i64, now_ms: i64) -> u64 {
    match policy {
        Policy::AllkeysLfu | Policy::VolatileLfu => 255 - lfu_counter(e.lru, now_ms) as u64,
        Policy::VolatileTtl => u64::MAX - expire_at.max(0) as u64,
        _ => super::idle_seconds(e.lru, now_ms),
    }
}

impl Keyspace {
    /// The number of keys `policy` may evict here.
    pub fn eviction_candidates(&self, policy: Policy) -> usize {
        if policy.allkeys() {
            self.len
        } else {
            self.volatile.len()
        }
    }

    /// Samples `samples` candidates of this database (database `db`) into `pool`
    /// (`evictionPoolPopulate`). Keys are drawn from random slot tables (all keys) or the
    /// TTL index (volatile policies).
    pub fn sample_into(
        &mut self,
        policy: Policy,
        samples: usize,
        db: usize,
        pool: &mut EvictionPool,
        now_ms: i64,
    ) {
        let mut key_buf: Vec<Box<[u8]>> = Vec::new();
        if policy.allkeys() {
            if self.len == 0 {
                return;
            }
            let n = self.tables.len();
            for _ in 0..samples {
                // A random table, then the next one holding keys, then a random key in it.
                let start = (self.next_random() % n as u64) as usize;
                let Some(t) = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&t| !self.tables[t].is_empty())
                else {
                    return;
                };
                let pick = (self.next_random() % self.tables[t].len() as u64) as usize;
                if let Some((k, e)) = self.tables[t].iter().nth(pick) {
                    let expire_at = super::expire_of(&self.volatile, e.vidx());
                    pool.offer(score(policy, e, expire_at, now_ms), db, k);
                }
            }
        } else {
            if self.volatile.is_empty() {
                return;
            }
            for _ in 0..samples {
                let i = (self.next_random() % self.volatile.len() as u64) as usize;
                key_buf.push(self.volatile[i].key.clone());
            }
            for k in key_buf {
                let t = self.table_index(crate::slot::key_slot(&k));
                if let Some(e) = self.tables.get(t).and_then(|t| t.get(&k)) {
                    let expire_at = super::expire_of(&self.volatile, e.vidx());
                    pool.offer(score(policy, e, expire_at, now_ms), db, &k);
                }
            }
        }
    }

    /// A random candidate of `policy` (the random policies), if any.
    pub fn random_candidate(&mut self, policy: Policy) -> Option<Box<[u8]>> {
        if policy.allkeys() {
            if self.len == 0 {
                return None;
            }
            let n = self.tables.len();
            let start = (self.next_random() % n as u64) as usize;
            let t = (0..n)
                .map(|i| (start + i) % n)
                .find(|&t| !self.tables[t].is_empty())?;
            let pick = (self.next_random() % self.tables[t].len() as u64) as usize;
            self.tables[t].iter().nth(pick).map(|(k, _)| k.into())
        } else {
            if self.volatile.is_empty() {
                return None;
            }
            let i = (self.next_random() % self.volatile.len() as u64) as usize;
            Some(self.volatile[i].key.clone())
        }
    }

    /// `key`'s score under `policy` now, if it is still a candidate (a pool entry may be a
    /// ghost: deleted, or no longer volatile; or it was read since it was sampled).
    pub fn candidate_score(&self, policy: Policy, key: &[u8], now_ms: i64) -> Option<u64> {
        let t = self.table_index(crate::slot::key_slot(key));
        let e = self.tables.get(t)?.get(key)?;
        if !policy.allkeys() && e.vidx() == NOT_VOLATILE {
            return None;
        }
        let expire_at = super::expire_of(&self.volatile, e.vidx());
        Some(score(policy, e, expire_at, now_ms))
    }

    /// Deletes `key` to free memory: counted in `evicted_keys` and a change for whoever
    /// watches it. Propagating the deletion is the caller's. Returns whether it was there.
    pub fn evict(&mut self, key: &[u8]) -> bool {
        if self.remove_entry(key).is_none() {
            return false;
        }
        self.stats.evicted_keys += 1;
        if !self.watches.is_empty() {
            self.watches.touch(key, false);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{StrValue, Value};

    fn v() -> Value {
        Value::Str(StrValue::from_bytes(b"v"))
    }

    #[test]
    fn pool_keeps_the_best_sixteen_in_order() {
        let mut pool = EvictionPool::default();
        for i in 0..40u64 {
            // Scores 0, 7, 14, ... in a scrambled order.
            let s = (i * 17) % 40 * 7;
            pool.offer(s, 0, format!("k{s}").as_bytes());
        }
        assert_eq!(pool.len(), POOL_SIZE);
        let mut got = Vec::new();
        while let Some((_, k)) = pool.pop_best() {
            got.push(String::from_utf8(k.into()).unwrap());
        }
        let want: Vec<String> = (24..40).rev().map(|i| format!("k{}", i * 7)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        // Minute-granular: one fixed time, then later ones.
        let now = 1_700_000_000_000;
        let mut s = lfu_stamp(LFU_INIT_VAL, now);
        LFU_LOG_FACTOR.store(10, Relaxed);
        LFU_DECAY_TIME.store(1, Relaxed);
        for _ in 0..100 {
            s = lfu_touched(s, now);
        }
        let c = lfu_counter(s, now);
        // Redis's table for factor 10: 100 hits give about 10; never more than 100 + 5.
        assert!((8..=20).contains(&c), "counter {c} after 100 hits");
        for _ in 0..100_000 {
            s = lfu_touched(s, now);
        }
        let big = lfu_counter(s, now);
        assert!(big > c && big < 255, "counter {big} after 100k hits");
        // Two minutes later it has decayed by two (decay time 1).
        assert_eq!(lfu_counter(s, now + 120_000), big - 2);
        // Never below zero.
        assert_eq!(lfu_counter(lfu_stamp(1, now), now + 600_000), 0);
    }

    #[test]
    fn sampling_finds_the_idlest_and_volatile_only_with_ttl() {
        let now = 1_700_000_000_000;
        let mut ks = Keyspace::new(0, 1);
        for i in 0..200 {
            ks.set(format!("k{i}").as_bytes(), v(), 0, now);
        }
        // One key untouched for an hour: in the pool after enough samples.
        ks.set(b"old", v(), 0, now - 3_600_000);
        let mut pool = EvictionPool::default();
        for _ in 0..200 {
            ks.sample_into(Policy::AllkeysLru, 5, 0, &mut pool, now);
        }
        assert_eq!(pool.pop_best().map(|(_, k)| k), Some(b"old"[..].into()));
        // Volatile policies see only keys with a TTL.
        ks.set(b"ttl1", v(), now + 10_000, now);
        ks.set(b"ttl2", v(), now + 5_000, now);
        let mut pool = EvictionPool::default();
        for _ in 0..50 {
            ks.sample_into(Policy::VolatileTtl, 5, 0, &mut pool, now);
        }
        assert_eq!(pool.pop_best().map(|(_, k)| k), Some(b"ttl2"[..].into()));
        assert_eq!(pool.pop_best().map(|(_, k)| k), Some(b"ttl1"[..].into()));
        assert!(pool.is_empty());
        assert!(ks
            .candidate_score(Policy::VolatileLru, b"ttl1", 0)
            .is_some());
        assert!(ks.candidate_score(Policy::VolatileLru, b"k1", 0).is_none());
        assert!(ks
            .candidate_score(Policy::AllkeysRandom, b"k1", 0)
            .is_some());
        assert_eq!(ks.eviction_candidates(Policy::VolatileRandom), 2);
        assert!(ks.evict(b"ttl1") && !ks.evict(b"ttl1"));
        assert_eq!(ks.stats.evicted_keys, 1);
        assert_eq!(
            ks.random_candidate(Policy::VolatileRandom),
            Some(b"ttl2"[..].into())
        );
    }
}
