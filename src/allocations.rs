//! A count of the heap allocations this process makes, for the rule that the hot paths
//! (gradient, encode, decode, collectives) allocate nothing after the first round:
//! `qtrain` installs [`Counting`] as its global allocator, the training loop reads
//! [`count`] around every round, and the result file records the rounds' allocations
//! after the first (`allocations_after_first_round`, the maximum over ranks), which the
//! registry suite checks: buffers grow to their high-water mark in the first rounds
//! that need them (a message kind's first appearance), and after that no round
//! allocates.
//!
//! To find an allocation, `QTRAIN_TRACE_ALLOCATIONS=1 qtrain train …` prints a backtrace
//! for each one made inside the counted rounds (slow; a debugging aid).
//!
//! Only Rust's heap is counted: the MPI library allocates through its own `malloc`
//! calls, outside this allocator.
//!
//! The cost is one relaxed atomic increment per allocation, nothing per byte.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static TRACING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while a backtrace is printed, whose own allocations must not print one.
    static PRINTING: Cell<bool> = const { Cell::new(false) };
}

/// Counts one allocation; prints its backtrace while tracing.
fn note() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if TRACING.load(Ordering::Relaxed) && !PRINTING.with(Cell::get) {
        PRINTING.with(|p| p.set(true));
        eprintln!("allocation in a round:\n{}", std::backtrace::Backtrace::force_capture());
        PRINTING.with(|p| p.set(false));
    }
}

/// Turns the backtraces of `QTRAIN_TRACE_ALLOCATIONS` on (if set) or off.
pub fn trace(on: bool) {
    static REQUESTED: OnceLock<bool> = OnceLock::new();
    let requested = *REQUESTED.get_or_init(|| std::env::var_os("QTRAIN_TRACE_ALLOCATIONS").is_some());
    TRACING.store(on && requested, Ordering::Relaxed);
}

/// The system allocator, counting the calls that obtain memory (alloc, alloc_zeroed and
/// realloc: a growing `Vec` is an allocation each time it moves).
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations so far (zero in a program that does not install [`Counting`]).
pub fn count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}
