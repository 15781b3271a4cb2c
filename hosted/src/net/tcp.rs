//! TCP: [`TcpListener`] and [`TcpStream`].

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use gevent_core::platform::Interest;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketType};

use super::addr::{ToSocketAddrs, each_addr};
use super::socket::{Socket, new_socket};
use crate::io::Limit;

/// A new TCP socket for `addr`'s family.
fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    new_socket(family, SocketType::STREAM)
}

/// Accepts a pending connection (non-blocking, closed in child processes) and its peer's address.
fn accept_one(
    listener: &OwnedFd,
) -> rustix::io::Result<(OwnedFd, Option<rustix::net::SocketAddrAny>)> {
    #[cfg(not(target_vendor = "apple"))]
    return rustix::net::acceptfrom_with(listener, super::socket::FLAGS);
    #[cfg(target_vendor = "apple")]
    {
        let (fd, peer) = rustix::net::acceptfrom(listener)?;
        super::socket::prepare_apple(&fd)
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::INVAL))?;
        Ok((fd, peer))
    }
}

pub(super) fn socket_addr(addr: rustix::net::SocketAddrAny) -> io::Result<SocketAddr> {
    Ok(SocketAddr::try_from(addr)?)
}

/// A TCP socket server, listening for connections; `std::net::TcpListener` whose `accept`
/// switches to other greenlets while no connection is pending.
pub struct TcpListener {
    sock: Socket,
}

impl TcpListener {
    fn from_socket(sock: Socket) -> Self {
        TcpListener { sock }
    }

    /// Creates a listener bound to `addr` (the first of its addresses that can be bound), with
    /// `SO_REUSEADDR` as std sets it, and a backlog of [`LISTEN_BACKLOG`](super::LISTEN_BACKLOG)
    /// pending connections.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        each_addr(&addr, |addr| {
            let fd = tcp_socket(addr)?;
            rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
            rustix::net::bind(&fd, addr)?;
            rustix::net::listen(&fd, super::LISTEN_BACKLOG)?;
            Ok(TcpListener { sock: Socket::new(fd)? })
        })
    }

    /// Accepts a connection, waiting (cooperatively) for one.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.sock.retry(Interest::READABLE, None, accept_one)?;
        let stream = TcpStream { sock: Socket::new(fd)?.accepted_tcp_stream() };
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
        socket_addr(rustix::net::getsockname(self.sock.fd())?)
    }

    /// A second handle on the same listener (a duplicate descriptor with its own
    /// registration), so that two greenlets can accept on it at once.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener { sock: self.sock.try_clone()? })
    }

    /// Sets `IP_TTL` for the connections it accepts.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_ip_ttl(self.sock.fd(), ttl)?)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(rustix::net::sockopt::ip_ttl(self.sock.fd())?)
    }

    /// Takes the pending `SO_ERROR`, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.take_error()
    }

    /// Gives the socket back as a blocking std listener, leaving the hub.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.sock.into_blocking_fd()?.into())
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
        TcpListener { sock: Socket::adopt_or_panic(listener.into(), "TcpListener") }
    }
}

super::fd_conversions!(TcpListener, "TcpListener");

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TcpListener");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
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
/// `Read` and `Write` (std's, vectored included, and `embedded_io`'s) are implemented for
/// `&TcpStream` too, so one greenlet can read while another writes the same stream.
pub struct TcpStream {
    sock: Socket,
}

impl TcpStream {
    /// A stream adopted from elsewhere.
    fn from_socket(sock: Socket) -> Self {
        TcpStream { sock: sock.tcp_stream_if_tcp() }
    }

    /// Connects to `addr` (each of its addresses in turn until one accepts), waiting
    /// cooperatively for the handshake.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        each_addr(&addr, |addr| TcpStream::connect_addr(addr, None))
    }

    /// Connects to `addr`, failing with [`io::ErrorKind::TimedOut`] if the handshake takes
    /// longer than `timeout` (an [`io::ErrorKind::InvalidInput`] error if it is zero).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        super::check_timeout(Some(timeout))?;
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
        let sock = Socket::new(fd)?.tcp_stream();
        let limit = timeout.map(|after| Limit {
            after,
            kind: io::ErrorKind::TimedOut,
            what: "connection timed out",
        });
        sock.retry(Interest::WRITABLE, limit, |fd| {
            rustix::net::sockopt::socket_error(fd)??;
            match rustix::net::getpeername(fd) {
                Ok(_) => Ok(()),
                Err(Errno::NOTCONN) => Err(Errno::WOULDBLOCK), // still in progress
                Err(e) => Err(e),
            }
        })?;
        Ok(TcpStream { sock })
    }

    /// The address of the remote peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match rustix::net::getpeername(self.sock.fd())? {
            Some(addr) => socket_addr(addr),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "the peer has no address")),
        }
    }

    /// The local address of this end.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(rustix::net::getsockname(self.sock.fd())?)
    }

    /// Shuts down reading, writing or both; a greenlet waiting to read then sees the end of
    /// the stream.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// A second handle on the same connection: a duplicate descriptor with its own
    /// registration, so one greenlet can wait on each. It starts with this handle's read and
    /// write timeouts; each handle's are its own afterwards (std's handles share them).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream { sock: self.sock.try_clone()? })
    }

    /// Sets `TCP_NODELAY` (Nagle's algorithm off when true).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_tcp_nodelay(self.sock.fd(), nodelay)?)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(rustix::net::sockopt::tcp_nodelay(self.sock.fd())?)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(rustix::net::sockopt::set_ip_ttl(self.sock.fd(), ttl)?)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(rustix::net::sockopt::ip_ttl(self.sock.fd())?)
    }

    /// Reads without removing what is read from the stream, waiting for data like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf, RecvFlags::PEEK)
    }
}

super::timeouts_and_std!(TcpStream, std::net::TcpStream);
super::fd_conversions!(TcpStream, "TcpStream");
super::stream_io!(TcpStream);

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
