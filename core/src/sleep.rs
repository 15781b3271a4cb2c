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
    sleep_on(deadline, DeadlineTimer::arm(Some(deadline)))
}

/// [`sleep`] whose timer does not keep the hub alive (gevent's `sleep(seconds, ref=False)`).
///
/// While the only things left that could wake anyone are such timers, the hub considers itself
/// done: a main greenlet waiting on something else gets [`Interrupted::LoopExit`] instead of
/// waiting for them, and [`wait`] returns. A background greenlet that polls something
/// periodically uses it so as not to keep the program alive. A zero duration yields.
pub fn sleep_unref(duration: Duration) -> Result<(), Interrupted> {
    if duration.is_zero() {
        return yield_now();
    }
    let deadline = hub().now() + duration;
    sleep_on(deadline, DeadlineTimer::arm_unref(Some(deadline)))
}

fn sleep_on(deadline: Instant, timer: DeadlineTimer) -> Result<(), Interrupted> {
    let hub = hub();
    loop {
        hub.park(WaitKind::Sleep(deadline))?;
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

/// Waits until every other greenlet has finished, or none of them can ever run again (gevent's
/// `gevent.wait()` without objects: run the hub until it has nothing left to do).
///
/// Timers made with [`sleep_unref`] do not count as something left to do. Called from a
/// greenlet other than main, it waits for every other greenlet alive at the time of the call.
/// For waiting on particular objects, see [`wait::wait`](crate::wait::wait).
pub fn wait() -> Result<(), Interrupted> {
    wait_until(None).map(|_| ())
}

/// [`wait`] for at most `timeout`; `Ok(true)` if the hub was done in time.
pub fn wait_timeout(timeout: Duration) -> Result<bool, Interrupted> {
    wait_until(Some(hub().now() + timeout))
}

fn wait_until(deadline: Option<Instant>) -> Result<bool, Interrupted> {
    let hub = hub();
    if !hub.current_task().is_main {
        let me = hub.current_task().id;
        let others: alloc::vec::Vec<_> = hub
            .live_greenlets()
            .into_iter()
            .filter(|t| t.task().id != me)
            .map(crate::GreenletRef::from_task)
            .collect();
        let mut join = crate::JoinAll::new(&others);
        if let Some(deadline) = deadline {
            join = join.timeout(deadline.saturating_duration_since(hub.now()));
        }
        return match join.wait() {
            Ok(done) => Ok(done.len() == others.len()),
            Err(crate::JoinAllError::Interrupted(why)) => Err(why),
            Err(crate::JoinAllError::Failed { .. }) => unreachable!("raise_error is off"),
        };
    }
    // Main's own deadline must not keep the hub alive, or it would always run out.
    if hub.live_count() == 0 {
        return Ok(true);
    }
    let timer = DeadlineTimer::arm_unref(deadline);
    hub.park_main_until_all_finished()?;
    // Otherwise woken because every other greenlet finished or none can ever run again.
    Ok(!timer.expired() || hub.live_count() == 0)
}

/// The current time on the hub's clock.
pub fn now() -> Instant {
    hub().now()
}
