//! `gevent::fs` against the real file system: round trips, seeks, appends, the OS's errors
//! unchanged, and the hub running while a pool thread is blocked. A FIFO with no writer blocks a
//! read on the pool for as long as the test wants, which makes "still blocked" deterministic.

use std::cell::Cell;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use gevent::fs::{File, OpenOptions};
use gevent::{Interrupted, Timeout, spawn, yield_now};

mod common;
use common::TempDir;

fn mkfifo(path: &Path) {
    // `mkfifo(1)` rather than rustix's `mkfifoat`, which Apple's systems lack.
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}: {status}", path.display());
}

/// Lets the pool thread blocked opening `fifo` for reading go on: a reader's open waits for a
/// writer, and opening for reading and writing never waits (Linux and the BSDs), so the test
/// thread does not block either.
fn open_fifo_writer(fifo: &Path) -> std::fs::File {
    std::fs::OpenOptions::new().read(true).write(true).open(fifo).expect("open the FIFO")
}

/// Far longer than any of these tests takes; reached only if a call blocked the hub's thread.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Opens and closes a writer on `fifo` if the test has not ended within [`BACKSTOP`]: a read
/// wrongly blocking the hub's thread then returns, and the test fails on what it finds instead
/// of hanging.
struct Backstop {
    _done: mpsc::Sender<()>,
}

impl Backstop {
    fn release(fifo: &Path) -> Self {
        let (done, ended) = mpsc::channel::<()>();
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || {
            if ended.recv_timeout(BACKSTOP) == Err(mpsc::RecvTimeoutError::Timeout) {
                drop(open_fifo_writer(&fifo));
            }
        });
        Backstop { _done: done }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn several_megabytes_round_trip_through_write_all_and_read_to_end() {
    let dir = TempDir::new("round-trip");
    let path = dir.join("big");
    let data = pattern(5 << 20 | 123);
    gevent::run(|| {
        let mut file = File::create(&path).unwrap();
        file.write_all(&data).unwrap();
        file.sync_all().unwrap();
        assert_eq!(file.metadata().unwrap().len(), data.len() as u64);

        let mut back = Vec::new();
        assert_eq!(File::open(&path).unwrap().read_to_end(&mut back).unwrap(), data.len());
        assert!(back == data, "read_to_end returned other bytes");

        // Through plain `read` calls, each a pool round trip into an owned buffer.
        let mut file = File::open(&path).unwrap();
        let mut back = vec![0; data.len()];
        file.read_exact(&mut back).unwrap();
        assert!(back == data, "read_exact returned other bytes");
        assert_eq!(file.read(&mut [0; 16]).unwrap(), 0, "end of file");

        assert!(gevent::fs::read(&path).unwrap() == data);
    });
}

#[test]
fn seek_moves_the_position_reads_and_writes_use() {
    let dir = TempDir::new("seek");
    let path = dir.join("digits");
    gevent::run(|| {
        let mut file = File::options().read(true).write(true).create(true).open(&path).unwrap();
        file.write_all(b"0123456789").unwrap();
        assert_eq!(file.seek(SeekFrom::Start(3)).unwrap(), 3);
        let mut two = [0; 2];
        file.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"34");
        assert_eq!(file.seek(SeekFrom::Current(1)).unwrap(), 6);
        file.write_all(b"x").unwrap();
        assert_eq!(file.seek(SeekFrom::End(-2)).unwrap(), 8);
        assert_eq!(file.stream_position().unwrap(), 8);
        let mut rest = String::new();
        file.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "89");
        // `&File` shares the position, as `&std::fs::File` does.
        (&file).seek(SeekFrom::Start(0)).unwrap();
        let mut all = String::new();
        (&file).read_to_string(&mut all).unwrap();
        assert_eq!(all, "012345x789");
        file.set_len(4).unwrap();
        assert_eq!(gevent::fs::read_to_string(&path).unwrap(), "0123");
    });
}

#[test]
fn append_writes_after_what_the_file_holds() {
    let dir = TempDir::new("append");
    let path = dir.join("log");
    gevent::run(|| {
        gevent::fs::write(&path, "first\n").unwrap();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"second\n").unwrap();
        drop(file);
        assert_eq!(gevent::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
    });
}

#[test]
fn the_operating_systems_errors_come_back_unchanged() {
    let dir = TempDir::new("errors");
    let path = dir.join("exists");
    gevent::run(|| {
        File::create(&path).unwrap();
        let exists = File::create_new(&path).unwrap_err();
        assert_eq!(exists.kind(), ErrorKind::AlreadyExists);
        assert_eq!(exists.raw_os_error(), Some(libc::EEXIST));
        let exists = OpenOptions::new().write(true).create_new(true).open(&path).unwrap_err();
        assert_eq!(exists.kind(), ErrorKind::AlreadyExists);

        let missing = File::open(dir.join("missing")).unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(gevent::fs::read(dir.join("missing")).unwrap_err().kind(), ErrorKind::NotFound);

        // Writing a file opened only for reading: EBADF from the pool thread.
        let read_only = File::open(&path).unwrap();
        assert_eq!((&read_only).write(b"x").unwrap_err().raw_os_error(), Some(libc::EBADF));

        gevent::fs::write(&path, [0xff, 0xfe]).unwrap();
        let mut text = String::from("kept");
        let invalid = File::open(&path).unwrap().read_to_string(&mut text).unwrap_err();
        assert_eq!(invalid.kind(), ErrorKind::InvalidData);
        assert_eq!(text, "kept", "nothing appended when the bytes are not UTF-8");
    });
}

