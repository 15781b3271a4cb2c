//! TLS against the real `openssl s_server` and `s_client` (TLS 1.2 and 1.3, ALPN), and refusals
//! (a certificate for another name, from an unknown CA, expired; a missing client certificate;
//! no ALPN protocol in common), timeouts and the end of a connection, between our own client and
//! server. The certificates are made by `openssl` in a fresh directory for each test.
#![cfg(feature = "tls")]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};
use gevent::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use gevent::tls::rustls::server::WebPkiClientVerifier;
use gevent::tls::rustls::{
    self, AlertDescription, CertificateError, ClientConfig, ProtocolVersion, RootCertStore,
    ServerConfig,
};
use gevent::tls::{
    TlsAcceptor, TlsConnector, TlsError, TlsStream, load_certificates, load_private_key,
};
use gevent::{Interrupted, Timeout, spawn};

mod common;
use common::{TempDir, listener, openssl};

/// How long any wait may take before the test fails: a hang must fail, not stall CI.
const BACKSTOP: Duration = Duration::from_secs(30);

/// A directory of certificates made with `openssl`, removed on drop: a CA; `server` (for
/// `localhost` and 127.0.0.1), `expired` (for `localhost`, expired in 2020) and `client` (for
/// client authentication), all signed by the CA; and `stranger`, a server certificate for
/// `localhost` from another CA.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new(test: &str) -> Pki {
        let pki = Pki { dir: TempDir::new(&format!("tls-{test}")) };
        std::fs::write(pki.path("index.txt"), "").unwrap();
        std::fs::write(pki.path("serial"), "01\n").unwrap();
        std::fs::write(pki.path("ca.cnf"), CA_CONFIG).unwrap();
        pki.make_ca("ca");
        pki.make_ca("other-ca");
        pki.issue("ca", "server", "server", &["-days", "30"]);
        pki.issue(
            "ca",
            "expired",
            "server",
            &["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"],
        );
        pki.issue("ca", "client", "client", &["-days", "30"]);
        pki.issue("other-ca", "stranger", "server", &["-days", "30"]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn openssl(&self, args: &[&str]) {
        openssl(self.dir.path(), args);
    }

    fn make_ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/CN=gevent test {name}"),
            "-config",
            "ca.cnf",
            "-extensions",
            "v3_ca",
        ]);
    }

    /// `name.pem` and `name.key`, signed by `ca` with the extensions section `extensions`.
    fn issue(&self, ca: &str, name: &str, extensions: &str, validity: &[&str]) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
            "-config",
            "ca.cnf",
        ]);
        let mut args = vec![
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-notext",
            "-cert",
            &format!("{ca}.pem"),
            "-keyfile",
            &format!("{ca}.key"),
            "-in",
            &csr,
            "-out",
            &format!("{name}.pem"),
            "-extensions",
            extensions,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(validity.iter().map(|s| s.to_string()));
        self.openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn roots(&self, ca: &str) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in load_certificates(self.path(&format!("{ca}.pem"))).unwrap() {
            roots.add(cert).unwrap();
        }
        roots
    }

    /// A client trusting our CA.
    fn connector(&self) -> TlsConnector {
        TlsConnector::with_roots_from_pem_file(self.path("ca.pem")).unwrap()
    }

    fn acceptor(&self, name: &str) -> TlsAcceptor {
        TlsAcceptor::from_pem_files(
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
        .unwrap()
    }

    fn chain_and_key(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            load_certificates(self.path(&format!("{name}.pem"))).unwrap(),
            load_private_key(self.path(&format!("{name}.key"))).unwrap(),
        )
    }

    /// A server requiring a client certificate from our CA.
    fn acceptor_requiring_client_certificates(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots("ca")),
            provider.clone(),
        )
        .build()
        .unwrap();
        let (chain, key) = self.chain_and_key("server");
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

const CA_CONFIG: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
default_ca = ca_section
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost, IP:127.0.0.1
extendedKeyUsage = serverAuth
[client]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost
extendedKeyUsage = clientAuth
[ca_section]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
unique_subject = no
policy = policy
[policy]
commonName = supplied
";

/// An `openssl` process whose stdout lines arrive on a channel; killed on drop.
struct OpenSsl {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl OpenSsl {
    fn start(dir: &Path, args: &[&str]) -> OpenSsl {
        let mut child = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the openssl binary runs (apt-get install openssl)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        OpenSsl { child, lines, stdin }
    }

