//! The Lua 5.1 engine scripts run on, as Redis 7.0 embeds it (script_lua.c, eval.c,
//! function_lua.c): one interpreter per executor and purpose (EVAL scripts, function
//! libraries), never shared between threads; Redis's sandbox (read-only globals and library
//! tables, the 7.0 library set, no `dofile`/`loadfile`/`print`/`os`/`io`), the `redis` API
//! and the exact conversions between Lua values and replies.
//!
//! The interpreter is our own patched build of Lua 5.1.5 (`build/lua51.rs`), driven through
//! the raw C API (`mlua-sys`). Functions Lua calls are `extern "C-unwind"` wrappers that do
//! their work in an inner Rust function, drop everything it owned, and only then raise a Lua
//! error if there is one (`lua_error` jumps over the caller's frame, which by then holds
//! nothing that needs dropping). Rust panics never cross into C: each wrapper catches them.
//!
//! A script runs in a coroutine so that the instruction-count hook can hand the core back
//! to the executor once the script has run past `busy-reply-threshold`: other clients of
//! this core then get their `-BUSY`, and SCRIPT KILL can reach it (Redis's
//! `processEventsWhileBlocked`). Lua 5.1 allows that yield only with no C call between the
//! hook and the coroutine (not inside `pcall`, a metamethod or `table.sort`'s comparator);
//! there the hook does not yield and this core's other clients wait, while the other cores
//! answer `-BUSY` and SCRIPT KILL still works.

pub mod api;
pub mod libs;

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, CStr};
use std::rc::Rc;
use std::time::Instant;

use mlua_sys as ffi;

use crate::resp::Reply;
use crate::shard::client::Conn;
use crate::shard::journal::Unit;
use crate::shard::tx::ShardSet;
use crate::shard::Shard;

pub use ffi::lua_State;

extern "C-unwind" {
    // Ours, from the patch in build/lua51.rs.
    fn lua_enablereadonlytable(l: *mut lua_State, idx: c_int, enabled: c_int);
    fn lua_isreadonlytable(l: *mut lua_State, idx: c_int) -> c_int;
    fn lua_canyield(l: *mut lua_State) -> c_int;
}

/// How many VM instructions between two calls of the count hook (Redis's 100000).
const HOOK_EVERY: c_int = 100_000;

/// What an interpreter is for: its API and globals differ slightly (as in Redis, where
/// EVAL and functions have separate interpreters).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Eval,
    Function,
}

/// One Lua interpreter of this executor.
pub struct Vm {
    pub l: *mut lua_State,
    pub kind: Kind,
    /// The coroutine scripts run in, reused while scripts end cleanly.
    runner: Option<(*mut lua_State, c_int)>,
    /// Redis's `gc_count`: a GC step every 50 scripts.
    gc_count: u32,
    /// EVAL: scripts compiled here, by SHA1 (from the shared cache, `cmd::scripting`).
    pub scripts: hashbrown::HashMap<[u8; 40], Compiled>,
    /// Functions: those of the loaded libraries, by name.
    pub functions: hashbrown::HashMap<String, Compiled>,
    /// The shared cache's (or function set's) generation this interpreter was built for.
    pub generation: u64,
}

/// A script or function compiled in an interpreter.
pub struct Compiled {
    pub func_ref: c_int,
    pub flags: u32,
}

impl Drop for Vm {
    fn drop(&mut self) {
        // A full collection first, as Redis does since CVE-2024-46981: closing a state
        // whose collector is mid-cycle can run finalizers on objects already freed.
        unsafe {
            ffi::lua_gc(self.l, ffi::LUA_GCCOLLECT, 0);
            ffi::lua_close(self.l)
        };
    }
}

thread_local! {
    /// The script running on this thread (see `RunCtx`), for the C functions Lua calls.
    static CURRENT: Cell<*mut RunCtx> = const { Cell::new(std::ptr::null_mut()) };
    /// The function library being loaded (FUNCTION LOAD), for `redis.register_function`.
    static LOADING: Cell<*mut LoadCtx> = const { Cell::new(std::ptr::null_mut()) };
}

