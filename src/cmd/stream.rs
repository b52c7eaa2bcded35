//! Stream commands (Redis 7.0's t_stream.c): XADD/XRANGE/XDEL/XTRIM, XREAD(GROUP), consumer groups, XINFO.

use crate::acl;
use crate::cmd::blocking::{self, BlockingOp, WaitState};
use crate::cmd::call::with_keys;
use crate::cmd::server::help_reply;
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, OwnedArgs, Reply};
use crate::shard::client::Conn;
use crate::types::stream::{
    Fields, Group, Nack, Stream, StreamId, StreamLimits, Trim, INVALID_ENTRIES_READ, NODE_MAX_SIZE,
};
use crate::types::Value;
use crate::util::num::{arg_i64, parse_i64_strict};

const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    f: fn(&mut Ctx, &Args) -> CmdResult,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, Handler::Keyed(f)).keys(2, 2, 1)
}

static XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    sub("create", -5, WRITE | DENYOOM, xgroup_create)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Create a consumer group."),
    sub("createconsumer", 5, WRITE | DENYOOM, xgroup_createconsumer)
        .acl(&["@stream"])
        .doc("stream", "6.2.0", "Create a consumer in a consumer group."),
    sub("delconsumer", 5, WRITE, xgroup_delconsumer)
        .acl(&["@stream"])
        .doc(
            "stream",
            "5.0.0",
            "Delete a consumer from a consumer group.",
        ),
    sub("destroy", 4, WRITE, xgroup_destroy)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Destroy a consumer group."),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(xgroup_help))
        .acl(&["@stream"])
        .doc(
            "stream",
            "5.0.0",
            "Show helpful text about the different subcommands",
        ),
    sub("setid", -5, WRITE, xgroup_setid).acl(&["@stream"]).doc(
        "stream",
        "5.0.0",
        "Set a consumer group to an arbitrary last delivered ID value.",
    ),
];

static XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    sub("consumers", 4, READONLY, xinfo_consumers)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "List the consumers in a consumer group"),
    sub("groups", 3, READONLY, xinfo_groups)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "List the consumer groups of a stream"),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(xinfo_help))
        .acl(&["@stream"])
        .doc(
            "stream",
            "5.0.0",
            "Show helpful text about the different subcommands",
        ),
    sub("stream", -3, READONLY, xinfo_stream)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Get information about a stream"),
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("xadd", -5, WRITE | DENYOOM | FAST, xadd)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Appends a new entry to a stream"),
    CommandSpec::keyed("xlen", 2, READONLY | FAST, xlen)
        .access(acl::NONE, acl::NONE)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return the number of entries in a stream"),
    CommandSpec::keyed("xrange", -4, READONLY, xrange)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval"),
    CommandSpec::keyed("xrevrange", -4, READONLY, xrevrange)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return a range of elements in a stream, with IDs matching the specified IDs interval, in reverse order (from greater to smaller IDs) compared to XRANGE"),
    CommandSpec::keyed("xdel", -3, WRITE | FAST, xdel)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Removes the specified entries from the stream. Returns the number of items actually deleted, that may be different from the number of IDs passed in case certain IDs do not exist."),
    CommandSpec::keyed("xtrim", -4, WRITE, xtrim)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Trims the stream to (approximately if '~' is passed) a certain size"),
    CommandSpec::new("xread", -4, READONLY | BLOCKING | MOVABLE_KEYS, Handler::Async(xread))
        .blocking(&READ_OP)
        .key_finder(crate::cmd::keys_at::streams)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return never seen elements in multiple streams, with IDs greater than the ones reported by the caller for each stream. Can block."),
    CommandSpec::new("xreadgroup", -7, WRITE | BLOCKING | MOVABLE_KEYS, Handler::Async(xreadgroup))
        .access(acl::READ, acl::READ)
        .blocking(&READ_OP)
        .key_finder(crate::cmd::keys_at::streams)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
    CommandSpec::keyed("xack", -4, WRITE | FAST, xack)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
    CommandSpec::keyed("xpending", -3, READONLY, xpending)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
    CommandSpec::keyed("xclaim", -6, WRITE | FAST, xclaim)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
    CommandSpec::keyed("xautoclaim", -6, WRITE | FAST, xautoclaim)
        .acl(&["@stream"])
        .doc("stream", "6.2.0", "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
    CommandSpec::keyed("xsetid", -3, WRITE | DENYOOM | FAST, xsetid)
        .acl(&["@stream"])
        .doc("stream", "5.0.0", "An internal command for replicating stream values"),
    CommandSpec::new("xgroup", -2, 0, Handler::Container)
        .subs(XGROUP_SUBCOMMANDS)
        .doc("stream", "5.0.0", "A container for consumer groups commands"),
    CommandSpec::new("xinfo", -2, 0, Handler::Container)
        .subs(XINFO_SUBCOMMANDS)
        .doc("stream", "5.0.0", "A container for stream introspection commands"),
];

// ---- ids ----

fn invalid_id() -> Error {
    Error::msg("Invalid stream ID specified as stream command argument")
}

