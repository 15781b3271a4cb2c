//! `cargo xtask bench`: builds `gevent-bench` and runs the workloads of
//! `shared/anchors/README.md`, alone or through the anchors' `run.sh` next to gevent, tokio and
//! may, then compares. Workloads of our own (`group_spawn`) always run alone: the anchors have
//! no such workload.
//!
//! Result lines have the anchors' format, `bench=<b> impl=<i> metric=<m> value=<v>`, and are the
//! only thing written to standard output besides the comparison table; notes go to standard error.

use std::env;
use std::env::consts::EXE_SUFFIX;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::flags::{self, Workload};

mod echo;
mod embedded;
mod http;
mod tls;

/// The workloads run when none is named.
pub(crate) const DEFAULT_WORKLOADS: &[Workload] = &[
    Workload::Switch,
    Workload::Spawn,
    Workload::Idle,
    Workload::Queue,
    Workload::GroupSpawn,
    Workload::IdleConns,
    Workload::HttpConns,
    Workload::MonitorOverhead,
];

/// Workloads that only we run: `run.sh` does not know them. The TLS workloads are run apart
/// (see [`tls`]).
const OURS_ONLY: &[Workload] = &[
    Workload::GroupSpawn,
    Workload::IdleConns,
    Workload::HttpConns,
    Workload::MonitorOverhead,
    Workload::Dns,
];

/// Our name in result lines.
const OURS: &str = "gevent-rs";

/// The anchor implementations we compare with, in the table's column order.
const ANCHORS: &[&str] = &["gevent", "tokio", "may"];

/// Metrics where a higher value is better; for every other metric (times, bytes) lower is better.
const HIGHER_IS_BETTER: &[&str] =
    &["round_trips_per_s", "requests_per_s", "handshakes_per_s", "queries_per_s"];

/// How to read the ratios, printed under the table.
const RATIO_NOTE: &str = "below 1x is ahead where lower is better, above 1x where higher is better";

/// Runs per workload with `--anchors` (run.sh keeps the median) and without it.
const ANCHOR_RUNS: u32 = 3;
const SOLO_RUNS: u32 = 1;

/// The `vm.max_map_count` that 100,000 parked greenlets need.
const MAX_MAP_COUNT: u64 = 262_144;

impl flags::Bench {
    /// Runs the firmware benchmark against the embassy anchor (`--embedded`), then builds the
    /// benchmark binary and runs the hosted workloads, if any.
    pub(crate) fn run(self) -> Result<(), String> {
        let root = crate::project_root();
        let embedded_result =
            if self.embedded { embedded::run(&root, &anchors_dir(&root)) } else { Ok(()) };
        if self.workloads.is_empty() {
            return embedded_result;
        }
        let result = self.run_workloads(&root);
        match (embedded_result, result) {
            (Err(embedded), Err(rest)) => Err(format!("{embedded}; {rest}")),
            (embedded, rest) => embedded.and(rest),
        }
    }

    /// Builds the benchmark binary and runs the hosted workloads.
    fn run_workloads(self, root: &Path) -> Result<(), String> {
        let needs_anchors = self.anchors || self.workloads.contains(&Workload::Echo);
        let run_sh = if needs_anchors && !self.print_cmd { Some(find_run_sh(root)?) } else { None };
        let bin = build(root)?;
        if self.print_cmd {
            // What run.sh runs as `$IMPL_CMD echo PORT`, less the port.
            for workload in &self.workloads {
                println!("{} {workload}", bin.display());
            }
            return Ok(());
        }
        let (tls, workloads): (Vec<Workload>, Vec<Workload>) =
            self.workloads.iter().partition(|workload| workload.is_tls());
        let tls_result = if tls.is_empty() {
            Ok(())
        } else {
            tls::run(root, &bin, &tls, self.runs.unwrap_or(ANCHOR_RUNS), self.secs)
        };
        if workloads.is_empty() {
            return tls_result;
        }
        if workloads.iter().any(|workload| workload.parks_many()) {
            ensure_map_count();
        }
        let result = match run_sh {
            Some(run_sh) if self.anchors => {
                let (ours, shared): (Vec<Workload>, Vec<Workload>) =
                    workloads.iter().partition(|workload| OURS_ONLY.contains(workload));
                let runs = self.runs.unwrap_or(ANCHOR_RUNS);
                run_with_anchors(&run_sh, &bin, &shared, &ours, runs, self.secs)
            }
            _ => {
                let anchors_dir = run_sh.as_deref().and_then(Path::parent);
                run_alone(&bin, &workloads, self.runs.unwrap_or(SOLO_RUNS), anchors_dir, self.secs)
            }
        };
        match (tls_result, result) {
            (Err(tls), Err(rest)) => Err(format!("{tls}; {rest}")),
            (tls, rest) => tls.and(rest),
        }
    }
}

