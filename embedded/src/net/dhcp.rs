//! DHCPv4 over smoltcp's DHCP client socket: [`start`] it, then [`wait_config_up`] blocks the
//! calling greenlet until a server has leased an address.
//!
//! The hub's [`NetPoller`] applies what the client reports after each poll of the interface: a
//! lease puts its address on the interface (in place of the previous lease's) and its router as
//! the default route; losing the lease takes both away. Addresses the firmware configured
//! itself stay. The lease's DNS servers are what [`dns::resolve`](super::dns::resolve) asks
//! when no servers were set.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use gevent_core::with_timeout;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::dhcpv4;
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};

use super::{Kind, NetError, NetPoller};

/// The IPv4 configuration a DHCP server leased.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ipv4Config {
    /// The interface's address and prefix length.
    pub address: Ipv4Cidr,
    /// The default router, if the server named one.
    pub gateway: Option<Ipv4Address>,
    /// The DNS servers the server named, in its order.
    pub dns_servers: Vec<Ipv4Address>,
}

/// The poller's DHCP client: its socket once started, and the lease in force.
#[derive(Debug, Default)]
pub(super) struct Client {
    socket: Option<SocketHandle>,
    config: Option<Ipv4Config>,
}

impl Client {
    /// Whether a lease is in force (what [`Kind::ConfigUp`] entries report as readable).
    pub(super) fn is_up(&self) -> bool {
        self.config.is_some()
    }

    pub(super) fn config(&self) -> Option<&Ipv4Config> {
        self.config.as_ref()
    }
}

/// Starts the DHCP client on the hub's interface (once: later calls do nothing). The interface
/// gets its address when a server answers; see [`wait_config_up`].
pub fn start() -> Result<(), NetError> {
    NetPoller::with(|p| {
        if p.dhcp.socket.is_none() {
            p.dhcp.socket = Some(p.sockets.add(dhcpv4::Socket::new()));
        }
    })
}

/// The lease in force, if any.
pub fn config() -> Result<Option<Ipv4Config>, NetError> {
    NetPoller::with(|p| p.dhcp.config.clone())
}

/// Waits until a DHCP lease is in force and returns it, for at most `timeout` if given
/// (then `NetError::Interrupted(TimedOut)`). Returns at once if one already is.
///
/// Fails with [`NetError::NotConnected`] if [`start`] was not called: nothing would ever
/// configure the interface.
pub fn wait_config_up(timeout: Option<Duration>) -> Result<Ipv4Config, NetError> {
    match timeout {
        Some(timeout) => with_timeout(timeout, wait),
        None => wait(),
    }
}

fn wait() -> Result<Ipv4Config, NetError> {
    let source = NetPoller::with(|p| {
        if p.dhcp.socket.is_none() {
            return Err(NetError::NotConnected);
        }
        Ok(p.add(vec![], Kind::ConfigUp))
    })??;
    let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
    loop {
        if let Some(config) = config()? {
            return Ok(config);
        }
        registration.clear_readiness(Interest::READABLE);
        registration.wait(Interest::READABLE)?;
    }
}

impl NetPoller {
    /// Applies what the DHCP client reported in the last poll of the interface.
    pub(super) fn apply_dhcp(&mut self) {
        let Some(socket) = self.dhcp.socket else { return };
        let Some(event) = self.sockets.get_mut::<dhcpv4::Socket<'static>>(socket).poll() else {
            return;
        };
        let previous = self.dhcp.config.take();
        if let Some(previous) = &previous {
            let leased = IpCidr::Ipv4(previous.address);
            self.iface.update_ip_addrs(|addrs| addrs.retain(|a| *a != leased));
            if previous.gateway.is_some() {
                self.iface.routes_mut().remove_default_ipv4_route();
            }
        }
        match event {
            dhcpv4::Event::Configured(lease) => {
                let mut added = true;
                self.iface.update_ip_addrs(|addrs| {
                    added = addrs.push(IpCidr::Ipv4(lease.address)).is_ok();
                });
                if !added {
                    warn!("gevent: the dhcp lease does not fit the interface's addresses");
                }
                if let Some(router) = lease.router {
                    if self.iface.routes_mut().add_default_ipv4_route(router).is_err() {
                        warn!("gevent: the dhcp router does not fit the routing table");
                    }
                }
                debug!("gevent: dhcp lease in force");
                self.dhcp.config = Some(Ipv4Config {
                    address: lease.address,
                    gateway: lease.router,
                    dns_servers: lease.dns_servers.iter().copied().collect(),
                });
            }
            dhcpv4::Event::Deconfigured => debug!("gevent: dhcp lease lost"),
        }
    }
}
