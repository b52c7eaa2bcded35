//! The cluster member on the control core: bus listener and links, message handling (as
//! Redis 7.0's `clusterProcessPacket`), the 100 ms cron with failure detection, nodes.conf
//! saving, and the slot map handed to every shard after each change.

use std::cell::{Cell, RefCell};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use hashbrown::HashMap;

use super::bus::{
    self, msg_type, node_flag, Frame, Gossip, Header, IpField, Message, NodeName, Payload, Ping,
    PingExt, Publish, SlotBitmap, Update,
};
use super::nodes_conf;
use super::slotmap::{EndpointType, SlotMap};
use super::state::{ClusterState, Node};
use crate::shard::Shard;
use crate::slot::SLOTS;
use crate::tls::MaybeTls;
use crate::util::time::now_ms;

mod election;
mod failover;

/// Failure reports older than this many node timeouts are ignored (`CLUSTER_FAIL_REPORT_VALIDITY_MULT`).
const FAIL_REPORT_VALIDITY_MULT: i64 = 2;
/// A FAIL master with slots is cleared after this many node timeouts (`CLUSTER_FAIL_UNDO_TIME_MULT`).
const FAIL_UNDO_TIME_MULT: i64 = 2;
/// Forgotten nodes are not re-added from gossip for this long (`CLUSTER_BLACKLIST_TTL`).
const BLACKLIST_TTL_MS: i64 = 60_000;
const CRON_PERIOD: Duration = Duration::from_millis(100);

/// The cluster settings read from the configuration at start (and on CONFIG SET).
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub node_timeout: i64,
    pub require_full_coverage: bool,
    pub allow_reads_when_down: bool,
    pub endpoint_type: EndpointType,
    pub announce_ip: String,
    pub announce_hostname: String,
    /// Client and bus ports announced to other nodes.
    pub port: u16,
    pub cport: u16,
    /// Under `tls-cluster`, the plain client port (bus header `pport`; 0: none).
    pub pport: u16,
    pub replica_no_failover: bool,
    /// `cluster-allow-replica-migration`.
    pub allow_replica_migration: bool,
}

/// The client port the cluster knows this node by: the TLS port under `tls-cluster` (its bus
/// port then follows it), as Redis's `clusterInit`.
pub fn client_port(c: &crate::config::Config, tcp_port: u16, tls_port: u16) -> u16 {
    if c.get_bool("tls-cluster") && tls_port != 0 {
        tls_port
    } else {
        tcp_port
    }
}

/// The port the bus listens on: `cluster-port`, or the client port + 10000.
fn bus_port(c: &crate::config::Config, tcp_port: u16) -> u16 {
    match c.get_i64("cluster-port") {
        0 => tcp_port.wrapping_add(10000),
        p => p as u16,
    }
}

impl MemberConfig {
    pub fn from_config(c: &crate::config::Config, tcp_port: u16) -> MemberConfig {
        let cport = bus_port(c, tcp_port);
        let announced = |name: &str, default: u16| match c.get_i64(name) {
            0 => default,
            p => p as u16,
        };
        MemberConfig {
            node_timeout: c.get_i64("cluster-node-timeout").max(1),
            require_full_coverage: c.get_bool("cluster-require-full-coverage"),
            allow_reads_when_down: c.get_bool("cluster-allow-reads-when-down"),
            endpoint_type: EndpointType::from_config(c.get("cluster-preferred-endpoint-type")),
            announce_ip: c.get("cluster-announce-ip").to_string(),
            announce_hostname: c.get("cluster-announce-hostname").to_string(),
            port: announced("cluster-announce-port", tcp_port),
            pport: if c.get_bool("tls-cluster") {
                c.get_i64("port") as u16
            } else {
                0
            },
            cport: announced("cluster-announce-bus-port", cport),
            replica_no_failover: c.get_bool("cluster-replica-no-failover"),
            allow_replica_migration: c.get_bool("cluster-allow-replica-migration"),
        }
    }
}

/// One TCP connection of the bus, in either direction.
pub struct Link {
    /// The node at the other end: known from the start for links we open, learnt from the
    /// first message's sender for links peers open.
    pub node: RefCell<Option<NodeName>>,
    pub outbound: bool,
    pub ctime: i64,
    fd: i32,
    tx: LocalSender<Vec<u8>>,
    closed: Cell<bool>,
    /// Our own address on this connection (a MEET teaches us our IP).
    local_ip: String,
    peer_ip: String,
    pub send_queued: Cell<usize>,
}

impl Link {
    /// Closes the connection; the reader task then drops the link from the tables.
    fn close(&self) {
        if !self.closed.replace(true) {
            // SAFETY: shutting down our own socket; the fd stays owned by its stream.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        }
    }
}

thread_local! {
    /// The cluster member, on the control executor's thread in cluster mode.
    static CURRENT: RefCell<Option<Rc<Member>>> = const { RefCell::new(None) };
}

/// What the member needs from the layers above, given at start.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Deletes, on a data shard, the keys of slots this node lost (the command layer runs
    /// the deletions as commands so they propagate).
    pub lost_slots: fn(&Rc<Shard>, &[u16]),
    /// This node's replication offset, for the bus header (`repl::bus_offset`).
    pub repl_offset: fn() -> i64,
    /// Makes replication follow this master's address, or none (`repl::follow_for_cluster`):
    /// asked every cron tick, so it may do nothing until it can.
    pub follow: fn(Option<(String, u16)>),
    /// How old a replica's data is, in ms (`repl::master_data_age_ms`).
    pub data_age: fn() -> i64,
    /// A master's replication offset once every write done until now is in its stream
    /// (`repl::settled_offset`): what a paused master announces in a manual failover.
    pub settled_offset: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = i64>>>,
    /// Whether replication is a master's in full (`repl::master_role_settled`): a promoted
    /// replica publishes the slot map that routes writes to it only then.
    pub master_role_settled: fn() -> bool,
}

pub struct Member {
    /// `tls-cluster` at start-up: every bus link, both ways, is TLS.
    tls: bool,
    hooks: Hooks,
    shard: Rc<Shard>,
    pub state: RefCell<ClusterState>,
    pub cfg: RefCell<MemberConfig>,
    conf_path: PathBuf,
    conf_writer: nodes_conf::Writer,
    /// Our outbound link to each node.
    links: RefCell<HashMap<NodeName, Rc<Link>>>,
    /// Links peers opened to us.
    inbound: RefCell<Vec<Rc<Link>>>,
    connecting: RefCell<hashbrown::HashSet<NodeName>>,
    /// Nodes removed by CLUSTER FORGET, not to be re-learnt from gossip until the time given.
    blacklist: RefCell<HashMap<NodeName, i64>>,
    pub sent: RefCell<[u64; msg_type::COUNT]>,
    pub received: RefCell<[u64; msg_type::COUNT]>,
    save_pending: Cell<bool>,
    map_pending: Cell<bool>,
    map_version: Cell<u64>,
    /// (current epoch, our config epoch, last vote epoch) as last fsynced to nodes.conf.
    synced_epochs: Cell<Option<(u64, u64, u64)>>,
    iteration: Cell<u64>,
    rng: Cell<u64>,
    /// PUBLISH / PUBLISHSHARD messages from the bus, waiting to be delivered on the data
    /// cores in arrival order by a single forwarder task (running while `forwarding`).
    bus_inbox: RefCell<std::collections::VecDeque<(BusMessage, bool)>>,
    forwarding: Cell<bool>,
    /// A manual failover one of our replicas asked for (MFSTART): when it is given up (unix
    /// ms, 0 = none) and which replica; writes are paused meanwhile (see `failover`).
    mf_end: Cell<i64>,
    mf_slave: Cell<Option<NodeName>>,
    /// The manual failover ended: unpause once the slot map is published.
    mf_unpause: Cell<bool>,
    /// As a paused master: our offset once every write before the pause is in the stream;
    /// only then do our headers say PAUSED (with it).
    mf_offset: Cell<Option<i64>>,
    /// As a replica in a manual failover: the election may start (Redis's `mf_can_start`),
    /// and the offset our paused master announced (`mf_master_offset`, -1: not yet).
    mf_can_start: Cell<bool>,
    mf_master_offset: Cell<i64>,
    /// As a replica: the election to replace a failed master (see `election`).
    election: RefCell<election::Election>,
    /// Held for the process's life: the exclusive lock on nodes.conf.
    _lock: std::fs::File,
}

