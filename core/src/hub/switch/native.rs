//! Contexts switched by this crate's own assembly ([`super::arch`]), on x86-64 and Cortex-M.
//!
//! A context is a saved stack pointer: every context (the hub loop's, each greenlet's) saves
//! its registers on its own stack and its stack pointer in its slot when it switches away, and
//! any context can switch to any suspended one. The hub loop's context is the main greenlet's
//! (the thread's) stack while it runs the loop.
//!
//! Invariants that make the unsafe code below sound:
//! - A context's `sp` is a stack pointer saved by the switch (or made by `init_stack`) exactly
//!   while that context is suspended, and 0 otherwise: only the context itself stores it, in
//!   the switch that suspends it, and a switch *to* it takes it (leaving 0) before switching,
//!   and refuses a 0 (a direct switch takes "not 0" as "suspended", and switches through the
//!   loop otherwise). A greenlet that returned is the exception: its last switch saves a
//!   stack pointer that nothing continues, which the loop clears as it takes the stack back,
//!   and meanwhile it is in no run queue. Greenlets are switched to from the run queue only
//!   (by the loop, or by the running greenlet directly). The loop's context is switched to
//!   only by the running greenlet, while the loop waits in its own switch into the first
//!   greenlet of a chain of direct switches: exactly one greenlet of the chain switches back
//!   to it.
//! - A greenlet's stack stays owned by its `Context` (`stack`) from its start until the hub
//!   loop takes it back after the greenlet switched away for the last time (`returned`), or
//!   forever if it is abandoned: the stack a suspended context's `sp` points into is alive.
//! - `stack` is written only by the hub loop (start, take back) and by `abandon`, never while
//!   a reference into the cell exists, and read otherwise only by `stack_region` (a copy of
//!   the bounds, no reference kept), which those writers never call while they write.
#![allow(unsafe_code)] // see the SAFETY comments

use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;

use super::arch;
#[cfg(gevent_switch_asan)]
use super::asan;
use crate::greenlet::task::Header;
use crate::hub::Hub;
use crate::stack::{PooledStack, StackRegion};

/// The hub loop's context: its saved stack pointer while a greenlet runs.
pub(crate) struct LoopContext {
    sp: Cell<usize>,
    /// The thread's stack, which the loop runs on, for AddressSanitizer: learnt by the first
    /// greenlet to run (the loop starts every greenlet).
    #[cfg(gevent_switch_asan)]
    bounds: Cell<asan::Bounds>,
}

impl LoopContext {
    pub(crate) const fn new() -> Self {
        LoopContext {
            sp: Cell::new(0),
            #[cfg(gevent_switch_asan)]
            bounds: Cell::new(asan::Bounds::EMPTY),
        }
    }
}

