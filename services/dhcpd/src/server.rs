//! The RFC 2131 decision for one message received on one network.
//!
//! `Server::handle` takes the datagram's bytes, the network it came in on
//! and the time, and returns what to do, in order: `Record` every change
//! to a lease (a grant *before* the `Send` of its ACK: the I/O layer makes
//! a batch of changes durable with one fsync, then sends their ACKs), and
//! `Send` replies addressed as a value.
//! A message the server does not answer is an `Err` whose text is the
//! reason for the debug log.

use std::net::Ipv4Addr;

use dhcproto::Encodable;
use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode, UnknownOption};

use crate::leases::{Lease, LeaseError, Leases, Mac, mac_string};
use crate::packet::{self, ClientMessage, PacketError, Request};
use crate::pool::{Pool, PoolError};

/// How long an offered address stays reserved for its client.
const OFFER_SECS: u64 = 60;
/// How long a declined address is kept out of the pool.
pub const QUARANTINE_SECS: u64 = 600;

/// Why a message gets no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    /// The datagram is not a client message.
    #[error(transparent)]
    Parse(#[from] PacketError),
    /// No pool serves the network the message came in on.
    #[error("find pool: no DHCP pool on network {network}")]
    Network {
        /// The network.
        network: String,
    },
    /// No pool's subnet holds the relay's address.
    #[error("find pool: no DHCP pool for relay {giaddr}")]
    Relay {
        /// The relay agent's address.
        giaddr: Ipv4Addr,
    },
    /// The message is meant for another server (option 54).
    #[error("check server id: {server} is another server")]
    Server {
        /// The server the client named.
        server: Ipv4Addr,
    },
    /// A REQUEST or DECLINE without the address it is about.
    #[error("read request: no address (neither ciaddr nor option 50)")]
    Address,
    /// No address to offer.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The lease table refused a grant it should have allowed.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// RELEASE or DECLINE of an address the client does not hold.
    #[error("find lease: {ip} is not leased to this client")]
    NoLease {
        /// The address.
        ip: Ipv4Addr,
    },
    /// The reply could not be encoded.
    #[error("encode reply: {0}")]
    Encode(String),
}

/// The kind of reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK (to a REQUEST or an INFORM).
    Ack,
    /// DHCPNAK.
    Nak,
}

/// Where a reply goes (RFC 2131 4.1), always out of the network's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255, port 68.
    Broadcast,
    /// The client's own address (`ciaddr`), port 68.
    Unicast(Ipv4Addr),
    /// The relay agent (`giaddr`), port 67.
    Relay(Ipv4Addr),
    /// `ip`, port 68, delivered to `mac` without ARP (the client has no
    /// address yet and did not ask for a broadcast).
    Hardware {
        /// The client's hardware address.
        mac: Mac,
        /// The address offered or acknowledged (`yiaddr`).
        ip: Ipv4Addr,
    },
}

/// A reply ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What it is.
    pub kind: ReplyKind,
    /// The network it answers on.
    pub network: String,
    /// The device to send it from.
    pub device: String,
    /// The router's address on the network (the source address).
    pub server: Ipv4Addr,
    /// Where to.
    pub to: Destination,
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A client got an address it did not hold.
    Granted,
    /// A client extended the lease on the address it holds.
    Renewed,
    /// The client gave the address back (DHCPRELEASE).
    Released,
    /// The client found the address in use (DHCPDECLINE).
    Declined,
    /// The lease ran out.
    Expired,
}

impl Event {
    /// Whether the lease holds after the event (a grant or renewal).
    pub fn holds(self) -> bool {
        matches!(self, Event::Granted | Event::Renewed)
    }

    /// The name on the bus (`granted`, `renewed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Granted => "granted",
            Event::Renewed => "renewed",
            Event::Released => "released",
            Event::Declined => "declined",
            Event::Expired => "expired",
        }
    }
}

/// A change to the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub event: Event,
    /// The lease, as it is now (or was, for an end).
    pub lease: Lease,
}

/// One step for the I/O layer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make this change durable (journal + fsync) before any later `Send`.
    Record(Change),
    /// Send a reply.
    Send(Reply),
}

/// The server's decisions and the state they need.
#[derive(Debug, Clone)]
pub struct Server {
    pools: Vec<Pool>,
    leases: Leases,
}

impl Server {
    /// A server with `pools` and the leases restored from the journal.
    pub fn new(pools: Vec<Pool>, leases: Leases) -> Self {
        Self { pools, leases }
    }

    /// Replaces the pools (a config change); leases are kept.
    pub fn set_pools(&mut self, pools: Vec<Pool>) {
        self.pools = pools;
    }

