//! The oxwrt lab: a virtual router in network namespaces, with an upstream
//! ISP and LAN clients, for end-to-end tests and `cargo xtask lab`.
//!
//! [`Lab::up`] creates the topology (see [`plan`]), starts the ISP's
//! dnsmasq and HTTP server and the router's WAN DHCP client, and returns
//! once all of it is ready. Dropping the [`Lab`] tears everything down,
//! also while unwinding from a panic; [`Lab::into_detached`] keeps it
//! running past the process, and [`Lab::down`] removes it later. Nothing in
//! a lab touches the host's interfaces, routes, firewall, /etc or /run
//! (beyond the namespace handles `ip netns` keeps in /run/netns).
//!
//! See `docs/lab.md` for the topology, addressing and the xtask commands.

#![forbid(unsafe_code)]

pub mod dhcp_client;
pub mod exec;
mod info;
pub mod isp;
mod lab;
pub mod netns;
pub mod peer;
pub mod plan;
pub mod scratch;
pub mod state;
pub mod support;
pub mod testing;
pub mod wait;
pub mod wan;

pub use exec::{ChildGuard, ExecError};
pub use info::{Addresses, ControlInfo, LabInfo, Namespaces};
pub use lab::{Boot, LAB_CONFIG_DIR, Lab, LabCheck, LabConfig, LabError};
pub use state::default_state_dir;
pub use wait::{WaitError, wait_for, wait_until};
