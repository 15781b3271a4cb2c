//! Cooperative UDP on loopback.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Duration;

use gevent::net::UdpSocket;
use gevent::{Interrupted, Timeout, spawn};

const MS: Duration = Duration::from_millis(1);

fn bound() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[test]
fn datagrams_make_round_trips_between_greenlets() {
    let (server, server_addr) = bound();
    let echo = spawn(move || {
        let mut buf = [0; 64];
        for _ in 0..3 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let (client, client_addr) = bound();
    for msg in [&b"one"[..], b"two", b"three"] {
        client.send_to(msg, server_addr).unwrap();
        let mut buf = [0; 64];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (msg, server_addr));
    }
    echo.get().unwrap();
    assert_ne!(client_addr, server_addr);
}

#[test]
fn a_receiver_waits_while_other_greenlets_run() {
    let (server, server_addr) = bound();
    let receiver = spawn(move || {
        let mut buf = [0; 16];
        let (n, _) = server.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    gevent::yield_now().unwrap(); // the receiver now waits in `recv_from`
    assert!(!receiver.ready());
    let (client, _) = bound();
    client.send_to(b"late", ("127.0.0.1", server_addr.port())).unwrap();
    assert_eq!(receiver.get().unwrap(), b"late");
}

#[test]
fn connected_sockets_send_and_recv() {
    let (a, a_addr) = bound();
    let (b, b_addr) = bound();
    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    assert_eq!(a.send(b"hi").unwrap(), 2);
    let mut buf = [0; 8];
    assert_eq!(b.recv(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"hi");
    let (unconnected, _) = bound();
    assert_eq!(unconnected.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
}

#[test]
fn peek_leaves_the_datagram_queued() {
    let (server, server_addr) = bound();
    let (client, client_addr) = bound();
    client.send_to(b"first", server_addr).unwrap();
    client.send_to(b"second", server_addr).unwrap();
    let mut buf = [0; 16];
    assert_eq!(server.peek_from(&mut buf).unwrap(), (5, client_addr));
    assert_eq!(server.peek(&mut buf).unwrap(), 5);
    assert_eq!(server.recv_from(&mut buf).unwrap(), (5, client_addr));
    assert_eq!(&buf[..5], b"first");
    assert_eq!(server.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"second");
}

#[test]
fn a_read_timeout_fails_with_would_block_and_no_interrupted() {
    let (socket, _) = bound();
    assert_eq!(
        socket.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    socket.set_read_timeout(Some(5 * MS)).unwrap();
    socket.set_write_timeout(Some(7 * MS)).unwrap();
    assert_eq!(socket.read_timeout().unwrap(), Some(5 * MS));
    assert_eq!(socket.write_timeout().unwrap(), Some(7 * MS));
    let err = socket.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert_eq!(Interrupted::try_from(&err), Err(()));
    let err = socket.recv(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
}

#[test]
fn a_hub_timeout_interrupts_recv_from_and_the_socket_still_works() {
    let (socket, addr) = bound();
    let timeout = Timeout::start(5 * MS);
    let err = socket.recv_from(&mut [0; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
    drop(timeout);
    let (client, client_addr) = bound();
    client.send_to(b"after", addr).unwrap();
    let mut buf = [0; 8];
    assert_eq!(socket.recv_from(&mut buf).unwrap(), (5, client_addr));
}

#[test]
fn a_kill_ends_a_blocked_recv_from() {
    let (socket, _) = bound();
    let receiver = spawn(move || {
        let err = socket.recv_from(&mut [0; 8]).unwrap_err();
        (err.kind(), Interrupted::try_from(&err))
    });
    gevent::yield_now().unwrap(); // the receiver now waits in `recv_from`
    // Bounded: a kill that did not end the wait would fail this `kill` instead of hanging.
    let _bound = Timeout::start(Duration::from_secs(10));
    receiver.kill().unwrap();
    assert_eq!(receiver.get().unwrap(), (ErrorKind::Other, Ok(Interrupted::Killed)));
}

#[test]
fn a_clone_receives_while_the_original_sends() {
    let (socket, addr) = bound();
    socket.connect(addr).unwrap(); // talks to itself
    let socket = Rc::new(socket);
    let clone = socket.try_clone().unwrap();
    let receiver = spawn(move || {
        let mut buf = [0; 8];
        let n = clone.recv(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    gevent::yield_now().unwrap();
    socket.send(b"self").unwrap();
    assert_eq!(receiver.get().unwrap(), b"self");
}

#[test]
fn options_read_back_what_was_set() {
    let (socket, _) = bound();
    socket.set_broadcast(true).unwrap();
    assert!(socket.broadcast().unwrap());
    socket.set_ttl(17).unwrap();
    assert_eq!(socket.ttl().unwrap(), 17);
    socket.set_multicast_loop_v4(false).unwrap();
    assert!(!socket.multicast_loop_v4().unwrap());
    socket.set_multicast_ttl_v4(3).unwrap();
    assert_eq!(socket.multicast_ttl_v4().unwrap(), 3);
    assert!(socket.take_error().unwrap().is_none());
    assert!(format!("{socket:?}").starts_with("UdpSocket"));
}

#[test]
fn std_sockets_and_descriptors_convert_both_ways() {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std_socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let addr = std_socket.local_addr().unwrap();
    let socket = UdpSocket::from(std_socket);
    assert_eq!(socket.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    let fd = OwnedFd::from(socket);
    let socket = UdpSocket::from(fd);
    assert_eq!(socket.local_addr().unwrap(), addr);
    let std_socket = socket.into_std().unwrap();
    assert_eq!(std_socket.local_addr().unwrap(), addr);
    assert_eq!(std_socket.read_timeout().unwrap(), Some(Duration::from_secs(3)));
}
