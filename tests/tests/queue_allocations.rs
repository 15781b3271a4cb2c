//! A bounded queue allocates nothing per put/get once it runs: counted with a global allocator
//! that counts this thread's allocations while a flag is set.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gevent::queue::Queue;
use gevent::spawn;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: defers to the system allocator; counting touches only an atomic and a const
// thread-local, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn a_bounded_queue_does_not_allocate_per_item_in_the_steady_state() {
    const ITEMS: u64 = 100_000;
    let queue = Rc::new(Queue::bounded(100));
    let (q, r) = (queue.clone(), queue.clone());
    let allocations = Rc::new(Cell::new(0));
    let a = allocations.clone();
    let producer = spawn(move || {
        for i in 0..ITEMS {
            if i == 1_000 {
                // Warmed up: both greenlets run on their stacks, the wait lists have slots.
                ALLOCATIONS.store(0, Ordering::Relaxed);
                COUNTING.with(|c| c.set(true));
            }
            q.put(i).unwrap();
        }
        COUNTING.with(|c| c.set(false));
        a.set(ALLOCATIONS.load(Ordering::Relaxed));
    });
    let consumer = spawn(move || (0..ITEMS).map(|_| r.get().unwrap()).sum::<u64>());
    producer.join().unwrap();
    assert_eq!(consumer.get(), Ok(ITEMS * (ITEMS - 1) / 2));
    assert_eq!(allocations.get(), 0, "allocations while passing 99,000 items");
}
