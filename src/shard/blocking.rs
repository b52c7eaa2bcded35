//! Blocked clients, the shard side: the waiters queued on each key a shard owns, the claim
//! that lets exactly one shard serve a waiter, and the replies delivered to the blocked
//! connections this core runs. How a command blocks, and how a waiter is served through
//! `call()`, is the command layer's (`cmd::blocking`); this layer reaches it through
//! `Upcalls::serve_ready`.
//!
//! The claim: a waiter registered on several shards is served once. Its `status` moves from
//! WAITING to BUSY (one shard at a time; the others spin for the microseconds a serve takes)
//! or TRYING (a task that must borrow other shards first; the others pass over it), then to
//! SERVED, or back to WAITING when the key could not serve it. The connection's timeout and
//! disconnect move it from WAITING to CANCELLED the same way, so a reply is either delivered
//! or never produced: no element is popped for a client that is gone.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::tx::ShardSet;
use super::Shard;
use crate::resp::OwnedArgs;

pub const WAITING: u8 = 0;
pub const BUSY: u8 = 1;
pub const SERVED: u8 = 2;
pub const CANCELLED: u8 = 3;
/// A task on another shard is trying this waiter (it may wait for data): pass over it.
pub const TRYING: u8 = 4;

/// One blocked command, shared by the connection's core and the owners of its keys.
pub struct Waiter {
    pub id: u64,
    pub conn_shard: usize,
    pub status: AtomicU8,
    /// The command's index in the table (its stats, and how it is served).
    pub idx: usize,
    /// The client's database.
    pub db: usize,
    pub args: OwnedArgs,
    pub resp3: bool,
    /// The shards the command's keys live on, when serving touches them all and they are
    /// more than one (BLMOVE with its destination elsewhere).
    pub spans: Option<ShardSet>,
}

impl Waiter {
    /// Moves WAITING to `to`, waiting out another shard's BUSY; false if already decided or
    /// being tried by a task.
    pub fn claim(&self, to: u8) -> bool {
        loop {
            match self
                .status
                .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(BUSY) => std::hint::spin_loop(),
                Err(_) => return false,
            }
        }
    }
}

/// A waiter queued on one key of this shard.
pub struct Registration {
    pub waiter: Arc<Waiter>,
    pub key_pos: usize,
    /// Kept between attempts (XREAD keeps the id `$` stood for).
    pub data: Vec<u8>,
}

/// A reply produced for a waiter, on its way to the waiter's connection.
pub struct Delivery {
    pub reply: Vec<u8>,
}

/// A key of one database.
type DbKey = (usize, Box<[u8]>);

/// A shard's blocking state: waiters queued per (database, key) it owns, and deliveries for
/// the connections it runs.
#[derive(Default)]
pub struct Blocking {
    queues: RefCell<hashbrown::HashMap<DbKey, VecDeque<Registration>>>,
    inbox: RefCell<hashbrown::HashMap<u64, Slot>>,
    next_id: Cell<u64>,
    /// Connections of this core currently blocked (INFO `blocked_clients`).
    pub clients: Cell<usize>,
}

#[derive(Default)]
struct Slot {
    delivery: Option<Delivery>,
    waker: Option<Waker>,
}

impl Blocking {
    /// A new waiter id, unique across executors (the executor is in the top bits).
    pub fn new_id(&self, shard: usize) -> u64 {
        let n = self.next_id.get() + 1;
        self.next_id.set(n);
        ((shard as u64 + 1) << 48) | (n & ((1 << 48) - 1))
    }

