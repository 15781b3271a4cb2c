//! Groups of greenlets (gevent's `gevent.pool`): [`Group`] tracks greenlets to join or kill
//! together; [`Pool`] also bounds how many run at once (its `spawn` waits for a free slot) and
//! maps functions over inputs. [`scope`] is the structured form: greenlets spawned in it are
//! joined when it ends, killed when it ends early, and the first error is passed up.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::panic::Location;
use core::time::Duration;

use crate::error::{GetError, GreenletError, Interrupted, JoinAllError};
use crate::greenlet::{AsGreenlet, Builder, Greenlet, GreenletRef, JoinAll};
use crate::lock::Semaphore;
use crate::queue::Queue;

/// A set of greenlets to join or kill together (gevent's `Group`). Members leave by
/// themselves when they finish.
#[derive(Default)]
pub struct Group {
    members: RefCell<Vec<GreenletRef>>,
    /// Size at which finished members are swept out next (keeps `add` amortised O(1)).
    sweep_at: Cell<usize>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("len", &self.len()).finish()
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    /// Spawns a greenlet into the group.
    #[track_caller]
    pub fn spawn<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Greenlet<T> {
        let g = Builder::new().spawn_located(Location::caller(), f);
        self.add(&g);
        g
    }

    /// Adds a greenlet (a finished one is not kept).
    pub fn add(&self, greenlet: &impl AsGreenlet) {
        let g = greenlet.as_greenlet();
        if g.ready() {
            return;
        }
        let mut members = self.members.borrow_mut();
        if members.len() >= self.sweep_at.get() {
            members.retain(|m| !m.ready());
            self.sweep_at.set((2 * members.len()).max(16));
        }
        if !members.contains(&g) {
            members.push(g);
        }
    }

    /// Removes a greenlet without touching it.
    pub fn discard(&self, greenlet: &impl AsGreenlet) {
        let g = greenlet.as_greenlet();
        self.members.borrow_mut().retain(|m| *m != g);
    }

    /// Whether the greenlet is a (live) member.
    pub fn contains(&self, greenlet: &impl AsGreenlet) -> bool {
        let g = greenlet.as_greenlet();
        self.members.borrow().iter().any(|m| *m == g && !m.ready())
    }

    /// Members that have not finished.
    pub fn len(&self) -> usize {
        self.members.borrow().iter().filter(|m| !m.ready()).count()
    }

    /// Whether every member has finished.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members that have not finished.
    pub fn greenlets(&self) -> Vec<GreenletRef> {
        self.members.borrow().iter().filter(|m| !m.ready()).cloned().collect()
    }

    /// Waits until every member has finished, including members added meanwhile.
    pub fn join(&self) -> Result<(), Interrupted> {
        self.join_until(None).map(|_| ())
    }

    /// Waits at most `timeout`; `Ok(true)` if every member finished.
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, Interrupted> {
        self.join_until(Some(timeout))
    }

    fn join_until(&self, timeout: Option<Duration>) -> Result<bool, Interrupted> {
        let deadline = timeout.map(|t| crate::now() + t);
        loop {
            let live = self.greenlets();
            if live.is_empty() {
                return Ok(true);
            }
            let mut join = JoinAll::new(&live);
            if let Some(deadline) = deadline {
                join = join.timeout(deadline.saturating_duration_since(crate::now()));
            }
            match join.wait() {
                Ok(done) if done.len() < live.len() => return Ok(false),
                Ok(_) => {}
                Err(JoinAllError::Interrupted(why)) => return Err(why),
                Err(JoinAllError::Failed { .. }) => unreachable!("raise_error is off"),
            }
        }
    }

    /// Kills every member and waits until they have all finished.
    pub fn kill(&self) -> Result<(), Interrupted> {
        loop {
            let live = self.greenlets();
            if live.is_empty() {
                return Ok(());
            }
            crate::killall(&live)?;
        }
    }
}

/// A slot of a [`Pool`], held by a member for as long as its body lives; dropping it (the
/// body returned, panicked, or was discarded unstarted) frees the slot.
struct Slot {
    slots: Rc<Semaphore>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release();
    }
}

