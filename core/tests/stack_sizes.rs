//! Stack sizes a greenlet may ask for: odd and tiny ones are rounded up to what the platform
//! needs, impossible ones make the greenlet fail to start with `NoStack` naming the size.
//!
//! Under AddressSanitizer (the "asan" step of `cargo xtask test`) every frame carries redzones
//! and starting a greenlet takes about 8 KiB of stack, so the stacks of 4 or 5 KiB that
//! uninstrumented code runs on overflow there (ASan reports it): those tests are ignored.
// Miri cannot switch stacks (corosensei's inline assembly): it runs `hub_without_switching.rs`.
#![cfg(not(miri))]

use gevent as _; // links the default platform: see `[dev-dependencies]` in Cargo.toml

use gevent_core::stack::MIN_STACK_SIZE;
use gevent_core::{Builder, FailureKind, GetError, sim};

/// Runs a greenlet with `size` bytes of stack that touches a frame near its stack's end.
fn run_with_stack(size: usize) -> Result<u64, GetError> {
    Builder::new()
        .stack_size(size)
        .spawn(|| {
            let frame = [7u64; 64];
            std::hint::black_box(&frame).iter().sum::<u64>()
        })
        .get()
}

#[test]
#[cfg_attr(gevent_asan, ignore = "ASan's redzones overflow a greenlet's stack of 4 to 5 KiB")]
fn a_size_that_is_not_a_multiple_of_16_is_rounded_up() {
    sim::run(|| {
        for size in [5000, 5001, 5008, 4095, MIN_STACK_SIZE + 1] {
            assert_eq!(run_with_stack(size), Ok(448), "stack_size({size})");
        }
    });
}

#[test]
#[cfg_attr(gevent_asan, ignore = "ASan's redzones overflow a greenlet's stack of 4 KiB")]
fn a_size_below_the_minimum_is_raised_to_it() {
    sim::run(|| {
        for size in [0, 1, 15, 16, MIN_STACK_SIZE - 1] {
            assert_eq!(run_with_stack(size), Ok(448), "stack_size({size})");
        }
    });
}

#[test]
fn an_impossible_size_fails_to_start_with_no_stack_naming_the_size() {
    sim::run(|| {
        for size in [usize::MAX, usize::MAX - 10, usize::MAX - 15, isize::MAX as usize + 1] {
            let err = run_with_stack(size).unwrap_err();
            let GetError::Failed(e) = err else { panic!("stack_size({size}): {err:?}") };
            let FailureKind::NoStack(stack_error) = &e.kind else {
                panic!("stack_size({size}): {e}")
            };
            assert!(stack_error.message.contains(&size.to_string()), "names the size: {e}");
        }
        // The hub goes on: a reasonable greenlet still runs after the refusals.
        assert_eq!(run_with_stack(64 * 1024), Ok(448));
    });
}
