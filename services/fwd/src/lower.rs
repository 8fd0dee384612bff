//! IR rules as nf_tables expressions: each expression is a name and its
//! attributes as plain data, so the lowering is unit-tested without
//! libnftnl; [`crate::nlexpr`] hands them to libnftnl.
//!
//! The expressions are the ones `nft` generates for the same rule (see
//! `nft --debug=netlink`), so the kernel lists them the same way.

use std::ffi::CString;

use ipnet::IpNet;
use nftnl_sys as sys;

use crate::ir::{Family, Match, Ports, Rule, Stmt, Verdict};

/// Errors of [`rule`].
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// A name or prefix holds a NUL byte.
    #[error("{0:?} holds a NUL byte")]
    Nul(String),
}

/// One attribute value, as libnftnl stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An 8-bit attribute.
    U8(u8),
    /// A 32-bit attribute (host order).
    U32(u32),
    /// A 64-bit attribute (host order).
    U64(u64),
    /// A string.
    Str(CString),
    /// Raw register data (network order where the packet's is).
    Data(Vec<u8>),
}

impl Value {
    /// The bytes libnftnl copies.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::U8(v) => vec![*v],
            Value::U32(v) => v.to_ne_bytes().to_vec(),
            Value::U64(v) => v.to_ne_bytes().to_vec(),
            Value::Str(s) => s.as_bytes_with_nul().to_vec(),
            Value::Data(d) => d.clone(),
        }
    }
}

/// One expression: libnftnl's name for it and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// `meta`, `cmp`, `payload`, ...
    pub name: &'static str,
    /// `NFTNL_EXPR_*` attribute and value.
    pub attrs: Vec<(u32, Value)>,
}

const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const META_TIME_DAY: u32 = 31;
const META_TIME_HOUR: u32 = 32;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const RANGE_EQ: u32 = 0;
const RANGE_NEQ: u32 = 1;
const BYTEORDER_HTON: u32 = 1;
const RT_TCPMSS: u32 = 3;
const TCPOPT_MAXSEG: u8 = 2;
const EXTHDR_OP_TCPOPT: u32 = 1;
const LIMIT_PKTS: u32 = 0;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_RETURN: i32 = -5;
const REJECT_TCP_RST: u32 = 1;
const REJECT_ICMPX_UNREACH: u32 = 2;
const ICMPX_PORT_UNREACH: u8 = 1;
const NAT_DNAT: u32 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NAT_MAP_IPS: u32 = 1;
const NAT_PROTO_SPECIFIED: u32 = 2;
const IFNAMSIZ: usize = 16;

fn e(name: &'static str, attrs: Vec<(u32, Value)>) -> Expr {
    Expr { name, attrs }
}

fn cstring(s: &str) -> Result<CString, LowerError> {
    CString::new(s).map_err(|_| LowerError::Nul(s.to_string()))
}

fn meta(key: u32) -> Expr {
    e(
        "meta",
        vec![
            (sys::NFTNL_EXPR_META_KEY, Value::U32(key)),
            (sys::NFTNL_EXPR_META_DREG, Value::U32(REG_1)),
        ],
    )
}

fn cmp(op: u32, data: Vec<u8>) -> Expr {
    e(
        "cmp",
        vec![
            (sys::NFTNL_EXPR_CMP_SREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_CMP_OP, Value::U32(op)),
            (sys::NFTNL_EXPR_CMP_DATA, Value::Data(data)),
        ],
    )
}

fn range(op: u32, from: Vec<u8>, to: Vec<u8>) -> Expr {
    e(
        "range",
        vec![
            (sys::NFTNL_EXPR_RANGE_SREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_RANGE_OP, Value::U32(op)),
            (sys::NFTNL_EXPR_RANGE_FROM_DATA, Value::Data(from)),
            (sys::NFTNL_EXPR_RANGE_TO_DATA, Value::Data(to)),
        ],
    )
}

fn payload(base: u32, offset: u32, len: u32) -> Expr {
    e(
        "payload",
        vec![
            (sys::NFTNL_EXPR_PAYLOAD_DREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_PAYLOAD_BASE, Value::U32(base)),
            (sys::NFTNL_EXPR_PAYLOAD_OFFSET, Value::U32(offset)),
            (sys::NFTNL_EXPR_PAYLOAD_LEN, Value::U32(len)),
        ],
    )
}

