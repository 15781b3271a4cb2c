//! [`Server`]: HTTP/1.1 on a [`StreamServer`], a greenlet per connection.

mod conn;
mod connections;
mod head;
mod response;

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::pool::Pool;
use http::{Request, Response};

use super::Body;
use crate::net::{TcpListener, TcpStream};
use crate::server::StreamServer;
#[cfg(feature = "tls")]
use crate::tls::TlsAcceptor;
use conn::End;
use connections::Connections;

/// What a [`Server`] runs for each request.
type Handler = dyn for<'a> Fn(Request<RequestBody<'a>>) -> Response<Body>;

/// The server's limits.
#[derive(Debug, Clone)]
struct Config {
    max_header_bytes: usize,
    max_headers: usize,
    max_body_bytes: Option<u64>,
    idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: Some(16 * 1024 * 1024),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What every connection of a server shares.
struct Shared {
    config: Config,
    handler: Box<Handler>,
    /// The connections, marked while they wait for their next request: `stop` ends those.
    connections: Connections,
    stopping: Cell<bool>,
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
}

/// An HTTP/1.1 server (gevent's `pywsgi.WSGIServer`): it accepts connections on a
/// [`TcpListener`] and serves each in its own greenlet, calling the handler once per request.
///
/// A handler is a plain blocking-style function from a [`Request`] to a [`Response`]; it may
/// block (read the body, query a database, sleep) without holding up other connections. The
/// server speaks keep-alive and pipelining, reads `chunked` request bodies and sends streamed
/// responses chunked, answers `Expect: 100-continue` when the handler first reads the body,
/// and answers HEAD with the headers of the GET. Malformed or oversized requests get their
/// 4xx or 5xx answer and end their own connection only; so does a handler that panics (500).
///
/// Like [`StreamServer`], which it runs on, a `Server` is a handle: clones share one server.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use gevent::http::{Body, Response, Server};
/// use gevent::net::{TcpListener, TcpStream};
///
/// let server = Server::new(TcpListener::bind("127.0.0.1:0")?, |request| {
///     Response::new(Body::from(format!("Hello, {}!", request.uri().path())))
/// });
/// let addr = server.local_addr()?;
/// server.start()?;
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"GET /world HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut answer = String::new();
/// client.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(answer.ends_with("\r\n\r\nHello, /world!"));
///
/// server.stop(Duration::from_secs(1));
/// # std::io::Result::Ok(())
/// ```
///
/// # Output and pipelining
///
/// Responses are gathered in a buffer per connection and written when the server next waits
/// for the client: a response with a body in memory leaves in one write, and the answers to a
/// batch of pipelined requests leave together. A response is therefore not written while the
/// handler of the next pipelined request runs.
#[derive(Clone)]
pub struct Server {
    stream: StreamServer<TcpListener>,
    shared: Rc<Shared>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.stream)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server with the default limits (see [`ServerBuilder`]) that will serve HTTP on
    /// `listener`, calling `handler` for each request. Nothing happens until
    /// [`start`](Self::start) or [`serve_forever`](Self::serve_forever).
    ///
    /// The place of this call is the connections' spawn site in failure reports.
    #[track_caller]
    pub fn new<H>(listener: TcpListener, handler: H) -> Server
    where
        H: for<'a> Fn(Request<RequestBody<'a>>) -> Response<Body> + 'static,
    {
        Server::builder().build(listener, handler)
    }

    /// A builder to set the server's limits and options.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: Config::default(),
            pool: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Starts accepting connections in a greenlet of its own and returns
    /// ([`StreamServer::start`]).
    pub fn start(&self) -> io::Result<()> {
        self.stream.start()
    }

    /// Starts the server unless it is started, and parks until it stops
    /// ([`StreamServer::serve_forever`]).
    pub fn serve_forever(&self) -> io::Result<()> {
        self.stream.serve_forever()
    }

    /// Stops the server: stops accepting at once, closes the connections waiting for their
    /// next request, lets requests in flight finish within `grace` (their responses say
    /// `Connection: close`), then kills the rest ([`StreamServer::stop`]).
    pub fn stop(&self, grace: Duration) {
        self.shared.stopping.set(true);
        self.shared.connections.kill_idle();
        self.stream.stop(grace);
    }

    /// The listener's address; fails once the server is stopped.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Serves HTTP on one already-accepted connection until it closes (for custom
    /// transports, tests and fuzzing), with this server's handler and limits.
    ///
    /// Returns `Ok` when the client closes the connection, idles past the idle timeout, or
    /// is answered with an error status; an error if the connection fails or the handler
    /// panics (after answering 500).
    pub fn serve_connection<S: Read + Write>(&self, stream: S) -> io::Result<()> {
        match self.shared.serve(stream, |_| {})? {
            End::Closed => Ok(()),
            End::Panicked(message) => {
                Err(io::Error::other(format!("the request handler panicked: {message}")))
            }
        }
    }
}

