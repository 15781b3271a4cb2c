//! The run queue: a FIFO ring buffer of greenlets, each entry owning one count of its greenlet.
//!
//! The switch path pushes and pops once per switch, so both are a few inlined instructions:
//! the capacity is a power of two (an index is a mask away), it only grows (out of line, when
//! full), and an entry is the greenlet's counted pointer taken apart, so that moving one in and
//! out touches no reference count.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::alloc::{alloc, dealloc, handle_alloc_error};
use core::alloc::Layout;
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::greenlet::task::{Header, Task, TaskRef};

/// A greenlet in the run queue, or on its way in or out: a pointer to its node that owns one
/// count of it (made by [`TaskRef::into_raw`], given back when dropped).
pub(crate) struct QueuedTask(NonNull<Header>);

impl QueuedTask {
    /// Moves `t`'s count into the entry.
    #[inline(always)]
    pub(crate) fn new(t: TaskRef) -> Self {
        QueuedTask(t.into_raw())
    }

    /// The greenlet's node.
    #[inline(always)]
    pub(crate) fn node(&self) -> NonNull<Header> {
        self.0
    }

    /// The greenlet's header.
    #[inline(always)]
    pub(crate) fn task(&self) -> &Task {
        // SAFETY: the entry owns a count, so the node is alive while `self` is borrowed.
        unsafe { &self.0.as_ref().task }
    }

    /// The entry's count as a `TaskRef`.
    #[inline(always)]
    pub(crate) fn into_task_ref(self) -> TaskRef {
        let node = self.0;
        core::mem::forget(self);
        // SAFETY: the pointer came from `TaskRef::into_raw`, and the entry's count, which it
        // owned and does not give back (forgotten above), moves into the `TaskRef`.
        unsafe { TaskRef::from_raw(node) }
    }

    /// One more counted reference to the greenlet (its count goes up by one).
    pub(crate) fn to_task_ref(&self) -> TaskRef {
        // SAFETY: the entry's count keeps the node alive.
        unsafe { TaskRef::clone_raw(self.0) }
    }
}

impl Drop for QueuedTask {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the entry owns one count of the node its pointer came from, and gives it
        // back exactly once, here.
        drop(unsafe { TaskRef::from_raw(self.0) });
    }
}

/// The hub's run queue. Only the hub's thread touches it (the hub is `!Sync`), and none of its
/// methods calls out while the buffer is in an intermediate state: dropping an entry (which may
/// free a greenlet and run user code, that may push) happens after it is out of the buffer.
pub(crate) struct RunQueue {
    buf: Cell<NonNull<MaybeUninit<QueuedTask>>>,
    /// A power of two, or 0 before the first push.
    cap: Cell<usize>,
    /// Free-running counters: the entries are `head..tail`, at indices masked by `cap - 1`.
    head: Cell<usize>,
    tail: Cell<usize>,
}

/// The capacity of the first buffer.
const FIRST_CAPACITY: usize = 16;

