//! Tells the code whether the target is an M-profile ARM core (Cortex-M), where the hub can
//! read IPSR to refuse to switch greenlets inside an interrupt handler (`hub/context.rs`).
//! Rust has no stable `cfg` for the M profile; the target's name says it, as `cortex-m`'s own
//! build script reads it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gevent_cortex_m)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let m_profile = ["thumbv6m-", "thumbv7m-", "thumbv7em-", "thumbv8m."];
    if m_profile.iter().any(|prefix| target.starts_with(prefix)) {
        println!("cargo::rustc-cfg=gevent_cortex_m");
    }
}
