//! Cooperative TCP against the kernel's TCP on loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};
use gevent::{Interrupted, Timeout, joinall, spawn};

mod common;
use common::{echo_each, listener, pair, small_buffers};

const MS: Duration = Duration::from_millis(1);

#[test]
fn echo_between_greenlets_with_concurrent_clients() {
    let (listener, addr) = listener();
    let server = spawn(move || echo_each(listener.incoming().take(8)));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                assert_eq!(stream.peer_addr().unwrap(), addr);
                let mut got = Vec::new();
                for round in 0..10 {
                    let msg = format!("client {i} round {round};");
                    stream.write_all(msg.as_bytes()).unwrap();
                    let mut buf = vec![0; msg.len()];
                    stream.read_exact(&mut buf).unwrap();
                    got.extend_from_slice(&buf);
                }
                stream.shutdown(Shutdown::Write).unwrap();
                got
            })
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let expected: String = (0..10).map(|r| format!("client {i} round {r};")).collect();
        assert_eq!(c.get().unwrap(), expected.into_bytes());
    }
    server.get().unwrap();
}

#[test]
fn half_close_lets_the_peer_read_to_the_end_and_still_answer() {
    let (mut client, mut server) = pair();
    client.write_all(b"question").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"question");
    server.write_all(b"answer").unwrap();
    drop(server);
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"answer");
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let (listener, addr) = listener();
    drop(listener);
    let err = TcpStream::connect(addr).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn a_read_timeout_on_a_silent_peer_is_would_block() {
    let (mut client, _server) = pair();
    client.set_read_timeout(Some(5 * MS)).unwrap();
    assert_eq!(client.read_timeout().unwrap(), Some(5 * MS));
    let err = client.read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
    assert_eq!(Interrupted::try_from(&err), Err(()), "the stream's own timeout, not a hub one");
    assert_eq!(
        client.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn a_hub_timeout_interrupts_accept_with_its_id() {
    let (listener, _addr) = listener();
    let timeout = Timeout::start(5 * MS);
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
}

#[test]
fn a_hub_timeout_interrupts_read_exact_without_a_retry_loop() {
    let (mut client, _server) = pair();
    // `read_exact` retries on `ErrorKind::Interrupted`; it must return here instead.
    returns_the_timeout(move |_| client.read_exact(&mut [0; 8]));
}

/// Runs `op` under a `Timeout` in a greenlet and checks that it returns that timeout; a retry
/// loop that swallows it fails the check instead of hanging the test.
fn returns_the_timeout(op: impl FnOnce(()) -> std::io::Result<()> + 'static) {
    let g = spawn(move || {
        let timeout = Timeout::start(5 * MS);
        let err = op(()).unwrap_err();
        (timeout.id(), Interrupted::try_from(&err))
    });
    assert!(g.join_timeout(Duration::from_secs(10)).unwrap(), "the call never returned");
    let (id, interrupted) = g.get().unwrap();
    assert_eq!(interrupted, Ok(Interrupted::TimedOut(id)));
}

#[test]
fn a_hub_timeout_interrupts_write_all_without_a_retry_loop() {
    let (mut client, server) = pair();
    small_buffers(&client, &server);
    // Nobody reads: the buffers fill and the write waits.
    returns_the_timeout(move |_| client.write_all(&vec![7; 4 << 20]));
    drop(server);
}

/// A listener with a backlog of 0 that never accepts: once its queue holds a connection or
/// two, the kernel drops further SYNs, so a connect to it waits.
fn full_backlog_listener() -> (OwnedFd, SocketAddr) {
    use rustix::net::{AddressFamily, SocketType, bind, getsockname, listen, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&fd, 0).unwrap();
    let addr = SocketAddr::try_from(getsockname(&fd).unwrap()).unwrap();
    (fd, addr)
}

#[test]
fn a_hub_timeout_interrupts_connect() {
    let (_listener, addr) = full_backlog_listener();
    let mut held = Vec::new();
    let timeout = Timeout::start(50 * MS);
    let err = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => held.push(stream),
            Err(e) => break e,
        }
        assert!(held.len() < 64, "the backlog never filled");
    };
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())), "{err}");
}

