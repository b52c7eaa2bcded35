//! The stream type: entries ordered by id in packed nodes (Redis's radix tree of listpacks), plus consumer groups.
//!
//! A node is keyed by its first ("master") id and holds up to `stream-node-max-entries`
//! entries / about `stream-node-max-bytes` bytes, packed as
//! `[flag u8][ms delta varint][seq varint][nfields varint]([len varint][bytes])*` per entry.
//! As in Redis, XDEL and exact trimming only flag an entry deleted (the node is freed once its
//! last live entry goes), so node boundaries — which `~` trimming depends on — evolve as 7.0's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A stream entry id: milliseconds and sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(&self) -> bool {
        *self == StreamId::MIN
    }

    /// The next id, or None past the largest one.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous id, or None below 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// `<ms>-<seq>` into `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b.format(self.ms).as_bytes());
        out.push(b'-');
        out.extend_from_slice(b.format(self.seq).as_bytes());
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        self.write(&mut v);
        v
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Node size limits (`stream-node-max-bytes`, `stream-node-max-entries`; 0 = unlimited).
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_bytes: 4096,
            max_entries: 100,
        }
    }
}

/// Redis's cap on one listpack (and the largest entry XADD accepts).
pub const NODE_MAX_SIZE: usize = 1 << 30;

