//! The routing view every shard keeps of the cluster: who serves each slot and the
//! MOVED/CLUSTERDOWN answer otherwise. Built by the control core on every change and swapped
//! in whole (an `Arc`), so a shard never locks to route a command.

use super::bus::node_flag;
use super::state::ClusterState;
use crate::error::Error;
use crate::slot::SLOTS;

const MINE: u16 = u16::MAX;
const UNASSIGNED: u16 = u16::MAX - 1;
/// In `migrating`: the slot is not being moved out.
const NOT_MIGRATING: u16 = u16::MAX;
/// In `master`: this node is not a replica of a node that serves slots.
const NO_MASTER: u16 = u16::MAX - 2;

/// Where a command whose keys share one slot runs, before looking at the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Served here.
    Here,
    /// The slot is open (we migrate it out, or import it for an ASKING client): which keys
    /// exist on the owner shard decides between serving, ASK and TRYAGAIN (`open_slot`).
    Open,
}

/// How clients are told where a node is (`cluster-preferred-endpoint-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointType {
    Ip,
    Hostname,
    Unknown,
}

impl EndpointType {
    pub fn from_config(v: &str) -> EndpointType {
        match v {
            "hostname" => EndpointType::Hostname,
            "unknown-endpoint" => EndpointType::Unknown,
            _ => EndpointType::Ip,
        }
    }

    /// The endpoint clients see for a node: its IP, its hostname (`?` if it has none), or
    /// nothing.
    pub fn endpoint<'a>(self, ip: &'a str, hostname: &'a str) -> &'a str {
        match self {
            EndpointType::Ip => ip,
            EndpointType::Hostname if hostname.is_empty() => "?",
            EndpointType::Hostname => hostname,
            EndpointType::Unknown => "",
        }
    }
}

#[derive(Debug)]
pub struct SlotMap {
    /// `cluster-enabled`: when false every command runs locally.
    pub enabled: bool,
    /// Increases with every map the control core builds; shards keep the newest.
    pub version: u64,
    pub ok: bool,
    pub allow_reads_when_down: bool,
    /// Per slot: `MINE`, `UNASSIGNED`, or an index into `endpoints`.
    owner: Vec<u16>,
    /// Per slot: imported from another node (ASKING clients are served here).
    importing: Vec<bool>,
    /// Per slot we own: `NOT_MIGRATING`, or the index in `endpoints` of the node it moves to.
    migrating: Vec<u16>,
    /// `endpoint:port` of the other nodes that own slots.
    endpoints: Vec<String>,
    /// For a replica, its master's index in `endpoints`: READONLY clients read that master's
    /// slots here.
    master: u16,
}

impl SlotMap {
    /// The map of a server not in cluster mode.
    pub fn disabled() -> SlotMap {
        SlotMap {
            enabled: false,
            version: 0,
            ok: true,
            allow_reads_when_down: false,
            owner: Vec::new(),
            importing: Vec::new(),
            migrating: Vec::new(),
            endpoints: Vec::new(),
            master: NO_MASTER,
        }
    }

    /// The map of a cluster node before the control core sent its first one: nothing is
    /// served yet.
    pub fn pending() -> SlotMap {
        SlotMap {
            enabled: true,
            owner: vec![UNASSIGNED; SLOTS],
            importing: vec![false; SLOTS],
            migrating: vec![NOT_MIGRATING; SLOTS],
            ok: false,
            ..SlotMap::disabled()
        }
    }

    /// Whether no node serves `slot`.
    #[inline]
    pub fn unassigned(&self, slot: u16) -> bool {
        self.owner[slot as usize] == UNASSIGNED
    }

