//! Wall-clock time in the units Redis uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
#[inline]
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A cheap monotonic tick counter for per-command timing (INFO commandstats): the TSC on
/// x86_64, which costs a few cycles where `clock_gettime` costs tens of nanoseconds.
#[inline]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions on x86_64.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        process_start().elapsed().as_nanos() as u64
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// Nanoseconds since `start` (a value of `ticks()`).
#[inline]
pub fn elapsed_ns(start: u64) -> u64 {
    (ticks().wrapping_sub(start) as f64 * ns_per_tick()) as u64
}

/// Nanoseconds per tick, measured once against the monotonic clock (10 ms). Call it at
/// start-up so that no command pays for the measurement.
pub fn ns_per_tick() -> f64 {
    static NS_PER_TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *NS_PER_TICK.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1.0;
        }
        let (t0, c0) = (std::time::Instant::now(), ticks());
        std::thread::sleep(std::time::Duration::from_millis(10));
        let (ns, c) = (
            t0.elapsed().as_nanos() as f64,
            ticks().wrapping_sub(c0) as f64,
        );
        if c > 0.0 {
            ns / c
        } else {
            1.0
        }
    })
}
