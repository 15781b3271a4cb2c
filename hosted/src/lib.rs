//! gevent for Rust on Linux, macOS and the BSDs: greenlets, an implicit hub per thread, and
//! blocking-style calls that switch to other greenlets instead of blocking the thread.
//!
//! This crate re-exports the portable API of `gevent-core` and provides the platform under it
//! ([`platform::hosted`]): an epoll (Linux) or kqueue (macOS, BSD) poller, `CLOCK_MONOTONIC`,
//! and guard-paged stacks whose overflow ends the process with a message naming the greenlet.
//! Each thread gets its hub the first time it uses one.
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
//! | `Greenlet.join/get/kill/link/ready/successful/dead/name` | the same methods, plus [`Greenlet::kill_with`], [`Greenlet::killed`], `get_timeout`, `try_get` |
//! | `joinall`, `killall` | [`joinall`], [`JoinAll`], [`killall`] |
//! | `sleep`, `sleep(0)`, `sleep(ref=False)`, `idle`, `getcurrent` | [`sleep`], [`yield_now`], [`sleep_unref`], [`idle`], [`current`] |
//! | `gevent.wait()` (the whole hub), ending the hub | [`wait()`](fn@wait), [`wait_timeout`], [`run`], [`shutdown`] |
//! | `Timeout`, `with_timeout` | [`Timeout`] (a guard), [`with_timeout`] |
//! | `GreenletExit`, `Timeout` exceptions, `LoopExit` | [`Interrupted`]'s variants; every error converts into [`Error`] for `?` |
//! | `gevent.event`, `gevent.queue`, `gevent.lock` | [`event`], [`queue`], [`lock`] |
//! | `gevent.pool`, `gevent.wait(objects)`/`iwait`, `gevent.local` | [`pool`], [`wait`](mod@wait), [`local`] |
//! | `FileObjectThread`, `FileObjectPosix` over stdin/stdout | [`fs::File`], [`os::stdin`], [`os::stdout`] |
//! | `gevent.socket`, `gevent.os.nb_read`/`nb_write`, `wait_read`/`wait_write` | [`net`], [`os::pipe`], [`io::wait_readable`], [`io::wait_writable`] |
//! | `gevent.server.StreamServer`, `DatagramServer` | [`server::StreamServer`], [`server::DatagramServer`] |
//! | `gevent.subprocess.Popen`, `wait(timeout)`, `communicate`, `check_output` | [`process::Command`], [`process::Child`] (`wait_timeout`, `communicate`), [`process::Command::output`] |
//! | `gevent.threadpool.ThreadPool`, `spawn` on it | [`threadpool::ThreadPool`], [`threadpool::spawn_blocking`] |
//! | `gevent.resolver` (thread, ares), `gethostbyname`, `getaddrinfo`, `gethostbyaddr` | [`dns`], [`dns::ThreadResolver`], [`dns::NativeResolver`] |
//! | `gevent.select.select`, `selectors.DefaultSelector` | [`select::select`], [`select::Selector`] |
//! | `gevent.signal_handler`, waiting for a signal | [`signal::signal_handler`], [`signal::wait`] |
//! | `Greenlet.add_spawn_callback`/`remove_spawn_callback`, `gevent.events` subscribers | [`events::add_spawn_callback`], [`events::remove_spawn_callback`], [`events::subscribe`] (per thread) |
//! | `gevent.config`, its `GEVENT_*` variables | [`config::Config`], [`config::current`] |
//! | `gevent.util.GreenletTree`, `format_run_info`, `print_run_info` | [`debug::GreenletTree`], [`debug::all_hubs`], [`debug::print_tree`], [`debug::dump_on_signal`] |
//! | the monitor thread (`monitor_thread`, `max_blocking_time`, `max_memory`), `EventLoopBlocked`, `MemoryUsageThresholdExceeded`/`MemoryUsageUnderThreshold` | [`monitor`], [`events::Event::BlockingDetected`], [`events::Event::MemoryThresholdExceeded`]/[`MemoryUsageUnderThreshold`](events::Event::MemoryUsageUnderThreshold) |
//! | `gevent.ssl` (`SSLContext.wrap_socket`, `SSLSocket`) | [`tls::TlsConnector`](tls/struct.TlsConnector.html), [`tls::TlsAcceptor`](tls/struct.TlsAcceptor.html), [`tls::TlsStream`](tls/struct.TlsStream.html) (feature `tls`, on by default) |
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
pub mod config;
pub mod debug;
mod default_platform;
pub mod dns;
mod errno;
pub mod fs;
#[cfg(feature = "http")]
pub mod http;
pub mod io;
mod mmap_stack;
pub mod monitor;
pub mod net;
pub mod os;
mod overflow;
mod pipe_end;
pub mod process;
pub mod select;
pub mod server;
pub mod signal;
mod sys;
#[cfg(feature = "tls")]
pub mod tls;

pub use gevent_core::*;

pub mod threadpool;

pub mod platform {
    //! What a hub is built from: the core's traits, and their hosted implementations.
    //!
    //! Applications rarely need this module: each thread's hub is built from [`hosted()`] on
    //! first use.

    pub use crate::clock::MonotonicClock;
    pub use crate::default_platform::hosted;
    pub use crate::mmap_stack::MmapStacks;
    pub use gevent_core::platform::*;
}

/// The README's examples, compiled and run as doctests so that the front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
