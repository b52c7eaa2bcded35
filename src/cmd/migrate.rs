//! MIGRATE: moves keys to another server as DUMP payloads sent with RESTORE (RESTORE-ASKING in
//! cluster mode) over a connection cached per target, the way `redis-cli --cluster reshard`
//! drives slot migration.
//!
//! The network round trip runs asynchronously, so the shards keep serving. Meanwhile the keys
//! being moved are *in flight* on their shard: commands touching them get TRYAGAIN (see
//! `cmd::run_keyed`) until the target has answered and they are deleted, so no write can land
//! on a copy that is already on its way.

use crate::acl;
use crate::config::keyspace_events as class;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::call::{end_unit, on_shard_data, run_body};
use super::flag::*;
use super::{BoxFuture, CommandSpec, Exec, Handler};
use crate::db::{Parts, ShardData};
use crate::error::Error;
use crate::resp::args::encode_command;
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::journal::Unit;
use crate::util::num::parse_i64_strict;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "migrate",
    -6,
    WRITE | MOVABLE_KEYS | MIGRATE,
    Handler::Async(migrate),
)
.access(acl::READ_WRITE, acl::READ_WRITE)
.keys(3, 3, 1)
.key_finder(migrate_keys)
.acl(&["@keyspace", "@dangerous"])
.doc(
    "generic",
    "2.6.0",
    "Atomically transfer a key from a Redis instance to another one.",
)];

/// A cached connection is closed after this long unused, as Redis does.
const IDLE_CLOSE: Duration = Duration::from_secs(10);
/// Redis keeps at most this many cached targets.
const MAX_CACHED: usize = 64;
/// Longest reply line we read from the target (Redis reads lines into 1 KiB buffers).
const MAX_LINE: usize = 64 * 1024;

/// The keys MIGRATE moves: argument 3, or those after `KEYS` when argument 3 is empty.
fn migrate_keys(args: &Args<'_>) -> Option<Vec<usize>> {
    let mut i = 6;
    while i < args.len() {
        if args.is(i, "AUTH") {
            i += 2;
        } else if args.is(i, "AUTH2") {
            i += 3;
        } else if args.is(i, "KEYS") {
            return Some(if args.get(3).is_empty() {
                (i + 1..args.len()).collect()
            } else {
                Vec::new()
            });
        } else {
            i += 1;
        }
    }
    Some(vec![3])
}

struct Options {
    copy: bool,
    replace: bool,
    /// AUTH password, or AUTH2 username and password.
    auth: Option<(Option<Vec<u8>>, Vec<u8>)>,
    keys: Vec<Vec<u8>>,
}

