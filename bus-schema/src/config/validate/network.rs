//! `[[networks]]` and `[[routes]]`.

use std::collections::BTreeMap;

use ipnet::{IpNet, Ipv4Net};

use super::{Ctx, Names, all, object_name};
use crate::config::diag::Path;
use crate::config::model::{self, Lan, NetworkKind, Simple, Vlan, Wan, WanMode};
use crate::config::value::{
    check_hostname, check_ifname, host_address_problem, parse_ip, parse_ipv4_iface,
    parse_ipv6_iface, parse_mtu, parse_prefix, parse_unicast_mac,
};
use crate::config::wire;

pub(super) fn networks(ctx: &mut Ctx<'_>, nets: &[wire::Network]) -> Option<Vec<model::Network>> {
    let base = Path::root().key("networks");
    ctx.unique_by("network", &base, "name", nets, |n| &n.name);
    let out = all(nets
        .iter()
        .enumerate()
        .map(|(i, n)| network(ctx, &base.idx(i), n)));
    let out = out?;
    cross_checks(ctx, &base, &out);
    Some(out)
}

fn network(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) -> Option<model::Network> {
    object_name(ctx, path, &n.name);
    let mtu = ctx.check_opt(&path.key("mtu"), n.mtu.as_ref(), |m| parse_mtu(*m));
    let mac = ctx.check_opt(&path.key("mac"), n.mac.as_deref(), parse_unicast_mac);
    inapplicable_fields(ctx, path, n);
    let kind = match n.kind {
        wire::NetworkKind::Lan => lan(ctx, path, n),
        wire::NetworkKind::Wan => wan(ctx, path, n),
        wire::NetworkKind::Simple => simple(ctx, path, n),
    };
    Some(model::Network {
        name: n.name.clone(),
        mtu: mtu?,
        mac: mac?,
        kind: kind?,
    })
}

/// The optional fields of a network and whether each is set (`name`,
/// `kind`, `mtu` and `mac` apply to every kind).
fn set_fields(n: &wire::Network) -> [(&'static str, bool); 15] {
    [
        ("bridge", n.bridge.is_some()),
        ("ports", !n.ports.is_empty()),
        ("device", n.device.is_some()),
        ("address", n.address.is_some()),
        ("ipv6", n.ipv6.is_some()),
        ("vlan", n.vlan.is_some()),
        ("mode", n.mode.is_some()),
        ("hostname", n.hostname.is_some()),
        ("vendor_class", n.vendor_class.is_some()),
        ("release", n.release.is_some()),
        ("gateway", n.gateway.is_some()),
        ("dns", n.dns.is_some()),
        ("username", n.username.is_some()),
        ("password", n.password.is_some()),
        ("priority", n.priority.is_some()),
    ]
}

/// Which optional fields a kind (and WAN mode) takes, and how to name it.
fn applicable(n: &wire::Network) -> (&'static [&'static str], &'static str) {
    use wire::{NetworkKind as K, WanMode as M};
    const WAN: [&str; 3] = ["device", "mode", "priority"];
    match (n.kind, n.mode) {
        (K::Lan, _) => (
            &["bridge", "ports", "address", "ipv6", "vlan"],
            "lan networks",
        ),
        (K::Simple, _) => (&["device", "address", "ipv6", "vlan"], "simple networks"),
        (K::Wan, Some(M::Dhcp)) => (
            &[
                WAN[0],
                WAN[1],
                WAN[2],
                "hostname",
                "vendor_class",
                "release",
            ],
            "wan networks in dhcp mode",
        ),
        (K::Wan, Some(M::Static)) => (
            &[WAN[0], WAN[1], WAN[2], "address", "gateway", "dns"],
            "wan networks in static mode",
        ),
        (K::Wan, Some(M::Pppoe)) => (
            &[WAN[0], WAN[1], WAN[2], "username", "password"],
            "wan networks in pppoe mode",
        ),
        // Without a mode (itself an error) every WAN field is let through.
        (K::Wan, None) => (
            &[
                "device",
                "mode",
                "priority",
                "hostname",
                "vendor_class",
                "release",
                "address",
                "gateway",
                "dns",
                "username",
                "password",
            ],
            "wan networks",
        ),
    }
}

/// Reports every set field that the network's kind does not take.
fn inapplicable_fields(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) {
    let (fields, context) = applicable(n);
    for (field, set) in set_fields(n) {
        if set && !fields.contains(&field) {
            let hint = match (n.kind, field) {
                (wire::NetworkKind::Lan, "device") => " (list member ports in `ports`)",
                (wire::NetworkKind::Wan, "vlan") => " (set `device` to the VLAN device)",
                _ => "",
            };
            ctx.err(
                &path.key(field),
                format!("`{field}` does not apply to {context}{hint}"),
            );
        }
    }
}

