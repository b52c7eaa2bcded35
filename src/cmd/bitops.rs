//! Bitmap commands on strings (Redis's bitops.c): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD.

use crate::acl;
use crate::cmd::string::{clamp_range, max_bulk_len};
use crate::cmd::{flag::*, CommandSpec, Ctx, Handler};
use crate::config::keyspace_events as class;
use crate::db::{Db, NO_EXPIRE};
use crate::error::{CmdResult, Error};
use crate::resp::{Args, Reply};
use crate::types::{StrValue, Value};
use crate::util::num::{arg_i64, parse_i64_strict};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::keyed("setbit", 4, WRITE | DENYOOM, setbit)
        .access(acl::READ_WRITE, acl::READ_WRITE).acl(&["@bitmap"]).doc(
        "bitmap",
        "2.2.0",
        "Sets or clears the bit at offset in the string value stored at key",
    ),
    CommandSpec::keyed("getbit", 3, READONLY | FAST, getbit).acl(&["@bitmap"]).doc(
        "bitmap",
        "2.2.0",
        "Returns the bit value at offset in the string value stored at key",
    ),
    CommandSpec::keyed("bitcount", -2, READONLY, bitcount).acl(&["@bitmap"]).doc(
        "bitmap",
        "2.6.0",
        "Count set bits in a string",
    ),
    CommandSpec::keyed("bitpos", -3, READONLY, bitpos).acl(&["@bitmap"]).doc(
        "bitmap",
        "2.8.7",
        "Find first bit set or clear in a string",
    ),
    CommandSpec::new("bitop", -4, WRITE | DENYOOM, Handler::Keyed(bitop))
        .access(acl::WRITE, acl::READ)
        .keys(2, -1, 1)
        .acl(&["@bitmap"])
        .doc("bitmap", "2.6.0", "Perform bitwise operations between strings"),
    CommandSpec::keyed("bitfield", -2, WRITE | DENYOOM, bitfield).acl(&["@bitmap"]).doc(
        "bitmap",
        "3.2.0",
        "Perform arbitrary bitfield integer operations on strings",
    ),
    CommandSpec::keyed("bitfield_ro", -2, READONLY | FAST, bitfield_ro).acl(&["@bitmap"]).doc(
        "bitmap",
        "6.0.0",
        "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
    ),
];

// ---------------------------------------------------------------------------------------
// Pure bit helpers. Bit 0 is the most significant bit of byte 0, as in Redis.
// ---------------------------------------------------------------------------------------

/// The bit at `offset`; bits past the end of the string are 0.
fn bit_at(b: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    byte < b.len() && b[byte] >> (7 - (offset & 7)) & 1 == 1
}

fn set_bit(b: &mut [u8], offset: u64, on: bool) {
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    if on {
        b[byte] |= mask;
    } else {
        b[byte] &= !mask;
    }
}

/// Number of set bits in `b`, eight bytes at a time.
fn popcount(b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from_ne_bytes(w).count_ones() as u64;
    }
    n + chunks
        .remainder()
        .iter()
        .map(|x| x.count_ones() as u64)
        .sum::<u64>()
}

/// Mask of the bits of a byte at positions `from..=to` (0 = most significant).
fn byte_mask(from: u64, to: u64) -> u8 {
    let high = 0xffu8 >> from;
    let low = 0xffu8 << (7 - to);
    high & low
}

/// Set bits within bit positions `start..=end` (inclusive; `end` inside `b`).
fn count_bits(b: &[u8], start: u64, end: u64) -> u64 {
    let (sb, eb) = ((start >> 3) as usize, (end >> 3) as usize);
    if sb == eb {
        return (b[sb] & byte_mask(start & 7, end & 7)).count_ones() as u64;
    }
    let first = (b[sb] & byte_mask(start & 7, 7)).count_ones() as u64;
    let last = (b[eb] & byte_mask(0, end & 7)).count_ones() as u64;
    first + popcount(&b[sb + 1..eb]) + last
}

