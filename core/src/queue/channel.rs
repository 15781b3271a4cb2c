//! `Channel`: a queue of size 0, where a put completes only when a getter takes the item.
//!
//! A putter offers its item and waits until a getter takes it; if a getter waits already, the
//! offer is reserved for it (the getter is woken) and the putter still waits until the getter
//! has run and taken it, as gevent's putter waits for its pairing. A putter interrupted before
//! its item was taken withdraws it, even if it was reserved: the getter it was reserved for then
//! takes the next offer, or waits again, first in line.

use alloc::collections::VecDeque;
use core::cell::RefCell;
use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::time::Duration;

use super::{GetError, PutError, iteration_step};
use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::sync::waiters::{Refused, Side, Status, Wait, Waiters, reserve_then};

/// An item offered to the getters.
struct Offer<T> {
    ticket: u64,
    item: T,
    /// The putter that waits for it to be taken; `None` for a `try_put`, which does not wait.
    putter: Option<TaskRef>,
}

struct State<T> {
    /// Items offered and not taken yet, in arrival order; the first `getters.reserved()` of
    /// them are reserved for woken getters.
    offers: VecDeque<Offer<T>>,
    next_ticket: u64,
    /// Every offer whose ticket is below this one was taken or withdrawn.
    taken_below: u64,
    getters: Waiters,
    closed: bool,
}

impl<T> State<T> {
    /// Takes the first offer and lets its putter go on.
    fn take(&mut self) -> Option<T> {
        let offer = self.offers.pop_front()?;
        self.taken_below = offer.ticket + 1;
        if let Some(putter) = offer.putter {
            hub().unpark(&putter);
        }
        Some(offer.item)
    }

    /// Takes back the offer with `ticket`; `None` if a getter took it.
    fn withdraw(&mut self, ticket: u64) -> Option<T> {
        if ticket < self.taken_below {
            return None;
        }
        let i = self.offers.iter().position(|o| o.ticket == ticket)?;
        self.offers.remove(i).map(|o| o.item)
    }
}

/// The getters of a channel: their unit is an offer.
struct Getters<T>(PhantomData<T>);

impl<T> Side for Getters<T> {
    type State = State<T>;
    const KIND: WaitKind = WaitKind::Other(&"a putter to offer an item (a channel get)");

    fn waiters(s: &mut State<T>) -> &mut Waiters {
        &mut s.getters
    }

    fn status(s: &State<T>) -> Status {
        if s.offers.len() > s.getters.reserved() {
            Status::Free
        } else if s.closed {
            Status::Closed
        } else {
            Status::Unavailable
        }
    }

    fn hand_on(s: &mut State<T>) {
        if s.offers.len() > s.getters.reserved() {
            s.getters.hand_off();
        }
    }
}

/// A rendezvous between greenlets (gevent's `Channel`): [`put`](Self::put) blocks until a
/// getter takes the item, [`get`](Self::get) until a putter offers one. Putters and getters
/// are served in arrival order.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use std::rc::Rc;
/// use gevent::{queue::Channel, spawn, yield_now};
/// let channel = Rc::new(Channel::new());
/// let c = channel.clone();
/// let putter = spawn(move || c.put("hello"));
/// yield_now().unwrap();
/// assert!(!putter.ready(), "no getter yet: the put waits");
/// assert_eq!(channel.len(), 1, "one item offered");
/// assert_eq!(channel.get(), Ok("hello"));
/// assert_eq!(putter.get(), Ok(()));
/// # });
/// ```
pub struct Channel<T> {
    state: RefCell<State<T>>,
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Channel")
            .field("offers", &s.offers.len())
            .field("closed", &s.closed)
            .finish_non_exhaustive()
    }
}

impl<T> Default for Channel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Channel<T> {
    /// A new channel.
    pub fn new() -> Self {
        Channel {
            state: RefCell::new(State {
                offers: VecDeque::new(),
                next_ticket: 0,
                taken_below: 0,
                getters: Waiters::new(),
                closed: false,
            }),
        }
    }

    /// Items offered and not taken yet: those of the putters that wait for a getter (and of
    /// `try_put`s whose getter has not run yet).
    pub fn len(&self) -> usize {
        self.state.borrow().offers.len()
    }

