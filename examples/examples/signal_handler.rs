//! gevent's `signal_handler`: a handler for SIGUSR1 runs in a greenlet of its own each time the
//! signal arrives. A greenlet sends the signal to the
//! process three times; once the guard is dropped, SIGUSR1 has its default disposition again.
//!
//! Run with `cargo run -p gevent-examples --example signal_handler`.

use std::cell::Cell;
use std::rc::Rc;

use gevent::event::Event;
use gevent::signal::{self, SIGUSR1};

fn main() -> std::io::Result<()> {
    gevent::run(|| {
        let handled = Rc::new(Cell::new(0));
        let done = Rc::new(Event::new());
        let guard = signal::signal_handler(SIGUSR1, {
            let (handled, done) = (handled.clone(), done.clone());
            move || {
                handled.set(handled.get() + 1);
                println!("Received SIGUSR1 ({} so far)", handled.get());
                done.set();
            }
        })?;

        let sender = gevent::spawn(move || -> std::io::Result<()> {
            for _ in 0..3 {
                println!("Sending SIGUSR1 to myself");
                signal::raise(SIGUSR1)?;
                // One signal at a time: two sent before the handler runs may merge into one.
                done.wait().map_err(std::io::Error::from)?;
                done.clear();
            }
            Ok(())
        });
        sender.take().map_err(std::io::Error::other)??;
        drop(guard);
        println!("handled {} signals", handled.get());
        Ok(())
    })
}