/// The first bit equal to `bit` within positions `start..=end` (`end` inside `b`).
fn find_bit(b: &[u8], bit: bool, start: u64, end: u64) -> Option<u64> {
    let (sb, eb) = ((start >> 3) as usize, (end >> 3) as usize);
    // A byte with every bit different from the one sought.
    let skip = if bit { 0x00 } else { 0xff };
    for (i, &byte) in b[sb..=eb].iter().enumerate() {
        let i = sb + i;
        let from = if i == sb { start & 7 } else { 0 };
        let to = if i == eb { end & 7 } else { 7 };
        let mask = byte_mask(from, to);
        // Bits of interest that match: set ones when seeking 1, clear ones when seeking 0.
        let hits = (byte ^ skip) & mask;
        if hits != 0 {
            return Some(i as u64 * 8 + hits.leading_zeros() as u64);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Argument parsing.
// ---------------------------------------------------------------------------------------

/// A bit offset, as Redis's `getBitOffsetFromArgument`: with `hash_bits`, `#N` means
/// `N * bits`. The byte it falls in must be below `proto-max-bulk-len`.
fn bit_offset(arg: &[u8], hash_bits: Option<u32>, max_bulk: i64) -> Result<u64, Error> {
    let (digits, mult) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let v = parse_i64_strict(digits).ok_or(Error::BitOffset)?;
    // Redis multiplies without an overflow check; wrapping matches what it computes.
    let v = v.wrapping_mul(mult);
    if v < 0 || (v >> 3) >= max_bulk {
        return Err(Error::BitOffset);
    }
    Ok(v as u64)
}

/// `BYTE` or `BIT` (true for bits); anything else is a syntax error.
fn unit_is_bit(arg: &[u8]) -> Result<bool, Error> {
    if arg.eq_ignore_ascii_case(b"BIT") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"BYTE") {
        Ok(false)
    } else {
        Err(Error::Syntax)
    }
}

/// Runs `f` on the string at `key` made `raw` and at least `min_len` bytes long (zero
/// padded), creating it if missing, as Redis's `lookupStringForBitCommand`. `f` is told
/// whether the string was created or grew (Redis's `dirty` flag there: every write then
/// counts as a change, whatever it wrote).
fn with_bits<R>(
    db: &mut Db,
    key: &[u8],
    now: i64,
    min_len: usize,
    f: impl FnOnce(&mut Vec<u8>, bool) -> R,
) -> Result<R, Error> {
    match db.write_as::<StrValue>(key, now)? {
        Some(s) => {
            let raw = s.make_raw();
            let grew = raw.len() < min_len;
            if grew {
                raw.resize(min_len, 0);
            }
            Ok(f(raw, grew))
        }
        None => {
            let mut raw = vec![0u8; min_len];
            let r = f(&mut raw, true);
            db.set(key, Value::Str(StrValue::raw(raw)), NO_EXPIRE, now);
            Ok(r)
        }
    }
}

// ---------------------------------------------------------------------------------------
// SETBIT / GETBIT / BITCOUNT / BITPOS
// ---------------------------------------------------------------------------------------

fn setbit(c: &mut Ctx, a: &Args) -> CmdResult {
    let offset = bit_offset(a.get(2), None, max_bulk_len(c))?;
    let on = match parse_i64_strict(a.get(3)) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(Error::BitNotInteger),
    };
    let min_len = (offset >> 3) as usize + 1;
    let (old, changed) = with_bits(&mut c.db, a.get(1), c.now, min_len, |b, grew| {
        let old = bit_at(b, offset);
        set_bit(b, offset, on);
        (old, grew || old != on)
    })?;
    // Setting a bit to the value it had in a string that did not grow is no change.
    c.dirty(changed as u64);
    if changed {
        c.notify(class::STRING, "setbit", a.get(1));
    }
    c.out.int(old as i64);
    Ok(())
}

fn getbit(c: &mut Ctx, a: &Args) -> CmdResult {
    let offset = bit_offset(a.get(2), None, max_bulk_len(c))?;
    let bit = match c.db.read_as::<StrValue>(a.get(1), c.now)? {
        Some(s) => s.with_bytes(|b| bit_at(b, offset)),
        None => false,
    };
    c.out.int(bit as i64);
    Ok(())
}

/// The bit range `[start, end]` a BITCOUNT/BITPOS start/end/unit selects in a string of
/// `len` bytes, or `None` if it is empty.
fn bit_range(start: i64, end: i64, is_bit: bool, len: usize) -> Option<(u64, u64)> {
    let len = len as i64;
    let clamp = |total| clamp_range(start, end, total).map(|(s, e)| (s as u64, e as u64));
    if is_bit {
        clamp(len * 8)
    } else {
        clamp(len).map(|(s, e)| (s * 8, e * 8 + 7))
    }
}

fn bitcount(c: &mut Ctx, a: &Args) -> CmdResult {
    // Redis 7.0 looks the key up first: a missing key is 0 whatever the arguments.
    let Some(s) = c.db.read_as::<StrValue>(a.get(1), c.now)? else {
        c.out.int(0);
        return Ok(());
    };
    let n = s.with_bytes(|b| -> Result<u64, Error> {
        let range = match a.len() {
            2 => bit_range(0, -1, false, b.len()),
            4 | 5 => {
                let (start, end) = (arg_i64(a.get(2))?, arg_i64(a.get(3))?);
                // Both negative and inverted: empty, before the unit is even looked at.
                if start < 0 && end < 0 && start > end {
                    return Ok(0);
                }
                let is_bit = a.len() == 5 && unit_is_bit(a.get(4))?;
                bit_range(start, end, is_bit, b.len())
            }
            _ => return Err(Error::Syntax),
        };
        Ok(range.map_or(0, |(s, e)| count_bits(b, s, e)))
    })?;
    c.out.int(n as i64);
    Ok(())
}

fn bitpos(c: &mut Ctx, a: &Args) -> CmdResult {
    let bit = arg_i64(a.get(2))?;
    if bit != 0 && bit != 1 {
        return Err(Error::msg("The bit argument must be 1 or 0."));
    }
    let bit = bit == 1;
    // A missing key is all zeros: Redis answers before looking at the range.
    let Some(s) = c.db.read_as::<StrValue>(a.get(1), c.now)? else {
        c.out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let pos = s.with_bytes(|b| -> Result<i64, Error> {
        let len = b.len();
        let (range, end_given) = match a.len() {
            3 => (bit_range(0, -1, false, len), false),
            4..=6 => {
                let start = arg_i64(a.get(3))?;
                // The unit is checked before the end, as Redis does.
                let is_bit = a.len() == 6 && unit_is_bit(a.get(5))?;
                match a.len() {
                    4 => (bit_range(start, -1, is_bit, len), false),
                    _ => (bit_range(start, arg_i64(a.get(4))?, is_bit, len), true),
                }
            }
            _ => return Err(Error::Syntax),
        };
        let Some((start, end)) = range else {
            return Ok(-1);
        };
        Ok(match find_bit(b, bit, start, end) {
            Some(p) => p as i64,
            // Looking for 0 with no explicit end: the string is seen as zero padded on the
            // right, so the first 0 is just past its end.
            None if !bit && !end_given => len as i64 * 8,
            None => -1,
        })
    })?;
    c.out.int(pos);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// BITOP
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// The operation, checking NOT's single source.
fn parse_bitop(a: &Args) -> Result<BitOp, Error> {
    let op = if a.is(1, "AND") {
        BitOp::And
    } else if a.is(1, "OR") {
        BitOp::Or
    } else if a.is(1, "XOR") {
        BitOp::Xor
    } else if a.is(1, "NOT") {
        BitOp::Not
    } else {
        return Err(Error::Syntax);
    };
    if op == BitOp::Not && a.len() != 4 {
        return Err(Error::msg(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    Ok(op)
}

/// Folds the sources one at a time into `acc`; missing bytes (and missing keys, which are
/// empty strings) count as zeros, so the result is as long as the longest source.
struct BitopFold {
    op: BitOp,
    acc: Vec<u8>,
    first: bool,
}

impl BitopFold {
    fn new(op: BitOp) -> BitopFold {
        BitopFold {
            op,
            acc: Vec::new(),
            first: true,
        }
    }

    fn add(&mut self, src: &[u8]) {
        if std::mem::take(&mut self.first) {
            self.acc.extend_from_slice(src);
            if self.op == BitOp::Not {
                self.acc.iter_mut().for_each(|x| *x = !*x);
            }
            return;
        }
        let common = self.acc.len().min(src.len());
        let (head, tail) = src.split_at(common);
        match self.op {
            BitOp::And => {
                self.acc.iter_mut().zip(head).for_each(|(x, y)| *x &= y);
                // Past the shorter one, one side is zero.
                self.acc[common..].fill(0);
                self.acc.resize(src.len().max(self.acc.len()), 0);
            }
            BitOp::Or | BitOp::Xor => {
                let xor = self.op == BitOp::Xor;
                self.acc.iter_mut().zip(head).for_each(|(x, y)| {
                    *x = if xor { *x ^ y } else { *x | y };
                });
                self.acc.extend_from_slice(tail);
            }
            // NOT has a single source.
            BitOp::Not => {}
        }
    }
}

/// Writes BITOP's result: an empty result deletes the destination, as in Redis. Counts one
/// change if it stored or deleted something.
fn store_result(c: &mut Ctx, key: &[u8], result: Vec<u8>) {
    if result.is_empty() {
        // Redis's `dbDelete`: no expiry check, so a destination whose time has passed but
        // is still stored is removed and counted (the command, not a DEL, is propagated).
        if c.db.remove(key).is_some() {
            c.dirty(1);
            c.notify(class::GENERIC, "del", key);
        }
    } else {
        c.db.set(key, Value::Str(StrValue::raw(result)), NO_EXPIRE, c.now);
        c.dirty(1);
        c.notify(class::STRING, "set", key);
    }
}

fn bitop(c: &mut Ctx, a: &Args) -> CmdResult {
    let op = parse_bitop(a)?;
    let mut fold = BitopFold::new(op);
    for key in a.rest(3) {
        match c.db.read_as::<StrValue>(key, c.now)? {
            Some(s) => s.with_bytes(|b| fold.add(b)),
            None => fold.add(b""),
        }
    }
    let len = fold.acc.len();
    store_result(c, a.get(2), fold.acc);
    c.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// BITFIELD
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD operation on a field of `bits` bits at bit `offset`.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63` (the prefix is case-sensitive, as in Redis).
fn field_type(arg: &[u8]) -> Result<(bool, u32), Error> {
    let err = || {
        Error::msg(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let bits = parse_i64_strict(&arg[1..]).ok_or_else(err)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

/// Calls `each` for every operation of a BITFIELD command, in order, after checking its
/// arguments with Redis's messages; OVERFLOW changes the policy of the operations after it.
fn parse_fields(a: &Args, max_bulk: i64, mut each: impl FnMut(Field)) -> CmdResult {
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < a.len() {
        let remaining = a.len() - j - 1;
        let op = if a.is(j, "GET") && remaining >= 2 {
            FieldOp::Get
        } else if a.is(j, "SET") && remaining >= 3 {
            FieldOp::Set(0)
        } else if a.is(j, "INCRBY") && remaining >= 3 {
            FieldOp::IncrBy(0)
        } else if a.is(j, "OVERFLOW") && remaining >= 1 {
            overflow = if a.is(j + 1, "WRAP") {
                Overflow::Wrap
            } else if a.is(j + 1, "SAT") {
                Overflow::Sat
            } else if a.is(j + 1, "FAIL") {
                Overflow::Fail
            } else {
                return Err(Error::msg("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(Error::Syntax);
        };
        let (signed, bits) = field_type(a.get(j + 1))?;
        let offset = bit_offset(a.get(j + 2), Some(bits), max_bulk)?;
        let op = match op {
            FieldOp::Get => FieldOp::Get,
            FieldOp::Set(_) => FieldOp::Set(arg_i64(a.get(j + 3))?),
            FieldOp::IncrBy(_) => FieldOp::IncrBy(arg_i64(a.get(j + 3))?),
        };
        each(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(())
}

/// The unsigned value of the `bits`-bit field at bit `offset`; bytes past the end are 0.
fn get_unsigned(b: &[u8], offset: u64, bits: u32) -> u64 {
    // A field of up to 64 bits starting anywhere in a byte spans at most 9 bytes.
    let byte = (offset >> 3) as usize;
    let mut window: u128 = 0;
    for k in 0..9 {
        let v = b.get(byte + k).copied().unwrap_or(0);
        window = window << 8 | v as u128;
    }
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    (window >> shift) as u64 & mask
}

fn get_signed(b: &[u8], offset: u64, bits: u32) -> i64 {
    let v = get_unsigned(b, offset, bits);
    // Sign-extend from the field's top bit.
    let unused = 64 - bits;
    ((v << unused) as i64) >> unused
}

/// Writes the low `bits` bits of `value` at bit `offset` (the field must lie inside `b`).
fn set_field(b: &mut [u8], offset: u64, bits: u32, value: u64) {
    for k in 0..bits as u64 {
        let on = value >> (bits as u64 - 1 - k) & 1 == 1;
        set_bit(b, offset + k, on);
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr` leaves the range of a
/// `bits`-bit unsigned field (1 above, -1 below), and the value WRAP or SAT gives then.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (i8, u64) {
    let max = (1u64 << bits) - 1; // bits <= 63 for unsigned fields
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let wrapped = || value.wrapping_add(incr as u64) & max;
    if value > max || (incr > 0 && incr > max_incr) {
        (1, if ow == Overflow::Sat { max } else { wrapped() })
    } else if incr < 0 && incr < min_incr {
        (-1, if ow == Overflow::Sat { 0 } else { wrapped() })
    } else {
        (0, value.wrapping_add(incr as u64))
    }
}

/// Redis's `checkSignedBitfieldOverflow`, likewise for a `bits`-bit signed field.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (i8, i64) {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let c = (value as u64).wrapping_add(incr as u64);
        let unused = 64 - bits;
        // Keep the low `bits` bits and sign-extend from the field's top bit.
        ((c << unused) as i64) >> unused
    };
    let narrow = bits != 64;
    if value > max || (narrow && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        (1, if ow == Overflow::Sat { max } else { wrapped() })
    } else if value < min
        || (narrow && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        (-1, if ow == Overflow::Sat { min } else { wrapped() })
    } else {
        (0, value.wrapping_add(incr))
    }
}

/// Runs a SET or INCRBY on the (long enough) string: `Some((reply, whether the field's
/// value changed))`, or `None` when OVERFLOW FAIL refused it (nothing written).
fn write_field(b: &mut [u8], f: &Field) -> Option<(i64, bool)> {
    let (incr, is_set) = match f.op {
        FieldOp::Set(v) => (v, true),
        FieldOp::IncrBy(v) => (v, false),
        FieldOp::Get => return Some((read_field(b, f), false)),
    };
    // Redis compares the old value with the new one as computed (sign-extended for signed
    // fields), not with what lands in the string.
    let (overflowed, new, reply, changed) = if f.signed {
        let old = get_signed(b, f.offset, f.bits);
        let (o, new) = if is_set {
            signed_overflow(incr, 0, f.bits, f.overflow)
        } else {
            signed_overflow(old, incr, f.bits, f.overflow)
        };
        (
            o != 0,
            new as u64,
            if is_set { old } else { new },
            old != new,
        )
    } else {
        let old = get_unsigned(b, f.offset, f.bits);
        let (o, new) = if is_set {
            unsigned_overflow(incr as u64, 0, f.bits, f.overflow)
        } else {
            unsigned_overflow(old, incr, f.bits, f.overflow)
        };
        (
            o != 0,
            new,
            if is_set { old as i64 } else { new as i64 },
            old != new,
        )
    };
    if overflowed && f.overflow == Overflow::Fail {
        return None;
    }
    set_field(b, f.offset, f.bits, new);
    Some((reply, changed))
}

fn read_field(b: &[u8], f: &Field) -> i64 {
    if f.signed {
        get_signed(b, f.offset, f.bits)
    } else {
        get_unsigned(b, f.offset, f.bits) as i64
    }
}

fn bitfield(c: &mut Ctx, a: &Args) -> CmdResult {
    bitfield_generic(c, a, false)
}

fn bitfield_ro(c: &mut Ctx, a: &Args) -> CmdResult {
    bitfield_generic(c, a, true)
}

/// Both BITFIELD forms: every operation is checked first, then a read-only command reads
/// the key, and a writing one grows it (creating it if needed) to its farthest written bit.
fn bitfield_generic(c: &mut Ctx, a: &Args, readonly_cmd: bool) -> CmdResult {
    let max_bulk = max_bulk_len(c);
    let (mut count, mut writes, mut highest) = (0usize, false, 0u64);
    parse_fields(a, max_bulk, |f| {
        count += 1;
        if f.op != FieldOp::Get {
            writes = true;
            highest = highest.max(f.offset + f.bits as u64 - 1);
        }
    })?;
    if !writes {
        return match c.db.read_as::<StrValue>(a.get(1), c.now)? {
            Some(s) => s.with_bytes(|b| reply_reads(c.out, a, max_bulk, count, b)),
            None => reply_reads(c.out, a, max_bulk, count, b""),
        };
    }
    if readonly_cmd {
        return Err(Error::msg("BITFIELD_RO only supports the GET subcommand"));
    }
    let out = &mut *c.out;
    let mut changes = 0;
    with_bits(
        &mut c.db,
        a.get(1),
        c.now,
        (highest >> 3) as usize + 1,
        |b, grew| {
            out.array(count);
            parse_fields(a, max_bulk, |f| match write_field(b, &f) {
                Some((v, changed)) => {
                    out.int(v);
                    // Every SET/INCRBY that wrote counts if the string was created or grew,
                    // otherwise only if it changed the field (GETs never count).
                    if f.op != FieldOp::Get && (grew || changed) {
                        changes += 1;
                    }
                }
                None => out.null(),
            })
        },
    )??;
    c.dirty(changes);
    if changes > 0 {
        c.notify(class::STRING, "setbit", a.get(1));
    }
    Ok(())
}

fn reply_reads(out: &mut Reply, a: &Args, max_bulk: i64, count: usize, b: &[u8]) -> CmdResult {
    out.array(count);
    parse_fields(a, max_bulk, |f| out.int(read_field(b, &f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_counts() {
        let b = [0b1010_0000u8, 0xff, 0x01];
        assert!(bit_at(&b, 0));
        assert!(!bit_at(&b, 1));
        assert!(bit_at(&b, 23));
        assert!(!bit_at(&b, 1000));
        assert_eq!(popcount(&b), 11);
        assert_eq!(popcount(&[0xffu8; 21]), 168);
        assert_eq!(count_bits(&b, 0, 23), 11);
        assert_eq!(count_bits(&b, 1, 2), 1);
        assert_eq!(count_bits(&b, 5, 9), 2);
        assert_eq!(count_bits(&b, 8, 15), 8);
        // Redis's BITCOUNT examples: "foobar" has 26 bits, bytes 1..1 has 6, bits 5..30 has 17.
        assert_eq!(count_bits(b"foobar", 0, 47), 26);
        assert_eq!(count_bits(b"foobar", 8, 15), 6);
        assert_eq!(count_bits(b"foobar", 5, 30), 17);
    }

    #[test]
    fn positions() {
        let b = [0xffu8, 0xf0, 0x00];
        assert_eq!(find_bit(&b, false, 0, 23), Some(12));
        assert_eq!(find_bit(&b, true, 0, 23), Some(0));
        assert_eq!(find_bit(&b, true, 12, 23), None);
        assert_eq!(find_bit(&b, true, 3, 5), Some(3));
        assert_eq!(find_bit(&[0u8; 3], true, 0, 23), None);
        assert_eq!(find_bit(&[0xffu8; 2], false, 0, 15), None);
        // Redis's BITPOS examples on "\xff\xf0\x00".
        assert_eq!(find_bit(&b, false, 16, 23), Some(16));
        assert_eq!(find_bit(&[0x00u8, 0xff, 0xf0], true, 16, 23), Some(16));
        assert_eq!(bit_range(0, -1, false, 0), None);
        assert_eq!(bit_range(-3, -1, false, 2), Some((0, 15)));
        assert_eq!(bit_range(1, 1, false, 3), Some((8, 15)));
        assert_eq!(bit_range(7, 15, true, 3), Some((7, 15)));
    }

    #[test]
    fn offsets() {
        let max = 512 * 1024 * 1024;
        assert_eq!(bit_offset(b"7", None, max), Ok(7));
        assert_eq!(bit_offset(b"#3", Some(8), max), Ok(24));
        assert_eq!(bit_offset(b"#3", None, max), Err(Error::BitOffset));
        assert_eq!(bit_offset(b"-1", None, max), Err(Error::BitOffset));
        assert_eq!(bit_offset(b"4294967295", None, max), Ok(4294967295));
        assert_eq!(bit_offset(b"4294967296", None, max), Err(Error::BitOffset));
        assert_eq!(bit_offset(b"#", Some(8), max), Err(Error::BitOffset));
    }

    #[test]
    fn field_types() {
        assert_eq!(field_type(b"i64"), Ok((true, 64)));
        assert_eq!(field_type(b"u63"), Ok((false, 63)));
        assert!(field_type(b"u64").is_err());
        assert!(field_type(b"i0").is_err());
        assert!(field_type(b"I8").is_err());
        assert!(field_type(b"").is_err());
        assert!(field_type(b"i+8").is_err());
    }

    #[test]
    fn field_get_set() {
        // Redis's example: u5 = 23 at offset 7 over zeros gives 00000001|01110000.
        let mut b = [0u8; 2];
        set_field(&mut b, 7, 5, 23);
        assert_eq!(b, [0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&b, 7, 5), 23);
        assert_eq!(get_signed(&b, 7, 5), 23 - 32);
        let mut w = [0u8; 9];
        set_field(&mut w, 3, 64, i64::MIN as u64 | 5);
        assert_eq!(get_signed(&w, 3, 64), i64::MIN | 5);
        // The first 63 bits of that field, then its last 63.
        assert_eq!(get_unsigned(&w, 3, 63), (i64::MIN as u64 | 5) >> 1);
        assert_eq!(get_unsigned(&w, 4, 63), 5);
        // Reads past the end are zero padded.
        assert_eq!(get_unsigned(&[0xff], 4, 8), 0xf0);
        assert_eq!(get_signed(&[0x80], 0, 1), -1);
    }

    #[test]
    fn overflow_arithmetic() {
        use Overflow::*;
        assert_eq!(unsigned_overflow(250, 10, 8, Wrap), (1, 4));
        assert_eq!(unsigned_overflow(250, 10, 8, Sat), (1, 255));
        assert_eq!(unsigned_overflow(5, -10, 8, Sat), (-1, 0));
        assert_eq!(unsigned_overflow(5, -10, 8, Wrap), (-1, 251));
        assert_eq!(unsigned_overflow(5, 10, 8, Fail), (0, 15));
        // SET u8 with -1 (as u64) overflows and wraps to 255.
        assert_eq!(unsigned_overflow(u64::MAX, 0, 8, Wrap), (1, 255));
        assert_eq!(signed_overflow(127, 1, 8, Wrap), (1, -128));
        assert_eq!(signed_overflow(127, 1, 8, Sat), (1, 127));
        assert_eq!(signed_overflow(-128, -1, 8, Sat), (-1, -128));
        assert_eq!(signed_overflow(-128, -1, 8, Wrap), (-1, 127));
        assert_eq!(signed_overflow(300, 0, 8, Wrap), (1, 44));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Wrap), (1, i64::MIN));
        assert_eq!(signed_overflow(i64::MIN, -1, 64, Sat), (-1, i64::MIN));
        assert_eq!(signed_overflow(-5, 3, 64, Fail), (0, -2));
        assert_eq!(signed_overflow(100, -200, 8, Sat), (0, -100));
    }

    #[test]
    fn write_fields_like_redis() {
        let mut b = [0u8; 1];
        let incr = |v, ow| Field {
            op: FieldOp::IncrBy(v),
            signed: false,
            bits: 2,
            offset: 0,
            overflow: ow,
        };
        assert_eq!(
            write_field(&mut b, &incr(3, Overflow::Fail)),
            Some((3, true))
        );
        assert_eq!(write_field(&mut b, &incr(1, Overflow::Fail)), None);
        assert_eq!(b, [0b1100_0000]);
        assert_eq!(
            write_field(&mut b, &incr(1, Overflow::Wrap)),
            Some((0, true))
        );
        assert_eq!(
            write_field(&mut b, &incr(0, Overflow::Wrap)),
            Some((0, false))
        );
        let set = Field {
            op: FieldOp::Set(-1),
            signed: true,
            bits: 4,
            offset: 4,
            overflow: Overflow::Wrap,
        };
        assert_eq!(write_field(&mut b, &set), Some((0, true)));
        assert_eq!(b, [0b0000_1111]);
        assert_eq!(write_field(&mut b, &set), Some((-1, false)));
    }

    #[test]
    fn bitop_fold() {
        let run = |op, srcs: &[&[u8]]| {
            let mut f = BitopFold::new(op);
            srcs.iter().for_each(|s| f.add(s));
            f.acc
        };
        assert_eq!(run(BitOp::And, &[b"\xff\x0f", b"\x0f"]), b"\x0f\x00");
        assert_eq!(run(BitOp::And, &[b"", b"\xff"]), b"\x00");
        assert_eq!(run(BitOp::Or, &[b"\x01", b"\x10\x20", b""]), b"\x11\x20");
        assert_eq!(run(BitOp::Xor, &[b"\xff\xff", b"\x0f"]), b"\xf0\xff");
        assert_eq!(run(BitOp::Not, &[b"\x0f\x00"]), b"\xf0\xff");
        assert_eq!(run(BitOp::And, &[b"", b""]), b"");
    }
}
