//! Which execution context the CPU is in, for the hub's refusal to be used inside an interrupt
//! handler.
//!
//! Without `std` the hub is one `static` that every execution context can reach, while its
//! state is plain `Cell`s for the thread that installed it: a handler that interrupts a hub
//! call halfway (a push onto the run queue, a timer insertion) and calls into the hub itself
//! (even a spawn, which does not block) races with it, and a run queue updated twice at once
//! can hold a greenlet's count twice or lose it (a use after free). A handler that blocks
//! would, besides, move the stack pointer off the frame the exception pushed (on Cortex-M a
//! handler runs on the main stack) and return from the exception into another greenlet's
//! stack, or never. So every way to the hub (`hub`, `try_hub`, `install`) panics
//! in handler mode, saying so: [`refuse_handler_mode`]. Handlers hand work to greenlets with an
//! allocation-free signal or queue (gevent-embedded's `isr` module) or a `HubHandle`; fault
//! handlers read the hub pointer unchecked (`current_hub_ptr`), the interrupted code stopped.

/// Panics if the CPU runs an exception handler (IPSR ≠ 0). Three instructions on the path that
/// passes (`mrs` IPSR, `cmp`, `bne`, in the Cortex-M3 firmware's build); the panic is out of
/// line.
#[cfg(gevent_cortex_m)]
#[inline(always)]
pub(crate) fn refuse_handler_mode() {
    let ipsr: u32;
    // SAFETY: `mrs` of IPSR only copies the exception number into a register: it reads no
    // memory and changes no state, whatever context it runs in.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!("mrs {}, IPSR", out(reg) ipsr, options(nomem, nostack, preserves_flags));
    }
    if ipsr != 0 {
        in_handler_mode(ipsr);
    }
}

/// Other targets: hosted threads have no interrupt handlers (a signal handler is installed
/// with `unsafe` code, whose author answers for what it calls); bare-metal RISC-V has trap
/// handlers but no register that tells one cheaply, so there a handler that calls the hub is
/// not caught.
#[cfg(not(gevent_cortex_m))]
#[inline(always)]
pub(crate) fn refuse_handler_mode() {}

#[cfg(gevent_cortex_m)]
#[cold]
#[inline(never)]
fn in_handler_mode(ipsr: u32) -> ! {
    panic!(
        "gevent: a hub function was called from an interrupt handler (exception {ipsr}); the \
         hub belongs to the code it interrupts, and a blocking call would switch stacks inside \
         the exception: hand the work to a greenlet (gevent_embedded::isr::Signal or Channel, \
         or HubHandle::post)"
    )
}
