//! CLIENT subcommands: names and ids, CLIENT LIST/INFO lines, and killing connections on any shard.

use std::borrow::Cow;
use std::os::fd::BorrowedFd;
use std::rc::Rc;

use crate::cmd::BoxFuture;
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::{ClientMeta, Shard};
use crate::util::num::parse_i64_strict;
use crate::util::time::now_ms;

use super::{help_reply, validate_client_name};

/// The connection's read buffer starts at this size (conn.rs `READ_CHUNK`) and so does its
/// reply buffer (`Reply::new`); neither is tracked per client, so CLIENT LIST reports them.
const BUF_SIZE: usize = 16 * 1024;

pub fn id(c: &mut Conn, _a: &Args) -> CmdResult {
    c.out.int(c.meta.id as i64);
    Ok(())
}

/// An empty name removes the name, as in Redis.
pub fn setname(c: &mut Conn, a: &Args) -> CmdResult {
    let name = a.get(2);
    validate_client_name(name)?;
    c.meta.set_name(name);
    c.out.ok();
    Ok(())
}

pub fn getname(c: &mut Conn, _a: &Args) -> CmdResult {
    let name = c.meta.name();
    if name.is_empty() {
        c.out.null();
    } else {
        c.out.bulk(&name);
    }
    Ok(())
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value, with Redis 7.2's checks and messages.
pub fn setinfo(c: &mut Conn, a: &Args) -> CmdResult {
    let (attr, value) = (a.get(2), a.get(3));
    let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
        &c.meta.lib_name
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        &c.meta.lib_ver
    } else {
        return Err(Error::msg(format!(
            "Unrecognized option '{}'",
            String::from_utf8_lossy(attr)
        )));
    };
    if validate_client_name(value).is_err() {
        return Err(Error::msg(format!(
            "{} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(attr)
        )));
    }
    *slot.borrow_mut() = value.to_vec();
    c.out.ok();
    Ok(())
}

/// CLIENT NO-EVICT ON|OFF: recorded and shown as flag `e`. There is no client eviction
/// (maxmemory-clients) in redcell, so the protection has nothing to protect from yet.
pub fn no_evict(c: &mut Conn, a: &Args) -> CmdResult {
    let on = if a.is(2, "ON") {
        true
    } else if a.is(2, "OFF") {
        false
    } else {
        return Err(Error::Syntax);
    };
    c.meta.no_evict.set(on);
    c.out.ok();
    Ok(())
}

