//! HyperLogLog against stock Redis 7.0: after the same commands the values (GET) are the same
//! bytes and every reply matches, across shards, for values moved between the two servers,
//! and for foreign or corrupt strings.

mod common;

use common::{key_on_shard, pair, show, Raw, Rng, Server, StockRedis};

const SHARDS: usize = 3;

/// Sends `args` to both, asserts the replies are the same bytes, returns stock's reply.
fn same(a: &mut Raw, b: &mut Raw, args: &[&[u8]]) -> Vec<u8> {
    let (want, got) = (b.call(args), a.call(args));
    let shown: Vec<String> = args
        .iter()
        .take(4)
        .map(|x| String::from_utf8_lossy(&x[..x.len().min(40)]).into_owned())
        .collect();
    assert_eq!(
        show(&got),
        show(&want),
        "{shown:?} (+{} args)",
        args.len().saturating_sub(4)
    );
    want
}

/// The payload of a bulk reply.
fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply[0], b'$', "not a bulk: {}", show(reply));
    let nl = reply.iter().position(|&c| c == b'\n').unwrap();
    reply[nl + 1..reply.len() - 2].to_vec()
}

/// PFADDs `elements` in batches of `batch`, comparing each reply, then GET and PFCOUNT (which
/// rewrites the cached cardinality) and GET again.
fn feed_and_compare(a: &mut Raw, b: &mut Raw, key: &str, elements: &[Vec<u8>], batch: usize) {
    for chunk in elements.chunks(batch) {
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(chunk.iter().map(Vec::as_slice));
        same(a, b, &args);
        same(a, b, &[b"GET", key.as_bytes()]);
    }
    same(a, b, &[b"PFCOUNT", key.as_bytes()]);
    same(a, b, &[b"GET", key.as_bytes()]);
    same(a, b, &[b"PFDEBUG", b"ENCODING", key.as_bytes()]);
    same(a, b, &[b"STRLEN", key.as_bytes()]);
}

#[test]
fn pfadd_values_are_byte_identical_to_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let text = |n: usize, tag: &str| -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{tag}:{i}").into_bytes()).collect()
    };
    // Small (sparse throughout), medium (crosses hll-sparse-max-bytes), large (dense).
    feed_and_compare(&mut a, &mut b, "small", &text(7, "s"), 3);
    feed_and_compare(&mut a, &mut b, "medium", &text(3000, "m"), 50);
    feed_and_compare(&mut a, &mut b, "large", &text(100_000, "l"), 1000);
    // Random binary elements of every length, including empty and block-sized ones.
    let mut rng = Rng(0xB1_0B);
    let bin: Vec<Vec<u8>> = (0..20_000)
        .map(|_| {
            let len = rng.below(40) as usize;
            rng.bytes(len)
        })
        .collect();
    feed_and_compare(&mut a, &mut b, "binary", &bin, 200);
    // Re-adding known elements changes nothing, and the reply says so.
    feed_and_compare(&mut a, &mut b, "medium", &text(100, "m"), 100);
    // A lower sparse limit promotes sooner; the exact promotion point must agree.
    for c in [&mut a, &mut b] {
        c.call(&[b"CONFIG", b"SET", b"hll-sparse-max-bytes", b"200"]);
    }
    same(
        &mut a,
        &mut b,
        &[b"CONFIG", b"GET", b"hll-sparse-max-bytes"],
    );
    feed_and_compare(&mut a, &mut b, "lowlimit", &text(300, "x"), 1);
}

