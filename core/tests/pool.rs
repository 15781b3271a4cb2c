//! Group, Pool and scope (gevent's test__pool) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::pool::{Group, Pool, ScopeError, scope};
use gevent_core::{FailureKind, GetError, Interrupted, now, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_pool_of_2_never_runs_more_than_2_and_its_spawn_blocks() {
    sim::run(|| {
        let pool = Pool::new(2);
        let running = Rc::new(Cell::new(0));
        let most = Rc::new(Cell::new(0));
        let mut spawned_at = Vec::new();
        for _ in 0..5 {
            let (running, most) = (running.clone(), most.clone());
            pool.spawn(move || {
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                sleep(10 * MS).unwrap();
                running.set(running.get() - 1);
            })
            .unwrap();
            spawned_at.push(now().as_nanos() / 1_000_000);
        }
        // The third spawn waited for a slot (10 ms), the fifth for another (20 ms).
        assert_eq!(spawned_at, [0, 0, 10, 10, 20]);
        pool.join().unwrap();
        assert_eq!(most.get(), 2);
        assert_eq!(pool.free_count(), 2);
        assert!(pool.is_empty());
    });
}

#[test]
fn a_pool_keeps_its_bound_when_members_are_killed_or_panic() {
    sim::run(|| {
        let pool = Pool::new(3);
        let sleeper = pool.spawn(|| sleep(Duration::from_secs(60))).unwrap();
        let panicker = pool.spawn(|| -> () { panic!("member panics") }).unwrap();
        let unstarted = pool.spawn(|| ()).unwrap();
        assert_eq!(pool.free_count(), 0);
        unstarted.kill().unwrap(); // killed before it ran: its slot comes back
        assert_eq!(pool.free_count(), 1);
        sleeper.kill().unwrap();
        panicker.join().unwrap();
        assert!(
            matches!(panicker.get(), Err(GetError::Failed(e)) if matches!(e.kind, FailureKind::Panicked(_)))
        );
        assert_eq!(pool.free_count(), 3);
        assert_eq!(pool.apply(|| 6 * 7), Ok(42));
    });
}

#[test]
fn imap_keeps_input_order_and_imap_unordered_yields_in_completion_order() {
    sim::run(|| {
        let pool = Pool::new(4);
        let delays = [40u32, 10, 30, 20];
        let nap = |ms: u32| {
            sleep(ms * MS).unwrap();
            ms
        };
        let ordered: Vec<u32> = pool.imap(nap, delays).map(Result::unwrap).collect();
        assert_eq!(ordered, [40, 10, 30, 20]);
        let unordered: Vec<u32> = pool.imap_unordered(nap, delays).map(Result::unwrap).collect();
        assert_eq!(unordered, [10, 20, 30, 40]);
        assert_eq!(pool.map(|x: u64| x + 1, [1, 2, 3]), Ok(vec![2, 3, 4]));
    });
}

#[test]
fn imap_reads_its_input_lazily() {
    sim::run(|| {
        let pool = Pool::new(2);
        let taken = Rc::new(Cell::new(0));
        let t = taken.clone();
        let input = (0..100).inspect(move |_| t.set(t.get() + 1));
        let mut results = pool.imap(|x: i32| x * 2, input);
        assert_eq!(results.next(), Some(Ok(0)));
        assert!(taken.get() <= 3, "only as many items as slots were taken: {}", taken.get());
    });
}

#[test]
fn a_group_joins_kills_and_forgets_finished_members() {
    sim::run(|| {
        let group = Group::new();
        let quick = group.spawn(|| sleep(5 * MS));
        let slow = group.spawn(|| sleep(Duration::from_secs(60)));
        let outside = spawn(|| sleep(MS));
        group.add(&outside);
        assert_eq!(group.len(), 3);
        group.discard(&outside);
        assert!(!group.contains(&outside) && group.contains(&slow));
        assert_eq!(group.join_timeout(10 * MS), Ok(false));
        assert!(quick.ready());
        assert_eq!(group.len(), 1, "finished members leave");
        group.kill().unwrap();
        assert!(slow.ready() && group.is_empty());
        assert_eq!(group.join(), Ok(()));
    });
}

#[test]
fn a_scope_joins_its_children_and_passes_the_first_error_up() {
    sim::run(|| {
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        let ok: Result<u8, ScopeError<&str>> = scope(|s| {
            for ms in [5, 15, 10] {
                let d = d.clone();
                s.spawn(move || {
                    sleep(ms * MS).map_err(|_| "killed")?;
                    d.set(d.get() + 1);
                    Ok(())
                });
            }
            Ok(7)
        });
        assert_eq!(ok, Ok(7));
        assert_eq!(done.get(), 3, "every child was joined");

        let killed = Rc::new(Cell::new(false));
        let k = killed.clone();
        let failed: Result<(), ScopeError<&str>> = scope(|s| {
            s.spawn(|| {
                sleep(5 * MS).map_err(|_| "killed")?;
                Err("first")
            });
            s.spawn(move || {
                let r = sleep(Duration::from_secs(60));
                k.set(r == Err(Interrupted::Killed));
                Ok(())
            });
            Ok(())
        });
        assert_eq!(failed, Err(ScopeError::Failed("first")));
        assert!(killed.get(), "the sibling was killed");
        assert_eq!(now().as_nanos(), 20_000_000, "it ended at the failure, not after 60 s");

        let body_error: Result<(), ScopeError<&str>> = scope(|s| {
            let child = s.spawn(|| sleep(Duration::from_secs(60)).map_err(|_| "killed"));
            yield_now().unwrap();
            assert!(child.started());
            Err("body gave up")
        });
        assert_eq!(body_error, Err(ScopeError::Failed("body gave up")));
    });
}

#[test]
fn a_panicking_child_fails_its_scope() {
    sim::run(|| {
        let result: Result<(), ScopeError<()>> = scope(|s| {
            s.spawn(|| panic!("child panics"));
            Ok(())
        });
        match result {
            Err(ScopeError::Child(e)) => {
                assert_eq!(e.kind, FailureKind::Panicked("child panics".into()))
            }
            other => panic!("expected the child's panic, got {other:?}"),
        }
    });
}
