//! What the kernel should look like for the `networks` and `routes`
//! sections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use bus_schema::config::model::{Network, NetworkKind, Route, Vlan, WanMode};
use bus_schema::config::value::MacAddr;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An 802.1Q sub-interface's parent and id: what netd wants, what it
/// creates and what the kernel reports, alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanOf {
    /// Parent device.
    pub parent: String,
    /// VLAN id.
    pub id: u16,
}

/// How a link comes to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// A bridge netd creates.
    Bridge,
    /// An 802.1Q sub-interface netd creates.
    Vlan(VlanOf),
    /// A device that must already exist (a port, a WAN NIC).
    Existing,
}

/// One link as netd wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// How it comes to exist.
    pub origin: Origin,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// MTU, when the config sets one.
    pub mtu: Option<u16>,
    /// MAC address, when the config sets one.
    pub mac: Option<MacAddr>,
}

/// A route as netd wants it (and as it identifies routes it owns).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination.
    pub destination: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Device.
    pub device: Option<String>,
    /// Metric.
    pub metric: u32,
}

/// The kernel state netd wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Links by name; every one is brought up.
    pub links: BTreeMap<String, Link>,
    /// Addresses as (device, address/prefix).
    pub addresses: BTreeSet<(String, IpNet)>,
    /// Routes.
    pub routes: BTreeSet<RouteSpec>,
}

/// Metric of the default route of a WAN, plus its priority, so the
/// preferred WAN wins.
pub const WAN_METRIC_BASE: u32 = 100;

/// What a WAN's client (DHCP) obtained: the address and default route
/// netd puts on its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// Address and prefix.
    pub address: ipnet::Ipv4Net,
    /// Default gateway, if the server gave one.
    pub gateway: Option<std::net::Ipv4Addr>,
}

impl Desired {
    /// The state for these sections. DHCP and PPPoE WANs contribute their
    /// device only: their addresses and routes come from their clients.
    pub fn from_config(networks: &[Network], routes: &[Route]) -> Self {
        let mut d = Self::default();
        for n in networks {
            match &n.kind {
                NetworkKind::Lan(lan) => {
                    d.link(&lan.bridge, Origin::Bridge, None, n.mtu, n.mac);
                    for port in &lan.ports {
                        let origin = match &lan.vlan {
                            Some(v) if &v.device == port => vlan_origin(v),
                            _ => Origin::Existing,
                        };
                        d.link(port, origin, Some(&lan.bridge), None, None);
                    }
                    d.address(&lan.bridge, IpNet::V4(lan.address));
                    if let Some(v6) = lan.ipv6 {
                        d.address(&lan.bridge, IpNet::V6(v6));
                    }
                }
                NetworkKind::Simple(simple) => {
                    let origin = simple.vlan.as_ref().map_or(Origin::Existing, vlan_origin);
                    d.link(&simple.device, origin, None, n.mtu, n.mac);
                    if let Some(v4) = simple.address {
                        d.address(&simple.device, IpNet::V4(v4));
                    }
                    if let Some(v6) = simple.ipv6 {
                        d.address(&simple.device, IpNet::V6(v6));
                    }
                }
                NetworkKind::Wan(wan) => {
                    d.link(&wan.device, Origin::Existing, None, n.mtu, n.mac);
                    if let WanMode::Static {
                        address, gateway, ..
                    } = &wan.mode
                    {
                        d.address(&wan.device, IpNet::V4(*address));
                        d.routes.insert(RouteSpec {
                            destination: IpNet::V4(ipnet::Ipv4Net::default()),
                            gateway: Some(IpAddr::V4(*gateway)),
                            device: Some(wan.device.clone()),
                            metric: WAN_METRIC_BASE + wan.priority,
                        });
                    }
                }
            }
        }
        // A VLAN's parent must exist and be up; it is nobody's port.
        let parents: Vec<String> = d
            .links
            .values()
            .filter_map(|l| match &l.origin {
                Origin::Vlan(v) => Some(v.parent.clone()),
                _ => None,
            })
            .collect();
        for parent in parents {
            d.links.entry(parent).or_insert(Link {
                origin: Origin::Existing,
                master: None,
                mtu: None,
                mac: None,
            });
        }
        let device_of = |name: &str| {
            networks
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.device().to_string())
        };
        for r in routes {
            d.routes.insert(RouteSpec {
                destination: r.destination,
                gateway: r.gateway,
                device: r.network.as_deref().and_then(device_of),
                metric: r.metric,
            });
        }
        d
    }

    /// Adds what a dynamic WAN obtained: its address, and its default
    /// route with the WAN's metric.
    pub fn add_uplink(&mut self, device: &str, priority: u32, uplink: &Uplink) {
        self.address(device, IpNet::V4(uplink.address));
        if let Some(gateway) = uplink.gateway {
            self.routes.insert(RouteSpec {
                destination: IpNet::V4(ipnet::Ipv4Net::default()),
                gateway: Some(IpAddr::V4(gateway)),
                device: Some(device.to_string()),
                metric: WAN_METRIC_BASE + priority,
            });
        }
    }

    fn link(
        &mut self,
        name: &str,
        origin: Origin,
        master: Option<&str>,
        mtu: Option<u16>,
        mac: Option<MacAddr>,
    ) {
        self.links.insert(
            name.to_string(),
            Link {
                origin,
                master: master.map(str::to_string),
                mtu,
                mac,
            },
        );
    }

    fn address(&mut self, device: &str, net: IpNet) {
        self.addresses.insert((device.to_string(), net));
    }
}

