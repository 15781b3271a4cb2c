//! The `processes` example runs its children at once and reports each, the killed one too.
//! `cargo test` builds the examples before it runs this.

use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the example (about 2 s) may run before the test kills it and fails.
const BACKSTOP: Duration = Duration::from_secs(60);

#[test]
fn processes_reports_every_child_and_kills_the_slow_one() {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap().join("examples");
    let path = dir.join(format!("processes{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is not built: `cargo test` builds the examples", path.display());
    let child = Command::new(path).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(BACKSTOP);
        // The example ends within seconds, and this process with it, unless it hangs.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{}: {said}", output.status);
    let uname = String::from_utf8(Command::new("uname").output().unwrap().stdout).unwrap();
    for expected in [
        "uname: exited with 0 after".to_owned(),
        format!("{:?}", uname.trim()),
        "ls: exited with 0 after".to_owned(),
        "sleep 1: exited with 0 after".to_owned(),
        "sleep 10: still running after 2s, killed with signal 9".to_owned(),
        "all done in".to_owned(),
    ] {
        assert!(said.contains(&expected), "no {expected:?} in:\n{said}");
    }
}