/// `cargo build --release -p gevent-bench`; returns the path of the binary.
fn build(root: &Path) -> Result<PathBuf, String> {
    eprintln!("==> cargo build --release -p gevent-bench");
    let status = Command::new(crate::cargo())
        .args(["build", "--release", "-p", "gevent-bench"])
        .current_dir(root)
        .status()
        .map_err(|error| format!("could not run cargo: {error}"))?;
    if !status.success() {
        return Err(format!("building gevent-bench failed ({status})"));
    }
    let bin = target_dir(root).join("release").join(format!("gevent-bench{EXE_SUFFIX}"));
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("gevent-bench was built, but it is not at {}", bin.display()))
    }
}

/// The workspace's target directory.
fn target_dir(root: &Path) -> PathBuf {
    // Cargo takes a relative CARGO_TARGET_DIR from its working directory, the root here.
    env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |dir| root.join(dir))
}

/// Raises `vm.max_map_count` if it is too low for spawn and idle, or warns that it is.
fn ensure_map_count() {
    let read = || fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse::<u64>().ok();
    let Some(have) = read() else { return }; // Not Linux: no such limit.
    if have >= MAX_MAP_COUNT {
        return;
    }
    eprintln!("==> raising vm.max_map_count from {have} to {MAX_MAP_COUNT}");
    let _ = Command::new("sysctl")
        .args(["-qw", &format!("vm.max_map_count={MAX_MAP_COUNT}")])
        .stderr(Stdio::null())
        .status();
    if read().is_some_and(|now| now >= MAX_MAP_COUNT) {
        return;
    }
    eprintln!(
        "warning: vm.max_map_count is {have} and could not be raised to {MAX_MAP_COUNT}.\n\
         Each guard-paged greenlet stack needs 2 memory maps, so the 100,000 parked greenlets\n\
         of spawn and idle need about 200,000, and their stacks may fail to allocate.\n\
         Raise it with: sudo sysctl -w vm.max_map_count={MAX_MAP_COUNT}"
    );
}

/// Runs `gevent-bench <workload>` for each in-process workload, pinned to CPU 0 when `taskset`
/// is there, its result lines going straight to our standard output; echo against the anchors'
/// load generator, built from `anchors_dir` (skipped without it); and http against `wrk`.
fn run_alone(
    bin: &Path,
    workloads: &[Workload],
    runs: u32,
    anchors_dir: Option<&Path>,
    secs: Option<u32>,
) -> Result<(), String> {
    let taskset = crate::find_in_path("taskset");
    if taskset.is_none() {
        eprintln!("note: taskset not found; the workloads run unpinned");
    }
    let mut ran = 0;
    let mut failed = Vec::new();
    for &workload in workloads {
        if let (Workload::Echo, Some(anchors_dir)) = (workload, anchors_dir) {
            match echo::run(anchors_dir, bin, secs, runs) {
                Ok(()) => ran += 1,
                Err(error) => {
                    eprintln!("error: echo: {error}");
                    failed.push(workload.name());
                }
            }
            continue;
        }
        if workload == Workload::Http {
            match http::run(bin, secs, runs) {
                Ok(()) => ran += 1,
                Err(error) => {
                    eprintln!("error: http: {error}");
                    failed.push(workload.name());
                }
            }
            continue;
        }
        if workload.is_server() {
            eprintln!(
                "note: {workload} skipped: it needs --anchors (its load generator, echo_load, is \
                 built from the anchors' folder)"
            );
            continue;
        }
        for _ in 0..runs {
            let status = pinned(bin, workload, taskset.as_deref())
                .status()
                .map_err(|error| format!("could not run {}: {error}", bin.display()))?;
            ran += 1;
            if !status.success() {
                eprintln!("error: gevent-bench {workload} failed ({status})");
                failed.push(workload.name());
                break;
            }
        }
    }
    if !failed.is_empty() {
        return Err(format!("failed: {}", failed.join(" ")));
    }
    if ran == 0 {
        return Err("nothing was run".into());
    }
    Ok(())
}

