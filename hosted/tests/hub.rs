//! The hosted hub on the real clock and the real poller: cross-thread posts, I/O readiness on a
//! pipe, hubs per thread, stack reuse, and kills that the target ignores.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use gevent::hub::IoRegistration;
use gevent::platform::Interest;
use gevent::{
    Builder, GreenletRef, Interrupted, Timeout, current, hub_handle, joinall, sleep, spawn,
    yield_now,
};

const MS: Duration = Duration::from_millis(1);

thread_local! {
    static TARGET: RefCell<Option<GreenletRef>> = const { RefCell::new(None) };
}

#[test]
fn a_post_from_another_thread_wakes_the_hub_blocked_in_its_poller() {
    let sleeper = spawn(|| sleep(Duration::from_secs(3600)));
    TARGET.with(|t| *t.borrow_mut() = Some(sleeper.to_ref()));
    let handle = hub_handle();
    let poster = std::thread::spawn(move || {
        handle
            .post(|| TARGET.with(|t| t.borrow().as_ref().expect("set by the test").kill_nowait()))
            .expect("the hub is alive")
    });
    // The main greenlet now blocks in epoll_wait: only the posted job can end the sleep.
    sleeper.join().unwrap();
    assert!(sleeper.is_killed_and_done(), "the posted job killed it: {:?}", sleeper.error());
    poster.join().unwrap();
}

#[test]
#[cfg(target_os = "linux")] // it tells that the hub sleeps in the poller from /proc
fn a_pending_post_keeps_the_hub_waiting_instead_of_reporting_loop_exit() {
    let main = current();
    let stuck = spawn(move || main.join());
    TARGET.with(|t| *t.borrow_mut() = Some(stuck.to_ref()));
    let promise = hub_handle().pending_post();
    let hub_thread = rustix::thread::gettid();
    let poster = std::thread::spawn(move || {
        // Post only once the hub's thread sleeps in the poller: it got there, rather than
        // reporting LoopExit, only because of the promise.
        while !sleeps_in_epoll(hub_thread) {
            std::thread::yield_now();
        }
        promise.post(|| TARGET.with(|t| t.borrow().as_ref().unwrap().kill_nowait())).unwrap()
    });
    // Without the promise this join would be a LoopExit (see the next test).
    stuck.join().unwrap();
    assert!(stuck.is_killed_and_done());
    poster.join().unwrap();
}

/// Whether the thread `tid` of this process is blocked in `epoll_wait` (or its variants), read
/// from the system call the kernel says it is in.
#[cfg(target_os = "linux")]
fn sleeps_in_epoll(tid: rustix::thread::Pid) -> bool {
    let path = format!("/proc/self/task/{}/syscall", tid.as_raw_nonzero());
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let number = text.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
    // x86_64: epoll_wait 232, epoll_pwait 281, epoll_pwait2 441; aarch64: epoll_pwait 22,
    // epoll_pwait2 441.
    let epoll: &[u64] = if cfg!(target_arch = "x86_64") { &[232, 281, 441] } else { &[22, 441] };
    number.is_some_and(|n| epoll.contains(&n))
}

trait KilledAndDone {
    fn is_killed_and_done(&self) -> bool;
}

impl<T: 'static> KilledAndDone for gevent::Greenlet<T> {
    fn is_killed_and_done(&self) -> bool {
        self.killed() && self.error().is_none() // a plain kill is a cancellation
    }
}

#[test]
fn a_deadlock_is_reported_as_loop_exit_on_the_real_hub() {
    let main = current();
    let stuck = Builder::new().name("stuck").spawn(move || main.join());
    let err = stuck.join().unwrap_err();
    let Interrupted::LoopExit(report) = &err else { panic!("{err:?}") };
    assert_eq!(report.parked.len(), 1);
    assert!(err.to_string().contains("'stuck'"), "{err}");
    stuck.kill().unwrap();
}

/// A pipe whose ends do not block and are closed in child processes.
#[cfg(not(target_vendor = "apple"))]
fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    use rustix::pipe::{PipeFlags, pipe_with};
    pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).unwrap()
}

/// A pipe whose ends do not block and are closed in child processes. Apple's systems have no
/// `pipe2`, so the flags come after: a child process spawned meanwhile may inherit the ends.
#[cfg(target_vendor = "apple")]
fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    for fd in [&reader, &writer] {
        rustix::io::ioctl_fionbio(fd, true).unwrap();
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC).unwrap();
    }
    (reader, writer)
}

