//! `cargo xtask bench tls_echo tls_handshake`: our TLS echo server (`gevent-bench tls_echo`)
//! against the same server on tokio + tokio-rustls (`bench/tls-anchor`, a package outside the
//! workspace so that tokio stays out of our lock file), each pinned to CPU 0 in turn and loaded
//! by the same `tls_load` pinned to CPU 1. The runs interleave the two servers, as `run.sh`
//! does; each run's lines go to standard error, the medians to standard output, then the ratios.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::echo::{
    Server, clock_ticks_per_second, cpu_ticks, pinned, secs_and_port, wait_for_port,
};
use super::{OURS, Sample, comparison_table_with, parse_line, parse_results};
use crate::flags::Workload;

/// The tokio-rustls server's name in result lines.
const TOKIO: &str = "tokio-rustls";

/// Connections `tls_load` opens for `tls_echo`, as for echo.
const CONNECTIONS: &str = "100";

/// Runs each of `workloads` (TLS ones) `runs` times for both servers, then prints the medians
/// and the ratio table.
pub(super) fn run(
    root: &Path,
    bin: &Path,
    workloads: &[Workload],
    runs: u32,
    secs: Option<u32>,
) -> Result<(), String> {
    let (secs, port) = secs_and_port(secs)?;
    let anchor_dir = build_anchor(root)?;
    let tokio = anchor_dir.join("tls_anchor_tokio");
    let load = anchor_dir.join("tls_load");
    let taskset = crate::find_in_path("taskset");
    if taskset.is_none() {
        eprintln!("note: taskset not found; the servers and the load run unpinned");
    }
    let mut samples = Vec::new();
    for &workload in workloads {
        for i in 1..=runs {
            for (imp, server) in [(OURS, bin), (TOKIO, tokio.as_path())] {
                let run = Run { workload, imp, server, load: &load, port, secs };
                let lines = run.once(taskset.as_deref())?;
                for line in lines.lines() {
                    eprintln!("# run {i}/{runs}: {line}");
                }
                samples.extend(parse_results(&lines));
            }
        }
    }
    let medians = medians(&samples);
    for sample in &medians {
        println!(
            "bench={} impl={} metric={} value={}",
            sample.bench, sample.imp, sample.metric, sample.text
        );
    }
    print!("\n{}", comparison_table_with(&medians, &[TOKIO]));
    Ok(())
}

/// Builds `bench/tls-anchor` into `<target>/tls-anchor`; returns the folder of its binaries.
fn build_anchor(root: &Path) -> Result<PathBuf, String> {
    let manifest = root.join("bench/tls-anchor/Cargo.toml");
    let target_dir = super::target_dir(root).join("tls-anchor");
    super::echo::release_build(&manifest, &target_dir, &[])?;
    Ok(target_dir.join("release"))
}

/// One run of one workload against one server.
struct Run<'a> {
    workload: Workload,
    imp: &'a str,
    server: &'a Path,
    load: &'a Path,
    port: u16,
    secs: u32,
}

impl Run<'_> {
    /// Starts the server, loads it, and returns the load's line and the server's CPU time per
    /// operation, as result lines.
    fn once(&self, taskset: Option<&Path>) -> Result<String, String> {
        let port = self.port.to_string();
        let secs = self.secs.to_string();
        // Both servers take `tls_echo PORT`; the handshake workload uses the same server.
        let child = pinned(taskset, "0", self.server)
            .args(["tls_echo", &port])
            .spawn()
            .map_err(|error| format!("could not start {}: {error}", self.server.display()))?;
        let mut server = Server(child);
        wait_for_port(&mut server.0, self.port)?;
        let pid = server.0.id();
        let mut load = pinned(taskset, "1", self.load);
        let metric = match self.workload {
            Workload::TlsHandshake => {
                load.args(["handshake", &port, self.imp, &secs]);
                "handshakes_per_s"
            }
            _ => {
                load.args([&port, self.imp, CONNECTIONS, &secs]);
                "round_trips_per_s"
            }
        };
        let ticks0 = cpu_ticks(pid)?;
        let output = load
            .stderr(Stdio::inherit())
            .output()
            .map_err(|error| format!("could not run {}: {error}", self.load.display()))?;
        let ticks = cpu_ticks(pid)? - ticks0;
        if !output.status.success() {
            return Err(format!("tls_load failed against {} ({})", self.imp, output.status));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let rate = stdout
            .lines()
            .filter_map(parse_line)
            .find(|sample| sample.metric == metric)
            .ok_or_else(|| format!("tls_load printed no {metric} line: {stdout:?}"))?;
        let seconds = ticks as f64 / clock_ticks_per_second() as f64;
        let ns_per_op = seconds * 1e9 / (rate.value * f64::from(self.secs));
        Ok(format!(
            "{}\nbench={} impl={} metric=server_cpu_ns_per_op value={ns_per_op:.1}\n",
            stdout.trim_end(),
            rate.bench,
            self.imp
        ))
    }
}

/// The median of each (bench, impl, metric) of `samples` (the upper one of an even count), in
/// the order of their first appearance.
fn medians(samples: &[Sample]) -> Vec<Sample> {
    let mut medians: Vec<Sample> = Vec::new();
    for sample in samples {
        let same_key = |s: &&Sample| {
            s.bench == sample.bench && s.imp == sample.imp && s.metric == sample.metric
        };
        if medians.iter().any(|m| same_key(&m)) {
            continue;
        }
        let mut same: Vec<&Sample> = samples.iter().filter(same_key).collect();
        same.sort_by(|a, b| a.value.total_cmp(&b.value));
        medians.push(same[same.len() / 2].clone());
    }
    medians
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_per_bench_impl_and_metric() {
        let samples = parse_results(
            "bench=tls_echo impl=gevent-rs metric=round_trips_per_s value=3\n\
             bench=tls_echo impl=tokio-rustls metric=round_trips_per_s value=9\n\
             bench=tls_echo impl=gevent-rs metric=round_trips_per_s value=1\n\
             bench=tls_echo impl=gevent-rs metric=server_cpu_ns_per_op value=7\n\
             bench=tls_echo impl=gevent-rs metric=round_trips_per_s value=2\n",
        );
        let medians = medians(&samples);
        let values: Vec<(&str, &str, &str)> =
            medians.iter().map(|s| (s.imp.as_str(), s.metric.as_str(), s.text.as_str())).collect();
        assert_eq!(
            values,
            [
                ("gevent-rs", "round_trips_per_s", "2"),
                ("tokio-rustls", "round_trips_per_s", "9"),
                ("gevent-rs", "server_cpu_ns_per_op", "7"),
            ]
        );
    }

    #[test]
    fn compares_with_tokio_rustls() {
        let samples = parse_results(
            "bench=tls_handshake impl=gevent-rs metric=handshakes_per_s value=900\n\
             bench=tls_handshake impl=tokio-rustls metric=handshakes_per_s value=1000\n",
        );
        let table = comparison_table_with(&samples, &[TOKIO]);
        let row = table.lines().nth(1).unwrap();
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            words,
            ["tls_handshake", "handshakes_per_s", "higher", "900", "1000", "(0.900x)"]
        );
    }
}
