//! Tells AddressSanitizer about the stack switches of [`super::native`], under `-Zsanitizer=address`
//! (the `gevent_switch_asan` cfg, see `build.rs`): without it, ASan takes a greenlet's stack for
//! garbage and, once a frame unwinds on one, reports false errors.
//!
//! Each switch is bracketed: the context switching away calls [`start`] with the bounds of the
//! stack it switches to, and [`Fiber::finish`] when something switches back to it; a context's
//! first run calls [`entered`] instead. The hub loop's stack is the thread's, whose bounds ASan
//! reports to the first greenlet that enters: they are kept in the [`super::LoopContext`].

use core::ffi::c_void;
use core::ptr;

use crate::stack::StackRegion;

unsafe extern "C" {
    fn __sanitizer_start_switch_fiber(
        fake_stack_save: *mut *mut c_void,
        bottom: *const c_void,
        size: usize,
    );
    fn __sanitizer_finish_switch_fiber(
        fake_stack_save: *mut c_void,
        bottom_old: *mut *const c_void,
        size_old: *mut usize,
    );
    fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
}

/// The bounds of a stack, as ASan takes them: its lowest usable address and its size.
#[derive(Clone, Copy)]
pub(super) struct Bounds {
    bottom: usize,
    size: usize,
}

impl Bounds {
    pub(super) const EMPTY: Bounds = Bounds { bottom: 0, size: 0 };

    /// A greenlet's stack, without its guard.
    pub(super) fn of(region: Option<StackRegion>) -> Bounds {
        region.map_or(Bounds::EMPTY, |r| Bounds {
            bottom: r.bottom.get() + r.guard,
            size: r.usable_size(),
        })
    }
}

/// Forgets what ASan marked on a stack for the frames that ran on it: called as the stack of
/// a greenlet that has ended is taken back, when no frame lives on it.
///
/// ASan marks the redzones of a frame as its function starts and clears them as it returns.
/// A greenlet's last frames never return (its entry switches away for good), so its stack
/// came back to the pool still marked. The next greenlet on it, or, once the pool had given
/// the memory back to the system, a stack of another size mapped over it, had its own locals
/// that ASan does not manage sit on those marks (measured in hosted's `http_client`: entry's
/// frame, 19 granules, near the top or hundreds of KiB down). With
/// `detect_stack_use_after_return`, under which instrumented locals move to a fake stack and
/// no longer rewrite the real stack's marks, a `memcpy` into one was reported as an overflow
/// about 1 run in 30 of that test (9 in 300; none in 450 with the marks cleared).
pub(super) fn forget_frames(on: Bounds) {
    // SAFETY: ASan's interface, which changes its shadow of the range and never the memory:
    // clearing marks can only hide an error, and on a stack where no frame lives (the
    // caller's) there are none to hide.
    unsafe { __asan_unpoison_memory_region(on.bottom as *const c_void, on.size) };
}

/// What ASan handed the running context as it switched away: given back when it runs again.
pub(super) struct Fiber(*mut c_void);

/// Tells ASan that the running context switches to the stack `to`; `ending`: for good (ASan
/// frees what it kept for it).
///
/// # Safety
///
/// The caller's next action is the switch to the stack `to` (no code runs in between that
/// ASan checks against the stacks' bounds), and, unless `ending`, its first action when
/// something switches back to it is [`Fiber::finish`] on the value returned (which only this
/// function makes).
#[inline(always)]
pub(super) unsafe fn start(to: Bounds, ending: bool) -> Fiber {
    let mut fake_stack = ptr::null_mut();
    let save = if ending { ptr::null_mut() } else { &raw mut fake_stack };
    // SAFETY: ASan's interface: `save` is null or a live local that the call writes, and the
    // bounds are those of the stack the caller switches to next (the caller's contract).
    unsafe { __sanitizer_start_switch_fiber(save, to.bottom as *const c_void, to.size) };
    Fiber(fake_stack)
}

impl Fiber {
    /// Tells ASan that the context that called [`start`] runs again: called there, as
    /// `start`'s contract asks.
    #[inline(always)]
    pub(super) fn finish(self) {
        // SAFETY: `self.0` is what `start` stored for this very context, given back once
        // (`Fiber` is neither `Copy` nor `Clone`) as the context runs again (`start`'s
        // caller's contract, which made this `Fiber`); null outputs ask for nothing back.
        unsafe { __sanitizer_finish_switch_fiber(self.0, ptr::null_mut(), ptr::null_mut()) };
    }
}

/// Tells ASan that a new context runs for the first time, and gives back the bounds of the
/// stack it came from.
///
/// # Safety
///
/// The caller is the first code of a context that runs for the first time, switched to after
/// a [`start`] with its stack's bounds, and calls this before anything else.
#[inline(always)]
pub(super) unsafe fn entered() -> Bounds {
    let (mut bottom, mut size) = (ptr::null(), 0usize);
    // SAFETY: a first run (the caller's contract) has no saved fake stack (null); the outputs
    // are live locals.
    unsafe { __sanitizer_finish_switch_fiber(ptr::null_mut(), &raw mut bottom, &raw mut size) };
    Bounds { bottom: bottom as usize, size }
}
