//! `gevent::http::Server` under load from real HTTP benchmarking clients, `wrk` and `ab`, run
//! as child processes against a server on a thread (and hub) of its own. Every request must
//! succeed, and the server must have run its handler for each one the client counted.

#![cfg(feature = "http")]

mod common;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use gevent::http::{Body, Response, Server};
use gevent::net::TcpListener;
use gevent::{HubHandle, Timeout, hub_handle};

/// Far longer than any run takes: a server still serving then has hung.
const BACKSTOP: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);

thread_local! {
    /// The server of a serving thread, for the stop posted to its hub.
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

/// A server on a thread of its own, answering "Hello, World!" and counting its handler's calls.
struct ServerThread {
    addr: SocketAddr,
    hub: HubHandle,
    handled: mpsc::Receiver<u64>,
}

impl ServerThread {
    fn start() -> ServerThread {
        let (started, start) = mpsc::channel();
        let (done, handled) = mpsc::channel();
        thread::spawn(move || {
            let _backstop = Timeout::start(BACKSTOP);
            let count = Rc::new(Cell::new(0u64));
            let counter = count.clone();
            let server = Server::new(TcpListener::bind("127.0.0.1:0").unwrap(), move |_request| {
                counter.set(counter.get() + 1);
                Response::new(Body::from("Hello, World!"))
            });
            started.send((server.local_addr().unwrap(), hub_handle())).unwrap();
            SERVER.set(Some(server.clone()));
            server.serve_forever().unwrap();
            done.send(count.get()).unwrap();
        });
        let (addr, hub) = start.recv().unwrap();
        ServerThread { addr, hub, handled }
    }

    /// Stops the server gracefully and returns how many requests its handler answered.
    fn stop(self) -> u64 {
        self.hub
            .post(|| SERVER.with_borrow(|server| server.as_ref().unwrap().stop(GRACE)))
            .unwrap();
        self.handled.recv_timeout(BACKSTOP).expect("the server thread stops or fails")
    }
}

/// Runs a load generator to its end (killed if it hangs) and returns its report.
fn run(program: &str, args: &[&str]) -> String {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program} (.ci/run installs it): {e}"));
    let Output { status, stdout, stderr } = common::wait_or_kill(child, program);
    let report = String::from_utf8_lossy(&stdout).into_owned();
    assert!(status.success(), "{program} failed: {report}\n{}", String::from_utf8_lossy(&stderr));
    report
}

/// The number before `suffix` on the line of `report` that contains it.
fn number_before(report: &str, suffix: &str) -> u64 {
    let line = report.lines().find(|line| line.contains(suffix)).unwrap_or_else(|| {
        panic!("no {suffix:?} in the report:\n{report}");
    });
    let before = line[..line.find(suffix).unwrap()].trim();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The number after `prefix` at the start of a line of `report`.
fn number_after(report: &str, prefix: &str) -> u64 {
    let line = report.lines().find_map(|line| line.strip_prefix(prefix)).unwrap_or_else(|| {
        panic!("no {prefix:?} in the report:\n{report}");
    });
    line.trim().parse().unwrap()
}

#[test]
fn wrk_keep_alive_load_is_answered_in_full() {
    let server = ServerThread::start();
    let url = format!("http://{}/", server.addr);
    let report = run("wrk", &["-t1", "-c50", "-d1s", &url]);
    let handled = server.stop();

    let completed = number_before(&report, " requests in ");
    assert!(completed > 0, "{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    // wrk stops counting at the end of its time: requests then in flight were handled but
    // not counted.
    assert!(handled >= completed, "the server handled {handled}, wrk counted {completed}");
}

#[test]
fn ab_http10_keep_alive_load_is_answered_in_full() {
    const REQUESTS: u64 = 2000;
    let server = ServerThread::start();
    let url = format!("http://{}/", server.addr);
    // `-k`: HTTP/1.0 with `Connection: Keep-Alive`.
    let report = run("ab", &["-k", "-q", "-n", &REQUESTS.to_string(), "-c", "20", &url]);
    let handled = server.stop();

    assert_eq!(number_after(&report, "Complete requests:"), REQUESTS, "{report}");
    assert_eq!(number_after(&report, "Failed requests:"), 0, "{report}");
    assert_eq!(number_after(&report, "Keep-Alive requests:"), REQUESTS, "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert_eq!(handled, REQUESTS);
}
