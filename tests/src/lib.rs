//! Helpers shared by the acceptance tests.

use std::process::{Command, Output};

/// Runs the `gevent-test-child` program with one scenario and returns its output.
pub fn run_child(child_exe: &str, scenario: &str) -> Output {
    Command::new(child_exe)
        .arg(scenario)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("could not run {child_exe} {scenario}: {e}"))
}
