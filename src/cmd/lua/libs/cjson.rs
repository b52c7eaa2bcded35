//! `cjson`: JSON encoding and decoding with the behaviour of the Lua CJSON 2.1.0 library Redis
//! ships (its defaults: numbers as `%.14g`, sparse arrays refused past a ratio of 2 beyond 10
//! elements, nesting limited to 1000 both ways, `null` as the `cjson.null` light userdata,
//! hex/inf/nan numbers accepted when decoding) and its error texts. Written in Rust over
//! growable buffers, so no input can overflow one (CVE-2022-24834). Not here: the
//! configuration functions (`encode_max_depth`, `encode_sparse_array` ...) and `cjson.new`.

use std::ffi::{c_char, c_int, CStr};

use mlua_sys as ffi;

use super::super::api::{bytes_at, push_bytes};
use super::super::lua_State;

const MAX_DEPTH: usize = 1000;
const SPARSE_RATIO: i64 = 2;
const SPARSE_SAFE: i64 = 10;

/// Raises `msg` as `luaL_error` does (with the calling script's position).
unsafe fn raise(l: *mut lua_State, msg: String) -> c_int {
    ffi::luaL_where(l, 1);
    push_bytes(l, msg.as_bytes());
    drop(msg);
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

fn type_name(l: *mut lua_State, idx: c_int) -> String {
    unsafe {
        CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, idx)))
            .to_string_lossy()
            .into_owned()
    }
}

/// `%.14g`.
fn format_number(n: f64) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut c_char,
            buf.len(),
            c"%.14g".as_ptr(),
            n,
        )
    };
    buf[..(len.max(0) as usize).min(buf.len() - 1)].to_vec()
}

fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            8 => out.extend_from_slice(b"\\b"),
            9 => out.extend_from_slice(b"\\t"),
            10 => out.extend_from_slice(b"\\n"),
            12 => out.extend_from_slice(b"\\f"),
            13 => out.extend_from_slice(b"\\r"),
            0..=31 | 127 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

/// Encodes the value at the top of the stack (left there).
unsafe fn encode_value(l: *mut lua_State, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => escape_into(out, bytes_at(l, -1)),
        ffi::LUA_TNUMBER => {
            let n = ffi::lua_tonumber(l, -1);
            if !n.is_finite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            out.extend_from_slice(&format_number(n));
        }
        ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 {
            b"true"
        } else {
            b"false"
        }),
        ffi::LUA_TNIL => out.extend_from_slice(b"null"),
        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => {
            out.extend_from_slice(b"null")
        }
        ffi::LUA_TTABLE => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            if ffi::lua_checkstack(l, 3) == 0 {
                return Err("Cannot serialise, excessive nesting".into());
            }
            match array_length(l)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        ffi::lua_rawgeti_(l, -1, i as _);
                        let r = encode_value(l, out, depth);
                        ffi::lua_settop(l, -2);
                        r?;
                    }
                    out.push(b']');
                }
                _ => encode_object(l, out, depth)?,
            }
        }
        _ => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                type_name(l, -1)
            ))
        }
    }
    Ok(())
}

/// The array length of the table at the top (`None`: not an array), refusing sparse ones.
unsafe fn array_length(l: *mut lua_State) -> Result<Option<i64>, String> {
    let (mut max, mut items) = (0i64, 0i64);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        let key_ok = ffi::lua_type(l, -2) == ffi::LUA_TNUMBER && {
            let k = ffi::lua_tonumber(l, -2);
            k >= 1.0 && k.floor() == k && k < 9.0e15
        };
        if !key_ok {
            ffi::lua_settop(l, -3);
            return Ok(None);
        }
        max = max.max(ffi::lua_tonumber(l, -2) as i64);
        items += 1;
        ffi::lua_settop(l, -2);
    }
    if max > items * SPARSE_RATIO && max > SPARSE_SAFE {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

unsafe fn encode_object(l: *mut lua_State, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    out.push(b'{');
    let mut first = true;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if !first {
            out.push(b',');
        }
        first = false;
        match ffi::lua_type(l, -2) {
            ffi::LUA_TNUMBER => {
                out.push(b'"');
                out.extend_from_slice(&format_number(ffi::lua_tonumber(l, -2)));
                out.push(b'"');
            }
            ffi::LUA_TSTRING => escape_into(out, bytes_at(l, -2)),
            _ => {
                let name = type_name(l, -2);
                ffi::lua_settop(l, -3);
                return Err(format!(
                    "Cannot serialise {name}: table key must be a number or string"
                ));
            }
        }
        out.push(b':');
        let r = encode_value(l, out, depth);
        ffi::lua_settop(l, -2);
        if let Err(e) = r {
            ffi::lua_settop(l, -2);
            return Err(e);
        }
    }
    out.push(b'}');
    Ok(())
}

