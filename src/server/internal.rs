//! The clients that are not users: the one replaying an AOF at start-up and a replica's
//! master client. Nobody reads their replies, but an error among them means a command that
//! worked where it was first run failed here: logged, counted, and per
//! `propagation-error-behavior` fatal, as Redis's `afterErrorReply`.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::conn::{process_batch, Batch, ReadBuf};
use crate::cmd::{self, Handler};
use crate::error::Error;
use crate::persist::load::{Replay, Replayer};
use crate::resp::{replies, Args, Decoded, Decoder};
use crate::shard::client::{Conn, Queued};
use crate::shard::{ClientMeta, Shard};
use crate::util::time::now_ms;

/// Runs an AOF's commands at start-up, or a replica's master stream, as one client would,
/// on the control executor: its database and its MULTI carry over from chunk to chunk.
/// Replies are dropped, as Redis's loading and master clients drop them, once their errors
/// are reported.
struct InternalClient {
    conn: Conn,
    batch: Batch,
    dec: Decoder,
}

impl Replayer for InternalClient {
    fn run<'a>(
        &'a mut self,
        commands: &'a [u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> {
        Box::pin(async move {
            self.conn.now = now_ms();
            if self.conn.is_master {
                run_master_chunk(&mut self.conn, &mut self.dec, commands).await;
            } else {
                let mut rbuf = ReadBuf {
                    data: commands.to_vec(),
                    start: 0,
                    end: commands.len(),
                };
                process_batch(&mut self.conn, &mut self.batch, &mut self.dec, &mut rbuf).await;
                // A `-` anywhere is rare in replies to an AOF's writes (`+OK`, `:1`): only then
                // are they read back.
                if memchr::memchr(b'-', &self.conn.out.buf).is_some() {
                    for (command, error) in replied_errors(commands, &self.conn.out.buf) {
                        unexpected_error(&self.conn.shard, To::AofLoading, &error, command);
                    }
                }
                self.conn.close_after_reply = false;
            }
            self.conn.out.buf.clear();
        })
    }
}

/// Applies a chunk of a replica's master stream (whole commands, whole MULTI blocks: the
/// replication layer cuts it so) as one step over the shards it needs
/// (`multi::run_atomically`): the master's MULTI/EXEC markers fall away inside it. Commands
/// the table does not know, or with a wrong arity, are answered with their error before the
/// step, which leaves one reply per command run.
async fn run_master_chunk(conn: &mut Conn, dec: &mut Decoder, commands: &[u8]) {
    let table = cmd::table();
    let mut queued = Vec::new();
    let mut pos = 0;
    while pos < commands.len() {
        let buf = &commands[pos..];
        let len = match dec.decode(buf, false) {
            Decoded::Request { len, .. } => len,
            Decoded::Nothing { len } => {
                pos += len;
                continue;
            }
            Decoded::Incomplete { .. } | Decoded::Error(_) => break,
        };
        let args = Args::new(buf, dec.scratch(), dec.spans());
        pos += len;
        let name = args.get(0);
        if name.eq_ignore_ascii_case(b"multi") || name.eq_ignore_ascii_case(b"exec") {
            continue;
        }
        match master_command(&args) {
            Ok(idx) => queued.push(Queued {
                idx,
                args: (&args).into(),
            }),
            Err((e, idx)) => {
                let command = idx.map(|i| table.full_names[i].as_str());
                unexpected_error(&conn.shard, To::Master, e.render().as_bytes(), command);
                // Counted as any refused command (INFO errorstats, `rejected_calls`).
                let mut stats = conn.shard.stats.borrow_mut();
                if let Some(idx) = idx {
                    stats.cmd[idx].rejected += 1;
                }
                stats.count_error(&e);
            }
        }
    }
    cmd::multi::run_atomically(conn, &queued).await;
    if memchr::memchr(b'-', &conn.out.buf).is_some() {
        let mut at = 0;
        for q in &queued {
            let Some(len) = conn.out.buf.get(at..).and_then(replies::reply_len) else {
                break;
            };
            let mut errors = Vec::new();
            replies::errors(&conn.out.buf[at..at + len], &mut errors);
            for e in errors {
                let command = Some(table.full_names[q.idx].as_str());
                unexpected_error(&conn.shard, To::Master, &e, command);
            }
            at += len;
        }
    }
}

/// The command a master sent, or the error a replica answers it with (and the command Redis
/// logs beside it: none when unknown).
fn master_command(args: &Args<'_>) -> Result<usize, (Error, Option<usize>)> {
    let table = cmd::table();
    let name = args.get(0);
    let Some(mut idx) = table.lookup(name) else {
        let rest: Vec<&[u8]> = (1..args.len()).map(|i| args.get(i)).collect();
        return Err((Error::unknown_command(name, &rest), None));
    };
    if let Handler::Container = table.specs[idx].handler {
        let container = table.upper_names[idx].as_str();
        match (args.len() >= 2).then(|| table.lookup_sub(idx, args.get(1))) {
            Some(Some(sub)) => idx = sub,
            Some(None) => {
                let e = Error::unknown_subcommand(args.get(1), container);
                return Err((e, Some(idx)));
            }
            None => {}
        }
    }
    if !table.specs[idx].arity_ok(args.len()) {
        let e = Error::WrongArity(table.full_names[idx].clone().into());
        return Err((e, Some(idx)));
    }
    Ok(idx)
}

