//! Framing of a link's read buffer: is a whole message there yet?

use super::{layout::hdr, BusError, HEADER_LEN, SIG};

/// Default cap on `totlen`. Redis has none (its buffer grows as bytes arrive); the largest
/// legitimate message is a PUBLISH whose channel and message are each bounded by
/// `proto-max-bulk-len` (512 MB by default), so 1 GiB plus the header admits every one
/// while refusing absurd lengths up front.
pub const DEFAULT_MAX_MSG_LEN: u32 = (1 << 30) + HEADER_LEN as u32 + 8;

/// What `frame` found at the start of the buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Frame {
    /// Not enough bytes yet (fewer than 8, or fewer than `totlen`).
    Incomplete,
    /// The first `n` bytes (`n == totlen`) are one message; pass them to `decode`.
    Complete(usize),
    /// Bad signature or impossible `totlen`: log and close the link, as Redis does.
    Error(BusError),
}

/// Looks at the bytes received so far on a link. Like Redis' read handler it needs 8
/// bytes (signature + `totlen`), rejects a wrong signature or `totlen` below the header
/// size, and additionally rejects `totlen > max_len` (use `DEFAULT_MAX_MSG_LEN`). The
/// caller grows its buffer only as bytes arrive, never by `totlen` up front.
pub fn frame(buf: &[u8], max_len: u32) -> Frame {
    let (Some(sig), Some(len)) = (buf.get(hdr::SIG..4), buf.get(hdr::TOTLEN..8)) else {
        return Frame::Incomplete;
    };
    let (Ok(sig), Ok(len)) = (<[u8; 4]>::try_from(sig), <[u8; 4]>::try_from(len)) else {
        return Frame::Incomplete;
    };
    if sig != SIG {
        return Frame::Error(BusError::BadSignature(sig));
    }
    let totlen = u32::from_be_bytes(len);
    if (totlen as usize) < HEADER_LEN {
        return Frame::Error(BusError::TotlenTooSmall { totlen });
    }
    if totlen > max_len {
        return Frame::Error(BusError::TotlenTooLarge {
            totlen,
            max: max_len,
        });
    }
    if buf.len() >= totlen as usize {
        Frame::Complete(totlen as usize)
    } else {
        Frame::Incomplete
    }
}