impl Shared {
    fn serve<S: Read + Write>(&self, stream: S, half_close: fn(&mut S)) -> io::Result<End> {
        let stopping = || self.stopping.get();
        let slot = self.connections.register();
        conn::serve(stream, &self.config, &*self.handler, &slot, &stopping, half_close)
    }

    /// Serves one accepted connection for the [`StreamServer`]: a panic was reported by the
    /// panic hook, and a client going away is no failure.
    fn serve_accepted(&self, stream: TcpStream) -> io::Result<()> {
        // Answers leave in one write each: waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &self.tls {
            return self.serve_tls(acceptor, stream);
        }
        quiet(self.serve(stream, |tcp| {
            let _ = tcp.shutdown(Shutdown::Write);
        }))
    }

    /// [`serve_accepted`](Self::serve_accepted) over TLS. Out of line: the TLS connection's
    /// state in the plain connection's frame would deepen every plain connection's stack.
    #[cfg(feature = "tls")]
    #[inline(never)]
    fn serve_tls(&self, acceptor: &TlsAcceptor, stream: TcpStream) -> io::Result<()> {
        let handshake = {
            let timeout = gevent_core::Timeout::start(self.config.idle_timeout);
            acceptor.accept(stream).map_err(|e| (timeout.is(&e), e))
        };
        match handshake {
            Ok(tls) => quiet(self.serve(tls, |tls| {
                let _ = tls.shutdown();
                let _ = tls.get_ref().shutdown(Shutdown::Write);
            })),
            Err((true, _)) => Ok(()),
            Err((false, e)) => quiet(Err(e)),
        }
    }
}

/// Keeps the ordinary ends of a connection out of the server's failure reports.
fn quiet(served: io::Result<End>) -> io::Result<()> {
    match served {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::TimedOut
            ) && crate::Interrupted::try_from(&e).is_err() =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Builds a [`Server`] with limits and options other than the defaults.
///
/// ```
/// use std::time::Duration;
/// use gevent::http::{Response, Server};
/// use gevent::net::TcpListener;
///
/// let server = Server::builder()
///     .max_body_bytes(Some(1024 * 1024))
///     .idle_timeout(Duration::from_secs(10))
///     .build(TcpListener::bind("127.0.0.1:0")?, |_request| Response::new("ok".into()));
/// # std::io::Result::Ok(())
/// ```
pub struct ServerBuilder {
    config: Config,
    pool: Option<Pool>,
    #[cfg(feature = "tls")]
    tls: Option<TlsAcceptor>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// The most bytes a request head (request line and headers) may take: a longer one is
    /// answered with 431. Default 16 KiB.
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.config.max_header_bytes = bytes.max(1);
        self
    }

    /// The most header fields a request may have: more are answered with 431. Default 100.
    pub fn max_headers(mut self, count: usize) -> Self {
        self.config.max_headers = count;
        self
    }

    /// The most bytes a request body may have (`None`: no limit): a longer one is answered
    /// with 413, at once when its `Content-Length` says so, or when a chunked body grows past
    /// it (the handler's read fails with `InvalidData`). Default 16 MiB.
    pub fn max_body_bytes(mut self, bytes: Option<u64>) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// How long a connection may wait for the client: between requests, for a whole request
    /// head (so that a client trickling it in does not hold the connection: 408), and for
    /// each read of a body or write of a response. Default 60 s.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Runs each connection in `pool`, which caps how many are served at once
    /// ([`StreamServer::with_pool`]).
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Serves HTTPS: each connection starts with a TLS handshake by `acceptor`, bounded by
    /// the idle timeout.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    /// The server, serving `listener` with `handler`; see [`Server::new`].
    #[track_caller]
    pub fn build<H>(self, listener: TcpListener, handler: H) -> Server
    where
        H: for<'a> Fn(Request<RequestBody<'a>>) -> Response<Body> + 'static,
    {
        let shared = Rc::new(Shared {
            config: self.config,
            handler: Box::new(handler),
            connections: Connections::default(),
            stopping: Cell::new(false),
            #[cfg(feature = "tls")]
            tls: self.tls,
        });
        let serving = shared.clone();
        let mut stream = StreamServer::new(listener, move |stream: TcpStream, _peer| {
            serving.serve_accepted(stream)
        });
        if let Some(pool) = self.pool {
            stream = stream.with_pool(pool);
        }
        Server { stream, shared }
    }
}

/// A request body, streamed from the connection as the handler reads it.
///
/// The first read of a request that asked for `Expect: 100-continue` sends `100 Continue`.
/// Reads fail with `InvalidData` when a chunked body is malformed or grows past the server's
/// [`max_body_bytes`](ServerBuilder::max_body_bytes); the server then answers 400 or 413
/// itself. What the handler leaves unread is read and discarded after it returns (up to a
/// bound, beyond which the connection is closed).
pub struct RequestBody<'a> {
    inner: &'a mut dyn Read,
}

impl Read for RequestBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl fmt::Debug for RequestBody<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}
