//! `cmsgpack`: MessagePack with the behaviour of the lua-cmsgpack 0.4.0 library Redis ships:
//! integral numbers as the smallest integer encoding, others as a float when that is exact
//! (else a double); tables as arrays when their keys are exactly 1..n, else maps; tables
//! nested 16 deep encode as nil; decoding knows the types that library knows (no bin, no
//! ext: "Bad data format in input."). Written in Rust over growable buffers and bounds-checked
//! reads, so no input can overflow one (CVE-2022-24834).

use std::ffi::c_int;

use mlua_sys as ffi;

use super::super::api::{bytes_at, push_bytes};
use super::super::lua_State;

const MAX_NESTING: usize = 16;
const TOO_MANY: &std::ffi::CStr =
    c"too many return values at once; use unpack_one or unpack_limit instead.";

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    // Integral and within i64 (2^63 itself is not: it goes out as a float).
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&n) && n.trunc() == n {
        encode_int(out, n as i64);
    } else if (n as f32) as f64 == n || n.is_infinite() {
        out.push(0xca);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, b16: u8, b32: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 32 {
        out.push(0xa0 | s.len() as u8);
    } else if s.len() <= 0xff {
        out.extend_from_slice(&[0xd9, s.len() as u8]);
    } else {
        encode_len(out, s.len(), 0, 0, 0xda, 0xdb);
    }
    out.extend_from_slice(s);
}

/// The array length of the table at the top when its keys are exactly 1..n.
unsafe fn array_length(l: *mut lua_State) -> Option<usize> {
    let (mut count, mut max) = (0usize, 0usize);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        ffi::lua_settop(l, -2);
        if ffi::lua_type(l, -1) != ffi::LUA_TNUMBER {
            ffi::lua_settop(l, -2);
            return None;
        }
        let n = ffi::lua_tonumber(l, -1);
        if n < 1.0 || n.trunc() != n || n > 4.0e9 {
            ffi::lua_settop(l, -2);
            return None;
        }
        count += 1;
        max = max.max(n as usize);
    }
    (max == count).then_some(count)
}

/// Encodes the value at the top of the stack (left there).
unsafe fn encode_value(l: *mut lua_State, out: &mut Vec<u8>, level: usize) {
    let mut t = ffi::lua_type(l, -1);
    if t == ffi::LUA_TTABLE && level == MAX_NESTING {
        t = ffi::LUA_TNIL;
    }
    match t {
        ffi::LUA_TSTRING => encode_bytes(out, bytes_at(l, -1)),
        ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(l, -1) != 0 {
            0xc3
        } else {
            0xc2
        }),
        ffi::LUA_TNUMBER => encode_number(out, ffi::lua_tonumber(l, -1)),
        ffi::LUA_TTABLE => {
            ffi::luaL_checkstack(l, 3, c"table too deep".as_ptr());
            if let Some(n) = array_length(l) {
                encode_len(out, n, 0x90, 15, 0xdc, 0xdd);
                for j in 1..=n {
                    ffi::lua_pushnumber(l, j as f64);
                    ffi::lua_gettable(l, -2);
                    encode_value(l, out, level + 1);
                    ffi::lua_settop(l, -2);
                }
            } else {
                let mut n = 0;
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_settop(l, -2);
                    n += 1;
                }
                encode_len(out, n, 0x80, 15, 0xde, 0xdf);
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, -2) != 0 {
                    ffi::lua_pushvalue(l, -2);
                    encode_value(l, out, level + 1);
                    ffi::lua_settop(l, -2);
                    encode_value(l, out, level + 1);
                    ffi::lua_settop(l, -2);
                }
            }
        }
        _ => out.push(0xc0),
    }
}

unsafe extern "C-unwind" fn pack(l: *mut lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    if n == 0 {
        return ffi::luaL_argerror(l, 0, c"MessagePack pack needs input.".as_ptr());
    }
    if ffi::lua_checkstack(l, n) == 0 {
        return ffi::luaL_argerror(l, 0, c"Too many arguments for MessagePack pack.".as_ptr());
    }
    let mut out = Vec::new();
    for i in 1..=n {
        ffi::lua_pushvalue(l, i);
        encode_value(l, &mut out, 0);
        ffi::lua_settop(l, -2);
    }
    push_bytes(l, &out);
    1
}

// --- decoding ---

#[derive(Clone, Copy)]
enum DecodeError {
    Eof,
    BadFormat,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Eof)?;
        let b = self.s.get(self.pos..end).ok_or(DecodeError::Eof)?;
        self.pos = end;
        Ok(b)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
    }
}

