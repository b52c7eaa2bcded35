//! The set type: a sorted integer array (intset) while every member is an integer and there
//! are few, a listpack while small, a `Dict` beyond. As in Redis 7.0, OBJECT ENCODING says
//! `intset` or `hashtable` (7.0 has no listpack sets; ours is an internal saving).

use hashbrown::HashSet;

use super::hash::{Dict, KeyOf};
use super::listpack::{self, Listpack};
use crate::util::num::parse_i64_strict;

/// Conversion thresholds.
#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    /// `set-max-intset-entries` (Redis caps it at 2^30).
    pub max_intset: usize,
    /// `set-max-listpack-entries`.
    pub max_listpack: usize,
    /// Longest member a listpack holds (Redis 7.2's `set-max-listpack-value` default).
    pub max_value: usize,
}

/// Longest member kept packed.
pub const MAX_PACKED_MEMBER: usize = 64;

/// A set member: intsets hand out integers, the others bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// Calls `f` with the member's bytes (integers formatted on the stack).
    #[inline]
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }
}

/// Sorted integers at the narrowest width that fits them all: `[width: 2|4|8][values LE]`.
/// An empty allocation is an empty intset.
#[repr(transparent)]
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct IntSet {
    buf: Box<[u8]>,
}

#[inline]
fn width_for(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

#[inline]
fn put_int(out: &mut Vec<u8>, v: i64, width: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..width]);
}

impl IntSet {
    #[allow(clippy::borrowed_box)]
    fn from_ref(buf: &Box<[u8]>) -> &IntSet {
        // SAFETY: `IntSet` is `repr(transparent)` over `Box<[u8]>`.
        unsafe { &*(buf as *const Box<[u8]> as *const IntSet) }
    }

    fn from_mut(buf: &mut Box<[u8]>) -> &mut IntSet {
        // SAFETY: `IntSet` is `repr(transparent)` over `Box<[u8]>`.
        unsafe { &mut *(buf as *mut Box<[u8]> as *mut IntSet) }
    }

    #[inline]
    fn width(&self) -> usize {
        self.buf.first().map_or(2, |&w| w as usize)
    }

