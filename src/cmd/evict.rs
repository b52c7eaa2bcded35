//! `maxmemory` eviction, as Redis 7.0's `performEvictions`: while used memory (the
//! process-wide allocator count the `noeviction` check reads, `util::mem::used`) is over
//! `maxmemory`, delete the policy's best candidate, propagate its deletion (DEL, or UNLINK
//! under `lazyfree-lazy-eviction`) as an execution unit of its own, count it in
//! `evicted_keys` and signal it to WATCH.
//!
//! The budget is global and not divided: every shard compares the one shared count with
//! `maxmemory`, and each evicts from its own keyspace only. Who evicts:
//! - the shard a write lands on, just before running it (`before_write`, from the keyed
//!   command path), unless another shard published a better candidate (an idler key, a
//!   lower LFU counter, a nearer expiry; for the random policies, more candidates): then
//!   that shard is asked to evict (a job posted to it) and the write goes on, memory
//!   overshooting by at most 1/32 of the limit meanwhile. So the shards approximate one
//!   server-wide pool, and a shard taking all the writes gets memory from an idle one;
//! - the gate, for writes that land nowhere in particular (keyless, cross-shard, EXEC) or
//!   on a shard that had nothing left to evict: this shard first, then the others
//!   (`make_room`); only when no shard can free anything is the write refused with OOM;
//! - every shard's cron (`hz`): it publishes its best candidate and evicts while over the
//!   limit, so memory is given back after CONFIG SET maxmemory and when a round stopped at
//!   its time limit (Redis's `evictionTimeProc`).

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use crate::cmd::call::{end_unit, keyspace_event, shards_of};
use crate::cmd::{flag, CommandSpec};
use crate::config::keyspace_events;
use crate::db::{Policy, ShardData};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::journal::Unit;
use crate::shard::{EvictionSettings, Shard};
use crate::util::mem;

/// What an eviction round achieved (Redis's `EVICT_OK`, `EVICT_RUNNING`, `EVICT_FAIL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Memory is within the limit.
    Ok,
    /// Still over, but keys were freed and more can be: the round hit its time limit.
    Running,
    /// Still over, and the policy finds nothing (more) to evict here.
    Fail,
}

/// Whether used memory is over a `maxmemory` limit.
#[inline]
pub fn over_limit(shard: &Shard) -> bool {
    let max = shard.settings.borrow().maxmemory;
    max != 0 && mem::used() > max
}

/// Whether eviction, and so an OOM answer, may happen now (Redis's
/// `isSafeToPerformEvictions`): not while a script runs past `busy-reply-threshold` or data
/// loads, not on a replica with `replica-ignore-maxmemory yes` (the default: a replica stays
/// its master's exact copy, and only the master's DELs remove keys), not while clients are
/// paused (the dataset holds still).
pub fn safe_to_evict(shard: &Shard) -> bool {
    !(shard.shared.scripts.busy().is_some()
        || shard.disk_gate.get().loading
        || (crate::db::expiry::is_replica()
            && shard.settings.borrow().eviction.replica_ignores_limit)
        || shard.shared.pause.current().is_some())
}

/// Before command `idx` runs on `data` (this executor's own data): one eviction round if
/// it may grow memory (`denyoom`) and memory is over the limit. True when the command must
/// be refused (OOM): still over the limit with nothing left to evict on any shard, as Redis
/// refuses once `performEvictions` fails.
#[inline]
pub fn before_write(shard: &Rc<Shard>, data: &mut ShardData, idx: usize, now: i64) -> bool {
    shard.settings.borrow().maxmemory != 0 && evict_cold(shard, data, idx, now)
}

#[cold]
fn evict_cold(shard: &Rc<Shard>, data: &mut ShardData, idx: usize, now: i64) -> bool {
    crate::cmd::table().specs[idx].has(flag::DENYOOM)
        && over_limit(shard)
        && safe_to_evict(shard)
        && evict(shard, data, now) == Outcome::Fail
        // Another shard with candidates has been asked to evict (`round`): the command goes on.
        && !shard.shared.evictable.iter().any(|f| f.load(Relaxed))
}

/// One eviction round over `data` (a data shard's data, held by `shard`'s executor), which
/// defers to a shard with a better candidate (see `round`).
pub fn evict(shard: &Rc<Shard>, data: &mut ShardData, now: i64) -> Outcome {
    round(shard, data, now, true)
}

