//! `drivers::embassy`: smoltcp interfaces on in-memory `embassy-net-driver` drivers (the kind
//! of driver embassy-net runs). Two of them, each on its own hub and thread, echo TCP across
//! the link, IP-native and over Ethernet (with ARP); on one hub asleep without a timer, a
//! frame that arrives just after the driver said it had none is picked up because the
//! adapter's waker wakes the hub.

mod common;
use common::HostTicks;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::Duration;

use embassy_net_driver::{Capabilities, Checksum, Driver, HardwareAddress, LinkState};
use gevent_embedded::drivers::embassy::EmbassyDevice;
use gevent_embedded::event::Event;
use gevent_embedded::net::{TcpListener, TcpStream, UdpSocket};
use gevent_embedded::{TickClock, Timeout, WaitHook, spawn};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{ChecksumCapabilities, Device, Medium};
use smoltcp::wire::{
    self, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

/// How long a test may wait for what it expects before it fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

/// One direction of the link: frames in flight and the waker of the driver receiving them.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
}

type Wire = Arc<Mutex<Queue>>;

/// An embassy driver for one end of the link: receives from one queue, sends into the other
/// and wakes the driver at the other end, as a NIC's interrupt handler would.
struct PipeDriver {
    rx: Wire,
    tx: Wire,
    address: HardwareAddress,
}

/// Two connected ends, IP-native or Ethernet ones with their own MAC addresses.
fn pipe(medium: Medium) -> (PipeDriver, PipeDriver) {
    let address = |last| match medium {
        Medium::Ethernet => HardwareAddress::Ethernet([0x02, 0, 0, 0, 0, last]),
        _ => HardwareAddress::Ip,
    };
    let (a, b): (Wire, Wire) = Default::default();
    (
        PipeDriver { rx: a.clone(), tx: b.clone(), address: address(1) },
        PipeDriver { rx: b, tx: a, address: address(2) },
    )
}

struct Rx(Vec<u8>);
struct Tx(Wire);

impl embassy_net_driver::RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl embassy_net_driver::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        let mut queue = self.0.lock().unwrap();
        queue.frames.push_back(frame);
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
        result
    }
}

impl Driver for PipeDriver {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx)> {
        let mut queue = self.rx.lock().unwrap();
        match queue.frames.pop_front() {
            Some(frame) => Some((Rx(frame), Tx(self.tx.clone()))),
            None => {
                queue.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _: &mut Context<'_>) -> Option<Tx> {
        Some(Tx(self.tx.clone()))
    }

    fn link_state(&mut self, _: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        // Ethernet's counts the 14-byte header, as smoltcp's does.
        caps.max_transmission_unit = match self.address {
            HardwareAddress::Ethernet(_) => 1514,
            _ => 1500,
        };
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        self.address
    }
}

const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const CLIENT: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

thread_local! {
    /// Set on the server's thread when the client is done with it.
    static DONE: Event = const { Event::new() };
}

/// Installs this thread's hub on `driver` with the address `ip`, waiting with `wait`.
fn board<D: Driver + 'static>(driver: D, ip: Ipv4Address, wait: impl WaitHook + 'static) {
    let mut device = EmbassyDevice::new(driver).unwrap();
    // The interface's hardware address is the driver's: frames for any other are dropped.
    let config = Config::new(device.hardware_address());
    let mut iface = Interface::new(config, &mut device, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|addrs| addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap());
    let drive = Box::new(move |iface: &mut Interface, sockets: &mut _, now| {
        iface.poll(now, &mut device, sockets);
    });
    let stacks = common::leaked_stacks(4, 128 * 1024);
    let clock = TickClock::new(HostTicks::start());
    gevent_embedded::init_net(iface, drive, clock, stacks, wait).unwrap();
}

