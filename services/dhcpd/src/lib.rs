//! dhcpd, the DHCPv4 server of the LAN networks.
//!
//! The deciding half is plain data in, actions out: the pools from the
//! config ([`pool`]), the lease table ([`leases`]), and the RFC 2131
//! decision for one received message ([`server`], on [`packet`]). The
//! doing half: the lease journal ([`journal`], group commit), the device
//! sockets ([`io`], and [`raw`] for replies to a hardware address), the
//! state behind one lock ([`core`]), the loops ([`serve`]) and
//! `org.oxwrt.Dhcp1` ([`bus`]).

#![deny(unsafe_code)]

pub mod bus;
pub mod core;
pub mod io;
pub mod journal;
pub mod leases;
pub mod packet;
pub mod pool;
pub mod raw;
pub mod serve;
pub mod server;

pub use leases::{Lease, LeaseError, Leases, Mac};
pub use packet::{ClientMessage, PacketError, Request};
pub use pool::{Pool, PoolError};
pub use server::{Action, Change, Destination, Event, Reply, ReplyKind, Server, ServerError};
