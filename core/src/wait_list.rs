//! `WaitList`: a FIFO of waiters with O(1) removal of any waiter by key.
//!
//! Blocking primitives queue the greenlets that wait on them here. A waiter that stops waiting
//! early (killed, timed out) removes itself by key without disturbing the others' order, so
//! waiters are always served in arrival order.

use crate::slab::{Key, Slab};

/// Names one waiter of a [`WaitList`]; stale after the waiter was popped or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterKey(Key);

impl WaiterKey {
    /// The key as one integer, for opaque handles.
    pub(crate) fn to_bits(self) -> u64 {
        self.0.to_bits()
    }

    /// The inverse of [`WaiterKey::to_bits`].
    pub(crate) fn from_bits(bits: u64) -> Self {
        WaiterKey(Key::from_bits(bits))
    }
}

#[derive(Debug)]
struct Node<T> {
    value: T,
    prev: Option<Key>,
    next: Option<Key>,
}

/// A doubly linked FIFO whose nodes live in a slab.
#[derive(Debug)]
pub(crate) struct WaitList<T> {
    nodes: Slab<Node<T>>,
    head: Option<Key>,
    tail: Option<Key>,
}

impl<T> Default for WaitList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> WaitList<T> {
    pub(crate) const fn new() -> Self {
        WaitList { nodes: Slab::new(), head: None, tail: None }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Appends a waiter at the back.
    pub(crate) fn push_back(&mut self, value: T) -> WaiterKey {
        let key = self.nodes.insert(Node { value, prev: self.tail, next: None });
        match self.tail {
            Some(tail) => self.node_mut(tail).next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        WaiterKey(key)
    }

    /// Removes and returns the waiter at the front.
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let head = self.head?;
        self.remove(WaiterKey(head))
    }

    /// The waiter at the front.
    #[cfg(test)]
    pub(crate) fn front(&self) -> Option<&T> {
        self.head.map(|k| &self.nodes.get(k).expect("head is linked").value)
    }

    /// Removes a waiter wherever it is; `None` if it was already popped or removed.
    pub(crate) fn remove(&mut self, key: WaiterKey) -> Option<T> {
        let node = self.nodes.remove(key.0)?;
        match node.prev {
            Some(prev) => self.node_mut(prev).next = node.next,
            None => self.head = node.next,
        }
        match node.next {
            Some(next) => self.node_mut(next).prev = node.prev,
            None => self.tail = node.prev,
        }
        Some(node.value)
    }

    fn node_mut(&mut self, key: Key) -> &mut Node<T> {
        self.nodes.get_mut(key).expect("linked nodes are present")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn drain<T>(list: &mut WaitList<T>) -> Vec<T> {
        core::iter::from_fn(|| list.pop_front()).collect()
    }

    #[test]
    fn fifo_order() {
        let mut list = WaitList::new();
        for i in 0..5 {
            list.push_back(i);
        }
        assert_eq!(list.front(), Some(&0));
        assert_eq!(drain(&mut list), [0, 1, 2, 3, 4]);
        assert!(list.is_empty());
    }

    #[test]
    fn removal_from_anywhere_keeps_the_others_in_order() {
        let mut list = WaitList::new();
        let keys: Vec<_> = (0..6).map(|i| list.push_back(i)).collect();
        assert_eq!(list.remove(keys[0]), Some(0)); // head
        assert_eq!(list.remove(keys[5]), Some(5)); // tail
        assert_eq!(list.remove(keys[3]), Some(3)); // middle
        assert_eq!(list.remove(keys[3]), None, "removing twice misses");
        list.push_back(6);
        assert_eq!(list.len(), 4);
        assert_eq!(drain(&mut list), [1, 2, 4, 6]);
    }

    #[test]
    fn popped_keys_are_stale_even_after_slot_reuse() {
        let mut list = WaitList::new();
        let a = list.push_back('a');
        assert_eq!(list.pop_front(), Some('a'));
        let b = list.push_back('b');
        assert_eq!(list.remove(a), None);
        assert_eq!(list.remove(b), Some('b'));
        assert!(list.is_empty());
    }
}
