//! The workloads of `shared/anchors/README.md` on gevent for Rust, with the anchors' command
//! line, so that `run.sh` can run it as `IMPL_CMD`:
//!
//! ```text
//! gevent-bench switch|spawn|idle|queue     prints `bench=... impl=gevent-rs metric=... value=...`
//! gevent-bench echo PORT                   serves on 127.0.0.1:PORT until killed
//! gevent-bench tls_echo PORT               the same over TLS 1.3 (also the tls_handshake server)
//! gevent-bench http PORT                   serves HTTP/1.1 `Hello, World!` on 127.0.0.1:PORT
//! gevent-bench dns_qps                     native resolver queries per second against dnsmasq
//! gevent-bench monitor_overhead            ours only: switch with the blocking monitor off and on
//! gevent-bench group_spawn                 ours only: spawning into a Group against plain spawns
//! gevent-bench idle_conns                  ours only: memory per idle connection (10,000 of them)
//! gevent-bench http_conns                  ours only: memory per keep-alive HTTP connection (10,000)
//! ```
//!
//! Everything runs on one thread and one hub, inside the main greenlet.
#![allow(clippy::print_stdout)]

mod conns;
mod dns;
mod echo;
mod http;
mod monitor;
mod tls;

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gevent::event::Event;
use gevent::pool::Group;
use gevent::queue::Queue;
use gevent::{spawn, yield_now};

const IMPL: &str = "gevent-rs";

pub(crate) fn report(bench: &str, metric: &str, value: f64) {
    println!("bench={bench} impl={IMPL} metric={metric} value={value:.1}");
}

/// Resident set size (VmRSS), in bytes.
pub(crate) fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number");
    kib * 1024
}

/// Two greenlets each yield 1,000,000 times.
fn switch() {
    const N: u64 = 1_000_000;
    let t = Instant::now();
    let a = spawn(|| {
        for _ in 0..N {
            yield_now().unwrap();
        }
    });
    let b = spawn(|| {
        for _ in 0..N {
            yield_now().unwrap();
        }
    });
    a.join().unwrap();
    b.join().unwrap();
    report("switch", "ns_per_switch", t.elapsed().as_nanos() as f64 / (2 * N) as f64);
}

/// Spawn 100,000 greenlets returning their index, join each in spawn order, sum the results.
fn spawn_join() {
    const N: u64 = 100_000;
    let t = Instant::now();
    let handles: Vec<_> = (0..N).map(|i| spawn(move || i)).collect();
    let sum: u64 = handles.iter().map(|h| h.get().unwrap()).sum();
    let ns = t.elapsed().as_nanos() as f64;
    assert_eq!(sum, N * (N - 1) / 2);
    report("spawn", "ns_per_spawn_join", ns / N as f64);
}

/// 100,000 greenlets park on one shared Event; RSS delta while parked, then the time to wake
/// and join them all.
fn idle() {
    const N: usize = 100_000;
    let event = Rc::new(Event::new());
    let parked = Rc::new(Cell::new(0usize));
    let rss0 = rss_bytes();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let (event, parked) = (event.clone(), parked.clone());
            spawn(move || {
                parked.set(parked.get() + 1);
                event.wait().unwrap();
            })
        })
        .collect();
    while parked.get() < N {
        yield_now().unwrap();
    }
    let rss1 = rss_bytes();
    let t = Instant::now();
    event.set();
    for h in &handles {
        h.join().unwrap();
    }
    let ns = t.elapsed().as_nanos() as f64;
    if let Some(e) = handles.iter().find_map(|h| h.error()) {
        panic!("a parked greenlet failed: {e}");
    }
    report("idle", "bytes_per_idle", (rss1 as f64 - rss0 as f64) / N as f64);
    report("idle", "ns_per_wakeup", ns / N as f64);
}

