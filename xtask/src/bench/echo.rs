//! `cargo xtask bench echo` without `--anchors`: our echo server pinned to CPU 0 and the
//! anchors' `echo_load` pinned to CPU 1, measured as `run.sh` measures them: round trips per
//! second from `echo_load`, and the server's CPU time (user + system, `/proc/PID/stat`) per
//! round trip.

use std::env;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use super::{OURS, parse_line};

/// `run.sh`'s defaults.
const DEFAULT_SECS: u32 = 10;
const DEFAULT_PORT: u16 = 9123;
/// Connections `echo_load` opens, as `run.sh` asks.
const CONNECTIONS: &str = "100";

/// Runs the echo workload `runs` times, printing each run's two result lines.
pub(super) fn run(
    anchors_dir: &Path,
    bin: &Path,
    secs: Option<u32>,
    runs: u32,
) -> Result<(), String> {
    let (secs, port) = secs_and_port(secs)?;
    let load = build_echo_load(anchors_dir)?;
    let taskset = crate::find_in_path("taskset");
    if taskset.is_none() {
        eprintln!("note: taskset not found; the server and the load run unpinned");
    }
    for _ in 0..runs {
        one_run(bin, &load, taskset.as_deref(), port, secs)?;
    }
    Ok(())
}

/// How long to load a server (`--secs`, else `$SECS`, else run.sh's default) and on which port
/// (`$PORT`, else run.sh's default).
pub(super) fn secs_and_port(secs: Option<u32>) -> Result<(u32, u16), String> {
    let secs = match secs {
        Some(secs) => secs,
        None => match env::var("SECS") {
            Ok(secs) => secs.parse().map_err(|_| format!("SECS is not a number: '{secs}'"))?,
            Err(_) => DEFAULT_SECS,
        },
    };
    let port = match env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| format!("PORT is not a port number: '{port}'"))?,
        Err(_) => DEFAULT_PORT,
    };
    Ok((secs, port))
}

/// Builds the anchors' Rust package (as `run.sh` does) and returns the path of `echo_load`.
fn build_echo_load(anchors_dir: &Path) -> Result<PathBuf, String> {
    let target_dir = match env::var_os("TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .ok_or("neither TARGET_DIR nor HOME is set: where should echo_load be built?")?
            .join("anchors-target"),
    };
    let manifest = anchors_dir.join("rust/Cargo.toml");
    release_build(&manifest, &target_dir, &["--bin", "echo_load"])?;
    Ok(target_dir.join("release/echo_load"))
}

/// `cargo build --release` of a package outside the workspace (`manifest`) into `target_dir`.
pub(super) fn release_build(
    manifest: &Path,
    target_dir: &Path,
    args: &[&str],
) -> Result<(), String> {
    let shown = args.iter().map(|a| format!("{a} ")).collect::<String>();
    eprintln!("==> cargo build --release {shown}--manifest-path {}", manifest.display());
    let status = Command::new(crate::cargo())
        .args(["build", "--quiet", "--release"])
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .map_err(|error| format!("could not run cargo: {error}"))?;
    if !status.success() {
        return Err(format!("building {} failed ({status})", manifest.display()));
    }
    Ok(())
}

/// `program args..`, pinned to `cpu` when `taskset` is there.
pub(super) fn pinned(taskset: Option<&Path>, cpu: &str, program: &Path) -> Command {
    match taskset {
        // taskset execs the program, so the child's pid is the program's.
        Some(taskset) => {
            let mut command = Command::new(taskset);
            command.args(["-c", cpu]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Kills the server when the run ends, however it ends.
pub(super) struct Server(pub(super) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn one_run(
    bin: &Path,
    load: &Path,
    taskset: Option<&Path>,
    port: u16,
    secs: u32,
) -> Result<(), String> {
    let (output, seconds) = load_server(bin, "echo", taskset, port, || {
        pinned(taskset, "1", load)
            .args([&port.to_string(), OURS, CONNECTIONS, &secs.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|error| format!("could not run {}: {error}", load.display()))
    })?;
    if !output.status.success() {
        return Err(format!("echo_load failed ({})", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rate = stdout
        .lines()
        .filter_map(parse_line)
        .find(|sample| sample.metric == "round_trips_per_s")
        .ok_or_else(|| format!("echo_load printed no round_trips_per_s line: {stdout:?}"))?;
    println!("{}", stdout.trim_end());
    let ns_per_op = seconds * 1e9 / (rate.value * f64::from(secs));
    println!("bench=echo impl={OURS} metric=server_cpu_ns_per_op value={ns_per_op:.1}");
    Ok(())
}

/// Starts `bin <workload> <port>` pinned to CPU 0, waits for it to listen, runs `load`, and
/// returns the load's output and the CPU time (user + system, seconds) the server spent
/// meanwhile. The server is killed when this returns.
pub(super) fn load_server(
    bin: &Path,
    workload: &str,
    taskset: Option<&Path>,
    port: u16,
    load: impl FnOnce() -> Result<Output, String>,
) -> Result<(Output, f64), String> {
    let child = pinned(taskset, "0", bin)
        .args([workload, &port.to_string()])
        .spawn()
        .map_err(|error| format!("could not start {}: {error}", bin.display()))?;
    let mut server = Server(child);
    wait_for_port(&mut server.0, port)?;
    let pid = server.0.id();
    let ticks0 = cpu_ticks(pid)?;
    let output = load()?;
    let ticks = cpu_ticks(pid)? - ticks0;
    Ok((output, ticks as f64 / clock_ticks_per_second() as f64))
}

/// Waits up to 10 s for the server to accept connections, as `run.sh` does.
pub(super) fn wait_for_port(server: &mut Child, port: u16) -> Result<(), String> {
    for _ in 0..100 {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("the server exited ({status})"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!("the server did not come up on port {port}"))
}

/// User + system CPU time of process `pid`, in clock ticks (fields 14 and 15 of its stat).
pub(super) fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|error| format!("reading the server's CPU time: {error}"))?;
    // The command name, in parentheses, may hold spaces: count fields after its end.
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split(' ').collect()).unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|field| field.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => Err(format!("cannot read the CPU time in /proc/{pid}/stat: {stat:?}")),
    }
}

/// `getconf CLK_TCK`: the unit of `/proc/PID/stat`'s times (100 on Linux, whatever the kernel's HZ).
pub(super) fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}
