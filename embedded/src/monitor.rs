//! The blocking detector on a chip: a tick interrupt (SysTick, a timer) checks the hub's
//! heartbeat and reports a greenlet that has kept the hub from switching for longer than a
//! budget, as gevent's monitor thread does on a server.
//!
//! ```no_run
//! use core::time::Duration;
//! use gevent_embedded::monitor::TickMonitor;
//!
//! static MONITOR: TickMonitor = TickMonitor::new(Duration::from_millis(50));
//!
//! // In thread mode, after `init`:
//! MONITOR.attach().expect("one monitor per hub");
//!
//! // In the SysTick handler, with the firmware's clock:
//! # let now = gevent_embedded::time::Instant::from_nanos(0);
//! if let Some(report) = MONITOR.check(now) {
//!     // Print it (semihosting, defmt, a UART): "greenlet #3 'parser' (spawned at ...)".
//!     let _ = report;
//! }
//! ```
//!
//! The hub publishes each switch in the heartbeat with a few plain stores; the check reads it
//! without stopping the hub. A hub waiting in its poller is idle, not blocked. Each blocked
//! episode is reported once, and at most [`MAX_REPORTS_PER_MINUTE`] a minute: the episodes
//! past the limit are counted and the next report says how many.

use core::cell::RefCell;
use core::fmt;
use core::time::Duration;

use critical_section::Mutex;
use gevent_core::hub::heartbeat::{self, AlreadyAttached, BlockingCheck, Heartbeat, Running};
use gevent_core::shared::{self, Shared};
use gevent_core::time::Instant;

/// At most this many blocked episodes are reported in any minute (as on servers).
pub const MAX_REPORTS_PER_MINUTE: usize = 10;

const MINUTE: Duration = Duration::from_secs(60);

/// A blocking detector run from a tick interrupt; see the [module docs](self). Meant for a
/// `static`.
pub struct TickMonitor {
    budget: Duration,
    heartbeat: Mutex<RefCell<Option<Shared<Heartbeat>>>>,
    state: Mutex<RefCell<State>>,
}

struct State {
    check: Option<BlockingCheck>,
    /// When the last reports were made, oldest first, for the rate limit.
    recent: [Option<Instant>; MAX_REPORTS_PER_MINUTE],
    suppressed: usize,
}

impl fmt::Debug for TickMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickMonitor").field("budget", &self.budget).finish_non_exhaustive()
    }
}

/// A greenlet that kept the hub from switching for longer than the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlockingReport {
    /// The greenlet that runs: its id, its name if it is a `&'static str`, its spawn site.
    pub greenlet: Running,
    /// How long the hub had gone without switching when the check noticed.
    pub blocked_for: Duration,
    /// The budget it went over.
    pub budget: Duration,
    /// Blocked episodes not reported since the last report, for the rate limit.
    pub suppressed: usize,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gevent: the hub has not switched greenlets for {:?} (max blocking time {:?}): {} \
             keeps it busy",
            self.blocked_for, self.budget, self.greenlet
        )?;
        if self.suppressed > 0 {
            write!(f, " ({} more blocked episodes were not reported)", self.suppressed)?;
        }
        Ok(())
    }
}

impl TickMonitor {
    /// A monitor that reports a hub not switching for `budget` or longer. Check at least every
    /// `budget / 2` for the report to come within 1.5 budgets.
    pub const fn new(budget: Duration) -> Self {
        TickMonitor {
            budget,
            heartbeat: Mutex::new(RefCell::new(None)),
            state: Mutex::new(RefCell::new(State {
                check: None,
                recent: [None; MAX_REPORTS_PER_MINUTE],
                suppressed: 0,
            })),
        }
    }

    /// Makes the current hub publish its switches for this monitor. Call it once, from thread
    /// mode, after [`init`](crate::init) or [`init_net`](crate::init_net); it allocates the
    /// heartbeat (about 1.3 KB on a 32-bit chip, mostly the table of greenlet names).
    ///
    /// Fails if the hub already has a heartbeat.
    pub fn attach(&self) -> Result<(), AlreadyAttached> {
        let beat = shared::share(Heartbeat::new());
        heartbeat::attach(Shared::clone(&beat))?;
        // Dropped on return, outside the critical section.
        let _previous =
            critical_section::with(|cs| self.heartbeat.borrow_ref_mut(cs).replace(beat));
        Ok(())
    }

    /// Looks at the hub's heartbeat at `now` (the hub's clock): a report the first time the
    /// hub is found blocked for the budget in an episode, if the rate limit admits one. From
    /// the tick interrupt's handler (or anywhere); allocates nothing and never blocks. `None`
    /// until [`attach`](Self::attach).
    pub fn check(&self, now: Instant) -> Option<BlockingReport> {
        critical_section::with(|cs| {
            let heartbeat = self.heartbeat.borrow_ref(cs);
            let heartbeat = heartbeat.as_ref()?;
            let mut state = self.state.borrow_ref_mut(cs);
            let check = state.check.get_or_insert_with(|| BlockingCheck::new(now));
            let blocked = check.check(heartbeat, now, self.budget)?;
            let suppressed = state.admit(now)?;
            Some(BlockingReport {
                greenlet: blocked.running,
                blocked_for: blocked.blocked_for,
                budget: self.budget,
                suppressed,
            })
        })
    }
}

impl State {
    /// `Some(episodes suppressed since the last report)` if a report may be made at `now`.
    fn admit(&mut self, now: Instant) -> Option<usize> {
        let recent = self
            .recent
            .iter()
            .flatten()
            .filter(|&&t| now.saturating_duration_since(t) < MINUTE)
            .count();
        if recent >= MAX_REPORTS_PER_MINUTE {
            self.suppressed += 1;
            return None;
        }
        // The oldest slot (or an empty one) takes this report.
        let slot = self.recent.iter_mut().min_by_key(|t| t.map(Instant::as_nanos)).expect("slots");
        *slot = Some(now);
        Some(core::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_reports_a_minute_and_the_next_one_counts_those_suppressed() {
        let mut state =
            State { check: None, recent: [None; MAX_REPORTS_PER_MINUTE], suppressed: 0 };
        let at = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        for i in 0..MAX_REPORTS_PER_MINUTE as u64 {
            assert_eq!(state.admit(at(100 + i)), Some(0));
        }
        assert_eq!(state.admit(at(130)), None);
        assert_eq!(state.admit(at(159)), None);
        // The first report is a minute old: room for one, which says two were dropped.
        assert_eq!(state.admit(at(160)), Some(2));
        assert_eq!(state.admit(at(160)), None);
    }
}
