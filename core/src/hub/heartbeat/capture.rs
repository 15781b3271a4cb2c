//! A preallocated buffer that a signal handler fills with the return addresses of the thread it
//! interrupted, for a monitor thread to read: the stack of a blocked hub, taken from outside.
//!
//! The handler may not allocate or lock, and may be interrupted by nothing that helps it, so
//! the buffer changes hands through one atomic state word, `generation << 2 | phase`:
//!
//! - the monitor *arms* it (`IDLE`/`DONE` → `BUSY` → `ARMED`, a new generation): it claims the
//!   slot with a compare-exchange, names the thread it is about to signal, then publishes the
//!   request (release);
//! - the handler, on that thread, claims it (`ARMED` → `BUSY`, a compare-exchange, so one
//!   handler at most), writes, and publishes it (`BUSY` → `DONE`, release);
//! - the monitor reads it only after claiming `DONE` of its own generation (`DONE` → `BUSY`,
//!   a compare-exchange, acquire), then frees it (`IDLE`); one that gives up waiting takes the
//!   request back (`ARMED` → `IDLE`, a compare-exchange that fails if the handler already
//!   claimed it, whose writing then goes on: the buffer is not armed again until it reaches
//!   `DONE`).
//!
//! So the buffer and the target are touched only in `BUSY`, by the one caller whose
//! compare-exchange moved the slot there: never by two at once, whichever threads call
//! (model-checked with loom, `loom_tests.rs`).
#![allow(unsafe_code)] // the buffer's cell, handed over by the state word

#[cfg(not(all(test, loom)))]
use crate::shared::rmw::{AtomicUsize, Ordering};
#[cfg(all(test, loom))]
use loom::sync::atomic::{AtomicUsize, Ordering};

#[cfg(all(test, loom))]
mod loom_tests;

const IDLE: usize = 0;
const ARMED: usize = 1;
/// Claimed by one caller: the handler writing, the monitor arming or reading.
const BUSY: usize = 2;
const DONE: usize = 3;
const PHASE: usize = 3;

/// The most return addresses a capture keeps.
pub const MAX_FRAMES: usize = 64;

/// The frames and how many of them are valid.
struct Frames {
    ips: [usize; MAX_FRAMES],
    len: usize,
}

/// See the [module docs](self).
pub struct FrameSlot {
    state: AtomicUsize,
    /// The thread the armed request is for (an opaque id, e.g. a `pthread_t`).
    target: AtomicUsize,
    frames: Cell<Frames>,
}

// SAFETY: the frames are accessed only by the caller whose compare-exchange moved the state
// to `BUSY` (the handler from `ARMED`, to write; `collect` from `DONE`, to read), and that
// caller's release store takes it out of `BUSY`; the compare-exchanges acquire, so each access
// happens after the previous holder's. Any thread may call any method: none touches the cell
// without winning the state word. The other fields are atomics.
unsafe impl Sync for FrameSlot {}

impl core::fmt::Debug for FrameSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameSlot").finish_non_exhaustive()
    }
}

