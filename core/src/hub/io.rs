//! I/O registrations: the hub's side of edge-triggered readiness.
//!
//! An adapter (a socket type) registers its source once. The hub remembers the readiness that
//! the poller reported; an operation that meets `WouldBlock` clears it with
//! [`IoRegistration::clear_readiness`] and waits with [`IoRegistration::wait`]. Events are
//! processed only while the greenlet is switched out, so no readiness is lost between the
//! failed operation and the clearing.
//!
//! Why a registration owns its source and stays on its thread is argued on [`IoRegistration`].

use alloc::format;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr;

use super::{Hub, current_hub_ptr, hub};
use crate::error::Interrupted;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::platform::{Interest, PollError, Readiness, Token};
use crate::remote::Remote;
use crate::shared::Shared;
use crate::slab::{Key, Slab};
use crate::wait_list::{WaitList, WaiterKey};

pub(crate) struct IoEntry {
    readiness: Readiness,
    readers: WaitList<TaskRef>,
    writers: WaitList<TaskRef>,
}

/// Wakes the waiters of a source that became ready.
pub(super) fn dispatch(hub: &Hub, key: Key, readiness: Readiness) {
    // Waking only queues greenlets on the run queue, so it can happen under the borrow.
    let mut io = hub.io.borrow_mut();
    let Some(entry) = io.get_mut(key) else { return }; // deregistered meanwhile
    if readiness.readable {
        entry.readiness.readable = true;
        while let Some(t) = entry.readers.pop_front() {
            hub.unpark(&t);
        }
    }
    if readiness.writable {
        entry.readiness.writable = true;
        while let Some(t) = entry.writers.pop_front() {
            hub.unpark(&t);
        }
    }
}

/// A source registered with the current thread's hub, which it owns; deregistered when dropped.
///
/// This is the building block of cooperative I/O types: try the non-blocking operation on
/// [`source`](Self::source), and on `WouldBlock` call [`clear_readiness`](Self::clear_readiness)
/// then [`wait`](Self::wait). Which source types a hub accepts is up to its poller: an
/// `OwnedFd` (convert a std socket or pipe with `OwnedFd::from`) on hosted platforms, a
/// `sim::SimSource` on the simulated one.
///
/// It belongs to the hub of the thread that made it and cannot leave that thread:
///
/// ```compile_fail,E0277
/// # use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml
/// fn assert_send<T: Send>() {}
/// assert_send::<gevent::hub::IoRegistration<()>>();
/// ```
///
/// # Why it owns its source and stays on its thread
///
/// A poller goes on naming a source between calls (epoll and kqueue by its fd number), so the
/// source must stay open, and stay the same object, from registration until deregistration;
/// and the hub entry a registration points to means something only in the hub that made it.
/// Three choices make both hold whatever safe code does:
///
/// - **It owns its source.** [`source`](IoRegistration::source) lends it by shared reference
///   only, and [`into_inner`](IoRegistration::into_inner) and `Drop` deregister it before they
///   let go of it, so nothing can close or replace it while it is registered. An fd number
///   held by a registration therefore always names that registration's own file, and a number
///   that was closed and reused belongs to a source that is no longer registered anywhere. A
///   borrowing registration would not do: `mem::forget` ends a borrow without deregistering.
///   Sockets own their descriptor anyway, so a socket is a registration plus socket methods
///   (`rustix::net::recv(reg.source(), ..)`).
/// - **Pollers get the source itself, not a number.** They see it as `&dyn Any` for the length
///   of each call and downcast it to the types they watch (`OwnedFd` on hosted platforms). The
///   other way, a core type with an `unsafe` constructor from a raw number wrapped by safe
///   constructors in the platform crates, would leave raw numbers in the [`Poller`] trait,
///   which is public and reachable through [`with_poller`](crate::hub::with_poller): every
///   poller would have to trust numbers from any caller, and a number does not say which
///   poller it is for (an fd number handed to the smoltcp poller names one of its sockets).
///   This way no poller trusts anything, and epoll needs no `unsafe` code at all.
/// - **It is `!Send` and `!Sync`**, because its entry lives in the hub of the thread that made
///   it. It also remembers which hub that is: if the thread's hub is another one by the time it
///   is used (or there is none, as while the thread exits), it touches neither that hub's
///   entries nor a poller that is gone. [`wait`](IoRegistration::wait) then fails with
///   [`Interrupted::Deadlock`], since nothing can ever report readiness for it, and dropping it
///   only drops the source (its registration went with the hub's poller).
///
/// [`Poller`]: crate::platform::Poller
pub struct IoRegistration<S: Any> {
    source: S,
    key: Key,
    /// The poller's name for the source, for reports of what a greenlet waits on.
    label: u64,
    /// Identifies the hub by its `Remote`, whose address no later hub can reuse while this
    /// lives (a hub pointer could be reused by a later hub).
    hub: HubId,
    _one_thread: PhantomData<*const ()>,
}

