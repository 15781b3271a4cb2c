//! Greenlet semantics pinned on the simulated hub (virtual time, reproducible schedules):
//! spawning, joining, killing, linking, panics and `LoopExit`.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::sim;
use gevent_core::{
    Builder, FailureKind, GetError, Interrupted, JoinAll, JoinAllError, Timeout, current, joinall,
    killall, now, shield, sleep, spawn, spawn_later, yield_now,
};

const MS: Duration = Duration::from_millis(1);

fn log() -> Rc<RefCell<Vec<String>>> {
    Rc::new(RefCell::new(Vec::new()))
}

#[test]
fn spawned_greenlets_start_in_spawn_order_once_the_spawner_yields() {
    sim::run(|| {
        let trace = log();
        let gs: Vec<_> = (0..5)
            .map(|i| {
                let trace = trace.clone();
                spawn(move || trace.borrow_mut().push(format!("g{i}")))
            })
            .collect();
        trace.borrow_mut().push("spawner still running".into());
        yield_now().unwrap();
        trace.borrow_mut().push("spawner again".into());
        joinall(&gs).unwrap();
        assert_eq!(
            *trace.borrow(),
            ["spawner still running", "g0", "g1", "g2", "g3", "g4", "spawner again"]
        );
    });
}

#[test]
fn yield_now_goes_to_the_back_of_the_run_queue() {
    sim::run(|| {
        let trace = log();
        let worker = |name: &'static str| {
            let trace = trace.clone();
            spawn(move || {
                for i in 0..3 {
                    trace.borrow_mut().push(format!("{name}{i}"));
                    yield_now().unwrap();
                }
            })
        };
        let (a, b) = (worker("a"), worker("b"));
        joinall(&[a, b]).unwrap();
        assert_eq!(*trace.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
    });
}

#[test]
fn join_waits_for_the_end_and_get_returns_the_value() {
    sim::run(|| {
        let g = spawn(|| {
            sleep(50 * MS).unwrap();
            42
        });
        assert!(!g.ready());
        g.join().unwrap();
        assert!(g.ready() && g.dead() && g.successful() && g.started());
        assert_eq!(now().as_nanos(), 50_000_000, "the join returned when the sleep ended");
        assert_eq!(g.get(), Ok(42));
        assert_eq!(g.get(), Ok(42), "get can be called again");
        assert_eq!(g.take(), Ok(42));
        assert_eq!(g.take(), Err(GetError::Taken));
    });
}

#[test]
fn kill_of_a_sleeping_greenlet_makes_its_sleep_fail_and_get_reports_killed() {
    sim::run(|| {
        let seen = Rc::new(RefCell::new(None));
        let seen2 = seen.clone();
        let g = spawn(move || {
            let r = sleep(Duration::from_secs(3600));
            *seen2.borrow_mut() = Some(r.clone());
            r
        });
        sleep(10 * MS).unwrap(); // let it start sleeping
        g.kill().unwrap();
        assert_eq!(*seen.borrow(), Some(Err(Interrupted::Killed)));
        // A plain kill is a cancellation, not a failure (as in gevent).
        assert!(g.ready() && g.killed() && g.successful() && g.error().is_none());
        let err = g.get().unwrap_err();
        let GetError::Killed(e) = err else { panic!("expected Killed, got {err:?}") };
        assert_eq!(e.kind, FailureKind::Killed);
        assert_eq!(e.id, g.id());
        assert!(e.to_string().contains("was killed"), "{e}");
        assert!(e.to_string().contains(file!()), "the error names the spawn site: {e}");
        assert!(now().as_nanos() < 3_600_000_000_000, "the kill did not wait out the sleep");
    });
}

