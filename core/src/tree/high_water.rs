//! A stack's high-water mark: how deep it has ever been used, read from memory that starts
//! zeroed (fresh pages) or painted with a pattern (static stacks).
//!
//! Stacks grow down. From an address below which the stack source knows the memory was never
//! written, the first word going up that is not the source's paint is the deepest write. The reading stops
//! [`LIVE_MARGIN`] bytes below the greenlet's stack pointer, so it never reads the frames it
//! runs (or will resume) in: only dead memory, which no Rust reference points into.
#![allow(unsafe_code)] // reads of raw stack memory; see the SAFETY comments

use core::ptr;

use crate::stack::StackRegion;

const WORD: usize = size_of::<usize>();

/// Bytes below a stack pointer that the reading leaves alone: the registers a suspended
/// greenlet's switch saved below its last known stack pointer, or the reading function's own
/// frame (and the red zone below it) for the running greenlet.
///
/// 32-bit ARM (AAPCS) has no red zone and small frames: the switch's saved registers (and,
/// with corosensei, the frames between `Context::suspend`'s marker and its switch) take well under
/// 256 bytes (measured: see `gevent_embedded::StaticStacks`), and a greenlet stack
/// there may be 1 KiB, which a 1 KiB margin would leave unread.
#[cfg(target_arch = "arm")]
pub(crate) const LIVE_MARGIN: usize = 256;
/// Elsewhere (x86-64's 128-byte red zone, larger frames) a generous margin.
#[cfg(not(target_arch = "arm"))]
pub(crate) const LIVE_MARGIN: usize = 1024;

/// The high-water mark of a suspended greenlet's stack `region`: bytes from its top down to
/// its deepest write, or to `sp` (its stack pointer at the suspend) if nothing below was
/// written. `untouched_below` and `paint` are the stack source's answers for the region.
///
/// # Safety
///
/// `region` must be a stack that stays mapped and that nothing writes during the call (its
/// greenlet is suspended on this thread), and `[untouched_below, sp - LIVE_MARGIN)` must hold
/// no memory that a Rust reference points into (it is below the greenlet's stack pointer).
pub(crate) unsafe fn of_suspended(
    region: &StackRegion,
    untouched_below: usize,
    paint: usize,
    sp: usize,
) -> usize {
    // SAFETY: forwarded from the caller.
    unsafe { measure(region, untouched_below, paint, sp) }
}

/// The high-water mark of the stack `region` that the caller runs on; see [`of_suspended`].
///
/// # Safety
///
/// `region` must be the stack the calling greenlet runs on.
#[inline(never)] // its frame is the lowest live one: `here` marks it
pub(crate) unsafe fn of_current(
    region: &StackRegion,
    untouched_below: usize,
    paint: usize,
) -> usize {
    let marker = 0u8;
    let here = ptr::addr_of!(marker) as usize;
    // SAFETY: the caller runs on `region`, which stays mapped while it runs, and only this
    // thread writes it, which is busy in this call. Below `here - LIVE_MARGIN` lie only frames
    // that returned: this frame's red zone and the frames of what it calls while reading
    // (`first_written`, and in debug builds small helpers such as `max` and `read_volatile`)
    // are a few hundred bytes at most, within the margin; so no reference points there.
    unsafe { measure(region, untouched_below, paint, here) }
}

/// # Safety
///
/// As for [`of_suspended`].
#[inline(always)] // no frame below `of_current`'s marker
unsafe fn measure(region: &StackRegion, untouched_below: usize, paint: usize, sp: usize) -> usize {
    let top = region.top.get();
    // A stack source's answer above the top (or a guard past it) reads nothing.
    let floor = untouched_below.max(region.bottom.get().saturating_add(region.guard)).min(top);
    let sp = sp.clamp(floor, top);
    let limit = sp.saturating_sub(LIVE_MARGIN).max(floor);
    // SAFETY: `[floor, limit)` lies inside the usable part of `region` (above its guard, below
    // the stack pointer), which the caller guarantees readable, written by nobody meanwhile,
    // and pointed into by no reference.
    let written = unsafe { first_written(floor, limit, paint) };
    // Nothing written below the margin: the deepest use known is where it stands.
    let deepest = if written < limit { written } else { sp };
    top - deepest
}

