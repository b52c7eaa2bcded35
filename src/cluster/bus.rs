//! The Redis 7.0 cluster bus wire format: typed messages, `encode`, `decode` and framing.
//!
//! Layout and validation follow `../shared/spec/cluster-bus.md` and Redis 7.0's
//! `clusterMsg` / `clusterProcessPacket`. All multi-byte integers are big-endian except
//! MODULE's `module_id`, which Redis copies in host order (little-endian on every platform
//! Redis ships on). This module does no I/O: the link code feeds it bytes.
//!
//! Round-trip guarantee: for every buffer `b` with `decode(b) == Ok(m)`,
//! `encode(&m) == b` byte for byte (reserved bytes, padding and unknown extensions are kept).

mod decode;
mod encode;
mod frame;
pub mod layout;
#[cfg(test)]
mod tests;

pub use decode::decode;
pub use encode::{encode, encode_into, encoded_len};
pub use frame::{frame, Frame, DEFAULT_MAX_MSG_LEN};
pub use layout::{
    EXT_HEADER_LEN, FAIL_LEN, GOSSIP_LEN, HEADER_LEN, IP_LEN, MODULE_FIXED_LEN, NAME_LEN,
    PUBLISH_FIXED_LEN, SLOT_BYTES, UPDATE_LEN,
};

use std::fmt;

/// The four signature bytes every message starts with.
pub const SIG: [u8; 4] = *b"RCmb";
/// The only protocol version Redis 7.x speaks.
pub const PROTO_VER: u16 = 1;

/// Message type codes (header `type`), as `CLUSTERMSG_TYPE_*`.
pub mod msg_type {
    pub const PING: u16 = 0;
    pub const PONG: u16 = 1;
    pub const MEET: u16 = 2;
    pub const FAIL: u16 = 3;
    pub const PUBLISH: u16 = 4;
    pub const FAILOVER_AUTH_REQUEST: u16 = 5;
    pub const FAILOVER_AUTH_ACK: u16 = 6;
    pub const UPDATE: u16 = 7;
    pub const MFSTART: u16 = 8;
    pub const MODULE: u16 = 9;
    pub const PUBLISHSHARD: u16 = 10;
    /// Number of known types (`CLUSTERMSG_TYPE_COUNT`); stats arrays have this size.
    pub const COUNT: usize = 11;

    /// The name Redis uses in logs and `CLUSTER INFO` stats (`unknown` for other codes).
    pub fn name(t: u16) -> &'static str {
        match t {
            PING => "ping",
            PONG => "pong",
            MEET => "meet",
            FAIL => "fail",
            PUBLISH => "publish",
            PUBLISHSHARD => "publishshard",
            FAILOVER_AUTH_REQUEST => "auth-req",
            FAILOVER_AUTH_ACK => "auth-ack",
            UPDATE => "update",
            MFSTART => "mfstart",
            MODULE => "module",
            _ => "unknown",
        }
    }
}

/// Node flag bits (header `flags`, gossip `flags`), as `CLUSTER_NODE_*`.
pub mod node_flag {
    pub const MASTER: u16 = 1;
    pub const SLAVE: u16 = 2;
    pub const PFAIL: u16 = 4;
    pub const FAIL: u16 = 8;
    pub const MYSELF: u16 = 16;
    pub const HANDSHAKE: u16 = 32;
    pub const NOADDR: u16 = 64;
    pub const MEET: u16 = 128;
    pub const MIGRATE_TO: u16 = 256;
    pub const NOFAILOVER: u16 = 512;

    /// Flag names in the order nodes.conf / CLUSTER NODES print them (MEET and
    /// MIGRATE_TO are never printed).
    pub const NAMES: [(u16, &str); 8] = [
        (MYSELF, "myself"),
        (MASTER, "master"),
        (SLAVE, "slave"),
        (PFAIL, "fail?"),
        (FAIL, "fail"),
        (HANDSHAKE, "handshake"),
        (NOADDR, "noaddr"),
        (NOFAILOVER, "nofailover"),
    ];

