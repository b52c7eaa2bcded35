//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB.
//!
//! Subscriptions are kept on the subscribing connection's core (`shard::pubsub`); PUBLISH
//! delivers on every core that announces subscribers and, in cluster mode, hands the message
//! to the cluster member on the control core, which sends it over the bus.

use std::rc::Rc;
use std::sync::Arc;

use hashbrown::HashSet;

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::mesh::{Job, ResultSlot};
use crate::shard::pubsub::{self, Kind};
use crate::shard::Shard;

const SUBSCRIBE_FLAGS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("subscribe", -2, SUBSCRIBE_FLAGS, Handler::Sync(subscribe)).doc(
        "pubsub",
        "2.0.0",
        "Listen for messages published to the given channels",
    ),
    CommandSpec::new(
        "unsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        Handler::Sync(unsubscribe),
    )
    .doc(
        "pubsub",
        "2.0.0",
        "Stop listening for messages posted to the given channels",
    ),
    CommandSpec::new("psubscribe", -2, SUBSCRIBE_FLAGS, Handler::Sync(psubscribe)).doc(
        "pubsub",
        "2.0.0",
        "Listen for messages published to channels matching the given patterns",
    ),
    CommandSpec::new(
        "punsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        Handler::Sync(punsubscribe),
    )
    .doc(
        "pubsub",
        "2.0.0",
        "Stop listening for messages posted to channels matching the given patterns",
    ),
    CommandSpec::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        Handler::Async(publish),
    )
    .doc("pubsub", "2.0.0", "Post a message to a channel"),
    // Shard channels are routed like keys (first..last = 1..-1), but the subscription lives
    // on the connection's core, so the handlers are connection handlers, not keyed ones.
    CommandSpec::new("ssubscribe", -2, SUBSCRIBE_FLAGS, Handler::Sync(ssubscribe))
        .keys(1, -1, 1)
        .doc(
            "pubsub",
            "7.0.0",
            "Listen for messages published to the given shard channels",
        ),
    CommandSpec::new(
        "sunsubscribe",
        -1,
        SUBSCRIBE_FLAGS,
        Handler::Sync(sunsubscribe),
    )
    .keys(1, -1, 1)
    .doc(
        "pubsub",
        "7.0.0",
        "Stop listening for messages posted to the given shard channels",
    ),
    CommandSpec::new(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        Handler::Async(spublish),
    )
    .keys(1, 1, 1)
    .doc("pubsub", "7.0.0", "Post a message to a shard channel"),
    CommandSpec::new("pubsub", -2, 0, Handler::Container)
        .subs(PUBSUB_SUBCOMMANDS)
        .doc("pubsub", "2.8.0", "A container for Pub/Sub commands"),
];

const INTROSPECT: u32 = PUBSUB | LOADING | STALE;

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("channels", -2, INTROSPECT, Handler::Async(channels)).doc(
        "pubsub",
        "2.8.0",
        "List active channels",
    ),
    CommandSpec::new("numsub", -2, INTROSPECT, Handler::Async(numsub)).doc(
        "pubsub",
        "2.8.0",
        "Get the count of subscribers for channels",
    ),
    CommandSpec::new("numpat", 2, INTROSPECT, Handler::Async(numpat)).doc(
        "pubsub",
        "2.8.0",
        "Get the count of unique patterns pattern subscriptions",
    ),
    CommandSpec::new(
        "shardchannels",
        -2,
        INTROSPECT,
        Handler::Async(shardchannels),
    )
    .doc("pubsub", "7.0.0", "List active shard channels"),
    CommandSpec::new("shardnumsub", -2, INTROSPECT, Handler::Async(shardnumsub)).doc(
        "pubsub",
        "7.0.0",
        "Get the count of subscribers for shard channels",
    ),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(help)).doc(
        "pubsub",
        "6.2.0",
        "Show helpful text about the different subcommands",
    ),
];

