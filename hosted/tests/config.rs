//! `gevent::config` against the real environment and the knobs' effects. The configuration is
//! the process's, fixed once: every scenario runs in a child process (this test binary,
//! running the ignored test `child` with `GEVENT_CONFIG_CHILD` naming the scenario and the
//! `GEVENT_*` variables set on it).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gevent::config::{self, Config, ConfigError, PollerKind, ResolverKind};
use gevent::dns::{self, RecordType};
use gevent::threadpool::default_pool;
use gevent::{Builder, spawn};

const CHILD_ENV: &str = "GEVENT_CONFIG_CHILD";

/// Every variable gevent reads: removed from each child's environment but for those a test
/// sets, so that the developer's own settings cannot change a result.
const VARS: &[&str] = &[
    "GEVENT_RESOLVER",
    "GEVENT_RESOLVER_NAMESERVERS",
    "GEVENT_STACK_SIZE",
    "GEVENT_MONITOR_THREAD",
    "GEVENT_MAX_BLOCKING_TIME",
    "GEVENT_MAX_MEMORY",
    "GEVENT_MEMORY_MONITOR_PERIOD",
    "GEVENT_THREADPOOL_SIZE",
    "GEVENT_LOOP",
];

/// Runs `scenario` in a child with only `vars` of gevent's variables set; returns whether it
/// succeeded, its stdout and its stderr.
fn run_child(scenario: &str, vars: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in VARS {
        command.env_remove(var);
    }
    command.envs(vars.iter().copied());
    let Output { status, stdout, stderr } =
        common::wait_or_kill(command.spawn().unwrap(), scenario);
    let (stdout, stderr) = (String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap());
    (status.success(), stdout, stderr)
}

/// What a child says: its lines marked by [`say!`], without the test harness's output
/// around them.
macro_rules! say {
    ($($arg:tt)*) => { println!("{MARK}{}", format!($($arg)*)) };
}

const MARK: &str = "@@ ";

/// The lines `stdout` holds from [`say!`].
fn said(stdout: &str) -> String {
    stdout.lines().filter_map(|line| line.find(MARK).map(|i| &line[i + MARK.len()..])).fold(
        String::new(),
        |mut all, line| {
            all.push_str(line);
            all.push('\n');
            all
        },
    )
}

/// `run_child` for a scenario that must succeed: what it [said](say!).
fn child_stdout(scenario: &str, vars: &[(&str, &str)]) -> String {
    let (ok, stdout, stderr) = run_child(scenario, vars);
    assert!(ok, "{scenario} failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    said(&stdout)
}

/// Recurses without bound, with frames that cannot be optimised away.
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 64];
    std::hint::black_box(&frame);
    if depth == u64::MAX { 0 } else { recurse(depth + 1) + std::hint::black_box(frame[3]) }
}

/// The most jobs the default pool ran at once, out of `jobs`.
fn default_pool_peak(jobs: usize) -> usize {
    #[derive(Default)]
    struct Gate {
        running: Mutex<(usize, bool)>,
        changed: Condvar,
    }
    let gate = Arc::new(Gate::default());
    let peak = Arc::new(AtomicUsize::new(0));
    let max = default_pool().max();
    let handles: Vec<_> = (0..jobs)
        .map(|_| {
            let (gate, peak) = (gate.clone(), peak.clone());
            gevent::threadpool::spawn_blocking(move || {
                let mut state = gate.running.lock().unwrap();
                state.0 += 1;
                peak.fetch_max(state.0, Ordering::Relaxed);
                // The first `max` jobs hold their threads until all of them run, then every
                // job runs freely: a pool running more than `max` at once would show a
                // peak above it, one running fewer would never let the first ones go.
                state.1 |= state.0 == max;
                gate.changed.notify_all();
                while !state.1 {
                    state = gate.changed.wait(state).unwrap();
                }
                state.0 -= 1;
            })
        })
        .collect();
    for handle in handles {
        handle.get().unwrap();
    }
    peak.load(Ordering::Relaxed)
}

/// The error a lookup of MX records gives: says which resolver answered.
fn mx_lookup_error() -> String {
    gevent::run(|| dns::lookup("config.test", RecordType::MX).unwrap_err().to_string())
}