#[test]
fn directory_and_path_functions_work_on_the_pool() {
    let dir = TempDir::new("paths");
    gevent::run(|| {
        let nested = dir.join("a/b/c");
        gevent::fs::create_dir_all(&nested).unwrap();
        assert!(gevent::fs::metadata(&nested).unwrap().is_dir());
        gevent::fs::write(nested.join("one"), b"1").unwrap();
        gevent::fs::rename(nested.join("one"), nested.join("two")).unwrap();
        assert_eq!(gevent::fs::copy(nested.join("two"), nested.join("three")).unwrap(), 1);
        let mut names: Vec<_> = gevent::fs::read_dir(&nested)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["three", "two"]);
        gevent::fs::remove_file(nested.join("two")).unwrap();
        assert_eq!(
            gevent::fs::symlink_metadata(nested.join("two")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            gevent::fs::canonicalize(&nested).unwrap(),
            std::fs::canonicalize(&nested).unwrap()
        );
        gevent::fs::remove_dir_all(dir.join("a")).unwrap();
        assert!(!dir.join("a").exists());
    });
}

#[test]
fn clones_share_the_open_file_and_convert_to_and_from_std() {
    let dir = TempDir::new("clone");
    let path = dir.join("shared");
    gevent::run(|| {
        let mut file = File::options().read(true).write(true).create_new(true).open(&path).unwrap();
        let mut clone = file.try_clone().unwrap();
        assert_ne!(file.as_raw_fd(), clone.as_raw_fd());
        file.write_all(b"ab").unwrap();
        clone.write_all(b"cd").unwrap();
        let mut std_file = clone.into_std().unwrap();
        std_file.seek(SeekFrom::Start(0)).unwrap();
        let mut file = File::from(std_file);
        let mut all = String::new();
        file.read_to_string(&mut all).unwrap();
        assert_eq!(all, "abcd", "one position for both");
        assert!(format!("{file:?}").starts_with("File { fd: "));
    });
}

#[test]
fn other_greenlets_run_while_a_read_waits_on_the_pool() {
    let dir = TempDir::new("fifo-read");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let _backstop = Backstop::release(&fifo);
    gevent::run(|| {
        let started = Rc::new(Cell::new(false));
        let reader = spawn({
            let (fifo, started) = (fifo.clone(), started.clone());
            move || {
                started.set(true);
                // Opening blocks a pool thread until a writer comes; then reading until the
                // writer closes.
                gevent::fs::read(&fifo).map_err(|e| e.to_string())
            }
        });
        let ticks = Rc::new(Cell::new(0u32));
        let ticker = spawn({
            let ticks = ticks.clone();
            move || -> gevent::Result<()> {
                loop {
                    gevent::sleep(Duration::from_millis(1))?;
                    ticks.set(ticks.get() + 1);
                }
            }
        });
        // Nothing has been written, so the reader cannot have finished, whatever the timing:
        // these ticks happened while its job was out.
        while ticks.get() < 5 {
            yield_now().unwrap();
        }
        assert!(started.get());
        assert!(!reader.ready(), "the read finished before anything was written");
        let mut writer = open_fifo_writer(&fifo);
        writer.write_all(b"through the fifo").unwrap();
        drop(writer);
        assert_eq!(reader.get().unwrap().unwrap(), b"through the fifo");
        ticker.kill().unwrap();
    });
}

#[test]
fn a_kill_or_timeout_during_a_pool_read_returns_at_once() {
    let dir = TempDir::new("fifo-kill");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let _backstop = Backstop::release(&fifo);
    gevent::run(|| {
        let reader = spawn({
            let fifo = fifo.clone();
            move || File::open(&fifo).map(drop).map_err(|e| e.to_string())
        });
        yield_now().unwrap();
        assert!(!reader.ready());
        // The pool thread stays blocked in open(2) until the writer below: the kill returned
        // without it.
        reader.kill().unwrap();
        assert!(reader.killed());

        let timeout = Timeout::start(Duration::from_millis(1));
        let timed_out = gevent::fs::read(&fifo).unwrap_err();
        assert_eq!(timed_out.kind(), ErrorKind::TimedOut);
        let why = Interrupted::try_from(&timed_out).expect("the Timeout travels in the error");
        assert!(timeout.is(&why));
        drop(timeout);

        // Release both blocked jobs; their results are dropped.
        drop(open_fifo_writer(&fifo));
        // The pool and the files still work.
        gevent::fs::write(dir.join("after"), b"ok").unwrap();
        assert_eq!(gevent::fs::read(dir.join("after")).unwrap(), b"ok");
    });
}
