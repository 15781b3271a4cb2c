//! What every example test needs: the built example, and a backstop that makes a hung
//! example fail its test instead of hanging the run.

use std::process::Command;
use std::time::Duration;

/// How long an example may run before its test kills it and fails.
pub(crate) const BACKSTOP: Duration = Duration::from_secs(60);

/// The built example `name`, beside this test's executable (`target/<profile>/examples/`).
pub(crate) fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is not built: `cargo test` builds the examples", path.display());
    Command::new(path)
}

/// Kills the process `pid` after [`BACKSTOP`]. The examples end within seconds, and the test
/// process soon after them, long before this fires, unless an example hangs.
pub(crate) fn backstop(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(BACKSTOP);
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
}
