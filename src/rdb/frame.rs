//! Pulls an RDB file's bytes from a stream: exactly the bytes asked for (so whatever follows
//! the file, such as an AOF tail, stays unread), with the running CRC-64 and offset, and
//! frames one serialized object (finds where it ends without decoding it) so the object
//! codec can then decode it from a slice.
//!
//! Framing walks the same layout as `read_object` but only looks at lengths. Every length
//! read from the file is just a number of bytes still to pull: the item buffer grows only as
//! bytes arrive, so a lying length ends in a short read, never in a huge allocation.

use std::io::{self, BufRead};

use super::types;
use crate::util::crc64::Crc64;

/// Why pulling bytes stopped.
#[derive(Debug)]
pub enum PullError {
    /// The stream ended first (Redis: a short read).
    Eof,
    Io(io::Error),
    /// A byte that no encoding allows, with Redis's text for it.
    Corrupt(String),
}

/// The item buffer is kept between items; after a value bigger than this it is given back.
const KEEP_CAPACITY: usize = 1 << 20;

/// A byte stream with its running checksum; bytes of the item being framed collect in `item`.
pub struct Source<R> {
    src: R,
    crc: Crc64,
    offset: u64,
    /// The bytes pulled since the last `start_item`.
    pub item: Vec<u8>,
}

impl<R: BufRead> Source<R> {
    pub fn new(src: R) -> Source<R> {
        Source {
            src,
            crc: Crc64::new(),
            offset: 0,
            item: Vec::new(),
        }
    }

    /// Bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// CRC-64 of every byte consumed so far.
    pub fn crc(&self) -> u64 {
        self.crc.value()
    }

    /// Starts collecting a new item.
    pub fn start_item(&mut self) {
        if self.item.capacity() > KEEP_CAPACITY {
            self.item = Vec::new();
        } else {
            self.item.clear();
        }
    }

