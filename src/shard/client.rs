//! A client connection's state as commands see it: its reply buffer, selected database,
//! authentication, MULTI queue and WATCHed keys, subscriptions, and the shards' data an
//! EXEC holds while it runs. The connection task (`server::conn`) owns one per socket.

use std::rc::Rc;
use std::sync::atomic::Ordering;
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
    /// Redis's `c->authenticated`: AUTH succeeded, or the default user was open when the
    /// connection began (or was RESET).
    pub authenticated: bool,
    /// The user's permissions as of `acl_version` (see `sync_acl`).
    pub user: Arc<crate::acl::User>,
    pub acl_version: u64,
    /// The user may run anything: the gate skips the check.
    pub acl_open: bool,
    /// The default user needs no password (and is on): nobody must authenticate.
    pub auth_open: bool,
    /// Close once the output is written (QUIT, protocol errors, CLIENT KILL of self).
    pub close_after_reply: bool,
    /// ASKING was sent: the next command may use a slot this node is importing.
    pub asking: bool,
    /// READONLY was sent (replica reads; kept for when replicas exist).
    pub readonly: bool,
    /// The link to this replica's master (Redis's `CLIENT_MASTER`): its commands are applied
    /// in chunks, without the gate (`server::conn::run_master_chunk`).
    pub is_master: bool,
    /// The batch's time, fixed while it runs.
    pub now: i64,
    /// Set at the first (un)subscribe and kept for the connection's life: pushes other cores
    /// deliver wait here. `None` for the usual connection, which then pays nothing for Pub/Sub.
    pub sub: Option<Rc<Subscriber>>,
    /// The selected database (SELECT).
    pub db: usize,
    /// A write ran under `appendfsync always`: the replies wait for the AOF to sync it.
    pub wait_for_aof: bool,
    /// Memory was over `maxmemory` and nothing could be evicted when the last EVAL, EVALSHA,
    /// FCALL or EXEC passed the command gate (Redis's `pre_command_oom_state`): a script
    /// without flags it runs may not make its first write a `denyoom` one.
    pub script_oom: bool,
    /// CLIENT REPLY: replies are dropped (OFF), the next command's reply is dropped (SKIP),
    /// and CLIENT REPLY ON just ran (its OK goes out).
    pub reply: ReplyMode,
    /// Inside MULTI: the commands queued for EXEC.
    pub multi: Option<MultiState>,
    /// The keys this client WATCHes, if any.
    pub watch: Option<WatchState>,
    /// The shards' data a running EXEC holds, which the commands it runs use.
    pub held: Option<Held>,
    /// What connection handlers run by that EXEC propagated (see `cmd::call::with_keys`),
    /// for the EXEC's unit.
    pub exec_ops: Vec<Op>,
    /// What a replica said in REPLCONF (and its SYNC/PSYNC): rare, so boxed.
    pub replica: Option<Box<ReplicaHandshake>>,
}

/// A replica's handshake: what REPLCONF told, and SYNC/PSYNC once sent, after which the
/// connection becomes its replication link on the control executor.
#[derive(Default, Debug)]
pub struct ReplicaHandshake {
    pub listening_port: u16,
    pub ip: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
    /// REPLCONF rdb-only 1: it wants the snapshot alone, no stream (`redis-cli --rdb`).
    pub rdb_only: bool,
    /// REPLCONF rdb-filter-only: its full sync's RDB has no keys (`redis-cli --replica`),
    /// with the function libraries if it asked for them (`redis-cli --functions-rdb`).
    pub rdb_filter: Option<RdbFilter>,
    /// `Some(Some((replid, offset)))` after PSYNC, `Some(None)` after SYNC.
    pub sync: Option<Option<(String, i64)>>,
}

/// What REPLCONF rdb-filter-only keeps of the RDB (Redis 7.0 knows one filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdbFilter {
    pub functions: bool,
}

/// A transaction being queued.
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Queued>,
    /// A command was refused while queueing: EXEC answers EXECABORT (`CLIENT_DIRTY_EXEC`).
    pub failed: bool,
    /// What the queued commands' flags (for a script, the flags it declared) said when they
    /// were queued, or'ed together (Redis's `mstate.cmd_flags` and `cmd_inv_flags`): the
    /// gate judges EXEC by these, whatever the scripts' flags are by then. One writes;
    /// one may grow memory (`denyoom`); one may not run on stale data.
    pub writes: bool,
    pub denyoom: bool,
    pub denystale: bool,
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