/// A TCP echo from a board on one end of a `medium` pipe to a board on the other.
///
/// Each board's hub runs only while its thread is in a hub call: the client reads the end of
/// the stream after closing, so its FIN is out and the server's answered before its thread
/// leaves the hub to join the server's.
fn echo_across(medium: Medium) {
    let (server_end, client_end) = pipe(medium);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        board(server_end, SERVER, |_| std::thread::yield_now());
        let listener = TcpListener::bind(7, 1).unwrap();
        // The client promises to post when it is done: until then this board keeps running.
        ready_tx.send(gevent_embedded::hub_handle().pending_post()).unwrap();
        let _bound = Timeout::start(BOUND);
        let mut stream = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let mut total = 0;
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).unwrap();
            total += n;
        }
        stream.close().unwrap();
        DONE.with(|done| done.wait()).unwrap();
        total
    });

    let done = ready_rx.recv().unwrap();
    board(client_end, CLIENT, |_| std::thread::yield_now());
    let client = spawn(|| {
        let _bound = Timeout::start(BOUND);
        let mut stream = TcpStream::connect((SERVER, 7)).unwrap();
        let message = b"through embassy-net-driver ".repeat(100);
        stream.write_all(&message).unwrap();
        let mut echoed = vec![0u8; message.len()];
        let mut got = 0;
        while got < echoed.len() {
            got += stream.read(&mut echoed[got..]).unwrap();
        }
        stream.close().unwrap();
        assert_eq!(stream.read(&mut [0u8; 8]).unwrap(), 0, "end of stream after close");
        echoed == message
    });
    assert_eq!(client.get(), Ok(true));
    done.post(|| DONE.with(Event::set)).unwrap();
    assert_eq!(server.join().unwrap(), 2700, "bytes the server echoed");
}

#[test]
fn tcp_echo_through_an_ip_driver_pair() {
    echo_across(Medium::Ip);
}

#[test]
fn tcp_echo_through_an_ethernet_driver_pair_resolving_addresses_by_arp() {
    echo_across(Medium::Ethernet);
}

#[test]
fn the_device_takes_the_drivers_medium_address_and_capabilities() {
    let (ethernet, _) = pipe(Medium::Ethernet);
    let device = EmbassyDevice::new(ethernet).unwrap();
    let mac = wire::EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    assert_eq!(device.hardware_address(), wire::HardwareAddress::Ethernet(mac));
    assert_eq!(device.capabilities().medium, Medium::Ethernet);
    assert_eq!(device.capabilities().max_transmission_unit, 1514);

    struct Offloading;
    impl Driver for Offloading {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx;
        fn receive(&mut self, _: &mut Context<'_>) -> Option<(Rx, Tx)> {
            None
        }
        fn transmit(&mut self, _: &mut Context<'_>) -> Option<Tx> {
            None
        }
        fn link_state(&mut self, _: &mut Context<'_>) -> LinkState {
            LinkState::Down
        }
        fn capabilities(&self) -> Capabilities {
            let mut caps = Capabilities::default();
            caps.max_transmission_unit = 1280;
            caps.max_burst_size = Some(2);
            caps.checksum.ipv4 = Checksum::Tx;
            caps.checksum.udp = Checksum::Rx;
            caps.checksum.tcp = Checksum::None;
            caps.checksum.icmpv4 = Checksum::Tx;
            caps.checksum.icmpv6 = Checksum::None;
            caps
        }
        fn hardware_address(&self) -> HardwareAddress {
            HardwareAddress::Ip
        }
    }
    let device = EmbassyDevice::new(Offloading).unwrap();
    assert_eq!(device.hardware_address(), wire::HardwareAddress::Ip);
    let caps = device.capabilities();
    assert_eq!(
        (caps.medium, caps.max_transmission_unit, caps.max_burst_size),
        (Medium::Ip, 1280, Some(2))
    );
    let checksum = &caps.checksum;
    // The driver's checksum capabilities say what the stack computes (tx) and checks (rx).
    assert!(checksum.ipv4.tx() && !checksum.ipv4.rx());
    assert!(!checksum.udp.tx() && checksum.udp.rx());
    assert!(!checksum.tcp.tx() && !checksum.tcp.rx());
    assert!(checksum.icmpv4.tx() && !checksum.icmpv4.rx());
    assert!(!checksum.icmpv6.tx() && !checksum.icmpv6.rx());
}