#[test]
fn a_killed_greenlet_releases_its_raii_guards() {
    sim::run(|| {
        struct Guard(Rc<Cell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let released = Rc::new(Cell::new(false));
        let r = released.clone();
        let g = spawn(move || -> Result<(), Interrupted> {
            let _guard = Guard(r);
            sleep(Duration::from_secs(10))?;
            unreachable!("the sleep is killed");
        });
        yield_now().unwrap();
        assert!(!released.get());
        g.kill().unwrap();
        assert!(released.get());
    });
}

#[test]
fn a_kill_is_sticky_outside_shields() {
    sim::run(|| {
        let results = log();
        let r = results.clone();
        let g = spawn(move || {
            for _ in 0..3 {
                r.borrow_mut().push(format!("{:?}", sleep(Duration::from_secs(1))));
            }
        });
        yield_now().unwrap();
        g.kill().unwrap();
        assert_eq!(*results.borrow(), ["Err(Killed)", "Err(Killed)", "Err(Killed)"]);
    });
}

#[test]
fn a_shield_holds_back_a_kill_until_it_ends_but_a_timeout_still_bounds_it() {
    sim::run(|| {
        let results = log();
        let r = results.clone();
        let g = spawn(move || {
            let cleanup = shield(|| sleep(100 * MS));
            r.borrow_mut().push(format!("shielded: {cleanup:?}"));
            let bounded = shield(|| {
                let t = Timeout::start(10 * MS);
                let r = sleep(Duration::from_secs(100));
                (r, t.id())
            });
            r.borrow_mut().push(format!(
                "bounded timed out: {}",
                bounded.0 == Err(Interrupted::TimedOut(bounded.1))
            ));
            r.borrow_mut().push(format!("after: {:?}", sleep(MS)));
        });
        sleep(MS).unwrap();
        g.kill().unwrap();
        assert_eq!(
            *results.borrow(),
            ["shielded: Ok(())", "bounded timed out: true", "after: Err(Killed)"]
        );
        assert_eq!(now().as_nanos(), 110_000_000);
    });
}

#[test]
fn kill_timeout_returns_even_when_the_target_ignores_the_kill() {
    sim::run(|| {
        // A target that drops every error and loops is tested on the real clock (hosted): on
        // the simulated one, time does not pass while greenlets are busy.
        let shielded = spawn(|| {
            loop {
                let _ = shield(|| sleep(Duration::from_secs(1)));
            }
        });
        yield_now().unwrap();
        assert_eq!(shielded.kill_timeout(50 * MS), Ok(false));
        assert!(!shielded.ready());
        assert_eq!(now().as_nanos(), 50_000_000);
    });
}

#[test]
fn killing_an_unstarted_greenlet_skips_its_body_but_runs_its_links_once() {
    sim::run(|| {
        let ran = Rc::new(Cell::new(false));
        let links = Rc::new(Cell::new(0));
        let r = ran.clone();
        let g = spawn(move || r.set(true));
        let l = links.clone();
        g.link(move |g| {
            assert!(g.ready());
            l.set(l.get() + 1)
        });
        g.kill().unwrap();
        assert!(g.ready() && !g.started());
        assert!(matches!(g.get(), Err(GetError::Killed(e)) if e.kind == FailureKind::Killed));
        assert!(g.killed() && g.error().is_none());
        sleep(10 * MS).unwrap();
        assert!(!ran.get(), "the body never ran");
        assert_eq!(links.get(), 1);
    });
}

#[test]
fn a_spawn_later_killed_before_its_time_never_runs() {
    sim::run(|| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let g = spawn_later(Duration::from_secs(1), move || r.set(true));
        sleep(500 * MS).unwrap();
        g.kill().unwrap();
        sleep(Duration::from_secs(2)).unwrap();
        assert!(!ran.get());
    });
}

#[test]
fn links_run_in_the_order_added_and_late_links_still_run() {
    sim::run(|| {
        let trace = log();
        let g = spawn(|| 7);
        for i in 0..3 {
            let t = trace.clone();
            g.link(move |g| t.borrow_mut().push(format!("link{i}: {:?}", g.get())));
        }
        let t = trace.clone();
        g.link_exception(move |_| t.borrow_mut().push("exception link".into()));
        let t = trace.clone();
        g.link_value(move |_| t.borrow_mut().push("value link".into()));
        g.join().unwrap();
        sleep(MS).unwrap();
        let t = trace.clone();
        g.link(move |_| t.borrow_mut().push("late link".into()));
        sleep(MS).unwrap();
        assert_eq!(
            *trace.borrow(),
            ["link0: Ok(7)", "link1: Ok(7)", "link2: Ok(7)", "value link", "late link"]
        );
    });
}

