//! gevent's semantics where a review found ours differed: kills as cancellations, kills with a
//! reason, the main greenlet's kill, self-joins, nested timeouts, links, values of detached
//! greenlets, the hub-wide `wait`, unreferenced timers, and the flattened result types.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gevent_core::local::Local;
use gevent_core::queue::Queue;
use gevent_core::{
    Error, FailureKind, Interrupted, JoinAll, Timeout, current, joinall, now, sim, sleep,
    sleep_unref, spawn, spawn_later, wait, wait_timeout, with_timeout, yield_now,
};

const MS: Duration = Duration::from_millis(1);

// --- item 8: the main greenlet's yields let timers, I/O and posts through -----------------------

#[test]
fn a_main_yield_loop_under_a_timeout_ends() {
    sim::run_with(|sim| {
        let t = Timeout::start(10 * MS);
        let mut result = Ok(());
        for _ in 0..1000 {
            sim.clock.advance(MS); // the simulated clock moves only when told
            result = yield_now();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(Interrupted::TimedOut(t.id())));
    });
}

#[test]
fn a_main_yield_loop_lets_a_spawn_later_greenlet_run() {
    sim::run_with(|sim| {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        let _later = spawn_later(5 * MS, move || r.set(true));
        for _ in 0..1000 {
            if ran.get() {
                break;
            }
            sim.clock.advance(MS);
            yield_now().unwrap();
        }
        assert!(ran.get(), "the delayed greenlet never started while main yielded");
    });
}

// --- item 9: a detached greenlet's value is dropped by the greenlet itself ----------------------

/// Records in whose context it was dropped, and blocks in its `Drop`.
struct DropProbe(Rc<RefCell<Vec<String>>>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let who = current();
        let slept = sleep(MS); // a blocking Drop must not run on the hub loop
        self.0.borrow_mut().push(format!("dropped by main: {}, sleep: {slept:?}", who.is_main()));
    }
}

#[test]
fn a_detached_greenlets_value_is_dropped_in_the_greenlet_not_on_the_hub_loop() {
    sim::run(|| {
        let trace = Rc::new(RefCell::new(Vec::new()));
        let t = trace.clone();
        drop(spawn(move || DropProbe(t)));
        sleep(10 * MS).unwrap();
        assert_eq!(*trace.borrow(), ["dropped by main: false, sleep: Ok(())"]);
    });
}

#[test]
fn a_detached_value_whose_drop_panics_fails_its_greenlet_not_mains_sleep() {
    sim::run(|| {
        let g = spawn(|| PanicsOnDrop);
        let watcher = g.to_ref();
        drop(g);
        assert_eq!(sleep(10 * MS), Ok(()), "the panic does not come out of main's sleep");
        let error = watcher.error().expect("the value's drop panicked inside the greenlet");
        assert!(matches!(error.kind, FailureKind::Panicked(_)));
    });
}

#[test]
fn a_value_is_dropped_when_its_last_handle_goes() {
    sim::run(|| {
        let trace = Rc::new(RefCell::new(Vec::new()));
        let t = trace.clone();
        let g = spawn(move || DropProbe(t));
        let g2 = g.clone();
        g.join().unwrap();
        drop(g);
        assert!(trace.borrow().is_empty(), "a handle is left");
        let dropper = spawn(move || drop(g2));
        dropper.join().unwrap();
        assert_eq!(*trace.borrow(), ["dropped by main: false, sleep: Ok(())"]);
    });
}

// --- item 2: values a greenlet owns are dropped inside its panic boundary -----------------------

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a local's destructor panicked");
    }
}

static PANICKY: Local<Option<PanicsOnDrop>> = Local::new(|| None);

