//! Request heads: parsed in place by `httparse`, then checked for how the body is framed
//! (RFC 9112 §6), which is where request smuggling hides.

use std::mem::MaybeUninit;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::http::codec::{connection_tokens, parse_length, trim};

/// Headers parsed into a stack array; a server allowing more parses into the heap.
const STACK_HEADERS: usize = 100;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length` (0 when the request has neither header).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    /// Whether the client lets the connection stay open after this exchange.
    pub(super) keep_alive: bool,
    /// `Expect: 100-continue` from an HTTP/1.1 client.
    pub(super) expect_continue: bool,
}

/// Why a head is refused: each answers with its status and ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadError {
    /// A malformed request line, header or framing (400).
    Malformed(&'static str),
    /// More header bytes than the server allows (431).
    TooLarge,
    /// More header fields than the server allows (431).
    TooManyHeaders,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version,
}

impl HeadError {
    /// The status that answers this error.
    pub(super) fn status(self) -> StatusCode {
        match self {
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::TooLarge | HeadError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }
}

/// Parses the head at the start of `buf`: `Ok(None)` if it is not complete yet, or the head
/// and its length in bytes.
///
/// Out of line: its array of headers would otherwise sit in the connection loop's frame,
/// deepening every connection's resident stack while it waits between requests.
#[inline(never)]
pub(super) fn parse(buf: &[u8], max_headers: usize) -> Result<Option<(Head, usize)>, HeadError> {
    if max_headers <= STACK_HEADERS {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        parse_into(buf, &mut headers[..max_headers])
    } else {
        let mut headers = Vec::new();
        headers.resize_with(max_headers, MaybeUninit::uninit);
        parse_into(buf, &mut headers)
    }
}

fn parse_into<'b>(
    buf: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(Head, usize)>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) if names_another_version(buf) => {
            return Err(HeadError::Version);
        }
        Err(e) => return Err(HeadError::Malformed(error_text(e))),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("the method is not a token"))?;
    // One copy of the head backs the target and every header value (each a counted slice
    // of it), instead of an allocation for each.
    let shared = Bytes::copy_from_slice(&buf[..len]);
    let slice = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        shared.slice(start..start + part.len())
    };
    let uri = Uri::from_maybe_shared(slice(req.path.unwrap_or_default().as_bytes()))
        .map_err(|_| HeadError::Malformed("the request target is not a valid URI"))?;
    let version = if req.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // The headers that decide framing and the connection's fate are read here, as the map
    // is built, rather than looked up (hashed) in it afterwards.
    let mut scan = Scan::default();
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for header in req.headers.iter() {
        scan.header(header.name.as_bytes(), header.value);
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HeadError::Malformed("a header name is not a token"))?;
        let value = HeaderValue::from_maybe_shared(slice(header.value))
            .map_err(|_| HeadError::Malformed("a header value holds a control character"))?;
        map.append(name, value);
    }
    let framing = scan.framing(version)?;
    let keep_alive = !scan.close && (version == Version::HTTP_11 || scan.keep_alive);
    let expect_continue = version == Version::HTTP_11 && scan.expect_continue;
    let head = Head { method, uri, version, headers: map, framing, keep_alive, expect_continue };
    Ok(Some((head, len)))
}

/// What the headers say about framing (RFC 9112 §6.1, §6.3), the connection and
/// `Expect`, gathered in one pass over them.
struct Scan {
    /// Transfer-Encoding headers seen.
    transfer_encoding: bool,
    /// Transfer codings listed so far, over every Transfer-Encoding header.
    codings: usize,
    /// Whether the first coding is `chunked`.
    chunked_first: bool,
    /// Content-Length headers seen.
    content_length: bool,
    /// The length they agree on, or the first thing wrong with them.
    length: Result<Option<u64>, &'static str>,
    /// `Connection: close`.
    close: bool,
    /// `Connection: keep-alive`.
    keep_alive: bool,
    /// The first `Expect` header was `100-continue`.
    expect_continue: bool,
    /// An `Expect` header was seen.
    expect_seen: bool,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            transfer_encoding: false,
            codings: 0,
            chunked_first: false,
            content_length: false,
            length: Ok(None),
            close: false,
            keep_alive: false,
            expect_continue: false,
            expect_seen: false,
        }
    }
}

impl Scan {
    /// Takes in one header field.
    fn header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            for token in value.split(|&b| b == b',') {
                if self.codings == 0 {
                    self.chunked_first = trim(token).eq_ignore_ascii_case(b"chunked");
                }
                self.codings += 1;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length = true;
            for token in value.split(|&b| b == b',') {
                self.length = match (self.length, parse_length(trim(token))) {
                    (Err(e), _) => Err(e),
                    (Ok(_), None) => Err("Content-Length is not a number"),
                    (Ok(Some(l)), Some(n)) if l != n => Err("Content-Length values disagree"),
                    (Ok(_), Some(n)) => Ok(Some(n)),
                };
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            let (close, keep_alive) = connection_tokens(value);
            self.close |= close;
            self.keep_alive |= keep_alive;
        } else if name.eq_ignore_ascii_case(b"expect") && !self.expect_seen {
            self.expect_seen = true;
            self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    /// The body's framing. `Transfer-Encoding` with `Content-Length`, a coding other than a
    /// lone `chunked`, or disagreeing lengths are refused: an intermediary reading the
    /// framing differently is how requests get smuggled.
    fn framing(&self, version: Version) -> Result<Framing, HeadError> {
        if self.transfer_encoding {
            if self.content_length {
                return Err(HeadError::Malformed("both Content-Length and Transfer-Encoding"));
            }
            if version == Version::HTTP_10 {
                return Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
            }
            return if self.chunked_first && self.codings == 1 {
                Ok(Framing::Chunked)
            } else {
                Err(HeadError::Malformed("a transfer coding other than chunked"))
            };
        }
        match self.length {
            Ok(length) => Ok(Framing::Length(length.unwrap_or(0))),
            Err(e) => Err(HeadError::Malformed(e)),
        }
    }
}
/// Whether a request line that `httparse` refused for its version names a well-formed
/// `HTTP/x.y` we do not speak (505) rather than garbage (400).
fn names_another_version(buf: &[u8]) -> bool {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

fn error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "a header name is malformed",
        httparse::Error::HeaderValue => "a header value is malformed",
        httparse::Error::NewLine | httparse::Error::Status => "a line ending is malformed",
        httparse::Error::Token => "the method is malformed",
        httparse::Error::Version => "the HTTP version is malformed",
        _ => "the request line or headers are malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(wire: &str) -> (Head, usize) {
        parse(wire.as_bytes(), 100).unwrap().expect("a complete head")
    }

    fn err(wire: &str) -> HeadError {
        parse(wire.as_bytes(), 100).unwrap_err()
    }

    #[test]
    fn parses_a_head_and_stops_at_its_end() {
        let wire = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next";
        let (head, len) = ok(wire);
        assert_eq!(&wire[len..], "GET /next");
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.uri.path(), "/a");
        assert_eq!(head.uri.query(), Some("b=1"));
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers.get_all("x-two").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(0));
        assert!(head.keep_alive && !head.expect_continue);
    }

    #[test]
    fn a_partial_head_asks_for_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n", 100).unwrap().is_none());
        assert!(parse(b"", 100).unwrap().is_none());
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").0.keep_alive);
        assert!(ok("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").0.expect_continue);
        assert!(!ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").0.expect_continue);
        // Only the first Expect header counts, as `HeaderMap::get` would say.
        let two = "POST / HTTP/1.1\r\nExpect: foo\r\nExpect: 100-continue\r\n\r\n";
        assert!(!ok(two).0.expect_continue);
    }

    #[test]
    fn framing_by_length_or_chunked() {
        let head = ok("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n").0;
        assert_eq!(head.framing, Framing::Length(42));
        let head = ok("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n").0;
        assert_eq!(head.framing, Framing::Length(7));
        let head = ok("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").0;
        assert_eq!(head.framing, Framing::Chunked);
    }

    #[test]
    fn refuses_smuggling_framings() {
        for wire in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        ] {
            assert!(matches!(err(wire), HeadError::Malformed(_)), "{wire:?}");
        }
    }

    #[test]
    fn sorts_malformed_heads_by_their_answer() {
        assert!(matches!(err("GET\r\n\r\n"), HeadError::Malformed(_)));
        assert!(matches!(err("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), HeadError::Malformed(_)));
        assert!(matches!(err("GET / FOO/1.1\r\n\r\n"), HeadError::Malformed(_)));
        assert_eq!(err("GET / HTTP/2.0\r\n\r\n"), HeadError::Version);
        assert_eq!(err("GET / HTTP/1.2\r\n\r\n"), HeadError::Version);
        assert_eq!(err("GET / HTTP/1.2\r\n\r\n").status(), StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..101 {
            many.push_str(&format!("h{i}: x\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(err(&many), HeadError::TooManyHeaders);
        assert!(parse(many.as_bytes(), 200).unwrap().is_some());
    }
}
