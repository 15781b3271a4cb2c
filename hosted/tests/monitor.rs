//! The blocking detector and the memory monitor (`gevent::monitor`). The monitor is the
//! process's, configured once: every scenario runs in a child process (this test binary,
//! running the ignored test `child` with `GEVENT_MONITOR_CHILD` naming the scenario).

mod common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gevent::config::Config;
use gevent::events::{self, Event};
use gevent::{Builder, sleep};

const CHILD_ENV: &str = "GEVENT_MONITOR_CHILD";

/// What the child says on stdout to the parent, marked so the harness's own lines are ignored.
const MARK: &str = "@@ ";

/// How long a scenario may take before its test fails.
const BACKSTOP: Duration = Duration::from_secs(60);

/// Runs `scenario` in a child and collects its output lines (stdout and stderr together,
/// stdout's marked lines without the mark) until `until` returns true for the lines so far
/// or the child exits; the child is then killed. A child that neither finishes nor satisfies
/// `until` within [`BACKSTOP`] fails the test. The child's stdin is closed once a blocking
/// report was read: that is what a blocked child waits for.
fn run_child_until(scenario: &str, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env_remove("RUST_BACKTRACE")
        .env_remove("GEVENT_MONITOR_THREAD")
        .env_remove("GEVENT_MAX_BLOCKING_TIME")
        .env_remove("GEVENT_MAX_MEMORY")
        .env_remove("GEVENT_MEMORY_MONITOR_PERIOD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (line_tx, lines) = mpsc::channel::<Option<String>>();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let tx = line_tx.clone();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(i) = line.find(MARK) {
                let _ = tx.send(Some(line[i + MARK.len()..].to_string()));
            }
        }
        let _ = tx.send(None);
    });
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = line_tx.send(Some(line));
        }
        let _ = line_tx.send(None);
    });
    let deadline = Instant::now() + BACKSTOP;
    let mut seen = Vec::new();
    let mut closed = 0;
    while closed < 2 && !until(&seen) {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some(line)) => {
                if line.contains("has not switched greenlets") {
                    drop(child.stdin.take());
                }
                seen.push(line);
            }
            Ok(None) => closed += 1,
            Err(_) => {
                let _ = child.kill();
                panic!("the child {scenario} hung; its output:\n{}", seen.join("\n"));
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

/// Runs `scenario` to its end; its output lines.
fn run_child(scenario: &str) -> Vec<String> {
    run_child_until(scenario, |_| false)
}

#[test]
fn a_blocked_hub_is_reported_with_the_greenlet_its_spawn_site_and_its_stack() {
    let lines = run_child_until("blocked", |lines| {
        lines.iter().any(|l| l.contains("blocker_function"))
            && lines.iter().any(|l| l.starts_with("event "))
    });
    let all = lines.join("\n");
    let spawned = lines.iter().find_map(|l| l.strip_prefix("spawned ")).expect(&all).to_string();
    let report = lines.iter().find(|l| l.contains("has not switched greenlets")).expect(&all);
    let site = format!("'blocker' (spawned at {spawned}");
    assert!(report.contains(&site), "{site} not in {report}");
    assert!(report.contains("greenlet #"), "{report}");
    // Symbolization is reliable in this test binary (debug info, frame not inlined); release
    // builds name the frame without its module path.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("blocker_function at ") || l.contains("monitor::blocker_function")),
        "{all}"
    );
    // The same episode on the hub's thread once it ran again, with the same spawn site.
    let event = lines.iter().find_map(|l| l.strip_prefix("event ")).expect(&all);
    assert!(event.starts_with(&format!("blocker {spawned}")), "{event}");
}

#[test]
fn a_hub_waiting_in_its_poller_is_not_blocked() {
    let lines = run_child("idle");
    let all = lines.join("\n");
    assert!(lines.iter().any(|l| l == "slept 1s, events: 0, reports: 0"), "{all}");
    assert!(!all.contains("has not switched"), "{all}");
}

#[test]
#[cfg_attr(
    gevent_asan,
    ignore = "ASan's quarantine keeps freed memory resident: RSS never falls back"
)]
fn the_memory_threshold_is_reported_once_per_crossing_as_events() {
    let lines = run_child("memory");
    let all = lines.join("\n");
    assert!(lines.iter().any(|l| l == "exceeded"), "{all}");
    assert!(lines.iter().any(|l| l == "under again"), "{all}");
    assert_eq!(all.matches("exceeds the memory monitor's threshold").count(), 1, "{all}");
}

#[test]
fn with_the_monitor_off_there_is_no_thread_no_signal_handler_and_no_report() {
    let lines = run_child("off");
    let all = lines.join("\n");
    assert!(lines.iter().any(|l| l == "monitor threads: 0, handler installed: false"), "{all}");
    assert!(!all.contains("has not switched"), "{all}");
}

