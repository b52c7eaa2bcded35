//! The epoll socket path (`--io epoll`): one epoll set per shard says which client sockets
//! have data, so a read needs no io_uring poll of its own.
//!
//! Why: glommio arms a one-shot io_uring poll after every partial read, and its rings are
//! made without `COOP_TASKRUN`, so each request that arrives while the shard runs costs the
//! shard an inter-processor interrupt (0.46 per operation at pipeline 1, against Redis's
//! 0.02). An epoll set, as Redis's event loop uses, only queues a ready socket while the
//! shard is busy. Sockets are registered edge-triggered, and the set's edges are kept per
//! socket (`Waiter`): a connection reads until the socket is empty (a short read or `EAGAIN`),
//! then waits for an edge the set reported since, so nothing is lost while it was busy, and a
//! client that leaves data unread (a blocked BLPOP with more requests behind it) does not
//! keep the set ready. One driver task per shard asks the set (`epoll_wait` with no timeout)
//! once per pass of the executor while sockets keep becoming ready, and wakes their tasks;
//! when none is, it sleeps on the set through glommio, so the executor wakes for sockets as
//! it does for the cross-core mesh and timers. Writes keep glommio's path: a direct `send`,
//! with a poll armed only when the socket is full, made once the other connections woken in
//! the same pass have read (`EpollStream::others_to_read`). TLS runs over this stream too.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;

/// Events taken from the set per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// One shard's epoll set and the connection tasks waiting for their sockets.
pub struct Readiness {
    epfd: RawFd,
    /// Per socket the set reported, or whose task waits: what the set said last.
    waiting: RefCell<hashbrown::HashMap<RawFd, Waiter>>,
    events: RefCell<Vec<libc::epoll_event>>,
    /// Tasks the last pass woke for data that have not read yet. Until they have, a
    /// connection's replies wait (see `EpollStream::others_to_read`).
    unread: Cell<usize>,
}

/// A socket's state between the set and its connection task.
enum Waiter {
    /// The task waits for data: wake it on the next edge.
    Task(Waker),
    /// An edge came since the task last found the socket empty: read it.
    Ready,
}

impl Readiness {
    /// A new epoll set, or why the kernel refused one.
    pub fn new() -> io::Result<Rc<Readiness>> {
        // SAFETY: plain syscall; the descriptor is owned by the Readiness from here on.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Rc::new(Readiness {
            epfd,
            waiting: RefCell::new(hashbrown::HashMap::new()),
            events: RefCell::new(vec![
                libc::epoll_event { events: 0, u64: 0 };
                EVENTS_PER_WAIT
            ]),
            unread: Cell::new(0),
        }))
    }

    fn register(&self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; `event` outlives the call.
        if unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn deregister(&self, fd: RawFd) {
        self.waiting.borrow_mut().remove(&fd);
        // SAFETY: removing a descriptor we added (still open: its stream is being dropped).
        unsafe {
            libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut());
        }
    }

    /// Takes what the set has ready now and wakes those sockets' tasks; how many were ready.
    fn take_ready(&self) -> usize {
        let mut events = self.events.borrow_mut();
        // SAFETY: the buffer holds EVENTS_PER_WAIT entries; timeout 0 never blocks.
        let n =
            unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), EVENTS_PER_WAIT as i32, 0) };
        // Counted afresh every pass: one woken task that never read (closed, killed) holds
        // the others' replies back for a pass at most.
        self.unread.set(0);
        if n <= 0 {
            return 0;
        }
        let mut waiting = self.waiting.borrow_mut();
        let mut woken = 0;
        for event in &events[..n as usize] {
            if let Some(Waiter::Task(waker)) = waiting.insert(event.u64 as RawFd, Waiter::Ready) {
                waker.wake();
                woken += 1;
            }
        }
        self.unread.set(woken);
        n as usize
    }

    /// Runs for the shard's life: wakes connections whose sockets became ready.
    pub async fn drive(self: Rc<Self>) {
        loop {
            if self.take_ready() > 0 {
                // Let the woken connections (and the rest of the executor: the mesh, timers)
                // run before asking again, as one turn of Redis's event loop.
                glommio::executor().yield_task_queue_now().await;
                continue;
            }
            self.until_ready().await;
        }
    }

    /// Sleeps until the set has something ready. glommio has no public "wait for this
    /// descriptor" future, but a glommio stream arms a readiness poll on its descriptor when
    /// made; on a copy of the epoll descriptor, its read fails (not a socket) exactly once
    /// that poll fired, which is the moment we want.
    async fn until_ready(&self) {
        // SAFETY: dup of our own descriptor; the copy belongs to the stream, which closes it.
        let fd = unsafe { libc::dup(self.epfd) };
        if fd < 0 {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            return;
        }
        // SAFETY: `fd` is open and owned by nobody else.
        let mut probe = unsafe { TcpStream::from_raw_fd(fd) };
        let _ = probe.read(&mut [0u8; 1]).await;
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        // SAFETY: our descriptor, closed once.
        unsafe { libc::close(self.epfd) };
    }
}

