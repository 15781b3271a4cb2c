//! Parking a greenlet until a child process exits, without reaping it: the reaping stays
//! with `std::process::Child::try_wait`, which caches the status.
//!
//! - Linux: a pidfd (`pidfd_open`, Linux 5.3), registered with the hub; it turns readable
//!   when the process exits.
//! - macOS, iOS, FreeBSD, DragonFly: a kqueue of the child's own watching `EVFILT_PROC`
//!   `NOTE_EXIT`, registered with the hub (a kqueue is readable while it holds an event).
//! - Android, and Linux kernels without pidfd (or where a sandbox refuses it): `SIGCHLD`,
//!   caught through [`gevent::signal`](crate::signal) while a greenlet of this hub waits that
//!   way (see [`sigchld_exit`]).
//!
//! Because nothing here reaps, the pid cannot be reused while a wait is pending: it names our
//! child (or its zombie) until `try_wait` collects it.

use std::io;

/// How this child's exit is waited for, chosen on the first wait.
#[derive(Debug)]
pub(super) enum ExitWatch {
    /// The child's pidfd, readable once it exits.
    #[cfg(target_os = "linux")]
    Pidfd(gevent_core::hub::IoRegistration<std::os::fd::OwnedFd>),
    /// A kqueue watching the child's exit.
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    Kqueue(kqueue_exit::KqueueExit),
    /// A check of the child after each `SIGCHLD`.
    #[cfg(not(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    )))]
    Sigchld,
}

impl ExitWatch {
    pub(super) fn new(pid: u32) -> io::Result<ExitWatch> {
        #[cfg(target_os = "linux")]
        {
            use rustix::io::Errno;
            use rustix::process::{PidfdFlags, pidfd_open};
            match pidfd_open(to_pid(pid)?, PidfdFlags::empty()) {
                Ok(fd) => {
                    let registration = gevent_core::hub::IoRegistration::new(fd)
                        .map_err(crate::io::registration_error)?;
                    return Ok(ExitWatch::Pidfd(registration));
                }
                // No pidfd in this kernel, or a seccomp filter that refuses it.
                Err(Errno::NOSYS | Errno::PERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        return Ok(ExitWatch::Kqueue(kqueue_exit::KqueueExit::new(to_pid(pid)?)?));
        #[cfg(not(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        )))]
        {
            // Only a pidfd needs the pid: the fallback asks `exited` about its own child.
            #[cfg(not(target_os = "linux"))]
            let _ = pid;
            Ok(ExitWatch::Sigchld)
        }
    }

    /// Parks until `exited`, the caller's non-blocking look at the child (which reaps it),
    /// returns something. It is asked first, and again after each sign that the child may
    /// have exited; an exit that comes at any moment after a look wakes the next wait.
    pub(super) fn wait_until<T>(
        &mut self,
        mut exited: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        match self {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(registration) => {
                use gevent_core::platform::Interest;
                loop {
                    // Forgets an exit reported earlier, before the look: one reported after
                    // it wakes the wait.
                    registration.clear_readiness(Interest::READABLE);
                    if let Some(found) = exited()? {
                        return Ok(found);
                    }
                    registration.wait(Interest::READABLE)?;
                }
            }
            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "dragonfly"
            ))]
            ExitWatch::Kqueue(watch) => loop {
                if let Some(found) = exited()? {
                    return Ok(found);
                }
                watch.wait()?;
            },
            #[cfg(not(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "dragonfly"
            )))]
            ExitWatch::Sigchld => sigchld_exit::wait_until(exited),
        }
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
fn to_pid(pid: u32) -> io::Result<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{pid} is not a pid")))
}

/// Waiting for children with `SIGCHLD`, where there is neither a pidfd nor a kqueue.
///
/// While at least one greenlet of this thread's hub waits that way, the hub holds one
/// [`signal_handler`](crate::signal::signal_handler) for `SIGCHLD`, whose every run wakes all
/// of them; each then looks at its own child (`try_wait`, a `waitpid(pid, WNOHANG)`), never
/// at any other (`waitpid(-1)` would reap other code's children too). Deliveries merge, so
/// one wake-up may stand for several exits: that is why every waiter looks, not only one.
///
/// No exit is missed: a waiter subscribes before its first look, so an exit after that look
/// sends a `SIGCHLD` that this subscription catches; between a look and parking nothing else
/// runs on the hub, so the handler's wake-up cannot come in that gap. An exit before the
/// subscription (whose `SIGCHLD` went to the disposition then) is found by the first look.
///
/// When the last waiter stops (its child exited, or a `Timeout` or kill interrupted it) the
/// handler is dropped, and `SIGCHLD` gets back the disposition it had, so a hub with children
/// that nobody waits for catches nothing and is not kept waiting by the subscription.
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
pub(super) mod sigchld_exit {
    use std::cell::RefCell;
    use std::io;
    use std::rc::{Rc, Weak};

    use gevent_core::event::Event;

    use crate::signal::{self, Guard, SIGCHLD};

