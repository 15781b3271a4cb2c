//! What every example test needs: the built example, and a backstop that makes a hung
//! example fail its test instead of hanging the run.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
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

/// Kills the process `pid` if the returned guard still lives [`BACKSTOP`] after this call: keep
/// it until the process has been waited for, and drop it then, before the pid can name another
/// process.
#[must_use = "the backstop is called off when the guard is dropped"]
pub(crate) fn backstop(pid: u32) -> Backstop {
    let (called_off, ended) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if ended.recv_timeout(BACKSTOP) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    Backstop { _called_off: called_off }
}

/// Calls off a [`backstop`] when dropped.
pub(crate) struct Backstop {
    _called_off: mpsc::Sender<()>,
}

/// Runs `command` to completion with its stdout and stderr captured, killing it after
/// [`BACKSTOP`].
pub(crate) fn output(command: &mut Command) -> Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let _backstop = backstop(child.id());
    child.wait_with_output().unwrap()
}

/// The stdout of a finished example, once it exited successfully; its stdout and stderr are the
/// failure message otherwise.
pub(crate) fn ok(output: Output) -> String {
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{}: {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
