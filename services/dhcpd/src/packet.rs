//! Client messages as the server reads them, on top of `dhcproto`.
//!
//! The options are walked here first, as TLVs, before dhcproto sees the
//! message: only the options the server reads are kept, each with the
//! length its type needs. dhcproto 0.15 debug-asserts on some hostile
//! option lengths (a panic in debug builds), so nothing else reaches it.

use std::net::Ipv4Addr;

use dhcproto::Decodable;
use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode};

use crate::leases::Mac;

/// Why a datagram is not a client message the server acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the fixed header plus the magic cookie.
    #[error("parse message: truncated ({0} bytes)")]
    Truncated(usize),
    /// Longer than any UDP payload.
    #[error("parse message: too long ({0} bytes)")]
    TooLong(usize),
    /// The magic cookie is wrong.
    #[error("parse message: bad magic cookie")]
    Magic,
    /// An option runs past the end, or has the wrong length for its type.
    #[error("parse message: bad option {code}")]
    Option {
        /// The option code.
        code: u8,
    },
    /// dhcproto refused the (filtered) message.
    #[error("parse message: {0}")]
    Decode(String),
    /// A reply (BOOTREPLY), not a request.
    #[error("parse message: wrong op (not BOOTREQUEST)")]
    Op,
    /// Not Ethernet (htype 1, hlen 6).
    #[error("parse message: hardware type {htype} length {hlen} (only Ethernet)")]
    Hardware {
        /// htype.
        htype: u8,
        /// hlen.
        hlen: u8,
    },
    /// No option 53.
    #[error("parse message: no message type")]
    NoType,
    /// A message type clients do not send to servers.
    #[error("parse message: message type {0} is not a client message")]
    Type(u8),
}

/// The client message types the server acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// DHCPDISCOVER.
    Discover,
    /// DHCPREQUEST.
    Request,
    /// DHCPDECLINE.
    Decline,
    /// DHCPRELEASE.
    Release,
    /// DHCPINFORM.
    Inform,
}

/// A client message, with what the server decides on.
#[derive(Debug, Clone)]
pub struct Request {
    /// Message type.
    pub kind: ClientMessage,
    /// The client's hardware address.
    pub mac: Mac,
    /// `xid`.
    pub xid: u32,
    /// The BROADCAST flag.
    pub broadcast: bool,
    /// `ciaddr` (unspecified when zero).
    pub ciaddr: Ipv4Addr,
    /// `giaddr`: the relay agent (unspecified when direct).
    pub giaddr: Ipv4Addr,
    /// Option 50.
    pub requested: Option<Ipv4Addr>,
    /// Option 54.
    pub server: Option<Ipv4Addr>,
    /// Option 12, when it is a usable host name.
    pub hostname: Option<String>,
    /// The decoded message, for building the reply.
    pub message: Message,
}

/// The fixed part of a message before the magic cookie.
const HEADER_LEN: usize = 236;
/// Upper bound of a datagram worth reading (a UDP payload).
const MAX_LEN: usize = 65_507;

/// The options read, with their required length (`None`: any).
fn wanted(code: u8) -> Option<Option<usize>> {
    match code {
        12 => Some(None),              // host name
        50 | 51 | 54 => Some(Some(4)), // requested, lease time, server id
        53 => Some(Some(1)),           // message type
        55 | 61 => Some(None),         // parameter list, client id
        _ => None,
    }
}

/// `bytes` with only the options the server reads.
fn essentials(bytes: &[u8]) -> Result<Vec<u8>, PacketError> {
    if bytes.len() > MAX_LEN {
        return Err(PacketError::TooLong(bytes.len()));
    }
    let (head, rest) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or(PacketError::Truncated(bytes.len()))?;
    let (magic, mut opts) = rest
        .split_at_checked(4)
        .ok_or(PacketError::Truncated(bytes.len()))?;
    if magic != dhcproto::v4::MAGIC {
        return Err(PacketError::Magic);
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(head);
    out.extend_from_slice(magic);
    let mut seen = [false; 256];
    loop {
        match opts {
            [] | [255, ..] => break,
            [0, tail @ ..] => opts = tail,
            [code, len, tail @ ..] => {
                let (value, tail) = tail
                    .split_at_checked(usize::from(*len))
                    .ok_or(PacketError::Option { code: *code })?;
                if let Some(need) = wanted(*code) {
                    if need.is_some_and(|n| n != value.len()) {
                        return Err(PacketError::Option { code: *code });
                    }
                    // A repeated option would be concatenated (RFC 3396);
                    // the server keeps the first.
                    if !seen[usize::from(*code)] {
                        seen[usize::from(*code)] = true;
                        out.extend_from_slice(&[*code, *len]);
                        out.extend_from_slice(value);
                    }
                }
                opts = tail;
            }
            [code] => return Err(PacketError::Option { code: *code }),
        }
    }
    out.push(255);
    Ok(out)
}

/// A host name worth keeping with the lease: 1 to 63 letters, digits,
/// `-` or `_`. dnsd publishes it under the local domain only when it is
/// also a valid host name (no `_`, no `-` at either end).
fn hostname(raw: &str) -> Option<String> {
    // A client that sends a dotted name gets its first label.
    let name = raw
        .trim_end_matches('\0')
        .split('.')
        .next()
        .unwrap_or_default();
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| name.to_ascii_lowercase())
}

