//! Cross-thread posts to the real hub, hammered: a post that races the hub's decision to sleep
//! in epoll must wake it, and a promise kept while the hub decides must never be reported as
//! `LoopExit`. The protocol itself is model-checked by loom in gevent-core; these run it on
//! the real poller. A hang is caught by a generous bounded wait, never by timing.

use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use gevent::event::Event;
use gevent::{PendingPost, hub_handle};

/// Far longer than any round trip takes; only a hub asleep with a job queued misses it.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Far longer than the whole ping-pong takes; a backstop in case even the final post is lost.
const RUN_WAIT: Duration = Duration::from_secs(300);

/// Sized to a few seconds in a debug build. Before the fix, about one round trip in 450,000
/// slept through its post.
const ROUND_TRIPS: u32 = 300_000;

/// About a second in a debug build. The old race needed the hub to be preempted between two
/// adjacent loads, which this rarely provokes: loom's model is what pins it; this keeps the
/// real hub honest.
const PROMISES: u32 = 100_000;

thread_local! {
    /// Set by a posted job on the hub's thread (each test runs on a thread of its own).
    static ARRIVED: Event = const { Event::new() };
}

fn arrive() {
    ARRIVED.with(Event::set);
}

/// Waits for a message without blocking in the kernel, so that the next post comes while the
/// hub is still deciding whether to sleep rather than long after it has. False if none came
/// within `limit`.
fn poll_until(messages: &mpsc::Receiver<()>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match messages.try_recv() {
            Ok(()) => return true,
            Err(TryRecvError::Empty) if Instant::now() < deadline => thread::yield_now(),
            Err(_) => return false,
        }
    }
}

#[test]
fn a_poster_ping_pongs_with_the_hub_without_a_lost_wake_up() {
    let handle = hub_handle();
    let poster = thread::spawn(move || {
        let (ack_tx, ack_rx) = mpsc::channel();
        let mut stalled = None;
        for round in 0..ROUND_TRIPS {
            let ack = ack_tx.clone();
            // After a stall the poster stops listening: a late ack goes nowhere.
            handle
                .post(move || {
                    let _ = ack.send(());
                })
                .expect("the hub is alive");
            if !poll_until(&ack_rx, ACK_WAIT) {
                stalled = Some(round);
                break;
            }
        }
        // Also after a stall: the hub then sleeps with the notification cleared, so this post
        // wakes it and the main greenlet can report.
        handle.post(arrive).expect("the hub is alive");
        stalled
    });
    // The wait's timer keeps the hub from reporting LoopExit between posts; it sleeps in
    // epoll until each post wakes it.
    let arrived = ARRIVED.with(|done| done.wait_timeout(RUN_WAIT)).expect("nothing kills main");
    let stalled = poster.join().expect("the poster does not panic");
    assert_eq!(
        stalled, None,
        "round trip got no ack within {ACK_WAIT:?}: the hub slept in epoll with the job queued"
    );
    assert!(arrived, "the final post did not wake the hub within {RUN_WAIT:?}");
}

#[test]
fn a_promise_kept_while_the_hub_decides_to_sleep_is_never_a_loop_exit() {
    let handle = hub_handle();
    let (promises, to_keep) = mpsc::channel::<PendingPost>();
    let (acks, arrivals) = mpsc::channel::<()>();
    let keeper = thread::spawn(move || {
        for round in 0..PROMISES {
            // Spin rather than block, so that the post lands while the hub is still deciding
            // whether to sleep or report LoopExit, and a little later each round.
            let promise = loop {
                match to_keep.try_recv() {
                    Ok(promise) => break promise,
                    Err(TryRecvError::Empty) => thread::yield_now(),
                    Err(TryRecvError::Disconnected) => return None, // main failed
                }
            };
            for _ in 0..round % 32 {
                std::hint::spin_loop();
            }
            promise.post(arrive).expect("the hub is alive");
            match arrivals.recv_timeout(ACK_WAIT) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => {
                    // The hub sleeps with the job queued: wake it so that the test ends.
                    handle.wake();
                    return Some(round);
                }
                Err(RecvTimeoutError::Disconnected) => return None, // main failed
            }
        }
        None
    });
    for round in 0..PROMISES {
        // Made here, before main waits: only the promise keeps the hub from LoopExit.
        if promises.send(hub_handle().pending_post()).is_err() {
            break; // the keeper saw a stall and stopped
        }
        let arrived = ARRIVED.with(|arrived| {
            let result = arrived.wait();
            arrived.clear();
            result
        });
        if let Err(e) = arrived {
            panic!("round {round}: the hub reported a kept promise as: {e}");
        }
        if acks.send(()).is_err() {
            break;
        }
    }
    let stalled = keeper.join().expect("the keeper does not panic");
    assert_eq!(stalled, None, "round got no arrival within {ACK_WAIT:?}: a lost wake-up");
}

/// A posted job runs in a greenlet whose spawn site is the `post` call, so that its errors,
/// panic reports and `LoopExit` entries point at the code that posted it.
#[test]
fn a_posted_jobs_greenlet_names_the_post_as_its_spawn_site() {
    let (sites, seen) = mpsc::channel();
    let handle = hub_handle();
    let promise = handle.pending_post();
    let post_line = line!() + 3;
    let poster = thread::spawn(move || {
        let s = sites.clone();
        handle.post(move || s.send(gevent::current().spawned_at()).unwrap()).unwrap();
        promise.post(move || sites.send(gevent::current().spawned_at()).unwrap()).unwrap();
    });
    poster.join().unwrap();
    let mut got: Vec<&std::panic::Location<'static>> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < deadline {
        gevent::sleep(Duration::from_millis(1)).unwrap(); // the hub runs the posted jobs
        got.extend(seen.try_iter());
    }
    assert_eq!(got.len(), 2, "both jobs ran");
    for (site, line) in got.iter().zip([post_line, post_line + 1]) {
        assert_eq!((site.file(), site.line()), (file!(), line), "{site}");
    }
}
