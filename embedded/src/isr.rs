//! Handing events from interrupt handlers to greenlets without allocating: a [`Signal`] an
//! interrupt raises and a greenlet waits for, and a [`Channel`] of fixed capacity an interrupt
//! sends values on, which says so when it is full instead of losing them.
//!
//! Both are meant for `static`s (`const fn new`), and both are safe to use from any interrupt
//! handler: what the handler touches (a flag, a ring of slots, the hub's wake flag) is guarded
//! by a critical section and never allocates. [`HubHandle::post`](gevent_core::HubHandle::post)
//! is the other way in, for work that needs a greenlet of its own; it allocates twice and needs
//! a free stack.
//!
//! # Why critical sections are enough
//!
//! The greenlet side and the handler side meet only inside `critical_section::with`. On a
//! single core that masks interrupts, so a handler never runs in the middle of the greenlet's
//! look at the state, nor another handler in the middle of one's change: each side sees the
//! other's change whole, before or after. No lock-free protocol is involved, so there is
//! nothing for a model checker to add.
//!
//! This is a single-core design: the hub's idle wait holds the critical section through the
//! firmware's `wfi` (that is what closes the lost wake-up window), so on a multi-core chip,
//! whose critical section is a lock, a handler on another core raising a signal would wait
//! for this core's next interrupt. Raise signals from interrupts of the hub's own core.
//!
//! A signal or channel wakes the hub whose greenlet last waited on it: one hub per signal.
//!
//! # How a waiting greenlet is woken
//!
//! A waiting greenlet registers the signal with the hub's poller ([`IdlePoller`] or
//! [`NetPoller`]), which looks at the registered signals in the same critical section in which
//! it decides to sleep, and reports a raised one as readable; raising a signal also wakes the
//! poller. A signal raised while nothing waits stays raised until a greenlet takes it.
//!
//! [`IdlePoller`]: crate::IdlePoller
//! [`NetPoller`]: crate::net::NetPoller

use alloc::vec::Vec;
use core::any::Any;
use core::cell::{Cell, RefCell};
use core::fmt;

use critical_section::Mutex;
use gevent_core::Interrupted;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Interest, PollError, Readiness, RemoteWaker, Token};
use gevent_core::shared::Shared;

/// A flag an interrupt handler raises and a greenlet waits for: the allocation-free way for
/// an interrupt to wake a greenlet.
///
/// It is a flag, not a counter: raising it twice before a greenlet takes it wakes the greenlet
/// once (use a [`Channel`] to count or carry values). Meant for a `static`:
///
/// ```
/// use gevent_embedded::isr::Signal;
///
/// static BUTTON: Signal = Signal::new();
///
/// // In the interrupt handler:
/// BUTTON.signal();
///
/// // In a greenlet (on the hub's thread):
/// # fn greenlet() -> Result<(), gevent_embedded::isr::WaitError> {
/// BUTTON.wait()?;
/// # Ok(())
/// # }
/// ```
pub struct Signal {
    raised: Mutex<Cell<bool>>,
    /// The waker of the poller the signal was last registered with.
    waker: Mutex<RefCell<Option<Shared<dyn RemoteWaker>>>>,
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("raised", &self.is_raised()).finish_non_exhaustive()
    }
}

impl Default for Signal {
    fn default() -> Self {
        Self::new()
    }
}

impl Signal {
    /// A signal that is not raised.
    pub const fn new() -> Self {
        Signal { raised: Mutex::new(Cell::new(false)), waker: Mutex::new(RefCell::new(None)) }
    }

    /// Raises the signal and wakes the hub if a greenlet waits for it. From an interrupt
    /// handler or anywhere else; allocates nothing and never blocks.
    pub fn signal(&self) {
        critical_section::with(|cs| {
            self.raised.borrow(cs).set(true);
            if let Some(waker) = self.waker.borrow_ref(cs).as_ref() {
                waker.wake();
            }
        });
    }

    /// Whether the signal is raised (and not yet taken).
    pub fn is_raised(&self) -> bool {
        critical_section::with(|cs| self.raised.borrow(cs).get())
    }

    /// Lowers the signal; true if it was raised.
    pub fn take(&self) -> bool {
        critical_section::with(|cs| self.raised.borrow(cs).replace(false))
    }

