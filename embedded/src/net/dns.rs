//! DNS over smoltcp's DNS socket: [`resolve`] blocks the calling greenlet until the name has
//! an IPv4 address (or the servers gave up), and [`connect`] opens a TCP connection by name.
//!
//! Servers: those set with [`set_servers`], else (with the `dhcpv4` feature) those of the DHCP
//! lease in force. smoltcp asks one server per query (its `dns-max-server-count` default) and
//! keeps one address per answer (`dns-max-result-count`), retrying and timing out by itself.

use alloc::vec;
use alloc::vec::Vec;

use gevent_core::hub::IoRegistration;
use gevent_core::platform::Interest;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::dns;
use smoltcp::wire::{DnsQueryType, IpAddress, IpEndpoint};

use super::{Kind, NetError, NetPoller, TcpStream};

/// The poller's resolver: the servers set by the firmware, and the queries greenlets wait on.
#[derive(Debug, Default)]
pub(super) struct Resolver {
    servers: Vec<IpAddress>,
    queries: Vec<Query>,
}

/// A query's socket (one per [`resolve`] call, a [`Kind::Dns`] entry) and, once the socket has
/// settled it, its outcome.
struct Query {
    socket: SocketHandle,
    query: dns::QueryHandle,
    outcome: Option<Result<Vec<IpAddress>, NetError>>,
}

impl core::fmt::Debug for Query {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Query")
            .field("socket", &self.socket)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl Resolver {
    /// Whether the query on `socket` has settled (what [`Kind::Dns`] entries report as
    /// readable).
    pub(super) fn settled(&self, socket: SocketHandle) -> bool {
        self.queries.iter().any(|q| q.socket == socket && q.outcome.is_some())
    }

    /// Lets go of the query on `socket` (its entry is being removed).
    pub(super) fn forget(&mut self, socket: SocketHandle) {
        self.queries.retain(|q| q.socket != socket);
    }
}

/// Makes [`resolve`] ask `servers` (at most one is used; see the module's documentation);
/// an empty list goes back to the DHCP lease's servers.
pub fn set_servers(servers: &[IpAddress]) -> Result<(), NetError> {
    NetPoller::with(|p| p.dns.servers = servers.to_vec())
}

/// The IPv4 addresses of `name`, asking the servers [`set_servers`] set or the DHCP lease's.
///
/// Fails with [`NetError::NameNotResolved`] when no server is known, when the servers say the
/// name does not exist or has no address, or when they do not answer (smoltcp gives up after
/// its retries); with [`NetError::InvalidAddress`] for a name that is not a valid DNS name.
pub fn resolve(name: &str) -> Result<Vec<IpAddress>, NetError> {
    let servers = NetPoller::with(|p| p.dns_servers())?;
    resolve_with(name, &servers)
}

/// [`resolve`], asking `servers` instead.
pub fn resolve_with(name: &str, servers: &[IpAddress]) -> Result<Vec<IpAddress>, NetError> {
    if servers.is_empty() {
        return Err(NetError::NameNotResolved);
    }
    let (source, socket) = NetPoller::with(|p| {
        let mut socket = dns::Socket::new(servers, vec![None]);
        let query = match socket.start_query(p.iface.context(), name, DnsQueryType::A) {
            Ok(query) => query,
            // A fresh socket has a free slot: only the name can be wrong.
            Err(_) => return Err(NetError::InvalidName),
        };
        let socket = p.sockets.add(socket);
        p.dns.queries.push(Query { socket, query, outcome: None });
        Ok((p.add(vec![socket], Kind::Dns), socket))
    })??;
    // Dropping the registration (however this returns) frees the socket and the query.
    let registration = IoRegistration::new(source).map_err(|_| NetError::NoNetwork)?;
    loop {
        let outcome = NetPoller::with(|p| {
            let query = p.dns.queries.iter().find(|q| q.socket == socket)?;
            query.outcome.clone()
        })?;
        if let Some(outcome) = outcome {
            return outcome;
        }
        registration.clear_readiness(Interest::READABLE);
        registration.wait(Interest::READABLE)?;
    }
}

/// Resolves `host` and connects to `port` on its first address.
pub fn connect(host: &str, port: u16) -> Result<TcpStream, NetError> {
    let address = *resolve(host)?.first().ok_or(NetError::NameNotResolved)?;
    TcpStream::connect(IpEndpoint::new(address, port))
}

impl NetPoller {
    /// The servers [`resolve`] asks: the firmware's, else the DHCP lease's.
    fn dns_servers(&self) -> Vec<IpAddress> {
        if !self.dns.servers.is_empty() {
            return self.dns.servers.clone();
        }
        #[cfg(feature = "dhcpv4")]
        if let Some(config) = self.dhcp.config() {
            return config.dns_servers.iter().map(|&a| IpAddress::Ipv4(a)).collect();
        }
        Vec::new()
    }

    /// Takes the outcome of every query that settled in the last poll of the interface.
    pub(super) fn collect_dns(&mut self) {
        for query in self.dns.queries.iter_mut().filter(|q| q.outcome.is_none()) {
            let socket = self.sockets.get_mut::<dns::Socket<'static>>(query.socket);
            query.outcome = match socket.get_query_result(query.query) {
                Err(dns::GetQueryResultError::Pending) => None,
                Ok(addresses) if addresses.is_empty() => Some(Err(NetError::NameNotResolved)),
                Ok(addresses) => Some(Ok(addresses.iter().copied().collect())),
                Err(dns::GetQueryResultError::Failed) => Some(Err(NetError::NameNotResolved)),
            };
        }
    }
}