fn vlan(ctx: &mut Ctx<'_>, path: &Path, v: &wire::Vlan) -> Option<Vlan> {
    let path = path.key("vlan");
    let parent = ctx.check(&path.key("parent"), check_ifname(&v.parent));
    let id = ctx.check(
        &path.key("id"),
        match u16::try_from(v.id) {
            Ok(id) if (1..=4094).contains(&id) => Ok(id),
            _ => Err(format!("VLAN id {} out of range 1-4094", v.id)),
        },
    );
    let (_, id) = (parent?, id?);
    let device = format!("{}.{id}", v.parent);
    ctx.check(
        &path,
        check_ifname(&device).map_err(|e| format!("VLAN device {e}")),
    )?;
    Some(Vlan {
        parent: v.parent.clone(),
        id,
        device,
    })
}

fn ipv6(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) -> Option<Option<ipnet::Ipv6Net>> {
    ctx.check_opt(&path.key("ipv6"), n.ipv6.as_deref(), parse_ipv6_iface)
}

fn lan(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) -> Option<NetworkKind> {
    let context = "lan networks";
    let bridge = n.bridge.clone().unwrap_or_else(|| format!("br-{}", n.name));
    let bridge_ok = ctx.check(
        &path.key(if n.bridge.is_some() { "bridge" } else { "name" }),
        check_ifname(&bridge).map_err(|e| {
            if n.bridge.is_some() {
                e
            } else {
                format!("default bridge name {bridge:?} is too long; set `bridge`: {e}")
            }
        }),
    );
    let ports: Vec<Option<()>> = n
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| ctx.check(&path.key("ports").idx(i), check_ifname(p)))
        .collect();
    let address = ctx
        .required(path, n.address.as_ref(), "address", context)
        .and_then(|a| ctx.check(&path.key("address"), parse_ipv4_iface(a)));
    let ipv6 = ipv6(ctx, path, n);
    let vlan = match &n.vlan {
        Some(v) => vlan(ctx, path, v).map(Some),
        None => Some(None),
    };
    bridge_ok?;
    all(ports)?;
    let vlan = vlan?;
    let mut ports = n.ports.clone();
    if let Some(v) = &vlan {
        ports.push(v.device.clone());
    }
    Some(NetworkKind::Lan(Lan {
        bridge,
        ports,
        address: address?,
        ipv6: ipv6?,
        vlan,
    }))
}

fn wan(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) -> Option<NetworkKind> {
    let context = "wan networks";
    let device = ctx
        .required(path, n.device.as_ref(), "device", context)
        .and_then(|d| {
            ctx.check(&path.key("device"), check_ifname(d))
                .map(|()| d.clone())
        });
    let mode = ctx
        .required(path, n.mode.as_ref(), "mode", context)
        .copied();
    let mode = match mode? {
        wire::WanMode::Dhcp => {
            let hostname = ctx.check_opt(&path.key("hostname"), n.hostname.as_deref(), |h| {
                check_hostname(h, false).map(|()| h.to_string())
            });
            Some(WanMode::Dhcp {
                hostname: hostname?,
                vendor_class: n.vendor_class.clone(),
                release: n.release.unwrap_or(false),
            })
        }
        wire::WanMode::Static => {
            let ctxs = "wan networks in static mode";
            let address = ctx
                .required(path, n.address.as_ref(), "address", ctxs)
                .and_then(|a| ctx.check(&path.key("address"), parse_ipv4_iface(a)));
            let gateway = ctx
                .required(path, n.gateway.as_ref(), "gateway", ctxs)
                .and_then(|g| {
                    ctx.check(
                        &path.key("gateway"),
                        g.parse::<std::net::Ipv4Addr>()
                            .map_err(|_| format!("invalid IPv4 gateway {g:?}")),
                    )
                });
            let dns = all(n
                .dns
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, d)| ctx.check(&path.key("dns").idx(i), parse_ip(d))));
            let (address, gateway) = (address?, gateway?);
            let problem = if address.contains(&gateway) {
                host_address_problem(address, gateway)
                    .map(|m| m.replace("the router's own", "this network's own"))
            } else {
                Some(format!("gateway {gateway} is outside {}", address.trunc()))
            };
            if let Some(m) = problem {
                ctx.err(&path.key("gateway"), m);
                return None;
            }
            Some(WanMode::Static {
                address,
                gateway,
                dns: dns?,
            })
        }
        wire::WanMode::Pppoe => {
            // The format keeps PPPoE (`username`, `password`) so that it
            // stays stable, but netd has no PPPoE client yet: accepting
            // it would leave the uplink silently down. A password written
            // inline is still reported.
            if let Some(p) = &n.password {
                ctx.secret(&path.key("password"), p, |_| Ok(()));
            }
            ctx.err(
                &path.key("mode"),
                "mode \"pppoe\" is not supported yet (netd has no PPPoE client); \
                 put the modem in bridge mode and use mode = \"dhcp\"",
            );
            return None;
        }
    };
    Some(NetworkKind::Wan(Wan {
        device: device?,
        priority: n.priority.unwrap_or(0),
        mode: mode?,
    }))
}

