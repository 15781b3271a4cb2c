//! TCP: a listener with a backlog of listening sockets, and streams.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::num::NonZeroU8;
use core::time::Duration;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use smoltcp::socket::tcp as smol_tcp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::{Entry, Kind, NetError, NetPoller, NetSource, retry_when_ready};

/// Receive and send buffer size of the sockets `bind` and `connect` create.
pub const DEFAULT_BUFFER: usize = 1024;

fn new_socket(rx: usize, tx: usize) -> smol_tcp::Socket<'static> {
    smol_tcp::Socket::new(
        smol_tcp::SocketBuffer::new(vec![0; rx]),
        smol_tcp::SocketBuffer::new(vec![0; tx]),
    )
}

/// A TCP connection: `read` and `write` block the calling greenlet until data or buffer space
/// is there; it implements `embedded_io::{Read, Write}`. [`split`](Self::split) makes a read
/// half and a write half for two greenlets.
///
/// Dropping it closes the connection gracefully: TCP finishes closing it, then the poller frees
/// the socket; one that takes longer than the linger ([`DEFAULT_LINGER`](super::DEFAULT_LINGER))
/// is aborted and freed. After [`abort`](Self::abort), dropping it frees the socket once the
/// RST went out.
pub struct TcpStream {
    conn: Conn,
}

/// The connection behind a stream or its halves.
struct Conn(IoRegistration<NetSource>);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream").field("socket", &self.conn.0.source().index).finish()
    }
}

impl TcpStream {
    fn from_source(source: NetSource) -> Result<Self, NetError> {
        let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
        Ok(TcpStream { conn: Conn(registration) })
    }

    /// Connects to `remote` from a free ephemeral port (49152–65535), waiting until the
    /// connection is established; the socket gets [`DEFAULT_BUFFER`]-byte buffers.
    pub fn connect(remote: impl Into<IpEndpoint>) -> Result<Self, NetError> {
        Self::connect_with_buffers(remote, None, DEFAULT_BUFFER, DEFAULT_BUFFER)
    }

    /// [`connect`](Self::connect) from `local_port`.
    pub fn connect_from(remote: impl Into<IpEndpoint>, local_port: u16) -> Result<Self, NetError> {
        Self::connect_with_buffers(remote, Some(local_port), DEFAULT_BUFFER, DEFAULT_BUFFER)
    }

    /// [`connect`](Self::connect) from `local_port` (`None`: a free ephemeral port) with `rx`-
    /// and `tx`-byte buffers (allocated once, here).
    pub fn connect_with_buffers(
        remote: impl Into<IpEndpoint>,
        local_port: Option<u16>,
        rx: usize,
        tx: usize,
    ) -> Result<Self, NetError> {
        let remote = remote.into();
        let source = NetPoller::with(|p| {
            let local_port = match local_port {
                Some(port) => port,
                None => p.ephemeral_port().ok_or(NetError::InvalidAddress)?,
            };
            let mut socket = new_socket(rx, tx);
            match socket.connect(p.iface.context(), remote, local_port) {
                Ok(()) => {
                    let handle = p.sockets.add(socket);
                    Ok(p.add(vec![handle], Kind::Tcp))
                }
                Err(_) => {
                    warn!("gevent: tcp connect from port {} refused by smoltcp", local_port);
                    Err(NetError::InvalidAddress)
                }
            }
        })??;
        let stream = TcpStream::from_source(source)?;
        loop {
            let state = stream.conn.with(|s, _| s.state())?;
            match state {
                smol_tcp::State::Established => return Ok(stream),
                smol_tcp::State::SynSent | smol_tcp::State::SynReceived => {
                    stream.conn.0.clear_readiness(Interest::WRITABLE);
                    stream.conn.0.wait(Interest::WRITABLE)?;
                }
                _ => return Err(NetError::ConnectionRefused),
            }
        }
    }

