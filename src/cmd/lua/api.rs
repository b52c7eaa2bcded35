//! The `redis` API a script sees (script_lua.c's `luaRegisterRedisAPI`), the sandbox, and
//! the conversions between Lua values and replies both ways, in RESP2 and RESP3.

use crate::shard::ClientIdent;
use std::ffi::{c_char, c_int, CStr};

use mlua_sys as ffi;

use super::{current, lua_State, lua_enablereadonlytable, lua_isreadonlytable, Kind, RunCtx};
use crate::cmd::{self, flag, table, Exec, Handler};
use crate::resp::{Args, OwnedArgs, Reply};
use crate::shard::tx::ShardSet;

/// Globals a script may have (Redis's allow lists, less `getfenv`, `setfenv` and `newproxy`,
/// which Redis's fixes for CVE-2025-46818 took away too); anything else the libraries define
/// is removed before the globals are locked.
const ALLOWED_GLOBALS: &[&str] = &[
    "string",
    "cjson",
    "bit",
    "cmsgpack",
    "math",
    "table",
    "struct",
    "redis",
    "__redis__err__handler",
    "xpcall",
    "tostring",
    "setmetatable",
    "next",
    "assert",
    "tonumber",
    "rawequal",
    "collectgarbage",
    "getmetatable",
    "rawset",
    "pcall",
    "coroutine",
    "type",
    "_G",
    "select",
    "unpack",
    "gcinfo",
    "pairs",
    "rawget",
    "loadstring",
    "ipairs",
    "_VERSION",
    "load",
    "error",
    "debug",
];

/// Redis's log levels (`LL_DEBUG` ... `LL_WARNING`).
const LOG_LEVELS: &[(&CStr, f64)] = &[
    (c"LOG_DEBUG", 0.0),
    (c"LOG_VERBOSE", 1.0),
    (c"LOG_NOTICE", 2.0),
    (c"LOG_WARNING", 3.0),
];

const REGISTRY_LIBRARY_API: &CStr = c"__library_api__";
const REGISTRY_GLOBALS: &CStr = c"__globals__";

/// Pushes a Rust string.
#[inline]
pub(crate) unsafe fn push_bytes(l: *mut lua_State, s: &[u8]) {
    ffi::lua_pushlstring_(l, s.as_ptr() as *const c_char, s.len());
}

unsafe fn set_fn(l: *mut lua_State, name: &CStr, f: ffi::lua_CFunction) {
    ffi::lua_pushcfunction(l, f);
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn set_num(l: *mut lua_State, name: &CStr, v: f64) {
    ffi::lua_pushnumber(l, v);
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn open_lib(l: *mut lua_State, name: &CStr, f: ffi::lua_CFunction) {
    ffi::lua_pushcfunction(l, f);
    ffi::lua_pushstring_(l, name.as_ptr());
    ffi::lua_call(l, 1, 0);
}

/// Builds an interpreter's environment as `scriptingInit` / `luaEngineInitEngine` do.
pub(super) unsafe fn setup(l: *mut lua_State, kind: Kind) {
    open_lib(l, c"", ffi::luaopen_base);
    open_lib(l, c"table", ffi::luaopen_table);
    open_lib(l, c"string", ffi::luaopen_string);
    open_lib(l, c"math", ffi::luaopen_math);
    open_lib(l, c"debug", ffi::luaopen_debug);
    super::libs::open_all(l);
    remove_unlisted_globals(l);

    ffi::lua_pushcfunction(l, redis_pcall_builtin);
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"pcall".as_ptr());

    // The `redis` table.
    ffi::lua_createtable(l, 0, 32);
    set_fn(l, c"call", redis_call);
    set_fn(l, c"pcall", redis_pcall);
    register_log_and_version(l);
    set_fn(l, c"setresp", redis_setresp);
    set_fn(l, c"sha1hex", redis_sha1hex);
    set_fn(l, c"error_reply", redis_error_reply);
    set_fn(l, c"status_reply", redis_status_reply);
    set_fn(l, c"set_repl", redis_set_repl);
    set_num(l, c"REPL_NONE", 0.0);
    set_num(l, c"REPL_AOF", 1.0);
    set_num(l, c"REPL_SLAVE", 2.0);
    set_num(l, c"REPL_REPLICA", 2.0);
    set_num(l, c"REPL_ALL", 3.0);
    set_fn(l, c"acl_check_cmd", redis_acl_check_cmd);
    if kind == Kind::Eval {
        set_fn(l, c"breakpoint", redis_breakpoint);
        set_fn(l, c"debug", redis_debug);
        set_fn(l, c"replicate_commands", redis_replicate_commands);
    }
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, c"redis".as_ptr());

    // math.random / math.randomseed with Redis's own generator.
    ffi::lua_getfield_(l, ffi::LUA_GLOBALSINDEX, c"math".as_ptr());
    set_fn(l, c"random", math_random);
    set_fn(l, c"randomseed", math_randomseed);
    ffi::lua_settop(l, -2);

    match kind {
        Kind::Eval => {
            // The pcall error handler EVAL keeps as a global (we read errors from the
            // failed coroutine instead, but scripts can see and call it as in Redis);
            // it takes `debug` with it.
            run_setup_code(
                l,
                b"local dbg = debug\n\
                  debug = nil\n\
                  function __redis__err__handler(err)\n\
                  \x20 local i = dbg.getinfo(2,'nSl')\n\
                  \x20 if i and i.what == 'C' then\n\
                  \x20   i = dbg.getinfo(3,'nSl')\n\
                  \x20 end\n\
                  \x20 if type(err) ~= 'table' then\n\
                  \x20   err = {err='ERR ' .. tostring(err)}\
                  \x20 end\
                  \x20 if i then\n\
                  \x20   err['source'] = i.source\n\
                  \x20   err['line'] = i.currentline\n\
                  \x20 end\
                  \x20 return err\n\
                  end\n",
            );
            ffi::lua_pushvalue(l, ffi::LUA_GLOBALSINDEX);
            set_error_metatable(l);
            protect_recursively(l);
            ffi::lua_settop(l, -2);
        }
        Kind::Function => {
            // What library code sees while it loads: `redis` with register_function, log
            // and the version only.
            ffi::lua_newtable(l);
            ffi::lua_newtable(l);
            set_fn(l, c"register_function", register_function);
            register_log_and_version(l);
            set_error_metatable(l);
            ffi::lua_setfield(l, -2, c"redis".as_ptr());
            set_error_metatable(l);
            protect_recursively(l);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, REGISTRY_LIBRARY_API.as_ptr());
            run_setup_code(l, b"debug = nil\n");
            ffi::lua_pushvalue(l, ffi::LUA_GLOBALSINDEX);
            set_error_metatable(l);
            protect_recursively(l);
            ffi::lua_settop(l, -2);
            ffi::lua_pushvalue(l, ffi::LUA_GLOBALSINDEX);
            ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, REGISTRY_GLOBALS.as_ptr());
        }
    }
    // The metatable strings share is reachable through getmetatable(''), not from the
    // globals: it is read-only too (CVE-2025-46818).
    push_bytes(l, b"");
    if ffi::lua_getmetatable(l, -1) != 0 {
        protect_recursively(l);
        ffi::lua_settop(l, -2);
    }
    ffi::lua_settop(l, -2);
    if kind == Kind::Function {
        // Functions see an empty read-only table whose metatable finds the real globals
        // (or the load-time API while a library loads: `switch_globals`).
        ffi::lua_newtable(l);
        ffi::lua_newtable(l);
        ffi::lua_pushvalue(l, ffi::LUA_GLOBALSINDEX);
        ffi::lua_setfield(l, -2, c"__index".as_ptr());
        lua_enablereadonlytable(l, -1, 1);
        ffi::lua_setmetatable(l, -2);
        lua_enablereadonlytable(l, -1, 1);
        ffi::lua_replace(l, ffi::LUA_GLOBALSINDEX);
    }
}

