//! `[firewall]` and `[[port_forwards]]`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::IpNet;

use super::{Ctx, Names, all, object_name};
use crate::config::diag::Path;
use crate::config::model::{self, Family, Proto};
use crate::config::value::{
    ICMP_TYPES, PortRange, host_address_problem, parse_ip_or_net, parse_ipv4_iface,
    parse_port_number, parse_port_range, parse_rate, parse_schedule,
};
use crate::config::wire::{self, NetworkKind, PortSpec};

pub(super) fn port(ctx: &mut Ctx<'_>, path: &Path, p: &PortSpec) -> Option<PortRange> {
    let r = match p {
        PortSpec::Number(n) => parse_port_number(*n),
        PortSpec::Text(s) => parse_port_range(s),
    };
    ctx.check(path, r)
}

pub(super) fn firewall(
    ctx: &mut Ctx<'_>,
    c: &wire::Config,
    names: &Names<'_>,
) -> Option<model::Firewall> {
    let fw = &c.firewall;
    let base = Path::root().key("firewall");
    let d = &fw.defaults;
    let syn_flood = if d.syn_flood_protection {
        ctx.check(
            &base.key("defaults").key("syn_flood_rate"),
            parse_rate(&d.syn_flood_rate),
        )
        .map(|r| Some((r, d.syn_flood_burst)))
    } else {
        Some(None)
    };
    let defaults = syn_flood.map(|syn_flood| model::FirewallDefaults {
        input: d.input,
        output: d.output,
        forward: d.forward,
        drop_invalid: d.drop_invalid,
        syn_flood,
        flow_offload: d.flow_offload,
    });

    let zones = zones(ctx, &base.key("zones"), &fw.zones, names);
    let zone_names = &names.zones;
    let fbase = base.key("forwardings");
    let forwardings = all(fw.forwardings.iter().enumerate().map(|(i, f)| {
        let path = fbase.idx(i);
        let src = ctx.reference(&path.key("src"), "zone", &f.src, zone_names);
        let dest = ctx.reference(&path.key("dest"), "zone", &f.dest, zone_names);
        if src && dest && f.src == f.dest {
            ctx.err(
                &path.key("dest"),
                "a forwarding from a zone to itself is the zone's `forward` policy",
            );
            return None;
        }
        (src && dest).then(|| model::Forwarding {
            src: f.src.clone(),
            dest: f.dest.clone(),
        })
    }));

    let rbase = base.key("rules");
    ctx.unique_by("rule", &rbase, "name", &fw.rules, |r| &r.name);
    let rules = all(fw
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule(ctx, &rbase.idx(i), r, zone_names)));
    Some(model::Firewall {
        defaults: defaults?,
        zones: zones?,
        forwardings: forwardings?,
        rules: rules?,
    })
}

fn zones(
    ctx: &mut Ctx<'_>,
    base: &Path,
    zones: &[wire::Zone],
    names: &Names<'_>,
) -> Option<Vec<model::Zone>> {
    ctx.unique_by("zone", base, "name", zones, |z| &z.name);
    let mut members: Vec<&str> = names.networks_of(&[]);
    members.extend(names.wireguard.iter().copied());
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    all(zones.iter().enumerate().map(|(i, z)| {
        let path = base.idx(i);
        object_name(ctx, &path, &z.name);
        let mut ok = true;
        for (j, n) in z.networks.iter().enumerate() {
            let npath = path.key("networks").idx(j);
            if !ctx.reference(&npath, "network", n, &members) {
                ok = false;
            } else if let Some(other) = owner.insert(n, &z.name) {
                ctx.err(
                    &npath,
                    format!("network {n:?} is already in zone {other:?}"),
                );
                ok = false;
            }
        }
        let has_wan = z
            .networks
            .iter()
            .any(|n| names.kind_of(n) == Some(NetworkKind::Wan));
        if z.masquerade && !has_wan {
            ctx.warn(
                &path.key("masquerade"),
                format!("zone {:?} masquerades but has no wan network", z.name),
            );
        }
        ok.then(|| model::Zone {
            name: z.name.clone(),
            networks: z.networks.clone(),
            input: z.input,
            output: z.output,
            forward: z.forward,
            masquerade: z.masquerade,
            mss_clamping: z.mss_clamping,
        })
    }))
}