/// `gevent-bench <workload>`, pinned to CPU 0 when `taskset` is there.
fn pinned(bin: &Path, workload: Workload, taskset: Option<&Path>) -> Command {
    let mut command = match taskset {
        Some(taskset) => {
            let mut command = Command::new(taskset);
            command.args(["-c", "0"]).arg(bin);
            command
        }
        None => Command::new(bin),
    };
    command.arg(workload.command());
    command
}

/// The anchors' folder: `$ANCHORS_DIR`, or else `shared/anchors` next to the workspace.
fn anchors_dir(root: &Path) -> PathBuf {
    env::var_os("ANCHORS_DIR")
        .map_or_else(|| root.parent().unwrap_or(root).join("shared/anchors"), PathBuf::from)
}

/// The anchors' `run.sh`, in [`anchors_dir`].
fn find_run_sh(root: &Path) -> Result<PathBuf, String> {
    let dir = anchors_dir(root);
    let run_sh = dir.join("run.sh");
    if run_sh.is_file() {
        Ok(run_sh)
    } else {
        Err(format!(
            "no run.sh in {}: set ANCHORS_DIR to the anchors folder (the one with run.sh)",
            dir.display()
        ))
    }
}

/// Runs the workloads through the anchors' `run.sh` for the anchors and for us and echoes its
/// result lines, runs `ours_only` (once each: they take the median of their own rounds), then
/// prints how we compare.
fn run_with_anchors(
    run_sh: &Path,
    bin: &Path,
    workloads: &[Workload],
    ours_only: &[Workload],
    runs: u32,
    secs: Option<u32>,
) -> Result<(), String> {
    let mut output = String::new();
    let mut errors = Vec::new();
    if !workloads.is_empty() {
        if let Err(error) = run_through_run_sh(run_sh, bin, workloads, runs, secs, &mut output) {
            errors.push(error);
        }
    }
    let taskset = crate::find_in_path("taskset");
    for &workload in ours_only {
        let result = pinned(bin, workload, taskset.as_deref())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|error| format!("could not run {}: {error}", bin.display()))?;
        let lines = String::from_utf8_lossy(&result.stdout);
        print!("{lines}");
        output.push_str(&lines);
        if !result.status.success() {
            errors.push(format!("gevent-bench {workload} failed ({})", result.status));
        }
    }
    print!("\n{}", comparison_table(&parse_results(&output)));
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Runs `run.sh` on the workloads, echoing its result lines and appending them to `output`.
fn run_through_run_sh(
    run_sh: &Path,
    bin: &Path,
    workloads: &[Workload],
    runs: u32,
    secs: Option<u32>,
    output: &mut String,
) -> Result<(), String> {
    // run.sh runs `exec $IMPL_CMD ...`, unquoted.
    if bin.to_string_lossy().contains(char::is_whitespace) {
        return Err(format!("run.sh cannot run {}: the path has whitespace", bin.display()));
    }
    let names: Vec<_> = workloads.iter().map(|workload| workload.name()).collect();
    let names = names.join(" ");
    let impls = [ANCHORS, &[OURS]].concat().join(" ");
    eprintln!("==> RUNS={runs} bash {} \"{names}\" \"{impls}\"", run_sh.display());
    // SECS (unless --secs says) and PORT, if set, reach run.sh with the rest of our
    // environment.
    let mut command = Command::new("bash");
    command.arg(run_sh).args([&names, &impls]).env("IMPL_CMD", bin).env("RUNS", runs.to_string());
    if let Some(secs) = secs {
        command.env("SECS", secs.to_string());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("could not run bash: {error}"))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|error| format!("reading run.sh's output: {error}"))?;
            println!("{line}");
            output.push_str(&line);
            output.push('\n');
        }
    }
    let status = child.wait().map_err(|error| format!("waiting for run.sh: {error}"))?;
    if status.success() { Ok(()) } else { Err(format!("run.sh failed ({status})")) }
}

