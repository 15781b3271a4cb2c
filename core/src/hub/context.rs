//! Which execution context the CPU is in, for the hub's refusal to switch greenlets inside an
//! interrupt handler.
//!
//! On Cortex-M a handler runs on the main stack, above the frame the exception pushed; a
//! greenlet switch there would move the stack pointer off that frame and return from the
//! exception into another greenlet's stack, or never, with the interrupted code's state lost.
//! A blocking hub function (a sleep, a wait, a join, a lock) called from a handler therefore
//! panics, saying so, before it switches: [`refuse_handler_mode`], on the switch-away path.
//! Handlers hand work to greenlets with an allocation-free signal or queue (gevent-embedded's
//! `isr` module) or a `HubHandle`.

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
        "gevent: a blocking hub function (one that switches greenlets) was called from an \
         interrupt handler (exception {ipsr}); handlers must not block: hand the work to a \
         greenlet (gevent_embedded::isr::Signal or Channel, or HubHandle::post)"
    )
}
