//! `gevent::http::Client` against real peers: scripted raw-socket servers (framing, keep-alive
//! reuse counted by accepts, retries on a closed idle connection, malformed responses, a silent
//! server), `python3 -m http.server` (a third-party HTTP/1.0 server) and `openssl s_server
//! -WWW` over TLS with SNI. Every test runs under a backstop `Timeout`, and child processes are
//! killed on drop.
// Over plain TCP and TLS: the `http` and `tls` features (both on by default).
#![cfg(all(feature = "http", feature = "tls"))]
#![cfg(feature = "http")]

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use gevent::http::{Body, Client, Method, Request};
use gevent::net::TcpStream;
use gevent::pool::Pool;
use gevent::{Greenlet, Timeout, spawn};

mod common;
use common::{TempDir, listener};

/// How long any test may take before it fails: a hang must fail, not stall CI.
const BACKSTOP: Duration = Duration::from_secs(30);

/// Fails the test's blocking calls after [`BACKSTOP`] instead of letting it hang, and ends the
/// greenlets it leaves (servers, handlers) when dropped.
fn backstop() -> Backstop {
    Backstop(Some(Timeout::start(BACKSTOP)))
}

struct Backstop(Option<Timeout>);

impl Drop for Backstop {
    fn drop(&mut self) {
        self.0.take();
        gevent::shutdown();
    }
}

/// One request as a scripted server saw it: its head (lines) and its decoded body.
#[derive(Debug)]
struct Seen {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Reads one request (Content-Length or chunked body); `None` if the client closed first.
fn read_request(conn: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).unwrap() == 0 {
            assert!(head.is_empty(), "the client closed in the middle of a head: {head:?}");
            return None;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let mut seen = Seen { head, body: Vec::new() };
    if let Some(len) = seen.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        conn.read_exact(&mut body).unwrap();
        seen.body = body;
    } else if seen.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            seen.body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(seen)
}

/// A scripted server: for its `n`th connection, `script(n, conn, seen)` answers the requests
/// of that connection one at a time and returns whether to keep the connection. It records
/// every request and counts connections.
struct Scripted {
    addr: SocketAddr,
    accepts: Rc<Cell<usize>>,
    seen: Rc<std::cell::RefCell<Vec<Seen>>>,
    server: Greenlet<()>,
}

impl Scripted {
    fn start(script: impl Fn(usize, usize, &mut TcpStream) -> bool + 'static) -> Scripted {
        let (listener, addr) = listener();
        let accepts = Rc::new(Cell::new(0));
        let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
        let script = Rc::new(script);
        let server = spawn({
            let (accepts, seen) = (accepts.clone(), seen.clone());
            move || {
                loop {
                    let (stream, _) = listener.accept().unwrap();
                    let n = accepts.get();
                    accepts.set(n + 1);
                    let (script, seen) = (script.clone(), seen.clone());
                    spawn(move || {
                        let mut conn = BufReader::new(stream);
                        let mut index = 0;
                        while let Some(request) = read_request(&mut conn) {
                            seen.borrow_mut().push(request);
                            if !script(n, index, conn.get_mut()) {
                                return;
                            }
                            index += 1;
                        }
                    });
                }
            }
        });
        Scripted { addr, accepts, seen, server }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.server.kill_nowait();
    }
}

fn answer(conn: &mut TcpStream, bytes: &str) {
    conn.write_all(bytes.as_bytes()).unwrap();
}

