//! A counting global allocator for the benches that report heap use (`benches/scale.rs`):
//! it wraps [`System`] and keeps, in atomics, the bytes in use, their peak since the last
//! [`CountingAlloc::reset_peak`], and the number and total size of the allocations made.
//!
//! The benches' crate forbids `unsafe` code (`unsafe_code = "forbid"` in its `[lints]`,
//! which `allow` cannot lift), and implementing [`GlobalAlloc`] needs it; so the allocator
//! lives here, in this module only (this crate denies `unsafe` code elsewhere), and a
//! bench installs it with no `unsafe` of its own:
//!
//! ```ignore
//! use doubleratchet_test_support::heap::CountingAlloc;
//!
//! #[global_allocator]
//! static HEAP: CountingAlloc = CountingAlloc::new();
//! ```
//!
//! Counting is on from the start of the process, so that the bytes in use are those of
//! every live allocation. [`CountingAlloc::pause`] turns it off (one relaxed load per call
//! remains) for timed runs; the figures are then meaningless until the process ends, since
//! memory allocated while paused and freed later is subtracted without having been added.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering::Relaxed};

/// A [`GlobalAlloc`] that counts what [`System`] hands out.
pub struct CountingAlloc {
    counting: AtomicBool,
    /// Bytes in use (signed: frees of memory allocated while paused may take it below 0).
    current: AtomicIsize,
    /// The largest `current` since the last reset.
    peak: AtomicIsize,
    /// Allocations made (a `realloc` counts as one).
    allocations: AtomicU64,
    /// Bytes requested by those allocations (a `realloc` counts its new size).
    allocated: AtomicU64,
}

/// The allocator's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in use.
    pub current: isize,
    /// The largest `current` since the last [`CountingAlloc::reset_peak`].
    pub peak: isize,
    /// Allocations made since the process started (while counting).
    pub allocations: u64,
    /// Bytes requested by those allocations.
    pub allocated: u64,
}

impl CountingAlloc {
    /// A counting allocator, counting from the start.
    pub const fn new() -> Self {
        CountingAlloc {
            counting: AtomicBool::new(true),
            current: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            allocations: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> HeapStats {
        HeapStats {
            current: self.current.load(Relaxed),
            peak: self.peak.load(Relaxed),
            allocations: self.allocations.load(Relaxed),
            allocated: self.allocated.load(Relaxed),
        }
    }

    /// Sets the peak to the bytes in use now, and returns the counters.
    pub fn reset_peak(&self) -> HeapStats {
        self.peak.store(self.current.load(Relaxed), Relaxed);
        self.stats()
    }

    /// Stops counting for good (see the module's documentation).
    pub fn pause(&self) {
        self.counting.store(false, Relaxed);
    }

    /// Whether the allocator is counting.
    pub fn is_counting(&self) -> bool {
        self.counting.load(Relaxed)
    }

    fn added(&self, size: usize) {
        let size = size as isize;
        let now = self.current.fetch_add(size, Relaxed) + size;
        self.peak.fetch_max(now, Relaxed);
    }

    fn removed(&self, size: usize) {
        self.current.fetch_sub(size as isize, Relaxed);
    }

    fn counted(&self, size: usize) {
        self.allocations.fetch_add(1, Relaxed);
        self.allocated.fetch_add(size as u64, Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counters only observe the sizes, and never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees on `layout` are passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() && self.is_counting() {
            self.counted(layout.size());
            self.added(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() && self.is_counting() {
            self.counted(layout.size());
            self.added(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation of this
        // allocator is), as the caller guarantees for this allocator.
        unsafe { System.dealloc(ptr, layout) };
        if self.is_counting() {
            self.removed(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; the caller guarantees `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() && self.is_counting() {
            self.counted(new_size);
            // Counted as both blocks at once, as when the block moves (an upper bound of
            // the peak when it grows in place).
            self.added(new_size);
            self.removed(layout.size());
        }
        new
    }
}
