//! Pub/Sub state of one core: who on this core listens to which channel, pattern and shard
//! channel, and the pushes waiting to be written to each subscribed connection.
//!
//! Subscriptions live on the core of the subscribing connection, never elsewhere: a PUBLISH
//! runs [`deliver`] on every core that has subscribers (itself locally, others through the
//! mesh) and sums the receivers. Each core announces in `Shared::pubsub_counts` how many
//! channel+pattern subscriptions and shard-channel subscriptions it holds (see [`Counts`]);
//! a publisher skips cores announcing zero, so PUBLISH to nobody costs two atomic loads per
//! core and no cross-core message. A core bumps its count before the subscribe reply is
//! written, so any PUBLISH issued after a client saw that reply finds the core.
//!
//! A [`Subscriber`] is created at a connection's first subscription and lives as long as the
//! connection. Deliveries append RESP-encoded pushes to its `pending` buffer and wake the
//! connection task, which writes them even while the client sends nothing. That buffer is the
//! client's output buffer for `client-output-buffer-limit pubsub`: past the hard limit, or past
//! the soft limit for longer than its seconds, the socket is shut down and the connection
//! task ends and unsubscribes everything.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use hashbrown::{HashMap, HashSet};

use super::{ClientMeta, Shard};
use crate::resp::Reply;
use crate::util::glob::glob_match;
use crate::util::time::now_ms;

/// The three kinds of subscription, each with its own reply words.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    pub fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    pub fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// Per-core subscription counts every core can read: index 0 counts channels + patterns
/// (what PUBLISH needs), index 1 shard channels (SPUBLISH).
pub struct Counts(Vec<[AtomicUsize; 2]>);

impl Counts {
    pub fn new(executors: usize) -> Counts {
        Counts(
            (0..executors)
                .map(|_| [AtomicUsize::new(0), AtomicUsize::new(0)])
                .collect(),
        )
    }

    /// Whether core `core` has subscribers of the given family.
    #[inline]
    pub fn has(&self, core: usize, sharded: bool) -> bool {
        self.0
            .get(core)
            .is_some_and(|c| c[sharded as usize].load(Ordering::Acquire) > 0)
    }

    /// Whether any core has subscribers of the given family.
    pub fn any(&self, sharded: bool) -> bool {
        (0..self.0.len()).any(|c| self.has(c, sharded))
    }

    fn set(&self, core: usize, sharded: bool, n: usize) {
        if let Some(c) = self.0.get(core) {
            c[sharded as usize].store(n, Ordering::Release);
        }
    }
}

/// `client-output-buffer-limit pubsub`: hard bytes, soft bytes, soft seconds (0: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub hard: usize,
    pub soft: usize,
    pub soft_secs: u64,
}

/// One subscribed connection of this core.
pub struct Subscriber {
    pub meta: Rc<ClientMeta>,
    /// Pushes not yet handed to the socket.
    pending: RefCell<Vec<u8>>,
    /// Bytes of pushes the connection task is writing right now (still output buffer).
    writing: Cell<usize>,
    waker: RefCell<Option<Waker>>,
    /// When the buffer first went over the soft limit (0: it is under).
    soft_since: Cell<i64>,
    /// Output limit reached: the socket is shut down, nothing more is buffered.
    closed: Cell<bool>,
    channels: RefCell<HashSet<Box<[u8]>>>,
    /// In subscription order, as Redis's list (PUNSUBSCRIBE with no argument follows it).
    patterns: RefCell<Vec<Box<[u8]>>>,
    shard_channels: RefCell<HashSet<Box<[u8]>>>,
}

impl Subscriber {
    pub fn new(meta: Rc<ClientMeta>) -> Rc<Subscriber> {
        Rc::new(Subscriber {
            meta,
            pending: RefCell::new(Vec::new()),
            writing: Cell::new(0),
            waker: RefCell::new(None),
            soft_since: Cell::new(0),
            closed: Cell::new(false),
            channels: RefCell::default(),
            patterns: RefCell::default(),
            shard_channels: RefCell::default(),
        })
    }

    /// Channels + patterns: the count (P)SUBSCRIBE replies show.
    pub fn count(&self) -> usize {
        self.channels.borrow().len() + self.patterns.borrow().len()
    }

    pub fn shard_count(&self) -> usize {
        self.shard_channels.borrow().len()
    }

    fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard_count(),
            _ => self.count(),
        }
    }

    /// Moves the pushes waiting for this connection to the end of `out`.
    #[inline]
    pub fn drain_into(&self, out: &mut Vec<u8>) {
        let mut p = self.pending.borrow_mut();
        if !p.is_empty() {
            if out.is_empty() {
                std::mem::swap(&mut *p, out);
            } else {
                out.extend_from_slice(&p);
                p.clear();
            }
        }
    }

    /// The connection task is writing `n` bytes (0: done); they count against the limit.
    pub fn set_writing(&self, n: usize) {
        self.writing.set(n);
    }

    pub fn closed(&self) -> bool {
        self.closed.get()
    }

    /// Resolves once there are pushes to write or the limit closed the client.
    pub fn ready(&self) -> PushReady<'_> {
        PushReady(self)
    }

    fn protocol(&self) -> bool {
        self.meta.resp.get() == 3
    }

    fn sync_meta(&self) {
        self.meta.sub.set(self.channels.borrow().len());
        self.meta.psub.set(self.patterns.borrow().len());
        self.meta.ssub.set(self.shard_count());
    }

    /// Appends bytes already encoded (MONITOR lines) and enforces the output limit.
    pub fn push_raw(&self, limit: Limit, bytes: &[u8]) {
        self.push(limit, |out| out.buf.extend_from_slice(bytes));
    }

    /// Appends one push built by `f` and enforces the output limit.
    fn push(&self, limit: Limit, f: impl FnOnce(&mut Reply)) {
        if self.closed.get() {
            return;
        }
        let mut out = Reply {
            buf: std::mem::take(&mut *self.pending.borrow_mut()),
            resp3: self.protocol(),
        };
        f(&mut out);
        let used = out.buf.len() + self.writing.get();
        *self.pending.borrow_mut() = out.buf;
        if self.over_limit(used, limit) {
            self.close();
        }
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn over_limit(&self, used: usize, limit: Limit) -> bool {
        if limit.hard > 0 && used >= limit.hard {
            return true;
        }
        if limit.soft > 0 && used >= limit.soft {
            let now = now_ms();
            let since = self.soft_since.get();
            if since == 0 {
                self.soft_since.set(now);
                return false;
            }
            return (now - since) as u64 > limit.soft_secs * 1000;
        }
        self.soft_since.set(0);
        false
    }

    /// Redis's "closed ASAP": drop what is buffered and shut the socket, which ends the
    /// connection task (a write in progress fails, the read sees end of file).
    fn close(&self) {
        log_output_limit_close(&self.meta);
        self.closed.set(true);
        self.meta.killed.set(true);
        *self.pending.borrow_mut() = Vec::new();
        // SAFETY: the fd is owned by the live connection task of this core (it unregisters
        // the subscriber before closing it); `shutdown` only affects the socket.
        unsafe {
            libc::shutdown(self.meta.fd, libc::SHUT_RDWR);
        }
    }
}

pub struct PushReady<'a>(&'a Subscriber);

impl Future for PushReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.0.pending.borrow().is_empty() || self.0.closed.get() {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

type Registry = HashMap<Box<[u8]>, Vec<Rc<Subscriber>>>;

/// A (channel, message) publication.
type Message = (Box<[u8]>, Box<[u8]>);

/// One core's subscription registry.
#[derive(Default)]
pub struct PubSub {
    channels: RefCell<Registry>,
    patterns: RefCell<Registry>,
    shard_channels: RefCell<Registry>,
    /// `notify-keyspace-events` as flags (`config::keyspace_events`), read by every
    /// notification site: 0 keeps them to this one load. Set with `set_keyspace_events`.
    pub keyspace_events: Cell<u32>,
    /// Messages published here without waiting (keyspace notifications) for the other cores'
    /// subscribers, in publication order, until the flusher task posts them.
    outgoing: RefCell<Vec<Message>>,
    flushing: Cell<bool>,
}

impl PubSub {
    /// A registry on the thread that will use it, with `notify-keyspace-events` `flags`.
    pub fn with_keyspace_events(flags: u32) -> PubSub {
        let p = PubSub::default();
        p.set_keyspace_events(flags);
        p
    }

    /// Sets `notify-keyspace-events` for this core (on its thread): the flags, and the
    /// `new`/`keymiss` notifications its lookups record.
    pub fn set_keyspace_events(&self, flags: u32) {
        use crate::config::keyspace_events as class;
        self.keyspace_events.set(flags);
        let mut announce = 0;
        if flags & class::NEW != 0 {
            announce |= crate::db::ANNOUNCE_NEW;
        }
        if flags & class::KEY_MISS != 0 {
            announce |= crate::db::ANNOUNCE_MISS;
        }
        crate::db::set_announced(announce);
    }