#[test]
fn a_panic_fails_only_its_greenlet_and_get_reports_it() {
    sim::run(|| {
        let survivor_done = Rc::new(Cell::new(false));
        let s = survivor_done.clone();
        let survivor = spawn(move || {
            sleep(20 * MS).unwrap();
            s.set(true);
        });
        let bad = Builder::new().name("doomed").spawn(|| -> u32 {
            sleep(10 * MS).unwrap();
            panic!("boom {}", 42)
        });
        let err = bad.get().unwrap_err();
        let GetError::Failed(e) = &err else { panic!("{err:?}") };
        assert_eq!(e.kind, FailureKind::Panicked("boom 42".into()));
        assert_eq!(e.name, "doomed");
        assert!(e.to_string().contains("'doomed'") && e.to_string().contains("panicked: boom 42"));
        survivor.join().unwrap();
        assert!(survivor_done.get());
    });
}

#[test]
fn joinall_with_a_timeout_returns_the_finished_subset() {
    sim::run(|| {
        let gs: Vec<_> =
            [30, 10, 1000, 20].into_iter().map(|ms| spawn(move || sleep(ms * MS))).collect();
        let done = JoinAll::new(&gs).timeout(25 * MS).wait().unwrap();
        assert_eq!(done, [1, 3]);
        assert_eq!(now().as_nanos(), 25_000_000);
        killall(&gs).unwrap();
        assert!(gs.iter().all(|g| g.ready()));
    });
}

#[test]
fn joinall_raise_error_reports_the_first_failure_in_time_not_in_the_list() {
    sim::run(|| {
        let late = spawn(|| {
            // Killed at the end of the test, when the hub shuts down.
            if sleep(20 * MS).is_ok() {
                panic!("late failure")
            }
        });
        let ok = spawn(|| sleep(5 * MS).unwrap());
        let early = spawn(|| {
            sleep(10 * MS).unwrap();
            panic!("early failure")
        });
        let err = JoinAll::new(&[late.to_ref(), ok.to_ref(), early.to_ref()])
            .raise_error(true)
            .wait()
            .unwrap_err();
        match err {
            JoinAllError::Failed { index, error } => {
                assert_eq!(index, 2);
                assert_eq!(error.kind, FailureKind::Panicked("early failure".into()));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(now().as_nanos(), 10_000_000, "it stopped at the first failure");
    });
}

#[test]
fn spawn_later_runs_no_earlier_than_asked() {
    sim::run(|| {
        sleep(3 * MS).unwrap();
        let asked = now();
        let g = spawn_later(250 * MS, now);
        let started = g.get().unwrap();
        assert!(started >= asked + 250 * MS, "{started:?} < {asked:?} + 250ms");
    });
}

#[test]
fn a_hundred_thousand_greenlets_sleeping_random_durations_wake_in_deadline_order() {
    sim::run(|| {
        const N: u64 = 100_000;
        let woke = Rc::new(RefCell::new(Vec::with_capacity(N as usize)));
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let gs: Vec<_> = (0..N)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let delay = Duration::from_micros(rng % 1_000_000);
                let woke = woke.clone();
                Builder::new().stack_size(64 * 1024).spawn(move || {
                    sleep(delay).unwrap();
                    woke.borrow_mut().push((now(), delay, i));
                })
            })
            .collect();
        joinall(&gs).unwrap();
        let woke = woke.borrow();
        assert_eq!(woke.len(), N as usize, "every greenlet woke");
        for (at, delay, _) in woke.iter() {
            assert_eq!(at.as_nanos(), delay.as_nanos() as u64, "each woke at its own deadline");
        }
        for pair in woke.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!((a.1, a.2) < (b.1, b.2), "deadline order (spawn order among equals)");
        }
    });
}

