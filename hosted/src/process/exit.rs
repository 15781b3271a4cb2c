//! Parking a greenlet until a child process exits, without reaping it: the reaping stays
//! with `std::process::Child::try_wait`, which caches the status.
//!
//! - Linux: a pidfd (`pidfd_open`, Linux 5.3), registered with the hub; it turns readable
//!   when the process exits.
//! - Elsewhere, and on Linux kernels without pidfd (or where a sandbox refuses it): a job on
//!   a [thread pool](crate::threadpool) of its own blocks in `waitid(P_PID, pid, WEXITED |
//!   WNOWAIT)`, which returns once the child has exited and leaves it unreaped. That costs a
//!   thread per waited child for as long as the child runs (one that is never waited again
//!   keeps its thread until it exits). The pool is not the default one, whose few threads
//!   long-running children would take from file and DNS jobs, and is bounded only by
//!   [`WAITER_THREADS`] so that a child's exit is not queued behind others still running. No `SIGCHLD` handler is installed: the signal
//!   belongs to the application (and to `gevent::signal` when it handles it).
//!
//! Because nothing here reaps, the pid cannot be reused while a wait is pending: it names our
//! zombie until `try_wait` collects it.

use std::io;

use gevent_core::Interrupted;
use rustix::process::{Pid, WaitId, WaitIdOptions};

use std::sync::OnceLock;

use crate::threadpool::{ThreadPool, ThreadResult};

/// At most this many children are waited for at once without a pidfd; more wait in line.
const WAITER_THREADS: usize = 4096;

/// The threads that wait for children without a pidfd, started on first use and ending when
/// idle.
fn waiters() -> &'static ThreadPool {
    static WAITERS: OnceLock<ThreadPool> = OnceLock::new();
    WAITERS.get_or_init(|| ThreadPool::new(WAITER_THREADS))
}

/// How this child's exit is waited for, chosen on the first wait.
#[derive(Debug)]
pub(super) enum ExitWatch {
    /// The child's pidfd, readable once it exits.
    #[cfg(target_os = "linux")]
    Pidfd(gevent_core::hub::IoRegistration<std::os::fd::OwnedFd>),
    /// A pool job blocked until the child exits; kept across interrupted waits so that a
    /// child waited many times holds one pool thread.
    Pool(Option<ThreadResult<()>>),
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
        let _ = pid;
        Ok(ExitWatch::Pool(None))
    }

    /// Forgets an exit reported earlier, before the caller looks for the exit itself: one
    /// reported after that look wakes [`wait`](Self::wait).
    pub(super) fn forget(&self) {
        #[cfg(target_os = "linux")]
        if let ExitWatch::Pidfd(registration) = self {
            registration.clear_readiness(gevent_core::platform::Interest::READABLE);
        }
    }

    /// Parks until the child `pid` has exited (or may have: the caller checks).
    pub(super) fn wait(&mut self, pid: u32) -> io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd(registration) => {
                Ok(registration.wait(gevent_core::platform::Interest::READABLE)?)
            }
            ExitWatch::Pool(job) => {
                let job = match job {
                    Some(job) => job,
                    None => {
                        let pid = to_pid(pid)?;
                        job.insert(waiters().spawn(move || wait_unreaped(pid)))
                    }
                };
                let joined: Result<(), Interrupted> = job.join();
                joined?;
                *self = ExitWatch::Pool(None);
                Ok(())
            }
        }
    }
}

/// Blocks until `pid` has exited, leaving it to be reaped. An error (the child was reaped by
/// someone else: `ECHILD`) returns too; the caller's `try_wait` then tells what happened.
fn wait_unreaped(pid: Pid) {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    while let Err(rustix::io::Errno::INTR) = rustix::process::waitid(WaitId::Pid(pid), options) {}
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{pid} is not a pid")))
}
