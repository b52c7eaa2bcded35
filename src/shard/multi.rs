//! The coordinator for commands whose keys span shards: split by shard, run, merge.

use std::rc::Rc;

use crate::db::Keyspace;
use crate::slot::key_slot;
use crate::types::Value;
use crate::util::time::now_ms;

use super::Shard;

/// Groups key indexes by owning shard, keeping each shard's keys in argument order.
pub fn by_shard(shard: &Shard, keys: &[Vec<u8>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); shard.nshards];
    for (i, k) in keys.iter().enumerate() {
        groups[shard.owner_of(key_slot(k))].push(i);
    }
    groups
}

/// Applies `f` to every key on its own shard and returns the results in key order.
pub async fn map_keys<R, F>(shard: &Rc<Shard>, keys: Vec<Vec<u8>>, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&mut Keyspace, &[u8], i64) -> R + Send + Sync + Copy + 'static,
{
    let n = keys.len();
    let done = map_keys_once(shard, keys.into_iter().enumerate().collect(), false, f).await;
    in_key_order(n, done.into_iter().map(|(i, r)| (i, r.ok())))
}

/// `map_keys` for writes (DEL, UNLINK): a key a MIGRATE has in flight is written only once
/// the move has ended, so a deleted key cannot live on in the copy on its way.
pub async fn map_keys_write<R, F>(shard: &Rc<Shard>, keys: Vec<Vec<u8>>, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&mut Keyspace, &[u8], i64) -> R + Send + Sync + Copy + 'static,
{
    let n = keys.len();
    let mut todo: Vec<(usize, Vec<u8>)> = keys.into_iter().enumerate().collect();
    let mut results = Vec::with_capacity(n);
    loop {
        for (i, r) in map_keys_once(shard, std::mem::take(&mut todo), true, f).await {
            match r {
                Ok(r) => results.push((i, Some(r))),
                Err(key) => todo.push((i, key)),
            }
        }
        if todo.is_empty() {
            return in_key_order(n, results.into_iter());
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn in_key_order<R>(n: usize, results: impl Iterator<Item = (usize, Option<R>)>) -> Vec<R> {
    let mut ordered: Vec<Option<R>> = (0..n).map(|_| None).collect();
    for (i, r) in results {
        ordered[i] = r;
    }
    ordered
        .into_iter()
        .map(|r| r.expect("every key got a result"))
        .collect()
}

/// Runs `f` on each (index, key) on the key's shard, every shard's part at once. A key left
/// alone because a MIGRATE has it in flight (only when `skip_in_flight`) comes back as Err.
async fn map_keys_once<R, F>(
    shard: &Rc<Shard>,
    items: Vec<(usize, Vec<u8>)>,
    skip_in_flight: bool,
    f: F,
) -> Vec<(usize, Result<R, Vec<u8>>)>
where
    R: Send + 'static,
    F: Fn(&mut Keyspace, &[u8], i64) -> R + Send + Sync + Copy + 'static,
{
    let mut parts: Vec<Vec<(usize, Vec<u8>)>> = (0..shard.nshards).map(|_| Vec::new()).collect();
    for (i, k) in items {
        parts[shard.owner_of(key_slot(&k))].push((i, k));
    }
    let job = move |s: &Rc<Shard>, part: Vec<(usize, Vec<u8>)>| {
        let in_flight = s.in_flight.borrow();
        let mut db = s.db.borrow_mut();
        let now = now_ms();
        part.into_iter()
            .map(|(i, k)| {
                if skip_in_flight && in_flight.contains(k.as_slice()) {
                    (i, Err(k))
                } else {
                    (i, Ok(f(&mut db, &k, now)))
                }
            })
            .collect::<Vec<_>>()
    };
    let mut local = None;
    let mut tickets = Vec::new();
    for (to, part) in parts.into_iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if to == shard.id {
            local = Some(part);
        } else {
            let remote: super::mesh::Job =
                Box::new(move |s| Box::new(job(s, part)) as Box<dyn std::any::Any + Send>);
            tickets.push(shard.mesh.send(to, 0, remote).await);
        }
    }
    // Every shard's part runs at once: all the jobs were sent before any is awaited.
    let mut results = Vec::new();
    if let Some(part) = local {
        shard.wait_unheld(0).await;
        results.extend(job(shard, part));
    }
    for ticket in tickets {
        match ticket.await.downcast::<Vec<(usize, Result<R, Vec<u8>>)>>() {
            Ok(out) => results.extend(*out),
            Err(_) => panic!("a cross-shard job panicked"),
        }
    }
    results
}

/// Shards held by one coordinator. Dropped without `release` (the command panicked or its
/// task went away), it still releases them, from a task of its own: a hold must never leak.
pub struct Holds {
    shard: Rc<Shard>,
    token: u64,
    held: Vec<usize>,
}

impl Holds {
    /// Holds `shards` (ascending, deduplicated) for `token`, one after the other in that
    /// order, so that two coordinators can never wait for each other.
    ///
    /// A shard with keys a MIGRATE has in flight is not kept: the holds are let go and taken
    /// again once the move has ended, so an atomic write never changes a key whose copy is on
    /// its way (a held shard cannot start a new move, so the check stays true while held).
    pub async fn acquire(shard: &Rc<Shard>, token: u64, shards: &[usize]) -> Holds {
        debug_assert!(shards.windows(2).all(|w| w[0] < w[1]));
        loop {
            let mut holds = Holds {
                shard: shard.clone(),
                token,
                held: Vec::with_capacity(shards.len()),
            };
            for &to in shards {
                shard.call(to, token, move |s| s.hold(token)).await;
                holds.held.push(to);
            }
            if !shards.iter().any(|&to| shard.shared.migrating_on(to)) {
                return holds;
            }
            holds.release().await;
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    pub async fn release(mut self) {
        let held = std::mem::take(&mut self.held);
        release_all(&self.shard, self.token, held).await;
    }
}

async fn release_all(shard: &Rc<Shard>, token: u64, held: Vec<usize>) {
    for to in held {
        shard.call(to, token, move |s| s.release(token)).await;
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let (shard, token, held) = (
            self.shard.clone(),
            self.token,
            std::mem::take(&mut self.held),
        );
        glommio::spawn_local(async move { release_all(&shard, token, held).await }).detach();
    }
}

/// Writes key/value pairs that span shards atomically: holds every shard involved in
/// ascending order, (for `only_if_none_exist`, checks that no key exists), writes, releases.
/// Returns whether the pairs were written.
pub async fn atomic_write(
    shard: &Rc<Shard>,
    token: u64,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    only_if_none_exist: bool,
) -> bool {
    let keys: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| k.clone()).collect();
    let groups = by_shard(shard, &keys);
    let involved: Vec<usize> = (0..shard.nshards)
        .filter(|&s| !groups[s].is_empty())
        .collect();
    let holds = Holds::acquire(shard, token, &involved).await;
    let mut ok = true;
    if only_if_none_exist {
        for &to in &involved {
            let part: Vec<Vec<u8>> = groups[to].iter().map(|&i| keys[i].clone()).collect();
            let any = shard
                .call(to, token, move |s| {
                    let mut db = s.db.borrow_mut();
                    let now = now_ms();
                    part.iter().any(|k| db.exists(k, now))
                })
                .await;
            if any {
                ok = false;
                break;
            }
        }
    }
    if ok {
        for &to in &involved {
            let part: Vec<(Vec<u8>, Vec<u8>)> =
                groups[to].iter().map(|&i| pairs[i].clone()).collect();
            shard
                .call(to, token, move |s| {
                    crate::cmd::string::store_pairs(&mut s.db.borrow_mut(), &part, now_ms());
                })
                .await;
        }
    }
    holds.release().await;
    ok
}

/// How `transfer` treats the source and an existing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferMode {
    /// RENAME: move, replacing the target.
    Rename,
    /// RENAMENX: move unless the target exists.
    RenameNx,
    /// COPY: copy, replacing the target only if `replace`.
    Copy { replace: bool },
}

/// What `transfer` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The source key does not exist; nothing changed.
    NoSource,
    /// The target exists and may not be replaced; nothing changed.
    TargetExists,
    /// The value (with its expiry) is now under the target.
    Done,
}

/// Moves or copies the value of `src` (with its TTL) to `dst` when the two keys live on
/// different shards, atomically: holds both shards in ascending order (as `atomic_write`),
/// checks the source, then the target, moves the value across, and releases.
pub async fn transfer(
    shard: &Rc<Shard>,
    token: u64,
    src: Vec<u8>,
    dst: Vec<u8>,
    mode: TransferMode,
) -> TransferOutcome {
    let from = shard.owner_of(key_slot(&src));
    let to = shard.owner_of(key_slot(&dst));
    let mut involved = vec![from, to];
    involved.sort_unstable();
    involved.dedup();
    let holds = Holds::acquire(shard, token, &involved).await;
    // One time for the whole operation, taken once every shard is ours.
    let now = now_ms();
    let outcome = transfer_held(shard, token, (from, src), (to, dst), mode, now).await;
    holds.release().await;
    outcome
}

/// `transfer`'s work while both shards are held.
async fn transfer_held(
    shard: &Rc<Shard>,
    token: u64,
    (from, src): (usize, Vec<u8>),
    (to, dst): (usize, Vec<u8>),
    mode: TransferMode,
    now: i64,
) -> TransferOutcome {
    // The source is checked first, so a missing source wins over an existing target as in
    // Redis. RENAME looks it up as a write (no hit/miss stats), COPY as a read. RENAMENX only
    // checks here: the value must stay put if the target turns out to exist.
    let src_key = src.clone();
    let found: Option<Option<(Value, i64)>> = shard
        .call(from, token, move |s| {
            let mut db = s.db.borrow_mut();
            match mode {
                TransferMode::Rename => db.take(&src_key, now).map(Some),
                TransferMode::RenameNx => db.get(&src_key, now).map(|_| None),
                TransferMode::Copy { .. } => {
                    let found = db.read(&src_key, now).map(|e| (e.value.clone(), e.ttl()));
                    found.map(|(value, ttl)| Some((value, db.expire_at_of(ttl))))
                }
            }
        })
        .await;
    let Some(mut moved) = found else {
        return TransferOutcome::NoSource;
    };
    let replace = matches!(
        mode,
        TransferMode::Rename | TransferMode::Copy { replace: true }
    );
    if !replace {
        let dst_key = dst.clone();
        let exists = shard
            .call(to, token, move |s| s.db.borrow_mut().exists(&dst_key, now))
            .await;
        if exists {
            return TransferOutcome::TargetExists;
        }
    }
    if moved.is_none() {
        moved = shard
            .call(from, token, move |s| s.db.borrow_mut().take(&src, now))
            .await;
    }
    // Only the active expire cycle could have removed the source meanwhile.
    let Some((value, expire_at)) = moved else {
        return TransferOutcome::NoSource;
    };
    shard
        .call(to, token, move |s| {
            let mut db = s.db.borrow_mut();
            // Looked up as a write first so an expired target counts as expired, as in Redis.
            db.get(&dst, now);
            db.set(&dst, value, expire_at, now);
        })
        .await;
    TransferOutcome::Done
}