/// The error a RESP2 subscribed client gets for any other command.
pub fn subscribed_context_error(full_name: &str) -> Error {
    Error::msg(format!(
        "Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

fn subscribe_kind(c: &mut Conn, a: &Args, kind: Kind) -> CmdResult {
    let sub = c.subscriber();
    for name in a.rest(1) {
        pubsub::subscribe(&c.shard, &sub, kind, name, &mut c.out);
    }
    Ok(())
}

fn unsubscribe_kind(c: &mut Conn, a: &Args, kind: Kind) -> CmdResult {
    let Some(sub) = c.sub.clone() else {
        // Never subscribed: Redis still confirms each name (or a null one) with count 0.
        if a.len() == 1 {
            pubsub::confirm_none(&mut c.out, kind);
        } else {
            let sub = c.subscriber();
            for name in a.rest(1) {
                pubsub::unsubscribe(&c.shard, &sub, kind, name, Some(&mut c.out));
            }
        }
        return Ok(());
    };
    if a.len() == 1 {
        pubsub::unsubscribe_all(&c.shard, &sub, kind, Some(&mut c.out));
    } else {
        for name in a.rest(1) {
            pubsub::unsubscribe(&c.shard, &sub, kind, name, Some(&mut c.out));
        }
    }
    Ok(())
}

fn subscribe(c: &mut Conn, a: &Args) -> CmdResult {
    subscribe_kind(c, a, Kind::Channel)
}

fn psubscribe(c: &mut Conn, a: &Args) -> CmdResult {
    subscribe_kind(c, a, Kind::Pattern)
}

fn ssubscribe(c: &mut Conn, a: &Args) -> CmdResult {
    subscribe_kind(c, a, Kind::Shard)
}

fn unsubscribe(c: &mut Conn, a: &Args) -> CmdResult {
    unsubscribe_kind(c, a, Kind::Channel)
}

fn punsubscribe(c: &mut Conn, a: &Args) -> CmdResult {
    unsubscribe_kind(c, a, Kind::Pattern)
}

fn sunsubscribe(c: &mut Conn, a: &Args) -> CmdResult {
    unsubscribe_kind(c, a, Kind::Shard)
}

fn publish<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(publish_cmd(c, a, false))
}

fn spublish<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(publish_cmd(c, a, true))
}

async fn publish_cmd(c: &mut Conn, a: Args<'_>, sharded: bool) -> CmdResult {
    let n = publish_everywhere(&c.shard, a.get(1), a.get(2), sharded).await;
    // A client publishing to its own channel (RESP3) sees the message before the count,
    // as in Redis where delivery happens before the reply is added.
    if let Some(sub) = &c.sub {
        sub.drain_into(&mut c.out.buf);
    }
    c.out.int(n as i64);
    Ok(())
}

/// A (channel, message) shared by the cores it is delivered on.
type Published = Arc<(Box<[u8]>, Box<[u8]>)>;

/// Delivers a message on every core with subscribers and returns the receivers in total;
/// in cluster mode also passes it to the bus. Cores are visited in a fixed order and each
/// core runs mesh jobs in arrival order, so one publisher's messages arrive in order.
pub async fn publish_everywhere(
    shard: &Rc<Shard>,
    channel: &[u8],
    message: &[u8],
    sharded: bool,
) -> usize {
    let counts = &shard.shared.pubsub_counts;
    let mut payload: Option<Published> = None;
    let mut calls = Vec::new();
    for to in 0..shard.nshards {
        if to == shard.id || !counts.has(to, sharded) {
            continue;
        }
        let p = payload
            .get_or_insert_with(|| Arc::new((channel.into(), message.into())))
            .clone();
        let slot = ResultSlot::new();
        let theirs = slot.clone();
        let job: Job = Box::new(move |s| theirs.put(pubsub::deliver(s, &p.0, &p.1, sharded)));
        calls.push((slot, shard.mesh.send(to, false, job).await));
    }
    let mut total = 0;
    if counts.has(shard.id, sharded) {
        total += pubsub::deliver(shard, channel, message, sharded);
    }
    for (slot, ticket) in calls {
        ticket.await;
        total += slot.take().unwrap_or(0);
    }
    if shard.slot_map.borrow().enabled {
        let p = payload
            .get_or_insert_with(|| Arc::new((channel.into(), message.into())))
            .clone();
        shard
            .post(shard.nshards, false, move |_| {
                if let Some(m) = crate::cluster::member::Member::current() {
                    m.propagate_publish(&p.0, &p.1, sharded);
                }
            })
            .await;
    }
    total
}

/// Every core's answer to `f`, for the PUBSUB introspection subcommands.
async fn gather<R, F>(c: &Conn, f: F) -> Vec<R>
where
    R: Send + 'static,
    F: Fn(&Rc<Shard>) -> R + Send + Sync + Clone + 'static,
{
    c.shard.call_all(f).await
}

fn list_names<'a>(c: &'a mut Conn, a: Args<'a>, kind: Kind) -> BoxFuture<'a> {
    Box::pin(async move {
        if a.len() > 3 {
            return Err(Error::subcommand_syntax(a.get(1), "PUBSUB"));
        }
        let pattern: Option<Box<[u8]>> = (a.len() == 3).then(|| a.get(2).into());
        let per_core = gather(c, move |s| s.pubsub.names(kind, pattern.as_deref())).await;
        let names: HashSet<Box<[u8]>> = per_core.into_iter().flatten().collect();
        c.out.array(names.len());
        for n in &names {
            c.out.bulk(n);
        }
        Ok(())
    })
}

fn channels<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    list_names(c, a, Kind::Channel)
}

