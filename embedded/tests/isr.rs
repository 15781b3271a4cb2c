//! `isr::Signal` and `isr::Channel` on the host: another thread stands for the interrupt
//! handler, and the hub's idle hook only yields, so a lost wake-up would show as a hang (each
//! wait is bounded by a `Timeout`, which turns it into a failure).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use gevent_embedded::isr::{Channel, Full, Signal, WaitError};
use gevent_embedded::{Timeout, spawn};

const STACK: usize = 16 * 1024;
const BOUND: Duration = Duration::from_secs(20);

fn install() {
    common::plain_hub(2, STACK);
}

#[test]
fn every_signal_from_another_thread_wakes_the_waiting_greenlet() {
    static SIGNAL: Signal = Signal::new();
    install();
    let (ack, acked) = mpsc::channel();
    let handler = std::thread::spawn(move || {
        for _ in 0..500 {
            SIGNAL.signal();
            // The next signal only once this one was seen: none coalesces with another.
            acked.recv().expect("the greenlet acknowledges");
        }
    });
    let waiter = spawn(move || -> Result<u32, WaitError> {
        let _bound = Timeout::start(BOUND);
        let mut seen = 0;
        for _ in 0..500 {
            SIGNAL.wait()?;
            seen += 1;
            ack.send(()).expect("the handler thread waits for it");
        }
        Ok(seen)
    });
    assert_eq!(waiter.get(), Ok(Ok(500)));
    handler.join().unwrap();
    assert!(!SIGNAL.is_raised());
}

#[test]
fn a_full_channel_refuses_and_counts_and_a_parked_receiver_gets_the_next_value() {
    static VALUES: Channel<u32, 3> = Channel::new();
    install();
    for i in 0..3 {
        assert_eq!(VALUES.try_send(i), Ok(()));
    }
    assert_eq!(VALUES.try_send(99), Err(Full(99)));
    assert_eq!((VALUES.len(), VALUES.refused()), (3, 1));
    let drained: Vec<_> = std::iter::from_fn(|| VALUES.try_recv()).collect();
    assert_eq!(drained, [0, 1, 2]);

    let receiver = spawn(|| {
        let _bound = Timeout::start(BOUND);
        VALUES.recv()
    });
    let sender = std::thread::spawn(|| while VALUES.try_send(7).is_err() {});
    assert_eq!(receiver.get(), Ok(Ok(7)));
    sender.join().unwrap();
    assert!(VALUES.is_empty());
}

#[test]
fn a_wait_is_interrupted_by_a_timeout() {
    static NEVER: Signal = Signal::new();
    install();
    let _timeout = Timeout::start(Duration::from_millis(10));
    assert!(matches!(NEVER.wait(), Err(WaitError::Interrupted(_))));
}

#[test]
fn a_hub_whose_poller_does_not_watch_signals_says_so() {
    static SIGNAL: Signal = Signal::new();
    // No `init` on this thread: its hub is the host platform's, with an epoll/kqueue poller.
    let err = SIGNAL.wait().unwrap_err();
    assert!(matches!(err, WaitError::Poller(_)), "{err:?}");
    assert!(err.to_string().contains("cannot wait for interrupt signals"), "{err}");
}

#[test]
fn two_values_sent_at_once_reach_two_parked_receivers() {
    static VALUES: Channel<u32, 4> = Channel::new();
    install();
    let receive = || {
        spawn(|| {
            let _bound = Timeout::start(BOUND);
            VALUES.recv()
        })
    };
    let (first, second) = (receive(), receive());
    gevent_embedded::sleep(Duration::ZERO).unwrap(); // both park on the channel
    // One raise of `ready` for both: the receiver that lowers it must pass the second value on.
    assert_eq!((VALUES.try_send(1), VALUES.try_send(2)), (Ok(()), Ok(())));
    let mut got = [first.get().unwrap().unwrap(), second.get().unwrap().unwrap()];
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
}
