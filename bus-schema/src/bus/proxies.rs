//! Client side of every oxwrt interface. The server side lives in each
//! daemon's `bus.rs` and implements exactly these members.

use std::collections::HashMap;

use zbus::proxy;

use super::{
    ApplyReport, DhcpLease, DnsCacheStats, DnsUpstream, LeaseChange, LinkStatus, RuleCounter,
    ServiceStatus, SnapshotInfo, WanStatus,
};

/// `org.oxwrt.Init1`: oxinit's supervision of every service.
#[proxy(
    interface = "org.oxwrt.Init1",
    default_service = "org.oxwrt.Init",
    default_path = "/org/oxwrt/Init"
)]
pub trait Init1 {
    /// Every service, in start order.
    fn list_services(&self) -> zbus::Result<Vec<ServiceStatus>>;
    /// Restarts one service (also one that is `failed`).
    fn restart(&self, name: &str) -> zbus::Result<()>;
    /// Stops one service; it stays stopped until `Start`.
    fn stop(&self, name: &str) -> zbus::Result<()>;
    /// Starts a stopped or failed service.
    fn start(&self, name: &str) -> zbus::Result<()>;
    /// The last `lines` lines a service wrote.
    fn logs(&self, name: &str, lines: u32) -> zbus::Result<Vec<String>>;
    /// The lines a service wrote from number `seq` on (numbered from 0 in
    /// order), and the number of the next line: what a follower polls.
    fn logs_since(&self, name: &str, seq: u64) -> zbus::Result<(u64, Vec<String>)>;
    /// Boot phase: `early`, `bus`, `config`, `services`, `running`,
    /// `shutdown`.
    #[zbus(property)]
    fn phase(&self) -> zbus::Result<String>;
    /// A service changed state.
    #[zbus(signal)]
    fn service_changed(&self, status: ServiceStatus) -> zbus::Result<()>;
}

/// `org.oxwrt.Config1`: configd, the config broker.
#[proxy(
    interface = "org.oxwrt.Config1",
    default_service = "org.oxwrt.Config",
    default_path = "/org/oxwrt/Config"
)]
pub trait Config1 {
    /// Running generation number.
    #[zbus(property)]
    fn generation(&self) -> zbus::Result<u64>;
    /// Hash of the running pair (keyed, so it says nothing about secrets).
    #[zbus(property)]
    fn hash(&self) -> zbus::Result<String>;
    /// Unix time after which the running generation is reverted unless
    /// confirmed; 0 when it is confirmed.
    #[zbus(property)]
    fn confirm_deadline(&self) -> zbus::Result<u64>;
    /// One section of the running generation as JSON; secrets are
    /// resolved only for a caller that owns a name entitled to them.
    fn get_section(&self, name: &str) -> zbus::Result<(u64, String)>;
    /// The running config as TOML, defaults filled in, secrets redacted.
    fn dump(&self) -> zbus::Result<(u64, String)>;
    /// The running generation's pair (public, secrets): for backups.
    /// Restricted to root and ctld.
    fn export(&self) -> zbus::Result<(u64, String, String)>;
    /// Validates `$ETC`'s pair (or the pushed candidate) and applies it
    /// through the transaction. `confirm_secs` > 0 makes it provisional.
    fn reload(&self, dry_run: bool, confirm_secs: u32, comment: &str) -> zbus::Result<ApplyReport>;
    /// Validates a pair and stores it as the candidate for the next
    /// `Reload`; the reply carries the warnings.
    fn push(&self, public: &str, secrets: &str) -> zbus::Result<String>;
    /// Makes a provisional generation permanent.
    fn confirm(&self) -> zbus::Result<()>;
    /// Applies snapshot `to` (0 = the previous generation).
    fn rollback(&self, to: u32, comment: &str) -> zbus::Result<ApplyReport>;
    /// The snapshot ring, newest first.
    fn list_snapshots(&self) -> zbus::Result<Vec<SnapshotInfo>>;
    /// A new generation is running (also after a revert).
    #[zbus(signal)]
    fn new_generation(&self, generation: u64, hash: &str, changed: Vec<String>)
    -> zbus::Result<()>;
}

