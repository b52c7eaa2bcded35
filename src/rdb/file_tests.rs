//! Whole-file tests: Redis 7.0's verified file bytes, write → read round trips, and corrupt,
//! truncated and unsupported files.

use super::file_reader::*;
use super::file_writer::*;
use super::*;
use crate::types::stream::{Group, Stream, StreamId, StreamLimits};
use crate::types::zset::AddFlags;

fn s(v: &[u8]) -> Value {
    Value::Str(StrValue::from_bytes(v))
}

/// One value of each type and encoding, small and large.
fn sample_values() -> Vec<(Vec<u8>, Value)> {
    let lim = Limits::default();
    let mut out = vec![
        (b"int".to_vec(), s(b"12345")),
        (b"embstr".to_vec(), s(b"hello")),
        (b"raw".to_vec(), s(&b"compressible ".repeat(2000))),
        (b"bin".to_vec(), s(&(0..=255u8).collect::<Vec<_>>())),
        (b"".to_vec(), s(b"")),
    ];
    let mut l = List::new();
    for i in 0..300 {
        l.push(End::Tail, format!("item-{i}").as_bytes(), lim.list_fill);
    }
    out.push((b"list".to_vec(), Value::List(l)));
    for (name, n, prefix) in [("intset", 10, ""), ("set", 5, "m"), ("bigset", 600, "m")] {
        let mut st = Set::new();
        for i in 0..n {
            st.add(format!("{prefix}{i}").as_bytes(), lim.set);
        }
        out.push((name.as_bytes().to_vec(), Value::Set(st)));
    }
    for (name, n) in [("zset", 5), ("bigzset", 200)] {
        let mut z = ZSet::new();
        for i in 0..n {
            z.add(
                format!("m{i}").as_bytes(),
                i as f64 * 1.5 - 7.0,
                AddFlags::default(),
                lim.zset,
            );
        }
        out.push((name.as_bytes().to_vec(), Value::ZSet(z)));
    }
    for (name, n) in [("hash", 5), ("bighash", 200)] {
        let mut h = Hash::new();
        for i in 0..n {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                lim.hash,
            );
        }
        out.push((name.as_bytes().to_vec(), Value::Hash(h)));
    }
    let mut st = Stream::new();
    for i in 1..=150u64 {
        let pairs: [&[u8]; 4] = [b"f", b"v", b"n", b"1"];
        st.append(
            StreamId::new(i, 0),
            pairs.into_iter(),
            StreamLimits::default(),
        );
    }
    let mut g = Group::new(StreamId::new(100, 0), 100);
    g.create_consumer(b"idle", 5);
    g.create_consumer(b"c", 5);
    g.deliver(StreamId::new(3, 0), b"c", 6);
    st.groups.insert(b"g".to_vec().into(), g);
    out.push((b"stream".to_vec(), Value::Stream(Box::new(st))));
    out
}

/// A file with functions, three databases, expires and eviction opcodes.
fn sample_file(opts: RdbWriteOptions) -> Vec<u8> {
    let mut w = RdbFileWriter::new(Vec::new(), opts).unwrap();
    let mut aux = AuxFields::new(1_700_000_000, 3_000_000_000);
    aux.repl = Some(ReplAux {
        stream_db: 0,
        repl_id: "0123456789abcdef0123456789abcdef01234567",
        offset: 12345,
    });
    w.write_aux_fields(&aux).unwrap();
    w.write_function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)")
        .unwrap();
    let values = sample_values();
    for db in [0u64, 3, 15] {
        w.write_db_header(db, values.len() as u64, 2).unwrap();
        for (i, (k, v)) in values.iter().enumerate() {
            let expire = match i {
                1 => Some(1_893_456_000_000),
                2 => Some(1), // long expired: still written and read back
                _ => None,
            };
            let evict = match (db, i % 3) {
                (3, 0) => Eviction::LruIdle(i as u64 * 1000),
                (15, 0) => Eviction::LfuFreq(i as u8),
                _ => Eviction::None,
            };
            if i % 2 == 0 {
                w.write_entry(k, v, expire, evict).unwrap();
            } else {
                let mut e = w.entry_encoder();
                file_writer::encode_entry(&mut e, k, v, expire, evict);
                w.write_encoded(&e.buf).unwrap();
            }
        }
    }
    w.finish().unwrap()
}

