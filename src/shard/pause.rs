//! Pausing clients on every shard at once, as Redis 7.0's `pauseClients` (networking.c).
//!
//! A pause has a kind and an end time. `Write` (Redis's CLIENT_PAUSE_WRITE) holds back every
//! command flagged `write` or `may_replicate` while reads go on; `All` holds back every
//! command. Pauses are kept per purpose (a manual failover now; CLIENT PAUSE and SHUTDOWN
//! later), and the one in force is the most restrictive kind, until the furthest end among
//! the pauses of that kind. It is stored in one atomic word in `Shared`, so the gate pays
//! one atomic load per command while nothing is paused. A held command waits at the gate
//! before it is routed, so once the pause ends (it expires, or `unpause` ends it early, e.g.
//! when a manual failover finished) it is routed afresh: a write held on a master that lost
//! its slots meanwhile gets MOVED, as Redis re-runs `processCommand` for a paused client.
//! Commands the gate refuses without running them (MOVED, CLUSTERDOWN, CROSSSLOT, a RESP2
//! subscriber's command that is not allowed) are refused at once, pause or not, since Redis
//! checks those before the pause. The gate's side is `server::conn::wait_while_paused`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::util::time::now_ms;

/// What a pause holds back; the greater kind is the more restrictive (`pause_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Commands that write or may replicate wait; the rest run (CLIENT_PAUSE_WRITE).
    Write = 1,
    /// Every command waits (CLIENT_PAUSE_ALL).
    All = 2,
}

/// Why clients are paused (`pause_purpose`); each has at most one pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    ClientCommand = 0,
    Shutdown = 1,
    Failover = 2,
}

const PURPOSES: usize = 3;

/// How often a held command looks whether the pause is over.
pub const POLL: Duration = Duration::from_millis(5);

/// The pause state of the server, in `crate::shard::Shared`.
#[derive(Default)]
pub struct Pause {
    /// The pause in force: `end_ms << 2 | kind`, 0 when none.
    state: AtomicU64,
    /// Each purpose's pause: its kind and end (unix ms; paused while `now <= end`).
    purposes: Mutex<[Option<(Kind, i64)>; PURPOSES]>,
}

impl Pause {
    /// Pauses for `purpose` until `end_ms`. A pause already there for that purpose keeps the
    /// more restrictive kind and the later end, as Redis merges them.
    pub fn pause(&self, purpose: Purpose, end_ms: i64, kind: Kind) {
        let mut p = self.lock();
        let slot = &mut p[purpose as usize];
        *slot = Some(match *slot {
            Some((k, e)) => (k.max(kind), e.max(end_ms)),
            None => (kind, end_ms),
        });
        self.recompute(&mut p, now_ms());
    }

    /// Ends the pause of `purpose`, if any.
    pub fn unpause(&self, purpose: Purpose) {
        let mut p = self.lock();
        if p[purpose as usize].take().is_some() {
            self.recompute(&mut p, now_ms());
        }
    }

    /// The kind in force now, if any.
    pub fn current(&self) -> Option<Kind> {
        match self.state.load(Ordering::Acquire) {
            0 => None,
            s => self.current_slow(s),
        }
    }

    /// Whether a command must wait now (`processCommand`'s pause check); `writes`: it is
    /// flagged `write` or `may_replicate`.
    #[inline]
    pub fn holds(&self, writes: bool) -> bool {
        match self.state.load(Ordering::Acquire) {
            0 => false,
            s => self.holds_slow(s, writes),
        }
    }

    #[cold]
    fn holds_slow(&self, state: u64, writes: bool) -> bool {
        match self.current_slow(state) {
            None => false,
            Some(Kind::All) => true,
            Some(Kind::Write) => writes,
        }
    }

    #[cold]
    fn current_slow(&self, state: u64) -> Option<Kind> {
        let now = now_ms();
        if (state >> 2) as i64 >= now {
            return Some(if state & 3 == Kind::All as u64 {
                Kind::All
            } else {
                Kind::Write
            });
        }
        // The pause in force ended; a less restrictive one may still run.
        let mut p = self.lock();
        self.recompute(&mut p, now);
        match self.state.load(Ordering::Acquire) {
            0 => None,
            s if s & 3 == Kind::All as u64 => Some(Kind::All),
            _ => Some(Kind::Write),
        }
    }

    /// `updateClientPauseTypeAndEndTime`: drops ended pauses, publishes the one in force.
    fn recompute(&self, p: &mut [Option<(Kind, i64)>; PURPOSES], now: i64) {
        for slot in p.iter_mut() {
            if slot.is_some_and(|(_, end)| end < now) {
                *slot = None;
            }
        }
        let kind = p.iter().flatten().map(|(k, _)| *k).max();
        let state = match kind {
            None => 0,
            Some(kind) => {
                let end = p
                    .iter()
                    .flatten()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, e)| *e)
                    .max()
                    .unwrap_or(0);
                ((end.max(0) as u64) << 2) | kind as u64
            }
        };
        self.state.store(state, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<(Kind, i64)>; PURPOSES]> {
        self.purposes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &Pause) -> Option<Kind> {
        p.current()
    }

    #[test]
    fn write_pause_holds_writes_only_and_ends_by_itself() {
        let p = Pause::default();
        assert!(!p.holds(true));
        p.pause(Purpose::Failover, now_ms() + 200, Kind::Write);
        assert!(p.holds(true), "writes wait");
        assert!(!p.holds(false), "reads go on");
        std::thread::sleep(Duration::from_millis(250));
        assert!(!p.holds(true));
        assert_eq!(
            p.state.load(Ordering::Relaxed),
            0,
            "an ended pause is dropped"
        );
    }

    #[test]
    fn purposes_merge_as_redis() {
        let p = Pause::default();
        let now = now_ms();
        p.pause(Purpose::Failover, now + 10_000, Kind::Write);
        p.pause(Purpose::ClientCommand, now + 100, Kind::All);
        // The most restrictive kind is in force, until its own end.
        assert_eq!(kind(&p), Some(Kind::All));
        assert!(p.holds(false));
        std::thread::sleep(Duration::from_millis(150));
        // Then the write pause, which runs longer, is back in force.
        assert_eq!(kind(&p), Some(Kind::Write));
        assert!(!p.holds(false));
        assert!(p.holds(true));
        // A second pause of one purpose keeps the later end and the stronger kind.
        p.pause(Purpose::Failover, now + 50, Kind::Write);
        assert_eq!(kind(&p), Some(Kind::Write));
        p.unpause(Purpose::Failover);
        assert_eq!(kind(&p), None);
        assert!(!p.holds(true));
        p.unpause(Purpose::Failover);
    }
}
