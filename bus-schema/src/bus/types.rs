//! Values carried by the oxwrt interfaces, and their errors.

use serde::{Deserialize, Serialize};
use zbus::{DBusError, Type};

/// Errors every oxwrt interface can return. On the wire each is
/// `org.oxwrt.Error.<Variant>` with the message as its text.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.oxwrt.Error")]
pub enum BusError {
    /// A transport error of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The caller's uid may not call this method.
    AccessDenied(String),
    /// The config is invalid: one diagnostic per line, each
    /// `file:line:col: path: message`.
    Invalid(String),
    /// A daemon refused or failed to apply its part; the text carries the
    /// original error and the outcome of the revert.
    ApplyFailed(String),
    /// No such service, section or snapshot.
    NotFound(String),
    /// Another transaction is running.
    Busy(String),
    /// Anything else that went wrong on the callee's side.
    Failed(String),
}

/// One supervised service as oxinit reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ServiceStatus {
    /// Service name (`configd`, `netd`, ...).
    pub name: String,
    /// State: `stopped`, `starting`, `running`, `backoff`, `stopping`,
    /// `failed`.
    pub state: String,
    /// Process id, 0 when no process runs.
    pub pid: u32,
    /// Restarts since oxinit started (or since the last `Start`).
    pub restarts: u32,
    /// Unix time (seconds) of the last state change.
    pub since: u64,
    /// How the last process ended (`exited 1`, `killed by SIGKILL`), or
    /// empty.
    pub last_exit: String,
    /// Why the service is `failed`, or empty.
    pub reason: String,
}

/// The result of a `Reload`, `Rollback` or dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ApplyReport {
    /// The running generation after the call (unchanged for a dry run).
    pub generation: u64,
    /// Its hash.
    pub hash: String,
    /// Sections that differ between the running and the new config.
    pub changed: Vec<String>,
    /// One unified diff per changed section (secrets redacted).
    pub diff: Vec<(String, String)>,
    /// Unix time after which an unconfirmed generation is reverted; 0 when
    /// nothing awaits confirmation.
    pub confirm_deadline: u64,
    /// Warnings from validation, one per line.
    pub warnings: String,
}

/// One entry of the snapshot ring, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct SnapshotInfo {
    /// Position for `Rollback(to)`: 0 is the generation before the
    /// running one.
    pub index: u32,
    /// Generation number.
    pub generation: u64,
    /// Unix time it became running.
    pub time: u64,
    /// Who applied it (`uid 0`, or what the caller named).
    pub who: String,
    /// The caller's comment.
    pub comment: String,
    /// Hash of the pair.
    pub hash: String,
}

/// One link as netd sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct LinkStatus {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Operational state as the kernel names it, lower-case (`up`,
    /// `down`, `lowerlayerdown`, `unknown`, ...).
    pub oper_state: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff`, or empty.
    pub mac: String,
    /// MTU.
    pub mtu: u32,
    /// Addresses with prefix length (`192.168.1.1/24`).
    pub addresses: Vec<String>,
    /// The bridge it is a port of, or empty.
    pub master: String,
}

/// One WAN network's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct WanStatus {
    /// Network name from the config.
    pub network: String,
    /// Its device.
    pub device: String,
    /// `dhcp`, `static` or `pppoe`.
    pub mode: String,
    /// `up` (address and gateway in place), `acquiring` (no lease yet),
    /// `down` (no carrier or no device).
    pub state: String,
    /// Whether it carries the default route.
    pub active: bool,
    /// Address with prefix length, or empty.
    pub address: String,
    /// Gateway, or empty.
    pub gateway: String,
    /// DNS servers learned or configured.
    pub dns: Vec<String>,
    /// DHCP server, or empty.
    pub server: String,
    /// Unix times of the lease: obtained, renew (T1), rebind (T2),
    /// expiry; all 0 for a static uplink.
    pub lease_obtained: u64,
    /// See `lease_obtained`.
    pub lease_renew: u64,
    /// See `lease_obtained`.
    pub lease_rebind: u64,
    /// See `lease_obtained`.
    pub lease_expires: u64,
}

/// A firewall rule's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct RuleCounter {
    /// Rule name from the config.
    pub rule: String,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
}

/// One DHCP lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DhcpLease {
    /// LAN network from the config.
    pub network: String,
    /// Client MAC, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Leased address.
    pub ip: String,
    /// Client hostname (option 12, or the static lease's), or empty.
    pub hostname: String,
    /// Unix time the lease ends.
    pub expires: u64,
}

/// What happened to a lease.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct LeaseChange {
    /// `granted` (a new client or address), `renewed` (same client, same
    /// address), `released`, `declined` or `expired`.
    pub event: String,
    /// The lease (for an end, as it was).
    pub lease: DhcpLease,
}

/// dnsd's cache statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DnsCacheStats {
    /// What the cached answers cost, in the unit of `capacity`: records
    /// (an answer costs its records or one per 256 bytes, whichever is
    /// more).
    pub size: u64,
    /// Capacity (`dns.cache_size`).
    pub capacity: u64,
    /// Answers served from the cache.
    pub hits: u64,
    /// Questions that went upstream.
    pub misses: u64,
}

/// One upstream DNS server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DnsUpstream {
    /// Address and port.
    pub address: String,
    /// `config` or `wan` (learned by netd).
    pub source: String,
    /// `up` (answered recently), `down` (timed out recently) or `unknown`.
    pub health: String,
    /// Queries sent.
    pub queries: u64,
    /// Of those, how many timed out.
    pub timeouts: u64,
    /// Smoothed round-trip time in microseconds, 0 before any answer.
    pub rtt_micros: u64,
}