/// Reads `bytes` as a client message.
pub fn parse(bytes: &[u8]) -> Result<Request, PacketError> {
    let m =
        Message::from_bytes(&essentials(bytes)?).map_err(|e| PacketError::Decode(e.to_string()))?;
    if m.opcode() != Opcode::BootRequest {
        return Err(PacketError::Op);
    }
    // `chaddr()` slices by the untrusted `hlen`: check it first.
    if m.htype() != HType::Eth || m.hlen() != 6 {
        return Err(PacketError::Hardware {
            htype: m.htype().into(),
            hlen: m.hlen(),
        });
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(m.chaddr().get(..6).ok_or(PacketError::Hardware {
        htype: 1,
        hlen: m.hlen(),
    })?);
    let opts = m.opts();
    let kind = match opts.msg_type().ok_or(PacketError::NoType)? {
        MessageType::Discover => ClientMessage::Discover,
        MessageType::Request => ClientMessage::Request,
        MessageType::Decline => ClientMessage::Decline,
        MessageType::Release => ClientMessage::Release,
        MessageType::Inform => ClientMessage::Inform,
        other => return Err(PacketError::Type(u8::from(other))),
    };
    let mut req = Request {
        kind,
        mac,
        xid: m.xid(),
        broadcast: m.flags().broadcast(),
        ciaddr: m.ciaddr(),
        giaddr: m.giaddr(),
        requested: None,
        server: None,
        hostname: None,
        message: m.clone(),
    };
    for (_, opt) in opts.iter() {
        match opt {
            DhcpOption::RequestedIpAddress(ip) => req.requested = Some(*ip),
            DhcpOption::ServerIdentifier(ip) => req.server = Some(*ip),
            DhcpOption::Hostname(h) => req.hostname = hostname(h),
            _ => {}
        }
    }
    Ok(req)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use dhcproto::Encodable;
    use dhcproto::v4::Flags;

    pub(crate) const MAC: Mac = [2, 0, 0, 0, 0, 1];

    /// A client message of `kind` from `mac`.
    pub(crate) fn client(kind: MessageType, mac: &Mac) -> Message {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_xid(0x1234)
            .set_chaddr(mac);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    pub(crate) fn bytes(m: &Message) -> Vec<u8> {
        m.to_vec().expect("encode")
    }

    #[test]
    fn reads_a_discover() {
        let mut m = client(MessageType::Discover, &MAC);
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut().insert(DhcpOption::Hostname("Laptop-1".into()));
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 11)));
        let r = parse(&bytes(&m)).expect("parse");
        assert_eq!(r.kind, ClientMessage::Discover);
        assert_eq!(r.mac, MAC);
        assert!(r.broadcast);
        assert_eq!(r.hostname.as_deref(), Some("laptop-1"));
        assert_eq!(r.requested, Some(Ipv4Addr::new(10, 0, 0, 11)));
    }

    #[test]
    fn refuses_malformed_messages() {
        let good = bytes(&client(MessageType::Discover, &MAC));
        assert!(matches!(
            parse(&good[..100]),
            Err(PacketError::Truncated(100))
        ));
        let mut bad_magic = good.clone();
        bad_magic[236] = 0;
        assert_eq!(parse(&bad_magic).err(), Some(PacketError::Magic));
        let mut reply = good.clone();
        reply[0] = 2;
        assert_eq!(parse(&reply).err(), Some(PacketError::Op));
        let mut hlen = good.clone();
        hlen[2] = 200;
        assert!(matches!(parse(&hlen), Err(PacketError::Hardware { .. })));
        // An option whose length runs past the end.
        let mut long = good[..240].to_vec();
        long.extend_from_slice(&[53, 1, 1, 12, 250, b'a']);
        assert_eq!(parse(&long).err(), Some(PacketError::Option { code: 12 }));
        // A server id of the wrong length (dhcproto would assert).
        let mut short = good[..240].to_vec();
        short.extend_from_slice(&[53, 1, 3, 54, 2, 1, 2, 255]);
        assert_eq!(parse(&short).err(), Some(PacketError::Option { code: 54 }));
        // A subnet mask of length 0: not read, so never decoded.
        let mut ignored = good[..240].to_vec();
        ignored.extend_from_slice(&[53, 1, 1, 1, 0, 255]);
        assert!(parse(&ignored).is_ok());
        let offer = bytes(&client(MessageType::Offer, &MAC));
        assert_eq!(parse(&offer).err(), Some(PacketError::Type(2)));
        let mut none = good[..240].to_vec();
        none.push(255);
        assert_eq!(parse(&none).err(), Some(PacketError::NoType));
    }

    #[test]
    fn drops_unusable_hostnames() {
        assert_eq!(hostname("ok-name\0"), Some("ok-name".into()));
        assert_eq!(hostname("host.example"), Some("host".into()));
        assert_eq!(hostname("evil name"), None);
        assert_eq!(hostname(""), None);
        assert_eq!(hostname(&"a".repeat(64)), None);
    }
}
