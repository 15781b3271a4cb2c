//! gevent for Rust on bare metal: the same greenlets, hub, timers, timeouts, queues and locks
//! as on servers, driven by what a firmware provides: a tick counter, an idle hook, and stack
//! memory.
//!
//! This crate is `#![no_std]`; the core needs an allocator (`alloc`) for greenlet headers and
//! its collections, and the firmware links a `critical-section` implementation (cortex-m's
//! `critical-section-single-core` feature, say). Bring a board up in three steps:
//!
//! 1. give the hub a clock ([`TickClock`] over your tick counter),
//! 2. give it stacks ([`StaticStacks`] over a `static` [`StackMemory`]),
//! 3. give it a way to wait ([`IdlePoller`] with your "sleep until" hook, `wfi` say, which
//!    the hub calls with interrupts masked: see [`WaitHook`]),
//!
//! and call [`init`] once from thread mode; or, with a smoltcp interface, [`init_net`], which
//! makes the hub's poller drive the interface so that [`net`]'s `TcpListener`, `TcpStream`
//! (embedded-io `Read`/`Write`) and `UdpSocket` block greenlets, not the chip.
//!
//! # Memory
//!
//! Besides the stacks the firmware gives, the core allocates (with the firmware's global
//! allocator): a header per greenlet (201 bytes per parked greenlet on a Cortex-M3, measured
//! by the bench firmware, including the allocator's overhead; or none, from a
//! [`StaticHeaders`] buffer, which lists what still allocates), the hub's run queue, timer
//! heap and tables (grown to the peak number of greenlets, timers and sockets, then reused),
//! and a box for the rarer parts of a greenlet (a name, links, a second joiner,
//! greenlet-locals) when it has any. smoltcp sockets get their buffers when they are made;
//! nothing is allocated per packet, nor by an interrupt handing an event to a greenlet
//! ([`isr`]).
//!
//! Stacks are painted, so each greenlet's deepest use is known
//! ([`Greenlet::stack_high_water`]). With the `stack-guard` feature on an ARMv7-M chip,
//! `StaticStacks::guarded` puts an MPU no-access region under the running greenlet's stack,
//! so an overflow faults (reported as that greenlet's) instead of writing the stack below,
//! and stacks may be as small as 256 bytes: a parked greenlet costs 1,301 bytes with 1 KiB
//! stacks (see [`StaticStacks`] for why that is sound and what a guard cannot catch).
//!
//! # Targets
//!
//! Run by the test matrix under QEMU on `thumbv7m-none-eabi` (Cortex-M3, `lm3s6965evb`),
//! `thumbv7em-none-eabihf` (Cortex-M4F, `mps2-an386`) and `thumbv6m-none-eabi` (Cortex-M0,
//! `microbit`: an nRF51822 with 16 KiB of RAM); built for `thumbv7em-none-eabi` and
//! `riscv32imac-unknown-none-elf`.
//!
//! Cortex-M0/M0+ have atomic loads and stores but no compare-and-swap. There the values a hub
//! shares with interrupt handlers are `&'static` references instead of `Arc`s
//! ([`gevent_core::shared`]: the poller's wake flag and the monitor's heartbeat are allocated
//! once and never freed), and the read-modify-writes of the wake flag and of
//! [`HubHandle`]'s post protocol come from `portable-atomic`, built from the critical section
//! the firmware provides. `drivers::embassy` is not available there (a `Waker` is made from
//! an `Arc`).
//!
//! On Cortex-M greenlets switch with the core's own assembly (corosensei, which the core uses
//! on other architectures, marked the hard-float callee-saved registers clobbered by naming
//! NEON registers that a Cortex-M4F/M7F FPU does not have, so d8–d15 were not preserved). The
//! switch saves r4–r11 and, on `thumbv7em-none-eabihf`, s16–s31 (d8–d15) and FPSCR, so each
//! greenlet keeps its own floating-point values and rounding mode; `examples/firmware-mps2-an386`
//! checks both across 1,200 switches. A greenlet that parks or yields switches straight to
//! the next runnable one, without a turn of the hub loop in between.
//!
//! # Features
//!
//! - `defmt`: logs stack exhaustion, refused connects and freed sockets through `defmt`.
//! - `stack-guard`: `mpu::StackGuard` and `StaticStacks::guarded` on ARMv7-M (MPU stack
//!   guards; adds a hook to every switch, about 28 instructions with the guard on).
//! - `ipv6`, `icmp`, `raw`, `multicast`: the optional protocols of [`net`] (each adds its
//!   smoltcp code only when chosen).
//! - `lan9118`: `drivers::lan9118`, a driver for the LAN9118 Ethernet controller that QEMU
//!   emulates on `mps2-an386`.
//! - `embassy-net-driver`: `drivers::embassy`, NIC drivers written for embassy-net as smoltcp
//!   devices.
//! - `dhcpv4`, `dns`: [`net::dhcp`](crate::net) and [`net::dns`](crate::net).
//!
//! Hub functions must be called from thread mode only, never from interrupt handlers (on
//! Cortex-M a blocking one called from a handler panics, saying so, instead of switching
//! stacks inside the exception). An interrupt hands events to greenlets without allocating
//! through [`isr::Signal`] and [`isr::Channel`], or work needing a greenlet of its own through
//! a [`HubHandle`].

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

#[macro_use]
mod fmt;

mod clock;
pub mod drivers;
mod idle;
pub mod isr;
pub mod monitor;
#[cfg(all(feature = "stack-guard", target_arch = "arm", target_os = "none"))]
pub mod mpu;
pub mod net;
mod stacks;
mod static_headers;

pub use clock::{TickClock, TickSource};
pub use gevent_core::*;
pub use idle::{IdlePoller, WaitHook};
pub use stacks::{StackMemory, StaticStacks};
pub use static_headers::{HEADER_SLOT_ALIGN, StaticHeaders};

use alloc::boxed::Box;

/// Installs the program's hub with a network stack: `iface` polled by `drive` (which owns the
/// device), plus the clock, stacks and idle hook as for [`init`].
pub fn init_net(
    iface: smoltcp::iface::Interface,
    drive: net::Drive,
    clock: impl platform::Clock + Clone + 'static,
    stacks: StaticStacks,
    wait: impl WaitHook + 'static,
) -> Result<(), hub::AlreadyInstalled> {
    install(Box::new(net::NetPoller::new(iface, drive, clock.clone(), wait)), clock, stacks)
}

/// Installs the program's hub, built from a clock, a stack source and an idle hook.
///
/// Call it once, from thread mode, before any other hub function.
pub fn init(
    clock: impl platform::Clock + Clone + 'static,
    stacks: StaticStacks,
    wait: impl WaitHook + 'static,
) -> Result<(), hub::AlreadyInstalled> {
    install(Box::new(IdlePoller::new(clock.clone(), wait)), clock, stacks)
}

fn install(
    poller: Box<dyn platform::Poller>,
    clock: impl platform::Clock + 'static,
    stacks: StaticStacks,
) -> Result<(), hub::AlreadyInstalled> {
    let default_stack_size = stacks.stack_size();
    hub::install(platform::Platform {
        poller,
        clock: Box::new(clock),
        stacks: Box::new(stacks),
        default_stack_size,
    })
}
