//! The blocking detector at work: a greenlet named "blocker" holds the thread with
//! `std::thread::sleep` (a thread-blocking call, where `gevent::sleep` would have switched),
//! while another greenlet tries to tick every 20 ms. The monitor thread notices the hub has not
//! switched for longer than its budget (100 ms here), and prints, from its own thread, which
//! greenlet runs, where it was spawned and its stack; once the hub runs again, the same episode
//! arrives on the hub's thread as `Event::BlockingDetected`. Then a small server mid-request
//! and the hub's greenlet tree: who spawned whom, what each waits on, how deep its stack went.
//!
//! Run with `cargo run -p gevent-examples --example monitor`. The monitor is on by default in
//! debug builds (`GEVENT_MONITOR_THREAD`); this example turns it on in code, so that release
//! builds show it too.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use gevent::config::Config;
use gevent::event::Event as Flag;
use gevent::events::{self, Event};
use gevent::net::{TcpListener, TcpStream};
use gevent::server::StreamServer;
use gevent::{Builder, monitor, sleep, spawn};

/// Holds the thread without switching, as a `std` socket read or a long computation would.
#[inline(never)]
fn blocker_function() {
    std::thread::sleep(Duration::from_millis(300));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    Config::builder()
        .monitor(true)
        .max_blocking_time(Duration::from_millis(100))
        .build()?
        .install()?;
    let start = Instant::now();
    let say = move |what: &str| println!("[{:>4} ms] {what}", start.elapsed().as_millis());

    // Without a hook the monitor prints its reports on stderr itself; this one prints them the
    // same way and tells `main`, which waits for the report before it exits (symbolizing the
    // stack takes the monitor a moment in debug builds).
    let (reported, report_arrived) = mpsc::channel();
    let reported = Mutex::new(reported);
    monitor::set_report_hook(move |report: &monitor::BlockingReport| {
        eprintln!("{report}");
        let _ = reported.lock().unwrap().send(report.greenlet.id);
    });

    gevent::run(|| {
        // The report as the hub's own thread gets it, once the hub runs again.
        let detected = Rc::new(RefCell::new(None));
        let seen = detected.clone();
        let subscription = events::subscribe(move |event| {
            if let Event::BlockingDetected { name, spawned_at, blocked_for, .. } = event {
                *seen.borrow_mut() = Some(format!(
                    "BlockingDetected on the hub's thread: '{name}' (spawned at {spawned_at}) \
                     blocked it for {blocked_for:?}"
                ));
            }
        });

        let ticker = spawn(move || -> gevent::Result<()> {
            let mut last = Instant::now();
            loop {
                sleep(Duration::from_millis(20))?;
                let gap = last.elapsed();
                last = Instant::now();
                if gap > Duration::from_millis(100) {
                    say(&format!("ticker: a 20 ms tick took {} ms", gap.as_millis()));
                }
            }
        });
        sleep(Duration::from_millis(50)).unwrap();
        say("blocker: std::thread::sleep(300 ms) inside a greenlet");
        let blocker = Builder::new().name("blocker").spawn(blocker_function);
        blocker.join().unwrap();
        // The monitor symbolizes the stack on its own thread (a moment in debug builds): wait
        // for its report cooperatively (a blocking `recv` would block the hub in turn).
        let deadline = Instant::now() + Duration::from_secs(30);
        let reported = loop {
            match report_arrived.try_recv() {
                Ok(id) => break Some(id),
                Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(10)).unwrap(),
                Err(_) => break None,
            }
        };
        match reported {
            Some(id) => {
                say(&format!("the monitor reported greenlet #{id} (its report is on stderr)"))
            }
            None => say("the monitor reported nothing"),
        }
        match detected.borrow_mut().take() {
            Some(line) => say(&line),
            None => say("no BlockingDetected event arrived"),
        }
        events::unsubscribe(subscription);
        let _ = ticker.kill();

        // What every greenlet of the hub is doing, parent -> child: a small server under load.
        if let Err(e) = tree_of_a_server_under_load() {
            say(&format!("the server scene failed: {e}"));
        }
    });
    say("done");
    Ok(())
}

/// Prints the hub's greenlet tree while a server is mid-request: three handlers have read half
/// a request each and wait for the rest (parked on their sockets), three clients wait for a
/// signal to send it.
fn tree_of_a_server_under_load() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mid_request = Rc::new(Cell::new(0));
    let all_mid_request = Rc::new(Flag::new());
    let (mid, all_mid) = (mid_request.clone(), all_mid_request.clone());
    let server = StreamServer::new(listener, move |mut stream: TcpStream, _peer| {
        let mut request = [0u8; 64];
        let n = stream.read(&mut request)?; // the first half of the request
        mid.set(mid.get() + 1);
        if mid.get() == 3 {
            all_mid.set();
        }
        stream.read_exact(&mut request[n..n + 1])?; // parks here: its socket to be readable
        stream.write_all(b"done\n")
    });
    server.start()?;
    let all_sent = Rc::new(Flag::new());
    let clients: Vec<_> = (0..3)
        .map(|i| {
            let all_sent = all_sent.clone();
            Builder::new().name(format!("client {i}")).spawn(move || -> io::Result<String> {
                let mut stream = TcpStream::connect(addr)?;
                stream.write_all(b"GET /slow")?; // half a request
                all_sent.wait()?;
                stream.write_all(b"\n")?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            })
        })
        .collect();
    all_mid_request.wait()?; // every handler has read its first half
    println!("--- the hub's greenlets, the server mid-request ---");
    print!("{}", gevent::debug::GreenletTree::current_hub());
    all_sent.set();
    for client in clients {
        client.take().map_err(io::Error::other)??;
    }
    server.stop(Duration::from_secs(1));
    Ok(())
}
