//! Greenlet-local storage (gevent's `gevent.local.local`): a value per greenlet, created on
//! first use in that greenlet, invisible to the others, dropped when the greenlet ends.

use alloc::boxed::Box;
use core::any::Any;
use core::fmt;

use crate::hub::hub;

/// A greenlet-local slot, declared as a `static`:
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent_core::{local::Local, spawn};
/// static REQUEST_ID: Local<u32> = Local::new(|| 0);
/// REQUEST_ID.set(1);
/// let other = spawn(|| REQUEST_ID.with(|id| *id));
/// assert_eq!(other.get(), Ok(0), "each greenlet has its own value");
/// assert_eq!(REQUEST_ID.with(|id| *id), 1);
/// # });
/// ```
pub struct Local<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

impl<T: 'static> Local<T> {
    /// A slot whose value in each greenlet starts as `init()`.
    pub const fn new(init: fn() -> T) -> Self {
        Local { init }
    }

    fn key(&'static self) -> usize {
        self as *const Self as usize
    }

    /// Calls `f` with the current greenlet's value, creating it first if needed.
    pub fn with<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> R {
        let task = hub().current_task();
        let mut value = match task.take_local(self.key()) {
            Some(value) => value,
            None => Box::new((self.init)()) as Box<dyn Any>,
        };
        let result = f(value.downcast_mut::<T>().expect("a local holds its own type"));
        task.put_local(self.key(), value);
        result
    }

    /// Sets the current greenlet's value.
    pub fn set(&'static self, value: T) {
        let task = hub().current_task();
        drop(task.take_local(self.key()));
        task.put_local(self.key(), Box::new(value));
    }

    /// A copy of the current greenlet's value.
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(|value| value.clone())
    }
}
