//! REPLCONF, SYNC, PSYNC and WAIT: a replica's handshake with this master, and a client
//! waiting for replicas to acknowledge its writes; REPLICAOF/SLAVEOF, ROLE and FAILOVER (a
//! master handing its role to a replica). After SYNC/PSYNC the connection becomes the
//! replica's link, served by `repl::master` on the control executor.

use std::time::{Duration, Instant};

use crate::cmd::{flag::*, BoxFuture, CommandSpec, Handler};
use crate::error::{CmdResult, Error};
use crate::repl::master::Master;
use crate::resp::Args;
use crate::shard::client::{Conn, RdbFilter, ReplicaHandshake};
use crate::util::num::parse_i64_strict;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE,
        Handler::Async(replicaof),
    )
    .doc(
        "server",
        "5.0.0",
        "Make the server a replica of another instance, or promote it as master.",
    ),
    CommandSpec::new(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE,
        Handler::Async(replicaof),
    )
    .doc(
        "server",
        "1.0.0",
        "Make the server a replica of another instance, or promote it as master. Deprecated starting with Redis 5. Use REPLICAOF instead.",
    ),
    CommandSpec::new(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        Handler::Sync(replconf),
    )
    .doc(
        "server",
        "3.0.0",
        "An internal command for configuring the replication stream",
    ),
    CommandSpec::new(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_MULTI,
        Handler::Async(psync),
    )
    .doc(
        "server",
        "2.8.0",
        "Internal command used for replication",
    ),
    CommandSpec::new("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, Handler::Async(sync)).doc(
        "server",
        "1.0.0",
        "Internal command used for replication",
    ),
    CommandSpec::new(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        Handler::Async(role),
    )
    .acl(&["@admin", "@dangerous"])
    .doc(
        "server",
        "2.8.12",
        "Return the role of the instance in the context of replication",
    ),
    CommandSpec::new(
        "failover",
        -1,
        ADMIN | NOSCRIPT | STALE,
        Handler::Async(failover),
    )
    .doc(
        "server",
        "6.2.0",
        "Start a coordinated failover between this server and one of its replicas.",
    ),
    CommandSpec::new("wait", 3, NOSCRIPT, Handler::Async(wait))
        .acl(&["@connection"])
        .doc(
            "generic",
            "3.0.0",
            "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
        ),
];

/// REPLCONF <option> <value> ...: what a replica says before SYNC/PSYNC (Redis's
/// `replconfCommand`). ACK and GETACK from a client that is not a replica link are ignored.
fn replconf(c: &mut Conn, a: &Args<'_>) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(Error::Syntax);
    }
    let hello = c.replica.get_or_insert_with(Default::default);
    for i in (1..a.len()).step_by(2) {
        let value = a.get(i + 1);
        if a.is(i, "listening-port") {
            let port = parse_i64_strict(value).ok_or(Error::NotInteger)?;
            hello.listening_port = port.clamp(0, 65535) as u16;
        } else if a.is(i, "ip-address") {
            hello.ip = Some(String::from_utf8_lossy(value).into_owned());
        } else if a.is(i, "capa") {
            if value.eq_ignore_ascii_case(b"eof") {
                hello.capa_eof = true;
            } else if value.eq_ignore_ascii_case(b"psync2") {
                hello.capa_psync2 = true;
            }
        } else if a.is(i, "ack") || a.is(i, "getack") {
            return Ok(()); // only meaningful on a replication link: no reply
        } else if a.is(i, "rdb-only") {
            let v = parse_i64_strict(value).ok_or(Error::NotInteger)?;
            if v != 0 && v != 1 {
                return Err(Error::msg(
                    "value is out of range, value must between 0 and 1",
                ));
            }
            hello.rdb_only = v == 1;
        } else if a.is(i, "rdb-filter-only") {
            hello.rdb_filter = Some(rdb_filter(value)?);
        } else {
            return Err(Error::msg(format!(
                "Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(a.get(i))
            )));
        }
    }
    c.out.ok();
    Ok(())
}

