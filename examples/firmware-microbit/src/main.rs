//! gevent for Rust on a Cortex-M0, a core without atomic compare-and-swap: the Nordic nRF51822
//! of the BBC micro:bit (16 KiB of RAM), as `qemu-system-arm -machine microbit` emulates it.
//!
//! Brings the board up (heap, SysTick clock, two static greenlet stacks, `wfi` as the idle
//! hook), then runs greenlets with timers, a `Timeout`, a queue between a producer and a
//! consumer, an `isr::Signal` raised by SysTick, and a `HubHandle::post` from SysTick (the
//! post protocol's compare-and-swap comes from critical sections on this core). It prints
//! what happens by semihosting and exits with status 0 only if every check held.
//!
//! Run it with `cargo run --release` in this folder (the runner starts QEMU).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::time::Duration;

use cortex_m::interrupt::Mutex;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use gevent_embedded::isr::{Channel, Signal};
use gevent_embedded::queue::Queue;
use gevent_embedded::{
    HubHandle, Interrupted, StackMemory, StaticStacks, TickClock, TickSource, Timeout, joinall,
    now, sleep, spawn, yield_now,
};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::{HEAP, SysTickSource};

/// The nRF51's core clock as QEMU runs it.
const CORE_HZ: u32 = 16_000_000;

/// Greenlet stacks: two of the 4 KiB that unguarded stacks need at least (the nRF51 has no
/// MPU for `StaticStacks::guarded`'s smaller ones).
const STACKS: usize = 2;
const STACK_SIZE: usize = 4 * 1024;

const MS: Duration = Duration::from_millis(1);

/// What the SysTick hook does: how many more times it raises [`TICKED`] (at a tick that finds
/// the previous raise taken: a signal counts no raises), and the hub it posts a job to at the
/// next tick.
static SIGNALS_LEFT: Mutex<Cell<u32>> = Mutex::new(Cell::new(0));
static TICKED: Signal = Signal::new();
static HUB: Mutex<RefCell<Option<HubHandle>>> = Mutex::new(RefCell::new(None));
/// Where the job posted from SysTick reports that it ran on the hub.
static POSTED: Channel<u32, 1> = Channel::new();

fn on_tick() {
    let (signal, hub) = cortex_m::interrupt::free(|cs| {
        let left = SIGNALS_LEFT.borrow(cs);
        let signal = left.get() > 0 && !TICKED.is_raised();
        if signal {
            left.set(left.get() - 1);
        }
        (signal, HUB.borrow(cs).borrow_mut().take())
    });
    if signal {
        TICKED.signal();
    }
    if let Some(hub) = hub {
        // A job is `Send` and runs in a greenlet of its own, on the hub.
        let posted = hub.post(|| {
            let _ = POSTED.try_send(7);
        });
        if posted.is_err() {
            let _ = POSTED.try_send(0);
        }
    }
}

fn check(ok: bool, what: &str) -> bool {
    hprintln!("[{}] {}", if ok { "ok" } else { "FAILED" }, what);
    ok
}

fn millis() -> u64 {
    now().as_nanos() / 1_000_000
}

