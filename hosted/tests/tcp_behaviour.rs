//! gevent's test__socket behaviours against the kernel's TCP on loopback, beyond `net.rs`:
//! every blocking call interrupted by a kill and by a `Timeout`, a half-close seen by a greenlet
//! already waiting, megabytes both ways at once through one stream, a write timeout on a full
//! buffer, a reset or a drop waking a waiting reader.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use gevent::net::TcpStream;
use gevent::{Interrupted, Timeout, spawn, yield_now};

mod common;
use common::{listener, pair, small_buffers};

const MS: Duration = Duration::from_millis(1);
/// Bounds every wait that must not hang: a call that never returns fails the test.
const BOUND: Duration = Duration::from_secs(20);

/// A listener with a backlog of 0 that never accepts, and the connections that filled its
/// queue: the kernel drops further SYNs, so the next connect to it waits.
struct FullBacklog {
    addr: SocketAddr,
    _listener: OwnedFd,
    _queued: Vec<TcpStream>,
}

fn full_backlog() -> FullBacklog {
    use rustix::net::{AddressFamily, SocketType, bind, getsockname, listen, socket};
    let listener = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&listener, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&listener, 0).unwrap();
    let addr = SocketAddr::try_from(getsockname(&listener).unwrap()).unwrap();
    let mut queued = Vec::new();
    loop {
        match TcpStream::connect_timeout(&addr, 20 * MS) {
            Ok(stream) => queued.push(stream),
            Err(e) if e.kind() == ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(queued.len() < 64, "the backlog never filled");
    }
    FullBacklog { addr, _listener: listener, _queued: queued }
}

/// The blocking calls of a TCP socket, each set up so that it waits.
#[derive(Clone, Copy, Debug)]
enum Call {
    Accept,
    Connect,
    Read,
    Peek,
    Write,
}

const CALLS: [Call; 5] = [Call::Accept, Call::Connect, Call::Read, Call::Peek, Call::Write];

impl Call {
    /// Prepares the call (what it needs is made here, in the caller's greenlet) and returns it
    /// as a closure that waits when run.
    fn prepare(self) -> Box<dyn FnOnce() -> std::io::Error> {
        match self {
            Call::Accept => {
                let (listener, _) = listener();
                Box::new(move || listener.accept().unwrap_err())
            }
            Call::Connect => {
                let full = full_backlog();
                Box::new(move || {
                    let err = TcpStream::connect(full.addr).unwrap_err();
                    drop(full);
                    err
                })
            }
            Call::Read => {
                let (mut client, server) = pair();
                Box::new(move || {
                    let err = client.read(&mut [0; 8]).unwrap_err();
                    drop(server);
                    err
                })
            }
            Call::Peek => {
                let (client, server) = pair();
                Box::new(move || {
                    let err = client.peek(&mut [0; 8]).unwrap_err();
                    drop(server);
                    err
                })
            }
            Call::Write => {
                let (mut client, server) = pair();
                small_buffers(&client, &server);
                // Nobody reads: the buffers fill and the write waits.
                Box::new(move || {
                    let err = client.write_all(&vec![7; 4 << 20]).unwrap_err();
                    drop(server);
                    err
                })
            }
        }
    }
}

#[test]
fn a_kill_interrupts_each_blocking_call_and_the_error_carries_it() {
    for call in CALLS {
        for reason in [None, Some("enough")] {
            let op = call.prepare();
            // Where the waiter leaves what its call returned: a kill with a reason fails the
            // greenlet whatever its body returns, so the value cannot come back through `get`.
            let seen = Rc::new(RefCell::new(None));
            let slot = seen.clone();
            let waiter = spawn(move || {
                let err = op();
                *slot.borrow_mut() = Some((err.kind(), Interrupted::try_from(&err)));
            });
            yield_now().unwrap(); // the waiter now waits inside the call
            assert!(!waiter.ready(), "{call:?} did not wait");
            // Bounded: a kill that did not end the call fails the kill instead of hanging.
            let _bound = Timeout::start(BOUND);
            let expected = match reason {
                Some(why) => {
                    waiter.kill_with(why).unwrap();
                    Interrupted::KilledWith(why.into())
                }
                None => {
                    waiter.kill().unwrap();
                    Interrupted::Killed
                }
            };
            assert!(waiter.ready(), "{call:?}");
            assert_eq!(seen.take(), Some((ErrorKind::Other, Ok(expected))), "{call:?}");
        }
    }
}

#[test]
fn a_timeout_interrupts_each_blocking_call_and_the_error_carries_its_id() {
    for call in CALLS {
        let op = call.prepare();
        let waiter = spawn(move || {
            let timeout = Timeout::start(5 * MS);
            let err = op();
            (err.kind(), Interrupted::try_from(&err), timeout.id())
        });
        assert!(waiter.join_timeout(BOUND).unwrap(), "{call:?} never returned");
        let (kind, interrupted, id) = waiter.get().unwrap();
        assert_eq!(kind, ErrorKind::TimedOut, "{call:?}");
        assert_eq!(interrupted, Ok(Interrupted::TimedOut(id)), "{call:?}");
    }
}

