//! Debugging a running program: greenlet trees of every hub, on demand or on a signal (gevent's
//! `GreenletTree`, `format_run_info`, and its `SIGUSR1`-style dumps).
//!
//! ```
//! gevent::run(|| {
//!     let worker = gevent::Builder::new()
//!         .name("worker")
//!         .spawn(|| gevent::sleep(std::time::Duration::from_secs(60)));
//!     gevent::yield_now().unwrap();
//!     let text = gevent::debug::GreenletTree::current_hub().to_string();
//!     assert!(text.contains("'worker' parked: a sleep until"), "{text}");
//!     worker.kill();
//! });
//! ```

use std::io::{self, Write};
use std::time::Duration;

pub use gevent_core::tree::{
    GreenletInfo, GreenletState, GreenletTree, HubReport, NoAnswer, WaitReason,
};

use crate::signal::{Guard, signal_handler};

/// How long [`all_hubs`] gives the other hubs to answer, in all.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(500);

/// The greenlet trees of every hub of the process, the calling thread's first; a hub that does
/// not answer within [`ANSWER_WITHIN`] (its thread is blocked) is reported as [`NoAnswer`].
/// See [`gevent_core::tree::all_hubs`] to choose the bound.
pub fn all_hubs() -> Vec<HubReport> {
    gevent_core::tree::all_hubs(ANSWER_WITHIN)
}

/// Writes the greenlet trees of every hub of the process ([`all_hubs`]) to `out`.
pub fn write_all_hubs(out: &mut dyn Write) -> io::Result<()> {
    let mut text = String::new();
    for report in all_hubs() {
        text.push_str(&report.to_string());
    }
    out.write_all(text.as_bytes())
}

/// Prints the greenlet tree of the current thread's hub to stderr.
pub fn print_tree() {
    eprint!("{}", GreenletTree::current_hub());
}

/// Prints the greenlet trees of every hub of the process ([`all_hubs`]) to stderr each time
/// the signal `signum` arrives (usually [`SIGUSR1`](crate::signal::SIGUSR1)), until the guard
/// is dropped. Opt-in: nothing catches the signal unless this is called.
///
/// The dump runs in a greenlet of the calling thread's hub, which must keep running (it is
/// the hub that reads the signal): call it from the main thread of a server, for instance.
/// Fails as [`signal_handler`] does (a signal it refuses, or one already caught elsewhere).
pub fn dump_on_signal(signum: i32) -> io::Result<Guard> {
    signal_handler(signum, || {
        let _ = write_all_hubs(&mut io::stderr().lock());
    })
}
