//! Client-side caching (CLIENT TRACKING): who may cache which key, and the invalidation messages sent when keys change.
//!
//! Redis keeps one tracking table (key → ids of the clients that read it). Here each shard
//! keeps the table of its own keys ([`Table`], inside its `ShardData`, so it travels with
//! the data when a coordinator borrows it): a read-only command of a tracking client
//! remembers its keys where they live, and the write path (the same lookups-for-writing and
//! `call()` settlement that WATCH uses, plus expiry, eviction and flushes) takes a changed
//! key out of the table and sends a [`Message`] to each reader's home core. There the
//! message is checked against the client's current flags (still tracking, NOLOOP, BCAST)
//! and appended to the connection's push buffer (`pubsub::Subscriber`), which the
//! connection writes in order with its replies and which is bounded by the output buffer
//! limit. A redirected client's messages take one more hop, to the core of the client they
//! are redirected to; if that client is gone the tracking client hears it back.
//!
//! BCAST prefixes are registered on every executor (CLIENT TRACKING waits for all of them
//! before it answers), so the core where a key changes matches it locally; the keys changed
//! per prefix are collected and sent once per scheduling turn, as Redis sends them in
//! `beforeSleep`.
//!
//! Messages for clients of the core that makes the change are delivered at once; messages
//! for other cores wait in a per-core outbox that a task posts in order.
//!
//! Redis writes invalidations before the reply of the command that caused them, so a client
//! that saw a write's reply can count on every cache having been told. Here a message may
//! take up to two hops, so each one caused by a client's command carries a [`Ticket`] on
//! that client's counter until it reaches its last core; the client's replies wait until
//! none is left (`server::conn`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{ClientMeta, Shard};
use crate::db::ShardData;

/// `ClientMeta::tracking` flags (Redis's `CLIENT_TRACKING*`).
pub const ON: u32 = 1;
pub const BCAST: u32 = 1 << 1;
pub const OPTIN: u32 = 1 << 2;
pub const OPTOUT: u32 = 1 << 3;
pub const NOLOOP: u32 = 1 << 4;
/// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) was given for the next command.
pub const CACHING: u32 = 1 << 5;
pub const BROKEN_REDIR: u32 = 1 << 6;

/// The pubsub channel RESP2 redirect targets receive invalidations on.
pub const CHANNEL: &[u8] = b"__redis__:invalidate";

/// Whether a command run by a client with tracking `flags` has its keys remembered
/// (Redis's test at the top of `trackingRememberKeys`).
#[inline]
pub fn reads_tracked(flags: u32) -> bool {
    if flags & ON == 0 || flags & BCAST != 0 {
        return false;
    }
    let caching = flags & CACHING != 0;
    !((flags & OPTIN != 0 && !caching) || (flags & OPTOUT != 0 && caching))
}

/// What client-side caching needs to know of the client a command runs for.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Track {
    /// Remember the keys a read-only command reads for this client (0: none).
    pub reader: u64,
    /// The reader's home core.
    pub home: u32,
    /// The client whose command it is (NOLOOP compares with it); 0: none.
    pub origin: u64,
}

pub use crate::db::tracking::{Reader, Table};

/// A BCAST client subscribed to a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: u64,
    pub home: u32,
    pub noloop: bool,
}

/// An invalidation on its way to a client's core.
pub enum Message {
    /// Default mode: `key` changed, by client `origin` (0: none).
    Key {
        target: u64,
        key: Box<[u8]>,
        origin: u64,
    },
    /// BCAST: the RESP array of the keys changed under one of the client's prefixes.
    Keys { target: u64, array: Arc<[u8]> },
    /// A flush: every tracking client of the core gets a null.
    Flush,
    /// To the redirect target `to`: the value part of a message for tracking client `from`,
    /// whose connection lives on core `home`.
    Redirected {
        to: u64,
        from: u64,
        home: u32,
        value: Vec<u8>,
    },
    /// Back to tracking client `client`: its redirect target `to` is gone.
    Broken { client: u64, to: u64 },
}

