//! Errors: why a blocking call stopped early, and how a greenlet failed.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::panic::Location;

use crate::stack::StackError;

/// Identifies one [`Timeout`](crate::Timeout) scope, so nested timeouts can be told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeoutId(pub(crate) core::num::NonZeroU64);

/// Why a blocking call returned before what it waited for happened.
///
/// Every operation that can block returns this (or an error that wraps it), so `?` carries a
/// kill or a timeout out of the greenlet's code and RAII guards release what they hold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interrupted {
    /// The greenlet was killed. Sticky: every later blocking call fails the same way, except in
    /// a [`shield`](crate::shield) scope. (The main greenlet is the exception: a kill reaches it
    /// once, since the thread's own stack cannot end.)
    Killed,
    /// The greenlet was killed with a reason ([`Greenlet::kill_with`](crate::Greenlet::kill_with),
    /// gevent's `kill(exception=...)`); sticky like [`Killed`](Self::Killed). Unlike a plain
    /// kill, this is a failure: the greenlet's `get()` reports it.
    KilledWith(Cow<'static, str>),
    /// The [`Timeout`](crate::Timeout) with this id expired; compare with
    /// [`Timeout::id`](crate::Timeout::id) to tell nested timeouts apart.
    TimedOut(TimeoutId),
    /// The main greenlet waited for something that nothing can ever bring about; the report
    /// says what it waited on and what every other greenlet waits on.
    LoopExit(Box<LoopExit>),
    /// The wait could never end for a reason known up front, such as a greenlet joining
    /// itself; the text says what.
    Deadlock(String),
    /// A blocking call was made while this thread is unwinding from a panic (from a
    /// destructor, say). Switching greenlets in the middle of an unwind would make
    /// `std::thread::panicking()` true in every other greenlet of the thread, so the call fails
    /// at once instead.
    Unwinding,
}

impl Interrupted {
    /// Whether this is the expiry of the given timeout.
    pub fn is_timeout(&self, id: TimeoutId) -> bool {
        *self == Interrupted::TimedOut(id)
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interrupted::Killed => f.write_str("the greenlet was killed"),
            Interrupted::TimedOut(id) => write!(f, "timed out (timeout #{})", id.0.get()),
            Interrupted::KilledWith(reason) => write!(f, "the greenlet was killed: {reason}"),
            Interrupted::LoopExit(report) => fmt::Display::fmt(report, f),
            Interrupted::Deadlock(what) => write!(f, "this wait could never end: {what}"),
            Interrupted::Unwinding => f.write_str(
                "a blocking call was refused because the thread is unwinding from a panic",
            ),
        }
    }
}

impl core::error::Error for Interrupted {}

/// The report of a wait that could never end: gevent's `LoopExit`, with the wait-for picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoopExit {
    /// What the main greenlet was waiting on.
    pub main_waits_on: String,
    /// Every other greenlet that is alive and waiting.
    pub parked: Vec<ParkedGreenlet>,
}

/// One waiting greenlet in a [`LoopExit`] report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedGreenlet {
    /// The greenlet's id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// What it waits on.
    pub waits_on: String,
}

impl fmt::Display for LoopExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this operation would block forever: the main greenlet waits on {}, and nothing can \
             wake it (no runnable greenlet, no timer, no registered I/O, no pending cross-thread \
             work)",
            self.main_waits_on
        )?;
        if self.parked.is_empty() {
            f.write_str("; no other greenlet is alive")
        } else {
            f.write_str("; the other live greenlets all wait too:")?;
            for g in &self.parked {
                write!(
                    f,
                    "\n  greenlet #{} '{}' (spawned at {}) waits on {}",
                    g.id, g.name, g.spawned_at, g.waits_on
                )?;
            }
            Ok(())
        }
    }
}

/// How a greenlet failed to produce a value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// It was killed by a plain kill and produced no value: before it started, or a blocking
    /// call of it returned [`Interrupted::Killed`] and it ended with that error. A cancellation,
    /// not a failure: this kind appears only in [`Error::Killed`].
    Killed,
    /// It was killed with this reason ([`Greenlet::kill_with`](crate::Greenlet::kill_with)).
    KilledWith(Cow<'static, str>),
    /// Its body panicked; the panic message, when it was a string.
    Panicked(String),
    /// No stack could be had to run it.
    NoStack(StackError),
    /// Its header could not be had from the hub's
    /// [`HeaderSource`](crate::headers::HeaderSource): it never ran (its closure was dropped
    /// at the spawn).
    NoHeader(crate::headers::HeaderError),
}