/// A request made with [`FrameSlot::arm`], to collect or withdraw. Dropping it withdraws it,
/// so a monitor that gives up (or unwinds) never leaves the slot armed for good.
#[derive(Debug)]
#[must_use = "a request must be collected or withdrawn"]
pub struct Request<'a> {
    slot: &'a FrameSlot,
    generation: usize,
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        // Fails harmlessly if the handler claimed it (its writing goes on, to `DONE`, which
        // `arm` accepts) or if it was collected (the slot moved on from `ARMED`).
        let armed = self.generation << 2 | ARMED;
        let _ = self.slot.state.compare_exchange(
            armed,
            self.generation << 2 | IDLE,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

impl FrameSlot {
    /// An idle slot.
    #[cfg(not(all(test, loom)))]
    pub const fn new() -> Self {
        FrameSlot {
            state: AtomicUsize::new(IDLE),
            target: AtomicUsize::new(0),
            frames: Cell::new(Frames { ips: [0; MAX_FRAMES], len: 0 }),
        }
    }

    /// An idle slot (loom's atomics have no `const fn new`).
    #[cfg(all(test, loom))]
    pub fn new() -> Self {
        FrameSlot {
            state: AtomicUsize::new(IDLE),
            target: AtomicUsize::new(0),
            frames: Cell::new(Frames { ips: [0; MAX_FRAMES], len: 0 }),
        }
    }

    /// Monitor side: asks for the frames of thread `target` (signal it next). `None` while a
    /// request is armed, or a handler (of a withdrawn request) still writes, or another caller
    /// holds the slot.
    pub fn arm(&self, target: usize) -> Option<Request<'_>> {
        let state = self.state.load(Ordering::Relaxed);
        if state & PHASE == BUSY || state & PHASE == ARMED {
            return None;
        }
        let generation = (state >> 2).wrapping_add(1);
        // Acquire: the previous holder's accesses to the frames come before the next handler's.
        self.state
            .compare_exchange(state, generation << 2 | BUSY, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.target.store(target, Ordering::Relaxed);
        // Release: a handler that sees `ARMED` sees `target` too.
        self.state.store(generation << 2 | ARMED, Ordering::Release);
        Some(Request { slot: self, generation })
    }

    /// Monitor side: copies the frames into `out` if the handler has published them, freeing
    /// the slot; gives the request back (`Err`) while it has not.
    ///
    /// # Panics
    ///
    /// If `request` was armed on another slot.
    pub fn collect<'a>(
        &self,
        request: Request<'a>,
        out: &mut [usize],
    ) -> Result<usize, Request<'a>> {
        assert!(
            core::ptr::eq(request.slot, self),
            "FrameSlot::collect: the request was armed on another slot"
        );
        let done = request.generation << 2 | DONE;
        // Acquire: pairs with the handler's release store of `DONE` after its last write.
        if self
            .state
            .compare_exchange(
                done,
                request.generation << 2 | BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(request);
        }
        let n = self.frames.with(|frames| {
            // SAFETY: this call moved the state from `DONE` to `BUSY`, which nobody else can
            // while it stays there (module docs), and its acquire saw the release store that
            // followed the handler's last write.
            let frames = unsafe { &*frames };
            let n = frames.len.min(out.len());
            out[..n].copy_from_slice(&frames.ips[..n]);
            n
        });
        self.state.store(request.generation << 2 | IDLE, Ordering::Release);
        Ok(n)
    }

    /// Monitor side: gives up on a request (as dropping it does). A handler that already
    /// claimed it finishes writing, and the slot can be armed again once it has.
    pub fn withdraw(&self, request: Request<'_>) {
        drop(request);
    }

    /// Handler side, on thread `me`: if a request for `me` is armed, claims it and fills the
    /// buffer with the addresses `walk` hands to its callback (which returns false once the
    /// buffer is full), then publishes them. Allocates nothing, takes no lock: callable from a
    /// signal handler if `walk` is.
    pub fn fill(&self, me: usize, walk: impl FnOnce(&mut dyn FnMut(usize) -> bool)) {
        let state = self.state.load(Ordering::Acquire);
        if state & PHASE != ARMED || self.target.load(Ordering::Relaxed) != me {
            return;
        }
        let generation = state >> 2;
        if self
            .state
            .compare_exchange(state, generation << 2 | BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.frames.with_mut(|frames| {
            // SAFETY: the compare-exchange above moved this generation from `ARMED` to `BUSY`,
            // which only one caller can do; until the release store below, nobody else reads or
            // writes the frames (only a caller that moves the state to `BUSY` does).
            let frames = unsafe { &mut *frames };
            frames.len = 0;
            walk(&mut |ip| {
                if frames.len == MAX_FRAMES {
                    return false;
                }
                frames.ips[frames.len] = ip;
                frames.len += 1;
                frames.len < MAX_FRAMES
            });
        });
        self.state.store(generation << 2 | DONE, Ordering::Release);
    }
}

#[cfg(not(all(test, loom)))]
impl Default for FrameSlot {
    fn default() -> Self {
        Self::new()
    }
}

/// `core`'s `UnsafeCell` with loom's closure API, so the same code runs under loom, whose cell
/// checks that the accesses the state word hands over never overlap.
#[cfg(not(all(test, loom)))]
struct Cell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(all(test, loom)))]
impl<T> Cell<T> {
    const fn new(value: T) -> Self {
        Cell(core::cell::UnsafeCell::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, loom))]
use loom::cell::UnsafeCell as Cell;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "armed on another slot")]
    fn a_request_of_another_slot_is_refused() {
        let (mine, other) = (FrameSlot::new(), FrameSlot::new());
        let request = other.arm(7).expect("a new slot is idle");
        let _ = mine.collect(request, &mut [0; 4]);
    }

    #[test]
    fn a_request_dropped_unresolved_frees_the_slot() {
        let slot = FrameSlot::new();
        drop(slot.arm(7).expect("a new slot is idle"));
        let again = slot.arm(7).expect("the dropped request no longer holds the slot");
        slot.fill(7, |push| {
            push(42);
        });
        let mut out = [0; 4];
        assert_eq!(slot.collect(again, &mut out).ok(), Some(1));
        assert_eq!(out[0], 42);
    }

    #[test]
    fn a_request_dropped_after_the_handler_claimed_it_waits_for_done() {
        let slot = FrameSlot::new();
        let request = slot.arm(7).expect("a new slot is idle");
        slot.fill(7, |push| {
            // The handler is writing (the slot is `BUSY`) when the monitor gives up.
            push(1);
        });
        drop(request);
        // The handler finished (`DONE`): a new request may take the slot.
        assert!(slot.arm(7).is_some());
    }
}
