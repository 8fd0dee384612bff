//! Answers on the wire. An [`Answer`] is a whole response message without
//! id or OPT record (its records walked once when it is made); the cache
//! keeps it as it is, and [`render`] makes the reply for one client: its
//! id, flags and question case, TTLs minus the time spent in the cache,
//! EDNS(0) when the client used it, and truncation (TC, records dropped)
//! when the reply does not fit the client's limit.

use hickory_proto::op::Message;

use crate::query::{HEADER_LEN, OUR_UDP_SIZE, Query};

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// hickory-proto could not encode a message.
    #[error("encode: {0}")]
    Encode(String),
    /// An encoded message does not walk (a record runs past the end).
    #[error("malformed message at byte {0}")]
    Walk(usize),
}

/// Response codes dnsd uses.
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// Bad EDNS version (extended).
    pub const BADVERS: u16 = 16;
}

/// A response without id and OPT record, ready to be rendered for any
/// client that asked the same question. `B` holds the bytes: an answer
/// just made owns them; the cache lends its own copy
/// ([`Answer::stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<B = Vec<u8>> {
    bytes: B,
}

impl Answer {
    /// Encodes `msg` (its id, EDNS and signature are dropped).
    pub fn from_message(mut msg: Message) -> Result<Self, WireError> {
        msg.metadata.id = 0;
        msg.edns = None;
        msg.signature = None;
        let bytes = msg.to_vec().map_err(|e| WireError::Encode(e.to_string()))?;
        walk_ttls(&bytes, |_| {})?;
        Ok(Self { bytes })
    }
}

