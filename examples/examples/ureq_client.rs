//! `ureq`, an HTTP client written for blocking `std::io`, run cooperatively: ten greenlets each
//! make a GET through one shared `ureq::Agent`, and the requests overlap on the one hub thread.
//!
//! ```sh
//! cargo run -p gevent-examples --example ureq_client
//! ```
//!
//! The example starts its own HTTP server on loopback (a `StreamServer` that waits 100 ms before
//! it answers each request, and until all ten have arrived), spawns the ten clients and a ticker
//! greenlet, and prints each status, the most requests the server held at once (all ten: none of
//! the clients blocked the thread while it waited for its answer), how often the ticker ran
//! while requests were pending, and the elapsed time (about one delay, not ten). With ureq's own
//! connector instead, the first request blocks the thread: the server never reads it, and every
//! request times out.
//!
//! # The adapter
//!
//! ureq 3 opens its connections through two traits it lets an agent replace,
//! [`Agent::with_parts`]`(config, connector, resolver)`:
//!
//! - [`GeventResolver`], a ureq [`Resolver`], turns the URI's host into addresses with
//!   [`gevent::dns::getaddrinfo`], the hub's resolver, instead of ureq's default (std's
//!   `to_socket_addrs`, on a thread of its own when a timeout applies).
//! - [`GeventConnector`], a ureq [`Connector`], connects with [`gevent::net::TcpStream`] and
//!   hands ureq a [`GeventTransport`]: ureq's [`Transport`] works on ureq's own buffers
//!   ([`LazyBuffers`]), and asks the transport to send the filled part of the output buffer
//!   (`transmit_output`) and to read into the input buffer (`await_input`), each with the time
//!   left, which becomes the stream's read or write timeout.
//!
//! ureq requires its transports to be `Send + Sync` (an agent, and its pool of idle
//! connections, may be shared by threads), and a `gevent::net::TcpStream` is neither: it is
//! registered with the hub of its thread. So the transport keeps the connection as a plain
//! non-blocking `std::net::TcpStream` and registers it with the current thread's hub only for
//! the length of each send or receive; the pool's liveness probe (`is_open`) peeks without
//! waiting and needs no hub. This costs a few system calls per send or receive (registering and
//! unregistering), keeps all the waiting in the hub, and holds wherever ureq moves or drops the
//! connection. A greenlet's [`gevent::Timeout`] or kill interrupts a request as it does any
//! cooperative call: ureq returns the interruption as its `Error::Io`. The connector registers
//! no shutdown handle, so `Agent::shutdown` closes idle connections but leaves requests in
//! progress to their timeouts.
//!
//! This example speaks plain HTTP (ureq is built without TLS); `https` URIs are refused.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::{Timeout, spawn};
use ureq::Agent;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// How many greenlets make a request at once.
const CLIENTS: usize = 10;
/// How long the server waits before it answers each request.
const DELAY: Duration = Duration::from_millis(100);
/// How long past [`DELAY`] the server waits for all [`CLIENTS`] requests to have arrived before
/// it answers anyway: clients that block the thread would never have more than one in flight.
const PATIENCE: Duration = Duration::from_secs(5);
/// How often the ticker greenlet wakes.
const TICK: Duration = Duration::from_millis(10);
const BODY: &str = "hello from a greenlet\n";

/// Resolves the URI's host through the hub's resolver ([`gevent::dns::getaddrinfo`]), so a
/// lookup waits in the hub instead of blocking the thread.
#[derive(Debug, Default)]
pub struct GeventResolver;

impl Resolver for GeventResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if uri.scheme_str() != Some("http") {
            return Err(ureq::Error::BadUri(format!("{uri}: this agent speaks plain http only")));
        }
        let authority =
            uri.authority().ok_or_else(|| ureq::Error::BadUri(format!("{uri} has no host")))?;
        // An IPv6 literal keeps its brackets in the authority.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let _limit = timeout.not_zero().map(|after| Timeout::start(*after));
        let addrs = gevent::dns::getaddrinfo(host, port).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
            _ => ureq::Error::Io(e),
        })?;
        let mut resolved = self.empty();
        for addr in config.ip_family().keep_wanted(addrs.into_iter()) {
            // ureq takes a bounded number of addresses: the first ones.
            if resolved.try_push(addr).is_err() {
                break;
            }
        }
        if resolved.is_empty() { Err(ureq::Error::HostNotFound) } else { Ok(resolved) }
    }
}

