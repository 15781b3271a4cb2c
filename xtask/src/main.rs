//! The project's own tasks, run with `cargo xtask <command>` (see `.cargo/config.toml`):
//!
//! - `cargo xtask test [--quick]`: the whole test matrix (formatting, clippy, the tests of each
//!   package, docs, miri, `no_std` and cross-target builds, the demo), the one thing CI runs.
//! - `cargo xtask bench [--anchors] [--runs N] [WORKLOAD...]`: the benchmarks of
//!   `shared/anchors/README.md`, alone or side by side with the anchor implementations.
//!
//! Std only and no dependencies, so that it builds in seconds and whatever state the rest of the
//! workspace is in.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on its standard output and error"
)]

mod bench;
mod flags;
mod step;
mod test;

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let command = match flags::parse(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error}\n");
            eprint!("{}", flags::HELP);
            return ExitCode::from(2);
        }
    };
    let result = match command {
        flags::Command::Help => {
            print!("{}", flags::HELP);
            Ok(())
        }
        flags::Command::Test(test) => test.run(),
        flags::Command::Bench(bench) => bench.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (`$CARGO`, set by `cargo run`), so every step uses the same toolchain.
pub(crate) fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Where `name` is found on `$PATH`, if it is.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(name)).find(|path| path.is_file())
}
