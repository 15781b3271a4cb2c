//! Scenarios that end or misbehave in ways a test process must not: run by the acceptance
//! tests as a child process, which then inspect its exit status and output.
#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::process::ExitCode;
use std::time::Duration;

use gevent::stack::{StackError, StackRegion, StackSource};
use gevent::{Builder, FailureKind, GetError, sleep, spawn, yield_now};

fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64]; // a frame that cannot be optimised away
    std::hint::black_box(&frame);
    if depth == u64::MAX { 0 } else { recurse(depth + 1) + std::hint::black_box(frame[3]) }
}

std::thread_local! {
    static NAMES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Leaves a greenlet parked inside `NAMES.with`, holding a reference into a thread-local that
/// is destroyed when the thread exits (before the hub's own, since it was first used after the
/// hub was created). Resuming it after that reads freed memory.
fn park_inside_a_thread_local() {
    drop(spawn(|| {
        NAMES.with(|names| {
            names.borrow_mut().extend((0..64).map(|i| format!("name {i}")));
            let r = sleep(Duration::from_secs(3600));
            let bytes: usize =
                names.borrow().iter().map(|n| n.bytes().filter(|&b| b == b'n').count()).sum();
            println!("resumed inside the thread-local: {r:?}, {bytes}");
        })
    }));
    yield_now().unwrap();
}

/// Spawns a greenlet that sleeps for an hour holding a guard, and lets it start.
fn spawn_sleeper_with_guard() {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            println!("guard dropped");
        }
    }
    drop(spawn(|| {
        let _guard = Guard;
        let r = sleep(Duration::from_secs(3600));
        println!("sleep ended: {r:?}");
    }));
    yield_now().unwrap();
}

/// Spawns a greenlet with each stack size in turn and prints how it went: `SIZE: ran`, or
/// `SIZE: no stack: ERROR` when it could not start.
fn spawn_with_stack_sizes(sizes: &[usize]) {
    for &size in sizes {
        match Builder::new().stack_size(size).spawn(move || size).get() {
            Ok(ran) => println!("{ran}: ran"),
            Err(GetError::Failed(e)) => match e.kind {
                FailureKind::NoStack(e) => println!("{size}: no stack: {e}"),
                other => println!("{size}: failed otherwise: {other:?}"),
            },
            Err(e) => println!("{size}: {e:?}"),
        }
    }
}

/// What a thread-local destructor that runs after the hub's own does with gevent.
enum LateUse {
    /// Drops gevent values: a finished greenlet's handle, an armed `Timeout`, an `Event`.
    Drops(Option<(gevent::Greenlet<u32>, gevent::Timeout, gevent::event::Event)>),
    /// Blocks, which needs a hub.
    Sleeps,
}

impl Drop for LateUse {
    fn drop(&mut self) {
        match self {
            LateUse::Drops(values) => {
                drop(values.take());
                println!("gevent values dropped after the hub ended");
            }
            LateUse::Sleeps => {
                let r = sleep(Duration::from_millis(1));
                println!("unreachable: slept after the hub ended: {r:?}");
            }
        }
    }
}

std::thread_local! {
    // First used before the hub is created, so destroyed after it.
    static LATE: RefCell<Option<LateUse>> = const { RefCell::new(None) };
}

fn main() -> ExitCode {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        // A greenlet that recurses without bound: must die with a named "stack overflow".
        "overflow" => {
            let g = Builder::new().name("deep-diver").stack_size(64 * 1024).spawn(|| recurse(0));
            let _ = g.join();
            println!("unreachable: the overflow did not end the process");
            ExitCode::FAILURE
        }
        // A greenlet panics: reported once on stderr, the others go on, get() reports it.
        "panic" => {
            let bad = Builder::new().name("doomed").spawn(|| -> u32 { panic!("deliberate") });
            let good = spawn(|| {
                sleep(Duration::from_millis(5)).unwrap();
                7
            });
            let err = bad.get().unwrap_err();
            println!("get: {err}");
            println!("survivor: {:?}", good.get());
            ExitCode::SUCCESS
        }
        // `gevent::run`'s function returns while a greenlet sleeps: run kills it and its
        // destructors run.
        "run-ends-live-greenlets" => gevent::run(|| {
            spawn_sleeper_with_guard();
            println!("main returns");
            ExitCode::SUCCESS
        }),
        // The main thread exits with a greenlet parked inside a thread-local's `with`.
        "exit-parked-in-thread-local" => {
            park_inside_a_thread_local();
            println!("main returns");
            ExitCode::SUCCESS
        }
        // A spawned thread does the same, then main joins it and returns.
        "thread-exit-parked-in-thread-local" => {
            std::thread::spawn(park_inside_a_thread_local).join().unwrap();
            println!("thread joined");
            ExitCode::SUCCESS
        }
        // main returns while a greenlet sleeps: it is leaked with one warning, not resumed.
        "exit-with-live-greenlets" => {
            spawn_sleeper_with_guard();
            println!("main returns");
            ExitCode::SUCCESS
        }
        // A thread-local destroyed after the hub drops gevent values: nothing to do, no crash.
        "thread-local-drops-gevent-values-after-the-hub" => {
            LATE.with(|_| ());
            let finished = spawn(|| 7);
            finished.join().unwrap();
            let values =
                (finished, gevent::Timeout::start(Duration::from_secs(60)), Default::default());
            LATE.with(|late| *late.borrow_mut() = Some(LateUse::Drops(Some(values))));
            println!("main returns");
            ExitCode::SUCCESS
        }
        // A thread-local destroyed after the hub blocks on gevent: refused with a message.
        "thread-local-sleeps-after-the-hub" => {
            LATE.with(|_| ());
            yield_now().unwrap(); // creates the hub
            LATE.with(|late| *late.borrow_mut() = Some(LateUse::Sleeps));
            println!("main returns");
            ExitCode::SUCCESS
        }
        // Greenlets asking for an odd and a tiny stack size: both run on rounded stacks.
        "small-stack-sizes" => {
            spawn_with_stack_sizes(&[5000, 1]);
            ExitCode::SUCCESS
        }
        // Greenlets asking for impossible stack sizes fail to start with an error naming the
        // size; nothing crashes.
        "impossible-stack-sizes" => {
            spawn_with_stack_sizes(&[usize::MAX, usize::MAX - 10]);
            ExitCode::SUCCESS
        }
        // A thousand greenlets find no stack: each fails with NoStack, stderr says so once.
        "no-stacks" => {
            struct NoStacks;
            // SAFETY: it never hands out a region.
            #[allow(unsafe_code)]
            unsafe impl StackSource for NoStacks {
                fn allocate(&mut self, _: usize) -> Result<StackRegion, StackError> {
                    Err(StackError { message: "out of test stacks".into() })
                }
                unsafe fn release(&mut self, _: StackRegion) {}
            }
            let mut platform = gevent::platform::hosted().expect("a hosted platform");
            platform.stacks = Box::new(NoStacks);
            gevent::hub::install(platform).expect("the first hub of this thread");
            let greenlets: Vec<_> = (0..1000).map(|i| spawn(move || i)).collect();
            let failed = greenlets
                .iter()
                .filter(|g| {
                    matches!(g.get(), Err(GetError::Failed(e)) if matches!(e.kind, FailureKind::NoStack(_)))
                })
                .count();
            println!("no stack: {failed}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown scenario {other:?}");
            ExitCode::from(2)
        }
    }
}