/// CLIENT PAUSE timeout [WRITE|ALL]: holds back the commands of every client on every
/// shard (writes only, or all) for `timeout` ms; the gate waits (`shard::pause`).
pub fn pause(c: &mut Conn, a: &Args) -> CmdResult {
    use crate::shard::pause::{Kind, Purpose};
    if a.len() > 4 {
        return Err(Error::SubcommandSyntax {
            sub: String::from_utf8_lossy(a.get(1)).into_owned(),
            cmd: "CLIENT",
        });
    }
    let kind = if a.len() == 3 || a.is(3, "ALL") {
        Kind::All
    } else if a.is(3, "WRITE") {
        Kind::Write
    } else {
        return Err(Error::msg("CLIENT PAUSE mode must be WRITE or ALL"));
    };
    let ms = crate::util::num::parse_i64_strict(a.get(2))
        .ok_or_else(|| Error::msg("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(Error::msg("timeout is negative"));
    }
    let end = if ms > 0 {
        crate::util::time::now_ms().saturating_add(ms)
    } else {
        0
    };
    c.shard
        .shared
        .pause
        .pause(Purpose::ClientCommand, end, kind);
    c.out.ok();
    Ok(())
}

/// CLIENT REPLY ON|OFF|SKIP: OFF drops every reply from now on, SKIP the next command's,
/// ON answers again (and says OK).
pub fn reply(c: &mut Conn, a: &Args) -> CmdResult {
    if a.is(2, "ON") {
        c.reply = Default::default();
        c.reply.turned_on = true;
        c.out.ok();
    } else if a.is(2, "OFF") {
        c.reply.off = true;
    } else if a.is(2, "SKIP") {
        if !c.reply.off {
            c.reply.skip_next = true;
        }
    } else {
        return Err(Error::Syntax);
    }
    Ok(())
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: a client waiting in a blocking command, on whichever
/// core, stops waiting as if its timeout ran out, or with the UNBLOCKED error. 1 if it was
/// blocked.
pub fn unblock<'a>(c: &'a mut Conn, a: Args<'a>) -> crate::cmd::BoxFuture<'a> {
    Box::pin(async move {
        if a.len() > 4 {
            return Err(Error::SubcommandSyntax {
                sub: String::from_utf8_lossy(a.get(1)).into_owned(),
                cmd: "CLIENT",
            });
        }
        let how = if a.len() == 3 || a.is(3, "TIMEOUT") {
            1
        } else if a.is(3, "ERROR") {
            2
        } else {
            return Err(Error::msg(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        };
        let id = crate::util::num::parse_i64_strict(a.get(2)).ok_or(Error::NotInteger)?;
        let found = c
            .shard
            .call_all(move |s| {
                let clients = s.clients.borrow();
                match clients.get(&(id as u64)) {
                    Some(m) if m.blocked.get() && m.unblock.get() == 0 => {
                        m.unblock.set(how);
                        true
                    }
                    _ => false,
                }
            })
            .await;
        c.out.int(i64::from(found.contains(&true)));
        Ok(())
    })
}

/// CLIENT UNPAUSE: ends CLIENT PAUSE's pause (a failover's or shutdown's stays).
pub fn unpause(c: &mut Conn, _a: &Args) -> CmdResult {
    c.shard
        .shared
        .pause
        .unpause(crate::shard::pause::Purpose::ClientCommand);
    c.out.ok();
    Ok(())
}

pub fn help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            // Redis 7.2's, which 7.0 lacks.
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
        ],
    );
    Ok(())
}

/// One CLIENT LIST line's values. Fields redcell cannot measure are documented where set.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLine<'a> {
    pub id: u64,
    pub addr: &'a str,
    pub laddr: &'a str,
    pub fd: i32,
    pub name: &'a [u8],
    pub age: i64,
    pub idle: i64,
    pub no_evict: bool,
    /// Connected over the Unix socket (flag `U`).
    pub unix: bool,
    pub qbuf: usize,
    pub argv_mem: usize,
    pub cmd: &'a str,
    pub resp: u8,
    /// Subscribed channels, patterns, shard channels (`sub=`, `psub=`, `ssub=`; flag `P`).
    pub subs: [usize; 3],
    /// The ACL user.
    pub user: &'a [u8],
    /// CLIENT TRACKING flags (`shard::tracking`; flags `t`, `R`, `B`) and redirect target.
    pub tracking: u32,
    pub redirect: u64,
}

/// Renders a line in Redis 7.0's CLIENT LIST format (without the trailing newline).
///
/// Approximations, since redcell does not track these per client:
/// - `qbuf-free`: room left in a 16 KiB read buffer; `rbs`/`rbp`: the 16 KiB reply buffer.
/// - `obl`/`oll`/`omem`: 0 — a connection's whole output is written before it reads again.
/// - `tot-mem`: read buffer + reply buffer + current arguments + the client record.
/// - `db`, `multi`: not tracked yet (0, -1).
pub fn render_line(v: &ClientLine, out: &mut String) {
    use crate::shard::tracking::{BCAST, BROKEN_REDIR, ON};
    use std::fmt::Write;
    // Redis's order: P (pubsub), t R B (tracking, broken redirect, broadcast), U (Unix
    // socket), e (no-evict); N when none.
    let mut flags = String::new();
    let letters = [
        (v.subs.iter().any(|&n| n > 0), 'P'),
        (v.tracking & ON != 0, 't'),
        (v.tracking & BROKEN_REDIR != 0, 'R'),
        (v.tracking & BCAST != 0, 'B'),
        (v.unix, 'U'),
        (v.no_evict, 'e'),
    ];
    flags.extend(letters.iter().filter(|(on, _)| *on).map(|(_, l)| l));
    if flags.is_empty() {
        flags.push('N');
    }
    let redir = if v.tracking & ON != 0 {
        v.redirect as i64
    } else {
        -1
    };
    let read_buf = BUF_SIZE.max(v.qbuf);
    let tot_mem =
        read_buf + BUF_SIZE + v.argv_mem + std::mem::size_of::<ClientMeta>() + v.name.len();
    let _ = write!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db=0 sub={} psub={} ssub={} multi=-1 \
         qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={BUF_SIZE} rbp={BUF_SIZE} obl=0 oll=0 omem=0 \
         tot-mem={tot_mem} events=r cmd={} user={} redir={redir} resp={}",
        v.id,
        v.addr,
        v.laddr,
        v.fd,
        String::from_utf8_lossy(v.name),
        v.age,
        v.idle,
        v.subs[0],
        v.subs[1],
        v.subs[2],
        v.qbuf,
        read_buf - v.qbuf,
        v.argv_mem,
        v.cmd,
        String::from_utf8_lossy(v.user),
        v.resp,
    );
}

