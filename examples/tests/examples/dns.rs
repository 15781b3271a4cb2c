//! The DNS examples run as separate processes: offline with the system's resolver, and against
//! a dnsmasq started here on a loopback port. `cargo test` builds the examples before it runs
//! this.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gevent::dns::{NativeResolver, Resolver};

use super::common::{BACKSTOP, example, ok, output};

/// A dnsmasq answering `web.test` and every `*.many.test` name, killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    fn start() -> Dnsmasq {
        let port = loop {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = udp.local_addr().unwrap().port();
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break port;
            }
        };
        let child = Command::new("dnsmasq")
            .args(["--no-daemon", "--bind-interfaces", "--listen-address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file="])
            .args(["--local=/test/", "--host-record=web.test,127.0.0.1"])
            .args(["--address=/many.test/10.0.0.7"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq must be installed (apt-get install -y dnsmasq)");
        let mut server = Dnsmasq { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) };
        let probe = NativeResolver::builder()
            .nameserver(server.addr)
            .timeout(Duration::from_millis(50))
            .attempts(1)
            .hosts_file("/dev/null")
            .build()
            .unwrap();
        let started = Instant::now();
        while probe.lookup_host("web.test").is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("dnsmasq exited at start: {status}");
            }
            assert!(started.elapsed() < BACKSTOP, "dnsmasq did not start answering");
        }
        server
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn dns_lookup_resolves_offline_names() {
    let out = ok(output(&mut example("dns_lookup")));
    assert!(out.contains("localhost: 127.0.0.1"), "{out}");
    assert!(out.contains(" lookups in "), "{out}");
}

#[test]
fn dns_lookup_uses_the_native_resolver_the_environment_names() {
    let dnsmasq = Dnsmasq::start();
    let mut command = example("dns_lookup");
    command
        .arg("web.test")
        .env("GEVENT_RESOLVER", "native")
        .env("GEVENT_RESOLVER_NAMESERVERS", dnsmasq.addr.to_string());
    let out = ok(output(&mut command));
    assert!(out.contains("web.test: 127.0.0.1"), "{out}");
    assert!(out.contains("localhost: 127.0.0.1"), "{out}");
}

#[test]
fn dns_mass_resolve_against_dnsmasq() {
    let dnsmasq = Dnsmasq::start();
    let mut command = example("dns_mass_resolve");
    command.args(["--nameserver", &dnsmasq.addr.to_string(), "--domain", "many.test"]);
    command.args(["--count", "300"]);
    let out = ok(output(&mut command));
    assert!(out.contains("300 lookups: 300 resolved, 0 failed, 0 unfinished"), "{out}");
}
