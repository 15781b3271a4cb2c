//! The `SIGCHLD` fallback, which Linux with pidfd never picks on its own, forced on children
//! spawned normally.
//!
//! `SIGCHLD` is process-wide: a child of one test would wake the waiters of another, and could
//! hide a lost wake-up there. So these tests, the only unit tests that start children, run one
//! at a time.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};

use super::Command;
use super::exit::ExitWatch;
use super::exit::sigchld_exit::waiters;
use crate::{Interrupted, Timeout};

/// Fails the test instead of hanging it if a wake-up is lost.
fn backstop() -> Timeout {
    Timeout::start(Duration::from_secs(60))
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static CHILDREN: Mutex<()> = Mutex::new(());
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn the_fallback_waits_for_exit_and_survives_a_timeout() {
    let _one_at_a_time = one_at_a_time();
    crate::run(|| {
        let _backstop = backstop();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.use_sigchld_fallback();
        assert_eq!(child.wait_timeout(Duration::from_millis(10)).unwrap(), None);
        assert_eq!(waiters(), 0, "SIGCHLD is not caught while nothing waits");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9));

        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        child.use_sigchld_fallback();
        assert_eq!(child.wait().unwrap().code(), Some(3));
        assert_eq!(waiters(), 0);
    });
}

/// Twenty greenlets wait at once on one subscription; the children all exit together, so
/// their SIGCHLDs merge, and each waiter must still find its own child.
#[test]
fn twenty_children_are_waited_for_at_once() {
    let _one_at_a_time = one_at_a_time();
    crate::run(|| {
        let _backstop = backstop();
        // Each child reads this pipe to its end, which comes when the last write end closes:
        // ours (the children do not inherit it: std makes it close-on-exec).
        let (reader, writer) = std::io::pipe().unwrap();
        let waiting: Vec<_> = (0..20)
            .map(|code| {
                let mut child = Command::new("sh")
                    .args(["-c", "cat > /dev/null; exit $1", "sh", &code.to_string()])
                    .stdin(Stdio::from(reader.try_clone().unwrap()))
                    .spawn()
                    .unwrap();
                child.use_sigchld_fallback();
                (code, crate::spawn(move || child.wait()))
            })
            .collect();
        drop(reader);
        crate::yield_now().unwrap();
        assert_eq!(waiters(), 20, "every greenlet waits before any child exits");
        drop(writer);
        for (code, waiter) in waiting {
            assert_eq!(waiter.take().unwrap().unwrap().code(), Some(code));
        }
        assert_eq!(waiters(), 0);
    });
}

#[test]
fn a_timeout_interrupts_a_fallback_wait_and_the_child_can_be_waited_again() {
    let _one_at_a_time = one_at_a_time();
    crate::run(|| {
        let _backstop = backstop();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.use_sigchld_fallback();
        let timeout = Timeout::start(Duration::from_millis(10));
        let err = child.wait().unwrap_err();
        assert!(timeout.is(&err), "{err}");
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(Interrupted::try_from(&err).is_ok());
        drop(timeout);
        assert_eq!(waiters(), 0, "the interrupted wait let SIGCHLD go");
        assert_eq!(child.try_wait().unwrap(), None, "the child is unaffected");

        // Waited again, in another greenlet, until the signal that ends it.
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        let waiter = crate::spawn(move || child.wait().map(|status| status.signal()));
        crate::yield_now().unwrap();
        assert_eq!(waiters(), 1);
        kill_process(pid, Signal::KILL).unwrap();
        assert_eq!(waiter.take().unwrap().unwrap(), Some(9));
        assert_eq!(waiters(), 0);
    });
}

/// A child whose SIGCHLD came before anything caught it: the first look, after subscribing,
/// finds it, instead of waiting for a SIGCHLD that never comes.
#[test]
fn a_child_that_exited_before_the_wait_is_found() {
    let _one_at_a_time = one_at_a_time();
    crate::run(|| {
        let _backstop = backstop();
        let mut child = Command::new("sh").args(["-c", "exit 5"]).spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        // Blocks the thread until the child has exited, leaving it unreaped.
        waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT).unwrap();
        let status = ExitWatch::Sigchld.wait_until(|| child.try_wait()).unwrap();
        assert_eq!(status.code(), Some(5));
        assert_eq!(waiters(), 0);

        let mut child = Command::new("true").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32).unwrap();
        waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT).unwrap();
        child.use_sigchld_fallback();
        assert!(child.wait().unwrap().success());
    });
}
