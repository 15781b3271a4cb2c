//! Stack overflow in a greenlet: a clean, named abort instead of silent corruption.
//!
//! Every greenlet stack has a guard page below it. Touching it raises SIGSEGV (SIGBUS on some
//! BSDs); the handler here, running on the thread's alternate signal stack, checks whether the
//! fault address lies in the running greenlet's guard page. If so it writes
//! `greenlet #N 'name' (spawned at file:line:col) overflowed its stack ... (stack overflow)` to
//! stderr and aborts. Other faults go to the handler that was installed before (Rust's own,
//! which reports overflows of thread stacks), or to the default action.
#![allow(unsafe_code)] // signal handling

use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::{Once, OnceLock};

use gevent_core::__private::with_faulting_greenlet;

/// The handlers in place before ours, for SIGSEGV and SIGBUS.
static PREVIOUS: OnceLock<[libc::sigaction; 2]> = OnceLock::new();
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Alternate signal stack size: the handler formats a short message and needs little.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Installs the handler (once per process) and makes sure this thread has an alternate signal
/// stack, without which a handler for a stack overflow has nowhere to run.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut previous = [zeroed_sigaction(), zeroed_sigaction()];
        for (i, &signal) in SIGNALS.iter().enumerate() {
            let mut action = zeroed_sigaction();
            action.sa_sigaction = handler as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `action.sa_mask` is a valid sigset_t to initialise; `sigaction` receives
            // valid pointers to a fully initialised new action and to storage for the old one.
            unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, &mut previous[i]);
            }
        }
        let _ = PREVIOUS.set(previous);
    });
    ensure_alt_stack();
}

fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: `sigaction` is a plain C struct for which all-zero bytes is a valid value
    // (SIG_DFL, no flags, empty mask).
    unsafe { MaybeUninit::zeroed().assume_init() }
}

fn ensure_alt_stack() {
    let mut current: libc::stack_t = stack_t_disabled();
    // SAFETY: querying only (null new stack), into valid storage.
    unsafe { libc::sigaltstack(ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return; // Rust's runtime gives its threads one already
    }
    // SAFETY: a fresh anonymous mapping aliases nothing; it is leaked on purpose, since the
    // thread may take a signal on it until it exits.
    let mem = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return; // overflows then end in a plain SIGSEGV: worse message, same safety
    }
    let stack = libc::stack_t { ss_sp: mem, ss_flags: 0, ss_size: ALT_STACK_SIZE };
    // SAFETY: `stack` describes memory we own for the rest of the thread's life.
    unsafe { libc::sigaltstack(&stack, ptr::null_mut()) };
}

fn stack_t_disabled() -> libc::stack_t {
    libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 }
}

/// A fixed buffer to format into without allocating (the handler must not allocate).
struct Message {
    bytes: [u8; 512],
    len: usize,
}

impl std::fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn fault_address(info: *const libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers of SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: as above.
    let addr = unsafe { (*info).si_addr };
    addr as usize
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let addr = fault_address(info);
    let report = |greenlet: Option<gevent_core::__private::FaultingGreenlet<'_>>| {
        let Some(g) = greenlet else { return false };
        let mut m = Message { bytes: [0; 512], len: 0 };
        let _ = write!(m, "\ngevent: greenlet #{} '", g.id);
        let _ = match g.name {
            Some(name) => m.write_str(name),
            None => write!(m, "Greenlet-{}", g.id),
        };
        let _ = writeln!(
            m,
            "' (spawned at {}) overflowed its {}-byte stack (stack overflow); aborting. \
             Give it a bigger stack with Builder::stack_size (every greenlet: GEVENT_STACK_SIZE).",
            g.spawned_at,
            g.stack.usable_size()
        );
        // SAFETY: writing an initialised buffer to stderr; write(2) is async-signal-safe.
        unsafe { libc::write(2, m.bytes.as_ptr().cast(), m.len) };
        true
    };
    // SAFETY: a SIGSEGV/SIGBUS that the thread's own access raised stops it at that access.
    // When it is a greenlet's overflow this handler aborts (below) and never resumes it.
    // Otherwise it chains to the previous handler or the default action, which normally ends
    // the process; what it read (the current greenlet, its stack bounds and name) changes only
    // in hub code between switches, which does not fault on a guard page. A SIGSEGV sent by
    // kill(2) carries no fault address in a guard, so only the current greenlet's stack
    // bounds are read then (one plain `Copy` load).
    let ours = unsafe { with_faulting_greenlet(addr, report) };
    if ours {
        // SAFETY: abort(3) is async-signal-safe and does not return.
        unsafe { libc::abort() };
    }
    chain(signal, info, context);
}

/// Hands a fault that is not a greenlet overflow to the previous handler, or to the default
/// action (by restoring it and returning, so the faulting instruction faults again).
fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let index = if signal == libc::SIGSEGV { 0 } else { 1 };
    let previous = PREVIOUS.get().map(|p| p[index]);
    match previous {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: the previous handler was installed with SA_SIGINFO, so it has the
                // three-argument signature, and we pass it what the kernel passed us.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(p.sa_sigaction) };
                f(signal, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the handler takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(p.sa_sigaction) };
                f(signal);
            }
        }
        _ => {
            let default = zeroed_sigaction();
            // SAFETY: restoring the default action for this signal; returning re-executes the
            // faulting instruction, which now ends the process as it would have without us.
            unsafe { libc::sigaction(signal, &default, ptr::null_mut()) };
        }
    }
}
