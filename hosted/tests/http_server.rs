//! `gevent::http::Server` against real clients: `curl` run as a child process (the hub keeps
//! serving while it runs) and raw TCP for pipelining and malformed requests. Every test runs
//! under a `Timeout`, so that a hang fails it.
// Over plain TCP and TLS: the `http` and `tls` features (both on by default).
#![cfg(all(feature = "http", feature = "tls"))]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::http::{Body, Request, RequestBody, Response, Server, ServerBuilder, StatusCode};
use gevent::net::{TcpListener, TcpStream};
use gevent::process::Command;
use gevent::{Timeout, spawn};

const GRACE: Duration = Duration::from_secs(1);
const BACKSTOP: Duration = Duration::from_secs(30);

/// The test handler: routes by path.
fn route(mut request: Request<RequestBody<'_>>) -> Response<Body> {
    match request.uri().path() {
        "/hello" => Response::new(Body::from("Hello, World!")),
        "/echo" => {
            let mut body = Vec::new();
            match request.body_mut().read_to_end(&mut body) {
                Ok(_) => Response::new(Body::from(body)),
                Err(e) => {
                    let mut response = Response::new(Body::from(e.to_string()));
                    *response.status_mut() = StatusCode::IM_A_TEAPOT;
                    response
                }
            }
        }
        "/stream" => Response::new(Body::from_reader(std::io::Cursor::new(vec![b'x'; 100_000]))),
        "/ignore" => Response::new(Body::from("ignored")),
        "/panic" => panic!("the handler panics on purpose"),
        path => Response::new(Body::from(path.to_owned())),
    }
}

/// Runs `test` against a started server built by `builder` with `handler`, under a backstop.
fn with_server(
    builder: ServerBuilder,
    handler: impl for<'a> Fn(Request<RequestBody<'a>>) -> Response<Body> + 'static,
    test: impl FnOnce(SocketAddr, &Server),
) {
    let _backstop = Timeout::start(BACKSTOP);
    let server = builder.build(TcpListener::bind("127.0.0.1:0").unwrap(), handler);
    let addr = server.local_addr().unwrap();
    server.start().unwrap();
    test(addr, &server);
    server.stop(GRACE);
}

/// Runs curl with `args`; returns its stdout and its stderr.
fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "curl {args:?} failed: {stderr}");
    (output.stdout, stderr)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// Sends `request` on a new connection and reads until the server closes it.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one response with a `Content-Length` from a keep-alive connection.
fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

fn temp_file(dir: &common::TempDir, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn curl_get_head_post_and_a_streamed_response() {
    with_server(Server::builder(), route, |addr, _| {
        let (body, _) = curl(&[&url(addr, "/hello")]);
        assert_eq!(body, b"Hello, World!");

        let (head, _) = curl(&["-I", &url(addr, "/hello")]);
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-length: 13\r\n"), "{head}");
        assert!(head.contains("date: "), "{head}");
        assert!(!head.to_lowercase().contains("server:"), "{head}");

        let (body, _) = curl(&["-d", "posted data", &url(addr, "/echo")]);
        assert_eq!(body, b"posted data");

        let (body, stderr) = curl(&["-v", &url(addr, "/stream")]);
        assert_eq!(body, vec![b'x'; 100_000]);
        assert!(stderr.contains("transfer-encoding: chunked"), "{stderr}");
    });
}

#[test]
fn curl_sends_a_large_body_after_100_continue_and_a_chunked_upload() {
    let dir = common::TempDir::new("http-server-upload");
    let (path, data) = temp_file(&dir, "body", 3 * 1024 * 1024 + 17);
    let file = format!("@{}", path.display());
    with_server(Server::builder(), route, |addr, _| {
        let (body, stderr) = curl(&[
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &file,
            &url(addr, "/echo"),
        ]);
        assert!(body == data, "the echoed body differs");
        assert!(stderr.contains("HTTP/1.1 100 Continue"), "{stderr}");

        let (body, _) = curl(&[
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &file,
            &url(addr, "/echo"),
        ]);
        assert!(body == data, "the echoed chunked body differs");
    });
}

#[test]
fn no_100_continue_when_the_handler_does_not_read_the_body() {
    let dir = common::TempDir::new("http-server-expect");
    let (path, _) = temp_file(&dir, "body", 2 * 1024 * 1024);
    let file = format!("@{}", path.display());
    with_server(Server::builder(), route, |addr, _| {
        let (body, stderr) = curl(&[
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &file,
            &url(addr, "/ignore"),
        ]);
        assert_eq!(body, b"ignored");
        assert!(!stderr.contains("100 Continue"), "{stderr}");
    });
}

/// A streamed body that gives "first", then waits for `go` before it gives "second".
struct Gated {
    go: Rc<Event>,
    given: u8,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let piece: &[u8] = match self.given {
            0 => b"first",
            1 => {
                self.go.wait()?;
                b"second"
            }
            _ => return Ok(0),
        };
        self.given += 1;
        buf[..piece.len()].copy_from_slice(piece);
        Ok(piece.len())
    }
}

