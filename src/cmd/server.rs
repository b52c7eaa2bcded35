//! Server commands (Redis's server.c and friends): DBSIZE, FLUSHALL, INFO, CLIENT, CONFIG, COMMAND ...
//!
//! The bigger families live in submodules; this file holds the table and the small commands.

pub(crate) mod client;
mod command;
mod config;
mod debug;
mod info;
mod lolwut;
mod memory;
mod observe;
pub(crate) mod tracking;

use crate::cmd::{flag::*, CommandSpec, Ctx, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::util::time::now_us;

/// Flags of most CLIENT subcommands.
const CLIENT_FLAGS: u32 = NOSCRIPT | LOADING | STALE;

/// A CLIENT/CONFIG/COMMAND subcommand spec (names, arities and flags as Redis 7.0 reports them).
const fn sub(name: &'static str, arity: i32, flags: u32, handler: Handler) -> CommandSpec {
    CommandSpec::new(name, arity, flags, handler)
}

static CLIENT_SUBS: &[CommandSpec] = &[
    sub("id", 2, CLIENT_FLAGS, Handler::Sync(client::id))
        .acl(&["@connection"])
        .doc(
            "connection",
            "5.0.0",
            "Returns the client ID for the current connection",
        ),
    sub("setname", 3, CLIENT_FLAGS, Handler::Sync(client::setname))
        .acl(&["@connection"])
        .doc("connection", "2.6.9", "Set the current connection name"),
    sub("getname", 2, CLIENT_FLAGS, Handler::Sync(client::getname))
        .acl(&["@connection"])
        .doc("connection", "2.6.9", "Get the current connection name"),
    sub(
        "list",
        -2,
        ADMIN | CLIENT_FLAGS,
        Handler::Async(client::list),
    )
    .acl(&["@connection"])
    .doc("connection", "2.4.0", "Get the list of client connections"),
    sub("info", 2, CLIENT_FLAGS, Handler::Sync(client::info))
        .acl(&["@connection"])
        .doc(
            "connection",
            "6.2.0",
            "Returns information about the current client connection.",
        ),
    sub(
        "kill",
        -3,
        ADMIN | CLIENT_FLAGS,
        Handler::Async(client::kill),
    )
    .acl(&["@connection"])
    .doc("connection", "2.4.0", "Kill the connection of a client"),
    // Redis 7.2's; 7.0 has no CLIENT SETINFO.
    sub("setinfo", 4, CLIENT_FLAGS, Handler::Sync(client::setinfo))
        .acl(&["@connection"])
        .doc(
            "connection",
            "7.2.0",
            "Sets information specific to the client or connection.",
        ),
    sub(
        "no-evict",
        3,
        ADMIN | CLIENT_FLAGS,
        Handler::Sync(client::no_evict),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "7.0.0",
        "Set client eviction mode for the current connection",
    ),
    sub(
        "pause",
        -3,
        ADMIN | CLIENT_FLAGS,
        Handler::Sync(client::pause),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "2.9.50",
        "Stop processing commands from clients for some time",
    ),
    sub("reply", 3, CLIENT_FLAGS, Handler::Sync(client::reply))
        .acl(&["@connection"])
        .doc(
            "connection",
            "3.2.0",
            "Instruct the server whether to reply to commands",
        ),
    sub(
        "unblock",
        -3,
        ADMIN | CLIENT_FLAGS,
        Handler::Async(client::unblock),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "5.0.0",
        "Unblock a client blocked in a blocking command from a different connection",
    ),
    sub(
        "unpause",
        2,
        ADMIN | CLIENT_FLAGS,
        Handler::Sync(client::unpause),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "6.2.0",
        "Resume processing of clients that were paused",
    ),
    sub(
        "tracking",
        -3,
        CLIENT_FLAGS,
        Handler::Async(tracking::tracking),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "6.0.0",
        "Enable or disable server assisted client side caching support",
    ),
    sub("caching", 3, CLIENT_FLAGS, Handler::Sync(tracking::caching))
        .acl(&["@connection"])
        .doc(
            "connection",
            "6.0.0",
            "Instruct the server about tracking or not keys in the next request",
        ),
    sub(
        "getredir",
        2,
        CLIENT_FLAGS,
        Handler::Sync(tracking::getredir),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "6.0.0",
        "Get tracking notifications redirection client ID if any",
    ),
    sub(
        "trackinginfo",
        2,
        CLIENT_FLAGS,
        Handler::Sync(tracking::trackinginfo),
    )
    .acl(&["@connection"])
    .doc(
        "connection",
        "6.2.0",
        "Return information about server assisted client side caching for the current connection",
    ),
    sub("help", 2, LOADING | STALE, Handler::Sync(client::help))
        .acl(&["@connection"])
        .doc(
            "connection",
            "5.0.0",
            "Show helpful text about the different subcommands",
        ),
];

static CONFIG_SUBS: &[CommandSpec] = &[
    sub(
        "get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Async(config::get),
    )
    .doc(
        "server",
        "2.0.0",
        "Get the values of configuration parameters",
    ),
    sub(
        "set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Async(config::set),
    )
    .doc(
        "server",
        "2.0.0",
        "Set configuration parameters to the given values",
    ),
    sub(
        "resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Async(config::resetstat),
    )
    .doc("server", "2.0.0", "Reset the stats returned by INFO"),
    sub(
        "rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Async(config::rewrite),
    )
    .doc(
        "server",
        "2.8.0",
        "Rewrite the configuration file with the in memory configuration",
    ),
    sub("help", 2, LOADING | STALE, Handler::Sync(config::help)).doc(
        "server",
        "5.0.0",
        "Show helpful text about the different subcommands",
    ),
];

/// COMMAND's subcommands. COMMAND itself is not a `Container`: without a subcommand it
/// returns the whole table, so its own handler dispatches these (see `command::root`).
static COMMAND_SUBS: &[CommandSpec] = &[
    sub("count", 2, LOADING | STALE, Handler::Sync(command::count))
        .acl(&["@connection"])
        .doc("server", "2.8.13", "Get total number of Redis commands"),
    sub("docs", -2, LOADING | STALE, Handler::Sync(command::docs))
        .acl(&["@connection"])
        .doc(
            "server",
            "7.0.0",
            "Get array of specific Redis command documentation",
        ),
    sub(
        "getkeys",
        -4,
        LOADING | STALE,
        Handler::Sync(command::getkeys),
    )
    .acl(&["@connection"])
    .doc(
        "server",
        "2.8.13",
        "Extract keys given a full Redis command",
    ),
    sub(
        "getkeysandflags",
        -4,
        LOADING | STALE,
        Handler::Sync(command::getkeysandflags),
    )
    .acl(&["@connection"])
    .doc(
        "server",
        "7.0.0",
        "Extract keys and access flags given a full Redis command",
    ),
    sub("help", 2, LOADING | STALE, Handler::Sync(command::help))
        .acl(&["@connection"])
        .doc(
            "server",
            "5.0.0",
            "Show helpful text about the different subcommands",
        ),
    sub("info", -2, LOADING | STALE, Handler::Sync(command::info))
        .acl(&["@connection"])
        .doc(
            "server",
            "2.8.13",
            "Get array of specific Redis command details, or all when no argument is given.",
        ),
    sub("list", -2, LOADING | STALE, Handler::Sync(command::list))
        .acl(&["@connection"])
        .doc("server", "7.0.0", "Get an array of Redis command names"),
];

static SLOWLOG_SUBS: &[CommandSpec] = &[
    sub(
        "get",
        -2,
        ADMIN | LOADING | STALE,
        Handler::Async(observe::slowlog_get),
    )
    .doc("server", "2.2.12", "Get the slow log's entries"),
    sub(
        "len",
        2,
        ADMIN | LOADING | STALE,
        Handler::Async(observe::slowlog_len),
    )
    .doc("server", "2.2.12", "Get the slow log's length"),
    sub(
        "reset",
        2,
        ADMIN | LOADING | STALE,
        Handler::Async(observe::slowlog_reset),
    )
    .doc("server", "2.2.12", "Clear all entries from the slow log"),
    sub(
        "help",
        2,
        LOADING | STALE,
        Handler::Sync(observe::slowlog_help),
    )
    .doc(
        "server",
        "6.2.0",
        "Show helpful text about the different subcommands",
    ),
];

/// Flags of the LATENCY subcommands.
const LATENCY_FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

static LATENCY_SUBS: &[CommandSpec] = &[
    sub(
        "doctor",
        2,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_doctor),
    )
    .doc(
        "server",
        "2.8.13",
        "Return a human readable latency analysis report.",
    ),
    sub(
        "graph",
        3,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_graph),
    )
    .doc("server", "2.8.13", "Return a latency graph for the event."),
    sub(
        "histogram",
        -2,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_histogram),
    )
    .doc(
        "server",
        "7.0.0",
        "Return the cumulative distribution of latencies of a subset of commands or all.",
    ),
    sub(
        "history",
        3,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_history),
    )
    .doc(
        "server",
        "2.8.13",
        "Return timestamp-latency samples for the event.",
    ),
    sub(
        "latest",
        2,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_latest),
    )
    .doc(
        "server",
        "2.8.13",
        "Return the latest latency samples for all events.",
    ),
    sub(
        "reset",
        -2,
        LATENCY_FLAGS,
        Handler::Async(observe::latency_reset),
    )
    .doc(
        "server",
        "2.8.13",
        "Reset latency data for one or more events.",
    ),
    sub(
        "help",
        2,
        LOADING | STALE,
        Handler::Sync(observe::latency_help),
    )
    .doc(
        "server",
        "2.8.13",
        "Show helpful text about the different subcommands.",
    ),
];

