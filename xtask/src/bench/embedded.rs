//! `cargo xtask bench --embedded`: our firmware benchmark (`examples/firmware-bench`) and the
//! embassy anchor (`<anchors>/embassy`), both on QEMU's `lm3s6965evb` with `-icount shift=0`, so
//! that both print instruction counts; then the two side by side.
//!
//! The anchor prints sentences, not result lines: [`anchor_samples`] turns them into
//! `impl=embassy` lines. Its RAM per parked task is the size of the `parked` task's pool, read
//! from the firmware's symbol table (the task's whole state: its header and its future; it
//! has no stack of its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Sample, comparison_table_with, parse_results};

/// Our firmware benchmark, relative to the workspace root.
const FIRMWARE: &str = "examples/firmware-bench";

/// The anchor's name in result lines.
const EMBASSY: &str = "embassy";

/// Our firmware's name in result lines with its `guard` feature: 1 KiB stacks under the MPU
/// stack guard.
const GUARDED: &str = "gevent-rs-guarded";

/// The anchor's sentences: the text before the number, and the bench it measures. Each reads
/// `embassy <what>: <N> ns-virtual ...`, one virtual nanosecond being one instruction.
const ANCHOR_LINES: &[(&str, &str)] = &[
    ("embassy yield_now: ", "mcu_yield"),
    ("embassy channel(1) ping-pong: ", "mcu_channel"),
    ("embassy spawn+complete trivial task: ", "mcu_spawn"),
];

/// The symbol of the anchor's task parked on a signal: its pool holds the whole task.
const PARKED_POOL: &str = "anchor_embassy::parked::POOL";

/// Tools that print symbol sizes (`-S`) and demangle (`-C`), in the order tried.
const NM_TOOLS: &[&str] = &["llvm-nm", "rust-nm", "arm-none-eabi-nm"];

/// Runs both firmware and prints their result lines and the comparison.
pub(crate) fn run(root: &Path, anchors_dir: &Path) -> Result<(), String> {
    let mut output = String::new();
    let mut errors = Vec::new();

    for features in [None, Some("guard")] {
        match run_firmware(&root.join(FIRMWARE), None, features) {
            Ok(stdout) => {
                let ours = parse_results(&stdout);
                if ours.is_empty() {
                    errors.push(format!("{FIRMWARE} printed no result lines"));
                }
                push_lines(&ours, &mut output);
            }
            Err(error) => errors.push(format!("{FIRMWARE} (features {features:?}): {error}")),
        }
    }

    let embassy = anchors_dir.join("embassy");
    // The anchors' folder may be read-only: the anchor is built into our target directory.
    let target = super::target_dir(root).join("anchor-embassy");
    match run_firmware(&embassy, Some(&target), None) {
        Ok(stdout) => {
            let mut theirs = anchor_samples(&stdout);
            if theirs.len() < ANCHOR_LINES.len() {
                errors.push(format!("the embassy anchor's output lacks figures:\n{stdout}"));
            }
            let elf = target.join("thumbv7m-none-eabi/release/anchor-embassy");
            match parked_task_bytes(&elf) {
                Ok(bytes) => theirs.push(sample("mcu_idle", "bytes_per_greenlet", bytes)),
                Err(error) => {
                    eprintln!("note: embassy's RAM per parked task not measured: {error}")
                }
            }
            push_lines(&theirs, &mut output);
        }
        Err(error) => errors.push(format!("the embassy anchor ({}): {error}", embassy.display())),
    }

    let samples = parse_results(&output);
    print!("\n{}", comparison_table_with(&samples, &[EMBASSY]));
    // The guarded configuration against the same anchor: its lines in the place of ours.
    let guarded: Vec<Sample> = samples
        .iter()
        .filter(|s| s.imp != super::OURS)
        .cloned()
        .map(|mut s| {
            if s.imp == GUARDED {
                s.imp = super::OURS.to_owned();
            }
            s
        })
        .collect();
    print!(
        "\nwith the MPU stack guard (1 KiB stacks):\n{}",
        comparison_table_with(&guarded, &[EMBASSY])
    );
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Prints each sample as a result line and appends it to `output`.
fn push_lines(samples: &[Sample], output: &mut String) {
    for s in samples {
        let line = format!("bench={} impl={} metric={} value={}", s.bench, s.imp, s.metric, s.text);
        println!("{line}");
        output.push_str(&line);
        output.push('\n');
    }
}

/// `cargo run --release --locked` in `folder` (its `.cargo/config.toml` runner boots QEMU),
/// with `features` if given; returns what the firmware printed.
fn run_firmware(
    folder: &Path,
    target_dir: Option<&PathBuf>,
    features: Option<&str>,
) -> Result<String, String> {
    eprintln!("==> cargo run --release in {} (features {features:?})", folder.display());
    let mut command = Command::new(crate::cargo());
    command.args(["run", "--quiet", "--release", "--locked"]).current_dir(folder);
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    // Each firmware is its own workspace with its own target directory, unless told otherwise;
    // ours must not follow a CARGO_TARGET_DIR meant for the host workspace.
    command.env_remove("CARGO_TARGET_DIR");
    if let Some(dir) = target_dir {
        command.arg("--target-dir").arg(dir);
    }
    let result = command
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("could not run cargo: {error}"))?;
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    if result.status.success() {
        Ok(stdout)
    } else {
        Err(format!("failed ({}); it printed:\n{stdout}", result.status))
    }
}