/// One result line: `bench=<bench> impl=<imp> metric=<metric> value=<value>`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    bench: String,
    imp: String,
    metric: String,
    /// The value as printed, shown as is in the table.
    text: String,
    value: f64,
}

/// Parses a result line; anything else is `None`.
fn parse_line(line: &str) -> Option<Sample> {
    let (mut bench, mut imp, mut metric, mut text) = (None, None, None, None);
    for word in line.split_whitespace() {
        let (key, value) = word.split_once('=')?;
        let slot = match key {
            "bench" => &mut bench,
            "impl" => &mut imp,
            "metric" => &mut metric,
            "value" => &mut text,
            _ => return None,
        };
        *slot = Some(value.to_owned());
    }
    let text = text?;
    let value = text.parse::<f64>().ok().filter(|value| value.is_finite())?;
    Some(Sample { bench: bench?, imp: imp?, metric: metric?, text, value })
}

/// The result lines of a run's output, in order.
fn parse_results(output: &str) -> Vec<Sample> {
    output.lines().filter_map(parse_line).collect()
}

fn higher_is_better(metric: &str) -> bool {
    HIGHER_IS_BETTER.contains(&metric)
}

/// `x` with at least `digits` significant digits (more only left of the decimal point).
fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    // Rounding can carry into a new digit (9.996 -> 10.00): then one decimal fewer.
    let rounded = text.parse::<f64>().unwrap_or(x);
    if decimals > 0 && rounded.abs().log10().floor() as i32 > magnitude {
        format!("{x:.0$}", decimals - 1)
    } else {
        text
    }
}

/// `ours / theirs` to 3 significant digits, as `0.412x`.
fn ratio(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 { "n/a".into() } else { format!("{}x", significant(ours / theirs, 3)) }
}

/// One row per (bench, metric) that we have a result for: ours, then each anchor's result and
/// the ratio ours / theirs.
fn comparison_table(samples: &[Sample]) -> String {
    comparison_table_with(samples, ANCHORS)
}

