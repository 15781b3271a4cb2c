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
use alloc::format;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::num::NonZeroUsize;

/// Stack size used when a spawn does not ask for one.
///
/// Only touched pages cost memory on hosted platforms, so the default is generous: Rust code
/// (formatting, TLS handshakes) can want tens of KiB.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// The smallest usable stack a source must provide.
pub const MIN_STACK_SIZE: usize = corosensei::stack::MIN_STACK_SIZE;

/// The smallest usable stack a source may provide when hardware makes each stack's guard
/// inaccessible while its greenlet runs (an MPU region on Cortex-M; see `gevent_embedded`'s
/// `StaticStacks::guarded`).
///
/// corosensei's 4 KiB [`MIN_STACK_SIZE`] is a page: its own `DefaultStack` rounds to it and
/// Windows commits it, but nothing in its coroutine code depends on it (corosensei 0.3.4:
/// `stack/mod.rs` defines it, only `stack/unix.rs` and `stack/windows.rs` use it). What the
/// coroutine itself puts on a stack is small and fixed: `arch::arm::init_stack` writes, below
/// the base, the initial function and the parent link (8 bytes), the initial object rounded to
/// 8 (here the greenlet's entry closure, which holds one `Rc`: 8 bytes on 32-bit ARM; corosensei
/// refuses objects above 1 KiB), the trampoline's address and 8 bytes of padding: 32 bytes; and
/// each suspend pushes 12 bytes (`switch_yield`: r6, the frame pointer, the return address).
/// That part is written by the hub, not by the greenlet, so no guard catches it: the stack must
/// hold it, which any stack of this size does. Everything deeper is the greenlet's own code
/// (and on Cortex-M the exception frames and handlers of interrupts taken while it runs, which
/// use the stack it runs on), whose overflow the guard catches if the overflow touches it:
/// pushes and frames no larger than the guard do. Rust emits no stack probes on 32-bit ARM, so
/// a frame larger than the guard whose first store lands below it steps over the guard and
/// writes the memory below (as frames larger than a page step over a guard page on targets
/// without probes): the guard protects only code whose frames are no larger than it.
/// 256 bytes is also the high-water reading's live margin on ARM; a greenlet that parks at once
/// needs about 340 (measured on Cortex-M3), so smaller stacks would be sound but useless.
pub const MIN_GUARDED_STACK_SIZE: usize = 256;

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

/// Rounds a requested stack size up to one a source can hand out, or says why none can be had.
///
/// [`round_stack_size_with_min`] with [`MIN_STACK_SIZE`].
pub fn round_stack_size(size: usize, unit: usize, max: usize) -> Result<usize, StackError> {
    round_stack_size_with_min(size, MIN_STACK_SIZE, unit, max)
}

/// Rounds a requested stack size up to one a source can hand out, or says why none can be had.
///
/// The result is at least `min` ([`MIN_STACK_SIZE`], or [`MIN_GUARDED_STACK_SIZE`] for a
/// source whose guards hardware enforces), a whole number of `unit`s (raised to 16, the
/// alignment every stack needs; the page size where stacks are mapped) and at most `max`
/// rounded down to `unit`. A request above that fails with an error naming it, so no caller
/// has to fear an overflow in the rounding or in adding a guard to a size it checked against
/// `max`. `unit` must be a power of two.
pub fn round_stack_size_with_min(
    size: usize,
    min: usize,
    unit: usize,
    max: usize,
) -> Result<usize, StackError> {
    let unit = unit.max(16);
    if !unit.is_power_of_two() {
        return Err(StackError {
            message: format!(
                "a stack source hands out stacks in units of {unit} bytes, which is not a power \
                 of two"
            )
            .into(),
        });
    }
    let max = max & !(unit - 1);
    if size.max(min) > max {
        return Err(StackError {
            message: format!(
                "no greenlet stack of {size} bytes can be had: this platform's stacks hold at \
                 most {max} bytes"
            )
            .into(),
        });
    }
    // No overflow: the size is at most `max`, a multiple of `unit`, so rounding up stays there.
    Ok((size.max(min) + (unit - 1)) & !(unit - 1))
}

