//! RESP3 through HELLO: the handshake map, RESP3 nulls (also from forwarded commands), back to RESP2.

mod common;

use common::{bulk, Raw, Server};

/// The HELLO reply Redis 7.0 sends (map in RESP3, flat array in RESP2), for client id `id`.
fn hello_reply(proto: u8, id: i64) -> Vec<u8> {
    let mut out = if proto == 3 {
        b"%7\r\n".to_vec()
    } else {
        b"*14\r\n".to_vec()
    };
    for (k, v) in [("server", "redis"), ("version", redcell::REDIS_VERSION)] {
        out.extend(bulk(k.as_bytes()));
        out.extend(bulk(v.as_bytes()));
    }
    out.extend(bulk(b"proto"));
    out.extend(format!(":{proto}\r\n").as_bytes());
    out.extend(bulk(b"id"));
    out.extend(format!(":{id}\r\n").as_bytes());
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        out.extend(bulk(k.as_bytes()));
        out.extend(bulk(v.as_bytes()));
    }
    out.extend(bulk(b"modules"));
    out.extend(b"*0\r\n");
    out
}

/// Reads a HELLO reply and returns the client id it carries, checking every other byte.
fn read_hello(raw: &mut Raw, proto: u8) -> i64 {
    let got = raw.read_reply();
    let text = String::from_utf8_lossy(&got);
    let id: i64 = text
        .split("$2\r\nid\r\n:")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no id field in {}", common::show(&got)));
    assert_eq!(
        common::show(&got),
        common::show(&hello_reply(proto, id)),
        "HELLO {proto} reply"
    );
    id
}

#[test]
fn hello_3_then_2() {
    assert_eq!(redcell::REDIS_VERSION, "7.0.15");
    let n = 2;
    let server = Server::start(n, &[]);
    let mut raw = server.raw();
    raw.send(b"HELLO 3\r\n");
    let id = read_hello(&mut raw, 3);
    assert!(id > 0);
    // Nulls are `_` in RESP3, for keys on this core and on the other one alike.
    for s in 0..n {
        let k = common::key_on_shard("missing:", s, n);
        raw.send_cmd(&[b"GET", k.as_bytes()]);
        raw.expect(b"_\r\n");
    }
    let (a, b) = (
        common::key_on_shard("x:", 0, n),
        common::key_on_shard("x:", 1, n),
    );
    raw.send_cmd(&[b"SET", a.as_bytes(), b"1"]);
    raw.expect(b"+OK\r\n");
    // MGET across shards: an array with a RESP3 null in it.
    raw.send_cmd(&[b"MGET", a.as_bytes(), b.as_bytes()]);
    raw.expect(b"*2\r\n$1\r\n1\r\n_\r\n");
    // HELLO with no version keeps the protocol.
    raw.send(b"HELLO\r\n");
    assert_eq!(read_hello(&mut raw, 3), id);
    raw.send(b"HELLO 2\r\n");
    assert_eq!(read_hello(&mut raw, 2), id);
    for s in 0..n {
        let k = common::key_on_shard("missing:", s, n);
        raw.send_cmd(&[b"GET", k.as_bytes()]);
        raw.expect(b"$-1\r\n");
    }
}

#[test]
fn hello_rejects_unknown_versions() {
    let server = Server::start(1, &[]);
    let mut raw = server.raw();
    raw.send(b"HELLO 4\r\n");
    raw.expect(b"-NOPROTO unsupported protocol version\r\n");
    raw.send(b"HELLO 1\r\n");
    raw.expect(b"-NOPROTO unsupported protocol version\r\n");
    raw.send(b"HELLO x\r\n");
    raw.expect(b"-ERR Protocol version is not an integer or out of range\r\n");
    // The connection is still RESP2 and usable.
    raw.send(b"GET nokey\r\n");
    raw.expect(b"$-1\r\n");
}

#[test]
fn hello_3_in_a_pipeline_switches_protocol_mid_batch() {
    let n = 2;
    let server = Server::start(n, &[]);
    let k = common::key_on_shard("m:", 1, n);
    let j = common::key_on_shard("m:", 0, n);
    let mut raw = server.raw();
    // Forwarded GETs before and after the switch, in one write.
    let mut req = Vec::new();
    for key in [&k, &j] {
        req.extend(common::encode(&[b"GET", key.as_bytes()]));
    }
    req.extend(b"HELLO 3\r\n");
    for key in [&k, &j] {
        req.extend(common::encode(&[b"GET", key.as_bytes()]));
    }
    raw.send(&req);
    raw.expect(b"$-1\r\n$-1\r\n");
    read_hello(&mut raw, 3);
    raw.expect(b"_\r\n_\r\n");
}
