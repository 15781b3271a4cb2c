//! Property tests of `gevent::http::Server`'s request parsing: random valid requests, written
//! out by the small serializer below and pipelined on one in-memory connection, must reach
//! the handler exactly as generated, and their answers must come back in order.

#![cfg(feature = "http")]

use std::cell::RefCell;
use std::io::{self, Cursor, Read, Write};
use std::rc::Rc;

use gevent::http::{Body, Request, RequestBody, Response, Server};
use gevent::net::TcpListener;
use proptest::collection::vec;
use proptest::prelude::*;

/// How a generated request's body is framed on the wire.
#[derive(Debug, Clone)]
enum Framing {
    Length,
    /// Chunked, cut into chunks of these sizes (cycled; the last chunk takes what is left).
    Chunked {
        sizes: Vec<usize>,
        upper_hex: bool,
    },
}

/// A request as generated, and as the handler must see it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    target: String,
    /// Names in lower case, sorted by name.
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Generated {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    framing: Framing,
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        Just("OPTIONS".to_owned()),
        // Extension methods: any token.
        "[A-Z][A-Z0-9!#$%&'*+.^_`|~-]{0,11}"
            .prop_filter("HEAD and CONNECT differ", |m| { m != "HEAD" && m != "CONNECT" }),
    ]
}

fn target() -> impl Strategy<Value = String> {
    (
        vec("[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,8}", 0..4),
        proptest::option::of("[a-zA-Z0-9=&/?._-]{0,16}"),
    )
        .prop_map(|(segments, query)| {
            let mut target = format!("/{}", segments.join("/"));
            if let Some(query) = query {
                target.push('?');
                target.push_str(&query);
            }
            target
        })
        // `%` must start a percent-encoding for the target to be a valid URI.
        .prop_filter("a valid percent-encoding", |t| {
            t.split('%').skip(1).all(|after| {
                after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)
            })
        })
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    // Field values: visible characters with spaces and tabs inside, none at either end.
    vec(("[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,16}", "([!-~]([ \t!-~]{0,30}[!-~])?)?"), 0..8).prop_map(
        |fields| {
            // Names made distinct (and clear of the framing headers the serializer adds), so
            // that the handler's map holds each once.
            let fields = fields.into_iter().enumerate();
            fields.map(|(i, (name, value))| (format!("x-{i}-{name}"), value)).collect()
        },
    )
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Length),
        (vec(1usize..64, 1..6), any::<bool>())
            .prop_map(|(sizes, upper_hex)| Framing::Chunked { sizes, upper_hex }),
    ]
}

fn request() -> impl Strategy<Value = Generated> {
    (method(), target(), headers(), vec(any::<u8>(), 0..300), framing()).prop_map(
        |(method, target, headers, body, framing)| Generated {
            method,
            target,
            headers,
            body,
            framing,
        },
    )
}

impl Generated {
    fn write_to(&self, wire: &mut Vec<u8>) {
        write!(wire, "{} {} HTTP/1.1\r\n", self.method, self.target).unwrap();
        for (name, value) in &self.headers {
            write!(wire, "{name}: {value}\r\n").unwrap();
        }
        match &self.framing {
            Framing::Length => {
                write!(wire, "Content-Length: {}\r\n\r\n", self.body.len()).unwrap();
                wire.extend_from_slice(&self.body);
            }
            Framing::Chunked { sizes, upper_hex } => {
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest = &self.body[..];
                for &size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, after) = rest.split_at(size.min(rest.len()));
                    if *upper_hex {
                        write!(wire, "{:X}\r\n", chunk.len()).unwrap();
                    } else {
                        write!(wire, "{:x}\r\n", chunk.len()).unwrap();
                    }
                    wire.extend_from_slice(chunk);
                    wire.extend_from_slice(b"\r\n");
                    rest = after;
                }
                wire.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }

    fn seen(&self) -> Seen {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.as_bytes().to_vec()))
            .collect();
        headers.push(match self.framing {
            Framing::Length => ("content-length".to_owned(), self.body.len().to_string().into()),
            Framing::Chunked { .. } => ("transfer-encoding".to_owned(), b"chunked".to_vec()),
        });
        headers.sort();
        Seen {
            method: self.method.clone(),
            target: self.target.clone(),
            headers,
            body: self.body.clone(),
        }
    }
}

/// The client's side of an in-memory connection: reads come from `input`, writes are kept.
struct Wire {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server whose handler records each request and answers with its index.
fn recording_server() -> (Server, Rc<RefCell<Vec<Seen>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let record = seen.clone();
    let handler = move |mut request: Request<RequestBody<'_>>| {
        let mut body = Vec::new();
        request.body_mut().read_to_end(&mut body).unwrap();
        assert_eq!(request.version(), gevent::http::Version::HTTP_11);
        let mut headers: Vec<_> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        headers.sort();
        let mut seen = record.borrow_mut();
        seen.push(Seen {
            method: request.method().as_str().to_owned(),
            target: request.uri().to_string(),
            headers,
            body,
        });
        Response::new(Body::from(format!("answer {}", seen.len() - 1)))
    };
    (Server::new(TcpListener::bind("127.0.0.1:0").unwrap(), handler), seen)
}

/// Splits `output` into response bodies, checking each is a `200` with a Content-Length.
fn response_bodies(mut output: &[u8]) -> Vec<String> {
    let mut bodies = Vec::new();
    while !output.is_empty() {
        let head_len = output.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = std::str::from_utf8(&output[..head_len]).expect("an ASCII head");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .unwrap();
        let body = &output[head_len..head_len + len];
        bodies.push(String::from_utf8(body.to_vec()).unwrap());
        output = &output[head_len + len..];
    }
    bodies
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pipelined_requests_reach_the_handler_as_sent(requests in vec(request(), 1..6)) {
        let (server, seen) = recording_server();
        let mut input = Vec::new();
        for request in &requests {
            request.write_to(&mut input);
        }
        let mut wire = Wire { input: Cursor::new(input), output: Vec::new() };
        server.serve_connection(&mut wire).unwrap();

        let expected: Vec<Seen> = requests.iter().map(Generated::seen).collect();
        prop_assert_eq!(&*seen.borrow(), &expected);
        let answers: Vec<String> = (0..requests.len()).map(|i| format!("answer {i}")).collect();
        prop_assert_eq!(response_bodies(&wire.output), answers);
    }
}