/// Opens connections with [`gevent::net::TcpStream`], trying the resolved addresses in turn;
/// the connections it makes are [`GeventTransport`]s.
#[derive(Debug, Default)]
pub struct GeventConnector;

impl<In: Transport> Connector<In> for GeventConnector {
    type Out = GeventTransport;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<GeventTransport>, ureq::Error> {
        if chained.is_some() {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "GeventConnector opens its own connections: chain it first",
            )));
        }
        let limit = details.timeout.not_zero().map(|after| *after);
        let mut last_error = None;
        for addr in details.addrs.iter() {
            let attempt = match limit {
                Some(after) => TcpStream::connect_timeout(addr, after),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    if details.config.no_delay() {
                        stream.set_nodelay(true)?;
                    }
                    let buffers = LazyBuffers::new(
                        details.config.input_buffer_size(),
                        details.config.output_buffer_size(),
                    );
                    let stream = std::net::TcpStream::from(OwnedFd::from(stream));
                    return Ok(Some(GeventTransport { stream: Some(stream), buffers }));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last_error = Some(ureq::Error::Timeout(details.timeout.reason));
                }
                Err(e) => last_error = Some(ureq::Error::Io(e)),
            }
        }
        Err(last_error.unwrap_or(ureq::Error::HostNotFound))
    }
}

/// A ureq [`Transport`] over a TCP connection that waits in the hub.
///
/// The connection is kept as a non-blocking `std::net::TcpStream` (which is `Send + Sync`, as
/// ureq requires) and becomes a hub-registered [`gevent::net::TcpStream`] for each send or
/// receive. Registering panics if the hub cannot (its poller out of memory or descriptors), as
/// `gevent::net::TcpStream`'s `From` conversions do.
#[derive(Debug)]
pub struct GeventTransport {
    /// `None` only while a send or receive has it registered with the hub; a send or receive
    /// that fails to give it back leaves the transport closed.
    stream: Option<std::net::TcpStream>,
    buffers: LazyBuffers,
}

impl GeventTransport {
    /// Runs `io` on the connection registered with the current thread's hub, with `timeout`
    /// set by `set_timeout`; a timeout expiring becomes ureq's timeout error for `timeout`.
    fn cooperatively<T>(
        &mut self,
        timeout: NextTimeout,
        set_timeout: fn(&TcpStream, Option<Duration>) -> io::Result<()>,
        io: impl FnOnce(&mut TcpStream, &mut LazyBuffers) -> io::Result<T>,
    ) -> Result<T, ureq::Error> {
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        let stream = self.stream.take().ok_or_else(|| {
            ureq::Error::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection was lost by an earlier failure",
            ))
        })?;
        let mut stream = TcpStream::from(stream);
        let result = set_timeout(&stream, timeout.not_zero().map(|after| *after))
            .and_then(|()| io(&mut stream, &mut self.buffers));
        // Unregistered again, and still non-blocking.
        self.stream = Some(std::net::TcpStream::from(OwnedFd::from(stream)));
        result.map_err(|e| match e.kind() {
            // A read or write timeout of the stream (std's kind on Unix, and ours).
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                if gevent::Interrupted::try_from(&e).is_err() =>
            {
                ureq::Error::Timeout(timeout.reason)
            }
            _ => ureq::Error::Io(e),
        })
    }
}