/// A [`Group`] that runs at most `size` greenlets at once (gevent's `Pool`): [`spawn`]
/// waits while the pool is full. The bound holds however members end (killed, panicked, or
/// killed before they started).
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use gevent_core::pool::Pool;
/// let pool = Pool::new(2);
/// let squares: Vec<u32> = pool.map(|x: u32| x * x, 1..=5).unwrap();
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # });
/// ```
///
/// [`spawn`]: Pool::spawn
pub struct Pool {
    group: Group,
    slots: Rc<Semaphore>,
    size: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("size", &self.size).field("free", &self.free_count()).finish()
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
        Pool { group: Group::new(), slots: Rc::new(Semaphore::new(size)), size }
    }

    /// The number of slots.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Free slots.
    pub fn free_count(&self) -> usize {
        self.slots.available()
    }

    /// Whether every slot is taken.
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Waits until a slot is free (without taking it).
    pub fn wait_available(&self) -> Result<(), Interrupted> {
        drop(self.slots.acquire()?);
        Ok(())
    }

    /// Spawns a greenlet into the pool, waiting while the pool is full.
    #[track_caller]
    pub fn spawn<T: 'static>(
        &self,
        f: impl FnOnce() -> T + 'static,
    ) -> Result<Greenlet<T>, Interrupted> {
        let location = Location::caller();
        self.slots.acquire()?.forget();
        let slot = Slot { slots: self.slots.clone() };
        let g = Builder::new().spawn_located(location, move || {
            let _slot = slot;
            f()
        });
        self.group.add(&g);
        Ok(g)
    }

    /// Runs `f` in the pool and returns its value (gevent's `apply`).
    #[track_caller]
    pub fn apply<T: 'static>(&self, f: impl FnOnce() -> T + 'static) -> Result<T, GetError> {
        self.spawn(f)?.take()
    }

    /// Applies `f` to every item, at most `size` at once, and returns the results in input
    /// order; the first failure (a panic or a kill) stops it.
    pub fn map<I, U, F>(&self, f: F, items: I) -> Result<Vec<U>, GetError>
    where
        I: IntoIterator,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + Clone + 'static,
    {
        self.imap(f, items).collect()
    }

    /// Like [`map`](Self::map), but lazily: items are taken from the input only as slots free
    /// up, and results come out in input order as they are consumed.
    pub fn imap<I, U, F>(&self, f: F, items: I) -> Imap<'_, I::IntoIter, U, F>
    where
        I: IntoIterator,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + Clone + 'static,
    {
        Imap { pool: self, items: items.into_iter(), f, running: VecDeque::new() }
    }

    /// Like [`imap`](Self::imap), but results come out in the order they finish.
    pub fn imap_unordered<I, U, F>(&self, f: F, items: I) -> ImapUnordered<'_, I::IntoIter, U, F>
    where
        I: IntoIterator,
        I::Item: 'static,
        U: 'static,
        F: Fn(I::Item) -> U + Clone + 'static,
    {
        ImapUnordered {
            pool: self,
            items: items.into_iter(),
            f,
            running: Vec::new(),
            outstanding: 0,
            finished: Rc::new(Queue::new()),
        }
    }
}

impl core::ops::Deref for Pool {
    type Target = Group;

    fn deref(&self) -> &Group {
        &self.group
    }
}

/// The iterator of [`Pool::imap`].
pub struct Imap<'a, I, U: 'static, F> {
    pool: &'a Pool,
    items: I,
    f: F,
    running: VecDeque<Greenlet<U>>,
}

impl<I, U: 'static, F> fmt::Debug for Imap<'_, I, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap").field("running", &self.running.len()).finish_non_exhaustive()
    }
}

impl<I, U: 'static, F> Iterator for Imap<'_, I, U, F>
where
    I: Iterator,
    I::Item: 'static,
    U: 'static,
    F: Fn(I::Item) -> U + Clone + 'static,
{
    type Item = Result<U, GetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let spawned = keep_busy(self.pool, &mut self.items, self.running.len(), |item| {
            let f = self.f.clone();
            self.running.push_back(self.pool.spawn(move || f(item))?);
            Ok(())
        });
        if let Err(why) = spawned {
            return Some(Err(GetError::Interrupted(why)));
        }
        let next = self.running.pop_front()?;
        Some(next.take())
    }
}

/// Spawns members for `items` while the pool has a free slot, and waits for a slot only when
/// none of the iterator's members is `outstanding` (so that the first result can come).
fn keep_busy<I: Iterator>(
    pool: &Pool,
    items: &mut I,
    mut outstanding: usize,
    mut spawn: impl FnMut(I::Item) -> Result<(), Interrupted>,
) -> Result<(), Interrupted> {
    while outstanding == 0 || !pool.full() {
        let Some(item) = items.next() else { break };
        spawn(item)?;
        outstanding += 1;
    }
    Ok(())
}

/// The iterator of [`Pool::imap_unordered`].
pub struct ImapUnordered<'a, I, U: 'static, F> {
    pool: &'a Pool,
    items: I,
    f: F,
    /// Spawned greenlets by index; `None` once their result was yielded.
    running: Vec<Option<Greenlet<U>>>,
    /// How many of `running` are still `Some`.
    outstanding: usize,
    /// Indices of greenlets whose body ended, in the order they ended.
    finished: Rc<Queue<usize>>,
}

impl<I, U: 'static, F> fmt::Debug for ImapUnordered<'_, I, U, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered").finish_non_exhaustive()
    }
}

/// Reports a member's index when its body ends, however it ends.
struct Finished {
    index: usize,
    queue: Rc<Queue<usize>>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        // An unbounded queue takes every put.
        let _ = self.queue.try_put(self.index);
    }
}

