//! Redis's ziplist blob, load-only: the list/hash/zset payloads of RDB 6.2 and older (types
//! 10, 12, 13, 14). Validated whole as `ziplistValidateIntegrity` does in deep mode before
//! any entry is used.

use super::listpack::LpEntry;
use super::RdbError;

/// Header: u32 total bytes, u32 offset of the last entry, u16 entry count.
const HEADER: usize = 10;
const END: u8 = 0xFF;
const COUNT_UNKNOWN: u16 = u16::MAX;

/// Validates a ziplist and returns its entries.
pub fn entries(blob: &[u8]) -> Result<Vec<LpEntry<'_>>, RdbError> {
    let bad = RdbError::BadFormat;
    let size = blob.len();
    if size < HEADER + 1 {
        return Err(bad);
    }
    let u32_at = |i: usize| u32::from_le_bytes([blob[i], blob[i + 1], blob[i + 2], blob[i + 3]]);
    let total = u32_at(0) as usize;
    let tail = u32_at(4) as usize;
    let count = u16::from_le_bytes([blob[8], blob[9]]);
    if total != size || blob[size - 1] != END || tail > size - 1 {
        return Err(bad);
    }
    let last = size - 1; // the end marker
    let mut out = Vec::with_capacity((count as usize).min((last - HEADER) / 2));
    let mut p = HEADER;
    let mut prev_size = 0usize;
    let mut prev_at = None;
    while blob[p] != END {
        // prevlen: 1 byte below 254, else 254 and a u32.
        let (prevlen, mut h) = if blob[p] < 254 {
            (blob[p] as usize, 1)
        } else {
            if p + 5 > last {
                return Err(bad);
            }
            (u32_at(p + 1) as usize, 5)
        };
        if prevlen != prev_size || p + h >= last {
            return Err(bad);
        }
        let enc = blob[p + h];
        let room = |need: usize| if p + need <= last { Ok(()) } else { Err(bad) };
        let (entry, len) = match enc >> 6 {
            0 => {
                h += 1;
                let n = (enc & 0x3f) as usize;
                room(h + n)?;
                (LpEntry::Bytes(&blob[p + h..p + h + n]), n)
            }
            1 => {
                room(h + 2)?;
                let n = (((enc & 0x3f) as usize) << 8) | blob[p + h + 1] as usize;
                h += 2;
                room(h + n)?;
                (LpEntry::Bytes(&blob[p + h..p + h + n]), n)
            }
            2 => {
                room(h + 5)?;
                let b = &blob[p + h + 1..p + h + 5];
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                h += 5;
                if n > last - p - h {
                    return Err(bad);
                }
                (LpEntry::Bytes(&blob[p + h..p + h + n]), n)
            }
            _ => {
                h += 1;
                let n = match enc {
                    0xC0 => 2,
                    0xD0 => 4,
                    0xE0 => 8,
                    0xF0 => 3,
                    0xFE => 1,
                    0xF1..=0xFD => 0,
                    _ => return Err(bad),
                };
                room(h + n)?;
                let d = &blob[p + h..p + h + n];
                let v = match enc {
                    0xC0 => i16::from_le_bytes([d[0], d[1]]) as i64,
                    0xD0 => i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64,
                    0xE0 => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(d);
                        i64::from_le_bytes(a)
                    }
                    0xF0 => i32::from_le_bytes([0, d[0], d[1], d[2]]) as i64 >> 8,
                    0xFE => d[0] as i8 as i64,
                    _ => (enc & 0x0f) as i64 - 1,
                };
                (LpEntry::Int(v), n)
            }
        };
        out.push(entry);
        prev_at = Some(p);
        prev_size = h + len;
        p += h + len;
    }
    if p != last || prev_at.is_some_and(|at| at != tail) {
        return Err(bad);
    }
    if count != COUNT_UNKNOWN && count as usize != out.len() {
        return Err(bad);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ziplist the way Redis encodes entries (strings and the integer forms).
    pub(crate) fn build(items: &[LpEntry<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0usize;
        let mut tail = HEADER;
        for it in items {
            let start = body.len();
            tail = HEADER + start;
            if prev < 254 {
                body.push(prev as u8);
            } else {
                body.push(254);
                body.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match *it {
                LpEntry::Bytes(s) if s.len() < 64 => {
                    body.push(s.len() as u8);
                    body.extend_from_slice(s);
                }
                LpEntry::Bytes(s) if s.len() < 16384 => {
                    body.push(0x40 | (s.len() >> 8) as u8);
                    body.push(s.len() as u8);
                    body.extend_from_slice(s);
                }
                LpEntry::Bytes(s) => {
                    body.push(0x80);
                    body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    body.extend_from_slice(s);
                }
                LpEntry::Int(v) if (0..=12).contains(&v) => body.push(0xF1 + v as u8),
                LpEntry::Int(v) if i8::try_from(v).is_ok() => {
                    body.push(0xFE);
                    body.push(v as i8 as u8);
                }
                LpEntry::Int(v) if i16::try_from(v).is_ok() => {
                    body.push(0xC0);
                    body.extend_from_slice(&(v as i16).to_le_bytes());
                }
                LpEntry::Int(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                    body.push(0xF0);
                    body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                }
                LpEntry::Int(v) if i32::try_from(v).is_ok() => {
                    body.push(0xD0);
                    body.extend_from_slice(&(v as i32).to_le_bytes());
                }
                LpEntry::Int(v) => {
                    body.push(0xE0);
                    body.extend_from_slice(&v.to_le_bytes());
                }
            }
            prev = body.len() - start;
        }
        let total = HEADER + body.len() + 1;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(tail as u32).to_le_bytes());
        out.extend_from_slice(&(items.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(END);
        out
    }

    #[test]
    fn decodes_every_encoding() {
        let long = vec![b'L'; 300];
        let huge = vec![b'H'; 20000];
        let items = vec![
            LpEntry::Bytes(b"a"),
            LpEntry::Int(0),
            LpEntry::Int(12),
            LpEntry::Int(-1),
            LpEntry::Int(-300),
            LpEntry::Int(1 << 20),
            LpEntry::Int(-(1 << 30)),
            LpEntry::Int(i64::MIN),
            LpEntry::Bytes(&long),
            LpEntry::Bytes(b"after a long one"),
            LpEntry::Bytes(&huge),
            LpEntry::Bytes(b""),
        ];
        let zl = build(&items);
        assert_eq!(entries(&zl).unwrap(), items);
        assert_eq!(entries(&build(&[])).unwrap(), vec![]);
    }

    #[test]
    fn rejects_corruption() {
        let zl = build(&[LpEntry::Bytes(b"ab"), LpEntry::Int(7), LpEntry::Bytes(b"c")]);
        for n in 0..zl.len() {
            assert!(entries(&zl[..n]).is_err(), "truncated to {n}");
        }
        let mut b = zl.clone();
        b[4] += 1; // tail offset off by one
        assert!(entries(&b).is_err());
        let mut b = zl.clone();
        b[8] = 2; // count
        assert!(entries(&b).is_err());
        let mut b = zl.clone();
        b[14] = 9; // prevlen of the second entry
        assert!(entries(&b).is_err());
        let mut b = zl.clone();
        b[15] = 0xC1; // invalid integer encoding
        assert!(entries(&b).is_err());
        for i in 0..zl.len() * 8 {
            let mut b = zl.clone();
            b[i / 8] ^= 1 << (i % 8);
            let _ = entries(&b);
        }
    }
}
