//! Cooperative TCP and UDP over smoltcp: [`NetPoller`] drives a smoltcp `Interface` as the
//! hub's poller, and [`TcpListener`], [`TcpStream`] and [`UdpSocket`] block greenlets, not the
//! chip.
//!
//! Each hub turn the poller polls the interface and looks at the sockets that greenlets use:
//! a socket that became readable (data, or the peer closed) or writable (buffer space) wakes
//! the greenlets waiting on it. When nothing is runnable, the poller sleeps with the firmware's
//! [`WaitHook`] until the earlier of the next timer and smoltcp's own `poll_delay`.
//!
//! Optional protocols are cargo features, each adding its smoltcp code to the firmware only
//! when chosen: `ipv6` (TCP, UDP and ping over IPv6), `icmp` (`IcmpSocket`, `ping`), `raw`
//! (`RawSocket`) and `multicast` (`join_multicast_group`, `UdpSocket::join_multicast_v4`).
//! The link's state, as the driver reports it, is [`link_is_up`] and [`wait_link_up`].

#[cfg(feature = "dhcpv4")]
pub mod dhcp;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "icmp")]
mod icmp;
mod link;
#[cfg(feature = "raw")]
mod raw;
mod tcp;
mod udp;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;
use core::time::Duration;

use gevent_core::Interrupted;
use gevent_core::event::Event;
use gevent_core::hub::IoRegistration;
use gevent_core::platform::{Clock, Interest, PollError, Poller, Readiness, RemoteWaker, Token};
use gevent_core::shared::{self, Shared};
use gevent_core::time::Instant;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp as smol_tcp, udp as smol_udp};
use smoltcp::storage::{PacketBuffer, PacketMetadata};

#[cfg(feature = "icmp")]
pub use icmp::{IcmpSocket, ping};
pub use link::{link_is_up, set_link_up, wait_link_up};
#[cfg(feature = "raw")]
pub use raw::RawSocket;
pub use tcp::{DEFAULT_BUFFER, MAX_BACKLOG, TcpListener, TcpReader, TcpStream, TcpWriter};
pub use udp::{Datagram, UdpSocket};
#[cfg(feature = "multicast")]
pub use udp::{join_multicast_group, leave_multicast_group};

use crate::WaitHook;
use crate::idle::Flag;
use crate::isr::Signals;

/// How long a dropped TCP stream may take to finish closing before it is aborted (RST) and
/// its buffers freed, unless [`set_orphan_linger`] says otherwise: a peer that vanished, or
/// that never closes its side (leaving this one in FIN-WAIT-2), would otherwise hold the
/// socket forever. A dropped datagram socket whose queued datagrams have not left by then is
/// freed with them.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(10);

/// Sets how long a dropped TCP stream may take to finish closing, or a dropped datagram
/// socket to send what it queued (see [`DEFAULT_LINGER`]); applies to sockets dropped from now
/// on.
pub fn set_orphan_linger(linger: Duration) -> Result<(), NetError> {
    NetPoller::with(|p| p.linger = linger)
}

/// How many sockets the stack holds (each listener counts once): streams and UDP sockets in
/// use, and dropped ones still closing.
pub fn open_sockets() -> Result<usize, NetError> {
    NetPoller::with(|p| p.entries.iter().flatten().count())
}

