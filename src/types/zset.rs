//! The sorted set type: a listpack of member/score pairs sorted by (score, member) while
//! small, past `zset-max-listpack-*` a skiplist with spans (O(log n) rank queries) plus a
//! member index, as Redis 7.0 (`listpack` / `skiplist` in OBJECT ENCODING).
//!
//! Every range query is phrased with ranks: `prefix_len(pred)` counts the leading elements a
//! monotone predicate accepts (a score or lex bound, or "sorts before this pair"), and
//! `range` walks ranks. Both encodings answer these, so the commands never look inside.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::listpack::{self, Listpack};

/// Conversion thresholds (`zset-max-listpack-entries` / `zset-max-listpack-value`).
#[derive(Clone, Copy, Debug)]
pub struct ZsetLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// The order of a sorted set: score, then member bytes (Redis's `sdscmp` is a memcmp).
#[inline]
pub fn cmp_pair(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    // Scores are never NaN; -0 and 0 compare equal, as C's `<` and `==` treat them.
    if s1 < s2 {
        Ordering::Less
    } else if s1 > s2 {
        Ordering::Greater
    } else {
        m1.cmp(m2)
    }
}

/// A score interval end (`1.5`, `(1.5`, `inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// A score interval as ZRANGEBYSCORE takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    #[inline]
    pub fn gte_min(&self, s: f64) -> bool {
        if self.min.exclusive {
            s > self.min.value
        } else {
            s >= self.min.value
        }
    }

    #[inline]
    pub fn lte_max(&self, s: f64) -> bool {
        if self.max.exclusive {
            s < self.max.value
        } else {
            s <= self.max.value
        }
    }
}

/// A lex interval end: `-`, `+`, `[a` or `(a`.
#[derive(Clone, Debug, PartialEq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

/// A lex interval as ZRANGEBYLEX takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    /// A range nothing can fall in, as `zslIsInLexRange` first tests it: min above max, or
    /// equal with either end exclusive (`-` and `+` count as exclusive, as Redis parses them).
    pub fn always_empty(&self) -> bool {
        // (rank among -inf / strings / +inf, the string, exclusive)
        fn key(b: &LexBound) -> (u8, &[u8], bool) {
            match b {
                LexBound::NegInf => (0, &[], true),
                LexBound::Incl(v) => (1, v, false),
                LexBound::Excl(v) => (1, v, true),
                LexBound::PosInf => (2, &[], true),
            }
        }
        let (min, max) = (key(&self.min), key(&self.max));
        match (min.0, min.1).cmp(&(max.0, max.1)) {
            Ordering::Greater => true,
            Ordering::Equal => min.2 || max.2,
            Ordering::Less => false,
        }
    }

    #[inline]
    pub fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(v) => m >= &v[..],
            LexBound::Excl(v) => m > &v[..],
        }
    }

    #[inline]
    pub fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(v) => m <= &v[..],
            LexBound::Excl(v) => m < &v[..],
        }
    }
}

/// ZADD's conditions.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    pub incr: bool,
}

/// What `ZSet::add` did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    /// A condition (NX, XX, GT, LT) kept the set as it was.
    Nop,
    /// New member with this score.
    Added(f64),
    /// Existing member, score changed to this.
    Updated(f64),
    /// Existing member, score unchanged (still counts as processed for INCR's reply).
    Same(f64),
    /// INCR produced NaN: nothing changed.
    NaN,
}

/// A sorted set.
#[derive(Clone, Debug, PartialEq)]
pub enum ZSet {
    /// Alternating member, score (`encode_score`) entries in order.
    Packed(Listpack),
    Skip(Box<SkipList>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Packed(Listpack::with_header())
    }
}

/// Integral scores below this in magnitude fit 7 bytes of two's complement.
const COMPACT_SCORE_LIMIT: f64 = (1i64 << 55) as f64;

/// A packed score: an integral score within 7 bytes as the fewest little-endian two's
/// complement bytes that hold it (0 is no bytes; Redis's listpack keeps small integers in 1-2
/// bytes too), anything else as the 8 bytes of its f64 bits. The length tells them apart.
#[inline]
fn encode_score(s: f64, out: &mut [u8; 8]) -> usize {
    // A listpack keeps -0 as 0 (Redis reads its stored score text back as 0); skiplists keep -0.
    if s.fract() == 0.0 && s.abs() < COMPACT_SCORE_LIMIT {
        let v = s as i64;
        *out = v.to_le_bytes();
        // Bits needed with the sign bit, in whole bytes (at most 7 by the bound above).
        let magnitude = if v < 0 { !v } else { v };
        let bits = 64 - magnitude.leading_zeros() + 1;
        return if v == 0 { 0 } else { bits.div_ceil(8) as usize };
    }
    *out = s.to_le_bytes();
    8
}

#[inline]
fn decode_score(b: &[u8]) -> f64 {
    if b.len() >= 8 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        return f64::from_le_bytes(a);
    }
    let Some(&top) = b.last() else {
        return 0.0;
    };
    let mut a = [if top & 0x80 != 0 { 0xff } else { 0 }; 8];
    a[..b.len()].copy_from_slice(b);
    i64::from_le_bytes(a) as f64
}

/// Pairs of a packed zset in order.
struct PackedPairs<'a>(listpack::Iter<'a>);

impl<'a> Iterator for PackedPairs<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let m = self.0.next()?;
        let s = self.0.next()?;
        Some((m, decode_score(s)))
    }
}

fn packed_pairs(lp: &Listpack) -> PackedPairs<'_> {
    PackedPairs(lp.iter())
}

