//! TLS over any byte stream, with rustls (gevent's `gevent.ssl`).
//!
//! A [`TlsConnector`] (client) or [`TlsAcceptor`] (server) runs the handshake over a stream
//! with `std::io::{Read, Write}` and gives a [`TlsStream`]. Over our
//! [`TcpStream`](crate::net::TcpStream) everything is cooperative: the handshake, reads and
//! writes park only the calling greenlet, and a [`Timeout`](crate::Timeout) or a kill
//! interrupts them with an error that carries the [`Interrupted`](crate::Interrupted).
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use gevent::net::{TcpListener, TcpStream};
//! use gevent::server::StreamServer;
//! use gevent::tls::{TlsAcceptor, TlsConnector};
//!
//! # fn main() -> std::io::Result<()> {
//! let acceptor = TlsAcceptor::from_pem_files("chain.pem", "key.pem")?;
//! let server = StreamServer::new(TcpListener::bind("127.0.0.1:8443")?, move |stream, _peer| {
//!     let mut tls = acceptor.accept(stream)?;
//!     let mut buf = [0; 1024];
//!     let n = tls.read(&mut buf)?;
//!     tls.write_all(&buf[..n])?;
//!     tls.shutdown()
//! });
//! server.start()?;
//!
//! // The server's certificate is self-signed: the client trusts it alone.
//! let connector = TlsConnector::with_roots_from_pem_file("chain.pem")?;
//! let mut tls = connector.connect("localhost", TcpStream::connect("127.0.0.1:8443")?)?;
//! tls.write_all(b"hello")?;
//! # Ok(())
//! # }
//! ```
//!
//! Errors: see [`TlsError`] for how a refused certificate, another TLS failure and an I/O
//! failure are told apart.
//!
//! The configurations this module builds use rustls' `ring` provider (a configuration of one's
//! own, converted with `From`, may use any): it builds with just the C compiler that linking needs anyway, where `aws-lc-rs`
//! would also need cmake. This module is behind the `tls` feature (on by default); the
//! `tls-native-roots` feature adds `TlsConnector::with_native_roots` (the system's root store).

mod acceptor;
mod connector;
mod error;
mod stream;

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use acceptor::TlsAcceptor;
pub use connector::TlsConnector;
pub use error::TlsError;
/// The rustls this module is built on, for configurations of one's own.
pub use rustls;
pub use stream::TlsStream;

/// `ring`'s provider, for the configurations this module builds. It is not the process's
/// default provider (which another crate may have chosen): with `ring` known, TLS 1.2 and 1.3
/// are known to be supported, so building a configuration cannot fail.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// ALPN protocol names as rustls' configurations hold them.
fn alpn_list(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// Every certificate in the PEM file at `path`, in order (blocking file reads).
///
/// # Errors
///
/// The file's own error, with its path; `InvalidData` if it is not PEM or holds no
/// certificate.
pub fn load_certificates(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, "certificates", e))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "certificates", pem::Error::NoItemsFound));
    }
    Ok(certificates)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path` (blocking file
/// reads).
///
/// # Errors
///
/// The file's own error, with its path; `InvalidData` if it is not PEM or holds no key.
pub fn load_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "a private key", e))
}

fn pem_error(path: &Path, what: &str, error: pem::Error) -> io::Error {
    match error {
        pem::Error::Io(e) => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        pem::Error::NoItemsFound => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no PEM section with {what}", path.display()),
        ),
        e => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a PEM file with {what}: {e}", path.display()),
        ),
    }
}
