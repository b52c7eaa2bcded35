//! COMMAND and its subcommands: the command table (`crate::cmd::table()`) as Redis 7.0 reports it.
//!
//! Key specs are built from each spec's first/last/step: one `index` begin-search and one
//! `range` find-keys. Their flags are derived from the command's READONLY/WRITE flags
//! (`RO access` / `RW update`), since the table does not record Redis's finer key flags
//! (`OW`, `RM`, `insert`, `delete`...). Command tips and argument docs are not recorded
//! either, so tips are always empty and COMMAND DOCS has no `arguments`.

use crate::cmd::{flag, table, CommandSpec, Handler, Table};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::util::glob::glob_match;

use super::help_reply;

/// COMMAND with no subcommand lists the whole table; otherwise dispatches to the subcommand
/// (COMMAND is not a `Container` because it also works alone).
pub fn root(c: &mut Conn, a: &Args) -> CmdResult {
    let t = table();
    if a.len() == 1 {
        c.out.array(t.top.len());
        for &idx in &t.top {
            write_info(&mut c.out, t, idx);
        }
        return Ok(());
    }
    let sub = t
        .index_of("command")
        .and_then(|top| t.lookup_sub(top, a.get(1)))
        .ok_or_else(|| Error::unknown_subcommand(a.get(1), "COMMAND"))?;
    if !t.specs[sub].arity_ok(a.len()) {
        return Err(Error::WrongArity(t.full_names[sub].clone().into()));
    }
    c.meta.last_cmd.set(t.full_names[sub].as_str());
    match t.specs[sub].handler {
        Handler::Sync(f) => f(c, a),
        _ => Err(Error::unknown_subcommand(a.get(1), "COMMAND")),
    }
}

pub fn count(c: &mut Conn, _a: &Args) -> CmdResult {
    c.out.int(table().top.len() as i64);
    Ok(())
}

/// COMMAND INFO [name ...]: all commands without names; a null for each unknown name.
pub fn info(c: &mut Conn, a: &Args) -> CmdResult {
    let t = table();
    if a.len() == 2 {
        c.out.array(t.top.len());
        for &idx in &t.top {
            write_info(&mut c.out, t, idx);
        }
        return Ok(());
    }
    c.out.array(a.len() - 2);
    for name in a.rest(2) {
        match t.lookup(name) {
            Some(idx) => write_info(&mut c.out, t, idx),
            None => c.out.null(),
        }
    }
    Ok(())
}

