//! The connection task: read, decode a batch, run each request through the gate, write once.
//!
//! Requests whose keys live on this core run at once into the output buffer. Requests for
//! another shard are appended (RESP-encoded) to that shard's batch for this read and leave a
//! *hole* in the output; after the batch each shard gets one job, and its replies fill the
//! holes in order, so pipelined replies keep their order. A command whose keys span shards
//! borrows their data (`shard::tx`) and runs here.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::ServerConnection;

use crate::cmd::call::{call_conn, end_unit, reject, shards_of};
use crate::cmd::lua::sflag;
use crate::cmd::{self, flag, CommandSpec, Exec, Handler, KeyedFn};
use crate::db::{Parts, ShardData};
use crate::error::Error;
use crate::resp::{Args, Decoded, Decoder, Reply};
use crate::shard::client::{Conn, Queued};
use crate::shard::journal::Unit;
use crate::shard::pubsub;
use crate::shard::tracking::Track;
use crate::shard::tx::{Held, ShardSet};
use crate::shard::{ClientIdent, ClientMeta, DiskGate, GateAsk, Shard};

use super::route;
use crate::util::time::now_ms;

const READ_CHUNK: usize = 16 * 1024;

/// In a forwarded command's database word: its reads are remembered for the sender.
const READS_TRACKED: u32 = 1 << 31;

/// The commands of one read batch bound for other shards, and where their replies go.
pub struct Batch {
    /// Per shard: the commands, each as (command index, database) then its RESP bytes.
    forward: Vec<Forward>,
    /// Where remote replies go in the output, in order: (byte offset, shard).
    holes: Vec<(usize, usize)>,
    /// The output buffer the last flush interleaved from, kept for the next one.
    spare: Vec<u8>,
}

/// Buffers a batch keeps between reads up to this size (larger ones are freed).
const KEPT_BUFFER: usize = 64 * 1024;

#[derive(Default)]
struct Forward {
    cmds: Vec<u8>,
    count: u32,
    /// The sender, for what the commands leave behind (slow log, MONITOR).
    client: Option<std::sync::Arc<ClientIdent>>,
}

/// A forwarded batch's replies: concatenated, with the end offset of each.
pub struct BatchReplies {
    pub out: Vec<u8>,
    pub ends: Vec<u32>,
}

