//! Greenlets that switch straight to one another (the run queue's next entry is a started
//! greenlet and the hub has no work due): the hub's duties still hold — timers and I/O are
//! collected every `CHECK_EVERY` resumptions under a busy run queue, kills and timeouts reach
//! a greenlet entered by a direct switch, and a greenlet that ends right after one has its
//! stack taken back by the loop; and main spawning and joining greenlets that return at
//! once (the hub's shortest turns) still has events collected before it resumes, start order
//! kept and stacks reused. Run on both switch backends (`cargo xtask test` runs this
//! suite with the `corosensei-switch` feature too, where every switch goes through the loop).
// Miri cannot switch stacks (inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use gevent_core::hub::{CHECK_EVERY, IoRegistration};
use gevent_core::platform::{Interest, Readiness};
use gevent_core::sim::{self, SimSource};
use gevent_core::time::Instant;
use gevent_core::{Interrupted, Timeout, now, sleep, spawn, yield_now};

mod support;
use support::RecordingStacks;

const US: Duration = Duration::from_micros(1);

/// Yields between the greenlets of a busy run queue, each yield a microsecond of virtual
/// time, until `done` holds or `limit` yields (all greenlets together) were made.
fn yield_until(
    sim: &sim::SimHandle,
    yields: &Rc<Cell<u32>>,
    limit: u32,
    done: impl Fn() -> bool,
) -> Result<(), Interrupted> {
    while !done() && yields.get() < limit {
        sim.clock.advance(US);
        yields.set(yields.get() + 1);
        yield_now()?;
    }
    Ok(())
}

#[test]
fn a_busy_run_queue_of_yielders_still_has_its_timers_and_io_collected() {
    sim::run_with(|sim| {
        const YIELDERS: u32 = 4;
        // Far more than a check every CHECK_EVERY resumptions needs; reached only if the
        // yielders kept switching among themselves without one.
        let limit = 1_000 * CHECK_EVERY;
        let yields = Rc::new(Cell::new(0u32));
        // Yield counts when the timer's and the source's times passed, and when the waiting
        // greenlets ran again.
        let timer_due = Rc::new(Cell::new(None::<u32>));
        let woke = Rc::new(Cell::new(None::<u32>));
        let io_woke = Rc::new(Cell::new(None::<u32>));

        let sleeper = {
            let (yields, woke) = (yields.clone(), woke.clone());
            spawn(move || {
                sleep(100 * US).unwrap();
                woke.set(Some(yields.get()));
            })
        };
        let reg = IoRegistration::new(SimSource(3)).unwrap();
        let io_at = Instant::from_nanos(300_000);
        sim.io.schedule(SimSource(3), Readiness { readable: true, writable: false }, io_at);
        let reader = {
            let (yields, io_woke) = (yields.clone(), io_woke.clone());
            spawn(move || {
                reg.wait(Interest::READABLE).unwrap();
                io_woke.set(Some(yields.get()));
            })
        };
        // The sleeper and the reader park before the yielders start.
        yield_now().unwrap();
        let start = now();
        let yielders: Vec<_> = (0..YIELDERS)
            .map(|_| {
                let (sim, yields, timer_due) = (sim.clone(), yields.clone(), timer_due.clone());
                let (woke, io_woke) = (woke.clone(), io_woke.clone());
                spawn(move || {
                    yield_until(&sim, &yields, limit, || {
                        if timer_due.get().is_none() && now() >= start + 100 * US {
                            timer_due.set(Some(yields.get()));
                        }
                        woke.get().is_some() && io_woke.get().is_some()
                    })
                })
            })
            .collect();
        for y in &yielders {
            y.get().unwrap();
        }
        sleeper.get().unwrap();
        reader.get().unwrap();

        let woke = woke.get().expect("the sleeper woke while the run queue was busy");
        let io_woke = io_woke.get().expect("the reader woke while the run queue was busy");
        let due = timer_due.get().unwrap();
        // Each check is at most CHECK_EVERY resumptions after the last; the woken greenlet then
        // waits its turn behind the yielders.
        assert!(woke - due <= CHECK_EVERY + YIELDERS, "timer due at {due}, fired at {woke}");
        let io_due = (io_at.as_nanos() - start.as_nanos()) as u32 / 1_000;
        assert!(io_woke - io_due <= CHECK_EVERY + YIELDERS, "I/O at {io_due}, seen at {io_woke}");
        assert!(yields.get() < limit);
    });
}

