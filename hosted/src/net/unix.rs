//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and [`UnixDatagram`], shaped like
//! `std::os::unix::net`'s and returning its [`SocketAddr`].

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;

use gevent_core::platform::Interest;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SocketAddrUnix, SocketType};

use super::socket::{SEND_FLAGS, Socket, new_pair, new_socket};

/// std's Unix socket types, through which the calls returning a [`SocketAddr`] are made: std
/// can build one, and nothing else can build every kind (unnamed ones have no constructor).
trait StdSocket: FromRawFd {}
impl StdSocket for std::os::unix::net::UnixListener {}
impl StdSocket for std::os::unix::net::UnixStream {}
impl StdSocket for std::os::unix::net::UnixDatagram {}

/// Runs `f` on a std socket viewing `fd`, which stays owned by the caller.
fn with_std<S: StdSocket, T>(fd: &OwnedFd, f: impl FnOnce(&S) -> T) -> T {
    // SAFETY: `from_raw_fd` needs an open descriptor that the result may own. `fd` is borrowed
    // for the whole call, so it stays open while the view exists (another thread cannot close
    // it: the `OwnedFd` is ours and borrowed). The view never closes it: it is in a
    // `ManuallyDrop` that is dropped without running std's destructor, on return and on
    // unwinding alike, and `f` sees only a shared reference, so it cannot move the std socket
    // out. `S` is one of std's socket types (`StdSocket` is private), whose `from_raw_fd` only
    // wraps the descriptor.
    #[allow(unsafe_code)]
    let view = ManuallyDrop::new(unsafe { S::from_raw_fd(fd.as_raw_fd()) });
    f(&view)
}

/// Runs a std call `op`, which reports `io::Error`s, in `retry` (a [`Socket`] wait loop,
/// which speaks `Errno`), keeping an error without an OS code (std's "not a Unix socket") as
/// it is.
fn through_std<T>(
    retry: impl FnOnce(&mut dyn FnMut(&OwnedFd) -> rustix::io::Result<T>) -> io::Result<T>,
    mut op: impl FnMut(&OwnedFd) -> io::Result<T>,
) -> io::Result<T> {
    let mut kept = None;
    let result = retry(&mut |fd| {
        op(fd).map_err(|e| {
            Errno::from_io_error(&e).unwrap_or_else(|| {
                kept = Some(e);
                Errno::IO
            })
        })
    });
    result.map_err(|e| kept.take().unwrap_or(e))
}

fn unix_addr(path: &Path) -> io::Result<SocketAddrUnix> {
    Ok(SocketAddrUnix::new(path)?)
}

fn std_addr<S: StdSocket>(
    sock: &Socket,
    f: impl FnOnce(&S) -> io::Result<SocketAddr>,
) -> io::Result<SocketAddr> {
    with_std(sock.fd(), f)
}

/// A Unix stream socket server; `std::os::unix::net::UnixListener` whose `accept` switches to
/// other greenlets while no connection is pending.
pub struct UnixListener {
    sock: Socket,
}

impl UnixListener {
    fn from_socket(sock: Socket) -> Self {
        UnixListener { sock }
    }

    /// Creates a listener bound to the file `path` (which must not exist yet), with a backlog
    /// of [`LISTEN_BACKLOG`](super::LISTEN_BACKLOG) pending connections.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let addr = unix_addr(path.as_ref())?;
        let fd = new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
        rustix::net::bind(&fd, &addr)?;
        rustix::net::listen(&fd, super::LISTEN_BACKLOG)?;
        Ok(UnixListener { sock: Socket::new(fd)? })
    }

    /// Accepts a connection, waiting (cooperatively) for one.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = through_std(
            |op| self.sock.retry(Interest::READABLE, None, op),
            |fd| with_std(fd, |listener: &std::os::unix::net::UnixListener| listener.accept()),
        )?;
        // std's accept leaves the new socket blocking: `adopt` makes it non-blocking.
        let fd = OwnedFd::from(stream);
        super::adopt(&fd)?;
        Ok((UnixStream { sock: Socket::new(fd)? }, addr))
    }

    /// An iterator over the connections, each from [`accept`](Self::accept); it never ends.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.sock, std::os::unix::net::UnixListener::local_addr)
    }

    /// A second handle on the same listener (a duplicate descriptor with its own
    /// registration).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener { sock: self.sock.try_clone()? })
    }

    /// Takes the pending `SO_ERROR`, if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.take_error()
    }

    /// Gives the socket back as a blocking std listener, leaving the hub.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
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
impl From<std::os::unix::net::UnixListener> for UnixListener {
    fn from(listener: std::os::unix::net::UnixListener) -> Self {
        UnixListener { sock: Socket::adopt_or_panic(listener.into(), "UnixListener") }
    }
}

super::fd_conversions!(UnixListener, "UnixListener");

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixListener");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}

