//! FUNCTION and FCALL (Redis 7.0's functions.c and function_lua.c): Lua libraries loaded with
//! FUNCTION LOAD, their functions called with FCALL / FCALL_RO.
//!
//! The libraries are shared by every core (`LIBRARIES`, with a generation number each change
//! bumps); each core's function interpreter (`lua::Kind::Function`) loads them all again when
//! it sees a newer generation, then FCALL finds a function there by name. A library is
//! checked on a fresh interpreter of its own before it joins (so a bad one changes nothing).
//! LOAD, DELETE, FLUSH and RESTORE are write commands that propagate verbatim.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::cmd::lua::{self, sflag, Kind, Registered, Vm};
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::error::{CmdResult, Error};
use crate::rdb::{opcodes, Reader, Writer};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::util::crc64::crc64;

/// The RDB version of Redis 7.0, which DUMP payloads carry.
const RDB_VERSION: u16 = 10;

static FUNCTION_SUBS: &[CommandSpec] = &[
    CommandSpec::new("delete", 3, WRITE | NOSCRIPT, Handler::Keyed(delete))
        .acl(&["@scripting"])
        .doc("scripting", "7.0.0", "Delete a function by name"),
    CommandSpec::new("dump", 2, NOSCRIPT, Handler::Sync(dump))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Dump all functions into a serialized binary payload",
        ),
    CommandSpec::new("flush", -2, WRITE | NOSCRIPT, Handler::Keyed(flush))
        .acl(&["@scripting"])
        .doc("scripting", "7.0.0", "Deleting all functions"),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(help))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Show helpful text about the different subcommands",
        ),
    CommandSpec::new("kill", 2, NOSCRIPT | ALLOW_BUSY, Handler::Sync(kill))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Kill the function currently in execution.",
        ),
    CommandSpec::new("list", -2, NOSCRIPT, Handler::Sync(list))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "List information about all the functions",
        ),
    CommandSpec::new("load", -3, WRITE | DENYOOM | NOSCRIPT, Handler::Keyed(load))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Create a function with the given arguments (name, code, description)",
        ),
    CommandSpec::new("stats", 2, NOSCRIPT | ALLOW_BUSY, Handler::Sync(stats))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Return information about the function currently running (name, description, duration)",
        ),
    CommandSpec::new(
        "restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        Handler::Keyed(restore),
    )
    .acl(&["@scripting"])
    .doc(
        "scripting",
        "7.0.0",
        "Restore all the functions on the given payload",
    ),
];

const FCALL_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLE_KEYS;
const FCALL_RO_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLE_KEYS;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("function", -2, 0, Handler::Container)
        .doc("scripting", "7.0.0", "A container for function commands")
        .subs(FUNCTION_SUBS),
    CommandSpec::new("fcall", -3, FCALL_FLAGS, Handler::Async(fcall))
        .key_finder(crate::cmd::scripting::script_keys)
        .acl(&["@scripting"])
        .doc("scripting", "7.0.0", "Invoke a function"),
    CommandSpec::new("fcall_ro", -3, FCALL_RO_FLAGS, Handler::Async(fcall_ro))
        .key_finder(crate::cmd::scripting::script_keys)
        .acl(&["@scripting"])
        .doc("scripting", "7.0.0", "Invoke a read-only function"),
];

/// A function of a library, as FUNCTION LIST shows it.
#[derive(Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    pub flags: u32,
}

