//! gevent for Rust at work: ten thousand greenlets on timers, a `Timeout`, a kill, a
//! `joinall` with a timeout, an echo server with 300 concurrent clients on loopback, an HTTP
//! server and keep-alive client on loopback, and a deadlock explained instead of hung.
//!
//! Run with `cargo run --release -p gevent-examples --example demo`.
#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::http::{Body, Client, Response, Server};
use gevent::net::{TcpListener, TcpStream};
use gevent::{Builder, Interrupted, JoinAll, Timeout, current, sleep, spawn, with_timeout};

const MS: Duration = Duration::from_millis(1);

fn main() -> Result<(), Interrupted> {
    let start = Instant::now();
    let t = move || start.elapsed().as_secs_f64() * 1000.0;

    // 1. Ten thousand greenlets, each sleeping 1..=100 ms: they all wait at once, so the whole
    //    batch takes a little over 100 ms (plus a fresh stack for each of the 10,000 greenlets
    //    alive at once), not the 505 seconds of sleeping one after another.
    const N: u64 = 10_000;
    let woke = Rc::new(RefCell::new(Vec::with_capacity(N as usize)));
    let sleepers: Vec<_> = (0..N)
        .map(|i| {
            let woke = woke.clone();
            let nap = Duration::from_millis(1 + (i * 7919) % 100);
            spawn(move || {
                sleep(nap)?;
                woke.borrow_mut().push(nap);
                Ok::<_, Interrupted>(())
            })
        })
        .collect();
    println!("[{:7.1} ms] spawned {N} greenlets sleeping 1-100 ms each", t());
    sleep(50 * MS)?;
    println!("[{:7.1} ms] halfway: {} of them woke so far", t(), woke.borrow().len());
    gevent::joinall(&sleepers)?;
    let total: Duration = woke.borrow().iter().sum();
    println!(
        "[{:7.1} ms] all {} woke: {:.0} s of sleeping in total, overlapped on one thread",
        t(),
        woke.borrow().len(),
        total.as_secs_f64()
    );

    // 2. A Timeout bounds a slow operation: the 2 s "download" gives up after 150 ms.
    let download = Builder::new().name("download").spawn(|| {
        sleep(Duration::from_secs(2))?;
        Ok::<_, Interrupted>("payload")
    });
    let timeout = Timeout::start(150 * MS);
    match download.join() {
        Err(e) if timeout.is(&e) => {
            println!("[{:7.1} ms] Timeout: waiting for the download gave up: {e}", t())
        }
        other => println!("[{:7.1} ms] unexpected: {other:?}", t()),
    }
    drop(timeout);

    // 3. Kill: the download is killed while it sleeps; its sleep returns `Killed`, so `?` ends
    //    it and its destructors run; get() reports it killed.
    download.kill()?;
    println!("[{:7.1} ms] kill: {}", t(), download.get().unwrap_err());

    // 4. with_timeout and joinall with a timeout: who finished within 50 ms?
    let racers: Vec<_> = [20u32, 80, 40, 120]
        .into_iter()
        .map(|ms| Builder::new().name(format!("racer-{ms}ms")).spawn(move || sleep(ms * MS)))
        .collect();
    let done = JoinAll::new(&racers).timeout(50 * MS).wait().expect("no racer fails");
    let names: Vec<_> = done.iter().map(|&i| racers[i].name().into_owned()).collect();
    println!("[{:7.1} ms] joinall(timeout=50ms): finished in time: {names:?}", t());
    let late = with_timeout(10 * MS, || racers[3].join());
    println!("[{:7.1} ms] with_timeout(10ms, join racer-120ms): {late:?}", t());
    gevent::killall(&racers)?;

    // 5. A pool of 4 workers and a queue: 20 jobs of 25 ms each take 125 ms, not 500 ms.
    let pool = gevent::pool::Pool::new(4);
    let results = Rc::new(gevent::queue::Queue::new());
    let started = t();
    for job in 0..20u32 {
        let results = results.clone();
        pool.spawn(move || -> Result<(), Interrupted> {
            sleep(25 * MS)?;
            let _ = results.try_put(job * job); // an open, unbounded queue takes every item
            Ok(())
        })?;
    }
    pool.join()?;
    results.close();
    let sum = results.iter().sum::<Result<u32, _>>()?;
    println!(
        "[{:7.1} ms] pool of 4: 20 jobs of 25 ms done in {:.0} ms, sum of squares {sum}",
        t(),
        t() - started
    );

    // 6. Real network work: an echo server and 300 clients on loopback, all in this thread,
    //    each client making 100 round trips over its own connection while the others do too.
    let round_trips = echo_on_loopback(300, 100);
    println!(
        "[{:7.1} ms] loopback: 300 clients made {} echo round trips in {:.0} ms ({:.0} per second)",
        t(),
        round_trips.count,
        round_trips.took.as_secs_f64() * 1000.0,
        round_trips.count as f64 / round_trips.took.as_secs_f64()
    );

    // 7. HTTP: a server on loopback, a greenlet per connection, and 50 greenlets sharing one
    //    keep-alive Client, each making 8 requests one after another over its connection.
    let requests = http_on_loopback(50, 8);
    println!(
        "[{:7.1} ms] http: 50 greenlets made {} keep-alive requests ({} answered 200) in {:.0} ms \
         ({:.0} per second)",
        t(),
        requests.count,
        requests.ok,
        requests.took.as_secs_f64() * 1000.0,
        requests.count as f64 / requests.took.as_secs_f64()
    );

    // 8. A deadlock is explained, not hung: a greenlet waits for main while main waits for it.
    let main = current();
    let stuck = Builder::new().name("waits-for-main").spawn(move || main.join());
    match stuck.join() {
        Err(Interrupted::LoopExit(report)) => println!("[{:7.1} ms] LoopExit: {report}", t()),
        other => println!("[{:7.1} ms] unexpected: {other:?}", t()),
    }
    stuck.kill()?;
    println!("[{:7.1} ms] done", t());
    Ok(())
}

