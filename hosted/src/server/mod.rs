//! Servers (gevent's `gevent.server` and `baseserver`): a [`StreamServer`] accepts connections
//! on a listener and runs a handler for each in a new greenlet; a [`DatagramServer`] does the
//! same for each datagram received on a socket.
//!
//! The server is a cheap handle (clone it to share it): [`start`](StreamServer::start) runs the
//! accept loop in its own greenlet, [`serve_forever`](StreamServer::serve_forever) starts it and
//! parks until another greenlet calls [`stop`](StreamServer::stop), which closes the listener at
//! once, gives running handlers a grace period to finish, then kills the rest.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use gevent::net::{TcpListener, TcpStream};
//! use gevent::server::StreamServer;
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let server = StreamServer::new(listener, |mut stream: TcpStream, _peer| {
//!     let mut line = [0; 5];
//!     stream.read_exact(&mut line)?;
//!     stream.write_all(&line)
//! });
//! let addr = server.local_addr()?;
//! let serving = gevent::spawn({
//!     let server = server.clone();
//!     move || server.serve_forever()
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut echo = [0; 5];
//! client.read_exact(&mut echo)?;
//! assert_eq!(&echo, b"hello");
//!
//! server.stop(Duration::from_secs(1));
//! assert!(serving.take().unwrap().is_ok());
//! assert!(TcpStream::connect(addr).is_err()); // the listener is closed
//! # std::io::Result::Ok(())
//! ```
//!
//! # Failing handlers
//!
//! A handler that panics or returns `Err` ends its own connection only. The panic is reported
//! once on stderr by the greenlet's panic report; an `Err` is reported once on stderr by the
//! server. Both reports name the handler's greenlet and its spawn site, which is the place where
//! the server was made (`greenlet #7 'StreamServer handler' (spawned at src/main.rs:12:18)`).
//! A handler ended by [`stop`](StreamServer::stop) is not reported.
//!
//! # Running out of file descriptors
//!
//! When `accept` fails for lack of resources (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) the
//! connection waits in the listener's backlog: the server says so once on stderr, sleeps (10 ms
//! at first, doubling up to 1 s) and tries again, until an accept succeeds. Errors that concern
//! only the connection being accepted (`ECONNABORTED`, `EPROTO`, `EPERM`, ...) are skipped at
//! once; any other error ends [`serve_forever`](StreamServer::serve_forever).

mod datagram;
mod stream;

pub use datagram::{DatagramServer, DatagramSocket};
pub use stream::StreamServer;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::net::{TcpListener, TcpStream};
#[cfg(unix)]
use crate::net::{UnixListener, UnixStream};

/// What a [`StreamServer`] accepts connections from.
///
/// Implemented for [`TcpListener`] and, on Unix, [`UnixListener`]; implement it for a wrapper to observe or filter
/// connections.
pub trait Listener: 'static {
    /// An accepted connection, handed to the handler.
    type Stream: 'static;
    /// The address of a peer, handed to the handler with its connection.
    type Addr: Clone + fmt::Debug + 'static;

    /// Waits for a connection, switching to other greenlets meanwhile.
    ///
    /// An error carrying an [`Interrupted`](crate::Interrupted) (the server being stopped)
    /// ends the accept loop quietly; errors with an OS error code are sorted as the
    /// [module documentation](self) says.
    fn accept(&self) -> io::Result<(Self::Stream, Self::Addr)>;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        TcpListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }
}

#[cfg(unix)]
impl Listener for UnixListener {
    type Stream = UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> io::Result<(UnixStream, Self::Addr)> {
        UnixListener::accept(self)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        UnixListener::local_addr(self)
    }
}
