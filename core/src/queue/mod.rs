//! Queues between greenlets (gevent's `gevent.queue`): [`Queue`] (FIFO), [`LifoQueue`],
//! [`PriorityQueue`], [`JoinableQueue`], and [`Channel`] (capacity 0: a put completes when a
//! getter takes the item).
//!
//! Every queue can be bounded (`put` then blocks while it is full) or unbounded, and closed:
//! after [`close`](GenericQueue::close), puts fail at once with the item handed back, and gets
//! drain what is left, then fail with [`GetError::Closed`], so producers and consumers end
//! cleanly; iterating a queue stops there.
//!
//! Blocked getters and putters are served in arrival order: an item (or a free slot) that
//! appears while greenlets wait is reserved for the first of them before it runs, so a greenlet
//! arriving meanwhile cannot take it. Between two greenlets a put or get that does not block is
//! a few pointer moves; a bounded queue allocates nothing per item after it is created.

mod channel;
mod order;

use core::cell::RefCell;
use core::fmt;
use core::ops::Deref;
use core::time::Duration;

pub use channel::Channel;
pub use order::{Fifo, Lifo, Priority, QueueOrder};

use crate::error::Interrupted;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::sync::waiters::{Turn, Waiters, give_up_reservation, notify, wait_turn, wake_all};
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

/// How long an operation may wait.
#[derive(Clone, Copy)]
enum Wait {
    No,
    Until(Option<Instant>),
}

struct State<T, O> {
    items: O,
    maxsize: Option<usize>,
    getters: Waiters,
    putters: Waiters,
    peekers: WaitList<TaskRef>,
    closed: bool,
    /// Items put and not yet marked done (for [`JoinableQueue`]).
    unfinished: usize,
    joiners: WaitList<TaskRef>,
    _item: core::marker::PhantomData<T>,
}

impl<T, O: QueueOrder<T>> State<T, O> {
    /// Items not reserved for woken getters.
    fn unreserved_items(&self) -> usize {
        self.items.len() - self.getters.reserved()
    }

    fn has_room(&self) -> bool {
        self.maxsize.is_none_or(|max| self.items.len() + self.putters.reserved() < max)
    }

    /// After an item arrived: reserve one for the first waiting getter, if any.
    fn handoff_item(&mut self) -> Option<TaskRef> {
        if self.unreserved_items() > 0 { self.getters.hand_off() } else { None }
    }

    /// After an item left: reserve the free slot for the first waiting putter, if any.
    fn handoff_room(&mut self) -> Option<TaskRef> {
        if self.has_room() { self.putters.hand_off() } else { None }
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
/// use gevent_core::{queue::Queue, spawn};
/// let queue = Rc::new(Queue::bounded(2));
/// let q = queue.clone();
/// let producer = spawn(move || {
///     for i in 0..5 {
///         q.put(i).unwrap(); // blocks while 2 items wait
///     }
///     q.close();
/// });
/// let received: Vec<i32> = queue.iter().collect();
/// assert_eq!(received, [0, 1, 2, 3, 4]);
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
            .field("maxsize", &s.maxsize)
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
                maxsize,
                getters: Waiters::new(),
                putters: Waiters::new(),
                peekers: WaitList::new(),
                closed: false,
                unfinished: 0,
                joiners: WaitList::new(),
                _item: core::marker::PhantomData,
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
        self.state.borrow().maxsize
    }

