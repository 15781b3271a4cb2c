//! Waiting for whichever of several things is ready first (gevent's `wait` and `iwait`):
//! greenlets (finished), [`Event`]s (set) and [`AsyncResult`]s (set), in any mix.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::error::Interrupted;
use crate::event::{AsyncResult, Event};
use crate::greenlet::task::WaitKind;
use crate::greenlet::{DeadlineTimer, Greenlet, GreenletRef};
use crate::hub::hub;
use crate::time::Instant;

mod sealed {
    /// Registration with the thing waited for; not for implementing outside this crate.
    pub trait Subscribe {
        /// Queues the current greenlet to be woken when it becomes ready; a key to cancel.
        fn subscribe(&self) -> Option<u64>;
        /// Cancels a subscription that was not used.
        fn unsubscribe(&self, key: u64);
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
    fn unsubscribe(&self, key: u64) {
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
    fn unsubscribe(&self, key: u64) {
        self.task_ref().task().remove_joiner(crate::wait_list::WaiterKey::from_bits(key));
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
    fn unsubscribe(&self, key: u64) {
        self.remove_waiter(crate::wait_list::WaiterKey::from_bits(key));
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
    fn unsubscribe(&self, key: u64) {
        self.event().unsubscribe(key)
    }
}

impl<T, E> Waitable for AsyncResult<T, E> {
    fn is_ready(&self) -> bool {
        self.ready()
    }
}

/// Waits until `count` of `objects` (all of them if `None`) are ready, or `timeout` passes;
/// returns the indices of the ready ones in the order they became ready.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent_core::{event::Event, sleep, spawn, wait::{wait, Waitable}};
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
        yielded: alloc::vec![false; objects.len()],
        deadline: timeout.map(|t| hub().now() + t),
    }
}

/// The iterator of [`iwait`].
pub struct IWait<'a> {
    objects: &'a [&'a dyn Waitable],
    yielded: Vec<bool>,
    deadline: Option<Instant>,
}

impl fmt::Debug for IWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IWait").field("yielded", &self.yielded).finish_non_exhaustive()
    }
}

impl IWait<'_> {
    fn next_ready(&mut self) -> Option<usize> {
        let i =
            (0..self.objects.len()).find(|&i| !self.yielded[i] && self.objects[i].is_ready())?;
        self.yielded[i] = true;
        Some(i)
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
            if self.yielded.iter().all(|&y| y) || timer.expired() {
                return None;
            }
            let subscriptions: Vec<(usize, Option<u64>)> = (0..self.objects.len())
                .filter(|&i| !self.yielded[i])
                .map(|i| (i, self.objects[i].subscribe()))
                .collect();
            let parked = if subscriptions.iter().any(|(_, key)| key.is_none()) {
                Ok(()) // one became ready while subscribing
            } else {
                hub.park(WaitKind::Other("any of several greenlets, events or results (wait)"))
            };
            for (i, key) in subscriptions {
                if let Some(key) = key {
                    self.objects[i].unsubscribe(key);
                }
            }
            if let Err(why) = parked {
                return Some(Err(why));
            }
        }
    }
}
