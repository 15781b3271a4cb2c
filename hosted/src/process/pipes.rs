//! The parent's ends of a child's standard streams, read and written cooperatively.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Stdio;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;

use crate::io::{registration_error, retry};

/// Makes our end of a pipe std created non-blocking and registers it with the hub.
///
/// `O_NONBLOCK` belongs to the open file description, and the child's end of the pipe is a
/// different one, so the child still sees a blocking pipe.
pub(super) fn adopt(fd: OwnedFd) -> io::Result<IoRegistration<OwnedFd>> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    IoRegistration::new(fd).map_err(registration_error)
}

/// The writing end of a child's standard input (`Stdio::piped()`): a write to a full pipe
/// parks the greenlet until the child reads. Dropping it closes the child's input.
///
/// A write after the child closed its input (or exited) fails with
/// [`io::ErrorKind::BrokenPipe`] (see [`os`](crate::os#sigpipe) about `SIGPIPE`).
pub struct ChildStdin {
    pub(super) registration: IoRegistration<OwnedFd>,
}

/// The reading end of a child's standard output (`Stdio::piped()`): a read parks the
/// greenlet until the child writes or closes its output.
pub struct ChildStdout {
    pub(super) registration: IoRegistration<OwnedFd>,
}

/// The reading end of a child's standard error (`Stdio::piped()`), like [`ChildStdout`].
pub struct ChildStderr {
    pub(super) registration: IoRegistration<OwnedFd>,
}

impl Write for &ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        retry(&self.registration, Interest::WRITABLE, None, |fd| rustix::io::write(fd, buf))
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        retry(&self.registration, Interest::WRITABLE, None, |fd| rustix::io::writev(fd, bufs))
    }

    /// A pipe holds no buffer of ours: there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

macro_rules! readable_end {
    ($end:ty) => {
        impl Read for &$end {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                retry(&self.registration, Interest::READABLE, None, |fd| {
                    rustix::io::read(fd, &mut *buf)
                })
            }

            fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
                retry(&self.registration, Interest::READABLE, None, |fd| {
                    rustix::io::readv(fd, &mut *bufs)
                })
            }
        }

        impl Read for $end {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }
    };
}

readable_end!(ChildStdout);
readable_end!(ChildStderr);

macro_rules! fd_conversions {
    ($end:ty) => {
        impl AsFd for $end {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.registration.source().as_fd()
            }
        }

        impl AsRawFd for $end {
            fn as_raw_fd(&self) -> RawFd {
                self.registration.source().as_raw_fd()
            }
        }

        /// Deregisters the end from the hub and gives its descriptor, still non-blocking.
        impl From<$end> for OwnedFd {
            fn from(end: $end) -> OwnedFd {
                end.registration.into_inner()
            }
        }

        /// Hands the end to another child as one of its standard streams (a pipeline), made
        /// blocking again, as programs expect of their standard streams.
        impl TryFrom<$end> for Stdio {
            type Error = io::Error;

            fn try_from(end: $end) -> io::Result<Stdio> {
                let fd = OwnedFd::from(end);
                rustix::io::ioctl_fionbio(&fd, false)?;
                Ok(Stdio::from(fd))
            }
        }

        impl fmt::Debug for $end {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end)).field("fd", &self.as_raw_fd()).finish()
            }
        }
    };
}

fd_conversions!(ChildStdin);
fd_conversions!(ChildStdout);
fd_conversions!(ChildStderr);
