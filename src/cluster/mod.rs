//! Redis Cluster support: the bus wire format (`bus`), the cluster state (`state`),
//! nodes.conf (`nodes_conf`), the member that runs it all on the control core (`member`)
//! and the routing view each shard keeps (`slotmap`).

pub mod bus;
pub mod member;
pub mod nodes_conf;
pub mod slotmap;
pub mod state;
