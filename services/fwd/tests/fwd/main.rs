//! fwd against a real kernel, each test in network namespaces of its own:
//! the batch as `nft` lists it, no-op second applies, other tables left
//! alone, the check path, counters, and real traffic through a router
//! namespace. Needs root; otherwise each test prints `SKIP:`.

mod apply;
mod bus;
mod netns;
mod traffic;

use bus_schema::config::model::Config;
use fwd::batch;
use fwd::kernel::{Kernel, KernelError};
use fwd::render::{self, Input, Rendered, WanAddress};

use crate::netns::Netns;

/// A static WAN on `w0` with one counted rule (udp 9999 accepted).
pub const COUNTED: &str = r#"
version = 1
[[networks]]
name = "wan"
kind = "wan"
device = "w0"
mode = "static"
address = "10.9.0.1/24"
gateway = "10.9.0.254"

[[firewall.zones]]
name = "wan"
networks = ["wan"]

[[firewall.rules]]
name = "count-udp"
src = "wan"
proto = ["udp"]
dest_port = [9999]
counter = true
action = "accept"
"#;

/// A validated config from TOML text.
pub fn load(text: &str) -> Config {
    bus_schema::config::check_public_text(text)
        .unwrap_or_else(|e| panic!("invalid test config:\n{e}"))
        .config
}

/// The firewall of `config` with these WAN addresses.
pub fn render(config: &Config, wan: &[WanAddress]) -> Rendered {
    render::render(&Input {
        networks: &config.networks,
        firewall: &config.firewall,
        port_forwards: &config.port_forwards,
        wan,
        utc_offset: 0,
    })
    .expect("render")
}

/// Commits the ruleset in the namespace.
pub fn commit(ns: &Netns, rendered: &Rendered) -> Result<(), KernelError> {
    let batch = batch::replace(&rendered.ruleset).expect("batch");
    ns.run(move || Kernel::open()?.commit(&batch))
}

/// Checks the ruleset in the namespace (never commits).
pub fn check(ns: &Netns, rendered: &Rendered) -> Result<(), KernelError> {
    let batch = batch::replace(&rendered.ruleset).expect("batch");
    ns.run(move || Kernel::open()?.check(&batch))
}

/// fwd's sections of a config, as configd sends them.
pub fn sections(config: &Config) -> fwd_sections::Sections {
    let all = bus_schema::config::sections(config, false);
    all.into_iter()
        .filter(|(k, _)| ["networks", "firewall", "port_forwards"].contains(&k.as_str()))
        .collect()
}

mod fwd_sections {
    pub use bus_schema::config::Sections;
}
