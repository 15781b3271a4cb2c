//! The OS readiness backends, one module per mechanism behind core's `Poller` trait.
//!
//! Every backend defines:
//! - `OsPoller`: `OsPoller::new() -> io::Result<OsPoller>` and an implementation of
//!   [`gevent_core::platform::Poller`], watching [`OwnedFd`] sources (see [`fd`]), registering
//!   them edge-triggered for both directions and reporting errors and hang-ups as readable and
//!   writable;
//! - a waker inside it that another thread can trigger ([`RemoteWaker`]), which makes a
//!   blocked `poll` return.
//!
//! Linux and Android use epoll with an eventfd waker; macOS, iOS, FreeBSD and DragonFly use
//! kqueue with an `EVFILT_USER` waker. As in mio, no policy lives here: the hub decides what to do with events.
//!
//! [`RemoteWaker`]: gevent_core::platform::RemoteWaker

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
compile_error!(
    "gevent does not support this operating system: it runs on Linux and Android (epoll), and \
     on macOS, iOS, FreeBSD and DragonFly BSD (kqueue); on bare metal, use gevent-embedded"
);

#[cfg_attr(any(target_os = "linux", target_os = "android"), path = "epoll.rs")]
// NetBSD and OpenBSD lack EVFILT_USER in rustix, which the kqueue waker uses.
#[cfg_attr(
    any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly"),
    path = "kqueue.rs"
)]
mod poller;

pub(crate) use poller::OsPoller;

use std::any::Any;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use gevent_core::platform::PollError;

/// Converts an OS error into the core's poller error, naming the failed operation.
pub(crate) fn poll_error(operation: &'static str, e: rustix::io::Errno) -> PollError {
    PollError { operation, code: Some(e.raw_os_error()) }
}

const NOT_AN_FD: PollError = PollError {
    operation: "register (the OS poller watches OwnedFd sources: convert sockets and pipes with \
                OwnedFd::from)",
    code: None,
};

/// The descriptor of a source, which the poller watches only if it is an [`OwnedFd`]: a type
/// that owns its descriptor and cannot be made to name another through a shared reference, so
/// the one it names is open, and the same, for as long as its registration holds it.
pub(crate) fn fd(source: &dyn Any) -> Result<BorrowedFd<'_>, PollError> {
    source.downcast_ref::<OwnedFd>().map(AsFd::as_fd).ok_or(NOT_AN_FD)
}
