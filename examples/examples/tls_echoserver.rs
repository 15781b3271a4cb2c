//! gevent's `echoserver.py` over TLS: a `StreamServer` running a greenlet per connection, each
//! running a TLS handshake with a `TlsAcceptor` and then echoing lines.
//!
//! ```sh
//! cargo run -p gevent-examples --example tls_echoserver            # listens on 127.0.0.1:16001
//! cargo run -p gevent-examples --example tls_echoserver -- 0 --once   # any free port, one client
//! ```
//!
//! Then `openssl s_client -connect 127.0.0.1:16001 -CAfile examples/certs/localhost.pem` from
//! other terminals: every line comes back, `quit` ends the connection. The certificate is the
//! example one in `examples/certs/` (see its README: for examples only). With `--once` the server
//! exits after its first connection ends, so a test can run it to completion.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use gevent::Timeout;
use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::tls::TlsAcceptor;

const CERTIFICATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.key");
/// How long a client may take over its handshake: a silent client must not hold a greenlet.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Talks to one client: the handshake, a welcome, then each line echoed until `quit` or the end
/// of the stream, and close_notify.
fn echo(acceptor: &TlsAcceptor, stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    let handshake = Timeout::start(HANDSHAKE_TIMEOUT);
    let tls = acceptor.accept(stream)?;
    drop(handshake);
    println!("new TLS connection from {peer} ({:?})", tls.protocol_version());
    // Reads go through the buffer, writes to the stream under it (`get_mut`).
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"Welcome to the TLS echo server! Type quit to exit.\r\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if tls.read_until(b'\n', &mut line)? == 0 {
            println!("{peer} disconnected");
            return Ok(());
        }
        if line.trim_ascii().eq_ignore_ascii_case(b"quit") {
            println!("{peer} quit");
            return tls.get_mut().shutdown();
        }
        tls.get_mut().write_all(&line)?;
        println!("echoed {:?} to {peer}", String::from_utf8_lossy(&line));
    }
}

fn main() -> ExitCode {
    let mut port = 16001;
    let mut once = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--once" => once = true,
            _ => match arg.parse() {
                Ok(p) => port = p,
                Err(_) => {
                    eprintln!("usage: tls_echoserver [PORT] [--once]   (PORT defaults to 16001)");
                    return ExitCode::FAILURE;
                }
            },
        }
    }
    let acceptor = match TlsAcceptor::from_pem_files(CERTIFICATE, KEY) {
        Ok(acceptor) => acceptor,
        Err(e) => {
            eprintln!("cannot load the example certificate: {e}");
            return ExitCode::FAILURE;
        }
    };
    gevent::run(|| {
        let listener = match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let done = Rc::new(Event::new());
        let server = StreamServer::new(listener, {
            let done = done.clone();
            move |stream, peer| {
                let result = echo(&acceptor, stream, peer);
                if let Err(e) = &result {
                    println!("{peer}: {e}");
                }
                if once {
                    done.set();
                }
                result
            }
        });
        match server.local_addr() {
            Ok(addr) => println!("Starting TLS echo server on {addr}"),
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
