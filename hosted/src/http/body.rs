//! [`Body`]: the body of a message we send, known in full or streamed from a reader.

use std::fmt;
use std::io::Read;

/// The body of an outgoing message (a server's response or a client's request).
///
/// A body held in memory is sent with `Content-Length`; a body read from a reader is sent with
/// `Content-Length` when its length is given ([`Body::sized_reader`]) and with
/// `Transfer-Encoding: chunked` otherwise ([`Body::from_reader`]).
///
/// ```
/// use gevent::http::Body;
///
/// assert_eq!(Body::from("Hello, World!").len(), Some(13));
/// assert_eq!(Body::empty().len(), Some(0));
/// assert_eq!(Body::from_reader(std::io::empty()).len(), None);
/// ```
pub struct Body {
    kind: BodyKind,
}

pub(crate) enum BodyKind {
    /// Bytes in memory (possibly empty).
    Bytes(Vec<u8>),
    /// Static bytes, sent without copying them into a `Vec`.
    Static(&'static [u8]),
    /// A reader, with its length when known.
    Reader { reader: Box<dyn Read>, len: Option<u64> },
}

impl Body {
    /// An empty body (`Content-Length: 0`).
    pub fn empty() -> Body {
        Body { kind: BodyKind::Static(b"") }
    }

    /// A body streamed from `reader` until it returns 0, sent chunked. A server writes out
    /// each piece the reader gives as soon as it has it, so a reader may wait between pieces
    /// (a stream of events, a proxied download) and the client sees each piece when it is made.
    pub fn from_reader(reader: impl Read + 'static) -> Body {
        Body { kind: BodyKind::Reader { reader: Box::new(reader), len: None } }
    }

    /// A body of exactly `len` bytes read from `reader`, sent with `Content-Length: len`.
    ///
    /// If the reader ends before `len` bytes, the message cannot be completed and the
    /// connection is closed; bytes beyond `len` are not read.
    pub fn sized_reader(reader: impl Read + 'static, len: u64) -> Body {
        Body { kind: BodyKind::Reader { reader: Box::new(reader), len: Some(len) } }
    }

    /// The body's length, if known before sending it.
    pub fn len(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Bytes(bytes) => Some(bytes.len() as u64),
            BodyKind::Static(bytes) => Some(bytes.len() as u64),
            BodyKind::Reader { len, .. } => *len,
        }
    }

    /// Whether the body is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// The bytes of a body held in memory, or `None` for a reader.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            BodyKind::Bytes(bytes) => Some(bytes),
            BodyKind::Static(bytes) => Some(bytes),
            BodyKind::Reader { .. } => None,
        }
    }

    pub(crate) fn into_kind(self) -> BodyKind {
        self.kind
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Bytes(bytes) => f.debug_tuple("Body").field(&bytes.len()).finish(),
            BodyKind::Static(bytes) => f.debug_tuple("Body").field(&bytes.len()).finish(),
            BodyKind::Reader { len, .. } => {
                f.debug_struct("Body").field("reader_len", len).finish()
            }
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body { kind: BodyKind::Bytes(bytes) }
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body::from(text.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body { kind: BodyKind::Static(text.as_bytes()) }
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body { kind: BodyKind::Static(bytes) }
    }
}

impl From<()> for Body {
    fn from((): ()) -> Body {
        Body::empty()
    }
}