/// One undelivered invalidation caused by a client's command, counted on that client's
/// `ClientIdent::invalidations` until it is dropped where the message ends.
pub struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    pub fn new(counter: &Arc<AtomicUsize>) -> Ticket {
        counter.fetch_add(1, Ordering::SeqCst);
        Ticket(counter.clone())
    }
}

impl Clone for Ticket {
    fn clone(&self) -> Ticket {
        Ticket::new(&self.0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// The tickets a message carries (none for changes no client's command made).
type Tickets = Vec<Ticket>;

/// Keys changed under one BCAST prefix, in Redis's order, each with the client that changed
/// it last (0: none).
type ChangedKeys = BTreeMap<Box<[u8]>, u64>;

/// One executor's side of client-side caching.
#[derive(Default)]
pub struct Tracking {
    /// Every BCAST client's prefixes (the same on every executor), in Redis's rax order.
    prefixes: RefCell<BTreeMap<Box<[u8]>, Vec<Subscription>>>,
    /// Keys changed here since the last broadcast, per prefix, each with the client that
    /// changed it last (0: none), for NOLOOP.
    changed: RefCell<BTreeMap<Box<[u8]>, ChangedKeys>>,
    broadcast_scheduled: Cell<bool>,
    /// The tickets of the changes waiting in `changed`.
    broadcast_tickets: RefCell<Tickets>,
    /// Messages for other cores' clients, per core, until the flusher task posts them.
    outbox: RefCell<Vec<Vec<(Message, Tickets)>>>,
    flushing: Cell<bool>,
}

impl Tracking {
    /// Whether any BCAST prefix is registered (the write path then reports every key).
    #[inline]
    pub fn has_prefixes(&self) -> bool {
        !self.prefixes.borrow().is_empty()
    }

    /// INFO `tracking_total_prefixes`.
    pub fn prefix_count(&self) -> usize {
        self.prefixes.borrow().len()
    }

    /// Registers BCAST client `sub` for `prefixes` (its whole set).
    pub fn subscribe(&self, sub: Subscription, prefixes: &[Box<[u8]>]) {
        let mut table = self.prefixes.borrow_mut();
        for p in prefixes {
            let subs = table.entry(p.clone()).or_default();
            match subs.iter_mut().find(|s| s.id == sub.id) {
                Some(s) => *s = sub,
                None => subs.push(sub),
            }
        }
    }

    /// Removes client `id` from every prefix; a prefix left without clients goes.
    pub fn unsubscribe(&self, id: u64) {
        let mut table = self.prefixes.borrow_mut();
        table.retain(|_, subs| {
            subs.retain(|s| s.id != id);
            !subs.is_empty()
        });
        if table.is_empty() {
            self.changed.borrow_mut().clear();
        }
    }
}

/// The RESP value of a one-key invalidation: `*1 $len key`.
fn key_array(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 16);
    v.extend_from_slice(b"*1\r\n");
    bulk(&mut v, key);
    v
}

fn bulk(v: &mut Vec<u8>, b: &[u8]) {
    v.push(b'$');
    v.extend_from_slice(b.len().to_string().as_bytes());
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(b);
    v.extend_from_slice(b"\r\n");
}

/// The null a flush sends, in the tracking client's protocol (Redis's `shared.null[resp]`).
fn null_of(resp: u8) -> &'static [u8] {
    if resp == 3 {
        b"_\r\n"
    } else {
        b"$-1\r\n"
    }
}

/// Remembers that `reader` may cache `key` of `data` (its owner's data), keeping the
/// table within `tracking-table-max-keys`.
pub fn remember(shard: &Rc<Shard>, data: &mut ShardData, key: &[u8], reader: Reader) {
    data.tracking.remember(key, reader);
    data.sync_tracked();
    enforce_limit(shard, data);
}

/// Keys of `data` changed by client `origin` (0: none): their readers are sent
/// invalidations and forgotten, and BCAST prefixes note them. `waiter`: the counter of the
/// client whose command made the changes (its replies wait for these messages).
pub fn invalidate(
    shard: &Rc<Shard>,
    data: &mut ShardData,
    keys: &[Box<[u8]>],
    origin: u64,
    waiter: Option<&Arc<AtomicUsize>>,
) {
    let tickets = || waiter.map(Ticket::new).into_iter().collect();
    if !data.tracking.is_empty() {
        for key in keys {
            if let Some(readers) = data.tracking.take(key) {
                for r in readers {
                    let m = Message::Key {
                        target: r.id,
                        key: key.clone(),
                        origin,
                    };
                    queue(shard, r.home as usize, m, tickets());
                }
            }
        }
        publish_count(shard, data);
        data.sync_tracked();
    }
    if shard.tracking.has_prefixes() {
        let mut noted = false;
        for key in keys {
            noted |= note_broadcast(shard, key, origin);
        }
        // One ticket per client and broadcast is enough: its replies wait for all of it.
        if let Some(w) = waiter.filter(|_| noted) {
            let mut held = shard.tracking.broadcast_tickets.borrow_mut();
            if !held.iter().any(|t| Arc::ptr_eq(&t.0, w)) {
                held.push(Ticket::new(w));
            }
        }
    }
}

/// A flush emptied databases: every tracking client on every core gets a null, and the
/// tables of the shards in `datas` are emptied (Redis frees its whole table on any flush).
pub fn flushed<'a>(shard: &Rc<Shard>, datas: impl Iterator<Item = &'a mut ShardData>) {
    for data in datas {
        forget_all(shard, data);
    }
    announce_flush(shard);
}

