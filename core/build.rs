//! Tells the code what Rust has no stable `cfg` for, from the target's name (as `cortex-m`'s
//! own build script reads it):
//!
//! - `gevent_cortex_m`: an M-profile ARM core (Cortex-M), where the hub can read IPSR to
//!   refuse to switch greenlets inside an interrupt handler (`hub/context.rs`).
//! - `gevent_thumb1`: one of those with only the Thumb-1 instruction set (v6-M, v8-M
//!   Baseline), whose push and pop reach only the low registers (`hub/switch/arch/arm.rs`).
//! - `gevent_own_switch`: greenlets switch with this crate's own assembly (`hub/switch`): on
//!   x86-64 under an operating system with the System V ABI and 64-bit pointers (not
//!   Windows's ABI, which Cygwin uses too, nor x32, whose pointers are 4 bytes where the
//!   switch stores 8, nor bare metal, whose kernels may run without SSE, which the switch
//!   uses) and on Cortex-M. Not under a sanitizer other than AddressSanitizer, which it
//!   tells of its stack switches (`gevent_switch_asan`, `hub/switch/asan.rs`), nor with the
//!   `corosensei-switch` feature, which asks for corosensei everywhere.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gevent_cortex_m)");
    println!("cargo::rustc-check-cfg=cfg(gevent_thumb1)");
    println!("cargo::rustc-check-cfg=cfg(gevent_own_switch)");
    println!("cargo::rustc-check-cfg=cfg(gevent_switch_asan)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let m_profile = ["thumbv6m-", "thumbv7m-", "thumbv7em-", "thumbv8m."];
    let cortex_m = m_profile.iter().any(|prefix| target.starts_with(prefix));
    if cortex_m {
        println!("cargo::rustc-cfg=gevent_cortex_m");
    }
    if target.starts_with("thumbv6m-") || target.starts_with("thumbv8m.base-") {
        println!("cargo::rustc-cfg=gevent_thumb1");
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let pointer_width = std::env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap_or_default();
    let hosted_x86_64 = arch == "x86_64"
        && pointer_width == "64"
        && !["windows", "cygwin", "uefi", "none"].contains(&os.as_str());
    let forced = std::env::var_os("CARGO_FEATURE_COROSENSEI_SWITCH").is_some();
    let sanitizers = std::env::var("CARGO_CFG_SANITIZE").unwrap_or_default();
    let asan = sanitizers.split(',').any(|s| s == "address");
    let other_sanitizer = sanitizers.split(',').any(|s| !s.is_empty() && s != "address");
    if (hosted_x86_64 || cortex_m) && !forced && !other_sanitizer {
        println!("cargo::rustc-cfg=gevent_own_switch");
        if asan {
            println!("cargo::rustc-cfg=gevent_switch_asan");
        }
    }
}
