//! Queues (gevent's `gevent.queue`, after its test__queue) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::queue::{
    Channel, GetError, JoinableQueue, LifoQueue, PriorityQueue, PutError, Queue,
};
use gevent_core::{Greenlet, Interrupted, Timeout, joinall, now, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

/// `n` greenlets, each calling `get` once on its own clone of `source`.
fn spawn_each<S: 'static, T: 'static>(
    n: usize,
    source: &Rc<S>,
    get: fn(&S) -> T,
) -> Vec<Greenlet<T>> {
    (0..n)
        .map(|_| {
            let source = source.clone();
            spawn(move || get(&source))
        })
        .collect()
}

#[test]
fn a_queue_of_maxsize_2_blocks_the_third_put_until_a_get() {
    sim::run(|| {
        let queue = Rc::new(Queue::bounded(2));
        let q = queue.clone();
        let putter = spawn(move || {
            for i in 0..3 {
                q.put(i).unwrap();
            }
            now()
        });
        sleep(10 * MS).unwrap();
        assert!(!putter.ready(), "the third put blocks");
        assert_eq!(queue.len(), 2);
        assert!(queue.is_full());
        assert_eq!(queue.get(), Ok(0));
        assert_eq!(putter.get().unwrap().as_nanos(), 10_000_000, "it went on after the get");
        assert_eq!((queue.get(), queue.get()), (Ok(1), Ok(2)));
    });
}

#[test]
fn try_and_timeout_forms_report_full_and_empty() {
    sim::run(|| {
        let queue = Queue::bounded(1);
        assert_eq!(queue.try_get(), Err(GetError::Empty));
        assert_eq!(queue.get_timeout(5 * MS), Err(GetError::Empty));
        assert_eq!(now().as_nanos(), 5_000_000);
        queue.try_put('a').unwrap();
        assert_eq!(queue.try_put('b'), Err(PutError::Full('b')));
        assert_eq!(queue.put_timeout('c', 5 * MS).unwrap_err().into_item(), 'c');
        assert_eq!(queue.try_peek(), Some('a'));
        assert_eq!(queue.peek(), Ok('a'));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.try_get(), Ok('a'));
    });
}

#[test]
fn getters_are_served_in_arrival_order() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let order = Rc::new(RefCell::new(Vec::new()));
        let getters: Vec<_> = (0..4)
            .map(|i| {
                let (q, order) = (queue.clone(), order.clone());
                spawn(move || {
                    let item = q.get().unwrap();
                    order.borrow_mut().push((i, item));
                })
            })
            .collect();
        yield_now().unwrap();
        for item in ["a", "b", "c", "d"] {
            queue.put(item).unwrap();
        }
        // A greenlet arriving now does not take an item already handed to a waiter.
        assert_eq!(queue.try_get(), Err(GetError::Empty));
        joinall(&getters).unwrap();
        assert_eq!(*order.borrow(), [(0, "a"), (1, "b"), (2, "c"), (3, "d")]);
    });
}

#[test]
fn an_item_put_while_a_getter_waits_is_that_getters_even_if_another_runs_first() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        let waiting = spawn(move || q.get());
        yield_now().unwrap();
        // Queued to run before `waiting` is woken, so it runs first.
        let q = queue.clone();
        let later = spawn(move || q.get());
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        assert_eq!(queue.len(), 1, "the first item went straight to the waiting getter");
        assert_eq!((*later).get(), Ok(Ok(2)));
        assert_eq!((*waiting).get(), Ok(Ok(1)), "the getter that asked first gets the first item");
    });
}

#[test]
fn items_put_past_killed_getters_stay_in_fifo_and_lifo_order() {
    sim::run(|| {
        let fifo = Rc::new(Queue::new());
        let lifo = Rc::new(LifoQueue::new());
        let (f, l) = (fifo.clone(), lifo.clone());
        let getters = [spawn(move || f.get()), spawn(move || l.get())];
        yield_now().unwrap();
        for g in &getters {
            g.kill_nowait();
        }
        // Not delivered to the killed getters, which were woken already: into the queue.
        for i in 1..=3 {
            fifo.put(i).unwrap();
            lifo.put(i).unwrap();
        }
        assert_eq!((fifo.len(), lifo.len()), (3, 3));
        for g in &getters {
            assert_eq!((**g).get(), Ok(Err(GetError::Interrupted(Interrupted::Killed))));
        }
        let fifo_out: Vec<_> = (0..3).map(|_| fifo.get().unwrap()).collect();
        let lifo_out: Vec<_> = (0..3).map(|_| lifo.get().unwrap()).collect();
        assert_eq!(fifo_out, [1, 2, 3], "the oldest item first");
        assert_eq!(lifo_out, [3, 2, 1], "the oldest item last");
    });
}

