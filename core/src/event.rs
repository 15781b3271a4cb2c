//! `Event`: a flag that greenlets wait on until another sets it (gevent's `gevent.event.Event`).

use core::fmt;
use core::time::Duration;

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::wait_list::WaitList;

/// A flag that greenlets can wait on. [`set`](Self::set) wakes every waiter; until
/// [`clear`](Self::clear), later waits return at once.
///
/// Share it between greenlets with an `Rc`.
///
/// ```
/// # gevent_core::sim::run(|| {
/// use std::rc::Rc;
/// use gevent_core::{event::Event, spawn};
/// let ready = Rc::new(Event::new());
/// let r = ready.clone();
/// let waiter = spawn(move || r.wait());
/// ready.set();
/// assert_eq!(waiter.get(), Ok(Ok(())));
/// # });
/// ```
#[derive(Default)]
pub struct Event {
    flag: core::cell::Cell<bool>,
    waiters: core::cell::RefCell<WaitList<TaskRef>>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.flag.get()).finish_non_exhaustive()
    }
}

impl Event {
    /// A new, unset event.
    pub const fn new() -> Self {
        Event {
            flag: core::cell::Cell::new(false),
            waiters: core::cell::RefCell::new(WaitList::new()),
        }
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Sets it and wakes every waiter; each of them returns `Ok` even if the event is cleared
    /// again before it runs.
    pub fn set(&self) {
        self.flag.set(true);
        let hub = hub();
        loop {
            let waiter = self.waiters.borrow_mut().pop_front();
            match waiter {
                Some(t) => hub.notify(t),
                None => break,
            }
        }
    }

    /// Unsets it; later waits block until the next [`set`](Self::set).
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// Waits until it is set (returns at once if it is).
    pub fn wait(&self) -> Result<(), Interrupted> {
        self.wait_until(None).map(|_| ())
    }

    /// Waits at most `timeout`; `Ok(true)` if it was set, `Ok(false)` if the time ran out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.wait_until(Some(hub().now() + timeout))
    }

    fn wait_until(&self, deadline: Option<crate::time::Instant>) -> Result<bool, Interrupted> {
        if self.flag.get() {
            return Ok(true);
        }
        let hub = hub();
        let me = hub.current_task();
        let timer = DeadlineTimer::arm(deadline);
        me.notified.set(false);
        let key = self.waiters.borrow_mut().push_back(hub.current());
        loop {
            if let Err(e) = hub.park(WaitKind::Event) {
                self.waiters.borrow_mut().remove(key);
                return Err(e);
            }
            // `set` pops the waiters it notifies, so there is nothing to remove.
            if me.notified.get() {
                return Ok(true);
            }
            if timer.expired() {
                self.waiters.borrow_mut().remove(key);
                return Ok(false);
            }
        }
    }
}
