//! The `http` workload's server (`gevent::http::Server` answering `Hello, World!`), and
//! `http_conns`: memory per keep-alive HTTP connection, 10,000 of them on one hub.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use gevent::http::{Body, Request, RequestBody, Response, Server, header};
use gevent::net::TcpListener;

use crate::conns;

/// The anchors' answer to every request: `200`, `Content-Type: text/plain`, `Hello, World!`.
fn hello(_request: Request<RequestBody<'_>>) -> Response<Body> {
    let mut response = Response::new(Body::from("Hello, World!"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    response
}

/// Serves the http workload on `127.0.0.1:port` until killed.
pub(crate) fn serve(port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gevent-bench: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Server::new(listener, hello).serve_forever() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench: the http server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Holds [`conns::CONNS`] keep-alive connections, each of which has been answered one request
/// and waits for the next, and reports the growth of the resident set per connection.
pub(crate) fn http_conns() -> ExitCode {
    conns::run("http_conns", || {
        let listener = conns::listener()?;
        let addr = listener.local_addr()?;
        let server = Server::new(listener, hello);
        server.start()?;
        let mut clients = conns::Clients::start("http_conns_client", addr)?;
        // The client says so once every connection has had its answer (and its greenlet is
        // parked reading the next request).
        let bytes = clients.wait_ready()?;
        clients.finish()?;
        server.stop(Duration::from_secs(5));
        Ok(bytes)
    })
}

/// The client side of `http_conns`: a GET on each connection, and its answer read.
pub(crate) fn http_conns_client(addr: &str, count: &str) -> ExitCode {
    conns::client_main("http_conns_client", addr, count, |conn| {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
        read_answer(conn)
    })
}

/// Reads one `200` answer whose body is `Hello, World!`.
fn read_answer(conn: &mut std::net::TcpStream) -> io::Result<()> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.ends_with(b"\r\n\r\nHello, World!") {
        let n = conn.read(&mut buf)?;
        if n == 0 || answer.len() > 4096 {
            return Err(io::Error::other(format!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(&answer)
            )));
        }
        answer.extend_from_slice(&buf[..n]);
    }
    if !answer.starts_with(b"HTTP/1.1 200 ") {
        return Err(io::Error::other("the answer is not a 200"));
    }
    Ok(())
}
