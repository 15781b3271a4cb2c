//! `StaticStacks`: greenlet stacks carved out of one buffer the firmware gives.

use alloc::vec::Vec;
use core::num::NonZeroUsize;

use gevent_core::stack::{
    MIN_STACK_SIZE, StackError, StackRegion, StackSource, round_stack_size_with_min,
};

/// A buffer for [`StaticStacks`], aligned as stacks and their guards need (32 bytes), so that
/// no stack is lost to rounding wherever the linker places it:
///
/// ```no_run
/// use gevent_embedded::{StackMemory, StaticStacks};
///
/// static mut STACKS: StackMemory<{ 4 * 4096 }> = StackMemory::new();
/// // SAFETY: the only reference ever made to the buffer, given to the pool for good.
/// let memory = unsafe { &mut *core::ptr::addr_of_mut!(STACKS) };
/// let stacks = StaticStacks::new(memory.as_mut_slice(), 4096);
/// assert_eq!(stacks.available(), 4);
/// ```
#[repr(C, align(32))]
pub struct StackMemory<const N: usize>([u8; N]);

impl<const N: usize> StackMemory<N> {
    /// `N` zeroed bytes (in `.bss`: they cost no flash).
    pub const fn new() -> Self {
        StackMemory([0; N])
    }

    /// The bytes, to hand to [`StaticStacks::new`] (or `guarded`).
    pub fn as_mut_slice(&'static mut self) -> &'static mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for StackMemory<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for StackMemory<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "StackMemory<{N}>")
    }
}

/// `count` stacks of `size` bytes each, taken from a `'static` buffer.
///
/// When every stack is in use, a greenlet that tries to start fails with a [`StackError`]
/// saying so (its [`Greenlet::get`](gevent_core::Greenlet::get) reports it); a finished or
/// killed greenlet gives its stack back.
///
/// Stacks made by [`new`](Self::new) have **no guard**: a greenlet that overflows its stack
/// writes into the stack below it. Size them with room to spare, or, on a chip with an MPU, use
/// `guarded` stacks (feature `stack-guard`).
///
/// Every stack is painted with [`PAINT`](Self::PAINT) when the buffer is split and when a stack
/// comes back to it, so [`Greenlet::stack_high_water`](gevent_core::Greenlet::stack_high_water)
/// can tell how deep a greenlet's stack has been used: the deepest word that no longer holds
/// the paint. The hub keeps freed stacks for reuse without giving them back, so a stack's mark
/// covers every greenlet that ran on it since it was painted.
///
/// # How small a stack can be
///
/// corosensei's `Stack` contract asks for a guard and at least 4 KiB (`MIN_STACK_SIZE`). Read
/// against its code (0.3.4), the 4 KiB is a page, for its own `DefaultStack` (`stack/unix.rs`
/// rounds to it, `stack/windows.rs` commits it); the coroutine code does not use it. What it
/// writes itself on 32-bit ARM (`arch/arm.rs`): `init_stack` puts 32 bytes below the base when
/// a greenlet starts (initial function, parent link, the entry closure, which holds one `Rc`,
/// the trampoline's address, padding), written by the hub; each suspend pushes 12 bytes (r6,
/// the frame pointer, the return address) below the greenlet's stack pointer, and the resume
/// stores the parent link 8 bytes below the base. Nothing else in it, or in gevent-core, needs
/// 4 KiB: the core's rounding took `MIN_STACK_SIZE` as its floor and the high-water reading
/// skipped 1 KiB below a suspended greenlet's stack pointer, which is now 256 bytes on ARM:
/// between the mark `Context::suspend` records and corosensei's pushes there are 20 bytes on a
/// Cortex-M3 (the 8-byte bottom of `Hub::park`'s frame and the 12 pushed bytes, read from the
/// firmware's disassembly), plus the 64 bytes of d8–d15 and a small frame on a Cortex-M4F.
///
/// What a greenlet needs beyond that is its own code's: measured on a Cortex-M3 with
/// [`Greenlet::stack_high_water`](gevent_core::Greenlet::stack_high_water), about 340 bytes for
/// one that parks at once and about 1.1 KB for either end of a TCP echo over smoltcp. A guard is
/// what makes a small stack sound: an overflow then faults instead of writing over the stack
/// below. So:
///
/// - [`StaticStacks::new`] (no guard) keeps the 4 KiB floor, as the contract asks;
/// - `StaticStacks::guarded` (ARMv7-M, feature `stack-guard`, with the MPU guard of
///   `gevent_embedded::mpu` on) accepts stacks down to
///   [`MIN_GUARDED_STACK_SIZE`](gevent_core::stack::MIN_GUARDED_STACK_SIZE) (256 bytes:
///   corosensei's 32 bytes of setup with room to spare, and the reading margin), so 1 KiB stacks
///   plus a 32-byte guard and the greenlet's header keep a parked greenlet at 1,301 bytes
///   (measured by `examples/firmware-stack-guard`).
///
/// The guard has a limit that no size removes: it is 32 bytes (the MPU's smallest region), and
/// Rust on Cortex-M emits no stack probes, so a function whose frame is larger than the guard
/// and whose first store lands below it (a large local array written from its low end) can skip
/// it and write the stack below. Keep large buffers off greenlet stacks (in statics or the
/// heap), or give stacks room to spare.
pub struct StaticStacks {
    free: Vec<StackRegion>,
    size: usize,
    /// The floor for requests: [`MIN_STACK_SIZE`], or
    /// [`MIN_GUARDED_STACK_SIZE`](gevent_core::stack::MIN_GUARDED_STACK_SIZE) when guarded.
    min: usize,
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
    /// Splits `memory` into as many stacks of `size` bytes (rounded down to 16) as fit, with no
    /// guard; `size` must be at least [`MIN_STACK_SIZE`] (4 KiB), or there are no stacks. The
    /// first stack starts at the first 16-byte boundary of `memory`: give a [`StackMemory`]
    /// to lose nothing to that.
    ///
    /// A greenlet that asks for more than `size` bytes of stack fails to start with
    /// [`FailureKind::NoStack`](gevent_core::FailureKind::NoStack); one that asks for less gets
    /// a whole stack.
    pub fn new(memory: &'static mut [u8], size: usize) -> Self {
        Self::carve(memory, size, 0, MIN_STACK_SIZE)
    }

