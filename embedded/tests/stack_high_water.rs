//! Stack high-water marks on static stacks: painted stacks show how deep each greenlet went.

mod common;

use std::hint::black_box;
use std::rc::Rc;

use gevent_embedded::event::Event;
use gevent_embedded::{current, spawn};

const STACK: usize = 256 * 1024;

fn install(stacks: usize) {
    common::plain_hub(stacks, STACK);
}

/// Writes `N` bytes of its own frame, so the stack is used at least that deep.
#[inline(never)]
fn deep<const N: usize>() -> u8 {
    let buf = black_box([1u8; N]);
    black_box(&buf)[N / 2]
}

#[test]
fn a_deep_greenlet_shows_a_deeper_mark_than_a_shallow_one() {
    install(2);
    let gate = Rc::new(Event::new());
    let g = gate.clone();
    let deep_one = spawn(move || {
        deep::<{ 16 * 1024 }>();
        g.wait()
    });
    let g = gate.clone();
    let shallow = spawn(move || g.wait());
    assert_eq!(deep_one.stack_high_water(), None, "not started: no stack yet");
    gevent_embedded::sleep(std::time::Duration::ZERO).unwrap();
    let (d, s) = (deep_one.stack_high_water().unwrap(), shallow.stack_high_water().unwrap());
    assert!((16 * 1024..STACK).contains(&d), "deep: {d}");
    assert!(s < 16 * 1024 && s > 0 && s < d, "shallow: {s}");
    gate.set();
    deep_one.join().unwrap();
    assert_eq!(deep_one.stack_high_water(), None, "finished: its stack is given back");
    assert_eq!(current().stack_high_water(), None, "main runs on the thread's stack");
}

#[test]
fn a_running_greenlet_reads_its_own_mark() {
    install(1);
    let g = spawn(|| {
        deep::<{ 12 * 1024 }>();
        current().stack_high_water()
    });
    let mark = g.get().unwrap().expect("static stacks are painted");
    assert!((12 * 1024..STACK).contains(&mark), "{mark}");
}
