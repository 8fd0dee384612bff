//! Queries from clients: parsed defensively (the fuzz target's entry
//! point is [`parse_query`]). The whole message is decoded by
//! `hickory-proto` (so a query with a bad record anywhere is refused);
//! the question is also kept as the client sent it, so answers echo its
//! case, and as a lower-case key for the cache.

use hickory_proto::op::{Message, MessageType, OpCode};

/// Largest UDP answer dnsd sends, and the size it advertises (EDNS(0)):
/// 1232 bytes, the DNS flag day 2020 figure that avoids IP fragmentation.
pub const OUR_UDP_SIZE: u16 = 1232;
/// UDP answer limit for a client without EDNS (RFC 1035).
pub const CLASSIC_UDP_SIZE: u16 = 512;
/// DNS header length.
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;

/// Errors of [`parse_query`]: why a datagram is not a query dnsd answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Shorter than a header.
    #[error("shorter than a DNS header ({0} bytes)")]
    Short(usize),
    /// A response (QR set): never answered, so two servers cannot loop.
    #[error("a response, not a query")]
    Response,
    /// Not decodable as a DNS message.
    #[error("decode: {0}")]
    Decode(String),
    /// Not exactly one question.
    #[error("{0} questions (one expected)")]
    Questions(usize),
    /// The question's name is compressed or too long.
    #[error("question name is compressed or longer than 255 bytes")]
    Name,
}

/// The client's EDNS(0) record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEdns {
    /// Its UDP payload size.
    pub payload: u16,
    /// Its EDNS version (only 0 is answered; others get BADVERS).
    pub version: u8,
    /// The DNSSEC OK bit, echoed in the answer (RFC 3225).
    pub dnssec_ok: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message id.
    pub id: u16,
    /// Operation (only `QUERY` is answered; others get NOTIMP).
    pub opcode: u8,
    /// Recursion desired.
    pub rd: bool,
    /// Checking disabled.
    pub cd: bool,
    /// The question's name as sent (wire form, uncompressed).
    pub qname: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// The name, lower-case, dotted, without the final dot (`""` is the
    /// root); bytes outside letters, digits, `-` and `_` are escaped as
    /// `\DDD`, so such a name matches no configured one.
    pub name: String,
    /// EDNS(0), when the client sent it.
    pub edns: Option<ClientEdns>,
}

/// The cache and coalescing key of a question: its lower-case wire name,
/// type and class.
pub type Key = Box<[u8]>;

impl Query {
    /// This question's cache key.
    pub fn key(&self) -> Key {
        key_of(&self.qname, self.qtype, self.qclass)
    }

    /// Largest answer that fits this client over UDP: its EDNS payload
    /// size (at least 512, at most [`OUR_UDP_SIZE`]), else 512.
    pub fn udp_limit(&self) -> usize {
        let size = match self.edns {
            Some(e) => e.payload.clamp(CLASSIC_UDP_SIZE, OUR_UDP_SIZE),
            None => CLASSIC_UDP_SIZE,
        };
        usize::from(size)
    }
}

/// The key for a wire name (any case), type and class.
pub fn key_of(qname: &[u8], qtype: u16, qclass: u16) -> Key {
    // Length bytes are at most 63, below `A`: lowering every byte only
    // lowers the labels' letters.
    let mut key = qname.to_ascii_lowercase();
    key.extend_from_slice(&qtype.to_be_bytes());
    key.extend_from_slice(&qclass.to_be_bytes());
    key.into_boxed_slice()
}

/// The question at the start of a message: its wire name (uncompressed),
/// type, class, and the offset after it. `None` when the name is
/// compressed, too long, or runs past the end.
pub fn question(msg: &[u8]) -> Option<(&[u8], u16, u16, usize)> {
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*msg.get(pos)?);
        if len & 0xC0 != 0 {
            return None;
        }
        pos += 1 + len;
        if pos - HEADER_LEN > MAX_NAME {
            return None;
        }
        if len == 0 {
            break;
        }
    }
    let name = msg.get(HEADER_LEN..pos)?;
    let rest = msg.get(pos..pos + 4)?;
    let qtype = u16::from_be_bytes([rest[0], rest[1]]);
    let qclass = u16::from_be_bytes([rest[2], rest[3]]);
    Some((name, qtype, qclass, pos + 4))
}

