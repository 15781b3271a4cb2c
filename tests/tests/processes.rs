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
fn run_kills_the_greenlets_still_alive_and_their_destructors_run() {
    let out = run_child(CHILD, "run-ends-live-greenlets");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["main returns", "sleep ended: Err(Killed)", "guard dropped"]
    );
    assert!(!stderr.contains("leaked"), "nothing is left to leak: {stderr}");
}

/// Checks that a child exited normally with `stdout_lines` on stdout, after warning exactly
/// once that one greenlet was leaked.
fn assert_one_greenlet_leaked_with_one_warning(scenario: &str, stdout_lines: &[&str]) {
    let out = run_child(CHILD, scenario);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{scenario}: {:?}, stderr: {stderr}", out.status);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), stdout_lines, "{scenario}");
    assert_eq!(stderr.lines().count(), 1, "{scenario}: one warning, nothing else: {stderr}");
    assert!(
        stderr.contains("a thread exited with 1 greenlet alive, which was leaked")
            && stderr.contains("gevent::run(...) or call gevent::shutdown()"),
        "{scenario}: says how many and how to avoid it: {stderr}"
    );
}

#[test]
fn greenlets_alive_at_exit_are_leaked_with_one_warning_and_not_resumed() {
    // Not resumed: neither "sleep ended" nor "guard dropped".
    assert_one_greenlet_leaked_with_one_warning("exit-with-live-greenlets", &["main returns"]);
}

// A greenlet parked inside `LocalKey::with` of a thread-local destroyed at thread exit before
// the hub: resuming it at exit read the freed thread-local (SIGSEGV).
#[test]
fn a_greenlet_parked_in_a_thread_local_is_not_resumed_when_the_main_thread_exits() {
    assert_one_greenlet_leaked_with_one_warning("exit-parked-in-thread-local", &["main returns"]);
}

#[test]
fn a_greenlet_parked_in_a_thread_local_is_not_resumed_when_its_thread_exits() {
    assert_one_greenlet_leaked_with_one_warning(
        "thread-exit-parked-in-thread-local",
        &["thread joined"],
    );
}

#[test]
fn a_thread_local_destroyed_after_the_hub_can_drop_gevent_values() {
    let out = run_child(CHILD, "thread-local-drops-gevent-values-after-the-hub");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}, stderr: {stderr}", out.status);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["main returns", "gevent values dropped after the hub ended"]
    );
    assert_eq!(stderr, "", "nothing leaked, nothing to warn about");
}

#[test]
fn a_thread_local_destroyed_after_the_hub_cannot_block_and_is_told_why() {
    let out = run_child(CHILD, "thread-local-sleeps-after-the-hub");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A panic in a thread-local destructor ends the process (std aborts), after the message.
    assert!(!out.status.success());
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "aborted (SIGABRT), not a crash: {stderr}");
    }
    assert!(
        stderr.contains(
            "this thread's hub is gone: it ended with the thread's thread-locals, and gevent \
             cannot be used from a thread-local destructor that runs after it"
        ),
        "{stderr}"
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["main returns"]);
}

// Under AddressSanitizer (the "asan" step of `cargo xtask test`) every frame carries redzones and
// starting a greenlet needs more than these stacks of one and two pages: the greenlet overflows its
// stack, and the guard page turns that into an abort naming it.
#[test]
#[cfg_attr(gevent_asan, ignore = "ASan's redzones overflow a greenlet's stack of 4 or 8 KiB")]
fn odd_and_tiny_stack_sizes_are_rounded_up_and_run() {
    let out = run_child(CHILD, "small-stack-sizes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {stderr}{stdout}", out.status);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["5000: ran", "1: ran"]);
}

#[test]
fn impossible_stack_sizes_fail_to_start_without_a_crash() {
    let out = run_child(CHILD, "impossible-stack-sizes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {stderr}{stdout}", out.status);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, size) in lines.iter().zip([usize::MAX, usize::MAX - 10]) {
        assert!(line.starts_with(&format!("{size}: no stack: ")), "{line}");
        assert!(line.contains(&format!("stack of {size} bytes")), "names the size: {line}");
    }
}

#[test]
fn greenlets_without_a_stack_each_fail_but_stderr_says_so_once() {
    let out = run_child(CHILD, "no-stacks");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert_eq!(stdout.trim(), "no stack: 1000", "each greenlet fails with NoStack");
    assert_eq!(stderr.matches("could not start").count(), 1, "reported once: {stderr}");
    assert!(stderr.contains("out of test stacks"), "{stderr}");
}
