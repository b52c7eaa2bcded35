//! One hash slot's keys: an open-addressing table of pointers to nodes that each hold one
//! key and its entry in a single allocation.
//!
//! Why pointers: a shard keeps one table per slot it owns, so tables are small and their fill
//! swings between 44% and 87% as they double. Storing 8-byte pointers instead of whole
//! (key, entry) pairs makes the empty buckets cheap. A node is the 32-byte entry, the key's
//! length and the key's bytes, allocated to fit: with keys up to 15 bytes (`k:123456`,
//! memtier's `memtier-1234567`) that is mimalloc's 48-byte class, where a fixed-size node
//! with room for longer keys inline took the 64-byte one.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::hash::BuildHasher;
use std::ptr::NonNull;
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::Entry;
use crate::types::Value;

/// A length byte that says the real length follows, as a `usize`.
const LONG_KEY: u8 = u8::MAX;

/// One key and its entry: an `Entry`, then the key's length (one byte below `LONG_KEY`, else
/// `LONG_KEY` and the length as an unaligned `usize`), then the key's bytes. Owns its
/// allocation; the table moves only the pointer.
struct Node(NonNull<Entry>);

// SAFETY: a node is owned by exactly one table, like a `Box<(Entry, [u8])>` would be, and
// `Entry` is `Send`.
unsafe impl Send for Node {}

const ENTRY_SIZE: usize = std::mem::size_of::<Entry>();

impl Node {
    fn new(key: &[u8], entry: Entry) -> Node {
        let prefix = Node::prefix_len(key.len());
        let layout = Node::layout(key.len());
        // SAFETY: `layout` has a non-zero size (at least the entry). The writes below stay
        // within it: the entry at 0, the length prefix after it, the key after that.
        unsafe {
            let p = alloc(layout);
            if p.is_null() {
                handle_alloc_error(layout);
            }
            std::ptr::write(p.cast::<Entry>(), entry);
            let len_at = p.add(ENTRY_SIZE);
            if prefix == 1 {
                *len_at = key.len() as u8;
            } else {
                *len_at = LONG_KEY;
                std::ptr::write_unaligned(len_at.add(1).cast::<usize>(), key.len());
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), len_at.add(prefix), key.len());
            Node(NonNull::new_unchecked(p.cast::<Entry>()))
        }
    }

    #[inline]
    fn prefix_len(key_len: usize) -> usize {
        if key_len < LONG_KEY as usize {
            1
        } else {
            1 + std::mem::size_of::<usize>()
        }
    }

    fn layout(key_len: usize) -> Layout {
        let size = ENTRY_SIZE + Node::prefix_len(key_len) + key_len;
        // A key is at most a request's bulk string, far below `isize::MAX`.
        Layout::from_size_align(size, std::mem::align_of::<Entry>()).expect("node size")
    }

    #[inline]
    fn key(&self) -> &[u8] {
        // SAFETY: `new` wrote the length prefix and the key's bytes after the entry.
        unsafe {
            let len_at = self.0.as_ptr().cast::<u8>().add(ENTRY_SIZE);
            if *len_at != LONG_KEY {
                std::slice::from_raw_parts(len_at.add(1), *len_at as usize)
            } else {
                let len = std::ptr::read_unaligned(len_at.add(1).cast::<usize>());
                std::slice::from_raw_parts(len_at.add(Node::prefix_len(len)), len)
            }
        }
    }

    #[inline]
    fn entry(&self) -> &Entry {
        // SAFETY: the entry lives at the start of the allocation, initialized by `new`.
        unsafe { self.0.as_ref() }
    }

    /// The key and the entry at once (they do not overlap).
    #[inline]
    fn key_and_entry_mut(&mut self) -> (&[u8], &mut Entry) {
        let key: *const [u8] = self.key();
        // SAFETY: the key's bytes come after the entry's, so the two borrows are disjoint.
        unsafe { (&*key, self.0.as_mut()) }
    }

    /// Frees the node and hands back its entry.
    fn into_entry(self) -> Entry {
        let layout = Node::layout(self.key().len());
        let node = std::mem::ManuallyDrop::new(self);
        // SAFETY: the entry is moved out exactly once, then the allocation made with this
        // layout is freed without dropping the entry again.
        unsafe {
            let entry = std::ptr::read(node.0.as_ptr());
            dealloc(node.0.as_ptr().cast::<u8>(), layout);
            entry
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let layout = Node::layout(self.key().len());
        // SAFETY: the entry was initialized by `new` and is dropped once, then its
        // allocation is freed with the layout it was made with.
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr());
            dealloc(self.0.as_ptr().cast::<u8>(), layout);
        }
    }
}

