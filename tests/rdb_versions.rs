//! RDB files built by hand, byte by byte from the format (rdb.h / rdb.c of Redis 6.2, 7.0,
//! 7.2 and 7.4), with this test's own encoder: what Redis 7.2 (RDB 11) and 7.4 (RDB 12)
//! write for the types we have, and what 6.x (RDB 9) wrote with its ziplist encodings,
//! load at start-up with every key's value and TTL; 7.4's hash-field-expiry types are
//! refused in Redis's words with the file named; a key the file holds twice stops the
//! start-up as Redis 7.0 stops (checked against stock on the same file).

mod common;
mod persist_common;

use common::{crc64, Raw, Server, TempDir};
use persist_common::*;

/// TTLs in the future: one in ms, one in seconds for `EXPIRETIME` (an int32: before 2038).
const AT_MS: i64 = 4_102_444_800_123;
const AT_S: i64 = 2_000_000_000;

// ---- the encoder -------------------------------------------------------------------

/// An RDB file being built.
struct Rdb {
    buf: Vec<u8>,
}

impl Rdb {
    fn new(version: u16) -> Rdb {
        let mut r = Rdb {
            buf: format!("REDIS{version:04}").into_bytes(),
        };
        r.aux("redis-ver", b"0.0.0");
        r.aux("redis-bits", b"64");
        r
    }

    fn byte(&mut self, b: u8) -> &mut Rdb {
        self.buf.push(b);
        self
    }

    /// A length: 6-bit, 14-bit or 32-bit form.
    fn len(&mut self, n: u64) -> &mut Rdb {
        if n < 64 {
            self.buf.push(n as u8);
        } else if n < 16384 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0x81);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    fn string(&mut self, s: &[u8]) -> &mut Rdb {
        self.len(s.len() as u64);
        self.buf.extend_from_slice(s);
        self
    }

    /// A string stored as an 8-bit integer (`RDB_ENC_INT8`).
    fn int8_string(&mut self, v: i8) -> &mut Rdb {
        self.buf.push(0xC0);
        self.buf.push(v as u8);
        self
    }

    fn raw(&mut self, b: &[u8]) -> &mut Rdb {
        self.buf.extend_from_slice(b);
        self
    }

    fn aux(&mut self, k: &str, v: &[u8]) -> &mut Rdb {
        self.byte(0xFA).string(k.as_bytes()).string(v)
    }

    fn select(&mut self, db: u64, keys: u64, expires: u64) -> &mut Rdb {
        self.byte(0xFE).len(db).byte(0xFB).len(keys).len(expires)
    }

    fn expire_ms(&mut self, at: i64) -> &mut Rdb {
        self.byte(0xFC).raw(&at.to_le_bytes())
    }

    fn expire_s(&mut self, at: i64) -> &mut Rdb {
        self.byte(0xFD).raw(&(at as i32).to_le_bytes())
    }

    /// A key of type `t`; the value follows.
    fn key(&mut self, t: u8, k: &str) -> &mut Rdb {
        self.byte(t).string(k.as_bytes())
    }

