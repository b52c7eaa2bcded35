//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT (Redis 7.0's eval.c and script.c), and the
//! script run both EVAL and FCALL share.
//!
//! **The script cache** is shared by every core, keyed by SHA1 (`CACHE`): EVAL and SCRIPT
//! LOAD add to it, SCRIPT FLUSH empties it (and bumps `GENERATION`, so every core rebuilds
//! its interpreter). Each core compiles a script the first time it runs it there and keeps
//! the compiled function in its own interpreter (`lua::Vm::scripts`), so EVALSHA on a hot
//! script costs one local hash lookup, no lock.
//!
//! **Atomicity.** A script runs on the client's core with the data of the shards it needs
//! borrowed for its whole run (`shard::tx::Held`), so no other client sees it half-done.
//! Which shards: in cluster mode its declared keys share one slot, hence one shard; in
//! standalone mode, the shards of its declared keys. A script may touch keys it did not
//! declare, as Redis allows, so it might need any shard; but more data cannot be borrowed
//! while running (taking shards out of ascending order could deadlock with another
//! borrower). So a script holding only some shards is stopped and run again from the start
//! holding every shard at the moment it would (a) touch a key on a shard it does not hold,
//! or (b) run its first write. Until then it has changed nothing (reads only; keys it found
//! expired are propagated as usual), so running it again is invisible; from its first
//! write on it holds every shard and needs nothing more. A core remembers the scripts that
//! needed every shard and gives them every shard from the start next time. Read-only
//! scripts on their declared keys keep running on just those shards, in parallel with
//! other cores; writing scripts run one at a time across the shards, as everything does in
//! Redis. With one shard (or in a transaction, which holds every shard) none of this
//! applies.
//!
//! **Busy scripts.** `busy-reply-threshold` (`lua-time-limit`) is watched by the script's
//! instruction-count hook (`lua`): past it, `Shared::scripts` marks the script timed out,
//! the gate of every core answers -BUSY to commands not flagged `allow-busy`, and the
//! script gives its core back to the executor between hook calls so that this core's
//! clients are answered too. SCRIPT KILL / FUNCTION KILL set a flag the hook reads.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cmd::lua::{self, api::sha1_hex, sflag, Kind, Outcome, RunCtx, Vm};
use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error, ScriptRefusal};
use crate::resp::{Args, Reply};
use crate::shard::client::Conn;
use crate::shard::journal::Unit;
use crate::shard::scripts::KillOutcome;
use crate::shard::tx::{Held, ShardSet};
use crate::util::num::parse_i64_strict;

/// The key finder of EVAL and FCALL: `numkeys` at 2, the keys after it.
pub(crate) fn script_keys(args: &Args<'_>) -> Option<Vec<usize>> {
    let n = usize::try_from(parse_i64_strict(args.get(2))?).ok()?;
    (3 + n <= args.len()).then(|| (3..3 + n).collect())
}

static SCRIPT_SUBS: &[CommandSpec] = &[
    CommandSpec::new("debug", 3, NOSCRIPT, Handler::Sync(script_debug))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "3.2.0",
            "Set the debug mode for executed scripts.",
        ),
    CommandSpec::new("exists", -3, NOSCRIPT, Handler::Sync(script_exists))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "Check existence of scripts in the script cache.",
        ),
    CommandSpec::new("flush", -2, NOSCRIPT, Handler::Sync(script_flush))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "Remove all the scripts from the script cache.",
        ),
    CommandSpec::new("help", 2, LOADING | STALE, Handler::Sync(script_help))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "5.0.0",
            "Show helpful text about the different subcommands",
        ),
    CommandSpec::new("kill", 2, NOSCRIPT | ALLOW_BUSY, Handler::Sync(script_kill))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "Kill the script currently in execution.",
        ),
    CommandSpec::new("load", 3, NOSCRIPT | STALE, Handler::Async(script_load))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "2.6.0",
            "Load the specified Lua script into the script cache.",
        ),
];

