//! Replication, on the control executor: the master side (`master`: the backlog fed from
//! the merged journal stream, serving SYNC/PSYNC replicas) over its `backlog`.

pub mod backlog;
pub mod master;

/// The id Redis shows when there is none (`master_replid2` of a fresh node).
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";
