//! A simulated platform for deterministic tests: a virtual clock that jumps to the next timer
//! instead of waiting, a poller whose readiness events the test injects, and heap stacks.
//!
//! With it, `sleep(Duration::from_secs(3600))` returns at once, and every run of a test takes
//! the same schedule.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::alloc::{alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::{Cell, RefCell};
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use crate::platform::{
    Clock, Interest, Platform, PollError, Poller, Readiness, RemoteWaker, Token,
};
use crate::stack::{StackError, StackRegion, StackSource};
use crate::time::Instant;

/// The virtual clock: time moves only when the hub would sleep.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    now: Rc<Cell<Instant>>,
}

impl SimClock {
    /// Moves virtual time forward by `by`, as if the running code had computed that long.
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}

#[derive(Debug, Default)]
struct SimWaker {
    woken: AtomicBool,
}

impl RemoteWaker for SimWaker {
    fn wake(&self) {
        self.woken.store(true, Ordering::SeqCst);
    }
}

/// A simulated I/O source, named by a number of the test's choosing; register it with
/// [`IoRegistration::new`](crate::hub::IoRegistration::new) and make it ready with
/// [`SimIo::schedule`]. Each number can be registered once at a time, as an fd can with epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SimSource(pub u64);

/// Readiness events a test feeds to the simulated poller.
#[derive(Clone, Debug, Default)]
pub struct SimIo {
    /// `(source, readiness, at)`: reported once the virtual clock reaches `at`.
    scheduled: Rc<RefCell<Vec<(SimSource, Readiness, Instant)>>>,
    registered: Rc<RefCell<Vec<(SimSource, Token)>>>,
}

impl SimIo {
    /// Makes `source` report `readiness` once the virtual clock reaches `at`.
    pub fn schedule(&self, source: SimSource, readiness: Readiness, at: Instant) {
        self.scheduled.borrow_mut().push((source, readiness, at));
    }
}

/// The simulated poller: advances the [`SimClock`] by each timeout instead of waiting.
#[derive(Debug)]
pub struct SimPoller {
    clock: SimClock,
    io: SimIo,
    waker: Arc<SimWaker>,
}

const NOT_SIMULATED: PollError =
    PollError { operation: "register (the simulated poller watches SimSource only)", code: None };
const ALREADY_REGISTERED: PollError =
    PollError { operation: "register (this SimSource is registered already)", code: None };

impl Poller for SimPoller {
    fn register(
        &mut self,
        source: &dyn core::any::Any,
        token: Token,
        _: Interest,
    ) -> Result<u64, PollError> {
        let &source = source.downcast_ref::<SimSource>().ok_or(NOT_SIMULATED)?;
        let mut registered = self.io.registered.borrow_mut();
        if registered.iter().any(|(s, _)| *s == source) {
            return Err(ALREADY_REGISTERED);
        }
        registered.push((source, token));
        Ok(source.0)
    }

    fn deregister(&mut self, source: &dyn core::any::Any) -> Result<(), PollError> {
        let &source = source.downcast_ref::<SimSource>().ok_or(NOT_SIMULATED)?;
        self.io.registered.borrow_mut().retain(|(s, _)| *s != source);
        Ok(())
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        let now = self.clock.now.get();
        let next_io = self.io.scheduled.borrow().iter().map(|e| e.2).min();
        let wake_at = match (timeout.map(|t| now + t), next_io) {
            (Some(t), Some(io)) => Some(t.min(io)),
            (t, io) => t.or(io),
        };
        match wake_at {
            Some(at) => {
                if at > now {
                    self.clock.now.set(at);
                }
            }
            None => {
                // Only posts from real threads can end this wait.
                while !self.waker.woken.swap(false, Ordering::SeqCst) {
                    #[cfg(feature = "std")]
                    std::thread::yield_now();
                    #[cfg(not(feature = "std"))]
                    core::hint::spin_loop();
                }
            }
        }
        let now = self.clock.now.get();
        let due: Vec<_> = {
            let mut scheduled = self.io.scheduled.borrow_mut();
            let (due, later) = scheduled.drain(..).partition(|e| e.2 <= now);
            *scheduled = later;
            due
        };
        let registered = self.io.registered.borrow();
        for (source, readiness, _) in due {
            if let Some((_, token)) = registered.iter().find(|(s, _)| *s == source) {
                ready(*token, readiness);
            }
        }
        Ok(())
    }

