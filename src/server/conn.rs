//! The connection task: read, decode a batch, run each request through the gate, write once.
//!
//! Requests whose keys live on this core run at once into the output buffer. Requests for
//! another shard are appended (RESP-encoded) to that shard's batch for this read and leave a
//! *hole* in the output; after the batch each shard gets one job, and its replies fill the
//! holes in order, so pipelined replies keep their order.

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::cmd::{self, flag, CommandSpec, Handler};
use crate::error::Error;
use crate::resp::{Args, Decoded, Decoder, Reply};
use crate::shard::pubsub::{self, Subscriber};
use crate::shard::{ClientMeta, Shard};
use crate::slot::key_slot;

use super::route;
use crate::util::time::now_ms;

const READ_CHUNK: usize = 16 * 1024;

/// Per-connection state that handlers may read and change.
pub struct Conn {
    pub shard: Rc<Shard>,
    pub meta: Rc<ClientMeta>,
    pub out: Reply,
    pub authed: bool,
    /// Close once the output is written (QUIT, protocol errors, CLIENT KILL of self).
    pub close_after_reply: bool,
    /// ASKING was sent: the next command may use a slot this node is importing.
    pub asking: bool,
    /// READONLY was sent (replica reads; kept for when replicas exist).
    pub readonly: bool,
    /// Commands for other shards in the current batch, RESP-encoded, with their count.
    forward: Vec<Forward>,
    /// Where remote replies go in `out`, in order: (byte offset, shard).
    holes: Vec<(usize, usize)>,
    /// The batch's time, fixed while it runs.
    pub now: i64,
    /// Set at the first (un)subscribe and kept for the connection's life: pushes other cores
    /// deliver wait here. `None` for the usual connection, which then pays nothing for Pub/Sub.
    pub sub: Option<Rc<Subscriber>>,
}

#[derive(Default)]
struct Forward {
    cmds: Vec<u8>,
    count: u32,
}

/// A forwarded batch's replies: concatenated, with the end offset of each.
pub struct BatchReplies {
    pub out: Vec<u8>,
    pub ends: Vec<u32>,
}

impl Conn {
    pub fn new(shard: Rc<Shard>, meta: Rc<ClientMeta>) -> Conn {
        let authed = shard.settings.borrow().requirepass.is_none();
        let nshards = shard.nshards;
        Conn {
            shard,
            meta,
            out: Reply::new(false),
            authed,
            close_after_reply: false,
            asking: false,
            readonly: false,
            forward: (0..nshards).map(|_| Forward::default()).collect(),
            holes: Vec::new(),
            now: now_ms(),
            sub: None,
        }
    }

    /// This connection's subscriber record, created on first use.
    pub fn subscriber(&mut self) -> Rc<Subscriber> {
        self.sub
            .get_or_insert_with(|| Subscriber::new(self.meta.clone()))
            .clone()
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Runs this batch's forwarded commands on their shards and places the replies.
    pub async fn flush_forwarded(&mut self) {
        if self.holes.is_empty() {
            return;
        }
        let resp3 = self.out.resp3;
        let mut tickets = Vec::new();
        for (to, fwd) in self.forward.iter_mut().enumerate() {
            if fwd.count == 0 {
                continue;
            }
            let cmds = std::mem::take(&mut fwd.cmds);
            let count = std::mem::take(&mut fwd.count);
            let job: crate::shard::mesh::Job = Box::new(move |s| {
                Box::new(run_forwarded(s, &cmds, count, resp3)) as Box<dyn std::any::Any + Send>
            });
            tickets.push((to, self.shard.mesh.send(to, 0, job).await));
        }
        let mut replies: Vec<Option<(BatchReplies, usize)>> =
            (0..self.shard.nshards).map(|_| None).collect();
        for (to, t) in tickets {
            let r = t.await;
            if let Ok(b) = r.downcast::<BatchReplies>() {
                replies[to] = Some((*b, 0));
            }
        }
        // Interleave: local output up to each hole, then the next reply of that hole's shard.
        let local = std::mem::replace(&mut self.out.buf, Vec::with_capacity(READ_CHUNK));
        let mut at = 0;
        for &(offset, to) in &self.holes {
            self.out.buf.extend_from_slice(&local[at..offset]);
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
                Some(bytes) => self.out.buf.extend_from_slice(bytes),
                None => self.out.error(&Error::msg(cmd::PANIC_REPLY)),
            }
        }
        self.out.buf.extend_from_slice(&local[at..]);
        self.holes.clear();
    }
}

