//! Object-level tests: Redis 7.0's verified DUMP bytes, round trips, and corrupt payloads.

use super::*;
use crate::types::list::Fill;
use crate::types::set::SetLimits;
use crate::types::zset::AddFlags;

fn lim() -> Limits {
    Limits::default()
}

fn list_of(items: &[&[u8]]) -> Value {
    let mut l = List::new();
    for i in items {
        l.push(End::Tail, i, Fill::default());
    }
    Value::List(l)
}

fn set_of(items: &[&[u8]]) -> Value {
    let mut s = Set::new();
    for i in items {
        s.add(i, lim().set);
    }
    Value::Set(s)
}

fn zset_of(items: &[(&[u8], f64)]) -> Value {
    let mut z = ZSet::new();
    for (m, s) in items {
        z.add(m, *s, AddFlags::default(), lim().zset);
    }
    Value::ZSet(z)
}

fn hash_of(items: &[(&[u8], &[u8])]) -> Value {
    let mut h = Hash::new();
    for (f, v) in items {
        h.set(f, v, lim().hash);
    }
    Value::Hash(h)
}

#[test]
fn dumps_match_redis_7_0() {
    let cases: Vec<(Value, &str)> = vec![
        (
            Value::Str(StrValue::from_bytes(b"hello")),
            "00 05 68656c6c6f 0a00 6372df766534200a",
        ),
        (
            Value::Str(StrValue::from_bytes(b"12345")),
            "00 c1 3930 0a00 9d94ea2793fc08b9",
        ),
        (
            Value::Str(StrValue::from_bytes(b"-1")),
            "00 c0 ff 0a00 0c937e2485089dc5",
        ),
        (
            Value::Str(StrValue::from_bytes(b"4294967296")),
            "00 0a 34323934393637323936 0a00 a5a389c81a8c4656",
        ),
        (
            set_of(&[b"1", b"2", b"3"]),
            "0b 0e 02000000 03000000 0100 0200 0300 0a00 a5025ce26d6e4d1b",
        ),
        (
            zset_of(&[(b"a", 1.5), (b"b", 2.0)]),
            "11 14 14000000 0400 816102 83312e3504 816202 0201 ff 0a00 fa02b425af188763",
        ),
        (
            hash_of(&[(b"f", b"v"), (b"n", b"1")]),
            "10 12 12000000 0400 816602 817602 816e02 0101 ff 0a00 fce408f17922e016",
        ),
        (
            list_of(&[b"a", b"1", b"foo", b"-200", b"5000000"]),
            "12 01 02 19 19000000 0500 816102 0101 83666f6f04 df3802 f2404b4c04 ff 0a00 56e3a2b49a068e19",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(dump_payload(&v), hex(want), "{v:?}");
        // Loaded back, it dumps to the same bytes (a loaded "4294967296" is `embstr`, as in
        // Redis, so the values themselves compare by bytes).
        let back = restore_payload(&hex(want), &lim()).unwrap();
        assert_eq!(dump_payload(&back), hex(want));
    }
    // A list whose node compresses: the bytes before the trailer.
    let d = dump_payload(&list_of(&[&[b'x'; 30]]));
    assert_eq!(
        &d[..d.len() - 10],
        &hex("12 01 02 c3 0f 27 07 27000000 0100 9e 78 e0 14 00 01 1f ff")[..]
    );
}

#[test]
fn skiplist_and_hashtable_forms() {
    let small = Limits {
        zset: ZsetLimits {
            max_entries: 0,
            max_value: 64,
        },
        hash: HashLimits {
            max_entries: 0,
            max_value: 64,
        },
        ..lim()
    };
    let mut z = ZSet::new_skiplist();
    z.add(b"a", 1.5, AddFlags::default(), small.zset);
    z.add(b"b", -2.0, AddFlags::default(), small.zset);
    let d = dump_payload(&Value::ZSet(z));
    assert_eq!(
        &d[..d.len() - 10],
        &hex("05 02 0161 000000000000f83f 0162 00000000000000c0")[..]
    );
    let mut h = Hash::new();
    h.set(b"f", b"v", small.hash);
    let d = dump_payload(&Value::Hash(h));
    assert_eq!(&d[..d.len() - 10], &hex("04 01 0166 0176")[..]);
    // Loaded with default limits, both come back small.
    assert_eq!(restore_payload(&d, &lim()).unwrap().encoding(), "listpack");
}

#[test]
fn loads_newer_versions_and_their_set_listpack() {
    // 7.2's `SADD set2 a b` (SET_LISTPACK, version 11).
    let p = hex("14 0d 0d000000 0200 816102 816202 ff 0b00 0aec0ab449a3d654");
    assert_eq!(restore_payload(&p, &lim()).unwrap(), set_of(&[b"a", b"b"]));
}

#[test]
fn round_trips_every_type_and_encoding() {
    let big: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let many: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("element-{i}").into_bytes())
        .collect();
    let many_refs: Vec<&[u8]> = many.iter().map(|v| &v[..]).collect();
    let ints: Vec<Vec<u8>> = (0..600)
        .map(|i| (i * 7 - 100).to_string().into_bytes())
        .collect();
    let int_refs: Vec<&[u8]> = ints.iter().map(|v| &v[..]).collect();
    let zpairs: Vec<(&[u8], f64)> = many_refs
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, i as f64 / 3.0 - 100.0))
        .collect();
    let hpairs: Vec<(&[u8], &[u8])> = many_refs.iter().map(|m| (*m, &big[..100])).collect();
    let values = vec![
        Value::Str(StrValue::from_bytes(b"")),
        Value::Str(StrValue::from_bytes(&big)),
        Value::Str(StrValue::from_bytes(&[b'y'; 1000])),
        list_of(&[&big, b"x", b"-7"]),
        list_of(&many_refs),
        set_of(&int_refs[..10]),
        set_of(&int_refs),
        set_of(&many_refs[..5]),
        set_of(&many_refs),
        zset_of(&[
            (b"a", f64::INFINITY),
            (b"b", f64::NEG_INFINITY),
            (b"c", 0.1),
            (b"d", 1e300),
            (b"e", -3.0),
            (b"f", 4503599627370496.0),
        ]),
        zset_of(&zpairs),
        hash_of(&hpairs[..3]),
        hash_of(&hpairs),
    ];
    for v in values {
        let d = dump_payload(&v);
        let back = restore_payload(&d, &lim()).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.encoding(), v.encoding());
    }
}