#[test]
fn a_streamed_body_leaves_piece_by_piece() {
    let go = Rc::new(Event::new());
    let handler = {
        let go = go.clone();
        move |_request: Request<RequestBody<'_>>| {
            Response::new(Body::from_reader(Gated { go: go.clone(), given: 0 }))
        }
    };
    with_server(Server::builder(), handler, |addr, _| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        // The first piece must arrive while the reader waits for the second: a server that
        // held it until the body's end would wait for `go` forever.
        let mut answer = Vec::new();
        let mut buf = [0; 1024];
        let waiting = Timeout::start(Duration::from_secs(10));
        while !answer.ends_with(b"5\r\nfirst\r\n") {
            match stream.read(&mut buf) {
                Ok(n @ 1..) => answer.extend_from_slice(&buf[..n]),
                other => panic!("{other:?} before the first piece: {answer:?}"),
            }
        }
        drop(waiting);
        go.set();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.contains("transfer-encoding: chunked\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"), "{answer}");
    });
}

#[test]
fn curl_reuses_one_keep_alive_connection() {
    with_server(Server::builder(), route, |addr, _| {
        let (body, stderr) =
            curl(&["-v", &url(addr, "/a"), &url(addr, "/b"), &url(addr, "/hello")]);
        assert_eq!(body, b"/a/bHello, World!");
        assert_eq!(stderr.matches("Re-using existing connection").count(), 2, "{stderr}");
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    with_server(Server::builder(), route, |addr, _| {
        let answer = exchange(
            addr,
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\ntwo\
              POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nthr\r\n2\r\nee\r\n0\r\n\r\n\
              HEAD /four HTTP/1.1\r\n\r\n\
              GET /five HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let statuses = answer.matches("HTTP/1.1 200 OK\r\n").count();
        assert_eq!(statuses, 5, "{answer}");
        let bodies: Vec<&str> = answer
            .split("\r\n\r\n")
            .skip(1)
            .map(|rest| rest.split("HTTP/1.1").next().unwrap())
            .collect();
        assert_eq!(bodies, ["/one", "two", "three", "", "/five"], "{answer}");
        assert!(answer.contains("content-length: 5\r\n"), "HEAD has the GET's length");
    });
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    with_server(Server::builder(), route, |addr, _| {
        let answer = exchange(addr, b"GET /old HTTP/1.0\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("/old"), "{answer}");

        let mut stream = TcpStream::connect(addr).unwrap();
        for path in ["/a", "/b"] {
            let request = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            stream.write_all(request.as_bytes()).unwrap();
            let (head, body) = read_response(&mut stream);
            assert!(head.contains("connection: keep-alive\r\n"), "{head}");
            assert_eq!(body, path);
        }
    });
}

#[test]
fn malformed_requests_get_their_answer_and_others_are_still_served() {
    let builder =
        Server::builder().max_header_bytes(1024).max_headers(10).max_body_bytes(Some(1000));
    with_server(builder, route, |addr, _| {
        let mut bystander = TcpStream::connect(addr).unwrap();
        let many_headers: String = (0..11).map(|i| format!("h{i}: x\r\n")).collect();
        let big_header = format!("X-Big: {}\r\n", "a".repeat(2000));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"GARBAGE\r\n\r\n".to_vec(), "400"),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), "400"),
            (format!("GET / HTTP/1.1\r\n{big_header}\r\n").into_bytes(), "431"),
            (format!("GET / HTTP/1.1\r\n{}", "a".repeat(2000)).into_bytes(), "431"),
            (format!("GET / HTTP/1.1\r\n{many_headers}\r\n").into_bytes(), "431"),
            (b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n".to_vec(), "413"),
            (
                format!(
                    "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n{}\r\n0\r\n\r\n",
                    "a".repeat(1001)
                )
                .into_bytes(),
                "413",
            ),
            (
                b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
                "400",
            ),
            (
                b"POST /ignore HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nxyz\r\n"
                    .to_vec(),
                "400",
            ),
            (
                b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .to_vec(),
                "400",
            ),
            (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), "400"),
            (b"GET / HTTP/2.0\r\n\r\n".to_vec(), "505"),
        ];
        for (request, status) in cases {
            let answer = exchange(addr, &request);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{:?} -> {answer:?}",
                String::from_utf8_lossy(&request[..request.len().min(80)])
            );
            assert!(answer.contains("connection: close\r\n"), "{answer}");
            bystander.write_all(b"GET /still-here HTTP/1.1\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut bystander).1, "/still-here");
        }
    });
}

