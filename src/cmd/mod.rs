//! The command table: one `CommandSpec` per command (name, arity, flags, key positions, ACL
//! categories, handler), declared in the family files and gathered here. It drives dispatch,
//! arity errors, key extraction for routing, COMMAND output and INFO commandstats.

pub mod acl;
pub mod bitops;
pub mod blocking;
pub mod call;
pub mod cluster;
pub mod connection;
pub mod dump;
pub mod evict;
pub mod function;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod lua;
pub mod migrate;
pub mod multi;
pub mod permission;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod scan;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod zset;

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use hashbrown::HashMap;

use crate::error::CmdResult;
use crate::resp::Args;
use crate::shard::client::Conn;

pub use crate::shard::CommandStats;
pub use call::{call, guarded, Ctx, Exec, PANIC_REPLY};

/// Command flags, as COMMAND reports them.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const MOVABLE_KEYS: u32 = 1 << 15;
    pub const ALLOW_BUSY: u32 = 1 << 16;
    /// Accepted on a slot this node is importing without a preceding ASKING (RESTORE-ASKING).
    pub const ASKING: u32 = 1 << 17;
    /// Redis's `CMD_TOUCHES_ARBITRARY_KEYS` (SCAN, RANDOMKEY): the keys it expires lazily
    /// propagate as separate DELs, never wrapped in MULTI/EXEC.
    pub const TOUCHES_ARBITRARY_KEYS: u32 = 1 << 18;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 19;

    // Ours, not shown by COMMAND:
    /// Allowed in the RESP2 subscribed context ((P|S)(UN)SUBSCRIBE, PING, QUIT, RESET).
    pub const SUBSCRIBED_OK: u32 = 1 << 28;
    /// Runs at once inside MULTI instead of being queued (EXEC, DISCARD, MULTI, WATCH,
    /// QUIT, RESET).
    pub const NOT_QUEUED: u32 = 1 << 29;
    /// MIGRATE: routed on open slots whatever keys exist, importing slots included, as
    /// Redis runs it (it is what moves the keys).
    pub const MIGRATE: u32 = 1 << 30;
    /// EXEC: in cluster mode, routed by the keys of the commands it queued.
    pub const ROUTES_QUEUED: u32 = 1 << 27;
    /// The command reads or writes the whole keyspace, so commands forwarded earlier in the
    /// same pipeline batch must finish first.
    pub const BARRIER: u32 = 1 << 31;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_MULTI, "no_multi"),
        (MOVABLE_KEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
        (ASKING, "asking"),
    ];
}

pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = CmdResult> + 'a>>;

