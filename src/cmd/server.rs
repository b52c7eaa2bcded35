//! Server commands (Redis's server.c and friends): DBSIZE, FLUSHALL, INFO, CLIENT, CONFIG, COMMAND ...

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::server::conn::Conn;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "dbsize",
        1,
        READONLY | FAST | BARRIER,
        Handler::Async(dbsize),
    )
    .acl(&["@keyspace", "@read", "@fast"])
    .doc(
        "server",
        "1.0.0",
        "Returns the number of keys in the database.",
    ),
    CommandSpec::new("flushall", -1, WRITE | BARRIER, Handler::Async(flushall))
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc("server", "1.0.0", "Removes all keys from all databases."),
    CommandSpec::new("flushdb", -1, WRITE | BARRIER, Handler::Async(flushall))
        .acl(&["@keyspace", "@write", "@slow", "@dangerous"])
        .doc(
            "server",
            "1.0.0",
            "Remove all keys from the current database.",
        ),
];

/// CLIENT SETNAME rules: no spaces or newlines.
pub fn validate_client_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| c < b'!' || c > b'~') {
        return Err(Error::msg(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn dbsize<'a>(conn: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let sizes = conn.shard.call_all(|s| s.db.borrow().len()).await;
        conn.out.int(sizes.iter().sum::<usize>() as i64);
        Ok(())
    })
}

fn flushall<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        match a.len() {
            1 => {}
            2 if a.is(1, "ASYNC") || a.is(1, "SYNC") => {}
            _ => return Err(Error::Syntax),
        }
        conn.shard.call_all(|s| s.db.borrow_mut().flush()).await;
        conn.out.ok();
        Ok(())
    })
}