/// A greenlet that failed, with its name and spawn site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GreenletError {
    /// What went wrong.
    pub kind: FailureKind,
    /// The greenlet's id.
    pub id: u64,
    /// The greenlet's name.
    pub name: Cow<'static, str>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "greenlet #{} '{}' (spawned at {}) ", self.id, self.name, self.spawned_at)?;
        match &self.kind {
            FailureKind::Killed => f.write_str("was killed"),
            FailureKind::KilledWith(reason) => write!(f, "was killed: {reason}"),
            FailureKind::Panicked(msg) => write!(f, "panicked: {msg}"),
            FailureKind::NoStack(e) => write!(f, "could not start: no stack: {e}"),
            FailureKind::NoHeader(e) => write!(f, "could not be spawned: no header: {e}"),
        }
    }
}

impl core::error::Error for GreenletError {}

/// The one error type for `?`: every error of a blocking call converts into it.
///
/// Blocking calls return precise errors ([`Interrupted`], [`queue::GetError`](crate::queue::GetError),
/// [`JoinAllError`], ...); each converts into this type, so a function returning
/// [`Result<T>`](crate::Result) can use `?` on all of them. It is also what
/// [`Greenlet::get`](crate::Greenlet::get) returns, flattened: a greenlet whose body returns
/// `Result<T, E>` gives `Result<T, Error>` from `get()`, its `Err(e)` converted.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{sleep, spawn, with_timeout, Error};
///
/// fn fetch() -> gevent::Result<u32> {
///     let worker = spawn(|| -> gevent::Result<u32> {
///         sleep(Duration::from_millis(10))?;
///         Ok(7)
///     });
///     let value = with_timeout(Duration::from_secs(1), || worker.get())?;
///     Ok(value * 6)
/// }
/// assert_eq!(fetch(), Ok(42));
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The calling greenlet's wait was interrupted: killed, timed out, or waiting forever.
    Interrupted(Interrupted),
    /// The greenlet whose value was asked for failed: it panicked, was killed with a reason,
    /// or found no stack.
    Failed(GreenletError),
    /// The greenlet whose value was asked for was killed (a plain kill, a cancellation) and
    /// produced no value; its `kind` is [`FailureKind::Killed`].
    Killed(GreenletError),
    /// The greenlet's value was already moved out by [`Greenlet::take`](crate::Greenlet::take).
    Taken,
    /// The greenlet has not finished: from `try_get`, or `get_timeout` ran out of time.
    NotReady,
    /// A queue (or pool) had no item: from a `try_` form or a `_timeout` form that ran out.
    Empty,
    /// A queue or pool was full: from a `try_` form or a `_timeout` form that ran out.
    Full,
    /// A queue or channel is closed.
    Closed,
}

/// The error of [`Greenlet::get`](crate::Greenlet::get); the same type as [`Error`].
pub type GetError = Error;

/// `Result<T, gevent::Error>`, for functions that use `?` on blocking calls.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The interruption of the caller's wait, when that is what this is.
    pub fn interrupted(&self) -> Option<&Interrupted> {
        match self {
            Error::Interrupted(why) => Some(why),
            _ => None,
        }
    }
}

impl From<Interrupted> for Error {
    fn from(why: Interrupted) -> Self {
        Error::Interrupted(why)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Interrupted(why) => fmt::Display::fmt(why, f),
            Error::Failed(e) | Error::Killed(e) => fmt::Display::fmt(e, f),
            Error::Taken => f.write_str("the greenlet's value was already taken"),
            Error::NotReady => f.write_str("the greenlet has not finished"),
            Error::Empty => f.write_str("empty: there was no item to get"),
            Error::Full => f.write_str("full: there was no room"),
            Error::Closed => f.write_str("closed"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Interrupted(e) => Some(e),
            Error::Failed(e) | Error::Killed(e) => Some(e),
            _ => None,
        }
    }
}

/// Errors that may carry an [`Interrupted`], so that [`Timeout::is`](crate::Timeout::is) can
/// look inside any of them.
pub trait AsInterrupted {
    /// The interruption this error carries, if any.
    fn as_interrupted(&self) -> Option<&Interrupted>;
}

impl AsInterrupted for Interrupted {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        Some(self)
    }
}

impl AsInterrupted for Error {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        self.interrupted()
    }
}

/// Why [`JoinAll::wait`](crate::JoinAll::wait) stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinAllError {
    /// The waiting greenlet was interrupted.
    Interrupted(Interrupted),
    /// With `raise_error`: the greenlet at this index of the input failed first.
    Failed {
        /// Index of the failed greenlet in the slice given to `joinall`.
        index: usize,
        /// How it failed.
        error: GreenletError,
    },
}

