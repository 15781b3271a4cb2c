//! UDP: [`UdpSocket`].

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use rustix::net::sockopt;
use rustix::net::{AddressFamily, RecvFlags, SocketType};

use super::addr::{ToSocketAddrs, each_addr, first_addr};
use super::socket::{SEND_FLAGS, Socket, new_socket};
use super::tcp::socket_addr;

/// A UDP socket; `std::net::UdpSocket` whose receives switch to other greenlets until a
/// datagram arrives, and whose sends do while the send buffer is full.
///
/// Every method takes `&self`, so one greenlet can receive while another sends.
pub struct UdpSocket {
    sock: Socket,
}

impl UdpSocket {
    fn from_socket(sock: Socket) -> Self {
        UdpSocket { sock }
    }

    /// Creates a socket bound to `addr` (the first of its addresses that can be bound).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        each_addr(&addr, |addr| {
            let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
            let fd = new_socket(family, SocketType::DGRAM)?;
            rustix::net::bind(&fd, addr)?;
            Ok(UdpSocket { sock: Socket::new(fd)? })
        })
    }

    /// Sets the default destination of [`send`](Self::send) and the only source
    /// [`recv`](Self::recv) accepts: the first of `addr`'s addresses that can be connected.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&addr, |addr| Ok(rustix::net::connect(self.sock.fd(), addr)?))
    }

    /// Sends `buf` to the connected peer, waiting while the send buffer is full; the number
    /// of bytes sent.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send(buf)
    }

    /// Receives a datagram from the connected peer, waiting for one; the part that does not
    /// fit in `buf` is dropped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf, RecvFlags::empty())
    }

    /// Like [`recv`](Self::recv), but leaves the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf, RecvFlags::PEEK)
    }

    /// Sends `buf` to the first address `addr` names, waiting while the send buffer is full.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = first_addr(&addr)?;
        self.sock.write_with(|fd| rustix::net::sendto(fd, buf, SEND_FLAGS, &addr))
    }

    /// Receives a datagram and its sender's address, waiting for one.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_with(buf, RecvFlags::empty())
    }

    /// Like [`recv_from`](Self::recv_from), but leaves the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_from_with(buf, RecvFlags::PEEK)
    }

    fn recv_from_with(&self, buf: &mut [u8], flags: RecvFlags) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.sock.read_with(|fd| {
            rustix::net::recvfrom(fd, &mut *buf, flags).map(|(n, _, from)| (n, from))
        })?;
        match from {
            Some(from) => Ok((n, socket_addr(from)?)),
            None => Err(io::Error::new(io::ErrorKind::InvalidData, "a datagram had no sender")),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_addr(rustix::net::getsockname(self.sock.fd())?)
    }

    /// The connected peer's address ([`io::ErrorKind::NotConnected`] if there is none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match rustix::net::getpeername(self.sock.fd())? {
            Some(addr) => socket_addr(addr),
            None => Err(io::Error::new(io::ErrorKind::NotConnected, "the peer has no address")),
        }
    }

    /// A second handle on the same socket (a duplicate descriptor with its own
    /// registration). It starts with this handle's timeouts; each handle's are its own
    /// afterwards (std's handles share them).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket { sock: self.sock.try_clone()? })
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, broadcast: bool) -> io::Result<()> {
        Ok(sockopt::set_socket_broadcast(self.sock.fd(), broadcast)?)
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        Ok(sockopt::socket_broadcast(self.sock.fd())?)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Ok(sockopt::set_ip_ttl(self.sock.fd(), ttl)?)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(sockopt::ip_ttl(self.sock.fd())?)
    }

    /// Sets `IP_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        Ok(sockopt::set_ip_multicast_loop(self.sock.fd(), on)?)
    }

    /// `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        Ok(sockopt::ip_multicast_loop(self.sock.fd())?)
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        Ok(sockopt::set_ip_multicast_ttl(self.sock.fd(), ttl)?)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        Ok(sockopt::ip_multicast_ttl(self.sock.fd())?)
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        Ok(sockopt::set_ipv6_multicast_loop(self.sock.fd(), on)?)
    }

    /// `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        Ok(sockopt::ipv6_multicast_loop(self.sock.fd())?)
    }

    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`IP_ADD_MEMBERSHIP`).
    pub fn join_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        Ok(sockopt::set_ip_add_membership(self.sock.fd(), multiaddr, interface)?)
    }

    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface`
    /// (0 for any; `IPV6_ADD_MEMBERSHIP`).
    pub fn join_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        Ok(sockopt::set_ipv6_add_membership(self.sock.fd(), multiaddr, interface)?)
    }

    /// Leaves an IPv4 multicast group (`IP_DROP_MEMBERSHIP`).
    pub fn leave_multicast_v4(&self, multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()> {
        Ok(sockopt::set_ip_drop_membership(self.sock.fd(), multiaddr, interface)?)
    }

    /// Leaves an IPv6 multicast group (`IPV6_DROP_MEMBERSHIP`).
    pub fn leave_multicast_v6(&self, multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()> {
        Ok(sockopt::set_ipv6_drop_membership(self.sock.fd(), multiaddr, interface)?)
    }
}

super::timeouts_and_std!(UdpSocket, std::net::UdpSocket);
super::fd_conversions!(UdpSocket, "UdpSocket");

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("UdpSocket");
        if let Ok(addr) = self.local_addr() {
            d.field("addr", &addr);
        }
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &peer);
        }
        d.field("fd", &self.as_raw_fd()).finish()
    }
}
