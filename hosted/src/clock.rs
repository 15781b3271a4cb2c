//! `MonotonicClock`: `CLOCK_MONOTONIC`, read through the vDSO where the OS has one.

use gevent_core::platform::Clock;
use gevent_core::time::Instant;
use rustix::time::{ClockId, clock_gettime};

/// The hub's clock on hosted platforms.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        let t = clock_gettime(ClockId::Monotonic);
        Instant::from_nanos(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
    }
}
