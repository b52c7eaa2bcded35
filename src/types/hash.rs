//! The hash type: a listpack of field/value pairs while small, a `Dict` past Redis's
//! `hash-max-listpack-entries` / `-value` thresholds (never converted back, as in Redis).

use std::hash::BuildHasher;
use std::marker::PhantomData;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::listpack::{self, Listpack};

/// Conversion thresholds (from `hash-max-listpack-entries` / `hash-max-listpack-value`).
#[derive(Clone, Copy, Debug)]
pub struct HashLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// How a `Dict` finds the key inside an item.
pub trait KeyOf {
    fn key(item: &[u8]) -> &[u8];
}

/// A hash table of byte items kept densely in a `Vec` (the index table holds positions).
///
/// Removal swaps the last item into the hole, so positions stay dense: random picks are
/// O(1), and a scan that walks positions downwards never misses an item present for the
/// whole scan (an item only ever moves from the end to a lower position).
pub struct Dict<K: KeyOf> {
    items: Vec<Box<[u8]>>,
    index: HashTable<u32>,
    state: DefaultHashBuilder,
    _key: PhantomData<K>,
}

impl<K: KeyOf> Clone for Dict<K> {
    fn clone(&self) -> Self {
        Dict {
            items: self.items.clone(),
            index: self.index.clone(),
            state: self.state,
            _key: PhantomData,
        }
    }
}

impl<K: KeyOf> std::fmt::Debug for Dict<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.items.iter()).finish()
    }
}

impl<K: KeyOf> Default for Dict<K> {
    fn default() -> Self {
        Dict::with_capacity(0)
    }
}

impl<K: KeyOf> Dict<K> {
    pub fn with_capacity(n: usize) -> Dict<K> {
        Dict {
            items: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            state: DefaultHashBuilder::default(),
            _key: PhantomData,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.state.hash_one(key)
    }

    /// Position of the item whose key is `key`.
    #[inline]
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let items = &self.items;
        self.index
            .find(self.hash(key), |&i| K::key(&items[i as usize]) == key)
            .map(|&i| i as usize)
    }

    #[inline]
    pub fn item(&self, pos: usize) -> &[u8] {
        &self.items[pos]
    }

    pub fn items(&self) -> std::slice::Iter<'_, Box<[u8]>> {
        self.items.iter()
    }

    /// Adds an item whose key is not present.
    pub fn insert_new(&mut self, item: Box<[u8]>) {
        let h = self.hash(K::key(&item));
        let pos = self.items.len() as u32;
        self.items.push(item);
        let (items, state) = (&self.items, &self.state);
        self.index
            .insert_unique(h, pos, |&i| state.hash_one(K::key(&items[i as usize])));
    }

    /// Replaces the item at `pos` with one of the same key.
    pub fn replace_at(&mut self, pos: usize, item: Box<[u8]>) {
        self.items[pos] = item;
    }

    /// Removes the item whose key is `key`; the last item takes its position.
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<[u8]>> {
        let h = self.hash(key);
        let items = &self.items;
        let entry = self
            .index
            .find_entry(h, |&i| K::key(&items[i as usize]) == key)
            .ok()?;
        let pos = *entry.get() as usize;
        entry.remove();
        Some(self.remove_at_unindexed(pos))
    }

    /// Removes the item at `pos` (used by random pops).
    pub fn remove_at(&mut self, pos: usize) -> Box<[u8]> {
        let h = self.hash(K::key(&self.items[pos]));
        if let Ok(e) = self.index.find_entry(h, |&i| i as usize == pos) {
            e.remove();
        }
        self.remove_at_unindexed(pos)
    }

    /// Swap-removes the item at `pos` whose index entry is already gone.
    fn remove_at_unindexed(&mut self, pos: usize) -> Box<[u8]> {
        let last = self.items.len() - 1;
        let item = self.items.swap_remove(pos);
        if pos != last {
            let h = self.hash(K::key(&self.items[pos]));
            if let Some(slot) = self.index.find_mut(h, |&i| i as usize == last) {
                *slot = pos as u32;
            }
        }
        self.maybe_shrink();
        item
    }

    /// Gives memory back once the table is mostly empty (Redis resizes below 10% fill).
    fn maybe_shrink(&mut self) {
        let n = self.items.len();
        if n >= 64 && n * 8 < self.items.capacity() {
            self.items.shrink_to(n * 2);
            let (items, state) = (&self.items, &self.state);
            self.index
                .shrink_to(n * 2, |&i| state.hash_one(K::key(&items[i as usize])));
        }
    }

    /// One step of a scan: positions below `cursor` (0 = start) are left to visit. Returns
    /// the positions to visit now (at most `count`, downwards) and the next cursor (0 = done).
    pub fn scan_range(&self, cursor: u64, count: usize) -> (std::ops::Range<usize>, u64) {
        let top = if cursor == 0 {
            self.items.len()
        } else {
            (cursor.min(self.items.len() as u64)) as usize
        };
        let low = top.saturating_sub(count.max(1));
        (low..top, low as u64)
    }
}

