//! `gevent::server::StreamServer` against the kernel's TCP on loopback. The scenarios that
//! write reports to stderr or lower the process's descriptor limit run in a child process: this
//! test binary itself, running the ignored test `child` with `GEVENT_SERVER_CHILD` set.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::Output;
use std::rc::Rc;
use std::time::Duration;

use gevent::event::Event;
use gevent::net::{TcpListener, TcpStream};
use gevent::pool::Pool;
use gevent::queue::Queue;
use gevent::server::{Listener, StreamServer};
use rustix::io::Errno;

use gevent::{Interrupted, Timeout, sleep, spawn, yield_now};

const GRACE: Duration = Duration::from_secs(1);

fn bound() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Echoes until the peer closes its side.
fn echo(mut stream: TcpStream, _peer: SocketAddr) -> io::Result<()> {
    let mut buf = [0; 256];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).unwrap();
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, message);
}

/// Yields until `done()` holds; fails the test rather than spin for ever.
fn yield_until(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        yield_now().unwrap();
    }
    panic!("the condition never held");
}

#[test]
fn many_clients_are_echoed_and_serve_forever_returns_after_stop_from_another_greenlet() {
    let server = StreamServer::new(bound(), echo);
    let addr = server.local_addr().unwrap();
    let serving = spawn({
        let server = server.clone();
        move || server.serve_forever()
    });
    let clients: Vec<_> = (0..100)
        .map(|i| {
            spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                for round in 0..10 {
                    round_trip(&mut stream, format!("client {i} round {round}").as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.get().unwrap();
    }
    assert!(server.started());
    let stopper = spawn({
        let server = server.clone();
        move || server.stop(GRACE)
    });
    let _bound = Timeout::start(Duration::from_secs(10));
    serving.take().unwrap().unwrap();
    stopper.get().unwrap();
    assert!(server.closed());
    assert!(!server.started());
    assert_eq!(server.connections(), 0);
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_pool_of_two_caps_how_many_handlers_run_at_once() {
    let active = Rc::new(Cell::new(0));
    let most = Rc::new(Cell::new(0));
    let entered = Rc::new(Queue::new());
    let release = Rc::new(Queue::new());
    let handler = {
        let (active, most, entered, release) =
            (active.clone(), most.clone(), entered.clone(), release.clone());
        move |mut stream: TcpStream, _| {
            active.set(active.get() + 1);
            most.set(most.get().max(active.get()));
            entered.put(()).unwrap();
            let got = release.get();
            active.set(active.get() - 1);
            got.map_err(|e| io::Error::other(e.to_string()))?;
            stream.write_all(b"x")
        }
    };
    let server = StreamServer::new(bound(), handler).with_pool(Pool::new(2));
    let addr = server.local_addr().unwrap();
    server.start().unwrap();
    let connected = Rc::new(Queue::new());
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let connected = connected.clone();
            spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                connected.put(()).unwrap();
                let mut reply = [0; 1];
                stream.read_exact(&mut reply).unwrap();
            })
        })
        .collect();
    let _bound = Timeout::start(Duration::from_secs(10));
    for _ in 0..5 {
        connected.get().unwrap();
    }
    entered.get().unwrap();
    entered.get().unwrap();
    // Every client is connected and two handlers are parked: an uncapped accept loop would
    // take the three others now.
    for _ in 0..100 {
        yield_now().unwrap();
    }
    assert_eq!((server.connections(), active.get()), (2, 2));
    release.put(()).unwrap();
    for _ in 0..3 {
        entered.get().unwrap();
        assert!(active.get() <= 2);
        release.put(()).unwrap();
    }
    release.put(()).unwrap();
    for client in clients {
        client.get().unwrap();
    }
    assert_eq!(most.get(), 2);
    server.stop(GRACE);
}

