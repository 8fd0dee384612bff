//! The daemon's state behind one lock: the deciding server, the journal
//! and the device sockets, with the config they were made from.
//!
//! A batch of received datagrams is decided under the lock, its lease
//! changes are made durable with one commit, and only then are its ACKs
//! sent (outside the lock); its OFFERs and NAKs go before the commit.
//! Config applies, the periodic tick and the bus reads take the same lock
//! between batches.

use std::time::{SystemTime, UNIX_EPOCH};

use bus_schema::bus::DhcpLease;
use bus_schema::config::Sections;
use bus_schema::config::model::{Dhcp, Network};
use bus_schema::config::value::MacAddr;

use crate::io::{Incoming, Outgoing, Sockets};
use crate::journal::{Compacted, Compaction, Flush, Journal};
use crate::leases::{Lease, mac_string};
use crate::pool::Pool;
use crate::server::{Action, Change, ReplyKind, Server};

/// The sections dhcpd consumes.
#[derive(Debug, Clone, Default)]
struct Config {
    networks: Option<Vec<Network>>,
    dhcp: Option<Dhcp>,
}

impl Config {
    /// This config with the sections in `sections` replaced.
    fn merged(&self, sections: &Sections) -> Result<Self, String> {
        Ok(Self {
            networks: oxwrt_daemon::section(sections, "networks")?
                .or_else(|| self.networks.clone()),
            dhcp: oxwrt_daemon::section(sections, "dhcp")?.or_else(|| self.dhcp.clone()),
        })
    }

