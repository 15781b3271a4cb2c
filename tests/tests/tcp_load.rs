//! A thousand TCP connections open at once in one hub, each with a greenlet at both ends,
//! against the kernel's TCP on loopback.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::{Timeout, spawn};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

const CONNECTIONS: usize = 1000;

/// Raises the soft limit on open descriptors to at least `needed` (up to the hard limit);
/// the reason it cannot, otherwise.
fn raise_nofile(needed: u64) -> Result<(), String> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= needed) {
        return Ok(());
    }
    if limit.maximum.is_some_and(|hard| hard < needed) {
        return Err(format!("the hard RLIMIT_NOFILE is {:?}, below {needed}", limit.maximum));
    }
    let raised = Rlimit { current: Some(needed), maximum: limit.maximum };
    setrlimit(Resource::Nofile, raised).map_err(|e| format!("setrlimit(RLIMIT_NOFILE): {e}"))
}

/// A listener whose accept queue holds every connection of the burst: std's and ours listen
/// with a backlog of 128, past which the kernel drops SYNs and the clients retry a second later.
fn listener_for_a_burst() -> (TcpListener, SocketAddr) {
    use rustix::net::{AddressFamily, SocketType, bind, listen, socket, sockopt};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_reuseaddr(&fd, true).unwrap();
    bind(&fd, &SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    listen(&fd, CONNECTIONS as i32 + 24).unwrap();
    let listener = TcpListener::from(std::net::TcpListener::from(fd));
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Counts greenlets arriving at a point and opens `go` when all `expected` are there.
struct Barrier {
    arrived: Cell<usize>,
    expected: usize,
    go: Event,
}

impl Barrier {
    fn arrive_and_wait(&self) {
        self.arrived.set(self.arrived.get() + 1);
        if self.arrived.get() == self.expected {
            self.go.set();
        }
        self.go.wait().unwrap();
    }
}

#[test]
fn a_thousand_connections_open_at_once_each_echo_a_round_trip() {
    // Two descriptors per connection plus the listener, the poller and the test harness's.
    if let Err(why) = raise_nofile(2 * CONNECTIONS as u64 + 64) {
        println!("skipped: {why}");
        return;
    }
    let (listener, addr) = listener_for_a_burst();
    // Every client and every server handler arrives here once connected, so all 2,000
    // greenlets and 1,000 connections are alive at once before any message is sent.
    let barrier =
        Rc::new(Barrier { arrived: Cell::new(0), expected: 2 * CONNECTIONS, go: Event::new() });
    let b = barrier.clone();
    let server = spawn(move || {
        let handlers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (mut stream, _) = listener.accept().unwrap();
                let barrier = b.clone();
                spawn(move || {
                    barrier.arrive_and_wait();
                    let mut buf = [0; 64];
                    loop {
                        let n = stream.read(&mut buf).unwrap();
                        if n == 0 {
                            return;
                        }
                        stream.write_all(&buf[..n]).unwrap();
                    }
                })
            })
            .collect();
        for h in handlers {
            h.get().unwrap();
        }
    });
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let barrier = barrier.clone();
            spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                barrier.arrive_and_wait();
                let msg = format!("hello from client {i}");
                stream.write_all(msg.as_bytes()).unwrap();
                let mut echo = vec![0; msg.len()];
                stream.read_exact(&mut echo).unwrap();
                assert_eq!(echo, msg.as_bytes(), "client {i}");
                i
            })
        })
        .collect();
    // A hang (a lost wake-up, a connection never accepted) fails the joins below.
    let _bound = Timeout::start(Duration::from_secs(60));
    barrier.go.wait().unwrap();
    assert_eq!(barrier.arrived.get(), 2 * CONNECTIONS);
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(c.get().unwrap(), i);
    }
    server.get().unwrap();
}