/// Evicts from `data` while memory is over the limit, up to the round's time limit. When
/// `balanced`, each key to evict is first compared with the best candidates the other
/// shards published: if one has a better one, that shard is asked to evict instead and
/// this round ends (memory may then overshoot by a thirty-second of the limit before this
/// shard evicts anyway). A shard asked runs an unbalanced round.
fn round(shard: &Rc<Shard>, data: &mut ShardData, now: i64, balanced: bool) -> Outcome {
    let (max, ev) = {
        let s = shard.settings.borrow();
        (s.maxmemory, s.eviction)
    };
    if max == 0 || mem::used() <= max {
        return Outcome::Ok;
    }
    if ev.policy == Policy::NoEviction || data.nshards == 0 {
        return Outcome::Fail;
    }
    // As Redis: paused clients freeze the dataset, evictions included (a fake OK).
    if shard.shared.pause.holds(true) {
        return Outcome::Ok;
    }
    let started = std::time::Instant::now();
    let recording = shard.recording.get();
    let mut unit = Unit {
        loose: true,
        ..Unit::default()
    };
    let verb: &[u8] = if ev.lazy { b"UNLINK" } else { b"DEL" };
    let slack = slack(max);
    let mut freed = 0u64;
    let outcome = loop {
        let used = mem::used();
        if used <= max {
            break Outcome::Ok;
        }
        let Some(score) = best_candidate(data, &ev, now) else {
            publish(shard, data.id, 0);
            // Nothing here: a shard that may have candidates evicts instead, shortly.
            if balanced {
                if let Some(to) = better_elsewhere(shard, data.id, 0) {
                    ask(shard, to);
                }
            }
            break Outcome::Fail;
        };
        publish(shard, data.id, score);
        if balanced && used <= max + slack {
            if let Some(to) = better_elsewhere(shard, data.id, score) {
                ask(shard, to);
                break Outcome::Running;
            }
        }
        let Some((db, key)) = take_candidate(data, &ev) else {
            break Outcome::Fail;
        };
        if data.db(db).evict(&key) {
            freed += 1;
            if data.tracking.wants_changes() {
                crate::shard::tracking::invalidate(
                    shard,
                    data,
                    std::slice::from_ref(&key),
                    0,
                    None,
                );
            }
            if recording {
                unit.push(db, &[verb, &key]);
            }
            if shard.pubsub.keyspace_events.get() & keyspace_events::EVICTED != 0 {
                keyspace_event(shard, db, "evicted", &key);
            }
        }
        if freed.is_multiple_of(16) && started.elapsed().as_micros() as u64 > ev.time_limit_us {
            break Outcome::Running;
        }
    };
    if let Some(flag) = shard.shared.evictable.get(data.id) {
        flag.store(outcome != Outcome::Fail, Relaxed);
    }
    if !unit.is_empty() {
        data.clock = end_unit(shard, &mut unit, data.clock);
    }
    outcome
}

/// How far a balanced round lets memory overshoot the limit before a shard evicts its own
/// keys rather than ask a shard with better candidates.
fn slack(max: usize) -> usize {
    max / 32
}

/// Publishes shard `id`'s best candidate score for the others.
fn publish(shard: &Shard, id: usize, score: u64) {
    if let Some(s) = shard.shared.evict_score.get(id) {
        s.store(score, Relaxed);
    }
}

/// The shard, other than `me`, whose published candidate beats `score`, if any.
fn better_elsewhere(shard: &Shard, me: usize, score: u64) -> Option<usize> {
    let shared = &shard.shared;
    (0..shared.evict_score.len())
        .filter(|&j| j != me && shared.evictable[j].load(Relaxed))
        .map(|j| (shared.evict_score[j].load(Relaxed), j))
        .filter(|&(s, _)| s > score)
        .max()
        .map(|(_, j)| j)
}

/// Asks shard `to` to run an eviction round (once until it has run).
fn ask(shard: &Rc<Shard>, to: usize) {
    if shard.shared.evict_asked[to].swap(true, Relaxed) {
        return;
    }
    let job = move |s: &Rc<Shard>| {
        s.shared.evict_asked[to].store(false, Relaxed);
        let mut guard = s.data.borrow_mut();
        if let Some(data) = guard.as_deref_mut() {
            round(s, data, crate::util::time::now_ms(), false);
        }
    };
    // At once if the channel has room: the connection asking may not yield for a while.
    if to != shard.id && shard.mesh.try_post(to, true, Box::new(job)) {
        return;
    }
    let from = shard.clone();
    glommio::spawn_local(async move { from.post(to, true, job).await }).detach();
}

/// Samples candidates and returns how good the best one is (higher is better), leaving it
/// first in line; None if the policy finds nothing here. For the random policies, where
/// any key will do, the "score" is the number of candidates: the shard with more evicts.
fn best_candidate(data: &mut ShardData, ev: &EvictionSettings, now: i64) -> Option<u64> {
    let policy = ev.policy;
    if !policy.uses_pool() {
        let n: usize = data
            .dbs_ref()
            .iter()
            .map(|ks| ks.eviction_candidates(policy))
            .sum();
        return (n > 0).then_some(n as u64);
    }
    // Sample every database into the one pool, then drop the pool's best entries that are
    // no longer candidates (deleted, or lost their TTL, since: ghosts) and rank again those
    // read since they were sampled: a key a client just read is not the coldest any more
    // (Redis evicts on the score of the sampling). Ghosts that filled the pool may have
    // kept every live key out of it: once they are dropped, sample again, as Redis's
    // `performEvictions` loops until it finds a key (after a FLUSHALL the whole pool is
    // ghosts scoring better than any new key). There are candidates, so a sample into an
    // emptied pool finds one; the bound only guards against a bug looping forever.
    for _ in 0..POOL_REFILLS {
        let (dbs, pool) = data.dbs_and_pool();
        let mut total = 0;
        for (i, ks) in dbs.iter_mut().enumerate() {
            let n = ks.eviction_candidates(policy);
            if n > 0 {
                ks.sample_into(policy, ev.samples, i, pool, now);
                total += n;
            }
        }
        if total == 0 {
            pool.clear();
            return None;
        }
        while let Some((sampled, db, key)) = pool.best() {
            match dbs[db].candidate_score(policy, key, now) {
                Some(score) if score >= sampled => return Some(sampled),
                Some(score) => pool.rerank_best(score),
                None => {
                    pool.pop_best();
                }
            }
        }
    }
    None
}