    fn finish(&mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let crc = crc64(&self.buf);
        let mut out = std::mem::take(&mut self.buf);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// One element of a listpack or ziplist.
#[derive(Clone, Copy)]
enum El<'a> {
    S(&'a str),
    I(i64),
}

/// A listpack (strings under 64 bytes, integers within i16).
fn listpack(els: &[El]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in els {
        let start = body.len();
        match *e {
            El::S(s) => {
                assert!(s.len() < 64);
                body.push(0x80 | s.len() as u8);
                body.extend_from_slice(s.as_bytes());
            }
            El::I(v) if (0..128).contains(&v) => body.push(v as u8),
            El::I(v) => {
                body.push(0xF1);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        let size = body.len() - start;
        assert!(size < 128);
        body.push(size as u8);
    }
    let total = 6 + body.len() + 1;
    let mut lp = Vec::with_capacity(total);
    lp.extend_from_slice(&(total as u32).to_le_bytes());
    lp.extend_from_slice(&(els.len() as u16).to_le_bytes());
    lp.extend_from_slice(&body);
    lp.push(0xFF);
    lp
}

/// A ziplist (strings under 64 bytes; integers as immediates, int8 or int16).
fn ziplist(els: &[El]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for e in els {
        let start = body.len();
        tail = 10 + start;
        assert!(prev < 254);
        body.push(prev as u8);
        match *e {
            El::S(s) => {
                assert!(s.len() < 64);
                body.push(s.len() as u8);
                body.extend_from_slice(s.as_bytes());
            }
            El::I(v) if (0..=12).contains(&v) => body.push(0xF1 + v as u8),
            El::I(v) if (-128..128).contains(&v) => {
                body.push(0xFE);
                body.push(v as i8 as u8);
            }
            El::I(v) => {
                body.push(0xC0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        prev = body.len() - start;
    }
    let total = 10 + body.len() + 1;
    let mut zl = Vec::with_capacity(total);
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(els.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xFF);
    zl
}

/// An intset of 16-bit members (given sorted).
fn intset16(v: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn raw_id(ms: u64, seq: u64) -> Vec<u8> {
    let mut id = ms.to_be_bytes().to_vec();
    id.extend_from_slice(&seq.to_be_bytes());
    id
}

/// A stream of two entries (`5-1 f=v1`, `5-2 f=v2 g=w`) in one node with master id 5-1,
/// a group `grp` at 5-1 with `5-1` pending for consumer `alice` (delivered twice at
/// `AT_MS`) and an idle consumer `bob`. `t` is 15 (6.x), 19 (7.0) or 21 (7.2+).
fn stream(r: &mut Rdb, t: u8) {
    let lp = listpack(&[
        // master entry: count, deleted, 1 master field "f", terminator
        El::I(2),
        El::I(0),
        El::I(1),
        El::S("f"),
        El::I(0),
        // 5-1: same fields as the master
        El::I(2),
        El::I(0),
        El::I(0),
        El::S("v1"),
        El::I(4),
        // 5-2: its own fields
        El::I(0),
        El::I(0),
        El::I(1),
        El::I(2),
        El::S("f"),
        El::S("v2"),
        El::S("g"),
        El::S("w"),
        El::I(8),
    ]);
    r.len(1).string(&raw_id(5, 1)).string(&lp);
    r.len(2).len(5).len(2); // length, last id
    if t != 15 {
        r.len(5).len(1).len(0).len(0).len(2); // first id, max deleted id, entries added
    }
    r.len(1).string(b"grp").len(5).len(1);
    if t != 15 {
        r.len(1); // entries read
    }
    r.len(1).raw(&raw_id(5, 1)).raw(&AT_MS.to_le_bytes()).len(2);
    r.len(2);
    r.string(b"alice").raw(&1_700_000_000_000i64.to_le_bytes());
    if t == 21 {
        r.raw(&1_700_000_000_500i64.to_le_bytes());
    }
    r.len(1).raw(&raw_id(5, 1));
    r.string(b"bob").raw(&1_700_000_000_000i64.to_le_bytes());
    if t == 21 {
        r.raw(&(-1i64).to_le_bytes());
    }
    r.len(0);
}

// ---- checking --------------------------------------------------------------------

fn text(r: &[u8]) -> String {
    String::from_utf8_lossy(r).into_owned()
}

/// Starts redcell on `bytes` as `dump.rdb`.
fn redcell_on_file(dir: &TempDir, bytes: &[u8]) -> Server {
    std::fs::write(dir.file("dump.rdb"), bytes).expect("write dump.rdb");
    let d = dir.path.to_str().expect("utf-8 dir");
    Server::start(2, &["--dir", d, "--save", ""])
}

/// Runs redcell on `bytes` where it must refuse to start: its exit status and stderr.
fn redcell_refuses(bytes: &[u8]) -> (Option<i32>, String) {
    let dir = TempDir::new("rdbv-refused");
    std::fs::write(dir.file("dump.rdb"), bytes).expect("write dump.rdb");
    common::redcell_refuses_in(&dir, &[])
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The elements of an array reply as strings (one level).
fn strings(reply: &[u8]) -> Vec<String> {
    let mut pos = 0;
    match common::parse(reply, &mut pos) {
        common::Node::Agg(_, Some(items)) => items
            .into_iter()
            .map(|n| match n {
                common::Node::Bulk(_, Some(b)) => text(&b),
                common::Node::Line(_, l) => text(&l),
                other => format!("{other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?} from {}", text(reply)),
    }
}

fn get(c: &mut Raw, args: &[&str]) -> Vec<String> {
    strings(&cmd(c, args))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The checks the three files share: `p` prefixes the keys.
fn check_common(c: &mut Raw, p: &str) {
    let k = |n: &str| format!("{p}{n}");
    assert_eq!(text(&cmd(c, &["GET", &k("str")])), "$5\r\nhello\r\n");
    assert_eq!(text(&cmd(c, &["GET", &k("int")])), "$3\r\n-42\r\n");
    assert_eq!(
        get(c, &["LRANGE", &k("list"), "0", "-1"]),
        s(&["a", "7", "b", "-300", "c"])
    );
    assert_eq!(
        sorted(get(c, &["SMEMBERS", &k("iset")])),
        sorted(s(&["-5", "3", "1000"]))
    );
    assert_eq!(
        get(c, &["ZRANGE", &k("zset"), "0", "-1", "WITHSCORES"]),
        s(&["x", "-2", "y", "1.1000000000000001", "z", "3"])
    );
    assert_eq!(
        get(c, &["HGETALL", &k("hash")]),
        s(&["f1", "v1", "f2", "12"])
    );
    assert_eq!(int_reply(&cmd(c, &["PEXPIRETIME", &k("str")])), AT_MS);
    assert_eq!(
        int_reply(&cmd(c, &["PEXPIRETIME", &k("hash")])),
        AT_S * 1000
    );
    assert_eq!(int_reply(&cmd(c, &["PEXPIRETIME", &k("list")])), -1);
    // The stream, its group, pending entry and consumers.
    let x = k("stream");
    assert_eq!(
        text(&cmd(c, &["XRANGE", &x, "-", "+"])),
        "*2\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nf\r\n$2\r\nv1\r\n*2\r\n$3\r\n5-2\r\n*4\r\n$1\r\nf\r\n$2\r\nv2\r\n$1\r\ng\r\n$1\r\nw\r\n"
    );
    assert_eq!(
        text(&cmd(c, &["XPENDING", &x, "grp", "-", "+", "10"]))
            .split("\r\n")
            .filter(|l| !l.starts_with(':'))
            .collect::<Vec<_>>(),
        ["*1", "*4", "$3", "5-1", "$5", "alice", ""]
    );
    let pending = text(&cmd(c, &["XPENDING", &x, "grp", "-", "+", "10"]));
    assert!(pending.ends_with(":2\r\n"), "delivery count: {pending}");
    let consumers = text(&cmd(c, &["XINFO", "CONSUMERS", &x, "grp"]));
    assert!(
        consumers.contains("alice") && consumers.contains("bob"),
        "{consumers}"
    );
    // The file's last id holds: a new entry must be above 5-2.
    assert_eq!(
        text(&c.call(&[b"XADD", x.as_bytes(), b"5-2", b"a", b"b"])),
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"
    );
}

/// What 7.2 (`version` 11) or 7.4 (12) writes for the keys `check_common` reads.
fn file_7x(version: u16) -> Vec<u8> {
    let mut r = Rdb::new(version);
    r.aux("ctime", b"1700000000").aux("aof-base", b"0");
    if version >= 12 {
        // 7.4 in cluster mode: a resize hint per slot.
        r.byte(0xF4).len(100).len(2).len(1);
    }
    r.select(0, 9, 2);
    r.expire_ms(AT_MS).key(0, "str").string(b"hello");
    r.key(0, "int").int8_string(-42);
    r.key(18, "list").len(1).len(2).string(&listpack(&[
        El::S("a"),
        El::I(7),
        El::S("b"),
        El::I(-300),
        El::S("c"),
    ]));
    r.key(11, "iset").string(&intset16(&[-5, 3, 1000]));
    // 7.2's SET_LISTPACK for a small set of strings.
    r.key(20, "lpset")
        .string(&listpack(&[El::S("m1"), El::S("m2"), El::I(3)]));
    // 7.2 writes scores in their shortest form ("1.1").
    r.key(17, "zset").string(&listpack(&[
        El::S("x"),
        El::I(-2),
        El::S("y"),
        El::S("1.1"),
        El::S("z"),
        El::I(3),
    ]));
    r.expire_ms(AT_S * 1000).key(16, "hash").string(&listpack(&[
        El::S("f1"),
        El::S("v1"),
        El::S("f2"),
        El::I(12),
    ]));
    r.key(21, "stream");
    stream(&mut r, 21);
    r.key(2, "bigset").len(2).string(b"p").string(b"q");
    r.finish()
}

#[test]
fn files_of_redis_7_2_and_7_4_load() {
    for version in [11u16, 12] {
        let dir = TempDir::new("rdbv-7x");
        let ours = redcell_on_file(&dir, &file_7x(version));
        let mut c = ours.raw();
        assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 9, "RDB {version}");
        check_common(&mut c, "");
        assert_eq!(
            sorted(get(&mut c, &["SMEMBERS", "lpset"])),
            s(&["3", "m1", "m2"])
        );
        assert_eq!(sorted(get(&mut c, &["SMEMBERS", "bigset"])), s(&["p", "q"]));
        // Saved again as 7.0 writes (version 10), which stock 7.0 loads.
        cmd(&mut c, &["SAVE"]);
        let saved = std::fs::read(dir.file("dump.rdb")).expect("dump.rdb");
        assert_eq!(&saved[..9], b"REDIS0010");
        drop(c);
        drop(ours);
        let stock = stock_on(&dir.path, &[]);
        let mut c = Raw::connect(stock.port);
        check_common(&mut c, "");
    }
}

#[test]
fn files_of_redis_6_with_ziplists_load() {
    let dir = TempDir::new("rdbv-6x");
    let mut r = Rdb::new(9);
    r.aux("ctime", b"1600000000");
    r.select(0, 9, 2);
    r.expire_ms(AT_MS).key(0, "str").string(b"hello");
    r.key(0, "int").int8_string(-42);
    // A quicklist of two ziplist nodes.
    r.key(14, "list")
        .len(2)
        .string(&ziplist(&[El::S("a"), El::I(7)]))
        .string(&ziplist(&[El::S("b"), El::I(-300), El::S("c")]));
    r.key(11, "iset").string(&intset16(&[-5, 3, 1000]));
    r.key(12, "zset").string(&ziplist(&[
        El::S("x"),
        El::I(-2),
        El::S("y"),
        El::S("1.1000000000000001"),
        El::S("z"),
        El::I(3),
    ]));
    // The old seconds-resolution expire opcode.
    r.expire_s(AT_S).key(13, "hash").string(&ziplist(&[
        El::S("f1"),
        El::S("v1"),
        El::S("f2"),
        El::I(12),
    ]));
    r.key(15, "stream");
    stream(&mut r, 15);
    // Redis 3.0's LIST_ZIPLIST and a plain ZSET_2 (binary scores).
    r.key(10, "oldlist")
        .string(&ziplist(&[El::S("p"), El::I(1000), El::I(12)]));
    r.key(5, "bigz")
        .len(2)
        .string(b"hi")
        .raw(&2.5f64.to_le_bytes())
        .string(b"lo")
        .raw(&(-1.0f64).to_le_bytes());
    let bytes = r.finish();
    let ours = redcell_on_file(&dir, &bytes);
    let mut c = ours.raw();
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 9);
    check_common(&mut c, "");
    assert_eq!(
        get(&mut c, &["LRANGE", "oldlist", "0", "-1"]),
        s(&["p", "1000", "12"])
    );
    assert_eq!(
        get(&mut c, &["ZRANGE", "bigz", "0", "-1", "WITHSCORES"]),
        s(&["lo", "-1", "hi", "2.5"])
    );
    // A 6.x stream gets what 7.0 derives: every entry counted as added.
    let info = text(&cmd(&mut c, &["XINFO", "STREAM", "stream"]));
    assert!(info.contains("entries-added\r\n:2\r\n"), "{info}");
    // Stock 7.0 reads the same file to the same values.
    drop(c);
    drop(ours);
    std::fs::write(dir.file("dump.rdb"), &bytes).expect("write");
    let stock = stock_on(&dir.path, &[]);
    check_common(&mut Raw::connect(stock.port), "");
}

#[test]
fn hash_field_expiry_types_of_7_4_are_refused_in_redis_words() {
    for t in [24u8, 25] {
        let mut r = Rdb::new(12);
        r.select(0, 1, 0);
        r.key(t, "h").raw(&0i64.to_le_bytes());
        r.string(&listpack(&[El::S("f"), El::S("v"), El::I(0)]));
        let (code, log) = redcell_refuses(&r.finish());
        assert_eq!(code, Some(1), "{log}");
        assert!(
            log.contains("Fatal error loading the DB (dump.rdb)")
                && log.contains(&format!("Unknown RDB encoding type {t}")),
            "type {t}: {log}"
        );
    }
}

#[test]
fn a_duplicated_key_stops_the_start_up_as_in_redis() {
    // `dup` twice in db 3, another key between them: stock 7.0 panics on the second.
    let mut r = Rdb::new(10);
    r.select(0, 1, 0).key(0, "k").string(b"v");
    r.select(3, 3, 0);
    r.key(0, "dup").string(b"first");
    r.key(0, "other").string(b"x");
    r.key(0, "dup").string(b"second");
    let bytes = r.finish();
    let (code, log) = redcell_refuses(&bytes);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("RDB has duplicated key 'dup' in DB 3"),
        "{log}"
    );
    assert!(
        log.contains("Fatal error loading the DB (dump.rdb): Duplicated key found in RDB file"),
        "{log}"
    );
    let dir = TempDir::new("rdbv-dup-stock");
    std::fs::write(dir.file("dump.rdb"), &bytes).expect("write");
    let stock_log = stock_refuses(&dir.path, &[]);
    assert!(
        stock_log.contains("RDB has duplicated key 'dup' in DB 3")
            && stock_log.contains("Duplicated key found in RDB file"),
        "{stock_log}"
    );
    // Also across shards' batches: many keys, the duplicate far from the first.
    let mut r = Rdb::new(10);
    r.select(0, 3001, 0);
    for i in 0..3000 {
        r.key(0, &format!("key:{i}")).string(b"v");
    }
    r.key(0, "key:17").string(b"again");
    let (code, log) = redcell_refuses(&r.finish());
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("RDB has duplicated key 'key:17' in DB 0"),
        "{log}"
    );
    // The same file without the duplicate loads.
    let dir = TempDir::new("rdbv-nodup");
    let mut r = Rdb::new(10);
    r.select(0, 3000, 0);
    for i in 0..3000 {
        r.key(0, &format!("key:{i}")).string(b"v");
    }
    let ours = redcell_on_file(&dir, &r.finish());
    assert_eq!(int_reply(&cmd(&mut ours.raw(), &["DBSIZE"])), 3000);
}

#[test]
fn a_duplicated_key_in_an_aof_rdb_base_stops_the_start_up() {
    let dir = TempDir::new("rdbv-dup-aof");
    let mut r = Rdb::new(10);
    r.aux("aof-base", b"1");
    r.select(0, 2, 0);
    r.key(0, "dup").string(b"first");
    r.key(0, "dup").string(b"second");
    let aof_dir = dir.path.join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).expect("mkdir");
    std::fs::write(aof_dir.join("appendonly.aof.1.base.rdb"), r.finish()).expect("base");
    std::fs::write(aof_dir.join("appendonly.aof.1.incr.aof"), b"").expect("incr");
    std::fs::write(
        aof_dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .expect("manifest");
    let (code, log) = common::redcell_refuses_in(&dir, &["--appendonly", "yes"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("RDB has duplicated key 'dup' in DB 0"),
        "{log}"
    );
    assert!(
        log.contains("(appendonlydir/appendonly.aof.1.base.rdb): Duplicated key found in RDB file"),
        "{log}"
    );
    let stock_log = stock_refuses(&dir.path, &["--appendonly", "yes"]);
    assert!(
        stock_log.contains("RDB has duplicated key 'dup' in DB 0"),
        "{stock_log}"
    );
}

/// DEBUG RELOAD: a key already there stops the load without MERGE (Redis panics), and
/// MERGE replaces it.
#[test]
fn debug_reload_noflush_needs_merge_for_keys_already_there() {
    let dir = TempDir::new("rdbv-reload");
    let d = dir.path.to_str().expect("utf-8 dir");
    let ours = Server::start(
        2,
        &["--dir", d, "--save", "", "--enable-debug-command", "yes"],
    );
    let mut c = ours.raw();
    cmd(&mut c, &["SET", "k", "saved"]);
    cmd(&mut c, &["SAVE"]);
    cmd(&mut c, &["SET", "k", "newer"]);
    assert_eq!(
        text(&cmd(
            &mut c,
            &["DEBUG", "RELOAD", "NOSAVE", "NOFLUSH", "MERGE"]
        )),
        "+OK\r\n"
    );
    assert_eq!(text(&cmd(&mut c, &["GET", "k"])), "$5\r\nsaved\r\n");
    let refused = text(&c.call(&[b"DEBUG", b"RELOAD", b"NOSAVE", b"NOFLUSH"]));
    assert_eq!(refused, "-ERR Error trying to load the RDB dump\r\n");
    assert!(ours.stderr().contains("RDB has duplicated key 'k' in DB 0"));
}
