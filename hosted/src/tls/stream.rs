//! [`TlsStream`]: a TLS connection over a byte stream.

use std::fmt;
use std::io::{self, Read, Write};

use rustls::pki_types::CertificateDer;
use rustls::{Connection, ProtocolVersion};

use super::error::tls_error;

/// A TLS connection over the stream `S`, from [`TlsConnector::connect`](super::TlsConnector::connect)
/// or [`TlsAcceptor::accept`](super::TlsAcceptor::accept), with its handshake done.
///
/// It implements `std::io::{Read, Write}` and `embedded_io::{Read, Write}`: reads return
/// application data, writes encrypt and send it. Over a cooperative stream (a
/// [`TcpStream`](crate::net::TcpStream)) every call parks only the calling greenlet, and obeys
/// [`Timeout`](crate::Timeout) and kills like the stream does.
///
/// A read returns `Ok(0)` once the peer ended the connection with close_notify, and fails with
/// [`io::ErrorKind::UnexpectedEof`] if the stream ended without one (a truncation an attacker
/// could have caused). [`shutdown`](Self::shutdown) sends our close_notify.
///
/// A write returns once its bytes are handed to the stream; should sending them fail after the
/// bytes were taken, the write still counts them and the next call returns the failure.
pub struct TlsStream<S> {
    conn: Connection,
    stream: S,
    /// A failure to send bytes a write already reported as written, for the next call.
    deferred: Option<io::Error>,
}

impl<S: Read + Write> TlsStream<S> {
    /// Runs the handshake of `conn` over `stream` to its end.
    pub(super) fn handshake(conn: Connection, stream: S) -> io::Result<Self> {
        let mut tls = TlsStream { conn, stream, deferred: None };
        while tls.conn.is_handshaking() {
            tls.send_pending()?;
            if tls.conn.is_handshaking() && tls.receive()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
        }
        // Our last handshake message (the client's Finished) may still wait to be sent.
        tls.send_pending()?;
        Ok(tls)
    }

    /// Sends close_notify, telling the peer that we will send no more data (its reads then end
    /// with `Ok(0)`). We can still read what the peer sends; the underlying stream stays open
    /// until the `TlsStream` is dropped.
    pub fn shutdown(&mut self) -> io::Result<()> {
        self.take_deferred()?;
        self.conn.send_close_notify();
        self.send_pending()
    }

    /// Reads TLS records from the stream and processes them: the number of bytes read, 0 at the
    /// end of the stream.
    fn receive(&mut self) -> io::Result<usize> {
        let n = self.conn.read_tls(&mut self.stream)?;
        if let Err(error) = self.conn.process_new_packets() {
            // Tell the peer why, with the alert rustls queued; the failure itself is what counts.
            let _ = self.send_pending();
            return Err(tls_error(error));
        }
        Ok(n)
    }

    /// Writes every TLS record rustls has queued to the stream.
    fn send_pending(&mut self) -> io::Result<()> {
        let mut sent = false;
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.stream)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the underlying stream took no bytes of a TLS record",
                ));
            }
            sent = true;
        }
        if sent { self.stream.flush() } else { Ok(()) }
    }

    fn take_deferred(&mut self) -> io::Result<()> {
        self.deferred.take().map_or(Ok(()), Err)
    }
}

impl<S> TlsStream<S> {
    /// The ALPN protocol agreed in the handshake, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The TLS version agreed in the handshake.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The certificate chain the peer presented, its own certificate first: always there on a
    /// client; on a server, only when it asks for client certificates.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.conn.peer_certificates()
    }

    /// The underlying stream. Reading or writing it directly corrupts the TLS connection.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably. Reading or writing it directly corrupts the TLS
    /// connection.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

impl<S: Read + Write> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.take_deferred()?;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(buf) {
                // Plaintext, or Ok(0) after close_notify, or UnexpectedEof after an end of the
                // stream without close_notify.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return result,
            }
            // Answers the peer may wait for (a key update) go out before we wait for more.
            self.send_pending()?;
            self.receive()?;
        }
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.take_deferred()?;
        // Records left over from an earlier failure go first, so nothing is written out of order.
        self.send_pending()?;
        let n = self.conn.writer().write(buf)?;
        if let Err(e) = self.send_pending() {
            if n == 0 {
                return Err(e);
            }
            self.deferred = Some(e);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.take_deferred()?;
        self.send_pending()?;
        self.stream.flush()
    }
}

impl<S> embedded_io::ErrorType for TlsStream<S> {
    type Error = io::Error;
}

impl<S: Read + Write> embedded_io::Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }
}

impl<S: Read + Write> embedded_io::Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Write::flush(self)
    }
}

impl<S: fmt::Debug> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("stream", &self.stream)
            .field("protocol_version", &self.protocol_version())
            .field("alpn_protocol", &self.alpn_protocol().map(String::from_utf8_lossy))
            .finish_non_exhaustive()
    }
}
