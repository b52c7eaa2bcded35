//! Transactions (Redis's multi.c): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! EXEC borrows the data of every shard its commands and watched keys live on (`shard::tx`),
//! checks the WATCHed keys with that data in hand, and runs the queued commands one after the
//! other through `call()` as one execution unit: no other client sees part of it, and it
//! propagates as one MULTI ... EXEC block (or a bare command if it changed one thing).
//!
//! A WATCHed key registers the client's `Watcher` on the key's shard; a write there sets its
//! flag, so the write path pays only for checking that some key of its database is watched.

use std::sync::Arc;

use crate::cmd::call::{end_unit, record};
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Exec, Handler};
use crate::db::Watcher;
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::{Conn, MultiState, Queued, WatchState};
use crate::shard::journal::Unit;
use crate::shard::tx::{Held, ShardSet};
use crate::util::time::ticks;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED,
        Handler::Sync(multi),
    )
    .acl(&["@transaction"])
    .doc(
        "transactions",
        "1.2.0",
        "Mark the start of a transaction block",
    ),
    CommandSpec::new(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG | NOT_QUEUED | ROUTES_QUEUED,
        Handler::Async(exec),
    )
    .acl(&["@transaction"])
    .doc(
        "transactions",
        "1.2.0",
        "Execute all commands issued after MULTI",
    ),
    CommandSpec::new(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED,
        Handler::Async(discard_cmd),
    )
    .acl(&["@transaction"])
    .doc(
        "transactions",
        "2.0.0",
        "Discard all commands issued after MULTI",
    ),
    CommandSpec::new(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY | NOT_QUEUED,
        Handler::Async(watch),
    )
    .keys(1, -1, 1)
    .acl(&["@transaction"])
    .doc(
        "transactions",
        "2.2.0",
        "Watch the given keys to determine execution of the MULTI/EXEC block",
    ),
    CommandSpec::new(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        Handler::Async(unwatch),
    )
    .acl(&["@transaction"])
    .doc("transactions", "2.2.0", "Forget about all watched keys"),
];

fn multi(c: &mut Conn, _: &Args) -> CmdResult {
    if c.multi.is_some() {
        return Err(Error::MultiNested);
    }
    c.multi = Some(MultiState::default());
    c.out.ok();
    Ok(())
}

fn discard_cmd<'a>(c: &'a mut Conn, _: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if c.multi.is_none() {
            return Err(Error::DiscardWithoutMulti);
        }
        discard(c).await;
        c.out.ok();
        Ok(())
    })
}

/// Leaves MULTI and forgets the WATCHed keys (Redis's `discardTransaction`).
pub async fn discard(c: &mut Conn) {
    c.multi = None;
    unwatch_all(c).await;
}

/// A connection going away: whatever transaction it had open is dropped, and its WATCH
/// registrations with it.
pub async fn forget(c: &mut Conn) {
    discard(c).await;
}

fn watch<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if c.multi.is_some() {
            return Err(Error::WatchInsideMulti);
        }
        let state = c.watch.get_or_insert_with(|| WatchState {
            watcher: Arc::new(Watcher::default()),
            keys: Vec::new(),
        });
        // No point in watching once a watched key has changed: EXEC will fail anyway.
        if state.watcher.is_dirty() {
            c.out.ok();
            return Ok(());
        }
        let db = c.db;
        let mut new: Vec<Vec<Box<[u8]>>> = vec![Vec::new(); c.shard.nshards];
        for key in a.rest(1) {
            if state.keys.iter().any(|(d, k)| *d == db && **k == *key) {
                continue;
            }
            state.keys.push((db, key.into()));
            new[c.shard.owner_of_key(key)].push(key.into());
        }
        let watcher = state.watcher.clone();
        let now = c.now;
        for (to, keys) in new.into_iter().enumerate().filter(|(_, k)| !k.is_empty()) {
            let watcher = watcher.clone();
            c.shard
                .call_data(to, move |_, data| {
                    let ks = data.db(db);
                    for key in keys {
                        let expired = ks.is_expired_at(&key, now);
                        ks.watches.add(&key, &watcher, expired);
                    }
                })
                .await;
        }
        c.out.ok();
        Ok(())
    })
}

fn unwatch<'a>(c: &'a mut Conn, _: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        unwatch_all(c).await;
        c.out.ok();
        Ok(())
    })
}

/// Drops every WATCH registration of the client and its dirty flag.
async fn unwatch_all(c: &mut Conn) {
    let Some(state) = c.watch.take() else {
        return;
    };
    let mut by_shard: Vec<Vec<(usize, Box<[u8]>)>> = vec![Vec::new(); c.shard.nshards];
    for (db, key) in state.keys {
        by_shard[c.shard.owner_of_key(&key)].push((db, key));
    }
    for (to, keys) in by_shard
        .into_iter()
        .enumerate()
        .filter(|(_, k)| !k.is_empty())
    {
        let watcher = state.watcher.clone();
        c.shard
            .post(to, true, move |s| {
                s.with_data(|data| {
                    for (db, key) in keys {
                        data.db(db).watches.remove(&key, &watcher);
                    }
                });
            })
            .await;
    }
}

