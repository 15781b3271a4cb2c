//! The examples, run as a reader of the README runs them: as processes, clients against
//! servers. `cargo test` builds the examples before it runs these (`cargo test --test examples`
//! alone does not: build them with `cargo build --examples` first).

mod common;
mod demo;
mod dns;
mod http;
mod monitor;
mod net;
mod processes;
mod signal;
mod tls;
mod ureq;
