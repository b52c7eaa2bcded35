//! One ACL user and its selectors, changed by rules (`on`, `>pass`, `+@read`, `~key:*`, `(...)`)
//! exactly as Redis 7.0's `ACLSetUser` / `ACLSetSelector` apply them, with the same refusals.

use super::{Catalog, RuleError};
use crate::util::glob::glob_match;

/// Key pattern permissions (`%R~`, `%W~`, `~` is both). A command's key needs READ when
/// the command returns (part of) its value, WRITE when it inserts, updates or deletes, and
/// NONE (any pattern matching the name will do) when it only looks at its existence, type,
/// length or metadata, as Redis's key-spec flags say.
pub const NONE: u8 = 0;
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;
pub const READ_WRITE: u8 = READ | WRITE;

/// A key pattern with the access it grants.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyPattern {
    pub flags: u8,
    pub pattern: Vec<u8>,
    /// `prefix*` patterns (the usual kind) match by comparing the prefix.
    prefix: Option<usize>,
}

impl KeyPattern {
    fn new(pattern: Vec<u8>, flags: u8) -> KeyPattern {
        let body = pattern.strip_suffix(b"*");
        let prefix = body
            .filter(|b| !b.iter().any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\')))
            .map(<[u8]>::len);
        KeyPattern {
            flags,
            pattern,
            prefix,
        }
    }

    #[inline]
    pub fn matches(&self, key: &[u8]) -> bool {
        match self.prefix {
            Some(n) => key.starts_with(&self.pattern[..n]),
            None => glob_match(&self.pattern, key),
        }
    }

    /// The pattern as ACL LIST shows it (`~p`, `%R~p`, `%W~p`).
    pub fn describe(&self) -> Vec<u8> {
        let mut out = match self.flags {
            READ => b"%R~".to_vec(),
            WRITE => b"%W~".to_vec(),
            _ => b"~".to_vec(),
        };
        out.extend_from_slice(&self.pattern);
        out
    }
}

/// A set of permissions: the root one of every user, or one added with `(...)`. A command
/// is allowed when one selector allows the command and all its keys and channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    pub root: bool,
    pub all_keys: bool,
    pub all_channels: bool,
    pub all_commands: bool,
    /// Redis's reserved command bit: set only by `+@all`/`allcommands`, so ACL LIST knows
    /// whether to start the rules from `+@all` or `-@all`.
    pub future: bool,
    /// One bit per command of the catalog (subcommands included).
    allowed: Vec<u64>,
    /// `+cmd|arg`: first arguments allowed for a command whose bit is off.
    pub firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    pub keys: Vec<KeyPattern>,
    pub channels: Vec<Vec<u8>>,
}

impl Selector {
    pub fn new(cat: &Catalog, root: bool, all_channels: bool) -> Selector {
        Selector {
            root,
            all_keys: false,
            all_channels,
            all_commands: false,
            future: false,
            allowed: vec![0; cat.len().div_ceil(64)],
            firstargs: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    #[inline]
    pub fn bit(&self, id: usize) -> bool {
        self.allowed
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.allowed.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
            }
        }
        if !on {
            self.all_commands = false;
        }
    }

    /// Allows or blocks a command; a container's subcommands follow it (`ACLChangeSelectorPerm`).
    pub fn change_perm(&mut self, cat: &Catalog, id: usize, on: bool) {
        self.set_bit(id, on);
        self.firstargs.retain(|(c, _)| *c != id);
        for &sub in &cat.subs[id] {
            self.set_bit(sub, on);
        }
    }

