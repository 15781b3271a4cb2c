//! Scheduling semantics on the real hub (epoll, the monotonic clock), where time passes while
//! greenlets compute.

use std::time::Duration;

use gevent::{Interrupted, Timeout, spawn_later, yield_now};

/// Bounds a loop that must end by itself: if the hub never lets the timer through, the test
/// fails instead of spinning forever.
const MAX_ITERATIONS: u64 = 200_000_000;

#[test]
fn a_main_yield_loop_under_a_timeout_ends() {
    let timeout = Timeout::start(Duration::from_millis(10));
    let mut iterations = 0;
    let result = loop {
        iterations += 1;
        match yield_now() {
            Ok(()) if iterations < MAX_ITERATIONS => continue,
            other => break other,
        }
    };
    assert_eq!(result, Err(Interrupted::TimedOut(timeout.id())));
}

#[test]
fn a_main_yield_loop_lets_a_spawn_later_greenlet_run() {
    let later = spawn_later(Duration::from_millis(5), || ());
    let mut iterations = 0;
    while !later.ready() && iterations < MAX_ITERATIONS {
        yield_now().unwrap();
        iterations += 1;
    }
    assert!(later.ready(), "the delayed greenlet never ran while main yielded");
}