#[test]
#[ignore = "run in a child process by the other tests"]
fn child() {
    let scenario = std::env::var(CHILD_ENV).unwrap_or_default();
    match scenario.as_str() {
        "blocked" => blocked(),
        "idle" => idle(),
        "memory" => memory(),
        "off" => off(),
        _ => {}
    }
}

macro_rules! say {
    ($($arg:tt)*) => { println!("{MARK}{}", format!($($arg)*)) };
}

fn install(config: gevent::config::ConfigBuilder) {
    config.build().unwrap().install().unwrap();
}

/// Holds the thread without switching until the parent has read the monitor's report (it
/// closes our stdin then): however late the monitor looks, the block is still there. The
/// read is also a raw system call the capture signal interrupts, which `SA_RESTART` resumes.
#[inline(never)]
fn blocker_function() {
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// Waits cooperatively (each wait lets the hub run) until `done`, for at most the backstop.
fn wait_for(done: impl Fn() -> bool) {
    let deadline = Instant::now() + BACKSTOP;
    while !done() && Instant::now() < deadline {
        sleep(Duration::from_millis(5)).unwrap();
    }
}

fn blocked() {
    install(Config::builder().monitor(true).max_blocking_time(Duration::from_millis(100)));
    gevent::run(|| {
        let events = Rc::new(RefCell::new(Vec::new()));
        let seen = events.clone();
        events::subscribe(move |event| {
            if let Event::BlockingDetected { name, spawned_at, blocked_for, .. } = event {
                seen.borrow_mut().push(format!("{name} {spawned_at} {blocked_for:?}"));
            }
        });
        let spawned_at = std::panic::Location::caller();
        let blocker = Builder::new().name("blocker").spawn(blocker_function);
        say!("spawned {}:{}:", spawned_at.file(), spawned_at.line() + 1);
        blocker.join().unwrap();
        wait_for(|| !events.borrow().is_empty());
        for event in events.borrow().iter() {
            say!("event {event}");
        }
        // The parent kills this child once it has read the report.
        wait_for(|| false);
    });
}

fn idle() {
    install(Config::builder().monitor(true).max_blocking_time(Duration::from_millis(100)));
    let reports = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = reports.clone();
    gevent::monitor::set_report_hook(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    gevent::run(|| {
        let events = Rc::new(RefCell::new(0));
        let seen = events.clone();
        events::subscribe(move |event| {
            if matches!(event, Event::BlockingDetected { .. }) {
                *seen.borrow_mut() += 1;
            }
        });
        let sleeper = gevent::spawn(|| sleep(Duration::from_secs(1)));
        sleeper.get().unwrap();
        // An event posted while the hub slept would have been run by now.
        gevent::yield_now().unwrap();
        say!(
            "slept 1s, events: {}, reports: {}",
            events.borrow(),
            reports.load(std::sync::atomic::Ordering::SeqCst)
        );
    });
}

/// The resident set size, as the memory monitor reads it.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn memory() {
    const EXTRA: usize = 64 << 20;
    let max = rss() + (EXTRA / 2) as u64;
    install(
        Config::builder()
            .monitor(false)
            .max_memory(Some(max))
            .memory_monitor_period(Duration::from_millis(10)),
    );
    gevent::run(|| {
        let events = Rc::new(RefCell::new(Vec::new()));
        let seen = events.clone();
        events::subscribe(move |event| match event {
            Event::MemoryThresholdExceeded { max: m, .. } if *m == max => {
                seen.borrow_mut().push("exceeded")
            }
            Event::MemoryUsageUnderThreshold { max: m, .. } if *m == max => {
                seen.borrow_mut().push("under again")
            }
            _ => {}
        });
        let mut hog = vec![1u8; EXTRA];
        std::hint::black_box(&mut hog);
        wait_for(|| !events.borrow().is_empty());
        drop(hog); // a large allocation goes back to the system at once
        wait_for(|| events.borrow().len() >= 2);
        for event in events.borrow().iter() {
            say!("{event}");
        }
    });
}

#[allow(unsafe_code)] // reading a signal disposition
fn off() {
    install(Config::builder().monitor(false).max_memory(None));
    gevent::run(|| {
        // Blocked well past the default budget: a monitor would report it.
        let blocker = gevent::spawn(|| std::thread::sleep(Duration::from_millis(400)));
        blocker.join().unwrap();
        sleep(Duration::from_millis(50)).unwrap();
    });
    let threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "gevent-monitor")
        })
        .count();
    // SAFETY: a zeroed `sigaction` is a valid value to read the disposition into, and a null
    // new action only reads.
    let installed = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(*gevent::monitor::BACKTRACE_SIGNAL, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction != libc::SIG_DFL
    };
    say!("monitor threads: {threads}, handler installed: {installed}");
}
