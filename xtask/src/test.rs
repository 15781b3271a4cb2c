//! `cargo xtask test`: the whole test matrix, one step after another.

use std::process::Command;

use crate::flags;

mod lean;
mod net_firmware;
use crate::step::Steps;

/// The firmware examples, each its own cargo project run under `qemu-system-arm` (not with
/// `--quick`): (step name, folder).
const FIRMWARE: &[(&str, &str)] = &[
    ("firmware lm3s6965 (cortex-m3) under qemu", "examples/firmware-lm3s6965"),
    ("firmware mps2-an386 (cortex-m4f) under qemu", "examples/firmware-mps2-an386"),
    ("firmware stack-guard (cortex-m3, mpu) under qemu", "examples/firmware-stack-guard"),
    ("firmware microbit (cortex-m0, no compare-and-swap) under qemu", "examples/firmware-microbit"),
    // Its figures are for `cargo xtask bench --embedded`; here it checks what they compute.
    ("firmware bench (cortex-m3) under qemu", "examples/firmware-bench"),
];

/// Firmware runs that must fail, printing a message: `(step, folder, cargo features, message)`.
const FIRMWARE_FAULTS: &[(&str, &str, &str, &str)] = &[(
    "firmware stack-guard catches an overflow under qemu",
    "examples/firmware-stack-guard",
    "overflow-test",
    "greenlet deep overflowed its stack",
)];

/// Where the fuzz step keeps the inputs its run finds (its first corpus argument).
const FUZZ_SCRATCH: &str = "target/fuzz-corpus/http_request";

/// Whether `--quick` runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// Every time.
    Always,
    /// Not with `--quick`: miri, loom, ASan, the release-mode tests, the cross-target steps.
    Full,
}
use Runs::{Always, Full};

/// `cargo` is the cargo that runs xtask (`$CARGO`), so every step uses the same toolchain;
/// when the first argument picks a toolchain (`+nightly`) it is the rustup proxy on `$PATH`.
const CARGO: &str = "cargo";

