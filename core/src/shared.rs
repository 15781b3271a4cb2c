//! Values shared with other threads and interrupt handlers, on targets with and without
//! atomic compare-and-swap.
//!
//! A hub shares a few values with the world outside its thread: its post queue (with
//! [`HubHandle`](crate::HubHandle)s), its poller's [`RemoteWaker`](crate::platform::RemoteWaker),
//! and its blocking detector's [`Heartbeat`](crate::hub::heartbeat::Heartbeat). Where the
//! processor has compare-and-swap they are reference-counted ([`Shared`] is `Arc`). Cortex-M0
//! and M0+ (`thumbv6m-none-eabi`) have atomic loads and stores but no compare-and-swap, so
//! `alloc::sync` does not exist there; there [`Shared`] is a `&'static` reference, which costs
//! nothing to clone and suits the one hub such a program has, installed once and never freed.
//! [`share`] makes one either way.
//!
//! The read-modify-write operations of the post protocol (`remote.rs`) come from
//! `portable-atomic` on those targets, which builds them from critical sections: the program
//! provides a `critical-section` implementation, as `gevent-embedded` already requires.

#[cfg(not(target_has_atomic = "ptr"))]
use alloc::boxed::Box;

/// A value shared with other threads or interrupt handlers: an [`Arc`](alloc::sync::Arc) on
/// targets with compare-and-swap.
#[cfg(target_has_atomic = "ptr")]
pub type Shared<T> = alloc::sync::Arc<T>;

/// A value shared with other threads or interrupt handlers: a `&'static` reference on targets
/// without compare-and-swap (no `Arc` there), where [`share`] leaks what it shares.
#[cfg(not(target_has_atomic = "ptr"))]
pub type Shared<T> = &'static T;

/// Shares `value`: [`Arc::new`](alloc::sync::Arc::new) on targets with compare-and-swap.
#[cfg(target_has_atomic = "ptr")]
pub fn share<T: Send + Sync + 'static>(value: T) -> Shared<T> {
    alloc::sync::Arc::new(value)
}

/// Shares `value` for the rest of the program: it is leaked, which is what a program without
/// compare-and-swap (one hub, never freed) wants. Call it once per value, not per operation;
/// a value that exists from the start can be a `static` instead (`&STATIC` is a `Shared`).
#[cfg(not(target_has_atomic = "ptr"))]
pub fn share<T: Send + Sync + 'static>(value: T) -> Shared<T> {
    Box::leak(Box::new(value))
}

/// Read-modify-write atomics: the processor's, or `portable-atomic`'s critical sections where
/// it has no compare-and-swap (see the [module docs](self)). With loom, its users take loom's.
#[cfg(all(target_has_atomic = "ptr", not(all(test, loom))))]
pub(crate) use core::sync::atomic as rmw;
#[cfg(not(target_has_atomic = "ptr"))]
pub(crate) use portable_atomic as rmw;
