//! The coordinator for commands whose keys span shards: split by shard, run, merge.

use std::rc::Rc;

use crate::db::Keyspace;
use crate::slot::key_slot;
use crate::util::time::now_ms;

use super::Shard;

/// Groups key indexes by owning shard, keeping each shard's keys in argument order.
fn by_shard(shard: &Shard, keys: &[Vec<u8>]) -> Vec<Vec<usize>> {
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
    let groups = by_shard(shard, &keys);
    let mut results: Vec<Option<R>> = (0..keys.len()).map(|_| None).collect();
    for (to, idxs) in groups.into_iter().enumerate() {
        if idxs.is_empty() {
            continue;
        }
        let part: Vec<Vec<u8>> = idxs.iter().map(|&i| keys[i].clone()).collect();
        let out = shard
            .call(to, 0, move |s| {
                let mut db = s.db.borrow_mut();
                let now = now_ms();
                part.iter().map(|k| f(&mut db, k, now)).collect::<Vec<R>>()
            })
            .await;
        for (i, r) in idxs.into_iter().zip(out) {
            results[i] = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every key got a result"))
        .collect()
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
    for &to in &involved {
        shard.call(to, token, move |s| s.hold(token)).await;
    }
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
    for &to in &involved {
        shard.call(to, token, |s| s.release()).await;
    }
    ok
}