/// Runs with the data of the shards owning its keys (on their core, or on a coordinator that
/// borrowed them), or of every shard for a command without keys (DBSIZE, FLUSHALL ...).
pub type KeyedFn = fn(&mut Ctx<'_>, &Args<'_>) -> CmdResult;
/// Runs on the connection's core, synchronously (no keys, or connection state only).
pub type SyncFn = fn(&mut Conn, &Args<'_>) -> CmdResult;
/// Runs on the connection's core and may call other shards.
pub type AsyncFn = for<'a> fn(&'a mut Conn, Args<'a>) -> BoxFuture<'a>;

#[derive(Clone, Copy)]
pub enum Handler {
    Keyed(KeyedFn),
    Sync(SyncFn),
    Async(AsyncFn),
    /// Dispatches to `subcommands` on argument 1.
    Container,
}

pub struct CommandSpec {
    /// Lower-case name (for subcommands, the subcommand alone).
    pub name: &'static str,
    /// Redis arity: N exact, -N at least N (command name included).
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub acl: &'static [&'static str],
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub handler: Handler,
    /// For a keyed command without keys whose work is on one shard named by an argument
    /// (SCAN's cursor): that shard, of the given number of shards.
    pub shard_of: Option<fn(&Args<'_>, usize) -> usize>,
    /// For a blocking command: how a waiter is served (see `blocking`).
    pub blocking: Option<&'static blocking::BlockingOp>,
    pub subcommands: &'static [CommandSpec],
    /// For commands whose keys are not at fixed positions (`movablekeys`): where they are.
    pub key_finder: Option<KeysFn>,
    /// The ACL access its keys need, as Redis's key specs say (`acl::READ`/`WRITE` bits):
    /// (first key, the others). `None`: READ for a readonly command, WRITE for a write.
    pub access: Option<(u8, u8)>,
    /// For a command that may also touch keys its arguments do not name (SORT's BY and GET
    /// patterns): whether this request does; it then runs with every shard's data.
    pub reaches: Option<fn(&Args<'_>) -> bool>,
}

/// The key positions of a request whose keys move with its arguments; `None` when the
/// arguments are malformed (the handler reports that).
pub type KeysFn = fn(&Args<'_>) -> Option<Vec<usize>>;

impl CommandSpec {
    /// A spec with defaults, for the family tables' `const` declarations.
    pub const fn new(name: &'static str, arity: i32, flags: u32, handler: Handler) -> CommandSpec {
        CommandSpec {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            acl: &[],
            group: "generic",
            summary: "",
            since: "1.0.0",
            handler,
            shard_of: None,
            blocking: None,
            subcommands: &[],
            key_finder: None,
            access: None,
            reaches: None,
        }
    }

    /// A keyed command whose only key is argument 1 (override with `.keys` for more).
    pub const fn keyed(name: &'static str, arity: i32, flags: u32, f: KeyedFn) -> CommandSpec {
        CommandSpec::new(name, arity, flags, Handler::Keyed(f)).keys(1, 1, 1)
    }

    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> CommandSpec {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    pub const fn acl(mut self, acl: &'static [&'static str]) -> CommandSpec {
        self.acl = acl;
        self
    }

    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
    ) -> CommandSpec {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self
    }

    /// A keyed command without keys: it runs with every shard's data (see `KeyedFn`).
    pub const fn whole(name: &'static str, arity: i32, flags: u32, f: KeyedFn) -> CommandSpec {
        CommandSpec::new(name, arity, flags, Handler::Keyed(f))
    }

    pub const fn blocking(mut self, op: &'static blocking::BlockingOp) -> CommandSpec {
        self.blocking = Some(op);
        self
    }

    pub const fn shard_of(mut self, f: fn(&Args<'_>, usize) -> usize) -> CommandSpec {
        self.shard_of = Some(f);
        self
    }

    pub const fn key_finder(mut self, f: KeysFn) -> CommandSpec {
        self.key_finder = Some(f);
        self
    }

    pub const fn reaches(mut self, f: fn(&Args<'_>) -> bool) -> CommandSpec {
        self.reaches = Some(f);
        self
    }

    /// The ACL access of the first key and of the other keys (see `access`).
    pub const fn access(mut self, first: u8, rest: u8) -> CommandSpec {
        self.access = Some((first, rest));
        self
    }

    /// The ACL access of (the first key, the other keys).
    pub fn key_access(&self) -> (u8, u8) {
        self.access.unwrap_or({
            let a = if self.has(flag::WRITE) {
                crate::acl::WRITE
            } else if self.has(flag::READONLY) {
                crate::acl::READ
            } else {
                0
            };
            (a, a)
        })
    }

    pub const fn subs(mut self, subs: &'static [CommandSpec]) -> CommandSpec {
        self.subcommands = subs;
        self
    }

    #[inline]
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    /// Whether `argc` arguments (name included) satisfy the arity.
    #[inline]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Argument positions of the keys, per first/last/step.
    #[inline]
    /// Every key position of this call, found from the arguments where the command needs it
    /// (allocates: for slow paths).
    pub fn all_key_positions(&self, args: &Args<'_>) -> Vec<usize> {
        match self.key_finder {
            Some(find) => find(args).unwrap_or_default(),
            None => self.key_positions(args.len()).collect(),
        }
    }

    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let argc = argc as i32;
        let (first, step) = (self.first_key, self.step.max(1));
        let last = if self.first_key == 0 {
            -1
        } else if self.last_key < 0 {
            argc + self.last_key
        } else {
            self.last_key.min(argc - 1)
        };
        (first..=last)
            .step_by(step as usize)
            .filter(move |&i| i > 0)
            .map(|i| i as usize)
    }
}

/// ACL categories, in Redis's own order (`ACLCommandCategories`), which COMMAND follows.
pub mod category {
    pub const NAMES: &[&str] = &[
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
    ];

    /// The bit of the category called `name` (with or without its `@`, any case).
    pub fn bit(name: &str) -> Option<u32> {
        let name = name.strip_prefix('@').unwrap_or(name);
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| 1 << i)
    }

    pub fn names(mask: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

impl CommandSpec {
    /// The command's ACL categories: those its table entry names, plus those its flags
    /// imply, as Redis's `setImplicitACLCategories` adds them (write → @write; readonly →
    /// @read unless @scripting; admin → @admin @dangerous; pubsub → @pubsub; fast → @fast,
    /// else @slow; blocking → @blocking).
    pub fn categories(&self) -> u32 {
        let bit = |name| category::bit(name).unwrap_or(0);
        let mut mask = self
            .acl
            .iter()
            .filter_map(|n| category::bit(n))
            .fold(0, |m, b| m | b);
        let implied = [
            (flag::WRITE, "write"),
            (flag::ADMIN, "admin"),
            (flag::ADMIN, "dangerous"),
            (flag::PUBSUB, "pubsub"),
            (flag::FAST, "fast"),
            (flag::BLOCKING, "blocking"),
        ];
        for (f, name) in implied {
            if self.has(f) {
                mask |= bit(name);
            }
        }
        if self.has(flag::READONLY) && mask & bit("scripting") == 0 {
            mask |= bit("read");
        }
        if mask & bit("fast") == 0 {
            mask |= bit("slow");
        }
        mask
    }
}

/// Key finders for the usual movable-key shapes.
pub mod keys_at {
    use crate::resp::Args;
    use crate::util::num::parse_i64_strict;

    /// `numkeys` at `at`, the keys right after it.
    fn counted(args: &Args<'_>, at: usize) -> Option<Vec<usize>> {
        if at >= args.len() {
            return None;
        }
        let n = usize::try_from(parse_i64_strict(args.get(at))?)
            .ok()
            .filter(|&n| n > 0)?;
        (at + n < args.len()).then(|| (at + 1..=at + n).collect())
    }

    /// `CMD numkeys key...` (SINTERCARD, LMPOP, ZUNION, ZINTER, ZDIFF, ZINTERCARD, ZMPOP).
    pub fn numkeys_1(args: &Args<'_>) -> Option<Vec<usize>> {
        counted(args, 1)
    }

    /// `CMD timeout numkeys key...` (BLMPOP, BZMPOP).
    pub fn numkeys_2(args: &Args<'_>) -> Option<Vec<usize>> {
        counted(args, 2)
    }

    /// `CMD destination numkeys key...` (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE).
    pub fn dest_numkeys_2(args: &Args<'_>) -> Option<Vec<usize>> {
        let mut keys = vec![1];
        keys.extend(counted(args, 2)?);
        Some(keys)
    }

    /// `... STREAMS key... id...` (XREAD, XREADGROUP): the first half after STREAMS.
    pub fn streams(args: &Args<'_>) -> Option<Vec<usize>> {
        let at = (1..args.len()).find(|&i| args.is(i, "STREAMS"))?;
        let rest = args.len() - at - 1;
        (rest > 0 && rest.is_multiple_of(2)).then(|| (at + 1..at + 1 + rest / 2).collect())
    }
}

/// Longest full name (`container|sub`) the table may hold; lookups use a buffer this size.
const MAX_NAME_LEN: usize = 64;

/// The assembled table: every spec (subcommands included) with its index and full name.
pub struct Table {
    pub specs: Vec<&'static CommandSpec>,
    /// `container|sub` for subcommands, the name for commands.
    pub full_names: Vec<String>,
    /// `full_names` upper-cased, as `Try <CMD> HELP.` messages show them.
    pub upper_names: Vec<String>,
    /// Index of a top-level command's spec.
    pub top: Vec<usize>,
    by_name: HashMap<Vec<u8>, usize>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Looks up a command (or `container|sub`) by name, case-insensitively, without allocating.
    #[inline]
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        self.lookup_parts(&[name])
    }

    /// Looks up subcommand `sub` of container `parent`, without allocating.
    pub fn lookup_sub(&self, parent: usize, sub: &[u8]) -> Option<usize> {
        self.lookup_parts(&[self.full_names[parent].as_bytes(), b"|", sub])
    }

    /// Looks up the name `parts` spell together, lower-cased in a stack buffer: a name longer
    /// than the buffer matches nothing, as no name in the table is that long.
    #[inline]
    fn lookup_parts(&self, parts: &[&[u8]]) -> Option<usize> {
        let mut lower = [0u8; MAX_NAME_LEN];
        let mut len = 0;
        for part in parts {
            let dst = lower.get_mut(len..len + part.len())?;
            for (d, s) in dst.iter_mut().zip(*part) {
                *d = s.to_ascii_lowercase();
            }
            len += part.len();
        }
        self.by_name.get(&lower[..len]).copied()
    }

    fn add(&mut self, spec: &'static CommandSpec, full_name: String) {
        self.by_name
            .insert(full_name.as_bytes().to_vec(), self.specs.len());
        self.specs.push(spec);
        self.upper_names.push(full_name.to_ascii_uppercase());
        self.full_names.push(full_name);
    }

    pub fn index_of(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(full_name.as_bytes()).copied()
    }
}

/// What the shard layer calls back into this one for (see `shard::Upcalls`).
pub fn upcalls() -> crate::shard::Upcalls {
    crate::shard::Upcalls {
        commands: table().len(),
        serve_ready: blocking::serve_ready,
    }
}

/// The families' command lists.
fn families() -> impl Iterator<Item = &'static CommandSpec> {
    [
        connection::COMMANDS,
        server::COMMANDS,
        acl::COMMANDS,
        string::COMMANDS,
        bitops::COMMANDS,
        keys::COMMANDS,
        hash::COMMANDS,
        set::COMMANDS,
        list::COMMANDS,
        stream::COMMANDS,
        cluster::COMMANDS,
        function::COMMANDS,
        scripting::COMMANDS,
        hll::COMMANDS,
        zset::COMMANDS,
        geo::COMMANDS,
        sort::COMMANDS,
        dump::COMMANDS,
        migrate::COMMANDS,
        multi::COMMANDS,
        persistence::COMMANDS,
        replication::COMMANDS,
        pubsub::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

/// `rename-command` lines of the configuration, applied when the table is built.
static RENAMES: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Installs the configuration's `rename-command` lines (old name, new name; an empty new
/// name removes the command), as Redis applies them: the command is found under its new
/// name only, with its own name everywhere else (COMMAND, ACL rules, errors). Must run
/// before the table is first used. On a refusal, the index of the line and Redis's reason.
pub fn set_renames(renames: &[(String, String, String)]) -> Result<(), (usize, &'static str)> {
    let pairs: Vec<(String, String)> = renames
        .iter()
        .map(|(old, new, _)| (old.to_ascii_lowercase(), new.to_ascii_lowercase()))
        .collect();
    // Validate in order against the names as each line leaves them.
    let mut names: std::collections::HashSet<String> =
        families().map(|spec| spec.name.to_string()).collect();
    for (i, (old, new)) in pairs.iter().enumerate() {
        if !names.remove(old) {
            return Err((i, "No such command in rename-command"));
        }
        if !new.is_empty() && !names.insert(new.clone()) {
            return Err((i, "Target command name already exists"));
        }
    }
    if RENAMES.set(pairs).is_err() || TABLE.get().is_some() {
        return Err((0, "rename-command applied after start-up"));
    }
    Ok(())
}

static TABLE: OnceLock<Table> = OnceLock::new();

pub fn table() -> &'static Table {
    TABLE.get_or_init(|| {
        let mut t = Table {
            specs: Vec::new(),
            full_names: Vec::new(),
            upper_names: Vec::new(),
            top: Vec::new(),
            by_name: HashMap::new(),
        };
        for spec in families() {
            t.top.push(t.specs.len());
            t.add(spec, spec.name.to_string());
            for sub in spec.subcommands {
                t.add(sub, format!("{}|{}", spec.name, sub.name));
            }
        }
        for (old, new) in RENAMES.get().into_iter().flatten() {
            // Subcommands keep their full names ("config|get"): Redis looks them up under
            // the container's entry, which the rename moves.
            if let Some(idx) = t.by_name.remove(old.as_bytes()) {
                if !new.is_empty() {
                    t.by_name.insert(new.as_bytes().into(), idx);
                }
            }
        }
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's command list must name every command in the table.
    #[test]
    fn readme_lists_every_command() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("## Commands")
            .expect("README has a Commands section");
        let section = &readme[start
            ..readme[start..]
                .find("\n## Differences")
                .map_or(readme.len(), |e| start + e)];
        let words: std::collections::HashSet<String> = section
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map(|w| w.to_ascii_lowercase())
            .collect();
        let t = table();
        for &i in &t.top {
            assert!(
                words.contains(t.specs[i].name),
                "README's command list lacks {}",
                t.specs[i].name
            );
        }
    }

    #[test]
    fn acl_categories_derive_from_flags_as_redis() {
        let t = table();
        let cats = |name: &str| -> Vec<&str> {
            category::names(t.specs[t.index_of(name).expect(name)].categories()).collect()
        };
        assert_eq!(cats("get"), ["read", "string", "fast"]);
        assert_eq!(cats("set"), ["write", "string", "slow"]);
        assert_eq!(cats("migrate"), ["keyspace", "write", "slow", "dangerous"]);
        assert_eq!(cats("multi"), ["fast", "transaction"]);
        assert_eq!(cats("exec"), ["slow", "transaction"]);
        assert_eq!(cats("blpop"), ["write", "list", "slow", "blocking"]);
        assert_eq!(cats("lastsave"), ["admin", "fast", "dangerous"]);
        assert_eq!(cats("subscribe"), ["pubsub", "slow"]);
        assert_eq!(cats("swapdb"), ["keyspace", "write", "fast", "dangerous"]);
        assert_eq!(category::bit("@SortedSet"), Some(1 << 4));
        // Tables name only what flags do not imply, with the `@`.
        for (i, spec) in t.specs.iter().enumerate() {
            let implied = CommandSpec { acl: &[], ..**spec }.categories();
            for name in spec.acl {
                let bit = category::bit(name).unwrap_or(0);
                assert!(
                    name.starts_with('@') && bit != 0,
                    "{}: {name}",
                    t.full_names[i]
                );
                assert!(
                    implied & bit == 0 || *name == "@dangerous",
                    "{}: {name} follows from its flags",
                    t.full_names[i]
                );
            }
        }
        assert_eq!(category::bit("nosuch"), None);
    }

    #[test]
    fn table_is_consistent() {
        let t = table();
        assert!(t.lookup(b"GET").is_some());
        assert!(t.lookup(b"get").is_some());
        assert!(t.lookup(b"nosuch").is_none());
        for (i, spec) in t.specs.iter().enumerate() {
            assert_ne!(spec.arity, 0, "{}", t.full_names[i]);
            assert!(t.full_names[i].len() <= MAX_NAME_LEN, "{}", t.full_names[i]);
            assert_eq!(t.lookup(t.full_names[i].as_bytes()), Some(i));
            assert_eq!(t.upper_names[i], t.full_names[i].to_ascii_uppercase());
            // Commands with key positions are keyed: the gate routes them by their keys
            // (shard channels, which route like keys, excepted).
            if (spec.first_key > 0 || spec.key_finder.is_some()) && !spec.has(flag::PUBSUB) {
                assert!(
                    matches!(spec.handler, Handler::Keyed(_) | Handler::Async(_)),
                    "{} has keys but runs on the connection",
                    t.full_names[i]
                );
            }
            if matches!(spec.handler, Handler::Container) {
                assert!(!spec.subcommands.is_empty());
            }
            // A blocking command is served by its table entry's op once woken.
            assert_eq!(
                spec.has(flag::BLOCKING),
                spec.blocking.is_some(),
                "{}: the BLOCKING flag and a BlockingOp go together",
                t.full_names[i]
            );
        }
        let client = t.lookup(b"CLIENT").unwrap();
        assert_eq!(t.upper_names[client], "CLIENT");
        let list = t.lookup_sub(client, b"LiSt").unwrap();
        assert_eq!(t.full_names[list], "client|list");
        assert_eq!(t.lookup(b"client|LIST"), Some(list));
        assert_eq!(t.lookup_sub(client, b"nosuch"), None);
        assert_eq!(t.lookup_sub(client, &[b'x'; 100]), None);
        assert_eq!(t.lookup(&[b'x'; 100]), None);
        let mset = &t.specs[t.lookup(b"mset").unwrap()];
        assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
        let get = &t.specs[t.lookup(b"get").unwrap()];
        assert_eq!(get.key_positions(2).collect::<Vec<_>>(), vec![1]);
    }
}
