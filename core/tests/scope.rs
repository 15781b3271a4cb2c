//! `pool::scope` on the simulated hub: children joined, killed when the scope ends early,
//! borrowing from the caller's stack, and never outliving the scope, however it ends.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent_core::event::Event;
use gevent_core::pool::{ScopeError, scope};
use gevent_core::{FailureKind, Interrupted, Timeout, now, shield, sim, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

fn ms_now() -> u64 {
    now().as_nanos() / 1_000_000
}

#[test]
fn a_scope_joins_its_children_and_passes_the_first_error_up() {
    sim::run(|| {
        let done = Cell::new(0);
        let ok: Result<u8, ScopeError<&str>> = scope(|s| {
            for ms in [5, 15, 10] {
                let done = &done;
                s.spawn(move || {
                    sleep(ms * MS).map_err(|_| "killed")?;
                    done.set(done.get() + 1);
                    Ok(())
                });
            }
            Ok(7)
        });
        assert_eq!(ok, Ok(7));
        assert_eq!(done.get(), 3, "every child was joined");

        let killed = Cell::new(false);
        let failed: Result<(), ScopeError<&str>> = scope(|s| {
            s.spawn(|| {
                sleep(5 * MS).map_err(|_| "killed")?;
                Err("first")
            });
            s.spawn(|| {
                let r = sleep(Duration::from_secs(60));
                killed.set(r == Err(Interrupted::Killed));
                Ok(())
            });
            Ok(())
        });
        assert_eq!(failed, Err(ScopeError::Failed("first")));
        assert!(killed.get(), "the sibling was killed");
        assert_eq!(ms_now(), 20, "it ended at the failure, not after 60 s");

        let body_error: Result<(), ScopeError<&str>> = scope(|s| {
            let child = s.spawn(|| sleep(Duration::from_secs(60)).map_err(|_| "killed"));
            yield_now().unwrap();
            assert!(child.started());
            Err("body gave up")
        });
        assert_eq!(body_error, Err(ScopeError::Failed("body gave up")));
    });
}

#[test]
fn a_panicking_child_fails_its_scope() {
    sim::run(|| {
        let result: Result<(), ScopeError<()>> = scope(|s| {
            s.spawn(|| panic!("child panics"));
            Ok(())
        });
        match result {
            Err(ScopeError::Child(e)) => {
                assert_eq!(e.kind, FailureKind::Panicked("child panics".into()))
            }
            other => panic!("expected the child's panic, got {other:?}"),
        }
    });
}

#[test]
fn children_borrow_from_the_callers_stack() {
    sim::run(|| {
        let words = [String::from("gevent"), String::from("for"), String::from("rust")];
        let letters = Cell::new(0);
        let order = RefCell::new(Vec::new());
        let result: Result<(), ScopeError<()>> = scope(|s| {
            for (i, word) in words.iter().enumerate() {
                let (letters, order) = (&letters, &order);
                s.spawn(move || {
                    sleep((3 - i as u32) * MS).unwrap();
                    letters.set(letters.get() + word.len());
                    order.borrow_mut().push(word.as_str());
                    Ok(())
                });
            }
            Ok(())
        });
        assert_eq!(result, Ok(()));
        assert_eq!(letters.get(), 13);
        assert_eq!(*order.borrow(), ["rust", "for", "gevent"]);
    });
}

#[test]
fn a_panicking_body_kills_and_joins_its_children_before_the_panic_goes_on() {
    sim::run(|| {
        let ended = RefCell::new(None);
        let panicking_when_killed = Cell::new(None);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _: Result<(), ScopeError<()>> = scope(|s| {
                s.spawn(|| {
                    let r = sleep(HOUR);
                    panicking_when_killed.set(Some(std::thread::panicking()));
                    // It takes a while to end: the scope must wait for it.
                    shield(|| sleep(10 * MS)).unwrap();
                    *ended.borrow_mut() = Some(r);
                    Ok(())
                });
                yield_now().unwrap();
                panic!("the body panics");
            });
        }));
        let panic = caught.expect_err("the panic came through");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the body panics"));
        assert_eq!(*ended.borrow(), Some(Err(Interrupted::Killed)), "killed and joined first");
        assert_eq!(ms_now(), 10);
        assert_eq!(
            panicking_when_killed.get(),
            Some(false),
            "the children run while the panic is held, not during the unwinding"
        );
    });
}

#[test]
fn a_scope_killed_while_waiting_reports_the_kill_after_its_children_end() {
    sim::run(|| {
        let seen = Rc::new(RefCell::new(None));
        let s2 = seen.clone();
        let owner = spawn(move || {
            let finished = Cell::new(false);
            let result: Result<(), ScopeError<()>> = scope(|s| {
                s.spawn(|| {
                    let _ = sleep(HOUR);
                    shield(|| sleep(20 * MS)).unwrap();
                    finished.set(true);
                    Ok(())
                });
                Ok(())
            });
            *s2.borrow_mut() = Some((result, finished.get(), ms_now()));
        });
        sleep(5 * MS).unwrap();
        owner.kill().unwrap();
        let seen = seen.borrow_mut().take().expect("the owner got past its scope");
        assert_eq!(seen, (Err(ScopeError::Interrupted(Interrupted::Killed)), true, 25));
    });
}