#[entry]
fn main() -> ! {
    // 4 KiB of heap for greenlet headers and the hub's collections; the main stack gets what
    // the stacks, the heap and the statics leave of the 16 KiB.
    init_heap!(4 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    static mut STACK_MEM: StackMemory<{ STACKS * STACK_SIZE }> = StackMemory::new();
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stack_mem = unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) }.as_mut_slice();
    let stacks = StaticStacks::new(stack_mem, STACK_SIZE);
    gevent_embedded::init(TickClock::new(SysTickSource), stacks, |_| cortex_m::asm::wfi())
        .expect("the hub is installed once");
    board::on_tick(on_tick);

    hprintln!(
        "gevent-rs on a Cortex-M0 (nRF51822, microbit): {} greenlet stacks of {} KiB",
        STACKS,
        STACK_SIZE / 1024
    );
    let mut all_ok = true;

    // 1. Greenlets sleeping different times wake in deadline order (main is the third).
    let woke = Rc::new(RefCell::new(Vec::new()));
    let sleepers: Vec<_> = [30u32, 10]
        .into_iter()
        .map(|ms| {
            let woke = woke.clone();
            spawn(move || {
                sleep(ms * MS)?;
                woke.borrow_mut().push(ms);
                // Read before it ends: after that the stack is no longer its own.
                Ok::<_, Interrupted>(gevent_embedded::current().stack_high_water())
            })
        })
        .collect();
    let start = millis();
    sleep(20 * MS).expect("nothing interrupts main");
    woke.borrow_mut().push(20);
    joinall(&sleepers).expect("nothing interrupts main");
    let took = millis() - start;
    let marks: Vec<_> = sleepers.iter().map(|s| s.get()).collect();
    let ran = marks.iter().all(Result::is_ok);
    hprintln!("    sleepers woke in order {:?} after {} ms", woke.borrow(), took);
    all_ok &= check(ran && *woke.borrow() == [10, 20, 30] && took >= 30, "timers");
    let marks: Vec<_> = marks.into_iter().map(|m| m.ok().flatten()).collect();
    drop(sleepers);

    // 2. A Timeout interrupts a long sleep at its deadline.
    let timeout = Timeout::start(20 * MS);
    let start = millis();
    let slept = sleep(Duration::from_secs(10));
    let took = millis() - start;
    hprintln!("    sleep(10 s) under Timeout(20 ms): {:?} after {} ms", slept, took);
    all_ok &= check(slept == Err(Interrupted::TimedOut(timeout.id())) && took >= 20, "timeout");
    drop(timeout);

    // 3. A bounded queue between a producer and a consumer.
    let queue = Rc::new(Queue::bounded(2));
    let q = queue.clone();
    let producer = spawn(move || {
        for i in 1..=100u32 {
            q.put(i).map_err(|_| ())?;
        }
        q.close();
        Ok::<_, ()>(())
    });
    let q = queue.clone();
    let consumer = spawn(move || q.iter().sum::<Result<u32, _>>());
    let sum = consumer.get();
    all_ok &= check(sum == Ok(5050) && producer.get() == Ok(Ok(())), "queue of 2 passes 100 items");
    // The handles keep their greenlets' headers and results: freed here, in 4 KiB of heap.
    drop((producer, consumer, queue));

    // 4. SysTick raises a Signal 50 times; a greenlet takes each (the idle poller's wake flag
    //    swaps through a critical section on this core). The hook raises it again only once
    //    taken, so the greenlet misses none, however late it runs.
    const TICKS: u32 = 50;
    let waiter = spawn(|| {
        for _ in 0..TICKS {
            TICKED.wait()?;
        }
        Ok::<_, gevent_embedded::isr::WaitError>(())
    });
    cortex_m::interrupt::free(|cs| SIGNALS_LEFT.borrow(cs).set(TICKS));
    let waited = waiter.get();
    drop(waiter);
    hprintln!("    {} SysTick signals: {:?}", TICKS, waited);
    all_ok &= check(waited == Ok(Ok(())), "a greenlet takes every signal SysTick raises");

    // 5. A job posted from SysTick through a HubHandle runs on the hub, which it wakes from
    //    `wfi`: the post protocol's compare-and-swap and swaps are critical sections here.
    let handle = gevent_embedded::hub_handle();
    cortex_m::interrupt::free(|cs| *HUB.borrow(cs).borrow_mut() = Some(handle));
    let received = POSTED.recv();
    hprintln!("    posted from SysTick: {:?}", received);
    all_ok &= check(received == Ok(7), "a job posted from an interrupt runs on the hub");

    // 6. Two greenlets yield to each other: virtual nanoseconds per yield, which are
    //    instructions when QEMU runs with `-icount shift=0` (a figure, not a check).
    const YIELDS: u32 = 1_000;
    let yielders: Vec<_> = (0..2)
        .map(|_| {
            spawn(|| {
                for _ in 0..YIELDS {
                    yield_now()?;
                }
                Ok::<_, Interrupted>(())
            })
        })
        .collect();
    let start = SysTickSource.ticks();
    joinall(&yielders).expect("nothing interrupts main");
    let ticks = SysTickSource.ticks() - start;
    let per_yield = ticks * 1_000_000_000 / u64::from(CORE_HZ) / u64::from(2 * YIELDS);
    hprintln!(
        "    yield: {} virtual ns per switch ({} yields in each of 2 greenlets)",
        per_yield,
        YIELDS
    );
    all_ok &=
        check(yielders.iter().all(|y| y.get() == Ok(())), "two greenlets yield 1,000 times each");

    hprintln!("    stack high-water marks of the sleepers (bytes of {}): {:?}", STACK_SIZE, marks);
    hprintln!("    heap in use: {} of {} bytes", HEAP.used(), 4 * 1024);
    all_ok &= check(
        marks.iter().all(|m| m.is_some_and(|m| m > 0 && m < STACK_SIZE)),
        "the sleepers' stack high-water marks are known and within their stacks",
    );

    hprintln!("{} after {} ms", if all_ok { "ALL OK" } else { "SOME CHECKS FAILED" }, millis());
    board::exit(all_ok)
}