    /// Items in the queue.
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
        let hub = hub();
        loop {
            if let Some(item) = self.try_peek() {
                return Ok(item);
            }
            if self.is_closed() {
                return Err(GetError::Closed);
            }
            let key = self.state.borrow_mut().peekers.push_back(hub.current());
            let parked = hub.park(WaitKind::Other("a queue to have an item to peek at"));
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

    /// Iterates by [`get`](Self::get) until the queue is closed and drained (or the greenlet
    /// is interrupted).
    pub fn iter(&self) -> Iter<'_, T, O> {
        Iter { queue: self }
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        {
            let s = self.state.borrow_mut();
            if s.closed {
                return Err(PutError::Closed(item));
            }
            if s.has_room() {
                return self.push(s, item);
            }
            if let Wait::No = wait {
                return Err(PutError::Full(item));
            }
        }
        let Wait::Until(deadline) = wait else { unreachable!("handled above") };
        loop {
            let turn = wait_turn(
                &self.state,
                |s| &mut s.putters,
                WaitKind::Other("room in a full queue (a put)"),
                deadline,
            );
            let mut s = self.state.borrow_mut();
            match turn {
                Turn::Granted => {
                    s.putters.claim();
                    if s.closed {
                        return Err(PutError::Closed(item));
                    }
                    return self.push(s, item);
                }
                Turn::TimedOut => return Err(PutError::Full(item)),
                Turn::Interrupted { why, reserved } => {
                    if reserved {
                        give_up_reservation(s, |s| &mut s.putters, State::has_room);
                    }
                    return Err(PutError::Interrupted(item, why));
                }
                Turn::Woken if s.closed => return Err(PutError::Closed(item)),
                Turn::Woken if s.has_room() => return self.push(s, item),
                Turn::Woken => {}
            }
        }
    }

    fn push(&self, mut s: core::cell::RefMut<'_, State<T, O>>, item: T) -> Result<(), PutError<T>> {
        s.items.push(item);
        s.unfinished += 1;
        let getter = s.handoff_item();
        if !s.peekers.is_empty() {
            wake_all(&mut s.peekers);
        }
        drop(s);
        notify(getter);
        Ok(())
    }

    fn get_with(&self, wait: Wait) -> Result<T, GetError> {
        {
            let s = self.state.borrow_mut();
            if s.unreserved_items() > 0 {
                return Ok(Self::pop(s));
            }
            if s.closed {
                return Err(GetError::Closed);
            }
            if let Wait::No = wait {
                return Err(GetError::Empty);
            }
        }
        let Wait::Until(deadline) = wait else { unreachable!("handled above") };
        loop {
            let turn = wait_turn(
                &self.state,
                |s| &mut s.getters,
                WaitKind::Other("an item in an empty queue (a get)"),
                deadline,
            );
            let mut s = self.state.borrow_mut();
            match turn {
                Turn::Granted => {
                    s.getters.claim();
                    return Ok(Self::pop(s));
                }
                Turn::TimedOut => return Err(GetError::Empty),
                Turn::Interrupted { why, reserved } => {
                    if reserved {
                        give_up_reservation(s, |s| &mut s.getters, |s| s.unreserved_items() > 0);
                    }
                    return Err(GetError::Interrupted(why));
                }
                Turn::Woken if s.unreserved_items() > 0 => return Ok(Self::pop(s)),
                Turn::Woken if s.closed => return Err(GetError::Closed),
                Turn::Woken => {}
            }
        }
    }

    fn pop(mut s: core::cell::RefMut<'_, State<T, O>>) -> T {
        let item = s.items.pop().expect("an unreserved or reserved item is there");
        let putter = s.handoff_room();
        drop(s);
        notify(putter);
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
            let parked = hub.park(WaitKind::Other("every item of a JoinableQueue to be done"));
            self.state.borrow_mut().joiners.remove(key);
            parked?;
        }
        Ok(())
    }
}

/// The iterator of [`GenericQueue::iter`].
pub struct Iter<'a, T, O: QueueOrder<T>> {
    queue: &'a GenericQueue<T, O>,
}

impl<T, O: QueueOrder<T>> fmt::Debug for Iter<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

impl<T, O: QueueOrder<T>> Iterator for Iter<'_, T, O> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.get().ok()
    }
}

impl<'a, T, O: QueueOrder<T>> IntoIterator for &'a GenericQueue<T, O> {
    type Item = T;
    type IntoIter = Iter<'a, T, O>;

    fn into_iter(self) -> Iter<'a, T, O> {
        self.iter()
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
