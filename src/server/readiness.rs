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
//! keep the set ready. One driver task per shard runs the shard's loop (`Readiness::drive`):
//! it wakes the tasks of ready sockets and the mesh inbox task, and when nothing else of the
//! shard runs it waits in the set, which also holds the mesh doorbell: a short nap in
//! `epoll_wait`, then a sleep on the set through glommio, so that glommio's timers and I/O
//! still wake the shard. Writes keep glommio's path: a direct `send`, with a poll armed only
//! when the socket is full, made once the other connections woken in the same pass have
//! read (`EpollStream::others_to_read`). TLS runs over this stream too.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;

use crate::shard::mesh::Mesh;
use crate::shard::Shard;

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
    /// Longest nap in the set when the shard is idle (`--nap-us`), or none.
    nap: Option<Duration>,
    /// How long an idle shard spins, looking at the set and the mesh, before it naps
    /// (`--busy-poll-us`), or none.
    spin: Option<Duration>,
    /// Connections whose socket was full: glommio polls it for room, and only its reactor
    /// pass submits that poll and sees it fire, so the shard does not nap meanwhile.
    blocked_writes: Cell<usize>,
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
    pub fn new(nap: Option<Duration>, spin: Option<Duration>) -> io::Result<Rc<Readiness>> {
        // SAFETY: plain syscall; the descriptor is owned by the Readiness from here on.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        let nap = nap.filter(|_| match probe_epoll_pwait2(epfd) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("# epoll_pwait2 unavailable ({e}, Linux 5.11+): idle shards sleep through glommio at once");
                false
            }
        });
        Ok(Rc::new(Readiness {
            epfd,
            waiting: RefCell::new(hashbrown::HashMap::new()),
            events: RefCell::new(vec![
                libc::epoll_event { events: 0, u64: 0 };
                EVENTS_PER_WAIT
            ]),
            unread: Cell::new(0),
            nap,
            spin,
            blocked_writes: Cell::new(0),
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

    /// Adds the shard's mesh doorbell to the set, so a nap in the set ends when another
    /// executor sends this one a message.
    fn register_doorbell(&self, fd: RawFd) -> io::Result<()> {
        // Edge-triggered: every write by a sender makes an edge, so the counter is never
        // read back (it would take 2^64 rings to fill).
        self.register(fd)
    }

    /// Takes what the set has ready, waiting up to `timeout` (`None`: not at all), and wakes
    /// those sockets' tasks: how many sockets were ready, and whether the doorbell rang.
    fn take_ready(&self, timeout: Option<Duration>, doorbell: RawFd) -> (usize, bool) {
        let mut events = self.events.borrow_mut();
        let n = match timeout {
            // SAFETY: the buffer holds EVENTS_PER_WAIT entries; timeout 0 never blocks.
            None => unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), EVENTS_PER_WAIT as i32, 0)
            },
            Some(t) => {
                let ts = libc::timespec {
                    tv_sec: t.as_secs() as libc::time_t,
                    tv_nsec: t.subsec_nanos() as libc::c_long,
                };
                // SAFETY: as above; `ts` outlives the call; no signal mask is changed.
                unsafe {
                    libc::epoll_pwait2(
                        self.epfd,
                        events.as_mut_ptr(),
                        EVENTS_PER_WAIT as i32,
                        &ts,
                        std::ptr::null(),
                    )
                }
            }
        };
        // Counted afresh every pass: one woken task that never read (closed, killed) holds
        // the others' replies back for a pass at most.
        self.unread.set(0);
        if n <= 0 {
            return (0, false);
        }
        let mut waiting = self.waiting.borrow_mut();
        let (mut sockets, mut rang, mut woken) = (0, false, 0);
        for event in &events[..n as usize] {
            let fd = event.u64 as RawFd;
            if fd == doorbell {
                rang = true;
                continue;
            }
            sockets += 1;
            if let Some(Waiter::Task(waker)) = waiting.insert(fd, Waiter::Ready) {
                waker.wake();
                woken += 1;
            }
        }
        self.unread.set(woken);
        (sockets, rang)
    }

    /// Spins up to `spin` until a socket is ready (its task woken) or mail came: whether
    /// either happened. A shard with a CPU of its own trades that CPU for the wake-up a
    /// nap or sleep costs (`--busy-poll-us`).
    fn spin_for_work(&self, spin: Duration, doorbell: RawFd, mesh: &Mesh) -> bool {
        let until = Instant::now() + spin;
        loop {
            if mesh.unreceived() || self.take_ready(None, doorbell).0 > 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// Runs for the shard's life: wakes connections whose sockets became ready, and the
    /// mesh inbox task when other executors sent mail (`shard::mesh`).
    ///
    /// While there is work, it looks once per pass of the executor, as one turn of Redis's
    /// event loop. When a pass finds nothing and nothing else of the shard has run since,
    /// the shard spins if asked to (`--busy-poll-us`), then naps in `epoll_wait` (up to
    /// `--nap-us`), which ends for a socket or the mesh doorbell (in the set). It does not
    /// sleep in glommio then: glommio's sleep issues a `membarrier` (an interrupt to every
    /// other CPU running one of our threads) and re-arms its timers through `io_uring_enter`
    /// each time. glommio's own wake-ups (timers,
    /// io_uring completions, blocking-thread results) wait while the shard naps or keeps
    /// finding work, so a nap is short, glommio gets a pass at least every `REACTOR_EVERY`
    /// and on every pass while a connection waits for room to write, and a nap that runs
    /// out leaves the wait to glommio.
    pub async fn drive(self: Rc<Self>, shard: Rc<Shard>) {
        let mesh = &shard.mesh;
        let doorbell = mesh.doorbell_fd();
        let nap = match self.register_doorbell(doorbell) {
            Ok(()) => self.nap,
            Err(e) => {
                eprintln!("# epoll_ctl failed for the mesh doorbell ({e}): the shard never naps");
                None
            }
        };
        let mut passes = Passes::new();
        loop {
            let mail = mesh.deliver();
            let alone = passes.observe() && !mail;
            let writes_wait = self.blocked_writes.get() > 0;
            if !alone {
                // Tasks that ran since the last pass may have woken others: let them run
                // first. The set is asked when nothing else runs (below), and every few
                // passes while other tasks keep running.
                if mail || (passes.due_to_look() && self.take_ready(None, doorbell).0 > 0) {
                    passes.woke_tasks();
                }
                passes.next(writes_wait).await;
                continue;
            }
            if let Some(spin) = self.spin.filter(|_| !writes_wait) {
                if self.spin_for_work(spin, doorbell, mesh) {
                    passes.looked();
                    passes.woke_tasks();
                    passes.next(writes_wait).await;
                    continue;
                }
            }
            if !mesh.begin_sleep() {
                continue;
            }
            let (sockets, rang) = match nap {
                Some(t) if !writes_wait => self.take_ready(Some(t), doorbell),
                _ => self.take_ready(None, doorbell),
            };
            let sockets = if sockets == 0 && !rang {
                // Nothing for a whole nap: sleep in glommio, which wakes for the set (and so
                // for the doorbell in it) as for its own events.
                wait_readable(self.epfd).await;
                passes.woke_tasks();
                self.take_ready(None, doorbell).0
            } else {
                sockets
            };
            mesh.end_sleep();
            passes.looked();
            if sockets > 0 {
                passes.woke_tasks();
                passes.next(writes_wait).await;
            }
        }
    }
}

/// Runs for the life of an executor that has no epoll driver (the control executor, shards
/// on `--io glommio`): wakes its mesh inbox task when other executors sent mail, sleeping
/// on the doorbell through glommio in between.
pub async fn watch_doorbell(shard: Rc<Shard>) {
    let mesh = &shard.mesh;
    loop {
        if mesh.deliver() || !mesh.begin_sleep() {
            // Let the inbox task take the mail before looking again.
            glommio::executor().yield_task_queue_now().await;
            continue;
        }
        wait_readable(mesh.doorbell_fd()).await;
        mesh.end_sleep();
        let mut count = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our eventfd (non-blocking), which resets
        // it so that the next poll waits for the next ring.
        unsafe { libc::read(mesh.doorbell_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

/// Waits until `fd` is readable, through glommio. glommio has no public "wait for this
/// descriptor" future, but a glommio stream arms a readiness poll on its descriptor when
/// made; on a copy of a descriptor that is not a socket, its read fails exactly once that
/// poll fired, which is the moment we want.
async fn wait_readable(fd: RawFd) {
    // SAFETY: dup of a descriptor we own; the copy belongs to the stream, which closes it.
    let copy = unsafe { libc::dup(fd) };
    if copy < 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
        return;
    }
    // SAFETY: `copy` is open and owned by nobody else.
    let mut probe = unsafe { TcpStream::from_raw_fd(copy) };
    let _ = probe.read(&mut [0u8; 1]).await;
}

/// Longest wait for glommio's reactor pass while the shard keeps finding work or naps: what
/// a glommio timer or I/O completion may be late by.
const REACTOR_EVERY: Duration = Duration::from_millis(1);

/// The driver's passes: what ran between two of them (from glommio's executor counters,
/// each read of which returns the counts since the previous one, so nothing else may read
/// them), and when glommio last made a reactor pass.
struct Passes {
    /// The previous pass woke tasks, so what ran since is not only this one.
    woke: bool,
    /// Passes since the set was last asked.
    since_look: u32,
    last_reactor_pass: Instant,
}

/// While other tasks keep running, the set is asked every this many passes (after a wake-up
/// the woken tasks and those they wake take about two passes, then the shard asks anyway,
/// when nothing else runs: one `epoll_wait` per turn, as Redis).
const LOOK_EVERY: u32 = 3;

impl Passes {
    fn new() -> Passes {
        Passes {
            woke: true,
            since_look: 0,
            last_reactor_pass: Instant::now(),
        }
    }

    fn woke_tasks(&mut self) {
        self.woke = true;
    }

    fn looked(&mut self) {
        self.since_look = 0;
    }

    /// Counts a pass that does not wait: whether it should ask the set anyway.
    fn due_to_look(&mut self) -> bool {
        self.since_look += 1;
        if self.since_look >= LOOK_EVERY {
            self.since_look = 0;
            return true;
        }
        false
    }

    /// Reads the counters: true when, since the previous pass, the task queue ran this task
    /// alone and glommio made no reactor pass (which may wake tasks), so nothing else is
    /// waiting to run.
    fn observe(&mut self) -> bool {
        let stats = glommio::executor().executor_stats();
        let reactor_passed = !stats.total_runtime().is_zero();
        if reactor_passed {
            self.last_reactor_pass = Instant::now();
        }
        let alone = !self.woke
            && !reactor_passed
            && stats.tasks_executed() == 1
            && stats.scheduler_runs() == 1;
        self.woke = false;
        alone
    }

    /// Lets the rest of the executor run before the next pass: the task queue, and
    /// glommio's reactor when it is due or a connection waits for it (`blocked_writes`).
    async fn next(&self, writes_wait: bool) {
        if !writes_wait && self.last_reactor_pass.elapsed() < REACTOR_EVERY {
            glommio::executor().yield_task_queue_now().await;
        } else {
            // A timer makes the queue wait for glommio's reactor pass, which fires it.
            glommio::timer::sleep(Duration::from_micros(1)).await;
        }
    }
}

/// Whether the kernel has `epoll_pwait2` (Linux 5.11), which naps need for a timeout
/// finer than a millisecond.
fn probe_epoll_pwait2(epfd: RawFd) -> io::Result<()> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: an empty set, one event's room, a zero timeout: returns at once.
    if unsafe { libc::epoll_pwait2(epfd, &mut event, 1, &zero, std::ptr::null()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    /// The socket was full at the last write: glommio polls it (see `Readiness::blocked_writes`).
    write_blocked: bool,
}

impl Registration {
    fn set_write_blocked(&mut self, blocked: bool) {
        if blocked != self.write_blocked {
            self.write_blocked = blocked;
            let count = &self.readiness.blocked_writes;
            count.set(if blocked {
                count.get() + 1
            } else {
                count.get() - 1
            });
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.set_write_blocked(false);
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
            registration: Registration {
                fd,
                readiness,
                write_blocked: false,
            },
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
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.registration.set_write_blocked(written.is_pending());
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
