//! FAILOVER: a master hands its role to one of its replicas, as Redis 7.0's `failoverCommand`.
//!
//! The master pauses writes and waits until a replica (the one named, or any) acknowledged
//! its whole stream; then it becomes that replica's replica, and its handshake's
//! `PSYNC <replid> <offset> FAILOVER` tells the replica to become a master first, so the old
//! master continues with `+CONTINUE`. The pause ends once the PSYNC is answered. A failover
//! that cannot go on (timeout, refused PSYNC, FAILOVER ABORT) makes this node a master again.
//! Everything here runs on the control executor, in `Repl`'s state.

use std::rc::Rc;
use std::time::Duration;

use super::{master, on_control, set_master, unset_master, MasterAddr, Repl};
use crate::error::Error;
use crate::shard::pause::{Kind, Purpose};
use crate::shard::Shard;
use crate::util::time::now_ms;

/// How often a failover waiting for its replica looks again (Redis: once a second, in
/// `replicationCron`).
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// A failover under way (Redis's `failover_state` other than `NO_FAILOVER`).
#[derive(Clone, Debug)]
pub struct Failover {
    /// The replica taking over, once named or found.
    target: Option<MasterAddr>,
    /// When waiting gives up (unix ms), if a timeout was given.
    end_ms: Option<i64>,
    force: bool,
    /// This node follows the target now and its PSYNC FAILOVER is on its way
    /// (`FAILOVER_IN_PROGRESS`); otherwise it waits for the replica to catch up.
    in_progress: bool,
}

/// INFO's `master_failover_state`.
pub fn state_name(f: Option<&Failover>) -> &'static str {
    match f {
        None => "no-failover",
        Some(f) if f.in_progress => "failover-in-progress",
        Some(_) => "waiting-for-sync",
    }
}

/// FAILOVER [TO host port [FORCE]] [TIMEOUT ms] once parsed.
pub struct Request {
    /// Host and port as given (a port out of range names no replica).
    pub to: Option<(String, i64)>,
    pub timeout_ms: i64,
    pub force: bool,
}

/// FAILOVER with `Some(request)`, FAILOVER ABORT with None.
pub async fn failover(shard: &Rc<Shard>, request: Option<Request>) -> Result<(), Error> {
    on_control(shard, move |r| async move {
        match request {
            None => {
                if r.state.borrow().failover.is_none() {
                    return Err(Error::msg("No failover in progress."));
                }
                abort(&r, "Failover manually aborted").await;
                Ok(())
            }
            Some(request) => start(&r, request),
        }
    })
    .await
}

fn start(r: &Rc<Repl>, request: Request) -> Result<(), Error> {
    let mut st = r.state.borrow_mut();
    if st.failover.is_some() {
        return Err(Error::msg("FAILOVER already in progress."));
    }
    if st.master.is_some() {
        return Err(Error::msg(
            "FAILOVER is not valid when server is a replica.",
        ));
    }
    let replicas = master::Master::current()
        .map(|m| m.summary().replicas)
        .unwrap_or_default();
    if replicas.is_empty() {
        return Err(Error::msg("FAILOVER requires connected replicas."));
    }
    if request.force && (request.timeout_ms == 0 || request.to.is_none()) {
        return Err(Error::msg(
            "FAILOVER with force option requires both a timeout and target HOST and IP.",
        ));
    }
    let target = match request.to {
        Some((host, port)) => {
            let replica = u16::try_from(port).ok().and_then(|port| {
                find(
                    &replicas,
                    &MasterAddr {
                        host: host.clone(),
                        port,
                    },
                )
            });
            let Some(replica) = replica else {
                return Err(Error::msg(
                    "FAILOVER target HOST and PORT is not a replica.",
                ));
            };
            if replica.2 != "online" {
                return Err(Error::msg("FAILOVER target replica is not online."));
            }
            eprintln!("FAILOVER requested to {host}:{port}.");
            Some(MasterAddr {
                host,
                port: replica.1,
            })
        }
        None => {
            eprintln!("FAILOVER requested to any replica.");
            None
        }
    };
    st.failover = Some(Failover {
        target,
        end_ms: (request.timeout_ms > 0).then(|| now_ms() + request.timeout_ms),
        force: request.force,
        in_progress: false,
    });
    // Until the failover ends, however long that takes (Redis pauses until LLONG_MAX).
    r.shard
        .shared
        .pause
        .pause(Purpose::Failover, i64::MAX >> 3, Kind::Write);
    glommio::spawn_local(watch(r.clone())).detach();
    Ok(())
}

/// The replica of `replicas` (Master::summary's) at `addr`.
fn find<'a>(
    replicas: &'a [(String, u16, &'static str, i64, u64)],
    addr: &MasterAddr,
) -> Option<&'a (String, u16, &'static str, i64, u64)> {
    replicas
        .iter()
        .find(|r| r.0.eq_ignore_ascii_case(&addr.host) && r.1 == addr.port)
}

