//! Waiting for whichever of several things is ready first (gevent's `wait` and `iwait`):
//! greenlets (finished), [`Event`]s (set), [`AsyncResult`]s (set) and semaphores (a permit
//! free), in any mix.
//!
//! An object counts as ready when it is ready as the waiter looks, or when it woke the waiter
//! (as gevent notifies every linked waiter): an `Event` set and cleared again before the
//! waiter runs is reported, and so is a semaphore whose free permit another greenlet took
//! first. Waiting on a semaphore does not take a permit.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::error::Interrupted;
use crate::event::{AsyncResult, Event};
use crate::greenlet::task::WaitKind;
use crate::greenlet::{DeadlineTimer, Greenlet, GreenletRef};
use crate::hub::hub;
use crate::lock::{BoundedSemaphore, Semaphore};
use crate::time::Instant;
use crate::wait_list::WaiterKey;

mod sealed {
    /// Registration with the thing waited for; not for implementing outside this crate.
    pub trait Subscribe {
        /// Queues the current greenlet to be woken when it becomes ready; a key to cancel, or
        /// `None` if it is ready now.
        fn subscribe(&self) -> Option<u64>;
        /// Ends a subscription; true if it had woken the greenlet (the object became ready).
        fn unsubscribe(&self, key: u64) -> bool;
    }
}

/// Something a greenlet can wait for with [`wait`] and [`iwait`].
pub trait Waitable: sealed::Subscribe {
    /// Whether it is ready now.
    fn is_ready(&self) -> bool;
}

impl<T: 'static> sealed::Subscribe for Greenlet<T> {
    fn subscribe(&self) -> Option<u64> {
        self.to_ref().subscribe()
    }
    fn unsubscribe(&self, key: u64) -> bool {
        self.to_ref().unsubscribe(key)
    }
}

impl<T: 'static> Waitable for Greenlet<T> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
}

impl sealed::Subscribe for GreenletRef {
    fn subscribe(&self) -> Option<u64> {
        let task = self.task_ref().task();
        (!task.is_finished()).then(|| task.add_joiner(hub().current()).to_bits())
    }
    fn unsubscribe(&self, key: u64) -> bool {
        let task = self.task_ref().task();
        task.remove_joiner(WaiterKey::from_bits(key));
        // Its end woke the joiners; ended it stays.
        task.is_finished()
    }
}

impl Waitable for GreenletRef {
    fn is_ready(&self) -> bool {
        self.ready()
    }
}

impl sealed::Subscribe for Event {
    fn subscribe(&self) -> Option<u64> {
        (!self.is_set()).then(|| self.add_waiter(hub().current()).to_bits())
    }
    fn unsubscribe(&self, key: u64) -> bool {
        self.remove_waiter(WaiterKey::from_bits(key))
    }
}

impl Waitable for Event {
    fn is_ready(&self) -> bool {
        self.is_set()
    }
}

impl<T, E> sealed::Subscribe for AsyncResult<T, E> {
    fn subscribe(&self) -> Option<u64> {
        self.event().subscribe()
    }
    fn unsubscribe(&self, key: u64) -> bool {
        self.event().unsubscribe(key)
    }
}

impl<T, E> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
}

impl sealed::Subscribe for Semaphore {
    fn subscribe(&self) -> Option<u64> {
        self.add_watcher(hub().current()).map(WaiterKey::to_bits)
    }
    fn unsubscribe(&self, key: u64) -> bool {
        self.remove_watcher(WaiterKey::from_bits(key))
    }
}

/// Ready when a permit is free; waiting does not take it.
impl Waitable for Semaphore {
    fn is_ready(&self) -> bool {
        !self.locked()
    }
}

impl sealed::Subscribe for BoundedSemaphore {
    fn subscribe(&self) -> Option<u64> {
        self.semaphore().subscribe()
    }
    fn unsubscribe(&self, key: u64) -> bool {
        self.semaphore().unsubscribe(key)
    }
}

/// Ready when a permit is free; waiting does not take it.
impl Waitable for BoundedSemaphore {
    fn is_ready(&self) -> bool {
        !self.locked()
    }
}

