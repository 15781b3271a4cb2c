//! [`Line`]: the waiters of one side of a primitive, in arrival order, each linked through a
//! [`Place`] in the frame of its own blocking call.
//!
//! A greenlet's stack stays where it is while the greenlet is parked, so the call that waits
//! can keep its place in line in a local: joining a line, leaving it from anywhere (a kill, a
//! timeout) and popping its first waiter are a few loads and stores, with nothing allocated, no
//! slot to look up, and no byte added to the greenlet headers (which every spawn pays for).
//!
//! The line holds raw pointers to the places linked in it. What keeps them valid is the
//! contract of [`Line::push_back`] and [`Line::push_front`]: a place is pinned, and taken out
//! of its line before it is dropped. Memory that is never dropped is never reused either (a
//! greenlet abandoned at shutdown leaks its stack), so a linked place is always alive.

use core::cell::{Cell, RefCell};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use crate::greenlet::task::State;
use crate::hub::QueuedTask;

/// A waiter's place in a [`Line`]: its greenlet and its links.
pub(crate) struct Place {
    /// The waiting greenlet, while the place is linked: the count the line hands to whoever
    /// pops it. Never dropped: a place is out of line when it is dropped (the pushes'
    /// contract), and taking it out of line takes the greenlet, so there is nothing to drop,
    /// and no test of it at the end of every wait. (Were the contract broken, a count would
    /// leak, nothing worse.)
    task: ManuallyDrop<Cell<Option<QueuedTask>>>,
    prev: Cell<*const Place>,
    /// The next place while it is linked. Out of line, pointing to itself marks the place
    /// granted ([`Line::pop_front_granted`]): the unit reserved by the hand-off that popped it
    /// is its waiter's. (Kept in the place, not in the greenlet, so that no other wake-up of the
    /// greenlet, such as a join that an unwind left registered, can pass for a hand-off; and in
    /// a link, not a field of its own, which made every wait clear one more word.)
    next: Cell<*const Place>,
    /// The line it is linked in; null while it is in none. A removal through any other line
    /// finds nothing instead of relinking a foreign one.
    line: Cell<*const Line>,
    /// Lines point to it: it must not move while linked.
    _pinned: PhantomPinned,
}

impl Place {
    pub(crate) const fn new() -> Self {
        Place {
            task: ManuallyDrop::new(Cell::new(None)),
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            line: Cell::new(ptr::null()),
            _pinned: PhantomPinned,
        }
    }

    /// Whether it is linked in a line.
    #[inline]
    pub(crate) fn is_linked(&self) -> bool {
        !self.line.get().is_null()
    }

    /// Its greenlet's state; `None` for a place in no line, which holds none.
    #[inline]
    #[allow(unsafe_code)] // the peek: see the SAFETY comment
    fn state(&self) -> Option<State> {
        // SAFETY: `Cell` never hands out a reference into its value and a place is not
        // `Sync`, so nothing writes the cell during this read, which copies nothing out.
        let t = unsafe { &*self.task.as_ptr() };
        t.as_ref().map(|t| t.task().state.get())
    }

    /// Whether a hand-off popped it since the last call; clears the mark.
    #[inline]
    pub(crate) fn take_grant(&self) -> bool {
        // A linked place's next is another place or null, and so is the stale one unlinking
        // leaves: only the mark points to the place itself.
        let granted = ptr::eq(self.next.get(), self);
        if granted {
            self.next.set(ptr::null());
        }
        granted
    }
}

/// Waiters in arrival order; see the module docs.
pub(crate) struct Line {
    head: *const Place,
    tail: *const Place,
}

