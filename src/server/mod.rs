//! Start-up of the executors: one pinned glommio executor per shard plus the control executor,
//! each with its side of the call mesh, its SO_REUSEPORT listeners and its expire cron.

pub mod conn;
pub mod cpus;
mod internal;
pub mod readiness;

pub mod route;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use rustls::ServerConnection;

use crate::shard::mesh::{build_mesh, Mesh, MeshEnds};
use crate::shard::{next_client_id, ClientMeta, Shard, Shared};
use crate::util::listen;
use crate::util::time::now_ms;
use readiness::{watch_doorbell, Readiness};

/// Memory glommio registers with io_uring per executor. We do no file I/O, so keep it small:
/// registered memory counts against RLIMIT_MEMLOCK (8 MiB on most systems for non-root users).
const IO_MEMORY: usize = 256 * 1024;
const RING_DEPTH: usize = 256;

/// Where each executor runs.
#[derive(Debug, Clone)]
pub struct Topology {
    /// CPU of each data shard.
    pub shard_cpus: Vec<usize>,
    /// CPU of the control executor.
    pub control_cpu: usize,
    /// How long an idle shard executor busy-polls before sleeping (`--busy-poll-us`).
    pub busy_poll: Option<Duration>,
    /// How shards learn that client sockets have data (`--io`).
    pub io: IoPath,
    /// How long an idle shard on the epoll path naps in its epoll set (`--nap-us`).
    pub nap: Option<Duration>,
}

/// How shards learn that client sockets have data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPath {
    /// glommio's streams: an io_uring poll per read that finds the socket empty.
    Glommio,
    /// One epoll set per shard (`readiness`), for plain and TLS connections.
    Epoll,
}

impl Topology {
    /// Shards over the allowed CPUs. The control executor gets the first CPU to itself when
    /// there are more than two CPUs, or when fewer shards than CPUs were asked for (its
    /// cross-core hops then cost no context switch); otherwise it shares the first shard's.
    pub fn plan(cpus: &[usize], shards: Option<usize>) -> Topology {
        let spare_control =
            cpus.len() > 2 || (cpus.len() > 1 && shards.is_some_and(|n| n.max(1) < cpus.len()));
        let data_cpus: Vec<usize> = if spare_control {
            cpus[1..].to_vec()
        } else {
            cpus.to_vec()
        };
        let n = shards.unwrap_or(data_cpus.len()).max(1);
        Topology {
            shard_cpus: (0..n).map(|i| data_cpus[i % data_cpus.len()]).collect(),
            control_cpu: cpus[0],
            busy_poll: None,
            io: IoPath::Epoll,
            nap: Some(Duration::from_micros(200)),
        }
    }
}

/// Starts every executor and blocks until they exit. Returns an error text for start-up failures.
pub fn run(shared: Arc<Shared>, topo: Topology) -> Result<(), String> {
    probe_io_uring()?;
    check_port_free(&shared)?;
    // After the TCP ports, as Redis's `initServer` opens it.
    let unix_path = shared.config().get("unixsocket").to_string();
    if !unix_path.is_empty() {
        let perm = u32::from_str_radix(shared.config().get("unixsocketperm"), 8).unwrap_or(0);
        let sock = listen::unix_listener(&unix_path, perm)
            .map_err(|e| format!("Failed opening Unix socket: {e}"))?;
        *UNIX_LISTENER.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock);
    }
    let outcome = start_executors(shared, topo);
    if outcome.is_err() && !unix_path.is_empty() {
        // A start-up that failed after the socket was made leaves no socket file behind.
        let _ = std::fs::remove_file(&unix_path);
    }
    outcome
}

/// The `unixsocket` listener, from `run` until the first shard's executor takes it: that
/// shard accepts every Unix socket connection and spreads them over the shards
/// (`balanced_target`), as the TCP listeners' shards do.
static UNIX_LISTENER: std::sync::Mutex<Option<socket2::Socket>> = std::sync::Mutex::new(None);

