//! Greenlet trees (`gevent_core::tree`) on the simulated hub: parents, names, states and what
//! each greenlet waits on.
// Miri cannot switch stacks (corosensei's inline assembly): the tree's reading of stacks is
// checked by the library's unit tests.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::Event;
use gevent_core::hub::IoRegistration;
use gevent_core::lock::Semaphore;
use gevent_core::platform::Interest;
use gevent_core::queue::Queue;
use gevent_core::sim::{self, SimSource};
use gevent_core::time::Instant;
use gevent_core::tree::{GreenletState, GreenletTree, WaitReason};
use gevent_core::{Builder, sleep, spawn, yield_now};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_tree_shows_parents_states_and_what_each_greenlet_waits_on() {
    sim::run(|| {
        let event = Rc::new(Event::new());
        let queue = Rc::new(Queue::<u32>::new());
        let lock = Rc::new(Semaphore::new(1));
        let held = lock.try_acquire().unwrap();
        let start = gevent_core::now();

        let sleeper = Builder::new().name("sleeper").spawn(|| sleep(5 * SECOND));
        let e = event.clone();
        let event_waiter = Builder::new().name("event waiter").spawn(move || e.wait());
        let q = queue.clone();
        let getter = Builder::new().name("getter").spawn(move || q.get());
        let l = lock.clone();
        let locker = Builder::new().name("locker").spawn(move || l.acquire().map(drop));
        let reader = Builder::new().name("reader").spawn(|| {
            let reg = IoRegistration::new(SimSource(42)).unwrap();
            reg.wait(Interest::READABLE)
        });
        // A parent that spawns a child and joins it.
        let parent = Builder::new().name("parent").spawn(|| {
            let child = Builder::new().name("child").spawn(|| sleep(SECOND));
            child.join()
        });
        yield_now().unwrap(); // every one runs to its wait
        yield_now().unwrap(); // (`parent`'s child in the second turn)
        let runnable = Builder::new().name("runnable").spawn(|| ());

        let tree = GreenletTree::current_hub();
        let main = &tree.greenlets()[0];
        assert_eq!((main.id, main.name.as_str(), main.parent), (0, "main", None));
        assert_eq!(main.state, GreenletState::Running);
        let node = |id| tree.get(id).unwrap_or_else(|| panic!("no greenlet #{id} in\n{tree}"));

        let s = node(sleeper.id());
        assert_eq!(
            (s.name.as_str(), s.parent, s.state),
            ("sleeper", Some(0), GreenletState::Parked)
        );
        assert_eq!(s.waits_on, WaitReason::Sleep { deadline: at(start, 5 * SECOND) });
        assert_eq!(node(event_waiter.id()).waits_on, WaitReason::Event);
        assert_eq!(
            node(getter.id()).waits_on,
            WaitReason::Other("an item in an empty queue (a get)")
        );
        assert_eq!(node(locker.id()).waits_on, WaitReason::Other("a semaphore permit"));
        assert_eq!(
            node(reader.id()).waits_on,
            WaitReason::Io { source: 42, interest: Interest::READABLE }
        );
        let child = tree.greenlets().iter().find(|g| g.name == "child").unwrap();
        assert_eq!(child.parent, Some(parent.id()));
        assert_eq!(node(parent.id()).waits_on, WaitReason::Join { id: child.id });
        let r = node(runnable.id());
        assert_eq!((r.state, r.waits_on), (GreenletState::Runnable, WaitReason::Nothing));
        assert!(s.spawned_at.unwrap().file().ends_with("tree.rs"));
        assert_eq!(s.stack_size, Some(gevent_core::stack::DEFAULT_STACK_SIZE));
        assert!(s.stack_high_water.is_some_and(|used| used > 0 && used < s.stack_size.unwrap()));

        let text = tree.to_string();
        let expected_lines = [
            "hub: 9 greenlets".to_string(),
            "+-- #0 'main' running".to_string(),
            format!(
                "    +-- #{} 'sleeper' parked: a sleep until 5.000s from now; spawned at ",
                sleeper.id()
            ),
            format!("    +-- #{} 'event waiter' parked: an event to be set; ", event_waiter.id()),
            format!(
                "    +-- #{} 'getter' parked: an item in an empty queue (a get); ",
                getter.id()
            ),
            format!("    +-- #{} 'locker' parked: a semaphore permit; ", locker.id()),
            format!("    +-- #{} 'reader' parked: fd 42 to be readable; ", reader.id()),
            format!(
                "    +-- #{} 'parent' parked: the end of greenlet #{} 'child'; ",
                parent.id(),
                child.id
            ),
            format!("        +-- #{} 'child' parked: a sleep until 1.000s from now; ", child.id),
            format!("    +-- #{} 'runnable' runnable; spawned at ", runnable.id()),
        ];
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), expected_lines.len(), "{text}");
        for (line, expected) in lines.iter().zip(&expected_lines) {
            assert!(
                line.starts_with(expected.as_str()),
                "{line:?} should start with {expected:?} in\n{text}"
            );
        }
        drop(held);
        event.set();
    });
}

#[test]
fn a_greenlet_whose_parent_finished_is_listed_under_the_hub_with_a_note() {
    sim::run(|| {
        let orphan = Rc::new(std::cell::Cell::new(0));
        let o = orphan.clone();
        let parent = Builder::new().name("short-lived").spawn(move || {
            o.set(Builder::new().name("orphan").spawn(|| sleep(SECOND)).id());
        });
        parent.join().unwrap();
        yield_now().unwrap();
        let tree = GreenletTree::current_hub();
        assert_eq!(tree.get(orphan.get()).unwrap().parent, Some(parent.id()));
        let text = tree.to_string();
        let line = text.lines().nth(2).unwrap_or_default();
        let expected = format!(
            "+-- #{} 'orphan' (its parent #{} finished) parked: a sleep until 1.000s from now; ",
            orphan.get(),
            parent.id()
        );
        assert!(line.starts_with(&expected), "{line:?} should start with {expected:?} in\n{text}");
    });
}

#[test]
fn a_spawn_later_greenlet_is_scheduled_and_a_finished_one_is_gone() {
    sim::run(|| {
        let later = gevent_core::spawn_later(SECOND, || ());
        let inner = Rc::new(std::cell::Cell::new(0));
        let i = inner.clone();
        spawn(move || i.set(gevent_core::current().id())).join().unwrap();
        let tree = GreenletTree::current_hub();
        let node = tree.get(later.id()).unwrap();
        assert_eq!((node.state, node.stack_size), (GreenletState::Scheduled, None));
        assert!(tree.get(inner.get()).is_none(), "a finished greenlet is not listed");
    });
}

fn at(start: Instant, after: Duration) -> Instant {
    start + after
}