/// Provides and takes back stack memory.
///
/// # Safety
///
/// `allocate` must return regions of readable and writable memory of at least the requested
/// usable size (and at least [`MIN_STACK_SIZE`], or [`MIN_GUARDED_STACK_SIZE`] for regions
/// whose `guard` hardware makes inaccessible whenever their greenlet runs), exclusively owned
/// by the caller until passed back to `release`, with `top` and `bottom` aligned to 16 bytes,
/// whatever size it is asked for (or fail). A region with `guard == 0` has no overflow
/// protection: a greenlet that overflows it corrupts memory, so such sources are for platforms
/// without memory protection or for tests, and must say so in their docs. A guard catches only
/// the overflows that touch it: where the compiler emits no stack probes (32-bit ARM), a frame
/// larger than the guard can step over it, so a source whose guard is smaller than the frames
/// greenlet code may make must say so in its docs too.
pub unsafe trait StackSource {
    /// The usable size a request for `size` bytes is served with, or why no stack of that size
    /// can ever be had from this source.
    ///
    /// The hub asks this before a stack it lends, except for the size it asked last, whose
    /// answer it remembers (so the answer must depend on the size alone), and keeps freed
    /// stacks by the answer, so requests that round alike share them;
    /// [`allocate`](StackSource::allocate) is then asked for the rounded size. The default
    /// rounds to a multiple of 16 of at least [`MIN_STACK_SIZE`] and refuses sizes above
    /// `isize::MAX` (no allocation can be larger).
    /// Sources with other needs build their answer with [`round_stack_size`].
    fn round(&self, size: usize) -> Result<usize, StackError> {
        round_stack_size(size, 16, isize::MAX as usize)
    }

    /// Gets a region with at least `size` usable bytes.
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError>;

    /// An address of `region` (a region this source allocated) below which, down to the guard,
    /// its memory was never written and reads as [`paint`](StackSource::paint) words, if the
    /// source knows one: greenlet trees ([`crate::tree`]) and
    /// [`Greenlet::stack_high_water`](crate::Greenlet::stack_high_water) find a stack's
    /// high-water mark by reading up from there to the first word that differs. The default
    /// knows none (stacks of unknown contents), and there is then no high-water mark.
    ///
    /// Implementations must not write the region. An answer that is too low only makes the
    /// reading start lower; one too high hides deeper uses.
    fn untouched_below(&self, region: &StackRegion) -> Option<usize> {
        let _ = region;
        None
    }

    /// The word that unwritten stack memory reads as (see
    /// [`untouched_below`](StackSource::untouched_below)): zero, the default, for fresh
    /// anonymous pages; the pattern a source painted its stacks with otherwise. A pattern that
    /// code rarely stores (unlike zero, which a spilled register or a cleared local often is)
    /// makes a write at the deepest point less likely to go unseen.
    fn paint(&self) -> usize {
        0
    }

    /// Takes back a region from [`StackSource::allocate`].
    ///
    /// # Safety
    ///
    /// `region` must have come from this source's `allocate` and no longer be in use.
    unsafe fn release(&mut self, region: StackRegion);
}

/// The function [`set_resume_hook`] installed, as a pointer (null: none), read by the switch.
#[cfg(feature = "resume-hook")]
static RESUME_HOOK: core::sync::atomic::AtomicPtr<()> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Makes every hub call `hook` with a greenlet's stack right before each switch to that
/// greenlet (`None`: stop): for a firmware's MPU stack guard, which must follow the running
/// greenlet (`gevent_embedded::mpu`). Process-wide, for every thread's hub.
///
/// Only with the `resume-hook` feature, without which the switch does not look for a hook.
///
/// # Safety
///
/// `hook` runs inside the switch, right before it, on the stack of the context switching: the
/// hub loop's, or that of a greenlet that parks or yields straight into the next one, with
/// whatever room that greenlet has left. It must not call into gevent (no blocking call, no
/// spawn, nothing that reads or changes the hub), must not panic, and must leave the running
/// code's memory accessible (it may make the region's `guard` bytes inaccessible, which nothing
/// but an overflow touches).
#[cfg(feature = "resume-hook")]
pub unsafe fn set_resume_hook(hook: Option<fn(&StackRegion)>) {
    let hook = hook.map_or(core::ptr::null_mut(), |hook| hook as *mut ());
    RESUME_HOOK.store(hook, core::sync::atomic::Ordering::Relaxed);
}

/// Calls the hook [`set_resume_hook`] installed, if any, with `region`'s stack.
#[cfg(feature = "resume-hook")]
#[inline(always)]
pub(crate) fn before_resume(region: impl FnOnce() -> Option<StackRegion>) {
    let hook = RESUME_HOOK.load(core::sync::atomic::Ordering::Relaxed);
    if !hook.is_null() {
        // SAFETY: only `set_resume_hook` stores a non-null pointer, made from a
        // `fn(&StackRegion)`; a function pointer and a data pointer have the same size here.
        // Relaxed suffices: the pointer names code, which needs no synchronization to be read.
        let hook = unsafe { core::mem::transmute::<*mut (), fn(&StackRegion)>(hook) };
        if let Some(region) = region() {
            hook(&region);
        }
    }
}

