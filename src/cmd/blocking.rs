//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK ...), the command side: how a
//! command waits, and how a waiter is served. The queues and the claim that serves a waiter
//! once are the shard side's (`shard::blocking`).
//!
//! A family declares a [`BlockingOp`] per command and names it in the command's table entry
//! (`CommandSpec::blocking`): `serve` tries to answer the command from one key,
//! `timeout_reply` is the answer when time runs out. Its `Handler::Async` calls [`run`] (or
//! [`wait`] after making its own first attempt).
//!
//! How a wait works:
//! - The first attempt tries the keys in argument order, atomically, with the data of every
//!   shard the command's keys live on (`call::with_keys`). Inside EXEC the command never
//!   blocks: it answers as if its time had run out.
//! - Then the connection registers a waiter on every key's owner shard, which re-tries it at
//!   once (data may have arrived since the first attempt) and otherwise queues the waiter on
//!   the key, FIFO, and tracks the key in its `Keyspace`.
//! - Any later lookup or write of a tracked key marks it ready; after the execution unit that
//!   did it, the shard ([`serve_ready`]) re-tries the key's waiters in order until one is not
//!   served. Each try runs through `call()`'s machinery as its own unit, so a served BLPOP
//!   propagates as the LPOP it amounts to, after the write that woke it.
//! - A waiter whose command needs another shard to be served (BLMOVE with the destination
//!   elsewhere) is tried by a task that borrows both shards' data; the key's other waiters
//!   wait behind it meanwhile.
//! - The reply travels back to the connection's core over the mesh; then the connection
//!   removes the waiter's other registrations.

use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::call::{end_unit, run_body, shards_of, with_keys};
use super::{table, Ctx, Exec};
use crate::db::Parts;
use crate::error::{CmdResult, Error};
use crate::resp::{Args, OwnedArgs, Reply};
use crate::shard::blocking::{
    deliver, open_inbox, peer_closed, register, unregister, Delivered, Registration, Waiter, BUSY,
    CANCELLED, SERVED, TRYING, WAITING,
};
use crate::shard::client::Conn;
use crate::shard::journal::Unit;
use crate::shard::tx::{Held, ShardSet};
use crate::shard::Shard;
use crate::util::time::{elapsed_ns, now_ms, ticks};

/// How one blocking command is served; declared next to the command in its family file.
pub struct BlockingOp {
    /// Answers the command from the key at `args.get(key_pos)` if it can, writing the whole
    /// reply into `ctx.out` (and saying what to propagate) and returning `Ok(true)`, or
    /// returns `Ok(false)` having written and changed nothing. An `Err` on the first attempt
    /// is the reply (e.g. WRONGTYPE); when woken it means "cannot serve now" and the client
    /// keeps waiting.
    pub serve: fn(&mut Ctx<'_>, &Args<'_>, usize, &mut WaitState) -> Result<bool, Error>,
    /// The reply when the timeout expires (e.g. a null array).
    pub timeout_reply: fn(&mut Reply),
    /// Serving touches every key of the command, not just the ready one (BLMOVE pushes to
    /// its destination): when they live on several shards, a woken waiter is served with
    /// all of them held.
    pub serves_all_keys: bool,
}

/// What `serve` may keep, per waiter and key.
#[derive(Default)]
pub struct WaitState {
    /// True for the first attempt, made before the client blocks.
    pub first: bool,
    /// Kept between attempts on this key (XREAD keeps the id `$` stood for).
    pub data: Vec<u8>,
}

/// How often a blocked connection checks that its client is still there.
const DISCONNECT_POLL: Duration = Duration::from_millis(20);

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
pub async fn run(conn: &mut Conn, args: &Args<'_>, keys: &[usize], timeout_ms: u64) -> CmdResult {
    let idx = command_index(args);
    let op = op_of(idx);
    let served = with_keys(conn, idx, args, |c| {
        let mut state = WaitState {
            first: true,
            ..WaitState::default()
        };
        for &pos in keys {
            if (op.serve)(c, args, pos, &mut state)? {
                return Ok(true);
            }
        }
        Ok(false)
    })
    .await?;
    if served {
        return Ok(());
    }
    wait(conn, args, keys, timeout_ms).await
}

/// The table index of the command in `args` (a blocking command: no subcommands).
fn command_index(args: &Args<'_>) -> usize {
    table().lookup(args.get(0)).unwrap_or(0)
}

/// How command `idx` is served (every blocking command's table entry names its op).
fn op_of(idx: usize) -> &'static BlockingOp {
    table().specs[idx]
        .blocking
        .expect("a blocking command names its BlockingOp in the table")
}