    #[inline]
    pub fn len(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            (self.buf.len() - 1) / self.width()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> i64 {
        let w = self.width();
        let b = &self.buf[1 + i * w..1 + (i + 1) * w];
        match w {
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, v: i64) -> bool {
        self.search(v).is_ok()
    }

    /// Adds `v`; false if present. Widens every value when `v` needs more bytes.
    pub fn insert(&mut self, v: i64) -> bool {
        let Err(pos) = self.search(v) else {
            return false;
        };
        let (w, need) = (self.width(), width_for(v));
        let n = self.len();
        if need > w || self.buf.is_empty() {
            let w2 = need.max(w);
            let mut out = Vec::with_capacity(1 + (n + 1) * w2);
            out.push(w2 as u8);
            for i in 0..n {
                if i == pos {
                    put_int(&mut out, v, w2);
                }
                put_int(&mut out, self.get(i), w2);
            }
            if pos == n {
                put_int(&mut out, v, w2);
            }
            self.buf = out.into_boxed_slice();
            return true;
        }
        let mut out = std::mem::take(&mut self.buf).into_vec();
        out.reserve_exact(w);
        let at = 1 + pos * w;
        out.splice(at..at, v.to_le_bytes()[..w].iter().copied());
        self.buf = out.into_boxed_slice();
        true
    }

    /// Removes `v`; false if absent. The width is kept, as Redis keeps it.
    pub fn remove(&mut self, v: i64) -> bool {
        let Ok(pos) = self.search(v) else {
            return false;
        };
        self.remove_at(pos);
        true
    }

    fn remove_at(&mut self, pos: usize) {
        if self.len() == 1 {
            self.buf = Box::default();
            return;
        }
        let w = self.width();
        let mut out = std::mem::take(&mut self.buf).into_vec();
        out.drain(1 + pos * w..1 + (pos + 1) * w);
        self.buf = out.into_boxed_slice();
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }
}

/// A set item is the member itself.
pub struct Whole;

impl KeyOf for Whole {
    #[inline]
    fn key(item: &[u8]) -> &[u8] {
        item
    }
}

pub type SetDict = Dict<Whole>;

/// A set value. 16 bytes, so `Value` stays small.
#[derive(Clone, Debug)]
pub enum Set {
    /// An intset or a listpack, told apart by the first byte (`listpack::KIND` for a
    /// listpack; an intset's width otherwise; empty = empty intset).
    Small(Box<[u8]>),
    Table(Box<SetDict>),
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

impl PartialEq for Set {
    /// Same members, whatever the encodings.
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_member(m))
    }
}

/// A borrowed view of a set's encoding.
enum View<'a> {
    Ints(&'a IntSet),
    Packed(&'a Listpack),
    Table(&'a SetDict),
}

#[allow(clippy::borrowed_box)]
#[inline]
fn is_listpack(buf: &Box<[u8]>) -> bool {
    buf.first() == Some(&listpack::KIND)
}

impl Set {
    /// An empty intset: what Redis's set operations start their result from.
    pub fn new() -> Set {
        Set::Small(Box::default())
    }

    #[inline]
    fn view(&self) -> View<'_> {
        match self {
            Set::Small(b) if is_listpack(b) => View::Packed(Listpack::from_ref(b)),
            Set::Small(b) => View::Ints(IntSet::from_ref(b)),
            Set::Table(d) => View::Table(d),
        }
    }

    pub fn len(&self) -> usize {
        match self.view() {
            View::Ints(s) => s.len(),
            View::Packed(lp) => lp.len(),
            View::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports: Redis 7.0 knows only `intset` and `hashtable`.
    pub fn encoding(&self) -> &'static str {
        match self.view() {
            View::Ints(_) => "intset",
            _ => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        matches!(self.view(), View::Ints(_))
    }

    /// The byte width of an intset's integers (2, 4 or 8); None for other encodings. It
    /// never narrows after removals, as in Redis, so DUMP writes the width Redis would.
    pub fn intset_width(&self) -> Option<usize> {
        match self.view() {
            View::Ints(s) if !s.is_empty() => Some(s.width()),
            _ => None,
        }
    }

    /// An intset of `sorted` (ascending, distinct) stored `width` bytes wide (2, 4 or 8, and
    /// wide enough for every value): RDB loading keeps a payload's width, as Redis does.
    pub fn intset_from_sorted(sorted: &[i64], width: usize) -> Set {
        let width = sorted.iter().map(|&v| width_for(v)).fold(width, usize::max);
        let mut buf = Vec::with_capacity(1 + sorted.len() * width);
        buf.push(width as u8);
        for &v in sorted {
            put_int(&mut buf, v, width);
        }
        Set::Small(buf.into_boxed_slice())
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self.view() {
            View::Ints(s) => parse_i64_strict(m).is_some_and(|v| s.contains(v)),
            View::Packed(lp) => lp.find(m, 1).is_some(),
            View::Table(d) => d.find(m).is_some(),
        }
    }

    pub fn contains_member(&self, m: Member<'_>) -> bool {
        match (m, self.view()) {
            (Member::Int(v), View::Ints(s)) => s.contains(v),
            (m, _) => m.with_bytes(|b| self.contains(b)),
        }
    }

    /// Adds `m`; returns whether it is new. Converts as Redis's `setTypeAdd` does (an intset
    /// leaves on a non-integer or past `max_intset`), then listpack → table past its limits.
    pub fn add(&mut self, m: &[u8], lim: SetLimits) -> bool {
        if let Set::Small(b) = self {
            if !is_listpack(b) {
                match parse_i64_strict(m) {
                    Some(v) => return self.add_int(v, lim),
                    None => self.leave_intset(1, m.len() <= lim.max_value, lim),
                }
            }
        }
        match self {
            Set::Small(b) => {
                let lp = Listpack::from_mut(b);
                if lp.find(m, 1).is_some() {
                    return false;
                }
                if lp.len() < lim.max_listpack
                    && m.len() <= lim.max_value
                    && lp.safe_to_add(listpack::entry_size(m))
                {
                    lp.push(&[m]);
                    return true;
                }
                self.convert_to_table();
                self.add(m, lim)
            }
            Set::Table(d) => {
                if d.find(m).is_some() {
                    return false;
                }
                d.insert_new(m.into());
                true
            }
        }
    }

    /// Adds an integer member (fast path for intsets).
    fn add_int(&mut self, v: i64, lim: SetLimits) -> bool {
        if let Set::Small(b) = self {
            if !is_listpack(b) {
                let s = IntSet::from_mut(b);
                if !s.insert(v) {
                    return false;
                }
                if s.len() > lim.max_intset.min(1 << 30) {
                    self.leave_intset(0, true, lim);
                }
                return true;
            }
        }
        self.add(itoa::Buffer::new().format(v).as_bytes(), lim)
    }

    pub fn add_member(&mut self, m: Member<'_>, lim: SetLimits) -> bool {
        match m {
            Member::Int(v) => self.add_int(v, lim),
            Member::Bytes(b) => self.add(b, lim),
        }
    }

    /// Converts an intset to a listpack if `extra` more members (that `fit`) keep it small
    /// enough, else to a table.
    fn leave_intset(&mut self, extra: usize, fit: bool, lim: SetLimits) {
        let Set::Small(b) = self else { return };
        let s = IntSet::from_ref(b);
        if fit && s.len() + extra <= lim.max_listpack {
            let texts: Vec<Vec<u8>> = s
                .iter()
                .map(|v| itoa::Buffer::new().format(v).as_bytes().to_vec())
                .collect();
            let refs: Vec<&[u8]> = texts.iter().map(|t| &t[..]).collect();
            let mut lp = Listpack::with_header();
            if !refs.is_empty() {
                lp.push(&refs);
            }
            *self = Set::Small(lp.into_raw());
        } else {
            self.convert_to_table();
        }
    }

    /// Converts to a table, keeping the members' order.
    fn convert_to_table(&mut self) {
        let mut d = SetDict::with_capacity(self.len());
        for m in self.iter() {
            m.with_bytes(|b| d.insert_new(b.into()));
        }
        *self = Set::Table(Box::new(d));
    }

    /// Removes `m`; returns whether it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Small(b) if is_listpack(b) => {
                let lp = Listpack::from_mut(b);
                match lp.find(m, 1) {
                    Some(off) => {
                        lp.remove(off, 1);
                        true
                    }
                    None => false,
                }
            }
            Set::Small(b) => parse_i64_strict(m).is_some_and(|v| IntSet::from_mut(b).remove(v)),
            Set::Table(d) => d.remove(m).is_some(),
        }
    }

    /// Members in storage order (ascending for an intset).
    pub fn iter(&self) -> SetIter<'_> {
        match self.view() {
            View::Ints(s) => SetIter::Ints(s, 0),
            View::Packed(lp) => SetIter::Packed(lp.iter()),
            View::Table(d) => SetIter::Table(d.items()),
        }
    }

