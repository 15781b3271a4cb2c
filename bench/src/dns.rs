//! The `dns` workload: queries per second of the native resolver against a local dnsmasq, with
//! [`IN_FLIGHT`] greenlets each asking in a loop, so that as many queries are in flight at once.

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::dns::{NativeResolver, Record, RecordType, Resolver};
use gevent::spawn;

use crate::report;

/// Greenlets asking at once, hence queries in flight.
const IN_FLIGHT: usize = 100;
/// How long the greenlets ask.
const DURATION: Duration = Duration::from_secs(3);
/// The name asked for, and its address.
const NAME: &str = "a.bench";
const ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// How long dnsmasq may take to start answering.
const STARTUP_BACKSTOP: Duration = Duration::from_secs(20);

/// Runs the workload and prints `bench=dns impl=gevent-rs metric=queries_per_s`.
pub(crate) fn qps() -> ExitCode {
    match run() {
        Ok(rate) => {
            report("dns", "queries_per_s", rate);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gevent-bench: dns_qps failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<f64> {
    let dnsmasq = Dnsmasq::start()?;
    let resolver = Rc::new(
        NativeResolver::builder()
            .nameserver(dnsmasq.addr)
            .timeout(Duration::from_secs(2))
            .attempts(2)
            .hosts_file("/dev/null")
            .search(Vec::<String>::new())
            .build()?,
    );
    let answered = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let deadline = start + DURATION;
    let askers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (resolver, answered) = (resolver.clone(), answered.clone());
            spawn(move || -> Result<(), String> {
                while Instant::now() < deadline {
                    let records =
                        resolver.lookup(NAME, RecordType::A).map_err(|e| e.to_string())?;
                    if records != [Record::A(ADDRESS)] {
                        return Err(format!("{NAME}: wrong answer {records:?}"));
                    }
                    answered.set(answered.get() + 1);
                }
                Ok(())
            })
        })
        .collect();
    for asker in askers {
        asker.get().map_err(io::Error::other)?.map_err(io::Error::other)?;
    }
    Ok(answered.get() as f64 / start.elapsed().as_secs_f64())
}

/// A dnsmasq answering for `a.bench` on a loopback port, killed on drop. It runs on CPU 1 when
/// `taskset` is there, away from the benchmark, which `cargo xtask bench` pins to CPU 0.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    fn start() -> io::Result<Dnsmasq> {
        let port = free_port()?;
        let mut command = match which("taskset") {
            true => {
                let mut command = Command::new("taskset");
                command.args(["-c", "1", "dnsmasq"]);
                command
            }
            false => Command::new("dnsmasq"),
        };
        let child = command
            .args(["--no-daemon", "--bind-interfaces", "--listen-address=127.0.0.1"])
            .arg(format!("--port={port}"))
            .args(["--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file="])
            .arg("--local=/bench/")
            .arg(format!("--host-record={NAME},{ADDRESS}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start dnsmasq: {e}")))?;
        let mut server = Dnsmasq { child, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) };
        server.wait_until_answering()?;
        Ok(server)
    }

    fn wait_until_answering(&mut self) -> io::Result<()> {
        let probe = NativeResolver::builder()
            .nameserver(self.addr)
            .timeout(Duration::from_millis(50))
            .attempts(1)
            .hosts_file("/dev/null")
            .build()?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!("dnsmasq exited at start: {status}")));
            }
            if probe.lookup(NAME, RecordType::A).is_ok() {
                return Ok(());
            }
            if started.elapsed() > STARTUP_BACKSTOP {
                return Err(io::Error::other("dnsmasq did not start answering"));
            }
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP (dnsmasq listens on both).
fn free_port() -> io::Result<u16> {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
