//! Groups of greenlets (gevent's `gevent.pool`): [`Group`] tracks greenlets to join or kill
//! together; [`Pool`] also bounds how many run at once (its `spawn` and `add` wait for a free
//! slot) and maps functions over inputs. [`scope`](fn@scope) is the structured form: children
//! are joined when it ends, killed when it ends early, may borrow from the caller's stack, and
//! the first error is passed up.

mod group;
mod imap;
mod members;
mod scope;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::fmt;
use core::panic::Location;
use core::time::Duration;

use group::{Shared, group_methods};

pub use group::Group;
use imap::Mapping;
pub use imap::{Imap, ImapUnordered};
pub use scope::{Scope, ScopeError, scope};

use crate::error::{GetError, Interrupted};
use crate::greenlet::{AsGreenlet, Greenlet, GreenletRef};
use crate::lock::{Semaphore, SemaphoreGuard};

/// [`Pool::try_add`] or [`Pool::add_timeout`] found every slot of the pool taken (gevent's
/// `PoolFull`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolFull {
    size: usize,
}

impl PoolFull {
    /// The size of the pool that was full.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl fmt::Display for PoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the pool is full: all {} of its slots are taken", self.size)
    }
}

impl core::error::Error for PoolFull {}

/// Why [`Pool::add_timeout`] did not add the greenlet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddError {
    /// No slot came free in time.
    Full(PoolFull),
    /// The waiting greenlet was killed or its [`Timeout`](crate::Timeout) expired.
    Interrupted(Interrupted),
}

impl From<PoolFull> for AddError {
    fn from(e: PoolFull) -> Self {
        AddError::Full(e)
    }
}

impl From<Interrupted> for AddError {
    fn from(e: Interrupted) -> Self {
        AddError::Interrupted(e)
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddError::Full(e) => fmt::Display::fmt(e, f),
            AddError::Interrupted(why) => {
                write!(f, "waiting for a slot of the pool stopped: {why}")
            }
        }
    }
}

impl core::error::Error for AddError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            AddError::Full(e) => Some(e),
            AddError::Interrupted(e) => Some(e),
        }
    }
}

/// A group that runs at most `size` greenlets at once (gevent's `Pool`): [`spawn`] and
/// [`add`] wait while the pool is full. A member holds its slot until it leaves: when its body
/// ends (however it ends: returned, panicked, killed, even before it started) or when it is
/// [`discard`]ed.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent::pool::Pool;
/// let pool = Pool::new(2);
/// let squares: Vec<u32> = pool.map(|x: u32| x * x, 1..=5).unwrap();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # });
/// ```
///
/// [`spawn`]: Pool::spawn
/// [`add`]: Pool::add
/// [`discard`]: Pool::discard
pub struct Pool {
    shared: Rc<Shared>,
    size: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("free", &self.free_count())
            .field("len", &self.len())
            .finish()
    }
}

impl Pool {
    /// A pool of `size` slots.
    ///
    /// # Panics
    ///
    /// If `size` is 0: nothing could ever run in it.
    pub fn new(size: usize) -> Self {
        assert!(size > 0, "a Pool needs at least one slot");
        Pool { shared: Shared::new(Some(Semaphore::new(size)), false), size }
    }

    fn slots(&self) -> &Semaphore {
        self.shared.slots.as_ref().expect("a pool has slots")
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.slots().available()
    }

    /// Whether every slot is taken.
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Waits until a slot is free (without taking it).
    pub fn wait_available(&self) -> Result<(), Interrupted> {
        drop(self.slots().acquire()?);
        Ok(())
    }

    /// Spawns a greenlet into the pool, waiting while the pool is full.
    #[track_caller]
    pub fn spawn<T: 'static>(
        &self,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Greenlet<T>, Interrupted> {
        let location = Location::caller();
        self.slots().acquire()?.forget();
        Ok(self.shared.spawn(location, true, f))
    }

    /// Adds a greenlet spawned elsewhere, waiting for a slot while the pool is full; the
    /// greenlet holds the slot until it finishes or is discarded. Adding a member again or a
    /// finished greenlet does nothing and takes no slot.
    pub fn add(&self, greenlet: &impl AsGreenlet) -> Result<(), Interrupted> {
        let g = greenlet.as_greenlet();
        if !self.shared.may_add(&g) {
            return Ok(());
        }
        let slot = self.slots().acquire()?;
        self.add_with(&g, slot);
        Ok(())
    }

    /// Like [`add`](Self::add), waiting at most `timeout` for a slot.
    pub fn add_timeout(
        &self,
        greenlet: &impl AsGreenlet,
        timeout: Duration,
    ) -> Result<(), AddError> {
        let g = greenlet.as_greenlet();
        if !self.shared.may_add(&g) {
            return Ok(());
        }
        let slot = self.slots().acquire_timeout(timeout)?.ok_or(PoolFull { size: self.size })?;
        self.add_with(&g, slot);
        Ok(())
    }