    /// Members addressable by position, for random picks (O(1) each once built).
    pub fn positions(&self) -> Positions<'_> {
        match self.view() {
            View::Ints(s) => Positions::Ints(s),
            View::Packed(lp) => Positions::Members(lp.iter().collect()),
            View::Table(d) => Positions::Table(d),
        }
    }

    /// Calls `f` with the member at position `pos`, then removes it (SPOP).
    pub fn pop_at(&mut self, pos: usize, f: impl FnOnce(Member<'_>)) {
        match self {
            Set::Small(b) if is_listpack(b) => {
                let lp = Listpack::from_mut(b);
                let off = lp.offsets()[pos];
                f(Member::Bytes(lp.entry(off).0));
                lp.remove(off, 1);
            }
            Set::Small(b) => {
                let s = IntSet::from_mut(b);
                f(Member::Int(s.get(pos)));
                s.remove_at(pos);
            }
            Set::Table(d) => {
                let item = d.remove_at(pos);
                f(Member::Bytes(&item));
            }
        }
    }

    /// One SSCAN step: the members to return and the next cursor. An intset returns
    /// everything at once with cursor 0, as Redis does; listpacks (a `hashtable` to
    /// clients) and tables walk positions downwards, `count` at a time. Converting a
    /// listpack to a table keeps positions, so a scan carries on across the conversion.
    pub fn scan(&self, cursor: u64, count: usize) -> (Vec<Member<'_>>, u64) {
        match self.view() {
            View::Ints(s) => (s.iter().map(Member::Int).collect(), 0),
            View::Packed(lp) => {
                let top = if cursor == 0 {
                    lp.len()
                } else {
                    cursor.min(lp.len() as u64) as usize
                };
                let low = top.saturating_sub(count.max(1));
                let mut out: Vec<Member> = lp
                    .iter()
                    .skip(low)
                    .take(top - low)
                    .map(Member::Bytes)
                    .collect();
                out.reverse();
                (out, low as u64)
            }
            View::Table(d) => {
                let (range, next) = d.scan_range(cursor, count);
                (
                    range.rev().map(|p| Member::Bytes(d.item(p))).collect(),
                    next,
                )
            }
        }
    }
}

