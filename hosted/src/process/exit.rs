//! Parking a greenlet until a child process exits, without reaping it: the reaping stays
//! with `std::process::Child::try_wait`, which caches the status.
//!
//! - Linux: a pidfd (`pidfd_open`, Linux 5.3), registered with the hub; it turns readable
//!   when the process exits.
//! - macOS, iOS, FreeBSD, DragonFly: a kqueue of the child's own watching `EVFILT_PROC`
//!   `NOTE_EXIT`, registered with the hub (a kqueue is readable while it holds an event).
//! - Android, and Linux kernels without pidfd (or where a sandbox refuses it): a job on a
//!   [thread pool](crate::threadpool) of this module's own blocks in `waitid(P_PID, pid,
//!   WEXITED | WNOWAIT)`, which returns once the child has exited and leaves it unreaped.
//!   That costs a thread per waited child for as long as the child runs (one that is never
//!   waited again keeps its thread until it exits). The pool is not the default one, whose
//!   few threads long-running children would take from file and DNS jobs, and allows 4,096
//!   threads, so that a child's exit is not queued behind others still running.
//!
//! No `SIGCHLD` handler is installed: the signal belongs to the application (and to
//! `gevent::signal` when it handles it).
//!
//! Because nothing here reaps, the pid cannot be reused while a wait is pending: it names our
//! zombie until `try_wait` collects it.

use std::io;

use rustix::process::Pid;

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
    /// A job on the waiter pool.
    #[cfg(not(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    )))]
    Pool(pool_exit::PoolExit),
}

impl ExitWatch {
    pub(super) fn new(pid: u32) -> io::Result<ExitWatch> {
        let pid = to_pid(pid)?;
        #[cfg(target_os = "linux")]
        {
            use rustix::io::Errno;
            use rustix::process::{PidfdFlags, pidfd_open};
            match pidfd_open(pid, PidfdFlags::empty()) {
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
        return Ok(ExitWatch::Kqueue(kqueue_exit::KqueueExit::new(pid)?));
        #[cfg(not(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        )))]
        Ok(ExitWatch::Pool(pool_exit::PoolExit::new(pid)))
    }

    /// Forgets an exit reported earlier, before the caller looks for the exit itself: one
    /// reported after that look wakes [`wait`](Self::wait).
    pub(super) fn forget(&self) {
        #[cfg(target_os = "linux")]
        if let ExitWatch::Pidfd(registration) = self {
            registration.clear_readiness(gevent_core::platform::Interest::READABLE);
        }
    }

    /// Parks until the child has exited (or may have: the caller checks).
    pub(super) fn wait(&mut self) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(registration) => {
                Ok(registration.wait(gevent_core::platform::Interest::READABLE)?)
            }
            #[cfg(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "dragonfly"
            ))]
            ExitWatch::Kqueue(watch) => watch.wait(),
            #[cfg(not(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "freebsd",
                target_os = "dragonfly"
            )))]
            ExitWatch::Pool(watch) => watch.wait(),
        }
    }
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{pid} is not a pid")))
}

#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
pub(super) mod pool_exit {
    use std::io;
    use std::sync::OnceLock;

    use rustix::process::{Pid, WaitId, WaitIdOptions};

    use crate::threadpool::{ThreadPool, ThreadResult};

    /// At most this many children are waited for at once without a pidfd; more wait in line.
    const WAITER_THREADS: usize = 4096;

    /// The threads that wait for children without a pidfd, started on first use and ending
    /// when idle.
    fn waiters() -> &'static ThreadPool {
        static WAITERS: OnceLock<ThreadPool> = OnceLock::new();
        WAITERS.get_or_init(|| ThreadPool::new(WAITER_THREADS))
    }

    /// A pool job blocked until the child exits; kept across interrupted waits so that a
    /// child waited many times holds one pool thread.
    #[derive(Debug)]
    pub(in crate::process) struct PoolExit {
        pid: Pid,
        pub(in crate::process) job: Option<ThreadResult<()>>,
    }

    impl PoolExit {
        pub(in crate::process) fn new(pid: Pid) -> PoolExit {
            PoolExit { pid, job: None }
        }

        pub(in crate::process) fn wait(&mut self) -> io::Result<()> {
            let pid = self.pid;
            let job = self.job.get_or_insert_with(|| waiters().spawn(move || wait_unreaped(pid)));
            job.join()?;
            self.job = None;
            Ok(())
        }
    }

    /// Blocks until `pid` has exited, leaving it to be reaped. An error (the child was reaped
    /// by someone else: `ECHILD`) returns too; the caller's `try_wait` then tells what
    /// happened.
    fn wait_unreaped(pid: Pid) {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
        while let Err(rustix::io::Errno::INTR) = rustix::process::waitid(WaitId::Pid(pid), options)
        {
        }
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
