//! A greenlet's node in memory and [`TaskRef`], the thin counted pointer the hub holds it by.
//!
//! A node is a [`Header`] (the count, the body type's [`NodeVtable`], the [`Task`]) followed by
//! the typed body. A `TaskRef` is one word: the header's address. It replaced an
//! `Rc<Node<dyn Body>>`, a two-word pointer whose header sat behind the `Rc`'s two counts at an
//! offset that a `dyn` node makes a load from its vtable; here the count is the first word of
//! the header, there is no weak count, and the body type's operations are one table per type.
//!
//! Invariants that make the unsafe code below sound:
//! - A `TaskRef` owns one count of a live node; the node is dropped and its memory given back
//!   (to `source`, with the vtable's layout) exactly when the count drops to zero. Nodes are
//!   made only by [`NodeMemory::build`] (in memory that [`TaskRef::reserve`] got), which writes
//!   the count, the vtable of the body's type, the source, the task and the body before
//!   handing out the first `TaskRef`.
//! - `vtable` names the table of the node's body type, so its functions and layout fit the node.
//! - Greenlets are `!Send` (the count is a `Cell`), so a node is only touched by its thread.
//! - The pointer keeps the provenance of the whole allocation: the body is reached from it by a
//!   cast, never from a `&Header` (which covers the header only).
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::alloc::{alloc, dealloc, handle_alloc_error};
use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::{NonNull, addr_of_mut};

use super::task::{Body, Task};
use crate::error::FailureKind;
use crate::headers::{HeaderError, HeaderSource};

/// The start of every greenlet node: what the hub needs without knowing the body's type.
#[repr(C)]
pub(crate) struct Header {
    count: Cell<usize>,
    vtable: &'static NodeVtable,
    /// Where the node's memory came from: `None` for the global allocator.
    source: Option<&'static dyn HeaderSource>,
    pub(crate) task: Task,
}

/// A whole node: the header, then the body at the offset `repr(C)` gives it.
#[repr(C)]
struct Node<B> {
    header: Header,
    body: B,
}

/// The operations and layout of nodes with one body type.
pub(crate) struct NodeVtable {
    /// The layout of the whole node, for giving its memory back and for recycling it.
    layout: Layout,
    /// Drops the header's task and the body in place (the memory stays).
    drop_node: unsafe fn(NonNull<Header>),
    run: unsafe fn(NonNull<Header>, &TaskRef) -> Option<FailureKind>,
    discard: unsafe fn(NonNull<Header>),
}

/// The table of nodes with bodies of type `B`.
struct VtableOf<B>(PhantomData<B>);

impl<B: Body> VtableOf<B> {
    const VTABLE: &'static NodeVtable = &NodeVtable {
        layout: Layout::new::<Node<B>>(),
        drop_node: Self::drop_node,
        run: Self::run,
        discard: Self::discard,
    };

    /// # Safety
    /// `h` is a live `Node<B>` whose count reached zero, dropped once.
    unsafe fn drop_node(h: NonNull<Header>) {
        // SAFETY: the caller's contract; nothing refers to the node any more.
        unsafe { core::ptr::drop_in_place(h.cast::<Node<B>>().as_ptr()) }
    }

    /// # Safety
    /// `h` is a live `Node<B>`.
    unsafe fn body<'a>(h: NonNull<Header>) -> &'a B {
        // SAFETY: the caller's contract; the body is only ever borrowed shared (it is never
        // moved or borrowed mutably while the node lives), and `h` has the node's provenance.
        unsafe { &(*h.cast::<Node<B>>().as_ptr()).body }
    }

    /// # Safety
    /// `h` is a live `Node<B>`, and `me` a count of it (which keeps it alive for the call).
    unsafe fn run(h: NonNull<Header>, me: &TaskRef) -> Option<FailureKind> {
        // SAFETY: the caller's contract.
        unsafe { Self::body(h) }.run(me)
    }

    /// # Safety
    /// `h` is a live `Node<B>`, kept alive for the call.
    unsafe fn discard(h: NonNull<Header>) {
        // SAFETY: the caller's contract.
        unsafe { Self::body(h) }.discard()
    }
}

