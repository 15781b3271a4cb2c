//! Finding the hub, and ending it.
//!
//! # Where the hub lives
//!
//! Without `std` a program has one hub, installed once and never freed (firmware runs until
//! reset). With `std` each thread has its own, created by the thread's first gevent call (or by
//! [`install`]). The thread owns it through a raw pointer kept in a thread-local without a
//! destructor, so the pointer can be read at any moment, even while the thread's other
//! thread-locals are being destroyed; a second thread-local, registered when the hub is
//! created, ends the hub from its destructor when the thread exits.
//!
//! # How greenlets end
//!
//! A parked greenlet can be anywhere in its code, for example inside `LocalKey::with` of some
//! thread-local, holding a reference into it. When a thread exits, its thread-locals are
//! destroyed one after another in an order no library controls, so a greenlet resumed from one
//! of those destructors could read a thread-local that is already gone. Greenlets are therefore
//! ended from explicit points, while every thread-local is alive, and never at thread exit:
//!
//! - [`run`] runs a function on the main greenlet, then ends the greenlets still alive: it
//!   kills them and waits for them to return, so that their destructors run. [`shutdown`] is
//!   that second half on its own.
//! - A thread that exits with greenlets still alive leaks them, with one warning on stderr that
//!   says how many and how to avoid it. The hub's destructor resumes none of them and calls no
//!   user code: their stacks, the values on those stacks, their closures and `Local` values, and
//!   the hub itself are never freed or touched.
//! - A thread that exits with no greenlet alive frees its hub, and with it the values the hub
//!   owns outside any greenlet's stack (the main greenlet's [`Local`](crate::local::Local)
//!   values, jobs posted from other threads and never run), dropped as any thread-local's
//!   value is.
//! - From the moment the hub's destructor starts, the thread has no hub and gets no new one:
//!   a gevent call from a thread-local destructor that runs later panics with a message that
//!   says so, and dropping a [`Timeout`](crate::Timeout) there does nothing.
//!
//! gevent cannot see a thread begin destroying its thread-locals before the hub's own
//! destructor runs, so a thread-local's destructor must not block on gevent (`sleep`, `join`,
//! `kill`): that runs the other greenlets of the thread, whatever is already destroyed.
#![allow(unsafe_code)] // see the SAFETY comments

use core::ptr;

