//! Cooperative sockets shaped like `std::net` and `std::os::unix::net` ([`TcpListener`],
//! [`TcpStream`], [`UdpSocket`]; on Unix [`UnixListener`], [`UnixStream`], [`UnixDatagram`]): a
//! call that would block switches to other greenlets until the socket is ready, so code written
//! against std runs cooperatively after a change of `use` lines. Addresses are given as
//! [`ToSocketAddrs`], this module's counterpart of std's, which resolves host names without
//! blocking the hub.
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

/// How many connections a listener made by `bind` lets wait to be accepted: 1,024 (std's is
/// 128, which a server of many greenlets outgrows: a hub accepts in bursts between the other
/// greenlets' work, and a connection beyond the backlog waits about a second for the client's
/// retransmission). The kernel caps it (`net.core.somaxconn` on Linux).
pub const LISTEN_BACKLOG: i32 = 1024;

mod addr;
mod socket;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use addr::ToSocketAddrs;
pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;
#[cfg(unix)]
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

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

/// The descriptor conversions of a socket type `$ty` (a struct holding a `sock: Socket`, with
/// a `from_socket` constructor): `AsFd`, `AsRawFd`, `From<OwnedFd>`, `FromRawFd`, `IntoRawFd`,
/// and `OwnedFd: From<$ty>`.
macro_rules! fd_conversions {
    ($ty:ident, $name:literal) => {
        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.sock.fd())
            }
        }

        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(self.sock.fd())
            }
        }

        #[doc = concat!("Makes a socket made elsewhere a cooperative `", $name, "`: it is set")]
        /// non-blocking and registered with the current thread's hub, keeping the read and
        /// write timeouts set on it. The descriptor must be a socket of the right kind, as for
        /// the std type's `From<OwnedFd>`.
        ///
        /// # Panics
        ///
        /// If the hub cannot register it (the poller is out of memory or descriptors), since
        /// `From` cannot fail; the descriptor is closed first.
        impl From<std::os::fd::OwnedFd> for $ty {
            fn from(fd: std::os::fd::OwnedFd) -> Self {
                $ty::from_socket(super::socket::Socket::adopt_or_panic(fd, $name))
            }
        }

        /// Leaves the hub, giving back the descriptor, still non-blocking.
        impl From<$ty> for std::os::fd::OwnedFd {
            fn from(socket: $ty) -> Self {
                socket.sock.into_fd()
            }
        }

        /// Takes ownership of a raw descriptor as `From<OwnedFd>` does (and panics as it does).
        impl std::os::fd::FromRawFd for $ty {
            /// # Safety
            ///
            /// `fd` must be an open socket descriptor that nothing else owns or closes: the
            /// result closes it when dropped.
            #[allow(unsafe_code)]
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> Self {
                // SAFETY: the caller promises that `fd` is open and owned by no one else, which
                // is what `OwnedFd::from_raw_fd` requires.
                $ty::from(unsafe {
                    <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                })
            }
        }

        /// Leaves the hub, giving back the raw descriptor (still non-blocking), which the
        /// caller then owns.
        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.sock.into_fd())
            }
        }
    };
}
use fd_conversions;

/// `std::io::{Read, Write}` (vectored too) and `embedded_io::{ErrorType, Read, Write}` for a
/// stream socket type `$ty` (holding a `sock: Socket`) and for `&$ty`.
macro_rules! stream_io {
    ($ty:ident) => {
        super::stream_io!(@impl $ty);
        super::stream_io!(@impl &$ty);
    };
    (@impl $($ty:tt)+) => {
        impl std::io::Read for $($ty)+ {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv(buf, rustix::net::RecvFlags::empty())
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                self.sock.read_vectored(bufs)
            }
        }

        impl std::io::Write for $($ty)+ {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                self.sock.write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl embedded_io::ErrorType for $($ty)+ {
            type Error = std::io::Error;
        }

        impl embedded_io::Read for $($ty)+ {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.sock.recv(buf, rustix::net::RecvFlags::empty())
            }
        }

        impl embedded_io::Write for $($ty)+ {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.sock.send(buf)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
use stream_io;

/// What a socket type `$ty` with read and write timeouts (a struct holding a `sock: Socket`,
/// with a `from_socket` constructor) shares with its std twin `$std`: the four timeout methods,
/// `take_error`, `into_std` and `From<$std>`.
macro_rules! timeouts_and_std {
    ($ty:ident, $std:path) => {
        impl $ty {
            /// Bounds how long a read (a receive) waits: after `timeout` it fails with
            /// [`io::ErrorKind::WouldBlock`](std::io::ErrorKind::WouldBlock), as std's does on
            /// Unix. `None` waits without bound; a zero duration is an
            /// [`io::ErrorKind::InvalidInput`](std::io::ErrorKind::InvalidInput) error.
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.sock.set_read_timeout(timeout)
            }

            /// Bounds how long a write (a send) waits for room, like
            /// [`set_read_timeout`](Self::set_read_timeout).
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.sock.set_write_timeout(timeout)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.sock.read_timeout())
            }

            /// The write timeout.
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.sock.write_timeout())
            }

            /// Takes the pending `SO_ERROR`, if any.
            pub fn take_error(&self) -> std::io::Result<Option<std::io::Error>> {
                self.sock.take_error()
            }

            /// Gives the socket back as a blocking std socket, leaving the hub; its read and
            /// write timeouts go with it.
            pub fn into_std(self) -> std::io::Result<$std> {
                let (read_timeout, write_timeout) =
                    (self.sock.read_timeout(), self.sock.write_timeout());
                let socket = <$std>::from(self.sock.into_blocking_fd()?);
                socket.set_read_timeout(read_timeout)?;
                socket.set_write_timeout(write_timeout)?;
                Ok(socket)
            }
        }

        /// Makes a std socket cooperative: it is set non-blocking and registered with the
        /// current thread's hub, and keeps its read and write timeouts.
        ///
        /// # Panics
        ///
        /// If the hub cannot register it (the poller is out of memory or descriptors), since
        /// `From` cannot fail; the descriptor is closed first.
        impl From<$std> for $ty {
            fn from(socket: $std) -> Self {
                $ty::from_socket(super::socket::Socket::adopt_or_panic(
                    socket.into(),
                    stringify!($ty),
                ))
            }
        }
    };
}

use timeouts_and_std;