/// Executes forwarded commands on the owning shard (see `Conn::flush_forwarded`).
fn run_forwarded(shard: &Rc<Shard>, cmds: &[u8], count: u32, resp3: bool) -> BatchReplies {
    let table = cmd::table();
    let mut out = Reply {
        buf: Vec::with_capacity(cmds.len().min(64 * 1024)),
        resp3,
    };
    let mut ends = Vec::with_capacity(count as usize);
    let mut dec = Decoder::new(i64::MAX);
    let mut pos = 0;
    let now = now_ms();
    while pos + 4 <= cmds.len() {
        let idx =
            u32::from_le_bytes([cmds[pos], cmds[pos + 1], cmds[pos + 2], cmds[pos + 3]]) as usize;
        pos += 4;
        let len = match dec.decode(&cmds[pos..], false) {
            Decoded::Request { len, .. } => len,
            _ => break,
        };
        let args = Args::new(&cmds[pos..pos + len], dec.scratch(), dec.spans());
        if let Handler::Keyed(f) = table.specs[idx].handler {
            cmd::run_keyed(shard, idx, f, &args, &mut out, now);
        }
        ends.push(out.buf.len() as u32);
        pos += len;
    }
    BatchReplies { out: out.buf, ends }
}

/// The read buffer: bytes `[start, end)` are received and not yet consumed.
struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
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

/// Serves one client connection until it closes.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, meta: Rc<ClientMeta>) {
    let mut conn = Conn::new(shard.clone(), meta);
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
        shard.stats.borrow_mut().net_input_bytes += n as u64;
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
        need = process_batch(&mut conn, &mut dec, &mut rbuf).await;
        conn.meta.qbuf.set(rbuf.end - rbuf.start);
        if let Some(sub) = &conn.sub {
            sub.drain_into(&mut conn.out.buf);
        }
        if !write_out(&mut conn, &mut stream).await {
            break;
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
    if let Some(sub) = conn.sub.take() {
        pubsub::remove_all(&shard, &sub);
    }
    // Unregister before closing: once the fd is closed its number can be reused by a new
    // connection, which a CLIENT KILL must not hit.
    shard.clients.borrow_mut().remove(&conn.id());
    let _ = stream.close().await;
}

/// Writes the output buffer, if any; false when the connection is gone. While a subscriber's
/// pushes are being written they still count against its output buffer limit.
async fn write_out(conn: &mut Conn, stream: &mut TcpStream) -> bool {
    if conn.out.buf.is_empty() {
        return true;
    }
    conn.shard.stats.borrow_mut().net_output_bytes += conn.out.buf.len() as u64;
    if let Some(sub) = &conn.sub {
        sub.set_writing(conn.out.buf.len());
    }
    let ok = stream.write_all(&conn.out.buf).await.is_ok();
    if let Some(sub) = &conn.sub {
        sub.set_writing(0);
    }
    conn.out.buf.clear();
    if conn.out.buf.capacity() > 1 << 20 {
        conn.out.buf = Vec::with_capacity(READ_CHUNK);
    }
    ok
}

/// Decodes and runs every complete request in the buffer. Returns how many bytes the next
/// incomplete request needs in total (0 if unknown).
async fn process_batch(conn: &mut Conn, dec: &mut Decoder, rbuf: &mut ReadBuf) -> usize {
    let mut need = 0;
    while rbuf.start < rbuf.end && !conn.close_after_reply {
        let buf = &rbuf.data[rbuf.start..rbuf.end];
        match dec.decode(buf, !conn.authed) {
            Decoded::Incomplete { need: n } => {
                need = n;
                break;
            }
            Decoded::Nothing { len } => rbuf.start += len,
            Decoded::Error(e) => {
                conn.flush_forwarded().await;
                conn.out.error_line(&e.text());
                conn.close_after_reply = true;
                rbuf.start = rbuf.end;
            }
            Decoded::Request { len, inline } => {
                let args = Args::new(buf, dec.scratch(), dec.spans());
                let raw = if inline { None } else { Some(&buf[..len]) };
                dispatch(conn, args, raw).await;
                rbuf.start += len;
            }
        }
    }
    conn.flush_forwarded().await;
    need
}