#[test]
#[ignore = "run by the other tests in a child process"]
fn child() {
    let Ok(scenario) = std::env::var(CHILD_ENV) else { return };
    match scenario.as_str() {
        "current" => say!("{:?}", config::current()),
        "from-env" => match Config::from_env() {
            Ok(config) => say!("{config:?}"),
            Err(e) => say!("error: {e}"),
        },
        "hub" => gevent::run(|| {
            spawn(|| ()).join().unwrap(); // `run` alone starts no hub
            say!("the hub ran");
        }),
        "overflow" => gevent::run(|| {
            let _ = Builder::new().name("deep-diver").spawn(|| recurse(0)).join();
            say!("unreachable: the overflow did not end the process");
        }),
        "overflow-with-builder" => {
            Config::builder().stack_size(128 * 1024).build().unwrap().install().unwrap();
            gevent::run(|| {
                let _ = spawn(|| recurse(0)).join();
                say!("unreachable: the overflow did not end the process");
            });
        }
        "threadpool" => {
            gevent::run(|| say!("max {} peak {}", default_pool().max(), default_pool_peak(8)))
        }
        "threadpool-with-builder" => {
            Config::builder().threadpool_size(2).build().unwrap().install().unwrap();
            gevent::run(|| say!("max {} peak {}", default_pool().max(), default_pool_peak(8)));
        }
        "resolver" => say!("{}", mx_lookup_error()),
        "resolver-with-builder" => {
            let config = Config::builder().resolver(ResolverKind::Thread).build().unwrap();
            config.install().unwrap();
            say!("{}", mx_lookup_error());
        }
        "install" => {
            let config = Config::builder()
                .stack_size(96 * 1024)
                .monitor(false)
                .max_blocking_time(Duration::from_millis(30))
                .max_memory(Some(1 << 30))
                .memory_monitor_period(Duration::from_secs(2))
                .threadpool_size(7)
                .poller(PollerKind::Default)
                .build()
                .unwrap();
            config.clone().install().unwrap();
            assert_eq!(config::current(), &config);
            assert_eq!(config.clone().install(), Err(ConfigError::AlreadyInstalled));
            say!("installed {:?}", config::current());
        }
        "install-after-hub" => {
            gevent::run(|| spawn(|| ()).join().unwrap());
            let other = Config::builder().threadpool_size(99).build().unwrap();
            say!("other: {:?}", other.install());
            say!("equal: {:?}", Config::from_env().unwrap().install());
            say!("again: {:?}", Config::from_env().unwrap().install());
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn the_environment_is_read_with_defaults_for_unset_variables() {
    let vars = [
        ("GEVENT_STACK_SIZE", "1M"),
        ("GEVENT_MONITOR_THREAD", "on"),
        ("GEVENT_MAX_BLOCKING_TIME", "0.5"),
        ("GEVENT_MAX_MEMORY", "2g"),
        ("GEVENT_THREADPOOL_SIZE", "6"),
        ("GEVENT_LOOP", "default"),
    ];
    let expected = format!(
        "{:?}\n",
        Config::builder()
            .resolver(ResolverKind::Thread)
            .stack_size(1 << 20)
            .monitor(true)
            .max_blocking_time(Duration::from_millis(500))
            .max_memory(Some(2 << 30))
            .memory_monitor_period(config::DEFAULT_MEMORY_MONITOR_PERIOD)
            .threadpool_size(6)
            .poller(PollerKind::Default)
            .build()
            .unwrap()
    );
    assert_eq!(child_stdout("current", &vars), expected);
    assert_eq!(child_stdout("from-env", &vars), expected);
}

#[test]
fn from_env_returns_an_invalid_value_as_an_error() {
    let stdout = child_stdout("from-env", &[("GEVENT_THREADPOOL_SIZE", "0")]);
    assert_eq!(
        stdout,
        "error: GEVENT_THREADPOOL_SIZE=\"0\" is invalid: expected a number of threads, at least 1\n"
    );
}

#[test]
fn an_invalid_variable_stops_the_first_hub_with_its_message() {
    let (ok, stdout, stderr) = run_child("hub", &[("GEVENT_STACK_SIZE", "12x")]);
    assert!(!ok && !stdout.contains("the hub ran"), "{stdout}");
    assert!(
        stderr.contains(
            "gevent: could not start this thread's hub: GEVENT_STACK_SIZE=\"12x\" is invalid: \
             expected a size in bytes from 4096 to 1073741824, optionally with a k, m or g suffix \
             (KiB, MiB, GiB) (fix the variable, or call gevent::config::Config::from_env() at \
             start-up to handle the error)"
        ),
        "{stderr}"
    );
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn gevent_loop_refuses_kqueue_on_linux_and_takes_epoll() {
    let (ok, _, stderr) = run_child("hub", &[("GEVENT_LOOP", "kqueue")]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "GEVENT_LOOP=\"kqueue\" is invalid: expected one of this platform's pollers: \
             default, epoll"
        ),
        "{stderr}"
    );
    assert_eq!(child_stdout("hub", &[("GEVENT_LOOP", "epoll")]), "the hub ran\n");
}

#[test]
fn gevent_stack_size_is_the_stack_of_greenlets_spawned_without_one() {
    let (ok, stdout, stderr) = run_child("overflow", &[("GEVENT_STACK_SIZE", "64k")]);
    assert!(!ok && !stdout.contains("unreachable"), "{stdout}");
    assert!(stderr.contains("'deep-diver'"), "{stderr}");
    assert!(stderr.contains("overflowed its 65536-byte stack"), "{stderr}");
}

#[test]
fn a_stack_size_set_in_code_wins_over_gevent_stack_size() {
    let (ok, stdout, stderr) = run_child("overflow-with-builder", &[("GEVENT_STACK_SIZE", "64k")]);
    assert!(!ok && !stdout.contains("unreachable"), "{stdout}");
    assert!(stderr.contains("overflowed its 131072-byte stack"), "{stderr}");
}

#[test]
fn gevent_threadpool_size_bounds_the_jobs_the_default_pool_runs_at_once() {
    let stdout = child_stdout("threadpool", &[("GEVENT_THREADPOOL_SIZE", "3")]);
    assert_eq!(stdout, "max 3 peak 3\n");
    let stdout = child_stdout("threadpool-with-builder", &[("GEVENT_THREADPOOL_SIZE", "3")]);
    assert_eq!(stdout, "max 2 peak 2\n", "the builder wins");
}

/// A name server on loopback that refuses every query, until dropped.
struct RefusingServer {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
}

impl RefusingServer {
    fn start() -> RefusingServer {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                let (n, from) = socket.recv_from(&mut buf).unwrap();
                if n < 12 {
                    return; // the stop datagram
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80; // a response
                reply[3] = 5; // REFUSED
                let _ = socket.send_to(&reply, from);
            }
        });
        RefusingServer { addr, queries }
    }
}

impl Drop for RefusingServer {
    fn drop(&mut self) {
        let _ = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"stop", self.addr));
    }
}

