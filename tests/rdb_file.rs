//! Whole RDB files against stock Redis 7.0: files stock saves are read key by key and
//! checked against its DUMP and PEXPIRETIME, files we write are loaded by stock and give
//! back the same keys, and stock refuses the corrupt files we refuse, in the same words.

mod common;
mod persist_common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Raw, TempDir};
use persist_common::*;
use redcell::rdb::file_reader::{
    read_rdb_file, ChecksumCheck, RdbEvent, RdbLoadError, RdbReadOptions, RdbSummary,
};
use redcell::rdb::file_writer::{AuxFields, Eviction, RdbFileWriter, RdbWriteOptions};
use redcell::rdb::object_type;
use redcell::types::Value;

const LIBRARY: &str =
    "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)";

/// A parsed key: value, expire (ms), LRU idle (s), LFU counter.
type ParsedKey = (Value, Option<i64>, Option<u64>, Option<u8>);

/// A parsed file: aux fields, function code, keys with values and expires.
#[derive(Default)]
struct Parsed {
    aux: Vec<(String, Vec<u8>)>,
    functions: Vec<Vec<u8>>,
    resize: BTreeMap<u64, (u64, u64)>,
    keys: BTreeMap<(u64, Vec<u8>), ParsedKey>,
    summary: Option<RdbSummary>,
}

fn read(path: &Path) -> Result<Parsed, RdbLoadError> {
    let mut p = Parsed::default();
    let mut db = 0;
    let summary = read_rdb_file(path, &RdbReadOptions::default(), &mut |e: RdbEvent| {
        match e {
            RdbEvent::Aux { key, value } => p
                .aux
                .push((String::from_utf8_lossy(&key).into_owned(), value)),
            RdbEvent::Function { code } => p.functions.push(code),
            RdbEvent::SelectDb { db: d } => db = d,
            RdbEvent::ResizeDb {
                db_size,
                expires_size,
            } => {
                p.resize.insert(db, (db_size, expires_size));
            }
            RdbEvent::Entry(e) => {
                assert_eq!(e.db, db);
                let v = (e.value, e.expire_ms, e.lru_idle, e.lfu_freq);
                assert!(p.keys.insert((e.db, e.key), v).is_none(), "duplicate key");
            }
        }
        Ok(())
    })?;
    p.summary = Some(summary);
    Ok(p)
}

/// Checks a parsed file against stock's view of the same data.
fn check_against(parsed: &Parsed, stock: &BTreeMap<(u64, Vec<u8>), StockKey>, compress: bool) {
    assert_eq!(
        parsed.keys.keys().collect::<Vec<_>>(),
        stock.keys().collect::<Vec<_>>()
    );
    for ((db, key), (value, expire, _, _)) in &parsed.keys {
        let want = &stock[&(*db, key.clone())];
        assert!(
            comparable(value, compress) == comparable_dump(&want.dump, compress),
            "db {db} key {}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(expire.unwrap_or(-1), want.pexpiretime, "TTL of {key:?}");
    }
}

/// Writes `parsed`'s functions and keys with our writer, one database after the other.
fn write_file(
    path: &Path,
    parsed: &Parsed,
    opts: RdbWriteOptions,
    evict: impl Fn(u64) -> Eviction,
) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("create file"));
    let mut w = RdbFileWriter::new(f, opts).expect("header");
    w.write_aux_fields(&AuxFields::new(1_800_000_000, 1 << 20))
        .expect("aux");
    for code in &parsed.functions {
        w.write_function(code).expect("function");
    }
    for db in 0..DATABASES {
        let keys: Vec<_> = parsed.keys.range((db, vec![])..(db + 1, vec![])).collect();
        if keys.is_empty() {
            continue;
        }
        let expires = keys.iter().filter(|(_, v)| v.1.is_some()).count();
        w.write_db_header(db, keys.len() as u64, expires as u64)
            .expect("db header");
        for (i, ((_, key), (value, expire, _, _))) in keys.into_iter().enumerate() {
            w.write_entry(key, value, *expire, evict(i as u64))
                .expect("entry");
        }
    }
    let mut f = w.finish().expect("finish");
    std::io::Write::flush(&mut f).expect("flush");
}

