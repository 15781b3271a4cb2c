//! The calling thread's `errno`, which a signal handler must save and restore: the code it
//! interrupted may be about to read it.
#![allow(unsafe_code)] // errno's address comes from libc

use libc::c_int;

/// The address of the calling thread's `errno` (each libc names the function its own way).
fn location() -> *mut c_int {
    // SAFETY: the function only returns the address of the calling thread's errno, which
    // lives as long as the thread.
    #[cfg(any(target_os = "linux", target_os = "emscripten", target_os = "hurd"))]
    let location = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    #[cfg(any(target_vendor = "apple", target_os = "freebsd", target_os = "dragonfly"))]
    let location = unsafe { libc::__error() };
    // SAFETY: as above.
    #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
    let location = unsafe { libc::__errno() };
    location
}

/// The calling thread's `errno`.
pub(crate) fn get() -> c_int {
    // SAFETY: `location` is the calling thread's errno, valid and only used by this thread.
    unsafe { *location() }
}

/// Sets the calling thread's `errno` to `value`.
pub(crate) fn set(value: c_int) {
    // SAFETY: as in `get`.
    unsafe { *location() = value }
}
