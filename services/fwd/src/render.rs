//! Deciding the firewall: the config and the WAN addresses in, the whole
//! table `inet oxwrt` out ([`ir::Ruleset`]). No I/O; unit-tested.
//!
//! The layout follows OpenWrt's fw4: base chains `input`, `output`,
//! `forward` hold the defaults (loopback, conntrack, ICMP essentials) and
//! jump per zone to `input_<zone>`, `output_<zone>`, `forward_<zone>`,
//! which hold the zone's rules, forwardings and policy. `dstnat` and
//! `srcnat` hold port forwards, reflection and masquerade;
//! `mangle_forward` clamps the MSS.

mod rules;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use bus_schema::config::model::{
    Action, Firewall, Network, NetworkKind, PortForward, WanMode, Zone,
};
use ipnet::{IpNet, Ipv4Net};

use crate::ir::{
    Base, Chain, ChainKind, Family, Hook, L4, Match, Policy, Ports, Rule, Ruleset, Stmt, Verdict,
    ct_state, priority, tcp_flag,
};

/// Most kernel rules one config rule or port forward may expand to (one
/// per combination of its protocols, addresses, ports, types, days and
/// devices).
pub const MAX_EXPANSION: usize = 256;

/// Errors of [`render`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// A rule expands to more kernel rules than [`MAX_EXPANSION`].
    #[error(
        "{kind} {name:?} expands to {count} kernel rules (at most {MAX_EXPANSION}): split it or use prefixes and ranges"
    )]
    TooLarge {
        /// `rule` or `port forward`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// How many it would be.
        count: usize,
    },
    /// No combination of a rule's family, protocols and ICMP types exists.
    #[error("rule {name:?} can never match: {why}")]
    Empty {
        /// Rule name.
        name: String,
        /// Why.
        why: String,
    },
}

/// A WAN network's current IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanAddress {
    /// Network name from the config.
    pub network: String,
    /// Its address.
    pub address: Ipv4Addr,
}

/// Everything the firewall is made from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The `networks` section.
    pub networks: &'a [Network],
    /// The `firewall` section.
    pub firewall: &'a Firewall,
    /// The `port_forwards` section.
    pub port_forwards: &'a [PortForward],
    /// WAN addresses known now (from netd, or static in the config).
    pub wan: &'a [WanAddress],
    /// Local time minus UTC, in seconds (for schedules).
    pub utc_offset: i32,
}

/// The decided firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The table.
    pub ruleset: Ruleset,
    /// Names of rules with `counter = true`, in config order.
    pub counted: Vec<String>,
}

/// The devices of a zone: each member network's device; a member that is
/// no network is a WireGuard interface of that name.
pub fn zone_devices<'a>(zone: &'a Zone, networks: &'a [Network]) -> Vec<&'a str> {
    zone.networks
        .iter()
        .map(|n| {
            networks
                .iter()
                .find(|net| &net.name == n)
                .map_or(n.as_str(), Network::device)
        })
        .collect()
}

