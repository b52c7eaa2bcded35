//! Streams in the RDB object format: written as Redis 7.0 writes STREAM_LISTPACKS_2 (type 19),
//! read from types 15 (6.x), 19 (7.0) and 21 (7.2+, consumer active times).
//!
//! Each node travels as its 16-byte big-endian master id and a listpack laid out as
//! `t_stream.c` builds it:
//!
//! ```text
//! master entry: count, deleted, n, field_1 .. field_n, 0
//! each entry:   flags, ms - master.ms, seq - master.seq,
//!               [n, field_1, value_1 .. | value_1 ..  (SAMEFIELDS)], lp-count
//! ```
//!
//! Loading checks more than Redis's deep sanitization: besides the listpack layout and
//! lp-count, ids must strictly increase from the node's master id on, nodes must not overlap,
//! the node counters and the stream length must match the entries, and every pending entry
//! must have exactly one owner among the group's consumers.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use super::listpack::{self, LpEntry, LpWriter};
use super::{types, RdbError, Reader, Writer};
use crate::types::stream::{Consumer, Group, Nack, NodeBuilder, NodeRef, Stream, StreamId};

/// Entry flags (`STREAM_ITEM_FLAG_*`).
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// A stream id as rax keys and PEL entries store it: ms then seq, both big-endian.
fn raw_id(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

fn id_from_raw(b: &[u8]) -> Result<StreamId, RdbError> {
    let k: &[u8; 16] = b.try_into().map_err(|_| RdbError::BadFormat)?;
    let (ms, seq) = k.split_at(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(ms);
    let ms = u64::from_be_bytes(a);
    a.copy_from_slice(seq);
    Ok(StreamId::new(ms, u64::from_be_bytes(a)))
}

/// Writes `s` as Redis 7.0's `rdbSaveObject` does for type 19 (the type byte excluded).
pub fn write_stream(w: &mut Writer, s: &Stream) {
    w.len(s.node_count() as u64);
    for node in s.nodes() {
        w.string(&raw_id(node.master));
        w.string(&node_listpack(node));
    }
    w.len(s.len());
    for id in [s.last_id, s.first_id, s.max_deleted] {
        w.len(id.ms);
        w.len(id.seq);
    }
    w.len(s.entries_added);
    w.len(s.groups.len() as u64);
    for (name, g) in &s.groups {
        w.string(name);
        w.len(g.last_id.ms);
        w.len(g.last_id.seq);
        // -1 ("unknown") travels as its two's complement, as Redis's cast makes it.
        w.len(g.entries_read as u64);
        w.len(g.pel.len() as u64);
        for (id, nack) in &g.pel {
            w.raw_bytes(&raw_id(*id));
            w.ms(nack.delivery_time);
            w.len(nack.delivery_count);
        }
        w.len(g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            w.string(cname);
            w.ms(c.seen_time);
            w.len(c.pel.len() as u64);
            for id in &c.pel {
                w.raw_bytes(&raw_id(*id));
            }
        }
    }
}

/// A node's listpack, byte for byte what `streamAppendItem` (and XDEL/XTRIM's flagging)
/// leaves in Redis: the master fields are the first entry's, and later entries with the
/// same field names store only their values.
fn node_listpack(node: NodeRef<'_>) -> Vec<u8> {
    let mut lp = LpWriter::new();
    lp.push_int(node.live() as i64);
    lp.push_int(node.deleted() as i64);
    let master_fields = node.entries().next().map(|e| e.fields);
    let master_n = master_fields.map_or(0, |f| f.count / 2);
    lp.push_int(master_n as i64);
    for name in master_fields.into_iter().flat_map(|f| f.step_by(2)) {
        lp.push_bytes(name);
    }
    lp.push_int(0);
    for e in node.entries() {
        let n = e.fields.count / 2;
        let same =
            n == master_n && master_fields.is_some_and(|m| m.step_by(2).eq(e.fields.step_by(2)));
        let mut flags = 0;
        if e.deleted {
            flags |= FLAG_DELETED;
        }
        if same {
            flags |= FLAG_SAMEFIELDS;
        }
        lp.push_int(flags);
        lp.push_int(e.id.ms.wrapping_sub(node.master.ms) as i64);
        lp.push_int(e.id.seq.wrapping_sub(node.master.seq) as i64);
        if same {
            for v in e.fields.skip(1).step_by(2) {
                lp.push_bytes(v);
            }
            lp.push_int(n as i64 + 3);
        } else {
            lp.push_int(n as i64);
            for f in e.fields {
                lp.push_bytes(f);
            }
            lp.push_int(2 * n as i64 + 4);
        }
    }
    lp.finish()
}

/// Reads a stream of type `t` (15, 19 or 21; the type byte already consumed).
pub fn read_stream(r: &mut Reader<'_>, t: u8) -> Result<Stream, RdbError> {
    let bad = RdbError::BadFormat;
    let v2 = match t {
        types::STREAM_LISTPACKS => false,
        types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => true,
        _ => return Err(bad),
    };
    let nnodes = r.count()?;
    let mut nodes = Vec::new();
    for _ in 0..nnodes {
        let key = r.string()?;
        let blob = r.string()?;
        nodes.push(read_node(&key, &blob)?);
    }
    let len = r.len()?;
    let mut s = Stream::from_nodes(nodes, len).map_err(|_| bad)?;
    s.last_id = read_id(r)?;
    // A later XADD must land above every stored id, tombstones included.
    if s.last_stored_id().is_some_and(|top| top > s.last_id) {
        return Err(bad);
    }
    if v2 {
        s.first_id = read_id(r)?;
        s.max_deleted = read_id(r)?;
        s.entries_added = r.len()?;
    } else {
        // What 7.0 derives for a 6.x stream: every entry counted as added, no tombstone
        // known, and the first live id (the largest id when there is none).
        s.entries_added = len;
        s.first_id = s.edge_id(false).unwrap_or(StreamId::MAX);
    }
    let ngroups = r.count()?;
    for _ in 0..ngroups {
        let name: Box<[u8]> = r.string()?.into();
        let last_id = read_id(r)?;
        let entries_read = if v2 {
            r.len()? as i64
        } else {
            s.estimate_distance(last_id)
        };
        let g = read_group(r, t, last_id, entries_read)?;
        match s.groups.entry(name) {
            Entry::Occupied(_) => return Err(bad),
            Entry::Vacant(v) => {
                v.insert(g);
            }
        }
    }
    Ok(s)
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    let ms = r.len()?;
    Ok(StreamId::new(ms, r.len()?))
}

/// A consumer group after its name and last id: the global PEL, then the consumers with
/// their own PELs, which must partition the global one.
fn read_group(
    r: &mut Reader<'_>,
    t: u8,
    last_id: StreamId,
    entries_read: i64,
) -> Result<Group, RdbError> {
    let bad = RdbError::BadFormat;
    let mut g = Group::new(last_id, entries_read);
    let npel = r.count()?;
    for _ in 0..npel {
        let id = id_from_raw(r.raw_bytes(16)?)?;
        let nack = Nack {
            consumer: None,
            delivery_time: r.ms()?,
            delivery_count: r.len()?,
        };
        if g.pel.insert(id, nack).is_some() {
            return Err(bad);
        }
    }
    let nconsumers = r.count()?;
    for _ in 0..nconsumers {
        let name: Arc<[u8]> = r.string()?.into();
        if g.consumers.contains_key(&name) {
            return Err(bad);
        }
        let seen_time = r.ms()?;
        if t == types::STREAM_LISTPACKS_3 {
            // 7.2's active time; 7.0 semantics have no place for it.
            r.ms()?;
        }
        let mut c = Consumer {
            seen_time,
            pel: Default::default(),
        };
        let n = r.count()?;
        for _ in 0..n {
            let id = id_from_raw(r.raw_bytes(16)?)?;
            let nack = g.pel.get_mut(&id).ok_or(bad)?;
            // Owned twice (by this consumer or another) would leave a dangling reference.
            if nack.consumer.is_some() {
                return Err(bad);
            }
            nack.consumer = Some(name.clone());
            c.pel.insert(id);
        }
        g.consumers.insert(name, c);
    }
    // Every pending entry needs an owner (Redis checks this under deep sanitization).
    if g.pel.values().any(|n| n.consumer.is_none()) {
        return Err(bad);
    }
    Ok(g)
}

/// An integer listpack element; canonical integer strings count, as `lpGetIntegerIfValid`
/// reads them.
fn lp_int(e: Option<&LpEntry<'_>>) -> Result<i64, RdbError> {
    e.and_then(LpEntry::as_i64).ok_or(RdbError::BadFormat)
}

fn lp_bytes<'a>(e: Option<&LpEntry<'a>>) -> Result<Cow<'a, [u8]>, RdbError> {
    match e {
        Some(LpEntry::Bytes(b)) => Ok(Cow::Borrowed(*b)),
        Some(e) => Ok(Cow::Owned(e.to_vec())),
        None => Err(RdbError::BadFormat),
    }
}