    /// The first line of output that satisfies `want`, every line before it skipped.
    fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(BACKSTOP) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("openssl printed no line we waited for: {e}"),
            }
        }
    }

    /// All the output until the process closed it.
    fn rest(&self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(BACKSTOP) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(e) => panic!("openssl did not end: {e}; it printed {lines:?}"),
            }
        }
    }

    /// `openssl s_server` with `args`, once it accepts connections, and its address.
    fn s_server(pki: &Pki, args: &[&str]) -> (OpenSsl, SocketAddr) {
        let mut all = vec!["s_server", "-4", "-accept", "0", "-naccept", "1", "-rev"];
        all.extend_from_slice(&["-cert", "server.pem", "-key", "server.key"]);
        all.extend_from_slice(args);
        let server = OpenSsl::start(pki.dir.path(), &all);
        // "ACCEPT 0.0.0.0:PORT"
        let line = server.wait_for(|line| line.starts_with("ACCEPT"));
        let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
        (server, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

impl Drop for OpenSsl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails the calling greenlet's blocking calls after [`BACKSTOP`] instead of letting it hang.
fn backstop() -> Timeout {
    Timeout::start(BACKSTOP)
}

/// Our client against `openssl s_server -rev` (which answers each line reversed).
fn client_against_s_server(version_flag: &str, version: ProtocolVersion) {
    let pki = Pki::new(&format!("client{version_flag}"));
    let (server, addr) = OpenSsl::s_server(&pki, &[version_flag, "-alpn", "h2,http/1.1"]);
    let _backstop = backstop();
    let connector = pki.connector().with_alpn(&[b"http/1.1", b"spdy"]);
    let mut tls = connector.connect("localhost", TcpStream::connect(addr).unwrap()).unwrap();
    assert_eq!(tls.protocol_version(), Some(version));
    assert_eq!(tls.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(tls.peer_certificates().is_some_and(|chain| !chain.is_empty()));

    tls.write_all(b"hello gevent\n").unwrap();
    let mut answer = String::new();
    BufReader::new(&mut tls).read_line(&mut answer).unwrap();
    assert_eq!(answer, "tneveg olleh\n");
    tls.shutdown().unwrap();
    drop(tls);

    let rest = server.rest();
    assert!(rest.iter().any(|l| l == "ALPN protocols selected: http/1.1"), "{rest:#?}");
}

#[test]
fn our_client_talks_to_openssl_s_server_over_tls12_with_alpn() {
    client_against_s_server("-tls1_2", ProtocolVersion::TLSv1_2);
}

#[test]
fn our_client_talks_to_openssl_s_server_over_tls13_with_alpn() {
    client_against_s_server("-tls1_3", ProtocolVersion::TLSv1_3);
}

/// `openssl s_client` (verifying our certificate) against our server.
fn s_client_against_our_server(version_flag: &str, version: ProtocolVersion, printed: &str) {
    let pki = Pki::new(&format!("server{version_flag}"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let acceptor = pki.acceptor("server").with_alpn(&[b"h2", b"http/1.1"]);
    let server = spawn(move || {
        let _backstop = backstop();
        let (stream, _) = listener.accept().unwrap();
        let mut tls = acceptor.accept(stream).unwrap();
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).unwrap();
        tls.write_all(format!("pong: {line}").as_bytes()).unwrap();
        tls.shutdown().unwrap();
        (tls.protocol_version(), tls.alpn_protocol().map(<[u8]>::to_vec))
    });
    let mut client = OpenSsl::start(
        pki.dir.path(),
        &[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-CAfile",
            "ca.pem",
            "-verify_return_error",
            version_flag,
            "-alpn",
            "http/1.1",
        ],
    );
    client.stdin.as_mut().unwrap().write_all(b"ping\n").unwrap();

    let (agreed, alpn) = server.take().unwrap();
    assert_eq!(agreed, Some(version));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    // s_client ends on our close_notify (its stdin is still open).
    let rest = client.rest();
    for want in ["pong: ping", "Verification: OK", "ALPN protocol: http/1.1", printed] {
        assert!(rest.iter().any(|l| l.contains(want)), "no {want:?} in {rest:#?}");
    }
}

#[test]
fn openssl_s_client_talks_to_our_server_over_tls12_with_alpn() {
    s_client_against_our_server("-tls1_2", ProtocolVersion::TLSv1_2, "New, TLSv1.2");
}

#[test]
fn openssl_s_client_talks_to_our_server_over_tls13_with_alpn() {
    s_client_against_our_server("-tls1_3", ProtocolVersion::TLSv1_3, "New, TLSv1.3");
}

/// Our client and server in two greenlets over loopback: what each side's handshake gave.
fn handshake(
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server_name: &str,
) -> (std::io::Result<TlsStream<TcpStream>>, std::io::Result<TlsStream<TcpStream>>) {
    let _backstop = backstop();
    let (listener, addr) = listener();
    let server = spawn(move || acceptor.accept(listener.accept().unwrap().0));
    let client = connector.connect(server_name, TcpStream::connect(addr).unwrap());
    (server.take().unwrap(), client)
}

/// The certificate error our client saw, and checks that the server saw our alert.
fn refused(
    (server, client): (
        std::io::Result<TlsStream<TcpStream>>,
        std::io::Result<TlsStream<TcpStream>>,
    ),
) -> CertificateError {
    let client = client.expect_err("the client refuses the certificate");
    assert_eq!(client.kind(), ErrorKind::InvalidData, "{client}");
    let tls = TlsError::from_io(&client).expect("a TLS error");
    assert!(tls.is_certificate_error());
    let source = std::error::Error::source(&client).and_then(|s| s.downcast_ref::<rustls::Error>());
    assert_eq!(source, Some(tls.rustls_error()), "the rustls error is in the source chain");
    let server = server.expect_err("the server hears of the refusal");
    assert!(TlsError::from_io(&server).is_some_and(TlsError::is_certificate_error), "{server}");
    match tls.rustls_error() {
        rustls::Error::InvalidCertificate(e) => e.clone(),
        other => panic!("not a certificate error: {other:?}"),
    }
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let pki = Pki::new("wrong-name");
    let error = refused(handshake(pki.acceptor("server"), pki.connector(), "gevent.example"));
    assert!(matches!(error, CertificateError::NotValidForNameContext { .. }), "{error:?}");
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new("untrusted");
    let error = refused(handshake(pki.acceptor("stranger"), pki.connector(), "localhost"));
    assert_eq!(error, CertificateError::UnknownIssuer);
}

#[test]
fn an_expired_certificate_is_refused() {
    let pki = Pki::new("expired");
    let error = refused(handshake(pki.acceptor("expired"), pki.connector(), "localhost"));
    assert!(matches!(error, CertificateError::ExpiredContext { .. }), "{error:?}");
}

#[test]
fn an_expired_certificate_from_openssl_s_server_is_refused() {
    let pki = Pki::new("expired-s-server");
    let (_server, addr) = OpenSsl::s_server(&pki, &["-cert", "expired.pem", "-key", "expired.key"]);
    let _backstop = backstop();
    let error =
        pki.connector().connect("localhost", TcpStream::connect(addr).unwrap()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    let tls = TlsError::from_io(&error).unwrap();
    assert!(
        matches!(
            tls.rustls_error(),
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        ),
        "{error}"
    );
}

#[test]
fn a_handshake_failure_is_not_a_certificate_error() {
    let pki = Pki::new("alpn");
    let acceptor = pki.acceptor("server").with_alpn(&[b"h2"]);
    let (server, client) =
        handshake(acceptor, pki.connector().with_alpn(&[b"http/1.1"]), "localhost");
    for error in [server.unwrap_err(), client.unwrap_err()] {
        assert_eq!(error.kind(), ErrorKind::ConnectionAborted, "{error}");
        let tls = TlsError::from_io(&error).unwrap();
        assert!(!tls.is_certificate_error());
        assert!(
            matches!(
                tls.rustls_error(),
                rustls::Error::NoApplicationProtocol
                    | rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)
            ),
            "{error}"
        );
    }
}

#[test]
fn a_handshake_with_a_silent_peer_obeys_a_timeout() {
    let pki = Pki::new("silent");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_silent, _) = listener.accept().unwrap();
    let timeout = Timeout::start(Duration::from_millis(20));
    let error = pki.connector().connect("localhost", stream).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert_eq!(Interrupted::try_from(&error), Ok(Interrupted::TimedOut(timeout.id())));
    assert!(TlsError::from_io(&error).is_none(), "an I/O failure, not a TLS one");
}

#[test]
fn close_notify_ends_reads_cleanly_and_an_abrupt_close_is_reported() {
    let pki = Pki::new("close");
    for abrupt in [false, true] {
        let (server, client) = handshake(pki.acceptor("server"), pki.connector(), "localhost");
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        server.write_all(b"last words").unwrap();
        if abrupt {
            drop(server);
        } else {
            server.shutdown().unwrap();
        }
        let mut got = Vec::new();
        let end = client.read_to_end(&mut got);
        assert_eq!(got, b"last words");
        if abrupt {
            let error = end.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::UnexpectedEof, "{error}");
        } else {
            assert_eq!(end.unwrap(), 10);
        }
    }
}

#[test]
fn a_server_requiring_client_certificates_refuses_a_client_without_one() {
    let pki = Pki::new("client-auth");
    let (server, client) =
        handshake(pki.acceptor_requiring_client_certificates(), pki.connector(), "localhost");
    let server = server.unwrap_err();
    assert_eq!(server.kind(), ErrorKind::InvalidData, "{server}");
    assert!(matches!(
        TlsError::from_io(&server).unwrap().rustls_error(),
        rustls::Error::NoCertificatesPresented
    ));
    // Under TLS 1.3 the client's handshake ends before the server judges its certificate: it
    // hears of the refusal at its first read.
    let error = client.and_then(|mut tls| tls.read(&mut [0; 8])).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidData, "{error}");
    assert!(TlsError::from_io(&error).unwrap().is_certificate_error(), "{error}");
}

#[test]
fn a_server_requiring_client_certificates_accepts_one_from_its_ca() {
    let pki = Pki::new("client-auth-ok");
    let (chain, key) = pki.chain_and_key("client");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(pki.roots("ca"))
            .with_client_auth_cert(chain.clone(), key)
            .unwrap();
    let (server, client) = handshake(
        pki.acceptor_requiring_client_certificates(),
        TlsConnector::from(Arc::new(config)),
        "localhost",
    );
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    assert_eq!(server.peer_certificates(), Some(&chain[..]));
    client.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn pem_files_that_hold_nothing_useful_are_refused_with_their_path() {
    let pki = Pki::new("pem");
    let missing = TlsAcceptor::from_pem_files(pki.path("nope.pem"), pki.path("server.key"));
    let error = missing.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert!(error.to_string().contains("nope.pem"), "{error}");
    // A key file where the chain should be.
    let error =
        TlsAcceptor::from_pem_files(pki.path("server.key"), pki.path("server.key")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    assert!(error.to_string().contains("server.key"), "{error}");
    let error = TlsConnector::with_roots_from_pem_file(pki.path("client.key")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidData);
    assert!(error.to_string().contains("client.key"), "{error}");
    // A key that is not the certificate's.
    let error =
        TlsAcceptor::from_pem_files(pki.path("server.pem"), pki.path("client.key")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidInput, "{error}");
}

#[test]
fn tls_streams_speak_embedded_io() {
    let pki = Pki::new("embedded-io");
    let (server, client) = handshake(pki.acceptor("server"), pki.connector(), "localhost");
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    embedded_io::Write::write_all(&mut client, b"embedded").unwrap();
    embedded_io::Write::flush(&mut client).unwrap();
    let mut buf = [0; 8];
    embedded_io::Read::read_exact(&mut server, &mut buf).unwrap();
    assert_eq!(&buf, b"embedded");
}

#[test]
fn a_read_interrupted_by_a_timeout_leaves_the_connection_usable() {
    let pki = Pki::new("read-timeout");
    let (server, client) = handshake(pki.acceptor("server"), pki.connector(), "localhost");
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    let mut buf = [0; 5];
    let timeout = Timeout::start(Duration::from_millis(20));
    let error = client.read(&mut buf).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert_eq!(Interrupted::try_from(&error), Ok(Interrupted::TimedOut(timeout.id())));
    drop(timeout);
    server.write_all(b"later").unwrap();
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"later");
}

/// A stream whose writes fail while `failing` is set.
struct Flaky {
    stream: TcpStream,
    failing: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Flaky {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failing.get() {
            return Err(ErrorKind::BrokenPipe.into());
        }
        self.stream.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_write_whose_bytes_were_taken_reports_a_failure_to_send_them_at_the_next_call() {
    let pki = Pki::new("deferred");
    let _backstop = backstop();
    let (listener, addr) = listener();
    let acceptor = pki.acceptor("server");
    let server = spawn(move || acceptor.accept(listener.accept().unwrap().0));
    let failing = std::rc::Rc::new(std::cell::Cell::new(false));
    let flaky = Flaky { stream: TcpStream::connect(addr).unwrap(), failing: failing.clone() };
    let mut client = pki.connector().connect("localhost", flaky).unwrap();
    let mut server = server.take().unwrap().unwrap();

    failing.set(true);
    assert_eq!(client.write(b"taken").unwrap(), 5, "the bytes are taken");
    assert_eq!(client.write(b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
    failing.set(false);
    // Nothing was lost or reordered: the taken bytes go out first.
    client.write_all(b"!").unwrap();
    let mut buf = [0; 6];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"taken!");
}
