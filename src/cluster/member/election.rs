//! A replica's part in failovers, as Redis 7.0's `clusterHandleSlaveFailover`: once its master
//! serving slots is FAIL (and its data is recent enough, `cluster-replica-validity-factor`),
//! it waits 500 ms + random(0-500) ms + 1 s per sibling with a greater replication offset,
//! then asks every node for a vote in a new epoch (FAILOVER_AUTH_REQUEST), and with a
//! majority of the slot-serving masters before `max(2 * node_timeout, 2000)` ms takes its
//! master's slots at that epoch, turns its replication into a master's (`Hooks::follow`,
//! which shifts the replication id) and tells everyone with a PONG.
//!
//! Log lines are Redis's own, so a mixed cluster's elections read alike in every log.

use super::Member;
use crate::cluster::bus::{mflag, msg_type, node_flag, Header, Message, NodeName, Payload};
use crate::cluster::state::ClusterState;
use crate::util::time::now_ms;

/// Why a replica whose master failed is not taking over yet (`CLUSTER_CANT_FAILOVER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cant {
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

impl Cant {
    fn message(self) -> &'static str {
        match self {
            Cant::DataAge => "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
            Cant::WaitingDelay => "Waiting the delay before I can start a new failover.",
            Cant::Expired => "Failover attempt expired.",
            Cant::WaitingVotes => "Waiting for votes, but majority still not reached.",
        }
    }
}

/// The same reason is logged again only after this many seconds.
const CANT_RELOG_SECS: i64 = 300;

/// The state of this replica's election (Redis's `failover_auth_*` fields).
#[derive(Default)]
pub struct Election {
    /// When the election may start (unix ms); it started then if `sent`.
    auth_time: i64,
    /// The masters that voted for us in `epoch`, each counted once (Redis counts every ACK;
    /// an honest master sends one per epoch, so only a forged repeat is told apart).
    voters: Vec<NodeName>,
    sent: bool,
    rank: usize,
    epoch: u64,
    cant: Option<Cant>,
    cant_logged: i64,
}

/// Whether a FAILOVER_AUTH_ACK from `voter` counts for our election (its epoch; None: none
/// asked for): from a master serving slots, sent at that epoch or later, as Redis counts them.
fn vote_counts(
    st: &ClusterState,
    voter: &NodeName,
    voter_epoch: u64,
    election: Option<u64>,
) -> bool {
    let Some(epoch) = election else {
        return false;
    };
    let is_master = st.nodes.get(voter).is_some_and(|v| v.is_master());
    is_master && st.slots_of(voter) > 0 && voter_epoch >= epoch
}

impl Member {
    /// This replica's rank among its master's replicas: how many that may fail over have a
    /// greater replication offset (`clusterGetSlaveRank`).
    fn replica_rank(&self) -> usize {
        let st = self.state.borrow();
        let Some(master) = st.me().master else {
            return 0;
        };
        let mine = (self.hooks.repl_offset)();
        st.replicas_of(&master)
            .into_iter()
            .filter(|r| {
                r.name != st.myself && !r.has(node_flag::NOFAILOVER) && r.repl_offset > mine
            })
            .count()
    }

    /// Logs why we cannot fail over, unless it is the same reason as lately or the master
    /// failed only a moment ago (`clusterLogCantFailover`).
    fn log_cant_failover(&self, why: Cant, now: i64) {
        let mut e = self.election.borrow_mut();
        if e.cant == Some(why) && now / 1000 - e.cant_logged < CANT_RELOG_SECS {
            return;
        }
        e.cant = Some(why);
        let quiet_for = self.cfg.borrow().node_timeout + 5000;
        let st = self.state.borrow();
        let recent = st
            .me()
            .master
            .and_then(|m| st.nodes.get(&m))
            .is_some_and(|m| m.has(node_flag::FAIL) && now - m.fail_time < quiet_for);
        if recent {
            return;
        }
        e.cant_logged = now / 1000;
        eprintln!("Currently unable to failover: {}", why.message());
    }

