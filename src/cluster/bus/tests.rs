//! Golden, round-trip, validation and fuzz tests of the cluster bus codec.

use super::layout::{data, gossip as goff, hdr};
use super::*;

fn name(s: &str) -> NodeName {
    NodeName::from_bytes(s.as_bytes()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert_eq!(digits.len() % 2, 0, "odd hex: {s}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const A: &str = "f3a7356b2c07ee37179d6bac92a780c6259d0cdc";
const B: &str = "94fba6ed91504901cbfcc74fa154e1ced4ebe35a";
const C: &str = "c8c35c539d1d04d8cd436d096f9ab7dd97123807";

/// A header with a distinct non-zero value in every field.
fn busy_header() -> Header {
    let mut myslots = SlotBitmap::EMPTY;
    myslots.set(0, true);
    myslots.set(5460, true);
    myslots.set(16383, true);
    let mut notused1 = [0u8; 30];
    notused1[0] = 0xee;
    notused1[29] = 0xef;
    Header {
        totlen: 0,
        port: 0x1b58,
        msg_type: 0,
        count: 0,
        current_epoch: 0x0102_0304_0506_0708,
        config_epoch: 0x1112_1314_1516_1718,
        offset: 0x2122_2324_2526_2728,
        sender: name(A),
        myslots,
        replicaof: name(B),
        myip: IpField::new(b"10.0.0.1"),
        extensions: 0,
        notused1,
        pport: 0x3132,
        cport: 0x4268,
        flags: 0x0111,
        state: 1,
        mflags: [mflag::PAUSED | mflag::FORCEACK, 0x55, 0x66],
    }
}

fn gossip_entry(n: &str, port: u16, flags: u16) -> Gossip {
    Gossip {
        nodename: name(n),
        ping_sent: 0x0a0b_0c0d,
        pong_received: 0x6b02_5b3a,
        ip: IpField::new(b"127.0.0.1"),
        port,
        cport: port + 10000,
        flags,
        pport: 0x7172,
        notused1: 0,
    }
}

fn all_ext_kinds() -> Vec<PingExt> {
    vec![
        PingExt::Hostname(b"node-7002.example".to_vec()),
        PingExt::HumanNodename(b"hn8000".to_vec()),
        PingExt::ForgottenNode {
            name: name(C),
            ttl: 57,
        },
        PingExt::ShardId(name(B)),
        PingExt::Other {
            ty: 99,
            unused: 7,
            data: vec![1, 2, 3, 4, 5, 6, 7, 8],
        },
        PingExt::Hostname(Vec::new()),
    ]
}

/// One message of every type, with non-trivial contents.
fn samples() -> Vec<Message> {
    let ping = Ping {
        gossip: vec![gossip_entry(B, 7003, 2), gossip_entry(C, 7001, 0x0101)],
        exts: all_ext_kinds(),
    };
    let mut slots = SlotBitmap::EMPTY;
    for s in 5461..=10922 {
        slots.set(s, true);
    }
    let payloads = vec![
        Payload::Ping(ping.clone()),
        Payload::Pong(Ping {
            gossip: vec![gossip_entry(C, 7001, 1)],
            exts: vec![],
        }),
        Payload::Meet(Ping::default()),
        Payload::Meet(ping),
        Payload::Fail(name(C)),
        Payload::Publish(Publish {
            channel: b"chan".to_vec(),
            message: b"hello".to_vec(),
        }),
        Payload::PublishShard(Publish {
            channel: b"{tag}ch".to_vec(),
            message: vec![0, 255, 13, 10],
        }),
        Payload::Publish(Publish::default()),
        Payload::FailoverAuthRequest,
        Payload::FailoverAuthAck,
        Payload::MfStart,
        Payload::Update(Box::new(Update {
            config_epoch: 42,
            node: name(C),
            slots,
        })),
        Payload::Module(Module {
            module_id: 0x0123_4567_89ab_cdef,
            module_type: 200,
            data: b"module payload".to_vec(),
        }),
        Payload::Module(Module::default()),
    ];
    payloads
        .into_iter()
        .map(|p| Message::new(busy_header(), p))
        .collect()
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(b[off..off + 2].try_into().unwrap())
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------
// Layout

#[test]
fn sizes_match_spec() {
    assert_eq!(HEADER_LEN, 2256);
    assert_eq!(GOSSIP_LEN, 104);
    assert_eq!(FAIL_LEN, 40);
    assert_eq!(UPDATE_LEN, 2096);
    assert_eq!(PUBLISH_FIXED_LEN, 8);
    assert_eq!(MODULE_FIXED_LEN, 13);
    assert_eq!(EXT_HEADER_LEN, 8);
    assert_eq!(NAME_LEN, 40);
    assert_eq!(IP_LEN, 46);
    assert_eq!(SLOT_BYTES, 2048);
    assert_eq!(&SIG, b"RCmb");
    assert_eq!(PROTO_VER, 1);
}

#[test]
fn header_offsets_match_spec() {
    let expect = [
        (hdr::SIG, 0),
        (hdr::TOTLEN, 4),
        (hdr::VER, 8),
        (hdr::PORT, 10),
        (hdr::TYPE, 12),
        (hdr::COUNT, 14),
        (hdr::CURRENT_EPOCH, 16),
        (hdr::CONFIG_EPOCH, 24),
        (hdr::OFFSET, 32),
        (hdr::SENDER, 40),
        (hdr::MYSLOTS, 80),
        (hdr::SLAVEOF, 2128),
        (hdr::MYIP, 2168),
        (hdr::EXTENSIONS, 2214),
        (hdr::NOTUSED1, 2216),
        (hdr::PPORT, 2246),
        (hdr::CPORT, 2248),
        (hdr::FLAGS, 2250),
        (hdr::STATE, 2252),
        (hdr::MFLAGS, 2253),
        (hdr::DATA, 2256),
    ];
    for (got, want) in expect {
        assert_eq!(got, want);
    }
    let g = [
        (goff::NODENAME, 0),
        (goff::PING_SENT, 40),
        (goff::PONG_RECEIVED, 44),
        (goff::IP, 48),
        (goff::PORT, 94),
        (goff::CPORT, 96),
        (goff::FLAGS, 98),
        (goff::PPORT, 100),
        (goff::NOTUSED1, 102),
        (goff::END, 104),
    ];
    for (got, want) in g {
        assert_eq!(got, want);
    }
    assert_eq!(data::PUBLISH_BULK, 2264);
    assert_eq!(data::UPDATE_NODENAME, 2264);
    assert_eq!(data::UPDATE_SLOTS, 2304);
    assert_eq!(data::MODULE_LEN, 2264);
    assert_eq!(data::MODULE_TYPE, 2268);
    assert_eq!(data::MODULE_BULK, 2269);
}

/// The encoder puts every header field at the spec's offset, big-endian.
#[test]
fn encoder_places_header_fields_at_spec_offsets() {
    let m = Message::new(busy_header(), Payload::FailoverAuthRequest);
    let b = encode(&m);
    assert_eq!(b.len(), 2256);
    assert_eq!(&b[0..4], b"RCmb");
    assert_eq!(be32(&b, 4), 2256);
    assert_eq!(be16(&b, 8), 1);
    assert_eq!(be16(&b, 10), 0x1b58);
    assert_eq!(be16(&b, 12), msg_type::FAILOVER_AUTH_REQUEST);
    assert_eq!(be16(&b, 14), 0);
    assert_eq!(be64(&b, 16), 0x0102_0304_0506_0708);
    assert_eq!(be64(&b, 24), 0x1112_1314_1516_1718);
    assert_eq!(be64(&b, 32), 0x2122_2324_2526_2728);
    assert_eq!(&b[40..80], A.as_bytes());
    // Slot 0 → byte 0 bit 0; slot 5460 → byte 682 bit 4; slot 16383 → byte 2047 bit 7.
    assert_eq!(b[80], 0x01);
    assert_eq!(b[80 + 682], 0x10);
    assert_eq!(b[80 + 2047], 0x80);
    assert_eq!(b[80..2128].iter().map(|x| x.count_ones()).sum::<u32>(), 3);
    assert_eq!(&b[2128..2168], B.as_bytes());
    assert_eq!(&b[2168..2176], b"10.0.0.1");
    assert!(b[2176..2214].iter().all(|&x| x == 0));
    assert_eq!(be16(&b, 2214), 0);
    assert_eq!(b[2216], 0xee);
    assert_eq!(b[2245], 0xef);
    assert_eq!(be16(&b, 2246), 0x3132);
    assert_eq!(be16(&b, 2248), 0x4268);
    assert_eq!(be16(&b, 2250), 0x0111);
    assert_eq!(b[2252], 1);
    assert_eq!(&b[2253..2256], &[3, 0x55, 0x66]);
}

#[test]
fn encoder_places_payload_fields_at_spec_offsets() {
    let mut s = samples();
    // PING: gossip entries then the extensions.
    let b = encode(&s[0]);
    assert_eq!(be16(&b, 14), 2);
    assert_eq!(be16(&b, 2214), 6);
    assert_ne!(b[2253] & mflag::EXT_DATA, 0);
    let g1 = 2256 + 104;
    assert_eq!(&b[g1..g1 + 40], C.as_bytes());
    assert_eq!(be32(&b, g1 + 40), 0x0a0b_0c0d);
    assert_eq!(be32(&b, g1 + 44), 0x6b02_5b3a);
    assert_eq!(&b[g1 + 48..g1 + 58], b"127.0.0.1\0");
    assert_eq!(be16(&b, g1 + 94), 7001);
    assert_eq!(be16(&b, g1 + 96), 17001);
    assert_eq!(be16(&b, g1 + 98), 0x0101);
    assert_eq!(be16(&b, g1 + 100), 0x7172);
    assert_eq!(be16(&b, g1 + 102), 0);
    // Hostname "node-7002.example" (17 chars): length 32 = 8 + 24, 7 NULs of padding.
    let e = 2256 + 2 * 104;
    assert_eq!(be32(&b, e), 32);
    assert_eq!(be16(&b, e + 4), ext_type::HOSTNAME);
    assert_eq!(be16(&b, e + 6), 0);
    assert_eq!(&b[e + 8..e + 25], b"node-7002.example");
    assert!(b[e + 25..e + 32].iter().all(|&x| x == 0));
    // Human nodename "hn8000": length 16.
    let e = e + 32;
    assert_eq!((be32(&b, e), be16(&b, e + 4)), (16, 1));
    assert_eq!(&b[e + 8..e + 16], b"hn8000\0\0");
    // Forgotten node: length 56, id then ttl u64 BE.
    let e = e + 16;
    assert_eq!((be32(&b, e), be16(&b, e + 4)), (56, 2));
    assert_eq!(&b[e + 8..e + 48], C.as_bytes());
    assert_eq!(be64(&b, e + 48), 57);
    // Shard id: length 48.
    let e = e + 56;
    assert_eq!((be32(&b, e), be16(&b, e + 4)), (48, 3));
    assert_eq!(&b[e + 8..e + 48], B.as_bytes());
    // Unknown type kept verbatim, then the empty hostname (NUL + 7 zeros).
    let e = e + 48;
    assert_eq!((be32(&b, e), be16(&b, e + 4), be16(&b, e + 6)), (16, 99, 7));
    let e = e + 16;
    assert_eq!((be32(&b, e), be16(&b, e + 4)), (16, 0));
    assert_eq!(e + 16, b.len());

    // PUBLISH chan hello → totlen 2273 (spec §6.3, verified against 7.0.15).
    let b = encode(&s[5]);
    assert_eq!(b.len(), 2273);
    assert_eq!(be32(&b, 4), 2273);
    assert_eq!((be32(&b, 2256), be32(&b, 2260)), (4, 5));
    assert_eq!(&b[2264..], b"chanhello");

    // FAIL: 2296 bytes, node id at 2256.
    let b = encode(&s[4]);
    assert_eq!(b.len(), 2296);
    assert_eq!(&b[2256..], C.as_bytes());

    // UPDATE: 4352 bytes.
    let b = encode(&s[11]);
    assert_eq!(b.len(), 4352);
    assert_eq!(be64(&b, 2256), 42);
    assert_eq!(&b[2264..2304], C.as_bytes());
    assert_eq!(b[2304 + 5461 / 8], 0xe0); // slots 5461..5463 of byte 682
    assert_eq!(b[2304 + 10922 / 8], 0x07); // slots 10920..10922 of byte 1365

    // MODULE: id little-endian, len BE, type, payload; totlen 2269 + len.
    let b = encode(&s[12]);
    assert_eq!(b.len(), 2269 + 14);
    assert_eq!(&b[2256..2264], &0x0123_4567_89ab_cdefu64.to_le_bytes());
    assert_eq!(be32(&b, 2264), 14);
    assert_eq!(b[2268], 200);
    assert_eq!(&b[2269..], b"module payload");

    // Header-only types are 2256 bytes.
    for m in s.drain(8..11) {
        assert_eq!(encode(&m).len(), 2256);
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

#[test]
fn round_trip_every_type() {
    let mut seen = [false; msg_type::COUNT];
    for m in samples() {
        let b = encode(&m);
        assert_eq!(b.len(), m.header.totlen as usize);
        assert_eq!(b.len(), encoded_len(&m));
        let d = decode(&b).unwrap_or_else(|e| panic!("{:?}: {e}", m.payload.msg_type()));
        assert_eq!(d, m);
        assert_eq!(encode(&d), b);
        assert_eq!(frame(&b, DEFAULT_MAX_MSG_LEN), Frame::Complete(b.len()));
        seen[usize::from(m.payload.msg_type())] = true;
    }
    assert!(seen.iter().all(|&s| s), "a message type lacks a sample");
}

#[test]
fn encode_into_appends() {
    let s = samples();
    let mut out = b"prefix".to_vec();
    encode_into(&s[0], &mut out);
    encode_into(&s[4], &mut out);
    let first = encode(&s[0]);
    assert_eq!(&out[6..6 + first.len()], &first[..]);
    let rest = &out[6..];
    let Frame::Complete(n) = frame(rest, DEFAULT_MAX_MSG_LEN) else {
        panic!("no frame")
    };
    assert_eq!(decode(&rest[..n]).unwrap(), s[0]);
    assert_eq!(decode(&rest[n..]).unwrap(), s[4]);
}

/// Extensions not laid out exactly as Redis writes them stay raw and re-encode verbatim.
#[test]
fn noncanonical_extensions_are_kept_raw() {
    let cases: Vec<(u16, u16, Vec<u8>)> = vec![
        (
            ext_type::HOSTNAME,
            0,
            b"abc\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(),
        ), // extra padding
        (ext_type::HOSTNAME, 0, b"abcdefgh".to_vec()), // no NUL
        (ext_type::HOSTNAME, 0, b"ab\0xxxxx".to_vec()), // dirty padding
        (ext_type::HOSTNAME, 1, b"ab\0\0\0\0\0\0".to_vec()), // unused != 0
        (ext_type::SHARDID, 0, vec![b'a'; 48]),        // wrong size
        (ext_type::FORGOTTEN_NODE, 0, vec![b'a'; 40]), // wrong size
        (ext_type::HUMAN_NODENAME, 0, Vec::new()),     // header only
    ];
    for (ty, unused, data) in cases {
        let ext = PingExt::Other { ty, unused, data };
        let m = Message::new(
            busy_header(),
            Payload::Pong(Ping {
                gossip: vec![],
                exts: vec![ext],
            }),
        );
        let b = encode(&m);
        let d = decode(&b).unwrap();
        assert_eq!(d, m);
        assert_eq!(encode(&d), b);
    }
    // The canonical form of the same hostname decodes typed.
    let ext = PingExt::Other {
        ty: ext_type::HOSTNAME,
        unused: 0,
        data: b"abc\0\0\0\0\0".to_vec(),
    };
    let b = encode(&Message::new(
        busy_header(),
        Payload::Ping(Ping {
            gossip: vec![],
            exts: vec![ext],
        }),
    ));
    let d = decode(&b).unwrap();
    assert_eq!(
        d.payload.ping().unwrap().exts,
        vec![PingExt::Hostname(b"abc".to_vec())]
    );
}

/// EXT_DATA with zero extensions is accepted (Redis loops zero times) and kept.
#[test]
fn ext_flag_without_extensions_round_trips() {
    let mut h = busy_header();
    h.mflags[0] |= mflag::EXT_DATA;
    let m = Message::new(h, Payload::Ping(Ping::default()));
    let b = encode(&m);
    assert_ne!(b[2253] & mflag::EXT_DATA, 0);
    assert_eq!(decode(&b).unwrap(), m);
}

// ---------------------------------------------------------------------------------------
// The worked example of cluster-bus.md §19: a real 7.0.15 PING.

fn gossip_hex(id: &str, pong: &str, port: &str, cport: &str, flags: &str) -> String {
    let ip = format!("{}{}", "3132372e302e302e31", "00".repeat(37)); // "127.0.0.1" NUL-padded to 46
    format!(
        "{} 00000000 {pong} {ip} {port} {cport} {flags} 0000 0000",
        id.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The 2568 bytes of the §19 capture, field by field as the spec's table gives them.
/// gossip[0] is fully specified there; for gossip[1] (replica 7004, flags 2) and gossip[2]
/// (master 7001, flags 0x0101) the table elides the bytes, so their ids are taken from
/// the same cluster's CLUSTER NODES output in nodes-conf.md §2.1 and their times assumed.
fn section19_bytes() -> Vec<u8> {
    let sender = A.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let text = [
        "52 43 6d 62".to_string(),        // sig
        "00 00 0a 08".into(),             // totlen 2568
        "00 01".into(),                   // ver
        "1b 58".into(),                   // port 7000
        "00 00".into(),                   // type PING
        "00 03".into(),                   // count 3
        "00 00 00 00 00 00 00 06".into(), // currentEpoch 6
        "00 00 00 00 00 00 00 01".into(), // configEpoch 1
        "00 00 00 00 00 00 01 c0".into(), // offset 448
        sender,                           // sender
        "ff".repeat(682),                 // myslots 0..5455
        "1f".into(),                      // myslots 5456..5460
        "00".repeat(1365),                // rest of myslots
        "00".repeat(40),                  // slaveof: master
        "00".repeat(46),                  // myip: use peer address
        "00 00".into(),                   // extensions
        "00".repeat(30),                  // notused1
        "00 00".into(),                   // pport
        "42 68".into(),                   // cport 17000
        "01 11".into(),                   // flags MIGRATE_TO|MYSELF|MASTER
        "00".into(),                      // state ok
        "00 00 00".into(),                // mflags
        gossip_hex(B, "6b025b3a", "1b5b", "426b", "0002"),
        gossip_hex(
            "a325f2458b238395afd37bf52a0b85128ab52f7f",
            "6b025b3a",
            "1b5c",
            "426c",
            "0002",
        ),
        gossip_hex(C, "6b025b3a", "1b59", "4269", "0101"),
    ]
    .join(" ");
    hex(&text)
}

#[test]
fn section19_real_ping_decodes_field_by_field_and_reencodes_identically() {
    let b = section19_bytes();
    assert_eq!(b.len(), 2568);
    assert_eq!(frame(&b, DEFAULT_MAX_MSG_LEN), Frame::Complete(2568));
    let m = decode(&b).unwrap();
    let h = &m.header;
    assert_eq!(h.totlen, 2568);
    assert_eq!(h.port, 7000);
    assert_eq!(h.msg_type, msg_type::PING);
    assert_eq!(h.count, 3);
    assert_eq!(h.current_epoch, 6);
    assert_eq!(h.config_epoch, 1);
    assert_eq!(h.offset, 448);
    assert_eq!(h.sender, name(A));
    assert!(h.sender.is_valid());
    assert_eq!(h.myslots.count(), 5461);
    assert!(h.myslots.get(0) && h.myslots.get(5460) && !h.myslots.get(5461));
    assert!(h.replicaof.is_null());
    assert!(h.myip.is_empty());
    assert_eq!(h.extensions, 0);
    assert_eq!(h.notused1, [0; 30]);
    assert_eq!(h.pport, 0);
    assert_eq!(h.cport, 17000);
    assert_eq!(
        h.flags,
        node_flag::MIGRATE_TO | node_flag::MYSELF | node_flag::MASTER
    );
    assert_eq!(node_flag::to_names(h.flags), "myself,master");
    assert_eq!(h.state, 0);
    assert_eq!(h.mflags, [0, 0, 0]);
    let Payload::Ping(p) = &m.payload else {
        panic!("not a PING: {:?}", m.payload)
    };
    assert!(p.exts.is_empty());
    assert_eq!(p.gossip.len(), 3);
    let g = &p.gossip[0];
    assert_eq!(g.nodename, name(B));
    assert_eq!(g.ping_sent, 0);
    assert_eq!(g.pong_received, 0x6b02_5b3a);
    assert_eq!(g.ip.as_bytes(), b"127.0.0.1");
    assert_eq!(
        (g.port, g.cport, g.flags, g.pport, g.notused1),
        (7003, 17003, 2, 0, 0)
    );
    assert_eq!(node_flag::to_names(g.flags), "slave");
    assert_eq!(
        (p.gossip[1].port, p.gossip[1].flags),
        (7004, node_flag::SLAVE)
    );
    assert_eq!(p.gossip[2].nodename, name(C));
    assert_eq!((p.gossip[2].port, p.gossip[2].cport), (7001, 17001));
    assert_eq!(p.gossip[2].flags, 257);
    assert_eq!(encode(&m), b);

    // Built from scratch with the encoder, the same message is byte-identical.
    let mut myslots = SlotBitmap::EMPTY;
    for s in 0..=5460 {
        myslots.set(s, true);
    }
    let header = Header {
        port: 7000,
        current_epoch: 6,
        config_epoch: 1,
        offset: 448,
        sender: name(A),
        myslots,
        cport: 17000,
        flags: 0x0111,
        ..Header::default()
    };
    let built = Message::new(header, Payload::Ping(p.clone()));
    assert_eq!(encode(&built), b);
}

// ---------------------------------------------------------------------------------------
// Framing and validation

#[test]
fn framing() {
    let b = encode(&samples()[4]);
    let max = DEFAULT_MAX_MSG_LEN;
    for n in 0..8 {
        assert_eq!(frame(&b[..n], max), Frame::Incomplete);
    }
    assert_eq!(frame(&b[..8], max), Frame::Incomplete);
    assert_eq!(frame(&b[..b.len() - 1], max), Frame::Incomplete);
    assert_eq!(frame(&b, max), Frame::Complete(2296));
    let mut more = b.clone();
    more.extend_from_slice(b"RCmb");
    assert_eq!(frame(&more, max), Frame::Complete(2296));

    let mut bad = b.clone();
    bad[3] = b'B';
    let Frame::Error(e) = frame(&bad[..8], max) else {
        panic!()
    };
    assert_eq!(e, BusError::BadSignature(*b"RCmB"));
    assert!(e.closes_link());

    let small = [b"RCmb".as_slice(), &2255u32.to_be_bytes()].concat();
    assert_eq!(
        frame(&small, max),
        Frame::Error(BusError::TotlenTooSmall { totlen: 2255 })
    );
    let big = [b"RCmb".as_slice(), &u32::MAX.to_be_bytes()].concat();
    assert_eq!(
        frame(&big, max),
        Frame::Error(BusError::TotlenTooLarge {
            totlen: u32::MAX,
            max
        })
    );
    assert_eq!(
        frame(&small[..8], 2300),
        Frame::Error(BusError::TotlenTooSmall { totlen: 2255 })
    );
    let ok = [b"RCmb".as_slice(), &2300u32.to_be_bytes()].concat();
    assert_eq!(frame(&ok, 2300), Frame::Incomplete);
    assert!(matches!(
        frame(&ok, 2299),
        Frame::Error(BusError::TotlenTooLarge { .. })
    ));
}

fn set16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

fn set32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// A PONG with one gossip entry and one 16-byte extension.
fn ping_with_ext() -> Vec<u8> {
    encode(&Message::new(
        busy_header(),
        Payload::Pong(Ping {
            gossip: vec![gossip_entry(B, 7003, 2)],
            exts: vec![PingExt::HumanNodename(b"hn".to_vec())],
        }),
    ))
}

#[test]
fn validation_errors() {
    use BusError::*;
    let fail = encode(&samples()[4]);

    assert_eq!(decode(&fail[..2255]), Err(TooShort { len: 2255 }));
    assert_eq!(decode(&[]), Err(TooShort { len: 0 }));

    let mut b = fail.clone();
    b[0] = b'X';
    assert_eq!(decode(&b), Err(BadSignature(*b"XCmb")));

    let mut b = fail.clone();
    b.push(0);
    assert_eq!(
        decode(&b),
        Err(TotlenMismatch {
            totlen: 2296,
            len: 2297
        })
    );

    let mut b = fail.clone();
    set16(&mut b, hdr::VER, 2);
    assert_eq!(decode(&b), Err(BadVersion(2)));

    // FAIL with a wrong length.
    let mut b = fail.clone();
    b.extend_from_slice(&[0; 8]);
    set32(&mut b, hdr::TOTLEN, 2304);
    let e = decode(&b).unwrap_err();
    assert_eq!(
        e,
        BadLength {
            msg_type: 3,
            totlen: 2304,
            expected: 2296
        }
    );
    assert_eq!(
        e.to_string(),
        "Received invalid fail packet of length 2304 but expected length 2296"
    );
    assert!(!e.closes_link());

    // A header-only type with a payload; an UPDATE that is short.
    let mut b = encode(&samples()[8]);
    b.extend_from_slice(&[0; 8]);
    set32(&mut b, hdr::TOTLEN, 2264);
    assert!(matches!(
        decode(&b),
        Err(BadLength {
            msg_type: 5,
            expected: 2256,
            ..
        })
    ));
    let mut b = encode(&samples()[11]);
    b.truncate(4000);
    set32(&mut b, hdr::TOTLEN, 4000);
    assert!(matches!(
        decode(&b),
        Err(BadLength {
            msg_type: 7,
            expected: 4352,
            ..
        })
    ));

    // PUBLISH: declared lengths not matching, lengths missing, and u32 wrap-around.
    let publish = encode(&samples()[5]);
    let mut b = publish.clone();
    set32(&mut b, data::PUBLISH_MESSAGE_LEN, 6);
    assert!(matches!(
        decode(&b),
        Err(BadLength {
            msg_type: 4,
            expected: 2274,
            ..
        })
    ));
    let mut b = publish.clone();
    set32(&mut b, data::PUBLISH_CHANNEL_LEN, u32::MAX);
    set32(&mut b, data::PUBLISH_MESSAGE_LEN, 18); // wraps to 17 in u32 arithmetic
    assert!(matches!(decode(&b), Err(BadLength { .. })));
    let mut b = encode(&samples()[8]);
    set16(&mut b, hdr::TYPE, msg_type::PUBLISH);
    assert!(matches!(
        decode(&b),
        Err(BadLength {
            msg_type: 4,
            expected: 2264,
            ..
        })
    ));

    // MODULE with a wrong len.
    let mut b = encode(&samples()[12]);
    set32(&mut b, data::MODULE_LEN, 15);
    assert!(matches!(decode(&b), Err(BadLength { msg_type: 9, .. })));

    // PING: gossip count larger than the message.
    let pong = ping_with_ext();
    let mut b = pong.clone();
    set16(&mut b, hdr::COUNT, 2);
    assert!(matches!(decode(&b), Err(BadLength { msg_type: 1, .. })));
    let mut b = pong.clone();
    set16(&mut b, hdr::COUNT, u16::MAX);
    assert!(matches!(decode(&b), Err(BadLength { msg_type: 1, .. })));

    // Extensions: bad padding, overflow, zero length, missing flag, trailing bytes.
    let ext = 2256 + 104;
    let mut b = pong.clone();
    set32(&mut b, ext, 12);
    let e = decode(&b).unwrap_err();
    assert_eq!(
        e,
        ExtPadding {
            msg_type: 1,
            ext_len: 12
        }
    );
    assert_eq!(
        e.to_string(),
        "Received a pong packet without proper padding (12 bytes)"
    );
    let mut b = pong.clone();
    set32(&mut b, ext, 24);
    assert_eq!(
        decode(&b),
        Err(ExtOverflow {
            msg_type: 1,
            totlen: 2376
        })
    );
    let mut b = pong.clone();
    set32(&mut b, ext, 0);
    assert_eq!(
        decode(&b),
        Err(ExtTooShort {
            msg_type: 1,
            ext_len: 0
        })
    );
    let mut b = pong.clone();
    set16(&mut b, hdr::EXTENSIONS, 2);
    assert_eq!(
        decode(&b),
        Err(ExtOverflow {
            msg_type: 1,
            totlen: 2376
        })
    );
    let mut b = pong.clone();
    b[hdr::MFLAGS] &= !mflag::EXT_DATA;
    assert_eq!(
        decode(&b),
        Err(ExtWithoutFlag {
            msg_type: 1,
            extensions: 1
        })
    );
    let mut b = pong.clone();
    b.extend_from_slice(&[0; 8]);
    set32(&mut b, hdr::TOTLEN, 2384);
    assert!(matches!(decode(&b), Err(BadLength { expected: 2376, .. })));
    // Without EXT_DATA, extension bytes are just excess length.
    let mut b = pong.clone();
    b[hdr::MFLAGS] &= !mflag::EXT_DATA;
    set16(&mut b, hdr::EXTENSIONS, 0);
    assert!(matches!(decode(&b), Err(BadLength { expected: 2360, .. })));

    // Unknown types: reported, not parsed (Redis ignores them).
    let mut b = fail.clone();
    set16(&mut b, hdr::TYPE, 11);
    let e = decode(&b).unwrap_err();
    assert_eq!(e, UnknownType(11));
    assert_eq!(e.to_string(), "Received unknown packet type: 11");
    assert!(!e.closes_link());
}

#[test]
fn small_types() {
    let mut s = SlotBitmap::EMPTY;
    s.set(16383, true);
    s.set(16384, true); // ignored
    assert!(s.get(16383) && !s.get(16384) && s.count() == 1);
    s.set(16383, false);
    assert_eq!(s, SlotBitmap::EMPTY);
    let mut s = SlotBitmap::EMPTY;
    for x in [0, 1, 2, 7, 100] {
        s.set(x, true);
    }
    assert_eq!(format!("{s:?}"), "SlotBitmap[0-2 7 100]");

    assert!(IpField::new(&[b'1'; 60]).0[45] == 0);
    assert_eq!(IpField::new(b"::1").as_bytes(), b"::1");
    assert!(!NodeName([b'A'; 40]).is_valid());
    assert!(NodeName([b'z'; 40]).is_valid());
    assert!(NodeName::from_bytes(b"abc").is_none());
    assert_eq!(name(A).to_string(), A);
    assert_eq!(node_flag::to_names(0), "noflags");
    assert_eq!(
        node_flag::to_names(0x3ff),
        "myself,master,slave,fail?,fail,handshake,noaddr,nofailover"
    );
    assert_eq!(msg_type::name(5), "auth-req");
    assert_eq!(msg_type::name(10), "publishshard");
    assert_eq!(msg_type::name(11), "unknown");
}

// ---------------------------------------------------------------------------------------
// Fuzz

/// splitmix64: a tiny deterministic generator for the fuzz test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A fuzz input: random bytes, a truncation, bit flips, or a length-field overwrite.
fn fuzz_input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let base = &corpus[rng.below(corpus.len())];
    let mut b = match rng.below(4) {
        0 => {
            let len = if rng.below(2) == 0 {
                rng.below(64)
            } else {
                2256 + rng.below(600)
            };
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if b.len() >= 16 && rng.below(4) != 0 {
                b[..4].copy_from_slice(b"RCmb");
                set16(&mut b, hdr::VER, 1);
                set16(&mut b, hdr::TYPE, rng.below(13) as u16);
                set16(&mut b, hdr::COUNT, rng.below(5) as u16);
            }
            if b.len() >= 2256 {
                set16(&mut b, hdr::EXTENSIONS, rng.below(4) as u16);
            }
            b
        }
        1 => base[..rng.below(base.len() + 1)].to_vec(),
        2 => {
            let mut b = base.clone();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            b
        }
        _ => {
            // Hit the fields validation depends on.
            let mut b = base.clone();
            let spots = [
                hdr::COUNT,
                hdr::EXTENSIONS,
                hdr::TYPE,
                hdr::MFLAGS,
                2256,
                2260,
                2264,
                2360,
            ];
            let at = spots[rng.below(spots.len())];
            let v = [0u32, 1, 8, 16, 104, 2256, u32::MAX, rng.next() as u32][rng.below(8)];
            if at + 4 <= b.len() {
                set32(&mut b, at, v);
            }
            b
        }
    };
    // Usually keep totlen consistent so decode gets past the first checks.
    if b.len() >= 8 && rng.below(4) != 0 {
        let n = b.len() as u32;
        set32(&mut b, hdr::TOTLEN, n);
    }
    b
}

#[test]
fn fuzz_never_panics_and_ok_results_reencode() {
    let mut corpus: Vec<Vec<u8>> = samples().iter().map(encode).collect();
    corpus.push(section19_bytes());
    corpus.push(ping_with_ext());
    let mut rng = Rng(0x5eed_2024);
    let (mut ok, mut err, mut complete) = (0u32, 0u32, 0u32);
    for _ in 0..100_000 {
        let b = fuzz_input(&mut rng, &corpus);
        match frame(&b, DEFAULT_MAX_MSG_LEN) {
            Frame::Complete(n) => {
                complete += 1;
                assert!(n >= HEADER_LEN && n <= b.len());
                let _ = decode(&b[..n]);
            }
            Frame::Incomplete => assert!(b.len() < 8 || be32(&b, 4) as usize > b.len()),
            Frame::Error(e) => assert!(e.closes_link()),
        }
        match decode(&b) {
            Ok(m) => {
                ok += 1;
                assert_eq!(m.header.totlen as usize, b.len());
                assert_eq!(encoded_len(&m), b.len());
                assert_eq!(encode(&m), b, "re-encode differs");
            }
            Err(e) => {
                err += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    eprintln!("fuzz: {ok} decoded, {err} rejected, {complete} framed");
    // The mix must exercise both outcomes substantially.
    assert!(ok > 10_000, "only {ok} inputs decoded");
    assert!(err > 10_000, "only {err} inputs rejected");
    assert!(complete > 10_000, "only {complete} inputs framed");
}

// ---------------------------------------------------------------------------------------
// Real peer (manual): `cargo test --release --lib cluster::bus::tests::real_peer -- --ignored`

/// Sends a MEET built by `encode` to a stock redis-server's bus port, checks its PONG,
/// answers its PING on our own bus port to complete the handshake, and checks that the
/// stock node lists us and logged no warning.
#[test]
fn real_peer_meet_handshake() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn read_msg(s: &mut TcpStream) -> Message {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match frame(&buf, DEFAULT_MAX_MSG_LEN) {
                Frame::Complete(n) => return decode(&buf[..n]).unwrap(),
                Frame::Error(e) => panic!("{e}"),
                Frame::Incomplete => {}
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "peer closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    // Our fake node: a bus listener on an ephemeral port, announced client port unused.
    let bus = TcpListener::bind("127.0.0.1:0").unwrap();
    let our_cport = bus.local_addr().unwrap().port();
    let our_name = name("0123456789abcdef0123456789abcdef01234567");
    let our_header = |epoch| Header {
        port: 1,
        cport: our_cport,
        flags: node_flag::MASTER | node_flag::MYSELF,
        current_epoch: epoch,
        sender: our_name,
        ..Header::default()
    };

    // A free client port whose bus port (+10000) is free too, chosen at run time.
    let port = loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port();
        if p < 55000 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            break p;
        }
    };
    let dir = std::env::temp_dir().join(format!("redcell-bus-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("redis.log");
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--cluster-enabled", "yes"])
        .args([
            "--cluster-config-file",
            dir.join("nodes.conf").to_str().unwrap(),
        ])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "verbose"])
        .args(["--cluster-announce-hostname", "stock-node.example"])
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--logfile",
            log.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is needed for this interop test: `bash scripts/test.sh` installs it");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut link = loop {
            match TcpStream::connect(("127.0.0.1", port + 10000)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("bus port: {e}"),
            }
        };
        // The bus port listens before Redis logs its start-up lines (some at warning level,
        // e.g. about vm.overcommit_memory); wait for them so only lines caused by us count.
        let log_before = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                break text.len();
            }
            assert!(
                Instant::now() < deadline,
                "stock node never got ready:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        link.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let meet = Message::new(our_header(0), Payload::Meet(Ping::default()));
        link.write_all(&encode(&meet)).unwrap();
        let pong = read_msg(&mut link);
        let Payload::Pong(body) = &pong.payload else {
            panic!("not a PONG: {pong:?}")
        };
        // 7.0 sends its announced hostname as the only extension.
        assert_ne!(pong.header.mflags[0] & mflag::EXT_DATA, 0);
        assert_eq!(
            body.exts,
            vec![PingExt::Hostname(b"stock-node.example".to_vec())]
        );
        assert!(pong.header.sender.is_valid());
        assert_eq!((pong.header.port, pong.header.cport), (port, port + 10000));
        eprintln!("PONG from stock node: {:?}", pong.header);

        // The stock node connects back to our announced bus port and PINGs; answer it.
        let (mut back, _) = bus.accept().unwrap();
        back.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let ping = read_msg(&mut back);
        assert!(matches!(ping.payload, Payload::Ping(_)), "{ping:?}");
        assert_eq!(ping.header.sender, pong.header.sender);
        let reply = Message::new(our_header(0), Payload::Pong(Ping::default()));
        back.write_all(&encode(&reply)).unwrap();
        std::thread::sleep(Duration::from_millis(300));

        // Now a known node: a PING with gossip and a hostname extension on the first link.
        let mut h = our_header(0);
        h.myip = IpField::new(b"127.0.0.1");
        let ping = Ping {
            gossip: vec![Gossip {
                nodename: pong.header.sender,
                ping_sent: 0,
                pong_received: 0,
                ip: IpField::new(b"127.0.0.1"),
                port,
                cport: port + 10000,
                flags: node_flag::MASTER,
                pport: 0,
                notused1: 0,
            }],
            exts: vec![PingExt::Hostname(b"redcell-test.example".to_vec())],
        };
        link.write_all(&encode(&Message::new(h, Payload::Ping(ping))))
            .unwrap();
        let pong2 = read_msg(&mut link);
        assert!(matches!(pong2.payload, Payload::Pong(_)), "{pong2:?}");
        std::thread::sleep(Duration::from_millis(200));

        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "nodes"])
            .output()
            .unwrap();
        let nodes = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("CLUSTER NODES:\n{nodes}");
        let ours = nodes.lines().find(|l| l.starts_with(&our_name.to_string()));
        let ours = ours.unwrap_or_else(|| panic!("our node missing:\n{nodes}"));
        let addr = format!("127.0.0.1:1@{our_cport},redcell-test.example master");
        assert!(ours.contains(&addr), "{ours}");
        assert!(!ours.contains("handshake"), "{ours}");

        let text = std::fs::read_to_string(&log).unwrap();
        let new = &text[log_before..];
        eprintln!("stock log after MEET:\n{new}");
        // Redis logs learning its own IP from a MEET at warning level; that one is expected.
        let warnings: Vec<&str> = new
            .lines()
            .filter(|l| l.contains(" # ") && !l.contains("IP address for this node updated"))
            .collect();
        assert!(warnings.is_empty(), "warnings: {warnings:?}");
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
