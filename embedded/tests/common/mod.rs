//! What the embedded tests share: a host clock for the hub.

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
use gevent_embedded::TickSource;

/// The host's monotonic clock as a nanosecond tick source.
#[derive(Clone, Copy)]
pub(crate) struct HostTicks(std::time::Instant);

impl HostTicks {
    /// Ticks counted from now.
    pub(crate) fn start() -> Self {
        HostTicks(std::time::Instant::now())
    }
}

impl TickSource for HostTicks {
    fn ticks(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
    fn ticks_per_second(&self) -> u64 {
        1_000_000_000
    }
}
