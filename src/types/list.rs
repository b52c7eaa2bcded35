//! The list type: a deque of packed nodes, each a run of entries in one buffer (Redis's
//! quicklist of listpacks), with node sizes bounded by `list-max-listpack-size`.
//!
//! An entry is `[len: LEB128][bytes][backlen]`, where `backlen` is the size of the first two
//! parts written as LEB128 with its bytes reversed, so an entry can be stepped over from
//! either end: pops, LINDEX and LRANGE from the tail walk backwards without an offset table.
//! Every node holds at least one entry; an element larger than a node's budget gets a node
//! of its own. Nodes split when an insert or replace pushes them past the budget, and
//! neighbours merge after deletions in the middle when they fit together again. An element
//! at least `packed threshold` long (1 GiB unless DEBUG QUICKLIST-PACKED-THRESHOLD changes it)
//! gets a node nothing else joins: Redis's plain quicklist node.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Redis's default `packed_threshold` (quicklist.c).
const DEFAULT_PACKED_THRESHOLD: usize = 1 << 30;
/// Elements this long or longer live alone in a plain node (process-wide, as in Redis).
static PACKED_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_PACKED_THRESHOLD);

/// DEBUG QUICKLIST-PACKED-THRESHOLD: 0 restores the default; false (unchanged) above what
/// Redis allows (4 GB less 1 MB).
pub fn set_packed_threshold(size: u64) -> bool {
    if size > (1u64 << 32) - (1 << 20) {
        return false;
    }
    let size = if size == 0 {
        DEFAULT_PACKED_THRESHOLD
    } else {
        size as usize
    };
    PACKED_THRESHOLD.store(size, Ordering::Relaxed);
    true
}

/// Whether an element of `len` bytes gets a plain node of its own (Redis's `isLargeElement`).
#[inline]
pub fn is_large(len: usize) -> bool {
    len >= PACKED_THRESHOLD.load(Ordering::Relaxed)
}

/// Node byte budgets for `list-max-listpack-size` -1 .. -5 (Redis's `optimization_level`).
const SIZE_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Largest node a count-based fill may build (Redis's `SIZE_SAFETY_LIMIT`).
const SAFETY_LIMIT: usize = 8192;

/// `list-max-listpack-size` as Redis applies it: clamped to -5 ..= 32767. Negative: a byte
/// budget per node (-2 = 8 KB); positive: entries per node (within 8 KB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill(i32);

impl Fill {
    pub fn new(v: i64) -> Fill {
        Fill(v.clamp(-5, 32767) as i32)
    }

    /// The effective setting (what DEBUG OBJECT shows as `ql_listpack_max`).
    pub fn value(self) -> i32 {
        self.0
    }

    /// Whether a node may hold `count` entries in `bytes` bytes.
    #[inline]
    fn allows(self, bytes: usize, count: usize) -> bool {
        if self.0 < 0 {
            bytes <= SIZE_LEVELS[(-self.0 - 1) as usize]
        } else {
            bytes <= SAFETY_LIMIT && count <= self.0 as usize
        }
    }
}

impl Default for Fill {
    fn default() -> Fill {
        Fill(-2)
    }
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

#[inline]
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Writes `n` as LEB128 into `out`, returning the bytes used.
#[inline]
fn write_varint(out: &mut [u8], mut n: usize) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        out[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    out[i] = n as u8;
    i + 1
}

#[inline]
fn get_varint(buf: &[u8], off: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    let mut i = off;
    loop {
        let b = buf[i];
        v |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            return (v, i - off);
        }
        shift += 7;
    }
}

/// Decodes the backlen that ends at `end`: (value, bytes used).
#[inline]
fn get_backlen(buf: &[u8], end: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    let mut i = end;
    loop {
        i -= 1;
        let b = buf[i];
        v |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (v, end - i);
        }
        shift += 7;
    }
}

/// Encoded size of an entry holding `len` bytes.
#[inline]
fn entry_size(len: usize) -> usize {
    let body = varint_len(len) + len;
    body + varint_len(body)
}

