//! `wait`/`iwait` over mixed objects and greenlet-local storage (gevent's test__joinall,
//! test__local) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::{AsyncResult, Event};
use gevent_core::local::Local;
use gevent_core::wait::{Waitable, iwait, wait};
use gevent_core::{Interrupted, Timeout, joinall, now, sim, sleep, spawn};

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