const LIVE: u8 = 0;
const DELETED: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`; the buffers are written only by this module, so they are well formed.
fn get_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// A packed run of entries sharing a master id (the map key).
#[derive(Clone, Debug, Default, PartialEq)]
struct Node {
    buf: Vec<u8>,
    live: u32,
    deleted: u32,
    /// The last id written to the node (deleted or not), as `lpGetEdgeStreamID` reads it.
    last: StreamId,
    /// What Redis's listpack for this node would weigh, except its live and deleted counters
    /// (see `lp_bytes`): the `stream-node-max-bytes` check must split nodes where 7.0 does.
    lp_fixed: usize,
}

impl Node {
    /// The node's size as a Redis listpack.
    fn lp_bytes(&self) -> usize {
        self.lp_fixed + lp::int_elem(self.live as i64) + lp::int_elem(self.deleted as i64)
    }

    /// An empty node whose master entry lists `names` (its first entry's field names).
    fn with_master<'a>(names: impl ExactSizeIterator<Item = &'a [u8]>) -> Node {
        // The master entry: counters (weighed in `lp_bytes`), field count, the names, and a
        // terminating 0.
        let n = names.len();
        let names: usize = names.map(lp::str_elem).sum();
        Node {
            lp_fixed: lp::OVERHEAD + lp::int_elem(n as i64) + names + lp::int_elem(0),
            ..Node::default()
        }
    }

    /// The first entry's field names equal `names` (7.0's SAMEFIELDS test); true for an
    /// empty node, whose first entry is about to be `names`'.
    fn same_fields<'a>(
        &self,
        master: StreamId,
        names: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let first = decode_slot(&self.buf, 0, master);
        first.nfields == names.len()
            && Fields {
                buf: &self.buf,
                pos: first.fields,
                count: first.nfields * 2,
            }
            .step_by(2)
            .eq(names)
    }

    /// Appends entry `id` (above the node's last) under master id `master`.
    fn push<'a>(
        &mut self,
        master: StreamId,
        id: StreamId,
        deleted: bool,
        pairs: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    ) {
        let nfields = pairs.len() / 2;
        let same_fields = self.same_fields(master, pairs.clone().step_by(2));
        let values: usize = pairs.clone().skip(1).step_by(2).map(lp::str_elem).sum();
        self.lp_fixed += lp::int_elem(2)
            + lp::int_elem((id.ms.wrapping_sub(master.ms)) as i64)
            + lp::int_elem((id.seq.wrapping_sub(master.seq)) as i64)
            + values;
        if same_fields {
            self.lp_fixed += lp::int_elem(nfields as i64 + 3);
        } else {
            let names: usize = pairs.clone().step_by(2).map(lp::str_elem).sum();
            self.lp_fixed +=
                lp::int_elem(nfields as i64) + names + lp::int_elem(2 * nfields as i64 + 4);
        }
        let buf = &mut self.buf;
        buf.push(if deleted { DELETED } else { LIVE });
        // Wrapping: XSETID may set last_id below a tombstone, so a later id can sort before
        // the master (Redis stores the negative delta the same way).
        put_varint(buf, id.ms.wrapping_sub(master.ms));
        put_varint(buf, id.seq);
        put_varint(buf, nfields as u64);
        for p in pairs {
            put_varint(buf, p.len() as u64);
            buf.extend_from_slice(p);
        }
        if deleted {
            self.deleted += 1;
        } else {
            self.live += 1;
        }
        self.last = id;
    }
}

/// Sizes of listpack elements, as Redis encodes them (strings that parse as integers are
/// stored as integers).
mod lp {
    use crate::util::num::parse_i64_strict;

    /// Header (total bytes, element count) and end marker.
    pub const OVERHEAD: usize = 7;

    fn with_backlen(enc: usize) -> usize {
        enc + match enc {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        }
    }

    pub fn int_elem(v: i64) -> usize {
        with_backlen(match v {
            0..=127 => 1,
            -4096..=4095 => 2,
            -32768..=32767 => 3,
            -8388608..=8388607 => 4,
            -2147483648..=2147483647 => 5,
            _ => 9,
        })
    }

    pub fn str_elem(s: &[u8]) -> usize {
        if s.len() <= 20 {
            if let Some(v) = parse_i64_strict(s) {
                return int_elem(v);
            }
        }
        with_backlen(match s.len() {
            0..=63 => 1 + s.len(),
            64..=4095 => 2 + s.len(),
            n => 5 + n,
        })
    }
}

/// One decoded entry position in a node.
#[derive(Clone, Copy)]
struct Slot {
    /// Offset of the flag byte.
    at: usize,
    id: StreamId,
    live: bool,
    nfields: usize,
    /// Offset of the first field's length.
    fields: usize,
    end: usize,
}

fn decode_slot(buf: &[u8], at: usize, master: StreamId) -> Slot {
    let mut p = at;
    let flag = buf[p];
    p += 1;
    let dms = get_varint(buf, &mut p);
    let seq = get_varint(buf, &mut p);
    let nfields = get_varint(buf, &mut p) as usize;
    let fields = p;
    for _ in 0..nfields * 2 {
        let len = get_varint(buf, &mut p) as usize;
        p += len;
    }
    Slot {
        at,
        id: StreamId::new(master.ms.wrapping_add(dms), seq),
        live: flag == LIVE,
        nfields,
        fields,
        end: p,
    }
}

fn node_slots(node: &Node, master: StreamId) -> impl Iterator<Item = Slot> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= node.buf.len() {
            return None;
        }
        let s = decode_slot(&node.buf, at, master);
        at = s.end;
        Some(s)
    })
}

/// An entry's field-value pairs, as a flat sequence of byte strings.
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Number of byte strings (2 × pairs).
    pub count: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let len = get_varint(self.buf, &mut self.pos) as usize;
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Some(s)
    }
}

/// A pending entry: owner, last delivery time (Unix ms) and delivery count.
#[derive(Clone, Debug, PartialEq)]
pub struct Nack {
    /// The owner's name, shared with the group's consumer map (one allocation per consumer,
    /// not per pending entry). None only for an entry XCLAIM FORCE made that nobody owns yet.
    pub consumer: Option<Arc<[u8]>>,
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    pub seen_time: i64,
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` value meaning "unknown".
pub const INVALID_ENTRIES_READ: i64 = -1;

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Arc<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// The consumer named `name`, created if absent, marked seen now (7.0's lookup refresh).
    pub fn consumer(&mut self, name: &[u8], now: i64) -> &mut Consumer {
        if !self.consumers.contains_key(name) {
            self.consumers.insert(
                name.into(),
                Consumer {
                    seen_time: now,
                    pel: BTreeSet::new(),
                },
            );
        }
        let c = self.consumers.get_mut(name).expect("just inserted");
        c.seen_time = now;
        c
    }

    /// Creates a consumer; false if it exists.
    pub fn create_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.into(),
            Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// Deletes a consumer and its pending entries; returns how many it had, None if absent.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Removes `id` from the group PEL and its owner's; whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(nack) => {
                if let Some(owner) = nack.consumer.as_deref() {
                    if let Some(c) = self.consumers.get_mut(owner) {
                        c.pel.remove(&id);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Makes `consumer` (an existing consumer) the owner of pending `id`.
    pub fn reassign(&mut self, id: StreamId, consumer: &[u8]) {
        let Some((name, _)) = self.consumers.get_key_value(consumer) else {
            return;
        };
        let name = name.clone();
        let Some(nack) = self.pel.get_mut(&id) else {
            return;
        };
        if nack.consumer.as_deref() == Some(consumer) {
            return;
        }
        if let Some(old) = nack.consumer.replace(name) {
            if let Some(c) = self.consumers.get_mut(&old) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Delivers `id` to `consumer` (an existing consumer): a new pending entry, or one taken
    /// over from whoever had it, with one delivery at `now` (XREADGROUP `>`).
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: i64) {
        let nack = self.pel.entry(id).or_insert(Nack {
            consumer: None,
            delivery_time: now,
            delivery_count: 1,
        });
        nack.delivery_time = now;
        nack.delivery_count = 1;
        self.reassign(id, consumer);
    }
}

/// How XADD/XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Node>,
    len: u64,
    pub last_id: StreamId,
    /// The first live entry's id (0-0 when empty), as XINFO reports it.
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of packed nodes (XINFO's radix-tree-keys).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The id XADD `*` (or `ms-*` when `ms` is given) would use, None if it cannot be larger
    /// than the last id.
    pub fn next_id(&self, now_ms: u64, ms: Option<u64>) -> Option<StreamId> {
        let last = self.last_id;
        let id = match ms {
            Some(ms) if ms == last.ms => StreamId::new(ms, last.seq.checked_add(1)?),
            Some(ms) => StreamId::new(ms, 0),
            None if now_ms > last.ms => StreamId::new(now_ms, 0),
            None => last.incr()?,
        };
        (id > last).then_some(id)
    }

    /// Appends an entry with `id` (greater than `last_id`, checked by the caller); `pairs`
    /// holds field, value, field, value...
    pub fn append<'a>(
        &mut self,
        id: StreamId,
        pairs: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
        lim: StreamLimits,
    ) {
        debug_assert!(id > self.last_id);
        let total: usize = pairs.clone().map(<[u8]>::len).sum();
        let max_bytes = if lim.max_bytes == 0 || lim.max_bytes > NODE_MAX_SIZE {
            NODE_MAX_SIZE
        } else {
            lim.max_bytes
        };
        let need_new = match self.nodes.last_key_value() {
            None => true,
            Some((_, n)) => {
                n.lp_bytes() + total >= max_bytes
                    || (lim.max_entries > 0 && (n.live + n.deleted) as usize >= lim.max_entries)
            }
        };
        if need_new {
            self.nodes
                .insert(id, Node::with_master(pairs.clone().step_by(2)));
        }
        let mut tail = self.nodes.last_entry().expect("a tail node exists");
        let master = *tail.key();
        tail.get_mut().push(master, id, false, pairs);
        self.len += 1;
        if self.len == 1 {
            self.first_id = id;
        }
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Calls `f(id, fields)` for live entries with ids in `start..=end`, ascending (or
    /// descending when `rev`), until `f` returns false.
    ///
    /// Walks like 7.0's stream iterator: from the last node whose master id is at most the
    /// near bound (else from the far end), skipping tombstones and live entries short of the
    /// range, and stopping at the first live entry beyond it. Ids normally rise through the
    /// nodes; after XSETID below a trimmed node's tombstones they can fall inside a node, and
    /// this walk still finds what Redis finds there.
    pub fn range<'s>(
        &'s self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, Fields<'s>) -> bool,
    ) {
        if start > end {
            return;
        }
        let fields = |node: &'s Node, s: &Slot| Fields {
            buf: &node.buf,
            pos: s.fields,
            count: s.nfields * 2,
        };
        if !rev {
            for (_, node, s) in self.slots_from(start) {
                if !s.live || s.id < start {
                    continue;
                }
                if s.id > end || !f(s.id, fields(node, &s)) {
                    return;
                }
            }
        } else {
            let to = self
                .nodes
                .range(..=end)
                .next_back()
                .map_or(StreamId::MAX, |(k, _)| *k);
            for (&master, node) in self.nodes.range(..=to).rev() {
                let slots: Vec<Slot> = node_slots(node, master).collect();
                for s in slots.iter().rev() {
                    if !s.live || s.id > end {
                        continue;
                    }
                    if s.id < start || !f(s.id, fields(node, s)) {
                        return;
                    }
                }
            }
        }
    }

    /// Every entry (tombstones too) with its node's master id and node, from the last node
    /// whose master id is at most `start` (else the first node) to the end: where 7.0's
    /// iterator starts a forward walk.
    fn slots_from(&self, start: StreamId) -> impl Iterator<Item = (StreamId, &Node, Slot)> + '_ {
        let from = self
            .nodes
            .range(..=start)
            .next_back()
            .map_or(StreamId::MIN, |(k, _)| *k);
        self.nodes
            .range(from..)
            .flat_map(|(&master, node)| node_slots(node, master).map(move |s| (master, node, s)))
    }

    /// The live entries in `start..=end` (at most `count` when non-zero), owned.
    pub fn collect(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        count: usize,
    ) -> Vec<(StreamId, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        self.range(start, end, rev, |id, fields| {
            out.push((id, fields.map(<[u8]>::to_vec).collect()));
            count == 0 || out.len() < count
        });
        out
    }

    /// The fields of live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<Fields<'_>> {
        let mut found = None;
        self.range(id, id, false, |_, f| {
            found = Some(f);
            false
        });
        found
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The first (or last) live id.
    pub fn edge_id(&self, last: bool) -> Option<StreamId> {
        let mut found = None;
        self.range(StreamId::MIN, StreamId::MAX, last, |id, _| {
            found = Some(id);
            false
        });
        found
    }

    /// Flags entry `id` deleted (XDEL); frees its node once nothing live is left.
    /// Does not touch `first_id` / `max_deleted`: XDEL updates them after all its ids.
    pub fn delete(&mut self, id: StreamId) -> bool {
        // Found the way `range` finds it: the first live entry at or after `id`.
        let found = self
            .slots_from(id)
            .find(|(_, _, s)| s.live && s.id >= id)
            .filter(|(_, _, s)| s.id == id)
            .map(|(master, _, s)| (master, s.at));
        let Some((master, at)) = found else {
            return false;
        };
        let Some(node) = self.nodes.get_mut(&master) else {
            return false;
        };
        node.buf[at] = DELETED;
        node.live -= 1;
        node.deleted += 1;
        if node.live == 0 {
            self.nodes.remove(&master);
        }
        self.len -= 1;
        true
    }

    /// XDEL's bookkeeping after deleting `ids` (the ones actually deleted).
    pub fn after_delete(&mut self, deleted: &[StreamId]) {
        if deleted.is_empty() {
            return;
        }
        let mut first_gone = false;
        for &id in deleted {
            if id == self.first_id {
                first_gone = true;
            }
            if id > self.max_deleted {
                self.max_deleted = id;
            }
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if first_gone {
            self.first_id = self.edge_id(false).unwrap_or(StreamId::MAX);
        }
    }

    /// Trims as 7.0's `streamTrim`: whole nodes while that keeps the bound, then (exact only)
    /// entries of the first remaining node. `limit` (approximate only, 0 = none) caps the
    /// entries removed. Returns how many were removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        loop {
            if let Trim::MaxLen(max) = how {
                if self.len <= max {
                    break;
                }
            }
            let Some((&master, node)) = self.nodes.first_key_value() else {
                break;
            };
            let entries = node.live as u64;
            if limit > 0 && removed + entries > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(max) => self.len - entries >= max,
                Trim::MinId(min) => node.last < min,
            };
            if whole {
                self.nodes.remove(&master);
                self.len -= entries;
                removed += entries;
                continue;
            }
            if approx {
                break;
            }
            let node = self.nodes.get_mut(&master).expect("first node");
            let slots: Vec<Slot> = node_slots(node, master).collect();
            for s in slots {
                if !s.live {
                    continue;
                }
                let stop = match how {
                    Trim::MaxLen(max) => self.len <= max,
                    Trim::MinId(min) => s.id >= min,
                };
                if stop {
                    break;
                }
                node.buf[s.at] = DELETED;
                node.live -= 1;
                node.deleted += 1;
                self.len -= 1;
                removed += 1;
            }
            break;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if removed > 0 {
            self.first_id = self.edge_id(false).unwrap_or(StreamId::MAX);
        }
        removed
    }

    /// Whether ids in `start..` may hide a deleted entry (7.0's `streamRangeHasTombstones`).
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() || self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// The logical position of `id` counted from the first entry ever added, or
    /// INVALID_ENTRIES_READ if it cannot be known (`streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            if id < self.first_id {
                return added.wrapping_sub(self.len as i64);
            }
            if id == self.first_id {
                return added.wrapping_sub(self.len as i64).wrapping_add(1);
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag, None when it cannot be computed (`streamReplyWithCGLag`).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.has_tombstones_from(g.last_id) {
            return Some((self.entries_added as i64).wrapping_sub(g.entries_read));
        }
        let read = self.estimate_distance(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| (self.entries_added as i64).wrapping_sub(read))
    }

    /// Advances a group past delivered `id` (XREADGROUP `>`), keeping entries_read as 7.0 does.
    pub fn advance_group(&self, g: &mut Group, id: StreamId) {
        if id <= g.last_id {
            return;
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.has_tombstones_from(id) {
            // Wrapping like Redis's: a restored payload may carry any value.
            g.entries_read = g.entries_read.wrapping_add(1);
        } else if self.entries_added > 0 {
            g.entries_read = self.estimate_distance(id);
        }
        g.last_id = id;
    }

    /// Approximate bytes used, for MEMORY USAGE-like accounting.
    pub fn bytes(&self) -> usize {
        self.nodes
            .values()
            .map(|n| n.buf.capacity() + 48)
            .sum::<usize>()
            + 96
    }
}

