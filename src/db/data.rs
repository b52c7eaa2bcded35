//! All of one shard's databases: everything a command reads or writes on that shard. A
//! command whose keys span shards borrows each involved shard's `ShardData`, which moves to
//! the coordinating core for the command and back (`shard::tx`), so it must stay `Send`.

use super::{EvictionPool, Keyspace};

pub struct ShardData {
    pub id: usize,
    pub nshards: usize,
    dbs: Vec<Keyspace>,
    /// Keys a MIGRATE has serialized and not yet deleted: commands touching them get
    /// TRYAGAIN until the target has answered (see `cmd::migrate`).
    pub in_flight: hashbrown::HashSet<Box<[u8]>>,
    /// The journal stamp of the last write to this data, wherever it ran: a later write is
    /// stamped after it even on another core (a Lamport clock; see `shard::journal`).
    pub clock: u64,
    /// Keys blocked clients wait on, in every database: while 0, no command looks further.
    blocked: usize,
    /// `maxmemory` eviction's best candidates across this shard's databases (Redis keeps one
    /// pool for the server; each shard evicts from its own keys).
    pub eviction_pool: EvictionPool,
    /// The database the random policies try first next time (Redis's `next_db`).
    pub next_evict_db: usize,
    /// Client-side caching: who may cache which of this shard's keys.
    pub tracking: super::tracking::Table,
}

impl ShardData {
    /// Shard `id` of `nshards` with `databases` empty databases (`nshards == 0`: the control
    /// core, which owns no slots).
    pub fn new(id: usize, nshards: usize, databases: usize) -> ShardData {
        ShardData {
            id,
            nshards,
            dbs: (0..databases.max(1))
                .map(|_| Keyspace::new(id, nshards))
                .collect(),
            in_flight: Default::default(),
            clock: 0,
            blocked: 0,
            eviction_pool: EvictionPool::default(),
            next_evict_db: 0,
            tracking: Default::default(),
        }
    }

    /// Makes the databases report changed keys exactly while the tracking table needs them
    /// (a tracked key, or a BCAST client anywhere): otherwise writes pay nothing for it.
    pub fn sync_tracked(&mut self) {
        let on = self.tracking.wants_changes();
        if self.dbs.first().is_some_and(|ks| ks.tracked != on) {
            for ks in &mut self.dbs {
                ks.tracked = on;
            }
        }
    }

    /// Whether a database reported keys changed for client-side caching.
    #[inline]
    pub fn has_changed(&self) -> bool {
        self.dbs.iter().any(Keyspace::has_changed)
    }

    /// The keys changed in every database since the last call (for client-side caching,
    /// which does not tell databases apart, as Redis's table does not).
    pub fn take_changed(&mut self) -> Vec<Box<[u8]>> {
        let mut keys = Vec::new();
        for ks in &mut self.dbs {
            keys.append(&mut ks.take_changed());
        }
        keys
    }

    /// Database `index`, which must be below `databases()` (SELECT checks the number).
    #[inline]
    pub fn db(&mut self, index: usize) -> &mut Keyspace {
        &mut self.dbs[index]
    }

    #[inline]
    pub fn db_ref(&self, index: usize) -> &Keyspace {
        &self.dbs[index]
    }

    pub fn dbs(&mut self) -> &mut [Keyspace] {
        &mut self.dbs
    }

    pub fn dbs_ref(&self) -> &[Keyspace] {
        &self.dbs
    }

    /// The databases and the eviction pool at once (eviction samples the one into the other).
    pub fn dbs_and_pool(&mut self) -> (&mut [Keyspace], &mut EvictionPool) {
        (&mut self.dbs, &mut self.eviction_pool)
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Two databases at once (SWAPDB, MOVE); `a != b`.
    pub fn two_dbs(&mut self, a: usize, b: usize) -> (&mut Keyspace, &mut Keyspace) {
        debug_assert_ne!(a, b);
        if a < b {
            let (lo, hi) = self.dbs.split_at_mut(b);
            (&mut lo[a], &mut hi[0])
        } else {
            let (lo, hi) = self.dbs.split_at_mut(a);
            (&mut hi[0], &mut lo[b])
        }
    }

    /// Starts or stops (`on`) reporting accesses to `key` of database `db` for blocked
    /// clients (see `shard::blocking`).
    pub fn track_blocked(&mut self, db: usize, key: &[u8], on: bool) {
        if self.dbs[db].track_blocked(key, on) {
            if on {
                self.blocked += 1;
            } else {
                self.blocked -= 1;
            }
        }
    }

    /// Whether a key blocked clients wait on was touched in any database.
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.blocked > 0 && self.dbs.iter().any(Keyspace::has_ready)
    }

    /// The (database, key) pairs blocked clients wait on that were touched, oldest first.
    pub fn take_ready(&mut self) -> Vec<(usize, Box<[u8]>)> {
        let mut ready = Vec::new();
        for (i, ks) in self.dbs.iter_mut().enumerate() {
            if ks.has_ready() {
                ready.extend(ks.take_ready().into_iter().map(|k| (i, k)));
            }
        }
        ready
    }

    /// Keys stored in every database.
    pub fn len(&self) -> usize {
        self.dbs.iter().map(Keyspace::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_data_can_travel_between_cores() {
        fn assert_send<T: Send>() {}
        assert_send::<ShardData>();
        assert_send::<Box<ShardData>>();
    }

    #[test]
    fn two_dbs_in_either_order() {
        use crate::types::{StrValue, Value};
        let mut d = ShardData::new(0, 1, 16);
        d.db(3)
            .set(b"k", Value::Str(StrValue::from_bytes(b"v")), 0, 0);
        let (nine, three) = d.two_dbs(9, 3);
        assert_eq!((nine.len(), three.len()), (0, 1));
        nine.swap_keys(three);
        assert!(d.db(9).exists(b"k", 0) && !d.db(3).exists(b"k", 0));
        let (three, nine) = d.two_dbs(3, 9);
        assert_eq!((three.len(), nine.len()), (0, 1));
    }
}
