//! gevent's `processes.py`: several child processes run at once, each waited for by its own
//! greenlet with a timeout, and each result printed as it comes. `uname` and `ls` finish at
//! once, `sleep 1` after a second, and `sleep 10` outlives its 2 s timeout and is killed: the
//! whole run takes about 2 s, not the 13 s the children would take one after another.
//!
//! Run with `cargo run -p gevent-examples --example processes`.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use gevent::process::{Command, Stdio};

/// How long each child may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(2);

fn main() {
    gevent::run(|| {
        let started = Instant::now();
        let commands: [&[&str]; 4] = [&["uname"], &["ls"], &["sleep", "1"], &["sleep", "10"]];
        let runs: Vec<_> =
            commands.into_iter().map(|argv| gevent::spawn(move || run(argv, started))).collect();
        gevent::joinall(&runs).expect("nothing interrupts the main greenlet");
        println!("all done in {:.1?}", started.elapsed());
    });
}

/// Runs `argv`, giving it [`TIMEOUT`], and prints what came of it.
fn run(argv: &[&str], started: Instant) {
    let name = argv.join(" ");
    let spawned = Command::new(argv[0]).args(&argv[1..]).stdout(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return println!("{name}: could not start: {e}"),
    };
    match child.communicate(None, Some(TIMEOUT)) {
        Ok(output) => {
            let lines = String::from_utf8_lossy(&output.stdout);
            let shown = lines.split_whitespace().collect::<Vec<_>>().join(" ");
            println!(
                "{name}: {} after {:.1?}: {shown:?}",
                describe(output.status),
                started.elapsed()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            let killed = child.kill().and_then(|()| child.wait());
            match killed {
                Ok(status) => println!(
                    "{name}: still running after {TIMEOUT:?}, {}",
                    describe(status).replace("ended by", "killed with")
                ),
                Err(e) => println!("{name}: still running after {TIMEOUT:?}, and not killed: {e}"),
            }
        }
        Err(e) => println!("{name}: failed: {e}"),
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("ended by signal {signal}"),
        (None, None) => status.to_string(),
    }
}
