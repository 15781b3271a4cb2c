//! gevent's `concurrent_download.py`: several URLs fetched at once by greenlets of a `Pool`,
//! the whole bounded by a `Timeout`.
//!
//! ```sh
//! cargo run -p gevent-examples --example concurrent_download
//! ```
//!
//! The example starts its own HTTP server on loopback, a `gevent::http::Server` in a greenlet
//! whose handler sleeps a little for each path (and very long for `/slow`), then fetches eight
//! URLs with `gevent::http::Client` from a pool of three greenlets, all within two seconds. It
//! prints each URL's status and size, the one cut by the timeout, the totals, and the most
//! requests the server held at once: the pool's size, since no fetch blocks the thread.
//!
//! So that the count does not depend on timing, the server holds its first answers until the
//! pool's three requests have all arrived (for at most a few seconds).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::event::Event;
use gevent::http::{Body, Client, Response, Server, StatusCode};
use gevent::net::TcpListener;
use gevent::pool::Pool;
use gevent::{Interrupted, Timeout};

/// How many downloads run at once.
const POOL_SIZE: usize = 3;
/// How long all the downloads may take together.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(2);
/// The paths fetched: `/file/N` is N KiB served after N × 10 ms; `/slow` takes far longer
/// than the timeout.
const PATHS: [&str; 8] =
    ["/slow", "/file/1", "/file/2", "/file/3", "/file/4", "/file/5", "/file/6", "/file/7"];

/// What the server saw: requests in flight now and at most, and the gate that holds answers
/// until the pool is full.
#[derive(Default)]
struct Load {
    in_flight: Cell<usize>,
    most: Cell<usize>,
    pool_full: Event,
}

fn main() -> ExitCode {
    gevent::run(|| match download_all() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("concurrent_download: {e}");
            ExitCode::FAILURE
        }
    })
}

fn download_all() -> std::io::Result<()> {
    let load = Rc::new(Load::default());
    let server = Server::new(TcpListener::bind("127.0.0.1:0")?, {
        let load = load.clone();
        move |request| serve(&load, request.uri().path())
    });
    let base = format!("http://{}", server.local_addr()?);
    server.start()?;

    let client = Client::new();
    let pool = Pool::new(POOL_SIZE);
    let results: Rc<RefCell<Vec<Option<Fetched>>>> =
        Rc::new(RefCell::new(PATHS.iter().map(|_| None).collect()));
    let start = Instant::now();
    let timeout = Timeout::start(TOTAL_TIMEOUT);
    let fetched = (|| -> Result<(), Interrupted> {
        for (i, path) in PATHS.into_iter().enumerate() {
            let (client, results, url) = (client.clone(), results.clone(), format!("{base}{path}"));
            // Waits while the pool is full: at most POOL_SIZE downloads run at once.
            pool.spawn(move || results.borrow_mut()[i] = Some(fetch(&client, &url)))?;
        }
        pool.join()
    })();
    match fetched {
        Ok(()) => {}
        Err(e) if timeout.is(&e) => pool.kill()?,
        Err(e) => return Err(e.into()),
    }
    drop(timeout);
    let took = start.elapsed();

    let mut done = 0;
    let mut bytes = 0;
    for (path, outcome) in PATHS.iter().zip(results.borrow().iter()) {
        match outcome {
            Some(Ok((status, size))) => {
                done += 1;
                bytes += size;
                println!("{base}{path}: {status}, {size} bytes");
            }
            // A download still running at the timeout was killed with the pool.
            Some(Err(e)) if Interrupted::try_from(e).is_err() => {
                println!("{base}{path}: failed: {e}")
            }
            Some(Err(_)) | None => println!("{base}{path}: cut by the {TOTAL_TIMEOUT:?} timeout"),
        }
    }
    println!(
        "fetched {done} of {} URLs ({bytes} bytes) in {:.0} ms with a pool of {POOL_SIZE}",
        PATHS.len(),
        took.as_secs_f64() * 1000.0
    );
    println!("most requests in flight at once: {}", load.most.get());
    server.stop(Duration::from_millis(100));
    Ok(())
}

/// A URL's status and the size of its body.
type Fetched = std::io::Result<(StatusCode, usize)>;

/// Fetches `url`.
fn fetch(client: &Client, url: &str) -> Fetched {
    let response = client.get(url)?;
    let status = response.status();
    let mut body = Vec::new();
    response.into_body().read_to_end(&mut body)?;
    Ok((status, body.len()))
}

/// The server's handler: counts the request in flight, waits for the gate, sleeps as long as
/// the path says, and answers.
fn serve(load: &Load, path: &str) -> Response<Body> {
    load.in_flight.set(load.in_flight.get() + 1);
    load.most.set(load.most.get().max(load.in_flight.get()));
    if load.in_flight.get() == POOL_SIZE {
        load.pool_full.set();
    }
    let answer = (|| -> Result<Response<Body>, Interrupted> {
        load.pool_full.wait_timeout(Duration::from_secs(5))?;
        let kib = match path.strip_prefix("/file/").and_then(|n| n.parse::<u64>().ok()) {
            Some(kib) => kib,
            None if path == "/slow" => {
                gevent::sleep(Duration::from_secs(60))?;
                1
            }
            None => {
                let mut response = Response::new(Body::from("Not Found\n"));
                *response.status_mut() = StatusCode::NOT_FOUND;
                return Ok(response);
            }
        };
        gevent::sleep(Duration::from_millis(10 * kib))?;
        Ok(Response::new(Body::from(vec![b'x'; 1024 * kib as usize])))
    })();
    load.in_flight.set(load.in_flight.get() - 1);
    // The server kills the handler of `/slow` as it stops: the connection just closes.
    answer.unwrap_or_else(|_| Response::new(Body::empty()))
}