#[test]
fn reads_what_stock_saves_and_stock_loads_what_we_write() {
    let dir = TempDir::new("rdb-stock");
    let stock = stock_on(&dir.path, &[]);
    let mut c = Raw::connect(stock.port);
    cmd(&mut c, &["FUNCTION", "LOAD", LIBRARY]);
    for db in 0..DATABASES {
        fill(&mut c, db);
    }
    cmd(&mut c, &["SAVE"]);
    let want = snapshot(&mut c);
    let file = dir.file("dump.rdb");
    let parsed = read(&file).unwrap_or_else(|e| panic!("reading stock's file: {e}"));

    // The header as 7.0 writes it, with everything checked.
    let summary = parsed.summary.expect("summary");
    assert_eq!(summary.version, 10);
    assert_eq!(summary.checksum, ChecksumCheck::Verified);
    assert_eq!(summary.bytes, std::fs::metadata(&file).expect("stat").len());
    let aux: Vec<&str> = parsed.aux.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        aux,
        ["redis-ver", "redis-bits", "ctime", "used-mem", "aof-base"]
    );
    assert_eq!(parsed.aux[0].1, b"7.0.15");
    assert_eq!(parsed.aux[1].1, b"64");
    assert_eq!(parsed.aux[4].1, b"0");
    assert_eq!(parsed.functions, [LIBRARY.as_bytes()]);
    for db in 0..DATABASES {
        let n = want.keys().filter(|(d, _)| *d == db).count() as u64;
        let e = want
            .iter()
            .filter(|((d, _), k)| *d == db && k.pexpiretime >= 0)
            .count() as u64;
        assert_eq!(parsed.resize[&db], (n, e), "RESIZEDB of db {db}");
    }
    // 16 keys in every database, 12 more in databases 0, 7 and 14.
    assert_eq!(want.len(), 16 * 16 + 3 * 12);
    check_against(&parsed, &want, true);
    let mut seen: Vec<u8> = parsed.keys.values().map(|v| object_type(&v.0)).collect();
    seen.sort();
    seen.dedup();
    // Every type byte 7.0 writes: string, set, hash, zset (skiplist), intset, listpack
    // hash and zset, quicklist, stream.
    assert_eq!(seen, [0, 2, 4, 5, 11, 16, 17, 18, 19]);
    drop(c);
    drop(stock);

    // Our files, in every setting, load in stock to the same keys and TTLs.
    for (compression, checksum) in [(true, true), (false, true), (true, false), (false, false)] {
        let out = TempDir::new("rdb-ours");
        let opts = RdbWriteOptions {
            compression,
            checksum,
        };
        write_file(&out.file("dump.rdb"), &parsed, opts, |_| Eviction::None);
        // Round trip through our own reader first.
        let again = read(&out.file("dump.rdb")).expect("reading our file");
        check_against(&again, &want, true);
        let ours = stock_on(&out.path, &[]);
        let mut c = Raw::connect(ours.port);
        let loaded = snapshot(&mut c);
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "compression {compression} checksum {checksum}"
        );
        assert_same_keyspace(&loaded, &want);
        let libs = cmd(&mut c, &["FUNCTION", "LIST"]);
        assert!(
            libs.windows(5).any(|w| w == b"mylib"),
            "function not loaded"
        );
    }
}

#[test]
fn stock_files_with_compression_and_checksum_off() {
    let dir = TempDir::new("rdb-plain");
    let stock = stock_on(
        &dir.path,
        &["--rdbcompression", "no", "--rdbchecksum", "no"],
    );
    let mut c = Raw::connect(stock.port);
    fill(&mut c, 0);
    cmd(&mut c, &["SAVE"]);
    let want = snapshot(&mut c);
    let parsed = read(&dir.file("dump.rdb")).expect("reading stock's file");
    assert_eq!(
        parsed.summary.expect("summary").checksum,
        ChecksumCheck::Disabled
    );
    check_against(&parsed, &want, false);
    let bytes = std::fs::read(dir.file("dump.rdb")).expect("read file");
    assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
    // 0xC3 (an LZF string) would only appear in a compressed file; the 27 KB string is
    // stored raw.
    assert!(bytes.windows(18).any(|w| w == b"compressible text "));
}

