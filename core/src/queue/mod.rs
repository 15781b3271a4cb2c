//! Queues between greenlets (gevent's `gevent.queue`): [`Queue`] (FIFO), [`LifoQueue`],
//! [`PriorityQueue`], [`JoinableQueue`], and [`Channel`] (capacity 0: a put completes when a
//! getter takes the item).
//!
//! Every queue can be bounded (`put` then blocks while it is full) or unbounded, and closed:
//! after [`close`](GenericQueue::close), puts fail at once with the item handed back, and gets
//! drain what is left, then fail with [`GetError::Closed`], so producers and consumers end
//! cleanly.
//!
//! Iterating a queue gets items until it is closed and drained. Each item comes as
//! `Ok(item)`; if the iterating greenlet is killed or its [`Timeout`](crate::Timeout) expires,
//! the iterator yields that `Err(Interrupted)` once and then ends, so a consumer never mistakes
//! an interruption for the end of the stream: `queue.iter().collect::<Result<Vec<_>, _>>()`
//! is `Ok` only if the queue was closed.
//!
//! Blocked getters and putters are served in arrival order: an item put while getters wait is
//! handed to the first of them directly (it never enters the queue), and a slot that frees
//! while putters wait is reserved for the first of them before it runs, so a greenlet arriving
//! meanwhile can take neither. Between two greenlets a put or get that does not block is
//! a few pointer moves; a bounded queue allocates nothing per item after it is created.

mod channel;
mod get;
mod order;

use core::cell::{RefCell, RefMut};
use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::ops::Deref;
use core::time::Duration;

pub use channel::{Channel, ChannelIter};
pub use order::{Fifo, Lifo, Priority, QueueOrder};

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::sync::takers::Takers;
use crate::sync::waiters::{Refused, Side, Status, Wait, Waiters, reserve_then, wake_all};
use crate::time::Instant;
use crate::wait_list::WaitList;

/// A first-in, first-out queue (gevent's `Queue`).
pub type Queue<T> = GenericQueue<T, Fifo<T>>;
/// A last-in, first-out queue (gevent's `LifoQueue`).
pub type LifoQueue<T> = GenericQueue<T, Lifo<T>>;
/// A queue that returns its smallest item first (gevent's `PriorityQueue`).
pub type PriorityQueue<T> = GenericQueue<T, Priority<T>>;

/// Why a put did not add its item; the item comes back in every case.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError<T> {
    /// The queue was full: for `try_put`, or when `put_timeout` ran out of time.
    Full(T),
    /// The queue is closed.
    Closed(T),
    /// The putting greenlet was killed or its [`Timeout`](crate::Timeout) expired.
    Interrupted(T, Interrupted),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_item(self) -> T {
        match self {
            PutError::Full(item) | PutError::Closed(item) | PutError::Interrupted(item, _) => item,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::Closed(_) => f.write_str("Closed(..)"),
            PutError::Interrupted(_, why) => write!(f, "Interrupted(.., {why:?})"),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("the queue is full"),
            PutError::Closed(_) => f.write_str("the queue is closed"),
            PutError::Interrupted(_, why) => write!(f, "the put was interrupted: {why}"),
        }
    }
}

impl<T> core::error::Error for PutError<T> {}

/// Why a get returned no item.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// The queue was empty: for `try_get`, or when `get_timeout` ran out of time.
    Empty,
    /// The queue is closed and drained.
    Closed,
    /// The getting greenlet was killed or its [`Timeout`](crate::Timeout) expired.
    Interrupted(Interrupted),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Empty => f.write_str("the queue is empty"),
            GetError::Closed => f.write_str("the queue is closed and empty"),
            GetError::Interrupted(why) => write!(f, "the get was interrupted: {why}"),
        }
    }
}

impl core::error::Error for GetError {}

/// [`JoinableQueue::task_done`] was called more times than items were put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError(());

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than there were items put")
    }
}

impl core::error::Error for TaskDoneError {}

