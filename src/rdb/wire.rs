//! RDB primitives: length encoding, strings (integer / LZF / raw forms), binary doubles and
//! millisecond times, written and read exactly as Redis's `rdb.c` does.

use std::borrow::Cow;

use super::{lzf, RdbError};
use crate::util::num::parse_i64_strict;

/// First-byte tags of the special string encodings (`RDB_ENCVAL` forms).
const ENC_INT8: u8 = 0xC0;
const ENC_INT16: u8 = 0xC1;
const ENC_INT32: u8 = 0xC2;
const ENC_LZF: u8 = 0xC3;

/// An LZF stream expands at most 264 output bytes per 3 input bytes; a claimed length beyond
/// that bound cannot decompress, so it is refused before anything is allocated.
const LZF_MAX_RATIO: u64 = 90;

/// Serializes RDB primitives into a growing buffer.
#[derive(Default, Debug, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
    /// `rdbcompression no`: strings are never LZF-compressed (integers still are encoded).
    no_compression: bool,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// A writer for `rdbcompression yes` (`true`, the default) or `no`.
    pub fn with_compression(compress: bool) -> Writer {
        Writer {
            buf: Vec::new(),
            no_compression: !compress,
        }
    }

    pub fn compression(&self) -> bool {
        !self.no_compression
    }

    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// A length in the smallest form (6-bit, 14-bit, 32-bit BE, 64-bit BE).
    pub fn len(&mut self, n: u64) {
        if n < 64 {
            self.buf.push(n as u8);
        } else if n < 16384 {
            self.buf.push(0x40 | (n >> 8) as u8);
            self.buf.push(n as u8);
        } else if n <= u32::MAX as u64 {
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            self.buf.push(0x81);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
    }

    /// A string as `rdbSaveRawString` writes it: an INT8/16/32 form for a short canonical
    /// integer, LZF (unless compression is off) when longer than 20 bytes and it saves at
    /// least 4 bytes, else length + bytes.
    pub fn string(&mut self, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(v) = parse_i64_strict(s) {
                if self.try_int(v) {
                    return;
                }
            }
        }
        if s.len() > 20 && !self.no_compression {
            if let Some(c) = lzf::compress(s, s.len() - 4) {
                self.buf.push(ENC_LZF);
                self.len(c.len() as u64);
                self.len(s.len() as u64);
                self.buf.extend_from_slice(&c);
                return;
            }
        }
        self.len(s.len() as u64);
        self.buf.extend_from_slice(s);
    }

    /// An integer as a string (`rdbSaveLongLongAsStringObject`).
    pub fn int_string(&mut self, v: i64) {
        if !self.try_int(v) {
            let mut b = itoa::Buffer::new();
            let text = b.format(v).as_bytes();
            self.len(text.len() as u64);
            self.buf.extend_from_slice(text);
        }
    }

    fn try_int(&mut self, v: i64) -> bool {
        if let Ok(x) = i8::try_from(v) {
            self.buf.push(ENC_INT8);
            self.buf.push(x as u8);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(ENC_INT16);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(ENC_INT32);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else {
            return false;
        }
        true
    }

    pub fn raw_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// IEEE-754 little-endian (ZSET_2 scores).
    pub fn binary_double(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Unix milliseconds, 8 bytes little-endian.
    pub fn ms(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads RDB primitives from a byte slice; every read checks the bytes are there.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn u8(&mut self) -> Result<u8, RdbError> {
        let b = *self.buf.get(self.pos).ok_or(RdbError::BadFormat)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn raw_bytes(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.remaining() {
            return Err(RdbError::BadFormat);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.raw_bytes(N)?);
        Ok(a)
    }

    /// A length, or the special-encoding tag with `true` (`rdbLoadLenByRef`).
    fn len_or_enc(&mut self) -> Result<(u64, bool), RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false),
            3 => ((b & 0x3f) as u64, true),
            _ => match b {
                0x80 => (u32::from_be_bytes(self.array()?) as u64, false),
                0x81 => (u64::from_be_bytes(self.array()?), false),
                _ => return Err(RdbError::BadFormat),
            },
        })
    }

    /// A length. Like Redis's `rdbLoadLen`, a special-encoding byte reads as its low 6 bits.
    pub fn len(&mut self) -> Result<u64, RdbError> {
        Ok(self.len_or_enc()?.0)
    }

    /// A length that must also be a plausible count of items still to read (each item takes
    /// at least one byte), so that nothing is allocated from a lying length.
    pub fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.len()?;
        if n > self.remaining() as u64 {
            return Err(RdbError::BadFormat);
        }
        Ok(n as usize)
    }

    /// A string in any of its forms; borrowed when stored raw.
    pub fn string(&mut self) -> Result<Cow<'a, [u8]>, RdbError> {
        let (n, enc) = self.len_or_enc()?;
        if !enc {
            let n = usize::try_from(n).map_err(|_| RdbError::BadFormat)?;
            return Ok(Cow::Borrowed(self.raw_bytes(n)?));
        }
        let v = match n as u8 | 0xC0 {
            ENC_INT8 => self.u8()? as i8 as i64,
            ENC_INT16 => i16::from_le_bytes(self.array()?) as i64,
            ENC_INT32 => i32::from_le_bytes(self.array()?) as i64,
            ENC_LZF => {
                let clen = self.len()?;
                let len = self.len()?;
                if clen > self.remaining() as u64 || len > clen.saturating_mul(LZF_MAX_RATIO) {
                    return Err(RdbError::BadFormat);
                }
                let data = self.raw_bytes(clen as usize)?;
                if len == 0 {
                    // Redis compares lzf_decompress's result (0 on error) with the
                    // length: a zero length loads as empty whatever the data.
                    return Ok(Cow::Owned(Vec::new()));
                }
                return lzf::decompress(data, len as usize).map(Cow::Owned);
            }
            _ => return Err(RdbError::BadFormat),
        };
        Ok(Cow::Owned(
            itoa::Buffer::new().format(v).as_bytes().to_vec(),
        ))
    }

    pub fn binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    pub fn ms(&mut self) -> Result<i64, RdbError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A double in the legacy string form (ZSET type 3): a length byte, 253/254/255 for
    /// NaN/+inf/-inf, else that many ASCII bytes.
    pub fn string_double(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.raw_bytes(n as usize)?;
                super::parse_score(text).ok_or(RdbError::BadFormat)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::new();
        f(&mut w);
        w.buf
    }

    #[test]
    fn lengths_use_the_smallest_form_and_round_trip() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (63, &[63]),
            (64, &[0x40, 64]),
            (16383, &[0x7f, 0xff]),
            (16384, &[0x80, 0, 0, 0x40, 0]),
            (u32::MAX as u64, &[0x80, 0xff, 0xff, 0xff, 0xff]),
            (1 << 32, &[0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for &(n, bytes) in cases {
            assert_eq!(written(|w| w.len(n)), bytes, "{n}");
            assert_eq!(Reader::new(bytes).len(), Ok(n));
        }
        assert_eq!(Reader::new(&[0x82]).len(), Err(RdbError::BadFormat));
        assert_eq!(Reader::new(&[0x40]).len(), Err(RdbError::BadFormat));
        assert_eq!(Reader::new(&[0x80, 0, 0]).len(), Err(RdbError::BadFormat));
        // Redis's rdbLoadLen reads a special-encoding byte as its low bits.
        assert_eq!(Reader::new(&[0xC3]).len(), Ok(3));
    }

    #[test]
    fn strings_match_redis_bytes() {
        // Values from the spec's verified DUMPs.
        assert_eq!(written(|w| w.string(b"hello")), b"\x05hello");
        assert_eq!(written(|w| w.string(b"12345")), [0xc1, 0x39, 0x30]);
        assert_eq!(written(|w| w.string(b"-1")), [0xc0, 0xff]);
        assert_eq!(written(|w| w.string(b"4294967296")), b"\x0a4294967296");
        assert_eq!(written(|w| w.string(b"007")), b"\x03007");
        assert_eq!(
            written(|w| w.string(&[b'a'; 30])),
            [0xc3, 0x09, 0x1e, 0x01, 0x61, 0x61, 0xe0, 0x11, 0x00, 0x01, 0x61, 0x61]
        );
        // Incompressible long strings stay raw.
        let noise: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let out = written(|w| w.string(&noise));
        assert_eq!(out[0], 40);
        assert_eq!(written(|w| w.int_string(-129)), [0xc1, 0x7f, 0xff]);
        assert_eq!(written(|w| w.int_string(1 << 40)), b"\x0d1099511627776");
    }

    #[test]
    fn compression_off_keeps_integers_but_not_lzf() {
        let mut w = Writer::with_compression(false);
        w.string(&[b'a'; 30]);
        w.string(b"12345");
        let mut want = vec![30u8];
        want.extend_from_slice(&[b'a'; 30]);
        want.extend_from_slice(&[0xc1, 0x39, 0x30]);
        assert_eq!(w.buf, want);
        assert!(!w.compression() && Writer::new().compression());
    }

    #[test]
    fn strings_round_trip_in_every_form() {
        let long: Vec<u8> = b"abcabcabcabcabcabcabcabcabcabcxyz".repeat(40);
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"x".to_vec(),
            b"0".to_vec(),
            b"-128".to_vec(),
            b"32767".to_vec(),
            b"-2147483648".to_vec(),
            b"2147483648".to_vec(),
            vec![b'z'; 100],
            long,
        ];
        for s in cases {
            let bytes = written(|w| w.string(&s));
            let mut r = Reader::new(&bytes);
            assert_eq!(r.string().unwrap().as_ref(), &s[..]);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn corrupt_strings_are_errors() {
        for bad in [
            &[0x05, b'a'][..],
            &[0xc1, 0x01],
            &[0xc4],
            &[0xc3, 0x09, 0x1e, 0x01],
            // LZF claiming far more output than its input can make.
            &[0xc3, 0x01, 0x80, 0x7f, 0xff, 0xff, 0xff, 0x00],
            // LZF that decompresses to fewer bytes than claimed.
            &[0xc3, 0x02, 0x05, 0x00, 0x61],
        ] {
            assert_eq!(
                Reader::new(bad).string(),
                Err(RdbError::BadFormat),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn doubles_and_times() {
        let b = written(|w| {
            w.binary_double(1.5);
            w.ms(1_893_456_000_000);
        });
        assert_eq!(&b[..8], &[0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
        assert_eq!(&b[8..], &[0x00, 0xb4, 0xc5, 0xda, 0xb8, 0x01, 0, 0]);
        let mut r = Reader::new(&b);
        assert_eq!(r.binary_double(), Ok(1.5));
        assert_eq!(r.ms(), Ok(1_893_456_000_000));
        assert_eq!(r.ms(), Err(RdbError::BadFormat));
        let mut r = Reader::new(&[3, b'1', b'.', b'5', 254, 255, 253, 2, b'x', b'y']);
        assert_eq!(r.string_double(), Ok(1.5));
        assert_eq!(r.string_double(), Ok(f64::INFINITY));
        assert_eq!(r.string_double(), Ok(f64::NEG_INFINITY));
        assert!(r.string_double().unwrap().is_nan());
        assert_eq!(r.string_double(), Err(RdbError::BadFormat));
    }
}