unsafe fn run_setup_code(l: *mut lua_State, code: &[u8]) {
    let status = ffi::luaL_loadbuffer(
        l,
        code.as_ptr() as *const c_char,
        code.len(),
        c"@err_handler_def".as_ptr(),
    );
    if status == 0 {
        ffi::lua_pcall(l, 0, 0, 0);
    } else {
        ffi::lua_settop(l, -2);
    }
}

unsafe fn register_log_and_version(l: *mut lua_State) {
    set_fn(l, c"log", redis_log);
    for (name, level) in LOG_LEVELS {
        set_num(l, name, *level);
    }
    set_num(l, c"REDIS_VERSION_NUM", redis_version_num() as f64);
    push_bytes(l, crate::REDIS_VERSION.as_bytes());
    ffi::lua_setfield(l, -2, c"REDIS_VERSION".as_ptr());
}

/// `REDIS_VERSION_NUM`: 0x00MMmmpp.
fn redis_version_num() -> u32 {
    let mut parts = crate::REDIS_VERSION
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}

/// Drops every global that is not on Redis's allow lists (`dofile`, `loadfile`, `print` ...).
unsafe fn remove_unlisted_globals(l: *mut lua_State) {
    let mut remove: Vec<Vec<u8>> = Vec::new();
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, ffi::LUA_GLOBALSINDEX) != 0 {
        ffi::lua_settop(l, -2);
        if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
            let name = bytes_at(l, -1).to_vec();
            if !ALLOWED_GLOBALS
                .iter()
                .any(|a| a.as_bytes() == name.as_slice())
            {
                remove.push(name);
            }
        }
    }
    for name in remove {
        push_bytes(l, &name);
        ffi::lua_pushnil(l);
        ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
    }
}

/// The table at the top gets a metatable whose `__index` refuses unknown names
/// (`luaSetErrorMetatable`).
unsafe fn set_error_metatable(l: *mut lua_State) {
    ffi::lua_newtable(l);
    ffi::lua_pushcfunction(l, protected_table_error);
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    ffi::lua_setmetatable(l, -2);
}

/// Makes the table at the top, every table reachable from it and their metatables read-only
/// (`luaSetTableProtectionRecursively`).
unsafe fn protect_recursively(l: *mut lua_State) {
    if lua_isreadonlytable(l, -1) != 0 {
        return;
    }
    lua_enablereadonlytable(l, -1, 1);
    ffi::lua_checkstack(l, 2);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            protect_recursively(l);
        }
        ffi::lua_settop(l, -2);
    }
    if ffi::lua_getmetatable(l, -1) != 0 {
        protect_recursively(l);
        ffi::lua_settop(l, -2);
    }
}

/// Points the function interpreter's globals at the load-time API (`loading`) or back at
/// the real globals.
pub(super) unsafe fn switch_globals(l: *mut lua_State, loading: bool) {
    if ffi::lua_getmetatable(l, ffi::LUA_GLOBALSINDEX) == 0 {
        return;
    }
    lua_enablereadonlytable(l, -1, 0);
    let key = if loading {
        REGISTRY_LIBRARY_API
    } else {
        REGISTRY_GLOBALS
    };
    ffi::lua_getfield_(l, ffi::LUA_REGISTRYINDEX, key.as_ptr());
    ffi::lua_setfield(l, -2, c"__index".as_ptr());
    lua_enablereadonlytable(l, -1, 1);
    ffi::lua_settop(l, -2);
}

/// The bytes of the string (or number, converted in place) at `idx`; empty otherwise.
#[inline]
pub(crate) unsafe fn bytes_at<'a>(l: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// Pushes Redis's error table `{err = "<CODE> <msg>"}` for `text`, which is either
/// `-CODE msg`, or a bare message that gets `ERR` (`luaPushErrorBuff`).
pub(super) unsafe fn push_error_table(l: *mut lua_State, text: &[u8]) {
    let line = error_text(text);
    ffi::lua_createtable(l, 0, 2);
    push_bytes(l, &line);
    ffi::lua_setfield(l, -2, c"err".as_ptr());
}

/// `luaPushErrorBuff`'s message: the code (given after a `-`, else `ERR`), a space, the
/// message with trailing CR/LF trimmed.
fn error_text(text: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match memchr::memchr(b' ', rest) {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let start = msg
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(msg.len());
    let end = msg
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(start, |e| e + 1);
    let mut line = code.to_vec();
    line.push(b' ');
    line.extend_from_slice(&msg[start..end.max(start)]);
    line
}

/// An error table that also says its error was already counted (a command's own error).
unsafe fn push_command_error_table(l: *mut lua_State, text: &[u8]) {
    push_error_table(l, text);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_setfield(l, -2, c"ignore_error_stats_update".as_ptr());
}

/// The message of an error value (a load error): `err` of a table, else the value.
pub(super) unsafe fn error_message(l: *mut lua_State, idx: c_int) -> String {
    let idx = if idx < 0 {
        ffi::lua_gettop(l) + idx + 1
    } else {
        idx
    };
    if ffi::lua_type(l, idx) == ffi::LUA_TTABLE {
        ffi::lua_getfield_(l, idx, c"err".as_ptr());
        let s = String::from_utf8_lossy(bytes_at(l, -1)).into_owned();
        ffi::lua_settop(l, -2);
        return s;
    }
    format!("ERR {}", String::from_utf8_lossy(&tostring(l, idx)))
}

/// `tostring(v)` for an error value that is not a table.
unsafe fn tostring(l: *mut lua_State, idx: c_int) -> Vec<u8> {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TSTRING | ffi::LUA_TNUMBER => {
            ffi::lua_pushvalue(l, idx);
            let s = bytes_at(l, -1).to_vec();
            ffi::lua_settop(l, -2);
            s
        }
        ffi::LUA_TNIL => b"nil".to_vec(),
        ffi::LUA_TBOOLEAN => {
            if ffi::lua_toboolean(l, idx) != 0 {
                b"true".to_vec()
            } else {
                b"false".to_vec()
            }
        }
        t => {
            let name = CStr::from_ptr(ffi::lua_typename(l, t)).to_string_lossy();
            format!("{name}: {:p}", ffi::lua_topointer(l, idx)).into_bytes()
        }
    }
}

