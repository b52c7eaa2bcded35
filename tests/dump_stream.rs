//! Streams through DUMP / RESTORE against stock Redis 7.0: the same command history gives
//! the same DUMP bytes (consumer seen-times zeroed, CRC left out, since those are clock
//! readings), payloads cross both ways and read back identically (XRANGE, XINFO STREAM FULL,
//! and a second DUMP byte for byte), and corrupt stream payloads get stock's error class
//! without creating the key or stopping the server. Stock runs with
//! `sanitize-dump-payload yes`, its deep validation, which is what our loader always does.

mod common;

use common::{crc64, parse, show, Node, Raw, Server, StockRedis};

/// Delivery time every pending entry is set to (XCLAIM ... TIME), so PELs compare exactly.
const FIXED_TIME: &[u8] = b"1700000000000";

fn node(bytes: &[u8]) -> Node {
    parse(bytes, &mut 0)
}

fn bulk(reply: &[u8]) -> Vec<u8> {
    match node(reply) {
        Node::Bulk(_, Some(b)) => b,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn both(a: &mut Raw, b: &mut Raw, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    (a.call(args), b.call(args))
}

/// Runs `args` on both servers and requires the same reply.
fn same(a: &mut Raw, b: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    let (x, y) = both(a, b, args);
    assert_eq!(
        show(&x),
        show(&y),
        "replies differ for {:?}",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
    x
}

/// Asserts equal replies, showing only where they first differ.
fn same_node(x: &Node, y: &Node, what: &str) {
    if x != y {
        let (x, y) = (format!("{x:?}"), format!("{y:?}"));
        let i = x.bytes().zip(y.bytes()).take_while(|(p, q)| p == q).count();
        let from = i.saturating_sub(300);
        panic!(
            "{what}: replies differ at {i}\nours:  ..{}\nstock: ..{}",
            &x[from..(i + 300).min(x.len())],
            &y[from..(i + 300).min(y.len())]
        );
    }
}

fn s(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// Builds the same history on both servers: several nodes (by entry count and by bytes),
/// varied field sets (same-fields, new fields, integer-looking names and values,
/// compressible values), XDEL of a node's first entry and others, exact MAXLEN and MINID
/// trims, three groups (one with an integer-looking name), PELs filled by XREADGROUP and
/// moved by XCLAIM, an XACK, and XSETID with ENTRIESADDED / MAXDELETEDID.
fn build_rich(a: &mut Raw, b: &mut Raw, key: &[u8]) {
    let long = "xyz".repeat(30);
    for i in 1..=260u64 {
        let id = s(&format!("{i}-1"));
        let n = s(&i.to_string());
        let v = s(&format!("value-{i}-{long}"));
        let big = vec![b'a' + (i % 26) as u8; 700];
        let fields: Vec<Vec<u8>> = match i % 9 {
            0 => vec![s("c"), n.clone(), s("d"), s("-70000")],
            4 => vec![s("a"), n.clone(), s("b"), v, s("e"), s("")],
            6 => vec![s("12"), s("-1"), s("b"), s("007")],
            7 if i > 200 => vec![s("a"), n.clone(), s("b"), big],
            _ => vec![s("a"), n.clone(), s("b"), v],
        };
        let mut args: Vec<&[u8]> = vec![b"XADD", key, &id];
        args.extend(fields.iter().map(Vec::as_slice));
        same(a, b, &args);
    }
    same(a, b, &[b"XADD", key, b"300-0", b"other", b"1"]);
    same(
        a,
        b,
        &[b"XADD", key, b"300-5", b"a", b"1", b"b", b"2", b"c", b"3"],
    );
    same(
        a,
        b,
        &[b"XDEL", key, b"101-1", b"1-1", b"50-1", b"102-1", b"9-9"],
    );
    same(a, b, &[b"XTRIM", key, b"MAXLEN", b"=", b"245"]);
    same(a, b, &[b"XTRIM", key, b"MINID", b"=", b"14-0"]);
    same(a, b, &[b"XGROUP", b"CREATE", key, b"g1", b"0"]);
    same(a, b, &[b"XGROUP", b"CREATE", key, b"g2", b"$"]);
    same(
        a,
        b,
        &[b"XGROUP", b"CREATE", key, b"77", b"0", b"ENTRIESREAD", b"3"],
    );
    same(a, b, &[b"XGROUP", b"CREATECONSUMER", key, b"g1", b"idle"]);
    for (g, c, n) in [
        ("g1", "alice", "4"),
        ("g1", "bob", "3"),
        ("77", "carol", "2"),
    ] {
        same(
            a,
            b,
            &[
                b"XREADGROUP",
                b"GROUP",
                g.as_bytes(),
                c.as_bytes(),
                b"COUNT",
                n.as_bytes(),
                b"STREAMS",
                key,
                b">",
            ],
        );
    }
    same(a, b, &[b"XACK", key, b"g1", b"16-1"]);
    same(
        a,
        b,
        &[b"XCLAIM", key, b"g1", b"bob", b"0", b"17-1", b"JUSTID"],
    );
    same(
        a,
        b,
        &[
            b"XSETID",
            key,
            b"300-5",
            b"ENTRIESADDED",
            b"400",
            b"MAXDELETEDID",
            b"102-1",
        ],
    );
    fix_delivery_times(a, b, key);
}

/// Re-claims every pending entry by its owner with a fixed TIME and RETRYCOUNT, so the
/// PEL's delivery times no longer depend on when each server ran the reads.
fn fix_delivery_times(a: &mut Raw, b: &mut Raw, key: &[u8]) {
    let groups = node(&same(a, b, &[b"XINFO", b"GROUPS", key]));
    let Node::Agg(_, Some(groups)) = groups else {
        panic!("XINFO GROUPS")
    };
    for g in groups {
        let Node::Agg(_, Some(fields)) = g else {
            panic!("group")
        };
        let Node::Bulk(_, Some(name)) = &fields[1] else {
            panic!("group name")
        };
        let pending = a.call(&[b"XPENDING", key, name, b"-", b"+", b"1000"]);
        let Node::Agg(_, Some(items)) = node(&pending) else {
            panic!("XPENDING")
        };
        for (k, item) in items.iter().enumerate() {
            let Node::Agg(_, Some(p)) = item else {
                panic!("pending entry")
            };
            let (Node::Bulk(_, Some(id)), Node::Bulk(_, Some(owner))) = (&p[0], &p[1]) else {
                panic!("pending id / owner")
            };
            let retry = s(&(k + 2).to_string());
            same(
                a,
                b,
                &[
                    b"XCLAIM",
                    key,
                    name,
                    owner,
                    b"0",
                    id,
                    b"TIME",
                    FIXED_TIME,
                    b"RETRYCOUNT",
                    &retry,
                    b"JUSTID",
                ],
            );
        }
    }
}

/// A small stream (4 entries a node) with a node left without live entries by MINID
/// trimming past a tombstone, plus a group whose PEL names deleted entries.
fn build_small(a: &mut Raw, b: &mut Raw, key: &[u8]) {
    same(a, b, &[b"CONFIG", b"SET", b"stream-node-max-entries", b"4"]);
    for i in 1..=10u64 {
        let id = s(&format!("{i}-0"));
        let v = s(&format!("v{i}"));
        if i % 3 == 0 {
            same(a, b, &[b"XADD", key, &id, b"f", &v, b"n", b"5"]);
        } else {
            same(a, b, &[b"XADD", key, &id, b"f", &v]);
        }
    }
    same(a, b, &[b"XGROUP", b"CREATE", key, b"g", b"0"]);
    same(
        a,
        b,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c1",
            b"COUNT",
            b"3",
            b"STREAMS",
            key,
            b">",
        ],
    );
    same(
        a,
        b,
        &[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c2",
            b"COUNT",
            b"2",
            b"STREAMS",
            key,
            b">",
        ],
    );
    // Before the deletions: XCLAIM drops pending entries whose stream entry is gone.
    fix_delivery_times(a, b, key);
    same(a, b, &[b"XDEL", key, b"4-0", b"2-0"]);
    same(a, b, &[b"XTRIM", key, b"MINID", b"4-0"]);
    same(
        a,
        b,
        &[b"CONFIG", b"SET", b"stream-node-max-entries", b"100"],
    );
}

/// An empty stream that only holds a group (XGROUP CREATE ... MKSTREAM).
fn build_empty(a: &mut Raw, b: &mut Raw, key: &[u8]) {
    same(a, b, &[b"XGROUP", b"CREATE", key, b"g", b"$", b"MKSTREAM"]);
    same(a, b, &[b"XGROUP", b"CREATECONSUMER", key, b"g", b"c"]);
}

/// A minimal RDB cursor for the test's own reading of payloads (independent of ours).
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
}

impl Cur<'_> {
    fn len(&mut self) -> u64 {
        let x = self.b[self.p];
        self.p += 1;
        match x >> 6 {
            0 => (x & 0x3f) as u64,
            1 => {
                self.p += 1;
                (((x & 0x3f) as u64) << 8) | self.b[self.p - 1] as u64
            }
            2 if x == 0x80 => {
                self.p += 4;
                u32::from_be_bytes(self.b[self.p - 4..self.p].try_into().unwrap()) as u64
            }
            2 if x == 0x81 => {
                self.p += 8;
                u64::from_be_bytes(self.b[self.p - 8..self.p].try_into().unwrap())
            }
            _ => panic!("not a length at {}", self.p - 1),
        }
    }

    fn skip_string(&mut self) {
        let x = self.b[self.p];
        match x {
            0xC0 => self.p += 2,
            0xC1 => self.p += 3,
            0xC2 => self.p += 5,
            0xC3 => {
                self.p += 1;
                let clen = self.len() as usize;
                self.len();
                self.p += clen;
            }
            _ => {
                let n = self.len() as usize;
                self.p += n;
            }
        }
    }
}

/// A stream DUMP payload with every consumer's seen time zeroed and the CRC cut off.
fn normalized(payload: &[u8]) -> Vec<u8> {
    let mut out = payload.to_vec();
    let mut c = Cur { b: payload, p: 0 };
    assert_eq!(payload[0], 19, "a stream of type 19");
    c.p = 1;
    for _ in 0..c.len() {
        c.skip_string();
        c.skip_string();
    }
    for _ in 0..8 {
        c.len(); // length, last id, first id, max deleted id, entries added
    }
    for _ in 0..c.len() {
        c.skip_string();
        for _ in 0..3 {
            c.len(); // last id, entries read
        }
        for _ in 0..c.len() {
            c.p += 16 + 8;
            c.len();
        }
        for _ in 0..c.len() {
            c.skip_string();
            out[c.p..c.p + 8].fill(0);
            c.p += 8;
            let n = c.len() as usize;
            c.p += 16 * n;
        }
    }
    assert_eq!(c.p + 10, payload.len(), "the payload ends after the stream");
    out.truncate(out.len() - 8);
    out
}

/// `payload` re-emitted with every delivery time, delivery count and seen time replaced
/// (the CRC left for `sealed` to redo): the extremes a payload may carry.
fn with_pel_values(payload: &[u8], time: i64, count: u64, seen: i64) -> Vec<u8> {
    let mut c = Cur { b: payload, p: 1 };
    let mut out = payload[..1].to_vec();
    let copy = |c: &Cur, from: usize, out: &mut Vec<u8>| out.extend_from_slice(&c.b[from..c.p]);
    let mut from = 1;
    for _ in 0..c.len() {
        c.skip_string();
        c.skip_string();
    }
    for _ in 0..8 {
        c.len();
    }
    for _ in 0..c.len() {
        c.skip_string();
        for _ in 0..3 {
            c.len();
        }
        for _ in 0..c.len() {
            c.p += 16;
            copy(&c, from, &mut out);
            out.extend_from_slice(&time.to_le_bytes());
            out.push(0x81);
            out.extend_from_slice(&count.to_be_bytes());
            c.p += 8;
            c.len();
            from = c.p;
        }
        for _ in 0..c.len() {
            c.skip_string();
            copy(&c, from, &mut out);
            out.extend_from_slice(&seen.to_le_bytes());
            c.p += 8;
            from = c.p;
            let n = c.len() as usize;
            c.p += 16 * n;
        }
    }
    copy(&c, from, &mut out);
    out
}

/// `n` with every consumer's `seen-time` value zeroed (a clock reading).
fn without_seen_times(n: Node) -> Node {
    match n {
        Node::Agg(t, Some(items)) => {
            let mut out: Vec<Node> = Vec::with_capacity(items.len());
            for item in items {
                let seen = matches!(out.last(), Some(Node::Bulk(_, Some(k))) if k == b"seen-time");
                out.push(if seen {
                    Node::Line(b':', b"0".to_vec())
                } else {
                    without_seen_times(item)
                });
            }
            Node::Agg(t, Some(out))
        }
        other => other,
    }
}

/// XINFO STREAM FULL without `radix-tree-nodes` (a count of rax internals we estimate).
fn info_full(c: &mut Raw, key: &[u8]) -> Node {
    let Node::Agg(t, Some(items)) =
        node(&c.call(&[b"XINFO", b"STREAM", key, b"FULL", b"COUNT", b"0"]))
    else {
        panic!("XINFO STREAM FULL")
    };
    let mut kept = Vec::new();
    for pair in items.chunks(2) {
        if pair[0] != Node::Bulk(b'$', Some(b"radix-tree-nodes".to_vec())) {
            kept.extend_from_slice(pair);
        }
    }
    Node::Agg(t, Some(kept))
}

/// XRANGE and XINFO STREAM FULL; seen times zeroed unless `exact` (they differ between
/// servers that ran the same history, but a restore must carry them over).
fn contents(c: &mut Raw, key: &[u8], exact: bool) -> (Node, Node) {
    let info = info_full(c, key);
    (
        node(&c.call(&[b"XRANGE", key, b"-", b"+"])),
        if exact {
            info
        } else {
            without_seen_times(info)
        },
    )
}

fn start() -> (Server, StockRedis, Raw, Raw) {
    let ours = Server::start(2, &[]);
    let stock = StockRedis::start(&["--sanitize-dump-payload", "yes"]);
    let (a, b) = (ours.raw(), Raw::connect(stock.port));
    (ours, stock, a, b)
}

#[test]
fn same_history_same_dump_and_both_ways_restore() {
    let (_ours, _stock, mut a, mut b) = start();
    build_rich(&mut a, &mut b, b"rich");
    build_small(&mut a, &mut b, b"small");
    build_empty(&mut a, &mut b, b"empty");
    for key in [&b"rich"[..], b"small", b"empty"] {
        let mine = bulk(&a.call(&[b"DUMP", key]));
        let theirs = bulk(&b.call(&[b"DUMP", key]));
        assert_eq!(
            show(&normalized(&mine)),
            show(&normalized(&theirs)),
            "DUMP {}",
            String::from_utf8_lossy(key)
        );
        let name = String::from_utf8_lossy(key).to_string();
        let want = contents(&mut b, key, false);
        let mut got = contents(&mut a, key, false);
        same_node(&got.0, &want.0, &name);
        same_node(&got.1, &want.1, &name);

        // Ours into stock: the same stream, and stock dumps our exact bytes back.
        assert_eq!(b.call(&[b"RESTORE", b"from-ours", b"0", &mine]), b"+OK\r\n");
        assert_eq!(bulk(&b.call(&[b"DUMP", b"from-ours"])), mine);
        let exact_ours = contents(&mut a, key, true).1;
        let exact_stock = contents(&mut b, key, true).1;
        let (range, info) = contents(&mut b, b"from-ours", true);
        same_node(&range, &want.0, "stock's XRANGE of our payload");
        same_node(&info, &exact_ours, "stock's XINFO of our payload");

        // Stock's into ours: the same, and our DUMP is stock's byte for byte (CRC included).
        assert_eq!(
            a.call(&[b"RESTORE", b"from-stock", b"0", &theirs]),
            b"+OK\r\n"
        );
        assert_eq!(
            show(&bulk(&a.call(&[b"DUMP", b"from-stock"]))),
            show(&theirs)
        );
        got = contents(&mut a, b"from-stock", true);
        same_node(&got.0, &want.0, "our XRANGE of stock's payload");
        same_node(&got.1, &exact_stock, "our XINFO of stock's payload");

        // The restored streams keep working: an XADD and a group read agree.
        let mut replies = Vec::new();
        for (c, k) in [(&mut a, &b"from-stock"[..]), (&mut b, b"from-ours")] {
            let mut r = c.call(&[b"XADD", k, b"999999-0", b"z", b"1"]);
            r.extend(c.call(&[b"XGROUP", b"CREATE", k, b"g9", b"299-0"]));
            r.extend(c.call(&[b"XREADGROUP", b"GROUP", b"g9", b"c", b"STREAMS", k, b">"]));
            r.extend(c.call(&[b"XINFO", b"GROUPS", k]));
            r.extend(c.call(&[b"XRANGE", k, b"-", b"+"]));
            replies.push(node(&r));
        }
        same_node(&replies[0], &replies[1], "after XADD / XREADGROUP");
        a.call(&[b"DEL", b"from-stock"]);
        b.call(&[b"DEL", b"from-ours"]);
    }
}

fn sealed(body: &[u8]) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Tallies of how the two servers judged corrupt payloads.
#[derive(Default, Debug)]
struct Tally {
    both_refused: usize,
    both_took: usize,
    only_stock_took: usize,
}

/// RESTOREs `p` on both servers: a payload stock refuses we refuse with the same line; a
/// refused payload never creates the key; whatever both accept reads back the same.
fn judge(a: &mut Raw, b: &mut Raw, p: &[u8], what: &str, t: &mut Tally) {
    let key = b"bad";
    let (x, y) = both(a, b, &[b"RESTORE", key, b"0", p]);
    let ok = b"+OK\r\n".as_slice();
    assert!(
        x == ok
            || x == b"-ERR Bad data format\r\n"
            || x == b"-ERR DUMP payload version or checksum are wrong\r\n",
        "{what}: {}",
        show(&x)
    );
    if y != ok {
        assert_eq!(show(&x), show(&y), "{what}");
    }
    if x != ok {
        assert_eq!(a.call(&[b"EXISTS", key]), b":0\r\n", "{what}");
    }
    match (x == ok, y == ok) {
        (true, true) => {
            t.both_took += 1;
            assert_eq!(
                node(&a.call(&[b"XRANGE", key, b"-", b"+"])),
                node(&b.call(&[b"XRANGE", key, b"-", b"+"])),
                "{what}"
            );
        }
        // Stricter than stock: ids out of order or outside their node, counters or the
        // length not matching the entries, a listpack header count that lies, invalid
        // length encodings in the metadata (7.0 reads those as 2^64-1 and goes on).
        (false, true) => t.only_stock_took += 1,
        _ => t.both_refused += 1,
    }
    both(a, b, &[b"DEL", key]);
}

#[test]
fn corrupt_stream_payloads_get_stocks_error() {
    let (mut ours, _stock, mut a, mut b) = start();
    build_small(&mut a, &mut b, b"small");
    build_rich(&mut a, &mut b, b"rich");
    let mut t = Tally::default();
    for key in [&b"small"[..], b"rich"] {
        let good = bulk(&b.call(&[b"DUMP", key]));
        let body = &good[..good.len() - 10];
        let small = key == b"small";
        // Truncations, re-sealed so the stream parser (not the CRC) has to notice.
        let step = if small { 1 } else { 7 };
        for n in (1..body.len()).step_by(step) {
            judge(
                &mut a,
                &mut b,
                &sealed(&body[..n]),
                &format!("cut at {n}"),
                &mut t,
            );
        }
        // Bit flips, re-sealed: every bit of the small payload, one bit per byte of the
        // rich one.
        for i in 1..body.len() {
            let bits: Vec<u8> = if small {
                (0..8).collect()
            } else {
                vec![(i % 8) as u8]
            };
            for bit in bits {
                let mut p = body.to_vec();
                p[i] ^= 1 << bit;
                judge(
                    &mut a,
                    &mut b,
                    &sealed(&p),
                    &format!("flip {i}.{bit}"),
                    &mut t,
                );
            }
        }
        // A flip that is not re-sealed is a checksum error on both.
        let mut p = good.clone();
        p[body.len() / 2] ^= 4;
        judge(&mut a, &mut b, &p, "unsealed flip", &mut t);
    }
    eprintln!("corrupt stream payloads: {t:?}");
    assert!(t.both_refused > 1000, "{t:?}");
    assert!(ours.alive());
    assert_eq!(a.call(&[b"PING"]), b"+PONG\r\n");
}

/// Times and counts at the ends of their ranges load on both servers and the stream
/// commands that compute with them (idle times, delivery counts) keep answering as stock.
#[test]
fn extreme_pel_values_restore_and_work() {
    let (mut ours, _stock, mut a, mut b) = start();
    build_small(&mut a, &mut b, b"small");
    let good = bulk(&b.call(&[b"DUMP", b"small"]));
    let body = &good[..good.len() - 10];
    for (time, count, seen) in [
        (i64::MIN, u64::MAX, i64::MIN),
        (i64::MAX, u64::MAX - 1, i64::MAX),
        (-1, 0, -1),
    ] {
        let p = sealed(&with_pel_values(body, time, count, seen));
        let ok = same(&mut a, &mut b, &[b"RESTORE", b"x", b"0", &p, b"REPLACE"]);
        assert_eq!(ok, b"+OK\r\n");
        for args in [
            &[&b"XPENDING"[..], b"x", b"g"][..],
            &[b"XPENDING", b"x", b"g", b"-", b"+", b"10"],
            &[b"XPENDING", b"x", b"g", b"IDLE", b"5", b"-", b"+", b"10"],
            &[b"XCLAIM", b"x", b"g", b"c2", b"10", b"1-0", b"3-0"],
            &[b"XAUTOCLAIM", b"x", b"g", b"c3", b"10", b"0"],
            &[b"XCLAIM", b"x", b"g", b"c2", b"0", b"1-0", b"3-0"],
            &[b"XINFO", b"GROUPS", b"x"],
        ] {
            let (x, y) = both(&mut a, &mut b, args);
            let what = format!(
                "{:?} after ({time}, {count}, {seen})",
                String::from_utf8_lossy(args[0])
            );
            assert!(!x.starts_with(b"-ERR internal"), "{what}: {}", show(&x));
            // Idle times are clock readings; everything else must match.
            if !matches!(args[0], b"XPENDING" | b"XCLAIM" | b"XAUTOCLAIM") || args.len() == 3 {
                assert_eq!(show(&x), show(&y), "{what}");
            }
        }
        let _ = b.call(&[b"XINFO", b"STREAM", b"x", b"FULL"]);
        assert!(!a
            .call(&[b"XINFO", b"STREAM", b"x", b"FULL"])
            .starts_with(b"-"));
    }
    assert!(ours.alive());
}

/// XSETID below a tombstone (legal when MINID trimming left the stream empty but a node
/// behind) makes the next XADD land below its node's master id. Both servers dump the
/// same bytes; stock restores them, we refuse them (ids must rise within a node).
#[test]
fn xsetid_below_a_tombstone() {
    let (mut ours, _stock, mut a, mut b) = start();
    for args in [
        &[&b"XADD"[..], b"t", b"5-1", b"f", b"v"][..],
        &[b"XADD", b"t", b"6-1", b"f", b"v"],
        &[b"XADD", b"t", b"7-1", b"f", b"v"],
        &[b"XDEL", b"t", b"7-1"],
        &[b"XTRIM", b"t", b"MINID", b"=", b"7-0"],
        &[b"XSETID", b"t", b"1-0"],
        &[b"XADD", b"t", b"2-0", b"f", b"w"],
        &[b"XADD", b"t", b"3-0", b"f", b"x"],
        &[b"XRANGE", b"t", b"-", b"+"],
    ] {
        same(&mut a, &mut b, args);
    }
    let dump = same(&mut a, &mut b, &[b"DUMP", b"t"]);
    let p = bulk(&dump);
    assert_eq!(b.call(&[b"RESTORE", b"u", b"0", &p]), b"+OK\r\n");
    assert_eq!(
        a.call(&[b"RESTORE", b"u", b"0", &p]),
        b"-ERR Bad data format\r\n"
    );
    assert_eq!(a.call(&[b"EXISTS", b"u"]), b":0\r\n");
    assert!(ours.alive());
}