fn bitwise(mask: Vec<u8>) -> Expr {
    let len = mask.len() as u32;
    let xor = vec![0; mask.len()];
    e(
        "bitwise",
        vec![
            (sys::NFTNL_EXPR_BITWISE_SREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_BITWISE_DREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_BITWISE_LEN, Value::U32(len)),
            (sys::NFTNL_EXPR_BITWISE_MASK, Value::Data(mask)),
            (sys::NFTNL_EXPR_BITWISE_XOR, Value::Data(xor)),
        ],
    )
}

fn byteorder_hton(size: u32) -> Expr {
    e(
        "byteorder",
        vec![
            (sys::NFTNL_EXPR_BYTEORDER_SREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_BYTEORDER_DREG, Value::U32(REG_1)),
            (sys::NFTNL_EXPR_BYTEORDER_OP, Value::U32(BYTEORDER_HTON)),
            (sys::NFTNL_EXPR_BYTEORDER_LEN, Value::U32(size)),
            (sys::NFTNL_EXPR_BYTEORDER_SIZE, Value::U32(size)),
        ],
    )
}

fn ct(key: u32) -> Expr {
    e(
        "ct",
        vec![
            (sys::NFTNL_EXPR_CT_KEY, Value::U32(key)),
            (sys::NFTNL_EXPR_CT_DREG, Value::U32(REG_1)),
        ],
    )
}

fn immediate_data(reg: u32, data: Vec<u8>) -> Expr {
    e(
        "immediate",
        vec![
            (sys::NFTNL_EXPR_IMM_DREG, Value::U32(reg)),
            (sys::NFTNL_EXPR_IMM_DATA, Value::Data(data)),
        ],
    )
}

fn verdict_code(code: u32, chain: Option<CString>) -> Expr {
    let mut attrs = vec![
        (sys::NFTNL_EXPR_IMM_DREG, Value::U32(REG_VERDICT)),
        (sys::NFTNL_EXPR_IMM_VERDICT, Value::U32(code)),
    ];
    if let Some(c) = chain {
        attrs.push((sys::NFTNL_EXPR_IMM_CHAIN, Value::Str(c)));
    }
    e("immediate", attrs)
}

/// Interface names compare as 16 NUL-padded bytes (exact match).
fn ifname(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(b.len().max(IFNAMSIZ), 0);
    b
}

