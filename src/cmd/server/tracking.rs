//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO: a connection's client-side caching settings (the machinery is `shard::tracking`).

use std::sync::atomic::Ordering;

use crate::cmd::BoxFuture;
use crate::error::{CmdResult, Error, TrackingError};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::tracking::{
    Subscription, BCAST, BROKEN_REDIR, CACHING, NOLOOP, ON, OPTIN, OPTOUT,
};
use crate::util::num::parse_i64_strict;

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP],
/// with Redis 7.0's checks in its order.
pub fn tracking<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let mut redirect: i64 = 0;
        let mut redirect_core = 0usize;
        let mut options = 0u32;
        let mut prefixes: Vec<Box<[u8]>> = Vec::new();
        let mut j = 3;
        while j < a.len() {
            let more = a.len() - 1 - j;
            if a.is(j, "REDIRECT") && more > 0 {
                j += 1;
                if redirect != 0 {
                    return Err(Error::Tracking(TrackingError::RedirectTwice));
                }
                redirect = parse_i64_strict(a.get(j)).ok_or(Error::NotInteger)?;
                // The target must exist now (it may go away later: the client then hears
                // that its redirection is broken).
                redirect_core = core_of_client(c, redirect)
                    .await
                    .ok_or(Error::Tracking(TrackingError::NoSuchRedirect))?;
            } else if a.is(j, "BCAST") {
                options |= BCAST;
            } else if a.is(j, "OPTIN") {
                options |= OPTIN;
            } else if a.is(j, "OPTOUT") {
                options |= OPTOUT;
            } else if a.is(j, "NOLOOP") {
                options |= NOLOOP;
            } else if a.is(j, "PREFIX") && more > 0 {
                j += 1;
                prefixes.push(a.get(j).into());
            } else {
                return Err(Error::Syntax);
            }
            j += 1;
        }
        if a.is(2, "ON") {
            enable(c, redirect as u64, redirect_core, options, prefixes).await?;
        } else if a.is(2, "OFF") {
            disable(c).await;
        } else {
            return Err(Error::Syntax);
        }
        c.out.ok();
        Ok(())
    })
}

/// The core of connection `id`, if it is connected.
async fn core_of_client(c: &Conn, id: i64) -> Option<usize> {
    let id = u64::try_from(id).ok().filter(|&id| id != 0)?;
    if c.shard.clients.borrow().contains_key(&id) {
        return Some(c.shard.id);
    }
    let found = c
        .shard
        .call_all(move |s| s.clients.borrow().contains_key(&id))
        .await;
    found.iter().position(|&here| here)
}

/// Redis's checks before `enableTracking`, then the change.
async fn enable(
    c: &mut Conn,
    redirect: u64,
    redirect_core: usize,
    options: u32,
    new_prefixes: Vec<Box<[u8]>>,
) -> CmdResult {
    use TrackingError::*;
    let flags = c.meta.tracking.get();
    let refuse = |e| Err(Error::Tracking(e));
    if options & BCAST == 0 && !new_prefixes.is_empty() {
        return refuse(PrefixWithoutBcast);
    }
    if flags & ON != 0 && (flags & BCAST != 0) != (options & BCAST != 0) {
        return refuse(SwitchBcast);
    }
    if options & BCAST != 0 && options & (OPTIN | OPTOUT) != 0 {
        return refuse(BcastWithOptInOut);
    }
    if options & OPTIN != 0 && options & OPTOUT != 0 {
        return refuse(OptInAndOptOut);
    }
    if (options & OPTIN != 0 && flags & OPTOUT != 0)
        || (options & OPTOUT != 0 && flags & OPTIN != 0)
    {
        return refuse(SwitchOptInOut);
    }
    if options & BCAST != 0 {
        check_prefixes(&c.meta.prefixes.borrow(), &new_prefixes)?;
    }
    if flags & ON == 0 {
        c.shard
            .shared
            .tracking_clients
            .fetch_add(1, Ordering::Relaxed);
    }
    // CLIENT CACHING's flag survives; the modes are the new ones.
    let kept = flags & CACHING;
    c.meta.tracking.set(kept | ON | options);
    c.meta.redirect.set(redirect);
    c.meta.redirect_core.set(redirect_core as u32);
    // Invalidations are appended to the connection's push buffer.
    c.subscriber();
    if options & BCAST != 0 {
        let all = {
            let mut mine = c.meta.prefixes.borrow_mut();
            if new_prefixes.is_empty() {
                mine.push(Box::default());
            }
            mine.extend(new_prefixes);
            mine.sort();
            mine.dedup();
            mine.clone()
        };
        let sub = Subscription {
            id: c.meta.id,
            home: c.shard.id as u32,
            noloop: options & NOLOOP != 0,
        };
        register(c, Some((sub, all))).await;
    }
    Ok(())
}

/// Redis's `checkPrefixCollisionsOrReply`: no new prefix may be a prefix of (or have as a
/// prefix) one the client has, or another new one.
fn check_prefixes(existing: &[Box<[u8]>], new: &[Box<[u8]>]) -> CmdResult {
    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
            return Err(Error::Tracking(TrackingError::PrefixOverlapsExisting {
                prefix: text(p),
                existing: text(e),
            }));
        }
        if let Some(o) = new[i + 1..].iter().find(|o| overlap(p, o)) {
            return Err(Error::Tracking(TrackingError::PrefixOverlapsProvided {
                prefix: text(p),
                other: text(o),
            }));
        }
    }
    Ok(())
}

