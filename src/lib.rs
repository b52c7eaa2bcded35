//! redcell: a Redis-compatible key-value server, one glommio executor per core.
//!
//! Module map (see README for the request path):
//! - `resp`: request decoder, argument access and reply encoder.
//! - `cmd`: the command table and one file per command family.
//! - `db`, `types`: the per-slot keyspace, expiry and value encodings.
//! - `shard`: per-core state, the cross-core call mesh and multi-shard holds.
//! - `server`: executors, listeners and the connection task.
//! - `config`: redis.conf parsing and CONFIG GET/SET.
//! - `cluster`: the Redis Cluster bus wire codec (not wired into the server yet).
//! - `rdb`: RDB object serialization (DUMP/RESTORE payloads) and whole RDB files.
//! - `aof`: the multi-part append-only file (manifest, reader, loader, incr writer).

pub mod aof;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod db;
pub mod error;
pub mod rdb;
pub mod resp;
pub mod server;
pub mod shard;
pub mod slot;
pub mod types;
pub mod util;

/// The Redis version whose behaviour we implement; reported by HELLO and INFO.
pub const REDIS_VERSION: &str = "7.0.15";
/// Our own version.
pub const REDCELL_VERSION: &str = env!("CARGO_PKG_VERSION");
