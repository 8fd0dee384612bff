//! DHCPv4 messages as the client sends and reads them, on top of
//! `dhcproto`: building DISCOVER, REQUEST and RELEASE, and reading a reply
//! into the few fields the client acts on. Anything that is not a
//! well-formed reply addressed to our hardware address reads as `None`.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use ipnet::Ipv4Net;

/// Who the client is on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The device's hardware address (chaddr).
    pub mac: [u8; 6],
    /// Option 12, when set (and not empty).
    pub hostname: Option<String>,
    /// Option 60, when set (and not empty).
    pub vendor_class: Option<String>,
}

/// The addresses a REQUEST carries, which differ by state (RFC 2131,
/// table 4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestFields {
    /// `ciaddr`: our address while RENEWING or REBINDING.
    pub ciaddr: Option<Ipv4Addr>,
    /// Option 50: the address asked for while SELECTING or INIT-REBOOT.
    pub requested: Option<Ipv4Addr>,
    /// Option 54: the chosen server while SELECTING.
    pub server: Option<Ipv4Addr>,
}

/// What a server's reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    Offer,
    Ack,
    Nak,
}

/// A reply addressed to us, with the fields the client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub kind: ReplyKind,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    pub server: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    pub t1_secs: Option<u32>,
    pub t2_secs: Option<u32>,
}

const PARAMETERS: [OptionCode; 9] = [
    OptionCode::SubnetMask,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::DomainName,
    OptionCode::BroadcastAddr,
    OptionCode::AddressLeaseTime,
    OptionCode::ServerIdentifier,
    OptionCode::Renewal,
    OptionCode::Rebinding,
];

fn base(id: &Identity, xid: u32, secs: u16, kind: MessageType) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_htype(HType::Eth)
        .set_xid(xid)
        .set_secs(secs)
        .set_chaddr(&id.mac);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}

fn identify(m: &mut Message, id: &Identity) {
    let opts = m.opts_mut();
    if let Some(h) = id.hostname.as_ref().filter(|h| !h.is_empty()) {
        opts.insert(DhcpOption::Hostname(h.clone()));
    }
    if let Some(v) = id.vendor_class.as_ref().filter(|v| !v.is_empty()) {
        opts.insert(DhcpOption::ClassIdentifier(v.as_bytes().to_vec()));
    }
    opts.insert(DhcpOption::ParameterRequestList(PARAMETERS.to_vec()));
}

fn encode(m: &Message) -> Vec<u8> {
    match m.to_vec() {
        Ok(bytes) => bytes,
        Err(e) => {
            // Only oversized options could fail, and dhcproto splits those;
            // an empty datagram is dropped by the runner.
            tracing::error!("encode dhcp message: {e}");
            Vec::new()
        }
    }
}

/// DHCPDISCOVER, asking servers to broadcast their reply (we have no
/// address yet).
pub(crate) fn discover(id: &Identity, xid: u32, secs: u16) -> Vec<u8> {
    let mut m = base(id, xid, secs, MessageType::Discover);
    m.set_flags(Flags::default().set_broadcast());
    identify(&mut m, id);
    encode(&m)
}

/// DHCPREQUEST. Without `ciaddr` (SELECTING, INIT-REBOOT) the BROADCAST
/// flag is set, since we cannot receive unicast yet.
pub(crate) fn request(id: &Identity, xid: u32, secs: u16, fields: RequestFields) -> Vec<u8> {
    let mut m = base(id, xid, secs, MessageType::Request);
    match fields.ciaddr {
        Some(ciaddr) => {
            m.set_ciaddr(ciaddr);
        }
        None => {
            m.set_flags(Flags::default().set_broadcast());
        }
    }
    if let Some(ip) = fields.requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    }
    if let Some(server) = fields.server {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    }
    identify(&mut m, id);
    encode(&m)
}

/// DHCPRELEASE of `address`, to `server`.
pub(crate) fn release(id: &Identity, xid: u32, address: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut m = base(id, xid, 0, MessageType::Release);
    m.set_ciaddr(address);
    m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
    encode(&m)
}

/// The fixed part of a message before the magic cookie.
const HEADER_LEN: usize = 236;
/// The options the client reads; the rest are dropped before decoding.
const READ: [u8; 8] = [1, 3, 6, 51, 53, 54, 58, 59];