/// A listpack holding `pairs` (already in order).
fn pack<'a>(pairs: impl Iterator<Item = (&'a [u8], f64)>) -> Listpack {
    let pairs: Vec<(&[u8], [u8; 8], usize)> = pairs
        .map(|(m, s)| {
            let mut bytes = [0u8; 8];
            let len = encode_score(s, &mut bytes);
            (m, bytes, len)
        })
        .collect();
    let mut entries: Vec<&[u8]> = Vec::with_capacity(pairs.len() * 2);
    for (m, s, len) in &pairs {
        entries.push(m);
        entries.push(&s[..*len]);
    }
    let mut lp = Listpack::with_header();
    lp.push(&entries);
    lp
}

impl ZSet {
    /// An empty set in the packed encoding (what ZADD creates).
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// An empty set in the skiplist encoding.
    pub fn new_skiplist() -> ZSet {
        ZSet::Skip(Box::default())
    }

    /// The set ZADD creates for a first member of length `first_len` (Redis 7.0 looks at the
    /// first member only; later ones convert as they arrive).
    pub fn for_first_member(first_len: usize, lim: ZsetLimits) -> ZSet {
        if lim.max_entries == 0 || first_len > lim.max_value {
            ZSet::new_skiplist()
        } else {
            ZSet::new()
        }
    }

