//! The database a command works on, as one keyspace: the keyspaces of the selected database
//! on every shard the command holds, each key routed to its owner's. A command on one shard
//! sees that shard's data alone (the usual case, routed without hashing); a command whose
//! keys span shards sees the data it borrowed from each.

use super::{Entry, ExpireFlags, ExpireOutcome, Keyspace, ShardData, SlotTable, NO_EXPIRE};
use crate::error::Error;
use crate::slot::key_slot;
use crate::types::{Typed, Value};

/// The shards' data a command holds.
pub enum Parts<'a> {
    /// One shard's (the owner of every key of the command).
    One(&'a mut ShardData),
    /// Indexed by shard number; `None` for a shard the command does not hold.
    Many(&'a mut [Option<Box<ShardData>>]),
}

impl Parts<'_> {
    pub fn reborrow(&mut self) -> Parts<'_> {
        match self {
            Parts::One(d) => Parts::One(d),
            Parts::Many(ds) => Parts::Many(ds),
        }
    }

    /// The data of every shard held, in shard order.
    pub fn each(&mut self) -> impl Iterator<Item = &mut ShardData> {
        let (one, many) = match self {
            Parts::One(d) => (Some(&mut **d), None),
            Parts::Many(ds) => (None, Some(ds.iter_mut().flatten().map(|d| &mut **d))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    pub fn each_ref(&self) -> impl Iterator<Item = &ShardData> {
        let (one, many) = match self {
            Parts::One(d) => (Some(&**d), None),
            Parts::Many(ds) => (None, Some(ds.iter().flatten().map(|d| &**d))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// The data of the shard owning `key`.
    #[inline]
    pub fn owner_of(&mut self, key: &[u8]) -> &mut ShardData {
        match self {
            Parts::One(d) => d,
            Parts::Many(ds) => {
                let n = ds.len();
                ds[key_slot(key) as usize % n]
                    .as_deref_mut()
                    .expect("a key of a shard the command does not hold")
            }
        }
    }

    #[inline]
    fn owner_ref(&self, key: &[u8]) -> &ShardData {
        match self {
            Parts::One(d) => d,
            Parts::Many(ds) => ds[key_slot(key) as usize % ds.len()]
                .as_deref()
                .expect("a key of a shard the command does not hold"),
        }
    }

    /// The data of the shard owning `slot`, if held.
    fn slot_owner(&self, slot: u16) -> Option<&ShardData> {
        match self {
            Parts::One(d) => Some(d),
            Parts::Many(ds) => ds[slot as usize % ds.len()].as_deref(),
        }
    }
}

/// Database `index` across the shards of `parts`. Its methods are `Keyspace`'s, routed by key.
pub struct Db<'a> {
    parts: Parts<'a>,
    index: usize,
}

impl<'a> Db<'a> {
    pub fn new(parts: Parts<'a>, index: usize) -> Db<'a> {
        Db { parts, index }
    }

    /// The database number.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Another database on the same shards (MOVE, COPY ... DB).
    pub fn at(&mut self, index: usize) -> Db<'_> {
        Db {
            parts: self.parts.reborrow(),
            index,
        }
    }

    /// How many databases there are.
    pub fn databases(&self) -> usize {
        self.parts.each_ref().next().map_or(1, ShardData::databases)
    }

    /// The keyspace holding `key`.
    #[inline]
    pub fn of(&mut self, key: &[u8]) -> &mut Keyspace {
        let index = self.index;
        self.parts.owner_of(key).db(index)
    }

    #[inline]
    fn of_ref(&self, key: &[u8]) -> &Keyspace {
        self.parts.owner_ref(key).db_ref(self.index)
    }

    /// This database's keyspace on every shard held.
    pub fn each(&mut self) -> impl Iterator<Item = &mut Keyspace> {
        let index = self.index;
        self.parts.each().map(move |d| d.db(index))
    }

    /// This database's keyspace on shard `id`, if held.
    pub fn on_shard(&mut self, id: usize) -> Option<&mut Keyspace> {
        let index = self.index;
        self.parts.each().find(|d| d.id == id).map(|d| d.db(index))
    }

    pub fn each_ref(&self) -> impl Iterator<Item = &Keyspace> {
        let index = self.index;
        self.parts.each_ref().map(move |d| d.db_ref(index))
    }

    /// The shards' data itself (every database), for commands that work across databases.
    pub fn parts(&mut self) -> &mut Parts<'a> {
        &mut self.parts
    }

    #[inline]
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.of(key).get(key, now)
    }

    #[inline]
    pub fn peek(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.of(key).peek(key, now)
    }

    #[inline]
    pub fn read(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.of(key).read(key, now)
    }

    #[inline]
    pub fn read_untouched(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.of(key).read_untouched(key, now)
    }

    #[inline]
    pub fn read_quietly(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.of(key).read_quietly(key, now)
    }

    pub fn exists(&mut self, key: &[u8], now: i64) -> bool {
        self.of(key).exists(key, now)
    }

    #[inline]
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64, now: i64) {
        self.of(key).set(key, value, expire_at, now)
    }

    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value, now: i64) {
        self.of(key).set_keep_ttl(key, value, now)
    }

    pub fn set_expire(&mut self, key: &[u8], expire_at: i64) -> bool {
        self.of(key).set_expire(key, expire_at)
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.of(key).remove(key)
    }

    pub fn take(&mut self, key: &[u8], now: i64) -> Option<(Value, i64)> {
        self.of(key).take(key, now)
    }

    pub fn expire_with(
        &mut self,
        key: &[u8],
        when: i64,
        flags: ExpireFlags,
        now: i64,
    ) -> ExpireOutcome {
        self.of(key).expire_with(key, when, flags, now)
    }

    pub fn persist(&mut self, key: &[u8], now: i64) -> bool {
        self.of(key).persist(key, now)
    }

    pub fn delete(&mut self, key: &[u8], now: i64) -> bool {
        self.of(key).delete(key, now)
    }

    /// The `T` at `key` for a read (counts a keyspace hit or miss): `None` if absent,
    /// WRONGTYPE if it holds another type.
    #[inline]
    pub fn read_as<T: Typed>(&mut self, key: &[u8], now: i64) -> Result<Option<&T>, Error> {
        self.read_as_mut(key, now).map(|v| v.map(|v| &*v))
    }

    /// `read_as` for a read that updates the value's own bookkeeping (a stream's entries
    /// read count), still looked up as a read.
    #[inline]
    pub fn read_as_mut<T: Typed>(&mut self, key: &[u8], now: i64) -> Result<Option<&mut T>, Error> {
        match self.read(key, now) {
            None => Ok(None),
            Some(e) => T::of(&mut e.value).map(Some).ok_or(Error::WrongType),
        }
    }

    /// The `T` at `key` for a write (a lookup for writing, no hit or miss counted).
    #[inline]
    pub fn write_as<T: Typed>(&mut self, key: &[u8], now: i64) -> Result<Option<&mut T>, Error> {
        match self.get(key, now) {
            None => Ok(None),
            Some(e) => T::of(&mut e.value).map(Some).ok_or(Error::WrongType),
        }
    }

    /// The expiry of `key` as stored (`NO_EXPIRE` for none or a missing key), without an
    /// expiry check: callers have just looked the key up.
    pub fn expire_at(&self, key: &[u8]) -> i64 {
        let ks = self.of_ref(key);
        ks.peek_expire(key).unwrap_or(NO_EXPIRE)
    }

    /// The table of `slot` on its shard, if held (for borrowing several values at once).
    pub fn slot_table(&self, slot: u16) -> Option<&SlotTable> {
        self.parts
            .slot_owner(slot)?
            .db_ref(self.index)
            .slot_table(slot)
    }

    /// A pseudo-random number (for the random-member commands).
    pub fn random_u64(&mut self) -> u64 {
        let index = self.index;
        match self.parts.each().next() {
            Some(d) => d.db(index).random_u64(),
            None => 0,
        }
    }

    /// Keys in this database across the shards held.
    pub fn len(&self) -> usize {
        self.each_ref().map(Keyspace::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
