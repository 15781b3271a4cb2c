//! Behaviour that ends a process or happens at its exit, observed from outside.

use gevent_tests::run_child;

const CHILD: &str = env!("CARGO_BIN_EXE_gevent-test-child");

#[test]
fn a_stack_overflow_aborts_with_a_message_naming_the_greenlet() {
    let out = run_child(CHILD, "overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the process must not survive: {stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "aborted (SIGABRT): {stderr}");
    }
    assert!(stderr.contains("stack overflow"), "{stderr}");
    assert!(stderr.contains("'deep-diver'"), "{stderr}");
    assert!(stderr.contains("gevent-test-child.rs"), "names the spawn site: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unreachable"));
}

#[test]
fn a_panicking_greenlet_is_reported_once_and_the_others_go_on() {
    let out = run_child(CHILD, "panic");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("panicked at").count(), 1, "reported exactly once: {stderr}");
    assert!(stderr.contains("greenlet #1 'doomed'") && stderr.contains("deliberate"), "{stderr}");
    assert!(
        stdout.contains("get: greenlet #1 'doomed'") && stdout.contains("panicked: deliberate"),
        "{stdout}"
    );
    assert!(stdout.contains("survivor: Ok(7)"), "{stdout}");
}

#[test]
fn greenlets_alive_at_exit_are_killed_and_their_destructors_run() {
    let out = run_child(CHILD, "exit-with-live-greenlets");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["main returns", "sleep ended: Err(Killed)", "guard dropped"]
    );
}