/// Drives smoltcp for the interface: `iface.poll(now, device, sockets)`. The device lives in
/// the closure, which keeps [`NetPoller`] free of the device's type.
pub type Drive = Box<dyn FnMut(&mut Interface, &mut SocketSet<'static>, smoltcp::time::Instant)>;

/// What the poller knows of a socket (or, for a listener, a set of sockets) that greenlets use.
struct Entry {
    /// One socket, or a listener's backlog of listening sockets.
    handles: Vec<SocketHandle>,
    kind: Kind,
    token: Option<Token>,
    /// Readiness reported and not yet cleared by the hub.
    reported: Readiness,
    /// Dropped by its owner: removed once TCP has finished closing it.
    orphan: bool,
    /// TCP: the peer's FIN arrived (the socket went through a state after it), so a socket
    /// that ends up closed ended gracefully; closed without it, the connection was reset.
    fin_received: bool,
    /// TCP: this side aborted the connection.
    aborted: bool,
    /// TCP: this side closed its half (sent FIN).
    closed: bool,
    /// TCP, while a greenlet flushes: report writable only once the peer acknowledged all.
    flushing: bool,
    /// An orphaned TCP socket still closing at this time is aborted (see
    /// [`set_orphan_linger`]).
    linger_until: Option<Instant>,
}

/// An entry of the hub's [`NetPoller`], owned by the socket type that made it: the source its
/// `IoRegistration` watches.
///
/// Only [`NetPoller::add`] makes one and nothing copies it, so while it lives its index names
/// its own entry and no other (the index is reused only after the entry is gone, as an fd
/// number is after `close`). Dropping it lets the poller close and free the socket.
#[derive(Debug)]
struct NetSource {
    index: usize,
}

impl Drop for NetSource {
    fn drop(&mut self) {
        // Without a NetPoller there is no socket to free.
        let _ = NetPoller::with(|p| p.release(self.index));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Udp,
    Listener,
    #[cfg(feature = "icmp")]
    Icmp,
    #[cfg(feature = "raw")]
    Raw,
    /// A greenlet waiting for a DHCP lease (no socket).
    #[cfg(feature = "dhcpv4")]
    ConfigUp,
    /// A DNS query's socket.
    #[cfg(feature = "dns")]
    Dns,
}

impl Kind {
    /// A socket of datagrams: freed once it has sent what it queued.
    fn is_datagram(self) -> bool {
        match self {
            Kind::Udp => true,
            #[cfg(feature = "icmp")]
            Kind::Icmp => true,
            #[cfg(feature = "raw")]
            Kind::Raw => true,
            _ => false,
        }
    }
}

/// The hub's poller on a smoltcp interface.
pub struct NetPoller {
    iface: Interface,
    linger: Duration,
    /// Where the search for a free ephemeral port starts; 0 until the first connect.
    next_port: u16,
    /// Whether the link is up, as the driver last reported (up until it says otherwise).
    link_up: bool,
    /// Set while `link_up` (once the poller has seen it): what `wait_link_up` waits on.
    link_event: Rc<Event>,
    sockets: SocketSet<'static>,
    drive: Drive,
    clock: Box<dyn Clock>,
    wait: Box<dyn WaitHook>,
    entries: Vec<Option<Entry>>,
    woken: Shared<Flag>,
    /// The [`isr`](crate::isr) signals greenlets wait for.
    signals: Signals,
    #[cfg(feature = "dhcpv4")]
    dhcp: dhcp::Client,
    #[cfg(feature = "dns")]
    dns: dns::Resolver,
}

impl fmt::Debug for NetPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetPoller").field("sockets", &self.entries.len()).finish_non_exhaustive()
    }
}

fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((now.as_nanos() / 1000) as i64)
}

impl NetPoller {
    /// A poller for `iface`, polled by `drive`, reading `clock` and waiting with `wait`. On
    /// chips without compare-and-swap its wake flag (one byte) is never freed: see
    /// [`gevent_core::shared`].
    pub fn new(
        iface: Interface,
        drive: Drive,
        clock: impl Clock + 'static,
        wait: impl WaitHook + 'static,
    ) -> Self {
        NetPoller {
            iface,
            linger: DEFAULT_LINGER,
            next_port: 0,
            link_up: true,
            link_event: Rc::new(Event::new()),
            sockets: SocketSet::new(Vec::new()),
            drive,
            clock: Box::new(clock),
            wait: Box::new(wait),
            entries: Vec::new(),
            woken: shared::share(Flag::default()),
            signals: Signals::default(),
            #[cfg(feature = "dhcpv4")]
            dhcp: dhcp::Client::default(),
            #[cfg(feature = "dns")]
            dns: dns::Resolver::default(),
        }
    }