#[test]
fn a_local_whose_drop_panics_fails_its_greenlet_and_leaves_the_hub_sound() {
    sim::run(|| {
        let g = spawn(|| PANICKY.set(Some(PanicsOnDrop)));
        g.join().unwrap();
        let error = g.error().expect("the panic in the local's drop is the greenlet's failure");
        assert!(matches!(&error.kind, FailureKind::Panicked(m) if m.contains("destructor")));
        assert!(current().is_main(), "the hub's current greenlet is main again");
        sleep(MS).unwrap();
        let next = spawn(|| 5);
        assert_eq!(next.get(), Ok(5));
    });
}

// --- item 10: joining oneself is an error everywhere --------------------------------------------

#[test]
fn joining_oneself_is_a_deadlock_error_for_main_and_others() {
    sim::run(|| {
        let err = joinall(&[current()]).unwrap_err();
        assert!(matches!(&err, Interrupted::Deadlock(m) if m.contains("its own end")), "{err}");
        assert!(matches!(current().join(), Err(Interrupted::Deadlock(_))));
        let g = spawn(|| {
            let me = current();
            let all = joinall([me.clone()]);
            let one = me.join();
            (all, one)
        });
        let (all, one) = g.get().unwrap();
        let all = all.unwrap_err();
        assert!(matches!(&all, Interrupted::Deadlock(_)), "{all}");
        assert!(!all.to_string().contains("main greenlet"), "{all}");
        assert!(matches!(one, Err(Interrupted::Deadlock(_))));
    });
}

// --- item 11: killing the main greenlet ---------------------------------------------------------

#[test]
fn killing_main_interrupts_one_blocking_call() {
    sim::run(|| {
        let main = current();
        let _killer = spawn(move || main.kill_nowait());
        assert_eq!(sleep(10 * MS), Err(Interrupted::Killed));
        assert_eq!(sleep(10 * MS), Ok(()), "the kill reached main once");
        assert_eq!(yield_now(), Ok(()));
    });
}

// --- item 12: a plain kill is a cancellation; kill_with is a failure ----------------------------

#[test]
fn a_plain_kill_is_a_cancellation_not_a_failure() {
    sim::run(|| {
        let exceptions = Rc::new(Cell::new(0));
        let sleeper = spawn(|| sleep(Duration::from_secs(60)));
        let e = exceptions.clone();
        sleeper.link_exception(move |_| e.set(e.get() + 1));
        let worker = spawn(|| -> Result<u32, Interrupted> {
            sleep(20 * MS)?;
            Ok(3)
        });
        yield_now().unwrap();
        sleeper.kill().unwrap();
        let done = JoinAll::new((&sleeper, &worker)).raise_error(true).wait().unwrap();
        assert_eq!(done, [0, 1], "raise_error does not stop at a killed greenlet");
        assert!(sleeper.killed() && sleeper.successful() && sleeper.error().is_none());
        assert!(matches!(sleeper.get(), Err(Error::Killed(e)) if e.kind == FailureKind::Killed));
        assert!(!worker.killed());
        sleep(MS).unwrap();
        assert_eq!(exceptions.get(), 0, "link_exception does not fire for a kill");
    });
}

#[test]
fn a_body_that_handles_its_kill_keeps_its_value() {
    sim::run(|| {
        let g = spawn(|| -> Result<&str, Interrupted> {
            match sleep(Duration::from_secs(60)) {
                Err(Interrupted::Killed) => Ok("cleaned up"),
                other => other.map(|()| "slept"),
            }
        });
        yield_now().unwrap();
        g.kill().unwrap();
        assert!(g.killed());
        assert_eq!(g.get(), Ok("cleaned up"));
    });
}