/// A shared, counted, type-erased reference to a greenlet's node, one word wide.
pub(crate) struct TaskRef(NonNull<Header>);

impl TaskRef {
    /// A new greenlet's node, built in place in memory from `source` (the global allocator's
    /// if `None`): made on the stack and moved in, the ~200-byte header was a `memcpy` that was
    /// a tenth of a spawn on a Cortex-M3. The memory is `recycled`'s (the hub's last finished
    /// greenlet) when that node has the same layout and source and nothing else refers to it:
    /// the allocator's `alloc` and `dealloc` were another ~180 instructions of it. Gives back
    /// the node and a pointer to its body, valid while a count of the node lives; or, when the
    /// source has no memory for it, why (and `body` dropped).
    #[inline(always)]
    pub(crate) fn new_node<B: Body>(
        source: Option<&'static dyn HeaderSource>,
        recycled: Option<TaskRef>,
        task: impl FnOnce() -> Task,
        body: B,
    ) -> Result<(TaskRef, NonNull<B>), HeaderError> {
        Ok(Self::reserve(source, recycled)?.build(task, body))
    }

    /// The memory for a new node with a body of type `B`: [`new_node`](Self::new_node) in two
    /// steps, for a caller that keeps the task and body if there is none.
    #[inline(always)]
    pub(crate) fn reserve<B: Body>(
        source: Option<&'static dyn HeaderSource>,
        recycled: Option<TaskRef>,
    ) -> Result<NodeMemory<B>, HeaderError> {
        let layout = Layout::new::<Node<B>>();
        let block = match recycled.and_then(|old| old.into_emptied::<B>(layout, source)) {
            Some(block) => block,
            None => allocate(source, layout)?,
        };
        Ok(NodeMemory { block: GiveBack { block, layout, source }, body: PhantomData })
    }

    /// This node's memory with the node dropped, if it has `layout`, comes from `source` and
    /// nothing else refers to it; `None` (and `self` dropped) otherwise.
    #[inline(always)]
    fn into_emptied<B: Body>(
        self,
        layout: Layout,
        source: Option<&'static dyn HeaderSource>,
    ) -> Option<NonNull<u8>> {
        if self.count.get() != 1 || !same(self.source, source) {
            return None;
        }
        // The usual recycled node has the new one's table (a loop spawning one closure), and
        // so its layout: the address says it without the loads of the layout.
        if !core::ptr::eq(self.vtable, VtableOf::<B>::VTABLE) && self.vtable.layout != layout {
            return None;
        }
        let drop_node = self.vtable.drop_node;
        let h = self.into_raw();
        // Gives the memory back if a field's drop panics.
        let guard = GiveBack { block: h.cast(), layout, source };
        // SAFETY: the count this `TaskRef` owned was the only one, so nothing else refers to
        // the node; it is dropped once, here, by its body type's function, and its memory not
        // used as a node again unless the drop returns (a panic gives it back through `guard`).
        unsafe { drop_node(h) };
        core::mem::forget(guard);
        Some(h.cast())
    }

    /// The greenlet's header.
    #[inline(always)]
    pub(crate) fn task(&self) -> &Task {
        &self.task
    }

    /// Runs the body to its end, on the greenlet's own stack (see [`Body::run`]).
    #[inline]
    pub(crate) fn run(&self) -> Option<FailureKind> {
        // SAFETY: `run` is the vtable's of this node's body type; `self` keeps the node alive
        // for the call.
        unsafe { (self.vtable.run)(self.0, self) }
    }

    /// Drops the body without running it; see [`Body::discard`].
    pub(crate) fn discard(&self) {
        // SAFETY: the vtable's function for this node's body type; `self` keeps it alive.
        unsafe { (self.vtable.discard)(self.0) }
    }

