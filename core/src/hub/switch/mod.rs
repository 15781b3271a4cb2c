//! The context switch: greenlets' execution contexts and the way back to the hub.
//!
//! The hub loop runs on the main greenlet's stack (the thread's own) and *resumes* a greenlet;
//! the greenlet *suspends* back to the loop when it parks or yields. With this crate's own
//! switch, a greenlet that parks or yields switches instead *directly* to the next greenlet of
//! the run queue when the loop would do nothing else before resuming it (see
//! `Hub::switch_directly`): one switch instead of two and the loop's turn. The loop then waits,
//! in its switch into the first greenlet, for whichever greenlet of that chain switches back
//! to it (one that returned always does, so that its stack is taken back by code not running
//! on it). corosensei's coroutines are asymmetric: with it, every switch goes through the loop.
//!
//! Two backends provide [`Context`] and [`LoopContext`] with the same methods: this crate's
//! own assembly (`native`, over [`arch`]) on x86-64 and Cortex-M, and corosensei (`coro`)
//! elsewhere or with the `corosensei-switch` feature. The `gevent_own_switch` cfg (see
//! `build.rs`) chooses.
#![allow(unsafe_code)] // see the SAFETY comments

#[cfg(gevent_own_switch)]
mod arch;
#[cfg(gevent_switch_asan)]
mod asan;
#[cfg(not(gevent_own_switch))]
mod coro;
#[cfg(gevent_own_switch)]
mod native;

#[cfg(not(gevent_own_switch))]
pub(crate) use coro::{Context, LoopContext};
#[cfg(gevent_own_switch)]
pub(crate) use native::{Context, LoopContext, SuspendedSp};

use core::cell::Cell;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use super::run_queue::QueuedTask;
use crate::greenlet::task::{Header, Task, TaskRef};

/// The greenlet the hub runs now, held as a borrowed pointer so that reaching it on the switch
/// path costs no reference counting.
///
/// Invariants:
/// - The pointer always names a live greenlet. It names the main greenlet (owned by the hub
///   for its whole life) while the main greenlet runs, the hub loop included; a switch into a
///   greenlet (the loop's [`CurrentSlot::resume`], or a greenlet's direct
///   [`CurrentSlot::switch_to`] another) points it at that greenlet first, and the loop points
///   it back at main when a greenlet switches back to it. A running greenlet other than main
///   stays alive: the hub's live list counts it from its spawn until its finish, which only
///   its own [`run_to_end`] calls once it started, and which hands that count on to the loop
///   ([`lend_back`]) for its last switch.
/// - `lent`, when it holds a count, holds one of the greenlet the pointer names. Only a switch
///   into a greenlet fills it, with the count of that greenlet's run queue entry; the loop,
///   on getting control back, takes what is left of it. A greenlet that returns lends the
///   live list's count ([`lend_back`]) if the lent one is gone, so the loop always gets a
///   count of a greenlet that returned, and that greenlet (its stack, its context) stays
///   alive until the loop took its stack back.
///
/// [`lend_back`]: CurrentSlot::lend_back
pub(crate) struct CurrentSlot {
    ptr: Cell<NonNull<Header>>,
    /// The run queue's count of the running greenlet, which the hub loop popped and lends to
    /// it: the greenlet's first [`get`](CurrentSlot::get) or yield moves it where it goes (a
    /// waiter list, the run queue) instead of making a new count while the loop drops the old
    /// one. Empty while the main greenlet runs (see the invariants above).
    lent: Cell<Option<QueuedTask>>,
}

impl CurrentSlot {
    /// A slot naming `main`, which must outlive the slot.
    pub(crate) fn new(main: &TaskRef) -> Self {
        CurrentSlot { ptr: Cell::new(main.as_ptr()), lent: Cell::new(None) }
    }

    /// The running greenlet's header. Use it only while that greenlet runs (it may end after).
    #[inline]
    pub(crate) fn task(&self) -> &Task {
        // SAFETY: the slot's invariant: the pointee is alive, and the running greenlet is not
        // freed while it runs, which is as long as callers use the reference.
        unsafe { &self.ptr.get().as_ref().task }
    }

    /// A counted reference to the running greenlet: the lent count if it is still there.
    #[inline]
    pub(crate) fn get(&self) -> TaskRef {
        if self.has_loan() {
            if let Some(t) = self.lent.take() {
                return t.into_task_ref();
            }
        }
        // SAFETY: the pointee is a live node (the slot's invariant).
        unsafe { TaskRef::clone_raw(self.ptr.get()) }
    }