#[test]
fn values_move_between_redcell_and_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut rng = Rng(77);
    for (n, tag) in [(10usize, "few"), (400, "some"), (5000, "many")] {
        let elements: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(8)).collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", b"src"];
        args.extend(elements.iter().map(Vec::as_slice));
        // Stock builds a value; redcell receives its bytes and must read and extend it alike.
        b.call(&args);
        let stock_value = bulk_payload(&b.call(&[b"GET", b"src"]));
        a.call(&[b"SET", tag.as_bytes(), &stock_value]);
        b.call(&[b"SET", tag.as_bytes(), &stock_value]);
        same(&mut a, &mut b, &[b"PFCOUNT", tag.as_bytes()]);
        same(
            &mut a,
            &mut b,
            &[b"PFADD", tag.as_bytes(), b"one", b"two", b"three"],
        );
        same(&mut a, &mut b, &[b"PFCOUNT", tag.as_bytes()]);
        same(&mut a, &mut b, &[b"GET", tag.as_bytes()]);
        // And the other way round: a value redcell built, read by stock.
        let ours_value = bulk_payload(&a.call(&[b"GET", tag.as_bytes()]));
        b.call(&[b"SET", b"back", &ours_value]);
        a.call(&[b"SET", b"back", &ours_value]);
        same(&mut a, &mut b, &[b"PFADD", b"back", b"four"]);
        same(&mut a, &mut b, &[b"PFCOUNT", b"back"]);
        same(&mut a, &mut b, &[b"GET", b"back"]);
        b.call(&[b"DEL", b"src"]);
    }
    // A value SET with a valid cached count is trusted as is (Redis does not recompute).
    let mut v = bulk_payload(&a.call(&[b"GET", b"back"]));
    v[8..16].copy_from_slice(&12345u64.to_le_bytes());
    for c in [&mut a, &mut b] {
        c.call(&[b"SET", b"cached", &v]);
    }
    same(&mut a, &mut b, &[b"PFCOUNT", b"cached"]);
    same(&mut a, &mut b, &[b"OBJECT", b"ENCODING", b"cached"]);
}

#[test]
fn pfmerge_and_pfcount_across_shards() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        for c in [&mut a, &mut b] {
            c.call(&[b"FLUSHALL"]);
        }
        let k: Vec<String> = (0..SHARDS)
            .map(|s| key_on_shard("hll", s, SHARDS))
            .collect();
        let (k0, k1, k2) = (k[0].as_bytes(), k[1].as_bytes(), k[2].as_bytes());
        let dense: Vec<String> = (0..3000).map(|i| format!("d{i}")).collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", k0];
        args.extend(dense.iter().map(|s| s.as_bytes()));
        same(&mut a, &mut b, &args);
        same(
            &mut a,
            &mut b,
            &[b"PFADD", k1, b"a", b"b", b"c", b"d0", b"d1"],
        );
        same(&mut a, &mut b, &[b"PFCOUNT", k0, k1, k2]);
        same(&mut a, &mut b, &[b"PFCOUNT", k1, b"missing", k2]);
        // Sparse sources only: a new sparse destination on a third shard.
        same(&mut a, &mut b, &[b"PFADD", b"other", b"x", b"y"]);
        same(&mut a, &mut b, &[b"PFMERGE", k2, k1, b"other"]);
        same(&mut a, &mut b, &[b"GET", k2]);
        same(&mut a, &mut b, &[b"PFCOUNT", k2]);
        // A dense source makes the existing sparse destination dense; its TTL stays.
        same(&mut a, &mut b, &[b"EXPIRE", k1, b"1000"]);
        same(&mut a, &mut b, &[b"PFMERGE", k1, k0, k2]);
        same(&mut a, &mut b, &[b"GET", k1]);
        same(&mut a, &mut b, &[b"TTL", k1]);
        same(&mut a, &mut b, &[b"PFCOUNT", k0, k1, k2, b"other"]);
        // Only missing sources: an empty HLL is created.
        same(
            &mut a,
            &mut b,
            &[b"PFMERGE", b"fresh", b"missing1", b"missing2"],
        );
        same(&mut a, &mut b, &[b"GET", b"fresh"]);
        same(&mut a, &mut b, &[b"PFMERGE", b"fresh2"]);
        same(&mut a, &mut b, &[b"GET", b"fresh2"]);
        // Sparse sources whose union outgrows hll-sparse-max-bytes: the destination turns
        // dense part way through the register-by-register write, at the same register.
        for (key, tag) in [(k0, "u"), (k1, "v")] {
            same(&mut a, &mut b, &[b"DEL", key]);
            let elements: Vec<String> = (0..900).map(|i| format!("{tag}{i}")).collect();
            let mut args: Vec<&[u8]> = vec![b"PFADD", key];
            args.extend(elements.iter().map(|s| s.as_bytes()));
            same(&mut a, &mut b, &args);
            same(&mut a, &mut b, &[b"PFDEBUG", b"ENCODING", key]);
        }
        same(&mut a, &mut b, &[b"DEL", k2]);
        same(&mut a, &mut b, &[b"PFMERGE", k2, k0, k1]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"ENCODING", k2]);
        same(&mut a, &mut b, &[b"GET", k2]);
        same(&mut a, &mut b, &[b"PFCOUNT", k0, k1]);
        // Errors across shards: the first bad key in argument order decides.
        same(&mut a, &mut b, &[b"SET", b"plain", b"not an hll"]);
        same(&mut a, &mut b, &[b"SADD", b"aset", b"m"]);
        same(&mut a, &mut b, &[b"PFCOUNT", k0, b"plain", b"aset"]);
        same(&mut a, &mut b, &[b"PFCOUNT", k0, b"aset", b"plain"]);
        same(&mut a, &mut b, &[b"PFMERGE", k2, k0, b"aset"]);
        same(&mut a, &mut b, &[b"PFMERGE", b"plain", k0]);
        same(&mut a, &mut b, &[b"PFMERGE", b"nowhere", k1, b"plain"]);
        same(&mut a, &mut b, &[b"EXISTS", b"nowhere"]);
        same(&mut a, &mut b, &[b"GET", k2]);
    }
}

