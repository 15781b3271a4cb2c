//! The monitor example: the blocking detector names the blocking greenlet and where it was
//! spawned, and the hub's thread gets the same episode as an event.

use super::common::{example, output};

#[test]
fn monitor_reports_the_blocker_by_name_and_spawn_site() {
    let out = output(&mut example("monitor"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let source = include_str!("../../examples/monitor.rs");
    let line = source
        .lines()
        .position(|l| l.contains(r#"Builder::new().name("blocker")"#))
        .map(|i| i + 1)
        .expect("the example spawns the blocker");
    let site = format!("'blocker' (spawned at examples/examples/monitor.rs:{line}:");
    assert!(stderr.contains(&site), "no {site:?} in the report:\n{stderr}");
    assert!(stderr.contains("has not switched greenlets for"), "{stderr}");
    assert!(stdout.contains("the monitor reported greenlet #"), "{stdout}");
    assert!(stdout.contains("BlockingDetected on the hub's thread: 'blocker'"), "{stdout}");
    // The tree dump: three handlers parked on their sockets, under the accept loop.
    assert!(stdout.contains("'StreamServer accept loop' parked: fd "), "{stdout}");
    let handlers = stdout
        .lines()
        .filter(|l| {
            l.contains("'StreamServer handler' parked: fd ") && l.contains("to be readable")
        })
        .count();
    assert_eq!(handlers, 3, "{stdout}");
    assert_eq!(stdout.matches("parked: an event to be set").count(), 3, "{stdout}");
}
