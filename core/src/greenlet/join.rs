//! Waiting for greenlets to finish: one (`join`), several (`joinall`), or killing several.

use alloc::vec::Vec;
use core::time::Duration;

use super::task::{DoneLog, TaskRef, WaitKind};
use super::{Greenlet, GreenletRef};
use crate::error::{Interrupted, JoinAllError};
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

    /// A timer that does not keep the hub alive (gevent's `ref=False`).
    pub(crate) fn arm_unref(deadline: Option<Instant>) -> Self {
        let key = deadline.map(|d| {
            let hub = hub();
            hub.add_timer(d, TimerAction::WakeUnref(hub.current()))
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

/// The error of a greenlet waiting for its own end.
fn self_join(me: &TaskRef) -> Interrupted {
    Interrupted::Deadlock(alloc::format!(
        "{} waits for its own end, which cannot come while it waits",
        me.task().describe()
    ))
}

/// Waits until `target` finishes or `deadline` passes; `Ok(true)` if it finished.
///
/// A waiter is woken after the target's link callbacks ran, as in gevent (where joining is
/// itself a link, added after the earlier ones); joining a greenlet that has already finished
/// returns at once, so a link callback may join or `get` its own target.
pub(crate) fn join_task(target: &TaskRef, deadline: Option<Instant>) -> Result<bool, Interrupted> {
    let hub = hub();
    let task = target.task();
    if task.is_finished() {
        return Ok(true);
    }
    // The same node is the same greenlet: `target` keeps it alive, so it was not reused.
    if core::ptr::eq(hub.current_task(), task) {
        return Err(self_join(target));
    }
    let me = hub.current();
    let timer = DeadlineTimer::arm(deadline);
    let joining = Joining { task, key: task.add_joiner(me) };
    loop {
        let parked = hub.park(WaitKind::Join(task.id));
        if task.is_done() {
            // Being done popped us from the joiners: the guard has nothing to take out, and
            // its drop would only test that again.
            core::mem::forget(joining);
            return Ok(true);
        }
        let timed_out = timer.expired();
        if parked.is_err() || timed_out {
            return parked.map(|()| false);
        }
    }
}

/// A joiner registered with `task`, taken out again on every way out of the wait (an unwind
/// through `park` included: a registration left behind would notify this greenlet in the
/// middle of some later wait) unless the target's end took it out first.
struct Joining<'a> {
    task: &'a super::task::Task,
    key: crate::wait_list::WaiterKey,
}

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        if !self.task.is_done() {
            self.task.remove_joiner(self.key);
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

/// A collection of greenlets, of any value types: a slice, array or `Vec` of greenlets (or of
/// references to them), or a tuple of up to eight greenlets of different types.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent::{joinall, spawn};
/// let number = spawn(|| 7);
/// let text = spawn(|| "seven");
/// joinall((&number, &text)).unwrap();
/// let more = vec![spawn(|| 1), spawn(|| 2)];
/// joinall(&more).unwrap();
/// # });
/// ```
pub trait Greenlets {
    /// Untyped handles to the greenlets, in order.
    fn greenlet_refs(&self) -> Vec<GreenletRef>;
}

impl<G: AsGreenlet> Greenlets for [G] {
    fn greenlet_refs(&self) -> Vec<GreenletRef> {
        self.iter().map(AsGreenlet::as_greenlet).collect()
    }
}

impl<G: AsGreenlet, const N: usize> Greenlets for [G; N] {
    fn greenlet_refs(&self) -> Vec<GreenletRef> {
        self.as_slice().greenlet_refs()
    }
}

impl<G: AsGreenlet> Greenlets for Vec<G> {
    fn greenlet_refs(&self) -> Vec<GreenletRef> {
        self.as_slice().greenlet_refs()
    }
}

impl<C: Greenlets + ?Sized> Greenlets for &C {
    fn greenlet_refs(&self) -> Vec<GreenletRef> {
        (**self).greenlet_refs()
    }
}

macro_rules! tuple_greenlets {
    ($($name:ident)+) => {
        impl<$($name: AsGreenlet),+> Greenlets for ($($name,)+) {
            #[allow(non_snake_case)]
            fn greenlet_refs(&self) -> Vec<GreenletRef> {
                let ($($name,)+) = self;
                alloc::vec![$($name.as_greenlet()),+]
            }
        }
    };
}
tuple_greenlets!(A);
tuple_greenlets!(A B);
tuple_greenlets!(A B C);
tuple_greenlets!(A B C D);
tuple_greenlets!(A B C D E);
tuple_greenlets!(A B C D E F);
tuple_greenlets!(A B C D E F G);
tuple_greenlets!(A B C D E F G H);

/// Waits for every greenlet to finish (gevent's `joinall`). For a timeout or stopping at the
/// first failure, use [`JoinAll`]. Joining the current greenlet is an error
/// ([`Interrupted::Deadlock`]).
pub fn joinall(greenlets: impl Greenlets) -> Result<(), Interrupted> {
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
/// use gevent::{spawn, sleep, JoinAll};
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
    pub fn new(greenlets: impl Greenlets) -> Self {
        JoinAll { targets: greenlets.greenlet_refs(), timeout: None, raise_error: false }
    }

    /// Stops waiting after `timeout`, returning the greenlets finished by then.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Stops at the first greenlet to fail (in time, not in the list) and reports it. A plain
    /// kill is not a failure (as in gevent): killed greenlets are waited for like the others.
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
    ///
    /// Each target's joiner entry records its index in a shared log when it is done, so a
    /// wake-up costs the greenlets that ended, not a scan of all targets.
    pub(crate) fn wait_or_stop(self, stop: &dyn Fn() -> bool) -> Result<Vec<usize>, JoinAllError> {
        let hub = hub();
        let me = hub.current();
        if self.targets.iter().any(|g| g.task_ref().task().id == me.task().id) {
            return Err(JoinAllError::Interrupted(self_join(&me)));
        }
        let log: DoneLog = Default::default();
        let mut done = alloc::vec![false; self.targets.len()];
        let mut registrations = Vec::new();
        for (i, g) in self.targets.iter().enumerate() {
            let task = g.task_ref().task();
            if task.is_finished() {
                log.borrow_mut().push(i);
            } else {
                let key = task.add_logging_joiner(me.clone(), &log, i);
                registrations.push(Joining { task, key });
            }
        }
        let deadline = self.timeout.map(|t| hub.now() + t);
        let timer = DeadlineTimer::arm(deadline);
        let mut remaining = self.targets.len();
        fn finished(done: &[bool]) -> Vec<usize> {
            done.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| i).collect()
        }
        let result = loop {
            let newly: Vec<usize> = core::mem::take(&mut *log.borrow_mut());
            let mut failure = None;
            for i in newly {
                if core::mem::replace(&mut done[i], true) {
                    continue;
                }
                remaining -= 1;
                if self.raise_error && failure.is_none() {
                    failure = self.targets[i].error().map(|error| (i, error));
                }
            }
            if let Some((index, error)) = failure {
                break Err(JoinAllError::Failed { index, error });
            }
            if remaining == 0 {
                break Ok((0..self.targets.len()).collect());
            }
            if stop() || timer.expired() {
                break Ok(finished(&done));
            }
            if let Err(e) = hub.park(WaitKind::JoinAll) {
                break Err(JoinAllError::Interrupted(e));
            }
        };
        // Each registration is taken out as it drops (here, or in an unwind through `park`).
        drop(registrations);
        result
    }
}

/// Kills every greenlet and waits until all have finished (gevent's `killall`).
pub fn killall(greenlets: impl Greenlets) -> Result<(), Interrupted> {
    let targets = greenlets.greenlet_refs();
    for g in &targets {
        g.kill_nowait();
    }
    joinall(&targets)
}

/// Kills every greenlet and waits at most `timeout`; `Ok(true)` if all finished.
pub fn killall_timeout(greenlets: impl Greenlets, timeout: Duration) -> Result<bool, Interrupted> {
    let targets = greenlets.greenlet_refs();
    for g in &targets {
        g.kill_nowait();
    }
    match JoinAll::new(&targets).timeout(timeout).wait() {
        Ok(done) => Ok(done.len() == targets.len()),
        Err(JoinAllError::Interrupted(e)) => Err(e),
        Err(JoinAllError::Failed { .. }) => unreachable!("raise_error is off"),
    }
}
