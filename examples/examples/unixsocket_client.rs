//! gevent's `unixsocket_client.py`: connects to the `unixsocket_server` example, prints its
//! greeting, sends a line and prints the echo.
//!
//! ```text
//! cargo run -p gevent-examples --example unixsocket_client [PATH]   # default ./gevent.sock
//! ```
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};

use gevent::net::UnixStream;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| String::from("gevent.sock"));
    let stream = UnixStream::connect(&path)?;
    let mut lines = BufReader::new(&stream);
    let mut greeting = String::new();
    lines.read_line(&mut greeting)?;
    print!("server: {greeting}");
    (&stream).write_all(b"Hello from a greenlet\n")?;
    let mut echo = String::new();
    lines.read_line(&mut echo)?;
    print!("server: {echo}");
    Ok(())
}
