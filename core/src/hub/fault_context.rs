//! What a fault handler needs to know: which greenlet's stack guard a fault address hit.
#![allow(unsafe_code)] // reads the hub from a signal handler

use core::panic::Location;

use crate::stack::StackRegion;

/// The greenlet whose stack guard was hit.
#[derive(Debug)]
pub struct FaultingGreenlet<'a> {
    /// Its id.
    pub id: u64,
    /// Its name, if it was given one.
    pub name: Option<&'a str>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// Its stack.
    pub stack: StackRegion,
}

/// Calls `f` with the running greenlet if `addr` lies in its stack's guard area.
///
/// Meant for a fault handler (a SIGSEGV handler, a MemManage exception): it allocates nothing
/// and takes no locks. It reads the hub without borrow checks.
///
/// # Safety
///
/// Call it only from the handler of a fault that the hub's own thread of execution raised,
/// which never resumes the code it stopped (the handler ends the process or resets the chip):
/// then nothing can be halfway through changing what it reads. From any other context (an
/// interrupt handler, a signal that the program resumes from) the code it interrupted may be
/// changing the greenlet's name or the hub's current greenlet while it reads them.
pub unsafe fn with_faulting_greenlet<R>(
    addr: usize,
    f: impl FnOnce(Option<FaultingGreenlet<'_>>) -> R,
) -> R {
    let hub = super::current_hub_ptr();
    if hub.is_null() {
        return f(None);
    }
    // SAFETY: a non-null pointer is this thread's live hub; the caller promises (function
    // docs) that the code it stopped never resumes, so nothing changes what this reads.
    let hub = unsafe { &*hub };
    let task = hub.current_task();
    match task.context.stack_region() {
        Some(stack) if stack.guard_contains(addr) => task.with_given_name(|name| {
            f(Some(FaultingGreenlet { id: task.id, name, spawned_at: task.spawned_at, stack }))
        }),
        _ => f(None),
    }
}
