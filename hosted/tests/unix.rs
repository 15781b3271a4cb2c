//! Cooperative Unix domain sockets, bound in a temporary directory.
#![cfg(unix)]

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::time::Duration;

use gevent::net::{UnixDatagram, UnixListener, UnixStream};
use gevent::{Interrupted, Timeout, spawn};

mod common;
use common::{TempDir, echo_each};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_stream_server_echoes_to_concurrent_clients() {
    let dir = TempDir::new("echo");
    let path = dir.join("echo.sock");
    let listener = UnixListener::bind(&path).unwrap();
    assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    let server = spawn(move || echo_each(listener.incoming().take(4)));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let path = path.clone();
            spawn(move || {
                let mut stream = UnixStream::connect(&path).unwrap();
                assert_eq!(stream.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
                assert!(stream.local_addr().unwrap().is_unnamed());
                let msg = format!("client {i}");
                stream.write_all(msg.as_bytes()).unwrap();
                let mut back = vec![0; msg.len()];
                stream.read_exact(&mut back).unwrap();
                stream.shutdown(Shutdown::Write).unwrap();
                assert_eq!(back, msg.as_bytes());
            })
        })
        .collect();
    for c in clients {
        c.get().unwrap();
    }
    server.get().unwrap();
}

#[test]
fn a_pair_talks_both_ways_and_a_shutdown_wakes_a_reader() {
    let (a, mut b) = UnixStream::pair().unwrap();
    assert!(a.peer_addr().unwrap().is_unnamed());
    let reader = spawn(move || {
        let mut buf = [0; 8];
        let n = (&a).read(&mut buf).unwrap();
        (&a).write_all(&buf[..n]).unwrap();
        (&a).read(&mut buf).map_err(|e| e.kind())
    });
    gevent::yield_now().unwrap(); // the reader now waits in `read`
    b.write_all(b"pair").unwrap();
    let mut back = [0; 4];
    b.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pair");
    gevent::yield_now().unwrap(); // the reader waits again
    b.shutdown(Shutdown::Both).unwrap();
    let _bound = Timeout::start(Duration::from_secs(10));
    assert_eq!(reader.get().unwrap(), Ok(0));
}

#[test]
fn a_stream_read_timeout_fails_with_would_block() {
    let (a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(5 * MS)).unwrap();
    let err = (&a).read(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(Interrupted::try_from(&err), Err(()));
    // Whole seconds: the kernel rounds a timeout to its clock ticks.
    a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let std_stream = a.into_std().unwrap();
    assert_eq!(std_stream.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    let a = UnixStream::from(std_stream);
    assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_secs(3)));
}

#[test]
fn datagrams_make_round_trips_by_path() {
    let dir = TempDir::new("dgram");
    let (server_path, client_path) = (dir.join("server.sock"), dir.join("client.sock"));
    let server = UnixDatagram::bind(&server_path).unwrap();
    let echo = spawn(move || {
        let mut buf = [0; 64];
        for _ in 0..2 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from.as_pathname().unwrap()).unwrap();
        }
    });
    let client = UnixDatagram::bind(&client_path).unwrap();
    for msg in [&b"one"[..], b"two"] {
        client.send_to(msg, &server_path).unwrap();
        let mut buf = [0; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_pathname()), (msg, Some(server_path.as_path())));
    }
    echo.get().unwrap();

    let connected = UnixDatagram::unbound().unwrap();
    connected.connect(&client_path).unwrap();
    assert_eq!(connected.peer_addr().unwrap().as_pathname(), Some(client_path.as_path()));
    connected.send(b"direct").unwrap();
    let mut buf = [0; 16];
    assert_eq!(client.recv(&mut buf).unwrap(), 6);
}

