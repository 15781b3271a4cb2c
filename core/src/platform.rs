//! What a hub needs from the world, as small traits that the adapters implement.
//!
//! The core knows nothing of sockets, files, threads or clocks. The hosted crate implements
//! these traits with epoll/kqueue and `CLOCK_MONOTONIC`, the embedded crate with smoltcp and a
//! tick counter, and the `sim` feature with a virtual clock for deterministic tests.

use alloc::boxed::Box;
use core::any::Any;
use core::fmt;
use core::time::Duration;

use crate::shared::Shared;
use crate::stack::StackSource;
use crate::time::Instant;

/// A monotonic clock.
pub trait Clock {
    /// The current time; never earlier than a previous call's result.
    fn now(&self) -> Instant;
}

/// Wakes a hub's poller from another thread or an interrupt handler.
pub trait RemoteWaker: Send + Sync {
    /// Makes a current or the next [`Poller::poll`] return promptly.
    fn wake(&self);
}

/// The hub's name for a registered source, handed back with its readiness events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// Which readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    /// Readable readiness.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Writable readiness.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Both.
    pub const BOTH: Interest = Interest { readable: true, writable: true };

    /// Whether readable readiness is asked for.
    pub const fn is_readable(self) -> bool {
        self.readable
    }

    /// Whether writable readiness is asked for.
    pub const fn is_writable(self) -> bool {
        self.writable
    }
}

/// Readiness reported for a source. Errors and hang-ups count as both readable and writable,
/// so that the waiting operation runs and meets the error itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Readiness {
    /// A read would not block (data, end of stream, or an error to report).
    pub readable: bool,
    /// A write would not block (buffer space, or an error to report).
    pub writable: bool,
}

/// An error from the platform's poller, with the operation that failed and an OS code if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollError {
    /// The operation that failed, such as `"epoll_ctl(ADD)"`.
    pub operation: &'static str,
    /// The OS error number, when there is one.
    pub code: Option<i32>,
}

impl fmt::Display for PollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} failed (OS error {code})", self.operation),
            None => write!(f, "{} failed", self.operation),
        }
    }
}

impl core::error::Error for PollError {}

/// The hub's view of an I/O readiness mechanism.
///
/// Registrations are edge-triggered: a source is reported when it *becomes* ready, and the
/// hub remembers readiness until an operation meets `WouldBlock` and clears it.
///
/// # Sources
///
/// A source is whatever value names an I/O object to this poller: an `OwnedFd` for epoll and
/// kqueue, a socket of the smoltcp poller, a simulated source. The poller sees it by reference,
/// as `&dyn Any`, only for the duration of each call, and downcasts it to the types it watches;
/// it refuses any other type with an error (an fd number would name nothing, or something else,
/// to the smoltcp poller). No raw number crosses this trait, so a poller never has to trust one:
/// whoever calls it (the hub, or anyone through [`with_poller`](crate::hub::with_poller) or
/// [`Platform::poller`]) can only pass a source it holds at that moment.
///
/// A poller must only watch types that own the object they name for as long as they live, and
/// that a shared reference cannot make name another object (`OwnedFd` is such a type; a type
/// with interior mutability over its descriptor is not). [`IoRegistration`] owns its source
/// and deregisters it before dropping it, so a registered source is always open and always the
/// one it was when registered.
///
/// What a caller that reaches the poller directly can still do is a logic error, never
/// undefined behaviour: a token of its choosing makes at most spurious readiness for the hub's
/// registration with that token (absorbed by its retry loop), and deregistering a source it
/// borrowed from an [`IoRegistration`] loses that registration's wake-ups.
///
/// [`IoRegistration`]: crate::hub::IoRegistration
pub trait Poller {
    /// Starts reporting readiness of `source` under `token`, and returns a number that names
    /// the source in reports of what greenlets wait on (a file descriptor, a socket's index).
    ///
    /// Fails if `source` is not a type this poller watches, or is registered already.
    fn register(
        &mut self,
        source: &dyn Any,
        token: Token,
        interest: Interest,
    ) -> Result<u64, PollError>;

    /// Stops reporting `source`.
    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError>;

    /// Waits until a registered source is ready, the timeout passes, or a [`RemoteWaker`] of
    /// this poller is woken, and reports each ready source to `ready`. `None` waits without
    /// limit; a zero timeout only collects what is ready now.
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError>;

    /// Called when the hub forgets readiness of a source (an operation met `WouldBlock`), for
    /// pollers that find readiness by looking at state rather than being told of edges: such a
    /// poller must report the source again as soon as it is ready again. The default does
    /// nothing (right for epoll and kqueue, whose edges come from the kernel).
    fn readiness_cleared(&mut self, source: &dyn Any, interest: Interest) {
        let _ = (source, interest);
    }

    /// A waker that other threads can use to interrupt [`Poller::poll`] (an `Arc` on targets
    /// with compare-and-swap, a `&'static` reference on others: see [`Shared`]). The hub asks
    /// once, when it is created.
    fn remote_waker(&self) -> Shared<dyn RemoteWaker>;

    /// Gives access to the concrete poller, for adapters that need backend-specific calls.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Everything a hub is built from.
pub struct Platform {
    /// The I/O readiness mechanism.
    pub poller: Box<dyn Poller>,
    /// The monotonic clock timers are measured against.
    pub clock: Box<dyn Clock>,
    /// Where greenlet stacks come from.
    pub stacks: Box<dyn StackSource>,
    /// The stack size of greenlets spawned without [`Builder::stack_size`](crate::Builder::stack_size)
    /// ([`DEFAULT_STACK_SIZE`](crate::stack::DEFAULT_STACK_SIZE) on hosted platforms).
    pub default_stack_size: usize,
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Platform").finish_non_exhaustive()
    }
}
