//! The ruleset as plain data: what [`crate::render`] decides and what
//! [`crate::batch`] turns into an nf_tables batch. Each value maps to one
//! nftables construct, and [`crate::text`] prints it in `nft` syntax.

use std::net::Ipv4Addr;

use ipnet::IpNet;

/// The one table fwd owns: `inet oxwrt`.
pub const TABLE: &str = "oxwrt";

/// fwd's table: every chain, in the order they are created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Chains; base chains and the regular chains they jump to.
    pub chains: Vec<Chain>,
}

impl Ruleset {
    /// The chain called `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// A chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Name, unique in the table.
    pub name: String,
    /// Hook, type and policy of a base chain; `None` for a regular chain.
    pub base: Option<Base>,
    /// Rules in order.
    pub rules: Vec<Rule>,
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base {
    /// `filter` or `nat`.
    pub kind: ChainKind,
    /// Netfilter hook.
    pub hook: Hook,
    /// Priority (lower runs first).
    pub priority: i32,
    /// What happens to a packet no rule decided on.
    pub policy: Policy,
}

/// Base chain type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainKind {
    /// Filtering (and mangling, such as MSS clamping).
    Filter,
    /// NAT: only the first packet of a flow passes.
    Nat,
}

/// Netfilter hooks of the inet family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before routing.
    Prerouting,
    /// To the router.
    Input,
    /// Through the router.
    Forward,
    /// From the router.
    Output,
    /// After routing.
    Postrouting,
}

/// Chain priorities by their nft names.
pub mod priority {
    /// `dstnat`.
    pub const DSTNAT: i32 = -100;
    /// `mangle`.
    pub const MANGLE: i32 = -150;
    /// `filter`.
    pub const FILTER: i32 = 0;
    /// `srcnat`.
    pub const SRCNAT: i32 = 100;
}

/// Base chain policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Let it through.
    Accept,
    /// Discard it.
    Drop,
}

/// A rule: every match must hold; then the statements run and the
/// verdict (if any) decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Conditions, in evaluation order.
    pub matches: Vec<Match>,
    /// Statements after the matches (limit, counter, log, MSS clamping).
    pub stmts: Vec<Stmt>,
    /// The verdict; `None` continues with the next rule.
    pub verdict: Option<Verdict>,
    /// Comment: the config object the rule comes from.
    pub comment: Option<String>,
}

impl Rule {
    /// A rule of `matches` and `verdict`.
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Self {
        Self {
            matches,
            stmts: Vec::new(),
            verdict: Some(verdict),
            comment: None,
        }
    }

    /// The same rule with a comment.
    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_string());
        self
    }
}

/// Layer-3 family (`meta nfproto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Layer-4 protocol (`meta l4proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
}

impl L4 {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4::Tcp => 6,
            L4::Udp => 17,
            L4::Icmp => 1,
            L4::Icmpv6 => 58,
        }
    }
}

/// An inclusive port range; one port has `low == high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// First port.
    pub low: u16,
    /// Last port.
    pub high: u16,
}

/// Conntrack state bits (`ct state`).
pub mod ct_state {
    /// `invalid`.
    pub const INVALID: u32 = 1;
    /// `established`.
    pub const ESTABLISHED: u32 = 2;
    /// `related`.
    pub const RELATED: u32 = 4;
}

/// Conntrack status bit `dnat` (`ct status dnat`).
pub const CT_STATUS_DNAT: u32 = 32;

/// TCP flag bits.
pub mod tcp_flag {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A condition on a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
    /// `meta l4proto P`.
    L4Proto(L4),
    /// `iifname "dev"`.
    Iif(String),
    /// `oifname "dev"`.
    Oif(String),
    /// `ip saddr P` / `ip6 saddr P` (after a matching `NfProto`).
    Saddr(IpNet),
    /// `ip daddr P` / `ip6 daddr P`.
    Daddr(IpNet),
    /// `th sport R` (after `L4Proto` tcp or udp).
    Sport(Ports),
    /// `th dport R`.
    Dport(Ports),
    /// `icmp type N` / `icmpv6 type N` (after `L4Proto` icmp/icmpv6).
    IcmpType(L4, u8),
    /// `ct state` has any of these bits.
    CtState(u32),
    /// `ct status` has any of these bits.
    CtStatus(u32),
    /// `tcp flags & mask == value` (after `L4Proto` tcp).
    TcpFlags {
        /// Bits looked at.
        mask: u8,
        /// Their required value.
        value: u8,
    },
    /// `meta day` within `low..=high` (0 = Sunday).
    Day(u8, u8),
    /// `meta hour` within a daily window of local time.
    Hour(HourWindow),
}

/// A daily window: `start` (inclusive) to `end` (exclusive), seconds after
/// local midnight; `end < start` crosses midnight. The kernel compares UTC
/// seconds, so the window carries the local time's offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourWindow {
    /// Start, seconds after local midnight.
    pub start: u32,
    /// End (exclusive), seconds after local midnight, at most 86400.
    pub end: u32,
    /// Local time minus UTC, in seconds.
    pub utc_offset: i32,
}

impl HourWindow {
    /// The window in UTC seconds of the day: `(start, end, inverted)`.
    /// Inclusive `start..=end` when not inverted; when inverted, the window
    /// is everything outside `start..=end`.
    pub fn utc(&self) -> (u32, u32, bool) {
        const DAY: i64 = 86_400;
        let shift = |s: u32| (i64::from(s) - i64::from(self.utc_offset)).rem_euclid(DAY);
        let start = shift(self.start);
        // Exclusive end -> inclusive last second.
        let last = (shift(self.end) - 1).rem_euclid(DAY);
        if start <= last {
            (start as u32, last as u32, false)
        } else {
            // Outside last+1 ..= start-1.
            ((last + 1) as u32, (start - 1) as u32, true)
        }
    }
}

/// A statement that does not end evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `limit rate N/unit burst B packets`: matches while under the rate.
    Limit {
        /// Packets per `per_secs`.
        rate: u64,
        /// Unit in seconds (1, 60, 3600, 86400).
        per_secs: u64,
        /// Burst, packets.
        burst: u32,
    },
    /// `counter`.
    Counter,
    /// `log prefix "..."`.
    Log(String),
    /// `tcp option maxseg size set rt mtu`.
    ClampMss,
}

/// How a rule ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump chain`.
    Jump(String),
    /// `reject with tcp reset`.
    RejectTcpReset,
    /// `reject with icmpx port-unreachable`.
    RejectIcmpx,
    /// `masquerade`.
    Masquerade,
    /// `dnat ip to addr[:port]`.
    Dnat(Ipv4Addr, Option<u16>),
}
