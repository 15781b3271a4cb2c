//! `Event`: a flag that greenlets wait on until another sets it (gevent's `gevent.event.Event`).

use core::cell::{Cell, RefCell};
use core::fmt;
use core::time::Duration;

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::hub::switch::prefetch;
use crate::wait_list::{WaitList, WaiterKey};

/// A flag that greenlets can wait on. [`set`](Self::set) wakes every waiter; until
/// [`clear`](Self::clear), later waits return at once.
///
/// Every greenlet that `set` woke returns from its wait, even if the event is cleared before
/// it runs (and so do [`wait`](crate::wait::wait)/[`iwait`](crate::wait::iwait) on it). A
/// [`wait`](Self::wait) on an event that is set returns at once, unless greenlets that a `set`
/// woke have not run yet: then it yields first, once, and they run before it (gevent's
/// `wait()` likewise queues behind the notifications in progress). So a greenlet that sets an
/// event and then waits on it does not overtake the waiters it woke.
///
/// Share it between greenlets with an `Rc`.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use std::rc::Rc;
/// use gevent::{event::Event, spawn};
/// let ready = Rc::new(Event::new());
/// let r = ready.clone();
/// let waiter = spawn(move || r.wait());
/// ready.set();
/// assert_eq!(waiter.get(), Ok(()));
/// # });
/// ```
#[derive(Default)]
pub struct Event {
    flag: Cell<bool>,
    waiters: RefCell<WaitList<TaskRef>>,
    /// Waiters that a `set` woke and that have not run since (each counts itself out when it
    /// finds that it was woken).
    woken: Cell<usize>,
    /// How many times `set` ran. Each `set` empties the queue, so a waiter that finds this
    /// changed since it queued was woken, and knows it without reaching its queue entry (with
    /// many waiters, a cache miss each).
    sets: Cell<u64>,
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
            flag: Cell::new(false),
            waiters: RefCell::new(WaitList::new()),
            woken: Cell::new(0),
            sets: Cell::new(0),
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
        self.sets.set(self.sets.get().wrapping_add(1));
        let hub = hub();
        let mut waiters = self.waiters.borrow_mut();
        // Waking a waiter writes its header, cold when there are many: each is popped
        // `WAKE_AHEAD` waiters before it is woken, with its header prefetched then. Waiters are
        // still woken in the order they came.
        let mut ahead: [Option<TaskRef>; WAKE_AHEAD] = [const { None }; WAKE_AHEAD];
        let (mut i, mut pending) = (0, 0);
        loop {
            let next = waiters.pop_front();
            if let Some(t) = &next {
                prefetch_header(t);
                self.woken.set(self.woken.get() + 1);
                pending += 1;
            } else if pending == 0 {
                break;
            }
            if let Some(t) = core::mem::replace(&mut ahead[i], next) {
                hub.unpark(&t);
                pending -= 1;
            }
            i = (i + 1) % WAKE_AHEAD;
        }
    }

    /// Queues `t` to be woken by the next `set`.
    pub(crate) fn add_waiter(&self, t: TaskRef) -> WaiterKey {
        self.waiters.borrow_mut().push_back(t)
    }

    /// Takes a waiter queued by [`add_waiter`](Self::add_waiter) out of the queue; true if a
    /// `set` had woken it already (which the waiter must know: it returns `Ok` then).
    pub(crate) fn remove_waiter(&self, key: WaiterKey) -> bool {
        let woken = self.waiters.borrow_mut().remove(key).is_none();
        if woken {
            self.woken.set(self.woken.get() - 1);
        }
        woken
    }

    /// Unsets it; later waits block until the next [`set`](Self::set).
    pub fn clear(&self) {
        self.flag.set(false);
    }

    /// Waits until it is set; if it is set already, returns at once, or after one yield if
    /// greenlets woken by a `set` have not run yet (see the type's docs).
    pub fn wait(&self) -> Result<(), Interrupted> {
        self.wait_until(None).map(|_| ())
    }

    /// Waits at most `timeout`; `Ok(true)` if it was set, `Ok(false)` if the time ran out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.wait_until(Some(hub().now() + timeout))
    }

    fn wait_until(&self, deadline: Option<crate::time::Instant>) -> Result<bool, Interrupted> {
        let hub = hub();
        if self.flag.get() {
            if self.woken.get() > 0 {
                hub.yield_now()?;
            }
            return Ok(true);
        }
        let timer = DeadlineTimer::arm(deadline);
        loop {
            let sets = self.sets.get();
            let key = self.add_waiter(hub.current());
            let parked = hub.park(WaitKind::Event);
            let woken = if self.sets.get() == sets {
                self.remove_waiter(key)
            } else {
                // A `set` popped it: its key is stale, and its entry need not be reached.
                self.woken.set(self.woken.get() - 1);
                true
            };
            parked?;
            if woken {
                return Ok(true);
            }
            if timer.expired() {
                return Ok(false);
            }
        }
    }
}

