//! The context switch: a greenlet's corosensei coroutine and the way back to the hub.
//!
//! Greenlets are asymmetric coroutines. The hub loop runs on the main greenlet's stack (the
//! thread's own) and *resumes* a greenlet; the greenlet *suspends* back to the loop when it
//! parks or yields. A switch from one greenlet to another is therefore one suspend and one
//! resume, with the loop's bookkeeping in between.
//!
//! Invariants that make the unsafe code below sound:
//! - Only the hub loop touches `coroutine`, and never reentrantly: the loop runs on the main
//!   greenlet's stack, a greenlet cannot run the loop, and a greenlet is resumed only when it
//!   is not running.
//! - `yielder` points into the coroutine's own stack, set by the coroutine when it starts, and
//!   is used only by code running on that coroutine, so it is valid whenever it is used.
#![allow(unsafe_code)] // see the SAFETY comments

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::ptr::NonNull;

use corosensei::{Coroutine, CoroutineResult, Yielder};

use super::run_queue::QueuedTask;
use crate::greenlet::task::{Header, Task, TaskRef};
use crate::stack::{PooledStack, StackRegion};

/// The greenlet the hub runs now, held as a borrowed pointer so that reaching it on the switch
/// path costs no reference counting.
///
/// Invariant: the pointer always names a live greenlet. It names the main greenlet (owned by
/// the hub for its whole life) except inside [`CurrentSlot::resume`], which points it at a
/// greenlet whose count the hub loop lends it in `lent`. The greenlet's own coroutine holds
/// another count while it runs, so it stays alive when the lent one is taken (by [`get`] or
/// [`queued`]); a greenlet that returns lends that one back ([`lend_back`]), so the loop
/// always gets a count back from a greenlet that returned.
///
/// [`get`]: CurrentSlot::get
/// [`queued`]: CurrentSlot::queued
/// [`lend_back`]: CurrentSlot::lend_back
pub(crate) struct CurrentSlot {
    ptr: Cell<NonNull<Header>>,
    /// The run queue's count of the running greenlet, which the hub loop popped and lends to
    /// it: the greenlet's first [`get`](CurrentSlot::get) or yield moves it where it goes (a
    /// waiter list, the run queue) instead of making a new count while the loop drops the old
    /// one. Empty while the main greenlet runs.
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
        if let Some(t) = self.lent.take() {
            return t.into_task_ref();
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

    fn lent_is_empty(&self) -> bool {
        let lent = self.lent.take();
        let empty = lent.is_none();
        self.lent.set(lent);
        empty
    }

    /// Called by a greenlet about to return, with the count its coroutine held: lends it to
    /// the loop (unless the loop's own count is still lent), which keeps the greenlet alive
    /// until the loop has taken back its stack. Without it, the last count could be the
    /// coroutine's, dropped on the coroutine's own stack as it returns.
    #[inline]
    pub(crate) fn lend_back(&self, me: TaskRef) {
        match self.lent.take() {
            Some(lent) => {
                self.lent.set(Some(lent));
                drop(me);
            }
            None => {
                let t = QueuedTask::new(me);
                if t.node() == self.ptr.get() {
                    self.lent.set(Some(t));
                } // else not the current greenlet's: `t` is just dropped
            }
        }
    }

    /// Runs the greenlet `t` as the current one until it suspends or returns. Gives back
    /// whether it returned, and `t`'s count unless the greenlet moved it into the run queue.
    #[inline(always)]
    pub(crate) fn resume(&self, t: QueuedTask) -> (bool, Option<QueuedTask>) {
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
        // Empty before (only the hub loop lends, and `Restore` takes the loan back): the old
        // value needs no drop, which `set` would test for.
        debug_assert!(self.lent_is_empty());
        core::mem::forget(self.lent.replace(Some(t)));
        // SAFETY: the greenlet is alive for the whole call: `lent` holds a count until the
        // greenlet takes it, its coroutine's closure holds one while it runs, and a greenlet
        // about to return puts that one into `lent` (`lend_back`), which only this function
        // takes after the switch.
        let returned = unsafe { &node.as_ref().task }.context.resume();
        let back = self.lent.take();
        drop(restore);
        (returned, back)
    }
}

/// The coroutine type every greenlet runs in: no values cross the switch (wake reasons travel
/// in the greenlet's task header instead).
pub(crate) type GreenletCoroutine = Coroutine<(), (), (), PooledStack>;

/// The yielder type of [`GreenletCoroutine`].
pub(crate) type GreenletYielder = Yielder<(), ()>;

/// A greenlet's execution context: empty until it first runs, then its coroutine.
pub(crate) struct Context {
    coroutine: UnsafeCell<Option<GreenletCoroutine>>,
    yielder: Cell<*const GreenletYielder>,
    /// An address near the stack pointer at the last suspend, to prefetch before resuming.
    suspended_sp: Cell<usize>,
    /// A copy of the stack's bounds while the greenlet holds one, for fault reports.
    region: Cell<Option<StackRegion>>,
}

impl Context {
    pub(crate) const fn new() -> Self {
        Context {
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(ptr::null()),
            suspended_sp: Cell::new(0),
            region: Cell::new(None),
        }
    }