fn start_executors(shared: Arc<Shared>, topo: Topology) -> Result<(), String> {
    let n = topo.shard_cpus.len();
    let mut ends = build_mesh(n + 1)
        .map_err(|e| format!("cannot create an eventfd for the cross-core mesh: {e}"))?;
    let mut started = Vec::new();
    let control_ends = ends.pop().expect("mesh has the control executor's ends");
    for (id, ends) in ends.into_iter().enumerate() {
        let cpu = topo.shard_cpus[id];
        started.push(spawn_executor(
            shared.clone(),
            id,
            n,
            false,
            cpu,
            ends,
            ExecutorTuning {
                busy_poll: topo.busy_poll,
                io: topo.io,
                nap: topo.nap,
            },
        )?);
    }
    started.push(spawn_executor(
        shared.clone(),
        n,
        n,
        true,
        topo.control_cpu,
        control_ends,
        ExecutorTuning {
            busy_poll: None,
            io: IoPath::Glommio,
            nap: None,
        },
    )?);
    // Every executor must be running before any can finish connecting its mesh ends.
    let mut handles = Vec::new();
    for (thread, ready) in started {
        match ready.recv() {
            Ok(Ok(())) => handles.push(thread),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => "an executor failed to start".to_string(),
                })
            }
        }
    }
    // Every listener is bound: Redis's `initServer` is over, so the pid file is written.
    crate::util::daemon::listening();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("an executor thread panicked".into()),
        }
    }
    Ok(())
}

/// How one executor idles and reads its client sockets (the control executor has none).
#[derive(Clone, Copy)]
struct ExecutorTuning {
    busy_poll: Option<Duration>,
    io: IoPath,
    nap: Option<Duration>,
}

type ExecutorHandle = (
    std::thread::JoinHandle<Result<(), String>>,
    std::sync::mpsc::Receiver<Result<(), String>>,
);

