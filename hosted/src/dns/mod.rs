//! Name resolution that parks the calling greenlet instead of the thread: gevent's
//! `gevent.resolver` and `gevent.socket.gethostbyname` & co.
//!
//! Two resolvers sit behind one trait, [`Resolver`]:
//!
//! - [`ThreadResolver`] (the default, gevent's `resolver.thread`) runs the system's
//!   `getaddrinfo`/`getnameinfo` on the [thread pool](crate::threadpool::spawn_blocking): it
//!   sees everything the system's resolver sees (nsswitch, mDNS, ...), and answers host names
//!   and reverse lookups only.
//! - [`NativeResolver`] (gevent's `ares`/`dnspython` roles) is a stub resolver speaking DNS
//!   itself on cooperative sockets: `/etc/hosts` first, then UDP queries to the name servers
//!   of `/etc/resolv.conf` with per-try timeouts, retries across servers and a TCP retry
//!   when a reply is truncated. Each query uses its own socket, so any number of greenlets
//!   can resolve at once without a thread each. It also answers [`lookup`] for MX, TXT,
//!   SRV, CNAME and PTR records.
//!
//! Each thread's hub has one configured resolver: the one given to [`set_resolver`], else
//! the one the process's [configuration](crate::config) names, made on first use:
//! `GEVENT_RESOLVER=native` or `thread` (the default), and for the native one
//! `GEVENT_RESOLVER_NAMESERVERS=ip[:port],...` in place of resolv.conf's servers, or
//! [`ConfigBuilder::resolver`](crate::config::ConfigBuilder::resolver) in code. The free
//! functions below, and every host name given to [`net`](crate::net)'s `connect`, `bind` and
//! `send_to`, go through it.
//!
//! ```
//! gevent::run(|| {
//!     let addrs = gevent::dns::lookup_host("localhost").unwrap();
//!     assert!(addrs.iter().all(|ip| ip.is_loopback()));
//! });
//! ```
//!
//! Errors: a query no server answered fails with [`io::ErrorKind::TimedOut`]; a name that
//! does not exist with [`io::ErrorKind::NotFound`] and a message saying so; a server failure
//! or refusal with [`io::ErrorKind::Other`] naming the response code. A kill or a
//! [`Timeout`](crate::Timeout) interrupts a lookup like any other wait.

mod native;
mod thread;

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use crate::config::ResolverKind;

pub(crate) use native::parse_nameserver;
pub use native::{NativeResolver, NativeResolverBuilder};
pub use thread::ThreadResolver;

/// Resolves names for the greenlets of one thread; see the [module docs](self).
pub trait Resolver {
    /// The addresses `name` resolves to (IPv4 and IPv6), in the resolver's order.
    fn lookup_host(&self, name: &str) -> io::Result<Vec<IpAddr>>;

    /// The records of type `rtype` for `name`.
    fn lookup(&self, name: &str, rtype: RecordType) -> io::Result<Vec<Record>>;

    /// The host name `ip` belongs to (a reverse lookup).
    fn gethostbyaddr(&self, ip: IpAddr) -> io::Result<String>;

    /// The socket addresses of `host` with `port`: by default
    /// [`lookup_host`](Self::lookup_host)'s addresses with the port. A resolver whose answers
    /// carry more (the system's: IPv6 scope ids) overrides it.
    fn getaddrinfo(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(self.lookup_host(host)?.into_iter().map(|ip| SocketAddr::new(ip, port)).collect())
    }
}

/// The record types [`lookup`] asks for.
#[allow(clippy::upper_case_acronyms, reason = "the names DNS gives them")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    AAAA,
    /// A mail exchanger.
    MX,
    /// Text strings.
    TXT,
    /// A service location.
    SRV,
    /// The canonical name of an alias.
    CNAME,
    /// A pointer to a name (reverse lookups).
    PTR,
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One record of a [`lookup`] answer. Names are given without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A mail exchanger: lower preferences are tried first.
    Mx {
        /// The exchanger's preference (lower first).
        preference: u16,
        /// The exchanger's host name.
        exchange: String,
    },
    /// The character strings of one TXT record, as sent (not necessarily UTF-8).
    Txt(Vec<Vec<u8>>),
    /// A service location.
    Srv {
        /// Lower priorities are tried first.
        priority: u16,
        /// The relative weight among records of the same priority.
        weight: u16,
        /// The service's port.
        port: u16,
        /// The host providing the service.
        target: String,
    },
    /// The canonical name of an alias.
    Cname(String),
    /// The name a reverse lookup found.
    Ptr(String),
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Resolver>>> = const { RefCell::new(None) };
}