/// Renders `meta`'s line. `argv_mem` is the size of the arguments being executed (only the
/// calling client is executing a command while the list is built).
fn render_meta(meta: &ClientMeta, now_ms: i64, argv_mem: usize, out: &mut String) {
    let now_s = now_ms / 1000;
    let name = meta.name();
    let laddr = local_addr(meta);
    render_line(
        &ClientLine {
            id: meta.id,
            addr: &meta.addr,
            laddr: &laddr,
            fd: meta.fd,
            name: &name,
            age: now_s - meta.created_ms / 1000,
            idle: now_s - meta.last_interaction_ms.get() / 1000,
            no_evict: meta.no_evict.get(),
            unix: meta.unix(),
            qbuf: meta.qbuf.get(),
            argv_mem,
            cmd: meta.last_cmd.get(),
            resp: meta.resp.get(),
            subs: [meta.sub.get(), meta.psub.get(), meta.ssub.get()],
            user: &meta.user.borrow(),
            tracking: meta.tracking.get(),
            redirect: meta.redirect.get(),
        },
        out,
    );
}

/// `meta`'s CLIENT LIST line (ACL LOG's `client-info`).
pub fn line_of(meta: &ClientMeta) -> String {
    let mut line = String::with_capacity(320);
    render_meta(meta, now_ms(), 0, &mut line);
    line
}

/// The connection's local address. `meta.laddr` is the listener's, which for a wildcard
/// listener (0.0.0.0, ::) is not the address the client connected to; Redis shows the socket's
/// own address, so ask the socket then.
fn local_addr(meta: &ClientMeta) -> Cow<'_, str> {
    if !(meta.laddr.starts_with("0.0.0.0:") || meta.laddr.starts_with("[::]:")) {
        return Cow::Borrowed(&meta.laddr);
    }
    // SAFETY: the fd belongs to a live connection (killed ones are skipped by the callers and
    // a connection leaves `clients` when it ends); it is only borrowed for `getsockname`.
    let fd = unsafe { BorrowedFd::borrow_raw(meta.fd) };
    match socket2::SockRef::from(&fd)
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
    {
        Some(addr) => Cow::Owned(addr.to_string()),
        None => Cow::Borrowed(&meta.laddr),
    }
}

fn argv_mem(a: &Args) -> usize {
    a.iter().map(<[u8]>::len).sum()
}

pub fn info(c: &mut Conn, a: &Args) -> CmdResult {
    let mut line = String::with_capacity(320);
    render_meta(&c.meta, now_ms(), argv_mem(a), &mut line);
    line.push('\n');
    c.out.verbatim(line.as_bytes());
    Ok(())
}

/// Client types of CLIENT LIST/KILL TYPE (`getClientTypeByName`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClientType {
    Normal,
    Replica,
    PubSub,
    Master,
}

