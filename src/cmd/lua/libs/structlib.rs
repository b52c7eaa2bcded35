//! `struct`: binary packing with the behaviour of the struct library Redis ships
//! (`struct.pack`, `struct.unpack`, `struct.size`; formats `<` `>` `!n` `x` `b` `B` `h` `H`
//! `l` `L` `T` `i[n]` `I[n]` `c[n]` `s` `f` `d`, integers up to 32 bytes) and its error texts.
//! Sizes in a format are checked for overflow before use (CVE-2020-14147), and every read is
//! bounds-checked. Errors are raised only once nothing owned by Rust is live.

use std::ffi::{c_int, CString};

use mlua_sys as ffi;

use super::super::api::push_bytes;
use super::super::lua_State;

const MAX_INT_SIZE: usize = 32;
const MAX_ALIGN: usize = 8;

/// An error to raise once the Rust side is unwound.
enum Fail {
    /// `luaL_typerror(arg, what)`.
    Type(c_int, &'static str),
    /// `luaL_argerror(arg, msg)`.
    Arg(c_int, String),
    /// `luaL_error(msg)`.
    Msg(String),
}

unsafe fn raise(l: *mut lua_State, fail: Fail) -> c_int {
    match fail {
        Fail::Type(arg, what) => {
            let what = CString::new(what).unwrap_or_default();
            ffi::luaL_typerror(l, arg, what.as_ptr())
        }
        Fail::Arg(arg, msg) => {
            push_bytes(l, msg.as_bytes());
            drop(msg);
            ffi::luaL_argerror(l, arg, ffi::lua_tostring(l, -1))
        }
        Fail::Msg(msg) => {
            ffi::luaL_where(l, 1);
            push_bytes(l, msg.as_bytes());
            drop(msg);
            ffi::lua_concat(l, 2);
            ffi::lua_error(l)
        }
    }
}

struct Format<'a> {
    f: &'a [u8],
    pos: usize,
    little: bool,
    align: usize,
}

impl Format<'_> {
    fn new(f: &[u8]) -> Format<'_> {
        // A C string: it ends at the first zero byte.
        let f = &f[..memchr::memchr(0, f).unwrap_or(f.len())];
        Format {
            f,
            pos: 0,
            little: true,
            align: 1,
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.f.get(self.pos)?;
        self.pos += 1;
        Some(c)
    }

    fn num(&mut self, default: usize) -> Result<usize, Fail> {
        if !self.f.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i64 = 0;
        while let Some(&d) = self.f.get(self.pos).filter(|d| d.is_ascii_digit()) {
            let d = (d - b'0') as i64;
            if a > i32::MAX as i64 / 10 || a * 10 > i32::MAX as i64 - d {
                return Err(Fail::Msg("integral size overflow".into()));
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a as usize)
    }

    fn size(&mut self, opt: u8) -> Result<usize, Fail> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let n = self.num(4)?;
                if n > MAX_INT_SIZE {
                    return Err(Fail::Msg(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                n
            }
            _ => 0,
        })
    }

    fn to_align(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    fn control(&mut self, opt: u8) -> Result<(), Fail> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.num(MAX_ALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(Fail::Msg(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            _ => {
                return Err(Fail::Arg(
                    1,
                    format!("invalid format option '{}'", opt as char),
                ))
            }
        }
        Ok(())
    }
}

unsafe fn number_arg(l: *mut lua_State, arg: c_int) -> Result<f64, Fail> {
    if ffi::lua_isnumber(l, arg) == 0 {
        return Err(Fail::Type(arg, "number"));
    }
    Ok(ffi::lua_tonumber(l, arg))
}

unsafe fn string_arg<'a>(l: *mut lua_State, arg: c_int) -> Result<&'a [u8], Fail> {
    if ffi::lua_isstring(l, arg) == 0 {
        return Err(Fail::Type(arg, "string"));
    }
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, arg, &mut len);
    Ok(std::slice::from_raw_parts(p as *const u8, len))
}