/// A library being loaded: the functions it registered so far.
#[derive(Default)]
pub struct LoadCtx {
    pub functions: Vec<Registered>,
    /// A load stops after this long (FUNCTION LOAD's 500 ms).
    pub deadline: Option<Instant>,
}

/// A function a library registered: its name, description, flags and its Lua function,
/// kept in the interpreter's registry.
pub struct Registered {
    pub name: String,
    pub desc: Option<Vec<u8>>,
    pub flags: u32,
    pub func_ref: c_int,
}

/// Script flags (shebang `flags=` and `register_function` flags), Redis's `SCRIPT_FLAG_*`.
pub mod sflag {
    pub const NO_WRITES: u32 = 1 << 0;
    pub const ALLOW_OOM: u32 = 1 << 1;
    pub const ALLOW_STALE: u32 = 1 << 2;
    pub const NO_CLUSTER: u32 = 1 << 3;
    pub const EVAL_COMPAT_MODE: u32 = 1 << 4;
    pub const ALLOW_CROSS_SLOT: u32 = 1 << 5;

    /// Names, in Redis's order (`scripts_flags_def`).
    pub const NAMES: &[(u32, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT, "allow-cross-slot-keys"),
    ];
}

/// Everything a running script's `redis.*` calls need. It lives (boxed, so it does not
/// move) for one script run; `CURRENT` points at it while Lua code runs.
pub struct RunCtx {
    pub conn: *mut Conn,
    pub shard: Rc<Shard>,
    /// What the script's commands propagate (a script is one execution unit).
    pub unit: Unit,
    /// Reply buffer of the script's own commands, in the script's protocol.
    pub scratch: Reply,
    /// The database the script's commands use (SELECT inside a script changes only this).
    pub db: usize,
    /// The script's time: every command in it sees the keyspace at this instant.
    pub now: i64,
    /// When the script started (for `busy-reply-threshold`).
    pub start: Instant,
    /// `*_RO` command or a `no-writes` script: write commands are refused.
    pub read_only: bool,
    /// Cluster mode: keys of more than one slot are allowed (compat mode, or the flag).
    pub cross_slot: bool,
    /// Cluster mode: the slot of the keys touched so far (Redis's `original_c->slot`).
    pub slot: Option<u16>,
    /// A write (or may-replicate) command ran: the script cannot be restarted or killed.
    pub wrote: bool,
    /// A write command ran (Redis's `SCRIPT_WRITE_DIRTY`; PUBLISH does not count): the
    /// server's state no longer refuses the script's writes.
    pub dirty: bool,
    /// Memory was out when the script's caller passed the gate (`Conn::script_oom`) and the
    /// script did not declare `allow-oom`: its first write may not be a `denyoom` one.
    pub oom: bool,
    /// `redis.set_repl`: whether commands propagate.
    pub propagate: bool,
    /// The shards whose data the script holds.
    pub held: ShardSet,
    /// The script needs every shard before it may go on (an undeclared key elsewhere, or
    /// its first write while holding only some): it is stopped and run again with every
    /// shard, which is safe as it has changed nothing yet.
    pub restart: bool,
    /// The ACL refusals of the script's commands (context `lua`), logged when the run ends
    /// unless it starts again (which meets them again).
    pub denials: Vec<crate::acl::LogEntry>,
    /// The name shown in errors and logs: the script's SHA1 or the function's name.
    pub funcname: String,
    /// The command that called the script, as sent (FUNCTION STATS shows it once slow).
    pub command: Vec<Box<[u8]>>,
    /// An EVAL script (else a function).
    pub eval: bool,
    /// The keys the script declared, when its caller's reads are tracked (client-side
    /// caching): a read-only command of the script remembers them all, as in Redis.
    pub tracked_keys: Vec<Box<[u8]>>,
    /// Busy threshold in ms (0: no hook, as Redis).
    pub busy_ms: u64,
    /// This run passed the threshold.
    pub timed_out: bool,
    /// Killed with SCRIPT KILL / FUNCTION KILL.
    pub killed: bool,
    /// The hook asked the driver to give the core back (`Vm::run`).
    pub hook_yielded: bool,
    /// The coroutine the script runs in: the only one the hook may yield.
    pub runner: *mut lua_State,
    /// `redis.call` is running (recursion through debug hooks is refused, as Redis).
    pub in_call: bool,
}

