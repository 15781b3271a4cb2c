//! The embassy anchor's workloads (`shared/anchors/embassy`) on gevent for Rust: the same board
//! (TI LM3S6965, Cortex-M3, `qemu-system-arm -machine lm3s6965evb`), the same QEMU flags
//! (`-icount shift=0`: one instruction per virtual nanosecond) and the same SysTick clock, so
//! that the figures are instruction counts comparable with the anchor's.
//!
//! - `mcu_yield`: two greenlets yield to each other `K` times each; instructions per yield.
//! - `mcu_channel`: a ping-pong over two queues of capacity 1; instructions per round trip.
//! - `mcu_spawn`: spawn a greenlet returning its argument and join it, `K` times;
//!   instructions per spawn + finish.
//! - `mcu_idle`: RAM per parked greenlet: the heap it adds while parked on an event (measured
//!   over [`PARKED`] greenlets) plus the stack it holds.
//!
//! Prints one line per figure in the anchors' format
//! (`bench=<b> impl=gevent-rs metric=<m> value=<v>`), read by `cargo xtask bench --embedded`,
//! and exits with status 0 only if every workload computed what it should.
//!
//! With the `guard` feature the greenlets run on 1 KiB stacks under the MPU stack guard
//! (`StaticStacks::guarded`), the configuration small stacks are sound in; its lines say
//! `impl=gevent-rs-guarded`, and the guard's cost per switch is in them.
//!
//! Run it with `cargo run --release` in this folder (the runner starts QEMU).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::Cell;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use gevent_embedded::event::Event;
use gevent_embedded::queue::Queue;
use gevent_embedded::{
    Interrupted, StackMemory, StaticStacks, TickClock, TickSource, spawn, yield_now,
};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::{HEAP, SysTickSource};

/// The LM3S6965's core clock as QEMU runs it.
const CORE_HZ: u32 = 12_000_000;

/// Rounds of each workload, as in the anchor.
const K: u32 = 200_000;

/// Greenlets parked at once for `mcu_idle`: each holds one stack, and every stack but one (the
/// main program runs on the chip's own) is parked.
const PARKED: usize = 8;

/// The greenlet stack size: corosensei's minimum (`MIN_STACK_SIZE`) without a guard.
#[cfg(not(feature = "guard"))]
const STACK_SIZE: usize = 4 * 1024;

/// The greenlet stack size under the MPU guard (measured use: about 340 B parked).
#[cfg(feature = "guard")]
const STACK_SIZE: usize = 1024;

/// The RAM each stack reserves besides its usable bytes: the guard region below it.
#[cfg(not(feature = "guard"))]
const GUARD_SIZE: usize = 0;
#[cfg(feature = "guard")]
const GUARD_SIZE: usize = gevent_embedded::mpu::StackGuard::BYTES;

/// The name of this configuration in result lines.
const IMPL: &str = if cfg!(feature = "guard") { "gevent-rs-guarded" } else { "gevent-rs" };

/// Instructions (virtual nanoseconds under `-icount shift=0`) between two tick readings.
fn instructions(t0: u64, t1: u64) -> u64 {
    (t1 - t0) * 1_000_000_000 / u64::from(CORE_HZ)
}

fn ticks() -> u64 {
    SysTickSource.ticks()
}

fn report(bench: &str, metric: &str, value: u64) {
    hprintln!("bench={} impl={} metric={} value={}", bench, IMPL, metric, value);
}

fn fail(what: &str) -> bool {
    hprintln!("FAILED: {}", what);
    false
}

/// Two greenlets yielding to each other; instructions per yield.
fn bench_yield() -> bool {
    let t0 = ticks();
    let yielders: Vec<_> = (0..2)
        .map(|_| {
            spawn(|| {
                for _ in 0..K {
                    yield_now()?;
                }
                Ok::<_, Interrupted>(())
            })
        })
        .collect();
    let ok = yielders.iter().all(|g| g.get() == Ok(()));
    let t1 = ticks();
    report("mcu_yield", "instructions", instructions(t0, t1) / u64::from(2 * K));
    ok || fail("mcu_yield: a yielder did not finish")
}

