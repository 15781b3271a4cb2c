//! gevent's `udp_server.py`: a `DatagramServer` that answers every datagram with how many bytes
//! it received, each datagram handled in its own greenlet.
//!
//! ```text
//! cargo run -p gevent-examples --example udp_server [ADDR]     # default 127.0.0.1:9000
//! cargo run -p gevent-examples --example udp_client -- hello  # in another terminal
//! ```
//!
//! It serves until killed; with `--count N` it stops after N datagrams.
#![allow(clippy::print_stdout)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::UdpSocket;
use gevent::server::DatagramServer;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:9000");
    let mut count = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => count = args.next().and_then(|n| n.parse::<u64>().ok()),
            _ => addr = arg,
        }
    }
    let received = Rc::new(Cell::new(0u64));
    let enough = Rc::new(Event::new());
    let server = DatagramServer::new(UdpSocket::bind(addr.as_str())?, {
        let (received, enough) = (received.clone(), enough.clone());
        move |data, from, socket| {
            println!("{from}: got {:?}", String::from_utf8_lossy(data));
            socket.send_to(format!("Received {} bytes", data.len()).as_bytes(), from)?;
            received.set(received.get() + 1);
            if Some(received.get()) == count {
                enough.set();
            }
            Ok(())
        }
    });
    println!("Receiving datagrams on {}", server.local_addr()?);
    server.start()?;
    enough.wait()?;
    server.stop(Duration::from_secs(1));
    println!("served {} datagrams", received.get());
    Ok(())
}
