//! FUNCTION (Redis 7.0's functions.c), as far as a server without a scripting engine can
//! honestly go: it has no libraries, lists none, dumps an empty set, and restores a dump only
//! if that dump holds no library. Cluster tools rely on this (`redis-cli --cluster add-node`
//! copies the cluster's functions to a new node).

use crate::cmd::{flag::*, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::util::crc64::crc64;

/// The RDB version of Redis 7.0, which DUMP payloads carry.
const RDB_VERSION: u16 = 10;

static FUNCTION_SUBS: &[CommandSpec] = &[
    CommandSpec::new("dump", 2, NOSCRIPT, Handler::Sync(dump))
        .acl(&["@scripting"])
        .doc(
            "scripting",
            "7.0.0",
            "Dump all functions into a serialized binary payload",
        ),
    CommandSpec::new("flush", -2, WRITE | NOSCRIPT, Handler::Sync(flush))
        .acl(&["@scripting"])
        .doc("scripting", "7.0.0", "Deleting all functions"),
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
    CommandSpec::new(
        "restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT,
        Handler::Sync(restore),
    )
    .acl(&["@scripting"])
    .doc(
        "scripting",
        "7.0.0",
        "Restore all the functions on the given payload",
    ),
];

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("function", -2, 0, Handler::Container)
    .doc("scripting", "7.0.0", "A container for function commands")
    .subs(FUNCTION_SUBS)];

/// An empty library set: the RDB version and the checksum, both little-endian.
fn empty_payload() -> Vec<u8> {
    let mut p = RDB_VERSION.to_le_bytes().to_vec();
    let crc = crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// No function can run here, so FUNCTION KILL finds none (NOTBUSY), or a slow EVAL script
/// (BUSY, as Redis answers it then).
fn kill(c: &mut Conn, _a: &Args) -> CmdResult {
    crate::cmd::scripting::kill(c, false)
}

fn dump(c: &mut Conn, _a: &Args) -> CmdResult {
    c.out.bulk(&empty_payload());
    Ok(())
}

fn flush(c: &mut Conn, a: &Args) -> CmdResult {
    match a.len() {
        2 => {}
        3 if a.is(2, "ASYNC") || a.is(2, "SYNC") => {}
        3 => return Err(Error::msg("FUNCTION FLUSH only supports SYNC|ASYNC option")),
        _ => return Err(Error::WrongArity("function|flush".into())),
    }
    c.out.ok();
    Ok(())
}

fn list(c: &mut Conn, a: &Args) -> CmdResult {
    let mut i = 2;
    while i < a.len() {
        if a.is(i, "WITHCODE") {
            i += 1;
        } else if a.is(i, "LIBRARYNAME") {
            if i + 1 >= a.len() {
                return Err(Error::msg("library name argument was not given"));
            }
            i += 2;
        } else {
            return Err(Error::msg(format!(
                "Unknown argument {}",
                String::from_utf8_lossy(a.get(i))
            )));
        }
    }
    c.out.array(0);
    Ok(())
}

fn restore(c: &mut Conn, a: &Args) -> CmdResult {
    let payload = a.get(2);
    if a.len() > 4 {
        return Err(Error::Syntax);
    }
    if a.len() == 4 && !(a.is(3, "FLUSH") || a.is(3, "APPEND") || a.is(3, "REPLACE")) {
        return Err(Error::msg(
            "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
        ));
    }
    let bad = || Error::msg("DUMP payload version or checksum are wrong");
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(bad());
    };
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    let crc = u64::from_le_bytes(payload[body_len + 2..].try_into().map_err(|_| bad())?);
    if version > RDB_VERSION || crc != crc64(&payload[..body_len + 2]) {
        return Err(bad());
    }
    if body_len > 0 {
        return Err(Error::msg(
            "this server has no scripting engine: function libraries cannot be restored",
        ));
    }
    c.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_dump_matches_redis() {
        // FUNCTION DUMP of a stock 7.0 server without libraries.
        assert_eq!(super::empty_payload(), b"\n\x00]\x9b\\@\x0f\x7f\xa2\xda");
    }
}
