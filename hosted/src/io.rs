//! Waiting for any file descriptor to be readable or writable (gevent's `wait_read` and
//! `wait_write`): the way to drive another library's non-blocking sockets from a greenlet.
//!
//! ```
//! use std::io::{ErrorKind, Write};
//! use std::time::Duration;
//!
//! let (reader, mut writer) = gevent::os::pipe()?;
//! let timed_out = gevent::io::wait_readable(&reader, Some(Duration::from_millis(5)));
//! assert_eq!(timed_out.unwrap_err().kind(), ErrorKind::TimedOut);
//! writer.write_all(b"ready")?;
//! gevent::io::wait_readable(&reader, None)?;
//! # std::io::Result::Ok(())
//! ```
//!
//! # Errors from a kill or a `Timeout`
//!
//! When a kill or a hub [`Timeout`] interrupts a wait, the `io::Error` carries the
//! [`Interrupted`](crate::Interrupted) as its inner error, with the kind [`TimedOut`](io::ErrorKind::TimedOut) for a
//! `Timeout` and [`Other`](io::ErrorKind::Other) otherwise. Never
//! [`Interrupted`](crate::Interrupted)(io::ErrorKind::Interrupted): `std::io`'s `read_exact` and `write_all` retry
//! on that kind, and a kill is sticky, so they would retry forever.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use gevent_core::Timeout;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Interest, PollError};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// Parks the current greenlet until `fd` is readable (a read would not block: data, end of
/// file, a hang-up or an error is waiting), or `timeout` passes, which fails with
/// [`io::ErrorKind::TimedOut`]. Other greenlets run meanwhile.
///
/// A kill or a hub [`Timeout`] ends the wait with an error carrying the [`Interrupted`](crate::Interrupted) (see
/// the [module documentation](self)). Regular files and directories, which a read never
/// waits for, are readable at once.
///
/// A ready `fd` (checked first, so a zero `timeout` succeeds on it) costs one `poll(2)`.
/// Otherwise the call registers a duplicate of `fd` with the hub for the length of the wait and
/// closes it afterwards: `fd` itself is only borrowed, and readiness belongs to the open file,
/// which the duplicate shares. A type doing I/O over and over should keep one
/// [`IoRegistration`] instead.
pub fn wait_readable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::READABLE, timeout)
}

/// Parks the current greenlet until `fd` is writable (a write would not block, or would fail at
/// once), or `timeout` passes, which fails with [`io::ErrorKind::TimedOut`]. Otherwise the same
/// as [`wait_readable`].
pub fn wait_writable(fd: impl AsFd, timeout: Option<Duration>) -> io::Result<()> {
    wait(fd.as_fd(), Interest::WRITABLE, timeout)
}

fn wait(fd: BorrowedFd<'_>, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
    let direction = if interest.is_readable() { "readable" } else { "writable" };
    let timed_out = || {
        let waited = timeout.unwrap_or_default();
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the file descriptor was not {direction} within {waited:?}"),
        )
    };
    // A look first: a ready fd costs one system call, and a zero timeout cannot fire before
    // readiness is known.
    let mut look = [PollFd::from_borrowed_fd(fd, poll_flags(interest))];
    poll_now(&mut look)?;
    if is_ready(&look[0], interest) {
        return Ok(());
    }
    if timeout == Some(Duration::ZERO) {
        return Err(timed_out());
    }
    let Some(registration) = register_duplicate(fd)? else { return Ok(()) };
    let deadline = timeout.map(Timeout::start);
    match registration.wait(interest) {
        Ok(()) => Ok(()),
        Err(why) if deadline.as_ref().is_some_and(|d| d.is(&why)) => Err(timed_out()),
        Err(why) => Err(io::Error::from(why)),
    }
}

/// Registers a duplicate of `fd` with the hub, for one wait on a descriptor the caller only
/// borrows; `None` for a regular file or directory, which epoll refuses and which is always
/// ready (as poll(2) reports it).
///
/// A fresh registration learns the current readiness: epoll and kqueue report a source that
/// is already ready when it is added, edge-triggered or not. So readiness that comes between
/// a look with [`poll_now`] and the registration is not lost.
pub(crate) fn register_duplicate(
    fd: BorrowedFd<'_>,
) -> io::Result<Option<IoRegistration<OwnedFd>>> {
    let duplicate = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
    match IoRegistration::new(duplicate) {
        Ok(registration) => Ok(Some(registration)),
        Err(e) if e.code == Some(Errno::PERM.raw_os_error()) => Ok(None),
        Err(e) => Err(registration_error(e)),
    }
}

