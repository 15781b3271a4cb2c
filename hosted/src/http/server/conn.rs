//! One connection: requests read from a reused buffer, responses gathered in a reused output
//! buffer and written once per batch of pipelined requests.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use gevent_core::Timeout;
use gevent_core::time::Instant;
use http::{Method, Request, Response, StatusCode, Version};

use super::connections::Slot;
use super::head::{self, Framing, Head, HeadError};
use super::response::{self, write_error, write_head};
use super::{Config, Handler, RequestBody};
use crate::http::body::{Body, BodyKind};
use crate::http::codec::{BodyReader, ChunkedEncoder};

/// The read buffer's first size. Most request heads are well under 2 KiB and arrive in one
/// read (a larger head grows the buffer up to the server's header limit); the buffer lives as
/// long as its connection, so at 10,000 idle keep-alive connections each KiB here is 10 MB.
const READ_BUFFER: usize = 4 * 1024;
/// Output is written once it holds this much, even mid-response.
const OUT_LIMIT: usize = 64 * 1024;
/// The most of an unread request body the server reads and discards to keep the connection.
const DRAIN_LIMIT: u64 = 256 * 1024;
/// The most input read and discarded before closing a connection whose input is unread, so
/// that the kernel does not reset it (discarding the answer) while the client still sends.
const LINGER_LIMIT: u64 = 256 * 1024;
/// How long a closing connection waits for the client to stop sending.
const LINGER_TIME: Duration = Duration::from_secs(2);

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How a connection ended without an I/O error.
#[derive(Debug)]
pub(super) enum End {
    /// Closed by either side, or after an error answer.
    Closed,
    /// The handler panicked (already reported by the panic hook), with its message.
    Panicked(String),
}

/// An idle timeout: the client sent nothing (or not enough of a head) in time.
#[derive(Debug)]
struct IdleTimeout;

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client was idle for longer than the server's idle timeout")
    }
}

impl std::error::Error for IdleTimeout {}

/// `e`, or an [`IdleTimeout`] error if `timeout` caused it.
fn idle_error(timeout: &Timeout, e: io::Error) -> io::Error {
    if timeout.is(&e) { io::Error::new(io::ErrorKind::TimedOut, IdleTimeout) } else { e }
}

fn is_idle_timeout(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<IdleTimeout>())
}

/// The buffered connection.
struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    out: Vec<u8>,
    idle: Duration,
    /// While a head is being read: when the whole head must have arrived.
    head_deadline: Option<Instant>,
    /// Ends the sending direction, so that a lingering client sees the end of the answer.
    half_close: fn(&mut S),
}

impl<S: Read + Write> Conn<S> {
    /// Reads from the socket into `buf[filled..]`, after writing pending output (whoever
    /// waits for input must not hold back answers). One timeout bounds both: the idle timeout,
    /// or the head's deadline while a head is arriving.
    fn read_socket(&mut self) -> io::Result<usize> {
        let timeout = match self.head_deadline {
            Some(deadline) => Timeout::start_at(deadline),
            None => Timeout::start(self.idle),
        };
        let n = self
            .write_out()
            .and_then(|()| self.stream.read(&mut self.buf[self.filled..]))
            .map_err(|e| idle_error(&timeout, e))?;
        self.filled += n;
        Ok(n)
    }

