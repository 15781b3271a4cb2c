//! [`ToSocketAddrs`]: the addresses every `bind`, `connect` and `send_to` of this module takes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses: what `bind`, `connect` and `send_to`
/// take; gevent's counterpart of [`std::net::ToSocketAddrs`], implemented for the same types.
///
/// # How it differs from std's
///
/// An IP address or an IP literal with a port (`"127.0.0.1:80"`, `"[::1]:80"`,
/// `("10.0.0.1", 53)`) is parsed on the spot. A host name (`"localhost:80"`,
/// `("example.com", 443)`) is looked up through the hub's configured [resolver](crate::dns)
/// (by default the system's `getaddrinfo` on the [thread pool](crate::threadpool::spawn_blocking)),
/// so the calling greenlet parks while other greenlets run, and a kill or a
/// [`Timeout`](crate::Timeout) interrupts the wait. The trait is sealed: it has no
/// method of its own to call, and other types cannot implement it; use std's trait to list
/// addresses.
pub trait ToSocketAddrs: Sealed {}

pub(super) mod sealed {
    use super::*;

    /// The addresses a [`ToSocketAddrs`](super::ToSocketAddrs) value names, once parsed.
    #[allow(unreachable_pub)]
    pub trait Sealed {
        /// Parses the value, resolving a host name if it holds one.
        fn addrs(&self) -> io::Result<Addrs<'_>>;
    }

    /// Parsed addresses: one, borrowed ones or ones a lookup returned.
    #[allow(unreachable_pub)]
    #[derive(Debug)]
    pub enum Addrs<'a> {
        One(SocketAddr),
        Borrowed(&'a [SocketAddr]),
        Resolved(Vec<SocketAddr>),
    }
}

use sealed::{Addrs, Sealed};

impl Addrs<'_> {
    fn as_slice(&self) -> &[SocketAddr] {
        match self {
            Addrs::One(addr) => std::slice::from_ref(addr),
            Addrs::Borrowed(addrs) => addrs,
            Addrs::Resolved(addrs) => addrs,
        }
    }
}

/// Runs `f` on each address `addrs` names until one succeeds, as std does, returning the last
/// error otherwise.
pub(super) fn each_addr<T>(
    addrs: &(impl ToSocketAddrs + ?Sized),
    mut f: impl FnMut(&SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let addrs = addrs.addrs()?;
    let mut last = None;
    for addr in addrs.as_slice() {
        match f(addr) {
            Ok(done) => return Ok(done),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "could not resolve to any addresses")
    }))
}

/// The first address `addrs` names (what std's `UdpSocket::send_to` uses).
pub(super) fn first_addr(addrs: &(impl ToSocketAddrs + ?Sized)) -> io::Result<SocketAddr> {
    addrs
        .addrs()?
        .as_slice()
        .first()
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))
}

/// Looks `host` up, with `port`, through the hub's configured resolver: the one place names
/// are resolved.
fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    crate::dns::getaddrinfo(host, port)
}

fn host_port(host: &str, port: u16) -> io::Result<Addrs<'static>> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(Addrs::One(SocketAddr::new(ip, port))),
        Err(_) => resolve(host, port).map(Addrs::Resolved),
    }
}

impl ToSocketAddrs for SocketAddr {}
impl Sealed for SocketAddr {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(*self))
    }
}

impl ToSocketAddrs for SocketAddrV4 {}
impl Sealed for SocketAddrV4 {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(SocketAddr::V4(*self)))
    }
}

impl ToSocketAddrs for SocketAddrV6 {}
impl Sealed for SocketAddrV6 {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(SocketAddr::V6(*self)))
    }
}

impl ToSocketAddrs for (IpAddr, u16) {}
impl Sealed for (IpAddr, u16) {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(SocketAddr::new(self.0, self.1)))
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {}
impl Sealed for (Ipv4Addr, u16) {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(SocketAddr::new(self.0.into(), self.1)))
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {}
impl Sealed for (Ipv6Addr, u16) {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::One(SocketAddr::new(self.0.into(), self.1)))
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        host_port(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        host_port(&self.0, self.1)
    }
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Addrs::One(addr));
        }
        let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
        let (host, port) =
            self.rsplit_once(':').ok_or_else(|| invalid("invalid socket address"))?;
        let port = port.parse().map_err(|_| invalid("invalid port value"))?;
        host_port(host, port)
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        self.as_str().addrs()
    }
}

impl ToSocketAddrs for &[SocketAddr] {}
impl Sealed for &[SocketAddr] {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        Ok(Addrs::Borrowed(self))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: Sealed + ?Sized> Sealed for &T {
    fn addrs(&self) -> io::Result<Addrs<'_>> {
        (**self).addrs()
    }
}
