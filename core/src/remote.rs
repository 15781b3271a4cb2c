//! Handing work to a hub from other threads (or interrupt handlers).
//!
//! [`HubHandle`] is the one `Send + Sync` way into a hub. Jobs go onto a lock-free
//! multi-producer stack ([`JobStack`]); the hub takes the whole stack at once and runs the jobs
//! in the order they were posted, each in a greenlet of its own. After pushing, a poster wakes the
//! hub's poller through the platform's [`RemoteWaker`], once per batch rather than once per job.
//!
//! # The post/wake protocol
//!
//! Before the hub sleeps in its poller it asks [`Remote::prepare_to_sleep`], which must never
//! let it sleep through a post (a lost wake-up) nor report "nothing is owed" while a
//! [`PendingPost`] is being kept (a spurious `LoopExit`). Three atomics carry the protocol:
//! `jobs` (what posters push), `pending` (promises not yet kept) and `notified` (some poster has
//! woken the poller since the hub last announced a sleep, so the others need not).
//!
//! Hub and posters meet on `notified`, and both sides change it with a read-modify-write, never
//! a plain store: the RMWs of one location are totally ordered, so each poster's swap comes
//! either after the hub's (it reads `false` and wakes the poller) or before it (the hub's
//! acquiring swap reads a `true` released after the poster's push and its promise update, so
//! the hub sees both). A plain store by the hub can land after a poster's swap without
//! synchronising with it; the hub then missed the job and the poster skipped the wake.
//!
//! The hub reads `pending` before its last look at `jobs`, and a kept promise is released only
//! after its job is pushed: a hub that sees the promise gone also sees the job.
//!
//! No `SeqCst` is needed, which also lets loom check the protocol (`remote/loom_tests.rs`, run
//! with `--cfg loom`): loom models acquire/release and RMWs exactly but treats `SeqCst` accesses
//! as `AcqRel`.
//!
//! On targets without compare-and-swap (Cortex-M0/M0+) the atomics are `portable-atomic`'s
//! ([`crate::shared`]), whose every access, loads and stores included, is a critical section:
//! all accesses are then totally ordered, which is more than the argument above asks for.
#![allow(unsafe_code)] // see the SAFETY comments

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::ptr;

// The protocol's atomics are loom's when it model-checks them, so that it sees and permutes
// every access.
#[cfg(not(all(test, loom)))]
use crate::shared::rmw::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
#[cfg(all(test, loom))]
use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::platform::RemoteWaker;
use crate::shared::Shared;

#[cfg(all(test, loom))]
mod loom_tests;

/// Work posted to a hub from another thread, with where it was posted (the spawn site of the
/// greenlet that runs it, for error reports and `LoopExit` pictures).
pub(crate) struct Job {
    pub(crate) run: Box<dyn FnOnce() + Send + 'static>,
    pub(crate) posted_at: &'static core::panic::Location<'static>,
}

