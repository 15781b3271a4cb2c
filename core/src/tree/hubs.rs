//! Every hub of the process: a registry that hubs join when they are created, and
//! [`all_hubs`], which asks each of them for its [`GreenletTree`].

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread::{self, ThreadId};
use std::time::Instant as StdInstant;

use super::GreenletTree;
use crate::remote::HubHandle;

/// A hub of the registry: its thread and a handle to post to it.
struct Entry {
    thread: ThreadId,
    thread_name: Option<String>,
    handle: HubHandle,
}

/// The hubs of the process. Entries of destroyed hubs are pruned when the next hub registers
/// and by the next [`all_hubs`], so a program that starts and ends many threads keeps about as
/// many entries as it has hubs.
static HUBS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Adds the current thread's hub, just created, to the registry.
pub(crate) fn register(handle: HubHandle) {
    let me = thread::current();
    let entry = Entry { thread: me.id(), thread_name: me.name().map(String::from), handle };
    let mut hubs = HUBS.lock().unwrap_or_else(PoisonError::into_inner);
    hubs.retain(|entry| !entry.handle.remote.is_closed());
    hubs.push(entry);
}

/// The tree of one hub of the process, as [`all_hubs`] got it.
#[derive(Debug)]
pub struct HubReport {
    /// The hub's thread.
    pub thread: ThreadId,
    /// The thread's name, if it has one.
    pub thread_name: Option<String>,
    /// Its tree, or why there is none.
    pub tree: Result<GreenletTree, NoAnswer>,
}

/// A hub that did not send its tree within the bound of [`all_hubs`]: its thread is blocked
/// (or busy in a greenlet that does not yield), or it was ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoAnswer {
    /// The bound it was given.
    pub within: Duration,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "did not answer within {:?} (its thread is blocked, or a greenlet runs without \
             yielding)",
            self.within
        )
    }
}

impl fmt::Display for HubReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.thread_name {
            Some(name) => write!(f, "thread '{name}' ({:?}), ", self.thread)?,
            None => write!(f, "thread {:?}, ", self.thread)?,
        }
        match &self.tree {
            Ok(tree) => write!(f, "{tree}"),
            Err(e) => writeln!(f, "hub: {e}"),
        }
    }
}

/// The greenlet trees of every hub of the process, the calling thread's first (taken
/// directly). Each other hub is asked through a [post](HubHandle::post) and has `within` to
/// answer, in all: one whose thread is blocked is reported as [`NoAnswer`] instead of holding
/// the caller. Hubs destroyed meanwhile are left out.
///
/// The calling thread waits for the answers without switching greenlets (for at most
/// `within`); two hubs that ask each other at the same moment both see the other not answer.
/// Each other hub's tree shows the greenlet that took it: a running `posted job`.
pub fn all_hubs(within: Duration) -> Vec<HubReport> {
    let me = thread::current().id();
    let deadline = StdInstant::now() + within;
    let mut asked = Vec::new();
    let mut reports = Vec::new();
    {
        let mut hubs = HUBS.lock().unwrap_or_else(PoisonError::into_inner);
        hubs.retain(|entry| {
            if entry.thread == me {
                // A thread has one hub at a time, and a later one registers again.
                return crate::hub::try_hub()
                    .is_some_and(|hub| Arc::ptr_eq(&hub.handle().remote, &entry.handle.remote));
            }
            let (tx, rx) = mpsc::channel();
            let posted = entry.handle.post(move || {
                let _ = tx.send(GreenletTree::current_hub());
            });
            if posted.is_err() {
                return false; // the hub is gone
            }
            asked.push((entry.thread, entry.thread_name.clone(), rx));
            true
        });
    }
    if crate::hub::try_hub().is_some() {
        let current = thread::current();
        reports.push(HubReport {
            thread: current.id(),
            thread_name: current.name().map(String::from),
            tree: Ok(GreenletTree::current_hub()),
        });
    }
    for (thread, thread_name, rx) in asked {
        let left = deadline.saturating_duration_since(StdInstant::now());
        let tree = match rx.recv_timeout(left) {
            Ok(tree) => Ok(tree),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(NoAnswer { within }),
            // The job was dropped unrun: the hub ended meanwhile.
            Err(mpsc::RecvTimeoutError::Disconnected) => continue,
        };
        reports.push(HubReport { thread, thread_name, tree });
    }
    reports
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;

    #[test]
    fn the_hubs_of_ended_threads_leave_the_registry() {
        let ended: Vec<ThreadId> = (0..20)
            .map(|_| {
                let thread = thread::spawn(|| {
                    crate::hub::install(crate::sim::platform().0).unwrap();
                    thread::current().id()
                });
                thread.join().unwrap()
            })
            .collect();
        let hubs = HUBS.lock().unwrap_or_else(PoisonError::into_inner);
        let left = hubs.iter().filter(|entry| ended.contains(&entry.thread)).count();
        // The last one's entry stays until the next hub registers or `all_hubs` looks.
        assert!(left <= 1, "{left} of 20 ended hubs are still registered");
    }
}