impl Line {
    pub(crate) const fn new() -> Self {
        Line { head: ptr::null(), tail: ptr::null() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Whether `place` is linked in this line.
    #[inline]
    pub(crate) fn contains(&self, place: &Place) -> bool {
        ptr::eq(place.line.get(), self)
    }

    /// Marks `place`, which is in no line (the pushes' contract), as this line's, holding `t`.
    #[inline]
    fn enter(&self, place: &Place, t: QueuedTask) {
        debug_assert!(!place.is_linked(), "a place in line is linked twice");
        place.line.set(self);
        // A place in no line holds no greenlet (`unlink` took it): nothing to drop, and no
        // test of it on the way into every wait.
        core::mem::forget(place.task.replace(Some(t)));
    }

    /// Appends `place`, holding the waiting greenlet `t`, at the back.
    ///
    /// # Safety
    ///
    /// `place` is in no line now (relinking a linked place would cut the line it is in, and
    /// leave it pointing to a place that is not its own), and stays linked only while it is
    /// alive: it must be taken out of this line ([`remove`](Self::remove) or
    /// [`pop_front`](Self::pop_front)) before it is dropped. (It cannot move meanwhile: it is
    /// pinned.)
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) unsafe fn push_back(&mut self, place: Pin<&Place>, t: QueuedTask) {
        // SAFETY: the caller's contract, for a pointer made from a live reference.
        unsafe { self.push_back_raw(NonNull::from(place.get_ref()), t) }
    }

    /// [`push_back`](Self::push_back) for a place given by a pointer, which is what the line
    /// keeps and what [`pop_first_parked`](Self::pop_first_parked) gives back: a pointer made
    /// from a reference to a larger structure that starts with the place may reach all of it.
    ///
    /// # Safety
    ///
    /// As for [`push_back`](Self::push_back), and `place` points to a live, pinned `Place`.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) unsafe fn push_back_raw(&mut self, place: NonNull<Place>, t: QueuedTask) {
        let raw = place.as_ptr().cast_const();
        // SAFETY: a live place (the caller's contract).
        let place = unsafe { place.as_ref() };
        self.enter(place, t);
        place.prev.set(self.tail);
        place.next.set(ptr::null());
        if self.tail.is_null() {
            self.head = raw;
        } else {
            // SAFETY: a non-null tail is a place linked in this line, alive by the contract of
            // the push that linked it.
            unsafe { &*self.tail }.next.set(raw);
        }
        self.tail = raw;
    }

