//! Two smoltcp interfaces joined by an in-memory link, each run by its own hub on its own
//! thread (two "boards"): a greenlet TCP echo server on one, clients on the other (over IPv4
//! and over IPv6 link-local addresses), and UDP.

mod common;
use common::HostTicks;

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use gevent_embedded::event::Event;
use gevent_embedded::net::{TcpListener, TcpStream, UdpSocket};
use gevent_embedded::{TickClock, joinall, spawn};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};

type Wire = Arc<Mutex<VecDeque<Vec<u8>>>>;

/// One end of an in-memory IP link: sends into one queue, receives from the other.
struct LinkEnd {
    rx: Wire,
    tx: Wire,
}

/// A pair of connected ends.
fn link() -> (LinkEnd, LinkEnd) {
    let (a, b): (Wire, Wire) = Default::default();
    (LinkEnd { rx: a.clone(), tx: b.clone() }, LinkEnd { rx: b, tx: a })
}

struct RxToken(Vec<u8>);
struct TxToken(Wire);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.0.lock().unwrap().push_back(frame);
        result
    }
}

impl Device for LinkEnd {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1500;
        caps.checksum = ChecksumCapabilities::default();
        caps
    }

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxToken, TxToken)> {
        let frame = self.rx.lock().unwrap().pop_front()?;
        Some((RxToken(frame), TxToken(self.tx.clone())))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxToken> {
        Some(TxToken(self.tx.clone()))
    }
}

thread_local! {
    /// Set on the server's thread when the client has all it expects.
    static DONE: Event = const { Event::new() };
}

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
/// The server's IPv6 link-local address; the client's ends in 2.
const SERVER6: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// Installs this thread's hub on `end` with the address `ip`.
fn board(mut end: LinkEnd, ip: Ipv4Address) {
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ip),
        &mut end,
        smoltcp::time::Instant::from_micros(0),
    );
    let host = ip.octets()[3].into();
    let link_local = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, host);
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
        addrs.push(IpCidr::new(IpAddress::Ipv6(link_local), 64)).unwrap();
    });
    let drive = Box::new(move |iface: &mut Interface, sockets: &mut _, now| {
        iface.poll(now, &mut end, sockets);
    });
    let stacks = common::leaked_stacks(8, 128 * 1024);
    let clock = TickClock::new(HostTicks::start());
    gevent_embedded::init_net(iface, drive, clock, stacks, |_| std::thread::yield_now()).unwrap();
}

#[test]
fn tcp_and_udp_across_two_interfaces_joined_in_memory() {
    let (server_end, client_end) = link();
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        board(server_end, SERVER);
        let listener = TcpListener::bind(80, 4).unwrap();
        let udp = UdpSocket::bind(53, 4, 2048).unwrap();
        // The client promises to post when it is done: until then this board keeps running.
        ready_tx.send(gevent_embedded::hub_handle().pending_post()).unwrap();
        let udp_echo = spawn(move || {
            let mut buf = [0u8; 256];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            udp.send_to(&buf[..n], from).unwrap();
        });
        let mut handlers = Vec::new();
        for _ in 0..3 {
            let mut stream = listener.accept().unwrap();
            handlers.push(spawn(move || {
                let mut buf = [0u8; 512];
                let mut total = 0;
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        return total;
                    }
                    stream.write_all(&buf[..n]).unwrap();
                    total += n;
                }
            }));
        }
        let totals: Vec<usize> = handlers.iter().map(|h| h.get().unwrap()).collect();
        udp_echo.join().unwrap();
        DONE.with(|done| done.wait()).unwrap();
        totals
    });

    let done = ready_rx.recv().unwrap();
    board(client_end, CLIENT);
    let clients: Vec<_> = (0..3u16)
        .map(|i| {
            spawn(move || {
                // The last one over IPv6, between link-local addresses.
                let server = if i == 2 { IpAddress::Ipv6(SERVER6) } else { SERVER.into() };
                let mut stream = TcpStream::connect((server, 80)).unwrap();
                let message = format!("message {i} ").repeat(50 + 10 * i as usize).into_bytes();
                stream.write_all(&message).unwrap();
                let mut echoed = vec![0u8; message.len()];
                let mut got = 0;
                while got < echoed.len() {
                    got += stream.read(&mut echoed[got..]).unwrap();
                }
                stream.close().unwrap();
                assert_eq!(stream.read(&mut [0u8; 8]).unwrap(), 0, "end of stream after close");
                echoed == message
            })
        })
        .collect();
    joinall(&clients).unwrap();
    assert!(clients.iter().all(|c| c.get() == Ok(true)));

    let udp = UdpSocket::bind(5353, 4, 2048).unwrap();
    udp.send_to(b"who is there?", (SERVER, 53)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port), (&b"who is there?"[..], 53));

    done.post(|| DONE.with(Event::set)).unwrap();
    let mut totals = server.join().unwrap();
    totals.sort();
    assert_eq!(totals, [500, 600, 700], "bytes each server handler echoed");
}
