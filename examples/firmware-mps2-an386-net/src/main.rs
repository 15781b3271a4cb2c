//! gevent for Rust on a Cortex-M4F (QEMU `mps2-an386`) with a real (emulated) NIC: the board's
//! LAN9118 driven by `gevent_embedded::drivers::lan9118`, on QEMU's user-mode network.
//!
//! Brings the NIC up, then serves a line echo on TCP port 7, one greenlet per connection. A
//! client (the host, through QEMU's `hostfwd`) sends lines and reads them back; the line
//! `quit` ends the run with status 0 if every check held.
//!
//! It prints `READY` by semihosting once it listens: the test in `xtask/src/test.rs` connects
//! only then.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use gevent_embedded::drivers::lan9118::{Lan9118, MPS2_BASE};
use gevent_embedded::net::{NetError, TcpListener, TcpStream};
use gevent_embedded::{StaticStacks, TickClock, spawn};
use smoltcp::iface::{Config, Interface};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::SysTickSource;

/// QEMU's mps2 boards run the core at 25 MHz.
const CORE_HZ: u32 = 25_000_000;

/// The echo's port in the guest.
const ECHO_PORT: u16 = 7;

/// QEMU's user-mode network: the guest address it hands out first, and its gateway.
const GUEST: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

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
            line.push(b'\n');
            stream.write_all(&line)?;
            line.clear();
        }
    }
}

#[entry]
fn main() -> ! {
    init_heap!(64 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    static mut STACK_MEM: [u8; 4 * 8 * 1024] = [0; 4 * 8 * 1024];
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

    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(config, &mut nic, smoltcp::time::Instant::ZERO);
    iface.update_ip_addrs(|addrs| {
        addrs.push(IpCidr::new(GUEST.into(), 24)).expect("room for one address");
    });
    iface.routes_mut().add_default_ipv4_route(GATEWAY).expect("room for a route");
    let drive: gevent_embedded::net::Drive = Box::new(move |iface, sockets, now| {
        iface.poll(now, &mut nic, sockets);
    });
    gevent_embedded::init_net(iface, drive, TickClock::new(SysTickSource), stacks, |_| {
        cortex_m::asm::wfi()
    })
    .expect("the hub is installed once");

    let listener = TcpListener::bind(ECHO_PORT, 2).expect("port 7 is free");
    hprintln!("address {}, echo on port {}", GUEST, ECHO_PORT);
    hprintln!("READY");
    loop {
        match listener.accept() {
            Ok(stream) => {
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