#[test]
fn a_datagram_pair_waits_for_each_other_and_times_out() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let receiver = spawn(move || {
        let mut buf = [0; 8];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert!(from.is_unnamed());
        buf[..n].to_vec()
    });
    gevent::yield_now().unwrap();
    assert!(!receiver.ready());
    a.send(b"hello").unwrap();
    assert_eq!(receiver.get().unwrap(), b"hello");

    a.set_read_timeout(Some(5 * MS)).unwrap();
    assert_eq!(a.recv(&mut [0; 8]).unwrap_err().kind(), ErrorKind::WouldBlock);
    let err = a.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
}

#[test]
fn a_hub_timeout_interrupts_accept_and_recv_from() {
    let dir = TempDir::new("timeout");
    let listener = UnixListener::bind(dir.join("quiet.sock")).unwrap();
    let timeout = Timeout::start(5 * MS);
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
    drop(timeout);

    let socket = UnixDatagram::bind(dir.join("quiet.dgram")).unwrap();
    let timeout = Timeout::start(5 * MS);
    let err = socket.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
}

#[test]
fn a_kill_ends_a_blocked_accept() {
    let dir = TempDir::new("kill");
    let listener = UnixListener::bind(dir.join("kill.sock")).unwrap();
    let accepter = spawn(move || {
        let err = listener.accept().unwrap_err();
        Interrupted::try_from(&err)
    });
    gevent::yield_now().unwrap();
    let _bound = Timeout::start(Duration::from_secs(10));
    accepter.kill().unwrap();
    assert_eq!(accepter.get().unwrap(), Ok(Interrupted::Killed));
}

#[test]
fn a_non_unix_descriptor_reports_std_s_error_instead_of_an_errno() {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = UnixListener::from(std::os::fd::OwnedFd::from(tcp));
    assert_eq!(listener.local_addr().unwrap_err().kind(), ErrorKind::InvalidInput);
    let client = std::net::TcpStream::connect(listener_addr_of(&listener)).unwrap();
    let err = listener.accept().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    drop(client);
}

fn listener_addr_of(listener: &UnixListener) -> std::net::SocketAddr {
    let fd = std::os::fd::AsFd::as_fd(listener);
    let addr = rustix::net::getsockname(fd).unwrap();
    std::net::SocketAddr::try_from(addr).unwrap()
}

#[test]
fn clones_and_conversions_share_the_socket() {
    let dir = TempDir::new("clone");
    let path = dir.join("clone.sock");
    let listener = UnixListener::bind(&path).unwrap().try_clone().unwrap();
    assert!(format!("{listener:?}").starts_with("UnixListener"));
    let std_listener = listener.into_std().unwrap();
    let listener = UnixListener::from(std_listener);
    let client = spawn({
        let path = path.clone();
        move || UnixStream::connect(path).unwrap()
    });
    let (server, from) = listener.accept().unwrap();
    assert!(from.is_unnamed());
    let client = client.take().unwrap();
    let clone = client.try_clone().unwrap();
    (&clone).write_all(b"via clone").unwrap();
    let mut buf = [0; 9];
    (&server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"via clone");
    assert!(Path::new(&path).exists());
}

#[test]
fn a_sender_waits_while_the_receiver_s_queue_is_full() {
    let (a, b) = UnixDatagram::pair().unwrap();
    const COUNT: usize = 1000; // far more than a datagram queue holds
    let sender = spawn(move || {
        for i in 0..COUNT {
            a.send(&i.to_le_bytes()).unwrap();
        }
        // Nothing drains the queue now: filling it again ends in the write timeout.
        a.set_write_timeout(Some(5 * MS)).unwrap();
        loop {
            if let Err(e) = a.send(b"fill") {
                break e.kind();
            }
        }
    });
    gevent::yield_now().unwrap(); // the sender fills the queue, then waits for room
    assert!(!sender.ready(), "the queue held {COUNT} datagrams");
    let mut buf = [0; 8];
    for i in 0..COUNT {
        assert_eq!(b.recv(&mut buf).unwrap(), 8);
        assert_eq!(usize::from_le_bytes(buf), i);
    }
    assert_eq!(sender.get().unwrap(), ErrorKind::WouldBlock);
}
