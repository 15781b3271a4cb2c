//! `Channel`: a queue of size 0, where a put completes only when a getter takes the item.

use alloc::collections::VecDeque;
use core::cell::RefCell;
use core::fmt;
use core::time::Duration;

use super::{GetError, PutError, Wait};
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::sync::waiters::{Turn, Waiters, give_up_reservation, notify, wait_turn, wake_all};
use crate::wait_list::WaitList;

struct State<T> {
    /// Offered items, by ticket; `None` once the putter withdrew it (interrupted).
    offers: VecDeque<(u64, Option<T>)>,
    /// Offers still holding their item.
    available: usize,
    next_ticket: u64,
    /// Every ticket below this one has been taken or withdrawn.
    taken_below: u64,
    getters: Waiters,
    /// Putters waiting for their item to be taken.
    putters: WaitList<TaskRef>,
    closed: bool,
}

impl<T> State<T> {
    fn take_offer(&mut self) -> Option<T> {
        while let Some((ticket, item)) = self.offers.pop_front() {
            self.taken_below = ticket + 1;
            if let Some(item) = item {
                self.available -= 1;
                return Some(item);
            }
        }
        None
    }

    fn withdraw(&mut self, ticket: u64) -> Option<T> {
        let offer = self.offers.iter_mut().find(|(t, _)| *t == ticket)?;
        let item = offer.1.take()?;
        self.available -= 1;
        Some(item)
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
/// use gevent_core::{queue::Channel, spawn, yield_now};
/// let channel = Rc::new(Channel::new());
/// let c = channel.clone();
/// let putter = spawn(move || c.put("hello"));
/// yield_now().unwrap();
/// assert!(!putter.ready(), "no getter yet: the put waits");
/// assert_eq!(channel.get(), Ok("hello"));
/// assert_eq!(putter.get(), Ok(Ok(())));
/// # });
/// ```
pub struct Channel<T> {
    state: RefCell<State<T>>,
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Channel")
            .field("offers", &s.available)
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
                available: 0,
                next_ticket: 0,
                taken_below: 0,
                getters: Waiters::new(),
                putters: WaitList::new(),
                closed: false,
            }),
        }
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

    /// Hands the item to a getter that is waiting now, if any.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        let getter = {
            let mut s = self.state.borrow_mut();
            if s.closed {
                return Err(PutError::Closed(item));
            }
            if s.getters.is_empty() || s.available >= 1 {
                return Err(PutError::Full(item));
            }
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.offers.push_back((ticket, Some(item)));
            s.available += 1;
            s.getters.hand_off()
        };
        notify(getter);
        Ok(())
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
    /// [`GetError::Closed`]; blocked greenlets wake to see it.
    pub fn close(&self) {
        let mut s = self.state.borrow_mut();
        s.closed = true;
        s.getters.wake_all();
        wake_all(&mut s.putters);
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.state.borrow().closed
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let Wait::Until(deadline) = wait else { return self.try_put(item) };
        let hub = hub();
        let (ticket, getter) = {
            let mut s = self.state.borrow_mut();
            if s.closed {
                return Err(PutError::Closed(item));
            }
            let ticket = s.next_ticket;
            s.next_ticket += 1;
            s.offers.push_back((ticket, Some(item)));
            s.available += 1;
            let getter =
                if s.available > s.getters.reserved() { s.getters.hand_off() } else { None };
            (ticket, getter)
        };
        notify(getter);
        let timer = DeadlineTimer::arm(deadline);
        loop {
            let key = self.state.borrow_mut().putters.push_back(hub.current());
            let parked = hub.park(WaitKind::Other("a getter to take the item (a channel put)"));
            let mut s = self.state.borrow_mut();
            s.putters.remove(key);
            if s.taken_below > ticket {
                return Ok(()); // taken, even if the wait was interrupted meanwhile
            }
            let expired = timer.expired();
            if parked.is_err() || expired || s.closed {
                let item = s.withdraw(ticket).expect("an offer not taken is still there");
                return Err(match parked {
                    Err(why) => PutError::Interrupted(item, why),
                    Ok(()) if expired => PutError::Full(item),
                    Ok(()) => PutError::Closed(item),
                });
            }
        }
    }

    fn get_with(&self, wait: Wait) -> Result<T, GetError> {
        {
            let s = self.state.borrow_mut();
            if s.available > s.getters.reserved() {
                return Ok(self.take(s));
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
                WaitKind::Other("a putter to offer an item (a channel get)"),
                deadline,
            );
            let mut s = self.state.borrow_mut();
            match turn {
                Turn::Granted => {
                    s.getters.claim();
                    return Ok(self.take(s));
                }
                Turn::TimedOut => return Err(GetError::Empty),
                Turn::Interrupted { why, reserved } => {
                    if reserved {
                        give_up_reservation(
                            s,
                            |s| &mut s.getters,
                            |s| s.available > s.getters.reserved(),
                        );
                    }
                    return Err(GetError::Interrupted(why));
                }
                Turn::Woken if s.available > s.getters.reserved() => return Ok(self.take(s)),
                Turn::Woken if s.closed => return Err(GetError::Closed),
                Turn::Woken => {}
            }
        }
    }

    fn take(&self, mut s: core::cell::RefMut<'_, State<T>>) -> T {
        let item = s.take_offer().expect("an offer is there");
        // The putters check whether their own ticket was taken.
        wake_all(&mut s.putters);
        item
    }
}
