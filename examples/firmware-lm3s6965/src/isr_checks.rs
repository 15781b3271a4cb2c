//! Checks of what interrupt handlers do with the hub: the idle path's wake-up from an
//! interrupt that lands between the hub's last look and its `wfi`, allocation-free signals and
//! a fixed-capacity channel from a handler, the blocking detector run by SysTick, and a
//! blocking call from a handler refused.
//!
//! The interrupt is a spare NVIC line that no emulated peripheral drives, pended by software:
//! by the idle hook itself when a check arms it, which puts it exactly in the window between
//! the hub's look at its wake flag and `wfi`.

use core::cell::Cell;
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use core::time::Duration;

use cortex_m::interrupt::Mutex;

use cortex_m::interrupt::InterruptNumber;
use cortex_m::peripheral::NVIC;
use cortex_m_rt::exception;
use cortex_m_semihosting::hprintln;
use gevent_embedded::isr::{Channel, Full, Signal};
use gevent_embedded::monitor::TickMonitor;
use gevent_embedded::{Builder, TickClock, TickSource, spawn};

use crate::board::{HEAP, SysTickSource};
use crate::{CORE_HZ, check};

/// An interrupt line past the LM3S6965's 43 (QEMU's NVIC has 64), driven by nothing else.
#[derive(Clone, Copy)]
struct SpareIrq;

// SAFETY: 50 is a valid interrupt number on this NVIC (64 lines) and no peripheral uses it.
unsafe impl InterruptNumber for SpareIrq {
    fn number(self) -> u16 {
        50
    }
}

/// What the spare interrupt's handler does.
static ACTION: AtomicU8 = AtomicU8::new(SIGNAL);
const SIGNAL: u8 = 0;
const SEND: u8 = 1;
const HUB_CALL: u8 = 2;

/// How many more times the idle hook pends the spare interrupt before its `wfi`.
static PEND_IN_HOOK: AtomicU32 = AtomicU32::new(0);

static WOKEN: Signal = Signal::new();
static VALUES: Channel<u32, 4> = Channel::new();
/// The next value the handler sends, and how many of its sends were refused as full.
static NEXT_VALUE: AtomicU32 = AtomicU32::new(0);
static SEEN_FULL: AtomicU32 = AtomicU32::new(0);

