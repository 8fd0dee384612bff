//! The DHCP clients of the dynamic WANs: which run, started and stopped as
//! the config changes, and their leases as the rest of netd sees them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bus_schema::config::model::{Network, NetworkKind, WanMode};
use tokio::sync::mpsc;

use crate::desired::Uplink;
use crate::dhcp::{self, ClientConfig, DhcpEvent, DhcpHandle, Lease};
use crate::reconcile::Observed;

/// A client's news, tagged with its device.
#[derive(Debug)]
pub struct ClientEvent {
    /// The WAN device.
    pub device: String,
    /// The lease now held (bound or renewed), or `None` when it was lost.
    pub lease: Option<Lease>,
}

/// What a client is started with, compared to restart it when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    hostname: Option<String>,
    vendor_class: Option<String>,
    release: bool,
}

#[derive(Debug)]
struct Running {
    want: Want,
    handle: DhcpHandle,
    /// The device's interface index when the client started (`None`: the
    /// device was missing then).
    index: Option<u32>,
}

/// The running clients, by device.
#[derive(Debug)]
pub struct Clients {
    /// Where leases persist (`$STATE/netd/`).
    dir: PathBuf,
    events: mpsc::Sender<ClientEvent>,
    running: BTreeMap<String, Running>,
}

/// The DHCP WANs of a config, by device.
fn wanted(networks: &[Network]) -> BTreeMap<String, Want> {
    networks
        .iter()
        .filter_map(|n| match &n.kind {
            NetworkKind::Wan(wan) => match &wan.mode {
                WanMode::Dhcp {
                    hostname,
                    vendor_class,
                    release,
                } => Some((
                    wan.device.clone(),
                    Want {
                        hostname: hostname.clone(),
                        vendor_class: vendor_class.clone(),
                        release: *release,
                    },
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl Clients {
    /// No clients yet.
    pub fn new(dir: PathBuf, events: mpsc::Sender<ClientEvent>) -> Self {
        Self {
            dir,
            events,
            running: BTreeMap::new(),
        }
    }

    /// Whether a client runs for `device`.
    pub fn wants(&self, device: &str) -> bool {
        self.running.contains_key(device)
    }

    /// Stops the clients whose WAN is gone or changed.
    pub async fn stop_stale(&mut self, networks: &[Network]) {
        let wanted = wanted(networks);
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(device, r)| wanted.get(*device) != Some(&r.want))
            .map(|(device, _)| device.clone())
            .collect();
        for device in stale {
            if let Some(r) = self.running.remove(&device) {
                tracing::info!(device, "stopping its DHCP client");
                r.handle.stop().await;
            }
        }
    }

    /// The persisted, still valid leases of DHCP WANs that have no client
    /// yet.
    pub fn persisted(&self, networks: &[Network]) -> Vec<(String, Lease)> {
        let now = dhcp::unix_now();
        wanted(networks)
            .into_keys()
            .filter(|device| !self.running.contains_key(device))
            .filter_map(|device| {
                let lease = dhcp::lease::load(&self.dir, &device)?;
                lease.valid_at(now).then_some((device, lease))
            })
            .collect()
    }

    /// Restarts the clients whose device was replaced (unplugged and
    /// plugged again: a new interface index), so that none keeps a socket
    /// on a device that is gone.
    pub async fn restart_replaced(&mut self, networks: &[Network], observed: &Observed) {
        let recorded: BTreeMap<String, Option<u32>> = self
            .running
            .iter()
            .map(|(d, r)| (d.clone(), r.index))
            .collect();
        let replaced = replaced(&recorded, observed);
        for device in &replaced {
            if let Some(r) = self.running.remove(device) {
                tracing::info!(device, "device replaced: restarting its DHCP client");
                r.handle.stop().await;
            }
        }
        if !replaced.is_empty() {
            self.start_missing(networks, observed).await;
        }
    }

    /// Starts a client for every DHCP WAN that has none.
    pub async fn start_missing(&mut self, networks: &[Network], observed: &Observed) {
        for (device, want) in wanted(networks) {
            if self.running.contains_key(&device) {
                continue;
            }
            let index = observed.links.get(&device).map(|l| l.index);
            let (tx, mut rx) = mpsc::channel(8);
            let config = ClientConfig {
                device: device.clone(),
                hostname: want.hostname.clone(),
                vendor_class: want.vendor_class.clone(),
                release_on_stop: want.release,
                lease_dir: self.dir.clone(),
            };
            let handle = dhcp::spawn(config, tx);
            let events = self.events.clone();
            let tagged = device.clone();
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    let lease = match event {
                        DhcpEvent::Bound(l) | DhcpEvent::Renewed(l) => Some(l),
                        DhcpEvent::Lost => None,
                    };
                    let event = ClientEvent {
                        device: tagged.clone(),
                        lease,
                    };
                    if events.send(event).await.is_err() {
                        break;
                    }
                }
            });
            tracing::info!(device, "DHCP client started");
            self.running.insert(
                device,
                Running {
                    want,
                    handle,
                    index,
                },
            );
        }
    }

    /// Stops every client; returns the devices whose lease was released.
    pub async fn stop_all(&mut self) -> Vec<String> {
        let mut released = Vec::new();
        for (device, r) in std::mem::take(&mut self.running) {
            r.handle.stop().await;
            if r.want.release {
                released.push(device);
            }
        }
        released
    }
}

/// The devices whose client started on an interface that has since been
/// replaced: present now with another index, or present now after being
/// missing at the start.
fn replaced(recorded: &BTreeMap<String, Option<u32>>, observed: &Observed) -> Vec<String> {
    recorded
        .iter()
        .filter(|(device, index)| {
            observed
                .links
                .get(*device)
                .is_some_and(|now| Some(now.index) != **index)
        })
        .map(|(device, _)| device.clone())
        .collect()
}

/// The address and default route a lease gives.
pub fn uplink(lease: &Lease) -> Uplink {
    Uplink {
        address: lease.address,
        gateway: lease.router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::LinkState;
    use crate::reconcile::tests::nic;

    fn with(links: &[(&str, u32)]) -> Observed {
        let mut o = Observed::default();
        for (name, index) in links {
            let link = LinkState {
                index: *index,
                ..nic(None, true)
            };
            o.links.insert(name.to_string(), link);
        }
        o
    }

    #[test]
    fn a_device_with_a_new_index_or_back_from_missing_is_replaced() {
        let recorded = BTreeMap::from([
            ("same".to_string(), Some(3)),
            ("moved".to_string(), Some(4)),
            ("late".to_string(), None),
            ("gone".to_string(), Some(6)),
            ("still-missing".to_string(), None),
        ]);
        let observed = with(&[("same", 3), ("moved", 9), ("late", 7)]);
        assert_eq!(replaced(&recorded, &observed), ["late", "moved"]);
    }
}