static MEMORY_SUBS: &[CommandSpec] = &[
    sub("doctor", 2, 0, Handler::Async(memory::doctor)).doc(
        "server",
        "4.0.0",
        "Outputs memory problems report",
    ),
    sub("help", 2, LOADING | STALE, Handler::Sync(memory::help)).doc(
        "server",
        "4.0.0",
        "Show helpful text about the different subcommands",
    ),
    sub("malloc-stats", 2, 0, Handler::Sync(memory::malloc_stats)).doc(
        "server",
        "4.0.0",
        "Show allocator internal stats",
    ),
    sub("purge", 2, 0, Handler::Async(memory::purge)).doc(
        "server",
        "4.0.0",
        "Ask the allocator to release memory",
    ),
    sub("stats", 2, 0, Handler::Async(memory::stats)).doc(
        "server",
        "4.0.0",
        "Show memory usage details",
    ),
    sub("usage", -3, READONLY, Handler::Keyed(memory::usage))
        // Redis's key spec is `RO` without `ACCESS`: no key permission is needed.
        .access(crate::acl::NONE, crate::acl::NONE)
        .keys(2, 2, 1)
        .doc("server", "4.0.0", "Estimate the memory usage of a key"),
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("memory", -2, 0, Handler::Container)
        .doc(
            "server",
            "4.0.0",
            "A container for memory diagnostics commands",
        )
        .subs(MEMORY_SUBS),
    CommandSpec::new("slowlog", -2, 0, Handler::Container)
        .doc("server", "2.2.12", "A container for slow log commands")
        .subs(SLOWLOG_SUBS),
    CommandSpec::new("latency", -2, 0, Handler::Container)
        .doc(
            "server",
            "2.8.13",
            "A container for latency diagnostics commands",
        )
        .subs(LATENCY_SUBS),
    CommandSpec::new(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Sync(observe::monitor),
    )
    .doc(
        "server",
        "1.0.0",
        "Listen for all requests received by the server in real time",
    ),
    CommandSpec::whole("dbsize", 1, READONLY | FAST, dbsize)
        .acl(&["@keyspace"])
        .doc(
            "server",
            "1.0.0",
            "Return the number of keys in the selected database",
        ),
    CommandSpec::whole("flushall", -1, WRITE, flushall)
        .acl(&["@keyspace", "@dangerous"])
        .doc("server", "1.0.0", "Remove all keys from all databases"),
    CommandSpec::whole("flushdb", -1, WRITE, flushdb)
        .acl(&["@keyspace", "@dangerous"])
        .doc(
            "server",
            "1.0.0",
            "Remove all keys from the current database",
        ),
    CommandSpec::new("client", -2, 0, Handler::Container)
        .doc(
            "connection",
            "2.4.0",
            "A container for client connection commands",
        )
        .subs(CLIENT_SUBS),
    CommandSpec::new("config", -2, 0, Handler::Container)
        .doc(
            "server",
            "2.0.0",
            "A container for server configuration commands",
        )
        .subs(CONFIG_SUBS),
    CommandSpec::new("command", -1, LOADING | STALE, Handler::Sync(command::root))
        .acl(&["@connection"])
        .doc("server", "2.8.13", "Get array of Redis command details")
        .subs(COMMAND_SUBS),
    CommandSpec::new("info", -1, LOADING | STALE, Handler::Async(info::info))
        .acl(&["@dangerous"])
        .doc(
            "server",
            "1.0.0",
            "Get information and statistics about the server",
        ),
    CommandSpec::new("lolwut", -1, READONLY | FAST, Handler::Sync(lolwut::lolwut)).doc(
        "server",
        "5.0.0",
        "Display some computer art and the Redis version",
    ),
    CommandSpec::new("time", 1, LOADING | STALE | FAST, Handler::Sync(time)).doc(
        "server",
        "2.6.0",
        "Return the current server time",
    ),
    CommandSpec::new(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        Handler::Async(debug::debug),
    )
    .doc("server", "1.0.0", "A container for debugging commands"),
];