/// Blocks on the keys at `keys` without a first attempt (the caller made its own), until one
/// serves the command or `timeout_ms` (0: forever) passes. Inside EXEC it answers at once as
/// if the time had run out, as Redis runs blocking commands in a transaction.
pub async fn wait(conn: &mut Conn, args: &Args<'_>, keys: &[usize], timeout_ms: u64) -> CmdResult {
    let idx = command_index(args);
    let op = op_of(idx);
    if conn.held.is_some() {
        (op.timeout_reply)(&mut conn.out);
        return Ok(());
    }
    let shard = conn.shard.clone();
    let spans = if op.serves_all_keys {
        shards_of(&shard, table().specs[idx], args)
    } else {
        ShardSet::new()
    };
    let id = shard.blocking.new_id(shard.id);
    let waiter = Arc::new(Waiter {
        id,
        conn_shard: shard.id,
        status: AtomicU8::new(WAITING),
        idx,
        db: conn.db,
        args: OwnedArgs::from(args),
        resp3: conn.out.resp3,
        spans: (spans.len() > 1).then_some(spans),
    });
    let _inbox = open_inbox(&shard, id);
    let _blocked = BlockedFlag::set(&conn.meta);

    // Register on each owner shard, keys of one shard in one call.
    let mut owners: Vec<(usize, Vec<usize>)> = Vec::new();
    for &pos in keys {
        let owner = shard.owner_of_key(args.get(pos));
        match owners.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, positions)) => positions.push(pos),
            None => owners.push((owner, vec![pos])),
        }
    }
    for (owner, positions) in &owners {
        let (w, positions) = (waiter.clone(), positions.clone());
        shard
            .call(*owner, move |s| register(s, &w, &positions))
            .await;
    }

    let deadline = (timeout_ms > 0).then(|| now_ms().saturating_add(timeout_ms as i64));
    let fd = conn.meta.fd;
    let mut unblocked = 0;
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
        unblocked = conn.meta.unblock.replace(0);
        let expired = unblocked != 0 || deadline.is_some_and(|d| now_ms() >= d);
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
    let db = conn.db;
    for (owner, positions) in owners {
        let key_list: Vec<Box<[u8]>> = positions.iter().map(|&p| args.get(p).into()).collect();
        shard
            .call(owner, move |s| unregister(s, id, db, &key_list))
            .await;
    }
    match delivery {
        Some(d) => {
            conn.out.buf.extend_from_slice(&d.reply);
            Ok(())
        }
        None if unblocked == 2 => Err(Error::Coded(
            "UNBLOCKED client unblocked via CLIENT UNBLOCK".into(),
        )),
        None if unblocked == crate::shard::FORCE_UNBLOCK => {
            // REPLICAOF (Redis's `disconnectAllBlockedClients`): the error, then closed.
            conn.close_after_reply = true;
            Err(Error::Coded(crate::shard::FORCE_UNBLOCKED.into()))
        }
        None => {
            (op.timeout_reply)(&mut conn.out);
            Ok(())
        }
    }
}

enum Tried {
    Served,
    NotReady,
    /// Served or cancelled elsewhere: this registration is dead.
    Decided,
    /// Being tried by a task (it needs other shards): the queue waits behind it.
    Later,
}

/// Tries one registration with this shard's data (home).
fn try_serve(shard: &Rc<Shard>, reg: &mut Registration) -> Tried {
    let w = reg.waiter.clone();
    if let Some(spans) = &w.spans {
        if !w.claim(TRYING) {
            return match w.status.load(Ordering::Acquire) {
                TRYING => Tried::Later,
                _ => Tried::Decided,
            };
        }
        try_across(shard.clone(), w.clone(), spans.clone(), reg.key_pos);
        return Tried::Later;
    }
    if !w.claim(BUSY) {
        return Tried::Decided;
    }
    let mut state = WaitState {
        first: false,
        data: std::mem::take(&mut reg.data),
    };
    let mut data = shard.data.borrow_mut();
    let Some(data) = data.as_deref_mut() else {
        w.status.store(WAITING, Ordering::Release);
        return Tried::NotReady;
    };
    let mut out = Reply::new(w.resp3);
    let mut unit = Unit::default();
    let served = serve_waiter(
        shard,
        Parts::One(data),
        &w,
        reg.key_pos,
        &mut state,
        &mut out,
        &mut unit,
    );
    if !unit.is_empty() {
        data.clock = end_unit(shard, &mut unit, data.clock);
    }
    if !served {
        reg.data = state.data;
        w.status.store(WAITING, Ordering::Release);
        return Tried::NotReady;
    }
    w.status.store(SERVED, Ordering::Release);
    deliver(shard, &w, out.buf);
    Tried::Served
}

