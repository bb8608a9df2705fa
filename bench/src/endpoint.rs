//! Parsing of `ws://` and `http://` URLs, refusing anything outside 127.0.0.0/8.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// A loopback host, port and path taken from a URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The resolved loopback socket address.
    pub addr: SocketAddr,
    /// The host as written in the URL (used for `Host` headers).
    pub host: String,
    /// The path, `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    /// `host:port` as it belongs in an HTTP `Host` header.
    pub fn host_header(&self) -> String {
        format!("{}:{}", self.host, self.addr.port())
    }
}

/// Parses `url` with scheme `scheme` (`ws` or `http`); only 127.0.0.0/8 and `localhost` are accepted.
pub fn parse(url: &str, scheme: &str) -> Result<Endpoint, String> {
    let rest = url
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| format!("{url}: expected a {scheme}:// URL (TLS is not supported)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?),
        None => (authority, 80),
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>()
            .map_err(|_| format!("{url}: host must be an IPv4 address in 127.0.0.0/8 or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "{url}: refusing a non-loopback target ({ip}); only 127.0.0.0/8 is allowed"
        ));
    }
    Ok(Endpoint {
        addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
        host: host.to_string(),
        path: path.to_string(),
    })
}

/// The `i`-th of `n` source addresses 127.0.0.1 .. 127.0.0.n.
pub fn source_addr(i: usize, n: usize) -> SocketAddr {
    let k = (i % n.max(1)) as u32 + 1;
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x7F00_0000 + k), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_and_refuses_others() {
        let e = parse("ws://127.0.0.1:15674/ws", "ws").unwrap();
        assert_eq!((e.addr.port(), e.path.as_str()), (15674, "/ws"));
        assert_eq!(parse("http://localhost:8080", "http").unwrap().path, "/");
        assert!(parse("ws://10.0.0.1:80/ws", "ws").is_err());
        assert!(parse("ws://example.com/ws", "ws").is_err());
        assert!(parse("wss://127.0.0.1/ws", "ws").is_err());
        assert_eq!(source_addr(2, 3).to_string(), "127.0.0.3:0");
        assert_eq!(source_addr(3, 3).to_string(), "127.0.0.1:0");
    }
}