    pub fn build(
        state: &ClusterState,
        version: u64,
        endpoint_type: EndpointType,
        allow_reads_when_down: bool,
    ) -> SlotMap {
        let mut endpoints: Vec<String> = Vec::new();
        let mut index: Vec<(super::bus::NodeName, u16)> = Vec::new();
        let mut endpoint_of =
            |n: &super::bus::NodeName| match index.iter().find(|(name, _)| name == n) {
                Some(&(_, i)) => i,
                None => {
                    let text = state.nodes.get(n).map_or_else(
                        || ":0".to_string(),
                        |node| {
                            format!(
                                "{}:{}",
                                endpoint_type.endpoint(&node.ip, &node.hostname),
                                node.port
                            )
                        },
                    );
                    let i = endpoints.len() as u16;
                    endpoints.push(text);
                    index.push((*n, i));
                    i
                }
            };
        let i_am_master = state.me().has(node_flag::MASTER);
        // A replica routes like its master: the master's slots are served... by the master.
        // Slots come in long runs of one owner: resolve each run's owner once.
        let mut last: Option<(super::bus::NodeName, u16)> = None;
        let owner: Vec<u16> = (0..SLOTS)
            .map(|s| match &state.slots[s] {
                None => UNASSIGNED,
                Some(n) => match last {
                    Some((name, code)) if name == *n => code,
                    _ => {
                        let code = if *n == state.myself && i_am_master {
                            MINE
                        } else {
                            endpoint_of(n)
                        };
                        last = Some((*n, code));
                        code
                    }
                },
            })
            .collect();
        let mut migrating = vec![NOT_MIGRATING; SLOTS];
        for (&s, to) in &state.migrating {
            if owner[s as usize] == MINE {
                migrating[s as usize] = endpoint_of(to);
            }
        }
        let mut importing = vec![false; SLOTS];
        for &s in state.importing.keys() {
            importing[s as usize] = true;
        }
        let master = match state.me().master {
            Some(m) if state.slots_of(&m) > 0 => endpoint_of(&m),
            _ => NO_MASTER,
        };
        SlotMap {
            enabled: true,
            version,
            ok: state.ok,
            allow_reads_when_down,
            owner,
            importing,
            migrating,
            endpoints,
            master,
        }
    }

    /// Whether this node serves `slot` itself.
    #[inline]
    pub fn serves(&self, slot: u16) -> bool {
        self.owner.get(slot as usize) == Some(&MINE)
    }

    /// Routing for shard channels (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH): as keys, but served
    /// while the cluster is down if `when_down` (`cluster-allow-pubsubshard-when-down`,
    /// default yes) and without the migration checks, as Redis 7.0's `getNodeByQuery`.
    pub fn route_shard_channel(
        &self,
        slot: u16,
        asking: bool,
        when_down: bool,
    ) -> Result<(), Error> {
        let owner = self.owner[slot as usize];
        if owner == UNASSIGNED {
            return Err(not_served());
        }
        if !self.ok && !when_down {
            return Err(Error::Coded("CLUSTERDOWN The cluster is down".into()));
        }
        if owner == MINE || (asking && self.importing[slot as usize]) || owner == self.master {
            return Ok(());
        }
        Err(self.moved(slot))
    }

    /// Where a command whose keys are all in `slot` must run (the part of Redis's
    /// `getNodeByQuery` that needs no key lookups): here, here after the open-slot check, or
    /// the redirection or CLUSTERDOWN error to reply.
    /// A replica serves its master's slots to `readonly` clients (READONLY) for commands
    /// that do not write.
    pub fn route(
        &self,
        slot: u16,
        write: bool,
        asking: bool,
        readonly: bool,
    ) -> Result<Route, Error> {
        let owner = self.owner[slot as usize];
        if owner == UNASSIGNED {
            return Err(not_served());
        }
        if !self.ok {
            if !self.allow_reads_when_down {
                return Err(Error::Coded("CLUSTERDOWN The cluster is down".into()));
            }
            if write {
                return Err(Error::Coded(
                    "CLUSTERDOWN The cluster is down and only accepts read commands".into(),
                ));
            }
        }
        let migrating = owner == MINE && self.migrating[slot as usize] != NOT_MIGRATING;
        if migrating || (asking && self.importing[slot as usize]) {
            return Ok(Route::Open);
        }
        if owner == MINE || (readonly && !write && owner == self.master) {
            return Ok(Route::Here);
        }
        Err(self.moved(slot))
    }