    /// The pools.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The lease table.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Takes back leases from a backup: each one whose address its pool
    /// would still give that client at `now` (its static address, or a
    /// free one of the range), unless the client holds a lease on that
    /// network already (the live one wins). Returns the grants, and the
    /// leases left out with why.
    pub fn restore(&mut self, leases: Vec<Lease>, now: u64) -> (Vec<Change>, Vec<String>) {
        let (mut changes, mut skipped) = (Vec::new(), Vec::new());
        for lease in leases {
            let why = if lease.expires <= now {
                Some("expired")
            } else if self
                .leases
                .by_mac(&lease.network, &lease.mac)
                .is_some_and(|l| l.expires > now)
            {
                Some("the client holds a lease there now")
            } else if !self.pools.iter().any(|p| {
                p.network() == lease.network && p.available(lease.ip, &lease.mac, &self.leases, now)
            }) {
                Some("no pool would give it that address now")
            } else {
                None
            };
            match why {
                Some(why) => skipped.push(format!(
                    "{} {} on {}: {why}",
                    mac_string(&lease.mac),
                    lease.ip,
                    lease.network
                )),
                None => {
                    self.leases.insert(lease.clone());
                    changes.push(Change {
                        event: Event::Granted,
                        lease,
                    });
                }
            }
        }
        (changes, skipped)
    }

    /// Ends the leases that ran out by `now` and returns them.
    pub fn expire(&mut self, now: u64) -> Vec<Change> {
        self.leases
            .expire(now)
            .into_iter()
            .map(|lease| Change {
                event: Event::Expired,
                lease,
            })
            .collect()
    }

    /// Decides on one datagram received on `network` at `now`.
    pub fn handle(
        &mut self,
        network: &str,
        bytes: &[u8],
        now: u64,
    ) -> Result<Vec<Action>, ServerError> {
        let req = packet::parse(bytes)?;
        let pool = if req.giaddr.is_unspecified() {
            self.pools
                .iter()
                .find(|p| p.network() == network)
                .ok_or_else(|| ServerError::Network {
                    network: network.to_string(),
                })?
        } else {
            self.pools
                .iter()
                .find(|p| p.subnet.contains(&req.giaddr))
                .ok_or(ServerError::Relay { giaddr: req.giaddr })?
        };
        let leases = &mut self.leases;
        match req.kind {
            ClientMessage::Discover => discover(pool, leases, &req, now),
            ClientMessage::Request => request(pool, leases, &req, now),
            ClientMessage::Release => release(pool, leases, &req),
            ClientMessage::Decline => decline(pool, leases, &req, now),
            ClientMessage::Inform => Ok(vec![Action::Send(reply(
                pool,
                &req,
                ReplyKind::Ack,
                Ipv4Addr::UNSPECIFIED,
                false,
            )?)]),
        }
    }
}

fn discover(
    pool: &Pool,
    leases: &mut Leases,
    req: &Request,
    now: u64,
) -> Result<Vec<Action>, ServerError> {
    let previous = leases.by_mac(pool.network(), &req.mac).map(|l| l.ip);
    let preferred: Vec<Ipv4Addr> = previous.into_iter().chain(req.requested).collect();
    let ip = pool.select(&req.mac, &preferred, leases, now)?;
    leases.reserve(ip, req.mac, now.saturating_add(OFFER_SECS));
    Ok(vec![Action::Send(reply(
        pool,
        req,
        ReplyKind::Offer,
        ip,
        true,
    )?)])
}

/// REQUEST in every state (RFC 2131 4.3.2): SELECTING names a server and
/// requests an address; INIT-REBOOT requests one without a server;
/// RENEWING and REBINDING carry it in `ciaddr`.
fn request(
    pool: &Pool,
    leases: &mut Leases,
    req: &Request,
    now: u64,
) -> Result<Vec<Action>, ServerError> {
    if let Some(server) = req.server
        && server != pool.server
    {
        // The client chose another server: free what we offered.
        leases.unreserve(&req.mac);
        return Err(ServerError::Server { server });
    }
    let ip = match (req.server, req.requested) {
        (Some(_), requested) => requested.ok_or(ServerError::Address)?,
        (None, _) if !req.ciaddr.is_unspecified() => req.ciaddr,
        (None, requested) => requested.ok_or(ServerError::Address)?,
    };
    // Authoritative: an address from the wrong subnet, one that is
    // another client's, or outside what this client may have, is NAKed.
    // A client we have no record of (a lost lease database) keeps its
    // address when it is free.
    if !pool.subnet.contains(&ip) || !pool.available(ip, &req.mac, leases, now) {
        return Ok(vec![Action::Send(reply(
            pool,
            req,
            ReplyKind::Nak,
            ip,
            false,
        )?)]);
    }
    let previous = leases.by_mac(pool.network(), &req.mac);
    let event = if previous.is_some_and(|l| l.ip == ip) {
        Event::Renewed
    } else {
        Event::Granted
    };
    let hostname = pool
        .static_of(&req.mac)
        .and_then(|s| s.hostname.clone())
        .or_else(|| req.hostname.clone())
        .or_else(|| previous.and_then(|l| l.hostname.clone()));
    let lease = Lease {
        mac: req.mac,
        ip,
        hostname,
        expires: now.saturating_add(u64::from(pool.config.lease_secs)),
        network: pool.network().to_string(),
    };
    leases.grant(lease.clone(), now)?;
    let ack = reply(pool, req, ReplyKind::Ack, ip, true)?;
    Ok(vec![
        Action::Record(Change { event, lease }),
        Action::Send(ack),
    ])
}