fn sample(bench: &str, metric: &str, value: u64) -> Sample {
    Sample {
        bench: bench.into(),
        imp: EMBASSY.into(),
        metric: metric.into(),
        text: value.to_string(),
        value: value as f64,
    }
}

/// The anchor's instruction counts, as `impl=embassy` samples.
fn anchor_samples(stdout: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in stdout.lines() {
        for &(prefix, bench) in ANCHOR_LINES {
            let Some(rest) = line.trim().strip_prefix(prefix) else { continue };
            let number = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            if let Some(number) = number {
                samples.push(sample(bench, "instructions", number));
            }
        }
    }
    samples
}

/// The size in bytes of the anchor's `parked` task pool, from the ELF's symbol table.
fn parked_task_bytes(elf: &Path) -> Result<u64, String> {
    let nm = NM_TOOLS
        .iter()
        .find_map(|tool| crate::find_in_path(tool))
        .ok_or_else(|| format!("none of {} is installed", NM_TOOLS.join(", ")))?;
    let output = Command::new(&nm)
        .args(["-S", "-C"])
        .arg(elf)
        .output()
        .map_err(|error| format!("could not run {}: {error}", nm.display()))?;
    if !output.status.success() {
        return Err(format!("{} {} failed ({})", nm.display(), elf.display(), output.status));
    }
    pool_size(&String::from_utf8_lossy(&output.stdout), PARKED_POOL)
        .ok_or_else(|| format!("no symbol {PARKED_POOL} with a size in {}", elf.display()))
}

/// The size of the symbol starting with `name` in `nm -S -C` output (`ADDR SIZE TYPE NAME`;
/// the demangled name ends with its hash).
fn pool_size(nm_output: &str, name: &str) -> Option<u64> {
    nm_output.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (_, size, _, symbol) = (words.next()?, words.next()?, words.next()?, words.next()?);
        let rest = symbol.strip_prefix(name)?;
        (rest.is_empty() || rest.starts_with("::")).then(|| u64::from_str_radix(size, 16).ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_anchor_sentences() {
        let stdout = "Timer with period zero, disabling\n\
                      embassy yield_now: 72 ns-virtual per yield\n\
                      embassy channel(1) ping-pong: 460 ns-virtual per round trip\n\
                      embassy spawn+complete trivial task: 315 ns-virtual each\n\
                      DONE after 186 ms\n";
        let samples = anchor_samples(stdout);
        let figures: Vec<_> = samples.iter().map(|s| (s.bench.as_str(), s.value)).collect();
        assert_eq!(figures, [("mcu_yield", 72.0), ("mcu_channel", 460.0), ("mcu_spawn", 315.0)]);
        assert!(samples.iter().all(|s| s.imp == "embassy" && s.metric == "instructions"));
    }

    #[test]
    fn reads_the_pool_size() {
        let nm = "\
200000d8 00000020 b anchor_embassy::parked::POOL::h23511e2892f5963f
200000f8 00000028 b anchor_embassy::pinger::POOL::h4eb73c30a8eadea2
20000170 00000040 b anchor_embassy::parked::POOLS_OTHER::ha094edcd9180950b
";
        assert_eq!(pool_size(nm, PARKED_POOL), Some(32));
        assert_eq!(pool_size(nm, "anchor_embassy::pinger::POOL"), Some(40));
        assert_eq!(pool_size(nm, "anchor_embassy::ponger::POOL"), None);
        assert_eq!(pool_size("20000000 b anchor_embassy::parked::POOL::h1\n", PARKED_POOL), None);
    }

    #[test]
    fn compares_ours_with_embassy() {
        let output = "bench=mcu_yield impl=gevent-rs metric=instructions value=144\n\
                      bench=mcu_yield impl=embassy metric=instructions value=72\n";
        let table = comparison_table_with(&parse_results(output), &[EMBASSY]);
        let row = table.lines().nth(1).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["mcu_yield", "instructions", "lower", "144", "72", "(2.00x)"]
        );
    }
}
