//! `cjson`: JSON encoding and decoding with the behaviour of the Lua CJSON 2.1.0 library Redis
//! ships: its defaults (numbers as `%.14g`, sparse arrays refused past a ratio of 2 beyond 10
//! elements, nesting limited to 1000 both ways, `null` as the `cjson.null` light userdata,
//! hex/inf/nan numbers accepted when decoding), its configuration functions
//! (`encode_sparse_array`, `encode_max_depth`, ... each returning the setting now in force),
//! `cjson.new` (a table with its own settings) and its error texts. A table's settings live
//! in a userdata every one of its functions holds as upvalue 1, as the library keeps them,
//! so they last as long as the interpreter (one per core here, one per server in Redis).
//! Written in Rust over growable buffers, so no input can overflow one (CVE-2022-24834).

use std::ffi::{c_char, c_int, CStr};

use mlua_sys as ffi;

use super::super::api::{bytes_at, push_bytes};
use super::super::lua_State;

/// One `cjson` table's settings (the library's `json_config_t`, less its buffers).
#[derive(Clone, Copy)]
struct Config {
    /// Excessively sparse arrays become objects instead of an error.
    sparse_convert: bool,
    /// 0: sparse arrays always allowed; else refused past `max > items * ratio`...
    sparse_ratio: i32,
    /// ... once `max` is above this.
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// NaN and Inf when encoding: 0 refused, 1 written (`nan`, `inf`), 2 as `null`.
    encode_invalid_numbers: i32,
    /// Hex, inf, nan, `+` and leading zeros accepted when decoding.
    decode_invalid_numbers: bool,
    /// Only reported: buffers are not kept between calls here.
    keep_buffer: bool,
    /// Significant digits of encoded numbers (1 to 14).
    precision: i32,
}

const DEFAULTS: Config = Config {
    sparse_convert: false,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: true,
    keep_buffer: true,
    precision: 14,
};

/// The settings of the table the running function belongs to (its upvalue 1).
unsafe fn config<'a>(l: *mut lua_State) -> &'a mut Config {
    let p = ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *mut Config;
    // Every function of a table is created with the userdata (`new_table`).
    &mut *p
}

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

/// `%.<precision>g`.
fn format_number(n: f64, precision: i32) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let len = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut c_char,
            buf.len(),
            c"%.*g".as_ptr(),
            precision as c_int,
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

/// A number as `encode_invalid_numbers` and `encode_number_precision` want it.
fn append_number(cfg: &Config, out: &mut Vec<u8>, n: f64) -> Result<(), String> {
    match cfg.encode_invalid_numbers {
        0 if !n.is_finite() => return Err("Cannot serialise number: must not be NaN or Inf".into()),
        1 if n.is_nan() => out.extend_from_slice(b"nan"),
        2 if !n.is_finite() => out.extend_from_slice(b"null"),
        _ => out.extend_from_slice(&format_number(n, cfg.precision)),
    }
    Ok(())
}

/// Encodes the value at the top of the stack (left there).
unsafe fn encode_value(
    l: *mut lua_State,
    cfg: &Config,
    out: &mut Vec<u8>,
    depth: i32,
) -> Result<(), String> {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => escape_into(out, bytes_at(l, -1)),
        ffi::LUA_TNUMBER => append_number(cfg, out, ffi::lua_tonumber(l, -1))?,
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
            if depth > cfg.encode_max_depth || ffi::lua_checkstack(l, 3) == 0 {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(l, cfg)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        ffi::lua_rawgeti_(l, -1, i as _);
                        let r = encode_value(l, cfg, out, depth);
                        ffi::lua_settop(l, -2);
                        r?;
                    }
                    out.push(b']');
                }
                _ => encode_object(l, cfg, out, depth)?,
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