/// A wire name as lower-case dotted text without the final dot.
pub fn name_text(wire: &[u8]) -> String {
    let mut out = String::with_capacity(wire.len());
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len)).unwrap_or(&[]);
        if !out.is_empty() {
            out.push('.');
        }
        for &b in label {
            let b = b.to_ascii_lowercase();
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        pos += 1 + usize::from(len);
    }
    out
}

/// Parses a client's datagram (or TCP message) into a [`Query`]. Never
/// panics, whatever the bytes.
pub fn parse_query(msg: &[u8]) -> Result<Query, QueryError> {
    if msg.len() < HEADER_LEN {
        return Err(QueryError::Short(msg.len()));
    }
    if msg[2] & 0x80 != 0 {
        return Err(QueryError::Response);
    }
    let decoded = Message::from_vec(msg).map_err(|e| QueryError::Decode(e.to_string()))?;
    if decoded.metadata.message_type != MessageType::Query {
        return Err(QueryError::Response);
    }
    if decoded.queries.len() != 1 {
        return Err(QueryError::Questions(decoded.queries.len()));
    }
    let (qname, qtype, qclass, _) = question(msg).ok_or(QueryError::Name)?;
    let opcode = match decoded.metadata.op_code {
        OpCode::Query => 0,
        OpCode::Status => 2,
        OpCode::Notify => 4,
        OpCode::Update => 5,
        OpCode::Unknown(n) => n,
    };
    let edns = decoded.edns.as_ref().map(|e| ClientEdns {
        payload: e.max_payload(),
        version: e.version(),
        dnssec_ok: e.flags().dnssec_ok,
    });
    Ok(Query {
        id: decoded.metadata.id,
        opcode,
        rd: decoded.metadata.recursion_desired,
        cd: decoded.metadata.checking_disabled,
        qname: qname.to_vec(),
        qtype,
        qclass,
        name: name_text(qname),
        edns,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query for `name` (dotted) of type `qtype`, optionally with EDNS.
    pub(crate) fn query_bytes(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = vec![0u8; 12];
        m[0..2].copy_from_slice(&id.to_be_bytes());
        m[2] = 0x01; // RD
        m[5] = 1;
        m[11] = u8::from(edns.is_some());
        for label in name.split('.').filter(|l| !l.is_empty()) {
            m.push(u8::try_from(label.len()).expect("label"));
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if let Some(size) = edns {
            m.extend_from_slice(&[0, 0, 41]);
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn parses_a_query_with_edns() {
        let q = parse_query(&query_bytes(7, "WWW.Example.org", 1, Some(4096))).expect("query");
        assert_eq!(q.id, 7);
        assert!(q.rd);
        assert_eq!(q.name, "www.example.org");
        assert_eq!(&q.qname[..4], b"\x03WWW");
        assert_eq!(q.edns.map(|e| e.payload), Some(4096));
        assert_eq!(q.udp_limit(), 1232);
        assert_eq!(&q.key()[..4], b"\x03www");
    }

    #[test]
    fn without_edns_the_limit_is_512() {
        let q = parse_query(&query_bytes(1, "a.b", 28, None)).expect("query");
        assert_eq!(q.udp_limit(), 512);
        assert_eq!(q.edns, None);
    }

    #[test]
    fn refuses_responses_short_and_garbage() {
        let mut r = query_bytes(1, "a.b", 1, None);
        r[2] |= 0x80;
        assert_eq!(parse_query(&r), Err(QueryError::Response));
        assert_eq!(parse_query(&[0; 5]), Err(QueryError::Short(5)));
        let mut cut = query_bytes(1, "a.b", 1, None);
        cut.truncate(cut.len() - 3);
        assert!(matches!(parse_query(&cut), Err(QueryError::Decode(_))));
        let mut none = query_bytes(1, "a.b", 1, None);
        none[5] = 0;
        none.truncate(12);
        assert_eq!(parse_query(&none), Err(QueryError::Questions(0)));
    }

    #[test]
    fn odd_bytes_are_escaped_in_the_name() {
        assert_eq!(name_text(b"\x03a.b\x01C\x00"), "a\\046b.c");
        assert_eq!(name_text(b"\x00"), "");
    }
}