/// One step: (name, when it runs, program, arguments, environment).
///
/// The arguments are split on whitespace, so none of them may contain a space (environment
/// values may).
type Step =
    (&'static str, Runs, &'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The steps, in the order they run.
const STEPS: &[Step] = &[
    ("fmt", Always, CARGO, "fmt --all --check", &[]),
    ("clippy", Always, CARGO, "clippy --workspace --all-targets -- -D warnings", &[]),
    (
        "clippy core no_std",
        Full,
        CARGO,
        "clippy -p gevent-core --no-default-features --target thumbv7m-none-eabi -- -D warnings",
        &[],
    ),
    // Every package together, as `cargo test` at the root does: the features cargo unifies
    // across them (gevent-core's `std`, `sim` and `default-platform`) are what each package's
    // tests enable through their dev-dependencies anyway.
    ("test", Always, CARGO, "test --workspace", &[]),
    // The optional system root store of `gevent::tls`, in its own test binary (it sets
    // `SSL_CERT_FILE`).
    (
        "test tls native roots",
        Always,
        CARGO,
        "test -p gevent --features tls-native-roots --test tls_native_roots",
        &[],
    ),
    // Stack switching in release mode, one test at a time so that a crash names its test.
    (
        "test hosted release",
        Full,
        CARGO,
        "test --release -p gevent -p gevent-tests",
        &[("RUST_TEST_THREADS", "1")],
    ),
    // The resume hook the MPU stack guard uses, a feature no other package turns on.
    (
        "test core resume hook",
        Always,
        CARGO,
        "test -p gevent-core --features std,sim,resume-hook --test resume_hook",
        &[],
    ),
    // Greenlets switched by corosensei, the backend of the architectures without gevent-core's
    // own switch, on this machine too.
    (
        "test core corosensei switch",
        Always,
        CARGO,
        "test -p gevent-core --features std,sim,corosensei-switch",
        &[],
    ),
    ("doc", Always, CARGO, "doc --workspace --no-deps", &[("RUSTDOCFLAGS", "-D warnings")]),
    // gevent-embedded's optional parts (protocols, drivers, the MPU guard) are off in the
    // workspace's build of the docs (its tests turn them on through a dev-dependency).
    (
        "doc embedded all features",
        Always,
        CARGO,
        "doc -p gevent-embedded --all-features --no-deps",
        &[("RUSTDOCFLAGS", "-D warnings")],
    ),
    // Everything in gevent-core that runs without a context switch (corosensei's inline
    // assembly is beyond Miri): the data structures' unit tests and `hub_without_switching`;
    // the other tests and the doctests are `cfg(not(miri))`.
    // Its build directory named, so that `--lean` can remove it.
    (
        "miri",
        Full,
        CARGO,
        "+nightly miri test -p gevent-core",
        &[("CARGO_TARGET_DIR", "target/miri")],
    ),
    // The cross-thread post/wake protocol under the loom model checker. `--cfg loom` changes
    // every crate's flags, so it builds in a target directory of its own rather than evicting
    // the normal build; debug, because the models are small enough that building dominates.
    (
        "loom",
        Full,
        CARGO,
        "test -p gevent-core --features std --lib loom",
        &[("RUSTFLAGS", "--cfg loom"), ("CARGO_TARGET_DIR", "target/loom")],
    ),
    // The regression tests under AddressSanitizer: core's on the simulated hub, hosted's (I/O
    // registration, cross-thread posts, the hub) and the child-process scenarios (thread-locals
    // at exit, stack overflow, stack sizes). Not the doctests: they are examples.
    // - `--target` keeps build scripts and proc macros (built for the host) uninstrumented; a
    //   target directory of its own keeps the flags from evicting the normal build.
    // - No `-Zbuild-std`: the precompiled std is not instrumented, but its allocations go
    //   through ASan's malloc, and the generic std code our crates use (`Vec`, `RefCell`...) is
    //   compiled into them, instrumented. That catches the thread-local use-after-free
    //   at exit on the code before its fix; an instrumented std almost doubles the step's time.
    // - Every stack switch is told to ASan (`__sanitizer_start_switch_fiber`): by core's own
    //   switch under `cfg(gevent_switch_asan)` (core/build.rs sets it for ASan builds), and by
    //   `corosensei/sanitizer` where corosensei still switches (the feature is harmless here,
    //   on x86-64, where core's own switch runs). Without it ASan takes greenlet stacks for
    //   garbage, and after a panic unwinds on one it leaves the unwound frames poisoned.
    // - `detect_stack_use_after_return=1`: each frame whose address is taken lives on a
    //   "fake stack" (one per greenlet, with the annotations), and stays poisoned after its
    //   function returns, so a pointer into a returned frame is caught. Core's switch clears
    //   a stack's marks as it takes it back from a greenlet that ended
    //   (`asan::forget_frames`): without that, marks left by its last frames made a `memcpy`
    //   into a local ASan does not manage fail as an overflow, in about 1 run in 30 of
    //   hosted's `http_client`.
    //   (The stack high-water test skips its comparison when frames live on a fake stack.)
    // - `detect_leaks=0`: greenlets still alive when their thread exits are leaked on purpose
    //   (resuming them would read freed thread-locals), as are a `kill_timeout` target that
    //   never ends and a scope's stuck children; a leak is no memory error, and every access
    //   to freed or out-of-bounds memory is still reported.
    // Child processes inherit `ASAN_OPTIONS`. Tests that cannot hold under ASan (greenlets on
    // stacks of a few KiB, which its redzones overflow) are ignored under `--cfg gevent_asan`.
    (
        "asan",
        Full,
        CARGO,
        "+nightly test --target x86_64-unknown-linux-gnu -p gevent-core -p gevent -p gevent-tests \
         --features corosensei/sanitizer --tests",
        &[
            ("RUSTFLAGS", "-Zsanitizer=address --cfg gevent_asan"),
            ("CARGO_TARGET_DIR", "target/asan"),
            ("ASAN_OPTIONS", "detect_stack_use_after_return=1:detect_leaks=0"),
        ],
    ),
    (
        "build core thumbv7m",
        Full,
        CARGO,
        "build -p gevent-core --no-default-features --target thumbv7m-none-eabi",
        &[],
    ),
    // Cortex-M0/M0+: atomic loads and stores but no compare-and-swap (`gevent_core::shared`).
    (
        "clippy core thumbv6m",
        Full,
        CARGO,
        "clippy -p gevent-core --no-default-features --target thumbv6m-none-eabi -- -D warnings",
        &[],
    ),
    (
        "clippy embedded thumbv6m",
        Full,
        CARGO,
        "clippy -p gevent-embedded --features defmt,ipv6,icmp,raw,multicast,dhcpv4,dns,lan9118 \
         --target thumbv6m-none-eabi -- -D warnings",
        &[],
    ),
    (
        "build core riscv32imac",
        Full,
        CARGO,
        "build -p gevent-core --no-default-features --target riscv32imac-unknown-none-elf",
        &[],
    ),
    (
        "build embedded thumbv7m",
        Full,
        CARGO,
        "build -p gevent-embedded --target thumbv7m-none-eabi",
        &[],
    ),
    (
        "build embedded thumbv7em",
        Full,
        CARGO,
        "build -p gevent-embedded --target thumbv7em-none-eabi",
        &[],
    ),
    // Every optional part (defmt, the protocols, drivers, the MPU guard) on the chip it is
    // for: what the host tests cannot build (the MPU guard is ARM-only).
    (
        "clippy embedded thumbv7m all features",
        Full,
        CARGO,
        "clippy -p gevent-embedded --all-features --target thumbv7m-none-eabi -- -D warnings",
        &[],
    ),
    (
        "build embedded riscv32imac",
        Full,
        CARGO,
        "build -p gevent-embedded --target riscv32imac-unknown-none-elf",
        &[],
    ),
    // kqueue is type-checked only: nothing here can run macOS or FreeBSD binaries. Without the
    // `tls` feature on macOS: ring's C code cannot be built for Apple without Apple's toolchain
    // (TLS is portable rustls code; the OS layer is what these steps check).
    (
        "check hosted macos",
        Full,
        CARGO,
        "check -p gevent --no-default-features --features http --target aarch64-apple-darwin",
        &[],
    ),
    (
        "check hosted tests macos",
        Full,
        CARGO,
        "check -p gevent --tests --no-default-features --features http --target aarch64-apple-darwin",
        &[],
    ),
    ("check hosted freebsd", Full, CARGO, "check -p gevent --target x86_64-unknown-freebsd", &[]),
    (
        "check hosted tests freebsd",
        Full,
        CARGO,
        "check -p gevent --tests --target x86_64-unknown-freebsd",
        &[],
    ),
    // The HTTP request parser under libFuzzer for a bounded time (`fuzz/`, its own cargo
    // project). New inputs go to a scratch corpus under `target/`, seeded with the committed
    // one, so that the run leaves the tree unchanged; an input running 10 s is a hang.
    (
        "fuzz http_request",
        Full,
        CARGO,
        "+nightly fuzz run http_request target/fuzz-corpus/http_request fuzz/corpus/http_request \
         -- -max_total_time=60 -timeout=10",
        &[],
    ),
    ("demo", Always, CARGO, "run --release -p gevent-examples --example demo", &[]),
];

impl flags::Test {
    /// Runs every step (but the slow ones with `--quick`), then prints the summary.
    pub(crate) fn run(self) -> Result<(), String> {
        let root = crate::project_root();
        let mut steps = Steps::new();
        let lean = lean::Lean::new(&root, self.lean);
        // The "fuzz http_request" step's scratch corpus: cargo-fuzz refuses a missing one.
        if let Err(e) = std::fs::create_dir_all(root.join(FUZZ_SCRATCH)) {
            return Err(format!("creating {FUZZ_SCRATCH}: {e}"));
        }
        // Steps other than `--only`'s are not run (nor listed); slow ones are skipped with
        // `--quick`.
        let chosen =
            |name: &str| self.only.as_ref().is_none_or(|only| name.contains(only.as_str()));
        let left_out = |runs: Runs| self.quick && runs == Full;
        for &(name, runs, program, args, env) in STEPS {
            if !chosen(name) {
                continue;
            }
            if left_out(runs) {
                steps.skip(name);
                continue;
            }
            let own_dir = own_build_dir(args, env);
            let args: Vec<_> = args.split_whitespace().collect();
            let mut command = match program {
                CARGO if args.first().is_some_and(|arg| arg.starts_with('+')) => {
                    Command::new(CARGO)
                }
                CARGO => Command::new(crate::cargo()),
                other => Command::new(other),
            };
            command.args(args).envs(env.iter().copied()).current_dir(&root);
            steps.run(name, &mut command);
            lean.after_step(own_dir);
        }
        // The firmware is its own cargo project (its target and QEMU runner are set in its
        // `.cargo/config.toml`, which cargo reads from the working directory); `timeout` stops
        // a firmware that hangs instead of ending with a semihosting exit.
        for &(name, folder) in FIRMWARE {
            if !chosen(name) {
                continue;
            }
            if left_out(Full) {
                steps.skip(name);
                continue;
            }
            let mut command = Command::new("timeout");
            command.args(["300", "cargo", "run", "--release"]).current_dir(root.join(folder));
            steps.run(name, &mut command);
            let used_later = FIRMWARE_FAULTS
                .iter()
                .any(|&(later, again, ..)| again == folder && chosen(later) && !left_out(Full));
            lean.after_step((!used_later).then(|| format!("{folder}/target")).as_deref());
        }
        for &(name, folder, features, message) in FIRMWARE_FAULTS {
            if !chosen(name) {
                continue;
            }
            if left_out(Full) {
                steps.skip(name);
                continue;
            }
            // Passes when the run fails (a fault ends it with a failure status) and said why.
            let script = format!(
                "out=$(timeout 300 cargo run --release --features {features} 2>&1); status=$?; \
                 printf '%s\\n' \"$out\"; [ $status -ne 0 ] && printf '%s' \"$out\" | grep -qF '{message}'"
            );
            let mut command = Command::new("sh");
            command.args(["-c", &script]).current_dir(root.join(folder));
            steps.run(name, &mut command);
            lean.after_step(Some(&format!("{folder}/target")));
        }
        if !chosen(net_firmware::NAME) {
        } else if left_out(Full) {
            steps.skip(net_firmware::NAME);
        } else {
            steps.run_check(net_firmware::NAME, || net_firmware::run(&root));
            lean.after_step(Some(&format!("{}/target", net_firmware::FOLDER)));
        }
        steps.finish()
    }
}

/// The build directory a step of [`STEPS`] has to itself, which `--lean` removes after it:
/// the one its environment names, or the fuzz project's (`fuzz/target`, where `cargo fuzz`
/// builds).
fn own_build_dir(args: &str, env: &[(&'static str, &'static str)]) -> Option<&'static str> {
    if args.split_whitespace().nth(1) == Some("fuzz") {
        return Some("fuzz/target");
    }
    env.iter().find(|(key, _)| *key == "CARGO_TARGET_DIR").map(|&(_, dir)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_have_distinct_names() {
        let mut names = Vec::new();
        for &(name, ..) in STEPS {
            assert!(!names.contains(&name), "two steps named {name}");
            names.push(name);
        }
    }

    #[test]
    fn lean_removes_only_the_build_directories_steps_have_to_themselves() {
        let own: Vec<_> = STEPS
            .iter()
            .filter_map(|&(name, _, _, args, env)| Some((name, own_build_dir(args, env)?)))
            .collect();
        assert_eq!(
            own,
            [
                ("miri", "target/miri"),
                ("loom", "target/loom"),
                ("asan", "target/asan"),
                ("fuzz http_request", "fuzz/target"),
            ]
        );
    }

    #[test]
    fn the_fuzz_step_writes_to_the_scratch_corpus() {
        let (.., args, _) = STEPS.iter().find(|step| step.0 == "fuzz http_request").unwrap();
        assert_eq!(args.split_whitespace().nth(4), Some(FUZZ_SCRATCH));
    }
}
