//! `TickClock`: the hub's clock over a firmware's tick counter.
//!
//! Ticks become nanoseconds with a multiply and a shift by a factor worked out once, when the
//! clock is made: a 128-bit division per reading cost about 1,980 instructions on a Cortex-M3
//! (which divides 64-bit numbers in software), against 29 for the tick read itself.

use gevent_core::platform::Clock;
use gevent_core::time::Instant;

/// A monotonic tick counter the firmware provides (a SysTick count extended to 64 bits, a
/// timer peripheral, an RTC).
pub trait TickSource {
    /// Ticks since boot; never goes backwards.
    fn ticks(&self) -> u64;
    /// How many ticks make a second. Read once, when the [`TickClock`] is made.
    fn ticks_per_second(&self) -> u64;
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A ratio `a / b` as a whole part and a 64-bit binary fraction rounded up:
/// `x * a / b ≈ x * whole + (x * fraction) >> 64`, which never decreases as `x` grows and for
/// every 64-bit `x` is the exact quotient's floor or 1 above it: the fraction exceeds the true
/// one by less than `2^-64`, so the product exceeds the exact one by less than `x / 2^64 < 1`.
/// Where the exact quotient is whole (a whole millisecond of a 12 MHz clock) the result is it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scale {
    whole: u64,
    fraction: u64,
}

impl Scale {
    /// `a / b`, `b` not zero.
    const fn new(a: u64, b: u64) -> Self {
        let whole = a / b;
        let rest = (a % b) as u128;
        // `rest < b`, so the fraction, rounded up, still fits in 64 bits.
        let fraction = (rest << 64).div_ceil(b as u128) as u64;
        Scale { whole, fraction }
    }

    /// `x * a / b`: its floor or 1 more; saturates at `u64::MAX`.
    #[inline]
    fn apply(self, x: u64) -> u64 {
        // One 64 x 64 -> 128-bit multiply whose high half is kept: a few `umull`s on ARMv7-M.
        let part = ((u128::from(x) * u128::from(self.fraction)) >> 64) as u64;
        x.checked_mul(self.whole).and_then(|w| w.checked_add(part)).unwrap_or(u64::MAX)
    }
}

/// Converts a [`TickSource`] into the hub's nanosecond [`Instant`]s.
///
/// A reading is the exact `ticks * 1e9 / ticks_per_second` rounded down, or 1 ns above it
/// (exact whenever that quotient is whole), and never goes backwards while the ticks do not.
#[derive(Clone, Copy, Debug)]
pub struct TickClock<S> {
    source: S,
    to_nanos: Scale,
    to_ticks: Scale,
}

impl<S: TickSource> TickClock<S> {
    /// A clock reading `source`, whose rate it reads now (a rate of 0 counts as 1 tick a
    /// second rather than dividing by zero).
    pub fn new(source: S) -> Self {
        let hz = source.ticks_per_second().max(1);
        TickClock {
            source,
            to_nanos: Scale::new(NANOS_PER_SECOND, hz),
            to_ticks: Scale::new(hz, NANOS_PER_SECOND),
        }
    }

    /// The instant at `ticks`, as [`now`](Clock::now) reads it then.
    #[inline]
    fn nanos_at(&self, ticks: u64) -> u64 {
        self.to_nanos.apply(ticks)
    }

    /// The first tick at which [`now`](Clock::now) reads `instant` or later: waiting until it
    /// never wakes early.
    pub fn ticks_at(&self, instant: Instant) -> u64 {
        let nanos = instant.as_nanos();
        // Within a tick or two of the answer; the readings at the ticks around it settle it.
        let mut ticks = self.to_ticks.apply(nanos);
        while self.nanos_at(ticks) < nanos {
            if ticks == u64::MAX {
                return u64::MAX;
            }
            ticks += 1;
        }
        while ticks > 0 && self.nanos_at(ticks - 1) >= nanos {
            ticks -= 1;
        }
        ticks
    }
}

impl<S: TickSource> Clock for TickClock<S> {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(self.nanos_at(self.source.ticks()))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::cell::Cell;
    use proptest::prelude::*;

    #[derive(Clone)]
    struct Fixed {
        ticks: Cell<u64>,
        hz: u64,
    }

    impl TickSource for Fixed {
        fn ticks(&self) -> u64 {
            self.ticks.get()
        }
        fn ticks_per_second(&self) -> u64 {
            self.hz
        }
    }

    fn clock(hz: u64) -> TickClock<Fixed> {
        TickClock::new(Fixed { ticks: Cell::new(0), hz })
    }

    /// What the clock computed before: exact, with a 128-bit division.
    fn reference_nanos(ticks: u64, hz: u64) -> u64 {
        u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX)
    }

    fn read(clock: &TickClock<Fixed>, ticks: u64) -> u64 {
        clock.source.ticks.set(ticks);
        clock.now().as_nanos()
    }

    const COMMON_RATES: [u64; 8] =
        [32_768, 1_000, 1_000_000, 12_000_000, 16_000_000, 25_000_000, 48_000_000, 1_000_000_000];

    /// Tick rates: the common ones, and any from 1 Hz to 10 GHz.
    fn rate() -> impl Strategy<Value = u64> {
        prop_oneof![proptest::sample::select(&COMMON_RATES[..]), 1u64..10_000_000_000]
    }

    /// Tick counts: small ones, a century's worth, and any.
    fn ticks() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..1_000_000, 0u64..(100 * 365 * 86_400 * 1_000_000_000), any::<u64>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn now_is_the_exact_reading_or_1_ns_above(hz in rate(), t in ticks()) {
            let exact = reference_nanos(t, hz);
            let got = read(&clock(hz), t);
            prop_assert!(got >= exact && got - exact <= 1, "{t} ticks at {hz} Hz: {got} ns, exact {exact}");
        }

        #[test]
        fn now_never_goes_backwards(hz in rate(), t in ticks(), step in 0u64..1_000) {
            let c = clock(hz);
            let later = t.saturating_add(step);
            prop_assert!(read(&c, t) <= read(&c, later));
            prop_assert!(read(&c, t.saturating_sub(1)) <= read(&c, t));
        }

        #[test]
        fn ticks_at_is_the_first_tick_that_reads_the_instant(hz in rate(), nanos in ticks()) {
            let c = clock(hz);
            let t = c.ticks_at(Instant::from_nanos(nanos));
            if t < u64::MAX {
                prop_assert!(read(&c, t) >= nanos, "wakes early: tick {t} reads {}", read(&c, t));
            }
            if t > 0 {
                prop_assert!(read(&c, t - 1) < nanos, "tick {} reads {nanos} already", t - 1);
            }
        }
    }

    #[test]
    fn common_rates_are_exact_on_whole_milliseconds() {
        for hz in COMMON_RATES {
            let c = clock(hz);
            for ms in [0u64, 1, 7, 1_000, 86_400_000] {
                let t = hz * ms / 1000;
                if t * 1000 == hz * ms {
                    assert_eq!(read(&c, t), ms * 1_000_000, "{ms} ms at {hz} Hz");
                }
            }
        }
    }

    #[test]
    fn a_zero_rate_is_taken_as_one_hertz() {
        assert_eq!(read(&clock(0), 3), 3_000_000_000);
    }
}
