//! netd's integration tests, each in network namespaces of its own:
//! the rtnetlink layer against a real kernel ([`kernel`]) and the WAN
//! DHCP client against dnsmasq ([`dhcp`]). They need root; otherwise they
//! print `SKIP:` and return.

mod dhcp;
mod kernel;
mod support;
