//! [`TlsAcceptor`]: the server side.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use super::error::{config_error, tls_error};
use super::{TlsStream, alpn_list, load_certificates, load_private_key, provider};

/// Accepts TLS connections (gevent's `ssl.SSLContext.wrap_socket(server_side=True)`).
///
/// Cloning is cheap: clones share the configuration.
///
/// Client certificates: build the [`ServerConfig`] with a client verifier and convert it.
///
/// ```no_run
/// use std::sync::Arc;
/// use gevent::tls::rustls::{RootCertStore, ServerConfig, server::WebPkiClientVerifier};
/// use gevent::tls::{TlsAcceptor, load_certificates, load_private_key};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let provider = Arc::new(gevent::tls::rustls::crypto::ring::default_provider());
/// let mut client_roots = RootCertStore::empty();
/// for ca in load_certificates("clients-ca.pem")? {
///     client_roots.add(ca)?;
/// }
/// let verifier =
///     WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
///         .build()?;
/// let config = ServerConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()?
///     .with_client_cert_verifier(verifier)
///     .with_single_cert(load_certificates("chain.pem")?, load_private_key("key.pem")?)?;
/// let acceptor = TlsAcceptor::from(Arc::new(config));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    /// An acceptor presenting the certificate chain in the PEM file `chain` (the server's own
    /// certificate first) with the private key in the PEM file `key` (PKCS#8, PKCS#1 or SEC1),
    /// with TLS 1.2 and 1.3, no ALPN and no client certificates.
    ///
    /// The files are read with blocking calls: this is meant for start-up.
    ///
    /// # Errors
    ///
    /// A file's own error, with its path; `InvalidData` if a file holds no certificate or
    /// key; `InvalidInput` (with the [`TlsError`](super::TlsError)) if rustls refuses the key or
    /// it does not match the certificate.
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> io::Result<TlsAcceptor> {
        let chain = load_certificates(chain)?;
        let key = load_private_key(key)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(config_error)?;
        Ok(TlsAcceptor { config: Arc::new(config) })
    }

    /// This acceptor agreeing on one of the ALPN `protocols` (ours in order of preference) when
    /// the client offers any; a client offering only others is refused.
    pub fn with_alpn(mut self, protocols: &[&[u8]]) -> TlsAcceptor {
        Arc::make_mut(&mut self.config).alpn_protocols = alpn_list(protocols);
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs a TLS handshake as a server over `stream`.
    ///
    /// # Errors
    ///
    /// A [`TlsError`](super::TlsError) inside the error if the handshake fails (a refused
    /// client certificate has kind `InvalidData`); the stream's own error if it fails, such as
    /// an [`Interrupted`](crate::Interrupted) handshake.
    pub fn accept<S: Read + Write>(&self, stream: S) -> io::Result<TlsStream<S>> {
        let conn = ServerConnection::new(self.config.clone()).map_err(tls_error)?;
        TlsStream::handshake(conn.into(), stream)
    }
}

impl From<Arc<ServerConfig>> for TlsAcceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor { config }
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").field("config", &self.config).finish()
    }
}