#[test]
fn stop_refuses_new_connections_at_once_lets_handlers_finish_and_kills_the_stuck_ones() {
    let finish = Rc::new(Event::new());
    let entered = Rc::new(Queue::new());
    let stuck_ended_by = Rc::new(RefCell::new(None));
    let handler = {
        let (finish, entered, stuck_ended_by) =
            (finish.clone(), entered.clone(), stuck_ended_by.clone());
        move |mut stream: TcpStream, _| {
            let mut command = [0; 1];
            stream.read_exact(&mut command)?;
            entered.put(()).unwrap();
            if command == *b"f" {
                finish.wait()?;
                return stream.write_all(b"done");
            }
            let slept = sleep(Duration::from_secs(3600));
            *stuck_ended_by.borrow_mut() = Some(slept.clone());
            Ok(slept?)
        }
    };
    let server = StreamServer::new(bound(), handler);
    let addr = server.local_addr().unwrap();
    server.start().unwrap();
    let _bound = Timeout::start(Duration::from_secs(20));
    let mut finishing = TcpStream::connect(addr).unwrap();
    finishing.write_all(b"f").unwrap();
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck.write_all(b"s").unwrap();
    entered.get().unwrap();
    entered.get().unwrap();

    let stopper = spawn({
        let server = server.clone();
        move || server.stop(GRACE)
    });
    yield_until(|| server.closed());
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    assert!(server.local_addr().is_err());
    assert_eq!(server.connections(), 2);

    finish.set();
    let mut reply = Vec::new();
    finishing.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    assert_eq!(*stuck_ended_by.borrow(), None, "killed before the grace period ended");

    stopper.get().unwrap();
    assert_eq!(*stuck_ended_by.borrow(), Some(Err(Interrupted::Killed)));
    assert_eq!(server.connections(), 0);
    let mut rest = Vec::new();
    assert_eq!(stuck.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn a_handler_can_stop_its_server_and_goes_on_while_the_others_get_their_grace() {
    let slot: Rc<RefCell<Option<StreamServer>>> = Rc::new(RefCell::new(None));
    let finish = Rc::new(Event::new());
    let entered = Rc::new(Queue::new());
    let handler = {
        let (slot, finish, entered) = (slot.clone(), finish.clone(), entered.clone());
        move |mut stream: TcpStream, _| {
            let mut command = [0; 1];
            stream.read_exact(&mut command)?;
            if command == *b"q" {
                let server = slot.borrow_mut().take().unwrap();
                server.stop(GRACE);
                return stream.write_all(b"stopped");
            }
            entered.put(()).unwrap();
            finish.wait()?;
            stream.write_all(b"done")
        }
    };
    let server = StreamServer::new(bound(), handler);
    let addr = server.local_addr().unwrap();
    *slot.borrow_mut() = Some(server.clone());
    server.start().unwrap();
    let _bound = Timeout::start(Duration::from_secs(20));
    let mut other = TcpStream::connect(addr).unwrap();
    other.write_all(b"w").unwrap();
    entered.get().unwrap();
    let mut quitting = TcpStream::connect(addr).unwrap();
    quitting.write_all(b"q").unwrap();
    yield_until(|| server.closed());
    finish.set();
    let mut reply = Vec::new();
    other.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"done");
    reply.clear();
    quitting.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"stopped");
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_stopped_server_cannot_start_again_and_a_started_one_cannot_start_twice() {
    let server = StreamServer::new(bound(), echo);
    assert!(!server.started() && !server.closed());
    server.start().unwrap();
    assert!(server.start().is_err());
    assert!(format!("{server:?}").contains("started: true"));
    server.stop(GRACE);
    assert_eq!(server.start().unwrap_err().kind(), ErrorKind::NotConnected);
    assert_eq!(server.serve_forever().unwrap_err().kind(), ErrorKind::NotConnected);
}

#[test]
fn serve_forever_interrupted_by_a_timeout_stops_the_server_and_says_why() {
    let server = StreamServer::new(bound(), echo);
    let addr = server.local_addr().unwrap();
    let timeout = Timeout::start(Duration::from_millis(20));
    let err = server.serve_forever().unwrap_err();
    assert_eq!(Interrupted::try_from(&err), Ok(Interrupted::TimedOut(timeout.id())));
    assert!(server.closed());
    assert_eq!(TcpStream::connect(addr).unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

/// A listener that fails with an error the server cannot go on after.
#[derive(Debug)]
struct Broken;

impl Listener for Broken {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        Err(io::Error::from_raw_os_error(Errno::BADF.raw_os_error()))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok("127.0.0.1:1".parse().unwrap())
    }
}

#[test]
fn an_accept_error_that_is_not_transient_ends_serve_forever_with_it() {
    let server = StreamServer::new(Broken, |_, _| Ok(()));
    let err = server.serve_forever().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(Errno::BADF.raw_os_error()));
    assert!(server.closed());
}

// ---- child-process scenarios ----

const CHILD_ENV: &str = "GEVENT_SERVER_CHILD";

/// Runs a scenario in a child process (see [`common::run_child`]) and returns its stdout and
/// stderr, once it ended well.
fn run_child(scenario: &str) -> (String, String) {
    let Output { status, stdout, stderr } = common::run_child(CHILD_ENV, scenario);
    let (stdout, stderr) = (String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap());
    assert!(status.success(), "child failed: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

/// The value printed by the child as `key: value`.
fn printed<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|line| Some(line.split_once(&format!("{key}: "))?.1))
        .unwrap_or_else(|| panic!("the child did not print {key}:\n{stdout}"))
}

#[test]
#[ignore = "a child process of the tests that need one"]
fn child() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("failing-handlers") => failing_handlers(),
        Ok("emfile") => emfile(),
        other => panic!("unknown scenario {other:?}"),
    }
}

