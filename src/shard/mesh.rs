//! Cross-core calls: run a closure on another executor and get its typed result back.
//!
//! Each executor has an inbox fed by every other one: a bounded queue of requests (jobs)
//! and an unbounded queue of responses (a finished call's token), both lock-free
//! (crossbeam). One task per executor drains it (`Shard::serve_inbox`) and never waits on
//! anything: answering a request never waits either (the response queue has no bound and
//! a response is one token), so a full request queue can never deadlock the mesh. A job
//! writes its result into a slot the caller shares (`ResultSlot`); the response only says
//! which call finished.
//!
//! The queues are not glommio's shared channels because glommio hands those over only in
//! its reactor pass: an `io_uring_enter` per pass, and a `membarrier` (an interrupt to every
//! CPU running one of our threads) before each sleep, a third of the server's CPU at
//! `--shards 2`. Instead each executor's `Doorbell` counts the messages sent to it; the
//! task that runs its loop (the epoll driver, or a doorbell watcher: `server::readiness`)
//! wakes the inbox task when that count is ahead of what it took, and while that task
//! sleeps a sender rings the doorbell's eventfd.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Shard;

/// Work sent to another executor.
pub type Job = Box<dyn FnOnce(&Rc<Shard>) + Send>;

pub struct Request {
    /// The call to report back to, or 0 when nobody waits (`Shard::post`).
    pub token: u64,
    /// The job needs the shard's data at home: while a coordinator has borrowed it, the job
    /// waits, in arrival order (see `shard::tx`).
    pub needs_data: bool,
    pub job: Job,
}

pub struct Response {
    pub token: u64,
}

/// Where a job leaves its result for the caller: written on the callee's core, read on the
/// caller's after the response arrives (the channel orders the two).
pub struct ResultSlot<R>(Mutex<Option<R>>);

impl<R> ResultSlot<R> {
    pub fn new() -> Arc<ResultSlot<R>> {
        Arc::new(ResultSlot(Mutex::new(None)))
    }

    pub fn put(&self, r: R) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    }

    pub fn take(&self) -> Option<R> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Requests one executor's inbox holds before senders wait.
const REQUEST_CAPACITY: usize = 4096;

/// How long a sender waits before trying a full request queue again.
const FULL_RETRY: Duration = Duration::from_micros(50);

/// How other executors reach one that may be asleep.
///
/// A sender counts its message in `posted`, then rings `fd` if `asleep` is set; the
/// executor sets `asleep`, then compares `posted` with what it has received, and sleeps
/// only if nothing is missing. Both sides do their two steps in that order with
/// sequentially consistent atomics, so at least one sees the other: a message never waits
/// out a sleep.
struct Doorbell {
    asleep: AtomicBool,
    posted: AtomicU64,
    /// An eventfd.
    fd: OwnedFd,
}

