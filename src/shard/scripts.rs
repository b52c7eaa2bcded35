//! Scripts running now, as every executor must see them: the gate answers `-BUSY` while a
//! script has run past `busy-reply-threshold` (Redis's `scriptIsTimedout`), and SCRIPT KILL /
//! FUNCTION KILL on any core reach the script on its own core.
//!
//! Each executor has one word of state (it runs at most one script at a time: its Lua VM is
//! its own); the script's instruction-count hook writes it, KILL sets a bit in it. The gate
//! reads only `timed_out`, one atomic load per command that stays zero unless a script is
//! slow.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A script runs on this executor.
pub const RUNNING: u32 = 1;
/// It is an EVAL script (else a function).
pub const EVAL: u32 = 2;
/// It ran a write command (SCRIPT KILL answers UNKILLABLE).
pub const WROTE: u32 = 4;
/// It ran past the busy threshold: other clients get -BUSY.
pub const TIMED_OUT: u32 = 8;
/// SCRIPT KILL / FUNCTION KILL asked it to stop.
pub const KILL: u32 = 16;

pub struct Scripts {
    /// Scripts past the threshold now, over all executors.
    timed_out: AtomicU32,
    /// Of those, EVAL scripts (the BUSY text names SCRIPT KILL rather than FUNCTION KILL).
    timed_out_eval: AtomicU32,
    per_core: Box<[AtomicU32]>,
    /// What each executor's script is, once it passed the threshold (FUNCTION STATS): only
    /// then can Redis, single-threaded, answer another client while it runs.
    slow: Box<[Mutex<Option<SlowScript>>]>,
}

/// A script past the busy threshold, as FUNCTION STATS describes it.
#[derive(Clone, Debug)]
pub struct SlowScript {
    pub eval: bool,
    /// The function's name (or the script's).
    pub name: String,
    /// The command that called it, as sent.
    pub command: Vec<Box<[u8]>>,
    pub started: Instant,
}

/// What SCRIPT KILL / FUNCTION KILL found.
#[derive(Debug, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    NotBusy,
    /// The script already wrote.
    Unkillable,
    /// SCRIPT KILL found a function, or FUNCTION KILL an EVAL script.
    WrongKind,
}

impl Scripts {
    pub fn new(executors: usize) -> Scripts {
        Scripts {
            timed_out: AtomicU32::new(0),
            timed_out_eval: AtomicU32::new(0),
            per_core: (0..executors).map(|_| AtomicU32::new(0)).collect(),
            slow: (0..executors).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Whether a script is past the threshold: `Some(true)` for an EVAL script.
    #[inline]
    pub fn busy(&self) -> Option<bool> {
        if self.timed_out.load(Ordering::Relaxed) == 0 {
            return None;
        }
        Some(self.timed_out_eval.load(Ordering::Relaxed) > 0)
    }

    /// Executor `core` starts a script.
    pub fn start(&self, core: usize, eval: bool) {
        if let Some(w) = self.per_core.get(core) {
            w.store(RUNNING | if eval { EVAL } else { 0 }, Ordering::Release);
        }
    }

    /// The script on `core` ran a write command.
    pub fn wrote(&self, core: usize) {
        if let Some(w) = self.per_core.get(core) {
            w.fetch_or(WROTE, Ordering::AcqRel);
        }
    }

    /// The script on `core` passed the busy threshold.
    pub fn time_out(&self, core: usize, script: SlowScript) {
        let Some(w) = self.per_core.get(core) else {
            return;
        };
        if let Some(slot) = self.slow.get(core) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(script);
        }
        let before = w.fetch_or(TIMED_OUT, Ordering::AcqRel);
        if before & TIMED_OUT == 0 {
            if before & EVAL != 0 {
                self.timed_out_eval.fetch_add(1, Ordering::AcqRel);
            }
            self.timed_out.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Whether the script on `core` was asked to stop.
    #[inline]
    pub fn killed(&self, core: usize) -> bool {
        self.per_core
            .get(core)
            .is_some_and(|w| w.load(Ordering::Acquire) & KILL != 0)
    }

    /// The script on `core` ended.
    pub fn end(&self, core: usize) {
        let Some(w) = self.per_core.get(core) else {
            return;
        };
        let before = w.swap(0, Ordering::AcqRel);
        if before & TIMED_OUT != 0 {
            if let Some(slot) = self.slow.get(core) {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            if before & EVAL != 0 {
                self.timed_out_eval.fetch_sub(1, Ordering::AcqRel);
            }
            self.timed_out.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The scripts past the busy threshold now (what FUNCTION STATS reports).
    pub fn slow_scripts(&self) -> Vec<SlowScript> {
        if self.timed_out.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.slow
            .iter()
            .filter_map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: stops the running scripts of that kind, as
    /// Redis's `scriptKill` decides (a script that wrote cannot be killed).
    pub fn kill(&self, eval: bool) -> KillOutcome {
        let running: Vec<(usize, u32)> = self
            .per_core
            .iter()
            .enumerate()
            .map(|(i, w)| (i, w.load(Ordering::Acquire)))
            .filter(|(_, s)| s & RUNNING != 0)
            .collect();
        // Prefer the slow ones: those are what a KILL is sent for.
        let slow: Vec<(usize, u32)> = running
            .iter()
            .copied()
            .filter(|(_, s)| s & TIMED_OUT != 0)
            .collect();
        let targets = if slow.is_empty() { running } else { slow };
        if targets.is_empty() {
            return KillOutcome::NotBusy;
        }
        if targets.iter().any(|(_, s)| s & WROTE != 0) {
            return KillOutcome::Unkillable;
        }
        if targets.iter().any(|(_, s)| (s & EVAL != 0) != eval) {
            return KillOutcome::WrongKind;
        }
        for (i, _) in targets {
            self.per_core[i].fetch_or(KILL, Ordering::AcqRel);
        }
        KillOutcome::Killed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> SlowScript {
        SlowScript {
            eval: false,
            name: "f".into(),
            command: Vec::new(),
            started: Instant::now(),
        }
    }

    #[test]
    fn busy_and_kill_follow_redis_rules() {
        let s = Scripts::new(3);
        assert_eq!(s.busy(), None);
        assert_eq!(s.kill(true), KillOutcome::NotBusy);
        s.start(1, true);
        assert_eq!(s.busy(), None);
        s.time_out(1, slow());
        s.time_out(1, slow());
        assert_eq!(s.busy(), Some(true));
        assert_eq!(s.kill(false), KillOutcome::WrongKind);
        assert_eq!(s.kill(true), KillOutcome::Killed);
        assert!(s.killed(1) && !s.killed(0));
        s.end(1);
        assert_eq!(s.busy(), None);
        s.start(2, false);
        s.wrote(2);
        s.time_out(2, slow());
        assert_eq!(s.busy(), Some(false));
        assert_eq!(s.kill(false), KillOutcome::Unkillable);
        s.end(2);
        assert_eq!(s.busy(), None);
    }
}
