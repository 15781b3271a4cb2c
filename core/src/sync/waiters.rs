//! The reserve-or-wait mechanism of the queues, the channel and the semaphores: one side of a
//! primitive (the putters of a queue, the getters of a channel, the acquirers of a semaphore)
//! takes a unit (a slot, an offer, a permit) if one is free, or waits in line for one.
//!
//! Fairness without allocation: when a unit becomes free while greenlets wait, the first waiter
//! is popped and the unit is *reserved* for it before it runs, so a greenlet that arrives
//! meanwhile cannot take it (no barging). The woken waiter claims its reservation; one that was
//! interrupted before it could run hands the unit on to the next waiter, and one whose unit was
//! taken back meanwhile (a channel's putter that was interrupted withdraws its item) waits
//! again, first in line.
//!
//! A primitive describes each of its sides once, as a [`Side`]; [`reserve_then`] does the
//! rest. The waiter's place in line (in a [`Line`]) is kept in the frame of its own blocking
//! call, so a wait allocates nothing.

use core::cell::{RefCell, RefMut};
use core::pin::pin;

use crate::error::Interrupted;
use crate::greenlet::DeadlineTimer;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::hub::{QueuedTask, hub, hub_of_waiter};
use crate::sync::line::{InLine, Line, LineIn, Place};
use crate::time::Instant;
use crate::wait_list::WaitList;

/// How long an operation may wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all (the `try_` forms).
    No,
    /// Until the deadline, if any.
    Until(Option<Instant>),
}

/// What a request of one side would find now, reservations of woken waiters counted as taken.
pub(crate) enum Status {
    /// A unit is free for it.
    Free,
    /// None is, and none will come: the primitive is closed.
    Closed,
    /// None is yet.
    Unavailable,
}

/// One side of a primitive, for [`reserve_then`].
pub(crate) trait Side {
    /// The primitive's state, behind a `RefCell`.
    type State;
    /// What its waiters wait on, for `LoopExit` reports and greenlet dumps.
    const KIND: WaitKind;
    /// Its waiters in the state.
    fn waiters(s: &mut Self::State) -> &mut Waiters;
    /// What a request finds now. A waiter that has just claimed its reservation finds
    /// [`Status::Free`], unless the primitive closed or took the unit back meanwhile (then it
    /// waits again, first in line).
    fn status(s: &Self::State) -> Status;
    /// Reserves a unit for the first waiter if one is free (and does whatever else the primitive
    /// does when a unit becomes free). Called by the primitive when a unit comes free, and here
    /// when an interrupted waiter gives up the unit that was reserved for it.
    fn hand_on(s: &mut Self::State);
}

/// Blocked greenlets of one side, and the units reserved for those already woken.
pub(crate) struct Waiters {
    line: Line,
    reserved: usize,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters { line: Line::new(), reserved: 0 }
    }

    /// Whether nobody waits (woken waiters that have not run yet do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Units reserved for woken waiters that have not claimed them yet.
    pub(crate) fn reserved(&self) -> usize {
        self.reserved
    }

    /// Reserves a unit for the first waiter and wakes it; false if nobody waits. The test for
    /// the usual answer when a unit comes free (nobody waits) is inline, with no call.
    #[inline]
    pub(crate) fn hand_off(&mut self) -> bool {
        !self.line.is_empty() && self.hand_off_to_first()
    }

    #[inline(never)]
    fn hand_off_to_first(&mut self) -> bool {
        // A greenlet abandoned in line at a hub's shutdown is passed over by the pop.
        match self.line.pop_front_granted() {
            Some(t) => {
                self.reserved += 1;
                hub_of_waiter(&t).notify_queued(t);
                true
            }
            None => false,
        }
    }

    /// Wakes every waiter without a reservation (the primitive closed): they look at its state
    /// again and find it closed.
    pub(crate) fn wake_all(&mut self) {
        self.line.wake_all();
    }
}

/// Wakes every greenlet of `list`, emptying it in place. (Replacing the list with a new one
/// instead would let the waiters' keys name entries of the new list.)
pub(crate) fn wake_all(list: &mut WaitList<TaskRef>) {
    let hub = hub();
    while let Some(t) = list.pop_front() {
        hub.unpark(&t);
    }
}