/// Iterates a set's members.
pub enum SetIter<'a> {
    Ints(&'a IntSet, usize),
    Packed(listpack::Iter<'a>),
    Table(std::slice::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Member<'a>;

    #[inline]
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            SetIter::Ints(s, i) => {
                if *i >= s.len() {
                    return None;
                }
                *i += 1;
                Some(Member::Int(s.get(*i - 1)))
            }
            SetIter::Packed(it) => it.next().map(Member::Bytes),
            SetIter::Table(it) => it.next().map(|b| Member::Bytes(b)),
        }
    }
}

/// Random access to a set's members.
pub enum Positions<'a> {
    Ints(&'a IntSet),
    Members(Vec<&'a [u8]>),
    Table(&'a SetDict),
}

impl<'a> Positions<'a> {
    pub fn len(&self) -> usize {
        match self {
            Positions::Ints(s) => s.len(),
            Positions::Members(v) => v.len(),
            Positions::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, pos: usize) -> Member<'a> {
        match self {
            Positions::Ints(s) => Member::Int(s.get(pos)),
            Positions::Members(v) => Member::Bytes(v[pos]),
            Positions::Table(d) => Member::Bytes(d.item(pos)),
        }
    }
}

// ---- set algebra (Redis's sinterGenericCommand / sunionDiffGenericCommand) ----

/// SINTER: the members of the smallest set found in every other one, in that set's order.
/// A missing set (None) makes the result empty. `limit` (0 = none) stops early (SINTERCARD).
pub fn inter<'a>(sets: &[Option<&'a Set>], limit: usize) -> Vec<Member<'a>> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
        return Vec::new();
    };
    // Stable, as Redis's qsort of the few set pointers behaves in practice.
    sets.sort_by_key(|s| s.len());
    let Some((&first, rest)) = sets.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in first.iter() {
        if rest
            .iter()
            .all(|&s| std::ptr::eq(s, first) || s.contains_member(m))
        {
            out.push(m);
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// SUNION: every member of every set, gathered into a new set from an empty intset.
pub fn union(sets: &[Option<&Set>], lim: SetLimits) -> Set {
    let mut out = Set::new();
    for s in sets.iter().flatten() {
        for m in s.iter() {
            out.add_member(m, lim);
        }
    }
    out
}

/// SDIFF: members of the first set in none of the others.
pub fn diff(sets: &[Option<&Set>], lim: SetLimits) -> Set {
    let mut out = Set::new();
    let Some(Some(first)) = sets.first() else {
        return out;
    };
    let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
    if others.iter().any(|&s| std::ptr::eq(s, *first)) {
        return out;
    }
    for m in first.iter() {
        if !others.iter().any(|s| s.contains_member(m)) {
            out.add_member(m, lim);
        }
    }
    out
}

/// Gathers members into a new set (SINTERSTORE's result).
pub fn collect(members: &[Member<'_>], lim: SetLimits) -> Set {
    let mut out = Set::new();
    for &m in members {
        out.add_member(m, lim);
    }
    out
}

/// `count` distinct positions below `size` (count < size), drawn with `next`. Dense
/// requests shuffle a position list; sparse ones draw and reject repeats (Redis's CASE 3 / 4).
pub fn distinct_positions(size: usize, count: usize, next: &mut impl FnMut() -> u64) -> Vec<usize> {
    if count.saturating_mul(3) > size {
        let mut all: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = i + below(next(), size - i);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let p = below(next(), size);
            if seen.insert(p) {
                out.push(p);
            }
        }
        out
    }
}

/// A small xorshift64* generator: commands seed one from the keyspace's generator when they
/// need many draws while holding a borrow of the keyspace.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        below(self.next(), n)
    }
}

