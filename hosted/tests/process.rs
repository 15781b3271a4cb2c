//! `gevent::process` against real programs (`cat`, `sh`, `sleep`, `echo`, `tr`): exit codes and
//! signals as std reports them, big transfers both ways at once, timeouts that lose nothing,
//! and waits that leave the other greenlets running.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;

use gevent::process::{Child, Command, Stdio};
use gevent::{Interrupted, Timeout, sleep, spawn, yield_now};

/// Far longer than any of these tests takes; reached only if a wait hangs, which then fails
/// with an error carrying this timeout instead of hanging the run.
const BACKSTOP: Duration = Duration::from_secs(60);

fn within_backstop<R>(test: impl FnOnce() -> R) -> R {
    gevent::run(|| {
        let _backstop = Timeout::start(BACKSTOP);
        test()
    })
}

/// A child that keeps running until it is killed.
fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

#[test]
fn cat_pipes_ten_mebibytes_each_way_at_once() {
    within_backstop(|| {
        // Not a repeating pattern, so a lost or reordered chunk shows.
        let mut state = 0x2545_f491_u32;
        let input: Vec<u8> = (0..10 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = child.communicate(Some(&input), None).unwrap();
        assert!(output.status.success(), "{}", output.status);
        assert_eq!(output.stdout.len(), input.len());
        assert!(output.stdout == input, "cat gave back different bytes");
        assert!(output.stderr.is_empty());
        assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
    });
}

#[test]
fn an_exit_code_is_reported_like_std() {
    within_backstop(|| {
        let status = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(status.signal(), None);
        assert!(!status.success());
    });
}

#[test]
fn a_signal_that_ended_the_child_is_reported_like_std() {
    within_backstop(|| {
        let status = Command::new("sh").args(["-c", "kill -TERM $$"]).status().unwrap();
        assert_eq!(status.signal(), Some(15));
        assert_eq!(status.code(), None);
    });
}

#[test]
fn sleep_outlives_wait_timeout_then_is_killed() {
    within_backstop(|| {
        let mut child = sleeper();
        assert_eq!(child.wait_timeout(Duration::from_millis(20)).unwrap(), None);
        assert_eq!(child.try_wait().unwrap(), None);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9));
        // Reaped once; later calls report the same status.
        assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), Some(status));
        assert_eq!(child.try_wait().unwrap(), Some(status));
        child.kill().unwrap();
    });
}

#[test]
fn a_hundred_children_are_waited_for_while_a_ticker_keeps_ticking() {
    within_backstop(|| {
        let ticks = Rc::new(Cell::new(0u32));
        let counted = ticks.clone();
        let ticker = spawn(move || -> gevent::Result<()> {
            loop {
                sleep(Duration::from_millis(1))?;
                counted.set(counted.get() + 1);
            }
        });
        // Each `cat` runs until its input is closed, so no child exits before we say so.
        let mut inputs = Vec::new();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
                inputs.push(child.stdin.take().unwrap());
                spawn(move || {
                    child.wait().map(|status| status.success()).map_err(|e| e.to_string())
                })
            })
            .collect();
        let before = ticks.get();
        while ticks.get() < before + 3 {
            yield_now().unwrap();
        }
        assert!(waiters.iter().all(|w| !w.ready()), "a child exited before its input closed");
        drop(inputs);
        let at_close = ticks.get();
        for waiter in &waiters {
            assert!(waiter.get().unwrap().unwrap(), "cat failed");
        }
        while ticks.get() < at_close + 3 {
            yield_now().unwrap();
        }
        ticker.kill().unwrap();
    });
}

#[test]
fn a_program_that_does_not_exist_is_not_found() {
    within_backstop(|| {
        let err = Command::new("/nonexistent/gevent-no-such-program").spawn().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let err = Command::new("gevent-no-such-program-in-path").output().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
}

#[test]
fn communicate_after_a_timeout_returns_everything() {
    within_backstop(|| {
        // The child prints, then blocks on a line only we can give it, through a pipe of our
        // own (blocking, as the child expects of its stdin).
        let (go_reader, go_writer) = rustix::pipe::pipe().unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "echo first; echo oops >&2; read x; echo \"then $x\""])
            .stdin(go_reader)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once both lines are waiting, the first call reads them before its timeout.
        gevent::io::wait_readable(child.stdout.as_ref().unwrap(), None).unwrap();
        gevent::io::wait_readable(child.stderr.as_ref().unwrap(), None).unwrap();
        let err = child.communicate(None, Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(Interrupted::try_from(&err).is_err(), "our own timeout, not a hub Timeout");
        assert!(err.to_string().contains("did not finish"), "{err}");
        rustix::io::write(&go_writer, b"go\n").unwrap();
        drop(go_writer);
        let output = child.communicate(None, None).unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "first\nthen go\n");
        assert_eq!(String::from_utf8(output.stderr).unwrap(), "oops\n");
        assert!(output.status.success());
    });
}

