//! `net::dns` against a DNS server greenlet on the same smoltcp stack (a loopback device): names
//! resolve, missing names and silent servers fail with `NameNotResolved` or the caller's
//! timeout, and a connect by name reaches a listener.

mod common;

use std::time::Duration;

use gevent_embedded::net::{NetError, TcpListener, UdpSocket, dns};
use gevent_embedded::{Greenlet, Interrupted, sleep, spawn, with_timeout};
use smoltcp::phy::{Loopback, Medium};
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address};

const LOCALHOST: Ipv4Address = Ipv4Address::new(127, 0, 0, 1);
const SERVER: IpAddress = IpAddress::Ipv4(LOCALHOST);
const A_TEST: Ipv4Address = Ipv4Address::new(192, 0, 2, 7);

fn loopback_hub() {
    common::ip_hub(Loopback::new(Medium::Ip), &[IpCidr::new(SERVER, 8)], 4);
}

/// The address the test server gives a name: `a.test` one in TEST-NET-1, `web.test` this host;
/// other names do not exist.
fn address_of(name: &str) -> Option<Ipv4Address> {
    match name {
        "a.test" => Some(A_TEST),
        "web.test" => Some(LOCALHOST),
        _ => None,
    }
}

/// The answer to a one-question query: an A record or NXDOMAIN.
fn answer(query: &[u8]) -> Vec<u8> {
    let mut at = 12;
    let mut labels = Vec::new();
    while query[at] != 0 {
        let len = usize::from(query[at]);
        labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
        at += 1 + len;
    }
    let question_end = at + 5;
    let address = address_of(&labels.join("."));
    let mut reply = query[..2].to_vec();
    reply.extend_from_slice(&[0x81, if address.is_some() { 0x80 } else { 0x83 }]);
    reply.extend_from_slice(&[0, 1, 0, u8::from(address.is_some()), 0, 0, 0, 0]);
    reply.extend_from_slice(&query[12..question_end]);
    if let Some(address) = address {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&address.octets());
    }
    reply
}

/// A DNS server greenlet on port 53 answering `answers` queries, then going silent (until
/// killed).
fn serve_dns(answers: usize) -> Greenlet<()> {
    let socket = UdpSocket::bind(53, 4, 512).unwrap();
    spawn(move || {
        let mut query = [0u8; 512];
        for _ in 0..answers {
            let (n, from) = socket.recv_from(&mut query).unwrap();
            socket.send_to(&answer(&query[..n]), from).unwrap();
        }
        // Keeps the port (and drops what comes) so that later queries go unanswered.
        loop {
            if socket.recv_from(&mut query).is_err() {
                return;
            }
        }
    })
}

#[test]
fn names_resolve_through_the_servers_given() {
    loopback_hub();
    let server = serve_dns(3);
    assert_eq!(dns::resolve_with("a.test", &[SERVER]), Ok(vec![IpAddress::Ipv4(A_TEST)]));
    // Without servers set (and no DHCP lease) there is nobody to ask.
    assert_eq!(dns::resolve("a.test"), Err(NetError::NameNotResolved));
    dns::set_servers(&[SERVER]).unwrap();
    assert_eq!(dns::resolve("a.test."), Ok(vec![IpAddress::Ipv4(A_TEST)]));
    assert_eq!(dns::resolve("missing.test"), Err(NetError::NameNotResolved));
    assert_eq!(dns::resolve("bad..name"), Err(NetError::InvalidName));
    server.kill().unwrap();
}

#[test]
fn a_silent_server_times_out_and_frees_the_query() {
    loopback_hub();
    let server = serve_dns(0);
    let silent = with_timeout(Duration::from_millis(50), || dns::resolve_with("a.test", &[SERVER]));
    assert!(matches!(silent, Err(NetError::Interrupted(Interrupted::TimedOut(_)))), "{silent:?}");
    // The abandoned query's socket is gone, and the poller, polling on, does not look for it
    // (that would panic in smoltcp's socket set).
    sleep(Duration::from_millis(5)).unwrap();
    server.kill().unwrap();
}

#[test]
fn connect_by_name_reaches_the_listener() {
    loopback_hub();
    let dns_server = serve_dns(1);
    dns::set_servers(&[SERVER]).unwrap();
    let listener = TcpListener::bind(8080, 1).unwrap();
    let server = spawn(move || {
        let mut stream = listener.accept()?;
        let mut buf = [0u8; 5];
        let n = stream.read(&mut buf)?;
        Ok::<_, NetError>(buf[..n].to_vec())
    });
    let mut client = dns::connect("web.test", 8080).unwrap();
    client.write_all(b"hello").unwrap();
    assert_eq!(server.get().unwrap(), Ok(b"hello".to_vec()));
    dns_server.kill().unwrap();
}