/// A client socket on the epoll path: reads by `recv` and the shard's epoll set, writes by
/// glommio's stream.
pub struct EpollStream {
    // Declared first so it drops first: out of the set before the socket closes.
    registration: Registration,
    inner: TcpStream,
    /// The last read left the socket empty (it returned less than asked, or `EAGAIN`): the
    /// next one waits for an edge instead of asking the kernel, saving the `recv` that
    /// would only say `EAGAIN` (Redis, level-triggered, reads once per event too).
    drained: bool,
}

/// A socket's place in its shard's set, given up when the stream goes.
struct Registration {
    fd: RawFd,
    readiness: Rc<Readiness>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.readiness.deregister(self.fd);
    }
}

/// The stream for an accepted socket: on the shard's epoll set when the shard has one and
/// the set takes the socket, else the glommio stream back.
pub fn attach(
    inner: TcpStream,
    readiness: Option<Rc<Readiness>>,
) -> Result<EpollStream, TcpStream> {
    match readiness {
        Some(readiness) => EpollStream::new(inner, readiness),
        None => Err(inner),
    }
}

impl EpollStream {
    /// Adds an accepted connection to the shard's set; the stream back, for glommio's path,
    /// if the set refuses it (e.g. `fs.epoll.max_user_watches` reached), with a log line.
    pub fn new(inner: TcpStream, readiness: Rc<Readiness>) -> Result<EpollStream, TcpStream> {
        let fd = inner.as_raw_fd();
        if let Err(e) = readiness.register(fd) {
            eprintln!("# epoll_ctl failed ({e}): this client is read through glommio");
            return Err(inner);
        }
        Ok(EpollStream {
            registration: Registration { fd, readiness },
            inner,
            drained: false,
        })
    }

    /// Whether other connections of this shard were woken for data and have not read it
    /// yet. A connection that has its replies ready lets them run first, so the replies of
    /// one pass go out together, as Redis writes them all before its next `epoll_wait`: a
    /// client process then wakes once for all of them, where a send per task woke it (an
    /// inter-processor interrupt, paid in the sender's `send`) for each (ZADD at pipeline 16:
    /// 10% of the server's CPU, against Redis's 1%).
    pub fn others_to_read(&self) -> bool {
        self.registration.readiness.unread.get() > 0
    }

    /// The glommio stream, out of the set (SYNC/PSYNC hands it to the replication master).
    pub fn into_inner(self) -> TcpStream {
        let EpollStream {
            registration,
            inner,
            ..
        } = self;
        drop(registration);
        inner
    }
}

impl AsRawFd for EpollStream {
    fn as_raw_fd(&self) -> RawFd {
        self.registration.fd
    }
}

impl AsyncRead for EpollStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let fd = this.registration.fd;
        loop {
            if this.drained {
                // Edge-triggered: data that arrives after the socket was found empty makes a
                // new edge, which the driver records as Ready (waking the task if it waits).
                let mut waiting = this.registration.readiness.waiting.borrow_mut();
                match waiting.get_mut(&fd) {
                    Some(Waiter::Ready) => {
                        waiting.remove(&fd);
                        this.drained = false;
                        let unread = &this.registration.readiness.unread;
                        unread.set(unread.get().saturating_sub(1));
                    }
                    Some(Waiter::Task(waker)) => {
                        if !waker.will_wake(cx.waker()) {
                            *waker = cx.waker().clone();
                        }
                        return Poll::Pending;
                    }
                    None => {
                        waiting.insert(fd, Waiter::Task(cx.waker().clone()));
                        return Poll::Pending;
                    }
                }
            }
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n =
                unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                let n = n as usize;
                // A stream socket returns less than asked only when it had no more.
                this.drained = n > 0 && n < buf.len();
                return Poll::Ready(Ok(n));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => this.drained = true,
                _ => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for EpollStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