fn read_all(bytes: &[u8]) -> Result<(Vec<RdbEvent>, RdbSummary), RdbLoadError> {
    let mut events = Vec::new();
    let mut sink = |e: RdbEvent| {
        events.push(e);
        Ok(())
    };
    let summary = read_rdb(bytes, &RdbReadOptions::default(), &mut sink)?;
    Ok((events, summary))
}

#[test]
fn writes_the_verified_7_0_dump_rdb() {
    // rdb-dump.md §3.5: SET foo bar, SET tk v PXAT 1893456000000, SELECT 2, SET n 7, SAVE.
    let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
    w.write_aux_fields(&AuxFields::new(0x6b02_5a6e, 0x0011_b9e8))
        .unwrap();
    w.write_db_header(0, 2, 1).unwrap();
    w.write_entry(b"foo", &s(b"bar"), None, Eviction::None)
        .unwrap();
    w.write_entry(b"tk", &s(b"v"), Some(1_893_456_000_000), Eviction::None)
        .unwrap();
    w.write_db_header(2, 1, 0).unwrap();
    w.write_entry(b"n", &s(b"7"), None, Eviction::None).unwrap();
    let out = w.finish().unwrap();
    let want = [
        &b"REDIS0010"[..],
        b"\xfa\x09redis-ver\x067.0.15",
        b"\xfa\x0aredis-bits\xc0\x40",
        b"\xfa\x05ctime\xc2\x6e\x5a\x02\x6b",
        b"\xfa\x08used-mem\xc2\xe8\xb9\x11\x00",
        b"\xfa\x08aof-base\xc0\x00",
        b"\xfe\x00\xfb\x02\x01",
        b"\x00\x03foo\x03bar",
        b"\xfc\x00\xb4\xc5\xda\xb8\x01\x00\x00\x00\x02tk\x01v",
        b"\xfe\x02\xfb\x01\x00\x00\x01n\xc0\x07",
        b"\xff\x2f\x88\x08\x77\xde\x57\x1a\x9b",
    ]
    .concat();
    assert_eq!(out, want);

    let (events, summary) = read_all(&out).unwrap();
    assert_eq!(summary.checksum, ChecksumCheck::Verified);
    assert_eq!(summary.version, 10);
    assert_eq!(summary.bytes, out.len() as u64);
    let entries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RdbEvent::Entry(e) => Some((e.db, e.key.clone(), e.expire_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        entries,
        [
            (0, b"foo".to_vec(), None),
            (0, b"tk".to_vec(), Some(1_893_456_000_000)),
            (2, b"n".to_vec(), None)
        ]
    );
}

#[test]
fn writes_the_verified_empty_aof_base() {
    // aof.md §5: the 89-byte base of an empty dataset.
    let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
    let mut aux = AuxFields::new(0x6b11_7070, 0x000d_5ff0);
    aux.aof_base = true;
    w.write_aux_fields(&aux).unwrap();
    let out = w.finish().unwrap();
    assert_eq!(
        out,
        hex(
            "5245 4449 5330 3031 30fa 0972 6564 6973 2d76 6572 0637 2e30 2e31 35fa 0a72 6564
             6973 2d62 6974 73c0 40fa 0563 7469 6d65 c270 7011 6bfa 0875 7365 642d 6d65 6dc2
             f05f 0d00 fa08 616f 662d 6261 7365 c001 ff8b 57b6 6b2b 91b8 0d"
        )
    );
}

#[test]
fn round_trips_every_type_with_both_settings() {
    let values = sample_values();
    for compression in [true, false] {
        for checksum in [true, false] {
            let bytes = sample_file(RdbWriteOptions {
                compression,
                checksum,
            });
            if !checksum {
                assert_eq!(&bytes[bytes.len() - 8..], &[0; 8]);
            }
            let (events, summary) = read_all(&bytes).unwrap();
            assert_eq!(
                summary.checksum,
                if checksum {
                    ChecksumCheck::Verified
                } else {
                    ChecksumCheck::Disabled
                }
            );
            assert_eq!(summary.keys, 3 * values.len() as u64);
            let mut it = events.into_iter();
            let aux: Vec<(Vec<u8>, Vec<u8>)> = it
                .by_ref()
                .take(8)
                .map(|e| match e {
                    RdbEvent::Aux { key, value } => (key, value),
                    other => panic!("{other:?}"),
                })
                .collect();
            let keys: Vec<&[u8]> = aux.iter().map(|(k, _)| &k[..]).collect();
            assert_eq!(
                keys,
                [
                    &b"redis-ver"[..],
                    b"redis-bits",
                    b"ctime",
                    b"used-mem",
                    b"repl-stream-db",
                    b"repl-id",
                    b"repl-offset",
                    b"aof-base"
                ]
            );
            assert_eq!(aux[3].1, b"3000000000");
            assert!(
                matches!(it.next(), Some(RdbEvent::Function { code }) if code.starts_with(b"#!lua name=lib\n"))
            );
            for db in [0u64, 3, 15] {
                assert!(matches!(it.next(), Some(RdbEvent::SelectDb { db: d }) if d == db));
                assert!(matches!(
                    it.next(),
                    Some(RdbEvent::ResizeDb { db_size, expires_size: 2 }) if db_size == values.len() as u64
                ));
                for (i, (k, v)) in values.iter().enumerate() {
                    let Some(RdbEvent::Entry(e)) = it.next() else {
                        panic!("entry {i} of db {db} missing")
                    };
                    assert_eq!((e.db, &e.key), (db, k));
                    assert_eq!(dump_payload(&e.value), dump_payload(v), "{k:?}");
                    assert_eq!(e.value.encoding(), v.encoding(), "{k:?}");
                    let want_expire = [None, Some(1_893_456_000_000), Some(1)];
                    assert_eq!(e.expire_ms, *want_expire.get(i).unwrap_or(&None));
                    let (idle, freq) = match (db, i % 3) {
                        (3, 0) => (Some(i as u64 * 1000), None),
                        (15, 0) => (None, Some(i as u8)),
                        _ => (None, None),
                    };
                    assert_eq!((e.lru_idle, e.lfu_freq), (idle, freq));
                }
            }
            assert!(it.next().is_none());
        }
    }
}

#[test]
fn compression_setting_changes_the_bytes() {
    let on = sample_file(RdbWriteOptions::default());
    let off = sample_file(RdbWriteOptions {
        compression: false,
        checksum: true,
    });
    assert!(
        on.len() + 20_000 < off.len(),
        "{} vs {}",
        on.len(),
        off.len()
    );
}

#[test]
fn every_truncation_is_a_short_read() {
    let bytes = sample_file(RdbWriteOptions::default());
    // Every cut of the small head and tail, and a stride through the middle.
    let cuts = (0..500)
        .chain((500..bytes.len() - 500).step_by(97))
        .chain(bytes.len() - 500..bytes.len());
    for cut in cuts {
        match read_all(&bytes[..cut]) {
            Err(RdbLoadError::UnexpectedEof { offset }) => assert_eq!(offset, cut as u64),
            other => panic!("cut at {cut}: {:?}", other.map(|(_, s)| s)),
        }
    }
    let e = read_all(&bytes[..100]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Short read or OOM loading DB. Unrecoverable error, aborting now."
    );
}

#[test]
fn every_truncation_of_a_small_file() {
    let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
    w.write_aux_fields(&AuxFields::new(1, 2)).unwrap();
    w.write_db_header(0, 3, 1).unwrap();
    for (k, v) in sample_values()
        .into_iter()
        .filter(|(k, _)| !k.starts_with(b"big"))
    {
        if k != b"raw" {
            w.write_entry(&k, &v, Some(5), Eviction::LfuFreq(3))
                .unwrap();
        }
    }
    let bytes = w.finish().unwrap();
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                read_all(&bytes[..cut]),
                Err(RdbLoadError::UnexpectedEof { .. })
            ),
            "cut at {cut}"
        );
    }
    assert!(read_all(&bytes).is_ok());
}