#[test]
fn a_slot_a_putter_was_given_goes_to_the_next_putter_when_its_item_goes_to_a_getter() {
    sim::run(|| {
        let queue = Rc::new(Queue::bounded(1));
        queue.put(0).unwrap();
        let q = queue.clone();
        let first = spawn(move || q.put(1));
        yield_now().unwrap();
        // The get frees the slot and gives it to `first`, which has not run yet; the getter
        // then waits again, so `first`'s item goes straight to it and takes no slot.
        let q = queue.clone();
        let getter = spawn(move || (q.get().unwrap(), q.get().unwrap()));
        yield_now().unwrap();
        let q = queue.clone();
        let second = spawn(move || q.put(2));
        joinall((&first, &getter, &second)).unwrap();
        assert_eq!(getter.get(), Ok((0, 1)));
        assert_eq!((*second).get(), Ok(Ok(())), "the slot went on to the second putter");
        assert_eq!(queue.get(), Ok(2));
    });
}

#[test]
fn putters_are_served_in_arrival_order() {
    sim::run(|| {
        let queue = Rc::new(Queue::bounded(1));
        queue.put(0).unwrap();
        let putters: Vec<_> = (1..=3)
            .map(|i| {
                let q = queue.clone();
                spawn(move || q.put(i).unwrap())
            })
            .collect();
        yield_now().unwrap();
        let got: Vec<i32> = (0..4).map(|_| queue.get().unwrap()).collect();
        assert_eq!(got, [0, 1, 2, 3]);
        joinall(&putters).unwrap();
    });
}

#[test]
fn a_killed_getter_leaves_the_queue_consistent_even_after_an_item_was_reserved_for_it() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let (q1, q2) = (queue.clone(), queue.clone());
        let first = spawn(move || q1.get());
        let second = spawn(move || q2.get());
        yield_now().unwrap();
        // `first` is killed but has not run yet, so it is still the first waiter: the item is
        // reserved for it. When it runs, it meets the kill and passes the item on.
        first.kill_nowait();
        queue.put(42).unwrap();
        first.join().unwrap();
        assert!(first.get().is_err(), "{:?}", first.get());
        assert_eq!(second.get(), Ok(42), "the reservation passed on to the next getter");
        assert!(queue.is_empty());
    });
}

#[test]
fn a_timeout_on_a_blocked_put_returns_the_item() {
    sim::run(|| {
        let queue = Queue::bounded(1);
        queue.put(1).unwrap();
        let t = Timeout::start(3 * MS);
        match queue.put(2) {
            Err(PutError::Interrupted(item, why)) => {
                assert_eq!(item, 2);
                assert_eq!(why, Interrupted::TimedOut(t.id()));
            }
            other => panic!("expected an interrupted put, got {other:?}"),
        }
        assert_eq!(queue.len(), 1);
    });
}

#[test]
fn closing_ends_producers_and_consumers_cleanly() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let consumers = spawn_each(2, &queue, |q| q.iter().collect::<Result<Vec<u32>, _>>());
        for i in 0..6 {
            queue.put(i).unwrap();
        }
        queue.close();
        assert_eq!(queue.put(99), Err(PutError::Closed(99)));
        let mut all: Vec<u32> = consumers.iter().flat_map(|c| c.get().unwrap()).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
        assert_eq!(queue.get(), Err(GetError::Closed));

        // A blocked putter and a blocked getter both wake to see the close.
        let full = Rc::new(Queue::bounded(1));
        full.put(0).unwrap();
        let f = full.clone();
        let putter = spawn(move || f.put(1));
        let empty = Rc::new(Queue::<u8>::new());
        let e = empty.clone();
        let getter = spawn(move || e.get());
        yield_now().unwrap();
        full.close();
        empty.close();
        assert_eq!((*putter).get().unwrap(), Err(PutError::Closed(1)));
        assert_eq!(getter.get(), Err(gevent_core::Error::Closed));
        assert_eq!(full.get(), Ok(0), "items put before the close are still there");
    });
}

#[test]
fn a_putter_given_room_that_the_queue_closes_before_it_runs_gets_its_item_back() {
    sim::run(|| {
        let queue = Rc::new(Queue::bounded(1));
        queue.put(0).unwrap();
        let q = queue.clone();
        let putter = spawn(move || q.put(1));
        yield_now().unwrap();
        assert_eq!(queue.get(), Ok(0), "the freed slot is reserved for the blocked putter");
        queue.close();
        assert_eq!((*putter).get().unwrap(), Err(PutError::Closed(1)));
        assert!(queue.is_empty());
    });
}

