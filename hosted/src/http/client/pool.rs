//! Connections to an origin and the idle ones kept for reuse (keep-alive).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::rc::Rc;

use super::target::Origin;
use crate::net::TcpStream;
#[cfg(feature = "tls")]
use crate::tls::TlsStream;

/// Bytes buffered from a connection: a typical response head fits in one read.
const READ_BUFFER: usize = 8 * 1024;

/// The byte stream of one connection, in clear or over TLS.
pub(super) enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "tls")]
            Transport::Tls(tls) => tls.flush(),
        }
    }
}

/// A connection to an origin, buffered for reading responses.
pub(super) struct Conn {
    pub(super) io: BufReader<Transport>,
    /// It carried an earlier exchange (it came from the pool): the server may have closed it
    /// in the meantime.
    pub(super) reused: bool,
}

impl Conn {
    pub(super) fn new(transport: Transport) -> Conn {
        Conn { io: BufReader::with_capacity(READ_BUFFER, transport), reused: false }
    }

    /// Whether an idle connection still looks usable: not closed by the server, and (in clear)
    /// with no bytes the server sent unasked, which would be taken for the next response.
    ///
    /// A TLS connection may legitimately hold records sent after the handshake (session
    /// tickets), so only its closing is detected here; a `close_notify` alert waiting in it is
    /// found by the request, which is then retried (see `Client::send`).
    fn looks_alive(&self) -> bool {
        if !self.io.buffer().is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        match rustix::net::recv(self.io.get_ref().tcp(), &mut byte, flags) {
            Err(rustix::io::Errno::WOULDBLOCK) => true,
            Ok((0, _)) | Err(_) => false,
            Ok(_) => !matches!(self.io.get_ref(), Transport::Plain(_)),
        }
    }
}

/// The idle connections of a client, shared by its clones, per origin.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Rc<RefCell<HashMap<Origin, Vec<Conn>>>>,
    max_idle_per_origin: usize,
}

impl Pool {
    pub(super) fn new(max_idle_per_origin: usize) -> Pool {
        Pool { inner: Rc::default(), max_idle_per_origin }
    }

    /// The most recently used idle connection to `origin` that still looks alive; the dead
    /// ones found on the way are closed.
    pub(super) fn take(&self, origin: &Origin) -> Option<Conn> {
        let mut idle = self.inner.borrow_mut();
        let conns = idle.get_mut(origin)?;
        while let Some(conn) = conns.pop() {
            if conn.looks_alive() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `origin`, unless enough are idle already.
    pub(super) fn put(&self, origin: &Origin, io: BufReader<Transport>) {
        let mut idle = self.inner.borrow_mut();
        let conns = match idle.get_mut(origin) {
            Some(conns) => conns,
            None => idle.entry(origin.clone()).or_default(),
        };
        if conns.len() < self.max_idle_per_origin {
            conns.push(Conn { io, reused: true });
        }
    }
}
