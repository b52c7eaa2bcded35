//! A point-in-time snapshot of one database on one shard, taken without fork.
//!
//! The snapshot walks the slot tables in order and serializes each whole table once. A key
//! lookup in a table the walk has not reached yet serializes that table first, before the
//! command can change anything in it (Dragonfly versions buckets the same way), so every
//! table is written as it was when the snapshot began. Ahead-of-walk output waits in `out`
//! with the walk's until the next `take`. How a key is serialized is the caller's (`rdb`
//! knows the format; this layer only knows when).

use super::Entry;

/// What a key costs to serialize under the eviction policy in force: the RDB file holds the
/// LRU idle time or the LFU counter before each key when the policy uses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionInfo {
    None,
    LruIdle,
    LfuFreq,
}

/// How keys are written.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotFormat {
    /// `rdbcompression`.
    pub compression: bool,
    pub eviction: EvictionInfo,
    /// The snapshot's start (Unix ms): idle times are measured from it.
    pub now_ms: i64,
}

/// Appends one key, as the file holds it, to `out`.
pub type EncodeFn =
    fn(out: &mut Vec<u8>, key: &[u8], entry: &Entry, expire_ms: Option<i64>, f: &SnapshotFormat);

/// One database's snapshot on one shard, while it runs.
pub struct KeyspaceSnapshot {
    encode: EncodeFn,
    format: SnapshotFormat,
    /// Bit `t`: slot table `t` is serialized.
    done: Vec<u64>,
    /// The walk's next table.
    next: usize,
    tables: usize,
    /// Serialized keys not taken yet, and how many.
    out: Vec<u8>,
    out_keys: u64,
}

impl KeyspaceSnapshot {
    pub fn new(tables: usize, encode: EncodeFn, format: SnapshotFormat) -> KeyspaceSnapshot {
        KeyspaceSnapshot {
            encode,
            format,
            done: vec![0; tables.div_ceil(64)],
            next: 0,
            tables,
            out: Vec::new(),
            out_keys: 0,
        }
    }

    #[inline]
    pub fn is_done(&self, t: usize) -> bool {
        self.done[t / 64] & (1 << (t % 64)) != 0
    }

    fn mark_done(&mut self, t: usize) {
        self.done[t / 64] |= 1 << (t % 64);
    }

    /// Serializes table `t` (its keys given by `keys`) unless it already is.
    pub fn serialize<'a>(
        &mut self,
        t: usize,
        keys: impl Iterator<Item = (&'a [u8], &'a Entry, Option<i64>)>,
    ) {
        if self.is_done(t) {
            return;
        }
        self.mark_done(t);
        for (key, entry, expire) in keys {
            (self.encode)(&mut self.out, key, entry, expire, &self.format);
            self.out_keys += 1;
        }
    }

    /// The next table the walk has to serialize, skipping those done ahead of it; `None`
    /// once every table is serialized.
    pub fn next_pending(&mut self) -> Option<usize> {
        while self.next < self.tables && self.is_done(self.next) {
            self.next += 1;
        }
        (self.next < self.tables).then_some(self.next)
    }

    /// Bytes serialized and not taken yet.
    pub fn pending_bytes(&self) -> usize {
        self.out.len()
    }

    /// Takes the serialized bytes and their key count.
    pub fn take_out(&mut self) -> (Vec<u8>, u64) {
        (
            std::mem::take(&mut self.out),
            std::mem::take(&mut self.out_keys),
        )
    }
}
