//! `gevent::select`: `select()` and `Selector` on real pipes and loopback TCP.
//!
//! Each test bounds its main greenlet with a `Timeout`, so that a lost wake-up fails the test
//! instead of hanging it.

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};
use gevent::os::{PipeReader, PipeWriter, pipe};
use gevent::select::{EVENT_READ, EVENT_WRITE, Events, Selector, select};
use gevent::{Interrupted, Timeout, spawn, yield_now};

mod common;
use common::pair as tcp_pair;

const MS: Duration = Duration::from_millis(1);
const NO_FDS: [BorrowedFd<'static>; 0] = [];

/// Long enough never to expire in a passing test; a hang hits it and fails.
fn bound() -> Timeout {
    Timeout::start(Duration::from_secs(20))
}

/// The `Interrupted` an I/O error carries, if any.
fn interrupted(e: &std::io::Error) -> Option<Interrupted> {
    Interrupted::try_from(e).ok()
}

/// Reads what `reader` holds without waiting: `None` if it would have to wait.
fn read_now(reader: &PipeReader) -> Option<usize> {
    match rustix::io::read(reader.as_fd(), &mut [0u8; 4096]) {
        Ok(n) => Some(n),
        Err(rustix::io::Errno::AGAIN) => None,
        Err(e) => panic!("read: {e}"),
    }
}

fn fds<T: AsFd>(ready: &[T]) -> Vec<RawFd> {
    ready.iter().map(|fd| fd.as_fd().as_raw_fd()).collect()
}

fn keys<T: Clone>(ready: &[(gevent::select::SelectorKey<T>, Events)]) -> Vec<(T, Events)> {
    ready.iter().map(|(key, events)| (key.data().clone(), *events)).collect()
}

// --- select() -------------------------------------------------------------------------------

#[test]
fn select_returns_the_fds_that_are_ready_already() {
    let _bound = bound();
    let (idle, _idle_writer) = pipe().unwrap();
    let (full, mut full_writer) = pipe().unwrap();
    full_writer.write_all(b"x").unwrap();
    let (readable, writable) = select([&idle, &full], [&full_writer], None).unwrap();
    assert_eq!(fds(&readable), [full.as_raw_fd()]);
    assert_eq!(fds(&writable), [full_writer.as_raw_fd()]);
    // Level-triggered: unread data is reported again.
    let (readable, _) = select([&idle, &full], NO_FDS, None).unwrap();
    assert_eq!(fds(&readable), [full.as_raw_fd()]);
}

#[test]
fn select_parks_until_another_greenlet_writes() {
    let _bound = bound();
    let (first, _first_writer) = pipe().unwrap();
    let (second, mut second_writer) = pipe().unwrap();
    let wrote = Rc::new(Cell::new(false));
    let w = wrote.clone();
    let writer = spawn(move || {
        w.set(true);
        second_writer.write_all(b"x").unwrap();
        second_writer // kept open: the wake-up comes from the data, not a hang-up
    });
    let (readable, writable) = select([&first, &second], NO_FDS, None).unwrap();
    assert!(wrote.get(), "select returned before anything was ready");
    assert_eq!(fds(&readable), [second.as_raw_fd()]);
    assert!(writable.is_empty());
    writer.join().unwrap();
}

#[test]
fn select_with_a_timeout_returns_nothing() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let (readable, writable) = select([&reader], NO_FDS, Some(5 * MS)).unwrap();
    assert!(readable.is_empty() && writable.is_empty());
    let (readable, _) = select([&reader], NO_FDS, Some(Duration::ZERO)).unwrap();
    assert!(readable.is_empty());
    // Nothing to wait for: it waits for the timeout only.
    let (readable, writable) = select(NO_FDS, NO_FDS, Some(MS)).unwrap();
    assert!(readable.is_empty() && writable.is_empty());
}

#[test]
fn select_with_a_zero_timeout_reports_what_is_ready() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    writer.write_all(b"x").unwrap();
    let (readable, writable) = select([&reader], [&writer], Some(Duration::ZERO)).unwrap();
    assert_eq!((readable.len(), writable.len()), (1, 1));
}

