//! `wait`/`iwait` over mixed objects and greenlet-local storage (gevent's test__joinall,
//! test__local) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::{AsyncResult, Event};
use gevent_core::local::Local;
use gevent_core::lock::{BoundedSemaphore, Semaphore};
use gevent_core::wait::{Waitable, iwait, wait};
use gevent_core::{Interrupted, Timeout, joinall, now, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn iwait_yields_a_mix_of_objects_in_the_order_they_become_ready() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let result: Rc<AsyncResult<u8, ()>> = Rc::new(AsyncResult::new());
        let slow = spawn(|| sleep(30 * MS));
        let (e, r) = (event.clone(), result.clone());
        let setter = spawn(move || {
            sleep(10 * MS).unwrap();
            r.set(1).unwrap();
            sleep(10 * MS).unwrap();
            e.set();
        });
        let objects: [&dyn Waitable; 3] = [&slow, &*event, &*result];
        let order: Vec<(usize, u64)> =
            iwait(&objects, None).map(|i| (i.unwrap(), now().as_nanos() / 1_000_000)).collect();
        assert_eq!(order, [(2, 10), (1, 20), (0, 30)]);
        setter.join().unwrap();
    });
}

#[test]
fn wait_honours_count_and_timeout() {
    sim::run(|| {
        let a = spawn(|| sleep(10 * MS));
        let b = spawn(|| sleep(50 * MS));
        let never = Event::new();
        assert_eq!(wait(&[&a as &dyn Waitable, &b, &never], Some(1), None), Ok(vec![0]));
        assert_eq!(now().as_nanos(), 10_000_000);
        assert_eq!(wait(&[&a as &dyn Waitable, &b, &never], None, Some(20 * MS)), Ok(vec![0]));
        assert_eq!(now().as_nanos(), 30_000_000, "gave up after the timeout");
        let t = Timeout::start(5 * MS);
        assert_eq!(
            wait(&[&never as &dyn Waitable], None, None),
            Err(Interrupted::TimedOut(t.id()))
        );
        drop(t);
        b.join().unwrap();
    });
}

#[test]
fn a_count_of_zero_returns_at_once_with_nothing() {
    sim::run(|| {
        let never = Event::new();
        let pending = spawn(|| sleep(10 * MS));
        let objects = [&never as &dyn Waitable, &pending];
        assert_eq!(wait(&objects, Some(0), None), Ok(vec![]));
        assert_eq!(wait(&objects, Some(0), Some(5 * MS)), Ok(vec![]));
        assert_eq!(wait(&[], None, None), Ok(vec![]));
        assert_eq!(now().as_nanos(), 0, "nothing was waited for");
        pending.join().unwrap();
    });
}

#[test]
fn an_event_set_and_cleared_before_the_waiter_runs_still_wakes_wait_and_iwait() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let other = Rc::new(Event::new());
        let (e1, e2, o2) = (event.clone(), event.clone(), other.clone());
        let waiter = spawn(move || wait(&[&*e1 as &dyn Waitable], None, None));
        let iwaiter = spawn(move || {
            let objects = [&*o2 as &dyn Waitable, &*e2];
            iwait(&objects, Some(50 * MS)).collect::<Vec<_>>()
        });
        yield_now().unwrap();
        event.set();
        event.clear();
        assert_eq!(waiter.get(), Ok(vec![0]));
        // The other event stays unset: iwait reports the one that woke it, then times out.
        assert_eq!(iwaiter.get(), Ok(vec![Ok(1)]));
        assert_eq!(now().as_nanos(), 50_000_000);
    });
}

