//! The `tls_echo` workload's server: the echo server of [`crate::echo`] over TLS, each
//! connection's handshake run by `gevent::tls` in the connection's greenlet. The same server
//! answers the `tls_handshake` workload, whose clients close right after the handshake.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::tls::{TlsAcceptor, TlsStream};

/// The examples' self-signed certificate for `localhost`, which the tokio-rustls anchor serves
/// too.
fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/certs")
}

/// Serves `tls_echo` on `127.0.0.1:port` until killed.
pub(crate) fn serve(port: u16) -> ExitCode {
    let certs = certs_dir();
    let acceptor =
        match TlsAcceptor::from_pem_files(certs.join("localhost.pem"), certs.join("localhost.key"))
        {
            Ok(acceptor) => acceptor,
            Err(e) => {
                eprintln!("gevent-bench: cannot load the certificate in {}: {e}", certs.display());
                return ExitCode::FAILURE;
            }
        };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gevent-bench: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = StreamServer::new(listener, move |stream, _peer| {
        match acceptor.accept(stream).and_then(echo) {
            // The load generator resets its connections or drops them without close_notify
            // when it stops: that ends them as well as close_notify does.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(())
            }
            other => other,
        }
    });
    match server.serve_forever() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench: the TLS echo server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Echoes `stream` until close_notify or an error, which ends only this connection.
fn echo(mut stream: TlsStream<TcpStream>) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}
