//! `[dhcp]` and `[dns]`: the services every LAN client touches first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Ctx, Names, all};
use crate::config::diag::Path;
use crate::config::model;
use crate::config::value::{
    MacAddr, check_hostname, decode_hex, host_address_problem, parse_duration_secs, parse_ip,
    parse_ipv4_iface, parse_mtu, parse_prefix, parse_socket_addr, parse_unicast_mac,
};
use crate::config::wire::{self, DnsProtocol, NetworkKind};

/// Options that dedicated fields set; raw options may not override them.
const MANAGED_OPTIONS: &[(u32, &str)] = &[
    (1, "the network's prefix"),
    (3, "`router`"),
    (6, "`dns`"),
    (15, "`domain`"),
    (26, "`mtu`"),
    (42, "`ntp`"),
    (51, "`lease_time`"),
    (53, "the server"),
    (54, "the server"),
    (121, "`classless_routes`"),
];

fn ipv4(ctx: &mut Ctx<'_>, path: &Path, s: &str) -> Option<Ipv4Addr> {
    ctx.check(
        path,
        s.parse::<Ipv4Addr>()
            .map_err(|_| format!("invalid IPv4 address {s:?}")),
    )
}

/// The LAN networks with a parseable address, by name.
fn lan_subnets(c: &wire::Config) -> BTreeMap<&str, Ipv4Net> {
    c.networks
        .iter()
        .filter(|n| n.kind == NetworkKind::Lan)
        .filter_map(|n| {
            Some((
                n.name.as_str(),
                parse_ipv4_iface(n.address.as_deref()?).ok()?,
            ))
        })
        .collect()
}

pub(super) fn dhcp(ctx: &mut Ctx<'_>, c: &wire::Config, names: &Names<'_>) -> Option<model::Dhcp> {
    let base = Path::root().key("dhcp");
    let pbase = base.key("pools");
    let lans = lan_subnets(c);
    ctx.unique_by(
        "DHCP pool for network",
        &pbase,
        "network",
        &c.dhcp.pools,
        |p| &p.network,
    );
    let pools = all(c.dhcp.pools.iter().enumerate().map(|(i, p)| {
        let path = pbase.idx(i);
        if !ctx.network_ref(
            &path.key("network"),
            &p.network,
            names,
            &[NetworkKind::Lan],
            "DHCP pools serve",
        ) {
            return None;
        }
        let subnet = lans.get(p.network.as_str()).copied()?;
        pool(ctx, &path, p, subnet, &c.system.domain)
    }));

    let sbase = base.key("static_leases");
    let served: Vec<(&str, Ipv4Net)> = c
        .dhcp
        .pools
        .iter()
        .filter_map(|p| Some((p.network.as_str(), *lans.get(p.network.as_str())?)))
        .collect();
    // Compare MACs as parsed, so 02:AA:.. and 02-aa-.. are the same client.
    let macs: Vec<String> = c
        .dhcp
        .static_leases
        .iter()
        .map(|l| {
            l.mac
                .parse::<MacAddr>()
                .map_or_else(|_| l.mac.clone(), |m| m.to_string())
        })
        .collect();
    ctx.unique(
        "static lease MAC",
        macs.iter()
            .enumerate()
            .map(|(i, m)| (sbase.idx(i).key("mac"), m.as_str())),
    );
    ctx.unique_by(
        "static lease address",
        &sbase,
        "ip",
        &c.dhcp.static_leases,
        |l| &l.ip,
    );
    let mut hostnames = BTreeSet::new();
    let statics = all(c.dhcp.static_leases.iter().enumerate().map(|(i, l)| {
        let path = sbase.idx(i);
        let mac = ctx.check(&path.key("mac"), parse_unicast_mac(&l.mac));
        let hostname = match &l.hostname {
            Some(h) => {
                let ok = ctx.check(&path.key("hostname"), check_hostname(h, false));
                if ok.is_some() && !hostnames.insert(h.to_ascii_lowercase()) {
                    ctx.err(
                        &path.key("hostname"),
                        format!("duplicate static lease host name {h:?}"),
                    );
                    None
                } else {
                    ok.map(|()| Some(h.clone()))
                }
            }
            None => Some(None),
        };
        let ip = ipv4(ctx, &path.key("ip"), &l.ip)?;
        let Some((network, net)) = served.iter().find(|(_, n)| n.contains(&ip)) else {
            let subnets: Vec<String> = served
                .iter()
                .map(|(n, s)| format!("{n} {}", s.trunc()))
                .collect();
            let msg = if subnets.is_empty() {
                format!("{ip} cannot have a static lease: no network has a DHCP pool")
            } else {
                format!(
                    "{ip} is not inside a network with a DHCP pool ({})",
                    subnets.join(", ")
                )
            };
            ctx.err(&path.key("ip"), msg);
            return None;
        };
        if let Some(m) = host_address_problem(*net, ip) {
            ctx.err(&path.key("ip"), m);
            return None;
        }
        Some(model::StaticLease {
            mac: mac?,
            ip,
            hostname: hostname?,
            network: (*network).to_string(),
        })
    }));
    Some(model::Dhcp {
        pools: pools?,
        static_leases: statics?,
    })
}

