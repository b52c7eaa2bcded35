//! What one executor records about the commands it runs, for the operator: the slow log
//! (SLOWLOG), latency events (LATENCY LATEST/HISTORY/GRAPH/DOCTOR), per-command latency
//! histograms (LATENCY HISTOGRAM, INFO latencystats) and the MONITOR clients of its core.
//!
//! Each executor records what ran on it, wherever the client is; the commands read every
//! executor's records and merge them (slow log entries by id, which is global and taken in
//! the order entries are made; latency samples by second). Nothing here costs a command
//! more than a compare against a threshold unless it is slow, or some client MONITORs.
//!
//! MONITOR lines are made where a command runs and delivered to the monitors of every core:
//! at once on this core, and through one job per core after the current task yields,
//! in the order they were made, so each monitor sees each executor's commands in order.
//! A client's replies wait until the lines made before them reached every core
//! (`delivered_upto`), so a monitor never shows a command before one whose reply the
//! client had already seen: the order is causal across cores too, as with one Redis thread.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::pubsub::Subscriber;
use super::{ClientIdent, Shard};

/// Arguments a slow log entry keeps (the last one says how many more there were).
pub const SLOWLOG_MAX_ARGC: usize = 32;
/// Bytes of one argument a slow log entry keeps.
pub const SLOWLOG_MAX_STRING: usize = 128;
/// Samples kept per latency event (one per second at most).
pub const LATENCY_SAMPLES: usize = 160;

/// The output buffer a MONITOR client may fill when `client-output-buffer-limit normal`
/// sets no limit (Redis's default, which lets a monitor that stops reading grow without
/// bound): past it the client is disconnected.
pub const MONITOR_HARD_LIMIT: usize = 64 << 20;

/// One slow log entry, as SLOWLOG GET shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix seconds when the command ended.
    pub time: i64,
    pub duration_us: u64,
    pub args: Vec<Box<[u8]>>,
    pub addr: String,
    pub name: Vec<u8>,
}

/// The arguments a slow log entry keeps of `args` (Redis's `slowlogCreateEntry`): at most
/// 32, the last replaced by `... (N more arguments)` when there were more; each at most 128
/// bytes, followed by `... (N more bytes)` when longer.
pub fn slow_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<Box<[u8]>> {
    let argc = args.len();
    let kept = argc.min(SLOWLOG_MAX_ARGC);
    let mut out = Vec::with_capacity(kept);
    for (j, a) in args.take(kept).enumerate() {
        if kept != argc && j == kept - 1 {
            out.push(
                format!("... ({} more arguments)", argc - kept + 1)
                    .into_bytes()
                    .into(),
            );
        } else if a.len() > SLOWLOG_MAX_STRING {
            let mut s = a[..SLOWLOG_MAX_STRING].to_vec();
            s.extend_from_slice(
                format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_STRING).as_bytes(),
            );
            out.push(s.into());
        } else {
            out.push(a.into());
        }
    }
    out
}

/// One latency event's samples: at most one per second (the worst), the last 160.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySeries {
    /// (unix seconds, milliseconds), oldest first.
    pub samples: VecDeque<(i64, u64)>,
    /// The worst latency ever recorded.
    pub max: u64,
}

impl LatencySeries {
    pub fn add(&mut self, now_s: i64, ms: u64) {
        self.max = self.max.max(ms);
        if let Some(last) = self.samples.back_mut() {
            if last.0 == now_s {
                last.1 = last.1.max(ms);
                return;
            }
        }
        self.samples.push_back((now_s, ms));
        if self.samples.len() > LATENCY_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Folds another executor's samples of the same event into this one.
    pub fn merge(&mut self, other: &LatencySeries) {
        self.max = self.max.max(other.max);
        let mut all: Vec<(i64, u64)> = self.samples.iter().chain(&other.samples).copied().collect();
        all.sort_unstable();
        let mut merged: VecDeque<(i64, u64)> = VecDeque::with_capacity(all.len());
        for (t, ms) in all {
            match merged.back_mut() {
                Some(last) if last.0 == t => last.1 = last.1.max(ms),
                _ => merged.push_back((t, ms)),
            }
        }
        while merged.len() > LATENCY_SAMPLES {
            merged.pop_front();
        }
        self.samples = merged;
    }
}

/// A latency histogram of nanosecond values with two significant decimal digits, as Redis's
/// HdrHistogram for per-command latency (1 ns to 1 s, larger values counted as 1 s).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Box<[u64]>,
    pub total: u64,
}