fn exec<'a>(c: &'a mut Conn, _: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let Some(multi) = c.multi.take() else {
            return Err(Error::ExecWithoutMulti);
        };
        if multi.failed {
            unwatch_all(c).await;
            return Err(Error::ExecAbort);
        }
        let mut held = Held::acquire(&c.shard, &shards_needed(c, &multi.queued)).await;
        if watch_failed(c, &mut held) {
            held.release();
            c.out.null_array();
            return Ok(());
        }
        c.out.array(multi.queued.len());
        c.held = Some(held);
        let mut unit = Unit::default();
        for q in &multi.queued {
            run_queued(c, q, &mut unit).await;
        }
        let Some(mut held) = c.held.take() else {
            return Ok(());
        };
        if !unit.is_empty() {
            let stamp = end_unit(&c.shard, &mut unit, held.clock());
            held.set_clock(stamp);
        }
        held.release();
        Ok(())
    })
}

/// Runs `queued` as one step with the shards they need held, as EXEC runs a transaction
/// (no WATCH, no reply array; the replies go to the client's output): how a replica applies
/// a chunk of its master's stream, whose cross-shard commands would otherwise each borrow
/// their shards anew.
pub async fn run_atomically(c: &mut Conn, queued: &[Queued]) {
    if queued.is_empty() {
        return;
    }
    let held = Held::acquire(&c.shard, &shards_needed(c, queued)).await;
    c.held = Some(held);
    let mut unit = Unit::default();
    for q in queued {
        run_queued(c, q, &mut unit).await;
    }
    let Some(mut held) = c.held.take() else {
        return;
    };
    if !unit.is_empty() {
        let stamp = end_unit(&c.shard, &mut unit, held.clock());
        held.set_clock(stamp);
    }
    held.release();
}

/// The shards an EXEC must hold: those of its commands' keys and of the WATCHed keys; every
/// shard when a command works on the whole keyspace or on the connection with waits (which
/// may need any shard's data, and must not wait for data this EXEC holds).
fn shards_needed(c: &Conn, queued: &[Queued]) -> ShardSet {
    let table = crate::cmd::table();
    let mut set = ShardSet::new();
    for q in queued {
        let spec = table.specs[q.idx];
        match spec.handler {
            Handler::Keyed(_) => {
                set.extend(&crate::cmd::call::shards_of(&c.shard, spec, &q.args.args()));
            }
            Handler::Async(_) => return ShardSet::all(c.shard.nshards),
            Handler::Sync(_) | Handler::Container => {}
        }
    }
    if let Some(w) = &c.watch {
        for (_, key) in &w.keys {
            set.insert(c.shard.owner_of_key(key));
        }
    }
    set
}

/// With the data held: whether a WATCHed key changed, or expired, since WATCH (Redis's
/// `CLIENT_DIRTY_CAS` and `isWatchedKeyExpired`). The registrations go away either way.
fn watch_failed(c: &mut Conn, held: &mut Held) -> bool {
    let Some(state) = c.watch.take() else {
        return false;
    };
    let mut failed = state.watcher.is_dirty();
    let mut parts = held.parts();
    for (db, key) in &state.keys {
        let ks = parts.owner_of(key).db(*db);
        if ks.watches.watched_live(key, &state.watcher) && ks.is_expired_at(key, c.now) {
            failed = true;
        }
        ks.watches.remove(key, &state.watcher);
    }
    failed
}

/// Runs one queued command inside EXEC, its reply in place, its effects into `unit`.
async fn run_queued(c: &mut Conn, q: &Queued, unit: &mut Unit) {
    let spec = crate::cmd::table().specs[q.idx];
    let args = q.args.args();
    // Permissions are checked again: the ACL may have changed since the command was queued.
    c.sync_acl();
    if !c.acl_open {
        let context = crate::acl::Context::Multi;
        if let Err(d) = crate::cmd::permission::check_logged(c, q.idx, &args, context) {
            c.out.error(&crate::cmd::permission::exec_error(d));
            return;
        }
    }
    match spec.handler {
        Handler::Keyed(f) => {
            let ident = c.meta.ident.clone();
            let track = c.track();
            let Some(held) = c.held.as_mut() else {
                return;
            };
            let mut x = Exec {
                shard: &c.shard,
                parts: held.parts(),
                db: c.db,
                out: &mut c.out,
                now: c.now,
                unit,
                client: Some(&ident),
                track,
            };
            crate::cmd::call(&mut x, q.idx, f, &args);
        }
        Handler::Sync(f) => {
            let started = ticks();
            let mark = c.out.buf.len();
            let result = crate::cmd::guarded(|| f(c, &args));
            finish(c, q.idx, &args, started, mark, result);
        }
        Handler::Async(f) => {
            crate::cmd::call::call_async(c, q.idx, f, args).await;
            unit.ops.append(&mut c.exec_ops);
        }
        Handler::Container => {}
    }
}

fn finish(c: &mut Conn, idx: usize, args: &Args, started: u64, mark: usize, result: CmdResult) {
    record(c, idx, args, started, &result);
    if let Err(e) = result {
        c.out.buf.truncate(mark);
        c.out.error(&e);
    }
}
