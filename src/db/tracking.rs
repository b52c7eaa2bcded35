//! One shard's client-side caching table: which clients may cache which of its keys (the messages are `shard::tracking`'s).

use hashbrown::HashMap;

/// A client that may cache a key: its id and the core its connection lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub id: u64,
    pub home: u32,
}

/// The tracking table of one shard's keys.
#[derive(Default)]
pub struct Table {
    keys: HashMap<Box<[u8]>, Vec<Reader>>,
    /// Reader entries over all keys (INFO `tracking_total_items`).
    items: usize,
    /// Some client is in BCAST mode: every change to this shard's keys is reported.
    pub bcast: bool,
}

impl Table {
    /// Remembers that `reader` may cache `key`.
    pub fn remember(&mut self, key: &[u8], reader: Reader) {
        let readers = self.keys.entry_ref(key).or_default();
        if !readers.iter().any(|r| r.id == reader.id) {
            readers.push(reader);
            self.items += 1;
        }
    }

    /// Forgets `key`, returning who may have cached it.
    pub fn take(&mut self, key: &[u8]) -> Option<Vec<Reader>> {
        let readers = self.keys.remove(key)?;
        self.items -= readers.len();
        Some(readers)
    }

    /// Forgets every key (a flush: every client gets a null invalidation instead).
    pub fn clear(&mut self) {
        self.keys = HashMap::new();
        self.items = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether changes to this shard's keys must be reported (`Keyspace::tracked`).
    pub fn wants_changes(&self) -> bool {
        self.bcast || !self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn items(&self) -> usize {
        self.items
    }

    /// Some tracked key (for `tracking-table-max-keys`: which key goes does not matter).
    pub fn any_key(&self) -> Option<Box<[u8]>> {
        self.keys.keys().next().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counts_keys_and_items() {
        let mut t = Table::default();
        let a = Reader { id: 1, home: 0 };
        let b = Reader { id: 2, home: 1 };
        t.remember(b"k", a);
        t.remember(b"k", a);
        t.remember(b"k", b);
        t.remember(b"j", a);
        assert_eq!((t.len(), t.items()), (2, 3));
        assert_eq!(t.take(b"k"), Some(vec![a, b]));
        assert_eq!((t.len(), t.items()), (1, 1));
        assert_eq!(t.take(b"k"), None);
        t.clear();
        assert!(t.is_empty());
    }
}