/// REPLCONF rdb-filter-only's value: the parts of the RDB to keep besides the aux fields,
/// space-separated (quotes as in a config line); `functions` is the only one, and "" keeps
/// nothing.
fn rdb_filter(value: &[u8]) -> Result<RdbFilter, Error> {
    let words = crate::util::split::split_args(value)
        .map_err(|_| Error::msg("Missing rdb-filter-only values"))?;
    let mut filter = RdbFilter { functions: false };
    for w in words {
        if w.eq_ignore_ascii_case(b"functions") {
            filter.functions = true;
        } else {
            return Err(Error::msg(format!(
                "Unsupported rdb-filter-only option: {}",
                String::from_utf8_lossy(&w)
            )));
        }
    }
    Ok(filter)
}

/// PSYNC <replid> <offset> [FAILOVER]: hands the connection to the master side, which
/// answers `+CONTINUE` or `+FULLRESYNC`. With FAILOVER (a master handing its role over with
/// the FAILOVER command) this replica first becomes a master, if it follows `replid`.
fn psync<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let replid = String::from_utf8_lossy(a.get(1)).into_owned();
        if a.len() > 3 && a.is(3, "failover") {
            let client = crate::cmd::server::client::line_of(&c.meta);
            crate::repl::failover::psync_failover(&c.shard, replid.clone(), client).await?;
        }
        refuse_while_failing_over(c).await?;
        // A bad offset asks for a full resync, as Redis's `masterTryPartialResynchronization`.
        let offset = parse_i64_strict(a.get(2)).unwrap_or(-1);
        take_over(c, Some((replid, offset)))
    })
}

/// SYNC: the old protocol, always a full sync without the `+FULLRESYNC` line.
fn sync<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        refuse_while_failing_over(c).await?;
        take_over(c, None)
    })
}

/// No replica may sync with a master handing its role over (Redis's `syncCommand`).
async fn refuse_while_failing_over(c: &Conn) -> CmdResult {
    if crate::repl::failover::in_progress(&c.shard).await {
        return Err(Error::Coded(
            "NOMASTERLINK Can't SYNC while failing over".into(),
        ));
    }
    Ok(())
}

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms] (Redis 7.0's `failoverCommand`).
fn failover<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if c.shard.slot_map.borrow().enabled {
            return Err(Error::msg(
                "FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
            ));
        }
        if a.len() == 2 && a.is(1, "abort") {
            crate::repl::failover::failover(&c.shard, None).await?;
            c.out.ok();
            return Ok(());
        }
        let mut request = crate::repl::failover::Request {
            to: None,
            timeout_ms: 0,
            force: false,
        };
        let mut j = 1;
        while j < a.len() {
            if a.is(j, "timeout") && j + 1 < a.len() && request.timeout_ms == 0 {
                let ms = parse_i64_strict(a.get(j + 1)).ok_or(Error::NotInteger)?;
                if ms <= 0 {
                    return Err(Error::msg("FAILOVER timeout must be greater than 0"));
                }
                request.timeout_ms = ms;
                j += 2;
            } else if a.is(j, "to") && j + 2 < a.len() && request.to.is_none() {
                let port = parse_i64_strict(a.get(j + 2)).ok_or(Error::NotInteger)?;
                request.to = Some((String::from_utf8_lossy(a.get(j + 1)).into_owned(), port));
                j += 3;
            } else if a.is(j, "force") && !request.force {
                request.force = true;
                j += 1;
            } else {
                return Err(Error::Syntax);
            }
        }
        crate::repl::failover::failover(&c.shard, Some(request)).await?;
        c.out.ok();
        Ok(())
    })
}

fn take_over(c: &mut Conn, psync: Option<(String, i64)>) -> CmdResult {
    if !c.out.buf.is_empty() {
        return Err(Error::msg("SYNC and PSYNC are invalid with pending output"));
    }
    let hello = c
        .replica
        .get_or_insert_with(Box::<ReplicaHandshake>::default);
    // A filtered RDB is always streamed (Redis never writes one to a file).
    if hello.rdb_filter.is_some() && !hello.capa_eof {
        return Err(Error::msg("Filtered replica requires EOF capability"));
    }
    hello.sync = Some(psync);
    c.close_after_reply = true;
    Ok(())
}