fn spawn_executor(
    shared: Arc<Shared>,
    id: usize,
    nshards: usize,
    is_control: bool,
    cpu: usize,
    ends: MeshEnds,
    tuning: ExecutorTuning,
) -> Result<ExecutorHandle, String> {
    let ExecutorTuning { busy_poll, io, nap } = tuning;
    let name = if is_control {
        "redcell-control".to_string()
    } else {
        format!("redcell-shard-{id}")
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&name)
        .io_memory(IO_MEMORY)
        .ring_depth(RING_DEPTH);
    if let Some(spin) = busy_poll {
        builder = builder.spin_before_park(spin);
    }
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || -> Result<(), String> {
            let ex = match builder.make() {
                Ok(ex) => ex,
                Err(e) => {
                    let msg = io_uring_failure(&e.to_string());
                    let _ = ready_tx.send(Err(msg.clone()));
                    return Err(msg);
                }
            };
            ex.run(async move {
                let (mesh, inbox) = Mesh::new(ends);
                let shard = Rc::new(Shard::new(id, nshards, is_control, shared.clone(), mesh));
                Shard::set_current(&shard);
                glommio::spawn_local(shard.clone().serve_inbox(inbox)).detach();
                // From here on, mesh messages reach this executor (loading at start-up uses
                // them before clients are let in): through the epoll driver on a shard of
                // the epoll path, through a doorbell watcher elsewhere.
                let readiness = match io {
                    IoPath::Epoll if !is_control => match Readiness::new(nap, busy_poll) {
                        Ok(r) => {
                            glommio::spawn_local(r.clone().drive(shard.clone())).detach();
                            Some(r)
                        }
                        Err(e) => {
                            eprintln!(
                                "# --io epoll: cannot create an epoll set ({e}); shard {id} \
                                 reads client sockets through glommio instead"
                            );
                            None
                        }
                    },
                    _ => None,
                };
                if readiness.is_none() {
                    glommio::spawn_local(watch_doorbell(shard.clone())).detach();
                }
                READINESS.with(|r| *r.borrow_mut() = readiness.clone());
                if is_control {
                    // The control executor serves the mesh and, in cluster mode, the bus.
                    if shared.config().get_bool("cluster-enabled") {
                        let hooks = crate::cluster::member::Hooks {
                            lost_slots: crate::cmd::call::delete_slots,
                            repl_offset: crate::repl::bus_offset,
                            follow: crate::repl::follow_for_cluster,
                            data_age: crate::repl::master_data_age_ms,
                            settled_offset: crate::repl::settled_offset,
                            master_role_settled: crate::repl::master_role_settled,
                        };
                        match crate::cluster::member::Member::start(shard.clone(), hooks) {
                            Ok(member) => crate::cluster::member::Member::set_current(member),
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.clone()));
                                return Err(e);
                            }
                        }
                    }
                    let replid = crate::repl::master::random_replid();
                    let repl = crate::repl::Repl::start(
                        shard.clone(),
                        crate::repl::Upcalls {
                            replay: internal::aof_replay(),
                            master_client: internal::master_client,
                        },
                        replid.clone(),
                    );
                    let persist =
                        crate::persist::Persist::start(shard.clone(), internal::aof_replay());
                    crate::repl::master::Master::start(shard.clone(), replid);
                    shared.control_ready.store(true, Ordering::Release);
                    let _ = ready_tx.send(Ok(()));
                    let position = persist.load_at_start().await;
                    // Clients may connect once every shard listens (they get -LOADING until
                    // here); the start-up ends when both happened.
                    while !crate::util::daemon::is_listening() {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                    crate::util::daemon::ready(
                        crate::repl::is_replica(),
                        !listen_ports(&shared).is_empty(),
                        shared.config().get("unixsocket"),
                    );
                    repl.begin(position).await;
                    std::future::pending::<()>().await;
                    return Ok(());
                }
                let mut listeners = match bind_all(&shared) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                let unix = (id == 0).then(|| {
                    UNIX_LISTENER
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take()
                });
                if let Some(sock) = unix.flatten() {
                    listeners.push(ClientListener {
                        // SAFETY: a listening socket whose ownership moves to the listener
                        // (see `Via::Unix` for why glommio's TCP type serves it).
                        listener: unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) },
                        via: Via::Unix,
                    });
                }
                let _ = ready_tx.send(Ok(()));
                // Connections wait in the listen backlog until the control executor is up.
                while !shared.control_ready.load(Ordering::Acquire) {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                glommio::spawn_local(expire_cron(shard.clone())).detach();
                let mut accepts = Vec::new();
                for l in listeners {
                    accepts.push(glommio::spawn_local(accept_loop(
                        shard.clone(),
                        l,
                        readiness.clone(),
                    )));
                }
                for a in accepts {
                    a.await;
                }
                // A shard without listeners of its own (only the Unix socket's shard has
                // one when `port` is 0) serves the connections handed to it.
                std::future::pending::<()>().await;
                Ok(())
            })
        })
        .map_err(|e| format!("cannot start thread {name}: {e}"))?;
    Ok((thread, ready_rx))
}

/// Checks that the kernel lets this process create an io_uring, before any executor starts
/// (glommio panics deep inside when it cannot), and explains a refusal.
pub fn probe_io_uring() -> Result<(), String> {
    // struct io_uring_params is 120 bytes; zeroed means default flags.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params) writes at most sizeof(io_uring_params) bytes.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: fd is the ring we just created and own.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let cause = match err.raw_os_error() {
        Some(libc::ENOSYS) => format!("the kernel has no io_uring ({err})"),
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring is refused ({err}): kernel.io_uring_disabled is set, or a seccomp profile \
             (e.g. a container runtime's default) blocks it"
        ),
        Some(libc::ENOMEM) => {
            format!("not enough locked memory for the ring ({err}); raise `ulimit -l`")
        }
        _ => err.to_string(),
    };
    Err(io_uring_failure(&cause))
}

