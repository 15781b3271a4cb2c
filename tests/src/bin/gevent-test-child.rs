//! Scenarios that end or misbehave in ways a test process must not: run by the acceptance
//! tests as a child process, which then inspect its exit status and output.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use gevent::stack::{StackError, StackRegion, StackSource};
use gevent::{Builder, FailureKind, GetError, sleep, spawn};

fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64]; // a frame that cannot be optimised away
    std::hint::black_box(&frame);
    if depth == u64::MAX { 0 } else { recurse(depth + 1) + std::hint::black_box(frame[3]) }
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
        // main returns while a greenlet sleeps: the hub kills it at exit and its destructors run.
        "exit-with-live-greenlets" => {
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
            gevent::yield_now().unwrap();
            println!("main returns");
            ExitCode::SUCCESS
        }
        // Greenlets asking for odd, tiny and impossible stack sizes: the first run on rounded
        // stacks, the others fail to start with an error naming the size; nothing crashes.
        "stack-sizes" => {
            for size in [5000, 1, usize::MAX, usize::MAX - 10] {
                match Builder::new().stack_size(size).spawn(move || size).get() {
                    Ok(ran) => println!("{ran}: ran"),
                    Err(GetError::Failed(e)) => match e.kind {
                        FailureKind::NoStack(e) => println!("{size}: no stack: {e}"),
                        other => println!("{size}: failed otherwise: {other:?}"),
                    },
                    Err(e) => println!("{size}: {e:?}"),
                }
            }
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
            let mut platform = gevent::platform().expect("a hosted platform");
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
