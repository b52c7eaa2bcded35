//! Access control lists as Redis 7.0 has them: users with SHA-256 password hashes, on/off,
//! selectors of allowed commands (categories, subcommands, first arguments), key patterns
//! (`~`, `%R~`, `%W~`) and channel patterns; the ACL log; the ACL file.
//!
//! The server keeps one `Acl` behind a lock that only ACL commands, AUTH and configuration
//! take. Connections hold an `Arc<User>` snapshot; every change bumps a version that the gate
//! compares (one atomic load) before a command, so a change is in force for every connection
//! on every core from the next command on, without a lock on the command path.
//!
//! This module knows commands only through a `Catalog` (names, categories, subcommands) the
//! command layer builds from its table; the per-command check with key positions lives
//! there (`cmd::permission`).

pub mod describe;
pub mod user;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

pub use user::{User, NONE, READ, READ_WRITE, WRITE};

/// What ACL rules need to know of the command table: every command and subcommand by index.
pub struct Catalog {
    /// Full names (`config|get`), lower case, by index.
    pub names: Vec<String>,
    /// ACL category bits by index (bit `i` is `category_names[i]`).
    pub categories: Vec<u32>,
    pub category_names: &'static [&'static str],
    pub parent: Vec<Option<usize>>,
    /// A container's subcommands.
    pub subs: Vec<Vec<usize>>,
    /// Top-level commands in table order (ACL CAT and rule descriptions follow it).
    pub order: Vec<usize>,
    /// Commands that run before authentication (and so for every user).
    pub no_auth: Vec<bool>,
    by_name: hashbrown::HashMap<String, usize>,
}

impl Catalog {
    /// A catalog from `(full name, categories, parent, no_auth)` per index.
    pub fn new(
        entries: Vec<(String, u32, Option<usize>, bool)>,
        category_names: &'static [&'static str],
    ) -> Catalog {
        let n = entries.len();
        let mut c = Catalog {
            names: Vec::with_capacity(n),
            categories: Vec::with_capacity(n),
            category_names,
            parent: Vec::with_capacity(n),
            subs: vec![Vec::new(); n],
            order: Vec::new(),
            no_auth: Vec::with_capacity(n),
            by_name: hashbrown::HashMap::with_capacity(n),
        };
        for (i, (name, cats, parent, no_auth)) in entries.into_iter().enumerate() {
            match parent {
                Some(p) => c.subs[p].push(i),
                None => c.order.push(i),
            }
            c.by_name.insert(name.clone(), i);
            c.names.push(name);
            c.categories.push(cats);
            c.parent.push(parent);
            c.no_auth.push(no_auth);
        }
        c
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Every command, each followed by its subcommands.
    pub fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.order
            .iter()
            .flat_map(move |&id| std::iter::once(id).chain(self.subs[id].iter().copied()))
    }

    /// A command by name, `container|sub` for a subcommand, case-insensitively.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let lower = String::from_utf8(name.to_ascii_lowercase()).ok()?;
        self.by_name.get(&lower).copied()
    }

    /// The bit of a category name (without `@`), case-insensitively.
    pub fn category(&self, name: &str) -> Option<u32> {
        self.category_names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| 1 << i)
    }
}

/// Why a rule was refused; `text` is Redis's `ACLSetUserStringError`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleError {
    UnknownCommand,
    Syntax,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    Duplicate,
    FirstArgOfSubcommand,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeyAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::Duplicate => "Duplicate user found. A user can only be defined once in config files",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// Why a command was refused (`ACL_DENIED_*`), with the argument that failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
    Auth,
}

impl Denied {
    /// Redis's order of relevance when no selector allows a command: command < key < channel.
    fn rank(self) -> u8 {
        match self {
            Denied::Command => 0,
            Denied::Key(_) => 1,
            Denied::Channel(_) => 2,
            Denied::Auth => 3,
        }
    }

    pub fn pos(self) -> usize {
        match self {
            Denied::Key(p) | Denied::Channel(p) => p,
            _ => 0,
        }
    }

    /// Of two refusals, the one Redis reports: the higher kind, or the later argument.
    pub fn worse(self, other: Denied) -> Denied {
        if other.rank() > self.rank() || (other.rank() == self.rank() && other.pos() > self.pos()) {
            other
        } else {
            self
        }
    }
}

