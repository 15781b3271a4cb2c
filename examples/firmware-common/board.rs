//! Board bring-up shared by the Cortex-M firmware examples (included by each with `#[path]`):
//! the heap, a SysTick clock, and a panic handler that reports by semihosting.
//!
//! `CORE_HZ` is the including crate's core clock.

use core::cell::Cell;

use cortex_m::interrupt::Mutex;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use cortex_m_semihosting::{debug, hprintln};
use embedded_alloc::LlffHeap as Heap;
use gevent_embedded::TickSource;

use super::CORE_HZ;

#[global_allocator]
pub(crate) static HEAP: Heap = Heap::empty();

/// SysTick fires every millisecond; the counter in between gives sub-millisecond ticks.
const TICKS_PER_MS: u32 = CORE_HZ / 1000;

static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// Gives the global allocator a static buffer of `$size` bytes. Use once, before anything
/// allocates.
macro_rules! init_heap {
    ($size:expr) => {{
        use core::mem::MaybeUninit;
        const SIZE: usize = $size;
        static mut MEMORY: [MaybeUninit<u8>; SIZE] = [MaybeUninit::uninit(); SIZE];
        // SAFETY: used once, before any allocation; the buffer is used by nothing else.
        unsafe { board::HEAP.init(core::ptr::addr_of_mut!(MEMORY) as usize, SIZE) }
    }};
}

/// Starts SysTick: an interrupt every millisecond from the core clock.
pub(crate) fn start_systick(syst: &mut cortex_m::peripheral::SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(TICKS_PER_MS - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// What the firmware also runs at each SysTick (a blocking check, say).
static ON_TICK: Mutex<Cell<Option<fn()>>> = Mutex::new(Cell::new(None));

/// Runs `hook` in the SysTick handler from now on, after the tick is counted.
#[allow(dead_code)] // not every firmware has one
pub(crate) fn on_tick(hook: fn()) {
    cortex_m::interrupt::free(|cs| ON_TICK.borrow(cs).set(Some(hook)));
}

#[exception]
fn SysTick() {
    let hook = cortex_m::interrupt::free(|cs| {
        let millis = MILLIS.borrow(cs);
        millis.set(millis.get() + 1);
        ON_TICK.borrow(cs).get()
    });
    if let Some(hook) = hook {
        hook();
    }
}

/// SysTick as a 64-bit tick counter at the core clock.
#[derive(Clone, Copy)]
pub(crate) struct SysTickSource;

impl TickSource for SysTickSource {
    fn ticks(&self) -> u64 {
        cortex_m::interrupt::free(|cs| {
            let millis = MILLIS.borrow(cs).get();
            let current = cortex_m::peripheral::SYST::get_current();
            // The counter wrapped after interrupts were masked: count that millisecond too.
            let (millis, current) = if cortex_m::peripheral::SCB::is_pendst_pending() {
                (millis + 1, cortex_m::peripheral::SYST::get_current())
            } else {
                (millis, current)
            };
            millis * u64::from(TICKS_PER_MS) + u64::from(TICKS_PER_MS - 1 - current)
        })
    }

    fn ticks_per_second(&self) -> u64 {
        u64::from(CORE_HZ)
    }
}

/// Ends the QEMU run with a status that says whether every check held.
pub(crate) fn exit(all_ok: bool) -> ! {
    debug::exit(if all_ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

/// A panic whose message contains this ends the run as a success: a check that must panic.
static EXPECTED_PANIC: Mutex<Cell<Option<&'static str>>> = Mutex::new(Cell::new(None));

/// From now on, a panic saying `what` is the expected end of the run (exit status 0).
#[allow(dead_code)] // not every firmware has a check that must panic
pub(crate) fn expect_panic(what: &'static str) {
    cortex_m::interrupt::free(|cs| EXPECTED_PANIC.borrow(cs).set(Some(what)));
}

/// Whether a formatted message contains a string, found while it is written (no buffer).
struct Contains {
    needle: &'static [u8],
    /// How much of `needle` the text written so far ends with, or `needle.len()` once found.
    matched: usize,
}

impl core::fmt::Write for Contains {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.matched == self.needle.len() {
                break;
            }
            // Naive restart is enough for the needles used here (no repeated prefix).
            self.matched = if self.needle[self.matched] == b {
                self.matched + 1
            } else {
                usize::from(self.needle[0] == b)
            };
        }
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    let expected = cortex_m::interrupt::free(|cs| EXPECTED_PANIC.borrow(cs).get());
    if let Some(what) = expected {
        let mut found = Contains { needle: what.as_bytes(), matched: 0 };
        let _ = core::fmt::write(&mut found, format_args!("{}", info.message()));
        let ok = found.matched == what.len();
        hprintln!("[{}] the expected panic ('{}')", if ok { "ok" } else { "FAILED" }, what);
        exit(ok)
    }
    exit(false)
}