/// A published (channel, message), shared by the cores it is delivered on.
type BusMessage = Arc<(Box<[u8]>, Box<[u8]>)>;

/// A new random node name: 40 lowercase hex characters.
fn random_name(seed: &mut u64) -> NodeName {
    let mut name = [0u8; 40];
    for b in name.iter_mut() {
        *seed = xorshift(*seed);
        *b = b"0123456789abcdef"[(*seed >> 60) as usize];
    }
    NodeName(name)
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    // Never zero: xorshift would stay at zero.
    (u64::from_ne_bytes(buf) ^ (now_ms() as u64).rotate_left(17)) | 1
}

impl Member {
    /// Makes `member` the one `current` returns on this thread (the control executor's).
    pub fn set_current(member: Rc<Member>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(member));
    }

    /// The cluster member, when called on the control executor in cluster mode.
    pub fn current() -> Option<Rc<Member>> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Loads (or creates) nodes.conf, binds the bus port and starts the cron. Errors are
    /// start-up failures worded for the log.
    pub fn start(shard: Rc<Shard>, hooks: Hooks) -> Result<Rc<Member>, String> {
        let (cfg, conf_path, binds) = {
            let c = shard.shared.config();
            let file = PathBuf::from(c.get("cluster-config-file"));
            let path = if file.is_absolute() {
                file
            } else {
                PathBuf::from(c.get("dir")).join(file)
            };
            (
                MemberConfig::from_config(
                    &c,
                    client_port(&c, shard.shared.tcp_port, shard.shared.tls_port),
                ),
                path,
                c.bind_addrs(),
            )
        };
        let lock = lock_conf(&conf_path)?;
        let mut seed = random_seed();
        let text = std::fs::read_to_string(&conf_path).unwrap_or_default();
        let now = now_ms();
        let (state, fresh) = if text.trim().is_empty() {
            let me = random_name(&mut seed);
            let st = ClusterState::new(me, &cfg.announce_ip, cfg.port, cfg.cport);
            (st, true)
        } else {
            let st = nodes_conf::parse(&text, now)
                .map_err(|e| format!("Unrecoverable error: {e} ({})", conf_path.display()))?;
            (st, false)
        };
        let conf_writer = nodes_conf::Writer::new(conf_path.clone())
            .map_err(|e| format!("Could not start the nodes.conf writer: {e}"))?;
        let tls = shard.shared.config().get_bool("tls-cluster");
        let member = Rc::new(Member {
            tls,
            shard: shard.clone(),
            hooks,
            state: RefCell::new(state),
            cfg: RefCell::new(cfg.clone()),
            conf_path,
            conf_writer,
            links: Default::default(),
            inbound: Default::default(),
            connecting: Default::default(),
            blacklist: Default::default(),
            sent: RefCell::new([0; msg_type::COUNT]),
            received: RefCell::new([0; msg_type::COUNT]),
            save_pending: Cell::new(true),
            map_pending: Cell::new(true),
            map_version: Cell::new(0),
            synced_epochs: Cell::new(None),
            iteration: Cell::new(0),
            rng: Cell::new(seed),
            bus_inbox: Default::default(),
            forwarding: Cell::new(false),
            mf_end: Cell::new(0),
            mf_slave: Cell::new(None),
            mf_unpause: Cell::new(false),
            mf_offset: Cell::new(None),
            mf_can_start: Cell::new(false),
            mf_master_offset: Cell::new(-1),
            election: Default::default(),
            _lock: lock,
        });
        member.apply_config_to_myself();
        {
            let mut st = member.state.borrow_mut();
            for n in st.nodes.values_mut() {
                n.ctime = now;
            }
            st.update_state(cfg.require_full_coverage);
        }
        if fresh {
            eprintln!(
                "No cluster configuration found, I'm {}",
                member.state.borrow().myself
            );
        }
        member.save_now().map_err(|e| {
            format!(
                "Unrecoverable error: cannot write {}: {e}",
                member.conf_path.display()
            )
        })?;
        let bus_port = {
            let c = shard.shared.config();
            bus_port(
                &c,
                client_port(&c, shard.shared.tcp_port, shard.shared.tls_port),
            )
        };
        for (addr, optional) in binds {
            let host = if addr.contains(':') {
                format!("[{addr}]:{bus_port}")
            } else {
                format!("{addr}:{bus_port}")
            };
            // One listener, without SO_REUSEPORT: a bus port another live process holds
            // is refused here, and a killed predecessor's lingering connections are not in
            // the way (SO_REUSEADDR, as Redis; see `util::listen`).
            let bound = crate::util::listen::parse(&host, &addr)
                .and_then(|sa| crate::util::listen::listener(sa, false).map_err(|e| e.to_string()));
            match bound {
                Ok(l) => {
                    glommio::spawn_local(member.clone().accept_loop(l)).detach();
                }
                Err(_) if optional => {}
                Err(e) => {
                    return Err(format!(
                        "Could not create server TCP listening socket {host}: {e}\n\
                         Failed listening on port {bus_port} (cluster), aborting."
                    ))
                }
            }
        }
        glommio::spawn_local(member.clone().cron()).detach();
        member.after_change();
        Ok(member)
    }

    async fn accept_loop(self: Rc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok(stream) if self.tls => {
                    // The handshake runs on a task of its own, so a slow peer holds up no one.
                    let me = self.clone();
                    glommio::spawn_local(async move {
                        let limit =
                            Duration::from_millis(me.cfg.borrow().node_timeout.max(1000) as u64);
                        if let Ok(stream) = crate::tls::server_handshake(stream, limit).await {
                            let link = me.spawn_link(stream, None);
                            me.inbound.borrow_mut().push(link);
                        }
                    })
                    .detach();
                }
                Ok(stream) => {
                    let link = self.spawn_link(MaybeTls::Plain(stream), None);
                    self.inbound.borrow_mut().push(link);
                }
                Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Starts the reader and writer tasks of a connected link.
    fn spawn_link(
        self: &Rc<Self>,
        stream: MaybeTls<TcpStream>,
        node: Option<NodeName>,
    ) -> Rc<Link> {
        let socket = stream.socket();
        let fd = socket.as_raw_fd();
        let local_ip = socket
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let peer_ip = socket
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let (tx, rx) = local_channel::new_unbounded::<Vec<u8>>();
        let link = Rc::new(Link {
            outbound: node.is_some(),
            node: RefCell::new(node),
            ctime: now_ms(),
            fd,
            tx,
            closed: Cell::new(false),
            local_ip,
            peer_ip,
            send_queued: Cell::new(0),
        });
        let (mut reader, mut writer) = futures_lite::io::split(stream);
        let wlink = link.clone();
        glommio::spawn_local(async move {
            while let Some(buf) = rx.recv().await {
                wlink
                    .send_queued
                    .set(wlink.send_queued.get().saturating_sub(buf.len()));
                let sent = match writer.write_all(&buf).await {
                    Ok(()) => writer.flush().await,
                    Err(e) => Err(e),
                };
                if sent.is_err() {
                    wlink.close();
                    break;
                }
            }
        })
        .detach();
        let me = self.clone();
        let rlink = link.clone();
        glommio::spawn_local(async move {
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            'read: loop {
                let n = match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if rlink.closed.get() {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match bus::frame(&buf, bus::DEFAULT_MAX_MSG_LEN) {
                        Frame::Incomplete => break,
                        Frame::Error(e) => {
                            eprintln!("Cluster bus: closing link from {}: {e}", rlink.peer_ip);
                            break 'read;
                        }
                        Frame::Complete(len) => {
                            let decoded = bus::decode(&buf[..len]);
                            buf.drain(..len);
                            match decoded {
                                Ok(msg) => {
                                    if !me.handle(&rlink, msg) {
                                        break 'read;
                                    }
                                }
                                Err(e) if e.closes_link() => {
                                    eprintln!(
                                        "Cluster bus: closing link from {}: {e}",
                                        rlink.peer_ip
                                    );
                                    break 'read;
                                }
                                Err(e) => eprintln!(
                                    "Cluster bus: ignoring a message from {}: {e}",
                                    rlink.peer_ip
                                ),
                            }
                        }
                    }
                }
            }
            rlink.close();
            me.forget_link(&rlink);
        })
        .detach();
        link
    }

    fn forget_link(&self, link: &Rc<Link>) {
        if link.outbound {
            if let Some(name) = *link.node.borrow() {
                let mut links = self.links.borrow_mut();
                if links.get(&name).is_some_and(|l| Rc::ptr_eq(l, link)) {
                    links.remove(&name);
                }
            }
        } else {
            self.inbound.borrow_mut().retain(|l| !Rc::ptr_eq(l, link));
        }
    }

    fn send(&self, link: &Link, msg: &Message) {
        if link.closed.get() {
            return;
        }
        let bytes = bus::encode(msg);
        link.send_queued.set(link.send_queued.get() + bytes.len());
        if link.tx.try_send(bytes).is_ok() {
            if let Some(c) = self.sent.borrow_mut().get_mut(msg.header.msg_type as usize) {
                *c += 1;
            }
        }
    }

    /// Sends `msg` on every outbound link to a node out of handshake.
    fn broadcast(&self, msg: &Message) {
        let links: Vec<Rc<Link>> = self.links.borrow().values().cloned().collect();
        let st = self.state.borrow();
        for link in links {
            let known = link
                .node
                .borrow()
                .and_then(|n| st.nodes.get(&n).map(|n| !n.has(node_flag::HANDSHAKE)))
                .unwrap_or(false);
            if known {
                self.send(&link, msg);
            }
        }
    }

    /// A PUBLISH (or SPUBLISH) of one of our clients: as Redis's `clusterPropagatePublish`,
    /// PUBLISH goes to every node we have a link to, PUBLISHSHARD to the other nodes
    /// serving our slots (our replicas).
    pub fn propagate_publish(&self, channel: &[u8], message: &[u8], sharded: bool) {
        let publish = Publish {
            channel: channel.to_vec(),
            message: message.to_vec(),
        };
        if !sharded {
            let msg = Message {
                header: self.header(msg_type::PUBLISH),
                payload: Payload::Publish(publish),
            };
            self.broadcast(&msg);
            return;
        }
        let replicas: Vec<NodeName> = {
            let st = self.state.borrow();
            st.nodes
                .values()
                .filter(|n| n.master == Some(st.myself))
                .map(|n| n.name)
                .collect()
        };
        if replicas.is_empty() {
            return;
        }
        let msg = Message {
            header: self.header(msg_type::PUBLISHSHARD),
            payload: Payload::PublishShard(publish),
        };
        for name in replicas {
            let link = self.links.borrow().get(&name).cloned();
            if let Some(link) = link {
                self.send(&link, &msg);
            }
        }
    }

    /// A PUBLISH / PUBLISHSHARD from a known node: delivered to this node's subscribers on
    /// every core, never sent on. Skipped at once when no core has subscribers (as Redis).
    fn on_publish(self: &Rc<Self>, p: &Publish, sharded: bool) {
        if !self.shard.shared.pubsub_counts.any(sharded) {
            return;
        }
        let m: BusMessage = Arc::new((p.channel.as_slice().into(), p.message.as_slice().into()));
        self.bus_inbox.borrow_mut().push_back((m, sharded));
        if self.forwarding.replace(true) {
            return;
        }
        let me = self.clone();
        glommio::spawn_local(async move {
            loop {
                let next = me.bus_inbox.borrow_mut().pop_front();
                let Some((m, sharded)) = next else { break };
                let shard = &me.shard;
                for to in 0..shard.nshards {
                    if !shard.shared.pubsub_counts.has(to, sharded) {
                        continue;
                    }
                    let m = m.clone();
                    // Each core runs our jobs in order; nobody needs to wait for them.
                    shard
                        .post(to, false, move |s| {
                            crate::shard::pubsub::deliver(s, &m.0, &m.1, sharded);
                        })
                        .await;
                }
            }
            me.forwarding.set(false);
        })
        .detach();
    }

    /// Our header for a message of type `ty`.
    fn header(&self, ty: u16) -> Header {
        let st = self.state.borrow();
        let cfg = self.cfg.borrow();
        let me = st.me();
        let mut myslots = SlotBitmap::default();
        let slot_owner = me.master.unwrap_or(st.myself);
        for (s, owner) in st.slots.iter().enumerate() {
            if owner.as_ref() == Some(&slot_owner) {
                myslots.set(s as u16, true);
            }
        }
        // A master in a manual failover flags every message once its paused offset is known,
        // and gives that offset.
        let mut mflags = [0u8; 3];
        let mut offset = (self.hooks.repl_offset)();
        if let (true, Some(paused)) = (me.is_master() && self.mf_paused(), self.mf_offset.get()) {
            mflags[0] |= bus::mflag::PAUSED;
            offset = paused;
        }
        Header {
            port: cfg.port,
            msg_type: ty,
            current_epoch: st.current_epoch,
            config_epoch: st.my_epoch(),
            sender: st.myself,
            myslots,
            replicaof: me.master.unwrap_or(NodeName::NULL),
            myip: IpField::new(cfg.announce_ip.as_bytes()),
            cport: cfg.cport,
            pport: cfg.pport,
            flags: me.flags,
            state: if st.ok { 0 } else { 1 },
            offset: offset as u64,
            mflags,
            ..Header::default()
        }
    }

    /// A PING, PONG or MEET with gossip about a tenth of the nodes (at least 3) plus every
    /// node we suspect (PFAIL), as Redis's `clusterSendPing`.
    fn ping_message(&self, ty: u16, to: Option<NodeName>) -> Message {
        let header = self.header(ty);
        let st = self.state.borrow();
        let fresh = st.nodes.len().saturating_sub(2);
        let wanted = (st.nodes.len() / 10).max(3).min(fresh);
        let candidates: Vec<&Node> = st
            .nodes
            .values()
            .filter(|n| {
                n.name != st.myself
                    && Some(n.name) != to
                    && !n.has(node_flag::PFAIL)
                    && !n.has(node_flag::HANDSHAKE | node_flag::NOADDR)
                    && (self.links.borrow().contains_key(&n.name) || st.slots_of(&n.name) > 0)
            })
            .collect();
        let mut gossip = Vec::new();
        let mut picked: Vec<NodeName> = Vec::new();
        let mut tries = 0;
        while gossip.len() < wanted && !candidates.is_empty() && tries < wanted * 3 {
            tries += 1;
            let i = (self.next_random() % candidates.len() as u64) as usize;
            let n = candidates[i];
            if picked.contains(&n.name) {
                continue;
            }
            picked.push(n.name);
            gossip.push(gossip_entry(n));
        }
        for n in st.nodes.values() {
            if n.has(node_flag::PFAIL)
                && !n.has(node_flag::HANDSHAKE | node_flag::NOADDR)
                && n.name != st.myself
            {
                gossip.push(gossip_entry(n));
            }
        }
        let mut exts = Vec::new();
        let hostname = &self.cfg.borrow().announce_hostname;
        if !hostname.is_empty() {
            exts.push(PingExt::Hostname(hostname.as_bytes().to_vec()));
        }
        let ping = Ping { gossip, exts };
        let payload = match ty {
            msg_type::PONG => Payload::Pong(ping),
            msg_type::MEET => Payload::Meet(ping),
            _ => Payload::Ping(ping),
        };
        Message::new(header, payload)
    }

    /// A fresh random node name (handshakes, CLUSTER RESET HARD).
    pub fn new_name(&self) -> NodeName {
        let mut seed = self.next_random();
        random_name(&mut seed)
    }

    fn next_random(&self) -> u64 {
        let x = xorshift(self.rng.get());
        self.rng.set(x);
        x
    }

    fn send_ping(&self, link: &Link, ty: u16) {
        let to = *link.node.borrow();
        // Only a ping on our own link waits for a PONG there (an MFSTART is answered with a
        // PING on the link it came on).
        if link.outbound && (ty == msg_type::PING || ty == msg_type::MEET) {
            if let Some(name) = to {
                if let Some(n) = self.state.borrow_mut().nodes.get_mut(&name) {
                    if n.ping_sent == 0 {
                        n.ping_sent = now_ms();
                    }
                }
            }
        }
        let msg = self.ping_message(ty, to);
        self.send(link, &msg);
    }

    /// Handles one message; false closes the link.
    fn handle(self: &Rc<Self>, link: &Rc<Link>, msg: Message) -> bool {
        let now = now_ms();
        let h = &msg.header;
        let ty = h.msg_type;
        if let Some(c) = self.received.borrow_mut().get_mut(ty as usize) {
            *c += 1;
        }
        if h.sender == self.state.borrow().myself {
            // Only a node that met itself (CLUSTER MEET to its own address) or a forgery
            // speaks in our name: drop the handshake that led here, never act on it.
            if let Some(name) = *link.node.borrow() {
                let mut st = self.state.borrow_mut();
                if st
                    .nodes
                    .get(&name)
                    .is_some_and(|n| n.has(node_flag::HANDSHAKE))
                {
                    st.nodes.remove(&name);
                    self.save_pending.set(true);
                }
            }
            self.after_change();
            return false;
        }
        let sender_known = {
            let st = self.state.borrow();
            st.nodes
                .get(&h.sender)
                .is_some_and(|n| !n.has(node_flag::HANDSHAKE))
        };
        if sender_known {
            let mut st = self.state.borrow_mut();
            if let Some(n) = st.nodes.get_mut(&h.sender) {
                n.data_received = now;
            }
            if h.current_epoch > st.current_epoch {
                st.current_epoch = h.current_epoch;
                self.save_pending.set(true);
            }
            let sender_is_master = h.replicaof.is_null();
            if let Some(n) = st.nodes.get_mut(&h.sender) {
                if h.config_epoch > n.config_epoch && sender_is_master {
                    n.config_epoch = h.config_epoch;
                    self.save_pending.set(true);
                }
                n.repl_offset = h.offset as i64;
            }
            // Our paused master's offset, in a manual failover we started.
            let from_master = st.me().master == Some(h.sender) && !st.me().is_master();
            drop(st);
            if from_master
                && self.mf_end.get() != 0
                && h.mflags[0] & bus::mflag::PAUSED != 0
                && self.mf_master_offset.get() == -1
            {
                self.mf_master_offset.set(h.offset as i64);
                eprintln!(
                    "Received replication offset for paused master manual failover: {}",
                    h.offset
                );
            }
        }
        if ty == msg_type::PING || ty == msg_type::MEET {
            self.on_ping_or_meet(link, &msg, sender_known);
        }
        if matches!(ty, msg_type::PING | msg_type::PONG | msg_type::MEET) {
            if !self.on_ping_family(link, &msg, sender_known) {
                self.after_change();
                return false;
            }
        } else if sender_known {
            match &msg.payload {
                Payload::Fail(name) => self.on_fail(name),
                Payload::Update(u) => self.on_update(u),
                Payload::Publish(p) => self.on_publish(p, false),
                Payload::PublishShard(p) => self.on_publish(p, true),
                Payload::FailoverAuthRequest => self.on_auth_request(&h.sender, h),
                Payload::FailoverAuthAck => self.on_auth_ack(&h.sender, h),
                Payload::MfStart => self.on_mfstart(link, &h.sender),
                _ => {}
            }
        }
        self.after_change();
        true
    }

    fn on_ping_or_meet(&self, link: &Rc<Link>, msg: &Message, sender_known: bool) {
        let h = &msg.header;
        // A MEET teaches us the address peers reach us at, unless we announce one; so does
        // any PING while we know none (a later MEET corrects it if needed).
        let learn = msg.header.msg_type == msg_type::MEET || self.state.borrow().me().ip.is_empty();
        if learn
            && self.cfg.borrow().announce_ip.is_empty()
            && self.state.borrow().me().ip != link.local_ip
        {
            self.state.borrow_mut().me_mut().ip = link.local_ip.clone();
            self.save_pending.set(true);
            self.map_pending.set(true);
        }
        if !sender_known && msg.header.msg_type == msg_type::MEET {
            // A random name until its PONG tells us the real one, as Redis does.
            let mut node = Node::new(self.new_name(), node_flag::HANDSHAKE);
            node.ip = if h.myip.is_empty() {
                link.peer_ip.clone()
            } else {
                String::from_utf8_lossy(h.myip.as_bytes()).into_owned()
            };
            node.port = h.port;
            node.cport = h.cport;
            node.ctime = now_ms();
            self.state.borrow_mut().nodes.insert(node.name, node);
            self.save_pending.set(true);
            if let Some(p) = msg.payload.ping() {
                self.process_gossip(&h.sender, p, false);
            }
        }
        self.send_ping(link, msg_type::PONG);
    }

    /// The parts common to PING, PONG and MEET. False: close the link.
    fn on_ping_family(self: &Rc<Self>, link: &Rc<Link>, msg: &Message, sender_known: bool) -> bool {
        let h = &msg.header;
        let now = now_ms();
        let link_node = *link.node.borrow();
        if link.outbound {
            let Some(name) = link_node else { return false };
            let in_handshake = self
                .state
                .borrow()
                .nodes
                .get(&name)
                .is_some_and(|n| n.has(node_flag::HANDSHAKE));
            if in_handshake {
                if sender_known {
                    // We already know this node under its real name: drop the handshake copy.
                    self.state.borrow_mut().nodes.remove(&name);
                    self.save_pending.set(true);
                    return false;
                }
                self.rename_handshake(name, h.sender, link);
            } else if name != h.sender {
                // The node at that address changed its id: it is someone else now.
                let mut st = self.state.borrow_mut();
                if let Some(n) = st.nodes.get_mut(&name) {
                    n.flags |= node_flag::NOADDR;
                    n.ip.clear();
                    n.port = 0;
                    n.cport = 0;
                }
                self.save_pending.set(true);
                return false;
            }
        } else if link_node.is_none() && sender_known {
            *link.node.borrow_mut() = Some(h.sender);
        }
        let sender_known = sender_known || link.outbound;
        if !sender_known {
            return true;
        }
        let mut st = self.state.borrow_mut();
        if link.outbound && msg.header.msg_type == msg_type::PONG {
            let has_slots = st.slots.iter().any(|o| o.as_ref() == Some(&h.sender));
            if let Some(n) = st.nodes.get_mut(&h.sender) {
                n.pong_received = now;
                n.ping_sent = 0;
                if n.has(node_flag::PFAIL) {
                    n.flags &= !node_flag::PFAIL;
                    self.map_pending.set(true);
                } else if n.has(node_flag::FAIL) {
                    let timeout = self.cfg.borrow().node_timeout;
                    if !n.is_master()
                        || !has_slots
                        || now - n.fail_time > timeout * FAIL_UNDO_TIME_MULT
                    {
                        n.flags &= !node_flag::FAIL;
                        self.save_pending.set(true);
                        self.map_pending.set(true);
                    }
                }
            }
        }
        // Inbound PING from a node we know at another address: it moved.
        if !link.outbound && msg.header.msg_type == msg_type::PING {
            if let Some(n) = st.nodes.get_mut(&h.sender) {
                let ip = if h.myip.is_empty() {
                    link.peer_ip.clone()
                } else {
                    String::from_utf8_lossy(h.myip.as_bytes()).into_owned()
                };
                if n.ip != ip || n.port != h.port || n.cport != h.cport {
                    n.ip = ip;
                    n.port = h.port;
                    n.cport = h.cport;
                    n.flags &= !node_flag::NOADDR;
                    if let Some(l) = self.links.borrow_mut().remove(&h.sender) {
                        l.close();
                    }
                    self.save_pending.set(true);
                    self.map_pending.set(true);
                }
            }
        }
        let Some(sender) = st.nodes.get_mut(&h.sender) else {
            return true;
        };
        // Role. MIGRATE_TO marks a master that has (had) replicas: a replica turned master,
        // or a master we learn a replica of (replica migration looks for those orphaned).
        let (mut gained_replica, mut drop_slots) = (false, false);
        if h.replicaof.is_null() {
            if !sender.is_master() || sender.master.is_some() {
                if sender.has(node_flag::SLAVE) {
                    sender.flags |= node_flag::MIGRATE_TO;
                }
                sender.flags = (sender.flags & !node_flag::SLAVE) | node_flag::MASTER;
                sender.master = None;
                self.save_pending.set(true);
            }
        } else if sender.master != Some(h.replicaof) {
            // A master turned replica serves nothing any more: its slots are unassigned until
            // their new owner claims them (`clusterDelNodeSlots`).
            drop_slots = sender.is_master();
            sender.flags =
                (sender.flags & !(node_flag::MASTER | node_flag::MIGRATE_TO)) | node_flag::SLAVE;
            sender.master = Some(h.replicaof);
            gained_replica = true;
            self.save_pending.set(true);
        }
        for ext in msg.payload.ping().map_or(&[][..], |p| &p.exts[..]) {
            if let PingExt::Hostname(hn) = ext {
                let hn = String::from_utf8_lossy(hn).into_owned();
                if sender.hostname != hn {
                    sender.hostname = hn;
                    self.save_pending.set(true);
                    self.map_pending.set(true);
                }
            }
        }
        if gained_replica {
            if let Some(m) = st.nodes.get_mut(&h.replicaof) {
                m.flags |= node_flag::MIGRATE_TO;
            }
        }
        if drop_slots {
            for owner in st.slots.iter_mut().filter(|o| **o == Some(h.sender)) {
                *owner = None;
            }
            self.map_pending.set(true);
        }
        let sender_is_master = h.replicaof.is_null();
        drop(st);
        if sender_is_master {
            let differs = {
                let st = self.state.borrow();
                (0..SLOTS as u16)
                    .any(|s| h.myslots.get(s) != (st.slots[s as usize].as_ref() == Some(&h.sender)))
            };
            if differs {
                self.update_slots(h.sender, h.config_epoch, &h.myslots);
            }
            // The sender claims slots we know a newer owner of: tell it (UPDATE).
            let stale_owner = {
                let st = self.state.borrow();
                (0..SLOTS as u16).find_map(|s| {
                    if !h.myslots.get(s) {
                        return None;
                    }
                    let owner = st.slots[s as usize]?;
                    if owner == h.sender {
                        return None;
                    }
                    let o = st.nodes.get(&owner)?;
                    (o.config_epoch > h.config_epoch).then_some(owner)
                })
            };
            if let Some(owner) = stale_owner {
                self.send_update(link, &owner);
            }
            self.handle_epoch_collision(&h.sender);
        }
        if let Some(p) = msg.payload.ping() {
            self.process_gossip(&h.sender, p, true);
        }
        true
    }

    fn rename_handshake(&self, old: NodeName, new: NodeName, link: &Rc<Link>) {
        let mut st = self.state.borrow_mut();
        if let Some(mut n) = st.nodes.remove(&old) {
            n.name = new;
            n.flags &= !(node_flag::HANDSHAKE | node_flag::MEET);
            n.flags |= node_flag::MASTER;
            st.nodes.insert(new, n);
        }
        *link.node.borrow_mut() = Some(new);
        let mut links = self.links.borrow_mut();
        if let Some(l) = links.remove(&old) {
            links.insert(new, l);
        }
        self.save_pending.set(true);
        self.map_pending.set(true);
    }

    /// Tells the peer on `link` the newer slot configuration of node `about` (UPDATE).
    fn send_update(&self, link: &Link, about: &NodeName) {
        let (epoch, slots) = {
            let st = self.state.borrow();
            let Some(n) = st.nodes.get(about) else { return };
            let mut bm = SlotBitmap::default();
            for (s, o) in st.slots.iter().enumerate() {
                if o.as_ref() == Some(about) {
                    bm.set(s as u16, true);
                }
            }
            (n.config_epoch, bm)
        };
        let msg = Message::new(
            self.header(msg_type::UPDATE),
            Payload::Update(Box::new(Update {
                config_epoch: epoch,
                node: *about,
                slots,
            })),
        );
        self.send(link, &msg);
    }

    /// Redis's `clusterUpdateSlotsConfigWith`: the claimed slots go to `sender` where it has a
    /// newer config epoch than their owner (or they have none). Keys of slots we lose are
    /// deleted, as Redis does.
    fn update_slots(&self, sender: NodeName, epoch: u64, claimed: &SlotBitmap) {
        let mut lost = Vec::new();
        // Slots the sender claims, and those it took from our shard's master (us or ours).
        let (mut sender_slots, mut taken_from_ours) = (0usize, 0usize);
        {
            let mut st = self.state.borrow_mut();
            let myself = st.myself;
            let our_master = st.shard_master();
            let had_slots = st.slots_of(&sender) > 0;
            for s in 0..SLOTS {
                if !claimed.get(s as u16) {
                    continue;
                }
                sender_slots += 1;
                if st.slots[s] == Some(sender) {
                    continue;
                }
                if st.importing.contains_key(&(s as u16)) {
                    continue;
                }
                let owner_epoch = st.slots[s]
                    .and_then(|o| st.nodes.get(&o))
                    .map(|o| o.config_epoch);
                if owner_epoch.is_none_or(|e| e < epoch) {
                    if st.slots[s] == Some(myself) {
                        lost.push(s as u16);
                    }
                    if our_master.is_some() && st.slots[s] == our_master {
                        taken_from_ours += 1;
                    }
                    st.slots[s] = Some(sender);
                    st.migrating.remove(&(s as u16));
                }
            }
            st.note_gained_slots(sender, had_slots);
        }
        self.save_pending.set(true);
        self.map_pending.set(true);
        // Our shard's last slot went to the sender: we were failed over while away (a master)
        // or a sibling won our master's failover (a replica). Either way we follow the new
        // owner, as Redis does; a demoted master keeps its keys for a partial resync.
        let follow_sender = {
            let st = self.state.borrow();
            let allow = self.cfg.borrow().allow_replica_migration;
            taken_from_ours > 0
                && st.shard_master().is_some_and(|m| st.slots_of(&m) == 0)
                && (allow || sender_slots == taken_from_ours)
        };
        if follow_sender {
            self.reconfigure_as_replica_of(sender);
            lost.clear();
        }
        // Our last slot went to a newer master, e.g. the replica of a manual failover won:
        // Redis would turn into its replica and end the failover (and the pause) there.
        if !lost.is_empty() && self.state.borrow().slots_of(&self.state.borrow().myself) == 0 {
            self.reset_manual_failover();
        }
        if !lost.is_empty() {
            let shard = self.shard.clone();
            let delete = self.hooks.lost_slots;
            glommio::spawn_local(async move {
                let lost = Arc::new(lost);
                for to in 0..shard.nshards {
                    let lost = lost.clone();
                    shard.post(to, true, move |s| delete(s, &lost)).await;
                }
            })
            .detach();
        }
    }

    /// Our shard's slots went to `owner`: we become its replica (Redis's "Configuration
    /// change detected" path of `clusterSetMaster`), the change fsynced.
    pub fn reconfigure_as_replica_of(&self, owner: NodeName) {
        eprintln!("Configuration change detected. Reconfiguring myself as a replica of {owner}");
        self.state.borrow_mut().set_my_master(owner);
        self.synced_epochs.set(None);
        self.reset_manual_failover();
        self.mark_changed();
    }

    /// CLUSTER REPLICATE: myself becomes a replica of `master` under Redis's conditions
    /// (`empty`: no keys in database 0); its replication follows from the cron.
    pub fn replicate(&self, master: NodeName, empty: bool) -> Result<(), String> {
        let mut st = self.state.borrow_mut();
        if master == st.myself {
            return Err("Can't replicate myself".into());
        }
        if st
            .nodes
            .get(&master)
            .is_some_and(|n| n.has(node_flag::SLAVE))
        {
            return Err("I can only replicate a master, not a replica.".into());
        }
        if st.me().is_master() && (st.slots_of(&st.myself) != 0 || !empty) {
            return Err(
                "To set a master the node must be empty and without assigned slots.".into(),
            );
        }
        st.set_my_master(master);
        drop(st);
        self.mark_changed();
        self.follow_master();
        Ok(())
    }

    /// A node's replication offset as CLUSTER SHARDS and SLOTS judge it: ours from
    /// replication itself, others' from their last header.
    pub fn offset_of(&self, n: &Node) -> i64 {
        if n.has(node_flag::MYSELF) {
            (self.hooks.repl_offset)()
        } else {
            n.repl_offset
        }
    }

    /// Tells replication which master to follow: ours once its address is known (Redis's
    /// cron rule for a replica without a master link), none for a master.
    fn follow_master(&self) {
        let wish = {
            let st = self.state.borrow();
            let me = st.me();
            match me.master {
                Some(m) if !me.is_master() => st
                    .nodes
                    .get(&m)
                    .filter(|n| !n.ip.is_empty() && n.port != 0 && !n.has(node_flag::NOADDR))
                    .map(|n| Some((n.ip.clone(), n.port))),
                _ => Some(None),
            }
        };
        if let Some(to) = wish {
            (self.hooks.follow)(to);
        }
    }

    /// Two masters with the same config epoch: the one with the greater name takes a new
    /// epoch (`clusterHandleConfigEpochCollision`).
    fn handle_epoch_collision(&self, sender: &NodeName) {
        let mut st = self.state.borrow_mut();
        let myself = st.myself;
        let (Some(s), me) = (st.nodes.get(sender), st.me()) else {
            return;
        };
        if s.config_epoch != me.config_epoch || !s.is_master() || !me.is_master() {
            return;
        }
        if sender.as_bytes() <= myself.as_bytes() {
            return;
        }
        st.current_epoch += 1;
        let e = st.current_epoch;
        st.me_mut().config_epoch = e;
        self.save_pending.set(true);
        eprintln!("WARNING: configEpoch collision with node {sender}. configEpoch set to {e}");
    }

    fn process_gossip(&self, sender: &NodeName, ping: &Ping, sender_known: bool) {
        let now = now_ms();
        let sender_is_master = self
            .state
            .borrow()
            .nodes
            .get(sender)
            .is_some_and(|n| n.is_master());
        for g in &ping.gossip {
            let exists = self.state.borrow().nodes.contains_key(&g.nodename);
            if exists {
                let myself = self.state.borrow().myself;
                if sender_known && sender_is_master && g.nodename != myself {
                    let mut st = self.state.borrow_mut();
                    if let Some(n) = st.nodes.get_mut(&g.nodename) {
                        if g.flags & (node_flag::FAIL | node_flag::PFAIL) != 0 {
                            match n.fail_reports.iter_mut().find(|(r, _)| r == sender) {
                                Some(r) => r.1 = now,
                                None => n.fail_reports.push((*sender, now)),
                            }
                        } else {
                            n.fail_reports.retain(|(r, _)| r != sender);
                        }
                    }
                    drop(st);
                    self.mark_failing_if_needed(&g.nodename);
                }
                let mut st = self.state.borrow_mut();
                if let Some(n) = st.nodes.get_mut(&g.nodename) {
                    if g.flags & (node_flag::FAIL | node_flag::PFAIL) == 0
                        && n.ping_sent == 0
                        && n.fail_reports.is_empty()
                    {
                        let pong = g.pong_received as i64 * 1000;
                        if pong <= now + 500 && pong > n.pong_received {
                            n.pong_received = pong;
                        }
                    }
                }
            } else if sender_known
                && g.flags & node_flag::NOADDR == 0
                && !self.blacklisted(&g.nodename, now)
                && g.nodename.is_valid()
            {
                let ip = String::from_utf8_lossy(g.ip.as_bytes()).into_owned();
                self.start_handshake(&ip, g.port, g.cport);
            }
        }
    }

    fn blacklisted(&self, name: &NodeName, now: i64) -> bool {
        let mut bl = self.blacklist.borrow_mut();
        bl.retain(|_, until| *until > now);
        bl.contains_key(name)
    }

    /// PFAIL → FAIL once a majority of the masters serving slots report it.
    fn mark_failing_if_needed(&self, name: &NodeName) {
        let now = now_ms();
        let timeout = self.cfg.borrow().node_timeout;
        let mut st = self.state.borrow_mut();
        let size = st.masters_with_slots().len();
        let quorum = size / 2 + 1;
        let me_master = st.me().is_master();
        let Some(n) = st.nodes.get_mut(name) else {
            return;
        };
        if !n.has(node_flag::PFAIL) || n.has(node_flag::FAIL) {
            return;
        }
        n.fail_reports
            .retain(|(_, t)| now - t <= timeout * FAIL_REPORT_VALIDITY_MULT);
        let failures = n.fail_reports.len() + usize::from(me_master);
        if failures < quorum {
            return;
        }
        n.flags = (n.flags & !node_flag::PFAIL) | node_flag::FAIL;
        n.fail_time = now;
        eprintln!("Marking node {name} as failing (quorum reached).");
        drop(st);
        let msg = Message::new(self.header(msg_type::FAIL), Payload::Fail(*name));
        self.broadcast(&msg);
        self.save_pending.set(true);
        self.map_pending.set(true);
    }

    fn on_fail(&self, name: &NodeName) {
        let mut st = self.state.borrow_mut();
        let myself = st.myself;
        if let Some(n) = st.nodes.get_mut(name) {
            if *name != myself && !n.has(node_flag::FAIL) {
                n.flags = (n.flags & !node_flag::PFAIL) | node_flag::FAIL;
                n.fail_time = now_ms();
                self.save_pending.set(true);
                self.map_pending.set(true);
            }
        }
    }

    fn on_update(&self, u: &Update) {
        let newer = {
            let mut st = self.state.borrow_mut();
            match st.nodes.get_mut(&u.node) {
                Some(n) if n.config_epoch < u.config_epoch => {
                    n.config_epoch = u.config_epoch;
                    true
                }
                _ => false,
            }
        };
        if newer {
            self.update_slots(u.node, u.config_epoch, &u.slots);
        }
    }

    /// Adds a node to meet at `ip:port@cport` (CLUSTER MEET, or a node learnt from gossip),
    /// unless a handshake with that address is under way. False for an invalid address.
    pub fn start_handshake(&self, ip: &str, port: u16, cport: u16) -> bool {
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return false;
        };
        if port == 0 || cport == 0 {
            return false;
        }
        let ip = addr.to_string();
        let mut st = self.state.borrow_mut();
        if st.nodes.values().any(|n| {
            n.has(node_flag::HANDSHAKE) && n.ip == ip && n.port == port && n.cport == cport
        }) {
            return true;
        }
        let mut node = Node::new(self.new_name(), node_flag::HANDSHAKE | node_flag::MEET);
        node.ip = ip;
        node.port = port;
        node.cport = cport;
        node.ctime = now_ms();
        st.nodes.insert(node.name, node);
        true
    }

    /// CLUSTER FORGET: drops the node and ignores it in gossip for a minute.
    pub fn forget(&self, name: &NodeName) {
        {
            let mut st = self.state.borrow_mut();
            st.nodes.remove(name);
            for owner in st.slots.iter_mut() {
                if owner.as_ref() == Some(name) {
                    *owner = None;
                }
            }
            for n in st.nodes.values_mut() {
                n.fail_reports.retain(|(r, _)| r != name);
            }
        }
        self.blacklist
            .borrow_mut()
            .insert(*name, now_ms() + BLACKLIST_TTL_MS);
        if let Some(l) = self.links.borrow_mut().remove(name) {
            l.close();
        }
        self.save_pending.set(true);
        self.map_pending.set(true);
    }

    /// Forgets every other node and link (CLUSTER RESET).
    pub fn forget_all_others(&self) {
        self.reset_manual_failover();
        let myself = self.state.borrow().myself;
        self.state.borrow_mut().nodes.retain(|n, _| *n == myself);
        for (_, l) in self.links.borrow_mut().drain() {
            l.close();
        }
        for l in self.inbound.borrow_mut().drain(..) {
            l.close();
        }
        self.save_pending.set(true);
        self.map_pending.set(true);
    }

    /// The 100 ms cron (`clusterCron`).
    async fn cron(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(CRON_PERIOD).await;
            self.cron_tick();
        }
    }

    fn cron_tick(self: &Rc<Self>) {
        let now = now_ms();
        let iteration = self.iteration.get() + 1;
        self.iteration.set(iteration);
        let timeout = self.cfg.borrow().node_timeout;
        let handshake_timeout = timeout.max(1000);
        self.follow_master();
        // Handshakes that did not complete in time are dropped; nodes without a link get one.
        let mut to_connect = Vec::new();
        {
            let mut st = self.state.borrow_mut();
            let myself = st.myself;
            let expired: Vec<NodeName> = st
                .nodes
                .values()
                .filter(|n| n.has(node_flag::HANDSHAKE) && now - n.ctime > handshake_timeout)
                .map(|n| n.name)
                .collect();
            for name in expired {
                st.nodes.remove(&name);
                self.save_pending.set(true);
            }
            for n in st.nodes.values() {
                if n.name == myself || n.has(node_flag::NOADDR) || n.ip.is_empty() {
                    continue;
                }
                if !self.links.borrow().contains_key(&n.name)
                    && !self.connecting.borrow().contains(&n.name)
                {
                    to_connect.push((n.name, n.ip.clone(), n.cport));
                }
            }
            let links = self.links.borrow();
            for n in st.nodes.values_mut() {
                n.link_connected = n.name == myself || links.contains_key(&n.name);
            }
        }
        for (name, ip, cport) in to_connect {
            self.connect(name, ip, cport, timeout);
        }
        // Once a second, ping the node with the oldest pong among five random ones.
        if iteration.is_multiple_of(10) {
            let pick = {
                let st = self.state.borrow();
                let links = self.links.borrow();
                let candidates: Vec<&Node> = st
                    .nodes
                    .values()
                    .filter(|n| {
                        links.contains_key(&n.name)
                            && n.ping_sent == 0
                            && !n.has(node_flag::HANDSHAKE | node_flag::MYSELF)
                    })
                    .collect();
                (0..5.min(candidates.len()))
                    .map(|_| candidates[(self.next_random() % candidates.len() as u64) as usize])
                    .min_by_key(|n| n.pong_received)
                    .map(|n| n.name)
            };
            if let Some(name) = pick {
                let link = self.links.borrow().get(&name).cloned();
                if let Some(link) = link {
                    self.send_ping(&link, msg_type::PING);
                }
            }
        }
        // Per node: re-ping, drop dead links, suspect (PFAIL).
        let names: Vec<NodeName> = self.state.borrow().nodes.keys().copied().collect();
        for name in names {
            let (ping_sent, pong_received, data_received, skip) = {
                let st = self.state.borrow();
                let Some(n) = st.nodes.get(&name) else {
                    continue;
                };
                (
                    n.ping_sent,
                    n.pong_received,
                    n.data_received,
                    n.has(node_flag::MYSELF | node_flag::NOADDR | node_flag::HANDSHAKE),
                )
            };
            if skip {
                continue;
            }
            let link = self.links.borrow().get(&name).cloned();
            if let Some(link) = &link {
                if now - link.ctime > timeout
                    && ping_sent != 0
                    && now - ping_sent > timeout / 2
                    && now - data_received > timeout / 2
                {
                    // Connected but silent: reconnect (the ping stays in flight).
                    link.close();
                    self.links.borrow_mut().remove(&name);
                }
            }
            if let Some(link) = &link {
                if ping_sent == 0 && now - pong_received > timeout / 2 && !link.closed.get() {
                    self.send_ping(link, msg_type::PING);
                    continue;
                }
            }
            if ping_sent == 0 {
                continue;
            }
            let delay = (now - ping_sent).min(now - data_received);
            if delay > timeout {
                let mut st = self.state.borrow_mut();
                if let Some(n) = st.nodes.get_mut(&name) {
                    if !n.has(node_flag::PFAIL | node_flag::FAIL) {
                        n.flags |= node_flag::PFAIL;
                        self.map_pending.set(true);
                    }
                }
            }
        }
        // A suspected node may now have enough reports.
        let suspects: Vec<NodeName> = self
            .state
            .borrow()
            .nodes
            .values()
            .filter(|n| n.has(node_flag::PFAIL))
            .map(|n| n.name)
            .collect();
        for s in suspects {
            self.mark_failing_if_needed(&s);
        }
        self.manual_failover_cron(now);
        self.replica_failover(now);
        self.replica_migration(now);
        self.after_change();
    }

    fn connect(self: &Rc<Self>, name: NodeName, ip: String, cport: u16, timeout: i64) {
        self.connecting.borrow_mut().insert(name);
        // The first PING counts as sent from now, as Redis queues it before connecting: a
        // node that cannot be reached at all is then suspected after the node timeout.
        if let Some(n) = self.state.borrow_mut().nodes.get_mut(&name) {
            if n.ping_sent == 0 {
                n.ping_sent = now_ms();
            }
        }
        let me = self.clone();
        glommio::spawn_local(async move {
            let host = ip.clone();
            let addr = format!(
                "{}:{cport}",
                if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                }
            );
            let source = me.shard.shared.config().get("bind-source-addr").to_string();
            let result = match addr.parse::<std::net::SocketAddr>() {
                Ok(a) => crate::util::listen::connect(
                    &a.to_string(),
                    &source,
                    Duration::from_millis(timeout.max(1000) as u64),
                )
                .await
                .ok(),
                Err(_) => None,
            };
            let stream = match result {
                Some(stream) if me.tls => {
                    let limit = Duration::from_millis(timeout.max(1000) as u64);
                    crate::tls::client_handshake(stream, &host, limit)
                        .await
                        .ok()
                }
                Some(stream) => Some(MaybeTls::Plain(stream)),
                None => None,
            };
            me.connecting.borrow_mut().remove(&name);
            let Some(stream) = stream else { return };
            let meet = match me.state.borrow().nodes.get(&name) {
                Some(n) => n.has(node_flag::MEET),
                None => return,
            };
            let link = me.spawn_link(stream, Some(name));
            me.links.borrow_mut().insert(name, link.clone());
            if let Some(n) = me.state.borrow_mut().nodes.get_mut(&name) {
                n.flags &= !node_flag::MEET;
                n.link_connected = true;
            }
            me.send_ping(&link, if meet { msg_type::MEET } else { msg_type::PING });
        })
        .detach();
    }

    /// Saves nodes.conf and refreshes the shards' slot maps if anything changed.
    pub fn after_change(&self) {
        let cfg = self.cfg.borrow().clone();
        {
            let mut st = self.state.borrow_mut();
            let was_ok = st.ok;
            st.update_state(cfg.require_full_coverage);
            // A master cut off from the majority of masters with slots stops serving.
            let masters = st.masters_with_slots();
            let size = masters.len();
            let reachable = masters
                .iter()
                .filter(|n| {
                    st.nodes
                        .get(n)
                        .is_some_and(|n| !n.has(node_flag::PFAIL | node_flag::FAIL))
                })
                .count();
            if size > 0 && reachable < size / 2 + 1 {
                st.ok = false;
            }
            if st.ok != was_ok {
                eprintln!(
                    "Cluster state changed: {}",
                    if st.ok { "ok" } else { "fail" }
                );
                self.map_pending.set(true);
            }
        }
        if self.save_pending.get() {
            if let Err(e) = self.save(false) {
                eprintln!("Could not save the cluster configuration: {e}");
            }
        }
        // Published before a CLUSTER command replies, so a client that saw `OK` (e.g. to
        // SETSLOT IMPORTING) is routed by the new map on every shard. A replica just promoted
        // waits (a cron tick or two) until its replication is a master's.
        let promotion_under_way =
            self.state.borrow().me().is_master() && !(self.hooks.master_role_settled)();
        if !promotion_under_way && self.map_pending.replace(false) {
            let map = self.build_map(cfg.endpoint_type, cfg.allow_reads_when_down);
            self.shard.shared.publish_slot_map(map);
            // Shards take a new map when they next route a key; those with shard-channel
            // subscribers are told at once, so a lost slot's subscribers hear of it.
            if self.shard.shared.pubsub_counts.any(true) {
                let shard = self.shard.clone();
                glommio::spawn_local(async move {
                    shard.call_all(|s| s.refresh_slot_map()).await;
                })
                .detach();
            }
        }
        // Held writes go on only now, routed by the map just published.
        self.release_paused_clients();
    }

    /// Writes and fsyncs nodes.conf now (start-up, CLUSTER SAVECONFIG).
    pub fn save_now(&self) -> std::io::Result<()> {
        self.save(true)
    }

    /// Saves nodes.conf (temp file and rename, so it is never half-written). Like Redis, it is
    /// fsynced when asked or when an epoch changed since the last fsync, as epochs must never
    /// go back after a crash, and then the caller waits for the disk. Other changes (SETSLOT
    /// during a migration, gossip) are handed to the writer thread, so a slot move costs no
    /// disk wait per command.
    fn save(&self, fsync: bool) -> std::io::Result<()> {
        self.save_pending.set(false);
        let st = self.state.borrow();
        let epochs = (st.current_epoch, st.me().config_epoch, st.last_vote_epoch);
        let durable = fsync || self.synced_epochs.get() != Some(epochs);
        let text = nodes_conf::render(&st);
        if !durable {
            self.conf_writer.save_soon(text);
            return Ok(());
        }
        self.conf_writer.save(&text, true)?;
        self.synced_epochs.set(Some(epochs));
        Ok(())
    }

    /// Our ports, announced address and NOFAILOVER flag follow the configuration.
    fn apply_config_to_myself(&self) {
        let cfg = self.cfg.borrow();
        let mut st = self.state.borrow_mut();
        let me = st.me_mut();
        me.port = cfg.port;
        me.cport = cfg.cport;
        if !cfg.announce_ip.is_empty() {
            me.ip = cfg.announce_ip.clone();
        }
        me.hostname = cfg.announce_hostname.clone();
        // As Redis's `clusterUpdateMyselfFlags`.
        if cfg.replica_no_failover {
            me.flags |= node_flag::NOFAILOVER;
        } else {
            me.flags &= !node_flag::NOFAILOVER;
        }
    }

    /// CONFIG SET changed the configuration: the cluster directives apply from now on (the
    /// node timeout, coverage and read rules, announced endpoints), as in Redis.
    pub fn reconfigure(&self, cfg: MemberConfig) {
        *self.cfg.borrow_mut() = cfg;
        self.apply_config_to_myself();
        self.mark_changed();
        self.after_change();
    }

    pub fn mark_changed(&self) {
        self.save_pending.set(true);
        self.map_pending.set(true);
    }

    fn build_map(&self, endpoint_type: EndpointType, allow_reads: bool) -> Arc<SlotMap> {
        let version = self.map_version.get() + 1;
        self.map_version.set(version);
        Arc::new(SlotMap::build(
            &self.state.borrow(),
            version,
            endpoint_type,
            allow_reads,
        ))
    }

    /// Outbound and inbound links, for CLUSTER LINKS: (direction, node, ctime, queued bytes).
    pub fn links_info(&self) -> Vec<(&'static str, NodeName, i64, usize)> {
        let mut out = Vec::new();
        for (name, l) in self.links.borrow().iter() {
            out.push(("to", *name, l.ctime, l.send_queued.get()));
        }
        for l in self.inbound.borrow().iter() {
            if let Some(name) = *l.node.borrow() {
                out.push(("from", name, l.ctime, l.send_queued.get()));
            }
        }
        out
    }

    /// Valid failure reports about `name` (CLUSTER COUNT-FAILURE-REPORTS).
    pub fn failure_reports(&self, name: &NodeName) -> Option<usize> {
        let timeout = self.cfg.borrow().node_timeout;
        let now = now_ms();
        self.state.borrow().nodes.get(name).map(|n| {
            n.fail_reports
                .iter()
                .filter(|(_, t)| now - t <= timeout * FAIL_REPORT_VALIDITY_MULT)
                .count()
        })
    }

    /// Sends a PONG to every node at once (after a slot or epoch change we want known).
    pub fn broadcast_pong(&self) {
        let msg = self.ping_message(msg_type::PONG, None);
        self.broadcast(&msg);
    }
}

fn gossip_entry(n: &Node) -> Gossip {
    Gossip {
        nodename: n.name,
        ping_sent: (n.ping_sent / 1000) as u32,
        pong_received: (n.pong_received / 1000) as u32,
        ip: IpField::new(n.ip.as_bytes()),
        port: n.port,
        cport: n.cport,
        flags: n.flags,
        pport: 0,
        notused1: 0,
    }
}

/// Takes the exclusive lock on nodes.conf (creating it), as Redis does, so two nodes never
/// share one file.
fn lock_conf(path: &std::path::Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| {
            format!(
                "Can't open {} in order to acquire a lock: {e}",
                path.display()
            )
        })?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "Sorry, the cluster configuration file {} is already used by a different Redis \
             Cluster node. Please make sure that different nodes use different cluster \
             configuration files.",
            path.display()
        ));
    }
    Ok(file)
}