/// A loaded library: its name, its whole code (shebang included) and its functions.
#[derive(Clone)]
pub struct Library {
    pub name: String,
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

static LIBRARIES: Mutex<Vec<Library>> = Mutex::new(Vec::new());
/// Bumped by every change: a core whose interpreter is older loads the libraries again.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn libraries() -> std::sync::MutexGuard<'static, Vec<Library>> {
    LIBRARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The flags function `name` was registered with, if it exists.
pub fn function_flags(name: &[u8]) -> Option<u32> {
    libraries()
        .iter()
        .flat_map(|l| &l.functions)
        .find(|f| f.name.as_bytes() == name)
        .map(|f| f.flags)
}

/// Libraries, functions and the bytes of the libraries' code (INFO `number_of_libraries`,
/// `number_of_functions`, `used_memory_functions`).
pub fn library_stats() -> (usize, usize, usize) {
    let libs = libraries();
    (
        libs.len(),
        libs.iter().map(|l| l.functions.len()).sum(),
        libs.iter().map(|l| l.code.len() + l.name.len()).sum(),
    )
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

fn changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Loads every library into `vm` (a function interpreter built for the current generation).
pub fn load_all(vm: &mut Vm) {
    let libs = libraries().clone();
    for lib in libs {
        let Some((_, body)) = metadata(&lib.code).ok() else {
            continue;
        };
        if let Ok(registered) = vm.load_library(body) {
            for f in registered {
                vm.functions.insert(
                    f.name,
                    lua::Compiled {
                        func_ref: f.func_ref,
                        flags: f.flags,
                    },
                );
            }
        }
    }
}

/// Every library's code, for an RDB file's function section (in load order).
pub fn library_codes() -> Vec<Vec<u8>> {
    libraries().iter().map(|l| l.code.clone()).collect()
}

/// A library found in an RDB file (`rdbFunctionLoad`): compiled and added, replacing one of
/// the same name (a file loaded at start-up or by DEBUG RELOAD starts from no libraries).
pub fn load_from_file(code: &[u8]) -> Result<(), String> {
    let lib = compile_library(code).map_err(|e| e.render().into_owned())?;
    let mut libs = libraries();
    join(&mut libs, vec![lib], true).map_err(|e| e.render().into_owned())?;
    drop(libs);
    changed();
    Ok(())
}

/// Redis's name rule for libraries and functions: letters, digits, underscores, not empty.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const BAD_NAME: &str = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

/// `functionLibCreateFunction`'s checks on a function being registered.
pub fn check_new_function(name: &str, so_far: &[Registered]) -> Result<(), String> {
    if !valid_name(name) {
        return Err(BAD_NAME.into());
    }
    if so_far.iter().any(|f| f.name == name) {
        return Err("Function already exists in the library".into());
    }
    Ok(())
}

/// The library name in the shebang and the code after the shebang line (its newline kept,
/// so line numbers stay right) (`functionExtractLibMetaData`).
fn metadata(code: &[u8]) -> Result<(String, &[u8]), Error> {
    if !code.starts_with(b"#!") {
        return Err(Error::msg("Missing library metadata"));
    }
    let Some(end) = memchr::memchr(b'\n', code) else {
        return Err(Error::msg("Invalid library metadata"));
    };
    let parts = match crate::util::split::split_args(&code[..end]) {
        Ok(p) if !p.is_empty() => p,
        _ => return Err(Error::msg("Invalid library metadata")),
    };
    let engine = String::from_utf8_lossy(&parts[0][2..]).into_owned();
    let mut name: Option<String> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(Error::msg(
                    "Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(Error::msg(format!(
            "Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        )));
    }
    let Some(name) = name else {
        return Err(Error::msg("Library name was not given"));
    };
    if !valid_name(&name) {
        return Err(Error::msg(BAD_NAME));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(Error::msg(format!("Engine '{engine}' not found")));
    }
    Ok((name, &code[end..]))
}

/// A library from its code, checked on an interpreter of its own (`functionsCreateWithLibraryCtx`
/// less the checks against the loaded libraries).
fn compile_library(code: &[u8]) -> Result<Library, Error> {
    let (name, body) = metadata(code)?;
    let mut vm = Vm::new(Kind::Function);
    let registered = vm.load_library(body).map_err(Error::msg)?;
    if registered.is_empty() {
        return Err(Error::msg("No functions registered"));
    }
    let functions = registered
        .into_iter()
        .map(|f| {
            vm.release(f.func_ref);
            FunctionInfo {
                name: f.name,
                desc: f.desc,
                flags: f.flags,
            }
        })
        .collect();
    Ok(Library {
        name,
        code: code.to_vec(),
        functions,
    })
}

/// Adds `new` libraries to `libs` (`libraryJoin`): a library of the same name is an error
/// unless `replace`; a function name another library has is always one.
fn join(libs: &mut Vec<Library>, new: Vec<Library>, replace: bool) -> Result<(), Error> {
    let mut result = libs.clone();
    for lib in new {
        if let Some(i) = result.iter().position(|l| l.name == lib.name) {
            if !replace {
                return Err(Error::msg(format!("Library {} already exists", lib.name)));
            }
            result.remove(i);
        }
        for f in &lib.functions {
            if result
                .iter()
                .any(|l| l.functions.iter().any(|g| g.name == f.name))
            {
                return Err(Error::msg(format!("Function {} already exists", f.name)));
            }
        }
        result.push(lib);
    }
    *libs = result;
    Ok(())
}

fn load(c: &mut Ctx, a: &Args) -> CmdResult {
    let mut replace = false;
    let mut i = 2;
    while i < a.len() - 1 {
        if a.is(i, "REPLACE") {
            replace = true;
            i += 1;
        } else {
            return Err(Error::msg(format!(
                "Unknown option given: {}",
                String::from_utf8_lossy(a.get(i))
            )));
        }
    }
    if i >= a.len() {
        return Err(Error::msg("Function code is missing"));
    }
    let lib = compile_library(a.get(i))?;
    let name = lib.name.clone();
    let mut libs = libraries();
    if !replace && libs.iter().any(|l| l.name == name) {
        return Err(Error::msg(format!("Library '{name}' already exists")));
    }
    join(&mut libs, vec![lib], true)?;
    drop(libs);
    changed();
    c.dirty(1);
    c.force_propagate();
    c.out.bulk(name.as_bytes());
    Ok(())
}

fn delete(c: &mut Ctx, a: &Args) -> CmdResult {
    let name = a.get(2);
    let mut libs = libraries();
    let Some(i) = libs.iter().position(|l| l.name.as_bytes() == name) else {
        return Err(Error::msg("Library not found"));
    };
    libs.remove(i);
    drop(libs);
    changed();
    c.dirty(1);
    c.force_propagate();
    c.out.ok();
    Ok(())
}

fn flush(c: &mut Ctx, a: &Args) -> CmdResult {
    match a.len() {
        2 => {}
        3 if a.is(2, "ASYNC") || a.is(2, "SYNC") => {}
        3 => return Err(Error::msg("FUNCTION FLUSH only supports SYNC|ASYNC option")),
        _ => return Err(Error::WrongArity("function|flush".into())),
    }
    libraries().clear();
    changed();
    c.dirty(1);
    c.force_propagate();
    c.out.ok();
    Ok(())
}

/// No function can run here, so FUNCTION KILL finds none (NOTBUSY), or a slow EVAL script
/// (BUSY, as Redis answers it then).
fn kill(c: &mut Conn, _a: &Args) -> CmdResult {
    crate::cmd::scripting::kill(c, false)
}

/// The function running past `busy-reply-threshold`, if any (Redis answers no one while a
/// script runs until then), and the engine's counts; `-BUSY` for a slow EVAL script.
fn stats(c: &mut Conn, _a: &Args) -> CmdResult {
    let slow = c.shard.shared.scripts.slow_scripts();
    if slow.iter().any(|s| s.eval) {
        return Err(crate::cmd::scripting::busy_error(true));
    }
    c.out.map(2);
    c.out.bulk(b"running_script");
    match slow.first() {
        None => c.out.null(),
        Some(s) => {
            c.out.map(3);
            c.out.bulk(b"name");
            c.out.bulk(s.name.as_bytes());
            c.out.bulk(b"command");
            c.out.array(s.command.len());
            for w in &s.command {
                c.out.bulk(w);
            }
            c.out.bulk(b"duration_ms");
            c.out.int(s.started.elapsed().as_millis() as i64);
        }
    }
    let libs = libraries();
    let functions: usize = libs.iter().map(|l| l.functions.len()).sum();
    let libraries_count = libs.len();
    drop(libs);
    c.out.bulk(b"engines");
    c.out.map(1);
    c.out.bulk(b"LUA");
    c.out.map(2);
    c.out.bulk(b"libraries_count");
    c.out.int(libraries_count as i64);
    c.out.bulk(b"functions_count");
    c.out.int(functions as i64);
    Ok(())
}

fn help(c: &mut Conn, a: &Args) -> CmdResult {
    crate::cmd::server::help_reply(
        &mut c.out,
        a.get(0),
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    );
    Ok(())
}

/// Every library as FUNCTION DUMP and the RDB file write it: `FUNCTION2` and the code each,
/// then the RDB version and the CRC-64, both little-endian.
fn dump_payload(libs: &[Library]) -> Vec<u8> {
    let mut w = Writer::new();
    for lib in libs {
        w.u8(opcodes::FUNCTION2);
        w.string(&lib.code);
    }
    let mut p = w.buf;
    p.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

fn dump(c: &mut Conn, _a: &Args) -> CmdResult {
    let payload = dump_payload(&libraries());
    c.out.bulk(&payload);
    Ok(())
}

fn list(c: &mut Conn, a: &Args) -> CmdResult {
    let mut i = 2;
    let mut with_code = false;
    let mut pattern: Option<&[u8]> = None;
    while i < a.len() {
        if a.is(i, "WITHCODE") {
            with_code = true;
            i += 1;
        } else if a.is(i, "LIBRARYNAME") {
            if i + 1 >= a.len() {
                return Err(Error::msg("library name argument was not given"));
            }
            pattern = Some(a.get(i + 1));
            i += 2;
        } else {
            return Err(Error::msg(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(a.get(i))
            )));
        }
    }
    let libs = libraries().clone();
    let shown: Vec<&Library> = libs
        .iter()
        .filter(|l| {
            // Matched case-insensitively, as Redis does.
            pattern.is_none_or(|p| {
                crate::util::glob::glob_match(
                    &p.to_ascii_lowercase(),
                    l.name.to_ascii_lowercase().as_bytes(),
                )
            })
        })
        .collect();
    c.out.array(shown.len());
    for lib in shown {
        c.out.map(if with_code { 4 } else { 3 });
        c.out.bulk(b"library_name");
        c.out.bulk(lib.name.as_bytes());
        c.out.bulk(b"engine");
        c.out.bulk(b"LUA");
        c.out.bulk(b"functions");
        c.out.array(lib.functions.len());
        for f in &lib.functions {
            c.out.map(3);
            c.out.bulk(b"name");
            c.out.bulk(f.name.as_bytes());
            c.out.bulk(b"description");
            match &f.desc {
                Some(d) => c.out.bulk(d),
                None => c.out.null(),
            }
            c.out.bulk(b"flags");
            let names: Vec<&str> = sflag::NAMES
                .iter()
                .filter(|(bit, _)| f.flags & bit != 0)
                .map(|(_, n)| *n)
                .collect();
            c.out.set(names.len());
            for n in names {
                c.out.simple(n);
            }
        }
        if with_code {
            c.out.bulk(b"library_code");
            c.out.bulk(&lib.code);
        }
    }
    Ok(())
}

fn restore(c: &mut Ctx, a: &Args) -> CmdResult {
    let payload = a.get(2);
    if a.len() > 4 {
        return Err(Error::Syntax);
    }
    let policy = if a.len() == 4 {
        if a.is(3, "FLUSH") || a.is(3, "APPEND") || a.is(3, "REPLACE") {
            String::from_utf8_lossy(a.get(3)).to_ascii_uppercase()
        } else {
            return Err(Error::msg(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ));
        }
    } else {
        "APPEND".to_string()
    };
    let bad = || Error::msg("DUMP payload version or checksum are wrong");
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(bad());
    };
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    let crc = u64::from_le_bytes(payload[body_len + 2..].try_into().map_err(|_| bad())?);
    if version > RDB_VERSION || crc != crc64(&payload[..body_len + 2]) {
        return Err(bad());
    }
    let mut reader = Reader::new(&payload[..body_len]);
    let mut restored: Vec<Library> = Vec::new();
    while !reader.is_empty() {
        let Ok(t) = reader.u8() else {
            return Err(Error::msg("can not read data type"));
        };
        if t != opcodes::FUNCTION2 {
            return Err(Error::msg("given type is not a function"));
        }
        let Ok(code) = reader.string() else {
            return Err(Error::msg("failed loading the given functions payload"));
        };
        let lib = compile_library(&code)?;
        join(&mut restored, vec![lib], false)?;
    }
    let mut libs = libraries();
    match policy.as_str() {
        "FLUSH" => *libs = restored,
        "REPLACE" => join(&mut libs, restored, true)?,
        _ => join(&mut libs, restored, false)?,
    }
    drop(libs);
    changed();
    c.dirty(1);
    c.force_propagate();
    c.out.ok();
    Ok(())
}

fn fcall<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(fcall_generic(c, a, false))
}

fn fcall_ro<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(fcall_generic(c, a, true))
}

