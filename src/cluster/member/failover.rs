//! A master's part in failovers, as Redis 7.0's cluster.c: voting for a replica that asks to
//! replace its master (FAILOVER_AUTH_REQUEST, `clusterSendFailoverAuthIfNeeded`), and pausing
//! writes when one of our replicas starts a manual failover (MFSTART, `mf_end`).
//!
//! Log lines are Redis's own ("Failover auth granted to <id> for epoch <n>", "Failover auth
//! denied to <id>: <reason>", "Manual failover requested by replica <id>.", "Manual failover
//! timed out."), so a mixed cluster is debugged from either kind of log alike.

use std::fmt;
use std::rc::Rc;

use super::{Link, Member};
use crate::cluster::bus::{mflag, msg_type, Header, Message, NodeName, Payload, SlotBitmap};
use crate::cluster::state::ClusterState;
use crate::shard::pause::{Kind, Purpose};
use crate::slot::SLOTS;
use crate::util::time::now_ms;

/// How long a manual failover may take, in ms (`CLUSTER_MF_TIMEOUT`).
pub const MF_TIMEOUT: i64 = 5000;
/// A master pauses writes for this many manual failover timeouts (`CLUSTER_MF_PAUSE_MULT`);
/// the failover itself is given up after one timeout, which ends the pause too.
pub const MF_PAUSE_MULT: i64 = 2;

/// Why a vote is refused: each renders as the reason Redis logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// We are a replica, or a master without slots: no vote at all, and no log (as Redis).
    NotAVoter,
    OldEpoch {
        request: u64,
        current: u64,
    },
    AlreadyVoted(u64),
    IsMaster,
    UnknownMaster,
    MasterUp,
    /// Milliseconds until we may vote for a replica of that master again.
    TooSoon(i64),
    /// A claimed slot is served at a newer config epoch than the request's.
    NewerSlotOwner {
        slot: u16,
        epoch: u64,
        request: u64,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NotAVoter => f.write_str("I am not a master serving slots"),
            Denial::OldEpoch { request, current } => {
                write!(f, "reqEpoch ({request}) < curEpoch({current})")
            }
            Denial::AlreadyVoted(e) => write!(f, "already voted for epoch {e}"),
            Denial::IsMaster => f.write_str("it is a master node"),
            Denial::UnknownMaster => f.write_str("I don't know its master"),
            Denial::MasterUp => f.write_str("its master is up"),
            Denial::TooSoon(ms) => {
                write!(f, "can't vote about this master before {ms} milliseconds")
            }
            Denial::NewerSlotOwner {
                slot,
                epoch,
                request,
            } => write!(f, "slot {slot} epoch ({epoch}) > reqEpoch ({request})"),
        }
    }
}

/// Redis's rules for granting a vote to `requester` (`clusterSendFailoverAuthIfNeeded`), in
/// its order. `st.current_epoch` has already been raised to the request's if that was newer.
/// Ok: the master of the requester, whose `voted_time` the vote sets.
pub fn vote_verdict(
    st: &ClusterState,
    requester: &NodeName,
    req: &Header,
    now: i64,
    node_timeout: i64,
) -> Result<NodeName, Denial> {
    let me = st.me();
    if !me.is_master() || st.slots_of(&st.myself) == 0 {
        return Err(Denial::NotAVoter);
    }
    if req.current_epoch < st.current_epoch {
        return Err(Denial::OldEpoch {
            request: req.current_epoch,
            current: st.current_epoch,
        });
    }
    if st.last_vote_epoch == st.current_epoch {
        return Err(Denial::AlreadyVoted(st.current_epoch));
    }
    let node = st.nodes.get(requester).ok_or(Denial::UnknownMaster)?;
    if node.is_master() {
        return Err(Denial::IsMaster);
    }
    let master = node
        .master
        .and_then(|m| st.nodes.get(&m))
        .ok_or(Denial::UnknownMaster)?;
    let force_ack = req.mflags[0] & mflag::FORCEACK != 0;
    if !master.has(crate::cluster::bus::node_flag::FAIL) && !force_ack {
        return Err(Denial::MasterUp);
    }
    let since = now - master.voted_time;
    if since < node_timeout * 2 {
        return Err(Denial::TooSoon(node_timeout * 2 - since));
    }
    if let Some((slot, epoch)) = newer_claim(st, &req.myslots, req.config_epoch) {
        return Err(Denial::NewerSlotOwner {
            slot,
            epoch,
            request: req.config_epoch,
        });
    }
    Ok(master.name)
}

