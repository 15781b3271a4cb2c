//! `StaticHeaders`: greenlet headers carved out of a `static` buffer, so that spawning takes
//! nothing from the heap for them.
//!
//! The module uses `unsafe` (the crate denies it elsewhere): it hands out raw slots of its
//! buffer, which is what [`HeaderSource`] asks for. The argument: each slot is handed out to
//! one greenlet at a time (the free list, touched only inside a critical section, holds only
//! slots nobody was given or that were given back), so no two users ever share a slot's bytes;
//! the slots themselves are `UnsafeCell`s, so writing them through a shared reference to the
//! `static` is allowed.
#![allow(unsafe_code)] // see the module docs and the SAFETY comments

use core::alloc::Layout;
use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use critical_section::Mutex;
use gevent_core::headers::{HeaderError, HeaderSource};

/// The alignment of every slot of a [`StaticHeaders`]: enough for a greenlet header (which
/// holds 64-bit ids) and for bodies of ordinary types.
pub const HEADER_SLOT_ALIGN: usize = 8;

/// One slot: `SIZE` bytes, aligned for a header.
#[repr(C, align(8))]
struct Slot<const SIZE: usize>(UnsafeCell<MaybeUninit<[u8; SIZE]>>);

const _: () = assert!(align_of::<Slot<1>>() == HEADER_SLOT_ALIGN);

/// Which slots are free: those never handed out (`fresh..SLOTS`) and a list of those given
/// back, linked through their first word.
#[derive(Clone, Copy)]
struct FreeList {
    /// The first slot given back and free, or [`NONE`].
    head: usize,
    /// The first slot never handed out.
    fresh: usize,
    /// Slots handed out and not given back.
    in_use: usize,
}

const NONE: usize = usize::MAX;

/// `SLOTS` greenlet headers of `SLOT_SIZE` bytes each (aligned to [`HEADER_SLOT_ALIGN`]),
/// carved from a buffer that can be a `static`: install it with
/// [`headers::use_source`](gevent_core::headers::use_source) after `init`, and the greenlets
/// spawned from then on take their headers from it instead of the heap.
///
/// ```no_run
/// use gevent_embedded::StaticHeaders;
///
/// static HEADERS: StaticHeaders<8, 256> = StaticHeaders::new();
/// // After gevent_embedded::init(...):
/// gevent_embedded::headers::use_source(&HEADERS);
/// let g = gevent_embedded::spawn(|| 7);
/// assert_eq!(g.get(), Ok(7));
/// ```
///
/// A slot holds one greenlet's node: its header (the hub's bookkeeping) and its body (the
/// closure until it runs, then the value it returned, whichever is larger). On a Cortex-M3 the
/// header takes 176 bytes (`HEADER_SIZE`), so 256-byte slots hold closures and values of up to
/// about 68 bytes (a handle count, a borrow flag and a tag take the other 12);
/// `examples/firmware-lm3s6965` prints the figure. A slot is given back when the greenlet has
/// finished and no handle to it is left (the hub keeps the last finished greenlet's slot for
/// the next spawn, which reuses it).
///
/// A spawn that finds no slot fails instead of falling back to the heap: the greenlet it
/// returns has finished with [`FailureKind::NoHeader`](gevent_core::FailureKind::NoHeader),
/// which its `get` and `join` report, naming the bytes needed against the slot size
/// ([`HeaderError::TooBig`]) or the number of slots ([`HeaderError::Exhausted`]). That
/// report's own node comes from the heap.
///
/// # What still allocates
///
/// With static stacks and static headers, spawning, running and joining (`get`, `join`) a
/// greenlet that has no name, at most one joiner at a time, no links and no greenlet-locals
/// takes nothing from the heap (`embedded/tests/static_headers.rs` counts the allocations;
/// check 8 of `examples/firmware-lm3s6965` reads the heap's use). What still does:
///
/// - per greenlet, only when used, one box of its rarer parts, made at the first of: a name
///   (`Builder::name`; an owned name is a `String` too), a link callback (each one boxed, in
///   a `Vec`, and run by a greenlet spawned with a formatted name), a second joiner at once
///   (`joinall` on it, or two greenlets joining it; the joiners' list grows), a
///   greenlet-local (each value boxed, in a `Vec`), `kill_with` (its reason), a `Timeout` that
///   expires while it is not waiting, `spawn_later` (its start timer), and a failure (a
///   panic's message is a `String`);
/// - per hub, grown to the peak and then reused: the run queue's ring (16 entries, doubled when
///   full), the timer heap, the I/O registrations' table, the list of ready I/O events, the
///   wait lists of the primitives greenlets wait on (`Event`, `Queue`, `Lock`, ...; each
///   grows to its peak number of waiters), `joinall`'s log of who ended; once: the hub, its
///   poller, clock and stack source (boxed), the cross-thread post queue's shared state, the
///   main greenlet's header, the `StaticStacks` list of free stacks and the hub's list of kept
///   stacks;
/// - per job posted with `HubHandle::post`: the job's box (its greenlet's header comes from
///   the source like any other);
/// - per failed spawn: the header of the greenlet that reports the failure (from the heap,
///   since the source had none);
/// - event callbacks (`gevent_embedded::events`), each boxed when added.
pub struct StaticHeaders<const SLOTS: usize, const SLOT_SIZE: usize> {
    slots: [Slot<SLOT_SIZE>; SLOTS],
    free: Mutex<Cell<FreeList>>,
}