async fn fcall_generic(c: &mut Conn, a: Args<'_>, ro: bool) -> CmdResult {
    crate::cmd::call::monitor_before(c, if ro { "fcall_ro" } else { "fcall" }, &a);
    let name = String::from_utf8_lossy(a.get(1)).into_owned();
    let exists = libraries()
        .iter()
        .any(|l| l.functions.iter().any(|f| f.name == name));
    if !exists {
        return Err(Error::msg("Function not found"));
    }
    let n = crate::cmd::scripting::numkeys(&a, Error::msg("Bad number of keys provided"))?;
    let keys: Vec<&[u8]> = (3..3 + n).map(|i| a.get(i)).collect();
    let argv: Vec<&[u8]> = (3 + n..a.len()).map(|i| a.get(i)).collect();
    // Functions are remembered by name for the cores' "needs every shard" memory.
    let id = {
        let hex = lua::api::sha1_hex(format!("function:{name}").as_bytes());
        let mut k = [0u8; 40];
        k.copy_from_slice(hex.as_bytes());
        k
    };
    let lookup = name.clone();
    let resolve = move |vm: &mut Vm| -> Result<(std::ffi::c_int, u32), Error> {
        vm.functions
            .get(&lookup)
            .map(|f| (f.func_ref, f.flags))
            .ok_or_else(|| Error::msg("Function not found"))
    };
    crate::cmd::scripting::run_script(c, Kind::Function, &id, name, resolve, &keys, &argv, ro, &a)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_dump_matches_redis() {
        // FUNCTION DUMP of a stock 7.0 server without libraries.
        assert_eq!(super::dump_payload(&[]), b"\n\x00]\x9b\\@\x0f\x7f\xa2\xda");
    }
}
