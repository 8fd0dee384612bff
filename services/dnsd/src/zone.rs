//! The local names: the router's own name, `[[dns.hosts]]`, static
//! leases and DHCP leases with a host name, and the reverse (PTR) names of
//! their addresses. Earlier sources win a name: a client calling itself
//! like the router or a static host does not take the name over.
//!
//! dnsd answers for the local domain itself: a name under it that is not
//! known is NXDOMAIN (never forwarded), and so is a bare single label that
//! is not a local name. Reverse names of addresses in the served subnets
//! are answered here too (NXDOMAIN when unknown), so private addresses do
//! not leak upstream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bus_schema::bus::DhcpLease;
use ipnet::IpNet;

use crate::settings::Settings;

/// DNS type numbers dnsd answers locally.
pub mod qtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Pointer (reverse).
    pub const PTR: u16 = 12;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Any type.
    pub const ANY: u16 = 255;
}

/// The local answer for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The name's addresses of the asked type (none: NODATA).
    Addresses(Vec<IpAddr>),
    /// The name of a reverse name's address.
    Ptr(String),
    /// The local domain's SOA.
    Soa,
    /// The name is local but does not exist.
    NxDomain,
}

/// The local names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    domain: String,
    names: HashMap<String, Vec<IpAddr>>,
    reverse: HashMap<IpAddr, String>,
    router_names: [String; 2],
    /// The router's addresses by the address a query arrived on (all of
    /// that network's).
    router_by_local: HashMap<IpAddr, Vec<IpAddr>>,
    router_all: Vec<IpAddr>,
    subnets: Vec<IpNet>,
}

/// A DHCP client's host name as a DNS label: its first label,
/// lower-case, when that is a valid host name (RFC 1123).
pub fn lease_label(hostname: &str) -> Option<String> {
    let label = hostname.split('.').next()?.to_ascii_lowercase();
    bus_schema::config::value::check_hostname(&label, false).ok()?;
    Some(label)
}

/// Is `name` `domain` or under it (both lower-case)?
pub fn under(name: &str, domain: &str) -> bool {
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// The address a reverse name stands for (`4.3.2.1.in-addr.arpa`, or 32
/// nibbles under `ip6.arpa`).
pub fn reverse_address(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut parts = rest.split('.');
        for o in octets.iter_mut().rev() {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
                return None;
            }
            *o = p.parse().ok()?;
        }
        return parts
            .next()
            .is_none()
            .then_some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let mut value: u128 = 0;
    let mut count = 0;
    for (i, p) in rest.split('.').enumerate() {
        let nibble = u128::from(u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 1)?);
        value |= nibble << (4 * i);
        count += 1;
    }
    (count == 32).then_some(IpAddr::V6(Ipv6Addr::from(value)))
}

/// The reverse name of an address.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0x0F, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

fn of_type(addrs: &[IpAddr], qtype: u16) -> Vec<IpAddr> {
    addrs
        .iter()
        .copied()
        .filter(|a| match qtype {
            qtype::A => a.is_ipv4(),
            qtype::AAAA => a.is_ipv6(),
            qtype::ANY => true,
            _ => false,
        })
        .collect()
}