fn client_type(name: &[u8]) -> Result<ClientType, Error> {
    match name.to_ascii_lowercase().as_slice() {
        b"normal" => Ok(ClientType::Normal),
        b"slave" | b"replica" => Ok(ClientType::Replica),
        b"pubsub" => Ok(ClientType::PubSub),
        b"master" => Ok(ClientType::Master),
        _ => Err(Error::msg(format!(
            "Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// A subscribed connection is a pubsub one (Redis's `getClientType`); the rest are normal
/// (replica links are not among these clients: see `kill`).
fn type_of(meta: &ClientMeta) -> ClientType {
    if meta.in_pubsub() {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

/// Which clients CLIENT LIST shows.
#[derive(Clone)]
enum ListFilter {
    All(Option<ClientType>),
    Ids(Vec<u64>),
}

/// The live connections of this shard that pass `filter`, as `(id, line)`.
fn shard_lines(
    s: &Rc<Shard>,
    filter: &ListFilter,
    caller: u64,
    caller_argv: usize,
) -> Vec<(u64, String)> {
    let now = now_ms();
    let clients = s.clients.borrow();
    let mut out = Vec::new();
    for meta in clients.values() {
        let keep = match filter {
            ListFilter::All(t) => t.is_none_or(|t| type_of(meta) == t),
            ListFilter::Ids(ids) => ids.contains(&meta.id),
        };
        if !keep || meta.killed.get() {
            continue;
        }
        let mut line = String::with_capacity(320);
        let argv = if meta.id == caller { caller_argv } else { 0 };
        render_meta(meta, now, argv, &mut line);
        out.push((meta.id, line));
    }
    out
}

/// CLIENT LIST [TYPE type] | [ID id ...]: every shard's connections, ordered by id (ID lists
/// follow the arguments' order, repeats included, as Redis does).
pub fn list<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let filter = if a.len() == 4 && a.is(2, "TYPE") {
            ListFilter::All(Some(client_type(a.get(3))?))
        } else if a.len() > 3 && a.is(2, "ID") {
            let mut ids = Vec::with_capacity(a.len() - 3);
            for arg in a.rest(3) {
                let id = parse_i64_strict(arg).ok_or(Error::msg("Invalid client ID"))?;
                ids.push(id as u64);
            }
            ListFilter::Ids(ids)
        } else if a.len() == 2 {
            ListFilter::All(None)
        } else {
            return Err(Error::Syntax);
        };
        let (caller, caller_argv) = (c.meta.id, argv_mem(&a));
        let f = filter.clone();
        let mut lines: Vec<(u64, String)> = c
            .shard
            .call_all(move |s| shard_lines(s, &f, caller, caller_argv))
            .await
            .into_iter()
            .flatten()
            .collect();
        let mut text = String::with_capacity(lines.len() * 330);
        match filter {
            ListFilter::Ids(ids) => {
                for id in ids {
                    if let Some((_, line)) = lines.iter().find(|(i, _)| *i == id) {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
            ListFilter::All(_) => {
                lines.sort_unstable_by_key(|(id, _)| *id);
                for (_, line) in lines {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        }
        c.out.verbatim(text.as_bytes());
        Ok(())
    })
}

/// CLIENT KILL's filters (all must match).
#[derive(Clone, Debug, Default, PartialEq)]
struct KillFilter {
    addr: Option<String>,
    laddr: Option<String>,
    id: Option<u64>,
    kind: Option<ClientType>,
    user: Option<Vec<u8>>,
    skipme: bool,
}

/// Parses CLIENT KILL's arguments: `addr` alone (old form) or option/value pairs.
fn parse_kill(a: &Args) -> Result<KillFilter, Error> {
    let text = |i: usize| String::from_utf8_lossy(a.get(i)).into_owned();
    if a.len() == 3 {
        // The old form may kill the caller itself.
        return Ok(KillFilter {
            addr: Some(text(2)),
            ..Default::default()
        });
    }
    let mut f = KillFilter {
        skipme: true,
        ..Default::default()
    };
    let mut i = 2;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(Error::Syntax);
        }
        let value = a.get(i + 1);
        if a.is(i, "ID") {
            let id = parse_i64_strict(value)
                .filter(|&id| id >= 1)
                .ok_or(Error::msg("client-id should be greater than 0"))?;
            f.id = Some(id as u64);
        } else if a.is(i, "TYPE") {
            f.kind = Some(client_type(value)?);
        } else if a.is(i, "ADDR") {
            f.addr = Some(text(i + 1));
        } else if a.is(i, "LADDR") {
            f.laddr = Some(text(i + 1));
        } else if a.is(i, "USER") {
            f.user = Some(value.to_vec());
        } else if a.is(i, "SKIPME") {
            f.skipme = if value.eq_ignore_ascii_case(b"yes") {
                true
            } else if value.eq_ignore_ascii_case(b"no") {
                false
            } else {
                return Err(Error::Syntax);
            };
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    Ok(f)
}

impl KillFilter {
    fn matches(&self, meta: &ClientMeta) -> bool {
        self.addr.as_deref().is_none_or(|a| a == meta.addr)
            && self.laddr.as_deref().is_none_or(|a| a == local_addr(meta))
            && self.id.is_none_or(|id| id == meta.id)
            && self.kind.is_none_or(|t| t == type_of(meta))
            && self.user.as_ref().is_none_or(|u| *u == *meta.user.borrow())
    }
}

/// Kills this shard's connections matching `f` (see `kill_where`).
fn kill_on_shard(s: &Rc<Shard>, f: &KillFilter, caller: u64) -> (usize, bool) {
    kill_where(s, caller, |m, _| {
        f.matches(m) && !(f.skipme && m.id == caller)
    })
}

/// Kills this shard's connections for which `pick` (given the connection and its subscriber
/// record, if any) holds: flags them and shuts their sockets down so the connection task's
/// pending read ends. The caller is only counted (it closes after its reply). Returns (how
/// many matched, whether the caller did).
pub fn kill_where(
    s: &Rc<Shard>,
    caller: u64,
    pick: impl Fn(&ClientMeta, Option<&crate::shard::pubsub::Subscriber>) -> bool,
) -> (usize, bool) {
    let subscribers = crate::shard::pubsub::subscribers(s);
    let victims: Vec<Rc<ClientMeta>> = s
        .clients
        .borrow()
        .values()
        .filter(|m| {
            let sub = subscribers.iter().find(|x| x.meta.id == m.id);
            !m.killed.get() && pick(m, sub.map(|x| &**x))
        })
        .cloned()
        .collect();
    let mut self_killed = false;
    let mut subscribed = Vec::new();
    for meta in &victims {
        if meta.id == caller {
            self_killed = true;
            continue;
        }
        meta.killed.set(true);
        if meta.in_pubsub() {
            subscribed.push(meta.id);
        }
        // SAFETY: `shutdown` only affects the socket; the fd stays open (owned by the
        // connection task, which removes its entry from `clients` when it ends).
        unsafe {
            libc::shutdown(meta.fd, libc::SHUT_RDWR);
        }
    }
    if !subscribed.is_empty() {
        crate::shard::pubsub::remove_killed(s, &subscribed);
    }
    (victims.len(), self_killed)
}

/// CLIENT KILL addr | CLIENT KILL <filter> <value> ...
pub fn kill<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let filter = parse_kill(&a)?;
        if let Some(user) = &filter.user {
            if c.shard.shared.acl().get(user).is_none() {
                return Err(Error::msg(format!(
                    "No such user '{}'",
                    String::from_utf8_lossy(user)
                )));
            }
        }
        let caller = c.meta.id;
        // Replica links and the link to our master live on the control executor (`repl`),
        // not among the shards' clients: TYPE replica and ID reach the former, TYPE master
        // the latter.
        let links = (filter.kind == Some(ClientType::Replica)
            || (filter.kind.is_none() && filter.id.is_some() && filter.addr.is_none()))
        .then_some(filter.id);
        let results = c
            .shard
            .call_all({
                let filter = filter.clone();
                move |s| kill_on_shard(s, &filter, caller)
            })
            .await;
        let mut killed: usize = results.iter().map(|r| r.0).sum();
        if let Some(id) = links {
            if filter.laddr.is_none() && filter.user.is_none() {
                killed += crate::repl::master::kill_replicas(&c.shard, id).await;
            }
        }
        if filter.kind == Some(ClientType::Master)
            && filter.id.is_none()
            && filter.addr.is_none()
            && filter.laddr.is_none()
            && filter.user.is_none()
        {
            killed += crate::repl::kill_master_link(&c.shard).await;
        }
        let self_killed = results.iter().any(|r| r.1);
        if a.len() == 3 {
            if killed == 0 {
                return Err(Error::msg("No such client"));
            }
            c.out.ok();
        } else {
            c.out.int(killed as i64);
        }
        if self_killed {
            c.close_after_reply = true;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::args::with_args;

    fn kill_args(words: &[&str]) -> Result<KillFilter, String> {
        with_args(words, parse_kill).map_err(|e| e.render().into_owned())
    }

    #[test]
    fn kill_filters_parse_as_redis() {
        let old = kill_args(&["client", "kill", "1.2.3.4:5"]).unwrap();
        assert_eq!(old.addr.as_deref(), Some("1.2.3.4:5"));
        assert!(!old.skipme, "the old form may kill the caller");
        let new = kill_args(&[
            "client", "kill", "id", "5", "skipme", "NO", "type", "normal",
        ])
        .unwrap();
        assert_eq!(new.id, Some(5));
        assert!(!new.skipme);
        assert_eq!(new.kind, Some(ClientType::Normal));
        assert!(kill_args(&["client", "kill", "laddr", "x"]).unwrap().skipme);
        let err = |w: &[&str]| kill_args(w).unwrap_err();
        assert_eq!(
            err(&["client", "kill", "id", "0"]),
            "ERR client-id should be greater than 0"
        );
        assert_eq!(
            err(&["client", "kill", "id", "x"]),
            "ERR client-id should be greater than 0"
        );
        assert_eq!(
            err(&["client", "kill", "skipme", "maybe"]),
            "ERR syntax error"
        );
        assert_eq!(
            err(&["client", "kill", "addr", "x", "y"]),
            "ERR syntax error"
        );
        assert_eq!(err(&["client", "kill", "maxage", "5"]), "ERR syntax error");
        assert_eq!(
            err(&["client", "kill", "type", "foo"]),
            "ERR Unknown client type 'foo'"
        );
    }

    #[test]
    fn client_line_has_redis_fields_in_order() {
        let mut out = String::new();
        render_line(
            &ClientLine {
                id: 7,
                addr: "127.0.0.1:5000",
                laddr: "127.0.0.1:6379",
                fd: 9,
                name: b"worker",
                age: 3,
                idle: 1,
                no_evict: false,
                unix: false,
                qbuf: 26,
                argv_mem: 10,
                cmd: "client|list",
                resp: 2,
                subs: [0; 3],
                user: b"default",
                tracking: 0,
                redirect: 0,
            },
            &mut out,
        );
        let keys: Vec<&str> = out
            .split(' ')
            .map(|kv| kv.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "addr",
                "laddr",
                "fd",
                "name",
                "age",
                "idle",
                "flags",
                "db",
                "sub",
                "psub",
                "ssub",
                "multi",
                "qbuf",
                "qbuf-free",
                "argv-mem",
                "multi-mem",
                "rbs",
                "rbp",
                "obl",
                "oll",
                "omem",
                "tot-mem",
                "events",
                "cmd",
                "user",
                "redir",
                "resp"
            ]
        );
        assert!(out.starts_with(
            "id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=9 name=worker age=3 idle=1 flags=N db=0"
        ));
        assert!(out.contains(" qbuf=26 qbuf-free=16358 argv-mem=10 multi-mem=0 rbs=16384 "));
        assert!(out.ends_with(" events=r cmd=client|list user=default redir=-1 resp=2"));
    }

    #[test]
    fn no_evict_shows_flag_e() {
        let mut out = String::new();
        render_line(
            &ClientLine {
                id: 1,
                addr: "a",
                laddr: "b",
                fd: 1,
                name: b"",
                age: 0,
                idle: 0,
                no_evict: true,
                unix: false,
                qbuf: 0,
                argv_mem: 0,
                cmd: "NULL",
                resp: 3,
                subs: [0; 3],
                user: b"default",
                tracking: 0,
                redirect: 0,
            },
            &mut out,
        );
        assert!(out.contains(" name= age=0 idle=0 flags=e "), "{out}");
        assert!(out.ends_with("resp=3"));
    }

    #[test]
    fn client_types() {
        assert_eq!(client_type(b"NORMAL"), Ok(ClientType::Normal));
        assert_eq!(client_type(b"slave"), Ok(ClientType::Replica));
        assert_eq!(
            client_type(b"foo").unwrap_err().render(),
            "ERR Unknown client type 'foo'"
        );
    }
}
