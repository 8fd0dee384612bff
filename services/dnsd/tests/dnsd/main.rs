//! dnsd against real peers, each test in network namespaces of its own: a
//! router namespace running dnsd's server (the library, in a thread that
//! entered it), a LAN client namespace asking with `dig`, and an upstream
//! namespace running dnsmasq (or a scripted upstream for coalescing and
//! spoofing). They need root, `dig` and dnsmasq; otherwise they print
//! `SKIP:` and return.

mod bus;
mod forward;
mod local;
mod scripted;
mod support;
