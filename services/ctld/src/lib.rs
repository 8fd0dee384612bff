//! ctld: the operator control plane. QUIC with ed25519 keys pinned on
//! both ends (`oxwrt_quic`), the protocol of `bus_schema::control`,
//! roles, a per-key rate limit, a connection limit per listener and an
//! audit log; each call maps onto the bus.

#![forbid(unsafe_code)]

pub mod audit;
pub mod diag;
pub mod ratelimit;
pub mod rpc;
pub mod server;
pub mod settings;