    thread_local! {
        /// This hub's subscription, while a greenlet waits with it.
        static CURRENT: RefCell<Weak<Subscription>> = const { RefCell::new(Weak::new()) };
    }

    /// `SIGCHLD` caught for this hub's waiters; each holds it while it waits.
    struct Subscription {
        /// Set and at once cleared by each delivery, which wakes every greenlet waiting on it
        /// then and no later one.
        delivered: Rc<Event>,
        _handler: Guard,
    }

    fn subscribe() -> io::Result<Rc<Subscription>> {
        CURRENT.with(|current| {
            if let Some(subscription) = current.borrow().upgrade() {
                return Ok(subscription);
            }
            let delivered = Rc::new(Event::new());
            let wake = delivered.clone();
            let handler = signal::signal_handler(SIGCHLD, move || {
                wake.set();
                wake.clear();
            })
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot wait for a child process (no pidfd, and SIGCHLD: {e})"),
                )
            })?;
            let subscription = Rc::new(Subscription { delivered, _handler: handler });
            *current.borrow_mut() = Rc::downgrade(&subscription);
            Ok(subscription)
        })
    }

    pub(super) fn wait_until<T>(
        mut exited: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<T> {
        let subscription = subscribe()?;
        loop {
            if let Some(found) = exited()? {
                return Ok(found);
            }
            subscription.delivered.wait()?;
        }
    }

    /// How many greenlets of this thread's hub wait for a child with `SIGCHLD` (0 once the
    /// handler is dropped).
    #[cfg(test)]
    pub(in crate::process) fn waiters() -> usize {
        CURRENT.with(|current| current.borrow().strong_count())
    }
}

#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly"))]
mod kqueue_exit {
    #![allow(unsafe_code)] // kevent is unsafe in rustix: see `kevent_now`

    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::ptr;

    use gevent_core::hub::IoRegistration;
    use gevent_core::platform::Interest;
    use rustix::event::Timespec;
    use rustix::event::kqueue::{self, Event, EventFilter, EventFlags, ProcessEvents};
    use rustix::io::{Errno, FdFlags};
    use rustix::process::{Pid, WaitId, WaitIdOptions};

    use crate::io::{registration_error, retry};

    /// A kqueue holding one `EVFILT_PROC` `NOTE_EXIT` event for the child, registered with the
    /// hub, which sees it readable once the event has fired.
    #[derive(Debug)]
    pub(in crate::process) struct KqueueExit {
        registration: IoRegistration<OwnedFd>,
        pid: Pid,
        /// The exit was seen (or the process was already gone when the event was added).
        exited: bool,
    }

    impl KqueueExit {
        pub(in crate::process) fn new(pid: Pid) -> io::Result<KqueueExit> {
            let kq = kqueue::kqueue()?;
            rustix::io::fcntl_setfd(&kq, FdFlags::CLOEXEC)?;
            let filter = EventFilter::Proc { pid, flags: ProcessEvents::EXIT };
            let add = Event::new(filter, EventFlags::ADD | EventFlags::ONESHOT, ptr::null_mut());
            // macOS refuses to watch a process that has already exited (a zombie): ESRCH.
            let exited = match kevent_now(&kq, &[add], &mut []) {
                Ok(_) => false,
                Err(Errno::SRCH) => true,
                Err(e) => return Err(e.into()),
            };
            let registration = IoRegistration::new(kq).map_err(registration_error)?;
            Ok(KqueueExit { registration, pid, exited })
        }

        /// Parks until the child has exited and can be reaped.
        pub(in crate::process) fn wait(&mut self) -> io::Result<()> {
            if !self.exited {
                retry(&self.registration, Interest::READABLE, None, |kq| {
                    let mut event = [MaybeUninit::uninit()];
                    match kevent_now(kq, &[], &mut event)? {
                        0 => Err(Errno::WOULDBLOCK),
                        _ => Ok(()),
                    }
                })?;
                self.exited = true;
            }
            // `NOTE_EXIT` can come a moment before the process is a zombie that `waitpid`
            // reports: this wait, short since the child is past its exit, bridges that moment
            // without reaping.
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
            loop {
                match rustix::process::waitid(WaitId::Pid(self.pid), options) {
                    Err(Errno::INTR) => {}
                    done => return done.map(drop).map_err(io::Error::from),
                }
            }
        }
    }

    /// `kevent` with `changes` and room for `events`, not waiting: how many events came.
    fn kevent_now(
        kq: &OwnedFd,
        changes: &[Event],
        events: &mut [MaybeUninit<Event>],
    ) -> Result<usize, Errno> {
        let no_wait = Timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: rustix asks that the fds the events name stay valid while the kqueue watches
        // them, because a kqueue refers to an fd by its number. The only event ever added to
        // this kqueue is an `EVFILT_PROC` one, which names a process id, not an fd, and its
        // `udata` is null and never dereferenced, so no caller can make the kqueue watch a
        // closed or reused descriptor.
        let (got, _) = unsafe { kqueue::kevent_timespec(kq, changes, events, Some(&no_wait)) }?;
        Ok(got.len())
    }
}