#[test]
fn io_readiness_of_a_pipe_wakes_the_reader() {
    let (reader_fd, writer_fd) = nonblocking_pipe();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let reader = spawn(move || -> Result<(), Interrupted> {
        let reg = IoRegistration::new(reader_fd).unwrap();
        let mut buf = [0u8; 16];
        loop {
            match rustix::io::read(reg.source(), &mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => g.borrow_mut().extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => {
                    reg.clear_readiness(Interest::READABLE);
                    reg.wait(Interest::READABLE)?;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    let writer = spawn(move || {
        for chunk in [&b"hello "[..], b"greenlets"] {
            sleep(2 * MS).unwrap();
            rustix::io::write(&writer_fd, chunk).unwrap();
        }
        drop(writer_fd); // end of stream
    });
    joinall(&[reader.to_ref(), writer.to_ref()]).unwrap();
    assert_eq!(reader.get(), Ok(()));
    assert_eq!(&*got.borrow(), b"hello greenlets");
}

#[test]
fn a_timeout_bounds_an_io_wait() {
    let (reader_fd, _writer_fd) = nonblocking_pipe();
    let reg = IoRegistration::new(reader_fd).unwrap();
    let t = Timeout::start(5 * MS);
    assert_eq!(reg.wait(Interest::READABLE), Err(Interrupted::TimedOut(t.id())));
}

#[test]
fn a_source_that_is_not_an_owned_fd_is_refused() {
    let (reader_fd, _writer_fd) = nonblocking_pipe();
    // A bare number names no file the registration could keep open.
    let err = IoRegistration::new(reader_fd.as_raw_fd()).unwrap_err();
    assert!(err.to_string().contains("OwnedFd"), "{err}");
}

#[test]
fn into_inner_deregisters_the_fd_it_gives_back() {
    let (reader_fd, writer_fd) = nonblocking_pipe();
    let reg = IoRegistration::new(reader_fd).unwrap();
    let reader_fd = reg.into_inner();
    // epoll refuses to add an fd twice (EEXIST): this succeeds only if it was deleted.
    let reg = IoRegistration::new(reader_fd).unwrap();
    rustix::io::write(&writer_fd, b"x").unwrap();
    let _bound = Timeout::start(Duration::from_secs(10)); // a lost registration fails, not hangs
    reg.wait(Interest::READABLE).unwrap();
}

/// With the old API a registration held a bare fd number and could outlive the file: once the
/// number was reused, dropping the old registration deleted the new one's epoll entry. Now a
/// registration owns its fd, so the number can be reused only after the registration has ended
/// (here: by `dup2` onto the fd that `into_inner` gave back), and only the new registration
/// watches it.
#[test]
fn an_fd_number_reused_after_its_registration_ended_belongs_to_the_new_one_alone() {
    let (old_reader, _old_writer) = nonblocking_pipe();
    let (new_reader, new_writer) = nonblocking_pipe();
    let old = IoRegistration::new(old_reader).unwrap();
    let number = old.source().as_raw_fd();
    let mut fd = old.into_inner();
    rustix::io::dup2(&new_reader, &mut fd).unwrap(); // `number` now names the new pipe
    drop(new_reader);
    assert_eq!(fd.as_raw_fd(), number);
    let reg = IoRegistration::new(fd).unwrap();
    let reader = spawn(move || -> Result<Vec<u8>, Interrupted> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(reg.source(), &mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(rustix::io::Errno::AGAIN) => {
                    reg.clear_readiness(Interest::READABLE);
                    reg.wait(Interest::READABLE)?;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    yield_now().unwrap(); // the reader meets an empty pipe and waits
    rustix::io::write(&new_writer, b"new").unwrap();
    let _bound = Timeout::start(Duration::from_secs(10)); // a lost registration fails, not hangs
    assert_eq!(reader.get(), Ok(b"new".to_vec()));
}

/// Set in a child process that runs one test alone (see `alone_in_a_child_process`).
const CHILD: &str = "GEVENT_HUB_TEST_CHILD";

/// Runs the test `name` alone in a child process (this test binary again) and returns the
/// child's output; returns `None` in that child, which goes on to run the test's body.
fn alone_in_a_child_process(name: &str) -> Option<std::process::Output> {
    if std::env::var_os(CHILD).is_some() {
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    Some(out)
}

/// Holds a registration until the thread exits, and then waits on it and drops it.
struct WaitsAtExit(Option<IoRegistration<OwnedFd>>);

impl Drop for WaitsAtExit {
    fn drop(&mut self) {
        if let Some(reg) = self.0.take() {
            match reg.wait(Interest::READABLE) {
                Ok(()) => println!("wait: Ok"),
                Err(e) => println!("wait: {e}"),
            }
            drop(reg);
            println!("dropped");
        }
    }
}

thread_local! {
    static AT_EXIT: RefCell<WaitsAtExit> = const { RefCell::new(WaitsAtExit(None)) };
}

#[test]
fn a_registration_that_outlives_its_hub_fails_its_wait_and_drops_quietly() {
    // Before the fix, the wait in the thread-local destructor aborted the process.
    let name = "a_registration_that_outlives_its_hub_fails_its_wait_and_drops_quietly";
    let Some(out) = alone_in_a_child_process(name) else {
        std::thread::spawn(|| {
            // Thread-local destructors run in the reverse order of the first uses, so this one
            // runs after the hub's, which the registration creates.
            AT_EXIT.with(|_| ());
            let (reader_fd, writer_fd) = nonblocking_pipe();
            let reg = IoRegistration::new(reader_fd).unwrap();
            AT_EXIT.with(|h| h.borrow_mut().0 = Some(reg));
            // Closing the writer makes the reader readable: if the hub were still there, the
            // wait would end with `Ok` rather than block.
            drop(writer_fd);
        })
        .join()
        .unwrap();
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("wait: this wait could never end")
            && stdout.contains("registered with a hub that is gone"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped"), "{stdout}");
}

#[test]
fn every_thread_has_its_own_hub() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let gs: Vec<_> = (0..100u64)
                    .map(|i| {
                        spawn(move || {
                            sleep(MS).unwrap();
                            t * 1000 + i
                        })
                    })
                    .collect();
                gs.iter().map(|g| g.get().unwrap()).sum::<u64>()
            })
        })
        .collect();
    for (t, th) in threads.into_iter().enumerate() {
        let t = t as u64;
        assert_eq!(th.join().unwrap(), (0..100).map(|i| t * 1000 + i).sum::<u64>());
    }
}

#[cfg(target_os = "linux")]
fn memory_maps() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0)
}

#[test]
#[cfg(target_os = "linux")]
fn finished_greenlets_give_their_stacks_back_for_reuse() {
    // Other tests' threads map and unmap stacks of their own: count with none running.
    if let Some(out) =
        alone_in_a_child_process("finished_greenlets_give_their_stacks_back_for_reuse")
    {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    // The monitor thread (on by default in debug builds) allocates on its own schedule, and
    // an allocator may map memory for it mid-count: count without it.
    gevent::config::Config::builder().monitor(false).build().unwrap().install().unwrap();
    // Warm up the pool, then run many short greenlets one after another: the number of memory
    // maps (each new stack would add two) stays put.
    for _ in 0..10 {
        spawn(|| ()).join().unwrap();
    }
    let before = memory_maps();
    for i in 0..10_000u32 {
        assert_eq!(spawn(move || i).get(), Ok(i));
    }
    let after = memory_maps();
    assert!(after <= before + 4, "maps grew from {before} to {after}: stacks are not reused");
}

#[test]
fn kill_timeout_returns_when_the_target_drops_its_kill_errors() {
    let stop = Rc::new(Cell::new(false));
    let s = stop.clone();
    let loops = Rc::new(Cell::new(0u64));
    let l = loops.clone();
    let stubborn = spawn(move || {
        while !s.get() {
            let _ = sleep(Duration::from_secs(1)); // drops the error and carries on
            l.set(l.get() + 1);
        }
    });
    yield_now().unwrap(); // it starts and parks in its first sleep
    assert_eq!(stubborn.kill_timeout(20 * MS), Ok(false));
    assert!(loops.get() > 0, "its sleeps kept failing at once (the kill is sticky)");
    stop.set(true);
    stubborn.join().unwrap();
    assert!(stubborn.is_killed_and_done());
}
