//! Interoperability with a real TCP stack: a gevent-embedded echo server on a smoltcp
//! interface behind a Linux TAP device, and a client of the Linux kernel's own TCP stack
//! (`std::net::TcpStream` in another thread) connecting to it.
//!
//! Needs root (CAP_NET_ADMIN) and /dev/net/tun; where either is missing the test says so and
//! passes without running.

mod common;
use common::HostTicks;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as KernelTcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use gevent_embedded::event::Event;
use gevent_embedded::net::{self, TcpListener};
use gevent_embedded::{TickClock, spawn};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};

thread_local! {
    /// Set (on the server's hub thread) once the client has read the end of the stream.
    static CLIENT_DONE: Event = const { Event::new() };
}

/// A TAP device configured on the host side; deleted when dropped.
struct Tap {
    name: String,
}

impl Tap {
    fn create(name: &str, host_cidr: &str) -> Result<Tap, String> {
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let _ = run(&["link", "del", name]); // left over from an interrupted run
        run(&["tuntap", "add", "dev", name, "mode", "tap"])?;
        let tap = Tap { name: name.to_owned() };
        run(&["addr", "add", host_cidr, "dev", name])?;
        run(&["link", "set", name, "up"])?;
        Ok(tap)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).output();
    }
}

fn why_not_runnable() -> Option<String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Some("not running as root (creating a TAP device needs CAP_NET_ADMIN)".into());
    }
    None
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Installs this thread's hub on a smoltcp interface at `ip`/24 behind the TAP device `name`.
fn board(name: &str, ip: Ipv4Address) {
    let clock = TickClock::new(HostTicks::start());
    let mut device = TunTapInterface::new(name, Medium::Ethernet).expect("open the TAP");
    let fd = device.as_raw_fd();
    let mut iface = Interface::new(
        Config::new(EthernetAddress([0x02, 0, 0, 0, 0, 0x01]).into()),
        &mut device,
        smoltcp::time::Instant::from_micros(0),
    );
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
    });
    let drive = Box::new(move |iface: &mut Interface, sockets: &mut _, now| {
        iface.poll(now, &mut device, sockets);
    });
    let stacks = common::leaked_stacks(4, 128 * 1024);
    // Wait for a frame on the TAP (or a millisecond, for smoltcp's timers).
    let wait = move |_| {
        let _ = smoltcp::phy::wait(fd, Some(smoltcp::time::Duration::from_millis(1)));
    };
    gevent_embedded::init_net(iface, drive, clock, stacks, wait).unwrap();
}

#[test]
fn the_linux_kernel_tcp_stack_talks_to_a_greenlet_echo_server_over_tap() {
    if let Some(reason) = why_not_runnable() {
        eprintln!("SKIPPED: the TAP interoperability test cannot run here: {reason}");
        return;
    }
    let name = format!("gevtap{}", std::process::id() % 10_000);
    let tap = Tap::create(&name, "192.168.69.100/24").expect("create the TAP device");
    let (listening_tx, listening_rx) = mpsc::channel();

    let server_name = tap.name.clone();
    let server = std::thread::spawn(move || {
        board(&server_name, Ipv4Address::new(192, 168, 69, 1));
        let listener = TcpListener::bind(6969, 2).unwrap();
        // The client thread promises a post: until it makes it, the hub keeps running its stack.
        listening_tx.send(gevent_embedded::hub_handle().pending_post()).unwrap();
        let handler = spawn(move || {
            let mut stream = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let mut echoed = 0;
            loop {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    return echoed;
                }
                stream.write_all(&buf[..n]).unwrap();
                echoed += n;
            }
        });
        let echoed = handler.get().unwrap();
        // Keep the hub (and its network stack) running until the client has seen our FIN.
        CLIENT_DONE.with(|done| done.wait()).unwrap();
        echoed
    });

    let done_promise = listening_rx.recv().expect("the server thread starts listening");
    let address: SocketAddr = (Ipv4Address::new(192, 168, 69, 1).octets(), 6969).into();
    let mut client = KernelTcpStream::connect_timeout(&address, Duration::from_secs(10))
        .expect("the kernel connects to the smoltcp server");
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let message = b"hello from the Linux kernel's TCP stack ".repeat(8);
    client.write_all(&message).unwrap();
    let mut reply = vec![0u8; message.len()];
    client.read_exact(&mut reply).expect("the echo comes back");
    assert_eq!(reply, message);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("the server closes after our FIN");
    assert!(rest.is_empty());
    done_promise.post(|| CLIENT_DONE.with(Event::set)).unwrap();
    assert_eq!(server.join().expect("the server thread ends"), message.len());
    drop(tap);
}

#[test]
fn the_linux_kernel_answers_a_ping_and_reads_the_reset_of_an_aborted_stream() {
    if let Some(reason) = why_not_runnable() {
        eprintln!("SKIPPED: the TAP interoperability test cannot run here: {reason}");
        return;
    }
    // Its own device and subnet: the other TAP test may run at the same time.
    let name = format!("gevtapr{}", std::process::id() % 10_000);
    let tap = Tap::create(&name, "192.168.70.100/24").expect("create the TAP device");
    let (listening_tx, listening_rx) = mpsc::channel();

    let server_name = tap.name.clone();
    let server = std::thread::spawn(move || {
        board(&server_name, Ipv4Address::new(192, 168, 70, 1));
        let pinged = net::ping(Ipv4Address::new(192, 168, 70, 100), Duration::from_secs(10));
        let listener = TcpListener::bind(6970, 1).unwrap();
        listening_tx.send(gevent_embedded::hub_handle().pending_post()).unwrap();
        let mut stream = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte), Ok(1));
        stream.write_all(b"y").unwrap();
        // Once nothing is left unacknowledged either way, the kernel sends nothing more that
        // a freed socket would answer with a reset: only the abort's own RST can reach it.
        stream.flush().unwrap();
        stream.abort().unwrap();
        drop(stream);
        CLIENT_DONE.with(|done| done.wait()).unwrap();
        pinged.map(|_| ())
    });

    let done_promise = listening_rx.recv().expect("the server thread starts listening");
    let address: SocketAddr = (Ipv4Address::new(192, 168, 70, 1).octets(), 6970).into();
    let mut client = KernelTcpStream::connect_timeout(&address, Duration::from_secs(10))
        .expect("the kernel connects to the smoltcp server");
    client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    client.write_all(b"x").unwrap();
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).expect("the server's byte");
    let read = client.read(&mut [0u8; 8]);
    done_promise.post(|| CLIENT_DONE.with(Event::set)).unwrap();
    assert_eq!(server.join().expect("the server thread ends"), Ok(()), "the kernel answered");
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "the aborted stream's RST reached the kernel"
    );
    drop(tap);
}