    /// `+@cat` / `-@cat` over every command, subcommands included.
    pub fn set_category(&mut self, cat: &Catalog, flag: u32, on: bool) {
        for &id in &cat.order {
            if cat.categories[id] & flag != 0 {
                self.change_perm(cat, id, on);
            }
            for &sub in &cat.subs[id] {
                if cat.categories[sub] & flag != 0 {
                    self.change_perm(cat, sub, on);
                }
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        self.allowed.fill(if on { u64::MAX } else { 0 });
        self.all_commands = on;
        self.future = on;
        self.firstargs.clear();
    }

    fn add_firstarg(&mut self, id: usize, arg: &[u8]) {
        match self.firstargs.iter_mut().find(|(c, _)| *c == id) {
            Some((_, args)) => {
                if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                    args.push(arg.to_vec());
                }
            }
            None => self.firstargs.push((id, vec![arg.to_vec()])),
        }
    }

    /// Applies one selector rule (`ACLSetSelector`).
    pub fn apply(&mut self, cat: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        if op.is_empty() {
            return Err(RuleError::Syntax);
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || is("~*") {
            self.all_keys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if is("allchannels") || is("&*") {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.all_keys {
                return Err(RuleError::KeyAfterAll);
            }
            let mut flags = 0;
            let mut offset = 1;
            if op[0] == b'%' {
                while offset < op.len() {
                    let c = op[offset].to_ascii_uppercase();
                    if c == b'R' && flags & READ == 0 {
                        flags |= READ;
                    } else if c == b'W' && flags & WRITE == 0 {
                        flags |= WRITE;
                    } else if op[offset] == b'~' {
                        offset += 1;
                        break;
                    } else {
                        return Err(RuleError::Syntax);
                    }
                    offset += 1;
                }
            } else {
                flags = READ_WRITE;
            }
            let pattern = &op[offset.min(op.len())..];
            // A `%` with no permission (`%~a`) grants nothing: refused, as the stock 7.0.15
            // server does (its acl.c as published would accept it).
            if has_spaces(pattern) || flags == 0 {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                Some(k) => k.flags |= flags,
                None => self.keys.push(KeyPattern::new(pattern.to_vec(), flags)),
            }
            self.all_keys = false;
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::ChannelAfterAll);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(pattern.to_vec());
            }
            self.all_channels = false;
        } else if op[0] == b'+' && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&c| c == b'|') {
                None => {
                    let id = cat.lookup(name).ok_or(RuleError::UnknownCommand)?;
                    self.change_perm(cat, id, true);
                }
                Some(bar) => {
                    let (base, sub) = (&name[..bar], &name[bar + 1..]);
                    let id = cat.lookup(base).ok_or(RuleError::UnknownCommand)?;
                    if cat.parent[id].is_some() {
                        return Err(RuleError::FirstArgOfSubcommand);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if cat.subs[id].is_empty() {
                        // First-arg rules (SELECT|0) are deprecated in Redis but still work.
                        self.add_firstarg(id, sub);
                    } else {
                        let sub_id = cat.lookup(name).ok_or(RuleError::UnknownCommand)?;
                        self.change_perm(cat, sub_id, true);
                    }
                }
            }
        } else if op[0] == b'-' && op.get(1) != Some(&b'@') {
            let id = cat.lookup(&op[1..]).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(cat, id, false);
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let flag = std::str::from_utf8(&op[2..])
                .ok()
                .and_then(|n| cat.category(n))
                .ok_or(RuleError::UnknownCommand)?;
            self.set_category(cat, flag, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// Whether the selector may run command `id` with first argument `first` (the argument
    /// after the command, or after the subcommand), ignoring keys and channels.
    #[inline]
    pub fn allows_command(&self, id: usize, no_auth: bool, first: Option<&[u8]>) -> bool {
        if self.all_commands || no_auth || self.bit(id) {
            return true;
        }
        let Some(first) = first else { return false };
        self.firstargs
            .iter()
            .find(|(c, _)| *c == id)
            .is_some_and(|(_, args)| args.iter().any(|a| a.eq_ignore_ascii_case(first)))
    }

    /// Whether `key` may be accessed with `access` (READ/WRITE bits; 0 for neither).
    #[inline]
    pub fn allows_key(&self, key: &[u8], access: u8) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|p| p.flags & access == access && p.matches(key))
    }

    /// Whether the channel (or, for `PSUBSCRIBE`, the literal pattern) is allowed.
    pub fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.all_channels || channel_listed(&self.channels, channel, is_pattern)
    }
}

/// Plain channels match the list's patterns; a PSUBSCRIBE pattern must be listed literally.
pub fn channel_listed(list: &[Vec<u8>], channel: &[u8], is_pattern: bool) -> bool {
    list.iter().any(|p| {
        if is_pattern {
            p == channel
        } else {
            glob_match(p, channel)
        }
    })
}

/// Redis refuses spaces and NULs in user names and patterns (`ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || c == b' ' || (b'\t'..=b'\r').contains(&c))
}

pub const FLAG_ENABLED: u8 = 1;
pub const FLAG_DISABLED: u8 = 2;
pub const FLAG_NOPASS: u8 = 4;
pub const FLAG_SKIP_SANITIZE: u8 = 8;
pub const FLAG_SANITIZE: u8 = 16;

/// User flags in the order ACL LIST and GETUSER show them.
pub const FLAG_NAMES: [(u8, &str); 5] = [
    (FLAG_ENABLED, "on"),
    (FLAG_DISABLED, "off"),
    (FLAG_NOPASS, "nopass"),
    (FLAG_SKIP_SANITIZE, "skip-sanitize-payload"),
    (FLAG_SANITIZE, "sanitize-payload"),
];