fn pool(
    ctx: &mut Ctx<'_>,
    path: &Path,
    p: &wire::DhcpPool,
    net: Ipv4Net,
    domain: &str,
) -> Option<model::DhcpPool> {
    let start = ipv4(ctx, &path.key("start"), &p.start);
    let end = ipv4(ctx, &path.key("end"), &p.end);
    let lease = ctx.check(
        &path.key("lease_time"),
        parse_duration_secs(&p.lease_time).and_then(|s| match u32::try_from(s) {
            Ok(s) if s >= 120 => Ok(s),
            _ => Err(format!(
                "lease time {:?} out of range (2m to 136y)",
                p.lease_time
            )),
        }),
    );
    let router = match &p.router {
        Some(r) => ipv4(ctx, &path.key("router"), r).and_then(|ip| {
            if net.contains(&ip) {
                Some(ip)
            } else {
                ctx.err(
                    &path.key("router"),
                    format!(
                        "router {ip} is outside the network's subnet {}",
                        net.trunc()
                    ),
                );
                None
            }
        }),
        None => Some(net.addr()),
    };
    let dns = match &p.dns {
        Some(list) => all(list
            .iter()
            .enumerate()
            .map(|(i, d)| ipv4(ctx, &path.key("dns").idx(i), d))),
        None => Some(vec![net.addr()]),
    };
    let domain = match &p.domain {
        Some(d) => ctx
            .check(&path.key("domain"), check_hostname(d, true))
            .map(|()| d.clone()),
        None => Some(domain.to_string()),
    };
    let ntp = all(p
        .ntp
        .iter()
        .enumerate()
        .map(|(i, d)| ipv4(ctx, &path.key("ntp").idx(i), d)));
    let mtu = ctx.check_opt(&path.key("mtu"), p.mtu.as_ref(), |m| parse_mtu(*m));
    let routes = all(p.classless_routes.iter().enumerate().map(|(i, r)| {
        let rp = path.key("classless_routes").idx(i);
        let dest = ctx
            .check(&rp.key("destination"), parse_prefix(&r.destination))
            .and_then(|d| match d {
                ipnet::IpNet::V4(v4) => Some(v4),
                ipnet::IpNet::V6(_) => {
                    ctx.err(
                        &rp.key("destination"),
                        "classless static routes are IPv4 only",
                    );
                    None
                }
            });
        let gw = ipv4(ctx, &rp.key("gateway"), &r.gateway);
        Some((dest?, gw?))
    }));
    let mut raw = BTreeMap::new();
    let mut raw_ok = true;
    for (i, o) in p.raw_options.iter().enumerate() {
        let op = path.key("raw_options").idx(i);
        let bytes = match (&o.hex, &o.text) {
            (Some(h), None) => decode_hex(h).ok_or_else(|| format!("invalid hex payload {h:?}")),
            (None, Some(t)) => Ok(t.as_bytes().to_vec()),
            _ => Err("set exactly one of `hex` and `text`".to_string()),
        };
        let code = match (
            u8::try_from(o.code),
            MANAGED_OPTIONS.iter().find(|(c, _)| *c == o.code),
        ) {
            (Ok(c), None) if (1..=254).contains(&c) => Ok(c),
            (_, Some((_, by))) => Err(format!(
                "option {} is set by {by}, not a raw option",
                o.code
            )),
            _ => Err(format!("option code {} out of range 1-254", o.code)),
        };
        let too_long = bytes.as_ref().is_ok_and(|b| b.len() > 255);
        match (ctx.check(&op.key("code"), code), ctx.check(&op, bytes)) {
            (Some(_), Some(_)) if too_long => {
                ctx.err(&op, "option payload is longer than 255 bytes");
                raw_ok = false;
            }
            (Some(c), Some(b)) => {
                if raw.insert(c, b).is_some() {
                    ctx.err(&op.key("code"), format!("option {c} is set twice"));
                    raw_ok = false;
                }
            }
            _ => raw_ok = false,
        }
    }
    let (start, end) = (start?, end?);
    let mut range_ok = true;
    for (field, ip) in [("start", start), ("end", end)] {
        if !net.contains(&ip) {
            ctx.err(
                &path.key(field),
                format!("{ip} is outside the network's subnet {}", net.trunc()),
            );
            range_ok = false;
        } else if let Some(m) = host_address_problem(net, ip) {
            ctx.err(&path.key(field), m);
            range_ok = false;
        }
    }
    if range_ok && start > end {
        ctx.err(
            &path.key("end"),
            format!("pool end {end} is before its start {start}"),
        );
        range_ok = false;
    }
    if range_ok && (start..=end).contains(&net.addr()) {
        ctx.err(
            path,
            format!(
                "pool {start}-{end} contains the router's own address {}",
                net.addr()
            ),
        );
        range_ok = false;
    }
    if !(range_ok && raw_ok) {
        return None;
    }
    Some(model::DhcpPool {
        network: p.network.clone(),
        start,
        end,
        lease_secs: lease?,
        router: router?,
        dns: dns?,
        domain: domain?,
        ntp: ntp?,
        mtu: mtu?,
        classless_routes: routes?,
        raw_options: raw.into_iter().collect(),
    })
}

