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
//! and call [`init`] once from thread mode. Networking over smoltcp is the next step of this
//! crate; until then the hub has timers and cross-interrupt wake-ups, but no sockets.
//!
//! Hub functions must be called from thread mode only, never from interrupt handlers: an
//! interrupt hands work to the hub through a [`HubHandle`].

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

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
