//! [`DatagramServer`]: a greenlet per received datagram.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::Location;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::pool::Pool;

use super::stream::Kind;
use super::{Listener, StreamServer};
use crate::net::UdpSocket;

/// What a [`DatagramServer`] receives datagrams from.
///
/// Implemented for [`UdpSocket`] and, on Unix, [`UnixDatagram`](crate::net::UnixDatagram).
pub trait DatagramSocket: 'static {
    /// The address of a sender, handed to the handler with its datagram.
    type Addr: Clone + fmt::Debug + 'static;

    /// Waits for a datagram, switching to other greenlets meanwhile.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)>;

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl DatagramSocket for UdpSocket {
    type Addr = SocketAddr;

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        UdpSocket::local_addr(self)
    }
}

#[cfg(unix)]
impl DatagramSocket for crate::net::UnixDatagram {
    type Addr = std::os::unix::net::SocketAddr;

    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)> {
        crate::net::UnixDatagram::recv_from(self, buf)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        crate::net::UnixDatagram::local_addr(self)
    }
}

/// The largest datagram received whole: a UDP payload cannot be longer.
const MAX_DATAGRAM: usize = 65_536;

/// A server that receives datagrams on a socket and runs a handler for each in a new greenlet
/// (gevent's `DatagramServer`): `handler(data, from, &socket)`, where the handler may answer
/// with `socket.send_to(reply, from)`.
///
/// Its life is a [`StreamServer`]'s: [`start`](Self::start),
/// [`serve_forever`](Self::serve_forever), [`stop`](Self::stop) with a grace period for running
/// handlers, an optional [`Pool`] that caps how many run at once (datagrams wait in the
/// socket's buffer meanwhile, and the kernel drops what does not fit), and failures of a
/// handler reported once on stderr with the place the server was made.
///
/// ```
/// use gevent::net::UdpSocket;
/// use gevent::server::DatagramServer;
///
/// let server = DatagramServer::new(UdpSocket::bind("127.0.0.1:0")?, |data, from, socket| {
///     socket.send_to(&data.to_ascii_uppercase(), from).map(drop)
/// });
/// server.start()?;
///
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.send_to(b"hello", server.local_addr()?)?;
/// let mut reply = [0; 16];
/// let (n, _) = client.recv_from(&mut reply)?;
/// assert_eq!(&reply[..n], b"HELLO");
/// server.stop(std::time::Duration::from_secs(1));
/// # std::io::Result::Ok(())
/// ```
pub struct DatagramServer<S: DatagramSocket = UdpSocket> {
    server: StreamServer<Datagrams<S>>,
}

/// The socket seen as a listener whose "connections" are datagrams.
struct Datagrams<S> {
    socket: Rc<S>,
    /// The receive buffer, kept between datagrams so that each costs one allocation of its
    /// own length rather than a zeroed [`MAX_DATAGRAM`]. Taken while a receive parks: a second
    /// receiver at once (none today: one loop per server) would allocate its own.
    buf: Cell<Option<Box<[u8]>>>,
}

/// One received datagram and the socket to answer on.
struct Datagram<S> {
    data: Vec<u8>,
    socket: Rc<S>,
}

impl<S: DatagramSocket> Listener for Datagrams<S> {
    type Stream = Datagram<S>;
    type Addr = S::Addr;

    fn accept(&self) -> io::Result<(Datagram<S>, S::Addr)> {
        let mut buf = self.buf.take().unwrap_or_else(|| vec![0; MAX_DATAGRAM].into());
        let received =
            self.socket.recv_from(&mut buf).map(|(len, from)| (buf[..len].to_vec(), from));
        self.buf.set(Some(buf));
        let (data, from) = received?;
        Ok((Datagram { data, socket: self.socket.clone() }, from))
    }

    fn local_addr(&self) -> io::Result<S::Addr> {
        self.socket.local_addr()
    }
}

impl<S: DatagramSocket> Clone for DatagramServer<S> {
    fn clone(&self) -> Self {
        DatagramServer { server: self.server.clone() }
    }
}

impl<S: DatagramSocket> fmt::Debug for DatagramServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("DatagramServer");
        match self.local_addr() {
            Ok(addr) => s.field("local_addr", &addr),
            Err(_) => s.field("local_addr", &"(closed)"),
        };
        s.field("started", &self.started())
            .field("closed", &self.closed())
            .field("handlers", &self.handlers())
            .finish()
    }
}

impl<S: DatagramSocket> DatagramServer<S> {
    /// A server that will receive datagrams on `socket` and run `handler(data, from, &socket)`
    /// for each in a new greenlet. Nothing happens until [`start`](Self::start) or
    /// [`serve_forever`](Self::serve_forever).
    ///
    /// The place of this call is the handlers' spawn site in failure reports.
    #[track_caller]
    pub fn new(
        socket: S,
        handler: impl Fn(&[u8], S::Addr, &S) -> io::Result<()> + 'static,
    ) -> Self {
        let made_at = Location::caller();
        let listener = Datagrams { socket: Rc::new(socket), buf: Cell::new(None) };
        let server = StreamServer::with_kind(
            listener,
            move |datagram: Datagram<S>, from| handler(&datagram.data, from, &datagram.socket),
            Kind::Datagram,
            made_at,
        );
        DatagramServer { server }
    }

    /// Runs every handler in `pool`, which caps how many run at once; see
    /// [`StreamServer::with_pool`].
    pub fn with_pool(self, pool: Pool) -> Self {
        DatagramServer { server: self.server.with_pool(pool) }
    }

    /// Starts receiving in its own greenlet and returns; see [`StreamServer::start`].
    pub fn start(&self) -> io::Result<()> {
        self.server.start()
    }

    /// Starts the server unless it is started, and parks until it stops; see
    /// [`StreamServer::serve_forever`].
    pub fn serve_forever(&self) -> io::Result<()> {
        self.server.serve_forever()
    }

    /// Stops receiving and closes the socket at once (once no handler holds it), lets running
    /// handlers finish within `grace`, then kills the rest; see [`StreamServer::stop`].
    pub fn stop(&self, grace: Duration) {
        self.server.stop(grace)
    }

    /// The socket's address; fails once the server is stopped.
    pub fn local_addr(&self) -> io::Result<S::Addr> {
        self.server.local_addr()
    }

    /// Whether [`start`](Self::start) ran and [`stop`](Self::stop) has not.
    pub fn started(&self) -> bool {
        self.server.started()
    }

    /// Whether [`stop`](Self::stop) has run.
    pub fn closed(&self) -> bool {
        self.server.closed()
    }

    /// The number of handlers running.
    pub fn handlers(&self) -> usize {
        self.server.connections()
    }
}