/// Fills in the readiness of `fds` now, without waiting (poll(2) with a zero timeout): the
/// level-triggered answer that edge-triggered registrations do not keep.
pub(crate) fn poll_now(fds: &mut [PollFd<'_>]) -> io::Result<()> {
    const NOW: Timespec = Timespec { tv_sec: 0, tv_nsec: 0 };
    loop {
        match rustix::event::poll(fds, Some(&NOW)) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The poll(2) events that answer `interest`.
pub(crate) fn poll_flags(interest: Interest) -> PollFlags {
    let mut flags = PollFlags::empty();
    if interest.is_readable() {
        flags |= PollFlags::IN;
    }
    if interest.is_writable() {
        flags |= PollFlags::OUT;
    }
    flags
}

/// Whether poll(2) reported `fd` ready for `interest` (either direction for both). Errors and
/// hang-ups count as ready, as in [`Readiness`](gevent_core::platform::Readiness): the
/// operation runs and meets them itself.
pub(crate) fn is_ready(fd: &PollFd<'_>, interest: Interest) -> bool {
    let failed = PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL;
    fd.revents().intersects(poll_flags(interest) | failed)
}

/// A limit on one blocking call: how long, and the error that reports it was reached.
#[derive(Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) after: Duration,
    pub(crate) kind: io::ErrorKind,
    pub(crate) what: &'static str,
}

/// Runs the non-blocking `op` on `registration`'s descriptor until it does something other
/// than `WouldBlock`, waiting for `interest` between tries, for at most `limit`: the one loop
/// every cooperative descriptor (sockets, pipes) goes through. A ready descriptor costs one
/// system call; the limit's timer is armed only if the call has to wait.
pub(crate) fn retry<T>(
    registration: &IoRegistration<OwnedFd>,
    interest: Interest,
    limit: Option<Limit>,
    op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
) -> io::Result<T> {
    retry_from(registration, interest, limit, false, op).map(|(value, _)| value)
}

/// [`retry`], which with `known_unready` starts with the wait instead of an attempt: the caller
/// cleared the readiness itself when it learnt, without a `WouldBlock`, that `op` would meet
/// one (a short read of a drained stream socket). The wait returns at once if an edge came
/// since. Also tells whether it waited, which proves that the registration's hub is the
/// thread's (see [`IoRegistration::wait`]).
pub(crate) fn retry_from<T>(
    registration: &IoRegistration<OwnedFd>,
    interest: Interest,
    limit: Option<Limit>,
    known_unready: bool,
    mut op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
) -> io::Result<(T, Waited)> {
    let mut deadline: Option<Timeout> = None;
    if !known_unready {
        if let Some(done) = attempt(registration, interest, &mut op) {
            return done.map(|value| (value, Waited(false)));
        }
    }
    loop {
        if deadline.is_none() {
            deadline = limit.map(|l| Timeout::start(l.after));
        }
        if let Err(why) = registration.wait(interest) {
            return Err(match (&deadline, limit) {
                (Some(timeout), Some(limit)) if timeout.is(&why) => {
                    io::Error::new(limit.kind, limit.what)
                }
                _ => why.into(),
            });
        }
        if let Some(done) = attempt(registration, interest, &mut op) {
            return done.map(|value| (value, Waited(true)));
        }
    }
}

/// Whether [`retry_from`] waited (successfully) before its last attempt.
#[derive(Clone, Copy)]
pub(crate) struct Waited(pub(crate) bool);

/// Runs `op` until it is not interrupted by a signal: `None` if it met `WouldBlock` (and the
/// readiness is cleared), else its result.
fn attempt<T>(
    registration: &IoRegistration<OwnedFd>,
    interest: Interest,
    op: &mut impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
) -> Option<io::Result<T>> {
    loop {
        match op(registration.source()) {
            Ok(value) => return Some(Ok(value)),
            Err(Errno::WOULDBLOCK) => break,
            Err(Errno::INTR) => {}
            Err(e) => return Some(Err(e.into())),
        }
    }
    // Readiness that arrived since the attempt is reported only while this greenlet is
    // switched out, so clearing here loses none.
    registration.clear_readiness(interest);
    None
}

/// An I/O error for a failed registration, with the kind of its OS error.
pub(crate) fn registration_error(e: PollError) -> io::Error {
    let kind =
        e.code.map_or(io::ErrorKind::Other, |code| io::Error::from_raw_os_error(code).kind());
    io::Error::new(kind, e)
}
