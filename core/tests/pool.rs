//! Group and Pool (gevent's test__pool) on the simulated hub. Scopes are in `scope.rs`.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::pool::{AddError, Group, Pool, PoolFull};
use gevent_core::queue::Queue;
use gevent_core::{
    FailureKind, GetError, Interrupted, current, now, shield, sim, sleep, spawn, yield_now,
};

const MS: Duration = Duration::from_millis(1);

fn ms_now() -> u64 {
    now().as_nanos() / 1_000_000
}

// --- Group ------------------------------------------------------------------------------------

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
fn members_leave_however_they_end() {
    sim::run(|| {
        let group = Group::new();
        let unstarted = group.spawn(|| ());
        let panicker = group.spawn(|| -> () { panic!("member panics") });
        let added = spawn(|| sleep(5 * MS));
        group.add(&added);
        group.add(&added); // a member already: nothing changes
        assert_eq!(group.len(), 3);
        unstarted.kill().unwrap();
        assert_eq!(group.len(), 2, "killed before it started: it left at once");
        panicker.join().unwrap();
        assert_eq!(group.len(), 1, "the panicking member left");
        group.join().unwrap();
        assert!(group.is_empty() && added.ready(), "the added greenlet left when it finished");
        group.add(&added); // finished: not added
        assert!(group.is_empty());
    });
}

#[test]
fn join_waits_for_members_added_meanwhile() {
    sim::run(|| {
        let group = Rc::new(Group::new());
        let g = group.clone();
        group.spawn(move || {
            sleep(10 * MS).unwrap();
            g.spawn(|| sleep(20 * MS));
        });
        group.join().unwrap();
        assert_eq!(ms_now(), 30, "the late member was waited for");
    });
}

#[test]
fn a_member_joining_its_own_group_fails_at_once_instead_of_hanging() {
    sim::run(|| {
        let group = Rc::new(Group::new());
        let g = group.clone();
        let member = group.spawn(move || (g.join(), g.join_timeout(Duration::from_secs(1))));
        let (join, join_timeout) = member.take().expect("the member returned");
        assert!(matches!(join, Err(Interrupted::Deadlock(_))), "{join:?}");
        assert!(matches!(join_timeout, Err(Interrupted::Deadlock(_))), "{join_timeout:?}");
        assert_eq!(ms_now(), 0, "neither waited");
    });
}

#[test]
fn kill_timeout_stops_waiting_for_a_member_that_ignores_its_kill() {
    sim::run(|| {
        let group = Group::new();
        let stubborn = group.spawn(|| shield(|| sleep(50 * MS)));
        let meek = group.spawn(|| sleep(Duration::from_secs(60)));
        yield_now().unwrap();
        assert_eq!(group.kill_timeout(10 * MS), Ok(false));
        assert_eq!(ms_now(), 10);
        assert!(meek.ready() && !stubborn.ready());
        assert_eq!(group.kill_timeout(Duration::from_secs(1)), Ok(true));
        assert_eq!(ms_now(), 50, "it returned when the shielded sleep ended");
        assert!(group.is_empty());
    });
}

#[test]
fn members_added_while_the_group_is_killed_are_killed_too() {
    sim::run(|| {
        let group = Rc::new(Group::new());
        let late = Rc::new(RefCell::new(None));
        let (g, l) = (group.clone(), late.clone());
        group.spawn(move || {
            let killed = sleep(Duration::from_secs(60));
            // Dying, it starts a replacement.
            *l.borrow_mut() = Some(g.spawn(|| sleep(Duration::from_secs(60))));
            killed
        });
        yield_now().unwrap();
        group.kill().unwrap();
        let late = late.borrow_mut().take().expect("the replacement was spawned");
        assert!(late.ready(), "the replacement was killed");
        assert_eq!(ms_now(), 0, "nobody slept");
    });
}

#[test]
fn a_member_killing_its_group_kills_the_others_then_itself() {
    sim::run(|| {
        let group = Rc::new(Group::new());
        let other = group.spawn(|| sleep(Duration::from_secs(60)));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (g, s) = (group.clone(), seen.clone());
        let killer = group.spawn(move || {
            s.borrow_mut().push(g.kill());
            s.borrow_mut().push(sleep(MS));
        });
        killer.join().unwrap();
        let seen = seen.borrow();
        let [kill, next_sleep] = &seen[..] else { panic!("{seen:?}") };
        assert_eq!(*kill, Ok(()), "it did not wait for itself");
        assert!(other.ready());
        assert_eq!(*next_sleep, Err(Interrupted::Killed), "then its own kill arrived");
    });
}

