//! Generic key commands (Redis's db.c / expire.c): DEL, EXISTS, TYPE, TTLs, RENAME, SCAN ...

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Ctx, Handler};
use crate::error::CmdResult;
use crate::resp::Args;
use crate::server::conn::Conn;
use crate::shard::multi;

const fn keyed(name: &'static str, arity: i32, flags: u32, f: crate::cmd::KeyedFn) -> CommandSpec {
    CommandSpec::new(name, arity, flags, Handler::Keyed(f)).keys(1, 1, 1)
}

pub static COMMANDS: &[CommandSpec] = &[
    keyed("del", -2, WRITE, del)
        .keys(1, -1, 1)
        .multi(del_multi)
        .acl(&["@keyspace", "@write", "@slow"])
        .doc("generic", "1.0.0", "Deletes one or more keys."),
    keyed("unlink", -2, WRITE | FAST, del)
        .keys(1, -1, 1)
        .multi(del_multi)
        .acl(&["@keyspace", "@write", "@fast"])
        .doc("generic", "4.0.0", "Asynchronously deletes one or more keys."),
    keyed("exists", -2, READONLY | FAST, exists)
        .keys(1, -1, 1)
        .multi(exists_multi)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "1.0.0", "Determines whether one or more keys exist."),
    keyed("touch", -2, READONLY | FAST, exists)
        .keys(1, -1, 1)
        .multi(exists_multi)
        .acl(&["@keyspace", "@read", "@fast"])
        .doc("generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
];

fn del(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = a.rest(1).filter(|k| c.db.delete(k, c.now)).count();
    c.out.int(n as i64);
    Ok(())
}

fn exists(c: &mut Ctx, a: &Args) -> CmdResult {
    let n = a.rest(1).filter(|k| c.db.exists(k, c.now)).count();
    c.out.int(n as i64);
    Ok(())
}

fn del_multi<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let keys = a.rest(1).map(<[u8]>::to_vec).collect();
        let n = multi::map_keys(&conn.shard, keys, |db, k, now| db.delete(k, now))
            .await
            .into_iter()
            .filter(|&d| d)
            .count();
        conn.out.int(n as i64);
        Ok(())
    })
}

fn exists_multi<'a>(conn: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let keys = a.rest(1).map(<[u8]>::to_vec).collect();
        let n = multi::map_keys(&conn.shard, keys, |db, k, now| db.exists(k, now))
            .await
            .into_iter()
            .filter(|&d| d)
            .count();
        conn.out.int(n as i64);
        Ok(())
    })
}