/// Empties `data`'s tracking table (its databases were emptied).
pub fn forget_all(shard: &Shard, data: &mut ShardData) {
    data.tracking.clear();
    publish_count(shard, data);
    data.sync_tracked();
}

/// Sends every tracking client on every core a null invalidation ("every key").
pub fn announce_flush(shard: &Rc<Shard>) {
    if shard.shared.tracking_clients.load(Ordering::Relaxed) == 0 {
        return;
    }
    for core in 0..=shard.nshards {
        queue(shard, core, Message::Flush, Tickets::new());
    }
}

/// Publishes how many keys `data`'s table holds (the `tracking-table-max-keys` total).
fn publish_count(shard: &Shard, data: &ShardData) {
    if let Some(count) = shard.shared.tracking_keys.get(data.id) {
        count.store(data.tracking.len(), Ordering::Release);
    }
}

/// Notes `key` for the BCAST clients of every prefix it matches; whether any did.
fn note_broadcast(shard: &Rc<Shard>, key: &[u8], origin: u64) -> bool {
    let prefixes = shard.tracking.prefixes.borrow();
    let mut changed = shard.tracking.changed.borrow_mut();
    let mut any = false;
    for p in prefixes.keys() {
        if key.starts_with(p) {
            changed
                .entry(p.clone())
                .or_default()
                .insert(key.into(), origin);
            any = true;
        }
    }
    drop((prefixes, changed));
    if any && !shard.tracking.broadcast_scheduled.replace(true) {
        let me = shard.clone();
        glommio::spawn_local(async move {
            // A spawned task may start at once: it waits for this turn's other changes.
            futures_lite::future::yield_now().await;
            me.tracking.broadcast_scheduled.set(false);
            broadcast(&me);
        })
        .detach();
    }
    any
}

/// Sends each prefix's changed keys to its clients (Redis's
/// `trackingBroadcastInvalidationMessages`): one array per prefix, without the keys a
/// NOLOOP client changed itself.
fn broadcast(shard: &Rc<Shard>) {
    let changed = std::mem::take(&mut *shard.tracking.changed.borrow_mut());
    let tickets = std::mem::take(&mut *shard.tracking.broadcast_tickets.borrow_mut());
    let mut sends = Vec::new();
    {
        let prefixes = shard.tracking.prefixes.borrow();
        for (prefix, keys) in &changed {
            let Some(subs) = prefixes.get(prefix) else {
                continue;
            };
            let common: Arc<[u8]> = keys_array(keys, None).into();
            for s in subs {
                let array = if s.noloop {
                    let own = keys_array(keys, Some(s.id));
                    if own.is_empty() {
                        continue;
                    }
                    own.into()
                } else {
                    common.clone()
                };
                sends.push((s.home as usize, s.id, array));
            }
        }
    }
    for (home, target, array) in sends {
        queue(
            shard,
            home,
            Message::Keys { target, array },
            tickets.clone(),
        );
    }
}

