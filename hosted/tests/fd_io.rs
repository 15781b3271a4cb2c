//! Readiness waits on file descriptors (`gevent::io`) and cooperative pipes (`gevent::os`).
//!
//! Each test bounds its main greenlet with a `Timeout`, so that a lost wake-up fails the test
//! instead of hanging it.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use gevent::hub::IoRegistration;
use gevent::io::{wait_readable, wait_writable};
use gevent::os::{PipeReader, PipeWriter, pipe};
use gevent::platform::Interest;
use gevent::{Interrupted, Timeout, sleep, spawn, yield_now};

const MS: Duration = Duration::from_millis(1);

/// Long enough never to expire in a passing test; a hang hits it and fails.
fn bound() -> Timeout {
    Timeout::start(Duration::from_secs(20))
}

/// The `Interrupted` an I/O error carries, if any.
fn interrupted(e: &std::io::Error) -> Option<&Interrupted> {
    e.get_ref()?.downcast_ref::<Interrupted>()
}

/// Writes to `writer` without waiting until the pipe is full.
fn fill(writer: &PipeWriter) -> usize {
    let chunk = [0u8; 4096];
    let mut written = 0;
    loop {
        match rustix::io::write(writer.as_fd(), &chunk) {
            Ok(n) => written += n,
            Err(rustix::io::Errno::AGAIN) => return written,
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Reads from `reader` without waiting until the pipe is empty.
fn drain(reader: &PipeReader) -> usize {
    let mut buf = [0u8; 4096];
    let mut read = 0;
    loop {
        match rustix::io::read(reader.as_fd(), &mut buf) {
            Ok(0) => return read,
            Ok(n) => read += n,
            Err(rustix::io::Errno::AGAIN) => return read,
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn wait_readable_wakes_when_another_greenlet_writes() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let wrote = Rc::new(Cell::new(false));
    let w = wrote.clone();
    let writer = spawn(move || {
        (&writer).write_all(b"x").unwrap();
        w.set(true);
        writer // kept open: the wake-up comes from the data, not a hang-up
    });
    wait_readable(&reader, None).unwrap();
    assert!(wrote.get());
    assert_eq!(drain(&reader), 1);
    writer.join().unwrap();
}

/// epoll and kqueue report an fd that is already ready when it is added, edge-triggered or not:
/// the one-shot registration of `wait_readable` depends on it.
#[test]
fn wait_readable_on_an_already_readable_fd_returns_without_another_event() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    writer.write_all(b"x").unwrap();
    // Its own registration has consumed the edge of the write already.
    sleep(MS).unwrap();
    // Nothing else will ever happen to the pipe: only a look at its current readiness can end
    // these.
    wait_readable(&reader, Some(Duration::from_secs(20))).unwrap();
    wait_readable(&reader, None).unwrap();
    wait_writable(&writer, None).unwrap();
    assert_eq!(drain(&reader), 1);
}

#[test]
fn wait_readable_with_a_timeout_fails_with_timed_out() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let err = wait_readable(&reader, Some(5 * MS)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.to_string().contains("not readable"), "{err}");
    // Its own deadline is not a hub `Timeout` of the caller's.
    assert_eq!(interrupted(&err), None);
}

#[test]
fn a_zero_timeout_on_a_ready_fd_succeeds() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    writer.write_all(b"x").unwrap();
    wait_readable(&reader, Some(Duration::ZERO)).unwrap();
    wait_writable(&writer, Some(Duration::ZERO)).unwrap();
}

#[test]
fn a_zero_timeout_on_an_fd_that_is_not_ready_times_out() {
    let _bound = bound();
    let (empty, _writer) = pipe().unwrap();
    let err = wait_readable(&empty, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    let (_reader, full) = pipe().unwrap();
    fill(&full);
    let err = wait_writable(&full, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
}

#[test]
fn a_hub_timeout_interrupting_a_wait_is_carried_by_the_error() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let timeout = Timeout::start(5 * MS);
    let err = wait_readable(&reader, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(interrupted(&err), Some(&Interrupted::TimedOut(timeout.id())));
}

#[test]
fn a_kill_interrupts_wait_readable() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let waiter = spawn(move || *r.borrow_mut() = Some(wait_readable(&reader, None)));
    yield_now().unwrap(); // the waiter parks in its wait
    waiter.kill().unwrap();
    let err = result.take().expect("the wait returned").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(interrupted(&err), Some(&Interrupted::Killed));
}

/// `read_exact` retries on `ErrorKind::Interrupted`; a kill is sticky, so an error of that kind
/// would make it retry forever.
#[test]
fn a_kill_ends_read_exact_on_a_pipe() {
    let _bound = bound();
    let (mut reader, _writer) = pipe().unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let waiter = spawn(move || *r.borrow_mut() = Some(reader.read_exact(&mut [0u8; 8])));
    yield_now().unwrap();
    waiter.kill().unwrap();
    let err = result.take().expect("read_exact returned").unwrap_err();
    assert_eq!(interrupted(&err), Some(&Interrupted::Killed));
}

#[test]
fn wait_writable_on_a_full_pipe_wakes_when_the_reader_drains_it() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    assert!(fill(&writer) > 0);
    let drained = spawn(move || {
        let n = drain(&reader);
        (n, reader)
    });
    wait_writable(&writer, None).unwrap();
    let (n, _reader) = drained.take().expect("it ran before the wait ended");
    assert!(n > 0);
}

#[test]
fn a_pipe_carries_megabytes_between_two_greenlets_with_partial_writes() {
    let _bound = bound();
    let (mut reader, mut writer) = pipe().unwrap();
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let sent = data.clone();
    let producer = spawn(move || {
        let mut partial = 0;
        let mut rest = &sent[..];
        while !rest.is_empty() {
            let n = writer.write(rest).unwrap();
            partial += usize::from(n < rest.len());
            rest = &rest[n..];
        }
        partial // the writer is dropped here: end of stream
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 1000];
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => break,
            n => received.extend_from_slice(&buf[..n]),
        }
    }
    assert!(received == data, "received {} bytes, not the {} sent", received.len(), data.len());
    let partial = producer.take().expect("finished");
    assert!(partial > 0, "a pipe holds less than 4 MiB: some writes must have been partial");
}

#[test]
fn dropping_the_writer_gives_the_reader_end_of_file() {
    let _bound = bound();
    let (mut reader, writer) = pipe().unwrap();
    // Runs once the reader waits: the reader never yields before it does.
    let producer = spawn(move || (&writer).write_all(b"last words").unwrap());
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "last words");
    producer.join().unwrap();
}