/// Redis's `string2ull`: a strict integer, or else what `strtoull` accepts whole (leading
/// space, a sign, digits), as 7.0 falls back to it for values beyond i64.
fn parse_u64_like_redis(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64_strict(s) {
        return (v >= 0).then_some(v as u64);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = s.get(i..)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// An id argument: `<ms>[-<seq>]` (a missing seq is `missing_seq`), `-`/`+` unless `strict`.
/// With `star_ok`, `<ms>-*` is accepted and returns seq None.
fn parse_id_ext(
    s: &[u8],
    missing_seq: u64,
    strict: bool,
    star_ok: bool,
) -> Result<(StreamId, bool), Error> {
    if s.len() > 127 {
        return Err(invalid_id());
    }
    match s {
        b"-" | b"+" if strict => return Err(invalid_id()),
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms_part, seq_part) = match s.iter().position(|&c| c == b'-') {
        Some(p) => (&s[..p], Some(&s[p + 1..])),
        None => (s, None),
    };
    let ms = parse_u64_like_redis(ms_part).ok_or_else(invalid_id)?;
    match seq_part {
        Some(b"*") if star_ok => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, parse_u64_like_redis(seq).ok_or_else(invalid_id)?),
            true,
        )),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

fn parse_id(s: &[u8], missing_seq: u64) -> Result<StreamId, Error> {
    parse_id_ext(s, missing_seq, false, false).map(|r| r.0)
}

fn parse_strict_id(s: &[u8]) -> Result<StreamId, Error> {
    parse_id_ext(s, 0, true, false).map(|r| r.0)
}

/// A range bound: `(` makes it exclusive (then `-`/`+` are invalid).
fn parse_interval(s: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Error> {
    if s.len() > 1 && s[0] == b'(' {
        Ok((parse_id_ext(&s[1..], missing_seq, true, false)?.0, true))
    } else {
        Ok((parse_id(s, missing_seq)?, false))
    }
}

fn range_start(s: &[u8]) -> Result<StreamId, Error> {
    let (id, ex) = parse_interval(s, 0)?;
    if ex {
        id.incr()
            .ok_or_else(|| Error::msg("invalid start ID for the interval"))
    } else {
        Ok(id)
    }
}

fn range_end(s: &[u8]) -> Result<StreamId, Error> {
    let (id, ex) = parse_interval(s, u64::MAX)?;
    if ex {
        id.decr()
            .ok_or_else(|| Error::msg("invalid end ID for the interval"))
    } else {
        Ok(id)
    }
}

// ---- replies ----

fn reply_id(out: &mut Reply, id: StreamId) {
    let mut b = Vec::with_capacity(24);
    id.write(&mut b);
    out.bulk(&b);
}

fn reply_entry(out: &mut Reply, id: StreamId, fields: Fields<'_>) {
    out.array(2);
    reply_id(out, id);
    out.array(fields.count);
    for f in fields {
        out.bulk(f);
    }
}

/// Entries in `start..=end` (at most `count`, 0 = all) as an array.
fn reply_range(
    out: &mut Reply,
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) {
    let at = out.buf.len();
    let mut n = 0usize;
    // The count is known only afterwards: write the entries, then put the header in front.
    s.range(start, end, rev, |id, f| {
        reply_entry(out, id, f);
        n += 1;
        count == 0 || n < count
    });
    let mut head = Vec::with_capacity(12);
    head.push(b'*');
    head.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    head.extend_from_slice(b"\r\n");
    out.buf.splice(at..at, head);
}

fn nogroup(text: String) -> Error {
    Error::Coded(format!("NOGROUP {text}").into())
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

// ---- lookups ----

fn limits(c: &Ctx) -> StreamLimits {
    c.limits().stream
}

/// The stream at `key` looked up for writing without counting for WATCH: for the
/// consumer-group bookkeeping (XGROUP, XSETID, XREADGROUP) that Redis 7.0 does without
/// `signalModifiedKey`, so that it invalidates no transaction. Marks the key accessed, as
/// Redis's lookup does.
fn quiet_stream<'a>(
    db: &'a mut Db<'_>,
    key: &[u8],
    now: i64,
) -> Result<Option<&'a mut Stream>, Error> {
    match db.peek(key, now) {
        None => Ok(None),
        Some(e) => {
            e.lru = crate::db::evict::touched(e.lru, now);
            match &mut e.value {
                Value::Stream(s) => Ok(Some(s)),
                _ => Err(Error::WrongType),
            }
        }
    }
}

// ---- propagation ----

/// Commands to propagate, built while the stream is borrowed and sent once it is not (the
/// ops of XCLAIM, XAUTOCLAIM and XREADGROUP, which Redis emits with `alsoPropagate`).
#[derive(Default)]
struct Ops {
    /// Whether ops are recorded at all (else nothing is built).
    on: bool,
    list: Vec<Vec<Vec<u8>>>,
}

impl Ops {
    fn new(c: &Ctx) -> Ops {
        Ops {
            on: c.recording(),
            list: Vec::new(),
        }
    }

    fn push(&mut self, argv: &[&[u8]]) {
        if self.on {
            self.list.push(argv.iter().map(|w| w.to_vec()).collect());
        }
    }

    /// `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID last`: the
    /// state of pending entry `id` after the command (Redis's `streamPropagateXCLAIM`).
    fn xclaim(&mut self, key: &[u8], group: &[u8], id: &[u8], nack: &Nack, last: StreamId) {
        if !self.on {
            return;
        }
        let consumer = nack.consumer.as_deref().unwrap_or_default();
        let time = itoa::Buffer::new().format(nack.delivery_time).to_owned();
        let count = itoa::Buffer::new().format(nack.delivery_count).to_owned();
        let last = last.to_bytes();
        self.push(&[
            b"XCLAIM",
            key,
            group,
            consumer,
            b"0",
            id,
            b"TIME",
            time.as_bytes(),
            b"RETRYCOUNT",
            count.as_bytes(),
            b"FORCE",
            b"JUSTID",
            b"LASTID",
            &last,
        ]);
    }

    /// `XGROUP SETID key group last ENTRIESREAD n` (`streamPropagateGroupID`).
    fn setid(&mut self, key: &[u8], group: &[u8], g: &Group) {
        if !self.on {
            return;
        }
        let last = g.last_id.to_bytes();
        let read = itoa::Buffer::new().format(g.entries_read).to_owned();
        self.push(&[
            b"XGROUP",
            b"SETID",
            key,
            group,
            &last,
            b"ENTRIESREAD",
            read.as_bytes(),
        ]);
    }

    /// Sends the ops, in order, whatever the command counted (Redis's `alsoPropagate`).
    fn send(self, c: &mut Ctx) {
        for op in self.list {
            let argv: Vec<&[u8]> = op.iter().map(Vec::as_slice).collect();
            c.force_propagate();
            c.propagate(&argv);
        }
    }
}

/// Propagates the command as sent but for the arguments `replace` names (position, text);
/// as sent when there are none.
fn propagate_replacing(c: &mut Ctx, a: &Args, replace: &[(usize, &[u8])]) {
    if replace.is_empty() || !c.recording() {
        return;
    }
    let mut argv: Vec<&[u8]> = a.iter().collect();
    for &(i, w) in replace {
        argv[i] = w;
    }
    c.propagate(&argv);
}

/// What an approximate trim left, as Redis rewrites `~ <n>` into `= <what>`: the stream's
/// length (MAXLEN) or its first id (MINID), a deleted entry's included, MAX when empty.
fn trimmed_to(s: &Stream, how: Trim) -> Vec<u8> {
    match how {
        Trim::MaxLen(_) => itoa::Buffer::new().format(s.len()).as_bytes().to_vec(),
        Trim::MinId(_) => s
            .nodes()
            .next()
            .and_then(|n| n.entries().next())
            .map_or(StreamId::MAX, |e| e.id)
            .to_bytes(),
    }
}

/// The stream at `key`, created empty if absent.
fn stream_or_create<'a>(db: &'a mut Db<'_>, key: &[u8], now: i64) -> Result<&'a mut Stream, Error> {
    if db.get(key, now).is_none() {
        db.set(key, Value::Stream(Box::default()), NO_EXPIRE, now);
    }
    db.write_as::<Stream>(key, now)?.ok_or(Error::NoSuchKey)
}

// ---- XADD / XTRIM ----

struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    nomkstream: bool,
    /// Explicit id and whether its sequence was given (`ms-*` leaves it to us).
    id: Option<(StreamId, bool)>,
    /// Index of the id argument (XADD) / end of the options (XTRIM).
    idpos: usize,
    /// Index of the MAXLEN count / MINID id (after a `~` or `=`), 0 without trimming.
    trim_at: usize,
}