#[test]
#[cfg_attr(feature = "log", ignore = "reads the reports on stderr; `log` sends them to the logger")]
fn a_failing_handler_ends_its_own_connection_only_and_is_reported_once_with_its_spawn_site() {
    let (stdout, stderr) = run_child("failing-handlers");
    let site = format!("server.rs:{}:", printed(&stdout, "made at line"));
    let panics: Vec<_> = stderr.lines().filter(|l| l.contains("panicked at")).collect();
    assert_eq!(panics.len(), 1, "stderr:\n{stderr}");
    assert!(panics[0].contains("StreamServer handler"), "{}", panics[0]);
    assert!(panics[0].contains(&site), "{} lacks {site}", panics[0]);
    assert_eq!(stderr.matches("handler panic on purpose").count(), 1, "stderr:\n{stderr}");
    let failures: Vec<_> = stderr.lines().filter(|l| l.contains("failed serving")).collect();
    assert_eq!(failures.len(), 1, "stderr:\n{stderr}");
    assert!(failures[0].contains(&site), "{} lacks {site}", failures[0]);
    assert!(failures[0].contains("handler error on purpose"), "{}", failures[0]);
    assert_eq!(printed(&stdout, "others"), "served");
}

fn failing_handlers() {
    let handler = |mut stream: TcpStream, _| -> io::Result<()> {
        let mut command = [0; 1];
        loop {
            if stream.read(&mut command)? == 0 {
                return Ok(());
            }
            match &command {
                b"p" => panic!("handler panic on purpose"),
                b"e" => return Err(io::Error::other("handler error on purpose")),
                _ => stream.write_all(&command)?,
            }
        }
    };
    let (server, line) = (StreamServer::new(bound(), handler), line!());
    println!("made at line: {line}");
    let addr = server.local_addr().unwrap();
    server.start().unwrap();
    let _bound = Timeout::start(Duration::from_secs(10));
    let mut before = TcpStream::connect(addr).unwrap();
    round_trip(&mut before, b"a");
    for command in [b"p", b"e"] {
        let mut failing = TcpStream::connect(addr).unwrap();
        failing.write_all(command).unwrap();
        let mut rest = Vec::new();
        assert_eq!(failing.read_to_end(&mut rest).unwrap(), 0);
    }
    round_trip(&mut before, b"b");
    let mut after = TcpStream::connect(addr).unwrap();
    round_trip(&mut after, b"c");
    println!("others: served");
    drop((before, after));
    server.stop(GRACE);
}

/// Counts accepts, and signals when enough of them failed.
struct Counting {
    inner: TcpListener,
    attempts: Rc<Cell<usize>>,
    failures: Rc<Cell<usize>>,
    failed_enough: Rc<Event>,
}

impl Listener for Counting {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.attempts.set(self.attempts.get() + 1);
        let accepted = self.inner.accept();
        if accepted.as_ref().is_err_and(|e| e.raw_os_error() == Some(Errno::MFILE.raw_os_error())) {
            self.failures.set(self.failures.get() + 1);
            if self.failures.get() == 3 {
                self.failed_enough.set();
            }
        }
        accepted
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[test]
fn accept_out_of_descriptors_is_logged_once_backs_off_and_serves_once_they_free_up() {
    let (stdout, stderr) = run_child("emfile");
    let reports = stderr.matches("cannot accept connections").count();
    assert_eq!(reports, 1, "stderr:\n{stderr}");
    assert!(stderr.contains("Too many open files"), "stderr:\n{stderr}");
    let failures: usize = printed(&stdout, "failures after 100ms more").parse().unwrap();
    // 10 ms, then 20, 40, 80...: a handful; a loop retrying at once makes thousands.
    assert!((3..=6).contains(&failures), "{failures} failed accepts");
    assert_eq!(printed(&stdout, "client"), "served");
}

fn emfile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(Resource::Nofile, Rlimit { current: Some(64), maximum: limit.maximum }).unwrap();

    let (attempts, failures, failed_enough) =
        (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)), Rc::new(Event::new()));
    let listener = Counting {
        inner: bound(),
        attempts: attempts.clone(),
        failures: failures.clone(),
        failed_enough: failed_enough.clone(),
    };
    let server = StreamServer::new(listener, echo);
    let addr = server.local_addr().unwrap();
    server.start().unwrap();
    yield_now().unwrap(); // the accept loop waits for a connection
    let _bound = Timeout::start(Duration::from_secs(20));

    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => filler.push(file),
            Err(e) if e.raw_os_error() == Some(Errno::MFILE.raw_os_error()) => break,
            Err(e) => panic!("{e}"),
        }
    }
    drop(filler.pop()); // room for the client's socket, none for the server's end
    let client = spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        round_trip(&mut stream, b"ping");
    });
    failed_enough.wait().unwrap();
    sleep(Duration::from_millis(100)).unwrap();
    println!("failures after 100ms more: {}", failures.get());
    assert!(!client.ready());

    drop(filler);
    client.get().unwrap();
    println!("client: served");
    assert!(server.started() && !server.closed());
    server.stop(GRACE);
    println!("accepts: {}", attempts.get());
}
