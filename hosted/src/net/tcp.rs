//! TCP: [`TcpListener`] and [`TcpStream`].

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use gevent_core::platform::Interest;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

use super::{Registration, adopt, check_timeout, register};
use crate::io::{Limit, Waited, retry, retry_from};

/// The flags every socket this module makes gets: non-blocking, closed in child processes.
#[cfg(not(target_vendor = "apple"))]
const FLAGS: rustix::net::SocketFlags =
    rustix::net::SocketFlags::NONBLOCK.union(rustix::net::SocketFlags::CLOEXEC);

/// Flags for `send`: a write to a closed peer is an `EPIPE` error, not a `SIGPIPE`.
#[cfg(not(target_vendor = "apple"))]
const SEND_FLAGS: SendFlags = SendFlags::NOSIGNAL;
/// Apple's systems have no `MSG_NOSIGNAL`: sockets get `SO_NOSIGPIPE` when made instead.
#[cfg(target_vendor = "apple")]
const SEND_FLAGS: SendFlags = SendFlags::empty();

/// A new TCP socket for `addr`'s family.
fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    #[cfg(not(target_vendor = "apple"))]
    let fd = rustix::net::socket_with(family, SocketType::STREAM, FLAGS, None)?;
    #[cfg(target_vendor = "apple")]
    let fd = {
        // No `SOCK_NONBLOCK` here: the flags come after, so a child process spawned meanwhile
        // by another thread may inherit the socket.
        let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
        prepare_apple(&fd)?;
        fd
    };
    Ok(fd)
}

#[cfg(target_vendor = "apple")]
fn prepare_apple(fd: &OwnedFd) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true)?;
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
    Ok(())
}

/// Accepts a pending connection (non-blocking, closed in child processes) and its peer's address.
fn accept_one(
    listener: &OwnedFd,
) -> rustix::io::Result<(OwnedFd, Option<rustix::net::SocketAddrAny>)> {
    #[cfg(not(target_vendor = "apple"))]
    return rustix::net::acceptfrom_with(listener, FLAGS);
    #[cfg(target_vendor = "apple")]
    {
        let (fd, peer) = rustix::net::acceptfrom(listener)?;
        prepare_apple(&fd).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::INVAL))?;
        Ok((fd, peer))
    }
}

fn socket_addr(addr: rustix::net::SocketAddrAny) -> io::Result<SocketAddr> {
    Ok(SocketAddr::try_from(addr)?)
}

/// Runs `f` on each address `addrs` resolves to until one succeeds, as std does.
fn each_addr<T>(
    addrs: impl ToSocketAddrs,
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for addr in addrs.to_socket_addrs()? {
        match f(&addr) {
            Ok(done) => return Ok(done),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")
    }))
}

/// A TCP socket server, listening for connections; `std::net::TcpListener` whose `accept`
/// switches to other greenlets while no connection is pending.
pub struct TcpListener {
    reg: Registration,
}

impl TcpListener {
    /// Creates a listener bound to `addr` (the first of its addresses that can be bound), with
    /// `SO_REUSEADDR` as std sets it.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(addr, |addr| {
            let fd = tcp_socket(addr)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
            rustix::net::bind(&fd, addr)?;
            rustix::net::listen(&fd, 128)?;
            Ok(TcpListener { reg: register(fd)? })
        })
    }

    /// Accepts a connection, waiting (cooperatively) for one.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = retry(&self.reg, Interest::READABLE, None, accept_one)?;
        let stream = TcpStream::from_fd(fd)?;
        match peer {
            Some(peer) => Ok((stream, socket_addr(peer)?)),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "accepted an unnamed peer")),
        }
    }

    /// An iterator over the connections, each from [`accept`](Self::accept); it never ends.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(rustix::net::getsockname(self.reg.source())?)
    }

    /// Sets `IP_TTL` for the connections it accepts.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_ip_ttl(self.reg.source(), ttl)?)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(rustix::net::sockopt::ip_ttl(self.reg.source())?)
    }

    /// Takes the pending `SO_ERROR`, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        take_error(self.reg.source())
    }

    /// Gives the socket back as a blocking std listener, leaving the hub.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let fd = self.reg.into_inner();
        rustix::io::ioctl_fionbio(&fd, false)?;
        Ok(fd.into())
    }
}

