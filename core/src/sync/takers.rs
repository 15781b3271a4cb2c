//! [`Takers`]: greenlets waiting for an item (the getters of a queue), in arrival order, each
//! with a slot in the frame of its own blocking call that a put fills directly.
//!
//! A put that finds a getter waiting moves its item into the first getter's slot, takes that
//! getter out of line and wakes it. The item never enters the queue, and the woken getter
//! returns it without looking at the queue again: no borrow of the queue's state, no pop, no
//! count of reserved items on either side (Go's channels hand a value to a parked receiver the
//! same way). No greenlet arriving meanwhile can take the item: it is in the getter's frame.
//!
//! Only a parked getter is handed an item: one woken already (killed, or its timeout fired,
//! while it waited) stays in line until it runs and leaves, so an item never lands with a
//! getter that will not return it. A parked greenlet's wake-up carries no interruption: one
//! that comes after the hand-off is delivered at its next wait.
#![allow(unsafe_code)] // see the SAFETY comments

use core::cell::Cell;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::NonNull;

use crate::hub::{QueuedTask, hub_of_waiter};
use crate::sync::line::{Line, Place};

/// A getter's place in line and the slot a put delivers its item to.
///
/// `repr(C)` with the place first: a place popped from a [`Takers`] line starts its `Taker`.
#[repr(C)]
pub(crate) struct Taker<T> {
    place: Place,
    item: Cell<Option<T>>,
}

impl<T> AsRef<Place> for Taker<T> {
    fn as_ref(&self) -> &Place {
        &self.place
    }
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

    /// Its place, as a pointer that reaches the whole taker (made from a reference to it, not
    /// to the place), which is what the line keeps and a delivery casts back.
    fn place_ptr(self: Pin<&Self>) -> NonNull<Place> {
        NonNull::from(self.get_ref()).cast()
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
        // SAFETY: the caller's contract is `push_back_raw`'s, for the taker's place, which is
        // pinned with it (`Taker` is not `Unpin`, and nothing moves the place out of it).
        unsafe { self.line.push_back_raw(taker.place_ptr(), t) }
    }

    /// Puts `taker`, holding the waiting greenlet `t`, at the front (a getter that was first
    /// in line and has to wait again).
    ///
    /// # Safety
    ///
    /// As for [`push_back`](Self::push_back).
    pub(crate) unsafe fn push_front(&mut self, taker: Pin<&Taker<T>>, t: QueuedTask) {
        // SAFETY: as in `push_back`.
        unsafe { self.line.push_front_raw(taker.place_ptr(), t) }
    }

    /// Takes `taker` out of the line if it is in it, giving its greenlet.
    #[inline]
    pub(crate) fn remove(&mut self, taker: &Taker<T>) -> Option<QueuedTask> {
        self.remove_place(&taker.place)
    }

    /// Takes `place` out of the line if it is in it, giving its greenlet (for [`InLine`],
    /// which knows a taker by its place).
    ///
    /// [`InLine`]: crate::sync::line::InLine
    #[inline]
    pub(crate) fn remove_place(&mut self, place: &Place) -> Option<QueuedTask> {
        self.line.remove(place)
    }

    /// Gives `item` to the first getter in line: moves it into the getter's slot, takes the
    /// getter out of line and wakes it. Hands the item back if nobody waits.
    #[inline(always)]
    pub(crate) fn deliver(&mut self, item: T) -> Result<(), T> {
        let t = self.hand(item)?;
        hub_of_waiter(&t).notify_queued(t);
        Ok(())
    }

    /// The part of [`deliver`](Self::deliver) that does not wake: moves `item` into the first
    /// getter's slot and takes the getter out of line, giving its greenlet.
    #[inline(always)]
    fn hand(&mut self, item: T) -> Result<QueuedTask, T> {
        // To the first getter still parked: one woken already (killed, or its `Timeout`
        // expired, while it waited) would only give the item back after later puts, out of
        // their order and past a bounded queue's bound. It takes itself out when it runs.
        let Some((place, t)) = self.line.pop_first_parked() else { return Err(item) };
        // SAFETY: every place linked in this line is the first field of a `Taker<T>`, pushed
        // as a pointer made from a reference to the whole taker (the field's invariant), and
        // `Taker` is `repr(C)`, so the pointer is its taker's. The taker is alive: it was
        // linked until the pop above, and its owner takes it out of line before dropping it,
        // which it cannot have done since (its greenlet has not run: nothing here switches).
        // Only a shared reference is made; the slot is a `Cell`.
        let taker = unsafe { place.cast::<Taker<T>>().as_ref() };
        // A taker's slot is empty while it waits: its wait takes what was delivered before it
        // could wait again. `replace` and a forget skip the drop test `set` would make.
        let old = taker.item.replace(Some(item));
        debug_assert!(old.is_none(), "an item delivered to a getter that had one");
        core::mem::forget(old);
        Ok(t)
    }