/// Why [`reserve_then`] got no unit.
pub(crate) enum Refused {
    /// The primitive is closed.
    Closed,
    /// None was free: at once for [`Wait::No`], or by the deadline.
    Unavailable,
    /// The caller was interrupted (killed, timed out) while it waited.
    Interrupted(Interrupted),
}

/// Takes a unit for side `P` of the primitive whose state is `state` (a free one at once, or,
/// as `wait` allows, the one reserved for the caller after it waited its turn) and hands the
/// outcome to `finish`, which takes the unit with the borrow it gets, or turns the refusal
/// into the caller's error; returns what `finish` returns. The caller's result is built once,
/// where the outcome is known, with no outcome value to pass back and match again.
#[inline]
pub(crate) fn reserve_then<'a, P: Side, O>(
    state: &'a RefCell<P::State>,
    wait: Wait,
    finish: impl FnOnce(Result<RefMut<'a, P::State>, Refused>) -> O,
) -> O {
    // One call of `finish` on each path, so that it is inlined, not called.
    let s = state.borrow_mut();
    let got = match P::status(&s) {
        Status::Free => Ok(s),
        Status::Closed => Err(Refused::Closed),
        Status::Unavailable => match wait {
            Wait::No => Err(Refused::Unavailable),
            Wait::Until(deadline) => return wait_turn::<P, O>(state, s, deadline, finish),
        },
    };
    finish(got)
}

/// The waiting part of [`reserve_then`], out of line: the fast path stays small. It gets the
/// borrow of `state` the first look took (one borrow, not two, on the way into a wait).
#[inline(never)]
#[allow(unsafe_code)] // see the SAFETY comment
fn wait_turn<'a, P: Side, O>(
    state: &'a RefCell<P::State>,
    mut s: RefMut<'a, P::State>,
    deadline: Option<Instant>,
    finish: impl FnOnce(Result<RefMut<'a, P::State>, Refused>) -> O,
) -> O {
    let hub = hub();
    let timer = DeadlineTimer::arm(deadline);
    let queued = pin!(InLine::<_, P, _>::new(state, Place::new()));
    let place = queued.as_ref().waiter();
    // SAFETY: the place is new, so in no line; it is pinned, and `InLine`'s drop takes it out
    // of the line before it is dropped, on every way out of this function (an unwind included).
    unsafe { P::waiters(&mut s).line.push_back(place, hub.current_queued()) };
    drop(s);
    let got = loop {
        let parked = hub.park(P::KIND);
        let mut s = state.borrow_mut();
        // A hand-off popped it from the line: the unit is its own now.
        let granted = place.take_grant();
        if granted {
            P::waiters(&mut s).reserved -= 1;
        }
        if let Err(why) = parked {
            drop(P::waiters(&mut s).line.remove(&place));
            if granted {
                P::hand_on(&mut s);
            }
            break Err(Refused::Interrupted(why));
        }
        let status = P::status(&s);
        let waiters = P::waiters(&mut s);
        match status {
            Status::Free => {
                // A granted waiter was popped by the hand-off: it is in no line any more.
                if !granted {
                    drop(waiters.line.remove(&place));
                }
                break Ok(s);
            }
            Status::Closed => {
                drop(waiters.line.remove(&place));
                break Err(Refused::Closed);
            }
            Status::Unavailable if timer.expired() => {
                drop(waiters.line.remove(&place));
                break Err(Refused::Unavailable);
            }
            Status::Unavailable if !place.is_linked() => {
                // Taken out of the line without a unit it can have: the primitive took back
                // the one reserved for it (a channel's putter withdrew its item). It was first
                // in line, and is again.
                // SAFETY: this arm runs only for a place in no line (tested above); it stays
                // pinned and `InLine` unlinks it, as for the first push.
                unsafe { waiters.line.push_front(place, hub.current_queued()) };
            }
            Status::Unavailable => {}
        }
    };
    // One call of `finish`, inlined (see `reserve_then`).
    finish(got)
}

/// A waiter of side `P` leaves the line of `P`'s waiters.
impl<P: Side> LineIn<P::State> for P {
    fn remove(s: &mut P::State, place: &Place) -> Option<QueuedTask> {
        P::waiters(s).line.remove(place)
    }
}