/// A node as a serializer sees it: its master id, counters and every entry, deleted or not.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    pub master: StreamId,
    node: &'a Node,
}

/// One entry of a node, deleted or not, with its field-value pairs.
pub struct NodeEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    pub fields: Fields<'a>,
}

impl<'a> NodeRef<'a> {
    /// Live entries (the master entry's `count`).
    pub fn live(&self) -> u32 {
        self.node.live
    }

    /// Entries flagged deleted.
    pub fn deleted(&self) -> u32 {
        self.node.deleted
    }

    /// Entries in id order, deleted ones included.
    pub fn entries(&self) -> impl Iterator<Item = NodeEntry<'a>> + 'a {
        let node = self.node;
        node_slots(node, self.master).map(move |s| NodeEntry {
            id: s.id,
            deleted: !s.live,
            fields: Fields {
                buf: &node.buf,
                pos: s.fields,
                count: s.nfields * 2,
            },
        })
    }
}

/// Why loaded parts cannot form a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// An entry id not above its predecessor, or a node's first entry not at its master id.
    Order,
    /// Two nodes with one master id, or overlapping nodes.
    Overlap,
    /// A node without entries.
    EmptyNode,
    /// The stream length differs from the nodes' live counts.
    Length,
}

/// Rebuilds one node from serialized entries (RDB loading), checking what the packed layout
/// relies on: the first entry sits at the master id and ids strictly increase.
pub struct NodeBuilder {
    master: StreamId,
    node: Node,
}