#[test]
fn kill_with_delivers_its_reason_and_is_a_failure() {
    sim::run(|| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        let g = spawn(move || -> Result<(), Interrupted> {
            let first = sleep(Duration::from_secs(60));
            s.borrow_mut().push(first.clone());
            s.borrow_mut().push(sleep(MS)); // sticky
            first
        });
        yield_now().unwrap();
        g.kill_with("shutting down").unwrap();
        let reason = Interrupted::KilledWith("shutting down".into());
        assert_eq!(*seen.borrow(), [Err(reason.clone()), Err(reason)]);
        let error = g.error().expect("a kill with a reason is a failure");
        assert_eq!(error.kind, FailureKind::KilledWith("shutting down".into()));
        assert!(matches!(g.get(), Err(Error::Failed(e)) if e == error));
        assert!(!g.successful() && !g.killed(), "killed() is about plain kills");
        let unstarted = spawn(|| 1);
        unstarted.kill_with("never mind").unwrap();
        assert!(matches!(unstarted.get(), Err(Error::Failed(_))));
    });
}

// --- item 13: with_timeout never swallows an outer timeout --------------------------------------

#[test]
fn equal_nested_timeouts_report_the_outer() {
    sim::run(|| {
        let outer = Timeout::start(10 * MS);
        let inner = Timeout::start(10 * MS);
        assert_eq!(sleep(Duration::from_secs(1)), Err(Interrupted::TimedOut(outer.id())));
        drop(inner);
        drop(outer);
        let outer = Timeout::start(10 * MS);
        let result = with_timeout(10 * MS, || sleep(Duration::from_secs(1)));
        assert_eq!(result, Err(Interrupted::TimedOut(outer.id())));
    });
}

#[test]
fn an_outer_expiry_swallowed_by_an_inner_scope_is_reported_again_after_it() {
    sim::run(|| {
        let start = now();
        let result = with_timeout(10 * MS, || {
            let _ = with_timeout(10 * MS, || sleep(Duration::from_secs(1)));
            sleep(500 * MS)
        });
        assert!(matches!(result, Err(Interrupted::TimedOut(_))));
        assert_eq!(now().saturating_duration_since(start), 10 * MS, "the long sleep was cut short");
        assert_eq!(sleep(MS), Ok(()), "nothing is left pending after the outer scope");
    });
}

#[test]
fn an_outer_expiry_reported_in_its_own_scope_is_not_repeated_by_a_later_inner_scope() {
    sim::run(|| {
        let outer = Timeout::start(10 * MS);
        assert_eq!(sleep(Duration::from_secs(1)), Err(Interrupted::TimedOut(outer.id())));
        let inner = with_timeout(5 * MS, || sleep(MS));
        assert_eq!(inner, Ok(()));
        assert_eq!(sleep(MS), Ok(()), "the outer expiry was already handled at its level");
    });
}

// --- item 14: links -----------------------------------------------------------------------------

#[test]
fn a_panicking_link_does_not_stop_the_next_and_join_waits_for_links() {
    sim::run(|| {
        let trace = Rc::new(RefCell::new(Vec::new()));
        let g = spawn(|| sleep(MS));
        let t = trace.clone();
        g.link(move |_| {
            t.borrow_mut().push("first");
            panic!("a link callback panicked");
        });
        let t = trace.clone();
        g.link(move |g| {
            sleep(5 * MS).unwrap(); // a slow callback: join still waits for it
            assert_eq!(g.get(), Ok(()), "a link may read its greenlet's value");
            t.borrow_mut().push("second");
        });
        let t = trace.clone();
        let removed = g.link(move |_| t.borrow_mut().push("unlinked"));
        assert!(g.has_links());
        assert!(g.unlink(removed));
        assert!(!g.unlink(removed));
        g.join().unwrap();
        assert_eq!(*trace.borrow(), ["first", "second"], "join returns after the links ran");
        assert!(!g.has_links());
    });
}

// --- item 20: get_timeout, try_get, wait, sleep_unref, unwinding --------------------------------