/// A number below `n` (n > 0) from a random 64-bit draw.
#[inline]
pub fn below(r: u64, n: usize) -> usize {
    ((r as u128 * n as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;

    const LIM: SetLimits = SetLimits {
        max_intset: 20,
        max_listpack: 12,
        max_value: 10,
    };

    fn member(rng: &mut Rng, ints_only: bool) -> Vec<u8> {
        match rng.below(if ints_only { 3 } else { 6 }) {
            0 => format!("{}", rng.below(40) as i64 - 20).into_bytes(),
            1 => format!("{}", (rng.next() as i64) >> rng.below(64)).into_bytes(),
            2 => format!("{}", rng.below(30_000) as i64 * 3).into_bytes(),
            3 => format!("m{}", rng.below(30)).into_bytes(),
            4 => vec![b'L'; 11],
            _ => b"007".to_vec(),
        }
    }

    fn check(s: &Set, model: &BTreeSet<Vec<u8>>) {
        assert_eq!(s.len(), model.len());
        let got: BTreeSet<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
        assert_eq!(&got, model);
        for m in model {
            assert!(s.contains(m));
        }
        if s.is_intset() {
            let v: Vec<i64> = s
                .iter()
                .map(|m| match m {
                    Member::Int(v) => v,
                    Member::Bytes(_) => panic!("bytes in an intset"),
                })
                .collect();
            assert!(v.windows(2).all(|w| w[0] < w[1]), "intset not sorted");
        }
    }

    #[test]
    fn model_based_random_operations() {
        for seed in 0..60 {
            let mut rng = Rng::new(seed);
            let ints_only = seed % 2 == 0;
            let mut s = Set::new();
            let mut model = BTreeSet::new();
            let mut left_intset = false;
            for _ in 0..500 {
                let m = member(&mut rng, ints_only);
                match rng.below(10) {
                    0..=5 => assert_eq!(s.add(&m, LIM), model.insert(m)),
                    6..=7 => assert_eq!(s.remove(&m), model.remove(&m)),
                    8 if !model.is_empty() => {
                        let pos = rng.below(s.len());
                        let mut popped = Vec::new();
                        s.pop_at(pos, |m| popped = m.to_vec());
                        assert!(model.remove(&popped));
                    }
                    _ => assert_eq!(s.contains(&m), model.contains(&m)),
                }
                // Intset iff every member is an integer and few; once left, never back.
                let all_ints = model.iter().all(|m| parse_i64_strict(m).is_some());
                if !all_ints || model.len() > LIM.max_intset || left_intset {
                    assert_eq!(s.encoding(), "hashtable");
                }
                left_intset |= !s.is_intset() && !model.is_empty();
                check(&s, &model);
            }
            assert!(left_intset, "seed {seed} never left the intset");
        }
    }

    #[test]
    fn intset_widths_and_order() {
        let mut s = IntSet::default();
        for v in [5i64, -3, 70_000, i64::MIN, 1, i64::MAX, 0, -70_000, 300] {
            assert!(s.insert(v));
            assert!(!s.insert(v));
        }
        assert_eq!(s.width(), 8);
        let v: Vec<i64> = s.iter().collect();
        assert_eq!(
            v,
            vec![i64::MIN, -70_000, -3, 0, 1, 5, 300, 70_000, i64::MAX]
        );
        assert!(s.remove(-3));
        assert!(!s.remove(-3));
        assert_eq!(s.len(), 8);
        let mut t = IntSet::default();
        t.insert(1);
        assert_eq!(t.width(), 2);
        t.insert(40_000);
        assert_eq!(t.width(), 4);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![1, 40_000]);
    }

    #[test]
    fn encodings_follow_redis_7_0() {
        let mut s = Set::new();
        for i in 0..20 {
            s.add(format!("{i}").as_bytes(), LIM);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"20", LIM);
        assert_eq!(s.encoding(), "hashtable");
        let mut t = Set::new();
        t.add(b"1", LIM);
        t.add(b"a", LIM);
        assert_eq!(t.encoding(), "hashtable");
        t.remove(b"a");
        assert_eq!(t.encoding(), "hashtable");
        // "007" and "+1" are not integers for Redis.
        let mut u = Set::new();
        u.add(b"007", LIM);
        assert_eq!(u.encoding(), "hashtable");
        assert!(u.contains(b"007") && !u.contains(b"7"));
    }

    #[test]
    fn algebra_matches_model() {
        for seed in 0..30 {
            let mut rng = Rng::new(seed + 100);
            let mut sets = Vec::new();
            let mut models = Vec::new();
            for k in 0..3 {
                let mut s = Set::new();
                let mut m = BTreeSet::new();
                for _ in 0..rng.below(30) {
                    let x = member(&mut rng, (seed + k) % 2 == 0);
                    s.add(&x, LIM);
                    m.insert(x);
                }
                sets.push(s);
                models.push(m);
            }
            let refs: Vec<Option<&Set>> = sets.iter().map(Some).collect();
            let i: BTreeSet<Vec<u8>> = inter(&refs, 0).iter().map(|m| m.to_vec()).collect();
            let mi: BTreeSet<Vec<u8>> = models[0]
                .iter()
                .filter(|x| models[1].contains(*x) && models[2].contains(*x))
                .cloned()
                .collect();
            assert_eq!(i, mi);
            let u = union(&refs, LIM);
            let mu: BTreeSet<Vec<u8>> = models.iter().flatten().cloned().collect();
            check(&u, &mu);
            let d = diff(&refs, LIM);
            let md: BTreeSet<Vec<u8>> = models[0]
                .iter()
                .filter(|x| !models[1].contains(*x) && !models[2].contains(*x))
                .cloned()
                .collect();
            check(&d, &md);
            assert_eq!(inter(&refs, 1).len(), mi.len().min(1));
            let with_missing = [Some(&sets[0]), None];
            assert!(inter(&with_missing, 0).is_empty());
            check(&union(&with_missing, LIM), &models[0]);
            check(
                &diff(&[Some(&sets[0]), Some(&sets[0])], LIM),
                &BTreeSet::new(),
            );
        }
    }

    #[test]
    fn scan_covers_stable_members_across_conversion() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed + 7);
            let mut s = Set::new();
            for i in 0..10 {
                s.add(format!("s{i}").as_bytes(), LIM);
            }
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut n = 0;
            loop {
                let (ms, next) = s.scan(cursor, 1 + rng.below(4));
                seen.extend(ms.iter().map(|m| m.to_vec()));
                // New members push the listpack into a table mid-scan.
                for _ in 0..3 {
                    s.add(format!("n{n}").as_bytes(), LIM);
                    n += 1;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            for i in 0..10 {
                assert!(seen.contains(format!("s{i}").as_bytes()), "seed {seed}");
            }
        }
    }

    #[test]
    fn distinct_positions_are_distinct() {
        let mut rng = Rng::new(3);
        for (size, count) in [(10, 9), (1000, 5), (7, 1), (100, 40)] {
            let p = distinct_positions(size, count, &mut || rng.next());
            assert_eq!(p.len(), count);
            let uniq: BTreeSet<usize> = p.iter().copied().collect();
            assert_eq!(uniq.len(), count);
            assert!(p.iter().all(|&x| x < size));
        }
    }
}
