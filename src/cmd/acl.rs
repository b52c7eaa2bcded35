//! ACL (CAT, DELUSER, DRYRUN, GENPASS, GETUSER, LIST, LOAD, LOG, SAVE, SETUSER, USERS,
//! WHOAMI, HELP) and authentication, over the server's one `acl::Acl` (see `acl` for how a
//! change reaches every connection).

use std::sync::Arc;

use super::permission::{catalog, check};
use super::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::acl::{self, describe, Context, Denied, User};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;

const fn sub(name: &'static str, arity: i32, flags: u32, handler: Handler) -> CommandSpec {
    CommandSpec::new(name, arity, flags, handler).doc("server", "6.0.0", "")
}

const ADMIN_FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

static ACL_SUBS: &[CommandSpec] = &[
    sub("cat", -2, NOSCRIPT | LOADING | STALE, Handler::Sync(cat)),
    sub("deluser", -3, ADMIN_FLAGS, Handler::Async(deluser)),
    sub("dryrun", -4, ADMIN_FLAGS, Handler::Sync(dryrun)).doc(
        "server",
        "7.0.0",
        "Returns whether the user can execute the given command without executing the command.",
    ),
    sub(
        "genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        Handler::Sync(genpass),
    ),
    sub("getuser", 3, ADMIN_FLAGS, Handler::Sync(getuser)),
    sub("help", 2, LOADING | STALE, Handler::Sync(help)),
    sub("list", 2, ADMIN_FLAGS, Handler::Sync(list)),
    sub("load", 2, ADMIN_FLAGS, Handler::Async(load)),
    sub("log", -2, ADMIN_FLAGS, Handler::Sync(log)),
    sub("save", 2, ADMIN_FLAGS, Handler::Sync(save)),
    sub("setuser", -3, ADMIN_FLAGS, Handler::Async(setuser)),
    sub("users", 2, ADMIN_FLAGS, Handler::Sync(users)),
    sub(
        "whoami",
        2,
        NOSCRIPT | LOADING | STALE,
        Handler::Sync(whoami),
    ),
];

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("acl", -2, 0, Handler::Container)
    .doc(
        "server",
        "6.0.0",
        "A container for Access List Control commands",
    )
    .subs(ACL_SUBS)];

/// AUTH / HELLO AUTH: makes `name` the connection's user if `password` opens it; a failure
/// is logged (reason `auth`, the command as sent) and answered WRONGPASS.
pub fn authenticate(c: &mut Conn, args: &Args<'_>, name: &[u8], password: &[u8]) -> CmdResult {
    let (user, version) = {
        let acl = c.shard.shared.acl();
        let version = c
            .shard
            .shared
            .acl_version
            .load(std::sync::atomic::Ordering::Acquire);
        (acl.get(name).cloned(), version)
    };
    match user {
        Some(u) if u.check_password(password) => {
            c.authenticated = true;
            c.set_user(u, version);
            Ok(())
        }
        _ => {
            let context = super::permission::gate_context(c);
            super::permission::log(c, Denied::Auth, context, 0, args, name);
            Err(Error::WrongPass)
        }
    }
}

fn cat(c: &mut Conn, a: &Args) -> CmdResult {
    let cat = catalog();
    if a.len() == 2 {
        c.out.array(cat.category_names.len());
        for name in cat.category_names {
            c.out.bulk(name.as_bytes());
        }
        return Ok(());
    }
    if a.len() != 3 {
        return Err(Error::subcommand_syntax(a.get(1), "ACL"));
    }
    let name = String::from_utf8_lossy(a.get(2));
    let flag = cat.category(&name).ok_or_else(|| {
        Error::msg(format!(
            "Unknown category '{}'",
            String::from_utf8_lossy(&a.get(2)[..a.get(2).len().min(128)])
        ))
    })?;
    let names: Vec<&String> = cat
        .all()
        .filter(|&id| cat.categories[id] & flag != 0)
        .map(|id| &cat.names[id])
        .collect();
    c.out.array(names.len());
    for n in names {
        c.out.bulk(n.as_bytes());
    }
    Ok(())
}

fn setuser<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let name = a.get(2);
        if acl::user::has_spaces(name) {
            return Err(Error::msg(
                "Usernames can't contain spaces or null characters",
            ));
        }
        let rules: Vec<&[u8]> = a.rest(3).collect();
        let (old, new) = {
            let shared = c.shard.shared.clone();
            let mut acl = shared.acl();
            let changed = acl.set_user(catalog(), name, &rules).map_err(Error::msg)?;
            shared.acl_changed(&mut acl);
            changed
        };
        if let Some(old) = old {
            kill_pubsub_if_needed(c, &old, &new).await;
        }
        c.out.ok();
        Ok(())
    })
}