#[test]
fn writing_after_the_reader_is_dropped_fails_with_broken_pipe() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    drop(reader);
    // The test harness, like every Rust `main`, ignores SIGPIPE (see `gevent::os`).
    assert_eq!(writer.write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
}

#[test]
fn a_writer_waiting_on_a_full_pipe_fails_with_broken_pipe_when_the_reader_goes() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    fill(&writer);
    let closer = spawn(move || drop(reader));
    let err = writer.write_all(&[1; 4096]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    closer.join().unwrap();
}

#[test]
fn other_greenlets_run_while_one_waits() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let t = ticks.clone();
    let ticker = spawn(move || {
        for tick in 0..3 {
            sleep(MS).unwrap();
            t.borrow_mut().push(tick);
        }
        (&writer).write_all(b"done").unwrap();
        writer
    });
    wait_readable(&reader, None).unwrap();
    assert_eq!(*ticks.borrow(), [0, 1, 2]);
    ticker.join().unwrap();
}

#[test]
fn a_regular_file_is_readable_at_once() {
    let _bound = bound();
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    wait_readable(&file, None).unwrap();
    wait_writable(&file, None).unwrap();
}

#[test]
fn an_end_converted_into_an_owned_fd_leaves_the_hub() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    let fd = OwnedFd::from(reader);
    // epoll refuses to add an fd twice: this succeeds only if the conversion deregistered it.
    let registration = IoRegistration::new(fd).unwrap();
    writer.write_all(b"x").unwrap();
    registration.wait(Interest::READABLE).unwrap();
}