impl Transport for GeventTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.cooperatively(timeout.for_write(), TcpStream::set_write_timeout, |stream, buffers| {
            stream.write_all(&buffers.output()[..amount])
        })
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let read = self.cooperatively(
            timeout.for_read(),
            TcpStream::set_read_timeout,
            |stream, buffers| loop {
                match io::Read::read(stream, buffers.input_append_buf()) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => return result,
                }
            },
        )?;
        self.buffers.input_appended(read);
        Ok(read > 0)
    }

    fn is_open(&mut self) -> bool {
        // The stream is non-blocking between sends and receives: an idle connection has
        // nothing to read, a closed one reads the end, and bytes nobody asked for make it
        // unusable.
        let Some(stream) = &self.stream else { return false };
        matches!(stream.peek(&mut [0]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// What the server and the ticker count.
#[derive(Debug, Default)]
struct Counts {
    /// Requests read and not yet answered.
    in_flight: Cell<usize>,
    /// The most requests in flight at once.
    most_in_flight: Cell<usize>,
    /// Set when [`CLIENTS`] requests have been in flight at once.
    all_in_flight: Event,
    /// Ticks of the ticker while at least one request was in flight.
    ticks_while_pending: Cell<usize>,
}

/// Answers the one request of a connection after [`DELAY`], and not before all [`CLIENTS`]
/// requests have arrived (up to [`PATIENCE`] more), counting it in flight meanwhile. Holding
/// the answers makes the count of requests in flight at once independent of how fast the
/// clients are, as long as they overlap at all.
fn serve(counts: &Counts, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // The head, up to the empty line (the client's GET has no body).
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // closed before a whole request
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    counts.in_flight.set(counts.in_flight.get() + 1);
    counts.most_in_flight.set(counts.most_in_flight.get().max(counts.in_flight.get()));
    if counts.in_flight.get() == CLIENTS {
        counts.all_in_flight.set();
    }
    let waited = gevent::sleep(DELAY).and_then(|()| counts.all_in_flight.wait_timeout(PATIENCE));
    counts.in_flight.set(counts.in_flight.get() - 1);
    waited?;
    write!(
        reader.get_mut(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// GETs `url` with `agent`: the status and the body.
fn get(agent: &Agent, url: &str) -> Result<(u16, String), ureq::Error> {
    let mut response = agent.get(url).call()?;
    let body = response.body_mut().read_to_string()?;
    Ok((response.status().as_u16(), body))
}

fn main() -> ExitCode {
    gevent::run(|| {
        let counts = Rc::new(Counts::default());
        let server = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => {
                let counts = counts.clone();
                StreamServer::new(listener, move |stream, _peer| serve(&counts, stream))
            }
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1: {e}");
                return ExitCode::FAILURE;
            }
        };
        let port = match server.start().and_then(|()| server.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => {
                eprintln!("cannot start the server: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("server: listening on 127.0.0.1:{port}, answering each request after {DELAY:?}");
        let _backstop = Timeout::start(PATIENCE * 2);

        let ticker = {
            let counts = counts.clone();
            spawn(move || {
                while gevent::sleep(TICK).is_ok() {
                    if counts.in_flight.get() > 0 {
                        counts.ticks_while_pending.set(counts.ticks_while_pending.get() + 1);
                    }
                }
            })
        };

        let config = Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build();
        let agent = Agent::with_parts(config, GeventConnector, GeventResolver);
        // The name, not the address: the resolver is part of the demonstration.
        let url = format!("http://localhost:{port}/");
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (agent, url) = (agent.clone(), url.clone());
                spawn(move || get(&agent, &url))
            })
            .collect();
        let mut all_ok = true;
        for (i, client) in clients.iter().enumerate() {
            match client.take() {
                Ok(Ok((status, body))) => {
                    println!("client {i}: {status} {:?}", body.trim_end());
                    all_ok &= status == 200 && body == BODY;
                }
                Ok(Err(e)) => {
                    println!("client {i}: {e}");
                    all_ok = false;
                }
                Err(e) => {
                    println!("client {i}: {e}");
                    all_ok = false;
                }
            }
        }
        let elapsed = started.elapsed();
        let _ = ticker.kill();
        server.stop(Duration::from_secs(1));
        println!("most requests in flight at once: {}", counts.most_in_flight.get());
        println!("ticks while requests were pending: {}", counts.ticks_while_pending.get());
        println!(
            "{CLIENTS} requests of {DELAY:?} each in {elapsed:.0?} (one after another: {:?})",
            DELAY * CLIENTS as u32
        );
        if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    })
}