/// Closes the user's subscribed connections whose channels the new rules no longer allow
/// (`ACLKillPubsubClientsIfNeeded`).
async fn kill_pubsub_if_needed(c: &mut Conn, old: &User, new: &User) {
    if new.selectors.iter().any(|s| s.all_channels) {
        return;
    }
    let allowed: Vec<Vec<u8>> = new
        .selectors
        .iter()
        .flat_map(|s| s.channels.iter().cloned())
        .collect();
    let superset = old
        .selectors
        .iter()
        .all(|s| !s.all_channels && s.channels.iter().all(|ch| allowed.contains(ch)));
    if superset {
        return;
    }
    let name = new.name.clone();
    let caller = c.meta.id;
    let killed_self = c
        .shard
        .call_all(move |s| {
            super::server::client::kill_where(s, caller, |meta, sub| {
                *meta.user.borrow() == name && sub.is_some_and(|sub| sub.violates(&allowed))
            })
        })
        .await
        .into_iter()
        .any(|(_, me)| me);
    if killed_self {
        c.close_after_reply = true;
    }
}

fn deluser<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if a.rest(2).any(|n| n == b"default") {
            return Err(Error::msg("The 'default' user cannot be removed"));
        }
        let mut deleted = Vec::new();
        {
            let shared = c.shard.shared.clone();
            let mut acl = shared.acl();
            for name in a.rest(2) {
                if acl.users.remove(name).is_some() {
                    deleted.push(name.to_vec());
                }
            }
            shared.acl_changed(&mut acl);
        }
        kill_users(c, deleted.clone()).await;
        c.out.int(deleted.len() as i64);
        Ok(())
    })
}

/// Closes every connection authenticated as one of `names` (the caller after its reply).
async fn kill_users(c: &mut Conn, names: Vec<Vec<u8>>) {
    if names.is_empty() {
        return;
    }
    let caller = c.meta.id;
    let names = Arc::new(names);
    let killed_self = c
        .shard
        .call_all(move |s| {
            let names = names.clone();
            super::server::client::kill_where(s, caller, move |meta, _| {
                names.contains(&*meta.user.borrow())
            })
        })
        .await
        .into_iter()
        .any(|(_, me)| me);
    if killed_self {
        c.close_after_reply = true;
    }
}

fn getuser(c: &mut Conn, a: &Args) -> CmdResult {
    let Some(u) = c.shard.shared.acl().get(a.get(2)).cloned() else {
        c.out.null();
        return Ok(());
    };
    let cat = catalog();
    let out = &mut c.out;
    out.map(6);
    out.bulk(b"flags");
    let flags: Vec<&str> = acl::user::FLAG_NAMES
        .iter()
        .filter(|(f, _)| u.has(*f))
        .map(|(_, n)| *n)
        .collect();
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(u.passwords.len());
    for p in &u.passwords {
        out.bulk(p.as_bytes());
    }
    let selector = |out: &mut crate::resp::Reply, s: &acl::user::Selector| {
        out.bulk(b"commands");
        out.bulk(describe::commands(cat, s).as_bytes());
        out.bulk(b"keys");
        out.bulk(&describe::keys(s));
        out.bulk(b"channels");
        out.bulk(&describe::channels(s));
    };
    selector(out, u.root());
    out.bulk(b"selectors");
    out.array(u.selectors.len() - 1);
    for s in &u.selectors[1..] {
        out.map(3);
        selector(out, s);
    }
    Ok(())
}

fn list(c: &mut Conn, _a: &Args) -> CmdResult {
    let lines: Vec<Vec<u8>> = {
        let acl = c.shard.shared.acl();
        acl.users
            .iter()
            .map(|(name, u)| {
                let mut line = b"user ".to_vec();
                line.extend_from_slice(name);
                line.push(b' ');
                line.extend_from_slice(&describe::user(catalog(), u));
                line
            })
            .collect()
    };
    c.out.array(lines.len());
    for l in lines {
        c.out.bulk(&l);
    }
    Ok(())
}

fn users(c: &mut Conn, _a: &Args) -> CmdResult {
    let names: Vec<Vec<u8>> = c.shard.shared.acl().users.keys().cloned().collect();
    c.out.array(names.len());
    for n in names {
        c.out.bulk(&n);
    }
    Ok(())
}

fn whoami(c: &mut Conn, _a: &Args) -> CmdResult {
    c.out.bulk(&c.user.name.clone());
    Ok(())
}

