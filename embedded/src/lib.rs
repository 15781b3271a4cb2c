//! gevent for Rust on bare metal: the same greenlets, hub, timers, timeouts, queues and locks
//! as on servers, driven by what a firmware provides: a tick counter, an idle hook, and stack
//! memory.
//!
//! This crate is `#![no_std]`; the core needs an allocator (`alloc`) for greenlet headers and
//! its collections. Bring a board up in three steps:
//!
//! 1. give the hub a clock ([`TickClock`] over your tick counter),
//! 2. give it stacks ([`StaticStacks`] over a `static` buffer),
//! 3. give it a way to wait ([`IdlePoller`] with your "sleep until" hook, `wfi` say),
//!
//! and call [`init`] once from thread mode; or, with a smoltcp interface, [`init_net`], which
//! makes the hub's poller drive the interface so that [`net`]'s `TcpListener`, `TcpStream`
//! (embedded-io `Read`/`Write`) and `UdpSocket` block greenlets, not the chip.
//!
//! # Memory
//!
//! Besides the stacks the firmware gives, the core allocates (with the firmware's global
//! allocator): a header per greenlet (221 bytes per parked greenlet on a Cortex-M3, measured
//! by the example firmware, including the allocator's overhead), the hub's run queue, timer
//! heap and tables (grown to the peak number of greenlets, timers and sockets, then reused),
//! and a box for the rarer parts of a greenlet (a name, links, joiners, greenlet-locals) when it
//! has any. smoltcp sockets get their buffers when they are made; nothing is allocated per
//! packet.
//!
//! # Targets
//!
//! Built by the test matrix for `thumbv7m-none-eabi` (and run there, under QEMU),
//! `thumbv7em-none-eabi` and `riscv32imac-unknown-none-elf`. On `thumbv7em-none-eabihf`
//! (Cortex-M4F/M7F) corosensei's context switch lists D16–D31 among its clobbers (through
//! `clobber_abi("C")`) and the compiler warns that clobbering reserved registers may be
//! undefined behaviour. It is not, here: those registers do not exist on an FPv4-SP/FPv5-D16
//! FPU, so no value can live in them and nothing in the switch touches them; the registers
//! that exist are handled correctly (d8–d15, the callee-saved ones, are clobbered explicitly,
//! so the compiler saves them around every switch). The target therefore builds and should work,
//! with that warning; it is not yet run under an emulator by the test matrix.
//!
//! # Features
//!
//! - `defmt`: logs stack exhaustion, refused connects and freed sockets through `defmt`.
//!
//! Hub functions must be called from thread mode only, never from interrupt handlers: an
//! interrupt hands work to the hub through a [`HubHandle`].

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

#[macro_use]
mod fmt;

mod clock;
mod idle;
pub mod net;
mod stacks;

pub use clock::{TickClock, TickSource};
pub use gevent_core::*;
pub use idle::{IdlePoller, WaitHook};
pub use stacks::StaticStacks;

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
    let poller = net::NetPoller::new(iface, drive, clock.clone(), wait);
    let default_stack_size = stacks.stack_size();
    hub::install(platform::Platform {
        poller: Box::new(poller),
        clock: Box::new(clock),
        stacks: Box::new(stacks),
        default_stack_size,
    })
}

/// Installs the program's hub, built from a clock, a stack source and an idle hook.
///
/// Call it once, from thread mode, before any other hub function.
pub fn init(
    clock: impl platform::Clock + Clone + 'static,
    stacks: StaticStacks,
    wait: impl WaitHook + 'static,
) -> Result<(), hub::AlreadyInstalled> {
    let poller = IdlePoller::new(clock.clone(), wait);
    let default_stack_size = stacks.stack_size();
    hub::install(platform::Platform {
        poller: Box::new(poller),
        clock: Box::new(clock),
        stacks: Box::new(stacks),
        default_stack_size,
    })
}