    /// Writes pending output, bounded by the idle timeout.
    fn flush_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = Timeout::start(self.idle);
        self.write_out().map_err(|e| idle_error(&timeout, e))
    }

    /// Writes pending output under the caller's timeout.
    fn write_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self.stream.write_all(&self.out).and_then(|()| self.stream.flush());
        self.out.clear();
        written
    }

    /// Reads the next request head; `Ok(None)` when the client closed or idled between
    /// requests.
    fn read_head(&mut self, config: &Config, slot: &Slot<'_>) -> Result<Option<Head>, HeadEnd> {
        self.head_deadline = None;
        loop {
            if self.pos < self.filled {
                let pending = &self.buf[self.pos..self.filled];
                match head::parse(pending, config.max_headers) {
                    Ok(Some((head, len))) if len <= config.max_header_bytes => {
                        self.pos += len;
                        self.head_deadline = None;
                        return Ok(Some(head));
                    }
                    Ok(Some(_)) => return Err(HeadEnd::Refused(HeadError::TooLarge)),
                    Ok(None) if pending.len() >= config.max_header_bytes => {
                        return Err(HeadEnd::Refused(HeadError::TooLarge));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(HeadEnd::Refused(e)),
                }
            } else {
                self.pos = 0;
                self.filled = 0;
            }
            let started = self.pos < self.filled;
            if self.head_deadline.is_none() {
                self.head_deadline = Some(gevent_core::now().saturating_add(self.idle));
            }
            if self.filled == self.buf.len() {
                if self.pos > 0 {
                    self.buf.copy_within(self.pos..self.filled, 0);
                    self.filled -= self.pos;
                    self.pos = 0;
                } else {
                    let grown = (self.buf.len() * 2).min(config.max_header_bytes.max(READ_BUFFER));
                    self.buf.resize(grown, 0);
                }
            }
            let read = if started {
                self.read_socket()
            } else {
                // An idle keep-alive connection is ended at once by a graceful stop.
                slot.set_idle(true);
                let read = self.read_socket();
                slot.set_idle(false);
                read
            };
            match read {
                Ok(0) if started => return Err(HeadEnd::Io(None)),
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if is_idle_timeout(&e) => {
                    return if started { Err(HeadEnd::Idle) } else { Ok(None) };
                }
                Err(e) => return Err(HeadEnd::Io(Some(e))),
            }
        }
    }

    /// Appends a response and its body to the output; returns whether the connection can
    /// carry another exchange.
    fn write_response(
        &mut self,
        response: Response<Body>,
        head_only: bool,
        keep_alive: bool,
        client: Version,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let body = body.into_kind();
        let framing = if response::bodiless(parts.status) {
            response::Framing::None
        } else {
            match &body {
                BodyKind::Bytes(bytes) => response::Framing::Length(bytes.len() as u64),
                BodyKind::Static(bytes) => response::Framing::Length(bytes.len() as u64),
                BodyKind::Reader { len: Some(len), .. } => response::Framing::Length(*len),
                BodyKind::Reader { len: None, .. } if client == Version::HTTP_11 => {
                    response::Framing::Chunked
                }
                BodyKind::Reader { len: None, .. } => response::Framing::UntilClose,
            }
        };
        let keep_alive = keep_alive && framing != response::Framing::UntilClose;
        let keep_alive =
            write_head(&mut self.out, parts.status, &parts.headers, framing, keep_alive, client);
        if head_only || framing == response::Framing::None {
            return Ok(keep_alive);
        }
        match body {
            BodyKind::Bytes(bytes) => self.write_bytes(&bytes)?,
            BodyKind::Static(bytes) => self.write_bytes(bytes)?,
            BodyKind::Reader { reader, len } => self.write_reader_body(reader, len, framing)?,
        }
        Ok(keep_alive)
    }

    /// Copies a body read from a reader. Out of line (as are the other rare paths that hold
    /// a copy buffer): a buffer in the connection loop's frame would make every connection's
    /// stack that much deeper, resident for as long as the connection lives.
    #[inline(never)]
    fn write_reader_body(
        &mut self,
        mut reader: Box<dyn Read>,
        len: Option<u64>,
        framing: response::Framing,
    ) -> io::Result<()> {
        match len {
            Some(len) => {
                let copied = io::copy(&mut reader.take(len), &mut Output(self))?;
                if copied < len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("a response body's reader ended after {copied} of its {len} bytes"),
                    ));
                }
            }
            None if framing == response::Framing::Chunked => {
                let mut encoder = ChunkedEncoder::new(Output(self));
                copy_streamed(&mut reader, &mut encoder)?;
                encoder.finish()?;
            }
            None => copy_streamed(&mut reader, &mut Output(self))?,
        }
        Ok(())
    }

    /// Appends a body held in memory; a large one is written from where it is.
    fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.out.len() + bytes.len() <= OUT_LIMIT {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_out()?;
        let timeout = Timeout::start(self.idle);
        self.stream.write_all(bytes).map_err(|e| idle_error(&timeout, e))
    }

    /// Answers with an error status, then closes after lingering.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, status: StatusCode, client: Version) -> io::Result<End> {
        write_error(&mut self.out, status, client);
        self.close_lingering()
    }

    /// Writes pending output, then reads and discards what the client still sends (bounded
    /// in bytes and time), so that closing with unread input does not reset the connection
    /// before the client has read the answer.
    #[inline(never)]
    fn close_lingering(&mut self) -> io::Result<End> {
        self.flush_out()?;
        (self.half_close)(&mut self.stream);
        let _linger = Timeout::start(LINGER_TIME);
        let mut discarded = 0;
        while discarded < LINGER_LIMIT {
            self.pos = 0;
            self.filled = 0;
            match self.stream.read(&mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n as u64,
            }
        }
        Ok(End::Closed)
    }
}

