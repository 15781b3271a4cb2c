//! The machine-level switch between two contexts, one module per architecture, each with the
//! same three items:
//!
//! - `unsafe extern "C" fn switch(save: *mut usize, to: usize)`: saves the running context's
//!   callee-saved registers on its stack and its stack pointer in `*save`, then loads the
//!   context saved at `to` and continues it. It returns when another `switch` continues the
//!   context it saved.
//! - `unsafe fn init_stack(top, entry, arg) -> usize`: writes the first frame on a fresh
//!   stack, giving the stack pointer whose first continuation calls `entry(arg)` from a
//!   trampoline that unwinders see as the stack's bottom. `entry` never returns: it ends by
//!   switching away for good.
//! - `const fn arg_slot(top) -> usize`: where the bytes above that frame start, which the
//!   caller may use for `entry`'s argument (at least two words).
//!
//! Only what the ABI makes callee-saved crosses a switch: a switch is a function call, so the
//! compiler already keeps everything else where the caller needs it.
#![allow(unsafe_code)] // assembly; see each function's safety contract

#[cfg(target_arch = "arm")]
mod arm;
#[cfg(target_arch = "arm")]
pub(crate) use arm::{arg_slot, init_stack, switch};

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{arg_slot, init_stack, switch};
