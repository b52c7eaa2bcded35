//! SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE and SHUTDOWN: the commands in front of `persist`.

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::persist::{self, ShutdownFlags, Started};
use crate::resp::Args;
use crate::shard::client::Conn;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, Handler::Async(save)).doc(
        "server",
        "1.0.0",
        "Synchronously save the dataset to disk",
    ),
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT, Handler::Async(bgsave)).doc(
        "server",
        "1.0.0",
        "Asynchronously save the dataset to disk",
    ),
    CommandSpec::new(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT,
        Handler::Async(bgrewriteaof),
    )
    .doc(
        "server",
        "1.0.0",
        "Asynchronously rewrite the append-only file",
    ),
    CommandSpec::new(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        Handler::Async(lastsave),
    )
    .acl(&["@admin", "@dangerous"])
    .doc(
        "server",
        "1.0.0",
        "Get the UNIX time stamp of the last successful save to disk",
    ),
    CommandSpec::new(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        Handler::Async(shutdown),
    )
    .doc(
        "server",
        "1.0.0",
        "Synchronously save the dataset to disk and then shut down the server",
    ),
];

/// SAVE: Redis answers a failure with a bare `-ERR` (the cause is in the log).
fn save<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        persist::save(&c.shard).await?;
        c.out.ok();
        Ok(())
    })
}

/// BGSAVE [SCHEDULE]: SCHEDULE waits for a running AOF rewrite instead of failing.
fn bgsave<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let schedule = match a.len() {
            1 => false,
            2 if a.is(1, "SCHEDULE") => true,
            _ => return Err(Error::Syntax),
        };
        if c.held.is_some() {
            persist::schedule(&c.shard, false).await?;
            c.out.simple("Background saving scheduled");
            return Ok(());
        }
        match persist::bgsave(&c.shard, schedule).await? {
            Started::Now => c.out.simple("Background saving started"),
            Started::Scheduled => c.out.simple("Background saving scheduled"),
        }
        Ok(())
    })
}

/// BGREWRITEAOF: a rewrite of the AOF (scheduled while a save runs).
fn bgrewriteaof<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if c.held.is_some() {
            persist::schedule(&c.shard, true).await?;
            c.out
                .simple("Background append only file rewriting scheduled");
            return Ok(());
        }
        match persist::bgrewriteaof(&c.shard).await? {
            Started::Now => c
                .out
                .simple("Background append only file rewriting started"),
            Started::Scheduled => c
                .out
                .simple("Background append only file rewriting scheduled"),
        }
        Ok(())
    })
}

/// LASTSAVE: Unix seconds of the last successful save (the start time before any).
fn lastsave<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let at = persist::last_save(&c.shard).await;
        c.out.int(at);
        Ok(())
    })
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], as Redis 7.0's `shutdownCommand`: writes
/// are paused and, unless NOW is given or `shutdown-timeout` is 0, the server waits up to
/// `shutdown-timeout` seconds for every replica to acknowledge its offset (the client stays
/// blocked), then saves (as asked, or as the save points say) and exits: the client sees
/// the connection close. A SHUTDOWN arriving meanwhile waits for the same outcome. ABORT
/// cancels a shutdown waiting for replicas (or a signal's not acted on yet): writes resume
/// and the waiting clients get `-ERR Errors trying to SHUTDOWN. Check logs.`, as they do
/// when the final save fails without FORCE (see `persist::shutdown`).
fn shutdown<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let mut flags = ShutdownFlags::default();
        let mut abort = false;
        for arg in a.rest(1) {
            let flag = match arg.to_ascii_lowercase().as_slice() {
                b"nosave" => &mut flags.nosave,
                b"save" => &mut flags.save,
                b"now" => &mut flags.now,
                b"force" => &mut flags.force,
                b"abort" => &mut abort,
                _ => return Err(Error::Syntax),
            };
            *flag = true;
        }
        if (abort && flags != ShutdownFlags::default()) || (flags.nosave && flags.save) {
            return Err(Error::Syntax);
        }
        if abort {
            if !persist::abort_shutdown(&c.shard).await {
                return Err(Error::msg("No shutdown in progress."));
            }
            c.out.ok();
            return Ok(());
        }
        let failed: CmdResult = Err(persist::shutdown(&c.shard, flags).await);
        failed
    })
}