impl NodeBuilder {
    pub fn new(master: StreamId) -> NodeBuilder {
        NodeBuilder {
            master,
            node: Node::default(),
        }
    }

    pub fn master(&self) -> StreamId {
        self.master
    }

    /// Appends an entry (`pairs`: field, value, ...), or refuses an id out of order.
    pub fn push<'a>(
        &mut self,
        id: StreamId,
        deleted: bool,
        pairs: impl ExactSizeIterator<Item = &'a [u8]> + Clone,
    ) -> Result<(), LoadError> {
        if self.node.buf.is_empty() {
            if id != self.master {
                return Err(LoadError::Order);
            }
            self.node = Node::with_master(pairs.clone().step_by(2));
        } else if id <= self.node.last {
            return Err(LoadError::Order);
        }
        self.node.push(self.master, id, deleted, pairs);
        Ok(())
    }
}

impl Stream {
    /// The nodes in id order, for serialization.
    pub fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> + '_ {
        self.nodes
            .iter()
            .map(|(&master, node)| NodeRef { master, node })
    }

    /// The largest id stored, deleted entries included (None without nodes).
    pub fn last_stored_id(&self) -> Option<StreamId> {
        self.nodes.last_key_value().map(|(_, n)| n.last)
    }

    /// A stream of loaded nodes (any order) holding `len` live entries; ids, groups and
    /// counters are left for the caller to set.
    pub fn from_nodes(nodes: Vec<NodeBuilder>, len: u64) -> Result<Stream, LoadError> {
        let mut map = BTreeMap::new();
        let mut live = 0u64;
        for b in nodes {
            if b.node.buf.is_empty() {
                return Err(LoadError::EmptyNode);
            }
            live += b.node.live as u64;
            if map.insert(b.master, b.node).is_some() {
                return Err(LoadError::Overlap);
            }
        }
        if live != len {
            return Err(LoadError::Length);
        }
        let mut prev_last: Option<StreamId> = None;
        for (&master, node) in &map {
            if prev_last.is_some_and(|p| p >= master) {
                return Err(LoadError::Overlap);
            }
            prev_last = Some(node.last);
        }
        Ok(Stream {
            nodes: map,
            len,
            ..Stream::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Rng;

    fn rb(rng: &mut Rng, n: u64) -> u64 {
        rng.below(n as usize) as u64
    }

    fn model_range(
        m: &BTreeMap<StreamId, Vec<Vec<u8>>>,
        s: StreamId,
        e: StreamId,
        rev: bool,
    ) -> Vec<(StreamId, Vec<Vec<u8>>)> {
        if s > e {
            return Vec::new();
        }
        let mut v: Vec<_> = m.range(s..=e).map(|(k, f)| (*k, f.clone())).collect();
        if rev {
            v.reverse();
        }
        v
    }

    #[test]
    fn ids_step_and_format() {
        assert_eq!(StreamId::new(1, u64::MAX).incr(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(StreamId::MIN.decr(), None);
        assert_eq!(StreamId::new(2, 0).decr(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::new(5, 7).to_bytes(), b"5-7");
    }

    #[test]
    fn model_random_ops() {
        for seed in 1..=20u64 {
            let mut rng = Rng::new(seed);
            let lim = StreamLimits {
                max_bytes: 200 + rb(&mut rng, 400) as usize,
                max_entries: 1 + rb(&mut rng, 12) as usize,
            };
            let mut s = Stream::new();
            let mut m: BTreeMap<StreamId, Vec<Vec<u8>>> = BTreeMap::new();
            let mut last = StreamId::MIN;
            for step in 0..1500 {
                match rb(&mut rng, 10) {
                    0..=4 => {
                        let id = if rb(&mut rng, 2) == 0 {
                            s.next_id(last.ms + rb(&mut rng, 3), None).expect("room")
                        } else {
                            s.next_id(0, Some(last.ms + rb(&mut rng, 2))).expect("room")
                        };
                        let n = 1 + rb(&mut rng, 3) as usize;
                        let fields: Vec<Vec<u8>> = (0..2 * n)
                            .map(|i| format!("f{}-{}", i, rb(&mut rng, 1000)).into_bytes())
                            .collect();
                        s.append(id, fields.iter().map(Vec::as_slice), lim);
                        m.insert(id, fields);
                        last = id;
                    }
                    5 | 6 => {
                        let keys: Vec<StreamId> = m.keys().copied().collect();
                        let id = if keys.is_empty() || rb(&mut rng, 4) == 0 {
                            StreamId::new(rb(&mut rng, last.ms + 2), rb(&mut rng, 3))
                        } else {
                            keys[rb(&mut rng, keys.len() as u64) as usize]
                        };
                        let was = m.remove(&id).is_some();
                        assert_eq!(s.delete(id), was, "seed {seed} step {step}");
                        if was {
                            s.after_delete(&[id]);
                        }
                    }
                    7 => {
                        let max = rb(&mut rng, m.len() as u64 + 3);
                        let approx = rb(&mut rng, 2) == 0;
                        let before = m.len() as u64;
                        let n = s.trim(Trim::MaxLen(max), approx, 0);
                        if approx {
                            // Whole nodes only: removes the oldest n, never below max.
                            assert!(before - n >= max.min(before));
                        } else {
                            assert_eq!(before - n, max.min(before));
                        }
                        for _ in 0..n {
                            let k = *m.keys().next().expect("entry");
                            m.remove(&k);
                        }
                    }
                    8 => {
                        let min = StreamId::new(rb(&mut rng, last.ms + 2), rb(&mut rng, 3));
                        let approx = rb(&mut rng, 2) == 0;
                        let n = s.trim(Trim::MinId(min), approx, 0);
                        let below: Vec<StreamId> = m.range(..min).map(|(k, _)| *k).collect();
                        if !approx {
                            assert_eq!(n as usize, below.len());
                        }
                        for k in m.keys().copied().take(n as usize).collect::<Vec<_>>() {
                            assert!(k < min);
                            m.remove(&k);
                        }
                    }
                    _ => {
                        let a = StreamId::new(rb(&mut rng, last.ms + 2), rb(&mut rng, 3));
                        let b = StreamId::new(rb(&mut rng, last.ms + 2), rb(&mut rng, 4));
                        let rev = rb(&mut rng, 2) == 0;
                        assert_eq!(
                            s.collect(a, b, rev, 0),
                            model_range(&m, a, b, rev),
                            "seed {seed} step {step}"
                        );
                        let c = 1 + rb(&mut rng, 5) as usize;
                        let mut want = model_range(&m, a, b, rev);
                        want.truncate(c);
                        assert_eq!(s.collect(a, b, rev, c), want);
                    }
                }
                assert_eq!(s.len(), m.len() as u64);
                assert_eq!(
                    s.first_id,
                    m.keys().next().copied().unwrap_or(StreamId::MIN)
                );
                assert_eq!(s.edge_id(true), m.keys().next_back().copied());
                for n in s.nodes.values() {
                    assert!(n.live + n.deleted <= lim.max_entries as u32);
                }
            }
            assert_eq!(
                s.collect(StreamId::MIN, StreamId::MAX, false, 0),
                model_range(&m, StreamId::MIN, StreamId::MAX, false)
            );
        }
    }

    /// Group and consumer PELs stay two views of one set under random deliveries, claims,
    /// acks and consumer deletions.
    #[test]
    fn group_pels_stay_consistent() {
        let mut rng = Rng::new(9);
        let mut g = Group::new(StreamId::MIN, 0);
        let names: [&[u8]; 3] = [b"a", b"b", b"c"];
        for step in 0..5000 {
            let id = StreamId::new(rb(&mut rng, 50), 0);
            let name = names[rb(&mut rng, 3) as usize];
            match rb(&mut rng, 5) {
                0 | 1 => {
                    g.consumer(name, step);
                    g.deliver(id, name, step);
                    assert_eq!(g.pel[&id].consumer.as_deref(), Some(name));
                    assert_eq!(g.pel[&id].delivery_count, 1);
                }
                2 => {
                    if g.pel.contains_key(&id) {
                        g.consumer(name, step);
                        g.reassign(id, name);
                    }
                }
                3 => {
                    let was = g.pel.contains_key(&id);
                    assert_eq!(g.ack(id), was);
                }
                _ => {
                    let had = g.consumers.get(name).map(|c| c.pel.len());
                    assert_eq!(g.delete_consumer(name), had);
                }
            }
            let mut owned = 0;
            for (cname, c) in &g.consumers {
                for id in &c.pel {
                    assert_eq!(g.pel[id].consumer.as_deref(), Some(&cname[..]));
                }
                owned += c.pel.len();
            }
            assert_eq!(owned, g.pel.len());
        }
    }

    /// XSETID below the tombstones of a node that exact MINID trimming emptied, then XADD:
    /// the new ids land in that node below its earlier ids (Redis does the same). Ranges,
    /// lookups and deletes still find them, as 7.0's iterator does.
    #[test]
    fn ids_falling_inside_a_node_are_still_found() {
        let lim = StreamLimits::default();
        let f = [&b"f"[..], &b"v"[..]];
        let id = StreamId::new;
        let mut s = Stream::new();
        for ms in 1..=3 {
            s.append(id(ms, 0), f.iter().copied(), lim);
        }
        assert!(s.delete(id(3, 0)));
        assert_eq!(s.trim(Trim::MinId(id(3, 0)), false, 0), 2);
        assert_eq!(s.node_count(), 1, "the emptied node stays, as in 7.0");
        s.last_id = id(2, 5);
        s.append(id(2, 6), f.iter().copied(), lim);
        s.append(id(2, 7), f.iter().copied(), lim);
        let ids = |v: Vec<(StreamId, Vec<Vec<u8>>)>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(ids(s.collect(id(2, 6), id(2, 6), false, 0)), [id(2, 6)]);
        assert_eq!(
            ids(s.collect(id(2, 0), id(2, 7), false, 0)),
            [id(2, 6), id(2, 7)]
        );
        assert_eq!(ids(s.collect(id(2, 0), id(2, 6), true, 0)), [id(2, 6)]);
        assert_eq!(
            ids(s.collect(StreamId::MIN, StreamId::MAX, true, 0)),
            [id(2, 7), id(2, 6)]
        );
        assert!(s.contains(id(2, 7)));
        assert!(s.delete(id(2, 6)));
        assert!(!s.delete(id(2, 6)));
        assert_eq!(
            ids(s.collect(StreamId::MIN, StreamId::MAX, false, 0)),
            [id(2, 7)]
        );
    }

    #[test]
    fn approx_trim_keeps_whole_nodes() {
        let mut s = Stream::new();
        let lim = StreamLimits {
            max_bytes: 4096,
            max_entries: 10,
        };
        for i in 1..=35u64 {
            s.append(
                StreamId::new(i, 0),
                [b"f".as_slice(), b"v"].into_iter(),
                lim,
            );
        }
        assert_eq!(s.node_count(), 4);
        assert_eq!(s.trim(Trim::MaxLen(12), true, 0), 20);
        assert_eq!(s.len(), 15);
        assert_eq!(s.first_id, StreamId::new(21, 0));
        assert_eq!(s.trim(Trim::MaxLen(12), false, 0), 3);
        assert_eq!(s.first_id, StreamId::new(24, 0));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(31, 0)), false, 0), 7);
        assert_eq!(s.edge_id(false), Some(StreamId::new(31, 0)));
    }
}
