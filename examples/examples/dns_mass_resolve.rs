//! gevent's `dns_mass_resolve`: many names resolved at once, one greenlet each, with timings.
//!
//! ```sh
//! cargo run --release -p gevent-examples --example dns_mass_resolve                  # 100 lookups of offline names, system resolver
//! cargo run --release -p gevent-examples --example dns_mass_resolve -- --count 1000 example.com python.org
//! cargo run --release -p gevent-examples --example dns_mass_resolve -- \
//!     --nameserver 127.0.0.1:5353 --domain many.test --count 500   # n0.many.test ... on a local DNS server
//! ```
//!
//! Names: those given, else `n<i>.<domain>` with `--domain`, else `localhost` and the names of
//! `/etc/hosts`; cycled through `--count` lookups (default 100). With `--nameserver`
//! (repeatable) the native resolver asks those servers; otherwise the hub's resolver is the
//! one `GEVENT_RESOLVER` names (the system's by default). `--timeout SECS` bounds the run
//! (default 10).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use gevent::dns::{self, NativeResolver};
use gevent::{JoinAll, spawn};

struct Options {
    nameservers: Vec<SocketAddr>,
    domain: Option<String>,
    count: usize,
    timeout: Duration,
    names: Vec<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        nameservers: Vec::new(),
        domain: None,
        count: 100,
        timeout: Duration::from_secs(10),
        names: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{arg} needs {what}"));
        match arg.as_str() {
            "--nameserver" => {
                let text = value("an ip:port")?;
                let addr = text.parse().map_err(|_| format!("{text:?} is not an ip:port"))?;
                options.nameservers.push(addr);
            }
            "--domain" => options.domain = Some(value("a domain")?),
            "--count" => {
                let text = value("a number")?;
                options.count = text.parse().map_err(|_| format!("{text:?} is not a count"))?;
            }
            "--timeout" => {
                let text = value("seconds")?;
                let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not seconds"))?;
                options.timeout = Duration::try_from_secs_f64(secs)
                    .map_err(|_| format!("{text:?} is not a duration"))?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            name => options.names.push(name.to_owned()),
        }
    }
    Ok(options)
}

/// The names of the run, `count` of them.
fn names(options: &Options) -> Vec<String> {
    if let Some(domain) = &options.domain {
        return (0..options.count).map(|i| format!("n{i}.{domain}")).collect();
    }
    let mut pool = options.names.clone();
    if pool.is_empty() {
        pool.push("localhost".to_owned());
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for line in hosts.lines().map(|line| line.split('#').next().unwrap_or("")) {
            pool.extend(line.split_whitespace().skip(1).map(str::to_owned));
        }
        pool.dedup();
    }
    pool.iter().cycle().take(options.count).cloned().collect()
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("dns_mass_resolve: {why}");
            return ExitCode::FAILURE;
        }
    };
    gevent::run(|| {
        if !options.nameservers.is_empty() {
            let mut builder = NativeResolver::builder();
            for &server in &options.nameservers {
                builder = builder.nameserver(server);
            }
            match builder.build() {
                Ok(resolver) => dns::set_resolver(resolver),
                Err(e) => {
                    eprintln!("dns_mass_resolve: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let names = names(&options);
        let started = Instant::now();
        let jobs: Vec<_> = names
            .iter()
            .map(|name| {
                let name = name.clone();
                spawn(move || {
                    let begun = Instant::now();
                    (dns::lookup_host(&name), begun.elapsed())
                })
            })
            .collect();
        let finished = JoinAll::new(&jobs).timeout(options.timeout).wait().unwrap_or_default();
        let total = started.elapsed();
        let (mut resolved, mut failed, mut slowest, mut sum) =
            (0, 0, Duration::ZERO, Duration::ZERO);
        for &i in &finished {
            match jobs[i].take() {
                Ok((Ok(_), took)) => {
                    resolved += 1;
                    slowest = slowest.max(took);
                    sum += took;
                }
                Ok((Err(e), _)) => {
                    failed += 1;
                    println!("{}: {e}", names[i]);
                }
                Err(e) => {
                    failed += 1;
                    println!("{}: {e}", names[i]);
                }
            }
        }
        let unfinished = names.len() - finished.len();
        let _ = gevent::killall(&jobs);
        println!(
            "{} lookups: {resolved} resolved, {failed} failed, {unfinished} unfinished in {total:.1?} \
             (slowest {slowest:.1?}, sum of all {sum:.1?}: they overlapped)",
            names.len()
        );
        if failed == 0 && unfinished == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    })
}
