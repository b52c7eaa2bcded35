//! The shard side of a snapshot: starting one over a shard's databases and handing out its
//! serialized keys in bounded chunks, in the RDB file's key format (`file_writer`'s
//! `encode_entry`). When and what to serialize is `db::snapshot`'s; this module supplies
//! how.

use crate::db::{Entry, EvictionInfo, ShardData, SnapshotFormat};

use super::file_writer::{encode_entry, Eviction};
use super::Writer;

/// Appends `key` as a dump.rdb holds it (expire, idle or freq, type, key, value).
pub fn encode_key(
    out: &mut Vec<u8>,
    key: &[u8],
    entry: &Entry,
    expire_ms: Option<i64>,
    f: &SnapshotFormat,
) {
    let mut w = Writer::with_compression(f.compression);
    w.buf = std::mem::take(out);
    let evict = match f.eviction {
        EvictionInfo::None => Eviction::None,
        EvictionInfo::LruIdle => Eviction::LruIdle(crate::db::idle_seconds(entry.lru, f.now_ms)),
        EvictionInfo::LfuFreq => {
            Eviction::LfuFreq(crate::db::evict::lfu_counter(entry.lru, f.now_ms))
        }
    };
    encode_entry(&mut w, key, &entry.value, expire_ms, evict);
    *out = w.buf;
}

/// What one database held on one shard when its snapshot began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbCounts {
    pub keys: u64,
    pub expires: u64,
}

/// Starts a snapshot of every database of `data` as it is now. Returns each database's
/// counts at that instant (for the file's `RESIZEDB`).
pub fn begin(data: &mut ShardData, format: SnapshotFormat) -> Vec<DbCounts> {
    data.dbs()
        .iter_mut()
        .map(|ks| {
            let counts = DbCounts {
                keys: ks.len() as u64,
                expires: ks.volatile_len() as u64,
            };
            ks.begin_snapshot(encode_key, format);
            counts
        })
        .collect()
}

/// A piece of one database's snapshot on one shard.
#[derive(Debug)]
pub struct Chunk {
    /// Keys in the file's format, whole.
    pub bytes: Vec<u8>,
    /// How many keys `bytes` holds.
    pub keys: u64,
    /// The database's snapshot on this shard ends with this chunk.
    pub last: bool,
}

/// The next chunk of database `db`'s snapshot on this shard: about `max_bytes`, or less
/// once `max_time` was spent serializing (after a whole slot table), so that values slow to
/// encode do not hold the shard longer. `None` when no snapshot of it runs: it ended, or was
/// stopped (`abort`).
pub fn next_chunk(
    data: &mut ShardData,
    db: usize,
    max_bytes: usize,
    max_time: std::time::Duration,
) -> Option<Chunk> {
    let (bytes, keys, last) = data.db(db).snapshot_chunk(max_bytes, max_time)?;
    Some(Chunk { bytes, keys, last })
}