/// Writes the entry for `data` into `out` (exactly `entry_size(data.len())` bytes).
fn write_entry(out: &mut [u8], data: &[u8]) {
    let mut i = write_varint(out, data.len());
    out[i..i + data.len()].copy_from_slice(data);
    i += data.len();
    let mut tmp = [0u8; 10];
    let n = write_varint(&mut tmp, i);
    // Reversed, so that reading backwards meets the low-order byte first.
    for (k, b) in tmp[..n].iter().rev().enumerate() {
        out[i + k] = *b;
    }
}

/// One node: `count` (>= 1) entries packed in `buf`.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: usize,
}

impl Node {
    fn with(data: &[u8]) -> Node {
        let mut n = Node::default();
        n.insert_at(0, data);
        n
    }

    /// The entry starting at `off`: its bytes and the offset of the next entry.
    #[inline]
    fn entry(&self, off: usize) -> (&[u8], usize) {
        let (len, used) = get_varint(&self.buf, off);
        let start = off + used;
        let end = start + len;
        (&self.buf[start..end], end + varint_len(used + len))
    }

    /// The start of the entry that ends at `end`.
    #[inline]
    fn prev(&self, end: usize) -> usize {
        let (body, used) = get_backlen(&self.buf, end);
        end - used - body
    }

    /// A plain node: its one element is large. (Decided by the threshold now; Redis marks the
    /// node when the element goes in, so only a threshold changed since differs.)
    #[inline]
    fn is_plain(&self) -> bool {
        self.count == 1 && is_large(self.buf.len()) && is_large(self.entry(0).0.len())
    }

    /// Offset of entry `i` (< count), walking from the nearer end.
    fn offset_of(&self, i: usize) -> usize {
        if i < self.count / 2 {
            let mut off = 0;
            for _ in 0..i {
                off = self.entry(off).1;
            }
            off
        } else {
            let mut off = self.buf.len();
            for _ in i..self.count {
                off = self.prev(off);
            }
            off
        }
    }

    /// Offset just past `n` entries starting at `off`.
    fn skip(&self, mut off: usize, n: usize) -> usize {
        for _ in 0..n {
            off = self.entry(off).1;
        }
        off
    }

    /// Inserts `data` as an entry at byte offset `off` (an entry boundary).
    fn insert_at(&mut self, off: usize, data: &[u8]) {
        let size = entry_size(data.len());
        let old = self.buf.len();
        self.buf.reserve(size);
        self.buf.resize(old + size, 0);
        self.buf.copy_within(off..old, off + size);
        write_entry(&mut self.buf[off..off + size], data);
        self.count += 1;
    }

    /// Removes the bytes `from..to` holding `n` entries.
    fn remove_span(&mut self, from: usize, to: usize, n: usize) {
        self.buf.drain(from..to);
        self.count -= n;
        self.shrink();
    }

    /// Gives memory back once a node uses under a quarter of its buffer.
    fn shrink(&mut self) {
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap > 256 && len < cap / 4 {
            self.buf.shrink_to(len * 2);
        }
    }

    /// Splits off the entries from `off` (an entry boundary holding `idx` entries before it).
    fn split_off(&mut self, off: usize, idx: usize) -> Node {
        let tail = Node {
            buf: self.buf[off..].to_vec(),
            count: self.count - idx,
        };
        self.buf.truncate(off);
        self.count = idx;
        self.shrink();
        tail
    }
}

/// A list value. 16 bytes (the nodes are boxed), so `Value` stays small.
#[derive(Clone, Default)]
pub struct List {
    // Boxed on purpose: a bare VecDeque (32 bytes) would grow every `Value`.
    #[allow(clippy::box_collection)]
    nodes: Box<VecDeque<Node>>,
    len: usize,
}