use super::Hub;
use super::run_queue::QueuedTask;
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
    use core::cell::Cell;

    std::thread_local! {
        /// The thread's hub, owned through this pointer (it came from `Box::into_raw`); null
        /// while the thread has none. It has no destructor, so it stays readable while the
        /// thread's other thread-locals are destroyed.
        static HUB: Cell<*mut Hub> = const { Cell::new(ptr::null_mut()) };
        /// Touched when a hub is created, which registers its destructor: the hub's end at
        /// thread exit. Once destroyed, it tells that the thread can have no hub any more.
        static HUB_OWNER: HubOwner = const { HubOwner };
    }

    /// Ends the thread's hub when the thread exits: frees it, or leaks it with its live
    /// greenlets (see the module docs).
    struct HubOwner;

    impl Drop for HubOwner {
        fn drop(&mut self) {
            // Said while the hub is still in its slot, so that a callback's blocking call is
            // refused by the hub rather than creating a new one.
            if let Some(hub) = try_hub() {
                crate::events::hub_destroyed(hub);
            }
            // From here on the thread has no hub: later gevent calls find none, and cannot
            // make one since this thread-local is destroyed.
            let ptr = HUB.try_with(|hub| hub.replace(ptr::null_mut())).unwrap_or(ptr::null_mut());
            if ptr.is_null() {
                return;
            }
            // SAFETY: `ptr` came from `Box::into_raw` in `set` and was just taken out of `HUB`,
            // its only copy, so nothing else can free it. `Hub` is `!Send`, so only this thread
            // uses it, and the calls below go through its `RefCell`s: a hub method left on a
            // stack (in a parked greenlet, or one that called `process::exit`, which runs this
            // destructor and never returns to it) cannot make them unsound.
            let hub = unsafe { &*ptr };
            let unrun_jobs = hub.close_remote();
            let alive = hub.live_greenlets().len();
            if alive == 0 {
                drop(unrun_jobs);
                // SAFETY: as above, this is the one owner of the box `set` made, and `hub` is
                // not used again. No code will use the hub after this: no greenlet is alive
                // (one abandoned by `shutdown` was forgotten, never to run), and the thread's
                // own code has returned, or called `process::exit`, which does not return.
                drop(unsafe { Box::from_raw(ptr) });
                return;
            }
            // The jobs, the greenlets and the hub they refer to are leaked: dropping any of
            // them could run user code, or free what a leaked greenlet's stack points to.
            core::mem::forget(unrun_jobs);
            let leaked = match alive {
                1 => alloc::string::String::from(
                    "1 greenlet alive, which was leaked: never resumed, its stack and the values \
                     on it",
                ),
                n => std::format!(
                    "{n} greenlets alive, which were leaked: never resumed, their stacks and the \
                     values on them"
                ),
            };
            std::eprintln!(
                "gevent: a thread exited with {leaked} never freed (resuming a greenlet while the \
                 thread's thread-locals are being destroyed is unsound). To end greenlets while \
                 the thread is alive, run its code inside gevent::run(...) or call \
                 gevent::shutdown() before it returns."
            );
        }
    }

    pub(super) fn get() -> *const Hub {
        HUB.try_with(Cell::get).unwrap_or(ptr::null_mut())
    }

    pub(super) fn set(hub: Hub) -> *const Hub {
        // Registers the hub's end at thread exit first: with it already destroyed, the thread
        // is exiting and a hub made now would never end.
        if HUB_OWNER.try_with(|_| ()).is_err() {
            refuse_after_exit();
        }
        let ptr = Box::into_raw(Box::new(hub));
        HUB.with(|slot| slot.set(ptr));
        crate::panic::install_hook();
        ptr
    }

    #[cold]
    fn refuse_after_exit() -> ! {
        panic!(
            "gevent: this thread's hub is gone: it ended with the thread's thread-locals, and \
             gevent cannot be used from a thread-local destructor that runs after it"
        )
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

    // Relaxed, not Acquire: `Acquire` costs a `dmb` on every `hub()` call (every switch) on
    // ARM, and buys nothing sound. The hub may only be used by the thread of execution that
    // installed it, which sees its own store in program order; any other context that reads
    // the pointer must already have synchronized with the installer by its own means (the
    // `Hub`'s `Cell`s, which it would touch next, are unsynchronized anyway), and such a
    // synchronization orders this load after the store as well.
    pub(super) fn get() -> *const Hub {
        GLOBAL.load(Ordering::Relaxed)
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
///
/// # Panics
///
/// With `std`, when called from a thread-local's destructor that runs after the thread's hub
/// ended at thread exit: a thread gets no new hub then.
pub fn install(platform: Platform) -> Result<(), AlreadyInstalled> {
    super::context::refuse_handler_mode();
    if !slot::get().is_null() {
        return Err(AlreadyInstalled(()));
    }
    slot::set(Hub::new(platform));
    #[cfg(feature = "std")]
    crate::tree::register_current_hub();
    crate::events::hub_created();
    Ok(())
}

/// The current thread's hub pointer, null if none exists; for fault handlers.
pub(crate) fn current_hub_ptr() -> *const Hub {
    slot::get()
}

/// The current hub, created on first use where a default platform is linked.
#[inline]
pub(crate) fn hub() -> &'static Hub {
    // Without `std` the slot is a `static` that interrupt handlers reach too: refused there
    // (on Cortex-M; see `context`).
    super::context::refuse_handler_mode();
    let mut ptr = slot::get();
    if ptr.is_null() {
        ptr = create();
    }
    // SAFETY: a non-null pointer is the thread's hub, which is freed only by its owner's
    // destructor at thread exit, after that destructor took the pointer out of the slot (so
    // no caller can get it any more) and only when no greenlet is alive (so no greenlet that
    // can still run is suspended in a call using it). `Hub` is `!Send`/`!Sync`, so the
    // reference cannot leave this thread, and every caller uses it only for the duration of
    // one call. (The `'static` is "until the thread's hub is destroyed", which no caller
    // outlives.) Without `std`, "this thread" is the thread mode of the core that installed
    // the hub: handler mode was refused above.
    unsafe { &*ptr }
}

/// The current hub, for code that has just found `waiter` in the line of a primitive's
/// [`Waiters`](crate::sync::waiters::Waiters): the wake-up of a put or a release. Without `std`
/// it skips the checks of [`hub`], which the spawn or the hub that made `waiter` passed; the
/// greenlet is asked for as the proof that they did.
#[inline(always)]
pub(crate) fn hub_of_waiter(waiter: &QueuedTask) -> &'static Hub {
    let _ = waiter;
    #[cfg(feature = "std")]
    {
        // A thread's hub can end while a waiter is in line (the thread exits and leaks its
        // greenlets), and a thread-local destructor can still put: the checked way.
        hub()
    }
    #[cfg(not(feature = "std"))]
    {
        // SAFETY: a greenlet (`waiter`) is made only by a hub, as its main greenlet, or by a
        // spawn, whose `hub()` found the hub installed (and, on Cortex-M, refused handler
        // mode); a main greenlet is in no line before its hub is installed, as joining one
        // goes through `hub()` too. The global is never cleared or freed, so the pointer is
        // non-null and valid for good. The caller is in the thread mode that owns the hub,
        // whatever safe code calls it: a greenlet's counts are neither `Send` nor `Sync`, so
        // no interrupt handler (nor another core) holds one made in thread mode without
        // `unsafe`, and a handler cannot make one, as `hub()` refuses it.
        unsafe { &*slot::get() }
    }
}