/// COMMAND DOCS [name ...]: a map of name to docs; unknown names are left out.
pub fn docs(c: &mut Conn, a: &Args) -> CmdResult {
    let t = table();
    let found: Vec<usize> = if a.len() == 2 {
        t.top.clone()
    } else {
        a.rest(2).filter_map(|n| t.lookup(n)).collect()
    };
    c.out.map(found.len());
    for idx in found {
        c.out.bulk(t.full_names[idx].as_bytes());
        write_docs(&mut c.out, t, idx);
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: full names,
/// subcommands included.
pub fn list(c: &mut Conn, a: &Args) -> CmdResult {
    let filter = parse_list_filter(a)?;
    let t = table();
    let names: Vec<&str> = (0..t.len())
        .filter(|&i| filter.keeps(t.specs[i], &t.full_names[i]))
        .map(|i| t.full_names[i].as_str())
        .collect();
    c.out.array(names.len());
    for n in names {
        c.out.bulk(n.as_bytes());
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum ListFilter {
    None,
    /// No modules can be loaded, so no command belongs to any.
    Module,
    AclCat(String),
    Pattern(Vec<u8>),
}

fn parse_list_filter(a: &Args) -> Result<ListFilter, Error> {
    let mut filter = ListFilter::None;
    let mut i = 2;
    while i < a.len() {
        if !(a.is(i, "FILTERBY") && a.len() - 1 - i == 2) {
            return Err(Error::Syntax);
        }
        let arg = a.get(i + 2);
        filter = if a.is(i + 1, "MODULE") {
            ListFilter::Module
        } else if a.is(i + 1, "ACLCAT") {
            ListFilter::AclCat(format!("@{}", String::from_utf8_lossy(arg)))
        } else if a.is(i + 1, "PATTERN") {
            ListFilter::Pattern(arg.to_ascii_lowercase())
        } else {
            return Err(Error::Syntax);
        };
        i += 3;
    }
    Ok(filter)
}

impl ListFilter {
    fn keeps(&self, spec: &CommandSpec, full_name: &str) -> bool {
        match self {
            ListFilter::None => true,
            ListFilter::Module => false,
            ListFilter::AclCat(cat) => {
                crate::cmd::category::bit(cat).is_some_and(|b| spec.categories() & b != 0)
            }
            ListFilter::Pattern(p) => glob_match(p, full_name.as_bytes()),
        }
    }
}

/// The command (or `container|sub`) a GETKEYS request names, as Redis's `lookupCommand`.
fn target(a: &Args) -> Result<usize, Error> {
    let t = table();
    let invalid = || Error::msg("Invalid command specified");
    let top = t.lookup(a.get(2)).ok_or_else(invalid)?;
    if a.len() == 3 || t.specs[top].subcommands.is_empty() {
        return Ok(top);
    }
    t.lookup_sub(top, a.get(3)).ok_or_else(invalid)
}

/// The key positions (relative to the named command) of a GETKEYS request.
fn getkeys_positions(a: &Args) -> Result<Vec<usize>, Error> {
    let spec = table().specs[target(a)?];
    if let Some(find) = spec.key_finder {
        // The named command's own arguments, as it would receive them.
        let own = crate::resp::OwnedArgs::from_iter(a.rest(2));
        return match find(&own.args()) {
            Some(keys) if !keys.is_empty() => Ok(keys),
            _ => Err(Error::msg("Invalid arguments specified for command")),
        };
    }
    if spec.first_key <= 0 {
        return Err(Error::msg("The command has no key arguments"));
    }
    let argc = a.len() - 2;
    if !spec.arity_ok(argc) {
        return Err(Error::msg(
            "Invalid number of arguments specified for command",
        ));
    }
    let positions: Vec<usize> = spec.key_positions(argc).collect();
    if positions.is_empty() {
        return Err(Error::msg("Invalid arguments specified for command"));
    }
    Ok(positions)
}

pub fn getkeys(c: &mut Conn, a: &Args) -> CmdResult {
    let positions = getkeys_positions(a)?;
    c.out.array(positions.len());
    for p in positions {
        c.out.bulk(a.get(p + 2));
    }
    Ok(())
}

pub fn getkeysandflags(c: &mut Conn, a: &Args) -> CmdResult {
    let positions = getkeys_positions(a)?;
    let flags = key_flags(table().specs[target(a)?]);
    c.out.array(positions.len());
    for p in positions {
        c.out.array(2);
        c.out.bulk(a.get(p + 2));
        write_statuses(&mut c.out, flags);
    }
    Ok(())
}

pub fn help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    );
    Ok(())
}

/// The key-spec flags we can derive from the command flags.
fn key_flags(spec: &CommandSpec) -> &'static [&'static str] {
    if spec.has(flag::WRITE) {
        &["RW", "update"]
    } else if spec.has(flag::READONLY) {
        &["RO", "access"]
    } else {
        &[]
    }
}

/// A set of status replies (Redis's flag sets).
fn write_statuses(out: &mut Reply, items: &[&str]) {
    out.set(items.len());
    for i in items {
        out.simple(i);
    }
}

/// The command flags COMMAND shows, in Redis's order (`may_replicate` is hidden, as in Redis).
fn shown_flags(spec: &CommandSpec) -> Vec<&'static str> {
    flag::NAMES
        .iter()
        .filter(|(f, name)| spec.has(*f) && *name != "may_replicate")
        .map(|(_, name)| *name)
        .collect()
}

/// The ACL categories, `@`-prefixed, in Redis's order.
fn shown_acl(spec: &CommandSpec) -> Vec<String> {
    crate::cmd::category::names(spec.categories())
        .map(|n| format!("@{n}"))
        .collect()
}

/// Indexes of a command's subcommands in the table.
fn sub_indexes(t: &Table, idx: usize) -> Vec<usize> {
    let spec = t.specs[idx];
    spec.subcommands
        .iter()
        .filter_map(|s| t.index_of(&format!("{}|{}", t.full_names[idx], s.name)))
        .collect()
}

/// One command's COMMAND INFO entry: [name, arity, flags, first, last, step, acl categories,
/// tips, key specs, subcommands].
fn write_info(out: &mut Reply, t: &Table, idx: usize) {
    let spec = t.specs[idx];
    out.array(10);
    out.bulk(t.full_names[idx].as_bytes());
    out.int(spec.arity as i64);
    write_statuses(out, &shown_flags(spec));
    out.int(spec.first_key as i64);
    out.int(spec.last_key as i64);
    out.int(spec.step as i64);
    let acl = shown_acl(spec);
    write_statuses(out, &acl.iter().map(String::as_str).collect::<Vec<_>>());
    out.set(0);
    write_key_specs(out, spec);
    let subs = sub_indexes(t, idx);
    if subs.is_empty() {
        out.set(0);
    } else {
        out.array(subs.len());
        for s in subs {
            write_info(out, t, s);
        }
    }
}

/// The key specs: one index/range spec from first/last/step, none for keyless commands.
fn write_key_specs(out: &mut Reply, spec: &CommandSpec) {
    if spec.first_key <= 0 {
        out.set(0);
        return;
    }
    // Redis's range `lastkey` is relative to the first key when not counted from the end.
    let lastkey = if spec.last_key >= 0 {
        spec.last_key - spec.first_key
    } else {
        spec.last_key
    };
    out.set(1);
    out.map(3);
    out.bulk(b"flags");
    write_statuses(out, key_flags(spec));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(spec.first_key as i64);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"range");
    out.bulk(b"spec");
    out.map(3);
    out.bulk(b"lastkey");
    out.int(lastkey as i64);
    out.bulk(b"keystep");
    out.int(spec.step as i64);
    out.bulk(b"limit");
    out.int(0);
}