impl Job {
    #[track_caller]
    pub(crate) fn new(run: impl FnOnce() + Send + 'static) -> Self {
        Job { run: Box::new(run), posted_at: core::panic::Location::caller() }
    }
}

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
    pub(crate) fn new() -> Self {
        JobStack { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Pushes `job`. Release publishes the node to the taker; acquire makes a push that lands
    /// after a [`take_all`](Self::take_all) see what the taker did before it ([`Remote::close`]
    /// relies on this).
    pub(crate) fn push(&self, job: Job) {
        let node = Box::into_raw(Box::new(Node { job, next: ptr::null_mut() }));
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` came from `Box::into_raw` above and is not shared until the CAS
            // below publishes it, so writing its `next` field is exclusive.
            unsafe { (*node).next = head };
            match self.head.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Relaxed) {
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
        let mut node = self.head.swap(ptr::null_mut(), Ordering::AcqRel);
        let mut jobs = Vec::new();
        while !node.is_null() {
            // SAFETY: the swap made this thread the only owner of the whole chain (any number
            // of threads may swap, each gets a disjoint chain); each node was created by
            // `Box::into_raw` in `push`, published by its CAS, whose release the acquiring swap
            // synchronises with, and is converted back exactly once here.
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

/// What [`Remote::prepare_to_sleep`] found: whether other threads keep the hub from sleeping,
/// or are what it sleeps for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SleepCheck {
    /// Jobs are queued: run them instead of sleeping.
    Posted,
    /// Nothing is queued but a [`PendingPost`] is outstanding, so the hub may sleep even with
    /// nothing else to wait for: keeping or dropping the promise wakes it.
    Promised,
    /// Nothing is queued or promised. The hub may sleep if something else can wake it (a post
    /// from now on does); otherwise nothing ever will.
    Nothing,
}

/// The part of a hub that other threads share. See the module docs for the protocol.
pub(crate) struct Remote {
    jobs: JobStack,
    /// Set by the poster that wakes the poller; cleared by the hub when it announces a sleep.
    notified: AtomicBool,
    /// Posts promised through [`PendingPost`] and not yet made: the hub must not report
    /// `LoopExit` while another thread still owes it work.
    pending: AtomicUsize,
    /// Set when the hub is gone; later posts fail.
    closed: AtomicBool,
    waker: Shared<dyn RemoteWaker>,
}

impl Remote {
    pub(crate) fn new(waker: Shared<dyn RemoteWaker>) -> Self {
        Remote {
            jobs: JobStack::new(),
            notified: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            waker,
        }
    }

    fn post(&self, job: Job) -> Result<(), PostError> {
        self.jobs.push(job);
        // Checked after the push: either `close` took this job, or the push landed after its
        // take and acquired from it the `closed` stored before. No job stays queued on a closed
        // hub. Relaxed: the push's acquire did the ordering.
        if self.closed.load(Ordering::Relaxed) {
            drop(self.jobs.take_all());
            return Err(PostError(()));
        }
        self.wake();
        Ok(())
    }

    /// Wakes the poller unless another poster did since the hub last announced a sleep.
    /// Release: a hub whose swap reads this `true` sees everything this thread did before.
    fn wake(&self) {
        if !self.notified.swap(true, Ordering::Release) {
            self.waker.wake();
        }
    }

    /// Called by the hub, with nothing runnable, just before it would sleep in its poller.
    ///
    /// Unless it returns [`SleepCheck::Posted`], this announces the sleep: any post or
    /// promise change after the call wakes the poller, and the hub must look at nothing
    /// remote again before it polls.
    pub(crate) fn prepare_to_sleep(&self) -> SleepCheck {
        if !self.jobs.is_empty() {
            return SleepCheck::Posted; // without clearing `notified`: no wake-up is needed
        }
        // Acquire: if a poster's swap came first, this reads its `true` (or a later one) and
        // sees its push and its promise update.
        self.notified.swap(false, Ordering::Acquire);
        // The promises before the jobs: a promise is kept after its job is pushed, and this
        // acquire load sees that push once it sees the promise gone.
        let promised = self.pending.load(Ordering::Acquire) > 0;
        if !self.jobs.is_empty() {
            SleepCheck::Posted
        } else if promised {
            SleepCheck::Promised
        } else {
            SleepCheck::Nothing
        }
    }

    /// Whether jobs were posted and not taken yet (a hint: a job posted meanwhile is seen by
    /// the next look).
    #[inline]
    pub(crate) fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Takes the jobs posted so far, oldest first; allocates nothing when there are none.
    pub(crate) fn take_jobs(&self) -> Vec<Job> {
        if self.jobs.is_empty() { Vec::new() } else { self.jobs.take_all() }
    }

    fn promise(&self) {
        // Relaxed: only this thread's later release of the promise needs ordering after it,
        // and the RMWs of one counter are ordered anyway.
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Release: a hub that reads the promise gone sees what this thread did before (its push).
    fn release_promise(&self) {
        self.pending.fetch_sub(1, Ordering::Release);
    }

    /// Refuses later posts and drops the queued jobs: the hub is going.
    #[cfg(any(feature = "std", test))]
    /// Refuses later posts and hands back the jobs posted and never run, for the hub to drop
    /// or (at thread exit, where running user code is unsafe) leak.
    pub(crate) fn close(&self) -> Vec<Job> {
        // Relaxed: the swap in `take_all` releases it to every push that lands after the swap,
        // and those posters check `closed` after pushing.
        self.closed.store(true, Ordering::Relaxed);
        self.jobs.take_all()
    }

    /// Whether the hub is gone ([`close`](Self::close) ran), for pruning registries of hubs.
    /// Relaxed: a stale `false` only keeps an entry until the next look.
    #[cfg(feature = "std")]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// A `Send + Sync` handle to a hub, for other threads: post work to it or wake it.
///
/// Get one with [`hub_handle`](crate::hub_handle). Posted jobs run on the hub's thread, each in
/// its own greenlet, in the order they were posted.
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) remote: Shared<Remote>,
}

impl fmt::Debug for HubHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubHandle").finish_non_exhaustive()
    }
}

impl HubHandle {
    /// Runs `job` on the hub's thread, in a new greenlet, as soon as the hub gets to it.
    ///
    /// Fails only if the hub has shut down; `job` is then dropped on the calling thread. A job
    /// posted before the hub shuts down and not yet run by then is dropped by the hub.
    #[track_caller]
    pub fn post(&self, job: impl FnOnce() + Send + 'static) -> Result<(), PostError> {
        self.remote.post(Job::new(job))
    }

    /// Wakes the hub if it is waiting in its poller, without giving it work.
    pub fn wake(&self) {
        self.remote.wake();
    }

    /// Promises a post: until the returned [`PendingPost`] is used or dropped, the hub knows
    /// that work is coming and does not report that the main greenlet would wait forever.
    ///
    /// Make the promise before the hub could find nothing else to wait for (typically on the
    /// hub's own thread, before handing the promise to the thread that keeps it).
    pub fn pending_post(&self) -> PendingPost {
        self.remote.promise();
        PendingPost { remote: Some(Shared::clone(&self.remote)) }
    }
}

/// A promise of one post to a hub; see [`HubHandle::pending_post`].
pub struct PendingPost {
    remote: Option<Shared<Remote>>,
}

impl fmt::Debug for PendingPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingPost").finish_non_exhaustive()
    }
}

impl PendingPost {
    /// Keeps the promise: runs `job` on the hub's thread in a new greenlet.
    ///
    /// Fails only if the hub has shut down, as [`HubHandle::post`] does.
    #[track_caller]
    pub fn post(mut self, job: impl FnOnce() + Send + 'static) -> Result<(), PostError> {
        let job = Job::new(job);
        let remote = self.remote.take().expect("a PendingPost is used once");
        // Push (and wake) before releasing the promise, so that the hub never sees neither.
        let result = remote.post(job);
        remote.release_promise();
        result
    }
}

impl Drop for PendingPost {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take() {
            remote.release_promise();
            // The hub may sleep only because of this promise: let it look again.
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::sync::Arc;
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
            stack.push(Job::new(move || log.lock().unwrap().push(i)));
        }
        for job in stack.take_all() {
            (job.run)();
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
                        stack.push(Job::new(move || {
                            sum.fetch_add(t * 100_000 + i, Ordering::SeqCst);
                        }));
                    }
                })
            })
            .collect();
        let mut ran = 0;
        while ran < 4 * per_thread {
            for job in stack.take_all() {
                (job.run)();
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
        stack.push(Job::new(move || drop(w)));
        drop(stack);
        assert_eq!(Arc::strong_count(&witness), 1);
    }

    fn remote() -> (Arc<Remote>, Arc<CountingWaker>) {
        let waker = Arc::new(CountingWaker::default());
        (Arc::new(Remote::new(waker.clone())), waker)
    }

    #[test]
    fn wakes_once_per_announced_sleep() {
        let (remote, waker) = remote();
        let handle = HubHandle { remote: remote.clone() };
        handle.post(|| {}).unwrap();
        handle.post(|| {}).unwrap();
        assert_eq!(waker.0.load(Ordering::SeqCst), 1, "second post finds the hub notified");
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Posted);
        assert_eq!(remote.take_jobs().len(), 2);
        handle.post(|| {}).unwrap();
        assert_eq!(waker.0.load(Ordering::SeqCst), 1, "no sleep announced since the last wake");
        drop(remote.take_jobs());
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Nothing);
        handle.wake();
        handle.wake();
        assert_eq!(waker.0.load(Ordering::SeqCst), 2, "one wake per announced sleep");
    }

    #[test]
    fn a_promise_is_owed_until_kept_or_dropped_and_each_wakes_the_hub() {
        let (remote, waker) = remote();
        let handle = HubHandle { remote: remote.clone() };
        let kept = handle.pending_post();
        let dropped = handle.pending_post();
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Promised);
        kept.post(|| {}).unwrap();
        assert_eq!(waker.0.load(Ordering::SeqCst), 1);
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Posted);
        assert_eq!(remote.take_jobs().len(), 1);
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Promised);
        drop(dropped);
        assert_eq!(waker.0.load(Ordering::SeqCst), 2);
        assert_eq!(remote.prepare_to_sleep(), SleepCheck::Nothing);
    }

    #[test]
    fn a_closed_hub_refuses_posts_and_hands_back_every_job() {
        let (remote, _) = remote();
        let handle = HubHandle { remote: remote.clone() };
        let witness = Arc::new(());
        let queued = witness.clone();
        handle.post(move || drop(queued)).unwrap();
        assert_eq!(remote.close().len(), 1, "close hands back the queued job");
        assert_eq!(Arc::strong_count(&witness), 1, "dropping what close handed back drops it");
        let refused = witness.clone();
        assert_eq!(handle.post(move || drop(refused)), Err(PostError(())));
        assert_eq!(Arc::strong_count(&witness), 1, "the refused job was dropped, not queued");
        assert!(remote.jobs.is_empty());
        assert_eq!(handle.pending_post().post(|| {}), Err(PostError(())));
        assert_eq!(remote.pending.load(Ordering::SeqCst), 0);
    }
}