/// Makes a std listener cooperative: it is set non-blocking and registered with the current
/// thread's hub.
///
/// # Panics
///
/// If the hub cannot register it (the poller is out of memory or descriptors), since `From`
/// cannot fail; the descriptor is closed first.
impl From<std::net::TcpListener> for TcpListener {
    fn from(listener: std::net::TcpListener) -> Self {
        let fd = OwnedFd::from(listener);
        match adopt(&fd).and_then(|()| register(fd)) {
            Ok(reg) => TcpListener { reg },
            Err(e) => panic!("gevent::net::TcpListener::from: cannot register the socket: {e}"),
        }
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reg.source().as_fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.reg.source().as_raw_fd()
    }
}

/// The connections of a [`TcpListener`], from [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A TCP connection; `std::net::TcpStream` whose calls switch to other greenlets while they
/// would block.
///
/// `Read` and `Write` are implemented for `&TcpStream` too, so one greenlet can read while
/// another writes the same stream.
pub struct TcpStream {
    reg: Registration,
    /// The last read came back short of its buffer on a socket whose short reads show it is
    /// drained (see `recv`), and cleared the readable readiness: the next read waits for an
    /// edge before it tries, saving the system call that would fail with `EAGAIN`.
    drained: Cell<bool>,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

impl TcpStream {
    fn from_fd(fd: OwnedFd) -> io::Result<TcpStream> {
        Ok(TcpStream {
            reg: register(fd)?,
            drained: Cell::new(false),
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        })
    }

    /// Connects to `addr` (each of its addresses in turn until one accepts), waiting
    /// cooperatively for the handshake.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(addr, |addr| TcpStream::connect_addr(addr, None))
    }

    /// Connects to `addr`, failing with [`io::ErrorKind::TimedOut`] if the handshake takes
    /// longer than `timeout` (an [`io::ErrorKind::InvalidInput`] error if it is zero).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        TcpStream::connect_addr(addr, Some(timeout))
    }

    fn connect_addr(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let fd = tcp_socket(addr)?;
        match rustix::net::connect(&fd, addr) {
            // Interrupted, a non-blocking connect goes on in the background like one in progress.
            Ok(()) | Err(Errno::INPROGRESS) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Registered after `connect`: an unconnected socket reports itself writable.
        let stream = TcpStream::from_fd(fd)?;
        let limit = timeout.map(|after| Limit {
            after,
            kind: io::ErrorKind::TimedOut,
            what: "connection timed out",
        });
        retry(&stream.reg, Interest::WRITABLE, limit, |fd| {
            rustix::net::sockopt::socket_error(fd)??;
            match rustix::net::getpeername(fd) {
                Ok(_) => Ok(()),
                Err(Errno::NOTCONN) => Err(Errno::WOULDBLOCK), // still in progress
                Err(e) => Err(e),
            }
        })?;
        Ok(stream)
    }

    /// The address of the remote peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match rustix::net::getpeername(self.reg.source())? {
            Some(addr) => socket_addr(addr),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "the peer has no address")),
        }
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(rustix::net::getsockname(self.reg.source())?)
    }

    /// Shuts down reading, writing or both; a greenlet waiting to read then sees the end of
    /// the stream.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => rustix::net::Shutdown::Read,
            Shutdown::Write => rustix::net::Shutdown::Write,
            Shutdown::Both => rustix::net::Shutdown::Both,
        };
        Ok(rustix::net::shutdown(self.reg.source(), how)?)
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off when true).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_tcp_nodelay(self.reg.source(), nodelay)?)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(rustix::net::sockopt::tcp_nodelay(self.reg.source())?)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_ip_ttl(self.reg.source(), ttl)?)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(rustix::net::sockopt::ip_ttl(self.reg.source())?)
    }

    /// Reads without removing what is read from the stream, waiting for data like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, RecvFlags::PEEK)
    }

    /// Bounds how long a read waits: after `timeout` it fails with
    /// [`io::ErrorKind::WouldBlock`], as std's does on Unix. `None` waits without bound; a zero
    /// duration is an [`io::ErrorKind::InvalidInput`] error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Bounds how long a write waits for room, failing with [`io::ErrorKind::WouldBlock`]
    /// after `timeout`, like [`set_read_timeout`](Self::set_read_timeout).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        check_timeout(timeout)?;
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Takes the pending `SO_ERROR`, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        take_error(self.reg.source())
    }

    /// Gives the socket back as a blocking std stream, leaving the hub; its read and write
    /// timeouts go with it.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let (read_timeout, write_timeout) = (self.read_timeout.get(), self.write_timeout.get());
        let fd = self.reg.into_inner();
        rustix::io::ioctl_fionbio(&fd, false)?;
        let stream = std::net::TcpStream::from(fd);
        stream.set_read_timeout(read_timeout)?;
        stream.set_write_timeout(write_timeout)?;
        Ok(stream)
    }

    fn recv(&self, buf: &mut [u8], flags: RecvFlags) -> io::Result<usize> {
        let limit = self.read_timeout.get().map(|after| Limit {
            after,
            kind: io::ErrorKind::WouldBlock,
            what: "the read timed out",
        });
        let len = buf.len();
        // A peek leaves the data where it was, so it neither trusts nor sets `drained`.
        let peek = flags.contains(RecvFlags::PEEK);
        let known_unready = !peek && self.drained.replace(false);
        let (n, Waited(waited)) =
            retry_from(&self.reg, Interest::READABLE, limit, known_unready, |fd| {
                rustix::net::recv(fd, &mut *buf, flags).map(|(n, _)| n)
            })?;
        // Only after a wait, which proves that the thread's hub is this stream's, so that
        // asking its poller neither makes a hub (a read after `shutdown`, or in a thread-local
        // destructor after the hub ended, must not) nor asks another hub's. In the steady state
        // every read comes after one. Cleared before this greenlet switches out, so that an
        // edge for data that arrived after the read is reported afterwards and sets the
        // readiness again.
        if waited && !peek && 0 < n && n < len && short_read_drains(self.reg.source()) {
            self.reg.clear_readiness(Interest::READABLE);
            self.drained.set(true);
        }
        Ok(n)
    }

    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let limit = self.write_timeout.get().map(|after| Limit {
            after,
            kind: io::ErrorKind::WouldBlock,
            what: "the write timed out",
        });
        retry(&self.reg, Interest::WRITABLE, limit, |fd| rustix::net::send(fd, buf, SEND_FLAGS))
    }
}

