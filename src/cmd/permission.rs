//! The ACL check of one command, as Redis 7.0's `ACLCheckAllUserCommandPerm`: a user may run
//! a command when one of its selectors allows the command (or its first argument) and every
//! key it names with the access the command needs (`%R~` / `%W~`) and every channel it
//! publishes or subscribes to. The gate calls `check` for every command (a connection whose
//! user may do anything skips it); EXEC calls it again for each queued command.

use std::sync::OnceLock;

use crate::acl::{self, Context, Denied, LogEntry, User, READ, READ_WRITE, WRITE};
use crate::error::Error;
use crate::resp::Args;
use crate::shard::client::Conn;

use super::{table, CommandSpec};

/// The ACL view of the command table (names, categories, subcommands).
pub fn catalog() -> &'static acl::Catalog {
    static CATALOG: OnceLock<acl::Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let t = table();
        let mut parent = vec![None; t.len()];
        for &top in &t.top {
            for i in 0..t.specs[top].subcommands.len() {
                parent[top + 1 + i] = Some(top);
            }
        }
        let entries = (0..t.len())
            .map(|i| {
                let spec = t.specs[i];
                (
                    t.full_names[i].clone(),
                    spec.categories(),
                    parent[i],
                    spec.has(super::flag::NO_AUTH),
                )
            })
            .collect();
        acl::Catalog::new(entries, super::category::NAMES)
    })
}

/// Commands whose key access or channels the table's positions do not say.
struct Special {
    set: Option<usize>,
    bitfield: Option<usize>,
    publish: [Option<usize>; 2],
    subscribe: [Option<usize>; 2],
    psubscribe: Option<usize>,
    /// Shard channel commands: their channels are keys for routing only, not for ACL.
    shard_channels: [Option<usize>; 3],
}

fn special() -> &'static Special {
    static SPECIAL: OnceLock<Special> = OnceLock::new();
    SPECIAL.get_or_init(|| {
        let t = table();
        let at = |n: &str| t.index_of(n);
        Special {
            set: at("set"),
            bitfield: at("bitfield"),
            publish: [at("publish"), at("spublish")],
            subscribe: [at("subscribe"), at("ssubscribe")],
            psubscribe: at("psubscribe"),
            shard_channels: [at("spublish"), at("ssubscribe"), at("sunsubscribe")],
        }
    })
}

/// Calls `ok(position, access)` for each key command `idx` names in `args`, with the access
/// it needs (Redis's key specs: returning the value needs READ; inserting, updating or
/// deleting needs WRITE; a key used for neither, as EXISTS's, needs only to match a
/// pattern), until `ok` says no: then returns that key's position. Allocates only for
/// commands whose keys move with their arguments.
pub fn first_refused_key(
    idx: usize,
    spec: &CommandSpec,
    args: &Args<'_>,
    mut ok: impl FnMut(usize, u8) -> bool,
) -> Option<usize> {
    let sp = special();
    if sp.shard_channels.contains(&Some(idx)) {
        return None;
    }
    let (first, rest) = spec.key_access();
    let variable = if Some(idx) == sp.set {
        // SET ... GET reads the old value (`setGetKeys`).
        Some(if args.rest(3).any(|a| a.eq_ignore_ascii_case(b"get")) {
            READ_WRITE
        } else {
            WRITE
        })
    } else if Some(idx) == sp.bitfield {
        Some(if bitfield_read_only(args) {
            READ
        } else {
            READ_WRITE
        })
    } else {
        None
    };
    let access = |i: usize| variable.unwrap_or(if i == 0 { first } else { rest });
    match spec.key_finder {
        Some(find) => find(args)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .find(|&(i, pos)| !ok(pos, access(i)))
            .map(|(_, pos)| pos),
        None => spec
            .key_positions(args.len())
            .enumerate()
            .find(|&(i, pos)| !ok(pos, access(i)))
            .map(|(_, pos)| pos),
    }
}

