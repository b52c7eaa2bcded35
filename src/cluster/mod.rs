//! Redis Cluster support: the cluster bus wire format (more to come).

pub mod bus;