    /// Hands a delivery to the blocked connection `id` of this core.
    pub fn deliver_local(&self, id: u64, d: Delivery) {
        if let Some(slot) = self.inbox.borrow_mut().get_mut(&id) {
            slot.delivery = Some(d);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// The first waiter queued on `key` of database `db`, taken out of its queue.
    pub fn pop_front(&self, db: usize, key: &[u8]) -> Option<Registration> {
        self.queues
            .borrow_mut()
            .get_mut(&(db, Box::<[u8]>::from(key)))
            .and_then(VecDeque::pop_front)
    }

    /// Puts a waiter back at the head of its queue (it could not be served yet).
    pub fn push_front(&self, db: usize, key: &[u8], reg: Registration) {
        if let Some(q) = self.queues.borrow_mut().get_mut(&(db, key.into())) {
            q.push_front(reg);
        }
    }

    /// Drops the queue of `key` if nobody waits on it any more; true if it did.
    pub fn drop_if_empty(&self, db: usize, key: &[u8]) -> bool {
        let qk = (db, Box::<[u8]>::from(key));
        let mut queues = self.queues.borrow_mut();
        if queues.get(&qk).is_some_and(VecDeque::is_empty) {
            queues.remove(&qk);
            return true;
        }
        false
    }
}

/// Opens the slot a blocked connection of this core receives its reply in; the guard
/// closes it however the wait ends (a panic included).
pub fn open_inbox(shard: &Rc<Shard>, id: u64) -> InboxGuard {
    let b = &shard.blocking;
    b.inbox.borrow_mut().insert(id, Slot::default());
    b.clients.set(b.clients.get() + 1);
    InboxGuard {
        shard: shard.clone(),
        id,
    }
}

/// Closes a blocked connection's reply slot when dropped.
pub struct InboxGuard {
    shard: Rc<Shard>,
    id: u64,
}

impl Drop for InboxGuard {
    fn drop(&mut self) {
        let b = &self.shard.blocking;
        b.inbox.borrow_mut().remove(&self.id);
        b.clients.set(b.clients.get().saturating_sub(1));
    }
}

/// The delivery for waiter `id`, once an owner has sent it.
pub struct Delivered<'a> {
    pub shard: &'a Rc<Shard>,
    pub id: u64,
}

impl Future for Delivered<'_> {
    type Output = Delivery;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery> {
        let mut inbox = self.shard.blocking.inbox.borrow_mut();
        let Some(slot) = inbox.get_mut(&self.id) else {
            return Poll::Pending;
        };
        match slot.delivery.take() {
            Some(d) => Poll::Ready(d),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Hands a reply to the waiter's connection, on whatever core it runs.
pub fn deliver(shard: &Rc<Shard>, w: &Waiter, reply: Vec<u8>) {
    let delivery = Delivery { reply };
    if w.conn_shard == shard.id {
        shard.blocking.deliver_local(w.id, delivery);
    } else {
        let (to, id, me) = (w.conn_shard, w.id, shard.clone());
        glommio::spawn_local(async move {
            me.post(to, false, move |s| s.blocking.deliver_local(id, delivery))
                .await;
        })
        .detach();
    }
}

/// On an owner shard: queues `waiter` on its keys at `positions` and has them tried at once
/// (data may have arrived since the command's first attempt). Runs whether or not the data
/// is home (a job that needs no data): the tries wait for it.
pub fn register(shard: &Rc<Shard>, waiter: &Arc<Waiter>, positions: &[usize]) {
    let args = waiter.args.args();
    let db = waiter.db;
    for &pos in positions {
        let key: Box<[u8]> = args.get(pos).into();
        shard
            .blocking
            .queues
            .borrow_mut()
            .entry((db, key.clone()))
            .or_default()
            .push_back(Registration {
                waiter: waiter.clone(),
                key_pos: pos,
                data: Vec::new(),
            });
        let tracked = shard.with_data(|d| {
            d.track_blocked(db, &key, true);
            d.db(db).mark_ready(&key);
        });
        if tracked.is_none() || !shard.data_is_home() {
            // Tried when the data comes back.
            let shard = shard.clone();
            glommio::spawn_local(async move {
                shard.data_home().await;
                if let Some(d) = shard.data.borrow_mut().as_deref_mut() {
                    d.track_blocked(db, &key, true);
                    d.db(db).mark_ready(&key);
                }
                (shard.shared.upcalls.serve_ready)(&shard);
            })
            .detach();
        }
    }
    (shard.shared.upcalls.serve_ready)(shard);
}

/// On an owner shard: drops waiter `id`'s registrations on `keys` of database `db`.
pub fn unregister(shard: &Rc<Shard>, id: u64, db: usize, keys: &[Box<[u8]>]) {
    let mut emptied = Vec::new();
    {
        let mut queues = shard.blocking.queues.borrow_mut();
        for key in keys {
            let qk = (db, key.clone());
            if let Some(q) = queues.get_mut(&qk) {
                q.retain(|r| r.waiter.id != id);
                if q.is_empty() {
                    queues.remove(&qk);
                    emptied.push(key.clone());
                }
            }
        }
    }
    // Keys nobody waits on any more stop being tracked; if the data is away, a key stays
    // tracked a little longer, which costs only a check when it is touched.
    shard.with_data(|d| {
        for key in &emptied {
            d.track_blocked(db, key, false);
        }
    });
}

/// Whether the client hung up: a zero-length peek means the peer closed its side.
pub fn peer_closed(fd: i32) -> bool {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a valid buffer; a bad fd only yields an error code.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n == 0 {
        return true;
    }
    n < 0 && {
        let err = std::io::Error::last_os_error().raw_os_error();
        !matches!(err, Some(libc::EAGAIN) | Some(libc::EINTR))
    }
}