/// The error line of a script that failed in coroutine `co` (its stack is left as it was
/// when the error was raised): Redis's error handler and `luaCallFunction` together.
pub(super) unsafe fn error_line(co: *mut lua_State, funcname: &str) -> String {
    let top = ffi::lua_gettop(co);
    // Where: the function that raised it, or its caller if that was a C function.
    let mut ar: ffi::lua_Debug = std::mem::zeroed();
    let mut place: Option<(String, i32)> = None;
    for level in 0..2 {
        if ffi::lua_getstack(co, level, &mut ar) == 0 {
            break;
        }
        ffi::lua_getinfo(co, c"nSl".as_ptr(), &mut ar);
        let what = CStr::from_ptr(ar.what).to_bytes();
        let source = CStr::from_ptr(ar.source).to_string_lossy().into_owned();
        place = Some((source, ar.currentline));
        if what != b"C" {
            break;
        }
    }
    let (msg, extra_ok) = if top > 0 && ffi::lua_type(co, top) == ffi::LUA_TTABLE {
        ffi::lua_getfield_(co, top, c"err".as_ptr());
        let msg = if ffi::lua_isstring(co, -1) != 0 {
            String::from_utf8_lossy(bytes_at(co, -1)).into_owned()
        } else {
            String::from("(null)")
        };
        ffi::lua_settop(co, top);
        (msg, true)
    } else if top > 0 {
        (
            format!("ERR {}", String::from_utf8_lossy(&tostring(co, top))),
            true,
        )
    } else {
        ("ERR execution failure".to_string(), false)
    };
    match place {
        Some((source, line)) if extra_ok => {
            format!("{msg} script: {funcname}, on {source}:{line}.")
        }
        _ => msg,
    }
}

// ---------------------------------------------------------------------------------------
// Lua -> reply
// ---------------------------------------------------------------------------------------

/// `(long long)` of a Lua number as x86-64 computes it: out of range or NaN is i64::MIN.
fn lua_number_to_i64(n: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

/// `%.17g` as C formats it.
fn format_g17(v: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    crate::util::num::format_g17(v, &mut out);
    out
}

/// Replies with the value at the top of `l`'s stack and pops it (`luaReplyToRedisReply`).
/// `script_resp3`: the protocol the script set with `redis.setresp` (decides booleans).
pub(super) unsafe fn lua_to_reply(l: *mut lua_State, script_resp3: bool, out: &mut Reply) {
    lua_to_reply_depth(l, script_resp3, out, 0);
}

unsafe fn lua_to_reply_depth(l: *mut lua_State, script_resp3: bool, out: &mut Reply, depth: u32) {
    if depth > 1000 || ffi::lua_checkstack(l, 4) == 0 {
        out.error_line("ERR reached lua stack limit");
        ffi::lua_settop(l, -2);
        return;
    }
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => out.bulk(bytes_at(l, -1)),
        ffi::LUA_TBOOLEAN => {
            let v = ffi::lua_toboolean(l, -1) != 0;
            if !script_resp3 {
                if v {
                    out.int(1);
                } else {
                    out.null();
                }
            } else {
                out.boolean(v);
            }
        }
        ffi::LUA_TNUMBER => out.int(lua_number_to_i64(ffi::lua_tonumber(l, -1))),
        ffi::LUA_TTABLE => {
            table_to_reply(l, script_resp3, out, depth);
            return;
        }
        _ => out.null(),
    }
    ffi::lua_settop(l, -2);
}

/// Field `name` of the table at the top, pushed; returns its type.
unsafe fn raw_field(l: *mut lua_State, name: &CStr) -> c_int {
    ffi::lua_pushstring_(l, name.as_ptr());
    ffi::lua_rawget_(l, -2);
    ffi::lua_type(l, -1)
}

unsafe fn table_to_reply(l: *mut lua_State, script_resp3: bool, out: &mut Reply, depth: u32) {
    if raw_field(l, c"err") == ffi::LUA_TSTRING {
        let msg = bytes_at(l, -1).to_vec();
        ffi::lua_settop(l, -3);
        let text = String::from_utf8_lossy(&msg).replace(['\r', '\n'], " ");
        // `addReplyErrorFormatEx(c, .., "-%s", msg)`: the message carries its own code.
        out.buf.push(b'-');
        out.buf.extend_from_slice(text.as_bytes());
        out.buf.extend_from_slice(b"\r\n");
        return;
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"ok") == ffi::LUA_TSTRING {
        let text = String::from_utf8_lossy(bytes_at(l, -1)).replace(['\r', '\n'], " ");
        out.simple(&text);
        ffi::lua_settop(l, -3);
        return;
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"double") == ffi::LUA_TNUMBER {
        reply_double(out, ffi::lua_tonumber(l, -1));
        ffi::lua_settop(l, -3);
        return;
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"big_number") == ffi::LUA_TSTRING {
        let text: Vec<u8> = bytes_at(l, -1)
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        if out.resp3 {
            out.buf.push(b'(');
            out.buf.extend_from_slice(&text);
            out.buf.extend_from_slice(b"\r\n");
        } else {
            out.bulk(&text);
        }
        ffi::lua_settop(l, -3);
        return;
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"verbatim_string") == ffi::LUA_TTABLE {
        if raw_field(l, c"format") == ffi::LUA_TSTRING {
            let format = bytes_at(l, -1).to_vec();
            ffi::lua_pushstring_(l, c"string".as_ptr());
            ffi::lua_rawget_(l, -3);
            if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
                let s = bytes_at(l, -1);
                if out.resp3 {
                    // `addReplyVerbatim`: the format's first 3 bytes, a colon, the text.
                    let mut fmt = [b' '; 3];
                    for (d, s) in fmt.iter_mut().zip(format.iter()) {
                        *d = *s;
                    }
                    out.buf.push(b'=');
                    out.buf
                        .extend_from_slice(itoa::Buffer::new().format(s.len() + 4).as_bytes());
                    out.buf.extend_from_slice(b"\r\n");
                    out.buf.extend_from_slice(&fmt);
                    out.buf.push(b':');
                    out.buf.extend_from_slice(s);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.bulk(s);
                }
                ffi::lua_settop(l, -5);
                return;
            }
            ffi::lua_settop(l, -2);
        }
        ffi::lua_settop(l, -2);
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"map") == ffi::LUA_TTABLE {
        let mut inner = Reply::new(out.resp3);
        let mut n = 0;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pushvalue(l, -2);
            lua_to_reply_depth(l, script_resp3, &mut inner, depth + 1);
            lua_to_reply_depth(l, script_resp3, &mut inner, depth + 1);
            n += 1;
        }
        out.map(n);
        out.buf.extend_from_slice(&inner.buf);
        ffi::lua_settop(l, -3);
        return;
    }
    ffi::lua_settop(l, -2);
    if raw_field(l, c"set") == ffi::LUA_TTABLE {
        let mut inner = Reply::new(out.resp3);
        let mut n = 0;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_settop(l, -2);
            ffi::lua_pushvalue(l, -1);
            lua_to_reply_depth(l, script_resp3, &mut inner, depth + 1);
            n += 1;
        }
        out.set(n);
        out.buf.extend_from_slice(&inner.buf);
        ffi::lua_settop(l, -3);
        return;
    }
    ffi::lua_settop(l, -2);
    // An array, up to the first nil.
    let mut inner = Reply::new(out.resp3);
    let mut n = 0;
    loop {
        ffi::lua_rawgeti_(l, -1, n as c_int + 1);
        if ffi::lua_type(l, -1) == ffi::LUA_TNIL {
            ffi::lua_settop(l, -2);
            break;
        }
        lua_to_reply_depth(l, script_resp3, &mut inner, depth + 1);
        n += 1;
    }
    out.array(n);
    out.buf.extend_from_slice(&inner.buf);
    ffi::lua_settop(l, -2);
}