/// The connections of a [`UnixListener`], from [`UnixListener::incoming`] (std's
/// `std::os::unix::net::Incoming`).
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A Unix stream socket; `std::os::unix::net::UnixStream` whose calls switch to other greenlets
/// while they would block.
///
/// `Read` and `Write` (std's, vectored included, and `embedded_io`'s) are implemented for
/// `&UnixStream` too, so one greenlet can read while another writes the same stream.
pub struct UnixStream {
    sock: Socket,
}

impl UnixStream {
    fn from_socket(sock: Socket) -> Self {
        UnixStream { sock }
    }

    /// Connects to the listener bound to `path`.
    ///
    /// A Unix socket connects at once or not at all: if the listener's queue of pending
    /// connections is full, Linux fails with [`io::ErrorKind::WouldBlock`] where std's
    /// blocking `connect` would wait.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = unix_addr(path.as_ref())?;
        let fd = new_socket(AddressFamily::UNIX, SocketType::STREAM)?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => Ok(UnixStream { sock: Socket::new(fd)? }),
            // Systems that connect Unix sockets in the background report it as TCP does.
            Err(Errno::INPROGRESS) => {
                let sock = Socket::new(fd)?;
                sock.retry(Interest::WRITABLE, None, |fd| {
                    rustix::net::sockopt::socket_error(fd)??;
                    match rustix::net::getpeername(fd) {
                        Ok(_) => Ok(()),
                        Err(Errno::NOTCONN) => Err(Errno::WOULDBLOCK),
                        Err(e) => Err(e),
                    }
                })?;
                Ok(UnixStream { sock })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A connected pair of unnamed sockets.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = new_pair(SocketType::STREAM)?;
        Ok((UnixStream { sock: Socket::new(a)? }, UnixStream { sock: Socket::new(b)? }))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.sock, std::os::unix::net::UnixStream::local_addr)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.sock, std::os::unix::net::UnixStream::peer_addr)
    }

    /// Shuts down reading, writing or both; a greenlet waiting to read then sees the end of
    /// the stream.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// A second handle on the same connection (a duplicate descriptor with its own
    /// registration). It starts with this handle's timeouts; each handle's are its own
    /// afterwards (std's handles share them).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream { sock: self.sock.try_clone()? })
    }
}

super::timeouts_and_std!(UnixStream, std::os::unix::net::UnixStream);
super::fd_conversions!(UnixStream, "UnixStream");
super::stream_io!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixStream");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}

/// A Unix datagram socket; `std::os::unix::net::UnixDatagram` whose receives switch to other
/// greenlets until a datagram arrives, and whose sends do while the receiver's queue is full.
pub struct UnixDatagram {
    sock: Socket,
}

impl UnixDatagram {
    fn from_socket(sock: Socket) -> Self {
        UnixDatagram { sock }
    }

    /// Creates a socket bound to the file `path` (which must not exist yet).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let addr = unix_addr(path.as_ref())?;
        let fd = new_socket(AddressFamily::UNIX, SocketType::DGRAM)?;
        rustix::net::bind(&fd, &addr)?;
        Ok(UnixDatagram { sock: Socket::new(fd)? })
    }

    /// Creates a socket bound to no address, for sending to (or connecting to) named
    /// sockets.
    pub fn unbound() -> io::Result<UnixDatagram> {
        let fd = new_socket(AddressFamily::UNIX, SocketType::DGRAM)?;
        Ok(UnixDatagram { sock: Socket::new(fd)? })
    }

    /// A connected pair of unnamed sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = new_pair(SocketType::DGRAM)?;
        Ok((UnixDatagram { sock: Socket::new(a)? }, UnixDatagram { sock: Socket::new(b)? }))
    }

    /// Sets the default destination of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        Ok(rustix::net::connect(self.sock.fd(), &unix_addr(path.as_ref())?)?)
    }

    /// Sends `buf` to the connected peer, waiting while its queue is full.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send(buf)
    }

    /// Receives a datagram, waiting for one; the part that does not fit in `buf` is dropped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf, RecvFlags::empty())
    }

    /// Sends `buf` to the socket bound to `path`, waiting while its queue is full.
    pub fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let addr = unix_addr(path.as_ref())?;
        self.sock.write_with(|fd| rustix::net::sendto(fd, buf, SEND_FLAGS, &addr))
    }

    /// Receives a datagram and its sender's address, waiting for one.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        through_std(
            |op| self.sock.read_with(op),
            |fd| with_std(fd, |s: &std::os::unix::net::UnixDatagram| s.recv_from(&mut *buf)),
        )
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.sock, std::os::unix::net::UnixDatagram::local_addr)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        std_addr(&self.sock, std::os::unix::net::UnixDatagram::peer_addr)
    }

    /// Shuts down reading, writing or both; a greenlet waiting to receive is then woken.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// A second handle on the same socket (a duplicate descriptor with its own
    /// registration). It starts with this handle's timeouts; each handle's are its own
    /// afterwards (std's handles share them).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram { sock: self.sock.try_clone()? })
    }
}

super::timeouts_and_std!(UnixDatagram, std::os::unix::net::UnixDatagram);
super::fd_conversions!(UnixDatagram, "UnixDatagram");

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UnixDatagram");
        if let Ok(addr) = self.local_addr() {
            d.field("local", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}