/// `bytes` with only the options the client reads, or `None` when the
/// options are not well-formed TLVs. dhcproto's decoders of some other
/// options assert on their length (a panic in debug builds), so hostile
/// options never reach them.
fn essentials(bytes: &[u8]) -> Option<Vec<u8>> {
    let (head, rest) = bytes.split_at_checked(HEADER_LEN)?;
    let (magic, mut opts) = rest.split_at_checked(4)?;
    if magic != dhcproto::v4::MAGIC {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(head);
    out.extend_from_slice(magic);
    loop {
        match opts {
            [] | [255, ..] => break,
            [0, tail @ ..] => opts = tail,
            [code, len, tail @ ..] => {
                let (value, tail) = tail.split_at_checked(usize::from(*len))?;
                if READ.contains(code) {
                    out.extend_from_slice(&[*code, *len]);
                    out.extend_from_slice(value);
                }
                opts = tail;
            }
            [_] => return None,
        }
    }
    out.push(255);
    Some(out)
}

/// Reads `bytes` as a reply to the client with hardware address `mac`.
/// Garbage, requests, other clients' replies and message types the client
/// does not act on are `None`.
pub(crate) fn parse(bytes: &[u8], mac: &[u8; 6]) -> Option<Reply> {
    let m = Message::from_bytes(&essentials(bytes)?).ok()?;
    // `chaddr()` slices by the untrusted `hlen`: check it first.
    if m.opcode() != Opcode::BootReply || usize::from(m.hlen()) != mac.len() {
        return None;
    }
    if m.chaddr() != mac {
        return None;
    }
    let opts = m.opts();
    let kind = match opts.msg_type()? {
        MessageType::Offer => ReplyKind::Offer,
        MessageType::Ack => ReplyKind::Ack,
        MessageType::Nak => ReplyKind::Nak,
        _ => return None,
    };
    let mut reply = Reply {
        kind,
        xid: m.xid(),
        yiaddr: m.yiaddr(),
        server: None,
        prefix: None,
        router: None,
        dns: Vec::new(),
        lease_secs: None,
        t1_secs: None,
        t2_secs: None,
    };
    for (_, opt) in opts.iter() {
        match opt {
            DhcpOption::ServerIdentifier(s) => reply.server = Some(*s),
            DhcpOption::SubnetMask(mask) => {
                reply.prefix = Ipv4Net::with_netmask(Ipv4Addr::UNSPECIFIED, *mask)
                    .ok()
                    .map(|n| n.prefix_len())
            }
            DhcpOption::Router(r) => reply.router = r.first().copied(),
            DhcpOption::DomainNameServer(d) => reply.dns = d.clone(),
            DhcpOption::AddressLeaseTime(t) => reply.lease_secs = Some(*t),
            DhcpOption::Renewal(t) => reply.t1_secs = Some(*t),
            DhcpOption::Rebinding(t) => reply.t2_secs = Some(*t),
            _ => {}
        }
    }
    Some(reply)
}

/// Whether `ip` can be a host's unicast address.
pub(crate) fn usable(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

/// The classful prefix of `ip`, for a server that sends no mask.
pub(crate) fn classful_prefix(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    pub(crate) fn identity() -> Identity {
        Identity {
            mac: MAC,
            hostname: Some("oxwrt".into()),
            vendor_class: Some("oxwrt-test".into()),
        }
    }

    /// A server's reply, as bytes.
    pub(crate) fn reply(kind: MessageType, xid: u32, yiaddr: Ipv4Addr, mac: &[u8]) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootReply)
            .set_xid(xid)
            .set_yiaddr(yiaddr)
            .set_chaddr(mac);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    pub(crate) fn decode(bytes: &[u8]) -> Message {
        Message::from_bytes(bytes).expect("decodes")
    }

    #[test]
    fn discover_carries_identity_and_broadcast_flag() {
        let m = decode(&discover(&identity(), 7, 3));
        assert_eq!(m.opcode(), Opcode::BootRequest);
        assert_eq!((m.xid(), m.secs()), (7, 3));
        assert_eq!(m.chaddr(), &MAC);
        assert!(m.flags().broadcast());
        assert_eq!(m.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(
            m.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("oxwrt".into()))
        );
        assert_eq!(
            m.opts().get(OptionCode::ClassIdentifier),
            Some(&DhcpOption::ClassIdentifier(b"oxwrt-test".to_vec()))
        );
    }

    #[test]
    fn empty_identity_options_are_left_out() {
        let id = Identity {
            mac: MAC,
            hostname: Some(String::new()),
            vendor_class: None,
        };
        let m = decode(&discover(&id, 1, 0));
        assert!(!m.opts().contains(OptionCode::Hostname));
        assert!(!m.opts().contains(OptionCode::ClassIdentifier));
    }

    #[test]
    fn request_fields_by_state() {
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        let server = Ipv4Addr::new(192, 0, 2, 1);
        let selecting = decode(&request(
            &identity(),
            1,
            0,
            RequestFields {
                requested: Some(ip),
                server: Some(server),
                ciaddr: None,
            },
        ));
        assert!(selecting.flags().broadcast());
        assert_eq!(selecting.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            selecting.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(ip))
        );
        assert_eq!(
            selecting.opts().get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(server))
        );
        let renewing = decode(&request(
            &identity(),
            1,
            0,
            RequestFields {
                ciaddr: Some(ip),
                ..Default::default()
            },
        ));
        assert!(!renewing.flags().broadcast());
        assert_eq!(renewing.ciaddr(), ip);
        assert!(!renewing.opts().contains(OptionCode::RequestedIpAddress));
        assert!(!renewing.opts().contains(OptionCode::ServerIdentifier));
        let rel = decode(&release(&identity(), 9, ip, server));
        assert_eq!(rel.opts().msg_type(), Some(MessageType::Release));
        assert_eq!(rel.ciaddr(), ip);
    }

    #[test]
    fn parses_a_reply_and_its_options() {
        let mut m = reply(MessageType::Ack, 5, Ipv4Addr::new(10, 1, 2, 3), &MAC);
        let opts = m.opts_mut();
        opts.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 1, 2, 1)));
        opts.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        opts.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 1, 2, 254)]));
        opts.insert(DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(9, 9, 9, 9),
            Ipv4Addr::new(1, 1, 1, 1),
        ]));
        opts.insert(DhcpOption::AddressLeaseTime(600));
        opts.insert(DhcpOption::Renewal(100));
        let r = parse(&m.to_vec().expect("encode"), &MAC).expect("a reply to us");
        assert_eq!(r.kind, ReplyKind::Ack);
        assert_eq!(r.xid, 5);
        assert_eq!(r.prefix, Some(24));
        assert_eq!(r.router, Some(Ipv4Addr::new(10, 1, 2, 254)));
        assert_eq!(r.dns.len(), 2);
        assert_eq!(
            (r.lease_secs, r.t1_secs, r.t2_secs),
            (Some(600), Some(100), None)
        );
    }

    #[test]
    fn ignores_what_is_not_a_reply_to_us() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let other = [0x02, 0, 0, 0, 0, 0x99];
        let theirs = reply(MessageType::Ack, 1, ip, &other);
        assert_eq!(parse(&theirs.to_vec().expect("enc"), &MAC), None);
        let request = decode(&discover(&identity(), 1, 0));
        assert_eq!(parse(&request.to_vec().expect("enc"), &MAC), None);
        let inform = reply(MessageType::Inform, 1, ip, &MAC);
        assert_eq!(parse(&inform.to_vec().expect("enc"), &MAC), None);
        // A hostile hlen beyond chaddr's 16 bytes.
        let mut bytes = reply(MessageType::Ack, 1, ip, &MAC).to_vec().expect("enc");
        bytes[2] = 200;
        assert_eq!(parse(&bytes, &MAC), None);
    }

    #[test]
    fn garbage_never_panics() {
        let good = {
            let mut m = reply(MessageType::Offer, 1, Ipv4Addr::new(10, 0, 0, 2), &MAC);
            m.opts_mut()
                .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
            m.opts_mut()
                .insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                    10, 0, 0, 1,
                )]));
            m.to_vec().expect("enc")
        };
        for len in 0..good.len() {
            let _ = parse(&good[..len], &MAC);
        }
        // Deterministic pseudo-random bytes and bit flips of a good packet.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Options whose dhcproto decoders assert on their length
        // (ClientNetworkInterface, BLQ base time, client FQDN, BLQ status).
        assert_eq!(good.last(), Some(&255), "options end the message");
        for (code, len) in [(94u8, 1u8), (152, 2), (81, 1), (151, 0), (80, 3)] {
            let mut bytes = good[..good.len() - 1].to_vec();
            bytes.extend_from_slice(&[code, len]);
            bytes.extend(std::iter::repeat_n(7, usize::from(len)));
            bytes.push(255);
            assert!(parse(&bytes, &MAC).is_some(), "option {code} dropped");
        }
        for _ in 0..5000 {
            let len = (next() % 600) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = parse(&junk, &MAC);
            let mut flipped = good.clone();
            for _ in 0..4 {
                let i = (next() as usize) % flipped.len();
                flipped[i] = next() as u8;
            }
            let _ = parse(&flipped, &MAC);
        }
    }
}