#[test]
fn a_body_longer_than_its_content_length_is_the_next_request() {
    with_server(Server::builder(), route, |addr, _| {
        let answer =
            exchange(addr, b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcde\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\n\r\nabHTTP/1.1 400 "), "{answer}");
    });
}

#[test]
fn idle_and_trickling_clients_are_closed_by_the_idle_timeout() {
    let builder = Server::builder().idle_timeout(Duration::from_millis(300));
    with_server(builder, route, |addr, _| {
        // Idle between requests: closed without an answer.
        let mut idle = TcpStream::connect(addr).unwrap();
        let mut answer = Vec::new();
        idle.read_to_end(&mut answer).unwrap();
        assert!(answer.is_empty());

        // A head trickled in without end, each line well within the timeout: only a deadline
        // on the whole head ends it (a per-read timeout never would; the test's backstop
        // would fail it).
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let trickler = spawn(move || -> std::io::Result<()> {
            writer.write_all(b"GET / HTTP/1.1\r\n")?;
            loop {
                gevent::sleep(Duration::from_millis(50)).map_err(std::io::Error::from)?;
                writer.write_all(b"X: y\r\n")?;
            }
        });
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(!trickler.ready(), "the trickle ended by itself: it must go on until killed");
        let _ = trickler.kill();
    });
}

#[test]
fn stop_finishes_the_request_in_flight_and_closes_idle_connections() {
    let entered = Rc::new(Event::new());
    let release = Rc::new(Event::new());
    let handler = {
        let (entered, release) = (entered.clone(), release.clone());
        move |_request: Request<RequestBody<'_>>| {
            entered.set();
            release.wait().unwrap();
            Response::new(Body::from("finished"))
        }
    };
    let _backstop = Timeout::start(BACKSTOP);
    let server = Server::new(TcpListener::bind("127.0.0.1:0").unwrap(), handler);
    let addr = server.local_addr().unwrap();
    server.start().unwrap();

    let mut idle = TcpStream::connect(addr).unwrap();
    let in_flight = spawn(move || exchange(addr, b"GET /slow HTTP/1.1\r\n\r\n"));
    entered.wait().unwrap();
    // The idle connection's greenlet is waiting for its first request.
    let stopper = spawn({
        let server = server.clone();
        // A grace longer than the backstop: stop must not wait for the idle connection.
        move || server.stop(Duration::from_secs(120))
    });
    let mut nothing = Vec::new();
    idle.read_to_end(&mut nothing).unwrap();
    assert!(nothing.is_empty());
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    release.set();
    let answer = in_flight.take().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("finished"));
    stopper.join().unwrap();
}

#[test]
fn a_panicking_handler_gets_a_500_and_ends_only_its_connection() {
    with_server(Server::builder(), route, |addr, _| {
        let mut bystander = TcpStream::connect(addr).unwrap();
        let answer = exchange(addr, b"GET /panic HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
        assert!(!answer.contains("/never"), "{answer}");
        bystander.write_all(b"GET /alive HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut bystander).1, "/alive");
    });
}

#[test]
fn serve_connection_serves_any_stream_and_reports_a_panic() {
    let _backstop = Timeout::start(BACKSTOP);
    let server = Server::new(TcpListener::bind("127.0.0.1:0").unwrap(), route);
    let (client, served) = common::pair();
    let serving = spawn({
        let server = server.clone();
        move || server.serve_connection(served)
    });
    let mut client = client;
    client.write_all(b"GET /x HTTP/1.1\r\n\r\nGET /panic HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("\r\n\r\n/xHTTP/1.1 500 "), "{answer}");
    let err = serving.take().unwrap().unwrap_err();
    assert!(err.to_string().contains("the handler panics on purpose"), "{err}");
}

#[test]
fn curl_over_tls() {
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/certs");
    let acceptor = gevent::tls::TlsAcceptor::from_pem_files(
        format!("{certs}/localhost.pem"),
        format!("{certs}/localhost.key"),
    )
    .unwrap();
    with_server(Server::builder().tls(acceptor), route, |addr, _| {
        let port = addr.port();
        let resolve = format!("localhost:{port}:127.0.0.1");
        let (body, _) = curl(&[
            "--cacert",
            &format!("{certs}/localhost.pem"),
            "--resolve",
            &resolve,
            "-d",
            "over tls",
            &format!("https://localhost:{port}/echo"),
        ]);
        assert_eq!(body, b"over tls");
    });
}