/// 7.0's `streamParseAddOrTrimArgsOrReply`.
fn parse_add_trim(a: &Args, xadd: bool, node_max_entries: usize) -> Result<AddTrim, Error> {
    let mut r = AddTrim {
        trim: None,
        approx: false,
        limit: 0,
        nomkstream: false,
        id: None,
        idpos: a.len(),
        trim_at: 0,
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = a.get(i);
        if xadd && opt == b"*" {
            r.idpos = i;
            break;
        } else if (a.is(i, "MAXLEN") || a.is(i, "MINID")) && more > 0 {
            if r.trim.is_some() {
                return Err(Error::msg(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let is_maxlen = a.is(i, "MAXLEN");
            r.approx = false;
            let next = a.get(i + 1);
            if more >= 2 && next == b"~" {
                r.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if is_maxlen {
                let n = arg_i64(a.get(i + 1))?;
                if n < 0 {
                    return Err(Error::msg("The MAXLEN argument must be >= 0."));
                }
                r.trim = Some(Trim::MaxLen(n as u64));
            } else {
                r.trim = Some(Trim::MinId(parse_strict_id(a.get(i + 1))?));
            }
            i += 1;
            r.trim_at = i;
        } else if a.is(i, "LIMIT") && more > 0 {
            let n = arg_i64(a.get(i + 1))?;
            if n < 0 {
                return Err(Error::msg("The LIMIT argument must be >= 0."));
            }
            r.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && a.is(i, "NOMKSTREAM") {
            r.nomkstream = true;
        } else if xadd {
            let (id, seq_given) = parse_id_ext(opt, 0, true, true)?;
            r.id = Some((id, seq_given));
            r.idpos = i;
            break;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    if r.limit > 0 && r.trim.is_none() {
        return Err(Error::msg(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && r.trim.is_none() {
        return Err(Error::msg(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !r.approx {
            return Err(Error::msg(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if r.approx {
        // Bounds the work `~` may do, as 7.0 does: 100 nodes' worth.
        let l = 100i128 * node_max_entries as i128;
        r.limit = if l <= 0 {
            10_000
        } else {
            l.min(1_000_000) as u64
        };
    } else {
        r.limit = 0;
    }
    Ok(r)
}

fn xadd(c: &mut Ctx, a: &Args) -> CmdResult {
    let lim = limits(c);
    let opts = parse_add_trim(a, true, lim.max_entries)?;
    let field_pos = opts.idpos + 1;
    let nf = a.len().saturating_sub(field_pos);
    if field_pos > a.len() || nf < 2 || nf % 2 == 1 {
        return Err(Error::WrongArity("xadd".into()));
    }
    if let Some((id, true)) = opts.id {
        if id.is_zero() {
            return Err(Error::msg(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
    }
    let key = a.get(1);
    if c.db.write_as::<Stream>(key, c.now)?.is_none() {
        if opts.nomkstream {
            c.out.null();
            return Ok(());
        }
        c.db.set(key, Value::Stream(Box::default()), NO_EXPIRE, c.now);
    }
    let s =
        c.db.write_as::<Stream>(key, c.now)?
            .ok_or(Error::NoSuchKey)?;
    if s.last_id == StreamId::MAX {
        return Err(Error::msg(
            "The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = match opts.id {
        Some((id, true)) => Some(id).filter(|id| *id > s.last_id),
        Some((id, false)) => s.next_id(0, Some(id.ms)),
        None => s.next_id(c.now.max(0) as u64, None),
    };
    let Some(id) = id else {
        return Err(Error::msg(
            "The ID specified in XADD is equal or smaller than the target stream top item",
        ));
    };
    let total: usize = a.rest(field_pos).map(<[u8]>::len).sum();
    if total > NODE_MAX_SIZE {
        return Err(Error::msg("Elements are too large to be stored"));
    }
    s.append(id, (field_pos..a.len()).map(|i| a.get(i)), lim);
    reply_id(c.out, id);
    let trimmed_n = match opts.trim {
        Some(t) => s.trim(t, opts.approx, opts.limit),
        None => 0,
    };
    // Propagated with the id it got (unless given whole) and an approximate trim made exact
    // (`~` becomes `=` and the bound what the stream was left with, trimmed or not).
    let trimmed = match opts.trim {
        Some(t) if opts.approx => Some(trimmed_to(s, t)),
        _ => None,
    };
    c.dirty(1);
    c.notify(class::STREAM, "xadd", a.get(1));
    if trimmed_n > 0 {
        c.notify(class::STREAM, "xtrim", a.get(1));
    }
    let id_text = id.to_bytes();
    let mut replace: Vec<(usize, &[u8])> = Vec::new();
    if let Some(t) = &trimmed {
        replace.push((opts.trim_at - 1, b"="));
        replace.push((opts.trim_at, t));
    }
    if !matches!(opts.id, Some((_, true))) {
        replace.push((opts.idpos, &id_text));
    }
    propagate_replacing(c, a, &replace);
    Ok(())
}

fn xtrim(c: &mut Ctx, a: &Args) -> CmdResult {
    let lim = limits(c);
    let opts = parse_add_trim(a, false, lim.max_entries)?;
    let how = opts.trim.ok_or(Error::Syntax)?;
    let (n, trimmed) = match c.db.write_as::<Stream>(a.get(1), c.now)? {
        None => (0, None),
        Some(s) => {
            let n = s.trim(how, opts.approx, opts.limit);
            (n, (n > 0 && opts.approx).then(|| trimmed_to(s, how)))
        }
    };
    // Removed entries are the changes; an approximate trim goes out exact (`= <what it
    // left>`), one that removed nothing not at all.
    c.dirty(n);
    if n > 0 {
        c.notify(class::STREAM, "xtrim", a.get(1));
    }
    if let Some(t) = &trimmed {
        propagate_replacing(c, a, &[(opts.trim_at - 1, b"="), (opts.trim_at, t)]);
    }
    c.out.int(n as i64);
    Ok(())
}

// ---- XLEN / XRANGE / XREVRANGE / XDEL ----

fn xlen(c: &mut Ctx, a: &Args) -> CmdResult {
    let n =
        c.db.read_as::<Stream>(a.get(1), c.now)?
            .map_or(0, Stream::len);
    c.out.int(n as i64);
    Ok(())
}

fn range_cmd(c: &mut Ctx, a: &Args, rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (a.get(3), a.get(2))
    } else {
        (a.get(2), a.get(3))
    };
    let start = range_start(sa)?;
    let end = range_end(ea)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < a.len() {
        if a.is(j, "COUNT") && j + 1 < a.len() {
            count = arg_i64(a.get(j + 1))?.max(0);
            j += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    let Some(s) = c.db.read_as::<Stream>(a.get(1), c.now)? else {
        c.out.array(0);
        return Ok(());
    };
    if count == 0 {
        c.out.null_array();
        return Ok(());
    }
    let count = if count < 0 { 0 } else { count as usize };
    reply_range(c.out, s, start, end, count, rev);
    Ok(())
}

fn xrange(c: &mut Ctx, a: &Args) -> CmdResult {
    range_cmd(c, a, false)
}

fn xrevrange(c: &mut Ctx, a: &Args) -> CmdResult {
    range_cmd(c, a, true)
}

fn xdel(c: &mut Ctx, a: &Args) -> CmdResult {
    let Some(s) = c.db.write_as::<Stream>(a.get(1), c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let ids = a
        .rest(2)
        .map(parse_strict_id)
        .collect::<Result<Vec<_>, _>>()?;
    let deleted: Vec<StreamId> = ids.into_iter().filter(|&id| s.delete(id)).collect();
    s.after_delete(&deleted);
    c.dirty(deleted.len() as u64);
    if !deleted.is_empty() {
        c.notify(class::STREAM, "xdel", a.get(1));
    }
    c.out.int(deleted.len() as i64);
    Ok(())
}

// ---- XSETID ----

fn xsetid(c: &mut Ctx, a: &Args) -> CmdResult {
    let id = parse_strict_id(a.get(2))?;
    let mut entries_added: i64 = -1;
    let mut max_del = StreamId::MIN;
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - 1 - i;
        if a.is(i, "ENTRIESADDED") && more > 0 {
            entries_added = arg_i64(a.get(i + 1))?;
            if entries_added < 0 {
                return Err(Error::msg("entries_added must be positive"));
            }
        } else if a.is(i, "MAXDELETEDID") && more > 0 {
            max_del = parse_strict_id(a.get(i + 1))?;
            if id < max_del {
                return Err(Error::msg(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    let s = quiet_stream(&mut c.db, a.get(1), c.now)?.ok_or(Error::NoSuchKey)?;
    if !s.is_empty() {
        let top = s.edge_id(true).unwrap_or(StreamId::MIN);
        if id < top {
            return Err(Error::msg(
                "The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added != -1 && s.len() > entries_added as u64 {
            return Err(Error::msg(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_del.is_zero() {
        s.max_deleted = max_del;
    }
    c.dirty(1);
    c.notify(class::STREAM, "xsetid", a.get(1));
    c.out.ok();
    Ok(())
}

// ---- XGROUP ----

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

fn xgroup_help(conn: &mut Conn, a: &Args) -> CmdResult {
    help_reply(&mut conn.out, a.get(0), XGROUP_HELP);
    Ok(())
}

/// XGROUP's shared prologue (7.0's order of checks): options from argument 5, the key's type,
/// the key's existence (unless MKSTREAM) and, for `needs_group`, the group's.
struct GroupArgs {
    mkstream: bool,
    entries_read: i64,
}

fn xgroup_prologue<'a>(
    c: &'a mut Ctx,
    a: &Args,
    create: bool,
    setid: bool,
    needs_group: bool,
) -> Result<(GroupArgs, Option<&'a mut Stream>), Error> {
    let mut g = GroupArgs {
        mkstream: false,
        entries_read: INVALID_ENTRIES_READ,
    };
    let mut i = 5;
    while i < a.len() {
        if create && a.is(i, "MKSTREAM") {
            g.mkstream = true;
            i += 1;
        } else if (create || setid) && a.is(i, "ENTRIESREAD") && i + 1 < a.len() {
            let n = arg_i64(a.get(i + 1))?;
            if n < 0 && n != INVALID_ENTRIES_READ {
                return Err(Error::msg("value for ENTRIESREAD must be positive or -1"));
            }
            g.entries_read = n;
            i += 2;
        } else {
            return Err(Error::subcommand_syntax(a.get(1), "XGROUP"));
        }
    }
    let key = a.get(2);
    let s = quiet_stream(&mut c.db, key, c.now)?;
    if !g.mkstream {
        let Some(s) = s else {
            return Err(Error::msg("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        };
        if needs_group && !s.groups.contains_key(a.get(3)) {
            return Err(nogroup(format!(
                "No such consumer group '{}' for key name '{}'",
                lossy(a.get(3)),
                lossy(key)
            )));
        }
        return Ok((g, Some(s)));
    }
    Ok((g, s))
}

fn xgroup_create(c: &mut Ctx, a: &Args) -> CmdResult {
    let now = c.now;
    let (g, s) = xgroup_prologue(c, a, true, false, false)?;
    if a.len() > 8 {
        return Err(Error::subcommand_syntax(a.get(1), "XGROUP"));
    }
    let id = if a.get(4) == b"$" {
        s.as_ref().map_or(StreamId::MIN, |s| s.last_id)
    } else {
        parse_strict_id(a.get(4))?
    };
    let s = match s {
        Some(s) => s,
        None => stream_or_create(&mut c.db, a.get(2), now)?,
    };
    if s.groups.contains_key(a.get(3)) {
        return Err(Error::Coded(
            "BUSYGROUP Consumer Group name already exists".into(),
        ));
    }
    s.groups
        .insert(a.get(3).into(), Group::new(id, g.entries_read));
    // Propagated as sent: `$` is resolved by the replica, against the same stream.
    c.dirty(1);
    c.notify(class::STREAM, "xgroup-create", a.get(2));
    c.out.ok();
    Ok(())
}

fn xgroup_setid(c: &mut Ctx, a: &Args) -> CmdResult {
    let (g, s) = xgroup_prologue(c, a, false, true, true)?;
    if a.len() != 5 && a.len() != 7 {
        return Err(Error::subcommand_syntax(a.get(1), "XGROUP"));
    }
    let s = s.ok_or(Error::NoSuchKey)?;
    let id = if a.get(4) == b"$" {
        s.last_id
    } else {
        parse_id(a.get(4), 0)?
    };
    let group = s.groups.get_mut(a.get(3)).ok_or(Error::NoSuchKey)?;
    group.last_id = id;
    group.entries_read = g.entries_read;
    c.dirty(1);
    c.notify(class::STREAM, "xgroup-setid", a.get(2));
    c.out.ok();
    Ok(())
}

fn xgroup_destroy(c: &mut Ctx, a: &Args) -> CmdResult {
    let (_, s) = xgroup_prologue(c, a, false, false, false)?;
    let s = s.ok_or(Error::NoSuchKey)?;
    let gone = s.groups.remove(a.get(3)).is_some();
    c.dirty(gone as u64);
    if gone {
        c.notify(class::STREAM, "xgroup-destroy", a.get(2));
    }
    c.out.int(gone as i64);
    Ok(())
}

fn xgroup_createconsumer(c: &mut Ctx, a: &Args) -> CmdResult {
    let now = c.now;
    let (_, s) = xgroup_prologue(c, a, false, false, true)?;
    let s = s.ok_or(Error::NoSuchKey)?;
    let group = s.groups.get_mut(a.get(3)).ok_or(Error::NoSuchKey)?;
    let created = group.create_consumer(a.get(4), now);
    c.dirty(created as u64);
    if created {
        c.notify(class::STREAM, "xgroup-createconsumer", a.get(2));
    }
    c.out.int(created as i64);
    Ok(())
}

fn xgroup_delconsumer(c: &mut Ctx, a: &Args) -> CmdResult {
    let (_, s) = xgroup_prologue(c, a, false, false, true)?;
    let s = s.ok_or(Error::NoSuchKey)?;
    let group = s.groups.get_mut(a.get(3)).ok_or(Error::NoSuchKey)?;
    let pending = group.delete_consumer(a.get(4));
    c.dirty(pending.is_some() as u64);
    if pending.is_some() {
        c.notify(class::STREAM, "xgroup-delconsumer", a.get(2));
    }
    c.out.int(pending.unwrap_or(0) as i64);
    Ok(())
}

// ---- XACK / XPENDING ----

fn xack(c: &mut Ctx, a: &Args) -> CmdResult {
    let group = match c.db.read_as_mut::<Stream>(a.get(1), c.now)? {
        Some(s) => s.groups.get_mut(a.get(2)),
        None => None,
    };
    let Some(group) = group else {
        c.out.int(0);
        return Ok(());
    };
    let ids = a
        .rest(3)
        .map(parse_strict_id)
        .collect::<Result<Vec<_>, _>>()?;
    let n = ids.into_iter().filter(|&id| group.ack(id)).count();
    c.dirty(n as u64);
    c.out.int(n as i64);
    Ok(())
}

fn xpending(c: &mut Ctx, a: &Args) -> CmdResult {
    let argc = a.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(Error::Syntax);
    }
    let mut range = None;
    let mut consumer = None;
    let mut minidle = 0i64;
    if argc >= 6 {
        let mut si = 3;
        if a.is(3, "IDLE") {
            minidle = arg_i64(a.get(4))?;
            if argc < 8 {
                return Err(Error::Syntax);
            }
            si += 2;
        }
        let count = arg_i64(a.get(si + 2))?.max(0);
        let start = range_start(a.get(si))?;
        let end = range_end(a.get(si + 1))?;
        if si + 3 < argc {
            consumer = Some(a.get(si + 3));
        }
        range = Some((start, end, count));
    }
    let now = c.now;
    let s = c.db.read_as::<Stream>(a.get(1), c.now)?;
    let Some(group) = s.and_then(|s| s.groups.get(a.get(2))) else {
        return Err(nogroup(format!(
            "No such key '{}' or consumer group '{}'",
            lossy(a.get(1)),
            lossy(a.get(2))
        )));
    };
    let out = &mut *c.out;
    let Some((start, end, mut count)) = range else {
        out.array(4);
        out.int(group.pel.len() as i64);
        match (group.pel.keys().next(), group.pel.keys().next_back()) {
            (Some(&first), Some(&last)) => {
                reply_id(out, first);
                reply_id(out, last);
                let owners: Vec<(&[u8], usize)> = group
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pel.is_empty())
                    .map(|(n, c)| (&n[..], c.pel.len()))
                    .collect();
                out.array(owners.len());
                for (name, n) in owners {
                    out.array(2);
                    out.bulk(name);
                    out.bulk_int(n as i64);
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    };
    let ids: Vec<StreamId> = match consumer {
        Some(name) => match group.consumers.get(name) {
            None => {
                out.array(0);
                return Ok(());
            }
            Some(cons) => cons
                .pel
                .range(start..=end.max(start))
                .copied()
                .filter(|id| *id <= end)
                .collect(),
        },
        None => group
            .pel
            .range(start..=end.max(start))
            .map(|(id, _)| *id)
            .filter(|id| *id <= end)
            .collect(),
    };
    let mut rows = Vec::new();
    for id in ids {
        if count == 0 {
            break;
        }
        let Some(nack) = group.pel.get(&id) else {
            continue;
        };
        if minidle != 0 && now.wrapping_sub(nack.delivery_time) < minidle {
            continue;
        }
        count -= 1;
        rows.push((id, nack));
    }
    out.array(rows.len());
    for (id, nack) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(nack.consumer.as_deref().unwrap_or(b""));
        out.int(now.wrapping_sub(nack.delivery_time).max(0));
        out.int(nack.delivery_count as i64);
    }
    Ok(())
}

// ---- XCLAIM / XAUTOCLAIM ----

fn arg_i64_msg(s: &[u8], msg: &'static str) -> Result<i64, Error> {
    parse_i64_strict(s).ok_or(Error::msg(msg))
}

fn xclaim(c: &mut Ctx, a: &Args) -> CmdResult {
    let now = c.now;
    let key = a.get(1);
    // Never propagated as sent: each claim goes out as the XCLAIM that recreates its state.
    c.propagate_nothing();
    let mut ops = Ops::new(c);
    let mut changes = 0u64;
    let s = c.db.read_as_mut::<Stream>(key, now)?;
    let nogroup_err = || {
        nogroup(format!(
            "No such key '{}' or consumer group '{}'",
            lossy(a.get(1)),
            lossy(a.get(2))
        ))
    };
    let Some(s) = s else {
        return Err(nogroup_err());
    };
    if !s.groups.contains_key(a.get(2)) {
        return Err(nogroup_err());
    }
    let minidle = arg_i64_msg(a.get(4), "Invalid min-idle-time argument for XCLAIM")?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < a.len() {
        match parse_strict_id(a.get(j)) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < a.len() {
        let more = a.len() - 1 - j;
        if a.is(j, "FORCE") {
            force = true;
        } else if a.is(j, "JUSTID") {
            justid = true;
        } else if a.is(j, "IDLE") && more > 0 {
            j += 1;
            deliverytime = now.wrapping_sub(arg_i64_msg(
                a.get(j),
                "Invalid IDLE option argument for XCLAIM",
            )?);
        } else if a.is(j, "TIME") && more > 0 {
            j += 1;
            deliverytime = arg_i64_msg(a.get(j), "Invalid TIME option argument for XCLAIM")?;
        } else if a.is(j, "RETRYCOUNT") && more > 0 {
            j += 1;
            retrycount = arg_i64_msg(a.get(j), "Invalid RETRYCOUNT option argument for XCLAIM")?;
        } else if a.is(j, "LASTID") && more > 0 {
            j += 1;
            last_id = parse_strict_id(a.get(j))?;
        } else {
            return Err(Error::msg(format!(
                "Unrecognized XCLAIM option '{}'",
                lossy(a.get(j))
            )));
        }
        j += 1;
    }
    let mut group = s.groups.remove(a.get(2)).ok_or_else(nogroup_err)?;
    // A LASTID past the group's goes out as XGROUP SETID, unless an XCLAIM carries it.
    let mut propagate_last_id = false;
    if last_id > group.last_id {
        group.last_id = last_id;
        propagate_last_id = true;
    }
    if deliverytime == -1 || deliverytime < 0 || deliverytime > now {
        deliverytime = now;
    }
    let name = a.get(3);
    let mut claimed = Vec::new();
    let mut consumer_made = false;
    let mut new_consumer = false;
    for (n, id) in ids.into_iter().enumerate() {
        // The id as the client wrote it, as Redis propagates it.
        let id_arg = a.get(5 + n);
        let exists = s.contains(id);
        if !exists {
            // Gone from the stream: its pending entry is dropped, which goes out as an
            // XCLAIM of the entry as it was (the replica drops it the same way).
            if let Some(nack) = group.pel.get(&id) {
                ops.xclaim(key, a.get(2), id_arg, nack, group.last_id);
                propagate_last_id = false;
                changes += 1;
            }
            group.ack(id);
            continue;
        }
        if force && !group.pel.contains_key(&id) {
            group.pel.insert(
                id,
                Nack {
                    consumer: None,
                    delivery_time: now,
                    delivery_count: 1,
                },
            );
        }
        let Some(nack) = group.pel.get(&id) else {
            continue;
        };
        if nack.consumer.is_some() && minidle != 0 && now.wrapping_sub(nack.delivery_time) < minidle
        {
            continue;
        }
        if !consumer_made {
            new_consumer = !group.consumers.contains_key(name);
            changes += new_consumer as u64;
            group.consumer(name, now);
            consumer_made = true;
        }
        group.reassign(id, name);
        let last = group.last_id;
        let nack = group.pel.get_mut(&id).expect("pending");
        nack.delivery_time = deliverytime;
        if retrycount >= 0 {
            nack.delivery_count = retrycount as u64;
        } else if !justid {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        }
        ops.xclaim(key, a.get(2), id_arg, nack, last);
        propagate_last_id = false;
        changes += 1;
        claimed.push(id);
    }
    if propagate_last_id {
        ops.setid(key, a.get(2), &group);
        changes += 1;
    }
    c.out.array(claimed.len());
    for id in claimed {
        if justid {
            reply_id(c.out, id);
        } else if let Some(f) = s.get(id) {
            reply_entry(c.out, id, f);
        }
    }
    s.groups.insert(a.get(2).into(), group);
    c.dirty(changes);
    if new_consumer {
        c.notify(class::STREAM, "xgroup-createconsumer", key);
    }
    ops.send(c);
    Ok(())
}

fn xautoclaim(c: &mut Ctx, a: &Args) -> CmdResult {
    let now = c.now;
    let minidle = arg_i64_msg(a.get(4), "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = range_start(a.get(5))?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        if a.is(j, "COUNT") && more > 0 {
            let max = i64::MAX / 16;
            count = parse_i64_strict(a.get(j + 1))
                .filter(|n| (1..=max).contains(n))
                .ok_or(Error::msg("COUNT must be > 0"))?;
            j += 1;
        } else if a.is(j, "JUSTID") {
            justid = true;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let key = a.get(1);
    // Never propagated as sent: each claim (or dropped entry) goes out as an XCLAIM.
    c.propagate_nothing();
    let mut ops = Ops::new(c);
    let mut changes = 0u64;
    let s = c.db.read_as_mut::<Stream>(key, now)?;
    let nogroup_err = || {
        nogroup(format!(
            "No such key '{}' or consumer group '{}'",
            lossy(a.get(1)),
            lossy(a.get(2))
        ))
    };
    let Some(s) = s else {
        return Err(nogroup_err());
    };
    let mut group = s.groups.remove(a.get(2)).ok_or_else(nogroup_err)?;
    let name = a.get(3);
    let mut attempts = count * 10;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor = start;
    let mut consumer_made = false;
    let mut new_consumer = false;
    let mut next: Option<StreamId> = None;
    loop {
        let Some((&id, _)) = group.pel.range(cursor..).next() else {
            next = None;
            break;
        };
        if attempts == 0 || count == 0 {
            next = Some(id);
            break;
        }
        attempts -= 1;
        cursor = match id.incr() {
            Some(n) => n,
            None => StreamId::MAX,
        };
        let last_possible = id == StreamId::MAX;
        if !s.contains(id) {
            // Gone from the stream: dropped, which goes out as an XCLAIM of the entry as it
            // was (its old owner, time and count).
            if let Some(nack) = group.pel.get(&id) {
                ops.xclaim(key, a.get(2), &id.to_bytes(), nack, group.last_id);
            }
            changes += 1;
            group.ack(id);
            deleted.push(id);
            count -= 1;
        } else {
            let nack = group.pel.get(&id).expect("pending");
            if minidle == 0 || now.wrapping_sub(nack.delivery_time) >= minidle {
                if !consumer_made {
                    new_consumer = !group.consumers.contains_key(name);
                    changes += new_consumer as u64;
                    group.consumer(name, now);
                    consumer_made = true;
                }
                group.reassign(id, name);
                let last = group.last_id;
                let nack = group.pel.get_mut(&id).expect("pending");
                nack.delivery_time = now;
                if !justid {
                    nack.delivery_count = nack.delivery_count.wrapping_add(1);
                }
                ops.xclaim(key, a.get(2), &id.to_bytes(), nack, last);
                changes += 1;
                claimed.push(id);
                count -= 1;
            }
        }
        if last_possible {
            break;
        }
    }
    let out = &mut *c.out;
    out.array(3);
    reply_id(out, next.unwrap_or(StreamId::MIN));
    out.array(claimed.len());
    for id in claimed {
        if justid {
            reply_id(out, id);
        } else if let Some(f) = s.get(id) {
            reply_entry(out, id, f);
        }
    }
    out.array(deleted.len());
    for id in deleted {
        reply_id(out, id);
    }
    s.groups.insert(a.get(2).into(), group);
    c.dirty(changes);
    if new_consumer {
        c.notify(class::STREAM, "xgroup-createconsumer", key);
    }
    ops.send(c);
    Ok(())
}

// ---- XINFO ----

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

fn xinfo_help(conn: &mut Conn, a: &Args) -> CmdResult {
    help_reply(&mut conn.out, a.get(0), XINFO_HELP);
    Ok(())
}

fn existing_stream<'a>(db: &'a mut Db<'_>, key: &[u8], now: i64) -> Result<&'a Stream, Error> {
    db.read_as::<Stream>(key, now)?.ok_or(Error::NoSuchKey)
}

fn reply_entries_read(out: &mut Reply, g: &Group) {
    if g.entries_read != INVALID_ENTRIES_READ {
        out.int(g.entries_read);
    } else {
        out.null();
    }
}

fn reply_lag(out: &mut Reply, s: &Stream, g: &Group) {
    match s.lag(g) {
        Some(l) => out.int(l),
        None => out.null(),
    }
}

fn xinfo_consumers(c: &mut Ctx, a: &Args) -> CmdResult {
    let now = c.now;
    let key = a.get(2);
    let s = existing_stream(&mut c.db, key, c.now)?;
    let g = s.groups.get(a.get(3)).ok_or_else(|| {
        nogroup(format!(
            "No such consumer group '{}' for key name '{}'",
            lossy(a.get(3)),
            lossy(key)
        ))
    })?;
    c.out.array(g.consumers.len());
    for (name, cons) in &g.consumers {
        c.out.map(3);
        c.out.bulk(b"name");
        c.out.bulk(name);
        c.out.bulk(b"pending");
        c.out.int(cons.pel.len() as i64);
        c.out.bulk(b"idle");
        c.out.int(now.wrapping_sub(cons.seen_time).max(0));
    }
    Ok(())
}

fn xinfo_groups(c: &mut Ctx, a: &Args) -> CmdResult {
    let s = existing_stream(&mut c.db, a.get(2), c.now)?;
    c.out.array(s.groups.len());
    for (name, g) in &s.groups {
        c.out.map(6);
        c.out.bulk(b"name");
        c.out.bulk(name);
        c.out.bulk(b"consumers");
        c.out.int(g.consumers.len() as i64);
        c.out.bulk(b"pending");
        c.out.int(g.pel.len() as i64);
        c.out.bulk(b"last-delivered-id");
        reply_id(c.out, g.last_id);
        c.out.bulk(b"entries-read");
        reply_entries_read(c.out, g);
        c.out.bulk(b"lag");
        reply_lag(c.out, s, g);
    }
    Ok(())
}

/// Radix-tree node count for XINFO: our nodes live in a B-tree, so this estimates what Redis's
/// rax would hold for the same 16-byte keys (a node per key plus shared-prefix nodes).
fn rax_nodes_estimate(keys: usize) -> usize {
    if keys == 0 {
        1
    } else {
        keys * 2 + 1
    }
}

fn xinfo_stream(c: &mut Ctx, a: &Args) -> CmdResult {
    let argc = a.len();
    let mut full = false;
    let mut count: i64 = 10;
    if argc > 3 {
        let optc = argc - 3;
        if (optc != 1 && optc != 3) || !a.is(3, "FULL") || (optc == 3 && !a.is(4, "COUNT")) {
            return Err(Error::subcommand_syntax(a.get(1), "XINFO"));
        }
        full = true;
        if optc == 3 {
            count = arg_i64(a.get(5))?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let s = existing_stream(&mut c.db, a.get(2), c.now)?;
    let out = &mut *c.out;
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(s.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(rax_nodes_estimate(s.node_count()) as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, s.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, s.max_deleted);
    out.bulk(b"entries-added");
    out.int(s.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, s.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for last in [false, true] {
            out.bulk(if last { b"last-entry" } else { b"first-entry" });
            let mut emitted = false;
            s.range(StreamId::MIN, StreamId::MAX, last, |id, f| {
                reply_entry(out, id, f);
                emitted = true;
                false
            });
            if !emitted {
                out.null();
            }
        }
        return Ok(());
    }
    let count = count as usize;
    out.bulk(b"entries");
    reply_range(out, s, StreamId::MIN, StreamId::MAX, count, false);
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_entries_read(out, g);
        out.bulk(b"lag");
        reply_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let shown = if count == 0 {
            g.pel.len()
        } else {
            g.pel.len().min(count)
        };
        out.array(shown);
        for (id, nack) in g.pel.iter().take(shown) {
            out.array(4);
            reply_id(out, *id);
            out.bulk(nack.consumer.as_deref().unwrap_or(b""));
            out.int(nack.delivery_time);
            out.int(nack.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, cons) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(cons.seen_time);
            out.bulk(b"pel-count");
            out.int(cons.pel.len() as i64);
            out.bulk(b"pending");
            let shown = if count == 0 {
                cons.pel.len()
            } else {
                cons.pel.len().min(count)
            };
            out.array(shown);
            for id in cons.pel.iter().take(shown) {
                let nack = g.pel.get(id);
                out.array(3);
                reply_id(out, *id);
                out.int(nack.map_or(0, |n| n.delivery_time));
                out.int(nack.map_or(0, |n| n.delivery_count as i64));
            }
        }
    }
    Ok(())
}

// ---- XREAD / XREADGROUP ----

/// What one stream of an XREAD(GROUP) asks for.
#[derive(Clone, Debug)]
pub struct ReadReq {
    /// Entries must be greater than this; `StreamId::MAX` with a group means `>`.
    pub after: StreamId,
    pub count: usize,
    pub group: Option<GroupReq>,
    pub resp3: bool,
    /// A blocked reader being woken: 7.0 then serves whenever the stream's last id (not its
    /// last live entry) passed the one awaited, even with nothing left to return.
    pub woken: bool,
    /// Served as a blocked reader (registering or woken), not by the command itself.
    pub blocked: bool,
}

#[derive(Clone, Debug)]
pub struct GroupReq {
    pub group: Vec<u8>,
    pub consumer: Vec<u8>,
    pub noack: bool,
}

/// Parsed XREAD / XREADGROUP arguments.
struct ReadArgs {
    block: Option<u64>,
    count: usize,
    group: Option<(Vec<u8>, Vec<u8>)>,
    noack: bool,
    streams_at: usize,
    n: usize,
}

fn parse_read(a: &Args, xreadgroup: bool) -> Result<ReadArgs, Error> {
    let mut r = ReadArgs {
        block: None,
        count: 0,
        group: None,
        noack: false,
        streams_at: 0,
        n: 0,
    };
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - i - 1;
        if a.is(i, "BLOCK") && more > 0 {
            i += 1;
            r.block = Some(blocking::parse_timeout_ms(a.get(i))?);
        } else if a.is(i, "COUNT") && more > 0 {
            i += 1;
            r.count = arg_i64(a.get(i))?.max(0) as usize;
        } else if a.is(i, "STREAMS") && more > 0 {
            r.streams_at = i + 1;
            let n = a.len() - r.streams_at;
            if !n.is_multiple_of(2) {
                return Err(Error::msg("Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            r.n = n / 2;
            break;
        } else if a.is(i, "GROUP") && more >= 2 {
            if !xreadgroup {
                return Err(Error::msg(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((a.get(i + 1).to_vec(), a.get(i + 2).to_vec()));
            i += 2;
        } else if a.is(i, "NOACK") {
            if !xreadgroup {
                return Err(Error::msg(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    if r.streams_at == 0 {
        return Err(Error::Syntax);
    }
    if xreadgroup && r.group.is_none() {
        return Err(Error::msg("Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// What the first pass learns of one stream key.
#[derive(Clone, Copy)]
enum KeyState {
    WrongType,
    Missing,
    /// Exists; whether the group (if any) exists.
    Stream {
        group_ok: bool,
    },
}

fn key_state(db: &mut Db, key: &[u8], group: Option<&[u8]>, now: i64) -> KeyState {
    match db.read_as::<Stream>(key, now) {
        Err(_) => KeyState::WrongType,
        Ok(None) => KeyState::Missing,
        Ok(Some(s)) => KeyState::Stream {
            group_ok: group.is_none_or(|g| s.groups.contains_key(g)),
        },
    }
}

/// Whether a read after `after` has something to serve: a live entry past it, or for a woken
/// reader the last id past it.
fn has_new(s: &Stream, after: StreamId, woken: bool) -> bool {
    if woken {
        s.last_id > after
    } else {
        !s.is_empty() && s.edge_id(true).is_some_and(|top| top > after)
    }
}

/// Serves one stream of an XREAD(GROUP) if it has something to give: the reply element
/// (`[key, entries]`, or `key` then entries as a RESP3 map pair). Errors only if the group
/// vanished since the first pass. A group read propagates what it did to the group as
/// Redis 7.0 does (an XCLAIM per entry delivered; with NOACK the consumer's creation and an
/// XGROUP SETID), never the command itself.
fn serve_read(c: &mut Ctx, key: &[u8], req: &ReadReq) -> Result<Option<Vec<u8>>, Error> {
    let now = c.now;
    let mut ops = Ops::new(c);
    let Some(s) = quiet_stream(&mut c.db, key, now)? else {
        return Ok(None);
    };
    let mut out = Reply {
        buf: Vec::new(),
        resp3: req.resp3,
    };
    let head = |out: &mut Reply| {
        if !req.resp3 {
            out.array(2);
        }
        out.bulk(key);
    };
    let after = req.after;
    let Some(g) = &req.group else {
        if !has_new(s, after, req.woken) {
            return Ok(None);
        }
        head(&mut out);
        let start = after.incr().unwrap_or(StreamId::MAX);
        reply_range(&mut out, s, start, StreamId::MAX, req.count, false);
        return Ok(Some(out.buf));
    };
    let Some(mut group) = s.groups.remove(g.group.as_slice()) else {
        return Err(nogroup(format!(
            "No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
            lossy(key),
            lossy(&g.group)
        )));
    };
    let new_consumer = !group.consumers.contains_key(g.consumer.as_slice());
    let result = serve_group(
        s, &mut group, req, g, after, now, &mut out, head, &mut ops, key,
    );
    s.groups.insert(g.group.as_slice().into(), group);
    if result {
        // The consumer's creation is a change, and so is serving the command (Redis counts
        // that for a reader served at once, not for a blocked one).
        c.dirty(new_consumer as u64 + !req.blocked as u64);
        if new_consumer {
            c.notify(class::STREAM, "xgroup-createconsumer", key);
        }
    }
    ops.send(c);
    Ok(result.then_some(out.buf))
}

#[allow(clippy::too_many_arguments)]
fn serve_group(
    s: &Stream,
    group: &mut Group,
    req: &ReadReq,
    g: &GroupReq,
    after: StreamId,
    now: i64,
    out: &mut Reply,
    head: impl Fn(&mut Reply),
    ops: &mut Ops,
    key: &[u8],
) -> bool {
    // A consumer created with NOACK goes out on its own (no XCLAIM will create it).
    let make_consumer = |group: &mut Group, ops: &mut Ops| {
        if g.noack && !group.consumers.contains_key(g.consumer.as_slice()) {
            ops.push(&[b"XGROUP", b"CREATECONSUMER", key, &g.group, &g.consumer]);
        }
        group.consumer(&g.consumer, now);
    };
    if after != StreamId::MAX {
        // History: this consumer's own pending entries after `after`.
        head(out);
        make_consumer(group, ops);
        let start = after.incr().unwrap_or(StreamId::MAX);
        let ids: Vec<StreamId> = group.consumers[g.consumer.as_slice()]
            .pel
            .range(start..)
            .take(if req.count == 0 {
                usize::MAX
            } else {
                req.count
            })
            .copied()
            .collect();
        out.array(ids.len());
        for id in ids {
            match s.get(id) {
                Some(f) => {
                    reply_entry(out, id, f);
                    if let Some(n) = group.pel.get_mut(&id) {
                        n.delivery_time = now;
                        n.delivery_count = n.delivery_count.wrapping_add(1);
                    }
                }
                None => {
                    out.array(2);
                    reply_id(out, id);
                    out.null_array();
                }
            }
        }
        return true;
    }
    if !has_new(s, group.last_id, req.woken) {
        return false;
    }
    head(out);
    make_consumer(group, ops);
    let start = group.last_id.incr().unwrap_or(StreamId::MAX);
    let entries = s.collect(start, StreamId::MAX, false, req.count);
    out.array(entries.len());
    let mut advanced = false;
    for (id, fields) in entries {
        advanced |= id > group.last_id;
        s.advance_group(group, id);
        out.array(2);
        reply_id(out, id);
        out.array(fields.len());
        for f in &fields {
            out.bulk(f);
        }
        if !g.noack {
            group.deliver(id, &g.consumer, now);
            // The delivery, with the group's last id after it.
            if let Some(nack) = group.pel.get(&id) {
                ops.xclaim(key, &g.group, &id.to_bytes(), nack, group.last_id);
            }
        }
    }
    if g.noack && advanced {
        // No pending entries to carry it: the group's new last id goes out by itself.
        ops.setid(key, &g.group, group);
    }
    true
}

fn xread<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(read_generic(conn, a, false))
}

fn xreadgroup<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(read_generic(conn, a, true))
}

/// Checks one read's streams in argument order as 7.0 does (type, group, then the id) and
/// builds the per-stream requests. `states[i]` carries the stream's last id for `$`.
fn plan_read(
    a: &Args,
    r: &ReadArgs,
    xreadgroup: bool,
    states: &[(KeyState, StreamId)],
    resp3: bool,
) -> Result<Vec<ReadReq>, Error> {
    let mut reqs = Vec::with_capacity(r.n);
    for (i, (state, last)) in states.iter().enumerate() {
        match state {
            KeyState::WrongType => return Err(Error::WrongType),
            KeyState::Missing | KeyState::Stream { group_ok: false } if r.group.is_some() => {
                let group = r.group.as_ref().map_or(&[][..], |g| g.0.as_slice());
                return Err(nogroup(format!(
                    "No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    lossy(a.get(r.streams_at + i)),
                    lossy(group)
                )));
            }
            _ => {}
        }
        let arg = a.get(r.streams_at + r.n + i);
        let after = if arg == b"$" {
            if xreadgroup {
                return Err(Error::msg("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            // "After what the stream holds now", pinned here so that the first attempt and
            // any wait agree on it.
            *last
        } else if arg == b">" {
            if !xreadgroup {
                return Err(Error::msg("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            StreamId::MAX
        } else {
            parse_strict_id(arg)?
        };
        reqs.push(ReadReq {
            after,
            count: r.count,
            group: r.group.as_ref().map(|(g, c)| GroupReq {
                group: g.clone(),
                consumer: c.clone(),
                noack: r.noack,
            }),
            resp3,
            woken: false,
            blocked: false,
        });
    }
    Ok(reqs)
}

/// A stream's state for `plan_read`, and its last id (0-0 when absent).
fn probe(db: &mut Db, key: &[u8], group: Option<&[u8]>, now: i64) -> (KeyState, StreamId) {
    let state = key_state(db, key, group, now);
    let last = match state {
        KeyState::Stream { .. } => db
            .read_as::<Stream>(key, now)
            .ok()
            .flatten()
            .map_or(StreamId::MIN, |s| s.last_id),
        _ => StreamId::MIN,
    };
    (state, last)
}

/// The first attempt's result: the requests and, per stream, the reply element if served.
type Attempted = Result<(Vec<ReadReq>, Vec<Option<Vec<u8>>>), Error>;

async fn read_generic(conn: &mut Conn, a: Args<'_>, xreadgroup: bool) -> CmdResult {
    let r = parse_read(&a, xreadgroup)?;
    let resp3 = conn.out.resp3;
    let idx = crate::cmd::table().lookup(a.get(0)).unwrap_or(0);
    // One run over every stream's shard: the checks and reads see one state of the keyspace.
    let attempted: Attempted = with_keys(conn, idx, &a, |c| {
        let states: Vec<(KeyState, StreamId)> = (0..r.n)
            .map(|i| {
                probe(
                    &mut c.db,
                    a.get(r.streams_at + i),
                    r.group.as_ref().map(|g| g.0.as_slice()),
                    c.now,
                )
            })
            .collect();
        let reqs = plan_read(&a, &r, xreadgroup, &states, resp3)?;
        let mut served = Vec::with_capacity(r.n);
        for (i, q) in reqs.iter().enumerate() {
            served.push(serve_read(c, a.get(r.streams_at + i), q)?);
        }
        Ok((reqs, served))
    })
    .await;
    let (reqs, served) = attempted?;
    let parts: Vec<Vec<u8>> = served.into_iter().flatten().collect();
    if !parts.is_empty() {
        read_reply_head(&mut conn.out, parts.len());
        for p in parts {
            conn.out.raw(&p);
        }
        return Ok(());
    }
    match r.block {
        None => {
            conn.out.null_array();
            Ok(())
        }
        Some(timeout) => block_read(conn, &a, &r, &reqs, timeout).await,
    }
}

/// XREAD's outer reply: a map of key to entries in RESP3, an array of `[key, entries]` in RESP2.
fn read_reply_head(out: &mut Reply, n: usize) {
    if out.resp3 {
        out.map(n);
    } else {
        out.array(n);
    }
}

/// XREAD(GROUP) BLOCK: served from one stream when woken (7.0 replies with that stream alone).
static READ_OP: BlockingOp = BlockingOp {
    serve: serve_blocked,
    serves_all_keys: false,
    timeout_reply: Reply::null_array,
};

/// Serves a blocked XREAD(GROUP) from the stream at `key_pos`. The arguments are the ones
/// `read_generic` rewrote with `$` already replaced by the id it stood for.
fn serve_blocked(
    c: &mut Ctx,
    a: &Args,
    key_pos: usize,
    state: &mut WaitState,
) -> Result<bool, Error> {
    // The first call is the check made as the reader registers, not a wake-up: it is served
    // only by a live entry, as the first attempt would have been.
    let registering = state.data.is_empty();
    state.data = vec![1];
    let xreadgroup = a.is(0, "XREADGROUP");
    let r = parse_read(a, xreadgroup)?;
    let id_arg = a.get(key_pos + r.n);
    let after = if id_arg == b">" {
        StreamId::MAX
    } else {
        parse_strict_id(id_arg)?
    };
    let req = ReadReq {
        after,
        // Without COUNT a woken reader gets at most 1000 entries (XREAD_BLOCKED_DEFAULT_COUNT).
        count: if r.count == 0 { 1000 } else { r.count },
        group: r.group.map(|(group, consumer)| GroupReq {
            group,
            consumer,
            noack: r.noack,
        }),
        resp3: c.out.resp3,
        woken: !registering,
        blocked: true,
    };
    let key = a.get(key_pos);
    if let Some(g) = &req.group {
        // A group reader whose stream or group went away is answered with an error, as 7.0
        // does, rather than left waiting for what can no longer come.
        match c.db.read_as::<Stream>(key, c.now) {
            Ok(Some(s)) if s.groups.contains_key(g.group.as_slice()) => {}
            Ok(Some(_)) => {
                c.out.error_line(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                );
                return Ok(true);
            }
            _ => {
                c.out
                    .error_line("UNBLOCKED the stream key no longer exists");
                return Ok(true);
            }
        }
    }
    match serve_read(c, key, &req)? {
        Some(bytes) => {
            read_reply_head(c.out, 1);
            c.out.raw(&bytes);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Blocks after a first attempt over all the streams found nothing. `$` ids are replaced by
/// the ids they resolved to, so that entries added meanwhile are not missed.
async fn block_read(
    conn: &mut Conn,
    a: &Args<'_>,
    r: &ReadArgs,
    reqs: &[ReadReq],
    timeout: u64,
) -> CmdResult {
    let mut words: Vec<Vec<u8>> = a.iter().map(<[u8]>::to_vec).collect();
    for (i, q) in reqs.iter().enumerate() {
        let w = &mut words[r.streams_at + r.n + i];
        if w.as_slice() == b"$" {
            *w = q.after.to_bytes();
        }
    }
    let owned = OwnedArgs::from_iter(words.iter().map(Vec::as_slice));
    let positions: Vec<usize> = (r.streams_at..r.streams_at + r.n).collect();
    blocking::wait(conn, &owned.args(), &positions, timeout).await
}
