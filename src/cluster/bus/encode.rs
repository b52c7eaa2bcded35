//! Message → bytes, writing the fields in wire order (offsets pinned in `layout`).

use super::{
    align8, ext_type, mflag, Gossip, Header, Message, Payload, Ping, PingExt, EXT_HEADER_LEN,
    FAIL_LEN, GOSSIP_LEN, HEADER_LEN, MODULE_FIXED_LEN, PROTO_VER, PUBLISH_FIXED_LEN, SIG,
    UPDATE_LEN,
};

/// Encodes `msg` into a new buffer of exactly `encoded_len(msg)` bytes.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(msg));
    encode_into(msg, &mut out);
    out
}

/// Appends the encoding of `msg` to `out` (e.g. a link's send buffer).
///
/// `totlen` and `type` come from the payload; for PING/PONG/MEET so do `count` and
/// `extensions`, and EXT_DATA is set when extensions are present. Every other header field
/// is written as stored. Lengths beyond the 16/32-bit wire fields wrap as in Redis;
/// callers keep gossip ≤ 65535 entries and messages < 4 GiB.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) {
    out.reserve(encoded_len(msg));
    write_header(&msg.header, &msg.payload, encoded_len(msg) as u32, out);
    match &msg.payload {
        Payload::Ping(p) | Payload::Pong(p) | Payload::Meet(p) => write_ping(p, out),
        Payload::Fail(node) => out.extend_from_slice(node.as_bytes()),
        Payload::Publish(p) | Payload::PublishShard(p) => {
            out.extend_from_slice(&(p.channel.len() as u32).to_be_bytes());
            out.extend_from_slice(&(p.message.len() as u32).to_be_bytes());
            out.extend_from_slice(&p.channel);
            out.extend_from_slice(&p.message);
        }
        Payload::FailoverAuthRequest | Payload::FailoverAuthAck | Payload::MfStart => {}
        Payload::Update(u) => {
            out.extend_from_slice(&u.config_epoch.to_be_bytes());
            out.extend_from_slice(u.node.as_bytes());
            out.extend_from_slice(&u.slots.0);
        }
        Payload::Module(m) => {
            // Redis copies module_id without byte swapping (host order).
            out.extend_from_slice(&m.module_id.to_le_bytes());
            out.extend_from_slice(&(m.data.len() as u32).to_be_bytes());
            out.push(m.module_type);
            out.extend_from_slice(&m.data);
        }
    }
}

/// The number of bytes `encode` produces for `msg` (its `totlen`).
pub fn encoded_len(msg: &Message) -> usize {
    HEADER_LEN
        + match &msg.payload {
            Payload::Ping(p) | Payload::Pong(p) | Payload::Meet(p) => {
                p.gossip.len() * GOSSIP_LEN + p.exts.iter().map(ext_len).sum::<usize>()
            }
            Payload::Fail(_) => FAIL_LEN,
            Payload::Publish(p) | Payload::PublishShard(p) => {
                PUBLISH_FIXED_LEN + p.channel.len() + p.message.len()
            }
            Payload::FailoverAuthRequest | Payload::FailoverAuthAck | Payload::MfStart => 0,
            Payload::Update(_) => UPDATE_LEN,
            Payload::Module(m) => MODULE_FIXED_LEN + m.data.len(),
        }
}

fn write_header(h: &Header, payload: &Payload, totlen: u32, out: &mut Vec<u8>) {
    let (count, extensions, mflags0) = match payload.ping() {
        Some(p) if !p.exts.is_empty() => (
            p.gossip.len() as u16,
            p.exts.len() as u16,
            h.mflags[0] | mflag::EXT_DATA,
        ),
        Some(p) => (p.gossip.len() as u16, 0, h.mflags[0]),
        None => (h.count, h.extensions, h.mflags[0]),
    };
    let start = out.len();
    out.extend_from_slice(&SIG);
    out.extend_from_slice(&totlen.to_be_bytes());
    out.extend_from_slice(&PROTO_VER.to_be_bytes());
    out.extend_from_slice(&h.port.to_be_bytes());
    out.extend_from_slice(&payload.msg_type().to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&h.current_epoch.to_be_bytes());
    out.extend_from_slice(&h.config_epoch.to_be_bytes());
    out.extend_from_slice(&h.offset.to_be_bytes());
    out.extend_from_slice(h.sender.as_bytes());
    out.extend_from_slice(&h.myslots.0);
    out.extend_from_slice(h.replicaof.as_bytes());
    out.extend_from_slice(&h.myip.0);
    out.extend_from_slice(&extensions.to_be_bytes());
    out.extend_from_slice(&h.notused1);
    out.extend_from_slice(&h.pport.to_be_bytes());
    out.extend_from_slice(&h.cport.to_be_bytes());
    out.extend_from_slice(&h.flags.to_be_bytes());
    out.push(h.state);
    out.push(mflags0);
    out.extend_from_slice(&h.mflags[1..]);
    debug_assert_eq!(out.len() - start, HEADER_LEN);
}

fn write_ping(p: &Ping, out: &mut Vec<u8>) {
    for g in &p.gossip {
        write_gossip(g, out);
    }
    for e in &p.exts {
        write_ext(e, out);
    }
}

fn write_gossip(g: &Gossip, out: &mut Vec<u8>) {
    out.extend_from_slice(g.nodename.as_bytes());
    out.extend_from_slice(&g.ping_sent.to_be_bytes());
    out.extend_from_slice(&g.pong_received.to_be_bytes());
    out.extend_from_slice(&g.ip.0);
    out.extend_from_slice(&g.port.to_be_bytes());
    out.extend_from_slice(&g.cport.to_be_bytes());
    out.extend_from_slice(&g.flags.to_be_bytes());
    out.extend_from_slice(&g.pport.to_be_bytes());
    out.extend_from_slice(&g.notused1.to_be_bytes());
}

/// A string extension's name: the bytes before any NUL (a NUL could not be sent).
fn c_str(s: &[u8]) -> &[u8] {
    match memchr::memchr(0, s) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// Total on-wire length of an extension, header included.
pub(super) fn ext_len(e: &PingExt) -> usize {
    EXT_HEADER_LEN
        + match e {
            PingExt::Hostname(s) | PingExt::HumanNodename(s) => align8(c_str(s).len() + 1),
            PingExt::ForgottenNode { .. } => 48,
            PingExt::ShardId(_) => 40,
            PingExt::Other { data, .. } => data.len(),
        }
}

fn write_ext(e: &PingExt, out: &mut Vec<u8>) {
    let (ty, unused) = match e {
        PingExt::Hostname(_) => (ext_type::HOSTNAME, 0),
        PingExt::HumanNodename(_) => (ext_type::HUMAN_NODENAME, 0),
        PingExt::ForgottenNode { .. } => (ext_type::FORGOTTEN_NODE, 0),
        PingExt::ShardId(_) => (ext_type::SHARDID, 0),
        PingExt::Other { ty, unused, .. } => (*ty, *unused),
    };
    let len = ext_len(e);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&unused.to_be_bytes());
    match e {
        PingExt::Hostname(s) | PingExt::HumanNodename(s) => {
            // The string, its NUL and zero padding up to the 8-byte boundary.
            let s = c_str(s);
            out.extend_from_slice(s);
            out.resize(out.len() + (len - EXT_HEADER_LEN - s.len()), 0);
        }
        PingExt::ForgottenNode { name, ttl } => {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
        }
        PingExt::ShardId(id) => out.extend_from_slice(id.as_bytes()),
        PingExt::Other { data, .. } => out.extend_from_slice(data),
    }
}