/// A hash item: LEB128 field length, field, value.
pub struct FieldKey;

impl KeyOf for FieldKey {
    #[inline]
    fn key(item: &[u8]) -> &[u8] {
        split_pair(item).0
    }
}

#[inline]
fn split_pair(item: &[u8]) -> (&[u8], &[u8]) {
    let mut flen = 0usize;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let b = item[i];
        flen |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    item[i..].split_at(flen)
}

fn make_pair(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(listpack::entry_size(field) + value.len());
    let mut n = field.len();
    while n >= 0x80 {
        v.push((n as u8) | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
    v.extend_from_slice(field);
    v.extend_from_slice(value);
    v.into_boxed_slice()
}

pub type HashDict = Dict<FieldKey>;

/// Field/value pairs borrowed from a hash.
pub type Pairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A hash value. 16 bytes, so `Value` stays small.
#[derive(Clone, Debug)]
pub enum Hash {
    /// Field, value, field, value, ... in insertion order.
    Packed(Listpack),
    Table(Box<HashDict>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl PartialEq for Hash {
    /// Same fields with the same values, whatever the encodings.
    fn eq(&self, other: &Hash) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash::Packed(Listpack::new())
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Packed(lp) => lp.len() / 2,
            Hash::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Packed(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Packed(lp) => lp.find(field, 2).map(|off| {
                let next = lp.entry(off).1;
                lp.entry(next).0
            }),
            Hash::Table(d) => d.find(field).map(|p| split_pair(d.item(p)).1),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(lp) => lp.find(field, 2).is_some(),
            Hash::Table(d) => d.find(field).is_some(),
        }
    }

    /// Converts to a table before a write whose arguments have these lengths, if one is too
    /// long for a listpack or the listpack would grow past its safety size (Redis's
    /// `hashTypeTryConversion`).
    pub fn convert_for(&mut self, lens: impl Iterator<Item = usize>, lim: HashLimits) {
        let Hash::Packed(lp) = self else { return };
        let mut sum = 0usize;
        for len in lens {
            if len > lim.max_value {
                self.convert();
                return;
            }
            sum += len;
        }
        if !lp.safe_to_add(sum) {
            self.convert();
        }
    }

    /// Sets `field` to `value`; returns true if the field is new (Redis's `hashTypeSet`).
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: HashLimits) -> bool {
        if matches!(self, Hash::Packed(_))
            && (field.len() > lim.max_value || value.len() > lim.max_value)
        {
            self.convert();
        }
        match self {
            Hash::Packed(lp) => {
                let created = match lp.find(field, 2) {
                    Some(off) => {
                        let voff = lp.entry(off).1;
                        lp.replace(voff, value);
                        false
                    }
                    None => {
                        lp.push(&[field, value]);
                        true
                    }
                };
                if lp.len() / 2 > lim.max_entries {
                    self.convert();
                }
                created
            }
            Hash::Table(d) => match d.find(field) {
                Some(p) => {
                    d.replace_at(p, make_pair(field, value));
                    false
                }
                None => {
                    d.insert_new(make_pair(field, value));
                    true
                }
            },
        }
    }

    /// Removes `field`; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(lp) => match lp.find(field, 2) {
                Some(off) => {
                    lp.remove(off, 2);
                    true
                }
                None => false,
            },
            Hash::Table(d) => d.remove(field).is_some(),
        }
    }

    /// Turns a listpack into a table, keeping the order of the pairs.
    pub fn convert(&mut self) {
        let Hash::Packed(lp) = self else { return };
        let mut d = HashDict::with_capacity(lp.len() / 2);
        let mut it = lp.iter();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            d.insert_new(make_pair(f, v));
        }
        *self = Hash::Table(Box::new(d));
    }

    /// Field/value pairs in storage order.
    pub fn iter(&self) -> HashIter<'_> {
        match self {
            Hash::Packed(lp) => HashIter::Packed(lp.iter()),
            Hash::Table(d) => HashIter::Table(d.items()),
        }
    }

    /// Pairs addressable by position, for random picks (O(1) each once built).
    pub fn positions(&self) -> Positions<'_> {
        match self {
            Hash::Packed(_) => Positions::Pairs(self.iter().collect()),
            Hash::Table(d) => Positions::Table(d),
        }
    }

    /// The pair at position `pos` (O(n) for a listpack; use `positions` for many picks).
    pub fn nth(&self, pos: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Packed(_) => self.iter().nth(pos),
            Hash::Table(d) => (pos < d.len()).then(|| split_pair(d.item(pos))),
        }
    }

    /// One HSCAN step: the pairs to return and the next cursor. A listpack returns
    /// everything at once with cursor 0, as Redis does; a table walks positions downwards.
    pub fn scan(&self, cursor: u64, count: usize) -> (Pairs<'_>, u64) {
        match self {
            Hash::Packed(_) => (self.iter().collect(), 0),
            Hash::Table(d) => {
                let (range, next) = d.scan_range(cursor, count);
                (range.rev().map(|p| split_pair(d.item(p))).collect(), next)
            }
        }
    }
}