/// `addReplyDouble`: `%.17g`, RESP3 `,` or a RESP2 bulk string; infinities spelled out.
fn reply_double(out: &mut Reply, d: f64) {
    let text: Vec<u8> = if d.is_infinite() {
        if d > 0.0 {
            b"inf".to_vec()
        } else {
            b"-inf".to_vec()
        }
    } else {
        format_g17(d)
    };
    if out.resp3 {
        out.buf.push(b',');
        out.buf.extend_from_slice(&text);
        out.buf.extend_from_slice(b"\r\n");
    } else {
        out.bulk(&text);
    }
}

// ---------------------------------------------------------------------------------------
// reply -> Lua
// ---------------------------------------------------------------------------------------

/// Reads one RESP line (up to CRLF) at `*pos`.
fn line<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let start = *pos;
    let end = memchr::memmem::find(&buf[start..], b"\r\n").map_or(buf.len(), |e| start + e);
    *pos = (end + 2).min(buf.len());
    &buf[start..end]
}

fn num(s: &[u8]) -> i64 {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Pushes the Lua value of the reply at `*pos` (`redisProtocolToLuaType`); `None` pushes
/// nothing (attributes are skipped this way). Returns whether it was an error reply.
unsafe fn push_reply(l: *mut lua_State, buf: &[u8], pos: &mut usize) -> bool {
    if *pos >= buf.len() {
        ffi::lua_pushnil(l);
        return false;
    }
    ffi::lua_checkstack(l, 5);
    let kind = buf[*pos];
    *pos += 1;
    match kind {
        b'+' => {
            let s = line(buf, pos);
            ffi::lua_createtable(l, 0, 1);
            push_bytes(l, s);
            ffi::lua_setfield(l, -2, c"ok".as_ptr());
        }
        b'-' => {
            let s = line(buf, pos);
            let mut text = b"-".to_vec();
            text.extend_from_slice(s);
            push_command_error_table(l, &text);
            return true;
        }
        b':' => {
            let s = line(buf, pos);
            ffi::lua_pushnumber(l, num(s) as f64);
        }
        b'(' => {
            let s = line(buf, pos);
            ffi::lua_createtable(l, 0, 1);
            push_bytes(l, s);
            ffi::lua_setfield(l, -2, c"big_number".as_ptr());
        }
        b'$' | b'=' | b'!' => {
            let n = num(line(buf, pos));
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return false;
            }
            let start = *pos;
            let end = (start + n as usize).min(buf.len());
            *pos = (end + 2).min(buf.len());
            let s = &buf[start..end];
            match kind {
                b'=' => {
                    let (fmt, text) = if s.len() >= 4 {
                        (&s[..3], &s[4..])
                    } else {
                        (&b"txt"[..], s)
                    };
                    ffi::lua_createtable(l, 0, 1);
                    ffi::lua_createtable(l, 0, 2);
                    push_bytes(l, text);
                    ffi::lua_setfield(l, -2, c"string".as_ptr());
                    push_bytes(l, fmt);
                    ffi::lua_setfield(l, -2, c"format".as_ptr());
                    ffi::lua_setfield(l, -2, c"verbatim_string".as_ptr());
                }
                b'!' => {
                    let mut text = b"-".to_vec();
                    text.extend_from_slice(s);
                    push_command_error_table(l, &text);
                    return true;
                }
                _ => push_bytes(l, s),
            }
        }
        b'*' | b'~' | b'%' | b'>' => {
            let n = num(line(buf, pos));
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return false;
            }
            match kind {
                b'%' => {
                    ffi::lua_createtable(l, 0, 1);
                    ffi::lua_createtable(l, 0, n.min(1 << 16) as c_int);
                    for _ in 0..n {
                        push_reply(l, buf, pos);
                        push_reply(l, buf, pos);
                        set_pair(l);
                    }
                    ffi::lua_setfield(l, -2, c"map".as_ptr());
                }
                b'~' => {
                    ffi::lua_createtable(l, 0, 1);
                    ffi::lua_createtable(l, 0, n.min(1 << 16) as c_int);
                    for _ in 0..n {
                        push_reply(l, buf, pos);
                        ffi::lua_pushboolean(l, 1);
                        set_pair(l);
                    }
                    ffi::lua_setfield(l, -2, c"set".as_ptr());
                }
                _ => {
                    ffi::lua_createtable(l, n.min(1 << 16) as c_int, 0);
                    for j in 0..n {
                        push_reply(l, buf, pos);
                        ffi::lua_rawseti_(l, -2, j as c_int + 1);
                    }
                }
            }
        }
        b'|' => {
            // Attributes are not shown to scripts: skip them, then read the reply itself.
            let n = num(line(buf, pos));
            for _ in 0..n.max(0) * 2 {
                push_reply(l, buf, pos);
                ffi::lua_settop(l, -2);
            }
            return push_reply(l, buf, pos);
        }
        b'_' => {
            line(buf, pos);
            ffi::lua_pushnil(l);
        }
        b'#' => {
            let s = line(buf, pos);
            ffi::lua_pushboolean(l, (s == b"t") as c_int);
        }
        b',' => {
            let s = line(buf, pos);
            let d = std::str::from_utf8(s)
                .ok()
                .and_then(|s| match s {
                    "inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    _ => s.parse().ok(),
                })
                .unwrap_or(0.0);
            ffi::lua_createtable(l, 0, 1);
            ffi::lua_pushnumber(l, d);
            ffi::lua_setfield(l, -2, c"double".as_ptr());
        }
        _ => {
            line(buf, pos);
            ffi::lua_pushnil(l);
        }
    }
    false
}

/// `t[k] = v` for a key that may be nil (a RESP3 null key is dropped, as lua_settable would
/// refuse it).
unsafe fn set_pair(l: *mut lua_State) {
    if ffi::lua_type(l, -2) == ffi::LUA_TNIL {
        ffi::lua_settop(l, -3);
    } else {
        ffi::lua_rawset(l, -3);
    }
}

// ---------------------------------------------------------------------------------------
// redis.call / redis.pcall
// ---------------------------------------------------------------------------------------