fn addrs(ctx: &mut Ctx<'_>, path: &Path, list: &[String], family: Family) -> Option<Vec<IpNet>> {
    all(list.iter().enumerate().map(|(i, a)| {
        let p = path.idx(i);
        let net = ctx.check(&p, parse_ip_or_net(a))?;
        let clash = match (family, net) {
            (Family::Ipv4, IpNet::V6(_)) => Some("ipv4"),
            (Family::Ipv6, IpNet::V4(_)) => Some("ipv6"),
            _ => None,
        };
        if let Some(fam) = clash {
            ctx.err(
                &p,
                format!("address {a} does not match the rule's family {fam}"),
            );
            return None;
        }
        Some(net)
    }))
}

fn rule(ctx: &mut Ctx<'_>, path: &Path, r: &wire::Rule, zones: &[&str]) -> Option<model::Rule> {
    object_name(ctx, path, &r.name);
    let src_ok = r
        .src
        .as_ref()
        .is_none_or(|z| ctx.reference(&path.key("src"), "zone", z, zones));
    let dest_ok = r
        .dest
        .as_ref()
        .is_none_or(|z| ctx.reference(&path.key("dest"), "zone", z, zones));
    if r.src.is_none() && r.dest.is_none() {
        ctx.err(path, "a rule needs `src`, `dest` or both (router-originated traffic is governed by zone `output`)");
        return None;
    }
    let src_addr = addrs(ctx, &path.key("src_addr"), &r.src_addr, r.family);
    let dest_addr = addrs(ctx, &path.key("dest_addr"), &r.dest_addr, r.family);
    let src_port = all(r
        .src_port
        .iter()
        .enumerate()
        .map(|(i, p)| port(ctx, &path.key("src_port").idx(i), p)));
    let dest_port = all(r
        .dest_port
        .iter()
        .enumerate()
        .map(|(i, p)| port(ctx, &path.key("dest_port").idx(i), p)));
    let has_ports = !r.src_port.is_empty() || !r.dest_port.is_empty();
    let ports_ok = !has_ports
        || (!r.proto.is_empty() && r.proto.iter().all(|p| matches!(p, Proto::Tcp | Proto::Udp)));
    if !ports_ok {
        ctx.err(
            &path.key("proto"),
            "ports need `proto` limited to tcp and/or udp",
        );
    }
    let icmp_ok = r.icmp_type.is_empty()
        || (!r.proto.is_empty()
            && r.proto
                .iter()
                .all(|p| matches!(p, Proto::Icmp | Proto::Icmpv6)));
    if !icmp_ok {
        ctx.err(
            &path.key("proto"),
            "`icmp_type` needs `proto` limited to icmp and/or icmpv6",
        );
    }
    let mut types_ok = true;
    for (i, t) in r.icmp_type.iter().enumerate() {
        if !ICMP_TYPES.iter().any(|(name, _, _)| name == t) {
            let names: Vec<&str> = ICMP_TYPES.iter().map(|(name, _, _)| *name).collect();
            ctx.err(
                &path.key("icmp_type").idx(i),
                format!("unknown ICMP type {t:?} (types: {})", names.join(", ")),
            );
            types_ok = false;
        }
    }
    let family_ok = match r.family {
        Family::Ipv4 if r.proto.contains(&Proto::Icmpv6) => {
            ctx.err(&path.key("proto"), "icmpv6 in a rule of family ipv4");
            false
        }
        Family::Ipv6 if r.proto.contains(&Proto::Icmp) => {
            ctx.err(
                &path.key("proto"),
                "icmp in a rule of family ipv6 (use icmpv6)",
            );
            false
        }
        _ => true,
    };
    let limit = match &r.limit {
        Some(l) => ctx
            .check(&path.key("limit"), parse_rate(l))
            .map(|rate| Some((rate, r.limit_burst.unwrap_or(5)))),
        None => {
            ctx.not_applicable(
                path,
                r.limit_burst.is_some(),
                "limit_burst",
                "rules without `limit`",
            );
            Some(None)
        }
    };
    let schedule = ctx.check_opt(&path.key("schedule"), r.schedule.as_deref(), parse_schedule);
    if !(src_ok && dest_ok && ports_ok && icmp_ok && types_ok && family_ok) {
        return None;
    }
    Some(model::Rule {
        name: r.name.clone(),
        src: r.src.clone(),
        dest: r.dest.clone(),
        family: r.family,
        proto: r.proto.clone(),
        src_addr: src_addr?,
        dest_addr: dest_addr?,
        src_port: src_port?,
        dest_port: dest_port?,
        icmp_type: r.icmp_type.clone(),
        action: r.action,
        log: r.log,
        counter: r.counter,
        limit: limit?,
        schedule: schedule?,
    })
}