fn simple(ctx: &mut Ctx<'_>, path: &Path, n: &wire::Network) -> Option<NetworkKind> {
    let vlan = match &n.vlan {
        Some(v) => vlan(ctx, path, v).map(Some),
        None => Some(None),
    };
    let device = match (&n.device, &vlan) {
        (Some(_), Some(Some(_))) => {
            ctx.err(
                path,
                "set either `device` or `vlan` (which names its device), not both",
            );
            None
        }
        (Some(d), _) => ctx
            .check(&path.key("device"), check_ifname(d))
            .map(|()| d.clone()),
        (None, Some(Some(v))) => Some(v.device.clone()),
        (None, Some(None)) => {
            ctx.err(path, "`device` or `vlan` is required for simple networks");
            None
        }
        (None, None) => None,
    };
    let address = ctx.check_opt(&path.key("address"), n.address.as_deref(), parse_ipv4_iface);
    let ipv6 = ipv6(ctx, path, n);
    Some(NetworkKind::Simple(Simple {
        device: device?,
        address: address?,
        ipv6: ipv6?,
        vlan: vlan?,
    }))
}

/// Checks across networks: overlapping subnets and devices used twice.
fn cross_checks(ctx: &mut Ctx<'_>, base: &Path, nets: &[model::Network]) {
    let subnets: Vec<(usize, Ipv4Net)> = nets
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.ipv4().map(|a| (i, a.trunc())))
        .collect();
    for (a, (i, na)) in subnets.iter().enumerate() {
        for (j, nb) in subnets.iter().skip(a + 1) {
            if na.contains(nb) || nb.contains(na) {
                ctx.err(
                    &base.idx(*j).key("address"),
                    format!(
                        "subnet {nb} of network {:?} overlaps {na} of network {:?}",
                        nets[*j].name, nets[*i].name
                    ),
                );
            }
        }
    }
    // Every device (bridge, port, WAN device, simple device) has one owner.
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, n) in nets.iter().enumerate() {
        let field = match n.kind {
            NetworkKind::Lan(_) => "bridge",
            NetworkKind::Wan(_) | NetworkKind::Simple(_) => "device",
        };
        let mut devices: Vec<(&str, Path)> = vec![(n.device(), base.idx(i).key(field))];
        if let NetworkKind::Lan(lan) = &n.kind {
            devices.extend(
                lan.ports
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (p.as_str(), base.idx(i).key("ports").idx(j))),
            );
        }
        for (dev, path) in devices {
            match owners.get(dev) {
                Some(other) => ctx.err(
                    &path,
                    format!("device {dev:?} is already used by network {other:?}"),
                ),
                None => {
                    owners.insert(dev, &n.name);
                }
            }
        }
    }
}

pub(super) fn routes(
    ctx: &mut Ctx<'_>,
    routes: &[wire::Route],
    names: &Names<'_>,
) -> Option<Vec<model::Route>> {
    let base = Path::root().key("routes");
    let known = names.networks_of(&[]);
    all(routes.iter().enumerate().map(|(i, r)| {
        let path = base.idx(i);
        let dest = ctx.check(&path.key("destination"), parse_prefix(&r.destination));
        let gateway = ctx.check_opt(&path.key("gateway"), r.gateway.as_deref(), parse_ip);
        let network_ok = r
            .network
            .as_ref()
            .is_none_or(|n| ctx.reference(&path.key("network"), "network", n, &known));
        if r.gateway.is_none() && r.network.is_none() {
            ctx.err(&path, "a route needs a `gateway`, a `network`, or both");
            return None;
        }
        let (dest, gateway) = (dest?, gateway?);
        if let Some(g) = gateway {
            let same = matches!(
                (dest, g),
                (IpNet::V4(_), std::net::IpAddr::V4(_)) | (IpNet::V6(_), std::net::IpAddr::V6(_))
            );
            if !same {
                ctx.err(
                    &path.key("gateway"),
                    format!("gateway {g} is not of the same address family as {dest}"),
                );
                return None;
            }
        }
        network_ok.then(|| model::Route {
            destination: dest,
            gateway,
            network: r.network.clone(),
            metric: r.metric,
        })
    }))
}