/// Appends to the output, writing it out when it grows large.
struct Output<'c, S>(&'c mut Conn<S>);

impl<S: Read + Write> Write for Output<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.out.extend_from_slice(buf);
        if self.0.out.len() >= OUT_LIMIT {
            self.0.flush_out()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush_out()
    }
}

/// Copies a streamed body to `out`, writing out each piece as the reader gives it: such a
/// reader may wait between pieces (for an event, a timer, an upstream server), and the client
/// is meant to see each piece when it is made, not when the body ends.
#[inline(never)]
fn copy_streamed(reader: &mut dyn Read, out: &mut impl Write) -> io::Result<()> {
    let mut buf = [0; 8 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

impl<S: Read + Write> Read for Conn<S> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled && dst.len() >= self.buf.len() {
            self.flush_out()?;
            let timeout = Timeout::start(self.idle);
            return self.stream.read(dst).map_err(|e| idle_error(&timeout, e));
        }
        let available = self.fill_buf()?;
        let n = available.len().min(dst.len());
        dst[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<S: Read + Write> BufRead for Conn<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            self.pos = 0;
            self.filled = 0;
            self.read_socket()?;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.filled);
    }
}

/// Why reading a head ended the connection.
enum HeadEnd {
    /// Answered with the error's status.
    Refused(HeadError),
    /// Part of a head arrived, then the idle timeout expired (408).
    Idle,
    /// The connection failed or closed mid-head (`None`).
    Io(Option<io::Error>),
}

/// What became of a request body once the handler returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    /// Read to its end: the connection can carry the next request.
    Done,
    /// Not read to its end: answer, then close.
    Unread,
    /// Too long for the server's limit (413).
    TooLarge,
    /// Malformed chunked framing (400).
    Malformed,
    /// The connection failed or timed out: close without an answer.
    Broken,
}

/// The request body as the connection sees it: framing, the size limit, the pending
/// `100 Continue`, and how reading it went.
struct Incoming<'c, S> {
    reader: BodyReader<&'c mut Conn<S>>,
    read: u64,
    limit: Option<u64>,
    continue_pending: bool,
    failure: Option<BodyEnd>,
}

impl<S: Read + Write> Read for Incoming<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(failure) = self.failure {
            return Err(body_error(failure, self.limit));
        }
        if self.continue_pending {
            self.continue_pending = false;
            // The read that follows writes it out before it waits for the body.
            self.reader.get_mut().out.extend_from_slice(CONTINUE);
        }
        let want = match self.limit {
            // One byte past the limit tells a body that is too long from one that ends there.
            Some(limit) => {
                buf.len().min(usize::try_from(limit - self.read + 1).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        match self.reader.read(&mut buf[..want]) {
            Ok(n) => {
                self.read += n as u64;
                if self.limit.is_some_and(|limit| self.read > limit) {
                    self.failure = Some(BodyEnd::TooLarge);
                    return Err(body_error(BodyEnd::TooLarge, self.limit));
                }
                Ok(n)
            }
            Err(e) => {
                if !matches!(e.kind(), io::ErrorKind::WouldBlock) {
                    self.failure = Some(if e.kind() == io::ErrorKind::InvalidData {
                        BodyEnd::Malformed
                    } else {
                        BodyEnd::Broken
                    });
                }
                Err(e)
            }
        }
    }
}

fn body_error(failure: BodyEnd, limit: Option<u64>) -> io::Error {
    match failure {
        BodyEnd::TooLarge => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the request body is longer than the server's limit of {} bytes",
                limit.unwrap_or(0)
            ),
        ),
        BodyEnd::Malformed => io::Error::new(
            io::ErrorKind::InvalidData,
            "the request body's chunked framing is malformed",
        ),
        _ => io::Error::new(io::ErrorKind::BrokenPipe, "the request body could not be read"),
    }
}

