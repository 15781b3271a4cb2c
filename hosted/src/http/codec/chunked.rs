//! The chunked transfer coding (RFC 9112 §7.1): a decoder over a buffered reader and an encoder
//! over a writer.

use std::io::{self, BufRead, Read, Write};

use super::{MAX_CHUNK_LINE, MAX_TRAILERS, invalid, trim};

/// Where a [`ChunkedDecoder`] is in the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last (zero-size) chunk, reading trailer fields; this many bytes read so far.
    Trailers(usize),
    /// The body has ended; reads return 0.
    Done,
}

/// Reads the data of a chunked body, leaving the reader just past it (so that the next
/// pipelined message can be read from the same buffer).
///
/// Chunk extensions and trailer fields are read and ignored. A malformed size line, a missing
/// CRLF, an oversized line or trailer section, or an early end of stream is an `InvalidData`
/// (`UnexpectedEof` for the early end) error, after which the decoder stays failed.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder<R> {
    inner: R,
    state: DecodeState,
    failed: bool,
    /// The chunk-size or trailer line being read: kept, so that a body's chunks do not
    /// allocate one each.
    line: Vec<u8>,
}

impl<R: BufRead> ChunkedDecoder<R> {
    /// Decodes the chunked body that `inner` is positioned at.
    pub(crate) fn new(inner: R) -> Self {
        ChunkedDecoder { inner, state: DecodeState::Size, failed: false, line: Vec::new() }
    }

    /// Whether the whole body, trailers included, has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }

    /// The reader under the decoder.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives back the reader.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Reads one CRLF- (or bare LF-) terminated line into `self.line`, at most `limit` bytes in
    /// all, without the terminator. An early end of stream is `UnexpectedEof`.
    fn read_line(&mut self, limit: usize) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        loop {
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the chunked body ended early",
                ));
            }
            let (taken, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if line.len() + taken > limit {
                return Err(invalid("a chunk-size or trailer line is too long"));
            }
            line.extend_from_slice(&available[..taken]);
            self.inner.consume(taken);
            if found {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(());
            }
        }
    }

    /// Reads a chunk-size line: hex digits, then optional extensions after `;`.
    fn read_size(&mut self) -> io::Result<u64> {
        self.read_line(MAX_CHUNK_LINE)?;
        let digits = self.line.split(|&b| b == b';').next().unwrap_or(&[]);
        let digits = trim(digits);
        if digits.is_empty() {
            return Err(invalid("a chunk-size line has no size"));
        }
        let mut size: u64 = 0;
        for &b in digits {
            let digit = (b as char)
                .to_digit(16)
                .ok_or_else(|| invalid("a chunk size is not hexadecimal"))?;
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or_else(|| invalid("a chunk size is too large"))?;
        }
        Ok(size)
    }

    /// Runs the state machine until data is available or the body ends.
    fn advance(&mut self) -> io::Result<()> {
        loop {
            match self.state {
                DecodeState::Size => {
                    let size = self.read_size()?;
                    self.state =
                        if size == 0 { DecodeState::Trailers(0) } else { DecodeState::Data(size) };
                }
                DecodeState::Data(_) | DecodeState::Done => return Ok(()),
                DecodeState::DataEnd => {
                    self.read_line(2)?;
                    if !self.line.is_empty() {
                        return Err(invalid("a chunk's data is longer than its size"));
                    }
                    self.state = DecodeState::Size;
                }
                DecodeState::Trailers(seen) => {
                    // `seen` counts a CRLF for each line, one byte more than a bare LF: it can
                    // pass the limit by one.
                    self.read_line(MAX_TRAILERS.saturating_sub(seen))?;
                    self.state = if self.line.is_empty() {
                        DecodeState::Done
                    } else {
                        DecodeState::Trailers(seen + self.line.len() + 2)
                    };
                }
            }
        }
    }
}

impl<R: BufRead> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(invalid("the chunked body is malformed"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let result = self.advance().and_then(|()| {
            let DecodeState::Data(left) = self.state else {
                return Ok(0);
            };
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the chunked body ended inside a chunk",
                ));
            }
            let left = left - n as u64;
            self.state = if left == 0 { DecodeState::DataEnd } else { DecodeState::Data(left) };
            Ok(n)
        });
        if let Err(e) = &result {
            // A timeout or kill can be retried: the state machine has not moved past bytes it
            // did not consume. Anything else leaves the stream at an unknown place.
            if !matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
                self.failed = true;
            }
        }
        result
    }
}

/// Writes data as chunks of a chunked body; [`finish`](Self::finish) writes the last chunk.
///
/// Each `write` becomes one chunk (an empty write writes nothing, since a zero-size chunk would
/// end the body). Wrap the inner writer in a `BufWriter` to coalesce the framing with the data.
#[derive(Debug)]
pub(crate) struct ChunkedEncoder<W> {
    inner: W,
}

impl<W: Write> ChunkedEncoder<W> {
    /// Encodes onto `inner`, which must be positioned after the message's head.
    pub(crate) fn new(inner: W) -> Self {
        ChunkedEncoder { inner }
    }

    /// Writes the last chunk and an empty trailer section, and gives back the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(b"0\r\n\r\n")?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkedEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut size = [0u8; 18];
        let head = hex_size_line(buf.len(), &mut size);
        self.inner.write_all(head)?;
        self.inner.write_all(buf)?;
        self.inner.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Formats `len` as a chunk-size line (`"1a\r\n"`) into `out`, returning the used part.
fn hex_size_line(len: usize, out: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let count = digits.len() - i;
    out[..count].copy_from_slice(&digits[i..]);
    out[count..count + 2].copy_from_slice(b"\r\n");
    &out[..count + 2]
}