impl Batch {
    pub fn new(nshards: usize) -> Batch {
        Batch {
            forward: (0..nshards).map(|_| Forward::default()).collect(),
            holes: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Queues a command for shard `to`, leaving a hole for its reply at the end of `out`.
    fn push(&mut self, conn: &Conn, to: usize, idx: usize, args: &Args<'_>, raw: Option<&[u8]>) {
        let fwd = &mut self.forward[to];
        fwd.cmds.extend_from_slice(&(idx as u32).to_le_bytes());
        // The database, and whether the command's reads are remembered for client-side
        // caching (decided now: CLIENT CACHING applies to the command after it).
        let reads_tracked = if conn.track().reader != 0 {
            READS_TRACKED
        } else {
            0
        };
        fwd.cmds
            .extend_from_slice(&(conn.db as u32 | reads_tracked).to_le_bytes());
        match raw {
            Some(bytes) => fwd.cmds.extend_from_slice(bytes),
            None => args.encode_into(&mut fwd.cmds),
        }
        fwd.count += 1;
        if fwd.client.is_none() {
            fwd.client = Some(conn.meta.ident.clone());
        }
        self.holes.push((conn.out.buf.len(), to));
    }

    /// Whether commands of this batch wait for a shard other than `to`. A write must not run
    /// before them: a connection's commands take effect in the order it sent them, as in
    /// Redis, so that others (and the AOF, and replicas) never see a later write without an
    /// earlier one. Reads need no such wait: their replies are held until the batch's turn.
    fn waits_elsewhere(&self, to: usize) -> bool {
        self.forward
            .iter()
            .enumerate()
            .any(|(shard, f)| shard != to && f.count > 0)
    }

    /// Runs this batch's forwarded commands on their shards and places the replies.
    pub async fn flush(&mut self, conn: &mut Conn) {
        if self.holes.is_empty() {
            return;
        }
        let resp3 = conn.out.resp3;
        let mut calls = Vec::new();
        for (to, fwd) in self.forward.iter_mut().enumerate() {
            if fwd.count == 0 {
                continue;
            }
            let cmds = std::mem::take(&mut fwd.cmds);
            let count = std::mem::take(&mut fwd.count);
            let client = fwd.client.take();
            let slot = crate::shard::mesh::ResultSlot::new();
            let theirs = slot.clone();
            let home = conn.shard.id as u32;
            // The command buffer comes back with the replies, to be filled again.
            let job: crate::shard::mesh::Job = Box::new(move |s| {
                let replies = run_forwarded(s, &cmds, count, resp3, client.as_deref(), home);
                theirs.put((replies, cmds))
            });
            calls.push((to, slot, conn.shard.mesh.send(to, true, job).await));
        }
        let mut replies: Vec<Option<(BatchReplies, usize)>> =
            (0..conn.shard.nshards).map(|_| None).collect();
        for (to, slot, ticket) in calls {
            ticket.await;
            replies[to] = slot.take().map(|(b, mut cmds)| {
                if cmds.capacity() <= KEPT_BUFFER {
                    cmds.clear();
                    self.forward[to].cmds = cmds;
                }
                (b, 0)
            });
        }
        // Interleave: local output up to each hole, then the next reply of that hole's shard.
        let mut local = std::mem::replace(&mut conn.out.buf, std::mem::take(&mut self.spare));
        let mut at = 0;
        for &(offset, to) in &self.holes {
            conn.out.buf.extend_from_slice(&local[at..offset]);
            at = offset;
            // A shard whose job panicked sent no replies: each of its holes still gets one
            // (an error), so the client's replies stay paired with its requests.
            let reply = replies[to].as_mut().and_then(|(b, next)| {
                let start = if *next == 0 {
                    0
                } else {
                    *b.ends.get(*next - 1)? as usize
                };
                let end = *b.ends.get(*next)? as usize;
                *next += 1;
                b.out.get(start..end)
            });
            match reply {
                Some(bytes) => conn.out.buf.extend_from_slice(bytes),
                None => conn.out.error(&Error::msg(cmd::PANIC_REPLY)),
            }
        }
        conn.out.buf.extend_from_slice(&local[at..]);
        self.holes.clear();
        if local.capacity() <= KEPT_BUFFER {
            local.clear();
            self.spare = local;
        }
    }

    /// Drops the queued commands and their holes (the connection is being closed).
    fn clear(&mut self) {
        for f in &mut self.forward {
            f.cmds.clear();
            f.count = 0;
            f.client = None;
        }
        self.holes.clear();
    }
}

/// Executes forwarded commands on the owning shard, whose data is home (see `Batch::flush`).
fn run_forwarded(
    shard: &Rc<Shard>,
    cmds: &[u8],
    count: u32,
    resp3: bool,
    client: Option<&ClientIdent>,
    home: u32,
) -> BatchReplies {
    let table = cmd::table();
    let mut out = Reply {
        buf: Vec::with_capacity(cmds.len().min(64 * 1024)),
        resp3,
    };
    let mut ends = Vec::with_capacity(count as usize);
    let mut dec = Decoder::new(i64::MAX);
    let mut pos = 0;
    let now = now_ms();
    while pos + 8 <= cmds.len() {
        let word =
            |at: usize| u32::from_le_bytes([cmds[at], cmds[at + 1], cmds[at + 2], cmds[at + 3]]);
        let (idx, db_word) = (word(pos) as usize, word(pos + 4));
        let db = (db_word & !READS_TRACKED) as usize;
        let origin = client.map_or(0, |c| c.id);
        let track = Track {
            reader: if db_word & READS_TRACKED != 0 {
                origin
            } else {
                0
            },
            home,
            origin,
        };
        pos += 8;
        let len = match dec.decode(&cmds[pos..], false) {
            Decoded::Request { len, .. } => len,
            _ => break,
        };
        let args = Args::new(&cmds[pos..pos + len], dec.scratch(), dec.spans());
        if let Handler::Keyed(f) = table.specs[idx].handler {
            run_here(shard, db, idx, f, &args, &mut out, now, client, track);
        }
        ends.push(out.buf.len() as u32);
        pos += len;
    }
    crate::cmd::blocking::serve_ready(shard);
    BatchReplies { out: out.buf, ends }
}

/// Runs a keyed command on this shard's own data (home: the caller checked) as one
/// execution unit. Returns whether blocked clients have keys to look at now.
#[allow(clippy::too_many_arguments)]
pub fn run_here(
    shard: &Rc<Shard>,
    db: usize,
    idx: usize,
    f: KeyedFn,
    args: &Args<'_>,
    out: &mut Reply,
    now: i64,
    client: Option<&ClientIdent>,
    track: Track,
) -> bool {
    let mut data = shard.data.borrow_mut();
    match data.as_deref_mut() {
        Some(data) => run_on(shard, data, db, idx, f, args, out, now, client, track),
        None => {
            out.error(&Error::msg(cmd::PANIC_REPLY));
            false
        }
    }
}

/// `run_here` with the shard's data already in hand.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn run_on(
    shard: &Rc<Shard>,
    data: &mut ShardData,
    db: usize,
    idx: usize,
    f: KeyedFn,
    args: &Args<'_>,
    out: &mut Reply,
    now: i64,
    client: Option<&ClientIdent>,
    track: Track,
) -> bool {
    if cmd::evict::before_write(shard, data, idx, now) {
        reject(shard, idx, out, &Error::Oom);
        return false;
    }
    let mut unit = Unit::default();
    let mut x = Exec {
        shard,
        parts: Parts::One(data),
        db,
        out,
        now,
        unit: &mut unit,
        client,
        track,
    };
    cmd::call(&mut x, idx, f, args);
    if !unit.is_empty() {
        unit.loose = cmd::table().specs[idx].has(flag::TOUCHES_ARBITRARY_KEYS);
        data.clock = end_unit(shard, &mut unit, data.clock);
    }
    data.has_ready()
}

/// Runs a keyed command over the data of several shards, borrowed for it, as one execution
/// unit.
async fn run_across(conn: &mut Conn, shards: &ShardSet, idx: usize, f: KeyedFn, args: &Args<'_>) {
    let mut held = Held::acquire(&conn.shard, shards).await;
    let mut unit = Unit::default();
    let shard = conn.shard.clone();
    let track = conn.track();
    let mut x = Exec {
        shard: &shard,
        parts: held.parts(),
        db: conn.db,
        out: &mut conn.out,
        now: conn.now,
        unit: &mut unit,
        client: Some(&conn.meta.ident),
        track,
    };
    cmd::call(&mut x, idx, f, args);
    if !unit.is_empty() {
        unit.loose = cmd::table().specs[idx].has(flag::TOUCHES_ARBITRARY_KEYS);
        let stamp = end_unit(&shard, &mut unit, held.clock());
        held.set_clock(stamp);
    }
    held.release();
}

/// The read buffer: bytes `[start, end)` are received and not yet consumed.
pub(super) struct ReadBuf {
    pub(super) data: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl ReadBuf {
    /// Makes room for a useful read, growing towards the `need` bytes the current request
    /// claims only as fast as bytes actually arrive (at most doubling what is buffered), so a
    /// client cannot make us commit memory for a bulk it never sends.
    fn reserve(&mut self, need: usize) {
        let pending = self.end - self.start;
        if self.start > 0 && (pending == 0 || self.data.len() - self.end < READ_CHUNK / 2) {
            self.data.copy_within(self.start..self.end, 0);
            self.end = pending;
            self.start = 0;
        }
        if self.data.len() - self.end >= READ_CHUNK / 2 {
            return;
        }
        let step = pending.max(READ_CHUNK);
        let target = need.max(pending + READ_CHUNK / 2).min(pending + step);
        if target > self.data.len() {
            self.data.resize(target, 0);
        }
    }
}

/// What a client connection runs over: plain TCP or TLS. `serve` is generic over it, so the
/// plain path is compiled on its own, with no branch or indirection for TLS.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// Whether writes wait in a buffer until flushed (rustls's records).
    const BUFFERED: bool;
    /// The socket, and the TLS session for a TLS connection, apart: SYNC/PSYNC hands them to
    /// the replication master on the control executor.
    fn into_link(self) -> (TcpStream, Option<ServerConnection>);
    /// Whether this shard has other connections woken for data that have not read yet:
    /// replies wait for them (`EpollStream::others_to_read`).
    fn others_to_read(&self) -> bool {
        false
    }
}

impl ClientStream for TcpStream {
    const BUFFERED: bool = false;
    fn into_link(self) -> (TcpStream, Option<ServerConnection>) {
        (self, None)
    }
}

impl ClientStream for super::readiness::EpollStream {
    const BUFFERED: bool = false;
    fn into_link(self) -> (TcpStream, Option<ServerConnection>) {
        (self.into_inner(), None)
    }
    fn others_to_read(&self) -> bool {
        super::readiness::EpollStream::others_to_read(self)
    }
}

impl ClientStream for crate::tls::TlsStream<super::readiness::EpollStream, ServerConnection> {
    const BUFFERED: bool = true;
    fn into_link(self) -> (TcpStream, Option<ServerConnection>) {
        let (io, session) = self.into_parts();
        (io.into_inner(), Some(session))
    }
    fn others_to_read(&self) -> bool {
        self.get_ref().others_to_read()
    }
}

impl ClientStream for crate::tls::TlsStream<TcpStream, ServerConnection> {
    const BUFFERED: bool = true;
    fn into_link(self) -> (TcpStream, Option<ServerConnection>) {
        let (io, session) = self.into_parts();
        (io, Some(session))
    }
}

/// Serves one client connection until it closes.
pub async fn serve<S: ClientStream>(shard: Rc<Shard>, mut stream: S, meta: Rc<ClientMeta>) {
    let mut conn = Conn::new(shard.clone(), meta);
    let mut batch = Batch::new(shard.nshards);
    let mut dec = Decoder::new(shard.settings.borrow().proto_max_bulk_len);
    let mut rbuf = ReadBuf {
        data: vec![0; READ_CHUNK],
        start: 0,
        end: 0,
    };
    let mut need = 0usize;
    loop {
        rbuf.reserve(need);
        let read = match conn.sub.clone() {
            None => stream.read(&mut rbuf.data[rbuf.end..]).await,
            // Subscribed: pushes from any core are written as they come, without waiting
            // for the client to send something. Dropping a pending read loses nothing
            // (glommio reads only once the socket is readable).
            Some(sub) => {
                let buf = &mut rbuf.data[rbuf.end..];
                let event =
                    futures_lite::future::or(async { Some(stream.read(buf).await) }, async {
                        sub.ready().await;
                        None
                    })
                    .await;
                match event {
                    Some(r) => r,
                    None => {
                        if sub.closed() || conn.meta.killed.get() {
                            break;
                        }
                        sub.drain_into(&mut conn.out.buf);
                        if !write_out(&mut conn, &mut stream).await {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if conn.meta.killed.get() {
            break;
        }
        rbuf.end += n;
        {
            let mut stats = shard.stats.borrow_mut();
            stats.net_input_bytes += n as u64;
            stats.reads_processed += 1;
        }
        let pending = rbuf.end - rbuf.start;
        if pending > shard.settings.borrow().query_buffer_limit {
            // As Redis: closed without a reply.
            eprintln!(
                "Closing client that reached max query buffer length (id={})",
                conn.id()
            );
            break;
        }
        conn.now = now_ms();
        conn.meta.last_interaction_ms.set(conn.now);
        dec.max_bulk = shard.settings.borrow().proto_max_bulk_len;
        need = process_batch(&mut conn, &mut batch, &mut dec, &mut rbuf).await;
        if conn.wait_for_aof {
            wait_for_aof(&mut conn).await;
        }
        conn.meta.qbuf.set(rbuf.end - rbuf.start);
        if conn.meta.ident.invalidations.load(Ordering::Acquire) > 0 {
            wait_for_invalidations(&conn).await;
        }
        if let Some(sub) = &conn.sub {
            sub.drain_into(&mut conn.out.buf);
        }
        if shard.shared.monitors.any() {
            wait_for_monitors(&shard).await;
        }
        if stream.others_to_read() && !conn.out.buf.is_empty() {
            futures_lite::future::yield_now().await;
        }
        if !write_out(&mut conn, &mut stream).await {
            break;
        }
        if conn.replica.as_ref().is_some_and(|r| r.sync.is_some()) {
            return become_replica_link(conn, stream).await;
        }
        if conn.close_after_reply || conn.meta.killed.get() {
            break;
        }
        if rbuf.start == rbuf.end {
            rbuf.start = 0;
            rbuf.end = 0;
            if rbuf.data.len() > 1 << 20 {
                rbuf.data = vec![0; READ_CHUNK];
            }
        }
    }
    // A transaction left open is discarded; WATCH registrations go away.
    cmd::multi::forget(&mut conn).await;
    if conn.meta.tracking.get() != 0 {
        cmd::server::tracking::disable(&mut conn).await;
    }
    if let Some(sub) = conn.sub.take() {
        pubsub::remove_all(&shard, &sub);
        crate::shard::observe::remove_monitor(&shard, &sub);
    }
    // Unregister before closing: once the fd is closed its number can be reused by a new
    // connection, which a CLIENT KILL must not hit.
    shard.clients.borrow_mut().remove(&conn.id());
    let _ = stream.close().await;
}

/// SYNC/PSYNC: the connection becomes a replica's link, served on the control executor
/// (`repl::master`), which gets a duplicate of the socket; this task lets its copy go
/// without shutting the socket down.
#[cold]
async fn become_replica_link<S: ClientStream>(mut conn: Conn, stream: S) {
    use std::os::fd::AsRawFd;
    let shard = conn.shard.clone();
    cmd::multi::forget(&mut conn).await;
    if conn.meta.tracking.get() != 0 {
        cmd::server::tracking::disable(&mut conn).await;
    }
    shard.clients.borrow_mut().remove(&conn.id());
    let Some(hello) = conn.replica.take() else {
        return;
    };
    let (stream, tls) = stream.into_link();
    // SAFETY: dup of a descriptor this task owns; the copy is handed over whole.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    drop(stream);
    if fd < 0 {
        return;
    }
    // A replica on the Unix socket has no IP: Redis's `connPeerToString` says "/unixsocket".
    let peer_ip = if conn.meta.unix() {
        "/unixsocket".to_string()
    } else {
        conn.meta
            .addr
            .rsplit_once(':')
            .map_or(conn.meta.addr.clone(), |(ip, _)| ip.to_string())
    };
    let sync = hello.sync.clone().unwrap_or(None);
    let req = crate::repl::master::SyncRequest {
        old_sync: sync.is_none(),
        psync: sync,
        capa_eof: hello.capa_eof,
        capa_psync2: hello.capa_psync2,
        rdb_only: hello.rdb_only,
        rdb_filter: hello.rdb_filter,
        listening_port: hello.listening_port,
        ip: hello.ip.clone().unwrap_or(peer_ip),
        client_id: conn.id(),
        client_line: cmd::server::client::line_of(&conn.meta),
    };
    shard
        .post(shard.nshards, false, move |_| {
            match crate::repl::master::Master::current() {
                Some(m) => {
                    glommio::spawn_local(m.serve(fd, tls, req)).detach();
                }
                // SAFETY: the descriptor is ours and nobody else uses it.
                None => unsafe {
                    libc::close(fd);
                },
            }
        })
        .await;
}

/// `appendfsync always`: the batch's writes are answered once the AOF has them on disk.
/// Every journal entry of the batch is stamped before now, and the AOF writer publishes
/// the stamp up to which it has written and synced.
#[cold]
async fn wait_for_aof(conn: &mut Conn) {
    conn.wait_for_aof = false;
    let upto = crate::shard::journal::now_stamp();
    let durable = &conn.shard.shared.aof_durable;
    while durable.load(Ordering::Acquire) < upto {
        glommio::timer::sleep(std::time::Duration::from_micros(50)).await;
    }
}

/// MONITOR on another core: the batch's replies wait until its lines reached every monitor
/// (see `shard::observe`), so monitors show commands in the order clients saw replies.
#[cold]
async fn wait_for_monitors(shard: &Shard) {
    let made = shard.shared.monitors.lines_made();
    while !shard.shared.monitors.delivered_upto(&made) {
        glommio::timer::sleep(std::time::Duration::from_micros(20)).await;
    }
}

/// Client-side caching: the batch's replies wait until the invalidations its writes caused
/// reached their clients (see `shard::tracking`), as Redis sends them before the reply.
#[cold]
async fn wait_for_invalidations(conn: &Conn) {
    while conn.meta.ident.invalidations.load(Ordering::Acquire) > 0 {
        glommio::timer::sleep(std::time::Duration::from_micros(20)).await;
    }
}

/// Writes the output buffer, if any; false when the connection is gone. While a subscriber's
/// pushes are being written they still count against its output buffer limit.
async fn write_out<S: ClientStream>(conn: &mut Conn, stream: &mut S) -> bool {
    if conn.out.buf.is_empty() {
        return true;
    }
    let limit = normal_limit(conn);
    let counted = conn.out.buf.len().saturating_sub(REDIS_STATIC_REPLY_BUF);
    if limit.hard > 0 && counted >= limit.hard {
        pubsub::log_output_limit_close(&conn.meta);
        conn.out.buf = Vec::new();
        return false;
    }
    {
        let mut stats = conn.shard.stats.borrow_mut();
        stats.net_output_bytes += conn.out.buf.len() as u64;
        stats.writes_processed += 1;
    }
    if let Some(sub) = &conn.sub {
        sub.set_writing(conn.out.buf.len());
    }
    // Replies over the soft limit must all reach the socket within its seconds (plus the
    // second of Redis's clock): a client that leaves them unread is closed, as Redis closes
    // one that stays over the limit while its requests keep adding replies.
    let write = async {
        stream.write_all(&conn.out.buf).await.is_ok()
            && (!S::BUFFERED || stream.flush().await.is_ok())
    };
    let ok = if limit.soft > 0 && counted >= limit.soft {
        let late = async {
            glommio::timer::sleep(std::time::Duration::from_secs(limit.soft_secs + 1)).await;
            None
        };
        match futures_lite::FutureExt::or(async { Some(write.await) }, late).await {
            Some(written) => written,
            None => {
                pubsub::log_output_limit_close(&conn.meta);
                false
            }
        }
    } else {
        write.await
    };
    if let Some(sub) = &conn.sub {
        sub.set_writing(0);
    }
    conn.out.buf.clear();
    if conn.out.buf.capacity() > 1 << 20 {
        conn.out.buf = Vec::with_capacity(READ_CHUNK);
    }
    ok
}

/// `client-output-buffer-limit normal` for this connection's replies (none for subscribers,
/// held to the pubsub limit, or MONITOR, to its own). The buffer holds the replies of one
/// batch of requests, and the connection reads nothing more until they are written.
fn normal_limit(conn: &Conn) -> pubsub::Limit {
    let m = &conn.meta;
    if m.sub.get() + m.psub.get() + m.ssub.get() > 0 {
        return pubsub::Limit::default();
    }
    conn.shard.settings.borrow().normal_limit
}

/// Redis's `PROTO_REPLY_CHUNK_BYTES`: the reply buffer every client has, outside its limits.
const REDIS_STATIC_REPLY_BUF: usize = 16 * 1024;

/// Decodes and runs every complete request in the buffer. Returns how many bytes the next
/// incomplete request needs in total (0 if unknown).
pub(super) async fn process_batch(
    conn: &mut Conn,
    batch: &mut Batch,
    dec: &mut Decoder,
    rbuf: &mut ReadBuf,
) -> usize {
    let mut need = 0;
    while rbuf.start < rbuf.end && !conn.close_after_reply {
        let buf = &rbuf.data[rbuf.start..rbuf.end];
        conn.sync_acl();
        match dec.decode(buf, conn.auth_required()) {
            Decoded::Incomplete { need: n } => {
                need = n;
                break;
            }
            Decoded::Nothing { len } => rbuf.start += len,
            Decoded::Error(e) => {
                batch.flush(conn).await;
                conn.out.error_line(&e.text());
                conn.close_after_reply = true;
                rbuf.start = rbuf.end;
            }
            Decoded::Request { len, inline } => {
                let args = Args::new(buf, dec.scratch(), dec.spans());
                let raw = if inline { None } else { Some(&buf[..len]) };
                dispatch(conn, batch, args, raw).await;
                rbuf.start += len;
            }
        }
    }
    batch.flush(conn).await;
    need
}

/// The gate, in Redis's `processCommand` order: lookup, arity, auth, MULTI restrictions,
/// ACL permissions, cluster redirection, maxmemory, the RESP2 subscribed context; then the
/// command is queued (inside MULTI) or run: on this core, forwarded to the owner of its keys,
/// or across shards.
pub async fn dispatch(conn: &mut Conn, batch: &mut Batch, args: Args<'_>, raw: Option<&[u8]>) {
    let mode = conn.reply;
    if !(mode.off || mode.skip_next) {
        dispatch_command(conn, batch, args, raw).await;
    } else {
        dispatch_quiet(conn, batch, args, raw).await;
    }
    if conn.meta.tracking.get() & crate::shard::tracking::CACHING != 0 {
        cmd::server::tracking::after_command(conn, args.get(0));
    }
}

/// A command under CLIENT REPLY OFF or SKIP: its reply (and those of the forwarded
/// commands before it, settled first) is dropped, pushes are not.
#[cold]
async fn dispatch_quiet(conn: &mut Conn, batch: &mut Batch, args: Args<'_>, raw: Option<&[u8]>) {
    batch.flush(conn).await;
    if let Some(sub) = &conn.sub {
        sub.drain_into(&mut conn.out.buf);
    }
    // The command after CLIENT REPLY SKIP is this one.
    let skip = std::mem::take(&mut conn.reply.skip_next);
    let mark = conn.out.buf.len();
    Box::pin(dispatch_command(conn, batch, args, raw)).await;
    batch.flush(conn).await;
    if !std::mem::take(&mut conn.reply.turned_on) && (conn.reply.off || skip) {
        conn.out.buf.truncate(mark);
    }
}

async fn dispatch_command(conn: &mut Conn, batch: &mut Batch, args: Args<'_>, raw: Option<&[u8]>) {
    let table = cmd::table();
    let name = args.get(0);
    // ASKING lasts for the one command after it, whatever that command is (ASKING sets it
    // again when it runs).
    let mut asking = std::mem::take(&mut conn.asking);
    if name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:") {
        eprintln!("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. Connection aborted.");
        conn.out.buf.clear();
        batch.clear();
        conn.meta.killed.set(true);
        conn.close_after_reply = true;
        return;
    }
    // Pushes delivered meanwhile go out before this command's reply.
    if let Some(sub) = &conn.sub {
        sub.drain_into(&mut conn.out.buf);
    }
    let Some(mut idx) = table.lookup(name) else {
        let rest: Vec<&[u8]> = args.rest(1).collect();
        refuse(conn, None, &Error::unknown_command(name, &rest));
        return;
    };
    let mut spec: &CommandSpec = table.specs[idx];
    if let Handler::Container = spec.handler {
        if args.len() >= 2 {
            match table.lookup_sub(idx, args.get(1)) {
                Some(sub) => {
                    idx = sub;
                    spec = table.specs[sub];
                }
                None => {
                    let container = table.upper_names[idx].as_str();
                    let mut e = Error::unknown_subcommand(args.get(1), container);
                    if !name.eq_ignore_ascii_case(container.as_bytes()) {
                        // Renamed (rename-command): Redis names the container as typed.
                        let typed = String::from_utf8_lossy(name).to_ascii_uppercase();
                        let text = e.render();
                        let head = text
                            .strip_suffix(&format!("Try {container} HELP."))
                            .and_then(|t| t.strip_prefix("ERR "))
                            .unwrap_or_default();
                        e = Error::msg(format!("{head}Try {typed} HELP."));
                    }
                    refuse(conn, None, &e);
                    return;
                }
            }
        }
    }
    if !spec.arity_ok(args.len()) {
        let e = Error::WrongArity(table.full_names[idx].clone().into());
        refuse_command(conn, idx, &args, &e).await;
        return;
    }
    // (`process_batch` took the newest ACL state just before decoding this request.)
    if conn.auth_required() && !spec.has(flag::NO_AUTH) {
        refuse_command(conn, idx, &args, &Error::NoAuth).await;
        return;
    }
    if conn.multi.is_some() && spec.has(flag::NO_MULTI) {
        refuse_command(conn, idx, &args, &Error::NotInMulti).await;
        return;
    }
    if !conn.acl_open {
        let context = cmd::permission::gate_context(conn);
        if let Err(d) = cmd::permission::check_logged(conn, idx, &args, context) {
            refuse_command(conn, idx, &args, &cmd::permission::gate_error(idx, d)).await;
            return;
        }
    }
    conn.meta.last_cmd.set(table.full_names[idx].as_str());
    // One atomic load while nothing is paused; the waiting itself is boxed, so its state is
    // not carried in every command's future.
    if conn
        .shard
        .shared
        .pause
        .holds(spec.has(flag::WRITE | flag::MAY_REPLICATE))
    {
        Box::pin(paused(conn, batch, spec, &args, asking)).await;
    }
    let mut open_slot = None;
    let routed = spec.first_key > 0 || spec.key_finder.is_some() || spec.has(flag::ROUTES_QUEUED);
    if routed && conn.shard.slot_map.borrow().enabled {
        conn.shard.refresh_slot_map();
        asking |= spec.has(flag::ASKING);
        match route::cluster_route(conn, spec, &args, asking) {
            Err(e) => {
                if spec.has(flag::ROUTES_QUEUED) {
                    cmd::multi::discard(conn).await;
                }
                // Redis discards the transaction and answers the redirection as it is.
                refuse(conn, Some(idx), &e);
                return;
            }
            Ok(slot) => open_slot = slot,
        }
    }
    // NOSCRIPT: among others, the commands that run scripts, which note the memory state.
    if spec.has(flag::NOSCRIPT) {
        conn.script_oom = false;
    }
    // The AOF loading client is never refused (Redis loads without `processCommand`).
    if (spec.has(flag::DENYOOM | flag::NOSCRIPT) || conn.multi.is_some())
        && cmd::evict::over_limit(&conn.shard)
        && !conn.must_obey()
        && cmd::evict::safe_to_evict(&conn.shard)
        && Box::pin(refused_for_memory(conn, spec, idx, &args)).await
    {
        refuse_command(conn, idx, &args, &Error::Oom).await;
        return;
    }
    if conn.sub.is_some()
        && !conn.out.resp3
        && conn.meta.in_pubsub()
        && !spec.has(flag::SUBSCRIBED_OK)
    {
        let e = cmd::pubsub::subscribed_context_error(&table.full_names[idx]);
        refuse_command(conn, idx, &args, &e).await;
        return;
    }
    let gate = conn.shard.disk_gate.get();
    // The AOF loading client is not refused anything (Redis loads without `processCommand`).
    if gate != DiskGate::default() && !conn.must_obey() {
        if let Some(e) = disk_refusal(conn, spec, idx, &args, gate) {
            refuse_command(conn, idx, &args, &e).await;
            return;
        }
        // EXEC is neither, but runs the queued writes (conn.multi is still set then).
        if gate.aof_always && (spec.has(flag::WRITE | flag::MAY_REPLICATE) || conn.multi.is_some())
        {
            conn.wait_for_aof = true;
        }
    }
    // A script ran past busy-reply-threshold: only commands flagged allow-busy (SCRIPT KILL,
    // SHUTDOWN NOSAVE, MULTI/EXEC ...) run. One atomic load while no script is slow.
    if !spec.has(flag::ALLOW_BUSY) {
        if let Some(eval) = conn.shard.shared.scripts.busy() {
            refuse_command(conn, idx, &args, &cmd::scripting::busy_error(eval)).await;
            return;
        }
    }
    if let Some(multi) = conn.multi.as_mut() {
        if !spec.has(flag::NOT_QUEUED) {
            // An aborted transaction queues nothing more (Redis's `queueMultiCommand`): a
            // refused command, or a WATCHed key changed.
            let watch_dirty = conn.watch.as_ref().is_some_and(|w| w.watcher.is_dirty());
            if !multi.failed && !watch_dirty {
                let f = gate_flags(spec, &table.full_names[idx], &args);
                multi.writes |= f.writes;
                multi.denystale |= !f.stale_ok;
                multi.denyoom |= f.denyoom;
                multi.queued.push(Queued {
                    idx,
                    args: (&args).into(),
                });
            }
            conn.out.simple("QUEUED");
            return;
        }
    }
    if let Some(slot) = open_slot {
        if !route::run_open_slot(conn, batch, idx, &args, slot, asking).await {
            return;
        }
    }
    execute(conn, batch, idx, &args, raw).await;
}

/// What persistence and replication refuse this command for (`DiskGate::refusal`); an EXEC
/// counts as a write when it has queued writes, and as not allowed on stale data when one of
/// its queued commands is not. A script with flags counts as its flags say (Redis's
/// `scriptFlagsToCmdFlags`), so that MULTI refuses to queue it as Redis does.
#[cold]
fn disk_refusal(
    conn: &Conn,
    spec: &CommandSpec,
    idx: usize,
    args: &Args<'_>,
    gate: DiskGate,
) -> Option<Error> {
    let name = cmd::table().full_names[idx].as_str();
    let GateFlags {
        mut writes,
        mut stale_ok,
        ..
    } = gate_flags(spec, name, args);
    if let Some(multi) = conn.multi.as_ref().filter(|_| name == "exec") {
        writes |= multi.writes;
        stale_ok &= !multi.denystale;
    }
    gate.refusal(GateAsk {
        writes,
        ping: name == "ping",
        stale_ok,
        loading_ok: spec.has(flag::LOADING),
    })
}

/// What the gate reads of a command's flags.
struct GateFlags {
    writes: bool,
    /// It may run on stale data.
    stale_ok: bool,
    /// It may grow memory.
    denyoom: bool,
}

/// The command's flags, or for a script with flags, what Redis's `scriptFlagsToCmdFlags`
/// makes of the script's (`no-writes`, `allow-stale`, `allow-oom`).
fn gate_flags(spec: &CommandSpec, name: &str, args: &Args<'_>) -> GateFlags {
    let declared = spec
        .has(flag::NOSCRIPT)
        .then(|| cmd::scripting::declared_flags(name, args))
        .flatten();
    match declared {
        Some(f) => GateFlags {
            writes: f & sflag::NO_WRITES == 0,
            stale_ok: f & sflag::ALLOW_STALE != 0,
            denyoom: f & (sflag::ALLOW_OOM | sflag::NO_WRITES) == 0,
        },
        None => GateFlags {
            writes: spec.has(flag::WRITE),
            stale_ok: spec.has(flag::STALE),
            denyoom: spec.has(flag::DENYOOM),
        },
    }
}

/// Holds a command while a pause (`shard::pause`) covers it; the gate calls it before
/// routing, so a held write is routed afresh once released.
#[cold]
async fn paused(
    conn: &mut Conn,
    batch: &mut Batch,
    spec: &CommandSpec,
    args: &Args<'_>,
    asking: bool,
) {
    // Commands before this one in the pipeline run first, as they would in Redis.
    batch.flush(conn).await;
    let asking = asking || spec.has(flag::ASKING);
    let writes = spec.has(flag::WRITE | flag::MAY_REPLICATE);
    while conn.shard.shared.pause.holds(writes) {
        if refused_before_pause(conn, spec, args, asking) {
            return;
        }
        glommio::timer::sleep(crate::shard::pause::POLL).await;
    }
}

/// Whether the gate would refuse the command without running it: Redis gives those errors
/// before it looks at the pause.
fn refused_before_pause(conn: &Conn, spec: &CommandSpec, args: &Args<'_>, asking: bool) -> bool {
    if conn.sub.is_some()
        && !conn.out.resp3
        && conn.meta.in_pubsub()
        && !spec.has(flag::SUBSCRIBED_OK)
    {
        return true;
    }
    if (spec.first_key > 0 || spec.key_finder.is_some()) && conn.shard.slot_map.borrow().enabled {
        conn.shard.refresh_slot_map();
        return route::cluster_route(conn, spec, args, asking).is_err();
    }
    false
}

/// The gate's memory check, with used memory over `maxmemory` (Redis's `processCommand`):
/// whether command `idx` is refused because it needs memory and nothing can be evicted. A
/// command that runs scripts notes whether memory was out for them (`Conn::script_oom`).
#[cold]
async fn refused_for_memory(
    conn: &mut Conn,
    spec: &CommandSpec,
    idx: usize,
    args: &Args<'_>,
) -> bool {
    let runs_scripts = matches!(
        cmd::table().full_names[idx].as_str(),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "exec"
    );
    let needs = needs_memory(conn, idx, args);
    if !needs && !runs_scripts {
        return false;
    }
    let out = !cmd::evict::make_room(conn, spec, args).await;
    // Invalidations of keys evicted here go out before this command's reply, as Redis sends
    // them from `performEvictions` (see `evict_before_reply`).
    if let Some(sub) = &conn.sub {
        sub.drain_into(&mut conn.out.buf);
    }
    conn.script_oom = out && runs_scripts;
    out && needs
}

/// Whether command `idx` needs memory: it may grow memory (`denyoom`, or EXEC of a
/// transaction holding one), or it would be queued in MULTI (all but EXEC, DISCARD, QUIT,
/// RESET).
fn needs_memory(conn: &Conn, idx: usize, args: &Args<'_>) -> bool {
    let table = cmd::table();
    let name = table.full_names[idx].as_str();
    if gate_flags(table.specs[idx], name, args).denyoom {
        return true;
    }
    let Some(multi) = &conn.multi else {
        return false;
    };
    match name {
        "exec" => multi.denyoom,
        "discard" | "quit" | "reset" => false,
        _ => true,
    }
}

/// Answers a command refused at the gate; inside MULTI the transaction will abort.
fn refuse(conn: &mut Conn, idx: Option<usize>, e: &Error) {
    if let Some(multi) = conn.multi.as_mut() {
        multi.failed = true;
    }
    match idx {
        Some(idx) => reject(&conn.shard, idx, &mut conn.out, e),
        None => {
            conn.shard.stats.borrow_mut().count_error(e);
            conn.out.error(e);
        }
    }
}

/// `refuse` for a command Redis refuses through `rejectCommand`: EXEC refused aborts its
/// transaction there and then (`execCommandAbort`), with the reason in the EXECABORT error.
async fn refuse_command(conn: &mut Conn, idx: usize, args: &Args<'_>, e: &Error) {
    if cmd::table().full_names[idx] == "exec" {
        Box::pin(abort_exec(conn, idx, args, e)).await;
    } else {
        refuse(conn, Some(idx), e);
    }
}

/// MONITOR clients see the aborted EXEC, as Redis feeds them there.
#[cold]
async fn abort_exec(conn: &mut Conn, idx: usize, args: &Args<'_>, e: &Error) {
    cmd::multi::discard(conn).await;
    cmd::call::monitor_before(conn, "exec", args);
    let reason = e.render();
    let reason = reason.strip_prefix("ERR ").unwrap_or(&reason);
    let abort =
        Error::Coded(format!("EXECABORT Transaction discarded because of: {reason}").into());
    reject(&conn.shard, idx, &mut conn.out, &abort);
}

/// Runs a command that passed the gate.
async fn execute(
    conn: &mut Conn,
    batch: &mut Batch,
    idx: usize,
    args: &Args<'_>,
    raw: Option<&[u8]>,
) {
    let table = cmd::table();
    let spec = table.specs[idx];
    match spec.handler {
        Handler::Keyed(f) => {
            let shard = conn.shard.clone();
            let shards = shards_of(&shard, spec, args);
            if let Some(to) = shards.single() {
                if spec.has(flag::WRITE) && batch.waits_elsewhere(to) {
                    batch.flush(conn).await;
                }
            }
            match shards.single() {
                Some(to) if to == shard.id => {
                    if !shard.data_is_home() {
                        batch.flush(conn).await;
                        shard.data_home().await;
                    }
                    if conn.sub.is_some() && shard.settings.borrow().maxmemory != 0 {
                        evict_before_reply(conn, idx);
                    }
                    let client = Some(&*conn.meta.ident);
                    let track = conn.track();
                    if run_here(
                        &shard,
                        conn.db,
                        idx,
                        f,
                        args,
                        &mut conn.out,
                        conn.now,
                        client,
                        track,
                    ) {
                        crate::cmd::blocking::serve_ready(&shard);
                    }
                }
                Some(to) => batch.push(conn, to, idx, args, raw),
                None => {
                    batch.flush(conn).await;
                    run_across(conn, &shards, idx, f, args).await;
                }
            }
        }
        Handler::Sync(_) | Handler::Async(_) => {
            if spec.has(flag::BARRIER) || matches!(spec.handler, Handler::Async(_)) {
                batch.flush(conn).await;
            }
            call_conn(conn, idx, args).await;
        }
        Handler::Container => {
            // A container called with no subcommand: Redis answers with the arity error.
            let e = Error::WrongArity(table.full_names[idx].clone().into());
            reject(&conn.shard, idx, &mut conn.out, &e);
        }
    }
    if conn.shard.save_after_flushall.get() {
        save_after_flushall(conn, batch).await;
    }
}

/// Evicts before the command runs (rather than in `run_on`), so that the invalidations of
/// evicted keys this client tracks are written before its reply, as Redis flushes them
/// right after `performEvictions`.
#[cold]
fn evict_before_reply(conn: &mut Conn, idx: usize) {
    let shard = conn.shard.clone();
    if let Some(data) = shard.data.borrow_mut().as_deref_mut() {
        // A refusal is answered by `run_on`, whose own look finds nothing more to evict.
        let _ = cmd::evict::before_write(&shard, data, idx, conn.now);
    }
    if let Some(sub) = &conn.sub {
        sub.drain_into(&mut conn.out.buf);
    }
}

/// FLUSHALL's save, before the next command runs (Redis saves inside FLUSHALL).
#[cold]
async fn save_after_flushall(conn: &mut Conn, batch: &mut Batch) {
    conn.shard.save_after_flushall.set(false);
    batch.flush(conn).await;
    crate::persist::save_after_flushall(&conn.shard).await;
}