    /// The running greenlet as a run queue entry: the count the loop lent it if it still has
    /// it, a new one otherwise.
    #[inline(always)]
    pub(crate) fn queued(&self) -> QueuedTask {
        match self.lent.take() {
            Some(t) => t,
            None => QueuedTask::new(self.get()),
        }
    }

    /// Whether `lent` holds a count: peeked, so that an empty one (main's, always) is not
    /// taken and written back empty.
    #[inline(always)]
    fn has_loan(&self) -> bool {
        // SAFETY: `Cell` never hands out a reference into its value and the slot is not
        // `Sync`, so nothing writes it during this read, which copies nothing out.
        unsafe { (*self.lent.as_ptr()).is_some() }
    }

    fn lent_is_empty(&self) -> bool {
        !self.has_loan()
    }

    /// Called by a greenlet about to return, with a count of itself (the live list's, which
    /// its finish gave back): lends it to the loop (unless the loop's own count is still
    /// lent), which keeps the greenlet alive until the loop has taken back its stack. Without
    /// it, the last count could be dropped on the greenlet's own stack as it returns.
    #[inline]
    pub(crate) fn lend_back(&self, me: TaskRef) {
        // Peeked, not taken and put back: the loan is usually still there (a greenlet that
        // neither parked nor yielded kept it).
        if self.has_loan() {
            drop(me);
            return;
        }
        let t = QueuedTask::new(me);
        if t.node() == self.ptr.get() {
            // Empty (checked above): nothing to drop.
            core::mem::forget(self.lent.replace(Some(t)));
        } // else not the current greenlet's: `t` is just dropped
    }

    /// Runs the greenlet `t` as the current one until a greenlet (`t` or one `t` switched to
    /// directly, see [`CurrentSlot::switch_to`]) switches back to the hub loop. Gives back what
    /// is left of the count lent to that greenlet: always a count when it returned.
    ///
    /// # Safety
    ///
    /// The caller is the hub loop of this slot's hub, on the main greenlet's stack, and `from`
    /// is that hub's loop context.
    #[inline(always)]
    pub(crate) unsafe fn resume(&self, t: QueuedTask, from: &LoopContext) -> Option<QueuedTask> {
        /// Points the slot back at the resumer and takes the lent count back even if a panic
        /// unwinds out of the greenlet (the library catches user panics inside it; this covers
        /// its own bugs), so the slot never names a greenlet that may be freed, nor lends the
        /// main greenlet a count of another.
        struct Restore<'a> {
            slot: &'a CurrentSlot,
            previous: NonNull<Header>,
        }
        impl Drop for Restore<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                self.slot.ptr.set(self.previous);
                drop(self.slot.lent.take());
            }
        }
        let node = t.node();
        let restore = Restore { slot: self, previous: self.ptr.replace(node) };
        // Empty before (only a switch into a greenlet lends, and the loop, main's code, takes
        // the loan back): the old value needs no drop, which `set` would test for.
        debug_assert!(self.lent_is_empty());
        core::mem::forget(self.lent.replace(Some(t)));
        // SAFETY: the greenlet is alive until the switch: `lent` holds its count, and nothing
        // runs between here and the switch. After it, only `lent` is read. The resume comes
        // from the hub loop, on main's stack (the caller's contract).
        unsafe { node.as_ref().task.context.resume(from) };
        let back = self.lent.take();
        drop(restore);
        back
    }

    /// Switches from the running greenlet, whose context is `from`, straight to `next`,
    /// popped from the run queue, whose suspended context `to` was taken from. `next` becomes
    /// the current greenlet with its entry's count lent to it. Returns when something switches
    /// back to the caller.
    ///
    /// # Safety
    ///
    /// `from` is the running greenlet's context.
    #[cfg(gevent_own_switch)]
    #[inline(always)]
    pub(crate) unsafe fn switch_to(&self, from: &Context, next: QueuedTask, to: SuspendedSp) {
        // Not the running greenlet: that one's context is not suspended.
        self.ptr.set(next.node());
        // What is left of the running greenlet's loan: not its last count, which the live list
        // holds for as long as it is not finished (it is parking or yielding), so dropping it
        // frees nothing. Usually there is none: yielding and waiting took it.
        let left = self.lent.replace(Some(next));
        if left.is_some() {
            drop_cold(left);
        }
        // SAFETY: `from` is the running greenlet's context (the caller's contract).
        unsafe { from.switch_to(to) };
    }
}

