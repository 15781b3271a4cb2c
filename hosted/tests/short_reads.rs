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

/// Lets the hub collect the events of `stream`'s registration, as it would have before a read
/// by a greenlet that waited: a wait on a duplicate descriptor polls the same poller.
fn collect_events(stream: &TcpStream) {
    gevent::io::wait_readable(stream, Some(HANG)).unwrap();
}

#[test]
fn a_short_read_that_took_the_end_of_stream_is_followed_by_the_end() {
    let (mut writer, mut reader) = pair();
    writer.write_all(b"last words").unwrap();
    drop(writer);
    // The edge of the data and the FIN is taken before the read that consumes both.
    collect_events(&reader);
    let mut buf = [0u8; 64];
    assert_eq!(reader.read(&mut buf).unwrap(), 10);
    assert_eq!(reader.read(&mut buf).unwrap(), 0, "the end of the stream");
}

#[test]
fn a_short_read_stopped_at_the_urgent_mark_is_followed_by_the_rest() {
    let (writer, mut reader) = pair();
    rustix::net::send(&writer, b"ab", rustix::net::SendFlags::empty()).unwrap();
    rustix::net::send(&writer, b"!", rustix::net::SendFlags::OOB).unwrap();
    rustix::net::send(&writer, b"cd", rustix::net::SendFlags::empty()).unwrap();
    collect_events(&reader);
    let mut buf = [0u8; 64];
    // Linux stops a read at the urgent mark, leaving the rest queued without a new edge.
    let mut got = Vec::new();
    while got.len() < 4 {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "early end of stream after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    // The urgent byte is out of band, so not in the stream.
    assert_eq!(got, b"abcd");
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
    writer.write_all(b"peeked").unwrap();
    collect_events(&reader);
    let mut buf = [0u8; 64];
    assert_eq!(reader.peek(&mut buf).unwrap(), 6);
    assert_eq!((&reader).read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"peeked");
}
