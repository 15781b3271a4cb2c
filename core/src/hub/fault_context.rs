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
/// Meant for a SIGSEGV handler: it allocates nothing and takes no locks. It reads the hub
/// without borrow checks, which is sound only because the faulting greenlet is stopped inside
/// the handler and nothing else on this thread runs meanwhile.
pub fn with_faulting_greenlet<R>(
    addr: usize,
    f: impl FnOnce(Option<FaultingGreenlet<'_>>) -> R,
) -> R {
    let hub = super::current_hub_ptr();
    if hub.is_null() {
        return f(None);
    }
    // SAFETY: a non-null pointer is this thread's live hub; see the function docs for why an
    // unchecked read is acceptable while the thread is stopped in a signal handler.
    let hub = unsafe { &*hub };
    let task = hub.current_task();
    match task.context.stack_region() {
        Some(stack) if stack.guard_contains(addr) => task.with_given_name(|name| {
            f(Some(FaultingGreenlet { id: task.id, name, spawned_at: task.spawned_at, stack }))
        }),
        _ => f(None),
    }
}
