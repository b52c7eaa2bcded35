//! The cluster as this node sees it: the node table, epochs, slot owners and open
//! (migrating / importing) slots, with the CLUSTER NODES and CLUSTER INFO renderings.
//! Pure data and rules, no I/O: the control core drives it, `nodes_conf` persists it.

use std::collections::BTreeMap;

use super::bus::{node_flag, NodeName};
use crate::slot::SLOTS;

/// One known node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: NodeName,
    /// `node_flag::*` bits.
    pub flags: u16,
    /// The master of a replica.
    pub master: Option<NodeName>,
    /// Empty until learnt (a node met by address knows it; others learn it from the bus).
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
    /// Unix ms of the ping in flight to this node, 0 if none.
    pub ping_sent: i64,
    /// Unix ms of the last pong from this node.
    pub pong_received: i64,
    pub config_epoch: u64,
    /// Whether we hold an outbound link to it (CLUSTER NODES' link-state; myself counts).
    pub link_connected: bool,
    /// Unix ms when it was marked FAIL.
    pub fail_time: i64,
    /// Masters that reported it PFAIL/FAIL, with the time of their latest report.
    pub fail_reports: Vec<(NodeName, i64)>,
    /// Unix ms when this node entered our table (handshakes time out from it).
    pub ctime: i64,
    /// Unix ms of the last message received from it on any link.
    pub data_received: i64,
    /// For a master: unix ms when we last voted for one of its replicas (not persisted, as
    /// in Redis).
    pub voted_time: i64,
    /// The replication offset its last header carried (ours: see `Member::offset_of`).
    pub repl_offset: i64,
    /// Unix ms since when this master is orphaned (no working replica left), 0 if it is not.
    pub orphaned_time: i64,
}

impl Node {
    pub fn new(name: NodeName, flags: u16) -> Node {
        Node {
            name,
            flags,
            master: None,
            ip: String::new(),
            port: 0,
            cport: 0,
            hostname: String::new(),
            ping_sent: 0,
            pong_received: 0,
            config_epoch: 0,
            link_connected: false,
            fail_time: 0,
            fail_reports: Vec::new(),
            ctime: 0,
            data_received: 0,
            voted_time: 0,
            repl_offset: 0,
            orphaned_time: 0,
        }
    }

    #[inline]
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn is_master(&self) -> bool {
        self.has(node_flag::MASTER)
    }
}

/// A slot's migration state on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenSlot {
    Migrating(NodeName),
    Importing(NodeName),
}

/// Why a CLUSTER command that changes slots was refused (the text follows `ERR `).
pub type StateError = String;

#[derive(Clone, Debug)]
pub struct ClusterState {
    pub myself: NodeName,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub nodes: BTreeMap<NodeName, Node>,
    /// Owner of each slot.
    pub slots: Vec<Option<NodeName>>,
    pub migrating: BTreeMap<u16, NodeName>,
    pub importing: BTreeMap<u16, NodeName>,
    /// `cluster_state:ok`.
    pub ok: bool,
}

impl ClusterState {
    /// A fresh cluster of one node: `myself`, a master without slots.
    pub fn new(myself: NodeName, ip: &str, port: u16, cport: u16) -> ClusterState {
        let mut me = Node::new(myself, node_flag::MYSELF | node_flag::MASTER);
        me.ip = ip.to_string();
        me.port = port;
        me.cport = cport;
        me.link_connected = true;
        let mut nodes = BTreeMap::new();
        nodes.insert(myself, me);
        ClusterState {
            myself,
            current_epoch: 0,
            last_vote_epoch: 0,
            nodes,
            slots: vec![None; SLOTS],
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            ok: false,
        }
    }

    pub fn me(&self) -> &Node {
        &self.nodes[&self.myself]
    }

    pub fn me_mut(&mut self) -> &mut Node {
        self.nodes
            .get_mut(&self.myself)
            .expect("myself is always in the node table")
    }

    /// Slots owned by `node`.
    pub fn slots_of(&self, node: &NodeName) -> usize {
        self.slots
            .iter()
            .filter(|o| o.as_ref() == Some(node))
            .count()
    }

    /// CLUSTER ADDSLOTS: every slot must be free; all or nothing.
    pub fn add_slots(&mut self, slots: &[u16]) -> Result<(), StateError> {
        check_distinct(slots)?;
        if let Some(&s) = slots.iter().find(|&&s| self.slots[s as usize].is_some()) {
            return Err(format!("Slot {s} is already busy"));
        }
        let had_slots = self.slots_of(&self.myself) > 0;
        for &s in slots {
            // Redis drops an importing mark on a slot it claims.
            self.importing.remove(&s);
            self.slots[s as usize] = Some(self.myself);
        }
        self.note_gained_slots(self.myself, had_slots);
        Ok(())
    }