/// The array length of the table at the top (`None`: not an array, or a sparse one to
/// convert), refusing sparse ones unless converted.
unsafe fn array_length(l: *mut lua_State, cfg: &Config) -> Result<Option<i64>, String> {
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
    let ratio = i64::from(cfg.sparse_ratio);
    if ratio > 0 && max > items * ratio && max > i64::from(cfg.sparse_safe) {
        if !cfg.sparse_convert {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(None);
    }
    Ok(Some(max))
}

unsafe fn encode_object(
    l: *mut lua_State,
    cfg: &Config,
    out: &mut Vec<u8>,
    depth: i32,
) -> Result<(), String> {
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
                if let Err(e) = append_number(cfg, out, ffi::lua_tonumber(l, -2)) {
                    ffi::lua_settop(l, -3);
                    return Err(e);
                }
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
        let r = encode_value(l, cfg, out, depth);
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
    let cfg = *config(l);
    let mut out = Vec::new();
    match encode_value(l, &cfg, &mut out, 0) {
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
    depth: i32,
    max_depth: i32,
    /// `decode_invalid_numbers`.
    invalid_numbers: bool,
    /// The last token's value.
    string: Vec<u8>,
    number: f64,
    boolean: bool,
}

impl Decoder<'_> {
    /// The next token and the (0-based) index its error is reported at. A zero byte ends
    /// the input, as the library reads it as a C string.
    fn next(&mut self) -> (Tok, usize) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            0 => return (Tok::End, start),
            b'{' => Tok::ObjBegin,
            b'}' => Tok::ObjEnd,
            b'[' => Tok::ArrBegin,
            b']' => Tok::ArrEnd,
            b':' => Tok::Colon,
            b',' => Tok::Comma,
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.invalid_numbers && self.invalid_number() {
                    return (Tok::Error("invalid number"), start);
                }
                return self.number_token();
            }
            _ => Tok::End,
        };
        if single != Tok::End {
            self.pos += 1;
            return (single, start);
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
        if self.invalid_numbers && self.invalid_number() {
            // Only what strict JSON refuses (inf, nan, +1): other words are invalid tokens.
            return self.number_token();
        }
        (Tok::Error("invalid token"), start)
    }

    /// The byte at `i`, 0 past the end (the C string's terminator).
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// A number strtod takes but strict JSON does not: `+1`, `0x10`, `01`, inf, nan.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let word = &self.s[p..self.s.len().min(p + 3)];
        word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"nan")
    }

    /// strtod, as the library: hex, inf and nan included.
    fn number_token(&mut self) -> (Tok, usize) {
        let start = self.pos;
        let rest = &self.s[self.pos..self.s.len().min(self.pos + 512)];
        let mut z = rest.to_vec();
        z.push(0);
        let mut end: *mut c_char = std::ptr::null_mut();
        let n = unsafe { libc::strtod(z.as_ptr() as *const c_char, &mut end) };
        let used = end as usize - z.as_ptr() as usize;
        if used == 0 {
            return (Tok::Error("invalid number"), start);
        }
        self.pos += used;
        self.number = n;
        (Tok::Num, start)
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.s.get(at..at + 4)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    }

    fn string_token(&mut self) -> (Tok, usize) {
        let start = self.pos;
        self.pos += 1;
        self.string.clear();
        loop {
            let c = self.at(self.pos);
            if c == 0 {
                return (Tok::Error("unexpected end of string"), self.pos);
            }
            match c {
                b'"' => {
                    self.pos += 1;
                    return (Tok::Str, start);
                }
                b'\\' => {
                    let at = self.pos;
                    let e = self.at(self.pos + 1);
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
            if d.depth > d.max_depth || ffi::lua_checkstack(l, 4) == 0 {
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
    if len >= 2 && (s[0] == 0 || s[1] == 0) {
        return raise(l, "JSON parser does not support UTF-16 or UTF-32".into());
    }
    let cfg = *config(l);
    let result = {
        let mut d = Decoder {
            s,
            pos: 0,
            depth: 0,
            max_depth: cfg.decode_max_depth,
            invalid_numbers: cfg.decode_invalid_numbers,
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

// --- configuration ---

/// Checks that at most `n` arguments came and pads them to `n` with nils.
unsafe fn config_args<'a>(l: *mut lua_State, n: c_int) -> &'a mut Config {
    if ffi::lua_gettop(l) > n {
        ffi::luaL_argerror(l, n + 1, c"found too many arguments".as_ptr());
    }
    ffi::lua_settop(l, n);
    config(l)
}

/// Sets `setting` from argument `idx` unless nil (an integer in `min..=max`); pushes it.
unsafe fn integer_option(l: *mut lua_State, idx: c_int, setting: &mut i32, min: i32, max: i32) {
    if ffi::lua_isnil(l, idx) == 0 {
        // The library keeps it in a C int.
        let value = ffi::luaL_checkinteger(l, idx) as i32;
        if !(min..=max).contains(&value) {
            let msg = format!("expected integer between {min} and {max}\0");
            // Raised from a copy on the Lua stack: nothing of ours is left to drop.
            ffi::lua_pushlstring(l, msg.as_ptr() as *const c_char, msg.len() - 1);
            drop(msg);
            ffi::luaL_argerror(l, 1, ffi::lua_tolstring(l, -1, std::ptr::null_mut()));
        }
        *setting = value;
    }
    ffi::lua_pushinteger(l, *setting as ffi::lua_Integer);
}

/// Sets `setting` from argument `idx` unless nil: a boolean, or one of `options` by name
/// (their index); pushes it back as a boolean when it is 0 or 1, else by name.
unsafe fn enum_option(l: *mut lua_State, idx: c_int, setting: &mut i32, options: &[&'static CStr]) {
    if ffi::lua_isnil(l, idx) == 0 {
        if ffi::lua_isboolean(l, idx) != 0 {
            *setting = ffi::lua_toboolean(l, idx);
        } else {
            // luaL_checkoption's rule and words, with nothing of ours to drop if it raises.
            let name = CStr::from_ptr(ffi::luaL_checklstring(l, idx, std::ptr::null_mut()));
            match options.iter().position(|o| *o == name) {
                Some(i) => *setting = i as i32,
                None => {
                    push_bytes(l, b"invalid option '");
                    push_bytes(l, name.to_bytes());
                    push_bytes(l, b"'");
                    ffi::lua_concat(l, 3);
                    ffi::luaL_argerror(l, idx, ffi::lua_tolstring(l, -1, std::ptr::null_mut()));
                }
            }
        }
    }
    match *setting {
        0 | 1 => ffi::lua_pushboolean(l, *setting),
        n => {
            let name = options[n as usize];
            ffi::lua_pushstring(l, name.as_ptr());
        }
    }
}

const ON_OFF: [&CStr; 2] = [c"off", c"on"];

unsafe fn flag_option(l: *mut lua_State, idx: c_int, flag: &mut bool) {
    let mut v = *flag as i32;
    enum_option(l, idx, &mut v, &ON_OFF);
    *flag = v != 0;
}

unsafe extern "C-unwind" fn encode_sparse_array(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 3);
    flag_option(l, 1, &mut cfg.sparse_convert);
    integer_option(l, 2, &mut cfg.sparse_ratio, 0, i32::MAX);
    integer_option(l, 3, &mut cfg.sparse_safe, 0, i32::MAX);
    3
}

unsafe extern "C-unwind" fn encode_max_depth(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    integer_option(l, 1, &mut cfg.encode_max_depth, 1, i32::MAX);
    1
}

unsafe extern "C-unwind" fn decode_max_depth(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    integer_option(l, 1, &mut cfg.decode_max_depth, 1, i32::MAX);
    1
}

unsafe extern "C-unwind" fn encode_number_precision(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    integer_option(l, 1, &mut cfg.precision, 1, 14);
    1
}

unsafe extern "C-unwind" fn encode_keep_buffer(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    flag_option(l, 1, &mut cfg.keep_buffer);
    1
}

unsafe extern "C-unwind" fn encode_invalid_numbers(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    enum_option(
        l,
        1,
        &mut cfg.encode_invalid_numbers,
        &[c"off", c"on", c"null"],
    );
    1
}

unsafe extern "C-unwind" fn decode_invalid_numbers(l: *mut lua_State) -> c_int {
    let cfg = config_args(l, 1);
    flag_option(l, 1, &mut cfg.decode_invalid_numbers);
    1
}

/// `cjson.new()`: a table of its own, with default settings.
unsafe extern "C-unwind" fn new(l: *mut lua_State) -> c_int {
    new_table(l);
    1
}

/// Pushes a `cjson` table whose functions share one fresh set of settings.
unsafe fn new_table(l: *mut lua_State) {
    const FUNCTIONS: [(&CStr, ffi::lua_CFunction); 10] = [
        (c"encode", encode),
        (c"decode", decode),
        (c"encode_sparse_array", encode_sparse_array),
        (c"encode_max_depth", encode_max_depth),
        (c"decode_max_depth", decode_max_depth),
        (c"encode_number_precision", encode_number_precision),
        (c"encode_keep_buffer", encode_keep_buffer),
        (c"encode_invalid_numbers", encode_invalid_numbers),
        (c"decode_invalid_numbers", decode_invalid_numbers),
        (c"new", new),
    ];
    ffi::lua_createtable(l, 0, FUNCTIONS.len() as c_int + 3);
    let cfg = ffi::lua_newuserdata(l, std::mem::size_of::<Config>()) as *mut Config;
    cfg.write(DEFAULTS);
    for (name, f) in FUNCTIONS {
        ffi::lua_pushvalue(l, -1);
        ffi::lua_pushcclosure(l, f, 1);
        ffi::lua_setfield(l, -3, name.as_ptr());
    }
    ffi::lua_settop(l, -2);
    ffi::lua_pushlightuserdata(l, std::ptr::null_mut());
    ffi::lua_setfield(l, -2, c"null".as_ptr());
    push_bytes(l, b"cjson");
    ffi::lua_setfield(l, -2, c"_NAME".as_ptr());
    push_bytes(l, b"2.1.0");
    ffi::lua_setfield(l, -2, c"_VERSION".as_ptr());
}

/// Opens `cjson` as a global table.
pub(crate) unsafe fn open(l: *mut lua_State) {
    new_table(l);
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"cjson".as_ptr());
}
