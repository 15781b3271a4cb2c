//! Finding the hub: one per thread with `std`, one global hub without.
#![allow(unsafe_code)] // see the SAFETY comments

use core::ptr;

use super::Hub;
use crate::platform::Platform;

/// A hub is already installed where [`install`] was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyInstalled(());

impl core::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a hub is already installed on this thread")
    }
}

impl core::error::Error for AlreadyInstalled {}

#[cfg(feature = "std")]
mod slot {
    use super::*;
    use alloc::boxed::Box;
    use core::cell::{Cell, RefCell};

    /// Owns the thread's hub; dropping it (at thread exit) shuts the hub down first, while the
    /// hub is still reachable through `CURRENT`, so that dying greenlets can still use it.
    pub(super) struct HubOwner(pub(super) Option<Box<Hub>>);

    impl Drop for HubOwner {
        fn drop(&mut self) {
            if let Some(hub) = &self.0 {
                hub.shutdown();
                hub.close_remote();
            }
            CURRENT.with(|c| c.set(ptr::null()));
        }
    }

    std::thread_local! {
        // No destructor, so it stays readable while other thread-locals are being destroyed.
        pub(super) static CURRENT: Cell<*const Hub> = const { Cell::new(ptr::null()) };
        pub(super) static OWNER: RefCell<HubOwner> = const { RefCell::new(HubOwner(None)) };
    }

    pub(super) fn get() -> *const Hub {
        CURRENT.with(|c| c.get())
    }

    pub(super) fn set(hub: Hub) -> *const Hub {
        let hub = Box::new(hub);
        let ptr: *const Hub = &*hub;
        let installed = OWNER.try_with(|owner| owner.borrow_mut().0 = Some(hub));
        assert!(installed.is_ok(), "gevent: a hub was needed while this thread was exiting");
        CURRENT.with(|c| c.set(ptr));
        crate::panic::install_hook();
        ptr
    }
}

#[cfg(not(feature = "std"))]
mod slot {
    use super::*;
    use alloc::boxed::Box;
    use core::sync::atomic::{AtomicPtr, Ordering};

    // The one hub of a `no_std` program. Installed once and never freed (firmware runs until
    // reset); `Hub` is `!Sync`, so hub functions must only be called from the thread of
    // execution that installed it, never from interrupt handlers (those use `HubHandle`).
    static GLOBAL: AtomicPtr<Hub> = AtomicPtr::new(ptr::null_mut());

    pub(super) fn get() -> *const Hub {
        GLOBAL.load(Ordering::Acquire)
    }

    pub(super) fn set(hub: Hub) -> *const Hub {
        let ptr = Box::into_raw(Box::new(hub));
        GLOBAL.store(ptr, Ordering::Release);
        ptr
    }
}

/// Installs a hub built from `platform` for this thread (with `std`) or for the program
/// (without). Needed only where no default platform creates one on first use: in firmware, and
/// in tests that want the simulated platform.
pub fn install(platform: Platform) -> Result<(), AlreadyInstalled> {
    if !slot::get().is_null() {
        return Err(AlreadyInstalled(()));
    }
    slot::set(Hub::new(platform));
    Ok(())
}

/// The current thread's hub pointer, null if none exists; for fault handlers.
pub(crate) fn current_hub_ptr() -> *const Hub {
    slot::get()
}

/// The current hub, created on first use where a default platform is linked.
pub(crate) fn hub() -> &'static Hub {
    let mut ptr = slot::get();
    if ptr.is_null() {
        ptr = slot::set(Hub::new(default_platform()));
    }
    // SAFETY: the hub is boxed and freed only by the thread's `HubOwner` destructor, which
    // clears the pointer first; `Hub` is `!Send`/`!Sync`, so the reference cannot leave this
    // thread, and every caller uses it only for the duration of one call. (The `'static` is
    // "until the thread's hub is destroyed", which no caller outlives.)
    unsafe { &*ptr }
}

#[cfg(feature = "default-platform")]
fn default_platform() -> Platform {
    unsafe extern "Rust" {
        /// Defined by the crate that provides the platform for this target (`gevent`).
        safe fn __gevent_core_0_1_default_platform() -> Platform;
    }
    __gevent_core_0_1_default_platform()
}

#[cfg(not(feature = "default-platform"))]
fn default_platform() -> Platform {
    panic!(
        "gevent: no hub on this thread and no default platform: depend on the `gevent` crate \
         (hosted), or call gevent_core::hub::install(platform) first"
    )
}

/// Kills every greenlet of this thread's hub and runs them until they return (so their
/// destructors run), then leaves the hub empty and ready for reuse. A greenlet that has not
/// returned [`SHUTDOWN_GRACE`](super::SHUTDOWN_GRACE) after the kill (it ignores kills and keeps
/// waiting) is abandoned: its stack is leaked, with a warning on stderr under `std`.
///
/// With `std` this happens by itself when the thread exits. Call it from the main greenlet.
pub fn shutdown() {
    let ptr = slot::get();
    if ptr.is_null() {
        return;
    }
    // SAFETY: as in `hub()`.
    let hub = unsafe { &*ptr };
    assert!(
        hub.current().task().is_main,
        "gevent: shutdown() must be called from the main greenlet"
    );
    hub.shutdown();
}
