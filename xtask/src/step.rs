//! Runs the steps of a task one after another, timing each, and sums them up at the end.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs steps and remembers how each went; a failed step does not stop the next one.
#[derive(Debug)]
pub(crate) struct Steps {
    done: Vec<Done>,
    start: Instant,
}

/// How a step went.
#[derive(Debug)]
struct Done {
    name: String,
    status: Status,
    secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Failed,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "FAILED",
            Self::Skipped => "skipped",
        }
    }
}

impl Steps {
    /// No steps run yet; the total time starts now.
    pub(crate) fn new() -> Self {
        Self { done: Vec::new(), start: Instant::now() }
    }

    /// Runs `command` as the step `name`: prints `==> name` and the command line, lets the
    /// command's output through, then prints `ok name (secs)` or `FAILED name (secs)`.
    /// Returns whether it succeeded.
    pub(crate) fn run(&mut self, name: &str, command: &mut Command) -> bool {
        println!("\n==> {name}\n$ {}", display(command));
        let start = Instant::now();
        let ok = match command.status() {
            Ok(status) if status.success() => true,
            Ok(status) => {
                println!("{name}: {status}");
                false
            }
            Err(error) => {
                println!("{name}: could not run {}: {error}", program_name(command));
                false
            }
        };
        let secs = start.elapsed().as_secs_f64();
        let status = if ok { Status::Ok } else { Status::Failed };
        println!("{} {name} ({secs:.1}s)", status.as_str());
        self.done.push(Done { name: name.to_owned(), status, secs });
        ok
    }

    /// Runs `check` as the step `name`, reporting as [`run`](Self::run) does, with the error
    /// `check` returns as the reason it failed. Returns whether it succeeded.
    pub(crate) fn run_check(
        &mut self,
        name: &str,
        check: impl FnOnce() -> Result<(), String>,
    ) -> bool {
        println!("\n==> {name}");
        let start = Instant::now();
        let result = check();
        if let Err(error) = &result {
            println!("{name}: {error}");
        }
        let secs = start.elapsed().as_secs_f64();
        let status = if result.is_ok() { Status::Ok } else { Status::Failed };
        println!("{} {name} ({secs:.1}s)", status.as_str());
        self.done.push(Done { name: name.to_owned(), status, secs });
        result.is_ok()
    }

    /// Records that the step `name` was left out on purpose.
    pub(crate) fn skip(&mut self, name: &str) {
        self.done.push(Done { name: name.to_owned(), status: Status::Skipped, secs: 0.0 });
    }

    /// Prints the summary table and the total; fails if any step failed.
    pub(crate) fn finish(self) -> Result<(), String> {
        println!("\n==> summary");
        for done in &self.done {
            let secs = match done.status {
                Status::Skipped => String::new(),
                Status::Ok | Status::Failed => format!("{:.1}s", done.secs),
            };
            println!("{:<8} {secs:>8}  {}", done.status.as_str(), done.name);
        }
        let failed = self.done.iter().filter(|done| done.status == Status::Failed).count();
        let ran = self.done.iter().filter(|done| done.status != Status::Skipped).count();
        println!(
            "total {:.1}s: {ran} steps run, {failed} failed",
            self.start.elapsed().as_secs_f64()
        );
        match failed {
            0 => Ok(()),
            1 => Err("1 step failed".into()),
            n => Err(format!("{n} steps failed")),
        }
    }
}

/// The command line as a shell would take it: `VAR='a b' program arg...`, with the program by
/// its file name only (`$CARGO` is a long toolchain path).
fn display(command: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            words.push(format!("{}={}", key.to_string_lossy(), quote(value)));
        }
    }
    words.push(program_name(command));
    words.extend(command.get_args().map(quote));
    words.join(" ")
}

fn program_name(command: &Command) -> String {
    let program = Path::new(command.get_program());
    program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned()
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "+-_./:=,@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{word}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_command_lines() {
        let mut command = Command::new("/toolchain/bin/cargo");
        command.args(["doc", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(display(&command), "RUSTDOCFLAGS='-D warnings' cargo doc --no-deps");
    }
}
