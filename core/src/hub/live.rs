//! [`LiveList`]: the hub's table of live greenlets, in spawn order, linked through their own
//! headers ([`LiveLinks`]).
//!
//! Every spawn enters it and every end leaves it, so both are a few stores: no slot to find,
//! no generation to check, no vector to grow (a slab entry cost as many bytes as the links,
//! plus the vector's spare capacity). Listing the greenlets (shutdown, dumps, trees) walks it.
//!
//! Ownership: the list holds one count of each greenlet in it, in its head and in each
//! greenlet's `next`; `prev` and the tail are uncounted and name greenlets whose counts the
//! list holds. A greenlet is only ever in its own hub's list.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::vec::Vec;
use core::cell::Cell;
use core::ptr;

use crate::greenlet::task::{Task, TaskRef};

/// `prev` of the first greenlet: never dereferenced, it tells "first" from "in no list"
/// (null).
const FIRST: *const Task = ptr::dangling();

/// A greenlet's links in the live list (a field of its header).
pub(crate) struct LiveLinks {
    /// The greenlet spawned after it that is still alive, whose count this link holds.
    next: Cell<Option<TaskRef>>,
    /// The one before it, [`FIRST`] for the first, null while it is in no list.
    prev: Cell<*const Task>,
}

impl LiveLinks {
    pub(crate) const fn new() -> Self {
        LiveLinks { next: Cell::new(None), prev: Cell::new(ptr::null()) }
    }

    fn is_linked(&self) -> bool {
        !self.prev.get().is_null()
    }
}

/// The live greenlets; see the module docs.
///
/// Its fields are cells rather than the whole list a `RefCell`: the hub's every spawn and end
/// goes through it, and no operation runs other code while it changes the links (a count it
/// gives back is dropped by the caller, after the operation), so nothing can see it halfway.
pub(crate) struct LiveList {
    head: Cell<Option<TaskRef>>,
    tail: Cell<*const Task>,
    len: Cell<usize>,
}

impl LiveList {
    pub(crate) const fn new() -> Self {
        LiveList { head: Cell::new(None), tail: Cell::new(ptr::null()), len: Cell::new(0) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.get()
    }

    /// Appends `t`, holding its count.
    ///
    /// # Panics
    ///
    /// If `t` is in the list already (a greenlet is scheduled once).
    #[inline]
    pub(crate) fn insert(&self, t: TaskRef) {
        let task: *const Task = t.task();
        let links = &t.task().live;
        assert!(!links.is_linked(), "a greenlet entered the live list twice");
        let tail = self.tail.get();
        let before = if tail.is_null() {
            links.prev.set(FIRST);
            self.head.replace(Some(t))
        } else {
            links.prev.set(tail);
            // SAFETY: a non-null tail is a greenlet of this list, which holds its count.
            unsafe { &(*tail).live }.next.replace(Some(t))
        };
        // The head of an empty list, or the last greenlet's `next`: empty, nothing to drop.
        debug_assert!(before.is_none());
        core::mem::forget(before);
        self.tail.set(task);
        self.len.set(self.len.get() + 1);
    }

    /// Takes `task` out of the list, giving back the count the list held; `None` if it is not
    /// in it. The caller drops it (which may drop the greenlet) once the list is consistent.
    #[inline]
    #[must_use = "the list's count of the greenlet is handed back"]
    pub(crate) fn remove(&self, task: &Task) -> Option<TaskRef> {
        let links = &task.live;
        if !links.is_linked() {
            return None;
        }
        let prev = links.prev.replace(ptr::null());
        let next = links.next.take();
        match &next {
            Some(n) => n.task().live.prev.set(prev),
            None => self.tail.set(if prev == FIRST { ptr::null() } else { prev }),
        }
        self.len.set(self.len.get() - 1);
        if prev == FIRST {
            self.head.replace(next)
        } else {
            // SAFETY: `task` is linked, and only in its hub's list (this one), so its `prev`
            // that is not `FIRST` is a greenlet of this list, which holds its count.
            unsafe { &(*prev).live }.next.replace(next)
        }
    }

    /// Counted references to the greenlets, in spawn order.
    pub(crate) fn to_vec(&self) -> Vec<TaskRef> {
        let mut all = Vec::with_capacity(self.len.get());
        let head = self.head.take();
        self.head.set(head.clone());
        let mut at = head;
        while let Some(t) = at {
            let next = t.task().live.next.take();
            t.task().live.next.set(next.clone());
            all.push(t);
            at = next;
        }
        all
    }
}

impl Drop for LiveList {
    /// Lets go of the greenlets one by one: dropping the head alone would drop the chain of
    /// counts recursively, one stack frame per greenlet.
    fn drop(&mut self) {
        while let Some(t) = self.head.take() {
            let links = &t.task().live;
            links.prev.set(ptr::null());
            self.head.set(links.next.take());
        }
        self.tail.set(ptr::null());
        self.len.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64) -> TaskRef {
        TaskRef::for_test(id)
    }

    fn ids(list: &LiveList) -> Vec<u64> {
        list.to_vec().iter().map(|t| t.task().id).collect()
    }

    #[test]
    fn spawn_order_and_removal_from_anywhere() {
        let ts: Vec<_> = (0..6).map(task).collect();
        let list = LiveList::new();
        for t in &ts {
            list.insert(t.clone());
        }
        assert_eq!((ids(&list), list.len()), ([0, 1, 2, 3, 4, 5].into(), 6));
        for i in [0, 5, 3] {
            let got = list.remove(ts[i].task()).expect("alive");
            assert!(TaskRef::ptr_eq(&got, &ts[i]));
        }
        assert!(list.remove(ts[3].task()).is_none(), "removing twice misses");
        list.insert(ts[3].clone());
        assert_eq!((ids(&list), list.len()), ([1, 2, 4, 3].into(), 4));
        for i in [1, 2, 4, 3] {
            assert!(list.remove(ts[i].task()).is_some());
        }
        assert_eq!((ids(&list), list.len()), (Vec::new(), 0));
        list.insert(ts[0].clone());
        assert_eq!(ids(&list), [0]);
        drop(list.remove(ts[0].task()));
        assert!(ts.iter().all(|t| t.count() == 1));
    }

    #[test]
    fn dropping_the_list_lets_every_greenlet_go() {
        let ts: Vec<_> = (0..3).map(task).collect();
        let list = LiveList::new();
        for t in &ts {
            list.insert(t.clone());
        }
        drop(list);
        assert!(ts.iter().all(|t| t.count() == 1 && !t.task().live.is_linked()));
    }
}