/// The hub's wait hook: `wfi`, called with interrupts masked (gevent's contract). When a check
/// arms it, it first pends the spare interrupt: an interrupt landing after the hub's last look.
pub(crate) fn idle_hook() {
    if PEND_IN_HOOK.load(Ordering::Relaxed) > 0 {
        PEND_IN_HOOK.fetch_sub(1, Ordering::Relaxed);
        NVIC::pend(SpareIrq);
        // Makes the pend take effect before `wfi`, as an interrupt landing earlier would: with
        // interrupts unmasked, the handler runs here. (Without the barriers QEMU takes the
        // interrupt only at `wfi`, which hides the race.)
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
    }
    cortex_m::asm::wfi();
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn != SpareIrq.number() as i16 {
        panic!("unexpected interrupt {irqn}");
    }
    match ACTION.load(Ordering::Relaxed) {
        SIGNAL => WOKEN.signal(),
        SEND => {
            let value = NEXT_VALUE.fetch_add(1, Ordering::Relaxed);
            if let Err(Full(_)) = VALUES.try_send(value) {
                SEEN_FULL.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => {
            // Must panic, through the panic handler, which ends the run. A spawn, which does
            // not block: any hub call races with the interrupted code's use of the hub (a
            // blocking one, such as a sleep, reaches the same refusal first).
            let spawned = gevent_embedded::spawn(|| ());
            hprintln!("    a spawn in an interrupt handler returned");
            drop(spawned);
            crate::board::exit(false);
        }
    }
}

/// SysTicks since boot (each a millisecond).
fn systicks() -> u64 {
    SysTickSource.ticks() / u64::from(CORE_HZ / 1000)
}

/// The checks that end normally; true if all held.
pub(crate) fn run() -> bool {
    // SAFETY: the handler of this line (above) touches only statics meant for handlers; no
    // critical section in this program relies on the line staying masked.
    unsafe { NVIC::unmask(SpareIrq) };
    let mut all_ok = true;

    // 8. An interrupt landing between the hub's last look and its `wfi` wakes it at once, and
    //    1,000 hand-offs through a Signal allocate nothing.
    const ROUNDS: u32 = 1_000;
    ACTION.store(SIGNAL, Ordering::Relaxed);
    let waiter = spawn(|| {
        WOKEN.wait()?; // the first registration may grow the hub's tables
        let before = HEAP.used();
        let start = systicks();
        for _ in 1..ROUNDS {
            WOKEN.wait()?;
        }
        Ok::<_, gevent_embedded::isr::WaitError>((HEAP.used() - before, systicks() - start))
    });
    PEND_IN_HOOK.store(ROUNDS, Ordering::Relaxed);
    let result = waiter.get();
    let pends_left = PEND_IN_HOOK.swap(0, Ordering::Relaxed);
    hprintln!(
        "    {} signals from an interrupt pended in the idle window: {:?} (heap growth, \
         SysTicks elapsed), {} pends unused",
        ROUNDS,
        result,
        pends_left
    );
    let (grew, ticks) = match result {
        Ok(Ok(figures)) => figures,
        _ => (usize::MAX, u64::MAX),
    };
    // A wake-up lost in the window waits for the next SysTick: at least one per round. (QEMU
    // runs with `-icount shift=0`: the ticks counted are instructions, not the host's time.)
    all_ok &= check(
        pends_left == 0 && ticks < u64::from(ROUNDS) / 2,
        "an interrupt between the idle look and wfi wakes the hub without waiting for a tick",
    );
    all_ok &= check(grew == 0, "1,000 interrupt signals to a greenlet allocate nothing");

    // 9. A channel fed by a handler: a parked receiver gets the value; a full channel refuses
    //    the extra send and counts it.
    ACTION.store(SEND, Ordering::Relaxed);
    let receiver = spawn(|| VALUES.recv());
    PEND_IN_HOOK.store(1, Ordering::Relaxed);
    let received = receiver.get();
    PEND_IN_HOOK.store(0, Ordering::Relaxed);
    for _ in 0..5 {
        NVIC::pend(SpareIrq); // taken at once: thread mode, unmasked
    }
    let queued: [Option<u32>; 5] = core::array::from_fn(|_| VALUES.try_recv());
    hprintln!(
        "    channel of 4: a parked receiver got {:?}; 5 sends queued {:?}, {} refused",
        received,
        queued,
        VALUES.refused()
    );
    all_ok &= check(
        received == Ok(Ok(0))
            && queued == [Some(1), Some(2), Some(3), Some(4), None]
            && VALUES.refused() == 1
            && SEEN_FULL.load(Ordering::Relaxed) == 1,
        "a channel fed by an interrupt wakes its receiver and reports full",
    );
    all_ok &= blocking_greenlet_reported();
    all_ok
}

static MONITOR: TickMonitor = TickMonitor::new(Duration::from_millis(20));
static REPORTS: AtomicU32 = AtomicU32::new(0);
/// SysTicks after the first report, during which the spinner goes on.
static TICKS_AFTER: AtomicU32 = AtomicU32::new(0);
static REPORTED_NAME: Mutex<Cell<Option<&'static str>>> = Mutex::new(Cell::new(None));

/// The SysTick hook: the blocking check, reporting by semihosting.
fn blocking_check() {
    // The clock, not `gevent_embedded::now()`: the hub belongs to the code SysTick interrupts.
    let now = gevent_embedded::platform::Clock::now(&TickClock::new(SysTickSource));
    if let Some(report) = MONITOR.check(now) {
        hprintln!("    {}", report);
        cortex_m::interrupt::free(|cs| REPORTED_NAME.borrow(cs).set(report.greenlet.name));
        REPORTS.fetch_add(1, Ordering::Relaxed);
    } else if REPORTS.load(Ordering::Relaxed) > 0 {
        TICKS_AFTER.fetch_add(1, Ordering::Relaxed);
    }
}

/// 10. A greenlet that keeps the hub busy past the budget is reported once, by name, by the
///     check that SysTick runs.
fn blocking_greenlet_reported() -> bool {
    MONITOR.attach().expect("the hub has no heartbeat yet");
    crate::board::on_tick(blocking_check);
    let spinner = Builder::new().name("spinner").spawn(|| {
        // Busy, never switching, until the check has reported it and gone on for 3 budgets.
        let give_up = systicks() + 5_000;
        while TICKS_AFTER.load(Ordering::Relaxed) < 60 && systicks() < give_up {
            core::hint::spin_loop();
        }
    });
    let ended = spinner.get().is_ok();
    let name = cortex_m::interrupt::free(|cs| REPORTED_NAME.borrow(cs).get());
    let reports = REPORTS.load(Ordering::Relaxed);
    hprintln!("    blocking reports: {} (greenlet {:?})", reports, name);
    check(
        ended && reports == 1 && name == Some("spinner"),
        "a busy greenlet is reported once, by name",
    )
}

/// 11. A hub function called from an interrupt handler, even one that does not block, panics
///     with a clear message instead of racing with the interrupted code's use of the hub (or
///     switching stacks inside the exception). Ends the run: the panic handler exits with
///     success when the panic is this one.
pub(crate) fn hub_call_from_a_handler() {
    crate::board::expect_panic("called from an interrupt handler");
    ACTION.store(HUB_CALL, Ordering::Relaxed);
    NVIC::pend(SpareIrq);
}
