//! [`NativeResolver`]: a cooperative DNS stub resolver.

mod config;
mod transport;
mod wire;

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gevent_core::AsInterrupted;

use self::config::{Hosts, ResolvConf};
use self::transport::Exchange;
use self::wire::Reply;
use super::{Record, RecordType, Resolver, push_unique};

const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";
const DNS_PORT: u16 = 53;

/// A DNS stub resolver on cooperative sockets (gevent's `ares` and `dnspython` resolvers).
///
/// A lookup first checks the hosts file; then it asks each name server in turn, over UDP,
/// waiting at most the timeout per try, and goes round the list `attempts` times. A server
/// that answers with a truncated reply is asked again over TCP. A server that fails
/// (SERVFAIL, REFUSED, an I/O error) hands over to the next one; a reply that the name does
/// not exist is final. Each query has its own socket and a random id, and only a reply from
/// the server asked, with that id and that question, is accepted.
///
/// Nothing is cached: each call asks again.
///
/// Cloning is cheap: clones share the settings and the hosts file read at
/// [`build`](NativeResolverBuilder::build).
#[derive(Debug, Clone)]
pub struct NativeResolver {
    // Shared, not owned: each `lookup_host` hands a clone to its AAAA greenlet.
    nameservers: Arc<[SocketAddr]>,
    search: Arc<[String]>,
    ndots: usize,
    timeout: Duration,
    attempts: usize,
    hosts: Arc<Hosts>,
}

/// Builds a [`NativeResolver`]; what is not set comes from `/etc/resolv.conf` and
/// `/etc/hosts`.
#[derive(Debug, Clone, Default)]
pub struct NativeResolverBuilder {
    nameservers: Vec<SocketAddr>,
    timeout: Option<Duration>,
    attempts: Option<usize>,
    hosts_file: Option<PathBuf>,
    resolv_conf: Option<PathBuf>,
    search: Option<Vec<String>>,
    ndots: Option<usize>,
}

impl NativeResolver {
    /// A builder starting from the system's settings.
    pub fn builder() -> NativeResolverBuilder {
        NativeResolverBuilder::default()
    }

    /// The name servers asked, in order.
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// Asks the name servers about `name` (as is: no hosts file, no search list).
    fn query(&self, name: &str, rtype: RecordType) -> io::Result<Vec<Record>> {
        let id = random_id();
        let query = wire::query(id, name, rtype)?;
        let mut last_failure = None;
        for _ in 0..self.attempts {
            for &server in self.nameservers.iter() {
                let accept = |bytes: &[u8]| wire::reply(bytes, id, name, rtype);
                let exchange = match transport::udp(server, &query, self.timeout, accept) {
                    Ok(Exchange::Reply(Reply::Truncated)) => {
                        transport::tcp(server, &query, self.timeout, accept)
                    }
                    other => other,
                };
                match exchange {
                    Ok(Exchange::Reply(Reply::Records(records))) => return Ok(records),
                    Ok(Exchange::Reply(Reply::NoSuchName)) => {
                        return Err(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{name} does not exist (NXDOMAIN from {server})"),
                        ));
                    }
                    Ok(Exchange::Reply(Reply::Failed(rcode))) => {
                        last_failure = Some(io::Error::other(format!(
                            "{server} could not answer for {name} ({})",
                            rcode_name(rcode)
                        )));
                    }
                    Ok(Exchange::Reply(Reply::Truncated)) => {
                        last_failure = Some(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{server} sent a truncated reply over TCP for {name}"),
                        ));
                    }
                    Ok(Exchange::TimedOut) => {}
                    Err(e) if e.as_interrupted().is_some() => return Err(e),
                    Err(e) => {
                        last_failure = Some(io::Error::new(
                            e.kind(),
                            format!("asking {server} about {name}: {e}"),
                        ));
                    }
                }
            }
        }
        Err(last_failure.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no name server answered the {rtype} query for {name} \
                     ({} server(s), {} attempt(s) of {:?} each)",
                    self.nameservers.len(),
                    self.attempts,
                    self.timeout
                ),
            )
        }))
    }

    /// [`query`](Self::query) over the search list's candidates: the first that exists.
    fn search(&self, name: &str, rtype: RecordType) -> io::Result<Vec<Record>> {
        let mut not_found = None;
        for candidate in config::candidates(name, &self.search, self.ndots) {
            match self.query(&candidate, rtype) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => not_found = Some(e),
                done => return done,
            }
        }
        Err(not_found.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "an empty name cannot be looked up")
        }))
    }
}

impl NativeResolverBuilder {
    /// Adds a name server (the first one replaces resolv.conf's list).
    pub fn nameserver(mut self, addr: SocketAddr) -> Self {
        self.nameservers.push(addr);
        self
    }

