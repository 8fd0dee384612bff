//! The IR as one nf_tables batch, through `nftnl`: add table `inet oxwrt`
//! (a no-op when it exists), delete it, add it again with every chain and
//! rule. The kernel applies a batch atomically, so no packet ever sees a
//! missing or half-built table, and conntrack entries are untouched.

use std::ffi::CString;

use nftnl::{MsgType, ProtoFamily};

use crate::ir::{ChainKind, Hook, Policy, Ruleset, TABLE};
use crate::lower::{self, LowerError};
use crate::nlexpr::{Built, NlExprError};

/// Errors of [`replace`].
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A rule could not be lowered.
    #[error("rule {rule:?} in chain {chain}: {source}")]
    Lower {
        /// Chain name.
        chain: String,
        /// The rule in nft syntax.
        rule: String,
        /// Why.
        #[source]
        source: LowerError,
    },
    /// libnftnl refused an expression.
    #[error("rule {rule:?} in chain {chain}: {source}")]
    Expr {
        /// Chain name.
        chain: String,
        /// The rule in nft syntax.
        rule: String,
        /// Why.
        #[source]
        source: NlExprError,
    },
    /// A name holds a NUL byte.
    #[error("{0:?} holds a NUL byte")]
    Nul(String),
    /// A comment is longer than the kernel keeps.
    #[error("comment {0:?} is too long")]
    Comment(String),
}

/// A batch ready to send: its bytes and, per message in order (the
/// batch's begin message first), what the message does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Netlink messages, back to back.
    pub bytes: Vec<u8>,
    /// What each message does, for error messages.
    pub what: Vec<String>,
}

fn cstring(s: &str) -> Result<CString, BatchError> {
    CString::new(s).map_err(|_| BatchError::Nul(s.to_string()))
}

fn hook(h: Hook) -> nftnl::Hook {
    match h {
        Hook::Prerouting => nftnl::Hook::PreRouting,
        Hook::Input => nftnl::Hook::In,
        Hook::Forward => nftnl::Hook::Forward,
        Hook::Output => nftnl::Hook::Out,
        Hook::Postrouting => nftnl::Hook::PostRouting,
    }
}

/// The batch that replaces fwd's table with `ruleset`.
pub fn replace(ruleset: &Ruleset) -> Result<Batch, BatchError> {
    let mut batch = nftnl::Batch::new();
    let mut what = vec!["begin batch".to_string()];
    let table = nftnl::Table::new(cstring(TABLE)?, ProtoFamily::Inet);
    batch.add(&table, MsgType::Add);
    what.push(format!("add table inet {TABLE}"));
    batch.add(&table, MsgType::Del);
    what.push(format!("delete table inet {TABLE}"));
    batch.add(&table, MsgType::Add);
    what.push(format!("add table inet {TABLE}"));

    let mut chains = Vec::new();
    for c in &ruleset.chains {
        let mut chain = nftnl::Chain::new(cstring(&c.name)?, &table);
        if let Some(base) = &c.base {
            chain.set_hook(hook(base.hook), base.priority);
            chain.set_type(match base.kind {
                ChainKind::Filter => nftnl::ChainType::Filter,
                ChainKind::Nat => nftnl::ChainType::Nat,
            });
            chain.set_policy(match base.policy {
                Policy::Accept => nftnl::Policy::Accept,
                Policy::Drop => nftnl::Policy::Drop,
            });
        }
        batch.add(&chain, MsgType::Add);
        what.push(format!("add chain {}", c.name));
        chains.push(chain);
    }
    for (c, chain) in ruleset.chains.iter().zip(&chains) {
        for r in &c.rules {
            let text = r.to_string();
            let exprs = lower::rule(r).map_err(|source| BatchError::Lower {
                chain: c.name.clone(),
                rule: text.clone(),
                source,
            })?;
            let mut rule = nftnl::Rule::new(chain);
            for spec in &exprs {
                let built = Built::new(spec).map_err(|source| BatchError::Expr {
                    chain: c.name.clone(),
                    rule: text.clone(),
                    source,
                })?;
                rule.add_expr(&built);
            }
            if let Some(comment) = &r.comment {
                rule.set_comment(cstring(comment)?)
                    .map_err(|_| BatchError::Comment(comment.clone()))?;
            }
            batch.add(&rule, MsgType::Add);
            what.push(format!("add rule to chain {}: {text}", c.name));
        }
    }
    let finalized = batch.finalize();
    what.push("end batch".into());
    let bytes = finalized
        .iter()
        .flat_map(|page| page.iter().copied())
        .collect();
    Ok(Batch { bytes, what })
}

/// A batch (to be checked, never committed) that adds a flowtable to a
/// scratch table: whether the kernel has `nf_flow_table`.
pub fn flowtable_probe() -> Batch {
    const NFT_MSG_NEWFLOWTABLE: u16 = 22;
    const NLM_F_CREATE: u16 = 0x400;
    const NLA_F_NESTED: u16 = 0x8000;
    let name = c"oxwrt_probe";
    let mut batch = nftnl::Batch::new();
    let table = nftnl::Table::new(name, ProtoFamily::Inet);
    batch.add(&table, MsgType::Add);
    let head = crate::netlink::without_end(
        &batch
            .finalize()
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<u8>>(),
    );
    let seq = crate::netlink::messages(&head)
        .last()
        .map_or(1, |m| m.seq.wrapping_add(1));
    let attr = |kind: u16, value: &[u8]| {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize((a.len() + 3) & !3, 0);
        a
    };
    let mut hook = attr(1, &0u32.to_be_bytes());
    hook.extend(attr(2, &0u32.to_be_bytes()));
    let mut payload = vec![ProtoFamily::Inet as u8, 0, 0, 0];
    payload.extend(attr(1, name.to_bytes_with_nul()));
    payload.extend(attr(2, b"ft\0"));
    payload.extend(attr(3 | NLA_F_NESTED, &hook));
    let len = 16 + payload.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&(crate::netlink::NFT_SUBSYS | NFT_MSG_NEWFLOWTABLE).to_ne_bytes());
    msg.extend_from_slice(
        &(crate::netlink::NLM_F_REQUEST | crate::netlink::NLM_F_ACK | NLM_F_CREATE).to_ne_bytes(),
    );
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&payload);
    let mut bytes = head;
    bytes.extend_from_slice(&msg);
    Batch {
        bytes,
        what: vec![
            "begin batch".into(),
            "add table inet oxwrt_probe".into(),
            "add flowtable inet oxwrt_probe ft".into(),
        ],
    }
}