/// [`comparison_table`] with the columns of `anchors`.
fn comparison_table_with(samples: &[Sample], anchors: &[&str]) -> String {
    let find = |bench: &str, imp: &str, metric: &str| {
        samples.iter().rev().find(|s| s.bench == bench && s.imp == imp && s.metric == metric)
    };
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for sample in samples.iter().filter(|sample| sample.imp == OURS) {
        if !keys.contains(&(&sample.bench, &sample.metric)) {
            keys.push((&sample.bench, &sample.metric));
        }
    }
    if keys.is_empty() {
        return format!("no {OURS} results to compare\n");
    }

    let mut header: Vec<String> = ["bench", "metric", "better", OURS].map(String::from).into();
    header.extend(anchors.iter().map(|anchor| format!("{anchor} (ratio)")));
    let mut rows = vec![header];
    for (bench, metric) in keys {
        let better = if higher_is_better(metric) { "higher" } else { "lower" };
        let Some(ours) = find(bench, OURS, metric) else { continue };
        let mut row =
            vec![bench.to_owned(), metric.to_owned(), better.to_owned(), ours.text.clone()];
        for anchor in anchors {
            row.push(match find(bench, anchor, metric) {
                Some(theirs) => format!("{} ({})", theirs.text, ratio(ours.value, theirs.value)),
                None => "-".into(),
            });
        }
        rows.push(row);
    }

    let columns = rows[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
    let mut table = String::new();
    for row in &rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, &width)| format!("{cell:width$}")).collect();
        table.push_str(cells.join("  ").trim_end());
        table.push('\n');
    }
    table + &format!("ratio = {OURS} / anchor: {RATIO_NOTE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(bench: &str, imp: &str, metric: &str, text: &str) -> Sample {
        let value = text.parse().unwrap();
        Sample {
            bench: bench.into(),
            imp: imp.into(),
            metric: metric.into(),
            text: text.into(),
            value,
        }
    }

    #[test]
    fn parses_result_lines() {
        assert_eq!(
            parse_line("bench=switch impl=gevent-rs metric=ns_per_switch value=41.5"),
            Some(sample("switch", "gevent-rs", "ns_per_switch", "41.5"))
        );
        assert_eq!(
            parse_line("  bench=echo impl=may metric=round_trips_per_s value=1.2e5  "),
            Some(sample("echo", "may", "round_trips_per_s", "1.2e5"))
        );
        for line in [
            "",
            "# run 1/3: bench=switch impl=may metric=ns_per_switch value=40",
            "bench=switch impl=may metric=ns_per_switch",
            "bench=switch impl=may metric=ns_per_switch value=",
            "bench=switch impl=may metric=ns_per_switch value=fast",
            "bench=switch impl=may metric=ns_per_switch value=inf",
            "bench=switch impl=may metric=ns_per_switch value=40 extra=1",
            "impl=may metric=ns_per_switch value=40",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn parses_output() {
        let output = "building...\nbench=idle impl=tokio metric=bytes_per_idle value=120\n\n\
                      bench=idle impl=tokio metric=ns_per_wakeup value=30.25\n";
        let samples = parse_results(output);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[1].value, 30.25);
    }

    #[test]
    fn rounds_to_three_significant_digits() {
        assert_eq!(significant(0.41234, 3), "0.412");
        assert_eq!(significant(1.0, 3), "1.00");
        assert_eq!(significant(2.5, 3), "2.50");
        assert_eq!(significant(12.345, 3), "12.3");
        assert_eq!(significant(123.45, 3), "123");
        assert_eq!(significant(1234.5, 3), "1234");
        assert_eq!(significant(0.0012345, 3), "0.00123");
        assert_eq!(significant(9.996, 3), "10.0");
        assert_eq!(significant(0.09996, 3), "0.100");
        assert_eq!(significant(0.0, 3), "0");
        assert_eq!(ratio(41.2, 100.0), "0.412x");
        assert_eq!(ratio(3.0, 1.0), "3.00x");
        assert_eq!(ratio(3.0, 0.0), "n/a");
    }

    #[test]
    fn knows_which_way_is_better() {
        assert!(higher_is_better("round_trips_per_s"));
        assert!(higher_is_better("requests_per_s"));
        assert!(!higher_is_better("ns_per_switch"));
        assert!(!higher_is_better("server_cpu_ns_per_op"));
        assert!(!higher_is_better("bytes_per_idle"));
    }

    #[test]
    fn compares_with_the_anchors() {
        let output = "\
bench=switch impl=gevent metric=ns_per_switch value=400
bench=switch impl=tokio metric=ns_per_switch value=50
bench=switch impl=may metric=ns_per_switch value=100
bench=switch impl=gevent-rs metric=ns_per_switch value=41.2
bench=queue impl=tokio metric=ns_per_item value=20
bench=queue impl=gevent-rs metric=ns_per_item value=10
bench=echo impl=tokio metric=round_trips_per_s value=100000
bench=echo impl=gevent-rs metric=round_trips_per_s value=150000
bench=http impl=tokio metric=requests_per_s value=90000
";
        let table = comparison_table(&parse_results(output));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        let words = |line: &str| line.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            words(lines[0]),
            ["bench", "metric", "better", "gevent-rs", "gevent", "(ratio)", "tokio", "(ratio)"]
                .into_iter()
                .chain(["may", "(ratio)"])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            words(lines[1]),
            [
                "switch",
                "ns_per_switch",
                "lower",
                "41.2",
                "400",
                "(0.103x)",
                "50",
                "(0.824x)",
                "100",
                "(0.412x)"
            ]
        );
        assert_eq!(
            words(lines[2]),
            ["queue", "ns_per_item", "lower", "10", "-", "20", "(0.500x)", "-"]
        );
        assert_eq!(
            words(lines[3]),
            ["echo", "round_trips_per_s", "higher", "150000", "-", "100000", "(1.50x)", "-"]
        );
        // The columns line up.
        assert_eq!(lines[0].find("gevent-rs"), lines[1].find("41.2"));
        assert!(lines[4].starts_with("ratio = gevent-rs / anchor"));
    }

    #[test]
    fn nothing_to_compare() {
        let samples = parse_results("bench=http impl=tokio metric=requests_per_s value=90000\n");
        assert_eq!(comparison_table(&samples), "no gevent-rs results to compare\n");
    }
}