impl Zone {
    /// The zone of `settings` with these DHCP leases.
    pub fn build<'a>(settings: &Settings, leases: impl IntoIterator<Item = &'a DhcpLease>) -> Self {
        let domain = settings.domain.clone();
        let router_names = [
            settings.hostname.clone(),
            format!("{}.{domain}", settings.hostname),
        ];
        let mut zone = Zone {
            subnets: settings.subnets(),
            router_all: settings.listen.iter().map(|l| l.address).collect(),
            router_names,
            domain,
            ..Zone::default()
        };
        for l in &settings.listen {
            let same: Vec<IpAddr> = settings
                .listen
                .iter()
                .filter(|o| o.network == l.network)
                .map(|o| o.address)
                .collect();
            zone.router_by_local.insert(l.address, same);
        }
        let router_fqdn = zone.router_names[1].clone();
        let router_addrs = zone.router_all.clone();
        zone.add(&router_fqdn, &router_addrs);
        for h in settings.hosts.iter().chain(&settings.statics) {
            zone.add(&h.name, &h.addresses);
        }
        for lease in leases {
            let (Some(label), Ok(ip)) = (lease_label(&lease.hostname), lease.ip.parse()) else {
                continue;
            };
            zone.add(&format!("{label}.{}", zone.domain), &[ip]);
        }
        zone
    }

    /// Adds a name unless an earlier source has it; its addresses get
    /// PTRs unless they have one.
    fn add(&mut self, name: &str, addrs: &[IpAddr]) {
        if self.names.contains_key(name) {
            return;
        }
        self.names.insert(name.to_string(), addrs.to_vec());
        for a in addrs {
            self.reverse.entry(*a).or_insert_with(|| name.to_string());
        }
    }

    /// The local domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Is this name answered locally?
    pub fn is_local(&self, name: &str) -> bool {
        !name.contains('.') || under(name, &self.domain) || self.names.contains_key(name)
    }

    /// The local answer for `name` (lower-case, no final dot) of type
    /// `qtype`, asked on the router's address `local`; `None` when the
    /// name is not local (forward it).
    pub fn lookup(&self, name: &str, qtype: u16, local: IpAddr) -> Option<Found> {
        if name.is_empty() {
            return None;
        }
        if let Some(ip) = reverse_address(name) {
            if let Some(host) = self.reverse.get(&ip) {
                return Some(if matches!(qtype, qtype::PTR | qtype::ANY) {
                    Found::Ptr(host.clone())
                } else {
                    Found::Addresses(Vec::new())
                });
            }
            return self
                .subnets
                .iter()
                .any(|n| n.contains(&ip))
                .then_some(Found::NxDomain);
        }
        if name == self.domain {
            return Some(if matches!(qtype, qtype::SOA | qtype::ANY) {
                Found::Soa
            } else {
                Found::Addresses(Vec::new())
            });
        }
        let full;
        let name = if name.contains('.') {
            name
        } else {
            full = format!("{name}.{}", self.domain);
            &full
        };
        if self.router_names.iter().any(|r| r == name) {
            let addrs = self.router_by_local.get(&local).unwrap_or(&self.router_all);
            return Some(Found::Addresses(of_type(addrs, qtype)));
        }
        if let Some(addrs) = self.names.get(name) {
            return Some(Found::Addresses(of_type(addrs, qtype)));
        }
        under(name, &self.domain).then_some(Found::NxDomain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::settings;

    fn lease(host: &str, ip: &str) -> DhcpLease {
        DhcpLease {
            network: "lan".into(),
            mac: "02:00:00:00:00:99".into(),
            ip: ip.into(),
            hostname: host.into(),
            expires: 0,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn names_from_every_source() {
        let leases = [
            lease("Laptop.somewhere", "192.168.7.120"),
            lease("bad name", "192.168.7.121"),
        ];
        let z = Zone::build(&settings(), &leases);
        let lan = ip("192.168.7.1");
        let a = |n: &str| z.lookup(n, qtype::A, lan);
        assert_eq!(a("gw"), Some(Found::Addresses(vec![lan])));
        assert_eq!(a("gw.home"), Some(Found::Addresses(vec![lan])));
        assert_eq!(
            z.lookup("gw.home", qtype::AAAA, lan),
            Some(Found::Addresses(vec![ip("fd00:7::1")]))
        );
        assert_eq!(
            a("printer.home"),
            Some(Found::Addresses(vec![ip("192.168.7.5")]))
        );
        assert_eq!(a("nas"), Some(Found::Addresses(vec![ip("192.168.7.6")])));
        assert_eq!(
            a("laptop.home"),
            Some(Found::Addresses(vec![ip("192.168.7.120")]))
        );
        assert_eq!(
            a("wiki.corp.example"),
            Some(Found::Addresses(vec![ip("10.1.2.3")]))
        );
        assert_eq!(a("nobody.home"), Some(Found::NxDomain));
        assert_eq!(a("nobody"), Some(Found::NxDomain));
        assert_eq!(a("example.org"), None);
        assert_eq!(
            z.lookup("nas.home", 16, lan),
            Some(Found::Addresses(vec![]))
        );
        assert_eq!(z.lookup("home", qtype::SOA, lan), Some(Found::Soa));
    }

    #[test]
    fn a_client_cannot_take_the_routers_or_a_static_name() {
        let leases = [
            lease("gw", "192.168.7.150"),
            lease("printer", "192.168.7.151"),
        ];
        let z = Zone::build(&settings(), &leases);
        let lan = ip("192.168.7.1");
        assert_eq!(
            z.lookup("gw.home", qtype::A, lan),
            Some(Found::Addresses(vec![lan]))
        );
        assert_eq!(
            z.lookup("printer.home", qtype::A, lan),
            Some(Found::Addresses(vec![ip("192.168.7.5")]))
        );
    }

    #[test]
    fn reverse_names() {
        let z = Zone::build(&settings(), &[lease("laptop", "192.168.7.120")]);
        let lan = ip("192.168.7.1");
        let ptr = |a: &str| z.lookup(&reverse_name(ip(a)), qtype::PTR, lan);
        assert_eq!(ptr("192.168.7.1"), Some(Found::Ptr("gw.home".into())));
        assert_eq!(ptr("192.168.7.5"), Some(Found::Ptr("printer.home".into())));
        assert_eq!(ptr("192.168.7.120"), Some(Found::Ptr("laptop.home".into())));
        assert_eq!(ptr("fd00:7::6"), Some(Found::Ptr("nas.home".into())));
        assert_eq!(ptr("192.168.7.77"), Some(Found::NxDomain));
        assert_eq!(ptr("8.8.8.8"), None);
        assert_eq!(reverse_address("1.2.3.in-addr.arpa"), None);
        assert_eq!(reverse_address("01.2.3.4.in-addr.arpa"), None);
        assert_eq!(reverse_address("x.ip6.arpa"), None);
    }

    #[test]
    fn under_is_by_label() {
        assert!(under("a.home", "home"));
        assert!(under("home", "home"));
        assert!(!under("ahome", "home"));
    }
}