/// The address of the first word of `[from, to)` (from rounded up to a word) that is not
/// `paint`, or `to` if every word is.
///
/// # Safety
///
/// `[from, to)` must be readable memory that no one writes during the call and that no
/// reference points into (its bytes may be any values, including uninitialized ones of dead
/// frames, which a volatile read of a `usize` merely observes).
#[inline(always)] // no frame below `of_current`'s marker
pub(crate) unsafe fn first_written(from: usize, to: usize, paint: usize) -> usize {
    let mut addr = from.next_multiple_of(WORD);
    while addr.saturating_add(WORD) <= to {
        // SAFETY: the word lies in `[from, to)`, readable and unaliased by the caller's
        // promise, and aligned. Volatile: the compiler may not assume the memory is unused
        // (it belongs to no Rust object it knows of) and elide or merge the reads.
        let word = unsafe { ptr::read_volatile(ptr::with_exposed_provenance::<usize>(addr)) };
        if word != paint {
            return addr;
        }
        addr += WORD;
    }
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::num::NonZeroUsize;

    fn region_of(words: &[usize]) -> StackRegion {
        let bottom = words.as_ptr().expose_provenance();
        StackRegion {
            top: NonZeroUsize::new(bottom + words.len() * WORD).unwrap(),
            bottom: NonZeroUsize::new(bottom).unwrap(),
            guard: 0,
        }
    }

    #[test]
    fn the_deepest_write_sets_the_mark() {
        let mut words = vec![0usize; 1024];
        words[700] = 1; // 324 words below the top
        words[900] = 7;
        let region = region_of(&words);
        let sp = region.top.get() - 16 * WORD;
        // SAFETY: `words` is a live allocation the region covers, not written while it is read.
        let mark = unsafe { of_suspended(&region, region.bottom.get(), 0, sp) };
        assert_eq!(mark, (1024 - 700) * WORD);
    }

    #[test]
    fn an_unwritten_stack_counts_down_to_its_stack_pointer() {
        let words = vec![0usize; 1024];
        let region = region_of(&words);
        let sp = region.top.get() - 200 * WORD;
        // SAFETY: as above.
        let mark = unsafe { of_suspended(&region, region.bottom.get(), 0, sp) };
        assert_eq!(mark, 200 * WORD);
    }

    #[test]
    fn the_margin_below_the_stack_pointer_and_the_guard_are_not_read() {
        let mut words = vec![0usize; 1024];
        // Writes in the guard and in the margin are not seen (they would not be read).
        words[10] = 1;
        words[1024 - 100 - 4] = 1;
        let region = StackRegion { guard: 64 * WORD, ..region_of(&words) };
        let sp = region.top.get() - 100 * WORD;
        // SAFETY: as above.
        let mark = unsafe { of_suspended(&region, region.bottom.get(), 0, sp) };
        assert_eq!(mark, 100 * WORD);
    }

    #[test]
    fn reading_starts_where_the_source_says() {
        let mut words = vec![0usize; 64];
        words[3] = 9; // below where reading starts
        let base = words.as_ptr().expose_provenance();
        let (from, end) = (base + 8 * WORD, base + 64 * WORD);
        // SAFETY: as above.
        assert_eq!(unsafe { first_written(from, end, 0) }, end);
        words[20] = 1;
        let base = words.as_ptr().expose_provenance();
        let (from, end) = (base + 8 * WORD, base + 64 * WORD);
        // SAFETY: as above.
        assert_eq!(unsafe { first_written(from, end, 0) }, from + 12 * WORD);
    }

    #[test]
    fn a_painted_stack_is_read_up_to_the_first_word_that_is_not_the_paint() {
        const PAINT: usize = usize::from_ne_bytes([0xa5; WORD]);
        let mut words = vec![PAINT; 1024];
        words[600] = 0; // a zero is a write too
        words[800] = 3;
        let region = region_of(&words);
        let sp = region.top.get() - 100 * WORD;
        // SAFETY: as above.
        let mark = unsafe { of_suspended(&region, region.bottom.get(), PAINT, sp) };
        assert_eq!(mark, (1024 - 600) * WORD);
    }

    #[test]
    fn a_source_answer_or_guard_past_the_top_reads_nothing_and_does_not_panic() {
        let words = vec![0usize; 64];
        let region = region_of(&words);
        let sp = region.top.get() - 8 * WORD;
        // SAFETY: as above; nothing is read.
        let mark = unsafe { of_suspended(&region, region.top.get() + 64, 0, sp) };
        assert_eq!(mark, 0);
        let region = StackRegion { guard: usize::MAX, ..region_of(&words) };
        // SAFETY: as above.
        let mark = unsafe { of_suspended(&region, region.bottom.get(), 0, sp) };
        assert_eq!(mark, 0);
    }
}