/// What a C function's Rust part left on the stack.
enum Pushed {
    /// `n` results.
    Values(c_int),
    /// An error table, to raise (or return, for the `p` variants).
    Error,
    /// An error table to raise whatever the variant.
    Raise,
}

/// Runs `body` so that no panic crosses into Lua; then returns or raises.
#[inline]
unsafe fn finish(l: *mut lua_State, raise: bool, body: impl FnOnce() -> Pushed) -> c_int {
    let pushed =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| {
            push_error_table(l, cmd::PANIC_REPLY.as_bytes());
            Pushed::Raise
        });
    match pushed {
        Pushed::Values(n) => n,
        Pushed::Error if !raise => 1,
        Pushed::Error | Pushed::Raise => ffi::lua_error(l),
    }
}

unsafe extern "C-unwind" fn redis_call(l: *mut lua_State) -> c_int {
    finish(l, true, || call_command(l))
}

unsafe extern "C-unwind" fn redis_pcall(l: *mut lua_State) -> c_int {
    finish(l, false, || call_command(l))
}

/// The script's arguments as a command (`luaArgsToRedisArgv`), popped from the stack; or
/// the error to push.
unsafe fn args_from_stack(l: *mut lua_State) -> Result<OwnedArgs, &'static str> {
    let argc = ffi::lua_gettop(l);
    if argc == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut words: Vec<Vec<u8>> = Vec::with_capacity(argc as usize);
    let mut ok = true;
    for j in 1..=argc {
        match ffi::lua_type(l, j) {
            ffi::LUA_TNUMBER => words.push(format_g17(ffi::lua_tonumber(l, j))),
            ffi::LUA_TSTRING => words.push(bytes_at(l, j).to_vec()),
            _ => {
                ok = false;
                break;
            }
        }
    }
    ffi::lua_settop(l, 0);
    if !ok {
        return Err("Lua redis lib command arguments must be strings or integers");
    }
    Ok(OwnedArgs::from_iter(words.iter().map(|w| w.as_slice())))
}

unsafe fn call_command(l: *mut lua_State) -> Pushed {
    let Some(ctx) = current() else {
        push_error_table(
            l,
            b"redis.call/pcall can only be called inside a script invocation",
        );
        return Pushed::Raise;
    };
    let owned = match args_from_stack(l) {
        Ok(a) => a,
        Err(e) => {
            push_error_table(l, e.as_bytes());
            return Pushed::Error;
        }
    };
    if ctx.in_call {
        let msg = "luaRedisGenericCommand() recursive call detected. Are you doing funny stuff with Lua debug hooks?";
        eprintln!("{msg}");
        push_error_table(l, msg.as_bytes());
        return Pushed::Values(1);
    }
    if ctx.restart || ctx.killed {
        push_error_table(l, b"-ERR script restarted");
        return Pushed::Raise;
    }
    ctx.in_call = true;
    let args = owned.args();
    let result = run_command(ctx, &args);
    ctx.in_call = false;
    match result {
        Err(text) => {
            push_command_error_table(l, text.as_bytes());
            Pushed::Error
        }
        Ok(()) => {
            let mut pos = 0;
            let buf = std::mem::take(&mut ctx.scratch.buf);
            let is_err = push_reply(l, &buf, &mut pos);
            ctx.scratch.buf = buf;
            ctx.scratch.buf.clear();
            if is_err {
                Pushed::Error
            } else {
                Pushed::Values(1)
            }
        }
    }
}

/// Looks a command up as `lookupCommand` does for a script: the subcommand of a container
/// (`None` when it has none by that name).
fn lookup(args: &Args<'_>) -> Option<usize> {
    let t = table();
    let idx = t.lookup(args.get(0))?;
    if matches!(t.specs[idx].handler, Handler::Container) && args.len() >= 2 {
        return t.lookup_sub(idx, args.get(1));
    }
    Some(idx)
}