#[test]
fn gevent_resolver_picks_the_resolver_and_its_servers() {
    let thread = child_stdout("resolver", &[("GEVENT_RESOLVER", "thread")]);
    assert!(thread.contains("the thread resolver"), "{thread}");
    assert_eq!(child_stdout("resolver", &[]), thread, "the thread resolver is the default");

    let server = RefusingServer::start();
    let servers = server.addr.to_string();
    let native = [("GEVENT_RESOLVER", "native"), ("GEVENT_RESOLVER_NAMESERVERS", &servers)];
    let stdout = child_stdout("resolver", &native);
    assert!(stdout.contains(&servers) && stdout.contains("REFUSED"), "{stdout}");
    assert!(server.queries.load(Ordering::Relaxed) > 0);

    let stdout = child_stdout("resolver-with-builder", &native);
    assert_eq!(stdout, thread, "the builder wins");
}

#[test]
fn an_installed_configuration_is_the_current_one_and_is_installed_once() {
    let stdout = child_stdout("install", &[("GEVENT_STACK_SIZE", "junk")]);
    assert!(stdout.starts_with("installed Config {"), "{stdout}");
    assert!(stdout.contains("stack_size: 98304"), "{stdout}");
    assert!(stdout.contains("threadpool_size: 7"), "{stdout}");
}

#[test]
fn installing_after_a_hub_started_needs_the_same_configuration() {
    let stdout = child_stdout("install-after-hub", &[("GEVENT_THREADPOOL_SIZE", "5")]);
    assert_eq!(stdout, "other: Err(AlreadyInUse)\nequal: Ok(())\nagain: Err(AlreadyInstalled)\n");
}