fn io_uring_failure(cause: &str) -> String {
    format!(
        "cannot create an io_uring executor: {cause}\n\
         redcell needs io_uring (Linux 5.8+). Check that it is not disabled \
         (sysctl kernel.io_uring_disabled must be 0), that a container's seccomp profile allows the \
         io_uring_setup/io_uring_enter/io_uring_register syscalls (e.g. docker --security-opt seccomp=unconfined), \
         and that the locked-memory limit allows the rings (ulimit -l; 8 MiB is enough)."
    )
}

/// Our listeners share the port through SO_REUSEPORT, which would also let a second server
/// (ours or another) share it silently and take half the connections. So first bind every
/// address once without SO_REUSEPORT: a port a live process listens on fails here, as in
/// Redis, while connections a killed process left in TIME_WAIT do not (see `listen`).
fn check_port_free(shared: &Shared) -> Result<(), String> {
    for (port, kind) in listen_ports(shared) {
        for (addr, _optional) in shared.config().bind_addrs() {
            let host = if addr.contains(':') {
                format!("[{addr}]:{port}")
            } else {
                format!("{addr}:{port}")
            };
            let Ok(sa) = listen::parse(&host, &addr) else {
                continue; // reported by the real bind
            };
            match listen::probe(sa) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(format!(
                        "Could not create server TCP listening socket {host}: bind: Address already in use\n\
                         Failed listening on port {port} ({kind}), aborting."
                    ))
                }
                // Other failures (an address this host lacks, ...) are reported by the real
                // bind, which knows whether the address is optional.
                Err(_) => {}
            }
        }
    }
    Ok(())
}

/// The client ports to listen on, with the word Redis's start-up errors use for each: `port`
/// (plain TCP) and `tls-port`, either of which may be 0 (not open).
fn listen_ports(shared: &Shared) -> Vec<(u16, &'static str)> {
    [(shared.tcp_port, "TCP"), (shared.tls_port, "TLS")]
        .into_iter()
        .filter(|(port, _)| *port != 0)
        .collect()
}

/// A client listener and what its connections run over.
struct ClientListener {
    listener: TcpListener,
    via: Via,
}

/// What a client connection came over.
///
/// `Unix`: the `unixsocket` (Redis's `CLIENT_UNIX_SOCKET`). Its listener and connections are
/// held in glommio's `TcpListener`/`TcpStream` too. Those are only a socket descriptor that
/// io_uring accepts, reads, writes and shuts down, none of which depends on the address
/// family; what does (addresses, TCP_NODELAY, keepalive) is never asked of a Unix
/// connection (`accept_loop`). So a Unix client is served by the very code TCP clients are:
/// one `conn::serve` (no second monomorphization of it, nor of `EpollStream` or the TLS
/// stream), the epoll socket path, the hand-over to another shard and, for SYNC, to the
/// replication master; and the TCP path pays nothing for it. glommio's `UnixStream` would
/// have needed all of these made generic over the stream for no gain. TLS never applies to
/// it, as in Redis 7.0.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Tcp,
    Tls,
    Unix,
}

fn bind_all(shared: &Shared) -> Result<Vec<ClientListener>, String> {
    let cfg = shared.config().clone();
    let mut out = Vec::new();
    for (port, kind) in listen_ports(shared) {
        for (addr, optional) in cfg.bind_addrs() {
            let host = if addr.contains(':') {
                format!("[{addr}]:{port}")
            } else {
                format!("{addr}:{port}")
            };
            let sa: SocketAddr = listen::parse(&host, &addr)?;
            match listen::listener(sa, true) {
                Ok(listener) => out.push(ClientListener {
                    listener,
                    via: if kind == "TLS" { Via::Tls } else { Via::Tcp },
                }),
                Err(e) if optional => {
                    eprintln!(
                        "Warning: could not bind {host}: {e} (skipped, marked optional with '-')"
                    );
                }
                Err(e) => {
                    return Err(format!(
                        "Could not create server TCP listening socket {host}: {e}\n\
                         Failed listening on port {port} ({kind}), aborting."
                    ))
                }
            }
        }
    }
    // With only the Unix socket (`port 0`), its shard alone listens; the others serve the
    // connections it hands them.
    if out.is_empty() && cfg.get("unixsocket").is_empty() {
        return Err("Failed listening on any address".into());
    }
    Ok(out)
}

