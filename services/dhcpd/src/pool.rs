//! The pools of `[dhcp]`, joined with their LAN network, and the choice
//! of an address for a client: its static lease if it has one (always,
//! and never to anyone else), else the address it had or asked for when
//! that is still free, else the first free address of the range.

use std::net::Ipv4Addr;

use bus_schema::config::model::{Dhcp, DhcpPool, Network, StaticLease};
use ipnet::Ipv4Net;

use crate::leases::{Leases, Mac};

/// Why a pool could not be built or could not give an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool names a network the config does not have, or one without
    /// an IPv4 address.
    #[error("build pool {network}: no such network with an IPv4 address")]
    Build {
        /// The network the pool names.
        network: String,
    },
    /// The range is reversed or outside the network's subnet.
    #[error("build pool {network}: range {start}-{end} is not inside {subnet}")]
    Range {
        /// The network.
        network: String,
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
        /// The network's subnet.
        subnet: Ipv4Net,
    },
    /// Every address of the range is taken.
    #[error("select address on {network}: pool exhausted")]
    Select {
        /// The network.
        network: String,
    },
}

/// One network's pool, ready to serve.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The config's pool.
    pub config: DhcpPool,
    /// The router's own address on the network (the server identifier).
    pub server: Ipv4Addr,
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// The device that carries the network (where replies go out).
    pub device: String,
    /// The static leases on this network.
    pub statics: Vec<StaticLease>,
}

impl Pool {
    /// The pools of `dhcp`, one per configured pool, with the networks'
    /// addresses and devices.
    pub fn from_config(dhcp: &Dhcp, networks: &[Network]) -> Result<Vec<Pool>, PoolError> {
        dhcp.pools
            .iter()
            .map(|p| {
                let net = networks
                    .iter()
                    .find(|n| n.name == p.network)
                    .and_then(|n| n.ipv4().map(|a| (n, a)));
                let Some((net, addr)) = net else {
                    return Err(PoolError::Build {
                        network: p.network.clone(),
                    });
                };
                let subnet = addr.trunc();
                if u32::from(p.start) > u32::from(p.end)
                    || !subnet.contains(&p.start)
                    || !subnet.contains(&p.end)
                {
                    return Err(PoolError::Range {
                        network: p.network.clone(),
                        start: p.start,
                        end: p.end,
                        subnet,
                    });
                }
                Ok(Pool {
                    config: p.clone(),
                    server: addr.addr(),
                    subnet,
                    device: net.device().to_string(),
                    statics: dhcp
                        .static_leases
                        .iter()
                        .filter(|s| s.network == p.network)
                        .cloned()
                        .collect(),
                })
            })
            .collect()
    }

    /// The network's name.
    pub fn network(&self) -> &str {
        &self.config.network
    }

    /// The static lease of `mac`, if any.
    pub fn static_of(&self, mac: &Mac) -> Option<&StaticLease> {
        self.statics.iter().find(|s| s.mac.0 == *mac)
    }

    /// Whether `ip` is some client's static address.
    fn is_static(&self, ip: Ipv4Addr) -> bool {
        self.statics.iter().any(|s| s.ip == ip)
    }