    /// Appends exactly `n` more bytes of the stream to `item`.
    pub fn take(&mut self, n: u64) -> Result<(), PullError> {
        let mut left = n;
        while left > 0 {
            let avail = match self.src.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PullError::Io(e)),
            };
            if avail.is_empty() {
                return Err(PullError::Eof);
            }
            let k = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.crc.update(&avail[..k]);
            self.item.extend_from_slice(&avail[..k]);
            self.src.consume(k);
            self.offset += k as u64;
            left -= k as u64;
        }
        Ok(())
    }

    /// The last `N` bytes of `item` (just taken).
    fn tail<const N: usize>(&self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.item[self.item.len() - N..]);
        a
    }

    pub fn u8(&mut self) -> Result<u8, PullError> {
        self.take(1)?;
        Ok(self.tail::<1>()[0])
    }

    /// `N` raw bytes.
    pub fn bytes<const N: usize>(&mut self) -> Result<[u8; N], PullError> {
        self.take(N as u64)?;
        Ok(self.tail())
    }

    /// A length, or a special string encoding's number with `true` (`rdbLoadLenByRef`).
    fn len_or_enc(&mut self) -> Result<(u64, bool), PullError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false),
            3 => ((b & 0x3f) as u64, true),
            _ => match b {
                0x80 => (u32::from_be_bytes(self.bytes()?) as u64, false),
                0x81 => (u64::from_be_bytes(self.bytes()?), false),
                _ => {
                    return Err(PullError::Corrupt(format!(
                        "Unknown length encoding {} in rdbLoadLen()",
                        b >> 6
                    )))
                }
            },
        })
    }

    /// A length (`rdbLoadLen`: a special-encoding byte reads as its low 6 bits).
    pub fn length(&mut self) -> Result<u64, PullError> {
        Ok(self.len_or_enc()?.0)
    }

    /// One string in any of its forms (integer, LZF, raw).
    pub fn string(&mut self) -> Result<(), PullError> {
        let (n, enc) = self.len_or_enc()?;
        if !enc {
            return self.take(n);
        }
        match n {
            0 => self.take(1),
            1 => self.take(2),
            2 => self.take(4),
            3 => {
                let clen = self.length()?;
                self.length()?;
                self.take(clen)
            }
            _ => Err(PullError::Corrupt(format!(
                "Unknown RDB string encoding type {n}"
            ))),
        }
    }

    /// `n` items, each framed by `one`. Each item takes at least one byte, so a lying count
    /// runs into the end of the stream.
    fn repeat(
        &mut self,
        n: u64,
        mut one: impl FnMut(&mut Self) -> Result<(), PullError>,
    ) -> Result<(), PullError> {
        for _ in 0..n {
            one(self)?;
        }
        Ok(())
    }

    /// The serialized object of type `t` (type byte already read). `false` when `t` is no
    /// value type the object codec reads; nothing is consumed then.
    pub fn object(&mut self, t: u8) -> Result<bool, PullError> {
        match t {
            types::STRING
            | types::LIST_ZIPLIST
            | types::SET_INTSET
            | types::ZSET_ZIPLIST
            | types::HASH_ZIPLIST
            | types::HASH_LISTPACK
            | types::ZSET_LISTPACK
            | types::SET_LISTPACK => self.string()?,
            types::LIST | types::SET | types::LIST_QUICKLIST => {
                let n = self.length()?;
                self.repeat(n, Self::string)?;
            }
            types::HASH => {
                let n = self.length()?;
                self.repeat(n, |s| {
                    s.string()?;
                    s.string()
                })?;
            }
            types::ZSET => {
                let n = self.length()?;
                self.repeat(n, |s| {
                    s.string()?;
                    // A legacy string double: 253..=255 are NaN/+inf/-inf with no payload.
                    match s.u8()? {
                        b @ 0..=252 => s.take(b as u64),
                        _ => Ok(()),
                    }
                })?;
            }
            types::ZSET_2 => {
                let n = self.length()?;
                self.repeat(n, |s| {
                    s.string()?;
                    s.take(8)
                })?;
            }
            types::LIST_QUICKLIST_2 => {
                let n = self.length()?;
                self.repeat(n, |s| {
                    s.length()?;
                    s.string()
                })?;
            }
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
                self.stream(t)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A stream of type 15, 19 or 21 (see `stream.rs` for the layout).
    fn stream(&mut self, t: u8) -> Result<(), PullError> {
        let v2 = t != types::STREAM_LISTPACKS;
        let nodes = self.length()?;
        self.repeat(nodes, |s| {
            s.string()?;
            s.string()
        })?;
        // Length and last id; then first id, max deleted id and entries added (v2).
        let counters = if v2 { 8 } else { 3 };
        self.repeat(counters, |s| s.length().map(drop))?;
        let groups = self.length()?;
        self.repeat(groups, |s| {
            s.string()?;
            s.length()?;
            s.length()?;
            if v2 {
                s.length()?;
            }
            let pel = s.length()?;
            s.repeat(pel, |s| {
                s.take(16 + 8)?;
                s.length().map(drop)
            })?;
            let consumers = s.length()?;
            s.repeat(consumers, |s| {
                s.string()?;
                // Seen time, and 7.2's active time.
                s.take(if t == types::STREAM_LISTPACKS_3 {
                    16
                } else {
                    8
                })?;
                let owned = s.length()?;
                s.repeat(owned, |s| s.take(16))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{dump_payload, hex};

    fn framed(bytes: &[u8], t: u8) -> Result<usize, PullError> {
        let mut s = Source::new(bytes);
        s.start_item();
        assert!(s.object(t)?);
        Ok(s.item.len())
    }

    #[test]
    fn frames_end_where_the_codec_ends() {
        // DUMP payloads from Redis 7.0 (the object, then 10 trailer bytes).
        for (t, payload) in [
            (0, "00 05 68656c6c6f 0a00 6372df766534200a"),
            (11, "0b 0e 02000000 03000000 0100 0200 0300 0a00 a5025ce26d6e4d1b"),
            (17, "11 14 14000000 0400 816102 83312e3504 816202 0201 ff 0a00 fa02b425af188763"),
            (18, "12 01 02 19 19000000 0500 816102 0101 83666f6f04 df3802 f2404b4c04 ff 0a00 56e3a2b49a068e19"),
            (5, "05 02 0161 000000000000f83f 0162 00000000000000c0 0a00 0000000000000000"),
            (4, "04 01 0166 0176 0a00 0000000000000000"),
        ] {
            let p = hex(payload);
            assert_eq!(p[0], t);
            assert_eq!(framed(&p[1..], t).unwrap(), p.len() - 11, "type {t}");
        }
    }

    #[test]
    fn frames_streams_with_groups() {
        use crate::types::stream::{Group, Stream, StreamId, StreamLimits};
        let mut s = Stream::new();
        for i in 1..=3 {
            let pairs: [&[u8]; 2] = [b"f", b"v"];
            s.append(
                StreamId::new(i, 1),
                pairs.into_iter(),
                StreamLimits::default(),
            );
        }
        let mut g = Group::new(StreamId::new(2, 1), 2);
        g.create_consumer(b"idle", 5);
        g.create_consumer(b"c", 5);
        g.deliver(StreamId::new(1, 1), b"c", 6);
        g.deliver(StreamId::new(2, 1), b"c", 7);
        s.groups.insert(b"g".to_vec().into(), g);
        let p = dump_payload(&crate::types::Value::Stream(Box::new(s)));
        assert_eq!(framed(&p[1..], p[0]).unwrap(), p.len() - 11);
    }

    #[test]
    fn lying_lengths_are_short_reads_not_allocations() {
        // A 64-bit string length of 2^62 with 3 bytes behind it.
        let b = [0x81, 0x40, 0, 0, 0, 0, 0, 0, 0, b'a', b'b', b'c'];
        assert!(matches!(framed(&b, 0), Err(PullError::Eof)));
        // A set claiming 2^32-1 members.
        let b = [0x80, 0xff, 0xff, 0xff, 0xff, 0x01, b'x'];
        assert!(matches!(framed(&b, 2), Err(PullError::Eof)));
        assert!(matches!(framed(&[0x82], 0), Err(PullError::Corrupt(_))));
        assert!(matches!(framed(&[0xc5], 0), Err(PullError::Corrupt(_))));
        assert!(!Source::new(&[][..]).object(42).unwrap());
    }

    #[test]
    fn takes_exactly_and_checksums_what_it_took() {
        let data = b"0123456789tail";
        let mut r: &[u8] = data;
        let mut s = Source::new(&mut r);
        s.start_item();
        s.take(10).unwrap();
        assert_eq!(s.offset(), 10);
        assert_eq!(s.crc(), crate::util::crc64::crc64(b"0123456789"));
        drop(s);
        assert_eq!(r, b"tail");
    }
}
