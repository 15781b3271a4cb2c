//! Reading a response: its head (parsed by `httparse`), how its body is framed, and the body
//! as a reader that gives its connection back to the pool once read to the end.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::time::Duration;

use ::http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, TRANSFER_ENCODING};
use ::http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use super::pool::{Conn, Pool, Transport};
use super::target::Origin;
use crate::Timeout;
use crate::http::codec::{BodyReader, connection_tokens, parse_length};
use crate::time::Instant;

/// Longest response head (status line and header fields) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Most header fields accepted in a response head.
const MAX_HEADERS: usize = 128;

/// A response head.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
}

fn invalid_data(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one response head from `io`, leaving it at the body.
pub(super) fn read_head(io: &mut BufReader<Transport>) -> io::Result<Head> {
    let mut copied = Vec::new();
    loop {
        let available = io.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection in the middle of a response head",
            ));
        }
        // Usually the whole head is in the buffer: it is parsed there, without a copy.
        if copied.is_empty() {
            if let Some((len, head)) = parse_head(available)? {
                io.consume(len);
                return Ok(head);
            }
        }
        let before = copied.len();
        let take = available.len().min(MAX_HEAD - before);
        copied.extend_from_slice(&available[..take]);
        match parse_head(&copied)? {
            Some((len, head)) => {
                io.consume(len - before);
                return Ok(head);
            }
            None if copied.len() >= MAX_HEAD => {
                return Err(invalid_data(format!(
                    "the response head is longer than {MAX_HEAD} bytes"
                )));
            }
            None => io.consume(take),
        }
    }
}

/// Parses a complete head at the start of `bytes`, giving its length; `None` if incomplete.
fn parse_head(bytes: &[u8]) -> io::Result<Option<(usize, Head)>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(invalid_data(format!(
                "malformed response head: more than {MAX_HEADERS} header fields"
            )));
        }
        Err(e) => return Err(invalid_data(format!("malformed response head: {e}"))),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| invalid_data(format!("malformed response head: status {code}")))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| {
            invalid_data(format!("malformed response head: header name {:?}", field.name))
        })?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| invalid_data(format!("malformed response head: the value of {name}")))?;
        headers.append(name, value);
    }
    Ok(Some((len, Head { status, version, headers })))
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body at all (a response to `HEAD`, a 1xx, 204 or 304).
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    UntilEof,
}

/// How the body of the response `head` to a `method` request is framed.
pub(super) fn framing(method: &Method, head: &Head) -> io::Result<Framing> {
    let status = head.status;
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::None);
    }
    if head.headers.contains_key(TRANSFER_ENCODING) {
        // Only a final `chunked` delimits the body; any other coding runs until the close.
        let last = tokens(&head.headers, &TRANSFER_ENCODING).last();
        return Ok(if last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked
        } else {
            Framing::UntilEof
        });
    }
    let mut length = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        // Repeated values (in one field or several) must agree.
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            let parsed = parse_length(part);
            match (parsed, length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => {
                    return Err(invalid_data(format!(
                        "malformed response head: Content-Length {:?}",
                        String::from_utf8_lossy(value.as_bytes())
                    )));
                }
            }
        }
    }
    Ok(length.map_or(Framing::UntilEof, Framing::Length))
}

/// Whether the connection may carry another exchange after this response (RFC 9112 §9.3).
pub(super) fn keeps_alive(head: &Head) -> bool {
    let (mut close, mut keep_alive) = (false, false);
    for value in head.headers.get_all(CONNECTION) {
        let (c, k) = connection_tokens(value.as_bytes());
        close |= c;
        keep_alive |= k;
    }
    !close && (head.version == Version::HTTP_11 || keep_alive)
}