/// One command's COMMAND DOCS map: summary, since, group and subcommands. The summary is
/// always present (redis-cli reads it for every command it lists).
fn write_docs(out: &mut Reply, t: &Table, idx: usize) {
    let spec = t.specs[idx];
    let subs = sub_indexes(t, idx);
    out.map(3 + usize::from(!subs.is_empty()));
    out.bulk(b"summary");
    out.bulk(spec.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(spec.since.as_bytes());
    out.bulk(b"group");
    out.bulk(spec.group.as_bytes());
    if !subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(subs.len());
        for s in subs {
            out.bulk(t.full_names[s].as_bytes());
            write_docs(out, t, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    fn info_of(name: &str) -> Vec<u8> {
        let t = table();
        let mut out = Reply::new(false);
        write_info(&mut out, t, t.lookup(name.as_bytes()).unwrap());
        out.buf
    }

    #[test]
    fn get_info_matches_redis() {
        // Byte for byte what Redis 7.0.15 answers to COMMAND INFO get (RESP2).
        let expected = "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n\
            *3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n\
            $12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n\
            $9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n\
            $7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(String::from_utf8_lossy(&info_of("get")), expected);
    }

    #[test]
    fn mset_key_range_counts_from_the_end() {
        let text = String::from_utf8_lossy(&info_of("mset")).into_owned();
        assert!(text.starts_with("*10\r\n$4\r\nmset\r\n:-3\r\n"));
        assert!(text.contains(":1\r\n:-1\r\n:2\r\n"), "{text}");
        assert!(text.contains("$7\r\nlastkey\r\n:-1\r\n$7\r\nkeystep\r\n:2\r\n"));
    }

    #[test]
    fn containers_list_their_subcommands() {
        let text = String::from_utf8_lossy(&info_of("client")).into_owned();
        assert!(text.starts_with(
            "*10\r\n$6\r\nclient\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n*0\r\n*0\r\n"
        ));
        assert!(text.contains(
            "$11\r\nclient|list\r\n:-2\r\n*4\r\n+admin\r\n+noscript\r\n+loading\r\n+stale\r\n"
        ));
        assert!(text.contains("*4\r\n+@admin\r\n+@slow\r\n+@dangerous\r\n+@connection\r\n"));
    }

    #[test]
    fn list_filters() {
        let names = |words: &[&str]| -> Result<Vec<String>, String> {
            let f = with_args(words, parse_list_filter).map_err(|e| e.render().into_owned())?;
            let t = table();
            Ok((0..t.len())
                .filter(|&i| f.keeps(t.specs[i], &t.full_names[i]))
                .map(|i| t.full_names[i].clone())
                .collect())
        };
        let clients = names(&["command", "list", "filterby", "pattern", "CLIENT*"]).unwrap();
        assert!(clients.contains(&"client".to_string()));
        assert!(clients.contains(&"client|kill".to_string()));
        assert!(clients.iter().all(|n| n.starts_with("client")));
        let strings = names(&["command", "list", "filterby", "aclcat", "string"]).unwrap();
        assert!(strings.contains(&"get".to_string()));
        assert!(!strings.contains(&"client".to_string()));
        assert!(names(&["command", "list", "filterby", "aclcat", "nope"])
            .unwrap()
            .is_empty());
        assert!(names(&["command", "list", "filterby", "module", "x"])
            .unwrap()
            .is_empty());
        assert_eq!(
            names(&["command", "list", "x"]),
            Err("ERR syntax error".into())
        );
        assert_eq!(
            names(&["command", "list", "filterby", "foo", "x"]),
            Err("ERR syntax error".into())
        );
        assert_eq!(
            names(&["command", "list", "filterby", "aclcat", "string", "x"]),
            Err("ERR syntax error".into())
        );
    }

    #[test]
    fn getkeys_errors_and_positions() {
        let keys = |words: &[&str]| -> Result<Vec<usize>, String> {
            with_args(words, getkeys_positions).map_err(|e| e.render().into_owned())
        };
        assert_eq!(
            keys(&["command", "getkeys", "mset", "a", "b", "c", "d"]),
            Ok(vec![1, 3])
        );
        assert_eq!(keys(&["command", "getkeys", "GET", "a"]), Ok(vec![1]));
        assert_eq!(
            keys(&["command", "getkeys", "nosuch", "a"]),
            Err("ERR Invalid command specified".into())
        );
        assert_eq!(
            keys(&["command", "getkeys", "client", "nosuch"]),
            Err("ERR Invalid command specified".into())
        );
        assert_eq!(
            keys(&["command", "getkeys", "config", "get", "x"]),
            Err("ERR The command has no key arguments".into())
        );
        assert_eq!(
            keys(&["command", "getkeys", "get", "a", "b"]),
            Err("ERR Invalid number of arguments specified for command".into())
        );
    }
}
