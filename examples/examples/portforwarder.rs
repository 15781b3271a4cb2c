//! gevent's `portforwarder.py`: accepts connections on SOURCE and forwards each to DEST, with
//! two greenlets per connection piping the bytes each way.
//!
//! ```sh
//! cargo run -p gevent-examples --example echoserver &
//! cargo run -p gevent-examples --example portforwarder -- 127.0.0.1:8080 127.0.0.1:16000
//! nc 127.0.0.1 8080   # talks to the echo server through the forwarder
//! ```
//!
//! With `--once` it exits after its first connection ends, so a test can run it to completion.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;

use gevent::net::{TcpListener, TcpStream};
use gevent::{joinall, spawn};

/// Copies `from` to `to` until `from` ends, then passes the end on as a half-close, so that
/// each direction ends on its own (a client's `shutdown(Write)` reaches the server).
fn forward(from: &TcpStream, to: &TcpStream, direction: &str) -> io::Result<()> {
    let mut buf = [0; 16 << 10];
    loop {
        let n = (&*from).read(&mut buf)?;
        if n == 0 {
            println!("{direction}: closed");
            // The other side may be gone already; nothing is left to tell it then.
            let _ = to.shutdown(Shutdown::Write);
            return Ok(());
        }
        println!("{direction}: {n} bytes");
        (&*to).write_all(&buf[..n])?;
    }
}

/// Connects `client` to `dest` and pipes both ways until both directions have ended.
fn handle(client: TcpStream, peer: SocketAddr, dest: &str) {
    println!("{peer} accepted");
    let server = match TcpStream::connect(dest) {
        Ok(server) => server,
        Err(e) => {
            println!("{peer} failed to connect to {dest}: {e}");
            return;
        }
    };
    let (client, server) = (Rc::new(client), Rc::new(server));
    let pipes = [
        (client.clone(), server.clone(), format!("{peer} -> {dest}")),
        (server, client, format!("{dest} -> {peer}")),
    ]
    .map(|(from, to, direction)| {
        spawn(move || {
            if let Err(e) = forward(&from, &to, &direction) {
                println!("{direction}: {e}");
                // A broken direction ends the other too: a read waiting on it sees the end.
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            }
        })
    });
    let _ = joinall(&pipes);
    println!("{peer} done");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let once = args.iter().any(|a| a == "--once");
    let addrs: Vec<&String> = args.iter().filter(|a| *a != "--once").collect();
    let [source, dest] = addrs[..] else {
        eprintln!("usage: portforwarder SOURCE:PORT DEST:PORT [--once]");
        eprintln!("   eg: portforwarder 127.0.0.1:8080 127.0.0.1:16000");
        return ExitCode::FAILURE;
    };
    let dest: Rc<str> = dest.as_str().into();
    gevent::run(|| {
        let listener = match TcpListener::bind(source.as_str()) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("cannot listen on {source}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => println!("Starting port forwarder {addr} -> {dest}"),
            Err(e) => eprintln!("the listener has no address: {e}"),
        }
        loop {
            let (client, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let dest = dest.clone();
            let connection = spawn(move || handle(client, peer, &dest));
            if once {
                let _ = connection.join();
                return ExitCode::SUCCESS;
            }
        }
    })
}