/// A `Weak` keeps the allocation of the hub's `Remote`, and so its address, from being reused.
#[cfg(target_has_atomic = "ptr")]
type HubId = alloc::sync::Weak<Remote>;
/// Without compare-and-swap a hub's `Remote` is leaked (see [`crate::shared`]): never reused.
#[cfg(not(target_has_atomic = "ptr"))]
type HubId = Shared<Remote>;

#[cfg(target_has_atomic = "ptr")]
fn hub_id(remote: &Shared<Remote>) -> HubId {
    Shared::downgrade(remote)
}

#[cfg(not(target_has_atomic = "ptr"))]
fn hub_id(remote: &Shared<Remote>) -> HubId {
    remote
}

#[cfg(target_has_atomic = "ptr")]
fn is_hub(id: &HubId, remote: &Shared<Remote>) -> bool {
    ptr::eq(Shared::as_ptr(remote), id.as_ptr())
}

#[cfg(not(target_has_atomic = "ptr"))]
fn is_hub(id: &HubId, remote: &Shared<Remote>) -> bool {
    ptr::eq(*remote, *id)
}

// Fails to compile if `IoRegistration` is `Send` or `Sync` (two candidate impls make the path
// below ambiguous); `()` is both, so only the registration itself could make it so.
const _: fn() = || {
    trait AmbiguousIfSendOrSync<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSendOrSync<()> for T {}
    struct IfSend;
    impl<T: ?Sized + Send> AmbiguousIfSendOrSync<IfSend> for T {}
    struct IfSync;
    impl<T: ?Sized + Sync> AmbiguousIfSendOrSync<IfSync> for T {}
    let _ = <IoRegistration<()> as AmbiguousIfSendOrSync<_>>::some_item;
};

impl<S: Any + fmt::Debug> fmt::Debug for IoRegistration<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRegistration").field("source", &self.source).finish_non_exhaustive()
    }
}

impl<S: Any> IoRegistration<S> {
    /// Registers `source` with the current thread's hub for both readable and writable
    /// readiness. On failure (a source type the poller does not watch, or an OS error) the
    /// source is dropped.
    pub fn new(source: S) -> Result<Self, PollError> {
        let hub = hub();
        let key = hub.io.borrow_mut().insert(IoEntry {
            readiness: Readiness::default(),
            readers: WaitList::new(),
            writers: WaitList::new(),
        });
        let registered =
            hub.poller().borrow_mut().register(&source, Token(key.to_bits()), Interest::BOTH);
        match registered {
            Ok(label) => Ok(IoRegistration {
                source,
                key,
                label,
                hub: hub_id(&hub.remote),
                _one_thread: PhantomData,
            }),
            Err(e) => {
                hub.io.borrow_mut().remove(key);
                Err(e)
            }
        }
    }

    /// The source, to run operations on.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Deregisters the source and gives it back.
    pub fn into_inner(self) -> S {
        // Deregistering first: should it panic, `this` is leaked, never dropped twice.
        let this = ManuallyDrop::new(self);
        this.deregister();
        // SAFETY: `this` is never dropped or used again, so each owned field is moved out
        // exactly once; the others (`key`, `label`, the marker) own nothing.
        #[allow(unsafe_code)]
        let (source, _hub) = unsafe { (ptr::read(&this.source), ptr::read(&this.hub)) };
        source
    }

    /// The readiness remembered since it was last cleared (none if its hub is gone).
    pub fn readiness(&self) -> Readiness {
        let Some(hub) = self.own_hub() else { return Readiness::default() };
        hub.io.borrow().get(self.key).map(|e| e.readiness).unwrap_or_default()
    }

    /// Forgets readiness after an operation met `WouldBlock`.
    pub fn clear_readiness(&self, interest: Interest) {
        let Some(hub) = self.own_hub() else { return };
        hub.poller().borrow_mut().readiness_cleared(&self.source, interest);
        if let Some(entry) = hub.io.borrow_mut().get_mut(self.key) {
            if interest.is_readable() {
                entry.readiness.readable = false;
            }
            if interest.is_writable() {
                entry.readiness.writable = false;
            }
        }
    }

