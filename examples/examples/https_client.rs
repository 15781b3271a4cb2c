//! An HTTPS client: fetches `/` with a minimal HTTP/1.1 GET over a `TlsStream`, from a small
//! HTTPS server that the example starts itself in another greenlet (a `StreamServer` with a
//! `TlsAcceptor`), and prints the response.
//!
//! ```sh
//! cargo run -p gevent-examples --example https_client
//! ```
//!
//! The server presents the example certificate of `examples/certs/` (see its README: for
//! examples only), which the client trusts as its only root. ALPN agrees on `http/1.1`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use gevent::Timeout;
use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::tls::{TlsAcceptor, TlsConnector};

const CERTIFICATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.key");
const PAGE: &str =
    "<!doctype html>\n<title>gevent</title>\n<p>Hello over TLS from a greenlet.</p>\n";

/// Serves one request: reads the request head, answers with [`PAGE`] and closes with
/// close_notify.
fn serve(acceptor: &TlsAcceptor, stream: TcpStream) -> std::io::Result<()> {
    let mut tls = BufReader::new(acceptor.accept(stream)?);
    let mut line = String::new();
    tls.read_line(&mut line)?;
    println!("server: {}", line.trim_end());
    // The rest of the head, up to the empty line.
    while !matches!(line.as_str(), "\r\n" | "\n" | "") {
        line.clear();
        tls.read_line(&mut line)?;
    }
    let tls = tls.get_mut();
    write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
        PAGE.len()
    )?;
    tls.shutdown()
}

/// Fetches `/` from the server at `port`, and the response as text.
fn fetch(port: u16) -> std::io::Result<String> {
    let connector = TlsConnector::with_roots_from_pem_file(CERTIFICATE)?.with_alpn(&[b"http/1.1"]);
    let mut tls = connector.connect("localhost", TcpStream::connect(("127.0.0.1", port))?)?;
    println!(
        "client: connected with {:?}, ALPN {:?}",
        tls.protocol_version(),
        tls.alpn_protocol().map(String::from_utf8_lossy)
    );
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    // The server ends with close_notify: reading to the end is clean, and a truncated response
    // would be an error here.
    let mut response = String::new();
    tls.read_to_string(&mut response)?;
    Ok(response)
}

fn main() -> ExitCode {
    gevent::run(|| {
        let acceptor = match TlsAcceptor::from_pem_files(CERTIFICATE, KEY) {
            Ok(acceptor) => acceptor.with_alpn(&[b"http/1.1"]),
            Err(e) => {
                eprintln!("cannot load the example certificate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = match TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => {
                StreamServer::new(listener, move |stream, _peer| serve(&acceptor, stream))
            }
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1: {e}");
                return ExitCode::FAILURE;
            }
        };
        let port = match server.start().and_then(|()| server.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => {
                eprintln!("cannot start the server: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("server: listening on 127.0.0.1:{port}");
        let _backstop = Timeout::start(Duration::from_secs(10));
        let result = fetch(port);
        server.stop(Duration::from_secs(1));
        match result {
            Ok(response) => {
                println!("client: received\n{response}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("client: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
