//! Redis's listpack blob format (the bytes inside HASH/ZSET_LISTPACK, quicklist nodes and
//! stream nodes): a builder encoding entries exactly as `lpAppend` does, and a parser that
//! validates the whole blob first, as `lpValidateIntegrity` does in deep mode.

use super::RdbError;
use crate::util::num::parse_i64_strict;

/// Header: u32 total bytes, u16 entry count.
pub const HEADER: usize = 6;
const EOF: u8 = 0xFF;
/// Count value meaning "too many to say; walk the entries".
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One listpack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LpEntry<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl LpEntry<'_> {
    /// Calls `f` with the entry as bytes (integers formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            LpEntry::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
            LpEntry::Bytes(b) => f(b),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }

    /// The entry as an integer: integer entries, or strings that are canonical integers.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            LpEntry::Int(v) => Some(*v),
            LpEntry::Bytes(b) => parse_i64_strict(b),
        }
    }
}

/// Size of the back-length that follows an entry of `l` encoded bytes (`lpEncodeBacklen`).
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Builds a listpack blob entry by entry.
#[derive(Debug, Clone)]
pub struct LpWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for LpWriter {
    fn default() -> Self {
        LpWriter::new()
    }
}

impl LpWriter {
    pub fn new() -> LpWriter {
        LpWriter {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the finished blob will take.
    pub fn byte_len(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends a string, stored as an integer when it is a canonical one (as `lpAppend`).
    pub fn push_bytes(&mut self, s: &[u8]) {
        if let Some(v) = parse_i64_strict(s) {
            return self.push_int(v);
        }
        let start = self.buf.len();
        let n = s.len();
        if n < 64 {
            self.buf.push(0x80 | n as u8);
        } else if n < 4096 {
            self.buf.push(0xE0 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.finish_entry(start);
    }

    /// Appends an integer in the smallest encoding that holds it.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.finish_entry(start);
    }

    pub fn push(&mut self, e: LpEntry<'_>) {
        match e {
            LpEntry::Int(v) => self.push_int(v),
            LpEntry::Bytes(b) => self.push_bytes(b),
        }
    }

    /// Writes the back-length of the entry that began at `start`.
    fn finish_entry(&mut self, start: usize) {
        let l = self.buf.len() - start;
        let n = backlen_size(l);
        // Most significant 7 bits first; every byte but the first has the 0x80 bit set.
        for i in (0..n).rev() {
            let b = ((l >> (7 * i)) & 0x7f) as u8;
            self.buf.push(if i == n - 1 { b } else { b | 0x80 });
        }
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count)
            .ok()
            .filter(|&c| c != COUNT_UNKNOWN)
            .unwrap_or(COUNT_UNKNOWN);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Decodes the entry at `p` (which must not be the terminator): the entry and its encoded
/// size without back-length. Fails when the encoding is invalid or runs past `end`.
fn decode_at(blob: &[u8], p: usize, end: usize) -> Result<(LpEntry<'_>, usize), RdbError> {
    let bad = RdbError::BadFormat;
    let b0 = blob[p];
    let need = |n: usize| if p + n <= end { Ok(()) } else { Err(bad) };
    let byte = |i: usize| blob[p + i] as u64;
    let (entry, size) = match b0 {
        0x00..=0x7F => (LpEntry::Int(b0 as i64), 1),
        0x80..=0xBF => {
            let n = (b0 & 0x3f) as usize;
            need(1 + n)?;
            (LpEntry::Bytes(&blob[p + 1..p + 1 + n]), 1 + n)
        }
        0xC0..=0xDF => {
            need(2)?;
            let u = (((b0 & 0x1f) as i64) << 8) | byte(1) as i64;
            (LpEntry::Int(if u >= 4096 { u - 8192 } else { u }), 2)
        }
        0xE0..=0xEF => {
            need(2)?;
            let n = (((b0 & 0x0f) as usize) << 8) | byte(1) as usize;
            need(2 + n)?;
            (LpEntry::Bytes(&blob[p + 2..p + 2 + n]), 2 + n)
        }
        0xF0 => {
            need(5)?;
            let n = u32::from_le_bytes([blob[p + 1], blob[p + 2], blob[p + 3], blob[p + 4]]);
            let n = n as usize;
            if n > end - p - 5 {
                return Err(bad);
            }
            (LpEntry::Bytes(&blob[p + 5..p + 5 + n]), 5 + n)
        }
        0xF1 => {
            need(3)?;
            (
                LpEntry::Int(i16::from_le_bytes([blob[p + 1], blob[p + 2]]) as i64),
                3,
            )
        }
        0xF2 => {
            need(4)?;
            let u = byte(1) | byte(2) << 8 | byte(3) << 16;
            // Sign-extend from 24 bits.
            (LpEntry::Int(((u << 40) as i64) >> 40), 4)
        }
        0xF3 => {
            need(5)?;
            let v = i32::from_le_bytes([blob[p + 1], blob[p + 2], blob[p + 3], blob[p + 4]]);
            (LpEntry::Int(v as i64), 5)
        }
        0xF4 => {
            need(9)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&blob[p + 1..p + 9]);
            (LpEntry::Int(i64::from_le_bytes(a)), 9)
        }
        _ => return Err(bad),
    };
    Ok((entry, size))
}

/// Reads the back-length that ends just before `end`, walking left as `lpDecodeBacklen`
/// does (at most 5 bytes; `None` past that).
fn decode_backlen(blob: &[u8], end: usize) -> Option<usize> {
    let mut v = 0usize;
    let mut i = end;
    for k in 0..5 {
        i = i.checked_sub(1)?;
        let b = blob[i];
        v |= ((b & 0x7f) as usize) << (7 * k);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Validates a whole listpack blob and returns its entries. Checks the header's byte count
/// against the blob, every entry's encoding, bounds and back-length, the terminator's
/// position and the header's entry count.
pub fn entries(blob: &[u8]) -> Result<Vec<LpEntry<'_>>, RdbError> {
    let bad = RdbError::BadFormat;
    if blob.len() < HEADER + 1 {
        return Err(bad);
    }
    let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    if total != blob.len() || blob[total - 1] != EOF {
        return Err(bad);
    }
    let count = u16::from_le_bytes([blob[4], blob[5]]);
    let last = total - 1; // the terminator
                          // Every entry takes at least 2 bytes: never reserve more than that allows.
    let mut out = Vec::with_capacity((count as usize).min((last - HEADER) / 2));
    let mut p = HEADER;
    while p < last {
        let (e, size) = decode_at(blob, p, last)?;
        let bl = backlen_size(size);
        if size + bl > last - p {
            return Err(bad);
        }
        let next = p + size + bl;
        // The back-length, read right to left, must say `size`.
        if decode_backlen(blob, next) != Some(size) {
            return Err(bad);
        }
        out.push(e);
        p = next;
    }
    if count != COUNT_UNKNOWN && count as usize != out.len() {
        return Err(bad);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rdb::hex;

    #[test]
    fn builds_redis_bytes() {
        // The spec's verified 7.0 `RPUSH l1 a 1 foo -200 5000000` node.
        let mut w = LpWriter::new();
        for e in ["a", "1", "foo", "-200", "5000000"] {
            w.push_bytes(e.as_bytes());
        }
        let blob = w.finish();
        assert_eq!(
            blob,
            hex("19000000 0500 816102 0101 83666f6f04 df3802 f2404b4c04 ff")
        );
        assert_eq!(
            entries(&blob).unwrap(),
            vec![
                LpEntry::Bytes(b"a"),
                LpEntry::Int(1),
                LpEntry::Bytes(b"foo"),
                LpEntry::Int(-200),
                LpEntry::Int(5_000_000),
            ]
        );
        // ZADD z1 1.5 a 2 b
        let mut w = LpWriter::new();
        for e in ["a", "1.5", "b", "2"] {
            w.push_bytes(e.as_bytes());
        }
        assert_eq!(
            w.finish(),
            hex("14000000 0400 816102 83312e3504 816202 0201 ff")
        );
    }

    #[test]
    fn every_encoding_round_trips() {
        let ints = [
            0i64,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            i16::MIN as i64,
            i16::MAX as i64 + 1,
            -(1 << 23),
            (1 << 23) - 1,
            1 << 23,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MIN,
            i64::MAX,
        ];
        let strs: Vec<Vec<u8>> = [0usize, 1, 63, 64, 127, 128, 4095, 4096, 20000]
            .iter()
            .map(|&n| vec![b'q'; n])
            .collect();
        let mut w = LpWriter::new();
        for &v in &ints {
            w.push_int(v);
        }
        for s in &strs {
            w.push_bytes(s);
        }
        w.push_bytes(b"007");
        w.push_bytes(b"-0");
        let blob = w.finish();
        let got = entries(&blob).unwrap();
        let mut want: Vec<LpEntry> = ints.iter().map(|&v| LpEntry::Int(v)).collect();
        want.extend(strs.iter().map(|s| LpEntry::Bytes(s)));
        want.push(LpEntry::Bytes(b"007"));
        want.push(LpEntry::Bytes(b"-0"));
        assert_eq!(got, want);
    }

    #[test]
    fn backlen_sizes_follow_redis() {
        assert_eq!(backlen_size(127), 1);
        assert_eq!(backlen_size(128), 2);
        assert_eq!(backlen_size(16382), 2);
        assert_eq!(backlen_size(16383), 3);
        // An entry of 200 bytes ends with `01 c8`.
        let mut w = LpWriter::new();
        w.push_bytes(&[b'x'; 198]);
        let blob = w.finish();
        assert_eq!(&blob[blob.len() - 3..], &[0x01, 0xc8, 0xff]);
        assert_eq!(entries(&blob).unwrap().len(), 1);
    }

    #[test]
    fn many_entries_use_the_unknown_count() {
        let mut w = LpWriter::new();
        for i in 0..70_000 {
            w.push_int(i % 100);
        }
        let blob = w.finish();
        assert_eq!(&blob[4..6], &[0xff, 0xff]);
        assert_eq!(entries(&blob).unwrap().len(), 70_000);
    }

    #[test]
    fn rejects_every_corruption() {
        let mut w = LpWriter::new();
        for e in ["a", "1", "foo", "-200", "5000000"] {
            w.push_bytes(e.as_bytes());
        }
        let good = w.finish();
        // Every truncation.
        for n in 0..good.len() {
            assert!(entries(&good[..n]).is_err(), "truncated to {n}");
        }
        // Wrong count, wrong size, missing terminator, bad back-length, invalid encoding.
        let mut b = good.clone();
        b[4] = 4;
        assert!(entries(&b).is_err());
        let mut b = good.clone();
        b.insert(6, 0x00);
        assert!(entries(&b).is_err());
        let mut b = good.clone();
        *b.last_mut().unwrap() = 0;
        assert!(entries(&b).is_err());
        let mut b = good.clone();
        b[8] = 3; // "a"'s backlen
        assert!(entries(&b).is_err());
        let mut b = good.clone();
        b[6] = 0xF5;
        assert!(entries(&b).is_err());
        // A string length reaching past the end.
        let mut b = good.clone();
        b[6] = 0xBF;
        assert!(entries(&b).is_err());
        let mut b = good.clone();
        b[6] = 0xF0;
        assert!(entries(&b).is_err());
        // Every single-bit flip is either rejected or still a consistent listpack.
        for i in 0..good.len() * 8 {
            let mut b = good.clone();
            b[i / 8] ^= 1 << (i % 8);
            if let Ok(es) = entries(&b) {
                let mut w = LpWriter::new();
                for e in &es {
                    w.push(*e);
                }
                assert_eq!(entries(&w.finish()).unwrap(), es);
            }
        }
        // An empty listpack is well formed (callers decide whether empty is allowed).
        assert_eq!(entries(&LpWriter::new().finish()).unwrap(), vec![]);
    }
}