    /// Whether `ip` is in the dynamic range.
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.config.start)..=u32::from(self.config.end)).contains(&u32::from(ip))
    }

    /// Whether `ip` may be leased to `mac` at `now`: its static address;
    /// otherwise an address of the range that is no one's static address,
    /// not the router's, not quarantined and not held by another client.
    pub fn available(&self, ip: Ipv4Addr, mac: &Mac, leases: &Leases, now: u64) -> bool {
        if let Some(s) = self.static_of(mac) {
            return s.ip == ip;
        }
        self.in_range(ip)
            && self.subnet.contains(&ip)
            && ip != self.server
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && !self.is_static(ip)
            && !leases.is_quarantined(ip, now)
            && !leases.held_by_other(ip, mac, now)
    }

    /// The address to offer `mac`: its static address; else the first of
    /// `preferred` (its previous lease, the address it requested) that is
    /// available; else the next available address of the range that no
    /// lease record remembers, searching on from where the last search
    /// ended (so a busy pool is not scanned from its start for every
    /// client); else the first available one.
    pub fn select(
        &self,
        mac: &Mac,
        preferred: &[Ipv4Addr],
        leases: &mut Leases,
        now: u64,
    ) -> Result<Ipv4Addr, PoolError> {
        if let Some(s) = self.static_of(mac) {
            return Ok(s.ip);
        }
        if let Some(ip) = preferred
            .iter()
            .copied()
            .find(|ip| self.available(*ip, mac, leases, now))
        {
            return Ok(ip);
        }
        let (start, end) = (u32::from(self.config.start), u32::from(self.config.end));
        let size = u64::from(end - start) + 1;
        let from = u64::from(leases.cursor(self.network()).clamp(start, end) - start);
        let nth = |k: u64| {
            // Below `size`, so within the range and back in u32.
            let offset = u32::try_from((from + k) % size).unwrap_or(0);
            Ipv4Addr::from(start + offset)
        };
        let fresh = (0..size)
            .map(nth)
            .find(|ip| !leases.has_record(*ip) && self.available(*ip, mac, leases, now));
        if let Some(ip) = fresh {
            leases.set_cursor(self.network(), u32::from(ip).saturating_add(1));
            return Ok(ip);
        }
        (0..size)
            .map(nth)
            .find(|ip| self.available(*ip, mac, leases, now))
            .ok_or_else(|| PoolError::Select {
                network: self.network().to_string(),
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::leases::tests::lease;
    use bus_schema::config::value::MacAddr;

    pub(crate) fn pool() -> Pool {
        Pool {
            config: DhcpPool {
                network: "lan".into(),
                start: Ipv4Addr::new(10, 0, 0, 10),
                end: Ipv4Addr::new(10, 0, 0, 13),
                lease_secs: 3600,
                router: Ipv4Addr::new(10, 0, 0, 1),
                dns: vec![],
                domain: "lan".into(),
                ntp: vec![Ipv4Addr::new(10, 0, 0, 1)],
                mtu: Some(1500),
                classless_routes: vec![(
                    "192.168.50.0/24".parse().expect("net"),
                    Ipv4Addr::new(10, 0, 0, 2),
                )],
                raw_options: vec![(66, b"tftp".to_vec())],
            },
            server: Ipv4Addr::new(10, 0, 0, 1),
            subnet: "10.0.0.0/24".parse().expect("net"),
            device: "br-lan".into(),
            statics: vec![StaticLease {
                mac: MacAddr([2, 0, 0, 0, 0, 0x55]),
                ip: Ipv4Addr::new(10, 0, 0, 12),
                hostname: Some("printer".into()),
                network: "lan".into(),
            }],
        }
    }

    const A: Mac = [2, 0, 0, 0, 0, 1];

    #[test]
    fn static_lease_always_wins_and_is_never_given_away() {
        let p = pool();
        let mut t = Leases::new();
        let printer = [2, 0, 0, 0, 0, 0x55];
        let ip = p.select(&printer, &[Ipv4Addr::new(10, 0, 0, 10)], &mut t, 0);
        assert_eq!(ip, Ok(Ipv4Addr::new(10, 0, 0, 12)));
        assert!(!p.available(Ipv4Addr::new(10, 0, 0, 12), &A, &t, 0));
        assert!(!p.available(Ipv4Addr::new(10, 0, 0, 10), &printer, &t, 0));
    }

    #[test]
    fn prefers_the_requested_address_when_free() {
        let p = pool();
        let mut t = Leases::new();
        let want = Ipv4Addr::new(10, 0, 0, 11);
        assert_eq!(p.select(&A, &[want], &mut t, 0), Ok(want));
        t.grant(lease(9, [10, 0, 0, 11], 100), 0).expect("grant");
        assert_eq!(
            p.select(&A, &[want], &mut t, 0),
            Ok(Ipv4Addr::new(10, 0, 0, 10))
        );
        // Out of range or the router's own address: not honoured.
        let router = Ipv4Addr::new(10, 0, 0, 1);
        let other = p.select(&A, &[router], &mut t, 0).expect("free");
        assert!(p.in_range(other), "{other}");
    }

    #[test]
    fn skips_quarantined_and_remembered_addresses_then_exhausts() {
        let p = pool();
        let mut t = Leases::new();
        t.quarantine(Ipv4Addr::new(10, 0, 0, 10), 100);
        // An expired record is reused only when nothing fresh is left.
        t.grant(lease(9, [10, 0, 0, 11], 5), 0).expect("grant");
        assert_eq!(
            p.select(&A, &[], &mut t, 10),
            Ok(Ipv4Addr::new(10, 0, 0, 13))
        );
        t.grant(lease(8, [10, 0, 0, 13], 100), 0).expect("grant");
        assert_eq!(
            p.select(&A, &[], &mut t, 10),
            Ok(Ipv4Addr::new(10, 0, 0, 11))
        );
        t.grant(lease(7, [10, 0, 0, 11], 100), 10).expect("grant");
        assert!(matches!(
            p.select(&A, &[], &mut t, 10),
            Err(PoolError::Select { .. })
        ));
    }

    #[test]
    fn the_search_goes_on_from_the_last_address_and_wraps() {
        let p = pool();
        let mut t = Leases::new();
        let mut offered = Vec::new();
        for mac in 1..=3u8 {
            let ip = p
                .select(&[2, 0, 0, 0, 1, mac], &[], &mut t, 0)
                .expect("free");
            t.reserve(ip, [2, 0, 0, 0, 1, mac], 60);
            offered.push(ip.octets()[3]);
        }
        // .12 is the printer's static address.
        assert_eq!(offered, [10, 11, 13]);
        // Every address is offered or static: nothing for a fourth.
        assert!(matches!(
            p.select(&A, &[], &mut t, 0),
            Err(PoolError::Select { .. })
        ));
        // The offers ran out; .13 is offered anew: the next search wraps
        // around to .10.
        t.reserve(Ipv4Addr::new(10, 0, 0, 13), [2, 0, 0, 0, 1, 9], 200);
        assert_eq!(
            p.select(&A, &[], &mut t, 61),
            Ok(Ipv4Addr::new(10, 0, 0, 10))
        );
    }
}
