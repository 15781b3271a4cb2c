//! Locks between greenlets (gevent's `gevent.lock`): [`Semaphore`], [`BoundedSemaphore`],
//! [`RLock`], a guard-based [`Mutex`] (the Rust shape of gevent's `Lock`), and
//! [`DummySemaphore`].
//!
//! Waiters are served in arrival order: a permit released while greenlets wait is reserved for
//! the first of them, so a greenlet arriving meanwhile cannot take it. A waiter that is killed
//! or times out leaves the count as it was.

use core::cell::{Cell, RefCell, RefMut};
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::time::Duration;

use crate::error::Interrupted;
use crate::greenlet::task::WaitKind;
use crate::hub::hub;
use crate::sync::waiters::{Turn, Waiters, give_up_reservation, notify, wait_turn};
use crate::time::Instant;

struct SemState {
    /// Permits not held by anyone (some may be reserved for woken waiters).
    permits: usize,
    waiters: Waiters,
}

impl SemState {
    fn free(&self) -> usize {
        self.permits - self.waiters.reserved()
    }
}

/// A counting semaphore (gevent's `Semaphore`): [`acquire`](Self::acquire) takes a permit,
/// waiting while none is free, and the returned guard gives it back when dropped.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent_core::lock::Semaphore;
/// let sem = Semaphore::new(1);
/// let guard = sem.acquire().unwrap();
/// assert!(sem.try_acquire().is_none());
/// drop(guard);
/// assert!(sem.try_acquire().is_some());
/// # });
/// ```
pub struct Semaphore {
    state: RefCell<SemState>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("free", &self.available()).finish_non_exhaustive()
    }
}

impl Semaphore {
    /// A semaphore with `permits` free permits.
    pub const fn new(permits: usize) -> Self {
        Semaphore { state: RefCell::new(SemState { permits, waiters: Waiters::new() }) }
    }

    /// Free permits (gevent's `counter`).
    pub fn available(&self) -> usize {
        self.state.borrow().free()
    }

    /// Whether no permit is free (gevent's `locked()`).
    pub fn locked(&self) -> bool {
        self.available() == 0
    }

    /// Takes a permit, waiting while none is free.
    pub fn acquire(&self) -> Result<SemaphoreGuard<'_>, Interrupted> {
        self.acquire_until(None).map(|g| g.expect("no deadline"))
    }

    /// Takes a permit, waiting at most `timeout`; `Ok(None)` if none came free in time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<SemaphoreGuard<'_>>, Interrupted> {
        self.acquire_until(Some(hub().now() + timeout))
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        let mut s = self.state.borrow_mut();
        if s.free() > 0 {
            s.permits -= 1;
            Some(SemaphoreGuard { semaphore: self })
        } else {
            None
        }
    }

    /// Adds a permit (gevent's `release()`), waking the first waiter if any. Use it for
    /// permits whose guard was [`forget`](SemaphoreGuard::forget)-ed.
    pub fn release(&self) {
        let next = {
            let mut s = self.state.borrow_mut();
            s.permits += 1;
            s.waiters.hand_off()
        };
        notify(next);
    }

    fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<SemaphoreGuard<'_>>, Interrupted> {
        if let Some(guard) = self.try_acquire() {
            return Ok(Some(guard));
        }
        loop {
            let turn = wait_turn(
                &self.state,
                |s| &mut s.waiters,
                WaitKind::Other("a semaphore permit"),
                deadline,
            );
            let mut s = self.state.borrow_mut();
            match turn {
                Turn::Granted => {
                    s.waiters.claim();
                    s.permits -= 1;
                    return Ok(Some(SemaphoreGuard { semaphore: self }));
                }
                Turn::TimedOut => return Ok(None),
                Turn::Interrupted { why, reserved } => {
                    if reserved {
                        give_up_reservation(s, |s| &mut s.waiters, |s| s.free() > 0);
                    }
                    return Err(why);
                }
                Turn::Woken => {}
            }
        }
    }
}

/// A permit of a [`Semaphore`]; released when dropped.
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    semaphore: &'a Semaphore,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken: it is given back only by [`Semaphore::release`].
    pub fn forget(self) {
        core::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.semaphore.release();
    }
}

/// [`BoundedSemaphore::release`] would raise the count above its initial value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverRelease(());

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore released too many times")
    }
}

impl core::error::Error for OverRelease {}

/// A [`Semaphore`] that refuses to be released above its initial count (gevent's
/// `BoundedSemaphore`). It dereferences to its semaphore for acquiring.
#[derive(Debug)]
pub struct BoundedSemaphore {
    semaphore: Semaphore,
    initial: usize,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, all free.
    pub const fn new(permits: usize) -> Self {
        BoundedSemaphore { semaphore: Semaphore::new(permits), initial: permits }
    }

