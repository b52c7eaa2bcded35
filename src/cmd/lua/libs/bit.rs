//! `bit`: 32-bit operations on Lua numbers, as the LuaBitOp library Redis ships behaves.
//! An argument becomes 32 bits by rounding to the nearest integer and keeping the low 32
//! bits (numbers outside ±2^51 wrap as that library's double trick makes them); results are
//! signed 32-bit numbers. `tohex` clamps its width, so `bit.tohex(1, -2^31)` is an 8-digit
//! string, not an overflow (CVE-2024-31449).

use std::ffi::c_int;

use mlua_sys as ffi;

use super::super::lua_State;

/// Argument `idx` as 32 bits (raises Lua's usual "number expected" error otherwise).
unsafe fn arg(l: *mut lua_State, idx: c_int) -> u32 {
    let n = ffi::luaL_checknumber(l, idx);
    // 2^52 + 2^51: adding it leaves the rounded integer in the low mantissa bits.
    (n + 6_755_399_441_055_744.0).to_bits() as u32
}

unsafe fn ret(l: *mut lua_State, b: u32) -> c_int {
    ffi::lua_pushnumber(l, b as i32 as f64);
    1
}

unsafe extern "C-unwind" fn tobit(l: *mut lua_State) -> c_int {
    ret(l, arg(l, 1))
}

unsafe extern "C-unwind" fn bnot(l: *mut lua_State) -> c_int {
    ret(l, !arg(l, 1))
}

unsafe fn fold(l: *mut lua_State, op: fn(u32, u32) -> u32) -> c_int {
    let mut b = arg(l, 1);
    let mut i = ffi::lua_gettop(l);
    while i > 1 {
        b = op(b, arg(l, i));
        i -= 1;
    }
    ret(l, b)
}

unsafe extern "C-unwind" fn band(l: *mut lua_State) -> c_int {
    fold(l, |a, b| a & b)
}

unsafe extern "C-unwind" fn bor(l: *mut lua_State) -> c_int {
    fold(l, |a, b| a | b)
}

unsafe extern "C-unwind" fn bxor(l: *mut lua_State) -> c_int {
    fold(l, |a, b| a ^ b)
}

unsafe fn shift(l: *mut lua_State, op: fn(u32, u32) -> u32) -> c_int {
    let b = arg(l, 1);
    let n = arg(l, 2) & 31;
    ret(l, op(b, n))
}

unsafe extern "C-unwind" fn lshift(l: *mut lua_State) -> c_int {
    shift(l, |b, n| b << n)
}

unsafe extern "C-unwind" fn rshift(l: *mut lua_State) -> c_int {
    shift(l, |b, n| b >> n)
}

unsafe extern "C-unwind" fn arshift(l: *mut lua_State) -> c_int {
    shift(l, |b, n| ((b as i32) >> n) as u32)
}

unsafe extern "C-unwind" fn rol(l: *mut lua_State) -> c_int {
    shift(l, |b, n| b.rotate_left(n))
}

unsafe extern "C-unwind" fn ror(l: *mut lua_State) -> c_int {
    shift(l, |b, n| b.rotate_right(n))
}

unsafe extern "C-unwind" fn bswap(l: *mut lua_State) -> c_int {
    ret(l, arg(l, 1).swap_bytes())
}

unsafe extern "C-unwind" fn tohex(l: *mut lua_State) -> c_int {
    let mut b = arg(l, 1);
    let n: i64 = if ffi::lua_type(l, 2) == ffi::LUA_TNONE {
        8
    } else {
        arg(l, 2) as i32 as i64
    };
    let digits: &[u8; 16] = if n < 0 {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let width = n.unsigned_abs().min(8) as usize;
    let mut buf = [0u8; 8];
    for i in (0..width).rev() {
        buf[i] = digits[(b & 15) as usize];
        b >>= 4;
    }
    super::super::api::push_bytes(l, &buf[..width]);
    1
}

/// Opens `bit` as a global table.
pub(crate) unsafe fn open(l: *mut lua_State) {
    let funcs: &[(&std::ffi::CStr, ffi::lua_CFunction)] = &[
        (c"tobit", tobit),
        (c"bnot", bnot),
        (c"band", band),
        (c"bor", bor),
        (c"bxor", bxor),
        (c"lshift", lshift),
        (c"rshift", rshift),
        (c"arshift", arshift),
        (c"rol", rol),
        (c"ror", ror),
        (c"bswap", bswap),
        (c"tohex", tohex),
    ];
    ffi::lua_createtable(l, 0, funcs.len() as c_int);
    for (name, f) in funcs {
        ffi::lua_pushcfunction(l, *f);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"bit".as_ptr());
}
