//! The monitor thread: gevent's blocking detector and memory monitor.
//!
//! # Blocking detector
//!
//! When the [configuration](crate::config) turns it on (`GEVENT_MONITOR_THREAD`, on by default
//! in debug builds), the first hub started in the process starts one monitor thread, and every
//! hub publishes its switches in a [heartbeat](gevent_core::hub::heartbeat). The thread looks
//! every half [`max_blocking_time`](crate::config::Config::max_blocking_time); a hub that has
//! not switched greenlets for that long, and is not waiting in its poller, is reported at once:
//!
//! - on stderr (through `log::error!` with the `log` feature), naming the greenlet that runs
//!   (its id, its name when that is a `&'static str`, its spawn site), how long the hub has
//!   been blocked, and the greenlet's stack: on Linux and Android the monitor sends the hub's
//!   thread a real-time signal ([`BACKTRACE_SIGNAL`]) whose handler records the return
//!   addresses, and symbolizes them itself; or to the hook set with [`set_report_hook`]
//!   instead (and [`clear_report_hook`]);
//! - as [`Event::BlockingDetected`] on the hub's own
//!   thread, when the hub next runs (with the greenlet's name, whatever it is).
//!
//! A blocked episode is reported once, and at most [`MAX_REPORTS_PER_MINUTE`] episodes a
//! minute; those past the limit are counted and the count is said in the next report.
//!
//! The switch path of a monitored hub publishes the greenlet it switches to with a few
//! relaxed stores; an unmonitored hub tests one empty cell.
//!
//! # Memory monitor
//!
//! With [`max_memory`](crate::config::Config::max_memory) set, the thread reads the process's
//! resident set size every [`memory_monitor_period`](crate::config::Config::memory_monitor_period)
//! and, when it goes above the threshold, reports it and sends
//! [`Event::MemoryThresholdExceeded`] to every
//! hub; when it falls below again,
//! [`Event::MemoryUsageUnderThreshold`]. On
//! Linux and Android the size is the current one (`/proc/self/statm`); elsewhere the peak
//! (`getrusage`), which never falls.
//!
//! # Caveats of the stack capture
//!
//! The handler walks the stack with the system unwinder (`backtrace::trace_unsynchronized`),
//! which allocates nothing and, with glibc 2.35 or later (`_dl_find_object`), takes no lock.
//! With older C libraries it takes the loader's lock, and a hub thread interrupted while
//! holding it (inside `dlopen`, or itself unwinding) would deadlock in the handler; the monitor
//! then gives up waiting after [`CAPTURE_WAIT`] and reports without a stack. The signal is
//! installed with `SA_RESTART`, and gevent's own blocking calls retry on `EINTR`; a program
//! that makes raw system calls on a hub thread must do the same. If another library already
//! handles [`BACKTRACE_SIGNAL`], it is left alone and reports come without a stack.

mod capture;
mod memory;

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use gevent_core::HubHandle;
use gevent_core::events::Event;
use gevent_core::hub::heartbeat::{BlockingCheck, Heartbeat, Running};

use crate::config::{self, Config};

pub use capture::{BACKTRACE_SIGNAL, CAPTURE_WAIT};

/// The most blocked episodes reported in any minute.
pub const MAX_REPORTS_PER_MINUTE: usize = 10;

/// A hub that did not switch greenlets within the budget, as the monitor saw it from its own
/// thread.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BlockingReport {
    /// The greenlet that kept the hub busy.
    pub greenlet: Running,
    /// How long the hub had gone without switching when it was noticed.
    pub blocked_for: Duration,
    /// The name of the hub's thread, if it has one.
    pub thread: Option<String>,
    /// The greenlet's stack when it was noticed, innermost frame first, symbolized; `None`
    /// when it could not be taken (see the [module docs](self)).
    pub backtrace: Option<Vec<String>>,
    /// Blocked episodes not reported since the last report, for the rate limit.
    pub suppressed: usize,
}

impl fmt::Display for BlockingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let thread = self.thread.as_deref().unwrap_or("<unnamed>");
        write!(
            f,
            "gevent: the hub of thread '{thread}' has not switched greenlets for {:?} (max \
             blocking time {:?}): {} keeps it busy",
            self.blocked_for,
            config::current().max_blocking_time(),
            self.greenlet
        )?;
        if self.suppressed > 0 {
            write!(f, " ({} more blocked episodes were not reported)", self.suppressed)?;
        }
        match &self.backtrace {
            Some(frames) => {
                f.write_str("; its stack, taken by the monitor thread:")?;
                for (i, frame) in frames.iter().enumerate() {
                    write!(f, "\n  {i:>3}: {frame}")?;
                }
                Ok(())
            }
            None => f.write_str(" (its stack could not be taken)"),
        }
    }
}

