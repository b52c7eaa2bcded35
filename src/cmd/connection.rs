//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET.

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, FAST | SUBSCRIBED_OK, Handler::Sync(ping))
        .acl(&["@connection"])
        .doc(
            "connection",
            "1.0.0",
            "Returns the server's liveliness response.",
        ),
    CommandSpec::new("echo", 2, LOADING | STALE | FAST, Handler::Sync(echo))
        .acl(&["@connection"])
        .doc("connection", "1.0.0", "Returns the given string."),
    CommandSpec::new(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | SUBSCRIBED_OK | NOT_QUEUED,
        Handler::Sync(quit),
    )
    .acl(&["@connection"])
    .doc("connection", "1.0.0", "Closes the connection."),
    CommandSpec::new(
        "hello",
        -1,
        // BARRIER: replies of commands forwarded earlier in the batch must be encoded in the
        // protocol that was in force when they were sent.
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | BARRIER,
        Handler::Sync(hello),
    )
    .acl(&["@connection"])
    .doc("connection", "6.0.0", "Handshakes with the Redis server."),
    CommandSpec::new(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        Handler::Sync(auth),
    )
    .acl(&["@connection"])
    .doc("connection", "1.0.0", "Authenticates the connection."),
    CommandSpec::new("select", 2, LOADING | STALE | FAST, Handler::Sync(select))
        .acl(&["@connection"])
        .doc("connection", "1.0.0", "Changes the selected database."),
    CommandSpec::new(
        "reset",
        1,
        // Async waits for the batch's forwarded replies first: like HELLO, it changes the
        // protocol later replies are encoded in.
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | SUBSCRIBED_OK | NOT_QUEUED,
        Handler::Async(reset),
    )
    .acl(&["@connection"])
    .doc("connection", "6.2.0", "Reset the connection"),
];

/// RESET (Redis's `clearClientConnectionState`): no transaction or WATCHed keys, database
/// 0, RESP2, default authentication, no subscriptions, no name, ASKING and READONLY off.
fn reset<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        super::multi::discard(c).await;
        if c.meta.tracking.get() != 0 {
            super::server::tracking::disable(c).await;
        }
        c.db = 0;
        c.out.resp3 = false;
        c.meta.resp.set(2);
        c.set_default_auth();
        if let Some(sub) = c.sub.clone() {
            crate::shard::pubsub::remove_all(&c.shard, &sub);
            crate::shard::observe::remove_monitor(&c.shard, &sub);
        }
        c.meta.set_name(b"");
        c.asking = false;
        c.readonly = false;
        c.out.simple("RESET");
        Ok(())
    })
}

fn ping(c: &mut Conn, a: &Args) -> CmdResult {
    if !c.out.resp3 && c.meta.in_pubsub() {
        // A RESP2 subscriber cannot tell a status reply from a message: Redis answers with
        // a two-element array instead.
        c.out.array(2);
        c.out.bulk(b"pong");
        c.out.bulk(if a.len() == 2 { a.get(1) } else { b"" });
        return Ok(());
    }
    match a.len() {
        1 => c.out.simple("PONG"),
        2 => c.out.bulk(a.get(1)),
        _ => return Err(Error::WrongArity("ping".into())),
    }
    Ok(())
}

fn echo(c: &mut Conn, a: &Args) -> CmdResult {
    c.out.bulk(a.get(1));
    Ok(())
}

fn quit(c: &mut Conn, _a: &Args) -> CmdResult {
    c.out.ok();
    c.close_after_reply = true;
    Ok(())
}

/// AUTH [username] password: the default user when no name is given, which Redis refuses
/// while that user needs no password.
fn auth(c: &mut Conn, a: &Args) -> CmdResult {
    match a.len() {
        2 => {
            let open = c
                .shard
                .shared
                .acl()
                .default_user()
                .has(crate::acl::user::FLAG_NOPASS);
            if open {
                return Err(Error::AuthNotConfigured);
            }
            super::acl::authenticate(c, a, b"default", a.get(1))?
        }
        3 => super::acl::authenticate(c, a, a.get(1), a.get(2))?,
        _ => return Err(Error::Syntax),
    }
    c.out.ok();
    Ok(())
}

fn select(c: &mut Conn, a: &Args) -> CmdResult {
    let db = crate::util::num::arg_i64(a.get(1))?;
    if db < i32::MIN as i64 || db > i32::MAX as i64 {
        return Err(Error::OutOfRange {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        });
    }
    if db != 0 && c.shard.slot_map.borrow().enabled {
        return Err(Error::msg("SELECT is not allowed in cluster mode"));
    }
    c.db = usize::try_from(db)
        .ok()
        .filter(|&db| db < c.shard.shared.databases)
        .ok_or(Error::DbIndexOutOfRange)?;
    c.out.ok();
    Ok(())
}

fn hello(c: &mut Conn, a: &Args) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if a.len() >= 2 {
        let v = crate::util::num::parse_i64_strict(a.get(1)).ok_or(Error::msg(
            "Protocol version is not an integer or out of range",
        ))?;
        if v != 2 && v != 3 {
            return Err(Error::Coded("NOPROTO unsupported protocol version".into()));
        }
        proto = Some(v);
        i = 2;
    }
    let mut setname = None;
    while i < a.len() {
        let more = a.len() - i - 1;
        if a.is(i, "AUTH") && more >= 2 {
            // As Redis: authenticated as soon as the option is read, even if a later
            // option is wrong.
            super::acl::authenticate(c, a, a.get(i + 1), a.get(i + 2))?;
            i += 3;
        } else if a.is(i, "SETNAME") && more >= 1 {
            setname = Some(a.get(i + 1));
            i += 2;
        } else {
            return Err(Error::msg(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(a.get(i))
            )));
        }
    }
    if !c.authenticated {
        return Err(Error::Coded(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(name) = setname {
        super::server::validate_client_name(name)?;
        c.meta.set_name(name);
    }
    if let Some(p) = proto {
        c.out.resp3 = p == 3;
        c.meta.resp.set(p as u8);
        if p == 3 {
            // A RESP3 client may receive invalidations (as a tracking client, or as the
            // target of another's redirection) without subscribing: give it a push buffer.
            c.subscriber();
        }
    }
    let out = &mut c.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(c.meta.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}