    /// The verdict for a command on an open slot, given how many of its distinct keys exist
    /// here (Redis's rules): a migrating slot sends clients missing every key to the target
    /// (ASK) and those missing some to retry (TRYAGAIN); an importing slot serves ASKING
    /// clients unless a multi-key command misses keys.
    pub fn open_slot(
        &self,
        slot: u16,
        asking: bool,
        multiple_keys: bool,
        existing: usize,
        missing: usize,
    ) -> Result<(), Error> {
        let owner = self.owner[slot as usize];
        let to = if owner == MINE {
            self.migrating[slot as usize]
        } else {
            NOT_MIGRATING
        };
        if to != NOT_MIGRATING && missing > 0 {
            if existing > 0 {
                return Err(try_again());
            }
            return Err(Error::Coded(
                format!("ASK {slot} {}", self.endpoints[to as usize]).into(),
            ));
        }
        if asking && self.importing[slot as usize] {
            if multiple_keys && missing > 0 {
                return Err(try_again());
            }
            return Ok(());
        }
        match owner {
            MINE => Ok(()),
            UNASSIGNED => Err(not_served()),
            _ => Err(self.moved(slot)),
        }
    }

    fn moved(&self, slot: u16) -> Error {
        let owner = self.owner[slot as usize];
        Error::Coded(format!("MOVED {slot} {}", self.endpoints[owner as usize]).into())
    }
}

/// The error for a multi-key command on a slot being moved, and for a key in flight.
pub fn try_again() -> Error {
    Error::Coded("TRYAGAIN Multiple keys request during rehashing of slot".into())
}

/// The error for a slot no node serves.
pub fn not_served() -> Error {
    Error::Coded("CLUSTERDOWN Hash slot not served".into())
}

