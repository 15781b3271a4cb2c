//! Runnable programs showing gevent for Rust at work; see `examples/`.
//!
//! - `demo`: thousands of greenlets on timers, a `Timeout`, a kill and a `joinall`, with what
//!   happens and when. Run it with `cargo run --release -p gevent-examples --example demo`.
