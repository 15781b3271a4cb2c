//! What the native resolver reads from the system: `/etc/resolv.conf` and `/etc/hosts`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The settings of a resolv.conf that the native resolver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvConf {
    pub(super) nameservers: Vec<SocketAddr>,
    pub(super) search: Vec<String>,
    pub(super) ndots: usize,
    pub(super) timeout: Duration,
    pub(super) attempts: usize,
}

impl Default for ResolvConf {
    /// resolv.conf(5)'s defaults, used for what the file does not say (or when it is missing).
    fn default() -> Self {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// resolv.conf(5)'s caps on `timeout` and `attempts` (glibc's: 30 s, 5 attempts) and `ndots`.
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: usize = 5;
const MAX_NDOTS: usize = 15;

/// Parses resolv.conf's text; unknown or malformed lines are skipped, as the C library does.
pub(super) fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(addr) = words.next().and_then(super::parse_nameserver) {
                    conf.nameservers.push(addr);
                }
            }
            // The last `search` or `domain` line wins.
            Some("search") => conf.search = words.map(str::to_owned).collect(),
            Some("domain") => conf.search = words.next().map(str::to_owned).into_iter().collect(),
            Some("options") => {
                for option in words {
                    let (key, value) = option.split_once(':').unwrap_or((option, ""));
                    let number = value.parse::<u64>().ok();
                    match (key, number) {
                        ("timeout", Some(n)) => {
                            conf.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT_SECS));
                        }
                        ("attempts", Some(n)) => {
                            conf.attempts = (n as usize).clamp(1, MAX_ATTEMPTS);
                        }
                        ("ndots", Some(n)) => conf.ndots = (n as usize).min(MAX_NDOTS),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    conf
}

/// The name-to-address and address-to-name maps of a hosts file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Hosts {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, String>,
}

impl Hosts {
    /// Parses hosts(5) text: an address, then its canonical name and aliases; names match
    /// without regard to case.
    pub(super) fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            for (i, name) in words.enumerate() {
                let name = name.to_ascii_lowercase();
                if i == 0 {
                    hosts.by_addr.entry(ip).or_insert_with(|| name.clone());
                }
                let ips = hosts.by_name.entry(name).or_default();
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        hosts
    }

    /// The addresses the file gives `name`.
    pub(super) fn addrs(&self, name: &str) -> Option<&[IpAddr]> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.by_name.get(&name).map(Vec::as_slice)
    }

    /// The canonical name the file gives `ip`.
    pub(super) fn name(&self, ip: IpAddr) -> Option<&str> {
        self.by_addr.get(&ip).map(String::as_str)
    }
}

/// The names to query for `name`, in order: as resolv.conf(5) says, a name with fewer than
/// `ndots` dots is tried with each search domain first, and as is last; others as is first.
/// A name ending in a dot is absolute and tried alone.
pub(super) fn candidates(name: &str, conf_search: &[String], ndots: usize) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_owned()];
    }
    let searched = conf_search.iter().map(|domain| format!("{name}.{}", domain.trim_matches('.')));
    if name.matches('.').count() >= ndots {
        std::iter::once(name.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_owned())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines() {
        let conf = parse_resolv_conf(
            "# comment\nnameserver 192.0.2.1\nnameserver 2001:db8::53 # v6\nnameserver bogus\n\
             search a.example b.example\noptions ndots:2 timeout:3 attempts:9 rotate\n",
        );
        assert_eq!(
            conf.nameservers,
            ["192.0.2.1:53".parse().unwrap(), "[2001:db8::53]:53".parse().unwrap()]
        );
        assert_eq!(conf.search, ["a.example", "b.example"]);
        assert_eq!((conf.ndots, conf.timeout, conf.attempts), (2, Duration::from_secs(3), 5));
        assert_eq!(parse_resolv_conf(""), ResolvConf::default());
    }

    #[test]
    fn hosts_lines() {
        let hosts = Hosts::parse(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.0.2.5 Web.Example web # x\nbad line\n",
        );
        let ips = |name| hosts.addrs(name).map(<[IpAddr]>::to_vec);
        assert_eq!(
            ips("localhost"),
            Some(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()])
        );
        assert_eq!(ips("WEB.example."), Some(vec!["192.0.2.5".parse().unwrap()]));
        assert_eq!(ips("bad"), None);
        assert_eq!(hosts.name("192.0.2.5".parse().unwrap()), Some("web.example"));
    }

    #[test]
    fn search_order() {
        let search = ["corp.example".to_owned()];
        assert_eq!(candidates("db", &search, 1), ["db.corp.example", "db"]);
        assert_eq!(candidates("a.b", &search, 1), ["a.b", "a.b.corp.example"]);
        assert_eq!(candidates("db.", &search, 1), ["db"]);
    }
}