/// How a script run ended.
pub enum Outcome {
    /// It returned: the reply is in `reply` (caller's protocol).
    Done,
    /// It raised an error: the error line (without `-`), e.g. `ERR ... script: ...`.
    Error(String),
    /// It must run again holding every shard.
    Restart,
}

impl Vm {
    /// A new interpreter with Redis's libraries, API and sandbox.
    pub fn new(kind: Kind) -> Box<Vm> {
        unsafe {
            let l = ffi::luaL_newstate();
            assert!(!l.is_null(), "out of memory creating a Lua state");
            let vm = Box::new(Vm {
                l,
                kind,
                runner: None,
                gc_count: 0,
                scripts: Default::default(),
                functions: Default::default(),
                generation: 0,
            });
            api::setup(l, kind);
            vm
        }
    }

    /// Compiles `code` as chunk `name` (`@user_script`, `@user_function`) and keeps the
    /// function in the registry. Errors carry Lua's message.
    pub fn compile(&mut self, code: &[u8], name: &CStr) -> Result<c_int, String> {
        unsafe {
            let l = self.l;
            let status =
                ffi::luaL_loadbuffer(l, code.as_ptr() as *const c_char, code.len(), name.as_ptr());
            if status != 0 {
                let msg = to_string_lossy(l, -1);
                ffi::lua_settop(l, -2);
                return Err(msg);
            }
            Ok(ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX))
        }
    }

    /// Forgets a compiled function.
    pub fn release(&mut self, func_ref: c_int) {
        unsafe { ffi::luaL_unref(self.l, ffi::LUA_REGISTRYINDEX, func_ref) };
    }

    /// The coroutine scripts run in: the last one, or a new one after an error.
    unsafe fn runner(&mut self) -> *mut lua_State {
        if let Some((co, _)) = self.runner {
            return co;
        }
        let co = ffi::lua_newthread(self.l);
        let r = ffi::luaL_ref(self.l, ffi::LUA_REGISTRYINDEX);
        self.runner = Some((co, r));
        co
    }

    fn drop_runner(&mut self) {
        if let Some((_, r)) = self.runner.take() {
            unsafe { ffi::luaL_unref(self.l, ffi::LUA_REGISTRYINDEX, r) };
        }
    }

    /// Runs compiled function `func_ref` with `keys` and `args` (EVAL: as the KEYS and ARGV
    /// globals; functions: as its two arguments), writing its reply into `reply` on success.
    /// `ctx` is what its `redis.*` calls use. Yields to the executor while the script is
    /// past the busy threshold.
    pub async fn run(
        &mut self,
        ctx: &mut RunCtx,
        func_ref: c_int,
        keys: &[&[u8]],
        args: &[&[u8]],
        reply: &mut Reply,
    ) -> Outcome {
        let co = unsafe { self.runner() };
        ctx.runner = co;
        let nargs = unsafe {
            let l = self.l;
            ffi::lua_settop(co, 0);
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, func_ref);
            ffi::lua_xmove(l, co, 1);
            if self.kind == Kind::Eval {
                set_global_array(l, c"KEYS", keys);
                set_global_array(l, c"ARGV", args);
                0
            } else {
                push_array(co, keys);
                push_array(co, args);
                2
            }
        };
        if ctx.busy_ms > 0 {
            unsafe { ffi::lua_sethook(co, Some(count_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY) };
        }
        let mut nargs = nargs;
        let status = loop {
            CURRENT.with(|c| c.set(ctx as *mut RunCtx));
            let status = unsafe { ffi::lua_resume_(co, nargs) };
            CURRENT.with(|c| c.set(std::ptr::null_mut()));
            nargs = 0;
            if status == ffi::LUA_YIELD && ctx.hook_yielded {
                ctx.hook_yielded = false;
                // Give this core's other tasks a turn (their commands get -BUSY; a SCRIPT
                // KILL sets the flag the hook looks at).
                glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
                continue;
            }
            break status;
        };
        unsafe { ffi::lua_sethook(co, None, 0, 0) };
        self.gc_count += 1;
        if self.gc_count == 50 {
            unsafe { ffi::lua_gc(self.l, ffi::LUA_GCSTEP, 50) };
            self.gc_count = 0;
        }
        if ctx.restart {
            self.drop_runner();
            return Outcome::Restart;
        }
        unsafe {
            match status {
                0 => {
                    // One result, as `lua_pcall(lua, 0, 1, ...)`: the first, or nil.
                    let n = ffi::lua_gettop(co);
                    if n == 0 {
                        ffi::lua_pushnil(co);
                    } else if n > 1 {
                        ffi::lua_settop(co, 1);
                    }
                    api::lua_to_reply(co, ctx.scratch.resp3, reply);
                    ffi::lua_settop(co, 0);
                    Outcome::Done
                }
                ffi::LUA_YIELD => {
                    // `coroutine.yield` at the script's own level: Redis runs scripts in the
                    // main thread, where that is an error.
                    self.drop_runner();
                    Outcome::Error(format!(
                        "ERR attempt to yield across metamethod/C-call boundary script: {}, on @user_script:1.",
                        ctx.funcname
                    ))
                }
                _ => {
                    let line = api::error_line(co, &ctx.funcname);
                    self.drop_runner();
                    Outcome::Error(line)
                }
            }
        }
    }
    /// Runs a library's code so that it registers its functions (FUNCTION LOAD), with the
    /// load-time globals (only `redis.register_function`, `redis.log` and the version).
    pub fn load_library(&mut self, code: &[u8]) -> Result<Vec<Registered>, String> {
        unsafe {
            let l = self.l;
            let func = match self.compile(code, c"@user_function") {
                Ok(f) => f,
                Err(e) => return Err(format!("Error compiling function: {e}")),
            };
            api::switch_globals(l, true);
            let mut load = LoadCtx {
                deadline: Some(Instant::now() + std::time::Duration::from_millis(500)),
                ..LoadCtx::default()
            };
            LOADING.with(|c| c.set(&mut load as *mut LoadCtx));
            ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKCOUNT, HOOK_EVERY);
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, func);
            let status = ffi::lua_pcall(l, 0, 0, 0);
            ffi::lua_sethook(l, None, 0, 0);
            LOADING.with(|c| c.set(std::ptr::null_mut()));
            api::switch_globals(l, false);
            self.release(func);
            if status != 0 {
                let msg = api::error_message(l, -1);
                ffi::lua_settop(l, -2);
                for f in load.functions.drain(..) {
                    self.release(f.func_ref);
                }
                return Err(format!("Error registering functions: {msg}"));
            }
            Ok(load.functions)
        }
    }
}