/// Whether a short read of `fd` shows that it was drained (no data left when it returned): on
/// Linux, where the poller tracks what makes that false, see `OsPoller::short_read_drains`;
/// elsewhere never, and reads go on until `EAGAIN`.
fn short_read_drains(fd: &OwnedFd) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return gevent_core::hub::with_poller(|poller| {
        let poller = poller.as_any_mut().downcast_mut::<crate::sys::OsPoller>();
        poller.is_some_and(|poller| poller.short_read_drains(fd.as_fd()))
    });
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        false
    }
}

fn take_error(fd: &OwnedFd) -> io::Result<Option<io::Error>> {
    Ok(rustix::net::sockopt::socket_error(fd)?.err().map(io::Error::from))
}

/// Makes a std stream cooperative: it is set non-blocking and registered with the current
/// thread's hub, and keeps its read and write timeouts.
///
/// # Panics
///
/// If the hub cannot register it (the poller is out of memory or descriptors), since `From`
/// cannot fail; the descriptor is closed first.
impl From<std::net::TcpStream> for TcpStream {
    fn from(stream: std::net::TcpStream) -> Self {
        let timeouts = stream.read_timeout().and_then(|r| Ok((r, stream.write_timeout()?)));
        let fd = OwnedFd::from(stream);
        let stream = timeouts.and_then(|(r, w)| {
            adopt(&fd)?;
            let stream = TcpStream::from_fd(fd)?;
            stream.read_timeout.set(r);
            stream.write_timeout.set(w);
            Ok(stream)
        });
        match stream {
            Ok(stream) => stream,
            Err(e) => panic!("gevent::net::TcpStream::from: cannot register the socket: {e}"),
        }
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, RecvFlags::empty())
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf, RecvFlags::empty())
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpStream");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.reg.source().as_fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.reg.source().as_raw_fd()
    }
}
