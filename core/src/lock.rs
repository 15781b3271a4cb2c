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
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::sync::waiters::{Refused, Side, Status, Wait, Waiters, reserve_then, wake_all};
use crate::wait_list::{WaitList, WaiterKey};

struct SemState {
    /// Permits not held by anyone (some may be reserved for woken waiters).
    permits: usize,
    waiters: Waiters,
    /// Greenlets in [`wait`](crate::wait::wait) for a permit to be free, without taking it.
    watchers: WaitList<TaskRef>,
}

impl SemState {
    fn free(&self) -> usize {
        self.permits - self.waiters.reserved()
    }
}

/// The greenlets that acquire a semaphore: their unit is a permit.
struct Acquirers;

impl Side for Acquirers {
    type State = SemState;
    const KIND: WaitKind = WaitKind::Other(&"a semaphore permit");

    fn waiters(s: &mut SemState) -> &mut Waiters {
        &mut s.waiters
    }

    fn status(s: &SemState) -> Status {
        if s.free() > 0 { Status::Free } else { Status::Unavailable }
    }

    fn hand_on(s: &mut SemState) {
        // A permit nobody waits to acquire is free: whoever waits to see one is told.
        if s.free() > 0 && !s.waiters.hand_off() && !s.watchers.is_empty() {
            wake_all(&mut s.watchers);
        }
    }
}

/// A counting semaphore (gevent's `Semaphore`): [`acquire`](Self::acquire) takes a permit,
/// waiting while none is free, and the returned guard gives it back when dropped.
///
/// [`wait`](crate::wait::wait) and [`iwait`](crate::wait::iwait) can wait for a permit to be
/// free without taking it (gevent's `wait([semaphore])`).
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent::lock::Semaphore;
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
        Semaphore {
            state: RefCell::new(SemState {
                permits,
                waiters: Waiters::new(),
                watchers: WaitList::new(),
            }),
        }
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
        self.take_permit(Wait::Until(None)).map(|g| g.expect("no deadline"))
    }

    /// Takes a permit, waiting at most `timeout`; `Ok(None)` if none came free in time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<SemaphoreGuard<'_>>, Interrupted> {
        self.take_permit(Wait::Until(Some(hub().now() + timeout)))
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.take_permit(Wait::No).ok().flatten()
    }

    /// Adds a permit (gevent's `release()`), waking the first waiter if any. Use it for
    /// permits whose guard was [`forget`](SemaphoreGuard::forget)-ed.
    pub fn release(&self) {
        let mut s = self.state.borrow_mut();
        s.permits += 1;
        Acquirers::hand_on(&mut s);
    }

    fn take_permit(&self, wait: Wait) -> Result<Option<SemaphoreGuard<'_>>, Interrupted> {
        reserve_then::<Acquirers, _>(&self.state, wait, |got| match got {
            Ok(mut s) => {
                s.permits -= 1;
                Ok(Some(SemaphoreGuard { semaphore: self }))
            }
            Err(Refused::Closed | Refused::Unavailable) => Ok(None),
            Err(Refused::Interrupted(why)) => Err(why),
        })
    }

    /// Queues `t` to be woken when a permit is free; `None` if one is free now.
    pub(crate) fn add_watcher(&self, t: TaskRef) -> Option<WaiterKey> {
        let mut s = self.state.borrow_mut();
        (s.free() == 0).then(|| s.watchers.push_back(t))
    }

    /// Cancels a watcher queued by [`add_watcher`](Self::add_watcher); true if a free permit
    /// had woken it already.
    pub(crate) fn remove_watcher(&self, key: WaiterKey) -> bool {
        self.state.borrow_mut().watchers.remove(key).is_none()
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

/// [`BoundedSemaphore::release`] found no permit taken with a forgotten guard: releasing
/// would raise the count above its initial value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverRelease(());

impl fmt::Display for OverRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "bounded semaphore released more times than permits were taken with a forgotten guard",
        )
    }
}

impl core::error::Error for OverRelease {}

/// A semaphore whose count never rises above its initial value (gevent's
/// `BoundedSemaphore`): each permit goes back exactly once, by dropping its guard or, for a
/// guard that was [`forget`](BoundedSemaphoreGuard::forget)-ed, by one
/// [`release`](Self::release); one release more is an [`OverRelease`] error.
///
/// It is not a [`Semaphore`] (which may be released at will): it has the same acquiring
/// methods, and can be waited on with [`wait`](crate::wait::wait) the same way.
///
/// ```compile_fail
/// # use gevent_core::lock::{BoundedSemaphore, Semaphore};
/// let bounded = BoundedSemaphore::new(1);
/// let unbounded: &Semaphore = &bounded; // no way around the bound
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore {
    semaphore: Semaphore,
    /// Permits out with a forgotten guard, which only `release` gives back.
    forgotten: Cell<usize>,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, all free.
    pub const fn new(permits: usize) -> Self {
        BoundedSemaphore { semaphore: Semaphore::new(permits), forgotten: Cell::new(0) }
    }

    /// Free permits (gevent's `counter`).
    pub fn available(&self) -> usize {
        self.semaphore.available()
    }

    /// Whether no permit is free (gevent's `locked()`).
    pub fn locked(&self) -> bool {
        self.semaphore.locked()
    }

    /// Takes a permit, waiting while none is free.
    pub fn acquire(&self) -> Result<BoundedSemaphoreGuard<'_>, Interrupted> {
        self.semaphore.acquire().map(|permit| self.guard(permit))
    }

    /// Takes a permit, waiting at most `timeout`; `Ok(None)` if none came free in time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<BoundedSemaphoreGuard<'_>>, Interrupted> {
        let permit = self.semaphore.acquire_timeout(timeout)?;
        Ok(permit.map(|permit| self.guard(permit)))
    }

    /// Takes a permit if one is free now.
    pub fn try_acquire(&self) -> Option<BoundedSemaphoreGuard<'_>> {
        self.semaphore.try_acquire().map(|permit| self.guard(permit))
    }

    /// Gives back a permit whose guard was forgotten; [`OverRelease`] if no such permit is out.
    pub fn release(&self) -> Result<(), OverRelease> {
        let forgotten = self.forgotten.get();
        if forgotten == 0 {
            return Err(OverRelease(()));
        }
        self.forgotten.set(forgotten - 1);
        self.semaphore.release();
        Ok(())
    }

    pub(crate) fn semaphore(&self) -> &Semaphore {
        &self.semaphore
    }

    fn guard<'a>(&'a self, permit: SemaphoreGuard<'a>) -> BoundedSemaphoreGuard<'a> {
        BoundedSemaphoreGuard { permit, forgotten: &self.forgotten }
    }
}

