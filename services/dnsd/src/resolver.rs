//! The decision for each query, as plain code: parse it, answer it
//! locally (local names, blocked names, the cache) or say it must be
//! forwarded; and turn an upstream's response into a cached [`Answer`],
//! with rebind protection. No sockets here: [`crate::server`] moves the
//! bytes.
//!
//! Rebind protection answers **REFUSED** (and caches nothing) when an
//! upstream's answer for a name outside the local names and outside
//! `rebind_allow` holds a private, loopback, link-local or unspecified
//! address. Carrier-grade NAT space (100.64.0.0/10) is not private here:
//! ISPs hand it out as public.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bus_schema::config::model::BlockResponse;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::BinDecodable;

use crate::blocklist::Blocklist;
use crate::cache::{Cache, CacheStats};
use crate::query::{Key, Query, QueryError, parse_query};
use crate::wire::{self, Answer, rcode};
use crate::zone::{Found, Zone, qtype, under};

/// TTL of local and blocked answers, and the local SOA's minimum.
pub const LOCAL_TTL: u32 = 60;
/// Longest time a positive answer is cached.
pub const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer is cached (RFC 2308 §5 suggests one to
/// three hours).
pub const MAX_NEGATIVE_TTL: u32 = 3_600;

/// Why an upstream's response gives no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// It does not decode.
    #[error("undecodable upstream response: {0}")]
    Decode(String),
    /// It is an error other than NXDOMAIN.
    #[error("upstream answered {0}")]
    Upstream(u16),
    /// Rebind protection dropped it.
    #[error("rebind protection: private address in the answer for {0}")]
    Rebind(String),
    /// It could not be stored.
    #[error("{0}")]
    Wire(#[from] wire::WireError),
}

impl ResolveError {
    /// The response code the client gets.
    pub fn rcode(&self) -> u16 {
        match self {
            Self::Rebind(_) => rcode::REFUSED,
            _ => rcode::SERVFAIL,
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Ask an upstream (the cache had nothing).
    Forward(Query),
    /// Say nothing: it was no query dnsd answers.
    Drop(QueryError),
}

/// Answering policy from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Rebind protection on.
    pub rebind_protection: bool,
    /// Domains exempt from it.
    pub rebind_allow: Vec<String>,
    /// Answer for blocked names.
    pub block_response: BlockResponse,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rebind_protection: true,
            rebind_allow: Vec::new(),
            block_response: BlockResponse::Nxdomain,
        }
    }
}

/// Is `ip` an address no public name should resolve to?
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.octets()[0] == 0 || v4.is_private() || v4.is_loopback() || v4.is_link_local()
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_loopback()
                || (seg & 0xFE00) == 0xFC00
                || (seg & 0xFFC0) == 0xFE80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// The resolver's state: local names, blocklist, policy and cache.
#[derive(Debug)]
pub struct Resolver {
    zone: Zone,
    blocklist: Arc<Blocklist>,
    policy: Policy,
    cache: Cache,
}

fn name_of(q: &Query) -> Name {
    Name::from_bytes(&q.qname).unwrap_or_else(|_| Name::root())
}

fn fqdn(text: &str) -> Name {
    Name::from_str(&format!("{text}.")).unwrap_or_else(|_| Name::root())
}

