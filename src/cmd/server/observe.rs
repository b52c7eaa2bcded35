//! SLOWLOG, LATENCY and MONITOR: what the executors recorded about the commands they ran
//! (`shard::observe`), gathered from every core and merged.

use std::collections::BTreeMap;

use crate::cmd::{table, BoxFuture};
use crate::error::{CmdResult, Error};
use crate::resp::Args;
use crate::shard::client::Conn;
use crate::shard::observe::{self, Histogram, LatencySeries, SlowEntry};

use super::help_reply;

/// SLOWLOG GET [count]: the newest entries of every core, newest first.
pub fn slowlog_get<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let mut count = 10usize;
        if a.len() > 3 {
            return Err(Error::SubcommandSyntax {
                sub: String::from_utf8_lossy(a.get(1)).into_owned(),
                cmd: "SLOWLOG",
            });
        }
        if a.len() == 3 {
            let n = crate::util::num::parse_i64_strict(a.get(2))
                .filter(|&n| n >= -1)
                .ok_or_else(|| Error::msg("count should be greater than or equal to -1"))?;
            count = if n == -1 { usize::MAX } else { n as usize };
        }
        let entries = slow_entries(c, count).await;
        c.out.array(entries.len());
        for e in entries {
            c.out.array(6);
            c.out.int(e.id as i64);
            c.out.int(e.time);
            c.out.int(e.duration_us as i64);
            c.out.array(e.args.len());
            for arg in &e.args {
                c.out.bulk(arg);
            }
            c.out.bulk(e.addr.as_bytes());
            c.out.bulk(&e.name);
        }
        Ok(())
    })
}

/// The newest `count` entries over all cores. Every core keeps its newest `max_len`, so the
/// newest `max_len` of the server are among them.
async fn slow_entries(c: &Conn, count: usize) -> Vec<SlowEntry> {
    let max_len = c.shard.settings.borrow().slowlog_max_len;
    let count = count.min(max_len);
    let mut all: Vec<SlowEntry> = c
        .shard
        .call_all(move |s| {
            let log = s.observe.slowlog.borrow();
            log.iter().take(count).cloned().collect::<Vec<_>>()
        })
        .await
        .into_iter()
        .flatten()
        .collect();
    all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
    all.truncate(count);
    all
}

pub fn slowlog_len<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let max_len = c.shard.settings.borrow().slowlog_max_len;
        let lens = c.shard.call_all(|s| s.observe.slowlog.borrow().len()).await;
        c.out.int(lens.iter().sum::<usize>().min(max_len) as i64);
        Ok(())
    })
}

pub fn slowlog_reset<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        c.shard
            .call_all(|s| s.observe.slowlog.borrow_mut().clear())
            .await;
        c.out.ok();
        Ok(())
    })
}

pub fn slowlog_help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}

/// Every core's latency events, merged by name (samples of the same second keep the worst).
async fn latency_events(c: &Conn) -> BTreeMap<String, LatencySeries> {
    let per_core = c
        .shard
        .call_all(|s| s.observe.latency.borrow().clone())
        .await;
    let mut merged: BTreeMap<String, LatencySeries> = BTreeMap::new();
    for events in per_core {
        for (name, series) in events {
            merged.entry(name).or_default().merge(&series);
        }
    }
    merged
}

/// LATENCY LATEST: per event, the last sample's time and latency and the all-time worst.
pub fn latency_latest<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let events = latency_events(c).await;
        c.out.array(events.len());
        for (name, series) in &events {
            let (time, ms) = series.samples.back().copied().unwrap_or((0, 0));
            c.out.array(4);
            c.out.bulk(name.as_bytes());
            c.out.int(time);
            c.out.int(ms as i64);
            c.out.int(series.max as i64);
        }
        Ok(())
    })
}

/// LATENCY HISTORY event: (time, latency) pairs, oldest first.
pub fn latency_history<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let events = latency_events(c).await;
        let name = String::from_utf8_lossy(a.get(2));
        match events.get(name.as_ref()) {
            None => c.out.array(0),
            Some(series) => {
                c.out.array(series.samples.len());
                for &(time, ms) in &series.samples {
                    c.out.array(2);
                    c.out.int(time);
                    c.out.int(ms as i64);
                }
            }
        }
        Ok(())
    })
}

