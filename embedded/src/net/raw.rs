//! Raw IP sockets: whole IP packets of one protocol.

use alloc::vec;
use core::fmt;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use smoltcp::socket::raw as smol_raw;
use smoltcp::wire::{IpProtocol, IpVersion};

use super::{Kind, NetError, NetPoller, NetSource, packet_buffer, retry_when_ready};

/// A raw socket: receives every IP packet of one version and protocol that reaches the
/// interface, and sends IP packets that the caller builds, header included.
///
/// Dropping it sends the packets still queued, then the poller frees the socket.
pub struct RawSocket {
    registration: IoRegistration<NetSource>,
}

impl fmt::Debug for RawSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSocket").field("socket", &self.registration.source().index).finish()
    }
}

impl RawSocket {
    /// A socket for `version` packets of `protocol`, with room for `packets` packets of up to
    /// `capacity` bytes in total each way.
    pub fn bind(
        version: IpVersion,
        protocol: IpProtocol,
        packets: usize,
        capacity: usize,
    ) -> Result<Self, NetError> {
        let source = NetPoller::with(|p| {
            let buffer = || packet_buffer(packets, capacity);
            let socket = smol_raw::Socket::new(version, protocol, buffer(), buffer());
            let handle = p.sockets.add(socket);
            p.add(vec![handle], Kind::Raw)
        })?;
        let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
        Ok(RawSocket { registration })
    }

    fn with<R>(&self, f: impl FnOnce(&mut smol_raw::Socket<'static>) -> R) -> Result<R, NetError> {
        let index = self.registration.source().index;
        NetPoller::with(|p| p.socket(index).map(f))?.ok_or(NetError::NotConnected)
    }

    /// Sends one IP packet (header included), waiting for room.
    pub fn send(&self, packet: &[u8]) -> Result<(), NetError> {
        retry_when_ready(&self.registration, Interest::WRITABLE, || {
            self.with(|s| {
                if s.payload_send_capacity() < packet.len() {
                    return Err(NetError::TooLarge);
                }
                Ok(s.send_slice(packet).ok())
            })?
        })
    }

    /// Receives one IP packet (header included) into `buf`, truncated to fit as a UDP
    /// datagram is, waiting for one; returns how many bytes it copied.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        retry_when_ready(&self.registration, Interest::READABLE, || {
            self.with(|s| match s.recv() {
                Ok(packet) => {
                    let copied = packet.len().min(buf.len());
                    buf[..copied].copy_from_slice(&packet[..copied]);
                    Some(copied)
                }
                Err(_) => None,
            })
        })
    }
}