#[test]
fn foreign_and_corrupt_values_rejected_like_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    same(&mut a, &mut b, &[b"PFADD", b"tpl", b"a", b"b", b"c"]);
    let sparse = bulk_payload(&b.call(&[b"GET", b"tpl"]));
    let mut dense_src = sparse.clone();
    dense_src[4] = 0;
    let mut values: Vec<(&str, Vec<u8>)> = vec![
        ("short", b"HYLL".to_vec()),
        ("badmagic", [b"HYLX".as_slice(), &sparse[4..]].concat()),
        ("badenc", [b"HYLL\x02".as_slice(), &sparse[5..]].concat()),
        ("denseshort", dense_src),
        ("int", b"1234567".to_vec()),
        ("hdronly", sparse[..16].to_vec()),
        ("extrazero", [sparse.as_slice(), b"\x00"].concat()),
        ("extraval", [sparse.as_slice(), b"\x80"].concat()),
        ("cut", sparse[..sparse.len() - 1].to_vec()),
    ];
    // A corrupt stream whose cache is valid: PFCOUNT trusts the cache.
    let mut cached = [sparse.as_slice(), b"\x00"].concat();
    cached[15] = 0;
    values.push(("cachedcorrupt", cached));
    for (key, v) in &values {
        for c in [&mut a, &mut b] {
            c.call(&[b"SET", key.as_bytes(), v]);
        }
    }
    same(&mut a, &mut b, &[b"HSET", b"hash", b"f", b"v"]);
    let mut keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
    keys.extend(["hash", "missing"]);
    for k in &keys {
        let k = k.as_bytes();
        // Each command on a fresh copy, since some of them change the value.
        for cmd in [
            &[b"PFCOUNT".as_slice(), k][..],
            &[b"PFADD", k, b"z"],
            &[b"PFADD", k],
            &[b"PFCOUNT", k, b"tpl"],
            &[b"PFMERGE", b"dst", k],
            &[b"PFMERGE", k, b"tpl"],
            &[b"PFDEBUG", b"GETREG", k],
            &[b"PFDEBUG", b"DECODE", k],
            &[b"PFDEBUG", b"ENCODING", k],
            &[b"PFDEBUG", b"TODENSE", k],
            &[b"PFDEBUG", b"NOSUCH", k],
        ] {
            for c in [&mut a, &mut b] {
                c.call(&[b"DEL", b"dst"]);
                if let Some((_, v)) = values.iter().find(|(n, _)| n.as_bytes() == k) {
                    c.call(&[b"SET", k, v]);
                }
            }
            same(&mut a, &mut b, cmd);
            same(&mut a, &mut b, &[b"GET", k]);
            same(&mut a, &mut b, &[b"TYPE", k]);
        }
    }
    // Arity errors.
    same(&mut a, &mut b, &[b"PFADD"]);
    same(&mut a, &mut b, &[b"PFCOUNT"]);
    same(&mut a, &mut b, &[b"PFMERGE"]);
    same(&mut a, &mut b, &[b"PFDEBUG", b"GETREG"]);
    same(&mut a, &mut b, &[b"PFDEBUG", b"GETREG", b"tpl", b"x"]);
}

