//! The TLS examples run as separate processes: `tls_echoserver` against a client using our
//! `TlsConnector`, and `https_client` on its own. `cargo test` builds the examples before it
//! runs this.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use gevent::Timeout;
use gevent::net::TcpStream;
use gevent::tls::TlsConnector;

use super::common::{BACKSTOP, backstop, example, ok, output};

#[test]
fn a_tls_client_talks_to_tls_echoserver() {
    let mut server =
        example("tls_echoserver").args(["0", "--once"]).stdout(Stdio::piped()).spawn().unwrap();
    let _killer = backstop(server.id());
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("Starting TLS echo server on"), "{first}");
    let addr = first.trim().rsplit(' ').next().unwrap().to_owned();

    let certificate = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
    let _backstop = Timeout::start(BACKSTOP);
    let tls = TlsConnector::with_roots_from_pem_file(certificate)
        .unwrap()
        .connect("localhost", TcpStream::connect(addr.as_str()).unwrap())
        .unwrap();
    let mut tls = BufReader::new(tls);
    let mut line = String::new();
    tls.read_line(&mut line).unwrap();
    assert!(line.starts_with("Welcome to the TLS echo server!"), "{line}");
    tls.get_mut().write_all(b"over TLS\r\n").unwrap();
    line.clear();
    tls.read_line(&mut line).unwrap();
    assert_eq!(line, "over TLS\r\n");
    tls.get_mut().write_all(b"quit\r\n").unwrap();
    line.clear();
    assert_eq!(tls.read_line(&mut line).unwrap(), 0, "the server ends with close_notify");

    let status = server.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("quit"), "{rest}");
}

#[test]
fn https_client_fetches_a_page_from_its_own_server() {
    let stdout = ok(output(&mut example("https_client")));
    for want in [
        "server: GET / HTTP/1.1",
        "ALPN Some(\"http/1.1\")",
        "HTTP/1.1 200 OK",
        "Hello over TLS from a greenlet.",
    ] {
        assert!(stdout.contains(want), "no {want:?} in {stdout}");
    }
}
