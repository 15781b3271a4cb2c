//! `StaticStacks`: greenlet stacks carved out of one buffer the firmware gives.

use alloc::vec::Vec;
use core::num::NonZeroUsize;

use gevent_core::stack::{StackError, StackRegion, StackSource};

/// `count` stacks of `size` bytes each, taken from a `'static` buffer.
///
/// When every stack is in use, a greenlet that tries to start fails with a [`StackError`]
/// saying so (its [`Greenlet::get`](gevent_core::Greenlet::get) reports it); a finished or
/// killed greenlet gives its stack back.
///
/// These stacks have **no guard page**: a greenlet that overflows its stack writes into the
/// stack below it. Size them with room to spare (and use the MPU to guard them where the chip
/// has one).
pub struct StaticStacks {
    free: Vec<StackRegion>,
    size: usize,
}

impl core::fmt::Debug for StaticStacks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StaticStacks")
            .field("free", &self.free.len())
            .field("size", &self.size)
            .finish()
    }
}

impl StaticStacks {
    /// Splits `memory` into as many stacks of `size` bytes (rounded down to 16) as fit.
    pub fn new(memory: &'static mut [u8], size: usize) -> Self {
        let size = size & !15;
        let start = (memory.as_mut_ptr() as usize + 15) & !15;
        let end = memory.as_mut_ptr() as usize + memory.len();
        let mut free = Vec::new();
        let mut bottom = start;
        while size >= gevent_core::stack::MIN_STACK_SIZE && bottom + size <= end {
            free.push(StackRegion {
                top: NonZeroUsize::new(bottom + size).expect("not null"),
                bottom: NonZeroUsize::new(bottom).expect("not null"),
                guard: 0,
            });
            bottom += size;
        }
        free.reverse(); // hand out the lowest first
        StaticStacks { free, size }
    }

    /// The size of each stack.
    pub fn stack_size(&self) -> usize {
        self.size
    }

    /// Stacks not in use.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

// SAFETY: the regions are disjoint 16-byte-aligned pieces of a `'static` buffer that this
// value owns (it took the `&'static mut`), each at least `MIN_STACK_SIZE` bytes, lent to one
// greenlet at a time. They have no guard page, which the type's docs say, as the trait asks.
#[allow(unsafe_code)]
unsafe impl StackSource for StaticStacks {
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        if size > self.size {
            return Err(StackError {
                message: alloc::format!(
                    "a {size}-byte stack was asked for, but the static stacks are {} bytes",
                    self.size
                )
                .into(),
            });
        }
        let region = self.free.pop();
        if region.is_none() {
            warn!("gevent: every static greenlet stack is in use");
        }
        region.ok_or(StackError {
            message: "every static greenlet stack is in use (give StaticStacks more memory)".into(),
        })
    }

    unsafe fn release(&mut self, region: StackRegion) {
        self.free.push(region);
    }
}
