//! fwd, the firewall daemon: the whole firewall of a config (zones,
//! rules, NAT, port forwards, reflection) as one nf_tables table,
//! `inet oxwrt`, replaced in one atomic batch.
//!
//! Deciding apart from doing: [`render`] turns the config and the WAN
//! addresses into a plain ruleset ([`ir`]), printed by [`text`];
//! [`lower`] turns its rules into nf_tables expressions (plain data),
//! [`nlexpr`] hands them to libnftnl (the one module with `unsafe`),
//! [`batch`] builds the `nftnl` batch, and [`kernel`] sends, checks and
//! reads counters over fwd's own nfnetlink socket ([`netlink`] frames it).
//! The daemon keeps its state in [`core`], follows netd's WAN state
//! ([`wan`]) and serves `org.oxwrt.Firewall1` ([`bus`]).

pub mod batch;
pub mod bus;
pub mod core;
pub mod ir;
pub mod kernel;
pub mod lower;
pub mod netlink;
pub mod nlexpr;
pub mod render;
pub mod text;
pub mod wan;