pub(super) fn dns(ctx: &mut Ctx<'_>, c: &wire::Config, names: &Names<'_>) -> Option<model::Dns> {
    let d = &c.dns;
    let base = Path::root().key("dns");
    let listen = match &d.listen {
        Some(list) => {
            let kinds = [NetworkKind::Lan, NetworkKind::Simple];
            let ok = ctx.network_refs(&base.key("listen"), list, names, &kinds, "DNS serves");
            ok.then(|| list.clone())
        }
        None => Some(
            names
                .networks_of(&[NetworkKind::Lan])
                .into_iter()
                .map(String::from)
                .collect(),
        ),
    };
    let upstreams = all(d.upstreams.iter().enumerate().map(|(i, u)| {
        let path = base.key("upstreams").idx(i);
        if u.protocol == DnsProtocol::Tls {
            // The format keeps DNS over TLS (`protocol = "tls"` with
            // `server_name`) so that it stays stable, but dnsd has no TLS
            // client yet: accepting it would pass `validate` and
            // `config-push` and then fail the reload at dnsd's check.
            ctx.err(
                &path.key("protocol"),
                "protocol \"tls\" is not supported yet (dnsd has no DNS-over-TLS client); use udp or tcp",
            );
            return None;
        }
        let address = ctx.check(&path.key("address"), parse_socket_addr(&u.address, 53));
        let name = match &u.server_name {
            Some(n) => ctx.check(&path.key("server_name"), check_hostname(n, true)).map(|()| Some(n.clone())),
            None => Some(None),
        };
        Some(model::Upstream {
            address: address?,
            protocol: u.protocol,
            server_name: name?,
        })
    }));
    // The default, system.domain, is checked (and reported) in [system].
    let domain = d.domain.clone().unwrap_or_else(|| c.system.domain.clone());
    let domain_ok = match &d.domain {
        Some(own) => ctx.check(&base.key("domain"), check_hostname(own, true)),
        None => Some(()),
    };
    let hbase = base.key("hosts");
    let fqdn = |n: &str| {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if n.contains('.') {
            n
        } else {
            format!("{n}.{domain}")
        }
    };
    let fqdns: Vec<String> = d.hosts.iter().map(|h| fqdn(&h.name)).collect();
    ctx.unique(
        "DNS host",
        fqdns
            .iter()
            .enumerate()
            .map(|(i, n)| (hbase.idx(i).key("name"), n.as_str())),
    );
    let hosts = all(d
        .hosts
        .iter()
        .zip(&fqdns)
        .enumerate()
        .map(|(i, (h, name))| {
            let path = hbase.idx(i);
            let name_ok = ctx.check(&path.key("name"), check_hostname(&h.name, true));
            if h.addresses.is_empty() {
                ctx.err(&path.key("addresses"), "a host needs at least one address");
            }
            let addrs = all(h
                .addresses
                .iter()
                .enumerate()
                .map(|(j, a)| ctx.check(&path.key("addresses").idx(j), parse_ip(a))));
            name_ok?;
            let addresses = addrs.filter(|a| !a.is_empty())?;
            Some(model::DnsHost {
                name: name.clone(),
                addresses,
            })
        }));
    let allow = all(d.rebind_allow.iter().enumerate().map(|(i, a)| {
        ctx.check(&base.key("rebind_allow").idx(i), check_hostname(a, true))
            .map(|()| a.to_ascii_lowercase())
    }));
    let lists = all(d.blocklists.iter().enumerate().map(|(i, f)| {
        let ok = f.starts_with('/');
        ctx.check(
            &base.key("blocklists").idx(i),
            if ok {
                Ok(f.clone())
            } else {
                Err(format!("blocklist path {f:?} must be absolute"))
            },
        )
    }));
    domain_ok?;
    Some(model::Dns {
        listen: listen?,
        upstreams: upstreams?,
        cache_size: d.cache_size,
        domain,
        hosts: hosts?,
        rebind_protection: d.rebind_protection,
        rebind_allow: allow?,
        blocklists: lists?,
        block_response: d.block_response,
    })
}