impl<'a> Answer<&'a [u8]> {
    /// The answer whose [`Answer::bytes`] these are: only for bytes copied
    /// from an answer (which walked when it was made).
    pub fn stored(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl<B: AsRef<[u8]>> Answer<B> {
    /// Its encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Its response code (the header's four bits).
    pub fn rcode(&self) -> u16 {
        u16::from(self.bytes().get(3).copied().unwrap_or(0) & 0x0F)
    }

    /// Number of records it holds.
    pub fn records(&self) -> usize {
        let count = |at| usize::from(u16_at(self.bytes(), at).unwrap_or(0));
        count(6) + count(8) + count(10)
    }

    /// Its question section as a cache key: see [`question_section`].
    pub fn question(&self) -> &[u8] {
        question_section(self.bytes())
    }

    /// Its encoded size.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether it is empty (never, for an encoded message).
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

/// The question section of a message as a cache key: the wire name,
/// type and class (empty when it has no question).
pub fn question_section(msg: &[u8]) -> &[u8] {
    crate::query::question(msg)
        .and_then(|(.., end)| msg.get(HEADER_LEN..end))
        .unwrap_or(&[])
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn skip_name(b: &[u8], mut pos: usize) -> Result<usize, WireError> {
    loop {
        let len = *b.get(pos).ok_or(WireError::Walk(pos))?;
        match len & 0xC0 {
            0 if len == 0 => return Ok(pos + 1),
            0 => pos += 1 + usize::from(len),
            0xC0 => return Ok(pos + 2),
            _ => return Err(WireError::Walk(pos)),
        }
    }
}

/// Calls `f` with the offset of the TTL of every record in `b`; fails
/// when a record runs past the end.
fn walk_ttls(b: &[u8], mut f: impl FnMut(usize)) -> Result<(), WireError> {
    let count = |at| u16_at(b, at).map(usize::from).ok_or(WireError::Walk(at));
    let (qd, rr) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(b, pos)? + 4;
    }
    for _ in 0..rr {
        pos = skip_name(b, pos)?;
        let rdlen = usize::from(u16_at(b, pos + 8).ok_or(WireError::Walk(pos))?);
        f(pos + 4);
        pos += 10 + rdlen;
    }
    if pos > b.len() {
        return Err(WireError::Walk(pos));
    }
    Ok(())
}

/// Appends our OPT record (payload [`OUR_UDP_SIZE`]) and counts it.
fn push_opt(out: &mut Vec<u8>, ext_rcode: u8, dnssec_ok: bool) {
    let flags: u16 = if dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&OUR_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0]);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let ar = u16_at(out, 10).unwrap_or(0).saturating_add(1);
    out[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Sets the reply flags for `q`: QR, `q`'s opcode and RD and CD, RA;
/// keeps AA; `rcode`'s low four bits.
fn set_flags(out: &mut [u8], q: &Query, rcode: u16, truncated: bool) {
    let aa = out[2] & 0x04;
    out[0..2].copy_from_slice(&q.id.to_be_bytes());
    out[2] =
        0x80 | ((q.opcode & 0x0F) << 3) | aa | if truncated { 0x02 } else { 0 } | u8::from(q.rd);
    out[3] = 0x80 | if q.cd { 0x10 } else { 0 } | (rcode & 0x0F) as u8;
}

/// The header and question of a reply to `q`, no records.
fn bare(q: &Query) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + q.qname.len() + 4 + 11);
    out.extend_from_slice(&[0; HEADER_LEN]);
    out[5] = 1;
    out.extend_from_slice(&q.qname);
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    out
}

/// A reply to `q` with no records and response code `rcode` (an
/// extended one such as BADVERS goes into the OPT record).
pub fn error_reply(q: &Query, rcode: u16) -> Vec<u8> {
    let mut out = bare(q);
    set_flags(&mut out, q, rcode, false);
    if let Some(e) = q.edns {
        push_opt(&mut out, (rcode >> 4) as u8, e.dnssec_ok);
    }
    out
}

/// The reply to `q` from `answer`, which was stored `elapsed` seconds
/// ago, for a transport that carries at most `limit` bytes. An answer
/// to another question (a different name length) gives SERVFAIL.
pub fn render<B: AsRef<[u8]>>(
    answer: &Answer<B>,
    q: &Query,
    elapsed: u32,
    limit: usize,
) -> Vec<u8> {
    let qend = HEADER_LEN + q.qname.len();
    let bytes = answer.bytes();
    let same = bytes
        .get(HEADER_LEN..qend)
        .is_some_and(|n| n.eq_ignore_ascii_case(&q.qname));
    if !same {
        return error_reply(q, rcode::SERVFAIL);
    }
    let mut out = Vec::with_capacity(bytes.len() + 11);
    out.extend_from_slice(bytes);
    out[HEADER_LEN..qend].copy_from_slice(&q.qname);
    if elapsed > 0 {
        // The bytes walked when the answer was made: this cannot fail.
        let _ = walk_ttls(bytes, |at| {
            if let Some(field) = out.get_mut(at..at + 4) {
                let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                field.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
            }
        });
    }
    let rcode = answer.rcode();
    set_flags(&mut out, q, rcode, false);
    let opt_len = if q.edns.is_some() { 11 } else { 0 };
    if out.len() + opt_len > limit {
        out = bare(q);
        out[2] = bytes[2] & 0x04;
        set_flags(&mut out, q, rcode, true);
    }
    if let Some(e) = q.edns {
        push_opt(&mut out, 0, e.dnssec_ok);
    }
    out
}

/// dnsd's query to an upstream for `key`: id `id`, RD, EDNS(0) with our
/// payload size, DO clear.
pub fn upstream_query(id: u16, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + key.len() + 11);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(key);
    push_opt(&mut out, 0, false);
    out
}

/// Is `resp` the answer to our query `id` for `key`: a response with
/// that id and the same question (any case)? Anything else from the
/// upstream's address (a spoofing attempt, a late answer) is ignored.
pub fn matches(resp: &[u8], id: u16, key: &[u8]) -> bool {
    let Some((name, qtype, qclass, _)) = crate::query::question(resp) else {
        return false;
    };
    let qd = u16_at(resp, 4);
    resp[2] & 0x80 != 0
        && u16_at(resp, 0) == Some(id)
        && qd == Some(1)
        && crate::query::key_of(name, qtype, qclass)[..] == key[..]
}

/// Whether the truncation bit of a response is set.
pub fn truncated(resp: &[u8]) -> bool {
    resp.get(2).is_some_and(|b| b & 0x02 != 0)
}

