//! Bytes → message: validate the whole buffer as `clusterProcessPacket` does, then parse.
//!
//! Every read is bounds-checked (`Reader`), lengths are summed in u64 so a peer cannot
//! wrap them, and nothing is allocated before the buffer is known to hold it.

use super::{
    align8, ext_type, mflag, msg_type, BusError, Gossip, Header, IpField, Message, Module,
    NodeName, Payload, Ping, PingExt, Publish, SlotBitmap, Update, EXT_HEADER_LEN, FAIL_LEN,
    GOSSIP_LEN, HEADER_LEN, MODULE_FIXED_LEN, NAME_LEN, PROTO_VER, PUBLISH_FIXED_LEN, SIG,
    UPDATE_LEN,
};

/// Decodes one complete message: `buf` must be exactly the `totlen` bytes `frame` reported.
///
/// Checks, in Redis' order: at least a header, signature, `totlen == buf.len()`,
/// `ver == 1`, then the length the type implies (gossip count × 104 plus every extension,
/// walked with bounds and padding checks; publish and module lengths). Unknown types give
/// `UnknownType` (Redis drops those with a warning and keeps the link).
pub fn decode(buf: &[u8]) -> Result<Message, BusError> {
    if buf.len() < HEADER_LEN {
        return Err(BusError::TooShort { len: buf.len() });
    }
    let mut r = Reader::new(buf);
    let (header, ver) = read_header(&mut r)?;
    if header.totlen as usize != buf.len() {
        return Err(BusError::TotlenMismatch {
            totlen: header.totlen,
            len: buf.len(),
        });
    }
    if ver != PROTO_VER {
        return Err(BusError::BadVersion(ver));
    }
    check_length(&header, buf)?;
    let payload = read_payload(&header, &mut r)?;
    Ok(Message { header, payload })
}

/// Bounds-checked big-endian reader over the message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BusError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or(BusError::Truncated { at: self.pos })?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BusError> {
        let at = self.pos;
        self.take(N)?
            .try_into()
            .map_err(|_| BusError::Truncated { at })
    }

    fn u8(&mut self) -> Result<u8, BusError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, BusError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, BusError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, BusError> {
        self.array().map(u64::from_be_bytes)
    }

    fn name(&mut self) -> Result<NodeName, BusError> {
        self.array().map(NodeName)
    }
}

/// Reads the 2256-byte header, checking the signature; returns it with `ver`.
fn read_header(r: &mut Reader) -> Result<(Header, u16), BusError> {
    let sig: [u8; 4] = r.array()?;
    if sig != SIG {
        return Err(BusError::BadSignature(sig));
    }
    let totlen = r.u32()?;
    let ver = r.u16()?;
    let header = Header {
        totlen,
        port: r.u16()?,
        msg_type: r.u16()?,
        count: r.u16()?,
        current_epoch: r.u64()?,
        config_epoch: r.u64()?,
        offset: r.u64()?,
        sender: r.name()?,
        myslots: SlotBitmap(r.array()?),
        replicaof: r.name()?,
        myip: IpField(r.array()?),
        extensions: r.u16()?,
        notused1: r.array()?,
        pport: r.u16()?,
        cport: r.u16()?,
        flags: r.u16()?,
        state: r.u8()?,
        mflags: r.array()?,
    };
    Ok((header, ver))
}

/// A big-endian u32 at `off`, if the buffer holds it.
fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

/// The per-type length check of `clusterProcessPacket` (`totlen == explen`).
fn check_length(h: &Header, buf: &[u8]) -> Result<(), BusError> {
    let t = h.msg_type;
    let base = HEADER_LEN as u64;
    let expected = match t {
        msg_type::PING | msg_type::PONG | msg_type::MEET => ping_len(h, buf)?,
        msg_type::FAIL => base + FAIL_LEN as u64,
        msg_type::PUBLISH | msg_type::PUBLISHSHARD => {
            let fixed = base + PUBLISH_FIXED_LEN as u64;
            match (u32_at(buf, HEADER_LEN), u32_at(buf, HEADER_LEN + 4)) {
                (Some(c), Some(m)) => fixed + u64::from(c) + u64::from(m),
                _ => fixed,
            }
        }
        msg_type::FAILOVER_AUTH_REQUEST | msg_type::FAILOVER_AUTH_ACK | msg_type::MFSTART => base,
        msg_type::UPDATE => base + UPDATE_LEN as u64,
        msg_type::MODULE => {
            let fixed = base + MODULE_FIXED_LEN as u64;
            fixed + u32_at(buf, HEADER_LEN + 8).map_or(0, u64::from)
        }
        _ => return Err(BusError::UnknownType(t)),
    };
    if u64::from(h.totlen) != expected {
        return Err(BusError::BadLength {
            msg_type: t,
            totlen: h.totlen,
            expected,
        });
    }
    Ok(())
}

