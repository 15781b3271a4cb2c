//! I/O registrations on the simulated hub: what a poller accepts as a source, and a source
//! registered exactly while its registration holds it.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Interest, Readiness};
use gevent_core::sim::{self, SimSource};
use gevent_core::time::Instant;
use gevent_core::{Timeout, now};
use std::time::Duration;

fn at(nanos: u64) -> Instant {
    Instant::from_nanos(nanos)
}

#[test]
fn a_source_type_the_poller_does_not_watch_is_refused() {
    sim::run(|| {
        // The simulated poller watches SimSource only; a bare number names nothing to it.
        let err = IoRegistration::new(7u64).unwrap_err();
        assert!(err.to_string().contains("SimSource"), "{err}");
    });
}

#[test]
fn a_source_is_registered_while_its_registration_holds_it_and_no_longer() {
    sim::run_with(|sim| {
        let reg = IoRegistration::new(SimSource(7)).unwrap();
        let err = IoRegistration::new(SimSource(7)).unwrap_err();
        assert!(err.to_string().contains("registered already"), "{err}");

        // `into_inner` deregisters before it gives the source back, and so does `drop`.
        let source = reg.into_inner();
        let reg = IoRegistration::new(source).unwrap();
        drop(reg);
        let reg = IoRegistration::new(SimSource(7)).unwrap();

        sim.io.schedule(
            SimSource(7),
            Readiness { readable: true, writable: false },
            Instant::from_nanos(0),
        );
        reg.wait(Interest::READABLE).unwrap();
        assert_eq!(*reg.source(), SimSource(7));
    });
}

#[test]
fn wait_any_parks_once_until_one_of_its_sources_is_ready() {
    sim::run_with(|sim| {
        let a = IoRegistration::new(SimSource(1)).unwrap();
        let b = IoRegistration::new(SimSource(2)).unwrap();
        sim.io.schedule(SimSource(2), Readiness { readable: false, writable: true }, at(5_000));
        // `a` becoming writable would not count: only its readability is asked for.
        IoRegistration::wait_any(&[(&a, Interest::READABLE), (&b, Interest::BOTH)]).unwrap();
        assert_eq!(now(), at(5_000));
        assert_eq!(b.readiness(), Readiness { readable: false, writable: true });
        assert_eq!(a.readiness(), Readiness::default());

        // Already ready: returns at once, whatever the order.
        IoRegistration::wait_any(&[(&a, Interest::READABLE), (&b, Interest::WRITABLE)]).unwrap();
        assert_eq!(now(), at(5_000));
    });
}

#[test]
fn wait_any_is_interrupted_by_a_timeout() {
    sim::run_with(|sim| {
        let a = IoRegistration::new(SimSource(1)).unwrap();
        let b = IoRegistration::new(SimSource(2)).unwrap();
        let timeout = Timeout::start(Duration::from_micros(3));
        let why = IoRegistration::wait_any(&[(&a, Interest::READABLE), (&b, Interest::READABLE)])
            .unwrap_err();
        assert!(timeout.is(&why), "{why:?}");
        drop(timeout);

        // Registrations left by an interrupted `wait_any` wait as before.
        sim.io.schedule(SimSource(2), Readiness { readable: true, writable: false }, at(20_000));
        b.wait(Interest::READABLE).unwrap();
        assert_eq!(now(), at(20_000));
    });
}

#[test]
fn wait_any_on_nothing_parks_until_interrupted() {
    sim::run(|| {
        let timeout = Timeout::start(Duration::from_micros(3));
        let why = IoRegistration::<SimSource>::wait_any(&[]).unwrap_err();
        assert!(timeout.is(&why), "{why:?}");
    });
}
