//! gevent for Rust on a Cortex-M4F (`thumbv7em-none-eabihf`, QEMU `mps2-an386`): checks that
//! floating-point state survives greenlet switches on a target whose FPU has 16 double
//! registers, where corosensei's clobber list names D16–D31 (which do not exist).
//!
//! Greenlets keep floating-point values live in registers across `yield_now` and compare
//! their results with the same computation done without switching; a greenlet that changes its
//! rounding mode (FPSCR) keeps it across switches, and the others keep theirs. Exits 0 only if
//! all match.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use gevent_embedded::{StackMemory, StaticStacks, TickClock, spawn, yield_now};

#[path = "../../firmware-common/board.rs"]
#[macro_use]
mod board;

use board::SysTickSource;

/// QEMU's mps2 boards run the core at 25 MHz.
const CORE_HZ: u32 = 25_000_000;

/// FPSCR's rounding-mode field (bits 22-23) set to "toward zero".
const ROUND_TOWARD_ZERO: u32 = 3 << 22;

/// The floating-point status and control register.
fn fpscr() -> u32 {
    let value: u32;
    // SAFETY: VMRS reads FPSCR into a core register; no memory, no other state changes.
    unsafe { core::arch::asm!("vmrs {}, fpscr", out(reg) value, options(nomem, nostack)) };
    value
}

/// Sets FPSCR (the rounding mode, flush-to-zero and default-NaN bits are what matter here).
fn set_fpscr(value: u32) {
    // SAFETY: VMSR writes FPSCR from a core register; values from `fpscr` with the rounding
    // field changed are valid.
    unsafe { core::arch::asm!("vmsr fpscr, {}", in(reg) value, options(nomem, nostack)) };
}

/// Whether a greenlet's rounding mode is its own across switches: one greenlet rounds toward
/// zero while others run and see their own (the nearest, the default).
fn rounding_mode_is_per_greenlet() -> bool {
    let default = fpscr();
    let changer = spawn(move || {
        set_fpscr(default | ROUND_TOWARD_ZERO);
        let mut kept = true;
        for _ in 0..3 {
            yield_now().expect("nothing interrupts the changer");
            kept &= fpscr() & ROUND_TOWARD_ZERO == ROUND_TOWARD_ZERO;
        }
        set_fpscr(default);
        kept
    });
    let other = spawn(move || {
        let mut own = true;
        for _ in 0..3 {
            yield_now().expect("nothing interrupts the other");
            own &= fpscr() & ROUND_TOWARD_ZERO == default & ROUND_TOWARD_ZERO;
        }
        own
    });
    let kept = changer.get().expect("the changer finishes");
    let own = other.get().expect("the other finishes");
    hprintln!("rounding mode kept by its greenlet: {}, others keep theirs: {}", kept, own);
    kept && own && fpscr() == default
}

/// A float computation with many live values, switching to other greenlets every step when
/// `switch` is set.
fn work(seed: f32, switch: bool) -> f32 {
    let (mut a, mut b, mut c, mut d) = (seed, seed * 1.5, seed * 2.25, seed * 3.125);
    let (mut e, mut f, mut g, mut h) = (seed + 0.5, seed + 1.5, seed - 0.25, seed * 0.75);
    for i in 0..200 {
        let x = i as f32 * 0.001;
        a = a * 0.999 + b * x;
        b = b * 0.998 + c * x;
        c = c * 0.997 + d * x;
        d = d * 0.996 + e * x;
        e = e * 0.995 + f * x;
        f = f * 0.994 + g * x;
        g = g * 0.993 + h * x;
        h = h * 0.992 + a * x;
        if switch {
            yield_now().expect("nothing interrupts the workers");
        }
    }
    a + b + c + d + e + f + g + h
}

#[entry]
fn main() -> ! {
    init_heap!(64 * 1024);
    let mut core = cortex_m::Peripherals::take().expect("taken once");
    board::start_systick(&mut core.SYST);

    static mut STACK_MEM: StackMemory<{ 8 * 8 * 1024 }> = StackMemory::new();
    // SAFETY: the only reference ever made to this buffer, handed to the stack pool for good.
    let stacks = StaticStacks::new(
        unsafe { &mut *core::ptr::addr_of_mut!(STACK_MEM) }.as_mut_slice(),
        8 * 1024,
    );
    gevent_embedded::init(TickClock::new(SysTickSource), stacks, |_| cortex_m::asm::wfi())
        .expect("the hub is installed once");

    let seeds = [1.0f32, 2.5, -3.75, 0.125, 7.0, -0.5];
    let expected: Vec<f32> = seeds.iter().map(|&s| work(s, false)).collect();
    let workers: Vec<_> = seeds.iter().map(|&s| spawn(move || work(s, true))).collect();
    let got: Vec<f32> = workers.iter().map(|w| w.get().expect("workers finish")).collect();
    let ok = got.iter().zip(&expected).all(|(g, e)| g.to_bits() == e.to_bits());
    let ok = rounding_mode_is_per_greenlet() && ok;
    hprintln!("float results across 1,200 switches: {:?}", got);
    hprintln!("expected (no switches):             {:?}", expected);
    hprintln!("{}", if ok { "ALL OK: FPU state survives switches" } else { "MISMATCH" });
    board::exit(ok)
}