#[test]
fn a_getter_given_an_item_that_the_queue_closes_before_it_runs_takes_it() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        let getter = spawn(move || q.get());
        yield_now().unwrap();
        queue.put(7).unwrap();
        queue.close();
        assert_eq!(getter.get(), Ok(7), "closing drains: the reserved item stays the getter's");
        assert_eq!(queue.get(), Err(GetError::Closed));
    });
}

#[test]
fn lifo_and_priority_queues_return_in_their_order() {
    sim::run(|| {
        let lifo = LifoQueue::new();
        let prio = PriorityQueue::new();
        for i in [3, 1, 4, 1, 5] {
            lifo.put(i).unwrap();
            prio.put(i).unwrap();
        }
        let lifo_out: Vec<_> = (0..5).map(|_| lifo.get().unwrap()).collect();
        let prio_out: Vec<_> = (0..5).map(|_| prio.get().unwrap()).collect();
        assert_eq!(lifo_out, [5, 1, 4, 1, 3]);
        assert_eq!(prio_out, [1, 1, 3, 4, 5]);
    });
}

#[test]
fn peek_waits_for_an_item_without_taking_it() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        let peeker = spawn(move || q.peek());
        sleep(MS).unwrap();
        queue.put("x").unwrap();
        assert_eq!(peeker.get(), Ok("x"));
        assert_eq!(queue.len(), 1);
    });
}

#[test]
fn joinable_queue_join_returns_only_after_every_task_done() {
    sim::run(|| {
        let queue = Rc::new(JoinableQueue::new());
        for i in 0..3 {
            queue.put(i).unwrap();
        }
        let done = Rc::new(RefCell::new(Vec::new()));
        let (q, d) = (queue.clone(), done.clone());
        let worker = spawn(move || {
            while let Ok(item) = q.get_timeout(100 * MS) {
                sleep(10 * MS).unwrap();
                d.borrow_mut().push(item);
                q.task_done().unwrap();
            }
        });
        assert_eq!(queue.unfinished_tasks(), 3);
        queue.join().unwrap();
        assert_eq!(*done.borrow(), [0, 1, 2]);
        assert_eq!(now().as_nanos(), 30_000_000, "join returned at the last task_done");
        assert_eq!(queue.unfinished_tasks(), 0);
        assert!(queue.task_done().is_err(), "one task_done too many is an error");
        worker.join().unwrap();
    });
}

#[test]
fn channel_put_blocks_until_a_getter_arrives() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        let c = channel.clone();
        let putter = spawn(move || {
            c.put("ping").unwrap();
            now()
        });
        sleep(20 * MS).unwrap();
        assert!(!putter.ready());
        assert_eq!(channel.get(), Ok("ping"));
        assert_eq!(putter.get().unwrap().as_nanos(), 20_000_000);

        // try_put needs a waiting getter; a timed put takes its item back.
        assert_eq!(channel.try_put("x"), Err(PutError::Full("x")));
        assert_eq!(channel.put_timeout("y", 5 * MS), Err(PutError::Full("y")));
        assert_eq!(channel.try_get(), Err(GetError::Empty));
        let c = channel.clone();
        let getter = spawn(move || c.get());
        yield_now().unwrap();
        channel.try_put("z").unwrap();
        assert_eq!(getter.get(), Ok("z"));
    });
}

#[test]
fn channel_serves_putters_in_order_and_closes_cleanly() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        let putters: Vec<_> = (0..3)
            .map(|i| {
                let c = channel.clone();
                spawn(move || c.put(i))
            })
            .collect();
        yield_now().unwrap();
        assert_eq!((channel.get(), channel.get()), (Ok(0), Ok(1)));
        channel.close();
        // The third offer was made before the close: it can still be taken.
        assert_eq!(channel.get(), Ok(2));
        assert_eq!(channel.get(), Err(GetError::Closed));
        for p in &putters {
            assert_eq!(p.get(), Ok(()));
        }
        assert_eq!(channel.put(9), Err(PutError::Closed(9)));
    });
}