#[test]
fn get_timeout_and_try_get() {
    sim::run(|| {
        let g = spawn(|| -> Result<u8, Interrupted> {
            sleep(20 * MS)?;
            Ok(9)
        });
        assert_eq!(g.try_get(), Err(Error::NotReady));
        assert_eq!(g.get_timeout(10 * MS), Err(Error::NotReady));
        assert_eq!(g.get_timeout(20 * MS), Ok(9));
        assert_eq!(g.try_get(), Ok(9));
        let plain = spawn(|| 4u8);
        assert_eq!(plain.try_get(), Err(Error::NotReady));
        assert_eq!(plain.get_timeout(MS), Ok(4));
    });
}

#[test]
fn wait_returns_when_every_greenlet_is_done() {
    sim::run(|| {
        let done = Rc::new(Cell::new(0));
        for i in 1..=3u32 {
            let d = done.clone();
            spawn(move || {
                sleep(MS * i).unwrap();
                d.set(d.get() + 1);
            });
        }
        wait().unwrap();
        assert_eq!(done.get(), 3);
        assert_eq!(now().as_nanos(), 3_000_000);
        let _long = spawn(|| sleep(Duration::from_secs(5)));
        assert_eq!(wait_timeout(10 * MS), Ok(false));
        assert_eq!(wait_timeout(Duration::from_secs(10)), Ok(true));
    });
}

#[test]
fn wait_returns_when_nothing_can_run_any_more() {
    sim::run(|| {
        let queue: Rc<Queue<u8>> = Rc::new(Queue::new());
        let q = queue.clone();
        let _stuck = spawn(move || q.get()); // nothing will ever put
        wait().unwrap();
        assert_eq!(now().as_nanos(), 0);
    });
}

#[test]
fn unreferenced_timers_do_not_keep_the_hub_alive() {
    sim::run(|| {
        let ticks = Rc::new(Cell::new(0));
        let t = ticks.clone();
        let _poller = spawn(move || {
            loop {
                sleep_unref(10 * MS)?;
                t.set(t.get() + 1);
            }
            #[allow(unreachable_code)]
            Ok::<(), Interrupted>(())
        });
        let worker = spawn(|| sleep(25 * MS));
        wait().unwrap();
        assert!(worker.ready());
        assert_eq!(ticks.get(), 2, "the unreferenced timer ran while the hub had work");
        let queue: Queue<u8> = Queue::new();
        let err = queue.get().unwrap_err();
        assert!(
            matches!(err, gevent_core::queue::GetError::Interrupted(Interrupted::LoopExit(_))),
            "{err:?}"
        );
    });
}

/// Blocks in its `Drop`, and records what the blocking call returned.
struct BlocksOnDrop(Rc<RefCell<Option<Result<(), Interrupted>>>>);

impl Drop for BlocksOnDrop {
    fn drop(&mut self) {
        *self.0.borrow_mut() = Some(sleep(MS));
    }
}

#[test]
fn a_blocking_call_during_unwinding_fails_at_once() {
    sim::run(|| {
        let seen = Rc::new(RefCell::new(None));
        let s = seen.clone();
        let g = spawn(move || {
            let _guard = BlocksOnDrop(s);
            panic!("unwinding through a blocking destructor");
        });
        let other = spawn(std::thread::panicking);
        g.join().unwrap();
        assert_eq!(*seen.borrow(), Some(Err(Interrupted::Unwinding)));
        assert_eq!(other.get(), Ok(false), "no other greenlet ran during the unwind");
    });
}

// --- item 22: one error type, flattened results, joinall over any greenlets ---------------------

#[test]
fn results_read_like_gevent() {
    fn program() -> gevent_core::Result<u32> {
        let number = spawn(|| -> gevent_core::Result<u32> {
            sleep(MS)?;
            Ok(6)
        });
        let text = spawn(|| "seven");
        joinall((&number, &text))?;
        let queue = Queue::new();
        queue.put(number.get()?)?;
        let six = with_timeout(10 * MS, || number.get())?;
        let from_queue = queue.get()?;
        assert_eq!(text.get()?, "seven");
        Ok(six * from_queue + 6)
    }
    sim::run(|| assert_eq!(program(), Ok(42)));
}