#[test]
fn pfdebug_command_info_and_selftest() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    for resp3 in [false, true] {
        let (mut a, mut b) = pair(&ours, &stock, resp3);
        same(&mut a, &mut b, &[b"DEL", b"h"]);
        same(
            &mut a,
            &mut b,
            &[b"PFADD", b"h", b"1", b"2", b"3", b"4", b"5", b"6", b"7"],
        );
        same(&mut a, &mut b, &[b"PFDEBUG", b"DECODE", b"h"]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"ENCODING", b"h"]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"GETREG", b"h"]);
        // GETREG converted it to dense.
        same(&mut a, &mut b, &[b"PFDEBUG", b"ENCODING", b"h"]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"DECODE", b"h"]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"TODENSE", b"h"]);
        same(&mut a, &mut b, &[b"PFADD", b"h2", b"x"]);
        same(&mut a, &mut b, &[b"PFDEBUG", b"todense", b"h2"]);
        same(&mut a, &mut b, &[b"GET", b"h2"]);
        same(&mut a, &mut b, &[b"PFCOUNT", b"h", b"h2"]);
    }
    // COMMAND INFO: name, arity, flags, key positions and ACL categories as stock. (Key specs
    // are derived from the flags for every command, so they are not compared here.)
    let (mut ca, mut cb) = (ours.conn(), stock.conn());
    for name in ["pfadd", "pfcount", "pfmerge", "pfdebug", "pfselftest"] {
        let info = |c: &mut redis::Connection| -> Vec<redis::Value> {
            let v: redis::Value = redis::cmd("COMMAND")
                .arg("INFO")
                .arg(name)
                .query(c)
                .unwrap();
            let redis::Value::Array(mut outer) = v else {
                panic!("not an array: {v:?}")
            };
            let redis::Value::Array(entry) = outer.remove(0) else {
                panic!("no entry for {name}")
            };
            entry.into_iter().take(7).collect()
        };
        assert_eq!(info(&mut ca), info(&mut cb), "COMMAND INFO {name}");
    }
    let mut a = ours.raw();
    assert_eq!(show(&a.call(&[b"PFSELFTEST"])), show(b"+OK\r\n"));
}

/// A random sparse opcode stream: canonical or not (ZERO runs where Redis would write XZERO,
/// unmerged equal VALs), covering exactly 16384 registers when `exact`, else anything.
fn random_sparse(rng: &mut Rng, exact: bool) -> Vec<u8> {
    let mut v = b"HYLL\x01\x00\x00\x00".to_vec();
    // Cached count: valid (some value) or stale.
    let card = if rng.below(2) == 0 {
        0x80u64 << 56
    } else {
        rng.below(1000)
    };
    v.extend_from_slice(&card.to_le_bytes());
    let mut left: i64 = 16384;
    let ops = 1 + rng.below(60);
    for i in 0..ops {
        let last = i + 1 == ops;
        match rng.below(3) {
            0 => {
                let len = 1 + rng.below(4);
                v.push(0x80 | ((rng.below(32) as u8) << 2) | (len as u8 - 1));
                left -= len as i64;
            }
            1 => {
                let len = 1 + rng.below(64);
                v.push(len as u8 - 1);
                left -= len as i64;
            }
            _ => {
                let len = 1 + rng.below(if last { 16384 } else { 600 });
                v.push(0x40 | ((len - 1) >> 8) as u8);
                v.push(((len - 1) & 0xff) as u8);
                left -= len as i64;
            }
        }
        if exact && left <= 0 {
            break;
        }
    }
    if exact {
        // Overshot: draw another stream. Short: pad with XZEROs to exactly 16384 registers.
        if left < 0 {
            return random_sparse(rng, exact);
        }
        while left > 0 {
            let len = left.min(16384);
            v.push(0x40 | ((len - 1) >> 8) as u8);
            v.push(((len - 1) & 0xff) as u8);
            left -= len;
        }
    }
    v
}