const EVAL_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | MAY_REPLICATE | NO_MANDATORY_KEYS | STALE | MOVABLE_KEYS;
const EVAL_RO_FLAGS: u32 =
    NOSCRIPT | SKIP_MONITOR | NO_MANDATORY_KEYS | STALE | READONLY | MOVABLE_KEYS;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("eval", -3, EVAL_FLAGS, Handler::Async(eval))
        .key_finder(script_keys)
        .acl(&["@scripting"])
        .doc("scripting", "2.6.0", "Execute a Lua script server side"),
    CommandSpec::new("evalsha", -3, EVAL_FLAGS, Handler::Async(evalsha))
        .key_finder(script_keys)
        .acl(&["@scripting"])
        .doc("scripting", "2.6.0", "Execute a Lua script server side"),
    CommandSpec::new("eval_ro", -3, EVAL_RO_FLAGS, Handler::Async(eval_ro))
        .key_finder(script_keys)
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Execute a read-only Lua script server side",
        ),
    CommandSpec::new("evalsha_ro", -3, EVAL_RO_FLAGS, Handler::Async(evalsha_ro))
        .key_finder(script_keys)
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Execute a read-only Lua script server side",
        ),
    CommandSpec::new("script", -2, 0, Handler::Container)
        .doc(
            "scripting",
            "2.6.0",
            "A container for Lua scripts management commands",
        )
        .subs(SCRIPT_SUBS),
];

/// A script in the shared cache.
pub struct Script {
    pub body: Arc<[u8]>,
    pub flags: u32,
    /// Bytes of the shebang line, which are not compiled (its newline is, to keep line
    /// numbers).
    pub shebang_len: usize,
}

static CACHE: Mutex<Option<hashbrown::HashMap<[u8; 40], Arc<Script>>>> = Mutex::new(None);
/// Bumped by SCRIPT FLUSH: a core whose interpreter is older builds a new one.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn cache() -> std::sync::MutexGuard<'static, Option<hashbrown::HashMap<[u8; 40], Arc<Script>>>> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Scripts in the cache and the bytes of their bodies (INFO `number_of_cached_scripts`,
/// `used_memory_scripts_eval`).
pub fn cache_stats() -> (usize, usize) {
    cache().as_ref().map_or((0, 0), |c| {
        (c.len(), c.values().map(|s| s.body.len() + 40).sum())
    })
}

/// A SHA1 in hex, lower-cased; `None` unless 40 bytes.
fn sha_key(sha: &[u8]) -> Option<[u8; 40]> {
    let mut k = [0u8; 40];
    if sha.len() != 40 {
        return None;
    }
    for (d, s) in k.iter_mut().zip(sha) {
        *d = s.to_ascii_lowercase();
    }
    Some(k)
}

thread_local! {
    /// Scripts that needed every shard on this core: they get every shard from the start.
    static WIDE: std::cell::RefCell<hashbrown::HashSet<[u8; 40]>> = Default::default();
}

fn noscript() -> Error {
    Error::Coded("NOSCRIPT No matching script. Please use EVAL.".into())
}

fn eval<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(eval_generic(c, a, false, false))
}

fn evalsha<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(eval_generic(c, a, true, false))
}

fn eval_ro<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(eval_generic(c, a, false, true))
}

fn evalsha_ro<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(eval_generic(c, a, true, true))
}

/// `numkeys` at 2, checked as Redis does; `bad` when it is not a number (EVAL and FCALL
/// word that differently).
pub(crate) fn numkeys(a: &Args<'_>, bad: Error) -> Result<usize, Error> {
    let n = parse_i64_strict(a.get(2)).ok_or(bad)?;
    if n > a.len() as i64 - 3 {
        return Err(Error::msg(
            "Number of keys can't be greater than number of args",
        ));
    }
    if n < 0 {
        return Err(Error::msg("Number of keys can't be negative"));
    }
    Ok(n as usize)
}

async fn eval_generic(c: &mut Conn, a: Args<'_>, evalsha: bool, ro: bool) -> CmdResult {
    crate::cmd::call::monitor_before(
        c,
        if evalsha {
            if ro {
                "evalsha_ro"
            } else {
                "evalsha"
            }
        } else if ro {
            "eval_ro"
        } else {
            "eval"
        },
        &a,
    );
    let n = numkeys(&a, Error::NotInteger)?;
    let sha = if evalsha {
        sha_key(a.get(1)).ok_or_else(noscript)?
    } else {
        let hex = sha1_hex(a.get(1));
        sha_key(hex.as_bytes()).ok_or_else(noscript)?
    };
    let body = a.get(1);
    let keys: Vec<&[u8]> = (3..3 + n).map(|i| a.get(i)).collect();
    let argv: Vec<&[u8]> = (3 + n..a.len()).map(|i| a.get(i)).collect();
    let funcname = String::from_utf8_lossy(&sha).into_owned();
    let resolve = |vm: &mut Vm| -> Result<(c_int, u32), Error> {
        resolve_script(vm, &sha, if evalsha { None } else { Some(body) })
    };
    run_script(c, Kind::Eval, &sha, funcname, resolve, &keys, &argv, ro, &a).await
}