/// Registers (`Some`) or removes (`None`) this client's BCAST prefixes on every executor
/// (each matches the keys changed there), then tells every shard's data whether changes
/// must be reported. Done before CLIENT TRACKING answers, so any write after the reply is
/// seen.
async fn register(c: &mut Conn, sub: Option<(Subscription, Vec<Box<[u8]>>)>) {
    let id = c.meta.id;
    let shard = c.shard.clone();
    for core in 0..=shard.nshards {
        let sub = sub.clone();
        shard
            .call(core, move |s| match sub {
                Some((sub, prefixes)) => s.tracking.subscribe(sub, &prefixes),
                None => s.tracking.unsubscribe(id),
            })
            .await;
    }
    for to in 0..shard.nshards {
        crate::cmd::call::on_shard_data(c, to, |s, data, _| {
            data.tracking.bcast = s.tracking.has_prefixes();
            data.sync_tracked();
        })
        .await;
    }
}

/// Turns tracking off (Redis's `disableTracking`): BCAST prefixes are unregistered; the
/// keys remembered for the client stay in the tables until they change (their
/// invalidations then find the client not tracking), as in Redis.
pub async fn disable(c: &mut Conn) {
    let flags = c.meta.tracking.get();
    if flags & BCAST != 0 {
        c.meta.prefixes.borrow_mut().clear();
        register(c, None).await;
    }
    if flags & ON != 0 {
        c.shard
            .shared
            .tracking_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
    c.meta.tracking.set(0);
}

/// CLIENT CACHING YES|NO: in OPTIN mode, track the next command's keys; in OPTOUT mode,
/// do not.
pub fn caching(c: &mut Conn, a: &Args) -> CmdResult {
    let flags = c.meta.tracking.get();
    if flags & ON == 0 {
        return Err(Error::Tracking(TrackingError::CachingWithoutMode));
    }
    if a.is(2, "YES") {
        if flags & OPTIN == 0 {
            return Err(Error::Tracking(TrackingError::CachingYesWithoutOptIn));
        }
    } else if a.is(2, "NO") {
        if flags & OPTOUT == 0 {
            return Err(Error::Tracking(TrackingError::CachingNoWithoutOptOut));
        }
    } else {
        return Err(Error::Syntax);
    }
    c.meta.tracking.set(flags | CACHING);
    c.out.ok();
    Ok(())
}

/// After each command: CLIENT CACHING's choice applies to the next command only (or the
/// next transaction), as Redis's `resetClient` clears it after anything but CLIENT and
/// outside MULTI.
#[cold]
pub fn after_command(c: &mut Conn, name: &[u8]) {
    if c.multi.is_none() && !name.eq_ignore_ascii_case(b"client") {
        let flags = c.meta.tracking.get();
        c.meta.tracking.set(flags & !CACHING);
    }
}

/// CLIENT GETREDIR: the redirect target's id, 0 without one, -1 when tracking is off.
pub fn getredir(c: &mut Conn, _a: &Args) -> CmdResult {
    let id = redirect_shown(c);
    c.out.int(id);
    Ok(())
}

fn redirect_shown(c: &Conn) -> i64 {
    if c.meta.tracking.get() & ON != 0 {
        c.meta.redirect.get() as i64
    } else {
        -1
    }
}

/// CLIENT TRACKINGINFO: a map of `flags` (a set), `redirect` and `prefixes`.
pub fn trackinginfo(c: &mut Conn, _a: &Args) -> CmdResult {
    let flags = c.meta.tracking.get();
    let mut names: Vec<&[u8]> = vec![if flags & ON != 0 { b"on" } else { b"off" }];
    if flags & BCAST != 0 {
        names.push(b"bcast");
    }
    if flags & OPTIN != 0 {
        names.push(b"optin");
        if flags & CACHING != 0 {
            names.push(b"caching-yes");
        }
    }
    if flags & OPTOUT != 0 {
        names.push(b"optout");
        if flags & CACHING != 0 {
            names.push(b"caching-no");
        }
    }
    if flags & NOLOOP != 0 {
        names.push(b"noloop");
    }
    if flags & BROKEN_REDIR != 0 {
        names.push(b"broken_redirect");
    }
    let redirect = redirect_shown(c);
    let prefixes = c.meta.prefixes.borrow().clone();
    let out = &mut c.out;
    out.map(3);
    out.bulk(b"flags");
    out.set(names.len());
    for n in names {
        out.bulk(n);
    }
    out.bulk(b"redirect");
    out.int(redirect);
    out.bulk(b"prefixes");
    out.array(prefixes.len());
    for p in &prefixes {
        out.bulk(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(v: &[&str]) -> Vec<Box<[u8]>> {
        v.iter().map(|s| s.as_bytes().into()).collect()
    }

    #[test]
    fn prefix_collisions_read_as_redis_words_them() {
        let err = |existing: &[&str], new: &[&str]| {
            check_prefixes(&boxed(existing), &boxed(new))
                .unwrap_err()
                .render()
                .into_owned()
        };
        assert_eq!(
            err(&[], &["FOOBAR", "FOO"]),
            "ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'. Prefixes for a single client must not overlap."
        );
        assert_eq!(
            err(&["BAR", "FOO"], &["FO"]),
            "ERR Prefix 'FO' overlaps with an existing prefix 'FOO'. Prefixes for a single client must not overlap."
        );
        assert!(check_prefixes(&boxed(&["FOO"]), &boxed(&["BAR", "BAZ"])).is_ok());
        // The empty prefix overlaps everything.
        assert!(check_prefixes(&boxed(&[""]), &boxed(&["a"])).is_err());
    }
}
