//! Network device drivers, each behind its own feature: smoltcp [`Device`](smoltcp::phy::Device)s
//! to hand to [`init_net`](crate::init_net)'s drive closure.

#[cfg(feature = "lan9118")]
pub mod lan9118;

#[cfg(all(feature = "embassy-net-driver", target_has_atomic = "ptr"))]
pub mod embassy;
// Its drivers take a `core::task::Waker`, which safe code makes only from an `Arc`.
#[cfg(all(feature = "embassy-net-driver", not(target_has_atomic = "ptr")))]
compile_error!(
    "drivers::embassy needs atomic compare-and-swap, which this target lacks (a `Waker` is made \
     from an `Arc`)"
);