#[test]
fn random_sparse_streams_behave_like_stock() {
    let ours = Server::start(SHARDS, &[]);
    let stock = StockRedis::start(&[]);
    let (mut a, mut b) = pair(&ours, &stock, false);
    let mut rng = Rng(0x5A_A5E);
    same(&mut a, &mut b, &[b"PFADD", b"other", b"p", b"q", b"r"]);
    for round in 0..600 {
        let exact = rng.below(4) != 0;
        let v = random_sparse(&mut rng, exact);
        for c in [&mut a, &mut b] {
            c.call(&[b"SET", b"r", &v]);
            c.call(&[b"DEL", b"d"]);
        }
        let elements: Vec<Vec<u8>> = (0..1 + rng.below(20)).map(|_| rng.bytes(6)).collect();
        let mut pfadd: Vec<&[u8]> = vec![b"PFADD", b"r"];
        pfadd.extend(elements.iter().map(Vec::as_slice));
        let cmd: Vec<&[u8]> = match round % 8 {
            0..=2 => pfadd,
            3 => vec![b"PFCOUNT", b"r"],
            4 => vec![b"PFCOUNT", b"r", b"other"],
            5 => vec![b"PFMERGE", b"r", b"other"],
            6 => vec![b"PFMERGE", b"d", b"r"],
            _ => vec![b"PFDEBUG", b"DECODE", b"r"],
        };
        same(&mut a, &mut b, &cmd);
        same(&mut a, &mut b, &[b"GET", b"r"]);
        same(&mut a, &mut b, &[b"GET", b"d"]);
        same(&mut a, &mut b, &[b"PFCOUNT", b"r"]);
    }
}

/// PFMERGEs whose keys span every shard (each holding all three shards), racing each other
/// and PFADDs to the same keys: none deadlocks or fails, and no element added is lost.
#[test]
fn concurrent_cross_shard_merges() {
    let ours = Server::start(SHARDS, &[]);
    let k: Vec<String> = (0..SHARDS).map(|s| key_on_shard("cc", s, SHARDS)).collect();
    let workers: Vec<_> = (0..6usize)
        .map(|w| {
            let mut c = ours.raw();
            let k = k.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(w as u64 + 100);
                for i in 0..400 {
                    let key = k[rng.below(SHARDS as u64) as usize].as_bytes();
                    if w % 2 == 0 {
                        let e = format!("w{w}-{i}");
                        let r = c.call(&[b"PFADD", key, e.as_bytes()]);
                        assert!(r == b":1\r\n" || r == b":0\r\n", "{}", show(&r));
                    } else {
                        let (a, b) = (
                            k[(i + 1) % SHARDS].as_bytes(),
                            k[(i + 2) % SHARDS].as_bytes(),
                        );
                        let r = c.call(&[b"PFMERGE", key, a, b]);
                        assert_eq!(show(&r), show(b"+OK\r\n"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Every element added is in some key; one last merge into each key makes all equal to
    // the union, whose registers a fresh merge computes independently.
    let mut c = ours.raw();
    let all: Vec<&[u8]> = k.iter().map(|s| s.as_bytes()).collect();
    let mut merge: Vec<&[u8]> = vec![b"PFMERGE", b"union"];
    merge.extend(&all);
    c.call(&merge);
    let want = c.call(&[b"PFDEBUG", b"GETREG", b"union"]);
    for key in &all {
        let mut m: Vec<&[u8]> = vec![b"PFMERGE", key];
        m.extend(&all);
        assert_eq!(show(&c.call(&m)), show(b"+OK\r\n"));
        assert_eq!(c.call(&[b"PFDEBUG", b"GETREG", key]), want);
    }
    // 3 workers x 400 distinct elements.
    let count = c.call(&[b"PFCOUNT", b"union"]);
    let n: i64 = std::str::from_utf8(&count[1..count.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    assert!((1150..=1250).contains(&n), "PFCOUNT {n} for 1200 elements");
}