/// The RESP array of `keys`, without those last changed by `skip` (empty when none is left).
fn keys_array(keys: &ChangedKeys, skip: Option<u64>) -> Vec<u8> {
    let n = keys.values().filter(|&&o| Some(o) != skip).count();
    if n == 0 {
        return Vec::new();
    }
    let mut v = Vec::with_capacity(16 + keys.len() * 16);
    v.push(b'*');
    v.extend_from_slice(n.to_string().as_bytes());
    v.extend_from_slice(b"\r\n");
    for (k, &o) in keys {
        if Some(o) != skip {
            bulk(&mut v, k);
        }
    }
    v
}

/// Sends `m` to core `core`: delivered now when that is this one, else through the outbox.
fn queue(shard: &Rc<Shard>, core: usize, m: Message, tickets: Tickets) {
    if core == shard.id {
        deliver(shard, m, tickets);
        return;
    }
    {
        let mut outbox = shard.tracking.outbox.borrow_mut();
        if outbox.len() <= core {
            outbox.resize_with(core + 1, Vec::new);
        }
        outbox[core].push((m, tickets));
    }
    if shard.tracking.flushing.replace(true) {
        return;
    }
    let me = shard.clone();
    glommio::spawn_local(async move {
        // Started at once, it first lets this turn's other messages join the batch.
        futures_lite::future::yield_now().await;
        loop {
            let batches = std::mem::take(&mut *me.tracking.outbox.borrow_mut());
            if batches.iter().all(Vec::is_empty) {
                break;
            }
            for (core, batch) in batches.into_iter().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                me.post(core, false, move |s| {
                    for (m, tickets) in batch {
                        deliver(s, m, tickets);
                    }
                })
                .await;
            }
        }
        me.tracking.flushing.set(false);
    })
    .detach();
}

/// This core's connection `id`, if it is still here.
fn client(shard: &Shard, id: u64) -> Option<Rc<ClientMeta>> {
    shard.clients.borrow().get(&id).cloned()
}

/// Handles a message on the core of the client it is for; its tickets go with the message
/// to the next core, or are dropped here where it ends.
fn deliver(shard: &Rc<Shard>, m: Message, tickets: Tickets) {
    match m {
        Message::Key {
            target,
            key,
            origin,
        } => {
            let Some(meta) = client(shard, target) else {
                return;
            };
            let flags = meta.tracking.get();
            // A client that switched to BCAST gets nothing for the keys it read before;
            // NOLOOP: nothing for its own changes.
            if flags & ON == 0 || flags & BCAST != 0 || (flags & NOLOOP != 0 && origin == target) {
                return;
            }
            send(shard, &meta, &key_array(&key), tickets);
        }
        Message::Keys { target, array } => {
            let Some(meta) = client(shard, target) else {
                return;
            };
            if meta.tracking.get() & (ON | BCAST) == ON | BCAST {
                send(shard, &meta, &array, tickets);
            }
        }
        Message::Flush => {
            let tracking: Vec<Rc<ClientMeta>> = shard
                .clients
                .borrow()
                .values()
                .filter(|m| m.tracking.get() & ON != 0)
                .cloned()
                .collect();
            for meta in tracking {
                send(shard, &meta, null_of(meta.resp.get()), tickets.clone());
            }
        }
        Message::Redirected {
            to,
            from,
            home,
            value,
        } => match client(shard, to) {
            Some(target) => push_invalidation(shard, &target, true, &value),
            None => queue(
                shard,
                home as usize,
                Message::Broken { client: from, to },
                tickets,
            ),
        },
        Message::Broken { client: id, to } => {
            let Some(meta) = client(shard, id) else {
                return;
            };
            let flags = meta.tracking.get();
            if flags & ON == 0 || meta.redirect.get() != to {
                return;
            }
            meta.tracking.set(flags | BROKEN_REDIR);
            if meta.resp.get() == 3 {
                let mut v = b">2\r\n$21\r\ntracking-redir-broken\r\n:".to_vec();
                v.extend_from_slice(to.to_string().as_bytes());
                v.extend_from_slice(b"\r\n");
                push(shard, &meta, &v);
            }
        }
    }
}

