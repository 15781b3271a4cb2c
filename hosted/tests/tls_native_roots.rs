//! `TlsConnector::with_native_roots` reads the system's store, which `SSL_CERT_FILE` points at
//! a CA of the test's own. Its own test binary: it sets an environment variable.
#![cfg(feature = "tls-native-roots")]

use std::io::{ErrorKind, Read, Write};

use gevent::net::TcpStream;
use gevent::spawn;
use gevent::tls::{TlsAcceptor, TlsConnector};

mod common;
use common::{TempDir, listener, openssl};

#[test]
fn native_roots_come_from_ssl_cert_file() {
    let dir = TempDir::new("tls-native");
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "cert.key",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty_dir = dir.join("no-certs");
    std::fs::create_dir_all(&empty_dir).unwrap();

    // SAFETY: this binary holds this one test, so no other thread of ours reads or writes the
    // environment while it changes.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SSL_CERT_DIR", &empty_dir);
        std::env::set_var("SSL_CERT_FILE", &empty);
    }
    let none = TlsConnector::with_native_roots().expect_err("an empty store");
    assert_eq!(none.kind(), ErrorKind::NotFound, "{none}");

    // SAFETY: as above.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("SSL_CERT_FILE", dir.join("cert.pem"));
    }
    let connector = TlsConnector::with_native_roots().unwrap();
    let acceptor = TlsAcceptor::from_pem_files(dir.join("cert.pem"), dir.join("cert.key")).unwrap();
    let (listener, addr) = listener();
    let server = spawn(move || {
        let mut tls = acceptor.accept(listener.accept().unwrap().0).unwrap();
        tls.write_all(b"trusted").unwrap();
        tls.shutdown().unwrap();
    });
    let mut tls = connector.connect("localhost", TcpStream::connect(addr).unwrap()).unwrap();
    let mut got = String::new();
    tls.read_to_string(&mut got).unwrap();
    assert_eq!(got, "trusted");
    server.get().unwrap();
}