/// Where a refusal happened, as ACL LOG's `context` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Context {
    Toplevel,
    Multi,
    /// A command a script ran (`redis.call`, `redis.pcall`).
    Lua,
}

/// One ACL LOG entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    pub reason: Denied,
    pub context: Context,
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    /// Unix ms of the last occurrence.
    pub ctime: i64,
    pub client_info: String,
}

/// Entries of the same kind within this many ms are counted together (Redis's grouping).
const LOG_GROUPING_MS: i64 = 60_000;

/// The server's users, the ACL log and the settings rules depend on.
pub struct Acl {
    pub users: BTreeMap<Vec<u8>, Arc<User>>,
    pub log: VecDeque<LogEntry>,
    pub log_max_len: usize,
    /// `acl-pubsub-default allchannels`.
    pub pubsub_all: bool,
}

impl Acl {
    /// Only the default user, as at start-up.
    pub fn new(cat: &Catalog) -> Acl {
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), Arc::new(User::default_user(cat)));
        Acl {
            users,
            log: VecDeque::new(),
            log_max_len: 128,
            pubsub_all: false,
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<&Arc<User>> {
        self.users.get(name)
    }

    pub fn default_user(&self) -> Arc<User> {
        self.users
            .get(b"default".as_slice())
            .cloned()
            .unwrap_or_else(unreachable_default)
    }

    /// `requirepass`: the default user's only password, or nopass when empty.
    pub fn set_requirepass(&mut self, cat: &Catalog, pass: &[u8]) {
        let mut u = (*self.default_user()).clone();
        let _ = u.apply(cat, b"resetpass", self.pubsub_all);
        if pass.is_empty() {
            let _ = u.apply(cat, b"nopass", self.pubsub_all);
        } else {
            let mut op = b">".to_vec();
            op.extend_from_slice(pass);
            let _ = u.apply(cat, &op, self.pubsub_all);
        }
        self.users.insert(b"default".to_vec(), Arc::new(u));
    }

    /// ACL SETUSER: applies every rule to a copy of the user (a new one if absent); all or
    /// nothing. Returns the user as it was, if it existed, and as it is now.
    pub fn set_user(
        &mut self,
        cat: &Catalog,
        name: &[u8],
        rules: &[&[u8]],
    ) -> Result<(Option<Arc<User>>, Arc<User>), String> {
        let merged = user::merge_selector_args(rules).map_err(|i| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(rules[i])
            )
        })?;
        let old = self.users.get(name).cloned();
        let mut u = match &old {
            Some(u) => (**u).clone(),
            None => User::new(cat, name, self.pubsub_all),
        };
        for op in &merged {
            u.apply(cat, op, self.pubsub_all).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(c_str(op)),
                    e.text()
                )
            })?;
        }
        let new = Arc::new(u);
        self.users.insert(name.to_vec(), new.clone());
        Ok((old, new))
    }

    /// Adds a refusal to the log, merging it with a recent similar entry (`addACLLogEntry`).
    pub fn log_denied(&mut self, mut entry: LogEntry) {
        let similar = self.log.iter().take(10).position(|e| {
            std::mem::discriminant(&e.reason) == std::mem::discriminant(&entry.reason)
                && e.context == entry.context
                && (e.ctime - entry.ctime).abs() <= LOG_GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(i) = similar {
            if let Some(mut e) = self.log.remove(i) {
                e.client_info = std::mem::take(&mut entry.client_info);
                e.ctime = entry.ctime;
                e.count += 1;
                self.log.push_front(e);
            }
            return;
        }
        self.log.push_front(entry);
        self.log.truncate(self.log_max_len);
    }

    /// The ACL file text of the current users (ACL SAVE), one `user` line each.
    pub fn file_text(&self, cat: &Catalog) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, u) in &self.users {
            out.extend_from_slice(b"user ");
            out.extend_from_slice(name);
            out.push(b' ');
            out.extend_from_slice(&describe::user(cat, u));
            out.push(b'\n');
        }
        out
    }

    /// Users from an ACL file's text (`ACLLoadFromFile`): every line is checked; on any error
    /// nothing is returned but the errors, worded as Redis's. `file` names the file in them.
    pub fn parse_file(
        &self,
        cat: &Catalog,
        file: &str,
        text: &[u8],
    ) -> Result<BTreeMap<Vec<u8>, Arc<User>>, String> {
        let mut users: BTreeMap<Vec<u8>, User> = BTreeMap::new();
        let mut errors = String::new();
        for (i, line) in text.split(|&c| c == b'\n').enumerate() {
            let linenum = i + 1;
            let line = trim(line, b" \t\r\n");
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!(
                    "{file}:{linenum} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = argv[1];
            if user::has_spaces(name) {
                errors.push_str(&format!(
                    "'{file}:{linenum}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if users.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {linenum}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            let mut u = User::new(cat, name, self.pubsub_all);
            match user::merge_selector_args(&argv[2..]) {
                Err(_) => errors.push_str(&format!(
                    "{file}:{linenum}: Unmatched parenthesis in selector definition."
                )),
                Ok(ops) => {
                    let mut syntax_error = false;
                    for op in &ops {
                        let op = trim(op, b"\t\r\n");
                        if let Err(e) = u.apply(cat, op, self.pubsub_all) {
                            if e == RuleError::UnknownCommand {
                                errors.push_str(&format!(
                                    "{file}:{linenum}: Error in applying operation '{}': {}. ",
                                    String::from_utf8_lossy(c_str(op)),
                                    e.text()
                                ));
                            } else if !syntax_error {
                                errors.push_str(&format!("{file}:{linenum}: {}. ", e.text()));
                                syntax_error = true;
                            }
                        }
                    }
                }
            }
            users.insert(name.to_vec(), u);
        }
        if !errors.is_empty() {
            errors.push_str(
                "WARNING: ACL errors detected, no change to the previously active ACL rules was performed",
            );
            return Err(errors);
        }
        if !users.contains_key(b"default".as_slice()) {
            users.insert(b"default".to_vec(), User::default_user(cat));
        }
        Ok(users.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

#[cold]
fn unreachable_default() -> Arc<User> {
    // Every path that replaces the users keeps `default`; this is a defect if reached.
    panic!("the default ACL user is missing")
}

/// `sdscatfmt`'s `%s` stops at a NUL byte.
fn c_str(s: &[u8]) -> &[u8] {
    s.split(|&c| c == 0).next().unwrap_or(s)
}

fn trim<'a>(mut s: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let Some((first, rest)) = s.split_first() {
        if !set.contains(first) {
            break;
        }
        s = rest;
    }
    while let Some((last, rest)) = s.split_last() {
        if !set.contains(last) {
            break;
        }
        s = rest;
    }
    s
}

/// `chars` random lowercase hex digits (ACL GENPASS), from the kernel's generator; `None`
/// if it cannot be read (never a predictable password).
pub fn random_hex(chars: usize) -> Option<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ok()?;
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(chars);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        // get (read string fast), set (write string slow), config (slow) with get/set (admin).
        let names = &[
            "keyspace", "read", "write", "string", "admin", "fast", "slow",
        ];
        Catalog::new(
            vec![
                ("get".into(), 0b0100_1010, None, false),
                ("set".into(), 0b1000_1100, None, false),
                ("config".into(), 1 << 6, None, false),
                ("config|get".into(), (1 << 4) | (1 << 6), Some(2), false),
                ("config|set".into(), (1 << 4) | (1 << 6), Some(2), false),
                ("auth".into(), 1 << 5, None, true),
                ("strlen".into(), 0b0010_1010, None, false),
                ("del".into(), 0b0000_0101, None, false),
            ],
            names,
        )
    }

    fn user(rules: &[&str]) -> Result<User, RuleError> {
        let cat = catalog();
        let mut u = User::new(&cat, b"u", false);
        for r in rules {
            u.apply(&cat, r.as_bytes(), false)?;
        }
        Ok(u)
    }

    fn described(rules: &[&str]) -> String {
        String::from_utf8(describe::user(&catalog(), &user(rules).unwrap())).unwrap()
    }

    #[test]
    fn rules_and_descriptions() {
        assert_eq!(described(&[]), "off resetchannels -@all");
        assert_eq!(
            described(&["on", "nopass", "~*", "&*", "+@all"]),
            "on nopass ~* &* +@all"
        );
        assert_eq!(
            described(&["+@all", "-set"]),
            "off resetchannels +@all -set"
        );
        assert_eq!(
            described(&["+@all", "-set", "-del"]),
            "off resetchannels +@all -@write"
        );
        assert_eq!(
            described(&["+get", "%R~a", "%W~a"]),
            "off ~a resetchannels -@all +get"
        );
        assert_eq!(
            described(&["%R~r:*", "&ch"]),
            "off %R~r:* resetchannels &ch -@all"
        );
        assert_eq!(
            described(&["+config|get"]),
            "off resetchannels -@all +config|get"
        );
        assert_eq!(
            described(&["+get|x", "+get|y"]),
            "off resetchannels -@all +get|x +get|y"
        );
        assert_eq!(
            described(&["+@read", "(~k +set)"]),
            "off resetchannels -@all +@read (~k resetchannels -@all +set)"
        );
        let hash = user::hash_password(b"pw");
        assert_eq!(hash.len(), 64);
        assert_eq!(
            described(&[">pw", ">pw"]),
            format!("off #{hash} resetchannels -@all")
        );
    }

    #[test]
    fn refusals_are_redis_errors() {
        assert_eq!(user(&["+nosuch"]), Err(RuleError::UnknownCommand));
        assert_eq!(user(&["+@nosuch"]), Err(RuleError::UnknownCommand));
        assert_eq!(user(&["~*", "~a"]), Err(RuleError::KeyAfterAll));
        assert_eq!(user(&["&*", "&a"]), Err(RuleError::ChannelAfterAll));
        assert_eq!(user(&["<pw"]), Err(RuleError::NoSuchPassword));
        assert_eq!(user(&["#abc"]), Err(RuleError::BadHash));
        assert_eq!(
            user(&["+config|get|x"]),
            Err(RuleError::FirstArgOfSubcommand)
        );
        assert_eq!(user(&["+get|"]), Err(RuleError::Syntax));
        assert_eq!(user(&["%X~a"]), Err(RuleError::Syntax));
        assert_eq!(user(&["~a b"]), Err(RuleError::Syntax));
        assert_eq!(user(&["bogus"]), Err(RuleError::Syntax));
        assert_eq!(user(&["-get|x"]), Err(RuleError::UnknownCommand));
        assert!(user(&["(", "~a"]).is_err());
    }

    #[test]
    fn checks() {
        let cat = catalog();
        let u = user(&["on", ">pw", "+get", "+config|get", "%R~r:*", "~rw:*"]).unwrap();
        assert!(u.check_password(b"pw"));
        assert!(!u.check_password(b"px"));
        let s = u.root();
        assert!(s.allows_command(0, false, None));
        assert!(!s.allows_command(1, false, None));
        assert!(s.allows_command(3, false, None));
        assert!(!s.allows_command(4, false, None));
        assert!(s.allows_command(5, true, None));
        assert!(s.allows_key(b"r:1", READ));
        assert!(!s.allows_key(b"r:1", WRITE));
        assert!(s.allows_key(b"rw:1", READ_WRITE));
        assert!(s.allows_key(b"r:1", 0));
        assert!(!s.allows_key(b"x", 0));
        let off = user(&["off", "nopass"]).unwrap();
        assert!(!off.check_password(b""));
        let mut acl = Acl::new(&cat);
        assert!(acl.default_user().unrestricted());
        acl.set_requirepass(&cat, b"secret");
        assert!(acl.default_user().check_password(b"secret"));
        assert!(!acl.default_user().has(user::FLAG_NOPASS));
        let err = acl
            .set_user(&cat, b"bob", &[b"on", b"+nosuch"])
            .unwrap_err();
        assert_eq!(
            err,
            "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        assert!(acl.get(b"bob").is_none());
        let err = acl.set_user(&cat, b"bob", &[b"(~a", b"+get"]).unwrap_err();
        assert_eq!(
            err,
            "Unmatched parenthesis in acl selector starting at '(~a'."
        );
    }

    #[test]
    fn acl_file_round_trip() {
        let cat = catalog();
        let mut acl = Acl::new(&cat);
        acl.set_user(
            &cat,
            b"bob",
            &[b"on", b">x", b"~k:*", b"+get", b"(+set %W~w)"],
        )
        .unwrap();
        let text = acl.file_text(&cat);
        let users = acl.parse_file(&cat, "users.acl", &text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[b"bob".as_slice()], acl.users[b"bob".as_slice()]);
        let err = acl
            .parse_file(&cat, "f", b"user a on\nuser a off\nfoo\nuser b +nosuch\n")
            .unwrap_err();
        assert_eq!(
            err,
            "WARNING: Duplicate user 'a' found on line 2. f:3 should start with user keyword followed by the username. f:4: Error in applying operation '+nosuch': Unknown command or category name in ACL. WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        );
    }
}
