//! The hub as far as it goes without a context switch, for Miri (which cannot run corosensei's
//! inline assembly): installing a simulated hub and freeing it at thread exit, timers and
//! `Timeout`s armed, expired and cancelled while the main greenlet waits (the hub loop runs on
//! main's own stack), greenlets that are spawned and killed before they start, work posted from
//! another thread, and `LoopExit`. Each test runs on a thread of its own, so that its hub is
//! freed when that thread exits, where Miri checks the frees and reports leaks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
use gevent_core::event::Event;
use gevent_core::hub;
use gevent_core::{Interrupted, Timeout, hub_handle, now, sim, sleep, spawn, spawn_later};
use gevent_core::{with_timeout, yield_now};

const MS: Duration = Duration::from_millis(1);

/// Runs `f` on a new thread and waits for it, the thread's hub included, to end.
fn on_a_new_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().expect("the test thread panicked")
}

/// Counts the drops of the values it hands out.
#[derive(Clone, Default)]
struct DropCounter(Rc<Cell<u32>>);

struct Counted(DropCounter);

impl Drop for Counted {
    fn drop(&mut self) {
        let count = &(self.0).0;
        count.set(count.get() + 1);
    }
}

impl DropCounter {
    fn value(&self) -> Counted {
        Counted(self.clone())
    }

    fn dropped(&self) -> u32 {
        self.0.get()
    }
}

// Before the fix, the hub was reached through a pointer taken from its `Box` before the box was
// moved into a thread-local, which Miri reported as undefined behaviour on the first use.
#[test]
fn a_hub_is_installed_used_and_freed_at_thread_exit() {
    on_a_new_thread(|| {
        assert_eq!(hub::install(sim::platform().0), Ok(()));
        let again = hub::install(sim::platform().0).unwrap_err();
        assert_eq!(again.to_string(), "a hub is already installed on this thread");
        let start = now();
        yield_now().unwrap(); // main alone in the run queue: straight back
        assert_eq!(now(), start);
    });
}

#[test]
fn the_main_greenlet_sleeps_on_timers_and_timeouts_expire_or_are_cancelled() {
    on_a_new_thread(|| {
        sim::run(|| {
            let start = now();
            sleep(10 * MS).unwrap();
            assert_eq!(now() - start, 10 * MS);

            let timeout = Timeout::start(5 * MS);
            let error = sleep(Duration::from_secs(1)).unwrap_err();
            assert!(timeout.is(&error), "{error:?}");
            assert_eq!(now() - start, 15 * MS);
            drop(timeout);

            let cancelled = Timeout::start(5 * MS);
            cancelled.cancel();
            sleep(10 * MS).unwrap();
            assert_eq!(now() - start, 25 * MS);

            let outcome = with_timeout(5 * MS, || sleep(Duration::from_secs(1)));
            assert!(matches!(outcome, Err(Interrupted::TimedOut(_))), "{outcome:?}");
            assert_eq!(now() - start, 30 * MS);
        })
    });
}

#[test]
fn greenlets_that_never_started_end_without_running_and_their_closures_are_dropped() {
    let dropped = on_a_new_thread(|| {
        let drops = DropCounter::default();
        let ran = Rc::new(Cell::new(false));
        sim::run(|| {
            let body = |value: Counted, ran: Rc<Cell<bool>>| {
                move || {
                    let _value = value;
                    ran.set(true);
                }
            };
            let killed = spawn(body(drops.value(), ran.clone()));
            let left = spawn(body(drops.value(), ran.clone()));
            let later = spawn_later(Duration::from_secs(60), body(drops.value(), ran.clone()));
            let detached = spawn(body(drops.value(), ran.clone()));
            drop(detached);

            killed.kill().unwrap();
            assert!(killed.dead() && !killed.started() && killed.is_killed());
            assert_eq!(drops.dropped(), 1, "a kill before the start drops the closure");

            hub::shutdown();
            for g in [&left, &later] {
                assert!(g.dead() && !g.started() && g.is_killed());
            }
            assert_eq!(drops.dropped(), 4);
        });
        assert!(!ran.get(), "no greenlet ran");
        drops.dropped()
    });
    assert_eq!(dropped, 4);
}

#[test]
fn work_posted_from_another_thread_and_never_run_is_dropped_with_the_hub() {
    let job_value = Arc::new(());
    let in_job = job_value.clone();
    let handle = on_a_new_thread(move || {
        sim::run(|| {
            let handle = hub_handle();
            let poster = handle.clone();
            std::thread::spawn(move || {
                poster.post(move || drop(in_job)).unwrap();
                let promised = poster.pending_post();
                drop(promised); // a promise withdrawn
            })
            .join()
            .unwrap();
            handle
        })
    });
    assert_eq!(Arc::strong_count(&job_value), 1, "the unrun job was dropped with its hub");
    assert!(handle.post(|| ()).is_err(), "the hub is gone");
}

#[test]
fn the_main_greenlet_waiting_on_what_nothing_can_bring_gets_loop_exit() {
    on_a_new_thread(|| {
        sim::run(|| {
            let never = Event::new();
            let error = never.wait().unwrap_err();
            assert!(matches!(error, Interrupted::LoopExit(_)), "{error:?}");
            // A pending timer is something that can come.
            let _later = spawn_later(5 * MS, || ());
            assert_eq!(never.wait_timeout(MS), Ok(false));
        })
    });
}

#[test]
fn run_returns_the_value_of_its_function_and_ends_the_greenlets_left() {
    on_a_new_thread(|| {
        hub::install(sim::platform().0).unwrap();
        let drops = DropCounter::default();
        let value = drops.value();
        let (left, answer) = hub::run(|| (spawn(move || drop(value)), 42));
        assert_eq!(answer, 42);
        assert!(left.dead() && left.is_killed());
        assert_eq!(drops.dropped(), 1);
    });
}
