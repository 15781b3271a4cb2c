//! The member table of a group: insertion and removal in O(1) by the key a member holds, and
//! in O(1) expected by greenlet id, for the calls that name a greenlet (`contains`, `discard`,
//! `add`).

use alloc::vec;
use alloc::vec::Vec;

use crate::slab::{Key, Slab};

/// What the table needs of a member: its greenlet id.
pub(super) trait Member {
    fn id(&self) -> u64;
}

impl Member for crate::greenlet::GreenletRef {
    fn id(&self) -> u64 {
        crate::greenlet::GreenletRef::id(self)
    }
}

/// One member, or a place reserved for a member about to be spawned.
#[derive(Debug)]
pub(super) struct Entry<G> {
    /// The greenlet; `None` while the entry is only reserved.
    pub(super) member: Option<G>,
    /// Whether the member holds a slot of its pool, to give back when it leaves.
    pub(super) holds_slot: bool,
}

/// The members of a group, generic over the handle type so that the bookkeeping can be tested
/// on its own (under Miri too).
#[derive(Debug)]
pub(super) struct MemberTable<G> {
    entries: Slab<Entry<G>>,
    /// Entries by greenlet id. A greenlet spawned through the group finds its entry by the key
    /// it holds, so this index only serves calls that name a greenlet from outside.
    by_id: IdIndex,
    len: usize,
}

impl<G: Member> MemberTable<G> {
    pub(super) const fn new() -> Self {
        MemberTable { entries: Slab::new(), by_id: IdIndex::new(), len: 0 }
    }

    /// Entries, reserved ones included.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Reserves an entry for a greenlet about to be spawned, which then holds the key.
    pub(super) fn reserve(&mut self, holds_slot: bool) -> Key {
        self.len += 1;
        self.entries.insert(Entry { member: None, holds_slot })
    }

    /// Records the greenlet of a reserved entry.
    pub(super) fn fill(&mut self, key: Key, member: G) {
        if let Some(entry) = self.entries.get_mut(key) {
            self.by_id.insert(member.id(), key);
            entry.member = Some(member);
        }
    }

    /// Adds a greenlet that is not a member yet.
    pub(super) fn insert(&mut self, member: G, holds_slot: bool) {
        let key = self.reserve(holds_slot);
        self.fill(key, member);
    }

    /// Removes the entry of `key`; `None` if it already left.
    pub(super) fn remove(&mut self, key: Key) -> Option<Entry<G>> {
        let entry = self.entries.remove(key)?;
        self.len -= 1;
        if let Some(member) = &entry.member {
            self.by_id.remove(member.id());
        }
        Some(entry)
    }

    /// Removes the member with greenlet id `id`; `None` if it is not one.
    pub(super) fn remove_id(&mut self, id: u64) -> Option<Entry<G>> {
        let key = self.by_id.get(id)?;
        self.remove(key)
    }

    /// The member with greenlet id `id`.
    pub(super) fn get(&self, id: u64) -> Option<&G> {
        let key = self.by_id.get(id)?;
        self.entries.get(key)?.member.as_ref()
    }

    /// Every member, in no particular order.
    pub(super) fn members(&self) -> impl Iterator<Item = &G> {
        self.entries.iter().filter_map(|(_, entry)| entry.member.as_ref())
    }
}

/// A map from greenlet id to entry key: open addressing, at most half full, Robin Hood
/// insertion (an entry far from its home bucket takes the place of one nearer to its own) and
/// removal by backward shift, so that searches and removals stop at the first entry closer to
/// home than the one sought.
///
/// The home bucket keeps the id's low bits (see [`IdIndex::home`]): the runs of consecutive
/// ids that a hub hands out land in consecutive buckets, each at home, so members that come
/// and go in spawn order touch the table sequentially. Like the slab, it keeps its capacity
/// once grown.
///
/// Measured on the `group_spawn` benchmark (100,000 greenlets spawned into a group and
/// joined, against plain spawns): about 1.5 times the plain time with this table, 2 to 2.5
/// times with a `BTreeMap` (which shifts and rebalances its leaves as members leave in
/// order), 3.5 times with a multiplicative hash of the whole id (whose scattered accesses
/// miss the cache once the greenlets' own memory is in play).
#[derive(Debug)]
struct IdIndex {
    /// `(id, key)`; `None` marks a free bucket. The length is 0 or a power of two.
    buckets: Vec<Option<(u64, Key)>>,
    len: usize,
}