    fn registry(&self, kind: Kind) -> &RefCell<Registry> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// This core's channel (or shard channel) names, for PUBSUB CHANNELS and INFO.
    pub fn names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        self.registry(kind)
            .borrow()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of `name` on this core (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn numsub(&self, kind: Kind, name: &[u8]) -> usize {
        self.registry(kind).borrow().get(name).map_or(0, Vec::len)
    }
}

/// Publishes this core's counts after a change.
fn announce(shard: &Shard) {
    let p = &shard.pubsub;
    let n = p.channels.borrow().len() + p.patterns.borrow().len();
    shard.shared.pubsub_counts.set(shard.id, false, n);
    let n = p.shard_channels.borrow().len();
    shard.shared.pubsub_counts.set(shard.id, true, n);
}

/// Subscribes `sub` to `name` and writes the confirmation into `out`.
pub fn subscribe(shard: &Shard, sub: &Rc<Subscriber>, kind: Kind, name: &[u8], out: &mut Reply) {
    let added = match kind {
        Kind::Channel => sub.channels.borrow_mut().insert(name.into()),
        Kind::Shard => sub.shard_channels.borrow_mut().insert(name.into()),
        Kind::Pattern => {
            let mut pats = sub.patterns.borrow_mut();
            let new = !pats.iter().any(|p| &**p == name);
            if new {
                pats.push(name.into());
            }
            new
        }
    };
    if added {
        shard
            .pubsub
            .registry(kind)
            .borrow_mut()
            .entry_ref(name)
            .or_default()
            .push(sub.clone());
        sub.sync_meta();
        announce(shard);
    }
    confirm(out, kind.subscribe_word(), Some(name), sub.count_for(kind));
}

/// Unsubscribes `sub` from `name`; writes the confirmation into `out` when given.
pub fn unsubscribe(
    shard: &Shard,
    sub: &Subscriber,
    kind: Kind,
    name: &[u8],
    out: Option<&mut Reply>,
) -> bool {
    let removed = match kind {
        Kind::Channel => sub.channels.borrow_mut().remove(name),
        Kind::Shard => sub.shard_channels.borrow_mut().remove(name),
        Kind::Pattern => {
            let mut pats = sub.patterns.borrow_mut();
            let before = pats.len();
            pats.retain(|p| &**p != name);
            pats.len() != before
        }
    };
    if removed {
        let mut reg = shard.pubsub.registry(kind).borrow_mut();
        if let Some(list) = reg.get_mut(name) {
            list.retain(|s| !std::ptr::eq(&**s, sub));
            if list.is_empty() {
                reg.remove(name);
            }
        }
        drop(reg);
        sub.sync_meta();
        announce(shard);
    }
    if let Some(out) = out {
        confirm(
            out,
            kind.unsubscribe_word(),
            Some(name),
            sub.count_for(kind),
        );
    }
    removed
}

/// UNSUBSCRIBE / PUNSUBSCRIBE / SUNSUBSCRIBE with no argument: every subscription of `kind`,
/// or one confirmation with a null name when there was none (as Redis).
pub fn unsubscribe_all(shard: &Shard, sub: &Subscriber, kind: Kind, mut out: Option<&mut Reply>) {
    let names: Vec<Box<[u8]>> = match kind {
        Kind::Channel => sub.channels.borrow().iter().cloned().collect(),
        Kind::Shard => sub.shard_channels.borrow().iter().cloned().collect(),
        Kind::Pattern => sub.patterns.borrow().clone(),
    };
    for name in &names {
        unsubscribe(shard, sub, kind, name, out.as_deref_mut());
    }
    if names.is_empty() {
        if let Some(out) = out {
            confirm(out, kind.unsubscribe_word(), None, sub.count_for(kind));
        }
    }
}

/// This core's subscribers (each once).
pub fn subscribers(shard: &Shard) -> Vec<Rc<Subscriber>> {
    let mut all: Vec<Rc<Subscriber>> = Vec::new();
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for subs in shard.pubsub.registry(kind).borrow().values() {
            for sub in subs {
                if !all.iter().any(|v| Rc::ptr_eq(v, sub)) {
                    all.push(sub.clone());
                }
            }
        }
    }
    all
}

impl Subscriber {
    /// Whether a subscription is outside the channel patterns `allowed` (an ACL change
    /// revoked it): patterns must be listed literally, channels match a listed pattern.
    pub fn violates(&self, allowed: &[Vec<u8>]) -> bool {
        use crate::acl::user::channel_listed;
        self.patterns
            .borrow()
            .iter()
            .any(|p| !channel_listed(allowed, p, true))
            || self
                .channels
                .borrow()
                .iter()
                .chain(self.shard_channels.borrow().iter())
                .any(|c| !channel_listed(allowed, c, false))
    }
}

/// A connection going away (or RESET): every subscription, silently.
pub fn remove_all(shard: &Shard, sub: &Subscriber) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        unsubscribe_all(shard, sub, kind, None);
    }
}

