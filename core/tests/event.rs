//! `Event` (gevent's `gevent.event.Event`) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::{AsyncResult, Event};
use gevent_core::{Interrupted, joinall, now, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn wait_returns_when_set_and_at_once_while_set() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                spawn(move || {
                    e.wait().unwrap();
                    now()
                })
            })
            .collect();
        sleep(10 * MS).unwrap();
        assert!(waiters.iter().all(|w| !w.ready()));
        event.set();
        for w in &waiters {
            assert_eq!(w.get().unwrap().as_nanos(), 10_000_000);
        }
        assert!(event.is_set());
        assert_eq!(event.wait(), Ok(()));
    });
}

#[test]
fn wait_timeout_is_false_after_the_timeout_and_true_when_set() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        assert_eq!(event.wait_timeout(5 * MS), Ok(false));
        assert_eq!(now().as_nanos(), 5_000_000);
        let e = event.clone();
        let setter = spawn(move || {
            sleep(2 * MS).unwrap();
            e.set()
        });
        assert_eq!(event.wait_timeout(50 * MS), Ok(true));
        assert_eq!(now().as_nanos(), 7_000_000);
        setter.join().unwrap();
    });
}

#[test]
fn waiters_woken_by_set_return_even_if_it_is_cleared_before_they_run() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiter = spawn(move || e.wait());
        yield_now().unwrap();
        event.set();
        event.clear();
        assert_eq!(waiter.get(), Ok(()));
        assert!(!event.is_set());
    });
}

#[test]
fn a_killed_waiter_leaves_the_event_and_the_others_untouched() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let (a, b) = (event.clone(), event.clone());
        let killed = spawn(move || a.wait());
        let other = spawn(move || b.wait());
        yield_now().unwrap();
        killed.kill().unwrap();
        assert!(killed.get().is_err());
        event.set();
        joinall([&other]).unwrap();
        assert_eq!(other.get(), Ok(()));
        event.clear();
        let err = event.wait().unwrap_err();
        assert!(
            matches!(&err, Interrupted::LoopExit(r) if r.main_waits_on.contains("event")),
            "{err}"
        );
    });
}

#[test]
fn wait_on_a_set_event_lets_the_waiters_woken_by_the_set_run_first() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        let waiters: Vec<_> = (0..2)
            .map(|i| {
                let (e, order) = (event.clone(), order.clone());
                spawn(move || {
                    e.wait().unwrap();
                    order.borrow_mut().push(i);
                })
            })
            .collect();
        yield_now().unwrap();
        event.set();
        event.wait().unwrap();
        order.borrow_mut().push(99);
        assert_eq!(*order.borrow(), [0, 1, 99], "the setter waited behind the woken waiters");
        joinall(&waiters).unwrap();

        // Same for an AsyncResult, whose wait is an event's.
        let result: Rc<AsyncResult<u8, ()>> = Rc::new(AsyncResult::new());
        let (r, order2) = (result.clone(), order.clone());
        let getter = spawn(move || order2.borrow_mut().push(r.get().unwrap()));
        yield_now().unwrap();
        result.set(7).unwrap();
        assert_eq!(result.get(), Ok(7));
        order.borrow_mut().push(100);
        assert_eq!(order.borrow()[3..], [7, 100]);
        getter.join().unwrap();
    });
}

#[test]
fn wait_on_a_set_event_returns_at_once_when_no_woken_waiter_is_pending() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiter = spawn(move || e.wait());
        yield_now().unwrap();
        event.set();
        waiter.join().unwrap();
        // Every greenlet the set woke has run: a wait on the set event does not yield.
        let bystander = spawn(|| ());
        event.wait().unwrap();
        assert!(!bystander.started(), "the wait returned without yielding");
        assert_eq!(event.wait_timeout(MS), Ok(true));
        assert!(!bystander.started());
        bystander.join().unwrap();
    });
}

#[test]
fn a_waiter_woken_by_set_that_is_killed_before_it_runs_still_counts_out() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiter = spawn(move || e.wait());
        yield_now().unwrap();
        waiter.kill_nowait();
        event.set();
        waiter.join().unwrap();
        let bystander = spawn(|| ());
        event.wait().unwrap();
        assert!(!bystander.started(), "no woken waiter is pending any more");
        bystander.join().unwrap();
    });
}

#[test]
fn set_wakes_many_waiters_in_the_order_they_came() {
    sim::run(|| {
        // More waiters than `set` pops ahead of the one it wakes, and a run queue long enough
        // for the hub to prefetch ahead.
        const N: usize = 50;
        let event = Rc::new(Event::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        let waiters: Vec<_> = (0..N)
            .map(|i| {
                let (e, order) = (event.clone(), order.clone());
                spawn(move || {
                    e.wait().unwrap();
                    order.borrow_mut().push(i);
                })
            })
            .collect();
        yield_now().unwrap();
        event.set();
        joinall(&waiters).unwrap();
        assert_eq!(*order.borrow(), (0..N).collect::<Vec<_>>());
    });
}

#[test]
fn a_woken_waiter_leaves_the_waiters_queued_after_the_set_in_place() {
    sim::run(|| {
        let start = now();
        let event = Rc::new(Event::new());
        let e = event.clone();
        let early = spawn(move || e.wait());
        yield_now().unwrap();
        event.set();
        event.clear();
        // Queued before `early` runs and leaves, in the slot its entry had.
        let e = event.clone();
        let late = spawn(move || e.wait_timeout(Duration::from_secs(1)));
        let e = event.clone();
        let timed_out = spawn(move || e.wait_timeout(Duration::from_millis(10)));
        yield_now().unwrap();
        assert_eq!(early.get(), Ok(()));
        assert_eq!(timed_out.get(), Ok(false), "no set since it queued");
        assert!(!late.ready(), "still waiting");
        event.set();
        assert_eq!(late.get(), Ok(true), "woken by the second set, not timed out");
        assert!(now().saturating_duration_since(start) < Duration::from_secs(1));
    });
}
