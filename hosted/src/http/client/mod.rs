//! [`Client`]: a small blocking-style HTTP/1.1 client whose calls switch to other greenlets
//! while they wait, with a keep-alive pool per origin.

mod pool;
mod request;
mod response;
mod target;

use std::fmt;
use std::io::{self, BufRead};
use std::rc::Rc;
use std::time::Duration;

use ::http::{HeaderValue, Method, Request, Response};

use self::pool::{Conn, Pool, Transport};
use self::request::{Outgoing, RequestHead};
use self::response::{Framing, framing, keeps_alive, read_head};
use self::target::{Origin, parse_url};
use super::Body;
use crate::net::TcpStream;
#[cfg(feature = "tls")]
use crate::tls::TlsConnector;
use crate::{Interrupted, Timeout};

pub use self::response::ResponseBody;

/// The default of [`ClientBuilder::timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default of [`ClientBuilder::max_idle_per_host`].
const DEFAULT_MAX_IDLE_PER_HOST: usize = 8;

/// An HTTP/1.1 client (`http://` and `https://`), blocking-style: its calls switch to other
/// greenlets while they wait for the network, so that many greenlets can fetch at once.
///
/// A `Client` is a cheap handle: its clones share one pool of idle keep-alive connections per
/// origin (scheme, host and port). A connection goes back to the pool once its response body is
/// read to the end, unless the server said `Connection: close`, answered with HTTP/1.0 without
/// `Connection: keep-alive`, or ended the body by closing the connection. Connections belong to
/// the hub of the thread that made them, so a `Client` stays on its thread (it is not `Send`).
///
/// When a pooled connection turns out to have been closed by the server before any byte of the
/// response arrived, the request is sent once more on a fresh connection, provided that this
/// is safe: the method is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`, ...) or nothing of the
/// body had been sent, and the body can be sent again (it is in memory, or its reader was not
/// read yet).
///
/// Redirects are not followed: a 3xx response is returned as it is, with its `Location`
/// header. Informational (1xx) responses are skipped. There is no proxy support and no content
/// decoding (a gzip body is returned compressed).
///
/// ```
/// use std::io::{Read, Write};
/// use gevent::http::Client;
/// use gevent::net::TcpListener;
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let url = format!("http://{}/hello", listener.local_addr()?);
/// let server = gevent::spawn(move || -> std::io::Result<()> {
///     let (mut stream, _) = listener.accept()?;
///     let mut request = [0; 1024];
///     let _ = stream.read(&mut request)?;
///     stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
/// });
///
/// let response = Client::new().get(&url)?;
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.into_body().into_string()?, "hello\n");
/// server.take().unwrap()?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct Client {
    config: Rc<Config>,
    pool: Pool,
}

struct Config {
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    user_agent: HeaderValue,
    #[cfg(feature = "tls")]
    tls: std::cell::OnceCell<TlsConnector>,
}

/// Settings for a [`Client`], made by [`Client::builder`].
pub struct ClientBuilder {
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    max_idle_per_host: usize,
    user_agent: HeaderValue,
    #[cfg(feature = "tls")]
    tls: Option<TlsConnector>,
}

impl Client {
    /// A client with the default settings (see [`ClientBuilder`]).
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Settings for a new client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            timeout: Some(DEFAULT_TIMEOUT),
            connect_timeout: None,
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            user_agent: HeaderValue::from_static(concat!("gevent/", env!("CARGO_PKG_VERSION"))),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Sends a `GET` request for `url` and returns the response once its head has arrived.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn get(&self, url: &str) -> io::Result<Response<ResponseBody>> {
        self.send(Request::get(parse_url(url)?).body(Body::empty()).map_err(request_error)?)
    }

