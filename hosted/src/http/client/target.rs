//! Where a request goes: the scheme, host and port of its absolute URI, which also key the pool.

use std::fmt;
use std::io;

use ::http::Uri;
use ::http::uri::Scheme;

/// The origin a request is sent to (RFC 9110 §4.3.1): one pool of connections each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    /// `https` rather than `http`.
    pub(super) tls: bool,
    /// The host as written in the URI, brackets of an IPv6 literal removed.
    pub(super) host: String,
    pub(super) port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URI.
    pub(super) fn of(uri: &Uri) -> io::Result<Origin> {
        let invalid = |why: &str| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("invalid URL {uri}: {why}"))
        };
        let scheme = uri.scheme().ok_or_else(|| invalid("no scheme (want http:// or https://)"))?;
        let tls = if *scheme == Scheme::HTTP {
            false
        } else if *scheme == Scheme::HTTPS {
            true
        } else {
            return Err(invalid(&format!("unsupported scheme {scheme:?} (only http and https)")));
        };
        let host = uri.host().filter(|host| !host.is_empty()).ok_or_else(|| invalid("no host"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Origin { tls, host: host.to_owned(), port })
    }

    /// The `Host` header's value: the port only when it is not the scheme's default.
    pub(super) fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let bracketed = self.host.contains(':');
        match (bracketed, self.port == default) {
            (false, true) => self.host.clone(),
            (false, false) => format!("{}:{}", self.host, self.port),
            (true, true) => format!("[{}]", self.host),
            (true, false) => format!("[{}]:{}", self.host, self.port),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        let default = if self.tls { 443 } else { 80 };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]", self.host)?;
        } else {
            write!(f, "{scheme}://{}", self.host)?;
        }
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Parses `url` as an absolute URI, saying what is wrong with it if it is not one.
pub(super) fn parse_url(url: &str) -> io::Result<Uri> {
    url.parse::<Uri>().map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("invalid URL {url:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> io::Result<Origin> {
        Origin::of(&parse_url(url)?)
    }

    #[test]
    fn origins_take_the_default_port_of_their_scheme() {
        let plain = origin("http://example.com/a?b").unwrap();
        assert_eq!((plain.tls, plain.host.as_str(), plain.port), (false, "example.com", 80));
        assert_eq!(plain.host_header(), "example.com");
        let tls = origin("https://example.com:8443").unwrap();
        assert_eq!((tls.tls, tls.port), (true, 8443));
        assert_eq!(tls.host_header(), "example.com:8443");
        assert_eq!(tls.to_string(), "https://example.com:8443");
    }

    #[test]
    fn ipv6_literals_lose_their_brackets_for_connecting_and_keep_them_in_host() {
        let v6 = origin("http://[::1]:8080/").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.host_header(), "[::1]:8080");
        assert_eq!(v6.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn urls_that_are_not_absolute_http_say_why() {
        let err = |url| origin(url).unwrap_err().to_string();
        assert!(err("ftp://example.com/").contains("unsupported scheme"), "{}", err("ftp://x/"));
        assert!(err("/relative/path").contains("no scheme"));
        assert!(err("http://exa mple.com/").contains("invalid URL"));
        assert_eq!(origin("").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
