//! A point-in-time snapshot of one database on one shard, taken without fork.
//!
//! The snapshot walks the slot tables in order and serializes each table once. A key looked
//! up in a table the walk has not reached yet is serialized on its own first, before the
//! command can change it, and marked (`Entry::ahead`) so the walk skips it; a key created
//! there after the snapshot began is marked too. So every key is written once, as it was
//! when the snapshot began, and a command pays for at most its own keys (Dragonfly versions
//! buckets; a whole slot table here would cost a command up to a millisecond with 10M keys).
//! Ahead-of-walk output waits in `out` with the walk's until the next `take`. How a key is
//! serialized is the caller's (`rdb` knows the format; this layer only knows when).

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

    /// Serializes one key (the walk's, or one about to change ahead of the walk).
    pub fn serialize(&mut self, key: &[u8], entry: &Entry, expire_ms: Option<i64>) {
        (self.encode)(&mut self.out, key, entry, expire_ms, &self.format);
        self.out_keys += 1;
    }

    /// Table `t` is written: its keys no longer need serializing before a change.
    pub fn table_done(&mut self, t: usize) {
        self.mark_done(t);
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