/// Makes `resolver` the one this thread's hub uses (the free functions of this module and
/// [`net`](crate::net)'s host names), in place of the previous one.
///
/// During the thread's exit, once its thread-locals are being destroyed, the call does
/// nothing.
pub fn set_resolver(resolver: impl Resolver + 'static) {
    let resolver: Rc<dyn Resolver> = Rc::new(resolver);
    // The previous resolver is dropped after the borrow ends, so that its destructor may
    // use this module.
    let previous = CURRENT.try_with(|current| current.borrow_mut().replace(resolver));
    drop(previous);
}

/// This thread's configured resolver, created from the environment on first use.
fn resolver() -> io::Result<Rc<dyn Resolver>> {
    // Thread-local destructors (a greenlet's drop at thread exit) may look names up after
    // this thread's resolver is gone: that is an error, not a panic.
    let gone = |_| io::Error::other("the thread's resolver is gone: the thread is exiting");
    if let Some(resolver) = CURRENT.try_with(|current| current.borrow().clone()).map_err(gone)? {
        return Ok(resolver);
    }
    let resolver = from_config()?;
    CURRENT.try_with(|current| current.borrow_mut().get_or_insert(resolver).clone()).map_err(gone)
}

/// The resolver the process's [configuration](crate::config) names (`GEVENT_RESOLVER`,
/// `GEVENT_RESOLVER_NAMESERVERS`).
fn from_config() -> io::Result<Rc<dyn Resolver>> {
    let config = crate::config::try_current()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.clone()))?;
    match config.resolver() {
        ResolverKind::Thread => Ok(Rc::new(ThreadResolver::new())),
        ResolverKind::Native { nameservers } => {
            let builder =
                nameservers.iter().fold(NativeResolver::builder(), |b, &ns| b.nameserver(ns));
            Ok(Rc::new(builder.build()?))
        }
    }
}

/// The addresses `name` resolves to, through this hub's resolver. An IP literal is returned
/// as is.
pub fn lookup_host(name: &str) -> io::Result<Vec<IpAddr>> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    resolver()?.lookup_host(name)
}

/// The first IPv4 address of `name` (gevent's `gethostbyname`).
pub fn gethostbyname(name: &str) -> io::Result<Ipv4Addr> {
    lookup_host(name)?
        .into_iter()
        .find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{name} has no IPv4 address"))
        })
}

/// The socket addresses of `host` with `port` (gevent's `getaddrinfo`, reduced to what
/// connecting needs).
pub fn getaddrinfo(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    resolver()?.getaddrinfo(host, port)
}

/// The host name `ip` belongs to (gevent's `gethostbyaddr`, reduced to the name).
pub fn gethostbyaddr(ip: IpAddr) -> io::Result<String> {
    resolver()?.gethostbyaddr(ip)
}

/// The records of type `rtype` for `name`. The [`ThreadResolver`] answers only A, AAAA and
/// PTR; configure a [`NativeResolver`] for the others.
pub fn lookup(name: &str, rtype: RecordType) -> io::Result<Vec<Record>> {
    resolver()?.lookup(name, rtype)
}

/// Puts `addrs` in `into` once each, keeping the first occurrence's place (answers hold a
/// handful of addresses: a linear search beats hashing).
fn push_unique<T: PartialEq>(into: &mut Vec<T>, addrs: impl IntoIterator<Item = T>) {
    for addr in addrs {
        if !into.contains(&addr) {
            into.push(addr);
        }
    }
}

/// The name a PTR query for `ip` asks about (`4.3.2.1.in-addr.arpa`, nibbles for IPv6).
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                let _ = write!(name, "{:x}.{:x}.", byte & 0xf, byte >> 4); // a String never fails
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// The address a reverse name (`reverse_name`'s form) stands for.
fn parse_reverse_name(name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut parts = rest.split('.');
        for slot in octets.iter_mut().rev() {
            *slot = parts.next()?.parse().ok()?;
        }
        return parts.next().is_none().then(|| IpAddr::from(octets));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let mut value: u128 = 0;
    let mut count = 0;
    for nibble in rest.split('.').rev() {
        value = (value << 4)
            | u128::from(u8::from_str_radix(nibble, 16).ok().filter(|_| nibble.len() == 1)?);
        count += 1;
    }
    (count == 32).then(|| IpAddr::from(Ipv6Addr::from(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_round_trip() {
        for ip in ["192.0.2.7", "2001:db8::1", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(parse_reverse_name(&reverse_name(ip)), Some(ip));
        }
        assert_eq!(reverse_name("192.0.2.7".parse().unwrap()), "7.2.0.192.in-addr.arpa");
        assert_eq!(parse_reverse_name("1.2.3.in-addr.arpa"), None);
        assert_eq!(parse_reverse_name("example.com"), None);
    }
}
