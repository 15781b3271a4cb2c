//! Greenlet trees on the real hub (`gevent::debug`): what greenlets wait on (sockets with their
//! fd), stack high-water marks, every hub of the process, and the opt-in dump on SIGUSR1 (in a
//! child process: catching a signal changes the process's disposition).

mod common;

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use gevent::debug::{self, GreenletState, GreenletTree, WaitReason};
use gevent::event::Event;
use gevent::platform::Interest;
use gevent::signal::{self, SIGUSR1};
use gevent::{Builder, sleep, yield_now};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn the_tree_of_a_real_hub_names_the_fd_a_socket_reader_waits_on() {
    gevent::run(|| {
        let (listener, _) = common::listener();
        let fd = listener.as_raw_fd();
        let acceptor = Builder::new().name("acceptor").spawn(move || listener.accept().map(drop));
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiter = Builder::new().name("waiter").spawn(move || e.wait());
        let joiner = Builder::new().name("joiner").spawn(move || waiter.join());
        let sleeper = Builder::new().name("sleeper").spawn(|| {
            let nested = Builder::new().name("nested").spawn(|| sleep(HOUR));
            nested.join()
        });
        yield_now().unwrap();
        yield_now().unwrap();

        let tree = GreenletTree::current_hub();
        let text = tree.to_string();
        let a = tree.get(acceptor.id()).unwrap();
        let expected = WaitReason::Io { source: fd as u64, interest: Interest::READABLE };
        assert_eq!((a.state, a.waits_on), (GreenletState::Parked, expected), "{text}");
        assert!(text.contains(&format!("'acceptor' parked: fd {fd} to be readable; ")), "{text}");
        let j = tree.get(joiner.id()).unwrap();
        assert!(
            matches!(j.waits_on, WaitReason::Join { id } if tree.get(id).unwrap().name == "waiter")
        );
        let nested = tree.greenlets().iter().find(|g| g.name == "nested").unwrap();
        assert_eq!(nested.parent, Some(sleeper.id()));
        assert!(text.contains("        +-- #"), "nested greenlets are indented twice:\n{text}");
        event.set();
        joiner.join().unwrap();
        drop((acceptor, sleeper)); // `run` ends them
    });
}

/// Recurses `depth` times with a frame the optimiser must keep, then waits for `event`.
fn recurse_then_park(depth: u32, event: &Event) -> u64 {
    let frame = [u64::from(depth); 128]; // 1 KiB a level
    std::hint::black_box(&frame);
    if depth == 0 {
        event.wait().unwrap();
        return 0;
    }
    recurse_then_park(depth - 1, event) + std::hint::black_box(frame[3])
}

/// Whether AddressSanitizer keeps this thread's frames on its "fake stack"
/// (`detect_stack_use_after_return=1`): frames whose address is taken then live on the heap,
/// not on the greenlet's stack, and its high-water mark cannot see them.
fn frames_on_asan_fake_stack() -> bool {
    #[cfg(gevent_asan)]
    {
        unsafe extern "C" {
            fn __asan_get_current_fake_stack() -> *mut std::ffi::c_void;
        }
        // SAFETY: an ASan interface function, linked into every ASan build (`gevent_asan`);
        // it reads the calling thread's state and takes no arguments.
        #[allow(unsafe_code)]
        return !unsafe { __asan_get_current_fake_stack() }.is_null();
    }
    #[allow(unreachable_code)]
    false
}

#[test]
fn a_greenlet_that_recursed_deeply_has_a_higher_stack_high_water_mark() {
    gevent::run(|| {
        let event = Rc::new(Event::new());
        let (d, s) = (event.clone(), event.clone());
        // A deep recursion that returned before it parked still marks the stack.
        let deep = Builder::new().name("deep").spawn(move || {
            let already_set = Event::new();
            already_set.set();
            recurse_then_park(64, &already_set);
            d.wait()
        });
        let shallow = Builder::new().name("shallow").spawn(move || s.wait());
        yield_now().unwrap();
        let tree = GreenletTree::current_hub();
        let mark = |id| tree.get(id).unwrap().stack_high_water.expect("mmap stacks know it");
        let (deep_mark, shallow_mark) = (mark(deep.id()), mark(shallow.id()));
        if !frames_on_asan_fake_stack() {
            assert!(
                deep_mark >= shallow_mark + 48 * 1024,
                "deep {deep_mark} B, shallow {shallow_mark} B:\n{tree}"
            );
        }
        // The running greenlet counts at least down to where it runs.
        let running = Builder::new().spawn(|| {
            let me = gevent::current().id();
            GreenletTree::current_hub().get(me).unwrap().stack_high_water
        });
        assert!(running.get().unwrap().is_some_and(|used| used > 0));
        event.set();
        gevent::joinall(&[deep, shallow]).unwrap();
    });
}

