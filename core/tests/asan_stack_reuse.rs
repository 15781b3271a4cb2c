//! Under AddressSanitizer (the "asan" step of `cargo xtask test`): a pooled stack carries no
//! marks of the greenlets that ran on it before into the next one.
//!
//! ASan marks a frame's redzones as its function starts and clears them as it returns. A
//! greenlet's last frames never return, so stacks came back to the pool still marked, and
//! the next greenlet's locals that ASan does not manage sat on those marks: with
//! `detect_stack_use_after_return`, a `memcpy` into one was reported as an overflow into a
//! frame that was not there (hosted's `http_client` failed about 1 run in 30). Here the first
//! greenlet marks the deep end of its stack by hand, as such frames leave it, and the next
//! greenlet on the same stack must find it clear.
#![cfg(all(gevent_asan, gevent_own_switch, not(miri)))]
#![allow(unsafe_code)] // ASan's interface

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::ffi::c_void;

use gevent_core::sim;
use gevent_core::spawn;
use gevent_core::stack::StackRegion;

mod support;
use support::RecordingStacks;

unsafe extern "C" {
    fn __asan_poison_memory_region(addr: *const c_void, size: usize);
    fn __asan_region_is_poisoned(addr: *const c_void, size: usize) -> *const c_void;
}

/// The bytes at the deep end of a stack that the test marks: far below any frame of the
/// greenlets here, and within the smallest stack the pool hands out.
const DEEP: usize = 4096;

/// The deep end of `region`'s usable bytes.
fn deep_end(region: &StackRegion) -> *const c_void {
    (region.bottom.get() + region.guard) as *const c_void
}

#[test]
fn a_greenlet_starts_on_a_reused_stack_without_the_marks_its_last_user_left() {
    let (mut platform, _) = sim::platform();
    let (stacks, allocated) = RecordingStacks::over(platform.stacks);
    platform.stacks = Box::new(stacks);
    gevent_core::hub::install(platform).unwrap();
    gevent_core::hub::run(|| {
        let regions = allocated.clone();
        spawn(move || {
            let region = regions.borrow()[0];
            assert!(region.usable_size() > 2 * DEEP, "a stack of {} bytes", region.usable_size());
            // SAFETY: the deep end of this greenlet's own stack, which no frame reaches; only
            // ASan's shadow of it changes.
            unsafe { __asan_poison_memory_region(deep_end(&region), DEEP) };
            // SAFETY: as above, a query.
            let poisoned = unsafe { __asan_region_is_poisoned(deep_end(&region), DEEP) };
            assert!(!poisoned.is_null(), "the marks were made");
        })
        .get()
        .unwrap();
        let regions = allocated.clone();
        spawn(move || {
            let regions = regions.borrow();
            assert_eq!(regions.len(), 1, "the second greenlet runs on the first one's stack");
            // SAFETY: a query of ASan's shadow of this greenlet's own stack.
            let poisoned = unsafe { __asan_region_is_poisoned(deep_end(&regions[0]), DEEP) };
            assert!(poisoned.is_null(), "a mark left on the stack at {poisoned:p}");
        })
        .get()
        .unwrap();
    });
}
