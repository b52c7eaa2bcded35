//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK ...): a client waits on keys that
//! may live on any shard and is served, first come first served, when a write makes one ready.
//!
//! A family declares a [`BlockingOp`] per command: `serve` tries to answer the command from
//! one key (on the shard owning it), `timeout_reply` is the answer when time runs out. Its
//! `Handler::Async` calls [`run`] (or [`wait`] after making its own first attempt).
//!
//! How a wait works:
//! - The connection's core makes the first attempt, key by key in argument order.
//! - Then it registers a [`Waiter`] on every key's owner shard, which re-tries `serve` at once
//!   (data may have arrived since the first attempt) and otherwise queues the waiter on the
//!   key, FIFO, and watches the key in its `Keyspace`.
//! - Any later lookup or write of a watched key marks it ready; after the command that did it,
//!   the shard ([`serve_ready`]) re-tries the key's waiters in order until one is not served.
//! - A waiter registered on several shards is served once: its `status` moves from WAITING to
//!   BUSY (only one shard at a time; the others spin for the microseconds a `serve` takes) and
//!   then to SERVED, or back to WAITING when the key could not serve it. The connection's
//!   timeout and disconnect move it from WAITING to CANCELLED the same way, so a reply is
//!   either delivered or never produced: no element is popped for a client that is gone.
//! - The reply travels back to the connection's core over the mesh; then the connection
//!   removes the waiter's other registrations.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::cmd::{self, Ctx};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, OwnedArgs, Reply};
use crate::server::conn::Conn;
use crate::shard::Shard;
use crate::slot::key_slot;
use crate::util::time::now_ms;

/// How one blocking command is served; declared next to the command in its family file.
pub struct BlockingOp {
    /// On the shard owning `args.get(key_pos)`: answers the command from that key if it can,
    /// writing the whole reply into `ctx.out` and returning `Ok(true)`, or returns `Ok(false)`
    /// having written and changed nothing. An `Err` on the first attempt is the reply (e.g.
    /// WRONGTYPE); when woken it means "cannot serve now" and the client keeps waiting.
    pub serve: fn(&mut Ctx<'_>, &Args<'_>, usize, &mut WaitState) -> Result<bool, Error>,
    /// The reply when the timeout expires (e.g. a null array).
    pub timeout_reply: fn(&mut Reply),
}

/// What `serve` may keep or ask for, per waiter and key.
#[derive(Default)]
pub struct WaitState {
    /// True for the first attempt, made before the client blocks.
    pub first: bool,
    /// Kept between attempts on this key (XREAD keeps the id `$` stood for).
    pub data: Vec<u8>,
    /// Work for another shard that must happen before the reply goes out (BLMOVE whose
    /// destination lives elsewhere pushes the popped element there).
    pub then: Option<(usize, FollowUp)>,
}

pub type FollowUp = Box<dyn FnOnce(&Rc<Shard>) + Send>;

const WAITING: u8 = 0;
const BUSY: u8 = 1;
const SERVED: u8 = 2;
const CANCELLED: u8 = 3;

/// How often a blocked connection checks that its client is still there.
const DISCONNECT_POLL: Duration = Duration::from_millis(20);

/// One blocked command, shared by the connection's core and the owners of its keys.
pub struct Waiter {
    id: u64,
    conn_shard: usize,
    status: AtomicU8,
    args: OwnedArgs,
    resp3: bool,
    op: &'static BlockingOp,
}

