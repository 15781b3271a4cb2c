//! Greenlet stacks: where they come from ([`StackSource`]) and how they are reused
//! (the hub's pool).
//!
//! A greenlet takes a stack when it first runs and gives it back the moment it finishes, so
//! many short-lived greenlets share a few warm stacks and spawning makes no system call in the
//! steady state. The pool keeps returned stacks by size; when the hub is about to sleep, it gives
//! surplus stacks back to the source.
//!
//! This module is the only place that implements corosensei's `Stack` trait.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroUsize;

/// Stack size used when a spawn does not ask for one.
///
/// Only touched pages cost memory on hosted platforms, so the default is generous: Rust code
/// (formatting, TLS handshakes) can want tens of KiB.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest usable stack a source must provide.
pub const MIN_STACK_SIZE: usize = corosensei::stack::MIN_STACK_SIZE;

/// A block of memory for a stack: usable from `bottom + guard` up to `top`.
///
/// Stacks grow down: `top` is the highest address. The `guard` bytes above `bottom` are
/// inaccessible on platforms that can protect memory (a guard page), so an overflow faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRegion {
    /// Highest address (exclusive), aligned to 16 bytes.
    pub top: NonZeroUsize,
    /// Lowest address of the whole block, guard included, aligned to 16 bytes.
    pub bottom: NonZeroUsize,
    /// Bytes of guard at the bottom; zero where the platform cannot protect memory.
    pub guard: usize,
}

impl StackRegion {
    /// Usable bytes (excluding the guard).
    pub fn usable_size(&self) -> usize {
        self.top.get() - self.bottom.get() - self.guard
    }

    /// Whether `addr` falls in this stack's guard area (an overflow fault address).
    pub fn guard_contains(&self, addr: usize) -> bool {
        addr >= self.bottom.get() && addr < self.bottom.get() + self.guard
    }
}

/// Why a stack could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackError {
    /// What went wrong and, where known, what to do about it.
    pub message: Cow<'static, str>,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for StackError {}

/// Provides and takes back stack memory.
///
/// # Safety
///
/// `allocate` must return regions of readable and writable memory of at least the requested
/// usable size (and at least [`MIN_STACK_SIZE`]), exclusively owned by the caller until passed
/// back to `release`, with `top` and `bottom` aligned to 16 bytes. A region with `guard == 0` has
/// no overflow protection: a greenlet that overflows it corrupts memory, so such sources are for
/// platforms without memory protection or for tests, and must say so in their docs.
pub unsafe trait StackSource {
    /// Gets a region with at least `size` usable bytes.
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError>;

    /// Takes back a region from [`StackSource::allocate`].
    ///
    /// # Safety
    ///
    /// `region` must have come from this source's `allocate` and no longer be in use.
    unsafe fn release(&mut self, region: StackRegion);
}

/// A stack on loan from the pool; the type corosensei runs greenlets on.
#[derive(Debug)]
pub(crate) struct PooledStack {
    region: StackRegion,
}

impl PooledStack {
    pub(crate) fn region(&self) -> StackRegion {
        self.region
    }
}

// SAFETY: a `StackSource` guarantees exclusively owned, 16-byte-aligned memory of at least
// `MIN_STACK_SIZE` usable bytes, and the pool hands each region to one coroutine at a time. Guard
// pages are provided wherever the platform can protect memory; see `StackSource`'s contract for
// sources without one.
unsafe impl corosensei::stack::Stack for PooledStack {
    fn base(&self) -> corosensei::stack::StackPointer {
        self.region.top
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        self.region.bottom
    }
}

/// Stacks kept for reuse, by size class.
pub(crate) struct StackPool {
    source: Box<dyn StackSource>,
    /// `(size, free stacks)`; a handful of size classes at most, so a vector beats a map.
    shelves: Vec<(usize, Vec<StackRegion>)>,
    /// Stacks currently lent out.
    in_use: usize,
    /// Free stacks kept through [`StackPool::trim`].
    keep: usize,
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("in_use", &self.in_use)
            .field("free", &self.free_count())
            .finish()
    }
}

/// Free stacks that survive a trim: enough for a burst of short greenlets to find warm stacks.
const KEEP_FREE: usize = 64;

impl StackPool {
    pub(crate) fn new(source: Box<dyn StackSource>) -> Self {
        StackPool { source, shelves: Vec::new(), in_use: 0, keep: KEEP_FREE }
    }

    pub(crate) fn free_count(&self) -> usize {
        self.shelves.iter().map(|(_, s)| s.len()).sum()
    }

    /// Lends a stack of at least `size` usable bytes, reusing a free one when possible.
    pub(crate) fn take(&mut self, size: usize) -> Result<PooledStack, StackError> {
        let size = size.max(MIN_STACK_SIZE);
        let reused = self.shelves.iter_mut().find(|(s, _)| *s == size).and_then(|(_, s)| s.pop());
        let region = match reused {
            Some(region) => region,
            None => self.source.allocate(size)?,
        };
        self.in_use += 1;
        Ok(PooledStack { region })
    }

    /// Takes back a stack that [`take`](Self::take) lent for `size` bytes.
    pub(crate) fn give_back(&mut self, stack: PooledStack, size: usize) {
        let size = size.max(MIN_STACK_SIZE);
        self.in_use -= 1;
        match self.shelves.iter_mut().find(|(s, _)| *s == size) {
            Some((_, shelf)) => shelf.push(stack.region),
            None => self.shelves.push((size, alloc::vec![stack.region])),
        }
    }

    /// Returns free stacks beyond a small reserve to the source; the hub calls this when it is
    /// about to sleep, so that a burst of parked greenlets does not pin its memory forever while
    /// a busy hub never pays for releasing and re-acquiring stacks.
    pub(crate) fn trim(&mut self) {
        let mut budget = self.keep;
        for (_, shelf) in &mut self.shelves {
            let keep = shelf.len().min(budget);
            budget -= keep;
            for region in shelf.drain(keep..) {
                // SAFETY: every region on a shelf came from this source and is free.
                unsafe { self.source.release(region) };
            }
        }
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        self.keep = 0;
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out fake, never-dereferenced regions and counts calls.
    struct CountingSource {
        next: usize,
        allocated: usize,
        released: usize,
    }

    // SAFETY: the regions are never used as stacks in these tests; only the pool's bookkeeping
    // is exercised.
    unsafe impl StackSource for CountingSource {
        fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
            self.allocated += 1;
            self.next += size + 4096;
            let top = NonZeroUsize::new(self.next).unwrap();
            let bottom = NonZeroUsize::new(self.next - size - 4096 + 16).unwrap();
            Ok(StackRegion { top, bottom, guard: 16 })
        }
        unsafe fn release(&mut self, _: StackRegion) {
            self.released += 1;
        }
    }

    #[test]
    fn reuses_by_size_and_trims_to_reserve() {
        let mut pool =
            StackPool::new(Box::new(CountingSource { next: 1 << 20, allocated: 0, released: 0 }));
        let a = pool.take(8192).unwrap();
        let region = a.region();
        pool.give_back(a, 8192);
        let b = pool.take(8192).unwrap();
        assert_eq!(b.region(), region, "a freed stack is reused");
        let c = pool.take(16384).unwrap();
        assert_ne!(c.region(), region);
        pool.give_back(b, 8192);
        pool.give_back(c, 16384);
        let many: Vec<_> = (0..100).map(|_| pool.take(8192).unwrap()).collect();
        for s in many {
            pool.give_back(s, 8192);
        }
        assert_eq!(pool.free_count(), 101);
        pool.trim();
        assert_eq!(pool.free_count(), KEEP_FREE);
    }
}
