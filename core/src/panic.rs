//! Panics at a greenlet's boundary: caught and reported once with the greenlet's name (`std`),
//! or left to the platform's panic handler (`no_std`, where panics abort).
#![allow(unsafe_code)] // reads the hub pointer in the panic hook

use alloc::string::String;

/// Runs a greenlet's body (or a platform crate's callback, such as an HTTP handler), turning a
/// panic into its message.
#[cfg(feature = "std")]
pub fn catch<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(core::panic::AssertUnwindSafe(body)).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&'static str>() {
            String::from(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            String::from("(a panic payload that is not a string)")
        }
    })
}

/// Runs a greenlet's body; without `std` a panic does not return here.
#[cfg(not(feature = "std"))]
pub(crate) fn catch<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    Ok(body())
}

/// Installs, once per process, a panic hook that names the greenlet a panic happened in and
/// defers to the previous hook for panics outside greenlets.
#[cfg(feature = "std")]
pub(crate) fn install_hook() {
    use std::boxed::Box;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match running_greenlet() {
            Some(who) => {
                let message = match info.payload().downcast_ref::<&'static str>() {
                    Some(s) => String::from(*s),
                    None => match info.payload().downcast_ref::<String>() {
                        Some(s) => s.clone(),
                        None => String::from("(a panic payload that is not a string)"),
                    },
                };
                let location = match info.location() {
                    Some(l) => std::format!("{l}"),
                    None => String::from("an unknown location"),
                };
                let backtrace = std::backtrace::Backtrace::capture();
                let backtrace = match backtrace.status() {
                    std::backtrace::BacktraceStatus::Captured => {
                        std::format!("\nstack backtrace:\n{backtrace}")
                    }
                    _ => String::new(),
                };
                crate::report::error(format_args!(
                    "{who} panicked at {location}:\n{message}{backtrace}"
                ));
            }
            None => previous(info),
        }));
    });
}

/// "greenlet #3 'worker' (spawned at ...)" when a greenlet other than main is running.
#[cfg(feature = "std")]
fn running_greenlet() -> Option<String> {
    let hub = crate::hub::current_hub_ptr();
    if hub.is_null() {
        return None;
    }
    // SAFETY: the pointer is this thread's own (the hook runs on the panicking thread); when
    // it is not null it names a live hub, since the hub's destructor takes it out of the slot
    // before freeing the hub (`hub::current`), and a panic during that destructor finds it
    // null. The reference is used only within this call, on this thread.
    let hub = unsafe { &*hub };
    let task = hub.current_task();
    (!task.is_main).then(|| task.describe())
}