/// The response code of a response (header bits only).
pub fn response_rcode(resp: &[u8]) -> u16 {
    u16::from(resp.get(3).copied().unwrap_or(0) & 0x0F)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::{Name, RData, Record, rdata::A};

    use super::*;
    use crate::query::parse_query;
    use crate::query::tests::query_bytes;

    fn answer(name: &str, n: usize, ttl: u32) -> Answer {
        let mut m = Message::new(0, MessageType::Response, OpCode::Query);
        let owner = Name::from_str(name).expect("name");
        m.add_query(hickory_proto::op::Query::query(owner.clone(), 1.into()));
        for i in 0..n {
            let a = Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8);
            m.add_answer(Record::from_rdata(owner.clone(), ttl, RData::A(A(a))));
        }
        Answer::from_message(m).expect("answer")
    }

    #[test]
    fn render_sets_id_case_flags_and_decrements_ttls() {
        let a = answer("host.example.", 2, 300);
        assert_eq!(a.records(), 2);
        let q = parse_query(&query_bytes(0xBEEF, "HOST.example", 1, None)).expect("q");
        let out = render(&a, &q, 100, 512);
        let m = Message::from_vec(&out).expect("decode");
        assert_eq!(m.metadata.id, 0xBEEF);
        assert!(m.metadata.recursion_available && m.metadata.recursion_desired);
        assert!(!m.metadata.truncation);
        assert_eq!(m.queries[0].name().to_ascii(), "HOST.example.");
        assert!(m.answers.iter().all(|r| r.ttl == 200));
        assert!(m.edns.is_none());
        // Expired past zero stays zero.
        let m = Message::from_vec(&render(&a, &q, 1000, 512)).expect("decode");
        assert!(m.answers.iter().all(|r| r.ttl == 0));
    }

    #[test]
    fn too_big_for_the_client_is_truncated_and_edns_echoed() {
        let a = answer("big.example.", 60, 60);
        assert!(a.len() > 512);
        let plain = parse_query(&query_bytes(1, "big.example", 1, None)).expect("q");
        let out = render(&a, &plain, 0, plain.udp_limit());
        let m = Message::from_vec(&out).expect("decode");
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let edns = parse_query(&query_bytes(2, "big.example", 1, Some(4096))).expect("q");
        let out = render(&a, &edns, 0, edns.udp_limit());
        let m = Message::from_vec(&out).expect("decode");
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 60);
        assert_eq!(m.edns.map(|e| e.max_payload()), Some(OUR_UDP_SIZE));
        // Over TCP everything fits.
        assert_eq!(render(&a, &plain, 0, 65535).len(), a.len());
    }

    #[test]
    fn an_answer_for_another_name_is_not_rendered() {
        let a = answer("one.example.", 1, 60);
        let q = parse_query(&query_bytes(1, "three.example", 1, None)).expect("q");
        let m = Message::from_vec(&render(&a, &q, 0, 512)).expect("decode");
        assert_eq!(u16::from(m.metadata.response_code), rcode::SERVFAIL);
    }

    #[test]
    fn badvers_goes_into_the_opt_record() {
        let mut bytes = query_bytes(1, "a.b", 1, Some(1232));
        let at = bytes.len() - 5; // version byte of the OPT TTL
        bytes[at] = 1;
        let q = parse_query(&bytes).expect("q");
        let m = Message::from_vec(&error_reply(&q, rcode::BADVERS)).expect("decode");
        assert_eq!(u16::from(m.metadata.response_code), rcode::BADVERS);
    }

    #[test]
    fn upstream_query_matches_only_its_answer() {
        let key = crate::query::key_of(b"\x01a\x01b\x00", 1, 1);
        let q = upstream_query(42, &key);
        let parsed = parse_query(&q).expect("our query parses");
        assert_eq!(parsed.key(), key);
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert!(matches(&resp, 42, &key));
        assert!(!matches(&resp, 43, &key));
        assert!(!matches(&q, 42, &key), "a query is no answer");
        let other = crate::query::key_of(b"\x01a\x01c\x00", 1, 1);
        assert!(!matches(&resp, 42, &other));
    }
}