/// Decodes one value and pushes it. Holds nothing that needs dropping: a Lua error (stack
/// overflow, a nil map key) may jump over it.
unsafe fn decode_value(l: *mut lua_State, c: &mut Cursor<'_>) -> Result<(), DecodeError> {
    ffi::luaL_checkstack(l, 1, TOO_MANY.as_ptr());
    let tag = c.take(1)?[0];
    match tag {
        0x00..=0x7f => ffi::lua_pushnumber(l, tag as f64),
        0xe0..=0xff => ffi::lua_pushnumber(l, tag as i8 as f64),
        0xcc => ffi::lua_pushnumber(l, c.be(1)? as f64),
        0xcd => ffi::lua_pushnumber(l, c.be(2)? as f64),
        0xce => ffi::lua_pushnumber(l, c.be(4)? as f64),
        0xcf => ffi::lua_pushnumber(l, c.be(8)? as i64 as f64),
        0xd0 => ffi::lua_pushnumber(l, c.be(1)? as u8 as i8 as f64),
        0xd1 => ffi::lua_pushnumber(l, c.be(2)? as u16 as i16 as f64),
        0xd2 => ffi::lua_pushnumber(l, c.be(4)? as u32 as i32 as f64),
        0xd3 => ffi::lua_pushnumber(l, c.be(8)? as i64 as f64),
        0xc0 => ffi::lua_pushnil(l),
        0xc2 => ffi::lua_pushboolean(l, 0),
        0xc3 => ffi::lua_pushboolean(l, 1),
        0xca => ffi::lua_pushnumber(l, f32::from_bits(c.be(4)? as u32) as f64),
        0xcb => ffi::lua_pushnumber(l, f64::from_bits(c.be(8)?)),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb => {
            let n = match tag {
                0xd9 => c.be(1)?,
                0xda => c.be(2)?,
                0xdb => c.be(4)?,
                _ => (tag & 0x1f) as u64,
            };
            let s = c.take(n as usize)?;
            push_bytes(l, s);
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match tag {
                0xdc => c.be(2)?,
                0xdd => c.be(4)?,
                _ => (tag & 0x0f) as u64,
            };
            ffi::luaL_checkstack(l, 2, c"in function mp_decode_to_lua_array".as_ptr());
            ffi::lua_newtable(l);
            for j in 0..n {
                ffi::lua_pushnumber(l, (j + 1) as f64);
                decode_value(l, c)?;
                ffi::lua_settable(l, -3);
            }
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match tag {
                0xde => c.be(2)?,
                0xdf => c.be(4)?,
                _ => (tag & 0x0f) as u64,
            };
            ffi::lua_newtable(l);
            for _ in 0..n {
                decode_value(l, c)?;
                decode_value(l, c)?;
                ffi::lua_settable(l, -3);
            }
        }
        _ => return Err(DecodeError::BadFormat),
    }
    Ok(())
}

/// lua-cmsgpack's `mp_unpack_full`: decodes up to `limit` values from `offset` (all of them
/// when both are 0); but for "all", the offset to go on from (-1 at the end) comes first.
unsafe fn unpack_full(l: *mut lua_State, limit: i64, offset: i64) -> c_int {
    let mut len = 0usize;
    let p = ffi::luaL_checklstring(l, 1, &mut len);
    let s = std::slice::from_raw_parts(p as *const u8, len);
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return ffi::luaL_error(
            l,
            c"Invalid request to unpack with offset of %d and limit of %d.".as_ptr(),
            offset as c_int,
            len as c_int,
        );
    }
    if offset as u64 > len as u64 {
        return ffi::luaL_error(
            l,
            c"Start offset %d greater than input length %d.".as_ptr(),
            offset as c_int,
            len as c_int,
        );
    }
    let limit = if all { i64::MAX } else { limit };
    let mut c = Cursor {
        s,
        pos: offset as usize,
    };
    let mut count: c_int = 0;
    while c.pos < len && (count as i64) < limit {
        match decode_value(l, &mut c) {
            Ok(()) => count += 1,
            Err(DecodeError::Eof) => {
                return ffi::luaL_error(l, c"Missing bytes in input.".as_ptr())
            }
            Err(DecodeError::BadFormat) => {
                return ffi::luaL_error(l, c"Bad data format in input.".as_ptr())
            }
        }
    }
    if !all {
        ffi::luaL_checkstack(l, 1, c"in function mp_unpack_full".as_ptr());
        let next = if c.pos >= len { -1.0 } else { c.pos as f64 };
        ffi::lua_pushnumber(l, next);
        ffi::lua_insert(l, 2);
        count += 1;
    }
    count
}

unsafe extern "C-unwind" fn unpack(l: *mut lua_State) -> c_int {
    unpack_full(l, 0, 0)
}

unsafe extern "C-unwind" fn unpack_one(l: *mut lua_State) -> c_int {
    let offset = ffi::luaL_optinteger(l, 2, 0) as i64;
    ffi::lua_settop(l, 1.min(ffi::lua_gettop(l)));
    unpack_full(l, 1, offset)
}

unsafe extern "C-unwind" fn unpack_limit(l: *mut lua_State) -> c_int {
    let limit = ffi::luaL_checkinteger(l, 2) as i64;
    let offset = ffi::luaL_optinteger(l, 3, 0) as i64;
    ffi::lua_settop(l, 1);
    unpack_full(l, limit, offset)
}

/// Opens `cmsgpack` as a global table.
pub(crate) unsafe fn open(l: *mut lua_State) {
    ffi::lua_createtable(l, 0, 8);
    let funcs: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
        (c"pack", pack),
        (c"unpack", unpack),
        (c"unpack_one", unpack_one),
        (c"unpack_limit", unpack_limit),
    ];
    for (name, f) in funcs {
        ffi::lua_pushcfunction(l, *f);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    for (name, value) in [
        (c"_NAME", &b"cmsgpack"[..]),
        (c"_VERSION", b"lua-cmsgpack 0.4.0"),
        (c"_COPYRIGHT", b"Copyright (C) 2012, Salvatore Sanfilippo"),
        (c"_DESCRIPTION", b"MessagePack C implementation for Lua"),
    ] {
        push_bytes(l, value);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"cmsgpack".as_ptr());
}
