//! Where the memory of greenlet headers comes from.
//!
//! Each greenlet is one block of memory: its header (the hub's bookkeeping: state, count, id,
//! joiners, its execution context; about 200 bytes on a 32-bit target) followed by its body
//! (the closure until it runs, then the value it returned). By default the block comes from the
//! global allocator. A [`HeaderSource`] installed with [`use_source`] gives it instead, for
//! the greenlets spawned after: a firmware can carve the blocks out of a static buffer
//! (`gevent_embedded::StaticHeaders`) so that spawning takes nothing from the heap for them.
//!
//! A spawn whose block the source cannot give fails rather than falls back to the heap: the
//! greenlet it returns has finished with [`FailureKind::NoHeader`](crate::FailureKind::NoHeader),
//! which `join` and `get` report.

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

/// A source of memory for greenlet headers (with their bodies): see the [module](self).
#[allow(unsafe_code)] // an unsafe trait: the hub trusts the blocks it gives
///
/// # Safety
///
/// A block that [`allocate`](Self::allocate) returns for `layout` must be valid for reads and
/// writes of `layout.size()` bytes, aligned to `layout.align()`, and not be handed out again
/// (nor otherwise used by the source) until it is given back by [`release`](Self::release).
/// The hub uses a block for its greenlet's node from `allocate` to `release`, on the thread
/// that spawned it.
///
/// Both methods run inside the hub: `allocate` in every spawn (also those the hub makes as a
/// greenlet ends, for its link callbacks), `release` wherever a greenlet's last reference
/// goes (in the hub loop, in a greenlet that the hub has already marked finished, or while
/// the thread's thread-locals are destroyed). They must not call into gevent (no blocking call, no
/// spawn, nothing that reads or changes the hub) and must not panic: the hub's state is not
/// whole at those points.
pub unsafe trait HeaderSource {
    /// A block for a greenlet node of `layout`, or why there is none.
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, HeaderError>;

    /// Takes back a block the greenlet is done with.
    ///
    /// # Safety
    ///
    /// `block` came from [`allocate`](Self::allocate) on this source with this `layout`, was
    /// not given back since, and nothing uses it any more.
    unsafe fn release(&self, block: NonNull<u8>, layout: Layout);
}

/// Why a [`HeaderSource`] had no block for a greenlet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The greenlet's node (header and body: its closure or its value, whichever is larger)
    /// does not fit the source's slots.
    TooBig {
        /// Bytes the node needs.
        size: usize,
        /// The alignment the node needs.
        align: usize,
        /// Bytes a slot holds.
        slot_size: usize,
        /// The alignment of every slot.
        slot_align: usize,
    },
    /// Every slot holds a greenlet that has not been freed (one still running, or finished
    /// with a handle to it alive).
    Exhausted {
        /// How many slots the source has.
        slots: usize,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::TooBig { size, align, slot_size, slot_align } => write!(
                f,
                "its header and body need {size} bytes aligned to {align}, and the header \
                 slots hold {slot_size} bytes aligned to {slot_align} (make the slots larger, \
                 or box what the closure captures or returns)"
            ),
            HeaderError::Exhausted { slots } => write!(
                f,
                "all {slots} header slots hold greenlets that are not freed yet (a greenlet's \
                 slot is freed when it has finished and its last handle is dropped: drop the \
                 handles of finished greenlets, or give the source more slots)"
            ),
        }
    }
}

impl core::error::Error for HeaderError {}

/// The bytes of a greenlet's header on this target. A greenlet's node is this, then its body:
/// the larger of its closure and its value, with a borrow flag, a tag and a count of handles
/// (three words more on a 32-bit target), rounded up to the alignment.
pub const HEADER_SIZE: usize = size_of::<crate::greenlet::task::Header>();

/// Makes the current hub take the headers of the greenlets spawned from now on from `source`
/// (the global allocator's until then). Greenlets spawned before keep theirs, and give them
/// back where they came from.
pub fn use_source(source: &'static dyn HeaderSource) {
    crate::hub::hub().set_header_source(Some(source));
}

/// Makes the current hub take the headers of the greenlets spawned from now on from the global
/// allocator again (the default).
pub fn use_heap() {
    crate::hub::hub().set_header_source(None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_refusal_says_what_is_short_and_what_to_do() {
        let big = HeaderError::TooBig { size: 300, align: 8, slot_size: 256, slot_align: 8 };
        let big = big.to_string();
        assert!(big.contains("need 300 bytes") && big.contains("hold 256 bytes"), "{big}");
        assert!(big.contains("make the slots larger"), "{big}");
        let full = HeaderError::Exhausted { slots: 4 }.to_string();
        assert!(full.contains("all 4 header slots"), "{full}");
        assert!(full.contains("drop the handles of finished greenlets"), "{full}");
    }
}
