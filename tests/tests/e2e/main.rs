//! The end-to-end tests, one binary: the lab harness itself, the spine
//! (oxinit, the broker, configd and test daemons) in a lab, and the
//! routed data path (the real netd and fwd) with traffic, and the LAN
//! services (dhcpd) with real clients.

mod containers;
mod control;
mod lab;
mod lan;
mod limits;
mod router;
mod sandbox;
mod spine;