async fn accept_loop(
    shard: Rc<Shard>,
    client_listener: ClientListener,
    readiness: Option<Rc<Readiness>>,
) {
    let ClientListener { listener, via } = client_listener;
    let tls = via == Via::Tls;
    // Start-up is done once the shards accept: INFO's `used_memory_startup`.
    let _ = shard.shared.startup_memory.compare_exchange(
        0,
        crate::util::mem::used() as u64,
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
    );
    // A Unix socket client's address, its own and the server's end alike, is the socket's
    // path and `:0`, as Redis's `genClientAddrString` shows it.
    let local = match via {
        Via::Unix => format!("{}:0", shard.shared.config().get("unixsocket")),
        Via::Tcp | Via::Tls => listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shard.stats.borrow_mut().connections_received += 1;
        let peer = if via == Via::Unix {
            // No TCP options; protected mode lets it in, as Redis's `islocalClient` does.
            local.clone()
        } else {
            let _ = stream.set_nodelay(true);
            let keepalive = shard.settings.borrow().tcp_keepalive_s;
            if keepalive > 0 {
                set_keepalive(std::os::fd::AsRawFd::as_raw_fd(&stream), keepalive);
            }
            let peer_addr = stream.peer_addr().ok();
            if protected_mode_denies(&shard, peer_addr) {
                glommio::spawn_local(refuse(stream, tls, PROTECTED_MODE_DENIED)).detach();
                continue;
            }
            peer_addr.map(|a| a.to_string()).unwrap_or_default()
        };
        let maxclients = shard.settings.borrow().maxclients;
        let connected = &shard.shared.connected_clients;
        if connected.fetch_add(1, Ordering::Relaxed) >= maxclients {
            connected.fetch_sub(1, Ordering::Relaxed);
            shard.stats.borrow_mut().rejected_connections += 1;
            glommio::spawn_local(refuse(
                stream,
                tls,
                b"-ERR max number of clients reached\r\n",
            ))
            .detach();
            continue;
        }
        let accepted = Accepted {
            stream,
            via,
            peer,
            local: local.clone(),
        };
        let target = balanced_target(&shard);
        if target == shard.id {
            accepted.serve(&shard, readiness.clone());
        } else {
            accepted.hand_over(&shard, target).await;
        }
    }
}

thread_local! {
    /// This executor's epoll set, for connections handed over by another shard.
    static READINESS: RefCell<Option<Rc<Readiness>>> = const { RefCell::new(None) };
}

/// The shard a newly accepted connection should go to: this one, unless another serves
/// fewer connections (then the one serving fewest). The kernel spreads connections over the
/// shards' SO_REUSEPORT listeners by a hash of their addresses, which leaves some shards
/// with several more than others when there are few; a connection costs one mesh message
/// to move, once. The count is taken here, so accepts racing on other shards see it.
fn balanced_target(shard: &Shard) -> usize {
    let counts = &shard.shared.clients_per_shard;
    let load = |s: usize| counts[s].load(Ordering::Relaxed);
    let least = (0..counts.len())
        .min_by_key(|&s| load(s))
        .unwrap_or(shard.id);
    let target = if load(shard.id) > load(least) {
        least
    } else {
        shard.id
    };
    counts[target].fetch_add(1, Ordering::Relaxed);
    target
}

/// A connection accepted (and admitted under `maxclients`), not yet served.
struct Accepted {
    stream: TcpStream,
    via: Via,
    peer: String,
    local: String,
}

