//! A TCP read that returns less than its buffer clears the readiness (the stream is drained),
//! so that the next read waits for an edge instead of failing with `EAGAIN` first; these are
//! the cases where a short read leaves something behind, which must not hang.
//!
//! Each reader has a read timeout: were a read to wait for an edge that never comes, it would
//! fail with `WouldBlock` instead of hanging the test.

use std::io::{Read, Write};
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};
use gevent::spawn;

/// Far longer than any of these reads takes; only a hang reaches it.
const HANG: Duration = Duration::from_secs(10);

/// A connected pair over loopback, the second with a read timeout.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(HANG)).unwrap();
    (client.take().unwrap(), server)
}

/// Starts a greenlet that reads `reader` with a 64-byte buffer until it has `want` bytes or
/// meets the end, returning what it read, and lets it run until it waits for data: its first read then comes after a wait, as
/// in the steady state, and the edge it wakes for carries everything the test sends before
/// switching (the hub collects events only while the test's greenlet is switched out).
fn read_after_a_wait(mut reader: TcpStream, want: usize) -> gevent::Greenlet<Vec<u8>> {
    let greenlet = spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < want {
            match reader.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        got
    });
    gevent::yield_now().unwrap();
    greenlet
}

#[test]
fn a_short_read_that_took_the_end_of_stream_is_followed_by_the_end() {
    let (mut writer, reader) = pair();
    let read = read_after_a_wait(reader, usize::MAX);
    // One edge for the data and the FIN, which the first, short, read consumes both of.
    writer.write_all(b"last words").unwrap();
    drop(writer);
    assert_eq!(read.get().unwrap(), b"last words");
}

#[test]
fn a_short_read_stopped_at_the_urgent_mark_is_followed_by_the_rest() {
    let (writer, reader) = pair();
    let read = read_after_a_wait(reader, 4);
    // Linux stops a read at the urgent mark, leaving the rest queued without a new edge.
    rustix::net::send(&writer, b"ab", rustix::net::SendFlags::empty()).unwrap();
    rustix::net::send(&writer, b"!", rustix::net::SendFlags::OOB).unwrap();
    rustix::net::send(&writer, b"cd", rustix::net::SendFlags::empty()).unwrap();
    // The urgent byte is out of band, so not in the stream. The writer stays open, so that no
    // end of stream can wake a reader stuck after "ab".
    assert_eq!(read.get().unwrap(), b"abcd");
    drop(writer);
}

#[test]
fn a_drained_stream_wakes_for_new_data() {
    let (mut writer, mut reader) = pair();
    let echo = spawn(move || {
        let mut buf = [0u8; 64];
        let mut rounds = 0;
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return rounds;
            }
            reader.write_all(&buf[..n]).unwrap();
            rounds += 1;
        }
    });
    writer.set_read_timeout(Some(HANG)).unwrap();
    for round in 0..100u8 {
        writer.write_all(&[round; 8]).unwrap();
        let mut back = [0u8; 8];
        writer.read_exact(&mut back).unwrap();
        assert_eq!(back, [round; 8]);
    }
    drop(writer);
    assert_eq!(echo.get().unwrap(), 100);
}

#[test]
fn a_short_peek_leaves_the_data_to_read() {
    let (mut writer, reader) = pair();
    let peeked = spawn(move || {
        let mut buf = [0u8; 64];
        let n = reader.peek(&mut buf).unwrap();
        (buf[..n].to_vec(), reader)
    });
    gevent::yield_now().unwrap();
    writer.write_all(b"peeked").unwrap();
    let (peeked, reader) = peeked.take().unwrap();
    assert_eq!(peeked, b"peeked");
    let mut buf = [0u8; 64];
    assert_eq!((&reader).read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"peeked");
}

/// An accepted stream's first read waits for readiness instead of trying first: the data and
/// the end of stream a client sent before the accept must still wake it.
#[test]
fn an_accepted_stream_reads_what_came_before_the_accept() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.write_all(b"early").unwrap();
    drop(client);
    let (mut server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(HANG)).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"early");
}

/// The same after a peek, which tries at once and must not leave the read waiting for an edge
/// that the peek's own wait took.
#[test]
fn an_accepted_stream_reads_after_a_peek() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || {
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"peeked").unwrap();
        client
    });
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(HANG)).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(server.peek(&mut buf).unwrap(), 6);
    assert_eq!((&server).read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"peeked");
    drop(client.take().unwrap());
    assert_eq!((&server).read(&mut buf).unwrap(), 0);
}

/// An accepted stream whose client has not spoken yet: the first read waits for the data.
#[test]
fn an_accepted_stream_waits_for_the_first_data() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (server, _) = listener.accept().unwrap();
    let mut client = client.take().unwrap();
    let read = read_after_a_wait(server, 5);
    client.write_all(b"later").unwrap();
    assert_eq!(read.get().unwrap(), b"later");
}
