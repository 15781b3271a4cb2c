//! `MmapStacks`: greenlet stacks from anonymous memory maps, each with a guard page below it.
//!
//! A stack costs address space, not memory: pages are faulted in as the greenlet touches them.
//! Linux counts a guard-paged stack as two maps against `vm.max_map_count` (65,530 by default),
//! so about 32,000 greenlets can hold a stack at once unless the limit is raised; the error says
//! so, with the current limit and a higher one, when the kernel refuses.
#![allow(unsafe_code)] // mmap, mprotect, munmap

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::ptr;

use gevent_core::stack::{StackError, StackRegion, StackSource, round_stack_size};
use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap_anonymous, mprotect, munmap};

/// Guard-paged stacks from `mmap`.
///
/// Sizes are rounded up to whole pages; a size that cannot be mapped with its guard page
/// (beyond `isize::MAX` bytes) is refused with an error naming it.
#[derive(Debug)]
pub struct MmapStacks {
    page_size: usize,
}

impl Default for MmapStacks {
    fn default() -> Self {
        MmapStacks { page_size: rustix::param::page_size() }
    }
}

impl MmapStacks {
    fn map_flags() -> MapFlags {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::STACK
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            MapFlags::PRIVATE
        }
    }

    fn refusal(what: &str, errno: Errno, size: usize) -> StackError {
        let max_map_count = if errno == Errno::NOMEM && cfg!(target_os = "linux") {
            std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse().ok())
        } else {
            None
        };
        StackError { message: Cow::Owned(refusal_message(what, errno, size, max_map_count)) }
    }
}

/// What a refused map says; `max_map_count` is Linux's limit on memory maps where running out
/// of them may be why (`ENOMEM`), and `None` where it is unknown or beside the point.
fn refusal_message(what: &str, errno: Errno, size: usize, max_map_count: Option<u64>) -> String {
    let mut message = format!("{what} of a {size}-byte greenlet stack failed: {errno}");
    if let Some(limit) = max_map_count {
        // The crate docs suggest 262,144; a limit already there or above is doubled, so the
        // advice is never the value the system already has.
        let suggested = limit.saturating_mul(2).max(262_144);
        message.push_str(&format!(
            " (out of memory or address space, or out of memory maps: each greenlet holding a \
             stack takes 2 maps and vm.max_map_count is {limit}; raise it, for example with \
             `sysctl -w vm.max_map_count={suggested}`, or have fewer greenlets hold a stack at \
             once)"
        ));
    }
    message
}