/// The error for keys in different slots.
pub fn cross_slot() -> Error {
    Error::Coded("CROSSSLOT Keys in request don't hash to the same slot".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::bus::NodeName;
    use crate::cluster::state::Node;

    #[test]
    fn routes_like_redis() {
        let (a, b) = (NodeName([b'a'; 40]), NodeName([b'b'; 40]));
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        let mut nb = Node::new(b, node_flag::MASTER);
        nb.ip = "127.0.0.1".into();
        nb.port = 7001;
        nb.hostname = "b.example".into();
        st.nodes.insert(b, nb);
        for s in 0..8192 {
            st.slots[s] = Some(a);
        }
        for s in 8192..16383 {
            st.slots[s] = Some(b);
        }
        st.importing.insert(9000, b);
        st.update_state(true);
        let map = SlotMap::build(&st, 1, EndpointType::Ip, false);
        let text = |r: Result<Route, Error>| r.map(|_| ()).map_err(|e| e.render().into_owned());
        assert_eq!(
            text(map.route(16383, false, false, false)),
            Err("CLUSTERDOWN Hash slot not served".into())
        );
        assert_eq!(
            text(map.route(100, false, false, false)),
            Err("CLUSTERDOWN The cluster is down".into())
        );
        let mut st_ok = st.clone();
        st_ok.slots[16383] = Some(b);
        st_ok.update_state(true);
        let map = SlotMap::build(&st_ok, 2, EndpointType::Ip, false);
        assert_eq!(text(map.route(5, true, false, false)), Ok(()));
        assert_eq!(
            text(map.route(9999, false, false, false)),
            Err("MOVED 9999 127.0.0.1:7001".into())
        );
        assert_eq!(
            text(map.route(9000, false, true, false)),
            Ok(()),
            "ASKING on an importing slot"
        );
        let map = SlotMap::build(&st_ok, 3, EndpointType::Hostname, false);
        assert_eq!(
            text(map.route(9999, false, false, false)),
            Err("MOVED 9999 b.example:7001".into())
        );
        let map = SlotMap::build(&st_ok, 3, EndpointType::Unknown, false);
        assert_eq!(
            text(map.route(9999, false, false, false)),
            Err("MOVED 9999 :7001".into())
        );
    }

    #[test]
    fn open_slots_ask_or_try_again_like_redis() {
        let (a, b) = (NodeName([b'a'; 40]), NodeName([b'b'; 40]));
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        let mut nb = Node::new(b, node_flag::MASTER);
        nb.ip = "127.0.0.1".into();
        nb.port = 7001;
        st.nodes.insert(b, nb);
        for s in 0..16384 {
            st.slots[s] = Some(if s < 8192 { a } else { b });
        }
        st.migrating.insert(10, b);
        st.importing.insert(9000, b);
        st.update_state(true);
        let map = SlotMap::build(&st, 1, EndpointType::Ip, false);
        let text = |r: Result<(), Error>| r.map_err(|e| e.render().into_owned());
        assert_eq!(map.route(10, true, false, false).ok(), Some(Route::Open));
        assert_eq!(map.route(11, true, false, false).ok(), Some(Route::Here));
        assert!(
            map.route(9000, false, false, false).is_err(),
            "importing without ASKING"
        );
        assert_eq!(map.route(9000, false, true, false).ok(), Some(Route::Open));
        // Migrating: all keys here → served; none → ASK; some → TRYAGAIN.
        assert_eq!(text(map.open_slot(10, false, true, 2, 0)), Ok(()));
        assert_eq!(
            text(map.open_slot(10, false, false, 0, 1)),
            Err("ASK 10 127.0.0.1:7001".into())
        );
        assert_eq!(
            text(map.open_slot(10, false, true, 1, 1)),
            Err("TRYAGAIN Multiple keys request during rehashing of slot".into())
        );
        // Importing with ASKING: single missing key served; multi-key with a miss retried.
        assert_eq!(text(map.open_slot(9000, true, false, 0, 1)), Ok(()));
        assert_eq!(text(map.open_slot(9000, true, true, 2, 0)), Ok(()));
        assert_eq!(
            text(map.open_slot(9000, true, true, 1, 1)),
            Err("TRYAGAIN Multiple keys request during rehashing of slot".into())
        );
    }

    #[test]
    fn cluster_down_answers() {
        let a = NodeName([b'a'; 40]);
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        st.slots[0] = Some(a);
        st.update_state(true);
        let text = |r: Result<Route, Error>| r.map(|_| ()).map_err(|e| e.render().into_owned());
        let map = SlotMap::build(&st, 1, EndpointType::Ip, false);
        assert_eq!(
            text(map.route(0, false, false, false)),
            Err("CLUSTERDOWN The cluster is down".into())
        );
        let map = SlotMap::build(&st, 1, EndpointType::Ip, true);
        assert_eq!(text(map.route(0, false, false, false)), Ok(()));
        assert_eq!(
            text(map.route(0, true, false, false)),
            Err("CLUSTERDOWN The cluster is down and only accepts read commands".into())
        );
    }

    #[test]
    fn a_replica_serves_its_masters_slots_to_readonly_reads() {
        let (a, b) = (NodeName([b'a'; 40]), NodeName([b'b'; 40]));
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        let mut nb = Node::new(b, node_flag::MASTER);
        nb.ip = "127.0.0.1".into();
        nb.port = 7001;
        st.nodes.insert(b, nb);
        st.slots.iter_mut().for_each(|s| *s = Some(b));
        let me = st.me_mut();
        me.flags = node_flag::MYSELF | node_flag::SLAVE;
        me.master = Some(b);
        st.update_state(true);
        let map = SlotMap::build(&st, 1, EndpointType::Ip, false);
        let text = |r: Result<Route, Error>| r.map(|_| ()).map_err(|e| e.render().into_owned());
        let moved = Err("MOVED 7 127.0.0.1:7001".to_string());
        assert_eq!(text(map.route(7, false, false, false)), moved);
        assert_eq!(text(map.route(7, false, false, true)), Ok(()));
        assert_eq!(text(map.route(7, true, false, true)), moved);
        assert!(map.route_shard_channel(7, false, true).is_ok());
        assert!(!map.serves(7));
    }
}