/// The first slot of `claimed` whose current owner has a config epoch above `epoch`.
fn newer_claim(st: &ClusterState, claimed: &SlotBitmap, epoch: u64) -> Option<(u16, u64)> {
    (0..SLOTS as u16).find_map(|s| {
        if !claimed.get(s) {
            return None;
        }
        let owner = st.slots[s as usize]?;
        let e = st.nodes.get(&owner)?.config_epoch;
        (e > epoch).then_some((s, e))
    })
}

impl Member {
    /// FAILOVER_AUTH_REQUEST from a known node: vote if Redis's rules allow. The vote is on
    /// disk (nodes.conf, fsynced) before the ACK leaves, so a restart never votes twice in an
    /// epoch.
    pub(super) fn on_auth_request(&self, requester: &NodeName, req: &Header) {
        let now = now_ms();
        let node_timeout = self.cfg.borrow().node_timeout;
        let verdict = vote_verdict(&self.state.borrow(), requester, req, now, node_timeout);
        let master = match verdict {
            Ok(m) => m,
            Err(Denial::NotAVoter) => return,
            Err(why) => {
                eprintln!("Failover auth denied to {requester}: {why}");
                return;
            }
        };
        let epoch = {
            let mut st = self.state.borrow_mut();
            st.last_vote_epoch = st.current_epoch;
            if let Some(m) = st.nodes.get_mut(&master) {
                m.voted_time = now;
            }
            st.current_epoch
        };
        // Redis exits when it cannot save here; we keep serving but send no vote we could
        // not make durable (lastVoteEpoch stays set in memory: no second vote this epoch).
        if let Err(e) = self.save(true) {
            eprintln!(
                "Failover auth not sent to {requester} for epoch {epoch}: can't save the cluster config file: {e}"
            );
            return;
        }
        let link = self.links.borrow().get(requester).cloned();
        if let Some(link) = link {
            let ack = Message::new(
                self.header(msg_type::FAILOVER_AUTH_ACK),
                Payload::FailoverAuthAck,
            );
            self.send(&link, &ack);
        }
        eprintln!("Failover auth granted to {requester} for epoch {epoch}");
    }

    /// MFSTART: one of our replicas starts a manual failover. We pause writes on every shard,
    /// flag our messages PAUSED (with our replication offset) and ping that replica at once
    /// on the link the request came on, then every cron tick, until the failover ends or
    /// times out. From anyone else it is ignored, as in Redis.
    pub(super) fn on_mfstart(self: &Rc<Self>, link: &Rc<Link>, sender: &NodeName) {
        let mine = {
            let st = self.state.borrow();
            st.nodes
                .get(sender)
                .is_some_and(|n| n.master == Some(st.myself))
        };
        if !mine {
            return;
        }
        self.reset_manual_failover();
        self.release_paused_clients();
        let now = now_ms();
        self.mf_end.set(now + MF_TIMEOUT);
        self.mf_slave.set(Some(*sender));
        self.shard.shared.pause.pause(
            Purpose::Failover,
            now + MF_TIMEOUT * MF_PAUSE_MULT,
            Kind::Write,
        );
        eprintln!("Manual failover requested by replica {sender}.");
        // Our offset is announced (PAUSED) once the writes that passed the gate before the
        // pause are done everywhere and in the stream: two round trips to every core finish
        // the commands running there, `settled_offset` waits for the stream.
        let me = self.clone();
        let (link, sender) = (link.clone(), *sender);
        glommio::spawn_local(async move {
            for _ in 0..2 {
                me.shard.call_all(|_| ()).await;
            }
            let offset = (me.hooks.settled_offset)().await;
            if me.mf_slave.get() == Some(sender) && me.mf_end.get() != 0 {
                me.mf_offset.set(Some(offset));
                me.send_ping(&link, msg_type::PING);
            }
        })
        .detach();
    }

    /// Ends a manual failover (timed out, done, or moot) and, once the change that ended it
    /// is published (`release_paused_clients`), the pause it started (`resetManualFailover`).
    pub(super) fn reset_manual_failover(&self) {
        if self.mf_slave.take().is_some() {
            self.mf_unpause.set(true);
        }
        self.mf_end.set(0);
        self.mf_offset.set(None);
        self.mf_can_start.set(false);
        self.mf_master_offset.set(-1);
    }