    /// Splits `memory` into stacks of `size` usable bytes (rounded down to 16), each above a
    /// guard of [`StackGuard::BYTES`](crate::mpu::StackGuard::BYTES) that the MPU makes
    /// inaccessible while the stack's greenlet runs: an overflow faults, reported as the
    /// greenlet's, instead of writing the stack below. `size` may be as small as
    /// `MIN_GUARDED_STACK_SIZE` (see [how small a stack can be](Self) for why that is sound, and for
    /// the guard's limit).
    #[cfg(all(feature = "stack-guard", target_arch = "arm", target_os = "none"))]
    pub fn guarded(memory: &'static mut [u8], size: usize, guard: &crate::mpu::StackGuard) -> Self {
        let _ = guard; // proof that the MPU guard follows the running greenlet
        let min = gevent_core::stack::MIN_GUARDED_STACK_SIZE;
        Self::carve(memory, size, crate::mpu::StackGuard::BYTES, min)
    }

    /// Paints `memory` and splits it into stacks of `size` usable bytes (rounded down to 16),
    /// each above `guard` bytes (a power of two, or 0) aligned to the guard's size, if `size`
    /// is at least `min`.
    fn carve(memory: &'static mut [u8], size: usize, guard: usize, min: usize) -> Self {
        let size = size & !15;
        // Painted through the slice, which this value owns from now on: what each stack's
        // high-water mark is read against.
        memory.fill(PAINT_BYTE);
        let start = memory.as_mut_ptr() as usize;
        let end = start + memory.len();
        let align = guard.max(16);
        let mut free = Vec::new();
        if size >= min {
            let mut bottom = start.checked_next_multiple_of(align).unwrap_or(end);
            // Checked: a `size` near `usize::MAX` must not wrap around into a bogus region.
            while let Some(top) = bottom
                .checked_add(guard)
                .and_then(|usable| usable.checked_add(size))
                .filter(|&top| top <= end)
            {
                free.push(StackRegion {
                    top: NonZeroUsize::new(top).expect("not null"),
                    bottom: NonZeroUsize::new(bottom).expect("not null"),
                    guard,
                });
                bottom = top.checked_next_multiple_of(align).unwrap_or(end);
            }
        }
        free.reverse(); // hand out the lowest first
        StaticStacks { free, size, min }
    }

    /// The word that stack memory no greenlet has written holds: `0xa5` in every byte.
    pub const PAINT: usize = usize::from_ne_bytes([PAINT_BYTE; size_of::<usize>()]);

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
// value owns (it took the `&'static mut`), lent to one greenlet at a time; a request for more
// than they hold is refused. Unguarded ones (`new`) hold at least `MIN_STACK_SIZE` usable bytes
// and the type's docs say they have no guard, as the trait asks; guarded ones (`guarded`, which
// takes the proof that the MPU guard is on) hold at least `MIN_GUARDED_STACK_SIZE`.
#[allow(unsafe_code)]
unsafe impl StackSource for StaticStacks {
    /// Every request a static stack can serve is served with a whole one, so the hub keeps
    /// freed stacks on one shelf whatever sizes its greenlets ask for.
    fn round(&self, size: usize) -> Result<usize, StackError> {
        round_stack_size_with_min(size, self.min, 16, self.size).map(|_| self.size)
    }

    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        self.round(size)?;
        let region = self.free.pop();
        if region.is_none() {
            warn!("gevent: every static greenlet stack is in use");
        }
        region.ok_or(StackError {
            message: "every static greenlet stack is in use (give StaticStacks more memory)".into(),
        })
    }

    /// The whole usable part: the stack was painted when it was split off or given back.
    fn untouched_below(&self, region: &StackRegion) -> Option<usize> {
        region.bottom.get().checked_add(region.guard)
    }

    fn paint(&self) -> usize {
        Self::PAINT
    }

