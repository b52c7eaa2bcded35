//! CONFIG GET/SET/RESETSTAT/REWRITE/HELP over the shared configuration and every executor's
//! settings copy.

use crate::cmd::call::each_shard_data;
use crate::cmd::BoxFuture;
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::Settings;
use crate::util::glob::glob_match;

use super::{help_reply, is_local};

/// CONFIG GET pattern [pattern ...]: a map of matching directives.
pub fn get<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let patterns: Vec<&[u8]> = a.rest(2).collect();
        // `replicaof` shows the master followed now, which the control core knows.
        let wants_master = patterns.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            glob_match(&p, b"replicaof") || glob_match(&p, b"slaveof")
        });
        let master = if wants_master {
            crate::repl::info(&c.shard)
                .await
                .master
                .map(|(host, port)| format!("{host} {port}"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let pairs = {
            let config = c.shard.shared.config();
            config.get_matching(&patterns, || master.clone())
        };
        c.out.map(pairs.len());
        for (name, value) in pairs {
            c.out.bulk(name.as_bytes());
            c.out.bulk(value.as_bytes());
        }
        Ok(())
    })
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
            // Only an OOM score change can fail after the values are in (then all are undone).
            let oom = pairs
                .iter()
                .any(|(n, _)| n.to_ascii_lowercase().starts_with(b"oom-score-adj"));
            let before = oom.then(|| config.clone());
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
            // As Redis's `updateOOMScoreAdj`: applied at once, everything undone if it fails.
            if let Some(before) = before {
                let replica = crate::db::expiry::is_replica();
                if !config.apply_oom_score_adj(replica) {
                    *config = before;
                    config.apply_oom_score_adj(replica);
                    return Err(Error::msg(
                        "CONFIG SET failed (possibly related to argument 'oom-score-adj') - Failed to set current oom_score_adj. Check server logs.",
                    ));
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
        if names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            n.starts_with(b"min-replicas-") || n.starts_with(b"min-slaves-")
        }) {
            crate::repl::refresh_write_gate(&c.shard).await;
        }
        if names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            n.ends_with(b"-read-only") || n.ends_with(b"-serve-stale-data")
        }) {
            crate::repl::refresh_replica_gates(&c.shard).await;
        }
        if names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(b"aof-disable-auto-gc"))
            && !c.shard.shared.config().get_bool("aof-disable-auto-gc")
        {
            crate::persist::collect_aof_history(&c.shard).await;
        }
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
        // The master client's counters (see `Shard::sum_stats`).
        c.shard
            .call(c.shard.nshards, |s| s.stats.borrow_mut().reset())
            .await;
        c.shard
            .shared
            .unexpected_error_replies
            .store(0, std::sync::atomic::Ordering::Relaxed);
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

/// CONFIG REWRITE: the configuration file rewritten with the values in force now
/// (`config::rewrite`), written to a temp file, fsynced and renamed over the old one.
pub fn rewrite<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let path = c.shard.shared.config_file.clone();
        if path.is_empty() {
            return Err(Error::msg("The server is running without a config file"));
        }
        let facts = crate::config::rewrite::Facts {
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            replicaof: crate::repl::info(&c.shard).await.master,
            users: String::from_utf8_lossy(
                &c.shard
                    .shared
                    .acl()
                    .file_text(crate::cmd::permission::catalog()),
            )
            .lines()
            .map(str::to_string)
            .collect(),
        };
        let config = c.shard.shared.config().clone();
        let written = match std::fs::read_to_string(&path) {
            Ok(old) => Ok(old),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        }
        .and_then(|old| {
            let text = crate::config::rewrite::rewrite(&old, &config, &facts);
            replace_file(&path, &text)
        });
        if let Err(e) = written {
            let why = crate::config::os_error_text(&e);
            eprintln!("CONFIG REWRITE failed: {why}");
            return Err(Error::msg(format!("Rewriting config file: {why}")));
        }
        eprintln!("CONFIG REWRITE executed with success.");
        c.out.ok();
        Ok(())
    })
}

/// Replaces `path` with `text` so that a crash leaves the old file or the new one, never a
/// mix: a temp file beside it, fsynced, renamed over it, the directory fsynced.
fn replace_file(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = format!(
        "{path}.{:06x}",
        (crate::util::time::now_ms() as u64 ^ u64::from(std::process::id())) & 0xff_ffff
    );
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}
