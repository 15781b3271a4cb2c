//! The tls_echo anchor: the echo workload's server on a tokio current_thread runtime
//! (TcpListener and a task per connection) over tokio-rustls, with ring.
//! Usage: tls_anchor_tokio tls_echo PORT [CHAIN KEY]   (default: examples/certs/localhost.*)

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: tls_anchor_tokio tls_echo PORT [CHAIN KEY]";
    if args.get(1).map(String::as_str) != Some("tls_echo") {
        panic!("{usage}");
    }
    let port: u16 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/certs");
    let chain = args.get(3).map_or(certs.join("localhost.pem"), PathBuf::from);
    let key = args.get(4).map_or(certs.join("localhost.key"), PathBuf::from);
    let config = tls_anchor::server_config(&chain, &key).expect("the certificate and key");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("listen");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A failed handshake or a reset ends only this connection.
                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                let mut buf = [0u8; 4096];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}
