//! dnsd, the LAN's DNS server: the router's own name, static hosts and
//! leases answered locally, everything else forwarded to upstreams through
//! a cache, with blocklists and rebind protection.
//!
//! Deciding apart from doing: [`query`] parses a client's message,
//! [`resolver`] decides the answer from the local names ([`zone`]), the
//! [`blocklist`] and the [`cache`], and turns upstream responses into
//! cached [`wire::Answer`]s; [`wire`] renders them per client. The
//! sockets are in [`server`] (listeners) and [`upstream`] (forwarding);
//! [`coalesce`] shares one upstream query among identical questions.
//! The daemon's state is in [`core`] (config from [`settings`], leases
//! followed from dhcpd by [`leases`], WAN servers from netd by [`wan`]);
//! [`bus`] serves `org.oxwrt.Dns1`.

#![forbid(unsafe_code)]

pub mod blocklist;
pub mod bus;
pub mod cache;
pub mod coalesce;
pub mod core;
pub mod leases;
pub mod query;
pub mod resolver;
pub mod server;
pub mod settings;
mod store;
pub mod upstream;
pub mod wan;
pub mod wire;
pub mod zone;