    /// Builds a set from distinct members, in the encoding Redis's STORE commands end with:
    /// packed if it is small enough (`zsetConvertToListpackIfNeeded`), else a skiplist.
    pub fn from_pairs(mut pairs: Vec<(Vec<u8>, f64)>, lim: ZsetLimits) -> ZSet {
        pairs.sort_by(|a, b| cmp_pair(a.1, &a.0, b.1, &b.0));
        let longest = pairs.iter().map(|p| p.0.len()).max().unwrap_or(0);
        let total: usize = pairs.iter().map(|p| listpack::entry_size(&p.0) + 9).sum();
        if pairs.len() <= lim.max_entries
            && longest <= lim.max_value
            && total <= listpack::MAX_SAFE_BYTES
        {
            return ZSet::Packed(pack(pairs.iter().map(|(m, s)| (&m[..], *s))));
        }
        let mut sl = SkipList::default();
        for (m, s) in pairs {
            sl.insert(m.into_boxed_slice(), s);
        }
        ZSet::Skip(Box::new(sl))
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Packed(lp) => lp.len() / 2,
            ZSet::Skip(sl) => sl.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Packed(_) => "listpack",
            ZSet::Skip(_) => "skiplist",
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(lp) => packed_pairs(lp).find(|p| p.0 == member).map(|p| p.1),
            ZSet::Skip(sl) => sl.find(member).map(|i| sl.nodes[i as usize].score),
        }
    }

    /// Moves a packed set to the skiplist encoding (never back, as in Redis).
    pub fn convert(&mut self) {
        if let ZSet::Packed(lp) = self {
            let mut sl = SkipList::default();
            for (m, s) in packed_pairs(lp) {
                sl.insert(m.into(), s);
            }
            *self = ZSet::Skip(Box::new(sl));
        }
    }

    /// Inserts a member known to be absent, converting first if the packed form would
    /// outgrow the limits (Redis checks before inserting).
    fn insert_new(&mut self, member: &[u8], score: f64, lim: ZsetLimits) {
        if let ZSet::Packed(lp) = self {
            let n = lp.len() / 2;
            if n + 1 > lim.max_entries
                || member.len() > lim.max_value
                || !lp.safe_to_add(listpack::entry_size(member) + 9)
            {
                self.convert();
            }
        }
        match self {
            ZSet::Packed(lp) => {
                let new = packed_pairs(lp)
                    .map(|p| (p, false))
                    .chain(std::iter::once(((member, score), true)));
                let mut all: Vec<((&[u8], f64), bool)> = new.collect();
                all.sort_by(|a, b| cmp_pair(a.0 .1, a.0 .0, b.0 .1, b.0 .0));
                *lp = pack(all.into_iter().map(|(p, _)| p));
            }
            ZSet::Skip(sl) => sl.insert(member.into(), score),
        }
    }

    /// Sets the score of a member known to be present.
    fn rescore(&mut self, member: &[u8], score: f64) {
        match self {
            ZSet::Packed(lp) => {
                let mut all: Vec<(&[u8], f64)> = packed_pairs(lp)
                    .map(|(m, s)| if m == member { (m, score) } else { (m, s) })
                    .collect();
                all.sort_by(|a, b| cmp_pair(a.1, a.0, b.1, b.0));
                *lp = pack(all.into_iter());
            }
            ZSet::Skip(sl) => {
                if let Some(i) = sl.find(member) {
                    sl.rescore(i, score);
                }
            }
        }
    }

    /// ZADD / ZINCRBY for one member (Redis's `zsetAdd`).
    pub fn add(&mut self, member: &[u8], score: f64, f: AddFlags, lim: ZsetLimits) -> AddOutcome {
        if score.is_nan() {
            return AddOutcome::NaN;
        }
        match self.score(member) {
            Some(cur) => {
                if f.nx {
                    return AddOutcome::Nop;
                }
                let new = if f.incr { score + cur } else { score };
                if new.is_nan() {
                    return AddOutcome::NaN;
                }
                if (f.lt && new >= cur) || (f.gt && new <= cur) {
                    return AddOutcome::Nop;
                }
                if new == cur {
                    // Equal compares -0 with 0 as equal: the stored sign stays, as in Redis.
                    return AddOutcome::Same(new);
                }
                self.rescore(member, new);
                AddOutcome::Updated(new)
            }
            None if f.xx => AddOutcome::Nop,
            None => {
                self.insert_new(member, score, lim);
                AddOutcome::Added(score)
            }
        }
    }

    /// Removes a member; whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            ZSet::Packed(lp) => {
                let Some(pos) = packed_pairs(lp).position(|p| p.0 == member) else {
                    return false;
                };
                let off = lp.offsets()[pos * 2];
                lp.remove(off, 2);
                true
            }
            ZSet::Skip(sl) => sl.remove(member),
        }
    }

    /// How many leading elements (in order) `pred` accepts; `pred` must hold on a prefix.
    pub fn prefix_len(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Packed(lp) => packed_pairs(lp).take_while(|p| pred(p.1, p.0)).count(),
            ZSet::Skip(sl) => sl.prefix_len(pred),
        }
    }

    /// 0-based rank of a member in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let n = self.prefix_len(|s, m| cmp_pair(s, m, score, member) != Ordering::Greater);
        Some(n - 1)
    }

    /// Ranks `[lo, hi)` matching a score range.
    pub fn score_ranks(&self, r: &ScoreRange) -> (usize, usize) {
        let lo = self.prefix_len(|s, _| !r.gte_min(s));
        let hi = self.prefix_len(|s, _| r.lte_max(s));
        (lo, hi.max(lo))
    }

    // Lex ranges are meant for sets whose scores are all equal; on others Redis's result is
    // what its walk finds, and clients depend on it. A packed set answers exactly as Redis's
    // listpack code (a walk in score order); a skiplist searches from its top level, as
    // Redis's does (whose answer on mixed scores then depends on the nodes' random levels).

    /// Whether the lex range can match at all (`zslIsInLexRange`): not always empty, the
    /// last member not below min, the first not above max.
    fn lex_in_range(&self, r: &LexRange) -> bool {
        let n = self.len();
        n > 0
            && !r.always_empty()
            && self.get(n - 1).is_some_and(|(m, _)| r.gte_min(m))
            && self.get(0).is_some_and(|(m, _)| r.lte_max(m))
    }

    /// Where a lex walk upwards starts, before any range check (`zslDeleteRangeByLex`): the
    /// first member, in order, not below min (found from the top level on a skiplist).
    pub fn lex_seek_min(&self, r: &LexRange) -> usize {
        self.prefix_len(|_, m| !r.gte_min(m))
    }

    /// The rank of the first member in a lex range (`zzlFirstInLexRange` /
    /// `zslFirstInLexRange`): where the walk upwards starts, if that member is not above max.
    pub fn lex_first(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_in_range(r) {
            return None;
        }
        let i = self.lex_seek_min(r);
        let (m, _) = self.get(i)?;
        r.lte_max(m).then_some(i)
    }

    /// The rank of the last member in a lex range (`zzlLastInLexRange` /
    /// `zslLastInLexRange`): the last one, walking down, not above max, if it is not below min.
    pub fn lex_last(&self, r: &LexRange) -> Option<usize> {
        if !self.lex_in_range(r) {
            return None;
        }
        let i = match self {
            ZSet::Packed(lp) => {
                let mut last = None;
                for (i, (m, _)) in packed_pairs(lp).enumerate() {
                    if r.lte_max(m) {
                        last = Some(i);
                    }
                }
                last?
            }
            ZSet::Skip(sl) => sl.prefix_len(|_, m| r.lte_max(m)).checked_sub(1)?,
        };
        let (m, _) = self.get(i)?;
        r.gte_min(m).then_some(i)
    }

    /// Calls `f` with the members from rank `start` on, upwards or (`rev`) downwards, until
    /// it returns false or the set ends.
    pub fn walk(&self, start: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        const CHUNK: usize = 64;
        let mut at = start;
        loop {
            let chunk = if rev {
                let lo = (at + 1).saturating_sub(CHUNK);
                self.range(lo, at + 1, true)
            } else {
                self.range(at, at + CHUNK, false)
            };
            let n = chunk.len();
            for (m, s) in chunk {
                if !f(m, s) {
                    return;
                }
            }
            if n < CHUNK || (rev && at < CHUNK) {
                return;
            }
            at = if rev { at - CHUNK } else { at + CHUNK };
        }
    }

    /// The element at rank `r` (< len).
    pub fn get(&self, r: usize) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Packed(lp) => packed_pairs(lp).nth(r),
            ZSet::Skip(sl) => {
                let i = sl.by_rank(r)?;
                let n = &sl.nodes[i as usize];
                Some((&n.member, n.score))
            }
        }
    }

    /// The elements of ranks `[start, end)`, ascending or (`rev`) descending.
    pub fn range(&self, start: usize, end: usize, rev: bool) -> Vec<(&[u8], f64)> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        match self {
            ZSet::Packed(lp) => {
                let mut v: Vec<(&[u8], f64)> =
                    packed_pairs(lp).skip(start).take(end - start).collect();
                if rev {
                    v.reverse();
                }
                v
            }
            ZSet::Skip(sl) => {
                let mut out = Vec::with_capacity(end - start);
                let mut x = sl.by_rank(if rev { end - 1 } else { start }).unwrap_or(NIL);
                while x != NIL && out.len() < end - start {
                    let n = &sl.nodes[x as usize];
                    out.push((&n.member[..], n.score));
                    x = if rev { n.levels.back } else { n.levels[0].next };
                }
                out
            }
        }
    }

    /// Every element in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            ZSet::Packed(lp) => Box::new(packed_pairs(lp)),
            ZSet::Skip(sl) => Box::new(sl.iter()),
        }
    }

    /// Removes ranks `[start, end)`; how many went.
    pub fn remove_ranks(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match self {
            ZSet::Packed(lp) => {
                let off = lp.offsets()[start * 2];
                lp.remove(off, (end - start) * 2);
            }
            ZSet::Skip(sl) => {
                for _ in start..end {
                    if let Some(x) = sl.by_rank(start) {
                        sl.remove_node(x);
                    }
                }
            }
        }
        end - start
    }

    /// One ZSCAN step. A packed set answers whole with cursor 0, as Redis does; a skiplist
    /// walks its node slots upwards, which never move while their member lives, so a member
    /// present for the whole scan is returned.
    pub fn scan(&self, cursor: u64, count: usize) -> (Vec<(&[u8], f64)>, u64) {
        match self {
            ZSet::Packed(lp) => (packed_pairs(lp).collect(), 0),
            ZSet::Skip(sl) => {
                let total = sl.nodes.len();
                let start = (cursor.max(1)).min(total as u64) as usize;
                let end = start.saturating_add(count.max(1)).min(total);
                let out = sl.nodes[start..end]
                    .iter()
                    .filter(|n| !n.levels.is_empty())
                    .map(|n| (&n.member[..], n.score))
                    .collect();
                (out, if end >= total { 0 } else { end as u64 })
            }
        }
    }
}