    unsafe fn release(&mut self, region: StackRegion) {
        let usable = region.bottom.get() + region.guard;
        let words = (region.top.get() - usable) / size_of::<usize>();
        let paint = core::ptr::with_exposed_provenance_mut::<usize>(usable);
        // SAFETY: `region` came from this source's `allocate` (the caller's promise), so it is
        // a piece of the `'static` buffer this value owns, 16-byte aligned, and no longer in
        // use: no greenlet runs on it and no reference points into it. The buffer's provenance
        // was exposed by `new` (`as_mut_ptr() as usize`).
        unsafe { core::ptr::write_bytes(paint, PAINT_BYTE, words) };
        self.free.push(region);
    }
}

/// The byte every stack word is painted with: a value code rarely stores (zeros and small
/// integers are common, addresses in RAM start with `0x2000_0000` on Cortex-M).
const PAINT_BYTE: u8 = 0xa5;

#[cfg(test)]
mod tests {
    use super::*;
    use gevent_core::stack::MIN_GUARDED_STACK_SIZE;

    fn memory(len: usize) -> &'static mut [u8] {
        alloc::boxed::Box::leak(alloc::vec![0u8; len].into_boxed_slice())
    }

    #[test]
    fn any_size_a_stack_holds_is_served_with_a_whole_stack() {
        let mut stacks = StaticStacks::new(memory(4 * 8192 + 15), 8192);
        for size in [0, 1, 5000, 8191, 8192] {
            assert_eq!(stacks.round(size), Ok(8192), "{size}");
        }
        let region = stacks.allocate(5000).unwrap();
        assert_eq!(region.usable_size(), 8192);
        assert_eq!((region.top.get() % 16, region.bottom.get() % 16), (0, 0));
    }

    #[test]
    fn a_size_beyond_the_stacks_is_refused_naming_it() {
        let mut stacks = StaticStacks::new(memory(4 * 8192), 8192);
        for size in [8193, 1 << 20, usize::MAX] {
            let err = stacks.allocate(size).unwrap_err();
            assert!(err.message.contains(&alloc::format!("{size} bytes")), "{err}");
            assert!(err.message.contains("at most 8192 bytes"), "{err}");
        }
        assert_eq!(stacks.available(), 4, "a refusal takes no stack");
    }

    #[test]
    fn a_size_that_cannot_fit_gives_no_stacks_instead_of_wrapping() {
        for size in [usize::MAX, usize::MAX - 4096, isize::MAX as usize] {
            let stacks = StaticStacks::new(memory(4 * 8192), size);
            assert_eq!(stacks.available(), 0, "{size}");
        }
        let stacks = StaticStacks::new(memory(4 * 8192), MIN_STACK_SIZE - 16);
        assert_eq!(stacks.available(), 0, "smaller than a stack can be");
    }

    #[test]
    #[allow(unsafe_code)] // reads and writes the stack memory to check the paint
    fn stacks_are_painted_when_split_and_when_given_back() {
        let memory = memory(2 * 8192);
        let base = memory.as_ptr() as usize;
        let mut stacks = StaticStacks::new(memory, 8192);
        let region = stacks.allocate(8192).unwrap();
        assert_eq!(stacks.untouched_below(&region), Some(region.bottom.get()));
        assert_eq!(stacks.paint(), StaticStacks::PAINT);
        let word = |addr: usize| {
            // SAFETY: `addr` is a word of the leaked buffer, which nothing else uses.
            unsafe { core::ptr::with_exposed_provenance::<usize>(addr).read() }
        };
        assert!((0..2 * 8192).step_by(8).all(|at| word(base + at) == StaticStacks::PAINT));
        let used = region.top.get() - 64;
        // SAFETY: as above; the stack is lent to this test.
        unsafe { core::ptr::with_exposed_provenance_mut::<usize>(used).write(7) };
        assert_eq!(word(used), 7);
        // SAFETY: `region` came from `allocate` and is no longer used.
        unsafe { stacks.release(region) };
        assert_eq!(word(used), StaticStacks::PAINT, "a stack given back is painted again");
    }

    #[test]
    fn guarded_stacks_may_be_small_and_sit_above_aligned_guards() {
        let mut stacks =
            StaticStacks::carve(memory(4 * 1056 + 31), 1024, 32, MIN_GUARDED_STACK_SIZE);
        assert_eq!(stacks.available(), 4);
        assert_eq!(stacks.round(1), Ok(1024));
        let region = stacks.allocate(100).unwrap();
        assert_eq!((region.guard, region.usable_size(), region.bottom.get() % 32), (32, 1024, 0));
        assert_eq!(stacks.untouched_below(&region), Some(region.bottom.get() + 32));
        let small = StaticStacks::carve(
            memory(4096),
            MIN_GUARDED_STACK_SIZE - 16,
            32,
            MIN_GUARDED_STACK_SIZE,
        );
        assert_eq!(small.available(), 0, "below the guarded floor");
        assert_eq!(StaticStacks::new(memory(4 * 1024), 1024).available(), 0, "unguarded: 4 KiB");
    }
}