impl PartialEq for List {
    /// Same elements in the same order, however they are split into nodes.
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What OBJECT ENCODING reports: Redis 7.0 says `quicklist` for every list.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Number of nodes (for tests and benches).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Total bytes of packed entries (for tests and benches).
    pub fn packed_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.buf.len()).sum()
    }

    /// Whether every node is within `fill` or holds a single entry (for tests).
    pub fn nodes_within(&self, fill: Fill) -> bool {
        self.nodes
            .iter()
            .all(|n| n.count >= 1 && (n.count == 1 || fill.allows(n.buf.len(), n.count)))
    }

    /// Adds `data` at one end.
    pub fn push(&mut self, end: End, data: &[u8], fill: Fill) {
        let size = entry_size(data.len());
        let node = match end {
            End::Head => self.nodes.front_mut(),
            End::Tail => self.nodes.back_mut(),
        };
        match node {
            Some(n)
                if fill.allows(n.buf.len() + size, n.count + 1)
                    && !is_large(data.len())
                    && !n.is_plain() =>
            {
                let off = if end == End::Head { 0 } else { n.buf.len() };
                n.insert_at(off, data);
            }
            _ => {
                let n = Node::with(data);
                if self.nodes.is_empty() {
                    // Most lists are one node: room for exactly one, not the four that the
                    // deque's growth would make (96 bytes a small list does not need).
                    self.nodes.reserve_exact(1);
                }
                match end {
                    End::Head => self.nodes.push_front(n),
                    End::Tail => self.nodes.push_back(n),
                }
            }
        }
        self.len += 1;
    }

    /// Removes the element at one end and hands it to `f` (None if the list is empty).
    pub fn pop_with<R>(&mut self, end: End, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let node = match end {
            End::Head => self.nodes.front_mut()?,
            End::Tail => self.nodes.back_mut()?,
        };
        let (from, to) = match end {
            End::Head => (0, node.entry(0).1),
            End::Tail => (node.prev(node.buf.len()), node.buf.len()),
        };
        let r = f(node.entry(from).0);
        if node.count == 1 {
            match end {
                End::Head => self.nodes.pop_front(),
                End::Tail => self.nodes.pop_back(),
            };
        } else {
            node.remove_span(from, to, 1);
        }
        self.len -= 1;
        Some(r)
    }

    /// Removes and returns the element at one end.
    pub fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        self.pop_with(end, <[u8]>::to_vec)
    }

    /// (node, offset) of element `index` (< len), walking from the nearer end.
    fn locate(&self, index: usize) -> (usize, usize) {
        if index < self.len / 2 {
            let mut i = index;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count {
                    return (ni, n.offset_of(i));
                }
                i -= n.count;
            }
        } else {
            let mut back = self.len - 1 - index;
            for ni in (0..self.nodes.len()).rev() {
                let n = &self.nodes[ni];
                if back < n.count {
                    return (ni, n.offset_of(n.count - 1 - back));
                }
                back -= n.count;
            }
        }
        unreachable!("index {index} below len {} is in some node", self.len)
    }

    /// The element at `index` (0 = head), if in range.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        if index >= self.len {
            return None;
        }
        let (ni, off) = self.locate(index);
        Some(self.nodes[ni].entry(off).0)
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: usize, data: &[u8], fill: Fill) -> bool {
        if index >= self.len {
            return false;
        }
        let (ni, off) = self.locate(index);
        let node = &mut self.nodes[ni];
        if is_large(data.len()) || node.is_plain() {
            self.replace_plain(ni, off, data, fill);
            return true;
        }
        let end = node.entry(off).1;
        if end - off == entry_size(data.len()) {
            // Same encoded size: overwrite in place, nothing moves.
            write_entry(&mut node.buf[off..end], data);
            return true;
        }
        node.remove_span(off, end, 1);
        node.insert_at(off, data);
        self.split_oversized(ni, fill);
        true
    }

    /// Inserts `data` so that it becomes element `index` (0 ..= len).
    pub fn insert(&mut self, index: usize, data: &[u8], fill: Fill) {
        if index == 0 {
            return self.push(End::Head, data, fill);
        }
        if index >= self.len {
            return self.push(End::Tail, data, fill);
        }
        // After the element before it, so that an insert at a node boundary grows the
        // earlier node's tail rather than the later one's head (either is correct).
        let (ni, off) = self.locate(index - 1);
        let node = &mut self.nodes[ni];
        let at = node.entry(off).1;
        if is_large(data.len()) || node.is_plain() {
            return self.insert_own_node(ni, at, data, fill);
        }
        node.insert_at(at, data);
        self.len += 1;
        self.split_oversized(ni, fill);
    }

    /// Replaces the element at byte offset `off` of node `ni` where a plain node is involved,
    /// as Redis's `quicklistReplaceEntry` does: a large element replaces a plain node's in
    /// place; a small one goes after the plain node, which is then dropped; a large one in a
    /// packed node takes its element's place in a plain node of its own, the node split.
    #[cold]
    fn replace_plain(&mut self, ni: usize, off: usize, data: &[u8], fill: Fill) {
        let node = &mut self.nodes[ni];
        if node.is_plain() {
            if is_large(data.len()) {
                *node = Node::with(data);
            } else {
                let end = node.buf.len();
                self.insert_own_node(ni, end, data, fill);
                self.nodes.remove(ni);
                self.len -= 1;
            }
            return;
        }
        let end = node.entry(off).1;
        node.remove_span(off, end, 1);
        self.len -= 1;
        self.insert_own_node(ni, off, data, fill);
    }

    /// Inserts `data` at byte offset `at` of node `ni` where it cannot join that node (it is
    /// large, or the node is plain): a large element gets a node of its own, the node split
    /// around it; a small one after a plain node joins the next node's head if it fits there
    /// (Redis's `_quicklistInsert` with a full node).
    #[cold]
    fn insert_own_node(&mut self, ni: usize, at: usize, data: &[u8], fill: Fill) {
        self.len += 1;
        let node = &mut self.nodes[ni];
        // Where the new node goes; the node after it is then at the same index.
        let pos = if node.count == 0 {
            self.nodes.remove(ni);
            ni
        } else if at == 0 {
            ni
        } else {
            if at < node.buf.len() {
                let (mut off, mut idx) = (0, 0);
                while off < at {
                    off = node.entry(off).1;
                    idx += 1;
                }
                let tail = node.split_off(at, idx);
                self.nodes.insert(ni + 1, tail);
            }
            ni + 1
        };
        if !is_large(data.len()) {
            if let Some(next) = self.nodes.get_mut(pos) {
                let size = entry_size(data.len());
                if !next.is_plain() && fill.allows(next.buf.len() + size, next.count + 1) {
                    next.insert_at(0, data);
                    return;
                }
            }
        }
        self.nodes.insert(pos, Node::with(data));
    }

    /// Splits node `ni` in halves (by bytes) until every part is within `fill` or holds a
    /// single entry.
    fn split_oversized(&mut self, ni: usize, fill: Fill) {
        let node = &self.nodes[ni];
        if node.count < 2 || fill.allows(node.buf.len(), node.count) {
            return;
        }
        // The first entry boundary at or past half the bytes, keeping an entry on each side.
        let half = node.buf.len() / 2;
        let (mut off, mut idx) = (node.entry(0).1, 1);
        while off < half && idx < node.count - 1 {
            off = node.entry(off).1;
            idx += 1;
        }
        let tail = self.nodes[ni].split_off(off, idx);
        self.nodes.insert(ni + 1, tail);
        self.split_oversized(ni + 1, fill);
        self.split_oversized(ni, fill);
    }

    /// Merges node `ni` with node `ni + 1` if both exist and fit in one node; whether it did.
    fn try_merge(&mut self, ni: usize, fill: Fill) -> bool {
        let (Some(a), Some(b)) = (self.nodes.get(ni), self.nodes.get(ni + 1)) else {
            return false;
        };
        if !fill.allows(a.buf.len() + b.buf.len(), a.count + b.count)
            || a.is_plain()
            || b.is_plain()
        {
            return false;
        }
        let Some(b) = self.nodes.remove(ni + 1) else {
            return false;
        };
        let a = &mut self.nodes[ni];
        a.buf.extend_from_slice(&b.buf);
        a.count += b.count;
        true
    }

    /// Merges what fits around the boundary before node `ni` (after a deletion there).
    fn merge_around(&mut self, ni: usize, fill: Fill) {
        let mut at = ni.saturating_sub(1);
        // The node before the cut may take the one after it, then its own predecessor may
        // take the result.
        self.try_merge(at, fill);
        if at > 0 {
            at -= 1;
            self.try_merge(at, fill);
        }
    }

    /// Removes `n` elements starting at `start` (both clamped to the list).
    pub fn remove_range(&mut self, start: usize, n: usize, fill: Fill) {
        if start >= self.len || n == 0 {
            return;
        }
        let n = n.min(self.len - start);
        let (mut ni, mut off) = self.locate(start);
        let mut left = n;
        while left > 0 {
            let node = &mut self.nodes[ni];
            if off == 0 && node.count <= left {
                left -= node.count;
                self.nodes.remove(ni);
                continue;
            }
            // Entries before `off` stay; count how many follow it.
            let before = if off == 0 {
                0
            } else {
                let mut k = 0;
                let mut o = 0;
                while o < off {
                    o = node.entry(o).1;
                    k += 1;
                }
                k
            };
            let k = left.min(node.count - before);
            let to = node.skip(off, k);
            node.remove_span(off, to, k);
            left -= k;
            ni += 1;
            off = 0;
        }
        self.len -= n;
        self.merge_around(ni, fill);
    }

    /// Removes elements equal to `value`: at most `limit` (0 = all), scanning from the head
    /// or, with `from_tail`, from the tail. Returns how many were removed.
    pub fn remove_matching(
        &mut self,
        value: &[u8],
        limit: u64,
        from_tail: bool,
        fill: Fill,
    ) -> usize {
        let mut removed: u64 = 0;
        let order: Vec<usize> = if from_tail {
            (0..self.nodes.len()).rev().collect()
        } else {
            (0..self.nodes.len()).collect()
        };
        for ni in order {
            if limit != 0 && removed >= limit {
                break;
            }
            let node = &mut self.nodes[ni];
            // Spans of the matching entries, in scan order.
            let mut spans: Vec<(usize, usize)> = Vec::new();
            if from_tail {
                let mut end = node.buf.len();
                while end > 0 && (limit == 0 || removed < limit) {
                    let start = node.prev(end);
                    if node.entry(start).0 == value {
                        spans.push((start, end));
                        removed += 1;
                    }
                    end = start;
                }
                spans.reverse();
            } else {
                let mut off = 0;
                while off < node.buf.len() && (limit == 0 || removed < limit) {
                    let (e, next) = node.entry(off);
                    if e == value {
                        spans.push((off, next));
                        removed += 1;
                    }
                    off = next;
                }
            }
            if spans.is_empty() {
                continue;
            }
            let mut kept = Vec::with_capacity(node.buf.len());
            let mut at = 0;
            for &(s, e) in &spans {
                kept.extend_from_slice(&node.buf[at..s]);
                at = e;
            }
            kept.extend_from_slice(&node.buf[at..]);
            node.buf = kept;
            node.count -= spans.len();
        }
        self.len -= removed as usize;
        self.compact(fill);
        removed as usize
    }

    /// Drops empty nodes and merges neighbours that fit together.
    fn compact(&mut self, fill: Fill) {
        self.nodes.retain(|n| n.count > 0);
        let mut ni = 0;
        while ni + 1 < self.nodes.len() {
            if !self.try_merge(ni, fill) {
                ni += 1;
            }
        }
    }

    /// Index of the first element equal to `value`, from the head.
    pub fn position(&self, value: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == value)
    }

    /// Elements from the head.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            nodes: &self.nodes,
            ni: 0,
            off: 0,
            left: self.len,
        }
    }

    /// Elements from `index` towards the tail.
    pub fn iter_from(&self, index: usize) -> Iter<'_> {
        if index >= self.len {
            return Iter {
                nodes: &self.nodes,
                ni: 0,
                off: 0,
                left: 0,
            };
        }
        let (ni, off) = self.locate(index);
        Iter {
            nodes: &self.nodes,
            ni,
            off,
            left: self.len - index,
        }
    }

    /// Elements from the tail.
    pub fn iter_rev(&self) -> RevIter<'_> {
        let ni = self.nodes.len();
        RevIter {
            nodes: &self.nodes,
            ni,
            end: 0,
            left: self.len,
        }
    }
}

