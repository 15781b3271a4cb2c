//! I/O registrations: the hub's side of edge-triggered readiness.
//!
//! An adapter (a socket type) registers its source once. The hub remembers the readiness that
//! the poller reported; an operation that meets `WouldBlock` clears it with
//! [`IoRegistration::clear_readiness`] and waits with [`IoRegistration::wait`]. Events are
//! processed only while the greenlet is switched out, so no readiness is lost between the
//! failed operation and the clearing.

use core::fmt;

use super::{Hub, hub};
use crate::error::Interrupted;
use crate::greenlet::task::{TaskRef, WaitKind};
use crate::platform::{Interest, PollError, RawSource, Readiness, Token};
use crate::slab::Key;
use crate::wait_list::WaitList;

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

/// A source registered with the current thread's hub; deregistered when dropped.
///
/// This is the building block of cooperative I/O types: try the non-blocking operation, and on
/// `WouldBlock` call [`clear_readiness`](Self::clear_readiness) then [`wait`](Self::wait).
pub struct IoRegistration {
    key: Key,
    source: RawSource,
}

impl fmt::Debug for IoRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoRegistration").field("source", &self.source).finish()
    }
}

impl IoRegistration {
    /// Registers `source` with the hub's poller for both readable and writable readiness.
    pub fn new(source: RawSource) -> Result<Self, PollError> {
        let hub = hub();
        let key = hub.io.borrow_mut().insert(IoEntry {
            readiness: Readiness::default(),
            readers: WaitList::new(),
            writers: WaitList::new(),
        });
        let registered =
            hub.poller().borrow_mut().register(source, Token(key.to_bits()), Interest::BOTH);
        if let Err(e) = registered {
            hub.io.borrow_mut().remove(key);
            return Err(e);
        }
        Ok(IoRegistration { key, source })
    }

    /// The source this registration watches.
    pub fn source(&self) -> RawSource {
        self.source
    }

    /// The readiness remembered since it was last cleared.
    pub fn readiness(&self) -> Readiness {
        hub().io.borrow().get(self.key).map(|e| e.readiness).unwrap_or_default()
    }

    /// Forgets readiness after an operation met `WouldBlock`.
    pub fn clear_readiness(&self, interest: Interest) {
        let hub = hub();
        hub.poller().borrow_mut().readiness_cleared(self.source, interest);
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
    pub fn wait(&self, interest: Interest) -> Result<(), Interrupted> {
        let hub = hub();
        let readable = interest.is_readable();
        loop {
            let ready = self.readiness();
            if (readable && ready.readable) || (!readable && ready.writable) {
                return Ok(());
            }
            let me = hub.current();
            let waiter = {
                let mut io = hub.io.borrow_mut();
                let Some(entry) = io.get_mut(self.key) else { return Ok(()) };
                if readable { entry.readers.push_back(me) } else { entry.writers.push_back(me) }
            };
            let parked = hub.park(WaitKind::Io { source: self.source.0, readable });
            if let Err(e) = parked {
                if let Some(entry) = hub.io.borrow_mut().get_mut(self.key) {
                    let list = if readable { &mut entry.readers } else { &mut entry.writers };
                    list.remove(waiter);
                }
                return Err(e);
            }
        }
    }
}

impl Drop for IoRegistration {
    fn drop(&mut self) {
        let hub = hub();
        let entry = hub.io.borrow_mut().remove(self.key);
        // A failure here means the source is already gone from the poller (closed), which is
        // what deregistering wanted.
        let _ = hub.poller().borrow_mut().deregister(self.source);
        if let Some(entry) = entry {
            // Waiters (other greenlets using the source) wake and meet the closed source.
            for t in entry.readers.drain_all().chain(entry.writers.drain_all()) {
                hub.unpark(&t);
            }
        }
    }
}