/// Finds script `sha` compiled in `vm`, compiling it from the shared cache or from `body`
/// (EVAL; it then joins the cache) if this core has not yet.
fn resolve_script(vm: &mut Vm, sha: &[u8; 40], body: Option<&[u8]>) -> Result<(c_int, u32), Error> {
    if let Some(s) = vm.scripts.get(sha) {
        return Ok((s.func_ref, s.flags));
    }
    let cached = cache().as_ref().and_then(|m| m.get(sha).cloned());
    let script = match (cached, body) {
        (Some(s), _) => s,
        (None, None) => return Err(noscript()),
        (None, Some(body)) => {
            let script = new_script(vm, body)?;
            cache()
                .get_or_insert_with(Default::default)
                .entry(*sha)
                .or_insert(script)
                .clone()
        }
    };
    let code = &script.body[script.shebang_len..];
    let func_ref = vm
        .compile(code, c"@user_script")
        .map_err(|e| Error::msg(format!("Error compiling script (new function): {e}")))?;
    vm.scripts.insert(
        *sha,
        lua::Compiled {
            func_ref,
            flags: script.flags,
        },
    );
    Ok((func_ref, script.flags))
}

/// A new cache entry for `body`, after checking its shebang and that it compiles.
fn new_script(vm: &mut Vm, body: &[u8]) -> Result<Arc<Script>, Error> {
    let (flags, shebang_len) = lua::shebang_flags(body).map_err(Error::msg)?;
    let func = vm
        .compile(&body[shebang_len..], c"@user_script")
        .map_err(|e| Error::msg(format!("Error compiling script (new function): {e}")))?;
    vm.release(func);
    Ok(Arc::new(Script {
        body: body.into(),
        flags,
        shebang_len,
    }))
}

/// This core's interpreter of `kind`, rebuilt when the shared state it was built from
/// changed (SCRIPT FLUSH, a function library change).
pub async fn vm_for(kind: Kind) -> Box<Vm> {
    let generation = match kind {
        Kind::Eval => GENERATION.load(Ordering::Acquire),
        Kind::Function => crate::cmd::function::generation(),
    };
    let vm = lua::take_vm(kind).await;
    if vm.generation == generation {
        return vm;
    }
    lua::put_vm(vm, false);
    let mut vm = lua::take_vm(kind).await;
    vm.generation = generation;
    if kind == Kind::Function {
        crate::cmd::function::load_all(&mut vm);
    }
    vm
}

