//! Blocked networks: the resolved address of every outbound connection is checked here, so a
//! connector cannot reach the host's loopback, private networks, link-local or cloud-metadata
//! addresses through an allowed name that resolves there (DNS rebinding included — the address
//! checked is the one connected to).
//!
//! An IPv6 address that embeds an IPv4 address — mapped, compatible, translated, NAT64, 6to4,
//! Teredo or ISATAP — is blocked when any IPv4 address it embeds is; the local-use NAT64 prefix
//! `64:ff9b:1::/48` is blocked as a whole. An operator may allow networks
//! explicitly (tests allow `127.0.0.1/32`); cloud-metadata addresses are only allowed by an entry
//! naming exactly that address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// An IP network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn new(addr: IpAddr, prefix: u8) -> Result<Self, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max}"));
        }
        Ok(Self { addr, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    fn is_single_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let prefix = match p {
            Some(p) => p.trim().parse().map_err(|_| format!("{s:?} has an invalid prefix length"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> (Ipv4Addr, u8) {
    (Ipv4Addr::new(a, b, c, d), prefix)
}

/// IPv4 networks that are never the public internet.
const BLOCKED_V4: &[((Ipv4Addr, u8), &str)] = &[
    (v4(0, 0, 0, 0, 8), "unspecified / this-network"),
    (v4(10, 0, 0, 0, 8), "private network (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "shared address space (RFC 6598)"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local"),
    (v4(172, 16, 0, 0, 12), "private network (RFC 1918)"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation (TEST-NET-1)"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private network (RFC 1918)"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation (TEST-NET-2)"),
    (v4(203, 0, 113, 0, 24), "documentation (TEST-NET-3)"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved / broadcast"),
];

/// Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack, Alibaba, AWS IPv6).
const METADATA: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        Some("unique local (private)")
    } else if seg[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if seg[0] & 0xffc0 == 0xfec0 {
        Some("site-local")
    } else if seg[0] & 0xff00 == 0xff00 {
        Some("multicast")
    } else if seg[0] == 0x2001 && seg[1] == 0x0db8 || seg[0] & 0xfff0 == 0x3ff0 {
        Some("documentation")
    } else if seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 {
        Some("discard-only")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        // RFC 8215: a local-use NAT64 prefix translates into networks of the operator's choosing.
        Some("local-use NAT64 (RFC 8215)")
    } else if seg[0] == 0x2001 && seg[1] == 0x0002 && seg[2] == 0 {
        Some("benchmarking")
    } else if seg[0] == 0x2001 && (seg[1] & 0xffe0 == 0x0020 || seg[1] & 0xfff0 == 0x0010) {
        Some("ORCHID")
    } else if seg[0] == 0x5f00 {
        Some("segment routing (SRv6 SIDs)")
    } else {
        None
    }
}

/// The IPv4 addresses an IPv6 address stands for or carries, by every standard embedding:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d` (RFC 2765), NAT64 `64:ff9b::a.b.c.d` (RFC 6052), 6to4 `2002:AABB:CCDD::/48`
/// (RFC 3056), Teredo `2001:0::/32` (server and obfuscated client, RFC 4380) and ISATAP
/// interface identifiers `…:0:5efe:a.b.c.d` / `…:200:5efe:a.b.c.d` (RFC 5214).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let seg = ip.segments();
    let quad = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    let tail = quad(seg[6], seg[7]);
    let mut found = Vec::new();
    if seg[..5].iter().all(|s| *s == 0) && seg[5] == 0xffff {
        found.push(tail); // mapped
    } else if seg[..4].iter().all(|s| *s == 0) && seg[4] == 0xffff && seg[5] == 0 {
        found.push(tail); // translated
    } else if seg[..6].iter().all(|s| *s == 0) && u32::from(tail) > 1 {
        found.push(tail); // compatible (not :: or ::1)
    } else if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0) {
        found.push(tail); // NAT64 well-known prefix
    } else if seg[0] == 0x2002 {
        found.push(quad(seg[1], seg[2])); // 6to4
    } else if seg[0] == 0x2001 && seg[1] == 0 {
        found.push(quad(seg[2], seg[3])); // Teredo server
        found.push(quad(!seg[6], !seg[7])); // Teredo client, bits inverted
    }
    if seg[4] & 0xfdff == 0 && seg[5] == 0x5efe {
        found.push(tail); // ISATAP
    }
    found
}

/// Why `ip` is blocked by default, or `None` for a public address.
pub(crate) fn blocked_reason(ip: IpAddr) -> Option<String> {
    if METADATA.contains(&ip) {
        return Some("cloud metadata endpoint".into());
    }
    match ip {
        IpAddr::V4(a) => BLOCKED_V4
            .iter()
            .find(|((net, p), _)| Cidr { addr: IpAddr::V4(*net), prefix: *p }.contains(IpAddr::V4(a)))
            .map(|(_, why)| (*why).to_string()),
        IpAddr::V6(a) => {
            if let Some(why) = blocked_v6(a) {
                return Some(why.to_string());
            }
            embedded_v4(a)
                .into_iter()
                .find_map(|v4| blocked_reason(IpAddr::V4(v4)).map(|why| format!("{why} ({v4}), embedded in IPv6 {a}")))
        }
    }
}

/// The operator's network policy: which normally blocked networks are allowed anyway.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allowed: Vec<Cidr>,
}

/// A connection refused because of where it would go.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{addr} is blocked ({reason})")]
pub struct BlockedAddress {
    /// The address refused.
    pub addr: IpAddr,
    /// Why it is blocked, e.g. `loopback` or `cloud metadata endpoint`.
    pub reason: String,
}

impl NetworkPolicy {
    /// Blocks every non-public network.
    pub(crate) fn strict() -> Self {
        Self::default()
    }

    /// Additionally allows these networks.
    pub fn allowing(allowed: Vec<Cidr>) -> Self {
        Self { allowed }
    }

    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        let Some(reason) = blocked_reason(ip) else { return Ok(()) };
        // An address is allowed when the operator allows it, or every blocked IPv4 address it
        // embeds; metadata addresses only by an entry naming exactly that address.
        let allows = |a: IpAddr| {
            let metadata = METADATA.contains(&a);
            self.allowed.iter().any(|n| n.contains(a) && (!metadata || n.is_single_host()))
        };
        let allowed = match ip {
            IpAddr::V4(_) => allows(ip),
            IpAddr::V6(a) => {
                let embedded: Vec<IpAddr> =
                    embedded_v4(a).into_iter().map(IpAddr::V4).filter(|v4| blocked_reason(*v4).is_some()).collect();
                if blocked_v6(a).is_some() || embedded.is_empty() {
                    allows(ip)
                } else {
                    embedded.into_iter().all(allows)
                }
            }
        };
        if allowed { Ok(()) } else { Err(BlockedAddress { addr: ip, reason }) }
    }
}

/// DNS resolver for the HTTP client that drops blocked addresses; if none is left the connection
/// fails with [`BlockedAddress`].
pub(crate) struct GuardedResolver {
    pub(crate) policy: Arc<NetworkPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_block = None;
            let ok: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        first_block.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if ok.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_block {
                    Some(b) => {
                        Box::new(BlockedAddress { addr: b.addr, reason: format!("{} resolves to {}", host, b.reason) })
                    }
                    None => format!("{host} did not resolve to any address").into(),
                };
                return Err(err);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_non_public_networks() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
            "ff02::1",
        ] {
            assert!(NetworkPolicy::strict().check(ip(a)).is_err(), "{a} should be blocked");
        }
    }

    /// Every embedding of a blocked IPv4 address, for loopback, metadata and a private network.
    #[test]
    fn every_ipv6_embedding_of_a_blocked_ipv4_address_is_blocked() {
        // (IPv4 address, its two 16-bit halves, the halves inverted for Teredo)
        for (v4, hi, lo) in
            [("127.0.0.1", 0x7f00u16, 0x0001u16), ("169.254.169.254", 0xa9fe, 0xa9fe), ("10.1.2.3", 0x0a01, 0x0203)]
        {
            let (nhi, nlo) = (!hi, !lo);
            let forms = [
                format!("::ffff:{v4}"),                                // IPv4-mapped
                format!("::ffff:{hi:x}:{lo:x}"),                       // IPv4-mapped, hex
                format!("::{v4}"),                                     // IPv4-compatible
                format!("::ffff:0:{v4}"),                              // IPv4-translated (RFC 2765)
                format!("::ffff:0:{hi:x}:{lo:x}"),                     // IPv4-translated, hex
                format!("64:ff9b::{v4}"),                              // NAT64 well-known prefix
                format!("64:ff9b:1::{hi:x}:{lo:x}"),                   // NAT64 local use (RFC 8215)
                format!("64:ff9b:1:{hi:x}:{lo:x}::"),                  // NAT64 local use, /48 layout
                format!("2002:{hi:x}:{lo:x}::1"),                      // 6to4
                format!("2002:{hi:x}:{lo:x}:ffff::"),                  // 6to4, other subnet
                format!("2001:0:4136:e378:8000:63bf:{nhi:x}:{nlo:x}"), // Teredo client
                format!("2001:0:{hi:x}:{lo:x}::1"),                    // Teredo server
                format!("2600:1f18::5efe:{v4}"),                       // ISATAP
                format!("2600:1f18::200:5efe:{hi:x}:{lo:x}"),          // ISATAP, universal bit
            ];
            for form in forms {
                let addr: IpAddr = form.parse().unwrap_or_else(|e| panic!("{form}: {e}"));
                let err = NetworkPolicy::strict().check(addr).expect_err(&form);
                assert!(err.reason.contains(v4) || err.reason.contains("NAT64"), "{form}: {}", err.reason);
            }
        }
        // The same embeddings of a public address are public.
        for form in [
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2600:1f18::5efe:8.8.8.8",
        ] {
            assert!(NetworkPolicy::strict().check(ip(form)).is_ok(), "{form} should be allowed");
        }
        // Reserved IPv6 ranges.
        for form in ["3fff::1", "2001:2::1", "2001:10::1", "2001:20::1", "5f00::1"] {
            assert!(NetworkPolicy::strict().check(ip(form)).is_err(), "{form} should be blocked");
        }
    }

    #[test]
    fn allowing_an_ipv4_network_allows_its_embeddings() {
        let p = NetworkPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(p.check(ip("::ffff:0:7f00:1")).is_ok());
        assert!(p.check(ip("2002:7f00:1::1")).is_ok());
        // A Teredo address whose server is loopback and client is private needs both allowed.
        assert!(p.check(ip("2001:0:7f00:1::f5fe:fdfc")).is_err());
        assert!(p.check(ip("64:ff9b:1::7f00:1")).is_err(), "local-use NAT64 is blocked as a whole");
    }

    #[test]
    fn allows_public_addresses() {
        for a in ["1.1.1.1", "93.184.216.34", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(NetworkPolicy::strict().check(ip(a)).is_ok(), "{a} should be allowed");
        }
    }

    #[test]
    fn mapped_metadata_is_named() {
        let e = NetworkPolicy::strict().check(ip("::ffff:169.254.169.254")).unwrap_err();
        assert!(e.reason.contains("metadata"), "{}", e.reason);
    }

    #[test]
    fn operator_allowance() {
        let p = NetworkPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap(), "169.254.0.0/16".parse().unwrap()]);
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::ffff:127.0.0.1")).is_ok());
        assert!(p.check(ip("127.0.0.2")).is_err());
        assert!(p.check(ip("169.254.1.1")).is_ok());
        // Metadata needs an entry naming exactly that address.
        assert!(p.check(ip("169.254.169.254")).is_err());
        let p = NetworkPolicy::allowing(vec!["169.254.169.254".parse().unwrap()]);
        assert!(p.check(ip("169.254.169.254")).is_ok());
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let c: Cidr = "::/0".parse().unwrap();
        assert!(c.contains(ip("::1")));
    }
}