/// A NIC whose next frame the test schedules: it arrives (and the driver's interrupt handler
/// wakes the waker it kept) right after the driver next reports that it has none, before the
/// hub has gone to sleep: the window in which only the waker can tell the hub.
#[derive(Default)]
struct LateNic {
    frames: VecDeque<Vec<u8>>,
    scheduled: Option<Vec<u8>>,
    waker: Option<Waker>,
}

struct LateDriver(Arc<Mutex<LateNic>>);

impl Driver for LateDriver {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx)> {
        let mut nic = self.0.lock().unwrap();
        if let Some(frame) = nic.frames.pop_front() {
            return Some((Rx(frame), Tx(Arc::default())));
        }
        nic.waker = Some(cx.waker().clone());
        // The frame's interrupt, handled just after the look above.
        if let Some(frame) = nic.scheduled.take() {
            nic.frames.push_back(frame);
            nic.waker.as_ref().expect("just kept").wake_by_ref();
        }
        None
    }

    fn transmit(&mut self, _: &mut Context<'_>) -> Option<Tx> {
        Some(Tx(Arc::default()))
    }

    fn link_state(&mut self, _: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = 1500;
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ip
    }
}

/// A UDP datagram from `PEER`:9 to the board's port 7.
fn datagram(payload: &[u8]) -> Vec<u8> {
    const PEER: Ipv4Address = Ipv4Address::new(10, 0, 0, 9);
    let udp = UdpRepr { src_port: 9, dst_port: 7 };
    let ip = Ipv4Repr {
        src_addr: PEER,
        dst_addr: SERVER,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut frame = vec![0; ip.buffer_len() + ip.payload_len];
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(&mut frame);
    ip.emit(&mut packet, &caps);
    let mut udp_packet = UdpPacket::new_unchecked(packet.payload_mut());
    let (src, dst) = (PEER.into(), SERVER.into());
    udp.emit(&mut udp_packet, &src, &dst, payload.len(), |b| b.copy_from_slice(payload), &caps);
    frame
}

#[test]
fn a_frame_arriving_as_the_hub_goes_to_sleep_without_a_timer_wakes_it() {
    let nic = Arc::new(Mutex::new(LateNic::default()));
    let stalled = Arc::new(AtomicBool::new(false));
    let (hook_nic, hook_stalled) = (nic.clone(), stalled.clone());
    let mut first_sleep = true;
    let wait = move |deadline: Option<gevent_embedded::time::Instant>| {
        if deadline.is_some() {
            // Not this test's case: the hub would poll the driver again at the deadline anyway.
            return std::thread::yield_now();
        }
        if std::mem::take(&mut first_sleep) {
            // The hub is about to sleep with nothing to wake it but an interrupt: wake it once
            // (an unrelated interrupt) and have the frame arrive in the window of the next look.
            hook_nic.lock().unwrap().scheduled = Some(datagram(b"late"));
            return;
        }
        // `wfi` with no interrupt to come: the frame's was handled before the hub went to
        // sleep, so only the wake flag its waker set keeps the hub from sleeping here. Bounded,
        // so that a lost wake-up fails the test instead of hanging it.
        let until = std::time::Instant::now() + BOUND;
        while std::time::Instant::now() < until {
            std::thread::park_timeout(until - std::time::Instant::now());
        }
        hook_stalled.store(true, Ordering::Relaxed);
    };
    board(LateDriver(nic), SERVER, wait);
    let udp = UdpSocket::bind(7, 2, 512).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port), (&b"late"[..], 9));
    assert!(!stalled.load(Ordering::Relaxed), "the hub slept through the frame's wake-up");
}