/// Iterates a hash's field/value pairs.
pub enum HashIter<'a> {
    Packed(listpack::Iter<'a>),
    Table(std::slice::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for HashIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            HashIter::Packed(it) => Some((it.next()?, it.next()?)),
            HashIter::Table(it) => it.next().map(|b| split_pair(b)),
        }
    }
}

/// Random access to a hash's pairs.
pub enum Positions<'a> {
    Pairs(Pairs<'a>),
    Table(&'a HashDict),
}

impl<'a> Positions<'a> {
    pub fn len(&self) -> usize {
        match self {
            Positions::Pairs(v) => v.len(),
            Positions::Table(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, pos: usize) -> (&'a [u8], &'a [u8]) {
        match self {
            Positions::Pairs(v) => v[pos],
            Positions::Table(d) => split_pair(d.item(pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Rng;
    use std::collections::HashMap;

    const LIM: HashLimits = HashLimits {
        max_entries: 16,
        max_value: 12,
    };

    fn field(rng: &mut Rng) -> Vec<u8> {
        // Mostly short fields from a small pool (so sets hit existing fields), sometimes long.
        if rng.below(20) == 0 {
            vec![b'L'; 13 + rng.below(10)]
        } else {
            format!("f{}", rng.below(40)).into_bytes()
        }
    }

    fn check(h: &Hash, model: &HashMap<Vec<u8>, Vec<u8>>) {
        assert_eq!(h.len(), model.len());
        let mut seen = 0;
        for (f, v) in h.iter() {
            assert_eq!(model.get(f).map(|v| &v[..]), Some(v));
            seen += 1;
        }
        assert_eq!(seen, model.len());
        for (f, v) in model {
            assert_eq!(h.get(f), Some(&v[..]));
        }
    }

    #[test]
    fn model_based_random_operations() {
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let mut h = Hash::new();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut was_table = false;
            for _ in 0..600 {
                let f = field(&mut rng);
                match rng.below(10) {
                    0..=5 => {
                        let v = if rng.below(30) == 0 {
                            vec![b'v'; 13]
                        } else {
                            format!("v{}", rng.next() % 1000).into_bytes()
                        };
                        let created = h.set(&f, &v, LIM);
                        assert_eq!(created, model.insert(f, v).is_none());
                    }
                    6..=8 => assert_eq!(h.remove(&f), model.remove(&f).is_some()),
                    _ => assert_eq!(h.get(&f), model.get(&f).map(|v| &v[..])),
                }
                // Conversion happens past the thresholds and is never undone.
                let long = model.iter().any(|(f, v)| f.len() > 12 || v.len() > 12);
                if model.len() > LIM.max_entries || long {
                    assert_eq!(h.encoding(), "hashtable");
                }
                if was_table {
                    assert_eq!(h.encoding(), "hashtable");
                }
                was_table = h.encoding() == "hashtable";
                check(&h, &model);
            }
            assert!(was_table, "seed {seed} never crossed the threshold");
        }
    }

    #[test]
    fn convert_keeps_order_and_listpack_until_threshold() {
        let mut h = Hash::new();
        for i in 0..16 {
            h.set(format!("f{i}").as_bytes(), b"v", LIM);
        }
        assert_eq!(h.encoding(), "listpack");
        let before: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
        h.set(b"f16", b"v", LIM);
        assert_eq!(h.encoding(), "hashtable");
        let after: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).take(16).collect();
        assert_eq!(before, after);
        let mut g = Hash::new();
        g.convert_for([1usize, 13].into_iter(), LIM);
        assert_eq!(g.encoding(), "hashtable");
    }

    #[test]
    fn table_scan_never_misses_stable_fields() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let mut h = Hash::new();
            for i in 0..300 {
                h.set(format!("s{i}").as_bytes(), b"x", LIM);
            }
            // Fields s0..s99 stay for the whole scan; others come and go meanwhile.
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            let mut extra = 0;
            loop {
                let (pairs, next) = h.scan(cursor, 1 + rng.below(20));
                for (f, _) in pairs {
                    seen.insert(f.to_vec());
                }
                for _ in 0..5 {
                    let i = 100 + rng.below(200);
                    if rng.below(2) == 0 {
                        h.remove(format!("s{i}").as_bytes());
                    } else {
                        h.set(format!("n{extra}").as_bytes(), b"y", LIM);
                        extra += 1;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            for i in 0..100 {
                assert!(
                    seen.contains(format!("s{i}").as_bytes()),
                    "seed {seed}: s{i} missed"
                );
            }
        }
    }

    #[test]
    fn dict_remove_at_keeps_index_consistent() {
        let mut d = HashDict::default();
        for i in 0..200 {
            d.insert_new(make_pair(format!("k{i}").as_bytes(), b"v"));
        }
        let mut rng = Rng::new(7);
        while !d.is_empty() {
            let pos = rng.below(d.len());
            let item = d.remove_at(pos);
            assert!(d.find(split_pair(&item).0).is_none());
            for p in 0..d.len() {
                assert_eq!(d.find(FieldKey::key(d.item(p))), Some(p));
            }
        }
    }

    #[test]
    fn equality_ignores_encoding() {
        let mut a = Hash::new();
        let mut b = Hash::new();
        a.set(b"x", b"1", LIM);
        a.set(b"y", b"2", LIM);
        b.set(b"y", b"2", LIM);
        b.set(b"x", b"1", LIM);
        b.convert();
        assert_eq!(a, b);
        b.set(b"x", b"3", LIM);
        assert_ne!(a, b);
    }
}