/// A producer puts 0..1,000,000 into a bounded queue of capacity 100; a consumer gets and
/// sums them.
fn queue() {
    const N: u64 = 1_000_000;
    let t = Instant::now();
    let queue = Rc::new(Queue::bounded(100));
    let q = queue.clone();
    let producer = spawn(move || {
        for i in 0..N {
            q.put(i).unwrap();
        }
    });
    let consumer = spawn(move || {
        let mut sum = 0;
        for _ in 0..N {
            sum += queue.get().unwrap();
        }
        sum
    });
    producer.join().unwrap();
    let sum = consumer.get().unwrap();
    let ns = t.elapsed().as_nanos() as f64;
    assert_eq!(sum, N * (N - 1) / 2);
    report("queue", "ns_per_item", ns / N as f64);
}

/// Not an anchor workload: 100,000 greenlets spawned into a `Group` and joined through it,
/// against 100,000 plain spawns joined one by one (the spawn workload), in alternating rounds on
/// the same warm hub; the median round of each, and their ratio in percent.
fn group_spawn() {
    const N: u64 = 100_000;
    const ROUNDS: usize = 5;
    let plain = || {
        let t = Instant::now();
        let handles: Vec<_> = (0..N).map(|i| spawn(move || i)).collect();
        let sum: u64 = handles.iter().map(|h| h.get().unwrap()).sum();
        let elapsed = t.elapsed();
        assert_eq!(sum, N * (N - 1) / 2);
        elapsed
    };
    let grouped = || {
        let group = Group::new();
        let t = Instant::now();
        let handles: Vec<_> = (0..N).map(|i| group.spawn(move || i)).collect();
        group.join().unwrap();
        let sum: u64 = handles.iter().map(|h| h.get().unwrap()).sum();
        let elapsed = t.elapsed();
        assert_eq!(sum, N * (N - 1) / 2);
        assert!(group.is_empty(), "finished members left the group");
        elapsed
    };
    plain(); // warms the stack pool and the allocator
    let mut plain_times = Vec::new();
    let mut group_times = Vec::new();
    for _ in 0..ROUNDS {
        plain_times.push(plain());
        group_times.push(grouped());
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_nanos() as f64
    };
    let (plain_ns, group_ns) = (median(&mut plain_times), median(&mut group_times));
    report("group_spawn", "ns_per_plain_spawn_join", plain_ns / N as f64);
    report("group_spawn", "ns_per_group_spawn_join", group_ns / N as f64);
    report("group_spawn", "group_to_plain_percent", 100.0 * group_ns / plain_ns);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("switch") => switch(),
        Some("spawn") => spawn_join(),
        Some("idle") => idle(),
        Some("queue") => queue(),
        Some("group_spawn") => group_spawn(),
        Some("monitor_overhead") => return monitor::monitor_overhead(),
        Some("idle_conns") => return echo::idle_conns(),
        Some("idle_conns_client") if args.len() == 4 => {
            return echo::idle_conns_client(&args[2], &args[3]);
        }
        Some("echo") if args.len() == 3 => match args[2].parse() {
            Ok(port) => return echo::serve(port),
            Err(e) => {
                eprintln!("gevent-bench: echo: bad port '{}': {e}", args[2]);
                return ExitCode::from(2);
            }
        },
        Some("tls_echo") if args.len() == 3 => match args[2].parse() {
            Ok(port) => return tls::serve(port),
            Err(e) => {
                eprintln!("gevent-bench: tls_echo: bad port '{}': {e}", args[2]);
                return ExitCode::from(2);
            }
        },
        Some("dns_qps") => return dns::qps(),
        Some("http") if args.len() == 3 => match args[2].parse() {
            Ok(port) => return http::serve(port),
            Err(e) => {
                eprintln!("gevent-bench: http: bad port '{}': {e}", args[2]);
                return ExitCode::from(2);
            }
        },
        Some("http_conns") => return http::http_conns(),
        Some("http_conns_client") if args.len() == 4 => {
            return http::http_conns_client(&args[2], &args[3]);
        }
        _ => {
            eprintln!(
                "usage: gevent-bench switch|spawn|idle|queue|group_spawn|monitor_overhead|idle_conns|http_conns|\
                 dns_qps | gevent-bench echo|tls_echo|http PORT"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