/// `org.oxwrt.Daemon1`: served by every daemon that consumes config, at
/// [`super::DAEMON_PATH`] under its own well-known name; called by configd.
#[proxy(interface = "org.oxwrt.Daemon1", default_path = "/org/oxwrt/Daemon")]
pub trait Daemon1 {
    /// Can these sections (name -> JSON) be applied here? Changes nothing.
    fn check(&self, generation: u64, sections: HashMap<String, String>) -> zbus::Result<()>;
    /// Applies these sections, touching only what differs.
    fn apply(&self, generation: u64, sections: HashMap<String, String>) -> zbus::Result<()>;
    /// The generation this daemon last applied.
    #[zbus(property)]
    fn applied_generation(&self) -> zbus::Result<u64>;
}

/// `org.oxwrt.Net1`: netd's view of links and uplinks. Other daemons read
/// these (and their `PropertiesChanged` signals) instead of the kernel.
#[proxy(
    interface = "org.oxwrt.Net1",
    default_service = "org.oxwrt.Net",
    default_path = "/org/oxwrt/Net"
)]
pub trait Net1 {
    /// Every link in netd's namespace, by name.
    #[zbus(property)]
    fn links(&self) -> zbus::Result<Vec<LinkStatus>>;
    /// Every WAN network in config order; the one carrying the default
    /// route has `active` set.
    #[zbus(property)]
    fn wan(&self) -> zbus::Result<Vec<WanStatus>>;
}

/// `org.oxwrt.Firewall1`: fwd's rendered ruleset and its counters.
#[proxy(
    interface = "org.oxwrt.Firewall1",
    default_service = "org.oxwrt.Firewall",
    default_path = "/org/oxwrt/Firewall"
)]
pub trait Firewall1 {
    /// fwd's tables as `nft list` would print them.
    #[zbus(property)]
    fn ruleset(&self) -> zbus::Result<String>;
    /// Batches committed since fwd started.
    #[zbus(property)]
    fn apply_count(&self) -> zbus::Result<u64>;
    /// Duration of the last commit, in microseconds.
    #[zbus(property)]
    fn last_apply_micros(&self) -> zbus::Result<u64>;
    /// Packet and byte counters of every rule with `counter = true`, read
    /// from the kernel.
    fn counters(&self) -> zbus::Result<Vec<RuleCounter>>;
}

/// `org.oxwrt.Dhcp1`: dhcpd's leases.
#[proxy(
    interface = "org.oxwrt.Dhcp1",
    default_service = "org.oxwrt.Dhcp",
    default_path = "/org/oxwrt/Dhcp"
)]
pub trait Dhcp1 {
    /// Every lease dhcpd holds (expired ones are gone), by network and
    /// address.
    fn leases(&self) -> zbus::Result<Vec<DhcpLease>>;
    /// Takes back a backup's leases (root and ctld only): those the pools
    /// would still give their clients and no live lease contradicts.
    /// Returns how many, and each one left out with why.
    fn restore_leases(&self, leases: &[DhcpLease]) -> zbus::Result<(u32, Vec<String>)>;
    /// Number of leases held.
    #[zbus(property)]
    fn lease_count(&self) -> zbus::Result<u32>;
    /// Leases that were granted, renewed, released, declined or expired
    /// together (one signal per batch of decisions, in order).
    #[zbus(signal)]
    fn leases_changed(&self, changes: Vec<LeaseChange>) -> zbus::Result<()>;
}

/// `org.oxwrt.Dns1`: dnsd's cache and upstreams.
#[proxy(
    interface = "org.oxwrt.Dns1",
    default_service = "org.oxwrt.Dns",
    default_path = "/org/oxwrt/Dns"
)]
pub trait Dns1 {
    /// Cache statistics.
    fn cache_stats(&self) -> zbus::Result<DnsCacheStats>;
    /// Every upstream in use and its health.
    fn upstreams(&self) -> zbus::Result<Vec<DnsUpstream>>;
    /// Empties the cache; returns how many entries were dropped. Restricted
    /// to root and ctld.
    fn flush(&self) -> zbus::Result<u64>;
}
