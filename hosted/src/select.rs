//! Waiting for the first of many file descriptors (gevent's `select.select` and `selectors`):
//! [`select()`] for a one-off wait on lists of descriptors, [`Selector`] for a set of
//! registrations kept across waits. Other greenlets run while either waits.
//!
//! ```
//! use std::io::Write;
//! use std::os::fd::BorrowedFd;
//! use std::time::Duration;
//! use gevent::select::{EVENT_READ, Selector, select};
//!
//! let (reader, mut writer) = gevent::os::pipe()?;
//! let (readable, writable) = select([&reader], [&writer], None)?;
//! assert!(readable.is_empty() && writable.len() == 1); // an empty pipe has room
//! // A timeout is an empty answer, not an error. (An empty list needs a type.)
//! let (readable, _) = select([&reader], [] as [BorrowedFd; 0], Some(Duration::ZERO))?;
//! assert!(readable.is_empty());
//!
//! let mut selector = Selector::new();
//! selector.register(&reader, EVENT_READ, "the pipe")?;
//! let writing = gevent::spawn(move || writer.write_all(b"hello")); // runs while select waits
//! let ready = selector.select(None)?;
//! assert_eq!(ready.len(), 1);
//! let (key, events) = &ready[0];
//! assert_eq!((*key.data(), *events), ("the pipe", EVENT_READ));
//! writing.join().unwrap();
//! # std::io::Result::Ok(())
//! ```
//!
//! # Readiness
//!
//! Both report readiness as `poll(2)` does at the moment they return (level-triggered, as
//! Python's do): an fd with unread data is readable at every call until it is read. A hang-up
//! or an error counts as ready in the directions asked for, so that the next operation meets
//! it; regular files and directories are always ready. A kill or a hub [`Timeout`] ends a wait
//! with an `io::Error` that carries the [`Interrupted`](crate::Interrupted), as described in
//! [`gevent::io`](crate::io#errors-from-a-kill-or-a-timeout).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use gevent_core::Timeout;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use rustix::event::PollFd;

use crate::io::{is_ready, poll_flags, poll_now, register_duplicate};

mod selector;

pub use selector::{EVENT_READ, EVENT_WRITE, Events, Selector, SelectorKey};

/// Waits until at least one of `read` is readable or one of `write` is writable, or `timeout`
/// passes (gevent's `select.select` without the exceptional list), and returns the ready ones
/// of each list in their order. A timeout returns two empty lists, as Python's does; `None`
/// waits for as long as it takes, `Some(Duration::ZERO)` only looks.
///
/// The lists hold handles that are `Copy`, which come back as they went in: references
/// (`[&first, &second]`, or `&streams` for a `Vec<TcpStream>`), or
/// [`BorrowedFd`](std::os::fd::BorrowedFd)s to mix types (`[stream.as_fd(), pipe.as_fd()]`).
/// An empty list needs its type, such as `[] as [BorrowedFd; 0]`.
///
/// Descriptors that are ready already return at once, in one `poll(2)`. Otherwise the greenlet
/// parks, once for all of them, on duplicates of the descriptors registered with the hub for
/// the call (the descriptors themselves are only borrowed). With both lists empty it parks
/// until `timeout` passes.
///
/// A kill or a hub [`Timeout`] ends the wait with an error carrying the
/// [`Interrupted`](crate::Interrupted) (see [`gevent::io`](crate::io)). Failing to duplicate or
/// register a descriptor (out of descriptors, say) fails with that error.
pub fn select<R: AsFd + Copy, W: AsFd + Copy>(
    read: impl IntoIterator<Item = R>,
    write: impl IntoIterator<Item = W>,
    timeout: Option<Duration>,
) -> io::Result<(Vec<R>, Vec<W>)> {
    let read: Vec<R> = read.into_iter().collect();
    let write: Vec<W> = write.into_iter().collect();
    let wanted = || {
        let reads = read.iter().map(|fd| (fd.as_fd(), Interest::READABLE));
        reads.chain(write.iter().map(|fd| (fd.as_fd(), Interest::WRITABLE)))
    };
    let mut look: Vec<PollFd<'_>> =
        wanted().map(|(fd, interest)| PollFd::from_borrowed_fd(fd, poll_flags(interest))).collect();
    poll_now(&mut look)?;
    if timeout == Some(Duration::ZERO) || look.iter().any(|fd| !fd.revents().is_empty()) {
        return Ok(ready(&read, &write, &look));
    }
    let mut registrations: Vec<(IoRegistration<OwnedFd>, Interest)> = Vec::new();
    for (fd, interest) in wanted() {
        // A regular file or directory (not registered) would have been ready above.
        if let Some(registration) = register_duplicate(fd)? {
            registrations.push((registration, interest));
        }
    }
    let waits: Vec<_> = registrations.iter().map(|(r, interest)| (r, *interest)).collect();
    let deadline = timeout.map(Timeout::start);
    loop {
        if !wait_any_within(&waits, deadline.as_ref())? {
            return Ok((Vec::new(), Vec::new()));
        }
        poll_now(&mut look)?;
        if look.iter().any(|fd| !fd.revents().is_empty()) {
            return Ok(ready(&read, &write, &look));
        }
        // Woken by readiness that is gone again (another greenlet read the data): forget it.
        // The look came after it, and nothing new is reported until this greenlet parks.
        for (registration, interest) in &waits {
            registration.clear_readiness(*interest);
        }
    }
}

/// Parks once until any of `waits` is ready ([`IoRegistration::wait_any`]): `Ok(false)` if
/// `deadline` ended the wait, the interruption as an `io::Error` if anything else did.
fn wait_any_within(
    waits: &[(&IoRegistration<OwnedFd>, Interest)],
    deadline: Option<&Timeout>,
) -> io::Result<bool> {
    match IoRegistration::wait_any(waits) {
        Ok(()) => Ok(true),
        Err(why) if deadline.is_some_and(|d| d.is(&why)) => Ok(false),
        Err(why) => Err(why.into()),
    }
}

/// The members of `read` and `write` that `look` (one entry for each, in order) found ready.
fn ready<R: Copy, W: Copy>(read: &[R], write: &[W], look: &[PollFd<'_>]) -> (Vec<R>, Vec<W>) {
    let (read_look, write_look) = look.split_at(read.len());
    let readable = read.iter().zip(read_look).filter(|(_, l)| is_ready(l, Interest::READABLE));
    let writable = write.iter().zip(write_look).filter(|(_, l)| is_ready(l, Interest::WRITABLE));
    (readable.map(|(fd, _)| *fd).collect(), writable.map(|(fd, _)| *fd).collect())
}
