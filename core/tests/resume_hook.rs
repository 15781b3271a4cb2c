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

fn record(region: &StackRegion) {
    SEEN.with(|seen| seen.borrow_mut().push(*region));
}

#[test]
fn the_hook_sees_each_resume_with_the_greenlets_stack_until_removed() {
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