struct State<T, O> {
    items: O,
    /// The most items it holds; `usize::MAX` when unbounded (no count of items reaches it),
    /// so that the test for room is one comparison.
    bound: usize,
    /// Getters wait only while the queue is empty: a put hands them its item directly.
    getters: Takers<T>,
    putters: Waiters,
    peekers: WaitList<TaskRef>,
    closed: bool,
    /// Items put and not yet marked done (for [`JoinableQueue`]).
    unfinished: usize,
    joiners: WaitList<TaskRef>,
    _item: PhantomData<T>,
}

impl<T, O: QueueOrder<T>> State<T, O> {
    /// Adds a put item: to the first waiting getter, or to the queue.
    #[inline(always)]
    fn add(&mut self, item: T) {
        // A getter waits only while the queue is empty: it takes the item straight from the
        // put.
        match self.getters.deliver(item) {
            // The item took no slot: one the put had reserved may be free for the next putter.
            Ok(()) => Putters::hand_on(self),
            Err(item) => {
                self.items.push(item);
                if !self.peekers.is_empty() {
                    wake_all(&mut self.peekers);
                }
            }
        }
    }

    fn maxsize(&self) -> Option<usize> {
        (self.bound != usize::MAX).then_some(self.bound)
    }

    fn has_room(&self) -> bool {
        self.items.len() + self.putters.reserved() < self.bound
    }
}

/// The putters of a queue: their unit is a free slot.
struct Putters<T, O>(PhantomData<(T, O)>);

impl<T, O: QueueOrder<T>> Side for Putters<T, O> {
    type State = State<T, O>;
    const KIND: WaitKind = WaitKind::Other(&"room in a full queue (a put)");

    fn waiters(s: &mut State<T, O>) -> &mut Waiters {
        &mut s.putters
    }

    fn status(s: &State<T, O>) -> Status {
        if s.closed {
            Status::Closed
        } else if s.has_room() {
            Status::Free
        } else {
            Status::Unavailable
        }
    }

    #[inline]
    fn hand_on(s: &mut State<T, O>) {
        // As for the getters: nobody waiting is the usual answer.
        if !s.putters.is_empty() && s.has_room() {
            s.putters.hand_off();
        }
    }
}

/// A queue of `T` whose order `O` decides which item `get` returns; use the aliases
/// [`Queue`], [`LifoQueue`] and [`PriorityQueue`].
///
/// Share it between greenlets with an `Rc`.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use std::rc::Rc;
/// use gevent::{queue::Queue, spawn};
/// let queue = Rc::new(Queue::bounded(2));
/// let q = queue.clone();
/// let producer = spawn(move || {
///     for i in 0..5 {
///         q.put(i).unwrap(); // blocks while 2 items wait
///     }
///     q.close();
/// });
/// let received: Result<Vec<i32>, _> = queue.iter().collect();
/// assert_eq!(received, Ok(vec![0, 1, 2, 3, 4]));
/// producer.join().unwrap();
/// # });
/// ```
pub struct GenericQueue<T, O: QueueOrder<T>> {
    state: RefCell<State<T, O>>,
}

impl<T, O: QueueOrder<T>> fmt::Debug for GenericQueue<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Queue")
            .field("len", &s.items.len())
            .field("maxsize", &s.maxsize())
            .field("closed", &s.closed)
            .finish_non_exhaustive()
    }
}

impl<T, O: QueueOrder<T>> Default for GenericQueue<T, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, O: QueueOrder<T>> GenericQueue<T, O> {
    fn with(items: O, maxsize: Option<usize>) -> Self {
        GenericQueue {
            state: RefCell::new(State {
                items,
                bound: maxsize.unwrap_or(usize::MAX),
                getters: Takers::new(),
                putters: Waiters::new(),
                peekers: WaitList::new(),
                closed: false,
                unfinished: 0,
                joiners: WaitList::new(),
                _item: PhantomData,
            }),
        }
    }

    /// An unbounded queue: `put` never blocks.
    pub fn new() -> Self {
        Self::with(O::with_capacity(0), None)
    }