    fn add(&mut self, handles: Vec<SocketHandle>, kind: Kind) -> NetSource {
        let entry = Some(Entry {
            handles,
            kind,
            token: None,
            reported: Readiness::default(),
            orphan: false,
            fin_received: false,
            aborted: false,
            closed: false,
            flushing: false,
            linger_until: None,
        });
        let index = match self.entries.iter().position(Option::is_none) {
            Some(i) => {
                self.entries[i] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        NetSource { index }
    }

    fn entry_mut(&mut self, index: usize) -> Option<&mut Entry> {
        self.entries.get_mut(index)?.as_mut()
    }

    /// The socket of a single-socket entry.
    fn handle(&self, index: usize) -> Option<SocketHandle> {
        self.entries.get(index)?.as_ref().map(|e| e.handles[0])
    }

    /// A TCP stream's socket and what the poller knows of it.
    fn tcp(&mut self, index: usize) -> Option<(&mut smol_tcp::Socket<'static>, &mut Entry)> {
        let entry = self.entries.get_mut(index)?.as_mut()?;
        Some((self.sockets.get_mut::<smol_tcp::Socket<'static>>(entry.handles[0]), entry))
    }

    /// The socket of a single-socket entry, of type `T`.
    fn socket<T: smoltcp::socket::AnySocket<'static>>(&mut self, index: usize) -> Option<&mut T> {
        let handle = self.handle(index)?;
        Some(self.sockets.get_mut::<T>(handle))
    }

    /// Removes an entry and its sockets now.
    fn remove(&mut self, index: usize) {
        if let Some(entry) = self.entries.get_mut(index).and_then(Option::take) {
            for handle in entry.handles {
                self.sockets.remove(handle);
            }
        }
    }

    /// Lets go of an entry whose owner dropped it: a listener's sockets go at once; a TCP
    /// stream is closed gracefully (FIN) and goes once TCP has finished closing it, a UDP
    /// socket once the datagrams it queued are sent.
    fn release(&mut self, index: usize) {
        let Some(entry) = self.entries.get_mut(index).and_then(Option::as_mut) else { return };
        match entry.kind {
            Kind::Listener => return self.remove(index),
            #[cfg(feature = "dhcpv4")]
            Kind::ConfigUp => return self.remove(index),
            #[cfg(feature = "dns")]
            Kind::Dns => {
                self.dns.forget(entry.handles[0]);
                return self.remove(index);
            }
            Kind::Tcp => {
                self.sockets.get_mut::<smol_tcp::Socket<'static>>(entry.handles[0]).close();
                entry.linger_until = Some(self.clock.now() + self.linger);
            }
            // A datagram that can never leave (a jammed link, a neighbour that never answers)
            // must not hold the socket forever either.
            _ => entry.linger_until = Some(self.clock.now() + self.linger),
        }
        entry.orphan = true;
        entry.token = None;
        self.settle(self.clock.now());
    }

    /// Book-keeping after the interface ran: notes the FINs that arrived, aborts orphans that
    /// lingered too long, and removes orphaned sockets that have nothing left to do.
    fn settle(&mut self, now: Instant) {
        self.report_link();
        for i in 0..self.entries.len() {
            let Some(e) = &mut self.entries[i] else { continue };
            // A linger that ran out with the RST still unsent (no route to the peer): free it.
            let mut given_up = false;
            if e.kind == Kind::Tcp {
                let s = self.sockets.get_mut::<smol_tcp::Socket<'static>>(e.handles[0]);
                e.fin_received |= fin_received(s.state());
                if e.linger_until.is_some_and(|t| now >= t) {
                    if s.is_open() {
                        debug!("gevent: socket {} lingered too long: aborted", i);
                        s.abort();
                        // One more linger for the RST to go out.
                        e.linger_until = Some(now + self.linger);
                    } else {
                        given_up = true;
                    }
                }
            } else if e.linger_until.is_some_and(|t| now >= t) {
                debug!("gevent: socket {} lingered too long with datagrams unsent", i);
                given_up = true;
            }
            let done = given_up
                || match &self.entries[i] {
                    Some(e) if e.orphan && e.kind.is_datagram() => {
                        self.datagram(e.kind, e.handles[0]).1 == 0
                    }
                    Some(e) if e.orphan => e.handles.iter().all(|&h| {
                        let s = self.sockets.get::<smol_tcp::Socket<'static>>(h);
                        match s.state() {
                            // Closed with an endpoint still set: its RST is yet to go out.
                            smol_tcp::State::Closed => s.remote_endpoint().is_none(),
                            smol_tcp::State::TimeWait => true,
                            _ => false,
                        }
                    }),
                    _ => false,
                };
            if done {
                debug!("gevent: socket {} closed and freed", i);
                self.remove(i);
            }
        }
    }

    fn readiness(&self, entry: &Entry) -> Readiness {
        match entry.kind {
            Kind::Tcp => {
                let s = self.sockets.get::<smol_tcp::Socket<'static>>(entry.handles[0]);
                let settled = !connecting(s);
                let writable = if entry.flushing {
                    s.send_queue() == 0 || s.state() == smol_tcp::State::Closed
                } else {
                    s.can_send() || (!s.may_send() && settled)
                };
                Readiness { readable: s.can_recv() || (!s.may_recv() && settled), writable }
            }
            Kind::Listener => {
                let incoming = entry.handles.iter().any(|&h| {
                    let s = self.sockets.get::<smol_tcp::Socket<'static>>(h);
                    !s.is_listening() && !connecting(s)
                });
                Readiness { readable: incoming, writable: false }
            }
            #[cfg(feature = "dhcpv4")]
            Kind::ConfigUp => Readiness { readable: self.dhcp.is_up(), writable: false },
            #[cfg(feature = "dns")]
            Kind::Dns => {
                Readiness { readable: self.dns.settled(entry.handles[0]), writable: false }
            }
            datagram => self.datagram(datagram, entry.handles[0]).0,
        }
    }

    /// A datagram socket's readiness and the bytes it has yet to send.
    fn datagram(&self, kind: Kind, handle: SocketHandle) -> (Readiness, usize) {
        match kind {
            Kind::Udp => {
                let s = self.sockets.get::<smol_udp::Socket<'static>>(handle);
                (Readiness { readable: s.can_recv(), writable: s.can_send() }, s.send_queue())
            }
            #[cfg(feature = "icmp")]
            Kind::Icmp => {
                let s = self.sockets.get::<smoltcp::socket::icmp::Socket<'static>>(handle);
                (Readiness { readable: s.can_recv(), writable: s.can_send() }, s.send_queue())
            }
            #[cfg(feature = "raw")]
            Kind::Raw => {
                let s = self.sockets.get::<smoltcp::socket::raw::Socket<'static>>(handle);
                (Readiness { readable: s.can_recv(), writable: s.can_send() }, s.send_queue())
            }
            // Not datagram sockets (`is_datagram` is false for them).
            _ => (Readiness::default(), 0),
        }
    }

    /// A local port for an outgoing TCP connection: the next one of the ephemeral range
    /// (RFC 6335: 49152–65535) that no TCP socket uses, starting from a point taken from the
    /// clock, so that a rebooted board does not reuse the ports of its last run in order.
    /// `None` if every one is in use.
    fn ephemeral_port(&mut self) -> Option<u16> {
        const FIRST: u16 = 49152;
        const COUNT: u16 = u16::MAX - FIRST + 1;
        if self.next_port == 0 {
            self.next_port = FIRST + (self.clock.now().as_nanos() / 1000 % u64::from(COUNT)) as u16;
        }
        for _ in 0..COUNT {
            let port = self.next_port;
            self.next_port = if port == u16::MAX { FIRST } else { port + 1 };
            let in_use = self.sockets.iter().any(|(_, socket)| match socket {
                smoltcp::socket::Socket::Tcp(s) => {
                    s.listen_endpoint().port == port
                        || s.local_endpoint().is_some_and(|e| e.port == port)
                }
                #[allow(unreachable_patterns)]
                _ => false,
            });
            if !in_use {
                return Some(port);
            }
        }
        None
    }

    /// How long until the first orphan's linger ends.
    fn next_linger(&self, now: Instant) -> Option<smoltcp::time::Duration> {
        let until = self.entries.iter().flatten().filter_map(|e| e.linger_until).min()?;
        let left = until.saturating_duration_since(now);
        Some(smoltcp::time::Duration::from_micros(left.as_micros() as u64))
    }

    /// Runs `f` on this hub's network stack.
    fn with<R>(f: impl FnOnce(&mut NetPoller) -> R) -> Result<R, NetError> {
        gevent_core::hub::with_poller(|p| p.as_any_mut().downcast_mut::<NetPoller>().map(f))
            .ok_or(NetError::NoNetwork)
    }
}

/// Whether a socket in `state` has received its peer's FIN (every state reached only through
/// one; `Closed` is not, as a reset leads there too).
fn fin_received(state: smol_tcp::State) -> bool {
    use smol_tcp::State::*;
    matches!(state, CloseWait | LastAck | Closing | TimeWait)
}

/// Runs `attempt` until it gives a value, waiting between tries until the poller reports
/// `interest` on `registration`: the loop of every blocking socket call. The readiness is
/// cleared before each wait, so a wait returns only on a fresh report.
fn retry_when_ready<R>(
    registration: &IoRegistration<NetSource>,
    interest: Interest,
    mut attempt: impl FnMut() -> Result<Option<R>, NetError>,
) -> Result<R, NetError> {
    loop {
        if let Some(value) = attempt()? {
            return Ok(value);
        }
        registration.clear_readiness(interest);
        registration.wait(interest)?;
    }
}

/// A packet buffer for a datagram socket (UDP, ICMP, raw): room for `packets` packets (at
/// least one) of up to `capacity` bytes in total, allocated once, here.
fn packet_buffer<H: Copy>(packets: usize, capacity: usize) -> PacketBuffer<'static, H> {
    PacketBuffer::new(vec![PacketMetadata::EMPTY; packets.max(1)], vec![0; capacity])
}

/// Whether a TCP socket is still opening (no readiness to report yet).
fn connecting(s: &smol_tcp::Socket<'_>) -> bool {
    matches!(s.state(), smol_tcp::State::SynSent | smol_tcp::State::SynReceived)
}

const UNKNOWN: PollError =
    PollError { operation: "register (not a socket of this stack)", code: None };

/// The entry a source names, if it is one of this stack's sockets.
fn index_of(source: &dyn Any) -> Result<usize, PollError> {
    source.downcast_ref::<NetSource>().map(|s| s.index).ok_or(UNKNOWN)
}

impl Poller for NetPoller {
    fn register(&mut self, source: &dyn Any, token: Token, _: Interest) -> Result<u64, PollError> {
        let waker: Shared<dyn RemoteWaker> = <Shared<Flag>>::clone(&self.woken);
        if let Some(label) = self.signals.register(source, token, &waker) {
            return Ok(label);
        }
        let index = index_of(source)?;
        let entry = self.entry_mut(index).ok_or(UNKNOWN)?;
        entry.token = Some(token);
        entry.reported = Readiness::default();
        Ok(index as u64)
    }

    fn deregister(&mut self, source: &dyn Any) -> Result<(), PollError> {
        if self.signals.deregister(source) {
            return Ok(());
        }
        let entry = self.entry_mut(index_of(source)?).ok_or(UNKNOWN)?;
        entry.token = None;
        Ok(())
    }

    fn readiness_cleared(&mut self, source: &dyn Any, interest: Interest) {
        if self.signals.readiness_cleared(source) {
            return;
        }
        let Some(entry) = index_of(source).ok().and_then(|i| self.entry_mut(i)) else { return };
        if interest.is_readable() {
            entry.reported.readable = false;
        }
        if interest.is_writable() {
            entry.reported.writable = false;
        }
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut(Token, Readiness),
    ) -> Result<(), PollError> {
        let deadline = timeout.map(|t| self.clock.now() + t);
        loop {
            let now = self.clock.now();
            (self.drive)(&mut self.iface, &mut self.sockets, smol_now(now));
            #[cfg(feature = "dhcpv4")]
            self.apply_dhcp();
            #[cfg(feature = "dns")]
            self.collect_dns();
            self.settle(now);
            let mut reported = false;
            for i in 0..self.entries.len() {
                let Some(entry) = &self.entries[i] else { continue };
                let Some(token) = entry.token else { continue };
                let current = self.readiness(entry);
                let fresh = Readiness {
                    readable: current.readable && !entry.reported.readable,
                    writable: current.writable && !entry.reported.writable,
                };
                if fresh.readable || fresh.writable {
                    let entry = self.entries[i].as_mut().expect("just read");
                    entry.reported.readable |= fresh.readable;
                    entry.reported.writable |= fresh.writable;
                    ready(token, fresh);
                    reported = true;
                }
            }
            if reported {
                return Ok(());
            }
            let stack_delay = self.iface.poll_delay(smol_now(now), &self.sockets);
            let stack_delay = match (stack_delay, self.next_linger(now)) {
                (Some(s), Some(l)) => Some(s.min(l)),
                (s, l) => s.or(l),
            };
            let wake_at = match (deadline, stack_delay) {
                (Some(d), Some(s)) => Some(d.min(now + Duration::from_micros(s.total_micros()))),
                (Some(d), None) => Some(d),
                (None, Some(s)) => Some(now + Duration::from_micros(s.total_micros())),
                (None, None) => None,
            };
            // The look at the wake flag and signals, and the sleep, in one critical section:
            // see `idle`'s module docs.
            let wait = &mut self.wait;
            let expired = || deadline.is_some_and(|d| now >= d);
            let sleep = || {
                if wake_at.is_none_or(|w| w > now) {
                    wait.wait(wake_at);
                }
            };
            if crate::idle::sleep_unless_woken(
                &self.woken.0,
                &mut self.signals,
                ready,
                expired,
                sleep,
            ) {
                return Ok(());
            }
        }
    }

    fn remote_waker(&self) -> Shared<dyn RemoteWaker> {
        <Shared<Flag>>::clone(&self.woken)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Why a network operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// The greenlet was killed or its `Timeout` expired.
    Interrupted(Interrupted),
    /// The hub's poller is not a [`NetPoller`] (call [`init_net`](crate::init_net)).
    NoNetwork,
    /// The connection was reset or aborted by the peer.
    ConnectionReset,
    /// A connect did not succeed (refused or timed out by TCP).
    ConnectionRefused,
    /// The socket is not connected or is closed for this direction.
    NotConnected,
    /// An address or port was invalid or already in use.
    InvalidAddress,
    /// The datagram did not fit the socket's buffer.
    TooLarge,
    /// No answer came within the time given (a `ping`).
    TimedOut,
    /// A name has no address: no DNS server is known, the servers said so, or they did not
    /// answer.
    NameNotResolved,
    /// A name is not a valid DNS name (empty, or a label over 63 bytes, or over 255 in all).
    InvalidName,
    /// A listener's backlog is beyond [`MAX_BACKLOG`] (each slot holds a socket's buffers).
    BacklogTooLarge,
}

impl From<Interrupted> for NetError {
    fn from(e: Interrupted) -> Self {
        NetError::Interrupted(e)
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Interrupted(e) => write!(f, "interrupted: {e}"),
            NetError::NoNetwork => f.write_str("the hub has no network stack (call init_net)"),
            NetError::ConnectionReset => f.write_str("the connection was reset"),
            NetError::ConnectionRefused => f.write_str("the connection could not be made"),
            NetError::NotConnected => f.write_str("the socket is not connected"),
            NetError::InvalidAddress => f.write_str("the address or port is invalid or in use"),
            NetError::TooLarge => f.write_str("the datagram does not fit the socket buffer"),
            NetError::TimedOut => f.write_str("no answer came in time"),
            NetError::NameNotResolved => f.write_str("the name could not be resolved"),
            NetError::InvalidName => f.write_str("the name is not a valid DNS name"),
            NetError::BacklogTooLarge => {
                write!(f, "a listener's backlog is at most {MAX_BACKLOG} sockets")
            }
        }
    }
}

impl core::error::Error for NetError {}

impl embedded_io::Error for NetError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            NetError::Interrupted(Interrupted::TimedOut(_)) => embedded_io::ErrorKind::TimedOut,
            // Not `Interrupted`, which std-style callers retry: a kill must end the caller.
            NetError::Interrupted(_) => embedded_io::ErrorKind::Other,
            NetError::NoNetwork => embedded_io::ErrorKind::Unsupported,
            NetError::ConnectionReset => embedded_io::ErrorKind::ConnectionReset,
            NetError::ConnectionRefused => embedded_io::ErrorKind::ConnectionRefused,
            NetError::NotConnected => embedded_io::ErrorKind::NotConnected,
            NetError::InvalidAddress => embedded_io::ErrorKind::InvalidInput,
            NetError::TooLarge => embedded_io::ErrorKind::InvalidInput,
            NetError::TimedOut => embedded_io::ErrorKind::TimedOut,
            NetError::NameNotResolved => embedded_io::ErrorKind::AddrNotAvailable,
            NetError::InvalidName | NetError::BacklogTooLarge => {
                embedded_io::ErrorKind::InvalidInput
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::iface::Config;
    use smoltcp::phy::{Loopback, Medium};
    use smoltcp::wire::HardwareAddress;

    struct Stopped;

    impl Clock for Stopped {
        fn now(&self) -> Instant {
            Instant::from_nanos(0)
        }
    }

    #[test]
    fn a_source_that_is_not_one_of_its_sockets_is_refused() {
        let mut device = Loopback::new(Medium::Ip);
        let config = Config::new(HardwareAddress::Ip);
        let iface = Interface::new(config, &mut device, smoltcp::time::Instant::ZERO);
        let mut poller = NetPoller::new(iface, Box::new(|_, _, _| {}), Stopped, |_| {});
        // A bare index would name whichever socket has it.
        assert_eq!(poller.register(&0usize, Token(1), Interest::BOTH), Err(UNKNOWN));
        assert_eq!(poller.deregister(&0usize), Err(UNKNOWN));
    }
}