#[test]
fn content_length_chunked_and_until_close_bodies_share_one_keep_alive_connection() {
    let _backstop = backstop();
    let server = Scripted::start(|_, index, conn| {
        match index {
            0 => answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            1 => answer(
                conn,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nwor\r\n2;ext=1\r\nld\r\n0\r\nTrailer: x\r\n\r\n",
            ),
            _ => {
                answer(conn, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
                return false;
            }
        }
        true
    });
    let client = Client::new();
    for (path, want) in [("/a", "hello"), ("/b?q=1", "world"), ("/c", "until the end")] {
        let response = client.get(&server.url(path)).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().into_string().unwrap(), want);
    }
    assert_eq!(server.accepts.get(), 1, "the first two responses left the connection reusable");
    let seen = server.seen.borrow();
    assert_eq!(seen[1].head[0], "GET /b?q=1 HTTP/1.1");
    assert_eq!(seen[0].header("host"), Some(server.addr.to_string().as_str()));
    assert!(seen[0].header("user-agent").unwrap().starts_with("gevent/"));
    assert_eq!(seen[0].header("content-length"), None, "a GET without a body has no framing");
}

#[test]
fn connection_close_and_http_10_responses_are_not_reused() {
    let _backstop = backstop();
    let server = Scripted::start(|n, _, conn| match n {
        0 => {
            answer(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na");
            false
        }
        1 => {
            answer(conn, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb");
            false
        }
        _ => {
            answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc");
            true
        }
    });
    let client = Client::new();
    let bodies: Vec<String> = (0..4)
        .map(|_| client.get(&server.url("/")).unwrap().into_body().into_string().unwrap())
        .collect();
    assert_eq!(bodies, ["a", "b", "c", "c"]);
    assert_eq!(server.accepts.get(), 3);
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced() {
    let _backstop = backstop();
    let server = Scripted::start(|_, _, conn| {
        answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        false // closes while the client holds it idle
    });
    let client = Client::new();
    for _ in 0..3 {
        assert_eq!(client.get(&server.url("/")).unwrap().into_body().into_string().unwrap(), "ok");
    }
    assert_eq!(server.accepts.get(), 3);
}

/// Answers the first request of the first connection, then closes that connection on its
/// second request without answering; answers every request on later connections.
fn closes_on_the_second_request() -> Scripted {
    Scripted::start(|n, index, conn| {
        if n == 0 && index == 1 {
            return false;
        }
        answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        true
    })
}

#[test]
fn a_get_on_a_reused_connection_closed_before_its_response_is_retried_once() {
    let _backstop = backstop();
    let server = closes_on_the_second_request();
    let client = Client::new();
    for _ in 0..2 {
        assert_eq!(client.get(&server.url("/")).unwrap().into_body().into_string().unwrap(), "ok");
    }
    assert_eq!(server.accepts.get(), 2);
    assert_eq!(server.seen.borrow().len(), 3, "the second GET was sent twice");
}

#[test]
fn a_post_whose_body_was_sent_is_not_retried() {
    let _backstop = backstop();
    let server = closes_on_the_second_request();
    let client = Client::new();
    client.get(&server.url("/")).unwrap().into_body().into_bytes().unwrap();
    let err = client.post(&server.url("/"), "data").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err}");
    assert!(err.to_string().contains("without responding"), "{err}");
    assert_eq!(server.accepts.get(), 1);
}

#[test]
fn request_bodies_are_sent_with_content_length_or_chunked() {
    let _backstop = backstop();
    let server = Scripted::start(|_, _, conn| {
        answer(conn, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        true
    });
    let client = Client::new();
    let big = vec![b'x'; 100_000];
    let bodies = [
        Body::from("in memory"),
        Body::from(big.clone()),
        Body::sized_reader(io::Cursor::new(b"sized".to_vec()), 5),
        Body::from_reader(io::Cursor::new(big.clone())),
        Body::empty(),
    ];
    for body in bodies {
        let request = Request::builder()
            .method(Method::PUT)
            .uri(server.url("/upload"))
            .header("x-custom", "yes")
            .body(body)
            .unwrap();
        let response = client.send(request).unwrap();
        assert_eq!(response.status(), 201);
        assert!(response.into_body().into_bytes().unwrap().is_empty());
    }
    let seen = server.seen.borrow();
    assert_eq!(seen[0].body, b"in memory");
    assert_eq!(seen[0].header("x-custom"), Some("yes"));
    assert_eq!(seen[1].body, big);
    assert_eq!(seen[2].body, b"sized");
    assert_eq!(seen[2].header("content-length"), Some("5"));
    assert_eq!(seen[3].header("transfer-encoding"), Some("chunked"));
    assert_eq!(seen[3].body, big);
    assert_eq!(seen[4].header("content-length"), Some("0"), "a PUT says its body is empty");
    assert_eq!(server.accepts.get(), 1);
}

#[test]
fn responses_to_head_and_204_and_304_have_no_body() {
    let _backstop = backstop();
    let server = Scripted::start(|_, index, conn| {
        match index {
            0 => answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
            1 => answer(conn, "HTTP/1.1 204 No Content\r\n\r\n"),
            2 => answer(conn, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"),
            _ => answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"),
        }
        true
    });
    let client = Client::new();
    let head = Request::head(server.url("/")).body(Body::empty()).unwrap();
    let response = client.send(head).unwrap();
    assert_eq!(response.headers()["content-length"], "100");
    assert!(response.into_body().into_bytes().unwrap().is_empty());
    let no_content = client.get(&server.url("/")).unwrap();
    assert_eq!(no_content.status(), 204);
    // Not read: a body that is over before it starts gives its connection back at once.
    drop(no_content);
    assert_eq!(client.get(&server.url("/")).unwrap().status(), 304);
    assert_eq!(client.get(&server.url("/")).unwrap().into_body().into_string().unwrap(), "done");
    assert_eq!(server.accepts.get(), 1);
}

#[test]
fn a_body_dropped_before_its_end_closes_its_connection() {
    let _backstop = backstop();
    let server = Scripted::start(|_, _, conn| {
        answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
        true
    });
    let client = Client::new();
    let mut body = client.get(&server.url("/")).unwrap().into_body();
    let mut first = [0; 3];
    body.read_exact(&mut first).unwrap();
    drop(body);
    assert_eq!(
        client.get(&server.url("/")).unwrap().into_body().into_bytes().unwrap(),
        b"0123456789"
    );
    assert_eq!(server.accepts.get(), 2);
}

#[test]
fn malformed_responses_are_invalid_data_that_says_what_is_wrong() {
    let _backstop = backstop();
    let cases = [
        ("HTTP/1.1 abc\r\n\r\n", "malformed response head"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", "Content-Length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"),
    ];
    for (response, what) in cases {
        let server = Scripted::start(move |_, _, conn| {
            answer(conn, response);
            false
        });
        let err = Client::new()
            .get(&server.url("/"))
            .and_then(|response| response.into_body().into_bytes())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{response:?}: {err}");
        assert!(err.to_string().contains(what), "{response:?}: {err}");
    }
}

#[test]
fn bad_urls_say_what_is_wrong_with_them() {
    let _backstop = backstop();
    let client = Client::new();
    for (url, what) in [
        ("ftp://example.com/", "unsupported scheme"),
        ("/just/a/path", "no scheme"),
        ("http://exa mple.com/", "invalid URL"),
    ] {
        let err = client.get(url).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
        assert!(err.to_string().contains(what), "{url}: {err}");
    }
}

#[test]
fn a_silent_server_makes_the_request_time_out() {
    let _backstop = backstop();
    let server = Scripted::start(|n, _, conn| {
        if n == 1 {
            // A head and part of the body, then silence.
            answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01");
        }
        true
    });
    let client = Client::builder().timeout(Duration::from_millis(100)).build();
    let err = client.get(&server.url("/")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("timed out after"), "{err}");
    let body = client.get(&server.url("/")).unwrap().into_body();
    let err = body.into_bytes().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("reading the response body"), "{err}");
}

#[test]
fn twenty_greenlets_fetch_at_once_while_a_ticker_runs() {
    let _backstop = backstop();
    const FETCHERS: usize = 20;
    // The server answers only once every fetcher's request is in: they must all be in flight
    // at once.
    let arrived = Rc::new(gevent::event::Event::new());
    let waiting = Rc::new(Cell::new(0));
    let server = Scripted::start({
        let (arrived, waiting) = (arrived.clone(), waiting.clone());
        move |_, _, conn| {
            waiting.set(waiting.get() + 1);
            if waiting.get() == FETCHERS {
                arrived.set();
            }
            arrived.wait().unwrap();
            answer(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            true
        }
    });
    let ticks = Rc::new(Cell::new(0u64));
    let ticker = spawn({
        let ticks = ticks.clone();
        move || {
            loop {
                ticks.set(ticks.get() + 1);
                gevent::sleep(Duration::from_millis(1)).unwrap();
            }
        }
    });
    let client = Client::new();
    let url = server.url("/");
    let fetchers = Pool::new(FETCHERS);
    let bodies = fetchers
        .map(move |_| client.get(&url).unwrap().into_body().into_string().unwrap(), 0..FETCHERS)
        .unwrap();
    assert_eq!(bodies, vec!["ok"; FETCHERS]);
    assert!(ticks.get() > 0, "the ticker ran while the fetchers waited");
    assert!(!ticker.dead(), "the ticker still runs");
    ticker.kill().unwrap();
}

/// A child process whose stdout lines arrive on a channel; killed on drop.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn start(dir: &TempDir, program: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Peer { child, lines }
    }

    /// The first line that satisfies `want`, every line before it skipped.
    fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(BACKSTOP) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("the peer printed no line we waited for: {e}"),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_http_server_is_a_real_http_10_peer() {
    let _backstop = backstop();
    let dir = TempDir::new("http-python");
    let text = "served by python\n".repeat(1000);
    std::fs::write(dir.join("file.txt"), &text).unwrap();
    let python =
        Peer::start(&dir, "python3", &["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"]);
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let line = python.wait_for(|line| line.starts_with("Serving HTTP"));
    let port: u16 =
        line.split(" port ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let client = Client::new();
    for _ in 0..2 {
        let response = client.get(&format!("http://127.0.0.1:{port}/file.txt")).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], text.len().to_string().as_str());
        assert_eq!(response.into_body().into_string().unwrap(), text);
    }
    let missing = client.get(&format!("http://localhost:{port}/missing")).unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.into_body().into_string().unwrap().contains("File not found"));
}

#[cfg(feature = "tls")]
#[test]
fn https_against_openssl_s_server_with_sni() {
    use gevent::tls::TlsConnector;
    let _backstop = backstop();
    let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/certs");
    let (pem, key) = (certs.join("localhost.pem"), certs.join("localhost.key"));
    let dir = TempDir::new("http-tls");
    std::fs::write(dir.join("page.html"), "<p>over TLS</p>\n").unwrap();
    let (pem, key) = (pem.to_str().unwrap(), key.to_str().unwrap());
    // `-servername_fatal`: a client that does not send SNI for `localhost` is refused.
    let server = Peer::start(
        &dir,
        "openssl",
        &[
            "s_server",
            "-4",
            "-accept",
            "0",
            "-WWW",
            "-cert",
            pem,
            "-key",
            key,
            "-cert2",
            pem,
            "-key2",
            key,
            "-servername",
            "localhost",
            "-servername_fatal",
        ],
    );
    let line = server.wait_for(|line| line.starts_with("ACCEPT"));
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let connector = TlsConnector::with_roots_from_pem_file(certs.join("localhost.pem")).unwrap();
    let client = Client::builder().tls(connector).build();
    for _ in 0..2 {
        let response = client.get(&format!("https://localhost:{port}/page.html")).unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.into_body().into_string().unwrap(), "<p>over TLS</p>\n");
    }
    // The default roots do not trust the example certificate.
    let err = Client::new().get(&format!("https://localhost:{port}/page.html")).unwrap_err();
    assert!(
        gevent::tls::TlsError::from_io(&err).is_some_and(|e| e.is_certificate_error()),
        "{err}"
    );
}
