//! Waiting for greenlets to finish: one (`join`), several (`joinall`), or killing several.

use alloc::vec::Vec;
use core::time::Duration;

use super::task::{TaskRef, WaitKind};
use super::{Greenlet, GreenletRef};
use crate::error::{Interrupted, JoinAllError, LoopExit};
use crate::hub::{TimerAction, hub};
use crate::time::Instant;
use crate::timer::TimerKey;

/// A timer that wakes the current greenlet at a deadline, cancelled when dropped.
pub(crate) struct DeadlineTimer {
    key: Option<TimerKey>,
}

impl DeadlineTimer {
    pub(crate) fn arm(deadline: Option<Instant>) -> Self {
        let key = deadline.map(|d| {
            let hub = hub();
            hub.add_timer(d, TimerAction::Wake(hub.current()))
        });
        DeadlineTimer { key }
    }

    /// Whether the deadline has passed (the timer fired).
    pub(crate) fn expired(&self) -> bool {
        self.key.is_some_and(|k| !hub().timer_pending(k))
    }
}

impl Drop for DeadlineTimer {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            hub().cancel_timer(key);
        }
    }
}

/// Waits until `target` finishes or `deadline` passes; `Ok(true)` if it finished.
pub(crate) fn join_task(target: &TaskRef, deadline: Option<Instant>) -> Result<bool, Interrupted> {
    let hub = hub();
    let task = target.task();
    if task.is_finished() {
        return Ok(true);
    }
    let me = hub.current();
    if me.task().id == task.id {
        return Err(Interrupted::LoopExit(alloc::boxed::Box::new(LoopExit {
            main_waits_on: alloc::format!(
                "its own end: {} tried to join itself",
                me.task().describe()
            ),
            parked: Vec::new(),
        })));
    }
    let timer = DeadlineTimer::arm(deadline);
    let key = task.add_joiner(me);
    loop {
        let parked = hub.park(WaitKind::Join(task.id));
        if task.is_finished() {
            return Ok(true); // finishing popped us from the joiners
        }
        let timed_out = timer.expired();
        if parked.is_err() || timed_out {
            task.remove_joiner(key);
            return parked.map(|()| false);
        }
    }
}

/// Anything that names a greenlet: [`Greenlet`], [`GreenletRef`], or a reference to one.
pub trait AsGreenlet {
    /// An untyped handle to the greenlet.
    fn as_greenlet(&self) -> GreenletRef;
}

impl<T: 'static> AsGreenlet for Greenlet<T> {
    fn as_greenlet(&self) -> GreenletRef {
        self.to_ref()
    }
}

impl AsGreenlet for GreenletRef {
    fn as_greenlet(&self) -> GreenletRef {
        self.clone()
    }
}

impl<G: AsGreenlet + ?Sized> AsGreenlet for &G {
    fn as_greenlet(&self) -> GreenletRef {
        (**self).as_greenlet()
    }
}

/// Waits for every greenlet to finish (gevent's `joinall`). For a timeout or stopping at the
/// first failure, use [`JoinAll`].
pub fn joinall<G: AsGreenlet>(greenlets: &[G]) -> Result<(), Interrupted> {
    match JoinAll::new(greenlets).wait() {
        Ok(_) => Ok(()),
        Err(JoinAllError::Interrupted(e)) => Err(e),
        Err(JoinAllError::Failed { .. }) => unreachable!("raise_error is off"),
    }
}

/// Waiting for several greenlets, with gevent's `joinall` options.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent_core::{spawn, sleep, JoinAll};
/// let quick = spawn(|| sleep(Duration::from_millis(10)));
/// let slow = spawn(|| sleep(Duration::from_secs(10)));
/// let done = JoinAll::new(&[&quick, &slow]).timeout(Duration::from_secs(1)).wait().unwrap();
/// assert_eq!(done, [0]); // only the first finished in time
/// # });
/// ```
#[derive(Debug)]
pub struct JoinAll {
    targets: Vec<GreenletRef>,
    timeout: Option<Duration>,
    raise_error: bool,
}

impl JoinAll {
    /// Prepares to wait for `greenlets`.
    pub fn new<G: AsGreenlet>(greenlets: &[G]) -> Self {
        JoinAll {
            targets: greenlets.iter().map(AsGreenlet::as_greenlet).collect(),
            timeout: None,
            raise_error: false,
        }
    }

    /// Stops waiting after `timeout`, returning the greenlets finished by then.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Stops at the first greenlet to fail (in time, not in the list) and reports it.
    pub fn raise_error(mut self, raise_error: bool) -> Self {
        self.raise_error = raise_error;
        self
    }

    /// Waits; returns the indices (into the input) of the greenlets that finished, in input
    /// order: all of them unless the timeout passed first.
    pub fn wait(self) -> Result<Vec<usize>, JoinAllError> {
        self.wait_or_stop(&|| false)
    }

    /// [`wait`](Self::wait), also returning (with the finished ones) as soon as `stop` holds
    /// after a greenlet finished.
    pub(crate) fn wait_or_stop(self, stop: &dyn Fn() -> bool) -> Result<Vec<usize>, JoinAllError> {
        let hub = hub();
        let me = hub.current();
        let deadline = self.timeout.map(|t| hub.now() + t);
        let timer = DeadlineTimer::arm(deadline);
        let mut registrations = Vec::new();
        for (i, g) in self.targets.iter().enumerate() {
            let task = g.task_ref().task();
            if !task.is_finished() {
                registrations.push((i, task.add_joiner(me.clone())));
            }
        }
        let result = loop {
            if self.raise_error {
                let first_failure = self
                    .targets
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| g.error().map(|e| (i, e)))
                    .min_by_key(|(i, _)| self.targets[*i].task_ref().task().finish_seq.get());
                if let Some((index, error)) = first_failure {
                    break Err(JoinAllError::Failed { index, error });
                }
            }
            if self.targets.iter().all(GreenletRef::ready) {
                break Ok((0..self.targets.len()).collect());
            }
            if stop() {
                let done = self.targets.iter().enumerate().filter(|(_, g)| g.ready());
                break Ok(done.map(|(i, _)| i).collect());
            }
            if let Err(e) = hub.park(WaitKind::JoinAll) {
                break Err(JoinAllError::Interrupted(e));
            }
            if timer.expired() {
                let done = self.targets.iter().enumerate().filter(|(_, g)| g.ready());
                break Ok(done.map(|(i, _)| i).collect());
            }
        };
        for (i, key) in registrations {
            self.targets[i].task_ref().task().remove_joiner(key);
        }
        result
    }
}

/// Kills every greenlet and waits until all have finished (gevent's `killall`).
pub fn killall<G: AsGreenlet>(greenlets: &[G]) -> Result<(), Interrupted> {
    for g in greenlets {
        g.as_greenlet().kill_nowait();
    }
    joinall(greenlets)
}

/// Kills every greenlet and waits at most `timeout`; `Ok(true)` if all finished.
pub fn killall_timeout<G: AsGreenlet>(
    greenlets: &[G],
    timeout: Duration,
) -> Result<bool, Interrupted> {
    for g in greenlets {
        g.as_greenlet().kill_nowait();
    }
    match JoinAll::new(greenlets).timeout(timeout).wait() {
        Ok(done) => Ok(done.len() == greenlets.len()),
        Err(JoinAllError::Interrupted(e)) => Err(e),
        Err(JoinAllError::Failed { .. }) => unreachable!("raise_error is off"),
    }
}
