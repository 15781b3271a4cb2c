//! Load generator for the TLS workloads, on one thread (a tokio current_thread runtime with
//! tokio-rustls clients; TLS 1.3, no session resumption, TCP_NODELAY).
//!
//! ```text
//! tls_load PORT IMPL N SECS           tls_echo: N connections to 127.0.0.1:PORT, each sending
//!                                     64 bytes and waiting for the whole 64-byte echo
//!                                     (checked) before the next, for SECS seconds
//! tls_load handshake PORT IMPL SECS   tls_handshake: new connections, IN_FLIGHT at a time,
//!                                     each a full handshake then close_notify, for SECS seconds
//! ```
//!
//! Prints `bench=tls_echo impl=IMPL metric=round_trips_per_s value=X`, or
//! `bench=tls_handshake impl=IMPL metric=handshakes_per_s value=X`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use tls_anchor::report;

const SIZE: usize = 64;
/// Handshakes under way at once in handshake mode. With 4, the rate followed the round-trip
/// latency of a shared machine more than either side's CPU (0.83x to 0.96x between runs at equal
/// server CPU per handshake); 16 keep a one-core server busy.
const IN_FLIGHT: usize = 16;

const USAGE: &str = "usage: tls_load PORT IMPL N SECS | tls_load handshake PORT IMPL SECS";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> u64 { args.get(i).and_then(|a| a.parse().ok()).expect(USAGE) };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let connector = TlsConnector::from(Arc::new(tls_anchor::client_config()));
    if args.get(1).map(String::as_str) == Some("handshake") {
        let (port, imp, secs) = (number(2) as u16, args.get(3).expect(USAGE), number(4));
        let rate = rt.block_on(handshakes(connector, port, secs));
        report("tls_handshake", imp, "handshakes_per_s", rate);
    } else {
        let (port, imp) = (number(1) as u16, args.get(2).expect(USAGE));
        let (conns, secs) = (number(3) as usize, number(4));
        let rate = rt.block_on(echo(connector, port, conns, secs));
        report("tls_echo", imp, "round_trips_per_s", rate);
    }
    // The tasks are still running: leaving without dropping the runtime ends them.
    std::process::exit(0);
}

async fn connect(connector: &TlsConnector, port: u16) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

async fn echo(connector: TlsConnector, port: u16, conns: usize, secs: u64) -> f64 {
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        streams.push(connect(&connector, port).await);
    }
    let trips = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for mut tls in streams {
        let trips = trips.clone();
        tokio::spawn(async move {
            let msg = [b'x'; SIZE];
            let mut buf = [0u8; SIZE];
            loop {
                tls.write_all(&msg).await.expect("write");
                tls.read_exact(&mut buf).await.expect("read the echo");
                assert_eq!(buf, msg, "echo mismatch");
                trips.fetch_add(1, Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    trips.load(Relaxed) as f64 / start.elapsed().as_secs_f64()
}

async fn handshakes(connector: TlsConnector, port: u16, secs: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    for _ in 0..IN_FLIGHT {
        let (connector, done) = (connector.clone(), done.clone());
        tokio::spawn(async move {
            loop {
                let mut tls = connect(&connector, port).await;
                // close_notify, then wait for the server to close: that the server finished its
                // side of the handshake too. The server closes first, so the TIME_WAIT sockets
                // are its, and the client's ephemeral ports are not used up.
                tls.get_mut().1.send_close_notify();
                tls.flush().await.expect("send close_notify");
                match tls.read(&mut [0u8; 64]).await {
                    Ok(0) => {}
                    Ok(_) => panic!("the server sent data after close_notify"),
                    // Our server closes without close_notify of its own.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    Err(e) => panic!("waiting for the server to close: {e}"),
                }
                done.fetch_add(1, Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    done.load(Relaxed) as f64 / start.elapsed().as_secs_f64()
}
