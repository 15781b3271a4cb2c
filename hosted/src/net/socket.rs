//! The core every socket type of this module is built on: a registered descriptor with the
//! read and write timeouts std keeps in the kernel (`SO_RCVTIMEO`/`SO_SNDTIMEO`), kept here
//! because the descriptor is non-blocking.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use gevent_core::platform::Interest;

use super::{Registration, adopt, check_timeout, register};
use crate::io::{Limit, Waited, retry, retry_from};

/// Flags for every `send`/`sendto`: a write to a closed peer is an `EPIPE` error, not a
/// `SIGPIPE`.
#[cfg(not(target_vendor = "apple"))]
pub(super) const SEND_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
/// Apple's systems have no `MSG_NOSIGNAL`: sockets get `SO_NOSIGPIPE` when made instead.
#[cfg(target_vendor = "apple")]
pub(super) const SEND_FLAGS: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// The flags every socket this module makes gets: non-blocking, closed in child processes.
#[cfg(not(target_vendor = "apple"))]
pub(super) const FLAGS: rustix::net::SocketFlags =
    rustix::net::SocketFlags::NONBLOCK.union(rustix::net::SocketFlags::CLOEXEC);

/// A new non-blocking, close-on-exec socket (without `SIGPIPE` on Apple's systems).
pub(super) fn new_socket(
    family: rustix::net::AddressFamily,
    kind: rustix::net::SocketType,
) -> io::Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    let fd = rustix::net::socket_with(family, kind, FLAGS, None)?;
    #[cfg(target_vendor = "apple")]
    let fd = {
        // No `SOCK_NONBLOCK` here: the flags come after, so a child process spawned meanwhile
        // by another thread may inherit the socket.
        let fd = rustix::net::socket(family, kind, None)?;
        prepare_apple(&fd)?;
        fd
    };
    Ok(fd)
}

/// A connected pair of new sockets, set up as [`new_socket`] sets one up.
#[cfg(unix)]
pub(super) fn new_pair(kind: rustix::net::SocketType) -> io::Result<(OwnedFd, OwnedFd)> {
    let family = rustix::net::AddressFamily::UNIX;
    #[cfg(not(target_vendor = "apple"))]
    let pair = rustix::net::socketpair(family, kind, FLAGS, None)?;
    #[cfg(target_vendor = "apple")]
    let pair = {
        let (a, b) =
            rustix::net::socketpair(family, kind, rustix::net::SocketFlags::empty(), None)?;
        prepare_apple(&a)?;
        prepare_apple(&b)?;
        (a, b)
    };
    Ok(pair)
}

#[cfg(target_vendor = "apple")]
pub(super) fn prepare_apple(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
    Ok(())
}

/// A socket registered with the current thread's hub, with its read and write timeouts.
pub(super) struct Socket {
    reg: Registration,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
    /// A TCP stream: a read that comes back short of its buffer may show that it drained the
    /// socket (see [`recv`](Self::recv)).
    tcp_stream: bool,
    /// The last read came back short on a drained TCP stream and cleared the readable
    /// readiness, or the stream was just accepted (see
    /// [`accepted_tcp_stream`](Self::accepted_tcp_stream)): the next read waits for an edge
    /// before it tries, saving the system call that would fail with `EAGAIN`.
    drained: Cell<bool>,
}

impl Socket {
    /// Registers a socket this module made (already non-blocking).
    pub(super) fn new(fd: OwnedFd) -> io::Result<Socket> {
        Ok(Socket {
            reg: register(fd)?,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
            tcp_stream: false,
            drained: Cell::new(false),
        })
    }

    /// Marks a socket known to be a TCP stream (one this module connected or accepted).
    pub(super) fn tcp_stream(mut self) -> Socket {
        self.tcp_stream = true;
        self
    }

    /// [`tcp_stream`](Self::tcp_stream) for a stream just accepted and registered, whose
    /// first read then waits for readiness instead of trying first, as tokio's does: a client
    /// that speaks first has usually not spoken yet, and that read would fail with `EAGAIN`.
    /// The wait cannot miss data that came before: epoll reports a descriptor that is readable
    /// when it is added (edge-triggered or not), and nothing has read it since. Only where
    /// [`short_read_drains`] holds, which proves that epoll (not another poller) watches it.
    pub(super) fn accepted_tcp_stream(self) -> Socket {
        let socket = self.tcp_stream();
        socket.drained.set(short_read_drains(socket.fd()));
        socket
    }