#[test]
fn envelope_errors() {
    let good = dump_payload(&Value::Str(StrValue::from_bytes(b"hello")));
    for n in 0..10 {
        assert_eq!(restore_payload(&good[..n], &lim()), Err(RdbError::Checksum));
    }
    let mut b = good.clone();
    b[1] ^= 1;
    assert_eq!(restore_payload(&b, &lim()), Err(RdbError::Checksum));
    // Version 13 with a correct CRC is still refused as "version or checksum".
    let mut b = good[..good.len() - 10].to_vec();
    b.extend_from_slice(&13u16.to_le_bytes());
    let crc = crc64(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(restore_payload(&b, &lim()), Err(RdbError::Checksum));
}

/// Wraps an object body in a valid envelope.
fn payload(t: u8, body: &[u8]) -> Vec<u8> {
    let mut b = vec![t];
    b.extend_from_slice(body);
    b.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn corrupt_objects_are_bad_format() {
    let dup_lp = {
        let mut w = LpWriter::new();
        for e in ["f", "1", "f", "2"] {
            w.push_bytes(e.as_bytes());
        }
        w.finish()
    };
    let odd_lp = {
        let mut w = LpWriter::new();
        w.push_bytes(b"f");
        w.finish()
    };
    let nan_lp = {
        let mut w = LpWriter::new();
        w.push_bytes(b"m");
        w.push_bytes(b"nan");
        w.finish()
    };
    let string_of = |blob: &[u8]| {
        let mut w = Writer::new();
        w.string(blob);
        w.buf
    };
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (types::SET, hex("00")),                          // empty set
        (types::SET, hex("02 0161 0161")),                // duplicate members
        (types::SET, hex("7f")),                          // count that lies
        (types::SET, hex("80 7fffffff")),                 // huge count
        (types::HASH, hex("02 0166 0131 0166 0132")),     // duplicate fields
        (types::ZSET_2, hex("01 0161 000000000000f87f")), // NaN score
        (
            types::ZSET_2,
            hex("02 0161 000000000000f03f 0161 0000000000000040"),
        ),
        (types::ZSET, hex("01 0161 fd")), // NaN as a string double
        (types::HASH_LISTPACK, string_of(&dup_lp)),
        (types::HASH_LISTPACK, string_of(&odd_lp)),
        (types::ZSET_LISTPACK, string_of(&nan_lp)),
        (types::ZSET_LISTPACK, string_of(&LpWriter::new().finish())),
        (
            types::SET_INTSET,
            string_of(&hex("02000000 02000000 0200 0100")),
        ),
        (types::LIST_QUICKLIST_2, hex("01 03 02 0000")), // bad container
        (types::LIST_QUICKLIST_2, hex("01 02 00")),      // empty node
        (
            types::LIST_QUICKLIST_2,
            [hex("01 02"), string_of(&LpWriter::new().finish())].concat(),
        ),
        (types::LIST_QUICKLIST_2, hex("00")),
        (types::LIST, hex("00")),
        (types::STREAM_LISTPACKS_2, hex("00")),
        (6, hex("00")),
        (99, hex("00")),
    ];
    for (t, body) in cases {
        assert_eq!(
            restore_payload(&payload(t, &body), &lim()),
            Err(RdbError::BadFormat),
            "type {t} body {body:02x?}"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_is_handled() {
    let values = vec![
        list_of(&[b"a", b"1", b"foo", &[b'z'; 300]]),
        zset_of(&[(b"a", 1.5), (b"b", 2.0)]),
        hash_of(&[(b"f", b"v"), (b"n", b"1")]),
        set_of(&[b"1", b"2", b"3"]),
        set_of(&[b"x", b"y"]),
    ];
    for v in values {
        let d = dump_payload(&v);
        let body = &d[..d.len() - 10];
        for n in 1..body.len() {
            // Re-sealed truncations: never a panic, and never the original value.
            let p = payload(body[0], &body[1..n]);
            assert_ne!(restore_payload(&p, &lim()).ok(), Some(v.clone()));
        }
        for i in 8..body.len() * 8 {
            let mut b = body.to_vec();
            b[i / 8] ^= 1 << (i % 8);
            let p = payload(b[0], &b[1..]);
            if let Ok(back) = restore_payload(&p, &lim()) {
                // Whatever loads must dump and load again to the same value.
                assert_eq!(restore_payload(&dump_payload(&back), &lim()).unwrap(), back);
            }
        }
    }
}

#[test]
fn loads_ziplist_types_of_older_versions() {
    use super::ziplist::tests::build;
    let string_of = |blob: &[u8]| {
        let mut w = Writer::new();
        w.string(blob);
        w.buf
    };
    let seal9 = |t: u8, body: &[u8]| {
        let mut b = vec![t];
        b.extend_from_slice(body);
        b.extend_from_slice(&9u16.to_le_bytes());
        let crc = crc64(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    let items = [
        LpEntry::Bytes(b"a"),
        LpEntry::Int(1),
        LpEntry::Bytes(b"b"),
        LpEntry::Int(-300),
    ];
    let zl = build(&items);
    let list = restore_payload(&seal9(types::LIST_ZIPLIST, &string_of(&zl)), &lim()).unwrap();
    assert_eq!(list, list_of(&[b"a", b"1", b"b", b"-300"]));
    let mut ql = vec![2u8];
    ql.extend(string_of(&zl));
    ql.extend(string_of(&build(&[])));
    ql.extend(string_of(&zl));
    // Two nodes plus an empty one in between (skipped) — count says 3.
    ql[0] = 3;
    let list = restore_payload(&seal9(types::LIST_QUICKLIST, &ql), &lim()).unwrap();
    assert_eq!(
        list,
        list_of(&[b"a", b"1", b"b", b"-300", b"a", b"1", b"b", b"-300"])
    );
    let hash = restore_payload(&seal9(types::HASH_ZIPLIST, &string_of(&zl)), &lim()).unwrap();
    assert_eq!(hash, hash_of(&[(b"a", b"1"), (b"b", b"-300")]));
    let zset = restore_payload(&seal9(types::ZSET_ZIPLIST, &string_of(&zl)), &lim()).unwrap();
    assert_eq!(zset, zset_of(&[(b"a", 1.0), (b"b", -300.0)]));
    // Duplicates and odd counts are refused as in the listpack forms.
    let dup = build(&[
        LpEntry::Bytes(b"a"),
        LpEntry::Int(1),
        LpEntry::Bytes(b"a"),
        LpEntry::Int(2),
    ]);
    for t in [types::HASH_ZIPLIST, types::ZSET_ZIPLIST] {
        assert_eq!(
            restore_payload(&seal9(t, &string_of(&dup)), &lim()),
            Err(RdbError::BadFormat)
        );
        assert_eq!(
            restore_payload(&seal9(t, &string_of(&build(&items[..3]))), &lim()),
            Err(RdbError::BadFormat)
        );
    }
    assert_eq!(
        restore_payload(&seal9(types::LIST_ZIPLIST, &string_of(&build(&[]))), &lim()),
        Err(RdbError::BadFormat)
    );
}

#[test]
fn intsets_keep_their_width() {
    let mut s = Set::new();
    for m in [&b"1"[..], b"70000", b"2"] {
        s.add(m, lim().set);
    }
    s.remove(b"70000");
    let d = dump_payload(&Value::Set(s));
    assert_eq!(
        &d[..d.len() - 10],
        &hex("0b 10 04000000 02000000 01000000 02000000")[..]
    );
    let back = restore_payload(&d, &lim()).unwrap();
    assert_eq!(dump_payload(&back), d);
    // Past set-max-intset-entries a loaded intset converts.
    let few = Limits {
        set: SetLimits {
            max_intset: 1,
            ..lim().set
        },
        ..lim()
    };
    assert_eq!(restore_payload(&d, &few).unwrap().encoding(), "hashtable");
}

#[test]
fn payload_errors_render_as_redis() {
    let e: crate::error::Error = RdbError::Checksum.into();
    assert_eq!(e.render(), "ERR DUMP payload version or checksum are wrong");
    let e: crate::error::Error = RdbError::BadFormat.into();
    assert_eq!(e.render(), "ERR Bad data format");
}
