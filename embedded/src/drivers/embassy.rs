//! NIC drivers written for embassy under greenlets: [`EmbassyDevice`] adapts an
//! [`embassy_net_driver::Driver`] to smoltcp's [`Device`], for [`init_net`](crate::init_net)'s
//! drive closure.
//!
//! An embassy driver is polled with a task [`Context`]: when it has no frame to give or no
//! room to send, it keeps the context's waker and wakes it when that changes (from its
//! interrupt handler, typically). The adapter hands it a waker that wakes the hub
//! ([`HubHandle::wake`], callable from any thread or handler): that sets the wake flag the
//! [`NetPoller`](crate::net::NetPoller) looks at, in the critical section in which it decides
//! to sleep, so a frame whose interrupt was handled after the driver last said it had none,
//! but before the hub went to sleep, is polled for at once instead of waiting for the next
//! interrupt (forever, on a hub with no timer armed).

use alloc::sync::Arc;
use alloc::task::Wake;
use core::fmt;
use core::task::{Context, Waker};

use embassy_net_driver::{Checksum, Driver, HardwareAddress, LinkState};
use gevent_core::HubHandle;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire;

/// A driver's medium that this crate's smoltcp does not support (IEEE 802.15.4, or one added
/// to `embassy-net-driver` later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedMedium;

impl fmt::Display for UnsupportedMedium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the driver's medium is neither Ethernet nor IP")
    }
}

impl core::error::Error for UnsupportedMedium {}

/// Wakes the hub: the waker embassy drivers get.
struct HubWaker(HubHandle);

impl Wake for HubWaker {
    fn wake(self: Arc<Self>) {
        self.0.wake();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake();
    }
}

/// An embassy-net driver as a smoltcp [`Device`].
pub struct EmbassyDevice<D> {
    driver: D,
    medium: Medium,
    /// Made at the first poll, from the hub that polls (none exists before `init_net`).
    waker: Option<Waker>,
}

impl<D> fmt::Debug for EmbassyDevice<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbassyDevice").field("medium", &self.medium).finish_non_exhaustive()
    }
}

impl<D: Driver> EmbassyDevice<D> {
    /// Adapts `driver`, an Ethernet or IP one.
    pub fn new(driver: D) -> Result<Self, UnsupportedMedium> {
        let medium = match driver.hardware_address() {
            HardwareAddress::Ethernet(_) => Medium::Ethernet,
            HardwareAddress::Ip => Medium::Ip,
            _ => return Err(UnsupportedMedium),
        };
        Ok(EmbassyDevice { driver, medium, waker: None })
    }

    /// The driver's hardware address, for the interface's `Config`.
    pub fn hardware_address(&self) -> wire::HardwareAddress {
        match self.driver.hardware_address() {
            HardwareAddress::Ethernet(mac) => {
                wire::HardwareAddress::Ethernet(wire::EthernetAddress(mac))
            }
            // `new` accepted only Ethernet and IP, and a driver's address keeps its kind.
            _ => wire::HardwareAddress::Ip,
        }
    }

    /// Whether the driver reports its link up (it wakes the hub when that changes). Callable
    /// before [`init_net`](crate::init_net) too: until the hub first polls the device, the
    /// driver gets a waker that does nothing (there is no hub to wake yet).
    pub fn link_up(&mut self) -> bool {
        let state = match &self.waker {
            Some(waker) => self.driver.link_state(&mut Context::from_waker(waker)),
            None => self.driver.link_state(&mut Context::from_waker(Waker::noop())),
        };
        matches!(state, LinkState::Up)
    }

    /// The adapted driver.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }
}

fn hub_waker() -> Waker {
    Waker::from(Arc::new(HubWaker(gevent_core::hub_handle())))
}

/// A received frame of the driver.
pub struct EmbassyRxToken<T>(T);

impl<T> fmt::Debug for EmbassyRxToken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmbassyRxToken")
    }
}

impl<T: embassy_net_driver::RxToken> phy::RxToken for EmbassyRxToken<T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume(|frame| f(frame))
    }
}

/// Room for a frame in the driver.
pub struct EmbassyTxToken<T>(T);

impl<T> fmt::Debug for EmbassyTxToken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmbassyTxToken")
    }
}

impl<T: embassy_net_driver::TxToken> phy::TxToken for EmbassyTxToken<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }
}

fn checksum(c: Checksum) -> phy::Checksum {
    match c {
        Checksum::Both => phy::Checksum::Both,
        Checksum::Rx => phy::Checksum::Rx,
        Checksum::Tx => phy::Checksum::Tx,
        Checksum::None => phy::Checksum::None,
    }
}

impl<D: Driver> Device for EmbassyDevice<D> {
    type RxToken<'a>
        = EmbassyRxToken<D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = EmbassyTxToken<D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let waker = self.waker.get_or_insert_with(hub_waker);
        let (rx, tx) = self.driver.receive(&mut Context::from_waker(waker))?;
        Some((EmbassyRxToken(rx), EmbassyTxToken(tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        let waker = self.waker.get_or_insert_with(hub_waker);
        self.driver.transmit(&mut Context::from_waker(waker)).map(EmbassyTxToken)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let theirs = self.driver.capabilities();
        let mut caps = DeviceCapabilities::default();
        caps.medium = self.medium;
        caps.max_transmission_unit = theirs.max_transmission_unit;
        caps.max_burst_size = theirs.max_burst_size;
        caps.checksum.ipv4 = checksum(theirs.checksum.ipv4);
        caps.checksum.udp = checksum(theirs.checksum.udp);
        caps.checksum.tcp = checksum(theirs.checksum.tcp);
        caps.checksum.icmpv4 = checksum(theirs.checksum.icmpv4);
        #[cfg(feature = "ipv6")]
        {
            caps.checksum.icmpv6 = checksum(theirs.checksum.icmpv6);
        }
        caps
    }
}
