//! netd: what the kernel should look like for a config ([`desired`]), the
//! actions that take a kernel from what it has to that, touching only what
//! differs and never what netd did not create ([`reconcile`]), and the thin
//! rtnetlink layer that reads the kernel and carries the actions out
//! ([`kernel`]). The deciding half is plain data in, actions out, so it is
//! unit-tested without root.
//!
//! The daemon (`main.rs`) keeps its state in [`core`]: the config, what
//! netd owns (persisted under `$STATE/netd/`), the WAN leases from the
//! DHCP clients ([`dhcp`], run by [`uplinks`]); it follows the kernel's
//! link events ([`monitor`]) and publishes [`status`] on the bus
//! ([`bus`], `org.oxwrt.Net1`).

#![forbid(unsafe_code)]

pub mod bus;
pub mod core;
pub mod desired;
pub mod dhcp;
pub mod kernel;
pub mod monitor;
pub mod reconcile;
pub mod status;
pub mod uplinks;