    /// Puts `place`, holding the waiting greenlet `t`, at the front (a waiter that was first in
    /// line and has to wait again).
    ///
    /// # Safety
    ///
    /// As for [`push_back`](Self::push_back).
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) unsafe fn push_front(&mut self, place: Pin<&Place>, t: QueuedTask) {
        // SAFETY: the caller's contract, for a pointer made from a live reference.
        unsafe { self.push_front_raw(NonNull::from(place.get_ref()), t) }
    }

    /// [`push_front`](Self::push_front) for a place given by a pointer; see
    /// [`push_back_raw`](Self::push_back_raw).
    ///
    /// # Safety
    ///
    /// As for [`push_back_raw`](Self::push_back_raw).
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) unsafe fn push_front_raw(&mut self, place: NonNull<Place>, t: QueuedTask) {
        let raw = place.as_ptr().cast_const();
        // SAFETY: a live place (the caller's contract).
        let place = unsafe { place.as_ref() };
        self.enter(place, t);
        place.prev.set(ptr::null());
        place.next.set(self.head);
        if self.head.is_null() {
            self.tail = raw;
        } else {
            // SAFETY: a non-null head is a place linked in this line, alive by the contract of
            // the push that linked it.
            unsafe { &*self.head }.prev.set(raw);
        }
        self.head = raw;
    }

    /// Takes every waiter out of the line and wakes those that are parked (a primitive
    /// closed: they look at its state again).
    pub(crate) fn wake_all(&mut self) {
        let hub = crate::hub::hub();
        while let Some(t) = self.pop_front() {
            hub.notify_queued(t);
        }
    }

    /// Takes the first waiter out of the line, giving its greenlet.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) fn pop_front(&mut self) -> Option<QueuedTask> {
        if self.head.is_null() {
            return None;
        }
        // SAFETY: the head is a place linked in this line, alive by the contract of the push
        // that linked it.
        let place = unsafe { &*self.head };
        Some(self.unlink_head(place))
    }

    /// Takes the first place whose greenlet is parked out of the line, giving it as the
    /// pointer its push gave ([`push_back_raw`](Self::push_back_raw)) with the greenlet, for
    /// a line whose places start larger structures that the popper fills in (a getter's
    /// slot). Places before it whose greenlets were woken already (interrupted while they
    /// waited) stay in line: they will run and take themselves out. Those of finished
    /// greenlets leave it ([`pop_front_granted`](Self::pop_front_granted) says why). The usual
    /// answer is the head.
    ///
    /// The place is out of line, so the pointer is good only as long as its owner keeps it
    /// alive: until the owner's greenlet runs again, while the popper does not switch.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) fn pop_first_parked(&mut self) -> Option<(NonNull<Place>, QueuedTask)> {
        let head = NonNull::new(self.head.cast_mut())?;
        // SAFETY: as in `pop_front`.
        let t = self.unlink_head(unsafe { head.as_ref() });
        if t.task().state.get() == State::Parked {
            return Some((head, t));
        }
        self.pop_first_parked_slow(head, t)
    }

    /// The rest of [`pop_first_parked`](Self::pop_first_parked), when the head's greenlet
    /// (`t`, just unlinked with its place `first`) is not parked.
    #[cold]
    #[inline(never)]
    #[allow(unsafe_code)] // see the SAFETY comments
    fn pop_first_parked_slow(
        &mut self,
        first: NonNull<Place>,
        t: QueuedTask,
    ) -> Option<(NonNull<Place>, QueuedTask)> {
        if t.task().state.get() != State::Finished {
            // Woken while it waited: back where it was.
            // SAFETY: the place was just unlinked, so it is in no line; it is alive and pinned
            // by the contract of the push that linked it, and `first` is the pointer that push
            // gave.
            unsafe { self.push_front_raw(first, t) };
        }
        let mut at = self.head;
        while let Some(ptr) = NonNull::new(at.cast_mut()) {
            // SAFETY: a place linked in this line, alive by the contract of the push that
            // linked it.
            let place = unsafe { ptr.as_ref() };
            at = place.next.get();
            match place.state() {
                Some(State::Parked) => return Some((ptr, self.unlink(place))),
                Some(State::Finished) => drop(self.unlink(place)),
                _ => {}
            }
        }
        None
    }

    /// [`pop_front`](Self::pop_front) for a hand-off: the popped place is marked granted
    /// ([`Place::take_grant`]).
    ///
    /// A greenlet abandoned in line at a hub's shutdown (finished while it waited: a
    /// primitive can outlive its hub) would never claim what is handed to it: its place
    /// leaves the line here, unmarked, and the next one is popped. No other greenlet in a line
    /// is finished: a greenlet ends by running, and leaves every line before it runs on.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) fn pop_front_granted(&mut self) -> Option<QueuedTask> {
        while !self.head.is_null() {
            // SAFETY: as in `pop_front`.
            let place = unsafe { &*self.head };
            let t = self.unlink_head(place);
            if t.task().state.get() != State::Finished {
                place.next.set(place);
                return Some(t);
            }
        }
        None
    }

    /// Takes `place` out of the line wherever it is, giving its greenlet; `None` if it is not
    /// linked in this line.
    #[inline]
    pub(crate) fn remove(&mut self, place: &Place) -> Option<QueuedTask> {
        if self.contains(place) { Some(self.unlink(place)) } else { None }
    }

    /// [`unlink`](Self::unlink) for the head, whose prev is null: one test fewer on the pop of
    /// every hand-off.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn unlink_head(&mut self, place: &Place) -> QueuedTask {
        debug_assert!(ptr::eq(self.head, place) && place.prev.get().is_null());
        let next = place.next.get();
        self.head = next;
        if next.is_null() {
            self.tail = ptr::null();
        } else {
            // SAFETY: the neighbour of a place linked in this line is linked in it too, and
            // alive by the contract of the push that linked it.
            unsafe { &*next }.prev.set(ptr::null());
        }
        place.line.set(ptr::null());
        place.task.take().expect("a linked place holds its greenlet")
    }

    /// Unlinks `place`, which is linked in this line.
    #[inline]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn unlink(&mut self, place: &Place) -> QueuedTask {
        let (prev, next) = (place.prev.get(), place.next.get());
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: the neighbours of a place linked in this line are linked in it too, and
            // alive by the contract of the pushes that linked them.
            unsafe { &*prev }.next.set(next);
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            // SAFETY: as above.
            unsafe { &*next }.prev.set(prev);
        }
        place.line.set(ptr::null());
        place.task.take().expect("a linked place holds its greenlet")
    }
}