/// Sets global `name` to an array of `items`, opening the read-only globals for it (Redis's
/// KEYS and ARGV).
unsafe fn set_global_array(l: *mut lua_State, name: &CStr, items: &[&[u8]]) {
    push_array(l, items);
    lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 0);
    ffi::lua_setfield(l, ffi::LUA_GLOBALSINDEX, name.as_ptr());
    lua_enablereadonlytable(l, ffi::LUA_GLOBALSINDEX, 1);
}

unsafe fn push_array(l: *mut lua_State, items: &[&[u8]]) {
    ffi::lua_createtable(l, items.len().min(1 << 20) as c_int, 0);
    for (i, item) in items.iter().enumerate() {
        ffi::lua_pushlstring_(l, item.as_ptr() as *const c_char, item.len());
        ffi::lua_rawseti_(l, -2, i as c_int + 1);
    }
}

/// The string at `idx` (or its type), lossily as UTF-8.
unsafe fn to_string_lossy(l: *mut lua_State, idx: c_int) -> String {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        return String::from("(error object is not a string)");
    }
    String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
}

/// What the hook decided, acted on after the Rust work is done.
enum HookAction {
    Continue,
    Yield,
    Raise(&'static str),
}

/// Redis's `luaMaskCountHook`: a script killed (or to be restarted) stops with an error raised
/// on every line from then on, so `pcall` cannot keep it alive; past the busy threshold
/// other clients get -BUSY, and the script lets this core serve them between hook calls.
unsafe extern "C-unwind" fn count_hook(l: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    let action = std::panic::catch_unwind(|| hook_check(l)).unwrap_or(HookAction::Continue);
    match action {
        HookAction::Continue => {}
        HookAction::Yield => {
            ffi::lua_yield(l, 0);
        }
        HookAction::Raise(msg) => {
            ffi::lua_sethook(l, Some(count_hook), ffi::LUA_MASKLINE, 0);
            api::push_error_table(l, msg.as_bytes());
            ffi::lua_error(l);
        }
    }
}

fn hook_check(l: *mut lua_State) -> HookAction {
    let ptr = CURRENT.with(|c| c.get());
    if ptr.is_null() {
        return HookAction::Continue;
    }
    let ctx = unsafe { &mut *ptr };
    if ctx.restart {
        return HookAction::Raise("-ERR script restarted");
    }
    let core = ctx.shard.id;
    if ctx.killed || ctx.shard.shared.scripts.killed(core) {
        if !ctx.killed {
            eprintln!("Lua script killed by user with SCRIPT KILL.");
        }
        ctx.killed = true;
        return HookAction::Raise("-ERR Script killed by user with SCRIPT KILL...");
    }
    if !ctx.timed_out {
        let elapsed = ctx.start.elapsed().as_millis() as u64;
        if elapsed < ctx.busy_ms {
            return HookAction::Continue;
        }
        eprintln!(
            "Slow script detected: still in execution after {elapsed} milliseconds. You can try killing the script using the SCRIPT KILL command. Script name is: {}.",
            ctx.funcname
        );
        ctx.timed_out = true;
        let slow = crate::shard::scripts::SlowScript {
            eval: ctx.eval,
            name: ctx.funcname.clone(),
            command: ctx.command.clone(),
            started: ctx.start,
        };
        ctx.shard.shared.scripts.time_out(core, slow);
    }
    if l == ctx.runner && unsafe { lua_canyield(l) } != 0 {
        // Other clients run while it yields: their events must not wait with the script's.
        crate::cmd::call::release_events(&ctx.shard, false);
        ctx.hook_yielded = true;
        return HookAction::Yield;
    }
    HookAction::Continue
}

/// FUNCTION LOAD's timeout (Redis's `luaEngineLoadHook`).
unsafe extern "C-unwind" fn load_hook(l: *mut lua_State, _ar: *mut ffi::lua_Debug) {
    let timed_out = LOADING.with(|c| {
        let p = c.get();
        !p.is_null() && (*p).deadline.is_some_and(|d| Instant::now() > d)
    });
    if timed_out {
        ffi::lua_sethook(l, Some(load_hook), ffi::LUA_MASKLINE, 0);
        api::push_error_table(l, b"-ERR FUNCTION LOAD timeout");
        ffi::lua_error(l);
    }
}

pub(crate) fn loading() -> Option<&'static mut LoadCtx> {
    let p = LOADING.with(|c| c.get());
    if p.is_null() {
        None
    } else {
        Some(unsafe { &mut *p })
    }
}