    /// CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica, with Redis's checks and words: by
    /// default the master pauses and tells its offset (MFSTART), which we reach before the
    /// election; FORCE elects at once; TAKEOVER takes the slots without an election, at a
    /// new epoch of our own.
    pub fn manual_failover(&self, force: bool, takeover: bool) -> Result<(), String> {
        let link = {
            let st = self.state.borrow();
            let me = st.me();
            if me.is_master() {
                return Err("You should send CLUSTER FAILOVER to a replica".into());
            }
            let Some(master) = me.master.and_then(|m| st.nodes.get(&m)) else {
                return Err("I'm a replica but my master is unknown to me".into());
            };
            let link = self.links.borrow().get(&master.name).cloned();
            if !force && (master.has(crate::cluster::bus::node_flag::FAIL) || link.is_none()) {
                return Err("Master is down or failed, please use CLUSTER FAILOVER FORCE".into());
            }
            link
        };
        self.reset_manual_failover();
        self.mf_end.set(now_ms() + MF_TIMEOUT);
        if takeover {
            eprintln!("Taking over the master (user request).");
            self.state.borrow_mut().bump_epoch_without_consensus();
            self.take_over_from_master();
        } else if force {
            eprintln!("Forced failover user request accepted.");
            self.mf_can_start.set(true);
        } else {
            eprintln!("Manual failover user request accepted.");
            if let Some(link) = link {
                let msg = Message::new(self.header(msg_type::MFSTART), Payload::MfStart);
                self.send(&link, &msg);
            }
        }
        Ok(())
    }

    /// As a replica in a manual failover: the election may start once we applied our
    /// paused master's stream up to the offset it announced (`clusterHandleManualFailover`).
    pub(super) fn replica_manual_failover(&self) {
        if self.mf_end.get() == 0 || self.mf_can_start.get() || self.mf_master_offset.get() == -1 {
            return;
        }
        if self.mf_master_offset.get() == (self.hooks.repl_offset)() {
            self.mf_can_start.set(true);
            eprintln!("All master replication stream processed, manual failover can start.");
        }
    }

    /// Ends the pause of a manual failover that ended. Called after the new slot map is
    /// published (`after_change`): a held write must be routed by the map that ended the
    /// failover (MOVED to the replica that took our slots), never by the one before.
    pub(super) fn release_paused_clients(&self) {
        if self.mf_unpause.replace(false) {
            self.shard.shared.pause.unpause(Purpose::Failover);
        }
    }

    /// Cron: give up a manual failover past its end, else keep pinging its replica so it
    /// learns our paused offset (`manualFailoverCheckTimeout` and the cron's MF ping).
    pub(super) fn manual_failover_cron(&self, now: i64) {
        let end = self.mf_end.get();
        if end == 0 {
            return;
        }
        if end < now {
            eprintln!("Manual failover timed out.");
            self.reset_manual_failover();
            return;
        }
        self.replica_manual_failover();
        let Some(replica) = self.mf_slave.get() else {
            return;
        };
        if !self.state.borrow().me().is_master() {
            return;
        }
        let link = self.links.borrow().get(&replica).cloned();
        if let Some(link) = link {
            self.send_ping(&link, msg_type::PING);
        }
    }

