//! [`ThreadResolver`]: the system's resolver, called on the thread pool.

use std::ffi::{CStr, c_char};
use std::io;
use std::net::{IpAddr, SocketAddr};

use rustix::net::SocketAddrAny;

use super::{Record, RecordType, Resolver, push_unique};
use crate::fs::on_pool;

/// The system's `getaddrinfo` and `getnameinfo`, each call run on the
/// [thread pool](crate::threadpool::spawn_blocking) while the calling greenlet parks
/// (gevent's default `resolver.thread`).
///
/// An interrupted lookup (a kill, a [`Timeout`](crate::Timeout)) returns at once; the call
/// itself finishes on its thread and its answer is dropped. [`Resolver::lookup`] answers
/// A, AAAA and PTR only: the system's calls know nothing of the other record types.
#[derive(Debug, Clone, Default)]
pub struct ThreadResolver {
    _private: (),
}

impl ThreadResolver {
    /// The resolver; it holds nothing of its own.
    pub fn new() -> ThreadResolver {
        ThreadResolver { _private: () }
    }
}

/// The system's `getaddrinfo` answer as std gives it (repeats included), from the pool.
fn system_addrs(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host.to_owned();
    on_pool(move || {
        std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Vec::from_iter)
    })
}

impl Resolver for ThreadResolver {
    fn lookup_host(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        let addrs = system_addrs(name, 0)?;
        let mut ips = Vec::with_capacity(addrs.len());
        push_unique(&mut ips, addrs.iter().map(SocketAddr::ip));
        Ok(ips)
    }

    /// The system's answer as std gives it (IPv6 scope ids kept), once per address.
    fn getaddrinfo(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let addrs = system_addrs(host, port)?;
        let mut unique = Vec::with_capacity(addrs.len());
        push_unique(&mut unique, addrs);
        Ok(unique)
    }

    fn lookup(&self, name: &str, rtype: RecordType) -> io::Result<Vec<Record>> {
        let ips = || self.lookup_host(name);
        match rtype {
            RecordType::A => Ok(ips()?
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(Record::A(v4)),
                    IpAddr::V6(_) => None,
                })
                .collect()),
            RecordType::AAAA => Ok(ips()?
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(Record::Aaaa(v6)),
                    IpAddr::V4(_) => None,
                })
                .collect()),
            RecordType::PTR => {
                let ip = super::parse_reverse_name(name).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{name} is not an in-addr.arpa or ip6.arpa name"),
                    )
                })?;
                Ok(vec![Record::Ptr(self.gethostbyaddr(ip)?)])
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the thread resolver (the system's getaddrinfo) cannot look up {rtype} \
                     records; use dns::NativeResolver"
                ),
            )),
        }
    }

    fn gethostbyaddr(&self, ip: IpAddr) -> io::Result<String> {
        on_pool(move || name_info(ip))
    }
}

/// `getnameinfo(ip, NI_NAMEREQD)`: the host name `ip` belongs to.
fn name_info(ip: IpAddr) -> io::Result<String> {
    let addr = SocketAddrAny::from(SocketAddr::new(ip, 0));
    let mut host = [0u8; 1025]; // NI_MAXHOST
    #[allow(unsafe_code)]
    // SAFETY: `addr` is a local socket address that stays alive for the whole call, and
    // `as_ptr`/`addr_len` describe exactly its initialized storage; `host` is a local buffer
    // of the length passed, which getnameinfo fills with a NUL-terminated string or leaves
    // alone on failure; no service buffer is asked for (null, length 0). getnameinfo is
    // thread-safe (POSIX), so running it on any pool thread at once with others is fine.
    let rc = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast::<libc::sockaddr>(),
            addr.addr_len() as libc::socklen_t,
            host.as_mut_ptr().cast::<c_char>(),
            // socklen_t on Linux and macOS, size_t on FreeBSD; 1025 fits either.
            host.len() as _,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return Err(gai_error(rc, ip));
    }
    // The zeroed buffer's last byte is never written (getnameinfo truncates to len - 1 and
    // terminates), so a NUL is always found.
    let name = CStr::from_bytes_until_nul(&host)
        .map_err(|_| io::Error::other("getnameinfo returned an unterminated name"))?;
    Ok(name.to_string_lossy().into_owned())
}

/// An `EAI_*` code from getnameinfo as an io::Error.
fn gai_error(code: i32, ip: IpAddr) -> io::Error {
    if code == libc::EAI_SYSTEM {
        let os = io::Error::last_os_error();
        return io::Error::new(os.kind(), format!("no host name for {ip}: getnameinfo: {os}"));
    }
    let kind = if code == libc::EAI_NONAME {
        io::ErrorKind::NotFound
    } else if code == libc::EAI_AGAIN {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    #[allow(unsafe_code)]
    // SAFETY: gai_strerror accepts any code (an "unknown error" text for codes it does not
    // know) and is thread-safe (POSIX does not exempt it), returning a NUL-terminated message
    // in static storage that is never freed. The borrow is copied into the owned message below
    // before this function returns, so nothing relies on the storage outliving this call.
    let why = unsafe { CStr::from_ptr(libc::gai_strerror(code)) }.to_string_lossy().into_owned();
    io::Error::new(kind, format!("no host name for {ip}: {why}"))
}
