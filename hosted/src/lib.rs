//! gevent for Rust on Linux, macOS and the BSDs: greenlets, an implicit hub per thread, and
//! blocking-style calls that switch to other greenlets instead of blocking the thread.
//!
//! This crate re-exports the portable API of [`gevent_core`] and provides the platform under
//! it: an epoll (Linux) or kqueue (macOS, BSD) poller, `CLOCK_MONOTONIC`, and guard-paged stacks
//! whose overflow ends the process with a message naming the greenlet. Each thread gets its hub
//! the first time it uses one.
//!
//! ```
//! use std::time::Duration;
//! use gevent::{sleep, spawn, Timeout, Interrupted};
//!
//! let fast = spawn(|| -> gevent::Result<&str> { sleep(Duration::from_millis(10))?; Ok("fast") });
//! let slow = spawn(|| -> gevent::Result<&str> { sleep(Duration::from_secs(60))?; Ok("slow") });
//! assert_eq!(fast.get(), Ok("fast"));
//!
//! let timeout = Timeout::start(Duration::from_millis(20));
//! assert_eq!(slow.join(), Err(Interrupted::TimedOut(timeout.id())));
//! slow.kill().unwrap();
//! assert!(slow.killed()); // a plain kill is a cancellation: no error()
//! ```
//!
//! # gevent's names and ours
//!
//! | gevent | here |
//! |---|---|
//! | `gevent.spawn`, `spawn_later`, `Greenlet` | [`spawn`], [`spawn_later`], [`Builder`], [`Greenlet`] |
//! | `Greenlet.join/get/kill/link/ready/successful/dead/name` | the same methods |
//! | `joinall`, `killall` | [`joinall`], [`JoinAll`], [`killall`] |
//! | `sleep`, `sleep(0)`, `idle`, `getcurrent` | [`sleep`], [`yield_now`], [`idle`], [`current`] |
//! | `Timeout`, `with_timeout` | [`Timeout`] (a guard), [`with_timeout`] |
//! | `GreenletExit`, `Timeout` exceptions, `LoopExit` | [`Interrupted`]'s variants |
//! | `gevent.event`, `gevent.queue`, `gevent.lock` | [`event`], [`queue`], [`lock`] |
//! | `gevent.pool`, `gevent.wait`/`iwait`, `gevent.local` | [`pool`], [`wait`], [`local`] |
//!
//! # Ending greenlets
//!
//! A thread's greenlets are ended from an explicit point, while the thread is alive: run its
//! gevent code inside [`run`], which kills the greenlets still alive when the function returns
//! and waits for them, so that their destructors run (or call [`shutdown`] at the end). A
//! thread that exits with greenlets alive does not resume them (at thread exit the thread's
//! thread-locals are being destroyed, and a greenlet parked inside one would read freed
//! memory): it leaks them, and says so once on stderr.
//!
//! ```
//! use std::time::Duration;
//! use gevent::{sleep, spawn};
//!
//! fn main() {
//!     gevent::run(|| {
//!         let _ticker = spawn(|| loop {
//!             if sleep(Duration::from_millis(10)).is_err() {
//!                 break; // killed when `run`'s function returns
//!             }
//!         });
//!         sleep(Duration::from_millis(25)).unwrap();
//!     });
//! }
//! ```
//!
//! # Memory maps
//!
//! Each greenlet holding a stack (one that has started and not finished) uses two memory maps
//! (the stack and its guard page). Linux's default `vm.max_map_count` of 65,530 therefore allows
//! about 32,000 such greenlets; beyond that a greenlet fails to start with an error that says
//! so. Raise the limit with `sysctl -w vm.max_map_count=262144` for more.
//!
//! MSRV: Rust 1.86.

#![deny(unsafe_code)]

mod clock;
mod default_platform;
mod mmap_stack;
mod overflow;
mod sys;

pub use clock::MonotonicClock;
pub use default_platform::platform;
pub use gevent_core::*;
pub use mmap_stack::MmapStacks;