/// A non-negative count from the listpack, bounded by the elements left to read.
fn lp_count(e: Option<&LpEntry<'_>>, left: usize) -> Result<usize, RdbError> {
    let n = lp_int(e)?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= left)
        .ok_or(RdbError::BadFormat)
}

/// One node: its rax key and listpack, validated whole.
fn read_node(key: &[u8], blob: &[u8]) -> Result<NodeBuilder, RdbError> {
    let bad = RdbError::BadFormat;
    let master = id_from_raw(key)?;
    let es = listpack::entries(blob)?;
    let mut it = es.iter();
    let live = lp_count(it.next(), es.len())?;
    let deleted = lp_count(it.next(), es.len())?;
    let master_n = lp_count(it.next(), it.len())?;
    let mut master_fields = Vec::with_capacity(master_n);
    for _ in 0..master_n {
        master_fields.push(lp_bytes(it.next())?);
    }
    if lp_int(it.next())? != 0 {
        return Err(bad);
    }
    let mut b = NodeBuilder::new(master);
    let mut pairs: Vec<Cow<'_, [u8]>> = Vec::new();
    let (mut seen_live, mut seen_deleted) = (0usize, 0usize);
    while it.len() > 0 {
        let flags = lp_int(it.next())?;
        if flags & !(FLAG_DELETED | FLAG_SAMEFIELDS) != 0 {
            return Err(bad);
        }
        let dms = lp_int(it.next())?;
        let dseq = lp_int(it.next())?;
        let id = StreamId::new(
            master.ms.wrapping_add(dms as u64),
            master.seq.wrapping_add(dseq as u64),
        );
        pairs.clear();
        let n;
        let expect_lp_count;
        if flags & FLAG_SAMEFIELDS != 0 {
            n = master_n;
            for f in &master_fields {
                pairs.push(f.clone());
                pairs.push(lp_bytes(it.next())?);
            }
            expect_lp_count = n + 3;
        } else {
            n = lp_count(it.next(), it.len() / 2)?;
            for _ in 0..2 * n {
                pairs.push(lp_bytes(it.next())?);
            }
            expect_lp_count = 2 * n + 4;
        }
        if lp_int(it.next())? != expect_lp_count as i64 {
            return Err(bad);
        }
        // Our nodes take the master fields from the first entry, so they must agree.
        if seen_live + seen_deleted == 0
            && (n != master_n || !pairs.iter().step_by(2).eq(master_fields.iter()))
        {
            return Err(bad);
        }
        let is_deleted = flags & FLAG_DELETED != 0;
        if is_deleted {
            seen_deleted += 1;
        } else {
            seen_live += 1;
        }
        // Ids must rise. Redis does not check this, and one history breaks it there: XSETID
        // below a tombstone of a node MINID trimming left without live entries, then XADD
        // (the new id lands in that node below its master). We refuse such payloads.
        b.push(id, is_deleted, pairs.iter().map(|p| p.as_ref()))
            .map_err(|_| bad)?;
    }
    if seen_live != live || seen_deleted != deleted {
        return Err(bad);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::stream::{StreamLimits, Trim, INVALID_ENTRIES_READ};
    use std::collections::BTreeSet;

    use crate::rdb::hex;

    fn dump(s: &Stream) -> Vec<u8> {
        let mut w = Writer::new();
        write_stream(&mut w, s);
        w.buf
    }

    fn load(b: &[u8], t: u8) -> Result<Stream, RdbError> {
        let mut r = Reader::new(b);
        let s = read_stream(&mut r, t)?;
        assert!(r.is_empty(), "bytes left after the stream");
        Ok(s)
    }

    fn add(s: &mut Stream, id: StreamId, pairs: &[&str], lim: StreamLimits) {
        s.append(id, pairs.iter().map(|p| p.as_bytes()), lim);
    }

    #[test]
    fn single_entry_matches_redis_bytes() {
        // The spec's verified 7.0.15 DUMP of `XADD st 1-1 f v` (type byte and trailer cut).
        let mut s = Stream::new();
        add(
            &mut s,
            StreamId::new(1, 1),
            &["f", "v"],
            StreamLimits::default(),
        );
        let want = hex("01 10 00000000000000010000000000000001
             1d 1d000000 0a00 0101 0001 0101 816602 0001 0201 0001 0001 817602 0401 ff
             01 01 01 01 01 00 00 01 00");
        assert_eq!(dump(&s), want);
        assert_eq!(load(&want, types::STREAM_LISTPACKS_2).unwrap(), s);
    }

    /// A stream with several nodes, varied field sets (same-fields and not, integer-looking
    /// fields and values), deletions in the middle and at a node's head, an exact trim, and
    /// two groups with pending entries.
    fn rich_stream() -> Stream {
        let lim = StreamLimits {
            max_bytes: 4096,
            max_entries: 5,
        };
        let mut s = Stream::new();
        for i in 1..=23u64 {
            let id = StreamId::new(1000 + i / 3, i % 3);
            let v = format!("v{i}");
            let n = i.to_string();
            match i % 4 {
                0 => add(&mut s, id, &["a", &v, "b", "7"], lim),
                1 => add(&mut s, id, &["a", &v], lim),
                2 => add(&mut s, id, &["12", &n, "x", "-5000000000"], lim),
                _ => add(&mut s, id, &["a", &v, "c", ""], lim),
            }
        }
        let gone = [StreamId::new(1003, 0), StreamId::new(1002, 2)];
        for id in gone {
            assert!(s.delete(id));
        }
        s.after_delete(&gone);
        s.trim(Trim::MaxLen(18), false, 0);
        let mut g = Group::new(StreamId::new(1006, 1), 12);
        for (i, name) in [&b"alice"[..], b"bob", b"42"].iter().enumerate() {
            g.consumer(name, 5000 + i as i64);
        }
        for (k, id) in s
            .collect(StreamId::MIN, StreamId::MAX, false, 0)
            .iter()
            .enumerate()
        {
            if k % 3 != 2 {
                let owner: &[u8] = if k % 2 == 0 { b"alice" } else { b"bob" };
                g.deliver(id.0, owner, 7000 + k as i64);
            }
        }
        s.groups.insert(b"g1"[..].into(), g);
        s.groups.insert(
            b"123"[..].into(),
            Group::new(StreamId::MIN, INVALID_ENTRIES_READ),
        );
        s.max_deleted = StreamId::new(1003, 0);
        s
    }

    #[test]
    fn round_trips_nodes_tombstones_and_groups() {
        let s = rich_stream();
        assert!(s.node_count() >= 4);
        assert!(s.nodes().any(|n| n.deleted() > 0));
        let b = dump(&s);
        let back = load(&b, types::STREAM_LISTPACKS_2).unwrap();
        assert_eq!(back, s);
        assert_eq!(dump(&back), b);
        // An empty stream with only a group survives too.
        let mut e = Stream::new();
        e.last_id = StreamId::new(5, 5);
        e.groups
            .insert(b"g"[..].into(), Group::new(StreamId::new(5, 5), 0));
        assert_eq!(load(&dump(&e), types::STREAM_LISTPACKS_2).unwrap(), e);
    }

    /// Type 21 is type 19 plus an active time per consumer; type 15 lacks the first id,
    /// tombstone id, entries-added and entries-read, which are derived as 7.0 does.
    #[test]
    fn reads_the_6x_and_72_layouts() {
        let s = rich_stream();
        let v19 = dump(&s);
        let mut r = Reader::new(&v19);
        let back = read_stream(&mut r, types::STREAM_LISTPACKS_2).unwrap();
        assert_eq!(back, s);

        // Re-encode by hand with the 7.2 and 6.x differences.
        let mut w21 = Writer::new();
        let mut w15 = Writer::new();
        for w in [&mut w21, &mut w15] {
            w.len(s.node_count() as u64);
            for n in s.nodes() {
                w.string(&raw_id(n.master));
                w.string(&node_listpack(n));
            }
            w.len(s.len());
            w.len(s.last_id.ms);
            w.len(s.last_id.seq);
        }
        for id in [s.first_id, s.max_deleted] {
            w21.len(id.ms);
            w21.len(id.seq);
        }
        w21.len(s.entries_added);
        for (v3, w) in [(true, &mut w21), (false, &mut w15)] {
            w.len(s.groups.len() as u64);
            for (name, g) in &s.groups {
                w.string(name);
                w.len(g.last_id.ms);
                w.len(g.last_id.seq);
                if v3 {
                    w.len(g.entries_read as u64);
                }
                w.len(g.pel.len() as u64);
                for (id, n) in &g.pel {
                    w.raw_bytes(&raw_id(*id));
                    w.ms(n.delivery_time);
                    w.len(n.delivery_count);
                }
                w.len(g.consumers.len() as u64);
                for (cn, c) in &g.consumers {
                    w.string(cn);
                    w.ms(c.seen_time);
                    if v3 {
                        w.ms(123);
                    }
                    w.len(c.pel.len() as u64);
                    for id in &c.pel {
                        w.raw_bytes(&raw_id(*id));
                    }
                }
            }
        }
        assert_eq!(load(&w21.buf, types::STREAM_LISTPACKS_3).unwrap(), s);
        let old = load(&w15.buf, types::STREAM_LISTPACKS).unwrap();
        assert_eq!(old.entries_added, s.len());
        assert_eq!(old.max_deleted, StreamId::MIN);
        assert_eq!(old.first_id, s.edge_id(false).unwrap());
        for (name, g) in &old.groups {
            assert_eq!(g.entries_read, old.estimate_distance(g.last_id));
            assert_eq!(g.pel, s.groups[name].pel);
        }
        // An empty 6.x stream: 7.0's edge search finds nothing and records the largest id.
        let empty = load(&[0, 0, 3, 0, 0], types::STREAM_LISTPACKS).unwrap();
        assert_eq!(empty.first_id, StreamId::MAX);
        assert_eq!(empty.last_id, StreamId::new(3, 0));
        // 21's extra bytes are not optional.
        assert!(load(&w21.buf, types::STREAM_LISTPACKS_2).is_err());
    }

    /// A node listpack: the master entry (`head` counters and field count, `fields`, 0),
    /// then `entries` (flags, ms delta, seq delta, elements..., lp-count) as written.
    fn node_blob(head: &[i64], fields: &[&str], entries: &[&[&str]]) -> Vec<u8> {
        let mut lp = LpWriter::new();
        for &h in head {
            lp.push_int(h);
        }
        for f in fields {
            lp.push_bytes(f.as_bytes());
        }
        lp.push_int(0);
        for e in entries {
            for x in *e {
                lp.push_bytes(x.as_bytes());
            }
        }
        lp.finish()
    }

    /// A one-node payload start: node count, key, listpack.
    fn one_node(key: &[u8], blob: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.len(1);
        w.string(key);
        w.string(blob);
        w.buf
    }

    fn tail(w: &mut Vec<u8>, len: u64, last: StreamId) {
        let mut t = Writer::new();
        t.len(len);
        for id in [last, StreamId::MIN, StreamId::MIN] {
            t.len(id.ms);
            t.len(id.seq);
        }
        t.len(len);
        t.len(0);
        w.extend_from_slice(&t.buf);
    }

    /// Master counters, master fields, entries, stream length, and why it is bad.
    type NodeCase<'a> = (&'a [i64], &'a [&'a str], &'a [&'a [&'a str]], u64, &'a str);
    /// Writes a group's PEL and consumers, and why it is bad.
    type GroupCase<'a> = (&'a dyn Fn(&mut Writer), &'a str);

    fn node_case(
        head: &[i64],
        fields: &[&str],
        entries: &[&[&str]],
        len: u64,
    ) -> Result<Stream, RdbError> {
        let mut b = one_node(
            &raw_id(StreamId::new(10, 0)),
            &node_blob(head, fields, entries),
        );
        tail(&mut b, len, StreamId::new(99, 0));
        load(&b, types::STREAM_LISTPACKS_2)
    }

    #[test]
    fn hand_made_nodes_are_validated() {
        let ok: &[&[&str]] = &[
            &["2", "0", "0", "v1", "4"],
            &["0", "1", "0", "1", "g", "w", "6"],
        ];
        let s = node_case(&[2, 0, 1], &["f"], ok, 2).unwrap();
        assert_eq!(
            s.collect(StreamId::MIN, StreamId::MAX, false, 0),
            vec![
                (StreamId::new(10, 0), vec![b"f".to_vec(), b"v1".to_vec()]),
                (StreamId::new(11, 0), vec![b"g".to_vec(), b"w".to_vec()]),
            ]
        );
        let bad_cases: &[NodeCase] = &[
            (&[2, 0, 1], &["f"], ok, 3, "length lies"),
            (&[1, 0, 1], &["f"], ok, 2, "live count lies"),
            (&[2, 1, 1], &["f"], ok, 2, "deleted count lies"),
            (
                &[2, 0, 1],
                &["f"],
                &[&["2", "0", "0", "v1", "5"], ok[1]],
                2,
                "lp-count lies",
            ),
            (
                &[2, 0, 1],
                &["f"],
                &[
                    &["2", "0", "0", "v1", "4"],
                    &["0", "0", "0", "1", "g", "w", "6"],
                ],
                2,
                "repeated id",
            ),
            (
                &[2, 0, 1],
                &["f"],
                &[
                    &["2", "0", "0", "v1", "4"],
                    &["0", "-1", "0", "1", "g", "w", "6"],
                ],
                2,
                "id below master",
            ),
            (
                &[1, 0, 1],
                &["f"],
                &[&["2", "0", "1", "v1", "4"]],
                1,
                "first entry not at master",
            ),
            (
                &[1, 0, 1],
                &["f"],
                &[&["0", "0", "0", "1", "g", "w", "6"]],
                1,
                "master fields differ",
            ),
            (
                &[1, 0, 1],
                &["f"],
                &[&["6", "0", "0", "v1", "4"]],
                1,
                "unknown flag",
            ),
            (
                &[1, 0, 1],
                &["f"],
                &[&["2", "0", "0", "v1", "4", "junk"]],
                1,
                "trailing element",
            ),
            (
                &[1, 0, 1],
                &["f"],
                &[&["2", "0", "0"]],
                1,
                "entry cut short",
            ),
            (
                &[1, 0, 2],
                &["f"],
                &[&["2", "0", "0", "v1", "4"]],
                1,
                "master field count lies",
            ),
            (&[0, 0, 1], &["f"], &[], 0, "node without entries"),
            (
                &[1, 0, -1],
                &[],
                &[&["2", "0", "0", "4"]],
                1,
                "negative field count",
            ),
        ];
        for (head, fields, entries, len, why) in bad_cases {
            assert_eq!(
                node_case(head, fields, entries, *len),
                Err(RdbError::BadFormat),
                "{why}"
            );
        }
        // Master terminator not 0, an empty listpack, a short key.
        let mut lp = LpWriter::new();
        for x in [1, 0, 1] {
            lp.push_int(x);
        }
        lp.push_bytes(b"f");
        lp.push_int(1);
        let one = node_blob(&[1, 0, 1], &["f"], &[&["2", "0", "0", "v", "4"]]);
        let key = raw_id(StreamId::new(10, 0));
        for (key, blob) in [
            (&key[..], lp.finish()),
            (&key[..], LpWriter::new().finish()),
            (&key[..15], one.clone()),
        ] {
            let mut b = one_node(key, &blob);
            tail(&mut b, 1, StreamId::new(99, 0));
            assert_eq!(
                load(&b, types::STREAM_LISTPACKS_2),
                Err(RdbError::BadFormat)
            );
        }
        let mut b = one_node(&key, &one);
        tail(&mut b, 1, StreamId::new(10, 0));
        assert!(load(&b, types::STREAM_LISTPACKS_2).is_ok());
        // last_id below a stored id.
        let mut b = one_node(&key, &one);
        tail(&mut b, 1, StreamId::new(9, 0));
        assert_eq!(
            load(&b, types::STREAM_LISTPACKS_2),
            Err(RdbError::BadFormat)
        );
    }

    #[test]
    fn overlapping_or_repeated_nodes_are_refused() {
        let lim = StreamLimits {
            max_bytes: 4096,
            max_entries: 2,
        };
        let mut s = Stream::new();
        for i in 1..=4 {
            add(&mut s, StreamId::new(i, 0), &["f", "v"], lim);
        }
        let nodes: Vec<(Vec<u8>, Vec<u8>)> = s
            .nodes()
            .map(|n| (raw_id(n.master).to_vec(), node_listpack(n)))
            .collect();
        let build = |order: &[usize], keys: &[StreamId]| {
            let mut w = Writer::new();
            w.len(order.len() as u64);
            for (&i, k) in order.iter().zip(keys) {
                w.string(&raw_id(*k));
                w.string(&nodes[i].1);
            }
            tail(&mut w.buf, 2 * order.len() as u64, StreamId::new(4, 0));
            load(&w.buf, types::STREAM_LISTPACKS_2)
        };
        let (a, b) = (StreamId::new(1, 0), StreamId::new(3, 0));
        // Nodes in any order load (Redis inserts them into its rax by key).
        let mut back = build(&[1, 0], &[b, a]).unwrap();
        back.first_id = s.first_id;
        assert_eq!(back, s);
        assert!(build(&[0, 0], &[a, a]).is_err(), "same key twice");
        assert!(
            build(&[0, 1], &[a, StreamId::new(2, 0)]).is_err(),
            "overlap"
        );
    }

    #[test]
    fn group_pels_must_agree() {
        let s = rich_stream();
        let good = dump(&s);
        assert!(load(&good, types::STREAM_LISTPACKS_2).is_ok());
        let group = |f: &dyn Fn(&mut Writer)| {
            let mut e = Stream::new();
            e.last_id = StreamId::new(9, 0);
            let mut b = dump(&e);
            b.pop(); // no groups
            let mut w = Writer::new();
            w.len(1);
            w.string(b"g");
            w.len(9);
            w.len(0);
            w.len(0);
            f(&mut w);
            b.extend_from_slice(&w.buf);
            load(&b, types::STREAM_LISTPACKS_2)
        };
        let pel = |w: &mut Writer, ids: &[u64]| {
            w.len(ids.len() as u64);
            for &i in ids {
                w.raw_bytes(&raw_id(StreamId::new(i, 0)));
                w.ms(1);
                w.len(1);
            }
        };
        let consumer = |w: &mut Writer, name: &[u8], ids: &[u64]| {
            w.string(name);
            w.ms(2);
            w.len(ids.len() as u64);
            for &i in ids {
                w.raw_bytes(&raw_id(StreamId::new(i, 0)));
            }
        };
        let g = group(&|w| {
            pel(w, &[1, 2]);
            w.len(2);
            consumer(w, b"a", &[1]);
            consumer(w, b"b", &[2]);
        })
        .unwrap();
        let g = &g.groups[&b"g"[..]];
        assert_eq!(
            g.pel[&StreamId::new(2, 0)].consumer.as_deref(),
            Some(&b"b"[..])
        );
        assert_eq!(
            g.consumers[&b"a"[..]].pel,
            BTreeSet::from([StreamId::new(1, 0)])
        );
        let cases: &[GroupCase] = &[
            (
                &|w| {
                    pel(w, &[1, 2]);
                    w.len(1);
                    consumer(w, b"a", &[1]);
                },
                "pending entry without owner",
            ),
            (
                &|w| {
                    pel(w, &[1]);
                    w.len(1);
                    consumer(w, b"a", &[1, 3]);
                },
                "owned entry not pending",
            ),
            (
                &|w| {
                    pel(w, &[1]);
                    w.len(2);
                    consumer(w, b"a", &[1]);
                    consumer(w, b"b", &[1]);
                },
                "two owners",
            ),
            (
                &|w| {
                    pel(w, &[1]);
                    w.len(1);
                    consumer(w, b"a", &[1, 1]);
                },
                "owned twice",
            ),
            (
                &|w| {
                    pel(w, &[1, 1]);
                    w.len(1);
                    consumer(w, b"a", &[1]);
                },
                "pending twice",
            ),
            (
                &|w| {
                    pel(w, &[]);
                    w.len(2);
                    consumer(w, b"a", &[]);
                    consumer(w, b"a", &[]);
                },
                "consumer twice",
            ),
            (
                &|w| {
                    pel(w, &[]);
                    w.len(3);
                    consumer(w, b"a", &[]);
                },
                "consumer count lies",
            ),
        ];
        for (f, why) in cases {
            assert_eq!(group(*f), Err(RdbError::BadFormat), "{why}");
        }
        // A group name twice.
        let mut e = Stream::new();
        e.groups
            .insert(b"g"[..].into(), Group::new(StreamId::MIN, 0));
        let mut b = dump(&e);
        let one = b.len();
        // The group count, then name, last id, entries read, PEL and consumer counts.
        b[one - 8] = 2;
        let body = b[one - 7..].to_vec();
        b.extend_from_slice(&body);
        assert_eq!(
            load(&b, types::STREAM_LISTPACKS_2),
            Err(RdbError::BadFormat)
        );
    }

    /// Every truncation and every single-bit flip of a rich payload is an error or a
    /// stream that re-serializes consistently; none panics.
    #[test]
    fn corruption_never_panics() {
        let good = dump(&rich_stream());
        for n in 0..good.len() {
            let mut r = Reader::new(&good[..n]);
            assert!(
                read_stream(&mut r, types::STREAM_LISTPACKS_2).is_err(),
                "cut at {n}"
            );
        }
        for i in 0..good.len() * 8 {
            let mut b = good.clone();
            b[i / 8] ^= 1 << (i % 8);
            let mut r = Reader::new(&b);
            if let Ok(s) = read_stream(&mut r, types::STREAM_LISTPACKS_2) {
                let again = dump(&s);
                assert_eq!(
                    load(&again, types::STREAM_LISTPACKS_2).unwrap(),
                    s,
                    "flip {i}"
                );
            }
        }
    }
}