#[test]
fn connected_sockets_are_writable_and_readable_once_data_comes() {
    let _bound = bound();
    let (mut client, server) = tcp_pair();
    let (readable, writable) = select([&client, &server], [&client, &server], None).unwrap();
    assert!(readable.is_empty());
    assert_eq!(fds(&writable), [client.as_raw_fd(), server.as_raw_fd()]);

    let writer = spawn(move || {
        client.write_all(b"ping").unwrap();
        client
    });
    let (readable, _) = select([&server], NO_FDS, None).unwrap();
    assert_eq!(fds(&readable), [server.as_raw_fd()]);
    drop(writer.take().unwrap());
}

#[test]
fn a_listener_is_readable_when_a_client_connects() {
    let _bound = bound();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(move || TcpStream::connect(addr).unwrap());
    let (readable, _) = select([&listener], NO_FDS, None).unwrap();
    assert_eq!(readable.len(), 1);
    listener.accept().unwrap();
    drop(client.take().unwrap());
}

#[test]
fn closing_the_peer_wakes_a_reader_with_end_of_file() {
    let _bound = bound();
    let (client, mut server) = tcp_pair();
    let closer = spawn(move || drop(client));
    let (readable, _) = select([&server], NO_FDS, None).unwrap();
    assert_eq!(readable.len(), 1);
    assert_eq!(server.read(&mut [0; 8]).unwrap(), 0);
    closer.join().unwrap();
}

#[test]
fn a_hub_timeout_interrupts_select() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let timeout = Timeout::start(5 * MS);
    let err = select([&reader], NO_FDS, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(interrupted(&err), Some(Interrupted::TimedOut(timeout.id())));
}

#[test]
fn a_kill_interrupts_select() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let waiter = spawn(move || *r.borrow_mut() = Some(select([&reader], NO_FDS, None).map(|_| ())));
    yield_now().unwrap(); // the waiter parks in select
    waiter.kill().unwrap();
    let err = result.take().expect("select returned").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(interrupted(&err), Some(Interrupted::Killed));
}

/// Beside 200 idle pipes (400 fds, and 200 duplicates while it waits: under the usual limit
/// of 1,024), the one that becomes readable is the one reported.
#[test]
fn select_finds_the_one_ready_pipe_among_many() {
    let _bound = bound();
    let pipes: Vec<(PipeReader, PipeWriter)> = (0..200).map(|_| pipe().unwrap()).collect();
    let readers: Vec<&PipeReader> = pipes.iter().map(|(r, _)| r).collect();
    let chosen = pipes[137].1.as_fd().try_clone_to_owned().unwrap();
    let writer = spawn(move || rustix::io::write(&chosen, b"x").unwrap());
    let (readable, _) = select(readers, NO_FDS, None).unwrap();
    assert_eq!(fds(&readable), [pipes[137].0.as_raw_fd()]);
    writer.join().unwrap();
}

/// Two greenlets select on one pipe and each drains it when told it is readable: whichever
/// reads second was woken for data that is gone, and must wait again rather than report it.
#[test]
fn select_does_not_report_readiness_that_another_greenlet_consumed() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let reader = Rc::new(reader);
    let stale = Rc::new(Cell::new(0));
    let read = Rc::new(Cell::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (reader, stale, read) = (reader.clone(), stale.clone(), read.clone());
            spawn(move || {
                loop {
                    select([&*reader], NO_FDS, None).unwrap();
                    match read_now(&reader) {
                        None => stale.set(stale.get() + 1),
                        Some(0) => return, // end of file
                        Some(n) => read.set(read.get() + n),
                    }
                }
            })
        })
        .collect();
    for _ in 0..10 {
        yield_now().unwrap(); // both readers park in select
        (&writer).write_all(b"x").unwrap();
    }
    yield_now().unwrap();
    drop(writer);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!((read.get(), stale.get()), (10, 0));
}