fn parse_options(a: &Args<'_>) -> Result<Options, Error> {
    let mut o = Options {
        copy: false,
        replace: false,
        auth: None,
        keys: Vec::new(),
    };
    let mut first_key = 3;
    let mut key_count = 1;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - j - 1;
        if a.is(j, "COPY") {
            o.copy = true;
        } else if a.is(j, "REPLACE") {
            o.replace = true;
        } else if a.is(j, "AUTH") {
            if more < 1 {
                return Err(Error::Syntax);
            }
            j += 1;
            o.auth = Some((None, a.get(j).to_vec()));
        } else if a.is(j, "AUTH2") {
            if more < 2 {
                return Err(Error::Syntax);
            }
            o.auth = Some((Some(a.get(j + 1).to_vec()), a.get(j + 2).to_vec()));
            j += 2;
        } else if a.is(j, "KEYS") {
            if !a.get(3).is_empty() {
                return Err(Error::msg(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            first_key = j + 1;
            key_count = a.len() - j - 1;
            break;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    o.keys = (first_key..first_key + key_count)
        .map(|i| a.get(i).to_vec())
        .collect();
    Ok(o)
}

/// A key read out for the move: its name, DUMP payload and absolute expiry (or `NO_EXPIRE`).
type Outgoing = (Vec<u8>, Vec<u8>, i64);

fn migrate<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let o = parse_options(&a)?;
        let timeout = parse_i64_strict(a.get(5)).ok_or(Error::NotInteger)?;
        let db = parse_i64_strict(a.get(4)).ok_or(Error::NotInteger)?;
        let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
        let host = String::from_utf8_lossy(a.get(1)).into_owned();
        let port = String::from_utf8_lossy(a.get(2)).into_owned();

        // Serialize each shard's keys there and mark them in flight.
        let mut moving = InFlight {
            shard: c.shard.clone(),
            db: c.db,
            keys: Vec::new(),
        };
        let from_db = c.db;
        for (shard, keys) in group_by_shard(c, &o.keys) {
            let out =
                on_shard_data(c, shard, move |_, data, _| take_out(data, from_db, keys)).await?;
            if !out.is_empty() {
                moving.keys.push((shard, out));
            }
        }
        if moving.keys.is_empty() {
            c.out.simple("NOKEY");
            return Ok(());
        }
        let outgoing: Vec<&Outgoing> = moving.keys.iter().flat_map(|(_, v)| v.iter()).collect();
        let cluster = c.shard.slot_map.borrow().enabled;
        let (result, acked) = send(&host, &port, db, timeout, &o, &outgoing, cluster).await;
        let stored: HashSet<Vec<u8>> = if o.copy {
            HashSet::new()
        } else {
            outgoing
                .iter()
                .zip(&acked)
                .filter(|(_, &ok)| ok)
                .map(|((k, _, _), _)| k.clone())
                .collect()
        };
        moving.release(c, stored).await;
        result?;
        c.out.ok();
        Ok(())
    })
}

/// The keys per owner shard (shards without keys left out), each shard's in argument order.
fn group_by_shard(c: &Conn, keys: &[Vec<u8>]) -> Vec<(usize, Vec<Vec<u8>>)> {
    let mut groups: Vec<Vec<Vec<u8>>> = vec![Vec::new(); c.shard.nshards];
    for k in keys {
        groups[c.shard.owner_of_key(k)].push(k.clone());
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, keys)| !keys.is_empty())
        .collect()
}

/// On the owner shard: the DUMP payload and expiry of every existing key of database `db`,
/// then all of them marked in flight (only once every payload is built). A key already in
/// flight (another MIGRATE) makes the whole call retry later.
fn take_out(data: &mut ShardData, db: usize, keys: Vec<Vec<u8>>) -> Result<Vec<Outgoing>, Error> {
    let now = crate::util::time::now_ms();
    if keys.iter().any(|k| data.in_flight.contains(k.as_slice())) {
        return Err(crate::cluster::slotmap::try_again());
    }
    let ks = data.db(db);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for key in keys {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(entry) = ks.read_untouched(&key, now) else {
            continue;
        };
        let payload = crate::rdb::dump_payload(&entry.value);
        let expire_at = ks.peek_expire(&key).unwrap_or(crate::db::NO_EXPIRE);
        out.push((key, payload, expire_at));
    }
    for (key, _, _) in &out {
        data.in_flight.insert(key.clone().into_boxed_slice());
    }
    Ok(out)
}

/// The keys a MIGRATE has marked in flight, per shard. They must be released whatever
/// happens: `release` does it when the move ends, and dropping the value unreleased (a
/// panic unwinding through the command) releases them without deleting anything.
struct InFlight {
    shard: std::rc::Rc<crate::shard::Shard>,
    db: usize,
    keys: Vec<(usize, Vec<Outgoing>)>,
}