    /// The comma-separated flags column of CLUSTER NODES (`noflags` if none is printable).
    pub fn to_names(flags: u16) -> String {
        let mut out = String::new();
        for (bit, name) in NAMES {
            if flags & bit != 0 {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(name);
            }
        }
        if out.is_empty() {
            out.push_str("noflags");
        }
        out
    }
}

/// Bits of `mflags[0]`, as `CLUSTERMSG_FLAG0_*`.
pub mod mflag {
    /// Master paused for a manual failover; `offset` is the paused offset.
    pub const PAUSED: u8 = 1;
    /// Vote for this FAILOVER_AUTH_REQUEST even if the master is not FAIL.
    pub const FORCEACK: u8 = 2;
    /// Ping extensions follow the gossip array.
    pub const EXT_DATA: u8 = 4;
}

/// Ping extension type codes, as `CLUSTERMSG_EXT_TYPE_*` (7.0 knows only HOSTNAME).
pub mod ext_type {
    pub const HOSTNAME: u16 = 0;
    pub const HUMAN_NODENAME: u16 = 1;
    pub const FORGOTTEN_NODE: u16 = 2;
    pub const SHARDID: u16 = 3;
}

/// A 40-byte node (or shard) id exactly as on the wire; all zero means "none".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(pub [u8; NAME_LEN]);

impl NodeName {
    /// The all-zero name Redis writes in `slaveof` for a master.
    pub const NULL: NodeName = NodeName([0; NAME_LEN]);

    /// A name from exactly 40 bytes (no validation of the characters).
    pub fn from_bytes(b: &[u8]) -> Option<NodeName> {
        b.try_into().ok().map(NodeName)
    }

    pub fn as_bytes(&self) -> &[u8; NAME_LEN] {
        &self.0
    }

    pub fn is_null(&self) -> bool {
        self.0 == [0; NAME_LEN]
    }

    /// Redis' `verifyClusterNodeId`: 40 bytes, each `a-z` or `0-9`.
    pub fn is_valid(&self) -> bool {
        self.0
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            f.write_str("NodeName(null)")
        } else {
            write!(f, "NodeName({:?})", String::from_utf8_lossy(&self.0))
        }
    }
}

/// A 46-byte (`NET_IP_STR_LEN`) NUL-padded IP string, kept raw: Redis copies its whole
/// `ip` buffer into gossip entries, so bytes after the NUL are not always zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpField(pub [u8; IP_LEN]);

impl IpField {
    /// All zero: in the header this means "use the TCP peer address".
    pub const EMPTY: IpField = IpField([0; IP_LEN]);

    /// NUL-padded copy of `ip`, truncated to 45 bytes so a NUL always ends it (as Redis'
    /// `strncpy(.., NET_IP_STR_LEN-1)`).
    pub fn new(ip: &[u8]) -> IpField {
        let mut f = [0u8; IP_LEN];
        let n = ip.len().min(IP_LEN - 1);
        f[..n].copy_from_slice(&ip[..n]);
        IpField(f)
    }

    /// The string up to the first NUL (all 46 bytes if there is none).
    pub fn as_bytes(&self) -> &[u8] {
        let end = memchr::memchr(0, &self.0).unwrap_or(IP_LEN);
        &self.0[..end]
    }

    pub fn is_empty(&self) -> bool {
        self.0[0] == 0
    }
}

impl fmt::Debug for IpField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpField({:?})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A 16384-bit slot bitmap: slot `s` is byte `s/8`, bit `s%8` (bit 0 = least significant).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotBitmap(pub [u8; SLOT_BYTES]);

impl SlotBitmap {
    pub const EMPTY: SlotBitmap = SlotBitmap([0; SLOT_BYTES]);

    /// Whether `slot` is set; slots ≥ 16384 are never set.
    pub fn get(&self, slot: u16) -> bool {
        self.0
            .get(usize::from(slot / 8))
            .is_some_and(|b| b & (1 << (slot % 8)) != 0)
    }