impl<I, U: 'static, F> Iterator for ImapUnordered<'_, I, U, F>
where
    I: Iterator,
    I::Item: 'static,
    U: 'static,
    F: Fn(I::Item) -> U + Clone + 'static,
{
    type Item = Result<U, GetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let spawned = keep_busy(self.pool, &mut self.items, self.outstanding, |item| {
            let f = self.f.clone();
            let finished = Finished { index: self.running.len(), queue: self.finished.clone() };
            let g = self.pool.spawn(move || {
                let _finished = finished;
                f(item)
            })?;
            self.running.push(Some(g));
            self.outstanding += 1;
            Ok(())
        });
        if let Err(why) = spawned {
            return Some(Err(GetError::Interrupted(why)));
        }
        if self.outstanding == 0 {
            return None;
        }
        let index = match self.finished.get() {
            Ok(index) => index,
            Err(crate::queue::GetError::Interrupted(why)) => {
                return Some(Err(GetError::Interrupted(why)));
            }
            Err(_) => unreachable!("the queue is neither closed nor polled"),
        };
        let g = self.running[index].take().expect("each index finishes once");
        self.outstanding -= 1;
        Some(g.take())
    }
}

/// Why a [`scope`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError<E> {
    /// The scope's body, or a child, returned this error first.
    Failed(E),
    /// A child panicked or was killed (not by the scope).
    Child(GreenletError),
    /// Waiting for the children was interrupted.
    Interrupted(Interrupted),
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Failed(e) => write!(f, "the scope failed: {e}"),
            ScopeError::Child(e) => write!(f, "a greenlet of the scope failed: {e}"),
            ScopeError::Interrupted(why) => write!(f, "waiting for the scope stopped: {why}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ScopeError<E> {}

/// The handle of a [`scope`], for spawning its children.
pub struct Scope<E> {
    children: RefCell<Vec<GreenletRef>>,
    /// The first error a child returned.
    first_error: Rc<RefCell<Option<E>>>,
}

impl<E> fmt::Debug for Scope<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("children", &self.children.borrow().len()).finish()
    }
}

impl<E: 'static> Scope<E> {
    /// Spawns a child: it runs until it returns, and is joined (or killed) when the scope ends.
    /// An `Err` it returns ends the scope with that error.
    #[track_caller]
    pub fn spawn(&self, f: impl FnOnce() -> Result<(), E> + 'static) -> GreenletRef {
        let first_error = self.first_error.clone();
        let g = Builder::new().spawn_located(Location::caller(), move || {
            if let Err(e) = f() {
                first_error.borrow_mut().get_or_insert(e);
            }
        });
        let r = g.to_ref();
        self.children.borrow_mut().push(r.clone());
        r
    }
}

/// Runs `body` with a [`Scope`] to spawn children into (structured concurrency, what gevent
/// users have asked for as nurseries).
///
/// When `body` returns `Ok`, the scope waits for every child; the first child to fail (in
/// time) makes it kill the others and return that failure. When `body` returns `Err`, the
/// children are killed and the error is returned. Either way no child outlives the scope.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent_core::{pool::{scope, ScopeError}, sleep};
/// let result: Result<(), ScopeError<&str>> = scope(|s| {
///     s.spawn(|| { sleep(Duration::from_millis(5)).map_err(|_| "killed")?; Err("disk full") });
///     s.spawn(|| { sleep(Duration::from_secs(60)).map_err(|_| "killed")?; Ok(()) });
///     Ok(())
/// });
/// assert_eq!(result, Err(ScopeError::Failed("disk full"))); // the other child was killed
/// # });
/// ```
pub fn scope<R, E: 'static>(
    body: impl FnOnce(&Scope<E>) -> Result<R, E>,
) -> Result<R, ScopeError<E>> {
    let scope =
        Scope { children: RefCell::new(Vec::new()), first_error: Rc::new(RefCell::new(None)) };
    let outcome = body(&scope);
    let kill_children = |scope: &Scope<E>| {
        let children = scope.children.borrow().clone();
        crate::shield(|| crate::killall(&children))
    };
    let value = match outcome {
        Err(e) => {
            kill_children(&scope).map_err(ScopeError::Interrupted)?;
            return Err(ScopeError::Failed(e));
        }
        Ok(value) => value,
    };
    loop {
        let children = scope.children.borrow().clone();
        let count = children.len();
        let first_error = scope.first_error.clone();
        let joined = JoinAll::new(&children)
            .raise_error(true)
            .wait_or_stop(&|| first_error.borrow().is_some());
        let failure = match joined {
            Ok(_) if scope.first_error.borrow().is_some() => None,
            Ok(_) if scope.children.borrow().len() == count => break,
            Ok(_) => continue, // a child spawned more children meanwhile
            Err(JoinAllError::Failed { error, .. }) => Some(error),
            Err(JoinAllError::Interrupted(why)) => {
                kill_children(&scope).map_err(ScopeError::Interrupted)?;
                return Err(ScopeError::Interrupted(why));
            }
        };
        kill_children(&scope).map_err(ScopeError::Interrupted)?;
        let returned = scope.first_error.borrow_mut().take();
        return Err(match (returned, failure) {
            (Some(e), _) => ScopeError::Failed(e),
            (None, Some(error)) => ScopeError::Child(error),
            (None, None) => unreachable!("stopped for a reason"),
        });
    }
    Ok(value)
}