/// A ping-pong over two capacity-1 queues; instructions per round trip.
fn bench_channel() -> bool {
    let there = Rc::new(Queue::bounded(1));
    let back = Rc::new(Queue::bounded(1));
    let t0 = ticks();
    let (q1, q2) = (there.clone(), back.clone());
    let pinger = spawn(move || {
        let mut sum = 0u64;
        for i in 0..K {
            q1.put(i).map_err(|_| ())?;
            sum += u64::from(q2.get().map_err(|_| ())?);
        }
        Ok::<_, ()>(sum)
    });
    let ponger = spawn(move || {
        for _ in 0..K {
            let v = there.get().map_err(|_| ())?;
            back.put(v).map_err(|_| ())?;
        }
        Ok::<_, ()>(())
    });
    let sum = pinger.get();
    let ok = matches!(ponger.get(), Ok(Ok(())));
    let t1 = ticks();
    report("mcu_channel", "instructions", instructions(t0, t1) / u64::from(K));
    let expected = u64::from(K) * u64::from(K - 1) / 2;
    (ok && matches!(sum, Ok(Ok(s)) if s == expected))
        || fail("mcu_channel: wrong sum or a side failed")
}

/// Spawn a trivial greenlet and join it, `K` times; instructions per spawn + finish.
fn bench_spawn() -> bool {
    let t0 = ticks();
    let mut sum = 0u64;
    for i in 0..K {
        match spawn(move || i).get() {
            Ok(v) => sum += u64::from(v),
            Err(_) => return fail("mcu_spawn: a greenlet failed"),
        }
    }
    let t1 = ticks();
    report("mcu_spawn", "instructions", instructions(t0, t1) / u64::from(K));
    sum == u64::from(K) * u64::from(K - 1) / 2 || fail("mcu_spawn: wrong sum")
}

/// RAM per parked greenlet: the heap that [`PARKED`] greenlets parked on one event add, per
/// greenlet, plus the stack each holds.
fn bench_idle() -> bool {
    let gate = Rc::new(Event::new());
    let parked_count = Rc::new(Cell::new(0usize));
    // The handles' vector is allocated first: it is the benchmark's, not the greenlets'.
    let mut parked = Vec::with_capacity(PARKED);
    let before = HEAP.used();
    for _ in 0..PARKED {
        let (gate, count) = (gate.clone(), parked_count.clone());
        parked.push(spawn(move || {
            count.set(count.get() + 1);
            gate.wait()
        }));
    }
    while parked_count.get() < PARKED {
        if yield_now().is_err() {
            return fail("mcu_idle: main was interrupted");
        }
    }
    let heap = HEAP.used().saturating_sub(before) / PARKED;
    report("mcu_idle", "bytes_per_greenlet", (heap + STACK_SIZE + GUARD_SIZE) as u64);
    hprintln!(
        "# mcu_idle: {} B of heap + {} B of stack + {} B of guard per parked greenlet",
        heap,
        STACK_SIZE,
        GUARD_SIZE
    );
    gate.set();
    let ok = parked.iter().all(|g| g.get() == Ok(()));
    ok || fail("mcu_idle: a parked greenlet did not finish")
}

#[entry]
fn main() -> ! {
    // Headers of the parked greenlets and the hub's collections.
    init_heap!(12 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    const STACK_BYTES: usize = PARKED * (STACK_SIZE + GUARD_SIZE) + GUARD_SIZE;
    static mut STACK_MEM: StackMemory<STACK_BYTES> = StackMemory::new();
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stack_mem = unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) }.as_mut_slice();
    #[cfg(not(feature = "guard"))]
    let stacks = StaticStacks::new(stack_mem, STACK_SIZE);
    #[cfg(feature = "guard")]
    let stacks = {
        unsafe extern "C" {
            /// cortex-m-rt: the lowest address of the main stack.
            static _stack_end: u8;
        }
        let guard =
            gevent_embedded::mpu::StackGuard::enable(core::ptr::addr_of!(_stack_end) as usize)
                .expect("the LM3S6965's Cortex-M3 has an MPU");
        StaticStacks::guarded(stack_mem, STACK_SIZE, &guard)
    };
    if stacks.available() < PARKED {
        board::exit(fail("fewer stacks than the benchmark parks greenlets"));
    }
    gevent_embedded::init(TickClock::new(SysTickSource), stacks, |_| cortex_m::asm::wfi())
        .expect("the hub is installed once");

    // As the anchor: let SysTick run a little before measuring.
    while ticks() < 2 * u64::from(CORE_HZ / 1000) {}

    let mut all_ok = bench_yield();
    all_ok &= bench_channel();
    all_ok &= bench_spawn();
    all_ok &= bench_idle();
    board::exit(all_ok)
}
