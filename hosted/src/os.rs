//! Operating-system objects read and written cooperatively (gevent's `gevent.os`): pipes, and
//! the standard input, output and error ([`stdin`], [`stdout`], [`stderr`]).
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let (mut reader, mut writer) = gevent::os::pipe()?;
//! let producer = gevent::spawn(move || writer.write_all(&[7; 1 << 20])); // more than a pipe holds
//! let mut received = Vec::new();
//! reader.read_to_end(&mut received)?; // the producer runs while this read waits
//! producer.join().unwrap();
//! assert_eq!(received.len(), 1 << 20);
//! # std::io::Result::Ok(())
//! ```
//!
//! # `SIGPIPE`
//!
//! A write to a pipe whose read end is closed fails with [`io::ErrorKind::BrokenPipe`] only if
//! the process ignores `SIGPIPE`; otherwise the signal ends the process. Rust programs ignore it
//! unless told otherwise: the standard library's runtime sets `SIGPIPE` to `SIG_IGN` before
//! `main` (test harnesses included). A program whose `main` is not Rust's (a library called from
//! C, `#![no_main]`) or that restores the default disposition must ignore `SIGPIPE` itself
//! before writing to pipes.
//!
//! # Standard input and output
//!
//! The standard descriptors are shared: with the parent shell and with every process started
//! from the same terminal or pipeline, through one open file description. Setting `O_NONBLOCK`
//! on them, as gevent's `FileObjectPosix` does, would leak into all of those (a shell whose
//! terminal turned non-blocking under it fails its reads). So the descriptors stay as they
//! are, and each handle picks a way by what its descriptor is:
//!
//! - a pipe, FIFO, terminal or socket: the greenlet parks until the poller reports the
//!   descriptor ready, and a zero-timeout `poll` confirms it just before the system call. A
//!   read then returns what is there without waiting; a write moves at most `PIPE_BUF` (4096)
//!   bytes, which a pipe reported writable takes whole. The one case that still blocks the
//!   thread is another process consuming the input (or filling the pipe) between that `poll`
//!   and the call;
//! - a regular file or block device, which pollers call always ready but which can still wait
//!   for the disk: the call runs on the thread pool like [`gevent::fs`](crate::fs);
//! - a descriptor the poller refuses (such as `/dev/null`): the call runs at once, as such
//!   devices never wait.
//!
//! A descriptor that is already non-blocking works too: a call that would block waits again.
//!
//! The handles hold no buffer: output goes out with each `write` (wrap a handle in a
//! `std::io::LineWriter` or `BufWriter` to batch it), and mixing them with `std::io::stdout()`,
//! which buffers, can reorder output.

mod stdio;

use std::io;
use std::os::fd::OwnedFd;

use gevent_core::hub::IoRegistration;

use crate::io::registration_error;

pub use stdio::{Stderr, Stdin, Stdout, stderr, stdin, stdout};

/// Makes an anonymous pipe whose ends greenlets read and write cooperatively, shaped like
/// `std::io::pipe`: what is written to the [`PipeWriter`] is read from the [`PipeReader`].
///
/// The ends do not block the thread (a read or write that would block parks the greenlet
/// instead) and are closed in child processes. Both belong to the hub of the calling thread,
/// and like every registration they cannot be sent to another thread (convert them into an
/// [`OwnedFd`] for that).
pub fn pipe() -> io::Result<(PipeReader, PipeWriter)> {
    let (reader, writer) = nonblocking_pipe()?;
    let reader = IoRegistration::new(reader).map_err(registration_error)?;
    let writer = IoRegistration::new(writer).map_err(registration_error)?;
    Ok((PipeReader { registration: reader }, PipeWriter { registration: writer }))
}

#[cfg(not(target_vendor = "apple"))]
fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{PipeFlags, pipe_with};
    Ok(pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?)
}

/// Apple's systems have no `pipe2`, so the flags are set after the pipe is made: a child
/// process spawned by another thread meanwhile may inherit the ends.
#[cfg(target_vendor = "apple")]
fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (reader, writer) = rustix::pipe::pipe()?;
    for fd in [&reader, &writer] {
        rustix::io::ioctl_fionbio(fd, true)?;
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    Ok((reader, writer))
}

/// The read end of a [`pipe`]; reading it parks the greenlet until data or end of file comes.
///
/// `&PipeReader` reads too, so several greenlets can share one.
pub struct PipeReader {
    registration: IoRegistration<OwnedFd>,
}

/// The write end of a [`pipe`]; writing to a full pipe parks the greenlet until the reader
/// makes room. Dropping it ends the reader's stream.
///
/// `&PipeWriter` writes too, so several greenlets can share one.
pub struct PipeWriter {
    registration: IoRegistration<OwnedFd>,
}

crate::pipe_end::readable_pipe_end!(PipeReader);
crate::pipe_end::writable_pipe_end!(PipeWriter);
crate::pipe_end::pipe_end_fds!(PipeReader);
crate::pipe_end::pipe_end_fds!(PipeWriter);