/// Waits until `count` of `objects` (all of them if `None`) are ready, or `timeout` passes;
/// returns the indices of the ready ones in the order they became ready. A `count` of 0
/// returns at once with none.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{event::Event, sleep, spawn, wait::{wait, Waitable}};
/// let slow = spawn(|| sleep(Duration::from_millis(20)));
/// let fast = spawn(|| sleep(Duration::from_millis(10)));
/// let never = Event::new();
/// let ready = wait(&[&slow as &dyn Waitable, &fast, &never], Some(2), None).unwrap();
/// assert_eq!(ready, [1, 0]);
/// # });
/// ```
pub fn wait(
    objects: &[&dyn Waitable],
    count: Option<usize>,
    timeout: Option<Duration>,
) -> Result<Vec<usize>, Interrupted> {
    let count = count.unwrap_or(objects.len()).min(objects.len());
    let mut ready = Vec::with_capacity(count);
    if count == 0 {
        return Ok(ready);
    }
    for next in iwait(objects, timeout) {
        ready.push(next?);
        if ready.len() == count {
            break;
        }
    }
    Ok(ready)
}

/// Yields the indices of `objects` as they become ready (among those ready at the same time,
/// in index order), until all have been yielded or `timeout` passes.
pub fn iwait<'a>(objects: &'a [&'a dyn Waitable], timeout: Option<Duration>) -> IWait<'a> {
    IWait {
        objects,
        marks: alloc::vec![Mark::Waiting; objects.len()],
        keys: Vec::with_capacity(objects.len()),
        deadline: timeout.map(|t| hub().now() + t),
    }
}

/// Where an object of [`iwait`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    /// Not seen ready yet.
    Waiting,
    /// It woke the waiter; yielded next, even if it is no longer ready.
    Woke,
    /// Yielded.
    Yielded,
}

/// The iterator of [`iwait`].
pub struct IWait<'a> {
    objects: &'a [&'a dyn Waitable],
    marks: Vec<Mark>,
    /// The subscriptions of one wait, kept to reuse the allocation.
    keys: Vec<(usize, u64)>,
    deadline: Option<Instant>,
}

impl fmt::Debug for IWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IWait").field("marks", &self.marks).finish_non_exhaustive()
    }
}

impl IWait<'_> {
    fn next_ready(&mut self) -> Option<usize> {
        let i = (0..self.objects.len()).find(|&i| match self.marks[i] {
            Mark::Woke => true,
            Mark::Waiting => self.objects[i].is_ready(),
            Mark::Yielded => false,
        })?;
        self.marks[i] = Mark::Yielded;
        Some(i)
    }

    /// Subscribes to every object not yielded yet; false if one turned out to be ready.
    fn subscribe_all(&mut self) -> bool {
        self.keys.clear();
        for (i, object) in self.objects.iter().enumerate() {
            if self.marks[i] != Mark::Waiting {
                continue;
            }
            match object.subscribe() {
                Some(key) => self.keys.push((i, key)),
                None => return false,
            }
        }
        true
    }

    fn unsubscribe_all(&mut self) {
        for &(i, key) in &self.keys {
            if self.objects[i].unsubscribe(key) {
                self.marks[i] = Mark::Woke;
            }
        }
        self.keys.clear();
    }
}

impl Iterator for IWait<'_> {
    type Item = Result<usize, Interrupted>;

    fn next(&mut self) -> Option<Self::Item> {
        let hub = hub();
        let timer = DeadlineTimer::arm(self.deadline);
        loop {
            if let Some(i) = self.next_ready() {
                return Some(Ok(i));
            }
            if self.marks.iter().all(|&m| m == Mark::Yielded) || timer.expired() {
                return None;
            }
            let parked = if self.subscribe_all() {
                hub.park(WaitKind::Other(
                    &"any of several greenlets, events, results or semaphores (wait)",
                ))
            } else {
                Ok(()) // one became ready while subscribing
            };
            self.unsubscribe_all();
            if let Err(why) = parked {
                return Some(Err(why));
            }
        }
    }
}
