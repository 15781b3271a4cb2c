//! How long a message body is (RFC 9112 §6.3), as a reader that stops at its end.

use std::io::{self, BufRead, Read};

use super::ChunkedDecoder;

/// Reads one message body from a buffered connection and stops at its end, leaving the
/// connection at the next message.
#[derive(Debug)]
pub(crate) enum BodyReader<R> {
    /// `Content-Length` framing, with this many bytes left.
    Length {
        /// The connection.
        inner: R,
        /// Bytes of the body not yet read.
        remaining: u64,
    },
    /// `Transfer-Encoding: chunked` framing.
    Chunked(ChunkedDecoder<R>),
    /// A response body that runs until the server closes the connection.
    UntilEof(R),
}

impl<R: BufRead> BodyReader<R> {
    /// A body of `len` bytes.
    pub(crate) fn with_length(inner: R, len: u64) -> Self {
        BodyReader::Length { inner, remaining: len }
    }

    /// A chunked body.
    pub(crate) fn chunked(inner: R) -> Self {
        BodyReader::Chunked(ChunkedDecoder::new(inner))
    }

    /// Whether the body has been read to its end (an `UntilEof` body never knows in advance).
    pub(crate) fn is_done(&self) -> bool {
        match self {
            BodyReader::Length { remaining, .. } => *remaining == 0,
            BodyReader::Chunked(decoder) => decoder.is_done(),
            BodyReader::UntilEof(_) => false,
        }
    }

    /// The connection under the body.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        match self {
            BodyReader::Length { inner, .. } | BodyReader::UntilEof(inner) => inner,
            BodyReader::Chunked(decoder) => decoder.get_mut(),
        }
    }

    /// Gives back the connection.
    pub(crate) fn into_inner(self) -> R {
        match self {
            BodyReader::Length { inner, .. } | BodyReader::UntilEof(inner) => inner,
            BodyReader::Chunked(decoder) => decoder.into_inner(),
        }
    }
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BodyReader::Length { inner, remaining } => {
                if *remaining == 0 || buf.is_empty() {
                    return Ok(0);
                }
                let want = usize::try_from(*remaining).unwrap_or(usize::MAX).min(buf.len());
                let n = inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the end of the body (Content-Length)",
                    ));
                }
                *remaining -= n as u64;
                Ok(n)
            }
            BodyReader::Chunked(decoder) => decoder.read(buf),
            BodyReader::UntilEof(inner) => inner.read(buf),
        }
    }
}
