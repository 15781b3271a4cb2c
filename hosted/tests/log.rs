//! The `log` feature: the library's error reports go through `log::error!` (target `gevent`).
#![cfg(feature = "log")]

use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::{Builder, Timeout};

/// The records logged so far by every test of this binary: (level, target, message).
static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let entry = (record.level(), record.target().to_owned(), record.args().to_string());
        RECORDS.lock().unwrap().push(entry);
    }

    fn flush(&self) {}
}

fn capture() {
    static CAPTURE: Capture = Capture;
    // The first test to get here installs it; the others find it installed.
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
}

/// The records whose message contains `needle` (tests run in parallel and share the logger).
fn records_with(needle: &str) -> Vec<(log::Level, String, String)> {
    RECORDS.lock().unwrap().iter().filter(|(_, _, m)| m.contains(needle)).cloned().collect()
}

#[test]
fn a_greenlets_panic_is_logged_once_as_an_error_naming_it() {
    capture();
    let site = gevent::run(|| {
        let g = Builder::new().name("log-test-panicker").spawn(|| panic!("log test panic"));
        assert!(g.join().is_ok());
        g.spawned_at()
    });
    let records = records_with("'log-test-panicker'");
    assert_eq!(records.len(), 1, "{records:?}");
    let (level, target, message) = &records[0];
    assert_eq!((*level, target.as_str()), (log::Level::Error, "gevent"));
    assert!(message.contains("panicked at"), "{message}");
    assert!(message.contains("log test panic"), "{message}");
    assert!(message.contains(&site.to_string()), "{message} lacks {site}");
}

#[test]
fn a_failing_server_handler_is_logged_as_an_error() {
    capture();
    gevent::run(|| {
        let handler = |_: TcpStream, _| -> io::Result<()> {
            Err(io::Error::other("log test handler failure"))
        };
        let server = StreamServer::new(TcpListener::bind("127.0.0.1:0").unwrap(), handler);
        let addr = server.local_addr().unwrap();
        server.start().unwrap();
        let _bound = Timeout::start(Duration::from_secs(10));
        let mut client = TcpStream::connect(addr).unwrap();
        // The handler returned (and was reported) once its end of the connection is closed.
        assert_eq!(client.read_to_end(&mut Vec::new()).unwrap(), 0);
        server.stop(Duration::ZERO);
    });
    let records = records_with("log test handler failure");
    assert_eq!(records.len(), 1, "{records:?}");
    let (level, target, message) = &records[0];
    assert_eq!((*level, target.as_str()), (log::Level::Error, "gevent"));
    assert!(message.contains("failed serving"), "{message}");
}
