//! `gevent::os::{stdin, stdout, stderr}` in child processes: this test binary runs itself with
//! `GEVENT_STDIO_CHILD` naming a role, its standard descriptors piped or redirected by the
//! parent. The harness prints to stdout too, so the payload is framed by a marker line.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

mod common;
use common::wait_or_kill;

const ROLE: &str = "GEVENT_STDIO_CHILD";
/// Far longer than the child takes; reached only if it hangs.
const BACKSTOP: Duration = Duration::from_secs(60);
const MARKER: &[u8] = b"--payload--\n";

fn payload() -> Vec<u8> {
    (0..300_000usize).map(|i| (i % 251) as u8).collect()
}

/// This binary, running only the `child` test with `role`.
fn run_child(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command.args(["child", "--exact", "--nocapture", "--test-threads=1"]).env(ROLE, role);
    command
}

/// The bytes after the marker, as many as the payload has.
fn framed(output: &[u8], len: usize) -> &[u8] {
    let start = output
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .unwrap_or_else(|| panic!("no marker in {:?}", String::from_utf8_lossy(output)))
        + MARKER.len();
    &output[start..(start + len).min(output.len())]
}

/// Does nothing in the parent; in a child, plays the role the parent named.
#[test]
fn child() {
    match std::env::var(ROLE).as_deref() {
        Ok("echo") => echo_with_ticker(),
        Ok("null") => read_from_null(),
        _ => {}
    }
}

/// Ticks on stderr while stdin stays empty, then echoes stdin to stdout after the marker.
fn echo_with_ticker() {
    gevent::run(|| {
        let stdin = gevent::os::stdin().unwrap();
        let stdout = gevent::os::stdout().unwrap();
        assert!(format!("{stdin:?}").contains("polled"), "{stdin:?}");
        let got_data = Rc::new(Cell::new(false));
        let _ticker = gevent::spawn({
            let got_data = got_data.clone();
            move || -> std::io::Result<()> {
                let mut stderr = gevent::os::stderr()?;
                while !got_data.get() {
                    stderr.write_all(b"tick\n")?;
                    gevent::sleep(Duration::from_millis(1))?;
                }
                Ok(())
            }
        });
        (&stdout).write_all(MARKER).unwrap();
        let mut buf = vec![0; 65536];
        loop {
            let n = (&stdin).read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got_data.set(true);
            (&stdout).write_all(&buf[..n]).unwrap();
        }
        // The shared descriptor was left blocking, as the parent handed it over.
        let flags = rustix::fs::fcntl_getfl(std::io::stdin()).unwrap();
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
    });
}

fn read_from_null() {
    gevent::run(|| {
        let mut stdin = gevent::os::stdin().unwrap();
        assert!(format!("{stdin:?}").contains("direct"), "{stdin:?}");
        let mut all = Vec::new();
        assert_eq!(stdin.read_to_end(&mut all).unwrap(), 0);
        // A regular file as stdout goes through the pool.
        let mut stdout = gevent::os::stdout().unwrap();
        assert!(format!("{stdout:?}").contains("thread pool"), "{stdout:?}");
        stdout.write_all(MARKER).unwrap();
        stdout.write_all(&payload()).unwrap();
    });
}

#[test]
fn a_greenlet_keeps_ticking_while_stdin_is_empty_and_the_data_arrives_intact() {
    let mut process = run_child("echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    // A child blocked in a read that took its whole thread never ticks: killed after the
    // backstop, its stderr ends and the test fails instead of hanging.
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let pid = rustix::process::Pid::from_child(&process);
    std::thread::spawn(move || {
        if ended.recv_timeout(BACKSTOP) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    });
    let mut stdin = process.stdin.take().unwrap();
    let mut stdout = process.stdout.take().unwrap();
    let mut stderr = BufReader::new(process.stderr.take().unwrap());
    // Nothing is written to the child's stdin until it has ticked three times: its reader was
    // waiting on an empty pipe all along, and the ticker ran anyway.
    let mut ticks = 0;
    let mut line = String::new();
    while ticks < 3 {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "the child ended before ticking");
        if line == "tick\n" {
            ticks += 1;
        }
    }
    let data = payload();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&data).unwrap();
    });
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        rest
    });
    let mut output = Vec::new();
    stdout.read_to_end(&mut output).unwrap();
    writer.join().unwrap();
    let errors = drain.join().unwrap();
    let status = process.wait().unwrap();
    drop(done);
    assert!(status.success(), "the child failed: {status}; stderr: {errors}");
    let data = payload();
    assert!(framed(&output, data.len()) == data, "the echoed bytes differ");
}

#[test]
fn dev_null_reads_at_once_and_a_regular_file_is_written_on_the_pool() {
    let path = std::env::temp_dir().join(format!("gevent-stdio-{}", std::process::id()));
    let out = std::fs::File::create(&path).unwrap();
    let child = run_child("null").stdin(Stdio::null()).stdout(out).spawn().unwrap();
    let status = wait_or_kill(child, "null").status;
    let output = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(status.success(), "the child failed: {status}");
    let data = payload();
    assert!(framed(&output, data.len()) == data, "the written bytes differ");
}