#[test]
fn flipped_bytes_never_load_silently() {
    let mut w = RdbFileWriter::new(Vec::new(), RdbWriteOptions::default()).unwrap();
    w.write_aux_fields(&AuxFields::new(1, 2)).unwrap();
    w.write_db_header(0, 4, 0).unwrap();
    for (k, v) in sample_values() {
        if !k.starts_with(b"big") && k != b"list" && k != b"stream" {
            w.write_entry(&k, &v, None, Eviction::None).unwrap();
        }
    }
    let good = w.finish().unwrap();
    let mut checksum_errors = 0;
    // Bytes 5..9 are the version digits: C's atoi reads "001\xb0" as version 1, which has
    // no trailer and so no check, in Redis as here.
    for i in (0..5).chain(9..good.len()) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            match read_all(&bad) {
                Ok(_) => panic!("byte {i} ^ {flip:#x} loaded"),
                Err(RdbLoadError::Checksum { .. }) => checksum_errors += 1,
                Err(_) => {}
            }
        }
    }
    assert!(checksum_errors > good.len());
    // A flipped payload byte is caught by the checksum, worded as Redis logs it.
    let mut bad = good.clone();
    let at = good.windows(5).position(|w| w == b"hello").unwrap();
    bad[at] = b'j';
    let e = read_all(&bad).unwrap_err();
    assert!(matches!(e, RdbLoadError::Checksum { .. }));
    assert!(
        e.to_string().starts_with("Wrong RDB checksum expected: (")
            && e.to_string().ends_with(". Aborting now."),
        "{e}"
    );
    // With checksum verification off it loads (the value is simply different).
    let opts = RdbReadOptions {
        verify_checksum: false,
        ..Default::default()
    };
    let summary = read_rdb(&bad[..], &opts, &mut |_| Ok(())).unwrap();
    assert_eq!(summary.checksum, ChecksumCheck::Skipped);
}

