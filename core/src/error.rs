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
    /// a [`shield`](crate::shield) scope.
    Killed,
    /// The [`Timeout`](crate::Timeout) with this id expired; compare with
    /// [`Timeout::id`](crate::Timeout::id) to tell nested timeouts apart.
    TimedOut(TimeoutId),
    /// The main greenlet waited for something that nothing can ever bring about; the report
    /// says what it waited on and what every other greenlet waits on.
    LoopExit(Box<LoopExit>),
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
            Interrupted::LoopExit(report) => fmt::Display::fmt(report, f),
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
    /// It was killed: before it started, or a blocking call of it returned
    /// [`Interrupted::Killed`].
    Killed,
    /// Its body panicked; the panic message, when it was a string.
    Panicked(String),
    /// No stack could be had to run it.
    NoStack(StackError),
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
            FailureKind::Panicked(msg) => write!(f, "panicked: {msg}"),
            FailureKind::NoStack(e) => write!(f, "could not start: no stack: {e}"),
        }
    }
}

impl core::error::Error for GreenletError {}

/// Why [`Greenlet::get`](crate::Greenlet::get) has no value to return.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// Waiting for the greenlet was interrupted (the caller was killed or timed out).
    Interrupted(Interrupted),
    /// The greenlet failed.
    Failed(GreenletError),
    /// The value was already moved out by [`Greenlet::take`](crate::Greenlet::take).
    Taken,
}

impl From<Interrupted> for GetError {
    fn from(e: Interrupted) -> Self {
        GetError::Interrupted(e)
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Interrupted(e) => write!(f, "waiting for the greenlet stopped: {e}"),
            GetError::Failed(e) => fmt::Display::fmt(e, f),
            GetError::Taken => f.write_str("the greenlet's value was already taken"),
        }
    }
}

impl core::error::Error for GetError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            GetError::Interrupted(e) => Some(e),
            GetError::Failed(e) => Some(e),
            GetError::Taken => None,
        }
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