// SAFETY: the free list is a `critical_section::Mutex`, reached only inside critical sections;
// the slots' bytes are reached only by whoever holds the slot (see the module docs), and the
// links of free slots only inside critical sections. No `&` to a slot's contents ever exists.
unsafe impl<const SLOTS: usize, const SLOT_SIZE: usize> Sync for StaticHeaders<SLOTS, SLOT_SIZE> {}

impl<const SLOTS: usize, const SLOT_SIZE: usize> StaticHeaders<SLOTS, SLOT_SIZE> {
    /// All slots free. A `const fn`: the value can be a `static` (in `.bss`, no flash).
    pub const fn new() -> Self {
        assert!(SLOT_SIZE >= size_of::<usize>(), "a slot holds at least a word");
        StaticHeaders {
            slots: [const { Slot(UnsafeCell::new(MaybeUninit::uninit())) }; SLOTS],
            free: Mutex::new(Cell::new(FreeList { head: NONE, fresh: 0, in_use: 0 })),
        }
    }

    /// How many slots hold a greenlet's header now (including the last finished one, which the
    /// hub keeps for the next spawn).
    pub fn in_use(&self) -> usize {
        critical_section::with(|cs| self.free.borrow(cs).get().in_use)
    }

    /// How many slots there are.
    pub const fn slots(&self) -> usize {
        SLOTS
    }

    /// The address of slot `i`'s bytes.
    fn slot(&self, i: usize) -> NonNull<u8> {
        // SAFETY: `UnsafeCell::get` of a field of `self` is never null.
        unsafe { NonNull::new_unchecked(self.slots[i].0.get().cast()) }
    }
}

impl<const SLOTS: usize, const SLOT_SIZE: usize> Default for StaticHeaders<SLOTS, SLOT_SIZE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SLOTS: usize, const SLOT_SIZE: usize> core::fmt::Debug
    for StaticHeaders<SLOTS, SLOT_SIZE>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StaticHeaders")
            .field("slots", &SLOTS)
            .field("slot_size", &SLOT_SIZE)
            .field("in_use", &self.in_use())
            .finish()
    }
}