/// The errors among replies to a chunk of commands, each with the name of the command that
/// got it (None when unknown). Replies pair with commands in order; the array an EXEC
/// answers pairs with the commands its MULTI queued.
fn replied_errors(commands: &[u8], replies_buf: &[u8]) -> Vec<(Option<&'static str>, Vec<u8>)> {
    let table = cmd::table();
    let mut dec = Decoder::new(i64::MAX);
    let mut out = Vec::new();
    let mut queued: Vec<Option<&'static str>> = Vec::new();
    let mut in_multi = false;
    let (mut pos, mut at) = (0, 0);
    while pos < commands.len() {
        let len = match dec.decode(&commands[pos..], false) {
            Decoded::Request { len, .. } => len,
            Decoded::Nothing { len } => {
                pos += len;
                continue;
            }
            Decoded::Incomplete { .. } | Decoded::Error(_) => break,
        };
        let args = Args::new(&commands[pos..], dec.scratch(), dec.spans());
        pos += len;
        let command = master_command(&args)
            .ok()
            .map(|idx| table.full_names[idx].as_str());
        let Some(reply_len) = replies_buf.get(at..).and_then(replies::reply_len) else {
            break;
        };
        let reply = &replies_buf[at..at + reply_len];
        at += reply_len;
        let mut errors = Vec::new();
        match command {
            Some("multi") => in_multi = true,
            Some("discard") => {
                in_multi = false;
                queued.clear();
            }
            Some("exec") if in_multi => {
                in_multi = false;
                let results = replies::elements(reply);
                if results.is_empty() {
                    replies::errors(reply, &mut errors);
                    out.extend(errors.drain(..).map(|e| (command, e)));
                }
                for (result, name) in results.iter().zip(queued.drain(..)) {
                    replies::errors(result, &mut errors);
                    out.extend(errors.drain(..).map(|e| (name, e)));
                }
                continue;
            }
            _ if in_multi && reply.starts_with(b"+QUEUED") => queued.push(command),
            _ => {}
        }
        replies::errors(reply, &mut errors);
        out.extend(errors.into_iter().map(|e| (command, e)));
    }
    out
}

/// Whose error it is, in Redis's words.
#[derive(Clone, Copy, PartialEq)]
enum To {
    AofLoading,
    Master,
}

/// An error an internal client got. Redis's `afterErrorReply`: a CRITICAL log line and a
/// count (INFO `unexpected_error_replies`); then a crash, so the divergence is noticed,
/// when `propagation-error-behavior` asks for it: for the master client of a read-only
/// replica (`panic` or `panic-on-replicas`; a writable replica may hold keys its master does
/// not), for AOF loading only with `panic`.
fn unexpected_error(shard: &Shard, to: To, error: &[u8], command: Option<&str>) {
    let (from, to_name) = match to {
        To::AofLoading => ("server", "AOF-loading-client"),
        To::Master => ("replica", "master"),
    };
    let command = command.unwrap_or("<unknown>");
    // Redis logs an error as its code handed it over: a plain `ERR` one without its code
    // (the reply adds it), one with another code (WRONGTYPE, NOSCRIPT ...) as its whole
    // line, dash included.
    let error = &error[..error.len().min(4096)];
    let shown = match error.strip_prefix(b"ERR ") {
        Some(text) => String::from_utf8_lossy(text),
        None => format!("-{}", String::from_utf8_lossy(error)).into(),
    };
    eprintln!(
        "== CRITICAL == This {from} is sending an error to its {to_name}: '{shown}' after processing the command '{command}'"
    );
    shard
        .shared
        .unexpected_error_replies
        .fetch_add(1, Ordering::Relaxed);
    let (behavior, read_only) = {
        let config = shard.shared.config();
        (
            config.get("propagation-error-behavior").to_string(),
            config.get_bool("replica-read-only"),
        )
    };
    let panic = match to {
        To::Master => read_only && behavior != "ignore",
        To::AofLoading => behavior == "panic",
    };
    if panic {
        eprintln!(
            "Guru Meditation: This {from} panicked sending an error to its {to_name} after processing the command '{command}'"
        );
        std::process::abort();
    }
}

/// A client that is not a user (no authentication, no ACL checks): Redis's AOF loading
/// client, or a replica's master client (`is_master`, whose bulks have no length limit).
fn internal_client(shard: Rc<Shard>, is_master: bool) -> Box<dyn Replayer> {
    let meta = Rc::new(ClientMeta::new(0, -1, String::new(), String::new(), false));
    let max_bulk = if is_master {
        i64::MAX
    } else {
        shard.settings.borrow().proto_max_bulk_len
    };
    let mut conn = Conn::new(shard.clone(), meta);
    conn.sync_acl();
    conn.authenticated = true;
    conn.acl_open = true;
    conn.is_master = is_master;
    Box::new(InternalClient {
        conn,
        batch: Batch::new(shard.nshards),
        dec: Decoder::new(max_bulk),
    })
}

/// The client a replica applies its master's stream with (`repl::replica`).
pub fn master_client(shard: Rc<Shard>) -> Box<dyn Replayer> {
    internal_client(shard, true)
}

/// The AOF replay the persistence layer runs at start-up.
pub fn aof_replay() -> Replay {
    Replay {
        client: |shard| internal_client(shard, false),
        is_command: |name| cmd::table().lookup(name).is_some(),
        libraries: cmd::function::library_codes,
        load_library: cmd::function::load_from_file,
    }
}