    /// A queue holding at most `maxsize` items: `put` blocks while it is full. Its storage is
    /// allocated here, once.
    ///
    /// # Panics
    ///
    /// If `maxsize` is 0: a queue of size 0 is a [`Channel`].
    pub fn bounded(maxsize: usize) -> Self {
        assert!(maxsize > 0, "a queue of size 0 is a rendezvous: use queue::Channel");
        Self::with(O::with_capacity(maxsize), Some(maxsize))
    }

    /// The bound, if any.
    pub fn maxsize(&self) -> Option<usize> {
        self.state.borrow().maxsize()
    }

    /// Items in the queue. An item put while a getter waits goes straight to that getter and
    /// is not counted here, even before the getter runs (gevent's `qsize()` counts it until
    /// then).
    pub fn len(&self) -> usize {
        self.state.borrow().items.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a put would block (the bound is reached).
    pub fn is_full(&self) -> bool {
        !self.state.borrow().has_room()
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// Adds an item, waiting while the queue is full.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::Until(None))
    }

    /// Adds an item, waiting at most `timeout` for room; [`PutError::Full`] if none came.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::Until(Some(hub().now() + timeout)))
    }

    /// Adds an item if there is room now.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::No)
    }

    /// Removes and returns the next item, waiting while the queue is empty.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Wait::Until(None))
    }

    /// Removes and returns the next item, waiting at most `timeout`; [`GetError::Empty`] if
    /// none came.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Wait::Until(Some(hub().now() + timeout)))
    }

    /// Removes and returns the next item if there is one now.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Wait::No)
    }

    /// A copy of the next item, without removing it; waits while the queue is empty.
    pub fn peek(&self) -> Result<T, GetError>
    where
        T: Clone,
    {
        self.peek_until(None)
    }

    /// A copy of the next item, without removing it; waits at most `timeout`, then fails with
    /// [`GetError::Empty`].
    pub fn peek_timeout(&self, timeout: Duration) -> Result<T, GetError>
    where
        T: Clone,
    {
        self.peek_until(Some(hub().now() + timeout))
    }

    fn peek_until(&self, deadline: Option<Instant>) -> Result<T, GetError>
    where
        T: Clone,
    {
        let hub = hub();
        let timer = DeadlineTimer::arm(deadline);
        loop {
            if let Some(item) = self.try_peek() {
                return Ok(item);
            }
            if self.is_closed() {
                return Err(GetError::Closed);
            }
            if timer.expired() {
                return Err(GetError::Empty);
            }
            let key = self.state.borrow_mut().peekers.push_back(hub.current());
            let parked = hub.park(WaitKind::Other(&"a queue to have an item to peek at"));
            self.state.borrow_mut().peekers.remove(key);
            parked.map_err(GetError::Interrupted)?;
        }
    }

    /// A copy of the next item, if there is one.
    pub fn try_peek(&self) -> Option<T>
    where
        T: Clone,
    {
        self.state.borrow().items.peek().cloned()
    }

    /// Closes the queue: later puts fail with their item handed back, gets drain what is left
    /// and then fail with [`GetError::Closed`]; every blocked greenlet wakes to see it.
    pub fn close(&self) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.getters.wake_all();
        s.putters.wake_all();
        wake_all(&mut s.peekers);
    }

    /// Iterates by [`get`](Self::get) until the queue is closed and drained. An interruption
    /// of the iterating greenlet (a kill, a [`Timeout`](crate::Timeout)) comes out once as
    /// `Err`, and then the iteration ends.
    pub fn iter(&self) -> Iter<'_, T, O> {
        Iter { queue: self, done: false }
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        // Inlined into both places `reserve_then` takes the outcome.
        reserve_then::<Putters<T, O>, _>(
            &self.state,
            wait,
            #[inline(always)]
            move |got| match got {
                Ok(mut s) => {
                    s.unfinished += 1;
                    s.add(item);
                    Ok(())
                }
                Err(Refused::Closed) => Err(PutError::Closed(item)),
                Err(Refused::Unavailable) => Err(PutError::Full(item)),
                Err(Refused::Interrupted(why)) => Err(PutError::Interrupted(item, why)),
            },
        )
    }

    fn get_with(&self, wait: Wait) -> Result<T, GetError> {
        let s = self.state.borrow_mut();
        if !s.items.is_empty() {
            return Ok(Self::pop(s));
        }
        // Closing drains: only an empty queue reports it.
        if s.closed {
            return Err(GetError::Closed);
        }
        match wait {
            Wait::No => Err(GetError::Empty),
            Wait::Until(deadline) => get::wait_for_item(&self.state, s, deadline),
        }
    }

    /// Takes the next item of a queue that has one, and gives its slot to a waiting putter.
    #[inline]
    fn pop(mut s: RefMut<'_, State<T, O>>) -> T {
        let item = s.items.pop().expect("the queue has an item: tested by the caller");
        Putters::hand_on(&mut s);
        item
    }

    /// See [`JoinableQueue::task_done`].
    fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut s = self.state.borrow_mut();
        if s.unfinished == 0 {
            return Err(TaskDoneError(()));
        }
        s.unfinished -= 1;
        if s.unfinished == 0 {
            wake_all(&mut s.joiners);
        }
        Ok(())
    }

    /// See [`JoinableQueue::join`].
    fn join(&self) -> Result<(), Interrupted> {
        let hub = hub();
        while self.state.borrow().unfinished > 0 {
            let key = self.state.borrow_mut().joiners.push_back(hub.current());
            let parked = hub.park(WaitKind::Other(&"every item of a JoinableQueue to be done"));
            self.state.borrow_mut().joiners.remove(key);
            parked?;
        }
        Ok(())
    }
}

