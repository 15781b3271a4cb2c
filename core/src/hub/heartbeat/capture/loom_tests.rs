//! The capture handshake under loom: the handler (on the interrupted thread) and the monitor
//! race in every interleaving; loom's cell fails the model if the buffer is ever read while
//! written. Run with `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p
//! gevent-core --features std --lib loom`.

use super::*;
use loom::sync::Arc;
use loom::thread;

const TARGET: usize = 7;

/// A walk that hands out `1, 2, 3`.
fn walk(push: &mut dyn FnMut(usize) -> bool) {
    for ip in 1..=3 {
        if !push(ip) {
            break;
        }
    }
}

#[test]
fn loom_a_collected_capture_is_complete_and_a_withdrawn_one_is_never_read_while_written() {
    loom::model(|| {
        let slot = Arc::new(FrameSlot::new());
        let request = slot.arm(TARGET).expect("a new slot is idle");
        let handler = {
            let slot = slot.clone();
            thread::spawn(move || slot.fill(TARGET, walk))
        };
        let mut out = [0; MAX_FRAMES];
        // The monitor looks once, then gives up: the bound on waiting for a handler.
        match slot.collect(request, &mut out) {
            Ok(n) => assert_eq!(&out[..n], &[1, 2, 3]),
            Err(request) => slot.withdraw(request),
        }
        // A second request while the first handler may still be writing: armed only once it
        // is done. The first handler may then claim it (it runs on the target thread, so its
        // capture is as good): the monitor gets the frames once every handler has returned.
        let second = slot.arm(TARGET);
        slot.fill(TARGET, walk);
        handler.join().unwrap();
        if let Some(second) = second {
            assert_eq!(slot.collect(second, &mut out).ok(), Some(3));
            assert_eq!(&out[..3], &[1, 2, 3]);
        }
    });
}

#[test]
fn loom_a_handler_on_another_thread_or_without_a_request_writes_nothing() {
    loom::model(|| {
        let slot = Arc::new(FrameSlot::new());
        let stray = {
            let slot = slot.clone();
            thread::spawn(move || slot.fill(TARGET, walk))
        };
        let request = slot.arm(TARGET + 1).expect("a new slot is idle");
        slot.fill(TARGET + 1, |push| {
            push(9);
        });
        stray.join().unwrap();
        let mut out = [0; MAX_FRAMES];
        assert_eq!(
            slot.collect(request, &mut out).ok().map(|n| out[..n].to_vec()),
            Some([9].to_vec())
        );
    });
}

#[test]
fn loom_two_monitors_and_a_handler_never_touch_the_buffer_at_once() {
    // `FrameSlot` is `Sync`: its soundness may not depend on one monitor thread. Two callers
    // arm and collect at once while the handler fills; loom's cell fails the model on any
    // overlap of a read and a write.
    fn monitor(slot: &FrameSlot) {
        if let Some(request) = slot.arm(TARGET) {
            let mut out = [0; MAX_FRAMES];
            match slot.collect(request, &mut out) {
                Ok(n) => assert_eq!(&out[..n], &[1, 2, 3]),
                Err(request) => slot.withdraw(request),
            }
        }
    }
    loom::model(|| {
        let slot = Arc::new(FrameSlot::new());
        let other = {
            let slot = slot.clone();
            thread::spawn(move || monitor(&slot))
        };
        let handler = {
            let slot = slot.clone();
            thread::spawn(move || slot.fill(TARGET, walk))
        };
        monitor(&slot);
        other.join().unwrap();
        handler.join().unwrap();
    });
}
