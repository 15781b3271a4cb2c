//! `gevent::signal` with real signals sent to the process. Catching a signal changes the
//! process's disposition, so every scenario runs in a child process of its own: this test
//! binary itself, running the ignored test `child` with `GEVENT_SIGNAL_CHILD` set.

mod common;

use std::cell::Cell;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Output};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use gevent::event::Event;
use gevent::signal::{self, SIGCHLD, SIGUSR1, SIGUSR2};
use gevent::{Interrupted, Timeout, sleep, spawn, yield_now};

// ---- the scenarios, each run in its own child process ----

/// `wait` returns once a greenlet sends the signal; the sender runs while `wait` waits.
fn wait_for_a_greenlet() {
    let sender = spawn(|| signal::raise(SIGUSR1));
    signal::wait(SIGUSR1).unwrap();
    sender.take().unwrap().unwrap();
}

/// Another thread sends the signal, started once `wait` is waiting (the greenlet that starts
/// it runs only then); the handler may run on either thread.
fn wait_for_another_thread() {
    let starter = spawn(|| {
        std::thread::spawn(|| {
            let pid = rustix::process::getpid();
            rustix::process::kill_process(pid, rustix::process::Signal::USR1)
        })
    });
    signal::wait(SIGUSR1).unwrap();
    starter.take().unwrap().join().unwrap().unwrap();
}

/// The handler runs in a greenlet once per signal; each signal is sent after the handler ran
/// for the previous one, so that none merge.
fn handler_per_delivery() {
    let runs = Rc::new(Cell::new(0));
    let ran = Rc::new(Event::new());
    let (r, e) = (runs.clone(), ran.clone());
    let _guard = signal::signal_handler(SIGUSR2, move || {
        assert!(!gevent::current().is_main(), "the handler runs in a greenlet of its own");
        r.set(r.get() + 1);
        e.set();
    })
    .unwrap();
    for sent in 1..=5 {
        signal::raise(SIGUSR2).unwrap();
        ran.wait().unwrap();
        ran.clear();
        assert_eq!(runs.get(), sent);
    }
}

/// Two handlers for one signal; dropping one leaves the other, dropping both puts back the
/// default disposition, so the last SIGUSR1 ends the process.
fn drop_restores_default() {
    let ran = Rc::new(Event::new());
    let (a, b) = (ran.clone(), ran.clone());
    let first = signal::signal_handler(SIGUSR1, move || a.set()).unwrap();
    let second = signal::signal_handler(SIGUSR1, move || b.set()).unwrap();
    drop(first);
    signal::raise(SIGUSR1).unwrap();
    ran.wait().unwrap();
    println!("handled while one guard lived");
    drop(second);
    signal::raise(SIGUSR1).unwrap();
    // A signal sent to the process itself is delivered before `kill` returns when no thread
    // blocks it; the sleep only bounds the wait should it come a little later.
    sleep(Duration::from_secs(30)).unwrap();
    println!("still alive after the guards were dropped");
}