/// A file of version `v` around `body` (bytes between the header and EOF), with a valid
/// trailer for versions 5 and later.
fn file(v: u16, body: &[u8]) -> Vec<u8> {
    let mut f = format!("REDIS{v:04}").into_bytes();
    f.extend_from_slice(body);
    f.push(0xff);
    if v >= 5 {
        let crc = crate::util::crc64::crc64(&f);
        f.extend_from_slice(&crc.to_le_bytes());
    }
    f
}

#[test]
fn absurd_lengths_are_short_reads() {
    // A key claiming 2^62 bytes, a set claiming 2^32-1 members, an LZF string claiming a
    // huge output: each ends in a short read or a format error, without allocating it.
    for body in [
        &b"\x00\x81\x40\x00\x00\x00\x00\x00\x00\x00abc"[..],
        b"\x02\x01k\x80\xff\xff\xff\xff\x01x",
        b"\x00\x01k\xc3\x02\x81\x40\x00\x00\x00\x00\x00\x00\x00\x00a",
        b"\xfa\x81\xff\xff\xff\xff\xff\xff\xff\xff",
    ] {
        let e = read_all(&file(10, body)).unwrap_err();
        assert!(
            matches!(
                e,
                RdbLoadError::UnexpectedEof { .. } | RdbLoadError::Corrupt { .. }
            ),
            "{e:?}"
        );
    }
}

#[test]
fn unknown_opcodes_types_and_modules() {
    let e = read_all(&file(10, b"\x2a\x01k\x01v")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Internal error in RDB reading offset 12 -> Unknown RDB encoding type 42"
    );
    // A version 10 file cannot hold 7.4's SLOT_INFO: it reads as an unknown type.
    let e = read_all(&file(10, b"\xf4\x01k")).unwrap_err();
    assert!(
        e.to_string().ends_with("Unknown RDB encoding type 244"),
        "{e}"
    );
    // Module data: refused with Redis's texts, naming the module type.
    let e = read_all(&file(10, b"\xf7\x80\x00\x00\x04\x00\x02\x01")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The RDB file contains AUX module data I can't load: no matching module 'AAAAAAAAB'"
    );
    let e = read_all(&file(10, b"\xf7\x01\x01\x01")).unwrap_err();
    assert!(e.to_string().ends_with("bad when_opcode"), "{e}");
    let e = read_all(&file(10, b"\x07\x01k\x05")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The RDB file contains module data I can't load: no matching module type 'AAAAAAAAA'"
    );
    // Bad length and string encodings, and a value the codec refuses.
    let e = read_all(&file(10, b"\x00\x01k\x82")).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("Unknown length encoding 2 in rdbLoadLen()"),
        "{e}"
    );
    let e = read_all(&file(10, b"\x00\x01k\xc7")).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("Unknown RDB string encoding type 7"),
        "{e}"
    );
    let e = read_all(&file(10, b"\x0b\x01k\x02\x00\x00")).unwrap_err();
    assert!(matches!(e, RdbLoadError::Corrupt { .. }), "{e:?}");
}