impl Waiter {
    /// Moves WAITING to `to`, waiting out another shard's BUSY; false if already decided.
    fn claim(&self, to: u8) -> bool {
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
struct Registration {
    waiter: Arc<Waiter>,
    key_pos: usize,
    data: Vec<u8>,
}

/// A reply produced for a waiter, on its way to the waiter's connection.
struct Delivery {
    reply: Vec<u8>,
    then: Option<(usize, FollowUp)>,
}

/// A shard's blocking state: waiters queued per key it owns, and deliveries for the
/// connections it runs.
#[derive(Default)]
pub struct Blocking {
    queues: RefCell<hashbrown::HashMap<Box<[u8]>, VecDeque<Registration>>>,
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

/// Parses a timeout in seconds (BLPOP's last argument) into milliseconds, 0 meaning forever,
/// exactly as Redis 7.0 does (long double, rounded up; see `util::num::timeout_secs_ms`).
pub fn parse_timeout_secs(arg: &[u8]) -> Result<u64, Error> {
    crate::util::num::timeout_secs_ms(arg)
}

/// Parses a timeout in milliseconds (XREAD BLOCK), 0 meaning forever.
pub fn parse_timeout_ms(arg: &[u8]) -> Result<u64, Error> {
    let ms = crate::util::num::parse_i64_strict(arg)
        .ok_or_else(|| Error::msg("timeout is not an integer or out of range"))?;
    millis_in_range(ms, ms < 0)
}

fn millis_in_range(ms: i64, negative: bool) -> Result<u64, Error> {
    if negative {
        return Err(Error::msg("timeout is negative"));
    }
    if ms > i64::MAX - now_ms() {
        return Err(Error::msg("timeout is out of range"));
    }
    Ok(ms as u64)
}

/// The whole blocking command: tries the keys at `keys` (argument positions) in order, and if
/// none can serve it, waits up to `timeout_ms` (0: forever) for one that can.
pub async fn run(
    conn: &mut Conn,
    args: &Args<'_>,
    keys: &[usize],
    timeout_ms: u64,
    op: &'static BlockingOp,
) -> CmdResult {
    let owned = Arc::new(OwnedArgs::from(args));
    let resp3 = conn.out.resp3;
    for &pos in keys {
        let owner = conn.shard.owner_of(key_slot(args.get(pos)));
        let a = owned.clone();
        let attempt = conn
            .shard
            .call(owner, 0, move |s| first_attempt(s, &a, pos, resp3, op))
            .await;
        match attempt {
            Attempt::Served(d) => return finish(conn, d).await,
            Attempt::Failed(e) => return Err(e),
            Attempt::Empty => {}
        }
    }
    wait(conn, args, keys, timeout_ms, op).await
}

enum Attempt {
    Served(Delivery),
    Empty,
    Failed(Error),
}

fn first_attempt(
    shard: &Rc<Shard>,
    args: &OwnedArgs,
    pos: usize,
    resp3: bool,
    op: &'static BlockingOp,
) -> Attempt {
    let mut out = Reply::new(resp3);
    let mut state = WaitState {
        first: true,
        ..WaitState::default()
    };
    let served = serve_guarded(shard, &args.args(), pos, op, &mut out, &mut state);
    serve_ready(shard);
    match served {
        Ok(true) => Attempt::Served(Delivery {
            reply: out.buf,
            then: state.then,
        }),
        Ok(false) => Attempt::Empty,
        Err(e) => Attempt::Failed(e),
    }
}

fn serve_guarded(
    shard: &Rc<Shard>,
    args: &Args<'_>,
    pos: usize,
    op: &'static BlockingOp,
    out: &mut Reply,
    state: &mut WaitState,
) -> Result<bool, Error> {
    let mut served = false;
    let result = cmd::guarded(|| {
        let mut db = shard.db.borrow_mut();
        let mut ctx = Ctx {
            shard,
            db: &mut db,
            out,
            now: now_ms(),
        };
        served = (op.serve)(&mut ctx, args, pos, state)?;
        Ok(())
    });
    result.map(|()| served)
}

/// Blocks on the keys at `keys` without a first attempt (the caller made its own), until one
/// serves the command or `timeout_ms` (0: forever) passes.
pub async fn wait(
    conn: &mut Conn,
    args: &Args<'_>,
    keys: &[usize],
    timeout_ms: u64,
    op: &'static BlockingOp,
) -> CmdResult {
    let shard = conn.shard.clone();
    let id = shard.blocking.new_id(shard.id);
    let waiter = Arc::new(Waiter {
        id,
        conn_shard: shard.id,
        status: AtomicU8::new(WAITING),
        args: OwnedArgs::from(args),
        resp3: conn.out.resp3,
        op,
    });
    shard
        .blocking
        .inbox
        .borrow_mut()
        .insert(id, Slot::default());
    shard.blocking.clients.set(shard.blocking.clients.get() + 1);
    let _blocked = BlockedGuard(&shard, id);

    // Register on each owner shard, keys of one shard in one call.
    let mut owners: Vec<(usize, Vec<usize>)> = Vec::new();
    for &pos in keys {
        let owner = shard.owner_of(key_slot(args.get(pos)));
        match owners.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, positions)) => positions.push(pos),
            None => owners.push((owner, vec![pos])),
        }
    }
    for (owner, positions) in &owners {
        let (w, positions) = (waiter.clone(), positions.clone());
        shard
            .call(*owner, 0, move |s| register(s, &w, &positions))
            .await;
    }

