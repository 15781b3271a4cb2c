//! The `signal_handler` example, run as a reader of the README runs it.

use std::process::{Command, Output};
use std::sync::mpsc;

use super::common::{BACKSTOP, example};

#[test]
fn signal_handler_handles_each_signal_it_sends_itself_and_exits() {
    let child = example("signal_handler").stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let Output { status, stdout, .. } = match outcome.recv_timeout(BACKSTOP) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the example hung and was killed");
        }
    };
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(status.success(), "{status}: {stdout}");
    for n in 1..=3 {
        assert!(stdout.contains(&format!("Received SIGUSR1 ({n} so far)")), "{stdout}");
    }
    assert!(stdout.ends_with("handled 3 signals\n"), "{stdout}");
}
