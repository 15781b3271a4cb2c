//! The tick monitor: a greenlet that keeps the hub from switching is reported once, by name,
//! by checks that another thread makes (standing for the SysTick handler).

mod common;
use common::HostTicks;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gevent_embedded::monitor::TickMonitor;
use gevent_embedded::platform::Clock;
use gevent_embedded::{Builder, TickClock};

const STACK: usize = 16 * 1024;

#[test]
fn a_busy_greenlet_is_reported_once_by_name() {
    static MONITOR: TickMonitor = TickMonitor::new(Duration::from_millis(20));
    static REPORTS: AtomicUsize = AtomicUsize::new(0);
    /// Checks made after the first report.
    static CHECKS_AFTER: AtomicUsize = AtomicUsize::new(0);

    let clock = TickClock::new(HostTicks::start());
    gevent_embedded::init(clock, common::leaked_stacks(2, STACK), |_| std::thread::yield_now())
        .expect("one hub per test thread");
    MONITOR.attach().expect("the hub has no heartbeat yet");
    assert!(MONITOR.attach().is_err(), "a second heartbeat is refused");

    let ticker = std::thread::spawn(move || {
        let mut names = Vec::new();
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while CHECKS_AFTER.load(Ordering::SeqCst) < 20 && std::time::Instant::now() < give_up {
            if let Some(report) = MONITOR.check(clock.now()) {
                names.push(report.greenlet.name);
                assert!(report.to_string().contains("'spinner'"), "{report}");
                REPORTS.fetch_add(1, Ordering::SeqCst);
            } else if REPORTS.load(Ordering::SeqCst) > 0 {
                CHECKS_AFTER.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(2)); // the tick period
        }
        names
    });
    let spinner = Builder::new().name("spinner").spawn(|| {
        // Busy, never switching, until the checks have seen it and gone on looking for a while.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while CHECKS_AFTER.load(Ordering::SeqCst) < 20 && std::time::Instant::now() < give_up {
            std::hint::spin_loop();
        }
    });
    spinner.get().unwrap();
    let names = ticker.join().unwrap();
    assert_eq!(names, [Some("spinner")], "one report of the blocked episode");
}