/// The current hub if there is one; never creates one. For destructors, which may run after
/// the thread's hub ended.
pub(crate) fn try_hub() -> Option<&'static Hub> {
    super::context::refuse_handler_mode();
    let ptr = slot::get();
    // SAFETY: as in `hub()`.
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

#[cold]
#[inline(never)]
fn create() -> *const Hub {
    let hub = slot::set(Hub::new(default_platform()));
    #[cfg(feature = "std")]
    crate::tree::register_current_hub();
    crate::events::hub_created();
    hub
}

// Not in core's own unit tests: those are built as a second copy of the crate, and the
// symbol's `Platform` is the first copy's type.
#[cfg(all(feature = "default-platform", not(test)))]
fn default_platform() -> Platform {
    unsafe extern "Rust" {
        /// Defined by the crate that provides the platform for this target (`gevent`).
        safe fn __gevent_core_0_1_default_platform() -> Platform;
    }
    __gevent_core_0_1_default_platform()
}

#[cfg(any(not(feature = "default-platform"), test))]
fn default_platform() -> Platform {
    panic!(
        "gevent: no hub on this thread and no default platform: depend on the `gevent` crate \
         (hosted), or call gevent_core::hub::install(platform) first"
    )
}

/// Runs `f` on the main greenlet, then ends the greenlets still alive and returns `f`'s
/// result: the way to run a thread's (or a program's) gevent code.
///
/// Once `f` returns, every greenlet of the hub (those `f` spawned, and any spawned before) is
/// killed, and `run` waits for each to return, so that its destructors run while the thread
/// and all its thread-locals are alive; see [`shutdown`].
///
/// # Why greenlets are not ended at thread exit
///
/// A parked greenlet may hold a reference into a thread-local (it parked inside
/// `LocalKey::with`), and at thread exit the thread-locals are destroyed in an order no
/// library controls, so resuming it from the hub's own thread-local destructor could read
/// freed memory. Instead, a thread that exits with greenlets alive leaks them: none is resumed,
/// and their stacks, the values on them and the hub they use are never freed or touched. One
/// warning on stderr says how many were leaked. A thread that exits with none alive frees its
/// hub; after that, gevent calls from thread-local destructors that run later panic (dropping
/// gevent values there is fine).
///
/// If `f` panics, the panic goes on through `run` and the greenlets are left as they are.
///
/// ```
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// # #[cfg(not(miri))] // Miri cannot switch stacks
/// # gevent_core::sim::run(|| {
/// use core::time::Duration;
/// use gevent_core::{hub, sleep, spawn};
///
/// let answer = hub::run(|| {
///     let _sleeper = spawn(|| sleep(Duration::from_secs(3600))); // killed when `f` returns
///     let worker = spawn(|| 6 * 7);
///     worker.get().unwrap()
/// });
/// assert_eq!(answer, 42);
/// # });
/// ```
///
/// # Panics
///
/// When called from a greenlet other than the main one (the thread's own stack).
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    assert_main("run");
    let result = f();
    shutdown();
    result
}

/// Kills every greenlet of this thread's hub and runs them until they return (so their
/// destructors run), then leaves the hub empty and ready for reuse. A greenlet that has not
/// returned [`SHUTDOWN_GRACE`](super::SHUTDOWN_GRACE) after the kill (it ignores kills and keeps
/// waiting) is abandoned: its stack is leaked, with a warning on stderr under `std`.
///
/// [`run`] calls it when its function returns. Nothing calls it at thread exit: greenlets
/// still alive then are leaked (see [`run`] for why).
///
/// # Panics
///
/// When called from a greenlet other than the main one (the thread's own stack).
pub fn shutdown() {
    if let Some(hub) = assert_main("shutdown") {
        hub.shutdown();
    }
}

/// The thread's hub, if it has one, after checking that the main greenlet is running.
fn assert_main(function: &str) -> Option<&'static Hub> {
    let hub = try_hub()?;
    assert!(
        hub.current_task().is_main,
        "gevent: {function}() must be called from the main greenlet (the thread's own stack), \
         not from {}",
        hub.current_task().describe()
    );
    Some(hub)
}