#[test]
fn a_timeout_kills_the_children_and_a_timeout_expiring_meanwhile_is_not_lost() {
    sim::run(|| {
        let outer = Timeout::start(30 * MS);
        let inner = Timeout::start(10 * MS);
        let child_done = Cell::new(false);
        let result: Result<(), ScopeError<()>> = scope(|s| {
            s.spawn(|| {
                let _ = sleep(HOUR); // killed at 10 ms
                shield(|| sleep(40 * MS)).unwrap(); // and ends at 50 ms
                child_done.set(true);
                Ok(())
            });
            Ok(())
        });
        assert_eq!(result, Err(ScopeError::Interrupted(Interrupted::TimedOut(inner.id()))));
        assert!(child_done.get());
        assert_eq!(ms_now(), 50, "it waited for the killed child");
        // The outer timeout expired during that wait: the next blocking call reports it.
        assert_eq!(sleep(MS), Err(Interrupted::TimedOut(outer.id())));
    });
}

#[test]
fn children_spawned_while_the_scope_ends_are_killed_at_once() {
    sim::run(|| {
        let late_result = RefCell::new(None);
        let result: Result<(), ScopeError<&str>> = scope(|s| {
            s.spawn(|| {
                let _ = sleep(HOUR); // killed when the body fails
                s.spawn(|| {
                    *late_result.borrow_mut() = Some(sleep(HOUR));
                    Ok(())
                });
                Ok(())
            });
            yield_now().unwrap();
            Err("body failed")
        });
        assert_eq!(result, Err(ScopeError::Failed("body failed")));
        assert_eq!(*late_result.borrow(), None, "the late child was killed before it started");
        assert_eq!(ms_now(), 0);
    });
}

#[test]
fn hub_shutdown_inside_a_scope_abandons_stuck_children_and_the_scope_returns() {
    sim::run(|| {
        let rounds = Cell::new(0);
        let result: Result<&str, ScopeError<()>> = scope(|s| {
            s.spawn(|| {
                loop {
                    rounds.set(rounds.get() + 1);
                    let _ = shield(|| sleep(HOUR)); // ignores every kill
                }
            });
            yield_now().unwrap();
            gevent_core::hub::shutdown(); // abandons the child after its grace period
            Ok("returned")
        });
        assert_eq!(result, Ok("returned"));
        let rounds_then = rounds.get();
        sleep(2 * HOUR).unwrap();
        assert_eq!(rounds.get(), rounds_then, "the abandoned child never ran again");
    });
}

#[test]
fn a_scope_greenlet_abandoned_at_shutdown_takes_its_children_with_it() {
    sim::run(|| {
        let child_rounds = Rc::new(Cell::new(0));
        let rounds = child_rounds.clone();
        let owner = spawn(move || {
            let borrowed = [1, 2, 3];
            let _: Result<(), ScopeError<()>> = scope(|s| {
                s.spawn(|| {
                    loop {
                        rounds.set(rounds.get() + borrowed.len());
                        let _ = shield(|| sleep(HOUR));
                    }
                });
                Ok(())
            });
            unreachable!("the scope cannot end while its child runs");
        });
        sleep(MS).unwrap();
        gevent_core::hub::shutdown();
        assert!(owner.ready(), "abandoned");
        let then = child_rounds.get();
        sleep(2 * HOUR).unwrap();
        assert_eq!(child_rounds.get(), then, "the child never runs again");
    });
}

/// Runs this test binary again with only `test` and `GEVENT_SCOPE_CHILD` set, failing if it
/// runs for more than a minute (a hang must fail the test, not CI).
fn run_alone(test: &str) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("GEVENT_SCOPE_CHILD", "1")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test binary");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{test} hung");
        }
        std::thread::sleep(Duration::from_millis(10)); // polls the bound; orders nothing
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut stderr)
        .expect("read the child's stderr");
    (status, stderr)
}

#[test]
fn a_scope_whose_killed_children_can_never_end_aborts_rather_than_free_what_they_borrow() {
    if std::env::var_os("GEVENT_SCOPE_CHILD").is_some() {
        sim::run(|| {
            let never = Event::new();
            let _: Result<(), ScopeError<()>> = scope(|s| {
                s.spawn(|| {
                    let _ = shield(|| never.wait()); // deaf to kills, waits for nothing
                    Ok(())
                });
                yield_now().unwrap();
                Err(()) // the scope kills the child and waits for it
            });
        });
        unreachable!("the scope cannot return");
    }
    let (status, stderr) = run_alone(
        "a_scope_whose_killed_children_can_never_end_aborts_rather_than_free_what_they_borrow",
    );
    assert!(!status.success(), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(6), "aborted (SIGABRT): {stderr}");
    }
    assert!(stderr.contains("gevent: the scope at core/tests/scope.rs:"), "{stderr}");
    assert!(stderr.contains("cannot end"), "{stderr}");
    assert!(!stderr.contains("unreachable"), "{stderr}");
}
