//! [`TlsConnector`]: the client side.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::error::tls_error;
use super::{TlsStream, alpn_list, load_certificates, provider};

/// Makes client TLS connections (gevent's `ssl.SSLContext.wrap_socket` on a client socket).
///
/// Cloning is cheap: clones share the configuration.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use gevent::net::TcpStream;
/// use gevent::tls::TlsConnector;
///
/// # fn main() -> std::io::Result<()> {
/// let connector = TlsConnector::new().with_alpn(&[b"http/1.1"]);
/// let mut tls = connector.connect("example.com", TcpStream::connect("example.com:443")?)?;
/// tls.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")?;
/// let mut page = Vec::new();
/// tls.read_to_end(&mut page)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    /// A connector that trusts the Mozilla roots of `webpki-roots` (compiled in, so the system's
    /// store plays no part), with TLS 1.2 and 1.3, no ALPN and no client certificate.
    pub fn new() -> TlsConnector {
        TlsConnector::with_roots(webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect())
    }

    /// A connector that trusts exactly `roots`, with TLS 1.2 and 1.3, no ALPN and no client
    /// certificate.
    pub fn with_roots(roots: RootCertStore) -> TlsConnector {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector { config: Arc::new(config) }
    }

    /// A connector that trusts exactly the certificates in the PEM file at `path` (a private
    /// CA's, or a self-signed server's own), otherwise like [`new`](Self::new). The file is read
    /// with blocking calls: this is meant for start-up.
    ///
    /// # Errors
    ///
    /// The file's own error, with its path; `InvalidData` if it holds no certificate or one that
    /// cannot be a root.
    pub fn with_roots_from_pem_file(path: impl AsRef<Path>) -> io::Result<TlsConnector> {
        let path = path.as_ref();
        let mut roots = RootCertStore::empty();
        for certificate in load_certificates(path)? {
            roots.add(certificate).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: a certificate that cannot be a root: {e}", path.display()),
                )
            })?;
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// A connector that trusts the roots of the system's store (read from the files OpenSSL
    /// would use on Linux and the BSDs, `SSL_CERT_FILE` and `SSL_CERT_DIR` included; the keychain
    /// on macOS), otherwise like [`new`](Self::new). Reading the store blocks the thread: this is
    /// meant for start-up. Needs the `tls-native-roots` feature.
    ///
    /// # Errors
    ///
    /// `NotFound` if the store yields no usable root, with what went wrong reading it.
    #[cfg(feature = "tls-native-roots")]
    pub fn with_native_roots() -> io::Result<TlsConnector> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let why: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no usable root certificate in the system's store ({})", why.join("; ")),
            ));
        }
        Ok(TlsConnector::with_roots(roots))
    }

    /// This connector offering the ALPN `protocols`, most preferred first.
    pub fn with_alpn(mut self, protocols: &[&[u8]]) -> TlsConnector {
        Arc::make_mut(&mut self.config).alpn_protocols = alpn_list(protocols);
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// Runs a TLS handshake as a client over `stream`, checking that the server's certificate
    /// is valid for `server_name` (a DNS name or an IP address).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `server_name` is neither; a [`TlsError`](super::TlsError) inside the
    /// error if the handshake fails (a refused certificate has kind `InvalidData`); the stream's
    /// own error if it fails, such as an [`Interrupted`](crate::Interrupted) handshake.
    pub fn connect<S: Read + Write>(
        &self,
        server_name: &str,
        stream: S,
    ) -> io::Result<TlsStream<S>> {
        let name = ServerName::try_from(server_name).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{server_name:?} is not a DNS name or IP address: {e}"),
            )
        })?;
        let conn =
            ClientConnection::new(self.config.clone(), name.to_owned()).map_err(tls_error)?;
        TlsStream::handshake(conn.into(), stream)
    }
}

impl Default for TlsConnector {
    /// [`TlsConnector::new`].
    fn default() -> Self {
        TlsConnector::new()
    }
}

impl From<Arc<ClientConfig>> for TlsConnector {
    fn from(config: Arc<ClientConfig>) -> Self {
        TlsConnector { config }
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").field("config", &self.config).finish()
    }
}
