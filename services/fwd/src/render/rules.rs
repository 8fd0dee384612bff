//! Config rules and port forwards as kernel rules: one per combination of
//! their protocols, addresses, ports, ICMP types, days and devices.

use bus_schema::config::model::{self, Proto, Zone};
use bus_schema::config::value::{Rate, RateUnit, Schedule};
use ipnet::IpNet;

use super::{Input, MAX_EXPANSION, RenderError, host, ports, subnets, verdict};
use crate::ir::{
    Base, CT_STATUS_DNAT, Chain, ChainKind, Family, Hook, HourWindow, L4, Match, Policy, Ports,
    Rule, Stmt, Verdict, priority,
};

/// A rate as (count, unit in seconds).
pub(super) fn rate(r: Rate) -> (u64, u64) {
    let per = match r.per {
        RateUnit::Second => 1,
        RateUnit::Minute => 60,
        RateUnit::Hour => 3600,
        RateUnit::Day => 86_400,
    };
    (u64::from(r.count), per)
}

fn l4(p: Proto) -> L4 {
    match p {
        Proto::Tcp => L4::Tcp,
        Proto::Udp => L4::Udp,
        Proto::Icmp => L4::Icmp,
        Proto::Icmpv6 => L4::Icmpv6,
    }
}

/// The kernel's days (0 = Sunday) of a schedule, as runs `(low, high)`;
/// empty when every day is in.
pub(super) fn day_runs(s: &Schedule) -> Vec<(u8, u8)> {
    if s.days & 0x7f == 0x7f {
        return Vec::new();
    }
    // Bit 0 is Monday; the kernel's day 1 is Monday.
    let on = |kernel_day: u8| s.days & (1 << ((kernel_day + 6) % 7)) != 0;
    let mut runs: Vec<(u8, u8)> = Vec::new();
    for d in 0..7u8 {
        if !on(d) {
            continue;
        }
        match runs.last_mut() {
            Some((_, high)) if *high + 1 == d => *high = d,
            _ => runs.push((d, d)),
        }
    }
    runs
}

fn hour_window(s: &Schedule, utc_offset: i32) -> Option<HourWindow> {
    (s.start_min != 0 || s.end_min != 24 * 60).then(|| HourWindow {
        start: u32::from(s.start_min) * 60,
        end: u32::from(s.end_min) * 60,
        utc_offset,
    })
}

fn family_of(net: &IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::V4,
        IpNet::V6(_) => Family::V6,
    }
}

/// `[None]` for an empty list (the dimension does not narrow), else each.
fn dim<T: Clone>(items: &[T]) -> Vec<Option<T>> {
    if items.is_empty() {
        vec![None]
    } else {
        items.iter().cloned().map(Some).collect()
    }
}

/// Joins two family requirements; `Err` when they conflict.
fn join(a: Option<Family>, b: Option<Family>) -> Result<Option<Family>, ()> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(()),
        (x, y) => Ok(x.or(y)),
    }
}

