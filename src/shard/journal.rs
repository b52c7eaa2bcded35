//! What this executor's commands propagate, as Redis 7.0 propagates them to replicas and the
//! AOF (`../shared/spec/propagation.md`): one entry per execution unit (a command, an EXEC, a
//! served blocked client, an expired key), holding the unit's ops in order.
//!
//! Entries are stamped so the executors' journals merge into one order: a stamp is past
//! this executor's last one, past the clock of every shard's data the unit held (the data
//! carries the stamp of its last write wherever it ran, a Lamport clock), and at least the
//! monotonic time, so a unit that starts after another's reply is stamped after it.
//!
//! Recording (`Shard::recording`) is on only while something reads the journal; today that
//! is `DEBUG JOURNAL` (tests and inspection). Off, `call()` still counts changes but encodes
//! nothing.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Instant;

use crate::resp::args::encode_command;

/// One propagated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The database it applies to (a SELECT precedes it when the stream is elsewhere).
    pub db: u32,
    /// The command, RESP-encoded as an array of bulk strings.
    pub argv: Vec<u8>,
}

/// The ops one execution unit collects, before it becomes an entry.
#[derive(Default, Debug)]
pub struct Unit {
    pub ops: Vec<Op>,
    /// Each op stands alone: never wrapped in MULTI/EXEC (lazily expired keys of SCAN and
    /// RANDOMKEY, which Redis flags "may touch arbitrary keys").
    pub loose: bool,
}

impl Unit {
    pub fn push(&mut self, db: usize, argv: &[&[u8]]) {
        let mut bytes = Vec::new();
        encode_command(argv.iter().copied(), argv.len(), &mut bytes);
        self.ops.push(Op {
            db: db as u32,
            argv: bytes,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One unit's ops, stamped.
#[derive(Clone, Debug)]
pub struct Entry {
    pub stamp: u64,
    pub ops: Vec<Op>,
    /// More than one op, to be wrapped in MULTI/EXEC (Redis's rule R3).
    pub wrap: bool,
}

#[derive(Default)]
pub struct Journal {
    entries: VecDeque<Entry>,
    last_stamp: u64,
}

/// Nanoseconds of the monotonic clock since the process started: the same clock on every
/// core. Every stamp taken later is above it: a journal reader that read a core's journal
/// and then this clock there has all of that core's entries up to it (its watermark).
pub fn now_stamp() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl Journal {
    /// A stamp for a unit that held data last stamped `floor` (0: none).
    pub fn next_stamp(&mut self, floor: u64) -> u64 {
        let stamp = now_stamp().max(self.last_stamp + 1).max(floor + 1);
        self.last_stamp = stamp;
        stamp
    }

    /// Records a finished unit (nothing for an empty one) with `stamp`.
    pub fn append(&mut self, unit: &mut Unit, stamp: u64) {
        if unit.ops.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut unit.ops);
        if unit.loose {
            for op in ops {
                self.entries.push_back(Entry {
                    stamp,
                    ops: vec![op],
                    wrap: false,
                });
            }
        } else {
            let wrap = ops.len() > 1;
            self.entries.push_back(Entry { stamp, ops, wrap });
        }
        unit.loose = false;
    }

    /// Takes every entry recorded so far.
    pub fn drain(&mut self) -> Vec<Entry> {
        self.entries.drain(..).collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Merges the entries drained from every executor into one order: entries wait until the
/// lowest watermark reaches them, then leave in stamp order (see `persist::aof`'s doc for
/// why that order is one clients could have seen).
#[derive(Default)]
pub struct Merger {
    pending: Vec<Entry>,
}

impl Merger {
    /// Takes newly drained entries; returns, in stamp order, those at or below `watermark`.
    pub fn ready(&mut self, mut entries: Vec<Entry>, watermark: u64) -> Vec<Entry> {
        self.pending.append(&mut entries);
        self.pending.sort_by_key(|e| e.stamp);
        let ready = self.pending.partition_point(|e| e.stamp <= watermark);
        self.pending.drain(..ready).collect()
    }
}

/// Writes entries (already in stamp order) as the replication stream carries them: a SELECT
/// before an op whose database differs from the stream's (`stream_db`, updated), a unit of
/// several ops inside MULTI ... EXEC with the SELECT before the MULTI (rules R3 and R6).
pub fn render(entries: &[Entry], stream_db: &mut Option<u32>, out: &mut Vec<u8>) {
    let select = |db: u32, stream_db: &mut Option<u32>, out: &mut Vec<u8>| {
        if *stream_db != Some(db) {
            let n = db.to_string();
            encode_command([&b"SELECT"[..], n.as_bytes()].into_iter(), 2, out);
            *stream_db = Some(db);
        }
    };
    for e in entries {
        if e.wrap {
            select(e.ops[0].db, stream_db, out);
            encode_command([&b"MULTI"[..]].into_iter(), 1, out);
        }
        for op in &e.ops {
            select(op.db, stream_db, out);
            out.extend_from_slice(&op.argv);
        }
        if e.wrap {
            encode_command([&b"EXEC"[..]].into_iter(), 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(ops: &[(usize, &[&[u8]])]) -> Unit {
        let mut u = Unit::default();
        for (db, argv) in ops {
            u.push(*db, argv);
        }
        u
    }

    #[test]
    fn stamps_move_forward_past_every_floor() {
        let mut j = Journal::default();
        let a = j.next_stamp(0);
        let b = j.next_stamp(0);
        assert!(b > a);
        let c = j.next_stamp(u64::MAX / 2);
        assert_eq!(c, u64::MAX / 2 + 1);
        assert!(j.next_stamp(0) > c);
    }

    #[test]
    fn render_selects_and_wraps_as_redis() {
        let mut j = Journal::default();
        j.append(&mut unit(&[(0, &[b"SET", b"a", b"1"])]), 1);
        j.append(
            &mut unit(&[(0, &[b"SET", b"b", b"1"]), (5, &[b"SET", b"c", b"1"])]),
            2,
        );
        let mut loose = unit(&[(7, &[b"DEL", b"x"]), (7, &[b"DEL", b"y"])]);
        loose.loose = true;
        j.append(&mut loose, 3);
        let mut out = Vec::new();
        let mut db = None;
        render(&j.drain(), &mut db, &mut out);
        let expected = "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n\
            *1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n1\r\n\
            *2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n*3\r\n$3\r\nSET\r\n$1\r\nc\r\n$1\r\n1\r\n*1\r\n$4\r\nEXEC\r\n\
            *2\r\n$6\r\nSELECT\r\n$1\r\n7\r\n*2\r\n$3\r\nDEL\r\n$1\r\nx\r\n*2\r\n$3\r\nDEL\r\n$1\r\ny\r\n";
        assert_eq!(String::from_utf8_lossy(&out), expected);
        assert_eq!(db, Some(7));
    }
}