impl<S: Read + Write> Incoming<'_, S> {
    /// Reads and discards what the handler left of the body (bounded), and says how the
    /// body ended.
    fn settle(&mut self) -> BodyEnd {
        if let Some(failure) = self.failure {
            return failure;
        }
        if self.reader.is_done() {
            return BodyEnd::Done;
        }
        if self.continue_pending {
            // The client waits for our word before it sends the body: it will not come.
            return BodyEnd::Unread;
        }
        self.drain()
    }

    /// Reads and discards the rest of the body, up to [`DRAIN_LIMIT`]. Out of line: see
    /// [`Conn::write_reader_body`].
    #[inline(never)]
    fn drain(&mut self) -> BodyEnd {
        match io::copy(&mut self.by_ref().take(DRAIN_LIMIT), &mut io::sink()) {
            Ok(_) if self.reader.is_done() => BodyEnd::Done,
            Ok(_) => BodyEnd::Unread,
            Err(_) => self.failure.unwrap_or(BodyEnd::Broken),
        }
    }
}

/// Serves HTTP/1.1 on `stream` until the connection ends.
pub(super) fn serve<S: Read + Write>(
    stream: S,
    config: &Config,
    handler: &Handler,
    slot: &Slot<'_>,
    stopping: &dyn Fn() -> bool,
    half_close: fn(&mut S),
) -> io::Result<End> {
    let mut conn = Conn {
        stream,
        buf: vec![0; READ_BUFFER],
        pos: 0,
        filled: 0,
        out: Vec::new(),
        idle: config.idle_timeout,
        head_deadline: None,
        half_close,
    };
    loop {
        let head = match conn.read_head(config, slot) {
            Ok(Some(head)) => head,
            Ok(None) => return conn.flush_out().map(|()| End::Closed),
            Err(HeadEnd::Refused(e)) => return conn.refuse(e.status(), Version::HTTP_11),
            Err(HeadEnd::Idle) => {
                return conn.refuse(StatusCode::REQUEST_TIMEOUT, Version::HTTP_11);
            }
            Err(HeadEnd::Io(None)) => return conn.flush_out().map(|()| End::Closed),
            Err(HeadEnd::Io(Some(e))) => return Err(e),
        };
        let Head { method, uri, version, headers, framing, keep_alive, expect_continue } = head;
        let limit = config.max_body_bytes;
        if let (Framing::Length(len), Some(limit)) = (framing, limit) {
            if len > limit {
                return conn.refuse(StatusCode::PAYLOAD_TOO_LARGE, version);
            }
        }
        let head_only = method == Method::HEAD;
        let (reader, has_body) = match framing {
            Framing::Length(len) => (BodyReader::with_length(&mut conn, len), len > 0),
            Framing::Chunked => (BodyReader::chunked(&mut conn), true),
        };
        let mut incoming = Incoming {
            reader,
            read: 0,
            limit,
            continue_pending: expect_continue && has_body,
            failure: None,
        };
        let mut request = Request::new(RequestBody { inner: &mut incoming });
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let answered = gevent_core::__private::catch_panic(|| handler(request));
        let body_end = match &answered {
            Ok(_) => incoming.settle(),
            Err(_) => BodyEnd::Unread,
        };
        let response = match answered {
            Ok(response) => response,
            Err(message) => {
                conn.refuse(StatusCode::INTERNAL_SERVER_ERROR, version)?;
                return Ok(End::Panicked(message));
            }
        };
        match body_end {
            BodyEnd::TooLarge => return conn.refuse(StatusCode::PAYLOAD_TOO_LARGE, version),
            BodyEnd::Malformed => return conn.refuse(StatusCode::BAD_REQUEST, version),
            BodyEnd::Broken => return Ok(End::Closed),
            BodyEnd::Done | BodyEnd::Unread => {}
        }
        let keep_alive = keep_alive && body_end == BodyEnd::Done && !stopping();
        let keep_alive = conn.write_response(response, head_only, keep_alive, version)?;
        if !keep_alive {
            return if body_end == BodyEnd::Unread {
                conn.close_lingering()
            } else {
                conn.flush_out().map(|()| End::Closed)
            };
        }
    }
}