    /// Reads what is there (at least one byte), waiting for data; 0 at the end of the stream
    /// (the peer's FIN). Fails with [`NetError::ConnectionReset`] once the connection was reset
    /// by the peer or timed out by TCP, and with [`NetError::NotConnected`] after
    /// [`abort`](Self::abort).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.conn.read(buf)
    }

    /// Queues what fits (at least one byte), waiting for buffer space. Fails with
    /// [`NetError::ConnectionReset`] once the connection was reset, and with
    /// [`NetError::NotConnected`] after this side closed or aborted it.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.conn.write(buf)
    }

    /// Writes all of `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.conn.write_all(buf)
    }

    /// Waits until the peer has acknowledged everything written (the send buffer is empty),
    /// as embassy-net's `flush` does. Fails as [`write`](Self::write) does if the connection
    /// ends first; a `Timeout` or a kill interrupts it.
    pub fn flush(&mut self) -> Result<(), NetError> {
        self.conn.flush()
    }

    /// Sends FIN: the peer reads the end of the stream; this side can still read.
    pub fn close(&mut self) -> Result<(), NetError> {
        self.conn.close()
    }

    /// Resets the connection at once: the RST goes out on the next hub turn, also if the
    /// stream is dropped right away.
    pub fn abort(&mut self) -> Result<(), NetError> {
        self.conn.with(|s, e| {
            e.aborted = true;
            s.abort()
        })
    }

    /// The peer's address, while connected.
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        self.conn.with(|s, _| s.remote_endpoint()).ok().flatten()
    }

    /// This side's address, while connected.
    pub fn local_endpoint(&self) -> Option<IpEndpoint> {
        self.conn.with(|s, _| s.local_endpoint()).ok().flatten()
    }

    /// Sends small writes at once instead of holding them back while data is unacknowledged
    /// (turns Nagle's algorithm off, as `TCP_NODELAY` does); off by default.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<(), NetError> {
        self.conn.with(|s, _| s.set_nagle_enabled(!nodelay))
    }

    /// Sends a keep-alive probe after each `interval` without traffic (`None`, the default:
    /// never). With [`set_timeout`](Self::set_timeout), a peer that vanished is noticed.
    pub fn set_keep_alive(&self, interval: Option<Duration>) -> Result<(), NetError> {
        self.conn.with(|s, _| s.set_keep_alive(interval.map(smol_duration)))
    }

    /// Aborts the connection when the peer sends nothing for `timeout` while data waits to be
    /// acknowledged, or while keep-alive probes go unanswered (`None`, the default: never);
    /// reads and writes then fail with [`NetError::ConnectionReset`]. smoltcp's socket timeout.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> Result<(), NetError> {
        self.conn.with(|s, _| s.set_timeout(timeout.map(smol_duration)))
    }

    /// The hop limit (IPv4 time-to-live) of outgoing packets; `None`: the default, 64.
    pub fn set_hop_limit(&self, hop_limit: Option<NonZeroU8>) -> Result<(), NetError> {
        self.conn.with(|s, _| s.set_hop_limit(hop_limit.map(NonZeroU8::get)))
    }

    /// Splits the stream into a read half and a write half, which two greenlets can use at
    /// once (one waits for data while the other waits for buffer space). Dropping the write
    /// half sends FIN; the connection ends as a dropped stream does once both halves are gone.
    pub fn split(self) -> (TcpReader, TcpWriter) {
        let conn = Rc::new(self.conn);
        (TcpReader { conn: conn.clone() }, TcpWriter { conn })
    }
}

/// Converts a duration for smoltcp, saturating.
fn smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The read half of a [`TcpStream`], from [`TcpStream::split`].
pub struct TcpReader {
    conn: Rc<Conn>,
}

/// The write half of a [`TcpStream`], from [`TcpStream::split`]; dropping it sends FIN.
pub struct TcpWriter {
    conn: Rc<Conn>,
}

impl fmt::Debug for TcpReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpReader").field("socket", &self.conn.0.source().index).finish()
    }
}

