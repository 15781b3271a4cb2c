//! Cooperative sockets shaped like `std::net`: a call that would block switches to other
//! greenlets until the socket is ready, so code written against `std::net` runs cooperatively
//! after a change of `use` lines.
//!
//! Each socket tries its non-blocking system call first and consults the poller only after
//! `WouldBlock`, so a socket with data ready costs one system call per read.
//!
//! # Errors of interrupted calls
//!
//! A [`Timeout`](crate::Timeout) expiring or a kill arriving while a socket call waits ends that call with an
//! [`io::Error`] that carries the [`Interrupted`](crate::Interrupted) value;
//! `Interrupted::try_from(&io_error)` gives it back. Its kind is
//! [`TimedOut`](io::ErrorKind::TimedOut) for a timeout and [`Other`](io::ErrorKind::Other) for a
//! kill and the rest, never [`Interrupted`](io::ErrorKind::Interrupted): `read_exact`,
//! `write_all` and `read_to_end` retry on that kind, and a kill is sticky, so they would retry
//! forever.
//!
//! A socket's own limits are reported as std reports them and carry no `Interrupted`: a read or
//! write past [`set_read_timeout`](TcpStream::set_read_timeout) /
//! [`set_write_timeout`](TcpStream::set_write_timeout) fails with
//! [`WouldBlock`](io::ErrorKind::WouldBlock), and
//! [`connect_timeout`](TcpStream::connect_timeout) with [`TimedOut`](io::ErrorKind::TimedOut).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use gevent::net::{TcpListener, TcpStream};
//! use gevent::{Interrupted, Timeout, spawn};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! let addr = listener.local_addr().unwrap();
//! let server = spawn(move || {
//!     let (mut peer, _) = listener.accept().unwrap();
//!     let mut buf = [0; 5];
//!     peer.read_exact(&mut buf).unwrap();
//!     peer.write_all(&buf).unwrap();
//! });
//! let mut client = TcpStream::connect(addr).unwrap();
//! client.write_all(b"hello").unwrap();
//! let mut echo = [0; 5];
//! client.read_exact(&mut echo).unwrap();
//! assert_eq!(&echo, b"hello");
//! server.get().unwrap();
//!
//! let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
//! let timeout = Timeout::start(Duration::from_millis(10));
//! let err = quiet.accept().unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
//! assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
//! ```

mod tcp;

pub use tcp::{Incoming, TcpListener, TcpStream};

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use gevent_core::hub::IoRegistration;

/// A socket registered with the current thread's hub.
type Registration = IoRegistration<OwnedFd>;

/// Registers `fd` with the current thread's hub.
fn register(fd: OwnedFd) -> io::Result<Registration> {
    IoRegistration::new(fd).map_err(crate::io::registration_error)
}

/// Rejects a zero timeout as std does (`set_read_timeout(Some(ZERO))` is an error there).
fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
    }
    Ok(())
}

/// Makes a socket that came from elsewhere non-blocking (and, on Apple's systems, which have no
/// `MSG_NOSIGNAL`, free of `SIGPIPE`).
fn adopt(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    #[cfg(target_vendor = "apple")]
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
    Ok(())
}