/// CLIENT SETNAME rules: no spaces or newlines.
pub fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(Error::msg(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// Redis's `addReplyHelp`: a header naming the command as the client typed it, the lines, and
/// the HELP footer, each a status reply.
pub(crate) fn help_reply(out: &mut Reply, cmd: &[u8], lines: &[&str]) {
    out.array(lines.len() + 3);
    let cmd = String::from_utf8_lossy(cmd).to_ascii_uppercase();
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        out.simple(line);
    }
    out.simple("HELP");
    out.simple("    Prints this help.");
}

/// Whether the client connects over loopback or the Unix socket (Redis's `islocalClient`).
fn is_local(c: &Conn) -> bool {
    c.meta.unix() || c.meta.addr.starts_with("127.0.0.1:") || c.meta.addr.starts_with("[::1]:")
}

fn dbsize(c: &mut Ctx, _a: &Args) -> CmdResult {
    c.out.int(c.db.len() as i64);
    Ok(())
}

/// FLUSHALL / FLUSHDB's optional ASYNC or SYNC (both flush at once here).
fn flush_mode(a: &Args) -> CmdResult {
    match a.len() {
        1 => Ok(()),
        2 if a.is(1, "ASYNC") || a.is(1, "SYNC") => Ok(()),
        _ => Err(Error::Syntax),
    }
}

/// Empties every shard's database `db` (all of them for None); the watchers of keys that
/// existed are touched first (`touchAllWatchedKeysInDb`). Returns how many keys went.
fn flush_dbs(c: &mut Ctx, db: Option<usize>) -> u64 {
    let now = c.now;
    let mut removed = 0;
    for data in c.db.parts().each() {
        for (i, ks) in data.dbs().iter_mut().enumerate() {
            if db.is_some_and(|d| d != i) {
                continue;
            }
            ks.touch_all_watched(None, now);
            removed += ks.len() as u64;
            ks.flush();
        }
    }
    // Client-side caching: every tracking client is told that every key is invalid, as
    // Redis's `trackingInvalidateKeysOnFlush` does for FLUSHDB too.
    let shard = c.shard;
    crate::shard::tracking::flushed(shard, c.db.parts().each());
    removed
}

/// FLUSHALL also stops a running save (it would write what is flushed) and, with save
/// points configured, saves the empty dataset once the command is over (Redis's
/// `flushAllDataAndResetRDB`; the connection task calls `persist`).
fn flushall(c: &mut Ctx, a: &Args) -> CmdResult {
    flush_mode(a)?;
    for data in c.db.parts().each() {
        crate::rdb::snapshot::abort(data);
    }
    c.shard.save_after_flushall.set(true);
    let removed = flush_dbs(c, None);
    c.touches_all_dbs();
    // Propagated even when nothing was there, as Redis forces it.
    c.dirty(removed);
    c.force_propagate();
    c.out.ok();
    Ok(())
}

fn flushdb(c: &mut Ctx, a: &Args) -> CmdResult {
    flush_mode(a)?;
    let db = c.db.index();
    let removed = flush_dbs(c, Some(db));
    c.dirty(removed);
    c.force_propagate();
    c.out.ok();
    Ok(())
}

/// TIME: `[unix seconds, microseconds]` as bulk strings.
fn time(c: &mut Conn, _a: &Args) -> CmdResult {
    let us = now_us();
    c.out.array(2);
    c.out.bulk_int(us / 1_000_000);
    c.out.bulk_int(us % 1_000_000);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_has_header_and_footer() {
        let mut out = Reply::new(false);
        help_reply(&mut out, b"client", &["ID", "    Return the ID."]);
        assert_eq!(
            out.buf,
            b"*5\r\n+CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+ID\r\n+    Return the ID.\r\n+HELP\r\n+    Prints this help.\r\n"
        );
    }

    #[test]
    fn client_names_are_printable_ascii() {
        assert!(validate_client_name(b"abc-1").is_ok());
        assert!(validate_client_name(b"").is_ok());
        assert!(validate_client_name(b"a b").is_err());
        assert!(validate_client_name(b"a\n").is_err());
    }
}