fn addr_match(out: &mut Vec<Expr>, net: &IpNet, v4_offset: u32, v6_offset: u32) {
    let (offset, addr, mask) = match net {
        IpNet::V4(n) => (
            v4_offset,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
        IpNet::V6(n) => (
            v6_offset,
            n.network().octets().to_vec(),
            n.netmask().octets().to_vec(),
        ),
    };
    out.push(payload(PAYLOAD_NETWORK, offset, addr.len() as u32));
    if mask.iter().any(|b| *b != 0xff) {
        out.push(bitwise(mask));
    }
    out.push(cmp(CMP_EQ, addr));
}

fn port_match(out: &mut Vec<Expr>, offset: u32, p: Ports) {
    out.push(payload(PAYLOAD_TRANSPORT, offset, 2));
    if p.low == p.high {
        out.push(cmp(CMP_EQ, p.low.to_be_bytes().to_vec()));
    } else {
        out.push(range(
            RANGE_EQ,
            p.low.to_be_bytes().to_vec(),
            p.high.to_be_bytes().to_vec(),
        ));
    }
}

fn lower_match(out: &mut Vec<Expr>, m: &Match) {
    match m {
        Match::NfProto(f) => {
            out.push(meta(META_NFPROTO));
            let v = match f {
                Family::V4 => NFPROTO_IPV4,
                Family::V6 => NFPROTO_IPV6,
            };
            out.push(cmp(CMP_EQ, vec![v]));
        }
        Match::L4Proto(p) => {
            out.push(meta(META_L4PROTO));
            out.push(cmp(CMP_EQ, vec![p.number()]));
        }
        Match::Iif(d) => {
            out.push(meta(META_IIFNAME));
            out.push(cmp(CMP_EQ, ifname(d)));
        }
        Match::Oif(d) => {
            out.push(meta(META_OIFNAME));
            out.push(cmp(CMP_EQ, ifname(d)));
        }
        Match::Saddr(n) => addr_match(out, n, 12, 8),
        Match::Daddr(n) => addr_match(out, n, 16, 24),
        Match::Sport(p) => port_match(out, 0, *p),
        Match::Dport(p) => port_match(out, 2, *p),
        Match::IcmpType(_, t) => {
            out.push(payload(PAYLOAD_TRANSPORT, 0, 1));
            out.push(cmp(CMP_EQ, vec![*t]));
        }
        Match::CtState(bits) | Match::CtStatus(bits) => {
            let key = if matches!(m, Match::CtState(_)) {
                CT_STATE
            } else {
                CT_STATUS
            };
            out.push(ct(key));
            out.push(bitwise(bits.to_ne_bytes().to_vec()));
            out.push(cmp(CMP_NEQ, vec![0; 4]));
        }
        Match::TcpFlags { mask, value } => {
            out.push(payload(PAYLOAD_TRANSPORT, 13, 1));
            out.push(bitwise(vec![*mask]));
            out.push(cmp(CMP_EQ, vec![*value]));
        }
        Match::Day(lo, hi) => {
            out.push(meta(META_TIME_DAY));
            if lo == hi {
                out.push(cmp(CMP_EQ, vec![*lo]));
            } else {
                out.push(range(RANGE_EQ, vec![*lo], vec![*hi]));
            }
        }
        Match::Hour(w) => {
            let (from, to, inverted) = w.utc();
            out.push(meta(META_TIME_HOUR));
            out.push(byteorder_hton(4));
            let op = if inverted { RANGE_NEQ } else { RANGE_EQ };
            out.push(range(
                op,
                from.to_be_bytes().to_vec(),
                to.to_be_bytes().to_vec(),
            ));
        }
    }
}

fn lower_stmt(out: &mut Vec<Expr>, s: &Stmt) -> Result<(), LowerError> {
    match s {
        Stmt::Limit {
            rate,
            per_secs,
            burst,
        } => out.push(e(
            "limit",
            vec![
                (sys::NFTNL_EXPR_LIMIT_RATE, Value::U64(*rate)),
                (sys::NFTNL_EXPR_LIMIT_UNIT, Value::U64(*per_secs)),
                (sys::NFTNL_EXPR_LIMIT_BURST, Value::U32(*burst)),
                (sys::NFTNL_EXPR_LIMIT_TYPE, Value::U32(LIMIT_PKTS)),
                (sys::NFTNL_EXPR_LIMIT_FLAGS, Value::U32(0)),
            ],
        )),
        Stmt::Counter => out.push(e("counter", vec![])),
        Stmt::Log(prefix) => out.push(e(
            "log",
            vec![(sys::NFTNL_EXPR_LOG_PREFIX, Value::Str(cstring(prefix)?))],
        )),
        Stmt::ClampMss => {
            out.push(e(
                "rt",
                vec![
                    (sys::NFTNL_EXPR_RT_KEY, Value::U32(RT_TCPMSS)),
                    (sys::NFTNL_EXPR_RT_DREG, Value::U32(REG_1)),
                ],
            ));
            out.push(byteorder_hton(2));
            out.push(e(
                "exthdr",
                vec![
                    (sys::NFTNL_EXPR_EXTHDR_SREG, Value::U32(REG_1)),
                    (sys::NFTNL_EXPR_EXTHDR_TYPE, Value::U8(TCPOPT_MAXSEG)),
                    (sys::NFTNL_EXPR_EXTHDR_OFFSET, Value::U32(2)),
                    (sys::NFTNL_EXPR_EXTHDR_LEN, Value::U32(2)),
                    (sys::NFTNL_EXPR_EXTHDR_OP, Value::U32(EXTHDR_OP_TCPOPT)),
                ],
            ));
        }
    }
    Ok(())
}

fn lower_verdict(out: &mut Vec<Expr>, v: &Verdict) -> Result<(), LowerError> {
    match v {
        Verdict::Accept => out.push(verdict_code(NF_ACCEPT, None)),
        Verdict::Drop => out.push(verdict_code(NF_DROP, None)),
        Verdict::Return => out.push(verdict_code(NFT_RETURN as u32, None)),
        Verdict::Jump(c) => out.push(verdict_code(NFT_JUMP as u32, Some(cstring(c)?))),
        Verdict::RejectTcpReset | Verdict::RejectIcmpx => {
            let (ty, code) = if *v == Verdict::RejectTcpReset {
                (REJECT_TCP_RST, 0)
            } else {
                (REJECT_ICMPX_UNREACH, ICMPX_PORT_UNREACH)
            };
            out.push(e(
                "reject",
                vec![
                    (sys::NFTNL_EXPR_REJECT_TYPE, Value::U32(ty)),
                    (sys::NFTNL_EXPR_REJECT_CODE, Value::U8(code)),
                ],
            ));
        }
        Verdict::Masquerade => out.push(e("masq", vec![])),
        Verdict::Dnat(addr, port) => {
            out.push(immediate_data(REG_1, addr.octets().to_vec()));
            let mut attrs = vec![
                (sys::NFTNL_EXPR_NAT_TYPE, Value::U32(NAT_DNAT)),
                (
                    sys::NFTNL_EXPR_NAT_FAMILY,
                    Value::U32(u32::from(NFPROTO_IPV4)),
                ),
                (sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, Value::U32(REG_1)),
                (sys::NFTNL_EXPR_NAT_REG_ADDR_MAX, Value::U32(REG_1)),
            ];
            let mut flags = NAT_MAP_IPS;
            if let Some(p) = port {
                out.push(immediate_data(REG_2, p.to_be_bytes().to_vec()));
                attrs.push((sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, Value::U32(REG_2)));
                attrs.push((sys::NFTNL_EXPR_NAT_REG_PROTO_MAX, Value::U32(REG_2)));
                flags |= NAT_PROTO_SPECIFIED;
            }
            attrs.push((sys::NFTNL_EXPR_NAT_FLAGS, Value::U32(flags)));
            out.push(e("nat", attrs));
        }
    }
    Ok(())
}

/// The expressions of a rule, in order: matches, statements, verdict.
pub fn rule(r: &Rule) -> Result<Vec<Expr>, LowerError> {
    let mut out = Vec::new();
    for m in &r.matches {
        if let Match::Iif(d) | Match::Oif(d) = m {
            cstring(d)?;
        }
        lower_match(&mut out, m);
    }
    for s in &r.stmts {
        lower_stmt(&mut out, s)?;
    }
    if let Some(v) = &r.verdict {
        lower_verdict(&mut out, v)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames_are_padded_to_sixteen_bytes() {
        assert_eq!(ifname("eth0").len(), 16);
        assert_eq!(&ifname("eth0")[..4], b"eth0");
    }

    #[test]
    fn a_port_range_is_a_range_in_network_order() {
        let mut out = Vec::new();
        lower_match(
            &mut out,
            &Match::Dport(Ports {
                low: 1024,
                high: 65535,
            }),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, "range");
        assert_eq!(
            out[1].attrs[2].1,
            Value::Data(vec![0x04, 0x00]),
            "1024 big-endian"
        );
    }

    #[test]
    fn a_host_address_needs_no_mask_and_a_prefix_does() {
        let mut out = Vec::new();
        lower_match(&mut out, &Match::Saddr("10.0.0.1/32".parse().expect("net")));
        assert_eq!(
            out.iter().map(|e| e.name).collect::<Vec<_>>(),
            ["payload", "cmp"]
        );
        out.clear();
        lower_match(&mut out, &Match::Daddr("fd00::/8".parse().expect("net")));
        assert_eq!(
            out.iter().map(|e| e.name).collect::<Vec<_>>(),
            ["payload", "bitwise", "cmp"]
        );
    }

    #[test]
    fn dnat_with_a_port_uses_two_registers() {
        let r = Rule::new(
            vec![],
            Verdict::Dnat("10.0.0.2".parse().expect("ip"), Some(80)),
        );
        let exprs = rule(&r).expect("lower");
        assert_eq!(
            exprs.iter().map(|e| e.name).collect::<Vec<_>>(),
            ["immediate", "immediate", "nat"]
        );
    }

    #[test]
    fn a_nul_in_a_name_is_an_error() {
        let r = Rule::new(vec![Match::Iif("a\0b".into())], Verdict::Accept);
        assert!(rule(&r).is_err());
    }
}