impl fmt::Debug for TcpWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpWriter").field("socket", &self.conn.0.source().index).finish()
    }
}

impl TcpReader {
    /// As [`TcpStream::read`].
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.conn.read(buf)
    }
}

impl TcpWriter {
    /// As [`TcpStream::write`].
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.conn.write(buf)
    }

    /// As [`TcpStream::write_all`].
    pub fn write_all(&mut self, buf: &[u8]) -> Result<(), NetError> {
        self.conn.write_all(buf)
    }

    /// As [`TcpStream::flush`].
    pub fn flush(&mut self) -> Result<(), NetError> {
        self.conn.flush()
    }
}

impl Drop for TcpWriter {
    fn drop(&mut self) {
        // Without a network stack there is no connection left to close.
        let _ = self.conn.close();
    }
}

impl Conn {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut smol_tcp::Socket<'static>, &mut Entry) -> R,
    ) -> Result<R, NetError> {
        let index = self.0.source().index;
        NetPoller::with(|p| p.tcp(index).map(|(s, e)| f(s, e)))?.ok_or(NetError::NotConnected)
    }

    fn read(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        retry_when_ready(&self.0, Interest::READABLE, || {
            self.with(|s, e| {
                if s.can_recv() {
                    s.recv_slice(buf).map(Some).map_err(|_| NetError::ConnectionReset)
                } else if !s.may_recv() {
                    read_ended(s, e).map(|()| Some(0))
                } else {
                    Ok(None)
                }
            })?
        })
    }

    fn write(&self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        retry_when_ready(&self.0, Interest::WRITABLE, || {
            self.with(|s, e| {
                if !s.may_send() {
                    Err(write_ended(s, e))
                } else if s.can_send() {
                    s.send_slice(buf).map(Some).map_err(|_| NetError::NotConnected)
                } else {
                    Ok(None)
                }
            })?
        })
    }

    fn write_all(&self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), NetError> {
        loop {
            let done = self.with(|s, e| {
                if s.send_queue() == 0 {
                    Ok(true)
                } else if s.state() == smol_tcp::State::Closed {
                    Err(write_ended(s, e))
                } else {
                    e.flushing = true;
                    Ok(false)
                }
            })??;
            if done {
                return Ok(());
            }
            self.0.clear_readiness(Interest::WRITABLE);
            let waited = self.0.wait(Interest::WRITABLE);
            self.with(|_, e| e.flushing = false)?;
            waited?;
        }
    }

    fn close(&self) -> Result<(), NetError> {
        self.with(|s, e| {
            e.closed = true;
            s.close()
        })
    }
}

/// Why a socket stopped receiving: `Ok` for the peer's FIN. Closed without one, the
/// connection was reset by the peer or timed out by TCP.
fn read_ended(s: &smol_tcp::Socket<'_>, e: &Entry) -> Result<(), NetError> {
    if e.aborted {
        Err(NetError::NotConnected)
    } else if s.state() == smol_tcp::State::Closed && !e.fin_received {
        Err(NetError::ConnectionReset)
    } else {
        Ok(())
    }
}

/// Why a socket can no longer send: this side closed or aborted it, or else (closed without
/// that) the connection was reset by the peer or timed out by TCP.
fn write_ended(s: &smol_tcp::Socket<'_>, e: &Entry) -> NetError {
    if !e.aborted && !e.closed && s.state() == smol_tcp::State::Closed {
        NetError::ConnectionReset
    } else {
        NetError::NotConnected
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = NetError;
}

impl embedded_io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.conn.read(buf)
    }
}

impl embedded_io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.conn.write(buf)
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.conn.flush()
    }
}

impl embedded_io::ErrorType for TcpReader {
    type Error = NetError;
}

impl embedded_io::Read for TcpReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        self.conn.read(buf)
    }
}

impl embedded_io::ErrorType for TcpWriter {
    type Error = NetError;
}

impl embedded_io::Write for TcpWriter {
    fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.conn.write(buf)
    }

    fn flush(&mut self) -> Result<(), NetError> {
        self.conn.flush()
    }
}

