//! `Pool::imap` and `Pool::imap_unordered`: the input is pulled by a greenlet of its own (as
//! gevent does), so a result is handed out while the input iterator blocks, and an optional
//! bound (gevent's `maxsize`) caps the results held.

use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::panic::Location;

use super::group::Shared;
use crate::error::{GetError, Interrupted};
use crate::greenlet::{Builder, Greenlet};
use crate::lock::Semaphore;
use crate::queue::{self, Queue};
use crate::slab::{Key, Slab};

/// What the input greenlet and the members tell the consumer.
enum Message<U: 'static> {
    /// `imap`: the member for the next input item, in input order.
    Spawned(Greenlet<U>),
    /// `imap_unordered`: the member of this `outstanding` key ended.
    Finished(Key),
    /// The input greenlet is done (the input ended, or it stopped early).
    InputEnded,
}

/// What the consumer shares with the input greenlet and the members it spawned.
struct Feed<U: 'static> {
    messages: Queue<Message<U>>,
    /// `imap_unordered`: members by key until their result is handed out.
    outstanding: RefCell<Slab<Option<Greenlet<U>>>>,
    /// With a bound: a permit per result held (spawned and not handed out yet).
    bound: Option<Semaphore>,
    /// Set when the consumer is dropped: the input greenlet stops at its next step (a kill
    /// alone would reach it only at a blocking call).
    stopped: Cell<bool>,
}

impl<U: 'static> Feed<U> {
    fn tell(&self, message: Message<U>) {
        // An unbounded queue that is never closed takes every item.
        let _ = self.messages.try_put(message);
    }
}

/// Tells the consumer that the input greenlet is done, however it ends (even killed before
/// it started).
struct InputEnded<U: 'static>(Rc<Feed<U>>);

impl<U: 'static> Drop for InputEnded<U> {
    fn drop(&mut self) {
        self.0.tell(Message::InputEnded);
    }
}

/// Tells an `imap_unordered` consumer that a member ended, however it ends.
struct MemberEnded<U: 'static> {
    feed: Rc<Feed<U>>,
    key: Key,
}

impl<U: 'static> Drop for MemberEnded<U> {
    fn drop(&mut self) {
        self.feed.tell(Message::Finished(self.key));
    }
}

/// The consumer side, shared by [`Imap`] and [`ImapUnordered`].
pub(super) struct Mapping<U: 'static> {
    feed: Rc<Feed<U>>,
    input: Greenlet<Result<(), Interrupted>>,
    /// The member whose result comes next, once known.
    next: Option<Greenlet<U>>,
    input_ended: bool,
    /// Set once the input greenlet's own failure (if any) was reported: the iterator is done.
    done: bool,
}

impl<U: 'static> Mapping<U> {
    /// Starts the input greenlet.
    pub(super) fn start<I, F>(
        pool: &Rc<Shared>,
        location: &'static Location<'static>,
        f: F,
        items: I,
        bound: Option<usize>,
        ordered: bool,
    ) -> Self
    where
        I: Iterator + 'static,
        I::Item: 'static,
        F: Fn(I::Item) -> U + 'static,
    {
        let feed = Rc::new(Feed {
            messages: Queue::new(),
            outstanding: RefCell::new(Slab::new()),
            // A bound of 0 would hold no result, and so never produce one.
            bound: bound.map(|n| Semaphore::new(n.max(1))),
            stopped: Cell::new(false),
        });
        let (pool, input_feed) = (pool.clone(), feed.clone());
        let ended = InputEnded(feed.clone());
        let input = Builder::new().name("imap input").spawn_located(location, move || {
            let _ended = ended;
            pull_input(&pool, location, &input_feed, Rc::new(f), items, ordered)
        });
        Mapping { feed, input, next: None, input_ended: false, done: false }
    }

    fn next(&mut self) -> Option<Result<U, GetError>> {
        loop {
            if let Some(g) = &self.next {
                let result = g.take();
                if let Err(GetError::Interrupted(why)) = result {
                    return Some(Err(GetError::Interrupted(why))); // it is waited for again
                }
                self.next = None;
                if let Some(bound) = &self.feed.bound {
                    bound.release();
                }
                return Some(result);
            }
            if self.done {
                return None;
            }
            if self.input_ended && self.feed.outstanding.borrow().is_empty() {
                return self.input_failure();
            }
            match self.feed.messages.get() {
                Ok(Message::Spawned(g)) => self.next = Some(g),
                Ok(Message::Finished(key)) => {
                    self.next = self.feed.outstanding.borrow_mut().remove(key).flatten();
                }
                Ok(Message::InputEnded) => self.input_ended = true,
                Err(queue::GetError::Interrupted(why)) => {
                    return Some(Err(GetError::Interrupted(why)));
                }
                Err(_) => return None, // the queue is never closed
            }
        }
    }

    /// Once every result is out: the input greenlet's failure, if it stopped early.
    fn input_failure(&mut self) -> Option<Result<U, GetError>> {
        let outcome = (*self.input).take(); // unflattened: the input greenlet's own Err is its interruption
        if let Err(GetError::Interrupted(why)) = outcome {
            return Some(Err(GetError::Interrupted(why))); // asked again at the next call
        }
        self.done = true;
        match outcome {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(Err(GetError::Interrupted(why))),
            Err(error) => Some(Err(error)),
        }
    }
}

