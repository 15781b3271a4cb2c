//! Greenlet-local storage (gevent's `gevent.local.local`): a value per greenlet, created on
//! first use in that greenlet, invisible to the others, dropped when the greenlet ends.

use alloc::boxed::Box;
use core::any::Any;
use core::fmt;

use crate::greenlet::task::Task;
use crate::hub::hub;

/// A greenlet-local slot, declared as a `static`:
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent::{local::Local, spawn};
/// static REQUEST_ID: Local<u32> = Local::new(|| 0);
/// REQUEST_ID.set(1);
/// let other = spawn(|| REQUEST_ID.with(|id| *id));
/// assert_eq!(other.get(), Ok(0), "each greenlet has its own value");
/// assert_eq!(REQUEST_ID.with(|id| *id), 1);
/// # });
/// ```
///
/// Each greenlet has one value per slot, always. [`with`](Self::with) lends it out as `&mut T`
/// for the length of a call, so, as with a `RefCell`, the same greenlet cannot reach that
/// slot again until the call returns: [`with`](Self::with), [`get`](Self::get) or
/// [`set`](Self::set) on it from inside panics (another greenlet, or another slot, is fine,
/// even while the call is blocked). Change the value from inside through the `&mut T`.
pub struct Local<T: 'static> {
    init: fn() -> T,
}

/// What a greenlet's entry for a slot holds while [`Local::with`] has lent its value out.
struct Lent;

/// Puts a lent value back when `with` ends, however it ends (an `init` or a closure that
/// panics included): or, if there was none to put back, removes the mark.
struct LentGuard<'a> {
    task: &'a Task,
    key: usize,
    value: Option<Box<dyn Any>>,
}

impl Drop for LentGuard<'_> {
    fn drop(&mut self) {
        let mark = match self.value.take() {
            Some(value) => self.task.put_local(self.key, value),
            None => self.task.take_local(self.key),
        };
        drop(mark);
    }
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
    ///
    /// # Panics
    ///
    /// If the current greenlet is inside `with` on this slot already (its value is lent out).
    pub fn with<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> R {
        let task = hub().current_task();
        let key = self.key();
        let held = task.put_local(key, Box::new(Lent));
        if held.as_ref().is_some_and(|v| v.is::<Lent>()) {
            // The mark stays for the enclosing `with`.
            panic!(
                "Local::with or Local::get called inside Local::with on the same slot and \
                 greenlet: its value is lent out to the enclosing call"
            );
        }
        let mut lent = LentGuard { task, key, value: held };
        let value = lent.value.get_or_insert_with(|| Box::new((self.init)()));
        f(value.downcast_mut::<T>().expect("a local holds its own type"))
    }

    /// Sets the current greenlet's value.
    ///
    /// # Panics
    ///
    /// If the current greenlet is inside [`with`](Self::with) on this slot (its value is lent
    /// out; change it through the `&mut T` there).
    pub fn set(&'static self, value: T) {
        let task = hub().current_task();
        let key = self.key();
        let Some(old) = task.put_local(key, Box::new(value)) else { return };
        if old.is::<Lent>() {
            let rejected = task.put_local(key, old);
            drop(rejected);
            panic!(
                "Local::set called inside Local::with on the same slot and greenlet: its value \
                 is lent out to the enclosing call (change it through the &mut there)"
            );
        }
        drop(old);
    }

    /// A copy of the current greenlet's value.
    ///
    /// # Panics
    ///
    /// If the current greenlet is inside [`with`](Self::with) on this slot.
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(|value| value.clone())
    }
}