#[test]
fn waiting_on_nothing_returns_loop_exit_with_a_wait_for_picture() {
    sim::run(|| {
        let main = current();
        let waiter = Builder::new().name("waits-for-main").spawn(move || main.join());
        let err = waiter.join().unwrap_err();
        let Interrupted::LoopExit(report) = &err else { panic!("expected LoopExit, got {err:?}") };
        assert!(report.main_waits_on.contains("'waits-for-main'"), "{err}");
        assert_eq!(report.parked.len(), 1);
        assert_eq!(report.parked[0].name, "waits-for-main");
        assert!(report.parked[0].waits_on.contains("'main'"), "{err}");
        let text = err.to_string();
        assert!(text.contains("would block forever") && text.contains(file!()), "{text}");
        assert!(current().join().is_err(), "joining oneself is refused, not a hang");
    });
}

#[test]
fn sleep_of_an_hour_takes_no_real_time_on_the_simulated_hub() {
    sim::run(|| {
        let wall = std::time::Instant::now();
        sleep(Duration::from_secs(3600)).unwrap();
        assert_eq!(now().as_nanos(), 3_600_000_000_000);
        assert!(wall.elapsed() < Duration::from_secs(60));
    });
}

#[test]
fn a_busy_run_queue_does_not_starve_timers() {
    sim::run(|| {
        let flag = Rc::new(Cell::new(false));
        let spinner = |flag: Rc<Cell<bool>>| {
            spawn(move || {
                let mut turns = 0u64;
                while !flag.get() {
                    yield_now().unwrap();
                    turns += 1;
                }
                turns
            })
        };
        let (a, b) = (spinner(flag.clone()), spinner(flag.clone()));
        let f = flag.clone();
        let sleeper = spawn(move || {
            gevent_core::sleep_until(now()).unwrap();
            f.set(true);
        });
        joinall(&[a.to_ref(), b.to_ref(), sleeper.to_ref()]).unwrap();
        assert!(a.get().unwrap() <= 2 * u64::from(gevent_core::hub::CHECK_EVERY));
    });
}

/// A stack source that has none.
struct NoStacks;

// SAFETY: it never hands out a region.
unsafe impl gevent_core::stack::StackSource for NoStacks {
    fn allocate(
        &mut self,
        _: usize,
    ) -> Result<gevent_core::stack::StackRegion, gevent_core::stack::StackError> {
        Err(gevent_core::stack::StackError { message: "the test's stack pool is empty".into() })
    }
    unsafe fn release(&mut self, _: gevent_core::stack::StackRegion) {}
}

#[test]
fn a_greenlet_without_a_stack_fails_with_a_clear_error() {
    let (mut platform, _) = sim::platform();
    platform.stacks = Box::new(NoStacks);
    gevent_core::hub::install(platform).unwrap();
    let g = spawn(|| 1);
    let err = g.get().unwrap_err();
    let GetError::Failed(e) = err else { panic!("{err:?}") };
    assert!(matches!(e.kind, FailureKind::NoStack(_)));
    assert!(e.to_string().contains("the test's stack pool is empty"), "{e}");
}

#[test]
fn a_capture_that_blocks_in_its_drop_when_no_stack_can_be_had_is_refused_not_run_in_the_loop() {
    /// Sleeps in its drop, and records what the sleep returned.
    struct SleepsInDrop(Rc<RefCell<Option<bool>>>);
    impl Drop for SleepsInDrop {
        fn drop(&mut self) {
            *self.0.borrow_mut() = Some(sleep(Duration::ZERO).is_ok());
        }
    }
    let (mut platform, _) = sim::platform();
    platform.stacks = Box::new(NoStacks);
    gevent_core::hub::install(platform).unwrap();
    let slept = Rc::new(RefCell::new(None));
    let capture = SleepsInDrop(slept.clone());
    let g = spawn(move || {
        let _keep = &capture;
        1
    });
    let GetError::Failed(e) = g.get().unwrap_err() else { panic!("a greenlet without a stack") };
    assert!(matches!(e.kind, FailureKind::NoStack(_)));
    // The drop ran in the hub loop, where switching is refused: its sleep failed at once.
    assert_eq!(*slept.borrow(), Some(false));
    // And the main greenlet still waits and wakes normally.
    assert_eq!(sleep(Duration::from_millis(1)), Ok(()));
}

