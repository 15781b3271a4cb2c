//! The `signal_handler` example, run as a reader of the README runs it.

use super::common::{example, ok, output};

#[test]
fn signal_handler_handles_each_signal_it_sends_itself_and_exits() {
    let stdout = ok(output(&mut example("signal_handler")));
    for n in 1..=3 {
        assert!(stdout.contains(&format!("Received SIGUSR1 ({n} so far)")), "{stdout}");
    }
    assert!(stdout.ends_with("handled 3 signals\n"), "{stdout}");
}
