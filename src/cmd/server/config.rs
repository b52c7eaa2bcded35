//! CONFIG GET/SET/RESETSTAT/HELP over the shared configuration and every executor's settings copy.

use crate::cmd::call::each_shard_data;
use crate::cmd::BoxFuture;
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::Settings;

use super::{help_reply, is_local};

/// CONFIG GET pattern [pattern ...]: a map of matching directives.
pub fn get(c: &mut Conn, a: &Args) -> CmdResult {
    let patterns: Vec<&[u8]> = a.rest(2).collect();
    let pairs = {
        let config = c.shard.shared.config();
        config.get_matching(&patterns)
    };
    c.out.map(pairs.len());
    for (name, value) in pairs {
        c.out.bulk(name.as_bytes());
        c.out.bulk(value.as_bytes());
    }
    Ok(())
}

/// CONFIG SET name value [name value ...]: validates every pair, applies all or none, then
/// refreshes the settings copy of every executor (data shards and the control executor).
pub fn set<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        if a.len() % 2 == 1 {
            return Err(Error::Syntax);
        }
        let pairs: Vec<(&[u8], &[u8])> = (2..a.len())
            .step_by(2)
            .map(|i| (a.get(i), a.get(i + 1)))
            .collect();
        let local = is_local(c);
        {
            let mut config = c.shard.shared.config();
            let protected_ok = config.allows_protected("enable-protected-configs", local);
            let tls_name = pairs
                .iter()
                .map(|(n, _)| *n)
                .find(|n| crate::tls::is_tls_directive(n));
            match tls_name {
                None => config
                    .set_runtime(&pairs, protected_ok)
                    .map_err(Error::msg)?,
                // As Redis's `applyTlsCfg`: the new contexts are built before anything
                // changes, and a failure leaves both the values and the contexts as they were.
                Some(name) => {
                    let mut next = config.clone();
                    next.set_runtime(&pairs, protected_ok).map_err(Error::msg)?;
                    if let Err(e) = crate::tls::configure(&next) {
                        eprintln!("{e}");
                        return Err(Error::msg(format!(
                            "CONFIG SET failed (possibly related to argument '{}') - {}",
                            String::from_utf8_lossy(name).to_ascii_lowercase(),
                            crate::tls::CONFIG_SET_FAILED
                        )));
                    }
                    *config = next;
                }
            }
            // As Redis: `dir` moves the process, so every later file lands there.
            if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(b"dir")) {
                let dir = config.get("dir").to_string();
                std::env::set_current_dir(&dir).map_err(|e| {
                    Error::msg(format!(
                        "CONFIG SET failed (possibly related to argument 'dir') - {e}"
                    ))
                })?;
            }
        }
        let names: Vec<&[u8]> = pairs.iter().map(|(n, _)| *n).collect();
        crate::cmd::acl::config_changed(&c.shard.shared, &names);
        refresh_settings(c).await;
        c.out.ok();
        Ok(())
    })
}

/// Makes every executor recompute its settings from the shared configuration. Each reads the
/// configuration itself, so concurrent CONFIG SETs cannot leave an executor with stale values.
async fn refresh_settings(c: &Conn) {
    for executor in 0..=c.shard.nshards {
        c.shard
            .call(executor, |s| {
                let settings = Settings::from_config(&s.shared.config());
                settings.eviction.publish_access_policy();
                s.pubsub.set_keyspace_events(settings.keyspace_events);
                *s.settings.borrow_mut() = settings;
                let member = crate::cluster::member::Member::current();
                if let Some(member) = member {
                    let c = s.shared.config();
                    let port = crate::cluster::member::client_port(
                        &c,
                        s.shared.tcp_port,
                        s.shared.tls_port,
                    );
                    let cfg = crate::cluster::member::MemberConfig::from_config(&c, port);
                    drop(c);
                    member.reconfigure(cfg);
                }
            })
            .await;
    }
}

/// CONFIG RESETSTAT: zeroes the INFO counters and command stats of every shard.
pub fn resetstat<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        c.shard.call_all(|s| s.stats.borrow_mut().reset()).await;
        each_shard_data(c, |d| {
            for ks in d.dbs() {
                ks.stats = Default::default();
            }
        })
        .await;
        c.out.ok();
        Ok(())
    })
}

pub fn help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
        ],
    );
    Ok(())
}