impl<U: 'static> Drop for Mapping<U> {
    fn drop(&mut self) {
        // Nobody will read more results: stop pulling input. Members already spawned run on.
        self.feed.stopped.set(true);
        self.input.kill_nowait();
    }
}

/// The input greenlet: spawns a member per item, waiting for a permit of the bound (before
/// pulling the item) and for a pool slot (after).
fn pull_input<U: 'static, T: 'static>(
    pool: &Rc<Shared>,
    location: &'static Location<'static>,
    feed: &Rc<Feed<U>>,
    f: Rc<impl Fn(T) -> U + 'static>,
    mut items: impl Iterator<Item = T>,
    ordered: bool,
) -> Result<(), Interrupted> {
    loop {
        let permit = match &feed.bound {
            Some(bound) => Some(bound.acquire()?),
            None => None,
        };
        if feed.stopped.get() {
            return Ok(());
        }
        let Some(item) = items.next() else { return Ok(()) };
        let holds_slot = pool.take_slot()?;
        if feed.stopped.get() {
            pool.give_slot_back(holds_slot);
            return Ok(());
        }
        // The consumer gives it back when it hands the result out.
        if let Some(permit) = permit {
            permit.forget();
        }
        let f = f.clone();
        if ordered {
            let g = pool.spawn(location, holds_slot, move || f(item));
            feed.tell(Message::Spawned(g));
        } else {
            let key = feed.outstanding.borrow_mut().insert(None);
            let ended = MemberEnded { feed: feed.clone(), key };
            let g = pool.spawn(location, holds_slot, move || {
                let _ended = ended;
                f(item)
            });
            if let Some(slot) = feed.outstanding.borrow_mut().get_mut(key) {
                *slot = Some(g);
            }
        }
    }
}

/// The iterator of [`Pool::imap`](super::Pool::imap): results in input order.
///
/// Dropping it stops the input greenlet; members already spawned run to their end in the pool.
pub struct Imap<U: 'static> {
    pub(super) mapping: Mapping<U>,
}

/// The iterator of [`Pool::imap_unordered`](super::Pool::imap_unordered): results in the
/// order the members finish.
///
/// Dropping it stops the input greenlet; members already spawned run to their end in the pool.
pub struct ImapUnordered<U: 'static> {
    pub(super) mapping: Mapping<U>,
}

impl<U: 'static> Iterator for Imap<U> {
    type Item = Result<U, GetError>;

    /// The next result: waits for it, and yields `Err(GetError::Interrupted)` if that wait is
    /// interrupted (the next call waits again). A member's failure is its item's result; the
    /// input greenlet's failure (the input iterator panicked, say) is a last item.
    fn next(&mut self) -> Option<Self::Item> {
        self.mapping.next()
    }
}

impl<U: 'static> Iterator for ImapUnordered<U> {
    type Item = Result<U, GetError>;

    /// As for [`Imap`]: waits for the next member to finish.
    fn next(&mut self) -> Option<Self::Item> {
        self.mapping.next()
    }
}

impl<U: 'static> fmt::Debug for Imap<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap").finish_non_exhaustive()
    }
}

impl<U: 'static> fmt::Debug for ImapUnordered<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered").finish_non_exhaustive()
    }
}