    /// One step of the election, every cron tick and on every vote received.
    pub(super) fn replica_failover(&self, now: i64) {
        let (node_timeout, no_failover) = {
            let cfg = self.cfg.borrow();
            (cfg.node_timeout, cfg.replica_no_failover)
        };
        let quorum = {
            let st = self.state.borrow();
            let me = st.me();
            let master = me.master.and_then(|m| st.nodes.get(&m));
            let serving = master.is_some_and(|m| st.slots_of(&m.name) > 0);
            let failed = master.is_some_and(|m| m.has(node_flag::FAIL));
            let manual = self.mf_end.get() != 0 && self.mf_can_start.get();
            if me.is_master() || !serving || (!failed && !manual) || (no_failover && !manual) {
                drop(st);
                self.election.borrow_mut().cant = None;
                return;
            }
            st.masters_with_slots().len() / 2 + 1
        };
        let auth_timeout = (node_timeout * 2).max(2000);
        let retry = auth_timeout * 2;
        let (validity, ping_period) = {
            let c = self.shard.shared.config();
            (
                c.get_i64("cluster-replica-validity-factor"),
                c.get_i64("repl-ping-replica-period"),
            )
        };
        let mut data_age = (self.hooks.data_age)();
        if data_age > node_timeout {
            data_age -= node_timeout;
        }
        let manual_start = self.mf_end.get() != 0 && self.mf_can_start.get();
        if validity > 0 && data_age > ping_period * 1000 + node_timeout * validity && !manual_start
        {
            self.log_cant_failover(Cant::DataAge, now);
            return;
        }
        // A manual failover under way (started or not) skips the delays and forces votes.
        let manual = self.mf_end.get() != 0;
        let auth_age = now - self.election.borrow().auth_time;
        if auth_age > retry {
            // A manual failover starts at once, at rank 0.
            let rank = if manual { 0 } else { self.replica_rank() };
            let delay = if manual {
                0
            } else {
                500 + (self.next_random() % 500) as i64 + rank as i64 * 1000
            };
            {
                let mut e = self.election.borrow_mut();
                e.auth_time = now + delay;
                e.voters.clear();
                e.sent = false;
                e.rank = rank;
            }
            eprintln!(
                "Start of election delayed for {delay} milliseconds (rank #{rank}, offset {}).",
                (self.hooks.repl_offset)()
            );
            // Our siblings learn our offset now, to rank themselves against it.
            self.pong_siblings();
            if !manual {
                return;
            }
        }
        if !self.election.borrow().sent && !manual {
            let rank = self.replica_rank();
            let mut e = self.election.borrow_mut();
            if rank > e.rank {
                let added = (rank - e.rank) as i64 * 1000;
                e.auth_time += added;
                e.rank = rank;
                eprintln!("Replica rank updated to #{rank}, added {added} milliseconds of delay.");
            }
        }
        if now < self.election.borrow().auth_time {
            self.log_cant_failover(Cant::WaitingDelay, now);
            return;
        }
        if auth_age > auth_timeout {
            self.log_cant_failover(Cant::Expired, now);
            return;
        }
        if !self.election.borrow().sent {
            let epoch = {
                let mut st = self.state.borrow_mut();
                st.current_epoch += 1;
                st.current_epoch
            };
            {
                let mut e = self.election.borrow_mut();
                e.epoch = epoch;
                e.sent = true;
            }
            eprintln!("Starting a failover election for epoch {epoch}.");
            let mut header = self.header(msg_type::FAILOVER_AUTH_REQUEST);
            if manual {
                // Voters grant it although our master is up.
                header.mflags[0] |= mflag::FORCEACK;
            }
            let request = Message::new(header, Payload::FailoverAuthRequest);
            self.broadcast(&request);
            // The new current epoch is made durable with the next save (fsynced: epochs
            // changed).
            self.mark_changed();
            return;
        }
        if self.election.borrow().voters.len() >= quorum {
            self.win_election();
        } else {
            self.log_cant_failover(Cant::WaitingVotes, now);
        }
    }

