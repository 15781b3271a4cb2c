//! The process's standard input, output and error read and written cooperatively (gevent's
//! `FileObjectPosix` over descriptors 0, 1 and 2).
//!
//! Why they are waited on the way they are: see the `os` module's documentation.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::time::Timespec;

use crate::fs::File;
use crate::io::{registration_error, retry};

/// The most bytes one write to a pipe, terminal or socket moves: what a pipe reported writable
/// always takes without blocking.
const POLLED_WRITE_MAX: usize = 4096;

/// The process's standard input, read cooperatively; from [`stdin`].
///
/// `&Stdin` reads too. Reading parks only the calling greenlet.
pub struct Stdin {
    fd: StdioFd,
}

/// The process's standard output, written cooperatively and unbuffered; from [`stdout`].
pub struct Stdout {
    fd: StdioFd,
}

/// The process's standard error, written cooperatively and unbuffered; from [`stderr`].
pub struct Stderr {
    fd: StdioFd,
}

/// A handle on descriptor 0 for this thread's greenlets (see the
/// [`os` module documentation](crate::os#standard-input-and-output)).
///
/// The handle holds a duplicate of the descriptor, closed on drop; descriptor 0 itself is never
/// changed. It fails if descriptor 0 is closed or the poller cannot take it. Make one handle and
/// keep it: each call duplicates and registers anew.
pub fn stdin() -> io::Result<Stdin> {
    Ok(Stdin { fd: StdioFd::new(io::stdin().as_fd())? })
}

/// A handle on descriptor 1, like [`stdin`].
pub fn stdout() -> io::Result<Stdout> {
    Ok(Stdout { fd: StdioFd::new(io::stdout().as_fd())? })
}

/// A handle on descriptor 2, like [`stdin`].
pub fn stderr() -> io::Result<Stderr> {
    Ok(Stderr { fd: StdioFd::new(io::stderr().as_fd())? })
}

/// How one standard descriptor is waited on, chosen by what it is.
enum StdioFd {
    /// Pipes, FIFOs, terminals, sockets: wait for readiness, confirm it, then call.
    Polled(IoRegistration<OwnedFd>),
    /// Regular files and block devices: on the thread pool.
    Pooled(File),
    /// What the poller refuses, which never waits: called at once.
    Direct(OwnedFd),
}

impl StdioFd {
    fn new(fd: BorrowedFd<'_>) -> io::Result<Self> {
        // A duplicate shares the open file description (and so its position and flags) and is
        // ours to register and close; a job on the pool holding it never sees it reused.
        let duplicate = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
        let file = std::fs::File::from(duplicate);
        let kind = file.metadata()?.file_type();
        if kind.is_file() || std::os::unix::fs::FileTypeExt::is_block_device(&kind) {
            return Ok(StdioFd::Pooled(File::from(file)));
        }
        match IoRegistration::new(OwnedFd::from(file)) {
            Ok(registration) => Ok(StdioFd::Polled(registration)),
            Err(e) if e.code == Some(Errno::PERM.raw_os_error()) => {
                // The registration took the duplicate; make another for direct calls.
                Ok(StdioFd::Direct(rustix::io::fcntl_dupfd_cloexec(fd, 0)?))
            }
            Err(e) => Err(registration_error(e)),
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            StdioFd::Polled(registration) => retry(registration, Interest::READABLE, None, |fd| {
                confirm(fd, PollFlags::IN)?;
                rustix::io::read(fd, &mut *buf)
            }),
            StdioFd::Pooled(file) => (&*file).read(buf),
            StdioFd::Direct(fd) => direct(|| rustix::io::read(fd, &mut *buf)),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StdioFd::Polled(registration) => {
                let buf = &buf[..buf.len().min(POLLED_WRITE_MAX)];
                retry(registration, Interest::WRITABLE, None, |fd| {
                    confirm(fd, PollFlags::OUT)?;
                    rustix::io::write(fd, buf)
                })
            }
            StdioFd::Pooled(file) => (&*file).write(buf),
            StdioFd::Direct(fd) => direct(|| rustix::io::write(fd, buf)),
        }
    }

    fn raw(&self) -> RawFd {
        match self {
            StdioFd::Polled(registration) => registration.source().as_raw_fd(),
            StdioFd::Pooled(file) => file.as_raw_fd(),
            StdioFd::Direct(fd) => fd.as_raw_fd(),
        }
    }

    fn borrow(&self) -> BorrowedFd<'_> {
        match self {
            StdioFd::Polled(registration) => registration.source().as_fd(),
            StdioFd::Pooled(file) => file.as_fd(),
            StdioFd::Direct(fd) => fd.as_fd(),
        }
    }
}

/// `Ok` if the blocking descriptor `fd` is ready for `flags` now (or reports an error or a
/// hang-up, which the call then returns), [`Errno::WOULDBLOCK`] otherwise: the poller's
/// readiness is edge-triggered and may be stale, and a blocking call on a descriptor that is
/// not ready would block the whole thread.
fn confirm(fd: &OwnedFd, flags: PollFlags) -> rustix::io::Result<()> {
    let mut fds = [PollFd::new(fd, flags)];
    let now = Timespec { tv_sec: 0, tv_nsec: 0 };
    match poll(&mut fds, Some(&now))? {
        0 => Err(Errno::WOULDBLOCK),
        _ => Ok(()),
    }
}

fn direct<T>(mut op: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(Errno::INTR) => continue,
            result => return result.map_err(io::Error::from),
        }
    }
}

impl Read for &Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.fd.read(buf)
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

macro_rules! output {
    ($handle:ty) => {
        impl Write for &$handle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if buf.is_empty() {
                    return Ok(0);
                }
                self.fd.write(buf)
            }

            /// The handle holds no buffer: there is nothing to flush.
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }

        impl Write for $handle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                (&*self).write(buf)
            }

            fn flush(&mut self) -> io::Result<()> {
                (&*self).flush()
            }
        }
    };
}

output!(Stdout);
output!(Stderr);

macro_rules! fd_access {
    ($handle:ty) => {
        /// The handle's duplicate of the standard descriptor (same open file, another number).
        impl AsFd for $handle {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd.borrow()
            }
        }

        /// The handle's duplicate of the standard descriptor (same open file, another number).
        impl AsRawFd for $handle {
            fn as_raw_fd(&self) -> RawFd {
                self.fd.raw()
            }
        }

        impl fmt::Debug for $handle {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let how = match self.fd {
                    StdioFd::Polled(_) => "polled",
                    StdioFd::Pooled(_) => "thread pool",
                    StdioFd::Direct(_) => "direct",
                };
                f.debug_struct(stringify!($handle))
                    .field("fd", &self.as_raw_fd())
                    .field("via", &how)
                    .finish()
            }
        }
    };
}

fd_access!(Stdin);
fd_access!(Stdout);
fd_access!(Stderr);