impl InFlight {
    /// Deletes the keys the target stored (`stored`) and releases them all.
    async fn release(mut self, c: &mut Conn, stored: HashSet<Vec<u8>>) {
        let groups = std::mem::take(&mut self.keys);
        let db = self.db;
        for (shard, keys) in groups {
            let keys: Vec<Vec<u8>> = keys.into_iter().map(|(k, _, _)| k).collect();
            let delete: Vec<Vec<u8>> = keys
                .iter()
                .filter(|k| stored.contains(*k))
                .cloned()
                .collect();
            let deleted = on_shard_data(c, shard, move |s, data, in_exec| {
                end_move(s, data, db, &keys, &delete, !in_exec)
            })
            .await;
            c.exec_ops.extend(deleted);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let groups = std::mem::take(&mut self.keys);
        if groups.is_empty() {
            return;
        }
        let (shard, db) = (self.shard.clone(), self.db);
        glommio::spawn_local(async move {
            for (to, keys) in groups {
                let keys: Vec<Vec<u8>> = keys.into_iter().map(|(k, _, _)| k).collect();
                shard
                    .call_data(to, move |s, data| end_move(s, data, db, &keys, &[], true))
                    .await;
            }
        })
        .detach();
    }
}

/// On the owner shard: deletes `delete` (propagated as one DEL, as Redis turns MIGRATE into
/// a DEL of the keys it moved) and takes `keys` out of flight; then the blocked clients whose
/// keys became ready meanwhile are served. Unless `journal` (inside EXEC, whose unit takes
/// it), the DEL is returned instead of journaled.
fn end_move(
    s: &std::rc::Rc<crate::shard::Shard>,
    data: &mut ShardData,
    db: usize,
    keys: &[Vec<u8>],
    delete: &[Vec<u8>],
    journal: bool,
) -> Vec<crate::shard::journal::Op> {
    for k in keys {
        data.in_flight.remove(k.as_slice());
    }
    let mut unit = Unit::default();
    if !delete.is_empty() {
        let mut out = crate::resp::Reply::new(false);
        let argv = crate::resp::OwnedArgs::from_iter(
            std::iter::once(&b"DEL"[..]).chain(delete.iter().map(Vec::as_slice)),
        );
        let mut x = Exec {
            shard: s,
            parts: Parts::One(data),
            db,
            out: &mut out,
            now: crate::util::time::now_ms(),
            unit: &mut unit,
            client: None,
            track: Default::default(),
        };
        let args = argv.args();
        let _ = run_body(&mut x, &args, true, |c| {
            let now = c.now;
            let mut n = 0;
            for key in delete.iter() {
                if c.db.delete(key, now) {
                    n += 1;
                    c.notify(class::GENERIC, "del", key);
                }
            }
            c.dirty(n as u64);
            Ok(())
        });
    }
    if !journal {
        return unit.ops;
    }
    if !unit.is_empty() {
        data.clock = end_unit(s, &mut unit, data.clock);
    }
    Vec::new()
}

/// A connection to a target, kept between MIGRATE calls.
struct Cached {
    stream: TcpStream,
    /// The database last selected on it (-1: unknown, SELECT next time).
    last_db: i64,
    last_use: Instant,
}

thread_local! {
    /// This executor's cached target connections, by `host:port`. A connection is taken out
    /// while in use, so two clients never interleave on one.
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
    /// Whether this executor runs the task that closes idle cached connections.
    static REAPING: Cell<bool> = const { Cell::new(false) };
}

/// Closes cached connections idle for IDLE_CLOSE, checking each second while any is cached
/// (Redis's `migrateCloseTimedoutSockets`, run by its cron), so a target is not left holding
/// a client connection after a migration ends.
fn start_reaping() {
    if REAPING.with(|r| r.replace(true)) {
        return;
    }
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            let empty = CACHE.with(|c| {
                let mut c = c.borrow_mut();
                c.retain(|_, v| v.last_use.elapsed() < IDLE_CLOSE);
                c.is_empty()
            });
            if empty {
                REAPING.with(|r| r.set(false));
                return;
            }
        }
    })
    .detach();
}

/// An I/O failure before any key's fate was known; `timed_out` forbids the retry, as in
/// Redis.
enum IoError {
    Write { timed_out: bool },
    Read { timed_out: bool },
}

