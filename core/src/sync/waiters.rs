//! `Waiters`: the FIFO of greenlets blocked on one side of a primitive (getters of a queue,
//! acquirers of a semaphore), with hand-off reservations.
//!
//! Fairness without allocation: when a unit (an item, a slot, a permit) becomes available while
//! greenlets wait, the first waiter is popped and a unit is *reserved* for it before it runs, so
//! a greenlet that arrives meanwhile cannot take it (no barging). The woken waiter claims its
//! reservation; one that was interrupted before it could run passes it on.

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::hub;
use crate::time::Instant;
use crate::wait_list::{WaitList, WaiterKey};
use core::cell::{RefCell, RefMut};

/// Blocked greenlets of one kind, and the units reserved for those already woken.
pub(crate) struct Waiters {
    list: WaitList<TaskRef>,
    reserved: usize,
}

/// How a wait in [`Waiters`] ended.
pub(crate) enum Turn {
    /// A unit was reserved for the caller: it must [`Waiters::claim`] it.
    Granted,
    /// The deadline passed first.
    TimedOut,
    /// Interrupted; `reserved` says whether a unit had been reserved for it meanwhile (which it
    /// must claim and pass on).
    Interrupted { why: Interrupted, reserved: bool },
    /// Woken without a unit because the primitive let all its waiters go (it closed): look at
    /// its state again.
    Woken,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters { list: WaitList::new(), reserved: 0 }
    }

    /// Whether nobody waits (woken waiters that have not run yet do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Units reserved for woken waiters that have not claimed them yet.
    pub(crate) fn reserved(&self) -> usize {
        self.reserved
    }

    /// Reserves a unit for the first waiter and returns it, to be notified once the caller
    /// has released its borrow of the primitive.
    pub(crate) fn hand_off(&mut self) -> Option<TaskRef> {
        let t = self.list.pop_front()?;
        self.reserved += 1;
        Some(t)
    }

    /// Takes up a reservation made for the caller.
    pub(crate) fn claim(&mut self) {
        self.reserved -= 1;
    }

    /// Wakes every waiter without a reservation (the primitive closed): they see
    /// [`Turn::Woken`].
    pub(crate) fn wake_all(&mut self) {
        wake_all(&mut self.list);
    }
}

/// Wakes the waiter a unit was reserved for, if any (after the primitive's borrow ended).
pub(crate) fn notify(t: Option<TaskRef>) {
    if let Some(t) = t {
        hub().notify(t);
    }
}

/// For a waiter that was interrupted after a unit had been reserved for it
/// ([`Turn::Interrupted`] with `reserved`): gives the reservation up and, if `free` says a unit
/// is still free once it is, hands that unit to the next waiter of the same side.
pub(crate) fn give_up_reservation<S>(
    mut state: RefMut<'_, S>,
    side: fn(&mut S) -> &mut Waiters,
    free: fn(&S) -> bool,
) {
    side(&mut state).claim();
    let next = if free(&state) { side(&mut state).hand_off() } else { None };
    drop(state);
    notify(next);
}

/// Wakes every greenlet of `list`, emptying it in place. (Replacing the list with a new one
/// instead would let the waiters' keys name entries of the new list.)
pub(crate) fn wake_all(list: &mut WaitList<TaskRef>) {
    let hub = hub();
    while let Some(t) = list.pop_front() {
        hub.unpark(&t);
    }
}

/// Parks the current greenlet in the `Waiters` that `side` selects from `state`, until a unit
/// is handed to it, `deadline` passes, or it is interrupted.
pub(crate) fn wait_turn<S>(
    state: &RefCell<S>,
    side: fn(&mut S) -> &mut Waiters,
    kind: WaitKind,
    deadline: Option<Instant>,
) -> Turn {
    let hub = hub();
    let me = hub.current_task();
    me.notified.set(false);
    let key: WaiterKey = side(&mut state.borrow_mut()).list.push_back(hub.current());
    let timer = DeadlineTimer::arm(deadline);
    loop {
        let parked = hub.park(kind);
        let reserved = me.notified.get();
        match parked {
            Ok(()) if reserved => return Turn::Granted,
            Err(why) => {
                if !reserved {
                    side(&mut state.borrow_mut()).list.remove(key);
                }
                return Turn::Interrupted { why, reserved };
            }
            Ok(()) => {}
        }
        // Woken without a reservation: the deadline passed, or the primitive drained its
        // waiters (it closed); anything else was spurious and it waits on.
        let mut s = state.borrow_mut();
        let waiters = side(&mut s);
        if timer.expired() {
            waiters.list.remove(key);
            return Turn::TimedOut;
        }
        if !waiters.list.contains(key) {
            return Turn::Woken;
        }
    }
}
