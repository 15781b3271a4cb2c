//! `MmapStacks`: greenlet stacks from anonymous memory maps, each with a guard page below it.
//!
//! A stack costs address space, not memory: pages are faulted in as the greenlet touches them.
//! Linux counts a guard-paged stack as two maps against `vm.max_map_count` (65,530 by default),
//! so about 32,000 greenlets can hold a stack at once unless the limit is raised; the error says
//! so when the kernel refuses.
#![allow(unsafe_code)] // mmap, mprotect, munmap

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::ptr;

use gevent_core::stack::{StackError, StackRegion, StackSource};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap_anonymous, mprotect, munmap};

/// Guard-paged stacks from `mmap`.
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

    fn refusal(what: &str, errno: rustix::io::Errno, size: usize) -> StackError {
        let mut message = format!("{what} of a {size}-byte greenlet stack failed: {errno}");
        if errno == rustix::io::Errno::NOMEM && cfg!(target_os = "linux") {
            let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into());
            message.push_str(&format!(
                " (out of memory, or out of memory maps: each greenlet holding a stack takes 2 \
                 maps and vm.max_map_count is {limit}; raise it with \
                 `sysctl -w vm.max_map_count=262144`, or use smaller or fewer live greenlets)"
            ));
        }
        StackError { message: Cow::Owned(message) }
    }
}

// SAFETY: each region is a fresh private mapping of `guard + usable` bytes, page-aligned (hence
// 16-byte aligned), whose lowest page is made inaccessible as the guard; it is owned by the
// caller until `release` unmaps it.
unsafe impl StackSource for MmapStacks {
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        let page = self.page_size;
        let usable = size.max(gevent_core::stack::MIN_STACK_SIZE).div_ceil(page) * page;
        let total = usable + page;
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

    unsafe fn release(&mut self, region: StackRegion) {
        let len = region.top.get() - region.bottom.get();
        // SAFETY: the caller guarantees the region came from `allocate` (one whole mapping) and
        // is no longer in use.
        let _ = unsafe { munmap(region.bottom.get() as *mut _, len) };
    }
}
