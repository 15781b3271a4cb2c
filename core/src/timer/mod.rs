//! Timers: the [`TimerHeap`] that orders them and what a timer does when it fires.

mod heap;

pub(crate) use heap::{TimerHeap, TimerKey};
