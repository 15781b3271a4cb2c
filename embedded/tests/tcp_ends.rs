//! How TCP streams end: resets, aborts, orphans that never finish closing, and `flush`, on a
//! loopback link that a test can cut (frames sent while it is cut are lost).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use embedded_io::Error as _;
use gevent_embedded::net::{self, NetError, TcpListener, TcpStream};
use gevent_embedded::{Interrupted, Timeout, sleep};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

const LOCALHOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);

/// A loopback IP device whose link can be cut (frames sent are lost) or jammed (nothing can
/// be sent).
struct CuttableLoopback {
    queue: Rc<RefCell<VecDeque<Vec<u8>>>>,
    cut: Rc<Cell<bool>>,
    jammed: Rc<Cell<bool>>,
}

struct RxToken(Vec<u8>);
struct TxToken {
    queue: Rc<RefCell<VecDeque<Vec<u8>>>>,
    cut: Rc<Cell<bool>>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        if !self.cut.get() {
            self.queue.borrow_mut().push_back(frame);
        }
        result
    }
}

impl CuttableLoopback {
    fn tx(&self) -> TxToken {
        TxToken { queue: self.queue.clone(), cut: self.cut.clone() }
    }
}

impl Device for CuttableLoopback {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1500;
        caps
    }

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxToken, TxToken)> {
        let frame = self.queue.borrow_mut().pop_front()?;
        Some((RxToken(frame), self.tx()))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxToken> {
        (!self.jammed.get()).then(|| self.tx())
    }
}

/// Installs a hub on this thread over a cuttable loopback link; returns the link's switch.
fn hub() -> Rc<Cell<bool>> {
    hub_with_jam().0
}

/// [`hub`], also returning the switch that jams the link.
fn hub_with_jam() -> (Rc<Cell<bool>>, Rc<Cell<bool>>) {
    let (cut, jammed) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let device =
        CuttableLoopback { queue: Default::default(), cut: cut.clone(), jammed: jammed.clone() };
    common::ip_hub(device, &[IpCidr::new(IpAddress::Ipv4(LOCALHOST), 8)], 4);
    (cut, jammed)
}

/// A connected pair: (the accepted end, the connecting end), the only sockets of the stack.
fn pair(port: u16) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(port, 1).unwrap();
    let client = gevent_embedded::spawn(move || TcpStream::connect((LOCALHOST, port)));
    let server = listener.accept().unwrap();
    (server, client.take().unwrap().unwrap())
}

/// Waits (at most 10 s) until the stack holds `n` sockets.
fn wait_until_open_sockets(n: usize) -> Result<(), String> {
    let t = Timeout::start(Duration::from_secs(10));
    while net::open_sockets().unwrap() != n {
        if let Err(e) = sleep(Duration::from_millis(1)) {
            assert!(e.is_timeout(t.id()));
            return Err(format!("still {} sockets, not {n}", net::open_sockets().unwrap()));
        }
    }
    Ok(())
}

#[test]
fn a_reset_connection_fails_reads_and_writes_instead_of_reading_as_the_end() {
    hub();
    let (mut server, mut client) = pair(80);
    server.abort().unwrap();
    assert_eq!(client.read(&mut [0u8; 8]), Err(NetError::ConnectionReset));
    assert_eq!(client.write(b"x"), Err(NetError::ConnectionReset));
    assert_eq!(server.read(&mut [0u8; 8]), Err(NetError::NotConnected), "aborted here");
}

#[test]
fn the_end_of_stream_is_still_zero_after_the_peer_closed_and_left() {
    hub();
    let (server, mut client) = pair(81);
    drop(server);
    assert_eq!(client.read(&mut [0u8; 8]), Ok(0));
    client.close().unwrap();
    // The server's orphan is freed once its FIN is acknowledged (at LAST-ACK's end).
    wait_until_open_sockets(1).unwrap();
    assert_eq!(client.read(&mut [0u8; 8]), Ok(0), "FIN, not a reset");
}