thread_local! {
    /// This executor's interpreters (EVAL, functions), taken out while a script runs (a
    /// second script on this core waits for it).
    static VMS: RefCell<[Option<Box<Vm>>; 2]> = const { RefCell::new([None, None]) };
    /// Whether each interpreter exists (in `VMS` or taken).
    static VM_EXISTS: Cell<[bool; 2]> = const { Cell::new([false, false]) };
}

/// Bytes this executor's idle interpreters (EVAL, functions) hold, as Lua counts them
/// (INFO `used_memory_vm_eval`, `used_memory_vm_functions`). An interpreter running a script
/// right now is not counted.
pub fn vm_memory() -> [usize; 2] {
    VMS.with(|v| {
        let v = v.borrow();
        let bytes = |vm: &Option<Box<Vm>>| {
            vm.as_ref().map_or(0, |vm| {
                // SAFETY: `vm.l` is this thread's live interpreter, not running (it is idle
                // in `VMS`); LUA_GCCOUNT/LUA_GCCOUNTB only read its counters.
                unsafe {
                    let kb = ffi::lua_gc(vm.l, ffi::LUA_GCCOUNT, 0).max(0) as usize;
                    let b = ffi::lua_gc(vm.l, ffi::LUA_GCCOUNTB, 0).max(0) as usize;
                    kb * 1024 + b
                }
            })
        };
        [bytes(&v[0]), bytes(&v[1])]
    })
}

