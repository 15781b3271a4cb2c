//! I/O registrations on the simulated hub: what a poller accepts as a source, and a source
//! registered exactly while its registration holds it.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Interest, Readiness};
use gevent_core::sim::{self, SimSource};
use gevent_core::time::Instant;

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