    /// Like [`add`](Self::add), but fails at once if no slot is free.
    pub fn try_add(&self, greenlet: &impl AsGreenlet) -> Result<(), PoolFull> {
        let g = greenlet.as_greenlet();
        if !self.shared.may_add(&g) {
            return Ok(());
        }
        let slot = self.slots().try_acquire().ok_or(PoolFull { size: self.size })?;
        self.add_with(&g, slot);
        Ok(())
    }

    /// Adds `g` with the slot taken for it; gives the slot back if `g` finished or was added
    /// by someone else while the slot was awaited.
    fn add_with(&self, g: &GreenletRef, slot: SemaphoreGuard<'_>) {
        if self.shared.add(g, true) {
            slot.forget(); // the member gives it back when it leaves
        }
    }

    /// Removes a greenlet from the pool without touching it, and frees its slot: the pool may
    /// then run one more greenlet while this one goes on.
    pub fn discard(&self, greenlet: &impl AsGreenlet) {
        self.shared.discard(&greenlet.as_greenlet());
    }

    group_methods!();

    /// Runs `f` in the pool and returns its value (gevent's `apply`). Called from a member of
    /// this pool, it runs `f` directly in the caller, as gevent does: spawning would wait for a
    /// slot that the caller itself may hold. A panic of `f` then unwinds into the caller.
    #[track_caller]
    pub fn apply<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Result<T, GetError> {
        if self.shared.current_member().is_some() {
            return Ok(f());
        }
        self.spawn(f)?.take()
    }

    /// Applies `f` to every item, at most [`size`](Self::size) at once, and returns the
    /// results in input order; the first failure (a panic or a kill) is returned instead. The
    /// input is read up front; for a lazy input use [`imap`](Self::imap).
    #[track_caller]
    pub fn map<I, U, F>(&self, f: F, items: I) -> Result<Vec<U>, GetError>
    where
        I: IntoIterator,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        let items: Vec<I::Item> = items.into_iter().collect();
        self.imap(f, items).collect()
    }

    /// Applies `f` to every item in the pool and yields the results in input order, as they
    /// come (gevent's `imap`).
    ///
    /// The input is pulled by a greenlet of its own, as fast as the pool's slots allow, so a
    /// finished result is handed out even while the input iterator blocks (on a queue, say).
    /// Results wait for the reader without limit; [`imap_bounded`](Self::imap_bounded) caps
    /// them. Dropping the iterator stops the input greenlet; members already spawned run on.
    ///
    /// ```
    /// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
    /// # #[cfg(not(miri))] // Miri cannot switch stacks
    /// # gevent_core::sim::run(|| {
    /// use gevent::pool::Pool;
    /// let pool = Pool::new(3);
    /// let doubled: Vec<u64> = pool.imap(|x: u64| 2 * x, 0..5).map(Result::unwrap).collect();
    /// assert_eq!(doubled, [0, 2, 4, 6, 8]);
    /// # });
    /// ```
    #[track_caller]
    pub fn imap<I, U, F>(&self, f: F, items: I) -> Imap<U>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        Imap {
            mapping: Mapping::start(
                &self.shared,
                Location::caller(),
                f,
                items.into_iter(),
                None,
                true,
            ),
        }
    }

    /// Like [`imap`](Self::imap), holding at most `maxsize` results at a time (gevent's
    /// `maxsize`): items spawned and not yet handed out, whether running or finished and
    /// waiting for the reader. The input greenlet waits (before pulling the next item) while
    /// that many are held, so `maxsize` also bounds how many run at once. A `maxsize` of 0 is
    /// taken as 1.
    #[track_caller]
    pub fn imap_bounded<I, U, F>(&self, f: F, items: I, maxsize: usize) -> Imap<U>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        Imap {
            mapping: Mapping::start(
                &self.shared,
                Location::caller(),
                f,
                items.into_iter(),
                Some(maxsize),
                true,
            ),
        }
    }

    /// Like [`imap`](Self::imap), but results come out in the order the members finish
    /// (gevent's `imap_unordered`).
    #[track_caller]
    pub fn imap_unordered<I, U, F>(&self, f: F, items: I) -> ImapUnordered<U>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        ImapUnordered {
            mapping: Mapping::start(
                &self.shared,
                Location::caller(),
                f,
                items.into_iter(),
                None,
                false,
            ),
        }
    }

    /// Like [`imap_unordered`](Self::imap_unordered), holding at most `maxsize` results at a
    /// time, as [`imap_bounded`](Self::imap_bounded) does.
    #[track_caller]
    pub fn imap_unordered_bounded<I, U, F>(
        &self,
        f: F,
        items: I,
        maxsize: usize,
    ) -> ImapUnordered<U>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        ImapUnordered {
            mapping: Mapping::start(
                &self.shared,
                Location::caller(),
                f,
                items.into_iter(),
                Some(maxsize),
                false,
            ),
        }
    }
}