#[test]
fn headers_and_databases() {
    assert!(matches!(
        read_all(b"RUBIS0010\xff").unwrap_err(),
        RdbLoadError::WrongSignature
    ));
    assert_eq!(
        read_all(&file(0, b"")).unwrap_err().to_string(),
        "Can't handle RDB format version 0"
    );
    let strict = RdbReadOptions {
        max_version: RDB_VERSION,
        ..Default::default()
    };
    let e = read_rdb(&file(11, b"")[..], &strict, &mut |_| Ok(())).unwrap_err();
    assert_eq!(e.to_string(), "Can't handle RDB format version 11");
    // 7.4's SLOT_INFO in a version 12 file is a hint, skipped.
    let (events, _) = read_all(&file(12, b"\xfe\x00\xf4\x05\x01\x00\x00\x01k\x01v")).unwrap();
    assert_eq!(events.len(), 2);
    let e = read_all(&file(10, b"\xfe\x10")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "FATAL: Data file was created with a Redis server configured to handle more than 16 \
         databases. Exiting"
    );
}

#[test]
fn old_versions_and_legacy_opcodes() {
    // Version 4: no trailer, EXPIRETIME in seconds, a 7.0-rc function.
    let body = b"\xfd\x10\x00\x00\x00\x00\x01k\x01v\xf6\x01L\x03lua\x01\x01d\x04code";
    let bytes = file(4, body);
    let (events, summary) = read_all(&bytes).unwrap();
    assert_eq!(summary.checksum, ChecksumCheck::Absent);
    assert_eq!(summary.bytes, bytes.len() as u64);
    match &events[..] {
        [RdbEvent::Entry(e), RdbEvent::Function { code }] => {
            assert_eq!(e.expire_ms, Some(16_000));
            assert_eq!(code, b"#!lua name=L\ncode");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_aggregates_are_skipped_as_redis_does() {
    // A quicklist with no nodes and a zero-member set, between two good keys.
    let (events, summary) = read_all(&file(
        10,
        b"\x00\x01a\x01v\x12\x01l\x00\x02\x01s\x00\x00\x01b\x01v",
    ))
    .unwrap();
    assert_eq!(summary.empty_keys_skipped, 2);
    assert_eq!(summary.keys, 2);
    assert_eq!(events.len(), 2);
}

#[test]
fn stops_right_after_the_trailer() {
    let mut bytes = file(10, b"\x00\x01k\x01v");
    bytes.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let mut r: &[u8] = &bytes;
    read_rdb(&mut r, &RdbReadOptions::default(), &mut |_| Ok(())).unwrap();
    assert_eq!(r, b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn sink_errors_stop_loading() {
    let bytes = file(10, b"\x00\x01k\x01v\x00\x01k\x01v");
    let mut seen = hashbrown::HashSet::new();
    let e = read_rdb(
        &bytes[..],
        &RdbReadOptions::default(),
        &mut |e: RdbEvent| {
            if let RdbEvent::Entry(e) = e {
                if !seen.insert(e.key.clone()) {
                    return Err(RdbLoadError::Sink(
                        "Duplicated key found in RDB file".into(),
                    ));
                }
            }
            Ok(())
        },
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "Duplicated key found in RDB file");
}

#[test]
fn random_damage_never_panics() {
    // Checksums off, so damaged values reach the object codec instead of failing at the end.
    let good = sample_file(RdbWriteOptions {
        compression: true,
        checksum: false,
    });
    let opts = RdbReadOptions {
        verify_checksum: false,
        ..Default::default()
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1500 {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 6 {
            let at = 9 + (next() as usize) % (bad.len() - 9);
            bad[at] = next() as u8;
        }
        if next() % 4 == 0 {
            bad.truncate(9 + (next() as usize) % (bad.len() - 9));
        }
        // Any verdict will do; a panic or a runaway allocation would fail the test.
        let _ = read_rdb(&bad[..], &opts, &mut |_| Ok(()));
    }
}