impl Accepted {
    /// Serves the connection on this shard, as long as it lives.
    fn serve(self, shard: &Rc<Shard>, readiness: Option<Rc<Readiness>>) {
        let Accepted {
            stream,
            via,
            peer,
            local,
        } = self;
        let s = shard.clone();
        glommio::spawn_local(async move {
            if via == Via::Tls {
                serve_tls(s.clone(), stream, readiness, peer, local).await;
            } else {
                use std::os::fd::AsRawFd;
                let meta = Rc::new(ClientMeta::new(
                    next_client_id(&s.shared),
                    stream.as_raw_fd(),
                    peer,
                    local,
                    via == Via::Unix,
                ));
                s.clients.borrow_mut().insert(meta.id, meta.clone());
                match readiness::attach(stream, readiness) {
                    Ok(stream) => conn::serve(s.clone(), stream, meta).await,
                    Err(stream) => conn::serve(s.clone(), stream, meta).await,
                }
            }
            s.shared.connected_clients.fetch_sub(1, Ordering::Relaxed);
            s.shared.clients_per_shard[s.id].fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }

    /// Sends the connection to shard `target`, which serves it.
    async fn hand_over(self, shard: &Rc<Shard>, target: usize) {
        use std::os::fd::AsRawFd;
        let Accepted {
            stream,
            via,
            peer,
            local,
        } = self;
        // SAFETY: dup of a descriptor this task owns; the copy travels whole to `target`.
        let fd = unsafe { libc::dup(stream.as_raw_fd()) };
        drop(stream);
        if fd < 0 {
            shard
                .shared
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
            shard.shared.clients_per_shard[target].fetch_sub(1, Ordering::Relaxed);
            return;
        }
        shard
            .post(target, false, move |s| {
                // SAFETY: `fd` is an open socket nobody else owns.
                let stream = unsafe { TcpStream::from_raw_fd(fd) };
                let readiness = READINESS.with(|r| r.borrow().clone());
                let accepted = Accepted {
                    stream,
                    via,
                    peer,
                    local,
                };
                accepted.serve(s, readiness);
            })
            .await;
    }
}

/// How long a client on the TLS port has to complete its handshake. Until then it holds a
/// place among `maxclients` but is no client yet (CLIENT LIST does not show it).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on the TLS port, once its handshake is done, served as any client (the
/// connection task is the same code, monomorphized for the TLS stream over the socket path).
async fn serve_tls(
    shard: Rc<Shard>,
    stream: TcpStream,
    readiness: Option<Rc<Readiness>>,
    peer: String,
    local: String,
) {
    match readiness::attach(stream, readiness) {
        Ok(stream) => serve_tls_over(&shard, stream, peer, local).await,
        Err(stream) => serve_tls_over(&shard, stream, peer, local).await,
    }
}

async fn serve_tls_over<S>(shard: &Rc<Shard>, stream: S, peer: String, local: String)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + std::os::fd::AsRawFd + Unpin,
    crate::tls::TlsStream<S, ServerConnection>: conn::ClientStream,
{
    let fd = stream.as_raw_fd();
    if let Some(stream) = tls_handshake(stream).await {
        let meta = Rc::new(ClientMeta::new(
            next_client_id(&shard.shared),
            fd,
            peer,
            local,
            false,
        ));
        shard.clients.borrow_mut().insert(meta.id, meta.clone());
        conn::serve(shard.clone(), stream, meta).await;
    }
}

/// The server side of a TLS handshake on an accepted connection, bounded in time. None when
/// it failed (no certificate where one is required, not TLS at all, a silent peer): the
/// connection is then dropped, as Redis drops it.
async fn tls_handshake<S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin>(
    stream: S,
) -> Option<crate::tls::TlsStream<S, ServerConnection>> {
    let session = crate::tls::accept_session()?;
    let mut tls = crate::tls::TlsStream::new(stream, session);
    crate::tls::within(TLS_HANDSHAKE_TIMEOUT, tls.handshake())
        .await
        .ok()
        .map(|()| tls)
}

/// Answers a connection that will not be served with Redis's error line, then closes it (on
/// the TLS port, after the handshake, so the client can read it).
async fn refuse(stream: TcpStream, tls: bool, reply: &'static [u8]) {
    use futures_lite::AsyncWriteExt;
    if tls {
        if let Some(mut s) = tls_handshake(stream).await {
            let _ = s.write_all(reply).await;
            let _ = s.close().await;
        }
        return;
    }
    let mut s = stream;
    let _ = s.write_all(reply).await;
    let _ = s.close().await;
}

/// Redis's reply to a non-loopback client in protected mode, before closing it.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Protected mode (Redis 7.0): with no password, only loopback clients are served.
fn protected_mode_denies(shard: &Shard, peer: Option<SocketAddr>) -> bool {
    let settings = shard.settings.borrow();
    let loopback = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
    };
    settings.protected_mode && peer.is_some_and(|p| !loopback(p.ip())) && {
        let acl = shard.shared.acl();
        acl.default_user().has(crate::acl::user::FLAG_NOPASS)
    }
}

/// TCP keepalive as Redis's `anetKeepAlive`: probes after `secs` idle, every third of that,
/// three of them.
fn set_keepalive(fd: i32, secs: u32) {
    let set = |level, name, v: i32| {
        // SAFETY: setsockopt reads `v` (an int) for the duration of the call.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &v as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            );
        }
    };
    let secs = secs.min(i32::MAX as u32) as i32;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 3).max(1));
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