#[test]
fn a_group_of_many_members_empties_as_they_finish() {
    sim::run(|| {
        let group = Group::new();
        let n = 10_000;
        let sum = Rc::new(Cell::new(0u64));
        for i in 0..n {
            let sum = sum.clone();
            group.spawn(move || sum.set(sum.get() + i));
        }
        assert_eq!(group.len(), n as usize);
        let probe = group.spawn(|| sleep(MS));
        assert!(group.contains(&probe));
        group.join().unwrap();
        assert_eq!(sum.get(), n * (n - 1) / 2);
        assert!(group.is_empty() && !group.contains(&probe));
    });
}

// --- Pool -------------------------------------------------------------------------------------

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
            spawned_at.push(ms_now());
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
        let panicked = |e: &GetError| matches!(e, GetError::Failed(e) if matches!(e.kind, FailureKind::Panicked(_)));
        assert!(panicker.get().is_err_and(|e| panicked(&e)));
        assert_eq!(pool.free_count(), 3);
        assert_eq!(pool.apply(|| 6 * 7), Ok(42));
    });
}

#[test]
fn add_takes_a_slot_waiting_while_the_pool_is_full() {
    sim::run(|| {
        let pool = Pool::new(1);
        let first = spawn(|| sleep(10 * MS));
        let second = spawn(|| sleep(30 * MS));
        pool.add(&first).unwrap();
        assert!(pool.full() && pool.contains(&first));
        pool.add(&first).unwrap(); // a member already: takes no second slot
        pool.add(&second).unwrap();
        assert_eq!(ms_now(), 10, "waited until the first member freed its slot");
        assert!(pool.contains(&second) && !pool.contains(&first));
        pool.join().unwrap();
        assert_eq!(pool.free_count(), 1, "the added greenlet gave its slot back");
    });
}

#[test]
fn try_add_and_add_timeout_fail_with_pool_full() {
    sim::run(|| {
        let pool = Pool::new(1);
        pool.spawn(|| sleep(20 * MS)).unwrap();
        let waiting = spawn(|| sleep(MS));
        let full: Result<(), PoolFull> = pool.try_add(&waiting);
        assert_eq!(full.map_err(|e| e.size()), Err(1));
        let full = pool.add_timeout(&waiting, 5 * MS);
        assert!(matches!(full, Err(AddError::Full(e)) if e.size() == 1), "{full:?}");
        assert_eq!(ms_now(), 5);
        assert!(!pool.contains(&waiting));
        let late = spawn(|| sleep(MS));
        assert_eq!(pool.add_timeout(&late, 50 * MS), Ok(()));
        assert_eq!(ms_now(), 20, "added as soon as the slot came free");
        assert_eq!(full.unwrap_err().to_string(), "the pool is full: all 1 of its slots are taken");
    });
}

#[test]
fn discard_frees_the_slot_of_a_running_member() {
    sim::run(|| {
        let pool = Pool::new(1);
        let member = pool.spawn(|| sleep(Duration::from_secs(60))).unwrap();
        assert!(pool.full());
        pool.discard(&member);
        assert!(!pool.full() && !pool.contains(&member));
        let next = pool.spawn(|| 1).unwrap();
        assert_eq!(ms_now(), 0, "the spawn did not wait for the discarded member");
        assert_eq!(next.get(), Ok(1));
        member.kill().unwrap();
        assert_eq!(pool.free_count(), 1, "the discarded member's end frees nothing twice");
    });
}