/// How a waiter leaves its line in the state of its primitive, for [`InLine`].
pub(crate) trait LineIn<S> {
    /// Takes `place` out of its line in `s` if it is in it, giving its greenlet.
    fn remove(s: &mut S, place: &Place) -> Option<QueuedTask>;
}

/// A waiter `W` (a [`Place`], or a structure that starts with one) of a blocking call, in the
/// line that `L` finds in the primitive's state; its drop takes the waiter out of the line if
/// it is still in it, so that the line never points to a place that is gone (a greenlet
/// unwound while it waited). Pinned in the frame of the call.
pub(crate) struct InLine<'a, S, L: LineIn<S>, W: AsRef<Place>> {
    state: &'a RefCell<S>,
    waiter: W,
    _line: PhantomData<L>,
}

impl<'a, S, L: LineIn<S>, W: AsRef<Place>> InLine<'a, S, L, W> {
    pub(crate) fn new(state: &'a RefCell<S>, waiter: W) -> Self {
        InLine { state, waiter, _line: PhantomData }
    }

    /// The pinned waiter.
    pub(crate) fn waiter(self: Pin<&Self>) -> Pin<&W> {
        // SAFETY: structural pinning of `waiter`: it is never moved out of a pinned `InLine`
        // (no method gives it by value or `&mut`), and `InLine` is not `Unpin` where `W` is
        // not (a `Place` is not), so the waiter stays pinned as long as its `InLine` is.
        #[allow(unsafe_code)]
        unsafe {
            self.map_unchecked(|q| &q.waiter)
        }
    }
}

impl<S, L: LineIn<S>, W: AsRef<Place>> Drop for InLine<'_, S, L, W> {
    fn drop(&mut self) {
        let place = self.waiter.as_ref();
        if place.is_linked() {
            // Every return of a wait leaves the line first: only an unwind gets here, out of
            // `park`, where nothing borrows the state. Should something still borrow it,
            // aborting (a panic in a drop during an unwind) is the only way left to keep the
            // line from pointing to a place that is gone.
            let mut s = self.state.borrow_mut();
            drop(L::remove(&mut s, place));
        }
    }
}

impl AsRef<Place> for Place {
    fn as_ref(&self) -> &Place {
        self
    }
}

impl Drop for Line {
    /// Unlinks every place left (their calls find themselves out of line), so that none points
    /// to a line that is gone.
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::greenlet::task::TaskRef;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::pin::pin;

    fn task(id: u64) -> TaskRef {
        TaskRef::for_test(id)
    }