#[test]
fn a_getter_whose_item_is_withdrawn_by_a_killed_putter_waits_on_first_in_line() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        let (c1, c2, c3) = (channel.clone(), channel.clone(), channel.clone());
        let first = spawn(move || c1.get());
        let second = spawn(move || c2.get());
        yield_now().unwrap();
        let third = spawn(move || c3.get());
        yield_now().unwrap();
        // The putter kills `first` (still in line) and offers 42, which is reserved for it;
        // `first` meets its kill and hands the reservation to `second`; the putter is killed
        // before `second` runs and withdraws its item. (This used to panic inside `get`.)
        let put = Rc::new(RefCell::new(None));
        let (c, f, p) = (channel.clone(), first.clone(), put.clone());
        let putter = spawn(move || {
            f.kill_nowait();
            *p.borrow_mut() = Some(c.put(42));
        });
        yield_now().unwrap();
        putter.kill_nowait();
        putter.join().unwrap();
        first.join().unwrap();
        assert!(first.get().is_err(), "{:?}", first.get());
        match put.borrow_mut().take() {
            Some(Err(PutError::Interrupted(42, Interrupted::Killed))) => {}
            other => panic!("the killed putter gets its item back, got {other:?}"),
        }
        assert_eq!(second.join_timeout(MS), Ok(false), "no item for it: it waits on");
        assert!(channel.is_empty());
        // It kept its place ahead of `third`.
        channel.try_put(7).unwrap();
        channel.try_put(8).unwrap();
        assert_eq!((second.get(), third.get()), (Ok(7), Ok(8)));
    });
}

#[test]
fn try_put_hands_an_item_to_every_waiting_getter() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        let getters = spawn_each(2, &channel, |q| q.get());
        yield_now().unwrap();
        assert_eq!(channel.try_put('a'), Ok(()));
        assert_eq!(channel.try_put('b'), Ok(()), "a second getter waits");
        assert_eq!(channel.try_put('c'), Err(PutError::Full('c')), "no third");
        assert_eq!(channel.len(), 2, "offered, not taken yet");
        assert_eq!((getters[0].get(), getters[1].get()), (Ok('a'), Ok('b')));
        assert!(channel.is_empty());
    });
}

#[test]
fn a_channel_counts_its_offers_and_iterates_until_closed() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        assert!(channel.is_empty());
        let putters: Vec<_> = (0..3)
            .map(|i| {
                let c = channel.clone();
                spawn(move || c.put(i))
            })
            .collect();
        yield_now().unwrap();
        assert_eq!(channel.len(), 3);
        let c = channel.clone();
        let consumer = spawn(move || c.iter().collect::<Result<Vec<u32>, _>>());
        joinall(&putters).unwrap();
        assert!(channel.is_empty());
        channel.close();
        assert_eq!(consumer.get(), Ok(vec![0, 1, 2]));
        assert_eq!((&*channel).into_iter().next(), None, "closed: the iteration ends");
    });
}

#[test]
fn peek_timeout_waits_at_most_its_timeout() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        assert_eq!(queue.peek_timeout(5 * MS), Err(GetError::Empty));
        assert_eq!(now().as_nanos(), 5_000_000);
        let q = queue.clone();
        let putter = spawn(move || {
            sleep(2 * MS).unwrap();
            q.put('x').unwrap();
        });
        assert_eq!(queue.peek_timeout(10 * MS), Ok('x'));
        assert_eq!(now().as_nanos(), 7_000_000);
        assert_eq!(queue.len(), 1, "peeking takes nothing");
        putter.join().unwrap();
        queue.close();
        assert_eq!(queue.peek_timeout(5 * MS), Ok('x'));
        queue.get().unwrap();
        assert_eq!(queue.peek_timeout(5 * MS), Err(GetError::Closed));
        assert_eq!(now().as_nanos(), 7_000_000, "closed and empty: no wait");
    });
}

#[test]
fn an_iterator_yields_the_interruption_once_and_then_ends() {
    sim::run(|| {
        // Timed out: the items, then the timeout, then the end.
        let queue = Rc::new(Queue::new());
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        let t = Timeout::start(5 * MS);
        let seen: Vec<_> = queue.iter().collect();
        assert_eq!(seen, [Ok(1), Ok(2), Err(Interrupted::TimedOut(t.id()))]);
        drop(t);

        // Killed: same for a greenlet iterating a queue or a channel (recorded as it goes,
        // whatever becomes of the killed greenlet's result).
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (q, s) = (queue.clone(), seen.clone());
        let consumer = spawn(move || q.iter().for_each(|got| s.borrow_mut().push(got)));
        let channel = Rc::new(Channel::new());
        let seen_on_channel = Rc::new(RefCell::new(Vec::new()));
        let (c, s) = (channel.clone(), seen_on_channel.clone());
        let channel_consumer = spawn(move || c.iter().for_each(|got| s.borrow_mut().push(got)));
        yield_now().unwrap();
        queue.put(3).unwrap();
        channel.try_put(4).unwrap();
        yield_now().unwrap();
        consumer.kill_nowait();
        channel_consumer.kill_nowait();
        consumer.join().unwrap();
        channel_consumer.join().unwrap();
        assert_eq!(*seen.borrow(), [Ok(3), Err(Interrupted::Killed)]);
        assert_eq!(*seen_on_channel.borrow(), [Ok(4), Err(Interrupted::Killed)]);
    });
}

