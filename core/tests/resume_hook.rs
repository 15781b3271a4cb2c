//! The switch hook (`stack::set_resume_hook`, feature `resume-hook`): called with the stack of
//! each greenlet right before every switch to it, and no longer once removed.
//!
//! Run with `cargo test -p gevent-core --features std,sim,resume-hook --test resume_hook`.
#![cfg(all(feature = "resume-hook", not(miri)))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::RefCell;

use gevent_core::stack::{StackRegion, set_resume_hook};
use gevent_core::{sim, sleep, spawn};

thread_local! {
    /// The regions the hook saw on this thread (the hook is process-wide; each test thread's
    /// hub calls it on that thread).
    static SEEN: RefCell<Vec<StackRegion>> = const { RefCell::new(Vec::new()) };
}

/// The hook is process-wide and the tests run on threads of their own: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn record(region: &StackRegion) {
    SEEN.with(|seen| seen.borrow_mut().push(*region));
}

#[test]
fn the_hook_sees_each_resume_with_the_greenlets_stack_until_removed() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    sim::run(|| {
        // SAFETY: `record` touches only a thread-local of its own: no gevent call, no panic
        // (the vector's growth aside, which does not reach the hub), no memory made inaccessible.
        unsafe { set_resume_hook(Some(record)) };
        let g = spawn(|| {
            for _ in 0..3 {
                sleep(std::time::Duration::ZERO).unwrap();
            }
        });
        g.join().unwrap();
        // SAFETY: removing the hook is always allowed.
        unsafe { set_resume_hook(None) };
        let seen = SEEN.with(|seen| seen.take());
        assert!(seen.len() >= 4, "a start and three wake-ups at least: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "one greenlet, one stack: {seen:?}");
        assert!(seen[0].usable_size() >= gevent_core::stack::MIN_STACK_SIZE);
        spawn(|| ()).join().unwrap();
        assert!(SEEN.with(|seen| seen.borrow().is_empty()), "removed: not called");
    });
}

/// Whether the last region the hook saw holds the caller's stack frame.
fn hook_saw_my_stack_last() -> bool {
    let here = 0u8;
    let here = std::ptr::addr_of!(here) as usize;
    SEEN.with(|seen| {
        seen.borrow().last().is_some_and(|r| (r.bottom.get()..r.top.get()).contains(&here))
    })
}

#[test]
fn the_hook_sees_the_stack_of_a_greenlet_entered_straight_from_another() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    sim::run(|| {
        // SAFETY: as above.
        unsafe { set_resume_hook(Some(record)) };
        // Two greenlets yielding to each other: with gevent-core's own switch, each yield
        // switches straight to the other, not through the hub loop.
        let yielders: Vec<_> = (0..2)
            .map(|_| {
                spawn(|| {
                    let mut misses = 0;
                    for _ in 0..10 {
                        gevent_core::yield_now().unwrap();
                        misses += usize::from(!hook_saw_my_stack_last());
                    }
                    misses
                })
            })
            .collect();
        let misses: Vec<usize> = yielders.iter().map(|g| g.get().unwrap()).collect();
        // SAFETY: removing the hook is always allowed.
        unsafe { set_resume_hook(None) };
        SEEN.with(|seen| seen.borrow_mut().clear());
        assert_eq!(misses, [0, 0], "switches into a greenlet that the hook did not see first");
    });
}