/// What the hook of [`set_report_hook`] is called with.
type ReportHook = Arc<dyn Fn(&BlockingReport) + Send + Sync>;

static REPORT_HOOK: RwLock<Option<ReportHook>> = RwLock::new(None);

/// Sends the blocking reports to `hook`, on the monitor thread, instead of stderr (replacing
/// the hook set before); [`clear_report_hook`] puts stderr back.
///
/// The [`BlockingDetected`](crate::events::Event::BlockingDetected) event comes only when the
/// blocked hub runs again, which a deadlocked hub never does, and without the stack: the hook
/// gets the report at once, stack included, on a thread that is not blocked. It must not block
/// for long: the monitor waits for it.
pub fn set_report_hook(hook: impl Fn(&BlockingReport) + Send + Sync + 'static) {
    *REPORT_HOOK.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
}

/// Removes the hook of [`set_report_hook`]: reports go to stderr again.
pub fn clear_report_hook() {
    *REPORT_HOOK.write().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Called whenever a hosted platform is built: arms the monitor for the hubs created from now
/// on if the configuration wants it.
pub(crate) fn enable(config: &Config) {
    if config.monitor() || config.max_memory().is_some() {
        gevent_core::__private::set_new_hub_hook(register);
    }
}

/// One monitored hub.
struct Entry {
    key: u64,
    heartbeat: Option<Arc<Heartbeat>>,
    check: BlockingCheck,
    handle: HubHandle,
    thread: Option<String>,
    /// Whom to signal for a stack; valid while the entry exists (its thread removes it before
    /// it exits, under the lock the monitor signals with).
    pthread: capture::ThreadId,
}

/// The monitor's state shared with the hubs' threads.
struct Monitor {
    hubs: Mutex<Vec<Entry>>,
    started: Instant,
    next_key: Mutex<u64>,
}

static MONITOR: OnceLock<Monitor> = OnceLock::new();

std::thread_local! {
    /// Removes this thread's hub from the monitor when the thread exits: the monitor must not
    /// signal a thread that is gone.
    static REGISTERED: Registered = const { Registered { key: std::cell::Cell::new(None) } };
}

struct Registered {
    key: std::cell::Cell<Option<u64>>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let (Some(key), Some(monitor)) = (self.key.get(), MONITOR.get()) {
            monitor.hubs.lock().unwrap_or_else(PoisonError::into_inner).retain(|e| e.key != key);
        }
    }
}

/// The hook gevent-core calls on a new hub's thread, before the hub exists.
fn register(handle: HubHandle) -> Option<Arc<Heartbeat>> {
    let config = config::current();
    let mut first = false;
    let monitor = MONITOR.get_or_init(|| {
        first = true;
        Monitor { hubs: Mutex::new(Vec::new()), started: Instant::now(), next_key: Mutex::new(0) }
    });
    if first {
        start(config, monitor);
    }
    let blocking = config.monitor();
    let heartbeat = blocking.then(|| Arc::new(Heartbeat::new()));
    let key = {
        let mut next = monitor.next_key.lock().unwrap_or_else(PoisonError::into_inner);
        *next += 1;
        *next
    };
    // A thread whose thread-locals are being destroyed cannot say when it is gone: left alone.
    REGISTERED.try_with(|registered| registered.key.set(Some(key))).ok()?;
    let now = monitor.now();
    monitor.hubs.lock().unwrap_or_else(PoisonError::into_inner).push(Entry {
        key,
        heartbeat: heartbeat.clone(),
        check: BlockingCheck::new(now),
        handle,
        thread: std::thread::current().name().map(String::from),
        pthread: capture::ThreadId::current(),
    });
    heartbeat
}

/// Starts the monitor thread (and the capture signal's handler), once `monitor` is stored.
fn start(config: &Config, monitor: &'static Monitor) {
    if config.monitor() {
        capture::install_handler();
    }
    let budget = config.monitor().then_some(config.max_blocking_time());
    let memory = config.max_memory().map(|max| (max, config.memory_monitor_period()));
    let spawned = std::thread::Builder::new()
        .name(String::from("gevent-monitor"))
        .spawn(move || run(monitor, budget, memory));
    if let Err(e) = spawned {
        gevent_core::__private::report_error(format_args!(
            "gevent: could not start the monitor thread, so blocked hubs and memory use go \
             unreported: {e}"
        ));
    }
}