/// Runs a script or function: borrows the data it needs, runs it in this core's interpreter
/// of `kind` (found by `resolve`), replies, and propagates what it did as one unit. See the
/// module doc for which shards it holds and when it runs again.
#[allow(clippy::too_many_arguments)]
pub async fn run_script(
    c: &mut Conn,
    kind: Kind,
    id: &[u8; 40],
    funcname: String,
    mut resolve: impl FnMut(&mut Vm) -> Result<(c_int, u32), Error>,
    keys: &[&[u8]],
    args: &[&[u8]],
    ro: bool,
    caller: &Args<'_>,
) -> CmdResult {
    let shard = c.shard.clone();
    let in_exec = c.held.is_some();
    let cluster = shard.slot_map.borrow().enabled;
    let mut wide = in_exec || shard.nshards == 1 || WIDE.with(|w| w.borrow().contains(id));
    loop {
        let set = if in_exec {
            c.held
                .as_ref()
                .map(|h| h.shards().clone())
                .unwrap_or_default()
        } else if wide {
            ShardSet::all(shard.nshards)
        } else {
            let mut set = ShardSet::new();
            for k in keys {
                set.insert(shard.owner_of_key(k));
            }
            if set.is_empty() {
                set.insert(shard.id);
            }
            set
        };
        if !in_exec {
            let held = Held::acquire(&shard, &set).await;
            c.held = Some(held);
        }
        let mut vm = vm_for(kind).await;
        let resolved = resolve(&mut vm);
        let (func_ref, flags) = match resolved {
            Ok(r) => r,
            Err(e) => {
                lua::put_vm(vm, true);
                release(c, in_exec, &mut Unit::default());
                return Err(e);
            }
        };
        if let Err(e) = prepare(c, flags, ro, cluster) {
            lua::put_vm(vm, true);
            release(c, in_exec, &mut Unit::default());
            return Err(e);
        }
        let compat = flags & sflag::EVAL_COMPAT_MODE != 0;
        let mut ctx = Box::new(RunCtx {
            conn: c as *mut Conn,
            shard: shard.clone(),
            unit: Unit::default(),
            scratch: Reply::new(false),
            db: c.db,
            now: c.now,
            start: std::time::Instant::now(),
            read_only: ro || (!compat && flags & sflag::NO_WRITES != 0),
            cross_slot: compat || flags & sflag::ALLOW_CROSS_SLOT != 0,
            slot: if cluster {
                keys.first().map(|k| crate::slot::key_slot(k))
            } else {
                None
            },
            wrote: false,
            dirty: false,
            oom: c.script_oom && (compat || flags & sflag::ALLOW_OOM == 0),
            propagate: true,
            held: set.clone(),
            restart: false,
            denials: Vec::new(),
            funcname: funcname.clone(),
            // FUNCTION STATS answers an error for a slow EVAL script, so only a function's
            // command is kept.
            command: if kind == Kind::Function {
                caller.iter().map(Into::into).collect()
            } else {
                Vec::new()
            },
            eval: kind == Kind::Eval,
            // Client-side caching: remembered for a tracking caller when the script reads.
            tracked_keys: if c.track().reader != 0 {
                keys.iter().map(|&k| k.into()).collect()
            } else {
                Vec::new()
            },
            busy_ms: shard.settings.borrow().busy_reply_threshold_ms,
            timed_out: false,
            killed: false,
            hook_yielded: false,
            runner: std::ptr::null_mut(),
            in_call: false,
        });
        shard.shared.scripts.start(shard.id, kind == Kind::Eval);
        let mut reply = Reply::new(c.out.resp3);
        let restartable = ctx.held.len() < shard.nshards;
        if restartable {
            crate::cmd::call::hold_events();
        }
        let outcome = vm.run(&mut ctx, func_ref, keys, args, &mut reply).await;
        if restartable {
            let restarting = matches!(outcome, Outcome::Restart);
            crate::cmd::call::release_events(&shard, restarting);
        }
        if !matches!(outcome, Outcome::Restart) {
            for entry in ctx.denials.drain(..) {
                shard.shared.acl().log_denied(entry);
            }
        }
        shard.shared.scripts.end(shard.id);
        lua::put_vm(vm, true);
        release(c, in_exec, &mut ctx.unit);
        match outcome {
            Outcome::Restart => {
                WIDE.with(|w| w.borrow_mut().insert(*id));
                wide = true;
                continue;
            }
            Outcome::Done => {
                c.out.buf.extend_from_slice(&reply.buf);
                return Ok(());
            }
            Outcome::Error(line) => return Err(Error::Coded(line.into())),
        }
    }
}

/// Ends a run's hold on the data: its unit goes to the journal (or to the EXEC running it)
/// and borrowed data goes home.
fn release(c: &mut Conn, in_exec: bool, unit: &mut Unit) {
    if in_exec {
        c.exec_ops.append(&mut unit.ops);
        return;
    }
    if let Some(mut held) = c.held.take() {
        if !unit.is_empty() {
            let stamp = crate::cmd::call::end_unit(&c.shard, unit, held.clock());
            held.set_clock(stamp);
        }
        held.release();
    }
}

/// The flags a script run by this EVAL, EVALSHA, FCALL (or `_RO` form) declared, as
/// Redis's `evalGetCommandFlags` and `fcallGetCommandFlags` find them for the command gate:
/// from the script cache or the body's shebang, or the function's registration. None for a
/// script without flags (compat mode) or one not found: the command's own flags apply.
pub fn declared_flags(name: &str, args: &Args<'_>) -> Option<u32> {
    if args.len() < 2 {
        return None;
    }
    let flags = match name {
        "eval" | "eval_ro" => {
            let body = args.get(1);
            let sha = sha_key(sha1_hex(body).as_bytes())?;
            let cached = cache().as_ref().and_then(|c| c.get(&sha).map(|s| s.flags));
            match cached {
                Some(flags) => flags,
                None => lua::shebang_flags(body).ok()?.0,
            }
        }
        "evalsha" | "evalsha_ro" => {
            let sha = sha_key(args.get(1))?;
            cache().as_ref()?.get(&sha)?.flags
        }
        "fcall" | "fcall_ro" => return crate::cmd::function::function_flags(args.get(1)),
        _ => return None,
    };
    (flags & sflag::EVAL_COMPAT_MODE == 0).then_some(flags)
}