/// Runs one command for a script (Redis's `scriptCall`): its checks, then `call()` over the
/// data the script holds. The reply is left in `ctx.scratch`; `Err` is a refusal (text
/// without `-`; a bare message gets `ERR`).
fn run_command(ctx: &mut RunCtx, args: &Args<'_>) -> Result<(), String> {
    let t = table();
    let Some(idx) = lookup(args) else {
        return Err("Unknown Redis command called from script".into());
    };
    let spec = t.specs[idx];
    if !spec.arity_ok(args.len()) {
        return Err("Wrong number of args calling Redis command from script".into());
    }
    if spec.has(flag::NOSCRIPT) {
        return Err("This Redis command is not allowed from script".into());
    }
    if ctx.shard.disk_gate.get().master_down && !spec.has(flag::STALE) {
        return Err("Can not execute the command on a stale replica".into());
    }
    // The caller's user (Redis's `scriptVerifyACL`; logged with context `lua`).
    // SAFETY: the script's caller outlives the run (see `RunCtx::conn`).
    let caller = unsafe { &*ctx.conn };
    if !caller.acl_open {
        use crate::acl::{Context, Denied};
        if let Err(d) = crate::cmd::permission::check(&caller.user, idx, args) {
            // Logged when the run ends: one that starts again would log it twice.
            let name = &caller.user.name;
            let entry = crate::cmd::permission::log_entry(caller, d, Context::Lua, idx, args, name);
            ctx.denials.push(entry);
            let why = match d {
                Denied::Command => "can't run this command or subcommand",
                Denied::Key(_) => {
                    "can't access at least one of the keys mentioned in the command arguments"
                }
                Denied::Channel(_) => "can't publish to the channel mentioned in the command",
                Denied::Auth => "lacking the permissions for the command",
            };
            return Err(format!("The user executing the script {why}"));
        }
    }
    let writes = spec.has(flag::WRITE | flag::MAY_REPLICATE);
    if ctx.read_only && writes {
        return Err("Write commands are not allowed from read-only scripts.".into());
    }
    if spec.has(flag::WRITE) && !ctx.dirty {
        let obeyed = caller.must_obey();
        if let Some(e) = ctx.shard.disk_gate.get().script_write_refusal(obeyed) {
            return Err(format!("-{}", e.render()));
        }
        // Redis's `scriptVerifyOOM`: a script that has changed nothing yet can still stop.
        if ctx.oom && spec.has(flag::DENYOOM) && !obeyed {
            return Err(format!("-{}", crate::error::Error::Oom.render()));
        }
    }
    let shard = ctx.shard.clone();
    // Keys: in cluster mode local and (unless allowed) of one slot; and on shards held.
    let keyed = matches!(spec.handler, Handler::Keyed(_));
    let positions = if spec.first_key > 0 || spec.key_finder.is_some() {
        spec.all_key_positions(args)
    } else {
        Vec::new()
    };
    if shard.slot_map.borrow().enabled {
        shard.refresh_slot_map();
        let map = shard.slot_map.borrow().clone();
        for &p in &positions {
            let slot = crate::slot::key_slot(args.get(p));
            if !map.serves(slot) {
                return Err("Script attempted to access a non local key in a cluster node".into());
            }
            if !ctx.cross_slot {
                match ctx.slot {
                    None => ctx.slot = Some(slot),
                    Some(s) if s != slot => {
                        return Err(
                            "Script attempted to access keys that do not hash to the same slot"
                                .into(),
                        )
                    }
                    _ => {}
                }
            }
        }
    }
    let needed: ShardSet = if keyed {
        crate::cmd::call::shards_of(&shard, spec, args)
    } else {
        ShardSet::new()
    };
    let holds_all = ctx.held.len() == shard.nshards;
    let missing = needed.iter().any(|s| !ctx.held.contains(s));
    // A script may write only once it holds every shard: after its first write it can no
    // longer be restarted, yet might still touch any key (see `cmd::scripting`).
    if (missing || (writes && !holds_all)) && !ctx.wrote {
        ctx.restart = true;
        return Err("script restarted".into());
    }
    if missing {
        // Cannot happen: every shard is held once the script wrote.
        return Err("script needs a shard it does not hold".into());
    }
    if spec.has(flag::WRITE) || writes {
        if !ctx.wrote {
            // It cannot restart any more: what it announced so far is announced for good.
            crate::cmd::call::release_events(&shard, false);
        }
        ctx.wrote = true;
        ctx.dirty |= spec.has(flag::WRITE);
        shard.shared.scripts.wrote(shard.id);
    }
    let conn = unsafe { &mut *ctx.conn };
    let mut discard = crate::shard::journal::Unit::default();
    // The script's caller makes its changes (NOLOOP); its reads are remembered below.
    let track = crate::shard::tracking::Track {
        reader: 0,
        ..conn.track()
    };
    match spec.handler {
        Handler::Keyed(f) => {
            let Some(held) = conn.held.as_mut() else {
                return Err("script holds no data".into());
            };
            let unit = if ctx.propagate {
                &mut ctx.unit
            } else {
                &mut discard
            };
            let mut x = Exec {
                shard: &shard,
                parts: held.parts(),
                db: ctx.db,
                out: &mut ctx.scratch,
                now: ctx.now,
                unit,
                client: Some(ClientIdent::script()),
                track,
            };
            cmd::call(&mut x, idx, f, args);
        }
        Handler::Sync(f) => {
            with_script_client(ctx, conn, |conn| {
                let started = crate::util::time::ticks();
                let mark = conn.out.buf.len();
                let result = cmd::guarded(|| f(conn, args));
                crate::cmd::call::record_as(
                    conn,
                    idx,
                    args,
                    started,
                    &result,
                    ClientIdent::script(),
                );
                if let Err(e) = result {
                    conn.out.buf.truncate(mark);
                    conn.out.error(&e);
                }
            });
        }
        Handler::Async(f) => {
            let mut pending = false;
            with_script_client(ctx, conn, |conn| {
                let started = crate::util::time::ticks();
                let mark = conn.out.buf.len();
                let mut fut = f(conn, *args);
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    fut.as_mut().poll(&mut cx)
                })) {
                    Ok(std::task::Poll::Ready(r)) => r,
                    Ok(std::task::Poll::Pending) => {
                        pending = true;
                        Err(crate::error::Error::msg(
                            "This command cannot run from a script on this server (it needs other cores)",
                        ))
                    }
                    Err(_) => Err(crate::error::Error::msg(cmd::PANIC_REPLY)),
                };
                drop(fut);
                crate::cmd::call::record_as(
                    conn,
                    idx,
                    args,
                    started,
                    &result,
                    ClientIdent::script(),
                );
                if let Err(e) = result {
                    conn.out.buf.truncate(mark);
                    conn.out.error(&e);
                }
            });
            let _ = pending;
            ctx.unit.ops.append(&mut conn.exec_ops);
        }
        Handler::Container => {
            return Err("Wrong number of args calling Redis command from script".into());
        }
    }
    if spec.has(flag::READONLY) && !ctx.tracked_keys.is_empty() {
        remember_script_keys(ctx, conn);
    }
    Ok(())
}

/// A tracking client's script ran a read-only command: the keys the script declared are
/// remembered for the client, as Redis's `call()` does for the script's caller.
#[cold]
fn remember_script_keys(ctx: &RunCtx, conn: &mut crate::shard::client::Conn) {
    let track = conn.track();
    let reader = crate::shard::tracking::Reader {
        id: track.reader,
        home: track.home,
    };
    let Some(held) = conn.held.as_mut() else {
        return;
    };
    let mut parts = held.parts();
    for key in &ctx.tracked_keys {
        if !ctx.held.contains(ctx.shard.owner_of_key(key)) {
            continue;
        }
        crate::shard::tracking::remember(&ctx.shard, parts.owner_of(key), key, reader);
    }
}

/// Runs `f` with the connection acting as the script's client: its output is the script's
/// scratch reply (in the script's protocol) and its database the script's.
fn with_script_client(
    ctx: &mut RunCtx,
    conn: &mut crate::shard::client::Conn,
    f: impl FnOnce(&mut crate::shard::client::Conn),
) {
    let saved_db = conn.db;
    conn.db = ctx.db;
    std::mem::swap(&mut conn.out, &mut ctx.scratch);
    f(conn);
    std::mem::swap(&mut conn.out, &mut ctx.scratch);
    ctx.db = conn.db;
    conn.db = saved_db;
}

// ---------------------------------------------------------------------------------------
// The rest of the API
// ---------------------------------------------------------------------------------------

/// Redis's `pcall`: an error table becomes its message.
unsafe extern "C-unwind" fn redis_pcall_builtin(l: *mut lua_State) -> c_int {
    let argc = ffi::lua_gettop(l);
    ffi::luaL_checkany(l, 1);
    ffi::lua_pushboolean(l, 1);
    ffi::lua_insert(l, 1);
    if ffi::lua_pcall(l, argc - 1, ffi::LUA_MULTRET, 0) != 0 {
        ffi::lua_remove(l, 1);
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            ffi::lua_getfield_(l, -1, c"err".as_ptr());
            if ffi::lua_isstring(l, -1) != 0 {
                ffi::lua_replace(l, -2);
            } else {
                ffi::lua_settop(l, -2);
            }
        }
        ffi::lua_pushboolean(l, 0);
        ffi::lua_insert(l, 1);
    }
    ffi::lua_gettop(l)
}

unsafe extern "C-unwind" fn redis_sha1hex(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"wrong number of arguments");
            return Pushed::Raise;
        }
        let hex = sha1_hex(bytes_at(l, 1));
        push_bytes(l, hex.as_bytes());
        Pushed::Values(1)
    })
}

/// The lowercase hex SHA1 of `data` (script names, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

unsafe extern "C-unwind" fn redis_error_reply(l: *mut lua_State) -> c_int {
    finish(l, false, || {
        if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
            push_error_table(l, b"wrong number or type of arguments");
            return Pushed::Values(1);
        }
        let s = bytes_at(l, -1);
        let mut text = Vec::with_capacity(s.len() + 1);
        if !s.starts_with(b"-") {
            text.push(b'-');
        }
        // `sdscatfmt("-%s")`/`sdsnew` stop at a NUL.
        let s = &s[..memchr::memchr(0, s).unwrap_or(s.len())];
        text.extend_from_slice(s);
        push_error_table(l, &text);
        Pushed::Values(1)
    })
}