    fn ids(line: &mut Line) -> Vec<u64> {
        core::iter::from_fn(|| line.pop_front()).map(|t| t.task().id).collect()
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn fifo_order_front_and_removal_from_anywhere() {
        let ts: Vec<_> = (0..6).map(task).collect();
        let places: Vec<Pin<Box<Place>>> = (0..6).map(|_| Box::pin(Place::new())).collect();
        let place = |i: usize| places[i].as_ref();
        let mut line = Line::new();
        // SAFETY: each place is new (in no line) when pushed; the places outlive `line`, whose
        // drop unlinks whatever is left.
        unsafe {
            for (i, t) in ts.iter().enumerate().skip(1) {
                line.push_back(place(i), QueuedTask::new(t.clone()));
            }
            line.push_front(place(0), QueuedTask::new(ts[0].clone()));
        }
        assert!((0..6).all(|i| line.contains(&place(i))));
        for i in [0, 5, 3] {
            let got = line.remove(&place(i)).expect("in the line");
            assert!(TaskRef::ptr_eq(&got.into_task_ref(), &ts[i]) && !place(i).is_linked());
        }
        assert!(line.remove(&place(3)).is_none(), "removing twice misses");
        // SAFETY: place 3 was removed above (in no line); as above otherwise.
        unsafe { line.push_back(place(3), QueuedTask::new(ts[3].clone())) };
        assert_eq!(ids(&mut line), [1, 2, 4, 3]);
        assert!(line.is_empty() && (0..6).all(|i| !place(i).is_linked()));
        assert!(ts.iter().all(|t| t.count() == 1));
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn only_a_granted_pop_marks_a_place_and_reading_the_mark_clears_it() {
        let places: Vec<Pin<Box<Place>>> = (0..3).map(|_| Box::pin(Place::new())).collect();
        let place = |i: usize| places[i].as_ref();
        let mut line = Line::new();
        // SAFETY: each place is new (in no line) when first pushed, and out of line (popped or
        // removed, as asserted) when pushed again; the places outlive `line`, whose drop
        // unlinks whatever is left.
        unsafe {
            for i in 0..3 {
                line.push_back(place(i), QueuedTask::new(task(i as u64)));
            }
            // Linked: first, middle and last (whose next is null) read as not granted.
            assert!((0..3).all(|i| !place(i).take_grant()));
            assert_eq!(line.pop_front_granted().map(|t| t.task().id), Some(0));
            assert!(!place(0).is_linked() && place(0).take_grant());
            assert!(!place(0).take_grant(), "the mark is read once");
            assert!(line.remove(&place(1)).is_some() && !place(1).take_grant());
            assert_eq!(line.pop_front().map(|t| t.task().id), Some(2));
            assert!(!place(2).take_grant());
            // Marked, then back in line before the mark is read: the push replaces it.
            line.push_back(place(0), QueuedTask::new(task(0)));
            assert!(line.pop_front_granted().is_some());
            line.push_front(place(0), QueuedTask::new(task(0)));
            assert!(!place(0).take_grant() && line.contains(&place(0)));
        }
        assert_eq!(ids(&mut line), [0]);
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn a_granted_pop_passes_over_a_finished_greenlet_and_takes_it_out_of_line() {
        let ts: Vec<_> = (0..2).map(task).collect();
        ts[0].task().state.set(State::Finished);
        let places: Vec<Pin<Box<Place>>> = (0..2).map(|_| Box::pin(Place::new())).collect();
        let place = |i: usize| places[i].as_ref();
        let mut line = Line::new();
        // SAFETY: each place is new (in no line); the places outlive `line`.
        unsafe {
            line.push_back(place(0), QueuedTask::new(ts[0].clone()));
            line.push_back(place(1), QueuedTask::new(ts[1].clone()));
        }
        let granted = line.pop_front_granted().expect("a live waiter");
        assert!(TaskRef::ptr_eq(&granted.into_task_ref(), &ts[1]) && place(1).take_grant());
        assert!(!place(0).is_linked() && !place(0).take_grant(), "out of line, not granted");
        assert!(line.is_empty() && line.pop_front_granted().is_none());
        assert!(ts.iter().all(|t| t.count() == 1));
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn a_removal_through_another_line_finds_nothing() {
        let (a_place, b_place) = (pin!(Place::new()), pin!(Place::new()));
        let (a_place, b_place) = (a_place.into_ref(), b_place.into_ref());
        let (mut a, mut b) = (Line::new(), Line::new());
        // SAFETY: the places are new (in no line); they outlive both lines, whose drops unlink
        // whatever is left.
        unsafe {
            a.push_back(a_place, QueuedTask::new(task(0)));
            b.push_back(b_place, QueuedTask::new(task(1)));
        }
        assert!(b.remove(&a_place).is_none());
        assert!(a.contains(&a_place) && !b.contains(&a_place));
        assert_eq!(ids(&mut b), [1]);
        assert_eq!(ids(&mut a), [0]);
    }

    #[test]
    #[allow(unsafe_code)] // see the SAFETY comment
    fn dropping_a_line_unlinks_its_places() {
        let t = task(0);
        let places: Vec<Pin<Box<Place>>> = (0..3).map(|_| Box::pin(Place::new())).collect();
        {
            let mut line = Line::new();
            for place in &places {
                // SAFETY: each place is new (in no line); the places outlive `line`.
                unsafe { line.push_back(place.as_ref(), QueuedTask::new(t.clone())) };
            }
        }
        assert!(places.iter().all(|p| !p.is_linked()));
        assert_eq!(t.count(), 1);
    }
}
