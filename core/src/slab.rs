//! A slab with generation-checked keys.
//!
//! Timers, wait lists, I/O registrations and the hub's table of live greenlets all hand out keys
//! that may outlive the entry they name (a sleep cancels a timer that already fired, say). A
//! generation stored with each slot makes such a stale key miss instead of hitting whatever
//! entry reused the slot.

use alloc::vec::Vec;
use core::num::NonZeroU32;

/// Names one entry of a [`Slab`]; stale keys (whose entry was removed) are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    index: u32,
    /// Never zero, so that `Option<Key>` is as small as `Key`.
    generation: NonZeroU32,
}

impl Key {
    /// The key as one integer, for use as an I/O token.
    pub(crate) fn to_bits(self) -> u64 {
        (u64::from(self.generation.get()) << 32) | u64::from(self.index)
    }

    /// The inverse of [`Key::to_bits`].
    pub(crate) fn from_bits(bits: u64) -> Self {
        // Bits that never came from `to_bits` (generation 0) name no entry.
        let generation = NonZeroU32::new((bits >> 32) as u32).unwrap_or(STALE);
        Key { index: bits as u32, generation }
    }
}

#[derive(Debug)]
enum Slot<T> {
    Occupied {
        generation: NonZeroU32,
        value: T,
    },
    /// `generation` is the one the next occupant will get.
    Vacant {
        generation: NonZeroU32,
        next_free: u32,
    },
}

const NO_FREE: u32 = u32::MAX;
const FIRST: NonZeroU32 = NonZeroU32::MIN;
/// A generation no slot ever has.
const STALE: NonZeroU32 = NonZeroU32::MAX;

/// Storage for values addressed by [`Key`]s, reusing the slots of removed values.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free_head: u32,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab { slots: Vec::new(), free_head: NO_FREE, len: 0 }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if self.free_head != NO_FREE {
            let index = self.free_head;
            let slot = &mut self.slots[index as usize];
            let Slot::Vacant { generation, next_free } = *slot else {
                unreachable!("the free list only links vacant slots")
            };
            self.free_head = next_free;
            *slot = Slot::Occupied { generation, value };
            Key { index, generation }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 slab entries");
            assert!(index != NO_FREE, "more than 2^32 slab entries");
            self.slots.push(Slot::Occupied { generation: FIRST, value });
            Key { index, generation: FIRST }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Removes and returns the value of `key`, or `None` if the key is stale.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == key.generation => {
                // Skips `STALE`, which `from_bits` uses for keys that name nothing.
                let next_generation = match generation.get().wrapping_add(1) {
                    0 | u32::MAX => FIRST,
                    g => NonZeroU32::new(g).expect("not zero"),
                };
                let vacant =
                    Slot::Vacant { generation: next_generation, next_free: self.free_head };
                let Slot::Occupied { value, .. } = core::mem::replace(slot, vacant) else {
                    unreachable!("matched as occupied just above")
                };
                self.free_head = key.index;
                self.len -= 1;
                Some(value)
            }
            _ => None,
        }
    }

    /// Iterates over the occupied entries in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| match slot {
            Slot::Occupied { generation, value } => {
                Some((Key { index: index as u32, generation: *generation }, value))
            }
            Slot::Vacant { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut slab = Slab::new();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index, b.index, "the slot is reused");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn keys_round_trip_through_bits() {
        let mut slab = Slab::new();
        for i in 0..10 {
            slab.insert(i);
        }
        let k = slab.insert(10);
        slab.remove(k);
        let k = slab.insert(11);
        assert_eq!(Key::from_bits(k.to_bits()), k);
        assert_eq!(slab.get(Key::from_bits(k.to_bits())), Some(&11));
    }

    #[test]
    fn free_list_reuses_every_slot() {
        let mut slab = Slab::new();
        let keys: Vec<_> = (0..100).map(|i| slab.insert(i)).collect();
        for k in keys.iter().step_by(2) {
            slab.remove(*k);
        }
        assert_eq!(slab.len(), 50);
        for i in 0..50 {
            slab.insert(1000 + i);
        }
        assert_eq!(slab.slots.len(), 100, "no growth while free slots exist");
        assert_eq!(slab.iter().count(), 100);
        assert!(slab.iter().all(|(k, v)| slab.get(k) == Some(v)));
    }
}