/// Drops a value off the hot path.
#[cfg(gevent_own_switch)]
#[cold]
#[inline(never)]
fn drop_cold<T>(value: T) {
    drop(value);
}

/// Runs the greenlet `me` to its end, on its own stack: its body, its `finish`, and the hand
/// over of the live list's count of it to the hub loop ([`CurrentSlot::lend_back`]).
///
/// The greenlet's own frames hold no count of it: the live list's keeps it alive, from its
/// spawn until its finish, and only this function finishes a greenlet that started (a kill
/// interrupts it instead; the hub's shutdown takes out of the list only greenlets that are
/// suspended for good).
///
/// # Safety
///
/// `me` is the running greenlet, started by the loop of `hub`, and this runs on its own stack,
/// once (its first frame).
pub(crate) unsafe fn run_to_end(me: NonNull<Header>, hub: &super::Hub) {
    // SAFETY: a view of the node that owns no count (so it is never dropped): the live list's
    // count keeps the node alive until `finish` hands it over, and `listed` below holds it from
    // there on; `me` is not used after `listed` is handed to the loop.
    let me = ManuallyDrop::new(unsafe { TaskRef::from_raw(me) });
    let failure = me.run();
    let listed = hub.finish(&me, failure);
    // A started greenlet is listed until its finish (see above); were it not, a new count
    // keeps it alive for the loop all the same.
    hub.returning(listed.unwrap_or_else(|| TaskRef::clone(&me)));
}

#[cfg(target_arch = "x86_64")]
impl Context {
    /// Prefetches the part of the stack that resuming the greenlet touches first: below the
    /// suspend point, the registers its switch saved and the frames of the calls it makes next
    /// ([`PREFETCH_STACK_BELOW`] bytes); above it, the frames it returns through, up to the
    /// stack's top or [`PREFETCH_STACK_ABOVE`] bytes. Nothing before its first run or after its
    /// end.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn prefetch_stack(&self) {
        let sp = self.suspended_sp();
        let Some(region) = self.stack_region() else { return };
        if sp == 0 {
            return;
        }
        let end = region.top.get().min(sp.saturating_add(PREFETCH_STACK_ABOVE));
        let mut line = sp.saturating_sub(PREFETCH_STACK_BELOW) & !(CACHE_LINE - 1);
        while line < end {
            prefetch(line);
            line += CACHE_LINE;
        }
    }

    /// Prefetches one line of the stack where the greenlet suspended, to have its page's address
    /// translation looked up ahead of [`prefetch_stack`](Self::prefetch_stack).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn touch_stack(&self) {
        let sp = self.suspended_sp();
        if sp != 0 {
            prefetch(sp);
        }
    }
}

/// Asks the CPU to start loading the cache line at `addr`. A hint only: it never faults, even
/// for addresses that are not mapped.
#[inline(always)]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect and cannot fault, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The cache line size that prefetching steps by (64 bytes on the CPUs that prefetch here).
#[cfg(target_arch = "x86_64")]
const CACHE_LINE: usize = 64;

/// Prefetches a greenlet's whole node: its header and body.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn prefetch_node(t: &Header) {
    let node = core::ptr::from_ref(t) as usize;
    let start = node & !(CACHE_LINE - 1);
    let end = node + t.node_size();
    let mut line = start;
    while line < end {
        prefetch(line);
        line += CACHE_LINE;
    }
}

/// Bytes below a suspended greenlet's recorded stack pointer that [`Context::prefetch_stack`]
/// fetches: the switch's saved registers, and the frames of what the greenlet calls once
/// resumed. A greenlet that ends calls `Hub::finish` and the drops of its end, which reach
/// 384-512 bytes below the point where it parked on an `Event`; its stores into those lines,
/// left cold, stalled the hub loop at its next store-to-load forwarding (perf put most of the
/// remaining wake-up time right after the greenlet's return).
#[cfg(target_arch = "x86_64")]
const PREFETCH_STACK_BELOW: usize = 512;

/// Bytes above it that [`Context::prefetch_stack`] fetches at most: enough for the frames of a
/// blocking call and of the greenlet's own entry (~650 bytes when a short body waits on an
/// `Event`), without flooding the cache for a greenlet parked deep in a call chain.
#[cfg(target_arch = "x86_64")]
const PREFETCH_STACK_ABOVE: usize = 1024;