unsafe fn pack_into(l: *mut lua_State, out: &mut Vec<u8>) -> Result<(), Fail> {
    let mut fmt = Format::new(string_arg(l, 1)?);
    let mut arg: c_int = 2;
    let mut total = 0usize;
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        let pad = fmt.to_align(total, opt, size);
        total += pad;
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = number_arg(l, arg)?;
                arg += 1;
                let mut v: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut buf = [0u8; MAX_INT_SIZE];
                for i in 0..size {
                    let at = if fmt.little { i } else { size - 1 - i };
                    buf[at] = v as u8;
                    v = v.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&buf[..size]);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = number_arg(l, arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if fmt.little {
                    f.to_le_bytes()
                } else {
                    f.to_be_bytes()
                });
            }
            b'd' => {
                let d = number_arg(l, arg)?;
                arg += 1;
                out.extend_from_slice(&if fmt.little {
                    d.to_le_bytes()
                } else {
                    d.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = string_arg(l, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(Fail::Arg(arg, "string too short".into()));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => fmt.control(opt)?,
        }
        total += size;
    }
    Ok(())
}

unsafe extern "C-unwind" fn pack(l: *mut lua_State) -> c_int {
    // The library pushes a nil after the arguments (its buffer's mark): a missing argument
    // right after the last one is reported as nil, not "no value".
    ffi::luaL_checkstring(l, 1);
    ffi::lua_pushnil(l);
    let mut out = Vec::new();
    match pack_into(l, &mut out) {
        Ok(()) => {
            push_bytes(l, &out);
            1
        }
        Err(e) => {
            drop(out);
            raise(l, e)
        }
    }
}

fn get_integer(b: &[u8], little: bool, signed: bool) -> f64 {
    let size = b.len();
    let mut v: u64 = 0;
    for i in 0..size {
        let byte = if little { b[size - 1 - i] } else { b[i] };
        v = (v << 8) | byte as u64;
    }
    if !signed {
        return v as f64;
    }
    // The shift wraps as x86 does for sizes over 8 bytes.
    let mask = u64::MAX.wrapping_shl((size * 8) as u32 - 1);
    if v & mask != 0 {
        v |= mask;
    }
    v as i64 as f64
}

/// Pushes the values; returns how many (the next position included).
unsafe fn unpack_values(l: *mut lua_State) -> Result<c_int, Fail> {
    let mut fmt = Format::new(string_arg(l, 1)?);
    let data = string_arg(l, 2)?;
    let ld = data.len();
    let pos_arg = if ffi::lua_type(l, 3) <= 0 {
        1
    } else {
        number_arg(l, 3)? as i64
    };
    let mut pos = pos_arg as u64 as usize;
    if pos == 0 {
        return Err(Fail::Arg(3, "offset must be 1 or greater".into()));
    }
    pos -= 1;
    let mut n: c_int = 0;
    let short = || Fail::Arg(2, "data string too short".into());
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        pos = pos.wrapping_add(fmt.to_align(pos, opt, size));
        if size > ld || pos > ld - size {
            return Err(short());
        }
        if ffi::lua_checkstack(l, 2) == 0 {
            return Err(Fail::Msg("stack overflow (too many results)".into()));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let v = get_integer(&data[pos..pos + size], fmt.little, opt.is_ascii_lowercase());
                ffi::lua_pushnumber(l, v);
                n += 1;
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().unwrap_or_default();
                let f = if fmt.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                ffi::lua_pushnumber(l, f as f64);
                n += 1;
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().unwrap_or_default();
                let d = if fmt.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                ffi::lua_pushnumber(l, d);
                n += 1;
            }
            b'c' => {
                if size == 0 {
                    if n == 0 || ffi::lua_isnumber(l, -1) == 0 {
                        return Err(Fail::Msg("format 'c0' needs a previous size".into()));
                    }
                    size = ffi::lua_tonumber(l, -1) as u64 as usize;
                    ffi::lua_settop(l, -2);
                    n -= 1;
                    if size > ld || pos > ld - size {
                        return Err(short());
                    }
                }
                push_bytes(l, &data[pos..pos + size]);
                n += 1;
            }
            b's' => {
                let Some(end) = memchr::memchr(0, &data[pos..]) else {
                    return Err(Fail::Msg("unfinished string in data".into()));
                };
                size = end + 1;
                push_bytes(l, &data[pos..pos + end]);
                n += 1;
            }
            _ => fmt.control(opt)?,
        }
        pos = pos.wrapping_add(size);
    }
    ffi::lua_pushnumber(l, pos.wrapping_add(1) as f64);
    Ok(n + 1)
}

unsafe extern "C-unwind" fn unpack(l: *mut lua_State) -> c_int {
    match unpack_values(l) {
        Ok(n) => n,
        Err(e) => raise(l, e),
    }
}

unsafe fn size_of(l: *mut lua_State) -> Result<usize, Fail> {
    let mut fmt = Format::new(string_arg(l, 1)?);
    let mut pos = 0usize;
    while let Some(opt) = fmt.next() {
        let size = fmt.size(opt)?;
        pos += fmt.to_align(pos, opt, size);
        if opt == b's' {
            return Err(Fail::Arg(1, "option 's' has no fixed size".into()));
        }
        if opt == b'c' && size == 0 {
            return Err(Fail::Arg(1, "option 'c0' has no fixed size".into()));
        }
        if !opt.is_ascii_alphanumeric() {
            fmt.control(opt)?;
        }
        pos += size;
    }
    Ok(pos)
}

unsafe extern "C-unwind" fn size(l: *mut lua_State) -> c_int {
    match size_of(l) {
        Ok(n) => {
            ffi::lua_pushnumber(l, n as f64);
            1
        }
        Err(e) => raise(l, e),
    }
}

/// Opens `struct` as a global table.
pub(crate) unsafe fn open(l: *mut lua_State) {
    ffi::lua_createtable(l, 0, 3);
    for (name, f) in [
        (c"pack", pack as ffi::lua_CFunction),
        (c"unpack", unpack),
        (c"size", size),
    ] {
        ffi::lua_pushcfunction(l, f);
        ffi::lua_setfield(l, -2, name.as_ptr());
    }
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"struct".as_ptr());
}