/// Runs a waiter's `serve` through `call()`'s machinery as its own execution unit; the
/// command's stats count it once served.
fn serve_waiter(
    shard: &Rc<Shard>,
    parts: Parts<'_>,
    w: &Waiter,
    key_pos: usize,
    state: &mut WaitState,
    out: &mut Reply,
    unit: &mut Unit,
) -> bool {
    let args = w.args.args();
    let started = ticks();
    let mut x = Exec {
        shard,
        parts,
        db: w.db,
        out,
        now: now_ms(),
        unit,
        client: None,
        track: Default::default(),
    };
    let (result, dirty) = run_body(&mut x, &args, false, |c| {
        (op_of(w.idx).serve)(c, &args, key_pos, state)
    });
    let served = matches!(result, Ok(true));
    if served {
        let mut stats = shard.stats.borrow_mut();
        stats.dirty += dirty;
        let s = &mut stats.cmd[w.idx];
        s.calls += 1;
        s.nsec += elapsed_ns(started);
    }
    served
}

/// Tries a waiter whose command needs several shards, from a task holding them all; then the
/// key's queue on `shard` is tried again.
fn try_across(shard: Rc<Shard>, w: Arc<Waiter>, spans: ShardSet, key_pos: usize) {
    glommio::spawn_local(async move {
        let mut held = Held::acquire(&shard, &spans).await;
        let mut out = Reply::new(w.resp3);
        let mut unit = Unit::default();
        let mut state = WaitState::default();
        let served = serve_waiter(
            &shard,
            held.parts(),
            &w,
            key_pos,
            &mut state,
            &mut out,
            &mut unit,
        );
        if !unit.is_empty() {
            let stamp = end_unit(&shard, &mut unit, held.clock());
            held.set_clock(stamp);
        }
        if !served {
            // The key's queue stays behind this waiter until the key is touched again.
            w.status.store(WAITING, Ordering::Release);
            return;
        }
        w.status.store(SERVED, Ordering::Release);
        deliver(&shard, &w, out.buf);
        // Served: the waiters queued behind it are tried next.
        let key: Box<[u8]> = w.args.args().get(key_pos).into();
        let db = w.db;
        held.release();
        shard.data_home().await;
        if let Some(d) = shard.data.borrow_mut().as_deref_mut() {
            d.db(db).mark_ready(&key);
        }
        serve_ready(&shard);
    })
    .detach();
}

/// After an execution unit: serves, in arrival order, the waiters of every tracked key it
/// touched. Serving one may touch more keys (BLMOVE's destination), so this loops until quiet.
/// Nothing happens while the data is away (it runs again when the data comes home) or while
/// a MIGRATE has keys in flight here: serving could write one of them (BLMOVE's destination)
/// after its copy left (`migrate::end_move` serves them then).
pub fn serve_ready(shard: &Rc<Shard>) {
    loop {
        let ready = {
            let mut data = shard.data.borrow_mut();
            let Some(data) = data.as_deref_mut() else {
                return;
            };
            if !data.in_flight.is_empty() || !data.has_ready() {
                return;
            }
            data.take_ready()
        };
        for (db, key) in ready {
            serve_key(shard, db, &key);
        }
    }
}

fn serve_key(shard: &Rc<Shard>, db: usize, key: &[u8]) {
    serve_queue(shard, db, key);
    // Our own attempts looked the key up, which marked it again: it has just been checked.
    shard.with_data(|d| d.db(db).unmark_ready(key));
    if shard.blocking.drop_if_empty(db, key) {
        shard.with_data(|d| d.track_blocked(db, key, false));
    }
}

/// Serves the waiters of `key` in order until one cannot be served.
fn serve_queue(shard: &Rc<Shard>, db: usize, key: &[u8]) {
    while let Some(mut reg) = shard.blocking.pop_front(db, key) {
        match try_serve(shard, &mut reg) {
            Tried::Served | Tried::Decided => {}
            Tried::NotReady | Tried::Later => {
                shard.blocking.push_front(db, key, reg);
                return;
            }
        }
    }
}

/// Marks a connection blocked while it waits (the idle `timeout` spares it), however the
/// wait ends.
struct BlockedFlag(std::rc::Rc<crate::shard::ClientMeta>);

impl BlockedFlag {
    fn set(meta: &std::rc::Rc<crate::shard::ClientMeta>) -> BlockedFlag {
        meta.blocked.set(true);
        BlockedFlag(meta.clone())
    }
}

impl Drop for BlockedFlag {
    fn drop(&mut self) {
        self.0.blocked.set(false);
        self.0.unblock.set(0);
    }
}
