//! Property tests: queue ordering, channel delivery and semaphore counts under random
//! interleavings of greenlets on the simulated hub (each schedule is reproducible from its
//! seed).
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::lock::Semaphore;
use gevent_core::queue::{Channel, GetError, PutError, Queue};
use gevent_core::{joinall, sim, sleep, spawn, yield_now};
use proptest::prelude::*;

/// A pause a greenlet takes between operations: none, a yield, or a short sleep.
fn pause(kind: u8) -> Result<(), gevent_core::Interrupted> {
    match kind % 3 {
        0 => Ok(()),
        1 => yield_now(),
        _ => sleep(Duration::from_micros(u64::from(kind))),
    }
}

/// Counts a holder in while it lives, whichever way it ends.
struct Inside(Rc<Cell<usize>>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the interleaving, a FIFO queue hands out items in the order the puts completed
    /// (each consumer receives them in that order; a single consumer receives them all in it),
    /// loses none and duplicates none, and never holds more than its bound.
    ///
    /// Across consumers, the order in which their gets *return* is the scheduler's: an item put
    /// while a consumer waits is that consumer's at once, and another consumer that runs first
    /// can return a later item before it.
    #[test]
    fn a_fifo_queue_keeps_put_order_under_random_interleavings(
        maxsize in 1usize..5,
        producers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..4),
        consumer_pauses in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..8), 1..4),
    ) {
        sim::run(|| {
            let queue = Rc::new(Queue::bounded(maxsize));
            let put_order = Rc::new(RefCell::new(Vec::new()));
            let got_order = Rc::new(RefCell::new(Vec::new()));
            let got_by_consumer = Rc::new(RefCell::new(vec![Vec::new(); consumer_pauses.len()]));
            let most = Rc::new(Cell::new(0));
            let producer_handles: Vec<_> = producers.iter().enumerate().map(|(p, pauses)| {
                let (queue, put_order, most) = (queue.clone(), put_order.clone(), most.clone());
                let pauses = pauses.clone();
                spawn(move || {
                    for (seq, kind) in pauses.into_iter().enumerate() {
                        pause(kind).unwrap();
                        queue.put((p, seq)).unwrap();
                        put_order.borrow_mut().push((p, seq));
                        most.set(most.get().max(queue.len()));
                    }
                })
            }).collect();
            let consumer_handles: Vec<_> = consumer_pauses.iter().enumerate().map(|(c, pauses)| {
                let (queue, got_order, mine) = (queue.clone(), got_order.clone(), got_by_consumer.clone());
                let pauses = pauses.clone();
                spawn(move || {
                    let mut turn = 0;
                    loop {
                        pause(pauses[turn % pauses.len()]).unwrap();
                        turn += 1;
                        match queue.get() {
                            Ok(item) => {
                                got_order.borrow_mut().push(item);
                                mine.borrow_mut()[c].push(item);
                            }
                            Err(GetError::Closed) => return,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                })
            }).collect();
            joinall(&producer_handles).unwrap();
            queue.close();
            joinall(&consumer_handles).unwrap();
            let total: usize = producers.iter().map(Vec::len).sum();
            assert_eq!(got_order.borrow().len(), total);
            assert!(most.get() <= maxsize);
            // Items leave in the order they entered: each consumer's get order is the put order.
            let put_position = |item: &(usize, usize)| put_order.borrow().iter().position(|p| p == item);
            for got in got_by_consumer.borrow().iter() {
                let mut sorted_by_put = got.clone();
                sorted_by_put.sort_by_key(put_position);
                assert_eq!(*got, sorted_by_put);
            }
            let mut all = got_order.borrow().clone();
            all.sort_by_key(put_position);
            all.dedup();
            assert_eq!(all, *put_order.borrow(), "every item got once");
        });
    }

    /// Whatever the interleaving and whichever waiters are killed, a semaphore never admits
    /// more holders than its permits and ends with all of them free.
    #[test]
    fn a_semaphore_keeps_its_count_under_random_interleavings_and_kills(
        permits in 1usize..4,
        workers in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<bool>()), 1..10),
    ) {
        sim::run(|| {
            let sem = Rc::new(Semaphore::new(permits));
            let inside = Rc::new(Cell::new(0usize));
            let most = Rc::new(Cell::new(0usize));
            let handles: Vec<_> = workers.iter().map(|&(before, hold, _)| {
                let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                spawn(move || -> Result<(), gevent_core::Interrupted> {
                    pause(before)?;
                    let _permit = sem.acquire()?;
                    inside.set(inside.get() + 1);
                    let _inside = Inside(inside.clone());
                    most.set(most.get().max(inside.get()));
                    pause(hold)
                })
            }).collect();
            yield_now().unwrap();
            for (handle, &(_, _, kill)) in handles.iter().zip(&workers) {
                if kill {
                    handle.kill_nowait();
                }
            }
            joinall(&handles).unwrap();
            assert!(most.get() <= permits, "{} holders with {permits} permits", most.get());
            assert_eq!(inside.get(), 0);
            assert_eq!(sem.available(), permits);
        });
    }

    /// Whatever the interleaving and whichever putters and getters are killed, a channel
    /// delivers every item whose put succeeded exactly once, and no other; a put that failed
    /// hands its own item back.
    #[test]
    fn a_channel_delivers_each_completed_put_exactly_once_under_random_kills(
        putters in proptest::collection::vec((any::<u8>(), any::<bool>()), 1..8),
        getters in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 1..4), any::<bool>()), 1..6),
    ) {
        sim::run(|| {
            let channel = Rc::new(Channel::new());
            let put_ok = Rc::new(RefCell::new(Vec::new()));
            let got = Rc::new(RefCell::new(Vec::new()));
            let putter_handles: Vec<_> = putters.iter().enumerate().map(|(i, &(before, _))| {
                let (channel, put_ok) = (channel.clone(), put_ok.clone());
                spawn(move || {
                    if pause(before).is_err() {
                        return;
                    }
                    match channel.put(i) {
                        Ok(()) => put_ok.borrow_mut().push(i),
                        Err(PutError::Interrupted(item, _) | PutError::Closed(item)) => assert_eq!(item, i),
                        Err(e) => panic!("unexpected {e}"),
                    }
                })
            }).collect();
            let getter_handles: Vec<_> = getters.iter().map(|(pauses, _)| {
                let (channel, got, pauses) = (channel.clone(), got.clone(), pauses.clone());
                spawn(move || {
                    for turn in 0.. {
                        if pause(pauses[turn % pauses.len()]).is_err() {
                            return;
                        }
                        match channel.get() {
                            Ok(item) => got.borrow_mut().push(item),
                            Err(GetError::Closed | GetError::Interrupted(_)) => return,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                })
            }).collect();
            yield_now().unwrap();
            let kills = putters.iter().map(|p| p.1).chain(getters.iter().map(|g| g.1));
            for (handle, kill) in putter_handles.iter().map(|h| h.to_ref()).chain(getter_handles.iter().map(|h| h.to_ref())).zip(kills) {
                if kill {
                    handle.kill_nowait();
                }
            }
            // Pauses are at most 255 µs: after this, whoever is still blocked waits for a
            // partner that will not come, and the close ends them.
            sleep(Duration::from_millis(1)).unwrap();
            channel.close();
            joinall(&putter_handles).unwrap();
            joinall(&getter_handles).unwrap();
            for h in putter_handles.iter().map(|h| h.to_ref()).chain(getter_handles.iter().map(|h| h.to_ref())) {
                assert!(h.successful() || h.is_killed(), "{:?}", h.error());
            }
            let mut delivered = got.borrow().clone();
            delivered.sort();
            let mut completed = put_ok.borrow().clone();
            completed.sort();
            assert_eq!(delivered, completed);
            assert!(channel.is_empty());
        });
    }
}