std::thread_local! {
    static RELEASE: Rc<Event> = Rc::new(Event::new());
}

#[test]
fn all_hubs_reports_a_blocked_hub_as_not_answering_instead_of_hanging() {
    let _own = gevent::hub_handle(); // this thread's hub, reported first
    let (ready, answers) = mpsc::channel();
    let idle = thread::Builder::new()
        .name("idle hub".into())
        .spawn(move || {
            gevent::run(|| {
                let napper = Builder::new().name("napper").spawn(|| sleep(HOUR));
                yield_now().unwrap();
                ready.send((thread::current().id(), gevent::hub_handle())).unwrap();
                RELEASE.with(|release| release.clone()).wait().unwrap();
                drop(napper); // `run` ends it
            })
        })
        .unwrap();
    let (idle_id, idle_handle) = answers.recv().unwrap();
    let (blocked_ready, blocked_started) = mpsc::channel();
    let (unblock, blocked_until) = mpsc::channel::<()>();
    let blocked = thread::Builder::new()
        .name("blocked hub".into())
        .spawn(move || {
            let _hub = gevent::hub_handle();
            blocked_ready.send(thread::current().id()).unwrap();
            let _ = blocked_until.recv(); // blocks its hub's thread, as a std call would
        })
        .unwrap();
    let blocked_id = blocked_started.recv().unwrap();

    let reports = debug::all_hubs();
    unblock.send(()).unwrap();
    idle_handle.post(|| RELEASE.with(|release| release.set())).unwrap();
    idle.join().unwrap();
    blocked.join().unwrap();

    assert_eq!(reports[0].thread, thread::current().id(), "the caller's own hub comes first");
    let report = |id| reports.iter().find(|r| r.thread == id).expect("every hub is reported");
    let idle_report = report(idle_id);
    let tree = idle_report.tree.as_ref().expect("an idle hub answers");
    assert!(tree.greenlets().iter().any(|g| g.name == "napper"), "{tree}");
    let text = idle_report.to_string();
    assert!(text.starts_with("thread 'idle hub' (ThreadId("), "{text}");
    let blocked_report = report(blocked_id);
    assert_eq!(blocked_report.tree.as_ref().unwrap_err().within, debug::ANSWER_WITHIN);
    let text = blocked_report.to_string();
    assert!(
        text.contains("'blocked hub'") && text.contains("hub: did not answer within"),
        "{text}"
    );
}

#[test]
fn sigusr1_prints_every_hub_when_opted_in() {
    let out = common::run_child(CHILD_ENV, "dump-on-sigusr1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(stderr.contains("'napper' parked: a sleep until"), "{stderr}");
    assert!(stderr.contains("thread 'second hub' ("), "{stderr}");
    assert!(stderr.contains("'worker' parked: a sleep until"), "{stderr}");
}

// ---- the child process ----

const CHILD_ENV: &str = "GEVENT_TREE_CHILD";

/// Not a test: the entry point of the child processes.
#[test]
#[ignore = "run by the other tests in a child process"]
fn child() {
    match std::env::var(CHILD_ENV).unwrap_or_default().as_str() {
        "dump-on-sigusr1" => dump_on_sigusr1(),
        other => panic!("unknown scenario {other:?}"),
    }
}

/// Dumps on SIGUSR1 with a second hub in another thread; a second handler tells when the
/// signal came (the dump's greenlet was queued first, so it runs before main resumes).
fn dump_on_sigusr1() {
    let (ready, started) = mpsc::channel();
    thread::Builder::new()
        .name("second hub".into())
        .spawn(move || {
            gevent::run(|| {
                let _worker = Builder::new().name("worker").spawn(|| sleep(HOUR));
                yield_now().unwrap();
                ready.send(()).unwrap();
                sleep(HOUR)
            })
        })
        .unwrap();
    started.recv().unwrap();
    gevent::run(|| {
        let _napper = Builder::new().name("napper").spawn(|| sleep(HOUR));
        let _dump = debug::dump_on_signal(SIGUSR1).unwrap();
        let came = Rc::new(Event::new());
        let c = came.clone();
        let _told = signal::signal_handler(SIGUSR1, move || c.set()).unwrap();
        signal::raise(SIGUSR1).unwrap();
        came.wait().unwrap();
        yield_now().unwrap();
    });
}