/// How many waiters [`Event::set`] pops ahead of the one it wakes.
const WAKE_AHEAD: usize = 8;

/// Prefetches the line of a greenlet that waking it writes: its count and the start of its
/// header.
#[inline(always)]
fn prefetch_header(t: &TaskRef) {
    prefetch(t.as_ptr().as_ptr() as usize);
}

/// The outcome of an [`AsyncResult`] that failed, or why waiting for it stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AsyncError<E> {
    /// The result was set to this error.
    Failed(E),
    /// Waiting was interrupted (killed, timed out).
    Interrupted(Interrupted),
}

impl<E: fmt::Display> fmt::Display for AsyncError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsyncError::Failed(e) => write!(f, "the result is an error: {e}"),
            AsyncError::Interrupted(why) => write!(f, "waiting for the result stopped: {why}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for AsyncError<E> {}

/// [`AsyncResult::set`] or [`AsyncResult::set_error`] was called on a result already set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadySet(());

impl fmt::Display for AlreadySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the AsyncResult was already set")
    }
}

impl core::error::Error for AlreadySet {}

/// A value or an error that one greenlet sets once and any number wait for (gevent's
/// `AsyncResult`). Every waiter gets the outcome.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use std::rc::Rc;
/// use gevent::{event::AsyncResult, spawn};
/// let result: Rc<AsyncResult<u32, String>> = Rc::new(AsyncResult::new());
/// let r = result.clone();
/// let waiter = spawn(move || r.get());
/// result.set(7).unwrap();
/// assert_eq!(waiter.get(), Ok(Ok(7)));
/// assert!(result.set(8).is_err(), "set once");
/// # });
/// ```
pub struct AsyncResult<T, E> {
    outcome: RefCell<Option<Result<T, E>>>,
    event: Event,
}

impl<T, E> fmt::Debug for AsyncResult<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult").field("ready", &self.ready()).finish_non_exhaustive()
    }
}

impl<T, E> Default for AsyncResult<T, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, E> AsyncResult<T, E> {
    /// An unset result.
    pub const fn new() -> Self {
        AsyncResult { outcome: RefCell::new(None), event: Event::new() }
    }

    /// Sets the value and wakes every waiter.
    pub fn set(&self, value: T) -> Result<(), AlreadySet> {
        self.set_outcome(Ok(value))
    }

    /// Sets an error and wakes every waiter.
    pub fn set_error(&self, error: E) -> Result<(), AlreadySet> {
        self.set_outcome(Err(error))
    }

    fn set_outcome(&self, outcome: Result<T, E>) -> Result<(), AlreadySet> {
        {
            let mut slot = self.outcome.borrow_mut();
            if slot.is_some() {
                return Err(AlreadySet(()));
            }
            *slot = Some(outcome);
        }
        self.event.set();
        Ok(())
    }

    /// Whether it was set (gevent's `ready()`).
    pub fn ready(&self) -> bool {
        self.outcome.borrow().is_some()
    }

    pub(crate) fn event(&self) -> &Event {
        &self.event
    }

    /// Whether it was set to a value.
    pub fn successful(&self) -> bool {
        matches!(*self.outcome.borrow(), Some(Ok(_)))
    }

    /// Waits until it is set.
    pub fn wait(&self) -> Result<(), Interrupted> {
        self.event.wait()
    }

    /// Waits at most `timeout`; `Ok(true)` if it was set.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.event.wait_timeout(timeout)
    }

    /// Waits until it is set and returns a copy of the outcome.
    pub fn get(&self) -> Result<T, AsyncError<E>>
    where
        T: Clone,
        E: Clone,
    {
        self.wait().map_err(AsyncError::Interrupted)?;
        self.try_get().expect("set once waited for")
    }

    /// Waits at most `timeout`; `None` if it was not set in time.
    pub fn get_timeout(&self, timeout: Duration) -> Option<Result<T, AsyncError<E>>>
    where
        T: Clone,
        E: Clone,
    {
        match self.wait_timeout(timeout) {
            Ok(true) => self.try_get(),
            Ok(false) => None,
            Err(why) => Some(Err(AsyncError::Interrupted(why))),
        }
    }

    /// A copy of the outcome if it is set, without waiting.
    pub fn try_get(&self) -> Option<Result<T, AsyncError<E>>>
    where
        T: Clone,
        E: Clone,
    {
        let outcome = self.outcome.borrow();
        outcome.as_ref().map(|o| o.clone().map_err(AsyncError::Failed))
    }
}