/// What one round trip established: the reply, which keys the target stored, and whether
/// the connection is still in step (every reply read) and may be cached for the next call.
struct Exchange {
    result: Result<(), Error>,
    acked: Vec<bool>,
    in_step: bool,
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// Sends the RESTOREs and reads the replies, retrying once on a fresh connection when a
/// cached one turned out dead before any reply. Returns the result and which keys the
/// target stored.
async fn send(
    host: &str,
    port: &str,
    db: i64,
    timeout: Duration,
    o: &Options,
    keys: &[&Outgoing],
    cluster: bool,
) -> (Result<(), Error>, Vec<bool>) {
    let name = format!("{host}:{port}");
    let mut may_retry = true;
    loop {
        let mut conn = match checkout(&name, host, port, timeout).await {
            Ok(conn) => conn,
            Err(_) => {
                return (
                    Err(Error::Coded(
                        "IOERR error or timeout connecting to the client".into(),
                    )),
                    vec![false; keys.len()],
                )
            }
        };
        match exchange(&mut conn, db, o, keys, cluster).await {
            Ok(x) => {
                // A connection that lost a reply would hand it to the next MIGRATE: close it.
                if x.in_step {
                    conn.last_use = Instant::now();
                    conn.last_db = if x.result.is_ok() { db } else { -1 };
                    checkin(name, conn);
                }
                return (x.result, x.acked);
            }
            Err(e) => {
                let (retry, what) = match e {
                    IoError::Write { timed_out } => (!timed_out, "writing"),
                    IoError::Read { timed_out } => (!timed_out, "reading"),
                };
                if retry && may_retry {
                    may_retry = false;
                    continue;
                }
                return (
                    Err(Error::Coded(
                        format!("IOERR error or timeout {what} to target instance").into(),
                    )),
                    vec![false; keys.len()],
                );
            }
        }
    }
}

async fn checkout(name: &str, host: &str, port: &str, timeout: Duration) -> Result<Cached, ()> {
    let cached = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|_, v| v.last_use.elapsed() < IDLE_CLOSE);
        c.remove(name)
    });
    let conn = match cached {
        Some(conn) => conn,
        None => {
            let port: u16 = port.parse().map_err(|_| ())?;
            let addr: SocketAddr = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                // Rare (targets are normally IPs): a blocking name lookup.
                Err(_) => (host, port)
                    .to_socket_addrs()
                    .map_err(|_| ())?
                    .next()
                    .ok_or(())?,
            };
            let stream = TcpStream::connect_timeout(addr, timeout)
                .await
                .map_err(|_| ())?;
            let _ = stream.set_nodelay(true);
            Cached {
                stream,
                last_db: -1,
                last_use: Instant::now(),
            }
        }
    };
    conn.stream
        .set_read_timeout(Some(timeout))
        .map_err(|_| ())?;
    conn.stream
        .set_write_timeout(Some(timeout))
        .map_err(|_| ())?;
    Ok(conn)
}

fn checkin(name: String, conn: Cached) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_CACHED {
            c.insert(name, conn);
        }
    });
    start_reaping();
}