fn check_server(pool: &Pool, req: &Request) -> Result<(), ServerError> {
    match req.server {
        Some(server) if server != pool.server => Err(ServerError::Server { server }),
        _ => Ok(()),
    }
}

fn release(pool: &Pool, leases: &mut Leases, req: &Request) -> Result<Vec<Action>, ServerError> {
    check_server(pool, req)?;
    leases.unreserve(&req.mac);
    let lease = leases
        .release(pool.network(), &req.mac, req.ciaddr)
        .ok_or(ServerError::NoLease { ip: req.ciaddr })?;
    Ok(vec![Action::Record(Change {
        event: Event::Released,
        lease,
    })])
}

fn decline(
    pool: &Pool,
    leases: &mut Leases,
    req: &Request,
    now: u64,
) -> Result<Vec<Action>, ServerError> {
    check_server(pool, req)?;
    let ip = req.requested.ok_or(ServerError::Address)?;
    // Only the holder can decline, so a spoofed DECLINE cannot empty the
    // pool of addresses others hold; a static address is never withheld.
    let lease = leases
        .release(pool.network(), &req.mac, ip)
        .ok_or(ServerError::NoLease { ip })?;
    if pool.static_of(&req.mac).is_none() {
        leases.quarantine(ip, now.saturating_add(QUARANTINE_SECS));
    }
    Ok(vec![Action::Record(Change {
        event: Event::Declined,
        lease,
    })])
}

/// The options of an OFFER or ACK, from the pool.
fn pool_options(m: &mut Message, pool: &Pool, with_lease: bool) {
    let c = &pool.config;
    let opts = m.opts_mut();
    opts.insert(DhcpOption::SubnetMask(pool.subnet.netmask()));
    opts.insert(DhcpOption::Router(vec![c.router]));
    if !c.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(c.dns.clone()));
    }
    if !c.domain.is_empty() {
        opts.insert(DhcpOption::DomainName(c.domain.clone()));
    }
    if !c.ntp.is_empty() {
        opts.insert(DhcpOption::NtpServers(c.ntp.clone()));
    }
    if let Some(mtu) = c.mtu {
        opts.insert(DhcpOption::InterfaceMtu(mtu));
    }
    if !c.classless_routes.is_empty() {
        opts.insert(DhcpOption::ClasslessStaticRoute(c.classless_routes.clone()));
    }
    if with_lease {
        let secs = c.lease_secs;
        let t1 = u32::try_from(u64::from(secs) / 2).unwrap_or(u32::MAX);
        let t2 = u32::try_from(u64::from(secs) * 7 / 8).unwrap_or(u32::MAX);
        opts.insert(DhcpOption::AddressLeaseTime(secs));
        opts.insert(DhcpOption::Renewal(t1));
        opts.insert(DhcpOption::Rebinding(t2));
    }
    for (code, data) in &c.raw_options {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::from(*code),
            data.clone(),
        )));
    }
}

/// Builds the reply and where it goes (RFC 2131 4.1 and table 3).
fn reply(
    pool: &Pool,
    req: &Request,
    kind: ReplyKind,
    yiaddr: Ipv4Addr,
    with_lease: bool,
) -> Result<Reply, ServerError> {
    let relayed = !req.giaddr.is_unspecified();
    let mut flags = req.message.flags();
    if kind == ReplyKind::Nak && relayed {
        // The relay must broadcast a NAK: the client's address is wrong.
        flags = flags.set_broadcast();
    }
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(req.xid)
        .set_flags(flags)
        .set_giaddr(req.giaddr)
        .set_chaddr(&req.mac);
    let msg_type = match kind {
        ReplyKind::Offer => MessageType::Offer,
        ReplyKind::Ack => MessageType::Ack,
        ReplyKind::Nak => MessageType::Nak,
    };
    m.opts_mut().insert(DhcpOption::MessageType(msg_type));
    m.opts_mut()
        .insert(DhcpOption::ServerIdentifier(pool.server));
    if kind != ReplyKind::Nak {
        m.set_yiaddr(yiaddr);
        if kind == ReplyKind::Ack {
            m.set_ciaddr(req.ciaddr);
        }
        pool_options(&mut m, pool, with_lease);
    }
    let bytes = m.to_vec().map_err(|e| ServerError::Encode(e.to_string()))?;
    let to = if relayed {
        Destination::Relay(req.giaddr)
    } else if kind == ReplyKind::Nak {
        Destination::Broadcast
    } else if !req.ciaddr.is_unspecified() {
        Destination::Unicast(req.ciaddr)
    } else if req.broadcast || yiaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::Hardware {
            mac: req.mac,
            ip: yiaddr,
        }
    };
    Ok(Reply {
        kind,
        network: pool.network().to_string(),
        device: pool.device.clone(),
        server: pool.server,
        to,
        bytes,
    })
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