// ---- the skiplist ----

const MAX_LEVEL: usize = 32;
const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Level {
    next: u32,
    /// Elements crossed by following `next` (to NIL: those left after this node).
    span: u32,
}

/// A member as its node holds it, in 16 bytes: up to 15 bytes in place, so a walk that
/// compares members (equal scores) or a lookup through the index reads only the node's
/// cache line, which it has loaded anyway; longer ones in an allocation of their own. The
/// first byte tells them apart: `INLINE_MEMBER | len` in place, else the top byte of the
/// big-endian length, which is always below `INLINE_MEMBER`.
struct Member(MemberRepr);

#[repr(C)]
union MemberRepr {
    inline: [u8; 16],
    heap: HeapMember,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct HeapMember {
    len_be: [u8; 8],
    ptr: std::ptr::NonNull<u8>,
}

const INLINE_MEMBER: u8 = 0x80;
const INLINE_MEMBER_MAX: usize = 15;

// SAFETY: a `Member` owns its bytes, as the `Box<[u8]>` it replaces did.
unsafe impl Send for Member {}
unsafe impl Sync for Member {}

impl Member {
    fn is_inline(&self) -> bool {
        // SAFETY: both variants start with an initialized byte.
        unsafe { self.0.inline[0] & INLINE_MEMBER != 0 }
    }
}

impl From<&[u8]> for Member {
    fn from(m: &[u8]) -> Member {
        if m.len() <= INLINE_MEMBER_MAX {
            let mut inline = [0u8; 16];
            inline[0] = INLINE_MEMBER | m.len() as u8;
            inline[1..=m.len()].copy_from_slice(m);
            Member(MemberRepr { inline })
        } else {
            Member::from(Box::<[u8]>::from(m))
        }
    }
}

impl From<Box<[u8]>> for Member {
    fn from(m: Box<[u8]>) -> Member {
        if m.len() <= INLINE_MEMBER_MAX {
            return Member::from(&m[..]);
        }
        let len_be = (m.len() as u64).to_be_bytes();
        // SAFETY: `Box::into_raw` never returns null; `Drop` turns it back into the box.
        let ptr = unsafe { std::ptr::NonNull::new_unchecked(Box::into_raw(m).cast::<u8>()) };
        Member(MemberRepr {
            heap: HeapMember { len_be, ptr },
        })
    }
}

impl std::ops::Deref for Member {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `is_inline` says which variant was written; an inline length is at most
        // 15, and a heap member's pointer and length are those of its live box.
        unsafe {
            if self.is_inline() {
                let len = (self.0.inline[0] & !INLINE_MEMBER) as usize;
                &self.0.inline[1..=len]
            } else {
                let h = self.0.heap;
                std::slice::from_raw_parts(h.ptr.as_ptr(), u64::from_be_bytes(h.len_be) as usize)
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if !self.is_inline() {
            // SAFETY: made by `Box::into_raw` of a slice of this length, dropped once.
            unsafe {
                let h = self.0.heap;
                let len = u64::from_be_bytes(h.len_be) as usize;
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    h.ptr.as_ptr(),
                    len,
                )));
            }
        }
    }
}

impl Default for Member {
    fn default() -> Member {
        Member::from(&b""[..])
    }
}

impl Clone for Member {
    fn clone(&self) -> Member {
        Member::from(&self[..])
    }
}