/// How many echo round trips the loopback scene made, and how long they took.
struct RoundTrips {
    count: usize,
    took: Duration,
}

/// Runs an echo server (a greenlet per connection) and `clients` clients, each making `rounds`
/// round trips; every socket call that would block switches to another greenlet.
fn echo_on_loopback(clients: usize, rounds: usize) -> RoundTrips {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let addr = listener.local_addr().expect("the listener's address");
    let server = spawn(move || {
        while let Ok((mut stream, _)) = listener.accept() {
            spawn(move || {
                let mut buf = [0; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    // At most 100 connections wait to be accepted at a time: past a listen backlog of 128
    // (std's too), the kernel drops new connections' SYNs and those clients would retry a
    // second later. A connection is accepted once its first echo is back.
    let connecting = Rc::new(gevent::lock::Semaphore::new(100));
    let start = Instant::now();
    let clients: Vec<_> = (0..clients)
        .map(|i| {
            let connecting = connecting.clone();
            spawn(move || -> Result<usize, Interrupted> {
                let permit = connecting.acquire()?;
                let mut stream = TcpStream::connect(addr).expect("a loopback connection");
                let msg = format!("ping {i:03}");
                let mut echo = [0; 8];
                let mut round_trip = || {
                    stream.write_all(msg.as_bytes()).expect("a write on loopback");
                    stream.read_exact(&mut echo).expect("an echo on loopback");
                    assert_eq!(&echo, msg.as_bytes());
                };
                round_trip();
                drop(permit);
                (1..rounds).for_each(|_| round_trip());
                Ok(rounds)
            })
        })
        .collect();
    let mut count = 0;
    for client in &clients {
        count += client.get().expect("a loopback client failed");
    }
    let took = start.elapsed();
    // The server would wait for connections forever; its kill ends the accept.
    server.kill().expect("the main greenlet is not killed");
    RoundTrips { count, took }
}

/// How many HTTP requests the HTTP scene made, how many were answered 200, and how long they
/// took.
struct Requests {
    count: usize,
    ok: usize,
    took: Duration,
}

/// Runs an HTTP server and `clients` greenlets, each making `each` GET requests through one
/// shared `Client`, whose pool keeps their connections alive from one request to the next.
fn http_on_loopback(clients: usize, each: usize) -> Requests {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let server = Server::new(listener, |request| {
        Response::new(Body::from(format!("Hello, {}!", request.uri().path())))
    });
    let base = format!("http://{}", server.local_addr().expect("the listener's address"));
    server.start().expect("the server starts");
    let client = Client::builder().max_idle_per_host(clients).build();
    let start = Instant::now();
    let greenlets: Vec<_> = (0..clients)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            spawn(move || {
                let mut ok = 0;
                for j in 0..each {
                    let response = client.get(&format!("{base}/{i}/{j}")).expect("an answer");
                    let status = response.status();
                    let body = response.into_body().into_string().expect("a body");
                    assert_eq!(body, format!("Hello, /{i}/{j}!"));
                    ok += usize::from(status == 200);
                }
                ok
            })
        })
        .collect();
    let ok = greenlets.iter().map(|g| g.get().expect("an HTTP client failed")).sum();
    let took = start.elapsed();
    server.stop(Duration::from_secs(1));
    Requests { count: clients * each, ok, took }
}
