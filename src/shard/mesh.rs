//! Cross-core calls: run a closure on another executor and get its typed result back.
//!
//! Every pair of executors is joined by two lock-free SPSC channels (glommio's shared
//! channels): one for requests, one for responses. Response channels are drained by tasks
//! that only hand results to local waiters and never block, so a full request channel can
//! never deadlock the mesh. A job writes its result into a slot the caller shares
//! (`ResultSlot`); the response only says which call finished.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

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

const CHANNEL_CAPACITY: usize = 4096;

/// The channel ends one executor takes with it, before connecting them on its own thread.
pub struct MeshEnds {
    pub req_tx: Vec<Option<SharedSender<Request>>>,
    pub req_rx: Vec<Option<SharedReceiver<Request>>>,
    pub resp_tx: Vec<Option<SharedSender<Response>>>,
    pub resp_rx: Vec<Option<SharedReceiver<Response>>>,
}

/// Builds the full mesh for `n` executors; entry `i` belongs to executor `i`.
pub fn build_mesh(n: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|_| MeshEnds {
            req_tx: (0..n).map(|_| None).collect(),
            req_rx: (0..n).map(|_| None).collect(),
            resp_tx: (0..n).map(|_| None).collect(),
            resp_rx: (0..n).map(|_| None).collect(),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
            ends[from].req_tx[to] = Some(tx);
            ends[to].req_rx[from] = Some(rx);
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
            ends[to].resp_tx[from] = Some(tx);
            ends[from].resp_rx[to] = Some(rx);
        }
    }
    ends
}

/// A pending call: whether its job has run, and who waits for it.
#[derive(Default)]
struct Pending {
    done: bool,
    waker: Option<Waker>,
}

/// This executor's side of the mesh.
pub struct Mesh {
    req_tx: Vec<Option<Rc<ConnectedSender<Request>>>>,
    resp_tx: Vec<Option<Rc<ConnectedSender<Response>>>>,
    pending: RefCell<hashbrown::HashMap<u64, Pending>>,
    next_token: Cell<u64>,
}

impl Mesh {
    /// Connects this executor's channel ends; must run on the executor itself.
    pub async fn connect(
        ends: MeshEnds,
    ) -> (
        Mesh,
        Vec<(usize, ConnectedReceiver<Request>)>,
        Vec<(usize, ConnectedReceiver<Response>)>,
    ) {
        // `connect` waits for the peer to connect its end too, so connect every end at once.
        fn spawn<T: 'static>(f: impl Future<Output = T> + 'static) -> glommio::task::JoinHandle<T> {
            glommio::spawn_local(f).detach()
        }
        let req_tx: Vec<_> = ends
            .req_tx
            .into_iter()
            .map(|tx| tx.map(|tx| spawn(tx.connect())))
            .collect();
        let resp_tx: Vec<_> = ends
            .resp_tx
            .into_iter()
            .map(|tx| tx.map(|tx| spawn(tx.connect())))
            .collect();
        let req_rx: Vec<_> = ends
            .req_rx
            .into_iter()
            .enumerate()
            .filter_map(|(p, rx)| rx.map(|rx| (p, spawn(rx.connect()))))
            .collect();
        let resp_rx: Vec<_> = ends
            .resp_rx
            .into_iter()
            .enumerate()
            .filter_map(|(p, rx)| rx.map(|rx| (p, spawn(rx.connect()))))
            .collect();
        let mut req_tx_c = Vec::new();
        for h in req_tx {
            req_tx_c.push(match h {
                Some(h) => Some(Rc::new(h.await.expect("mesh connect task"))),
                None => None,
            });
        }
        let mut resp_tx_c = Vec::new();
        for h in resp_tx {
            resp_tx_c.push(match h {
                Some(h) => Some(Rc::new(h.await.expect("mesh connect task"))),
                None => None,
            });
        }
        let mut req_rx_c = Vec::new();
        for (p, h) in req_rx {
            req_rx_c.push((p, h.await.expect("mesh connect task")));
        }
        let mut resp_rx_c = Vec::new();
        for (p, h) in resp_rx {
            resp_rx_c.push((p, h.await.expect("mesh connect task")));
        }
        let (req_tx, resp_tx, req_rx, resp_rx) = (req_tx_c, resp_tx_c, req_rx_c, resp_rx_c);
        let mesh = Mesh {
            req_tx,
            resp_tx,
            pending: RefCell::new(Default::default()),
            next_token: Cell::new(1),
        };
        (mesh, req_rx, resp_rx)
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

    /// `post` without waiting: false (the job is dropped) if the channel is full.
    pub fn try_post(&self, to: usize, needs_data: bool, job: Job) -> bool {
        let Some(tx) = self.req_tx.get(to).and_then(Option::as_ref) else {
            return false;
        };
        tx.try_send(Request {
            token: 0,
            needs_data,
            job,
        })
        .is_ok()
    }

    async fn push(&self, to: usize, req: Request) {
        let tx = self.req_tx[to]
            .as_ref()
            .expect("no channel to self")
            .clone();
        // Waits only when the channel is full; the receiver never stops draining (module doc).
        // Channels close only when an executor exits, i.e. at shutdown.
        let _ = tx.send(req).await;
    }

    /// Tells the executor that asked for a job that it has run.
    pub async fn respond(&self, to: usize, resp: Response) {
        let tx = self.resp_tx[to]
            .as_ref()
            .expect("no channel to self")
            .clone();
        let _ = tx.send(resp).await;
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
