//! `TickClock`: the hub's clock over a firmware's tick counter.

use gevent_core::platform::Clock;
use gevent_core::time::Instant;

/// A monotonic tick counter the firmware provides (a SysTick count extended to 64 bits, a
/// timer peripheral, an RTC).
pub trait TickSource {
    /// Ticks since boot; never goes backwards.
    fn ticks(&self) -> u64;
    /// How many ticks make a second.
    fn ticks_per_second(&self) -> u64;
}

/// Converts a [`TickSource`] into the hub's nanosecond [`Instant`]s.
#[derive(Clone, Copy, Debug)]
pub struct TickClock<S> {
    source: S,
}

impl<S: TickSource> TickClock<S> {
    /// A clock reading `source`.
    pub const fn new(source: S) -> Self {
        TickClock { source }
    }

    /// The tick at which `instant` falls (rounded up, so that waiting until it never wakes
    /// early).
    pub fn ticks_at(&self, instant: Instant) -> u64 {
        let hz = u128::from(self.source.ticks_per_second());
        let ticks = (u128::from(instant.as_nanos()) * hz).div_ceil(1_000_000_000);
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

impl<S: TickSource> Clock for TickClock<S> {
    fn now(&self) -> Instant {
        let hz = u128::from(self.source.ticks_per_second());
        let nanos = u128::from(self.source.ticks()) * 1_000_000_000 / hz;
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