    /// Gives back a permit taken with a forgotten guard; an error if none is out.
    pub fn release(&self) -> Result<(), OverRelease> {
        if self.semaphore.state.borrow().permits >= self.initial {
            return Err(OverRelease(()));
        }
        self.semaphore.release();
        Ok(())
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.semaphore
    }
}

/// A semaphore that never blocks (gevent's `DummySemaphore`): for code that takes a lock
/// where none is wanted.
#[derive(Clone, Copy, Debug, Default)]
pub struct DummySemaphore;

impl DummySemaphore {
    /// A dummy semaphore.
    pub const fn new() -> Self {
        DummySemaphore
    }

    /// Succeeds at once.
    pub fn acquire(&self) -> Result<DummyGuard, Interrupted> {
        Ok(DummyGuard(()))
    }

    /// Does nothing.
    pub fn release(&self) {}
}

/// The guard of a [`DummySemaphore`]; dropping it does nothing.
#[derive(Debug)]
pub struct DummyGuard(());

/// A lock that its owning greenlet may take again (gevent's `RLock`); each acquire needs a
/// release (by dropping its guard).
pub struct RLock {
    semaphore: Semaphore,
    owner: Cell<Option<u64>>,
    depth: Cell<usize>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner.get())
            .field("depth", &self.depth.get())
            .finish()
    }
}

impl Default for RLock {
    fn default() -> Self {
        Self::new()
    }
}

/// A greenlet that does not hold an [`RLock`] tried to release it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotOwner(());

impl fmt::Display for NotOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot release an RLock held by another greenlet (or by none)")
    }
}

impl core::error::Error for NotOwner {}

impl RLock {
    /// An unlocked reentrant lock.
    pub const fn new() -> Self {
        RLock { semaphore: Semaphore::new(1), owner: Cell::new(None), depth: Cell::new(0) }
    }

    /// Takes the lock, or takes it once more if the current greenlet holds it.
    pub fn acquire(&self) -> Result<RLockGuard<'_>, Interrupted> {
        let me = hub().current_task().id;
        if self.owner.get() != Some(me) {
            self.semaphore.acquire()?.forget();
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        Ok(RLockGuard { lock: self })
    }

    /// Whether some greenlet holds it.
    pub fn locked(&self) -> bool {
        self.owner.get().is_some()
    }

    /// Releases one level of a hold taken with a forgotten guard; an error unless the current
    /// greenlet holds the lock.
    pub fn release(&self) -> Result<(), NotOwner> {
        if self.owner.get() != Some(hub().current_task().id) {
            return Err(NotOwner(()));
        }
        self.release_level();
        Ok(())
    }

    fn release_level(&self) {
        let depth = self.depth.get() - 1;
        self.depth.set(depth);
        if depth == 0 {
            self.owner.set(None);
            self.semaphore.release();
        }
    }
}

/// One level of hold on an [`RLock`]; released when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}

impl RLockGuard<'_> {
    /// Keeps this level held: it is released only by [`RLock::release`].
    pub fn forget(self) {
        core::mem::forget(self);
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard is the proof of this level, whichever greenlet drops it.
        self.lock.release_level();
    }
}

/// A value that one greenlet at a time may use (gevent's `Lock`, in Rust's shape): the guard
/// of [`lock`](Self::lock) derefs to the value and unlocks when dropped.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent_core::lock::Mutex;
/// let counter = Mutex::new(0);
/// *counter.lock().unwrap() += 1;
/// assert_eq!(*counter.lock().unwrap(), 1);
/// # });
/// ```
pub struct Mutex<T> {
    semaphore: Semaphore,
    value: RefCell<T>,
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.value.try_borrow() {
            Ok(value) => d.field("value", &*value),
            Err(_) => d.field("value", &"<locked>"),
        };
        d.finish()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> Mutex<T> {
    /// A mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Mutex { semaphore: Semaphore::new(1), value: RefCell::new(value) }
    }

    /// Locks it, waiting while another greenlet holds it.
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, Interrupted> {
        let permit = self.semaphore.acquire()?;
        Ok(MutexGuard { value: self.value.borrow_mut(), _permit: permit })
    }

    /// Locks it, waiting at most `timeout`; `Ok(None)` if it stayed locked.
    pub fn lock_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<MutexGuard<'_, T>>, Interrupted> {
        let permit = self.semaphore.acquire_timeout(timeout)?;
        Ok(permit.map(|p| MutexGuard { value: self.value.borrow_mut(), _permit: p }))
    }

    /// Locks it if it is free now.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let permit = self.semaphore.try_acquire()?;
        Some(MutexGuard { value: self.value.borrow_mut(), _permit: permit })
    }

    /// Whether a greenlet holds it.
    pub fn is_locked(&self) -> bool {
        self.semaphore.locked()
    }

    /// The value, when the mutex is owned (no locking needed).
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Access to the value of a locked [`Mutex`]; unlocks when dropped.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    // Declared first: the borrow ends before the permit goes back.
    value: RefMut<'a, T>,
    _permit: SemaphoreGuard<'a>,
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}