unsafe extern "C-unwind" fn redis_status_reply(l: *mut lua_State) -> c_int {
    finish(l, false, || {
        if ffi::lua_gettop(l) != 1 || ffi::lua_type(l, -1) != ffi::LUA_TSTRING {
            push_error_table(l, b"wrong number or type of arguments");
            return Pushed::Values(1);
        }
        ffi::lua_createtable(l, 0, 1);
        ffi::lua_pushstring_(l, c"ok".as_ptr());
        ffi::lua_pushvalue(l, -3);
        ffi::lua_settable(l, -3);
        Pushed::Values(1)
    })
}

unsafe extern "C-unwind" fn redis_set_repl(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        let Some(ctx) = current() else {
            push_error_table(
                l,
                b"redis.set_repl can only be called inside a script invocation",
            );
            return Pushed::Raise;
        };
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"redis.set_repl() requires two arguments.");
            return Pushed::Raise;
        }
        let flags = ffi::lua_tonumber(l, -1) as c_int;
        if flags & !3 != 0 {
            push_error_table(
                l,
                b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
            );
            return Pushed::Raise;
        }
        // One stream feeds the AOF and replicas here: either target keeps propagation on.
        ctx.propagate = flags != 0;
        Pushed::Values(0)
    })
}

unsafe extern "C-unwind" fn redis_acl_check_cmd(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        if current().is_none() {
            push_error_table(
                l,
                b"redis.acl_check_cmd can only be called inside a script invocation",
            );
            return Pushed::Raise;
        }
        let owned = match args_from_stack(l) {
            Ok(a) => a,
            Err(e) => {
                push_error_table(l, e.as_bytes());
                return Pushed::Raise;
            }
        };
        let args = owned.args();
        match lookup(&args) {
            None => {
                push_error_table(l, b"Invalid command passed to redis.acl_check_cmd()");
                Pushed::Raise
            }
            Some(_) => {
                // No ACL users yet: the only user may run every command.
                ffi::lua_pushboolean(l, 1);
                Pushed::Values(1)
            }
        }
    })
}

unsafe extern "C-unwind" fn redis_log(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        let argc = ffi::lua_gettop(l);
        if argc < 2 {
            push_error_table(l, b"redis.log() requires two arguments or more.");
            return Pushed::Raise;
        }
        if ffi::lua_isnumber(l, 1) == 0 {
            push_error_table(l, b"First argument must be a number (log level).");
            return Pushed::Raise;
        }
        let level = ffi::lua_tonumber(l, 1) as c_int;
        if !(0..=3).contains(&level) {
            push_error_table(l, b"Invalid debug level.");
            return Pushed::Raise;
        }
        if level < verbosity() {
            return Pushed::Values(0);
        }
        let mut text: Vec<u8> = Vec::new();
        for j in 2..=argc {
            let mut len = 0usize;
            let p = ffi::lua_tolstring(l, j, &mut len);
            if !p.is_null() {
                if j != 2 {
                    text.push(b' ');
                }
                text.extend_from_slice(std::slice::from_raw_parts(p as *const u8, len));
            }
        }
        eprintln!("{}", String::from_utf8_lossy(&text));
        Pushed::Values(0)
    })
}

/// The server's log level as Redis numbers it (debug 0 ... warning 3).
fn verbosity() -> c_int {
    let level = crate::shard::Shard::current()
        .map(|s| s.shared.config().get("loglevel").to_string())
        .unwrap_or_default();
    match level.as_str() {
        "debug" => 0,
        "verbose" => 1,
        "warning" => 3,
        "nothing" => 4,
        _ => 2,
    }
}

unsafe extern "C-unwind" fn redis_setresp(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        let Some(ctx) = current() else {
            push_error_table(
                l,
                b"redis.setresp can only be called inside a script invocation",
            );
            return Pushed::Raise;
        };
        if ffi::lua_gettop(l) != 1 {
            push_error_table(l, b"redis.setresp() requires one argument.");
            return Pushed::Raise;
        }
        let resp = ffi::lua_tonumber(l, 1) as c_int;
        if resp != 2 && resp != 3 {
            push_error_table(l, b"RESP version must be 2 or 3.");
            return Pushed::Raise;
        }
        ctx.scratch.resp3 = resp == 3;
        Pushed::Values(0)
    })
}

unsafe extern "C-unwind" fn redis_breakpoint(l: *mut lua_State) -> c_int {
    // No debugger session (SCRIPT DEBUG is not supported): as Redis without one.
    ffi::lua_pushboolean(l, 0);
    1
}

unsafe extern "C-unwind" fn redis_debug(_l: *mut lua_State) -> c_int {
    0
}

unsafe extern "C-unwind" fn redis_replicate_commands(l: *mut lua_State) -> c_int {
    ffi::lua_pushboolean(l, 1);
    1
}

/// `luaProtectedTableError`: reading a global that does not exist.
unsafe extern "C-unwind" fn protected_table_error(l: *mut lua_State) -> c_int {
    if ffi::lua_gettop(l) != 2 {
        return ffi::luaL_error(
            l,
            c"Wrong number of arguments to luaProtectedTableError".as_ptr(),
        );
    }
    if ffi::lua_isstring(l, -1) == 0 && ffi::lua_isnumber(l, -1) == 0 {
        return ffi::luaL_error(
            l,
            c"Second argument to luaProtectedTableError must be a string or number".as_ptr(),
        );
    }
    let name = ffi::lua_tolstring(l, -1, std::ptr::null_mut());
    ffi::luaL_error(
        l,
        c"Script attempted to access nonexistent global variable '%s'".as_ptr(),
        name,
    )
}

// --- math.random as Redis (rand.c: the 48-bit generator of drand48, one per process) ---

static RAND48: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x1234_ABCD_330E);

fn lrand48() -> i32 {
    use std::sync::atomic::Ordering;
    const A: u64 = 0x5_DEEC_E66D;
    let mut next = 0;
    let _ = RAND48.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
        next = (A.wrapping_mul(x).wrapping_add(0xB)) & ((1 << 48) - 1);
        Some(next)
    });
    (next >> 17) as i32
}

fn srand48(seed: i32) {
    RAND48.store(
        ((seed as u32 as u64) << 16) | 0x330E,
        std::sync::atomic::Ordering::Relaxed,
    );
}