/// Active expiry, `hz` times a second, as Redis's `activeExpireCycle`, and eviction while
/// memory is over `maxmemory` (`cmd::evict`); once a second, the idle `timeout` of this
/// core's clients.
async fn expire_cron(shard: Rc<Shard>) {
    let mut last_idle_check = now_ms();
    loop {
        let hz = shard.settings.borrow().hz.max(1);
        glommio::timer::sleep(Duration::from_millis(1000 / hz)).await;
        if shard.shared.active_expire.load(Ordering::Relaxed) {
            crate::cmd::call::active_expire(&shard, now_ms());
        }
        crate::cmd::evict::cron(&shard, now_ms());
        let now = now_ms();
        if now - last_idle_check >= 1000 {
            last_idle_check = now;
            close_idle_clients(&shard, now);
        }
    }
}

/// Closes clients idle for longer than `timeout` seconds, as Redis's
/// `clientsCronHandleTimeout`: blocked, subscribed and MONITOR clients are spared.
fn close_idle_clients(shard: &Rc<Shard>, now: i64) {
    let timeout = shard.settings.borrow().idle_timeout_s;
    if timeout == 0 {
        return;
    }
    let limit_ms = timeout.saturating_mul(1000).min(i64::MAX as u64) as i64;
    for meta in shard.clients.borrow().values() {
        let idle = now - meta.last_interaction_ms.get();
        if idle > limit_ms
            && !meta.blocked.get()
            && !meta.in_pubsub()
            && !meta.monitor.get()
            && !meta.killed.get()
            && meta.fd >= 0
        {
            meta.killed.set(true);
            // SAFETY: `shutdown` only affects the socket; the connection task owns the fd,
            // sees the end of its stream and cleans up.
            unsafe {
                libc::shutdown(meta.fd, libc::SHUT_RDWR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Topology;

    #[test]
    fn control_gets_a_cpu_of_its_own_when_one_is_spare() {
        let plan = |cpus: &[usize], shards| {
            let t = Topology::plan(cpus, shards);
            (t.shard_cpus, t.control_cpu)
        };
        assert_eq!(plan(&[0], None), (vec![0], 0));
        assert_eq!(plan(&[0], Some(0)), (vec![0], 0));
        assert_eq!(plan(&[0], Some(2)), (vec![0, 0], 0));
        assert_eq!(plan(&[0, 1], None), (vec![0, 1], 0));
        assert_eq!(plan(&[0, 1], Some(1)), (vec![1], 0));
        assert_eq!(plan(&[0, 1], Some(3)), (vec![0, 1, 0], 0));
        assert_eq!(plan(&[2, 3, 4, 5], None), (vec![3, 4, 5], 2));
        assert_eq!(plan(&[2, 3, 4, 5], Some(4)), (vec![3, 4, 5, 3], 2));
    }
}