    fn remote_waker(&self) -> Arc<dyn RemoteWaker> {
        self.waker.clone()
    }

    fn as_any_mut(&mut self) -> &mut dyn core::any::Any {
        self
    }
}

/// Stacks from the global allocator.
///
/// They have **no guard page**: a greenlet that overflows one corrupts the heap. For tests on
/// the simulated platform only, with stacks sized generously. They start zeroed, so greenlet
/// trees show their high-water marks.
#[derive(Debug, Default)]
pub struct HeapStacks(());

// SAFETY: regions are fresh, exclusively owned allocations of the requested size rounded up to
// a multiple of 16 (by `round`, which refuses what rounding or `Layout` cannot hold), aligned to
// 16 bytes; the missing guard page is documented on the type, as the trait requires.
unsafe impl StackSource for HeapStacks {
    fn allocate(&mut self, size: usize) -> Result<StackRegion, StackError> {
        let size = self.round(size)?;
        let layout = Layout::from_size_align(size, 16).map_err(|_| StackError {
            message: alloc::format!("no greenlet stack of {size} bytes can be allocated").into(),
        })?;
        // SAFETY: `layout` has a non-zero size (`round` gives at least MIN_STACK_SIZE).
        let bottom = unsafe { alloc_zeroed(layout) };
        let bottom = NonZeroUsize::new(bottom as usize).ok_or(StackError {
            message: alloc::format!("out of memory for a greenlet stack of {size} bytes").into(),
        })?;
        let top = NonZeroUsize::new(bottom.get() + size).expect("no overflow past a live block");
        Ok(StackRegion { top, bottom, guard: 0 })
    }

    fn untouched_below(&self, region: &StackRegion) -> Option<usize> {
        // Zeroed when allocated; which words were written since is for the reader to find.
        Some(region.bottom.get())
    }

    unsafe fn release(&mut self, region: StackRegion) {
        let size = region.top.get() - region.bottom.get();
        let layout = Layout::from_size_align(size, 16).expect("valid when allocated");
        // SAFETY: the caller guarantees the region came from `allocate` with this layout.
        unsafe { dealloc(region.bottom.get() as *mut u8, layout) };
    }
}

/// Handles to a simulated platform's clock and I/O events.
#[derive(Clone, Debug)]
pub struct SimHandle {
    /// The virtual clock.
    pub clock: SimClock,
    /// The readiness-event feed.
    pub io: SimIo,
}

/// A simulated platform, with handles to its clock and I/O events.
pub fn platform() -> (Platform, SimHandle) {
    let clock = SimClock::default();
    let io = SimIo::default();
    let poller = SimPoller { clock: clock.clone(), io: io.clone(), waker: Default::default() };
    let platform = Platform {
        poller: Box::new(poller),
        clock: Box::new(clock.clone()),
        stacks: Box::new(HeapStacks::default()),
        default_stack_size: crate::stack::DEFAULT_STACK_SIZE,
    };
    (platform, SimHandle { clock, io })
}

/// Runs `f` on this thread's hub, installing a simulated one first if the thread has none, then
/// ends the greenlets still alive, as [`hub::run`](crate::hub::run) does.
pub fn run<R>(f: impl FnOnce() -> R) -> R {
    let _ = crate::hub::install(platform().0);
    crate::hub::run(f)
}

/// Installs a simulated hub on this thread (which must have none) and runs `f` with handles to
/// its clock and I/O feed, then ends the greenlets still alive, as
/// [`hub::run`](crate::hub::run) does.
pub fn run_with<R>(f: impl FnOnce(&SimHandle) -> R) -> R {
    let (platform, handle) = platform();
    crate::hub::install(platform).expect("run_with needs a thread without a hub");
    crate::hub::run(|| f(&handle))
}