/// A permit of a [`BoundedSemaphore`]; released when dropped.
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct BoundedSemaphoreGuard<'a> {
    permit: SemaphoreGuard<'a>,
    forgotten: &'a Cell<usize>,
}

impl fmt::Debug for BoundedSemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphoreGuard").finish_non_exhaustive()
    }
}

impl BoundedSemaphoreGuard<'_> {
    /// Keeps the permit taken: it is given back only by [`BoundedSemaphore::release`].
    pub fn forget(self) {
        self.forgotten.set(self.forgotten.get() + 1);
        core::mem::forget(self.permit);
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

/// A lock that its owning greenlet may take again (gevent's `RLock`); each acquire is one
/// level of hold, released by dropping its guard (or, for a guard that was
/// [`forget`](RLockGuard::forget)-ed, by one [`release`](RLock::release)). The lock is free
/// again when its last level is released.
pub struct RLock {
    semaphore: Semaphore,
    owner: Cell<Option<u64>>,
    /// Levels held: one per live guard plus the forgotten ones.
    depth: Cell<usize>,
    /// Levels whose guard was forgotten, which only `release` gives back.
    forgotten: Cell<usize>,
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner.get())
            .field("depth", &self.depth.get())
            .finish_non_exhaustive()
    }
}

impl Default for RLock {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`RLock::release`] released nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The current greenlet does not hold the lock.
    NotOwner,
    /// Every level the current greenlet holds has a live guard, which releases its level when
    /// dropped: releasing one more would free the lock under a guard.
    NoForgottenLevel,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseError::NotOwner => "cannot release an RLock held by another greenlet (or by none)",
            ReleaseError::NoForgottenLevel => {
                "cannot release an RLock level that a live guard holds: dropping the guard releases it"
            }
        })
    }
}

impl core::error::Error for ReleaseError {}

impl RLock {
    /// An unlocked reentrant lock.
    pub const fn new() -> Self {
        RLock {
            semaphore: Semaphore::new(1),
            owner: Cell::new(None),
            depth: Cell::new(0),
            forgotten: Cell::new(0),
        }
    }

    /// Takes the lock, or takes it once more if the current greenlet holds it.
    pub fn acquire(&self) -> Result<RLockGuard<'_>, Interrupted> {
        self.take(Wait::Until(None)).map(|g| g.expect("no deadline"))
    }

    /// Takes the lock (or once more), waiting at most `timeout`; `Ok(None)` if another greenlet
    /// held it all that time.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<RLockGuard<'_>>, Interrupted> {
        self.take(Wait::Until(Some(hub().now() + timeout)))
    }

    /// Takes the lock (or once more) if no other greenlet holds it.
    pub fn try_acquire(&self) -> Option<RLockGuard<'_>> {
        self.take(Wait::No).ok().flatten()
    }

    /// Whether some greenlet holds it.
    pub fn locked(&self) -> bool {
        self.owner.get().is_some()
    }

    /// Releases one level of a hold whose guard was forgotten. An error unless the current
    /// greenlet holds the lock with such a level: the levels of live guards are theirs to
    /// release.
    pub fn release(&self) -> Result<(), ReleaseError> {
        if self.owner.get() != Some(hub().current_task().id) {
            return Err(ReleaseError::NotOwner);
        }
        let forgotten = self.forgotten.get();
        if forgotten == 0 {
            return Err(ReleaseError::NoForgottenLevel);
        }
        self.forgotten.set(forgotten - 1);
        self.release_level();
        Ok(())
    }

    fn take(&self, wait: Wait) -> Result<Option<RLockGuard<'_>>, Interrupted> {
        let me = hub().current_task().id;
        if self.owner.get() != Some(me) {
            let Some(permit) = self.semaphore.take_permit(wait)? else { return Ok(None) };
            permit.forget();
            self.owner.set(Some(me));
        }
        self.depth.set(self.depth.get() + 1);
        Ok(Some(RLockGuard { lock: self }))
    }

    /// Releases one level; the depth is at least one, as each caller holds a level (a guard or
    /// a forgotten one).
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
        self.lock.forgotten.set(self.lock.forgotten.get() + 1);
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
/// use gevent::lock::Mutex;
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