/// The kernel rules of a config rule; `out` are the destination zone's
/// devices for a forward rule (empty otherwise).
pub(super) fn expand(
    rule: &model::Rule,
    out: &[&str],
    utc_offset: i32,
) -> Result<Vec<Rule>, RenderError> {
    let oifs = dim(out);
    let protos = dim(&rule.proto);
    let (saddrs, daddrs) = (dim(&rule.src_addr), dim(&rule.dest_addr));
    let (sports, dports) = (dim(&rule.src_port), dim(&rule.dest_port));
    let types = dim(&rule.icmp_type);
    let runs = rule.schedule.as_ref().map(day_runs).unwrap_or_default();
    let days = dim(&runs);
    let hour = rule
        .schedule
        .as_ref()
        .and_then(|s| hour_window(s, utc_offset));
    let count = [
        oifs.len(),
        protos.len(),
        saddrs.len(),
        daddrs.len(),
        sports.len(),
        dports.len(),
        types.len(),
        days.len(),
    ]
    .iter()
    .product::<usize>();
    if count > MAX_EXPANSION {
        return Err(RenderError::TooLarge {
            kind: "rule",
            name: rule.name.clone(),
            count,
        });
    }
    let fixed = match rule.family {
        model::Family::Any => None,
        model::Family::Ipv4 => Some(Family::V4),
        model::Family::Ipv6 => Some(Family::V6),
    };
    let mut stmts = Vec::new();
    if let Some((r, burst)) = rule.limit {
        let (rate, per_secs) = rate(r);
        stmts.push(Stmt::Limit {
            rate,
            per_secs,
            burst,
        });
    }
    if rule.counter {
        stmts.push(Stmt::Counter);
    }
    if rule.log {
        let mut prefix: String = rule.name.chars().take(100).collect();
        prefix.push_str(": ");
        stmts.push(Stmt::Log(prefix));
    }
    let mut rules = Vec::new();
    for oif in &oifs {
        for proto in &protos {
            let l4 = proto.map(l4);
            let proto_family = match l4 {
                Some(L4::Icmp) => Some(Family::V4),
                Some(L4::Icmpv6) => Some(Family::V6),
                _ => None,
            };
            for ty in &types {
                let icmp = match (ty, l4) {
                    (None, _) => None,
                    (Some(name), Some(p @ (L4::Icmp | L4::Icmpv6))) => {
                        match bus_schema::config::value::icmp_type(name, p == L4::Icmpv6) {
                            Some(t) => Some((p, t)),
                            None => continue,
                        }
                    }
                    (Some(_), _) => continue,
                };
                for saddr in &saddrs {
                    for daddr in &daddrs {
                        let Ok(family) = join(fixed, proto_family)
                            .and_then(|f| join(f, saddr.as_ref().map(family_of)))
                            .and_then(|f| join(f, daddr.as_ref().map(family_of)))
                        else {
                            continue;
                        };
                        for sport in &sports {
                            for dport in &dports {
                                for day in &days {
                                    let mut m = Vec::new();
                                    m.extend(oif.map(|d| Match::Oif(d.to_string())));
                                    m.extend(family.map(Match::NfProto));
                                    m.extend(l4.map(Match::L4Proto));
                                    m.extend(
                                        saddr.filter(|n| n.prefix_len() > 0).map(Match::Saddr),
                                    );
                                    m.extend(
                                        daddr.filter(|n| n.prefix_len() > 0).map(Match::Daddr),
                                    );
                                    m.extend(sport.map(|p| Match::Sport(ports(p))));
                                    m.extend(dport.map(|p| Match::Dport(ports(p))));
                                    m.extend(icmp.map(|(p, t)| Match::IcmpType(p, t)));
                                    m.extend(day.map(|(lo, hi)| Match::Day(lo, hi)));
                                    m.extend(hour.map(Match::Hour));
                                    rules.push(Rule {
                                        matches: m,
                                        stmts: stmts.clone(),
                                        verdict: Some(verdict(rule.action)),
                                        comment: Some(rule.name.clone()),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if rules.is_empty() && count > 0 {
        return Err(RenderError::Empty {
            name: rule.name.clone(),
            why: "no combination of its family, addresses, protocols and ICMP types exists".into(),
        });
    }
    Ok(rules)
}

fn nat_base(name: &str, hook: Hook, priority: i32) -> Chain {
    Chain {
        name: name.into(),
        base: Some(Base {
            kind: ChainKind::Nat,
            hook,
            priority,
            policy: Policy::Accept,
        }),
        rules: Vec::new(),
    }
}

/// External ports and the DNAT port for each: one rule for a single
/// port or an unshifted range, one per port for a shifted range.
fn mappings(pf: &model::PortForward) -> Vec<(Ports, Option<u16>)> {
    let (ext, int) = (pf.external, pf.internal);
    if ext.low == ext.high {
        vec![(ports(ext), Some(int.low))]
    } else if ext.low == int.low {
        vec![(ports(ext), None)]
    } else {
        (ext.low..=ext.high)
            .zip(int.low..=int.high)
            .map(|(e, i)| (Ports { low: e, high: e }, Some(i)))
            .collect()
    }
}

/// WAN addresses of the networks in `zone`.
fn zone_wan(input: &Input<'_>, zone: &str) -> Vec<std::net::Ipv4Addr> {
    let members: Vec<&String> = input
        .firewall
        .zones
        .iter()
        .filter(|z| z.name == zone)
        .flat_map(|z| &z.networks)
        .collect();
    input
        .wan
        .iter()
        .filter(|w| members.contains(&&w.network))
        .map(|w| w.address)
        .collect()
}

/// `dstnat`: port forwards from their zone, and reflection from every
/// other zone to the WAN addresses.
pub(super) fn dstnat(
    input: &Input<'_>,
    zones: &[(&Zone, Vec<&str>)],
) -> Result<Chain, RenderError> {
    let mut c = nat_base("dstnat", Hook::Prerouting, priority::DSTNAT);
    for pf in input.port_forwards {
        let maps = mappings(pf);
        let from: Vec<&str> = zones
            .iter()
            .filter(|(z, _)| z.name == pf.src_zone)
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        let wan = if pf.reflection {
            zone_wan(input, &pf.src_zone)
        } else {
            Vec::new()
        };
        let inside: Vec<&str> = zones
            .iter()
            .filter(|(z, _)| z.name != pf.src_zone)
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        let count = pf.proto.len() * maps.len() * (from.len() + inside.len() * wan.len());
        if count > MAX_EXPANSION {
            return Err(RenderError::TooLarge {
                kind: "port forward",
                name: pf.name.clone(),
                count,
            });
        }
        for proto in &pf.proto {
            for (ext, port) in &maps {
                let tail = [Match::L4Proto(l4(*proto)), Match::Dport(*ext)];
                let dnat = Verdict::Dnat(pf.internal_addr, *port);
                for dev in &from {
                    let mut m = vec![Match::NfProto(Family::V4), Match::Iif(dev.to_string())];
                    m.extend(tail.iter().cloned());
                    c.rules.push(Rule::new(m, dnat.clone()).comment(&pf.name));
                }
                for dev in &inside {
                    for addr in &wan {
                        let mut m = vec![
                            Match::NfProto(Family::V4),
                            Match::Iif(dev.to_string()),
                            Match::Daddr(host(*addr)),
                        ];
                        m.extend(tail.iter().cloned());
                        c.rules.push(
                            Rule::new(m, dnat.clone())
                                .comment(&format!("{} (reflection)", pf.name)),
                        );
                    }
                }
            }
        }
    }
    Ok(c)
}

/// `srcnat`: reflected flows within one subnet are masqueraded so the
/// replies come back through the router; then masquerading zones.
pub(super) fn srcnat(input: &Input<'_>, zones: &[(&Zone, Vec<&str>)]) -> Chain {
    let mut c = nat_base("srcnat", Hook::Postrouting, priority::SRCNAT);
    let nets = subnets(input.networks);
    for pf in input.port_forwards.iter().filter(|pf| pf.reflection) {
        if zone_wan(input, &pf.src_zone).is_empty() {
            continue;
        }
        for (net, dev) in nets.iter().filter(|(n, _)| n.contains(&pf.internal_addr)) {
            for proto in &pf.proto {
                c.rules.push(
                    Rule::new(
                        vec![
                            Match::NfProto(Family::V4),
                            Match::Oif(dev.to_string()),
                            Match::Saddr(IpNet::V4(*net)),
                            Match::Daddr(host(pf.internal_addr)),
                            Match::L4Proto(l4(*proto)),
                            Match::Dport(ports(pf.internal)),
                            Match::CtStatus(CT_STATUS_DNAT),
                        ],
                        Verdict::Masquerade,
                    )
                    .comment(&format!("{} (reflection)", pf.name)),
                );
            }
        }
    }
    for (zone, devices) in zones.iter().filter(|(z, _)| z.masquerade) {
        for dev in devices {
            c.rules.push(
                Rule::new(
                    vec![Match::NfProto(Family::V4), Match::Oif(dev.to_string())],
                    Verdict::Masquerade,
                )
                .comment(&format!("zone {} masquerade", zone.name)),
            );
        }
    }
    c
}