    /// The pools this config describes (none until both sections are in).
    fn pools(&self) -> Result<Vec<Pool>, String> {
        match (&self.dhcp, &self.networks) {
            (Some(dhcp), Some(networks)) => {
                Pool::from_config(dhcp, networks).map_err(|e| e.to_string())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct Decided {
    /// OFFERs and NAKs, in order: they promise nothing, so they go at
    /// once, before the flush.
    pub early: Vec<Outgoing>,
    /// ACKs, in order, to send once `flush` has run.
    pub acks: Vec<Outgoing>,
    /// Lease changes, for the bus once `flush` has run.
    pub changes: Vec<Change>,
    /// The batch's lease changes, to make durable before any ACK goes.
    pub flush: Option<Flush>,
}

impl Decided {
    /// After a failed flush: the grants are not durable, so their ACKs are
    /// withheld (the clients retry) and nothing is announced.
    pub fn not_durable(&mut self) {
        self.acks.clear();
        self.changes.clear();
    }
}

/// What a restore of leases did.
#[derive(Debug)]
pub struct Restored {
    /// The leases taken back, as grants.
    pub changes: Vec<Change>,
    /// The leases left out, with why.
    pub skipped: Vec<String>,
    /// The grants, to make durable before they are reported.
    pub flush: Option<Flush>,
}

/// dhcpd's state.
#[derive(Debug)]
pub struct Core {
    config: Config,
    server: Server,
    journal: Journal,
    sockets: Sockets,
}

/// Unix time in seconds: lease times survive a restart.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Core {
    /// A core serving no pool yet, with the journal's leases.
    pub fn new(journal: Journal, leases: crate::Leases, sockets: Sockets) -> Self {
        Self {
            config: Config::default(),
            server: Server::new(Vec::new(), leases),
            journal,
            sockets,
        }
    }

    /// Could `sections` be applied? Builds the pools and changes nothing.
    pub fn check(&self, sections: &Sections) -> Result<(), String> {
        self.config.merged(sections)?.pools().map(|_| ())
    }

    /// Applies `sections`: new pools (leases are kept), and sockets on
    /// exactly the pools' devices.
    pub fn apply(&mut self, sections: &Sections) -> Result<(), String> {
        let config = self.config.merged(sections)?;
        let pools = config.pools()?;
        self.config = config;
        self.server.set_pools(pools);
        self.serve_devices();
        Ok(())
    }

    /// Opens the sockets of devices that were missing or replaced.
    pub fn serve_devices(&mut self) {
        let mut devices: Vec<String> = self
            .server
            .pools()
            .iter()
            .map(|p| p.device.clone())
            .collect();
        devices.sort();
        devices.dedup();
        self.sockets.serve(&devices);
    }

    /// The devices served now.
    pub fn served(&self) -> Vec<String> {
        self.sockets.served()
    }

    /// Decides on `batch` at `now`. The lease changes are queued in the
    /// journal and taken as the batch's flush, which the caller runs
    /// (outside the lock) before it sends any ACK.
    pub fn decide(&mut self, batch: Vec<Incoming>, now: u64) -> Decided {
        let mut out = Decided::default();
        for incoming in batch {
            let Some(network) = self.network_of(&incoming.device) else {
                continue;
            };
            match self.server.handle(&network, &incoming.bytes, now) {
                Ok(actions) => {
                    for action in actions {
                        match action {
                            Action::Record(change) => {
                                self.journal.append(&change);
                                out.changes.push(change);
                            }
                            Action::Send(reply) => {
                                let held = reply.kind == ReplyKind::Ack;
                                let outgoing = self.sockets.route(reply);
                                if held { &mut out.acks } else { &mut out.early }.extend(outgoing);
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(device = %incoming.device, "dropped: {e}"),
            }
        }
        out.flush = self.journal.take();
        out
    }

    /// The journal's compaction when it is due, for the caller to run
    /// outside the lock and hand to [`Core::compacted`].
    pub fn compaction(&mut self) -> Option<Compaction> {
        self.journal.compaction(self.server.leases())
    }

    /// Takes the journal a compaction wrote (`None`: it failed); returns
    /// the flush that puts it in place, for the caller to run outside the
    /// lock.
    pub fn compacted(&mut self, written: Option<Compacted>) -> Option<Flush> {
        self.journal.install(written)
    }

    /// Ends the leases that ran out by `now`; returns the changes and
    /// their flush, which the caller runs outside the lock.
    pub fn expire(&mut self, now: u64) -> (Vec<Change>, Option<Flush>) {
        let changes = self.server.expire(now);
        let flush = self.record(&changes);
        (changes, flush)
    }

    /// Queues `changes` in the journal; their flush, for the caller to run
    /// outside the lock.
    fn record(&mut self, changes: &[Change]) -> Option<Flush> {
        for c in changes {
            self.journal.append(c);
        }
        self.journal.take()
    }

    /// Takes back leases from a backup (see [`Server::restore`]); returns
    /// the grants and their flush, which the caller runs outside the
    /// lock, and the leases left out with why.
    pub fn restore(&mut self, leases: &[DhcpLease], now: u64) -> Restored {
        let mut skipped = Vec::new();
        let mut parsed = Vec::new();
        for l in leases {
            match (l.mac.parse::<MacAddr>(), l.ip.parse()) {
                (Ok(mac), Ok(ip)) => parsed.push(Lease {
                    mac: mac.0,
                    ip,
                    hostname: (!l.hostname.is_empty()).then(|| l.hostname.clone()),
                    expires: l.expires,
                    network: l.network.clone(),
                }),
                _ => skipped.push(format!("{} {}: not a MAC and an address", l.mac, l.ip)),
            }
        }
        let (changes, left_out) = self.server.restore(parsed, now);
        skipped.extend(left_out);
        Restored {
            flush: self.record(&changes),
            changes,
            skipped,
        }
    }

    /// The network a device carries (the pool's), if it is served.
    fn network_of(&self, device: &str) -> Option<String> {
        self.server
            .pools()
            .iter()
            .find(|p| p.device == device)
            .map(|p| p.network().to_string())
    }

    /// Every lease, sorted by network and address.
    pub fn leases(&self) -> Vec<DhcpLease> {
        let mut all: Vec<&Lease> = self.server.leases().iter().collect();
        all.sort_by(|a, b| (&a.network, a.ip).cmp(&(&b.network, b.ip)));
        all.into_iter().map(bus_lease).collect()
    }

    /// Number of leases.
    pub fn lease_count(&self) -> usize {
        self.server.leases().len()
    }
}

/// A lease as the bus shows it.
pub fn bus_lease(l: &Lease) -> DhcpLease {
    DhcpLease {
        network: l.network.clone(),
        mac: mac_string(&l.mac),
        ip: l.ip.to_string(),
        hostname: l.hostname.clone().unwrap_or_default(),
        expires: l.expires,
    }
}
