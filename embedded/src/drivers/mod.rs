//! Network device drivers, each behind its own feature: smoltcp [`Device`](smoltcp::phy::Device)s
//! to hand to [`init_net`](crate::init_net)'s drive closure.

#[cfg(feature = "lan9118")]
pub mod lan9118;

#[cfg(feature = "embassy-net-driver")]
pub mod embassy;