impl RunQueue {
    pub(crate) const fn new() -> Self {
        RunQueue {
            buf: Cell::new(NonNull::dangling()),
            cap: Cell::new(0),
            head: Cell::new(0),
            tail: Cell::new(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tail.get().wrapping_sub(self.head.get())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.get() == self.tail.get()
    }

    /// Adds a greenlet at the back.
    #[inline(always)]
    pub(crate) fn push(&self, t: QueuedTask) {
        if self.len() == self.cap.get() {
            self.grow();
        }
        let tail = self.tail.get();
        let slot = tail & (self.cap.get() - 1);
        // SAFETY: `slot < cap`, the buffer holds `cap` entries, and the slot is free: the
        // queue holds fewer than `cap` entries (it just grew if it was full), and the free
        // slots are those outside `head..tail`.
        unsafe { self.buf.get().add(slot).write(MaybeUninit::new(t)) };
        self.tail.set(tail.wrapping_add(1));
    }

    /// Takes the greenlet at the front.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<QueuedTask> {
        let head = self.head.get();
        if head == self.tail.get() {
            return None;
        }
        self.head.set(head.wrapping_add(1));
        let slot = head & (self.cap.get() - 1);
        // SAFETY: the queue is not empty, so `cap > 0` and the slot at `head` holds an entry
        // that `push` wrote; advancing `head` first makes this read its only owner.
        Some(unsafe { self.buf.get().add(slot).read().assume_init() })
    }

    /// Puts a greenlet back at the front, where [`RunQueue::pop`] just took it from.
    #[cfg(gevent_own_switch)]
    #[cold]
    #[inline(never)]
    pub(crate) fn push_front(&self, t: QueuedTask) {
        if self.len() == self.cap.get() {
            self.grow();
        }
        let head = self.head.get().wrapping_sub(1);
        let slot = head & (self.cap.get() - 1);
        // SAFETY: as in `push`: `slot < cap`, and the slot just before `head` is free, since
        // the queue holds fewer than `cap` entries (it just grew if it was full).
        unsafe { self.buf.get().add(slot).write(MaybeUninit::new(t)) };
        self.head.set(head);
    }

    /// Prefetches for the greenlets at `places` from the front (those the queue holds): one
    /// line of each one's stack with `stacks`, each one's node without.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn prefetch_ahead(&self, places: core::ops::Range<usize>, stacks: bool) {
        for i in places.start..places.end.min(self.len()) {
            let slot = self.head.get().wrapping_add(i) & (self.cap.get() - 1);
            // SAFETY: `i < len`, so the slot holds an entry, which owns a count of its node:
            // the node is alive, and only prefetch hints run while the reference lives.
            let node =
                unsafe { (*self.buf.get().add(slot).cast::<QueuedTask>().as_ptr()).0.as_ref() };
            if stacks {
                node.task.context.touch_stack();
            } else {
                super::switch::prefetch_node(node);
            }
        }
    }

    /// Doubles the capacity, keeping the entries in order.
    #[cold]
    #[inline(never)]
    fn grow(&self) {
        let (old, cap) = (self.buf.get(), self.cap.get());
        let new_cap = if cap == 0 { FIRST_CAPACITY } else { cap * 2 };
        let layout = Layout::array::<QueuedTask>(new_cap).expect("run queue capacity overflow");
        // SAFETY: `layout` has a non-zero size (`new_cap >= FIRST_CAPACITY`).
        let new = unsafe { alloc(layout) }.cast::<MaybeUninit<QueuedTask>>();
        let Some(new) = NonNull::new(new) else { handle_alloc_error(layout) };
        let (head, len) = (self.head.get(), self.len());
        for i in 0..len {
            // SAFETY: `i < len <= cap`: the old slot holds an entry, which moves to slot `i`
            // of the new buffer (`len <= cap < new_cap`); the old buffer is freed below
            // without dropping anything.
            unsafe { new.add(i).write(old.add(head.wrapping_add(i) & (cap - 1)).read()) };
        }
        if cap != 0 {
            // SAFETY: `old` was allocated by a previous `grow` with this layout.
            unsafe { dealloc(old.as_ptr().cast(), Layout::array::<QueuedTask>(cap).unwrap()) };
        }
        self.buf.set(new);
        self.cap.set(new_cap);
        self.head.set(0);
        self.tail.set(len);
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while let Some(t) = self.pop() {
            drop(t);
        }
        let cap = self.cap.get();
        if cap != 0 {
            // SAFETY: the buffer was allocated by `grow` with this layout, and is empty.
            unsafe {
                dealloc(self.buf.get().as_ptr().cast(), Layout::array::<QueuedTask>(cap).unwrap())
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: u64) -> TaskRef {
        TaskRef::for_test(id)
    }

    #[test]
    fn fifo_across_growth_and_wraparound() {
        let q = RunQueue::new();
        let tasks: alloc::vec::Vec<TaskRef> = (0..100).map(task).collect();
        let mut next_out = 0;
        // Interleaved pushes and pops move `head` around the ring before it grows.
        for (i, t) in tasks.iter().enumerate() {
            q.push(QueuedTask::new(t.clone()));
            if i % 3 == 0 {
                assert_eq!(q.pop().unwrap().task().id, next_out);
                next_out += 1;
            }
        }
        while let Some(t) = q.pop() {
            assert_eq!(t.task().id, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, 100);
        assert!(tasks.iter().all(|t| t.count() == 1));
    }

    #[test]
    fn dropping_the_queue_gives_back_every_count() {
        let t = task(1);
        let q = RunQueue::new();
        for _ in 0..40 {
            q.push(QueuedTask::new(t.clone()));
        }
        assert_eq!(t.count(), 41);
        drop(q);
        assert_eq!(t.count(), 1);
    }
}