/// Uncatchable, fault and unknown signal numbers are refused, by both calls.
fn refusals() {
    for signum in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, 0, -1, 1000] {
        let err = signal::wait(signum).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{signum}: {err}");
        assert!(err.to_string().contains(&signum.to_string()), "{err}");
        let err = signal::signal_handler(signum, || {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{signum}: {err}");
    }
    let kill = signal::wait(libc::SIGKILL).unwrap_err().to_string();
    assert!(kill.contains("cannot be caught"), "{kill}");
}

/// A ticker keeps running while the main greenlet waits; it sends the signal at its fifth tick.
fn ticker_runs_while_waiting() {
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = spawn(move || {
        loop {
            sleep(Duration::from_millis(1))?;
            t.set(t.get() + 1);
            if t.get() == 5 {
                signal::raise(SIGUSR1).unwrap();
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), Interrupted>(())
    });
    signal::wait(SIGUSR1).unwrap();
    assert!(ticks.get() >= 5, "{} ticks", ticks.get());
    ticker.kill().unwrap();
}

/// A `Timeout` ends a wait with TimedOut carrying it, and the disposition goes back to the
/// default: the SIGUSR1 sent afterwards ends the process.
fn timeout_then_default() {
    let timeout = Timeout::start(Duration::from_millis(10));
    let err = signal::wait(SIGUSR1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
    drop(timeout);
    println!("the wait timed out");
    signal::raise(SIGUSR1).unwrap();
    sleep(Duration::from_secs(30)).unwrap();
    println!("still alive after the wait ended");
}

/// A kill ends a greenlet's wait with the kill.
fn kill_ends_wait() {
    let outcome = Rc::new(Cell::new(None));
    let o = outcome.clone();
    let waiter =
        spawn(move || o.set(Some(signal::wait(SIGUSR1).map_err(|e| Interrupted::try_from(&e)))));
    yield_now().unwrap();
    waiter.kill().unwrap();
    assert_eq!(outcome.take(), Some(Err(Ok(Interrupted::Killed))));
}

/// SIGCHLD wakes a `wait` and runs a handler when a child process exits.
fn sigchld() {
    let exited = Rc::new(Event::new());
    let e = exited.clone();
    let _guard = signal::signal_handler(SIGCHLD, move || e.set()).unwrap();
    let mut child = Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    assert!(child.wait().unwrap().success());

    let starter = spawn(|| Command::new("true").spawn());
    signal::wait(SIGCHLD).unwrap();
    assert!(starter.take().unwrap().unwrap().wait().unwrap().success());
}

/// Hubs of two threads wait for the same signal; one delivery wakes both.
fn two_hubs() {
    let (ready, is_ready) = mpsc::channel();
    let other = std::thread::spawn(move || {
        // Runs once this thread's `wait` is waiting.
        let _tell = spawn(move || ready.send(()));
        signal::wait(SIGUSR2)
    });
    is_ready.recv().unwrap();
    let sender = spawn(|| signal::raise(SIGUSR2));
    signal::wait(SIGUSR2).unwrap();
    sender.take().unwrap().unwrap();
    other.join().unwrap().unwrap();
}

/// Sends `signum` to the calling thread alone, which runs the process's handler before the call
/// returns (a signal sent to the process may be taken later, by another thread).
#[allow(unsafe_code)] // pthread_kill
fn raise_in_this_thread(signum: i32) {
    // SAFETY: `pthread_kill` takes the calling thread's own id, valid while it runs, and a
    // plain signal number; it touches no memory of ours.
    let sent = unsafe { libc::pthread_kill(libc::pthread_self(), signum) };
    assert_eq!(sent, 0, "pthread_kill({signum}) failed");
}

/// A delivery counted before a `wait` began, while a guard caught the signal, is the guard's:
/// the wait gets none of it, whether or not the dispatcher took it before the wait subscribed.
fn delivery_before_wait_is_not_the_waits() {
    let handled = Rc::new(Event::new());
    let h = handled.clone();
    let _guard = signal::signal_handler(SIGUSR1, move || h.set()).unwrap();
    raise_in_this_thread(SIGUSR1);
    let timeout = Timeout::start(Duration::from_millis(50));
    let err = signal::wait(SIGUSR1).unwrap_err();
    assert!(timeout.is(&err), "the wait got the earlier delivery or failed: {err}");
    drop(timeout);
    handled.wait().unwrap();
}

/// Hubs on four threads each catch SIGUSR2, raise it, see their handler run and drop the guard,
/// over and over: installs race restores and deliveries race subscriptions. A delivery under
/// the default disposition would end the process; one lost would leave a thread waiting.
fn guards_on_many_threads() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let _backstop = Timeout::start(Duration::from_secs(60));
                for _ in 0..200 {
                    let handled = Rc::new(Event::new());
                    let h = handled.clone();
                    let guard = signal::signal_handler(SIGUSR2, move || h.set()).unwrap();
                    raise_in_this_thread(SIGUSR2);
                    handled.wait().unwrap();
                    drop(guard);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
#[ignore = "a child process of the tests that need one"]
fn child() {
    let scenario = std::env::var(CHILD_ENV).unwrap_or_default();
    match scenario.as_str() {
        "wait-for-a-greenlet" => wait_for_a_greenlet(),
        "wait-for-another-thread" => wait_for_another_thread(),
        "handler-per-delivery" => handler_per_delivery(),
        "drop-restores-default" => drop_restores_default(),
        "refusals" => refusals(),
        "ticker-runs-while-waiting" => ticker_runs_while_waiting(),
        "timeout-then-default" => timeout_then_default(),
        "kill-ends-wait" => kill_ends_wait(),
        "sigchld" => sigchld(),
        "two-hubs" => two_hubs(),
        "delivery-before-wait" => delivery_before_wait_is_not_the_waits(),
        "guards-on-many-threads" => guards_on_many_threads(),
        other => panic!("unknown scenario {other:?}"),
    }
    println!("scenario done");
}

// ---- the tests: each runs a scenario in a child ----

const CHILD_ENV: &str = "GEVENT_SIGNAL_CHILD";

/// Runs a scenario in a child process (see [`common::run_child`]) and returns how it ended and
/// its stdout.
fn run_child(scenario: &str) -> (ExitStatus, String) {
    let Output { status, stdout, stderr } = common::run_child(CHILD_ENV, scenario);
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr);
    println!("child {scenario}: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (status, stdout)
}

/// Runs a scenario that must end normally.
fn passes(scenario: &str) {
    let (status, stdout) = run_child(scenario);
    assert!(status.success(), "child failed: {status}");
    assert!(stdout.contains("scenario done"), "{stdout}");
}

#[test]
fn wait_returns_when_a_greenlet_sends_the_signal() {
    passes("wait-for-a-greenlet");
}

#[test]
fn wait_returns_when_another_thread_sends_the_signal() {
    passes("wait-for-another-thread");
}

#[test]
fn a_handler_runs_in_a_greenlet_once_per_signal() {
    passes("handler-per-delivery");
}

#[test]
fn dropping_the_last_guard_restores_the_default_disposition() {
    let (status, stdout) = run_child("drop-restores-default");
    assert_eq!(status.signal(), Some(SIGUSR1), "{status}");
    assert!(stdout.contains("handled while one guard lived"), "{stdout}");
    assert!(!stdout.contains("still alive"), "{stdout}");
}

#[test]
fn uncatchable_fault_and_unknown_signals_are_refused() {
    passes("refusals");
}

#[test]
fn a_ticker_keeps_running_while_a_greenlet_waits_for_a_signal() {
    passes("ticker-runs-while-waiting");
}

#[test]
fn a_timeout_ends_wait_and_the_default_disposition_returns() {
    let (status, stdout) = run_child("timeout-then-default");
    assert_eq!(status.signal(), Some(SIGUSR1), "{status}");
    assert!(stdout.contains("the wait timed out"), "{stdout}");
    assert!(!stdout.contains("still alive"), "{stdout}");
}

#[test]
fn a_kill_ends_wait() {
    passes("kill-ends-wait");
}

#[test]
fn sigchld_wakes_wait_and_runs_handlers_when_a_child_exits() {
    passes("sigchld");
}

#[test]
fn one_signal_wakes_waiters_on_two_threads_hubs() {
    passes("two-hubs");
}

#[test]
fn a_delivery_before_a_wait_goes_to_the_guards_caught_it_not_to_the_wait() {
    passes("delivery-before-wait");
}

#[test]
fn guards_made_and_dropped_on_four_threads_lose_no_delivery() {
    passes("guards-on-many-threads");
}