    /// A node of the main greenlet's body type with id `id`, for unit tests of what holds
    /// greenlets.
    #[cfg(test)]
    pub(crate) fn for_test(id: u64) -> TaskRef {
        let task = move || Task::new(id, None, core::panic::Location::caller(), 0, false);
        TaskRef::new_node(None, None, task, super::task::MainBody).expect("on the heap").0
    }

    /// The number of counted references to the node.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.count.get()
    }

    /// Whether both name the same greenlet.
    #[cfg(test)]
    pub(crate) fn ptr_eq(a: &TaskRef, b: &TaskRef) -> bool {
        a.0 == b.0
    }

    /// The node's address.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.0
    }

    /// The node's address, owning the count `self` owned (see [`TaskRef::from_raw`]).
    #[inline(always)]
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        let h = self.0;
        core::mem::forget(self);
        h
    }

    /// The `TaskRef` owning the count that [`TaskRef::into_raw`] gave out.
    ///
    /// # Safety
    /// `h` came from `into_raw`, and its count is given back this once.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(h: NonNull<Header>) -> TaskRef {
        TaskRef(h)
    }

    /// A new count of the node at `h`.
    ///
    /// # Safety
    /// `h` is the address of a live node (one a count keeps alive for the call).
    #[inline(always)]
    pub(crate) unsafe fn clone_raw(h: NonNull<Header>) -> TaskRef {
        // SAFETY: the caller's contract.
        increment(unsafe { &h.as_ref().count });
        TaskRef(h)
    }

    /// Drops the node and gives its memory back; the last count is gone.
    #[cold]
    #[inline(never)]
    fn drop_node(&mut self) {
        // Gives the memory back after the drop, even if a field's drop panics.
        let give_back =
            GiveBack { block: self.0.cast(), layout: self.vtable.layout, source: self.source };
        // SAFETY: the count reached zero, so nothing refers to the node; it is dropped once.
        unsafe { (self.vtable.drop_node)(self.0) };
        drop(give_back);
    }
}

/// Whether two sources are the same one (`None`: the global allocator), by address and type:
/// the address alone names two sources at once when they share it (two zero-sized ones, or a
/// source and its first field), and a block one of them gave must not go back to the other.
/// A type's table that the compiler made twice only makes a node not recycled.
fn same(a: Option<&'static dyn HeaderSource>, b: Option<&'static dyn HeaderSource>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => core::ptr::eq(a, b),
        _ => false,
    }
}

/// Gives a block of node memory back to its source when dropped.
struct GiveBack {
    block: NonNull<u8>,
    layout: Layout,
    source: Option<&'static dyn HeaderSource>,
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        match self.source {
            // SAFETY: every `GiveBack` is made for a block that `allocate` got from `source`
            // with `layout` (directly, or as a recycled node's of the same source and layout),
            // and dropped (not forgotten) only once nothing uses the block: no node was built
            // in it yet, or its node has been dropped.
            None => unsafe { dealloc(self.block.as_ptr(), self.layout) },
            // SAFETY: as above; the `HeaderSource` contract takes such a block back.
            Some(source) => unsafe { source.release(self.block, self.layout) },
        }
    }
}

/// Memory for one node with a body of type `B`, given back if dropped unused.
pub(crate) struct NodeMemory<B> {
    block: GiveBack,
    body: PhantomData<B>,
}