/// Iterates a list from some element towards the tail.
pub struct Iter<'a> {
    nodes: &'a VecDeque<Node>,
    ni: usize,
    off: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let mut node = &self.nodes[self.ni];
        if self.off >= node.buf.len() {
            self.ni += 1;
            self.off = 0;
            node = &self.nodes[self.ni];
        }
        let (e, next) = node.entry(self.off);
        self.off = next;
        self.left -= 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// Iterates a list from the tail towards the head.
pub struct RevIter<'a> {
    nodes: &'a VecDeque<Node>,
    /// The node being read (`nodes.len()` before the first read).
    ni: usize,
    /// End of the next entry to read in that node (0: move to the previous node).
    end: usize,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        if self.end == 0 {
            self.ni -= 1;
            self.end = self.nodes[self.ni].buf.len();
        }
        let node = &self.nodes[self.ni];
        let start = node.prev(self.end);
        self.end = start;
        self.left -= 1;
        Some(node.entry(start).0)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Rng;

    fn contents(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn entries_step_both_ways() {
        for len in [0usize, 1, 127, 128, 200, 16_383, 16_384, 70_000] {
            let data = vec![b'x'; len];
            let size = entry_size(len);
            let mut buf = vec![0u8; size];
            write_entry(&mut buf, &data);
            let node = Node { buf, count: 1 };
            assert_eq!(node.entry(0), (&data[..], size));
            assert_eq!(node.prev(size), 0);
        }
    }

    #[test]
    fn push_pop_and_index() {
        let fill = Fill::default();
        let mut l = List::new();
        assert_eq!(l.pop(End::Head), None);
        for i in 0..5000 {
            l.push(End::Tail, format!("e{i}").as_bytes(), fill);
        }
        assert!(l.node_count() > 1, "8 KB nodes split a 5000-element list");
        assert!(l.nodes_within(fill));
        assert_eq!(l.get(0), Some(&b"e0"[..]));
        assert_eq!(l.get(4999), Some(&b"e4999"[..]));
        assert_eq!(l.get(2500), Some(&b"e2500"[..]));
        assert_eq!(l.get(5000), None);
        assert_eq!(l.iter_rev().next(), Some(&b"e4999"[..]));
        assert_eq!(
            l.iter_from(4998).collect::<Vec<_>>(),
            vec![&b"e4998"[..], b"e4999"]
        );
        assert_eq!(l.pop(End::Tail), Some(b"e4999".to_vec()));
        assert_eq!(l.pop(End::Head), Some(b"e0".to_vec()));
        assert_eq!(l.len(), 4998);
        assert_eq!(l.encoding(), "quicklist");
    }

    #[test]
    fn fill_bounds_node_sizes() {
        // Positive fill: entries per node.
        let mut l = List::new();
        for i in 0..10 {
            l.push(End::Tail, &[i], Fill::new(3));
        }
        assert_eq!(l.node_count(), 4);
        // Zero: every element alone, as in Redis.
        let mut l = List::new();
        for i in 0..4 {
            l.push(End::Head, &[i], Fill::new(0));
        }
        assert_eq!(l.node_count(), 4);
        // Out-of-range fills clamp to Redis's range.
        assert_eq!(Fill::new(-100), Fill::new(-5));
        assert_eq!(Fill::new(1 << 40), Fill::new(32767));
        // An element over the budget gets a node of its own.
        let mut l = List::new();
        l.push(End::Tail, b"a", Fill::new(-1));
        l.push(End::Tail, &[b'x'; 5000], Fill::new(-1));
        l.push(End::Tail, b"b", Fill::new(-1));
        assert_eq!(l.node_count(), 3);
        assert!(l.nodes_within(Fill::new(-1)));
    }

    #[test]
    fn insert_splits_and_deletes_merge() {
        let fill = Fill::new(4);
        let mut l = List::new();
        for i in 0..8u8 {
            l.push(End::Tail, &[i], fill);
        }
        assert_eq!(l.node_count(), 2);
        l.insert(2, b"x", fill);
        assert_eq!(l.node_count(), 3, "a full node splits");
        assert!(l.nodes_within(fill));
        assert_eq!(l.get(2), Some(&b"x"[..]));
        assert_eq!(l.remove_matching(b"x", 0, false, fill), 1);
        l.remove_range(1, 3, fill);
        assert!(l.nodes_within(fill));
        assert_eq!(l.node_count(), 2, "neighbours that fit merge");
        assert_eq!(
            contents(&l),
            vec![vec![0], vec![4], vec![5], vec![6], vec![7]]
        );
    }

    /// Random operations against a `VecDeque` model, at several fills and element sizes
    /// (some past the 4 KB budget), checking contents and node bounds after every step.
    #[test]
    fn model_random_ops() {
        for (seed, fill) in [
            (1u64, -1i64),
            (2, -2),
            (3, 1),
            (4, 3),
            (5, 0),
            (6, -5),
            (7, 128),
        ] {
            let fill = Fill::new(fill);
            let mut rng = Rng::new(seed);
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            let mut max_nodes = 0;
            for step in 0..6000 {
                let elem = |rng: &mut Rng| -> Vec<u8> {
                    match rng.below(20) {
                        0 => vec![b'L'; 3000 + rng.below(3000)],
                        1..=3 => vec![b'm'; rng.below(300)],
                        _ => format!("v{}", rng.below(12)).into_bytes(),
                    }
                };
                let idx = |rng: &mut Rng, n: usize| if n == 0 { 0 } else { rng.below(n) };
                // Pushes and inserts outnumber removals, so the list grows over many nodes.
                match rng.below(15) {
                    0..=2 => {
                        let e = elem(&mut rng);
                        l.push(End::Head, &e, fill);
                        m.push_front(e);
                    }
                    3..=5 => {
                        let e = elem(&mut rng);
                        l.push(End::Tail, &e, fill);
                        m.push_back(e);
                    }
                    6 => assert_eq!(l.pop(End::Head), m.pop_front()),
                    7 => assert_eq!(l.pop(End::Tail), m.pop_back()),
                    8 | 9 => {
                        let i = idx(&mut rng, m.len() + 1);
                        let e = elem(&mut rng);
                        l.insert(i, &e, fill);
                        m.insert(i, e);
                    }
                    10 => {
                        let i = idx(&mut rng, m.len() + 2);
                        let e = elem(&mut rng);
                        let ok = l.set(i, &e, fill);
                        assert_eq!(ok, i < m.len());
                        if ok {
                            m[i] = e;
                        }
                    }
                    11 => {
                        let (s, n) = (idx(&mut rng, m.len() + 1), rng.below(5));
                        l.remove_range(s, n, fill);
                        let end = (s + n).min(m.len());
                        if s < m.len() {
                            m.drain(s..end);
                        }
                    }
                    12 => {
                        let e = format!("v{}", rng.below(12)).into_bytes();
                        let limit = rng.below(4) as u64;
                        let tail = rng.below(2) == 0;
                        let n = l.remove_matching(&e, limit, tail, fill);
                        let mut want = 0;
                        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                        let items: Vec<Vec<u8>> = if tail {
                            m.iter().rev().cloned().collect()
                        } else {
                            m.iter().cloned().collect()
                        };
                        for it in items {
                            if it == e && (limit == 0 || want < limit as usize) {
                                want += 1;
                            } else if tail {
                                kept.push_front(it);
                            } else {
                                kept.push_back(it);
                            }
                        }
                        m = kept;
                        assert_eq!(n, want);
                    }
                    13 => {
                        let i = idx(&mut rng, m.len() + 1);
                        assert_eq!(l.get(i), m.get(i).map(|v| &v[..]));
                        let from: Vec<&[u8]> = l.iter_from(i).collect();
                        let want: Vec<&[u8]> = m.iter().skip(i).map(|v| &v[..]).collect();
                        assert_eq!(from, want);
                    }
                    _ => {
                        let rev: Vec<&[u8]> = l.iter_rev().collect();
                        let want: Vec<&[u8]> = m.iter().rev().map(|v| &v[..]).collect();
                        assert_eq!(rev, want);
                    }
                }
                assert_eq!(l.len(), m.len(), "seed {seed} step {step}");
                max_nodes = max_nodes.max(l.node_count());
                assert!(l.nodes_within(fill), "seed {seed} step {step}");
                if step % 50 == 0 {
                    assert_eq!(contents(&l), m.iter().cloned().collect::<Vec<_>>());
                }
            }
            assert_eq!(contents(&l), m.into_iter().collect::<Vec<_>>());
            assert!(
                max_nodes >= 3,
                "seed {seed}: the list never spread over nodes"
            );
        }
    }
}