#[test]
fn eviction_opcodes_both_ways() {
    // Stock under an LFU policy writes FREQ, under an LRU policy IDLE, before each key.
    for (policy, lfu) in [("allkeys-lfu", true), ("allkeys-lru", false)] {
        let dir = TempDir::new("rdb-evict");
        let stock = stock_on(&dir.path, &["--maxmemory-policy", policy]);
        let mut c = Raw::connect(stock.port);
        cmd(&mut c, &["SET", "k", "v"]);
        for _ in 0..20 {
            cmd(&mut c, &["GET", "k"]);
        }
        let freq = lfu.then(|| int_reply(&cmd(&mut c, &["OBJECT", "FREQ", "k"])));
        cmd(&mut c, &["SAVE"]);
        let parsed = read(&dir.file("dump.rdb")).expect("read");
        let (_, _, idle, f) = &parsed.keys[&(0, b"k".to_vec())];
        if lfu {
            assert_eq!(f.map(i64::from), freq);
            assert_eq!(*idle, None);
        } else {
            assert_eq!((*idle, *f), (Some(0), None));
        }
        drop(stock);

        // Ours, loaded by stock under the same policy.
        let out = TempDir::new("rdb-evict-ours");
        let evict = |i: u64| {
            if lfu {
                Eviction::LfuFreq(40 + i as u8)
            } else {
                Eviction::LruIdle(5000 + i)
            }
        };
        write_file(
            &out.file("dump.rdb"),
            &parsed,
            RdbWriteOptions::default(),
            evict,
        );
        let ours = stock_on(&out.path, &["--maxmemory-policy", policy]);
        let mut c = Raw::connect(ours.port);
        if lfu {
            assert_eq!(int_reply(&cmd(&mut c, &["OBJECT", "FREQ", "k"])), 40);
        } else {
            let idle = int_reply(&cmd(&mut c, &["OBJECT", "IDLETIME", "k"]));
            assert!((5000..5010).contains(&idle), "idle {idle}");
        }
    }
}

#[test]
fn expired_keys_are_reported_and_stock_drops_them() {
    let out = TempDir::new("rdb-expired");
    let path = out.file("dump.rdb");
    let f = std::fs::File::create(&path).expect("create");
    let mut w = RdbFileWriter::new(f, RdbWriteOptions::default()).expect("header");
    w.write_aux_fields(&AuxFields::new(1, 1)).expect("aux");
    w.write_db_header(0, 2, 1).expect("db");
    let v = Value::Str(redcell::types::StrValue::from_bytes(b"v"));
    w.write_entry(b"gone", &v, Some(1000), Eviction::None)
        .expect("entry");
    w.write_entry(b"kept", &v, None, Eviction::None)
        .expect("entry");
    w.finish().expect("finish");
    let parsed = read(&path).expect("read");
    assert_eq!(parsed.keys[&(0, b"gone".to_vec())].1, Some(1000));
    let stock = stock_on(&out.path, &[]);
    let mut c = Raw::connect(stock.port);
    assert_eq!(int_reply(&cmd(&mut c, &["DBSIZE"])), 1);
    assert_eq!(int_reply(&cmd(&mut c, &["EXISTS", "kept"])), 1);
}

#[test]
fn stock_refuses_what_we_refuse_in_the_same_words() {
    let dir = TempDir::new("rdb-corrupt");
    let stock = stock_on(&dir.path, &[]);
    let mut c = Raw::connect(stock.port);
    fill(&mut c, 0);
    cmd(&mut c, &["SAVE"]);
    drop(stock);
    let good = std::fs::read(dir.file("dump.rdb")).expect("read");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", {
            let mut b = good.clone();
            let at = b
                .windows(11)
                .position(|w| w == b"hello world")
                .expect("value");
            b[at] ^= 0x20;
            b
        }),
        // Cut inside a plain string: where half the file falls depends on stock's random
        // key order, and inside a stream stock words the error differently.
        ("truncated", {
            let at = good
                .windows(11)
                .position(|w| w == b"hello world")
                .expect("value");
            good[..at + 5].to_vec()
        }),
        ("unknown type", {
            // The first key's type byte after RESIZEDB becomes 42.
            let mut b = good.clone();
            let at = b
                .windows(2)
                .position(|w| w == b"\xfe\x00")
                .expect("SELECTDB")
                + 2;
            assert_eq!(b[at], 0xfb);
            let mut p = at + 1;
            for _ in 0..2 {
                p += match b[p] >> 6 {
                    0 => 1,
                    1 => 2,
                    _ => panic!("long RESIZEDB"),
                };
            }
            b[p] = 42;
            b
        }),
        ("newer version", {
            let mut b = good.clone();
            b[..9].copy_from_slice(b"REDIS0011");
            b
        }),
    ];
    for (what, bytes) in cases {
        let case = TempDir::new("rdb-case");
        std::fs::write(case.file("dump.rdb"), &bytes).expect("write");
        let strict = RdbReadOptions {
            max_version: 10,
            ..Default::default()
        };
        let ours = read_rdb_file(&case.file("dump.rdb"), &strict, &mut |_| Ok(())).expect_err(what);
        let log = stock_refuses(&case.path, &[]);
        let text = ours.to_string();
        // Stock's line for a corrupt object adds the C source line: compare the reason.
        let needle = text.rsplit(" -> ").next().expect("text");
        assert!(
            log.contains(needle),
            "{what}: ours `{text}`, stock's log:\n{log}"
        );
        if let RdbLoadError::Checksum { .. } = ours {
            assert!(log.contains(&text), "{what}: `{text}` not in\n{log}");
        }
    }
}