impl<B: Body> NodeMemory<B> {
    /// Builds the node in this memory.
    #[inline(always)]
    pub(crate) fn build(self, task: impl FnOnce() -> Task, body: B) -> (TaskRef, NonNull<B>) {
        let guard = self.block;
        let (block, source) = (guard.block, guard.source);
        let p = block.cast::<Node<B>>().as_ptr();
        // SAFETY: `block` is valid for writes of a `Node<B>` (from `source` or a recycled node
        // of the same source, with its layout) and nothing else refers to it; every field is
        // written, in place, before the `TaskRef` that owns the first count exists. If `task`
        // panics, `guard` gives the block back, which holds nothing to drop yet.
        let body = unsafe {
            addr_of_mut!((*p).header.task).write(task());
            addr_of_mut!((*p).header.count).write(Cell::new(1));
            addr_of_mut!((*p).header.vtable).write(VtableOf::<B>::VTABLE);
            addr_of_mut!((*p).header.source).write(source);
            let at = addr_of_mut!((*p).body);
            at.write(body);
            NonNull::new_unchecked(at)
        };
        core::mem::forget(guard);
        (TaskRef(block.cast()), body)
    }
}

/// Adds one to a node's count; aborts (as `Rc` does) rather than wrap it, which only leaked
/// (`mem::forget`-ed) references can make happen.
#[inline(always)]
fn increment(count: &Cell<usize>) {
    let n = count.get();
    if n == usize::MAX {
        count_overflow();
    }
    count.set(n + 1);
}

#[cold]
#[inline(never)]
fn count_overflow() -> ! {
    #[cfg(feature = "std")]
    std::process::abort();
    // Without `std` there is no abort to call: a panic leaves the count as it is, which keeps
    // the node alive for ever rather than free it under a reference.
    #[cfg(not(feature = "std"))]
    panic!("a greenlet's reference count overflowed");
}

/// Memory for a node, from `source` or the global allocator.
#[inline(always)]
fn allocate(
    source: Option<&'static dyn HeaderSource>,
    layout: Layout,
) -> Result<NonNull<u8>, HeaderError> {
    match source {
        None => {
            // SAFETY: a node's layout has a non-zero size (the header is not empty).
            let p = unsafe { alloc(layout) };
            Ok(NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout)))
        }
        Some(source) => source.allocate(layout),
    }
}

impl Header {
    /// The size of the whole node, header and body.
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn node_size(&self) -> usize {
        self.vtable.layout.size()
    }
}

impl Deref for TaskRef {
    type Target = Header;

    #[inline(always)]
    fn deref(&self) -> &Header {
        // SAFETY: the count `self` owns keeps the node alive while `self` is borrowed.
        unsafe { self.0.as_ref() }
    }
}

