//! gevent's `unixsocket_server.py`: a `StreamServer` on a Unix-domain socket that greets each
//! client and echoes one line back, in a greenlet per connection.
//!
//! ```text
//! cargo run -p gevent-examples --example unixsocket_server [PATH]   # default ./gevent.sock
//! cargo run -p gevent-examples --example unixsocket_client [PATH]   # in another terminal
//! ```
//!
//! It serves until killed; with `--count N` it stops after N connections.
#![allow(clippy::print_stdout)]

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::UnixListener;
use gevent::server::StreamServer;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = String::from("gevent.sock");
    let mut count = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => count = args.next().and_then(|n| n.parse::<u64>().ok()),
            _ => path = arg,
        }
    }
    // A socket file left by an earlier run would make bind fail with AddrInUse.
    let _ = std::fs::remove_file(&path);
    let served = Rc::new(Cell::new(0u64));
    let enough = Rc::new(Event::new());
    let server = StreamServer::new(UnixListener::bind(&path)?, {
        let (served, enough) = (served.clone(), enough.clone());
        move |stream, _peer| {
            let mut writer = &stream;
            writer.write_all(b"Welcome to the gevent unix-socket server\n")?;
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line)?;
            println!("client said {:?}", line.trim_end());
            writer.write_all(format!("echo: {line}").as_bytes())?;
            served.set(served.get() + 1);
            if Some(served.get()) == count {
                enough.set();
            }
            Ok(())
        }
    });
    println!("Serving on {path}");
    server.start()?;
    enough.wait()?;
    server.stop(Duration::from_secs(1));
    let _ = std::fs::remove_file(&path);
    println!("served {} connections", served.get());
    Ok(())
}
