//! `Timeout`, `with_timeout` and waits with their own timeouts, on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Interest, Readiness};
use gevent_core::sim;
use gevent_core::time::Instant;
use gevent_core::{Interrupted, Timeout, now, sleep, spawn, with_timeout, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_timeout_interrupts_the_blocking_call_and_reports_its_id() {
    sim::run(|| {
        let t = Timeout::start(10 * MS);
        assert!(!t.expired());
        assert_eq!(sleep(Duration::from_secs(1)), Err(Interrupted::TimedOut(t.id())));
        assert!(t.expired() && t.is(&Interrupted::TimedOut(t.id())));
        assert_eq!(now().as_nanos(), 10_000_000);
        // Reported once: the scope may go on blocking (gevent's semantics).
        assert_eq!(sleep(MS), Ok(()));
    });
}

#[test]
fn a_dropped_timeout_is_disarmed() {
    sim::run(|| {
        let t = Timeout::start(10 * MS);
        drop(t);
        assert_eq!(sleep(50 * MS), Ok(()));
        let t = Timeout::start(10 * MS);
        t.cancel();
        assert_eq!(sleep(50 * MS), Ok(()));
    });
}

#[test]
fn a_timeout_fires_only_at_a_blocking_point() {
    sim::run_with(|sim| {
        let t = Timeout::start(10 * MS);
        sim.clock.advance(50 * MS); // computing well past the deadline, without blocking
        let computed: u64 = (0..1000u64).sum();
        assert_eq!(computed, 499_500, "computation is never interrupted");
        // A yield is a blocking point too: timers are collected before main resumes.
        assert_eq!(yield_now(), Err(Interrupted::TimedOut(t.id())), "the yield reports it");
        assert_eq!(sleep(MS), Ok(()), "reported once");
    });
}

#[test]
fn an_expiry_interrupts_the_wait_in_progress() {
    sim::run(|| {
        let t = Timeout::start(5 * MS);
        let sleeper = spawn(|| sleep(10 * MS));
        sleeper.join().unwrap_err(); // the join is the blocking point: interrupted at 5 ms
        assert!(t.expired());
        assert_eq!(now().as_nanos(), 5_000_000);
    });
}

#[test]
fn an_inner_timeout_firing_does_not_cancel_the_outer_scope() {
    sim::run(|| {
        let outer = Timeout::start(100 * MS);
        let inner = with_timeout(10 * MS, || sleep(50 * MS));
        match inner {
            Err(Interrupted::TimedOut(id)) => assert_ne!(id, outer.id()),
            other => panic!("the inner scope should time out, got {other:?}"),
        }
        assert!(!outer.expired());
        assert_eq!(sleep(Duration::from_secs(1)), Err(Interrupted::TimedOut(outer.id())));
        assert_eq!(now().as_nanos(), 100_000_000);
    });
}

#[test]
fn an_outer_timeout_firing_inside_an_inner_scope_is_the_outers() {
    sim::run(|| {
        let outer = Timeout::start(10 * MS);
        let result = with_timeout(100 * MS, || sleep(50 * MS));
        // The inner scope did not expire: it returns its closure's result, which carries the
        // outer timeout's expiry.
        assert_eq!(result, Err(Interrupted::TimedOut(outer.id())));
        assert!(outer.expired());
    });
}

#[test]
fn a_wait_with_its_own_timeout_inside_an_outer_timeout_reports_the_outer() {
    sim::run(|| {
        let target = spawn(|| sleep(Duration::from_secs(10)));
        let outer = Timeout::start(10 * MS);
        assert_eq!(target.join_timeout(50 * MS), Err(Interrupted::TimedOut(outer.id())));
        drop(outer);
        assert_eq!(target.join_timeout(50 * MS), Ok(false), "its own timeout: Ok(false)");
        assert_eq!(now().as_nanos(), 60_000_000);
    });
}

#[test]
fn timeouts_interrupt_other_greenlets_independently() {
    sim::run(|| {
        let results: Vec<_> = [30u32, 10, 20]
            .into_iter()
            .map(|ms| {
                spawn(move || {
                    let t = Timeout::start(ms * MS);
                    let r = sleep(Duration::from_secs(1));
                    (r == Err(Interrupted::TimedOut(t.id())), now())
                })
            })
            .collect();
        for (g, ms) in results.iter().zip([30u64, 10, 20]) {
            let (mine, at) = g.get().unwrap();
            assert!(mine);
            assert_eq!(at, Instant::from_nanos(ms * 1_000_000));
        }
    });
}

#[test]
fn io_readiness_wakes_the_waiting_greenlet_and_timeouts_bound_the_wait() {
    sim::run_with(|sim| {
        let source = sim::SimSource(7);
        let reg = IoRegistration::new(source).unwrap();
        sim.io.schedule(
            source,
            Readiness { readable: true, writable: false },
            Instant::from_nanos(5_000_000),
        );
        let woke = Rc::new(Cell::new(None));
        let w = woke.clone();
        let reader = spawn(move || {
            reg.wait(Interest::READABLE).unwrap();
            w.set(Some(now()));
            assert!(reg.readiness().readable);
            reg.clear_readiness(Interest::READABLE);
            let t = Timeout::start(10 * MS);
            assert_eq!(reg.wait(Interest::READABLE), Err(Interrupted::TimedOut(t.id())));
        });
        reader.join().unwrap();
        assert!(reader.successful(), "{:?}", reader.error());
        assert_eq!(woke.get(), Some(Instant::from_nanos(5_000_000)));
    });
}