/// LATENCY GRAPH event: Redis's ASCII sparkline of the samples.
pub fn latency_graph<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let events = latency_events(c).await;
        let name = String::from_utf8_lossy(a.get(2)).into_owned();
        let Some(series) = events.get(&name) else {
            return Err(Error::msg(format!(
                "No samples available for event '{name}'"
            )));
        };
        let now_s = crate::util::time::now_ms() / 1000;
        let text = observe::latency_graph(&name, series, now_s);
        c.out.verbatim(text.as_bytes());
        Ok(())
    })
}

/// LATENCY DOCTOR: a summary of every event, with what usually causes it.
pub fn latency_doctor<'a>(c: &'a mut Conn, _a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let events = latency_events(c).await;
        let (threshold_ms, slower_us, hz) = {
            let s = c.shard.settings.borrow();
            let hz = c.shard.shared.config().get_i64("hz");
            (s.latency_threshold_ms, s.slowlog_slower_than, hz)
        };
        let now_s = crate::util::time::now_ms() / 1000;
        let text = observe::latency_report(&events, threshold_ms, slower_us, hz, now_s);
        c.out.verbatim(text.as_bytes());
        Ok(())
    })
}

/// LATENCY RESET [event ...]: how many events were dropped.
pub fn latency_reset<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let names: Vec<String> = a
            .rest(2)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        let dropped = c
            .shard
            .call_all(move |s| s.observe.reset_latency(&names))
            .await;
        let distinct: std::collections::BTreeSet<String> = dropped.into_iter().flatten().collect();
        c.out.int(distinct.len() as i64);
        Ok(())
    })
}

/// LATENCY HISTOGRAM [command ...]: per command with samples, its call count and the
/// cumulative distribution at 1, 2, 4 ... µs.
pub fn latency_histogram<'a>(c: &'a mut Conn, a: Args<'a>) -> BoxFuture<'a> {
    Box::pin(async move {
        let t = table();
        // The commands asked for, with their subcommands, in the order asked; all by default.
        let wanted: Option<Vec<usize>> = (a.len() > 2).then(|| {
            let mut idx = Vec::new();
            for name in a.rest(2) {
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                for (i, full) in t.full_names.iter().enumerate() {
                    let parent = full.split('|').next().unwrap_or("");
                    if (full == &name || parent == name) && !idx.contains(&i) {
                        idx.push(i);
                    }
                }
            }
            idx
        });
        let hists = merged_histograms(c).await;
        let order: Vec<usize> = wanted.unwrap_or_else(|| (0..t.len()).collect());
        let shown: Vec<(usize, &Histogram)> = order
            .iter()
            .filter_map(|&i| hists.get(i).and_then(Option::as_ref).map(|h| (i, h)))
            .filter(|(_, h)| h.total > 0)
            .collect();
        c.out.map(shown.len());
        for (i, h) in shown {
            c.out.bulk(t.full_names[i].as_bytes());
            c.out.map(2);
            c.out.bulk(b"calls");
            c.out.int(h.total as i64);
            c.out.bulk(b"histogram_usec");
            let cdf = h.cumulative_usec();
            c.out.map(cdf.len());
            for (us, n) in cdf {
                c.out.int(us as i64);
                c.out.int(n as i64);
            }
        }
        Ok(())
    })
}

/// Every core's per-command histograms, summed, by table index.
pub async fn merged_histograms(c: &Conn) -> Vec<Option<Histogram>> {
    let histograms = |s: &std::rc::Rc<crate::shard::Shard>| {
        s.stats
            .borrow()
            .hist
            .iter()
            .map(|h| h.as_deref().filter(|h| h.total > 0).cloned())
            .collect::<Vec<_>>()
    };
    let mut per_core = c.shard.call_all(histograms).await;
    // The control executor's: a replica's master client runs its commands there.
    per_core.push(c.shard.call(c.shard.nshards, histograms).await);
    let mut total: Vec<Option<Histogram>> = vec![None; table().len()];
    for core in per_core {
        for (t, h) in total.iter_mut().zip(core) {
            if let Some(h) = h {
                match t {
                    Some(t) => t.merge(&h),
                    None => *t = Some(h),
                }
            }
        }
    }
    total
}

pub fn latency_help(c: &mut Conn, a: &Args) -> CmdResult {
    help_reply(
        &mut c.out,
        a.get(0),
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    );
    Ok(())
}

/// MONITOR: from now on the connection receives a line for every command any core runs.
pub fn monitor(c: &mut Conn, _a: &Args) -> CmdResult {
    let sub = c.subscriber();
    if observe::is_monitor(&c.shard, &sub) {
        // As Redis: a second MONITOR is ignored without a reply.
        return Ok(());
    }
    observe::add_monitor(&c.shard, &sub);
    c.out.ok();
    Ok(())
}