    /// Parks the calling greenlet until the signal is raised, then lowers it. Returns at once
    /// if it is raised already.
    ///
    /// Fails if the greenlet is killed or its `Timeout` expires, or if the hub's poller does
    /// not watch signals (one not installed by this crate's [`init`](crate::init) or
    /// [`init_net`](crate::init_net)).
    pub fn wait(&'static self) -> Result<(), WaitError> {
        if self.take() {
            return Ok(());
        }
        let registration = IoRegistration::new(SignalSource(self)).map_err(WaitError::Poller)?;
        loop {
            // Raised between the look above and the registration, or reported by the poller.
            if self.take() {
                return Ok(());
            }
            registration.clear_readiness(Interest::READABLE);
            registration.wait(Interest::READABLE)?;
        }
    }

    fn attach(&self, waker: Shared<dyn RemoteWaker>) {
        // Dropped on return, outside the critical section: the last reference to a gone
        // poller's waker would run its destructor with interrupts masked.
        let _previous = critical_section::with(|cs| self.waker.borrow_ref_mut(cs).replace(waker));
    }
}

/// A queue of at most `N` values that interrupt handlers send on and greenlets receive from,
/// with no allocation: the slots are part of the channel, a `static`.
///
/// A send to a full channel fails and hands the value back, and the channel counts it
/// ([`refused`](Self::refused)): nothing is dropped without a trace.
///
/// ```
/// use gevent_embedded::isr::Channel;
///
/// static RX: Channel<u8, 16> = Channel::new();
///
/// // In the UART's interrupt handler:
/// if RX.try_send(b'x').is_err() {
///     // Full: the greenlet is behind. `RX.refused()` counts these.
/// }
///
/// // In a greenlet:
/// # fn greenlet() -> Result<(), gevent_embedded::isr::WaitError> {
/// let byte = RX.recv()?;
/// # Ok(())
/// # }
/// ```
pub struct Channel<T, const N: usize> {
    ring: Mutex<RefCell<Ring<T, N>>>,
    /// Raised by each send, so that a receiver parks on it.
    ready: Signal,
}

struct Ring<T, const N: usize> {
    slots: [Option<T>; N],
    /// The oldest value's slot.
    head: usize,
    len: usize,
    refused: usize,
}

impl<T, const N: usize> fmt::Debug for Channel<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (len, refused) = critical_section::with(|cs| {
            let ring = self.ring.borrow_ref(cs);
            (ring.len, ring.refused)
        });
        f.debug_struct("Channel")
            .field("len", &len)
            .field("capacity", &N)
            .field("refused", &refused)
            .finish()
    }
}

impl<T, const N: usize> Default for Channel<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> Channel<T, N> {
    /// An empty channel with room for `N` values.
    pub const fn new() -> Self {
        Channel {
            ring: Mutex::new(RefCell::new(Ring {
                slots: [const { None }; N],
                head: 0,
                len: 0,
                refused: 0,
            })),
            ready: Signal::new(),
        }
    }

    /// Queues `value` and wakes a receiver; from an interrupt handler or anywhere else.
    /// Allocates nothing and never blocks: when the channel holds `N` values already, it
    /// counts the refusal and gives `value` back in [`Full`].
    pub fn try_send(&self, value: T) -> Result<(), Full<T>> {
        critical_section::with(|cs| {
            let mut ring = self.ring.borrow_ref_mut(cs);
            if ring.len == N {
                ring.refused = ring.refused.wrapping_add(1);
                return Err(Full(value));
            }
            let tail = (ring.head + ring.len) % N;
            ring.slots[tail] = Some(value);
            ring.len += 1;
            drop(ring);
            self.ready.signal();
            Ok(())
        })
    }

    /// The oldest value, if there is one.
    pub fn try_recv(&self) -> Option<T> {
        self.pop().0
    }

    /// The oldest value, if there is one, and whether others remain.
    fn pop(&self) -> (Option<T>, bool) {
        critical_section::with(|cs| {
            let mut ring = self.ring.borrow_ref_mut(cs);
            if ring.len == 0 {
                return (None, false);
            }
            let head = ring.head;
            let value = ring.slots[head].take();
            ring.head = (head + 1) % N;
            ring.len -= 1;
            (value, ring.len > 0)
        })
    }