    /// Whether our headers carry PAUSED: a master with a manual failover under way.
    pub(super) fn mf_paused(&self) -> bool {
        self.mf_end.get() != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::bus::node_flag;
    use crate::cluster::state::Node;

    fn name(c: u8) -> NodeName {
        NodeName([c; 40])
    }

    /// Myself `a`, a master serving 0-99 at config epoch 3; `m` a master serving 100-199 at
    /// epoch 2, FAIL; `r` its replica; `z` another master serving 200 at epoch 9.
    fn cluster() -> ClusterState {
        let mut st = ClusterState::new(name(b'a'), "127.0.0.1", 7000, 17000);
        st.add_slots(&(0..100).collect::<Vec<u16>>()).unwrap();
        st.me_mut().config_epoch = 3;
        let mut m = Node::new(name(b'm'), node_flag::MASTER | node_flag::FAIL);
        m.config_epoch = 2;
        st.nodes.insert(m.name, m);
        let mut r = Node::new(name(b'r'), node_flag::SLAVE);
        r.master = Some(name(b'm'));
        st.nodes.insert(r.name, r);
        let mut z = Node::new(name(b'z'), node_flag::MASTER);
        z.config_epoch = 9;
        st.nodes.insert(z.name, z);
        for s in 100..200 {
            st.slots[s] = Some(name(b'm'));
        }
        st.slots[200] = Some(name(b'z'));
        st.current_epoch = 10;
        st.last_vote_epoch = 4;
        st
    }

    /// `r`'s request at epoch 10 for its master's slots 100-199 at config epoch 2.
    fn request() -> Header {
        let mut myslots = SlotBitmap::EMPTY;
        for s in 100..200 {
            myslots.set(s, true);
        }
        Header {
            current_epoch: 10,
            config_epoch: 2,
            sender: name(b'r'),
            replicaof: name(b'm'),
            myslots,
            ..Header::default()
        }
    }

    #[test]
    fn grants_a_replica_of_a_failed_master() {
        let st = cluster();
        assert_eq!(
            vote_verdict(&st, &name(b'r'), &request(), 1_000_000, 2000),
            Ok(name(b'm'))
        );
    }

    #[test]
    fn each_rule_refuses_with_redis_words() {
        let now = 1_000_000;
        let deny = |st: &ClusterState, who: u8, req: &Header| {
            let e = vote_verdict(st, &name(who), req, now, 2000).unwrap_err();
            (e.clone(), e.to_string())
        };
        // An older epoch.
        let mut req = request();
        req.current_epoch = 9;
        assert_eq!(
            deny(&cluster(), b'r', &req).1,
            "reqEpoch (9) < curEpoch(10)"
        );
        // Already voted in this epoch.
        let mut st = cluster();
        st.last_vote_epoch = 10;
        assert_eq!(deny(&st, b'r', &request()).1, "already voted for epoch 10");
        // A master asks.
        assert_eq!(deny(&cluster(), b'z', &request()).1, "it is a master node");
        // A replica of a master we do not know.
        let mut st = cluster();
        st.nodes.get_mut(&name(b'r')).unwrap().master = Some(name(b'q'));
        assert_eq!(deny(&st, b'r', &request()).1, "I don't know its master");
        // Its master is up (PFAIL is not enough), unless FORCEACK.
        let mut st = cluster();
        st.nodes.get_mut(&name(b'm')).unwrap().flags = node_flag::MASTER | node_flag::PFAIL;
        assert_eq!(deny(&st, b'r', &request()).1, "its master is up");
        let mut forced = request();
        forced.mflags[0] |= mflag::FORCEACK;
        assert_eq!(
            vote_verdict(&st, &name(b'r'), &forced, now, 2000),
            Ok(name(b'm'))
        );
        // Voted for a replica of that master 1.5 s ago, node timeout 2 s.
        let mut st = cluster();
        st.nodes.get_mut(&name(b'm')).unwrap().voted_time = now - 1500;
        assert_eq!(
            deny(&st, b'r', &request()).1,
            "can't vote about this master before 2500 milliseconds"
        );
        // A claimed slot is served at a newer config epoch.
        let mut req = request();
        req.myslots.set(200, true);
        assert_eq!(
            deny(&cluster(), b'r', &req).0,
            Denial::NewerSlotOwner {
                slot: 200,
                epoch: 9,
                request: 2
            }
        );
        assert_eq!(
            deny(&cluster(), b'r', &req).1,
            "slot 200 epoch (9) > reqEpoch (2)"
        );
        // Our own slots count too (epoch 3 > 2); an unassigned slot does not.
        let mut req = request();
        req.myslots.set(5, true);
        assert_eq!(
            deny(&cluster(), b'r', &req).1,
            "slot 5 epoch (3) > reqEpoch (2)"
        );
        let mut req = request();
        req.myslots.set(300, true);
        assert!(vote_verdict(&cluster(), &name(b'r'), &req, now, 2000).is_ok());
    }

    #[test]
    fn only_a_master_with_slots_votes() {
        let mut st = cluster();
        st.del_slots(&(0..100).collect::<Vec<u16>>()).unwrap();
        assert_eq!(
            vote_verdict(&st, &name(b'r'), &request(), 1_000_000, 2000),
            Err(Denial::NotAVoter)
        );
        let mut st = cluster();
        let me = st.me_mut();
        me.flags = node_flag::MYSELF | node_flag::SLAVE;
        me.master = Some(name(b'z'));
        assert_eq!(
            vote_verdict(&st, &name(b'r'), &request(), 1_000_000, 2000),
            Err(Denial::NotAVoter)
        );
    }
}
