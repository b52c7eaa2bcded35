//! HyperLogLog in Redis's byte layout (sparse and dense), MurmurHash64A and the 7.0 estimator.
//!
//! An HLL is an ordinary string value, so every function here works on the string's bytes:
//! a 16-byte header (`HYLL`, the encoding byte, 3 unused bytes, the cached cardinality as a
//! little-endian u64 whose top bit marks the cache stale) followed by either 16384 packed 6-bit
//! registers (dense) or a run-length opcode stream (sparse). Values must stay byte-identical
//! with Redis's, so the sparse update follows Redis's exact splitting and merging steps.

/// Bits of the hash used to pick a register.
const P: u32 = 14;
/// Bits left for the run of zeroes.
const Q: u32 = 64 - P;
pub const REGISTERS: usize = 1 << P;
const REGISTER_MAX: u8 = 63;
pub const HDR_SIZE: usize = 16;
pub const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * 6).div_ceil(8);
pub const DENSE: u8 = 0;
pub const SPARSE: u8 = 1;
const HASH_SEED: u64 = 0xadc8_3b19;

/// Largest value a sparse VAL opcode holds; a larger register forces the dense encoding.
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
/// 0.5 / ln(2), the estimator's alpha for m → ∞.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A sparse stream that does not cover exactly 16384 registers (Redis's INVALIDOBJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `b` passes Redis's HLL checks (`isHLLObjectOrReply`): long enough, the magic, a
/// known encoding, and the exact size when dense. The sparse stream itself is checked lazily.
pub fn is_valid(b: &[u8]) -> bool {
    b.len() >= HDR_SIZE
        && &b[..4] == b"HYLL"
        && b[4] <= SPARSE
        && (b[4] != DENSE || b.len() == DENSE_SIZE)
}

/// The encoding byte of a value that passed `is_valid`.
pub fn encoding(b: &[u8]) -> u8 {
    b[4]
}

/// A new, empty HLL: sparse, one XZERO opcode covering all registers, cached count 0.
pub fn new_sparse() -> Vec<u8> {
    let mut v = vec![0u8; HDR_SIZE];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = SPARSE;
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(SPARSE_XZERO_MAX_LEN);
        push_xzero(&mut v, n);
        left -= n;
    }
    v
}

// ---- hashing ----

/// MurmurHash2, 64-bit variant, reading 8-byte blocks little-endian (as Redis does on every
/// architecture).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut word = [0u8; 8];
        word.copy_from_slice(block);
        let mut k = u64::from_le_bytes(word).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the length of its `0...01` pattern (1..=Q+1).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, HASH_SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    // The sentinel bit bounds the count at Q+1 when the remaining bits are all zero.
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

// ---- dense registers ----

/// Register `i` of a packed 6-bit array (LSB first, possibly straddling two bytes).
#[inline]
pub fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = regs.get(byte).copied().unwrap_or(0) as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u16) as u8
}