impl Clone for TaskRef {
    #[inline(always)]
    fn clone(&self) -> Self {
        increment(&self.count);
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    #[inline(always)]
    fn drop(&mut self) {
        let n = self.count.get() - 1;
        self.count.set(n);
        if n == 0 {
            self.drop_node();
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::borrow::Cow;
    use alloc::rc::Rc;
    use core::panic::Location;
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::greenlet::task::MainBody;

    /// A body that holds `T` and is never started: what a node test needs of a body is its
    /// size, its type and its drop.
    struct Inert<T>(T);

    impl<T: 'static> Body for Inert<T> {
        fn run(&self, _: &TaskRef) -> Option<FailureKind> {
            unreachable!("never started")
        }
        fn discard(&self) {}
    }

    /// Records its drop, to check that the node owns its body.
    struct DropFlag(Rc<Cell<bool>>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    /// A body that records its drop.
    type Probe = Inert<DropFlag>;

    fn probe(dropped: Rc<Cell<bool>>) -> Probe {
        Inert(DropFlag(dropped))
    }

    fn task(id: u64) -> impl FnOnce() -> Task {
        move || Task::new(id, None, Location::caller(), 0, false)
    }

    fn probe_node(recycled: Option<TaskRef>, id: u64, dropped: &Rc<Cell<bool>>) -> TaskRef {
        TaskRef::new_node(None, recycled, task(id), probe(dropped.clone())).unwrap().0
    }

    #[test]
    fn a_node_built_in_place_holds_its_header_and_body() {
        let dropped = Rc::new(Cell::new(false));
        let named = || Task::new(7, Some(Cow::Borrowed("probe")), Location::caller(), 4096, false);
        let (t, body) = TaskRef::new_node(None, None, named, probe(dropped.clone())).unwrap();
        assert_eq!((t.task().id, t.task().stack_size, t.task().is_main), (7, 4096, false));
        assert_eq!(t.task().name(), "probe");
        let offset = body.as_ptr() as usize - t.as_ptr().as_ptr() as usize;
        assert_eq!(offset, core::mem::offset_of!(Node<Probe>, body), "the body follows the header");
        drop(t);
        assert!(dropped.get());
    }

    #[test]
    fn the_node_lives_until_its_last_count_is_dropped() {
        let dropped = Rc::new(Cell::new(false));
        let t = probe_node(None, 1, &dropped);
        let (a, b) = (t.clone(), t.clone());
        assert_eq!(t.count(), 3);
        assert!(TaskRef::ptr_eq(&a, &b));
        drop((t, a));
        assert!(!dropped.get() && b.count() == 1);
        // SAFETY: `b` keeps the node alive; the raw count is given back at once.
        let c = unsafe { TaskRef::clone_raw(b.as_ptr()) };
        // SAFETY: the count came from `into_raw`, given back once.
        let d = unsafe { TaskRef::from_raw(c.into_raw()) };
        assert_eq!(d.count(), 2);
        drop((b, d));
        assert!(dropped.get());
    }

    #[test]
    fn a_spawn_reuses_the_memory_of_a_finished_greenlet_of_its_layout_nobody_holds() {
        let (first, second) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
        let old = probe_node(None, 1, &first);
        let address = old.as_ptr();
        let new = probe_node(Some(old), 2, &second);
        assert!(first.get(), "the old node was dropped");
        assert_eq!(new.as_ptr(), address, "in the same memory");
        assert_eq!(new.task().id, 2);
        drop(new);
        assert!(second.get());
    }

    #[test]
    fn a_finished_greenlet_still_referred_to_or_of_another_layout_is_not_reused() {
        let dropped = Rc::new(Cell::new(false));
        let old = probe_node(None, 1, &dropped);
        let held = old.clone();
        let new = probe_node(Some(old), 2, &dropped);
        assert!(!dropped.get() && !TaskRef::ptr_eq(&held, &new));
        assert_eq!((held.task().id, held.count()), (1, 1));
        drop(new);
        dropped.set(false);
        let other = TaskRef::new_node(None, Some(held), task(3), MainBody).unwrap().0;
        assert!(dropped.get(), "a node of another layout is freed, not reused");
        assert_eq!(other.task().id, 3);
    }

    /// A source of one 1 KiB slot, counting what it hands out and takes back.
    struct OneSlot {
        slot: core::cell::UnsafeCell<[u64; 128]>,
        taken: AtomicBool,
        released: AtomicUsize,
    }

    // SAFETY: the slot's bytes are reached only through the pointer `allocate` hands out to
    // one holder at a time (`taken`); the counters are atomics.
    unsafe impl Sync for OneSlot {}

    // SAFETY: the slot is handed out only while not taken, and is 1 KiB aligned to 8; larger or
    // more aligned layouts are refused.
    unsafe impl HeaderSource for OneSlot {
        fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, HeaderError> {
            if layout.size() > 1024 || layout.align() > 8 {
                let (size, align) = (layout.size(), layout.align());
                return Err(HeaderError::TooBig { size, align, slot_size: 1024, slot_align: 8 });
            }
            if self.taken.swap(true, Ordering::Relaxed) {
                return Err(HeaderError::Exhausted { slots: 1 });
            }
            Ok(NonNull::new(self.slot.get().cast()).expect("not null"))
        }

        unsafe fn release(&self, block: NonNull<u8>, _: Layout) {
            assert_eq!(block.as_ptr(), self.slot.get().cast());
            self.released.fetch_add(1, Ordering::Relaxed);
            self.taken.store(false, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_node_from_a_source_goes_back_to_it_and_a_refused_one_says_why() {
        static SOURCE: OneSlot = OneSlot {
            slot: core::cell::UnsafeCell::new([0; 128]),
            taken: AtomicBool::new(false),
            released: AtomicUsize::new(0),
        };
        let source: Option<&'static dyn HeaderSource> = Some(&SOURCE);
        let dropped = Rc::new(Cell::new(false));
        let t = TaskRef::new_node(source, None, task(1), probe(dropped.clone())).unwrap().0;
        assert_eq!(t.as_ptr().as_ptr().cast::<u8>(), SOURCE.slot.get().cast::<u8>());
        let refused = TaskRef::new_node(source, None, task(2), MainBody).map(|_| ()).unwrap_err();
        assert_eq!(refused, HeaderError::Exhausted { slots: 1 });
        // A heap node is not recycled into the source's memory, nor the other way round.
        let heap = probe_node(None, 3, &dropped);
        let from_heap = TaskRef::new_node(source, Some(heap), task(4), MainBody);
        assert!(from_heap.is_err(), "the source's only slot is still taken");
        let recycled = probe_node(Some(t), 5, &dropped);
        assert_ne!(recycled.as_ptr().as_ptr().cast::<u8>(), SOURCE.slot.get().cast::<u8>());
        assert_eq!(SOURCE.released.load(Ordering::Relaxed), 1, "the source's node went back");
        let same = TaskRef::new_node(source, Some(recycled), task(6), MainBody).unwrap().0;
        assert_eq!(same.as_ptr().as_ptr().cast::<u8>(), SOURCE.slot.get().cast::<u8>());
        let big = TaskRef::new_node(source, None, task(7), Inert([0u8; 2048])).map(|_| ());
        assert!(matches!(big, Err(HeaderError::TooBig { slot_size: 1024, .. })));
        drop(same);
        assert_eq!(SOURCE.released.load(Ordering::Relaxed), 2);
    }

    /// One slot (`inner`, at the address of the whole) and another one (`outer`, which the
    /// whole hands out): two sources at one address.
    #[repr(C)]
    struct Nested {
        inner: OneSlot,
        outer: OneSlot,
    }

    // SAFETY: `OneSlot`'s, forwarded to `outer`.
    unsafe impl HeaderSource for Nested {
        fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, HeaderError> {
            self.outer.allocate(layout)
        }

        unsafe fn release(&self, block: NonNull<u8>, layout: Layout) {
            // SAFETY: the caller's contract, for `outer`'s blocks.
            unsafe { self.outer.release(block, layout) }
        }
    }

    #[test]
    fn a_node_is_not_recycled_into_another_source_at_the_same_address() {
        const fn empty() -> OneSlot {
            OneSlot {
                slot: core::cell::UnsafeCell::new([0; 128]),
                taken: AtomicBool::new(false),
                released: AtomicUsize::new(0),
            }
        }
        static NESTED: Nested = Nested { inner: empty(), outer: empty() };
        let (inner, whole): (&'static dyn HeaderSource, &'static dyn HeaderSource) =
            (&NESTED.inner, &NESTED);
        assert!(core::ptr::addr_eq(inner, whole), "the case under test");
        let t = TaskRef::new_node(Some(inner), None, task(1), MainBody).unwrap().0;
        let new = TaskRef::new_node(Some(whole), Some(t), task(2), MainBody).unwrap().0;
        assert_eq!(NESTED.inner.released.load(Ordering::Relaxed), 1, "inner's slot went back");
        assert_eq!(new.as_ptr().as_ptr().cast::<u8>(), NESTED.outer.slot.get().cast::<u8>());
        drop(new);
        assert_eq!(NESTED.outer.released.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_body_that_panics_when_dropped_still_gives_the_memory_back() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let t = TaskRef::new_node(None, None, task(1), Inert(Bomb)).unwrap().0;
        // Miri reports a leak if the memory is not given back.
        let caught = crate::panic::catch(move || drop(t));
        assert!(caught.is_err());
    }
}
