//! Sending one query to one name server and waiting for its reply: over UDP, or over TCP
//! when the UDP reply was truncated.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gevent_core::Timeout;

use crate::net::{TcpStream, UdpSocket};

/// The receive buffer of a UDP query. Without EDNS a reply has at most 512 bytes (RFC 1035
/// 4.2.1; longer ones come truncated, flagged TC); the slack keeps a server that sends more
/// anyway from having its reply cut and ignored.
const UDP_BUFFER: usize = 4096;

/// A reply, or why there is none.
pub(super) enum Exchange<T> {
    /// The server's reply, as `accept` read it.
    Reply(T),
    /// No acceptable reply within the try's time.
    TimedOut,
}

/// Sends `query` to `server` over UDP from a fresh socket (a fresh random source port), and
/// waits at most `timeout` for a datagram from `server` that `accept` reads as the reply,
/// ignoring others (other sources, other ids, other questions, garbage).
pub(super) fn udp<T>(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> io::Result<Exchange<T>> {
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(local)?;
    let deadline = Timeout::start(timeout);
    let mut buf = [0u8; UDP_BUFFER];
    let outcome = (|| {
        socket.send_to(query, server)?;
        loop {
            let (len, from) = socket.recv_from(&mut buf)?;
            if from != server {
                continue;
            }
            if let Some(reply) = accept(&buf[..len]) {
                return Ok(reply);
            }
        }
    })();
    finish(outcome, &deadline)
}

/// Sends `query` to `server` over TCP (a new connection) and reads its one reply, all within
/// `timeout`.
pub(super) fn tcp<T>(
    server: SocketAddr,
    query: &[u8],
    timeout: Duration,
    accept: impl FnOnce(&[u8]) -> Option<T>,
) -> io::Result<Exchange<T>> {
    let deadline = Timeout::start(timeout);
    let outcome = (|| {
        let len = u16::try_from(query.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the query is too long"))?;
        let mut stream = TcpStream::connect(server)?;
        let mut framed = Vec::with_capacity(2 + query.len());
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply)?;
        accept(&reply).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{server} answered over TCP with a reply to another query"),
            )
        })
    })();
    finish(outcome, &deadline)
}

/// Tells this try's own expiry (a time-out to report) from any other error, an outer
/// `Timeout` or a kill included, which propagates.
fn finish<T>(outcome: io::Result<T>, deadline: &Timeout) -> io::Result<Exchange<T>> {
    match outcome {
        Ok(reply) => Ok(Exchange::Reply(reply)),
        Err(e) if deadline.is(&e) => Ok(Exchange::TimedOut),
        Err(e) => Err(e),
    }
}
