//! Handing work to a hub from other threads (or interrupt handlers).
//!
//! [`HubHandle`] is the one `Send + Sync` way into a hub. Jobs go onto a lock-free
//! multi-producer stack ([`JobStack`]); the hub takes the whole stack at once and runs the jobs
//! in the order they were posted, each in a greenlet of its own. After pushing, a poster wakes the
//! hub's poller through the platform's [`RemoteWaker`], once per batch rather than once per job.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::platform::RemoteWaker;

/// Work posted to a hub from another thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

struct Node {
    job: Job,
    next: *mut Node,
}

/// A Treiber stack that many threads push onto and one consumer empties in one swap.
///
/// Only whole-stack removal is offered, which sidesteps the ABA problem of popping one node.
pub(crate) struct JobStack {
    head: AtomicPtr<Node>,
}

// SAFETY: the raw nodes are only reachable through the atomic head; a node is owned by exactly
// one party at a time (the pusher until its CAS succeeds, then the stack, then the consumer that
// swapped the head out), and jobs are `Send`.
unsafe impl Send for JobStack {}
// SAFETY: as for `Send`: all shared access goes through the atomic head.
unsafe impl Sync for JobStack {}

impl JobStack {
    pub(crate) const fn new() -> Self {
        JobStack { head: AtomicPtr::new(ptr::null_mut()) }
    }

    pub(crate) fn push(&self, job: Job) {
        let node = Box::into_raw(Box::new(Node { job, next: ptr::null_mut() }));
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from `Box::into_raw` above and is not shared until the CAS
            // below publishes it, so writing its `next` field is exclusive.
            unsafe { (*node).next = head };
            match self.head.compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Takes every job pushed so far, oldest first.
    pub(crate) fn take_all(&self) -> Vec<Job> {
        let mut node = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        let mut jobs = Vec::new();
        while !node.is_null() {
            // SAFETY: the swap made this thread the only owner of the whole chain; each node was
            // created by `Box::into_raw` in `push` and is converted back exactly once here.
            let boxed = unsafe { Box::from_raw(node) };
            node = boxed.next;
            jobs.push(boxed.job);
        }
        jobs.reverse();
        jobs
    }
}

impl Drop for JobStack {
    fn drop(&mut self) {
        drop(self.take_all());
    }
}

impl fmt::Debug for JobStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobStack").field("empty", &self.is_empty()).finish()
    }
}

/// The part of a hub that other threads share.
pub(crate) struct Remote {
    pub(crate) jobs: JobStack,
    /// Set by a poster that woke the poller; cleared by the hub before it takes the jobs.
    notified: AtomicBool,
    /// Posts promised through [`PendingPost`] and not yet made: the hub must not report
    /// `LoopExit` while another thread still owes it work.
    pub(crate) pending: AtomicUsize,
    /// Set when the hub is gone; later posts fail.
    closed: AtomicBool,
    waker: Arc<dyn RemoteWaker>,
}

impl Remote {
    pub(crate) fn new(waker: Arc<dyn RemoteWaker>) -> Self {
        Remote {
            jobs: JobStack::new(),
            notified: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            waker,
        }
    }

    fn post(&self, job: Job) -> Result<(), PostError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PostError(()));
        }
        self.jobs.push(job);
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Called by the hub before it drains the jobs, so that a later post wakes it again.
    pub(crate) fn clear_notified(&self) {
        self.notified.store(false, Ordering::Release);
    }

    #[cfg(any(feature = "std", test))]
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A `Send + Sync` handle to a hub, for other threads: post work to it or wake it.
///
/// Get one with [`hub_handle`](crate::hub_handle). Posted jobs run on the hub's thread, each in
/// its own greenlet, in the order they were posted.
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) remote: Arc<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle").finish_non_exhaustive()
    }
}

