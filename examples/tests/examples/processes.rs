//! The `processes` example runs its children at once and reports each, the killed one too.

use std::process::Command;

use super::common::{example, ok, output};

#[test]
fn processes_reports_every_child_and_kills_the_slow_one() {
    let said = ok(output(&mut example("processes")));
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
