//! `monitor_overhead`: what the blocking detector costs a switch. The switch workload runs in
//! child processes (the monitor is chosen once per process, from `GEVENT_MONITOR_THREAD`),
//! alternately with the monitor off and on, so that a slow spell of a shared machine hits both
//! alike; the medians are compared.

use std::process::{Command, ExitCode};

use crate::report;

/// Rounds of each kind.
const ROUNDS: usize = 7;

/// Runs the comparison and reports both medians and the overhead in percent.
pub(crate) fn monitor_overhead() -> ExitCode {
    let mut off = Vec::with_capacity(ROUNDS);
    let mut on = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        for (setting, times) in [("0", &mut off), ("1", &mut on)] {
            match switch_ns(setting) {
                Ok(ns) => times.push(ns),
                Err(e) => {
                    eprintln!("gevent-bench: monitor_overhead: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let (off, on) = (median(&mut off), median(&mut on));
    report("monitor_overhead", "ns_per_switch_monitor_off", off);
    report("monitor_overhead", "ns_per_switch_monitor_on", on);
    report("monitor_overhead", "switch_overhead_percent", 100.0 * (on - off) / off);
    ExitCode::SUCCESS
}

/// `gevent-bench switch` with `GEVENT_MONITOR_THREAD=setting`: its `ns_per_switch`.
fn switch_ns(setting: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is this program? {e}"))?;
    let output = Command::new(exe)
        .arg("switch")
        .env("GEVENT_MONITOR_THREAD", setting)
        .output()
        .map_err(|e| format!("cannot run the switch workload: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("the switch workload failed ({}): {stdout}", output.status));
    }
    stdout
        .lines()
        .find_map(|line| line.split_once("metric=ns_per_switch value="))
        .and_then(|(_, value)| value.trim().parse().ok())
        .ok_or_else(|| format!("the switch workload printed no ns_per_switch: {stdout:?}"))
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
