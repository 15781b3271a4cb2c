//! Contexts switched by corosensei, on the architectures without our own switch (and on all of
//! them with the `corosensei-switch` feature).
//!
//! corosensei's coroutines are asymmetric: the hub loop *resumes* a greenlet, which
//! *suspends* back to the loop through the yielder its coroutine gave it.
//!
//! Invariants that make the unsafe code below sound:
//! - Only the hub loop touches `coroutine`, and never reentrantly: the loop runs on the main
//!   greenlet's stack, a greenlet cannot run the loop, and a greenlet is resumed only when it
//!   is not running.
//! - `yielder` points into the coroutine's own stack, set by the coroutine when it starts, and
//!   is used only by code running on that coroutine, so it is valid whenever it is used.
#![allow(unsafe_code)] // see the SAFETY comments

use core::cell::{Cell, UnsafeCell};
use core::ptr::{self, NonNull};

use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::greenlet::task::Header;
use crate::hub::Hub;
use crate::stack::{PooledStack, StackRegion};

/// The coroutine type every greenlet runs in: no values cross the switch (wake reasons travel
/// in the greenlet's task header instead).
type GreenletCoroutine = Coroutine<(), (), (), PooledStack>;

/// The yielder type of [`GreenletCoroutine`].
type GreenletYielder = Yielder<(), ()>;

/// The hub loop's context: corosensei keeps it inside each coroutine.
pub(crate) struct LoopContext;

impl LoopContext {
    pub(crate) const fn new() -> Self {
        LoopContext
    }
}

/// A greenlet's execution context: empty until it first runs, then its coroutine.
pub(crate) struct Context {
    coroutine: UnsafeCell<Option<GreenletCoroutine>>,
    yielder: Cell<*const GreenletYielder>,
    /// An address near the stack pointer at the last suspend, to prefetch before resuming.
    suspended_sp: Cell<usize>,
    /// A copy of the stack's bounds while the greenlet holds one, for fault reports.
    region: Cell<Option<StackRegion>>,
    /// Whether the coroutine returned at its last resume.
    returned: Cell<bool>,
}

impl Context {
    pub(crate) const fn new() -> Self {
        Context {
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(ptr::null()),
            suspended_sp: Cell::new(0),
            region: Cell::new(None),
            returned: Cell::new(false),
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

    /// Gives the greenlet `me` (whose context this is) its coroutine, before the first resume.
    ///
    /// # Safety
    ///
    /// `me` is the node of this context, taken by its hub loop from the run queue and not
    /// started before: it is in its hub's live list until its own finish (see
    /// [`super::run_to_end`]).
    pub(crate) unsafe fn start(&self, me: NonNull<Header>, _: &Hub, stack: PooledStack) {
        let region = stack.region();
        let coroutine = Coroutine::with_stack(stack, move |yielder: &GreenletYielder, ()| {
            // SAFETY: the coroutine runs the greenlet `me` (the caller's contract), which its
            // hub's live list keeps alive until its finish, after this.
            unsafe { me.as_ref() }.task.context.yielder.set(yielder);
            // SAFETY: the hub loop resumed this greenlet for the first time (the caller's
            // contract): it is the running greenlet, on its own stack, and `hub()` is the
            // thread's hub, whose loop that is.
            unsafe { super::run_to_end(me, crate::hub::hub()) };
        });
        // SAFETY: only the hub loop calls this, before the first resume; no reference into the
        // cell exists (see the module invariants).
        unsafe { *self.coroutine.get() = Some(coroutine) };
        self.region.set(Some(region));
    }

    /// Runs the greenlet until it suspends or returns.
    ///
    /// # Safety
    ///
    /// The caller runs on the main greenlet's stack, the hub loop's, not inside a greenlet.
    #[inline(always)]
    pub(crate) unsafe fn resume(&self, _: &LoopContext) {
        // SAFETY: the caller is the hub loop (its contract), which does not call this
        // reentrantly (a greenlet cannot run the loop), so this is the only reference into the
        // cell while it lives (module invariants).
        let coroutine = unsafe { &mut *self.coroutine.get() };
        let coroutine = coroutine.as_mut().expect("resume of a greenlet without a coroutine");
        crate::stack::before_resume(|| self.region.get());
        let returned =
            preserving_fp_registers(|| matches!(coroutine.resume(()), CoroutineResult::Return(())));
        self.returned.set(returned);
    }

    /// Switches from the running greenlet back to the hub loop.
    ///
    /// # Safety
    ///
    /// This is the running greenlet's context: its yielder is used from the running stack.
    #[inline(always)]
    pub(crate) unsafe fn suspend(&self, _: &LoopContext) {
        let marker = 0u8;
        self.suspended_sp.set(core::ptr::addr_of!(marker) as usize);
        let yielder = self.yielder.get();
        assert!(!yielder.is_null(), "suspend of a greenlet that is not running");
        // SAFETY: the yielder lives on this coroutine's stack for as long as the coroutine runs,
        // and this is the running greenlet's context (the caller's contract), so the call is
        // made from that stack.
        preserving_fp_registers(|| unsafe { (*yielder).suspend(()) })
    }

    /// Takes the greenlet's stack back for reuse if its coroutine returned at its last resume;
    /// `None`, changing nothing, otherwise.
    #[inline(always)]
    pub(crate) fn take_stack_if_returned(&self) -> Option<PooledStack> {
        if !self.returned.replace(false) {
            return None;
        }
        // SAFETY: only the hub loop touches the cell, never reentrantly, and the loop is not
        // in `resume` while it runs this (module invariants), so no other reference into it
        // exists.
        let coroutine = unsafe { (*self.coroutine.get()).take() };
        self.region.set(None);
        self.yielder.set(ptr::null());
        // A returned coroutine is done: `into_stack` gives its stack back.
        coroutine.map(Coroutine::into_stack)
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
