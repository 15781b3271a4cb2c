//! `IdlePoller`: the hub's way to wait on a board without sockets: until the next timer, or
//! until an interrupt wakes it through a `HubHandle`.

use alloc::sync::Arc;
use core::any::Any;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use gevent_core::platform::{Clock, Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use gevent_core::time::Instant;

/// How the firmware waits: typically `wfi` until the tick interrupt (or any other) fires.
pub trait WaitHook {
    /// Waits a little: until the next interrupt, or at most until `deadline` if the firmware
    /// can arm a timer for it. Returning early is fine: the hub calls again while time remains.
    fn wait(&mut self, deadline: Option<Instant>);
}

impl<F: FnMut(Option<Instant>)> WaitHook for F {
    fn wait(&mut self, deadline: Option<Instant>) {
        self(deadline)
    }
}

#[derive(Debug, Default)]
struct Flag(AtomicBool);

impl RemoteWaker for Flag {
    fn wake(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A [`Poller`] with no I/O sources: it waits with the firmware's [`WaitHook`] until the
/// deadline passes or a [`HubHandle`](gevent_core::HubHandle) wakes it.
pub struct IdlePoller<C, W> {
    clock: C,
    wait: W,
    woken: Arc<Flag>,
}

impl<C, W> core::fmt::Debug for IdlePoller<C, W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdlePoller").finish_non_exhaustive()
    }
}

impl<C: Clock, W: WaitHook> IdlePoller<C, W> {
    /// A poller that reads `clock` and waits with `wait`.
    pub fn new(clock: C, wait: W) -> Self {
        IdlePoller { clock, wait, woken: Arc::new(Flag::default()) }
    }
}

const NO_SOURCES: PollError =
    PollError { operation: "register (this board has no I/O poller)", code: None };

impl<C: Clock + 'static, W: WaitHook + 'static> Poller for IdlePoller<C, W> {
    fn register(&mut self, _: &dyn Any, _: Token, _: Interest) -> Result<u64, PollError> {
        Err(NO_SOURCES)
    }

    fn deregister(&mut self, _: &dyn Any) -> Result<(), PollError> {
        Err(NO_SOURCES)
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        _: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        let deadline = timeout.map(|t| self.clock.now() + t);
        loop {
            if self.woken.0.swap(false, Ordering::AcqRel) {
                return Ok(());
            }
            match deadline {
                Some(d) if self.clock.now() >= d => return Ok(()),
                _ => self.wait.wait(deadline),
            }
        }
    }

    fn remote_waker(&self) -> Arc<dyn RemoteWaker> {
        self.woken.clone()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