// SAFETY: each region is a fresh private mapping of `guard + usable` bytes, page-aligned (hence
// 16-byte aligned), whose lowest page is made inaccessible as the guard; it is owned by the
// caller until `release` unmaps it. Whatever size is asked for, `round` either refuses it or
// gives a usable size that, with the guard page added, stays below `isize::MAX`.
unsafe impl StackSource for MmapStacks {
    fn round(&self, size: usize) -> Result<usize, StackError> {
        round_stack_size(size, self.page_size, isize::MAX as usize - self.page_size)
    }

    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        let page = self.page_size;
        let usable = self.round(size)?;
        let total = usable + page; // no overflow: `round` keeps room for the guard
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choice aliases nothing.
        let base = unsafe {
            mmap_anonymous(
                ptr::null_mut(),
                total,
                ProtFlags::READ | ProtFlags::WRITE,
                Self::map_flags(),
            )
        }
        .map_err(|e| Self::refusal("mmap", e, usable))?;
        // SAFETY: the first page of the mapping just made is ours to protect.
        if let Err(e) = unsafe { mprotect(base, page, MprotectFlags::empty()) } {
            // SAFETY: unmapping the mapping we just made and have not shared.
            let _ = unsafe { munmap(base, total) };
            return Err(Self::refusal("mprotect (guard page)", e, usable));
        }
        let bottom = NonZeroUsize::new(base as usize).expect("mmap does not return null");
        let top = NonZeroUsize::new(base as usize + total).expect("no wrap-around");
        Ok(StackRegion { top, bottom, guard: page })
    }

    /// The start of the lowest resident page: an anonymous mapping's pages read as zeros
    /// until they are first touched, and `mincore` says which were, without touching them
    /// (reading the untouched part of every stack would map the zero page into all of it). A
    /// page that was swapped out looks untouched: the mark then misses what lies in it.
    fn untouched_below(&self, region: &StackRegion) -> Option<usize> {
        // `StackRegion`'s fields are public: a region whose guard reaches past its top is not
        // one of ours, and has no pages to ask about.
        let start = region.bottom.get().checked_add(region.guard)?;
        let len = region.top.get().checked_sub(start)?;
        let mut resident = vec![0u8; len.div_ceil(self.page_size)];
        // SAFETY: mincore reads no memory of the range and writes one byte per page of
        // `[start, start + len)`, rounded up, into `resident`, which has exactly that many,
        // whatever the range is: whether this source mapped it, another mapping lies there, or
        // nothing (ENOMEM), or `start` is not page-aligned (EINVAL) only changes the answer.
        let failed =
            unsafe { libc::mincore(start as *mut _, len, resident.as_mut_ptr().cast()) } != 0;
        if failed {
            return Some(start); // zero-filled all the same: read it all
        }
        let first = resident.iter().position(|&page| page & 1 != 0);
        Some(first.map_or(region.top.get(), |i| start + i * self.page_size))
    }

    unsafe fn release(&mut self, region: StackRegion) {
        let len = region.top.get() - region.bottom.get();
        // SAFETY: the caller guarantees the region came from `allocate` (one whole mapping) and
        // is no longer in use.
        let _ = unsafe { munmap(region.bottom.get() as *mut _, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gevent_core::stack::MIN_STACK_SIZE;

    #[test]
    fn sizes_are_rounded_up_to_whole_pages() {
        let mut stacks = MmapStacks::default();
        let page = stacks.page_size;
        for size in [0, 1, 5000, MIN_STACK_SIZE, page + 1] {
            let region = stacks.allocate(size).unwrap();
            let usable = region.usable_size();
            assert!(usable >= size.max(MIN_STACK_SIZE) && usable % page == 0, "{size}: {usable}");
            assert_eq!(region.guard, page);
            assert_eq!(stacks.round(size), Ok(usable));
            // SAFETY: just allocated from this source and never used.
            unsafe { stacks.release(region) };
        }
    }

    #[test]
    fn an_impossible_size_is_an_error_naming_it() {
        let mut stacks = MmapStacks::default();
        let page = stacks.page_size;
        for size in [usize::MAX, usize::MAX - 10, isize::MAX as usize, isize::MAX as usize - page] {
            let err = stacks.allocate(size).unwrap_err();
            assert!(err.message.contains(&format!("{size} bytes")), "{err}");
        }
        // Roundable, but far beyond any 64-bit address space: the kernel refuses it.
        #[cfg(target_pointer_width = "64")]
        {
            let err = stacks.allocate(1 << 62).unwrap_err();
            assert!(err.message.contains(&format!("{}-byte", 1usize << 62)), "{err}");
        }
    }

    #[test]
    fn a_region_whose_guard_passes_its_top_has_no_untouched_mark() {
        let stacks = MmapStacks::default();
        let page = stacks.page_size;
        let region = StackRegion {
            top: NonZeroUsize::new(4 * page).unwrap(),
            bottom: NonZeroUsize::new(2 * page).unwrap(),
            guard: 3 * page,
        };
        assert_eq!(stacks.untouched_below(&region), None);
        let region = StackRegion { guard: usize::MAX, ..region };
        assert_eq!(stacks.untouched_below(&region), None);
    }

    #[test]
    fn running_out_of_maps_names_the_limit_and_a_higher_one() {
        let message = refusal_message("mmap", Errno::NOMEM, 8192, Some(65_530));
        assert!(message.contains("vm.max_map_count is 65530"), "{message}");
        assert!(message.contains("vm.max_map_count=262144"), "{message}");
        let message = refusal_message("mmap", Errno::NOMEM, 8192, Some(262_144));
        assert!(message.contains("vm.max_map_count is 262144"), "{message}");
        assert!(message.contains("vm.max_map_count=524288"), "never the limit it has: {message}");
        let message = refusal_message("mmap", Errno::NOMEM, 8192, Some(1_000_000));
        assert!(message.contains("vm.max_map_count=2000000"), "{message}");
    }

    #[test]
    fn other_refusals_do_not_mention_maps() {
        let message = refusal_message("mprotect (guard page)", Errno::ACCESS, 8192, None);
        assert!(message.starts_with("mprotect (guard page) of a 8192-byte greenlet stack failed"));
        assert!(!message.contains("max_map_count"), "{message}");
    }
}
