//! The cross-shard transaction: a command whose keys span shards borrows the data of every
//! shard involved, runs on the coordinating core over all of it at once (so it is atomic,
//! and written exactly like a single-shard command), and gives the data back.
//!
//! The data is taken in ascending shard order, one shard after the other, so two
//! coordinators can never wait for each other. A shard whose data is away serves what does
//! not need it (Pub/Sub, settings, client lists) and queues the rest in arrival order (see
//! the `shard` module doc). The data always goes home: `Held` returns what it holds when
//! dropped (a panic or a client gone mid-command included), and a loan whose borrower went
//! away before it arrived is sent back by `Loan`'s destructor.

use std::rc::Rc;

use super::Shard;
use crate::db::{Parts, ShardData};

/// A set of shard numbers, ascending and without repeats. One shard (the usual case) is
/// held inline, so routing a single-key command allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ShardSet {
    #[default]
    Empty,
    One(usize),
    Many(Vec<usize>),
}

impl ShardSet {
    pub fn new() -> ShardSet {
        ShardSet::Empty
    }

    pub fn all(nshards: usize) -> ShardSet {
        match nshards {
            0 => ShardSet::Empty,
            1 => ShardSet::One(0),
            n => ShardSet::Many((0..n).collect()),
        }
    }

    pub fn one(shard: usize) -> ShardSet {
        ShardSet::One(shard)
    }

    #[inline]
    pub fn insert(&mut self, shard: usize) {
        match self {
            ShardSet::Empty => *self = ShardSet::One(shard),
            ShardSet::One(s) if *s == shard => {}
            ShardSet::One(s) => *self = ShardSet::Many(vec![shard.min(*s), shard.max(*s)]),
            ShardSet::Many(v) => {
                if let Err(at) = v.binary_search(&shard) {
                    v.insert(at, shard);
                }
            }
        }
    }

    pub fn extend(&mut self, other: &ShardSet) {
        for s in other.iter() {
            self.insert(s);
        }
    }

    pub fn as_slice(&self) -> &[usize] {
        match self {
            ShardSet::Empty => &[],
            ShardSet::One(s) => std::slice::from_ref(s),
            ShardSet::Many(v) => v,
        }
    }

    pub fn contains(&self, shard: usize) -> bool {
        self.as_slice().binary_search(&shard).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.as_slice().iter().copied()
    }

    /// The only shard, if there is exactly one.
    #[inline]
    pub fn single(&self) -> Option<usize> {
        match self {
            ShardSet::One(s) => Some(*s),
            _ => None,
        }
    }
}

/// A shard's data on its way to a borrower. If it is dropped before `Held` takes it (the
/// borrower went away meanwhile), it goes home by itself.
pub struct Loan {
    data: Option<Box<ShardData>>,
}

impl Loan {
    fn take(mut self) -> Box<ShardData> {
        self.data.take().expect("a loan holds its data until taken")
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        if let Some(data) = self.data.take() {
            send_home(data);
        }
    }
}

/// Returns borrowed data to its shard, from whatever core this runs on.
fn send_home(data: Box<ShardData>) {
    let Some(here) = Shard::current() else {
        // No executor on this thread: only at shutdown, when nothing needs the data.
        return;
    };
    let home = data.id;
    if home == here.id {
        here.data_returned(data);
    } else {
        glommio::spawn_local(async move {
            here.post(home, false, move |s| s.data_returned(data)).await;
        })
        .detach();
    }
}

/// The data of the shards a command holds, by shard number.
pub struct Held {
    shard: Rc<Shard>,
    data: Vec<Option<Box<ShardData>>>,
    set: ShardSet,
}

impl Held {
    /// Borrows the data of `shards` for a command running on `shard`, in ascending order.
    ///
    /// A shard with keys a MIGRATE has in flight is not kept: everything is given back and
    /// taken again once the move has ended, so an atomic command never changes a key whose
    /// copy is on its way (a held shard cannot start a new move, so the check stays true).
    pub async fn acquire(shard: &Rc<Shard>, shards: &ShardSet) -> Held {
        loop {
            let mut held = Held {
                shard: shard.clone(),
                data: (0..shard.nshards).map(|_| None).collect(),
                set: shards.clone(),
            };
            for to in shards.iter() {
                let data = if to == shard.id {
                    shard.data_home_to_lend().await;
                    shard.lend_here()
                } else {
                    shard
                        .call_lend(to)
                        .await
                        .map(Loan::take)
                        .expect("a shard lends its data once it is home")
                };
                held.data[to] = Some(data);
            }
            if held.data.iter().flatten().all(|d| d.in_flight.is_empty()) {
                return held;
            }
            drop(held);
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// The shards held.
    pub fn shards(&self) -> &ShardSet {
        &self.set
    }

    /// Shard `id`'s data, if held.
    pub fn data_of(&mut self, id: usize) -> Option<&mut ShardData> {
        self.data.get_mut(id)?.as_deref_mut()
    }

    /// The held data, for a command's `Db`.
    pub fn parts(&mut self) -> Parts<'_> {
        Parts::Many(&mut self.data)
    }

    /// The highest journal clock among the held data (see `journal`).
    pub fn clock(&self) -> u64 {
        self.data
            .iter()
            .flatten()
            .map(|d| d.clock)
            .max()
            .unwrap_or(0)
    }

    /// Moves every held shard's clock to `stamp`, the stamp of a unit that wrote through it.
    pub fn set_clock(&mut self, stamp: u64) {
        for d in self.data.iter_mut().flatten() {
            d.clock = stamp;
        }
    }

    /// Gives every shard its data back.
    pub fn release(self) {
        drop(self)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Remote shards first: the local one may run queued work at once when its data
        // comes back, and that work may want the other shards too.
        let mut local = None;
        for data in self.data.iter_mut().filter_map(Option::take) {
            if data.id == self.shard.id {
                local = Some(data);
            } else {
                let (me, home) = (self.shard.clone(), data.id);
                glommio::spawn_local(async move {
                    me.post(home, false, move |s| s.data_returned(data)).await;
                })
                .detach();
            }
        }
        if let Some(data) = local {
            self.shard.data_returned(data);
        }
    }
}

impl Shard {
    /// Takes this shard's own data for a command coordinated here (it must be home).
    fn lend_here(&self) -> Box<ShardData> {
        // A local task took it: the local turn (if any) is over.
        self.end_local_turn();
        self.data
            .borrow_mut()
            .take()
            .expect("the data is home when lent")
    }

    /// Asks shard `to` for its data, which it hands over once home and unclaimed.
    async fn call_lend(self: &Rc<Self>, to: usize) -> Option<Loan> {
        let slot = super::mesh::ResultSlot::new();
        let theirs = slot.clone();
        let job: super::mesh::Job = Box::new(move |s: &Rc<Shard>| {
            let data = s.data.borrow_mut().take();
            theirs.put(Loan { data });
        });
        self.mesh.send(to, true, job).await.await;
        slot.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_sets_stay_sorted_and_unique() {
        let mut s = ShardSet::new();
        for x in [3, 1, 3, 0, 2, 1] {
            s.insert(x);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(s.contains(2) && !s.contains(4));
        assert_eq!(s.single(), None);
        assert_eq!(ShardSet::one(5).single(), Some(5));
        let mut t = ShardSet::one(9);
        t.extend(&s);
        assert_eq!(t.len(), 5);
    }
}