/// BITFIELD with only GET (and OVERFLOW) reads (`bitfieldGetKeys`).
fn bitfield_read_only(args: &Args<'_>) -> bool {
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args.is(i, "GET") && more >= 2 {
            i += 3;
        } else if args.is(i, "OVERFLOW") && more >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// The channels a command publishes or subscribes to: their positions, and whether they are
/// patterns.
fn channel_refs(idx: usize, args: &Args<'_>) -> (std::ops::Range<usize>, bool) {
    let sp = special();
    let id = Some(idx);
    if sp.publish.contains(&id) {
        (1..args.len().min(2), false)
    } else if sp.subscribe.contains(&id) {
        (1..args.len(), false)
    } else if id == sp.psubscribe {
        (1..args.len(), true)
    } else {
        (0..0, false)
    }
}

/// Whether `user` may run command `idx` (a subcommand's own index) with `args`; the refusal
/// Redis would report otherwise.
pub fn check(user: &User, idx: usize, args: &Args<'_>) -> Result<(), Denied> {
    let spec = table().specs[idx];
    let cat = catalog();
    let first_arg_at = if cat.parent[idx].is_some() { 2 } else { 1 };
    let first = (args.len() > first_arg_at).then(|| args.get(first_arg_at));
    let no_auth = cat.no_auth[idx];
    let mut worst: Option<Denied> = None;
    for s in &user.selectors {
        let verdict = (|| {
            if !s.allows_command(idx, no_auth, first) {
                return Err(Denied::Command);
            }
            if !s.all_keys {
                let refused = first_refused_key(idx, spec, args, |pos, access| {
                    s.allows_key(args.get(pos), access)
                });
                if let Some(pos) = refused {
                    return Err(Denied::Key(pos));
                }
            }
            if !s.all_channels {
                let (positions, is_pattern) = channel_refs(idx, args);
                for pos in positions {
                    if !s.allows_channel(args.get(pos), is_pattern) {
                        return Err(Denied::Channel(pos));
                    }
                }
            }
            Ok(())
        })();
        match verdict {
            Ok(()) => return Ok(()),
            Err(d) => worst = Some(worst.map_or(d, |w| w.worse(d))),
        }
    }
    Err(worst.unwrap_or(Denied::Command))
}

/// The gate's reply for a refusal.
pub fn gate_error(idx: usize, d: Denied) -> Error {
    match d {
        Denied::Command => Error::NoPermCommand(table().full_names[idx].clone()),
        Denied::Key(_) => Error::NoPermKey,
        _ => Error::NoPermChannel,
    }
}

/// EXEC's reply for a queued command the user may no longer run.
pub fn exec_error(d: Denied) -> Error {
    Error::NoPermExec(match d {
        Denied::Command => "no permission to execute the command or subcommand",
        Denied::Key(_) => "no permission to touch the specified keys",
        _ => "no permission to access one of the channels used as arguments",
    })
}

/// Records a refusal in the ACL log (the object is the command's full name, or the key or
/// channel refused; for AUTH, the command as sent).
pub fn log(conn: &Conn, d: Denied, context: Context, idx: usize, args: &Args<'_>, user: &[u8]) {
    let entry = log_entry(conn, d, context, idx, args, user);
    conn.shard.shared.acl().log_denied(entry);
}

/// The ACL LOG entry of a refusal, for a caller that logs it later (a script run that may
/// still start again).
pub fn log_entry(
    conn: &Conn,
    d: Denied,
    context: Context,
    idx: usize,
    args: &Args<'_>,
    user: &[u8],
) -> LogEntry {
    let object = match d {
        Denied::Command => table().full_names[idx].as_bytes().to_vec(),
        Denied::Key(p) | Denied::Channel(p) => args.get(p).to_vec(),
        Denied::Auth => args.get(0).to_vec(),
    };
    LogEntry {
        count: 1,
        reason: d,
        context,
        object,
        username: user.to_vec(),
        ctime: crate::util::time::now_ms(),
        client_info: super::server::client::line_of(&conn.meta),
    }
}

/// Checks a command at the gate (or in EXEC, `context` Multi), logging a refusal.
pub fn check_logged(
    conn: &Conn,
    idx: usize,
    args: &Args<'_>,
    context: Context,
) -> Result<(), Denied> {
    check(&conn.user, idx, args).inspect_err(|&d| {
        log(conn, d, context, idx, args, &conn.user.name);
    })
}

/// The ACL LOG context of a command refused at the gate.
pub fn gate_context(conn: &Conn) -> Context {
    if conn.multi.is_some() {
        Context::Multi
    } else {
        Context::Toplevel
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    fn user(rules: &[&str]) -> User {
        let cat = catalog();
        let mut u = User::new(cat, b"u", false);
        for r in rules {
            u.apply(cat, r.as_bytes(), false).unwrap();
        }
        u
    }

    fn run(u: &User, words: &[&str]) -> Result<(), Denied> {
        let t = table();
        let mut idx = t.lookup(words[0].as_bytes()).unwrap();
        if !t.specs[idx].subcommands.is_empty() {
            idx = t.lookup_sub(idx, words[1].as_bytes()).unwrap();
        }
        with_args(words, |a| check(u, idx, a))
    }

    #[test]
    fn selectors_keys_and_channels() {
        let u = user(&["+@all", "%R~r:*", "~rw:*", "&news"]);
        assert_eq!(run(&u, &["get", "r:1"]), Ok(()));
        assert_eq!(run(&u, &["set", "r:1", "v"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["set", "rw:1", "v", "GET"]), Ok(()));
        assert_eq!(run(&u, &["set", "r:1", "v", "GET"]), Err(Denied::Key(1)));
        assert_eq!(run(&u, &["exists", "r:1", "rw:2"]), Ok(()));
        assert_eq!(run(&u, &["mget", "r:1", "x"]), Err(Denied::Key(2)));
        assert_eq!(
            run(&u, &["lmove", "rw:1", "r:2", "LEFT", "LEFT"]),
            Err(Denied::Key(2))
        );
        assert_eq!(run(&u, &["publish", "news", "m"]), Ok(()));
        assert_eq!(run(&u, &["publish", "other", "m"]), Err(Denied::Channel(1)));
        assert_eq!(run(&u, &["bitfield", "r:1", "GET", "u8", "0"]), Ok(()));
        assert_eq!(
            run(&u, &["bitfield", "r:1", "SET", "u8", "0", "1"]),
            Err(Denied::Key(1))
        );
        let s = user(&["+get", "~a", "(+set ~b)"]);
        assert_eq!(run(&s, &["get", "a"]), Ok(()));
        assert_eq!(run(&s, &["set", "b", "v"]), Ok(()));
        assert_eq!(run(&s, &["set", "a", "v"]), Err(Denied::Key(1)));
        assert_eq!(run(&s, &["get", "b"]), Err(Denied::Key(1)));
        assert_eq!(run(&s, &["del", "a"]), Err(Denied::Command));
        assert_eq!(run(&s, &["auth", "x"]), Ok(()));
        let c = user(&["+config|get", "+select|0"]);
        assert_eq!(run(&c, &["config", "get", "x"]), Ok(()));
        assert_eq!(run(&c, &["config", "set", "x", "y"]), Err(Denied::Command));
        assert_eq!(run(&c, &["select", "0"]), Ok(()));
        assert_eq!(run(&c, &["select", "1"]), Err(Denied::Command));
    }

    #[test]
    fn catalog_matches_the_table() {
        let cat = catalog();
        let t = table();
        assert_eq!(cat.len(), t.len());
        let config = cat.lookup(b"CONFIG").unwrap();
        assert_eq!(cat.lookup(b"config|get"), t.index_of("config|get"));
        assert!(cat.subs[config].contains(&t.index_of("config|set").unwrap()));
        assert_eq!(cat.parent[t.index_of("config|set").unwrap()], Some(config));
    }
}
