//! The seed's example, gevent's `dns_lookup`: one greenlet per host name, each calling
//! `gethostbyname`, all joined with a 2 s timeout. The lookups overlap: the total time is
//! about the slowest one's, not their sum.
//!
//! ```sh
//! cargo run -p gevent-examples --example dns_lookup                    # localhost and /etc/hosts names
//! cargo run -p gevent-examples --example dns_lookup -- example.com     # and more names
//! GEVENT_RESOLVER=native cargo run -p gevent-examples --example dns_lookup
//! ```
//!
//! It works offline: `localhost` and the names of `/etc/hosts` resolve without a network.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gevent::{JoinAll, dns, spawn};

/// `localhost`, then up to three other names `/etc/hosts` gives an IPv4 address.
fn offline_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let listed = hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .map(str::split_whitespace)
        .filter_map(|mut words| {
            let ip = words.next()?;
            ip.parse::<std::net::Ipv4Addr>().is_ok().then_some(words)
        })
        .flatten()
        .map(str::to_owned);
    for name in listed {
        if names.len() == 4 {
            break;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn main() -> ExitCode {
    gevent::run(|| {
        let mut names = offline_names();
        names.extend(std::env::args().skip(1));
        let started = Instant::now();
        let jobs: Vec<_> = names
            .iter()
            .map(|name| {
                let name = name.clone();
                spawn(move || {
                    let answer = dns::gethostbyname(&name);
                    (answer, started.elapsed())
                })
            })
            .collect();
        let finished = match JoinAll::new(&jobs).timeout(Duration::from_secs(2)).wait() {
            Ok(finished) => finished,
            Err(e) => {
                eprintln!("joinall failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut failed = false;
        for (i, (name, job)) in names.iter().zip(&jobs).enumerate() {
            if !finished.contains(&i) {
                println!("{name}: no answer within 2 s");
                failed = true;
                continue;
            }
            match job.take() {
                Ok((Ok(ip), after)) => println!("{name}: {ip} (after {after:.1?})"),
                Ok((Err(e), after)) => {
                    println!("{name}: {e} (after {after:.1?})");
                    failed = true;
                }
                Err(e) => {
                    println!("{name}: {e}");
                    failed = true;
                }
            }
        }
        let _ = gevent::killall(&jobs);
        println!("{} lookups in {:.1?}", names.len(), started.elapsed());
        if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    })
}
