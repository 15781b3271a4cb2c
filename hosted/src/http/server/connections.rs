//! The connections a server serves, each marked while it waits for its next request, so that
//! a graceful stop ends those at once. A connection registers once; marking it idle and busy
//! around every keep-alive wait is two stores, not a group insert and removal per request.

use std::cell::RefCell;

use gevent_core::GreenletRef;

/// The connections of one server.
#[derive(Default)]
pub(super) struct Connections {
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Entry>>,
    /// Indexes of `None` entries, reused before the vector grows.
    free: Vec<usize>,
}

struct Entry {
    greenlet: GreenletRef,
    idle: bool,
}

impl Connections {
    /// Registers the current greenlet as serving a connection until the slot is dropped.
    pub(super) fn register(&self) -> Slot<'_> {
        let entry = Entry { greenlet: gevent_core::current(), idle: false };
        let mut slots = self.slots.borrow_mut();
        let index = match slots.free.pop() {
            Some(index) => {
                slots.entries[index] = Some(entry);
                index
            }
            None => {
                slots.entries.push(Some(entry));
                slots.entries.len() - 1
            }
        };
        Slot { connections: self, index }
    }

    /// Kills the connections waiting for their next request, and waits for them to end.
    pub(super) fn kill_idle(&self) {
        // Collected first: a killed greenlet drops its slot, which borrows the table.
        let idle: Vec<GreenletRef> = self
            .slots
            .borrow()
            .entries
            .iter()
            .flatten()
            .filter(|entry| entry.idle)
            .map(|entry| entry.greenlet.clone())
            .collect();
        for greenlet in idle {
            let _ = greenlet.kill();
        }
    }
}

/// One registered connection; dropping it unregisters it.
pub(super) struct Slot<'a> {
    connections: &'a Connections,
    index: usize,
}

impl Slot<'_> {
    /// Marks the connection as waiting for its next request (`true`) or busy with one.
    pub(super) fn set_idle(&self, idle: bool) {
        if let Some(entry) = &mut self.connections.slots.borrow_mut().entries[self.index] {
            entry.idle = idle;
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut slots = self.connections.slots.borrow_mut();
        slots.entries[self.index] = None;
        slots.free.push(self.index);
    }
}
