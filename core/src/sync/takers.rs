//! [`Takers`]: greenlets waiting for an item (the getters of a queue), in arrival order, each
//! with a slot in the frame of its own blocking call that a put fills directly.
//!
//! A put that finds a getter waiting moves its item into the first getter's slot, takes that
//! getter out of line and wakes it. The item never enters the queue, and the woken getter
//! returns it without looking at the queue again: no borrow of the queue's state, no pop, no
//! count of reserved items on either side (Go's channels hand a value to a parked receiver the
//! same way). No greenlet arriving meanwhile can take the item: it is in the getter's frame.
//!
//! A getter that finds its slot filled but was interrupted before it ran (killed, or its
//! timeout fired first) gives the item back to the queue, which hands it to the next getter in
//! line or keeps it first; see `GenericQueue`'s `give_back`.
#![allow(unsafe_code)] // see the SAFETY comments

use core::cell::Cell;
use core::marker::PhantomData;
use core::pin::Pin;

use crate::hub::{QueuedTask, hub, hub_of_waiter};
use crate::sync::line::{Line, Place};

/// A getter's place in line and the slot a put delivers its item to.
///
/// `repr(C)` with the place first: a place popped from a [`Takers`] line starts its `Taker`.
#[repr(C)]
pub(crate) struct Taker<T> {
    place: Place,
    item: Cell<Option<T>>,
}

impl<T> Taker<T> {
    pub(crate) const fn new() -> Self {
        Taker { place: Place::new(), item: Cell::new(None) }
    }

    /// The item a put delivered, if one did (the put also took the taker out of line).
    #[inline]
    pub(crate) fn take_item(&self) -> Option<T> {
        self.item.take()
    }

    /// Whether it waits in a line.
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        self.place.is_linked()
    }

    fn project_place(self: Pin<&Self>) -> Pin<&Place> {
        // SAFETY: structural pinning of `place`: it is never moved out of a pinned `Taker` (no
        // method gives it by value or `&mut`), and `Taker` is not `Unpin` (`Place` is not).
        unsafe { self.map_unchecked(|k| &k.place) }
    }
}

/// Getters waiting for an item, in arrival order; see the module docs.
pub(crate) struct Takers<T> {
    /// Every place linked in it is the `place` of a `Taker<T>`: [`Takers::push_back`] and
    /// [`Takers::push_front`] link nothing else.
    line: Line,
    _item: PhantomData<T>,
}

impl<T> Takers<T> {
    pub(crate) const fn new() -> Self {
        Takers { line: Line::new(), _item: PhantomData }
    }

    /// Appends `taker`, holding the waiting greenlet `t`, at the back.
    ///
    /// # Safety
    ///
    /// As for [`Line::push_back`]: `taker` is in no line now, and is taken out of this one
    /// ([`remove`](Self::remove), or a pop) before it is dropped.
    #[inline]
    pub(crate) unsafe fn push_back(&mut self, taker: Pin<&Taker<T>>, t: QueuedTask) {
        // SAFETY: the caller's contract is `push_back`'s, for the taker's place.
        unsafe { self.line.push_back(taker.project_place(), t) }
    }

    /// Puts `taker`, holding the waiting greenlet `t`, at the front (a getter that was first
    /// in line and has to wait again).
    ///
    /// # Safety
    ///
    /// As for [`push_back`](Self::push_back).
    pub(crate) unsafe fn push_front(&mut self, taker: Pin<&Taker<T>>, t: QueuedTask) {
        // SAFETY: the caller's contract is `push_front`'s, for the taker's place.
        unsafe { self.line.push_front(taker.project_place(), t) }
    }

    /// Takes `taker` out of the line if it is in it, giving its greenlet.
    #[inline]
    pub(crate) fn remove(&mut self, taker: &Taker<T>) -> Option<QueuedTask> {
        self.line.remove(&taker.place)
    }

    /// Gives `item` to the first getter in line: moves it into the getter's slot, takes the
    /// getter out of line and wakes it. Hands the item back if nobody waits.
    #[inline]
    pub(crate) fn deliver(&mut self, item: T) -> Result<(), T> {
        let Some((place, t)) = self.line.pop_front_place() else { return Err(item) };
        // SAFETY: every place linked in this line is the first field of a `Taker<T>` (the
        // field's invariant), which is `repr(C)`, so the place's address is its taker's. The
        // taker is alive: it was linked until the pop above, and its owner takes it out of
        // line before dropping it, which it cannot have done since (its greenlet has not run:
        // nothing here switches). Only a shared reference is made; the slot is a `Cell`.
        let taker = unsafe { place.cast::<Taker<T>>().as_ref() };
        // A taker's slot is empty while it waits: its wait takes what was delivered before it
        // could wait again. `replace` and a forget skip the drop test `set` would make.
        let old = taker.item.replace(Some(item));
        debug_assert!(old.is_none(), "an item delivered to a getter that had one");
        core::mem::forget(old);
        hub_of_waiter(&t).notify_queued(t);
        Ok(())
    }

    /// Wakes every waiter, with nothing delivered (the queue closed): they look at the queue
    /// again and find it closed.
    pub(crate) fn wake_all(&mut self) {
        let hub = hub();
        while let Some(t) = self.line.pop_front() {
            hub.unpark(&t.into_task_ref());
        }
    }
}
