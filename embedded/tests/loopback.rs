//! Cooperative TCP and UDP over smoltcp on a loopback device, inside the test process: an echo
//! server greenlet and client greenlets on 127.0.0.1, through the real smoltcp TCP state
//! machine.

mod common;

use std::time::Duration;

use gevent_embedded::net::{TcpListener, TcpStream, UdpSocket};
use gevent_embedded::{Interrupted, Timeout, joinall, spawn};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

const LOCALHOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);

/// Installs a hub on this thread with a smoltcp interface on a loopback device.
fn loopback_hub() {
    common::ip_hub(Loopback::new(Medium::Ip), &[IpCidr::new(IpAddress::Ipv4(LOCALHOST), 8)], 8);
}

/// Echoes each connection until the client closes it.
fn echo(stream: &mut TcpStream) -> Result<usize, gevent_embedded::net::NetError> {
    let mut buf = [0u8; 256];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n])?;
        total += n;
    }
}

/// A client written against embedded-io, as a third-party library would be.
fn round_trip<S: embedded_io::Read + embedded_io::Write>(
    stream: &mut S,
    message: &[u8],
) -> Vec<u8> {
    stream.write_all(message).map_err(|_| "write").unwrap();
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).map_err(|_| "read").unwrap();
    reply
}

#[test]
fn tcp_echo_between_greenlets_over_smoltcp() {
    loopback_hub();
    let listener = TcpListener::bind(7, 4).unwrap();
    let server = spawn(move || -> Result<usize, gevent_embedded::net::NetError> {
        let mut served = 0;
        let mut handlers = Vec::new();
        for _ in 0..3 {
            let mut stream = listener.accept()?;
            handlers.push(spawn(move || echo(&mut stream)));
            served += 1;
        }
        joinall(&handlers)?;
        Ok(served)
    });
    let clients: Vec<_> = (0..3u16)
        .map(|i| {
            spawn(move || {
                let mut stream = TcpStream::connect((LOCALHOST, 7)).unwrap();
                let message = format!("hello from client {i}, ").repeat(20 + i as usize);
                let reply = round_trip(&mut stream, message.as_bytes());
                stream.close().unwrap();
                reply == message.as_bytes()
            })
        })
        .collect();
    for c in &clients {
        assert_eq!(c.get(), Ok(true), "{:?}", c.error());
    }
    assert_eq!(server.get().unwrap(), Ok(3));
}

#[test]
fn a_timeout_bounds_a_read_with_no_data() {
    loopback_hub();
    let listener = TcpListener::bind(8, 1).unwrap();
    let server = spawn(move || {
        let stream = listener.accept().unwrap();
        gevent_embedded::sleep(Duration::from_millis(200)).unwrap();
        drop(stream);
    });
    let mut client = TcpStream::connect((LOCALHOST, 8)).unwrap();
    let t = Timeout::start(Duration::from_millis(20));
    let mut buf = [0u8; 8];
    assert_eq!(
        client.read(&mut buf),
        Err(gevent_embedded::net::NetError::Interrupted(Interrupted::TimedOut(t.id())))
    );
    drop(t);
    assert_eq!(client.read(&mut buf), Ok(0), "the server closed: end of stream");
    server.join().unwrap();
}

#[test]
fn udp_datagrams_between_greenlets() {
    loopback_hub();
    let server = UdpSocket::bind(9, 4, 1024).unwrap();
    let echo = spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..2 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let client = UdpSocket::bind(40000, 4, 1024).unwrap();
    for message in [&b"ping"[..], b"pong"] {
        client.send_to(message, (LOCALHOST, 9)).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], message);
        assert_eq!(from.port, 9);
    }
    echo.join().unwrap();
}

#[test]
fn a_datagram_longer_than_the_buffer_is_truncated_not_dropped() {
    loopback_hub();
    let server = UdpSocket::bind(10, 4, 1024).unwrap();
    let client = UdpSocket::bind(40001, 4, 1024).unwrap();
    for message in [&b"a datagram of 29 bytes in all"[..], b"another one, 20 long", b"next"] {
        client.send_to(message, (LOCALHOST, 10)).unwrap();
    }
    let mut buf = [0u8; 12];
    let t = Timeout::start(Duration::from_secs(10));
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port), (&b"a datagram o"[..], 40001), "std-like: what fits");
    let second = server.recv_datagram(&mut buf).unwrap();
    assert_eq!((&buf[..second.copied], second.len), (&b"another one,"[..], 20));
    assert!(second.truncated());
    let third = server.recv_datagram(&mut buf).unwrap();
    assert_eq!((&buf[..third.copied], third.truncated()), (&b"next"[..], false));
    drop(t);
}

#[test]
fn connect_picks_a_free_ephemeral_port() {
    loopback_hub();
    let listener = TcpListener::bind(11, 2).unwrap();
    let first = TcpStream::connect((LOCALHOST, 11)).unwrap();
    let port = first.local_endpoint().unwrap().port;
    assert!(port >= 49152, "{port} is not in the ephemeral range");
    // The port the search would try next is taken: connect skips it.
    let next = if port == u16::MAX { 49152 } else { port + 1 };
    let _taken = TcpListener::bind(next, 1).unwrap();
    let second = TcpStream::connect((LOCALHOST, 11)).unwrap();
    let second_port = second.local_endpoint().unwrap().port;
    assert!(second_port >= 49152 && second_port != port && second_port != next);
    drop(listener);
}

#[test]
fn a_split_stream_reads_and_writes_from_two_greenlets_at_once() {
    loopback_hub();
    let listener = TcpListener::bind(12, 1).unwrap();
    let server = spawn(move || echo(&mut listener.accept().unwrap()));
    let stream = TcpStream::connect((LOCALHOST, 12)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_hop_limit(std::num::NonZeroU8::new(16)).unwrap();
    let (mut reader, mut writer) = stream.split();
    // Far more than the buffers on both sides hold: written by one greenlet only, it would
    // fill them and wait for room that only reading the echo makes.
    let message: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    let expected = message.clone();
    let t = Timeout::start(Duration::from_secs(30));
    let writing = spawn(move || {
        writer.write_all(&message).unwrap();
        writer.flush().unwrap();
        // Dropping the writer sends FIN: the server's echo ends.
    });
    let reading = spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 300];
        loop {
            match reader.read(&mut buf).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    writing.join().unwrap();
    assert!(reading.take().unwrap() == expected, "the echo came back whole");
    assert_eq!(server.get().unwrap(), Ok(expected.len()));
    drop(t);
}

#[test]
fn a_backlog_beyond_the_limit_is_refused_naming_it() {
    use gevent_embedded::net::{MAX_BACKLOG, NetError};
    loopback_hub();
    let refused = TcpListener::bind(9, MAX_BACKLOG + 1).unwrap_err();
    assert_eq!(refused, NetError::BacklogTooLarge);
    assert!(refused.to_string().contains(&MAX_BACKLOG.to_string()), "{refused}");
    // The limit itself is fine.
    assert!(TcpListener::bind(9, MAX_BACKLOG).is_ok());
}
