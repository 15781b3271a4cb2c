//! The post/wake protocol under loom, which runs each model in every interleaving and with every
//! value each atomic load may return (as far as loom models the memory model: acquire, release
//! and read-modify-writes exactly, `SeqCst` accesses as `AcqRel`).
//!
//! The hub is the model's main thread: it makes one sleep decision with
//! [`Remote::prepare_to_sleep`] while other threads post, keep or drop promises. Its poller's
//! wake-up source (an eventfd) is a flag that [`RemoteWaker::wake`] sets and a poll consumes:
//! a hub that decides to sleep sleeps forever unless the flag is set once the posters are done.
//!
//! Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p gevent-core
//! --features std --lib loom` (the "loom" step of `cargo xtask test`).

use super::*;
use alloc::sync::Arc;
use loom::thread;

/// The poller's wake-up source.
struct Eventfd {
    readable: AtomicBool,
}

impl RemoteWaker for Eventfd {
    fn wake(&self) {
        self.readable.store(true, Ordering::Release);
    }
}

impl Eventfd {
    /// What a poll does: reports a wake-up that came since the last poll, and consumes it.
    fn poll(&self) -> bool {
        self.readable.swap(false, Ordering::Acquire)
    }
}

/// A hub that has run one batch already: its poster set `notified` and the hub's poll consumed
/// the wake-up, which leaves the stale `true` behind that a poster racing the next sleep sees.
fn hub_after_one_batch() -> (Arc<Remote>, Arc<Eventfd>) {
    let eventfd = Arc::new(Eventfd { readable: AtomicBool::new(false) });
    let remote = Arc::new(Remote::new(eventfd.clone()));
    remote.post(Job::new(|| {})).expect("the hub is open");
    assert!(eventfd.poll());
    assert_eq!(remote.take_jobs().len(), 1);
    (remote, eventfd)
}

#[test]
fn a_post_racing_the_sleep_decision_is_taken_or_wakes_the_hub() {
    loom::model(|| {
        let (remote, eventfd) = hub_after_one_batch();
        let handle = HubHandle { remote: remote.clone() };
        let poster = thread::spawn(move || handle.post(|| {}).expect("the hub is open"));
        let check = remote.prepare_to_sleep();
        poster.join().unwrap();
        match check {
            SleepCheck::Posted => assert_eq!(remote.take_jobs().len(), 1),
            // A hub that sleeps here has a timer or I/O to sleep on.
            SleepCheck::Nothing => {
                assert!(eventfd.poll(), "lost wake-up: the hub sleeps with a job queued")
            }
            SleepCheck::Promised => panic!("no promise was made"),
        }
    });
}

#[test]
fn two_posters_racing_the_sleep_decision_leave_no_job_unseen() {
    loom::model(|| {
        let (remote, eventfd) = hub_after_one_batch();
        let posters: Vec<_> = (0..2)
            .map(|_| {
                let handle = HubHandle { remote: remote.clone() };
                thread::spawn(move || handle.post(|| {}).expect("the hub is open"))
            })
            .collect();
        let check = remote.prepare_to_sleep();
        for poster in posters {
            poster.join().unwrap();
        }
        match check {
            SleepCheck::Posted => {}
            SleepCheck::Nothing => {
                assert!(eventfd.poll(), "lost wake-up: the hub sleeps with jobs queued")
            }
            SleepCheck::Promised => panic!("no promise was made"),
        }
        assert_eq!(remote.take_jobs().len(), 2);
    });
}

#[test]
fn a_promise_kept_during_the_sleep_decision_is_never_missed() {
    loom::model(|| {
        let (remote, eventfd) = hub_after_one_batch();
        let promise = HubHandle { remote: remote.clone() }.pending_post();
        let poster = thread::spawn(move || promise.post(|| {}).expect("the hub is open"));
        let check = remote.prepare_to_sleep();
        poster.join().unwrap();
        match check {
            SleepCheck::Posted => {}
            SleepCheck::Promised => {
                assert!(eventfd.poll(), "lost wake-up: the promised job came without a wake-up")
            }
            SleepCheck::Nothing => {
                panic!("the hub saw neither the job nor the promise: a spurious LoopExit")
            }
        }
        assert_eq!(remote.take_jobs().len(), 1);
    });
}

#[test]
fn a_promise_dropped_during_the_sleep_decision_wakes_a_hub_that_waits_for_it() {
    loom::model(|| {
        let (remote, eventfd) = hub_after_one_batch();
        let promise = HubHandle { remote: remote.clone() }.pending_post();
        let dropper = thread::spawn(move || drop(promise));
        let check = remote.prepare_to_sleep();
        dropper.join().unwrap();
        match check {
            SleepCheck::Posted => panic!("nothing was posted"),
            SleepCheck::Promised => assert!(
                eventfd.poll(),
                "lost wake-up: the hub sleeps for a promise that was dropped"
            ),
            SleepCheck::Nothing => {} // a LoopExit is right: nothing is owed
        }
    });
}

#[test]
fn a_post_racing_close_is_refused_or_dropped_by_the_close() {
    loom::model(|| {
        let eventfd = Arc::new(Eventfd { readable: AtomicBool::new(false) });
        let remote = Arc::new(Remote::new(eventfd));
        let witness = Arc::new(());
        let handle = HubHandle { remote: remote.clone() };
        let job_witness = witness.clone();
        let poster = thread::spawn(move || handle.post(move || drop(job_witness)));
        drop(remote.close());
        let _ = poster.join().unwrap();
        assert_eq!(Arc::strong_count(&witness), 1, "a job stays queued on a closed hub");
    });
}