impl Doorbell {
    fn new() -> io::Result<Doorbell> {
        // SAFETY: plain syscall; the descriptor is owned by the OwnedFd from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            asleep: AtomicBool::new(false),
            posted: AtomicU64::new(0),
            // SAFETY: `fd` was just opened and belongs to nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Counts a message sent to this executor and wakes it if it sleeps.
    fn ring(&self) {
        self.posted.fetch_add(1, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) && self.asleep.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd. It fails only with the
            // counter full, which the reader's resets (or 2^64 rings) keep from happening.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

/// An executor's incoming messages, drained by `Shard::serve_inbox`.
pub struct Inbox {
    pub requests: Receiver<(usize, Request)>,
    pub responses: Receiver<Response>,
}

/// What one executor takes with it: the way into every inbox and its own.
pub struct MeshEnds {
    requests: Vec<Sender<(usize, Request)>>,
    responses: Vec<Sender<Response>>,
    doorbells: Vec<Arc<Doorbell>>,
    own: usize,
    inbox: Inbox,
}

/// Builds the full mesh for `n` executors; entry `i` belongs to executor `i`. Fails only
/// when the kernel refuses an eventfd.
pub fn build_mesh(n: usize) -> io::Result<Vec<MeshEnds>> {
    let mut doorbells = Vec::with_capacity(n);
    for _ in 0..n {
        doorbells.push(Arc::new(Doorbell::new()?));
    }
    let (req_tx, req_rx): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| crossbeam_channel::bounded(REQUEST_CAPACITY))
        .unzip();
    let (resp_tx, resp_rx): (Vec<_>, Vec<_>) =
        (0..n).map(|_| crossbeam_channel::unbounded()).unzip();
    Ok(req_rx
        .into_iter()
        .zip(resp_rx)
        .enumerate()
        .map(|(own, (requests, responses))| MeshEnds {
            requests: req_tx.clone(),
            responses: resp_tx.clone(),
            doorbells: doorbells.clone(),
            own,
            inbox: Inbox {
                requests,
                responses,
            },
        })
        .collect())
}

/// A pending call: whether its job has run, and who waits for it.
#[derive(Default)]
struct Pending {
    done: bool,
    waker: Option<Waker>,
}

/// This executor's side of the mesh.
pub struct Mesh {
    requests: Vec<Sender<(usize, Request)>>,
    responses: Vec<Sender<Response>>,
    doorbells: Vec<Arc<Doorbell>>,
    own: usize,
    /// Messages the inbox task has taken (compared with this executor's `posted`).
    received: Cell<u64>,
    /// The inbox task, while it waits for mail.
    inbox_task: RefCell<Option<Waker>>,
    pending: RefCell<hashbrown::HashMap<u64, Pending>>,
    next_token: Cell<u64>,
}

impl Mesh {
    /// This executor's side, and the inbox its `Shard::serve_inbox` task drains.
    pub fn new(ends: MeshEnds) -> (Mesh, Inbox) {
        let mesh = Mesh {
            requests: ends.requests,
            responses: ends.responses,
            doorbells: ends.doorbells,
            own: ends.own,
            received: Cell::new(0),
            inbox_task: RefCell::new(None),
            pending: RefCell::new(Default::default()),
            next_token: Cell::new(1),
        };
        (mesh, ends.inbox)
    }

    /// Sends `job` to executor `to` and returns a ticket that completes once it has run.
    pub async fn send(&self, to: usize, needs_data: bool, job: Job) -> Ticket<'_> {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.pending.borrow_mut().insert(token, Pending::default());
        // Made first so that its Drop frees the pending slot whatever happens below.
        let ticket = Ticket { mesh: self, token };
        self.push(
            to,
            Request {
                token,
                needs_data,
                job,
            },
        )
        .await;
        ticket
    }

    /// Sends `job` to executor `to` with nobody waiting for it.
    pub async fn post(&self, to: usize, needs_data: bool, job: Job) {
        let req = Request {
            token: 0,
            needs_data,
            job,
        };
        self.push(to, req).await;
    }

    /// `post` without waiting: false (the job is dropped) if the queue is full.
    pub fn try_post(&self, to: usize, needs_data: bool, job: Job) -> bool {
        if to == self.own || to >= self.requests.len() {
            return false;
        }
        let req = Request {
            token: 0,
            needs_data,
            job,
        };
        let sent = self.requests[to].try_send((self.own, req)).is_ok();
        if sent {
            self.doorbells[to].ring();
        }
        sent
    }

    async fn push(&self, to: usize, req: Request) {
        assert_ne!(to, self.own, "no mesh queue to self");
        let mut msg = (self.own, req);
        loop {
            match self.requests[to].try_send(msg) {
                Ok(()) => {
                    self.doorbells[to].ring();
                    return;
                }
                // The inbox task drains without waiting (module doc): room comes soon.
                Err(TrySendError::Full(back)) => {
                    msg = back;
                    glommio::timer::sleep(FULL_RETRY).await;
                }
                // Only at shutdown, when the executor has exited.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    /// Tells the executor that asked for a job that it has run.
    pub fn respond(&self, to: usize, resp: Response) {
        if self.responses[to].send(resp).is_ok() {
            self.doorbells[to].ring();
        }
    }

    /// Completes the ticket a response is for.
    pub fn complete(&self, resp: Response) {
        if let Some(p) = self.pending.borrow_mut().get_mut(&resp.token) {
            p.done = true;
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
    }

    /// Counts a message the inbox task has taken.
    pub fn note_received(&self) {
        self.received.set(self.received.get() + 1);
    }

    /// Messages were sent here that the inbox task has not taken. (A sender counts its
    /// message just after queueing it, so the task may briefly have taken more.)
    pub fn unreceived(&self) -> bool {
        self.doorbells[self.own].posted.load(Ordering::SeqCst) > self.received.get()
    }

    /// Wakes the inbox task if mail waits for it; whether it did.
    pub fn deliver(&self) -> bool {
        if !self.unreceived() {
            return false;
        }
        if let Some(w) = self.inbox_task.borrow_mut().take() {
            w.wake();
        }
        true
    }

    /// Completes when there is mail, once `deliver` has seen it.
    pub async fn mail(&self) {
        std::future::poll_fn(|cx| {
            if self.unreceived() {
                return Poll::Ready(());
            }
            *self.inbox_task.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The eventfd senders write while this executor sleeps.
    pub fn doorbell_fd(&self) -> RawFd {
        self.doorbells[self.own].fd.as_raw_fd()
    }

    /// Announces a sleep: true if senders will now ring the doorbell, false (stay awake)
    /// when mail already waits.
    pub fn begin_sleep(&self) -> bool {
        let own = &self.doorbells[self.own];
        own.asleep.store(true, Ordering::SeqCst);
        if self.unreceived() {
            own.asleep.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Ends a sleep: senders stop ringing.
    pub fn end_sleep(&self) {
        self.doorbells[self.own]
            .asleep
            .store(false, Ordering::SeqCst);
    }
}

/// Completes when a job sent with `Mesh::send` has run.
pub struct Ticket<'a> {
    mesh: &'a Mesh,
    token: u64,
}

impl Future for Ticket<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = self.mesh.pending.borrow_mut();
        let Some(p) = pending.get_mut(&self.token) else {
            // Already taken: cannot happen for a ticket polled after completion once.
            return Poll::Pending;
        };
        if p.done {
            pending.remove(&self.token);
            Poll::Ready(())
        } else {
            p.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        // A dropped ticket (its connection went away) must not leak its slot; the job still runs.
        self.mesh.pending.borrow_mut().remove(&self.token);
    }
}