#[test]
fn a_regular_file_is_ready_at_once() {
    let _bound = bound();
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let (reader, _writer) = pipe().unwrap();
    let (readable, writable) = select([file.as_fd(), reader.as_fd()], [&file], None).unwrap();
    assert_eq!(fds(&readable), [file.as_raw_fd()]);
    assert_eq!(writable.len(), 1);
}

// --- Selector -------------------------------------------------------------------------------

#[test]
fn events_combine_like_bit_flags() {
    let both = EVENT_READ | EVENT_WRITE;
    assert!(both.contains(EVENT_READ) && both.contains(EVENT_WRITE));
    assert!(!EVENT_READ.contains(EVENT_WRITE));
    assert_eq!(both & EVENT_WRITE, EVENT_WRITE);
    assert!(Events::empty().is_empty() && !both.is_empty());
    assert_eq!((EVENT_READ.bits(), EVENT_WRITE.bits()), (1, 2));
    assert_eq!(format!("{both:?}"), "EVENT_READ | EVENT_WRITE");
}

#[test]
fn a_selector_reports_ready_registrations_with_their_data() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let mut selector = Selector::new();
    let key = selector.register(&reader, EVENT_READ, "reader").unwrap();
    assert_eq!((key.fd(), key.events(), *key.data()), (reader.as_raw_fd(), EVENT_READ, "reader"));
    selector.register(&writer, EVENT_READ | EVENT_WRITE, "writer").unwrap();
    // The writer is watched for reading too, but only its writability is reported.
    let ready = selector.select(None).unwrap();
    assert_eq!(keys(&ready), [("writer", EVENT_WRITE)]);
    assert_eq!(selector.get_key(reader.as_raw_fd()).map(|k| *k.data()), Some("reader"));
    assert_eq!(selector.keys().count(), 2);
}

#[test]
fn a_selector_parks_until_a_registration_is_ready_and_keeps_them_across_calls() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&reader, EVENT_READ, 7).unwrap();
    let writer = Rc::new(writer);
    for round in 0..3 {
        let w = writer.clone();
        let wrote = Rc::new(Cell::new(false));
        let flag = wrote.clone();
        let writing = spawn(move || {
            flag.set(true);
            (&*w).write_all(b"x").unwrap();
        });
        let ready = selector.select(None).unwrap();
        assert!(wrote.get(), "round {round}: select returned before anything was ready");
        assert_eq!(keys(&ready), [(7, EVENT_READ)]);
        // Still unread: reported again without waiting.
        assert_eq!(selector.select(Some(Duration::ZERO)).unwrap().len(), 1);
        assert_eq!(read_now(&reader), Some(1));
        assert!(selector.select(Some(Duration::ZERO)).unwrap().is_empty());
        writing.join().unwrap();
    }
}