impl Monitor {
    fn now(&self) -> gevent_core::time::Instant {
        let nanos = self.started.elapsed().as_nanos();
        gevent_core::time::Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The monitor thread's loop.
fn run(monitor: &'static Monitor, budget: Option<Duration>, memory: Option<(u64, Duration)>) {
    let tick = match (budget, memory) {
        (Some(budget), Some((_, period))) => (budget / 2).min(period),
        (Some(budget), None) => budget / 2,
        (None, Some((_, period))) => period,
        (None, None) => return,
    };
    let mut limiter = RateLimit::default();
    let mut memory_watch = memory.map(|(max, period)| memory::Watch::new(max, period));
    loop {
        std::thread::sleep(tick);
        if let Some(budget) = budget {
            check_hubs(monitor, budget, &mut limiter);
        }
        if let Some(watch) = &mut memory_watch {
            if let Some(event) = watch.poll(Instant::now()) {
                post_to_all(monitor, event);
            }
        }
    }
}

/// Checks every hub's heartbeat; reports and posts the blocked ones.
fn check_hubs(monitor: &Monitor, budget: Duration, limiter: &mut RateLimit) {
    let now = monitor.now();
    let mut blocked = Vec::new();
    {
        let mut hubs = monitor.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        for entry in hubs.iter_mut() {
            let Some(heartbeat) = &entry.heartbeat else { continue };
            if let Some(found) = entry.check.check(heartbeat, now, budget) {
                let Some(suppressed) = limiter.admit(Instant::now()) else { continue };
                // Signalled under the lock: the thread cannot finish exiting meanwhile.
                let request = capture::request(entry.pthread);
                blocked.push((
                    found,
                    suppressed,
                    request,
                    entry.handle.clone(),
                    entry.thread.clone(),
                ));
            }
        }
    }
    for (found, suppressed, request, handle, thread) in blocked {
        let Running { id, name, spawned_at } = found.running;
        let blocked_for = found.blocked_for;
        // Delivered when the hub runs again; a hub that is gone drops it.
        let _ = handle.post(move || emit_blocking(id, name, spawned_at, blocked_for));
        let backtrace = request.and_then(capture::collect);
        let report =
            BlockingReport { greenlet: found.running, blocked_for, thread, backtrace, suppressed };
        let hook = REPORT_HOOK.read().unwrap_or_else(PoisonError::into_inner).clone();
        match hook {
            Some(hook) => hook(&report),
            None => gevent_core::__private::report_error(format_args!("{report}")),
        }
    }
}

/// On the blocked hub's thread, once it runs again.
fn emit_blocking(
    id: u64,
    name: Option<&'static str>,
    spawned_at: &'static Location<'static>,
    blocked_for: Duration,
) {
    // The greenlet's own name, whatever it is, if it is still alive.
    let name = gevent_core::__private::greenlet_name(id)
        .or(name.map(Into::into))
        .unwrap_or_else(|| format!("Greenlet-{id}").into());
    gevent_core::__private::emit_event(&Event::BlockingDetected {
        id,
        name,
        spawned_at,
        blocked_for,
    });
}

/// Sends `event` to every hub, delivered on its thread.
fn post_to_all(monitor: &Monitor, event: Event) {
    let handles: Vec<HubHandle> = monitor
        .hubs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|entry| entry.handle.clone())
        .collect();
    for handle in handles {
        let event = event.clone();
        let _ = handle.post(move || gevent_core::__private::emit_event(&event));
    }
}

/// At most [`MAX_REPORTS_PER_MINUTE`] reports in any minute.
#[derive(Default)]
struct RateLimit {
    recent: VecDeque<Instant>,
    suppressed: usize,
}

impl RateLimit {
    /// `Some(episodes suppressed since the last report)` if a report may be made now.
    fn admit(&mut self, now: Instant) -> Option<usize> {
        while self.recent.front().is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_REPORTS_PER_MINUTE {
            self.suppressed += 1;
            return None;
        }
        self.recent.push_back(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_reports_a_minute_and_the_next_one_counts_those_suppressed() {
        let mut limit = RateLimit::default();
        let start = Instant::now();
        for i in 0..MAX_REPORTS_PER_MINUTE {
            assert_eq!(limit.admit(start + Duration::from_secs(i as u64)), Some(0));
        }
        assert_eq!(limit.admit(start + Duration::from_secs(30)), None);
        assert_eq!(limit.admit(start + Duration::from_secs(59)), None);
        // The first report is a minute old: room for one, which says two were dropped.
        assert_eq!(limit.admit(start + Duration::from_secs(60)), Some(2));
        assert_eq!(limit.admit(start + Duration::from_secs(60)), None);
    }
}