/// Without the `resume-hook` feature there is no hook to call.
#[cfg(not(feature = "resume-hook"))]
#[inline(always)]
pub(crate) fn before_resume(_: impl FnOnce() -> Option<StackRegion>) {}

/// Tells stderr that a greenlet could not start for want of a stack: for the first such
/// greenlet of the process only.
///
/// Once per process, because what runs out (memory, address space, Linux's memory-map limit)
/// is the process's, shared by every thread's hub: when it does, thousands of greenlets fail
/// alike, and one line per greenlet (or per hub) would bury the one piece of advice. Each
/// greenlet still fails with its own [`FailureKind::NoStack`](crate::FailureKind::NoStack),
/// which its `get()` and `join()` report.
#[cfg(feature = "std")]
pub(crate) fn report_no_stack(
    greenlet: impl FnOnce() -> alloc::string::String,
    error: &StackError,
) {
    static REPORTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !REPORTED.swap(true, core::sync::atomic::Ordering::Relaxed) {
        crate::report::error(format_args!(
            "gevent: {} could not start: {error} (only the first greenlet without a stack is \
             reported here; each one fails with FailureKind::NoStack, which its get() returns)",
            greenlet()
        ));
    }
}

/// A stack on loan from the pool, which a greenlet runs on.
#[derive(Debug)]
pub(crate) struct PooledStack {
    region: StackRegion,
    /// The rounded size it was lent for: the shelf it goes back to.
    class: usize,
}

impl PooledStack {
    pub(crate) fn region(&self) -> StackRegion {
        self.region
    }
}

// SAFETY: a `StackSource` guarantees exclusively owned, 16-byte-aligned memory of at least
// `MIN_STACK_SIZE` usable bytes (or `MIN_GUARDED_STACK_SIZE` behind a hardware guard: what
// corosensei writes itself fits in it, see that constant), and the pool hands each region to one
// coroutine at a time. Guards are provided wherever the platform can protect memory; see
// `StackSource`'s contract for sources without one.
unsafe impl corosensei::stack::Stack for PooledStack {
    fn base(&self) -> corosensei::stack::StackPointer {
        self.region.top
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        self.region.bottom
    }
}

/// Stacks kept for reuse, by size class.
///
/// A greenlet's start and the take-back of its stack usually touch only the two cells, which
/// are read and written whole and never held while other code runs; the rest, which calls the
/// stack source (user code), is behind a `RefCell`, whose borrow checks were ~10 instructions
/// of a ~690-instruction spawn and finish on a Cortex-M3. A source that reaches the pool again
/// from one of its calls finds that `RefCell` borrowed (a panic), never a half-updated pool.
pub(crate) struct StackPool {
    /// A free stack kept off the shelves: the one given back while this was empty, which the
    /// next `take` of its class reuses first. A greenlet that ends and one that starts after it
    /// are the usual pair, and the shelves' search and vector push and pop were ~30
    /// instructions of a ~750-instruction spawn and finish on a Cortex-M3.
    hot: Cell<Option<PooledStack>>,
    /// The last size asked for and the source's rounding of it: nearly every greenlet asks for
    /// the default size, and asking the source (a virtual call and its checks) was ~40
    /// instructions of a ~1,400-instruction spawn on a Cortex-M3.
    last_round: Cell<Option<(usize, usize)>>,
    shelves: RefCell<Shelves>,
}

/// The stack source, and the free stacks it lent, by size class.
struct Shelves {
    source: Box<dyn StackSource>,
    /// `(rounded size, free stacks)`; a handful of size classes at most, so a vector beats a map.
    by_class: Vec<(usize, Vec<StackRegion>)>,
    /// Free stacks kept through [`StackPool::trim`].
    keep: usize,
}

impl Shelves {
    fn shelve(&mut self, stack: PooledStack) {
        match self.by_class.iter_mut().find(|(s, _)| *s == stack.class) {
            Some((_, shelf)) => shelf.push(stack.region),
            None => self.by_class.push((stack.class, alloc::vec![stack.region])),
        }
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool").field("free", &self.free_count()).finish()
    }
}

/// Free stacks that survive a trim: enough for a burst of short greenlets to find warm stacks.
const KEEP_FREE: usize = 64;