    /// Parks the calling greenlet until a value comes, and returns the oldest. Fails as
    /// [`Signal::wait`] does.
    pub fn recv(&'static self) -> Result<T, WaitError> {
        loop {
            if let (Some(value), more) = self.pop() {
                if more {
                    // Sends that came together raised `ready` once, and this receiver lowered
                    // it: raise it again for another parked receiver, or it would wait with
                    // values queued until the next send.
                    self.ready.signal();
                }
                return Ok(value);
            }
            // A send after the look above raises `ready`, so this returns at once.
            self.ready.wait()?;
        }
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        critical_section::with(|cs| self.ring.borrow_ref(cs).len)
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many sends it refused because it was full, since it was made (wrapping).
    pub fn refused(&self) -> usize {
        critical_section::with(|cs| self.ring.borrow_ref(cs).refused)
    }
}

/// A send to a full [`Channel`]: the value, given back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the channel is full: the value was not queued")
    }
}

impl<T> core::error::Error for Full<T> {}

/// Why a greenlet's wait on a [`Signal`] or [`Channel`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The greenlet was killed or its `Timeout` expired.
    Interrupted(Interrupted),
    /// The hub's poller does not watch signals: it was not installed by this crate's `init`
    /// or `init_net`.
    Poller(PollError),
}

impl From<Interrupted> for WaitError {
    fn from(e: Interrupted) -> Self {
        WaitError::Interrupted(e)
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Interrupted(e) => write!(f, "interrupted: {e}"),
            WaitError::Poller(e) => {
                write!(f, "the hub's poller cannot wait for interrupt signals: {e}")
            }
        }
    }
}

impl core::error::Error for WaitError {}

/// What a waiting greenlet registers with the poller: the signal it waits for.
struct SignalSource(&'static Signal);

/// The signals greenlets wait for, as a poller keeps them.
#[derive(Default)]
pub(crate) struct Signals {
    entries: Vec<Waiting>,
}

struct Waiting {
    /// The registered [`SignalSource`]'s address, which names the registration (its
    /// `IoRegistration` owns it, so no other source has that address while it is registered).
    source: *const SignalSource,
    signal: &'static Signal,
    token: Token,
    /// Reported readable and not cleared since.
    reported: bool,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals").field("waiting", &self.entries.len()).finish()
    }
}

fn as_signal(source: &dyn Any) -> Option<&SignalSource> {
    source.downcast_ref::<SignalSource>()
}

impl Signals {
    /// Registers `source` if it is a signal: `None` if it is not one.
    pub(crate) fn register(
        &mut self,
        source: &dyn Any,
        token: Token,
        waker: &Shared<dyn RemoteWaker>,
    ) -> Option<u64> {
        let s = as_signal(source)?;
        s.0.attach(Shared::clone(waker));
        let source = core::ptr::from_ref(s);
        self.entries.retain(|e| e.source != source);
        self.entries.push(Waiting { source, signal: s.0, token, reported: false });
        Some(core::ptr::from_ref(s.0) as usize as u64)
    }

    /// Forgets `source` if it is a signal: false if it is not one.
    pub(crate) fn deregister(&mut self, source: &dyn Any) -> bool {
        let Some(s) = as_signal(source) else { return false };
        let source = core::ptr::from_ref(s);
        self.entries.retain(|e| e.source != source);
        true
    }

    /// The hub forgot a signal's readiness: report it again once raised.
    pub(crate) fn readiness_cleared(&mut self, source: &dyn Any) -> bool {
        let Some(s) = as_signal(source) else { return false };
        let source = core::ptr::from_ref(s);
        for e in self.entries.iter_mut().filter(|e| e.source == source) {
            e.reported = false;
        }
        true
    }

    /// Reports each raised signal not reported yet; true if any was. Call it in the critical
    /// section that decides whether to sleep, so that a signal raised after it wakes the sleep.
    pub(crate) fn report_raised(&mut self, ready: &mut dyn FnMut(Token, Readiness)) -> bool {
        let mut any = false;
        for e in self.entries.iter_mut().filter(|e| !e.reported) {
            if e.signal.is_raised() {
                e.reported = true;
                ready(e.token, Readiness { readable: true, writable: false });
                any = true;
            }
        }
        any
    }
}
