//! A waiter's place in a primitive's line against wake-ups that are not its turn.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::event::Event;
use gevent_core::platform::{Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use gevent_core::queue::Queue;
use gevent_core::shared::Shared;
use gevent_core::{Greenlet, sim, sleep, spawn, yield_now};

/// The simulated poller, panicking once when armed (a safe `Poller` may panic).
struct PanicsOnce {
    inner: Box<dyn Poller>,
    armed: Rc<Cell<bool>>,
}

impl Poller for PanicsOnce {
    fn register(&mut self, source: &dyn Any, token: Token, i: Interest) -> Result<u64, PollError> {
        self.inner.register(source, token, i)
    }
    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        self.inner.deregister(source)
    }
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        assert!(!self.armed.replace(false), "the poller panics (as armed)");
        self.inner.poll(timeout, ready)
    }
    fn remote_waker(&self) -> Shared<dyn RemoteWaker> {
        self.inner.remote_waker()
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Runs `then` on a hub whose main greenlet left a join by an unwind (its poller panicked
/// while main waited for `target`, which waits for `go`).
fn with_a_join_left_by_an_unwind(then: impl FnOnce(Rc<Event>, Greenlet<()>)) {
    let (mut platform, _sim) = sim::platform();
    let armed = Rc::new(Cell::new(false));
    platform.poller = Box::new(PanicsOnce { inner: platform.poller, armed: armed.clone() });
    gevent_core::hub::install(platform).expect("a thread without a hub");
    gevent_core::run(|| {
        let go = Rc::new(Event::new());
        let g = go.clone();
        let target = spawn(move || g.wait().unwrap());
        let _timer = spawn(|| sleep(Duration::from_secs(1))); // the hub polls till then
        armed.set(true);
        let unwound = catch_unwind(AssertUnwindSafe(|| target.join()));
        assert!(unwound.is_err(), "the poller's panic unwound out of the join: {unwound:?}");
        then(go, target);
    });
}

/// A join left by an unwind (out of the hub's loop, on the main greenlet's stack) stays
/// registered, so the target's end later notifies a greenlet that waits on a queue meanwhile,
/// while another waiter holds the unit reserved: that wake-up is not a hand-off, and must not
/// take the other's unit (returning while its place is still in line, which left the line
/// pointing into the frame of a returned call).
#[test]
fn a_notification_that_is_no_hand_off_leaves_the_waiter_in_line() {
    with_a_join_left_by_an_unwind(|go, _target| {
        let queue = Rc::new(Queue::new());
        let q = queue.clone();
        let first = spawn(move || q.get().unwrap());
        yield_now().unwrap(); // `first` waits first
        let (q, g) = (queue.clone(), go.clone());
        let putter = spawn(move || {
            g.set(); // the target ends before the put: its end notifies main, in line
            yield_now().unwrap();
            q.put(1).unwrap(); // reserved for `first`; main runs before it
        });
        let q = queue.clone();
        let second = spawn(move || {
            yield_now().unwrap();
            yield_now().unwrap();
            yield_now().unwrap();
            q.put(2).unwrap();
        });
        assert_eq!(queue.get(), Ok(2), "main waits its turn, behind `first`");
        assert_eq!(first.get().unwrap(), 1);
        putter.join().unwrap();
        second.join().unwrap();
        assert!(queue.is_empty());
    });
}

/// A join left by an unwind takes its registration with it: the target's end, later, must
/// not wake the greenlet in the middle of another wait. Here that wait ends by `close()`,
/// which takes it out of line; a stray notification on top counted as a hand-off of a unit
/// nobody reserved (the reservation count went below zero).
#[test]
fn a_join_left_by_an_unwind_leaves_no_registration_behind() {
    with_a_join_left_by_an_unwind(|go, target| {
        let queue: Rc<Queue<u32>> = Rc::new(Queue::new());
        let (q, g) = (queue.clone(), go.clone());
        let closer = spawn(move || {
            g.set();
            yield_now().unwrap(); // the target ends (and must not notify main)
            q.close();
        });
        assert!(queue.get().is_err(), "closed, with nothing in it");
        closer.join().unwrap();
        assert!(target.join().is_ok());
    });
}