#[test]
fn kills_and_timeouts_reach_greenlets_entered_by_direct_switches() {
    sim::run_with(|sim| {
        let killed_at = Rc::new(Cell::new(0u32));
        let victim = {
            let killed_at = killed_at.clone();
            spawn(move || {
                // Bounded, so that a kill that never arrives fails the test instead of
                // hanging it.
                for turns in 1..=10_000 {
                    if let Err(e) = yield_now() {
                        killed_at.set(turns);
                        return Err(e);
                    }
                }
                Ok(())
            })
        };
        let timed = {
            let sim = sim.clone();
            spawn(move || {
                let timeout = Timeout::start(50 * US);
                for turns in 1..=10_000u32 {
                    sim.clock.advance(US);
                    if let Err(e) = yield_now() {
                        return Some((timeout.is(&e), turns));
                    }
                }
                None // never timed out
            })
        };
        let killer = {
            let victim = victim.to_ref();
            spawn(move || {
                for _ in 0..10 {
                    yield_now().unwrap();
                }
                victim.kill_nowait();
                for _ in 0..10 {
                    yield_now().unwrap();
                }
            })
        };
        killer.get().unwrap();
        let got = victim.get();
        assert!(got.is_err(), "the victim's yield returned its kill: {got:?}");
        assert!(killed_at.get() >= 10, "killed after the killer's tenth yield");
        let (its_timeout, turns) = timed.get().unwrap().expect("the timeout fired");
        assert!(its_timeout, "the yield failed with the greenlet's own timeout");
        assert!(turns >= 50, "not before 50 us of virtual time: {turns}");
    });
}

#[test]
fn a_greenlet_ending_right_after_a_direct_switch_gives_its_stack_back() {
    let (mut platform, _) = sim::platform();
    let (stacks, allocated) = RecordingStacks::over(platform.stacks);
    platform.stacks = Box::new(stacks);
    gevent_core::hub::install(platform).unwrap();
    gevent_core::hub::run(|| {
        // Each round: a long-lived yielder switches to a fresh greenlet that returns at once,
        // so the greenlet that switches back to the loop (and whose stack the loop takes) is
        // not the one the loop resumed. A thousand rounds reuse the stacks given back: a stack
        // left with its greenlet would make the source allocate one per round.
        let total = Rc::new(Cell::new(0u64));
        let rounds = 1_000u64;
        let yielder = spawn(|| {
            for _ in 0..3 * 1_000 {
                yield_now().unwrap();
            }
        });
        for i in 0..rounds {
            let total = total.clone();
            let short = spawn(move || {
                yield_now().unwrap();
                total.set(total.get() + i);
            });
            short.get().unwrap();
        }
        yielder.get().unwrap();
        assert_eq!(total.get(), rounds * (rounds - 1) / 2);
    });
    // The yielder's and one short greenlet's at a time.
    assert_eq!(allocated.borrow().len(), 2, "stacks allocated for 1,001 greenlets");
}

/// MXCSR, the SSE control and status register, on x86-64.
#[cfg(all(target_arch = "x86_64", gevent_own_switch))]
mod mxcsr {
    #![allow(unsafe_code)] // reads and writes MXCSR

    /// The register's value.
    pub(crate) fn get() -> u32 {
        let mut value = 0u32;
        // SAFETY: STMXCSR writes the 4 bytes of `value`, which is a live local.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &raw mut value, options(nostack));
        }
        value
    }

    /// Sets the register.
    pub(crate) fn set(value: u32) {
        // SAFETY: LDMXCSR reads the 4 bytes of `value`; the callers pass values with the
        // reserved bits clear (the default with other rounding bits), which cannot fault.
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &raw const value, options(nostack));
        }
    }
}

/// The x87 FPU control word, on x86-64, widened to `u32` like MXCSR.
#[cfg(all(target_arch = "x86_64", gevent_own_switch))]
mod x87 {
    #![allow(unsafe_code)] // reads and writes the x87 control word

    /// The control word.
    pub(crate) fn get() -> u32 {
        let mut value = 0u16;
        // SAFETY: FNSTCW writes the 2 bytes of `value`, which is a live local.
        unsafe {
            core::arch::asm!("fnstcw [{}]", in(reg) &raw mut value, options(nostack));
        }
        u32::from(value)
    }

    /// Sets the control word to the low 16 bits of `value`.
    pub(crate) fn set(value: u32) {
        let value = value as u16;
        // SAFETY: FLDCW reads the 2 bytes of `value`; the callers pass the default with other
        // rounding bits, which leaves every exception masked.
        unsafe {
            core::arch::asm!("fldcw [{}]", in(reg) &raw const value, options(nostack));
        }
    }
}