#[test]
fn a_greenlet_already_waiting_sees_the_half_close_and_still_answers() {
    let (mut client, server) = pair();
    let answer: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let reply = answer.clone();
    let server = spawn(move || {
        let mut server = server;
        let mut question = Vec::new();
        server.read_to_end(&mut question).unwrap(); // waits before anything was sent
        server.write_all(&reply).unwrap(); // more than the buffers hold: partial writes
        question
    });
    yield_now().unwrap();
    assert!(!server.ready(), "the server waits to read");
    for part in [&b"who "[..], b"is ", b"there?"] {
        client.write_all(part).unwrap();
        yield_now().unwrap();
    }
    client.shutdown(Shutdown::Write).unwrap();
    let err = client.write_all(b"more").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "writing after shutdown(Write): {err}");
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert!(got == answer, "the answer arrived whole after the half-close");
    assert_eq!(server.take().unwrap(), b"who is there?");
}

/// FNV-1a over a stream's bytes, fed in whatever pieces they arrive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Checksum {
    hash: u64,
    len: usize,
}

impl Checksum {
    fn new() -> Checksum {
        Checksum { hash: 0xcbf2_9ce4_8422_2325, len: 0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self.len += bytes.len();
    }

    fn of(bytes: &[u8]) -> Checksum {
        let mut sum = Checksum::new();
        sum.update(bytes);
        sum
    }
}

/// Pseudo-random bytes (xorshift), different for each seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `data` to `stream` in a greenlet of its own.
fn spawn_writer(stream: Rc<TcpStream>, data: Vec<u8>) -> gevent::Greenlet<()> {
    spawn(move || {
        (&*stream).write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
    })
}

/// Reads `stream` to its end in small pieces, yielding between them so that the reader lags
/// behind the writer, and sums what arrived.
fn spawn_slow_reader(stream: Rc<TcpStream>) -> gevent::Greenlet<(Checksum, usize)> {
    spawn(move || {
        let mut sum = Checksum::new();
        let mut reads = 0;
        let mut buf = [0; 1500];
        loop {
            yield_now().unwrap();
            let n = (&*stream).read(&mut buf).unwrap();
            if n == 0 {
                return (sum, reads);
            }
            reads += 1;
            sum.update(&buf[..n]);
        }
    })
}

#[test]
fn eight_megabytes_each_way_at_once_through_one_connection_to_slow_readers() {
    // Both ends write 8 MB before reading anything back: blocking threads would deadlock on
    // the full buffers, greenlets interleave the partial writes with the reads.
    const LEN: usize = 8 << 20;
    let (client, server) = pair();
    small_buffers(&client, &server);
    small_buffers(&server, &client);
    let (client, server) = (Rc::new(client), Rc::new(server));
    let (up, down) = (noise(LEN, 1), noise(LEN, 2));
    let (up_sum, down_sum) = (Checksum::of(&up), Checksum::of(&down));
    let writers = [spawn_writer(client.clone(), up), spawn_writer(server.clone(), down)];
    let at_server = spawn_slow_reader(server);
    let at_client = spawn_slow_reader(client);
    let _bound = Timeout::start(Duration::from_secs(60));
    for w in &writers {
        w.get().unwrap();
    }
    let ((got_up, reads_up), (got_down, reads_down)) =
        (at_server.get().unwrap(), at_client.get().unwrap());
    assert_eq!(got_up, up_sum, "client to server");
    assert_eq!(got_down, down_sum, "server to client");
    assert!(reads_up > 1 && reads_down > 1, "the data came in pieces");
}

#[test]
fn a_write_timeout_on_a_full_buffer_is_would_block() {
    let (mut client, server) = pair();
    small_buffers(&client, &server);
    client.set_write_timeout(Some(5 * MS)).unwrap();
    assert_eq!(client.write_timeout().unwrap(), Some(5 * MS));
    let err = client.write_all(&vec![1; 4 << 20]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert_eq!(Interrupted::try_from(&err), Err(()), "the stream's own timeout, not a hub one");
    drop(server);
}

#[test]
fn a_reset_wakes_a_greenlet_waiting_to_read_with_connection_reset() {
    let (client, server) = pair();
    let reader = spawn(move || {
        let mut client = client;
        client.read(&mut [0; 8]).unwrap_err().kind()
    });
    yield_now().unwrap(); // the reader now waits in `read`
    rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
    drop(server); // a zero linger makes the close a reset
    assert!(reader.join_timeout(BOUND).unwrap(), "the reset did not wake the reader");
    assert_eq!(reader.get().unwrap(), ErrorKind::ConnectionReset);
}

#[test]
fn a_write_after_a_reset_fails_with_reset_or_broken_pipe() {
    let (mut client, server) = pair();
    rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
    drop(server);
    // The reset has arrived once the client is readable (its pending error).
    gevent::io::wait_readable(&client, Some(BOUND)).unwrap();
    let err = client.write_all(b"anyone there?").unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "a write to a reset connection: {err}"
    );
}

#[test]
fn dropping_the_client_wakes_the_server_reading_with_the_end_of_the_stream() {
    let (client, server) = pair();
    let reader = spawn(move || {
        let mut server = server;
        let mut all = Vec::new();
        let mut buf = [0; 64];
        loop {
            let n = server.read(&mut buf).unwrap();
            if n == 0 {
                return all;
            }
            all.extend_from_slice(&buf[..n]);
        }
    });
    yield_now().unwrap(); // the reader now waits in `read`
    (&client).write_all(b"last words").unwrap();
    drop(client);
    assert!(reader.join_timeout(BOUND).unwrap(), "the close did not wake the reader");
    assert_eq!(reader.take().unwrap(), b"last words");
}