impl PartialEq for Member {
    fn eq(&self, o: &Member) -> bool {
        self[..] == o[..]
    }
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// A node slot. A free slot has no levels. One cache line: a walk step reads the score and
/// the low levels of a node with one miss.
#[derive(Clone, Debug, PartialEq)]
#[repr(align(64))]
struct Node {
    member: Member,
    score: f64,
    levels: Levels,
}

/// Levels inline in the node up to `INLINE_LEVELS` (15 of 16 nodes at p = 1/4), so a walk
/// step touches one cache line of the arena instead of a second allocation.
const INLINE_LEVELS: usize = 2;

/// A node's links: its levels (forward, with spans) and, packed beside them to keep the node
/// in one cache line, the backward link.
#[derive(Clone, Debug, PartialEq)]
struct Levels {
    len: u8,
    back: u32,
    inline: [Level; INLINE_LEVELS],
    more: Box<[Level]>,
}

impl Levels {
    fn new(n: usize) -> Levels {
        let unlinked = Level { next: NIL, span: 0 };
        Levels {
            len: n as u8,
            back: NIL,
            inline: [unlinked; INLINE_LEVELS],
            more: vec![unlinked; n.saturating_sub(INLINE_LEVELS)].into_boxed_slice(),
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// No levels: a free slot.
impl Default for Levels {
    fn default() -> Levels {
        Levels::new(0)
    }
}

impl std::ops::Index<usize> for Levels {
    type Output = Level;

    #[inline]
    fn index(&self, i: usize) -> &Level {
        debug_assert!(i < self.len as usize);
        match i {
            0..INLINE_LEVELS => &self.inline[i],
            _ => &self.more[i - INLINE_LEVELS],
        }
    }
}

impl std::ops::IndexMut<usize> for Levels {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Level {
        debug_assert!(i < self.len as usize);
        match i {
            0..INLINE_LEVELS => &mut self.inline[i],
            _ => &mut self.more[i - INLINE_LEVELS],
        }
    }
}

/// Redis's skiplist (p = 1/4, 32 levels) over a slot arena, with a hash index from member to
/// slot. Slot 0 is the header. Freed slots are reused, so a live node never moves.
#[derive(Clone, Debug)]
pub struct SkipList {
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    level: usize,
    len: usize,
    index: HashTable<u32>,
    state: DefaultHashBuilder,
    rng: u64,
}

impl PartialEq for SkipList {
    fn eq(&self, o: &SkipList) -> bool {
        self.len == o.len && self.iter().eq(o.iter())
    }
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList {
            nodes: vec![Node {
                member: Member::default(),
                score: 0.0,
                levels: Levels::new(MAX_LEVEL),
            }],
            free: Vec::new(),
            tail: NIL,
            level: 1,
            len: 0,
            index: HashTable::new(),
            state: DefaultHashBuilder::default(),
            rng: 0x2545_F491_4F6C_DD1D,
        }
    }
}

impl SkipList {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn random_level(&mut self) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let mut r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let mut lvl = 1;
        // Two random bits per level: continue with probability 1/4.
        while lvl < MAX_LEVEL && r & 3 == 0 {
            lvl += 1;
            r >>= 2;
        }
        lvl
    }

    #[inline]
    fn hash(&self, m: &[u8]) -> u64 {
        self.state.hash_one(m)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(self.hash(m), |&i| &nodes[i as usize].member[..] == m)
            .copied()
    }

    #[inline]
    fn lvl(&self, x: u32, i: usize) -> Level {
        self.nodes[x as usize].levels[i]
    }

    #[inline]
    fn lvl_mut(&mut self, x: u32, i: usize) -> &mut Level {
        &mut self.nodes[x as usize].levels[i]
    }

    /// Starts loading the node a walk at level `i` of `cur` goes on to if it stops there and
    /// descends: its successor one level down. A walk is a chain of cache misses, one per
    /// node it compares; this overlaps the one of the level below with the one being waited
    /// for (criterion `zset_1m`, alternated runs: ZRANK 4.6-5.1 -> 2.8-3.9 us, adding and
    /// removing a new member 4.4-4.9 -> 3.3-3.6 us).
    #[inline(always)]
    fn prefetch_below(&self, cur: u32, i: usize) {
        #[cfg(target_arch = "x86_64")]
        if i > 0 {
            if let Some(n) = self.nodes.get(self.lvl(cur, i - 1).next as usize) {
                // SAFETY: a prefetch is a hint with no effect on memory; the pointer is to a
                // live element besides.
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>((n as *const Node).cast());
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (cur, i);
    }

    /// Whether node `a` sorts before node `b`.
    #[inline]
    fn before(&self, a: u32, b: u32) -> bool {
        let (na, nb) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        cmp_pair(na.score, &na.member, nb.score, &nb.member) == Ordering::Less
    }

    fn insert(&mut self, member: Box<[u8]>, score: f64) {
        let slot = Node {
            member: member.into(),
            score,
            levels: Levels::default(),
        };
        let x = self.alloc(slot);
        self.link(x);
        let h = self.hash(&self.nodes[x as usize].member);
        let (nodes, state) = (&self.nodes, &self.state);
        self.index
            .insert_unique(h, x, |&i| state.hash_one(&nodes[i as usize].member[..]));
    }

    /// A slot for `slot`: a free one if any is left (entries past the end or reused since
    /// are stale and skipped), else a new one at the end.
    fn alloc(&mut self, slot: Node) -> u32 {
        while let Some(i) = self.free.pop() {
            if let Some(n) = self.nodes.get_mut(i as usize) {
                if i != HEAD && n.levels.is_empty() {
                    *n = slot;
                    return i;
                }
            }
        }
        self.nodes.push(slot);
        (self.nodes.len() - 1) as u32
    }

    /// Links slot `x` (member and score set) into the list at a fresh random level.
    fn link(&mut self, x: u32) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.lvl(cur, i);
                self.prefetch_below(cur, i);
                if l.next != NIL && self.before(l.next, x) {
                    rank[i] += l.span;
                    cur = l.next;
                } else {
                    break;
                }
            }
            update[i] = cur;
        }
        let lvl = self.random_level();
        if lvl > self.level {
            for i in self.level..lvl {
                rank[i] = 0;
                update[i] = HEAD;
                self.lvl_mut(HEAD, i).span = self.len as u32;
            }
            self.level = lvl;
        }
        let mut levels = Levels::new(lvl);
        for i in 0..lvl {
            let u = self.lvl(update[i], i);
            levels[i].next = u.next;
            levels[i].span = u.span - (rank[0] - rank[i]);
            let um = self.lvl_mut(update[i], i);
            um.next = x;
            um.span = rank[0] - rank[i] + 1;
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(lvl) {
            self.lvl_mut(u, i).span += 1;
        }
        let next0 = levels[0].next;
        let n = &mut self.nodes[x as usize];
        n.levels = levels;
        n.levels.back = if update[0] == HEAD { NIL } else { update[0] };
        if next0 != NIL {
            self.nodes[next0 as usize].levels.back = x;
        } else {
            self.tail = x;
        }
        self.len += 1;
    }

    /// Unlinks slot `x` from the list (the slot and the index stay).
    fn unlink(&mut self, x: u32) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                self.prefetch_below(cur, i);
                if l.next != NIL && l.next != x && self.before(l.next, x) {
                    cur = l.next;
                } else {
                    break;
                }
            }
            update[i] = cur;
        }
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.lvl(u, i);
            if ul.next == x {
                let xl = self.lvl(x, i);
                let um = self.lvl_mut(u, i);
                um.span = um.span + xl.span - 1;
                um.next = xl.next;
            } else {
                self.lvl_mut(u, i).span -= 1;
            }
        }
        let (next0, back) = (self.lvl(x, 0).next, self.nodes[x as usize].levels.back);
        if next0 != NIL {
            self.nodes[next0 as usize].levels.back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.lvl(HEAD, self.level - 1).next == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Gives node `x` a new score. If the node stays between its neighbours (a small
    /// ZINCRBY on a leaderboard, mostly), only the score changes, as Redis's
    /// `zslUpdateScore`; otherwise it moves: unlinked and linked again.
    fn rescore(&mut self, x: u32, score: f64) {
        let (back, next) = (self.nodes[x as usize].levels.back, self.lvl(x, 0).next);
        let member = &self.nodes[x as usize].member;
        let after_back = back == NIL || {
            let b = &self.nodes[back as usize];
            cmp_pair(b.score, &b.member, score, member) == Ordering::Less
        };
        let before_next = next == NIL || {
            let n = &self.nodes[next as usize];
            cmp_pair(score, member, n.score, &n.member) == Ordering::Less
        };
        if after_back && before_next {
            self.nodes[x as usize].score = score;
            return;
        }
        self.unlink(x);
        self.nodes[x as usize].score = score;
        self.link(x);
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member) {
            Some(x) => {
                self.remove_node(x);
                true
            }
            None => false,
        }
    }

    /// Removes the live node in slot `x` from the index and the list, freeing the slot.
    fn remove_node(&mut self, x: u32) {
        let h = self.hash(&self.nodes[x as usize].member);
        if let Ok(entry) = self.index.find_entry(h, |&i| i == x) {
            entry.remove();
        }
        self.unlink(x);
        let n = &mut self.nodes[x as usize];
        n.member = Member::default();
        n.levels = Levels::default();
        self.free.push(x);
        if self.len == 0 {
            // An emptied set gives its memory back.
            self.nodes.truncate(1);
            self.free.clear();
            return;
        }
        // Trailing free slots go; their stale entries in `free` are skipped by `alloc`.
        while self.nodes.last().is_some_and(|n| n.levels.is_empty()) {
            self.nodes.pop();
        }
        // Memory goes back once the set is mostly gone (as Redis resizes its dict below 10%).
        if self.index.capacity() > 64 && self.index.len() * 8 < self.index.capacity() {
            let (nodes, state) = (&self.nodes, &self.state);
            self.index.shrink_to(self.len * 2, |&i| {
                state.hash_one(&nodes[i as usize].member[..])
            });
        }
        if self.nodes.capacity() > 64 && self.nodes.len() * 4 < self.nodes.capacity() {
            self.nodes.shrink_to(self.nodes.len() * 2);
        }
    }

    fn prefix_len(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut count = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.next == NIL {
                    break;
                }
                self.prefetch_below(cur, i);
                let n = &self.nodes[l.next as usize];
                if !pred(n.score, &n.member) {
                    break;
                }
                count += l.span as usize;
                cur = l.next;
            }
        }
        count
    }

    /// Slot of the node at 0-based rank `r`.
    fn by_rank(&self, r: usize) -> Option<u32> {
        if r >= self.len {
            return None;
        }
        let want = r + 1;
        let mut seen = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.next != NIL && seen + l.span as usize <= want {
                    seen += l.span as usize;
                    cur = l.next;
                } else {
                    break;
                }
            }
            if seen == want {
                return Some(cur);
            }
        }
        None
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut x = self.lvl(HEAD, 0).next;
        std::iter::from_fn(move || {
            if x == NIL {
                return None;
            }
            let n = &self.nodes[x as usize];
            x = n.levels[0].next;
            Some((&n.member[..], n.score))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Rng;
    use std::collections::BTreeMap;

    const LIM: ZsetLimits = ZsetLimits {
        max_entries: 16,
        max_value: 8,
    };

    /// The model: member -> score, and its sorted order.
    fn sorted(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
        v.sort_by(|a, b| cmp_pair(a.1, &a.0, b.1, &b.0));
        v
    }

    fn check(z: &ZSet, model: &BTreeMap<Vec<u8>, f64>) {
        let want = sorted(model);
        assert_eq!(z.len(), want.len());
        let got: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, want);
        for (i, (m, s)) in want.iter().enumerate() {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.score(m), Some(*s));
            let g = z.get(i).unwrap();
            assert_eq!((g.0.to_vec(), g.1), (m.clone(), *s));
        }
        if let ZSet::Skip(sl) = z {
            // Spans agree with the order: walking level i adds up to each node's rank.
            for i in 0..sl.level {
                let mut x = HEAD;
                let mut rank = 0usize;
                loop {
                    let l = sl.lvl(x, i);
                    if l.next == NIL {
                        break;
                    }
                    rank += l.span as usize;
                    x = l.next;
                    let n = &sl.nodes[x as usize];
                    assert_eq!(z.rank(&n.member), Some(rank - 1), "level {i}");
                }
            }
            let back: Vec<Vec<u8>> = {
                let mut v = Vec::new();
                let mut x = sl.tail;
                while x != NIL {
                    v.push(sl.nodes[x as usize].member.to_vec());
                    x = sl.nodes[x as usize].levels.back;
                }
                v.reverse();
                v
            };
            assert_eq!(back, want.iter().map(|p| p.0.clone()).collect::<Vec<_>>());
        }
    }

    fn member(rng: &mut Rng) -> Vec<u8> {
        match rng.below(8) {
            0 => vec![b'L'; 9],
            _ => format!("m{}", rng.below(40)).into_bytes(),
        }
    }

    fn score(rng: &mut Rng) -> f64 {
        match rng.below(6) {
            0 => 0.0,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            _ => (rng.below(20) as f64 - 10.0) / 2.0,
        }
    }

    #[test]
    fn skiplist_node_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Node>(), 64);
        assert_eq!(std::mem::size_of::<Member>(), 16);
    }

    #[test]
    fn members_short_in_place_long_on_the_heap() {
        for len in [0, 1, 15, 16, 127, 128, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let from_slice = Member::from(&bytes[..]);
            let from_box = Member::from(bytes.clone().into_boxed_slice());
            for m in [&from_slice, &from_box, &from_slice.clone()] {
                assert_eq!(&m[..], &bytes[..], "{len} bytes");
                assert_eq!(m.is_inline(), len <= INLINE_MEMBER_MAX, "{len} bytes");
            }
        }
    }

    #[test]
    fn packed_scores_round_trip_in_few_bytes() {
        let cases: [(f64, usize); 14] = [
            (0.0, 0),
            (-0.0, 0),
            (1.0, 1),
            (-1.0, 1),
            (127.0, 1),
            (-128.0, 1),
            (128.0, 2),
            (-129.0, 2),
            (1e6, 3),
            (COMPACT_SCORE_LIMIT - 8.0, 7),
            (-COMPACT_SCORE_LIMIT, 8),
            (1.5, 8),
            (f64::INFINITY, 8),
            (2f64.powi(60), 8),
        ];
        for (score, want_len) in cases {
            let mut bytes = [0u8; 8];
            let len = encode_score(score, &mut bytes);
            assert_eq!(len, want_len, "{score}");
            let back = decode_score(&bytes[..len]);
            assert_eq!(back, if score == 0.0 { 0.0 } else { score }, "{score}");
        }
        assert_eq!(
            decode_score(&f64::NEG_INFINITY.to_le_bytes()),
            f64::NEG_INFINITY
        );
    }

    #[test]
    fn model_based_random_operations() {
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let mut z = ZSet::new();
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            let mut was_skip = false;
            for _ in 0..600 {
                let m = member(&mut rng);
                match rng.below(12) {
                    0..=4 => {
                        let s = score(&mut rng);
                        let f = AddFlags {
                            incr: rng.below(4) == 0,
                            ..AddFlags::default()
                        };
                        let out = z.add(&m, s, f, LIM);
                        let cur = model.get(&m).copied();
                        let new = if f.incr { s + cur.unwrap_or(0.0) } else { s };
                        match cur {
                            _ if new.is_nan() => assert_eq!(out, AddOutcome::NaN),
                            None => {
                                assert_eq!(out, AddOutcome::Added(new));
                                model.insert(m, new);
                            }
                            Some(c) if c == new => assert_eq!(out, AddOutcome::Same(new)),
                            Some(_) => {
                                assert_eq!(out, AddOutcome::Updated(new));
                                model.insert(m, new);
                            }
                        }
                    }
                    5..=6 => assert_eq!(z.remove(&m), model.remove(&m).is_some()),
                    7 => {
                        let lo = rng.below(6) as f64 - 3.0;
                        let r = ScoreRange {
                            min: ScoreBound {
                                value: lo,
                                exclusive: rng.below(2) == 0,
                            },
                            max: ScoreBound {
                                value: lo + rng.below(4) as f64,
                                exclusive: rng.below(2) == 0,
                            },
                        };
                        let (a, b) = z.score_ranks(&r);
                        let want: Vec<Vec<u8>> = sorted(&model)
                            .into_iter()
                            .filter(|p| r.gte_min(p.1) && r.lte_max(p.1))
                            .map(|p| p.0)
                            .collect();
                        let got: Vec<Vec<u8>> =
                            z.range(a, b, false).iter().map(|p| p.0.to_vec()).collect();
                        assert_eq!(got, want);
                        let mut rev: Vec<Vec<u8>> =
                            z.range(a, b, true).iter().map(|p| p.0.to_vec()).collect();
                        rev.reverse();
                        assert_eq!(rev, want);
                    }
                    8 if !model.is_empty() => {
                        let n = z.len();
                        let a = rng.below(n);
                        let b = a + rng.below(3);
                        let gone = z.remove_ranks(a, b);
                        let s = sorted(&model);
                        for p in s.iter().skip(a).take(b.min(n) - a) {
                            model.remove(&p.0);
                        }
                        assert_eq!(gone, b.min(n) - a);
                    }
                    9 => {
                        // Lex ranges on the members' order (the set's own order when the
                        // scores are equal; here just a check of the predicate prefix).
                        let r = LexRange {
                            min: LexBound::NegInf,
                            max: LexBound::PosInf,
                        };
                        let n = z.len();
                        assert_eq!(z.lex_first(&r), (n > 0).then_some(0));
                        assert_eq!(z.lex_last(&r), n.checked_sub(1));
                        let mut walked = Vec::new();
                        z.walk(0, false, |m, _| {
                            walked.push(m.to_vec());
                            true
                        });
                        assert_eq!(walked.len(), n);
                        let mut back = Vec::new();
                        if n > 0 {
                            z.walk(n - 1, true, |m, _| {
                                back.push(m.to_vec());
                                true
                            });
                        }
                        back.reverse();
                        assert_eq!(back, walked);
                    }
                    _ => assert_eq!(z.score(&m), model.get(&m).copied()),
                }
                if model.len() > LIM.max_entries || model.keys().any(|m| m.len() > LIM.max_value) {
                    assert_eq!(z.encoding(), "skiplist");
                }
                was_skip |= z.encoding() == "skiplist";
                if was_skip {
                    assert_eq!(z.encoding(), "skiplist", "never converts back");
                }
                check(&z, &model);
            }
        }
    }

    #[test]
    fn big_skiplist_ranks_and_scan() {
        let mut z = ZSet::new_skiplist();
        let lim = ZsetLimits {
            max_entries: 0,
            max_value: 0,
        };
        for i in 0..5000u32 {
            let m = format!("k{:05}", (i * 7919) % 5000);
            z.add(
                m.as_bytes(),
                ((i * 7919) % 5000 / 10) as f64,
                AddFlags::default(),
                lim,
            );
        }
        assert_eq!(z.len(), 5000);
        for i in (0..5000).step_by(37) {
            let m = format!("k{i:05}");
            assert_eq!(z.rank(m.as_bytes()), Some(i));
            assert_eq!(z.get(i).unwrap().0, m.as_bytes());
        }
        let r = ScoreRange {
            min: ScoreBound {
                value: 10.0,
                exclusive: true,
            },
            max: ScoreBound {
                value: 20.0,
                exclusive: false,
            },
        };
        assert_eq!(z.score_ranks(&r), (110, 210));
        // Removing half keeps the other half's scan coverage.
        for i in (0..5000).step_by(2) {
            assert!(z.remove(format!("k{i:05}").as_bytes()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = 0;
        loop {
            let (items, next) = z.scan(cursor, 100);
            seen.extend(items.iter().map(|p| p.0.to_vec()));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 2500);
        for i in (1..5000).step_by(2) {
            assert!(z.remove(format!("k{i:05}").as_bytes()));
        }
        assert!(z.is_empty());
        if let ZSet::Skip(sl) = &z {
            assert_eq!(
                sl.nodes.len(),
                1,
                "an emptied skiplist keeps only its header"
            );
        }
    }

    #[test]
    fn add_conditions_follow_zadd() {
        let f = |s: &str| {
            let mut f = AddFlags::default();
            for w in s.split_whitespace() {
                match w {
                    "nx" => f.nx = true,
                    "xx" => f.xx = true,
                    "gt" => f.gt = true,
                    "lt" => f.lt = true,
                    _ => f.incr = true,
                }
            }
            f
        };
        for mut z in [ZSet::new(), ZSet::new_skiplist()] {
            assert_eq!(z.add(b"a", 5.0, f("xx"), LIM), AddOutcome::Nop);
            assert_eq!(z.add(b"a", 5.0, f("gt"), LIM), AddOutcome::Added(5.0));
            assert_eq!(z.add(b"a", 4.0, f("gt"), LIM), AddOutcome::Nop);
            assert_eq!(z.add(b"a", 6.0, f("gt xx"), LIM), AddOutcome::Updated(6.0));
            assert_eq!(z.add(b"a", 7.0, f("lt"), LIM), AddOutcome::Nop);
            assert_eq!(z.add(b"a", 1.0, f("nx"), LIM), AddOutcome::Nop);
            assert_eq!(
                z.add(b"a", -1.0, f("lt incr"), LIM),
                AddOutcome::Updated(5.0)
            );
            assert_eq!(z.add(b"a", 1.0, f("lt incr"), LIM), AddOutcome::Nop);
            assert_eq!(z.add(b"a", 5.0, f(""), LIM), AddOutcome::Same(5.0));
            assert_eq!(
                z.add(b"b", f64::INFINITY, f(""), LIM),
                AddOutcome::Added(f64::INFINITY)
            );
            assert_eq!(
                z.add(b"b", f64::NEG_INFINITY, f("incr"), LIM),
                AddOutcome::NaN
            );
            assert_eq!(z.score(b"b"), Some(f64::INFINITY));
            assert_eq!(z.rank(b"b"), Some(1));
        }
    }

    #[test]
    fn from_pairs_picks_the_store_encoding() {
        let small = ZSet::from_pairs(vec![(b"b".to_vec(), 1.0), (b"a".to_vec(), 1.0)], LIM);
        assert_eq!(small.encoding(), "listpack");
        assert_eq!(small.get(0).unwrap().0, b"a");
        let long = ZSet::from_pairs(vec![(vec![b'x'; 9], 1.0)], LIM);
        assert_eq!(long.encoding(), "skiplist");
        let many = ZSet::from_pairs((0..17).map(|i| (vec![i as u8], i as f64)).collect(), LIM);
        assert_eq!(many.encoding(), "skiplist");
        assert_eq!(many.len(), 17);
    }
}
