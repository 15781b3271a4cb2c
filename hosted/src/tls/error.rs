//! [`TlsError`]: what a TLS failure carries inside its `io::Error`.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use rustls::{AlertDescription, Error as RustlsError};

/// A TLS protocol failure, carried inside the [`io::Error`] that a handshake, a read or a write
/// returned; it holds the [`rustls::Error`] and is that error's `source()`.
///
/// Three kinds of failure can be told apart:
///
/// - a certificate refused, by us or by the peer: kind [`io::ErrorKind::InvalidData`], and
///   [`is_certificate_error`](Self::is_certificate_error) is true;
/// - any other TLS failure (no protocol version, cipher suite or ALPN protocol in common, a fatal
///   alert from the peer, bytes that are not TLS): kind [`io::ErrorKind::ConnectionAborted`];
/// - an I/O failure of the underlying stream: passed through unchanged, with no `TlsError`
///   inside (so an interrupted handshake still gives its [`Interrupted`](crate::Interrupted)).
///
/// ```
/// # use std::io;
/// use gevent::tls::TlsError;
///
/// fn describe(error: &io::Error) -> &'static str {
///     match TlsError::from_io(error) {
///         Some(tls) if tls.is_certificate_error() => "bad certificate",
///         Some(_) => "TLS failure",
///         None => "I/O failure",
///     }
/// }
/// # assert_eq!(describe(&io::ErrorKind::BrokenPipe.into()), "I/O failure");
/// ```
#[derive(Debug)]
pub struct TlsError {
    error: RustlsError,
}

impl TlsError {
    /// The rustls error.
    pub fn rustls_error(&self) -> &RustlsError {
        &self.error
    }

    /// Whether a certificate was refused: the peer's by our verifier (untrusted, expired, for
    /// another name, missing when required), or ours by the peer (it sent a certificate alert).
    pub fn is_certificate_error(&self) -> bool {
        match &self.error {
            RustlsError::InvalidCertificate(_) | RustlsError::NoCertificatesPresented => true,
            RustlsError::AlertReceived(alert) => matches!(
                alert,
                AlertDescription::BadCertificate
                    | AlertDescription::UnsupportedCertificate
                    | AlertDescription::CertificateRevoked
                    | AlertDescription::CertificateExpired
                    | AlertDescription::CertificateUnknown
                    | AlertDescription::UnknownCA
                    | AlertDescription::CertificateRequired
                    | AlertDescription::BadCertificateStatusResponse
            ),
            _ => false,
        }
    }

    /// The TLS failure inside `error`, if it is one.
    pub fn from_io(error: &io::Error) -> Option<&TlsError> {
        error.get_ref()?.downcast_ref::<TlsError>()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS: {}", self.error)
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

impl From<TlsError> for io::Error {
    fn from(error: TlsError) -> Self {
        let kind = if error.is_certificate_error() {
            io::ErrorKind::InvalidData
        } else {
            io::ErrorKind::ConnectionAborted
        };
        io::Error::new(kind, error)
    }
}

/// The `io::Error` for a rustls failure.
pub(super) fn tls_error(error: RustlsError) -> io::Error {
    TlsError { error }.into()
}

/// The `io::Error` for a configuration rustls refused.
pub(super) fn config_error(error: RustlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, TlsError { error })
}
