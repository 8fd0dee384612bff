//! Any bytes into `dhcpd::Server::handle` on a pool with a static lease
//! and a few leases already granted: it must return (an answer or a
//! reason to drop), never panic. The unit test
//! `server::tests::never_panics_on_mutated_input` runs the same call over
//! mutated client messages on stable Rust, so CI exercises it too.
//!
//! Run in `services/dhcpd/fuzz` (cargo-fuzz passes nightly flags; on the
//! stable toolchain `RUSTC_BOOTSTRAP=1` allows them):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run handle -- -max_total_time=60`.

#![no_main]

use std::sync::LazyLock;

use dhcpd::{Leases, Pool, Server};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
version = 1
[[networks]]
name = "lan"
kind = "lan"
bridge = "br-lan"
address = "10.0.0.1/24"
[[dhcp.pools]]
network = "lan"
start = "10.0.0.10"
end = "10.0.0.20"
raw_options = [{ code = 252, text = "http://wpad/wpad.dat" }]
[[dhcp.static_leases]]
mac = "02:00:00:00:00:55"
ip = "10.0.0.5"
hostname = "printer"
"#;

static POOLS: LazyLock<Vec<Pool>> = LazyLock::new(|| {
    let loaded = bus_schema::config::check_public_text(CONFIG).expect("valid config");
    let c = loaded.config;
    Pool::from_config(&c.dhcp, &c.networks).expect("pools")
});

fuzz_target!(|data: &[u8]| {
    let mut server = Server::new(POOLS.clone(), Leases::new());
    // The same datagram twice: the second meets the state the first left.
    let _ = server.handle("lan", data, 1_000);
    let _ = server.handle("lan", data, 2_000);
});