/// The iterator of [`GenericQueue::iter`]: `Ok(item)` until the queue is closed and drained;
/// an interruption of the iterating greenlet comes out once as `Err`, and then it ends.
pub struct Iter<'a, T, O: QueueOrder<T>> {
    queue: &'a GenericQueue<T, O>,
    done: bool,
}

impl<T, O: QueueOrder<T>> fmt::Debug for Iter<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<T, O: QueueOrder<T>> Iterator for Iter<'_, T, O> {
    type Item = Result<T, Interrupted>;

    fn next(&mut self) -> Option<Result<T, Interrupted>> {
        if self.done {
            return None;
        }
        iteration_step(&mut self.done, self.queue.get())
    }
}

impl<T, O: QueueOrder<T>> FusedIterator for Iter<'_, T, O> {}

impl<'a, T, O: QueueOrder<T>> IntoIterator for &'a GenericQueue<T, O> {
    type Item = Result<T, Interrupted>;
    type IntoIter = Iter<'a, T, O>;

    fn into_iter(self) -> Iter<'a, T, O> {
        self.iter()
    }
}

/// What an iterator over a queue or channel yields for the result of a blocking get: the
/// item, or the interruption once (then `done`), or the end once the source is closed.
fn iteration_step<T>(done: &mut bool, got: Result<T, GetError>) -> Option<Result<T, Interrupted>> {
    match got {
        Ok(item) => Some(Ok(item)),
        Err(GetError::Interrupted(why)) => {
            *done = true;
            Some(Err(why))
        }
        Err(GetError::Closed | GetError::Empty) => {
            *done = true;
            None
        }
    }
}

/// A FIFO [`Queue`] that also counts unfinished items (gevent's `JoinableQueue`): every put
/// adds one, [`task_done`](Self::task_done) removes one, and [`join`](Self::join) waits until
/// none are left. It dereferences to its [`Queue`] for everything else.
#[derive(Debug, Default)]
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    pub fn new() -> Self {
        JoinableQueue { queue: Queue::new() }
    }

    /// A joinable queue holding at most `maxsize` items; see [`GenericQueue::bounded`].
    pub fn bounded(maxsize: usize) -> Self {
        JoinableQueue { queue: Queue::bounded(maxsize) }
    }

    /// Marks one item as processed.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.queue.task_done()
    }

    /// Items put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.queue.state.borrow().unfinished
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<(), Interrupted> {
        self.queue.join()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}
