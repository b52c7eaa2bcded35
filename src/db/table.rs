//! One hash slot's keys: an open-addressing table of pointers to (key, entry) nodes.
//!
//! Why pointers: a shard keeps one table per slot it owns, so tables are small and their fill
//! swings between 44% and 87% as they double. Storing 8-byte pointers instead of whole
//! (key, entry) pairs makes the empty buckets cheap, and a key of up to 22 bytes costs one
//! 56-byte node allocation (key inline) plus about 12 bytes of table: less than Redis's dict
//! entry, object header and sds key.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::Entry;
use crate::types::Value;

struct Node {
    key: NodeKey,
    entry: Entry,
}

/// Keys up to this long live inside their node.
const INLINE_KEY: usize = 22;

/// A key as its node holds it: a short one (most keys: ids, `user:1234`, memtier's
/// `memtier-1234567`) inline, so a lookup reads one allocation instead of two (the key's
/// own was a second cache miss on every hit); a longer one on the heap. 24 bytes either way.
enum NodeKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl NodeKey {
    fn new(key: &[u8]) -> NodeKey {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            NodeKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            NodeKey::Heap(key.into())
        }
    }
}

impl std::ops::Deref for NodeKey {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            NodeKey::Inline { len, bytes } => &bytes[..*len as usize],
            NodeKey::Heap(key) => key,
        }
    }
}

#[derive(Default)]
pub struct SlotTable {
    nodes: HashTable<Box<Node>>,
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

fn node_hash(n: &Box<Node>) -> u64 {
    hash(&n.key)
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
            .find(hash(key), |n| &*n.key == key)
            .map(|n| &n.entry)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.nodes
            .find_mut(hash(key), |n| &*n.key == key)
            .map(|n| &mut n.entry)
    }

    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key` (a new entry stamped `lru`, or the existing one with its TTL
    /// and access stamp kept); one lookup either way. The flag tells whether it was new.
    #[inline]
    pub fn upsert(&mut self, key: &[u8], value: Value, lru: u32) -> (&mut Entry, bool) {
        match self.nodes.entry(hash(key), |n| &*n.key == key, node_hash) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let e = &mut o.into_mut().entry;
                e.value = value;
                (e, false)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                let node = Box::new(Node {
                    key: NodeKey::new(key),
                    entry: Entry::new(value, lru),
                });
                (&mut v.insert(node).into_mut().entry, true)
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        match self.nodes.find_entry(hash(key), |n| &*n.key == key) {
            Ok(found) => Some(found.remove().0.entry),
            Err(_) => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.nodes.iter().map(|n| (&*n.key, &n.entry))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut Entry)> {
        self.nodes.iter_mut().map(|n| {
            let n = &mut **n;
            (&*n.key, &mut n.entry)
        })
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
    fn nodes_stay_small() {
        // Every key pays for a node: a 24-byte key (inline up to 22 bytes) and a 32-byte
        // entry.
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        assert_eq!(std::mem::size_of::<NodeKey>(), 24);
        assert_eq!(std::mem::size_of::<Node>(), 56);
    }

    #[test]
    fn short_keys_inline_long_ones_on_the_heap() {
        let mut t = SlotTable::new();
        let keys: Vec<Vec<u8>> = (0..40).map(|n| vec![b'k'; n]).collect();
        for k in &keys {
            assert!(t.upsert(k, value("v"), 1).1);
        }
        for k in &keys {
            assert!(t.contains_key(k), "{}", k.len());
            let inline = t
                .nodes
                .find(hash(k), |n| *n.key == k[..])
                .is_some_and(|n| matches!(n.key, NodeKey::Inline { .. }));
            assert_eq!(inline, k.len() <= INLINE_KEY);
        }
        let mut seen: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
        seen.sort();
        assert_eq!(seen, keys);
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