impl Resolver {
    /// A resolver with no names, nothing blocked and a cache of
    /// `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            zone: Zone::default(),
            blocklist: Arc::default(),
            policy: Policy::default(),
            cache: Cache::new(capacity),
        }
    }

    /// Replaces the local names.
    pub fn set_zone(&mut self, zone: Zone) {
        self.zone = zone;
    }

    /// Replaces the blocklist.
    pub fn set_blocklist(&mut self, blocklist: Arc<Blocklist>) {
        self.blocklist = blocklist;
    }

    /// Replaces the policy and the cache's capacity.
    pub fn set_policy(&mut self, policy: Policy, capacity: usize) {
        self.policy = policy;
        self.cache.set_capacity(capacity);
    }

    /// Empties the cache; returns how many entries it held.
    pub fn flush(&mut self) -> u64 {
        self.cache.flush()
    }

    /// The cache's statistics.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// What to do with `packet`, which arrived on the router's address
    /// `local` over TCP or UDP.
    pub fn decide(&mut self, packet: &[u8], local: IpAddr, tcp: bool, now: Instant) -> Step {
        let q = match parse_query(packet) {
            Ok(q) => q,
            Err(e) => return Step::Drop(e),
        };
        let limit = if tcp {
            usize::from(u16::MAX)
        } else {
            q.udp_limit()
        };
        let refuse = |code| Step::Reply(wire::error_reply(&q, code));
        if q.opcode != 0 {
            return refuse(rcode::NOTIMP);
        }
        if q.edns.is_some_and(|e| e.version != 0) {
            return refuse(rcode::BADVERS);
        }
        // Only class IN; no zone transfers.
        if q.qclass != 1 || matches!(q.qtype, 251 | 252) {
            return refuse(rcode::REFUSED);
        }
        let local_answer = self.zone.lookup(&q.name, q.qtype, local);
        let msg = match local_answer {
            Some(found) => Some(self.local_message(&q, found)),
            None if self.blocklist.blocks(&q.name) => Some(self.blocked_message(&q)),
            None => None,
        };
        if let Some(msg) = msg {
            return match Answer::from_message(msg) {
                Ok(a) => Step::Reply(wire::render(&a, &q, 0, limit)),
                Err(_) => refuse(rcode::SERVFAIL),
            };
        }
        match self.cache.get(&q.key(), now) {
            Some((answer, age)) => Step::Reply(wire::render(&answer, &q, age, limit)),
            None => Step::Forward(q),
        }
    }

    fn soa(&self) -> Record {
        let domain = fqdn(self.zone.domain());
        let soa = SOA::new(
            fqdn(&format!("ns.{}", self.zone.domain())),
            fqdn(&format!("hostmaster.{}", self.zone.domain())),
            1,
            3600,
            600,
            86_400,
            LOCAL_TTL,
        );
        Record::from_rdata(domain, LOCAL_TTL, RData::SOA(soa))
    }

    fn local_message(&self, q: &Query, found: Found) -> Message {
        let mut m = Message::response(0, OpCode::Query);
        m.metadata.authoritative = true;
        let owner = name_of(q);
        m.add_query(hickory_proto::op::Query::query(
            owner.clone(),
            q.qtype.into(),
        ));
        let in_domain = under(&q.name, self.zone.domain()) || !q.name.contains('.');
        match found {
            Found::Addresses(addrs) if addrs.is_empty() => {
                if in_domain {
                    m.add_authority(self.soa());
                }
            }
            Found::Addresses(addrs) => {
                for a in addrs {
                    let data = match a {
                        IpAddr::V4(v4) => RData::A(A(v4)),
                        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                    };
                    m.add_answer(Record::from_rdata(owner.clone(), LOCAL_TTL, data));
                }
            }
            Found::Ptr(host) => {
                let data = RData::PTR(PTR(fqdn(&host)));
                m.add_answer(Record::from_rdata(owner, LOCAL_TTL, data));
            }
            Found::Soa => {
                m.add_answer(self.soa());
            }
            Found::NxDomain => {
                m.metadata.response_code = ResponseCode::NXDomain;
                if in_domain {
                    m.add_authority(self.soa());
                }
            }
        }
        m
    }

    fn blocked_message(&self, q: &Query) -> Message {
        let mut m = Message::response(0, OpCode::Query);
        let owner = name_of(q);
        m.add_query(hickory_proto::op::Query::query(
            owner.clone(),
            q.qtype.into(),
        ));
        match (self.policy.block_response, q.qtype) {
            (BlockResponse::Nxdomain, _) => m.metadata.response_code = ResponseCode::NXDomain,
            (BlockResponse::Zero, qtype::A) => {
                let data = RData::A(A::new(0, 0, 0, 0));
                m.add_answer(Record::from_rdata(owner, LOCAL_TTL, data));
            }
            (BlockResponse::Zero, qtype::AAAA) => {
                let data = RData::AAAA(AAAA(std::net::Ipv6Addr::UNSPECIFIED));
                m.add_answer(Record::from_rdata(owner, LOCAL_TTL, data));
            }
            (BlockResponse::Zero, _) => {}
        }
        m
    }

    fn rebind_exempt(&self, name: &str) -> bool {
        !self.policy.rebind_protection
            || self.zone.is_local(name)
            || self.policy.rebind_allow.iter().any(|d| under(name, d))
    }

    /// Turns an upstream's response to the question `key` (for `name`,
    /// lower-case) into an answer, and caches it: positive answers for
    /// their smallest TTL (at most [`MAX_TTL`]), NXDOMAIN and NODATA for
    /// their SOA's negative TTL (RFC 2308; at most
    /// [`MAX_NEGATIVE_TTL`]; not at all without an SOA).
    pub fn complete(
        &mut self,
        key: &Key,
        name: &str,
        response: &[u8],
        now: Instant,
    ) -> Result<Answer, ResolveError> {
        let mut msg =
            Message::from_vec(response).map_err(|e| ResolveError::Decode(e.to_string()))?;
        let code = u16::from(msg.metadata.response_code);
        if code != rcode::NOERROR && code != rcode::NXDOMAIN {
            return Err(ResolveError::Upstream(code));
        }
        if !self.rebind_exempt(name) {
            let private = msg.answers.iter().any(|r| match &r.data {
                RData::A(a) => is_private(IpAddr::V4(a.0)),
                RData::AAAA(a) => is_private(IpAddr::V6(a.0)),
                _ => false,
            });
            if private {
                return Err(ResolveError::Rebind(name.to_string()));
            }
        }
        msg.metadata.authoritative = false;
        msg.metadata.authentic_data = false;
        for r in msg
            .answers
            .iter_mut()
            .chain(&mut msg.authorities)
            .chain(&mut msg.additionals)
        {
            r.ttl = r.ttl.min(MAX_TTL);
        }
        let negative = code == rcode::NXDOMAIN || msg.answers.is_empty();
        let ttl = if negative {
            let soa = msg.authorities.iter_mut().find_map(|r| {
                let minimum = match &r.data {
                    RData::SOA(soa) => soa.minimum,
                    _ => return None,
                };
                r.ttl = r.ttl.min(minimum).min(MAX_NEGATIVE_TTL);
                Some(r.ttl)
            });
            soa.unwrap_or(0)
        } else {
            msg.answers
                .iter()
                .chain(&msg.authorities)
                .chain(&msg.additionals)
                .map(|r| r.ttl)
                .min()
                .unwrap_or(0)
        };
        let answer = Answer::from_message(msg)?;
        self.cache.insert(key, &answer, ttl, now);
        Ok(answer)
    }
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