fn shardchannels<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    list_names(c, a, Kind::Shard)
}

fn count_subscribers<'a>(c: &'a mut Conn, a: Args<'a>, kind: Kind) -> BoxFuture<'a> {
    Box::pin(async move {
        let names: Arc<Vec<Box<[u8]>>> = Arc::new(a.rest(2).map(Into::into).collect());
        let wanted = names.clone();
        let per_core = gather(c, move |s| {
            wanted
                .iter()
                .map(|n| s.pubsub.numsub(kind, n))
                .collect::<Vec<usize>>()
        })
        .await;
        c.out.array(names.len() * 2);
        for (i, n) in names.iter().enumerate() {
            c.out.bulk(n);
            let total: usize = per_core.iter().filter_map(|v| v.get(i)).sum();
            c.out.int(total as i64);
        }
        Ok(())
    })
}

fn numsub<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    count_subscribers(c, a, Kind::Channel)
}

fn shardnumsub<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    count_subscribers(c, a, Kind::Shard)
}

/// Distinct patterns across cores (Redis counts its pattern dictionary).
fn numpat<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let per_core = gather(c, |s| s.pubsub.names(Kind::Pattern, None)).await;
        let names: HashSet<Box<[u8]>> = per_core.into_iter().flatten().collect();
        c.out.int(names.len() as i64);
        Ok(())
    })
}

fn help(c: &mut Conn, a: &Args) -> CmdResult {
    crate::cmd::server::help_reply(
        &mut c.out,
        a.get(0),
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    );
    Ok(())
}

/// INFO's pubsub_channels, pubsub_patterns, pubsubshard_channels: distinct names over cores.
pub async fn info_counts(shard: &Rc<Shard>) -> [usize; 3] {
    let per_core = shard
        .call_all(|s| [Kind::Channel, Kind::Pattern, Kind::Shard].map(|k| s.pubsub.names(k, None)))
        .await;
    let mut out = [0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let set: HashSet<&[u8]> = per_core
            .iter()
            .flat_map(|c| c[i].iter().map(|n| &**n))
            .collect();
        *slot = set.len();
    }
    out
}
