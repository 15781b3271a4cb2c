//! Request heads: parsed in place by `httparse`, then checked for how the body is framed
//! (RFC 9112 §6), which is where request smuggling hides.

use std::mem::MaybeUninit;

use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

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
    let uri = Uri::try_from(req.path.unwrap_or_default())
        .map_err(|_| HeadError::Malformed("the request target is not a valid URI"))?;
    let version = if req.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for header in req.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HeadError::Malformed("a header name is not a token"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| HeadError::Malformed("a header value holds a control character"))?;
        map.append(name, value);
    }
    let framing = framing(&map, version)?;
    let (close, keep_alive) = connection_options(&map);
    let keep_alive = !close && (version == Version::HTTP_11 || keep_alive);
    let expect_continue = version == Version::HTTP_11
        && map.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let head = Head { method, uri, version, headers: map, framing, keep_alive, expect_continue };
    Ok(Some((head, len)))
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

/// The body's framing (RFC 9112 §6.1, §6.3). `Transfer-Encoding` with `Content-Length`, a
/// coding other than a lone `chunked`, or disagreeing lengths are refused: an intermediary
/// reading the framing differently is how requests get smuggled.
fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, HeadError> {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(HeadError::Malformed("both Content-Length and Transfer-Encoding"));
        }
        if version == Version::HTTP_10 {
            return Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request"));
        }
        let mut tokens = codings.flat_map(|v| v.as_bytes().split(|&b| b == b','));
        let only_chunked = tokens.next().is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"))
            && tokens.next().is_none();
        return if only_chunked {
            Ok(Framing::Chunked)
        } else {
            Err(HeadError::Malformed("a transfer coding other than chunked"))
        };
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(trim(token))
                .ok_or(HeadError::Malformed("Content-Length is not a number"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("Content-Length values disagree"));
            }
            length = Some(n);
        }
    }
    Ok(Framing::Length(length.unwrap_or(0)))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
}

/// Whether `Connection` says `close`, and whether it says `keep-alive`.
fn connection_options(headers: &HeaderMap) -> (bool, bool) {
    let (mut close, mut keep_alive) = (false, false);
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = trim(token);
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    (close, keep_alive)
}

/// Whether a response's `Connection` header says `close`.
pub(super) fn says_close(headers: &HeaderMap) -> bool {
    connection_options(headers).0
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
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
