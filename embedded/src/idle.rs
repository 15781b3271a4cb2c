//! `IdlePoller`: the hub's way to wait on a board without sockets: until the next timer, or
//! until an interrupt wakes it (through an [`isr`](crate::isr) signal or a `HubHandle`).
//!
//! # No lost wake-ups
//!
//! The poller looks at its wake flag and at the signals greenlets wait for, and decides to
//! sleep, inside one critical section, in which it also calls the [`WaitHook`]. An interrupt
//! that comes after the look therefore stays pending instead of being handled before the
//! hook's `wfi`, and `wfi` returns at once for a pending interrupt even while interrupts are
//! masked; the critical section ends, the handler runs, and the next look sees what it did.
//! With the look outside, a handler landing between the look and `wfi` ran first and `wfi`
//! then slept until the next interrupt (a SysTick later, or forever with a tickless wait).

use core::any::Any;
use core::time::Duration;

// Where the chip has no compare-and-swap (Cortex-M0/M0+), the wake flag's swap comes from
// portable-atomic, built from critical sections.
#[cfg(target_has_atomic = "ptr")]
use core::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(target_has_atomic = "ptr"))]
use portable_atomic::{AtomicBool, Ordering};

use gevent_core::platform::{Clock, Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use gevent_core::shared::{self, Shared};
use gevent_core::time::Instant;

use crate::isr::Signals;

/// How the firmware waits: typically `wfi` until the tick interrupt (or any other) fires.
///
/// # Contract
///
/// The hub calls the hook inside a critical section (`critical_section::with`: interrupts
/// masked on a single-core chip), right after finding nothing to do. The hook must return when
/// an interrupt becomes pending, without unmasking interrupts or waiting for a handler to
/// have run: a handler cannot run before the hook returns. `wfi` (Arm and RISC-V) does just
/// that; so does `wfe` after `sev`-ing handlers. A hook that polls a flag set by a handler, or
/// sleeps without waking on interrupts, would never return.
pub trait WaitHook {
    /// Waits a little: until an interrupt is pending, or at most until `deadline` if the
    /// firmware can arm a timer for it (whose interrupt then wakes `wfi`). Returning early is
    /// fine: the hub calls again while time remains.
    fn wait(&mut self, deadline: Option<Instant>);
}

impl<F: FnMut(Option<Instant>)> WaitHook for F {
    fn wait(&mut self, deadline: Option<Instant>) {
        self(deadline)
    }
}

/// The pollers' wake flag: what a [`HubHandle`](gevent_core::HubHandle) or a raised signal sets,
/// and what the look before sleeping takes.
#[derive(Debug, Default)]
pub(crate) struct Flag(pub(crate) AtomicBool);

impl RemoteWaker for Flag {
    fn wake(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A [`Poller`] whose only sources are [`isr`](crate::isr) signals: it waits with the
/// firmware's [`WaitHook`] until the deadline passes, a signal a greenlet waits for is raised,
/// or a [`HubHandle`](gevent_core::HubHandle) wakes it.
pub struct IdlePoller<C, W> {
    clock: C,
    wait: W,
    woken: Shared<Flag>,
    signals: Signals,
}

impl<C, W> core::fmt::Debug for IdlePoller<C, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdlePoller").finish_non_exhaustive()
    }
}

impl<C: Clock, W: WaitHook> IdlePoller<C, W> {
    /// A poller that reads `clock` and waits with `wait`. On chips without compare-and-swap
    /// its wake flag (one byte) is never freed: see [`gevent_core::shared`].
    pub fn new(clock: C, wait: W) -> Self {
        IdlePoller {
            clock,
            wait,
            woken: shared::share(Flag::default()),
            signals: Signals::default(),
        }
    }
}

const NO_SOURCES: PollError = PollError {
    operation: "register (this board's poller watches interrupt signals only)",
    code: None,
};

/// One look before sleeping, in a critical section with the sleep itself (see the module
/// docs): true if `woken` was set or `expired` says the deadline passed; otherwise calls
/// `sleep`, whose `wfi` returns for an interrupt that came after the look.
pub(crate) fn sleep_unless_woken(
    woken: &AtomicBool,
    signals: &mut Signals,
    ready: &mut dyn FnMut(Token, Readiness),
    expired: impl FnOnce() -> bool,
    sleep: impl FnOnce(),
) -> bool {
    critical_section::with(|_| {
        // Both looks, not `||`: a wake consumed while a signal is reported is not lost, since
        // the hub looks at everything after this poll.
        let raised = signals.report_raised(ready);
        if woken.swap(false, Ordering::AcqRel) || raised || expired() {
            return true;
        }
        sleep();
        false
    })
}

impl<C: Clock + 'static, W: WaitHook + 'static> Poller for IdlePoller<C, W> {
    fn register(&mut self, source: &dyn Any, token: Token, _: Interest) -> Result<u64, PollError> {
        let waker: Shared<dyn RemoteWaker> = <Shared<Flag>>::clone(&self.woken);
        self.signals.register(source, token, &waker).ok_or(NO_SOURCES)
    }

    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        if self.signals.deregister(source) { Ok(()) } else { Err(NO_SOURCES) }
    }

    fn readiness_cleared(&mut self, source: &dyn Any, _: Interest) {
        self.signals.readiness_cleared(source);
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        let deadline = timeout.map(|t| self.clock.now() + t);
        let (clock, wait) = (&self.clock, &mut self.wait);
        loop {
            let expired = || deadline.is_some_and(|d| clock.now() >= d);
            if sleep_unless_woken(&self.woken.0, &mut self.signals, ready, expired, || {
                wait.wait(deadline)
            }) {
                return Ok(());
            }
        }
    }

    fn remote_waker(&self) -> Shared<dyn RemoteWaker> {
        <Shared<Flag>>::clone(&self.woken)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