    /// Sets or clears `slot`; slots ≥ 16384 are ignored.
    pub fn set(&mut self, slot: u16, on: bool) {
        if let Some(b) = self.0.get_mut(usize::from(slot / 8)) {
            if on {
                *b |= 1 << (slot % 8);
            } else {
                *b &= !(1 << (slot % 8));
            }
        }
    }

    /// Number of slots set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }
}

impl Default for SlotBitmap {
    fn default() -> Self {
        SlotBitmap::EMPTY
    }
}

impl fmt::Debug for SlotBitmap {
    /// Slot runs (`0-5460 6000`) rather than 2048 bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlotBitmap[")?;
        let mut first = true;
        let mut s: u32 = 0;
        while s < (SLOT_BYTES * 8) as u32 {
            if !self.get(s as u16) {
                s += 1;
                continue;
            }
            let start = s;
            while s + 1 < (SLOT_BYTES * 8) as u32 && self.get((s + 1) as u16) {
                s += 1;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            if start == s {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{s}")?;
            }
            s += 1;
        }
        f.write_str("]")
    }
}

/// The fixed 2256-byte header. The signature and `ver` are constants (`SIG`, `PROTO_VER`)
/// and are not stored. `totlen`, `msg_type`, and for PING/PONG/MEET `count` and
/// `extensions`, are filled in by `decode`; `encode` derives them from the payload
/// (see `Message::sync`) and ignores the stored values.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    /// Total message length including this header.
    pub totlen: u32,
    /// Sender's client port (the TLS port if `tls-cluster yes`).
    pub port: u16,
    /// Message type code (`msg_type::*`).
    pub msg_type: u16,
    /// Number of gossip entries (PING/PONG/MEET; kept raw for other types).
    pub count: u16,
    pub current_epoch: u64,
    /// Sender's configEpoch, or its master's if the sender is a replica.
    pub config_epoch: u64,
    /// Replication offset.
    pub offset: u64,
    pub sender: NodeName,
    /// Sender's slots, or its master's if the sender is a replica.
    pub myslots: SlotBitmap,
    /// The sender's master (`slaveof`); `NodeName::NULL` = none.
    pub replicaof: NodeName,
    /// Announced IP; empty = use the peer address.
    pub myip: IpField,
    /// Number of ping extensions (PING/PONG/MEET; kept raw for other types).
    pub extensions: u16,
    /// 30 reserved bytes (`notused1`), zero as Redis writes them; kept raw.
    pub notused1: [u8; 30],
    /// 7.0: plaintext client port when `tls-cluster yes`, else 0.
    pub pport: u16,
    /// Sender's bus port.
    pub cport: u16,
    /// Sender's own node flags (`node_flag::*`, including MYSELF).
    pub flags: u16,
    /// Sender's cluster state: 0 ok, 1 fail (informational).
    pub state: u8,
    /// Message flags; `mflags[0]` bits are `mflag::*`, the others are unused.
    pub mflags: [u8; 3],
}

impl Default for Header {
    fn default() -> Self {
        Header {
            totlen: HEADER_LEN as u32,
            port: 0,
            msg_type: msg_type::PING,
            count: 0,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender: NodeName::NULL,
            myslots: SlotBitmap::EMPTY,
            replicaof: NodeName::NULL,
            myip: IpField::EMPTY,
            extensions: 0,
            notused1: [0; 30],
            pport: 0,
            cport: 0,
            flags: 0,
            state: 0,
            mflags: [0; 3],
        }
    }
}

/// One 104-byte gossip entry of a PING/PONG/MEET.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Gossip {
    pub nodename: NodeName,
    /// Seconds (ms/1000) of the sender's in-flight ping to that node; 0 = none.
    pub ping_sent: u32,
    /// Seconds (ms/1000) of the last pong the sender got from that node.
    pub pong_received: u32,
    pub ip: IpField,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
    /// Reserved, zero as Redis writes it; kept raw.
    pub notused1: u16,
}

