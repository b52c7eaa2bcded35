//! Cluster-mode routing at the gate: one slot for all keys, served here or MOVED, CROSSSLOT,
//! CLUSTERDOWN; and for open slots (being migrated) the ASK / TRYAGAIN verdict, taken on the
//! shard that owns the slot, from which keys exist there.

use std::rc::Rc;

use crate::cluster::slotmap::{cross_slot, not_served, Route, SlotMap};
use crate::cmd::{self, flag, CommandSpec, Handler};
use crate::error::Error;
use crate::resp::{Args, Decoded, Decoder, Reply};
use crate::shard::Shard;
use crate::slot::key_slot;
use crate::util::time::now_ms;

use super::conn::Conn;

/// Whether this node serves the command's keys (Redis's `getNodeByQuery`): all keys in one
/// slot, that slot served here, the cluster up. `Ok(Some(slot))` when the slot is open and the
/// keys themselves decide (see `run_open_slot`).
pub fn cluster_route(
    conn: &Conn,
    spec: &CommandSpec,
    args: &Args<'_>,
    asking: bool,
) -> Result<Option<u16>, Error> {
    let map = conn.shard.slot_map.borrow();
    if spec.has(flag::PUBSUB) {
        // SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH: their channels route like keys, but with no
        // open-slot verdict (channels are not keys) and, by default, while the cluster is down.
        return shard_channel_route(conn, &map, spec, args, asking).map(|()| None);
    }
    let write = spec.has(flag::WRITE);
    // MIGRATE runs here on any open slot, importing ones too, ASKING or not (as in Redis).
    let migrate = spec.name == "migrate";
    let asking = asking || migrate;
    // Fixed key positions are walked in place; only movable keys are gathered first.
    let routed = match spec.key_finder {
        Some(find) => route_keys(
            &map,
            find(args).unwrap_or_default().into_iter(),
            args,
            write,
            asking,
        ),
        None => route_keys(&map, spec.key_positions(args.len()), args, write, asking),
    };
    match routed? {
        None | Some((_, Route::Here)) => Ok(None),
        // MIGRATE works on an open slot whatever keys exist: it is what moves them.
        Some((_, Route::Open)) if migrate => Ok(None),
        Some((slot, Route::Open)) => Ok(Some(slot)),
    }
}

fn shard_channel_route(
    conn: &Conn,
    map: &SlotMap,
    spec: &CommandSpec,
    args: &Args<'_>,
    asking: bool,
) -> Result<(), Error> {
    let mut positions = spec.key_positions(args.len());
    let Some(first) = positions.next() else {
        return Ok(());
    };
    let slot = key_slot(args.get(first));
    if map.unassigned(slot) {
        return Err(not_served());
    }
    if positions.any(|p| key_slot(args.get(p)) != slot) {
        return Err(cross_slot());
    }
    let when_down = conn.shard.settings.borrow().pubsubshard_when_down;
    map.route_shard_channel(slot, asking, when_down)
}

fn route_keys(
    map: &SlotMap,
    mut positions: impl Iterator<Item = usize>,
    args: &Args<'_>,
    write: bool,
    asking: bool,
) -> Result<Option<(u16, Route)>, Error> {
    let Some(first) = positions.next() else {
        return Ok(None);
    };
    let slot = key_slot(args.get(first));
    if map.unassigned(slot) {
        return Err(not_served());
    }
    if positions.any(|p| key_slot(args.get(p)) != slot) {
        return Err(cross_slot());
    }
    Ok(Some((slot, map.route(slot, write, asking)?)))
}

/// Runs a command on an open slot. A keyed command is judged and run in one step on the
/// owner shard, so no key can appear or leave between the verdict and the command; other
/// handlers (blocking commands) are judged there first and then run as usual. Returns whether
/// the caller still has to run the command: false once a keyed command ran or the verdict (an
/// error) is written.
pub async fn run_open_slot(
    conn: &mut Conn,
    idx: usize,
    args: &Args<'_>,
    slot: u16,
    asking: bool,
) -> bool {
    conn.flush_forwarded().await;
    let owner = conn.shard.owner_of(slot);
    let mut cmd = Vec::new();
    args.encode_into(&mut cmd);
    let resp3 = conn.out.resp3;
    let keyed = matches!(cmd::table().specs[idx].handler, Handler::Keyed(_));
    let (reply, ok) = conn
        .shard
        .call(owner, 0, move |s| {
            judge_and_run(s, idx, &cmd, slot, asking, keyed, resp3)
        })
        .await;
    conn.out.buf.extend_from_slice(&reply);
    if !ok {
        conn.shard.stats.borrow_mut().cmd[idx].rejected += 1;
    }
    ok && !keyed
}

/// On the owner shard: the open-slot verdict, then (for keyed commands) the command itself.
/// Returns the reply bytes and whether the verdict let the command run.
fn judge_and_run(
    shard: &Rc<Shard>,
    idx: usize,
    cmd: &[u8],
    slot: u16,
    asking: bool,
    keyed: bool,
    resp3: bool,
) -> (Vec<u8>, bool) {
    let mut out = Reply {
        buf: Vec::new(),
        resp3,
    };
    let mut dec = Decoder::new(i64::MAX);
    let Decoded::Request { len, .. } = dec.decode(cmd, false) else {
        out.error(&Error::msg(cmd::PANIC_REPLY));
        return (out.buf, false);
    };
    let args = Args::new(&cmd[..len], dec.scratch(), dec.spans());
    let spec = cmd::table().specs[idx];
    let now = now_ms();
    let verdict = {
        let mut keys: Vec<&[u8]> = spec
            .all_key_positions(&args)
            .into_iter()
            .map(|p| args.get(p))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut db = shard.db.borrow_mut();
        let existing = keys.iter().filter(|k| db.exists(k, now)).count();
        shard.refresh_slot_map();
        let map = shard.slot_map.borrow().clone();
        map.open_slot(
            slot,
            asking,
            keys.len() > 1,
            existing,
            keys.len() - existing,
        )
    };
    if let Err(e) = verdict {
        out.error(&e);
        return (out.buf, false);
    }
    if let (true, Handler::Keyed(f)) = (keyed, spec.handler) {
        cmd::run_keyed(shard, idx, f, &args, &mut out, now);
    }
    (out.buf, true)
}