/// The gate: lookup, arity, auth, then local execution, forwarding, or a connection handler.
pub async fn dispatch(conn: &mut Conn, args: Args<'_>, raw: Option<&[u8]>) {
    let table = cmd::table();
    let name = args.get(0);
    // ASKING lasts for the one command after it, whatever that command is (ASKING sets it
    // again when it runs).
    let mut asking = std::mem::take(&mut conn.asking);
    if name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:") {
        eprintln!("Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. Connection aborted.");
        conn.out.buf.clear();
        conn.holes.clear();
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
        conn.out.error(&Error::unknown_command(name, &rest));
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
                    conn.out
                        .error(&Error::unknown_subcommand(args.get(1), container));
                    return;
                }
            }
        }
    }
    if !spec.arity_ok(args.len()) {
        table_reject(conn, idx);
        conn.out
            .error(&Error::WrongArity(table.full_names[idx].clone().into()));
        return;
    }
    if !conn.authed && !spec.has(flag::NO_AUTH) {
        table_reject(conn, idx);
        conn.out.error(&Error::NoAuth);
        return;
    }
    conn.meta.last_cmd.set(table.full_names[idx].as_str());
    crate::shard::pause::wait_at_gate(conn, idx, &args, asking).await;
    let mut open_slot = None;
    if (spec.first_key > 0 || spec.key_finder.is_some()) && conn.shard.slot_map.borrow().enabled {
        conn.shard.refresh_slot_map();
        asking |= spec.has(flag::ASKING);
        match route::cluster_route(conn, spec, &args, asking) {
            Err(e) => {
                table_reject(conn, idx);
                conn.out.error(&e);
                return;
            }
            Ok(slot) => open_slot = slot,
        }
    }
    if conn.sub.is_some()
        && !conn.out.resp3
        && conn.meta.in_pubsub()
        && !cmd::pubsub::allowed_in_subscribed_context(&table.full_names[idx])
    {
        table_reject(conn, idx);
        conn.out.error(&cmd::pubsub::subscribed_context_error(
            &table.full_names[idx],
        ));
        return;
    }
    if let Some(slot) = open_slot {
        if !route::run_open_slot(conn, idx, &args, slot, asking).await {
            return;
        }
    }
    match spec.handler {
        Handler::Keyed(f) => {
            let shard = &conn.shard;
            let mut positions = spec.key_positions(args.len());
            let first = positions
                .next()
                .map_or(0, |p| shard.owner_of(key_slot(args.get(p))));
            let spans_shards = positions.any(|p| shard.owner_of(key_slot(args.get(p))) != first);
            if spans_shards {
                if let Some(multi) = spec.multi {
                    conn.flush_forwarded().await;
                    let started = crate::util::time::ticks();
                    let mark = conn.out.buf.len();
                    let result = guarded_async(multi(conn, args)).await;
                    cmd::record(&conn.shard, idx, started, result.is_err());
                    if let Err(e) = result {
                        conn.out.buf.truncate(mark);
                        conn.out.error(&e);
                    }
                    return;
                }
            }
            if first == shard.id {
                if shard.blocked_for(0) {
                    conn.flush_forwarded().await;
                    conn.shard.wait_unheld(0).await;
                }
                let shard = conn.shard.clone();
                cmd::run_keyed(&shard, idx, f, &args, &mut conn.out, conn.now);
            } else {
                let fwd = &mut conn.forward[first];
                fwd.cmds.extend_from_slice(&(idx as u32).to_le_bytes());
                match raw {
                    Some(bytes) => fwd.cmds.extend_from_slice(bytes),
                    None => args.encode_into(&mut fwd.cmds),
                }
                fwd.count += 1;
                conn.holes.push((conn.out.buf.len(), first));
            }
        }
        Handler::Sync(f) => {
            if spec.has(flag::BARRIER) {
                conn.flush_forwarded().await;
            }
            let started = crate::util::time::ticks();
            let mark = conn.out.buf.len();
            let result = cmd::guarded(|| f(conn, &args));
            cmd::record(&conn.shard, idx, started, result.is_err());
            if let Err(e) = result {
                conn.out.buf.truncate(mark);
                conn.out.error(&e);
            }
        }
        Handler::Async(f) => {
            conn.flush_forwarded().await;
            let started = crate::util::time::ticks();
            let mark = conn.out.buf.len();
            let result = guarded_async(f(conn, args)).await;
            cmd::record(&conn.shard, idx, started, result.is_err());
            if let Err(e) = result {
                conn.out.buf.truncate(mark);
                conn.out.error(&e);
            }
        }
        Handler::Container => {
            // A container called with no subcommand: Redis answers with the arity error.
            conn.out
                .error(&Error::WrongArity(table.full_names[idx].clone().into()));
        }
    }
}

/// `cmd::guarded` for connection handlers that await.
async fn guarded_async(fut: cmd::BoxFuture<'_>) -> crate::error::CmdResult {
    use futures_lite::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Error::msg(cmd::PANIC_REPLY)))
}

fn table_reject(conn: &Conn, idx: usize) {
    conn.shard.stats.borrow_mut().cmd[idx].rejected += 1;
}