/// A ping extension. Known types are decoded only when laid out exactly as Redis writes
/// them (`unused` 0, NUL + zero padding to 8, fixed sizes); anything else, including
/// unknown types, is kept verbatim as `Other` so re-encoding is byte-identical. Receivers
/// ignore `Other`, as 7.0 ignores unknown types.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PingExt {
    /// Type 0 (7.0+): the sender's announced hostname, without the NUL.
    Hostname(Vec<u8>),
    /// Type 1 (7.2+): the sender's human node name, without the NUL.
    HumanNodename(Vec<u8>),
    /// Type 2 (7.2+): a forgotten node and the seconds left in the sender's blacklist.
    ForgottenNode { name: NodeName, ttl: u64 },
    /// Type 3 (7.2+): the sender's shard id.
    ShardId(NodeName),
    /// Any other extension: `data` is everything after the 8-byte extension header.
    Other { ty: u16, unused: u16, data: Vec<u8> },
}

/// Payload of PING, PONG and MEET.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Ping {
    pub gossip: Vec<Gossip>,
    pub exts: Vec<PingExt>,
}

/// Payload of PUBLISH and PUBLISHSHARD.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Publish {
    pub channel: Vec<u8>,
    pub message: Vec<u8>,
}

/// Payload of UPDATE: the slots of `node` at its `config_epoch`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Update {
    pub config_epoch: u64,
    pub node: NodeName,
    pub slots: SlotBitmap,
}

/// Payload of MODULE.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Module {
    /// Sent in host (little-endian) order, unlike every other field.
    pub module_id: u64,
    pub module_type: u8,
    pub data: Vec<u8>,
}

/// The type-specific part of a message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    Ping(Ping),
    Pong(Ping),
    Meet(Ping),
    /// The node declared failed.
    Fail(NodeName),
    Publish(Publish),
    PublishShard(Publish),
    FailoverAuthRequest,
    FailoverAuthAck,
    MfStart,
    Update(Box<Update>),
    Module(Module),
}

impl Payload {
    /// The header `type` code of this payload.
    pub fn msg_type(&self) -> u16 {
        match self {
            Payload::Ping(_) => msg_type::PING,
            Payload::Pong(_) => msg_type::PONG,
            Payload::Meet(_) => msg_type::MEET,
            Payload::Fail(_) => msg_type::FAIL,
            Payload::Publish(_) => msg_type::PUBLISH,
            Payload::PublishShard(_) => msg_type::PUBLISHSHARD,
            Payload::FailoverAuthRequest => msg_type::FAILOVER_AUTH_REQUEST,
            Payload::FailoverAuthAck => msg_type::FAILOVER_AUTH_ACK,
            Payload::MfStart => msg_type::MFSTART,
            Payload::Update(_) => msg_type::UPDATE,
            Payload::Module(_) => msg_type::MODULE,
        }
    }

    /// The gossip/extension part, for PING, PONG and MEET.
    pub fn ping(&self) -> Option<&Ping> {
        match self {
            Payload::Ping(p) | Payload::Pong(p) | Payload::Meet(p) => Some(p),
            _ => None,
        }
    }
}

/// A whole cluster bus message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    pub header: Header,
    pub payload: Payload,
}

impl Message {
    /// A message whose derived header fields already match the payload.
    pub fn new(header: Header, payload: Payload) -> Message {
        let mut m = Message { header, payload };
        m.sync();
        m
    }

    /// Sets the header fields `encode` derives from the payload (`totlen`, `msg_type`,
    /// and for PING/PONG/MEET `count`, `extensions` and the EXT_DATA flag), so the struct
    /// equals what `decode(encode(self))` returns.
    pub fn sync(&mut self) {
        self.header.totlen = encoded_len(self) as u32;
        self.header.msg_type = self.payload.msg_type();
        if let Some(p) = self.payload.ping() {
            self.header.count = p.gossip.len() as u16;
            self.header.extensions = p.exts.len() as u16;
            if !p.exts.is_empty() {
                self.header.mflags[0] |= mflag::EXT_DATA;
            }
        }
    }
}

