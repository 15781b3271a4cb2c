//! The `http` workload's server (`gevent::http::Server` answering `Hello, World!`), and
//! `http_conns`: memory per keep-alive HTTP connection, 10,000 of them on one hub.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use gevent::http::{Body, Request, RequestBody, Response, Server, header};
use gevent::net::TcpListener;

use crate::echo::{listener_with_backlog, raise_fd_limit};
use crate::{report, rss_bytes};

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

/// Keep-alive connections that `http_conns` holds.
const CONNS: usize = 10_000;

/// Descriptors besides the connections (stdio, listener, poller, waker, pipes).
const SPARE_FDS: u64 = 64;

/// Holds [`CONNS`] keep-alive connections, each of which has been answered one request and
/// waits for the next, and reports the growth of the resident set per connection.
pub(crate) fn http_conns() -> ExitCode {
    if let Err(why) = raise_fd_limit(CONNS as u64 + SPARE_FDS) {
        eprintln!("gevent-bench: http_conns skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match hold_conns() {
        Ok(bytes) => {
            report("http_conns", "bytes_per_conn", bytes);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gevent-bench: http_conns failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hold_conns() -> io::Result<f64> {
    let listener = listener_with_backlog(CONNS as i32)?;
    let addr = listener.local_addr()?;
    let server = Server::new(listener, hello);
    server.start()?;
    let rss0 = rss_bytes();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["http_conns_client", &addr.to_string(), &CONNS.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    // The client says so once every connection has had its answer (and its greenlet is parked
    // reading the next request).
    let stdout = child.stdout.take().ok_or_else(|| io::Error::other("no pipe from the client"))?;
    let line = gevent::threadpool::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .get()
    .map_err(io::Error::other)??;
    if line.trim() != format!("answered {CONNS}") {
        return Err(io::Error::other(format!("the client said {line:?}")));
    }
    let rss1 = rss_bytes();
    drop(child.stdin.take());
    server.stop(Duration::from_secs(5));
    let status = gevent::threadpool::spawn_blocking(move || child.wait())
        .get()
        .map_err(io::Error::other)??;
    if !status.success() {
        return Err(io::Error::other(format!("the client process failed ({status})")));
    }
    Ok((rss1 as f64 - rss0 as f64) / CONNS as f64)
}

/// The client side of `http_conns`, in its own process: opens `count` connections to `addr`
/// with blocking std sockets, sends a GET on each and reads its answer, says so on standard
/// output, and holds them until standard input closes.
pub(crate) fn http_conns_client(addr: &str, count: &str) -> ExitCode {
    let run = || -> io::Result<()> {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let count: usize = count.parse().map_err(io::Error::other)?;
        raise_fd_limit(count as u64 + SPARE_FDS).map_err(io::Error::other)?;
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count {
            let mut conn = std::net::TcpStream::connect(addr)?;
            conn.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")?;
            read_answer(&mut conn)?;
            conns.push(conn);
        }
        println!("answered {}", conns.len());
        io::stdout().flush()?;
        io::stdin().read_to_end(&mut Vec::new())?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench http_conns_client: {e}");
            ExitCode::FAILURE
        }
    }
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
