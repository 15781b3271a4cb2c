//! UDP sockets.

use alloc::vec;
use core::fmt;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use smoltcp::socket::udp as smol_udp;
use smoltcp::wire::IpEndpoint;
#[cfg(feature = "multicast")]
use smoltcp::wire::{IpAddress, Ipv4Address};

use super::{Kind, NetError, NetPoller, NetSource, packet_buffer, retry_when_ready};

/// A UDP socket bound to a port: `recv_from` waits for a datagram, `send_to` for room.
///
/// Dropping it sends the datagrams still queued, then the poller frees the socket.
pub struct UdpSocket {
    registration: IoRegistration<NetSource>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket").field("socket", &self.registration.source().index).finish()
    }
}

impl UdpSocket {
    /// Binds to `port` with room for `packets` datagrams of up to `capacity` bytes in total
    /// each way.
    pub fn bind(port: u16, packets: usize, capacity: usize) -> Result<Self, NetError> {
        let source = NetPoller::with(|p| {
            let buffer = || packet_buffer(packets, capacity);
            let mut socket = smol_udp::Socket::new(buffer(), buffer());
            socket.bind(port).map_err(|_| NetError::InvalidAddress)?;
            let handle = p.sockets.add(socket);
            Ok::<_, NetError>(p.add(vec![handle], Kind::Udp))
        })??;
        let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
        Ok(UdpSocket { registration })
    }

    fn with<R>(&self, f: impl FnOnce(&mut smol_udp::Socket<'static>) -> R) -> Result<R, NetError> {
        let index = self.registration.source().index;
        NetPoller::with(|p| p.socket(index).map(f))?.ok_or(NetError::NotConnected)
    }

    /// Sends one datagram to `remote`, waiting for buffer room.
    pub fn send_to(&self, data: &[u8], remote: impl Into<IpEndpoint>) -> Result<(), NetError> {
        let remote = remote.into();
        retry_when_ready(&self.registration, Interest::WRITABLE, || {
            self.with(|s| match s.send_slice(data, remote) {
                Ok(()) => Ok(Some(())),
                Err(smol_udp::SendError::BufferFull) if s.payload_send_capacity() < data.len() => {
                    Err(NetError::TooLarge)
                }
                Err(smol_udp::SendError::BufferFull) => Ok(None),
                Err(_) => Err(NetError::InvalidAddress),
            })?
        })
    }

    /// Joins the IPv4 multicast group `group` (see [`join_multicast_group`]; the membership
    /// is the interface's, as smoltcp keeps it, not this socket's).
    #[cfg(feature = "multicast")]
    pub fn join_multicast_v4(&self, group: Ipv4Address) -> Result<(), NetError> {
        join_multicast_group(group)
    }

    /// Leaves the IPv4 multicast group `group` (see [`leave_multicast_group`]).
    #[cfg(feature = "multicast")]
    pub fn leave_multicast_v4(&self, group: Ipv4Address) -> Result<(), NetError> {
        leave_multicast_group(group)
    }

    /// Receives one datagram into `buf`, waiting for one; returns how many bytes it copied and
    /// the sender. A datagram longer than `buf` is truncated to fit, the rest of it discarded,
    /// as std's `UdpSocket::recv_from` does; [`recv_datagram`](Self::recv_datagram) says
    /// when that happened.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), NetError> {
        self.recv_datagram(buf).map(|d| (d.copied, d.from))
    }

    /// Receives one datagram into `buf`, waiting for one, truncating it if it is longer than
    /// `buf`; the answer says how long it was.
    pub fn recv_datagram(&self, buf: &mut [u8]) -> Result<Datagram, NetError> {
        retry_when_ready(&self.registration, Interest::READABLE, || {
            self.with(|s| match s.recv() {
                Ok((payload, meta)) => {
                    let copied = payload.len().min(buf.len());
                    buf[..copied].copy_from_slice(&payload[..copied]);
                    Some(Datagram { copied, len: payload.len(), from: meta.endpoint })
                }
                Err(_) => None,
            })
        })
    }
}

/// A datagram [`UdpSocket::recv_datagram`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The bytes copied into the caller's buffer.
    pub copied: usize,
    /// The datagram's length: more than `copied` if it was truncated.
    pub len: usize,
    /// The sender.
    pub from: IpEndpoint,
}

impl Datagram {
    /// Whether the datagram was longer than the buffer, its end discarded.
    pub fn truncated(&self) -> bool {
        self.len > self.copied
    }
}

/// Joins the multicast group `group` on the interface: datagrams sent to it reach the UDP
/// sockets bound to their port (and, on Ethernet, the interface announces the membership
/// with IGMP or MLD).
#[cfg(feature = "multicast")]
pub fn join_multicast_group(group: impl Into<IpAddress>) -> Result<(), NetError> {
    let group = group.into();
    NetPoller::with(|p| p.iface.join_multicast_group(group))?.map_err(|_| NetError::InvalidAddress)
}

/// Leaves the multicast group `group` on the interface.
#[cfg(feature = "multicast")]
pub fn leave_multicast_group(group: impl Into<IpAddress>) -> Result<(), NetError> {
    let group = group.into();
    NetPoller::with(|p| p.iface.leave_multicast_group(group))?.map_err(|_| NetError::InvalidAddress)
}
