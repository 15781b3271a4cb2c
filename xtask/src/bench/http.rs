//! `cargo xtask bench http` without `--anchors`: our HTTP server pinned to CPU 0 and `wrk`
//! pinned to CPU 1, as `run.sh` runs them (`wrk -t1 -c100 -dSECSs`): requests per second from
//! wrk, and the server's CPU time per request.

use std::path::Path;
use std::process::Stdio;

use super::OURS;
use super::echo::{load_server, pinned, secs_and_port};

/// wrk's connections and threads, as `run.sh` asks.
const CONNECTIONS: &str = "-c100";
const THREADS: &str = "-t1";

/// Runs the http workload `runs` times, printing each run's two result lines.
pub(super) fn run(bin: &Path, secs: Option<u32>, runs: u32) -> Result<(), String> {
    let (secs, port) = secs_and_port(secs)?;
    let wrk = crate::find_in_path("wrk")
        .ok_or("wrk is not installed (apt-get install wrk): it loads the http workload")?;
    let taskset = crate::find_in_path("taskset");
    if taskset.is_none() {
        eprintln!("note: taskset not found; the server and wrk run unpinned");
    }
    for _ in 0..runs {
        one_run(bin, &wrk, taskset.as_deref(), port, secs)?;
    }
    Ok(())
}

fn one_run(
    bin: &Path,
    wrk: &Path,
    taskset: Option<&Path>,
    port: u16,
    secs: u32,
) -> Result<(), String> {
    let (output, seconds) = load_server(bin, "http", taskset, port, || {
        pinned(taskset, "1", wrk)
            .args([
                THREADS,
                CONNECTIONS,
                &format!("-d{secs}s"),
                &format!("http://127.0.0.1:{port}/"),
            ])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|error| format!("could not run {}: {error}", wrk.display()))
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("wrk failed ({}): {stdout}", output.status));
    }
    let wrk = parse_wrk(&stdout)?;
    if let Some(errors) = wrk.errors {
        return Err(format!("wrk saw errors, so the rate does not count: {errors}"));
    }
    println!("bench=http impl={OURS} metric=requests_per_s value={:.2}", wrk.requests_per_s);
    let ns_per_op = seconds * 1e9 / wrk.requests as f64;
    println!("bench=http impl={OURS} metric=server_cpu_ns_per_op value={ns_per_op:.1}");
    Ok(())
}

/// What we read from wrk's report.
#[derive(Debug, PartialEq)]
struct WrkReport {
    requests_per_s: f64,
    /// Requests completed in the run.
    requests: u64,
    /// wrk's `Socket errors` and `Non-2xx` lines, if it printed any.
    errors: Option<String>,
}

/// Parses `Requests/sec:`, the `N requests in ...` line and any error lines of wrk's report.
fn parse_wrk(stdout: &str) -> Result<WrkReport, String> {
    let requests_per_s = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("wrk printed no Requests/sec line: {stdout:?}"))?;
    let requests = stdout
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.trim().parse::<u64>().ok())
        .filter(|&count| count > 0)
        .ok_or_else(|| format!("wrk printed no 'N requests in' line: {stdout:?}"))?;
    let errors: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("Socket errors") || line.starts_with("Non-2xx"))
        .collect();
    let errors = if errors.is_empty() { None } else { Some(errors.join("; ")) };
    Ok(WrkReport { requests_per_s, requests, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
Running 3s test @ http://127.0.0.1:9123/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.45us  101.22us   2.10ms   90.12%
    Req/Sec   123.45k     3.21k  130.00k    70.00%
  370352 requests in 3.00s, 45.21MB read
Requests/sec: 123450.67
Transfer/sec:     15.07MB
";

    #[test]
    fn reads_wrks_report() {
        assert_eq!(
            parse_wrk(REPORT),
            Ok(WrkReport { requests_per_s: 123450.67, requests: 370352, errors: None })
        );
        let with_errors = REPORT.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 3, write 0, timeout 0\n  Non-2xx or 3xx responses: 7\nRequests/sec",
        );
        let report = parse_wrk(&with_errors).unwrap();
        assert_eq!(
            report.errors.as_deref(),
            Some(
                "Socket errors: connect 0, read 3, write 0, timeout 0; Non-2xx or 3xx responses: 7"
            )
        );
        assert!(parse_wrk("Running 3s test\n").is_err());
        assert!(parse_wrk(&REPORT.replace("370352 requests", "0 requests")).is_err());
    }
}
