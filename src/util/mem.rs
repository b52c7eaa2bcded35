//! Bytes allocated and not yet freed, process-wide: Redis's `used_memory` (`zmalloc_used_memory`),
//! which `maxmemory` is compared with. The server binary installs `Counting` around its
//! allocator; each thread adds to a counter of its own (a plain load and store, no locked
//! instruction, no shared cache line), and `used` sums them. A block freed by another thread
//! than the one that allocated it is subtracted there: single counters may go negative, the
//! sum is right. The resident set (`rss_bytes`) is the kernel's view, for INFO and the RDB
//! `used-mem` field when nothing counts.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

/// Threads with a counter of their own; later ones share the last, with atomic additions.
const SLOTS: usize = 128;

#[repr(align(64))]
struct Slot(AtomicIsize);

static COUNTERS: [Slot; SLOTS] = [const { Slot(AtomicIsize::new(0)) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot + 1 (0: not assigned yet).
    static MY_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that counts the bytes `A` hands out.
pub struct Counting<A>(pub A);

#[inline]
fn add(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; the shared slot takes it.
    let slot = MY_SLOT
        .try_with(|s| {
            let mut v = s.get();
            if v == 0 {
                v = NEXT_SLOT.fetch_add(1, Relaxed).min(SLOTS - 1) + 1;
                s.set(v);
            }
            v - 1
        })
        .unwrap_or(SLOTS - 1);
    let counter = &COUNTERS[slot].0;
    if slot < SLOTS - 1 {
        // Only this thread writes this counter.
        counter.store(counter.load(Relaxed) + delta, Relaxed);
    } else {
        counter.fetch_add(delta, Relaxed);
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc(layout);
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = self.0.alloc_zeroed(layout);
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = self.0.realloc(ptr, layout, new_size);
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout);
        add(-(layout.size() as isize));
    }
}

/// Bytes allocated through `Counting` and not freed; 0 when no `Counting` is installed.
pub fn used() -> usize {
    // The slots handed out so far, and the last (shared) one, which threads also use while
    // they are torn down.
    let n = NEXT_SLOT.load(Relaxed).min(SLOTS - 1);
    let sum: isize = COUNTERS[..n]
        .iter()
        .chain(std::iter::once(&COUNTERS[SLOTS - 1]))
        .map(|s| s.0.load(Relaxed))
        .sum();
    sum.max(0) as usize
}

/// The system page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// Resident set size, from /proc/self/statm (pages).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page_size())
}

/// Peak resident set size (VmHWM, in kB in /proc/self/status).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// What mimalloc reports about the process (`mi_process_info`), in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessInfo {
    pub rss: u64,
    pub peak_rss: u64,
    /// Memory mimalloc has committed from the OS (its "active" pages).
    pub committed: u64,
    pub peak_committed: u64,
}

pub fn process_info() -> ProcessInfo {
    let (mut elapsed, mut user, mut sys, mut rss, mut peak_rss) = (0, 0, 0, 0, 0);
    let (mut commit, mut peak_commit, mut faults) = (0, 0, 0);
    // SAFETY: mi_process_info writes each out-parameter once.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut sys,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    ProcessInfo {
        rss: rss as u64,
        peak_rss: peak_rss as u64,
        committed: commit as u64,
        peak_committed: peak_commit as u64,
    }
}

/// Returns this thread's free pages to the OS where mimalloc can (`mi_collect(true)`):
/// MEMORY PURGE runs it on every executor.
pub fn purge_thread() {
    // SAFETY: mi_collect has no preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// mimalloc's statistics report (`mi_stats_print_out`), as MEMORY MALLOC-STATS shows it.
pub fn allocator_stats() -> String {
    unsafe extern "C" fn append(msg: *const std::ffi::c_char, arg: *mut std::ffi::c_void) {
        // SAFETY: `arg` is the String passed below, alive for the call; `msg` is a
        // NUL-terminated string mimalloc owns for the duration of this callback.
        unsafe {
            let out = &mut *(arg as *mut String);
            out.push_str(&std::ffi::CStr::from_ptr(msg).to_string_lossy());
        }
    }
    let mut out = String::new();
    // SAFETY: the callback only appends to `out`, which outlives the call.
    unsafe {
        libmimalloc_sys::mi_stats_print_out(
            Some(append),
            &mut out as *mut String as *mut std::ffi::c_void,
        );
    }
    out
}