/// The checks `scriptPrepareForRun` makes before a script runs, from its flags. The server's
/// state (persistence, replication, memory) refused a script with flags already at the
/// command gate (`declared_flags`), with `processCommand`'s wording; these checks, with
/// Redis's wording for scripts, refuse one whose flags the gate did not see (queued in MULTI
/// before SCRIPT LOAD, or a function replaced since). One without flags is refused here only
/// when it may not run on stale data, its writes one by one (`lua::api`).
fn prepare(c: &Conn, flags: u32, ro: bool, cluster: bool) -> CmdResult {
    let gate = c.shard.disk_gate.get();
    if flags & sflag::EVAL_COMPAT_MODE != 0 {
        if gate.master_down {
            return Err(Error::MasterDown);
        }
        return Ok(());
    }
    if flags & sflag::NO_CLUSTER != 0 && cluster {
        return Err(Error::msg(
            "Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    let refuse = |r: ScriptRefusal| Err(Error::Script(r));
    if gate.master_down && flags & sflag::ALLOW_STALE == 0 {
        return refuse(ScriptRefusal::MasterDown);
    }
    if flags & sflag::NO_WRITES == 0 {
        let obeyed = c.must_obey();
        if gate.read_only_replica && !obeyed {
            return refuse(ScriptRefusal::ReadOnlyReplica);
        }
        if gate.save_failed && !obeyed {
            return refuse(ScriptRefusal::BgsaveFailed);
        }
        if gate.aof_errno != 0 && !obeyed {
            return refuse(ScriptRefusal::AofWriteFailed(gate.aof_errno));
        }
        if ro {
            return Err(Error::msg(
                "Can not execute a script with write flag using *_ro command.",
            ));
        }
        if gate.no_good_replicas {
            return Err(Error::NoReplicas);
        }
    }
    if c.script_oom && flags & (sflag::ALLOW_OOM | sflag::NO_WRITES) == 0 {
        return refuse(ScriptRefusal::Oom);
    }
    Ok(())
}

fn script_load<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let body = a.get(2);
        let hex = sha1_hex(body);
        let sha = sha_key(hex.as_bytes()).ok_or_else(noscript)?;
        if !cache().as_ref().is_some_and(|m| m.contains_key(&sha)) {
            let mut vm = vm_for(Kind::Eval).await;
            let script = new_script(&mut vm, body);
            lua::put_vm(vm, true);
            let script = script?;
            cache()
                .get_or_insert_with(Default::default)
                .entry(sha)
                .or_insert(script);
        }
        c.out.bulk(hex.as_bytes());
        Ok(())
    })
}

fn script_exists(c: &mut Conn, a: &Args) -> CmdResult {
    let cache = cache();
    c.out.array(a.len() - 2);
    for sha in a.rest(2) {
        let found =
            sha_key(sha).is_some_and(|k| cache.as_ref().is_some_and(|m| m.contains_key(&k)));
        c.out.int(found as i64);
    }
    Ok(())
}

fn script_flush(c: &mut Conn, a: &Args) -> CmdResult {
    if !(a.len() == 2 || (a.len() == 3 && (a.is(2, "SYNC") || a.is(2, "ASYNC")))) {
        return Err(Error::msg("SCRIPT FLUSH only support SYNC|ASYNC option"));
    }
    flush_scripts();
    c.out.ok();
    Ok(())
}

/// Empties the script cache; every core's interpreter is rebuilt before its next script.
pub fn flush_scripts() {
    *cache() = None;
    GENERATION.fetch_add(1, Ordering::AcqRel);
    WIDE.with(|w| w.borrow_mut().clear());
}

fn script_kill(c: &mut Conn, _a: &Args) -> CmdResult {
    kill(c, true)
}

/// SCRIPT KILL (`eval`) / FUNCTION KILL (`scriptKill`).
pub fn kill(c: &mut Conn, eval: bool) -> CmdResult {
    match c.shard.shared.scripts.kill(eval) {
        KillOutcome::Killed => {
            c.out.ok();
            Ok(())
        }
        KillOutcome::NotBusy => Err(Error::Coded("NOTBUSY No scripts in execution right now.".into())),
        KillOutcome::Unkillable => Err(Error::Coded(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
        )),
        KillOutcome::WrongKind => Err(busy_error(!eval)),
    }
}

/// Redis's `-BUSY` for a running EVAL script (`eval`) or function.
pub fn busy_error(eval: bool) -> Error {
    Error::Coded(
        if eval {
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
        } else {
            "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
        }
        .into(),
    )
}

fn script_debug(_c: &mut Conn, a: &Args) -> CmdResult {
    if a.is(2, "NO") {
        _c.out.ok();
        return Ok(());
    }
    if a.is(2, "YES") || a.is(2, "SYNC") {
        return Err(Error::msg("SCRIPT DEBUG is not supported by this server"));
    }
    Err(Error::msg("Use SCRIPT DEBUG YES/SYNC/NO"))
}

fn script_help(c: &mut Conn, a: &Args) -> CmdResult {
    crate::cmd::server::help_reply(
        &mut c.out,
        a.get(0),
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    );
    Ok(())
}
