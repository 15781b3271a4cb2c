//! The portable core of gevent for Rust: greenlets, the hub that runs them, timers, timeouts.
//!
//! This crate is `#![no_std]` + `alloc` and knows nothing of sockets, files, threads or clocks:
//! it sees the world through the [`platform`] traits ([`Poller`](platform::Poller),
//! [`Clock`](platform::Clock), [`StackSource`](stack::StackSource)). Applications depend on
//! `gevent` (hosted: epoll/kqueue, sockets) or `gevent-embedded` (smoltcp), which re-export this
//! API and provide the platform.
//!
//! # The model
//!
//! A greenlet is a stackful coroutine. Each thread has one hub, created on first use; the thread's
//! own stack is the *main greenlet*. Blocking calls (`sleep`, `join`, I/O) park the caller and
//! run other greenlets until it is woken; they return `Result`, and the error says why a call
//! stopped early ([`Interrupted`]: killed, timed out, or waiting forever).
//!
//! ```
//! # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
//! # #[cfg(not(miri))] // Miri cannot switch stacks
//! # gevent_core::sim::run(|| {
//! use core::time::Duration;
//! use gevent::{sleep, spawn};
//!
//! let workers: Vec<_> = (1..=3u64)
//!     .map(|i| spawn(move || -> gevent::Result<u64> {
//!         sleep(Duration::from_millis(10 * i))?;
//!         Ok(i * i)
//!     }))
//!     .collect();
//! let squares: Vec<u64> = workers.iter().map(|g| g.get().unwrap()).collect();
//! assert_eq!(squares, [1, 4, 9]);
//! # });
//! ```
//!
//! # Scheduling
//!
//! Cooperative, one greenlet at a time per hub; the order is documented in [`hub`] and pinned by
//! tests: spawned greenlets start in FIFO order once the spawner yields, `yield_now` goes to the
//! back of the run queue, and timers and I/O are collected at least every
//! [`hub::CHECK_EVERY`] switches.
//!
//! # Caveats
//!
//! - A greenlet that computes without blocking holds the whole thread: call [`yield_now`] in
//!   long loops.
//! - A thread-blocking call (a `std` socket, `std::thread::sleep`) blocks every greenlet of the
//!   thread; use the cooperative versions.
//! - A greenlet's stack has a fixed size ([`stack::DEFAULT_STACK_SIZE`] unless set with
//!   [`Builder::stack_size`]); on hosted platforms overflow is caught by a guard page and ends the
//!   process with a message naming the greenlet.
//! - Kills and timeouts arrive only at blocking calls, as `Err` values: code that discards
//!   such an error keeps running, but a kill is sticky, so its next blocking call fails again,
//!   and a timeout swallowed inside an inner `Timeout`'s scope is reported again after it.
//! - A blocking call made while the thread unwinds from a panic (in a destructor) fails at once
//!   with [`Interrupted::Unwinding`] instead of switching: the panic count is per thread, and
//!   every other greenlet would see `std::thread::panicking()` true meanwhile.
//!
//! # Features
//!
//! - `std`: one hub per thread, panics caught at greenlet boundaries and reported with the
//!   greenlet's name and spawn site.
//! - `default-platform`: hubs are created on first use with the platform the `gevent` crate
//!   links in.
//! - `sim`: the `sim` module, a simulated platform with a virtual clock for deterministic tests.
//! - `tracing`: a greenlet runs inside the `tracing` span that was current where it was
//!   spawned (entered whenever it is switched to, exited whenever it is switched from), and
//!   its spawn and end are `tracing` events (TRACE and DEBUG, target `gevent`). A span
//!   entered with a guard inside a greenlet stays entered while the greenlet waits (a guard
//!   cannot know about the switch): use [`Span::in_scope`] around code that does not block, or
//!   spawn the blocking part in a greenlet of its own.
//! - `log`: the reports the library cannot return as errors (a greenlet's panic, a greenlet
//!   abandoned at shutdown, a greenlet without a stack) go through `log::error!` with target
//!   `gevent` instead of stderr; with no logger installed they are dropped, as every record is.
//!
//! [`Span::in_scope`]: https://docs.rs/tracing/0.1/tracing/struct.Span.html#method.in_scope
//!
//! MSRV: Rust 1.86.

#![no_std]
#![deny(unsafe_code)]
// These keep the crate honestly `no_std`: with `std` on, nothing reaches for std by habit.
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod error;
pub mod event;
pub mod events;
mod greenlet;
pub mod headers;
pub mod hub;
pub mod local;
pub mod lock;
mod panic;
pub mod platform;
pub mod pool;
pub mod queue;
mod remote;
#[cfg(feature = "std")]
mod report;
pub mod shared;
#[cfg(feature = "sim")]
pub mod sim;
mod slab;
mod sleep;
pub mod stack;
mod sync;
pub mod time;
mod timeout;
mod timer;
pub mod tree;
pub mod wait;
mod wait_list;

pub use error::{
    AsInterrupted, Error, FailureKind, GetError, GreenletError, Interrupted, JoinAllError,
    LoopExit, ParkedGreenlet, Result, TimeoutId,
};
pub use greenlet::{
    AsGreenlet, Builder, Greenlet, GreenletRef, Greenlets, JoinAll, LinkId, Unflattened, current,
    joinall, killall, killall_timeout, spawn, spawn_later,
};
pub use hub::{run, shutdown};
pub use remote::{HubHandle, PendingPost, PostError};
pub use sleep::{idle, now, sleep, sleep_unref, sleep_until, wait, wait_timeout, yield_now};
pub use timeout::{Timeout, shield, with_timeout};

/// A `Send` handle to the current thread's hub, for other threads to post work to it.
pub fn hub_handle() -> HubHandle {
    hub::hub().handle()
}

#[doc(hidden)]
pub mod __private {
    //! Hooks for the platform crates; not part of the public API.

    pub use crate::hub::fault_context::{FaultingGreenlet, with_faulting_greenlet};
    #[cfg(feature = "std")]
    pub use crate::panic::catch as catch_panic;
    #[cfg(feature = "std")]
    pub use crate::report::error as report_error;

    /// Calls the event subscribers of this thread's hub with `event` (for the blocking detector
    /// of a platform crate); see [`crate::events`].
    pub fn emit_event(event: &crate::events::Event) {
        crate::events::notify(event);
    }

    /// Makes every hub created from now on get its blocking-detector heartbeat from `hook`
    /// (called on the new hub's thread, with a handle to post to the hub); the first call
    /// wins. For the hosted monitor.
    #[cfg(feature = "std")]
    pub fn set_new_hub_hook(hook: crate::hub::heartbeat::NewHubHook) {
        let _ = crate::hub::heartbeat::NEW_HUB_HOOK.set(hook);
    }

    /// The name of the live greenlet `id` of this thread's hub (a scan of the live greenlets:
    /// for reports, not hot paths).
    pub fn greenlet_name(id: u64) -> Option<alloc::borrow::Cow<'static, str>> {
        let hub = crate::hub::try_hub()?;
        if hub.current_task().id == id {
            return Some(hub.current_task().name());
        }
        hub.live_greenlets().iter().map(|t| t.task()).find(|t| t.id == id).map(|t| t.name())
    }
}
