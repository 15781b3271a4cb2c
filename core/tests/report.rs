//! The `LoopExit` report on thousands of parked greenlets: built in one pass over the live
//! greenlets, not one pass per joiner. The cost is observed as bytes allocated (a listing of
//! every live greenlet per joiner made it quadratic), so this test binary counts them, and
//! holds this one test only.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use std::alloc::{GlobalAlloc, Layout, System};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gevent_core::event::Event;
use gevent_core::{Interrupted, sim, spawn, yield_now};

/// The system allocator, counting the bytes it hands out.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counter is an atomic, touched without allocating.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn a_loop_exit_report_on_thousands_of_joiners_names_each_target_in_one_pass() {
    const N: usize = 2000;
    sim::run(|| {
        // A chain: each greenlet joins the one spawned before it, and the first waits on an
        // event that nobody sets.
        let never = Rc::new(Event::new());
        let first = spawn(move || {
            let _ = never.wait();
        });
        let mut last = first.to_ref();
        for _ in 1..N {
            let previous = last.clone();
            last = spawn(move || {
                let _ = previous.join();
            })
            .to_ref();
        }
        yield_now().unwrap(); // every greenlet parks
        let before = ALLOCATED.load(Ordering::Relaxed);
        let error = last.join().expect_err("nothing can ever wake main");
        let allocated = ALLOCATED.load(Ordering::Relaxed) - before;

        let Interrupted::LoopExit(report) = error else { panic!("{error:?}") };
        assert_eq!(report.parked.len(), N);
        let joiners: Vec<_> =
            report.parked.iter().filter(|g| g.waits_on.starts_with("the end of")).collect();
        assert_eq!(joiners.len(), N - 1);
        for joiner in joiners {
            let target = joiner.id - 1;
            let named = format!("the end of greenlet #{target} 'Greenlet-{target}' (spawned at ");
            assert!(joiner.waits_on.starts_with(&named), "{}", joiner.waits_on);
        }
        assert!(report.main_waits_on.contains(&format!("greenlet #{}", last.id())));
        // The names and descriptions take a few hundred bytes per greenlet; a list of every
        // live greenlet per joiner took 8 * N * N (32 MB here).
        assert!(allocated < 1000 * N, "{allocated} bytes for a report on {N} greenlets");
    });
}