#[derive(Default)]
pub struct SlotTable {
    nodes: HashTable<Node>,
}

/// One hasher for every table, seeded at random once per process (as Redis seeds SipHash),
/// so a client cannot pick keys that collide.
fn hasher() -> &'static DefaultHashBuilder {
    static HASHER: OnceLock<DefaultHashBuilder> = OnceLock::new();
    HASHER.get_or_init(DefaultHashBuilder::default)
}

#[inline]
fn hash(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

fn node_hash(n: &Node) -> u64 {
    hash(n.key())
}

impl SlotTable {
    pub fn new() -> SlotTable {
        SlotTable::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.nodes
            .find(hash(key), |n| n.key() == key)
            .map(Node::entry)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.nodes
            .find_mut(hash(key), |n| n.key() == key)
            .map(|n| n.key_and_entry_mut().1)
    }

    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key` (a new entry stamped `lru`, or the existing one with its TTL
    /// and access stamp kept); one lookup either way. The flag tells whether it was new.
    #[inline]
    pub fn upsert(&mut self, key: &[u8], value: Value, lru: u32) -> (&mut Entry, bool) {
        match self.nodes.entry(hash(key), |n| n.key() == key, node_hash) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let e = o.into_mut().key_and_entry_mut().1;
                e.value = value;
                (e, false)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                let node = Node::new(key, Entry::new(value, lru));
                (v.insert(node).into_mut().key_and_entry_mut().1, true)
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        match self.nodes.find_entry(hash(key), |n| n.key() == key) {
            Ok(found) => Some(found.remove().0.into_entry()),
            Err(_) => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.nodes.iter().map(|n| (n.key(), n.entry()))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut Entry)> {
        self.nodes.iter_mut().map(Node::key_and_entry_mut)
    }
}

impl<'a> IntoIterator for &'a SlotTable {
    type Item = (&'a [u8], &'a Entry);
    type IntoIter = Box<dyn Iterator<Item = (&'a [u8], &'a Entry)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StrValue;

    fn value(v: &str) -> Value {
        Value::Str(StrValue::from_bytes(v.as_bytes()))
    }

    #[test]
    fn nodes_are_sized_to_their_key() {
        // Every key pays for a node: the 32-byte entry, its length and its bytes.
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert_eq!(std::mem::size_of::<Node>(), 8);
        assert_eq!(Node::layout(15).size(), 48);
        assert_eq!(Node::layout(254).size(), 32 + 1 + 254);
        assert_eq!(Node::layout(255).size(), 32 + 9 + 255);
    }

    #[test]
    fn keys_of_every_length_round_trip() {
        let mut t = SlotTable::new();
        let keys: Vec<Vec<u8>> = [0, 1, 15, 16, 254, 255, 256, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(t.upsert(k, value(&i.to_string()), 1).1);
        }
        for (i, k) in keys.iter().enumerate() {
            let e = t.get(k).expect("stored key");
            assert_eq!(e.value, value(&i.to_string()), "key of {} bytes", k.len());
        }
        let mut seen: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
        seen.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        for (k, e) in t.iter_mut() {
            e.value = value(&k.len().to_string());
        }
        for k in &keys {
            let e = t.remove(k).expect("stored key");
            assert_eq!(e.value, value(&k.len().to_string()));
        }
        assert!(t.is_empty());
    }

    #[test]
    fn insert_find_remove() {
        let mut t = SlotTable::new();
        for i in 0..1000 {
            let k = format!("key:{i}");
            let (_, inserted) = t.upsert(k.as_bytes(), value("v"), 1);
            assert!(inserted);
        }
        let (e, inserted) = t.upsert(b"key:5", value("w"), 2);
        assert!(!inserted && e.lru == 1);
        assert_eq!(t.get(b"key:5").map(|e| e.value.clone()), Some(value("w")));
        assert_eq!(t.len(), 1000);
        assert!(t.contains_key(b"key:999") && !t.contains_key(b"key:1000"));
        for i in (0..1000).step_by(2) {
            assert!(t.remove(format!("key:{i}").as_bytes()).is_some());
        }
        assert!(t.remove(b"key:0").is_none());
        assert_eq!(t.len(), 500);
        assert_eq!(t.iter().count(), 500);
        let odd = |k: &[u8]| k.last().is_some_and(|d| (d - b'0') % 2 == 1);
        assert!(t.iter().all(|(k, _)| odd(k)));
    }
}
