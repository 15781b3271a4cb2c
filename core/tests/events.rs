//! Event hooks (`gevent_core::events`) on the simulated hub.
// Miri cannot switch stacks (corosensei's inline assembly).
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::events::{self, Event, Finish};
use gevent_core::{Builder, Interrupted, sim, sleep, spawn, yield_now};

/// Subscribes a recorder of every event; returns what it saw so far, and its id.
fn record() -> (Rc<RefCell<Vec<Event>>>, events::SubscriptionId) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let id = events::subscribe(move |event| s.borrow_mut().push(event.clone()));
    (seen, id)
}

fn switched(from: Option<u64>, to: Option<u64>) -> Event {
    Event::Switched { from, to }
}

#[test]
fn a_spawn_a_yield_and_a_join_make_these_events_in_this_order() {
    // Subscribed before the thread's first gevent call: it sees the hub created.
    let (seen, subscription) = record();
    let site = sim::run(|| {
        let worker = Builder::new().name("worker").spawn(|| yield_now().unwrap());
        worker.join().unwrap();
        worker.spawned_at()
    });
    assert!(events::unsubscribe(subscription));
    let (main, hub, worker) = (Some(0), None, Some(1));
    assert_eq!(
        *seen.borrow(),
        [
            Event::HubCreated,
            Event::Spawned { id: 1, name: "worker".into(), spawned_at: site, parent: 0 },
            switched(main, hub), // main joins
            switched(hub, worker),
            switched(worker, hub), // the worker yields; main still waits
            switched(hub, worker),
            Event::Finished { id: 1, how: Finish::Returned },
            switched(worker, hub),
            switched(hub, main),
        ]
    );
    assert!(!events::unsubscribe(subscription), "a subscription is removed once");
}

#[test]
fn finished_says_how_each_greenlet_ended() {
    sim::run(|| {
        let (seen, subscription) = record();
        let returned = spawn(|| 1);
        let panicked = spawn(|| panic!("on purpose"));
        let killed_unstarted = spawn(|| 2);
        killed_unstarted.kill().unwrap();
        let killed = spawn(|| sleep(Duration::from_secs(60)));
        yield_now().unwrap();
        killed.kill().unwrap();
        let _ = (returned.join(), panicked.join(), killed.join());
        events::unsubscribe(subscription);
        let ends: Vec<(u64, Finish)> = seen
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Event::Finished { id, how } => Some((*id, *how)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            [
                (killed_unstarted.id(), Finish::Killed),
                (returned.id(), Finish::Returned),
                (panicked.id(), Finish::Panicked),
                // Its body returned the kill's error: a value, as for any greenlet.
                (killed.id(), Finish::Returned),
            ]
        );
    });
}

#[test]
fn spawn_callbacks_see_each_greenlet_spawned_until_removed() {
    sim::run(|| {
        let names = Rc::new(RefCell::new(Vec::new()));
        let n = names.clone();
        let callback = events::add_spawn_callback(move |g| {
            assert!(!g.started(), "a spawn callback runs before the greenlet does");
            n.borrow_mut().push(g.name().into_owned());
        });
        let first = Builder::new().name("first").spawn(|| ());
        let second = Builder::new().name("second").spawn(|| ());
        assert!(events::remove_spawn_callback(callback));
        assert!(!events::remove_spawn_callback(callback));
        let third = Builder::new().name("third").spawn(|| ());
        for g in [first, second, third] {
            g.join().unwrap();
        }
        assert_eq!(*names.borrow(), ["first", "second"]);
    });
}

#[test]
fn a_callback_may_subscribe_and_unsubscribe_while_events_are_dispatched() {
    sim::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let own_id = Rc::new(RefCell::new(None));
        let (l, own) = (log.clone(), own_id.clone());
        // On its first event it hands over to a new subscriber and removes itself.
        let first = events::subscribe(move |event| {
            l.borrow_mut().push(("first", event.clone()));
            let l = l.clone();
            events::subscribe(move |event| l.borrow_mut().push(("second", event.clone())));
            assert!(events::unsubscribe(own.borrow().expect("set before any event")));
        });
        *own_id.borrow_mut() = Some(first);
        let g = spawn(|| ());
        g.join().unwrap();
        let log = log.borrow();
        let spawned = |who| (who, log[0].1.clone());
        assert!(matches!(log[0], ("first", Event::Spawned { .. })), "{log:?}");
        assert!(log[1..].iter().all(|(who, _)| *who == "second"), "{log:?}");
        assert_eq!(log[1].1, switched(Some(0), None), "the new one starts at the next event");
        assert!(!log.contains(&spawned("second")));
    });
}

#[test]
fn a_callback_that_blocks_is_refused_and_the_hub_goes_on() {
    sim::run(|| {
        let results = Rc::new(RefCell::new(Vec::new()));
        let r = results.clone();
        // Switch events come from inside the hub loop; spawn events from the spawner.
        let subscription = events::subscribe(move |event| {
            if matches!(event, Event::Switched { to: Some(1), .. } | Event::Spawned { .. }) {
                r.borrow_mut().push(yield_now());
                r.borrow_mut().push(sleep(Duration::from_millis(1)));
            }
        });
        let g = spawn(|| {
            yield_now()?;
            sleep(Duration::from_millis(1))
        });
        assert_eq!(g.get(), Ok(()), "the greenlet's own blocking calls still work");
        events::unsubscribe(subscription);
        let results = results.borrow();
        // Spawned, then three switches into the greenlet (its start, back from its yield, back
        // from its sleep), each with two refused calls.
        assert_eq!(results.len(), 2 * 4);
        for result in results.iter() {
            assert!(matches!(result, Err(Interrupted::Deadlock(_))), "{result:?}");
        }
        // The main greenlet's own calls are not refused after the callbacks ran.
        yield_now().unwrap();
        sleep(Duration::from_millis(1)).unwrap();
    });
}

#[test]
fn without_subscribers_nothing_is_called() {
    sim::run(|| {
        let (seen, subscription) = record();
        events::unsubscribe(subscription);
        spawn(|| ()).join().unwrap();
        assert!(seen.borrow().is_empty());
    });
}

// The thread-locals' destructors run in the reverse order of their registration on Linux, and
// the subscriptions' thread-local is registered first (a hub reads it as it is made, before its
// owner is registered); the order is unspecified elsewhere, where the subscriptions may be gone
// when the hub ends.
#[cfg(target_os = "linux")]
#[test]
fn a_thread_that_exits_reports_its_hub_destroyed() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        events::subscribe(move |event| {
            if matches!(event, Event::HubCreated | Event::HubDestroyed) {
                // A blocking call is refused here too, without a new hub being made.
                let refused = matches!(yield_now(), Err(Interrupted::Deadlock(_)));
                s.lock().unwrap().push((event.clone(), refused));
            }
        });
        sim::run(|| spawn(|| ()).join().unwrap());
    })
    .join()
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), [(Event::HubCreated, true), (Event::HubDestroyed, true)]);
}

#[test]
fn a_greenlet_that_subscribes_sees_its_own_switch_out_first() {
    sim::run(|| {
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let worker = spawn(move || {
            let (events, id) = record();
            *s.borrow_mut() = Some((events, id));
            yield_now().unwrap();
        });
        worker.join().unwrap();
        let (events, id) = seen.borrow_mut().take().unwrap();
        assert!(events::unsubscribe(id));
        let (hub, worker) = (None, Some(1));
        assert_eq!(
            events.borrow()[..3],
            [
                switched(worker, hub),
                switched(hub, worker),
                Event::Finished { id: 1, how: Finish::Returned }
            ]
        );
    });
}
