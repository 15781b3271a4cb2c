//! ICMP sockets, and `ping` on them.

use alloc::vec;
use core::fmt;
use core::sync::atomic::{AtomicU16, Ordering};
use core::time::Duration;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use gevent_core::{Timeout, now};
use smoltcp::iface::Interface;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::icmp as smol_icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress};
#[cfg(feature = "ipv6")]
use smoltcp::wire::{Icmpv6Packet, Icmpv6Repr};

use super::{Kind, NetError, NetPoller, NetSource, packet_buffer, retry_when_ready};

/// An ICMP socket bound to an echo identifier: it receives the echo requests and replies that
/// carry it, and sends whole ICMP messages (header included) that the caller builds.
///
/// Dropping it sends the messages still queued, then the poller frees the socket.
pub struct IcmpSocket {
    registration: IoRegistration<NetSource>,
}

impl fmt::Debug for IcmpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcmpSocket").field("socket", &self.registration.source().index).finish()
    }
}

impl IcmpSocket {
    /// Binds to the echo identifier `ident`, with room for `packets` messages of up to
    /// `capacity` bytes in total each way.
    pub fn bind(ident: u16, packets: usize, capacity: usize) -> Result<Self, NetError> {
        let source = NetPoller::with(|p| {
            let buffer = || packet_buffer(packets, capacity);
            let mut socket = smol_icmp::Socket::new(buffer(), buffer());
            socket.bind(smol_icmp::Endpoint::Ident(ident)).map_err(|_| NetError::InvalidAddress)?;
            let handle = p.sockets.add(socket);
            Ok::<_, NetError>(p.add(vec![handle], Kind::Icmp))
        })??;
        let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
        Ok(IcmpSocket { registration })
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut smol_icmp::Socket<'static>, &mut Interface) -> R,
    ) -> Result<R, NetError> {
        let index = self.registration.source().index;
        NetPoller::with(|p| {
            let handle = p.handle(index)?;
            Some(f(p.sockets.get_mut(handle), &mut p.iface))
        })?
        .ok_or(NetError::NotConnected)
    }

    /// Sends one ICMP message (header and checksum included) to `remote`, waiting for room.
    pub fn send_to(&self, message: &[u8], remote: IpAddress) -> Result<(), NetError> {
        self.send_with(message.len(), remote, |buf, _| buf.copy_from_slice(message))
    }

    /// Sends a `len`-byte message that `fill` writes into the socket's buffer (given the
    /// interface, for a source address), waiting for room.
    fn send_with(
        &self,
        len: usize,
        remote: IpAddress,
        fill: impl FnOnce(&mut [u8], &Interface),
    ) -> Result<(), NetError> {
        let mut fill = Some(fill);
        retry_when_ready(&self.registration, Interest::WRITABLE, || {
            self.with(|s, iface| {
                if s.payload_send_capacity() < len {
                    return Err(NetError::TooLarge);
                }
                match s.send(len, remote) {
                    Ok(buf) => {
                        if let Some(fill) = fill.take() {
                            fill(buf, iface);
                        }
                        Ok(Some(()))
                    }
                    Err(smol_icmp::SendError::BufferFull) => Ok(None),
                    Err(_) => Err(NetError::InvalidAddress),
                }
            })?
        })
    }

    /// Receives one ICMP message into `buf` (truncated to fit, as a UDP datagram is), waiting
    /// for one; returns how many bytes it copied and the sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, IpAddress), NetError> {
        retry_when_ready(&self.registration, Interest::READABLE, || {
            self.with(|s, _| match s.recv() {
                Ok((payload, from)) => {
                    let copied = payload.len().min(buf.len());
                    buf[..copied].copy_from_slice(&payload[..copied]);
                    Some((copied, from))
                }
                Err(_) => None,
            })
        })
    }
}

/// Pings sent so far (wrapping), for their identifiers.
static PINGS: AtomicU16 = AtomicU16::new(0);

/// What a ping carries, to tell its reply from other echo traffic.
const PING_DATA: &[u8] = b"gevent-rs ping";

/// Sends an ICMP echo request to `remote` and waits at most `timeout` for the reply; returns
/// the round-trip time. Fails with [`NetError::TimedOut`] if no reply came in time.
pub fn ping(remote: impl Into<IpAddress>, timeout: Duration) -> Result<Duration, NetError> {
    let remote = remote.into();
    let t = Timeout::start(timeout);
    let timed_out = |e: NetError| match e {
        NetError::Interrupted(i) if i.is_timeout(t.id()) => NetError::TimedOut,
        e => e,
    };
    // An identifier no other ping of this program has in flight (pings one after another
    // count up), and that differs between runs (a reply to a ping of the last boot is not
    // taken for this one's). A load then a store: a hub is single-threaded, and the rare
    // repeat across threads would only let two pings see each other's replies.
    let count = PINGS.load(Ordering::Relaxed);
    PINGS.store(count.wrapping_add(1), Ordering::Relaxed);
    let ident = ((now().as_nanos() / 1000) as u16).wrapping_add(count);
    let socket = IcmpSocket::bind(ident, 2, 256)?;
    let seq_no = 1;
    let caps = ChecksumCapabilities::default();
    let start = now();
    match remote {
        IpAddress::Ipv4(_) => {
            let request = Icmpv4Repr::EchoRequest { ident, seq_no, data: PING_DATA };
            socket.send_with(request.buffer_len(), remote, |buf, _| {
                request.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            })
        }
        #[cfg(feature = "ipv6")]
        IpAddress::Ipv6(dst) => {
            let request = Icmpv6Repr::EchoRequest { ident, seq_no, data: PING_DATA };
            socket.send_with(request.buffer_len(), remote, |buf, iface| {
                let src = iface.get_source_address_ipv6(&dst);
                request.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(buf), &caps);
            })
        }
    }
    .map_err(timed_out)?;
    let mut buf = [0u8; 64];
    loop {
        let (n, from) = socket.recv_from(&mut buf).map_err(timed_out)?;
        if from == remote && is_reply(&buf[..n], remote, ident, seq_no) {
            return Ok(now().saturating_duration_since(start));
        }
    }
}

/// Whether `message` is the echo reply with `ident` and `seq_no` carrying [`PING_DATA`].
fn is_reply(message: &[u8], from: IpAddress, ident: u16, seq_no: u16) -> bool {
    // The interface checked the checksum before it handed the message over.
    let caps = ChecksumCapabilities::ignored();
    let reply = |i, s, data| i == ident && s == seq_no && data == PING_DATA;
    match from {
        IpAddress::Ipv4(_) => {
            let Ok(packet) = Icmpv4Packet::new_checked(message) else { return false };
            matches!(Icmpv4Repr::parse(&packet, &caps),
                Ok(Icmpv4Repr::EchoReply { ident: i, seq_no: s, data }) if reply(i, s, data))
        }
        #[cfg(feature = "ipv6")]
        IpAddress::Ipv6(src) => {
            let Ok(packet) = Icmpv6Packet::new_checked(message) else { return false };
            matches!(Icmpv6Repr::parse(&src, &src, &packet, &caps),
                Ok(Icmpv6Repr::EchoReply { ident: i, seq_no: s, data }) if reply(i, s, data))
        }
    }
}
