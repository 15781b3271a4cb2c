//! The memory monitor: the process's resident set size against the configured threshold.

use std::time::{Duration, Instant};

use gevent_core::events::Event;

/// The threshold, the period, and which side of it the last reading was on.
pub(super) struct Watch {
    max: u64,
    period: Duration,
    next: Instant,
    above: bool,
}

impl Watch {
    pub(super) fn new(max: u64, period: Duration) -> Self {
        Watch { max, period, next: Instant::now(), above: false }
    }

    /// Reads the size if a period has passed: the event to send when it crossed the threshold
    /// (up, then again only after it went back down).
    pub(super) fn poll(&mut self, now: Instant) -> Option<Event> {
        if now < self.next {
            return None;
        }
        self.next = now + self.period;
        let rss = match resident_set_size() {
            Ok(rss) => rss,
            Err(e) => {
                gevent_core::__private::report_error(format_args!(
                    "gevent: the memory monitor could not read the process's memory use: {e}"
                ));
                return None;
            }
        };
        let max = self.max;
        match (self.above, rss > max) {
            (false, true) => {
                self.above = true;
                gevent_core::__private::report_error(format_args!(
                    "gevent: the process's resident memory, {rss} bytes, exceeds the memory \
                     monitor's threshold of {max} bytes (GEVENT_MAX_MEMORY)"
                ));
                Some(Event::MemoryThresholdExceeded { rss, max })
            }
            (true, false) => {
                self.above = false;
                Some(Event::MemoryUsageUnderThreshold { rss, max })
            }
            _ => None,
        }
    }
}

/// The current resident set size in bytes: `/proc/self/statm`'s second field, in pages.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn resident_set_size() -> std::io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages =
        statm.split_whitespace().nth(1).and_then(|field| field.parse::<u64>().ok()).ok_or_else(
            || {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("/proc/self/statm has no resident page count: {statm:?}"),
                )
            },
        )?;
    Ok(pages * rustix::param::page_size() as u64)
}

/// The peak resident set size (`getrusage`; bytes on Apple's systems, KiB elsewhere).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(unsafe_code)] // getrusage
fn resident_set_size() -> std::io::Result<u64> {
    // SAFETY: a zeroed `rusage` is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let max = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok(if cfg!(target_vendor = "apple") { max } else { max * 1024 })
}
