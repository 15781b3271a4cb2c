//! The optional protocols (the `ipv6`, `icmp`, `raw` and `multicast` features, which the
//! tests turn on) and the link state, over smoltcp's loopback device.

mod common;

use std::time::Duration;

use gevent_embedded::net::{self, NetError, RawSocket, TcpListener, TcpStream, UdpSocket};
use gevent_embedded::{Timeout, spawn, yield_now};
use smoltcp::phy::{ChecksumCapabilities, Loopback, Medium};
use smoltcp::wire::{
    IpAddress, IpCidr, IpProtocol, IpVersion, Ipv4Address, Ipv4Packet, Ipv4Repr, Ipv6Address,
    UdpPacket, UdpRepr,
};

const LOCALHOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);
const LOCALHOST6: Ipv6Address = Ipv6Address::LOCALHOST;

/// Installs a hub on this thread with a loopback interface at 127.0.0.1/8 and ::1/128.
fn loopback_hub() {
    let addresses =
        [IpCidr::new(IpAddress::Ipv4(LOCALHOST), 8), IpCidr::new(IpAddress::Ipv6(LOCALHOST6), 128)];
    common::ip_hub(Loopback::new(Medium::Ip), &addresses, 4);
}

#[test]
fn tcp_and_udp_over_ipv6() {
    loopback_hub();
    let t = Timeout::start(Duration::from_secs(10));
    let listener = TcpListener::bind(7, 1).unwrap();
    let server = spawn(move || {
        let mut stream = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).unwrap();
        stream.write_all(&buf[..n]).unwrap();
        stream.remote_endpoint().unwrap().addr
    });
    let mut client = TcpStream::connect((LOCALHOST6, 7)).unwrap();
    client.write_all(b"over IPv6").unwrap();
    let mut buf = [0u8; 64];
    let n = client.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"over IPv6");
    assert_eq!(server.get().unwrap(), IpAddress::Ipv6(LOCALHOST6));

    let udp_server = UdpSocket::bind(53, 2, 256).unwrap();
    let udp_client = UdpSocket::bind(40000, 2, 256).unwrap();
    udp_client.send_to(b"datagram", (LOCALHOST6, 53)).unwrap();
    let (n, from) = udp_server.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.addr), (&b"datagram"[..], IpAddress::Ipv6(LOCALHOST6)));
    drop(t);
}

#[test]
fn ping_gets_the_echo_over_ipv4_and_ipv6_and_times_out_without_one() {
    loopback_hub();
    // smoltcp answers echo requests to its own addresses.
    net::ping(LOCALHOST, Duration::from_secs(10)).unwrap();
    net::ping(LOCALHOST6, Duration::from_secs(10)).unwrap();
    // On the loopback's subnet but not the interface's: nobody answers.
    let nobody = Ipv4Address::new(127, 0, 0, 2);
    assert_eq!(net::ping(nobody, Duration::from_millis(20)), Err(NetError::TimedOut));
}

/// An IPv4 packet carrying a UDP datagram from 127.0.0.1:`src_port` to itself at `dst_port`.
fn udp_packet(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let udp = UdpRepr { src_port, dst_port };
    let ip = Ipv4Repr {
        src_addr: LOCALHOST,
        dst_addr: LOCALHOST,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut packet = vec![0u8; ip.buffer_len() + ip.payload_len];
    let mut ip_packet = Ipv4Packet::new_unchecked(&mut packet);
    ip.emit(&mut ip_packet, &caps);
    let mut udp_packet = UdpPacket::new_unchecked(ip_packet.payload_mut());
    udp.emit(
        &mut udp_packet,
        &LOCALHOST.into(),
        &LOCALHOST.into(),
        payload.len(),
        |buf| buf.copy_from_slice(payload),
        &caps,
    );
    packet
}

#[test]
fn a_raw_socket_sends_and_receives_whole_ip_packets() {
    loopback_hub();
    let t = Timeout::start(Duration::from_secs(10));
    let raw = RawSocket::bind(IpVersion::Ipv4, IpProtocol::Udp, 4, 1024).unwrap();
    let udp = UdpSocket::bind(9000, 4, 1024).unwrap();
    // A packet built by hand reaches the UDP socket...
    raw.send(&udp_packet(9001, 9000, b"built by hand")).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = udp.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port), (&b"built by hand"[..], 9001));
    // ...and the raw socket sees every UDP packet, its own and the UDP socket's.
    udp.send_to(b"seen raw", (LOCALHOST, 9002)).unwrap();
    let mut packet = [0u8; 256];
    loop {
        let n = raw.recv(&mut packet).unwrap();
        let ip = Ipv4Packet::new_checked(&packet[..n]).unwrap();
        let datagram = UdpPacket::new_checked(ip.payload()).unwrap();
        if datagram.dst_port() == 9002 {
            assert_eq!((datagram.src_port(), datagram.payload()), (9000, &b"seen raw"[..]));
            break;
        }
    }
    drop(t);
}

#[test]
fn a_udp_socket_receives_what_is_sent_to_a_multicast_group_it_joined() {
    loopback_hub();
    let t = Timeout::start(Duration::from_secs(10));
    let group = Ipv4Address::new(224, 0, 1, 129);
    let receiver = UdpSocket::bind(319, 2, 256).unwrap();
    receiver.join_multicast_v4(group).unwrap();
    let sender = UdpSocket::bind(40000, 2, 256).unwrap();
    sender.send_to(b"to the group", (group, 319)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to the group");
    receiver.leave_multicast_v4(group).unwrap();
    assert_eq!(
        receiver.join_multicast_v4(Ipv4Address::new(10, 0, 0, 1)),
        Err(NetError::InvalidAddress),
        "not a multicast address"
    );
    drop(t);
}

#[test]
fn waiters_for_the_link_wake_when_the_driver_reports_it_up() {
    loopback_hub();
    assert_eq!(net::link_is_up(), Ok(true), "up until the driver says otherwise");
    net::wait_link_up().unwrap();
    net::set_link_up(false).unwrap();
    assert_eq!(net::link_is_up(), Ok(false));
    let waiter = spawn(net::wait_link_up);
    for _ in 0..10 {
        yield_now().unwrap();
    }
    assert!(!waiter.ready(), "the link is down: the waiter waits");
    net::set_link_up(true).unwrap();
    let t = Timeout::start(Duration::from_secs(10));
    assert_eq!(waiter.get().unwrap(), Ok(()));
    drop(t);
}