    /// After `owner` was given slots (`had_slots`: whether it served any before): a master's
    /// first slot makes it a replica-migration target while some master has replicas, as
    /// Redis's `clusterNodeSetSlotBit` does (redis#3043), so that a new master can receive a
    /// spare replica although it never had one.
    pub fn note_gained_slots(&mut self, owner: NodeName, had_slots: bool) {
        if had_slots || self.slots_of(&owner) == 0 {
            return;
        }
        let masters_have_replicas = self.nodes.values().any(|n| {
            n.master
                .is_some_and(|m| self.nodes.get(&m).is_some_and(|m| m.is_master()))
        });
        if let Some(n) = self.nodes.get_mut(&owner).filter(|_| masters_have_replicas) {
            n.flags |= node_flag::MIGRATE_TO;
        }
    }

    /// CLUSTER DELSLOTS: every slot must be assigned (to any node); all or nothing.
    pub fn del_slots(&mut self, slots: &[u16]) -> Result<(), StateError> {
        check_distinct(slots)?;
        if let Some(&s) = slots.iter().find(|&&s| self.slots[s as usize].is_none()) {
            return Err(format!("Slot {s} is already unassigned"));
        }
        for &s in slots {
            self.slots[s as usize] = None;
            self.importing.remove(&s);
            self.migrating.remove(&s);
        }
        Ok(())
    }

    /// Recomputes `ok`: every slot served by a node not FAIL (if `full_coverage`), and this
    /// node not cut off from the majority of masters is left to the failure detector.
    pub fn update_state(&mut self, full_coverage: bool) {
        let uncovered = self.slots.iter().any(|owner| match owner {
            None => true,
            Some(n) => self.nodes.get(n).is_none_or(|n| n.has(node_flag::FAIL)),
        });
        self.ok = !(full_coverage && uncovered);
    }

    /// The `CLUSTER NODES` line of `node`, without the newline.
    pub fn node_line(&self, node: &Node) -> String {
        self.node_line_with(node, &self.slot_ranges())
    }

    /// `node_line` with the slot ranges (`slot_ranges`) computed once for all lines.
    pub fn node_line_with(&self, node: &Node, ranges: &[(u16, u16, NodeName)]) -> String {
        let mut line = String::with_capacity(128);
        line.push_str(&node.name.to_string());
        line.push(' ');
        line.push_str(&format!("{}:{}@{}", node.ip, node.port, node.cport));
        if !node.hostname.is_empty() {
            line.push(',');
            line.push_str(&node.hostname);
        }
        line.push(' ');
        line.push_str(&node_flag::to_names(node.flags));
        line.push(' ');
        match &node.master {
            Some(m) => line.push_str(&m.to_string()),
            None => line.push('-'),
        }
        // A replica shows its master's config epoch, as Redis does.
        let epoch = node
            .master
            .and_then(|m| self.nodes.get(&m))
            .map_or(node.config_epoch, |m| m.config_epoch);
        let link = if node.link_connected || node.name == self.myself {
            "connected"
        } else {
            "disconnected"
        };
        line.push_str(&format!(
            " {} {} {} {}",
            node.ping_sent, node.pong_received, epoch, link
        ));
        for &(start, end, _) in ranges.iter().filter(|(_, _, o)| *o == node.name) {
            if start == end {
                line.push_str(&format!(" {start}"));
            } else {
                line.push_str(&format!(" {start}-{end}"));
            }
        }
        if node.name == self.myself {
            for s in self.open_slots() {
                match s {
                    (slot, OpenSlot::Migrating(to)) => line.push_str(&format!(" [{slot}->-{to}]")),
                    (slot, OpenSlot::Importing(from)) => {
                        line.push_str(&format!(" [{slot}-<-{from}]"))
                    }
                }
            }
        }
        line
    }

    /// The open slots in slot order; a slot both migrating and importing shows as migrating.
    pub fn open_slots(&self) -> Vec<(u16, OpenSlot)> {
        let mut open: BTreeMap<u16, OpenSlot> = self
            .importing
            .iter()
            .map(|(&s, &n)| (s, OpenSlot::Importing(n)))
            .collect();
        for (&s, &n) in &self.migrating {
            open.insert(s, OpenSlot::Migrating(n));
        }
        open.into_iter().collect()
    }

    /// `CLUSTER NODES`: one line per node, each ending in `\n`.
    pub fn nodes_text(&self) -> String {
        let mut out = String::new();
        let ranges = self.slot_ranges();
        for node in self.nodes.values() {
            out.push_str(&self.node_line_with(node, &ranges));
            out.push('\n');
        }
        out
    }