    /// Sends a `POST` request with `body` to `url` and returns the response once its head has
    /// arrived.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn post(&self, url: &str, body: impl Into<Body>) -> io::Result<Response<ResponseBody>> {
        self.send(Request::post(parse_url(url)?).body(body.into()).map_err(request_error)?)
    }

    /// Sends `request`, whose URI must be absolute (`http://host[:port]/path?query` or
    /// `https://...`), and returns the response once its head has arrived; its body is read
    /// from the [`ResponseBody`].
    ///
    /// The request goes out as HTTP/1.1 with a `Host` header (unless it has one) and a
    /// `User-Agent` (unless it has one). Its body is framed from the [`Body`]:
    /// `Content-Length` when its length is known, `Transfer-Encoding: chunked` otherwise (no
    /// framing at all for an empty body of a `GET`, `HEAD`, `DELETE`, `OPTIONS` or `TRACE`);
    /// `Content-Length` and `Transfer-Encoding` headers of the request are replaced by these.
    ///
    /// # Errors
    ///
    /// - `InvalidInput`: the URI is not absolute, or its scheme is neither `http` nor `https`;
    ///   a body reader that ends before its announced length.
    /// - `TimedOut`: the connection was not made within the
    ///   [`connect_timeout`](ClientBuilder::connect_timeout), or the response head not received
    ///   within the [`timeout`](ClientBuilder::timeout).
    /// - `InvalidData`: a malformed response (status line, header fields, `Content-Length`).
    /// - `UnexpectedEof`: the server closed the connection without a (complete) response.
    /// - `Unsupported`: an `https` URI when gevent was built without its `tls` feature.
    /// - a [`TlsError`](crate::tls::TlsError) inside the error if the TLS handshake fails, and
    ///   the network's own errors (a refused connection, a name that does not resolve, ...).
    /// - An [`Interrupted`] inside the error if the caller's own [`Timeout`] expired or the
    ///   greenlet was killed.
    pub fn send(&self, request: Request<Body>) -> io::Result<Response<ResponseBody>> {
        let (parts, body) = request.into_parts();
        let origin = Origin::of(&parts.uri)?;
        let deadline = self.config.timeout.map(|limit| (crate::now().saturating_add(limit), limit));
        let timeout = deadline.map(|(at, _)| Timeout::start_at(at));
        self.exchange(&parts, body, origin.clone(), deadline).map_err(|e| {
            match (timeout, deadline) {
                (Some(timeout), Some((_, limit))) if timeout.is(&e) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the request to {origin} timed out after {limit:?}"),
                ),
                _ => e,
            }
        })
    }

    fn exchange(
        &self,
        parts: &::http::request::Parts,
        body: Body,
        origin: Origin,
        deadline: Option<(crate::time::Instant, Duration)>,
    ) -> io::Result<Response<ResponseBody>> {
        let head = RequestHead::new(parts, &origin, &self.config.user_agent, body.len())?;
        let mut body = Outgoing::new(body);
        let mut conn = match self.pool.take(&origin) {
            Some(conn) => conn,
            None => self.connect(&origin)?,
        };
        let head_of_response = loop {
            let sent = head.send(&mut conn.io, &mut body);
            let arrived = sent.and_then(|()| response_started(&mut conn.io));
            match arrived {
                Ok(()) => break read_final_head(&mut conn.io)?,
                Err(e)
                    if conn.reused
                        && is_closed(&e)
                        && body.replayable()
                        && (parts.method.is_idempotent() || !body.started()) =>
                {
                    // The server closed the idle connection as we reused it.
                    body.rewind();
                    conn = self.connect(&origin)?;
                }
                Err(e) => return Err(e),
            }
        };
        let framing = framing(&parts.method, &head_of_response)?;
        let reuse =
            (keeps_alive(&head_of_response) && !head.closes() && framing != Framing::UntilEof)
                .then(|| self.pool.clone());
        let mut response = Response::new(ResponseBody::new(conn, framing, reuse, origin, deadline));
        *response.status_mut() = head_of_response.status;
        *response.version_mut() = head_of_response.version;
        *response.headers_mut() = head_of_response.headers;
        Ok(response)
    }

    /// A new connection to `origin`, within the connect timeout.
    fn connect(&self, origin: &Origin) -> io::Result<Conn> {
        let timeout = self.config.connect_timeout.map(Timeout::start);
        let connected = self.connect_transport(origin);
        connected.map(Conn::new).map_err(|e| match (timeout, self.config.connect_timeout) {
            (Some(timeout), Some(limit)) if timeout.is(&e) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {origin} timed out after {limit:?}"),
            ),
            _ => e,
        })
    }

    fn connect_transport(&self, origin: &Origin) -> io::Result<Transport> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port)).map_err(|e| {
            if Interrupted::try_from(&e).is_ok() {
                e // kept as it is, so that a Timeout recognises it
            } else {
                io::Error::new(e.kind(), format!("connecting to {origin}: {e}"))
            }
        })?;
        // Requests are written whole: nothing is gained by delaying a short one.
        tcp.set_nodelay(true)?;
        if !origin.tls {
            return Ok(Transport::Plain(tcp));
        }
        #[cfg(feature = "tls")]
        {
            let connector = self.config.tls.get_or_init(TlsConnector::new);
            Ok(Transport::Tls(Box::new(connector.connect(&origin.host, tcp)?)))
        }
        #[cfg(not(feature = "tls"))]
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{origin}: https needs gevent's `tls` feature"),
        ))
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.config.timeout)
            .field("connect_timeout", &self.config.connect_timeout)
            .field("user_agent", &self.config.user_agent)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The longest a whole request may take, from connecting to the end of the response body
    /// (30 s by default); past it, the call at work fails with `TimedOut`. `None` for no limit
    /// (the caller's own [`Timeout`] still applies).
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> ClientBuilder {
        self.timeout = timeout.into();
        self
    }

    /// The longest connecting may take, TLS handshake included (no limit but the
    /// [`timeout`](Self::timeout) by default); past it, the request fails with `TimedOut`.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> ClientBuilder {
        self.connect_timeout = timeout.into();
        self
    }

    /// How many idle connections are kept per origin (8 by default); more are closed as their
    /// responses end. 0 disables keep-alive.
    pub fn max_idle_per_host(mut self, max: usize) -> ClientBuilder {
        self.max_idle_per_host = max;
        self
    }

    /// The TLS settings for `https` (by default, [`TlsConnector::new`]: Mozilla's roots,
    /// compiled in). The server's name is sent with SNI and checked against its certificate.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, connector: TlsConnector) -> ClientBuilder {
        self.tls = Some(connector);
        self
    }

    /// The `User-Agent` sent with requests that have none (`gevent/<version>` by default).
    pub fn user_agent(mut self, user_agent: HeaderValue) -> ClientBuilder {
        self.user_agent = user_agent;
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        Client {
            config: Rc::new(Config {
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                user_agent: self.user_agent,
                #[cfg(feature = "tls")]
                tls: self.tls.map(std::cell::OnceCell::from).unwrap_or_default(),
            }),
            pool: Pool::new(self.max_idle_per_host),
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

fn request_error(e: ::http::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Waits for the first byte of the response; a connection closed before it is `UnexpectedEof`.
fn response_started(io: &mut io::BufReader<Transport>) -> io::Result<()> {
    if io.fill_buf()?.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection without responding",
        ));
    }
    Ok(())
}

/// The final response head, informational (1xx) ones skipped.
fn read_final_head(io: &mut io::BufReader<Transport>) -> io::Result<response::Head> {
    loop {
        let head = read_head(io)?;
        if head.status == ::http::StatusCode::SWITCHING_PROTOCOLS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server switched protocols, which this client never asks for",
            ));
        }
        if !head.status.is_informational() {
            return Ok(head);
        }
    }
}

/// Whether `error` says that the connection was closed (rather than, say, timed out).
fn is_closed(error: &io::Error) -> bool {
    use io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionReset, NotConnected, UnexpectedEof,
    };
    Interrupted::try_from(error).is_err()
        && matches!(
            error.kind(),
            UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected
        )
}

/// Methods whose requests carry no body by convention: an empty one is sent without framing.
fn expects_no_body(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE)
}