impl IdIndex {
    const fn new() -> Self {
        IdIndex { buckets: Vec::new(), len: 0 }
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The bucket where `id` belongs: the id modulo the table's size, offset by its span (the
    /// bits above 64 table sizes) times an odd constant.
    ///
    /// Within a span, the members of a group (which at most half fill the table) get buckets
    /// of their own whatever their stride: consecutive ids take consecutive buckets, ids `s`
    /// apart take every `s`th bucket or, for an even `s`, also the gaps between; only a stride
    /// that is a multiple of the table's size shares a bucket, among at most 64 members. The
    /// multiplication spreads spans apart, so that no stride piles up members across spans
    /// (a plain fold of the high bits into the low ones sends a stride of the table's size
    /// plus one to a single bucket). A run of members that crosses into the next span may
    /// land on buckets in use; a run crosses at most one boundary per 128 of its lengths.
    fn home(&self, id: u64) -> usize {
        let bits = self.buckets.len().trailing_zeros();
        let span = id >> (bits + 6);
        (id.wrapping_add(span.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize) & self.mask()
    }

    /// How far the entry of `id` in bucket `i` is from its home.
    fn distance(&self, id: u64, i: usize) -> usize {
        i.wrapping_sub(self.home(id)) & self.mask()
    }

    /// The bucket holding `id`, if any.
    fn find(&self, id: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mut i = self.home(id);
        let mut distance = 0;
        loop {
            let (found, _) = self.buckets[i]?;
            if found == id {
                return Some(i);
            }
            if self.distance(found, i) < distance {
                return None; // `id` would have taken this bucket
            }
            i = (i + 1) & self.mask();
            distance += 1;
        }
    }

    fn get(&self, id: u64) -> Option<Key> {
        self.find(id).and_then(|i| self.buckets[i]).map(|(_, key)| key)
    }

    /// Maps `id` to `key`, replacing an earlier key of `id`.
    fn insert(&mut self, id: u64, key: Key) {
        if let Some(i) = self.find(id) {
            self.buckets[i] = Some((id, key));
            return;
        }
        if 2 * (self.len + 1) > self.buckets.len() {
            let size = (2 * self.buckets.len()).max(8);
            let old = core::mem::replace(&mut self.buckets, vec![None; size]);
            for (id, key) in old.into_iter().flatten() {
                self.place(id, key);
            }
        }
        self.place(id, key);
        self.len += 1;
    }

    /// Puts an id that is not in the table into it.
    fn place(&mut self, id: u64, key: Key) {
        let mut carried = (id, key);
        let mut i = self.home(id);
        let mut distance = 0;
        while let Some(resident) = self.buckets[i] {
            let resident_distance = self.distance(resident.0, i);
            if resident_distance < distance {
                self.buckets[i] = Some(carried);
                carried = resident;
                distance = resident_distance;
            }
            i = (i + 1) & self.mask();
            distance += 1;
        }
        self.buckets[i] = Some(carried);
    }

    fn remove(&mut self, id: u64) {
        let Some(mut hole) = self.find(id) else { return };
        self.len -= 1;
        loop {
            let next = (hole + 1) & self.mask();
            match self.buckets[next] {
                Some((moved, _)) if self.distance(moved, next) > 0 => {
                    self.buckets[hole] = self.buckets[next];
                    hole = next;
                }
                _ => break,
            }
        }
        self.buckets[hole] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A member for the tests: an id and a name.
    type Named = (u64, &'static str);

    impl Member for Named {
        fn id(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn members_leave_by_key_or_by_id() {
        let mut table = MemberTable::<Named>::new();
        let a = table.reserve(true);
        let b = table.reserve(false);
        assert_eq!(table.len(), 2, "reserved entries count");
        table.fill(a, (10, "a"));
        table.fill(b, (11, "b"));
        table.insert((12, "c"), false);
        assert_eq!(table.get(11), Some(&(11, "b")));
        assert_eq!(table.get(13), None);

        let left = table.remove(a).expect("a is a member");
        assert_eq!((left.member, left.holds_slot), (Some((10, "a")), true));
        assert_eq!(table.get(10), None, "the id index forgets it too");
        assert!(table.remove(a).is_none(), "a key leaves once");

        assert_eq!(table.remove_id(12).and_then(|e| e.member), Some((12, "c")));
        assert!(table.remove_id(12).is_none());
        let rest: Vec<_> = table.members().copied().collect();
        assert_eq!(rest, [(11, "b")]);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_stale_key_misses_a_member_that_reuses_its_slot() {
        let mut table = MemberTable::<Named>::new();
        let first = table.reserve(false);
        table.fill(first, (1, "first"));
        assert!(table.remove_id(1).is_some(), "discarded by id while its holder still runs");
        table.insert((2, "second"), false);
        assert!(table.remove(first).is_none(), "the old holder leaving must not evict the new");
        assert_eq!(table.get(2), Some(&(2, "second")));
    }

    #[test]
    fn a_reserved_entry_that_is_never_filled_leaves_by_key() {
        let mut table = MemberTable::<Named>::new();
        let key = table.reserve(true);
        assert_eq!(table.members().count(), 0, "not a member until filled");
        let entry = table.remove(key).expect("reserved");
        assert!(entry.member.is_none() && entry.holds_slot);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_id_index_finds_every_id_through_growth_and_removal() {
        let mut slab = Slab::new();
        let mut index = IdIndex::new();
        assert_eq!(index.get(0), None, "an empty index has no buckets to look in");
        // Runs of consecutive ids, strides that are powers of two, and id 0 (main).
        let ids: Vec<u64> =
            (0..300).chain((1000..5000).step_by(64)).chain([u64::MAX - 1]).collect();
        let keys: Vec<Key> = ids.iter().map(|&id| slab.insert(id)).collect();
        for (&id, &key) in ids.iter().zip(&keys) {
            index.insert(id, key);
        }
        assert_eq!(index.len, ids.len());
        assert!(2 * index.len <= index.buckets.len());
        // Remove every third, then check what is left and what is gone.
        for (n, &id) in ids.iter().enumerate() {
            if n % 3 == 0 {
                index.remove(id);
            }
        }
        for (n, (&id, &key)) in ids.iter().zip(&keys).enumerate() {
            let expected = if n % 3 == 0 { None } else { Some(key) };
            assert_eq!(index.get(id), expected, "id {id}");
        }
        index.remove(12_345); // absent: nothing happens
        assert_eq!(index.len, ids.len() - ids.len().div_ceil(3));
        let other = slab.insert(0);
        index.insert(1, other);
        assert_eq!(index.get(1), Some(other), "inserting an id again replaces its key");
    }

    #[test]
    fn removal_keeps_colliding_ids_reachable() {
        // Ids with the same home bucket form one probe run; removing from its middle must
        // move the rest back, including across the end of the bucket array.
        let mut slab = Slab::new();
        let mut index = IdIndex::new();
        index.insert(0, slab.insert(0));
        let size = index.buckets.len();
        let last = size - 1;
        let colliding: Vec<u64> =
            (1..100_000u64).filter(|&id| index.home(id) == last).take(3).collect();
        assert_eq!(colliding.len(), 3);
        index.remove(0);
        for &id in &colliding {
            index.insert(id, slab.insert(id));
        }
        assert_eq!(index.buckets.len(), size, "no growth: the runs wrap around");
        index.remove(colliding[0]);
        assert!(index.get(colliding[1]).is_some() && index.get(colliding[2]).is_some());
        index.remove(colliding[1]);
        assert!(index.get(colliding[2]).is_some());
        assert_eq!(index.get(colliding[0]), None);
    }

    #[test]
    fn the_id_index_agrees_with_a_list_under_random_operations() {
        // Ids in runs, in strides of powers of two (which a weak hash would pile up), and
        // scattered; inserted, replaced, looked up and removed in a deterministic random order.
        let candidates: Vec<u64> = (0..64u64)
            .chain((0..64).map(|n| (1 << 20) | (n * 8)))
            .chain((0..64).map(|n| n << 12))
            .chain((0..64).map(|n| n * 65))
            .chain((0..64).map(|n| n * 1025))
            .chain((0..64).map(|n| n * 4097))
            .chain((0..64u64).map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 8))
            .collect();
        let mut slab = Slab::new();
        let mut index = IdIndex::new();
        let mut model: Vec<(u64, Key)> = Vec::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let steps = if cfg!(miri) { 400 } else { 4000 };
        for _ in 0..steps {
            let id = candidates[random(candidates.len())];
            let known = model.iter().position(|&(m, _)| m == id);
            if random(3) == 0 {
                index.remove(id);
                if let Some(i) = known {
                    model.swap_remove(i);
                }
            } else {
                let key = slab.insert(id);
                index.insert(id, key);
                match known {
                    Some(i) => model[i].1 = key,
                    None => model.push((id, key)),
                }
            }
            assert_eq!(index.len, model.len());
            let probe = candidates[random(candidates.len())];
            let expected = model.iter().find(|&&(m, _)| m == probe).map(|&(_, key)| key);
            assert_eq!(index.get(probe), expected, "id {probe}");
        }
        for &(id, key) in &model {
            assert_eq!(index.get(id), Some(key));
        }
    }
}
