//! Which address a request comes from, sans-io (SPEC §7). Behind a load balancer every request
//! reaches Herald from the balancer; `server.trusted_proxies` names such peers (CIDR blocks). From
//! a trusted peer the client is the right-most `X-Forwarded-For` entry that is not itself
//! trusted — entries to its left were written by the client and prove nothing. From any other
//! peer the header is ignored, so a client cannot choose the address its rate limits count.

use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    /// Parses `server.trusted_proxies`; the error names the bad entry.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        let blocks = list.iter().map(|s| s.parse::<Cidr>()).collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { blocks })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client address of a request that arrived from `peer` with these `X-Forwarded-For`
    /// values (all of the request's headers, joined with commas in order).
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for entry in header.rsplit(',') {
            let Some(ip) = parse_entry(entry) else {
                // Garbage where an address should be: nothing to its left can be believed.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        // Every hop is a trusted proxy: the left-most is as close to the client as we can tell.
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`), as some proxies write them.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    }
    let (ip, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn blocks_parse_and_match() {
        let b: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(b.contains(ip("10.1.2.3")) && !b.contains(ip("11.0.0.1")));
        assert!(b.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped peers match IPv4 blocks");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "::/129", "nonsense", "10.0.0/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "oops".into()]).unwrap_err();
        assert!(err.contains("oops"), "{err}");
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(t.client(ip("10.0.0.5"), Some("203.0.113.9")), ip("203.0.113.9"));
        // Two proxies of ours in a row: the right-most untrusted entry.
        assert_eq!(
            t.client(ip("10.0.0.5"), Some("203.0.113.9, 10.0.0.7")),
            ip("203.0.113.9")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.5"), None), ip("10.0.0.5"));
        // Only proxies: the left-most.
        assert_eq!(t.client(ip("10.0.0.5"), Some("10.0.0.8, 10.0.0.7")), ip("10.0.0.8"));
        // Ports and IPv6 as some proxies write them.
        assert_eq!(t.client(ip("10.0.0.5"), Some("203.0.113.9:4711")), ip("203.0.113.9"));
        assert_eq!(t.client(ip("10.0.0.5"), Some("[2001:db8::1]:4711")), ip("2001:db8::1"));
        assert_eq!(t.client(ip("::ffff:10.0.0.5"), Some("2001:db8::2")), ip("2001:db8::2"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(t.client(ip("198.51.100.4"), Some("203.0.113.9")), ip("198.51.100.4"));
        // With no proxy configured (the default), the header never counts.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("127.0.0.1"), Some("203.0.113.9")), ip("127.0.0.1"));
    }

    #[test]
    fn a_forged_chain_yields_the_address_our_proxy_saw() {
        let t = proxies(&["10.0.0.0/8"]);
        // The client sent "X-Forwarded-For: 1.2.3.4, 10.0.0.9" itself; our proxy appended its peer.
        assert_eq!(
            t.client(ip("10.0.0.5"), Some("1.2.3.4, 10.0.0.9, 198.51.100.4")),
            ip("198.51.100.4"),
            "entries left of the first untrusted one are the client's own words"
        );
        // A forged trusted-looking entry right after the real client changes nothing either.
        assert_eq!(
            t.client(ip("10.0.0.5"), Some("10.0.0.9, 198.51.100.4")),
            ip("198.51.100.4")
        );
        // Garbage stops the walk at the last hop we can believe.
        assert_eq!(
            t.client(ip("10.0.0.5"), Some("203.0.113.9, <script>, 10.0.0.7")),
            ip("10.0.0.7")
        );
        assert_eq!(t.client(ip("10.0.0.5"), Some("")), ip("10.0.0.5"));
        assert_eq!(t.client(ip("10.0.0.5"), Some(" , ")), ip("10.0.0.5"));
    }
}