/// Why a buffer is not an acceptable message. `Display` gives a log line worded like
/// Redis' own warnings where Redis has one.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum BusError {
    /// Fewer bytes than the fixed header.
    TooShort { len: usize },
    /// The first four bytes are not `RCmb`.
    BadSignature([u8; 4]),
    /// Framing: `totlen` below the header size.
    TotlenTooSmall { totlen: u32 },
    /// Framing: `totlen` above the link's limit.
    TotlenTooLarge { totlen: u32, max: u32 },
    /// `totlen` differs from the number of bytes given to `decode`.
    TotlenMismatch { totlen: u32, len: usize },
    /// `ver` is not 1.
    BadVersion(u16),
    /// `totlen` differs from the length the type's fields imply.
    BadLength {
        msg_type: u16,
        totlen: u32,
        expected: u64,
    },
    /// An extension length that is not a multiple of 8.
    ExtPadding { msg_type: u16, ext_len: u32 },
    /// An extension (or its 8-byte header) that runs past `totlen`.
    ExtOverflow { msg_type: u16, totlen: u32 },
    /// An extension length below its own 8-byte header (i.e. 0): it could not advance.
    ExtTooShort { msg_type: u16, ext_len: u32 },
    /// `extensions` > 0 without the EXT_DATA flag: 7.0 would read them unvalidated.
    ExtWithoutFlag { msg_type: u16, extensions: u16 },
    /// A type code Redis does not know; Redis ignores such messages and keeps the link.
    UnknownType(u16),
    /// A field read past the buffer after validation (a bug; never expected).
    Truncated { at: usize },
}

impl BusError {
    /// Whether stock Redis closes the link for this error (a framing error, after which
    /// the byte stream cannot be trusted) rather than dropping the message alone.
    pub fn closes_link(&self) -> bool {
        matches!(
            self,
            BusError::BadSignature(_)
                | BusError::TotlenTooSmall { .. }
                | BusError::TotlenTooLarge { .. }
                | BusError::TooShort { .. }
                | BusError::TotlenMismatch { .. }
        )
    }
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BusError::*;
        match self {
            TooShort { len } => write!(f, "Bad message length received from Cluster bus ({len} bytes)."),
            BadSignature(sig) => write!(
                f,
                "Bad message length or signature received from Cluster bus (signature {sig:02x?})."
            ),
            TotlenTooSmall { totlen } => write!(
                f,
                "Bad message length or signature received from Cluster bus (length {totlen})."
            ),
            TotlenTooLarge { totlen, max } => write!(
                f,
                "Bad message length received from Cluster bus (length {totlen} above limit {max})."
            ),
            TotlenMismatch { totlen, len } => write!(
                f,
                "Cluster bus message declares length {totlen} but {len} bytes were given"
            ),
            BadVersion(v) => write!(f, "Received cluster bus message with unsupported version {v}"),
            BadLength { msg_type: t, totlen, expected } => write!(
                f,
                "Received invalid {} packet of length {totlen} but expected length {expected}",
                msg_type::name(*t)
            ),
            ExtPadding { msg_type: t, ext_len } => write!(
                f,
                "Received a {} packet without proper padding ({ext_len} bytes)",
                msg_type::name(*t)
            ),
            ExtOverflow { msg_type: t, totlen } => write!(
                f,
                "Received invalid {} packet with extension data that exceeds total packet length ({totlen})",
                msg_type::name(*t)
            ),
            ExtTooShort { msg_type: t, ext_len } => write!(
                f,
                "Received invalid {} packet with an extension of length {ext_len}",
                msg_type::name(*t)
            ),
            ExtWithoutFlag { msg_type: t, extensions } => write!(
                f,
                "Received invalid {} packet with {extensions} extensions but no extension data flag",
                msg_type::name(*t)
            ),
            UnknownType(t) => write!(f, "Received unknown packet type: {t}"),
            Truncated { at } => write!(f, "Cluster bus message truncated at offset {at}"),
        }
    }
}

impl std::error::Error for BusError {}

/// `EIGHT_BYTE_ALIGN`: rounds up to a multiple of 8.
pub(crate) const fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}
