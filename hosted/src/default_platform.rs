//! The hosted platform: what every thread's hub is built from on first use.
#![allow(unsafe_code)] // the symbol gevent-core links against

use gevent_core::platform::Platform;

use crate::clock::MonotonicClock;
use crate::mmap_stack::MmapStacks;
use crate::sys::OsPoller;

/// Builds a hosted platform: the OS poller (epoll or kqueue), `CLOCK_MONOTONIC`, and
/// guard-paged stacks, with the stack-overflow handler installed. Every thread's hub is built
/// from one of these on first use; build one yourself to change a part (say, the stacks) and
/// install it with [`hub::install`](crate::hub::install) before the thread's first gevent call.
pub fn hosted() -> std::io::Result<Platform> {
    crate::overflow::install();
    Ok(Platform {
        poller: Box::new(OsPoller::new()?),
        clock: Box::new(MonotonicClock),
        stacks: Box::new(MmapStacks::default()),
        default_stack_size: gevent_core::stack::DEFAULT_STACK_SIZE,
    })
}

/// Called by gevent-core the first time a thread uses its hub.
#[unsafe(no_mangle)]
fn __gevent_core_0_1_default_platform() -> Platform {
    match hosted() {
        Ok(platform) => platform,
        Err(e) => panic!("gevent: could not create this thread's hub (its poller): {e}"),
    }
}
