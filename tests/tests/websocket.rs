//! Third-party blocking code written against `std::io` runs cooperatively over our sockets:
//! `tungstenite`'s WebSocket server and clients, unchanged, each in a greenlet of one hub.

use std::cell::Cell;
use std::net::TcpStream as StdTcpStream;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::{Timeout, spawn};
use tungstenite::{Error, Message};

const CLIENTS: usize = 8;
const MESSAGES: usize = 20;

/// Echoes every text and binary message of one WebSocket connection until the client closes it.
fn echo(stream: TcpStream) -> usize {
    let mut ws = tungstenite::accept(stream).unwrap();
    let mut echoed = 0;
    loop {
        match ws.read() {
            Ok(msg) if msg.is_text() || msg.is_binary() => {
                ws.send(msg).unwrap();
                echoed += 1;
            }
            Ok(_) => {} // ping, pong and close are answered by tungstenite itself
            Err(Error::ConnectionClosed) => return echoed,
            Err(e) => panic!("server: {e}"),
        }
    }
}

#[test]
fn tungstenite_websocket_clients_and_server_over_our_sockets_in_one_hub() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let handlers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                spawn(move || echo(stream))
            })
            .collect();
        handlers.iter().map(|h| h.get().unwrap()).collect::<Vec<_>>()
    });
    // Every client finishes its handshake before any sends a message, so all the WebSocket
    // connections are open at once, and their messages interleave.
    let handshaken = Rc::new(Cell::new(0));
    let go = Rc::new(Event::new());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (handshaken, go) = (handshaken.clone(), go.clone());
            spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                let url = format!("ws://{addr}/echo");
                let (mut ws, response) = tungstenite::client(url.as_str(), stream).unwrap();
                assert_eq!(response.status(), 101);
                handshaken.set(handshaken.get() + 1);
                if handshaken.get() == CLIENTS {
                    go.set();
                }
                go.wait().unwrap();
                for n in 0..MESSAGES {
                    let (sent, echo) = if n % 2 == 0 {
                        let text = format!("client {i} message {n}");
                        ws.send(Message::text(text.clone())).unwrap();
                        (Message::text(text), ws.read().unwrap())
                    } else {
                        let bytes = vec![i as u8; 1000 * n];
                        ws.send(Message::binary(bytes.clone())).unwrap();
                        (Message::binary(bytes), ws.read().unwrap())
                    };
                    assert_eq!(echo, sent, "client {i} message {n}");
                }
                ws.close(None).unwrap();
                loop {
                    match ws.read() {
                        Ok(_) => {} // the server's close reply
                        Err(Error::ConnectionClosed) => return i,
                        Err(e) => panic!("client {i} closing: {e}"),
                    }
                }
            })
        })
        .collect();
    // A hang fails the joins below instead of the test hanging.
    let _bound = Timeout::start(Duration::from_secs(60));
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.get().unwrap(), i);
    }
    assert_eq!(server.get().unwrap(), vec![MESSAGES; CLIENTS]);
}

#[test]
fn a_tungstenite_client_on_a_std_socket_talks_to_our_server() {
    // The std client blocks its thread, so it runs on one of its own; our server's hub is here.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let stream = StdTcpStream::connect(addr).unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/").as_str(), stream).unwrap();
        ws.send(Message::text("ping")).unwrap();
        let echo = ws.read().unwrap();
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        echo
    });
    // A client that never connects fails the accept instead of the test hanging.
    let _bound = Timeout::start(Duration::from_secs(60));
    let (stream, _) = listener.accept().unwrap();
    assert_eq!(echo(stream), 1);
    assert_eq!(client.join().unwrap(), Message::text("ping"));
}