/// Expected length of a PING/PONG/MEET: header, gossip, then each extension (EXT_DATA).
fn ping_len(h: &Header, buf: &[u8]) -> Result<u64, BusError> {
    let t = h.msg_type;
    let totlen = u64::from(h.totlen);
    let mut explen = HEADER_LEN as u64 + GOSSIP_LEN as u64 * u64::from(h.count);
    if h.mflags[0] & mflag::EXT_DATA == 0 {
        // 7.0 would walk `extensions` entries without any check; refuse instead.
        if h.extensions != 0 {
            return Err(BusError::ExtWithoutFlag {
                msg_type: t,
                extensions: h.extensions,
            });
        }
        return Ok(explen);
    }
    for _ in 0..h.extensions {
        let overflow = BusError::ExtOverflow {
            msg_type: t,
            totlen: h.totlen,
        };
        if explen > totlen {
            // The gossip array alone overruns the message.
            return Ok(explen);
        }
        let ext_len = usize::try_from(explen)
            .ok()
            .and_then(|at| u32_at(buf, at))
            .ok_or(overflow.clone())?;
        if ext_len % 8 != 0 {
            return Err(BusError::ExtPadding {
                msg_type: t,
                ext_len,
            });
        }
        if totlen - explen < u64::from(ext_len) {
            return Err(overflow);
        }
        if (ext_len as usize) < EXT_HEADER_LEN {
            return Err(BusError::ExtTooShort {
                msg_type: t,
                ext_len,
            });
        }
        explen += u64::from(ext_len);
    }
    Ok(explen)
}

/// Parses the payload; the lengths were validated by `check_length`.
fn read_payload(h: &Header, r: &mut Reader) -> Result<Payload, BusError> {
    Ok(match h.msg_type {
        msg_type::PING => Payload::Ping(read_ping(h, r)?),
        msg_type::PONG => Payload::Pong(read_ping(h, r)?),
        msg_type::MEET => Payload::Meet(read_ping(h, r)?),
        msg_type::FAIL => Payload::Fail(r.name()?),
        msg_type::PUBLISH => Payload::Publish(read_publish(r)?),
        msg_type::PUBLISHSHARD => Payload::PublishShard(read_publish(r)?),
        msg_type::FAILOVER_AUTH_REQUEST => Payload::FailoverAuthRequest,
        msg_type::FAILOVER_AUTH_ACK => Payload::FailoverAuthAck,
        msg_type::MFSTART => Payload::MfStart,
        msg_type::UPDATE => Payload::Update(Box::new(Update {
            config_epoch: r.u64()?,
            node: r.name()?,
            slots: SlotBitmap(r.array()?),
        })),
        msg_type::MODULE => Payload::Module(read_module(r)?),
        t => return Err(BusError::UnknownType(t)),
    })
}

fn read_ping(h: &Header, r: &mut Reader) -> Result<Ping, BusError> {
    let count = usize::from(h.count);
    let mut gossip = Vec::with_capacity(count);
    for _ in 0..count {
        gossip.push(read_gossip(r)?);
    }
    // Without EXT_DATA `check_length` guaranteed `extensions == 0`.
    let mut exts = Vec::with_capacity(usize::from(h.extensions));
    for _ in 0..h.extensions {
        exts.push(read_ext(r)?);
    }
    Ok(Ping { gossip, exts })
}

fn read_gossip(r: &mut Reader) -> Result<Gossip, BusError> {
    Ok(Gossip {
        nodename: r.name()?,
        ping_sent: r.u32()?,
        pong_received: r.u32()?,
        ip: IpField(r.array()?),
        port: r.u16()?,
        cport: r.u16()?,
        flags: r.u16()?,
        pport: r.u16()?,
        notused1: r.u16()?,
    })
}

fn read_ext(r: &mut Reader) -> Result<PingExt, BusError> {
    let len = r.u32()? as usize;
    let ty = r.u16()?;
    let unused = r.u16()?;
    let data = r.take(len.saturating_sub(EXT_HEADER_LEN))?;
    let typed = if unused == 0 {
        typed_ext(ty, data)
    } else {
        None
    };
    Ok(typed.unwrap_or_else(|| PingExt::Other {
        ty,
        unused,
        data: data.to_vec(),
    }))
}

/// A known extension laid out exactly as Redis writes it, or None.
fn typed_ext(ty: u16, data: &[u8]) -> Option<PingExt> {
    match ty {
        ext_type::HOSTNAME => c_string(data).map(PingExt::Hostname),
        ext_type::HUMAN_NODENAME => c_string(data).map(PingExt::HumanNodename),
        ext_type::FORGOTTEN_NODE if data.len() == NAME_LEN + 8 => {
            let (name, ttl) = data.split_at(NAME_LEN);
            Some(PingExt::ForgottenNode {
                name: NodeName::from_bytes(name)?,
                ttl: u64::from_be_bytes(ttl.try_into().ok()?),
            })
        }
        ext_type::SHARDID => NodeName::from_bytes(data).map(PingExt::ShardId),
        _ => None,
    }
}

/// `s` NUL, then zero padding to exactly the 8-byte boundary: returns `s`.
fn c_string(data: &[u8]) -> Option<Vec<u8>> {
    let nul = memchr::memchr(0, data)?;
    let canonical = align8(nul + 1) == data.len() && data[nul..].iter().all(|&b| b == 0);
    canonical.then(|| data[..nul].to_vec())
}

fn read_publish(r: &mut Reader) -> Result<Publish, BusError> {
    let channel_len = r.u32()? as usize;
    let message_len = r.u32()? as usize;
    Ok(Publish {
        channel: r.take(channel_len)?.to_vec(),
        message: r.take(message_len)?.to_vec(),
    })
}

fn read_module(r: &mut Reader) -> Result<Module, BusError> {
    let module_id = r.array().map(u64::from_le_bytes)?;
    let len = r.u32()? as usize;
    let module_type = r.u8()?;
    Ok(Module {
        module_id,
        module_type,
        data: r.take(len)?.to_vec(),
    })
}