/// Accepts TCP connections on a port. smoltcp has no accept queue: a listening socket turns
/// into the connection, so the listener keeps a `backlog` of listening sockets and replaces
/// each one it hands out.
pub struct TcpListener {
    registration: IoRegistration<NetSource>,
    port: u16,
    buffers: (usize, usize),
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("port", &self.port).finish()
    }
}

/// The largest backlog a [`TcpListener`] takes: each slot is a listening socket with its
/// buffers, allocated at `bind`, so a larger one is refused rather than exhausting the heap.
pub const MAX_BACKLOG: usize = 64;

impl TcpListener {
    /// Listens on `port` with `backlog` listening sockets (connections that can arrive before
    /// `accept` is called; 1 to [`MAX_BACKLOG`], 0 counts as 1), each with
    /// [`DEFAULT_BUFFER`]-byte buffers.
    pub fn bind(port: u16, backlog: usize) -> Result<Self, NetError> {
        Self::bind_with_buffers(port, backlog, DEFAULT_BUFFER, DEFAULT_BUFFER)
    }

    /// [`bind`](Self::bind) with `rx`- and `tx`-byte buffers per socket, allocated when a
    /// listening socket is made (never per packet).
    pub fn bind_with_buffers(
        port: u16,
        backlog: usize,
        rx: usize,
        tx: usize,
    ) -> Result<Self, NetError> {
        if backlog > MAX_BACKLOG {
            return Err(NetError::BacklogTooLarge);
        }
        let source = NetPoller::with(|p| {
            let mut sockets = Vec::new();
            for _ in 0..backlog.max(1) {
                let mut socket = new_socket(rx, tx);
                socket
                    .listen(IpListenEndpoint::from(port))
                    .map_err(|_| NetError::InvalidAddress)?;
                sockets.push(socket);
            }
            let handles = sockets.into_iter().map(|s| p.sockets.add(s)).collect();
            Ok::<_, NetError>(p.add(handles, Kind::Listener))
        })??;
        let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
        Ok(TcpListener { registration, port, buffers: (rx, tx) })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for a connection and returns it.
    pub fn accept(&self) -> Result<TcpStream, NetError> {
        loop {
            let index = self.registration.source().index;
            let accepted = NetPoller::with(|p| -> Result<Option<NetSource>, NetError> {
                let entry = p.entry_mut(index).ok_or(NetError::NotConnected)?;
                let handles = entry.handles.clone();
                for (i, handle) in handles.into_iter().enumerate() {
                    let socket = p.sockets.get_mut::<smol_tcp::Socket<'static>>(handle);
                    let state = socket.state();
                    match state {
                        smol_tcp::State::Listen
                        | smol_tcp::State::SynReceived
                        | smol_tcp::State::SynSent => continue,
                        smol_tcp::State::Closed => {
                            debug!(
                                "gevent: a connection to port {} ended before accept",
                                self.port
                            );
                            // A connection that came and went before `accept`: listen again.
                            let _ = socket.listen(IpListenEndpoint::from(self.port));
                        }
                        _ => {
                            let mut fresh = new_socket(self.buffers.0, self.buffers.1);
                            fresh
                                .listen(IpListenEndpoint::from(self.port))
                                .map_err(|_| NetError::InvalidAddress)?;
                            let fresh = p.sockets.add(fresh);
                            let entry = p.entry_mut(index).expect("still there");
                            entry.handles[i] = fresh;
                            let source = p.add(vec![handle], Kind::Tcp);
                            let accepted = p.entry_mut(source.index).expect("just added");
                            accepted.fin_received = super::fin_received(state);
                            return Ok(Some(source));
                        }
                    }
                }
                Ok(None)
            })??;
            match accepted {
                Some(source) => return TcpStream::from_source(source),
                None => {
                    self.registration.clear_readiness(Interest::READABLE);
                    self.registration.wait(Interest::READABLE)?;
                }
            }
        }
    }
}