    /// Marks a socket adopted as a TCP stream if it is one: `From<OwnedFd>` and `FromRawFd`
    /// take any descriptor, and a Unix stream's reads stop short at ancillary data.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(unused_mut))]
    pub(super) fn tcp_stream_if_tcp(mut self) -> Socket {
        // Elsewhere short reads never count as draining (see `short_read_drains`).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::net::{AddressFamily, SocketType, sockopt};
            let family = sockopt::socket_domain(self.fd());
            let inet = matches!(family, Ok(AddressFamily::INET | AddressFamily::INET6));
            self.tcp_stream = inet && sockopt::socket_type(self.fd()) == Ok(SocketType::STREAM);
        }
        self
    }

    /// Registers a socket made elsewhere: it is made non-blocking first, and keeps the read
    /// and write timeouts set on it in the kernel (as a std socket's are).
    pub(super) fn adopt(fd: OwnedFd) -> io::Result<Socket> {
        use rustix::net::sockopt::{Timeout, socket_timeout};
        let read_timeout = socket_timeout(&fd, Timeout::Recv)?;
        let write_timeout = socket_timeout(&fd, Timeout::Send)?;
        adopt(&fd)?;
        let socket = Socket::new(fd)?;
        socket.read_timeout.set(read_timeout);
        socket.write_timeout.set(write_timeout);
        Ok(socket)
    }

    /// [`adopt`](Self::adopt) for `From` impls, which cannot fail.
    ///
    /// # Panics
    ///
    /// If the hub cannot register the socket (the poller is out of memory or descriptors);
    /// the descriptor is closed first.
    pub(super) fn adopt_or_panic(fd: OwnedFd, what: &str) -> Socket {
        match Socket::adopt(fd) {
            Ok(socket) => socket,
            Err(e) => panic!("gevent::net::{what}::from: cannot register the socket: {e}"),
        }
    }

    pub(super) fn fd(&self) -> &OwnedFd {
        self.reg.source()
    }

    /// Leaves the hub, giving back the descriptor, still non-blocking.
    pub(super) fn into_fd(self) -> OwnedFd {
        self.reg.into_inner()
    }

    /// Leaves the hub, giving back the descriptor set blocking again, for `into_std`.
    pub(super) fn into_blocking_fd(self) -> io::Result<OwnedFd> {
        let fd = self.into_fd();
        rustix::io::ioctl_fionbio(&fd, false)?;
        Ok(fd)
    }

    /// A second handle on the same socket: a duplicate descriptor with its own registration,
    /// so either handle can wait on it. The timeouts are copied; setting them afterwards on one
    /// handle leaves the other's alone (std's share them, as they live in the kernel there).
    pub(super) fn try_clone(&self) -> io::Result<Socket> {
        let fd = rustix::io::fcntl_dupfd_cloexec(self.fd(), 0)?;
        let mut socket = Socket::new(fd)?;
        socket.read_timeout.set(self.read_timeout.get());
        socket.write_timeout.set(self.write_timeout.get());
        socket.tcp_stream = self.tcp_stream;
        Ok(socket)
    }

    /// Runs the non-blocking `op` until it stops returning `WouldBlock`, waiting for
    /// readability in between, for at most the read timeout.
    pub(super) fn read_with<T>(
        &self,
        op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        retry(&self.reg, Interest::READABLE, self.read_limit(), op)
    }

    fn read_limit(&self) -> Option<Limit> {
        self.read_timeout.get().map(|after| Limit {
            after,
            kind: io::ErrorKind::WouldBlock,
            what: "the read timed out",
        })
    }

    /// [`read_with`](Self::read_with) for writes: waits for writability, for at most the
    /// write timeout.
    pub(super) fn write_with<T>(
        &self,
        op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        let limit = self.write_timeout.get().map(|after| Limit {
            after,
            kind: io::ErrorKind::WouldBlock,
            what: "the write timed out",
        });
        retry(&self.reg, Interest::WRITABLE, limit, op)
    }

    /// Waits for `interest` with no limit but the caller's, for calls (`accept`, `connect`)
    /// that std does not bound by the socket's timeouts.
    pub(super) fn retry<T>(
        &self,
        interest: Interest,
        limit: Option<Limit>,
        op: impl FnMut(&OwnedFd) -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        retry(&self.reg, interest, limit, op)
    }

    /// Receives into `buf`. On a TCP stream, a read after a wait that comes back short of its
    /// buffer drained the socket unless the poller saw something unusual on it (see
    /// `OsPoller::short_read_drains`): the readiness is cleared then, and the next read waits
    /// for an edge instead of trying a read that would fail with `EAGAIN`. In the steady state
    /// of a request-response protocol that is one system call per read, as tokio does, without
    /// its hang on a short read that stopped at the urgent mark or before the end of stream.
    pub(super) fn recv(&self, buf: &mut [u8], flags: rustix::net::RecvFlags) -> io::Result<usize> {
        let len = buf.len();
        let op = |fd: &OwnedFd| rustix::net::recv(fd, &mut *buf, flags).map(|(n, _)| n);
        // A flag changes what a short read shows (a peek leaves the data where it was, an
        // out-of-band read takes one byte), so a read with any neither trusts nor sets
        // `drained`.
        if !self.tcp_stream || !flags.is_empty() {
            return retry(&self.reg, Interest::READABLE, self.read_limit(), op);
        }
        let known_unready = self.drained.replace(false);
        let (n, Waited(waited)) =
            retry_from(&self.reg, Interest::READABLE, self.read_limit(), known_unready, op)?;
        // Only after a wait, which proves that the thread's hub is this socket's, so that
        // asking its poller neither makes a hub (a read after `shutdown`, or in a thread-local
        // destructor after the hub ended, must not) nor asks another hub's. In the steady state
        // every read comes after one. Cleared before this greenlet switches out, so that an
        // edge for data that arrived after the read is reported afterwards and sets the
        // readiness again.
        if waited && 0 < n && n < len && short_read_drains(self.fd()) {
            self.reg.clear_readiness(Interest::READABLE);
            self.drained.set(true);
        }
        Ok(n)
    }

    pub(super) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|fd| rustix::net::send(fd, buf, SEND_FLAGS))
    }

    pub(super) fn read_vectored(&self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        self.read_with(|fd| rustix::io::readv(fd, bufs))
    }

    /// A gathering write: `sendmsg` with `MSG_NOSIGNAL` where that flag exists, since
    /// `writev` would raise `SIGPIPE` on a closed peer. A single slice (a TLS stream's one
    /// record, in the steady state) goes through `send` instead, with the same flags: the
    /// kernel then has no message header and vector to copy in, which made `sendmsg` about a
    /// tenth of a microsecond dearer per call on loopback.
    pub(super) fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if let [buf] = bufs {
            return self.send(buf);
        }
        #[cfg(not(target_vendor = "apple"))]
        return self.write_with(|fd| {
            rustix::net::sendmsg(
                fd,
                bufs,
                &mut rustix::net::SendAncillaryBuffer::default(),
                SEND_FLAGS,
            )
        });
        // `SO_NOSIGPIPE` covers `writev` there.
        #[cfg(target_vendor = "apple")]
        self.write_with(|fd| rustix::io::writev(fd, bufs))
    }

    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.write_timeout.set(timeout);
        Ok(())
    }

    pub(super) fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.get()
    }

    pub(super) fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.get()
    }

    /// Takes the pending `SO_ERROR`, if any.
    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(rustix::net::sockopt::socket_error(self.fd())?.err().map(io::Error::from))
    }

    pub(super) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => rustix::net::Shutdown::Read,
            std::net::Shutdown::Write => rustix::net::Shutdown::Write,
            std::net::Shutdown::Both => rustix::net::Shutdown::Both,
        };
        Ok(rustix::net::shutdown(self.fd(), how)?)
    }
}

/// Whether a short read of `fd` shows that it was drained (no data left when it returned): on
/// Linux, where the poller tracks what makes that false, see `OsPoller::short_read_drains`;
/// elsewhere never, and reads go on until `EAGAIN`.
fn short_read_drains(fd: &OwnedFd) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return gevent_core::hub::with_poller(|poller| {
        let poller = poller.as_any_mut().downcast_mut::<crate::sys::OsPoller>();
        poller.is_some_and(|poller| poller.short_read_drains(std::os::fd::AsFd::as_fd(fd)))
    });
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        false
    }
}
