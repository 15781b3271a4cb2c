//! The bytes a client sends, served by `gevent::http::Server::serve_connection` over an
//! in-memory stream. Whatever the input, serving must not panic, must end, and what the server
//! wrote must be a sequence of well-formed HTTP/1.1 responses: one per request the handler
//! answered, in order, each carrying the body the handler gave it, and at most one error
//! answer, last, that closes the connection.

#![no_main]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Cursor, Read, Write};

use gevent::http::{Body, Method, Request, RequestBody, Response, Server};
use gevent::net::TcpListener;
use libfuzzer_sys::fuzz_target;

/// The largest request body the server accepts: small, so that inputs reach the 413 paths.
const MAX_BODY: u64 = 4096;

thread_local! {
    /// Built once per process: binding a listener per input would dominate the run.
    static SERVER: Server = Server::builder()
        .max_headers(32)
        .max_body_bytes(Some(MAX_BODY))
        .build(TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0"), handle);
    /// What the handler answered with, oldest first: (request method, response body).
    static ANSWERED: RefCell<VecDeque<(Method, Vec<u8>)>> = const { RefCell::new(VecDeque::new()) };
}

/// Reads the body to its end and echoes the method, path, header count and body; a path
/// containing `stream` gets a body of unknown length (chunked, or until close for HTTP/1.0).
fn handle(mut request: Request<RequestBody<'_>>) -> Response<Body> {
    let mut body = Vec::new();
    if request.body_mut().read_to_end(&mut body).is_err() {
        // The server answers a body it could not read with its own error status.
        return Response::new(Body::from("unread"));
    }
    let mut echo = format!(
        "{} {} {} {}\n",
        request.method(),
        request.uri().path(),
        request.headers().len(),
        body.len()
    )
    .into_bytes();
    echo.extend_from_slice(&body);
    ANSWERED.with_borrow_mut(|answered| {
        answered.push_back((request.method().clone(), echo.clone()));
    });
    if request.uri().path().contains("stream") {
        Response::new(Body::from_reader(Cursor::new(echo)))
    } else {
        Response::new(Body::from(echo))
    }
}

/// The client's side of the connection: reads come from the input, writes are kept.
struct Wire<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|input: &[u8]| {
    ANSWERED.with_borrow_mut(VecDeque::clear);
    let mut wire = Wire { input, output: Vec::new() };
    let served = SERVER.with(|server| server.serve_connection(&mut wire));
    // The stream never fails and the handler never panics: neither may the connection.
    if let Err(e) = served {
        panic!("serving failed: {e}");
    }
    let mut answered = ANSWERED.take();
    check_responses(&wire.output, &mut answered);
    assert!(answered.is_empty(), "{} handler answers were not written", answered.len());
});

/// Checks that `output` is a sequence of responses matching `answered`, then at most one
/// error answer.
fn check_responses(mut output: &[u8], answered: &mut VecDeque<(Method, Vec<u8>)>) {
    while !output.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(output) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("not a response head ({other:?}): {:?}", lossy(output)),
        };
        assert_eq!(response.version, Some(1), "not HTTP/1.1: {:?}", lossy(output));
        let status = response.code.expect("a complete head has a status");
        let framing = Framing::of(response.headers);
        let close = response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
        });
        output = &output[len..];
        match status {
            // The interim answer to `Expect: 100-continue`.
            100 => assert_eq!(framing, Framing::UntilClose, "a 100 with framing headers"),
            200 => {
                let (method, expected) =
                    answered.pop_front().expect("a 200 the handler did not answer");
                // The answer to a HEAD has the GET's framing headers and no body.
                if method != Method::HEAD {
                    let body = framing.read(&mut output);
                    assert_eq!(lossy(&body), lossy(&expected), "the answer's body");
                }
            }
            400..=599 => {
                assert!(matches!(framing, Framing::Length(_)), "an error answer without length");
                framing.read(&mut output);
                assert!(close, "an error answer that keeps the connection");
                // The handler records only answers to requests whose body it read, which
                // the server sends: any before the error answer came out before it.
                assert!(answered.is_empty(), "an error answer before the handler's answers");
            }
            _ => panic!("unexpected status {status}"),
        }
        if close {
            assert!(output.is_empty(), "{} bytes after `connection: close`", output.len());
        }
    }
}

/// How a response body is delimited: by its headers, or by the end of the connection when
/// it has neither `Content-Length` nor `Transfer-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Framing {
        let mut framing = Framing::UntilClose;
        for header in headers {
            if header.name.eq_ignore_ascii_case("content-length") {
                assert_eq!(framing, Framing::UntilClose, "a second framing header");
                let digits = std::str::from_utf8(header.value).expect("an ASCII length");
                framing = Framing::Length(digits.parse().expect("a decimal length"));
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                assert_eq!(framing, Framing::UntilClose, "a second framing header");
                assert_eq!(header.value, b"chunked");
                framing = Framing::Chunked;
            }
        }
        framing
    }

    /// Takes the body from the start of `output`.
    fn read(self, output: &mut &[u8]) -> Vec<u8> {
        match self {
            Framing::Length(len) => {
                assert!(output.len() >= len, "a body shorter than its Content-Length");
                let (body, rest) = output.split_at(len);
                *output = rest;
                body.to_vec()
            }
            Framing::UntilClose => std::mem::take(output).to_vec(),
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line_end =
                        output.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
                    let size = std::str::from_utf8(&output[..line_end]).expect("ASCII size");
                    let size = usize::from_str_radix(size, 16).expect("a hexadecimal size");
                    *output = &output[line_end + 2..];
                    if size == 0 {
                        assert!(output.starts_with(b"\r\n"), "trailers after the last chunk");
                        *output = &output[2..];
                        return body;
                    }
                    assert!(output.len() >= size + 2, "a chunk cut short");
                    body.extend_from_slice(&output[..size]);
                    assert_eq!(&output[size..size + 2], b"\r\n", "a chunk's end");
                    *output = &output[size + 2..];
                }
            }
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