    /// The stack the greenlet runs on, while it has one.
    pub(crate) fn stack_region(&self) -> Option<StackRegion> {
        self.region.get()
    }

    /// An address near the stack pointer at its last suspend (0 if it never suspended).
    pub(crate) fn suspended_sp(&self) -> usize {
        self.suspended_sp.get()
    }

    /// Gives the greenlet its coroutine, before the first resume.
    pub(crate) fn install(&self, coroutine: GreenletCoroutine, region: StackRegion) {
        // SAFETY: only the hub loop calls this, before the first resume; no reference into the
        // cell exists (see the module invariants).
        unsafe { *self.coroutine.get() = Some(coroutine) };
        self.region.set(Some(region));
    }

    /// Called by the coroutine itself when it starts, so that it can suspend later.
    pub(crate) fn set_yielder(&self, yielder: &GreenletYielder) {
        self.yielder.set(yielder);
    }

    /// Runs the greenlet until it suspends or returns; true when it returned.
    #[inline(always)]
    pub(crate) fn resume(&self) -> bool {
        // SAFETY: the hub loop is the only caller and does not call this reentrantly, so this is
        // the only reference into the cell while it lives (module invariants).
        let coroutine = unsafe { &mut *self.coroutine.get() };
        let coroutine = coroutine.as_mut().expect("resume of a greenlet without a coroutine");
        crate::stack::before_resume(&self.region);
        preserving_fp_registers(|| matches!(coroutine.resume(()), CoroutineResult::Return(())))
    }

    /// Prefetches the part of the stack that resuming the greenlet touches first: below the
    /// suspend point, the registers its switch saved and the frames of the calls it makes next
    /// ([`PREFETCH_STACK_BELOW`] bytes); above it, the frames it returns through, up to the
    /// stack's top or [`PREFETCH_STACK_ABOVE`] bytes. Nothing before its first run or after its
    /// end.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn prefetch_stack(&self) {
        let sp = self.suspended_sp.get();
        let Some(region) = self.region.get() else { return };
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
        let sp = self.suspended_sp.get();
        if sp != 0 {
            prefetch(sp);
        }
    }

    /// Switches from the running greenlet back to the hub loop.
    #[inline(always)]
    pub(crate) fn suspend(&self) {
        let marker = 0u8;
        self.suspended_sp.set(core::ptr::addr_of!(marker) as usize);
        let yielder = self.yielder.get();
        assert!(!yielder.is_null(), "suspend of a greenlet that is not running");
        // SAFETY: the yielder lives on this coroutine's stack for as long as the coroutine runs,
        // and `suspend` is only called by the greenlet itself, i.e. from that stack.
        preserving_fp_registers(|| unsafe { (*yielder).suspend(()) })
    }

    /// After the coroutine returned: takes its stack back for reuse.
    pub(crate) fn take_finished_stack(&self) -> PooledStack {
        // SAFETY: called by the hub loop right after `resume` returned true; no other reference
        // into the cell exists.
        let coroutine = unsafe { (*self.coroutine.get()).take() };
        self.region.set(None);
        self.yielder.set(ptr::null());
        coroutine.expect("a finished greenlet has its coroutine").into_stack()
    }

    /// Forgets a greenlet that could not be brought to an end at shutdown: its stack and the
    /// values on it are leaked rather than dropped, since dropping a suspended coroutine would
    /// need unwinding, which `no_std` lacks.
    pub(crate) fn abandon(&self) {
        // SAFETY: called by the hub at shutdown, from the main greenlet, while this greenlet is
        // suspended; no other reference into the cell exists.
        if let Some(coroutine) = unsafe { (*self.coroutine.get()).take() } {
            core::mem::forget(coroutine);
        }
        self.region.set(None);
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
    let node = ptr::from_ref(t) as usize;
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

/// Runs a context switch so that the callee-saved floating-point registers survive it.
///
/// On hard-float 32-bit ARM (`thumbv7em-none-eabihf`: Cortex-M4F/M7F with a 16-double FPU)
/// corosensei's switch does not preserve d8–d15 (its clobbers name the NEON registers q4–q7,
/// which such an FPU does not have), and greenlets saw their floating-point values corrupted
/// across switches (measured under QEMU `mps2-an386`). This out-of-line frame declares d8–d15
/// clobbered, so the compiler saves them on entry and restores them on the way out, around the
/// switch, on the stack of whichever side is switching away.
#[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
#[inline(never)]
fn preserving_fp_registers<R>(switch: impl FnOnce() -> R) -> R {
    // SAFETY: an empty asm statement that only declares d8–d15 clobbered; it reads and writes
    // no memory and leaves the stack alone.
    unsafe {
        core::arch::asm!(
            "",
            out("d8") _, out("d9") _, out("d10") _, out("d11") _,
            out("d12") _, out("d13") _, out("d14") _, out("d15") _,
            options(nomem, nostack, preserves_flags)
        );
    }
    switch()
}

/// Elsewhere corosensei's switch preserves every callee-saved register itself.
#[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
#[inline(always)]
fn preserving_fp_registers<R>(switch: impl FnOnce() -> R) -> R {
    switch()
}