/// Drops every subscription of the killed clients `ids` at once: Redis frees a killed client,
/// subscriptions included, before CLIENT KILL replies, while their connection tasks here end
/// a little later (their own `remove_all` then finds nothing left).
pub fn remove_killed(shard: &Shard, ids: &[u64]) {
    let mut victims: Vec<Rc<Subscriber>> = Vec::new();
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for subs in shard.pubsub.registry(kind).borrow().values() {
            for sub in subs {
                if ids.contains(&sub.meta.id) && !victims.iter().any(|v| Rc::ptr_eq(v, sub)) {
                    victims.push(sub.clone());
                }
            }
        }
    }
    for sub in &victims {
        remove_all(shard, sub);
    }
}

/// The reply to a client with no subscriber record (it never subscribed) for a bare
/// UNSUBSCRIBE-family command: a null name and a count of 0.
pub fn confirm_none(out: &mut Reply, kind: Kind) {
    confirm(out, kind.unsubscribe_word(), None, 0);
}

fn confirm(out: &mut Reply, word: &[u8], name: Option<&[u8]>, count: usize) {
    out.push(3);
    out.bulk(word);
    match name {
        Some(n) => out.bulk(n),
        None => out.null(),
    }
    out.int(count as i64);
}

/// Delivers a message to this core's subscribers; returns how many received it.
/// Shard channels ignore patterns, as in Redis.
pub fn deliver(shard: &Shard, channel: &[u8], message: &[u8], sharded: bool) -> usize {
    let p = &shard.pubsub;
    let limit = shard.settings.borrow().pubsub_limit;
    let mut receivers = 0;
    let (reg, word): (&RefCell<Registry>, &[u8]) = if sharded {
        (&p.shard_channels, b"smessage")
    } else {
        (&p.channels, b"message")
    };
    if let Some(list) = reg.borrow().get(channel) {
        for s in list {
            s.push(limit, |out| {
                out.push(3);
                out.bulk(word);
                out.bulk(channel);
                out.bulk(message);
            });
            receivers += 1;
        }
    }
    if sharded {
        return receivers;
    }
    for (pattern, list) in p.patterns.borrow().iter() {
        if !glob_match(pattern, channel) {
            continue;
        }
        for s in list {
            s.push(limit, |out| {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(pattern);
                out.bulk(channel);
                out.bulk(message);
            });
            receivers += 1;
        }
    }
    receivers
}

/// Publishes a message from inside a command, without waiting: this core's subscribers get
/// it at once, other cores' in this core's publication order shortly after (a task posts
/// them in batches). Keyspace notifications use it; they stay on this node, as in Redis.
pub fn publish_nowait(shard: &Rc<Shard>, channel: &[u8], message: &[u8]) {
    let counts = &shard.shared.pubsub_counts;
    if counts.has(shard.id, false) {
        deliver(shard, channel, message, false);
    }
    if !(0..shard.nshards).any(|c| c != shard.id && counts.has(c, false)) {
        return;
    }
    let p = &shard.pubsub;
    p.outgoing
        .borrow_mut()
        .push((channel.into(), message.into()));
    if p.flushing.replace(true) {
        return;
    }
    let me = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let batch = std::mem::take(&mut *me.pubsub.outgoing.borrow_mut());
            if batch.is_empty() {
                break;
            }
            let batch = std::sync::Arc::new(batch);
            for core in 0..me.nshards {
                if core == me.id || !me.shared.pubsub_counts.has(core, false) {
                    continue;
                }
                let batch = batch.clone();
                me.post(core, false, move |s| {
                    for (channel, message) in batch.iter() {
                        deliver(s, channel, message, false);
                    }
                })
                .await;
            }
        }
        me.pubsub.flushing.set(false);
    })
    .detach();
}

/// After this node stopped serving some slots (cluster mode): unsubscribes every client of
/// the shard channels in those slots, with an `sunsubscribe` push each (Redis's
/// `removeChannelsInSlot`).
pub fn drop_slots(shard: &Shard, lost: impl Fn(u16) -> bool) {
    let gone: Vec<Box<[u8]>> = shard
        .pubsub
        .shard_channels
        .borrow()
        .keys()
        .filter(|c| lost(crate::slot::key_slot(c)))
        .cloned()
        .collect();
    let limit = shard.settings.borrow().pubsub_limit;
    for channel in gone {
        let subs = shard
            .pubsub
            .shard_channels
            .borrow_mut()
            .remove(&channel)
            .unwrap_or_default();
        for s in subs {
            s.shard_channels.borrow_mut().remove(&channel);
            s.sync_meta();
            let count = s.shard_count();
            s.push(limit, |out| {
                confirm(out, b"sunsubscribe", Some(&channel), count)
            });
        }
    }
    announce(shard);
}

/// Redis's log line for a client closed by its output buffer limit (subscribers here, other
/// clients in `server::conn`).
pub fn log_output_limit_close(meta: &ClientMeta) {
    eprintln!(
        "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
        meta.id, meta.addr
    );
}