#[inline]
pub fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = val as u16;
    if let Some(b) = regs.get_mut(byte) {
        *b = (*b & !((REGISTER_MAX as u16) << fb) as u8) | (v << fb) as u8;
    }
    // The last register never reaches the next byte (fb == 2), so a missing byte is fine.
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = (*b & !((REGISTER_MAX as u16) >> (8 - fb)) as u8) | (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` to `count` if lower; true if it changed.
fn dense_set(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

// ---- sparse opcodes ----
// ZERO  00xxxxxx          : 1..64 zero registers
// XZERO 01xxxxxx yyyyyyyy : 1..16384 zero registers
// VAL   1vvvvvxx          : 1..4 registers of value 1..32

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero,
    XZero,
    Val(u8),
}

/// The opcode at `p`: kind, registers covered, bytes used. A byte past the end reads as 0,
/// as the NUL terminator Redis's strings carry does.
#[inline]
fn op_at(s: &[u8], p: usize) -> (Op, usize, usize) {
    let b = s.get(p).copied().unwrap_or(0);
    if b & 0xc0 == 0 {
        (Op::Zero, (b & 0x3f) as usize + 1, 1)
    } else if b & 0x80 != 0 {
        (Op::Val(((b >> 2) & 0x1f) + 1), (b & 3) as usize + 1, 1)
    } else {
        let lo = s.get(p + 1).copied().unwrap_or(0) as usize;
        (Op::XZero, ((((b & 0x3f) as usize) << 8) | lo) + 1, 2)
    }
}

fn val_byte(val: u8, len: usize) -> u8 {
    0x80 | ((val - 1) << 2) | (len as u8 - 1)
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.push(0x40 | (l >> 8) as u8);
    v.push((l & 0xff) as u8);
}

/// A zero run as ZERO when it fits, else XZERO (Redis's choice when splitting).
fn push_zeros(v: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        push_xzero(v, len);
    } else {
        v.push((len - 1) as u8);
    }
}

/// Converts a sparse HLL to dense in place, keeping the header (and its cached count).
/// Any opcode reaching past the last register is corruption (as in the stock 7.0.15 server,
/// which carries the fix for CVE-2025-32023), as is a stream covering fewer registers.
pub fn to_dense(s: &mut Vec<u8>) -> Result<(), Corrupt> {
    if s.get(4) == Some(&DENSE) {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&s[..HDR_SIZE]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR_SIZE..];
    let (mut p, mut idx) = (HDR_SIZE, 0usize);
    while p < s.len() {
        let (op, run, oplen) = op_at(s, p);
        if idx + run > REGISTERS {
            return Err(Corrupt);
        }
        if let Op::Val(v) = op {
            for i in idx..idx + run {
                dense_put(regs, i, v);
            }
        }
        idx += run;
        p += oplen;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *s = dense;
    Ok(())
}

/// Raises register `index` of a sparse HLL to `count`, promoting to dense when the value does
/// not fit a VAL opcode or the string would outgrow `max_bytes`. Same steps as Redis's
/// `hllSparseSet`, so the resulting bytes are the same.
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let mut end = s.len();
    let (mut p, mut first, mut prev) = (HDR_SIZE, 0usize, None);
    let mut found = None;
    while p < end {
        let (op, span, oplen) = op_at(s, p);
        if index < first + span {
            found = Some((op, span, oplen));
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    let Some((op, span, oplen)) = found else {
        return Err(Corrupt);
    };

    // Step 2: the cheap cases, then the general split into at most three opcodes.
    let mut rewrite = true;
    match op {
        Op::Val(old) if old >= count => return Ok(false),
        Op::Val(_) | Op::Zero if span == 1 => {
            s[p] = val_byte(count, 1);
            rewrite = false;
        }
        _ => {}
    }
    if rewrite {
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        match op {
            Op::Val(cur) => {
                if index != first {
                    seq.push(val_byte(cur, index - first));
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    seq.push(val_byte(cur, last - index));
                }
            }
            Op::Zero | Op::XZero => {
                if index != first {
                    push_zeros(&mut seq, index - first);
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    push_zeros(&mut seq, last - index);
                }
            }
        }
        // Step 3: splice the new sequence in place of the old opcode.
        let new_len = (end + seq.len()).checked_sub(oplen).ok_or(Corrupt)?;
        if new_len > end && new_len > max_bytes {
            return promote(s, index, count);
        }
        s.splice(p..(p + oplen).min(end), seq);
        // A truncated trailing XZERO (corrupt input) leaves one byte too many, as in Redis.
        s.truncate(new_len);
        end = new_len;
    }

    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from the one
    // before the change.
    let mut q = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while q < end && scan > 0 {
        scan -= 1;
        let b = s[q];
        if b & 0xc0 == 0x40 {
            q += 2;
            continue;
        }
        if b & 0xc0 == 0 {
            q += 1;
            continue;
        }
        if q + 1 < end && s[q + 1] & 0x80 != 0 {
            let (Op::Val(v1), l1, _) = op_at(s, q) else {
                unreachable!("checked VAL")
            };
            let (Op::Val(v2), l2, _) = op_at(s, q + 1) else {
                unreachable!("checked VAL")
            };
            if v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                s[q + 1] = val_byte(v1, l1 + l2);
                s.remove(q);
                end -= 1;
                // Stay put: the merged opcode may merge again with its right neighbour.
                continue;
            }
        }
        q += 1;
    }
    invalidate(s);
    Ok(true)
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(s)?;
    dense_set(&mut s[HDR_SIZE..], index, count);
    // The register was below `count` in the sparse form, so the add always counts.
    Ok(true)
}

/// Raises register `index` to `count` in whichever encoding `s` has.
pub fn set_register(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: usize,
) -> Result<bool, Corrupt> {
    match s.get(4) {
        Some(&DENSE) => Ok(dense_set(&mut s[HDR_SIZE..], index, count)),
        Some(&SPARSE) => sparse_set(s, index, count, max_bytes),
        _ => Err(Corrupt),
    }
}

/// Adds an element (PFADD's per-element step); true if a register changed.
pub fn add(s: &mut Vec<u8>, ele: &[u8], max_bytes: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    set_register(s, index, count, max_bytes)
}

// ---- cached cardinality ----

/// Marks the cached cardinality stale (top bit of the header's last byte).
pub fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

pub fn cached(s: &[u8]) -> Option<u64> {
    if s[15] & 0x80 != 0 {
        return None;
    }
    let mut card = [0u8; 8];
    card.copy_from_slice(&s[8..16]);
    Some(u64::from_le_bytes(card))
}

pub fn store_cache(s: &mut [u8], card: u64) {
    s[8..16].copy_from_slice(&card.to_le_bytes());
}

// ---- counting ----

/// Histogram of register values (index = value).
type Histogram = [u64; 64];

fn histogram(s: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0u64; 64];
    if encoding(s) == DENSE {
        let regs = &s[HDR_SIZE..];
        for i in 0..REGISTERS {
            h[dense_get(regs, i) as usize] += 1;
        }
        return Ok(h);
    }
    let (mut p, mut idx) = (HDR_SIZE, 0usize);
    while p < s.len() {
        let (op, run, oplen) = op_at(s, p);
        let v = match op {
            Op::Val(v) => v as usize,
            _ => 0,
        };
        h[v] += run as u64;
        idx += run;
        p += oplen;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(h)
}

/// Ertl's sigma (arXiv:1702.01284), iterated until the sum stops changing.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0f64, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Ertl's tau, iterated the same way.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0f64, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The 7.0 estimator: the operations and their order match Redis's so results agree exactly.
fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += h[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The estimated cardinality of one HLL, ignoring (and not touching) the cache.
pub fn count(s: &[u8]) -> Result<u64, Corrupt> {
    histogram(s).map(|h| estimate(&h))
}

/// The cardinality from the cache, or computed and cached (PFCOUNT on one key).
pub fn count_cached(s: &mut [u8]) -> Result<u64, Corrupt> {
    if let Some(c) = cached(s) {
        return Ok(c);
    }
    let c = count(s)?;
    store_cache(s, c);
    Ok(c)
}

/// Raises `max[i]` to register `i` of `s` for every register (Redis's `hllMerge`), with the
/// same strict stream check as `to_dense`.
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), Corrupt> {
    if encoding(s) == DENSE {
        let regs = &s[HDR_SIZE..];
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let (mut p, mut idx) = (HDR_SIZE, 0usize);
    while p < s.len() {
        let (op, run, oplen) = op_at(s, p);
        if idx + run > REGISTERS {
            return Err(Corrupt);
        }
        if let Op::Val(v) = op {
            for m in &mut max[idx..idx + run] {
                *m = (*m).max(v);
            }
        }
        idx += run;
        p += oplen;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// The cardinality of unpacked registers (one byte each), e.g. a multi-key PFCOUNT's union.
pub fn count_registers(regs: &[u8]) -> u64 {
    let mut h = [0u64; 64];
    for &r in regs {
        h[(r & 63) as usize] += 1;
    }
    estimate(&h)
}

/// Writes merged registers into `s` (PFMERGE's destination), register by register in index
/// order as Redis does, so a sparse destination gets Redis's exact opcode stream.
pub fn write_registers(s: &mut Vec<u8>, regs: &[u8], max_bytes: usize) {
    for (i, &r) in regs.iter().enumerate() {
        if r != 0 {
            // Inputs were validated (merged) already, so a corrupt destination is impossible;
            // Redis ignores the result here too.
            let _ = set_register(s, i, r, max_bytes);
        }
    }
    invalidate(s);
}

/// PFDEBUG DECODE's text: `z:<n>`, `Z:<n>`, `v:<value>,<n>` separated by spaces.
pub fn decode(s: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR_SIZE;
    while p < s.len() {
        let (op, run, oplen) = op_at(s, p);
        match op {
            Op::Zero => out.push_str(&format!("z:{run} ")),
            Op::XZero => out.push_str(&format!("Z:{run} ")),
            Op::Val(v) => out.push_str(&format!("v:{v},{run} ")),
        }
        p += oplen;
    }
    out.trim_matches(' ').to_string()
}

/// PFSELFTEST: register packing round-trips, then dense and sparse HLLs fed the same 10M
/// elements agree and stay within 6 standard errors at every power of ten.
pub fn selftest(max_bytes: usize, mut rand: impl FnMut() -> u32) -> Result<(), String> {
    let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, b) in bytes.iter_mut().enumerate() {
            let r = (rand() & REGISTER_MAX as u32) as u8;
            *b = r;
            dense_put(&mut regs, i, r);
        }
        for (i, &b) in bytes.iter().enumerate() {
            let v = dense_get(&regs, i);
            if v != b {
                return Err(format!("TESTFAILED Register {i} should be {b} but is {v}"));
            }
        }
    }
    let mut dense = new_sparse();
    to_dense(&mut dense).map_err(|_| "TESTFAILED dense/sparse disagree".to_string())?;
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed = rand() as u64 | (rand() as u64) << 32;
    let mut checkpoint: u64 = 1;
    for j in 1..=10_000_000u64 {
        let ele = (j ^ seed).to_ne_bytes();
        let _ = add(&mut dense, &ele, max_bytes);
        let _ = add(&mut sparse, &ele, max_bytes);
        if j != checkpoint {
            continue;
        }
        if (j as usize) < max_bytes / 2 && encoding(&sparse) != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let card = count(&dense).unwrap_or(0);
        if count(&sparse).ok() != Some(card) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = checkpoint.abs_diff(card);
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::set::Rng;

    const MAX: usize = 3000;

    /// Decodes any valid HLL into one byte per register.
    fn registers(s: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; REGISTERS];
        merge_into(&mut m, s).unwrap();
        m
    }

    #[test]
    fn empty_hll_layout() {
        let s = new_sparse();
        assert_eq!(s.len(), 18);
        assert_eq!(&s[..5], b"HYLL\x01");
        assert_eq!(&s[16..], &[0x7f, 0xff]);
        assert!(is_valid(&s));
        assert_eq!(count(&s), Ok(0));
        assert_eq!(decode(&s), "Z:16384");
    }

    #[test]
    fn murmur_known_values() {
        // Reference values from Redis's C MurmurHash64A with the HLL seed: empty input,
        // tail only, one whole block, block plus tail, three blocks plus tail.
        let cases: [(&[u8], u64); 5] = [
            (b"", 0xd8dfea6585bc9732),
            (b"a", 0x53d2470a9b43b1a7),
            (b"abcdefgh", 0xf3a65df559914567),
            (b"abcdefgh1", 0xf38e11e09c8dc936),
            (b"hello world, hyperloglog", 0xb27529f920e88bac),
        ];
        for (input, want) in cases {
            assert_eq!(murmur64a(input, HASH_SEED), want);
        }
    }

    #[test]
    fn pattern_bounds() {
        let mut rng = Rng::new(3);
        for _ in 0..10_000 {
            let e = rng.next().to_le_bytes();
            let (i, c) = pattern(&e);
            assert!(i < REGISTERS);
            assert!((1..=Q as u8 + 1).contains(&c));
        }
    }

    #[test]
    fn dense_registers_roundtrip() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR_SIZE];
        let mut model = vec![0u8; REGISTERS];
        let mut rng = Rng::new(9);
        for _ in 0..50_000 {
            let i = (rng.next() % REGISTERS as u64) as usize;
            let v = (rng.next() % 64) as u8;
            dense_put(&mut regs, i, v);
            model[i] = v;
        }
        for (i, &v) in model.iter().enumerate() {
            assert_eq!(dense_get(&regs, i), v);
        }
    }

    /// Model-based: sparse and dense HLLs receiving the same register updates hold the same
    /// registers as a plain array, and the sparse stream stays canonical enough to decode.
    #[test]
    fn sparse_matches_model() {
        for seed in 0..20u64 {
            let mut rng = Rng::new(seed);
            let mut sparse = new_sparse();
            let mut dense = new_sparse();
            to_dense(&mut dense).unwrap();
            let mut model = vec![0u8; REGISTERS];
            let n = 50 + rng.next() % 3000;
            for _ in 0..n {
                // Cluster some updates so VAL runs form and merge.
                let i = if rng.next().is_multiple_of(3) {
                    (rng.next() % 40) as usize
                } else {
                    (rng.next() % REGISTERS as u64) as usize
                };
                let c = 1 + (rng.next() % if seed % 2 == 0 { 32 } else { 40 }) as u8;
                let changed = c > model[i];
                model[i] = model[i].max(c);
                assert_eq!(set_register(&mut sparse, i, c, MAX), Ok(changed));
                assert_eq!(set_register(&mut dense, i, c, MAX), Ok(changed));
                assert!(sparse.len() <= MAX || encoding(&sparse) == DENSE);
            }
            assert_eq!(registers(&sparse), model);
            assert_eq!(registers(&dense), model);
            assert_eq!(count(&sparse), count(&dense));
            assert_eq!(count(&dense).unwrap(), count_registers(&model));
        }
    }

    #[test]
    fn promotion_by_value_and_size() {
        let mut s = new_sparse();
        assert_eq!(set_register(&mut s, 5, 33, MAX), Ok(true));
        assert_eq!(encoding(&s), DENSE);
        assert_eq!(s.len(), DENSE_SIZE);
        let mut s = new_sparse();
        let mut i = 0;
        while encoding(&s) == SPARSE {
            set_register(&mut s, i, 1 + (i % 2) as u8, 100).unwrap();
            i += 3;
        }
        assert!(i < 200);
    }

    #[test]
    fn adjacent_vals_merge() {
        let mut s = new_sparse();
        for i in 0..4 {
            set_register(&mut s, i, 2, MAX).unwrap();
        }
        assert_eq!(decode(&s), "v:2,4 Z:16380");
        set_register(&mut s, 4, 2, MAX).unwrap();
        assert_eq!(decode(&s), "v:2,4 v:2,1 Z:16379");
    }

    #[test]
    fn cache_roundtrip() {
        let mut s = new_sparse();
        assert_eq!(cached(&s), Some(0));
        for e in 0..100u32 {
            add(&mut s, &e.to_le_bytes(), MAX).unwrap();
        }
        assert_eq!(cached(&s), None);
        let c = count_cached(&mut s).unwrap();
        assert!((95..=105).contains(&c));
        assert_eq!(cached(&s), Some(c));
    }

    #[test]
    fn estimator_accuracy() {
        let mut s = new_sparse();
        let mut rng = Rng::new(1);
        for n in 1..=200_000u64 {
            add(&mut s, &rng.next().to_le_bytes(), MAX).unwrap();
            if n % 50_000 == 0 {
                let c = count(&s).unwrap() as f64;
                assert!((c - n as f64).abs() / (n as f64) < 0.05, "n={n} c={c}");
            }
        }
    }

    #[test]
    fn corrupt_streams_rejected() {
        let mut s = new_sparse();
        s.truncate(17); // half an XZERO: reads as 0x7f00 → 16129 registers
        assert_eq!(count(&s), Err(Corrupt));
        let mut m = vec![0u8; REGISTERS];
        assert_eq!(merge_into(&mut m, &s), Err(Corrupt));
        let mut s = new_sparse();
        s.push(0x80); // one register too many
        assert_eq!(count(&s), Err(Corrupt));
        assert_eq!(to_dense(&mut s), Err(Corrupt));
        let mut s = new_sparse();
        s.extend_from_slice(&[0x00]); // an extra ZERO: 16385 registers
        assert_eq!(to_dense(&mut s), Err(Corrupt));
        let mut s = new_sparse();
        s.truncate(HDR_SIZE);
        assert_eq!(set_register(&mut s, 0, 1, MAX), Err(Corrupt));
        assert!(!is_valid(b"HYLL\x02..........."));
        assert!(!is_valid(b"HYLL\x00..........."));
        assert!(!is_valid(b"HYL"));
    }
}
