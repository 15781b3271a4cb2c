//! `gevent::dns` against a real dnsmasq started on a loopback port by each test, with
//! records of its own under `.test` (any other `.test` name does not exist).

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gevent::dns::{
    self, NativeResolver, NativeResolverBuilder, Record, RecordType, Resolver, ThreadResolver,
};
use gevent::net::{TcpListener, TcpStream, UdpSocket};
use gevent::{Timeout, spawn};

/// How long the tests wait for dnsmasq to start answering before failing.
const STARTUP_BACKSTOP: Duration = Duration::from_secs(20);

/// A resolver asking `nameserver` once, waiting `timeout` for each answer, with no hosts file.
fn asking_once(nameserver: SocketAddr, timeout: Duration) -> NativeResolverBuilder {
    NativeResolver::builder()
        .nameserver(nameserver)
        .timeout(timeout)
        .attempts(1)
        .hosts_file("/dev/null")
}

/// The strings of `big.test`'s TXT record: about 1,200 bytes, too many for a 512-byte UDP
/// reply.
fn big_txt() -> Vec<String> {
    (0..6).map(|i| format!("{i}").repeat(200)).collect()
}

/// A dnsmasq serving the tests' records on 127.0.0.1, killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts one on a free port. The port is free when picked, not reserved: another test
    /// (or process) may bind it first, and dnsmasq then exits at once; a few fresh ports are
    /// tried before giving up.
    fn start() -> Dnsmasq {
        let mut last = None;
        for _ in 0..5 {
            match Self::start_on(free_port()) {
                Ok(server) => return server,
                Err(status) => last = Some(status),
            }
        }
        panic!("dnsmasq exited at start on five ports: {last:?}");
    }

    fn start_on(port: u16) -> Result<Dnsmasq, std::process::ExitStatus> {
        let big = big_txt().join(",");
        let child = Command::new("dnsmasq")
            .args(["--no-daemon", "--bind-interfaces", "--listen-address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file="])
            .args(["--local=/test/", "--host-record=a.test,192.0.2.1,2001:db8::1"])
            .args(["--host-record=web.test,127.0.0.1", "--address=/many.test/10.0.0.7"])
            .args(["--mx-host=mail.test,mx1.test,10", "--mx-host=mail.test,mx2.test,20"])
            .args(["--txt-record=txt.test,hello world,v=spf1 -all"])
            .arg(format!("--txt-record=big.test,{big}"))
            .args(["--srv-host=_http._tcp.srv.test,a.test,8080,1,5", "--cname=alias.test,a.test"])
            .args(["--ptr-record=1.2.0.192.in-addr.arpa,a.test"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq must be installed (apt-get install -y dnsmasq)");
        let mut server = Dnsmasq { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) };
        server.wait_until_answering()?;
        Ok(server)
    }

    /// Asks until dnsmasq answers; its exit status if it exits first; fails if it takes longer
    /// than the backstop.
    fn wait_until_answering(&mut self) -> Result<(), std::process::ExitStatus> {
        let probe = asking_once(self.addr, Duration::from_millis(50)).build().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(status);
            }
            if probe.lookup_host("a.test").is_ok() {
                return Ok(());
            }
            assert!(started.elapsed() < STARTUP_BACKSTOP, "dnsmasq did not start answering");
        }
    }

    fn resolver(&self) -> NativeResolverBuilder {
        NativeResolver::builder()
            .nameserver(self.addr)
            .timeout(Duration::from_secs(2))
            .attempts(2)
            .hosts_file("/dev/null")
            .search(Vec::<String>::new())
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP when asked.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A UDP socket that receives queries and never answers.
fn silent_server() -> (std::net::UdpSocket, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[test]
fn a_and_aaaa_records() {
    let dnsmasq = Dnsmasq::start();
    let resolver = dnsmasq.resolver().build().unwrap();
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(resolver.lookup_host("a.test").unwrap(), [v4, v6]);
    assert_eq!(
        resolver.lookup("a.test", RecordType::A).unwrap(),
        [Record::A(Ipv4Addr::new(192, 0, 2, 1))]
    );
    assert_eq!(
        resolver.lookup("A.Test.", RecordType::AAAA).unwrap(),
        [Record::Aaaa("2001:db8::1".parse::<Ipv6Addr>().unwrap())]
    );
}

#[test]
fn mx_txt_srv_cname_and_ptr_records() {
    let dnsmasq = Dnsmasq::start();
    let resolver = dnsmasq.resolver().build().unwrap();
    let mut mx = resolver.lookup("mail.test", RecordType::MX).unwrap();
    mx.sort_by_key(|r| match r {
        Record::Mx { preference, .. } => *preference,
        _ => u16::MAX,
    });
    assert_eq!(
        mx,
        [
            Record::Mx { preference: 10, exchange: "mx1.test".into() },
            Record::Mx { preference: 20, exchange: "mx2.test".into() },
        ]
    );
    assert_eq!(
        resolver.lookup("txt.test", RecordType::TXT).unwrap(),
        [Record::Txt(vec![b"hello world".to_vec(), b"v=spf1 -all".to_vec()])]
    );
    assert_eq!(
        resolver.lookup("_http._tcp.srv.test", RecordType::SRV).unwrap(),
        [Record::Srv { priority: 1, weight: 5, port: 8080, target: "a.test".into() }]
    );
    assert_eq!(
        resolver.lookup("alias.test", RecordType::CNAME).unwrap(),
        [Record::Cname("a.test".into())]
    );
    // An address query through the alias follows the chain.
    assert!(resolver.lookup_host("alias.test").unwrap().contains(&"192.0.2.1".parse().unwrap()));
    assert_eq!(
        resolver.lookup("1.2.0.192.in-addr.arpa", RecordType::PTR).unwrap(),
        [Record::Ptr("a.test".into())]
    );
    assert_eq!(resolver.gethostbyaddr("192.0.2.1".parse().unwrap()).unwrap(), "a.test");
}

#[test]
fn a_name_that_does_not_exist_says_so() {
    let dnsmasq = Dnsmasq::start();
    let resolver = dnsmasq.resolver().build().unwrap();
    let err = resolver.lookup_host("nope.test").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("nope.test does not exist"), "{err}");
    let err = resolver.lookup("nope.test", RecordType::MX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_truncated_udp_reply_is_asked_again_over_tcp() {
    let dnsmasq = Dnsmasq::start();
    let resolver = dnsmasq.resolver().build().unwrap();
    let expected: Vec<Vec<u8>> = big_txt().into_iter().map(String::into_bytes).collect();
    assert!(expected.iter().map(Vec::len).sum::<usize>() > 512, "must not fit in UDP");
    assert_eq!(resolver.lookup("big.test", RecordType::TXT).unwrap(), [Record::Txt(expected)]);
}

#[test]
fn a_silent_server_times_out_and_the_next_one_answers() {
    let dnsmasq = Dnsmasq::start();
    let (silent, silent_addr) = silent_server();
    let resolver = asking_once(silent_addr, Duration::from_millis(200))
        .nameserver(dnsmasq.addr)
        .build()
        .unwrap();
    assert_eq!(
        resolver.lookup("web.test", RecordType::A).unwrap(),
        [Record::A(Ipv4Addr::LOCALHOST)]
    );
    // The silent server was asked first.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0; 512];
    assert!(silent.recv_from(&mut buf).is_ok(), "the first server was not asked");
}

#[test]
fn a_query_nobody_answers_times_out() {
    let (_silent, silent_addr) = silent_server();
    let (_silent2, silent2_addr) = silent_server();
    let resolver = NativeResolver::builder()
        .nameserver(silent_addr)
        .nameserver(silent2_addr)
        .timeout(Duration::from_millis(50))
        .attempts(2)
        .hosts_file("/dev/null")
        .build()
        .unwrap();
    let err = resolver.lookup_host("web.test").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("no name server answered"), "{err}");
}

/// A name server in front of `upstream` that holds every query until `gate` of them have
/// come, then relays them all (and any later one): a lookup answers only if `gate` of them
/// were out at once.
fn gated_relay(upstream: SocketAddr, gate: usize) -> (gevent::Greenlet<()>, SocketAddr) {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = front.local_addr().unwrap();
    let relay = spawn(move || {
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut held = Vec::new();
        let mut buf = [0; 4096];
        loop {
            let Ok((len, client)) = front.recv_from(&mut buf) else { return };
            held.push((buf[..len].to_vec(), client));
            if held.len() < gate {
                continue;
            }
            for (query, client) in held.drain(..) {
                back.send_to(&query, upstream).unwrap();
                let Ok(len) = back.recv(&mut buf) else { return };
                front.send_to(&buf[..len], client).unwrap();
            }
        }
    });
    (relay, addr)
}

#[test]
fn two_hundred_greenlets_resolve_at_once() {
    let dnsmasq = Dnsmasq::start();
    let (relay, relay_addr) = gated_relay(dnsmasq.addr, 200);
    let resolver = asking_once(relay_addr, Duration::from_secs(10)).build().unwrap();
    dns::set_resolver(resolver);
    let lookups: Vec<_> =
        (0..200).map(|i| spawn(move || dns::gethostbyname(&format!("n{i}.many.test")))).collect();
    for lookup in &lookups {
        assert_eq!(lookup.take().unwrap().unwrap(), Ipv4Addr::new(10, 0, 0, 7));
    }
    relay.kill().unwrap();
}

#[test]
fn lookup_host_asks_for_a_and_aaaa_at_once() {
    let dnsmasq = Dnsmasq::start();
    // The relay answers nothing until two queries are in: asked one after the other, the A
    // query would time out.
    let (relay, relay_addr) = gated_relay(dnsmasq.addr, 2);
    let resolver = asking_once(relay_addr, Duration::from_secs(10)).build().unwrap();
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(resolver.lookup_host("a.test").unwrap(), [v4, v6]);
    relay.kill().unwrap();
}

#[test]
fn the_hosts_file_answers_first() {
    let dir = std::env::temp_dir().join(format!("gevent-dns-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hosts");
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(file, "# test hosts\n192.0.2.9 Pinned.Example pinned\n2001:db8::9 pinned").unwrap();
    let (_silent, silent_addr) = silent_server();
    let resolver =
        asking_once(silent_addr, Duration::from_millis(50)).hosts_file(&path).build().unwrap();
    let expected: [IpAddr; 2] = ["192.0.2.9".parse().unwrap(), "2001:db8::9".parse().unwrap()];
    assert_eq!(resolver.lookup_host("pinned").unwrap(), expected);
    assert_eq!(resolver.lookup_host("pinned.example.").unwrap()[..1], expected[..1]);
    assert_eq!(resolver.gethostbyaddr(expected[0]).unwrap(), "pinned.example");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn never_answering_resolver() -> (std::net::UdpSocket, NativeResolver) {
    let (silent, silent_addr) = silent_server();
    let resolver = asking_once(silent_addr, Duration::from_secs(60)).build().unwrap();
    (silent, resolver)
}

#[test]
fn a_timeout_interrupts_a_lookup() {
    let (_silent, resolver) = never_answering_resolver();
    let timeout = Timeout::start(Duration::from_millis(50));
    let err = resolver.lookup_host("web.test").unwrap_err();
    assert!(timeout.is(&err), "{err}");
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn a_kill_interrupts_a_lookup() {
    let (silent, resolver) = never_answering_resolver();
    let lookup = spawn(move || resolver.lookup_host("web.test"));
    // Wait until the query is out, i.e. the greenlet is parked on its reply.
    silent.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut buf = [0; 512];
    let backstop = Instant::now();
    while silent.recv_from(&mut buf).is_err() {
        assert!(backstop.elapsed() < STARTUP_BACKSTOP, "the query never went out");
        gevent::yield_now().unwrap();
    }
    let _backstop = Timeout::start(Duration::from_secs(10));
    lookup.kill().unwrap();
    assert!(lookup.killed());
}

#[test]
fn connect_resolves_through_the_configured_resolver() {
    let dnsmasq = Dnsmasq::start();
    // web.test exists only in dnsmasq: the system's resolver does not know it.
    dns::set_resolver(dnsmasq.resolver().build().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = spawn(move || listener.accept().map(|(_, peer)| peer));
    let stream = TcpStream::connect(format!("web.test:{port}")).unwrap();
    assert_eq!(accept.take().unwrap().unwrap(), stream.local_addr().unwrap());
    assert_eq!(dns::getaddrinfo("web.test", 80).unwrap(), [SocketAddr::from(([127, 0, 0, 1], 80))]);
    assert_eq!(dns::gethostbyaddr("192.0.2.1".parse().unwrap()).unwrap(), "a.test");
}

#[test]
fn the_thread_resolver_uses_the_system() {
    let resolver = ThreadResolver::new();
    let ips = resolver.lookup_host("localhost").unwrap();
    assert!(!ips.is_empty() && ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    // getnameinfo finds loopback's name in /etc/hosts, and that name leads back.
    let name = resolver.gethostbyaddr(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    assert!(resolver.lookup_host(&name).unwrap().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let err = resolver.lookup("localhost", RecordType::MX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    dns::set_resolver(ThreadResolver::new());
    assert_eq!(dns::gethostbyname("localhost").unwrap(), Ipv4Addr::LOCALHOST);
    assert_eq!(dns::lookup_host("192.0.2.3").unwrap(), ["192.0.2.3".parse::<IpAddr>().unwrap()]);
}

/// A reply to `query` built by hand: the question echoed, `rcode`, and an A record for
/// `answer` if given.
fn reply_to(query: &[u8], rcode: u8, answer: Option<Ipv4Addr>) -> Vec<u8> {
    let mut reply = query.to_vec();
    reply[2] |= 0x80; // QR: a response
    reply[3] = (reply[3] & 0xf0) | rcode;
    if let Some(ip) = answer {
        reply[7] = 1; // ANCOUNT
        // The question's name (a pointer to offset 12), type A, class IN, TTL 60, 4 bytes.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    reply
}

#[test]
fn replies_from_elsewhere_or_with_another_id_are_ignored() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server_addr = server.local_addr().unwrap();
    let answer = spawn(move || {
        let mut buf = [0; 512];
        let (len, client) = server.recv_from(&mut buf).unwrap();
        let query = &buf[..len];
        let spoofed = reply_to(query, 0, Some(Ipv4Addr::new(192, 0, 2, 66)));
        UdpSocket::bind("127.0.0.1:0").unwrap().send_to(&spoofed, client).unwrap();
        let mut wrong_id = spoofed.clone();
        wrong_id[1] ^= 1;
        server.send_to(&wrong_id, client).unwrap();
        server.send_to(b"garbage", client).unwrap();
        server.send_to(&reply_to(query, 0, Some(Ipv4Addr::new(192, 0, 2, 77))), client).unwrap();
    });
    let resolver = asking_once(server_addr, Duration::from_secs(10)).build().unwrap();
    assert_eq!(
        resolver.lookup("spoof.test", RecordType::A).unwrap(),
        [Record::A(Ipv4Addr::new(192, 0, 2, 77))]
    );
    answer.join().unwrap();
}

#[test]
fn a_server_failure_says_so_and_the_next_server_takes_over() {
    let failing = UdpSocket::bind("127.0.0.1:0").unwrap();
    let failing_addr = failing.local_addr().unwrap();
    let fail = spawn(move || {
        let mut buf = [0; 512];
        loop {
            let Ok((len, client)) = failing.recv_from(&mut buf) else { return };
            failing.send_to(&reply_to(&buf[..len], 2, None), client).unwrap();
        }
    });
    let alone = asking_once(failing_addr, Duration::from_secs(10));
    let err = alone.clone().build().unwrap().lookup("x.test", RecordType::A).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(err.to_string().contains("SERVFAIL"), "{err}");
    let dnsmasq = Dnsmasq::start();
    let both = alone.nameserver(dnsmasq.addr).build().unwrap();
    assert_eq!(both.lookup("web.test", RecordType::A).unwrap(), [Record::A(Ipv4Addr::LOCALHOST)]);
    fail.kill().unwrap();
}
