//! gevent's `udp_client.py`: sends a message to the `udp_server` example and prints its answer,
//! giving up after a second.
//!
//! ```text
//! cargo run -p gevent-examples --example udp_client -- MESSAGE [ADDR]   # default 127.0.0.1:9000
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use gevent::net::UdpSocket;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let message = args.next().unwrap_or_else(|| String::from("Hello, world!"));
    let addr = args.next().unwrap_or_else(|| String::from("127.0.0.1:9000"));
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(addr.as_str())?;
    println!("Sending {} bytes to {addr}: {message:?}", message.len());
    socket.send(message.as_bytes())?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut reply = [0; 1024];
    let n = socket.recv(&mut reply)?;
    println!("{addr} answered: {}", String::from_utf8_lossy(&reply[..n]));
    Ok(())
}
