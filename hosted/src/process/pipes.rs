//! The parent's ends of a child's standard streams, read and written cooperatively.

use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use gevent_core::hub::IoRegistration;

use crate::io::registration_error;

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

crate::pipe_end::writable_pipe_end!(ChildStdin);
crate::pipe_end::readable_pipe_end!(ChildStdout);
crate::pipe_end::readable_pipe_end!(ChildStderr);
crate::pipe_end::pipe_end_fds!(ChildStdin);
crate::pipe_end::pipe_end_fds!(ChildStdout);
crate::pipe_end::pipe_end_fds!(ChildStderr);

/// Hands the end to another child as one of its standard streams (a pipeline), made blocking
/// again, as programs expect of their standard streams.
macro_rules! into_stdio {
    ($end:ty) => {
        impl TryFrom<$end> for Stdio {
            type Error = io::Error;

            fn try_from(end: $end) -> io::Result<Stdio> {
                let fd = OwnedFd::from(end);
                rustix::io::ioctl_fionbio(&fd, false)?;
                Ok(Stdio::from(fd))
            }
        }
    };
}

into_stdio!(ChildStdin);
into_stdio!(ChildStdout);
into_stdio!(ChildStderr);
