//! The routing view every shard keeps of the cluster: who serves each slot and the
//! MOVED/CLUSTERDOWN answer otherwise. Built by the control core on every change and swapped
//! in whole (an `Arc`), so a shard never locks to route a command.

use super::bus::node_flag;
use super::state::ClusterState;
use crate::error::Error;
use crate::slot::SLOTS;

const MINE: u16 = u16::MAX;
const UNASSIGNED: u16 = u16::MAX - 1;

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
    /// `endpoint:port` of the other nodes that own slots.
    endpoints: Vec<String>,
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
            endpoints: Vec::new(),
        }
    }

    /// The map of a cluster node before the control core sent its first one: nothing is
    /// served yet.
    pub fn pending() -> SlotMap {
        SlotMap {
            enabled: true,
            owner: vec![UNASSIGNED; SLOTS],
            importing: vec![false; SLOTS],
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
        // A replica routes like its master: the master's slots are served... by the master.
        let owner = (0..SLOTS)
            .map(|s| match &state.slots[s] {
                None => UNASSIGNED,
                Some(n) if *n == state.myself && state.me().has(node_flag::MASTER) => MINE,
                Some(n) => match index.iter().find(|(name, _)| name == n) {
                    Some(&(_, i)) => i,
                    None => {
                        let node = state.nodes.get(n);
                        let text = node.map_or_else(
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
                },
            })
            .collect();
        let importing = (0..SLOTS)
            .map(|s| state.importing.contains_key(&(s as u16)))
            .collect();
        SlotMap {
            enabled: true,
            version,
            ok: state.ok,
            allow_reads_when_down,
            owner,
            importing,
            endpoints,
        }
    }

    /// Where a command whose keys are all in `slot` must run (Redis's `getNodeByQuery` for
    /// one slot): `Ok` here, or the redirection or CLUSTERDOWN error to reply.
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
        if owner == MINE || (asking && self.importing[slot as usize]) {
            return Ok(());
        }
        Err(Error::Coded(
            format!("MOVED {slot} {}", self.endpoints[owner as usize]).into(),
        ))
    }

    pub fn route(&self, slot: u16, write: bool, asking: bool) -> Result<(), Error> {
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
        if owner == MINE || (asking && self.importing[slot as usize]) {
            return Ok(());
        }
        Err(Error::Coded(
            format!("MOVED {slot} {}", self.endpoints[owner as usize]).into(),
        ))
    }
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
        let text = |r: Result<(), Error>| r.map_err(|e| e.render().into_owned());
        assert_eq!(
            text(map.route(16383, false, false)),
            Err("CLUSTERDOWN Hash slot not served".into())
        );
        assert_eq!(
            text(map.route(100, false, false)),
            Err("CLUSTERDOWN The cluster is down".into())
        );
        let mut st_ok = st.clone();
        st_ok.slots[16383] = Some(b);
        st_ok.update_state(true);
        let map = SlotMap::build(&st_ok, 2, EndpointType::Ip, false);
        assert_eq!(text(map.route(5, true, false)), Ok(()));
        assert_eq!(
            text(map.route(9999, false, false)),
            Err("MOVED 9999 127.0.0.1:7001".into())
        );
        assert_eq!(
            text(map.route(9000, false, true)),
            Ok(()),
            "ASKING on an importing slot"
        );
        let map = SlotMap::build(&st_ok, 3, EndpointType::Hostname, false);
        assert_eq!(
            text(map.route(9999, false, false)),
            Err("MOVED 9999 b.example:7001".into())
        );
        let map = SlotMap::build(&st_ok, 3, EndpointType::Unknown, false);
        assert_eq!(
            text(map.route(9999, false, false)),
            Err("MOVED 9999 :7001".into())
        );
    }

    #[test]
    fn cluster_down_answers() {
        let a = NodeName([b'a'; 40]);
        let mut st = ClusterState::new(a, "127.0.0.1", 7000, 17000);
        st.slots[0] = Some(a);
        st.update_state(true);
        let text = |r: Result<(), Error>| r.map_err(|e| e.render().into_owned());
        let map = SlotMap::build(&st, 1, EndpointType::Ip, false);
        assert_eq!(
            text(map.route(0, false, false)),
            Err("CLUSTERDOWN The cluster is down".into())
        );
        let map = SlotMap::build(&st, 1, EndpointType::Ip, true);
        assert_eq!(text(map.route(0, false, false)), Ok(()));
        assert_eq!(
            text(map.route(0, true, false)),
            Err("CLUSTERDOWN The cluster is down and only accepts read commands".into())
        );
    }
}
