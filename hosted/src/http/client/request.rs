//! Writing a request: its head, then its body framed by `Content-Length` or chunked.

use std::io::{self, BufReader, BufWriter, IoSlice, Read, Write};

use ::http::HeaderValue;
use ::http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, USER_AGENT};
use ::http::request::Parts;

use super::expects_no_body;
use super::pool::Transport;
use super::target::Origin;
use crate::http::Body;
use crate::http::body::BodyKind;
use crate::http::codec::{ChunkedEncoder, connection_tokens, decimal};

/// How much of a streamed body is gathered before it is written (as one chunk, if chunked).
const STREAM_BUFFER: usize = 16 * 1024;

/// A request head, serialized once so that it can be sent again on a fresh connection.
pub(super) struct RequestHead {
    bytes: Vec<u8>,
    /// The request says `Connection: close`.
    closes: bool,
}

impl RequestHead {
    /// The head of the request `parts` to `origin`, framing a body of `body_len` bytes
    /// (`None`: chunked).
    pub(super) fn new(
        parts: &Parts,
        origin: &Origin,
        user_agent: &HeaderValue,
        body_len: Option<u64>,
    ) -> io::Result<RequestHead> {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(parts.method.as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(target.as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        let mut field = |name: &[u8], value: &[u8]| {
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        };
        if !parts.headers.contains_key(HOST) {
            field(b"Host", origin.host_header().as_bytes());
        }
        if !parts.headers.contains_key(USER_AGENT) {
            field(b"User-Agent", user_agent.as_bytes());
        }
        for (name, value) in &parts.headers {
            // The framing is the body's, written below.
            if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
                field(name.as_str().as_bytes(), value.as_bytes());
            }
        }
        match body_len {
            Some(0) if expects_no_body(&parts.method) => {}
            Some(len) => field(b"Content-Length", decimal(len, &mut [0; 20])),
            None => field(b"Transfer-Encoding", b"chunked"),
        }
        bytes.extend_from_slice(b"\r\n");
        let closes =
            parts.headers.get_all(CONNECTION).iter().any(|v| connection_tokens(v.as_bytes()).0);
        Ok(RequestHead { bytes, closes })
    }

    /// Whether the request asks the server to close the connection after its response.
    pub(super) fn closes(&self) -> bool {
        self.closes
    }

    /// Writes the head and `body` on `io`.
    pub(super) fn send(
        &self,
        io: &mut BufReader<Transport>,
        body: &mut Outgoing,
    ) -> io::Result<()> {
        let mut out = Counted { inner: io.get_mut(), written: 0 };
        let result = self.write(&mut out, body);
        body.started |= out.written > self.bytes.len() as u64;
        result
    }

    fn write(&self, out: &mut Counted<'_>, body: &mut Outgoing) -> io::Result<()> {
        let (reader, len) = match &mut body.kind {
            BodyKind::Bytes(bytes) => return write_both(out, &self.bytes, bytes),
            BodyKind::Static(bytes) => return write_both(out, &self.bytes, bytes),
            BodyKind::Reader { reader, len } => (reader, *len),
        };
        let mut buffered = BufWriter::with_capacity(STREAM_BUFFER, out);
        let result = (|| {
            buffered.write_all(&self.bytes)?;
            body.touched = true;
            match len {
                Some(len) => {
                    let copied = io::copy(&mut reader.take(len), &mut buffered)?;
                    if copied < len {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "the request body's reader ended after {copied} of its {len} bytes"
                            ),
                        ));
                    }
                }
                None => {
                    let mut chunks = ChunkedEncoder::new(&mut buffered);
                    io::copy(reader, &mut chunks)?;
                    chunks.finish()?;
                }
            }
            buffered.flush()
        })();
        // Not flushed again on drop: after a failure (a timeout, a dead peer) that would block
        // or fail once more.
        let _unsent = buffered.into_parts();
        result
    }
}

/// A request body being sent, and whether it could be sent again.
pub(super) struct Outgoing {
    kind: BodyKind,
    /// Its reader has been read from: it cannot be sent again.
    touched: bool,
    /// Some of it was written to a connection.
    started: bool,
}

impl Outgoing {
    pub(super) fn new(body: Body) -> Outgoing {
        Outgoing { kind: body.into_kind(), touched: false, started: false }
    }

    /// Whether the body can be sent again in full.
    pub(super) fn replayable(&self) -> bool {
        !self.touched
    }

    /// Whether any of it was written.
    pub(super) fn started(&self) -> bool {
        self.started
    }

    /// Starts over, for a new connection.
    pub(super) fn rewind(&mut self) {
        self.started = false;
    }
}

/// A writer that counts the bytes it has written.
struct Counted<'a> {
    inner: &'a mut Transport,
    written: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `first` then `second`, together in one system call when the connection takes them.
fn write_both(out: &mut Counted<'_>, mut first: &[u8], mut second: &[u8]) -> io::Result<()> {
    while !first.is_empty() || !second.is_empty() {
        let n = if first.is_empty() {
            out.write(second)?
        } else {
            out.write_vectored(&[IoSlice::new(first), IoSlice::new(second)])?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_first = n.min(first.len());
        first = &first[from_first..];
        second = &second[n - from_first..];
    }
    out.flush()
}