/// Waits for a replica to catch up (or the timeout), then starts following it.
async fn watch(r: Rc<Repl>) {
    loop {
        glommio::timer::sleep(CHECK_EVERY).await;
        let Some(f) = r.state.borrow().failover.clone() else {
            return;
        };
        if f.in_progress {
            return;
        }
        if f.end_ms.is_some_and(|end| end <= now_ms()) {
            match (f.force, f.target) {
                (true, Some(target)) => {
                    eprintln!(
                        "FAILOVER to {}:{} time out exceeded, failing over.",
                        target.host, target.port
                    );
                    follow(&r, target).await;
                }
                _ => abort(&r, "Replica never caught up before timeout").await,
            }
            return;
        }
        let Some(m) = master::Master::current() else {
            return;
        };
        let offset = m.offset_after_now().await;
        let replicas = m.summary().replicas;
        let synced = match &f.target {
            Some(target) => find(&replicas, target).filter(|r| r.3 == offset).is_some(),
            None => match replicas.iter().find(|r| r.3 == offset) {
                Some(found) => {
                    let target = MasterAddr {
                        host: found.0.clone(),
                        port: found.1,
                    };
                    if let Some(f) = r.state.borrow_mut().failover.as_mut() {
                        f.target = Some(target);
                    }
                    true
                }
                None => false,
            },
        };
        let target = r
            .state
            .borrow()
            .failover
            .as_ref()
            .and_then(|f| f.target.clone());
        match target {
            Some(target) if synced => {
                eprintln!(
                    "Failover target {}:{} is synced, failing over.",
                    target.host, target.port
                );
                follow(&r, target).await;
                return;
            }
            // Its acknowledgement of what was written before the pause may be on its way:
            // ask for it rather than wait for the next second's.
            _ => m.request_acks(),
        }
    }
}

/// FAILOVER_IN_PROGRESS: this node follows `target`, whose handshake asks it to take over.
async fn follow(r: &Rc<Repl>, target: MasterAddr) {
    if let Some(f) = r.state.borrow_mut().failover.as_mut() {
        f.in_progress = true;
    }
    set_master(r, target).await;
}

/// Whether the handshake's PSYNC must carry FAILOVER.
pub fn psync_asks_failover(r: &Repl) -> bool {
    r.state
        .borrow()
        .failover
        .as_ref()
        .is_some_and(|f| f.in_progress)
}

/// The target answered the PSYNC FAILOVER: with `+CONTINUE` or `+FULLRESYNC` (`accepted`)
/// the failover is done, otherwise it is aborted. Nothing without a failover in progress.
pub async fn psync_answered(r: &Rc<Repl>, accepted: bool) {
    if !psync_asks_failover(r) {
        return;
    }
    if accepted {
        clear(r);
    } else {
        abort(r, "Failover target rejected psync request").await;
    }
}

/// `abortFailover`: a node already following the target becomes a master again.
pub async fn abort(r: &Rc<Repl>, why: &str) {
    let Some(f) = r.state.borrow().failover.clone() else {
        return;
    };
    match &f.target {
        Some(t) => eprintln!("FAILOVER to {}:{} aborted: {why}", t.host, t.port),
        None => eprintln!("FAILOVER to any replica aborted: {why}"),
    }
    if f.in_progress {
        unset_master(r).await;
    }
    clear(r);
}

/// `clearFailoverState`: no failover, writes go on.
fn clear(r: &Repl) {
    r.state.borrow_mut().failover = None;
    r.shard.shared.pause.unpause(Purpose::Failover);
}

/// PSYNC <replid> <offset> FAILOVER reached this replica (`syncCommand`): it becomes a master
/// if it follows the history `replid` names. `client` is the sender's CLIENT LIST line.
pub async fn psync_failover(
    shard: &Rc<Shard>,
    replid: String,
    client: String,
) -> Result<(), Error> {
    on_control(shard, move |r| async move {
        eprintln!("Failover request received for replid {replid}.");
        if r.state.borrow().master.is_none() {
            return Err(Error::msg("PSYNC FAILOVER can't be sent to a master."));
        }
        if r.state.borrow().replid != replid {
            return Err(Error::msg("PSYNC FAILOVER replid must match my replid."));
        }
        unset_master(&r).await;
        eprintln!("MASTER MODE enabled (failover request from '{client}')");
        Ok(())
    })
    .await
}

/// Whether a failover is under way (SYNC/PSYNC and REPLICAOF are refused meanwhile).
pub async fn in_progress(shard: &Rc<Shard>) -> bool {
    on_control(
        shard,
        |r| async move { r.state.borrow().failover.is_some() },
    )
    .await
}
