//! Giving way: `sleep`, `yield_now`, `idle`, and the hub's clock.

use core::time::Duration;

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::WaitKind;
use crate::hub::hub;
use crate::time::Instant;

/// Parks the current greenlet for `duration` (gevent's `sleep`); other greenlets run meanwhile.
///
/// `sleep(Duration::ZERO)` is [`yield_now`]. Returns early with the reason if the greenlet is
/// killed or a [`Timeout`](crate::Timeout) expires.
pub fn sleep(duration: Duration) -> Result<(), Interrupted> {
    if duration.is_zero() {
        return yield_now();
    }
    sleep_until(hub().now() + duration)
}

/// Parks the current greenlet until `deadline` on the hub's clock.
pub fn sleep_until(deadline: Instant) -> Result<(), Interrupted> {
    let hub = hub();
    let timer = DeadlineTimer::arm(Some(deadline));
    loop {
        hub.park(WaitKind::Sleep)?;
        if timer.expired() {
            return Ok(());
        }
    }
}

/// Lets every other runnable greenlet run once, then continues (gevent's `sleep(0)`): the
/// caller goes to the back of the run queue.
#[inline(always)]
pub fn yield_now() -> Result<(), Interrupted> {
    hub().yield_now()
}

/// Waits until the hub has nothing else to run (gevent's `idle`).
pub fn idle() -> Result<(), Interrupted> {
    hub().idle()
}

/// The current time on the hub's clock.
pub fn now() -> Instant {
    hub().now()
}
