//! The HTTP/1.1 wire format shared by the server and the client: how a message body is framed
//! (RFC 9112 §6) and the chunked transfer coding (§7.1). Heads are parsed by `httparse` in the
//! server and client modules; this module only frames bodies.

mod chunked;
mod framing;

pub(crate) use chunked::{ChunkedDecoder, ChunkedEncoder};
pub(crate) use framing::BodyReader;

/// Longest chunk-size line (size, extensions and CRLF) a decoder accepts; a longer one is a
/// malformed or hostile message.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of trailer fields a decoder reads (and discards) after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

/// An `InvalidData` error about a malformed message body.
pub(crate) fn invalid(what: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// `bytes` without leading and trailing spaces and tabs (HTTP's optional whitespace).
pub(crate) fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Whether a `Connection` header value says `close`, and whether it says `keep-alive`.
pub(crate) fn connection_tokens(value: &[u8]) -> (bool, bool) {
    let (mut close, mut keep_alive) = (false, false);
    for token in value.split(|&b| b == b',') {
        let token = trim(token);
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    (close, keep_alive)
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces), at most `u64::MAX`.
pub(crate) fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// `n` in decimal, formatted into `out` without allocating; returns the used part.
pub(crate) fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[i..];
        }
    }
}

#[cfg(test)]
mod tests;