#[test]
fn connect_timeout_reports_timed_out() {
    let (_listener, addr) = full_backlog_listener();
    let mut held = Vec::new();
    let err = loop {
        match TcpStream::connect_timeout(&addr, 20 * MS) {
            Ok(stream) => held.push(stream),
            Err(e) => break e,
        }
        assert!(held.len() < 64, "the backlog never filled");
    };
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(Interrupted::try_from(&err), Err(()), "the call's own limit, not a hub Timeout");
}

#[test]
fn no_interruption_becomes_an_error_kind_that_std_retries() {
    // `read_exact`, `write_all` and `read_to_end` retry on `ErrorKind::Interrupted`; a sticky
    // kill of that kind would make them spin forever without switching.
    let t = Timeout::start(Duration::from_secs(1));
    for why in
        [Interrupted::Killed, Interrupted::KilledWith("bye".into()), Interrupted::TimedOut(t.id())]
    {
        let err = std::io::Error::from(why.clone());
        assert_ne!(err.kind(), ErrorKind::Interrupted, "{why:?}");
        assert_eq!(Interrupted::try_from(&err), Ok(why));
    }
}

#[test]
fn a_kill_ends_a_blocked_read_promptly() {
    let (client, _server) = pair();
    let reader = spawn(move || {
        let mut client = client;
        let err = client.read(&mut [0; 8]).unwrap_err();
        (err.kind(), Interrupted::try_from(&err))
    });
    gevent::yield_now().unwrap(); // the reader now waits in `read`
    // Bounded: a kill that did not end the read would fail this `kill` instead of hanging.
    let _bound = Timeout::start(Duration::from_secs(10));
    reader.kill().unwrap();
    assert_eq!(reader.get().unwrap(), (ErrorKind::Other, Ok(Interrupted::Killed)));
}

#[test]
fn a_shutdown_wakes_a_greenlet_waiting_to_read_with_the_end_of_the_stream() {
    let (client, _server) = pair();
    let client = Rc::new(client);
    let c = client.clone();
    let reader = spawn(move || (&*c).read(&mut [0; 8]).unwrap());
    gevent::yield_now().unwrap(); // the reader now waits in `read`
    client.shutdown(Shutdown::Both).unwrap();
    let _bound = Timeout::start(Duration::from_secs(10));
    assert_eq!(reader.get().unwrap(), 0);
}

#[test]
fn one_greenlet_reads_while_another_writes_the_same_stream() {
    let (client, mut server) = pair();
    let client = Rc::new(client);
    let (r, w) = (client.clone(), client.clone());
    let reader = spawn(move || {
        let mut got = vec![0; 5];
        (&*r).read_exact(&mut got).unwrap();
        got
    });
    let writer = spawn(move || (&*w).write_all(b"ping").unwrap());
    let mut ping = [0; 4];
    server.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
    server.write_all(b"pong!").unwrap();
    joinall(&[reader.to_ref(), writer.to_ref()]).unwrap();
    writer.get().unwrap();
    assert_eq!(reader.get().unwrap(), b"pong!");
}