/// A suspended context's stack pointer, taken out of its context for one switch to it (and,
/// for AddressSanitizer, its stack).
pub(crate) struct SuspendedSp(usize, #[cfg(gevent_switch_asan)] Option<StackRegion>);

/// A greenlet's execution context: empty until it starts, then its stack and, while it is
/// suspended, its saved stack pointer.
pub(crate) struct Context {
    /// The saved stack pointer while suspended; 0 before the start and after the end.
    sp: Cell<usize>,
    stack: UnsafeCell<Option<PooledStack>>,
    /// Set by the greenlet as it switches away for the last time.
    returned: Cell<bool>,
}

/// The entry's argument, in the space above the first frame: the greenlet's node and the hub
/// whose loop starts it (which saves the entry looking the hub up).
#[repr(C)]
struct EntryArg {
    me: NonNull<Header>,
    hub: NonNull<Hub>,
}

const _: () = assert!(size_of::<EntryArg>() <= 2 * size_of::<usize>());

impl Context {
    pub(crate) const fn new() -> Self {
        Context { sp: Cell::new(0), stack: UnsafeCell::new(None), returned: Cell::new(false) }
    }

    /// The stack the greenlet runs on, while it has one.
    pub(crate) fn stack_region(&self) -> Option<StackRegion> {
        // SAFETY: the cell is written only by the hub loop's start and take-back and by
        // `abandon`, none of which runs other code (nor this) while it writes it (module
        // invariants), so no mutable reference into it exists during this read.
        unsafe { (*self.stack.get()).as_ref() }.map(PooledStack::region)
    }

    /// The stack pointer at its last suspend (0 if it is not started or has ended): the
    /// registers its switch saved are right above it.
    pub(crate) fn suspended_sp(&self) -> usize {
        self.sp.get()
    }

    /// Gives the greenlet `me` (whose context this is) its stack, before its first run: its
    /// first switch-in runs `me`'s body.
    ///
    /// # Safety
    ///
    /// `me` is the node of this context, taken by the loop of `hub` (the thread's hub) from the
    /// run queue and not started before: it is in that hub's live list until its own finish
    /// (see [`super::run_to_end`]).
    pub(crate) unsafe fn start(&self, me: NonNull<Header>, hub: &Hub, stack: PooledStack) {
        let region = stack.region();
        let top = region.top.get();
        let slot = arch::arg_slot(top);
        // SAFETY: the pool lends `stack` to this greenlet alone, 16-byte aligned and with at
        // least `MIN_STACK_SIZE` usable bytes, far more than the argument and the first frame
        // take; the slot is aligned for two pointers (two words below a 16-aligned top, or
        // eight bytes below an 8-aligned one on 32-bit ARM, where a pointer needs 4-byte
        // alignment), and `EntryArg` fits in it (asserted above). The context is not started
        // (the hub starts a greenlet once), so nothing runs on the stack yet.
        let sp = unsafe {
            let arg = EntryArg { me, hub: NonNull::from(hub) };
            core::ptr::write(slot as *mut EntryArg, arg);
            arch::init_stack(top, entry, slot)
        };
        self.sp.set(sp);
        // SAFETY: only the hub loop calls this, before the first switch-in; no reference into
        // the cell exists (module invariants).
        unsafe { *self.stack.get() = Some(stack) };
    }

    /// Switches from the hub loop (`from`) into the greenlet until a greenlet switches back
    /// (this one, or one it switched to directly).
    ///
    /// # Safety
    ///
    /// The caller runs on the main greenlet's stack, the hub loop's, whose context `from` is:
    /// no switch saved that context, so its slot is free for this one.
    #[inline(always)]
    pub(crate) unsafe fn resume(&self, from: &LoopContext) {
        crate::stack::before_resume(|| self.stack_region());
        let to = self.sp.replace(0);
        assert!(to != 0, "resume of a greenlet that is not suspended");
        #[cfg(gevent_switch_asan)]
        // SAFETY: the switch below goes to this greenlet's stack, and `finish` follows it.
        let fiber = unsafe { asan::start(asan::Bounds::of(self.stack_region()), false) };
        // SAFETY: `to` is this suspended greenlet's saved stack pointer on its live stack
        // (module invariants; a greenlet that is running, not started or ended has 0, refused
        // above), and `from.sp` is the slot of the running loop context (the caller's
        // contract), which nothing else writes while it runs.
        unsafe { arch::switch(from.sp.as_ptr(), to) };
        #[cfg(gevent_switch_asan)]
        fiber.finish();
    }

    /// Switches from the running greenlet back to the hub loop, until it is resumed.
    ///
    /// # Safety
    ///
    /// This is the running greenlet's context: the switch saves the running code's stack
    /// pointer in it.
    #[inline(always)]
    pub(crate) unsafe fn suspend(&self, to: &LoopContext) {
        let loop_sp = to.sp.replace(0);
        assert!(loop_sp != 0, "suspend of a greenlet that the hub loop did not resume");
        // A greenlet that returned switches away for good.
        #[cfg(gevent_switch_asan)]
        // SAFETY: the switch below goes to the loop's stack (the thread's, learnt by `entry`),
        // and `finish` follows it unless the greenlet returned, which is never switched back to.
        let fiber = unsafe { asan::start(to.bounds.get(), self.returned.get()) };
        // SAFETY: the loop's saved stack pointer is set only while the loop waits in its
        // switch into a greenlet, the running one (module invariants), so it is a suspended
        // context on the main greenlet's live stack; `self.sp` is the running greenlet's own
        // slot (the caller's contract).
        unsafe { arch::switch(self.sp.as_ptr(), loop_sp) };
        #[cfg(gevent_switch_asan)]
        fiber.finish();
    }

    /// The first half of a direct switch from the running greenlet to this one, if it is
    /// suspended (`None` if it is not started, running or ended, or is main's, which the
    /// loop's code runs on): runs the resume hook (as a resume by the loop does) and takes
    /// the saved stack pointer, for [`Context::switch_to`]. The context counts as running from
    /// then on.
    #[inline(always)]
    pub(crate) fn take_if_suspended(&self) -> Option<SuspendedSp> {
        if self.sp.get() == 0 {
            return None;
        }
        crate::stack::before_resume(|| self.stack_region());
        Some(SuspendedSp(
            self.sp.replace(0),
            #[cfg(gevent_switch_asan)]
            self.stack_region(),
        ))
    }

    /// The second half: switches from this running greenlet to the context `to` was taken
    /// from, until something switches back.
    ///
    /// # Safety
    ///
    /// This is the running greenlet's context: the switch saves the running code's stack
    /// pointer in it.
    #[inline(always)]
    pub(crate) unsafe fn switch_to(&self, to: SuspendedSp) {
        #[cfg(gevent_switch_asan)]
        // SAFETY: the switch below goes to the stack of the context `to` was taken from, and
        // `finish` follows it.
        let fiber = unsafe { asan::start(asan::Bounds::of(to.1), false) };
        // SAFETY: `to` holds a saved stack pointer that `take_if_suspended` took out of its
        // context (which refused a 0), so it is that suspended context's, on its live stack
        // (module invariants), and since `SuspendedSp` is neither `Copy` nor `Clone` and only
        // made there, it is continued once; `self.sp` is the running greenlet's own slot (the
        // caller's contract).
        unsafe { arch::switch(self.sp.as_ptr(), to.0) };
        #[cfg(gevent_switch_asan)]
        fiber.finish();
    }

    /// Takes the greenlet's stack back for reuse if it switched away for the last time (its
    /// body returned); `None`, changing nothing, otherwise.
    #[inline(always)]
    pub(crate) fn take_stack_if_returned(&self) -> Option<PooledStack> {
        if !self.returned.replace(false) {
            return None;
        }
        self.sp.set(0);
        // SAFETY: `returned` is set only by the greenlet's `entry`, which then only switches
        // away for the last time; code that runs (and so calls this) is not on that stack,
        // which holds no live frame, whoever the caller is. No reference into the cell
        // exists (module invariants).
        let stack = unsafe { (*self.stack.get()).take() };
        // No frame lives on the stack any more (see above).
        #[cfg(gevent_switch_asan)]
        asan::forget_frames(asan::Bounds::of(stack.as_ref().map(PooledStack::region)));
        stack
    }

    /// Forgets a greenlet that could not be brought to an end at shutdown: its stack and the
    /// values on it are leaked rather than dropped, since ending it would need unwinding its
    /// frames, which `no_std` lacks.
    pub(crate) fn abandon(&self) {
        // SAFETY: called by the hub at shutdown, from the main greenlet, while this greenlet is
        // suspended; no other reference into the cell exists.
        // Never given back to the pool, the region is never reused: the suspended frames on it
        // stay untouched.
        let _leaked: Option<PooledStack> = unsafe { (*self.stack.get()).take() };
        self.sp.set(0);
    }
}

/// The first Rust code of every greenlet, called by the trampoline with the address of its
/// [`EntryArg`], written above its first frame by [`Context::start`].
///
/// It cannot unwind: an unwind reaching an `extern "C"` function aborts the process (with
/// "panic in a function that cannot unwind"), never entering the trampoline; the body itself
/// runs inside the greenlet's panic boundary.
unsafe extern "C" fn entry(arg: usize) -> ! {
    // The loop starts every greenlet: a first run comes from the thread's stack.
    #[cfg(gevent_switch_asan)]
    // SAFETY: this is a greenlet's first code on its first run, which the loop's `resume`
    // switched to after its `start`.
    let loop_stack = unsafe { asan::entered() };
    // SAFETY: `Context::start` wrote an `EntryArg` at `arg`, and nothing else writes there.
    let EntryArg { me, hub } = unsafe { core::ptr::read(arg as *const EntryArg) };
    // SAFETY: the hub whose loop started this greenlet is the thread's (`Context::start`'s
    // contract), which `hub()` hands out as `'static` for the same reason that holds here: it
    // is freed only at thread exit, when no greenlet is alive, and this greenlet is alive
    // while it runs (its hub's live list holds it until its finish, its loan after that); the
    // greenlet runs only inside that hub's loop (every switch into it comes from the loop or
    // from a greenlet the loop runs), and `Hub` is neither `Send` nor `Sync`.
    let hub: &'static Hub = unsafe { hub.as_ref() };
    #[cfg(gevent_switch_asan)]
    hub.loop_context().bounds.set(loop_stack);
    // SAFETY: `Context::start`'s caller promised a greenlet of the hub loop, which switched
    // to it for the first time: it is the running greenlet, on its own stack, and in its
    // hub's live list until its finish; `hub` is that loop's hub.
    unsafe { super::run_to_end(me, hub) };
    let context: *const Context = &hub.current_task().context;
    // SAFETY: the greenlet handed a count of itself to the loop (`run_to_end`), which keeps it, and so
    // its context, alive until the loop has taken back its stack, after this switch. The
    // current greenlet is still this one: nothing switched since.
    let context = unsafe { &*context };
    context.returned.set(true);
    // SAFETY: the current greenlet's context, this one's (see above).
    unsafe { context.suspend(hub.loop_context()) };
    unreachable!("a greenlet that returned was resumed")
}