/// An ACL user: flags, password hashes (SHA-256, lowercase hex) and selectors, the root one
/// first.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub name: Vec<u8>,
    pub flags: u8,
    pub passwords: Vec<String>,
    pub selectors: Vec<Selector>,
}

impl User {
    /// A new user as `ACLCreateUser` makes it: off, no passwords, no permissions.
    pub fn new(cat: &Catalog, name: &[u8], all_channels: bool) -> User {
        User {
            name: name.to_vec(),
            flags: FLAG_DISABLED,
            passwords: Vec::new(),
            selectors: vec![Selector::new(cat, true, all_channels)],
        }
    }

    /// The built-in default user: `on nopass ~* &* +@all`.
    pub fn default_user(cat: &Catalog) -> User {
        let mut u = User::new(cat, b"default", false);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            let _ = u.apply(cat, op.as_bytes(), false);
        }
        u
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn root(&self) -> &Selector {
        &self.selectors[0]
    }

    /// Whether the root selector allows everything, so checks can be skipped.
    pub fn unrestricted(&self) -> bool {
        let r = self.root();
        r.all_commands && r.all_keys && r.all_channels
    }

    /// Applies one rule (`ACLSetUser`). `all_channels` is `acl-pubsub-default`, which
    /// `reset` and new selectors start from.
    pub fn apply(&mut self, cat: &Catalog, op: &[u8], all_channels: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("on") {
            self.flags = (self.flags | FLAG_ENABLED) & !FLAG_DISABLED;
        } else if is("off") {
            self.flags = (self.flags | FLAG_DISABLED) & !FLAG_ENABLED;
        } else if is("skip-sanitize-payload") {
            self.flags = (self.flags | FLAG_SKIP_SANITIZE) & !FLAG_SANITIZE;
        } else if is("sanitize-payload") {
            self.flags = (self.flags | FLAG_SANITIZE) & !FLAG_SKIP_SANITIZE;
        } else if is("nopass") {
            self.flags |= FLAG_NOPASS;
            self.passwords.clear();
        } else if is("resetpass") {
            self.flags &= !FLAG_NOPASS;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' {
                hash_password(&op[1..])
            } else {
                valid_hash(&op[1..])?
            };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.flags &= !FLAG_NOPASS;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' {
                hash_password(&op[1..])
            } else {
                valid_hash(&op[1..])?
            };
            let at = self
                .passwords
                .iter()
                .position(|p| *p == hash)
                .ok_or(RuleError::NoSuchPassword)?;
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut sel = Selector::new(cat, false, all_channels);
            let inner = &op[1..op.len() - 1];
            // Unbalanced quotes leave no rules: an empty selector, as Redis's split gives.
            for rule in crate::util::split::split_args(inner).unwrap_or_default() {
                sel.apply(cat, &rule)?;
            }
            self.selectors.push(sel);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            for rule in ["resetpass", "resetkeys", "resetchannels"] {
                self.apply(cat, rule.as_bytes(), all_channels)?;
            }
            if all_channels {
                self.apply(cat, b"allchannels", all_channels)?;
            }
            for rule in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                self.apply(cat, rule.as_bytes(), all_channels)?;
            }
        } else {
            self.selectors[0].apply(cat, op)?;
        }
        Ok(())
    }

    /// Whether `password` opens this user (`ACLCheckUserCredentials`): enabled, and nopass or
    /// one of the hashes matches (compared in constant time).
    pub fn check_password(&self, password: &[u8]) -> bool {
        if self.has(FLAG_DISABLED) {
            return false;
        }
        if self.has(FLAG_NOPASS) {
            return true;
        }
        let hashed = hash_password(password);
        let mut ok = false;
        for p in &self.passwords {
            let diff = p
                .bytes()
                .zip(hashed.bytes())
                .fold(0u8, |d, (a, b)| d | (a ^ b));
            ok |= diff == 0 && p.len() == hashed.len();
        }
        ok
    }
}

/// SHA-256 of a password in lowercase hex, as Redis stores it.
pub fn hash_password(password: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(password);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
        out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
    }
    out
}

fn valid_hash(hash: &[u8]) -> Result<String, RuleError> {
    if hash.len() != 64 || !hash.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadHash);
    }
    Ok(String::from_utf8_lossy(hash).into_owned())
}

/// Joins selector definitions spread over several arguments (`(~a` `+get)` → `(~a +get)`),
/// as `ACLMergeSelectorArguments`. Err: the index of an unclosed `(`.
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, op) in args.iter().enumerate() {
        // A `(` while one is open starts over, as Redis does.
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((i, op.to_vec()));
            continue;
        }
        if let Some((_, sel)) = open.as_mut() {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(open.take().map(|(_, s)| s).unwrap_or_default());
            }
            continue;
        }
        out.push(op.to_vec());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}