/// A greenlet sets the `mask` bits of a control register (read by `get`, written by `set`)
/// to `mode` and yields twice; another greenlet, which runs in between, must see the default
/// bits, and the first its own, across switches to and from each other.
#[cfg(all(target_arch = "x86_64", gevent_own_switch))]
fn each_greenlet_keeps_its_own(get: fn() -> u32, set: fn(u32), mask: u32, mode: u32) {
    sim::run(|| {
        let default = get();
        let seen_by_other = Rc::new(Cell::new(0u32));
        let changer = spawn(move || {
            set((default & !mask) | mode);
            yield_now().unwrap();
            yield_now().unwrap();
            let own = get();
            set(default);
            own
        });
        let other = {
            let seen_by_other = seen_by_other.clone();
            spawn(move || {
                yield_now().unwrap();
                seen_by_other.set(get());
            })
        };
        assert_eq!(changer.get().unwrap() & mask, mode);
        other.get().unwrap();
        assert_eq!(seen_by_other.get() & mask, default & mask);
        assert_eq!(get(), default);
    });
}

/// The System V ABI makes MXCSR's control bits callee-saved: a greenlet's rounding mode is its
/// own, across switches to and from other greenlets (corosensei's switch does not keep it,
/// so this holds on gevent-core's own switch only).
#[cfg(all(target_arch = "x86_64", gevent_own_switch))]
#[test]
fn a_greenlets_floating_point_rounding_mode_is_its_own() {
    const ROUNDING: u32 = 3 << 13;
    each_greenlet_keeps_its_own(mxcsr::get, mxcsr::set, ROUNDING, ROUNDING);
}

/// The x87 control word is callee-saved too: a greenlet's x87 rounding mode is its own,
/// whether or not its MXCSR differs from the greenlet it switches to (the switch loads each
/// only where the two contexts differ).
#[cfg(all(target_arch = "x86_64", gevent_own_switch))]
#[test]
fn a_greenlets_x87_rounding_mode_is_its_own() {
    const ROUNDING: u32 = 3 << 10;
    const ROUND_UP: u32 = 2 << 10;
    each_greenlet_keeps_its_own(x87::get, x87::set, ROUNDING, ROUND_UP);
}

/// Main joining a greenlet that returns without parking: before main resumes, the hub collects
/// what came due meanwhile (here while main ran), even though the run queue never emptied:
/// a timer that expired, and a job posted from another thread.
#[test]
fn main_joining_a_greenlet_that_returns_at_once_still_has_events_collected_first() {
    sim::run_with(|sim| {
        let woke = Rc::new(Cell::new(false));
        let sleeper = {
            let woke = woke.clone();
            spawn(move || {
                sleep(10 * US).unwrap();
                woke.set(true);
            })
        };
        yield_now().unwrap(); // the sleeper parks on its timer
        sim.clock.advance(10 * US); // main computes past the deadline without blocking
        assert_eq!(spawn(|| 7).get(), Ok(7));
        // Collected before main resumed, the sleeper was queued ahead of main's next turn.
        yield_now().unwrap();
        assert!(woke.get(), "the timer that expired while main ran was collected");
        sleeper.get().unwrap();

        let posted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = gevent_core::hub_handle();
        let ran = posted.clone();
        std::thread::spawn(move || {
            handle.post(move || ran.store(true, std::sync::atomic::Ordering::Relaxed)).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(spawn(|| 8).get(), Ok(8));
        yield_now().unwrap();
        assert!(
            posted.load(std::sync::atomic::Ordering::Relaxed),
            "the job posted while main ran was collected"
        );
    });
}

/// Spawning and joining many greenlets one after the other reuses the stack each gives back
/// (the pool keeps the last one off its shelves) and keeps the start order after a yield.
#[test]
fn spawn_and_join_in_a_row_reuses_stacks_and_keeps_the_start_order() {
    sim::run(|| {
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let started: Vec<_> = (0..3)
            .map(|i| {
                let order = order.clone();
                spawn(move || order.borrow_mut().push(i))
            })
            .collect();
        for i in 0..1_000u32 {
            assert_eq!(spawn(move || i).get(), Ok(i));
        }
        assert_eq!(*order.borrow(), [0, 1, 2], "FIFO start once main parked");
        for g in started {
            g.get().unwrap();
        }
        let killed = spawn(|| unreachable!("killed before it started"));
        killed.kill().unwrap();
        assert!(killed.killed());
        let panicked = spawn(|| -> u32 { panic!("boom") });
        assert!(panicked.get().is_err());
        assert_eq!(spawn(|| 9).get(), Ok(9), "a panic gave its stack back too");
    });
}