/// Sub-buckets per power of two: 2 significant decimal digits need 200, so 256.
const SUB_BUCKET_BITS: u32 = 8;
const SUB_HALF_BITS: u32 = SUB_BUCKET_BITS - 1;
const SUB_HALF: usize = 1 << SUB_HALF_BITS;
const SUB_MASK: u64 = (1 << SUB_BUCKET_BITS) - 1;
/// Powers of two above the first sub-bucket range needed to reach 1 s.
const BUCKETS: usize = 23;
pub const HISTOGRAM_MAX_NS: u64 = 1_000_000_000;

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; (BUCKETS + 1) * SUB_HALF].into_boxed_slice(),
            total: 0,
        }
    }
}

impl Histogram {
    #[inline]
    fn index_of(v: u64) -> usize {
        let bucket = (64 - (v | SUB_MASK).leading_zeros() - SUB_BUCKET_BITS) as usize;
        let sub = (v >> bucket) as usize;
        ((bucket + 1) << SUB_HALF_BITS) + sub - SUB_HALF
    }

    /// The lowest value counted at `index`, and the size of its range.
    fn range_of(index: usize) -> (u64, u64) {
        let mut bucket = (index >> SUB_HALF_BITS) as i64 - 1;
        let mut sub = (index & (SUB_HALF - 1)) + SUB_HALF;
        if bucket < 0 {
            sub -= SUB_HALF;
            bucket = 0;
        }
        ((sub as u64) << bucket, 1u64 << bucket)
    }

