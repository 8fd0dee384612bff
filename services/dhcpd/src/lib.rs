//! dhcpd's deciding half: the DHCPv4 pools from the config, the lease
//! table, and the RFC 2131 decision for one received message, returned as
//! actions for an I/O layer to carry out (persist, then send). No sockets,
//! no bus, no daemon yet.

#![forbid(unsafe_code)]

pub mod journal;
pub mod leases;
pub mod packet;
pub mod pool;
pub mod server;

pub use leases::{Lease, LeaseError, Leases, Mac};
pub use packet::{ClientMessage, PacketError, Request};
pub use pool::{Pool, PoolError};
pub use server::{Action, Change, Destination, Event, Reply, ReplyKind, Server, ServerError};
