//! `gevent::server::DatagramServer` on UDP and Unix datagram sockets, and `StreamServer` on a
//! Unix listener.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gevent::pool::Pool;
use gevent::server::{DatagramServer, StreamServer};
use gevent::{Timeout, spawn};

mod common;
use common::TempDir;

const GRACE: Duration = Duration::from_secs(1);
/// Far longer than a passing test takes: a lost wake-up fails the test instead of hanging it.
const BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_udp_server_answers_many_concurrent_clients_each_in_its_own_handler() {
    let _bound = Timeout::start(BOUND);
    let server = DatagramServer::new(UdpSocket::bind("127.0.0.1:0").unwrap(), |data, from, s| {
        let mut reply = b"echo:".to_vec();
        reply.extend_from_slice(data);
        s.send_to(&reply, from).map(drop)
    });
    let addr = server.local_addr().unwrap();
    let serving = spawn({
        let server = server.clone();
        move || server.serve_forever()
    });
    let clients: Vec<_> = (0..50)
        .map(|i| {
            spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.connect(addr).unwrap();
                for round in 0..5 {
                    let message = format!("{i}/{round}");
                    socket.send(message.as_bytes()).unwrap();
                    let mut buf = [0; 64];
                    let n = socket.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], format!("echo:{message}").as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.get().unwrap();
    }
    server.stop(GRACE);
    assert!(serving.take().unwrap().is_ok());
    assert!(server.closed());
    assert!(server.local_addr().is_err());
}

#[test]
fn a_pool_of_one_runs_the_datagrams_one_at_a_time_and_stop_kills_a_stuck_handler() {
    let _bound = Timeout::start(BOUND);
    let release = Rc::new(Event::new());
    let running = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let handled = Rc::new(Cell::new(0));
    let server = DatagramServer::new(UdpSocket::bind("127.0.0.1:0").unwrap(), {
        let (release, running, most, handled) =
            (release.clone(), running.clone(), most.clone(), handled.clone());
        move |data, _from, _socket| {
            running.set(running.get() + 1);
            most.set(most.get().max(running.get()));
            if data == b"wait" {
                let waited = release.wait();
                running.set(running.get() - 1);
                waited?;
            } else {
                running.set(running.get() - 1);
            }
            handled.set(handled.get() + 1);
            Ok(())
        }
    })
    .with_pool(Pool::new(1));
    server.start().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    client.send_to(b"wait", addr).unwrap();
    client.send_to(b"quick", addr).unwrap();
    while server.handlers() == 0 {
        gevent::yield_now().unwrap();
    }
    // The quick datagram waits in the socket's buffer while the pool's one slot is taken.
    for _ in 0..20 {
        gevent::yield_now().unwrap();
    }
    assert_eq!((handled.get(), most.get()), (0, 1));
    release.set();
    while handled.get() < 2 {
        gevent::yield_now().unwrap();
    }
    assert_eq!(most.get(), 1);

    // A handler still waiting when the grace ends is killed.
    release.clear();
    client.send_to(b"wait", addr).unwrap();
    while server.handlers() == 0 {
        gevent::yield_now().unwrap();
    }
    server.stop(Duration::from_millis(20));
    assert_eq!(server.handlers(), 0);
    assert_eq!(handled.get(), 2);
}

#[test]
fn a_unix_datagram_server_answers_by_path() {
    let _bound = Timeout::start(BOUND);
    let dir = TempDir::new("unix");
    let server_path = dir.join("server.sock");
    let server = DatagramServer::new(UnixDatagram::bind(&server_path).unwrap(), |data, from, s| {
        let to = from.as_pathname().expect("the client is bound to a path");
        s.send_to(&data.to_ascii_uppercase(), to).map(drop)
    });
    server.start().unwrap();
    let client = UnixDatagram::bind(dir.join("client.sock")).unwrap();
    client.send_to(b"shout", &server_path).unwrap();
    let mut buf = [0; 16];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"SHOUT");
    server.stop(GRACE);
}

#[test]
fn a_stream_server_serves_a_unix_listener() {
    let _bound = Timeout::start(BOUND);
    let dir = TempDir::new("stream");
    let path = dir.join("echo.sock");
    let server = StreamServer::new(UnixListener::bind(&path).unwrap(), |mut stream, _peer| {
        let mut buf = [0; 64];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return io::Result::Ok(());
            }
            stream.write_all(&buf[..n])?;
        }
    });
    server.start().unwrap();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let path = path.clone();
            spawn(move || {
                let mut stream = UnixStream::connect(&path).unwrap();
                let message = format!("client {i}");
                stream.write_all(message.as_bytes()).unwrap();
                let mut back = vec![0; message.len()];
                stream.read_exact(&mut back).unwrap();
                assert_eq!(back, message.as_bytes());
            })
        })
        .collect();
    for client in clients {
        client.get().unwrap();
    }
    server.stop(GRACE);
    assert!(UnixStream::connect(&path).is_err());
}