#[test]
fn a_channel_put_returns_after_the_getter_ran_as_in_gevents_test_send() {
    sim::run(|| {
        let channel = Rc::new(Channel::new());
        let events = Rc::new(RefCell::new(Vec::new()));
        let (c, e) = (channel.clone(), events.clone());
        let getter = spawn(move || {
            for _ in 0..2 {
                let got = c.get().unwrap();
                e.borrow_mut().push(got);
            }
        });
        events.borrow_mut().push("sending");
        channel.put("hello").unwrap();
        events.borrow_mut().push("sent hello");
        channel.put("world").unwrap(); // the getter waits already: the item is reserved for it
        events.borrow_mut().push("sent world");
        assert_eq!(*events.borrow(), ["sending", "hello", "sent hello", "world", "sent world"]);
        getter.join().unwrap();
    });
}

#[test]
fn a_wait_that_ends_without_a_unit_gives_back_exactly_what_ended_it() {
    sim::run(|| {
        // Each outcome here comes after the caller waited in line (not from the first look),
        // and names the cause and hands back the item.
        let full = Rc::new(Queue::bounded(1));
        full.put(0).unwrap();
        assert_eq!(full.put_timeout(1, 5 * MS), Err(PutError::Full(1)));
        let f = full.clone();
        let putter = spawn(move || f.put(2));
        let empty = Rc::new(Queue::<u8>::new());
        let e = empty.clone();
        let getter = spawn(move || e.get());
        let e = empty.clone();
        let closed_getter = spawn(move || e.get());
        yield_now().unwrap();
        putter.kill_nowait();
        getter.kill_nowait();
        empty.close();
        assert_eq!((*putter).get(), Ok(Err(PutError::Interrupted(2, Interrupted::Killed))));
        assert_eq!(full.len(), 1, "the killed putter added nothing");
        assert_eq!((*getter).get(), Ok(Err(GetError::Interrupted(Interrupted::Killed))));
        assert_eq!((*closed_getter).get(), Ok(Err(GetError::Closed)));
    });
}

#[test]
fn a_single_consumer_gets_items_in_put_order_past_a_killed_getter_ahead_of_it() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        let killed = spawn(move || q.get());
        let q = queue.clone();
        let consumer = spawn(move || (q.get().unwrap(), q.get().unwrap()));
        yield_now().unwrap();
        // `killed` is woken by its kill but still first in line when the puts come.
        killed.kill_nowait();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        joinall((&killed, &consumer)).unwrap();
        assert_eq!((*killed).get(), Ok(Err(GetError::Interrupted(Interrupted::Killed))));
        assert_eq!(consumer.get(), Ok((1, 2)), "one consumer sees the put order");
    });
}

#[test]
fn items_put_past_two_killed_getters_stay_in_put_order() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let getters = spawn_each(2, &queue, |q| q.get());
        yield_now().unwrap();
        for g in &getters {
            g.kill_nowait();
        }
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        joinall(&getters).unwrap();
        assert_eq!((queue.get(), queue.get()), (Ok(1), Ok(2)));
    });
}

#[test]
fn killed_getters_in_line_let_no_put_far_past_a_bounded_queues_bound() {
    sim::run(|| {
        let queue = Rc::new(Queue::bounded(1));
        let getters = spawn_each(3, &queue, |q| q.get());
        yield_now().unwrap();
        for g in &getters {
            g.kill_nowait();
        }
        for i in 0..4 {
            let _ = queue.try_put(i);
        }
        joinall(&getters).unwrap();
        // No item goes to a killed getter, so none comes back into the queue later: before
        // that was mended, each killed getter let one more item in.
        assert!(queue.len() <= 2, "len {} with maxsize 1", queue.len());
    });
}

#[test]
fn an_item_put_after_a_hub_shutdown_goes_to_a_live_getter_not_an_abandoned_one() {
    sim::run(|| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        // Ignores every kill, so the shutdown abandons it while it is first in line.
        let stuck = spawn(move || {
            loop {
                let _ = gevent_core::shield(|| q.get());
            }
        });
        yield_now().unwrap();
        gevent_core::hub::shutdown();
        assert!(stuck.ready(), "abandoned");
        let q = queue.clone();
        let live = spawn(move || q.get());
        yield_now().unwrap();
        queue.put(5).unwrap();
        assert_eq!((*live).get(), Ok(Ok(5)));
    });
}