    /// Records one value (clamped to 1 ns .. 1 s).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let v = ns.clamp(1, HISTOGRAM_MAX_NS);
        let i = Self::index_of(v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
            self.total += 1;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The highest value equivalent to the one at percentile `p` (HdrHistogram's
    /// `value_at_percentile`), in nanoseconds.
    pub fn value_at(&self, p: f64) -> u64 {
        let p = p.min(100.0);
        let wanted = ((p / 100.0 * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= wanted {
                let (low, size) = Self::range_of(i);
                return if p == 0.0 { low } else { low + size - 1 };
            }
        }
        0
    }

    /// Cumulative counts at 1, 2, 4 ... µs (LATENCY HISTOGRAM's `histogram_usec`): each
    /// (µs, count of values up to it), where the count grew.
    pub fn cumulative_usec(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut level = 1024u64;
        let (mut i, mut seen, mut last) = (0usize, 0u64, 0u64);
        while seen < self.total && level <= HISTOGRAM_MAX_NS * 2 {
            let top = {
                let (low, size) = Self::range_of(Self::index_of(level));
                low + size - 1
            };
            while i < self.counts.len() && Self::range_of(i).0 <= top {
                seen += self.counts[i];
                i += 1;
            }
            if seen > last {
                out.push((top / 1000, seen));
                last = seen;
            }
            level *= 2;
        }
        out
    }
}

/// One executor's records.
#[derive(Default)]
pub struct Observe {
    /// Newest first.
    pub slowlog: RefCell<VecDeque<SlowEntry>>,
    pub latency: RefCell<Vec<(String, LatencySeries)>>,
    /// This core's MONITOR clients.
    monitors: RefCell<Vec<Rc<Subscriber>>>,
    /// Lines for the monitors of other cores, not yet sent.
    outgoing: RefCell<Vec<u8>>,
    flushing: Cell<bool>,
}

/// Server-wide MONITOR bookkeeping in `Shared`: how many monitors each core has.
pub struct MonitorCounts {
    per_core: Vec<AtomicUsize>,
    total: AtomicUsize,
    /// Per core: lines made for the monitors of other cores, and how many of those have
    /// reached them.
    made: Vec<AtomicU64>,
    delivered: Vec<AtomicU64>,
}

impl MonitorCounts {
    pub fn new(executors: usize) -> MonitorCounts {
        MonitorCounts {
            per_core: (0..executors).map(|_| AtomicUsize::new(0)).collect(),
            total: AtomicUsize::new(0),
            made: (0..executors).map(|_| AtomicU64::new(0)).collect(),
            delivered: (0..executors).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// How many lines each core has made so far for the monitors of the others.
    pub fn lines_made(&self) -> Vec<u64> {
        self.made
            .iter()
            .map(|m| m.load(Ordering::Acquire))
            .collect()
    }

    /// Whether the lines counted in `made` (from `lines_made`) have reached every monitor.
    pub fn delivered_upto(&self, made: &[u64]) -> bool {
        made.iter()
            .zip(&self.delivered)
            .all(|(&m, d)| d.load(Ordering::Acquire) >= m)
    }

    /// Whether any client MONITORs: one relaxed load, paid by every command.
    #[inline]
    pub fn any(&self) -> bool {
        self.total.load(Ordering::Relaxed) > 0
    }

    fn has(&self, core: usize) -> bool {
        self.per_core
            .get(core)
            .is_some_and(|c| c.load(Ordering::Acquire) > 0)
    }

    fn change(&self, core: usize, up: bool) {
        if let Some(c) = self.per_core.get(core) {
            if up {
                c.fetch_add(1, Ordering::AcqRel);
                self.total.fetch_add(1, Ordering::AcqRel);
            } else {
                c.fetch_sub(1, Ordering::AcqRel);
                self.total.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Observe {
    /// Adds a slow log entry, dropping the oldest past `max_len`.
    pub fn push_slow(&self, entry: SlowEntry, max_len: usize) {
        let mut log = self.slowlog.borrow_mut();
        log.push_front(entry);
        log.truncate(max_len);
    }

    /// Records a latency sample of `ms` for `event` (the caller checked the threshold).
    pub fn add_latency(&self, event: &str, now_s: i64, ms: u64) {
        let mut events = self.latency.borrow_mut();
        match events.iter_mut().find(|(e, _)| e == event) {
            Some((_, series)) => series.add(now_s, ms),
            None => {
                let mut series = LatencySeries::default();
                series.add(now_s, ms);
                events.push((event.to_string(), series));
            }
        }
    }

    /// LATENCY RESET of `events` (all when empty); returns the names dropped here.
    pub fn reset_latency(&self, events: &[String]) -> Vec<String> {
        let mut mine = self.latency.borrow_mut();
        let mut dropped = Vec::new();
        mine.retain(|(e, _)| {
            let drop = events.is_empty() || events.iter().any(|x| x.eq_ignore_ascii_case(e));
            if drop {
                dropped.push(e.clone());
            }
            !drop
        });
        dropped
    }
}

/// Builds a slow log entry for a command of `ident` that took `duration_us`.
pub fn slow_entry<'a>(
    shard: &Shard,
    ident: Option<&ClientIdent>,
    args: impl ExactSizeIterator<Item = &'a [u8]>,
    duration_us: u64,
) -> SlowEntry {
    SlowEntry {
        id: shard.shared.slowlog_ids.fetch_add(1, Ordering::Relaxed),
        time: crate::util::time::now_ms() / 1000,
        duration_us,
        args: slow_args(args),
        addr: ident.map(|i| i.addr.clone()).unwrap_or_default(),
        name: ident.map(ClientIdent::name).unwrap_or_default(),
    }
}

/// Makes `sub` (this core's connection) a MONITOR client.
pub fn add_monitor(shard: &Shard, sub: &Rc<Subscriber>) {
    let mut mons = shard.observe.monitors.borrow_mut();
    if mons.iter().any(|m| Rc::ptr_eq(m, sub)) {
        return;
    }
    mons.push(sub.clone());
    sub.meta.monitor.set(true);
    shard.shared.monitors.change(shard.id, true);
}

/// A connection going away stops monitoring.
pub fn remove_monitor(shard: &Shard, sub: &Rc<Subscriber>) {
    let mut mons = shard.observe.monitors.borrow_mut();
    let before = mons.len();
    mons.retain(|m| !Rc::ptr_eq(m, sub));
    if mons.len() != before {
        sub.meta.monitor.set(false);
        shard.shared.monitors.change(shard.id, false);
    }
}

/// Whether `sub` monitors.
pub fn is_monitor(shard: &Shard, sub: &Rc<Subscriber>) -> bool {
    shard
        .observe
        .monitors
        .borrow()
        .iter()
        .any(|m| Rc::ptr_eq(m, sub))
}

/// Redis's MONITOR line for a command (`+<secs>.<usecs> [<db> <addr>] "arg" ...\r\n`).
pub fn monitor_line<'a>(
    db: usize,
    addr: &str,
    args: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    let us = crate::util::time::now_us();
    out.extend_from_slice(
        format!(
            "+{}.{:06} [{} {}] ",
            us / 1_000_000,
            us % 1_000_000,
            db,
            addr
        )
        .as_bytes(),
    );
    for (j, a) in args.enumerate() {
        if j > 0 {
            out.push(b' ');
        }
        crate::util::repr::write_repr(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

/// Hands a MONITOR line (as `monitor_line` makes it) to every monitor: this core's now, the
/// others' in order once the running task yields.
pub fn feed_monitors(shard: &Rc<Shard>, line: &[u8]) {
    deliver_local(shard, line);
    let others = (0..shard.nshards).any(|c| c != shard.id && shard.shared.monitors.has(c));
    if !others {
        return;
    }
    shard.observe.outgoing.borrow_mut().extend_from_slice(line);
    let counts = &shard.shared.monitors;
    counts.made[shard.id].fetch_add(1, Ordering::Release);
    if shard.observe.flushing.replace(true) {
        return;
    }
    let me = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let lines = std::mem::take(&mut *me.observe.outgoing.borrow_mut());
            if lines.is_empty() {
                break;
            }
            // Every line counted up to now is in `lines` (both change in the same step).
            let upto = me.shared.monitors.made[me.id].load(Ordering::Acquire);
            let lines = std::sync::Arc::new(lines);
            for core in 0..me.nshards {
                if core == me.id || !me.shared.monitors.has(core) {
                    continue;
                }
                let lines = lines.clone();
                me.call(core, move |s| deliver_local(s, &lines)).await;
            }
            me.shared.monitors.delivered[me.id].store(upto, Ordering::Release);
        }
        me.observe.flushing.set(false);
    })
    .detach();
}

fn deliver_local(shard: &Shard, lines: &[u8]) {
    let mons = shard.observe.monitors.borrow();
    if mons.is_empty() {
        return;
    }
    let limit = shard.settings.borrow().monitor_limit;
    for m in mons.iter() {
        m.push_raw(limit, lines);
    }
}

/// Columns of LATENCY GRAPH, and rows of its sparkline.
const GRAPH_COLS: usize = 80;
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH's text for `event`: a header line, a rule, then a sparkline of the samples
/// (4 rows of `_o#`, `|` filling below) with each sample's age written downwards beneath it,
/// 80 samples per block (Redis's `sparklineRender` with `SPARKLINE_FILL`).
pub fn latency_graph(event: &str, series: &LatencySeries, now_s: i64) -> String {
    let values: Vec<u64> = series.samples.iter().map(|s| s.1).collect();
    let (min, max) = (
        values.iter().copied().min().unwrap_or(0),
        values.iter().copied().max().unwrap_or(0),
    );
    let labels: Vec<String> = series
        .samples
        .iter()
        .map(|&(t, _)| {
            let ago = now_s - t;
            match ago {
                _ if ago < 60 => format!("{ago}s"),
                _ if ago < 3600 => format!("{}m", ago / 60),
                _ if ago < 86400 => format!("{}h", ago / 3600),
                _ => format!("{}d", ago / 86400),
            }
        })
        .collect();
    let mut out = format!(
        "{event} - high {max} ms, low {min} ms (all time high {} ms)\n{}\n",
        series.max,
        "-".repeat(GRAPH_COLS)
    );
    let relmax = if max == min { 1.0 } else { (max - min) as f64 };
    let steps = (3 * GRAPH_ROWS) as i64;
    let mut start = 0;
    while start < values.len() {
        let end = (start + GRAPH_COLS).min(values.len());
        if start != 0 {
            out.push('\n');
        }
        let step_of = |v: u64| {
            (((v - min) as f64 * steps as f64) / relmax).clamp(0.0, (steps - 1) as f64) as i64
        };
        for row in 0..GRAPH_ROWS {
            let line: String = values[start..end]
                .iter()
                .map(|&v| {
                    let idx = step_of(v) - ((GRAPH_ROWS - row - 1) * 3) as i64;
                    match idx {
                        0 => '_',
                        1 => 'o',
                        2 => '#',
                        i if i >= 3 => '|',
                        _ => ' ',
                    }
                })
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
        // One blank row, then the labels written downwards.
        out.push_str(&" ".repeat(end - start));
        out.push('\n');
        let tallest = labels[start..end]
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0);
        for ch in 0..tallest {
            let line: String = labels[start..end]
                .iter()
                .map(|l| l.as_bytes().get(ch).map_or(' ', |&b| b as char))
                .collect();
            out.push_str(&line);
            out.push('\n');
        }
        start = end;
    }
    out
}

/// LATENCY DOCTOR's report over the merged events: one line per event with Redis's
/// statistics (samples, average, mean deviation, period, worst), then advice for the
/// event kinds redcell records.
pub fn latency_report(
    events: &std::collections::BTreeMap<String, LatencySeries>,
    threshold_ms: u64,
    slowlog_slower_us: i64,
    hz: i64,
    now_s: i64,
) -> String {
    if events.is_empty() && threshold_ms == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this \
                Redis instance. You may use \"CONFIG SET latency-monitor-threshold \
                <milliseconds>.\" in order to enable it. If we weren't in a deep space mission \
                I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
            .to_string();
    }
    if events.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this Redis \
                instance, not in the slightest bit.\n"
            .to_string();
    }
    let mut out = String::from(
        "Dave, I have observed latency spikes in this Redis instance. \
         You don't mind talking about it, do you Dave?\n\n",
    );
    let mut advice: Vec<String> = Vec::new();
    let mut advise = |a: String| {
        if !advice.contains(&a) {
            advice.push(a);
        }
    };
    for (n, (event, series)) in events.iter().enumerate() {
        let samples = series.samples.len() as u64;
        let sum: u64 = series.samples.iter().map(|s| s.1).sum();
        let avg = sum.checked_div(samples).unwrap_or(0);
        let mad = series
            .samples
            .iter()
            .map(|s| (avg as i64 - s.1 as i64).unsigned_abs())
            .sum::<u64>()
            .checked_div(samples)
            .unwrap_or(0);
        let oldest = series.samples.front().map_or(now_s, |s| s.0);
        let period = (now_s - oldest).max(1);
        out.push_str(&format!(
            "{}. {event}: {samples} latency spikes (average {avg}ms, mean deviation {mad}ms, \
             period {:.2} sec). Worst all time event {}ms.\n",
            n + 1,
            period as f64 / samples.max(1) as f64,
            series.max
        ));
        match event.as_str() {
            "command" => {
                if slowlog_slower_us < 0 {
                    advise(format!(
                        "- Slow commands caused latency and the slow log is off: enable it \
                         with 'CONFIG SET slowlog-log-slower-than {}'.",
                        threshold_ms * 1000
                    ));
                } else if slowlog_slower_us as u64 / 1000 > threshold_ms {
                    advise(format!(
                        "- The slow log only records commands slower than the latency \
                         monitor threshold: use 'CONFIG SET slowlog-log-slower-than {}'.",
                        threshold_ms * 1000
                    ));
                }
                advise("- SLOWLOG GET shows which commands were slow.".into());
                advise(
                    "- Deleting or expiring large keys takes time in one go: split very \
                     large keys into smaller ones."
                        .into(),
                );
            }
            "fast-command" => advise(
                "- Commands that are normally fast were slow: the system did not give the \
                 server CPU time. Lower the load of the machine, check for noisy neighbours \
                 (redis-cli --intrinsic-latency 100)."
                    .into(),
            ),
            "expire-cycle" => {
                if hz < 100 {
                    advise("- Expiring keys in smaller steps helps: 'CONFIG SET hz 100'.".into());
                }
                advise(
                    "- Deleting or expiring large keys takes time in one go: split very \
                     large keys into smaller ones."
                        .into(),
                );
            }
            _ => {}
        }
    }
    if advice.is_empty() {
        out.push_str("\nI have no easy fix to suggest for these events.\n");
    } else {
        out.push_str("\nI have a few advices for you:\n\n");
        for a in advice {
            out.push_str(&a);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_args_trim_as_redis() {
        let long = vec![b'x'; 130];
        let args: Vec<&[u8]> = vec![b"set", b"k", &long];
        let kept = slow_args(args.iter().copied());
        assert_eq!(&*kept[0], b"set");
        let mut want = vec![b'x'; 128];
        want.extend_from_slice(b"... (2 more bytes)");
        assert_eq!(&*kept[2], &want[..]);
        let many: Vec<Vec<u8>> = (0..40).map(|i| i.to_string().into_bytes()).collect();
        let kept = slow_args(many.iter().map(Vec::as_slice));
        assert_eq!(kept.len(), 32);
        assert_eq!(&*kept[30], b"30");
        assert_eq!(&*kept[31], b"... (9 more arguments)");
    }

    #[test]
    fn latency_series_keeps_the_worst_per_second() {
        let mut s = LatencySeries::default();
        s.add(10, 5);
        s.add(10, 3);
        s.add(10, 8);
        s.add(11, 2);
        assert_eq!(s.samples, [(10, 8), (11, 2)]);
        assert_eq!(s.max, 8);
        for t in 0..200 {
            s.add(100 + t, 1);
        }
        assert_eq!(s.samples.len(), LATENCY_SAMPLES);
        let mut other = LatencySeries::default();
        other.add(299, 50);
        s.merge(&other);
        assert_eq!(s.max, 50);
        assert_eq!(s.samples.back(), Some(&(299, 50)));
        assert_eq!(s.samples.len(), LATENCY_SAMPLES);
    }

    #[test]
    fn latency_graph_as_redis() {
        let mut s = LatencySeries::default();
        s.add(100, 30);
        // Stock 7.0's reply for one 30 ms sample taken this second.
        let want = format!(
            "command - high 30 ms, low 30 ms (all time high 30 ms)\n{}\n \n \n \n_\n \n0\ns\n",
            "-".repeat(80)
        );
        assert_eq!(latency_graph("command", &s, 100), want);
        s.add(130, 10);
        s.add(190, 20);
        let g = latency_graph("command", &s, 200);
        let rows: Vec<&str> = g.lines().skip(2).collect();
        assert_eq!(
            rows,
            ["#  ", "| _", "| |", "|_|", "   ", "111", "mm0", "  s"]
        );
    }

    #[test]
    fn histogram_percentiles_are_within_two_digits() {
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.value_at(50.0) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "{p50}");
        let p99 = h.value_at(99.0) as f64;
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "{p99}");
        assert_eq!(h.total, 1000);
        let mut small = Histogram::default();
        small.record(3);
        assert_eq!(small.value_at(50.0), 3);
        small.record(5_000_000_000);
        assert!(small.value_at(100.0) >= HISTOGRAM_MAX_NS);
        let cdf = h.cumulative_usec();
        assert_eq!(cdf.first(), Some(&(1, 1)));
        assert_eq!(cdf.last().map(|c| c.1), Some(1000));
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
    }
}