pub(super) fn port_forwards(
    ctx: &mut Ctx<'_>,
    fwds: &[wire::PortForward],
    nets: &[wire::Network],
    names: &Names<'_>,
) -> Option<Vec<model::PortForward>> {
    let base = Path::root().key("port_forwards");
    ctx.unique_by("port forward", &base, "name", fwds, |f| &f.name);
    let lans: Vec<ipnet::Ipv4Net> = nets
        .iter()
        .filter(|n| n.kind == NetworkKind::Lan)
        .filter_map(|n| n.address.as_deref().and_then(|a| parse_ipv4_iface(a).ok()))
        .collect();
    let out = all(fwds.iter().enumerate().map(|(i, f)| {
        let path = base.idx(i);
        object_name(ctx, &path, &f.name);
        let proto_ok =
            !f.proto.is_empty() && f.proto.iter().all(|p| matches!(p, Proto::Tcp | Proto::Udp));
        if !proto_ok {
            ctx.err(&path.key("proto"), "port forwards take tcp and/or udp");
        }
        let zone_ok = ctx.reference(&path.key("src_zone"), "zone", &f.src_zone, &names.zones);
        let external = port(ctx, &path.key("external_port"), &f.external_port);
        let internal = internal(ctx, &path.key("internal"), &f.internal, &lans);
        let (external, (addr, first)) = (external?, internal?);
        let last = u32::from(first) + external.len() - 1;
        let Ok(high) = u16::try_from(last) else {
            ctx.err(
                &path.key("internal"),
                format!("internal port range {first}-{last} goes past 65535"),
            );
            return None;
        };
        (proto_ok && zone_ok).then(|| model::PortForward {
            name: f.name.clone(),
            proto: f.proto.clone(),
            external,
            internal_addr: addr,
            internal: PortRange { low: first, high },
            src_zone: f.src_zone.clone(),
            reflection: f.reflection,
        })
    }))?;
    // Two forwards may not claim the same external port of a protocol in a zone.
    for (j, b) in out.iter().enumerate() {
        if let Some(a) = out[..j].iter().find(|a| {
            a.src_zone == b.src_zone
                && a.proto.iter().any(|p| b.proto.contains(p))
                && a.external.low <= b.external.high
                && b.external.low <= a.external.high
        }) {
            ctx.err(
                &base.idx(j).key("external_port"),
                format!("external ports overlap port forward {:?}", a.name),
            );
            return None;
        }
    }
    Some(out)
}

fn internal(
    ctx: &mut Ctx<'_>,
    path: &Path,
    s: &str,
    lans: &[ipnet::Ipv4Net],
) -> Option<(Ipv4Addr, u16)> {
    let parsed = s
        .parse::<SocketAddrV4>()
        .map_err(|_| {
            format!("invalid internal address {s:?} (expected IPv4:PORT like 192.168.1.10:80)")
        })
        .and_then(|sa| match sa.port() {
            0 => Err(format!("port 0 in {s:?} (ports are 1-65535)")),
            _ => Ok((*sa.ip(), sa.port())),
        });
    let (addr, port) = ctx.check(path, parsed)?;
    match lans.iter().find(|n| n.contains(&addr)) {
        Some(net) => match host_address_problem(*net, addr) {
            Some(m) => {
                ctx.err(path, m);
                None
            }
            None => Some((addr, port)),
        },
        None => {
            let subnets: Vec<String> = lans.iter().map(|n| n.trunc().to_string()).collect();
            ctx.err(
                path,
                format!("{addr} is not inside a LAN subnet ({})", subnets.join(", ")),
            );
            None
        }
    }
}
