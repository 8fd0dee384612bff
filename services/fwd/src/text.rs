//! The ruleset in `nft` syntax: what `org.oxwrt.Firewall1.Ruleset`
//! shows. It is valid input for `nft -f` and means what the batch means
//! (a test loads both into namespaces and compares what the kernel lists).

use std::fmt::{self, Display, Formatter, Write as _};

use ipnet::IpNet;

use crate::ir::{
    Base, CT_STATUS_DNAT, Chain, ChainKind, Family, Hook, HourWindow, L4, Match, Policy, Rule,
    Ruleset, Stmt, TABLE, Verdict, ct_state, priority, tcp_flag,
};

impl Display for Ruleset {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "table inet {TABLE} {{")?;
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{chain}")?;
        }
        writeln!(f, "}}")
    }
}

impl Display for Chain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        if let Some(base) = &self.base {
            writeln!(f, "\t\t{base}")?;
        }
        for rule in &self.rules {
            writeln!(f, "\t\t{rule}")?;
        }
        writeln!(f, "\t}}")
    }
}

impl Display for Base {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        };
        let hook = match self.hook {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        };
        let prio = match self.priority {
            priority::FILTER => "filter".to_string(),
            priority::MANGLE => "mangle".to_string(),
            priority::DSTNAT => "dstnat".to_string(),
            priority::SRCNAT => "srcnat".to_string(),
            n => n.to_string(),
        };
        let policy = match self.policy {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        };
        write!(
            f,
            "type {kind} hook {hook} priority {prio}; policy {policy};"
        )
    }
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.matches.iter().map(ToString::to_string).collect();
        parts.extend(self.stmts.iter().map(ToString::to_string));
        parts.extend(self.verdict.iter().map(ToString::to_string));
        if let Some(c) = &self.comment {
            parts.push(format!("comment {}", quoted(c)));
        }
        f.write_str(&parts.join(" "))
    }
}

/// nft strings cannot escape a double quote; fwd's names never hold one,
/// but a stray one must not break the syntax.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "'"))
}

fn l4_name(p: L4) -> &'static str {
    match p {
        L4::Tcp => "tcp",
        L4::Udp => "udp",
        L4::Icmp => "icmp",
        L4::Icmpv6 => "ipv6-icmp",
    }
}

fn addr(f: &mut Formatter<'_>, dir: &str, net: &IpNet) -> fmt::Result {
    let (fam, full) = match net {
        IpNet::V4(_) => ("ip", 32),
        IpNet::V6(_) => ("ip6", 128),
    };
    if net.prefix_len() == full {
        write!(f, "{fam} {dir} {}", net.addr())
    } else {
        write!(f, "{fam} {dir} {net}")
    }
}

fn icmp_name(v6: bool, t: u8) -> String {
    bus_schema::config::value::icmp_name(t, v6).map_or_else(|| t.to_string(), str::to_string)
}

fn clock(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("\"{h:02}:{m:02}\"")
    } else {
        format!("\"{h:02}:{m:02}:{s:02}\"")
    }
}

fn hour(f: &mut Formatter<'_>, w: &HourWindow) -> fmt::Result {
    if w.start < w.end {
        write!(
            f,
            "meta hour >= {} meta hour < {}",
            clock(w.start),
            clock(w.end)
        )
    } else {
        // Crosses midnight: outside end ..= start - 1 s.
        write!(
            f,
            "meta hour != {}-{}",
            clock(w.end),
            clock(w.start.saturating_sub(1))
        )
    }
}

impl Display for Match {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Match::NfProto(Family::V4) => f.write_str("meta nfproto ipv4"),
            Match::NfProto(Family::V6) => f.write_str("meta nfproto ipv6"),
            Match::L4Proto(p) => write!(f, "meta l4proto {}", l4_name(*p)),
            Match::Iif(d) => write!(f, "iifname {}", quoted(d)),
            Match::Oif(d) => write!(f, "oifname {}", quoted(d)),
            Match::Saddr(n) => addr(f, "saddr", n),
            Match::Daddr(n) => addr(f, "daddr", n),
            Match::Sport(p) | Match::Dport(p) => {
                let dir = if matches!(self, Match::Sport(_)) {
                    "sport"
                } else {
                    "dport"
                };
                if p.low == p.high {
                    write!(f, "th {dir} {}", p.low)
                } else {
                    write!(f, "th {dir} {}-{}", p.low, p.high)
                }
            }
            Match::IcmpType(p, t) => {
                let v6 = *p == L4::Icmpv6;
                let fam = if v6 { "icmpv6" } else { "icmp" };
                write!(f, "{fam} type {}", icmp_name(v6, *t))
            }
            Match::CtState(bits) => {
                let names: Vec<&str> = [
                    (ct_state::ESTABLISHED, "established"),
                    (ct_state::RELATED, "related"),
                    (ct_state::INVALID, "invalid"),
                ]
                .iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, n)| *n)
                .collect();
                write!(f, "ct state {}", names.join(","))
            }
            Match::CtStatus(bits) if *bits == CT_STATUS_DNAT => f.write_str("ct status dnat"),
            Match::CtStatus(bits) => write!(f, "ct status & {bits:#x} != 0"),
            Match::TcpFlags { mask, value } => {
                let names = |bits: u8| {
                    let all = [
                        (tcp_flag::FIN, "fin"),
                        (tcp_flag::SYN, "syn"),
                        (tcp_flag::RST, "rst"),
                        (tcp_flag::ACK, "ack"),
                    ];
                    let v: Vec<&str> = all
                        .iter()
                        .filter(|(b, _)| bits & b != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    v.join(" | ")
                };
                write!(f, "tcp flags & ({}) == {}", names(*mask), names(*value))
            }
            Match::Day(lo, hi) if lo == hi => write!(f, "meta day {lo}"),
            Match::Day(lo, hi) => write!(f, "meta day {lo}-{hi}"),
            Match::Hour(w) => hour(f, w),
        }
    }
}

impl Display for Stmt {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stmt::Limit {
                rate,
                per_secs,
                burst,
            } => {
                let unit = match per_secs {
                    1 => "second",
                    60 => "minute",
                    3600 => "hour",
                    _ => "day",
                };
                write!(f, "limit rate {rate}/{unit} burst {burst} packets")
            }
            Stmt::Counter => f.write_str("counter"),
            Stmt::Log(prefix) => write!(f, "log prefix {}", quoted(prefix)),
            Stmt::ClampMss => f.write_str("tcp option maxseg size set rt mtu"),
        }
    }
}

impl Display for Verdict {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::RejectTcpReset => f.write_str("reject with tcp reset"),
            Verdict::RejectIcmpx => f.write_str("reject with icmpx port-unreachable"),
            Verdict::Masquerade => f.write_str("masquerade"),
            Verdict::Dnat(a, None) => write!(f, "dnat ip to {a}"),
            Verdict::Dnat(a, Some(p)) => write!(f, "dnat ip to {a}:{p}"),
        }
    }
}

/// The ruleset as text (what the `Ruleset` property carries).
pub fn render_text(ruleset: &Ruleset) -> String {
    let mut s = String::new();
    let _ = write!(s, "{ruleset}");
    s
}