#[test]
fn a_selector_timeout_returns_nothing() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&reader, EVENT_READ, ()).unwrap();
    assert!(selector.select(Some(5 * MS)).unwrap().is_empty());
    assert!(selector.select(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(Selector::<()>::new().select(Some(MS)).unwrap().is_empty());
}

#[test]
fn modify_changes_what_is_watched_and_the_data() {
    let _bound = bound();
    let (_reader, writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&writer, EVENT_READ, "read").unwrap();
    assert!(selector.select(Some(Duration::ZERO)).unwrap().is_empty());
    let key = selector.modify(writer.as_raw_fd(), EVENT_WRITE, "write").unwrap();
    assert_eq!((key.events(), *key.data()), (EVENT_WRITE, "write"));
    assert_eq!(keys(&selector.select(None).unwrap()), [("write", EVENT_WRITE)]);
}

#[test]
fn an_unregistered_fd_is_no_longer_reported() {
    let _bound = bound();
    let (reader, mut writer) = pipe().unwrap();
    writer.write_all(b"x").unwrap();
    let mut selector = Selector::new();
    selector.register(&reader, EVENT_READ, 1).unwrap();
    selector.register(&writer, EVENT_WRITE, 2).unwrap();
    let key = selector.unregister(writer.as_raw_fd()).unwrap();
    assert_eq!((key.fd(), key.into_data()), (writer.as_raw_fd(), 2));
    assert_eq!(keys(&selector.select(None).unwrap()), [(1, EVENT_READ)]);
    assert!(selector.get_key(writer.as_raw_fd()).is_none());
    // Registering it again works.
    selector.register(&writer, EVENT_WRITE, 3).unwrap();
    assert_eq!(selector.select(None).unwrap().len(), 2);
}

#[test]
fn selector_misuse_fails_with_the_python_errors() {
    let _bound = bound();
    let (reader, writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&reader, EVENT_READ, ()).unwrap();
    let err = selector.register(&reader, EVENT_WRITE, ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("registered with this selector already"), "{err}");
    let err = selector.register(&writer, Events::empty(), ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = selector.modify(reader.as_raw_fd(), Events::empty(), ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    for err in [
        selector.unregister(writer.as_raw_fd()).unwrap_err(),
        selector.modify(writer.as_raw_fd(), EVENT_READ, ()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("not registered"), "{err}");
    }
    // The failed calls changed nothing.
    assert_eq!(selector.get_key(reader.as_raw_fd()).unwrap().events(), EVENT_READ);
    assert_eq!(selector.keys().count(), 1);
}

#[test]
fn closing_the_peer_wakes_a_selector() {
    let _bound = bound();
    let (client, mut server) = tcp_pair();
    let mut selector = Selector::new();
    selector.register(&server, EVENT_READ, ()).unwrap();
    let closer = spawn(move || drop(client));
    assert_eq!(keys(&selector.select(None).unwrap()), [((), EVENT_READ)]);
    assert_eq!(server.read(&mut [0; 8]).unwrap(), 0);
    closer.join().unwrap();
}

#[test]
fn a_hub_timeout_and_a_kill_interrupt_a_selector() {
    let _bound = bound();
    let (reader, _writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&reader, EVENT_READ, ()).unwrap();
    let timeout = Timeout::start(5 * MS);
    let err = selector.select(None).unwrap_err();
    assert_eq!(interrupted(&err), Some(Interrupted::TimedOut(timeout.id())));
    drop(timeout);

    let selector = Rc::new(selector);
    let result = Rc::new(RefCell::new(None));
    let (s, r) = (selector.clone(), result.clone());
    let waiter = spawn(move || *r.borrow_mut() = Some(s.select(None).map(|_| ())));
    yield_now().unwrap(); // the waiter parks in select
    waiter.kill().unwrap();
    let err = result.take().expect("select returned").unwrap_err();
    assert_eq!(interrupted(&err), Some(Interrupted::Killed));
}

#[test]
fn a_selector_finds_the_one_ready_pipe_among_many() {
    let _bound = bound();
    let pipes: Vec<(PipeReader, PipeWriter)> = (0..200).map(|_| pipe().unwrap()).collect();
    let mut selector = Selector::new();
    for (i, (reader, _)) in pipes.iter().enumerate() {
        selector.register(reader, EVENT_READ, i).unwrap();
    }
    let chosen = pipes[42].1.as_fd().try_clone_to_owned().unwrap();
    let writer = spawn(move || rustix::io::write(&chosen, b"x").unwrap());
    assert_eq!(keys(&selector.select(None).unwrap()), [(42, EVENT_READ)]);
    writer.join().unwrap();
}

#[test]
fn dropping_a_selector_deregisters_its_duplicates() {
    let _bound = bound();
    let (client, mut server) = tcp_pair();
    let mut selector = Selector::new();
    selector.register(&client, EVENT_READ, ()).unwrap();
    selector.close();
    // The selector's duplicate was the last other holder of the connection: closing the
    // client now ends it.
    drop(client);
    assert_eq!(server.read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn a_regular_file_in_a_selector_is_always_ready() {
    let _bound = bound();
    let file = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let (reader, _writer) = pipe().unwrap();
    let mut selector = Selector::new();
    selector.register(&file, EVENT_READ | EVENT_WRITE, "file").unwrap();
    selector.register(&reader, EVENT_READ, "pipe").unwrap();
    assert_eq!(keys(&selector.select(None).unwrap()), [("file", EVENT_READ | EVENT_WRITE)]);
}
