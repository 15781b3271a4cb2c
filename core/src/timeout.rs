//! Timeouts and shields: bounding how long a scope may block, and protecting cleanup from kills.

use core::time::Duration;

use crate::error::{Interrupted, TimeoutId};
use crate::greenlet::task::TaskRef;
use crate::hub::{TimerAction, hub};
use crate::time::Instant;
use crate::timer::TimerKey;

/// A deadline for the current greenlet's blocking calls, armed while the guard lives.
///
/// When it expires, the greenlet's current blocking call (or, if it is busy, its next one)
/// returns [`Interrupted::TimedOut`] with this timeout's [`id`](Self::id); it fires only at a
/// blocking point, never in the middle of computation. Dropping the guard disarms it.
///
/// Nested timeouts are independent: an inner one expiring does not cancel the outer, and the id
/// tells which one expired. The expiry is reported once at its own level, and it propagates
/// outwards the way gevent's `Timeout` exception does: if it was reported inside an inner
/// `Timeout`'s scope (which may have swallowed it), it is reported again at the first blocking
/// call after that inner guard is dropped. When an inner and an outer timeout expire in the
/// same turn, the outer one is reported.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{sleep, Interrupted, Timeout};
/// let timeout = Timeout::start(Duration::from_millis(100));
/// let result = sleep(Duration::from_secs(5));
/// assert_eq!(result, Err(Interrupted::TimedOut(timeout.id())));
/// assert!(timeout.expired());
/// # });
/// ```
#[must_use = "a Timeout is disarmed as soon as it is dropped"]
pub struct Timeout {
    id: TimeoutId,
    key: TimerKey,
    owner: TaskRef,
    /// An outer timeout that had already expired when this one started: it was reported in
    /// the outer scope, so this scope's end does not report it again.
    expired_before: Option<TimeoutId>,
}

impl core::fmt::Debug for Timeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Timeout")
            .field("id", &self.id)
            .field("owner", &self.owner.task().id)
            .finish()
    }
}

impl Timeout {
    /// Arms a timeout of `duration` for the current greenlet.
    pub fn start(duration: Duration) -> Timeout {
        Timeout::start_at(hub().now() + duration)
    }

    /// Arms a timeout expiring at `deadline` on the hub's clock.
    pub fn start_at(deadline: Instant) -> Timeout {
        let hub = hub();
        let id = hub.next_timeout_id();
        let owner = hub.current();
        let key = hub.add_timer(deadline, TimerAction::Timeout(owner.clone(), id));
        let expired_before = owner.task().expired_timeout();
        Timeout { id, key, owner, expired_before }
    }

    /// This timeout's id, as carried by [`Interrupted::TimedOut`].
    pub fn id(&self) -> TimeoutId {
        self.id
    }

    /// Whether it has expired.
    pub fn expired(&self) -> bool {
        !hub().timer_pending(self.key)
    }

    /// Whether `error` is this timeout's expiry (any error that can carry an
    /// [`Interrupted`]: [`Interrupted`], [`Error`](crate::Error), a queue's errors).
    pub fn is(&self, error: &impl crate::AsInterrupted) -> bool {
        error.as_interrupted().is_some_and(|e| e.is_timeout(self.id))
    }

    /// Disarms it (the same as dropping it).
    pub fn cancel(self) {}
}

impl Drop for Timeout {
    fn drop(&mut self) {
        // Without a hub (dropped by a thread-local destructor after the hub's) there is no
        // timer left to cancel.
        let Some(hub) = crate::hub::try_hub() else { return };
        hub.cancel_timer(self.key);
        // An expiry not yet reported belongs to the scope that just ended.
        let task = self.owner.task();
        if task.pending_timeout.get() == Some(self.id) {
            task.pending_timeout.set(None);
        }
        task.forget_expired_timeout(self.id);
        // An outer timeout that expired during this scope was reported in here, where the
        // code may have dropped it; its scope has not ended, so it is reported again.
        if let Some(outer) = task.expired_timeout() {
            if outer < self.id && Some(outer) != self.expired_before {
                task.pending_timeout
                    .set(Some(task.pending_timeout.get().map_or(outer, |p| p.min(outer))));
                task.attention.set(true);
            }
        }
    }
}

/// Runs `f` under a [`Timeout`] of `duration` and returns its result (gevent's
/// `with_timeout`).
///
/// `f` returns a `Result` whose error can hold an [`Interrupted`] (such as
/// [`Interrupted`] itself or [`Error`](crate::Error)); when the timeout expires, `f`'s
/// blocking call fails with `TimedOut(id)` and, passed up with `?`, that is what comes back.
/// Nothing is wrapped, so `with_timeout(d, || g.get())` is a plain `Result<T, Error>`, and an
/// outer timeout expiring inside `f` comes back as itself — never swallowed or replaced by
/// this one's. If `f` finishes despite the expiry (it handled the error), its result stands.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent::{sleep, with_timeout, Interrupted};
/// let quick = with_timeout(Duration::from_secs(1), || sleep(Duration::from_millis(1)));
/// assert_eq!(quick, Ok(()));
/// let slow = with_timeout(Duration::from_secs(1), || sleep(Duration::from_secs(2)));
/// assert!(matches!(slow, Err(Interrupted::TimedOut(_))));
/// # });
/// ```
pub fn with_timeout<T, E: From<Interrupted>>(
    duration: Duration,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let _timeout = Timeout::start(duration);
    f()
}

/// Runs `f` with kills held back: blocking calls inside do not fail with
/// [`Interrupted::Killed`] (the kill stays pending and is delivered at the first blocking call
/// after the shield), while [`Timeout`]s still apply, so bound cleanup with one.
///
/// Meant for cleanup that must finish, such as a graceful close.
pub fn shield<R>(f: impl FnOnce() -> R) -> R {
    struct Unshield(TaskRef);
    impl Drop for Unshield {
        fn drop(&mut self) {
            let depth = &self.0.task().shield_depth;
            depth.set(depth.get() - 1);
        }
    }
    let me = hub().current();
    me.task().shield_depth.set(me.task().shield_depth.get() + 1);
    let _unshield = Unshield(me);
    f()
}
