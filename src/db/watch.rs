//! WATCH registrations of one database on one shard: which clients watch which keys, and the
//! rules (Redis 7.0's multi.c) for when a change to a key makes their EXEC fail.
//!
//! A client's [`Watcher`] is shared with every shard holding one of its keys; a write only
//! sets its `dirty` flag, so watching a key on another core costs the write path nothing but
//! the check that this database has watched keys at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One client's WATCH state, shared by the shards holding its watched keys.
#[derive(Default, Debug)]
pub struct Watcher {
    dirty: AtomicBool,
}

impl Watcher {
    /// Whether a watched key changed since WATCH (Redis's `CLIENT_DIRTY_CAS`).
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub fn set_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub fn clear(&self) {
        self.dirty.store(false, Ordering::Release);
    }
}

/// A client watching a key.
struct Registration {
    watcher: Arc<Watcher>,
    /// The key was logically expired (but not yet deleted) when WATCH ran: its deletion is no
    /// change, and EXEC does not count it as expired since (Redis's `watchedKey.expired`).
    expired: bool,
}

/// The watched keys of one database on one shard.
#[derive(Default)]
pub struct Watches {
    keys: hashbrown::HashMap<Box<[u8]>, Vec<Registration>>,
}

impl Watches {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    /// Registers `watcher` on `key`, once; `expired` tells whether the key is expired now.
    pub fn add(&mut self, key: &[u8], watcher: &Arc<Watcher>, expired: bool) {
        let regs = self.keys.entry_ref(key).or_default();
        if !regs.iter().any(|r| Arc::ptr_eq(&r.watcher, watcher)) {
            regs.push(Registration {
                watcher: watcher.clone(),
                expired,
            });
        }
    }

    pub fn remove(&mut self, key: &[u8], watcher: &Arc<Watcher>) {
        if let Some(regs) = self.keys.get_mut(key) {
            regs.retain(|r| !Arc::ptr_eq(&r.watcher, watcher));
            if regs.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// `key` was written or deleted (`touchWatchedKey`); `exists` tells whether it is in the
    /// keyspace now.
    pub fn touch(&mut self, key: &[u8], exists: bool) {
        let Some(regs) = self.keys.get_mut(key) else {
            return;
        };
        for r in regs {
            if r.expired {
                // Deleting a key that was already expired at WATCH is no logical change.
                if !exists {
                    r.expired = false;
                }
                continue;
            }
            r.watcher.set_dirty();
        }
    }

    /// The database was emptied (FLUSHDB, FLUSHALL) or swapped with another (SWAPDB):
    /// `touchAllWatchedKeysInDb`. `existed(key)` tells whether the key was in the emptied
    /// database; `replacement(key)` whether it is in the one replacing it, and if so whether
    /// expired there.
    pub fn touch_all(
        &mut self,
        existed: impl Fn(&[u8]) -> bool,
        replacement: impl Fn(&[u8]) -> Option<bool>,
    ) {
        for (key, regs) in self.keys.iter_mut() {
            let in_emptied = existed(key);
            let replaced = replacement(key);
            if !in_emptied && replaced.is_none() {
                continue;
            }
            for r in regs.iter_mut() {
                if r.expired {
                    match replaced {
                        // Expired key now deleted: no logical change.
                        None => {
                            r.expired = false;
                            continue;
                        }
                        // Expired key replaced by an expired key.
                        Some(true) => continue,
                        Some(false) => {}
                    }
                } else if !in_emptied && replaced == Some(true) {
                    // A missing key replaced by an expired one.
                    r.expired = true;
                    continue;
                }
                r.watcher.set_dirty();
            }
        }
    }

    /// Whether `watcher` watches `key` and the key was live at WATCH (EXEC then fails if it
    /// has expired since: `isWatchedKeyExpired`).
    pub fn watched_live(&self, key: &[u8], watcher: &Arc<Watcher>) -> bool {
        self.keys.get(key).is_some_and(|regs| {
            regs.iter()
                .any(|r| Arc::ptr_eq(&r.watcher, watcher) && !r.expired)
        })
    }

    /// Every watched key, for SWAPDB, which moves the registrations' meaning with the data.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.keys().map(|k| &**k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_marks_watchers_but_not_of_keys_expired_at_watch() {
        let (a, b) = (Arc::new(Watcher::default()), Arc::new(Watcher::default()));
        let mut w = Watches::default();
        w.add(b"k", &a, false);
        w.add(b"k", &a, false);
        w.add(b"old", &b, true);
        w.touch(b"other", true);
        assert!(!a.is_dirty());
        w.touch(b"k", true);
        assert!(a.is_dirty());
        // The expired key is deleted: no change, and the flag is cleared...
        w.touch(b"old", false);
        assert!(!b.is_dirty());
        assert!(w.watched_live(b"old", &b));
        // ... so a later write counts.
        w.touch(b"old", true);
        assert!(b.is_dirty());
        w.remove(b"k", &a);
        w.remove(b"old", &b);
        assert!(w.is_empty());
    }

    #[test]
    fn touch_all_follows_swapdb_rules() {
        let a = Arc::new(Watcher::default());
        let mut w = Watches::default();
        w.add(b"gone", &a, false);
        // Neither in the emptied db nor in its replacement: untouched.
        w.touch_all(|_| false, |_| None);
        assert!(!a.is_dirty());
        // Missing here, expired in the replacement: now counts as expired at WATCH.
        w.touch_all(|_| false, |_| Some(true));
        assert!(!a.is_dirty());
        assert!(!w.watched_live(b"gone", &a));
        // Still expired after the next swap: nothing.
        w.touch_all(|_| true, |_| Some(true));
        assert!(!a.is_dirty());
        // Replaced by a live key: dirty.
        w.touch_all(|_| true, |_| Some(false));
        assert!(a.is_dirty());
    }
}