/// WAIT numreplicas timeout: the number of replicas that acknowledged every write made
/// before it, once `numreplicas` did or `timeout` ms passed (0: no limit).
fn wait<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if crate::repl::is_replica_now(&c.shard).await {
            return Err(Error::msg(
                "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
            ));
        }
        let want = parse_i64_strict(a.get(1)).ok_or(Error::NotInteger)?;
        let timeout = crate::cmd::blocking::parse_timeout_ms(a.get(2))?;
        let in_multi = c.held.is_some();
        // None: the node became a replica meanwhile.
        let n = c
            .shard
            .call_async(c.shard.nshards, move |_| async move {
                // The client passed the replica check when it was dispatched, so it is
                // ordered before a REPLICAOF that ran since: it was blocked, and unblocks.
                if !in_multi && crate::repl::is_replica() {
                    return None;
                }
                let Some(m) = Master::current() else {
                    return Some(0);
                };
                let offset = m.offset_after_now().await;
                let acked = m.acked(offset);
                if in_multi || acked as i64 >= want {
                    return Some(acked);
                }
                m.request_acks();
                let deadline =
                    (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout));
                loop {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    if crate::repl::is_replica() {
                        return None;
                    }
                    let acked = m.acked(offset);
                    if acked as i64 >= want || deadline.is_some_and(|d| Instant::now() >= d) {
                        return Some(acked);
                    }
                }
            })
            .await;
        let Some(n) = n else {
            // A blocked client when REPLICAOF turned this node into a replica (Redis's
            // `disconnectAllBlockedClients`): the error, then closed.
            c.close_after_reply = true;
            return Err(Error::Coded(crate::shard::FORCE_UNBLOCKED.into()));
        };
        c.out.int(n as i64);
        Ok(())
    })
}

/// ROLE of a master: `master`, its offset, and each online replica's ip, port and
/// acknowledged offset (as strings, as Redis sends them).
fn role<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let replica = crate::repl::info(&c.shard).await;
        if let (Some((host, port)), Some(state)) = (&replica.master, replica.link) {
            c.out.array(5);
            c.out.bulk(b"slave");
            c.out.bulk(host.as_bytes());
            c.out.int(*port as i64);
            c.out.bulk(state.as_bytes());
            c.out.int(replica.role_offset);
            return Ok(());
        }
        let s = crate::repl::master::summary(&c.shard).await;
        c.out.array(3);
        c.out.bulk(b"master");
        c.out.int(s.offset);
        let online: Vec<_> = s.replicas.iter().filter(|r| r.2 == "online").collect();
        c.out.array(online.len());
        for (ip, port, _, offset, _) in online {
            c.out.array(3);
            c.out.bulk(ip.as_bytes());
            c.out.bulk(port.to_string().as_bytes());
            c.out.bulk(offset.to_string().as_bytes());
        }
        Ok(())
    })
}

/// REPLICAOF host port | NO ONE, with Redis 7.0's checks and replies.
fn replicaof<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if c.shard.slot_map.borrow().enabled {
            return Err(Error::msg("REPLICAOF not allowed in cluster mode."));
        }
        let to = if a.is(1, "no") && a.is(2, "one") {
            None
        } else {
            let port = parse_i64_strict(a.get(2))
                .filter(|p| (0..=65535).contains(p))
                .ok_or_else(|| Error::msg("Invalid master port"))?;
            Some(crate::repl::MasterAddr {
                host: String::from_utf8_lossy(a.get(1)).into_owned(),
                port: port as u16,
            })
        };
        let client = crate::cmd::server::client::line_of(&c.meta);
        match crate::repl::replicaof(&c.shard, to, client).await? {
            crate::repl::ReplicaOf::Done => c.out.ok(),
            crate::repl::ReplicaOf::AlreadyConnected => {
                c.out.simple("OK Already connected to specified master")
            }
        }
        Ok(())
    })
}