    let deadline = (timeout_ms > 0).then(|| now_ms().saturating_add(timeout_ms as i64));
    let fd = conn.meta.fd;
    let delivery = loop {
        let tick = match deadline {
            Some(d) => Duration::from_millis((d - now_ms()).clamp(0, 20) as u64),
            None => DISCONNECT_POLL,
        };
        let delivered = futures_lite::future::or(
            async { Some(Delivered { shard: &shard, id }.await) },
            async {
                glommio::timer::sleep(tick).await;
                None
            },
        )
        .await;
        if let Some(d) = delivered {
            break Some(d);
        }
        let gone = conn.meta.killed.get() || peer_closed(fd);
        let expired = deadline.is_some_and(|d| now_ms() >= d);
        if (gone || expired) && waiter.claim(CANCELLED) {
            if gone {
                conn.close_after_reply = true;
            }
            break None;
        }
        if gone || expired {
            // Lost the race: an owner is serving it; its reply is on the way.
            break Some(Delivered { shard: &shard, id }.await);
        }
    };

    // Whatever happened, no registration may outlive the wait.
    for (owner, positions) in owners {
        let key_list: Vec<Box<[u8]>> = positions.iter().map(|&p| args.get(p).into()).collect();
        shard
            .call(owner, 0, move |s| unregister(s, id, &key_list))
            .await;
    }
    match delivery {
        Some(d) => finish(conn, d).await,
        None => {
            (op.timeout_reply)(&mut conn.out);
            Ok(())
        }
    }
}

/// Frees the connection-side slot of a wait however it ends (a panic included).
struct BlockedGuard<'a>(&'a Rc<Shard>, u64);

impl Drop for BlockedGuard<'_> {
    fn drop(&mut self) {
        let b = &self.0.blocking;
        b.inbox.borrow_mut().remove(&self.1);
        b.clients.set(b.clients.get().saturating_sub(1));
    }
}

/// Runs a delivery's follow-up on its shard, then writes the reply.
async fn finish(conn: &mut Conn, d: Delivery) -> CmdResult {
    if let Some((to, then)) = d.then {
        conn.shard.call(to, 0, move |s| then(s)).await;
    }
    conn.out.buf.extend_from_slice(&d.reply);
    Ok(())
}