unsafe extern "C-unwind" fn encode(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        return ffi::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
    }
    let mut out = Vec::new();
    match encode_value(l, &mut out, 0) {
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

// --- decoding ---

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool,
    Null,
    Colon,
    Comma,
    End,
    /// With its message ("invalid token" ...).
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num => "T_NUMBER",
            Tok::Bool => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(m) => m,
        }
    }
}

struct Decoder<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    /// The last token's value.
    string: Vec<u8>,
    number: f64,
    boolean: bool,
}

impl Decoder<'_> {
    /// The next token and the (0-based) index its error is reported at.
    fn next(&mut self) -> (Tok, usize) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = self.s.get(self.pos) else {
            return (Tok::End, start);
        };
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start);
        }
        if c == b'"' {
            return self.string_token();
        }
        for (word, tok, val) in [
            (&b"true"[..], Tok::Bool, true),
            (b"false", Tok::Bool, false),
            (b"null", Tok::Null, false),
        ] {
            if self.s[self.pos..].starts_with(word) {
                self.pos += word.len();
                self.boolean = val;
                return (tok, start);
            }
        }
        if c == b'-' || c.is_ascii_digit() || matches!(c, b'i' | b'I' | b'n' | b'N') {
            // strtod, as the library: hex, inf and nan included.
            let rest = &self.s[self.pos..self.s.len().min(self.pos + 512)];
            let mut z = rest.to_vec();
            z.push(0);
            let mut end: *mut c_char = std::ptr::null_mut();
            let n = unsafe { libc::strtod(z.as_ptr() as *const c_char, &mut end) };
            let used = end as usize - z.as_ptr() as usize;
            if used > 0 {
                self.pos += used;
                self.number = n;
                return (Tok::Num, start);
            }
            if c == b'-' || c.is_ascii_digit() {
                return (Tok::Error("invalid number"), start);
            }
        }
        (Tok::Error("invalid token"), start)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    }

    fn string_token(&mut self) -> (Tok, usize) {
        let start = self.pos;
        self.pos += 1;
        self.string.clear();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return (Tok::Error("unexpected end of string"), self.pos);
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return (Tok::Str, start);
                }
                b'\\' => {
                    let at = self.pos;
                    let Some(&e) = self.s.get(self.pos + 1) else {
                        return (Tok::Error("unexpected end of string"), self.pos + 1);
                    };
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        self.string.push(b);
                        self.pos += 2;
                        continue;
                    }
                    if e != b'u' {
                        return (Tok::Error("invalid escape code"), at);
                    }
                    let bad = (Tok::Error("invalid unicode escape code"), at);
                    let Some(mut code) = self.hex4(at + 2) else {
                        return bad;
                    };
                    let mut len = 6;
                    if (0xDC00..=0xDFFF).contains(&code) {
                        return bad;
                    }
                    if (0xD800..=0xDBFF).contains(&code) {
                        if self.s.get(at + 6..at + 8) != Some(b"\\u") {
                            return bad;
                        }
                        let Some(low) = self.hex4(at + 8) else {
                            return bad;
                        };
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return bad;
                        }
                        code = (((code & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
                        len = 12;
                    }
                    let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
                    let mut b = [0u8; 4];
                    self.string
                        .extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                    self.pos += len;
                }
                _ => {
                    self.string.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

fn expected(what: &str, tok: Tok, index: usize) -> String {
    format!(
        "Expected {what} but found {} at character {}",
        tok.name(),
        index + 1
    )
}

/// Decodes one value starting with token `tok` and pushes it.
unsafe fn decode_value(
    l: *mut lua_State,
    d: &mut Decoder<'_>,
    tok: Tok,
    index: usize,
) -> Result<(), String> {
    match tok {
        Tok::Str => push_bytes(l, &d.string),
        Tok::Num => ffi::lua_pushnumber(l, d.number),
        Tok::Bool => ffi::lua_pushboolean(l, d.boolean as c_int),
        Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
        Tok::ObjBegin | Tok::ArrBegin => {
            d.depth += 1;
            if d.depth > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
                return Err(format!(
                    "Found too many nested data structures ({}) at character {}",
                    d.depth, d.pos
                ));
            }
            ffi::lua_newtable(l);
            if tok == Tok::ArrBegin {
                decode_array(l, d)?;
            } else {
                decode_object(l, d)?;
            }
            d.depth -= 1;
        }
        other => return Err(expected("value", other, index)),
    }
    Ok(())
}

unsafe fn decode_array(l: *mut lua_State, d: &mut Decoder<'_>) -> Result<(), String> {
    let (mut tok, mut index) = d.next();
    if tok == Tok::ArrEnd {
        return Ok(());
    }
    let mut i = 1;
    loop {
        decode_value(l, d, tok, index)?;
        ffi::lua_rawseti_(l, -2, i);
        i += 1;
        let (t, at) = d.next();
        match t {
            Tok::ArrEnd => return Ok(()),
            Tok::Comma => {}
            other => return Err(expected("comma or array end", other, at)),
        }
        (tok, index) = d.next();
    }
}

unsafe fn decode_object(l: *mut lua_State, d: &mut Decoder<'_>) -> Result<(), String> {
    let (mut tok, mut index) = d.next();
    if tok == Tok::ObjEnd {
        return Ok(());
    }
    loop {
        if tok != Tok::Str {
            return Err(expected("object key string", tok, index));
        }
        push_bytes(l, &d.string);
        let (t, at) = d.next();
        if t != Tok::Colon {
            return Err(expected("colon", t, at));
        }
        let (t, at) = d.next();
        decode_value(l, d, t, at)?;
        ffi::lua_rawset(l, -3);
        let (t, at) = d.next();
        match t {
            Tok::ObjEnd => return Ok(()),
            Tok::Comma => {}
            other => return Err(expected("comma or object end", other, at)),
        }
        (tok, index) = d.next();
    }
}

unsafe extern "C-unwind" fn decode(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 1 {
        return ffi::luaL_argerror(l, 1, c"expected 1 argument".as_ptr());
    }
    let mut len = 0usize;
    let p = ffi::luaL_checklstring(l, 1, &mut len);
    let s = std::slice::from_raw_parts(p as *const u8, len);
    let result = {
        let mut d = Decoder {
            s,
            pos: 0,
            depth: 0,
            string: Vec::new(),
            number: 0.0,
            boolean: false,
        };
        let (tok, index) = d.next();
        decode_value(l, &mut d, tok, index).and_then(|()| match d.next() {
            (Tok::End, _) => Ok(()),
            (t, at) => Err(expected("the end", t, at)),
        })
    };
    match result {
        Ok(()) => 1,
        Err(e) => raise(l, e),
    }
}

/// Opens `cjson` as a global table.
pub(crate) unsafe fn open(l: *mut lua_State) {
    ffi::lua_createtable(l, 0, 5);
    ffi::lua_pushcfunction(l, encode);
    ffi::lua_setfield(l, -2, c"encode".as_ptr());
    ffi::lua_pushcfunction(l, decode);
    ffi::lua_setfield(l, -2, c"decode".as_ptr());
    ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
    ffi::lua_setfield(l, -2, c"null".as_ptr());
    push_bytes(l, b"cjson");
    ffi::lua_setfield(l, -2, c"_NAME".as_ptr());
    push_bytes(l, b"2.1.0");
    ffi::lua_setfield(l, -2, c"_VERSION".as_ptr());
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"cjson".as_ptr());
}
