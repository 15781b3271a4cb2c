//! Reading a finished greenlet's value: `get`, `take`, `get_timeout`, `try_get`.
//!
//! A greenlet whose body returns `Result<T, E>` has methods that flatten: `get()` gives
//! `Result<T, Error>`, the body's `Err(e)` converted into [`Error`], so `?` works on it like on
//! any blocking call. Any other value type gets them from [`Unflattened`] through `Deref`
//! (method lookup tries `Greenlet`'s own methods first), which returns the value as it is.

use core::time::Duration;

use super::{Greenlet, Unflattened, ValueSlot, join_task};
use crate::error::{Error, FailureKind, Interrupted};
use crate::greenlet::task::Outcome;
use crate::hub::hub;

impl<T: 'static> Unflattened<T> {
    /// Waits for the end (at most `timeout`); `Ok(false)` if it did not come.
    fn wait_done(&self, timeout: Option<Duration>) -> Result<bool, Interrupted> {
        let deadline = timeout.map(|d| hub().now() + d);
        join_task(&self.inner, deadline)
    }

    /// The value of a finished greenlet, through `f` (clone or move), or why there is none.
    fn finished_value(&self, f: impl FnOnce(&dyn ValueSlot<T>) -> Option<T>) -> Result<T, Error> {
        let task = self.inner.task();
        match task.outcome() {
            // Not `ok_or(Error::Taken)`: that built and dropped an `Error` on every read.
            Outcome::Value => match f(self.slot()) {
                Some(value) => Ok(value),
                None => Err(Error::Taken),
            },
            Outcome::Killed => Err(Error::Killed(task.error_of_kind(FailureKind::Killed))),
            Outcome::Failed => Err(Error::Failed(task.error().expect("a failed greenlet"))),
            Outcome::Pending => Err(Error::NotReady),
        }
    }

    /// Waits for it to finish and returns a clone of its value (gevent's `get()`).
    ///
    /// Fails with [`Error::Interrupted`] if the wait is interrupted, [`Error::Killed`] if a
    /// plain kill ended it before it produced a value, [`Error::Failed`] if it failed, and
    /// [`Error::Taken`] if the value was moved out.
    pub fn get(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.get_timeout_inner(None)
    }

    /// Waits for it to finish and moves its value out; later calls fail with [`Error::Taken`].
    pub fn take(&self) -> Result<T, Error> {
        self.wait_done(None)?;
        self.finished_value(|slot| slot.take_value())
    }

    /// [`get`](Self::get), waiting at most `timeout`: [`Error::NotReady`] if it has not
    /// finished by then.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error>
    where
        T: Clone,
    {
        self.get_timeout_inner(Some(timeout))
    }

    /// [`get`](Self::get) without waiting (gevent's `get(block=False)`): [`Error::NotReady`] if
    /// it has not finished.
    pub fn try_get(&self) -> Result<T, Error>
    where
        T: Clone,
    {
        self.finished_value(|slot| slot.clone_value())
    }

    fn get_timeout_inner(&self, timeout: Option<Duration>) -> Result<T, Error>
    where
        T: Clone,
    {
        if !self.wait_done(timeout)? {
            return Err(Error::NotReady);
        }
        self.try_get()
    }
}

/// The flattening forms for bodies that return `Result<T, E>`.
impl<T: 'static, E: Into<Error> + 'static> Greenlet<Result<T, E>> {
    /// Waits for it to finish and returns a clone of its `Ok` value; its `Err(e)` comes back
    /// converted into [`Error`] (gevent's `get()` raising the greenlet's exception). A body that
    /// ended with the `Killed` error of a plain kill gives [`Error::Killed`]; otherwise as
    /// [`Unflattened::get`].
    ///
    /// ```
    /// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
    /// # #[cfg(not(miri))] // Miri cannot switch stacks
    /// # gevent_core::sim::run(|| {
    /// use core::time::Duration;
    /// use gevent::{sleep, spawn};
    /// let g = spawn(|| -> gevent::Result<&str> {
    ///     sleep(Duration::from_millis(10))?;
    ///     Ok("done")
    /// });
    /// assert_eq!(g.get(), Ok("done"));
    /// # });
    /// ```
    pub fn get(&self) -> Result<T, Error>
    where
        T: Clone,
        E: Clone,
    {
        self.flatten(self.raw.get())
    }

    /// Waits for it to finish and moves its `Ok` value out; see [`get`](Self::get).
    pub fn take(&self) -> Result<T, Error> {
        self.flatten(self.raw.take())
    }

    /// [`get`](Self::get), waiting at most `timeout`: [`Error::NotReady`] if it has not
    /// finished by then.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error>
    where
        T: Clone,
        E: Clone,
    {
        self.flatten(self.raw.get_timeout(timeout))
    }

    /// [`get`](Self::get) without waiting: [`Error::NotReady`] if it has not finished.
    pub fn try_get(&self) -> Result<T, Error>
    where
        T: Clone,
        E: Clone,
    {
        self.flatten(self.raw.try_get())
    }

    fn flatten(&self, raw: Result<Result<T, E>, Error>) -> Result<T, Error> {
        match raw? {
            Ok(value) => Ok(value),
            Err(e) => match e.into() {
                Error::Interrupted(Interrupted::Killed) if self.killed() => {
                    let task = self.raw.inner.task();
                    Err(Error::Killed(task.error_of_kind(FailureKind::Killed)))
                }
                e => Err(e),
            },
        }
    }
}