/// Stops every database's snapshot on this shard.
pub fn abort(data: &mut ShardData) {
    for ks in data.dbs() {
        ks.abort_snapshot();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::file_reader::{read_rdb, RdbEvent, RdbReadOptions};
    use crate::rdb::file_writer::{AuxFields, RdbFileWriter, RdbWriteOptions};
    use crate::types::{StrValue, Value};

    const NO_LIMIT: std::time::Duration = std::time::Duration::MAX;

    fn s(v: &[u8]) -> Value {
        Value::Str(StrValue::from_bytes(v))
    }

    fn format() -> SnapshotFormat {
        SnapshotFormat {
            compression: true,
            eviction: EvictionInfo::None,
            now_ms: 0,
        }
    }

    /// (db, key, value, expire).
    type Row = (u64, Vec<u8>, Vec<u8>, Option<i64>);

    /// Every row of `data`, sorted.
    fn contents(data: &mut ShardData) -> Vec<Row> {
        let mut out = Vec::new();
        for (i, ks) in data.dbs().iter_mut().enumerate() {
            let mut keys = Vec::new();
            ks.for_each_key(0, |k, _| keys.push(k.to_vec()));
            for k in keys {
                let at = ks.peek_expire(&k).filter(|&at| at != crate::db::NO_EXPIRE);
                let e = ks.peek(&k, 0).expect("listed key");
                let Value::Str(v) = &e.value else {
                    panic!("strings only")
                };
                out.push((i as u64, k, v.to_vec(), at));
            }
        }
        out.sort();
        out
    }

    /// Writes the snapshot's chunks as a file and reads it back.
    fn file_of(chunks: &[(usize, Vec<u8>)], counts: &[DbCounts]) -> Vec<Row> {
        let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
        w.write_aux_fields(&AuxFields::new(0, 0)).unwrap();
        for (db, c) in counts.iter().enumerate() {
            if c.keys == 0 {
                continue;
            }
            w.write_db_header(db as u64, c.keys, c.expires).unwrap();
            for (d, bytes) in chunks {
                if *d == db {
                    w.write_encoded(bytes).unwrap();
                }
            }
        }
        let bytes = w.finish().unwrap();
        let mut out = Vec::new();
        read_rdb(
            &mut &bytes[..],
            &RdbReadOptions::default(),
            &mut |ev: RdbEvent| {
                if let RdbEvent::Entry(e) = ev {
                    let Value::Str(v) = &e.value else {
                        panic!("strings only")
                    };
                    out.push((e.db, e.key, v.to_vec(), e.expire_ms));
                }
                Ok(())
            },
        )
        .unwrap();
        out.sort();
        out
    }

    #[test]
    fn a_snapshot_is_the_data_as_it_was_when_it_began_despite_writes() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..6 {
            let mut data = ShardData::new(0, 1, 4);
            for i in 0..3000u64 {
                let db = (i % 3) as usize;
                let at = if i % 5 == 0 { 10_000_000 + i as i64 } else { 0 };
                data.db(db).set(
                    format!("k{i}").as_bytes(),
                    s(format!("v{i}").as_bytes()),
                    at,
                    0,
                );
            }
            if round % 2 == 1 {
                // A snapshot stopped halfway leaves no marks behind for the next one.
                begin(&mut data, format());
                for i in 0..200u64 {
                    if i % 4 == 0 {
                        next_chunk(&mut data, (i % 3) as usize, 200, NO_LIMIT);
                    }
                    let k = format!("k{}", next() % 4000);
                    data.db((i % 3) as usize)
                        .set(k.as_bytes(), s(b"before"), 0, 0);
                }
                abort(&mut data);
            }
            let before = contents(&mut data);
            let counts = begin(&mut data, format());
            let mut chunks = Vec::new();
            let mut done: Vec<bool> = counts.iter().map(|c| c.keys == 0).collect();
            // Pull small chunks, writing, deleting, expiring, flushing and swapping between them.
            while done.iter().any(|d| !d) {
                let db = (next() % 4) as usize;
                if !done[db] {
                    let c = next_chunk(&mut data, db, 200, NO_LIMIT).expect("snapshot runs");
                    chunks.push((db, c.bytes));
                    done[db] = c.last;
                }
                for _ in 0..5 {
                    let k = format!("k{}", next() % 4000);
                    let db = (next() % 4) as usize;
                    match next() % 6 {
                        0 => data.db(db).set(k.as_bytes(), s(b"new"), 0, 0),
                        1 => {
                            data.db(db).remove(k.as_bytes());
                        }
                        2 => {
                            data.db(db).set_expire(k.as_bytes(), 5);
                        }
                        3 => {
                            if let Some(e) = data.db(db).get(k.as_bytes(), 0) {
                                e.value = s(b"changed in place");
                            }
                        }
                        4 if round % 2 == 0 && next() % 50 == 0 => data.db(db).flush(),
                        5 if round % 3 == 0 && next() % 50 == 0 => {
                            let (a, b) = data.two_dbs(0, 1);
                            a.swap_keys(b);
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!(file_of(&chunks, &counts), before, "round {round}");
            // Over: nothing is serialized any more.
            assert!(data.dbs_ref().iter().all(|ks| !ks.snapshotting()));
        }
    }

    #[test]
    fn empty_databases_have_nothing_to_write() {
        let mut data = ShardData::new(0, 1, 2);
        data.db(1).set(b"a", s(b"1"), 0, 0);
        let counts = begin(&mut data, format());
        assert_eq!(counts[0], DbCounts::default());
        assert!(next_chunk(&mut data, 0, 1 << 20, NO_LIMIT).is_none());
        let c = next_chunk(&mut data, 1, 1 << 20, NO_LIMIT).expect("db 1 has keys");
        assert!(c.last && c.keys == 1 && !c.bytes.is_empty());
        assert!(next_chunk(&mut data, 1, 1 << 20, NO_LIMIT).is_none());
    }
}