#[test]
fn apply_from_a_member_runs_directly_instead_of_deadlocking() {
    sim::run(|| {
        let pool = Rc::new(Pool::new(1));
        let p = pool.clone();
        let inner = pool.apply(move || {
            let me = current();
            p.apply(move || current() == me)
        });
        assert_eq!(inner, Ok(Ok(true)), "the inner function ran in the member itself");
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

/// An input that yields what a queue receives, blocking while it is empty.
fn queue_input(queue: &Rc<Queue<u32>>) -> impl Iterator<Item = u32> + 'static {
    let queue = queue.clone();
    std::iter::from_fn(move || queue.get().ok())
}

#[test]
fn imap_hands_out_a_result_while_its_input_blocks() {
    sim::run(|| {
        for ordered in [true, false] {
            let pool = Pool::new(4);
            let queue = Rc::new(Queue::new());
            queue.try_put(1).unwrap();
            let q = queue.clone();
            let producer = spawn(move || {
                sleep(100 * MS).unwrap();
                q.try_put(2).unwrap();
                q.close();
            });
            let start = ms_now();
            let double = |x: u32| 2 * x;
            let mut results: Box<dyn Iterator<Item = Result<u32, GetError>>> = if ordered {
                Box::new(pool.imap(double, queue_input(&queue)))
            } else {
                Box::new(pool.imap_unordered(double, queue_input(&queue)))
            };
            assert_eq!(results.next(), Some(Ok(2)));
            assert_eq!(ms_now(), start, "the first result came while the input waited");
            assert_eq!(results.next(), Some(Ok(4)));
            assert_eq!(ms_now(), start + 100);
            assert_eq!(results.next(), None);
            producer.join().unwrap();
        }
    });
}

#[test]
fn a_bounded_imap_holds_at_most_maxsize_results() {
    sim::run(|| {
        for ordered in [true, false] {
            let pool = Pool::new(10);
            let pulled = Rc::new(Cell::new(0));
            let p = pulled.clone();
            let input = (0..20).inspect(move |_| p.set(p.get() + 1));
            let mut results: Box<dyn Iterator<Item = Result<i32, GetError>>> = if ordered {
                Box::new(pool.imap_bounded(|x: i32| x * 10, input, 3))
            } else {
                Box::new(pool.imap_unordered_bounded(|x: i32| x * 10, input, 3))
            };
            sleep(50 * MS).unwrap(); // a slow reader
            assert_eq!(pulled.get(), 3, "3 results held, no more input pulled");
            assert_eq!(pool.len(), 0, "they are finished and wait for the reader");
            assert_eq!(results.next(), Some(Ok(0)));
            yield_now().unwrap();
            assert_eq!(pulled.get(), 4, "one handed out, one more pulled");
            let rest: Vec<i32> = results.map(Result::unwrap).collect();
            assert_eq!(rest.len(), 19);
            assert_eq!(pulled.get(), 20);
        }
    });
}

#[test]
fn an_unbounded_imap_pulls_input_only_as_slots_free_up() {
    sim::run(|| {
        let pool = Pool::new(2);
        let pulled = Rc::new(Cell::new(0));
        let p = pulled.clone();
        let input = (0..100).inspect(move |_| p.set(p.get() + 1));
        let mut results = pool.imap(
            |x: i32| {
                sleep(10 * MS).unwrap();
                x * 2
            },
            input,
        );
        assert_eq!(results.next(), Some(Ok(0)));
        // At most: the slots filled twice (the first two members finish together) and one item
        // waiting for a slot. The input is pulled as the pool allows, not all at once.
        assert!(pulled.get() <= 2 * pool.size() + 1, "{} items pulled", pulled.get());
    });
}

#[test]
fn dropping_an_imap_stops_its_input() {
    sim::run(|| {
        let pool = Pool::new(2);
        let pulled = Rc::new(Cell::new(0));
        let p = pulled.clone();
        let input = (0..100).inspect(move |_| p.set(p.get() + 1));
        let mut results = pool.imap(|x: i32| x, input);
        assert_eq!(results.next(), Some(Ok(0)));
        drop(results);
        let before = pulled.get();
        sleep(10 * MS).unwrap();
        pool.join().unwrap();
        assert_eq!(pulled.get(), before, "nothing was pulled after the drop");
    });
}

#[test]
fn a_panicking_input_ends_an_imap_with_its_error() {
    sim::run(|| {
        let pool = Pool::new(2);
        let input = (0..3).map(|x| if x == 2 { panic!("input broke") } else { x });
        let results: Vec<_> = pool.imap_unordered(|x: i32| x, input).collect();
        assert_eq!(results.len(), 3, "{results:?}");
        assert!(results[..2].iter().all(Result::is_ok));
        match &results[2] {
            Err(GetError::Failed(e)) => {
                assert_eq!(e.kind, FailureKind::Panicked("input broke".into()));
                assert_eq!(e.name, "imap input");
            }
            other => panic!("expected the input's panic, got {other:?}"),
        }
    });
}

#[test]
fn map_takes_a_function_that_cannot_be_cloned() {
    sim::run(|| {
        let pool = Pool::new(3);
        let offset = Box::new(100); // owned by the function, which is shared, not cloned
        let shifted = pool.map(move |x: i32| x + *offset, 0..3);
        assert_eq!(shifted, Ok(vec![100, 101, 102]));
    });
}