const NO_ACL_FILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn acl_file(c: &Conn) -> Result<String, Error> {
    let file = c.shard.shared.config().get("aclfile").to_string();
    if file.is_empty() {
        return Err(Error::msg(NO_ACL_FILE));
    }
    Ok(file)
}

/// ACL LOAD: replaces every user with the file's, or changes nothing if any line is wrong.
/// As Redis, the connections of every user but `default` are closed.
fn load<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let file = acl_file(c)?;
        let text = std::fs::read(&file).map_err(|e| {
            Error::msg(format!(
                "Error loading ACLs, opening file '{file}': {}",
                crate::config::os_error_text(&e)
            ))
        })?;
        let old_names: Vec<Vec<u8>> = {
            let shared = c.shard.shared.clone();
            let mut acl = shared.acl();
            let users = acl
                .parse_file(catalog(), &file, &text)
                .map_err(Error::msg)?;
            let old = std::mem::replace(&mut acl.users, users);
            shared.acl_changed(&mut acl);
            old.into_keys().filter(|n| n != b"default").collect()
        };
        kill_users(c, old_names).await;
        c.out.ok();
        Ok(())
    })
}

fn save(c: &mut Conn, _a: &Args) -> CmdResult {
    let file = acl_file(c)?;
    let text = c.shard.shared.acl().file_text(catalog());
    write_atomically(&file, &text).map_err(|e| {
        eprintln!("Writing ACL file for ACL SAVE: {e}");
        Error::msg(
            "There was an error trying to save the ACLs. Please check the server logs for more information",
        )
    })?;
    c.out.ok();
    Ok(())
}

/// Writes a temp file beside `path` and renames it over, as Redis's `ACLSaveToFile`.
fn write_atomically(path: &str, text: &[u8]) -> std::io::Result<()> {
    let tmp = format!(
        "{path}.tmp-{}-{}",
        std::process::id(),
        crate::util::time::now_ms()
    );
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn genpass(c: &mut Conn, a: &Args) -> CmdResult {
    const MAX_BITS: i64 = 4096;
    let bits = match a.len() {
        2 => 256,
        3 => crate::util::num::arg_i64(a.get(2))?,
        _ => return Err(Error::subcommand_syntax(a.get(1), "ACL")),
    };
    if bits <= 0 || bits > MAX_BITS {
        return Err(Error::msg(format!(
            "ACL GENPASS argument must be the number of bits for the output password, a positive number up to {MAX_BITS}"
        )));
    }
    let chars = (bits as usize).div_ceil(4);
    let pass = acl::random_hex(chars)
        .ok_or_else(|| Error::msg("Failed to read random bytes from /dev/urandom"))?;
    c.out.bulk(pass.as_bytes());
    Ok(())
}

fn log(c: &mut Conn, a: &Args) -> CmdResult {
    let mut count = 10i64;
    match a.len() {
        2 => {}
        3 if a.is(2, "RESET") => {
            c.shard.shared.acl().log.clear();
            c.out.ok();
            return Ok(());
        }
        3 => count = crate::util::num::arg_i64(a.get(2))?.max(0),
        _ => return Err(Error::subcommand_syntax(a.get(1), "ACL")),
    }
    let entries: Vec<acl::LogEntry> = {
        let acl = c.shard.shared.acl();
        acl.log.iter().take(count as usize).cloned().collect()
    };
    let now = crate::util::time::now_ms();
    let out = &mut c.out;
    out.array(entries.len());
    for e in entries {
        out.map(7);
        out.bulk(b"count");
        out.int(e.count as i64);
        out.bulk(b"reason");
        out.bulk(match e.reason {
            Denied::Command => b"command".as_slice(),
            Denied::Key(_) => b"key",
            Denied::Channel(_) => b"channel",
            Denied::Auth => b"auth",
        });
        out.bulk(b"context");
        out.bulk(match e.context {
            Context::Toplevel => b"toplevel".as_slice(),
            Context::Multi => b"multi",
            Context::Lua => b"lua",
        });
        out.bulk(b"object");
        out.bulk(&e.object);
        out.bulk(b"username");
        out.bulk(&e.username);
        out.bulk(b"age-seconds");
        out.double((now - e.ctime) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
    }
    Ok(())
}

fn dryrun(c: &mut Conn, a: &Args) -> CmdResult {
    let Some(u) = c.shard.shared.acl().get(a.get(2)).cloned() else {
        return Err(Error::msg(format!(
            "User '{}' not found",
            String::from_utf8_lossy(a.get(2))
        )));
    };
    let t = super::table();
    let not_found = || {
        Error::msg(format!(
            "Command '{}' not found",
            String::from_utf8_lossy(a.get(3))
        ))
    };
    let mut idx = t.lookup(a.get(3)).ok_or_else(not_found)?;
    if !t.specs[idx].subcommands.is_empty() && a.len() > 4 {
        idx = t.lookup_sub(idx, a.get(4)).ok_or_else(not_found)?;
    }
    let words: Vec<&[u8]> = a.rest(3).collect();
    if !t.specs[idx].arity_ok(words.len()) {
        return Err(Error::WrongArity(t.full_names[idx].clone().into()));
    }
    let owned = crate::resp::OwnedArgs::from_iter(words.iter().copied());
    let args = owned.args();
    match check(&u, idx, &args) {
        Ok(()) => c.out.ok(),
        Err(d) => {
            let text = match d {
                Denied::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    t.full_names[idx]
                ),
                Denied::Key(p) => format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(args.get(p))
                ),
                _ => format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(args.get(d.pos()))
                ),
            };
            c.out.bulk(text.as_bytes());
        }
    }
    Ok(())
}

