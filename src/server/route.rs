//! Cluster-mode routing at the gate: one slot for all keys, served here or MOVED, CROSSSLOT,
//! CLUSTERDOWN; and for open slots (being migrated) the ASK / TRYAGAIN verdict, taken on the
//! shard that owns the slot, from which keys exist there.

use std::rc::Rc;

use crate::cluster::slotmap::{cross_slot, not_served, Route, SlotMap};
use crate::cmd::{self, flag, CommandSpec, Handler};
use crate::db::ShardData;
use crate::error::Error;
use crate::resp::{Args, Decoded, Decoder, Reply};
use crate::shard::client::Conn;
use crate::shard::Shard;
use crate::slot::key_slot;
use crate::util::time::now_ms;

use super::conn::Batch;

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
    if spec.has(flag::ROUTES_QUEUED) {
        return exec_route(conn, &map, asking);
    }
    let write = spec.has(flag::WRITE);
    // MIGRATE runs here on any open slot, importing ones too, ASKING or not (as in Redis).
    let migrate = spec.has(flag::MIGRATE);
    let asking = asking || migrate;
    // Fixed key positions are walked in place; only movable keys are gathered first.
    let want = Want {
        write,
        asking,
        readonly: conn.readonly,
    };
    let routed = match spec.key_finder {
        Some(find) => route_keys(&map, find(args).unwrap_or_default().into_iter(), args, want),
        None => route_keys(&map, spec.key_positions(args.len()), args, want),
    };
    match routed? {
        None | Some((_, Route::Here)) => Ok(None),
        // MIGRATE works on an open slot whatever keys exist: it is what moves them.
        Some((_, Route::Open)) if migrate => Ok(None),
        Some((slot, Route::Open)) => Ok(Some(slot)),
    }
}

/// EXEC: every key of every queued command in one slot served here (Redis's
/// `getNodeByQuery` walks the transaction's commands). An open slot is not judged again:
/// the commands were judged when queued.
fn exec_route(conn: &Conn, map: &SlotMap, asking: bool) -> Result<Option<u16>, Error> {
    let Some(multi) = &conn.multi else {
        return Ok(None);
    };
    let table = cmd::table();
    let mut first: Option<(u16, bool)> = None;
    for q in &multi.queued {
        let spec = table.specs[q.idx];
        let args = q.args.args();
        let write = spec.has(flag::WRITE);
        for p in spec.all_key_positions(&args) {
            let slot = key_slot(args.get(p));
            match first {
                None => first = Some((slot, write)),
                Some((s, _)) if s != slot => return Err(cross_slot()),
                Some((s, w)) => first = Some((s, w || write)),
            }
        }
    }
    let Some((slot, write)) = first else {
        return Ok(None);
    };
    if map.unassigned(slot) {
        return Err(not_served());
    }
    map.route(slot, write, asking, conn.readonly).map(|_| None)
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

/// What a command asks of routing: whether it writes, comes ASKING, from a READONLY client.
#[derive(Clone, Copy)]
struct Want {
    write: bool,
    asking: bool,
    readonly: bool,
}

fn route_keys(
    map: &SlotMap,
    mut positions: impl Iterator<Item = usize>,
    args: &Args<'_>,
    want: Want,
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
    let route = map.route(slot, want.write, want.asking, want.readonly)?;
    Ok(Some((slot, route)))
}

/// Runs a command on an open slot. A keyed command is judged and run in one step on the
/// owner shard, so no key can appear or leave between the verdict and the command; other
/// handlers (blocking commands) are judged there first and then run as usual. Returns whether
/// the caller still has to run the command: false once a keyed command ran or the verdict (an
/// error) is written.
pub async fn run_open_slot(
    conn: &mut Conn,
    batch: &mut Batch,
    idx: usize,
    args: &Args<'_>,
    slot: u16,
    asking: bool,
) -> bool {
    batch.flush(conn).await;
    let owner = conn.shard.owner_of(slot);
    let mut cmd = Vec::new();
    args.encode_into(&mut cmd);
    let (resp3, db) = (conn.out.resp3, conn.db);
    let ident = conn.meta.ident.clone();
    let keyed = matches!(cmd::table().specs[idx].handler, Handler::Keyed(_));
    let (reply, ok) = conn
        .shard
        .call_data(owner, move |s, data| {
            judge_and_run(s, data, idx, &cmd, slot, asking, keyed, (resp3, db, &ident))
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
#[allow(clippy::too_many_arguments)]
fn judge_and_run(
    shard: &Rc<Shard>,
    data: &mut ShardData,
    idx: usize,
    cmd: &[u8],
    slot: u16,
    asking: bool,
    keyed: bool,
    (resp3, db, ident): (bool, usize, &crate::shard::ClientIdent),
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
        let ks = data.db(db);
        let existing = keys.iter().filter(|k| ks.exists(k, now)).count();
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
        let client = Some(ident);
        // The sender's reads are not remembered here (an open slot's key is moving away).
        let track = crate::shard::tracking::Track {
            origin: ident.id,
            ..Default::default()
        };
        super::conn::run_on(shard, data, db, idx, f, &args, &mut out, now, client, track);
    }
    (out.buf, true)
}
