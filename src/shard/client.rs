//! A client connection's state as commands see it: its reply buffer, selected database,
//! authentication, MULTI queue and WATCHed keys, subscriptions, and the shards' data an
//! EXEC holds while it runs. The connection task (`server::conn`) owns one per socket.

use std::rc::Rc;
use std::sync::Arc;

use super::journal::Op;
use super::pubsub::Subscriber;
use super::tx::Held;
use super::{ClientMeta, Shard};
use crate::db::Watcher;
use crate::resp::{OwnedArgs, Reply};
use crate::util::time::now_ms;

pub struct Conn {
    pub shard: Rc<Shard>,
    pub meta: Rc<ClientMeta>,
    pub out: Reply,
    pub authed: bool,
    /// Close once the output is written (QUIT, protocol errors, CLIENT KILL of self).
    pub close_after_reply: bool,
    /// ASKING was sent: the next command may use a slot this node is importing.
    pub asking: bool,
    /// READONLY was sent (replica reads; kept for when replicas exist).
    pub readonly: bool,
    /// The batch's time, fixed while it runs.
    pub now: i64,
    /// Set at the first (un)subscribe and kept for the connection's life: pushes other cores
    /// deliver wait here. `None` for the usual connection, which then pays nothing for Pub/Sub.
    pub sub: Option<Rc<Subscriber>>,
    /// The selected database (SELECT).
    pub db: usize,
    /// A write ran under `appendfsync always`: the replies wait for the AOF to sync it.
    pub wait_for_aof: bool,
    /// Inside MULTI: the commands queued for EXEC.
    pub multi: Option<MultiState>,
    /// The keys this client WATCHes, if any.
    pub watch: Option<WatchState>,
    /// The shards' data a running EXEC holds, which the commands it runs use.
    pub held: Option<Held>,
    /// What connection handlers run by that EXEC propagated (see `cmd::call::with_keys`),
    /// for the EXEC's unit.
    pub exec_ops: Vec<Op>,
}

/// A transaction being queued.
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Queued>,
    /// A command was refused while queueing: EXEC answers EXECABORT (`CLIENT_DIRTY_EXEC`).
    pub failed: bool,
}

/// A command queued by MULTI.
pub struct Queued {
    /// Its index in the command table (the subcommand's, for containers).
    pub idx: usize,
    pub args: OwnedArgs,
}

/// WATCH: the client's flag, which every shard holding one of its keys shares, and the keys.
pub struct WatchState {
    pub watcher: Arc<Watcher>,
    /// (database, key) pairs, each once.
    pub keys: Vec<(usize, Box<[u8]>)>,
}

impl Conn {
    pub fn new(shard: Rc<Shard>, meta: Rc<ClientMeta>) -> Conn {
        let authed = shard.settings.borrow().requirepass.is_none();
        Conn {
            shard,
            meta,
            out: Reply::new(false),
            authed,
            close_after_reply: false,
            asking: false,
            readonly: false,
            now: now_ms(),
            sub: None,
            db: 0,
            wait_for_aof: false,
            multi: None,
            watch: None,
            held: None,
            exec_ops: Vec::new(),
        }
    }

    /// This connection's subscriber record, created on first use.
    pub fn subscriber(&mut self) -> Rc<Subscriber> {
        self.sub
            .get_or_insert_with(|| Subscriber::new(self.meta.clone()))
            .clone()
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }
}