impl StackPool {
    pub(crate) fn new(source: Box<dyn StackSource>) -> Self {
        StackPool {
            hot: Cell::new(None),
            last_round: Cell::new(None),
            shelves: RefCell::new(Shelves { source, by_class: Vec::new(), keep: KEEP_FREE }),
        }
    }

    pub(crate) fn free_count(&self) -> usize {
        let hot = self.hot.take();
        let hot_free = usize::from(hot.is_some());
        self.hot.set(hot);
        self.shelves.borrow().by_class.iter().map(|(_, s)| s.len()).sum::<usize>() + hot_free
    }

    /// Lends a stack of at least `size` usable bytes, reusing a free one of the same rounded
    /// size when possible.
    #[inline]
    pub(crate) fn take(&self, size: usize) -> Result<PooledStack, StackError> {
        let class = match self.last_round.get() {
            Some((asked, class)) if asked == size => class,
            _ => self.round(size)?,
        };
        match self.hot.take() {
            Some(hot) if hot.class == class => return Ok(hot),
            other => self.hot.set(other),
        }
        self.take_shelved(class)
    }

    /// The source's rounding of `size`, remembered for the next `take`.
    #[inline(never)]
    fn round(&self, size: usize) -> Result<usize, StackError> {
        let class = self.shelves.borrow().source.round(size)?;
        self.last_round.set(Some((size, class)));
        Ok(class)
    }

    /// A free stack of the size class `class` from the shelves, or a new one from the source.
    #[inline(never)]
    fn take_shelved(&self, class: usize) -> Result<PooledStack, StackError> {
        let mut shelves = self.shelves.borrow_mut();
        let reused =
            shelves.by_class.iter_mut().find(|(s, _)| *s == class).and_then(|(_, s)| s.pop());
        let region = match reused {
            Some(region) => region,
            None => shelves.source.allocate(class)?,
        };
        Ok(PooledStack { region, class })
    }

    /// Takes back a stack that [`take`](Self::take) lent.
    #[inline]
    pub(crate) fn give_back(&self, stack: PooledStack) {
        match self.hot.take() {
            None => self.hot.set(Some(stack)),
            Some(hot) => {
                self.hot.set(Some(hot));
                self.shelve(stack);
            }
        }
    }

    #[inline(never)]
    fn shelve(&self, stack: PooledStack) {
        self.shelves.borrow_mut().shelve(stack);
    }

    /// Where reading `region` for its high-water mark starts, and the word its unwritten memory
    /// holds: see [`StackSource::untouched_below`] and [`StackSource::paint`].
    pub(crate) fn untouched_below(&self, region: &StackRegion) -> Option<(usize, usize)> {
        let shelves = self.shelves.borrow();
        Some((shelves.source.untouched_below(region)?, shelves.source.paint()))
    }