/// One MIGRATE round trip on `conn`: AUTH and SELECT when needed, then one RESTORE per key.
async fn exchange(
    conn: &mut Cached,
    db: i64,
    o: &Options,
    keys: &[&Outgoing],
    cluster: bool,
) -> Result<Exchange, IoError> {
    let select = conn.last_db != db;
    let mut buf = Vec::new();
    if let Some((user, pass)) = &o.auth {
        match user {
            Some(u) => encode_command([&b"AUTH"[..], u, pass].into_iter(), 3, &mut buf),
            None => encode_command([&b"AUTH"[..], pass].into_iter(), 2, &mut buf),
        }
    }
    if select {
        let db = db.to_string();
        encode_command([&b"SELECT"[..], db.as_bytes()].into_iter(), 2, &mut buf);
    }
    let restore: &[u8] = if cluster {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    let now = crate::util::time::now_ms();
    for (key, payload, expire_at) in keys {
        let ttl = if *expire_at == crate::db::NO_EXPIRE {
            0
        } else {
            (*expire_at - now).max(1)
        };
        let ttl = ttl.to_string();
        let mut args: Vec<&[u8]> = vec![restore, key, ttl.as_bytes(), payload];
        if o.replace {
            args.push(b"REPLACE");
        }
        encode_command(args.iter().copied(), args.len(), &mut buf);
    }
    conn.stream
        .write_all(&buf)
        .await
        .map_err(|e| IoError::Write {
            timed_out: timed_out(&e),
        })?;

    let mut reader = LineReader::default();
    let mut first_error: Option<String> = None;
    let note = |line: &[u8], first_error: &mut Option<String>| {
        if line.first() == Some(&b'-') && first_error.is_none() {
            *first_error = Some(String::from_utf8_lossy(&line[1..]).into_owned());
        }
    };
    let read_err = |e: std::io::Error| IoError::Read {
        timed_out: timed_out(&e),
    };
    if o.auth.is_some() {
        let line = reader.line(&mut conn.stream).await.map_err(read_err)?;
        note(&line, &mut first_error);
    }
    if select {
        let line = reader.line(&mut conn.stream).await.map_err(read_err)?;
        note(&line, &mut first_error);
    }
    // A failed AUTH or SELECT fails every key.
    let preamble_failed = first_error.is_some();
    let mut acked = Vec::with_capacity(keys.len());
    let mut in_step = true;
    for i in 0..keys.len() {
        let line = match reader.line(&mut conn.stream).await {
            Ok(line) => line,
            // Nothing is known yet: the caller may retry on a fresh connection.
            Err(e) if i == 0 && first_error.is_none() => return Err(read_err(e)),
            // Keys the target already stored are released as moved; the rest stay here.
            Err(_) => {
                in_step = false;
                break;
            }
        };
        note(&line, &mut first_error);
        acked.push(!preamble_failed && line.first() != Some(&b'-'));
    }
    acked.resize(keys.len(), false);
    // The target's first error wins over a later read failure, as in Redis.
    let result = match (first_error, in_step) {
        (Some(text), _) => Err(Error::msg(format!(
            "Target instance replied with error: {text}"
        ))),
        (None, false) => Err(Error::Coded(
            "IOERR error or timeout reading to target instance".into(),
        )),
        (None, true) => Ok(()),
    };
    Ok(Exchange {
        result,
        acked,
        in_step,
    })
}

/// Reads CRLF-terminated reply lines from the target.
#[derive(Default)]
struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    async fn line(&mut self, stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = memchr::memmem::find(&self.buf, b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(std::io::Error::other("reply line too long"));
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{Decoded, Decoder};

    fn with_args<R>(parts: &[&str], f: impl FnOnce(&Args<'_>) -> R) -> R {
        let mut buf = Vec::new();
        encode_command(parts.iter().map(|p| p.as_bytes()), parts.len(), &mut buf);
        let mut dec = Decoder::new(i64::MAX);
        let Decoded::Request { len, .. } = dec.decode(&buf, false) else {
            panic!("decodes")
        };
        let args = Args::new(&buf[..len], dec.scratch(), dec.spans());
        f(&args)
    }

    #[test]
    fn finds_keys_in_both_forms() {
        let single = ["MIGRATE", "h", "1", "k", "0", "100"];
        assert_eq!(with_args(&single, migrate_keys), Some(vec![3]));
        let keys = [
            "MIGRATE", "h", "1", "", "0", "100", "AUTH2", "u", "keys", "KEYS", "a", "b",
        ];
        assert_eq!(with_args(&keys, migrate_keys), Some(vec![10, 11]));
    }

    #[test]
    fn parses_options_like_redis() {
        let o = with_args(
            &[
                "MIGRATE", "h", "1", "", "0", "1", "COPY", "AUTH", "pw", "KEYS", "a", "b",
            ],
            parse_options,
        )
        .ok()
        .expect("valid");
        assert!(o.copy && !o.replace);
        assert_eq!(o.auth, Some((None, b"pw".to_vec())));
        assert_eq!(o.keys, vec![b"a".to_vec(), b"b".to_vec()]);
        let err = |parts: &[&str]| with_args(parts, |a| parse_options(a).err().map(|e| e.render()));
        assert_eq!(
            err(&["MIGRATE", "h", "1", "k", "0", "1", "KEYS", "a"]).as_deref(),
            Some("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string")
        );
        assert_eq!(
            err(&["MIGRATE", "h", "1", "k", "0", "1", "AUTH"]).as_deref(),
            Some("ERR syntax error")
        );
        assert_eq!(
            err(&["MIGRATE", "h", "1", "k", "0", "1", "BOGUS"]).as_deref(),
            Some("ERR syntax error")
        );
    }
}