#[test]
fn an_aborted_stream_dropped_at_once_still_sends_its_reset() {
    hub();
    let (mut server, mut client) = pair(82);
    server.abort().unwrap();
    drop(server);
    let t = Timeout::start(Duration::from_secs(10));
    assert_eq!(client.read(&mut [0u8; 8]), Err(NetError::ConnectionReset));
    drop(t);
}

#[test]
fn an_orphan_left_in_fin_wait_2_is_aborted_and_freed_after_the_linger() {
    hub();
    net::set_orphan_linger(Duration::from_millis(50)).unwrap();
    // The server never closes its end, so the client's stays in FIN-WAIT-2.
    let (mut server, client) = pair(83);
    assert_eq!(net::open_sockets(), Ok(2));
    drop(client);
    assert_eq!(server.read(&mut [0u8; 8]), Ok(0), "the client's FIN");
    wait_until_open_sockets(1).unwrap();
    assert_eq!(server.write(b"x"), Err(NetError::ConnectionReset), "the orphan's RST");
}

#[test]
fn an_orphan_whose_peer_vanished_is_freed_after_the_linger() {
    let cut = hub();
    net::set_orphan_linger(Duration::from_millis(50)).unwrap();
    let (_server, mut client) = pair(84);
    cut.set(true);
    client.write_all(b"never acknowledged").unwrap();
    drop(client);
    wait_until_open_sockets(1).unwrap();
}

#[test]
fn an_orphan_that_cannot_even_send_its_reset_is_freed_after_a_second_linger() {
    let (_, jammed) = hub_with_jam();
    net::set_orphan_linger(Duration::from_millis(20)).unwrap();
    let (_server, client) = pair(87);
    jammed.set(true);
    drop(client);
    wait_until_open_sockets(1).unwrap();
}

#[test]
fn flush_waits_until_the_peer_acknowledged_everything_written() {
    let cut = hub();
    let (mut server, mut client) = pair(85);
    cut.set(true);
    client.write_all(b"held back").unwrap();
    let t = Timeout::start(Duration::from_millis(50));
    assert_eq!(client.flush(), Err(NetError::Interrupted(Interrupted::TimedOut(t.id()))));
    drop(t);
    cut.set(false);
    let t = Timeout::start(Duration::from_secs(30));
    assert_eq!(client.flush(), Ok(()), "once the retransmission is acknowledged");
    drop(t);
    let mut buf = [0u8; 16];
    assert_eq!(server.read(&mut buf), Ok(9));
}

#[test]
fn a_killed_operation_is_not_an_error_kind_that_callers_retry() {
    let killed = NetError::Interrupted(Interrupted::Killed);
    assert_eq!(killed.kind(), embedded_io::ErrorKind::Other);
    assert_ne!(killed.kind(), embedded_io::ErrorKind::Interrupted);
    let timed_out = Timeout::start(Duration::from_secs(1));
    let e = NetError::Interrupted(Interrupted::TimedOut(timed_out.id()));
    assert_eq!(e.kind(), embedded_io::ErrorKind::TimedOut);
}

#[test]
fn keep_alive_and_a_socket_timeout_end_an_idle_connection_whose_peer_vanished() {
    let cut = hub();
    let (_server, mut client) = pair(86);
    client.set_keep_alive(Some(Duration::from_millis(10))).unwrap();
    client.set_timeout(Some(Duration::from_millis(100))).unwrap();
    cut.set(true);
    let t = Timeout::start(Duration::from_secs(10));
    assert_eq!(client.read(&mut [0u8; 8]), Err(NetError::ConnectionReset));
    drop(t);
}

#[test]
fn a_dropped_udp_socket_whose_datagram_cannot_leave_is_freed_after_the_linger() {
    let (_, jammed) = hub_with_jam();
    net::set_orphan_linger(Duration::from_millis(50)).unwrap();
    jammed.set(true);
    let socket = net::UdpSocket::bind(9100, 2, 64).unwrap();
    socket.send_to(b"stuck", (LOCALHOST, 9101)).unwrap();
    assert_eq!(net::open_sockets(), Ok(1));
    drop(socket);
    wait_until_open_sockets(0).unwrap();
}
