//! The WAN's DHCPv4 client.
//!
//! [`client`] decides (a pure RFC 2131 state machine: packets, timers and
//! commands in, actions out), [`packet`] reads and builds the messages,
//! [`lease`] persists the lease per device for INIT-REBOOT after a
//! restart, and [`socket`] and [`runner`] do the I/O: one tokio task per
//! WAN device that reports [`DhcpEvent`]s. The client never configures the
//! kernel; netd's core applies the leases it is told about.

pub mod action;
pub mod client;
pub mod lease;
pub mod packet;
pub mod runner;
pub mod socket;

pub use action::{Action, Command, Destination, Input, Now, StateKind};
pub use client::Client;
pub use lease::{Lease, LeaseError};
pub use packet::Identity;
pub use runner::{ClientConfig, DhcpEvent, DhcpHandle, spawn, unix_now};
pub use socket::{SocketError, read_mac};
