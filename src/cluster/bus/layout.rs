//! Byte offsets and sizes of the cluster bus structures, pinned at compile time.
//!
//! Numbers from cluster-bus.md §2, §6 and §7 (equal to the `static_assert`s on
//! `offsetof(clusterMsg, ..)` in Redis 7.0's cluster.h). Each offset is asserted to be the
//! previous field's offset plus its size, so the table cannot drift from the encoder and
//! decoder, which write and read the fields in this order.

/// Node id length (`CLUSTER_NAMELEN`).
pub const NAME_LEN: usize = 40;
/// IP string buffer length (`NET_IP_STR_LEN`).
pub const IP_LEN: usize = 46;
/// Slot bitmap bytes (16384 / 8).
pub const SLOT_BYTES: usize = 2048;
/// The fixed header (`CLUSTERMSG_MIN_LEN`); every message is at least this long.
pub const HEADER_LEN: usize = 2256;
/// One gossip entry (`clusterMsgDataGossip`).
pub const GOSSIP_LEN: usize = 104;
/// FAIL payload: one node id.
pub const FAIL_LEN: usize = NAME_LEN;
/// UPDATE payload: configEpoch + node id + slot bitmap.
pub const UPDATE_LEN: usize = 8 + NAME_LEN + SLOT_BYTES;
/// PUBLISH/PUBLISHSHARD payload before the bulk data: two u32 lengths.
pub const PUBLISH_FIXED_LEN: usize = 8;
/// MODULE payload before the bulk data: module_id u64, len u32, type u8.
pub const MODULE_FIXED_LEN: usize = 13;
/// Ping extension header: length u32, type u16, unused u16.
pub const EXT_HEADER_LEN: usize = 8;

/// Header field offsets (from the start of the message).
pub mod hdr {
    pub const SIG: usize = 0;
    pub const TOTLEN: usize = 4;
    pub const VER: usize = 8;
    pub const PORT: usize = 10;
    pub const TYPE: usize = 12;
    pub const COUNT: usize = 14;
    pub const CURRENT_EPOCH: usize = 16;
    pub const CONFIG_EPOCH: usize = 24;
    pub const OFFSET: usize = 32;
    pub const SENDER: usize = 40;
    pub const MYSLOTS: usize = 80;
    pub const SLAVEOF: usize = 2128;
    pub const MYIP: usize = 2168;
    pub const EXTENSIONS: usize = 2214;
    pub const NOTUSED1: usize = 2216;
    pub const PPORT: usize = 2246;
    pub const CPORT: usize = 2248;
    pub const FLAGS: usize = 2250;
    pub const STATE: usize = 2252;
    pub const MFLAGS: usize = 2253;
    pub const DATA: usize = 2256;
}

/// Gossip entry field offsets (from the start of the entry).
pub mod gossip {
    pub const NODENAME: usize = 0;
    pub const PING_SENT: usize = 40;
    pub const PONG_RECEIVED: usize = 44;
    pub const IP: usize = 48;
    pub const PORT: usize = 94;
    pub const CPORT: usize = 96;
    pub const FLAGS: usize = 98;
    pub const PPORT: usize = 100;
    pub const NOTUSED1: usize = 102;
    pub const END: usize = 104;
}

/// Absolute payload offsets of the fixed-layout messages.
pub mod data {
    use super::hdr::DATA;
    pub const FAIL_NODENAME: usize = DATA;
    pub const PUBLISH_CHANNEL_LEN: usize = DATA;
    pub const PUBLISH_MESSAGE_LEN: usize = DATA + 4;
    pub const PUBLISH_BULK: usize = DATA + 8;
    pub const UPDATE_CONFIG_EPOCH: usize = DATA;
    pub const UPDATE_NODENAME: usize = DATA + 8;
    pub const UPDATE_SLOTS: usize = DATA + 48;
    pub const MODULE_ID: usize = DATA;
    pub const MODULE_LEN: usize = DATA + 8;
    pub const MODULE_TYPE: usize = DATA + 12;
    pub const MODULE_BULK: usize = DATA + 13;
}

// Each header field starts where the previous one ends.
const _: () = {
    use hdr::*;
    assert!(SIG + 4 == TOTLEN);
    assert!(TOTLEN + 4 == VER);
    assert!(VER + 2 == PORT);
    assert!(PORT + 2 == TYPE);
    assert!(TYPE + 2 == COUNT);
    assert!(COUNT + 2 == CURRENT_EPOCH);
    assert!(CURRENT_EPOCH + 8 == CONFIG_EPOCH);
    assert!(CONFIG_EPOCH + 8 == OFFSET);
    assert!(OFFSET + 8 == SENDER);
    assert!(SENDER + NAME_LEN == MYSLOTS);
    assert!(MYSLOTS + SLOT_BYTES == SLAVEOF);
    assert!(SLAVEOF + NAME_LEN == MYIP);
    assert!(MYIP + IP_LEN == EXTENSIONS);
    assert!(EXTENSIONS + 2 == NOTUSED1);
    assert!(NOTUSED1 + 30 == PPORT);
    assert!(PPORT + 2 == CPORT);
    assert!(CPORT + 2 == FLAGS);
    assert!(FLAGS + 2 == STATE);
    assert!(STATE + 1 == MFLAGS);
    assert!(MFLAGS + 3 == DATA);
    assert!(DATA == HEADER_LEN);
    // sizeof(clusterMsg): header plus the largest payload (UPDATE).
    assert!(HEADER_LEN + UPDATE_LEN == 4352);
};

// Each gossip field starts where the previous one ends.
const _: () = {
    use gossip::*;
    assert!(NODENAME + NAME_LEN == PING_SENT);
    assert!(PING_SENT + 4 == PONG_RECEIVED);
    assert!(PONG_RECEIVED + 4 == IP);
    assert!(IP + IP_LEN == PORT);
    assert!(PORT + 2 == CPORT);
    assert!(CPORT + 2 == FLAGS);
    assert!(FLAGS + 2 == PPORT);
    assert!(PPORT + 2 == NOTUSED1);
    assert!(NOTUSED1 + 2 == END);
    assert!(END == GOSSIP_LEN);
};

const _: () = {
    use data::*;
    assert!(PUBLISH_BULK == HEADER_LEN + PUBLISH_FIXED_LEN);
    assert!(UPDATE_SLOTS + SLOT_BYTES == HEADER_LEN + UPDATE_LEN);
    assert!(MODULE_BULK == HEADER_LEN + MODULE_FIXED_LEN);
    assert!(FAIL_NODENAME + FAIL_LEN == 2296);
};