/// The WAN addresses the config fixes (static uplinks).
pub fn static_wan(networks: &[Network]) -> Vec<WanAddress> {
    use bus_schema::config::model::{NetworkKind, WanMode};
    networks
        .iter()
        .filter_map(|n| match &n.kind {
            NetworkKind::Wan(w) => match &w.mode {
                WanMode::Static { address, .. } => Some(WanAddress {
                    network: n.name.clone(),
                    address: address.addr(),
                }),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Renders the whole table.
pub fn render(input: &Input<'_>) -> Result<Rendered, RenderError> {
    let fw = input.firewall;
    let zones: Vec<(&Zone, Vec<&str>)> = fw
        .zones
        .iter()
        .map(|z| (z, zone_devices(z, input.networks)))
        .collect();
    let mut chains = vec![
        input_chain(input, &zones),
        output_chain(input, &zones),
        forward_chain(input, &zones),
        mangle_forward(&zones),
        rules::dstnat(input, &zones)?,
        rules::srcnat(input, &zones),
    ];
    for (zone, own) in &zones {
        let mut input_rules = Vec::new();
        let mut output_rules = Vec::new();
        let mut forward_rules = Vec::new();
        for rule in &fw.rules {
            let expanded =
                |out_devices: &[&str]| rules::expand(rule, out_devices, input.utc_offset);
            match (&rule.src, &rule.dest) {
                (Some(s), None) if s == &zone.name => input_rules.extend(expanded(&[])?),
                (None, Some(d)) if d == &zone.name => output_rules.extend(expanded(&[])?),
                (Some(s), Some(d)) if s == &zone.name => {
                    let devices = zones
                        .iter()
                        .find(|(z, _)| &z.name == d)
                        .map(|(_, devs)| devs.clone())
                        .unwrap_or_default();
                    if !devices.is_empty() {
                        forward_rules.extend(expanded(&devices)?);
                    }
                }
                _ => {}
            }
        }
        input_rules.push(policy_rule(zone.input, vec![]));
        output_rules.push(policy_rule(zone.output, vec![]));
        for f in fw.forwardings.iter().filter(|f| f.src == zone.name) {
            if let Some((_, devices)) = zones.iter().find(|(z, _)| z.name == f.dest) {
                for dev in devices {
                    forward_rules.push(
                        Rule::new(vec![Match::Oif(dev.to_string())], Verdict::Accept)
                            .comment(&format!("forwarding {} -> {}", f.src, f.dest)),
                    );
                }
            }
        }
        for dev in own {
            forward_rules.push(policy_rule(zone.forward, vec![Match::Oif(dev.to_string())]));
        }
        chains.push(regular(format!("input_{}", zone.name), input_rules));
        chains.push(regular(format!("output_{}", zone.name), output_rules));
        chains.push(regular(format!("forward_{}", zone.name), forward_rules));
    }
    if let Some((rate, burst)) = fw.defaults.syn_flood {
        let (count, per_secs) = rules::rate(rate);
        chains.push(regular(
            "syn_flood".into(),
            vec![
                Rule {
                    stmts: vec![Stmt::Limit {
                        rate: count,
                        per_secs,
                        burst,
                    }],
                    ..Rule::new(vec![], Verdict::Return)
                },
                Rule::new(vec![], Verdict::Drop).comment("syn flood"),
            ],
        ));
    }
    chains.push(regular(
        REJECT_CHAIN.into(),
        vec![
            Rule::new(vec![Match::L4Proto(L4::Tcp)], Verdict::RejectTcpReset),
            Rule::new(vec![], Verdict::RejectIcmpx),
        ],
    ));
    let counted = fw
        .rules
        .iter()
        .filter(|r| r.counter)
        .map(|r| r.name.clone())
        .collect();
    Ok(Rendered {
        ruleset: Ruleset { chains },
        counted,
    })
}

/// The chain that rejects politely: TCP reset, else ICMP unreachable.
pub const REJECT_CHAIN: &str = "handle_reject";

fn regular(name: String, rules: Vec<Rule>) -> Chain {
    Chain {
        name,
        base: None,
        rules,
    }
}

fn base(name: &str, kind: ChainKind, hook: Hook, priority: i32, policy: Policy) -> Chain {
    Chain {
        name: name.into(),
        base: Some(Base {
            kind,
            hook,
            priority,
            policy,
        }),
        rules: Vec::new(),
    }
}

/// The verdict of a policy as a rule (reject is a jump).
pub(crate) fn verdict(action: Action) -> Verdict {
    match action {
        Action::Accept => Verdict::Accept,
        Action::Drop => Verdict::Drop,
        Action::Reject => Verdict::Jump(REJECT_CHAIN.into()),
    }
}

fn policy_rule(action: Action, matches: Vec<Match>) -> Rule {
    Rule::new(matches, verdict(action))
}

/// A base chain's policy; reject is `drop` plus a final jump to the
/// reject chain.
fn base_policy(action: Action) -> Policy {
    match action {
        Action::Accept => Policy::Accept,
        Action::Drop | Action::Reject => Policy::Drop,
    }
}

fn finish(chain: &mut Chain, action: Action) {
    if action == Action::Reject {
        chain
            .rules
            .push(Rule::new(vec![], Verdict::Jump(REJECT_CHAIN.into())));
    }
}

/// ICMPv6 types the router must exchange for neighbour discovery and
/// path MTU, and the ICMP errors both families need.
const ICMPV6_ESSENTIAL: &[u8] = &[1, 2, 3, 4, 133, 134, 135, 136];
const ICMPV4_ESSENTIAL: &[u8] = &[3, 11, 12];
const ICMPV6_ERRORS: &[u8] = &[1, 2, 3, 4];

fn icmp_rules(v4: &[u8], v6: &[u8]) -> Vec<Rule> {
    let one = |fam, l4, t| {
        Rule::new(
            vec![
                Match::NfProto(fam),
                Match::L4Proto(l4),
                Match::IcmpType(l4, t),
            ],
            Verdict::Accept,
        )
    };
    v4.iter()
        .map(|t| one(Family::V4, L4::Icmp, *t))
        .chain(v6.iter().map(|t| one(Family::V6, L4::Icmpv6, *t)))
        .collect()
}

fn conntrack(drop_invalid: bool) -> Vec<Rule> {
    let mut rules = vec![Rule::new(
        vec![Match::CtState(ct_state::ESTABLISHED | ct_state::RELATED)],
        Verdict::Accept,
    )];
    if drop_invalid {
        rules.push(Rule::new(
            vec![Match::CtState(ct_state::INVALID)],
            Verdict::Drop,
        ));
    }
    rules
}

fn input_chain(input: &Input<'_>, zones: &[(&Zone, Vec<&str>)]) -> Chain {
    let d = &input.firewall.defaults;
    let mut c = base(
        "input",
        ChainKind::Filter,
        Hook::Input,
        priority::FILTER,
        base_policy(d.input),
    );
    c.rules
        .push(Rule::new(vec![Match::Iif("lo".into())], Verdict::Accept));
    c.rules.extend(conntrack(d.drop_invalid));
    if d.syn_flood.is_some() {
        c.rules.push(Rule::new(
            vec![
                Match::L4Proto(L4::Tcp),
                syn_only(tcp_flag::FIN | tcp_flag::ACK),
            ],
            Verdict::Jump("syn_flood".into()),
        ));
    }
    c.rules
        .extend(icmp_rules(ICMPV4_ESSENTIAL, ICMPV6_ESSENTIAL));
    c.rules.extend(dhcp_client_rules(input.networks));
    for (zone, devices) in zones {
        for dev in devices {
            c.rules.push(Rule::new(
                vec![Match::Iif(dev.to_string())],
                Verdict::Jump(format!("input_{}", zone.name)),
            ));
        }
    }
    finish(&mut c, d.input);
    c
}

/// The DHCP servers' answers on every DHCP WAN, whatever its zone's input
/// policy: they go to the broadcast address (or to an address the client
/// does not have yet), so conntrack never sees them as replies, and
/// dropping them would leave the WAN without a lease.
fn dhcp_client_rules(networks: &[Network]) -> Vec<Rule> {
    networks
        .iter()
        .filter_map(|n| match &n.kind {
            NetworkKind::Wan(wan) if matches!(wan.mode, WanMode::Dhcp { .. }) => Some(Rule::new(
                vec![
                    Match::Iif(wan.device.clone()),
                    Match::NfProto(Family::V4),
                    Match::L4Proto(L4::Udp),
                    Match::Sport(Ports { low: 67, high: 67 }),
                    Match::Dport(Ports { low: 68, high: 68 }),
                ],
                Verdict::Accept,
            )),
            _ => None,
        })
        .collect()
}

fn output_chain(input: &Input<'_>, zones: &[(&Zone, Vec<&str>)]) -> Chain {
    let d = &input.firewall.defaults;
    let mut c = base(
        "output",
        ChainKind::Filter,
        Hook::Output,
        priority::FILTER,
        base_policy(d.output),
    );
    c.rules
        .push(Rule::new(vec![Match::Oif("lo".into())], Verdict::Accept));
    c.rules.extend(conntrack(false));
    c.rules
        .extend(icmp_rules(ICMPV4_ESSENTIAL, ICMPV6_ESSENTIAL));
    for (zone, devices) in zones {
        for dev in devices {
            c.rules.push(Rule::new(
                vec![Match::Oif(dev.to_string())],
                Verdict::Jump(format!("output_{}", zone.name)),
            ));
        }
    }
    finish(&mut c, d.output);
    c
}

fn forward_chain(input: &Input<'_>, zones: &[(&Zone, Vec<&str>)]) -> Chain {
    let d = &input.firewall.defaults;
    let mut c = base(
        "forward",
        ChainKind::Filter,
        Hook::Forward,
        priority::FILTER,
        base_policy(d.forward),
    );
    c.rules.extend(conntrack(d.drop_invalid));
    c.rules.extend(icmp_rules(&[], ICMPV6_ERRORS));
    if !input.port_forwards.is_empty() {
        c.rules.push(
            Rule::new(
                vec![Match::CtStatus(crate::ir::CT_STATUS_DNAT)],
                Verdict::Accept,
            )
            .comment("port forwards"),
        );
    }
    for (zone, devices) in zones {
        for dev in devices {
            c.rules.push(Rule::new(
                vec![Match::Iif(dev.to_string())],
                Verdict::Jump(format!("forward_{}", zone.name)),
            ));
        }
    }
    finish(&mut c, d.forward);
    c
}

/// `tcp flags & (syn | rst | extra) == syn`.
fn syn_only(extra: u8) -> Match {
    Match::TcpFlags {
        mask: tcp_flag::SYN | tcp_flag::RST | extra,
        value: tcp_flag::SYN,
    }
}

fn mangle_forward(zones: &[(&Zone, Vec<&str>)]) -> Chain {
    let mut c = base(
        "mangle_forward",
        ChainKind::Filter,
        Hook::Forward,
        priority::MANGLE,
        Policy::Accept,
    );
    for (zone, devices) in zones.iter().filter(|(z, _)| z.mss_clamping) {
        for dev in devices {
            for side in [Match::Iif(dev.to_string()), Match::Oif(dev.to_string())] {
                c.rules.push(Rule {
                    matches: vec![side, Match::L4Proto(L4::Tcp), syn_only(0)],
                    stmts: vec![Stmt::ClampMss],
                    verdict: None,
                    comment: Some(format!("zone {} mss clamping", zone.name)),
                });
            }
        }
    }
    c
}

/// The IPv4 subnets of the LAN and simple networks, with their devices.
fn subnets(networks: &[Network]) -> Vec<(Ipv4Net, &str)> {
    networks
        .iter()
        .filter(|n| !matches!(n.kind, NetworkKind::Wan(_)))
        .filter_map(|n| n.ipv4().map(|a| (a.trunc(), n.device())))
        .collect()
}

/// The port range as the IR's.
fn ports(p: bus_schema::config::value::PortRange) -> Ports {
    Ports {
        low: p.low,
        high: p.high,
    }
}

/// A host prefix for one address.
fn host(a: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(a))
}
