//! The control plane's transport, shared by ctld and `oxctl`: QUIC
//! (`quinn`) with TLS 1.3 (`rustls`, the `ring` provider) in which both
//! ends present an ed25519 **raw public key** (RFC 7250) instead of a
//! certificate, and each end compares the peer's key with the one it
//! pinned before the handshake signature is verified with that key. No
//! certificate, no CA, no "accept anything" verifier.
//!
//! The protocol carried on top (messages and frames) lives in
//! `bus_schema::control`; [`frame`] reads and writes it on QUIC streams.

#![forbid(unsafe_code)]

pub mod frame;
pub mod identity;
pub mod tls;

pub use identity::{Identity, IdentityError};
pub use tls::{AuthorizedKeys, ServerKeySeen, TlsError, client_config, peer_key, server_config};