/// The comma-separated tokens of every `name` field.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// The body of a response from a [`Client`](super::Client): a [`Read`]er of its bytes.
///
/// Read to its end, the body gives its connection back to the client's pool for the next
/// request to the same origin. A body dropped before its end closes its connection instead (the
/// rest of the body would have to be read first). Reads obey the client's whole-request
/// [`timeout`](super::ClientBuilder::timeout) as well as any [`Timeout`] of the caller.
pub struct ResponseBody {
    state: State,
    /// The end of the request's time ([`ClientBuilder::timeout`](super::ClientBuilder::timeout)).
    deadline: Option<(Instant, Duration)>,
    origin: Origin,
}

enum State {
    Reading {
        body: BodyReader<BufReader<Transport>>,
        reuse: Option<Pool>,
    },
    Done,
    /// A read failed: the rest of the body cannot be read.
    Failed(io::ErrorKind),
}

impl ResponseBody {
    /// The body on `conn`, framed by `framing`; the connection goes back to `reuse` after the
    /// body (at once if there is none), if given.
    pub(super) fn new(
        conn: Conn,
        framing: Framing,
        reuse: Option<Pool>,
        origin: Origin,
        deadline: Option<(Instant, Duration)>,
    ) -> ResponseBody {
        let body = match framing {
            Framing::None => BodyReader::with_length(conn.io, 0),
            Framing::Length(len) => BodyReader::with_length(conn.io, len),
            Framing::Chunked => BodyReader::chunked(conn.io),
            Framing::UntilEof => BodyReader::UntilEof(conn.io),
        };
        let reuse = reuse.filter(|_| !matches!(body, BodyReader::UntilEof(_)));
        let mut response = ResponseBody { state: State::Reading { body, reuse }, deadline, origin };
        response.finish_if_done();
        response
    }

    /// Reads the rest of the body into a `Vec`.
    pub fn into_bytes(mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Reads the rest of the body as UTF-8 text; an `InvalidData` error if it is not UTF-8.
    pub fn into_string(self) -> io::Result<String> {
        let bytes = self.into_bytes()?;
        String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            invalid_data(format!("the response body is not UTF-8 (invalid byte at offset {at})"))
        })
    }

    /// Once the body is read to its end, its connection goes back to the pool.
    fn finish_if_done(&mut self) {
        let State::Reading { body, .. } = &self.state else { return };
        if !body.is_done() {
            return;
        }
        if let State::Reading { body, reuse: Some(pool) } =
            std::mem::replace(&mut self.state, State::Done)
        {
            pool.put(&self.origin, body.into_inner());
        }
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let body = match &mut self.state {
            State::Reading { body, .. } => body,
            State::Done => return Ok(0),
            State::Failed(kind) => {
                return Err(io::Error::new(*kind, "an earlier read of this response body failed"));
            }
        };
        let timeout = self.deadline.map(|(at, _)| Timeout::start_at(at));
        match body.read(buf) {
            Ok(0) if !buf.is_empty() => {
                // The end: a chunked body's last chunk may have been read only now.
                self.finish_if_done();
                self.state = State::Done;
                Ok(0)
            }
            Ok(n) => {
                self.finish_if_done();
                Ok(n)
            }
            Err(e) => {
                let e = match (timeout, self.deadline) {
                    (Some(timeout), Some((_, limit))) if timeout.is(&e) => io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "reading the response body from {} timed out (the request's \
                             timeout is {limit:?})",
                            self.origin
                        ),
                    ),
                    _ => e,
                };
                self.state = State::Failed(e.kind());
                Err(e)
            }
        }
    }
}

impl Read for ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_body(buf)
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Reading { body: BodyReader::Length { remaining, .. }, .. } => {
                format!("{remaining} bytes left")
            }
            State::Reading { body: BodyReader::Chunked(_), .. } => "chunked".to_owned(),
            State::Reading { body: BodyReader::UntilEof(_), .. } => "until close".to_owned(),
            State::Done => "done".to_owned(),
            State::Failed(kind) => format!("failed ({kind})"),
        };
        f.debug_struct("ResponseBody")
            .field("origin", &self.origin.to_string())
            .field("state", &state)
            .finish()
    }
}