fn help(c: &mut Conn, _a: &Args) -> CmdResult {
    super::server::help_reply(
        &mut c.out,
        b"ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    );
    Ok(())
}

/// The ACL state a server starts with (`ACLLoadUsersAtStartup`): the default user with
/// `requirepass`, then the `user` lines of the configuration or the `aclfile`, not both.
pub fn startup_acl(config: &crate::config::Config) -> Result<acl::Acl, String> {
    let cat = catalog();
    let mut state = acl::Acl::new(cat);
    state.pubsub_all = config.get("acl-pubsub-default") == "allchannels";
    state.log_max_len = config.get_i64("acllog-max-len") as usize;
    state.set_requirepass(cat, config.get("requirepass").as_bytes());
    let file = config.get("aclfile");
    if !file.is_empty() && !config.users.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    let mut seen: Vec<&[u8]> = Vec::new();
    for (words, line) in &config.users {
        let name = words[0].as_bytes();
        let rules: Vec<&[u8]> = words[1..].iter().map(|w| w.as_bytes()).collect();
        let fatal = |why: String| {
            format!("\n*** FATAL CONFIG FILE ERROR (redcell) ***\n>>> '{line}'\n{why}")
        };
        if seen.contains(&name) {
            return Err(fatal(format!(
                "Error in user declaration '{}': {}",
                words[0],
                acl::RuleError::Duplicate.text()
            )));
        }
        seen.push(name);
        if acl::user::has_spaces(name) {
            return Err("Spaces not allowed in ACL usernames".into());
        }
        // A declared user starts from scratch; `default` exists already and is `reset`
        // (which, unlike a new user, sets `sanitize-payload`), as Redis does.
        let mut user = if name == b"default" {
            let mut u = (*state.default_user()).clone();
            let _ = u.apply(cat, b"reset", state.pubsub_all);
            u
        } else {
            User::new(cat, name, state.pubsub_all)
        };
        let merged = acl::user::merge_selector_args(&rules).map_err(|i| {
            fatal(format!(
                "Error in user declaration '{}': Syntax error",
                words[i + 1]
            ))
        })?;
        for op in &merged {
            user.apply(cat, op, state.pubsub_all).map_err(|e| {
                fatal(format!(
                    "Error in user declaration '{}': {}",
                    String::from_utf8_lossy(op),
                    e.text()
                ))
            })?;
        }
        state.users.insert(name.to_vec(), Arc::new(user));
    }
    if !file.is_empty() {
        let text = std::fs::read(file).map_err(|e| {
            format!(
                "Aborting Redis startup because of ACL errors: Error loading ACLs, opening file '{file}': {}",
                crate::config::os_error_text(&e)
            )
        })?;
        state.users = state
            .parse_file(cat, file, &text)
            .map_err(|e| format!("Aborting Redis startup because of ACL errors: {e}"))?;
    }
    Ok(state)
}

/// CONFIG SET of an ACL-related directive: applies the new value to the users and log.
pub fn config_changed(shared: &crate::shard::Shared, names: &[&[u8]]) {
    let config = shared.config().clone();
    let mut acl = shared.acl();
    acl.pubsub_all = config.get("acl-pubsub-default") == "allchannels";
    acl.log_max_len = config.get_i64("acllog-max-len") as usize;
    let max = acl.log_max_len;
    acl.log.truncate(max);
    if names.iter().any(|n| n.eq_ignore_ascii_case(b"requirepass")) {
        acl.set_requirepass(catalog(), config.get("requirepass").as_bytes());
        shared.acl_changed(&mut acl);
    }
}