/// CLIENT REPLY's state (Redis's `CLIENT_REPLY_OFF`, `_SKIP_NEXT`, `_SKIP`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyMode {
    pub off: bool,
    /// Set by CLIENT REPLY SKIP: the command after it is answered with nothing.
    pub skip_next: bool,
    /// CLIENT REPLY ON ran: its reply is sent even though the mode was off.
    pub turned_on: bool,
}

impl Conn {
    pub fn new(shard: Rc<Shard>, meta: Rc<ClientMeta>) -> Conn {
        let user = shard.shared.acl().default_user();
        Conn {
            shard,
            meta,
            out: Reply::new(false),
            authenticated: false,
            acl_open: user.unrestricted(),
            user,
            acl_version: 0,
            auth_open: false,
            close_after_reply: false,
            asking: false,
            readonly: false,
            is_master: false,
            now: now_ms(),
            sub: None,
            db: 0,
            wait_for_aof: false,
            script_oom: false,
            reply: ReplyMode::default(),
            multi: None,
            watch: None,
            held: None,
            exec_ops: Vec::new(),
            replica: None,
        }
        .with_default_auth()
    }

    /// Back to the default user, authenticated when it needs no password (Redis's
    /// `clientSetDefaultAuth`, at connection start and RESET).
    pub fn with_default_auth(mut self) -> Conn {
        self.set_default_auth();
        self
    }

    pub fn set_default_auth(&mut self) {
        let (user, version) = {
            let acl = self.shard.shared.acl();
            let version = self.shard.shared.acl_version.load(Ordering::Acquire);
            (acl.default_user(), version)
        };
        self.authenticated = open_user(&user);
        self.auth_open = self.authenticated;
        self.set_user(user, version);
    }

    /// Makes `user` this connection's user (after AUTH), as of ACL version `version`.
    pub fn set_user(&mut self, user: Arc<crate::acl::User>, version: u64) {
        if *self.meta.user.borrow() != user.name {
            *self.meta.user.borrow_mut() = user.name.clone();
        }
        self.acl_open = user.unrestricted();
        self.user = user;
        self.acl_version = version;
    }

    /// Whether the connection must still authenticate (Redis's `authRequired`).
    #[inline]
    pub fn auth_required(&self) -> bool {
        !self.authenticated && !self.auth_open
    }

    /// Takes the newest ACL state if it changed since this connection last looked: one
    /// atomic load per command while nothing changes.
    #[inline]
    pub fn sync_acl(&mut self) {
        let version = self.shard.shared.acl_version.load(Ordering::Acquire);
        if version != self.acl_version {
            self.refresh_acl(version);
        }
    }

    #[cold]
    fn refresh_acl(&mut self, version: u64) {
        let (user, default) = {
            let acl = self.shard.shared.acl();
            (acl.get(&self.user.name).cloned(), acl.default_user())
        };
        self.auth_open = open_user(&default);
        match user {
            Some(u) => self.set_user(u, version),
            // The user was deleted: its connections are being closed; meanwhile this one is
            // the default user, not authenticated (as Redis's `ACLFreeUserAndKillClients`).
            None => {
                self.authenticated = false;
                self.set_user(default, version);
            }
        }
    }

    /// This connection's subscriber record, created on first use.
    pub fn subscriber(&mut self) -> Rc<Subscriber> {
        let meta = &self.meta;
        self.sub
            .get_or_insert_with(|| {
                let sub = Subscriber::new(meta.clone());
                *meta.pushes.borrow_mut() = Rc::downgrade(&sub);
                sub
            })
            .clone()
    }

    /// What client-side caching needs to know of this client for its next command: whether
    /// the keys a read-only command reads are remembered for it (tracking on, not BCAST,
    /// and OPTIN/OPTOUT's CACHING as it stands now), and who makes the changes (NOLOOP).
    #[inline]
    pub fn track(&self) -> super::tracking::Track {
        let flags = self.meta.tracking.get();
        let reads = flags != 0 && super::tracking::reads_tracked(flags);
        super::tracking::Track {
            reader: if reads { self.meta.id } else { 0 },
            home: self.shard.id as u32,
            origin: self.meta.id,
        }
    }

    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Redis's `mustObeyClient`: the AOF loading client (id 0, `server::conn`) or a
    /// replica's master link, which the command gate does not refuse, and whose scripts
    /// may write on a read-only replica.
    pub fn must_obey(&self) -> bool {
        self.is_master || self.meta.id == 0
    }
}

/// A user that needs no password and is on: connections start authenticated as it.
fn open_user(u: &crate::acl::User) -> bool {
    use crate::acl::user::{FLAG_DISABLED, FLAG_NOPASS};
    u.has(FLAG_NOPASS) && !u.has(FLAG_DISABLED)
}