    /// FAILOVER_AUTH_ACK: a vote counts if it comes from a master serving slots, in our
    /// election's epoch or later, once per master.
    pub(super) fn on_auth_ack(&self, sender: &NodeName, h: &Header) {
        let election = {
            let e = self.election.borrow();
            e.sent.then_some(e.epoch)
        };
        if vote_counts(&self.state.borrow(), sender, h.current_epoch, election) {
            let mut e = self.election.borrow_mut();
            if e.voters.contains(sender) {
                return;
            }
            e.voters.push(*sender);
            drop(e);
            self.replica_failover(now_ms());
        }
    }

    /// The election is won: our config epoch becomes the election's, we take our master's
    /// slots and become a master (`clusterFailoverReplaceYourMaster`).
    fn win_election(&self) {
        eprintln!("Failover election won: I'm the new master.");
        let epoch = self.election.borrow().epoch;
        {
            let mut st = self.state.borrow_mut();
            if st.me().config_epoch < epoch {
                st.me_mut().config_epoch = epoch;
                eprintln!("configEpoch set to {epoch} after successful failover");
            }
        }
        self.take_over_from_master();
    }

    /// We replace our master: its slots become ours, our replication a master's, and every
    /// node hears it (`clusterFailoverReplaceYourMaster`).
    pub(super) fn take_over_from_master(&self) {
        {
            let mut st = self.state.borrow_mut();
            let Some(old) = st.me().master else { return };
            let myself = st.myself;
            let me = st.me_mut();
            me.flags &= !node_flag::SLAVE;
            me.flags |= node_flag::MASTER;
            me.master = None;
            for owner in st.slots.iter_mut() {
                if *owner == Some(old) {
                    *owner = Some(myself);
                }
            }
            let full = self.cfg.borrow().require_full_coverage;
            st.update_state(full);
        }
        // Replication becomes a master's before the new slot map lets writes in.
        (self.hooks.follow)(None);
        self.mark_changed();
        if let Err(e) = self.save(true) {
            eprintln!("Failed to save the cluster configuration after a failover: {e}");
        }
        self.broadcast_pong();
        self.reset_manual_failover();
        *self.election.borrow_mut() = Election::default();
    }

    /// A PONG to the other replicas of our master (`CLUSTER_BROADCAST_LOCAL_SLAVES`).
    fn pong_siblings(&self) {
        let siblings: Vec<NodeName> = {
            let st = self.state.borrow();
            let Some(master) = st.me().master else { return };
            st.replicas_of(&master)
                .into_iter()
                .map(|r| r.name)
                .filter(|n| *n != st.myself)
                .collect()
        };
        let links: Vec<_> = siblings
            .iter()
            .filter_map(|n| self.links.borrow().get(n).cloned())
            .collect();
        for link in links {
            let msg = self.ping_message(msg_type::PONG, *link.node.borrow());
            self.send(&link, &msg);
        }
    }
}

/// A master must stay orphaned this long before a replica migrates to it, in ms
/// (`CLUSTER_SLAVE_MIGRATION_DELAY`): its own replicas may be switching to a new master.
const MIGRATION_DELAY: i64 = 5000;

