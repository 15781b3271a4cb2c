//! Locks and `AsyncResult` (gevent's test__semaphore, test__lock, test__event) on the
//! simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::{AsyncError, AsyncResult};
use gevent_core::lock::{BoundedSemaphore, DummySemaphore, Mutex, RLock, ReleaseError, Semaphore};
use gevent_core::{Interrupted, Timeout, joinall, now, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_semaphore_never_lets_more_than_its_count_in_and_serves_waiters_in_order() {
    sim::run(|| {
        let sem = Rc::new(Semaphore::new(2));
        let inside = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let order = Rc::new(RefCell::new(Vec::new()));
        let workers: Vec<_> = (0..6)
            .map(|i| {
                let (sem, inside, most, order) =
                    (sem.clone(), inside.clone(), most.clone(), order.clone());
                spawn(move || {
                    let _permit = sem.acquire().unwrap();
                    order.borrow_mut().push(i);
                    inside.set(inside.get() + 1);
                    most.set(most.get().max(inside.get()));
                    sleep(10 * MS).unwrap();
                    inside.set(inside.get() - 1);
                })
            })
            .collect();
        joinall(&workers).unwrap();
        assert_eq!(most.get(), 2);
        assert_eq!(*order.borrow(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(now().as_nanos(), 30_000_000);
        assert_eq!(sem.available(), 2);
    });
}

#[test]
fn killing_a_greenlet_blocked_on_acquire_leaves_the_count_unchanged() {
    sim::run(|| {
        let sem = Rc::new(Semaphore::new(1));
        let held = sem.acquire().unwrap();
        let s = sem.clone();
        let blocked = spawn(move || s.acquire().map(|g| g.forget()));
        yield_now().unwrap();
        blocked.kill().unwrap();
        assert_eq!(sem.available(), 0);
        drop(held);
        assert_eq!(sem.available(), 1);

        // Killed after the released permit was reserved for it: the permit is passed on.
        let held = sem.acquire().unwrap();
        let (s1, s2) = (sem.clone(), sem.clone());
        let first = spawn(move || s1.acquire().map(|g| g.forget()));
        let second = spawn(move || s2.acquire().map(|g| g.forget()));
        yield_now().unwrap();
        first.kill_nowait();
        drop(held);
        joinall([&first, &second]).unwrap();
        assert!(first.killed() && first.error().is_none());
        assert_eq!(second.get(), Ok(()));
        assert_eq!(sem.available(), 0, "the second holds the only permit");
        sem.release();
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn acquire_timeout_gives_up_and_a_timeout_interrupts_acquire() {
    sim::run(|| {
        let sem = Semaphore::new(0);
        assert!(sem.locked());
        assert!(sem.acquire_timeout(5 * MS).unwrap().is_none());
        let t = Timeout::start(5 * MS);
        assert_eq!(sem.acquire().unwrap_err(), Interrupted::TimedOut(t.id()));
        assert_eq!(sem.available(), 0);
    });
}

#[test]
fn a_bounded_semaphore_refuses_to_be_released_above_its_start() {
    sim::run(|| {
        let sem = BoundedSemaphore::new(1);
        assert!(sem.release().is_err(), "nothing was acquired");
        sem.acquire().unwrap().forget();
        assert_eq!(sem.release(), Ok(()));
        assert!(sem.release().is_err());
        assert_eq!(sem.available(), 1);
        let _g = DummySemaphore::new().acquire().unwrap();
    });
}

#[test]
fn an_rlock_is_reentrant_for_its_owner_only() {
    sim::run(|| {
        let lock = Rc::new(RLock::new());
        let outer = lock.acquire().unwrap();
        let inner = lock.acquire().unwrap();
        let l = lock.clone();
        let other = spawn(move || {
            let not_mine = l.release().is_err();
            let got = l.acquire().map(|g| g.forget()).is_ok();
            (not_mine, got, now())
        });
        sleep(5 * MS).unwrap();
        assert!(!other.ready(), "the other greenlet waits for the lock");
        drop(inner);
        sleep(5 * MS).unwrap();
        assert!(!other.ready(), "still held once");
        drop(outer);
        let (not_mine, got, at) = other.get().unwrap();
        assert!(not_mine && got);
        assert_eq!(at.as_nanos(), 10_000_000);
        assert!(lock.locked());
        assert!(lock.release().is_err(), "main does not hold it");
    });
}

#[test]
fn a_mutex_gives_one_greenlet_at_a_time_its_value() {
    sim::run(|| {
        let counter = Rc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let c = counter.clone();
                spawn(move || {
                    for _ in 0..2 {
                        let mut v = c.lock().unwrap();
                        v.push(i);
                        yield_now().unwrap(); // holding the lock across a switch
                        v.push(i);
                    }
                })
            })
            .collect();
        joinall(&workers).unwrap();
        let v = counter.lock().unwrap().clone();
        assert_eq!(v.len(), 12);
        for pair in v.chunks(2) {
            assert_eq!(pair[0], pair[1], "no interleaving inside the lock: {v:?}");
        }
        let guard = counter.lock().unwrap();
        assert!(counter.try_lock().is_none() && counter.is_locked());
        assert!(counter.lock_timeout(MS).unwrap().is_none());
        drop(guard);
    });
}

#[test]
fn every_async_result_waiter_gets_the_outcome() {
    sim::run(|| {
        let result: Rc<AsyncResult<String, u8>> = Rc::new(AsyncResult::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let r = result.clone();
                spawn(move || r.get())
            })
            .collect();
        sleep(MS).unwrap();
        assert!(!result.ready());
        result.set("done".into()).unwrap();
        for w in &waiters {
            assert_eq!(w.get(), Ok(Ok("done".to_string())));
        }
        assert!(result.successful());
        assert!(result.set_error(1).is_err());

        let failed: AsyncResult<(), &str> = AsyncResult::new();
        assert_eq!(failed.get_timeout(MS), None);
        failed.set_error("bad").unwrap();
        assert_eq!(failed.get(), Err(AsyncError::Failed("bad")));
        assert!(failed.ready() && !failed.successful());
    });
}

#[test]
fn an_rlock_level_held_by_a_guard_cannot_be_released_by_hand() {
    sim::run(|| {
        let lock = RLock::new();
        let guard = lock.acquire().unwrap();
        let released = lock.release();
        drop(guard); // used to underflow the depth here (a panic in debug; in release, never free)
        assert_eq!(released, Err(ReleaseError::NoForgottenLevel));
        assert!(!lock.locked());

        // Forgotten levels are released by hand, one each; the guarded ones by their guards.
        let outer = lock.acquire().unwrap();
        lock.acquire().unwrap().forget();
        assert_eq!(lock.release(), Ok(()));
        assert_eq!(lock.release(), Err(ReleaseError::NoForgottenLevel));
        assert!(lock.locked());
        drop(outer);
        assert!(!lock.locked());
        assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
        assert!(ReleaseError::NoForgottenLevel.to_string().contains("guard"));
    });
}

#[test]
fn rlock_try_acquire_and_acquire_timeout() {
    sim::run(|| {
        let lock = Rc::new(RLock::new());
        let outer = lock.try_acquire().expect("free");
        let inner = lock.try_acquire().expect("the owner takes it again");
        let inner_timed = lock.acquire_timeout(5 * MS).unwrap().expect("at once for the owner");
        assert_eq!(now().as_nanos(), 0);
        let l = lock.clone();
        let other = spawn(move || {
            let tried = l.try_acquire().is_some();
            let timed_out = l.acquire_timeout(5 * MS).unwrap().is_none();
            let at = now();
            let got = l.acquire_timeout(50 * MS).unwrap().is_some();
            (tried, timed_out, at, got, now())
        });
        sleep(20 * MS).unwrap();
        drop((inner_timed, inner));
        assert!(lock.locked());
        drop(outer);
        let (tried, timed_out, at, got, got_at) = other.get().unwrap();
        assert!(!tried && timed_out && got);
        assert_eq!((at.as_nanos(), got_at.as_nanos()), (5_000_000, 20_000_000));
        assert!(!lock.locked());

        // Interrupted while it waits: the lock is untouched.
        let held = lock.acquire().unwrap();
        let l = lock.clone();
        let waiter = spawn(move || l.acquire().map(|g| g.forget()));
        yield_now().unwrap();
        waiter.kill().unwrap();
        drop(held);
        assert!(!lock.locked());
    });
}

#[test]
fn a_bounded_semaphore_keeps_its_bound_while_guards_are_out() {
    sim::run(|| {
        let sem = BoundedSemaphore::new(1);
        let guard = sem.acquire().unwrap();
        assert!(sem.release().is_err(), "the guard holds it: releasing by hand is one too many");
        drop(guard);
        assert_eq!(sem.available(), 1, "never above the bound");
        assert!(sem.try_acquire().is_some());
        let timed = sem.acquire_timeout(MS).unwrap().expect("free");
        assert!(sem.locked());
        assert!(sem.acquire_timeout(MS).unwrap().is_none());
        timed.forget();
        assert_eq!(sem.release(), Ok(()));
        assert!(sem.release().is_err());
        assert_eq!(sem.available(), 1);
    });
}

#[test]
fn a_permit_released_after_a_hub_shutdown_goes_to_a_live_waiter_not_an_abandoned_one() {
    sim::run(|| {
        let semaphore = Rc::new(Semaphore::new(0));
        let s = semaphore.clone();
        // Ignores every kill, so the shutdown abandons it while it is first in line.
        let stuck = spawn(move || {
            loop {
                let _ = gevent_core::shield(|| s.acquire().map(std::mem::forget));
            }
        });
        yield_now().unwrap();
        gevent_core::hub::shutdown();
        assert!(stuck.ready(), "abandoned");
        let s = semaphore.clone();
        let live = spawn(move || s.acquire().map(std::mem::forget));
        yield_now().unwrap();
        semaphore.release();
        assert_eq!(live.join_timeout(Duration::from_secs(1)), Ok(true), "the permit reached it");
    });
}
