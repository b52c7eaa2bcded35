//! LZF as Redis uses it for RDB strings: a decompressor that trusts nothing, and a
//! compressor making the same choices as Redis's `lzf_c.c` (16-bit hash table, "very fast"
//! re-hashing after a match), so our DUMP bytes equal Redis's for the same value.

use super::RdbError;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

#[inline]
fn first(input: &[u8], i: usize) -> u32 {
    ((input[i] as u32) << 8) | input[i + 1] as u32
}

#[inline]
fn next(v: u32, input: &[u8], i: usize) -> u32 {
    (v << 8) | input[i + 2] as u32
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// The compressor's hash table: for each hashed triple, the position + 1 of its last
/// occurrence (0 = none), as a fresh zeroed table for every call would hold. Zeroing 256 KB
/// per string dominated saving many small values, so each entry carries the number of the
/// call that wrote it and an entry of an earlier call reads as 0.
struct HashTable {
    call: u32,
    slots: Vec<u64>,
}

impl HashTable {
    fn start(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![0; HSIZE];
        }
        self.call = self.call.wrapping_add(1);
        if self.call == 0 {
            self.slots.fill(0);
            self.call = 1;
        }
    }

    #[inline]
    fn swap(&mut self, slot: usize, pos_plus_one: u32) -> usize {
        let old = self.slots[slot];
        self.slots[slot] = (u64::from(self.call) << 32) | u64::from(pos_plus_one);
        if (old >> 32) as u32 == self.call {
            (old & 0xffff_ffff) as usize
        } else {
            0
        }
    }
}

thread_local! {
    static TABLE: std::cell::RefCell<HashTable> =
        const { std::cell::RefCell::new(HashTable { call: 0, slots: Vec::new() }) };
}

/// Compresses `input` into at most `out_len` bytes; `None` when it does not fit (Redis then
/// stores the string raw). Empty input or output also gives `None`, as `lzf_compress` does.
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        t.start();
        compress_with(input, out_len, &mut t)
    })
}

fn compress_with(input: &[u8], out_len: usize, htab: &mut HashTable) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || out_len == 0 {
        return None;
    }
    let mut out = vec![0u8; out_len + 1];
    let out_end = out_len;
    let mut ip = 0usize;
    let mut op = 1usize; // out[0] is the first literal run's header
    let mut lit = 0usize;
    let mut hval = if in_len >= 2 { first(input, 0) } else { 0 };
    while in_len > 2 && ip < in_len - 2 {
        hval = next(hval, input, ip);
        let slot = idx(hval);
        let reference = htab.swap(slot, ip as u32 + 1);
        let matched = reference > 1 && {
            let r = reference - 1;
            let off = ip - r - 1;
            off < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
        };
        if matched {
            let r = reference - 1;
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_end && op - (lit == 0) as usize + 3 + 1 >= out_end {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            op -= (lit == 0) as usize;
            // lzf_c.c first compares 16 bytes unchecked when more than 16 may match (which
            // can run past `maxlen` near the end of the input), then one at a time.
            let mut done = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1;
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            ip -= 2;
            hval = first(input, ip);
            hval = next(hval, input, ip);
            htab.swap(idx(hval), ip as u32 + 1);
            ip += 1;
            hval = next(hval, input, ip);
            htab.swap(idx(hval), ip as u32 + 1);
            ip += 1;
        } else {
            if op >= out_end {
                return None;
            }
            push_literal(&mut out, &mut op, &mut lit, input[ip]);
            ip += 1;
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        push_literal(&mut out, &mut op, &mut lit, input[ip]);
        ip += 1;
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= (lit == 0) as usize;
    out.truncate(op);
    Some(out)
}

/// Appends one literal byte to the open run; a full run (MAX_LIT bytes) gets its length
/// byte written and the next run's header byte reserved, as lzf_c.c does.
#[inline]
fn push_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, byte: u8) {
    *lit += 1;
    out[*op] = byte;
    *op += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

/// Decompresses `input`, which must produce exactly `len` bytes.
pub fn decompress(input: &[u8], len: usize) -> Result<Vec<u8>, RdbError> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            if out.len() + n > len || ip + n > input.len() {
                return Err(RdbError::BadFormat);
            }
            out.extend_from_slice(&input[ip..ip + n]);
            ip += n;
        } else {
            let mut n = ctrl >> 5;
            if n == 7 {
                n += *input.get(ip).ok_or(RdbError::BadFormat)? as usize;
                ip += 1;
            }
            let lo = *input.get(ip).ok_or(RdbError::BadFormat)? as usize;
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + lo + 1;
            n += 2;
            if out.len() + n > len || back > out.len() {
                return Err(RdbError::BadFormat);
            }
            let start = out.len() - back;
            // Byte by byte: the source may overlap what is being written.
            for k in 0..n {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err(RdbError::BadFormat);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_as_redis_does() {
        // The spec's verified 30 x 'a' and the quicklist node of RPUSH lbig <30 x 'x'>.
        assert_eq!(
            compress(&[b'a'; 30], 26).unwrap(),
            [0x01, 0x61, 0x61, 0xe0, 0x11, 0x00, 0x01, 0x61, 0x61]
        );
        let mut node = vec![0x27, 0, 0, 0, 1, 0, 0x9e];
        node.extend_from_slice(&[b'x'; 30]);
        node.extend_from_slice(&[0x1f, 0xff]);
        assert_eq!(
            compress(&node, node.len() - 4).unwrap(),
            [0x07, 0x27, 0, 0, 0, 0x01, 0, 0x9e, 0x78, 0xe0, 0x14, 0x00, 0x01, 0x1f, 0xff]
        );
    }

    #[test]
    fn round_trips() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let len = (rnd() % 3000) as usize + 1;
            let alphabet = 1 + (round % 20) as u64;
            let data: Vec<u8> = (0..len).map(|_| b'a' + (rnd() % alphabet) as u8).collect();
            if let Some(c) = compress(&data, data.len().saturating_sub(4)) {
                assert!(c.len() <= data.len() - 4);
                assert_eq!(decompress(&c, data.len()).unwrap(), data);
            }
            let c = compress(&data, data.len() + 64).unwrap();
            assert_eq!(decompress(&c, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn corrupt_streams_are_rejected() {
        assert!(decompress(&[0x05, b'a'], 6).is_err()); // literal past the input
        assert!(decompress(&[0x20, 0x00], 3).is_err()); // back-reference before the start
        assert!(decompress(&[0x00, b'a', 0xe0], 20).is_err()); // truncated long reference
        assert!(decompress(&[0x00, b'a', 0x20, 0x00], 2).is_err()); // more output than claimed
        assert!(decompress(&[0x00, b'a'], 2).is_err()); // less output than claimed
        assert_eq!(decompress(&[], 0).unwrap(), b"");
    }
}