// SAFETY: `allocate` hands out a slot only when it leaves the free list (inside a critical
// section), so no slot is handed out twice before `release` puts it back; a slot is
// `SLOT_SIZE` bytes aligned to `HEADER_SLOT_ALIGN`, and `allocate` refuses layouts larger or
// more aligned than that. Neither method calls into gevent, and neither panics for blocks
// that the contract lets the hub give back (`release`'s check is for others).
unsafe impl<const SLOTS: usize, const SLOT_SIZE: usize> HeaderSource
    for StaticHeaders<SLOTS, SLOT_SIZE>
{
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, HeaderError> {
        if layout.size() > SLOT_SIZE || layout.align() > HEADER_SLOT_ALIGN {
            return Err(HeaderError::TooBig {
                size: layout.size(),
                align: layout.align(),
                slot_size: SLOT_SIZE,
                slot_align: HEADER_SLOT_ALIGN,
            });
        }
        critical_section::with(|cs| {
            let cell = self.free.borrow(cs);
            let mut free = cell.get();
            let i = if free.head != NONE {
                let i = free.head;
                // SAFETY: a slot on the free list holds the next one's index in its first
                // word, written by `release` (aligned: slots are 8-aligned, and hold a word);
                // nobody else holds the slot.
                free.head = unsafe { self.slot(i).cast::<usize>().read() };
                i
            } else if free.fresh < SLOTS {
                free.fresh += 1;
                free.fresh - 1
            } else {
                return Err(HeaderError::Exhausted { slots: SLOTS });
            };
            free.in_use += 1;
            cell.set(free);
            Ok(self.slot(i))
        })
    }

    unsafe fn release(&self, block: NonNull<u8>, _: Layout) {
        let offset = block.as_ptr() as usize - self.slots.as_ptr() as usize;
        let i = offset / size_of::<Slot<SLOT_SIZE>>();
        debug_assert!(i < SLOTS && offset % size_of::<Slot<SLOT_SIZE>>() == 0);
        critical_section::with(|cs| {
            let cell = self.free.borrow(cs);
            let mut free = cell.get();
            // SAFETY: the caller gives back a slot this source handed out, which nothing uses
            // any more: the slot's first word is free to hold the free list's link.
            unsafe { self.slot(i).cast::<usize>().write(free.head) };
            free.head = i;
            free.in_use -= 1;
            cell.set(free);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_handed_out_once_taken_back_and_handed_out_again() {
        let headers: StaticHeaders<2, 16> = StaticHeaders::new();
        let layout = Layout::new::<[u64; 2]>();
        let a = headers.allocate(layout).expect("a fresh slot");
        let b = headers.allocate(layout).expect("the other fresh slot");
        assert_ne!(a, b);
        assert_eq!(headers.allocate(layout), Err(HeaderError::Exhausted { slots: 2 }));
        // SAFETY: both blocks are valid for 16 bytes, aligned, and each is written through
        // its own pointer only.
        unsafe {
            a.cast::<[u64; 2]>().write([1, 2]);
            b.cast::<[u64; 2]>().write([3, 4]);
            assert_eq!(a.cast::<[u64; 2]>().read(), [1, 2]);
        }
        // SAFETY: `b` came from this source with this layout and is no longer used.
        unsafe { headers.release(b, layout) };
        assert_eq!(headers.in_use(), 1);
        assert_eq!(headers.allocate(layout), Ok(b), "the slot given back serves again");
        // SAFETY: as above, for both.
        unsafe {
            headers.release(a, layout);
            headers.release(b, layout);
        }
        assert_eq!(headers.in_use(), 0);
    }

    #[test]
    fn a_block_larger_or_more_aligned_than_a_slot_is_refused() {
        let headers: StaticHeaders<1, 16> = StaticHeaders::new();
        let too_big = Layout::new::<[u8; 17]>();
        let err = headers.allocate(too_big).unwrap_err();
        assert_eq!(err, HeaderError::TooBig { size: 17, align: 1, slot_size: 16, slot_align: 8 });
        let too_aligned = Layout::from_size_align(16, 16).unwrap();
        assert!(matches!(headers.allocate(too_aligned), Err(HeaderError::TooBig { .. })));
        assert_eq!(headers.in_use(), 0);
    }
}
