//! `cargo xtask test --lean`: removes build directories no later step needs, for machines
//! with little disk.
//!
//! A full run builds the workspace four ways (debug, release, ASan, loom), under Miri, six
//! firmware projects and the fuzzer; kept together they need several times the disk any one
//! step does. Only the directories a step has to itself are removed (never `target/debug` or
//! `target/release`, which later steps and the next run reuse), each once its last user has
//! run, and the free space is printed after every step so that a run that runs out shows
//! where.

use std::path::Path;
use std::process::Command;
use std::{fs, io};

/// What `--lean` does after each step: nothing without the flag.
pub(super) struct Lean<'a> {
    root: &'a Path,
    on: bool,
}

impl<'a> Lean<'a> {
    /// For the steps run in `root`; `on`: whether `--lean` was given.
    pub(super) fn new(root: &'a Path, on: bool) -> Self {
        Lean { root, on }
    }

    /// After a step: removes `own_dir` (relative to the root), the build directory no later
    /// step needs, if any, then prints the free space.
    pub(super) fn after_step(&self, own_dir: Option<&str>) {
        if !self.on {
            return;
        }
        if let Some(dir) = own_dir {
            remove(self.root, dir);
        }
        match free_bytes(self.root) {
            Ok(bytes) => println!("lean: {} free", in_units(bytes)),
            Err(e) => println!("lean: could not tell the free space: {e}"),
        }
    }
}

/// Removes `dir` (relative to `root`), saying how much it freed; a directory that is not
/// there (a step that failed before building) is no error.
fn remove(root: &Path, dir: &str) {
    let path = root.join(dir);
    let bytes = size(&path);
    match fs::remove_dir_all(&path) {
        Ok(()) => println!("lean: removed {dir} ({})", in_units(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Not a failure of the step: the run goes on and may still fit.
        Err(e) => println!("lean: could not remove {dir}: {e}"),
    }
}

/// Free bytes on `root`'s file system, from POSIX `df -Pk` (xtask takes no dependencies, so
/// no `statvfs`).
fn free_bytes(root: &Path) -> Result<u64, String> {
    let output =
        Command::new("df").arg("-Pk").arg(root).output().map_err(|e| format!("running df: {e}"))?;
    if !output.status.success() {
        return Err(format!("df: {}", output.status));
    }
    parse_df(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| "df printed no line with the available space".into())
}

/// The available space of `df -Pk`'s one file system: the fourth field of its second line,
/// in KiB.
fn parse_df(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The bytes of the files under `path`; what cannot be read counts as empty.
fn size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = fs::read_dir(path) else { return 0 };
    entries.flatten().map(|entry| size(&entry.path())).sum()
}

/// `bytes` in MB or GB, one decimal.
fn in_units(bytes: u64) -> String {
    const MB: f64 = 1e6;
    const GB: f64 = 1e9;
    let bytes = bytes as f64;
    if bytes >= GB { format!("{:.1} GB", bytes / GB) } else { format!("{:.1} MB", bytes / MB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_available_column_of_df() {
        let text = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                    /dev/vda         263174212 81788108  14649344      85% /\n";
        assert_eq!(parse_df(text), Some(14_649_344 * 1024));
        assert_eq!(parse_df("Filesystem 1024-blocks Used Available\n"), None);
        assert_eq!(parse_df("header\n/dev/vda 1 2 lots 4% /\n"), None);
    }

    #[test]
    fn sizes_and_removes_a_tree() {
        let root = std::env::temp_dir().join(format!("xtask-lean-{}", std::process::id()));
        fs::create_dir_all(root.join("build/deep")).unwrap();
        fs::write(root.join("build/a"), [0u8; 100]).unwrap();
        fs::write(root.join("build/deep/b"), [0u8; 23]).unwrap();
        assert_eq!(size(&root.join("build")), 123);
        Lean::new(&root, false).after_step(Some("build"));
        assert!(root.join("build").exists(), "removed without --lean");
        Lean::new(&root, true).after_step(Some("build"));
        assert!(!root.join("build").exists());
        remove(&root, "build"); // gone already: nothing to do, no panic
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn prints_sizes_in_units() {
        assert_eq!(in_units(123_456_789), "123.5 MB");
        assert_eq!(in_units(3_200_000_000), "3.2 GB");
    }
}