    /// Wakes every waiter, with nothing delivered (the queue closed): they look at the queue
    /// again and find it closed.
    pub(crate) fn wake_all(&mut self) {
        self.line.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greenlet::task::TaskRef;
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// A greenlet as a getter in line is: parked.
    fn parked(id: u64) -> TaskRef {
        let t = TaskRef::for_test(id);
        t.task().state.set(crate::greenlet::task::State::Parked);
        t
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn a_hand_fills_the_first_takers_slot_and_takes_it_out_of_line() {
        let ts: Vec<_> = (0..3).map(parked).collect();
        let takers: Vec<Pin<Box<Taker<String>>>> = (0..3).map(|_| Box::pin(Taker::new())).collect();
        let taker = |i: usize| takers[i].as_ref();
        let mut line = Takers::new();
        // SAFETY: each taker is new (in no line); the takers outlive `line`, whose drop
        // unlinks whatever is left.
        unsafe {
            line.push_back(taker(1), QueuedTask::new(ts[1].clone()));
            line.push_back(taker(2), QueuedTask::new(ts[2].clone()));
            line.push_front(taker(0), QueuedTask::new(ts[0].clone()));
        }
        let woken = line.hand(String::from("first")).expect("a taker waits");
        assert!(TaskRef::ptr_eq(&woken.into_task_ref(), &ts[0]));
        assert!(!taker(0).is_linked());
        assert_eq!(taker(0).take_item().as_deref(), Some("first"));
        assert_eq!(taker(0).take_item(), None, "taken once");
        assert!(line.remove(&taker(2)).is_some() && !taker(2).is_linked());
        let woken = line.hand(String::from("second")).expect("a taker waits");
        assert!(TaskRef::ptr_eq(&woken.into_task_ref(), &ts[1]));
        assert_eq!(taker(1).take_item().as_deref(), Some("second"));
        assert_eq!(line.hand(String::from("none")).err().as_deref(), Some("none"));
        assert!(ts.iter().all(|t| t.count() == 1));
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn a_hand_skips_a_taker_whose_greenlet_was_woken_already() {
        let ts: Vec<_> = (0..2).map(parked).collect();
        ts[0].task().state.set(crate::greenlet::task::State::Runnable);
        let takers: Vec<Pin<Box<Taker<String>>>> = (0..2).map(|_| Box::pin(Taker::new())).collect();
        let taker = |i: usize| takers[i].as_ref();
        let mut line = Takers::new();
        // SAFETY: each taker is new (in no line); the takers outlive `line`.
        unsafe {
            line.push_back(taker(0), QueuedTask::new(ts[0].clone()));
            line.push_back(taker(1), QueuedTask::new(ts[1].clone()));
        }
        let woken = line.hand(String::from("x")).expect("a parked taker waits");
        assert!(TaskRef::ptr_eq(&woken.into_task_ref(), &ts[1]));
        assert!(taker(0).is_linked() && !taker(1).is_linked());
        assert_eq!(taker(1).take_item().as_deref(), Some("x"));
        assert_eq!(line.hand(String::from("y")).err().as_deref(), Some("y"));
        assert!(line.remove(&taker(0)).is_some());
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn a_hand_takes_a_finished_greenlets_taker_out_of_line_and_keeps_a_woken_ones() {
        use crate::greenlet::task::State;
        let ts: Vec<_> = (0..4).map(parked).collect();
        // Abandoned at a shutdown (finished in line), woken, abandoned, parked.
        for (i, state) in [(0, State::Finished), (1, State::Runnable), (2, State::Finished)] {
            ts[i].task().state.set(state);
        }
        let takers: Vec<Pin<Box<Taker<u8>>>> = (0..4).map(|_| Box::pin(Taker::new())).collect();
        let taker = |i: usize| takers[i].as_ref();
        let mut line = Takers::new();
        // SAFETY: each taker is new (in no line); the takers outlive `line`.
        unsafe {
            for (i, t) in ts.iter().enumerate() {
                line.push_back(taker(i), QueuedTask::new(t.clone()));
            }
        }
        let woken = line.hand(7).expect("a parked taker waits");
        assert!(TaskRef::ptr_eq(&woken.into_task_ref(), &ts[3]));
        let linked: Vec<bool> = (0..4).map(|i| taker(i).is_linked()).collect();
        assert_eq!(linked, [false, true, false, false], "only the woken one waits on");
        assert_eq!(line.hand(8).err(), Some(8));
        assert!(line.remove(&taker(1)).is_some());
        assert!(ts.iter().all(|t| t.count() == 1), "the line gave back every count");
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn an_item_left_in_a_slot_is_dropped_with_its_taker() {
        let t = parked(0);
        let item = alloc::rc::Rc::new(());
        {
            let taker = Box::pin(Taker::new());
            let mut line = Takers::new();
            // SAFETY: the taker is new (in no line), and outlives `line`.
            unsafe { line.push_back(taker.as_ref(), QueuedTask::new(t.clone())) };
            drop(line.hand(item.clone()).expect("a taker waits"));
        }
        assert_eq!(alloc::rc::Rc::strong_count(&item), 1);
        assert_eq!(t.count(), 1);
    }
}