    /// How long to wait for each try's reply (resolv.conf's `timeout`, else 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times to go round the name servers (resolv.conf's `attempts`, else 2).
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The hosts file to read instead of `/etc/hosts`.
    pub fn hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.hosts_file = Some(path.into());
        self
    }

    /// The resolv.conf to read instead of `/etc/resolv.conf`.
    pub fn resolv_conf(mut self, path: impl Into<PathBuf>) -> Self {
        self.resolv_conf = Some(path.into());
        self
    }

    /// The domains to try unqualified names in (resolv.conf's `search`), in place of the
    /// file's.
    pub fn search(mut self, domains: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.search = Some(domains.into_iter().map(Into::into).collect());
        self
    }

    /// How many dots make a name be tried as is before the search list (resolv.conf's
    /// `ndots`, else 1).
    pub fn ndots(mut self, ndots: usize) -> Self {
        self.ndots = Some(ndots);
        self
    }

    /// Reads the files and builds the resolver.
    ///
    /// A missing default file counts as an empty one (with no name server, the local one on
    /// port 53 is asked, as the C library does); a file given here that cannot be read is
    /// an error, as are a zero timeout or zero attempts.
    pub fn build(self) -> io::Result<NativeResolver> {
        let conf = match read_optional(self.resolv_conf.as_deref(), RESOLV_CONF)? {
            Some(text) => config::parse_resolv_conf(&text),
            None => ResolvConf::default(),
        };
        let hosts = match read_optional(self.hosts_file.as_deref(), HOSTS)? {
            Some(text) => Hosts::parse(&text),
            None => Hosts::default(),
        };
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let timeout = self.timeout.unwrap_or(conf.timeout);
        if timeout.is_zero() {
            return Err(invalid("the DNS query timeout must not be zero"));
        }
        let attempts = self.attempts.unwrap_or(conf.attempts);
        if attempts == 0 {
            return Err(invalid("the number of DNS query attempts must not be zero"));
        }
        let mut nameservers =
            if self.nameservers.is_empty() { conf.nameservers } else { self.nameservers };
        if nameservers.is_empty() {
            nameservers.push(SocketAddr::from(([127, 0, 0, 1], DNS_PORT)));
        }
        Ok(NativeResolver {
            nameservers: nameservers.into(),
            search: self.search.unwrap_or(conf.search).into(),
            ndots: self.ndots.unwrap_or(conf.ndots),
            timeout,
            attempts,
            hosts: Arc::new(hosts),
        })
    }
}

/// The text of `given`, or of `default` if it exists.
fn read_optional(given: Option<&std::path::Path>, default: &str) -> io::Result<Option<String>> {
    match given {
        Some(path) => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))),
        None => match std::fs::read_to_string(default) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(e.kind(), format!("reading {default}: {e}"))),
        },
    }
}

impl Resolver for NativeResolver {
    fn lookup_host(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(ips) = self.hosts.addrs(name) {
            return Ok(ips.to_vec());
        }
        // The AAAA query goes out beside the A query, in a greenlet of its own (with a clone
        // of the resolver, since it must own it), so a lookup takes one round trip, not two;
        // it is killed if this greenlet gives up first.
        let aaaa = {
            let (this, name) = (self.clone(), name.to_owned());
            KillOnDrop(gevent_core::spawn(move || this.search(&name, RecordType::AAAA)))
        };
        let mut ips = Vec::new();
        let ip_of = |record| match record {
            Record::A(v4) => Some(IpAddr::V4(v4)),
            Record::Aaaa(v6) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        push_unique(&mut ips, self.search(name, RecordType::A)?.into_iter().filter_map(ip_of));
        let aaaa = match aaaa.0.take() {
            Ok(result) => result,
            Err(gevent_core::Error::Interrupted(why)) => return Err(why.into()),
            Err(failed) => Err(io::Error::other(failed)),
        };
        match aaaa {
            Ok(records) => push_unique(&mut ips, records.into_iter().filter_map(ip_of)),
            // IPv4 answers stand even if the IPv6 query fails, unless nothing was found.
            Err(e) if ips.is_empty() || e.as_interrupted().is_some() => return Err(e),
            Err(_) => {}
        }
        if ips.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name} exists but has no address"),
            ));
        }
        Ok(ips)
    }

    fn lookup(&self, name: &str, rtype: RecordType) -> io::Result<Vec<Record>> {
        self.search(name, rtype)
    }

    fn gethostbyaddr(&self, ip: IpAddr) -> io::Result<String> {
        if let Some(name) = self.hosts.name(ip) {
            return Ok(name.to_owned());
        }
        let name = super::reverse_name(ip);
        self.query(&name, RecordType::PTR)?
            .into_iter()
            .find_map(|record| match record {
                Record::Ptr(host) => Some(host),
                _ => None,
            })
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no host name for {ip}"))
            })
    }
}

/// `ip` or `ip:port` (`[v6]:port`), port 53 by default.
pub(crate) fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, DNS_PORT)))
}

fn rcode_name(rcode: simple_dns::RCODE) -> String {
    use simple_dns::RCODE;
    match rcode {
        RCODE::FormatError => "FORMERR: it could not read the query".to_owned(),
        RCODE::ServerFailure => "SERVFAIL: server failure".to_owned(),
        RCODE::NotImplemented => "NOTIMP: query not implemented".to_owned(),
        RCODE::Refused => "REFUSED: it refused to answer".to_owned(),
        other => format!("response code {other:?}"),
    }
}

thread_local! {
    /// A splitmix64 state, seeded once per thread from the clock, the process id and an
    /// address (ASLR); query ids need to be hard to guess from outside, not cryptographic.
    static ID_STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let local = 0u8;
    let address = std::ptr::addr_of!(local) as u64;
    nanos ^ u64::from(std::process::id()).rotate_left(32) ^ address.rotate_left(17)
}

/// A fresh message id.
fn random_id() -> u16 {
    ID_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u16
    })
}

/// Kills a helper greenlet whose result is no longer wanted (a no-op once it has ended).
struct KillOnDrop<T: 'static>(gevent_core::Greenlet<T>);

impl<T: 'static> Drop for KillOnDrop<T> {
    fn drop(&mut self) {
        self.0.kill_nowait();
    }
}