#[test]
fn a_timeout_or_a_kill_interrupts_wait_and_the_child_can_be_waited_again() {
    within_backstop(|| {
        let child = Rc::new(RefCell::new(sleeper()));
        let timeout = Timeout::start(Duration::from_millis(10));
        let err = child.borrow_mut().wait().unwrap_err();
        assert!(timeout.is(&err), "{err}");
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        drop(timeout);

        let seen = Rc::new(RefCell::new(None));
        let waiter = spawn({
            let (child, seen) = (child.clone(), seen.clone());
            move || *seen.borrow_mut() = Some(child.borrow_mut().wait())
        });
        yield_now().unwrap(); // the waiter parks in `wait`
        waiter.kill().unwrap();
        let err = seen.borrow_mut().take().expect("the waiter ran").unwrap_err();
        assert!(Interrupted::try_from(&err).is_ok(), "{err}");
        assert_eq!(err.kind(), ErrorKind::Other);

        let mut child = child.borrow_mut();
        assert_eq!(child.try_wait().unwrap(), None, "neither interruption touched the child");
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(9));
    });
}

#[test]
fn writing_to_a_child_that_exited_is_a_broken_pipe() {
    within_backstop(|| {
        let mut child = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        assert!(child.wait().unwrap().success());
        let err = stdin.write_all(b"too late").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
    });
}

#[test]
fn output_of_echo() {
    within_backstop(|| {
        let output = Command::new("echo").args(["hello", "world"]).output().unwrap();
        assert!(output.status.success());
        assert_eq!(output.stdout, b"hello world\n");
        assert!(output.stderr.is_empty());
    });
}

#[test]
fn output_gives_no_input_and_spawn_inherits_afterwards() {
    within_backstop(|| {
        let mut command = Command::new("cat");
        // With std's defaults for `output`, cat reads /dev/null and ends at once.
        let output = command.output().unwrap();
        assert!(output.status.success() && output.stdout.is_empty());
        // `spawn`'s defaults are back: nothing piped.
        let mut child = command.stdin(Stdio::null()).spawn().unwrap();
        assert!(child.stdout.is_none() && child.stderr.is_none());
        assert!(child.wait().unwrap().success());
    });
}

#[test]
fn arguments_environment_and_directory_reach_the_child() {
    within_backstop(|| {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let output = Command::new("sh")
            .args(["-c", "echo \"$1 ${KEPT-unset} ${GONE-unset} $(pwd)\"", "sh", "an arg"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .envs([("KEPT", "kept"), ("GONE", "here")])
            .env_remove("GONE")
            .current_dir(&dir)
            .output()
            .unwrap();
        let said = String::from_utf8(output.stdout).unwrap();
        assert_eq!(said, format!("an arg kept unset {}\n", dir.display()));
    });
}

#[test]
fn a_child_stdout_feeds_another_child() {
    within_backstop(|| {
        let mut first = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn().unwrap();
        let pipe = Stdio::try_from(first.stdout.take().unwrap()).unwrap();
        let output = Command::new("tr").args(["a-z", "A-Z"]).stdin(pipe).output().unwrap();
        assert_eq!(output.stdout, b"HELLO\n");
        assert!(first.wait().unwrap().success());
    });
}

#[test]
fn pipes_read_and_write_cooperatively() {
    within_backstop(|| {
        let mut child =
            Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // More than a pipe holds each way: the writer greenlet runs while this one reads.
        let writer = spawn(move || stdin.write_all(&[7; 1 << 20]).map_err(|e| e.to_string()));
        let mut echoed = Vec::new();
        child.stdout.as_mut().unwrap().read_to_end(&mut echoed).unwrap();
        writer.get().unwrap().unwrap();
        assert_eq!(echoed.len(), 1 << 20);
        assert!(child.wait_with_output().unwrap().status.success());
    });
}

#[test]
fn communicate_after_a_timeout_writes_the_rest_of_the_input_once() {
    within_backstop(|| {
        let fifo = std::env::temp_dir().join(format!("gevent-process-{}.fifo", std::process::id()));
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // The child takes 5 bytes, then reads no more until we open the FIFO: the rest of an
        // input bigger than a pipe holds is still unwritten when the timeout comes.
        let mut child = Command::new("sh")
            .args(["-c", "head -c 5; echo; read x < \"$0\"; cat", fifo.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input: Vec<u8> = (0..1u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        let err = child.communicate(Some(&input), Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert!(child.stdin.is_some(), "the input was not all written");
        // Opening blocks the thread until the child opens its end, which it is about to.
        let release = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        drop(release);
        let output = child.communicate(Some(&input), None).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        let mut expected = input[..5].to_vec();
        expected.push(b'\n');
        expected.extend_from_slice(&input[5..]);
        assert_eq!(output.stdout.len(), expected.len(), "input lost or written twice");
        assert!(output.stdout == expected);
        assert!(output.status.success());
    });
}

#[test]
fn a_kill_interrupting_communicate_loses_no_output() {
    within_backstop(|| {
        let child = Rc::new(RefCell::new(
            Command::new("sh")
                .args(["-c", "echo before; read x; echo after $x"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
        let mut stdin = child.borrow_mut().stdin.take().unwrap();
        gevent::io::wait_readable(child.borrow().stdout.as_ref().unwrap(), None).unwrap();
        let seen = Rc::new(RefCell::new(None));
        let talker = spawn({
            let (child, seen) = (child.clone(), seen.clone());
            move || *seen.borrow_mut() = Some(child.borrow_mut().communicate(None, None))
        });
        yield_now().unwrap(); // the talker reads "before" and parks for more
        talker.kill().unwrap();
        let err = seen.borrow_mut().take().expect("the talker ran").unwrap_err();
        assert!(Interrupted::try_from(&err).is_ok(), "{err}");
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let output = child.borrow_mut().communicate(None, None).unwrap();
        assert_eq!(String::from_utf8(output.stdout).unwrap(), "before\nafter go\n");
    });
}
