//! The switch on x86-64 (System V ABI).
//!
//! A suspended context's stack, from its saved stack pointer up:
//!
//! ```text
//! sp + 0   MXCSR (4 bytes), x87 control word (2 bytes), padding
//! sp + 8   r15, r14, r13, r12, rbx, rbp
//! sp + 56  the address it continues at
//! ```
//!
//! MXCSR's control bits and the x87 control word are callee-saved in the System V ABI: a
//! greenlet that changes its rounding mode must not change the others'. They are saved at every
//! switch and loaded only when the next context's control bits differ.

use core::arch::naked_asm;

/// Bytes [`init_stack`] reserves above the first frame for the entry's argument.
const ARG_SPACE: usize = 16;

/// Saves the callee-saved registers and the stack pointer of the running context into
/// `*save`, then continues the context whose saved stack pointer is `to`.
///
/// # Safety
///
/// `to` must be a stack pointer saved by this function (or made by [`init_stack`]) whose
/// context has not been continued since, on a stack that is still alive, and `save` must be
/// valid for a write.
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn switch(save: *mut usize, to: usize) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        "mov [rdi], rsp",
        // Loaded only where the two contexts differ: both loads are slow (they order the
        // floating-point units), and greenlets seldom change their rounding modes. Only
        // MXCSR's control bits (6 to 15) count: its low six bits are exception flags, which
        // the ABI does not keep across a call, and the first inexact result of a greenlet
        // would otherwise make every later switch to or from it load the register.
        "mov eax, [rsp]",
        "movzx ecx, word ptr [rsp + 4]",
        "mov rsp, rsi",
        "xor eax, [rsp]",
        "test eax, 0xffc0",
        "jnz 3f",
        "2:",
        "cmp cx, [rsp + 4]",
        "jne 4f",
        "5:",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        // Not `ret`: the return-stack buffer predicts the caller of this call, and a switch
        // continues another context's call, so every `ret` here mispredicted (20.9 ns per
        // switch on the development machine); an indirect jump's predictor learns where the
        // switches of a workload go (7.5 ns). rax is a scratch register of the call.
        "pop rax",
        "jmp rax",
        "3:",
        "ldmxcsr [rsp]",
        "jmp 2b",
        "4:",
        "fldcw [rsp + 4]",
        "jmp 5b",
    )
}

/// The first code a new context runs: calls `entry(arg)` (`r12` and `rbx`, from
/// [`init_stack`]'s frame), which never returns. Its frame is the bottom of the stack for
/// unwinders: the return address is undefined, so backtraces stop here.
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_undefined rip",
        "mov rdi, rbx",
        "call r12",
        "ud2",
        ".cfi_endproc",
    )
}

/// Writes the first frame of a context on the stack whose top is `top`, so that switching to
/// the stack pointer it returns calls `entry(arg)`; the `ARG_SPACE` bytes above the frame
/// (found by [`arg_slot`]) are left for the caller's argument.
///
/// # Safety
///
/// `top` must be 16-byte aligned, the top of at least 80 writable bytes that nothing else uses
/// until the context ends.
pub(crate) unsafe fn init_stack(
    top: usize,
    entry: unsafe extern "C" fn(usize) -> !,
    arg: usize,
) -> usize {
    const DEFAULT_MXCSR: u32 = 0x1f80;
    const DEFAULT_X87_CW: u32 = 0x037f;
    let sp = top - ARG_SPACE - 64;
    let frame: [usize; 8] = [
        DEFAULT_MXCSR as usize | (DEFAULT_X87_CW as usize) << 32,
        0,                           // r15
        0,                           // r14
        0,                           // r13
        entry as *const () as usize, // r12
        arg,                         // rbx
        0,                           // rbp: the end of the frame-pointer chain
        trampoline as *const () as usize,
    ];
    // SAFETY: the caller's promise: `[sp, top)` is writable and unused; `sp` is 16-aligned.
    unsafe { core::ptr::write(sp as *mut [usize; 8], frame) };
    sp
}

/// Where the argument space of [`init_stack`] starts for a stack whose top is `top`.
pub(crate) const fn arg_slot(top: usize) -> usize {
    top - ARG_SPACE
}
