//! Stack sizes on static stacks: any request a stack can hold is served by the same few stacks,
//! a larger one fails to start with `NoStack` naming it.

mod common;

use gevent_embedded::{Builder, FailureKind, GetError};

const STACK: usize = 16 * 1024;

fn install(stacks: usize) {
    common::plain_hub(stacks, STACK);
}

#[test]
fn greenlets_asking_for_different_sizes_share_the_same_stacks() {
    install(2);
    for size in [5000, STACK, 1, 5001, 8192, 0, STACK - 16] {
        let g = Builder::new().stack_size(size).spawn(move || size);
        assert_eq!(g.get(), Ok(size), "stack_size({size})");
    }
}

#[test]
fn a_size_beyond_the_static_stacks_fails_to_start_naming_it() {
    install(2);
    for size in [STACK + 1, usize::MAX, usize::MAX - 10] {
        let err = Builder::new().stack_size(size).spawn(|| ()).get().unwrap_err();
        let GetError::Failed(e) = &err else { panic!("stack_size({size}): {err:?}") };
        let FailureKind::NoStack(stack_error) = &e.kind else { panic!("stack_size({size}): {e}") };
        assert!(stack_error.message.contains(&format!("{size} bytes")), "{e}");
    }
    assert_eq!(Builder::new().stack_size(STACK).spawn(|| 7).get(), Ok(7));
}
