//! Redis Cluster support: the bus wire format, the cluster state and nodes.conf (the links,
//! gossip and CLUSTER commands that put them to work are still to come).

pub mod bus;
pub mod nodes_conf;
pub mod state;