impl From<Interrupted> for JoinAllError {
    fn from(e: Interrupted) -> Self {
        JoinAllError::Interrupted(e)
    }
}

impl fmt::Display for JoinAllError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinAllError::Interrupted(e) => write!(f, "joinall stopped: {e}"),
            JoinAllError::Failed { index, error } => {
                write!(f, "joinall: greenlet at index {index} failed: {error}")
            }
        }
    }
}

impl core::error::Error for JoinAllError {}

impl From<JoinAllError> for Error {
    fn from(e: JoinAllError) -> Self {
        match e {
            JoinAllError::Interrupted(why) => Error::Interrupted(why),
            JoinAllError::Failed { error, .. } => Error::Failed(error),
        }
    }
}

impl From<crate::queue::GetError> for Error {
    fn from(e: crate::queue::GetError) -> Self {
        match e {
            crate::queue::GetError::Empty => Error::Empty,
            crate::queue::GetError::Closed => Error::Closed,
            crate::queue::GetError::Interrupted(why) => Error::Interrupted(why),
        }
    }
}

/// The item that was not put is dropped; match on the [`PutError`](crate::queue::PutError)
/// itself to get it back.
impl<T> From<crate::queue::PutError<T>> for Error {
    fn from(e: crate::queue::PutError<T>) -> Self {
        match e {
            crate::queue::PutError::Full(_) => Error::Full,
            crate::queue::PutError::Closed(_) => Error::Closed,
            crate::queue::PutError::Interrupted(_, why) => Error::Interrupted(why),
        }
    }
}

impl<E: Into<Error>> From<crate::event::AsyncError<E>> for Error {
    fn from(e: crate::event::AsyncError<E>) -> Self {
        match e {
            crate::event::AsyncError::Failed(e) => e.into(),
            crate::event::AsyncError::Interrupted(why) => Error::Interrupted(why),
        }
    }
}

impl AsInterrupted for crate::queue::GetError {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        match self {
            crate::queue::GetError::Interrupted(why) => Some(why),
            _ => None,
        }
    }
}

impl<T> AsInterrupted for crate::queue::PutError<T> {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        match self {
            crate::queue::PutError::Interrupted(_, why) => Some(why),
            _ => None,
        }
    }
}

impl From<crate::pool::PoolFull> for Error {
    fn from(_: crate::pool::PoolFull) -> Self {
        Error::Full
    }
}

impl From<crate::pool::AddError> for Error {
    fn from(e: crate::pool::AddError) -> Self {
        match e {
            crate::pool::AddError::Full(_) => Error::Full,
            crate::pool::AddError::Interrupted(why) => Error::Interrupted(why),
        }
    }
}

impl AsInterrupted for crate::pool::AddError {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        match self {
            crate::pool::AddError::Interrupted(why) => Some(why),
            crate::pool::AddError::Full(_) => None,
        }
    }
}

/// An interruption as an I/O error, for blocking calls shaped like `std::io`'s.
///
/// The kind is [`TimedOut`](std::io::ErrorKind::TimedOut) for a [`Timeout`](crate::Timeout)'s
/// expiry and [`Other`](std::io::ErrorKind::Other) for the rest, never
/// [`Interrupted`](std::io::ErrorKind::Interrupted): `read_exact`, `write_all` and friends retry
/// on that kind, and a kill is sticky, so they would retry forever. The `Interrupted` itself is
/// the error's inner error; `Interrupted::try_from(&io_error)` gets it back.
#[cfg(feature = "std")]
impl From<Interrupted> for std::io::Error {
    fn from(why: Interrupted) -> Self {
        let kind = match why {
            Interrupted::TimedOut(_) => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, why)
    }
}

/// Recovers the interruption carried by an I/O error made from one (by `From<Interrupted>`).
#[cfg(feature = "std")]
impl TryFrom<&std::io::Error> for Interrupted {
    /// The I/O error does not carry an interruption.
    type Error = ();

    fn try_from(error: &std::io::Error) -> Result<Self, ()> {
        error.get_ref().and_then(|inner| inner.downcast_ref::<Interrupted>()).cloned().ok_or(())
    }
}

/// So that [`Timeout::is`](crate::Timeout::is) recognises its expiry inside an I/O error.
#[cfg(feature = "std")]
impl AsInterrupted for std::io::Error {
    fn as_interrupted(&self) -> Option<&Interrupted> {
        self.get_ref().and_then(|inner| inner.downcast_ref::<Interrupted>())
    }
}