    /// Whether no item is offered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offers an item and waits until a getter takes it.
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::Until(None))
    }

    /// Offers an item for at most `timeout`; [`PutError::Full`] (with the item) if no getter
    /// took it in time.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::Until(Some(hub().now() + timeout)))
    }

    /// Hands the item to a getter that is waiting now, if any; [`PutError::Full`] if none is.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_with(item, Wait::No)
    }

    /// Takes an item, waiting until a putter offers one.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_with(Wait::Until(None))
    }

    /// Takes an item, waiting at most `timeout`; [`GetError::Empty`] if none was offered.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_with(Wait::Until(Some(hub().now() + timeout)))
    }

    /// Takes an item that a putter offers now, if any.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_with(Wait::No)
    }

    /// Closes the channel: later puts fail, gets take what is offered and then fail with
    /// [`GetError::Closed`]; blocked greenlets wake to see it (a putter whose item no getter
    /// took by then gets it back in [`PutError::Closed`]).
    pub fn close(&self) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.getters.wake_all();
        let hub = hub();
        for putter in s.offers.iter().filter_map(|o| o.putter.as_ref()) {
            hub.unpark(putter);
        }
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    /// Iterates by [`get`](Self::get) until the channel is closed and its offers taken. An
    /// interruption of the iterating greenlet (a kill, a [`Timeout`](crate::Timeout)) comes out
    /// once as `Err`, and then the iteration ends.
    pub fn iter(&self) -> ChannelIter<'_, T> {
        ChannelIter { channel: self, done: false }
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let hub = hub();
        let (ticket, deadline) = {
            let mut s = self.state.borrow_mut();
            if s.closed {
                return Err(PutError::Closed(item));
            }
            let (deadline, putter) = match wait {
                Wait::Until(deadline) => (deadline, Some(hub.current())),
                // A getter in line has no offer reserved for it: it takes this one.
                Wait::No if s.getters.is_empty() => return Err(PutError::Full(item)),
                Wait::No => (None, None),
            };
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.offers.push_back(Offer { ticket, item, putter });
            Getters::hand_on(&mut s);
            if let Wait::No = wait {
                return Ok(());
            }
            (ticket, deadline)
        };
        let timer = DeadlineTimer::arm(deadline);
        loop {
            let parked = hub.park(WaitKind::Other(&"a getter to take the item (a channel put)"));
            let mut s = self.state.borrow_mut();
            if s.taken_below > ticket {
                // Taken, even if an interruption came after the getter took it.
                return Ok(());
            }
            let expired = timer.expired();
            if parked.is_err() || expired || s.closed {
                let Some(item) = s.withdraw(ticket) else { return Ok(()) };
                return Err(match parked {
                    Err(why) => PutError::Interrupted(item, why),
                    Ok(()) if expired => PutError::Full(item),
                    Ok(()) => PutError::Closed(item),
                });
            }
        }
    }

    fn get_with(&self, wait: Wait) -> Result<T, GetError> {
        reserve_then::<Getters<T>, _>(&self.state, wait, |got| match got {
            Ok(mut s) => Ok(s.take().expect("an offer is there: the status says so")),
            Err(Refused::Closed) => Err(GetError::Closed),
            Err(Refused::Unavailable) => Err(GetError::Empty),
            Err(Refused::Interrupted(why)) => Err(GetError::Interrupted(why)),
        })
    }
}

/// The iterator of [`Channel::iter`]: `Ok(item)` until the channel is closed and its offers
/// taken; an interruption of the iterating greenlet comes out once as `Err`, and then it ends.
pub struct ChannelIter<'a, T> {
    channel: &'a Channel<T>,
    done: bool,
}

impl<T> fmt::Debug for ChannelIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelIter").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<T> Iterator for ChannelIter<'_, T> {
    type Item = Result<T, Interrupted>;

    fn next(&mut self) -> Option<Result<T, Interrupted>> {
        if self.done {
            return None;
        }
        iteration_step(&mut self.done, self.channel.get())
    }
}

impl<T> FusedIterator for ChannelIter<'_, T> {}

impl<'a, T> IntoIterator for &'a Channel<T> {
    type Item = Result<T, Interrupted>;
    type IntoIter = ChannelIter<'a, T>;

    fn into_iter(self) -> ChannelIter<'a, T> {
        self.iter()
    }
}