impl Member {
    /// Replica migration (`clusterHandleSlaveMigration` and the cron's orphan census): a
    /// replica of a master with the most working replicas (at least two, and more than
    /// `cluster-migration-barrier`), if it has the smallest id among them, moves to a master
    /// serving slots that had replicas and has none working left, once it stayed so for
    /// `MIGRATION_DELAY`.
    pub(super) fn replica_migration(&self, now: i64) {
        if !self.cfg.borrow().allow_replica_migration {
            return;
        }
        let barrier = self
            .shard
            .shared
            .config()
            .get_i64("cluster-migration-barrier")
            .max(0) as usize;
        let target = {
            let mut st = self.state.borrow_mut();
            let me = st.me();
            let Some(my_master) = me.master.filter(|_| !me.is_master()) else {
                return;
            };
            let working = |st: &ClusterState, m: &NodeName, strict: bool| {
                st.replicas_of(m)
                    .into_iter()
                    .filter(|r| !(r.has(node_flag::FAIL) || strict && r.has(node_flag::PFAIL)))
                    .count()
            };
            let (mut orphaned, mut max_replicas, mut mine) = (0, 0, 0);
            for n in st.nodes.values() {
                if n.has(node_flag::MYSELF | node_flag::NOADDR | node_flag::HANDSHAKE)
                    || !n.is_master()
                    || n.has(node_flag::FAIL)
                {
                    continue;
                }
                let ok = working(&st, &n.name, false);
                if ok == 0 && st.slots_of(&n.name) > 0 && n.has(node_flag::MIGRATE_TO) {
                    orphaned += 1;
                }
                max_replicas = max_replicas.max(ok);
                if n.name == my_master {
                    mine = ok;
                }
            }
            if orphaned == 0 || max_replicas < 2 || mine != max_replicas || !st.ok {
                return;
            }
            if working(&st, &my_master, true) <= barrier {
                return;
            }
            let mut candidate = st.myself;
            let mut target = None;
            let names: Vec<NodeName> = st.nodes.keys().copied().collect();
            for name in names {
                let n = &st.nodes[&name];
                let ok = if n.is_master() {
                    working(&st, &name, false)
                } else {
                    0
                };
                let is_orphaned = n.is_master()
                    && !n.has(node_flag::FAIL)
                    && n.has(node_flag::MIGRATE_TO)
                    && ok == 0;
                if ok == max_replicas {
                    for r in st.replicas_of(&name) {
                        if r.name.as_bytes() < candidate.as_bytes() {
                            candidate = r.name;
                        }
                    }
                }
                let serves = st.slots_of(&name) > 0;
                let n = st.nodes.get_mut(&name).expect("listed");
                if is_orphaned {
                    if target.is_none() && serves {
                        target = Some(name);
                    }
                    if n.orphaned_time == 0 {
                        n.orphaned_time = now;
                    }
                } else {
                    n.orphaned_time = 0;
                }
            }
            let target = target.filter(|t| now - st.nodes[t].orphaned_time > MIGRATION_DELAY);
            match target {
                Some(t) if candidate == st.myself => t,
                _ => return,
            }
        };
        eprintln!("Migrating to orphaned master {target}");
        self.state.borrow_mut().set_my_master(target);
        self.mark_changed();
        self.follow_master();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::Node;

    fn name(c: u8) -> NodeName {
        NodeName([c; 40])
    }

    #[test]
    fn only_slot_serving_masters_at_our_epoch_count() {
        let (me, voter, replica, empty) = (name(b'a'), name(b'b'), name(b'c'), name(b'd'));
        let mut st = ClusterState::new(me, "127.0.0.1", 7000, 17000);
        st.nodes.insert(voter, Node::new(voter, node_flag::MASTER));
        st.nodes.insert(empty, Node::new(empty, node_flag::MASTER));
        let mut r = Node::new(replica, node_flag::SLAVE);
        r.master = Some(voter);
        st.nodes.insert(replica, r);
        st.slots[0] = Some(voter);
        assert!(vote_counts(&st, &voter, 5, Some(5)));
        assert!(vote_counts(&st, &voter, 6, Some(5)));
        // An older epoch, no election of ours, a replica, a master without slots, a stranger.
        assert!(!vote_counts(&st, &voter, 4, Some(5)));
        assert!(!vote_counts(&st, &voter, 5, None));
        assert!(!vote_counts(&st, &replica, 5, Some(5)));
        assert!(!vote_counts(&st, &empty, 5, Some(5)));
        assert!(!vote_counts(&st, &name(b'z'), 5, Some(5)));
    }
}
