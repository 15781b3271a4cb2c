//! gevent for Rust on a Cortex-M3 (`qemu-system-arm -machine lm3s6965evb`) with 1 KiB greenlet
//! stacks behind the MPU stack guard (`gevent_embedded::mpu`).
//!
//! Prints what the guard costs a switch (a yield ping-pong with the guard's switch hook and
//! without it; QEMU runs with `-icount shift=0`, so nanoseconds are instructions), what a
//! parked greenlet costs in RAM (its stack and guard plus its heap header), and each greenlet's
//! stack high-water mark; exits with status 0 only if every check held. With the
//! `overflow-test` feature a greenlet recurses past its stack instead: the guard's MemManage
//! fault must report "greenlet deep overflowed its stack" and end the run with a failure.
//!
//! Run it with `cargo run --release` in this folder (the runner starts QEMU).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::time::Duration;

use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use gevent_embedded::mpu::{GuardFault, StackGuard, guard_fault, with_faulting_greenlet_name};
use gevent_embedded::{Builder, StaticStacks, TickClock, joinall, now, spawn};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::{HEAP, SysTickSource};

/// The LM3S6965's core clock as QEMU runs it.
const CORE_HZ: u32 = 12_000_000;

/// Usable bytes per greenlet stack.
const STACK: usize = 1024;
const STACKS: usize = 6;
/// Each stack's slot: its guard and its usable bytes.
const SLOT: usize = StackGuard::BYTES + STACK;

fn check(ok: bool, what: &str) -> bool {
    hprintln!("[{}] {}", if ok { "ok" } else { "FAILED" }, what);
    ok
}

#[entry]
fn main() -> ! {
    init_heap!(16 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    unsafe extern "C" {
        /// cortex-m-rt: the lowest address of the main stack.
        static _stack_end: u8;
    }
    let guard = StackGuard::enable(core::ptr::addr_of!(_stack_end) as usize)
        .expect("the LM3S6965's Cortex-M3 has an 8-region MPU");
    static mut STACK_MEM: [u8; STACKS * SLOT + StackGuard::BYTES] =
        [0; STACKS * SLOT + StackGuard::BYTES];
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stack_mem = unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) };
    let stacks = StaticStacks::guarded(stack_mem, STACK, &guard);
    let count = stacks.available();
    gevent_embedded::init(TickClock::new(SysTickSource), stacks, |_| cortex_m::asm::wfi())
        .expect("the hub is installed once");
    hprintln!(
        "gevent-rs on a Cortex-M3 with an MPU stack guard: {} stacks of {} + {} bytes",
        count,
        STACK,
        StackGuard::BYTES
    );

    if cfg!(feature = "overflow-test") {
        overflow();
    }

    let mut all_ok = true;
    guard_cost();
    all_ok &= parked_cost();
    hprintln!("{}", if all_ok { "ALL OK" } else { "SOME CHECKS FAILED" });
    board::exit(all_ok)
}

/// Instructions per yield round trip between two greenlets, with the guard following them and
/// without it: a figure, not a check (that the guard works is the overflow run's check).
fn guard_cost() {
    const ROUNDS: u32 = 2000;
    let ping_pong = || {
        let start = now();
        let players: Vec<_> = (0..2)
            .map(|_| {
                spawn(|| {
                    for _ in 0..ROUNDS {
                        gevent_embedded::sleep(Duration::ZERO).expect("nothing interrupts it");
                    }
                })
            })
            .collect();
        joinall(&players).expect("nothing interrupts main");
        (now() - start).as_nanos() as u64 / u64::from(ROUNDS)
    };
    let guarded = ping_pong();
    // SAFETY: removing the hook is always allowed; the guard stays where it last was, on a
    // stack that is not running.
    unsafe { gevent_embedded::stack::set_resume_hook(None) };
    let unguarded = ping_pong();
    let _ = StackGuard::enable(main_stack_bottom()).expect("it was on");
    hprintln!(
        "bench=mcu_yield_guard metric=instructions impl=gevent-rs guarded={} unguarded={} cost={}",
        guarded,
        unguarded,
        guarded.saturating_sub(unguarded)
    );
}

fn main_stack_bottom() -> usize {
    unsafe extern "C" {
        static _stack_end: u8;
    }
    core::ptr::addr_of!(_stack_end) as usize
}

/// RAM per parked greenlet: its stack slot plus its heap header (measured on a second round, once
/// the hub's collections have grown for three); and each one's stack high-water mark.
fn parked_cost() -> bool {
    let park_three = |gate: &Rc<gevent_embedded::event::Event>| -> Vec<_> {
        let parked: Vec<_> = (0..3)
            .map(|_| {
                let gate = gate.clone();
                spawn(move || gate.wait())
            })
            .collect();
        gevent_embedded::sleep(Duration::from_millis(1)).expect("nothing interrupts main");
        parked
    };
    let gate = Rc::new(gevent_embedded::event::Event::new());
    let warm_up = park_three(&gate);
    gate.set();
    joinall(&warm_up).expect("nothing interrupts main");
    drop(warm_up);
    let gate = Rc::new(gevent_embedded::event::Event::new());
    let before = HEAP.used();
    let parked = park_three(&gate);
    let header = HEAP.used().saturating_sub(before) / 3;
    hprintln!(
        "bench=mcu_idle metric=bytes_per_greenlet impl=gevent-rs value={} (stack {} + guard {} + header {})",
        SLOT + header,
        STACK,
        StackGuard::BYTES,
        header
    );
    let marks: Vec<_> = parked.iter().map(|g| g.stack_high_water()).collect();
    for (g, mark) in parked.iter().zip(&marks) {
        hprintln!("    greenlet {}: stack high-water {:?} of {}", g.name(), mark, STACK);
    }
    gate.set();
    joinall(&parked).expect("nothing interrupts main");
    let fits = marks.iter().all(|m| m.is_some_and(|m| m < STACK));
    check(SLOT + header <= 1536, "RAM per parked greenlet within 1.5 KB")
        & check(fits, "parked greenlets fit their stacks")
}

/// A greenlet that recurses without end: the guard must stop it.
fn overflow() -> ! {
    #[inline(never)]
    fn recurse(depth: u32) -> u32 {
        let frame = core::hint::black_box([depth; 4]);
        if core::hint::black_box(depth) == u32::MAX {
            return 0;
        }
        core::hint::black_box(recurse(depth + 1)) + frame[1]
    }
    let deep = Builder::new().name("deep").spawn(|| recurse(0));
    let _ = deep.join();
    hprintln!("the overflow went unnoticed");
    board::exit(false)
}

#[exception]
fn MemoryManagement() {
    match guard_fault() {
        // The hub is read through the fault context (unchecked, the faulting code stopped):
        // a handler may not use the hub itself.
        Some(GuardFault::Greenlet { address: Some(address) }) => {
            // SAFETY: the MemManage handler of a guard fault, which ends the run (below).
            unsafe {
                with_faulting_greenlet_name(address, |name| match name {
                    Some(name) => {
                        hprintln!("greenlet {} overflowed its stack (at {:x})", name, address)
                    }
                    None => hprintln!("a greenlet overflowed its stack (at {:x})", address),
                })
            }
        }
        Some(GuardFault::Greenlet { address: None }) => {
            hprintln!("a greenlet overflowed its stack (the address is not known)")
        }
        Some(GuardFault::MainStack { address }) => {
            hprintln!("the main stack overflowed (at {:#x})", address)
        }
        None => hprintln!("memory management fault"),
    }
    board::exit(false)
}
