//! The `echo` workload's server, and `idle_conns`: many idle connections on one hub.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::spawn;

use crate::conns;

/// Serves the echo workload on `127.0.0.1:port` until killed, as gevent's anchor does: a
/// `StreamServer` running one greenlet per connection, each reading up to 4 KiB and writing all
/// of it back until end of file.
pub(crate) fn serve(port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("gevent-bench: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The load generator resets its connections when it stops: that ends them as well as EOF.
    let server = StreamServer::new(listener, |stream, _peer| match echo(&stream) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        other => other,
    });
    match server.serve_forever() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gevent-bench: the echo server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Echoes `stream` until end of file or an error, which ends only this connection.
fn echo(mut stream: &TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Holds [`conns::CONNS`] connections, each with a greenlet parked reading it, and reports the
/// growth of the resident set per connection.
pub(crate) fn idle_conns() -> ExitCode {
    conns::run("idle_conns", hold_idle_conns)
}

fn hold_idle_conns() -> io::Result<f64> {
    let listener = conns::listener()?;
    let mut clients = conns::Clients::start("idle_conns_client", listener.local_addr()?)?;
    let mut readers = Vec::with_capacity(conns::CONNS);
    for _ in 0..conns::CONNS {
        let (stream, _) = listener.accept()?;
        // Each greenlet parks in its read until the client closes its end.
        readers.push(spawn(move || {
            let mut buf = [0u8; 64];
            (&stream).read(&mut buf).map_err(|e| e.to_string())
        }));
    }
    // Let every reader run up to its park, then wait for the client's word that it is done.
    gevent::yield_now().map_err(io::Error::from)?;
    let bytes = clients.wait_ready()?;
    clients.finish()?;
    for reader in &readers {
        reader.get().map_err(io::Error::other)?.map_err(io::Error::other)?;
    }
    Ok(bytes)
}

/// The client side of `idle_conns`: connections that send nothing.
pub(crate) fn idle_conns_client(addr: &str, count: &str) -> ExitCode {
    conns::client_main("idle_conns_client", addr, count, |_| Ok(()))
}