    /// Maximal runs of consecutive slots owned by `node`, as inclusive (start, end).
    pub fn runs_of(&self, node: &NodeName) -> Vec<(u16, u16)> {
        let mut runs = Vec::new();
        let mut start: Option<u16> = None;
        for s in 0..=SLOTS {
            let mine = s < SLOTS && self.slots[s].as_ref() == Some(node);
            match (mine, start) {
                (true, None) => start = Some(s as u16),
                (false, Some(b)) => {
                    runs.push((b, s as u16 - 1));
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }

    /// Maximal runs of consecutive slots with the same owner, in slot order (CLUSTER SLOTS).
    pub fn slot_ranges(&self) -> Vec<(u16, u16, NodeName)> {
        let mut out: Vec<(u16, u16, NodeName)> = Vec::new();
        for (s, owner) in self.slots.iter().enumerate() {
            let Some(owner) = owner else { continue };
            match out.last_mut() {
                Some((_, end, o)) if *o == *owner && *end as usize + 1 == s => *end = s as u16,
                _ => out.push((s as u16, s as u16, *owner)),
            }
        }
        out
    }

    /// The replicas of `master`, in name order.
    pub fn replicas_of(&self, master: &NodeName) -> Vec<&Node> {
        self.nodes
            .values()
            .filter(|n| n.master.as_ref() == Some(master))
            .collect()
    }

    /// My configEpoch, or my master's if I am a replica (`cluster_my_epoch`).
    pub fn my_epoch(&self) -> u64 {
        let me = self.me();
        me.master
            .and_then(|m| self.nodes.get(&m))
            .map_or(me.config_epoch, |m| m.config_epoch)
    }

    /// The master of our shard: ourselves as a master, our master as a replica (Redis's
    /// `curmaster`).
    pub fn shard_master(&self) -> Option<NodeName> {
        let me = self.me();
        if me.is_master() {
            Some(self.myself)
        } else {
            me.master
        }
    }

    /// Myself becomes a replica of `master` (Redis's `clusterSetMaster`): a master gives up
    /// its open slots (it has no slots left to serve).
    pub fn set_my_master(&mut self, master: NodeName) {
        let me = self.me_mut();
        if me.is_master() {
            me.flags &= !(node_flag::MASTER | node_flag::MIGRATE_TO);
            me.flags |= node_flag::SLAVE;
            self.migrating.clear();
            self.importing.clear();
        }
        self.me_mut().master = Some(master);
        if let Some(m) = self.nodes.get_mut(&master) {
            m.flags |= node_flag::MIGRATE_TO;
        }
    }

    /// Redis's `clusterBumpConfigEpochWithoutConsensus`: unless our config epoch is already
    /// the greatest (and not 0), take a new one from `currentEpoch`. Returns whether it did.
    pub fn bump_epoch_without_consensus(&mut self) -> bool {
        let max = self
            .nodes
            .values()
            .map(|n| n.config_epoch)
            .max()
            .unwrap_or(0);
        let mine = self.me().config_epoch;
        if mine != 0 && mine == max {
            return false;
        }
        self.current_epoch += 1;
        let e = self.current_epoch;
        self.me_mut().config_epoch = e;
        true
    }

    /// Masters that serve at least one slot (`cluster_size`), found in one pass over the slots.
    pub fn masters_with_slots(&self) -> Vec<NodeName> {
        let mut owners: Vec<NodeName> = Vec::new();
        for owner in self.slots.iter().flatten() {
            if owners.last() != Some(owner) && !owners.contains(owner) {
                owners.push(*owner);
            }
        }
        owners.retain(|n| self.nodes.get(n).is_some_and(Node::is_master));
        owners
    }

    /// The state lines of `CLUSTER INFO` (the message counters are the caller's).
    pub fn info_lines(&self) -> String {
        let mut assigned = 0;
        let (mut ok, mut pfail, mut fail) = (0, 0, 0);
        for owner in self.slots.iter().flatten() {
            assigned += 1;
            match self.nodes.get(owner) {
                Some(n) if n.has(node_flag::FAIL) => fail += 1,
                Some(n) if n.has(node_flag::PFAIL) => pfail += 1,
                _ => ok += 1,
            }
        }
        let size = self.masters_with_slots().len();
        format!(
            "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
             cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\n\
             cluster_known_nodes:{}\r\ncluster_size:{size}\r\ncluster_current_epoch:{}\r\n\
             cluster_my_epoch:{}\r\n",
            if self.ok { "ok" } else { "fail" },
            self.nodes.len(),
            self.current_epoch,
            self.my_epoch(),
        )
    }
}

/// Rejects a slot list naming a slot twice (ADDSLOTS / DELSLOTS check this first).
fn check_distinct(slots: &[u16]) -> Result<(), StateError> {
    let mut seen = vec![false; SLOTS];
    for &s in slots {
        if std::mem::replace(&mut seen[s as usize], true) {
            return Err(format!("Slot {s} specified multiple times"));
        }
    }
    Ok(())
}

/// Parses a slot number argument: 0..16383 (`Invalid or out of range slot` otherwise).
pub fn parse_slot(arg: &[u8]) -> Option<u16> {
    crate::util::num::parse_i64_strict(arg)
        .filter(|&s| (0..SLOTS as i64).contains(&s))
        .map(|s| s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn name(c: u8) -> NodeName {
        NodeName([c; 40])
    }

    #[test]
    fn add_and_delete_slots() {
        let mut st = ClusterState::new(name(b'a'), "127.0.0.1", 7000, 17000);
        st.add_slots(&[0, 1, 2, 5]).unwrap();
        assert_eq!(st.add_slots(&[3, 2]), Err("Slot 2 is already busy".into()));
        assert_eq!(
            st.slots_of(&name(b'a')),
            4,
            "a refused ADDSLOTS changes nothing"
        );
        assert_eq!(
            st.add_slots(&[7, 7]),
            Err("Slot 7 specified multiple times".into())
        );
        assert_eq!(st.runs_of(&name(b'a')), vec![(0, 2), (5, 5)]);
        assert_eq!(
            st.del_slots(&[9]),
            Err("Slot 9 is already unassigned".into())
        );
        st.del_slots(&[1]).unwrap();
        assert_eq!(st.runs_of(&name(b'a')), vec![(0, 0), (2, 2), (5, 5)]);
    }

    #[test]
    fn a_first_slot_makes_a_migration_target_only_while_masters_have_replicas() {
        let (a, b, c, r) = (name(b'a'), name(b'b'), name(b'c'), name(b'r'));
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        for n in [b, c] {
            st.nodes.insert(n, Node::new(n, node_flag::MASTER));
        }
        let target = |st: &ClusterState, n| st.nodes[&n].has(node_flag::MIGRATE_TO);
        // No master has a replica: a first slot marks nothing.
        st.add_slots(&[0]).unwrap();
        st.slots[1] = Some(b);
        st.note_gained_slots(b, false);
        assert!(!target(&st, a) && !target(&st, b));
        // Once one has, a master's first slot marks it; a further slot does not.
        let mut replica = Node::new(r, node_flag::SLAVE);
        replica.master = Some(b);
        st.nodes.insert(r, replica);
        st.slots[2] = Some(c);
        st.note_gained_slots(c, false);
        assert!(target(&st, c));
        st.add_slots(&[3]).unwrap();
        assert!(!target(&st, a), "a had slots already");
    }

    #[test]
    fn nodes_line_and_info() {
        let mut st = ClusterState::new(name(b'a'), "127.0.0.1", 7000, 17000);
        let all: Vec<u16> = (0..SLOTS as u16).collect();
        st.add_slots(&all).unwrap();
        st.me_mut().config_epoch = 1;
        st.migrating.insert(100, name(b'b'));
        st.importing.insert(5, name(b'c'));
        st.update_state(true);
        let a = "a".repeat(40);
        assert_eq!(
            st.nodes_text(),
            format!(
                "{a} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383 [5-<-{}] [100->-{}]\n",
                "c".repeat(40),
                "b".repeat(40)
            )
        );
        let info = st.info_lines();
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
        assert!(
            info.contains("cluster_size:1\r\ncluster_current_epoch:0\r\ncluster_my_epoch:1\r\n")
        );
        st.del_slots(&[16383]).unwrap();
        st.update_state(true);
        assert!(!st.ok);
        st.update_state(false);
        assert!(st.ok);
    }

    #[test]
    fn slot_ranges_group_by_owner() {
        let mut st = ClusterState::new(name(b'a'), "", 0, 0);
        st.add_slots(&[0, 1, 3]).unwrap();
        st.nodes
            .insert(name(b'b'), Node::new(name(b'b'), node_flag::MASTER));
        st.slots[2] = Some(name(b'b'));
        assert_eq!(
            st.slot_ranges(),
            vec![(0, 1, name(b'a')), (2, 2, name(b'b')), (3, 3, name(b'a'))]
        );
    }

    #[test]
    fn slot_arguments() {
        assert_eq!(parse_slot(b"0"), Some(0));
        assert_eq!(parse_slot(b"16383"), Some(16383));
        assert_eq!(parse_slot(b"16384"), None);
        assert_eq!(parse_slot(b"-1"), None);
        assert_eq!(parse_slot(b"1x"), None);
    }
}