#[test]
fn idle_waits_until_nothing_else_can_run() {
    sim::run(|| {
        let trace = log();
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let trace = trace.clone();
                spawn(move || {
                    for turn in 0..2 {
                        trace.borrow_mut().push(format!("w{i}.{turn}"));
                        yield_now().unwrap();
                    }
                })
            })
            .collect();
        gevent_core::idle().unwrap();
        trace.borrow_mut().push("idle returned".into());
        assert_eq!(trace.borrow().last().map(String::as_str), Some("idle returned"));
        assert_eq!(trace.borrow().len(), 7, "every worker finished first: {:?}", trace.borrow());
        assert!(workers.iter().all(|w| w.ready()));
        assert_eq!(now().as_nanos(), 0, "idle does not wait for time to pass");
    });
}

#[test]
fn the_current_greenlet_knows_its_name_and_id() {
    sim::run(|| {
        let me = current();
        assert!(me.is_main() && me.id() == 0 && me.name() == "main");
        let g = Builder::new().name("worker").spawn(|| {
            let me = current();
            (me.id(), me.name().into_owned(), me.is_main())
        });
        assert_eq!(g.get(), Ok((g.id(), "worker".to_string(), false)));
        assert_eq!(
            spawn(|| current().name().into_owned()).get().unwrap(),
            format!("Greenlet-{}", g.id() + 1)
        );
    });
}

/// The first joiner waits in the greenlet's header and the others in a list: whichever leaves
/// early (timed out, killed), the ones still waiting wake in the order they came.
#[test]
fn joiners_wake_in_arrival_order_whoever_leaves_early() {
    sim::run(|| {
        let target = spawn(|| sleep(100 * MS));
        let order = log();
        let joiner = |name: &'static str, start_ms: u32, give_up_ms: Option<u32>| {
            let (target, order) = (target.clone(), order.clone());
            spawn(move || {
                sleep(start_ms * MS)?;
                let done = match give_up_ms {
                    Some(ms) => target.join_timeout(ms * MS)?,
                    None => target.join().map(|()| true)?,
                };
                order.borrow_mut().push(format!("{name} {}", if done { "woke" } else { "left" }));
                Ok::<_, Interrupted>(())
            })
        };
        let first = joiner("first", 0, Some(10)); // in the header, leaves at 10 ms
        let second = joiner("second", 1, None); // listed behind it
        let killed = joiner("killed", 2, None); // listed, killed at 5 ms
        let third = joiner("third", 20, None); // the header is free again, the list is not
        sleep(5 * MS).unwrap();
        killed.kill().unwrap();
        joinall(&[first, second, third]).unwrap();
        assert_eq!(*order.borrow(), ["first left", "second woke", "third woke"]);

        // Alone again: a joiner that left frees the header for the next one.
        let target = spawn(|| sleep(10 * MS));
        let (t, o) = (target.clone(), order.clone());
        let leaver =
            spawn(move || t.join_timeout(MS).map(|done| o.borrow_mut().push(done.to_string())));
        leaver.join().unwrap();
        let (t, o) = (target.clone(), order.clone());
        let stayer = spawn(move || t.join().map(|()| o.borrow_mut().push("woke".into())));
        stayer.join().unwrap();
        assert_eq!(order.borrow()[3..], ["false", "woke"]);
    });
}

/// A greenlet's first `current()` takes the count the hub loop lent it; one that drops that
/// reference and returns, with no handle left, must still leave the loop a count to take its
/// stack back with (the loop found none and panicked, or the greenlet was freed on its own
/// stack as it returned).
#[test]
fn detached_greenlets_that_drop_their_own_reference_end_cleanly() {
    sim::run(|| {
        let ended = Rc::new(Cell::new(0));
        for i in 0..20 {
            let ended = ended.clone();
            drop(spawn(move || {
                drop(current());
                if i % 2 == 0 {
                    yield_now().unwrap();
                    drop(current());
                }
                ended.set(ended.get() + 1);
            }));
        }
        while ended.get() < 20 {
            yield_now().unwrap();
        }
        // Their allocations are reused by later spawns of the same closure type.
        let values: Vec<_> = (0..5).map(|i| spawn(move || i * 2).get().unwrap()).collect();
        assert_eq!(values, [0, 2, 4, 6, 8]);
    });
}