    /// Parks the current greenlet until the source is ready for `interest` (readable if it
    /// asks for both), or returns at once if it already is.
    ///
    /// Fails with [`Interrupted::Deadlock`] if the hub it was registered with is no longer the
    /// thread's hub (it was destroyed at thread exit): no readiness can ever come.
    pub fn wait(&self, interest: Interest) -> Result<(), Interrupted> {
        let readable = interest.is_readable();
        let Some(hub) = self.own_hub() else { return Err(self.gone(readable)) };
        loop {
            let waiter = {
                let mut io = hub.io.borrow_mut();
                let Some(entry) = io.get_mut(self.key) else { return Err(self.gone(readable)) };
                let ready = entry.readiness;
                if (readable && ready.readable) || (!readable && ready.writable) {
                    return Ok(());
                }
                let list = if readable { &mut entry.readers } else { &mut entry.writers };
                list.push_back(hub.current())
            };
            let parked = hub.park(WaitKind::Io { source: self.label, readable });
            if let Err(e) = parked {
                if let Some(entry) = hub.io.borrow_mut().get_mut(self.key) {
                    let list = if readable { &mut entry.readers } else { &mut entry.writers };
                    list.remove(waiter);
                }
                return Err(e);
            }
        }
    }

    /// Parks the current greenlet until any of `waits` is ready for its interest (either
    /// direction counts for [`Interest::BOTH`]), or returns at once if one already is: the
    /// wait of `select`, one park for many sources. Which one is ready is for the caller to
    /// find out, from [`readiness`](Self::readiness) or by trying its operations.
    ///
    /// With no sources it parks until interrupted (a `Timeout`, a kill, or the hub finding
    /// that nothing can wake it). Fails with [`Interrupted::Deadlock`] if a registration's hub
    /// is no longer the thread's hub, as [`wait`](Self::wait) does.
    pub fn wait_any(waits: &[(&Self, Interest)]) -> Result<(), Interrupted> {
        let hub = hub();
        let label = waits.first().map_or(0, |(reg, _)| reg.label);
        let readable = waits.first().is_none_or(|(_, interest)| interest.is_readable());
        let mut queued = Vec::with_capacity(waits.len());
        loop {
            {
                let mut io = hub.io.borrow_mut();
                for &(reg, interest) in waits {
                    let entry = match reg.own_hub() {
                        Some(_) => io.get_mut(reg.key),
                        None => None,
                    };
                    let Some(entry) = entry else {
                        Self::leave(&mut io, &mut queued);
                        return Err(reg.gone(interest.is_readable()));
                    };
                    let ready = entry.readiness;
                    if (interest.is_readable() && ready.readable)
                        || (interest.is_writable() && ready.writable)
                    {
                        Self::leave(&mut io, &mut queued);
                        return Ok(());
                    }
                    if interest.is_readable() {
                        queued.push((reg.key, true, entry.readers.push_back(hub.current())));
                    }
                    if interest.is_writable() {
                        queued.push((reg.key, false, entry.writers.push_back(hub.current())));
                    }
                }
            }
            let parked = hub.park(WaitKind::Io { source: label, readable });
            // The source that woke it popped its waiter already; the others still hold one.
            Self::leave(&mut hub.io.borrow_mut(), &mut queued);
            parked?;
        }
    }

    /// Takes the waiters `wait_any` queued out of their lists.
    fn leave(io: &mut Slab<IoEntry>, queued: &mut Vec<(Key, bool, WaiterKey)>) {
        for (key, readers, waiter) in queued.drain(..) {
            if let Some(entry) = io.get_mut(key) {
                let list = if readers { &mut entry.readers } else { &mut entry.writers };
                list.remove(waiter);
            }
        }
    }

    /// The thread's hub if it is the one this registration belongs to; never creates a hub.
    fn own_hub(&self) -> Option<&'static Hub> {
        if current_hub_ptr().is_null() {
            return None;
        }
        let hub = hub();
        is_hub(&self.hub, &hub.remote).then_some(hub)
    }

    fn gone(&self, readable: bool) -> Interrupted {
        let direction = if readable { "readable" } else { "writable" };
        Interrupted::Deadlock(format!(
            "a wait for I/O source {} to be {direction}: it was registered with a hub that is gone",
            self.label
        ))
    }

    fn deregister(&self) {
        // With its hub gone, so is the poller it was registered with.
        let Some(hub) = self.own_hub() else { return };
        // No greenlet waits on the entry: each waiter borrows the registration for its whole
        // wait. (One abandoned at shutdown while waiting is never resumed: its handle just goes.)
        let entry = hub.io.borrow_mut().remove(self.key);
        // It fails only if someone deregistered the source directly (through `with_poller`),
        // which leaves it where deregistering wanted it.
        let _ = hub.poller().borrow_mut().deregister(&self.source);
        drop(entry);
    }
}

impl<S: Any> Drop for IoRegistration<S> {
    fn drop(&mut self) {
        self.deregister();
    }
}