/// Sends an invalidation whose value (keys array or null) is `value` on behalf of tracking
/// client `meta` (Redis's `sendTrackingMessage`): to its redirect target if it has one.
fn send(shard: &Rc<Shard>, meta: &ClientMeta, value: &[u8], tickets: Tickets) {
    let to = meta.redirect.get();
    if to == 0 {
        push_invalidation(shard, meta, false, value);
        return;
    }
    let m = Message::Redirected {
        to,
        from: meta.id,
        home: shard.id as u32,
        value: value.to_vec(),
    };
    queue(shard, meta.redirect_core.get() as usize, m, tickets);
}

/// Writes an invalidation to `target`: a RESP3 push, or for a RESP2 client that is the
/// redirect target of another and in Pub/Sub mode, a message on `__redis__:invalidate`.
/// A RESP2 client cannot receive anything else, so it gets nothing (as in Redis).
fn push_invalidation(shard: &Shard, target: &ClientMeta, redirected: bool, value: &[u8]) {
    let mut v = Vec::with_capacity(48 + value.len());
    if target.resp.get() == 3 {
        v.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if redirected && target.in_pubsub() {
        v.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    } else {
        return;
    }
    v.extend_from_slice(value);
    push(shard, target, &v);
}

/// Appends `bytes` to the connection's pushes, within its output buffer limit (the Pub/Sub
/// class for a subscribed client, else the normal class, bounded as MONITOR's is).
fn push(shard: &Shard, meta: &ClientMeta, bytes: &[u8]) {
    let Some(sub) = meta.pushes.borrow().upgrade() else {
        return;
    };
    let limit = {
        let s = shard.settings.borrow();
        if meta.in_pubsub() {
            s.pubsub_limit
        } else {
            s.monitor_limit
        }
    };
    sub.push_raw(limit, bytes);
}

/// Enforces `tracking-table-max-keys` on `data`'s table (after reads added keys, and from
/// the cron, which sees a lowered limit): while
/// the tables of all shards together hold more keys than allowed, keys of this one are
/// forgotten and their readers told, as if the keys changed (no BCAST, no NOLOOP).
pub fn enforce_limit(shard: &Rc<Shard>, data: &mut ShardData) {
    publish_count(shard, data);
    let max = shard.settings.borrow().tracking_max_keys;
    let total = || -> usize {
        let counts = &shard.shared.tracking_keys;
        counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
    };
    let enforcing = &shard.shared.tracking_enforcing;
    if max > 0 && total() > max && !enforcing.swap(true, Ordering::AcqRel) {
        while total() > max {
            let Some(key) = data.tracking.any_key() else {
                break;
            };
            for r in data.tracking.take(&key).unwrap_or_default() {
                let m = Message::Key {
                    target: r.id,
                    key: key.clone(),
                    origin: 0,
                };
                queue(shard, r.home as usize, m, Tickets::new());
            }
            publish_count(shard, data);
        }
        enforcing.store(false, Ordering::Release);
    }
    data.sync_tracked();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_follow_optin_optout_and_caching() {
        assert!(!reads_tracked(0));
        assert!(reads_tracked(ON));
        assert!(reads_tracked(ON | NOLOOP));
        assert!(!reads_tracked(ON | BCAST));
        assert!(!reads_tracked(ON | OPTIN));
        assert!(reads_tracked(ON | OPTIN | CACHING));
        assert!(reads_tracked(ON | OPTOUT));
        assert!(!reads_tracked(ON | OPTOUT | CACHING));
    }

    #[test]
    fn broadcast_arrays_are_sorted_and_skip_own_keys() {
        let mut keys = BTreeMap::new();
        keys.insert(b"b".to_vec().into_boxed_slice(), 7);
        keys.insert(b"a".to_vec().into_boxed_slice(), 0);
        assert_eq!(keys_array(&keys, None), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(keys_array(&keys, Some(7)), b"*1\r\n$1\r\na\r\n");
        keys.remove(&b"a"[..]);
        assert!(keys_array(&keys, Some(7)).is_empty());
    }
}