#[test]
fn a_semaphore_can_be_waited_on_without_taking_a_permit() {
    sim::run(|| {
        let sem = Rc::new(Semaphore::new(1));
        assert_eq!(wait(&[&*sem as &dyn Waitable], None, None), Ok(vec![0]), "free now");
        assert_eq!(sem.available(), 1, "waiting took nothing");

        sem.acquire().unwrap().forget();
        let s = sem.clone();
        let releaser = spawn(move || {
            sleep(10 * MS).unwrap();
            s.release();
        });
        let never = Event::new();
        assert_eq!(wait(&[&never as &dyn Waitable, &*sem], Some(1), None), Ok(vec![1]));
        assert_eq!(now().as_nanos(), 10_000_000);
        assert_eq!(sem.available(), 1);
        releaser.join().unwrap();

        // A permit released to a greenlet waiting in acquire is not free: the watcher waits on.
        let held = sem.acquire().unwrap();
        let s = sem.clone();
        let acquirer = spawn(move || s.acquire().map(|g| g.forget()));
        yield_now().unwrap();
        drop(held);
        assert_eq!(wait(&[&*sem as &dyn Waitable], None, Some(5 * MS)), Ok(vec![]));
        assert_eq!(acquirer.get(), Ok(()));
        sem.release();

        // A bounded semaphore too; a permit taken by another greenlet before the watcher runs
        // was free when it woke the watcher, which reports it.
        let bounded = Rc::new(BoundedSemaphore::new(1));
        let held = bounded.acquire().unwrap();
        let b = bounded.clone();
        let watcher = spawn(move || wait(&[&*b as &dyn Waitable], None, None));
        yield_now().unwrap();
        drop(held);
        let grabbed = bounded.try_acquire().unwrap();
        assert_eq!(watcher.get(), Ok(vec![0]));
        drop(grabbed);
    });
}

static COUNTER: Local<u32> = Local::new(|| 0);

struct Noisy(Rc<std::cell::Cell<u32>>);
impl Drop for Noisy {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

thread_local! {
    static DROPS: Rc<std::cell::Cell<u32>> = Rc::new(std::cell::Cell::new(0));
}

static NOISY: Local<Option<Noisy>> = Local::new(|| None);

#[test]
fn local_values_are_distinct_per_greenlet_and_dropped_when_it_ends() {
    sim::run(|| {
        COUNTER.set(100);
        let workers: Vec<_> = (1..=3)
            .map(|i| {
                spawn(move || {
                    for _ in 0..i {
                        COUNTER.with(|c| *c += 1);
                        sleep(MS).unwrap();
                    }
                    NOISY.set(Some(Noisy(DROPS.with(Rc::clone))));
                    COUNTER.get()
                })
            })
            .collect();
        joinall(&workers).unwrap();
        let counts: Vec<u32> = workers.iter().map(|w| w.get().unwrap()).collect();
        assert_eq!(counts, [1, 2, 3], "each greenlet counted from its own 0");
        assert_eq!(COUNTER.get(), 100, "the main greenlet's value is untouched");
        assert_eq!(DROPS.with(|d| d.get()), 3, "each greenlet's value was dropped at its end");
    });
}

static LENT: Local<u32> = Local::new(|| 0);

/// The message of a caught panic.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[test]
fn a_local_has_one_value_even_when_reached_again_inside_with() {
    sim::run(|| {
        // `set` inside `with` on the same slot is refused: the value stays the one `with`
        // lent out, with the changes made through it.
        let set_inside = catch_unwind(AssertUnwindSafe(|| {
            LENT.with(|v| {
                *v = 1;
                LENT.set(2);
            })
        }));
        let why = message(set_inside.expect_err("set inside with panics"));
        assert!(why.contains("Local::set called inside Local::with"), "{why}");
        let reads: Vec<u32> = (0..4).map(|_| LENT.get()).collect();
        assert_eq!(reads, [1, 1, 1, 1], "one value, no alternation");

        // A nested `with` (or `get`) is refused too, and the outer `with` goes on with its value.
        LENT.with(|v| {
            *v = 5;
            let nested = catch_unwind(|| LENT.get());
            let why = message(nested.expect_err("a nested get panics"));
            assert!(why.contains("inside Local::with"), "{why}");
            *v += 1;
        });
        assert_eq!(LENT.get(), 6);

        // A closure that panics inside `with` leaves the value in place.
        let failed = catch_unwind(AssertUnwindSafe(|| {
            LENT.with(|v| {
                *v = 7;
                panic!("the closure failed");
            })
        }));
        assert!(failed.is_err());
        assert_eq!(LENT.get(), 7);
        LENT.set(8);
        assert_eq!((LENT.get(), LENT.get()), (8, 8));

        // Another greenlet reaches its own value while this one is inside `with`.
        LENT.with(|v| {
            let other = spawn(|| {
                LENT.set(40);
                LENT.get()
            });
            assert_eq!(other.get(), Ok(40));
            *v += 1;
        });
        assert_eq!(LENT.get(), 9);
    });
}
