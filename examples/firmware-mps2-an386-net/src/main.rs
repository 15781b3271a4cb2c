//! gevent for Rust on a Cortex-M4F (QEMU `mps2-an386`) with a real (emulated) NIC: the board's
//! LAN9118 driven by `gevent_embedded::drivers::lan9118`, on QEMU's user-mode network.
//!
//! Brings the NIC up, gets its address by DHCP from QEMU's user-mode network (and checks the
//! lease: QEMU's defaults), then serves a line echo on TCP port 7, one greenlet per
//! connection. A client (the host, through QEMU's `hostfwd`) sends lines and reads them back;
//! `resolve NAME [SERVER]` answers with NAME's address, asked through DNS of SERVER or, without
//! one, of the servers the DHCP lease named; `stats` answers `sockets=N greenlets=N heap=BYTES accepted=N irqs=N` once the
//! sockets of connections that ended have closed (what a churn of connections must leave
//! unchanged); `quit` ends the run with status 0.
//!
//! The NIC's receive interrupt wakes the hub (see [`DefaultHandler`]), so a frame is read as
//! it arrives rather than at the next tick of the clock.
//!
//! It prints `READY` by semihosting once it listens: the test in `xtask/src/test/net_firmware.rs`
//! connects only then.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use gevent_embedded::drivers::lan9118::{Lan9118, MPS2_BASE, MPS2_IRQ};
use gevent_embedded::isr::Signal;
use gevent_embedded::net::{NetError, TcpListener, TcpStream, dhcp, dns};
use gevent_embedded::{StaticStacks, TickClock, spawn};
use smoltcp::iface::{Config, Interface};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, Ipv4Address, Ipv4Cidr};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::SysTickSource;

/// QEMU's mps2 boards run the core at 25 MHz.
const CORE_HZ: u32 = 25_000_000;

/// The echo's port in the guest.
const ECHO_PORT: u16 = 7;

/// What QEMU's user-mode network leases by default: the first guest address, its gateway and
/// its DNS relay.
const GUEST: Ipv4Cidr = Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const DNS_RELAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 3);

/// How long DHCP may take.
const DHCP_LIMIT: Duration = Duration::from_secs(30);

/// The longest line the echo takes.
const LINE: usize = 256;

/// Serves one connection: each line comes back; `quit` ends the run.
fn serve(mut stream: TcpStream) -> Result<(), NetError> {
    let mut line: Vec<u8> = Vec::with_capacity(LINE);
    let mut buf = [0u8; 128];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for &byte in &buf[..n] {
            if byte != b'\n' {
                if line.len() < LINE {
                    line.push(byte);
                }
                continue;
            }
            if line == b"quit" {
                hprintln!("quit: all checks held");
                board::exit(true);
            }
            let reply = match line.strip_prefix(b"resolve ") {
                Some(request) => resolve(request),
                None if line == b"stats" => stats(),
                None => String::from_utf8_lossy(&line).into_owned(),
            };
            stream.write_all(reply.as_bytes())?;
            stream.write_all(b"\n")?;
            line.clear();
        }
    }
}

/// Connections accepted since the start.
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

/// Raised by the NIC's interrupt; a greenlet waits on it, which is what lets the interrupt
/// wake the hub (whose every turn drives the interface).
static NIC_RX: Signal = Signal::new();

/// The NIC's interrupts taken since the start.
static NIC_IRQS: AtomicUsize = AtomicUsize::new(0);

/// The NIC's interrupt line, for the NVIC.
#[derive(Clone, Copy)]
struct NicIrq;

// SAFETY: `MPS2_IRQ` is the number of a device interrupt of the mps2-an386's NVIC (the
// LAN9118's), which is all the trait asks.
unsafe impl InterruptNumber for NicIrq {
    fn number(self) -> u16 {
        MPS2_IRQ
    }
}

/// Every device interrupt (the firmware has no device crate, so none has a handler of its
/// own): the NIC's masks its line (level-triggered, it would fire again at once; the drive
/// unmasks it once it has read the frames) and raises [`NIC_RX`]. Any other is a fault.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == MPS2_IRQ as i16 {
        NVIC::mask(NicIrq);
        NIC_IRQS.fetch_add(1, Ordering::Relaxed);
        NIC_RX.signal();
    } else {
        hprintln!("FAILED: unexpected interrupt {}", irqn);
        board::exit(false)
    }
}

