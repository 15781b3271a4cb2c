//! The hosted platform: what every thread's hub is built from on first use.
#![allow(unsafe_code)] // the symbol gevent-core links against

use std::io;

use gevent_core::platform::Platform;

use crate::clock::MonotonicClock;
use crate::config::{self, PollerKind};
use crate::mmap_stack::MmapStacks;
use crate::sys::OsPoller;

/// Builds a hosted platform: the OS poller (epoll or kqueue), `CLOCK_MONOTONIC`, and
/// guard-paged stacks, with the stack-overflow handler installed. Every thread's hub is built
/// from one of these on first use; build one yourself to change a part (say, the stacks) and
/// install it with [`hub::install`](crate::hub::install) before the thread's first gevent call.
///
/// The poller and the default stack size are the process's [configuration](crate::config)'s
/// (`GEVENT_LOOP`, `GEVENT_STACK_SIZE`). Fails with [`io::ErrorKind::InvalidInput`] and the
/// [`ConfigError`](config::ConfigError)'s message if no configuration was installed and the
/// environment holds an invalid value.
pub fn hosted() -> io::Result<Platform> {
    let config = config::try_current()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.clone()))?;
    crate::overflow::install();
    crate::monitor::enable(config);
    Ok(Platform {
        poller: Box::new(open_poller(config.poller())?),
        clock: Box::new(MonotonicClock),
        stacks: Box::new(MmapStacks::default()),
        default_stack_size: config.stack_size(),
    })
}

/// The poller `kind` names; each platform has one backend, which `Default` also names.
fn open_poller(kind: PollerKind) -> io::Result<OsPoller> {
    match kind {
        PollerKind::Default => OsPoller::new(),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        PollerKind::Epoll => OsPoller::new(),
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "freebsd",
            target_os = "dragonfly"
        ))]
        PollerKind::Kqueue => OsPoller::new(),
    }
}

/// Called by gevent-core the first time a thread uses its hub.
#[unsafe(no_mangle)]
fn __gevent_core_0_1_default_platform() -> Platform {
    // A configuration error is the user's to fix, not a failed system call: said as such.
    if let Err(e) = config::try_current() {
        panic!(
            "gevent: could not start this thread's hub: {e} (fix the variable, or call \
             gevent::config::Config::from_env() at start-up to handle the error)"
        );
    }
    match hosted() {
        Ok(platform) => platform,
        Err(e) => panic!("gevent: could not create this thread's hub (its poller): {e}"),
    }
}