/// Whether the client hung up: a zero-length peek means the peer closed its side.
fn peer_closed(fd: i32) -> bool {
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

/// The delivery for waiter `id`, once an owner has sent it.
struct Delivered<'a> {
    shard: &'a Rc<Shard>,
    id: u64,
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

impl Blocking {
    fn new_id(&self, shard: usize) -> u64 {
        let n = self.next_id.get() + 1;
        self.next_id.set(n);
        ((shard as u64 + 1) << 48) | (n & ((1 << 48) - 1))
    }

    /// Hands a delivery to the blocked connection `id` of this core.
    fn deliver_local(&self, id: u64, d: Delivery) {
        if let Some(slot) = self.inbox.borrow_mut().get_mut(&id) {
            slot.delivery = Some(d);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }
}

/// On an owner shard: serves `waiter` from one of `positions` if possible, else queues it.
fn register(shard: &Rc<Shard>, waiter: &Arc<Waiter>, positions: &[usize]) {
    let args = waiter.args.args();
    for &pos in positions {
        let mut reg = Registration {
            waiter: waiter.clone(),
            key_pos: pos,
            data: Vec::new(),
        };
        match try_serve(shard, &mut reg) {
            Tried::Served | Tried::Decided => return,
            Tried::NotReady => {}
        }
        let key = args.get(pos);
        shard.db.borrow_mut().watch(key, true);
        shard
            .blocking
            .queues
            .borrow_mut()
            .entry_ref(key)
            .or_default()
            .push_back(reg);
    }
    serve_ready(shard);
}

/// On an owner shard: drops waiter `id`'s registrations on `keys`.
fn unregister(shard: &Rc<Shard>, id: u64, keys: &[Box<[u8]>]) {
    let mut queues = shard.blocking.queues.borrow_mut();
    for key in keys {
        if let Some(q) = queues.get_mut(key) {
            q.retain(|r| r.waiter.id != id);
            if q.is_empty() {
                queues.remove(key);
                shard.db.borrow_mut().watch(key, false);
            }
        }
    }
}

enum Tried {
    Served,
    NotReady,
    /// Served or cancelled elsewhere: this registration is dead.
    Decided,
}

fn try_serve(shard: &Rc<Shard>, reg: &mut Registration) -> Tried {
    let w = &reg.waiter;
    if !w.claim(BUSY) {
        return Tried::Decided;
    }
    let mut out = Reply::new(w.resp3);
    let mut state = WaitState {
        first: false,
        data: std::mem::take(&mut reg.data),
        then: None,
    };
    let served = serve_guarded(
        shard,
        &w.args.args(),
        reg.key_pos,
        w.op,
        &mut out,
        &mut state,
    );
    if !matches!(served, Ok(true)) {
        reg.data = state.data;
        w.status.store(WAITING, Ordering::Release);
        return Tried::NotReady;
    }
    w.status.store(SERVED, Ordering::Release);
    let delivery = Delivery {
        reply: out.buf,
        then: state.then,
    };
    if w.conn_shard == shard.id {
        shard.blocking.deliver_local(w.id, delivery);
    } else {
        let (to, id, me) = (w.conn_shard, w.id, shard.clone());
        glommio::spawn_local(async move {
            let job: super::mesh::Job = Box::new(move |s| {
                s.blocking.deliver_local(id, delivery);
                Box::new(()) as Box<dyn std::any::Any + Send>
            });
            // The ticket is dropped unread: the job runs regardless (see `Ticket`).
            drop(me.mesh.send(to, 0, job).await);
        })
        .detach();
    }
    Tried::Served
}

/// After a command: serves, in arrival order, the waiters of every watched key it touched.
/// Serving one may touch more keys (BLMOVE's destination), so this loops until quiet.
pub fn serve_ready(shard: &Rc<Shard>) {
    // While a MIGRATE has keys in flight here, serving could write one of them (BLMOVE's
    // destination) after its copy left: the ready keys wait until the move ends
    // (`migrate::end_move` serves them then).
    if !shard.in_flight.borrow().is_empty() {
        return;
    }
    loop {
        let ready = {
            let mut db = shard.db.borrow_mut();
            if !db.has_ready() {
                return;
            }
            db.take_ready()
        };
        for key in ready {
            serve_key(shard, &key);
        }
    }
}

fn serve_key(shard: &Rc<Shard>, key: &[u8]) {
    serve_queue(shard, key);
    // Our own attempts looked the key up, which marked it again: it has just been checked.
    shard.db.borrow_mut().unmark_ready(key);
    let mut queues = shard.blocking.queues.borrow_mut();
    if queues.get(key).is_some_and(VecDeque::is_empty) {
        queues.remove(key);
        shard.db.borrow_mut().watch(key, false);
    }
}

/// Serves `key`'s waiters in order until one cannot be served.
fn serve_queue(shard: &Rc<Shard>, key: &[u8]) {
    loop {
        let Some(mut reg) = shard
            .blocking
            .queues
            .borrow_mut()
            .get_mut(key)
            .and_then(VecDeque::pop_front)
        else {
            break;
        };
        match try_serve(shard, &mut reg) {
            Tried::Served | Tried::Decided => {}
            Tried::NotReady => {
                if let Some(q) = shard.blocking.queues.borrow_mut().get_mut(key) {
                    q.push_front(reg);
                }
                return;
            }
        }
    }
}