#[test]
fn write_all_of_megabytes_to_a_slow_reader_arrives_whole() {
    let (mut client, mut server) = pair();
    small_buffers(&client, &server);
    let data: Vec<u8> = (0..(4 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = spawn(move || client.write_all(&data).unwrap());
    gevent::yield_now().unwrap();
    assert!(!writer.ready(), "the first write was partial, and write_all waits for room");
    let mut got = Vec::new();
    let mut buf = [0; 1000];
    loop {
        gevent::yield_now().unwrap(); // reads lag behind the writer
        let n = server.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    writer.get().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected);
}

#[test]
fn std_sockets_join_the_hub_and_leave_it() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = TcpListener::from(std_listener);
    let std_client = std::net::TcpStream::connect(addr).unwrap();
    std_client.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let client = TcpStream::from(std_client);
    assert_eq!(client.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    let (server, _) = listener.accept().unwrap();
    server.set_nodelay(true).unwrap();
    assert!(server.nodelay().unwrap());
    server.set_ttl(42).unwrap();
    assert_eq!(server.ttl().unwrap(), 42);
    assert!(server.take_error().unwrap().is_none());
    (&server).write_all(b"x").unwrap();
    let mut peeked = [0; 1];
    assert_eq!(client.peek(&mut peeked).unwrap(), 1);
    let mut std_client = client.into_std().unwrap();
    assert_eq!(std_client.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    let mut byte = [0; 1];
    std_client.read_exact(&mut byte).unwrap(); // blocking again
    assert_eq!(&byte, b"x");
}

#[test]
fn a_peer_reset_is_reported_as_connection_reset_then_broken_pipe() {
    let (mut client, server) = pair();
    // A zero linger makes the close a reset.
    rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
    drop(server);
    let err = client.read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let err = client.write_all(b"anyone there?").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
}

#[test]
fn timeout_is_recognises_its_expiry_inside_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let timeout = Timeout::start(Duration::from_millis(5));
    let error = listener.accept().unwrap_err();
    assert!(timeout.is(&error), "{error:?}");
}

#[test]
fn a_host_name_resolves_on_the_thread_pool_while_other_greenlets_run() {
    let (listener, addr) = listener();
    let ran = Rc::new(std::cell::Cell::new(false));
    let r = ran.clone();
    let other = spawn(move || r.set(true));
    // `bind` itself never waits, so the other greenlet can only have run during the lookup.
    let _ = gevent::net::UdpSocket::bind("localhost:0").unwrap();
    assert!(ran.get(), "the lookup parked this greenlet instead of blocking the hub");
    other.get().unwrap();

    let ran = Rc::new(std::cell::Cell::new(false));
    let r = ran.clone();
    let other = spawn(move || r.set(true));
    let _ = gevent::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert!(!ran.get(), "an IP literal is parsed on the spot, with no trip to the pool");
    other.get().unwrap();

    let accepter = spawn(move || listener.accept().unwrap().1);
    let client = TcpStream::connect(format!("localhost:{}", addr.port())).unwrap();
    assert_eq!(accepter.get().unwrap(), client.local_addr().unwrap());
}

#[test]
fn every_kind_of_address_names_the_listener() {
    let (listener, addr) = listener();
    let port = addr.port();
    let ip = addr.ip();
    let v4 = match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => unreachable!("bound to 127.0.0.1"),
    };
    let accepter = spawn(move || {
        for stream in listener.incoming().take(10) {
            stream.unwrap();
        }
    });
    TcpStream::connect(addr).unwrap();
    #[allow(clippy::needless_borrows_for_generic_args)] // `&T` is one of the forms under test
    TcpStream::connect(&addr).unwrap();
    TcpStream::connect(v4).unwrap();
    TcpStream::connect((ip, port)).unwrap();
    TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).unwrap();
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    TcpStream::connect(("localhost".to_owned(), port)).unwrap();
    TcpStream::connect(addr.to_string()).unwrap();
    TcpStream::connect(&[addr][..]).unwrap();
    TcpStream::connect(&*format!("127.0.0.1:{port}")).unwrap();
    accepter.get().unwrap();

    for (bad, why) in
        [("127.0.0.1", "invalid socket address"), ("localhost:port", "invalid port value")]
    {
        let err = TcpStream::connect(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert_eq!(err.to_string(), why);
    }
    let err = TcpStream::connect(&[][..]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn one_greenlet_reads_a_clone_while_another_writes_the_original() {
    let (client, mut server) = pair();
    let mut reader = client.try_clone().unwrap();
    let mut writer = client;
    let reading = spawn(move || {
        let mut got = [0; 4];
        reader.read_exact(&mut got).unwrap();
        got
    });
    gevent::yield_now().unwrap(); // the reader waits on the clone's own registration
    let writing = spawn(move || writer.write_all(b"ping").unwrap());
    let mut ping = [0; 4];
    server.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");
    server.write_all(b"pong").unwrap();
    writing.get().unwrap();
    assert_eq!(&reading.get().unwrap(), b"pong");
}

#[test]
fn a_shutdown_through_a_clone_wakes_a_reader_of_the_original() {
    let (client, _server) = pair();
    let clone = client.try_clone().unwrap();
    let reader = spawn(move || (&client).read(&mut [0; 8]).map_err(|e| e.kind()));
    gevent::yield_now().unwrap(); // the reader now waits in `read`
    clone.shutdown(Shutdown::Both).unwrap();
    let _bound = Timeout::start(Duration::from_secs(10));
    assert_eq!(reader.get().unwrap().unwrap(), 0);
}

/// A write of one slice takes `send` instead of `sendmsg`: the same bytes, and the same
/// `MSG_NOSIGNAL`, so a reset peer is an error (a `SIGPIPE` would be one too here, as the test
/// harness ignores it; the flags are shared by construction).
#[test]
fn a_vectored_write_of_one_slice_carries_it_and_reports_a_reset_peer() {
    use std::io::IoSlice;
    let (mut client, mut server) = pair();
    assert_eq!(client.write_vectored(&[IoSlice::new(b"single")]).unwrap(), 6);
    let mut buf = [0; 6];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"single");
    // A zero linger makes the close send a reset at once.
    rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).unwrap();
    drop(server);
    let error = (0..100)
        .find_map(|_| client.write_vectored(&[IoSlice::new(b"x")]).err())
        .expect("a write to a reset peer fails");
    assert!(
        matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "{error:?}"
    );
}

#[test]
fn vectored_writes_and_reads_carry_every_slice() {
    use std::io::{IoSlice, IoSliceMut};
    let (mut client, mut server) = pair();
    let parts =
        [IoSlice::new(b"one "), IoSlice::new(b""), IoSlice::new(b"two "), IoSlice::new(b"three")];
    assert_eq!(client.write_vectored(&parts).unwrap(), 13);
    let (mut a, mut b) = ([0; 4], [0; 9]);
    let mut n = 0;
    while n < 13 {
        let (first, second) =
            if n < 4 { (&mut a[n..], &mut b[..]) } else { (&mut a[4..], &mut b[n - 4..]) };
        n += server.read_vectored(&mut [IoSliceMut::new(first), IoSliceMut::new(second)]).unwrap();
    }
    assert_eq!((&a, &b), (b"one ", b"two three"));
}

/// Third-party code written against `embedded_io`, knowing nothing of gevent.
fn echo_once<S: embedded_io::Read + embedded_io::Write>(stream: &mut S) -> Result<usize, S::Error> {
    let mut buf = [0; 64];
    let n = stream.read(&mut buf)?;
    stream.write_all(&buf[..n])?;
    stream.flush()?;
    Ok(n)
}

#[test]
fn code_generic_over_embedded_io_runs_cooperatively() {
    let (mut client, server) = pair();
    let echo = spawn(move || {
        let mut by_ref = &server;
        echo_once(&mut by_ref).unwrap() + echo_once(&mut { server }).unwrap()
    });
    gevent::yield_now().unwrap(); // the echo now waits in `read`
    for msg in [&b"embedded"[..], b"io"] {
        client.write_all(msg).unwrap();
        let mut back = vec![0; msg.len()];
        client.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    assert_eq!(echo.get().unwrap(), 10);
}

#[test]
fn raw_and_owned_descriptors_convert_both_ways() {
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
    let (client, server) = pair();
    let peer = client.peer_addr().unwrap();
    let raw = client.into_raw_fd();
    // SAFETY: `raw` came from `into_raw_fd` just above, so it is open and nothing else owns it.
    let client = unsafe { TcpStream::from_raw_fd(raw) };
    assert_eq!(client.as_raw_fd(), raw);
    assert_eq!(client.peer_addr().unwrap(), peer);
    let client = TcpStream::from(OwnedFd::from(client));
    (&client).write_all(b"!").unwrap();
    let mut byte = [0; 1];
    (&server).read_exact(&mut byte).unwrap();
    assert_eq!(&byte, b"!");

    let (listener, addr) = listener();
    let listener = TcpListener::from(OwnedFd::from(listener.try_clone().unwrap()));
    assert_eq!(listener.local_addr().unwrap(), addr);
}