/// How long `stats` waits for the sockets of ended connections to close.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Answers `stats`: the sockets open (the listener and the asking connection, once the
/// sockets of connections that ended have closed, which `stats` waits for, bounded), the
/// greenlets alive (main, the NIC's and the asking connection's), the heap in use, the
/// connections accepted so far and the NIC's interrupts taken.
fn stats() -> String {
    // The listener and this connection.
    const SETTLED: usize = 2;
    let deadline = gevent_embedded::now() + SETTLE_LIMIT;
    let mut sockets = gevent_embedded::net::open_sockets().unwrap_or(usize::MAX);
    // Closing sockets are freed by the network poller, which raises no event a greenlet could
    // wait for: look again every few milliseconds.
    while sockets > SETTLED && gevent_embedded::now() < deadline {
        if gevent_embedded::sleep(Duration::from_millis(5)).is_err() {
            break;
        }
        sockets = gevent_embedded::net::open_sockets().unwrap_or(usize::MAX);
    }
    let greenlets = gevent_embedded::tree::GreenletTree::current_hub().greenlets().len();
    let accepted = ACCEPTED.load(Ordering::Relaxed);
    let irqs = NIC_IRQS.load(Ordering::Relaxed);
    let heap = board::HEAP.used();
    format!("sockets={sockets} greenlets={greenlets} heap={heap} accepted={accepted} irqs={irqs}")
}

/// Answers `NAME [SERVER]`: NAME's first address, or what went wrong.
fn resolve(request: &[u8]) -> String {
    let request = String::from_utf8_lossy(request);
    let mut words = request.split_whitespace();
    let name = words.next().unwrap_or("");
    let resolved = match words.next().map(str::parse::<Ipv4Address>) {
        Some(Ok(server)) => dns::resolve_with(name, &[IpAddress::Ipv4(server)]),
        Some(Err(_)) => return format!("error: bad server address in {request}"),
        None => dns::resolve(name),
    };
    let reply = match &resolved {
        Ok(addresses) => match addresses.first() {
            Some(address) => format!("{address}"),
            None => String::from("error: no address"),
        },
        Err(e) => format!("error: {e}"),
    };
    hprintln!("resolve {}: {}", request, reply);
    reply
}

#[entry]
fn main() -> ! {
    init_heap!(64 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    // The NIC's greenlet, the host's control connection and two more at once.
    static mut STACK_MEM: [u8; 5 * 8 * 1024] = [0; 5 * 8 * 1024];
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stacks = StaticStacks::new(unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) }, 8 * 1024);

    // SAFETY: the mps2-an386 image has its LAN9118 at MPS2_BASE, and this is the only driver
    // made for it; no interrupt handler touches it.
    let mut nic = match unsafe { Lan9118::new(MPS2_BASE) } {
        Ok(nic) => nic,
        Err(e) => {
            hprintln!("FAILED: {}", e);
            board::exit(false)
        }
    };
    let mac = nic.mac_address();
    hprintln!(
        "lan9118 id {:#010x}, mac {}, link {}",
        nic.id_rev(),
        EthernetAddress(mac),
        if nic.link_up() == Ok(true) { "up" } else { "down" }
    );

    nic.enable_receive_interrupt();
    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let iface = Interface::new(config, &mut nic, smoltcp::time::Instant::ZERO);
    let drive: gevent_embedded::net::Drive = Box::new(move |iface, sockets, now| {
        // Before reading: a frame that arrives after this raises the interrupt again.
        nic.acknowledge_receive_interrupt();
        iface.poll(now, &mut nic, sockets);
        // SAFETY: the firmware's critical sections mask every interrupt (cortex-m's
        // single-core implementation sets PRIMASK), so unmasking a line breaks none.
        unsafe { NVIC::unmask(NicIrq) };
    });
    gevent_embedded::init_net(iface, drive, TickClock::new(SysTickSource), stacks, |_| {
        cortex_m::asm::wfi()
    })
    .expect("the hub is installed once");

    // Each raise of the NIC's signal ends this greenlet's wait, a wake-up of the hub, whose
    // turn drives the interface: that is all it is for.
    spawn(|| {
        while NIC_RX.wait().is_ok() {}
        hprintln!("FAILED: the NIC's signal cannot be waited for");
        board::exit(false)
    });

    dhcp::start().expect("the hub has a network stack");
    let lease = match dhcp::wait_config_up(Some(DHCP_LIMIT)) {
        Ok(lease) => lease,
        Err(e) => {
            hprintln!("FAILED: no DHCP lease: {}", e);
            board::exit(false)
        }
    };
    hprintln!(
        "dhcp: address {}, gateway {:?}, dns {:?}",
        lease.address,
        lease.gateway,
        lease.dns_servers
    );
    if lease.address != GUEST || lease.gateway != Some(GATEWAY) || lease.dns_servers != [DNS_RELAY] {
        hprintln!("FAILED: the lease is not QEMU's default");
        board::exit(false)
    }

    let listener = TcpListener::bind(ECHO_PORT, 2).expect("port 7 is free");
    hprintln!("echo on port {}", ECHO_PORT);
    hprintln!("READY");
    loop {
        match listener.accept() {
            Ok(stream) => {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
                spawn(move || {
                    if let Err(e) = serve(stream) {
                        hprintln!("connection ended: {}", e);
                    }
                });
            }
            Err(e) => {
                hprintln!("FAILED: accept: {}", e);
                board::exit(false)
            }
        }
    }
}