/// How many times `best_candidate` samples into a pool its ghosts emptied.
const POOL_REFILLS: usize = 8;

/// Takes the key `best_candidate` found (a random one for the random policies).
fn take_candidate(data: &mut ShardData, ev: &EvictionSettings) -> Option<(usize, Box<[u8]>)> {
    let policy = ev.policy;
    if policy.uses_pool() {
        return data.eviction_pool.pop_best();
    }
    let ndb = data.databases();
    for _ in 0..ndb {
        data.next_evict_db = (data.next_evict_db + 1) % ndb;
        let j = data.next_evict_db;
        if let Some(k) = data.db(j).random_candidate(policy) {
            return Some((j, k));
        }
    }
    None
}

/// The gate's part, for a command that needs memory while used memory is over the limit:
/// whether it may run. Under `noeviction` it may not. A keyed write bound for a shard that
/// still has candidates goes on while memory is within the slack the shards' rounds allow
/// (that shard evicts before running it); otherwise this shard evicts, then the others in
/// turn, until one frees memory. False: nothing anywhere can be evicted (OOM), so a limit
/// below what the server needs empty refuses the first write, as Redis's does.
pub async fn make_room(conn: &mut Conn, spec: &CommandSpec, args: &Args<'_>) -> bool {
    let shard = conn.shard.clone();
    if shard.settings.borrow().eviction.policy == Policy::NoEviction {
        return false;
    }
    // A keyed command evicts on its shard just before it runs (`before_write`); a script's
    // writes do not, so EVAL and FCALL (NOSCRIPT, unlike the commands they run) evict here.
    let keyed = spec.first_key > 0 || spec.key_finder.is_some();
    let max = shard.settings.borrow().maxmemory;
    let within_slack = mem::used() <= max + slack(max);
    if keyed && within_slack && conn.multi.is_none() && !spec.has(flag::NOSCRIPT) {
        if let Some(to) = shards_of(&shard, spec, args).single() {
            if shard
                .shared
                .evictable
                .get(to)
                .is_some_and(|f| f.load(Relaxed))
            {
                return true;
            }
        }
    }
    let now = conn.now;
    let n = shard.nshards;
    let first = shard.id.min(n.saturating_sub(1));
    for i in 0..n {
        let to = (first + i) % n;
        let outcome = shard
            .call_data(to, move |s, data| evict(s, data, now))
            .await;
        if outcome != Outcome::Fail {
            return true;
        }
    }
    false
}

/// The cron's part, on this shard's data: publishes its best candidate (so that shards
/// over the limit compare with a fresh one), and evicts while memory is over the limit.
pub fn cron(shard: &Rc<Shard>, now: i64) {
    let (max, ev) = {
        let s = shard.settings.borrow();
        (s.maxmemory, s.eviction)
    };
    if max == 0 || ev.policy == Policy::NoEviction {
        return;
    }
    let mut guard = shard.data.borrow_mut();
    let Some(data) = guard.as_deref_mut() else {
        return;
    };
    if data.nshards == 0 {
        return;
    }
    let score = best_candidate(data, &ev, now);
    publish(shard, data.id, score.unwrap_or(0));
    if let Some(flag) = shard.shared.evictable.get(data.id) {
        flag.store(score.is_some(), Relaxed);
    }
    if mem::used() > max && safe_to_evict(shard) {
        round(shard, data, now, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{StrValue, Value};

    #[test]
    fn a_pool_full_of_flushed_keys_still_finds_the_new_one() {
        let now = 1_700_000_000_000;
        let ev = EvictionSettings {
            policy: Policy::AllkeysLru,
            samples: 5,
            time_limit_us: 1000,
            lazy: false,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            replica_ignores_limit: true,
        };
        let mut data = ShardData::new(0, 1, 1);
        let v = || Value::Str(StrValue::from_bytes(b"v"));
        // An hour-idle keyspace fills the pool with candidates scoring above any new key.
        for i in 0..200 {
            data.db(0)
                .set(format!("old{i}").as_bytes(), v(), 0, now - 3_600_000);
        }
        for _ in 0..20 {
            best_candidate(&mut data, &ev, now);
        }
        assert_eq!(data.eviction_pool.len(), 16);
        // FLUSHALL leaves them in the pool as ghosts; the one live key is brand new.
        data.db(0).flush();
        data.db(0).set(b"new", v(), 0, now);
        assert_eq!(best_candidate(&mut data, &ev, now), Some(0));
        assert_eq!(take_candidate(&mut data, &ev), Some((0, b"new"[..].into())));
    }
}
