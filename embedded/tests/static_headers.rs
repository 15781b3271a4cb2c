//! Greenlet headers from a `StaticHeaders` buffer: spawning takes nothing from the heap for
//! them, slots are reused, and a spawn that finds no slot fails naming why.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;

use gevent_embedded::event::Event;
use gevent_embedded::headers::{HeaderError, use_source};
use gevent_embedded::{FailureKind, GetError, StaticHeaders, spawn};

/// The system allocator, counting this thread's allocations (tests run on threads side by side).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; the count is a thread-local `Cell`
// with a `const` initializer, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const STACK: usize = 16 * 1024;

fn install(stacks: usize) {
    common::plain_hub(stacks, STACK);
}

#[test]
fn spawning_with_static_headers_takes_nothing_from_the_heap_and_reuses_slots() {
    static HEADERS: StaticHeaders<4, 512> = StaticHeaders::new();
    install(2);
    use_source(&HEADERS);
    // Warm up: the hub's run queue, timer heap and stack pool grow once.
    for i in 0..4 {
        assert_eq!(spawn(move || i).get(), Ok(i));
    }
    let before = allocations();
    // Three at a time: the hub recycles only the last finished greenlet's header, so the heap
    // would serve two of every three.
    for i in 0..30 {
        let batch = [spawn(move || i), spawn(move || i + 1), spawn(move || i + 2)];
        for (k, g) in (0..).zip(&batch) {
            assert_eq!(g.get(), Ok(i + k));
        }
    }
    assert_eq!(allocations() - before, 0, "90 spawns took headers from the heap");
    assert_eq!(HEADERS.in_use(), 1, "only the last finished greenlet's slot is kept");
}

#[test]
fn a_spawn_that_finds_every_slot_taken_fails_and_a_freed_slot_serves_again() {
    static HEADERS: StaticHeaders<2, 512> = StaticHeaders::new();
    install(3);
    use_source(&HEADERS);
    let go = Rc::new(Event::new());
    let parked: Vec<_> = (0..2)
        .map(|i| {
            let go = go.clone();
            spawn(move || go.wait().map(|_| i).unwrap_or(99))
        })
        .collect();
    let refused = spawn(|| 7);
    let err = refused.get().unwrap_err();
    let GetError::Failed(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.kind, FailureKind::NoHeader(HeaderError::Exhausted { slots: 2 }));
    assert!(e.to_string().contains("all 2 header slots"), "{e}");
    assert!(refused.ready() && !refused.started());
    go.set();
    for (i, g) in parked.iter().enumerate() {
        assert_eq!(g.get(), Ok(i));
    }
    drop(parked);
    assert_eq!(spawn(|| 8).get(), Ok(8), "a slot freed by a finished greenlet serves again");
}

#[test]
fn a_greenlet_too_big_for_a_slot_fails_naming_both_sizes() {
    static HEADERS: StaticHeaders<2, 512> = StaticHeaders::new();
    install(1);
    use_source(&HEADERS);
    let big = [1u8; 600];
    let err = spawn(move || big.iter().map(|&b| u32::from(b)).sum::<u32>()).get().unwrap_err();
    let GetError::Failed(e) = &err else { panic!("{err:?}") };
    let FailureKind::NoHeader(HeaderError::TooBig { size, slot_size, .. }) = e.kind else {
        panic!("{e}")
    };
    assert!(size > 600 && slot_size == 512, "{e}");
    assert!(e.to_string().contains(&format!("need {size} bytes")), "{e}");
    assert_eq!(HEADERS.in_use(), 0);
    assert_eq!(spawn(|| 5).get(), Ok(5), "a greenlet that fits still spawns");
}

#[test]
fn observers_see_a_refused_spawn_spawned_then_failed() {
    use gevent_embedded::events::{Event, Finish, subscribe};
    static HEADERS: StaticHeaders<1, 512> = StaticHeaders::new();
    install(1);
    use_source(&HEADERS);
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = seen.clone();
    subscribe(move |e| match e {
        Event::Spawned { id, .. } => log.borrow_mut().push((*id, None)),
        Event::Finished { id, how } => log.borrow_mut().push((*id, Some(*how))),
        _ => {}
    });
    let go = Rc::new(gevent_embedded::event::Event::new());
    let g = go.clone();
    let holder = spawn(move || g.wait().is_ok());
    let refused = spawn(|| ());
    assert!(matches!(refused.get(), Err(GetError::Failed(_))));
    go.set();
    assert_eq!(holder.get(), Ok(true));
    let refused_id = refused.id();
    let events: Vec<_> =
        seen.borrow().iter().filter(|(id, _)| *id == refused_id).copied().collect();
    assert_eq!(events, [(refused_id, None), (refused_id, Some(Finish::Failed))]);
}

/// One `static` source serving two hubs on two threads at once: each slot is handed to one
/// greenlet at a time (a slot handed to both would have one greenlet's captures overwritten by
/// the other's), and every slot comes back.
#[test]
fn two_hubs_on_two_threads_share_one_source_slot_by_slot() {
    static HEADERS: StaticHeaders<8, 512> = StaticHeaders::new();
    let run = |tag: u64| {
        move || {
            install(3);
            use_source(&HEADERS);
            for round in 0..10_000u64 {
                // Three live at a time per thread (the batch reuses the slot the hub kept): six
                // of the eight slots at most, so a refusal would be a slot lost.
                let batch: Vec<_> = (0..3u64)
                    .map(|k| {
                        let words = [tag ^ (round * 3 + k); 16];
                        spawn(move || {
                            gevent_embedded::yield_now().expect("not interrupted");
                            words
                        })
                    })
                    .collect();
                for (k, g) in (0..).zip(&batch) {
                    assert_eq!(g.get(), Ok([tag ^ (round * 3 + k); 16]), "round {round}");
                }
            }
        }
    };
    let threads = [std::thread::spawn(run(0x5555 << 32)), std::thread::spawn(run(0xaaaa << 32))];
    for t in threads {
        t.join().expect("a thread's greenlets kept their own slots");
    }
    assert_eq!(HEADERS.in_use(), 0, "the hubs gave every slot back as their threads ended");
}
