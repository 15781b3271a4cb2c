//! gevent's `echoserver.py`: a TCP echo server, a `StreamServer` running a greenlet per
//! connection.
//!
//! ```sh
//! cargo run -p gevent-examples --example echoserver            # listens on 127.0.0.1:16000
//! cargo run -p gevent-examples --example echoserver -- 0 --once   # any free port, one client
//! ```
//!
//! Then `nc 127.0.0.1 16000` (or `telnet`) from other terminals: every line comes back, `quit`
//! ends the connection. With `--once` the server exits after its first connection ends, so a
//! test can run it to completion.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;

/// Talks to one client: a welcome, then each line echoed until `quit` or the end of the stream.
fn echo(stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    println!("new connection from {peer}");
    (&stream).write_all(b"Welcome to the echo server! Type quit to exit.\r\n")?;
    // Reads through a shared reference, so the buffered reader and the writes share the socket.
    let mut lines = BufReader::new(&stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line)? == 0 {
            println!("{peer} disconnected");
            return Ok(());
        }
        if line.trim_ascii().eq_ignore_ascii_case(b"quit") {
            println!("{peer} quit");
            return Ok(());
        }
        (&stream).write_all(&line)?;
        println!("echoed {:?} to {peer}", String::from_utf8_lossy(&line));
    }
}

fn main() -> ExitCode {
    let mut port = 16000;
    let mut once = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => once = true,
            _ => match arg.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("usage: echoserver [PORT] [--once]   (PORT defaults to 16000)");
                    return ExitCode::FAILURE;
                }
            },
        }
    }
    gevent::run(|| {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        // With `--once`, the first connection's end stops the server from its handler.
        let done = Rc::new(Event::new());
        let server = StreamServer::new(listener, {
            let done = done.clone();
            move |stream, peer| {
                let result = echo(stream, peer);
                if once {
                    done.set();
                }
                result
            }
        });
        match server.local_addr() {
            Ok(addr) => println!("Starting echo server on {addr}"),
            Err(e) => eprintln!("the listener has no address: {e}"),
        }
        if let Err(e) = server.start() {
            eprintln!("cannot start the server: {e}");
            return ExitCode::FAILURE;
        }
        let _ = done.wait();
        server.stop(Duration::from_secs(1));
        ExitCode::SUCCESS
    })
}
