//! Netlink framing in safe Rust: walking the messages of a buffer, their
//! attributes, and the one request fwd builds by hand (a rule dump).

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ERROR`: an ACK or an error.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 1;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 17;
/// `NFNL_SUBSYS_NFTABLES << 8`.
pub const NFT_SUBSYS: u16 = 10 << 8;
/// `NFT_MSG_GETRULE`.
pub const NFT_MSG_GETRULE: u16 = 7;
/// `NFPROTO_INET`.
pub const NFPROTO_INET: u8 = 1;
/// `NLA_TYPE_MASK`: attribute type without the nested/byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The whole message, header included.
    pub raw: &'a [u8],
}

impl<'a> Message<'a> {
    /// The payload after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.raw[NLMSG_HDRLEN..]
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of a buffer; stops at the first malformed one.
pub fn messages(buf: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = u32_at(buf, at) {
        let len = len as usize;
        let (Some(kind), Some(flags), Some(seq)) = (
            u16_at(buf, at + 4),
            u16_at(buf, at + 6),
            u32_at(buf, at + 8),
        ) else {
            break;
        };
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        out.push(Message {
            kind,
            flags,
            seq,
            raw: &buf[at..at + len],
        });
        at += align4(len);
    }
    out
}

/// The error code of an `NLMSG_ERROR` message: 0 for an ACK, a negative
/// errno for an error.
pub fn error_code(msg: &Message<'_>) -> Option<i32> {
    u32_at(msg.payload(), 0).map(|v| v as i32)
}

/// Attributes `(type, value)` of a buffer of netlink attributes.
pub fn attributes(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u16_at(buf, at), u16_at(buf, at + 2)) {
        let len = usize::from(len);
        if len < 4 || at + len > buf.len() {
            break;
        }
        out.push((kind & NLA_TYPE_MASK, &buf[at + 4..at + len]));
        at += align4(len);
    }
    out
}

/// The value of attribute `kind` in `buf`.
pub fn attribute(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(buf)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)
}

/// A big-endian u64 attribute value.
pub fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A dump request of every rule of table `inet <table>`.
pub fn get_rules(table: &str, seq: u32) -> Vec<u8> {
    const NFTA_RULE_TABLE: u16 = 1;
    let mut attr = Vec::new();
    let name_len = table.len() + 1;
    attr.extend_from_slice(&((4 + name_len) as u16).to_ne_bytes());
    attr.extend_from_slice(&NFTA_RULE_TABLE.to_ne_bytes());
    attr.extend_from_slice(table.as_bytes());
    attr.push(0);
    attr.resize(align4(attr.len()), 0);
    // nfgenmsg: family, version, resource id.
    let nfgen = [NFPROTO_INET, 0, 0, 0];
    let len = NLMSG_HDRLEN + nfgen.len() + attr.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&(NFT_SUBSYS | NFT_MSG_GETRULE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&nfgen);
    msg.extend_from_slice(&attr);
    msg
}

/// One rule of a dump: its chain, comment and counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpedRule {
    /// Chain name.
    pub chain: String,
    /// The comment, if any.
    pub comment: Option<String>,
    /// `(packets, bytes)` of its counter, if it has one.
    pub counter: Option<(u64, u64)>,
}

fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// Parses an `NFT_MSG_NEWRULE` message of a dump.
pub fn parse_rule(msg: &Message<'_>) -> Option<DumpedRule> {
    const NFTA_RULE_CHAIN: u16 = 2;
    const NFTA_RULE_EXPRESSIONS: u16 = 4;
    const NFTA_RULE_USERDATA: u16 = 7;
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_EXPR_NAME: u16 = 1;
    const NFTA_EXPR_DATA: u16 = 2;
    const NFTA_COUNTER_BYTES: u16 = 1;
    const NFTA_COUNTER_PACKETS: u16 = 2;
    const UDATA_RULE_COMMENT: u8 = 0;
    // After the 4-byte nfgenmsg.
    let attrs = msg.payload().get(4..)?;
    let mut rule = DumpedRule {
        chain: cstr(attribute(attrs, NFTA_RULE_CHAIN)?),
        ..DumpedRule::default()
    };
    if let Some(udata) = attribute(attrs, NFTA_RULE_USERDATA) {
        // libnftnl's TLVs: type (1 byte), length (1 byte), value.
        let mut at = 0;
        while let (Some(kind), Some(len)) = (udata.get(at), udata.get(at + 1)) {
            let value = udata.get(at + 2..at + 2 + usize::from(*len))?;
            if *kind == UDATA_RULE_COMMENT {
                rule.comment = Some(cstr(value));
            }
            at += 2 + usize::from(*len);
        }
    }
    if let Some(exprs) = attribute(attrs, NFTA_RULE_EXPRESSIONS) {
        for (kind, elem) in attributes(exprs) {
            if kind != NFTA_LIST_ELEM
                || attribute(elem, NFTA_EXPR_NAME).map(cstr).as_deref() != Some("counter")
            {
                continue;
            }
            let data = attribute(elem, NFTA_EXPR_DATA)?;
            let bytes = attribute(data, NFTA_COUNTER_BYTES).and_then(be64)?;
            let packets = attribute(data, NFTA_COUNTER_PACKETS).and_then(be64)?;
            rule.counter = Some((packets, bytes));
        }
    }
    Some(rule)
}

/// The batch without its end message: the kernel then checks every
/// message and aborts (`NFNL_ABORT_VALIDATE`), committing nothing.
pub fn without_end(batch: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.len());
    for m in messages(batch) {
        if m.kind != NFNL_MSG_BATCH_END {
            out.extend_from_slice(m.raw);
            out.resize(align4(out.len()), 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_request_walks_back_as_one_message() {
        let req = get_rules("oxwrt", 7);
        let msgs = messages(&req);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 7);
        assert_eq!(msgs[0].kind, NFT_SUBSYS | NFT_MSG_GETRULE);
        let attrs = attributes(&msgs[0].payload()[4..]);
        assert_eq!(attrs, vec![(1, &b"oxwrt\0"[..])]);
    }

    #[test]
    fn a_truncated_buffer_yields_what_is_whole() {
        let mut req = get_rules("oxwrt", 1);
        req.extend_from_slice(&get_rules("x", 2)[..10]);
        assert_eq!(messages(&req).len(), 1);
    }
}