fn vlan_origin(v: &Vlan) -> Origin {
    Origin::Vlan(VlanOf {
        parent: v.parent.clone(),
        id: v.id,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The cookbook's networks and routes (also for the reconcile tests).
    pub(crate) fn cookbook() -> (Vec<Network>, Vec<Route>) {
        let loaded =
            bus_schema::config::check_public_text(include_str!("../../../config/oxwrt.toml"))
                .expect("cookbook is valid");
        (loaded.config.networks, loaded.config.routes)
    }

    #[test]
    fn a_static_wan_wants_its_address_and_a_default_route_by_priority() {
        let (networks, routes) = cookbook();
        let d = Desired::from_config(&networks, &routes);
        // The cookbook's wan2: eth4, 203.0.113.2/29 via 203.0.113.1,
        // priority 20; wan (eth0) is DHCP and wants nothing until a lease.
        assert!(
            d.addresses
                .contains(&("eth4".to_string(), "203.0.113.2/29".parse().expect("net")))
        );
        let default: IpNet = "0.0.0.0/0".parse().expect("net");
        let defaults: Vec<&RouteSpec> = d
            .routes
            .iter()
            .filter(|r| r.destination == default)
            .collect();
        assert_eq!(
            defaults,
            [&RouteSpec {
                destination: default,
                gateway: Some("203.0.113.1".parse().expect("ip")),
                device: Some("eth4".into()),
                metric: WAN_METRIC_BASE + 20,
            }]
        );
        assert!(!d.addresses.iter().any(|(dev, _)| dev == "eth0"));
    }

    #[test]
    fn the_cookbook_wants_its_bridges_ports_addresses_and_routes() {
        let (networks, routes) = cookbook();
        let d = Desired::from_config(&networks, &routes);
        for n in &networks {
            assert!(d.links.contains_key(n.device()), "{} missing", n.device());
        }
        for n in &networks {
            if let NetworkKind::Lan(lan) = &n.kind {
                assert_eq!(d.links[&lan.bridge].origin, Origin::Bridge);
                for port in &lan.ports {
                    assert_eq!(d.links[port].master.as_deref(), Some(lan.bridge.as_str()));
                }
                assert!(
                    d.addresses
                        .contains(&(lan.bridge.clone(), IpNet::V4(lan.address)))
                );
            }
        }
        assert!(d.routes.len() >= routes.len());
        for r in &routes {
            assert!(
                d.routes
                    .iter()
                    .any(|s| s.destination == r.destination && s.metric == r.metric),
                "{r:?}"
            );
        }
    }
}
