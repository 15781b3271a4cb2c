//! `TimerHeap`: pending timers ordered by deadline, with O(log n) insert and cancel.
//!
//! A binary min-heap of `(deadline, sequence)` pairs whose entries live in a [`Slab`]. Each
//! entry remembers its position in the heap, so cancelling by key is a removal at a known index
//! rather than a search. The sequence number makes equal deadlines fire in insertion order.

use alloc::vec::Vec;

use crate::slab::{Key, Slab};
use crate::time::Instant;

/// Names a pending timer; stays valid (and harmless) after the timer fired or was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey(Key);

#[derive(Debug)]
struct Entry<T> {
    heap_index: usize,
    value: T,
}

#[derive(Clone, Copy, Debug)]
struct HeapItem {
    deadline: Instant,
    sequence: u64,
    key: Key,
}

impl HeapItem {
    fn before(&self, other: &HeapItem) -> bool {
        (self.deadline, self.sequence) < (other.deadline, other.sequence)
    }
}

/// Timers carrying a `T` each, popped in deadline order (FIFO among equal deadlines).
#[derive(Debug)]
pub(crate) struct TimerHeap<T> {
    heap: Vec<HeapItem>,
    entries: Slab<Entry<T>>,
    next_sequence: u64,
}

impl<T> TimerHeap<T> {
    pub(crate) const fn new() -> Self {
        TimerHeap { heap: Vec::new(), entries: Slab::new(), next_sequence: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds a timer that expires at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        let key = self.entries.insert(Entry { heap_index: self.heap.len(), value });
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.heap.push(HeapItem { deadline, sequence, key });
        self.sift_up(self.heap.len() - 1);
        TimerKey(key)
    }

    /// Whether the timer is still pending (neither fired nor cancelled).
    pub(crate) fn contains(&self, key: TimerKey) -> bool {
        self.entries.contains(key.0)
    }

    /// Removes a pending timer and returns its value; `None` if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let entry = self.entries.remove(key.0)?;
        self.remove_at(entry.heap_index);
        Some(entry.value)
    }

    /// The earliest deadline, if any timer is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|item| item.deadline)
    }

    /// Removes and returns the earliest timer if its deadline is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let first = *self.heap.first()?;
        if first.deadline > now {
            return None;
        }
        self.remove_at(0);
        let entry = self.entries.remove(first.key).expect("every heap item has an entry");
        Some(entry.value)
    }

    fn remove_at(&mut self, index: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(index, last);
        self.heap.pop();
        if index < self.heap.len() {
            self.set_index(index);
            // The moved item may belong above or below its new place.
            let index = self.sift_up(index);
            self.sift_down(index);
        }
    }

    fn set_index(&mut self, index: usize) {
        let key = self.heap[index].key;
        self.entries.get_mut(key).expect("every heap item has an entry").heap_index = index;
    }

    fn sift_up(&mut self, mut index: usize) -> usize {
        while index > 0 {
            let parent = (index - 1) / 2;
            if !self.heap[index].before(&self.heap[parent]) {
                break;
            }
            self.heap.swap(index, parent);
            self.set_index(index);
            index = parent;
        }
        self.set_index(index);
        index
    }

    fn sift_down(&mut self, mut index: usize) {
        loop {
            let left = 2 * index + 1;
            if left >= self.heap.len() {
                break;
            }
            let right = left + 1;
            let child = if right < self.heap.len() && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&self.heap[index]) {
                break;
            }
            self.heap.swap(index, child);
            self.set_index(index);
            index = child;
        }
        self.set_index(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn at(n: u64) -> Instant {
        Instant::from_nanos(n)
    }

    /// A small deterministic generator, so that Miri runs the same cases as the native test.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let mut timers = TimerHeap::new();
        timers.insert(at(30), "c");
        timers.insert(at(10), "a1");
        timers.insert(at(20), "b");
        timers.insert(at(10), "a2");
        assert_eq!(timers.next_deadline(), Some(at(10)));
        assert_eq!(timers.pop_expired(at(9)), None);
        let mut order = vec![];
        while let Some(v) = timers.pop_expired(at(100)) {
            order.push(v);
        }
        assert_eq!(order, ["a1", "a2", "b", "c"]);
        assert!(timers.is_empty());
    }

    #[test]
    fn cancel_removes_only_its_timer_and_stale_keys_miss() {
        let mut timers = TimerHeap::new();
        let a = timers.insert(at(1), 'a');
        let b = timers.insert(at(2), 'b');
        let c = timers.insert(at(3), 'c');
        assert_eq!(timers.cancel(b), Some('b'));
        assert_eq!(timers.cancel(b), None);
        assert!(!timers.contains(b));
        assert_eq!(timers.pop_expired(at(5)), Some('a'));
        assert_eq!(timers.cancel(a), None, "a fired already");
        let d = timers.insert(at(0), 'd');
        assert!(timers.contains(c) && timers.contains(d));
        assert_eq!(timers.pop_expired(at(5)), Some('d'));
        assert_eq!(timers.pop_expired(at(5)), Some('c'));
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn random_inserts_and_cancels_keep_heap_order() {
        let n = if cfg!(miri) { 300 } else { 20_000 };
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut timers = TimerHeap::new();
        let mut live = vec![];
        for i in 0..n {
            let deadline = xorshift(&mut rng) % 1000;
            live.push((timers.insert(at(deadline), (deadline, i)), deadline, i));
            if xorshift(&mut rng) % 3 == 0 {
                let victim = (xorshift(&mut rng) as usize) % live.len();
                let (key, deadline, i) = live.swap_remove(victim);
                assert_eq!(timers.cancel(key), Some((deadline, i)));
            }
        }
        assert_eq!(timers.len(), live.len());
        let mut expected: Vec<_> = live.iter().map(|&(_, d, i)| (d, i)).collect();
        expected.sort();
        let mut popped = vec![];
        while let Some(v) = timers.pop_expired(at(u64::MAX)) {
            popped.push(v);
        }
        assert_eq!(popped, expected);
    }
}