    /// Returns free stacks beyond a small reserve to the source; the hub calls this when it is
    /// about to sleep, so that a burst of parked greenlets does not pin its memory forever while
    /// a busy hub never pays for releasing and re-acquiring stacks.
    pub(crate) fn trim(&self) {
        let mut shelves = self.shelves.borrow_mut();
        let shelves = &mut *shelves;
        if let Some(hot) = self.hot.take() {
            shelves.shelve(hot);
        }
        let mut budget = shelves.keep;
        for (_, shelf) in &mut shelves.by_class {
            let keep = shelf.len().min(budget);
            budget -= keep;
            for region in shelf.drain(keep..) {
                // SAFETY: every region on a shelf came from this source and is free.
                unsafe { shelves.source.release(region) };
            }
        }
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        self.shelves.get_mut().keep = 0;
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    /// Hands out fake, never-dereferenced regions and counts calls.
    struct CountingSource {
        next: usize,
        allocated: usize,
        released: usize,
        /// Sizes `allocate` was asked for, shared with the test.
        asked: Rc<RefCell<Vec<usize>>>,
    }

    impl CountingSource {
        fn new() -> Self {
            CountingSource { next: 1 << 20, allocated: 0, released: 0, asked: Rc::default() }
        }
    }

    // SAFETY: the regions are never used as stacks in these tests; only the pool's bookkeeping
    // is exercised.
    unsafe impl StackSource for CountingSource {
        fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
            self.allocated += 1;
            self.asked.borrow_mut().push(size);
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
        let pool = StackPool::new(Box::new(CountingSource::new()));
        let a = pool.take(8192).unwrap();
        let region = a.region();
        pool.give_back(a);
        let b = pool.take(8192).unwrap();
        assert_eq!(b.region(), region, "a freed stack is reused");
        let c = pool.take(16384).unwrap();
        assert_ne!(c.region(), region);
        pool.give_back(b);
        pool.give_back(c);
        let many: Vec<_> = (0..100).map(|_| pool.take(8192).unwrap()).collect();
        for s in many {
            pool.give_back(s);
        }
        assert_eq!(pool.free_count(), 101);
        pool.trim();
        assert_eq!(pool.free_count(), KEEP_FREE);
    }

    #[test]
    fn the_stack_given_back_last_goes_to_its_own_class_only_and_counts_as_free() {
        let mut pool = StackPool::new(Box::new(CountingSource::new()));
        let small = pool.take(8192).unwrap();
        let small_region = small.region();
        pool.give_back(small);
        assert_eq!(pool.free_count(), 1, "the stack kept off the shelves is free");
        let big = pool.take(16384).unwrap();
        assert_ne!(big.region(), small_region, "a stack of another class is not reused");
        pool.give_back(big);
        assert_eq!(pool.free_count(), 2);
        assert_eq!(pool.take(8192).unwrap().region(), small_region);
        pool.shelves.get_mut().keep = 0;
        pool.trim();
        assert_eq!(pool.free_count(), 0, "a trim releases the kept stack too");
    }

    #[test]
    fn sizes_that_round_alike_share_a_shelf() {
        let pool = StackPool::new(Box::new(CountingSource::new()));
        let a = pool.take(5000).unwrap();
        let region = a.region();
        pool.give_back(a);
        let b = pool.take(5008).unwrap();
        assert_eq!(b.region(), region, "5000 and 5008 both round to 5008");
        pool.give_back(b);
        let c = pool.take(1).unwrap();
        let d = pool.take(MIN_STACK_SIZE).unwrap();
        pool.give_back(c);
        pool.give_back(d);
        assert_eq!(pool.free_count(), 3, "one 5008-byte stack and two of the minimum size");
    }

    #[test]
    fn the_source_is_asked_for_rounded_sizes_only() {
        let source = CountingSource::new();
        let asked = source.asked.clone();
        let pool = StackPool::new(Box::new(source));
        let lent: Vec<_> = [0, 1, 5000, 5001, 65_537].map(|size| pool.take(size).unwrap()).into();
        assert_eq!(*asked.borrow(), [MIN_STACK_SIZE, MIN_STACK_SIZE, 5008, 5008, 65_552]);
        for stack in lent {
            pool.give_back(stack);
        }
    }

    #[test]
    fn an_impossible_size_is_refused_not_wrapped() {
        let pool = StackPool::new(Box::new(CountingSource::new()));
        for size in [usize::MAX, usize::MAX - 10, isize::MAX as usize] {
            let err = pool.take(size).unwrap_err();
            assert!(err.message.contains(&alloc::format!("{size} bytes")), "{err}");
        }
        assert_eq!(pool.free_count(), 0);
    }

    #[test]
    fn rounding_respects_the_unit_and_the_maximum() {
        assert_eq!(round_stack_size(5000, 4096, usize::MAX), Ok(8192));
        assert_eq!(round_stack_size(8192, 4096, usize::MAX), Ok(8192));
        assert_eq!(round_stack_size(1, 4096, usize::MAX), Ok(MIN_STACK_SIZE));
        assert_eq!(round_stack_size(5000, 1, usize::MAX), Ok(5008), "16 bytes at least");
        assert_eq!(round_stack_size(usize::MAX - 4095, 4096, usize::MAX), Ok(usize::MAX - 4095));
        assert!(round_stack_size(usize::MAX - 4094, 4096, usize::MAX).is_err());
        assert_eq!(round_stack_size(8000, 16, 8192), Ok(8000));
        assert_eq!(round_stack_size(8192, 16, 8200), Ok(8192));
        assert!(round_stack_size(8193, 16, 8200).is_err(), "the maximum rounds down to the unit");
        assert!(round_stack_size(1, 16, MIN_STACK_SIZE - 16).is_err());
        assert_eq!(round_stack_size_with_min(1, MIN_GUARDED_STACK_SIZE, 16, 1024), Ok(256));
        assert_eq!(round_stack_size_with_min(1000, MIN_GUARDED_STACK_SIZE, 16, 1024), Ok(1008));
        assert!(round_stack_size_with_min(1, MIN_GUARDED_STACK_SIZE, 16, 240).is_err());
        let odd = round_stack_size(4096, 24, usize::MAX).unwrap_err();
        assert!(odd.message.contains("not a power of two"), "{odd}");
    }
}