impl HubHandle {
    /// Runs `job` on the hub's thread, in a new greenlet, as soon as the hub gets to it.
    ///
    /// Fails only if the hub has shut down.
    pub fn post(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PostError> {
        self.remote.post(Box::new(job))
    }

    /// Wakes the hub if it is waiting in its poller, without giving it work.
    pub fn wake(&self) {
        self.remote.wake();
    }

    /// Promises a post: until the returned [`PendingPost`] is used or dropped, the hub knows
    /// that work is coming and does not report that the main greenlet would wait forever.
    pub fn pending_post(&self) -> PendingPost {
        self.remote.pending.fetch_add(1, Ordering::AcqRel);
        PendingPost { remote: Some(self.remote.clone()) }
    }
}

/// A promise of one post to a hub; see [`HubHandle::pending_post`].
pub struct PendingPost {
    remote: Option<Arc<Remote>>,
}

impl fmt::Debug for PendingPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPost").finish_non_exhaustive()
    }
}

impl PendingPost {
    /// Keeps the promise: runs `job` on the hub's thread in a new greenlet.
    pub fn post(mut self, job: impl FnOnce() + Send + 'static) -> Result<(), PostError> {
        let remote = self.remote.take().expect("a PendingPost is used once");
        // Push before releasing the promise so that the hub never sees neither.
        let result = remote.post(Box::new(job));
        remote.pending.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

impl Drop for PendingPost {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take() {
            remote.pending.fetch_sub(1, Ordering::AcqRel);
            // The hub may be waiting only because of this promise: let it look again.
            remote.wake();
        }
    }
}

/// The hub a post was addressed to has shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostError(());

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the hub has shut down and takes no more posts")
    }
}

impl core::error::Error for PostError {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);
    impl RemoteWaker for CountingWaker {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn jobs_come_out_in_push_order() {
        let stack = JobStack::new();
        let log = Arc::new(std::sync::Mutex::new(vec![]));
        for i in 0..5 {
            let log = log.clone();
            stack.push(Box::new(move || log.lock().unwrap().push(i)));
        }
        for job in stack.take_all() {
            job();
        }
        assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(stack.is_empty());
    }

    #[test]
    fn concurrent_pushers_lose_nothing() {
        let stack = Arc::new(JobStack::new());
        let sum = Arc::new(AtomicUsize::new(0));
        let per_thread = if cfg!(miri) { 20 } else { 2000 };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (stack, sum) = (stack.clone(), sum.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let sum = sum.clone();
                        stack.push(Box::new(move || {
                            sum.fetch_add(t * 100_000 + i, Ordering::SeqCst);
                        }));
                    }
                })
            })
            .collect();
        let mut ran = 0;
        while ran < 4 * per_thread {
            for job in stack.take_all() {
                job();
                ran += 1;
            }
            std::thread::yield_now();
        }
        for t in threads {
            t.join().unwrap();
        }
        let expected: usize =
            (0..4).map(|t| (0..per_thread).map(|i| t * 100_000 + i).sum::<usize>()).sum();
        assert_eq!(sum.load(Ordering::SeqCst), expected);
    }

    #[test]
    fn unrun_jobs_are_dropped_with_the_stack() {
        let witness = Arc::new(());
        let stack = JobStack::new();
        let w = witness.clone();
        stack.push(Box::new(move || drop(w)));
        drop(stack);
        assert_eq!(Arc::strong_count(&witness), 1);
    }

    #[test]
    fn wakes_once_per_batch_and_tracks_promises() {
        let waker = Arc::new(CountingWaker::default());
        let handle = HubHandle { remote: Arc::new(Remote::new(waker.clone())) };
        handle.post(|| {}).unwrap();
        handle.post(|| {}).unwrap();
        assert_eq!(waker.0.load(Ordering::SeqCst), 1, "second post finds the hub notified");
        handle.remote.clear_notified();
        let promise = handle.pending_post();
        assert_eq!(handle.remote.pending.load(Ordering::SeqCst), 1);
        promise.post(|| {}).unwrap();
        assert_eq!(handle.remote.pending.load(Ordering::SeqCst), 0);
        assert_eq!(handle.remote.jobs.take_all().len(), 3);
        drop(handle.pending_post());
        assert_eq!(handle.remote.pending.load(Ordering::SeqCst), 0);
        handle.remote.close();
        assert_eq!(handle.post(|| {}), Err(PostError(())));
    }
}
