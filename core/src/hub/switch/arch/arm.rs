//! The switch on M-profile ARM (Cortex-M, Thumb, AAPCS).
//!
//! A suspended context's stack, from its saved stack pointer up:
//!
//! ```text
//! Thumb-2 (v7-M, v7E-M, v8-M Mainline):   [FPSCR, s16-s31 (hard float)] r4-r11, pc
//! Thumb-1 (v6-M, v8-M Baseline):          r8-r11, r4-r7, pc
//! ```
//!
//! Thumb-1 pushes and pops only low registers, so r8-r11 pass through r4-r7. With the hard-
//! float ABI, s16-s31 (d8-d15) are callee-saved too, and FPSCR's rounding mode, flush-to-zero
//! and default-NaN bits are preserved across calls (AAPCS leaves them to functions that change
//! the program's mode): a greenlet that changes its rounding mode must not change the
//! others', as on x86-64 with MXCSR.

use core::arch::naked_asm;

/// Bytes [`init_stack`] reserves above the first frame for the entry's argument.
const ARG_SPACE: usize = 8;

/// Words of a suspended context's saved registers, the return address included.
#[cfg(not(target_abi = "eabihf"))]
const FRAME_WORDS: usize = 9;
#[cfg(target_abi = "eabihf")]
const FRAME_WORDS: usize = 9 + 16 + 1;

/// Saves the callee-saved registers and the stack pointer of the running context into
/// `*save`, then continues the context whose saved stack pointer is `to`.
///
/// # Safety
///
/// `to` must be a stack pointer saved by this function (or made by [`init_stack`]) whose
/// context has not been continued since, on a stack that is still alive, and `save` must be
/// valid for a write.
#[cfg(not(gevent_thumb1))]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn switch(save: *mut usize, to: usize) {
    #[cfg(not(target_abi = "eabihf"))]
    naked_asm!("push {{r4-r11, lr}}", "str sp, [r0]", "mov sp, r1", "pop {{r4-r11, pc}}",);
    // The assembler of naked functions does not get the target's FPU: named here, the
    // smallest that hard-float M-profile cores have (single-precision, 16 doubles' worth).
    #[cfg(target_abi = "eabihf")]
    naked_asm!(
        ".fpu fpv4-sp-d16",
        "push {{r4-r11, lr}}",
        "vpush {{s16-s31}}",
        "vmrs r2, fpscr",
        "push {{r2}}",
        "str sp, [r0]",
        "mov sp, r1",
        "pop {{r2}}",
        "vmsr fpscr, r2",
        "vpop {{s16-s31}}",
        "pop {{r4-r11, pc}}",
    );
}

/// See the Thumb-2 `switch`.
///
/// # Safety
///
/// As for the Thumb-2 `switch`.
#[cfg(gevent_thumb1)]
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn switch(save: *mut usize, to: usize) {
    naked_asm!(
        "push {{r4-r7, lr}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "push {{r4-r7}}",
        "mov r2, sp",
        "str r2, [r0]",
        "mov sp, r1",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
    );
}

/// The first code a new context runs: calls `entry(arg)` (`r5` and `r4`, from
/// [`init_stack`]'s frame), which never returns. Its frame is the bottom of the stack for
/// debuggers: the return address is undefined, so backtraces stop here.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_sections .debug_frame",
        ".cfi_startproc",
        ".cfi_undefined lr",
        "mov r0, r4",
        "blx r5",
        "udf #0",
        ".cfi_endproc",
    )
}

/// Writes the first frame of a context on the stack whose top is `top`, so that switching to
/// the stack pointer it returns calls `entry(arg)`.
///
/// # Safety
///
/// `top` must be 8-byte aligned, the top of at least `4 * FRAME_WORDS + ARG_SPACE` writable
/// bytes that nothing else uses until the context ends.
pub(crate) unsafe fn init_stack(
    top: usize,
    entry: unsafe extern "C" fn(usize) -> !,
    arg: usize,
) -> usize {
    let sp = top - ARG_SPACE - 4 * FRAME_WORDS;
    // The core registers come after the floating-point state (if any); r4 is the first of
    // them on Thumb-2, the fifth on Thumb-1 (after r8-r11).
    let core_regs = FRAME_WORDS - 9;
    let r4 = if cfg!(gevent_thumb1) { core_regs + 4 } else { core_regs };
    let frame = sp as *mut usize;
    // Only the words the trampoline needs are written, r7 (Thumb's frame pointer, 0 to end a
    // frame-pointer chain) and FPSCR: the other registers the first switch pops are callee-saved
    // ones that nothing reads before setting them, so whatever the stack held does no harm.
    // Zeroing them all was a `memclr` call, ~40 instructions of a ~840-instruction spawn on a
    // Cortex-M3.
    // SAFETY: the caller's promise: `[sp, top)` is writable and unused; `sp` is 4-aligned, and
    // the words written are inside the `FRAME_WORDS` words above it.
    unsafe {
        // With hard float, the first word is a new context's FPSCR, which the switch loads:
        // 0, its reset value (round to nearest, no flush-to-zero, no default NaN).
        #[cfg(target_abi = "eabihf")]
        frame.write(0);
        frame.add(r4).write(arg);
        frame.add(r4 + 1).write(entry as *const () as usize);
        frame.add(r4 + 3).write(0);
        // A Thumb function's address has bit 0 set, which `pop {pc}` requires on M-profile.
        frame.add(FRAME_WORDS - 1).write(trampoline as *const () as usize);
    }
    sp
}

/// Where the argument space of [`init_stack`] starts for a stack whose top is `top`.
pub(crate) const fn arg_slot(top: usize) -> usize {
    top - ARG_SPACE
}