/// Takes this executor's interpreter of `kind`, waiting while another script uses it.
pub async fn take_vm(kind: Kind) -> Box<Vm> {
    let i = kind as usize;
    loop {
        if let Some(vm) = VMS.with(|v| v.borrow_mut()[i].take()) {
            return vm;
        }
        let mut exists = VM_EXISTS.with(Cell::get);
        if !exists[i] {
            exists[i] = true;
            VM_EXISTS.with(|e| e.set(exists));
            return Vm::new(kind);
        }
        glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
    }
}

/// Gives an interpreter back (or drops it, so the next script gets a fresh one).
pub fn put_vm(vm: Box<Vm>, keep: bool) {
    let i = vm.kind as usize;
    if keep {
        VMS.with(|v| v.borrow_mut()[i] = Some(vm));
    } else {
        drop(vm);
        let mut exists = VM_EXISTS.with(Cell::get);
        exists[i] = false;
        VM_EXISTS.with(|e| e.set(exists));
    }
}

pub(crate) fn current() -> Option<&'static mut RunCtx> {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        None
    } else {
        Some(unsafe { &mut *p })
    }
}

/// Parses a script's shebang line (`#!lua flags=...`) as `evalExtractShebangFlags`:
/// the flags and the length of the line (kept out of the compiled code, its newline kept).
pub fn shebang_flags(body: &[u8]) -> Result<(u32, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((sflag::EVAL_COMPAT_MODE, 0));
    }
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Err("Invalid script shebang".into());
    };
    let line = &body[..end];
    let parts = match crate::util::split::split_args(line) {
        Ok(p) if !p.is_empty() => p,
        _ => return Err("Invalid engine in script shebang".into()),
    };
    if parts[0] != b"#!lua" {
        return Err(format!(
            "Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(&parts[0])
        ));
    }
    let mut flags = 0;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(format!(
                "Unknown lua shebang option: {}",
                String::from_utf8_lossy(part)
            ));
        };
        // An empty list is no flag at all (`sdssplitlen` of nothing gives no parts).
        for name in list.split(|&b| b == b',').filter(|_| !list.is_empty()) {
            match sflag::NAMES.iter().find(|(_, n)| n.as_bytes() == name) {
                Some((f, _)) => flags |= f,
                None => {
                    return Err(format!(
                        "Unexpected flag in script shebang: {}",
                        String::from_utf8_lossy(name)
                    ))
                }
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_parse_as_redis() {
        assert_eq!(shebang_flags(b"return 1"), Ok((sflag::EVAL_COMPAT_MODE, 0)));
        assert_eq!(shebang_flags(b"#!lua\nreturn 1"), Ok((0, 5)));
        assert_eq!(
            shebang_flags(b"#!lua flags=no-writes,allow-oom\nreturn 1"),
            Ok((sflag::NO_WRITES | sflag::ALLOW_OOM, 31))
        );
        assert_eq!(shebang_flags(b"#!lua flags=\nx"), Ok((0, 12)));
        assert_eq!(
            shebang_flags(b"#!lua flags=a,\nx"),
            Err("Unexpected flag in script shebang: a".into())
        );
        assert_eq!(
            shebang_flags(b"#!lua"),
            Err("Invalid script shebang".into())
        );
        assert_eq!(
            shebang_flags(b"#!python\n"),
            Err("Unexpected engine in script shebang: #!python".into())
        );
        assert_eq!(
            shebang_flags(b"#!lua x=1\n"),
            Err("Unknown lua shebang option: x=1".into())
        );
    }
}
