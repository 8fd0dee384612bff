//! netd: what the kernel should look like for a config ([`desired`]), the
//! actions that take a kernel from what it has to that, touching only what
//! differs and never what netd did not create ([`reconcile`]), and the thin
//! rtnetlink layer that reads the kernel and carries the actions out
//! ([`kernel`]). The deciding half is plain data in, actions out, so it is
//! unit-tested without root. The daemon comes next.

#![forbid(unsafe_code)]

pub mod desired;
pub mod kernel;
pub mod reconcile;