unsafe extern "C-unwind" fn math_random(l: *mut lua_State) -> c_int {
    if current().is_none() {
        return ffi::luaL_error(
            l,
            c"math.random can only be called inside a script invocation".as_ptr(),
        );
    }
    const MAX: i32 = i32::MAX;
    let r = (lrand48() % MAX) as f64 / MAX as f64;
    match ffi::lua_gettop(l) {
        0 => ffi::lua_pushnumber(l, r),
        1 => {
            let u = ffi::luaL_checkinteger(l, 1) as c_int;
            if u < 1 {
                ffi::luaL_argerror(l, 1, c"interval is empty".as_ptr());
            }
            ffi::lua_pushnumber(l, (r * u as f64).floor() + 1.0);
        }
        2 => {
            let lo = ffi::luaL_checkinteger(l, 1) as c_int;
            let up = ffi::luaL_checkinteger(l, 2) as c_int;
            if lo > up {
                ffi::luaL_argerror(l, 2, c"interval is empty".as_ptr());
            }
            ffi::lua_pushnumber(l, (r * (up as f64 - lo as f64 + 1.0)).floor() + lo as f64);
        }
        _ => return ffi::luaL_error(l, c"wrong number of arguments".as_ptr()),
    }
    1
}

unsafe extern "C-unwind" fn math_randomseed(l: *mut lua_State) -> c_int {
    if current().is_none() {
        return ffi::luaL_error(
            l,
            c"math.randomseed can only be called inside a script invocation".as_ptr(),
        );
    }
    let seed = ffi::luaL_checkinteger(l, 1) as c_int;
    srand48(seed);
    0
}

// --- redis.register_function (function libraries, at load time) ---

unsafe extern "C-unwind" fn register_function(l: *mut lua_State) -> c_int {
    finish(l, true, || {
        let Some(load) = super::loading() else {
            push_error_table(
                l,
                b"redis.register_function can only be called on FUNCTION LOAD command",
            );
            return Pushed::Raise;
        };
        match read_register_args(l) {
            Err(e) => {
                push_error_table(l, e.as_bytes());
                Pushed::Raise
            }
            Ok(f) => {
                if let Err(e) = super::super::function::check_new_function(&f.name, &load.functions)
                {
                    ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, f.func_ref);
                    push_error_table(l, e.as_bytes());
                    return Pushed::Raise;
                }
                load.functions.push(f);
                Pushed::Values(0)
            }
        }
    })
}

unsafe fn read_register_args(l: *mut lua_State) -> Result<super::Registered, &'static str> {
    let argc = ffi::lua_gettop(l);
    if !(1..=2).contains(&argc) {
        return Err("wrong number of arguments to redis.register_function");
    }
    if argc == 2 {
        if ffi::lua_isstring(l, 1) == 0 {
            return Err("first argument to redis.register_function must be a string");
        }
        let name = String::from_utf8_lossy(bytes_at(l, 1)).into_owned();
        if ffi::lua_type(l, 2) != ffi::LUA_TFUNCTION {
            return Err("second argument to redis.register_function must be a function");
        }
        let func_ref = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
        return Ok(super::Registered {
            name,
            desc: None,
            flags: 0,
            func_ref,
        });
    }
    if ffi::lua_type(l, 1) != ffi::LUA_TTABLE {
        return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
    }
    let (mut name, mut desc, mut func_ref, mut flags) = (None, None, None, 0u32);
    let fail = |l: *mut lua_State, func_ref: Option<c_int>, e: &'static str| {
        if let Some(r) = func_ref {
            ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, r);
        }
        Err(e)
    };
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if ffi::lua_isstring(l, -2) == 0 {
            return fail(
                l,
                func_ref,
                "named argument key given to redis.register_function is not a string",
            );
        }
        // lua_tostring would turn a number key into a string in place and break lua_next.
        ffi::lua_pushvalue(l, -2);
        let key = bytes_at(l, -1).to_ascii_lowercase();
        ffi::lua_settop(l, -2);
        match key.as_slice() {
            b"function_name" => {
                if ffi::lua_isstring(l, -1) == 0 {
                    return fail(
                        l,
                        func_ref,
                        "function_name argument given to redis.register_function must be a string",
                    );
                }
                name = Some(String::from_utf8_lossy(bytes_at(l, -1)).into_owned());
            }
            b"description" => {
                if ffi::lua_isstring(l, -1) == 0 {
                    return fail(
                        l,
                        func_ref,
                        "description argument given to redis.register_function must be a string",
                    );
                }
                desc = Some(bytes_at(l, -1).to_vec());
            }
            b"callback" => {
                if ffi::lua_type(l, -1) != ffi::LUA_TFUNCTION {
                    return fail(
                        l,
                        func_ref,
                        "callback argument given to redis.register_function must be a function",
                    );
                }
                if let Some(r) = func_ref {
                    ffi::luaL_unref(l, ffi::LUA_REGISTRYINDEX, r);
                }
                func_ref = Some(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX));
                continue;
            }
            b"flags" => {
                if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
                    return fail(l, func_ref, "flags argument to redis.register_function must be a table representing function flags");
                }
                match read_flags(l) {
                    Some(f) => flags = f,
                    None => return fail(l, func_ref, "unknown flag given"),
                }
            }
            _ => {
                return fail(
                    l,
                    func_ref,
                    "unknown argument given to redis.register_function",
                )
            }
        }
        ffi::lua_settop(l, -2);
    }
    let Some(name) = name else {
        return fail(
            l,
            func_ref,
            "redis.register_function must get a function name argument",
        );
    };
    let Some(func_ref) = func_ref else {
        return Err("redis.register_function must get a callback argument");
    };
    Ok(super::Registered {
        name,
        desc,
        flags,
        func_ref,
    })
}

/// The flags table at the top (`luaRegisterFunctionReadFlags`): names, case-insensitive.
unsafe fn read_flags(l: *mut lua_State) -> Option<u32> {
    let mut flags = 0;
    let mut j = 1;
    loop {
        ffi::lua_rawgeti_(l, -1, j);
        j += 1;
        match ffi::lua_type(l, -1) {
            ffi::LUA_TNIL => {
                ffi::lua_settop(l, -2);
                return Some(flags);
            }
            ffi::LUA_TSTRING | ffi::LUA_TNUMBER => {
                let s = bytes_at(l, -1).to_ascii_lowercase();
                ffi::lua_settop(l, -2);
                flags |= super::sflag::NAMES
                    .iter()
                    .find(|(_, n)| n.as_bytes() == s.as_slice())?
                    .0;
            }
            _ => {
                ffi::lua_settop(l, -2);
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_take_their_code_as_redis() {
        assert_eq!(
            error_text(b"-WRONGTYPE Operation against"),
            b"WRONGTYPE Operation against"
        );
        assert_eq!(error_text(b"-Boom"), b"ERR Boom");
        assert_eq!(error_text(b"plain text\r\n"), b"ERR plain text");
        assert_eq!(error_text(b"-My error"), b"My error");
    }

    #[test]
    fn numbers_format_as_c() {
        assert_eq!(format_g17(1.0), b"1");
        assert_eq!(format_g17(0.1), b"0.10000000000000001");
        assert_eq!(format_g17(1e20), b"1e+20");
        assert_eq!(lua_number_to_i64(3.9), 3);
        assert_eq!(lua_number_to_i64(-3.9), -3);
        assert_eq!(lua_number_to_i64(f64::NAN), i64::MIN);
    }

    #[test]
    fn rand48_matches_redis_sequence_start() {
        srand48(0);
        let a = lrand48();
        srand48(0);
        assert_eq!(a, lrand48());
    }
}
