//! netd's deciding half: what the kernel should look like for a config
//! ([`desired`]), and the actions that take a kernel from what it has to
//! that, touching only what differs and never what netd did not create
//! ([`reconcile`]). Plain data in, actions out; no netlink here, so all of
//! it is unit-tested without root. The netlink half (rtnetlink) and the
//! daemon come next.

#![forbid(unsafe_code)]

pub mod desired;
pub mod reconcile;
